/* dbpool - pooled connections per uid and conninfo; see dbpool.h. */
#include "dbpool.h"

#include <stdlib.h>
#include <string.h>

#include "dbconn.h"
#include "dblat.h"
#include "dbop.h"
#include "dbpipe.h"
#include "dbquery.h"
#include "log.h"
#include "porter_errors.h"

/* A query known to be fast joins a busy connection's pipeline holding
 * fewer than this many, rather than taking another connection: the server
 * then answers several per wake-up and per read, which on a few cores is
 * worth more than running them side by side. */
#define PIPE_SHARE 8
/* ...unless the query at its head has run this long already: it is slower
 * this time, and what queues behind it waits for it. */
#define PIPE_HEAD_MS 2
pool *dbpool_find(db_worker *dw, uid_t uid, const char *conninfo, int create)
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

int dbpool_other_process(const dbc *c, const dbop *op)
{
	return c->pool && c->has_last && c->last_inst != op->inst;
}

int dbpool_reset_first(dbc *c, dbop *op)
{
	if (op->kind != OP_QUERY || !dbpool_other_process(c, op))
		return 0;
	dbop *r = calloc(1, sizeof(*r));
	if (!r)
		return 0; /* the caller runs it: refusing it would be worse */
	r->dw = c->dw;
	r->kind = OP_RESET;
	r->deadline = db_now_ms(c->dw) + DRAIN_MS;
	list_push_back(c->pool->waiters.next, &op->link); /* at the front */
	op->queued = 1;
	dbquery_start(c, r);
	return 1;
}

static void pool_new_conn(pool *p, dbop *op)
{
	int err;
	dbc *c = dbconn_new(op->dw, p->conninfo, p->uid, &err);
	if (!c && err == PORTER_E_BUSY && p->total) {
		/* At its uid's limit: wait for one of the pool's own. */
		list_push_back(&p->waiters, &op->link);
		op->queued = 1;
		return;
	}
	if (!c) {
		if (err == PORTER_E_BUSY)
			dbconn_fail_uid_quota(op);
		else
			dbop_fail(op, PORTER_E_NOMEM, "out of memory");
		return;
	}
	c->pool = p;
	/* Without room for statements the connection simply runs unnamed. */
	if (dbstmt_init(&c->stmts, op->dw->w->cfg->db_statement_cache) < 0)
		log_warn("db: no memory for a statement cache");
	p->total++;
	list_push_back(&p->conns, &c->link);
	dbconn_connect(c, op);
}

dbop *dbpool_take_waiter(pool *p, enum dbpool_want want)
{
	list *pos;
	dbop *op = NULL;
	for (pos = p->waiters.next; pos != &p->waiters && !op; pos = pos->next)
		if (list_entry(pos, dbop, link)->fast)
			op = list_entry(pos, dbop, link);
	for (pos = p->waiters.next; want == DBPOOL_LANE && pos != &p->waiters && !op;
	     pos = pos->next)
		if (list_entry(pos, dbop, link)->lane)
			op = list_entry(pos, dbop, link);
	if (!op && want == DBPOOL_ANY && !list_empty(&p->waiters))
		op = list_entry(p->waiters.next, dbop, link);
	if (op) {
		list_remove(&op->link);
		op->queued = 0;
	}
	return op;
}

void dbpool_note(dbc *c, const dbop *op, uint64_t since)
{
	/* A new backend's first query also loads its caches (some 10 ms
	 * here): it says nothing of the statement. */
	int warm = c->warm;
	c->warm = 1;
	if (!c->pool || !op || !op->lat_hash || !warm)
		return;
	uint64_t now = db_now_ms(c->dw);
	dblat_note(&c->pool->lat, op->lat_hash, now > since ? now - since : 0, now);
}

/* Connections of `p` not idle: running, connecting, or holding a stream. */
static unsigned busy(const pool *p)
{
	unsigned n = p->total;
	for (const list *pos = p->idle.next; pos != &p->idle; pos = pos->next)
		n--;
	return n;
}

/* Sends the pool's waiting fast queries after `c`'s pipelined head, up to
 * `depth` in its pipeline. */
static void take_fast_along(dbc *c, unsigned depth)
{
	dbop *w;
	while (c->state == DBC_QUERY && c->pipelined && c->npipe < depth &&
	       (w = dbpool_take_waiter(c->pool, DBPOOL_FAST)))
		dbpipe_send(c, w, "", 0);
}

/* The busy connection of `p` with the shortest pipeline shorter than
 * `depth` whose head is not slow, or NULL. */
