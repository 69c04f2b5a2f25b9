/*
 * dbconn - one PostgreSQL connection (a dbc, dbint.h) on a worker loop:
 * created against its uid's connection quota, resolved on the thread pool
 * (libpq would block the loop in DNS), connected with PQconnectPoll (the
 * steps that may derive keys, a SCRAM login's PBKDF2 or a TLS handshake,
 * on the thread pool too: dbstep.h), watched with one uv_poll per
 * socket, timed with one timer (connect, query or drain deadline),
 * cancelled on the server with PQcancel on a thread of its own (it
 * blocks; dbcancel.h), and closed, its memory freed once every handle and
 * job has called back.
 *
 * A pooled connection that fails is closed (its pool replaces it); a
 * session stays, broken, answering errors until its client closes it.
 *
 * Loop affinity: the connection's worker loop thread.
 */
#ifndef PORTER_DBCONN_H
#define PORTER_DBCONN_H

#include "dbint.h"

/*
 * A new connection for client `uid`, counted against its
 * db-max-connections-per-uid (sessions and pooled connections alike, over
 * every worker; porterd's own uid is counted, never limited). Not
 * connected yet (dbconn_connect). NULL with `*err` PORTER_E_BUSY over that
 * limit, or PORTER_E_NOMEM. Owned by `dw` until closed.
 */
dbc *dbconn_new(db_worker *dw, const char *conninfo, uid_t uid, int *err);

/* A connect step of `c` queued by dbstep_queue has run (status 0, its
 * result in c->step_st) or was cancelled before it ran (<0): frees a
 * closing `c`, breaks `c`, or goes on with the handshake. */
void dbconn_step_done(dbc *c, int status);

/* Answers `op` with the BUSY error of its uid's connection quota. */
void dbconn_fail_uid_quota(dbop *op);

/* Starts connecting `c` on behalf of `op` (which it answers, or passes on
 * to the query once connected). */
void dbconn_connect(dbc *c, dbop *op);

/* Watches c's socket for what its state needs; breaks `c` when it cannot. */
void dbconn_update_poll(dbc *c);

/* Arms c's one timer for `deadline` (loop ms; past means now), replacing
 * the deadline it had. */
void dbconn_arm_timer(dbc *c, uint64_t deadline);

/* Nothing of `c` is due any more (the timer may still fire, and then does
 * nothing). */
void dbconn_disarm_timer(dbc *c);

/* Asks the server to cancel what `c` runs, from a thread of its own, a
 * bounded number at a time per uid (dbcancel.h); pipelined queries behind the head are
 * marked exposed to it. 0, or -1 when no cancel could be sent. */
int dbconn_send_cancel(dbc *c);

/*
 * Abandons the running query (its op was answered already): cancels it on
 * the server and lets `c` drain the remaining results in the worker's
 * bounded turns (dbdrain.h), within DRAIN_MS. 0, or -1 when `c` had to be
 * given up instead (broken then).
 */
int dbconn_abandon(dbc *c);

/* The connection failed for reason `why` (plus libpq's message): what runs
 * or waits on it fails; a pooled one is closed, a session stays broken. */
void dbconn_broken(dbc *c, const char *why);

/* Makes the query `op` starts on `c` result stream `id` of op's client:
 * listed on the worker (for DbFetch and the sweep) and counted as an open
 * stream of c's uid (CLIENTS_STREAMS, in stats and metrics). */
void dbconn_stream_begin(dbc *c, uint64_t id, const dbop *op);

/* Ends c's result stream, if it has one: off the list and the count. */
void dbconn_stream_end(dbc *c);

/* Closes `c` for good (idempotent); pending ops get errors. Its memory is
 * freed when the last handle and PQcancel job have called back. For a
 * session this ends the server session, rolling back any open
 * transaction. */
void dbconn_close(dbc *c);

#endif
