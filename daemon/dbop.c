/* dbop - one database operation's lifetime and its reply; see dbop.h. */
#include "dbop.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		free(dr->rows);
		free(dr->columns); /* one block with the column structs */
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
}

void dbop_free(dbop *op)
{
	dbop_clear(op);
	free(op->results);
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

void dbop_fail_detail(dbop *op, int code, const char *sqlstate, const char *detail,
		      const char *hint, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* libpq messages end in a newline; the wire message does not. */
	size_t n = strlen(text);
	while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
		text[--n] = 0;
	/* Text from libpq and servers reaches the client as clean UTF-8. */
	char clean[1024];
	dbpolicy_clean(text, clean, sizeof(clean));
	memcpy(text, clean, strlen(clean) + 1);
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
	if (op->err) {
		dbop_fail_detail(op, op->err, op->err_state, op->err_detail, op->err_hint, "%s",
				 op->err_msg ? op->err_msg : "database error");
		return;
	}
	if (op->too_large) {
		dbop_fail(op, PORTER_E_TOO_LARGE,
			  "result larger than the frame limit; stream it (chunk_rows)");
		return;
	}
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__DbQueryReply qr = PORTER__V1__DB_QUERY_REPLY__INIT;
	qr.results = op->results;
	qr.n_results = op->n_results;
	qr.stream = more ? stream : 0;
	resp.more = more;
	resp.body_case = PORTER__V1__RESPONSE__BODY_DB_QUERY;
	resp.db_query = &qr;
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
