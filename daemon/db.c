/* db - PostgreSQL on the worker loops; see db.h and dbint.h. */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clients.h"
#include "dalloc.h"
#include "dbconn.h"
#include "dbint.h"
#include "dbop.h"
#include "dbdrain.h"
#include "dbpipe.h"
#include "dbpolicy.h"
#include "dbpool.h"
#include "dbquery.h"
#include "dbstep.h"
#include "dbsql.h"
#include "dbwire.h"
#include "fwd.h"
#include "log.h"
#include "porter_errors.h"
#include "worker.h"

/* How often queued deadlines, idle limits and vanished clients are checked. */
#define SWEEP_MS 100
/* Requests waiting for one session. */
#define MAX_QUEUE 1024
/* Rows in one streamed chunk, at most. */
#define MAX_CHUNK_ROWS 100000

static void dispatch(dbop *op);

void db_mask_conninfo(const char *conninfo, char *out, size_t cap)
{
	dbpolicy_mask(conninfo, out, cap);
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
	const char *root;
	int rc = dbpolicy_check(conninfo, op->uid != clients_self(), &cfg->db_allow_targets, why,
				sizeof(why));
	if (rc == 0 && (rc = dbpolicy_root_cert(conninfo, &cfg->db_tls_root_cert, &root)) < 0)
		snprintf(why, sizeof(why),
			 "the hosts of this conninfo have different db-tls-root-cert files (libpq "
			 "verifies every host against one): connect to them separately");
	if (rc == 0)
		return 1;
	/* Debug level: a client repeating a refused request must not flood the
	 * log; it gets the reason itself. */
	log_debug("db: refused a conninfo of uid %u: %s", (unsigned)op->uid, why);
	dbop_fail(op, rc, "%s", why);
	return 0;
}

static void do_open(dbop *op)
{
	db_worker *dw = op->dw;
	Porter__V1__DbOpen *o = op->msg->db_open;
	if (!o->conninfo || !o->conninfo[0]) {
		dbop_fail(op, PORTER_E_INVAL, "DbOpen needs a conninfo");
		return;
	}
	if (!conninfo_allowed(op, o->conninfo))
		return;
	if (dw->n_sessions >= dw->w->cfg->db_max_sessions) {
		dbop_fail(op, PORTER_E_BUSY, "too many database sessions on this worker");
		return;
	}
	uint64_t id;
	if (fwd_new_id(dw->w->index, &id) < 0) {
		dbop_fail(op, PORTER_E_INTERNAL, "no randomness for a session id");
		return;
	}
	int err;
	dbc *c = dbconn_new(dw, o->conninfo, op->uid, &err);
	if (!c) {
		if (err == PORTER_E_BUSY)
			dbconn_fail_uid_quota(op);
		else
			dbop_fail(op, PORTER_E_NOMEM, "out of memory");
		return;
	}
	c->id = id;
	c->inst = op->inst;
	dw->n_sessions++;
	list_push_back(&dw->sessions, &c->link);
	char masked[256];
	db_mask_conninfo(o->conninfo, masked, sizeof(masked));
	log_debug("db: worker %u opening session %016llx (%s)", dw->w->index,
		  (unsigned long long)c->id, masked);
	dbconn_connect(c, op);
}

