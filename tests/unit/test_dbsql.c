/* Unit tests of dbsql: the parameters a query's text refers to. */
#include <check.h>
#include <string.h>

#include "dbsql.h"
#include "thmain.h"

START_TEST(parameters_are_found)
{
	ck_assert_uint_eq(dbsql_max_param("SELECT 1"), 0);
	ck_assert_uint_eq(dbsql_max_param(""), 0);
	ck_assert_uint_eq(dbsql_max_param("SELECT $1"), 1);
	ck_assert_uint_eq(dbsql_max_param("SELECT $1 + $3, $2"), 3);
	ck_assert_uint_eq(dbsql_max_param("SELECT $1::int+$12"), 12);
	ck_assert_uint_eq(dbsql_max_param("SELECT ($2)"), 2);
	ck_assert_uint_eq(dbsql_max_param("SELECT $01"), 1);
	ck_assert_uint_eq(dbsql_max_param("SELECT $99999999999999999999"), DBSQL_MAX_PARAM + 1);
	ck_assert_uint_eq(dbsql_max_param("INSERT INTO t VALUES($1,$2)"), 2);
}
END_TEST

START_TEST(what_is_not_a_parameter)
{
	/* String constants of every kind, doubled quotes inside. */
	ck_assert_uint_eq(dbsql_max_param("SELECT '$1', 'it''s $2'"), 0);
	ck_assert_uint_eq(dbsql_max_param("SELECT E'\\'$1', $2"), 2);
	ck_assert_uint_eq(dbsql_max_param("SELECT e'\\\\', $1"), 1);
	ck_assert_uint_eq(dbsql_max_param("SELECT U&'$1', B'01', X'1f'"), 0);
	/* An E that ends an identifier does not make an escape string: a
	 * backslash in a plain one is a character. */
	ck_assert_uint_eq(dbsql_max_param("SELECT tablE'\\', $1"), 1);
	/* Quoted identifiers. */
	ck_assert_uint_eq(dbsql_max_param("SELECT 1 AS \"$3\", \"a\"\"$4\""), 0);
	/* Comments, nested ones too. */
	ck_assert_uint_eq(dbsql_max_param("SELECT 1 -- $5\n + $1"), 1);
	ck_assert_uint_eq(dbsql_max_param("SELECT /* $5 /* $6 */ $7 */ $2"), 2);
	/* Dollar quotes, with and without a tag; $1 inside a body is the
	 * function's own parameter. */
	ck_assert_uint_eq(dbsql_max_param("SELECT $$ $4 $$, $1"), 1);
	ck_assert_uint_eq(dbsql_max_param("DO $body$ BEGIN PERFORM $3; END $body$"), 0);
	ck_assert_uint_eq(dbsql_max_param("SELECT $a$ $$ $9 $$ $a$, $2"), 2);
	/* Identifiers may hold $ and digits. */
	ck_assert_uint_eq(dbsql_max_param("SELECT a$1, b$2$3 FROM t"), 0);
	ck_assert_uint_eq(dbsql_max_param("SELECT 1$1"), 0);
	/* A lone $, unterminated quotes and comments end the scan safely. */
	ck_assert_uint_eq(dbsql_max_param("SELECT $"), 0);
	ck_assert_uint_eq(dbsql_max_param("SELECT $1, '$2"), 1);
	ck_assert_uint_eq(dbsql_max_param("SELECT $1 /* $2"), 1);
	ck_assert_uint_eq(dbsql_max_param("SELECT $1, $x$ $2"), 1);
	ck_assert_uint_eq(dbsql_max_param("SELECT E'\\"), 0);
}
END_TEST

START_TEST(bind_messages_lose_the_statement_name)
{
	char out[128] = "untouched";
	ck_assert_int_eq(dbsql_bind_message("bind message supplies 1 parameters, but prepared "
					    "statement \"porter_s3\" requires 2",
					    out, sizeof(out)),
			 1);
	ck_assert_str_eq(out, "the statement uses 2 parameters ($1..$2) but 1 was given");
	ck_assert_ptr_null(strstr(out, "porter_s"));
	ck_assert_int_eq(dbsql_bind_message("bind message supplies 0 parameters, but prepared "
					    "statement \"\" requires 1",
					    out, sizeof(out)),
			 1);
	ck_assert_str_eq(out, "the statement uses 1 parameter ($1..$1) but 0 were given");
	strcpy(out, "untouched");
	ck_assert_int_eq(dbsql_bind_message("relation \"t\" does not exist", out, sizeof(out)), 0);
	ck_assert_int_eq(dbsql_bind_message(NULL, out, sizeof(out)), 0);
	ck_assert_int_eq(dbsql_bind_message("bind message supplies x", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "untouched");
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {parameters_are_found, what_is_not_a_parameter,
				bind_messages_lose_the_statement_name, NULL};
	return th_suite("dbsql", "core", 0, tests);
}

TH_MAIN(suite)
