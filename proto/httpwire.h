/*
 * httpwire - the hand-written codec of the HTTP messages on the hot path:
 * the HttpRequest and HttpFetch request bodies and the HttpResponse reply
 * body. dbwire.c calls it for the Request and Response bodies that are
 * HTTP, so libporter and porterd reach it through dbwire.h's entry points,
 * as they reach pingwire.
 *
 * protobuf-c spent about 7.6k instructions of porterd's and 10.3k of
 * libporter's per GET of 1 KiB on these messages (walking descriptors,
 * sizing every header message twice, one allocation per struct and
 * string). This codec writes the bytes protobuf-c writes and builds the
 * structs protobuf-c's unpack builds (test_httpwire compares both ways
 * over thousands of random messages, and fuzz_frame checks the decoder
 * against protobuf-c); it declines anything else (unknown fields, a
 * singular sub-message given twice, which protobuf-c would merge), and
 * the caller hands that to protobuf-c.
 *
 * Bounds: every length is checked against the bytes left by pbwire's
 * reader; every allocation goes through the caller's allocator, which in
 * porterd is the frame's budget (palloc.h) drawing from an arena, so the
 * unpacked size is bounded as protobuf-c's is; a repeated field's array is
 * sized by counting its occurrences on the wire first.
 *
 * Stateless and thread safe.
 */
#ifndef PORTER_HTTPWIRE_H
#define PORTER_HTTPWIRE_H

#include "pbwire.h"

/* Whether porter.proto's HTTP messages are still the ones this codec was
 * written for (cached after the first call). Until it is taught a new
 * field the codec declines every HTTP message, so nothing is dropped, and
 * test_httpwire fails as a reminder. */
int httpwire_schema_known(void);

/* Packs Request `r`, whose body is an HttpRequest or an HttpFetch, as one
 * frame; as dbwire_pack_request: 1 packed, 0 declined (pack it with
 * protobuf-c), PORTER_E_TOO_LARGE or PORTER_E_NOMEM. */
int httpwire_pack_request(const Porter__V1__Request *r, size_t max_frame, uint8_t **buf,
			  size_t *cap, size_t *outlen);

/* Size of the fields of HttpResponse `h` (not NULL), or SIZE_MAX when a
 * message in it carries unknown fields (only protobuf-c writes those) or
 * the schema is not the known one; and the writer of those fields, which
 * the Response encoder frames as its body field. */
size_t httpwire_response_size(const Porter__V1__HttpResponse *h);
uint8_t *httpwire_put_response(uint8_t *p, const Porter__V1__HttpResponse *h);

/*
 * Frames Response `r`, a successful reply whose body is an HttpResponse
 * with a body that is not empty, around that body without copying it, as
 * readwire.h does for file chunks: the bytes before the body (frame header
 * included) go to (*buf)[0, *head_len), those after it to the
 * `*tail_len` bytes that follow; sent as head, body, tail they are the
 * frame dbwire_pack_response writes, byte for byte. `*buf` (of `*cap`
 * bytes) is the caller's reusable buffer, grown here to what the head and
 * tail need (the response headers: bounded by porterd's header limit).
 * Returns 0; 1 when `r` is not such a reply (a message or an error detail,
 * unknown fields, an empty body, a schema this was not written for): pack
 * it whole then; PORTER_E_TOO_LARGE when the payload would pass
 * `max_frame`; PORTER_E_NOMEM.
 */
int httpwire_frame_response(const Porter__V1__Response *r, size_t max_frame, uint8_t **buf,
			    size_t *cap, size_t *head_len, size_t *tail_len);

/* Decode an HttpRequest, an HttpFetch, or an HttpResponse from `r` into
 * structs from allocator `a` (an arena's, or a budget drawing from one:
 * nothing is freed when they decline); NULL declines (malformed, unknown
 * fields, out of budget). */
Porter__V1__HttpRequest *httpwire_unpack_request(ProtobufCAllocator *a, rd r);
Porter__V1__HttpFetch *httpwire_unpack_fetch(ProtobufCAllocator *a, rd r);
Porter__V1__HttpResponse *httpwire_unpack_response(ProtobufCAllocator *a, rd r);

#endif
