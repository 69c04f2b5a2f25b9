/*
 * pconn - the calling thread's connection to porterd and the
 * one blocking request/response exchange every public call is built on.
 *
 * Each thread has its own state (thread-local, freed at thread exit through
 * a pthread key destructor); nothing here is shared between threads except
 * the process-wide client instance id and request id counter (atomics).
 */
#ifndef PORTER_CLIENT_CONN_H
#define PORTER_CLIENT_CONN_H

#include <stdint.h>

#include "arena.h"
#include "porter.pb-c.h"

/* Default timeout of a call that passes 0. */
#define PCONN_DEFAULT_TIMEOUT_MS 5000

/* Whether a request may be sent again after the connection broke with the
 * request already sent (its outcome unknown). */
enum pconn_retry {
	PCONN_ONCE,       /* not idempotent: report PORTER_E_CONN_LOST */
	PCONN_IDEMPOTENT, /* safe to repeat on a fresh connection */
};

/*
 * Sends `req` (owned by the caller; a zero req->id is replaced with a fresh
 * one, the caller's call id is kept; the timeout is filled in here, except
 * that a non-zero req->timeout_ms shorter than the wait is kept)
 * and waits for the matching response, for at most `timeout_ms` (0: the
 * default). On success stores the response in `*out` (owned by the caller,
 * free with porter__v1__response__free_unpacked) and returns 0; a response
 * whose status is an error is returned as that status with the message
 * recorded as the thread's last error, and `*out` is then left untouched.
 * Returns a negative code on failure, also recorded as the last error.
 */
int pconn_call(Porter__V1__Request *req, int timeout_ms, enum pconn_retry retry,
	       Porter__V1__Response **out);

/* pconn_call for a request whose reply says nothing but its status (a
 * close): the reply is freed here. Returns 0 or a negative code. */
int pconn_call_ack(Porter__V1__Request *req, int timeout_ms, enum pconn_retry retry);

/*
 * Like pconn_call but a response with an error status is also returned in
 * `*out` (so callers can read its details); the return value is still the
 * status.
 */
int pconn_call_full(Porter__V1__Request *req, int timeout_ms, enum pconn_retry retry,
		    Porter__V1__Response **out);

/*
 * Like pconn_call_full, but the response is unpacked into the calling
 * thread's scratch arena, which saves its allocations: `*out` is valid
 * until the thread's next pconn call or pconn_scratch_release(), must not
 * be passed to free_unpacked, and must not reach another thread. For
 * replies the caller copies out at once.
 */
int pconn_call_scratch(Porter__V1__Request *req, int timeout_ms, enum pconn_retry retry,
		       Porter__V1__Response **out);

/*
 * Like pconn_call_full, but the response is unpacked into `into` (not NULL;
 * initialised by the caller with arena_init, and emptied here first), for
 * a reply kept past the call: `*out` lives until arena_free(into), which
 * the caller does in every case, success or not, and is never passed to
 * free_unpacked.
 */
int pconn_call_arena(Porter__V1__Request *req, int timeout_ms, enum pconn_retry retry, arena *into,
		     Porter__V1__Response **out);

/*
 * The connection a passed descriptor came on, to which its close is
 * reported: porterd counts each descriptor it passed as an open file stream
 * of that connection until told it was closed. Opaque; one reference per
 * descriptor, and the connection's own while it is open.
 */
typedef struct pconn_fdlink pconn_fdlink;

/*
 * Files by descriptor: takes the open descriptor porterd passed with the
 * response the calling thread's last call returned (its fd_passed), or
 * -1 when none came with it (none was passed, or it was lost: the process
 * ran out of descriptors). The caller owns it (close-on-exec) and closes it
 * with pconn_fd_close; `*link` (not NULL) gets the reference that call
 * takes (NULL when nothing is to be reported: then pconn_fd_close only
 * closes). One not taken is closed by the thread's next call.
 */
int pconn_take_fd(pconn_fdlink **link);

/*
 * Closes `fd` (when >= 0; returns close's result, 0 for none) and counts
 * its close for `link`'s connection (NULL: none), which reports the count
 * with its next FileRead or FileWriteOpen (fds_closed), and drops the
 * reference. Any thread.
 */
int pconn_fd_close(int fd, pconn_fdlink *link);

/*
 * Closes `fd` (when >= 0; returns close's result) and drops `link`'s
 * reference (NULL: none) without counting the close: the caller tells
 * porterd otherwise (an atomic write's descriptor, whose commit or close
 * says it was closed). Any thread.
 */
int pconn_fd_close_declared(int fd, pconn_fdlink *link);

/* Ends the calling thread's last scratch response (see pconn_call_scratch)
 * and gives back the memory a large one took. */
void pconn_scratch_release(void);

/* Monotonic time in milliseconds. */
int64_t pconn_now_ms(void);

/*
 * The deadline of a stream opened now with `stream_timeout_ms` (0: none,
 * stored as 0). Streams keep it and bound each read with pconn_bounded.
 */
int64_t pconn_stream_deadline(uint32_t stream_timeout_ms);

/*
 * The timeout of one call that must also end by `deadline` (0: none):
 * stores in `*wait` the smaller of `timeout_ms` (0: the default) and the
 * time left. Returns 0, PORTER_E_INVAL for a negative timeout, or
 * PORTER_E_TIMEOUT (recorded as the last error) when the deadline passed.
 */
int pconn_bounded(int64_t deadline, int timeout_ms, int *wait);

/* A fresh request id, unique within this process. Thread safe. A counter,
 * not a random id, on purpose: the daemon scopes request ids by uid and
 * client instance (the random id above), so they need no secrecy, and a
 * counter can never hand two calls in flight the same id. */
uint64_t pconn_next_id(void);

/* Stores in `*out` (not NULL) this process's random client instance id,
 * as sent in Hello (new after fork and porter_reset). Returns 0, or
 * PORTER_E_INTERNAL (recorded as the last error, `*out` untouched) when
 * the kernel gives no randomness. Thread safe. */
int pconn_instance(uint64_t *out);

/* Records `code` and a formatted message as the thread's last error;
 * returns `code`. */
int pconn_set_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clears the thread's last error. */
void pconn_clear_error(void);

#endif
