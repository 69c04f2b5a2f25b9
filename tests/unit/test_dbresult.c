/*
 * Unit tests of daemon/dbresult.c, PGresults into the reply's DbResults.
 * The PGresults are built without a server (PQmakeEmptyPGresult,
 * PQsetResultAttrs, PQsetvalue) and handed to dbresult_take on a dbc that
 * has no connection: columns, rows, NULLs and command tags arrive as
 * PostgreSQL sent them; a value that is not UTF-8 fails the op (22021);
 * rows past the frame bound mark the op too large instead of growing;
 * single-row results are copied (the PGresult is freed at once, which
 * ASan checks); a query abandoned (no op) drains; errors and unsupported
 * statuses leave nothing in the reply.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dbint.h"
#include "dbop.h"
#include "dbresult.h"
#include "porter_errors.h"
#include "thmain.h"

#define OID_TEXT 25
#define OID_INT4 23

/* A dbc with no connection whose worker's frame limit is `max_frame`. */
typedef struct fixture {
	config cfg;
	worker w;
	db_worker dw;
	dbc c;
} fixture;

static void fixture_init(fixture *f, uint32_t max_frame)
{
	memset(f, 0, sizeof(*f));
	f->cfg.max_frame = max_frame;
	f->w.cfg = &f->cfg;
	f->dw.w = &f->w;
	f->c.dw = &f->dw;
}

static dbop *op_new(fixture *f, enum op_kind kind)
{
	dbop *op = calloc(1, sizeof(*op));
	ck_assert_ptr_nonnull(op);
	op->kind = kind;
	op->dw = &f->dw;
	f->c.cur = op;
	return op;
}

/* A PGresult of `st` with columns names[0..nf) (text, except "n": int4). */
static PGresult *result_new(ExecStatusType st, int nf, const char *const *names)
{
	PGresult *res = PQmakeEmptyPGresult(NULL, st);
	ck_assert_ptr_nonnull(res);
	if (nf) {
		PGresAttDesc att[8];
		ck_assert_int_le(nf, 8);
		memset(att, 0, sizeof(att));
		for (int i = 0; i < nf; i++) {
			att[i].name = (char *)names[i];
			att[i].typid = strcmp(names[i], "n") ? OID_TEXT : OID_INT4;
			att[i].typlen = -1;
			att[i].atttypmod = -1;
		}
		ck_assert_int_eq(PQsetResultAttrs(res, nf, att), 1);
	}
	return res;
}

/* Sets row `t`, column `i` of `res` to `v` (NULL: SQL NULL). */
static void set(PGresult *res, int t, int i, const char *v)
{
	ck_assert_int_eq(PQsetvalue(res, t, i, (char *)v, v ? (int)strlen(v) : -1), 1);
}

static void assert_value(const Porter__V1__DbRow *row, size_t i, const char *want)
{
	ck_assert_uint_gt(row->n_values, i);
	ck_assert_uint_eq(row->values[i].len, strlen(want));
	ck_assert(memcmp(row->values[i].data, want, strlen(want)) == 0);
}

START_TEST(tuples_give_columns_rows_and_nulls)
{
	fixture f;
	fixture_init(&f, 1u << 20);
	dbop *op = op_new(&f, OP_QUERY);
	const char *names[] = {"n", "name"};
	PGresult *res = result_new(PGRES_TUPLES_OK, 2, names);
	set(res, 0, 0, "1");
	set(res, 0, 1, "héllo");
	set(res, 1, 0, "2");
	set(res, 1, 1, NULL);
	set(res, 2, 0, "3");
	set(res, 2, 1, "");
	dbresult_take(&f.c, res);
	ck_assert_int_eq(op->err, 0);
	ck_assert_int_eq(op->too_large, 0);
	ck_assert_uint_eq(op->n_results, 1);
	ck_assert_uint_eq(op->n_pgs, 1); /* the values point into it */
	const Porter__V1__DbResult *dr = op->results[0];
	ck_assert_uint_eq(dr->n_columns, 2);
	ck_assert_str_eq(dr->columns[0]->name, "n");
	ck_assert_uint_eq(dr->columns[0]->type_oid, OID_INT4);
	ck_assert_str_eq(dr->columns[1]->name, "name");
	ck_assert_uint_eq(dr->columns[1]->type_oid, OID_TEXT);
	ck_assert_uint_eq(dr->n_rows, 3);
	assert_value(dr->rows[0], 0, "1");
	assert_value(dr->rows[0], 1, "héllo");
	/* A row without NULLs carries no null mask; one with NULLs says
	 * which, so a NULL is told from an empty string. */
	ck_assert_uint_eq(dr->rows[0]->nulls.len, 0);
	ck_assert_uint_eq(dr->rows[1]->nulls.len, 2);
	ck_assert_uint_eq(dr->rows[1]->nulls.data[0], 0);
	ck_assert_uint_eq(dr->rows[1]->nulls.data[1], 1);
	ck_assert_uint_eq(dr->rows[1]->values[1].len, 0);
	ck_assert_uint_eq(dr->rows[2]->nulls.len, 0);
	assert_value(dr->rows[2], 1, "");
	ck_assert_uint_gt(op->bytes, 0);
	dbop_free(op);
}
END_TEST

