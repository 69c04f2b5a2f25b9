/* db - PostgreSQL on the worker loops; see db.h. */
#include "db.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "clients.h"
#include "conn.h"
#include "dbpolicy.h"
#include "dbwire.h"
#include "dbstmt.h"
#include "log.h"
#include "porter_errors.h"
#include "server.h"
#include "worker.h"

/* How often queued deadlines, idle limits and vanished clients are checked. */
#define SWEEP_MS 100
/* How long a connection may take to finish a cancelled query before it is
 * given up as broken. */
#define DRAIN_MS 5000
/* Blocking PQcancel calls a worker may have on the shared thread pool at
 * once; beyond that a timed-out connection is closed instead, which also
 * ends the query (the server notices the closed socket). */
#define MAX_CANCELS 4
/* Pooled queries sent ahead on one connection in pipeline mode. */
#define PIPE_DEPTH 8
/* A pipelinable query joins a busy connection's pipeline holding fewer
 * than this many, rather than taking another connection: the server then
 * answers several per wake-up and per read, which on a few cores is worth
 * more than running them side by side. */
#define PIPE_SHARE 8
/* ...unless the query at its head has run this long already: it may be a
 * slow one, and what queues behind it waits for it. */
#define PIPE_HEAD_MS 2
/* Pipelined queries sent on one connection within one loop turn share one
 * sync point (a segment), up to this many: one write and one server-side
 * commit for all of them instead of one each. Their replies wait for the
 * segment's sync; if any query of a segment fails, the segment is rolled
 * back as a whole and each of its queries is run again alone, so a
 * query's outcome never depends on its neighbours. */
#define SEG_MAX 8
/* Requests waiting for one session. */
#define MAX_QUEUE 1024
/* Rows in one streamed chunk, at most, and its size bound. */
#define MAX_CHUNK_ROWS 100000
#define CHUNK_BYTES (4u << 20)

void db_mask_conninfo(const char *conninfo, char *out, size_t cap)
{
	dbpolicy_mask(conninfo, out, cap);
}

