/* worker - one loop thread and what it owns; see worker.h. */
#include "worker.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "db.h"
#include "log.h"
#include "porter.h"

/* Inbox messages. */
typedef struct handoff_msg {
	inbox_msg base;
	int fd;
	uid_t uid;
	pid_t pid;
} handoff_msg;

static void begin_stop(worker *w);

static void handoff_run(void *owner, inbox_msg *m)
{
	worker *w = owner;
	handoff_msg *h = (handoff_msg *)m;
	if (w->state != WORKER_RUNNING) {
		close(h->fd);
		stats_sub(&w->counters.connections, 1);
	} else if (conn_create(w, h->fd, h->uid, h->pid) < 0) {
		/* conn_create closed the fd and uncounted the connection. */
		log_warn("worker %u: could not start a connection", w->index);
	}
	free(h);
}

static void handoff_drop(inbox_msg *m)
{
	handoff_msg *h = (handoff_msg *)m;
	close(h->fd);
	free(h);
}

static void stop_run(void *owner, inbox_msg *m)
{
	free(m);
	begin_stop(owner);
}

static void stop_drop(inbox_msg *m)
{
	free(m);
}

static void on_closed_quietly(uv_handle_t *h)
{
	(void)h;
}

/* Every connection is gone: close the worker's own handles so its loop
 * runs out of work and the thread can end. */
static void finish(worker *w)
{
	if (w->state == WORKER_CLOSING)
		return;
	w->state = WORKER_CLOSING;
	db_worker_close(w);
	uv_close((uv_handle_t *)&w->grace, on_closed_quietly);
	inbox_close(&w->inbox, on_closed_quietly);
}

static void on_grace_expired(uv_timer_t *t)
{
	worker *w = t->data;
	list *pos, *tmp;
	unsigned n = 0;
	list_for_each_safe(pos, tmp, &w->conns) {
		conn_close(list_entry(pos, conn, link));
		n++;
	}
	if (n)
		log_warn("worker %u: shutdown grace of %u ms over, closed %u connection(s) with work in flight",
			 w->index, w->cfg->shutdown_grace_ms, n);
	if (list_empty(&w->conns))
		finish(w);
}

static void begin_stop(worker *w)
{
	if (w->state != WORKER_RUNNING)
		return;
	w->state = WORKER_DRAINING;
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &w->conns)
		conn_drain(list_entry(pos, conn, link));
	if (list_empty(&w->conns))
		finish(w);
	else
		uv_timer_start(&w->grace, on_grace_expired,
			       w->cfg->shutdown_grace_ms, 0);
}

void worker_conn_freed(worker *w)
{
	if (w->state == WORKER_DRAINING && list_empty(&w->conns))
		finish(w);
}

static void close_straggler(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h)) {
		log_warn("worker: closing a handle of type %s left open at shutdown",
			 uv_handle_type_name(uv_handle_get_type(h)));
		uv_close(h, NULL);
	}
}

static void thread_main(void *arg)
{
	worker *w = arg;
	uv_run(&w->loop, UV_RUN_DEFAULT);
	/* The loop ends when every handle is closed; anything still open is
	 * a bug, but closing it here keeps uv_loop_close honest. */
	uv_walk(&w->loop, close_straggler, NULL);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	w->loop_close_rc = uv_loop_close(&w->loop);
	if (w->loop_close_rc != 0)
		log_error("worker %u: uv_loop_close: %s", w->index,
			  uv_strerror(w->loop_close_rc));
}

int worker_init(worker *w, struct server *srv, const config *cfg,
		unsigned index)
{
	memset(w, 0, sizeof(*w));
	w->index = index;
	w->srv = srv;
	w->cfg = cfg;
	w->state = WORKER_RUNNING;
	list_init(&w->conns);
	if (uv_loop_init(&w->loop) < 0)
		return PORTER_E_INTERNAL;
	int rc = inbox_init(&w->inbox, &w->loop, w);
	if (rc < 0) {
		uv_loop_close(&w->loop);
		return rc;
	}
	uv_timer_init(&w->loop, &w->grace);
	w->grace.data = w;
	rc = db_worker_init(w);
	if (rc < 0)
		return rc;
	return 0;
}

int worker_start(worker *w)
{
	return uv_thread_create(&w->thread, thread_main, w) < 0 ? PORTER_E_INTERNAL : 0;
}

int worker_handoff(worker *w, int fd, uid_t uid, pid_t pid)
{
	handoff_msg *h = malloc(sizeof(*h));
	if (!h)
		return PORTER_E_NOMEM;
	h->base.run = handoff_run;
	h->base.drop = handoff_drop;
	h->fd = fd;
	h->uid = uid;
	h->pid = pid;
	/* Counted now, so the acceptor's least-loaded choice sees hand-offs
	 * the worker has not picked up yet. */
	stats_add(&w->counters.connections, 1);
	int rc = inbox_push(&w->inbox, &h->base);
	if (rc < 0) {
		stats_sub(&w->counters.connections, 1);
		free(h);
	}
	return rc;
}

void worker_post_stop(worker *w)
{
	inbox_msg *m = malloc(sizeof(*m));
	if (!m) {
		log_error("worker %u: out of memory posting stop", w->index);
		return;
	}
	m->run = stop_run;
	m->drop = stop_drop;
	if (inbox_push(&w->inbox, m) < 0)
		free(m);
}

int worker_join(worker *w)
{
	uv_thread_join(&w->thread);
	inbox_destroy(&w->inbox);
	return w->loop_close_rc;
}
