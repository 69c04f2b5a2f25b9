/*
 * fwd - runs a request on the worker loop that owns the state it names.
 *
 * State that spans calls (an HTTP stream, a db session or result stream)
 * lives on one worker, but any connection of the same client may use it:
 * Dart isolates migrate between threads, and each thread has its own
 * connection, served by whichever worker the acceptor chose. A request
 * that arrives on another worker is packed and sent through the owner's
 * inbox, where it runs as a remote req (no connection; the client's
 * identity travels with it) through the usual dispatch; the reply is
 * packed and sent back through the origin's inbox to the waiting req. A
 * stop of the waiting req (Cancel, client gone) follows the same way and
 * stops the remote one.
 *
 * Loop affinity: every function runs on a worker's loop thread; the two
 * sides meet only through inbox messages.
 */
#ifndef PORTER_FWD_H
#define PORTER_FWD_H

#include <stdint.h>

#include "porter.pb-c.h"
#include "req.h"

struct worker;

/*
 * The one owner encoding of ids that name state spanning calls (HTTP
 * streams, db sessions and result streams): the owning worker's index in
 * the top 16 bits, 48 random bits below, never all zero, so any worker
 * routes a request for it without a shared table, and an id cannot be
 * guessed.
 */
#define FWD_OWNER_SHIFT 48

/* Stores a new id owned by worker `worker_index` (< 65536) in `*out`
 * (not NULL); the random bits come from proto/randid.h. Returns 0, or
 * PORTER_E_INTERNAL when the kernel gives no randomness (`*out`
 * untouched). Any thread. */
int fwd_new_id(unsigned worker_index, uint64_t *out);

/* The index of the worker that owns `id`. */
static inline unsigned fwd_id_owner(uint64_t id)
{
	return (unsigned)(id >> FWD_OWNER_SHIFT);
}

/*
 * When `id` names state of another worker of r's daemon and `r` did not
 * come from another worker already, sends `r` there (fwd_request) and
 * returns 1: `r` is no longer the caller's. Else returns 0 and `r` stays
 * the caller's (the id is this worker's, or names no worker: unknown).
 */
int fwd_to_owner(req *r, uint64_t id);

/* How a remote req's reply finds its way back. Owned by the remote req
 * (freed when it replies). */
typedef struct fwd_back fwd_back;

/*
 * Sends `r` to run on worker `to` (not r->w) and finishes `r` with the reply
 * that comes back, or with PORTER_E_SHUTDOWN when `to` is stopping. `r`
 * stays owned by this module until then.
 */
void fwd_request(req *r, struct worker *to);

/* Sends a remote req's reply (`resp`, owned by the caller) back to its
 * origin and frees `back`. Called by req_reply only. */
void fwd_reply(fwd_back *back, Porter__V1__Response *resp);

/* Sets up and tears down a worker's part (loop thread). The close finishes
 * nothing: waiting reqs end with their connections, remote ones with the
 * modules running them. */
void fwd_worker_init(struct worker *w);

#endif
