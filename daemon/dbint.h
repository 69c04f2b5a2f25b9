/*
 * dbint - the types the db modules share, private to them: one database
 * operation (dbop), one query sent in a pipeline (pent), one PostgreSQL
 * connection (dbc), one pool (pool) and the per-worker state (db_worker).
 *
 * Which module does what with them:
 *   db.c       sessions and streams, dispatch, stopping, forwarding between
 *              workers, sweeping, the worker's part (db.h)
 *   dbop.c     an operation's lifetime and its reply (dbop.h)
 *   dbresult.c PGresults into the reply's DbResults (dbresult.h)
 *   dbdiag.c   an error's fields and the notices, bounded (dbdiag.h)
 *   dbconn.c   one connection: connecting (async DNS), polling, timers,
 *              server-side cancel, closing (dbconn.h)
 *   dbdrain.c  an abandoned query's results, discarded in bounded turns
 *              (dbdrain.h)
 *   dbquery.c  queries outside a pipeline: simple, with parameters,
 *              streamed row by row (dbquery.h)
 *   dbpipe.c   pipelined pooled queries: segments and sync points,
 *              prepared statements, retries (dbpipe.h)
 *   dbpool.c   pools of connections per uid and conninfo (dbpool.h)
 *   dblat.c    how long each statement takes on a pool (dblat.h)
 *
 * Loop affinity: everything here belongs to one worker's loop thread (the
 * worker whose db_worker it hangs off); nothing is locked.
 */
#ifndef PORTER_DBINT_H
#define PORTER_DBINT_H

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <sys/types.h>

#include "db.h"
#include "dblat.h"
#include "dbstmt.h"
#include "clients.h"
#include "inbox.h"
#include "list.h"
#include "porter.pb-c.h"
#include "req.h"
#include "worker.h"

/* How long a connection may take to finish a cancelled query before it is
 * given up as broken. */
#define DRAIN_MS 5000
/* Pooled queries sent ahead on one connection in pipeline mode. */
#define PIPE_DEPTH 8

typedef struct dbc dbc;
typedef struct pool pool;

/* What a dbop asks for. */
enum op_kind {
	OP_OPEN,  /* DbOpen: connect a session */
	OP_QUERY, /* DbQuery */
	OP_FETCH, /* DbFetch: next chunk of a stream */
	OP_CLOSE, /* DbClose */
	OP_RESET, /* internal: reset a pooled connection before reuse */
};

/*
 * One database operation: a req (of a connection, a batch member, or run
 * for another worker through fwd.h) or an internal step. Owned by the db modules until
 * dbop_reply/dbop_fail frees it.
 */
/* Entries of a dbop's arrays kept in the op itself. */
#define DBOP_COLS0 4
#define DBOP_RESULTS0 4
#define DBOP_PGS0 4

typedef struct dbop {
	list link; /* in a session queue or a pool's waiters */
	db_worker *dw;
	enum op_kind kind;
	req *r;                   /* its request; NULL for an internal step */
	Porter__V1__Request *msg; /* r->msg (owned by r); NULL for internal steps */
	uid_t uid;                /* client identity (r->uid, r->instance) */
	uint64_t inst;
	uint64_t deadline; /* uv_now() ms */
	int queued;        /* on `link` */
	dbc *c;            /* connection running it */
	/* Gathered results. */
	Porter__V1__DbResult **results;
	size_t n_results, cap_results;
	PGresult **pgs; /* results whose memory the replies point into */
	size_t n_pgs, cap_pgs;
	/* The first result, its first columns, its first row's pointer and
	 * the arrays' first entries live in the op (dbresult.c): a one-row
	 * SELECT took six allocations, and their frees, for them. */
	Porter__V1__DbResult result0;
	Porter__V1__DbColumn cols0[DBOP_COLS0];
	Porter__V1__DbColumn *colp0[DBOP_COLS0];
	Porter__V1__DbRow *rows0[1];
	Porter__V1__DbResult *results0[DBOP_RESULTS0];
	PGresult *pgs0[DBOP_PGS0];
	size_t bytes;      /* rough size of the reply so far */
	int too_large;     /* rows dropped: the reply would not fit a frame */
	struct pent *pent; /* its entry while sent in a pipeline */
	int chunk_rows;    /* streaming: rows per chunk, 0 when not */
	int no_cache;      /* run unnamed: its cached statement went stale */
	int retries;       /* times re-sent after failing before it ran */
	/* Pooled queries: the statement's key in its pool's latencies (0:
	 * not a pooled query), whether they know it to be fast (only then
	 * may it share a pipeline), and when it was sent outside one. */
	uint64_t lat_hash;
	int fast;
	int lane; /* fast, or fast in some of its last runs: may use the fast lane */
	uint64_t sent_ms;
	/* First error, if any. */
	int err;
	char *err_msg, *err_state, *err_detail, *err_hint;
	/* What the server said besides rows (dbdiag.h): the first error's
	 * other fields (owned, or NULL) and the notices kept for the reply,
	 * with their size and how many were dropped. */
	Porter__V1__ErrorDetail *err_fields;
	Porter__V1__DbNotice **notices;
	size_t n_notices, notice_bytes;
	uint32_t notices_dropped;
} dbop;

