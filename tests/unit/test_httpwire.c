/*
 * Unit tests of the hand-written codec of HTTP requests and replies
 * (proto/httpwire.c, reached through dbwire.h): for messages of many
 * shapes its bytes must equal protobuf-c's, what it decodes must be what
 * protobuf-c decodes (compared by packing both with protobuf-c), damaged
 * and truncated copies must mean the same to both or be declined, and what
 * it declines is left to protobuf-c.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "dbwire.h"
#include "frame.h"
#include "httpwire.h"
#include "palloc.h"
#include "porter.pb-c.h"
#include "porter_errors.h"
#include "thmain.h"

static uint32_t seed = 2024;

static uint32_t rnd(void)
{
	seed = seed * 1103515245u + 12345u;
	return seed >> 8;
}

/* Every random message's memory comes from this arena, freed per round. */
static arena mem;

static void *alloc(size_t n)
{
	void *p = arena_alloc(&mem, n ? n : 1);
	ck_assert_ptr_nonnull(p);
	memset(p, 0, n ? n : 1);
	return p;
}

/* A random string: NULL or empty sometimes (proto3 leaves them out), long
 * ones sometimes (lengths over one varint byte), any byte but NUL. */
static char *rnd_str(void)
{
	uint32_t k = rnd() % 7;
	if (k == 0)
		return NULL;
	size_t n = k == 1 ? 0 : rnd() % (k == 6 ? 400 : 16);
	char *s = alloc(n + 1);
	for (size_t i = 0; i < n; i++)
		s[i] = (char)(1 + rnd() % 255);
	return s;
}

static uint64_t rnd_u64(void)
{
	switch (rnd() % 5) {
	case 0:
		return 0;
	case 1:
		return rnd() % 200;
	case 2:
		return (uint64_t)rnd() << 20;
	case 3:
		return UINT64_MAX - rnd() % 3;
	default:
		return ((uint64_t)rnd() << 40) | rnd();
	}
}

static ProtobufCBinaryData rnd_bytes(void)
{
	ProtobufCBinaryData b = {0, NULL};
	if (rnd() % 4 == 0)
		return b;
	b.len = rnd() % 5 == 0 ? 1000 + rnd() % 3000 : rnd() % 300;
	b.data = alloc(b.len);
	for (size_t i = 0; i < b.len; i++)
		b.data[i] = (uint8_t)rnd(); /* NULs included */
	return b;
}

static Porter__V1__HttpHeader **rnd_headers(size_t *n)
{
	*n = rnd() % 4 ? rnd() % 12 : 0;
	Porter__V1__HttpHeader **h = *n ? alloc(*n * sizeof(*h)) : NULL;
	for (size_t i = 0; i < *n; i++) {
		h[i] = alloc(sizeof(*h[i]));
		porter__v1__http_header__init(h[i]);
		h[i]->name = rnd_str();
		h[i]->value = rnd_str();
	}
	return h;
}

/* A random HttpRequest or HttpFetch request. */
static Porter__V1__Request *rnd_request(void)
{
	Porter__V1__Request *r = alloc(sizeof(*r));
	porter__v1__request__init(r);
	r->id = rnd_u64();
	r->timeout_ms = (uint32_t)rnd_u64();
	if (rnd() % 5 == 0) {
		Porter__V1__HttpFetch *f = alloc(sizeof(*f));
		porter__v1__http_fetch__init(f);
		f->stream_id = rnd_u64();
		r->body_case = PORTER__V1__REQUEST__BODY_HTTP_FETCH;
		r->http_fetch = f;
		return r;
	}
	Porter__V1__HttpRequest *q = alloc(sizeof(*q));
	porter__v1__http_request__init(q);
	q->method = rnd_str();
	q->url = rnd_str();
	q->headers = rnd_headers(&q->n_headers);
	q->body = rnd_bytes();
	q->transfer_timeout_ms = (uint32_t)rnd_u64();
	q->follow_redirects = rnd() % 2;
	q->max_redirects = (uint32_t)rnd_u64();
	q->max_response = rnd_u64();
	q->stream = rnd() % 2;
	q->chunk_size = (uint32_t)rnd_u64();
	q->keep_credentials = rnd() % 2;
	q->body_stream = rnd() % 2;
	q->body_size = rnd() % 3 == 0 ? -1 : (int64_t)rnd_u64();
	q->connect_timeout_ms = (uint32_t)rnd_u64();
	r->body_case = PORTER__V1__REQUEST__BODY_HTTP;
	r->http = q;
	return r;
}