/* Many results with many columns and rows grow past the op's own first
 * entries (results0, cols0, rows0, pgs0) without losing any. */
START_TEST(many_results_columns_and_rows_grow)
{
	fixture f;
	fixture_init(&f, 64u << 20);
	dbop *op = op_new(&f, OP_QUERY);
	const char *names[] = {"a", "b", "c", "d", "e", "f"};
	enum { RESULTS = 2 * DBOP_RESULTS0 + 1, ROWS = 37 };
	for (int r = 0; r < RESULTS; r++) {
		PGresult *res = result_new(PGRES_TUPLES_OK, 6, names);
		for (int t = 0; t < ROWS; t++)
			for (int i = 0; i < 6; i++) {
				char v[32];
				snprintf(v, sizeof(v), "%d.%d.%d", r, t, i);
				set(res, t, i, v);
			}
		dbresult_take(&f.c, res);
	}
	ck_assert_int_eq(op->err, 0);
	ck_assert_uint_eq(op->n_results, RESULTS);
	ck_assert_uint_eq(op->n_pgs, RESULTS);
	for (int r = 0; r < RESULTS; r++) {
		const Porter__V1__DbResult *dr = op->results[r];
		ck_assert_uint_eq(dr->n_columns, 6);
		ck_assert_str_eq(dr->columns[5]->name, "f");
		ck_assert_uint_eq(dr->n_rows, ROWS);
		for (int t = 0; t < ROWS; t++) {
			char v[32];
			snprintf(v, sizeof(v), "%d.%d.%d", r, t, 5);
			assert_value(dr->rows[t], 5, v);
		}
	}
	dbop_free(op);
}
END_TEST

START_TEST(command_tags_and_affected_rows)
{
	fixture f;
	fixture_init(&f, 1u << 20);
	dbop *op = op_new(&f, OP_QUERY);
	/* PQmakeEmptyPGresult has no tag to give: the empty one. */
	dbresult_take(&f.c, result_new(PGRES_COMMAND_OK, 0, NULL));
	dbresult_take(&f.c, result_new(PGRES_EMPTY_QUERY, 0, NULL));
	const char *names[] = {"x"};
	PGresult *res = result_new(PGRES_TUPLES_OK, 1, names);
	dbresult_take(&f.c, res);
	ck_assert_int_eq(op->err, 0);
	ck_assert_uint_eq(op->n_results, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_ptr_nonnull(op->results[i]->command_tag);
		ck_assert_str_eq(op->results[i]->command_tag, "");
		ck_assert_uint_eq(op->results[i]->affected, 0);
	}
	/* A command carries no columns, an empty SELECT its columns. */
	ck_assert_uint_eq(op->results[0]->n_columns, 0);
	ck_assert_uint_eq(op->results[2]->n_columns, 1);
	ck_assert_uint_eq(op->results[2]->n_rows, 0);
	dbop_free(op);
}
END_TEST

/* A pooled connection that ran something other than plain DML may hold
 * session state: it is marked for a reset. Sessions never are. */
START_TEST(pooled_non_dml_needs_reset)
{
	fixture f;
	fixture_init(&f, 1u << 20);
	dbop *op = op_new(&f, OP_QUERY);
	dbresult_take(&f.c, result_new(PGRES_COMMAND_OK, 0, NULL));
	ck_assert_int_eq(f.c.needs_reset, 0); /* a session: not pooled */
	dbop_free(op);

	pool p;
	memset(&p, 0, sizeof(p));
	f.c.pool = &p;
	op = op_new(&f, OP_QUERY);
	dbresult_take(&f.c, result_new(PGRES_COMMAND_OK, 0, NULL)); /* tag "" */
	ck_assert_int_eq(f.c.needs_reset, 1);
	dbop_free(op);

	/* Not for an internal step (a reset itself). */
	f.c.needs_reset = 0;
	op = op_new(&f, OP_RESET);
	dbresult_take(&f.c, result_new(PGRES_COMMAND_OK, 0, NULL));
	ck_assert_int_eq(f.c.needs_reset, 0);
	dbop_free(op);
}
END_TEST

