/* Unit tests of the bump arena for protobuf-c messages. */
#include <check.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "porter.pb-c.h"
#include "thmain.h"

static int aligned(const void *p)
{
	return ((uintptr_t)p % alignof(max_align_t)) == 0;
}

START_TEST(pieces_are_aligned_and_distinct)
{
	arena a;
	arena_init(&a, 0);
	ck_assert_ptr_null(a.head); /* nothing until first used */
	unsigned char *prev = NULL;
	for (size_t n = 0; n < 300; n++) {
		unsigned char *p = arena_alloc(&a, n);
		ck_assert_ptr_nonnull(p);
		ck_assert(aligned(p));
		memset(p, 0xab, n); /* ASan sees any overlap with a block's end */
		if (prev)
			ck_assert_ptr_ne(p, prev);
		prev = p;
	}
	arena_free(&a);
	ck_assert_ptr_null(a.head);
}
END_TEST

START_TEST(large_piece_gets_its_own_block_and_small_ones_continue)
{
	arena a;
	arena_init(&a, 1024);
	char *s1 = arena_alloc(&a, 16);
	char *big = arena_alloc(&a, 100000);
	char *s2 = arena_alloc(&a, 16);
	ck_assert_ptr_nonnull(big);
	memset(big, 1, 100000);
	/* The small pieces still come from the first block, one after the
	 * other. */
	ck_assert_ptr_eq(s2, s1 + 16);
	arena_reset(&a);
	/* Only the standard block is kept; it serves again from its start. */
	ck_assert_ptr_nonnull(a.head);
	char *again = arena_alloc(&a, 16);
	ck_assert_ptr_eq(again, s1);
	arena_free(&a);
}
END_TEST

START_TEST(overflowing_size_is_refused)
{
	arena a;
	arena_init(&a, 0);
	ck_assert_ptr_null(arena_alloc(&a, SIZE_MAX));
	ck_assert_ptr_null(arena_alloc(&a, SIZE_MAX - 8));
	arena_free(&a);
}
END_TEST

START_TEST(unpacked_message_lives_in_the_arena)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__DbQuery q = PORTER__V1__DB_QUERY__INIT;
	Porter__V1__DbParam p1 = PORTER__V1__DB_PARAM__INIT, p2 = PORTER__V1__DB_PARAM__INIT;
	Porter__V1__DbParam *params[] = {&p1, &p2};
	uint8_t bytes[] = {0, 1, 0, 2};
	p1.value.data = bytes;
	p1.value.len = sizeof(bytes);
	p1.binary = 1;
	p2.is_null = 1;
	q.sql = "SELECT $1, $2";
	q.conninfo = "host=/tmp dbname=x";
	q.params = params;
	q.n_params = 2;
	req.id = 42;
	req.body_case = PORTER__V1__REQUEST__BODY_DB_QUERY;
	req.db_query = &q;
	size_t len = porter__v1__request__get_packed_size(&req);
	uint8_t *wire = malloc(len);
	porter__v1__request__pack(&req, wire);

	arena a;
	arena_init(&a, 256);
	for (int round = 0; round < 3; round++) {
		Porter__V1__Request *m = porter__v1__request__unpack(&a.base, len, wire);
		ck_assert_ptr_nonnull(m);
		ck_assert_uint_eq(m->id, 42);
		ck_assert_str_eq(m->db_query->sql, "SELECT $1, $2");
		ck_assert_str_eq(m->db_query->conninfo, "host=/tmp dbname=x");
		ck_assert_uint_eq(m->db_query->n_params, 2);
		ck_assert_mem_eq(m->db_query->params[0]->value.data, bytes, sizeof(bytes));
		ck_assert(m->db_query->params[1]->is_null);
		/* free_unpacked with the arena's allocator is harmless... */
		porter__v1__request__free_unpacked(m, &a.base);
		/* ...and everything goes back at once. */
		arena_reset(&a);
	}
	/* A truncated frame fails cleanly; its partial message is the
	 * arena's to release. */
	ck_assert_ptr_null(porter__v1__request__unpack(&a.base, len - 3, wire));
	arena_free(&a);
	free(wire);
}
END_TEST

START_TEST(move_hands_over_every_block)
{
	arena a, b;
	arena_init(&a, 512);
	char *p = arena_alloc(&a, 100);
	char *q = arena_alloc(&a, 4096);
	memset(p, 1, 100);
	memset(q, 2, 4096);
	arena_move(&b, &a);
	ck_assert_ptr_null(a.head);
	ck_assert_uint_eq(b.block, 512);
	ck_assert_int_eq(p[99], 1);
	ck_assert_int_eq(q[4095], 2);
	arena_free(&a); /* empty: nothing to free */
	arena_free(&b); /* LeakSanitizer checks both blocks went */
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {pieces_are_aligned_and_distinct,
				large_piece_gets_its_own_block_and_small_ones_continue,
				overflowing_size_is_refused,
				unpacked_message_lives_in_the_arena,
				move_hands_over_every_block,
				NULL};
	return th_suite("arena", "core", 0, tests);
}

TH_MAIN(suite)
