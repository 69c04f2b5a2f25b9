/* Unit tests of the intrusive hash table (daemon/htab.c) that the client
 * registry and the cancel tombstones are built on. */
#include <check.h>
#include <stdlib.h>

#include "harness.h"
#include "htab.h"

typedef struct item {
	htab_node node;
	uint64_t key;
} item;

static item *find(const htab *t, uint64_t key)
{
	for (htab_node *n = htab_first(t, htab_mix(key)); n; n = htab_next(n))
		if (((item *)n)->key == key)
			return (item *)n;
	return NULL;
}

START_TEST(insert_find_remove_across_growth)
{
	enum { N = 20000 };
	htab t = {0};
	item *items = calloc(N, sizeof(*items));
	ck_assert_ptr_nonnull(items);
	ck_assert_ptr_null(htab_first(&t, 1)); /* empty, no buckets yet */
	for (int i = 0; i < N; i++) {
		items[i].key = (uint64_t)i * 3;
		ck_assert_int_eq(htab_insert(&t, &items[i].node, htab_mix(items[i].key)), 0);
	}
	ck_assert_uint_eq(t.n, N);
	/* Grown with the population: never more than one node per bucket
	 * on average, so chains stay short. */
	ck_assert_uint_ge(t.cap, N);
	for (int i = 0; i < N; i++)
		ck_assert_ptr_eq(find(&t, (uint64_t)i * 3), &items[i]);
	ck_assert_ptr_null(find(&t, 1));
	for (int i = 0; i < N; i += 2)
		htab_remove(&t, &items[i].node);
	ck_assert_uint_eq(t.n, N / 2);
	for (int i = 0; i < N; i++)
		ck_assert_ptr_eq(find(&t, (uint64_t)i * 3), i % 2 ? &items[i] : NULL);
	htab_free(&t);
	ck_assert_uint_eq(t.cap, 0);
	free(items);
}
END_TEST

START_TEST(equal_hashes_chain)
{
	/* Nodes with the same hash (different keys) are all found, and
	 * htab_next skips nodes of other hashes in the same bucket. */
	htab t = {0};
	item a = {.key = 1}, b = {.key = 2}, c = {.key = 3};
	ck_assert_int_eq(htab_insert(&t, &a.node, 42), 0);
	ck_assert_int_eq(htab_insert(&t, &b.node, 42), 0);
	ck_assert_int_eq(htab_insert(&t, &c.node, 42 + 64), 0); /* same bucket of 64 */
	int seen = 0;
	for (htab_node *n = htab_first(&t, 42); n; n = htab_next(n)) {
		ck_assert_uint_eq(n->hash, 42);
		seen++;
	}
	ck_assert_int_eq(seen, 2);
	htab_remove(&t, &b.node);
	ck_assert_ptr_eq(htab_first(&t, 42), &a.node);
	ck_assert_ptr_null(htab_next(&a.node));
	ck_assert_ptr_eq(htab_first(&t, 42 + 64), &c.node);
	htab_free(&t);
}
END_TEST

START_TEST(mix_spreads_small_keys)
{
	/* uids are small consecutive numbers: their buckets must differ. */
	int used[64] = {0}, distinct = 0;
	for (uint64_t k = 0; k < 64; k++)
		used[htab_mix(k) & 63]++;
	for (int i = 0; i < 64; i++)
		distinct += used[i] > 0;
	ck_assert_int_ge(distinct, 32);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {insert_find_remove_across_growth, equal_hashes_chain,
				mix_spreads_small_keys, NULL};
	return th_suite("htab", "htab", 0, tests);
}

TH_MAIN(suite)
