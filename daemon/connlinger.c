/* connlinger - reply bytes held by the kernel after a close; see
 * connlinger.h. */
#include "connlinger.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clients.h"
#include "conn.h"
#include "dalloc.h"
#include "list.h"
#include "log.h"
#include "worker.h"

/* One closed connection's socket, still holding bytes for its client. */
typedef struct linger_sock {
	list link;          /* in connlinger_table.socks */
	int fd;             /* owned: a duplicate, shut down both ways */
	uint64_t counted;   /* in the uid's CLIENTS_BUFFERED */
	clients_acct *acct; /* one reference, and the connection's CLIENTS_CONNS
			     * slot */
} linger_sock;

struct connlinger_table {
	uv_timer_t timer; /* runs while `socks` is not empty */
	list socks;       /* linger_sock.link */
	size_t n;
};

/* What the kernel holds of what was written to `fd` and not yet read by
 * its peer (bytes with their buffers' overhead, as charged); 0 when it
 * cannot say. */
static uint64_t held(int fd)
{
	int q = 0;
	if (ioctl(fd, SIOCOUTQ, &q) < 0 || q < 0)
		return 0;
	return (uint64_t)q;
}

static void linger_free(struct connlinger_table *t, linger_sock *s)
{
	clients_put(s->acct, CLIENTS_BUFFERED, s->counted);
	clients_put(s->acct, CLIENTS_CONNS, 1);
	clients_acct_unref(s->acct);
	close(s->fd);
	list_remove(&s->link);
	t->n--;
	free(s);
}

/* What a lingering socket holds only falls (nothing more is written to
 * it): gives back what was read, and ends the linger at nothing. */
static void on_check(uv_timer_t *timer)
{
	struct connlinger_table *t = timer->data;
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &t->socks) {
		linger_sock *s = list_entry(pos, linger_sock, link);
		uint64_t q = held(s->fd);
		if (!q) {
			linger_free(t, s);
		} else if (q < s->counted) {
			clients_put(s->acct, CLIENTS_BUFFERED, s->counted - q);
			s->counted = q;
		}
	}
	if (list_empty(&t->socks))
		uv_timer_stop(&t->timer);
}

static struct connlinger_table *table(worker *w)
{
	if (w->linger)
		return w->linger;
	struct connlinger_table *t = dcalloc(1, sizeof(*t));
	if (!t)
		return NULL;
	list_init(&t->socks);
	uv_timer_init(&w->loop, &t->timer);
	t->timer.data = t;
	w->linger = t;
	return t;
}

void connlinger_conn_closing(conn *c)
{
	uv_os_fd_t fd;
	linger_sock *s = NULL;
	struct connlinger_table *t;
	/* Without counters (out of memory at accept) its slot was never
	 * taken, and nothing could be counted. */
	if (!c->acct || c->w->state == WORKER_CLOSING ||
	    uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0)
		return;
	uint64_t q = held(fd);
	if (!q || !(t = table(c->w)) || !(s = dmalloc(sizeof(*s))))
		goto fail;
	s->acct = clients_acct_ref(c->uid);
	if (!s->acct)
		goto fail;
	s->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (s->fd < 0) {
		clients_acct_unref(s->acct);
		goto fail;
	}
	/* The client reads what is there, then the end of the stream; what
	 * it sends fails. */
	shutdown(s->fd, SHUT_RDWR);
	s->counted = q;
	/* Taken whatever the quota says: the bytes are there already. The
	 * uid's next requests are the ones refused. The connection's own
	 * slot in CLIENTS_CONNS passes to the socket, never counted twice
	 * (the connection is freed a loop turn later): the uid's next
	 * connections are refused only at its limit. */
	clients_take(s->acct, CLIENTS_BUFFERED, q, 0);
	c->conn_slot_lingers = 1;
	list_push_back(&t->socks, &s->link);
	t->n++;
	if (!uv_is_active((uv_handle_t *)&t->timer))
		uv_timer_start(&t->timer, on_check, CONNLINGER_CHECK_MS, CONNLINGER_CHECK_MS);
	return;
fail:
	free(s);
	if (q)
		log_warn("conn %llu (uid %u): %llu reply bytes left in its socket are not "
			 "counted (out of memory or descriptors)",
			 (unsigned long long)c->serial, (unsigned)c->uid, (unsigned long long)q);
}

size_t connlinger_count(const worker *w)
{
	return w->linger ? w->linger->n : 0;
}

static void on_table_closed(uv_handle_t *h)
{
	free(h->data);
}

void connlinger_worker_close(worker *w)
{
	struct connlinger_table *t = w->linger;
	if (!t)
		return;
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &t->socks) {
		linger_free(t, list_entry(pos, linger_sock, link));
	}
	w->linger = NULL;
	uv_close((uv_handle_t *)&t->timer, on_table_closed);
}
