/* dbquery - queries outside a pipeline; see dbquery.h. */
#include "dbquery.h"

#include <stdlib.h>
#include <string.h>

#include "dbconn.h"
#include "dbdiag.h"
#include "dbdrain.h"
#include "dbop.h"
#include "dbpipe.h"
#include "dbpool.h"
#include "dbresult.h"
#include "fwd.h"
#include "porter_errors.h"

/* The size bound of one streamed chunk (the rows bound is the client's
 * chunk_rows). */
#define CHUNK_BYTES (4u << 20)

void dbquery_after(dbc *c)
{
	c->state = DBC_READY;
	c->last_used = db_now_ms(c->dw);
	dbconn_disarm_timer(c);
	if (c->cancelling) {
		/* A PQcancel still on its way would hit the next query;
		 * cancel_done resumes. */
		c->after_cancel = 1;
		return;
	}
	if (PQstatus(c->pg) != CONNECTION_OK) {
		dbconn_broken(c, "connection lost");
		return;
	}
	if (c->pool) {
		dbpool_release(c);
		return;
	}
	if (!list_empty(&c->queue)) {
		dbop *next = list_entry(c->queue.next, dbop, link);
		list_remove(&next->link);
		next->queued = 0;
		dbquery_start(c, next);
	}
}

static void query_done(dbc *c)
{
	dbop *op = c->cur;
	c->cur = NULL;
	if (op) {
		if (op->kind == OP_RESET) {
			int bad = op->err;
			dbop_free(op);
			if (bad) {
				dbconn_broken(c, "reset failed");
				return;
			}
			c->needs_reset = 0;
			c->has_last = 0;
			/* DISCARD ALL dropped every prepared statement. */
			dbstmt_clear(&c->stmts);
		} else {
			dbconn_stream_end(c);
			dbpool_note(c, op, op->sent_ms);
			int utf8 = dbdiag_utf8_kept(c, op);
			dbop_finish(op, 0, 0);
			if (!utf8) {
				dbconn_broken(c, "a statement changed client_encoding");
				return;
			}
		}
	}
	dbquery_after(c);
}

/* A streamed chunk is full: send it and wait for the next DbFetch. */
static void stream_pause(dbc *c)
{
	dbop *op = c->cur;
	c->cur = NULL;
	c->state = DBC_PAUSED;
	c->last_used = db_now_ms(c->dw);
	dbconn_disarm_timer(c);
	if (op->n_results == 0)
		dbresult_empty(op);
	dbop_finish(op, 1, c->stream_id);
}

static int chunk_full(dbc *c)
{
	dbop *op = c->cur;
	if (!op || !op->chunk_rows || op->err || op->n_results == 0)
		return 0;
	/* The byte bound is the frame's too: a chunk of 4 MiB under a smaller
	 * max-frame would be refused whole, though each row fits. */
	size_t cap = dbresult_frame_cap(c->dw->w->cfg->max_frame);
	return op->results[0]->n_rows >= (size_t)op->chunk_rows ||
	       op->bytes >= (cap < CHUNK_BYTES ? cap : CHUNK_BYTES);
}

/* Takes every result libpq has complete, without blocking. */
void dbquery_pump(dbc *c)
{
	if (c->pipelined) {
		dbpipe_pump(c);
		dbconn_update_poll(c);
		return;
	}
	if (c->state == DBC_QUERY && !c->cur) {
		/* An abandoned query: its results go in bounded turns. */
		dbdrain_pump(c);
		return;
	}
	while (c->state == DBC_QUERY) {
		if (chunk_full(c)) {
			stream_pause(c);
			break;
		}
		if (PQisBusy(c->pg))
			break;
		PGresult *res = PQgetResult(c->pg);
		if (!res) {
			query_done(c);
			break;
		}
		dbresult_take(c, res);
	}
	dbconn_update_poll(c);
}

/* Queries with up to this many parameters pass them to libpq from arrays
 * on the stack; a query costs no allocation for its parameters but the one
 * block its text values are copied into. */
#define PARAMS_ON_STACK 16

