/*
 * conn - one client connection on a worker loop: reads frames, enforces the
 * per-connection limits and dispatches requests; its replies are written
 * by connout.
 *
 * Owned by one worker loop; not thread safe. A conn is freed only in the
 * close callback of its last handle; code running inside one of its
 * callbacks may call conn_close() and must not touch the conn afterwards
 * except through the `state` check.
 *
 * A reply never runs more of its connection than the write: a socket that
 * fails under it is closed from the connection's timer (conn_close_soon),
 * and frames left unread while the connection was at max-inflight are
 * taken up from the timer too. Services answer requests from inside
 * their own walks (a sweep over queued queries or transfers, a queue
 * failed whole); closing the client there would cancel its other
 * requests, and a frame read there would start or cancel others, taking
 * entries off the list being walked (freed under the walk, or leaving
 * it walking a node that left the list).
 */
#ifndef PORTER_CONN_H
#define PORTER_CONN_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "clients.h"
#include "connout.h"
#include "frame.h"
#include "htab.h"
#include "list.h"
#include "porter.pb-c.h"
#include "worker.h"

struct worker;

enum conn_state {
	CONN_HELLO,    /* accepted; only a Hello is accepted, small frame limit */
	CONN_READY,    /* Hello done: requests flow, several may be in flight */
	CONN_DRAINING, /* no more reads; closes once in-flight replies are sent */
	CONN_CLOSING,  /* handles closing; freed in the last close callback */
};

typedef struct conn {
	struct worker *w;
	list link;       /* in w->conns */
	uint64_t serial; /* for logs */
	enum conn_state state;
	uv_pipe_t pipe;
	uv_timer_t timer;      /* frame stall, idle, drain bound */
	int open_handles;      /* closed handles still to call back */
	int conn_slot_lingers; /* its CLIENTS_CONNS slot went to its lingering
				* socket (connlinger.h): not given back at free */
	frame_reader rd;
	int reading;           /* uv_read_start is active */
	int processing;        /* inside process_frames (no re-entry) */
	int flush_close;       /* close_after_flush has begun */
	int partial;           /* a frame has begun but not ended */
	uint64_t partial_from; /* uv_now() of the partial frame's first bytes */
	int yielded;           /* its turn's budget (or the worker's) was spent
				* with whole frames left, or on the bytes of one
				* large frame: reading stopped, and it waits in
				* w->turns for the loop to go round */
	list turn_link;        /* while it waits for a turn: in w->turns (or
				* the list conn_run_turns serves) when it is
				* its uid's first waiting connection, else in
				* that one's turn_next; else empty */
	list turn_next;        /* the uid's first waiting connection: its
				* uid's others, oldest first */
	htab_node turn_node;   /* in w->turn_uids while turn_hashed */
	int turn_first;        /* its uid's first waiting connection */
	int turn_hashed;       /* turn_node is in w->turn_uids (out of memory:
				* a first connection that is not found) */
	int turn_granted;      /* given its turn from w->turns: it processes
				* its next read whatever the worker's budget */
	int read_deferred;     /* on_alloc declined to read: the worker's turn
				* was spent (on_read then yields) */
	size_t read_turn;      /* bytes read since the connection last yielded */
	int peeked;            /* the large frame in progress was checked */
	int discard_paused;    /* reading a refused frame's rest is paused
				* until its uid's pace allows (the timer
				* resumes it) */
	int idle_armed;        /* the timer runs for the idle limit (on_timer
				* re-checks it against idle_from and inflight) */
	uint64_t idle_from;    /* uv_now() of the last frame or reply */
	clients_peer peer;     /* peer credentials and groups, taken at accept */
	uid_t uid;             /* peer.uid and peer.pid, where services read them */
	pid_t pid;
	uint64_t client_instance; /* from Hello: names the client process */
	uint32_t inflight;        /* requests dispatched and not yet answered */
	clients_acct *acct;       /* the uid's counters; one reference and one
				   * CLIENTS_CONNS held, given back at free */
	size_t in_counted;        /* read-buffer bytes counted in acct */
	int close_due;            /* conn_close_soon: nothing more is read or
				   * written; the timer (0 ms) closes it */
	uint64_t out_counted;     /* bytes of queued writes counted in the
				   * uid's buffered bytes and the global
				   * output (connout) */
	int out_forgotten;        /* closing: out_counted was given back at
				   * once (conn_out_forget), not write by
				   * write as the queue is cancelled */
	unsigned out_writes;      /* uv_writes not yet called back */
	uint8_t *out_held;        /* owned: small replies packed while a
				   * write is in flight, sent as one write
				   * when it ends (connout) */
	size_t out_held_len, out_held_cap;
	uv_shutdown_t shutdown; /* close_after_flush's; the conn outlives
				 * it (its callback runs before the pipe's
				 * close callback) */
	list reqs;              /* struct req.link, in-flight */

	/* The crowd periods it sent frames in (worker_saw_client), so that
	 * its close takes it out of them (worker_lost_client). */
	worker_crowd_mark crowd_mark;
} conn;

