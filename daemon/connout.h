/*
 * connout - replies to one client connection: packing into the worker's
 * pack buffer, writing at once when the socket has room, queueing the rest
 * within the output limits (per connection, per uid, all connections),
 * large file chunks sent from where they were read, and descriptors passed
 * on a reply's first byte.
 *
 * Runs on the connection's worker loop only; not thread safe. A send on a
 * connection that breaks, or goes over an output limit, has it closed from
 * its timer (conn_close_soon), never inside the send: the caller may be
 * walking a list of requests that the close would cancel (conn.h). Sends
 * on it meanwhile are dropped.
 */
#ifndef PORTER_CONNOUT_H
#define PORTER_CONNOUT_H

#include <stdint.h>

#include "porter.pb-c.h"

typedef struct conn conn;

/* Packs and queues `resp` (owned by the caller). Used by req. */
void conn_send(conn *c, const Porter__V1__Response *resp);

/* Chunks from this size up go out from where they are (conn_send_take);
 * smaller ones are packed and copied as any reply: the copy costs less
 * than the extra allocation of a write that must wait. */
#define CONN_TAKE_MIN (64u * 1024u)

/*
 * conn_send for a reply whose bulk is `data` (taken, NULL: none): a file
 * read's chunk (what resp->file_read->data points to) or an HTTP reply's
 * body (resp->http->body) of CONN_TAKE_MIN bytes or more goes to the
 * socket from where it is, framed around it by readwire.h or httpwire.h,
 * and is given to `release` (not NULL: free, or httpbuf_release) once
 * written or dropped, on this loop, rather than copied into the worker's
 * pack buffer. Anything else is packed as conn_send does and `data`
 * released at once. Used by req.
 */
void conn_send_take(conn *c, const Porter__V1__Response *resp, uint8_t *data,
		    void (*release)(void *));

/*
 * Sends the reply `id` to a FileList: `entries` (`len` bytes, a
 * FileListReply's packed entries; taken, given to `release` once written
 * or dropped) framed around as listwire.h does, with no copy. A frame
 * past max-frame is answered PORTER_E_TOO_LARGE instead. Used by req
 * (which checks listwire_known() first).
 */
void conn_send_list(conn *c, uint64_t id, uint8_t *entries, size_t len, void (*release)(void *));

/*
 * Sends `resp` (owned by the caller) with the open descriptor `fd`
 * (SCM_RIGHTS on its first byte; the caller keeps `fd` and closes its
 * copy). Nothing is sent when it returns an error: PORTER_E_BUSY when
 * replies are already queued, the client has not read everything sent to
 * it before (so at most one descriptor per connection is ever in flight,
 * charged by the kernel to porterd's uid), the socket is full or the
 * kernel refuses more descriptors in flight (answer without the
 * descriptor), PORTER_E_CONN_LOST when the connection is closing or broke
 * (it is then closed). Returns 0 once the descriptor is on its way. Used by
 * req.
 */
int conn_send_fd(conn *c, const Porter__V1__Response *resp, int fd);

/* Sends the small replies held behind a write in flight now, behind it
 * (close_after_flush, before its shutdown). */
void conn_out_flush(conn *c);

/*
 * The connection is closing (conn_close, conn_close_soon): its queued
 * reply bytes stop counting against its uid's uid-max-buffered and the
 * global output limits now, not as libuv cancels its writes at the close
 * (a loop turn later, for one closed soon): meanwhile they would count
 * against every other connection that adds a reply past
 * output-hard-limit or output-soft-limit, and get it dropped for bytes
 * that are already being thrown away. Idempotent.
 */
void conn_out_forget(conn *c);

#endif
