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

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "config.h"
#include "htab.h"
#include "inbox.h"
#include "list.h"
#include "stats.h"

struct server;
struct conn;
struct clients_peer;
struct clients_acct;
struct cancel_state;
struct http_worker;

/* Which crowd periods a client connection was counted in
 * (worker_saw_client): the latest and the one before it; 0 for none. */
typedef struct worker_crowd_mark {
	unsigned now, prev;
} worker_crowd_mark;

/* Lifecycle of a worker, as seen from its own thread. */
enum worker_state {
	WORKER_RUNNING,  /* serving connections */
	WORKER_DRAINING, /* stop received: no new work, in-flight may finish */
	WORKER_CLOSING,  /* every handle is being closed; the loop is ending */
};

typedef struct worker {
	unsigned index;
	struct server *srv; /* not owned */
	const config *cfg;  /* one reference held; read-only; swapped only
			     * on the loop thread (worker_post_config) */
	uv_loop_t loop;
	uv_thread_t thread;
	inbox inbox;
	enum worker_state state;
	list conns; /* struct conn.link */
	/* Connections served in turns (conn.h): those whose next turn is
	 * due, and the idle handle that gives them their turns (keeping the
	 * poll from blocking meanwhile); what all connections processed in
	 * this turn of the loop, against the worker's budget. */
	list turns;           /* struct conn.turn_link: the first waiting
			       * connection of each uid (conn.h) */
	htab turn_uids;       /* struct conn.turn_node: the same, by uid */
	uv_idle_t turns_idle; /* active while `turns` is not empty */
	unsigned turn_frames; /* frames handled since the turn began */
	size_t turn_bytes;    /* bytes of frames handled and read since then */
	uv_timer_t grace;     /* bounds DRAINING */
	int aborting;         /* grace over: in-flight work was stopped */
	stats_counters counters;
	struct cancel_state *cancel; /* Cancel fan-in and tombstones */
	uint64_t next_conn_serial;
	int loop_close_rc; /* uv_loop_close() result, set at thread end */
	/* Liveness for the systemd watchdog: a timer on this loop bumps the
	 * counter; the acceptor pings systemd only when every worker's counter
	 * moved, so a stalled loop stops the pings. */
	uv_timer_t heartbeat_timer;
	unsigned heartbeat_ms; /* 0: watchdog off, no timer */
	_Atomic uint64_t heartbeat;
	/* Busy polling: after I/O the loop polls without blocking for
	 * cfg->busy_poll_us (the idle handle keeps its timeout at 0), so the
	 * next message is picked up without a wake-up. */
	uv_idle_t spin;
	uv_check_t spin_check; /* after each poll: extends or ends the spin */
	uint64_t spin_until;   /* uv_hrtime() ns */
	uint64_t spin_period;  /* when the run queue was last looked at */
	int cpus_busy;         /* then, other runnable threads filled the CPUs */
	int loadavg_fd;        /* /proc/loadavg, or -1 (then always spin) */
	unsigned ncpu;
	int io_seen; /* set by worker_saw_io() since the last check */
	/* Client connections that sent a frame in the current and the
	 * previous crowd period (worker_saw_client): with as many as CPUs,
	 * the loop does not spin. A connection counts once per period: it
	 * is marked with the period's number. */
	unsigned crowd_epoch; /* the current period's number; never 0 */
	unsigned crowd_now, crowd_prev;
	uint64_t crowd_since; /* uv_hrtime() ns the current period began */
	int spin_any_load;    /* test only: the run queue is not looked at */
	/* Requests run on other workers (fwd.h). */
	list fwd_waits;       /* here, waiting for a reply from elsewhere */
	list fwd_remote;      /* run here for other workers */
	uint64_t fwd_next;    /* names the next one sent */
	struct db_worker *db; /* database sessions, pools, streams (db.h) */
	/* Replies are packed here and written from here; only what the
	 * socket does not take at once is copied out (conn_send). */
	uint8_t *pack_buf; /* owned */
	size_t pack_cap;
	struct http_worker *http;          /* owned: HTTP transfers (http.h); NULL if unavailable */
	struct fsstream_table *fs_streams; /* owned: open file streams (fsstream.h) */
	struct fswatch_worker *fs_watch;   /* owned: inotify instances, made on first watch
					    * (fswatch.h); NULL before */
	struct fsfds_table *fs_fds;        /* owned: descriptors passed per connection
					    * (fsfds.h), made on the first; NULL before */
	struct loopcpu *turn_cpu;          /* owned: test instrument (loopcpu.h); NULL when off */
	struct connlinger_table *linger;   /* owned: sockets of closed connections still
					    * holding replies (connlinger.h), made on
					    * the first; NULL before */
} worker;