/* One query sent in a pipeline. `op` is NULL once its requester was
 * answered early (timeout, cancel): its results are then discarded. */
typedef struct pent {
	list link; /* dbc.pipe, then dbc.held once its results are in */
	dbop *op;
	/* Result sets sent ahead of the query's own in the same sync: a
	 * DEALLOCATE of an evicted statement and/or the Parse of `stmt`. */
	int lead;
	int prep;                /* the last lead result is the Parse of `stmt` */
	char stmt[DBSTMT_NAME];  /* cached statement executed, or "" */
	int retry;               /* failed before running: run the op again unnamed */
	int exposed;             /* in the pipeline while a cancel meant for
				  * another query was on its way */
	char stale[DBSTMT_NAME]; /* for the retry to DEALLOCATE, or "" */
	int reset;               /* no op: the reset between client processes,
				  * in a segment of its own (dbpipe.c) */
	int unsent;              /* gathered for the open segment, not yet
				  * handed to libpq (dbpipe.c) */
} pent;

/* Lifecycle of one PostgreSQL connection. */
enum dbc_state {
	DBC_RESOLVING,  /* host name being resolved on the thread pool */
	DBC_CONNECTING, /* PQconnectPoll handshake in progress */
	DBC_READY,      /* connected, nothing running */
	DBC_QUERY,      /* a query runs; cur is NULL while an abandoned query drains */
	DBC_PAUSED,     /* a streamed result waits for the client's DbFetch */
	DBC_BROKEN,     /* unusable (a session answers errors until closed) */
	DBC_CLOSING,    /* handles closing; freed when the last one has */
};

struct dbc {
	list link;  /* dw->sessions, or pool->conns */
	list ilink; /* pool->idle while idle in a pool */
	list slink; /* dw->streams while a stream is open */
	db_worker *dw;
	enum dbc_state state;
	PGconn *pg;
	char *conninfo;  /* owned; never logged unmasked */
	uv_poll_t *poll; /* heap; NULL when none */
	int poll_fd;
	int poll_events;    /* what `poll` watches now */
	int open_polls;     /* poll handles not yet called back closed */
	uv_timer_t timer;   /* connect, query or drain deadline */
	uint64_t timer_due; /* uv_now() ms the deadline is due; 0: none */
	uint64_t timer_set; /* when the running timer fires; 0: not running */
	int timer_open;
	uv_getaddrinfo_t *gai; /* pending resolution, or NULL */
	/* A PQconnectPoll step that may derive keys, run on the thread pool
	 * (dbstep.c): waiting for a slot on step_link, or running. Nothing
	 * on the loop touches `pg` while it runs. */
	uv_work_t step;
	list step_link;                    /* dw->step_wait while step_waiting, then
					    * dw->step_run while stepping */
	uint64_t step_since;               /* uv_now() ms the step started running */
	int step_long;                     /* it gave its slot up (DBSTEP_LONG_MS) */
	int step_waiting;                  /* on dw->step_wait */
	int stepping;                      /* on a pool thread; the dbc is not freed before */
	int step_nosock;                   /* the step was a retry for want of a socket */
	PostgresPollingStatusType step_st; /* what the step's PQconnectPoll said */
	char hostaddr[INET6_ADDRSTRLEN];
	dbop *cur;    /* the operation running, or NULL */
	list queue;   /* dbop.link waiting for this session */
	int flushing; /* PQflush returned 1: wait for write-ready */
	/* Pipeline mode (pooled connections): queries sent ahead, each with
	 * its own sync point, answered in order. cur is the head's op. */
	int pipelined; /* PQenterPipelineMode is on */
	/* PQsetSingleRowMode was used and no query has been sent outside a
	 * pipeline since: libpq 15 clears single-row mode only when it starts
	 * a query outside pipeline mode, so a pipeline entered now would
	 * return its first result row by row. */
	int single_row_sticky;
	list pipe; /* struct pent, oldest first */
	unsigned npipe;
	list held;       /* pents whose results are in, awaiting their sync */
	unsigned open_n; /* pents sent or gathered since the last Sync */
	list open_link;  /* dw->open while the open segment is to be closed
			  * at the end of the loop turn (dbpipe.c) */
	int send_failed; /* libpq refused a gathered query: broken at the sync */
	int seg_bad;     /* a query of the segment being received failed */
	/* Session. */
	uint64_t id; /* 0 for pooled connections */
	uid_t uid;
	uint64_t inst;
	uint64_t last_used;  /* uv_now() */
	uint64_t head_since; /* uv_now() when the pipeline's head was sent or
			      * became the head */
	/* Pool. */
	pool *pool;
	int in_idle;
	int needs_reset; /* ran something that may leave session state */
	int warm;        /* ran a query: the backend's caches are loaded */
	/* Pooled: the client instance whose query was sent last, so a query
	 * of another process of the same uid runs after a reset. */
	uint64_t last_inst;
	int has_last;
	int cancelling;     /* PQcancel jobs for this connection (dbcancel.h) */
	int after_cancel;   /* finished a query while cancelling: resume when done */
	dbstmt_cache stmts; /* pooled: statements prepared on this connection */
	clients_acct *acct; /* the uid it counts against (one reference); or NULL */
	/* Stream. */
	uint64_t stream_id;   /* 0 when no stream is open */
	int stream_cols_sent; /* columns went out in the first chunk */
	int stream_chunk;     /* rows per chunk */
	uint64_t drain_deadline;
	/* Draining an abandoned query with results left for a later turn
	 * (dbdrain.h): on dw->drains, its socket not watched meanwhile. */
	list dlink;
	int drain_listed;
	unsigned drained; /* results discarded since the query was abandoned */
};

