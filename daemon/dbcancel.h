/*
 * dbcancel - PostgreSQL cancel requests (PQcancel) sent from threads of
 * their own, bounded per uid, never waited on for long.
 *
 * libpq 15's PQcancel blocks: it connects to the server, sends the request
 * and waits for the server to close the connection, with no timeout
 * (connect_timeout and keepalives do not apply to it; a peer that accepts
 * and never answers holds it forever). Run on libuv's thread pool, a few
 * such cancels took every pool thread, and with them every uid's file
 * operations. Here each cancel gets a detached thread of its own: a uid
 * may have at most DBCANCEL_PER_UID of them running (hung ones included,
 * until they return), the process DBCANCEL_MAX; past either, the caller
 * is refused and ends the query by closing its connection instead. The
 * loop waits at most DBCANCEL_WAIT_MS for the answer, then gives up on it
 * (the thread runs on and frees its own state when PQcancel returns).
 *
 * Loop affinity: dbcancel_start and the `done` callback run on one worker
 * loop's thread; the counts are process-wide, guarded by a mutex.
 */
#ifndef PORTER_DBCANCEL_H
#define PORTER_DBCANCEL_H

#include <libpq-fe.h>
#include <sys/types.h>
#include <uv.h>

/* Cancel threads running at once, process-wide, and per uid. */
#define DBCANCEL_MAX 64u
#define DBCANCEL_PER_UID 4u
/* How long the loop waits for a cancel's answer before giving up on it
 * (PgBouncer's cancel_wait_timeout has the same default). */
#define DBCANCEL_WAIT_MS 10000u

/*
 * Called once on `loop`'s thread when the cancel is over: `answered` is 1
 * when PQcancel returned (whether the server took it or not; a failure is
 * logged), 0 when it did not return within DBCANCEL_WAIT_MS.
 */
typedef void (*dbcancel_done_cb)(void *arg, int answered);

/*
 * Sends the cancel request `pc` (from PQgetCancel; ownership passes to
 * this module in every case) on behalf of client `uid`, and calls
 * `done(arg)` on `loop` when it is over. Returns 0, or -1 when `uid` or the
 * process has no cancel to spare or a thread could not be started
 * (`done` is then never called).
 */
int dbcancel_start(uv_loop_t *loop, PGcancel *pc, uid_t uid, dbcancel_done_cb done, void *arg);

/* Cancel threads running for `uid` now (hung ones included). Any thread. */
unsigned dbcancel_running(uid_t uid);

#endif
