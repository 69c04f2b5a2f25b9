/*
 * dbdrain - the results of an abandoned query (its client was answered
 * already: the stream was closed or reclaimed, the query timed out or was
 * cancelled), discarded in bounded turns of the worker's loop.
 *
 * An unread cursor leaves PostgreSQL's rows waiting in the socket buffers,
 * hundreds of KiB of them, and libpq makes a PGresult of each row in
 * single-row mode; until the cancel lands they all have to be read. Taken
 * whole in the read callback, one connection's drain cost the loop about
 * a millisecond per 16 KiB read, and eight reclaimed at once held every
 * other client of the worker for tens of milliseconds per turn. Here a
 * worker's draining connections share DBDRAIN_TURN_RESULTS results and
 * DBDRAIN_TURN_NS per loop turn, in turn, and a uv_idle handle brings the
 * next turn at once (results already in libpq's buffer need no socket
 * event), so the loop polls for everyone else's I/O between them. A
 * connection that has parsed all it read goes back to waiting for its
 * socket; one that still has results stops being watched meanwhile, so
 * libpq's buffer never grows past one read while the drain waits its turn.
 *
 * The drain ends as before: when libpq has no more results the connection
 * is ready for the next query (dbquery_after); DRAIN_MS still bounds it
 * (dbconn.c's timer breaks the connection). A pooled connection that has
 * drained DBDRAIN_POOLED_MAX results is closed instead.
 *
 * Loop affinity: the worker's loop thread; nothing is locked.
 */
#ifndef PORTER_DBDRAIN_H
#define PORTER_DBDRAIN_H

#include "dbint.h"

/* Results discarded per loop turn, over all of a worker's draining
 * connections, and the time a turn may spend on them (checked every few
 * results): a few hundred microseconds of parsing at most. */
#define DBDRAIN_TURN_RESULTS 256u
#define DBDRAIN_TURN_NS 250000u

/* Results a pooled connection drains before it is closed instead. An
 * unread cursor over TCP can leave megabytes of rows in the socket
 * buffers (300,000 results of one small column measured), a tenth of a
 * second of porterd's CPU and as much of PostgreSQL's to send them; a new
 * connection costs a few milliseconds (a SCRAM login's key derivation
 * included), so past this many a pooled connection is dropped and its
 * pool makes another when it needs one. A session drains to the end: it
 * is its client's, with its state. */
#define DBDRAIN_POOLED_MAX 16384u

/* Sets up `dw`'s drain list and its idle handle (which counts in
 * dw->live until dbdrain_worker_close's callback). */
void dbdrain_worker_init(db_worker *dw);

/* Closes `dw`'s idle handle; `closed` runs when it has (its data is dw).
 * Every connection has been closed (forgotten here) before. */
void dbdrain_worker_close(db_worker *dw, uv_close_cb closed);

/* `c` (not pipelined, state DBC_QUERY, cur NULL) is draining an abandoned
 * query: its results are taken in the worker's next drain turns. May
 * finish the drain at once (the connection is then ready or broken). */
void dbdrain_pump(dbc *c);

/* `c` no longer drains (it is closing or broken): off the list.
 * Idempotent. */
void dbdrain_forget(dbc *c);

#endif
