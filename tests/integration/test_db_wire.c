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

static const char *nf(const porter_db_result *r, size_t i, int field)
{
	return porter_db_notice_field(r, i, field);
}

static const char *ef(const porter_db_result *r, int field)
{
	return porter_db_error_field(r, field);
}

START_TEST(notices_come_with_the_result)
{
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 10000, &s), 0);
	/* DROP ... IF EXISTS: the notice libpq users see. */
	porter_db_result *r = q(s, NULL, "DROP TABLE IF EXISTS wire_nosuch", 0);
	ck_assert_uint_eq(porter_db_nnotices(r), 1);
	ck_assert_str_eq(nf(r, 0, PORTER_DB_DIAG_SEVERITY), "NOTICE");
	ck_assert_str_eq(nf(r, 0, PORTER_DB_DIAG_SQLSTATE), "00000");
	ck_assert_str_eq(nf(r, 0, PORTER_DB_DIAG_MESSAGE_PRIMARY),
			 "table \"wire_nosuch\" does not exist, skipping");
	ck_assert_uint_eq(porter_db_notices_dropped(r), 0);
	ck_assert_str_eq(nf(r, 1, PORTER_DB_DIAG_SEVERITY), ""); /* out of range */
	porter_db_result_free(r);

	/* RAISE with every level a client sees, DETAIL and HINT; each
	 * notice says which results came before it. */
	r = q(s, NULL,
	      "SELECT 1; "
	      "DO $$ BEGIN RAISE WARNING 'careful' USING DETAIL = 'the detail', "
	      "HINT = 'the hint', ERRCODE = '01000'; RAISE INFO 'fyi'; END $$; "
	      "SELECT 2",
	      0);
	ck_assert_uint_eq(porter_db_nresults(r), 3);
	ck_assert_uint_eq(porter_db_nnotices(r), 2);
	ck_assert_str_eq(nf(r, 0, PORTER_DB_DIAG_SEVERITY), "WARNING");
	ck_assert_str_eq(nf(r, 0, PORTER_DB_DIAG_MESSAGE_PRIMARY), "careful");
	ck_assert_str_eq(nf(r, 0, PORTER_DB_DIAG_MESSAGE_DETAIL), "the detail");
	ck_assert_str_eq(nf(r, 0, PORTER_DB_DIAG_MESSAGE_HINT), "the hint");
	ck_assert_str_eq(nf(r, 0, PORTER_DB_DIAG_SQLSTATE), "01000");
	ck_assert_msg(strstr(nf(r, 0, PORTER_DB_DIAG_CONTEXT), "PL/pgSQL") != NULL, "%s",
		      nf(r, 0, PORTER_DB_DIAG_CONTEXT));
	/* Both came after SELECT 1; libpq reads a notice as soon as it
	 * arrives, maybe before it hands over the result ahead of it, so
	 * the count is a lower bound. */
	ck_assert_uint_le(porter_db_notice_before(r, 0), 1);
	ck_assert_str_eq(nf(r, 1, PORTER_DB_DIAG_SEVERITY), "INFO");
	ck_assert_uint_le(porter_db_notice_before(r, 1), 1);
	porter_db_result_free(r);
	r = q(s, NULL, "SELECT 1; SELECT 2; DROP TABLE IF EXISTS wire_nosuch; SELECT 3", 0);
	ck_assert_uint_eq(porter_db_nnotices(r), 1);
	ck_assert_uint_ge(porter_db_notice_before(r, 0), 1);
	ck_assert_uint_le(porter_db_notice_before(r, 0), 2);
	porter_db_result_free(r);

	/* A query with parameters on the pool (its pipelined path), the
	 * notice from a function it calls. */
	porter_db_result_free(
		q(s, NULL,
		  "CREATE OR REPLACE FUNCTION wire_note(n int) RETURNS int LANGUAGE plpgsql AS "
		  "$$ BEGIN RAISE NOTICE 'note %', n; RETURN n; END $$",
		  0));
	porter_db_param p = {"7", 1, 0, 0};
	for (int round = 0; round < 3; round++) { /* prepared, then cached */
		r = NULL;
		ck_assert_int_eq(porter_db_query(0, conninfo, "SELECT wire_note($1::int)", &p, 1, 0,
						 20000, &r),
				 0);
		ck_assert_str_eq(porter_db_getvalue(r, 0, 0), "7");
		ck_assert_uint_eq(porter_db_nnotices(r), 1);
		ck_assert_str_eq(nf(r, 0, PORTER_DB_DIAG_MESSAGE_PRIMARY), "note 7");
		porter_db_result_free(r);
	}
	/* A notice never leaks into the next query of the same connection. */
	r = q(0, conninfo, "SELECT 1", 0);
	ck_assert_uint_eq(porter_db_nnotices(r), 0);
	porter_db_result_free(r);
	/* The notices before an error come with it. */
	r = q(s, NULL, "DO $$ BEGIN RAISE NOTICE 'before'; RAISE EXCEPTION 'boom'; END $$",
	      PORTER_E_DB);
	ck_assert_uint_eq(porter_db_nnotices(r), 1);
	ck_assert_str_eq(nf(r, 0, PORTER_DB_DIAG_MESSAGE_PRIMARY), "before");
	ck_assert_str_eq(porter_db_message(r), "boom");
	porter_db_result_free(r);
	porter_db_close(s, 0, 5000);
}
END_TEST