static void do_query(dbop *op)
{
	db_worker *dw = op->dw;
	Porter__V1__DbQuery *q = op->msg->db_query;
	if (!q->sql) {
		dbop_fail(op, PORTER_E_INVAL, "DbQuery needs sql");
		return;
	}
	/* What libpq would refuse is refused here, for this query alone: a
	 * refusal inside a shared pipeline would break the connection and
	 * fail the queries of every client sharing it. */
	if (q->n_params > DBWIRE_MAX_PARAMS) {
		dbop_fail(op, PORTER_E_INVAL,
			  "a query may have at most 65535 parameters (PostgreSQL's limit)");
		return;
	}
	/* Too few parameters: PostgreSQL would say so naming porterd's own
	 * prepared statement ("porter_s3"); say it in the caller's terms,
	 * before anything is sent. Without parameters the simple protocol
	 * runs the text, where $n is PostgreSQL's to refuse. */
	unsigned used = q->n_params ? dbsql_max_param(q->sql) : 0;
	if (used > q->n_params) {
		char msg[160];
		dbsql_count_message(used, q->n_params, msg, sizeof(msg));
		dbop_fail_detail(op, PORTER_E_DB, "08P01", NULL, NULL, "%s", msg);
		return;
	}
	if (q->chunk_rows > MAX_CHUNK_ROWS)
		q->chunk_rows = MAX_CHUNK_ROWS;
	op->chunk_rows = (int)q->chunk_rows;
	if (!q->session) {
		if (!q->conninfo || !q->conninfo[0]) {
			dbop_fail(op, PORTER_E_INVAL, "DbQuery needs a session or a conninfo");
			return;
		}
		/* Checked once per pool and configuration generation (a reload
		 * may have taken a target away), and before a pool is made, so
		 * refused conninfos leave nothing behind. */
		pool *p = dbpool_find(dw, op->uid, q->conninfo, 0);
		if (!p || p->checked != dw->w->cfg->generation) {
			if (!conninfo_allowed(op, q->conninfo))
				return;
			if (!p && !(p = dbpool_find(dw, op->uid, q->conninfo, 1))) {
				dbop_fail(op, PORTER_E_NOMEM, "out of memory");
				return;
			}
			p->checked = dw->w->cfg->generation;
		}
		dbpool_run(p, op);
		return;
	}
	dbc *c = find_session(dw, q->session);
	if (!c || c->uid != op->uid || c->inst != op->inst) {
		/* Another client's session looks exactly like a missing one. */
		dbop_fail(op, PORTER_E_DB_SESSION, "no such database session");
		return;
	}
	if (c->state == DBC_BROKEN) {
		dbop_fail(op, PORTER_E_DB_BROKEN,
			  "the session's connection is broken; close it and open another");
		return;
	}
	c->last_used = db_now_ms(dw);
	if (c->state == DBC_READY && list_empty(&c->queue)) {
		dbquery_start(c, op);
		return;
	}
	size_t n = 0;
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &c->queue)
		n++;
	if (n >= MAX_QUEUE) {
		dbop_fail(op, PORTER_E_BUSY, "too many queries queued on this session");
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
				dbop_fail(op, PORTER_E_TIMEOUT,
					  "result stream reclaimed: not read for %u ms "
					  "(db-stream-idle)",
					  op->dw->w->cfg->db_stream_idle_ms);
				return;
			}
		dbop_fail(op, PORTER_E_NOT_FOUND,
			  "no such result stream (finished, abandoned or timed out)");
		return;
	}
	if (c->state != DBC_PAUSED) {
		dbop_fail(op, PORTER_E_BUSY, "a fetch on this stream is already running");
		return;
	}
	c->cur = op;
	op->c = c;
	/* The chunk size of the query carries over to every fetch. */
	op->chunk_rows = c->stream_chunk;
	c->state = DBC_QUERY;
	dbconn_arm_timer(c, op->deadline);
	dbquery_pump(c);
}