int dbquery_send_params(dbc *c, dbop *op, const Porter__V1__DbQuery *q, const char *sql,
			const char *stmt, int prepare)
{
	size_t n = q->n_params;
	const char *vals_s[PARAMS_ON_STACK];
	int lens_s[PARAMS_ON_STACK], fmts_s[PARAMS_ON_STACK];
	Oid types_s[PARAMS_ON_STACK];
	const char **vals = vals_s;
	int *lens = lens_s, *fmts = fmts_s;
	Oid *types = types_s;
	char *text = NULL; /* every text value, each followed by a NUL */
	int ok = 1;
	if (n > PARAMS_ON_STACK) {
		vals = calloc(n, sizeof(*vals));
		lens = calloc(n, sizeof(*lens));
		fmts = calloc(n, sizeof(*fmts));
		types = calloc(n, sizeof(*types));
		ok = vals && lens && fmts && types;
	}
	/* Text parameters are read up to a NUL by libpq. */
	size_t text_len = 0;
	for (size_t i = 0; ok && i < n; i++) {
		const Porter__V1__DbParam *pp = q->params[i];
		if (pp->value.len > INT32_MAX)
			ok = 0;
		else if (!pp->is_null && !pp->binary)
			text_len += pp->value.len + 1;
	}
	if (ok && text_len && !(text = malloc(text_len)))
		ok = 0;
	char *at = text;
	for (size_t i = 0; ok && i < n; i++) {
		const Porter__V1__DbParam *pp = q->params[i];
		types[i] = pp->type_oid;
		vals[i] = NULL;
		lens[i] = 0;
		fmts[i] = 0;
		if (pp->is_null)
			continue;
		lens[i] = (int)pp->value.len;
		fmts[i] = pp->binary ? 1 : 0;
		if (pp->binary) {
			vals[i] = pp->value.len ? (const char *)pp->value.data : "";
		} else {
			if (pp->value.len)
				memcpy(at, pp->value.data, pp->value.len);
			at[pp->value.len] = 0;
			vals[i] = at;
			at += pp->value.len + 1;
		}
	}
	if (ok && !stmt)
		ok = PQsendQueryParams(c->pg, sql, (int)n, types, vals, lens, fmts, 0);
	else if (ok)
		ok = (!prepare || PQsendPrepare(c->pg, stmt, sql, (int)n, types)) &&
		     PQsendQueryPrepared(c->pg, stmt, (int)n, vals, lens, fmts, 0);
	else
		dbop_set_error(op, PORTER_E_NOMEM, "out of memory", NULL, NULL, NULL);
	free(text);
	if (n > PARAMS_ON_STACK) {
		free(vals);
		free(lens);
		free(fmts);
		free(types);
	}
	return ok;
}

void dbquery_start(dbc *c, dbop *op)
{
	if (c->pool && op->fast && !c->single_row_sticky) {
		dbpipe_send(c, op, "", 0);
		return;
	}
	if (c->pool && dbpool_reset_first(c, op))
		return;
	uint64_t stream = 0;
	if (op->chunk_rows && fwd_new_id(c->dw->w->index, &stream) < 0) {
		/* Nothing was sent: the connection serves what waits next. */
		dbop_fail(op, PORTER_E_INTERNAL, "no randomness for a stream id");
		dbquery_after(c);
		return;
	}
	Porter__V1__DbQuery *q = op->msg ? op->msg->db_query : NULL;
	const char *sql = op->kind == OP_RESET ? "DISCARD ALL" : q->sql;
	int ok;
	c->cur = op;
	op->c = c;
	c->state = DBC_QUERY;
	c->flushing = 0;
	c->last_used = db_now_ms(c->dw);
	op->sent_ms = c->last_used;
	if (c->pipelined) {
		/* Several statements, streams and resets need the simple
		 * protocol; the pipeline is empty here. */
		if (PQexitPipelineMode(c->pg) != 1) {
			dbconn_broken(c, "cannot leave pipeline mode");
			return;
		}
		c->pipelined = 0;
	}
	if (q && (q->n_params || q->chunk_rows))
		ok = dbquery_send_params(c, op, q, sql, NULL, 0);
	else
		ok = PQsendQuery(c->pg, sql);
	if (!ok) {
		if (PQstatus(c->pg) != CONNECTION_OK) {
			dbconn_broken(c, "connection lost");
			return;
		}
		if (!op->err)
			dbop_set_error(op, PORTER_E_DB, PQerrorMessage(c->pg), NULL, NULL, NULL);
		c->cur = NULL;
		if (op->kind == OP_RESET)
			dbop_free(op);
		else
			dbop_finish(op, 0, 0);
		dbquery_after(c);
		return;
	}
	c->single_row_sticky = 0; /* this send cleared it */
	if (op->kind == OP_QUERY) {
		c->last_inst = op->inst;
		c->has_last = 1;
	}
	if (op->chunk_rows) {
		PQsetSingleRowMode(c->pg);
		c->single_row_sticky = 1;
		dbconn_stream_begin(c, stream, op);
	}
	int rc = PQflush(c->pg);
	if (rc < 0) {
		dbconn_broken(c, "connection lost");
		return;
	}
	c->flushing = rc == 1;
	dbconn_arm_timer(c, op->deadline);
	dbquery_pump(c);
}
