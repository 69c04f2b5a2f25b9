/* Unit tests of the per-connection prepared statement bookkeeping. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "dbstmt.h"
#include "thmain.h"

static const uint32_t INT4[] = {23}, TEXT[] = {25};

START_TEST(find_add_and_key)
{
	dbstmt_cache c;
	ck_assert_int_eq(dbstmt_init(&c, 4), 0);
	char ev[DBSTMT_NAME];
	ck_assert_ptr_null(dbstmt_find(&c, "SELECT $1", INT4, 1));
	dbstmt *a = dbstmt_add(&c, "SELECT $1", INT4, 1, ev);
	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(ev, "");
	ck_assert_int_eq(a->state, DBSTMT_PENDING);
	ck_assert_ptr_eq(dbstmt_find(&c, "SELECT $1", INT4, 1), a);
	/* Same text, other parameter types or count: another statement. */
	ck_assert_ptr_null(dbstmt_find(&c, "SELECT $1", TEXT, 1));
	ck_assert_ptr_null(dbstmt_find(&c, "SELECT $1", NULL, 0));
	dbstmt *b = dbstmt_add(&c, "SELECT $1", TEXT, 1, ev);
	ck_assert_ptr_nonnull(b);
	ck_assert_str_ne(a->name, b->name);
	ck_assert_ptr_eq(dbstmt_named(&c, b->name), b);
	dbstmt_drop(&c, b);
	ck_assert_ptr_null(dbstmt_named(&c, "porter_s2"));
	ck_assert_ptr_null(dbstmt_find(&c, "SELECT $1", TEXT, 1));
	dbstmt_destroy(&c);
}
END_TEST

START_TEST(evicts_least_recent_ready_never_pending)
{
	dbstmt_cache c;
	ck_assert_int_eq(dbstmt_init(&c, 2), 0);
	char ev[DBSTMT_NAME];
	dbstmt *a = dbstmt_add(&c, "A", NULL, 0, ev);
	dbstmt *b = dbstmt_add(&c, "B", NULL, 0, ev);
	/* Both pending: nothing may be evicted. */
	ck_assert_ptr_null(dbstmt_add(&c, "C", NULL, 0, ev));
	a->state = DBSTMT_READY;
	b->state = DBSTMT_READY;
	char a_name[DBSTMT_NAME];
	memcpy(a_name, a->name, DBSTMT_NAME);
	dbstmt_find(&c, "A", NULL, 0); /* B is now the least recent */
	dbstmt *cc = dbstmt_add(&c, "C", NULL, 0, ev);
	ck_assert_ptr_eq(cc, b);
	ck_assert_str_eq(ev, "porter_s2");
	ck_assert_ptr_null(dbstmt_find(&c, "B", NULL, 0));
	/* Names are never reused within a connection. */
	ck_assert_str_eq(cc->name, "porter_s3");
	ck_assert_str_eq(dbstmt_find(&c, "A", NULL, 0)->name, a_name);
	dbstmt_clear(&c);
	ck_assert_ptr_null(dbstmt_find(&c, "A", NULL, 0));
	ck_assert_str_eq(dbstmt_add(&c, "A", NULL, 0, ev)->name, "porter_s4");
	ck_assert_str_eq(ev, "");
	dbstmt_destroy(&c);
}
END_TEST

START_TEST(off_when_zero)
{
	dbstmt_cache c;
	ck_assert_int_eq(dbstmt_init(&c, 0), 0);
	char ev[DBSTMT_NAME];
	ck_assert_ptr_null(dbstmt_add(&c, "A", NULL, 0, ev));
	ck_assert_ptr_null(dbstmt_find(&c, "A", NULL, 0));
	dbstmt_destroy(&c);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {find_add_and_key, evicts_least_recent_ready_never_pending,
				off_when_zero, NULL};
	return th_suite("dbstmt", "core", 0, tests);
}

TH_MAIN(suite)
