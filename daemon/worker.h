/*
 * worker - one thread running one uv loop, and everything that loop owns:
 * its client connections, its timers, and (as they are added) its database
 * connections and its libcurl multi handle.
 *
 * Everything in a worker is touched by its own thread alone, except the
 * inbox (any thread may push) and the counters (any thread may read).
 */
#ifndef PORTER_WORKER_H
#define PORTER_WORKER_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "config.h"
#include "inbox.h"
#include "list.h"
#include "stats.h"

struct server;
struct conn;

/* Lifecycle of a worker, as seen from its own thread. */
enum worker_state {
	WORKER_RUNNING,  /* serving connections */
	WORKER_DRAINING, /* stop received: no new work, in-flight may finish */
	WORKER_CLOSING,  /* every handle is being closed; the loop is ending */
};

typedef struct worker {
	unsigned index;
	struct server *srv;    /* not owned */
	const config *cfg;     /* not owned; read-only */
	uv_loop_t loop;
	uv_thread_t thread;
	inbox inbox;
	enum worker_state state;
	list conns;            /* struct conn.link */
	uv_timer_t grace;      /* bounds DRAINING */
	stats_counters counters;
	uint64_t next_conn_serial;
	int loop_close_rc;     /* uv_loop_close() result, set at thread end */
	struct db_worker *db;  /* database sessions, pools, streams (db.h) */
} worker;

/* Sets up `w` (loop, inbox, timer) on the calling thread. 0 or <0. */
int worker_init(worker *w, struct server *srv, const config *cfg,
		unsigned index);

/* Starts the worker's thread. 0 or <0. */
int worker_start(worker *w);

/*
 * Hands an accepted connection to `w`. Any thread. Returns 0 (the worker
 * owns `fd`), or <0 when the worker is stopping (the caller closes `fd`).
 */
int worker_handoff(worker *w, int fd, uid_t uid, pid_t pid);

/* Asks `w` to drain and stop. Any thread; idempotent. */
void worker_post_stop(worker *w);

/* Waits for the thread to end; returns the loop's uv_loop_close() result. */
int worker_join(worker *w);

/* Called by conn when a connection has been freed. Loop thread. */
void worker_conn_freed(worker *w);

#endif
