/*
 * cancel - the Cancel request: stops a client's request by id on whichever
 * worker and connection it runs.
 *
 * Request ids are unique per client (uid plus Hello's client instance), not
 * per connection, so a Cancel is asked of every worker through its inbox
 * and the answers are gathered on the worker that received it. A worker
 * that does not find the request remembers the id for 30 s (a tombstone),
 * so a request that arrives after its own cancel is refused instead of
 * run. Tombstones are kept per client and bounded per uid (1024 per
 * worker): one client's cancels can only push out that uid's own.
 *
 * Per-worker state, touched only by its worker's loop thread.
 */
#ifndef PORTER_CANCEL_H
#define PORTER_CANCEL_H

#include <stdint.h>
#include <sys/types.h>

#include "req.h"

struct worker;
typedef struct cancel_state cancel_state;

/* Allocates `w->cancel`. Returns 0 or PORTER_E_NOMEM. Loop thread (or
 * before it starts). */
int cancel_worker_init(struct worker *w);

/* Finishes pending Cancel requests (their connections are gone by now) and
 * frees `w->cancel`. Called when the worker stops, on its loop thread. */
void cancel_worker_close(struct worker *w);

/* Performs a Cancel request; finishes `r`. */
void cancel_handle(req *r);

/*
 * True (and `r` finished with PORTER_E_CANCELLED) when `r` was cancelled
 * before it arrived. Called for every request before dispatch.
 */
int cancel_refuse_early(req *r);

#endif
