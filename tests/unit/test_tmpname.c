/*
 * Unit tests of daemon/tmpname.c, the names of porterd's temp files: a
 * made name has the documented form and verifies; names differ from call
 * to call; a name with any one of its 32 digits changed, another case, a
 * missing or extra character, or a tag a client made up does not verify
 * (a guess holds with odds of 2^-64). Its SipHash-2-4 was checked against
 * the published reference vector in the commit that made it.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "thmain.h"
#include "tmpname.h"

START_TEST(made_names_have_the_form_and_verify)
{
	char a[TMPNAME_SIZE], b[TMPNAME_SIZE];
	ck_assert_int_eq(tmpname_make(a), 0);
	ck_assert_int_eq(tmpname_make(b), 0);
	ck_assert_uint_eq(strlen(a), TMPNAME_SIZE - 1);
	ck_assert_int_eq(strncmp(a, ".porter-", 8), 0);
	ck_assert_str_eq(a + 8 + 32, ".tmp");
	for (int i = 8; i < 8 + 32; i++)
		ck_assert_msg((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f'),
			      "'%s': not a hex digit at %d", a, i);
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(tmpname_is_ours(a), 1);
	ck_assert_int_eq(tmpname_is_ours(b), 1);
}
END_TEST

START_TEST(altered_names_do_not_verify)
{
	char a[TMPNAME_SIZE], m[TMPNAME_SIZE + 1];
	ck_assert_int_eq(tmpname_make(a), 0);
	for (int i = 8; i < 8 + 32; i++) {
		memcpy(m, a, TMPNAME_SIZE);
		m[i] = m[i] == '0' ? '1' : '0';
		ck_assert_msg(!tmpname_is_ours(m), "'%s' (digit %d changed) verified", m, i);
		if (a[i] >= 'a') {
			m[i] = (char)(a[i] - 'a' + 'A');
			ck_assert_msg(!tmpname_is_ours(m), "'%s' (upper case) verified", m);
		}
	}
	memcpy(m, a, TMPNAME_SIZE);
	m[TMPNAME_SIZE - 2] = '\0'; /* ".tm" */
	ck_assert_int_eq(tmpname_is_ours(m), 0);
	snprintf(m, sizeof(m), "%sx", a);
	ck_assert_int_eq(tmpname_is_ours(m), 0);
	memcpy(m, a, TMPNAME_SIZE);
	m[1] = 'P';
	ck_assert_int_eq(tmpname_is_ours(m), 0);
	/* The old form (16 hex digits), and nothing at all. */
	ck_assert_int_eq(tmpname_is_ours(".porter-0123456789abcdef.tmp"), 0);
	ck_assert_int_eq(tmpname_is_ours(""), 0);
}
END_TEST

/* A client who saw many of porterd's names and makes up tags for nonces
 * of her own: none verifies. */
START_TEST(made_up_tags_do_not_verify)
{
	char seen[TMPNAME_SIZE], forged[TMPNAME_SIZE];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 20000; i++) {
		ck_assert_int_eq(tmpname_make(seen), 0);
		/* Her nonce, the tag of a name she saw. */
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		snprintf(forged, sizeof(forged), ".porter-%016llx%.16s.tmp", (unsigned long long)x,
			 seen + 8 + 16);
		ck_assert_msg(!tmpname_is_ours(forged), "'%s' verified", forged);
		/* A name she saw, with its nonce and tag swapped. */
		snprintf(forged, sizeof(forged), ".porter-%.16s%.16s.tmp", seen + 8 + 16, seen + 8);
		ck_assert_msg(!tmpname_is_ours(forged), "'%s' verified", forged);
	}
}
END_TEST

/* Each name is porterd's once: live from its making, retired (with the
 * time) when porterd is done with it, and a name whose tag verifies but
 * that is not recorded, or anything else, is foreign. */
START_TEST(names_are_live_then_retired)
{
	char a[TMPNAME_SIZE], b[TMPNAME_SIZE];
	uint64_t nonce = 0, at = 0, nonce_b = 0;
	ck_assert_int_eq(tmpname_make(a), 0);
	ck_assert_int_eq(tmpname_make(b), 0);
	ck_assert_int_eq(tmpname_state(a, &nonce, &at, NULL), TMPNAME_LIVE);
	ck_assert_int_eq(tmpname_state(b, &nonce_b, &at, NULL), TMPNAME_LIVE);
	ck_assert_uint_ne(nonce, nonce_b);
	uint64_t before = tmpname_now_ms();
	tmpname_retire(a);
	ck_assert_int_eq(tmpname_state(a, &nonce, &at, NULL), TMPNAME_RETIRED);
	ck_assert_uint_ge(at, before);
	ck_assert_uint_le(at, tmpname_now_ms());
	/* A second retirement keeps the first time. */
	uint64_t first = at;
	usleep(2000);
	tmpname_retire(a);
	ck_assert_int_eq(tmpname_state(a, &nonce, &at, NULL), TMPNAME_RETIRED);
	ck_assert_uint_eq(at, first);
	ck_assert_int_eq(tmpname_state(b, &nonce, &at, NULL), TMPNAME_LIVE);
	tmpname_retire(b);
	/* Not porterd's: another form, a changed digit, nothing. */
	char m[TMPNAME_SIZE];
	memcpy(m, b, TMPNAME_SIZE);
	m[8] = m[8] == '0' ? '1' : '0';
	ck_assert_int_eq(tmpname_state(m, &nonce, &at, NULL), TMPNAME_FOREIGN);
	ck_assert_int_eq(tmpname_state("w.txt", &nonce, &at, NULL), TMPNAME_FOREIGN);
	ck_assert_int_eq(tmpname_state("", &nonce, &at, NULL), TMPNAME_FOREIGN);
	tmpname_retire("");
	tmpname_retire(m);
}
END_TEST

