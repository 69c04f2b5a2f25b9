/*
 * fuzz_wire - libFuzzer target for the hand-written codecs (dbwire, pingwire,
 * pbwire) against protobuf-c, fed payloads directly (no frame header to
 * guess, so the fuzzer reaches deep fields quickly). The first input byte
 * picks Request or Response; the rest is the message. Checked:
 *
 * - what the hand-written decoder accepts, protobuf-c accepts too, and
 *   both mean the same (they pack again to the same bytes);
 * - dbwire_request_params never counts fewer parameters than protobuf-c
 *   unpacks (it is the gate that refuses a frame before protobuf-c
 *   unpacks millions of parameters);
 * - whatever protobuf-c decoded, the hand-written encoders either decline
 *   it or write exactly protobuf-c's bytes, in a frame of the right length;
 *   readwire's frame around a read reply's chunk (head, the data, tail)
 *   included, and an HTTP reply framed around its body
 *   (httpwire_frame_response): head, body and tail together.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "dbwire.h"
#include "frame.h"
#include "httpwire.h"
#include "palloc.h"
#include "porter_errors.h"
#include "porter.pb-c.h"
#include "readwire.h"

/* Packs `m` with protobuf-c into a fresh buffer; `*n` gets its length. */
static uint8_t *pb_pack(const ProtobufCMessage *m, size_t *n)
{
	*n = protobuf_c_message_get_packed_size(m);
	uint8_t *b = malloc(*n + 1);
	if (!b || protobuf_c_message_pack(m, b) != *n)
		abort();
	return b;
}

static void same_bytes(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
	size_t n1, n2;
	uint8_t *b1 = pb_pack(a, &n1), *b2 = pb_pack(b, &n2);
	if (n1 != n2 || memcmp(b1, b2, n1) != 0)
		abort();
	free(b1);
	free(b2);
}

/* The frame a hand-written encoder wrote (rc 1) must be protobuf-c's. */
static void same_frame(int rc, const ProtobufCMessage *ref, const uint8_t *frame, size_t flen)
{
	if (rc == 0 || rc == PORTER_E_TOO_LARGE)
		return; /* declined, or over the limit given */
	if (rc != 1 || flen < FRAME_HEADER_SIZE)
		abort();
	size_t n;
	uint8_t *want = pb_pack(ref, &n);
	if (frame_get_header(frame) != n || flen != FRAME_HEADER_SIZE + n ||
	    memcmp(frame + FRAME_HEADER_SIZE, want, n) != 0)
		abort();
	free(want);
}

/* The frame readwire puts around a read reply's data, with the data
 * between, must be protobuf-c's, byte for byte. */
static void check_readwire(const Porter__V1__Response *ref)
{
	uint8_t head[READWIRE_HEAD_MAX], tail[READWIRE_TAIL_MAX];
	size_t hl = 0, tl = 0;
	int rc = readwire_frame(ref, 1u << 24, head, &hl, tail, &tl);
	if (rc == 1 || rc == PORTER_E_TOO_LARGE)
		return; /* declined, or over the limit given */
	if (rc != 0 || hl < FRAME_HEADER_SIZE || hl > READWIRE_HEAD_MAX || tl > READWIRE_TAIL_MAX)
		abort();
	const ProtobufCBinaryData *d = &ref->file_read->data;
	size_t n, h = hl - FRAME_HEADER_SIZE;
	uint8_t *want = pb_pack(&ref->base, &n);
	if (frame_get_header(head) != n || h + d->len + tl != n ||
	    memcmp(want, head + FRAME_HEADER_SIZE, h) != 0 ||
	    memcmp(want + h, d->data, d->len) != 0 || memcmp(want + h + d->len, tail, tl) != 0)
		abort();
	free(want);
}

/* One direction's codecs, the hand-written and protobuf-c's. */
typedef struct codec {
	const ProtobufCMessageDescriptor *desc;
	ProtobufCMessage *(*unpack)(ProtobufCAllocator *a, size_t len, const uint8_t *data);
	int (*pack)(const ProtobufCMessage *m, uint8_t **buf, size_t *cap, size_t *outlen);
} codec;

