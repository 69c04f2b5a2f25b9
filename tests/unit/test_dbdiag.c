/*
 * Unit tests of daemon/dbdiag.c, an error's fields and the notices of an
 * op, without a server. libpq builds the PGresults itself: a PGconn whose
 * conninfo it refused (it never connects) carries the error text that
 * PQmakeEmptyPGresult copies into a PGRES_FATAL_ERROR result, and its
 * notice hooks, which libpq's own notices (PQgetvalue out of range) go
 * through with a message and a severity, like a server's. What is tested:
 * the first error stays; its fields go to the reply; notices go with a
 * query or fetch only, each with the number of results ahead of it, the
 * first DBDIAG_NOTICES_MAX kept and the rest counted; dbdiag_clear frees
 * them all (LeakSanitizer checks); a connection whose client_encoding is
 * not UTF8 drops what the op gathered and breaks it.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "dbdiag.h"
#include "dbint.h"
#include "dbop.h"
#include "porter_errors.h"
#include "thmain.h"

/* A dbc whose PGconn never connected: libpq refused its conninfo (an
 * invalid sslmode `mode`, which its error message quotes), so it has an
 * error text and notice hooks but no socket. */
typedef struct fixture {
	dbc c;
} fixture;

static void fixture_init(fixture *f, const char *mode)
{
	memset(f, 0, sizeof(*f));
	char conninfo[512];
	snprintf(conninfo, sizeof(conninfo), "host=/nonexistent-porter-unit sslmode='%s'", mode);
	f->c.pg = PQconnectStart(conninfo);
	ck_assert_ptr_nonnull(f->c.pg);
	ck_assert_int_eq(PQstatus(f->c.pg), CONNECTION_BAD);
	PQsetNoticeReceiver(f->c.pg, dbdiag_notice, &f->c);
}

static void fixture_done(fixture *f)
{
	PQfinish(f->c.pg);
}

static dbop *op_new(fixture *f, enum op_kind kind)
{
	dbop *op = calloc(1, sizeof(*op));
	ck_assert_ptr_nonnull(op);
	op->kind = kind;
	f->c.cur = op;
	op->c = &f->c;
	return op;
}

/* Raises `n` notices on `f`'s connection: libpq's own, for a row out of
 * range, through the hooks the result copied from the connection. */
static void raise_notices(fixture *f, int n)
{
	PGresult *res = PQmakeEmptyPGresult(f->c.pg, PGRES_TUPLES_OK);
	ck_assert_ptr_nonnull(res);
	for (int i = 0; i < n; i++)
		ck_assert_ptr_null(PQgetvalue(res, 1000 + i, 0));
	PQclear(res);
}

START_TEST(the_first_error_stays_with_its_text)
{
	fixture f;
	fixture_init(&f, "first");
	dbop *op = op_new(&f, OP_QUERY);
	PGresult *res = PQmakeEmptyPGresult(f.c.pg, PGRES_FATAL_ERROR);
	dbdiag_error(op, res);
	PQclear(res); /* not taken: what the op kept is its own */
	ck_assert_int_eq(op->err, PORTER_E_DB);
	ck_assert_ptr_nonnull(op->err_msg);
	ck_assert_ptr_nonnull(strstr(op->err_msg, "first"));
	ck_assert_ptr_null(op->err_state); /* no SQLSTATE field */
	ck_assert_ptr_nonnull(op->err_fields);
	ck_assert_uint_eq(op->err_fields->position, 0);

	/* A second error changes nothing. */
	fixture g;
	fixture_init(&g, "second");
	Porter__V1__ErrorDetail *kept = op->err_fields;
	res = PQmakeEmptyPGresult(g.c.pg, PGRES_FATAL_ERROR);
	dbdiag_error(op, res);
	PQclear(res);
	ck_assert_ptr_nonnull(strstr(op->err_msg, "first"));
	ck_assert_ptr_null(strstr(op->err_msg, "second"));
	ck_assert_ptr_eq(op->err_fields, kept);

	/* Cleared, the op takes the next one. */
	dbop_clear(op);
	ck_assert_ptr_null(op->err_fields);
	res = PQmakeEmptyPGresult(g.c.pg, PGRES_FATAL_ERROR);
	dbdiag_error(op, res);
	PQclear(res);
	ck_assert_ptr_nonnull(strstr(op->err_msg, "second"));
	dbop_free(op);
	fixture_done(&g);
	fixture_done(&f);
}
END_TEST