/* Every value a client gets is UTF-8: one that is not fails the op with
 * SQLSTATE 22021, whichever way it is broken. */
START_TEST(invalid_utf8_fails_the_op)
{
	static const char *const bad[] = {
		"\xc0\xaf",         /* overlong '/' */
		"\xc1\xbf",         /* overlong */
		"\xe0\x80\xaf",     /* overlong three-byte */
		"\xed\xa0\x80",     /* UTF-16 surrogate */
		"\xf0\x80\x80\xaf", /* overlong four-byte */
		"\xf4\x90\x80\x80", /* past U+10FFFF */
		"\xf5\x80\x80\x80", /* no such lead byte */
		"\x80",             /* continuation alone */
		"abc\xe2\x82",      /* cut short */
		"\xe2\x28\xa1",     /* bad continuation */
		"abcdefgh\xff",     /* after an eight-byte ASCII run */
	};
	static const char *const good[] = {
		"",
		"plain ascii long enough for words",
		"\xc2\x80",
		"\xdf\xbf",
		"€",
		"\xed\x9f\xbf",
		"\xee\x80\x80",
		"😀",
		"\xf4\x8f\xbf\xbf",
		"abcdefgh€abcdefgh",
	};
	const char *names[] = {"v"};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		fixture f;
		fixture_init(&f, 1u << 20);
		dbop *op = op_new(&f, OP_QUERY);
		PGresult *res = result_new(PGRES_TUPLES_OK, 1, names);
		set(res, 0, 0, "fine");
		set(res, 1, 0, bad[k]);
		dbresult_take(&f.c, res);
		ck_assert_msg(op->err == PORTER_E_DB, "bad value %zu accepted", k);
		ck_assert_str_eq(op->err_state, "22021");
		ck_assert_uint_eq(op->results[0]->n_rows, 1); /* the bad row is not kept */
		/* Later results of the op add nothing. */
		PGresult *more = result_new(PGRES_TUPLES_OK, 1, names);
		set(more, 0, 0, "x");
		dbresult_take(&f.c, more);
		ck_assert_uint_eq(op->n_results, 1);
		dbop_free(op);
	}
	for (size_t k = 0; k < sizeof(good) / sizeof(good[0]); k++) {
		fixture f;
		fixture_init(&f, 1u << 20);
		dbop *op = op_new(&f, OP_QUERY);
		PGresult *res = result_new(PGRES_TUPLES_OK, 1, names);
		set(res, 0, 0, good[k]);
		dbresult_take(&f.c, res);
		ck_assert_msg(op->err == 0, "good value %zu refused", k);
		assert_value(op->results[0]->rows[0], 0, good[k]);
		dbop_free(op);
	}
}
END_TEST

/* Rows past the frame bound (max_frame / 2 for small frames) mark the op
 * too large; the rows kept stay under the bound plus one row. */
START_TEST(rows_past_the_frame_bound_mark_too_large)
{
	fixture f;
	fixture_init(&f, 4096); /* bound: 2048 bytes */
	dbop *op = op_new(&f, OP_QUERY);
	const char *names[] = {"v"};
	char val[101];
	memset(val, 'x', 100);
	val[100] = 0;
	PGresult *res = result_new(PGRES_TUPLES_OK, 1, names);
	for (int t = 0; t < 1000; t++)
		set(res, t, 0, val);
	dbresult_take(&f.c, res);
	ck_assert_int_eq(op->too_large, 1);
	size_t kept = op->results[0]->n_rows;
	ck_assert_uint_gt(kept, 10);
	ck_assert_uint_lt(kept, 30); /* 2048 / ~108 bytes a row, plus one */
	/* What follows is dropped. */
	PGresult *more = result_new(PGRES_TUPLES_OK, 1, names);
	set(more, 0, 0, "y");
	dbresult_take(&f.c, more);
	ck_assert_uint_eq(op->n_results, 1);
	dbop_free(op);

	/* The same rows fit a large frame. */
	fixture_init(&f, 64u << 20);
	op = op_new(&f, OP_QUERY);
	res = result_new(PGRES_TUPLES_OK, 1, names);
	for (int t = 0; t < 1000; t++)
		set(res, t, 0, val);
	dbresult_take(&f.c, res);
	ck_assert_int_eq(op->too_large, 0);
	ck_assert_uint_eq(op->results[0]->n_rows, 1000);
	dbop_free(op);
}
END_TEST