START_TEST(notice_flood_is_bounded)
{
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 10000, &s), 0);
	/* 200,000 notices: the first 100 kept, the rest counted. */
	porter_db_result *r =
		q(s, NULL,
		  "DO $$ BEGIN FOR i IN 1..200000 LOOP RAISE NOTICE 'n%', i; END LOOP; END $$", 0);
	ck_assert_uint_eq(porter_db_nnotices(r), 100);
	ck_assert_uint_eq(porter_db_notices_dropped(r), 200000 - 100);
	ck_assert_str_eq(nf(r, 0, PORTER_DB_DIAG_MESSAGE_PRIMARY), "n1");
	ck_assert_str_eq(nf(r, 99, PORTER_DB_DIAG_MESSAGE_PRIMARY), "n100");
	porter_db_result_free(r);
	/* Large ones: each cut at 8 KiB, 256 KiB of them in all. */
	r = q(s, NULL,
	      "DO $$ BEGIN FOR i IN 1..100 LOOP RAISE NOTICE '%', repeat('x', 100000); "
	      "END LOOP; END $$",
	      0);
	size_t kept = porter_db_nnotices(r), bytes = 0;
	ck_assert_uint_gt(kept, 0);
	for (size_t i = 0; i < kept; i++) {
		size_t n = strlen(nf(r, i, PORTER_DB_DIAG_MESSAGE_PRIMARY));
		ck_assert_uint_le(n, 8192);
		ck_assert_uint_ge(n, 8000);
		bytes += n;
	}
	ck_assert_uint_le(bytes, 256 * 1024);
	ck_assert_uint_eq(kept + porter_db_notices_dropped(r), 100);
	porter_db_result_free(r);
	/* The bound is per request: the next one starts afresh. */
	r = q(s, NULL, "DROP TABLE IF EXISTS wire_nosuch", 0);
	ck_assert_uint_eq(porter_db_nnotices(r), 1);
	ck_assert_uint_eq(porter_db_notices_dropped(r), 0);
	porter_db_result_free(r);
	porter_db_close(s, 0, 5000);
}
END_TEST

