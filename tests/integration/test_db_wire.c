/*
 * Integration tests of what the wire carries besides rows (issue 19,
 * Deliver 1): notices with their severity, returned with the result and
 * with a cursor's chunks, bounded per request; every result of a
 * multi-statement string up to the error; the error's position, context
 * and names; the parameter count checked before sending; client_encoding
 * UTF8 on every connection, a LATIN1 database included, and kept so.
 * A real porterd and the ctest PostgreSQL fixture (PORTER_PG_STATE).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "porter.h"

static th_daemon d;
static char conninfo[512]; /* Unix socket, superuser */
static char latin1[600];   /* the same, on the LATIN1 database made here */

#define LATIN1_DB "porter_wire_latin1"

static void start(void)
{
	th_pg_file("conninfo", conninfo, sizeof(conninfo));
	snprintf(latin1, sizeof(latin1), "%s dbname=" LATIN1_DB, conninfo);
	const char *args[] = {"--workers", "2", NULL};
	ck_assert_msg(th_daemon_start(&d, args) == 0, "porterd did not start");
	/* A database in another encoding than UTF8, as issue 19 found. */
	porter_db_result *r = NULL;
	porter_db_query(0, conninfo, "DROP DATABASE IF EXISTS " LATIN1_DB, NULL, 0, 0, 30000, &r);
	porter_db_result_free(r);
	int rc = porter_db_query(0, conninfo,
				 "CREATE DATABASE " LATIN1_DB " ENCODING 'LATIN1' LC_COLLATE 'C' "
				 "LC_CTYPE 'C' TEMPLATE template0",
				 NULL, 0, 0, 30000, &r);
	ck_assert_msg(rc == 0, "CREATE DATABASE: %s", porter_db_message(r));
	porter_db_result_free(r);
	porter_thread_disconnect();
}

static void stop(void)
{
	porter_thread_disconnect();
	int st = th_daemon_stop(&d);
	if (st != 0)
		th_daemon_dump_log(&d);
	th_daemon_cleanup(&d);
}

/* Runs `sql` on session `s` (or the pool of `ci`) and returns the result,
 * asserting that porterd answered with the code `want`. */
static porter_db_result *q(uint64_t s, const char *ci, const char *sql, int want)
{
	porter_db_result *r = NULL;
	int rc = porter_db_query(s, s ? NULL : ci, sql, NULL, 0, 0, 20000, &r);
	ck_assert_msg(rc == want, "%s: %s, want %s (%s)", sql, porter_error_name(rc),
		      porter_error_name(want),
		      r ? porter_db_message(r) : porter_last_error_message());
	ck_assert_ptr_nonnull(r);
	return r;
}

START_TEST(cursor_open_error_carries_sqlstate)
{
	/* An error on the first chunk: the open succeeds, the first read
	 * hands the error with its SQLSTATE and message, on a session and on
	 * the pool alike. */
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 10000, &s), 0);
	for (int pooled = 0; pooled < 2; pooled++) {
		porter_db_cursor *cur = NULL;
		ck_assert_int_eq(porter_db_cursor_open(pooled ? 0 : s, pooled ? conninfo : NULL,
						       "SELECT * FROM wire_nosuch", NULL, 0, 10, 0,
						       0, 20000, &cur),
				 0);
		ck_assert_int_eq(porter_last_error(), 0);
		porter_db_result *ch = NULL;
		ck_assert_int_eq(porter_db_cursor_read(cur, 0, 20000, &ch), PORTER_E_DB);
		ck_assert_int_eq(porter_last_error(), PORTER_E_DB);
		ck_assert_ptr_nonnull(ch);
		ck_assert_int_eq(porter_db_status(ch), PORTER_E_DB);
		ck_assert_str_eq(porter_db_sqlstate(ch), "42P01");
		ck_assert_str_eq(porter_db_message(ch), "relation \"wire_nosuch\" does not exist");
		porter_db_result_free(ch);
		ck_assert_int_eq(porter_db_cursor_read(cur, 0, 20000, &ch), 0);
		ck_assert_ptr_null(ch);
		porter_db_cursor_close(cur, 5000);
	}
	/* A refused request still fails the open. */
	porter_db_cursor *cur = NULL;
	ck_assert_int_eq(
		porter_db_cursor_open(s + 1, NULL, "SELECT 1", NULL, 0, 10, 0, 0, 20000, &cur),
		PORTER_E_DB_SESSION);
	ck_assert_ptr_null(cur);
	porter_db_close(s, 0, 5000);
}
END_TEST

/* 'é' as UTF-8 bytes. */
static void assert_e_acute(const porter_db_result *r, int col)
{
	ck_assert_int_eq(porter_db_getlength(r, 0, col), 2);
	ck_assert_mem_eq(porter_db_getvalue(r, 0, col), "\xc3\xa9", 2);
}

START_TEST(utf8_on_a_latin1_database)
{
	/* Whatever the conninfo asks for, porterd's connections speak UTF8;
	 * the server converts from LATIN1. */
	const char *extra[] = {"", " client_encoding=LATIN1",
			       " options='-c client_encoding=LATIN1'"};
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
		char ci[800];
		snprintf(ci, sizeof(ci), "%s%s", latin1, extra[i]);
		porter_db_result *r =
			q(0, ci, "SELECT current_setting('client_encoding'), 'é', chr(233)", 0);
		ck_assert_str_eq(porter_db_getvalue(r, 0, 0), "UTF8");
		assert_e_acute(r, 1);
		assert_e_acute(r, 2);
		porter_db_result_free(r);
		uint64_t s = 0;
		ck_assert_int_eq(porter_db_open(ci, 0, 10000, &s), 0);
		r = q(s, NULL, "SHOW client_encoding; SELECT 'é'", 0);
		assert_e_acute(r, 0);
		porter_db_result_free(r);
		porter_db_close(s, 0, 5000);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("db_wire");
	TCase *tc = tcase_create("postgres");
	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, start, stop);
	tcase_add_test(tc, cursor_open_error_carries_sqlstate);
	tcase_add_test(tc, utf8_on_a_latin1_database);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
