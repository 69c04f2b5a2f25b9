/*
 * wrig - a worker rig for unit tests of the daemon's request modules (req,
 * cancel, batch): hand-built workers of a hand-built server that never
 * start a thread; the test is their loop thread and runs the loops itself
 * (wrig_pump), so it decides when each inbox is served and may move a
 * loop's clock. Clients are connections on socketpairs whose other end
 * the test reads replies from, as a client would. Links porterd_core;
 * Check asserts on failure. Main (test) thread only; one rig at a time.
 */
#ifndef PORTER_WRIG_H
#define PORTER_WRIG_H

#include <stdint.h>
#include <sys/types.h>

#include "conn.h"
#include "porter.pb-c.h"
#include "req.h"
#include "worker.h"

/* Sets up `n` (1 or 2) workers with the default settings, their loops,
 * inboxes and cancel state. */
void wrig_up(unsigned n);

/* Closes every connection, frees the workers' state and asserts that each
 * loop closes cleanly (nothing left open). */
void wrig_down(void);

/* Worker `i` (< n). */
worker *wrig_worker(unsigned i);

/* The settings the workers share (defaults; a test may change them
 * between wrig_up and wrig_down). */
config *wrig_config(void);

/* Runs every loop without blocking, a few rounds, so messages bounced
 * between inboxes all arrive. */
void wrig_pump(void);

/* Runs the loops (blocking as needed) until `*flag` is set or `ms` of real
 * time passed; returns *flag. */
int wrig_run_until(const int *flag, int ms);

/* A connection of client (uid, instance) on `w`, past its Hello; the
 * client's end of its socket in `*fd` (closed by wrig_down's close). */
conn *wrig_client(worker *w, uid_t uid, uint64_t instance, int *fd);

/* `m` packed as a Batch carries its members (heap: free .data). */
ProtobufCBinaryData wrig_packed(const Porter__V1__Request *m);

/* `m` packed and unpacked again, as conn hands a request over (heap,
 * owned by whoever takes it: req_new). */
Porter__V1__Request *wrig_unpacked(const Porter__V1__Request *m);

/* A request of `c` for `m` (copied), created with req_new and not yet
 * dispatched. */
req *wrig_request(conn *c, const Porter__V1__Request *m);

/* A Ping request `id` of `c` with `delay_ms` and `timeout_ms` (0: the
 * default), created with req_new and not yet dispatched. */
req *wrig_ping(conn *c, uint64_t id, uint32_t delay_ms, uint32_t timeout_ms);

/* The next reply on the client end `fd` within 2 s; asserts its id is
 * `id`. Free with porter__v1__response__free_unpacked. */
Porter__V1__Response *wrig_reply(int fd, uint64_t id);

/* wrig_reply's status, the response freed. */
int wrig_status(int fd, uint64_t id);

/* True when nothing waits to be read on `fd`. */
int wrig_quiet(int fd);

#endif