START_TEST(results_up_to_the_error)
{
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 10000, &s), 0);
	porter_db_result *r =
		q(s, NULL,
		  "SELECT 1 AS a; CREATE TEMP TABLE wire_t (x int); "
		  "INSERT INTO wire_t VALUES (5); SELECT * FROM wire_nosuch; SELECT 4",
		  PORTER_E_DB);
	ck_assert_str_eq(porter_db_sqlstate(r), "42P01");
	ck_assert_uint_eq(porter_db_nresults(r), 3);
	ck_assert_int_eq(porter_db_select(r, 0), 0);
	ck_assert_str_eq(porter_db_fname(r, 0), "a");
	ck_assert_str_eq(porter_db_getvalue(r, 0, 0), "1");
	ck_assert_int_eq(porter_db_select(r, 1), 0);
	ck_assert_str_eq(porter_db_cmdstatus(r), "CREATE TABLE");
	ck_assert_int_eq(porter_db_select(r, 2), 0);
	ck_assert_str_eq(porter_db_cmdstatus(r), "INSERT 0 1");
	ck_assert_int_eq(porter_db_select(r, 3), PORTER_E_INVAL);
	/* Where in the whole string: "wire_nosuch" starts at character 95. */
	ck_assert_str_eq(ef(r, PORTER_DB_DIAG_STATEMENT_POSITION), "95");
	porter_db_result_free(r);
	/* Implicit transaction of a simple-protocol string: the failure
	 * rolled the earlier statements back, as psql shows too. */
	r = q(s, NULL, "SELECT count(*) FROM pg_class WHERE relname = 'wire_t'", 0);
	ck_assert_str_eq(porter_db_getvalue(r, 0, 0), "0");
	porter_db_result_free(r);
	porter_db_close(s, 0, 5000);
}
END_TEST

START_TEST(error_fields)
{
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 10000, &s), 0);
	porter_db_result *r = q(s, NULL, "SELECT 1 FROM wire_nosuch", PORTER_E_DB);
	ck_assert_str_eq(ef(r, PORTER_DB_DIAG_SEVERITY), "ERROR");
	ck_assert_str_eq(ef(r, PORTER_DB_DIAG_SQLSTATE), "42P01");
	ck_assert_str_eq(ef(r, PORTER_DB_DIAG_MESSAGE_PRIMARY), porter_db_message(r));
	ck_assert_str_eq(ef(r, PORTER_DB_DIAG_STATEMENT_POSITION), "15");
	ck_assert_str_eq(ef(r, 'Z'), ""); /* not a field */
	porter_db_result_free(r);
	/* Positions count characters, not bytes. */
	r = q(s, NULL, "SELECT 'é', 'ü' FROM wire_nosuch", PORTER_E_DB);
	ck_assert_str_eq(ef(r, PORTER_DB_DIAG_STATEMENT_POSITION), "22");
	porter_db_result_free(r);

	porter_db_result_free(q(s, NULL,
				"CREATE TEMP TABLE wire_c (a int NOT NULL CONSTRAINT wire_pos "
				"CHECK (a > 0)); CREATE DOMAIN pg_temp.wire_d AS int CHECK "
				"(VALUE < 10)",
				0));
	r = q(s, NULL, "INSERT INTO wire_c VALUES (-1)", PORTER_E_DB);
	ck_assert_str_eq(ef(r, PORTER_DB_DIAG_SQLSTATE), "23514");
	ck_assert_str_eq(ef(r, PORTER_DB_DIAG_TABLE_NAME), "wire_c");
	ck_assert_str_eq(ef(r, PORTER_DB_DIAG_CONSTRAINT_NAME), "wire_pos");
	ck_assert_msg(!strncmp(ef(r, PORTER_DB_DIAG_SCHEMA_NAME), "pg_temp", 7), "%s",
		      ef(r, PORTER_DB_DIAG_SCHEMA_NAME));
	porter_db_result_free(r);
	r = q(s, NULL, "INSERT INTO wire_c VALUES (NULL)", PORTER_E_DB);
	ck_assert_str_eq(ef(r, PORTER_DB_DIAG_COLUMN_NAME), "a");
	porter_db_result_free(r);
	r = q(s, NULL, "SELECT 11::pg_temp.wire_d", PORTER_E_DB);
	ck_assert_str_eq(ef(r, PORTER_DB_DIAG_DATATYPE_NAME), "wire_d");
	porter_db_result_free(r);
	/* CONTEXT, and the internal query with its own position. */
	r = q(s, NULL, "DO $$ BEGIN EXECUTE 'SELECT * FROM wire_nosuch'; END $$", PORTER_E_DB);
	ck_assert_str_eq(ef(r, PORTER_DB_DIAG_INTERNAL_QUERY), "SELECT * FROM wire_nosuch");
	ck_assert_str_eq(ef(r, PORTER_DB_DIAG_INTERNAL_POSITION), "15");
	ck_assert_str_eq(ef(r, PORTER_DB_DIAG_STATEMENT_POSITION), "");
	ck_assert_msg(strstr(ef(r, PORTER_DB_DIAG_CONTEXT), "PL/pgSQL function") != NULL, "%s",
		      ef(r, PORTER_DB_DIAG_CONTEXT));
	porter_db_result_free(r);
	/* A success carries none. */
	r = q(s, NULL, "SELECT 1", 0);
	ck_assert_str_eq(ef(r, PORTER_DB_DIAG_SEVERITY), "");
	porter_db_result_free(r);
	/* And the pooled, pipelined path carries them too. */
	porter_db_param p = {"1", 1, 0, 0};
	r = NULL;
	ck_assert_int_eq(porter_db_query(0, conninfo, "SELECT $1::int FROM wire_nosuch", &p, 1, 0,
					 20000, &r),
			 PORTER_E_DB);
	ck_assert_str_eq(ef(r, PORTER_DB_DIAG_STATEMENT_POSITION), "21");
	porter_db_result_free(r);
	porter_db_close(s, 0, 5000);
}
END_TEST