static void do_close(dbop *op)
{
	Porter__V1__DbClose *cl = op->msg->db_close;
	db_worker *dw = op->dw;
	if (cl->stream) {
		dbc *c = find_stream(dw, cl->stream);
		if (!c || c->uid != op->uid || c->inst != op->inst) {
			dbop_fail(op, PORTER_E_NOT_FOUND, "no such result stream");
			return;
		}
		if (c->state == DBC_PAUSED)
			dbconn_abandon(c);
	}
	if (cl->session) {
		dbc *c = find_session(dw, cl->session);
		if (!c || c->uid != op->uid || c->inst != op->inst) {
			dbop_fail(op, PORTER_E_DB_SESSION, "no such database session");
			return;
		}
		/* Closing the connection ends the server session, which rolls
		 * back any transaction left open. */
		dbconn_close(c);
	}
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__DbCloseReply cr = PORTER__V1__DB_CLOSE_REPLY__INIT;
	resp.body_case = PORTER__V1__RESPONSE__BODY_DB_CLOSE;
	resp.db_close = &cr;
	dbop_reply(op, &resp);
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
		dbop_free(op);
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
		dbop_fail(op, PORTER_E_CANCELLED, "cancelled");
		return 0;
	}
	dbc *c = op->c;
	if (op->pent) {
		if (op->pent->unsent)
			dbpipe_materialize(c);
		op->pent->op = NULL;
		op->pent = NULL;
		if (c->cur == op) {
			c->cur = NULL;
			dbconn_send_cancel(c);
			dbconn_arm_timer(c, db_now_ms(c->dw) + DRAIN_MS);
		}
		dbop_fail(op, PORTER_E_CANCELLED, "cancelled");
		return 0;
	}
	if (c && c->cur == op) {
		if (c->state == DBC_QUERY) {
			c->cur = NULL;
			dbop_fail(op, PORTER_E_CANCELLED, "cancelled");
			dbconn_abandon(c);
			return 0;
		}
		/* Connecting: the connection is of no use to anyone now. */
		c->cur = NULL;
		dbop_fail(op, PORTER_E_CANCELLED, "cancelled");
		if (c->id)
			dbconn_close(c);
		else
			dbconn_broken(c, "cancelled while connecting");
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

/* ---- the door ---- */

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

void db_handle(req *r)
{
	const Porter__V1__Request *m = r->msg;
	uint64_t target = 0;
	if (!r->c && !r->back) {
		/* A Batch member whose client went away before it started:
		 * nobody is left to answer. */
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
		    fwd_id_owner(m->db_close->session) != fwd_id_owner(m->db_close->stream)) {
			req_fail(r, PORTER_E_INVAL, "close the session and the stream separately");
			return;
		}
		break;
	default:
		break;
	}
	/* A session or stream of another worker runs there; one that names
	 * no worker is looked up here and not found. */
	if (fwd_to_owner(r, target))
		return;
	dbop *op = dcalloc(1, sizeof(*op));
	if (!op) {
		req_fail(r, PORTER_E_NOMEM, "out of memory");
		return;
	}
	op->dw = r->w->db;
	op->r = r;
	op->msg = r->msg;
	op->uid = r->uid;
	op->inst = r->instance;
	op->kind = kind_of(r->msg);
	op->deadline = r->deadline;
	r->op = op;
	r->cancel = op_req_cancel;
	if (op->dw->closing) {
		dbop_fail(op, PORTER_E_SHUTDOWN, "daemon shutting down");
		return;
	}
	dispatch(op);
}

/* ---- sweeping ---- */

static void expire_queue(db_worker *dw, list *q, uint64_t now, const char *what)
{
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, q) {
		dbop *op = list_entry(pos, dbop, link);
		if (op->deadline <= now)
			dbop_fail(op, PORTER_E_TIMEOUT, "timed out waiting for %s", what);
	}
	(void)dw;
}

/* Remembers that stream `id` of `uid` was reclaimed (RECLAIMED_PER_UID). */
static void remember_reclaimed(db_worker *dw, uint64_t id, uid_t uid)
{
	unsigned mine = 0, own_oldest = 0, free_slot = RECLAIMED_KEPT, oldest = 0;
	for (unsigned i = 0; i < RECLAIMED_KEPT; i++) {
		if (!dw->reclaimed[i].id) {
			free_slot = i;
			continue;
		}
		if (dw->reclaimed[i].seq < dw->reclaimed[oldest].seq || !dw->reclaimed[oldest].id)
			oldest = i;
		if (dw->reclaimed[i].uid != uid)
			continue;
		if (!mine++ || dw->reclaimed[i].seq < dw->reclaimed[own_oldest].seq)
			own_oldest = i;
	}
	unsigned slot = mine >= RECLAIMED_PER_UID    ? own_oldest
			: free_slot < RECLAIMED_KEPT ? free_slot
						     : oldest;
	dw->reclaimed[slot].id = id;
	dw->reclaimed[slot].uid = uid;
	dw->reclaimed[slot].seq = ++dw->reclaimed_seq;
}