static ProtobufCMessage *unpack_request(ProtobufCAllocator *a, size_t len, const uint8_t *data)
{
	return (ProtobufCMessage *)dbwire_unpack_request(a, len, data);
}

static int pack_request(const ProtobufCMessage *m, uint8_t **buf, size_t *cap, size_t *outlen)
{
	return dbwire_pack_request((const Porter__V1__Request *)m, 1u << 24, buf, cap, outlen);
}

static ProtobufCMessage *unpack_response(ProtobufCAllocator *a, size_t len, const uint8_t *data)
{
	return (ProtobufCMessage *)dbwire_unpack_response(a, len, data);
}

static int pack_response(const ProtobufCMessage *m, uint8_t **buf, size_t *cap, size_t *outlen)
{
	return dbwire_pack_response((const Porter__V1__Response *)m, 1u << 24, buf, cap, outlen);
}

static const codec requests = {&porter__v1__request__descriptor, unpack_request, pack_request};
static const codec responses = {&porter__v1__response__descriptor, unpack_response, pack_response};

/* The parameter gate against what protobuf-c unpacked of a Request. */
static void check_gate(const Porter__V1__Request *ref, const uint8_t *data, size_t len)
{
	uint64_t id;
	size_t counted = dbwire_request_params(len, data, &id);
	/* It stops counting past the limit; under it, it must have seen
	 * every parameter protobuf-c unpacked. */
	if (ref->body_case == PORTER__V1__REQUEST__BODY_DB_QUERY && counted <= DBWIRE_MAX_PARAMS &&
	    counted < ref->db_query->n_params)
		abort();
}

/* An HTTP reply framed around its body must be protobuf-c's frame too. */
static void check_framed(const Porter__V1__Response *ref)
{
	uint8_t *buf = NULL;
	size_t cap = 0, hl = 0, tl = 0;
	int rc = httpwire_frame_response(ref, 1u << 24, &buf, &cap, &hl, &tl);
	if (rc == 0) {
		size_t bl = ref->http->body.len, n;
		uint8_t *want = pb_pack(&ref->base, &n);
		if (hl < FRAME_HEADER_SIZE || hl + bl + tl != FRAME_HEADER_SIZE + n ||
		    frame_get_header(buf) != n ||
		    memcmp(buf + FRAME_HEADER_SIZE, want, hl - FRAME_HEADER_SIZE) != 0 ||
		    memcmp(want + hl - FRAME_HEADER_SIZE, ref->http->body.data, bl) != 0 ||
		    (tl && memcmp(buf + hl, want + hl - FRAME_HEADER_SIZE + bl, tl) != 0))
			abort();
		free(want);
	} else if (rc != 1 && rc != PORTER_E_TOO_LARGE) {
		abort();
	}
	free(buf);
}

static void check(const codec *k, const uint8_t *data, size_t len)
{
	arena a;
	arena_init(&a, 128);
	palloc_budget b;
	palloc_budget_init(&b, len, &a);
	ProtobufCMessage *mine = k->unpack(&b.base, len, data);
	ProtobufCMessage *ref = protobuf_c_message_unpack(k->desc, NULL, len, data);
	if (mine && !ref)
		abort();
	if (mine)
		same_bytes(mine, ref);
	if (ref) {
		if (k == &requests) {
			check_gate((const Porter__V1__Request *)ref, data, len);
		} else {
			check_readwire((const Porter__V1__Response *)ref);
			check_framed((const Porter__V1__Response *)ref);
		}
		uint8_t *buf = NULL;
		size_t cap = 0, flen = 0;
		int rc = k->pack(ref, &buf, &cap, &flen);
		same_frame(rc, ref, buf, flen);
		free(buf);
		protobuf_c_message_free_unpacked(ref, NULL);
	}
	arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	/* An empty message comes as (NULL, 0), as protobuf-c gives an empty
	 * bytes field. */
	const uint8_t *msg = size > 1 ? data + 1 : NULL;
	check(data[0] & 1 ? &responses : &requests, msg, size - 1);
	return 0;
}