/* ---- per-worker state ---- */

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
 * One database operation, whichever way it arrived: a local req, a request
 * forwarded from another worker (answered through that worker's inbox), or
 * an internal step. Owned by the module until op_reply/op_fail frees it.
 */
typedef struct dbop {
	list link; /* in a session queue or a pool's waiters */
	db_worker *dw;
	enum op_kind kind;
	req *r;                   /* local request, or NULL */
	worker *from;             /* forwarded: the requesting worker */
	uint64_t token;           /* forwarded: names the request there */
	Porter__V1__Request *msg; /* r->msg, or owned when forwarded */
	uid_t uid;                /* client identity */
	uint64_t inst;
	uint64_t deadline; /* uv_now() ms */
	int queued;        /* on `link` */
	dbc *c;            /* connection running it */
	/* Gathered results. */
	Porter__V1__DbResult **results;
	size_t n_results, cap_results;
	PGresult **pgs; /* results whose memory the replies point into */
	size_t n_pgs, cap_pgs;
	size_t bytes;      /* rough size of the reply so far */
	int too_large;     /* rows dropped: the reply would not fit a frame */
	struct pent *pent; /* its entry while sent in a pipeline */
	int chunk_rows;    /* streaming: rows per chunk, 0 when not */
	list fwd_link;     /* forwarded: in dw->forwarded, so a cancel finds it */
	int no_cache;      /* run unnamed: its cached statement went stale */
	int retries;       /* times re-sent after failing before it ran */
	/* First error, if any. */
	int err;
	char *err_msg, *err_state, *err_detail, *err_hint;
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
	int poll_events;  /* what `poll` watches now */
	int open_polls;   /* poll handles not yet called back closed */
	uv_timer_t timer; /* connect, query or drain deadline */
	int timer_open;
	uv_getaddrinfo_t *gai; /* pending resolution, or NULL */
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
	unsigned open_n; /* pents sent since the last Sync */
	list open_link;  /* dw->open while open_n > 0 */
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
	/* Pooled: the client instance whose query was sent last, so a query
	 * of another process of the same uid runs after a reset. */
	uint64_t last_inst;
	int has_last;
	int cancelling;     /* PQcancel jobs for this connection on the thread pool */
	int after_cancel;   /* finished a query while cancelling: resume when done */
	dbstmt_cache stmts; /* pooled: statements prepared on this connection */
	clients_acct *acct; /* the uid it counts against (one reference); or NULL */
	/* Stream. */
	uint64_t stream_id;   /* 0 when no stream is open */
	int stream_cols_sent; /* columns went out in the first chunk */
	int stream_chunk;     /* rows per chunk */
	uint64_t drain_deadline;
};

/* The connections of one client uid to one conninfo: a pooled connection
 * never serves two uids, so no session state, temp table or pipeline
 * segment is ever shared between them. */
struct pool {
	list link;      /* dw->pools */
	char *conninfo; /* owned; the key, with uid */
	uid_t uid;
	const config *checked; /* the generation the conninfo was allowed by */
	list conns;            /* every dbc of the pool */
	list idle;             /* dbc.ilink, most recently used last */
	unsigned total;
	list waiters; /* dbop.link */
};

/* Pooled streams reclaimed for idleness lately, so that their owner's
 * next read says so rather than "no such stream". */
#define RECLAIMED_KEPT 64

struct db_worker {
	worker *w;
	struct {
		uint64_t id;
		uid_t uid;
	} reclaimed[RECLAIMED_KEPT];
	unsigned reclaimed_next;
	list sessions;
	list streams;
	list pools;
	list waits;           /* fwd_wait.link: requests forwarded from here */
	list forwarded;       /* dbop.fwd_link: requests forwarded to here, running */
	list open;            /* dbc.open_link: connections with an unsynced segment */
	uv_check_t seg_check; /* end of each loop turn: syncs open segments */
	uint64_t next_token;
	unsigned n_sessions;
	unsigned cancels; /* PQcancel jobs on the thread pool */
	uv_timer_t sweep;
	int live; /* dbc not yet freed, plus the sweep timer */
	int closing;
};

static void pump(dbc *c);
static void pipe_pump(dbc *c);
static void update_poll(dbc *c);
static void dbc_broken(dbc *c, const char *why);
static void dbc_close(dbc *c);
static void dbc_start(dbc *c, dbop *op);
static void pool_release(dbc *c);
static void after_query(dbc *c);
static void pool_kick(pool *p);
static void dispatch(dbop *op);
static void dw_maybe_free(db_worker *dw);

static uint64_t now_ms(db_worker *dw)
{
	return uv_now(&dw->w->loop);
}

static uint64_t new_id(db_worker *dw)
{
	uint64_t rnd = 0;
	while ((rnd & 0xFFFFFFFFFFFFull) == 0) {
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = uv_hrtime() * 0x9E3779B97F4A7C15ull;
	}
	return ((uint64_t)dw->w->index << 48) | (rnd & 0xFFFFFFFFFFFFull);
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* A copy of server text `s` (NULL gives NULL) made safe to pass on: see
 * dbpolicy_clean. */
static char *clean_dup(const char *s)
{
	if (!s)
		return NULL;
	size_t cap = strlen(s) * 4 + 1; /* one escape is four bytes at most */
	char *out = malloc(cap);
	return out ? dbpolicy_clean(s, out, cap) : NULL;
}

/* ---- operations ---- */

/* Forgets what the op gathered (results, error), keeping the arrays. It
 * may then run again: a failed run's results did not happen. */
static void op_clear_results(dbop *op)
{
	for (size_t i = 0; i < op->n_results; i++) {
		Porter__V1__DbResult *dr = op->results[i];
		for (size_t j = 0; j < dr->n_rows; j++)
			free(dr->rows[j]);
		free(dr->rows);
		free(dr->columns); /* one block with the column structs */
		free(dr);
	}
	op->n_results = 0;
	for (size_t i = 0; i < op->n_pgs; i++)
		PQclear(op->pgs[i]);
	op->n_pgs = 0;
	op->bytes = 0;
	op->too_large = 0;
	op->err = 0;
	free(op->err_msg);
	free(op->err_state);
	free(op->err_detail);
	free(op->err_hint);
	op->err_msg = op->err_state = op->err_detail = op->err_hint = NULL;
}

static void op_free(dbop *op)
{
	op_clear_results(op);
	free(op->results);
	free(op->pgs);
	if (op->from && op->msg)
		porter__v1__request__free_unpacked(op->msg, NULL);
	if (op->from)
		list_remove(&op->fwd_link);
	free(op);
}

typedef struct back_msg {
	inbox_msg base;
	uint64_t token;
	size_t len;
	uint8_t buf[];
} back_msg;

static void back_run(void *owner, inbox_msg *m);
static void back_drop(inbox_msg *m)
{
	free(m);
}

/* Sends `resp` for `op` (to its req or back to the forwarding worker) and
 * frees `op`. */
static void op_reply(dbop *op, Porter__V1__Response *resp)
{
	if (op->queued) {
		list_remove(&op->link);
		op->queued = 0;
	}
	if (op->r) {
		op->r->cancel = NULL;
		op->r->op = NULL;
		req_reply(op->r, resp);
	} else if (op->from && !op->dw->closing) {
		resp->id = 0;
		size_t len = porter__v1__response__get_packed_size(resp);
		back_msg *b = malloc(sizeof(*b) + len);
		if (b) {
			b->base.run = back_run;
			b->base.drop = back_drop;
			b->token = op->token;
			b->len = porter__v1__response__pack(resp, b->buf);
			if (inbox_push(&op->from->inbox, &b->base) < 0)
				free(b);
		}
	}
	op_free(op);
}

static void op_fail_detail(dbop *op, int code, const char *sqlstate, const char *detail,
			   const char *hint, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static void op_fail_detail(dbop *op, int code, const char *sqlstate, const char *detail,
			   const char *hint, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* libpq messages end in a newline; the wire message does not. */
	size_t n = strlen(text);
	while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
		text[--n] = 0;
	/* Text from libpq and servers reaches the client as clean UTF-8. */
	char clean[1024];
	dbpolicy_clean(text, clean, sizeof(clean));
	memcpy(text, clean, strlen(clean) + 1);
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__ErrorDetail ed = PORTER__V1__ERROR_DETAIL__INIT;
	resp.status = code;
	resp.message = text;
	if (sqlstate || detail || hint) {
		ed.sqlstate = (char *)(sqlstate ? sqlstate : "");
		ed.detail = (char *)(detail ? detail : "");
		ed.hint = (char *)(hint ? hint : "");
		resp.error = &ed;
	}
	op_reply(op, &resp);
}

#define op_fail(op, code, ...) op_fail_detail(op, code, NULL, NULL, NULL, __VA_ARGS__)

/* Replies with the op's gathered results or its first error. */
static void op_finish(dbop *op, int more, uint64_t stream)
{
	if (op->err) {
		op_fail_detail(op, op->err, op->err_state, op->err_detail, op->err_hint, "%s",
			       op->err_msg ? op->err_msg : "database error");
		return;
	}
	if (op->too_large) {
		op_fail(op, PORTER_E_TOO_LARGE,
			"result larger than the frame limit; stream it (chunk_rows)");
		return;
	}
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__DbQueryReply qr = PORTER__V1__DB_QUERY_REPLY__INIT;
	qr.results = op->results;
	qr.n_results = op->n_results;
	qr.stream = more ? stream : 0;
	resp.more = more;
	resp.body_case = PORTER__V1__RESPONSE__BODY_DB_QUERY;
	resp.db_query = &qr;
	op_reply(op, &resp);
}

static void op_set_error(dbop *op, int code, const char *msg, const char *state, const char *detail,
			 const char *hint)
{
	if (op->err)
		return;
	op->err = code;
	op->err_msg = xstrdup(msg); /* cleaned by op_fail_detail */
	op->err_state = clean_dup(state);
	op->err_detail = clean_dup(detail);
	op->err_hint = clean_dup(hint);
}

static int keep_pg(dbop *op, PGresult *res)
{
	if (op->n_pgs == op->cap_pgs) {
		size_t cap = op->cap_pgs ? op->cap_pgs * 2 : 8;
		PGresult **p = realloc(op->pgs, cap * sizeof(*p));
		if (!p)
			return -1;
		op->pgs = p;
		op->cap_pgs = cap;
	}
	op->pgs[op->n_pgs++] = res;
	return 0;
}

static Porter__V1__DbResult *new_result(dbop *op, PGresult *res, int with_cols)
{
	Porter__V1__DbResult *dr = malloc(sizeof(*dr));
	if (!dr)
		return NULL;
	porter__v1__db_result__init(dr);
	int nf = with_cols ? PQnfields(res) : 0;
	if (nf > 0) {
		/* One block: the pointer array, then the structs. */
		void *blk = malloc(nf *
				   (sizeof(Porter__V1__DbColumn *) + sizeof(Porter__V1__DbColumn)));
		if (!blk) {
			free(dr);
			return NULL;
		}
		Porter__V1__DbColumn **ptrs = blk;
		Porter__V1__DbColumn *cols = (Porter__V1__DbColumn *)(ptrs + nf);
		for (int i = 0; i < nf; i++) {
			porter__v1__db_column__init(&cols[i]);
			cols[i].name = PQfname(res, i);
			cols[i].type_oid = PQftype(res, i);
			ptrs[i] = &cols[i];
		}
		dr->columns = ptrs;
		dr->n_columns = nf;
	}
	if (op->n_results == op->cap_results) {
		size_t cap = op->cap_results ? op->cap_results * 2 : 4;
		Porter__V1__DbResult **p = realloc(op->results, cap * sizeof(*p));
		if (!p) {
			free(dr->columns);
			free(dr);
			return NULL;
		}
		op->results = p;
		op->cap_results = cap;
	}
	op->results[op->n_results++] = dr;
	return dr;
}

static void set_tag(Porter__V1__DbResult *dr, PGresult *res)
{
	dr->command_tag = PQcmdStatus(res);
	const char *t = PQcmdTuples(res);
	dr->affected = t && t[0] ? strtoull(t, NULL, 10) : 0;
}

/* Appends the rows of `res` to `dr`. Their values point into `res`, which
 * the caller keeps alive with the op, or with `copy` are copied into the
 * row's own block (so `res` can be freed at once). */
static int add_rows(dbop *op, Porter__V1__DbResult *dr, PGresult *res, size_t frame_cap, int copy)
{
	int nt = PQntuples(res), nf = PQnfields(res);
	for (int t = 0; t < nt; t++) {
		if (op->bytes > frame_cap && !op->chunk_rows) {
			op->too_large = 1;
			return 0;
		}
		size_t data = 0;
		for (int i = 0; copy && i < nf; i++)
			data += (size_t)PQgetlength(res, t, i);
		Porter__V1__DbRow *row =
			malloc(sizeof(*row) + nf * (sizeof(ProtobufCBinaryData) + 1) + data);
		if (!row)
			return -1;
		porter__v1__db_row__init(row);
		ProtobufCBinaryData *vals = (ProtobufCBinaryData *)(row + 1);
		uint8_t *nulls = (uint8_t *)(vals + nf);
		uint8_t *at = nulls + nf;
		int any_null = 0;
		for (int i = 0; i < nf; i++) {
			nulls[i] = (uint8_t)PQgetisnull(res, t, i);
			any_null |= nulls[i];
			vals[i].len = nulls[i] ? 0 : (size_t)PQgetlength(res, t, i);
			vals[i].data = nulls[i] ? NULL : (uint8_t *)PQgetvalue(res, t, i);
			if (copy && vals[i].len) {
				memcpy(at, vals[i].data, vals[i].len);
				vals[i].data = at;
				at += vals[i].len;
			}
			op->bytes += vals[i].len + 3;
		}
		row->values = vals;
		row->n_values = nf;
		if (any_null) {
			row->nulls.data = nulls;
			row->nulls.len = nf;
		}
		op->bytes += 4 + nf;
		if (copy) /* the chunk bound is on memory held, not wire size */
			op->bytes += sizeof(*row) + nf * sizeof(ProtobufCBinaryData);
		if ((dr->n_rows & (dr->n_rows - 1)) == 0) {
			/* Grows at powers of two. */
			size_t cap = dr->n_rows ? dr->n_rows * 2 : 1;
			Porter__V1__DbRow **p = realloc(dr->rows, cap * sizeof(*p));
			if (!p) {
				free(row);
				return -1;
			}
			dr->rows = p;
		}
		dr->rows[dr->n_rows++] = row;
	}
	return 0;
}

/* ---- polling ---- */

static void on_poll_closed(uv_handle_t *h);
static void maybe_free(dbc *c);

static void drop_poll(dbc *c)
{
	if (!c->poll)
		return;
	/* uv_close unregisters the fd at once, so libpq may close or reuse
	 * it right after this. */
	uv_close((uv_handle_t *)c->poll, on_poll_closed);
	c->poll = NULL;
}

static void on_io(uv_poll_t *p, int status, int events);

/* Watches `fd` for `events` (0 stops watching). A different fd, or a fresh
 * one forced by the caller, gets a fresh handle: one uv_poll per fd, and
 * never a stale registration for a number libpq closed and reopened. */
static int watch(dbc *c, int fd, int events, int fresh)
{
	if (c->poll && (c->poll_fd != fd || fresh))
		drop_poll(c);
	if (fd < 0)
		return -1;
	/* uv_poll_start re-registers the fd even when nothing changed: two
	 * epoll_ctl calls per query saved. */
	if (c->poll && c->poll_events == events)
		return 0;
	if (!c->poll) {
		uv_poll_t *p = malloc(sizeof(*p));
		if (!p)
			return -1;
		if (uv_poll_init(&c->dw->w->loop, p, fd) < 0) {
			free(p);
			return -1;
		}
		p->data = c;
		c->poll = p;
		c->poll_fd = fd;
		c->poll_events = 0;
		c->open_polls++;
	}
	c->poll_events = events;
	if (events)
		uv_poll_start(c->poll, events, on_io);
	else
		uv_poll_stop(c->poll);
	return 0;
}

static void update_poll(dbc *c)
{
	int ev;
	switch (c->state) {
	case DBC_QUERY:
		ev = UV_READABLE | (c->flushing ? UV_WRITABLE : 0);
		break;
	case DBC_READY:
		/* Idle connections are watched too, so a server that went away
		 * (restart, idle timeout) is noticed before the next query. */
		ev = UV_READABLE;
		break;
	case DBC_PAUSED:
		/* Backpressure: unread rows stay in the socket, the server
		 * blocks once its send buffer fills. */
		ev = 0;
		break;
	default:
		return;
	}
	if (watch(c, PQsocket(c->pg), ev, 0) < 0)
		dbc_broken(c, "cannot watch the PostgreSQL socket");
}

static void arm_timer(dbc *c, uint64_t deadline);

/* ---- cancel ---- */

typedef struct cancel_job {
	uv_work_t work;
	db_worker *dw;
	dbc *c; /* kept alive until the job is done (dbc.cancelling) */
	PGcancel *pc;
	int ok;
	char err[256];
} cancel_job;

static void cancel_work(uv_work_t *wk)
{
	cancel_job *j = wk->data;
	j->ok = PQcancel(j->pc, j->err, sizeof(j->err));
}

static void cancel_done(uv_work_t *wk, int status)
{
	cancel_job *j = wk->data;
	if (status == 0 && !j->ok)
		log_warn("db: server-side cancel failed: %s", j->err);
	PQfreeCancel(j->pc);
	db_worker *dw = j->dw;
	dbc *c = j->c;
	free(j);
	c->cancelling--;
	if (c->cancelling == 0 && c->state == DBC_READY && c->after_cancel) {
		/* The server has the cancel now: whatever runs next on this
		 * connection is safe from it. */
		c->after_cancel = 0;
		after_query(c);
	}
	maybe_free(c);
	dw->cancels--;
	dw->live--;
	dw_maybe_free(dw);
}

/* Asks the server to cancel what `c` runs; PQcancel blocks (connects
 * and waits for the server), so it runs on the thread pool, a bounded
 * number at a time. 0, or -1 when no cancel could be sent. */
static int send_cancel(dbc *c)
{
	db_worker *dw = c->dw;
	if (!c->pg || dw->cancels >= MAX_CANCELS)
		return -1;
	PGcancel *pc = PQgetCancel(c->pg);
	cancel_job *j = pc ? calloc(1, sizeof(*j)) : NULL;
	if (!j) {
		if (pc)
			PQfreeCancel(pc);
		return -1;
	}
	j->dw = dw;
	j->c = c;
	j->pc = pc;
	j->work.data = j;
	if (uv_queue_work(&dw->w->loop, &j->work, cancel_work, cancel_done) < 0) {
		PQfreeCancel(pc);
		free(j);
		return -1;
	}
	c->cancelling++;
	/* The cancel reaches the backend some time later, possibly while it
	 * runs a query sent ahead behind the one it was meant for. */
	for (list *pos = c->pipe.next; pos != &c->pipe; pos = pos->next)
		if (pos != c->pipe.next)
			list_entry(pos, pent, link)->exposed = 1;
	dw->cancels++;
	dw->live++;
	return 0;
}

/*
 * Abandons the running query: asks the server to cancel it and lets the
 * connection drain the remaining results, bounded by DRAIN_MS. Returns 0,
 * or -1 when the connection had to be given up instead (the caller has
 * nothing to undo: it is broken then).
 */
static int abandon_query(dbc *c)
{
	c->cur = NULL;
	c->state = DBC_QUERY;
	if (c->stream_id) {
		list_remove(&c->slink);
		c->stream_id = 0;
	}
	db_worker *dw = c->dw;
	if (send_cancel(c) < 0) {
		dbc_broken(c, "query abandoned");
		return -1;
	}
	c->drain_deadline = now_ms(dw) + DRAIN_MS;
	arm_timer(c, c->drain_deadline);
	pump(c);
	return 0;
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t)
{
	dbc *c = t->data;
	dbop *op = c->cur;
	switch (c->state) {
	case DBC_RESOLVING:
	case DBC_CONNECTING:
		c->cur = NULL;
		if (op)
			op_fail(op, PORTER_E_TIMEOUT, "connecting to PostgreSQL timed out");
		dbc_broken(c, "connect timed out");
		return;
	case DBC_QUERY:
		if (!op) {
			dbc_broken(c, "cancelled query did not finish in time");
			return;
		}
		if (op->kind == OP_RESET) {
			c->cur = NULL;
			op_free(op);
			dbc_broken(c, "reset timed out");
			return;
		}
		c->cur = NULL;
		if (op->pent) {
			/* The head of a pipeline: the queries behind it go on;
			 * its own results will be discarded. */
			op->pent->op = NULL;
			op->pent = NULL;
			op_fail(op, PORTER_E_TIMEOUT,
				"query timed out; it was cancelled on the server");
			send_cancel(c);
			arm_timer(c, now_ms(c->dw) + DRAIN_MS);
			return;
		}
		op_fail(op, PORTER_E_TIMEOUT, "query timed out; it was cancelled on the server");
		abandon_query(c);
		return;
	default:
		return;
	}
}

static void arm_timer(dbc *c, uint64_t deadline)
{
	uint64_t now = now_ms(c->dw);
	uv_timer_start(&c->timer, on_timer, deadline > now ? deadline - now : 0, 0);
}

/* ---- connection lifecycle ---- */

static void on_poll_closed(uv_handle_t *h)
{
	dbc *c = h->data;
	free(h);
	c->open_polls--;
	maybe_free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
	dbc *c = h->data;
	c->timer_open = 0;
	maybe_free(c);
}

static void maybe_free(dbc *c)
{
	if (c->state != DBC_CLOSING || c->open_polls || c->timer_open || c->gai || c->cancelling)
		return;
	db_worker *dw = c->dw;
	if (c->pg)
		PQfinish(c->pg);
	dbstmt_destroy(&c->stmts);
	clients_put(c->acct, CLIENTS_SESSIONS, 1);
	clients_acct_unref(c->acct);
	free(c->conninfo);
	free(c);
	dw->live--;
	stats_sub(&dw->w->counters.db_conns, 1);
	dw_maybe_free(dw);
}

/* Drops every pipeline entry of `c`, failing their ops except c->cur
 * (the head's, which the caller handles). */
static void pipe_clear(dbc *c, int code, const char *why)
{
	list *lists[] = {&c->held, &c->pipe};
	for (size_t i = 0; i < 2; i++) {
		list *pos, *tmp;
		list_for_each_safe(pos, tmp, lists[i]) {
			pent *e = list_entry(pos, pent, link);
			list_remove(&e->link);
			if (e->op) {
				e->op->pent = NULL;
				if (e->op != c->cur)
					op_fail(e->op, code, "%s", why);
			}
			free(e);
		}
	}
	c->npipe = 0;
	c->seg_bad = 0;
	if (c->open_n) {
		list_remove(&c->open_link);
		c->open_n = 0;
	}
}

/* Fails everything queued on `c` with `code`. */
static void fail_queue(dbc *c, int code, const char *why)
{
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &c->queue) {
		dbop *op = list_entry(pos, dbop, link);
		op_fail(op, code, "%s", why);
	}
}

/* Closes `c` for good; pending operations get errors. The PGconn is
 * finished once the poll handles are closed (PQfinish closes the fd;
 * for a session this ends the server session, rolling back any open
 * transaction). */
static void dbc_close(dbc *c)
{
	if (c->state == DBC_CLOSING)
		return;
	/* A backend busy with a query would only notice the closed socket
	 * when it next writes: stop the query first. */
	if (c->state == DBC_QUERY || c->state == DBC_PAUSED)
		send_cancel(c);
	c->state = DBC_CLOSING;
	pipe_clear(c, c->dw->closing ? PORTER_E_SHUTDOWN : PORTER_E_DB_BROKEN,
		   "database connection closed");
	if (c->cur) {
		dbop *op = c->cur;
		c->cur = NULL;
		if (op->kind == OP_RESET)
			op_free(op);
		else
			op_fail(op, c->dw->closing ? PORTER_E_SHUTDOWN : PORTER_E_DB_BROKEN,
				"database connection closed");
	}
	fail_queue(c, c->dw->closing ? PORTER_E_SHUTDOWN : PORTER_E_DB_SESSION,
		   "database session closed");
	if (c->stream_id) {
		list_remove(&c->slink);
		c->stream_id = 0;
	}
	list_remove(&c->link);
	if (c->id)
		c->dw->n_sessions--;
	if (c->in_idle) {
		list_remove(&c->ilink);
		c->in_idle = 0;
	}
	pool *p = c->pool;
	if (p) {
		p->total--;
		c->pool = NULL;
	}
	drop_poll(c);
	if (c->gai)
		uv_cancel((uv_req_t *)c->gai);
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
	if (p)
		pool_kick(p);
	maybe_free(c);
}

/*
 * The connection failed. A pooled one is closed (the pool replaces it); a
 * session stays, broken, and answers errors until the client closes it
 * or it is swept.
 */
static void dbc_broken(dbc *c, const char *why)
{
	if (c->state == DBC_CLOSING || c->state == DBC_BROKEN)
		return;
	char raw[512], msg[512];
	snprintf(raw, sizeof(raw), "%s%s%s", why, c->pg && PQerrorMessage(c->pg)[0] ? ": " : "",
		 c->pg ? PQerrorMessage(c->pg) : "");
	/* libpq's text may quote what a server sent, or (libpq 15's TLS
	 * error path) bytes past a buffer: only clean text goes on. */
	dbpolicy_clean(raw, msg, sizeof(msg));
	log_debug("db: connection broken: %s", msg);
	pipe_clear(c, PORTER_E_DB_BROKEN, msg);
	if (c->cur) {
		dbop *op = c->cur;
		c->cur = NULL;
		if (op->kind == OP_RESET)
			op_free(op);
		else
			op_fail(op,
				c->state == DBC_CONNECTING || c->state == DBC_RESOLVING
					? PORTER_E_DB_CONNECT
					: PORTER_E_DB_BROKEN,
				"%s", msg);
	}
	if (!c->id || c->state == DBC_CONNECTING || c->state == DBC_RESOLVING) {
		/* Pooled, or a session whose id was never handed out. */
		dbc_close(c);
		return;
	}
	fail_queue(c, PORTER_E_DB_BROKEN, msg);
	if (c->stream_id) {
		list_remove(&c->slink);
		c->stream_id = 0;
	}
	c->state = DBC_BROKEN;
	uv_timer_stop(&c->timer);
	drop_poll(c);
	if (c->pg) {
		PQfinish(c->pg);
		c->pg = NULL;
	}
}

/*
 * A new connection for client `uid`, counted against its
 * db-max-connections-per-uid (sessions and pooled connections alike, over
 * every worker: PostgreSQL's max_connections is what they share; porterd's
 * own uid is not limited). NULL with
 * `*err` PORTER_E_BUSY over that limit, or PORTER_E_NOMEM.
 */
static dbc *dbc_new(db_worker *dw, const char *conninfo, uid_t uid, int *err)
{
	*err = PORTER_E_NOMEM;
	dbc *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->conninfo = strdup(conninfo);
	c->acct = clients_acct_ref(uid);
	/* porterd's own uid (local clients) is counted, never limited: a
	 * per-user daemon has no other uid to be fair to. */
	uint32_t limit = uid == geteuid() ? 0 : dw->w->cfg->db_max_connections_per_uid;
	if (c->conninfo && !clients_take(c->acct, CLIENTS_SESSIONS, 1, limit))
		*err = PORTER_E_BUSY;
	else if (c->conninfo)
		*err = 0;
	if (*err) {
		clients_acct_unref(c->acct);
		free(c->conninfo);
		free(c);
		return NULL;
	}
	c->uid = uid;
	c->dw = dw;
	c->poll_fd = -1;
	list_init(&c->queue);
	list_init(&c->pipe);
	list_init(&c->held);
	list_init(&c->open_link);
	list_init(&c->link);
	uv_timer_init(&dw->w->loop, &c->timer);
	c->timer.data = c;
	c->timer_open = 1;
	c->last_used = now_ms(dw);
	dw->live++;
	stats_add(&dw->w->counters.db_conns, 1);
	return c;
}

/* ---- connecting ---- */

static void connected(dbc *c)
{
	dbop *op = c->cur;
	uv_timer_stop(&c->timer);
	if (PQsetnonblocking(c->pg, 1) != 0) {
		dbc_broken(c, "cannot make the connection non-blocking");
		return;
	}
	c->state = DBC_READY;
	c->last_used = now_ms(c->dw);
	/* The socket is final now: a fresh handle for the life of the
	 * connection. */
	if (watch(c, PQsocket(c->pg), UV_READABLE, 1) < 0) {
		dbc_broken(c, "cannot watch the PostgreSQL socket");
		return;
	}
	c->cur = NULL;
	if (!op)
		return;
	if (op->kind == OP_OPEN) {
		Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
		Porter__V1__DbOpenReply orep = PORTER__V1__DB_OPEN_REPLY__INIT;
		orep.session = c->id;
		resp.body_case = PORTER__V1__RESPONSE__BODY_DB_OPEN;
		resp.db_open = &orep;
		op_reply(op, &resp);
		if (!list_empty(&c->queue)) {
			dbop *next = list_entry(c->queue.next, dbop, link);
			list_remove(&next->link);
			next->queued = 0;
			dbc_start(c, next);
		}
	} else {
		dbc_start(c, op);
	}
}

static void connect_step(dbc *c, PostgresPollingStatusType st)
{
	for (;;) {
		switch (st) {
		case PGRES_POLLING_OK:
			connected(c);
			return;
		case PGRES_POLLING_FAILED:
			dbc_broken(c, "connection to PostgreSQL failed");
			return;
		case PGRES_POLLING_READING:
		case PGRES_POLLING_WRITING:
			/* libpq may have closed the socket and opened another
			 * (next host, SSL retry) with the same number: always a
			 * fresh handle while connecting. */
			if (watch(c, PQsocket(c->pg),
				  st == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE, 1) < 0) {
				/* No socket to wait on: let libpq try again. */
				st = PQconnectPoll(c->pg);
				if (st == PGRES_POLLING_READING || st == PGRES_POLLING_WRITING) {
					dbc_broken(c, "connection to PostgreSQL has no socket");
					return;
				}
				continue;
			}
			return;
		default:
			st = PQconnectPoll(c->pg);
			continue;
		}
	}
}

/* libpq's notices (server NOTICE/WARNING messages, and libpq's own) go to
 * porterd's log, which escapes them into one line, never raw to stderr. */
static void on_notice(void *arg, const char *message)
{
	(void)arg;
	char text[512];
	log_debug("db: notice: %s", dbpolicy_clean(message, text, sizeof(text)));
}

static void start_pq(dbc *c)
{
	dbpolicy_params pp;
	const char *root = dbpolicy_root_cert(c->conninfo, &c->dw->w->cfg->db_tls_root_cert);
	int rc = dbpolicy_params_build(c->conninfo, c->hostaddr[0] ? c->hostaddr : NULL, root,
				       c->uid != geteuid(), &pp);
	if (rc < 0) {
		dbc_broken(c, rc == PORTER_E_NOMEM ? "out of memory" : "invalid conninfo");
		return;
	}
	c->pg = PQconnectStartParams(pp.keywords, pp.values, 0);
	dbpolicy_params_free(&pp);
	if (!c->pg) {
		dbc_broken(c, "out of memory");
		return;
	}
	PQsetNoticeProcessor(c->pg, on_notice, NULL);
	if (PQstatus(c->pg) == CONNECTION_BAD) {
		dbc_broken(c, "connection to PostgreSQL failed");
		return;
	}
	c->state = DBC_CONNECTING;
	connect_step(c, PGRES_POLLING_WRITING);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
	dbc *c = g->data;
	c->gai = NULL;
	free(g);
	if (c->state == DBC_CLOSING) {
		uv_freeaddrinfo(res);
		maybe_free(c);
		return;
	}
	if (status < 0 || !res) {
		char msg[256];
		snprintf(msg, sizeof(msg), "could not resolve the PostgreSQL host: %s",
			 uv_strerror(status));
		uv_freeaddrinfo(res);
		dbc_broken(c, msg);
		return;
	}
	if (res->ai_family == AF_INET6)
		uv_ip6_name((struct sockaddr_in6 *)res->ai_addr, c->hostaddr, sizeof(c->hostaddr));
	else
		uv_ip4_name((struct sockaddr_in *)res->ai_addr, c->hostaddr, sizeof(c->hostaddr));
	uv_freeaddrinfo(res);
	start_pq(c);
}

/* Starts connecting `c` on behalf of `op` (which it answers or passes on
 * to the query once connected). */
static void dbc_connect(dbc *c, dbop *op)
{
	c->cur = op;
	op->c = c;
	arm_timer(c, op->deadline);
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(c->conninfo, &err);
	if (!opts) {
		char msg[512];
		snprintf(msg, sizeof(msg), "invalid conninfo: %s", err ? err : "out of memory");
		PQfreemem(err);
		c->cur = NULL;
		op_fail(op, PORTER_E_INVAL, "%s", msg);
		dbc_broken(c, "invalid conninfo");
		return;
	}
	const char *host = NULL, *hostaddr = NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "hostaddr") == 0)
			hostaddr = o->val;
	}
	char name[256] = "";
	if (host && host[0] && host[0] != '/' && host[0] != '@' && !(hostaddr && hostaddr[0]))
		snprintf(name, sizeof(name), "%s", host);
	PQconninfoFree(opts);
	if (!name[0]) {
		start_pq(c);
		return;
	}
	if (strchr(name, ',')) {
		c->cur = NULL;
		op_fail(op, PORTER_E_INVAL,
			"several hosts in one conninfo need hostaddr (names are resolved one at a "
			"time)");
		dbc_broken(c, "invalid conninfo");
		return;
	}
	unsigned char buf[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1) {
		snprintf(c->hostaddr, sizeof(c->hostaddr), "%s", name);
		start_pq(c);
		return;
	}
	/* libpq would resolve the name itself, blocking the loop: resolve it
	 * on the thread pool and connect by address (host stays set for
	 * authentication and TLS). */
	uv_getaddrinfo_t *g = malloc(sizeof(*g));
	if (!g) {
		dbc_broken(c, "out of memory");
		return;
	}
	g->data = c;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	c->state = DBC_RESOLVING;
	c->gai = g;
	int rc = uv_getaddrinfo(&c->dw->w->loop, g, on_resolved, name, NULL, &hints);
	if (rc < 0) {
		c->gai = NULL;
		free(g);
		dbc_broken(c, "could not resolve the PostgreSQL host");
	}
}

