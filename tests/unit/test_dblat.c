/*
 * Unit tests of daemon/dblat.c, the per-pool table of statement latencies:
 * the hash is never 0 (0 marks an empty slot) and tells texts apart; a
 * statement is FAST when most of its last (up to three) runs were at most
 * DBLAT_FAST_MS, MIXED when some were, UNKNOWN when none were or it was
 * never seen; only the last three runs count; a full set evicts the way
 * used longest ago (a lookup counts as a use), and an evicted statement
 * starts again from nothing.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "dblat.h"
#include "thmain.h"

/* Hashes that fall in one set (bits 1..6 of hash >> 7 are all 0), and one
 * in another set. */
#define SAME_SET_A 0x10000ull
#define SAME_SET_B 0x20000ull
#define SAME_SET_C 0x30000ull
#define OTHER_SET 0x10100ull

static dblat *new_table(void)
{
	dblat *t = calloc(1, sizeof(*t));
	ck_assert_ptr_nonnull(t);
	return t;
}

START_TEST(hash_is_deterministic_never_zero_and_tells_texts_apart)
{
	ck_assert_uint_eq(dblat_hash("SELECT 1"), dblat_hash("SELECT 1"));
	ck_assert_uint_ne(dblat_hash("SELECT 1"), dblat_hash("SELECT 2"));
	ck_assert_uint_ne(dblat_hash("SELECT 1"), dblat_hash("SELECT 1 "));
	ck_assert_uint_ne(dblat_hash("ab"), dblat_hash("ba"));
	/* FNV-1a of "" is its offset basis: the one value pinned here. */
	ck_assert_uint_eq(dblat_hash(""), 0xcbf29ce484222325ull);
	ck_assert_uint_ne(dblat_hash(""), 0);
	char sql[32];
	for (int i = 0; i < 10000; i++) {
		snprintf(sql, sizeof(sql), "SELECT %d", i);
		ck_assert_uint_ne(dblat_hash(sql), 0);
	}
	/* Bytes above 0x7f hash as unsigned (no sign extension). */
	ck_assert_uint_ne(dblat_hash("\xff"), dblat_hash("\x7f"));
}
END_TEST

START_TEST(unseen_is_unknown)
{
	dblat *t = new_table();
	ck_assert_int_eq(dblat_class(t, dblat_hash("SELECT 1"), 100), DBLAT_UNKNOWN);
	ck_assert_int_eq(dblat_class(t, SAME_SET_A, 100), DBLAT_UNKNOWN);
	free(t);
}
END_TEST

START_TEST(fast_bound_is_inclusive)
{
	dblat *t = new_table();
	dblat_note(t, SAME_SET_A, DBLAT_FAST_MS, 10);
	ck_assert_int_eq(dblat_class(t, SAME_SET_A, 11), DBLAT_FAST);
	dblat_note(t, OTHER_SET, DBLAT_FAST_MS + 1, 10);
	ck_assert_int_eq(dblat_class(t, OTHER_SET, 11), DBLAT_UNKNOWN);
	dblat_note(t, SAME_SET_B, 0, 12);
	ck_assert_int_eq(dblat_class(t, SAME_SET_B, 13), DBLAT_FAST);
	free(t);
}
END_TEST

/* The class after each run of `ms` (fast or slow), from a fresh table. */
static void expect_sequence(const uint64_t *ms, const enum dblat_class *want, int n)
{
	dblat *t = new_table();
	for (int i = 0; i < n; i++) {
		dblat_note(t, SAME_SET_A, ms[i], 100 + (uint64_t)i);
		ck_assert_msg(dblat_class(t, SAME_SET_A, 100 + (uint64_t)i) == want[i],
			      "after run %d: class %d, want %d", i,
			      (int)dblat_class(t, SAME_SET_A, 100 + (uint64_t)i), (int)want[i]);
	}
	free(t);
}

enum { F = 1, S = 1000 }; /* a fast and a slow run, in ms */

START_TEST(majority_of_the_last_three_runs_decides)
{
	/* One slow run on a busy machine does not take a fast statement out. */
	const uint64_t a[] = {F, F, S, S, F, F};
	const enum dblat_class wa[] = {DBLAT_FAST,  DBLAT_FAST,  DBLAT_FAST,
				       DBLAT_MIXED, DBLAT_MIXED, DBLAT_FAST};
	expect_sequence(a, wa, 6);
	/* Fast then slow: one of two is not most. */
	const uint64_t b[] = {S, F, S, S, S};
	const enum dblat_class wb[] = {DBLAT_UNKNOWN, DBLAT_MIXED, DBLAT_MIXED, DBLAT_MIXED,
				       DBLAT_UNKNOWN};
	expect_sequence(b, wb, 5);
}
END_TEST

START_TEST(only_the_last_three_runs_count)
{
	/* Eight fast runs are forgotten after three slow ones. */
	const uint64_t a[] = {F, F, F, F, F, F, F, F, S, S, S};
	const enum dblat_class wa[] = {DBLAT_FAST, DBLAT_FAST,  DBLAT_FAST,   DBLAT_FAST,
				       DBLAT_FAST, DBLAT_FAST,  DBLAT_FAST,   DBLAT_FAST,
				       DBLAT_FAST, DBLAT_MIXED, DBLAT_UNKNOWN};
	expect_sequence(a, wa, 11);
	/* And slow ones after two fast. */
	const uint64_t b[] = {S, S, S, S, S, S, S, S, S, F, F};
	const enum dblat_class wb[] = {DBLAT_UNKNOWN, DBLAT_UNKNOWN, DBLAT_UNKNOWN, DBLAT_UNKNOWN,
				       DBLAT_UNKNOWN, DBLAT_UNKNOWN, DBLAT_UNKNOWN, DBLAT_UNKNOWN,
				       DBLAT_UNKNOWN, DBLAT_MIXED,   DBLAT_FAST};
	expect_sequence(b, wb, 11);
}
END_TEST

