/*
 * filewire - the hand-written codec of a file read on libporter's side: the
 * FileRead request (encoder) and its FileReadReply (decoder; a small read's
 * bytes come in it). dbwire.c calls it for a Request whose body is a
 * FileRead and a Response whose body is a FileReadReply, so libporter
 * reaches it through dbwire_pack_request and dbwire_unpack_response. The
 * encoder writes protobuf-c's bytes without its generic sizing and packing
 * (which walk the descriptors of Request and FileRead twice). The decoder
 * builds the structs protobuf-c's unpack would
 * build from the same bytes, into the caller's arena, so a reply costs one
 * allocation (the arena's block) and one copy of its data (into that
 * block), where protobuf-c's generic unpack allocated the Response, the
 * reply and the data separately and walked its descriptors twice. It
 * declines (NULL) anything but the canonical message, which protobuf-c
 * then decodes or reports, as dbwire does.
 *
 * Stateless and thread safe.
 */
#ifndef PORTER_FILEWIRE_H
#define PORTER_FILEWIRE_H

#include "pbwire.h"

/* Whether porter.proto's FileRead (7 fields) and FileReadReply (6) are
 * still the messages this codec was written for; otherwise it declines
 * every one. */
int filewire_schema_known(void);

/* Packs Request `r`, whose body is a FileRead, as one frame; as
 * dbwire_pack_request: 1 packed, 0 declined (pack it with protobuf-c),
 * PORTER_E_TOO_LARGE or PORTER_E_NOMEM. */
int filewire_pack_read(const Porter__V1__Request *r, size_t max_frame, uint8_t **buf, size_t *cap,
		       size_t *outlen);

/* Decodes a FileReadReply from `r` into structs from arena allocator `a`
 * (its data copied there); NULL declines (malformed, unknown fields, or a
 * schema this decoder does not know). */
Porter__V1__FileReadReply *filewire_unpack_read_reply(ProtobufCAllocator *a, rd r);

#endif