/* The frame bound streams also cut chunks at: 1 MiB of room, half of a
 * small frame. */
START_TEST(frame_cap_leaves_room)
{
	ck_assert_uint_eq(dbresult_frame_cap(16u << 20), 15u << 20);
	ck_assert_uint_eq(dbresult_frame_cap(2u << 20), 1u << 20);
	ck_assert_uint_eq(dbresult_frame_cap(4096), 2048);
}
END_TEST

/* A stream's chunk is bounded by its rows, not by the frame bound. */
START_TEST(streamed_chunks_are_not_cut_by_the_frame_bound)
{
	fixture f;
	fixture_init(&f, 4096);
	dbop *op = op_new(&f, OP_FETCH);
	op->chunk_rows = 1000;
	const char *names[] = {"v"};
	char val[101];
	memset(val, 'z', 100);
	val[100] = 0;
	for (int t = 0; t < 100; t++) {
		PGresult *res = result_new(PGRES_SINGLE_TUPLE, 1, names);
		set(res, 0, 0, val);
		dbresult_take(&f.c, res);
	}
	ck_assert_int_eq(op->too_large, 0);
	ck_assert_uint_eq(op->results[0]->n_rows, 100);
	dbop_free(op);
}
END_TEST

/* Single-row results are copied: only the first, whose column names the
 * chunk points to, is kept; the others are freed at once and their values
 * still read right (ASan would see a use after free). The columns go out
 * in the first chunk only; the final TUPLES_OK brings the tag. */
START_TEST(single_rows_are_copied_and_columns_sent_once)
{
	fixture f;
	fixture_init(&f, 1u << 20);
	dbop *op = op_new(&f, OP_FETCH);
	op->chunk_rows = 10;
	const char *names[] = {"n", "s"};
	for (int t = 0; t < 5; t++) {
		PGresult *res = result_new(PGRES_SINGLE_TUPLE, 2, names);
		char v[16];
		snprintf(v, sizeof(v), "%d", t);
		set(res, 0, 0, v);
		set(res, 0, 1, t == 2 ? NULL : "row");
		dbresult_take(&f.c, res);
	}
	ck_assert_int_eq(op->err, 0);
	ck_assert_uint_eq(op->n_results, 1);
	ck_assert_uint_eq(op->n_pgs, 1); /* the first, for the names */
	ck_assert_int_eq(f.c.stream_cols_sent, 1);
	const Porter__V1__DbResult *dr = op->results[0];
	ck_assert_uint_eq(dr->n_columns, 2);
	ck_assert_str_eq(dr->columns[1]->name, "s");
	ck_assert_uint_eq(dr->n_rows, 5);
	for (int t = 0; t < 5; t++) {
		char v[16];
		snprintf(v, sizeof(v), "%d", t);
		assert_value(dr->rows[t], 0, v);
	}
	ck_assert_uint_eq(dr->rows[2]->nulls.len, 2);
	ck_assert_uint_eq(dr->rows[2]->nulls.data[1], 1);
	assert_value(dr->rows[4], 1, "row");
	dbop_free(op);

	/* The next chunk: no columns, and no PGresult kept. */
	op = op_new(&f, OP_FETCH);
	op->chunk_rows = 10;
	for (int t = 0; t < 3; t++) {
		PGresult *res = result_new(PGRES_SINGLE_TUPLE, 2, names);
		set(res, 0, 0, "7");
		set(res, 0, 1, "later");
		dbresult_take(&f.c, res);
	}
	/* The end of the stream. */
	dbresult_take(&f.c, result_new(PGRES_TUPLES_OK, 2, names));
	ck_assert_int_eq(op->err, 0);
	ck_assert_uint_eq(op->n_results, 1);
	ck_assert_uint_eq(op->results[0]->n_columns, 0);
	ck_assert_uint_eq(op->results[0]->n_rows, 3);
	assert_value(op->results[0]->rows[2], 1, "later");
	ck_assert_ptr_nonnull(op->results[0]->command_tag);
	ck_assert_uint_eq(op->n_pgs, 1); /* only the final TUPLES_OK */
	dbop_free(op);
}
END_TEST