START_TEST(parameter_count_checked_before_sending)
{
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 10000, &s), 0);
	porter_db_param p = {"1", 1, 0, 0};
	for (int pooled = 0; pooled < 2; pooled++) {
		porter_db_result *r = NULL;
		int rc = porter_db_query(pooled ? 0 : s, pooled ? conninfo : NULL,
					 "SELECT $1::int + $2::int", &p, 1, 0, 20000, &r);
		ck_assert_int_eq(rc, PORTER_E_DB);
		ck_assert_str_eq(porter_db_sqlstate(r), "08P01");
		ck_assert_str_eq(porter_db_message(r),
				 "the statement uses 2 parameters ($1..$2) but 1 was given");
		porter_db_result_free(r);
		/* $n in a string or a comment is no parameter. */
		r = NULL;
		rc = porter_db_query(pooled ? 0 : s, pooled ? conninfo : NULL,
				     "SELECT $1::int, '$2' /* $3 */", &p, 1, 0, 20000, &r);
		ck_assert_msg(rc == 0, "%s", porter_db_message(r));
		ck_assert_str_eq(porter_db_getvalue(r, 0, 1), "$2");
		porter_db_result_free(r);
	}
	porter_db_close(s, 0, 5000);
}
END_TEST

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

START_TEST(cursor_notices_with_their_chunks)
{
	porter_db_cursor *cur = NULL;
	porter_db_result *ch = NULL;
	/* An error's position comes with the first read too. */
	ck_assert_int_eq(porter_db_cursor_open(0, conninfo, "SELECT * FROM wire_nosuch", NULL, 0,
					       10, 0, 0, 20000, &cur),
			 0);
	ck_assert_int_eq(porter_db_cursor_read(cur, 0, 20000, &ch), PORTER_E_DB);
	ck_assert_str_eq(ef(ch, PORTER_DB_DIAG_STATEMENT_POSITION), "15");
	porter_db_result_free(ch);
	porter_db_cursor_close(cur, 5000);

	/* Notices come with the chunk during which they arrived. */
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 10000, &s), 0);
	porter_db_result_free(
		q(s, NULL,
		  "CREATE FUNCTION pg_temp.wire_n(n int) RETURNS int LANGUAGE plpgsql AS "
		  "$$ BEGIN RAISE NOTICE 'row %', n; RETURN n; END $$",
		  0));
	ck_assert_int_eq(porter_db_cursor_open(s, NULL,
					       "SELECT pg_temp.wire_n(g) FROM "
					       "generate_series(1, 50) g",
					       NULL, 0, 10, 0, 0, 20000, &cur),
			 0);
	size_t notices = 0, rows = 0;
	int rc;
	while ((rc = porter_db_cursor_read(cur, 0, 20000, &ch)) == 1) {
		for (size_t i = 0; i < porter_db_nnotices(ch); i++) {
			char want[32];
			snprintf(want, sizeof(want), "row %zu", notices + i + 1);
			ck_assert_str_eq(nf(ch, i, PORTER_DB_DIAG_MESSAGE_PRIMARY), want);
		}
		notices += porter_db_nnotices(ch);
		rows += (size_t)porter_db_ntuples(ch);
		/* A chunk's notices are at most those of its rows and the
		 * next row (computed before the chunk was found full). */
		ck_assert_uint_le(notices, rows + 1);
		porter_db_result_free(ch);
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(rows, 50);
	ck_assert_uint_eq(notices, 50);
	porter_db_cursor_close(cur, 5000);
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

START_TEST(client_encoding_cannot_be_switched_back)
{
	/* A session whose statement changes client_encoding: the call fails
	 * (its results are in LATIN1 and never handed on) and the session is
	 * closed, so nothing in another encoding ever reaches a client. */
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(latin1, 0, 10000, &s), 0);
	porter_db_result *r =
		q(s, NULL, "SET client_encoding TO LATIN1; SELECT 'é'", PORTER_E_DB_BROKEN);
	ck_assert_uint_eq(porter_db_nresults(r), 0);
	ck_assert_msg(strstr(porter_db_message(r), "client_encoding") != NULL, "%s",
		      porter_db_message(r));
	porter_db_result_free(r);
	r = NULL;
	int rc = porter_db_query(s, NULL, "SELECT 'é'", NULL, 0, 0, 10000, &r);
	ck_assert_msg(rc == PORTER_E_DB_BROKEN || rc == PORTER_E_DB_SESSION, "%s",
		      porter_error_name(rc));
	porter_db_result_free(r);
	porter_db_close(s, 0, 5000);
	/* set_config in a SELECT, on the pool: the same; the pool's next
	 * query gets a connection in UTF8. */
	r = q(0, latin1, "SELECT set_config('client_encoding', 'LATIN1', false), 'é'",
	      PORTER_E_DB_BROKEN);
	ck_assert_uint_eq(porter_db_nresults(r), 0);
	porter_db_result_free(r);
	for (int i = 0; i < 4; i++) {
		r = q(0, latin1, "SELECT 'é'", 0);
		assert_e_acute(r, 0);
		porter_db_result_free(r);
	}
	/* SET LOCAL lasts to the transaction's end and the server reports
	 * nothing: the value that is not UTF-8 is refused on its own. */
	ck_assert_int_eq(porter_db_open(latin1, 0, 10000, &s), 0);
	r = q(s, NULL, "BEGIN; SET LOCAL client_encoding TO LATIN1; SELECT 'é'; COMMIT",
	      PORTER_E_DB);
	ck_assert_str_eq(porter_db_sqlstate(r), "22021");
	porter_db_result_free(r);
	r = q(s, NULL, "SELECT 'é'", 0);
	assert_e_acute(r, 0);
	porter_db_result_free(r);
	porter_db_close(s, 0, 5000);
	/* Inside a transaction rolled back, the setting returns to UTF8 and
	 * nothing is lost: that is allowed. */
	ck_assert_int_eq(porter_db_open(latin1, 0, 10000, &s), 0);
	r = q(s, NULL, "BEGIN; SET LOCAL client_encoding TO LATIN1; ROLLBACK; SELECT 'é'", 0);
	assert_e_acute(r, 0);
	porter_db_result_free(r);
	porter_db_close(s, 0, 5000);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("db_wire");
	const TTest *tests[] = {notices_come_with_the_result,
				notice_flood_is_bounded,
				results_up_to_the_error,
				error_fields,
				parameter_count_checked_before_sending,
				cursor_open_error_carries_sqlstate,
				cursor_notices_with_their_chunks,
				utf8_on_a_latin1_database,
				client_encoding_cannot_be_switched_back,
				NULL};
	tcase_add_unchecked_fixture(th_tcase(s, "postgres", 120, tests), start, stop);
	return s;
}

TH_MAIN(suite)
