/*
 * dbstep - the PQconnectPoll steps of a connection's handshake that may
 * derive keys (a SCRAM login's PBKDF2, a TLS handshake), run on libuv's
 * thread pool instead of the worker loop: on the loop, one uid opening
 * sessions of a password role held every other client of the worker 4 ms
 * per login. A worker runs at most DBSTEP_SLOTS at once, the others wait
 * their turn in order; one that runs long gives its slot up (see
 * DBSTEP_LONG_MS).
 *
 * While its step runs a dbc's socket is not watched (libpq may close it
 * and open another), libpq's error message is not read, and the dbc is not
 * freed (dbconn.c's maybe_free waits for c->stepping to clear).
 *
 * Loop affinity: the worker loop thread, except that the step itself runs
 * PQconnectPoll on a pool thread.
 */
#ifndef PORTER_DBSTEP_H
#define PORTER_DBSTEP_H

#include <libpq-fe.h>

#include "dbint.h"

/* Connect steps a worker runs on libuv's thread pool at once; others wait
 * their turn in order. The pool also serves every uid's file operations:
 * one uid's logins take at most this many of its threads per worker. */
#define DBSTEP_SLOTS 1u

/* A step still running after this long has been made long by its server
 * (a SCRAM verifier may ask for any number of key derivation rounds, up to
 * 2^31: half an hour of a CPU, inside one PQconnectPoll that nothing can
 * stop, and a role may set its own verifier). It gives its slot up, so the
 * worker's other logins go on beside it, and its uid starts no other step
 * on the worker until it ends. At most DBSTEP_LONG_SLOTS per worker give
 * their slot up (each keeps a thread of the pool): more uids together can
 * still hold the slot. */
#define DBSTEP_LONG_MS 200u
#define DBSTEP_LONG_SLOTS 1u

/* Whether libpq's next PQconnectPoll on `pg` (not NULL) may compute keys,
 * so that it belongs on the thread pool. */
int dbstep_may_derive_keys(const PGconn *pg);

/* Queues c's next PQconnectPoll (its socket already unwatched) and starts
 * what the worker has slots for. When it has run, dbconn_step_done(c, 0)
 * gets c->step_st (or <0 if it was cancelled before it ran). */
void dbstep_queue(dbc *c);

/* Takes `c` (closing) off the queue, or asks the pool to drop its step if
 * it has not started; a running step still ends in dbconn_step_done. */
void dbstep_forget(dbc *c);

/* Looks at the worker's running steps: one that has run DBSTEP_LONG_MS
 * gives its slot up (see there), and waiting steps start. Called every
 * sweep of the worker's databases. */
void dbstep_sweep(db_worker *dw);

#endif
