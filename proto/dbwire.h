/*
 * dbwire - a hand-written codec for the hottest messages of both libporter
 * and porterd: the DbQuery request and the Response that carries its
 * results, and the Ping request and its reply (a ping is the relay's own
 * round trip, which the benchmarks and health checks measure). The entry
 * points below take both; the ping bodies are pingwire.c's, and the wire
 * format pieces both share are pbwire.h's.
 *
 * protobuf-c is generic: packing walks every field descriptor of every
 * message and sizes each sub-message again at every level above it (a
 * reply's rows are sized once per level of nesting: Response,
 * DbQueryReply, DbResult, DbRow), and unpacking costs several hundred
 * instructions per message struct, of which a one-row reply has five. For
 * a short query that was more than the rest of the work on it. This codec
 * writes the same bytes as protobuf-c and builds the same structs from
 * them (unit tests compare both ways over thousands of random messages,
 * and the frame fuzzer checks the request decoder against protobuf-c); it
 * handles those messages only, in their canonical form, and declines
 * anything else, which the caller then hands to protobuf-c.
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

/*
 * Unpacks `len` bytes of a Response into structs from allocator `a`, the
 * same ones protobuf-c's unpack would build, when the message is a
 * canonical one with a DbQueryReply or PingReply body or none; otherwise returns NULL
 * and the caller unpacks it with protobuf-c (which also reports malformed
 * input). Pieces are never freed one by one, even when it declines, so `a`
 * must be an arena's (arena.h), or a budget drawing from one.
 */
Porter__V1__Response *dbwire_unpack_response(ProtobufCAllocator *a, size_t len,
					     const uint8_t *data);

/* The same for a Request whose body is a DbQuery or a Ping. A DbQuery of
 * more than DBWIRE_MAX_PARAMS parameters is declined before its
 * parameters are unpacked (count them with dbwire_request_params). */
Porter__V1__Request *dbwire_unpack_request(ProtobufCAllocator *a, size_t len, const uint8_t *data);

/*
 * Packs a Request whose body is a DbQuery or a Ping as one frame, like
 * dbwire_pack_response: 1 packed, 0 not such a request (pack it with
 * protobuf-c), or PORTER_E_TOO_LARGE / PORTER_E_NOMEM.
 */
int dbwire_pack_request(const Porter__V1__Request *r, size_t max_frame, uint8_t **buf, size_t *cap,
			size_t *outlen);

/* PostgreSQL's limit on the parameters of one statement (its protocol
 * counts them in 16 bits); libpq refuses more before sending anything. */
#define DBWIRE_MAX_PARAMS 65535

/* What dbwire_request_params says of a frame it cannot read to the end. */
#define DBWIRE_MALFORMED SIZE_MAX

/*
 * The number of query parameters a Request frame of `len` bytes would
 * unpack to, at most (every occurrence of a DbQuery body counts, as
 * protobuf-c unpacks each), counted on the wire without allocating anything, so that
 * a frame of millions of tiny parameters is refused before it is unpacked
 * into dozens of times its size. `*id` gets the request's id (0 when none
 * is found before the count is decided). Stops once past
 * DBWIRE_MAX_PARAMS, so that refusing a huge frame costs a scan of 128 KiB
 * of it, not of all of it. DBWIRE_MALFORMED when a field before that
 * cannot be read (cut short, or an encoding no encoder writes that
 * protobuf-c might still accept): the caller refuses the frame as
 * malformed, unpacked by nobody, since what follows is uncounted.
 */
size_t dbwire_request_params(size_t len, const uint8_t *data, uint64_t *id);

/*
 * dbwire_request_params over the first `have` bytes of a longer Request
 * frame (a DbQuery body cut short is counted over the bytes there are).
 * The count is at most the whole frame's, so a frame whose first bytes
 * already hold more than DBWIRE_MAX_PARAMS parameters can be refused
 * before the rest of it is received.
 */
size_t dbwire_request_params_prefix(size_t have, const uint8_t *data, uint64_t *id);

/*
 * Whether porter.proto's query messages are still the ones this codec was
 * written for. Messages only ever gain fields; until it is taught a new
 * one, the encoders step aside for protobuf-c, so nothing is dropped
 * (the decoders already decline fields they do not know). test_dbwire
 * fails meanwhile, as a reminder.
 */
int dbwire_schema_known(void);

#endif