/* A notice receiver that records each notice as an error of the op `arg`:
 * a PGresult with fields (message, severity) made by libpq itself. */
static void error_receiver(void *arg, const PGresult *res)
{
	dbdiag_error(arg, res);
}

/* The error's message comes from its primary field; the fields beyond
 * message, SQLSTATE, detail and hint reach the reply's ErrorDetail, still
 * owned by the op; none without an error. */
START_TEST(error_fields_fill_the_detail)
{
	fixture f;
	fixture_init(&f, "x");
	dbop *op = op_new(&f, OP_QUERY);
	Porter__V1__ErrorDetail ed = PORTER__V1__ERROR_DETAIL__INIT;
	const char *init_severity = ed.severity;
	dbdiag_error_fields(op, &ed); /* no error: untouched */
	ck_assert_ptr_eq(ed.severity, init_severity);
	ck_assert_uint_eq(ed.position, 0);

	PQsetNoticeReceiver(f.c.pg, error_receiver, op);
	raise_notices(&f, 2);
	ck_assert_int_eq(op->err, PORTER_E_DB);
	/* The primary message, not PQresultErrorMessage's "NOTICE:  ...". */
	ck_assert_str_eq(op->err_msg, "row number 1000 is out of range 0..-1");
	ck_assert_ptr_nonnull(op->err_fields);
	ck_assert_str_eq(op->err_fields->severity, "NOTICE");
	dbdiag_error_fields(op, &ed);
	ck_assert_ptr_eq(ed.severity, op->err_fields->severity); /* not copied */
	ck_assert_str_eq(ed.severity, "NOTICE");
	ck_assert_ptr_eq(ed.context, op->err_fields->context);
	ck_assert_ptr_eq(ed.constraint_name, op->err_fields->constraint_name);
	ck_assert_uint_eq(ed.position, 0);
	dbop_free(op);
	fixture_done(&f);
}
END_TEST

/* Notices go with the reply of a query or a fetch, each saying how many
 * results came before it; others (a reset, an open, no op) are only
 * logged. */
START_TEST(notices_go_with_queries_and_fetches_only)
{
	fixture f;
	fixture_init(&f, "x");
	dbop *op = op_new(&f, OP_QUERY);
	raise_notices(&f, 2);
	op->n_results = 3; /* as if three results had arrived */
	raise_notices(&f, 1);
	op->n_results = 0;
	ck_assert_uint_eq(op->n_notices, 3);
	ck_assert_uint_eq(op->notices[0]->before_result, 0);
	ck_assert_uint_eq(op->notices[1]->before_result, 0);
	ck_assert_uint_eq(op->notices[2]->before_result, 3);
	ck_assert_str_eq(op->notices[2]->message, "row number 1000 is out of range 0..-1");
	ck_assert_uint_gt(op->notice_bytes, 0);
	ck_assert_uint_eq(op->notices_dropped, 0);
	dbop_free(op);

	op = op_new(&f, OP_FETCH);
	raise_notices(&f, 1);
	ck_assert_uint_eq(op->n_notices, 1);
	dbop_free(op);

	static const enum op_kind others[] = {OP_OPEN, OP_CLOSE, OP_RESET};
	for (size_t k = 0; k < sizeof(others) / sizeof(others[0]); k++) {
		op = op_new(&f, others[k]);
		raise_notices(&f, 3);
		ck_assert_uint_eq(op->n_notices, 0);
		ck_assert_uint_eq(op->notices_dropped, 0);
		ck_assert_ptr_null(op->notices);
		dbop_free(op);
	}
	f.c.cur = NULL;
	raise_notices(&f, 3); /* an idle connection: logged */
	fixture_done(&f);
}
END_TEST