/* ---- queries ---- */

static void take_result(dbc *c, PGresult *res)
{
	dbop *op = c->cur;
	if (!op) {
		/* Draining an abandoned query. */
		PQclear(res);
		return;
	}
	ExecStatusType st = PQresultStatus(res);
	size_t cap = c->dw->w->cfg->max_frame > (2u << 20) ? c->dw->w->cfg->max_frame - (1u << 20)
							   : c->dw->w->cfg->max_frame / 2;
	if (st == PGRES_FATAL_ERROR) {
		const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		op_set_error(op, PORTER_E_DB, m ? m : PQresultErrorMessage(res),
			     PQresultErrorField(res, PG_DIAG_SQLSTATE),
			     PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL),
			     PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
		PQclear(res);
		return;
	}
	if (op->err || op->too_large ||
	    (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK &&
	     st != PGRES_EMPTY_QUERY)) {
		/* Nothing of it goes into the reply. */
		PQclear(res);
		if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH)
			goto copy;
		return;
	}
	if (st == PGRES_SINGLE_TUPLE) {
		/* Each row is a PGresult of its own, several KiB: its values
		 * are copied and it is freed at once, except the one whose
		 * column names the chunk points to. */
		int keep = 0;
		if (op->n_results == 0) {
			int cols = !c->stream_cols_sent;
			if (!new_result(op, res, cols)) {
				PQclear(res);
				goto nomem;
			}
			if (cols) {
				/* The op fails then, so the column names that
				 * point into `res` are never read. */
				if (keep_pg(op, res) < 0) {
					PQclear(res);
					goto nomem;
				}
				keep = 1;
			}
		}
		c->stream_cols_sent = 1;
		int rc = add_rows(op, op->results[0], res, cap, 1);
		if (!keep)
			PQclear(res);
		if (rc < 0)
			goto nomem;
		return;
	}
	if (keep_pg(op, res) < 0) {
		PQclear(res);
		op_set_error(op, PORTER_E_NOMEM, "out of memory", NULL, NULL, NULL);
		return;
	}
	switch (st) {
	case PGRES_TUPLES_OK:
		if (op->chunk_rows) {
			/* The end of a streamed result: no rows, the tag. */
			if (op->n_results == 0 && !new_result(op, res, !c->stream_cols_sent))
				goto nomem;
			c->stream_cols_sent = 1;
			set_tag(op->results[0], res);
			if (add_rows(op, op->results[0], res, cap, 0) < 0)
				goto nomem;
			return;
		} else {
			Porter__V1__DbResult *dr = new_result(op, res, 1);
			if (!dr)
				goto nomem;
			set_tag(dr, res);
			if (add_rows(op, dr, res, cap, 0) < 0)
				goto nomem;
		}
		return;
	case PGRES_COMMAND_OK:
	case PGRES_EMPTY_QUERY: {
		Porter__V1__DbResult *dr = new_result(op, res, 0);
		if (!dr)
			goto nomem;
		set_tag(dr, res);
		if (op->kind == OP_QUERY && c->pool) {
			/* Anything but plain DML may change session state. */
			const char *tag = dr->command_tag;
			if (strncmp(tag, "SELECT", 6) && strncmp(tag, "INSERT", 6) &&
			    strncmp(tag, "UPDATE", 6) && strncmp(tag, "DELETE", 6))
				c->needs_reset = 1;
		}
		return;
	}
	default:
		return;
	}