/* A random Response with an HttpResponse body, sometimes with an error. */
static Porter__V1__Response *rnd_reply(void)
{
	Porter__V1__Response *r = alloc(sizeof(*r));
	porter__v1__response__init(r);
	r->id = rnd_u64();
	r->status = rnd() % 3 ? 0 : -(int32_t)(rnd() % 40);
	r->message = rnd_str();
	r->more = rnd() % 2;
	if (rnd() % 4 == 0) {
		Porter__V1__ErrorDetail *e = alloc(sizeof(*e));
		porter__v1__error_detail__init(e);
		e->http_status = (int32_t)(rnd() % 600);
		e->detail = rnd_str();
		r->error = e;
	}
	Porter__V1__HttpResponse *h = alloc(sizeof(*h));
	porter__v1__http_response__init(h);
	/* int32: a negative one takes ten bytes on the wire. */
	h->status = rnd() % 6 ? (int32_t)(rnd() % 600) : -(int32_t)(rnd() % 1000);
	h->headers = rnd_headers(&h->n_headers);
	h->body = rnd_bytes();
	h->effective_url = rnd_str();
	if (rnd() % 3) { /* an empty timings message is still written */
		Porter__V1__HttpTimings *t = alloc(sizeof(*t));
		porter__v1__http_timings__init(t);
		if (rnd() % 4) {
			t->namelookup_us = rnd_u64();
			t->connect_us = rnd_u64();
			t->tls_us = rnd_u64();
			t->first_byte_us = rnd_u64();
			t->total_us = rnd_u64();
		}
		h->timings = t;
	}
	h->stream_id = rnd_u64();
	h->redirects = (uint32_t)rnd_u64();
	h->status_line = rnd_str();
	h->n_hops = rnd() % 3 ? 0 : rnd() % 4;
	h->hops = h->n_hops ? alloc(h->n_hops * sizeof(*h->hops)) : NULL;
	for (size_t i = 0; i < h->n_hops; i++) {
		Porter__V1__HttpHop *hop = alloc(sizeof(*hop));
		porter__v1__http_hop__init(hop);
		hop->status_line = rnd_str();
		hop->headers = rnd_headers(&hop->n_headers);
		h->hops[i] = hop;
	}
	r->body_case = PORTER__V1__RESPONSE__BODY_HTTP;
	r->http = h;
	return r;
}

/* Packs a message with protobuf-c; the buffer is the caller's to free. */
static uint8_t *pb_pack(const ProtobufCMessage *m, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(m);
	uint8_t *b = malloc(*len + 1);
	ck_assert_uint_eq(protobuf_c_message_pack(m, b), *len);
	return b;
}

typedef ProtobufCMessage *fast_fn(ProtobufCAllocator *, size_t, const uint8_t *);

static ProtobufCMessage *fast_response(ProtobufCAllocator *a, size_t len, const uint8_t *d)
{
	return (ProtobufCMessage *)dbwire_unpack_response(a, len, d);
}

static ProtobufCMessage *fast_request(ProtobufCAllocator *a, size_t len, const uint8_t *d)
{
	return (ProtobufCMessage *)dbwire_unpack_request(a, len, d);
}

/*
 * Decodes `wire` with the fast decoder (into an arena, through a budget as
 * porterd does) and with protobuf-c. Whatever the fast one accepts
 * protobuf-c must accept too, and both must pack again to the same bytes.
 * Returns whether the fast one accepted.
 */