/* A function can raise millions of notices: the first DBDIAG_NOTICES_MAX
 * are kept, the rest counted; clearing frees and resets them all. */
START_TEST(notices_past_the_bound_are_counted)
{
	fixture f;
	fixture_init(&f, "x");
	dbop *op = op_new(&f, OP_QUERY);
	raise_notices(&f, DBDIAG_NOTICES_MAX + 57);
	ck_assert_uint_eq(op->n_notices, DBDIAG_NOTICES_MAX);
	ck_assert_uint_eq(op->notices_dropped, 57);
	ck_assert_str_eq(op->notices[DBDIAG_NOTICES_MAX - 1]->message,
			 "row number 1099 is out of range 0..-1");
	size_t bytes = op->notice_bytes;
	ck_assert_uint_gt(bytes, DBDIAG_NOTICES_MAX * 30);
	ck_assert_uint_le(bytes, DBDIAG_NOTICE_BYTES);
	dbdiag_clear(op);
	ck_assert_uint_eq(op->n_notices, 0);
	ck_assert_uint_eq(op->notice_bytes, 0);
	ck_assert_uint_eq(op->notices_dropped, 0);
	ck_assert_ptr_null(op->notices);
	/* Kept again after a clear (a retried op). */
	raise_notices(&f, 2);
	ck_assert_uint_eq(op->n_notices, 2);
	dbop_free(op);
	fixture_done(&f);
}
END_TEST

/* The bound on notice text: an op that already holds nearly
 * DBDIAG_NOTICE_BYTES takes no more, whatever their number. */
START_TEST(notice_text_past_the_byte_bound_is_counted)
{
	fixture f;
	fixture_init(&f, "x");
	dbop *op = op_new(&f, OP_QUERY);
	op->notice_bytes = DBDIAG_NOTICE_BYTES - 10;
	raise_notices(&f, 4);
	ck_assert_uint_eq(op->n_notices, 0);
	ck_assert_uint_eq(op->notices_dropped, 4);
	ck_assert_uint_eq(op->notice_bytes, DBDIAG_NOTICE_BYTES - 10);
	/* The count saturates rather than wrapping. */
	op->notices_dropped = UINT32_MAX - 1;
	raise_notices(&f, 3);
	ck_assert_uint_eq(op->notices_dropped, UINT32_MAX);
	dbop_free(op);
	fixture_done(&f);
}
END_TEST

/* A connection whose client_encoding is not UTF8 (here: none, never
 * connected) fails the op with DB_BROKEN and drops what it gathered; a
 * reset or no op is left alone. */
START_TEST(encoding_not_utf8_breaks_the_op)
{
	fixture f;
	fixture_init(&f, "x");
	dbop *op = op_new(&f, OP_QUERY);
	raise_notices(&f, 2);
	ck_assert_uint_eq(op->n_notices, 2);
	ck_assert_int_eq(dbdiag_utf8_kept(&f.c, op), 0);
	ck_assert_int_eq(op->err, PORTER_E_DB_BROKEN);
	ck_assert_ptr_nonnull(strstr(op->err_msg, "client_encoding"));
	ck_assert_uint_eq(op->n_notices, 0); /* dropped with the rest */
	dbop_free(op);

	op = op_new(&f, OP_RESET);
	ck_assert_int_eq(dbdiag_utf8_kept(&f.c, op), 0);
	ck_assert_int_eq(op->err, 0);
	dbop_free(op);

	ck_assert_int_eq(dbdiag_utf8_kept(&f.c, NULL), 0);
	fixture_done(&f);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {the_first_error_stays_with_its_text,
				error_fields_fill_the_detail,
				notices_go_with_queries_and_fetches_only,
				notices_past_the_bound_are_counted,
				notice_text_past_the_byte_bound_is_counted,
				encoding_not_utf8_breaks_the_op,
				NULL};
	return th_suite("dbdiag", "dbdiag", 30, tests);
}

TH_MAIN(suite)