nomem:
	op_set_error(op, PORTER_E_NOMEM, "out of memory", NULL, NULL, NULL);
	return;
copy:
	op_set_error(op, PORTER_E_UNSUPPORTED, "COPY is not supported through porter", NULL, NULL,
		     NULL);
	if (st == PGRES_COPY_IN) {
		PQputCopyEnd(c->pg, "COPY is not supported through porter");
		return;
	}
	/* The connection would have to read the whole copy stream; giving
	 * it up is simpler and bounded. */
	c->cur = NULL;
	op_finish(op, 0, 0);
	dbc_broken(c, "COPY is not supported");
}

static void after_query(dbc *c)
{
	c->state = DBC_READY;
	c->last_used = now_ms(c->dw);
	uv_timer_stop(&c->timer);
	if (c->cancelling) {
		/* A PQcancel still on its way would hit the next query;
		 * cancel_done resumes. */
		c->after_cancel = 1;
		return;
	}
	if (PQstatus(c->pg) != CONNECTION_OK) {
		dbc_broken(c, "connection lost");
		return;
	}
	if (c->pool) {
		pool_release(c);
		return;
	}
	if (!list_empty(&c->queue)) {
		dbop *next = list_entry(c->queue.next, dbop, link);
		list_remove(&next->link);
		next->queued = 0;
		dbc_start(c, next);
	}
}

static void query_done(dbc *c)
{
	dbop *op = c->cur;
	c->cur = NULL;
	if (op) {
		if (op->kind == OP_RESET) {
			int bad = op->err;
			op_free(op);
			if (bad) {
				dbc_broken(c, "reset failed");
				return;
			}
			c->needs_reset = 0;
			c->has_last = 0;
			/* DISCARD ALL dropped every prepared statement. */
			dbstmt_clear(&c->stmts);
		} else {
			if (c->stream_id) {
				list_remove(&c->slink);
				c->stream_id = 0;
			}
			op_finish(op, 0, 0);
		}
	}
	after_query(c);
}

/* A streamed chunk is full: send it and wait for the next DbFetch. */
static void stream_pause(dbc *c)
{
	dbop *op = c->cur;
	c->cur = NULL;
	c->state = DBC_PAUSED;
	c->last_used = now_ms(c->dw);
	uv_timer_stop(&c->timer);
	if (op->n_results == 0)
		new_result(op, NULL, 0);
	op_finish(op, 1, c->stream_id);
}

static int chunk_full(dbc *c)
{
	dbop *op = c->cur;
	if (!op || !op->chunk_rows || op->err || op->n_results == 0)
		return 0;
	return op->results[0]->n_rows >= (size_t)op->chunk_rows || op->bytes >= CHUNK_BYTES;
}

/* Takes every result libpq has complete, without blocking. */
static void pump(dbc *c)
{
	if (c->pipelined) {
		pipe_pump(c);
		update_poll(c);
		return;
	}
	while (c->state == DBC_QUERY) {
		if (chunk_full(c)) {
			stream_pause(c);
			break;
		}
		if (PQisBusy(c->pg))
			break;
		PGresult *res = PQgetResult(c->pg);
		if (!res) {
			query_done(c);
			break;
		}
		take_result(c, res);
	}
	update_poll(c);
}

static void on_io(uv_poll_t *p, int status, int events)
{
	dbc *c = p->data;
	worker_saw_io(c->dw->w);
	if (c->poll != p)
		return;
	if (c->state == DBC_CONNECTING) {
		connect_step(c, PQconnectPoll(c->pg));
		return;
	}
	if (status < 0) {
		dbc_broken(c, "socket error");
		return;
	}
	if (c->state != DBC_QUERY && c->state != DBC_READY)
		return;
	if (events & UV_READABLE) {
		if (!PQconsumeInput(c->pg)) {
			dbc_broken(c, "connection lost");
			return;
		}
	}
	if (c->flushing) {
		/* Read first, flush again: the server may be blocked sending
		 * to us while we wait to send to it. */
		int rc = PQflush(c->pg);
		if (rc < 0) {
			dbc_broken(c, "connection lost");
			return;
		}
		c->flushing = rc == 1;
	}
	if (c->state == DBC_READY) {
		PGnotify *n;
		while ((n = PQnotifies(c->pg)))
			PQfreemem(n);
		if (PQstatus(c->pg) != CONNECTION_OK) {
			dbc_broken(c, "connection lost");
			return;
		}
		/* Anything else arriving unasked is an error message the server
		 * sends before it closes (e.g. at shutdown). */
		if (!PQisBusy(c->pg)) {
			PGresult *res;
			while ((res = PQgetResult(c->pg)))
				PQclear(res);
		}
		return;
	}
	pump(c);
}

/*
 * Sends `sql` with op's parameters (extended protocol): unnamed when `stmt`
 * is NULL, else as the prepared statement `stmt`, parsed first when
 * `prepare`. 1 on success.
 */
/* Queries with up to this many parameters pass them to libpq from arrays
 * on the stack; a query costs no allocation for its parameters but the one
 * block its text values are copied into. */
#define PARAMS_ON_STACK 16

static int send_params(dbc *c, dbop *op, const Porter__V1__DbQuery *q, const char *sql,
		       const char *stmt, int prepare)
{
	size_t n = q->n_params;
	const char *vals_s[PARAMS_ON_STACK];
	int lens_s[PARAMS_ON_STACK], fmts_s[PARAMS_ON_STACK];
	Oid types_s[PARAMS_ON_STACK];
	const char **vals = vals_s;
	int *lens = lens_s, *fmts = fmts_s;
	Oid *types = types_s;
	char *text = NULL; /* every text value, each followed by a NUL */
	int ok = 1;
	if (n > PARAMS_ON_STACK) {
		vals = calloc(n, sizeof(*vals));
		lens = calloc(n, sizeof(*lens));
		fmts = calloc(n, sizeof(*fmts));
		types = calloc(n, sizeof(*types));
		ok = vals && lens && fmts && types;
	}
	/* Text parameters are read up to a NUL by libpq. */
	size_t text_len = 0;
	for (size_t i = 0; ok && i < n; i++) {
		const Porter__V1__DbParam *pp = q->params[i];
		if (pp->value.len > INT32_MAX)
			ok = 0;
		else if (!pp->is_null && !pp->binary)
			text_len += pp->value.len + 1;
	}
	if (ok && text_len && !(text = malloc(text_len)))
		ok = 0;
	char *at = text;
	for (size_t i = 0; ok && i < n; i++) {
		const Porter__V1__DbParam *pp = q->params[i];
		types[i] = pp->type_oid;
		vals[i] = NULL;
		lens[i] = 0;
		fmts[i] = 0;
		if (pp->is_null)
			continue;
		lens[i] = (int)pp->value.len;
		fmts[i] = pp->binary ? 1 : 0;
		if (pp->binary) {
			vals[i] = pp->value.len ? (const char *)pp->value.data : "";
		} else {
			if (pp->value.len)
				memcpy(at, pp->value.data, pp->value.len);
			at[pp->value.len] = 0;
			vals[i] = at;
			at += pp->value.len + 1;
		}
	}
	if (ok && !stmt)
		ok = PQsendQueryParams(c->pg, sql, (int)n, types, vals, lens, fmts, 0);
	else if (ok)
		ok = (!prepare || PQsendPrepare(c->pg, stmt, sql, (int)n, types)) &&
		     PQsendQueryPrepared(c->pg, stmt, (int)n, vals, lens, fmts, 0);
	else
		op_set_error(op, PORTER_E_NOMEM, "out of memory", NULL, NULL, NULL);
	free(text);
	if (n > PARAMS_ON_STACK) {
		free(vals);
		free(lens);
		free(fmts);
		free(types);
	}
	return ok;
}

