/* dbpipe - pipelined pooled queries; see dbpipe.h. */
#include "dbpipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dalloc.h"
#include "dbconn.h"
#include "dbdiag.h"
#include "dbop.h"
#include "dbpool.h"
#include "dbquery.h"
#include "dbresult.h"
#include "log.h"
#include "porter_errors.h"

/* Pipelined queries sent on one connection within one loop turn share one
 * sync point (a segment), up to this many: one write and one server-side
 * commit for all of them instead of one each. Their replies wait for the
 * segment's sync; if any query of a segment fails, the segment is rolled
 * back as a whole and each of its queries is run again alone, so a
 * query's outcome never depends on its neighbours. */
#define SEG_MAX 8

/*
 * A segment's queries are gathered in porterd and handed to libpq only
 * when the segment closes, all at once with their Sync. libpq flushes its
 * output buffer whenever it is asked to read (PQconsumeInput on a
 * non-blocking connection), so queries handed to it as they came went out
 * ahead of their Sync whenever the connection had results to read in the
 * same loop turn: one more write for porterd, and for the backend one more
 * read, and a wake-up for queries whose results it could not send before
 * the Sync came.
 */

int dbpipe_pipelinable(const dbop *op)
{
	const Porter__V1__DbQuery *q = op->kind == OP_QUERY && op->msg ? op->msg->db_query : NULL;
	if (!q || q->chunk_rows || !q->sql)
		return 0;
	const char *s = q->sql;
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '(')
		s++;
	static const char *const ok[] = {"select", "insert", "update", "delete", "values"};
	int match = 0;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]) && !match; i++) {
		size_t n = strlen(ok[i]);
		match = strncasecmp(s, ok[i], n) == 0 &&
			!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
			  (s[n] >= '0' && s[n] <= '9') || s[n] == '_');
	}
	if (!match)
		return 0;
	/* One statement: nothing but blanks after any semicolon. */
	const char *semi = strchr(s, ';');
	if (semi)
		for (const char *p = semi; *p; p++)
			if (*p != ';' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
				return 0;
	return 1;
}

/*
 * What a pooled connection forgets before it serves another client process
 * of its uid (pools never serve two uids): the role and session
 * authorization, settings (also those changed by set_config() inside a
 * SELECT), temp tables, sequence state, channels listened to, open
 * cursors and session-level advisory locks. RESET ALL leaves the role
 * alone, and nothing else stopped a LISTEN made inside a function: the
 * next process's queries ran as the previous one's role and heard its
 * channels. Sent ahead of that process's first query in the same
 * pipeline, so it costs no round trip, but in a segment of its own: in the
 * query's segment a failure of that query (or of any other of the
 * segment) rolled the reset back with it, and the process ran on with the
 * previous one's settings. Unlike DISCARD ALL it keeps the prepared
 * statements porterd made.
 */
static const char *const reset_leads[] = {"SET SESSION AUTHORIZATION DEFAULT",
					  "RESET ALL",
					  "DISCARD TEMP",
					  "DISCARD SEQUENCES",
					  "UNLISTEN *",
					  "CLOSE ALL",
					  "SELECT pg_advisory_unlock_all()"};
#define N_RESET_LEADS ((int)(sizeof(reset_leads) / sizeof(reset_leads[0])))

static int send_reset_leads(dbc *c)
{
	for (int i = 0; i < N_RESET_LEADS; i++)
		if (!PQsendQueryParams(c->pg, reset_leads[i], 0, NULL, NULL, NULL, NULL, 0))
			return 0;
	return 1;
}

static int close_segment(dbc *c);

/* Queues the reset (reset_leads) as an entry without an op, in a segment
 * of its own, on `c` (in pipeline mode). Its first statements are leads,
 * the last its own. 0, or -1 when out of memory or the connection broke
 * (then it is broken). */
