/* Unit tests of the framing shared by porterd and libporter. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "dbwire.h"
#include "frame.h"
#include "porter_errors.h"
#include "porter.pb-c.h"
#include "thmain.h"

/* Feeds `len` bytes into the reader in pieces of at most `step`. */
static void feed(frame_reader *r, const uint8_t *data, size_t len, size_t step)
{
	while (len) {
		uint8_t *p;
		size_t n;
		ck_assert_int_eq(frame_reader_space(r, &p, &n), 0);
		ck_assert_uint_ge(n, 1);
		size_t k = len < step ? len : step;
		if (k > n)
			k = n;
		memcpy(p, data, k);
		frame_reader_commit(r, k);
		data += k;
		len -= k;
	}
}

static size_t make_frame(uint8_t *out, const char *payload)
{
	size_t n = strlen(payload);
	frame_put_header(out, (uint32_t)n);
	memcpy(out + 4, payload, n);
	return n + 4;
}

START_TEST(header_round_trip)
{
	uint8_t h[4];
	frame_put_header(h, 0x01020304u);
	ck_assert_uint_eq(h[0], 1);
	ck_assert_uint_eq(h[3], 4);
	ck_assert_uint_eq(frame_get_header(h), 0x01020304u);
	frame_put_header(h, 0xffffffffu);
	ck_assert_uint_eq(frame_get_header(h), 0xffffffffu);
}
END_TEST

START_TEST(byte_by_byte)
{
	frame_reader r;
	uint8_t buf[64];
	size_t n = make_frame(buf, "hello");
	n += make_frame(buf + n, "world!");
	frame_reader_init(&r, 1024);

	const uint8_t *p;
	size_t len;
	/* Nothing is yielded until the whole first frame is in. */
	for (size_t i = 0; i < 8; i++) {
		ck_assert_int_eq(frame_reader_next(&r, &p, &len), 0);
		feed(&r, buf + i, 1, 1);
	}
	ck_assert_uint_eq(frame_reader_pending(&r), 8);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len), 0);
	feed(&r, buf + 8, 1, 1);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len), 1);
	ck_assert_uint_eq(len, 5);
	ck_assert(memcmp(p, "hello", 5) == 0);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len), 0);
	feed(&r, buf + 9, n - 9, 3);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len), 1);
	ck_assert_uint_eq(len, 6);
	ck_assert(memcmp(p, "world!", 6) == 0);
	ck_assert_uint_eq(frame_reader_pending(&r), 0);
	frame_reader_free(&r);
}
END_TEST

START_TEST(many_frames_in_one_read)
{
	frame_reader r;
	uint8_t buf[4096];
	size_t n = 0;
	char payload[32];
	for (int i = 0; i < 100; i++) {
		snprintf(payload, sizeof(payload), "frame-%d", i);
		n += make_frame(buf + n, payload);
	}
	frame_reader_init(&r, 1024);
	feed(&r, buf, n, n);
	for (int i = 0; i < 100; i++) {
		const uint8_t *p;
		size_t len;
		ck_assert_int_eq(frame_reader_next(&r, &p, &len), 1);
		snprintf(payload, sizeof(payload), "frame-%d", i);
		ck_assert_uint_eq(len, strlen(payload));
		ck_assert(memcmp(p, payload, len) == 0);
	}
	const uint8_t *p;
	size_t len;
	ck_assert_int_eq(frame_reader_next(&r, &p, &len), 0);
	frame_reader_free(&r);
}
END_TEST

START_TEST(zero_length)
{
	frame_reader r;
	uint8_t buf[4] = {0, 0, 0, 0};
	frame_reader_init(&r, 1024);
	feed(&r, buf, 4, 4);
	const uint8_t *p;
	size_t len = 99;
	ck_assert_int_eq(frame_reader_next(&r, &p, &len), 1);
	ck_assert_uint_eq(len, 0);
	/* An empty payload unpacks to a Request with no body, which the
	 * daemon refuses as unsupported rather than crashing. */
	Porter__V1__Request *req = porter__v1__request__unpack(NULL, 0, p);
	ck_assert_ptr_nonnull(req);
	ck_assert_int_eq(req->body_case, PORTER__V1__REQUEST__BODY__NOT_SET);
	porter__v1__request__free_unpacked(req, NULL);
	frame_reader_free(&r);
}
END_TEST

