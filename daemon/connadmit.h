/*
 * connadmit - whether a decoded request of a connection may go in flight:
 * its uid's quotas on requests in flight (uid-max-inflight) and on the
 * bytes it holds (uid-max-buffered). A request's message lives until it is
 * answered (a Ping's payload for its delay, a write's bytes while it waits
 * for a pool thread), so a large frame counts in its uid's buffered bytes
 * until then: uid-max-inflight frames of max-frame each would be 64 GiB.
 *
 * Owned by the connection's worker loop; not thread safe.
 */
#ifndef PORTER_CONNADMIT_H
#define PORTER_CONNADMIT_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "conn.h"

/* A frame this large counts in its uid's buffered bytes while its request
 * is in flight; smaller ones are bounded well enough by uid-max-inflight
 * and are not worth a trip to the registry's lock (req_hold). */
#define CONN_HOLD_FROM (64 * 1024)

/*
 * Admits request `id`, a frame of `len` bytes decoded into `ar`: returns 1
 * when its `len` bytes were taken from the uid's buffered bytes (the
 * caller hands them to its req with req_hold, or gives them back), 0 when
 * nothing was taken, or -1 when it was refused: answered PORTER_E_BUSY
 * naming the quota, or, past uid-max-buffered while the connection's own
 * replies are unread too, the connection dropped (as when a reply passes
 * it); `ar` is then freed.
 */
int conn_admit(conn *c, uint64_t id, size_t len, arena *ar);

#endif