static int send_reset(dbc *c)
{
	pent *r = dcalloc(1, sizeof(*r));
	if (!r) {
		dbconn_broken(c, "out of memory");
		return -1;
	}
	if (close_segment(c) < 0) {
		free(r);
		return -1;
	}
	r->reset = 1;
	r->lead = N_RESET_LEADS - 1;
	list_push_back(&c->pipe, &r->link);
	c->npipe++;
	if (!send_reset_leads(c)) {
		dbconn_broken(c, "could not send a reset");
		return -1;
	}
	c->open_n = 1;
	return close_segment(c);
}

/* Removes `name` from the server, ahead of the next query in the pipeline.
 * 1 on success. */
static int send_deallocate(dbc *c, const char *name)
{
	char sql[16 + DBSTMT_NAME];
	snprintf(sql, sizeof(sql), "DEALLOCATE %s", name);
	return PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0);
}

/*
 * Chooses how `e`'s query runs: as a statement already prepared on `c`,
 * as one prepared now (possibly evicting the least recently used, whose
 * name lands in `evicted`), or unnamed. A statement whose Parse is still
 * in flight is not used: if the server refused it, the queries behind it
 * would fail too.
 */
static void pick_stmt(dbc *c, dbop *op, pent *e, char evicted[DBSTMT_NAME])
{
	const Porter__V1__DbQuery *q = op->msg->db_query;
	evicted[0] = 0;
	if (!c->stmts.cap || op->no_cache)
		return;
	uint32_t fixed[16], *types = fixed;
	if (q->n_params > 16 && !(types = malloc(q->n_params * sizeof(*types))))
		return;
	for (size_t i = 0; i < q->n_params; i++)
		types[i] = q->params[i]->type_oid;
	dbstmt *st = dbstmt_find(&c->stmts, q->sql, types, q->n_params);
	if (st && st->state == DBSTMT_READY) {
		memcpy(e->stmt, st->name, DBSTMT_NAME);
	} else if (!st) {
		st = dbstmt_add(&c->stmts, q->sql, types, q->n_params, evicted);
		if (st) {
			memcpy(e->stmt, st->name, DBSTMT_NAME);
			e->prep = 1;
			e->lead = 1 + (evicted[0] != 0);
		}
	}
	if (types != fixed)
		free(types);
}

/* Hands entry `e`'s query to libpq (after a DEALLOCATE of `stale` when
 * that is not ""), as a statement prepared on `c` when it can. 1 on
 * success; on failure part of it may be in libpq's buffer. */
static int send_query(dbc *c, pent *e, const char *stale)
{
	dbop *op = e->op;
	char evicted[DBSTMT_NAME];
	pick_stmt(c, op, e, evicted);
	if (stale[0])
		e->lead++;
	return (!stale[0] || send_deallocate(c, stale)) &&
	       (!evicted[0] || send_deallocate(c, evicted)) &&
	       dbquery_send_params(c, op, op->msg->db_query, op->msg->db_query->sql,
				   e->stmt[0] ? e->stmt : NULL, e->prep);
}

/* Hands the gathered queries of `c` to libpq, in pipeline order (they are
 * the pipeline's last entries). 0, or -1 (c->send_failed set) when libpq
 * refused one: the connection must then be given up. */
static int send_gathered(dbc *c)
{
	if (c->send_failed)
		return -1;
	for (list *pos = c->pipe.next; pos != &c->pipe; pos = pos->next) {
		pent *e = list_entry(pos, pent, link);
		if (!e->unsent)
			continue;
		e->unsent = 0;
		/* A cancel may be on its way to the query ahead. */
		e->exposed |= c->cancelling > 0;
		/* Never without its op: dbpipe_materialize runs before an op
		 * leaves its entry. */
		if (!e->op || !send_query(c, e, "")) {
			c->send_failed = 1;
			return -1;
		}
	}
	return 0;
}

/* Ends the segment open on `c` with a Sync and sends it. 0, or -1 when
 * the connection broke. */
static int close_segment(dbc *c)
{
	if (!c->open_n)
		return 0;
	list_remove(&c->open_link);
	c->open_n = 0;
	int rc = send_gathered(c) == 0 && PQpipelineSync(c->pg) ? PQflush(c->pg) : -1;
	if (rc < 0) {
		dbconn_broken(c, "could not send a pipelined query");
		return -1;
	}
	c->flushing = rc == 1;
	dbconn_update_poll(c);
	return 0;
}

