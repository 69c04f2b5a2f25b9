/* dbop - one database operation's lifetime and its reply; see dbop.h. */
#include "dbop.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbdiag.h"
#include "dbpolicy.h"
#include "porter_errors.h"

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* A copy of server text `s` (NULL gives NULL) made safe to pass on: see
 * dbpolicy_clean. */
static char *clean_dup(const char *s)
{
	if (!s)
		return NULL;
	size_t cap = strlen(s) * 4 + 1; /* one escape is four bytes at most */
	char *out = malloc(cap);
	return out ? dbpolicy_clean(s, out, cap) : NULL;
}

void dbop_clear(dbop *op)
{
	for (size_t i = 0; i < op->n_results; i++) {
		Porter__V1__DbResult *dr = op->results[i];
		for (size_t j = 0; j < dr->n_rows; j++)
			free(dr->rows[j]);
		if (dr->rows != op->rows0)
			free(dr->rows);
		if (dr->columns != op->colp0)
			free(dr->columns); /* one block with the column structs */
		if (dr != &op->result0)
			free(dr);
	}
	op->n_results = 0;
	for (size_t i = 0; i < op->n_pgs; i++)
		PQclear(op->pgs[i]);
	op->n_pgs = 0;
	op->bytes = 0;
	op->too_large = 0;
	op->err = 0;
	free(op->err_msg);
	free(op->err_state);
	free(op->err_detail);
	free(op->err_hint);
	op->err_msg = op->err_state = op->err_detail = op->err_hint = NULL;
	dbdiag_clear(op);
}

void dbop_free(dbop *op)
{
	dbop_clear(op);
	if (op->results != op->results0)
		free(op->results);
	if (op->pgs != op->pgs0)
		free(op->pgs);
	free(op);
}

void dbop_reply(dbop *op, Porter__V1__Response *resp)
{
	if (op->queued) {
		list_remove(&op->link);
		op->queued = 0;
	}
	if (op->r) {
		op->r->cancel = NULL;
		op->r->op = NULL;
		req_reply(op->r, resp);
	}
	dbop_free(op);
}

/* An error message for the wire: `text` (MSG_MAX bytes) from the format,
 * without libpq's trailing newline, cleaned to UTF-8. Returns `text`. */
#define MSG_MAX 1024
static char *message(char *text, const char *fmt, va_list ap)
{
	char raw[MSG_MAX];
	vsnprintf(raw, sizeof(raw), fmt, ap);
	/* libpq messages end in a newline; the wire message does not. */
	size_t n = strlen(raw);
	while (n && (raw[n - 1] == '\n' || raw[n - 1] == ' '))
		raw[--n] = 0;
	/* Text from libpq and servers reaches the client as clean UTF-8. */
	return dbpolicy_clean(raw, text, MSG_MAX);
}

static char *message_f(char *text, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *message_f(char *text, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	message(text, fmt, ap);
	va_end(ap);
	return text;
}

void dbop_fail_detail(dbop *op, int code, const char *sqlstate, const char *detail,
		      const char *hint, const char *fmt, ...)
{
	char text[MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	message(text, fmt, ap);
	va_end(ap);
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__ErrorDetail ed = PORTER__V1__ERROR_DETAIL__INIT;
	resp.status = code;
	resp.message = text;
	if (sqlstate || detail || hint) {
		ed.sqlstate = (char *)(sqlstate ? sqlstate : "");
		ed.detail = (char *)(detail ? detail : "");
		ed.hint = (char *)(hint ? hint : "");
		resp.error = &ed;
	}
	dbop_reply(op, &resp);
}

void dbop_finish(dbop *op, int more, uint64_t stream)
{
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__DbQueryReply qr = PORTER__V1__DB_QUERY_REPLY__INIT;
	Porter__V1__ErrorDetail ed = PORTER__V1__ERROR_DETAIL__INIT;
	char text[MSG_MAX];
	int failed = op->err || op->too_large;
	if (op->err) {
		resp.status = op->err;
		resp.message = message_f(text, "%s", op->err_msg ? op->err_msg : "database error");
		if (op->err_state || op->err_detail || op->err_hint || op->err_fields) {
			dbdiag_error_fields(op, &ed);
			ed.sqlstate = op->err_state ? op->err_state : "";
			ed.detail = op->err_detail ? op->err_detail : "";
			ed.hint = op->err_hint ? op->err_hint : "";
			resp.error = &ed;
		}
	} else if (op->too_large) {
		resp.status = PORTER_E_TOO_LARGE;
		resp.message = message_f(
			text, "%s", "result larger than the frame limit; stream it (chunk_rows)");
	}
	/* A failure keeps the results of the statements before the one that
	 * failed (a multi-statement string: psql prints them too), but not a
	 * stream's rows of the failing statement itself, nor results the
	 * frame bound cut short. */
	if (!failed || (!op->chunk_rows && !op->too_large)) {
		qr.results = op->results;
		qr.n_results = op->n_results;
	}
	qr.notices = op->notices;
	qr.n_notices = op->n_notices;
	qr.notices_dropped = op->notices_dropped;
	if (!failed) {
		qr.stream = more ? stream : 0;
		resp.more = more;
	}
	if (!failed || qr.n_results || qr.n_notices || qr.notices_dropped) {
		resp.body_case = PORTER__V1__RESPONSE__BODY_DB_QUERY;
		resp.db_query = &qr;
	}
	dbop_reply(op, &resp);
}

void dbop_set_error(dbop *op, int code, const char *msg, const char *state, const char *detail,
		    const char *hint)
{
	if (op->err)
		return;
	op->err = code;
	op->err_msg = xstrdup(msg); /* cleaned by dbop_fail_detail */
	op->err_state = clean_dup(state);
	op->err_detail = clean_dup(detail);
	op->err_hint = clean_dup(hint);
}