START_TEST(oversized_rejected_before_allocation)
{
	frame_reader r;
	uint8_t hdr[4];
	frame_reader_init(&r, 1024);
	frame_put_header(hdr, 0xffffffffu); /* 4 GiB */
	feed(&r, hdr, 4, 4);
	size_t cap_before = r.cap;
	const uint8_t *p;
	size_t len;
	ck_assert_int_eq(frame_reader_next(&r, &p, &len), PORTER_E_TOO_LARGE);
	uint8_t *space;
	size_t n;
	ck_assert_int_eq(frame_reader_space(&r, &space, &n), PORTER_E_TOO_LARGE);
	ck_assert_uint_eq(r.cap, cap_before);
	ck_assert_uint_lt(r.cap, 1024 * 1024);
	frame_reader_free(&r);

	/* One byte over the limit is refused; exactly the limit is not. */
	frame_reader_init(&r, 1024);
	frame_put_header(hdr, 1025);
	feed(&r, hdr, 4, 4);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len), PORTER_E_TOO_LARGE);
	frame_reader_free(&r);
	frame_reader_init(&r, 1024);
	frame_put_header(hdr, 1024);
	feed(&r, hdr, 4, 4);
	ck_assert_int_eq(frame_reader_next(&r, &p, &len), 0);
	frame_reader_free(&r);
}
END_TEST

START_TEST(declared_length_does_not_drive_allocation)
{
	/* A large legal frame announced but barely sent must not reserve its
	 * full size: growth follows the bytes actually received. */
	frame_reader r;
	uint8_t hdr[4];
	frame_reader_init(&r, 512u * 1024 * 1024);
	frame_put_header(hdr, 500u * 1024 * 1024);
	feed(&r, hdr, 4, 4);
	uint8_t *p;
	size_t n;
	ck_assert_int_eq(frame_reader_space(&r, &p, &n), 0);
	ck_assert_uint_le(r.cap, 4 * FRAME_READ_CHUNK);
	frame_reader_free(&r);
}
END_TEST

START_TEST(large_frame_split)
{
	frame_reader r;
	size_t big = 3 * 1024 * 1024 + 17;
	uint8_t *buf = malloc(big + 4);
	frame_put_header(buf, (uint32_t)big);
	for (size_t i = 0; i < big; i++)
		buf[4 + i] = (uint8_t)(i * 7);
	frame_reader_init(&r, 4 * 1024 * 1024);
	feed(&r, buf, big + 4, 100000);
	const uint8_t *p;
	size_t len;
	ck_assert_int_eq(frame_reader_next(&r, &p, &len), 1);
	ck_assert_uint_eq(len, big);
	ck_assert(memcmp(p, buf + 4, big) == 0);
	/* Idle and large: trimming releases the buffer. */
	frame_reader_trim(&r, 1024 * 1024);
	ck_assert_ptr_null(r.buf);
	frame_reader_free(&r);
	free(buf);
}
END_TEST

START_TEST(garbage_payload_does_not_unpack)
{
	/* Bytes that are not a protobuf Request: a field with wire type 7 and
	 * a length running past the end. */
	const uint8_t garbage[] = {0x0f, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x7f, 0x01};
	Porter__V1__Request *req = porter__v1__request__unpack(NULL, sizeof(garbage), garbage);
	ck_assert_ptr_null(req);
}
END_TEST