static void on_sweep(uv_timer_t *t)
{
	db_worker *dw = t->data;
	const config *cfg = dw->w->cfg;
	uint64_t now = db_now_ms(dw);
	list *pos, *tmp;
	dbstep_sweep(dw);
	list_for_each_safe(pos, tmp, &dw->sessions) {
		dbc *c = list_entry(pos, dbc, link);
		expire_queue(dw, &c->queue, now,
			     "the session (a query ahead of it is still running)");
		uint64_t gone = clients_gone_ms(c->uid, c->inst);
		if (gone != 0 && gone >= cfg->db_session_grace_ms) {
			log_debug("db: closing session %016llx: its client is gone",
				  (unsigned long long)c->id);
			dbconn_close(c);
			continue;
		}
		if (cfg->db_session_idle_ms && c->state != DBC_QUERY && list_empty(&c->queue) &&
		    !c->cur && now - c->last_used >= cfg->db_session_idle_ms) {
			log_debug("db: closing idle session %016llx", (unsigned long long)c->id);
			dbconn_close(c);
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
			remember_reclaimed(dw, c->stream_id, c->uid);
			log_debug("db: reclaiming pooled stream %016llx of uid %u, unread %llu ms",
				  (unsigned long long)c->stream_id, (unsigned)c->uid,
				  (unsigned long long)(now - c->last_used));
		}
		if ((gone != 0 && gone >= cfg->db_session_grace_ms) || now - c->last_used >= idle)
			dbconn_abandon(c);
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
				if (e->unsent)
					dbpipe_materialize(c);
				dbop *op = e->op;
				e->op = NULL;
				op->pent = NULL;
				dbop_fail(op, PORTER_E_TIMEOUT,
					  "timed out in a pipeline behind other queries");
			}
		}
		list *a, *b;
		list_for_each_safe(a, b, &p->idle) {
			dbc *c = list_entry(a, dbc, ilink);
			if (now - c->last_used >= cfg->db_pool_idle_ms)
				dbconn_close(c);
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
	list_init(&dw->open);
	list_init(&dw->step_wait);
	list_init(&dw->step_run);
	uv_check_init(&w->loop, &dw->seg_check);
	dw->seg_check.data = dw;
	uv_check_start(&dw->seg_check, dbpipe_seg_check);
	uv_unref((uv_handle_t *)&dw->seg_check);
	uv_timer_init(&w->loop, &dw->sweep);
	dw->sweep.data = dw;
	uv_timer_start(&dw->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
	uv_unref((uv_handle_t *)&dw->sweep);
	dw->live = 2; /* the sweep timer and the segment check */
	dbdrain_worker_init(dw);
	w->db = dw;
	return 0;
}

void db_maybe_free(db_worker *dw)
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
	db_maybe_free(dw);
}

void db_worker_close(worker *w)
{
	db_worker *dw = w->db;
	if (!dw || dw->closing)
		return;
	dw->closing = 1;
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &dw->sessions)
		dbconn_close(list_entry(pos, dbc, link));
	list_for_each_safe(pos, tmp, &dw->pools) {
		pool *p = list_entry(pos, pool, link);
		list *a, *b;
		list_for_each_safe(a, b, &p->waiters)
			dbop_fail(list_entry(a, dbop, link), PORTER_E_SHUTDOWN,
				  "daemon shutting down");
		list_for_each_safe(a, b, &p->conns)
			dbconn_close(list_entry(a, dbc, link));
		list_remove(&p->link);
		free(p->conninfo);
		free(p);
	}
	uv_close((uv_handle_t *)&dw->sweep, on_sweep_closed);
	uv_close((uv_handle_t *)&dw->seg_check, on_sweep_closed);
	dbdrain_worker_close(dw, on_sweep_closed);
}
