/* dbdiag - an error's fields and the notices of an op; see dbdiag.h. */
#include "dbdiag.h"

#include <stdlib.h>
#include <string.h>

#include "dbop.h"
#include "dbpolicy.h"
#include "dbsql.h"
#include "log.h"
#include "porter_errors.h"

/* The text fields of ErrorDetail taken from a PGresult besides the
 * message, SQLSTATE, detail and hint (which dbop keeps). */
static const struct {
	int code;
	size_t off;
} text_fields[] = {
	{PG_DIAG_SEVERITY, offsetof(Porter__V1__ErrorDetail, severity)},
	{PG_DIAG_INTERNAL_QUERY, offsetof(Porter__V1__ErrorDetail, internal_query)},
	{PG_DIAG_CONTEXT, offsetof(Porter__V1__ErrorDetail, context)},
	{PG_DIAG_SCHEMA_NAME, offsetof(Porter__V1__ErrorDetail, schema_name)},
	{PG_DIAG_TABLE_NAME, offsetof(Porter__V1__ErrorDetail, table_name)},
	{PG_DIAG_COLUMN_NAME, offsetof(Porter__V1__ErrorDetail, column_name)},
	{PG_DIAG_DATATYPE_NAME, offsetof(Porter__V1__ErrorDetail, datatype_name)},
	{PG_DIAG_CONSTRAINT_NAME, offsetof(Porter__V1__ErrorDetail, constraint_name)},
};
#define N_TEXT (sizeof(text_fields) / sizeof(text_fields[0]))

static char **text_slot(Porter__V1__ErrorDetail *ed, size_t i)
{
	return (char **)((char *)ed + text_fields[i].off);
}

/* A cleaned copy of server text `s`, cut at DBDIAG_FIELD_MAX bytes (at a
 * character boundary); NULL for NULL or when out of memory. */
static char *field_dup(const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) * 4 + 1; /* one escape is four bytes at most */
	char *out = malloc(n < DBDIAG_FIELD_MAX + 1 ? n : DBDIAG_FIELD_MAX + 1);
	return out ? dbpolicy_clean(s, out, n < DBDIAG_FIELD_MAX + 1 ? n : DBDIAG_FIELD_MAX + 1)
		   : NULL;
}

static uint32_t position(const PGresult *res, int code)
{
	const char *v = PQresultErrorField(res, code);
	long p = v ? strtol(v, NULL, 10) : 0;
	return p > 0 && p < INT32_MAX ? (uint32_t)p : 0;
}

/* Fills the fields of `ed` (initialised) beyond SQLSTATE, detail and hint
 * from `res`; each string is malloc'd (freed by free_fields). */
static void take_fields(Porter__V1__ErrorDetail *ed, const PGresult *res)
{
	for (size_t i = 0; i < N_TEXT; i++) {
		char *v = field_dup(PQresultErrorField(res, text_fields[i].code));
		if (v)
			*text_slot(ed, i) = v;
	}
	ed->position = position(res, PG_DIAG_STATEMENT_POSITION);
	ed->internal_position = position(res, PG_DIAG_INTERNAL_POSITION);
}

/* Frees what take_fields (and notice_new) put in `ed`, and `ed`. */
static void free_fields(Porter__V1__ErrorDetail *ed)
{
	static const Porter__V1__ErrorDetail init = PORTER__V1__ERROR_DETAIL__INIT;
	for (size_t i = 0; i < N_TEXT; i++)
		if (*text_slot(ed, i) != *text_slot((Porter__V1__ErrorDetail *)&init, i))
			free(*text_slot(ed, i));
	if (ed->sqlstate != init.sqlstate)
		free(ed->sqlstate);
	if (ed->detail != init.detail)
		free(ed->detail);
	if (ed->hint != init.hint)
		free(ed->hint);
	free(ed);
}

void dbdiag_error(dbop *op, const PGresult *res)
{
	if (op->err)
		return;
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	char ours[160];
	if (state && !strcmp(state, "08P01") && dbsql_bind_message(msg, ours, sizeof(ours)))
		msg = ours;
	dbop_set_error(op, PORTER_E_DB, msg ? msg : PQresultErrorMessage(res), state,
		       PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL),
		       PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
	Porter__V1__ErrorDetail *ed = malloc(sizeof(*ed));
	if (!ed)
		return; /* the error stays, without its other fields */
	porter__v1__error_detail__init(ed);
	take_fields(ed, res);
	op->err_fields = ed;
}