START_TEST(huge_times_are_slow_and_saturate)
{
	dblat *t = new_table();
	/* Above 32 bits: a truncation to uint32 would make 2^32 + 1 read as 1. */
	dblat_note(t, SAME_SET_A, (1ull << 32) + 1, 10);
	ck_assert_int_eq(dblat_class(t, SAME_SET_A, 11), DBLAT_UNKNOWN);
	dblat_note(t, SAME_SET_B, UINT64_MAX, 10);
	ck_assert_int_eq(dblat_class(t, SAME_SET_B, 11), DBLAT_UNKNOWN);
	int found = 0;
	for (int i = 0; i < DBLAT_SLOTS; i++) {
		if (t->e[i].hash == SAME_SET_A || t->e[i].hash == SAME_SET_B) {
			ck_assert_uint_eq(t->e[i].last_ms, UINT32_MAX);
			found++;
		}
	}
	ck_assert_int_eq(found, 2);
	free(t);
}
END_TEST

START_TEST(a_full_set_evicts_the_way_used_longest_ago)
{
	dblat *t = new_table();
	dblat_note(t, SAME_SET_A, F, 10);
	dblat_note(t, SAME_SET_B, F, 20);
	dblat_note(t, OTHER_SET, F, 25);
	/* Both ways kept: a set holds two statements. */
	ck_assert_int_eq(dblat_class(t, SAME_SET_B, 30), DBLAT_FAST);
	/* A lookup is a use: A (looked up last) stays, B goes. */
	ck_assert_int_eq(dblat_class(t, SAME_SET_A, 40), DBLAT_FAST);
	dblat_note(t, SAME_SET_C, F, 50);
	ck_assert_int_eq(dblat_class(t, SAME_SET_B, 60), DBLAT_UNKNOWN);
	ck_assert_int_eq(dblat_class(t, SAME_SET_A, 61), DBLAT_FAST);
	ck_assert_int_eq(dblat_class(t, SAME_SET_C, 62), DBLAT_FAST);
	/* Another set is untouched by this one's evictions. */
	ck_assert_int_eq(dblat_class(t, OTHER_SET, 63), DBLAT_FAST);
	/* A note is a use too: A noted last, C goes for B. */
	dblat_note(t, SAME_SET_A, F, 70);
	dblat_note(t, SAME_SET_B, F, 80);
	ck_assert_int_eq(dblat_class(t, SAME_SET_C, 90), DBLAT_UNKNOWN);
	ck_assert_int_eq(dblat_class(t, SAME_SET_A, 91), DBLAT_FAST);
	free(t);
}
END_TEST

START_TEST(an_evicted_statement_starts_from_nothing)
{
	dblat *t = new_table();
	for (int i = 0; i < 3; i++)
		dblat_note(t, SAME_SET_A, F, 10 + (uint64_t)i);
	dblat_note(t, SAME_SET_B, F, 20);
	dblat_note(t, SAME_SET_C, F, 30); /* evicts A */
	ck_assert_int_eq(dblat_class(t, SAME_SET_A, 31), DBLAT_UNKNOWN);
	/* Back with one slow run: neither its own old fast runs nor those
	 * of B, whose slot it takes, are counted. */
	dblat_note(t, SAME_SET_A, S, 40); /* evicts B */
	ck_assert_int_eq(dblat_class(t, SAME_SET_A, 41), DBLAT_UNKNOWN);
	dblat_note(t, SAME_SET_A, F, 42);
	ck_assert_int_eq(dblat_class(t, SAME_SET_A, 43), DBLAT_MIXED);
	free(t);
}
END_TEST

START_TEST(distinct_sets_hold_a_full_table)
{
	dblat *t = new_table();
	/* One hash per way of every set: DBLAT_SLOTS statements, none lost. */
	uint64_t h[DBLAT_SLOTS];
	for (int i = 0; i < DBLAT_SLOTS; i++) {
		uint64_t set = (uint64_t)(i / 2);
		uint64_t way_tag = (uint64_t)(i % 2 + 1) << 20;
		h[i] = (set << 8) | way_tag;
		dblat_note(t, h[i], i % 3 ? F : S, 100 + (uint64_t)i);
	}
	for (int i = 0; i < DBLAT_SLOTS; i++)
		ck_assert_int_eq(dblat_class(t, h[i], 1000), i % 3 ? DBLAT_FAST : DBLAT_UNKNOWN);
	free(t);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {hash_is_deterministic_never_zero_and_tells_texts_apart,
				unseen_is_unknown,
				fast_bound_is_inclusive,
				majority_of_the_last_three_runs_decides,
				only_the_last_three_runs_count,
				huge_times_are_slow_and_saturate,
				a_full_set_evicts_the_way_used_longest_ago,
				an_evicted_statement_starts_from_nothing,
				distinct_sets_hold_a_full_table,
				NULL};
	return th_suite("dblat", "dblat", 10, tests);
}

TH_MAIN(suite)
