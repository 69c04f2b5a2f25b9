/*
 * dbwire - a hand-written encoder for the replies that carry query
 * results, the daemon's hottest message.
 *
 * protobuf-c packs generically: it walks every field descriptor of every
 * message, and it sizes each sub-message again at every level above it, so
 * a reply's rows are sized once per level of nesting (Response,
 * DbQueryReply, DbResult, DbRow). For a short query that costs more
 * instructions than the rest of the daemon's work on the reply. This
 * encoder writes the same bytes (a unit test compares them with
 * protobuf-c's) for a Response whose body is a DbQueryReply or empty,
 * sizing rows twice at most; any other Response is left to protobuf-c.
 *
 * Stateless and thread safe.
 */
#ifndef PORTER_DBWIRE_H
#define PORTER_DBWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "porter.pb-c.h"

/*
 * Packs `r` as one frame (header and payload) into the caller's reusable
 * buffer `*buf` of `*cap` bytes (grown as frame_pack_into does). Returns 1
 * with `*outlen` set when it packed, 0 when `r` is not a message this
 * encoder handles (the buffer is untouched: pack it with protobuf-c), or
 * PORTER_E_TOO_LARGE / PORTER_E_NOMEM.
 */
int dbwire_pack_response(const Porter__V1__Response *r, size_t max_frame, uint8_t **buf,
			 size_t *cap, size_t *outlen);

#endif
