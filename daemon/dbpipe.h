/*
 * dbpipe - pooled queries sent ahead in pipeline mode. Up to PIPE_DEPTH
 * queries wait on one pooled connection, each as a pent (dbint.h); those
 * sent within one loop turn share one sync point (a segment), closed at
 * the end of the turn; they reach libpq only then. A query runs as a
 * statement prepared on the connection (dbstmt.h) when it can. Each
 * query's outcome is its own: when a query of a segment fails, the server
 * rolls the segment back and its other queries run again alone; a query
 * hit by a cancel meant for the one ahead of it, or whose prepared
 * statement went stale, runs again too. Before the first query of another
 * client process of the pool's uid, the connection's session state is
 * reset in the same segment.
 *
 * Loop affinity: the connection's worker loop thread.
 */
#ifndef PORTER_DBPIPE_H
#define PORTER_DBPIPE_H

#include "dbint.h"

/*
 * Whether a pooled query may be sent ahead in a pipeline: one statement
 * that cannot change the transaction or session state (so the queries
 * sharing the connection cannot see each other), not streamed. The test is
 * on the text alone and errs on the side of "no".
 */
int dbpipe_pipelinable(const dbop *op);

/*
 * Sends pipelinable `op` on pooled connection `c`, idle or already running
 * a pipeline: in the segment open on `c` (closed as above), or `alone` in
 * a segment of its own, sent at once. `stale` names a statement to
 * DEALLOCATE first, or is "". The op is answered when its segment's sync
 * arrives, or at once on failure.
 */
void dbpipe_send(dbc *c, dbop *op, const char *stale, int alone);

/*
 * Hands the queries gathered for the segment open on `c` to libpq now
 * (they are sent with its Sync at the end of the loop turn). Called before
 * an op leaves a gathered entry, whose query must still take its place in
 * the pipeline. Never breaks `c` here: a failure breaks it when the
 * segment closes.
 */
void dbpipe_materialize(dbc *c);

/* Takes every result libpq has complete on the pipelined `c`. */
void dbpipe_pump(dbc *c);

/* Drops every pipeline entry of `c`, failing their ops with `code` and
 * `why`, except c->cur (the head's, which the caller handles). */
void dbpipe_clear(dbc *c, int code, const char *why);

/* The check handle's callback (h->data is the db_worker): the loop turn is
 * over, every segment opened during it is synced and sent. */
void dbpipe_seg_check(uv_check_t *h);

#endif
