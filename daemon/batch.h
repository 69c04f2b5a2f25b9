/*
 * batch - the Batch request: several member requests of any kind run
 * concurrently on the worker that received the batch.
 *
 * ALL (join) answers when every member has, with every result in member
 * order. FIRST (select) answers with the first member to succeed and stops
 * the others (their cancel hooks); when none succeeds it answers with every
 * failure. Members are decoded here, one level only: a member may not be a
 * Batch, Hello or Cancel. Each member has its own deadline, bounded by the
 * batch's.
 *
 * Owned by one worker loop; not thread safe. A batch outlives its reply
 * until every member has finished, since a member that cannot stop early
 * still reports to it.
 */
#ifndef PORTER_BATCH_H
#define PORTER_BATCH_H

#include "porter.pb-c.h"
#include "req.h"

typedef struct batch batch;

/* Performs a Batch request; finishes `r`. */
void batch_handle(req *r);

/* Called by req_reply for a member: records `resp` (owned by the caller). */
void batch_member_done(batch *b, unsigned index, const Porter__V1__Response *resp);

#endif
