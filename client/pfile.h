/*
 * pfile - what the file calls of libporter (file.c, fileops.c) share.
 * No state; any thread.
 */
#ifndef PORTER_CLIENT_PFILE_H
#define PORTER_CLIENT_PFILE_H

#include "pconn.h"
#include "porter.h"

/* The wire's root name for `root` (NULL: "", the first root). Borrowed. */
static inline char *pfile_root(const char *root)
{
	return (char *)(root ? root : "");
}

/* Frees `resp` (a reply of the wrong kind) and records PORTER_E_PROTOCOL
 * naming `what`; returns it. */
static inline int pfile_bad_reply(Porter__V1__Response *resp, const char *what)
{
	porter__v1__response__free_unpacked(resp, NULL);
	return pconn_set_error(PORTER_E_PROTOCOL, "%s reply missing", what);
}

/*
 * Sends `req` as call `call_id` (pconn_call with `retry`) and checks that
 * the reply is of kind `body` (else PORTER_E_PROTOCOL naming `what`). On
 * success stores the reply in `*out` (the caller frees it), or frees it
 * when `out` is NULL, and returns 0; else a negative code (recorded as the
 * thread's last error) and `*out` is untouched. Any thread.
 */
int pfile_call(Porter__V1__Request *req, uint64_t call_id, int timeout_ms, enum pconn_retry retry,
	       Porter__V1__Response__BodyCase body, const char *what, Porter__V1__Response **out);

/* Closes file stream `id` (a reader's, writer's or watch's) in the daemon,
 * waiting up to `timeout_ms`. Returns 0 (an unknown stream too) or a
 * code. Any thread. */
int pfile_stream_close(uint64_t id, int timeout_ms);

/* pfile_stream_close of an atomic write by descriptor whose descriptor
 * the caller closed (FileStreamClose.fd_closed). */
int pfile_stream_close_fd(uint64_t id, int timeout_ms);

/* Ends file stream `id` (0: none, returns 0): pfile_stream_close (or
 * pfile_stream_close_fd when `fd_closed`) when `wait`, else the close is
 * handed to the background thread and this never waits (returns 0). Any
 * thread. */
int pfile_stream_end(uint64_t id, int timeout_ms, int wait, int fd_closed);

#endif
