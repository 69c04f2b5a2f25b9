/* Unit tests of the budgeted protobuf-c allocator. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "palloc.h"
#include "porter.pb-c.h"
#include "thmain.h"

/* A packed Ping request carrying `big` bytes, its length in `*len`; it and
 * the payload (`*payload`) are the caller's to free. */
static uint8_t *ping_wire(size_t big, size_t *len, uint8_t **payload)
{
	*payload = malloc(big);
	memset(*payload, 0x5a, big);
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Ping ping = PORTER__V1__PING__INIT;
	ping.payload.data = *payload;
	ping.payload.len = big;
	req.body_case = PORTER__V1__REQUEST__BODY_PING;
	req.ping = &ping;
	*len = porter__v1__request__get_packed_size(&req);
	uint8_t *wire = malloc(*len);
	porter__v1__request__pack(&req, wire);
	return wire;
}

START_TEST(legit_large_message_fits)
{
	size_t big = 4 * 1024 * 1024, len;
	uint8_t *payload;
	uint8_t *wire = ping_wire(big, &len, &payload);

	palloc_budget b;
	palloc_budget_init(&b, len, NULL);
	Porter__V1__Request *r = porter__v1__request__unpack(&b.base, len, wire);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->ping->payload.len, big);
	ck_assert_uint_le(b.used, b.limit);
	ck_assert_uint_ge(b.used, big);
	porter__v1__request__free_unpacked(r, NULL); /* malloc'd: default free */
	free(wire);
	free(payload);
}
END_TEST

/* Writes at `off` of `wire` the length of `n` empty sub-messages, then
 * the sub-messages themselves as field `field`; returns the new offset. */
static size_t put_empties(uint8_t *wire, size_t off, unsigned field, size_t n)
{
	size_t inner = 2 * n;
	do {
		uint8_t byte = inner & 0x7f;
		inner >>= 7;
		wire[off++] = byte | (inner ? 0x80 : 0);
	} while (inner);
	for (size_t i = 0; i < n; i++) {
		wire[off++] = (uint8_t)(field << 3 | 2);
		wire[off++] = 0;
	}
	return off;
}

START_TEST(inflating_message_is_refused)
{
	/* 100,000 empty sub-messages: 2 wire bytes each, ~90 bytes each once
	 * unpacked, well past the budget's factor. */
	size_t n = 100000;
	size_t len = 2 * n + 8;
	uint8_t *wire = malloc(len);
	size_t off = 0;
	/* Response.body stats (field 12, length-delimited) holding n empty
	 * WorkerStats (field 1). */
	wire[off++] = (12 << 3) | 2;
	off = put_empties(wire, off, 1, n);

	/* Without a budget protobuf-c builds it all. */
	Porter__V1__Response *r = porter__v1__response__unpack(NULL, off, wire);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->stats->n_workers, n);
	porter__v1__response__free_unpacked(r, NULL);

	palloc_budget b;
	palloc_budget_init(&b, off, NULL);
	r = porter__v1__response__unpack(&b.base, off, wire);
	ck_assert_ptr_null(r);
	ck_assert_uint_le(b.used, b.limit);
	free(wire);
}
END_TEST

/* A frame of `n` empty HTTP headers: Request{http: HttpRequest{headers}}. */
static uint8_t *headers_wire(size_t n, size_t *len)
{
	uint8_t *wire = malloc(2 * n + 16);
	size_t off = 0;
	wire[off++] = 0xf2; /* field 30 (http), length-delimited */
	wire[off++] = 0x01;
	*len = put_empties(wire, off, 3, n); /* HttpRequest.headers */
	return wire;
}

START_TEST(large_frame_grows_by_its_bytes_only)
{
	/* 4 million empty headers (8 MB): some 190 MiB unpacked, within
	 * the old budget of 32 times the frame; now refused once past twice
	 * the frame and 8 MiB. */
	size_t len;
	uint8_t *wire = headers_wire(4000000, &len);
	palloc_budget b;
	palloc_budget_init(&b, len, NULL);
	ck_assert_uint_eq(b.limit, PALLOC_LARGE_FACTOR * len + PALLOC_LARGE_SLACK);
	Porter__V1__Request *r = porter__v1__request__unpack(&b.base, len, wire);
	ck_assert_ptr_null(r);
	ck_assert_uint_le(b.used, b.limit);
	free(wire);
	/* What a client sends many of legitimately still fits: 65535 query
	 * parameters of a byte each (the most PostgreSQL takes), and a
	 * header list of ordinary size. */
	Porter__V1__DbParam p = PORTER__V1__DB_PARAM__INIT;
	p.value.data = (uint8_t *)"x";
	p.value.len = 1;
	Porter__V1__DbParam **ps = malloc(65535 * sizeof(*ps));
	for (size_t i = 0; i < 65535; i++)
		ps[i] = &p;
	Porter__V1__DbQuery q = PORTER__V1__DB_QUERY__INIT;
	q.sql = "SELECT 1";
	q.params = ps;
	q.n_params = 65535;
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	req.body_case = PORTER__V1__REQUEST__BODY_DB_QUERY;
	req.db_query = &q;
	len = porter__v1__request__get_packed_size(&req);
	wire = malloc(len);
	porter__v1__request__pack(&req, wire);
	free(ps);
	palloc_budget_init(&b, len, NULL);
	r = porter__v1__request__unpack(&b.base, len, wire);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->db_query->n_params, 65535);
	porter__v1__request__free_unpacked(r, NULL);
	free(wire);
	wire = headers_wire(1000, &len);
	palloc_budget_init(&b, len, NULL);
	r = porter__v1__request__unpack(&b.base, len, wire);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->http->n_headers, 1000);
	porter__v1__request__free_unpacked(r, NULL);
	free(wire);
}
END_TEST

START_TEST(limit_does_not_overflow)
{
	palloc_budget b;
	palloc_budget_init(&b, SIZE_MAX / 2, NULL);
	ck_assert_uint_eq(b.limit, SIZE_MAX);
	palloc_budget_init(&b, 0, NULL);
	ck_assert_uint_eq(b.limit, PALLOC_SLACK);
	ck_assert_ptr_null(b.base.alloc(b.base.allocator_data, PALLOC_SLACK + 1));
	void *p = b.base.alloc(b.base.allocator_data, 100);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(b.used, 100);
	b.base.free(b.base.allocator_data, p);
}
END_TEST

START_TEST(budget_draws_from_an_arena)
{
	size_t big = 256 * 1024, len;
	uint8_t *payload;
	uint8_t *wire = ping_wire(big, &len, &payload);

	arena a;
	arena_init(&a, 1024);
	palloc_budget b;
	palloc_budget_init(&b, len, &a);
	Porter__V1__Request *r = porter__v1__request__unpack(&b.base, len, wire);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->ping->payload.len, big);
	ck_assert_uint_ge(b.used, big);
	ck_assert_ptr_nonnull(a.head);
	/* The budget still binds: an arena-backed budget refuses the same
	 * inflated input as a malloc-backed one. */
	palloc_budget tight;
	palloc_budget_init(&tight, 16, &a);
	ck_assert_ptr_null(porter__v1__request__unpack(&tight.base, len, wire));
	arena_free(&a); /* the message ends with its arena */
	free(wire);
	free(payload);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {legit_large_message_fits,
				inflating_message_is_refused,
				large_frame_grows_by_its_bytes_only,
				limit_does_not_overflow,
				budget_draws_from_an_arena,
				NULL};
	return th_suite("palloc", "core", 0, tests);
}

TH_MAIN(suite)