/* An abandoned query drains: its results are freed (LeakSanitizer would
 * see one kept) and nothing is touched. */
START_TEST(without_an_op_results_are_freed)
{
	fixture f;
	fixture_init(&f, 1u << 20);
	const char *names[] = {"v"};
	PGresult *res = result_new(PGRES_TUPLES_OK, 1, names);
	set(res, 0, 0, "x");
	dbresult_take(&f.c, res);
	dbresult_take(&f.c, result_new(PGRES_SINGLE_TUPLE, 1, names));
	dbresult_take(&f.c, result_new(PGRES_FATAL_ERROR, 0, NULL));
	ck_assert_ptr_null(f.c.cur);
	ck_assert_int_eq(f.c.stream_cols_sent, 0);
}
END_TEST

/* An error fails the op once (the first error stays) and what comes after
 * it is dropped; statuses that carry no rows add nothing. */
START_TEST(errors_and_other_statuses_add_nothing)
{
	fixture f;
	fixture_init(&f, 1u << 20);
	dbop *op = op_new(&f, OP_QUERY);
	const char *names[] = {"v"};
	PGresult *res = result_new(PGRES_TUPLES_OK, 1, names);
	set(res, 0, 0, "before");
	dbresult_take(&f.c, res);
	dbresult_take(&f.c, result_new(PGRES_PIPELINE_SYNC, 0, NULL));
	dbresult_take(&f.c, result_new(PGRES_NONFATAL_ERROR, 0, NULL));
	ck_assert_int_eq(op->err, 0);
	ck_assert_uint_eq(op->n_results, 1);
	dbresult_take(&f.c, result_new(PGRES_FATAL_ERROR, 0, NULL));
	ck_assert_int_eq(op->err, PORTER_E_DB);
	dbop_set_error(op, PORTER_E_NOMEM, "later", NULL, NULL, NULL);
	ck_assert_int_eq(op->err, PORTER_E_DB);
	res = result_new(PGRES_TUPLES_OK, 1, names);
	set(res, 0, 0, "after");
	dbresult_take(&f.c, res);
	ck_assert_uint_eq(op->n_results, 1);
	ck_assert_uint_eq(op->n_pgs, 1);
	dbop_free(op);
}
END_TEST

/* COPY FROM STDIN is refused without breaking anything here (no
 * connection: the copy end is not sent). */
START_TEST(copy_in_is_refused)
{
	fixture f;
	fixture_init(&f, 1u << 20);
	dbop *op = op_new(&f, OP_QUERY);
	dbresult_take(&f.c, result_new(PGRES_COPY_IN, 0, NULL));
	ck_assert_int_eq(op->err, PORTER_E_UNSUPPORTED);
	ck_assert_uint_eq(op->n_results, 0);
	ck_assert_ptr_eq(f.c.cur, op);
	dbop_free(op);
}
END_TEST

START_TEST(empty_result_is_one_result_without_rows)
{
	fixture f;
	fixture_init(&f, 1u << 20);
	dbop *op = op_new(&f, OP_FETCH);
	dbresult_empty(op);
	ck_assert_uint_eq(op->n_results, 1);
	ck_assert_uint_eq(op->results[0]->n_rows, 0);
	ck_assert_uint_eq(op->results[0]->n_columns, 0);
	ck_assert_ptr_eq(op->results[0], &op->result0);
	dbresult_empty(op);
	ck_assert_uint_eq(op->n_results, 2);
	ck_assert_ptr_ne(op->results[1], &op->result0);
	dbop_free(op);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {tuples_give_columns_rows_and_nulls,
				many_results_columns_and_rows_grow,
				command_tags_and_affected_rows,
				pooled_non_dml_needs_reset,
				invalid_utf8_fails_the_op,
				rows_past_the_frame_bound_mark_too_large,
				frame_cap_leaves_room,
				streamed_chunks_are_not_cut_by_the_frame_bound,
				single_rows_are_copied_and_columns_sent_once,
				without_an_op_results_are_freed,
				errors_and_other_statuses_add_nothing,
				copy_in_is_refused,
				empty_result_is_one_result_without_rows,
				NULL};
	return th_suite("dbresult", "dbresult", 30, tests);
}

TH_MAIN(suite)