/* The segment open on `c` is closed at the end of this loop turn. */
static void close_due(dbc *c)
{
	if (list_empty(&c->open_link))
		list_push_back(&c->dw->open, &c->open_link);
}

void dbpipe_materialize(dbc *c)
{
	/* A failure is reported when the segment closes, at the end of this
	 * loop turn (c->send_failed): breaking the connection here would
	 * answer the op the caller is about to answer itself. */
	if (c->open_n && send_gathered(c) < 0)
		close_due(c);
}

void dbpipe_seg_check(uv_check_t *h)
{
	db_worker *dw = h->data;
	while (!list_empty(&dw->open))
		close_segment(list_entry(dw->open.next, dbc, open_link));
}

void dbpipe_send(dbc *c, dbop *op, const char *stale, int alone)
{
	pent *e = dcalloc(1, sizeof(*e));
	if (!e) {
		dbop_fail(op, PORTER_E_NOMEM, "out of memory");
		return;
	}
	int idle = c->state == DBC_READY;
	if (!idle)
		log_debug("db: query sent ahead behind %u in a pipeline", c->npipe);
	if (!c->pipelined) {
		if (!PQenterPipelineMode(c->pg)) {
			free(e);
			dbop_fail(op, PORTER_E_DB, "cannot enter pipeline mode");
			return;
		}
		c->pipelined = 1;
	}
	if ((alone && close_segment(c) < 0) || (dbpool_other_process(c, op) && send_reset(c) < 0)) {
		free(e);
		dbop_fail(op, PORTER_E_DB_BROKEN, "database connection lost");
		return;
	}
	e->op = op;
	e->exposed = c->cancelling > 0;
	op->pent = e;
	op->c = c;
	list_push_back(&c->pipe, &e->link);
	c->npipe++;
	if (idle) {
		c->cur = op;
		c->state = DBC_QUERY;
		c->flushing = 0;
		c->head_since = db_now_ms(c->dw);
		dbconn_arm_timer(c, op->deadline);
	}
	c->last_used = db_now_ms(c->dw);
	c->last_inst = op->inst;
	c->has_last = 1;
	c->open_n++;
	if (!alone) {
		/* Gathered: handed to libpq with the segment's Sync, at the
		 * end of this loop turn. */
		e->unsent = 1;
		if (c->open_n >= SEG_MAX) {
			close_segment(c);
			return;
		}
		close_due(c);
		dbconn_update_poll(c);
		return;
	}
	if (!send_query(c, e, stale)) {
		/* Half a query in the pipeline cannot be taken back. */
		if (c->cur != op && !op->err)
			dbop_set_error(op, PORTER_E_DB_BROKEN, PQerrorMessage(c->pg), NULL, NULL,
				       NULL);
		dbconn_broken(c, "could not send a pipelined query");
		return;
	}
	if (close_segment(c) < 0)
		return;
	if (idle)
		dbquery_pump(c);
}

/* The pipeline's first entry (there is one) becomes the head: its op is
 * the one running on the server, timed by its own deadline. */
static void pipe_next_head(dbc *c)
{
	pent *h = list_entry(c->pipe.next, pent, link);
	c->cur = h->op;
	c->head_since = db_now_ms(c->dw);
	dbconn_arm_timer(c, h->op ? h->op->deadline : db_now_ms(c->dw) + DRAIN_MS);
}

/*
 * A segment got its sync: every held entry is answered, or sent again
 * alone when its statement went stale, when a cancel meant for another
 * query hit it, or when another query of its segment failed (the server
 * rolled the whole segment back, so nothing of it happened). Then the
 * next segment's head runs.
 */
