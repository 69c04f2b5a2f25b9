/* worker - one loop thread and what it owns; see worker.h. */
#include "worker.h"

#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cancel.h"
#include "clients.h"
#include "conn.h"
#include "connlinger.h"
#include "db.h"
#include "fsfds.h"
#include "fsstream.h"
#include "fswatch.h"
#include "fwd.h"
#include "http.h"
#include "log.h"
#include "loopcpu.h"
#include "porter_errors.h"
#include "server.h"

/* Inbox messages. */
typedef struct handoff_msg {
	inbox_msg base;
	int fd;
	clients_peer peer;
	clients_acct *acct; /* one reference and one connection counted */
} handoff_msg;

/* A new configuration generation; holds one reference until delivered. */
typedef struct config_msg {
	inbox_msg base;
	config *cfg;
} config_msg;

/* Test hook: block the loop for `ms`. */
typedef struct stall_msg {
	inbox_msg base;
	unsigned ms;
} stall_msg;

static void begin_stop(worker *w);

static void config_run(void *owner, inbox_msg *m)
{
	worker *w = owner;
	config_msg *cm = (config_msg *)m;
	config *old = (config *)w->cfg;
	/* Only this thread reads w->cfg, and no callback keeps a pointer into
	 * a config across loop iterations, so the swap needs no lock. */
	w->cfg = cm->cfg;
	config_unref(old);
	free(cm);
	/* Revocation must not wait for a peer to reconnect: connections the
	 * new allow-lists do not admit are told so and closed now. */
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &w->conns) {
		conn *c = list_entry(pos, conn, link);
		if (!clients_peer_allowed(w->cfg, w->srv->activated, &c->peer))
			conn_deny(c);
	}
}

static void config_drop(inbox_msg *m)
{
	config_msg *cm = (config_msg *)m;
	config_unref(cm->cfg);
	free(cm);
}

static void stall_run(void *owner, inbox_msg *m)
{
	worker *w = owner;
	stall_msg *sm = (stall_msg *)m;
	log_warn("worker %u: test hook: stalling the loop for %u ms", w->index, sm->ms);
	usleep((useconds_t)sm->ms * 1000);
	log_warn("worker %u: test hook: stall over", w->index);
	free(sm);
}

static void plain_drop(inbox_msg *m)
{
	free(m);
}

static void on_heartbeat(uv_timer_t *t)
{
	worker *w = t->data;
	atomic_fetch_add_explicit(&w->heartbeat, 1, memory_order_relaxed);
}

static void handoff_run(void *owner, inbox_msg *m)
{
	worker *w = owner;
	handoff_msg *h = (handoff_msg *)m;
	if (w->state != WORKER_RUNNING) {
		close(h->fd);
		clients_put(h->acct, CLIENTS_CONNS, 1);
		clients_acct_unref(h->acct);
		stats_sub(&w->counters.connections, 1);
	} else if (conn_create(w, h->fd, &h->peer, h->acct) < 0) {
		/* conn_create closed the fd and uncounted the connection. */
		log_warn("worker %u: could not start a connection", w->index);
	}
	free(h);
}

static void handoff_drop(inbox_msg *m)
{
	handoff_msg *h = (handoff_msg *)m;
	close(h->fd);
	clients_put(h->acct, CLIENTS_CONNS, 1);
	clients_acct_unref(h->acct);
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
	fsstream_worker_close(w);
	fswatch_worker_close(w);
	fsfds_worker_close(w);
	connlinger_worker_close(w);
	cancel_worker_close(w);
	if (w->http) {
		http_worker_close(w->http);
		w->http = NULL;
	}
	uv_close((uv_handle_t *)&w->grace, on_closed_quietly);
	uv_close((uv_handle_t *)&w->heartbeat_timer, on_closed_quietly);
	uv_close((uv_handle_t *)&w->spin, on_closed_quietly);
	uv_close((uv_handle_t *)&w->spin_check, on_closed_quietly);
	uv_close((uv_handle_t *)&w->turns_idle, on_closed_quietly);
	loopcpu_close(w->turn_cpu);
	w->turn_cpu = NULL;
	if (w->loadavg_fd >= 0)
		close(w->loadavg_fd);
	w->loadavg_fd = -1;
	inbox_close(&w->inbox, on_closed_quietly);
}

