/*
 * pingwire - the hand-written codec of the Ping request and its PingReply
 * (a ping is the relay's own round trip, which the benchmarks and health
 * checks measure). dbwire.c calls it for the Request and Response bodies
 * that are pings, so libporter and porterd reach it through dbwire.h's
 * entry points; it writes and reads the bytes protobuf-c would, and
 * declines what it does not know, as dbwire does.
 *
 * Stateless and thread safe.
 */
#ifndef PORTER_PINGWIRE_H
#define PORTER_PINGWIRE_H

#include "pbwire.h"

/* Whether porter.proto's Ping and PingReply are still the messages this
 * codec was written for (see dbwire_schema_known). */
int pingwire_schema_known(void);

/* Size of a PingReply's fields, and the writer of them: the Response
 * encoder frames them as its body field. `ping` not NULL. */
size_t pingwire_reply_size(const Porter__V1__PingReply *ping);
uint8_t *pingwire_put_reply(uint8_t *p, const Porter__V1__PingReply *ping);

/* Packs Request `r`, whose body is a Ping, as one frame; as
 * dbwire_pack_request: 1 packed, 0 declined (pack it with protobuf-c),
 * PORTER_E_TOO_LARGE or PORTER_E_NOMEM. */
int pingwire_pack_request(const Porter__V1__Request *r, size_t max_frame, uint8_t **buf,
			  size_t *cap, size_t *outlen);

/* Decode a Ping, or a PingReply, from `r` into structs from arena
 * allocator `a`; NULL declines (malformed or unknown fields). */
Porter__V1__Ping *pingwire_unpack_ping(ProtobufCAllocator *a, rd r);
Porter__V1__PingReply *pingwire_unpack_reply(ProtobufCAllocator *a, rd r);

#endif