static void seg_done(dbc *c)
{
	int bad = c->seg_bad;
	c->seg_bad = 0;
	list done;
	list_init(&done);
	size_t n = 0;
	while (!list_empty(&c->held)) {
		list *pos = c->held.next;
		list_remove(pos);
		list_push_back(&done, pos);
		n++;
	}
	dbconn_disarm_timer(c);
	c->cur = NULL;
	/* The server reports a changed client_encoding at the sync: every
	 * query of the segment fails then, and the connection goes. */
	int utf8 = dbdiag_utf8_kept(c, NULL);
	int reset_failed = 0;
	while (!list_empty(&done)) {
		pent *e = list_entry(done.next, pent, link);
		list_remove(&e->link);
		dbop *op = e->op;
		int retry = e->retry || (bad && n > 1);
		reset_failed |= e->reset && bad;
		char stale[DBSTMT_NAME];
		memcpy(stale, e->stale, DBSTMT_NAME);
		free(e);
		if (!op)
			continue;
		op->pent = NULL;
		if (!utf8) {
			dbdiag_utf8_kept(c, op);
			dbop_finish(op, 0, 0);
			continue;
		}
		if (retry && op->retries >= 3) {
			/* Whatever it gathered did not happen. */
			dbop_clear(op);
			dbop_set_error(
				op, PORTER_E_DB,
				"query rolled back with its pipeline group too often; not retried",
				NULL, NULL, NULL);
			retry = 0;
		}
		if (!retry) {
			dbop_finish(op, 0, 0);
			continue;
		}
		op->retries++;
		if (stale[0])
			op->no_cache = 1;
		dbop_clear(op);
		if (list_empty(&c->pipe))
			c->state = DBC_READY; /* sent as on an idle connection */
		dbpipe_send(c, op, stale, 1);
		if (c->state != DBC_QUERY) {
			/* Broken: the rest fail with it. */
			while (!list_empty(&done)) {
				e = list_entry(done.next, pent, link);
				list_remove(&e->link);
				if (e->op) {
					e->op->pent = NULL;
					dbop_fail(e->op, PORTER_E_DB_BROKEN,
						  "database connection lost");
				}
				free(e);
			}
			return;
		}
	}
	if (!utf8) {
		dbconn_broken(c, "a statement changed client_encoding");
		return;
	}
	if (reset_failed) {
		/* Only a cancel meant for the query ahead of it can stop it:
		 * the next process's queries, already sent, must not run on
		 * with the previous one's settings. None of their results has
		 * been delivered yet; they fail with the connection. */
		dbconn_broken(c, "could not reset a pooled connection between client processes");
		return;
	}
	if (list_empty(&c->pipe)) {
		dbquery_after(c);
		return;
	}
	pipe_next_head(c);
	/* Room in the pipeline: take a fast waiter of the pool along. */
	dbop *w =
		c->pool && c->npipe < PIPE_DEPTH ? dbpool_take_waiter(c->pool, DBPOOL_FAST) : NULL;
	if (w)
		dbpipe_send(c, w, "", 0);
}

/* The head's results are all in: it waits in `held` for its segment's
 * sync, and the next entry becomes the head. */
static void pipe_hold(dbc *c, pent *e)
{
	dbpool_note(c, e->op, c->head_since);
	list_remove(&e->link);
	list_push_back(&c->held, &e->link);
	c->npipe--;
	dbconn_disarm_timer(c);
	c->cur = NULL;
	if (list_empty(&c->pipe)) {
		/* Only the sync is missing; it follows at once (or at the end
		 * of this loop turn, for a segment still open). */
		dbconn_arm_timer(c, db_now_ms(c->dw) + DRAIN_MS);
		return;
	}
	pipe_next_head(c);
}

/* A result of the statements sent ahead of `e`'s query. */
static void lead_result(dbc *c, pent *e, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	if (e->reset) {
		PQclear(res); /* a failure marked the segment bad: seg_done */
		return;
	}
	if (e->prep && e->lead == 1) {
		dbstmt *s = dbstmt_named(&c->stmts, e->stmt);
		if (s && st == PGRES_COMMAND_OK)
			s->state = DBSTMT_READY;
		else if (s)
			dbstmt_drop(&c->stmts, s);
	}
	if (st == PGRES_FATAL_ERROR && !e->retry)
		dbresult_take(c, res); /* the query's error: a Parse failed */
	else
		PQclear(res); /* or it runs again: nothing of it happened */
}