START_TEST(pack_respects_limit)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Ping ping = PORTER__V1__PING__INIT;
	uint8_t payload[2000];
	memset(payload, 0xab, sizeof(payload));
	ping.payload.data = payload;
	ping.payload.len = sizeof(payload);
	req.id = 7;
	req.body_case = PORTER__V1__REQUEST__BODY_PING;
	req.ping = &ping;

	uint8_t *out;
	size_t len;
	ck_assert_int_eq(frame_pack(&req.base, 1024, &out, &len), PORTER_E_TOO_LARGE);
	ck_assert_int_eq(frame_pack(&req.base, 4096, &out, &len), 0);
	ck_assert_uint_eq(frame_get_header(out), len - 4);
	Porter__V1__Request *back = porter__v1__request__unpack(NULL, len - 4, out + 4);
	ck_assert_ptr_nonnull(back);
	ck_assert_uint_eq(back->id, 7);
	ck_assert_uint_eq(back->ping->payload.len, sizeof(payload));
	porter__v1__request__free_unpacked(back, NULL);
	free(out);
}
END_TEST

/* ---- a large reply's body handed over where it was read ---- */

/* A framed Response with id `id` whose body is an HttpResponse of status
 * 200 and a body of `n` bytes (byte i is i % 251); malloc'd, `*len` its
 * size. */
static uint8_t *http_frame(uint64_t id, size_t n, size_t *len)
{
	uint8_t *body = malloc(n ? n : 1);
	ck_assert_ptr_nonnull(body);
	for (size_t i = 0; i < n; i++)
		body[i] = (uint8_t)(i % 251);
	Porter__V1__HttpResponse h = PORTER__V1__HTTP_RESPONSE__INIT;
	h.status = 200;
	h.body.data = body;
	h.body.len = n;
	Porter__V1__Response r = PORTER__V1__RESPONSE__INIT;
	r.id = id;
	r.body_case = PORTER__V1__RESPONSE__BODY_HTTP;
	r.http = &h;
	uint8_t *out = NULL;
	ck_assert_int_eq(frame_pack(&r.base, 64u << 20, &out, len), 0);
	free(body);
	return out;
}