static dbc *shortest_pipe(db_worker *dw, pool *p, unsigned depth, uint64_t head_ms)
{
	dbc *best = NULL;
	uint64_t now = db_now_ms(dw);
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

/* Whether a connection of `p` is being made for a query without the
 * lane's right. */
static int connecting_for_slow(const pool *p)
{
	for (const list *pos = p->conns.next; pos != &p->conns; pos = pos->next) {
		const dbc *c = list_entry(pos, dbc, link);
		if (c->state == DBC_CONNECTING && c->cur && c->cur->kind == OP_QUERY &&
		    !c->cur->lane)
			return 1;
	}
	return 0;
}

void dbpool_run(pool *p, dbop *op)
{
	db_worker *dw = op->dw;
	/* Only a statement known to be fast shares a pipeline: a slow or
	 * unknown one takes an idle connection or a new one, or waits for
	 * one of its own, rather than queue behind anything or hold up the
	 * queries of its sync point. */
	if (dbpipe_pipelinable(op)) {
		op->lat_hash = dblat_hash(op->msg->db_query->sql);
		enum dblat_class cls = dblat_class(&p->lat, op->lat_hash, db_now_ms(dw));
		op->fast = cls == DBLAT_FAST;
		/* Fast in some of its last runs: most likely a fast one
		 * delayed by a busy machine, so it may use the lane. */
		op->lane = cls != DBLAT_UNKNOWN;
	}
	if (op->fast) {
		dbc *c = shortest_pipe(dw, p, PIPE_SHARE, PIPE_HEAD_MS);
		if (c) {
			dbpipe_send(c, op, "", 0);
			return;
		}
	}
	/* Slow and unknown statements hold at most db-pool-size connections;
	 * fast ones may use one more (the fast lane), so that a pool full of
	 * slow queries still answers a fast one in milliseconds. */
	unsigned limit = dw->w->cfg->db_pool_size + (op->lane ? 1 : 0);
	while (!list_empty(&p->idle) && busy(p) < limit) {
		/* Most recently used first: it is the most likely alive. */
		dbc *c = list_entry(p->idle.prev, dbc, ilink);
		list_remove(&c->ilink);
		c->in_idle = 0;
		if (PQstatus(c->pg) != CONNECTION_OK) {
			dbconn_close(c);
			continue;
		}
		dbquery_start(c, op);
		return;
	}
	if (op->lane && connecting_for_slow(p)) {
		/* A pool filling up makes its connections together, and
		 * PostgreSQL forks and authenticates them in turn: the lane's,
		 * opened behind them, was ready last (a bystander's SELECT 1
		 * took 250-400 ms at load 15 beside 16 pg_sleep(0.3) on a pool
		 * of 8, with the first of the others ready 30 ms after it
		 * came). It waits, first in line, for the first one ready
		 * (dbpool_connected) or freed instead. */
		list_push_back(p->waiters.next, &op->link); /* at the front */
		op->queued = 1;
		return;
	}
	if (p->total < limit) {
		pool_new_conn(p, op);
		return;
	}
	if (op->fast) {
		/* Every connection is busy: send it ahead on the shortest
		 * pipeline instead of waiting for one to be free. */
		dbc *best = shortest_pipe(dw, p, PIPE_DEPTH, UINT64_MAX);
		if (best) {
			dbpipe_send(best, op, "", 0);
			return;
		}
	}
	list_push_back(&p->waiters, &op->link);
	op->queued = 1;
}

void dbpool_release(dbc *c)
{
	pool *p = c->pool;
	if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		/* Left inside a transaction by a stateless query: not reusable
		 * as it is; a fresh connection costs less than guessing. */
		dbconn_close(c);
		return;
	}
	if (c->needs_reset) {
		dbop *op = calloc(1, sizeof(*op));
		if (!op) {
			dbconn_close(c);
			return;
		}
		op->dw = c->dw;
		op->kind = OP_RESET;
		op->deadline = db_now_ms(c->dw) + DRAIN_MS;
		dbquery_start(c, op);
		return;
	}
	/* A waiting fast query goes first, with the others behind it in
	 * the pipeline: they take milliseconds, and a slow one waiting
	 * would make them wait for all of its run. A connection beyond
	 * db-pool-size (the fast lane) serves fast queries only. */
	dbop *op = dbpool_take_waiter(p, busy(p) > c->dw->w->cfg->db_pool_size ? DBPOOL_LANE
									       : DBPOOL_ANY);
	if (op) {
		dbquery_start(c, op);
		if (op->fast)
			take_fast_along(c, PIPE_SHARE);
		return;
	}
	list_push_back(&p->idle, &c->ilink);
	c->in_idle = 1;
	dbconn_update_poll(c);
}

int dbpool_connected(dbc *c, dbop *op)
{
	pool *p = c->pool;
	if (op->kind != OP_QUERY || op->lane)
		return 0;
	dbop *w = dbpool_take_waiter(p, DBPOOL_LANE);
	if (!w)
		return 0;
	/* `op` takes the lane's connection instead: slow queries still hold
	 * db-pool-size connections at most, and `c`, once `w` is answered,
	 * is the lane. */
	op->c = NULL;
	if (p->total < c->dw->w->cfg->db_pool_size + 1) {
		pool_new_conn(p, op);
	} else {
		list_push_back(p->waiters.next, &op->link); /* at the front */
		op->queued = 1;
	}
	dbquery_start(c, w);
	if (w->fast)
		take_fast_along(c, PIPE_SHARE);
	return 1;
}

void dbpool_kick(pool *p)
{
	if (list_empty(&p->waiters))
		return;
	db_worker *dw = list_entry(p->waiters.next, dbop, link)->dw;
	if (dw->closing || p->total >= dw->w->cfg->db_pool_size)
		return;
	pool_new_conn(p, dbpool_take_waiter(p, DBPOOL_ANY));
}