/*
 * Whether a pooled query may be sent ahead in a pipeline: one statement
 * that cannot change the transaction or session state (so the queries
 * sharing the connection cannot see each other), not streamed. The test is
 * on the text alone and errs on the side of "no".
 */
static int pipelinable(const dbop *op)
{
	const Porter__V1__DbQuery *q = op->kind == OP_QUERY && op->msg ? op->msg->db_query : NULL;
	if (!q || q->chunk_rows || !q->sql)
		return 0;
	const char *s = q->sql;
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '(')
		s++;
	static const char *const ok[] = {"select", "insert", "update", "delete", "values"};
	int match = 0;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]) && !match; i++) {
		size_t n = strlen(ok[i]);
		match = strncasecmp(s, ok[i], n) == 0 &&
			!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
			  (s[n] >= '0' && s[n] <= '9') || s[n] == '_');
	}
	if (!match)
		return 0;
	/* One statement: nothing but blanks after any semicolon. */
	const char *semi = strchr(s, ';');
	if (semi)
		for (const char *p = semi; *p; p++)
			if (*p != ';' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
				return 0;
	return 1;
}

/*
 * What a pooled connection forgets before it serves another client process
 * of its uid (pools never serve two uids): settings (also those changed by
 * set_config() inside a SELECT), temp tables, sequence state and
 * session-level advisory locks. Sent ahead of that process's first query,
 * in the same pipeline segment, so it costs no round trip; unlike DISCARD
 * ALL it may run inside the segment's implicit transaction and keeps the
 * prepared statements porterd made.
 */
static const char *const reset_leads[] = {"RESET ALL", "DISCARD TEMP", "DISCARD SEQUENCES",
					  "SELECT pg_advisory_unlock_all()"};
#define N_RESET_LEADS ((int)(sizeof(reset_leads) / sizeof(reset_leads[0])))

/* Whether `op` comes from another client process than the connection's
 * last query: its state must not reach `op`. */
static int other_process(const dbc *c, const dbop *op)
{
	return c->pool && c->has_last && c->last_inst != op->inst;
}

static int send_reset_leads(dbc *c)
{
	for (int i = 0; i < N_RESET_LEADS; i++)
		if (!PQsendQueryParams(c->pg, reset_leads[i], 0, NULL, NULL, NULL, NULL, 0))
			return 0;
	return 1;
}

/* Removes `name` from the server, ahead of the next query in the pipeline.
 * 1 on success. */
static int send_deallocate(dbc *c, const char *name)
{
	char sql[16 + DBSTMT_NAME];
	snprintf(sql, sizeof(sql), "DEALLOCATE %s", name);
	return PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0);
}

/*
 * Chooses how `e`'s query runs: as a statement already prepared on `c`,
 * as one prepared now (possibly evicting the least recently used, whose
 * name lands in `evicted`), or unnamed. A statement whose Parse is still
 * in flight is not used: if the server refused it, the queries behind it
 * would fail too.
 */
static void pick_stmt(dbc *c, dbop *op, pent *e, char evicted[DBSTMT_NAME])
{
	const Porter__V1__DbQuery *q = op->msg->db_query;
	evicted[0] = 0;
	if (!c->stmts.cap || op->no_cache)
		return;
	uint32_t fixed[16], *types = fixed;
	if (q->n_params > 16 && !(types = malloc(q->n_params * sizeof(*types))))
		return;
	for (size_t i = 0; i < q->n_params; i++)
		types[i] = q->params[i]->type_oid;
	dbstmt *st = dbstmt_find(&c->stmts, q->sql, types, q->n_params);
	if (st && st->state == DBSTMT_READY) {
		memcpy(e->stmt, st->name, DBSTMT_NAME);
	} else if (!st) {
		st = dbstmt_add(&c->stmts, q->sql, types, q->n_params, evicted);
		if (st) {
			memcpy(e->stmt, st->name, DBSTMT_NAME);
			e->prep = 1;
			e->lead = 1 + (evicted[0] != 0);
		}
	}
	if (types != fixed)
		free(types);
}

/* Ends the segment open on `c` with a Sync and sends it. 0, or -1 when
 * the connection broke. */
static int close_segment(dbc *c)
{
	if (!c->open_n)
		return 0;
	list_remove(&c->open_link);
	c->open_n = 0;
	int rc = PQpipelineSync(c->pg) ? PQflush(c->pg) : -1;
	if (rc < 0) {
		dbc_broken(c, "could not send a pipelined query");
		return -1;
	}
	c->flushing = rc == 1;
	update_poll(c);
	return 0;
}

/* The loop turn is over: every segment opened during it is sent. */
static void on_seg_check(uv_check_t *h)
{
	db_worker *dw = h->data;
	while (!list_empty(&dw->open))
		close_segment(list_entry(dw->open.next, dbc, open_link));
}

/*
 * Sends pipelinable `op` on pooled connection `c`, idle or already running
 * a pipeline: in the segment open on `c` (synced at the end of the loop
 * turn), or `alone` in a segment of its own. `stale` names a statement to
 * DEALLOCATE first, or is "".
 */
static void pipe_send(dbc *c, dbop *op, const char *stale, int alone)
{
	pent *e = calloc(1, sizeof(*e));
	if (!e) {
		op_fail(op, PORTER_E_NOMEM, "out of memory");
		return;
	}
	int idle = c->state == DBC_READY;
	if (!idle)
		log_debug("db: query sent ahead behind %u in a pipeline", c->npipe);
	if (!c->pipelined) {
		if (!PQenterPipelineMode(c->pg)) {
			free(e);
			op_fail(op, PORTER_E_DB, "cannot enter pipeline mode");
			return;
		}
		c->pipelined = 1;
	}
	if (alone && close_segment(c) < 0) {
		free(e);
		op_fail(op, PORTER_E_DB_BROKEN, "database connection lost");
		return;
	}
	e->op = op;
	e->exposed = c->cancelling > 0;
	op->pent = e;
	op->c = c;
	list_push_back(&c->pipe, &e->link);
	c->npipe++;
	if (idle) {
		c->cur = op;
		c->state = DBC_QUERY;
		c->flushing = 0;
		c->head_since = now_ms(c->dw);
		arm_timer(c, op->deadline);
	}
	c->last_used = now_ms(c->dw);
	char evicted[DBSTMT_NAME];
	pick_stmt(c, op, e, evicted);
	int reset = other_process(c, op);
	if (stale[0])
		e->lead++;
	/* The reset goes first: the Parse of `stmt` must stay the last lead. */
	e->lead += reset ? N_RESET_LEADS : 0;
	c->last_inst = op->inst;
	c->has_last = 1;
	if ((reset && !send_reset_leads(c)) || (stale[0] && !send_deallocate(c, stale)) ||
	    (evicted[0] && !send_deallocate(c, evicted)) ||
	    !send_params(c, op, op->msg->db_query, op->msg->db_query->sql,
			 e->stmt[0] ? e->stmt : NULL, e->prep)) {
		/* Half a query in the pipeline cannot be taken back. */
		if (c->cur != op && !op->err)
			op_set_error(op, PORTER_E_DB_BROKEN, PQerrorMessage(c->pg), NULL, NULL,
				     NULL);
		dbc_broken(c, "could not send a pipelined query");
		return;
	}
	if (c->open_n++ == 0)
		list_push_back(&c->dw->open, &c->open_link);
	if ((alone || c->open_n >= SEG_MAX) && close_segment(c) < 0)
		return;
	if (idle)
		pump(c);
	else
		update_poll(c);
}

/* The pipeline's first entry (there is one) becomes the head: its op is
 * the one running on the server, timed by its own deadline. */
static void pipe_next_head(dbc *c)
{
	pent *h = list_entry(c->pipe.next, pent, link);
	c->cur = h->op;
	c->head_since = now_ms(c->dw);
	arm_timer(c, h->op ? h->op->deadline : now_ms(c->dw) + DRAIN_MS);
}

/*
 * A segment got its sync: every held entry is answered, or sent again
 * alone when its statement went stale, when a cancel meant for another
 * query hit it, or when another query of its segment failed (the server
 * rolled the whole segment back, so nothing of it happened). Then the
 * next segment's head runs.
 */
static void seg_done(dbc *c)
{
	int bad = c->seg_bad;
	c->seg_bad = 0;
	list done;
	list_init(&done);
	size_t n = 0;
	while (!list_empty(&c->held)) {
		list *pos = c->held.next;
		list_remove(pos);
		list_push_back(&done, pos);
		n++;
	}
	uv_timer_stop(&c->timer);
	c->cur = NULL;
	while (!list_empty(&done)) {
		pent *e = list_entry(done.next, pent, link);
		list_remove(&e->link);
		dbop *op = e->op;
		int retry = e->retry || (bad && n > 1);
		char stale[DBSTMT_NAME];
		memcpy(stale, e->stale, DBSTMT_NAME);
		free(e);
		if (!op)
			continue;
		op->pent = NULL;
		if (retry && op->retries >= 3) {
			/* Whatever it gathered did not happen. */
			op_clear_results(op);
			op_set_error(
				op, PORTER_E_DB,
				"query rolled back with its pipeline group too often; not retried",
				NULL, NULL, NULL);
			retry = 0;
		}
		if (!retry) {
			op_finish(op, 0, 0);
			continue;
		}
		op->retries++;
		if (stale[0])
			op->no_cache = 1;
		op_clear_results(op);
		if (list_empty(&c->pipe))
			c->state = DBC_READY; /* sent as on an idle connection */
		pipe_send(c, op, stale, 1);
		if (c->state != DBC_QUERY) {
			/* Broken: the rest fail with it. */
			while (!list_empty(&done)) {
				e = list_entry(done.next, pent, link);
				list_remove(&e->link);
				if (e->op) {
					e->op->pent = NULL;
					op_fail(e->op, PORTER_E_DB_BROKEN,
						"database connection lost");
				}
				free(e);
			}
			return;
		}
	}
	if (list_empty(&c->pipe)) {
		after_query(c);
		return;
	}
	pipe_next_head(c);
	/* Room in the pipeline: take a waiter of the pool along. */
	pool *p = c->pool;
	if (p && !list_empty(&p->waiters) && c->npipe < PIPE_DEPTH) {
		dbop *w = list_entry(p->waiters.next, dbop, link);
		if (pipelinable(w)) {
			list_remove(&w->link);
			w->queued = 0;
			pipe_send(c, w, "", 0);
		}
	}
}

/* The head's results are all in: it waits in `held` for its segment's
 * sync, and the next entry becomes the head. */
