/*
 * rawc - the raw protocol for test children: connections that misbehave
 * on purpose (many at once, never reading, pipelining) from a process
 * forked by th_as. Unlike harness.h's th_raw_* these never assert: Check
 * asserts belong to the test process, a child reports through its return
 * value and th_shared_alloc memory. Any thread.
 */
#ifndef PORTER_RAWC_H
#define PORTER_RAWC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"
#include "porter.pb-c.h"

/* A connected, blocking Unix socket to `path` (not NULL); -1 on failure
 * (errno set). */
int th_rc_connect(const char *path);

/* Sends one zero byte (the start of a frame header) carrying descriptor
 * `passed` (SCM_RIGHTS), as no honest client does. 0, or -1 with errno
 * (EPERM: the receiving socket refuses descriptors). */
int th_rc_send_fd(int fd, int passed);

/*
 * A TCP socket whose last close waits `linger_s` seconds: connected to a
 * loopback listener of the caller's that never reads, its send buffer full
 * and SO_LINGER set. `keep` gets the listener and the accepted peer, which
 * the caller holds open as long as the close should wait (closing them
 * resets the connection and ends the wait). The socket, or -1 (`keep`
 * then -1 and -1).
 */
int th_rc_lingering_socket(int linger_s, int keep[2]);

/* Packs and writes `req` (not NULL) whole, without SIGPIPE. 0 or -1. */
int th_rc_send(int fd, Porter__V1__Request *req);

/* Sends Hello with this process's instance id (th_rc_instance of its pid).
 * 0 or -1. */
int th_rc_hello(int fd);

/* The client instance th_rc_hello says for process `pid`: no secret, so
 * another uid's child can claim it (th_rc_hello_as) to test that porterd
 * matches the uid too. */
uint64_t th_rc_instance(pid_t pid);

/* Sends Hello with client instance `instance`. 0 or -1. */
int th_rc_hello_as(int fd, uint64_t instance);

/* Sends Ping `id` with `payload` zero bytes, answered after `delay_ms`.
 * 0 or -1. */
int th_rc_ping(int fd, uint64_t id, size_t payload, uint32_t delay_ms);

/* The next response on `fd` through `r` within `timeout_ms`, or NULL (EOF,
 * timeout, garbage). Free with porter__v1__response__free_unpacked. */
Porter__V1__Response *th_rc_recv(int fd, frame_reader *r, int timeout_ms);

/*
 * Connects to `path`, says Hello and waits up to `timeout_ms` for its
 * answer, read through `rd` (initialised by the caller, kept for the
 * connection's later replies). Returns the fd when porterd welcomed the
 * client (status 0), else -1 with the socket closed. `*hello` (NULL: not
 * wanted) gets the Hello's response, NULL when none came; the caller frees
 * it with porter__v1__response__free_unpacked.
 */
int th_rc_open(const char *path, frame_reader *rd, int timeout_ms, Porter__V1__Response **hello);

/* th_rc_open with Hello naming client instance `instance`; the Hello's
 * response is not kept. The fd, or -1. */
int th_rc_open_as(const char *path, frame_reader *rd, int timeout_ms, uint64_t instance);

/* Sends `req` (not NULL) and returns the next response within
 * `timeout_ms`, or NULL; free it with porter__v1__response__free_unpacked. */
Porter__V1__Response *th_rc_call(int fd, frame_reader *rd, Porter__V1__Request *req,
				 int timeout_ms);

/* Sends each of the `n` requests `reqs` (ids 10.., deadlines 5 s, set
 * here) one after another, each once the previous is answered, adding to
 * `*ok` those answered with status 0. Returns how many were answered, -1
 * when one was not. */
int th_rc_tries(int fd, frame_reader *rd, Porter__V1__Request *reqs, size_t n, int *ok);

/* th_rc_tries on each of `conns` connections to `path` in turn, each
 * saying Hello with client instance `instance` (so they may land on
 * different workers). Returns how many were answered, -1 when a
 * connection or a reply failed. */
int th_rc_tries_as(const char *path, uint64_t instance, int conns, Porter__V1__Request *reqs,
		   size_t n, int *ok);

/*
 * A whole frame (header included, `*len` bytes, malloc'ed; NULL when out
 * of memory) of Request{id, timeout 10 s, db_query: DbQuery{`conninfo`,
 * "SELECT 1", `n` empty params}}, encoded by hand: libporter would need a
 * struct per parameter, and an empty one is two bytes on the wire. Does
 * not check that it fits a frame.
 */
uint8_t *th_rc_params_frame(const char *conninfo, uint64_t id, size_t n, size_t *len);

/* Waits (polling every 2 ms) up to `ms` for `*flag` (shared memory set by
 * another process) to become non-zero; returns its last value. */
int th_wait_flag(volatile int *flag, int ms);

#endif
