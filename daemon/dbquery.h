/*
 * dbquery - queries outside a pipeline on one connection: a session's
 * queries (one at a time, in order), pooled queries that cannot be
 * pipelined (several statements, streams), and resets; with parameters
 * through the extended protocol, and streamed results (single-row mode,
 * paused at each full chunk until the client's DbFetch, so a slow reader
 * holds PostgreSQL back through the socket).
 *
 * Loop affinity: the connection's worker loop thread.
 */
#ifndef PORTER_DBQUERY_H
#define PORTER_DBQUERY_H

#include "dbint.h"

/* Sends op's query on the idle connection `c` (a pipelinable pooled one
 * goes into a pipeline, dbpipe_send). The op is answered when it ends. */
void dbquery_start(dbc *c, dbop *op);

/* Takes every result libpq has complete, without blocking, into c->cur. */
void dbquery_pump(dbc *c);

/* `c` finished its query: it is ready again, and runs what waits for it
 * (its session queue, or its pool's release), unless a PQcancel is still
 * on its way (cancel_done calls this again then). */
void dbquery_after(dbc *c);

/*
 * Sends `sql` with the parameters of `q` (op's query) through the extended
 * protocol: unnamed when `stmt` is NULL, else as the prepared statement
 * `stmt`, parsed first when `prepare`. 1 on success; 0 when libpq refused
 * (out of memory is recorded in op's error).
 */
int dbquery_send_params(dbc *c, dbop *op, const Porter__V1__DbQuery *q, const char *sql,
			const char *stmt, int prepare);

#endif