static void pipe_hold(dbc *c, pent *e)
{
	list_remove(&e->link);
	list_push_back(&c->held, &e->link);
	c->npipe--;
	uv_timer_stop(&c->timer);
	c->cur = NULL;
	if (list_empty(&c->pipe)) {
		/* Only the sync is missing; it follows at once (or at the end
		 * of this loop turn, for a segment still open). */
		arm_timer(c, now_ms(c->dw) + DRAIN_MS);
		return;
	}
	pipe_next_head(c);
}

/* A result of the statements sent ahead of `e`'s query. */
static void lead_result(dbc *c, pent *e, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	if (e->prep && e->lead == 1) {
		dbstmt *s = dbstmt_named(&c->stmts, e->stmt);
		if (s && st == PGRES_COMMAND_OK)
			s->state = DBSTMT_READY;
		else if (s)
			dbstmt_drop(&c->stmts, s);
	}
	if (st == PGRES_FATAL_ERROR)
		take_result(c, res); /* the query's error: a Parse failed */
	else
		PQclear(res);
}

/*
 * Whether `res` says the prepared statement `e` executed cannot be used
 * any more: its result type changed under it (a column added to a table
 * it reads), or it is gone. Either fails before the query runs.
 */
static int is_state(PGresult *res, const char *sqlstate)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	return PQresultStatus(res) == PGRES_FATAL_ERROR && state && !strcmp(state, sqlstate);
}

static int stale_stmt(const pent *e, PGresult *res)
{
	return e->stmt[0] && (is_state(res, "0A000") || is_state(res, "26000"));
}

static void pipe_pump(dbc *c)
{
	while (c->state == DBC_QUERY && (!list_empty(&c->pipe) || !list_empty(&c->held))) {
		if (PQisBusy(c->pg))
			break;
		pent *e = list_empty(&c->pipe) ? NULL : list_entry(c->pipe.next, pent, link);
		PGresult *res = PQgetResult(c->pg);
		if (!res && e && e->lead) {
			e->lead--;
			continue;
		}
		if (!res) {
			/* The end of the head's results. With nothing more sent
			 * (a segment not yet synced) libpq answers NULL again:
			 * then there is no head left to end. */
			if (!e)
				break;
			pipe_hold(c, e);
			continue;
		}
		ExecStatusType st = PQresultStatus(res);
		if (st == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			seg_done(c);
			continue;
		}
		if (!e) {
			PQclear(res); /* cannot happen: every result has its entry */
			continue;
		}
		if (st == PGRES_FATAL_ERROR || st == PGRES_PIPELINE_ABORTED)
			c->seg_bad = 1;
		if (e->lead) {
			lead_result(c, e, res);
			continue;
		}
		if (e->exposed && is_state(res, "57014") && !e->retry && e->op && !e->op->err &&
		    e->op->retries < 2) {
			/* Hit by the cancel of the query ahead of it; its
			 * segment was rolled back. */
			e->retry = 1;
			PQclear(res);
			continue;
		}
		if (stale_stmt(e, res) && !e->retry && !(e->op && e->op->err)) {
			dbstmt *s = dbstmt_named(&c->stmts, e->stmt);
			if (s) {
				memcpy(e->stale, e->stmt, DBSTMT_NAME);
				dbstmt_drop(&c->stmts, s);
			}
			e->retry = 1;
			PQclear(res);
			continue;
		}
		if (st == PGRES_PIPELINE_ABORTED) {
			PQclear(res);
			if (e->op)
				op_set_error(e->op, PORTER_E_DB,
					     "query skipped: the pipeline was aborted", NULL, NULL,
					     NULL);
			continue;
		}
		take_result(c, res);
	}
}

/*
 * A query outside a pipeline from another client process than the last
 * one: the connection is reset with DISCARD ALL first (the reset leads of
 * pipe_send cannot follow a multi-statement query), and `op` waits at the
 * head of the pool's queue, where the reset connection picks it up. 1 when
 * it did so.
 */
static int reset_first(dbc *c, dbop *op)
{
	if (op->kind != OP_QUERY || !other_process(c, op))
		return 0;
	dbop *r = calloc(1, sizeof(*r));
	if (!r)
		return 0; /* the caller runs it: refusing it would be worse */
	r->dw = c->dw;
	r->kind = OP_RESET;
	r->deadline = now_ms(c->dw) + DRAIN_MS;
	list_push_back(c->pool->waiters.next, &op->link); /* at the front */
	op->queued = 1;
	dbc_start(c, r);
	return 1;
}

/* Sends op's query on the idle connection `c`. */
static void dbc_start(dbc *c, dbop *op)
{
	if (c->pool && pipelinable(op) && !c->single_row_sticky) {
		pipe_send(c, op, "", 0);
		return;
	}
	if (c->pool && reset_first(c, op))
		return;
	Porter__V1__DbQuery *q = op->msg ? op->msg->db_query : NULL;
	const char *sql = op->kind == OP_RESET ? "DISCARD ALL" : q->sql;
	int ok;
	c->cur = op;
	op->c = c;
	c->state = DBC_QUERY;
	c->flushing = 0;
	c->last_used = now_ms(c->dw);
	if (c->pipelined) {
		/* Several statements, streams and resets need the simple
		 * protocol; the pipeline is empty here. */
		if (PQexitPipelineMode(c->pg) != 1) {
			dbc_broken(c, "cannot leave pipeline mode");
			return;
		}
		c->pipelined = 0;
	}
	if (q && (q->n_params || q->chunk_rows))
		ok = send_params(c, op, q, sql, NULL, 0);
	else
		ok = PQsendQuery(c->pg, sql);
	if (!ok) {
		if (PQstatus(c->pg) != CONNECTION_OK) {
			dbc_broken(c, "connection lost");
			return;
		}
		if (!op->err)
			op_set_error(op, PORTER_E_DB, PQerrorMessage(c->pg), NULL, NULL, NULL);
		c->cur = NULL;
		if (op->kind == OP_RESET)
			op_free(op);
		else
			op_finish(op, 0, 0);
		after_query(c);
		return;
	}
	c->single_row_sticky = 0; /* this send cleared it */
	if (op->kind == OP_QUERY) {
		c->last_inst = op->inst;
		c->has_last = 1;
	}
	if (op->chunk_rows) {
		PQsetSingleRowMode(c->pg);
		c->single_row_sticky = 1;
		c->stream_id = new_id(c->dw);
		c->stream_cols_sent = 0;
		c->stream_chunk = op->chunk_rows;
		c->uid = op->uid;
		c->inst = op->inst;
		list_push_back(&c->dw->streams, &c->slink);
	}
	int rc = PQflush(c->pg);
	if (rc < 0) {
		dbc_broken(c, "connection lost");
		return;
	}
	c->flushing = rc == 1;
	arm_timer(c, op->deadline);
	pump(c);
}

/* ---- pools ---- */

/* The pool of (`uid`, `conninfo`); made when there is none and `create`
 * says so. NULL when there is none, or out of memory. */
static pool *pool_find(db_worker *dw, uid_t uid, const char *conninfo, int create)
{
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &dw->pools) {
		pool *p = list_entry(pos, pool, link);
		if (p->uid == uid && strcmp(p->conninfo, conninfo) == 0)
			return p;
	}
	if (!create)
		return NULL;
	pool *p = calloc(1, sizeof(*p));
	if (!p || !(p->conninfo = strdup(conninfo))) {
		free(p);
		return NULL;
	}
	p->uid = uid;
	list_init(&p->conns);
	list_init(&p->idle);
	list_init(&p->waiters);
	list_push_back(&dw->pools, &p->link);
	return p;
}

/* Fails `op`: its uid holds as many database connections as it may. */
static void fail_uid_quota(dbop *op)
{
	op_fail(op, PORTER_E_BUSY,
		"uid %u holds %u database connections, its limit "
		"(db-max-connections-per-uid); close sessions or cursors",
		(unsigned)op->uid, op->dw->w->cfg->db_max_connections_per_uid);
}

static void pool_new_conn(pool *p, dbop *op)
{
	int err;
	dbc *c = dbc_new(op->dw, p->conninfo, p->uid, &err);
	if (!c && err == PORTER_E_BUSY && p->total) {
		/* At its uid's limit: wait for one of the pool's own. */
		list_push_back(&p->waiters, &op->link);
		op->queued = 1;
		return;
	}
	if (!c) {
		if (err == PORTER_E_BUSY)
			fail_uid_quota(op);
		else
			op_fail(op, PORTER_E_NOMEM, "out of memory");
		return;
	}
	c->pool = p;
	/* Without room for statements the connection simply runs unnamed. */
	if (dbstmt_init(&c->stmts, op->dw->w->cfg->db_statement_cache) < 0)
		log_warn("db: no memory for a statement cache");
	p->total++;
	list_push_back(&p->conns, &c->link);
	dbc_connect(c, op);
}

/* Runs `op` on a connection of pool `p`: an idle one, a new one, or the
 * next one freed. */
/* The busy connection of `p` with the shortest pipeline shorter than
 * `depth` whose head is not slow, or NULL. */
static dbc *shortest_pipe(db_worker *dw, pool *p, unsigned depth, uint64_t head_ms)
{
	dbc *best = NULL;
	uint64_t now = now_ms(dw);
	list *pos;
	for (pos = p->conns.next; pos != &p->conns; pos = pos->next) {
		dbc *c = list_entry(pos, dbc, link);
		if (c->state == DBC_QUERY && c->pipelined && !list_empty(&c->pipe) &&
		    c->npipe < depth && now - c->head_since < head_ms &&
		    (!best || c->npipe < best->npipe))
			best = c;
	}
	return best;
}

static void pool_run(pool *p, dbop *op)
{
	db_worker *dw = op->dw;
	if (pipelinable(op)) {
		dbc *c = shortest_pipe(dw, p, PIPE_SHARE, PIPE_HEAD_MS);
		if (c) {
			pipe_send(c, op, "", 0);
			return;
		}
	}
	while (!list_empty(&p->idle)) {
		/* Most recently used first: it is the most likely alive. */
		dbc *c = list_entry(p->idle.prev, dbc, ilink);
		list_remove(&c->ilink);
		c->in_idle = 0;
		if (PQstatus(c->pg) != CONNECTION_OK) {
			dbc_close(c);
			continue;
		}
		dbc_start(c, op);
		return;
	}
	if (p->total < dw->w->cfg->db_pool_size) {
		pool_new_conn(p, op);
		return;
	}
	if (pipelinable(op)) {
		/* Every connection is busy: send it ahead on the shortest
		 * pipeline instead of waiting for one to be free. */
		dbc *best = shortest_pipe(dw, p, PIPE_DEPTH, UINT64_MAX);
		if (best) {
			pipe_send(best, op, "", 0);
			return;
		}
	}
	list_push_back(&p->waiters, &op->link);
	op->queued = 1;
}

/* A pooled connection finished its query: reset it if needed, then hand it
 * to a waiter or keep it idle. */
static void pool_release(dbc *c)
{
	pool *p = c->pool;
	if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		/* Left inside a transaction by a stateless query: not reusable
		 * as it is; a fresh connection costs less than guessing. */
		dbc_close(c);
		return;
	}
	if (c->needs_reset) {
		dbop *op = calloc(1, sizeof(*op));
		if (!op) {
			dbc_close(c);
			return;
		}
		op->dw = c->dw;
		op->kind = OP_RESET;
		op->deadline = now_ms(c->dw) + DRAIN_MS;
		dbc_start(c, op);
		return;
	}
	if (!list_empty(&p->waiters)) {
		dbop *op = list_entry(p->waiters.next, dbop, link);
		list_remove(&op->link);
		op->queued = 0;
		dbc_start(c, op);
		return;
	}
	list_push_back(&p->idle, &c->ilink);
	c->in_idle = 1;
	update_poll(c);
}