static int body_ok(const Porter__V1__Response *m, size_t n)
{
	if (!m || m->body_case != PORTER__V1__RESPONSE__BODY_HTTP || m->http->body.len != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (m->http->body.data[i] != (uint8_t)(i % 251))
			return 0;
	return 1;
}

/* Takes the next frame, lends it to a fresh arena `a` (a buffer larger
 * than `keep`) and unpacks it; `*inside` says whether the body points into
 * the frame's payload. */
static Porter__V1__Response *take(frame_reader *r, arena *a, size_t keep, int *inside)
{
	const uint8_t *p;
	size_t len;
	ck_assert_int_eq(frame_reader_next(r, &p, &len), 1);
	arena_init(a, 0);
	frame_reader_lend(r, a, p, len, keep);
	Porter__V1__Response *m = dbwire_unpack_response(&a->base, len, p);
	ck_assert_ptr_nonnull(m);
	const uint8_t *d = m->http ? m->http->body.data : NULL;
	*inside = d && d >= p && d < p + len;
	return m;
}

START_TEST(a_large_body_is_used_where_it_was_read)
{
	size_t flen;
	const size_t n = 300 * 1024;
	uint8_t *f = http_frame(7, n, &flen);
	frame_reader r;
	frame_reader_init(&r, 64u << 20);
	feed(&r, f, flen, 10000);
	arena a;
	int inside;
	Porter__V1__Response *m = take(&r, &a, 256 * 1024, &inside);
	ck_assert(inside);
	ck_assert(body_ok(m, n));
	/* The reader let go of the buffer and reads the next frame afresh. */
	ck_assert_ptr_null(r.buf);
	ck_assert_uint_eq(frame_reader_pending(&r), 0);
	/* The result may move to the object that keeps it. */
	arena kept;
	arena_move(&kept, &a);
	ck_assert(body_ok(m, n));
	feed(&r, f, flen, 65536);
	arena b;
	Porter__V1__Response *m2 = take(&r, &b, 256 * 1024, &inside);
	ck_assert(inside);
	ck_assert(body_ok(m2, n));
	ck_assert(body_ok(m, n));
	/* A buffer the reader keeps for the next frame stays its own. */
	feed(&r, f, flen, flen);
	arena c;
	Porter__V1__Response *m3 = take(&r, &c, 1u << 20, &inside);
	ck_assert(!inside);
	ck_assert(body_ok(m3, n));
	ck_assert_ptr_nonnull(r.buf);
	arena_free(&c);
	/* The buffers go with the arenas (LeakSanitizer checks). */
	arena_free(&kept);
	arena_free(&b);
	arena_free(&a);
	frame_reader_free(&r);
	free(f);
}
END_TEST

START_TEST(a_body_is_copied_when_the_buffer_holds_more)
{
	size_t l1, l2;
	const size_t n = 100 * 1024;
	uint8_t *f1 = http_frame(1, n, &l1), *f2 = http_frame(2, n, &l2);
	uint8_t *both = malloc(l1 + l2);
	ck_assert_ptr_nonnull(both);
	memcpy(both, f1, l1);
	memcpy(both + l1, f2, l2);
	frame_reader r;
	frame_reader_init(&r, 64u << 20);
	feed(&r, both, l1 + l2, l1 + l2);
	arena a, b;
	int inside;
	/* The second frame is in the same buffer: the first body is copied,
	 * and the second frame stays readable. */
	Porter__V1__Response *m = take(&r, &a, 0, &inside);
	ck_assert(!inside);
	ck_assert(body_ok(m, n));
	ck_assert_ptr_nonnull(r.buf);
	/* The last one buffered is lent. */
	Porter__V1__Response *m2 = take(&r, &b, 0, &inside);
	ck_assert(inside);
	ck_assert(body_ok(m2, n));
	ck_assert_uint_eq(m2->id, 2);
	arena_free(&a);
	arena_free(&b);
	frame_reader_free(&r);
	free(both);
	free(f1);
	free(f2);
}
END_TEST

START_TEST(a_small_body_is_copied)
{
	size_t flen;
	const size_t n = ARENA_LEND_MIN - 1024;
	uint8_t *f = http_frame(3, n, &flen);
	frame_reader r;
	frame_reader_init(&r, 64u << 20);
	feed(&r, f, flen, flen);
	arena a;
	int inside;
	Porter__V1__Response *m = take(&r, &a, 0, &inside);
	ck_assert(!inside);
	ck_assert(body_ok(m, n));
	ck_assert_ptr_nonnull(r.buf); /* kept for the next frame */
	arena_free(&a);
	frame_reader_free(&r);
	free(f);
}
END_TEST

START_TEST(only_the_lent_range_of_an_arena_is_lent)
{
	arena a;
	arena_init(&a, 0);
	uint8_t *mem = malloc(1000);
	ck_assert_ptr_nonnull(mem);
	ck_assert(!arena_lent(&a.base, mem, 10));
	ck_assert_int_eq(arena_adopt(&a, mem), 0);
	arena_lend(&a, mem + 100, 800);
	ck_assert(arena_lent(&a.base, mem + 100, 800));
	ck_assert(arena_lent(&a.base, mem + 500, 400));
	ck_assert(!arena_lent(&a.base, mem + 99, 10));
	ck_assert(!arena_lent(&a.base, mem + 500, 401));
	/* Another allocator (protobuf-c's default, a budget) never lends. */
	ProtobufCAllocator other = a.base;
	other.alloc = NULL;
	ck_assert(!arena_lent(&other, mem + 100, 10));
	/* Small pieces still come from the arena's blocks. */
	ck_assert_ptr_nonnull(arena_alloc(&a, 100));
	/* A reset frees the adopted memory and ends the loan. */
	arena_reset(&a);
	ck_assert(!arena_lent(&a.base, mem + 100, 10));
	arena_free(&a);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {header_round_trip,
				byte_by_byte,
				many_frames_in_one_read,
				zero_length,
				oversized_rejected_before_allocation,
				declared_length_does_not_drive_allocation,
				large_frame_split,
				garbage_payload_does_not_unpack,
				pack_respects_limit,
				a_large_body_is_used_where_it_was_read,
				a_body_is_copied_when_the_buffer_holds_more,
				a_small_body_is_copied,
				only_the_lent_range_of_an_arena_is_lent,
				NULL};
	return th_suite("frame", "core", 0, tests);
}

TH_MAIN(suite)