static void on_grace_expired(uv_timer_t *t)
{
	worker *w = t->data;
	list *pos, *tmp;
	unsigned n = 0;

	if (w->state == WORKER_DRAINING && !w->aborting) {
		/* First expiry: stop what is still running, telling each
		 * caller why, and give those replies a moment to go out. */
		w->aborting = 1;
		list_for_each_safe(pos, tmp, &w->conns) {
			conn_abort(list_entry(pos, conn, link));
			n++;
		}
		if (n)
			log_warn(
				"worker %u: shutdown grace of %u ms over, stopped the work of %u connection(s)",
				w->index, w->cfg->shutdown_grace_ms, n);
		if (!list_empty(&w->conns)) {
			uv_timer_start(&w->grace, on_grace_expired, 1000, 0);
			return;
		}
	} else {
		list_for_each_safe(pos, tmp, &w->conns)
			conn_close(list_entry(pos, conn, link));
	}
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
		uv_timer_start(&w->grace, on_grace_expired, w->cfg->shutdown_grace_ms, 0);
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

/* How often the machine's run queue is looked at while spinning. */
#define SPIN_PERIOD_NS (1000 * 1000ull)
/* The period over which clients in conversation are counted: long enough
 * to see each client of a busy worker at least once (a client thread
 * makes a request every few hundred microseconds), short enough that a
 * lone client left spins again soon. */
#define CROWD_PERIOD_NS (10 * 1000 * 1000ull)

/* Spinning: keeps the loop's poll timeout at 0 and lets any other runnable
 * thread (a PostgreSQL backend, a client) go first. */
static void on_spin(uv_idle_t *h)
{
	(void)h;
	sched_yield();
}

/*
 * Whether other runnable threads fill every CPU (the fourth field of
 * /proc/loadavg counts the runnable ones, this one included). Spinning
 * pays only while a CPU would otherwise go idle: the wake-up it saves is
 * that CPU's; with the CPUs busy, each turn of the spin only costs the
 * others a context switch.
 */
static int cpus_busy(worker *w)
{
	char buf[128];
	if (w->loadavg_fd < 0)
		return 0;
	ssize_t n = pread(w->loadavg_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	const char *p = buf;
	for (int i = 0; i < 3 && p; i++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return p && strtol(p, NULL, 10) - 1 >= (long)w->ncpu;
}

/* Gives the connections waiting for a turn theirs (conn_run_turns). */
static void on_turns(uv_idle_t *h)
{
	worker *w = h->data;
	conn_run_turns(w);
	if (list_empty(&w->turns))
		uv_idle_stop(&w->turns_idle);
}

void worker_queue_turn(worker *w, list *link)
{
	if (!list_empty(link))
		return;
	list_push_back(&w->turns, link);
	if (w->state != WORKER_CLOSING && !uv_is_active((uv_handle_t *)&w->turns_idle))
		uv_idle_start(&w->turns_idle, on_turns);
}

static void on_spin_check(uv_check_t *h)
{
	worker *w = h->data;
	/* A turn of the loop ends here (after its poll): the connections'
	 * budget starts again. */
	conn_turn_begin(w);
	uint64_t spin_ns = (uint64_t)w->cfg->busy_poll_us * 1000;
	if (!spin_ns || w->state != WORKER_RUNNING) {
		uv_idle_stop(&w->spin);
		return;
	}
	uint64_t now = uv_hrtime();
	if (now - w->spin_period >= SPIN_PERIOD_NS) {
		w->spin_period = now;
		w->cpus_busy = !w->spin_any_load && cpus_busy(w);
	}
	if (now - w->crowd_since >= CROWD_PERIOD_NS) {
		/* A period with no turn at its end (the loop slept through
		 * it) leaves nothing to remember. */
		w->crowd_prev = now - w->crowd_since < 2 * CROWD_PERIOD_NS ? w->crowd_now : 0;
		w->crowd_now = 0;
		w->crowd_since = now;
		if (++w->crowd_epoch == 0)
			w->crowd_epoch = 1;
	}
	/*
	 * With as many clients in conversation as CPUs (and more than one:
	 * on one CPU, a lone client's conversation still gains), the CPU this loop
	 * would free by sleeping is taken at once by a client or a server
	 * thread its replies woke: the spin then saves no wake-up anybody
	 * waits for, and costs the CPU it burns. Measured on two CPUs
	 * (bench_db, idle machine, SELECT 1): at 8 client threads the spin
	 * cost porterd 2.4 us per query (19.0 against 16.6) for the same
	 * throughput; at 32 threads it lost 8% of it (34.0k/s against
	 * 37.0k/s). At one client thread it gains 14% (14.9k/s against
	 * 13.1k/s): the server's answer and the client's next request each
	 * arrive within tens of microseconds, during which a CPU is idle.
	 */
	unsigned crowd = w->crowd_now > w->crowd_prev ? w->crowd_now : w->crowd_prev;
	if (w->cpus_busy || (crowd >= 2 && crowd >= w->ncpu)) {
		w->io_seen = 0;
		uv_idle_stop(&w->spin);
	} else if (w->io_seen) {
		w->io_seen = 0;
		w->spin_until = now + spin_ns;
		if (!uv_is_active((uv_handle_t *)&w->spin))
			uv_idle_start(&w->spin, on_spin);
	} else if (now >= w->spin_until) {
		uv_idle_stop(&w->spin);
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
		log_error("worker %u: uv_loop_close: %s", w->index, uv_strerror(w->loop_close_rc));
	config_unref((config *)w->cfg);
	w->cfg = NULL;
}

int worker_init(worker *w, struct server *srv, config *cfg, unsigned index, unsigned heartbeat_ms)
{
	memset(w, 0, sizeof(*w));
	w->index = index;
	w->srv = srv;
	w->cfg = config_ref(cfg);
	w->heartbeat_ms = heartbeat_ms;
	w->state = WORKER_RUNNING;
	list_init(&w->conns);
	list_init(&w->turns);
	if (uv_loop_init(&w->loop) < 0) {
		config_unref(cfg);
		return PORTER_E_INTERNAL;
	}
	int rc = inbox_init(&w->inbox, &w->loop, w);
	if (rc < 0) {
		uv_loop_close(&w->loop);
		config_unref(cfg);
		return rc;
	}
	uv_timer_init(&w->loop, &w->grace);
	w->grace.data = w;
	uv_timer_init(&w->loop, &w->heartbeat_timer);
	w->heartbeat_timer.data = w;
	w->loadavg_fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	w->ncpu = ncpu > 0 ? (unsigned)ncpu : 1;
	w->crowd_epoch = 1;
	w->crowd_since = uv_hrtime();
	/* Test only: spin whatever the machine's load, so that a test of
	 * when the loop spins does not depend on it. */
	const char *any = getenv("PORTER_TEST_SPIN_ANY_LOAD");
	w->spin_any_load = any && strcmp(any, "1") == 0;
	uv_idle_init(&w->loop, &w->spin);
	w->spin.data = w;
	uv_check_init(&w->loop, &w->spin_check);
	w->spin_check.data = w;
	uv_check_start(&w->spin_check, on_spin_check);
	uv_idle_init(&w->loop, &w->turns_idle);
	w->turns_idle.data = w;
	/* Neither keeps the loop alive on its own. */
	uv_unref((uv_handle_t *)&w->spin_check);
	uv_unref((uv_handle_t *)&w->spin);
	if (heartbeat_ms)
		uv_timer_start(&w->heartbeat_timer, on_heartbeat, 0, heartbeat_ms);
	w->turn_cpu = loopcpu_start(&w->loop, (int)index);
	fwd_worker_init(w);
	rc = cancel_worker_init(w);
	if (rc < 0)
		return rc; /* start-up fails; the process exits */
	rc = db_worker_init(w);
	if (rc < 0)
		return rc;
	rc = fsstream_worker_init(w);
	if (rc < 0)
		return rc;
	/* Without it the worker still serves everything but HTTP. */
	w->http = http_worker_new(w);
	if (!w->http)
		log_error("worker %u: HTTP unavailable (libcurl multi handle not created)", index);
	return 0;
}

int worker_start(worker *w)
{
	return uv_thread_create(&w->thread, thread_main, w) < 0 ? PORTER_E_INTERNAL : 0;
}

int worker_handoff(worker *w, int fd, const clients_peer *peer, clients_acct *acct)
{
	handoff_msg *h = malloc(sizeof(*h));
	if (!h)
		return PORTER_E_NOMEM;
	h->base.run = handoff_run;
	h->base.drop = handoff_drop;
	h->fd = fd;
	h->peer = *peer;
	h->acct = acct;
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

int worker_post_config(worker *w, config *cfg)
{
	config_msg *m = malloc(sizeof(*m));
	if (!m)
		return PORTER_E_NOMEM;
	m->base.run = config_run;
	m->base.drop = config_drop;
	m->cfg = config_ref(cfg);
	int rc = inbox_push(&w->inbox, &m->base);
	if (rc < 0)
		config_drop(&m->base);
	return rc;
}

int worker_post_stall(worker *w, unsigned ms)
{
	stall_msg *m = malloc(sizeof(*m));
	if (!m)
		return PORTER_E_NOMEM;
	m->base.run = stall_run;
	m->base.drop = plain_drop;
	m->ms = ms;
	int rc = inbox_push(&w->inbox, &m->base);
	if (rc < 0)
		free(m);
	return rc;
}

int worker_join(worker *w)
{
	uv_thread_join(&w->thread);
	return w->loop_close_rc;
}

void worker_destroy(worker *w)
{
	inbox_destroy(&w->inbox);
	free(w->pack_buf);
	htab_free(&w->turn_uids);
	w->pack_buf = NULL;
}