/* A pool lost a connection: start a new one for the first waiter. */
static void pool_kick(pool *p)
{
	if (list_empty(&p->waiters))
		return;
	dbop *op = list_entry(p->waiters.next, dbop, link);
	if (op->dw->closing || p->total >= op->dw->w->cfg->db_pool_size)
		return;
	list_remove(&op->link);
	op->queued = 0;
	pool_new_conn(p, op);
}

/* ---- sessions and streams ---- */

static dbc *find_session(db_worker *dw, uint64_t id)
{
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &dw->sessions) {
		dbc *c = list_entry(pos, dbc, link);
		if (c->id == id)
			return c;
	}
	return NULL;
}

static dbc *find_stream(db_worker *dw, uint64_t id)
{
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &dw->streams) {
		dbc *c = list_entry(pos, dbc, slink);
		if (c->stream_id == id)
			return c;
	}
	return NULL;
}

/*
 * Whether the client of `op` may connect with `conninfo` (see dbpolicy.h);
 * answers `op` with the reason when not. A client whose uid is porterd's
 * own is local; any other is foreign.
 */
static int conninfo_allowed(dbop *op, const char *conninfo)
{
	const config *cfg = op->dw->w->cfg;
	char why[256];
	int rc = dbpolicy_check(conninfo, op->uid != geteuid(), &cfg->db_allow_targets, why,
				sizeof(why));
	if (rc == 0)
		return 1;
	/* Debug level: a client repeating a refused request must not flood the
	 * log; it gets the reason itself. */
	log_debug("db: refused a conninfo of uid %u: %s", (unsigned)op->uid, why);
	op_fail(op, rc, "%s", why);
	return 0;
}

static void do_open(dbop *op)
{
	db_worker *dw = op->dw;
	Porter__V1__DbOpen *o = op->msg->db_open;
	if (!o->conninfo || !o->conninfo[0]) {
		op_fail(op, PORTER_E_INVAL, "DbOpen needs a conninfo");
		return;
	}
	if (!conninfo_allowed(op, o->conninfo))
		return;
	if (dw->n_sessions >= dw->w->cfg->db_max_sessions) {
		op_fail(op, PORTER_E_BUSY, "too many database sessions on this worker");
		return;
	}
	int err;
	dbc *c = dbc_new(dw, o->conninfo, op->uid, &err);
	if (!c) {
		if (err == PORTER_E_BUSY)
			fail_uid_quota(op);
		else
			op_fail(op, PORTER_E_NOMEM, "out of memory");
		return;
	}
	c->id = new_id(dw);
	c->inst = op->inst;
	dw->n_sessions++;
	list_push_back(&dw->sessions, &c->link);
	char masked[256];
	db_mask_conninfo(o->conninfo, masked, sizeof(masked));
	log_debug("db: worker %u opening session %016llx (%s)", dw->w->index,
		  (unsigned long long)c->id, masked);
	dbc_connect(c, op);
}

static void do_query(dbop *op)
{
	db_worker *dw = op->dw;
	Porter__V1__DbQuery *q = op->msg->db_query;
	if (!q->sql) {
		op_fail(op, PORTER_E_INVAL, "DbQuery needs sql");
		return;
	}
	/* What libpq would refuse is refused here, for this query alone: a
	 * refusal inside a shared pipeline would break the connection and
	 * fail the queries of every client sharing it. */
	if (q->n_params > DBWIRE_MAX_PARAMS) {
		op_fail(op, PORTER_E_INVAL,
			"a query may have at most 65535 parameters (PostgreSQL's limit)");
		return;
	}
	if (q->chunk_rows > MAX_CHUNK_ROWS)
		q->chunk_rows = MAX_CHUNK_ROWS;
	op->chunk_rows = (int)q->chunk_rows;
	if (!q->session) {
		if (!q->conninfo || !q->conninfo[0]) {
			op_fail(op, PORTER_E_INVAL, "DbQuery needs a session or a conninfo");
			return;
		}
		/* Checked once per pool and configuration generation (a reload
		 * may have taken a target away), and before a pool is made, so
		 * refused conninfos leave nothing behind. */
		pool *p = pool_find(dw, op->uid, q->conninfo, 0);
		if (!p || p->checked != dw->w->cfg) {
			if (!conninfo_allowed(op, q->conninfo))
				return;
			if (!p && !(p = pool_find(dw, op->uid, q->conninfo, 1))) {
				op_fail(op, PORTER_E_NOMEM, "out of memory");
				return;
			}
			p->checked = dw->w->cfg;
		}
		pool_run(p, op);
		return;
	}
	dbc *c = find_session(dw, q->session);
	if (!c || c->uid != op->uid || c->inst != op->inst) {
		/* Another client's session looks exactly like a missing one. */
		op_fail(op, PORTER_E_DB_SESSION, "no such database session");
		return;
	}
	if (c->state == DBC_BROKEN) {
		op_fail(op, PORTER_E_DB_BROKEN,
			"the session's connection is broken; close it and open another");
		return;
	}
	c->last_used = now_ms(dw);
	if (c->state == DBC_READY && list_empty(&c->queue)) {
		dbc_start(c, op);
		return;
	}
	size_t n = 0;
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &c->queue)
		n++;
	if (n >= MAX_QUEUE) {
		op_fail(op, PORTER_E_BUSY, "too many queries queued on this session");
		return;
	}
	list_push_back(&c->queue, &op->link);
	op->queued = 1;
}

static void do_fetch(dbop *op)
{
	Porter__V1__DbFetch *f = op->msg->db_fetch;
	dbc *c = find_stream(op->dw, f->stream);
	if (!c || c->uid != op->uid || c->inst != op->inst) {
		for (unsigned i = 0; !c && f->stream && i < RECLAIMED_KEPT; i++)
			if (op->dw->reclaimed[i].id == f->stream &&
			    op->dw->reclaimed[i].uid == op->uid) {
				op_fail(op, PORTER_E_TIMEOUT,
					"result stream reclaimed: not read for %u ms "
					"(db-stream-idle)",
					op->dw->w->cfg->db_stream_idle_ms);
				return;
			}
		op_fail(op, PORTER_E_NOT_FOUND,
			"no such result stream (finished, abandoned or timed out)");
		return;
	}
	if (c->state != DBC_PAUSED) {
		op_fail(op, PORTER_E_BUSY, "a fetch on this stream is already running");
		return;
	}
	c->cur = op;
	op->c = c;
	/* The chunk size of the query carries over to every fetch. */
	op->chunk_rows = c->stream_chunk;
	c->state = DBC_QUERY;
	arm_timer(c, op->deadline);
	pump(c);
}

static void do_close(dbop *op)
{
	Porter__V1__DbClose *cl = op->msg->db_close;
	db_worker *dw = op->dw;
	if (cl->stream) {
		dbc *c = find_stream(dw, cl->stream);
		if (!c || c->uid != op->uid || c->inst != op->inst) {
			op_fail(op, PORTER_E_NOT_FOUND, "no such result stream");
			return;
		}
		if (c->state == DBC_PAUSED)
			abandon_query(c);
	}
	if (cl->session) {
		dbc *c = find_session(dw, cl->session);
		if (!c || c->uid != op->uid || c->inst != op->inst) {
			op_fail(op, PORTER_E_DB_SESSION, "no such database session");
			return;
		}
		/* Closing the connection ends the server session, which rolls
		 * back any transaction left open. */
		dbc_close(c);
	}
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__DbCloseReply cr = PORTER__V1__DB_CLOSE_REPLY__INIT;
	resp.body_case = PORTER__V1__RESPONSE__BODY_DB_CLOSE;
	resp.db_close = &cr;
	op_reply(op, &resp);
}

static void dispatch(dbop *op)
{
	switch (op->kind) {
	case OP_OPEN:
		do_open(op);
		return;
	case OP_QUERY:
		do_query(op);
		return;
	case OP_FETCH:
		do_fetch(op);
		return;
	case OP_CLOSE:
		do_close(op);
		return;
	default:
		op_free(op);
		return;
	}
}

/* ---- the client going away, or asking to stop ---- */

/* Stops `op` wherever it is: queued, pipelined, running or connecting.
 * Returns 0 when it was stopped (and answered), -1 when it had not started
 * anywhere yet. */
static int op_stop(dbop *op)
{
	if (op->queued) {
		list_remove(&op->link);
		op->queued = 0;
		op_fail(op, PORTER_E_CANCELLED, "cancelled");
		return 0;
	}
	dbc *c = op->c;
	if (op->pent) {
		op->pent->op = NULL;
		op->pent = NULL;
		if (c->cur == op) {
			c->cur = NULL;
			send_cancel(c);
			arm_timer(c, now_ms(c->dw) + DRAIN_MS);
		}
		op_fail(op, PORTER_E_CANCELLED, "cancelled");
		return 0;
	}
	if (c && c->cur == op) {
		if (c->state == DBC_QUERY) {
			c->cur = NULL;
			op_fail(op, PORTER_E_CANCELLED, "cancelled");
			abandon_query(c);
			return 0;
		}
		/* Connecting: the connection is of no use to anyone now. */
		c->cur = NULL;
		op_fail(op, PORTER_E_CANCELLED, "cancelled");
		if (c->id)
			dbc_close(c);
		else
			dbc_broken(c, "cancelled while connecting");
		return 0;
	}
	/* Not started: it still finishes on its own very soon. */
	return -1;
}

static void op_req_cancel(req *r)
{
	dbop *op = r->op;
	if (op && op_stop(op) < 0)
		r->cancel = op_req_cancel;
}

/* ---- forwarding between workers ---- */

typedef struct fwd_wait {
	list link; /* dw->waits */
	req *r;
	uint64_t token;
	worker *to; /* the session's owner */
} fwd_wait;

typedef struct fwd_msg {
	inbox_msg base;
	worker *from;
	uint64_t token;
	uid_t uid;
	uint64_t inst;
	uint64_t remaining_ms;
	size_t len;
	uint8_t buf[];
} fwd_msg;

static enum op_kind kind_of(const Porter__V1__Request *m)
{
	switch (m->body_case) {
	case PORTER__V1__REQUEST__BODY_DB_OPEN:
		return OP_OPEN;
	case PORTER__V1__REQUEST__BODY_DB_FETCH:
		return OP_FETCH;
	case PORTER__V1__REQUEST__BODY_DB_CLOSE:
		return OP_CLOSE;
	default:
		return OP_QUERY;
	}
}

static void fwd_run(void *owner, inbox_msg *m)
{
	worker *w = owner;
	fwd_msg *f = (fwd_msg *)m;
	dbop *op = calloc(1, sizeof(*op));
	Porter__V1__Request *msg = op ? porter__v1__request__unpack(NULL, f->len, f->buf) : NULL;
	if (!op || !msg) {
		free(op);
		free(f);
		return; /* the requester's deadline answers it */
	}
	op->dw = w->db;
	op->from = f->from;
	op->token = f->token;
	op->msg = msg;
	op->uid = f->uid;
	op->inst = f->inst;
	op->kind = kind_of(msg);
	op->deadline = now_ms(op->dw) + f->remaining_ms;
	list_push_back(&op->dw->forwarded, &op->fwd_link);
	free(f);
	if (op->dw->closing) {
		op_fail(op, PORTER_E_SHUTDOWN, "daemon shutting down");
		return;
	}
	dispatch(op);
}

static void fwd_drop(inbox_msg *m)
{
	free(m);
}

/* Asks the owning worker to stop a forwarded request. */
typedef struct stop_msg {
	inbox_msg base;
	worker *from;
	uint64_t token;
} stop_msg;