static int check_decode(const ProtobufCMessageDescriptor *desc, fast_fn *fast, const uint8_t *wire,
			size_t len)
{
	arena a;
	arena_init(&a, 256); /* small: many blocks, and pieces of their own */
	palloc_budget b;
	palloc_budget_init(&b, len, &a);
	ProtobufCMessage *mine = fast(&b.base, len, wire);
	ProtobufCMessage *theirs = protobuf_c_message_unpack(desc, NULL, len, wire);
	if (mine) {
		ck_assert_msg(theirs != NULL, "accepted what protobuf-c refuses");
		size_t l1, l2;
		uint8_t *b1 = pb_pack(mine, &l1), *b2 = pb_pack(theirs, &l2);
		ck_assert_uint_eq(l1, l2);
		ck_assert_mem_eq(b1, b2, l1);
		free(b1);
		free(b2);
	}
	if (theirs)
		protobuf_c_message_free_unpacked(theirs, NULL);
	arena_free(&a);
	return mine != NULL;
}

/* Damaged and cut copies of `wire`: each means the same to both decoders,
 * or is declined. */
static void check_damaged(const ProtobufCMessageDescriptor *desc, fast_fn *fast,
			  const uint8_t *wire, size_t len)
{
	if (!len)
		return;
	uint8_t *bad = malloc(len);
	for (int k = 0; k < 30; k++) {
		memcpy(bad, wire, len);
		int flips = 1 + (int)(rnd() % 3);
		for (int j = 0; j < flips; j++)
			bad[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
		check_decode(desc, fast, bad, rnd() % 4 ? len : rnd() % len);
	}
	/* Every prefix. */
	for (size_t n = 0; n < len && n < 200; n++)
		check_decode(desc, fast, wire, n);
	free(bad);
}

/* Packs `m` (a Request when `request`, else a Response) with protobuf-c
 * and with the codec: the same bytes; decodes them, and damaged copies of
 * them, both ways. */
static void round_trip(const ProtobufCMessage *m, int request)
{
	const ProtobufCMessageDescriptor *d =
		request ? &porter__v1__request__descriptor : &porter__v1__response__descriptor;
	fast_fn *fast = request ? fast_request : fast_response;
	size_t want_len, got_len = 0, cap = 0;
	uint8_t *want = pb_pack(m, &want_len), *got = NULL;
	int rc = request ? dbwire_pack_request((const Porter__V1__Request *)m, 1 << 24, &got, &cap,
					       &got_len)
			 : dbwire_pack_response((const Porter__V1__Response *)m, 1 << 24, &got,
						&cap, &got_len);
	ck_assert_int_eq(rc, 1);
	ck_assert_uint_eq(got_len, FRAME_HEADER_SIZE + want_len);
	ck_assert_mem_eq(got + FRAME_HEADER_SIZE, want, want_len);
	ck_assert(check_decode(d, fast, want, want_len));
	check_damaged(d, fast, want, want_len);
	free(want);
	free(got);
}

START_TEST(random_requests_match_protobuf_c)
{
	seed = 99u + (uint32_t)_i;
	for (int round = 0; round < 150; round++) {
		arena_init(&mem, 0);
		round_trip(&rnd_request()->base, 1);
		arena_free(&mem);
	}
}
END_TEST

START_TEST(random_replies_match_protobuf_c)
{
	seed = 7001u + (uint32_t)_i;
	for (int round = 0; round < 150; round++) {
		arena_init(&mem, 0);
		round_trip(&rnd_reply()->base, 0);
		arena_free(&mem);
	}
}
END_TEST

/* Raw bytes, as a hostile peer would write them. */
/*
 * Frames `r` around its body with httpwire_frame_response: head, body and
 * tail together must be protobuf-c's frame of `r`, byte for byte, or the
 * reply declined (1) exactly when it is not a plain successful one with a
 * body. `buf` is reused across calls as porterd's pack buffer is.
 */
static void check_frame(const Porter__V1__Response *r, uint8_t **buf, size_t *cap)
{
	size_t hl = 0, tl = 0;
	int rc = httpwire_frame_response(r, 1 << 24, buf, cap, &hl, &tl);
	int plain = r->http && r->http->body.len && !r->error && !(r->message && *r->message);
	ck_assert_int_eq(rc, plain ? 0 : 1);
	if (rc)
		return;
	size_t want_len;
	uint8_t *want = pb_pack(&r->base, &want_len);
	size_t bl = r->http->body.len;
	ck_assert_uint_eq(hl + bl + tl, FRAME_HEADER_SIZE + want_len);
	ck_assert_uint_eq(frame_get_header(*buf), want_len);
	ck_assert_mem_eq(*buf + FRAME_HEADER_SIZE, want, hl - FRAME_HEADER_SIZE);
	ck_assert_mem_eq(want + hl - FRAME_HEADER_SIZE, r->http->body.data, bl);
	if (tl)
		ck_assert_mem_eq(*buf + hl, want + hl - FRAME_HEADER_SIZE + bl, tl);
	free(want);
}

START_TEST(replies_framed_around_their_body)
{
	seed = 4242u + (uint32_t)_i;
	uint8_t *buf = NULL;
	size_t cap = 0;
	for (int round = 0; round < 300; round++) {
		arena_init(&mem, 0);
		Porter__V1__Response *r = rnd_reply();
		check_frame(r, &buf, &cap);
		/* The same reply as a success: framed unless its body is
		 * empty. */
		r->error = NULL;
		r->message = NULL;
		r->status = 0;
		check_frame(r, &buf, &cap);
		/* A large body (its length takes more varint bytes). */
		size_t n = 70000 + rnd() % 300000;
		uint8_t *big = alloc(n);
		for (size_t i = 0; i < n; i++)
			big[i] = (uint8_t)rnd();
		r->http->body.data = big;
		r->http->body.len = n;
		check_frame(r, &buf, &cap);
		arena_free(&mem);
	}
	free(buf);
}
END_TEST

START_TEST(framing_declines_and_bounds)
{
	uint8_t body[100] = {1, 2, 3};
	Porter__V1__Response r = PORTER__V1__RESPONSE__INIT;
	Porter__V1__HttpResponse h = PORTER__V1__HTTP_RESPONSE__INIT;
	Porter__V1__PingReply ping = PORTER__V1__PING_REPLY__INIT;
	uint8_t *buf = NULL;
	size_t cap = 0, hl, tl;
	/* Not an HTTP reply. */
	r.body_case = PORTER__V1__RESPONSE__BODY_PING;
	r.ping = &ping;
	ck_assert_int_eq(httpwire_frame_response(&r, 1 << 20, &buf, &cap, &hl, &tl), 1);
	r.body_case = PORTER__V1__RESPONSE__BODY_HTTP;
	r.http = &h;
	/* An empty body. */
	ck_assert_int_eq(httpwire_frame_response(&r, 1 << 20, &buf, &cap, &hl, &tl), 1);
	h.body.data = body;
	h.body.len = sizeof(body);
	h.status = 200;
	ck_assert_int_eq(httpwire_frame_response(&r, 1 << 20, &buf, &cap, &hl, &tl), 0);
	/* Over the frame limit by one byte, and exactly at it. */
	size_t len = frame_get_header(buf);
	ck_assert_int_eq(httpwire_frame_response(&r, len - 1, &buf, &cap, &hl, &tl),
			 PORTER_E_TOO_LARGE);
	ck_assert_int_eq(httpwire_frame_response(&r, len, &buf, &cap, &hl, &tl), 0);
	/* Unknown fields are protobuf-c's to write. */
	ProtobufCMessageUnknownField u = {.tag = 99, .wire_type = PROTOBUF_C_WIRE_TYPE_VARINT};
	uint8_t one = 1;
	u.len = 1;
	u.data = &one;
	h.base.n_unknown_fields = 1;
	h.base.unknown_fields = &u;
	ck_assert_int_eq(httpwire_frame_response(&r, 1 << 20, &buf, &cap, &hl, &tl), 1);
	free(buf);
}
END_TEST

static int decodes(fast_fn *fast, const ProtobufCMessageDescriptor *desc, const char *wire,
		   size_t len)
{
	return check_decode(desc, fast, (const uint8_t *)wire, len);
}

#define REQ(s) decodes(fast_request, &porter__v1__request__descriptor, s, sizeof(s) - 1)
#define RESP(s) decodes(fast_response, &porter__v1__response__descriptor, s, sizeof(s) - 1)

/* Field 30 (tag 0xf2 0x01) holds the HTTP body in both directions. */
START_TEST(decoders_decline_what_they_do_not_know)
{
	/* Accepted: a GET with one header; a fetch; a reply with timings. */
	ck_assert(REQ("\x08\x05\xf2\x01\x0c\x0a\x03GET\x1a\x05\x0a\x01"
		      "a"
		      "\x12\x00"));
	ck_assert(REQ("\xfa\x01\x02\x08\x07"));
	ck_assert(RESP("\x08\x05\xf2\x01\x07\x08\xc8\x01\x2a\x02\x28\x01"));
	/* An empty HTTP body, and a reply's empty header and hop. */
	ck_assert(REQ("\xf2\x01\x00"));
	ck_assert(RESP("\xf2\x01\x06\x12\x00\x4a\x02\x12\x00"));
	/* A field HttpRequest does not have (15), in a header (3), in the
	 * reply (10), in timings (6), in a hop (3): declined. */
	ck_assert(!REQ("\xf2\x01\x02\x78\x01"));
	ck_assert(!REQ("\xf2\x01\x04\x1a\x02\x18\x01"));
	ck_assert(!RESP("\xf2\x01\x02\x50\x01"));
	ck_assert(!RESP("\xf2\x01\x04\x2a\x02\x30\x01"));
	ck_assert(!RESP("\xf2\x01\x04\x4a\x02\x18\x01"));
	/* Timings twice, or the body twice: protobuf-c merges them. */
	ck_assert(!RESP("\xf2\x01\x04\x2a\x00\x2a\x00"));
	ck_assert(!REQ("\xf2\x01\x00\xf2\x01\x00"));
	/* A DbQuery and an HTTP body in one request (one oneof). */
	ck_assert(!REQ("\xaa\x01\x00\xf2\x01\x00"));
	/* Wrong wire types: a header as a varint, a string as a varint, the
	 * status as bytes, a fixed64. */
	ck_assert(!REQ("\xf2\x01\x02\x18\x01"));
	ck_assert(!REQ("\xf2\x01\x02\x08\x01"));
	ck_assert(!RESP("\xf2\x01\x02\x0a\x00"));
	ck_assert(!REQ("\xf2\x01\x09\x29\x01\x02\x03\x04\x05\x06\x07\x08"));
	/* Lengths past the end, at every level. */
	ck_assert(!REQ("\xf2\x01\x05\x0a\x09GET"));
	ck_assert(!REQ("\xf2\x01\x04\x1a\x05\x0a\x01"));
	ck_assert(!RESP("\xf2\x01\x07\x4a\x05\x12\x04\x0a\x09x"));
	ck_assert(!RESP("\xf2\x01\xff\xff\xff\xff\x0f"));
	/* An over-long varint, and a tag of field 0. */
	ck_assert(!REQ("\xf2\x01\x0b\x28\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"));
	ck_assert(!REQ("\xf2\x01\x02\x00\x01"));
}
END_TEST

/* Repeated headers are counted before their array is allocated; a frame of
 * many empty headers is bounded by the frame's budget, as protobuf-c is:
 * past it the decoder declines (and protobuf-c, given the same budget,
 * fails), within it both build the same message. */
START_TEST(many_headers_are_bounded_by_the_budget)
{
	size_t n = 100000;
	uint8_t *w = malloc(8 + 2 * n);
	uint8_t *p = put_len(w, 30, 2 * n);
	for (size_t i = 0; i < n; i++) {
		*p++ = 0x1a; /* field 3, an empty header */
		*p++ = 0x00;
	}
	size_t len = (size_t)(p - w);
	ck_assert(decodes(fast_request, &porter__v1__request__descriptor, (const char *)w, len));

	/* The same with a budget far below it: declined, not allocated. */
	arena a;
	arena_init(&a, 0);
	palloc_budget b;
	palloc_budget_init(&b, 0, &a);
	b.limit = 4096;
	ck_assert_ptr_null(dbwire_unpack_request(&b.base, len, w));
	ck_assert_uint_le(b.used, 4096);
	ck_assert_int_eq(b.nomem, 0);
	arena_free(&a);
	free(w);
}
END_TEST

/* Unknown fields in a message to pack: only protobuf-c writes them. */
START_TEST(unknown_fields_are_left_to_protobuf_c)
{
	ProtobufCMessageUnknownField uf = {99, PROTOBUF_C_WIRE_TYPE_VARINT, 1, (uint8_t *)"\x01"};
	Porter__V1__HttpHeader hd = PORTER__V1__HTTP_HEADER__INIT;
	Porter__V1__HttpHeader *hp[] = {&hd};
	Porter__V1__HttpHop hop = PORTER__V1__HTTP_HOP__INIT;
	Porter__V1__HttpHop *hops[] = {&hop};
	Porter__V1__HttpTimings t = PORTER__V1__HTTP_TIMINGS__INIT;
	Porter__V1__HttpResponse h = PORTER__V1__HTTP_RESPONSE__INIT;
	Porter__V1__Response r = PORTER__V1__RESPONSE__INIT;
	r.body_case = PORTER__V1__RESPONSE__BODY_HTTP;
	r.http = &h;
	h.timings = &t;
	h.headers = hp;
	h.n_headers = 1;
	h.hops = hops;
	h.n_hops = 1;
	hop.headers = hp;
	hop.n_headers = 1;
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0;
	ck_assert_int_eq(dbwire_pack_response(&r, 1 << 20, &buf, &cap, &len), 1);
	ProtobufCMessage *each[] = {&hd.base, &hop.base, &t.base, &h.base};
	for (size_t i = 0; i < sizeof(each) / sizeof(each[0]); i++) {
		each[i]->n_unknown_fields = 1;
		each[i]->unknown_fields = &uf;
		size_t l2 = 0;
		ck_assert_int_eq(dbwire_pack_response(&r, 1 << 20, &buf, &cap, &l2), 0);
		each[i]->n_unknown_fields = 0;
		each[i]->unknown_fields = NULL;
	}
	Porter__V1__HttpRequest q = PORTER__V1__HTTP_REQUEST__INIT;
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	req.body_case = PORTER__V1__REQUEST__BODY_HTTP;
	req.http = &q;
	q.headers = hp;
	q.n_headers = 1;
	ck_assert_int_eq(dbwire_pack_request(&req, 1 << 20, &buf, &cap, &len), 1);
	hd.base.n_unknown_fields = 1;
	hd.base.unknown_fields = &uf;
	ck_assert_int_eq(dbwire_pack_request(&req, 1 << 20, &buf, &cap, &len), 0);
	/* Over the frame limit: refused, not truncated. */
	hd.base.n_unknown_fields = 0;
	hd.base.unknown_fields = NULL;
	q.url = "http://example.test/a-long-enough-path";
	ck_assert_int_eq(dbwire_pack_request(&req, 20, &buf, &cap, &len), PORTER_E_TOO_LARGE);
	free(buf);
}
END_TEST

START_TEST(schema_is_the_one_httpwire_knows)
{
	ck_assert_msg(httpwire_schema_known(),
		      "porter.proto's HTTP messages gained a field: teach proto/httpwire.c "
		      "(encoders, decoders, and the field counts it checks)");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("httpwire");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, schema_is_the_one_httpwire_knows);
	tcase_add_loop_test(tc, random_requests_match_protobuf_c, 0, 8);
	tcase_add_loop_test(tc, random_replies_match_protobuf_c, 0, 8);
	tcase_add_loop_test(tc, replies_framed_around_their_body, 0, 4);
	tcase_add_test(tc, framing_declines_and_bounds);
	tcase_add_test(tc, decoders_decline_what_they_do_not_know);
	tcase_add_test(tc, many_headers_are_bounded_by_the_budget);
	tcase_add_test(tc, unknown_fields_are_left_to_protobuf_c);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