/* The connections of one client uid to one conninfo: a pooled connection
 * never serves two uids, so no session state, temp table or pipeline
 * segment is ever shared between them. */
struct pool {
	list link;      /* dw->pools */
	char *conninfo; /* owned; the key, with uid */
	uid_t uid;
	/* config.generation the conninfo was allowed by (0: none yet); not the
	 * config's address, which a later generation can be given. */
	uint64_t checked;
	list conns; /* every dbc of the pool */
	list idle;  /* dbc.ilink, most recently used last */
	unsigned total;
	list waiters; /* dbop.link */
	dblat lat;    /* how long its statements take (dblat.h) */
};

/* Pooled streams reclaimed for idleness lately, so that their owner's
 * next read says so rather than "no such stream". A uid keeps at most
 * RECLAIMED_PER_UID of them (its own oldest make room for its newest), so
 * another uid's reclaims cannot push a uid's out while fewer than
 * RECLAIMED_KEPT / RECLAIMED_PER_UID uids have any. */
#define RECLAIMED_KEPT 64
#define RECLAIMED_PER_UID 8

struct db_worker {
	worker *w;
	struct {
		uint64_t id; /* 0: free */
		uid_t uid;
		uint64_t seq; /* order of reclaiming: lower is older */
	} reclaimed[RECLAIMED_KEPT];
	uint64_t reclaimed_seq;
	list sessions;
	list streams;
	list pools;
	list open;              /* dbc.open_link: segments to close at the end of the turn */
	uv_check_t seg_check;   /* end of each loop turn: syncs open segments */
	list step_wait;         /* dbc.step_link: connect steps waiting for a slot */
	unsigned steps_running; /* connect steps on the thread pool (DBSTEP_SLOTS) */
	list step_run;          /* dbc.step_link: connect steps on the thread pool */
	unsigned steps_long;    /* of those, gone long (DBSTEP_LONG_SLOTS) */
	list drains;            /* dbc.dlink: drains waiting for a turn (dbdrain.h) */
	uv_idle_t drain_idle;   /* runs those turns; active while drains is not empty */
	unsigned n_sessions;
	unsigned cancels; /* PQcancel jobs not over yet (dbcancel.h) */
	uv_timer_t sweep;
	int live; /* dbc not yet freed, plus the worker's handles */
	int closing;
};

/* The worker loop's clock, in ms (uv_now). */
static inline uint64_t db_now_ms(db_worker *dw)
{
	return uv_now(&dw->w->loop);
}

/* Frees `dw` once it is closing and nothing of it is live any more. */
void db_maybe_free(db_worker *dw);

#endif
