/*
 * pbatch - what other parts of libporter use to add their operations to a
 * batch and to read their members' results. Internal; not thread safe (a
 * batch is used by one thread at a time).
 */
#ifndef PORTER_CLIENT_PBATCH_H
#define PORTER_CLIENT_PBATCH_H

#include "porter.h"
#include "porter.pb-c.h"

/*
 * Packs `req` (owned by the caller; `timeout_ms` set by the caller) as the
 * next member of `b`. Returns the member's index or a negative code.
 */
int pbatch_add(porter_batch *b, const Porter__V1__Request *req);

/* The unpacked Response of member `i`, or NULL (out of range, or stopped
 * before it answered). Owned by `r`. */
const Porter__V1__Response *pbatch_member(const porter_batch_result *r, size_t i);

#endif