static void stop_run(void *owner, inbox_msg *m)
{
	worker *w = owner;
	stop_msg *sm = (stop_msg *)m;
	db_worker *dw = w->db;
	list *pos, *tmp;
	if (dw) {
		list_for_each_safe(pos, tmp, &dw->forwarded) {
			dbop *op = list_entry(pos, dbop, fwd_link);
			if (op->from == sm->from && op->token == sm->token) {
				/* Its answer goes back and finds no waiter. */
				op_stop(op);
				break;
			}
		}
	}
	free(sm);
}

static void stop_drop(inbox_msg *m)
{
	free(m);
}

static void fwd_cancel(req *r)
{
	fwd_wait *fw = r->op;
	r->op = NULL;
	list_remove(&fw->link);
	/* The query runs on the session's worker: stop it there too, or it
	 * would hold the session (and the server) until it ends. */
	stop_msg *sm = malloc(sizeof(*sm));
	if (sm) {
		sm->base.run = stop_run;
		sm->base.drop = stop_drop;
		sm->from = r->w;
		sm->token = fw->token;
		if (inbox_push(&fw->to->inbox, &sm->base) < 0)
			free(sm);
	}
	free(fw);
	req_fail(r, PORTER_E_CANCELLED, "cancelled");
}

static void back_run(void *owner, inbox_msg *m)
{
	worker *w = owner;
	back_msg *b = (back_msg *)m;
	db_worker *dw = w->db;
	list *pos, *tmp;
	fwd_wait *fw = NULL;
	list_for_each_safe(pos, tmp, &dw->waits) {
		fwd_wait *x = list_entry(pos, fwd_wait, link);
		if (x->token == b->token) {
			fw = x;
			break;
		}
	}
	if (!fw) {
		free(b);
		return;
	}
	req *r = fw->r;
	list_remove(&fw->link);
	free(fw);
	r->op = NULL;
	r->cancel = NULL;
	Porter__V1__Response *resp = porter__v1__response__unpack(NULL, b->len, b->buf);
	free(b);
	if (!resp) {
		req_fail(r, PORTER_E_INTERNAL, "could not read a forwarded reply");
		return;
	}
	req_reply(r, resp);
	porter__v1__response__free_unpacked(resp, NULL);
}

static void forward(req *r, worker *to)
{
	db_worker *dw = r->w->db;
	size_t len = porter__v1__request__get_packed_size(r->msg);
	fwd_msg *f = malloc(sizeof(*f) + len);
	fwd_wait *fw = malloc(sizeof(*fw));
	if (!f || !fw) {
		free(f);
		free(fw);
		req_fail(r, PORTER_E_NOMEM, "out of memory");
		return;
	}
	f->base.run = fwd_run;
	f->base.drop = fwd_drop;
	f->from = r->w;
	f->token = ++dw->next_token;
	f->uid = r->c->uid;
	f->inst = r->c->client_instance;
	f->remaining_ms = req_remaining_ms(r);
	f->len = porter__v1__request__pack(r->msg, f->buf);
	fw->r = r;
	fw->token = f->token;
	fw->to = to;
	if (inbox_push(&to->inbox, &f->base) < 0) {
		free(f);
		free(fw);
		req_fail(r, PORTER_E_SHUTDOWN, "the session's worker is shutting down");
		return;
	}
	log_debug("db: worker %u forwards request %llu to worker %u", r->w->index,
		  (unsigned long long)r->id, to->index);
	list_push_back(&dw->waits, &fw->link);
	r->op = fw;
	r->cancel = fwd_cancel;
}

void db_handle(req *r)
{
	worker *w = r->w;
	const Porter__V1__Request *m = r->msg;
	uint64_t target = 0;
	if (!r->c) {
		/* A Batch member whose client went away before it started:
		 * no identity to act for. */
		req_fail(r, PORTER_E_CANCELLED, "the client went away");
		return;
	}
	switch (m->body_case) {
	case PORTER__V1__REQUEST__BODY_DB_QUERY:
		target = m->db_query->session;
		break;
	case PORTER__V1__REQUEST__BODY_DB_FETCH:
		target = m->db_fetch->stream;
		if (!target) {
			req_fail(r, PORTER_E_INVAL, "DbFetch needs a stream id");
			return;
		}
		break;
	case PORTER__V1__REQUEST__BODY_DB_CLOSE:
		target = m->db_close->session ? m->db_close->session : m->db_close->stream;
		if (!target) {
			req_fail(r, PORTER_E_INVAL, "DbClose needs a session or a stream id");
			return;
		}
		if (m->db_close->session && m->db_close->stream &&
		    m->db_close->session >> 48 != m->db_close->stream >> 48) {
			req_fail(r, PORTER_E_INVAL, "close the session and the stream separately");
			return;
		}
		break;
	default:
		break;
	}
	if (target) {
		unsigned owner = (unsigned)(target >> 48);
		if (owner >= w->srv->n_workers) {
			req_fail(r,
				 m->body_case == PORTER__V1__REQUEST__BODY_DB_FETCH
					 ? PORTER_E_NOT_FOUND
					 : PORTER_E_DB_SESSION,
				 "no such database session or stream");
			return;
		}
		if (owner != w->index) {
			forward(r, &w->srv->workers[owner]);
			return;
		}
	}
	dbop *op = calloc(1, sizeof(*op));
	if (!op) {
		req_fail(r, PORTER_E_NOMEM, "out of memory");
		return;
	}
	op->dw = w->db;
	op->r = r;
	op->msg = r->msg;
	op->uid = r->c->uid;
	op->inst = r->c->client_instance;
	op->kind = kind_of(r->msg);
	op->deadline = r->deadline;
	r->op = op;
	r->cancel = op_req_cancel;
	dispatch(op);
}

/* ---- sweeping ---- */

static void expire_queue(db_worker *dw, list *q, uint64_t now, const char *what)
{
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, q) {
		dbop *op = list_entry(pos, dbop, link);
		if (op->deadline <= now)
			op_fail(op, PORTER_E_TIMEOUT, "timed out waiting for %s", what);
	}
	(void)dw;
}

static void on_sweep(uv_timer_t *t)
{
	db_worker *dw = t->data;
	const config *cfg = dw->w->cfg;
	uint64_t now = now_ms(dw);
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &dw->sessions) {
		dbc *c = list_entry(pos, dbc, link);
		expire_queue(dw, &c->queue, now,
			     "the session (a query ahead of it is still running)");
		uint64_t gone = clients_gone_ms(c->uid, c->inst);
		if (gone != 0 && gone >= cfg->db_session_grace_ms) {
			log_debug("db: closing session %016llx: its client is gone",
				  (unsigned long long)c->id);
			dbc_close(c);
			continue;
		}
		if (cfg->db_session_idle_ms && c->state != DBC_QUERY && list_empty(&c->queue) &&
		    !c->cur && now - c->last_used >= cfg->db_session_idle_ms) {
			log_debug("db: closing idle session %016llx", (unsigned long long)c->id);
			dbc_close(c);
		}
	}
	list_for_each_safe(pos, tmp, &dw->streams) {
		dbc *c = list_entry(pos, dbc, slink);
		if (c->state != DBC_PAUSED)
			continue;
		uint64_t gone = clients_gone_ms(c->uid, c->inst);
		/* A pooled connection is shared: an unread cursor holds it for
		 * every other query of the pool, so it gets seconds, not the
		 * minutes a session of its own gets. */
		uint64_t idle = c->pool                   ? cfg->db_stream_idle_ms
				: cfg->db_session_idle_ms ? cfg->db_session_idle_ms
							  : 600000;
		if (c->pool && now - c->last_used >= idle) {
			dw->reclaimed[dw->reclaimed_next].id = c->stream_id;
			dw->reclaimed[dw->reclaimed_next].uid = c->uid;
			dw->reclaimed_next = (dw->reclaimed_next + 1) % RECLAIMED_KEPT;
			log_debug("db: reclaiming pooled stream %016llx of uid %u, unread %llu ms",
				  (unsigned long long)c->stream_id, (unsigned)c->uid,
				  (unsigned long long)(now - c->last_used));
		}
		if ((gone != 0 && gone >= cfg->db_session_grace_ms) || now - c->last_used >= idle)
			abandon_query(c);
	}
	list_for_each_safe(pos, tmp, &dw->pools) {
		pool *p = list_entry(pos, pool, link);
		expire_queue(dw, &p->waiters, now, "a pooled connection");
		list *x, *y;
		list_for_each_safe(x, y, &p->conns) {
			dbc *c = list_entry(x, dbc, link);
			list *e1, *e2;
			list_for_each_safe(e1, e2, &c->pipe) {
				pent *e = list_entry(e1, pent, link);
				/* The head has the connection's timer. Those behind
				 * it have not started: answered now, skipped later
				 * (their statements still run). */
				if (e1 == c->pipe.next || !e->op || e->op->deadline > now)
					continue;
				dbop *op = e->op;
				e->op = NULL;
				op->pent = NULL;
				op_fail(op, PORTER_E_TIMEOUT,
					"timed out in a pipeline behind other queries");
			}
		}
		list *a, *b;
		list_for_each_safe(a, b, &p->idle) {
			dbc *c = list_entry(a, dbc, ilink);
			if (now - c->last_used >= cfg->db_pool_idle_ms)
				dbc_close(c);
		}
		if (p->total == 0 && list_empty(&p->waiters)) {
			list_remove(&p->link);
			free(p->conninfo);
			free(p);
		}
	}
}

/* ---- worker lifecycle ---- */

int db_worker_init(worker *w)
{
	db_worker *dw = calloc(1, sizeof(*dw));
	if (!dw)
		return PORTER_E_NOMEM;
	dw->w = w;
	list_init(&dw->sessions);
	list_init(&dw->streams);
	list_init(&dw->pools);
	list_init(&dw->waits);
	list_init(&dw->forwarded);
	list_init(&dw->open);
	uv_check_init(&w->loop, &dw->seg_check);
	dw->seg_check.data = dw;
	uv_check_start(&dw->seg_check, on_seg_check);
	uv_unref((uv_handle_t *)&dw->seg_check);
	uv_timer_init(&w->loop, &dw->sweep);
	dw->sweep.data = dw;
	uv_timer_start(&dw->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
	uv_unref((uv_handle_t *)&dw->sweep);
	dw->live = 2; /* the sweep timer and the segment check */
	w->db = dw;
	return 0;
}

static void dw_maybe_free(db_worker *dw)
{
	if (dw->closing && dw->live == 0) {
		dw->w->db = NULL;
		free(dw);
	}
}

static void on_sweep_closed(uv_handle_t *h)
{
	db_worker *dw = h->data;
	dw->live--;
	dw_maybe_free(dw);
}

void db_worker_close(worker *w)
{
	db_worker *dw = w->db;
	if (!dw || dw->closing)
		return;
	dw->closing = 1;
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &dw->sessions)
		dbc_close(list_entry(pos, dbc, link));
	list_for_each_safe(pos, tmp, &dw->pools) {
		pool *p = list_entry(pos, pool, link);
		list *a, *b;
		list_for_each_safe(a, b, &p->waiters)
			op_fail(list_entry(a, dbop, link), PORTER_E_SHUTDOWN,
				"daemon shutting down");
		list_for_each_safe(a, b, &p->conns)
			dbc_close(list_entry(a, dbc, link));
		list_remove(&p->link);
		free(p->conninfo);
		free(p);
	}
	list_for_each_safe(pos, tmp, &dw->waits) {
		fwd_wait *fw = list_entry(pos, fwd_wait, link);
		list_remove(&fw->link);
		fw->r->cancel = NULL;
		fw->r->op = NULL;
		req_fail(fw->r, PORTER_E_SHUTDOWN, "daemon shutting down");
		free(fw);
	}
	uv_close((uv_handle_t *)&dw->sweep, on_sweep_closed);
	uv_close((uv_handle_t *)&dw->seg_check, on_sweep_closed);
}