/*
 * Whether `res` says the prepared statement `e` executed cannot be used
 * any more: its result type changed under it (a column added to a table
 * it reads), or it is gone. Either fails before the query runs.
 */
static int is_state(PGresult *res, const char *sqlstate)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	return PQresultStatus(res) == PGRES_FATAL_ERROR && state && !strcmp(state, sqlstate);
}

static int stale_stmt(const pent *e, PGresult *res)
{
	return e->stmt[0] && (is_state(res, "0A000") || is_state(res, "26000"));
}

void dbpipe_pump(dbc *c)
{
	while (c->state == DBC_QUERY && (!list_empty(&c->pipe) || !list_empty(&c->held))) {
		if (PQisBusy(c->pg))
			break;
		pent *e = list_empty(&c->pipe) ? NULL : list_entry(c->pipe.next, pent, link);
		/* A gathered head is not on the wire yet: nothing of it can
		 * come, only the Sync of the entries held (a segment ahead
		 * whose results are all in). */
		if (e && e->unsent && list_empty(&c->held))
			break;
		PGresult *res = PQgetResult(c->pg);
		if (!res && e && e->unsent)
			break;
		if (!res && e && e->lead) {
			e->lead--;
			continue;
		}
		if (!res) {
			/* The end of the head's results. With nothing more sent
			 * (a segment not yet synced) libpq answers NULL again:
			 * then there is no head left to end. */
			if (!e)
				break;
			pipe_hold(c, e);
			continue;
		}
		ExecStatusType st = PQresultStatus(res);
		if (st == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			seg_done(c);
			continue;
		}
		if (!e) {
			PQclear(res); /* cannot happen: every result has its entry */
			continue;
		}
		if (st == PGRES_FATAL_ERROR || st == PGRES_PIPELINE_ABORTED)
			c->seg_bad = 1;
		if (e->exposed && is_state(res, "57014") && !e->retry && e->op && !e->op->err &&
		    e->op->retries < 2) {
			/* Hit by the cancel of the query ahead of it, in the
			 * query itself or in a statement sent ahead of it (its
			 * Parse, a reset); its segment was rolled back. */
			e->retry = 1;
			log_debug("db: a cancel meant for another query stopped %s; it runs again",
				  e->lead ? "a statement sent ahead of a query" : "a query");
			if (!e->lead) {
				PQclear(res);
				continue;
			}
		}
		if (e->lead || e->reset) {
			lead_result(c, e, res);
			continue;
		}
		if (stale_stmt(e, res) && !e->retry && !(e->op && e->op->err)) {
			dbstmt *s = dbstmt_named(&c->stmts, e->stmt);
			if (s) {
				memcpy(e->stale, e->stmt, DBSTMT_NAME);
				dbstmt_drop(&c->stmts, s);
			}
			e->retry = 1;
			PQclear(res);
			continue;
		}
		if (st == PGRES_PIPELINE_ABORTED) {
			PQclear(res);
			if (e->op)
				dbop_set_error(e->op, PORTER_E_DB,
					       "query skipped: the pipeline was aborted", NULL,
					       NULL, NULL);
			continue;
		}
		dbresult_take(c, res);
	}
}

void dbpipe_clear(dbc *c, int code, const char *why)
{
	list *lists[] = {&c->held, &c->pipe};
	for (size_t i = 0; i < 2; i++) {
		list *pos, *tmp;
		list_for_each_safe(pos, tmp, lists[i]) {
			pent *e = list_entry(pos, pent, link);
			list_remove(&e->link);
			if (e->op) {
				e->op->pent = NULL;
				if (e->op != c->cur)
					dbop_fail(e->op, code, "%s", why);
			}
			free(e);
		}
	}
	c->npipe = 0;
	c->seg_bad = 0;
	c->send_failed = 0;
	list_remove(&c->open_link);
	c->open_n = 0;
}
