/*
 * dbpool - the pooled connections of one client uid to one conninfo (a
 * pool, dbint.h), for stateless DbQuery without a session. A pooled
 * connection never serves two uids, so no session state, temp table or
 * pipeline segment is ever shared between them; before it serves another
 * client process of the same uid, its session state is reset. A query
 * runs on an idle connection, a new one (up to db-pool-size and the uid's
 * connection quota), in a pipeline of a busy one, or waits for the next
 * one freed.
 *
 * Only statements known to be fast (dblat.h) share a pipeline, and a
 * waiting fast one goes before waiting slow ones. Slow and unknown
 * statements hold at most db-pool-size connections; fast ones may use one
 * more, the fast lane, which serves nothing else while the pool is over
 * its size: a pool full of slow queries still answers a fast one at once.
 * A statement fast in some of its last runs but not most (a fast one
 * delayed by a busy machine, most likely) may use the lane too, but is
 * not pipelined.
 *
 * PostgreSQL forks and authenticates new connections in turn, so a lane
 * connection opened behind the ones a burst of slow queries is making
 * would be ready last: a query that may use the lane, arriving while such
 * connections are being made, waits first in line instead and runs on the
 * first of them that is ready (or freed), whose slow query then takes the
 * lane's new connection (dbpool_connected).
 *
 * Loop affinity: the pool's worker loop thread.
 */
#ifndef PORTER_DBPOOL_H
#define PORTER_DBPOOL_H

#include "dbint.h"

/* The pool of (`uid`, `conninfo`) on `dw`; made when there is none and
 * `create` says so. NULL when there is none, or out of memory. Owned by
 * `dw` (freed by the sweep once empty, or when the worker closes). */
pool *dbpool_find(db_worker *dw, uid_t uid, const char *conninfo, int create);

/* Runs `op` on a connection of pool `p`: in a pipeline (statements known
 * to be fast only, dblat.h), on an idle one, a new one, or the next one
 * freed (queued on p->waiters until then). */
void dbpool_run(pool *p, dbop *op);

/* Which waiter dbpool_take_waiter may take. */
enum dbpool_want {
	DBPOOL_FAST, /* one known to be fast, for a pipeline */
	DBPOOL_LANE, /* that, or else one that may use the fast lane */
	DBPOOL_ANY,  /* that, or else the first */
};

/* Takes the first waiter of `p` known to be fast, or else the first that
 * `want` allows; NULL when there is none. The op is off the queue
 * (queued 0). */
dbop *dbpool_take_waiter(pool *p, enum dbpool_want want);

/* Notes in its pool's latencies that pooled query `op` (NULL: nothing
 * noted) ran on `c` from `since` (uv_now() ms) until now. */
void dbpool_note(dbc *c, const dbop *op, uint64_t since);

/* Pooled connection `c` finished its query: reset it if needed, then hand
 * it to a waiter or keep it idle. */
void dbpool_release(dbc *c);

/* Pooled connection `c`, just connected for `op`: when a query that may
 * use the fast lane waits, it runs first and `op` goes to a new connection
 * (the lane's) or first in line for the next free one; returns 1. 0 when
 * `op` runs on `c` (the caller starts it). */
int dbpool_connected(dbc *c, dbop *op);

/* Pool `p` lost a connection: start a new one for the first waiter. */
void dbpool_kick(pool *p);

/* Whether `op` comes from another client process than the last query of
 * (pooled) `c`: that process's session state must not reach `op`. */
int dbpool_other_process(const dbc *c, const dbop *op);

/*
 * A query outside a pipeline from another client process than the last
 * one: the connection is reset with DISCARD ALL first (the reset leads of
 * dbpipe_send cannot follow a multi-statement query), and `op` waits at
 * the head of the pool's queue, where the reset connection picks it up.
 * 1 when it did so; 0 when `op` may run on `c` as it is.
 */
int dbpool_reset_first(dbc *c, dbop *op);

#endif