/* Retirements are counted in order: a name retired later has a higher
 * place, and the count reaches it once it is retired (a watcher that has
 * read its queue as it was then knows the name's events are all read). A
 * name is found by its nonce alike. */
START_TEST(retirements_are_counted_in_order)
{
	char a[TMPNAME_SIZE], b[TMPNAME_SIZE];
	uint64_t na = 0, nb = 0, at, sa = 0, sb = 0, s = 0;
	ck_assert_int_eq(tmpname_make(a), 0);
	ck_assert_int_eq(tmpname_make(b), 0);
	uint64_t before = tmpname_retired_count();
	ck_assert_int_eq(tmpname_state(a, &na, &at, &sa), TMPNAME_LIVE);
	ck_assert_int_eq(tmpname_nonce_state(na, &s), TMPNAME_LIVE);
	tmpname_retire(a);
	tmpname_retire(b);
	ck_assert_int_eq(tmpname_state(a, &na, &at, &sa), TMPNAME_RETIRED);
	ck_assert_int_eq(tmpname_state(b, &nb, &at, &sb), TMPNAME_RETIRED);
	ck_assert_uint_gt(sa, before);
	ck_assert_uint_gt(sb, sa);
	ck_assert_uint_ge(tmpname_retired_count(), sb);
	ck_assert_int_eq(tmpname_nonce_state(nb, &s), TMPNAME_RETIRED);
	ck_assert_uint_eq(s, sb);
	/* A second retirement keeps the first place. */
	tmpname_retire(a);
	ck_assert_int_eq(tmpname_nonce_state(na, &s), TMPNAME_RETIRED);
	ck_assert_uint_eq(s, sa);
	ck_assert_int_eq(tmpname_nonce_state(na ^ 1, &s), TMPNAME_FOREIGN);
}
END_TEST

/* A name is in the directory it was placed in, and in no other; one not
 * placed (or not known) is taken to be anywhere. */
START_TEST(names_are_placed_in_one_directory)
{
	char a[TMPNAME_SIZE];
	uint64_t na = 0, at;
	ck_assert_int_eq(tmpname_make(a), 0);
	ck_assert_int_eq(tmpname_state(a, &na, &at, NULL), TMPNAME_LIVE);
	ck_assert_int_eq(tmpname_in_dir(na, 1, 2), 1);
	tmpname_place(a, 7, 42);
	ck_assert_int_eq(tmpname_in_dir(na, 7, 42), 1);
	ck_assert_int_eq(tmpname_in_dir(na, 7, 43), 0);
	ck_assert_int_eq(tmpname_in_dir(na, 8, 42), 0);
	tmpname_retire(a);
	ck_assert_int_eq(tmpname_in_dir(na, 7, 43), 0);
	ck_assert_int_eq(tmpname_in_dir(na ^ 1, 7, 43), 1);
}
END_TEST

/* The record of retired names is bounded: past TMPNAME_RETIRED_MAX the
 * oldest are forgotten (foreign, so a watcher reports their files). */
START_TEST(retired_names_are_bounded)
{
	char first[TMPNAME_SIZE], n[TMPNAME_SIZE];
	uint64_t nonce, at;
	ck_assert_int_eq(tmpname_make(first), 0);
	tmpname_retire(first);
	ck_assert_int_eq(tmpname_state(first, &nonce, &at, NULL), TMPNAME_RETIRED);
	for (unsigned i = 0; i < TMPNAME_RETIRED_MAX + 1; i++) {
		ck_assert_int_eq(tmpname_make(n), 0);
		tmpname_retire(n);
	}
	ck_assert_int_eq(tmpname_state(first, &nonce, &at, NULL), TMPNAME_FOREIGN);
	ck_assert_int_eq(tmpname_state(n, &nonce, &at, NULL), TMPNAME_RETIRED);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {
		made_names_have_the_form_and_verify, altered_names_do_not_verify,
		made_up_tags_do_not_verify,          names_are_live_then_retired,
		retired_names_are_bounded,           retirements_are_counted_in_order,
		names_are_placed_in_one_directory,   NULL};
	return th_suite("tmpname", "tmpname", 30, tests);
}

TH_MAIN(suite)
