/*
 * fwd - runs a request on the worker loop that owns the state it names.
 *
 * State that spans calls (an HTTP stream) lives on one worker, but any
 * connection of the same client may use it: Dart isolates migrate between
 * threads, and each thread has its own connection, served by whichever
 * worker the acceptor chose. A request that arrives on another worker is
 * packed and sent through the owner's inbox, where it runs as a remote req
 * (no connection; the client's identity travels with it) through the usual
 * dispatch; the reply is packed and sent back through the origin's inbox to
 * the waiting req. A stop of the waiting req (Cancel, client gone) follows
 * the same way and stops the remote one.
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