/*
 * Sets up `w` (loop, inbox, timers) on the calling thread. `w` takes one
 * reference to `cfg` (a config_alloc()ed generation) and drops it when its
 * thread ends. `heartbeat_ms` > 0 starts the watchdog heartbeat timer.
 * 0 or <0.
 */
int worker_init(worker *w, struct server *srv, config *cfg, unsigned index, unsigned heartbeat_ms);

/* Notes that `w`'s loop handled client, database or HTTP I/O, so it keeps
 * polling for a while instead of blocking. Loop thread. */
static inline void worker_saw_io(worker *w)
{
	w->io_seen = 1;
}

/* Notes that a client connection of `w` sent something: I/O, as
 * worker_saw_io, and one more client in conversation unless `*mark` (the
 * connection's own, zeroed when new) says it was counted in this period
 * already. Loop thread. */
static inline void worker_saw_client(worker *w, worker_crowd_mark *mark)
{
	w->io_seen = 1;
	if (mark->now != w->crowd_epoch) {
		mark->prev = mark->now;
		mark->now = w->crowd_epoch;
		w->crowd_now++;
	}
}

/* Connection `mark`'s is closing: it no longer counts in the crowd of the
 * periods it was counted in. A client that is gone competes for no CPU,
 * and counting it for up to two periods after its close stopped the
 * spin for the next connection of the same thread (a client that
 * reconnects, a pool of short-lived threads): every call then paid a
 * wake-up. Loop thread. */
static inline void worker_lost_client(worker *w, const worker_crowd_mark *mark)
{
	/* The epoch skips 0 when it wraps. */
	unsigned before = w->crowd_epoch == 1 ? UINT_MAX : w->crowd_epoch - 1;
	if (mark->now == w->crowd_epoch && w->crowd_now)
		w->crowd_now--;
	if ((mark->now == before || mark->prev == before) && w->crowd_prev)
		w->crowd_prev--;
}

/* Notes that what `w`'s loop just did leaves the client busy on its own
 * for longer than a spin would last (porterd passed it a large file to
 * read): the I/O seen so far in this turn of the loop starts no spin, and
 * one running ends at the next check, so that it does not take a CPU from
 * the client's copy. I/O seen later starts one as usual. Loop thread. */
static inline void worker_no_spin(worker *w)
{
	w->io_seen = 0;
	w->spin_until = 0;
}

/* Starts the worker's thread. 0 or <0. */
int worker_start(worker *w);

/*
 * Hands an accepted connection to `w`. Any thread. Returns 0 (the worker
 * owns `fd` and `acct`, a reference with one connection counted), or <0
 * when the worker is stopping (the caller closes `fd` and gives `acct`
 * back).
 */
int worker_handoff(worker *w, int fd, const struct clients_peer *peer, struct clients_acct *acct);

/* Asks `w` to drain and stop. Any thread; idempotent. */
void worker_post_stop(worker *w);

/*
 * Hands `w` a new configuration generation (SIGHUP reload): the worker
 * swaps its pointer on its own loop thread, drops its reference to the
 * old one, and denies every connection whose peer the new allow-lists no
 * longer admit (conn_deny). Takes one reference to `cfg` itself. Any thread. Returns 0, or
 * <0 when the worker is stopping (nothing to do then).
 */
int worker_post_config(worker *w, config *cfg);

/*
 * Test hook (PORTER_TEST_HOOKS=1 only): blocks `w`'s loop thread for `ms`
 * milliseconds, as a stuck handler would, so tests can watch the watchdog
 * pings stop. Any thread. 0 or <0.
 */
int worker_post_stall(worker *w, unsigned ms);

/*
 * Waits for the thread to end; returns the loop's uv_loop_close() result.
 * The inbox stays valid: other workers may still push to it (forwarded
 * replies, Cancel answers) until they have ended too.
 */
int worker_join(worker *w);

/* Frees what outlives the thread (the inbox's mutex). Only once every
 * worker has been joined, since any of them may push to any inbox. */
void worker_destroy(worker *w);

/* Puts a connection's `link` (struct conn.turn_link) in w->turns, unless
 * it is there already, so that it gets a turn once the loop has gone
 * round. Loop thread. */
void worker_queue_turn(worker *w, list *link);

/* Called by conn when a connection has been freed. Loop thread. */
void worker_conn_freed(worker *w);

#endif