void dbdiag_error_fields(const dbop *op, Porter__V1__ErrorDetail *ed)
{
	const Porter__V1__ErrorDetail *f = op->err_fields;
	if (!f)
		return;
	for (size_t i = 0; i < N_TEXT; i++)
		*text_slot(ed, i) = *text_slot((Porter__V1__ErrorDetail *)f, i);
	ed->position = f->position;
	ed->internal_position = f->internal_position;
}

/* The most text notice `res` can add to a reply: each field is cut at
 * DBDIAG_FIELD_MAX, so this bounds what is kept before anything is. */
static size_t notice_size(const PGresult *res)
{
	static const int codes[] = {PG_DIAG_MESSAGE_PRIMARY, PG_DIAG_SQLSTATE,
				    PG_DIAG_MESSAGE_DETAIL, PG_DIAG_MESSAGE_HINT};
	size_t n = 0;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]) + N_TEXT; i++) {
		int code = i < 4 ? codes[i] : text_fields[i - 4].code;
		const char *v = PQresultErrorField(res, code);
		size_t len = v ? strlen(v) : 0;
		n += len < DBDIAG_FIELD_MAX ? len : DBDIAG_FIELD_MAX;
	}
	return n;
}

/* A DbNotice of `res` with `before` results ahead of it; NULL when out of
 * memory. Freed by notice_free. */
static Porter__V1__DbNotice *notice_new(const PGresult *res, size_t before)
{
	Porter__V1__DbNotice *n = malloc(sizeof(*n));
	Porter__V1__ErrorDetail *ed = malloc(sizeof(*ed));
	char *msg = field_dup(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
	if (!n || !ed || !msg) {
		free(n);
		free(ed);
		free(msg);
		return NULL;
	}
	porter__v1__db_notice__init(n);
	porter__v1__error_detail__init(ed);
	take_fields(ed, res);
	char *v;
	if ((v = field_dup(PQresultErrorField(res, PG_DIAG_SQLSTATE))))
		ed->sqlstate = v;
	if ((v = field_dup(PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL))))
		ed->detail = v;
	if ((v = field_dup(PQresultErrorField(res, PG_DIAG_MESSAGE_HINT))))
		ed->hint = v;
	n->message = msg;
	n->fields = ed;
	n->before_result = (uint32_t)before;
	return n;
}

static void notice_free(Porter__V1__DbNotice *n)
{
	free_fields(n->fields);
	free(n->message);
	free(n);
}

void dbdiag_notice(void *arg, const PGresult *res)
{
	dbc *c = arg;
	dbop *op = c->cur;
	if (!op || (op->kind != OP_QUERY && op->kind != OP_FETCH) || !res) {
		char text[512];
		const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
		log_debug("db: notice: %s", dbpolicy_clean(m, text, sizeof(text)));
		return;
	}
	size_t size = notice_size(res);
	if (op->n_notices >= DBDIAG_NOTICES_MAX || op->notice_bytes + size > DBDIAG_NOTICE_BYTES) {
		if (op->notices_dropped < UINT32_MAX)
			op->notices_dropped++;
		return;
	}
	if (!op->notices) {
		op->notices = malloc(DBDIAG_NOTICES_MAX * sizeof(*op->notices));
		if (!op->notices) {
			op->notices_dropped++;
			return;
		}
	}
	Porter__V1__DbNotice *n = notice_new(res, op->n_results);
	if (!n) {
		op->notices_dropped++;
		return;
	}
	op->notices[op->n_notices++] = n;
	op->notice_bytes += size;
}

void dbdiag_clear(dbop *op)
{
	if (op->err_fields)
		free_fields(op->err_fields);
	op->err_fields = NULL;
	for (size_t i = 0; i < op->n_notices; i++)
		notice_free(op->notices[i]);
	free(op->notices);
	op->notices = NULL;
	op->n_notices = op->notice_bytes = 0;
	op->notices_dropped = 0;
}

int dbdiag_utf8_kept(dbc *c, dbop *op)
{
	const char *enc = pg_encoding_to_char(PQclientEncoding(c->pg));
	if (enc && !strcmp(enc, "UTF8"))
		return 1;
	if (op && op->kind != OP_RESET) {
		/* What it gathered is in the new encoding, or was before it: a
		 * client cannot tell which, so none of it goes out. */
		dbop_clear(op);
		dbop_set_error(op, PORTER_E_DB_BROKEN,
			       "a statement changed client_encoding: porterd hands on UTF-8 only, "
			       "so the connection is closed",
			       NULL, NULL, NULL);
	}
	return 0;
}