/* Starts serving `fd` on worker `w` for `peer` (copied). Takes over
 * `acct` (NULL is fine): a reference to the peer's uid counters with one
 * connection counted, given back when the conn is freed (or at once on
 * failure). Returns 0, or <0 (fd closed). */
int conn_create(struct worker *w, int fd, const clients_peer *peer, clients_acct *acct);

/*
 * Stops reading and closes once every in-flight reply has been written (or
 * the worker's grace timer forces it). Used for shutdown.
 */
void conn_drain(conn *c);

/*
 * The shutdown grace is over: stops what is in flight with replies saying
 * PORTER_E_SHUTDOWN (work that cannot stop early is abandoned), then closes
 * once those replies are written.
 */
void conn_abort(conn *c);

/*
 * The peer is no longer allowed (a reload changed allow-uid/allow-gid):
 * tells the client so (PORTER_E_DENIED, request id 0, which libporter
 * reports as the result of its current or next call), cancels what is in
 * flight without answering it, and closes once that frame is written. A
 * connection already draining or closing is left to finish.
 */
void conn_deny(conn *c);

/* Closes now: in-flight requests are detached and cancelled. Idempotent.
 * Not from inside a reply (conn_close_soon). */
void conn_close(conn *c);

/* Closes `c` from its timer, once the code running now has returned: a
 * reply's write failed, or the connection went over an output limit.
 * Nothing is read or written meanwhile, and its requests stay attached
 * until then (so a service's walk never sees them cancelled under it).
 * Idempotent; nothing once closing. */
void conn_close_soon(conn *c);

/* Called by req when a request of `c` has been answered. Runs no frame:
 * one paused at max-inflight resumes in the loop's next turn. */
void conn_req_done(conn *c);

/*
 * Gives the connections waiting in w->turns their next turn, one uid's
 * after another's (each uid's oldest first, then the uid goes to the back),
 * until the worker's budget for this turn of the loop is spent; the rest
 * wait for the next. A uid's thousand waiting connections delay another
 * uid's one by about a turn's worth, not a thousand connections' turns.
 * Called once per turn of the loop (worker's idle handle) while w->turns
 * is not empty.
 *
 * Why a list and not a 0 ms timer per connection: libuv (before 1.48)
 * runs a timer restarted at 0 ms from its own callback again in the same
 * pass over the timers, so a connection that yielded from its timer was
 * served on at once, and all the connections whose timers were due ran in
 * one turn: a turn was not bounded by anything.
 */
void conn_run_turns(struct worker *w);

/* Starts a new turn of the loop's budget (what all its connections may
 * process before the loop serves the rest: timers, other sockets). Called
 * once per turn of the loop. */
void conn_turn_begin(struct worker *w);

#endif
