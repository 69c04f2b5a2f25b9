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
	size_t inner = 2 * n;
	do {
		uint8_t byte = inner & 0x7f;
		inner >>= 7;
		wire[off++] = byte | (inner ? 0x80 : 0);
	} while (inner);
	for (size_t i = 0; i < n; i++) {
		wire[off++] = (1 << 3) | 2;
		wire[off++] = 0;
	}

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
	const TTest *tests[] = {legit_large_message_fits, inflating_message_is_refused,
				limit_does_not_overflow, budget_draws_from_an_arena, NULL};
	return th_suite("palloc", "core", 0, tests);
}

TH_MAIN(suite)
