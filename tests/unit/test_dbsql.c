/* Unit tests of dbsql: the parameters a query's text refers to. */
#include <check.h>
#include <string.h>

#include "dbsql.h"
#include "thmain.h"

/* A query's text and the highest parameter dbsql_max_param finds in it. */
typedef struct max_case {
	const char *sql;
	unsigned want;
} max_case;

static void check_max_param(const max_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned got = dbsql_max_param(cases[i].sql);
		ck_assert_msg(got == cases[i].want, "%s: %u, not %u", cases[i].sql, got,
			      cases[i].want);
	}
}

#define CHECK_MAX_PARAM(cases) check_max_param(cases, sizeof(cases) / sizeof(cases[0]))

START_TEST(parameters_are_found)
{
	static const max_case cases[] = {
		{"SELECT 1", 0},
		{"", 0},
		{"SELECT $1", 1},
		{"SELECT $1 + $3, $2", 3},
		{"SELECT $1::int+$12", 12},
		{"SELECT ($2)", 2},
		{"SELECT $01", 1},
		{"SELECT $99999999999999999999", DBSQL_MAX_PARAM + 1},
		{"INSERT INTO t VALUES($1,$2)", 2},
	};
	CHECK_MAX_PARAM(cases);
}
END_TEST

START_TEST(what_is_not_a_parameter)
{
	static const max_case cases[] = {
		/* String constants of every kind, doubled quotes inside. */
		{"SELECT '$1', 'it''s $2'", 0},
		{"SELECT E'\\'$1', $2", 2},
		{"SELECT e'\\\\', $1", 1},
		{"SELECT U&'$1', B'01', X'1f'", 0},
		/* An E that ends an identifier does not make an escape string: a
		 * backslash in a plain one is a character. */
		{"SELECT tablE'\\', $1", 1},
		/* Quoted identifiers. */
		{"SELECT 1 AS \"$3\", \"a\"\"$4\"", 0},
		/* Comments, nested ones too. */
		{"SELECT 1 -- $5\n + $1", 1},
		{"SELECT /* $5 /* $6 */ $7 */ $2", 2},
		/* Dollar quotes, with and without a tag; $1 inside a body is the
		 * function's own parameter. */
		{"SELECT $$ $4 $$, $1", 1},
		{"DO $body$ BEGIN PERFORM $3; END $body$", 0},
		{"SELECT $a$ $$ $9 $$ $a$, $2", 2},
		/* Identifiers may hold $ and digits. */
		{"SELECT a$1, b$2$3 FROM t", 0},
		{"SELECT 1$1", 0},
		/* A lone $, unterminated quotes and comments end the scan safely. */
		{"SELECT $", 0},
		{"SELECT $1, '$2", 1},
		{"SELECT $1 /* $2", 1},
		{"SELECT $1, $x$ $2", 1},
		{"SELECT E'\\", 0},
	};
	CHECK_MAX_PARAM(cases);
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
