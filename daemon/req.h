/*
 * req - one request in flight on a worker loop, from the frame that carried
 * it to its single reply.
 *
 * Owned by the worker loop that read it; not thread safe. The module that
 * performs the work holds the req until it calls req_reply() or req_fail()
 * exactly once, which sends the response (if the connection is still open)
 * and frees the req. When the connection closes first, the req is detached
 * (r->c becomes NULL) and its `cancel` hook, if set, is called once; the
 * module must still finish the req, and the reply is then discarded. The
 * same hook serves a Cancel request from the client (req_stop), in which
 * case the reply is sent as PORTER_E_CANCELLED.
 */
#ifndef PORTER_REQ_H
#define PORTER_REQ_H

#include <stdint.h>
#include <sys/types.h>

#include "arena.h"
#include "list.h"
#include "porter.pb-c.h"

struct batch;
struct clients_acct;
struct conn;
struct fwd_back;
struct worker;

typedef struct req {
	struct conn *c;           /* NULL once the connection has gone */
	struct worker *w;         /* the loop this req lives on */
	list link;                /* in c->reqs while attached */
	uint64_t id;              /* the client's request id */
	uid_t uid;                /* the client's identity (Hello), for */
	uint64_t instance;        /* ownership checks; kept when c goes */
	uint64_t deadline;        /* uv_now() milliseconds */
	Porter__V1__Request *msg; /* owned; freed with the req */
	arena msg_arena;          /* holds msg when from_arena, else empty */
	int from_arena;
	/* Set by the module performing the work: asks it to stop early.
	 * Called at most once, on the loop thread. */
	void (*cancel)(struct req *r);
	void *op;              /* the module's state for this request */
	int stop_code;         /* stopped early (Cancel, shutdown): the reply's status */
	struct batch *batch;   /* member of this batch: the reply goes there */
	unsigned batch_index;  /* position among the batch's members */
	struct fwd_back *back; /* run for another worker: the reply goes
				* back there (fwd.h); c is NULL */
	/* A large request's frame counts in its uid's buffered bytes
	 * (uid-max-buffered) until it is answered: its message lives that
	 * long (a Ping's payload for its delay, a write's bytes while it
	 * waits for a pool thread). */
	struct clients_acct *held_acct; /* a reference, or NULL */
	uint64_t held;                  /* bytes counted there */
} req;

/*
 * Creates a req for `msg` (ownership of `msg` passes to the req, even on
 * failure) on connection `c`, with its deadline computed from the request's
 * timeout and the daemon's default and maximum. `msg` was unpacked into
 * arena `from`, whose blocks move to the req (`from` is left empty), or
 * with malloc when `from` is NULL. Returns NULL when out of memory.
 */
req *req_new(struct conn *c, Porter__V1__Request *msg, arena *from);

/*
 * Counts `bytes` (its frame's size) in the buffered bytes of the uid of
 * `r`, which `acct` names, until `r` is answered. The caller took them
 * there already (clients_take); they are given back now when no
 * reference to `acct` can be had (out of memory).
 */
void req_hold(req *r, struct clients_acct *acct, uint64_t bytes);

/*
 * Creates the req for one member of a Batch: it shares the batch's
 * connection (for the client's identity) without being listed on it, its
 * reply goes to `b`, and its deadline is the member's own, bounded by
 * `deadline`. `msg` is owned by the req as in req_new. NULL when out of
 * memory.
 */
req *req_new_member(struct batch *b, unsigned index, struct conn *c, struct worker *w,
		    uint64_t deadline, Porter__V1__Request *msg);

/*
 * Creates a req on worker `w` for a request forwarded from another worker
 * (fwd.h): no connection, the client's identity as given, `left_ms` until
 * its deadline, and its reply sent through `back` (owned by the req from
 * then on). `msg` is owned by the req as in req_new. NULL when out of
 * memory (`back` is then still the caller's).
 */
req *req_new_remote(struct worker *w, Porter__V1__Request *msg, uid_t uid, uint64_t instance,
		    uint64_t left_ms, struct fwd_back *back);

/*
 * Sends `resp` (owned by the caller; its id is filled in here) and frees
 * `r`. A response too large for a frame is replaced by a PORTER_E_TOO_LARGE
 * error.
 */
void req_reply(req *r, Porter__V1__Response *resp);

/*
 * req_reply for a reply whose bulk `data` (malloc'd; what
 * resp->file_read->data or resp->http->body points to, or NULL) is taken:
 * straight to the request's connection it goes out without a copy
 * (conn_send_take); anywhere else (a batch, another worker) it is freed
 * after the reply.
 */
void req_reply_take(req *r, Porter__V1__Response *resp, uint8_t *data);

/* req_reply_take for `data` that goes back through `release` (not NULL;
 * called once, on this worker's loop thread, when the reply is written or
 * dropped) rather than free(). */
void req_reply_take_with(req *r, Porter__V1__Response *resp, uint8_t *data,
			 void (*release)(void *));

/*
 * Answers a FileList with `entries` (`len` bytes: a FileListReply's packed
 * entries, fslist.h; taken, given to `release` once written or dropped).
 * Straight to the request's connection they go out as they are, framed
 * around (listwire.h); anywhere else (a batch, another worker, a stopped
 * request) they are unpacked into a reply first.
 */
void req_reply_list(req *r, uint8_t *entries, size_t len, void (*release)(void *));

/*
 * Sends `resp` like req_reply with the open descriptor `fd` passed along
 * (SCM_RIGHTS; `resp` says so in its body's fd_passed; the caller keeps
 * and closes its `fd`). Only a request read from a connection, not stopped, can pass
 * one. Returns 0 (sent, `r` freed), PORTER_E_CONN_LOST (the connection
 * broke, nothing was delivered, `r` freed), or PORTER_E_BUSY: nothing was
 * sent and `r` is still the caller's, to answer without the descriptor
 * (a batch member, a forwarded or stopped request, replies queued ahead).
 */
int req_reply_fd(req *r, Porter__V1__Response *resp, int fd);

/* Replies with status `code` and a formatted message, and frees `r`. */
void req_fail(req *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Like req_fail, with error details (`detail` owned by the caller, may be
 * NULL).
 */
void req_fail_detail(req *r, int code, Porter__V1__ErrorDetail *detail, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Milliseconds left before the deadline; 0 once it has passed. */
uint64_t req_remaining_ms(const req *r);

/*
 * Stops `r` early while its connection stays open: calls its cancel hook,
 * and its eventual reply carries status `code` (PORTER_E_CANCELLED for a
 * Cancel request, PORTER_E_SHUTDOWN when the daemon stops) whatever the
 * module answers. Returns 1 when the work could be stopped (a hook was set;
 * `r` may already have been finished and freed by it), 0 when it cannot
 * stop early and will finish on its own.
 */
int req_stop(req *r, int code);

/*
 * Detaches `r` from its connection (which is closing) and calls its cancel
 * hook. Used by conn only.
 */
void req_detach(req *r);

#endif
