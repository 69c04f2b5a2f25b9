/* db - PostgreSQL calls of libporter; see the PostgreSQL section of porter.h. */
#include "porter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pbatch.h"
#include "pbg.h"
#include "pconn.h"

/* One statement's result, flattened: every value is copied into `buf`
 * followed by a NUL so getvalue can hand out C strings. */
typedef struct part {
	int ntuples, nfields;
	char **fnames; /* nfields strings */
	uint32_t *ftypes;
	char *buf;   /* all values, each NUL-terminated */
	size_t *off; /* ntuples * nfields offsets into buf */
	int *len;
	uint8_t *isnull;
	uint64_t affected;
	const char *tag;
} part;

/* The diagnostic fields a result keeps, in the order of diag_codes. */
enum {
	D_SEVERITY,
	D_SQLSTATE,
	D_MESSAGE,
	D_DETAIL,
	D_HINT,
	D_POSITION,
	D_INTERNAL_POSITION,
	D_INTERNAL_QUERY,
	D_CONTEXT,
	D_SCHEMA,
	D_TABLE,
	D_COLUMN,
	D_DATATYPE,
	D_CONSTRAINT,
	N_DIAG
};

static const int diag_codes[N_DIAG] = {
	PORTER_DB_DIAG_SEVERITY,          PORTER_DB_DIAG_SQLSTATE,
	PORTER_DB_DIAG_MESSAGE_PRIMARY,   PORTER_DB_DIAG_MESSAGE_DETAIL,
	PORTER_DB_DIAG_MESSAGE_HINT,      PORTER_DB_DIAG_STATEMENT_POSITION,
	PORTER_DB_DIAG_INTERNAL_POSITION, PORTER_DB_DIAG_INTERNAL_QUERY,
	PORTER_DB_DIAG_CONTEXT,           PORTER_DB_DIAG_SCHEMA_NAME,
	PORTER_DB_DIAG_TABLE_NAME,        PORTER_DB_DIAG_COLUMN_NAME,
	PORTER_DB_DIAG_DATATYPE_NAME,     PORTER_DB_DIAG_CONSTRAINT_NAME,
};

/* One set of diagnostic fields: every entry a string, "" when absent. */
typedef struct diag {
	const char *f[N_DIAG];
} diag;

typedef struct notice {
	diag d;
	size_t before; /* results complete when it arrived */
} notice;

struct porter_db_result {
	int status;
	diag err; /* message, sqlstate, detail, hint ... of a failure; all "" on success */
	part *parts;
	size_t nparts;
	size_t sel;
	notice *notices;
	size_t nnotices;
	uint64_t notices_dropped;
};

struct porter_db_cursor {
	uint64_t stream;         /* 0 once the stream ended */
	porter_db_result *first; /* the chunk that came with the query */
	int nfields;             /* the columns, kept for later chunks */
	char **fnames;
	uint32_t *ftypes;
	int done;
	uint64_t call_id; /* the open's id, used by reads that pass 0 */
	int64_t deadline; /* whole-stream deadline (monotonic ms); 0: none */
};

/*
 * A result is one allocation: the struct, its parts and every array and
 * string they point to are carved out of one block, sized by a first pass
 * over the reply (a query's result used to take two dozen mallocs, which
 * cost more than the rest of the call's user-space work).
 */
typedef struct carver {
	char *base; /* NULL while measuring */
	size_t off;
} carver;

static void *carve(carver *cv, size_t n)
{
	size_t at = (cv->off + sizeof(size_t) - 1) & ~(sizeof(size_t) - 1);
	cv->off = at + n;
	return cv->base ? cv->base + at : NULL;
}

static char *carve_str(carver *cv, const char *s)
{
	s = s ? s : "";
	size_t n = strlen(s) + 1;
	char *p = carve(cv, n);
	if (p)
		memcpy(p, s, n);
	return p;
}

/* Like carve_str, but an absent or empty string takes no room: it is the
 * one static "" (most diagnostic fields, all of them on success: 28 string
 * copies a query, measured and carved, were a tenth of libporter's work
 * for a SELECT 1). For text the caller only reads. */
static const char *carve_text(carver *cv, const char *s)
{
	return s && *s ? carve_str(cv, s) : "";
}

void porter_db_result_free(porter_db_result *res)
{
	free(res);
}

/* Carves part `p` for `dr`; columns from `cols`/`types` (n) when `dr` has
 * none. While measuring, `p` is a scratch part whose pointers stay NULL.
 * -1 when a row's width does not match the columns. */
static int part_carve(carver *cv, part *p, const Porter__V1__DbResult *dr, int n, char **cols,
		      const uint32_t *types)
{
	p->nfields = dr->n_columns ? (int)dr->n_columns : n;
	p->ntuples = (int)dr->n_rows;
	p->affected = dr->affected;
	p->tag = carve_text(cv, dr->command_tag);
	p->fnames = carve(cv, ((size_t)p->nfields + 1) * sizeof(char *));
	p->ftypes = carve(cv, ((size_t)p->nfields + 1) * sizeof(uint32_t));
	for (int i = 0; i < p->nfields; i++) {
		char *name = carve_str(cv, dr->n_columns ? dr->columns[i]->name : cols[i]);
		if (!cv->base)
			continue;
		p->fnames[i] = name;
		p->ftypes[i] = dr->n_columns ? dr->columns[i]->type_oid : types[i];
	}
	size_t cells = 0, total = 0;
	for (size_t r = 0; r < dr->n_rows; r++) {
		const Porter__V1__DbRow *row = dr->rows[r];
		if (row->n_values != (size_t)p->nfields)
			return -1;
		cells += row->n_values;
		for (size_t c = 0; c < row->n_values; c++)
			total += row->values[c].len + 1;
	}
	p->off = carve(cv, (cells + 1) * sizeof(size_t));
	p->len = carve(cv, (cells + 1) * sizeof(int));
	p->isnull = carve(cv, cells + 1);
	p->buf = carve(cv, total + 1);
	if (!cv->base)
		return 0;
	size_t at = 0;
	for (size_t r = 0; r < dr->n_rows; r++) {
		const Porter__V1__DbRow *row = dr->rows[r];
		for (size_t c = 0; c < row->n_values; c++) {
			size_t i = r * p->nfields + c;
			const ProtobufCBinaryData *v = &row->values[c];
			p->isnull[i] = row->nulls.len > c && row->nulls.data[c];
			p->off[i] = at;
			p->len[i] = (int)v->len;
			if (v->len)
				memcpy(p->buf + at, v->data, v->len);
			at += v->len;
			p->buf[at++] = 0;
		}
	}
	p->buf[at] = 0;
	return 0;
}

static const char *carve_u32(carver *cv, uint32_t v)
{
	char num[16] = "";
	if (v)
		snprintf(num, sizeof(num), "%u", v);
	return carve_text(cv, num);
}

/* Carves the fields of `e` (may be NULL: all "") and the primary message
 * `msg` into `d`. */
static void diag_carve(carver *cv, diag *d, const char *msg, const Porter__V1__ErrorDetail *e)
{
	static const Porter__V1__ErrorDetail none = PORTER__V1__ERROR_DETAIL__INIT;
	if (!e && !(msg && *msg)) {
		/* Success: nothing to carve. */
		for (int i = 0; i < N_DIAG; i++)
			d->f[i] = "";
		return;
	}
	if (!e)
		e = &none;
	d->f[D_SEVERITY] = carve_text(cv, e->severity);
	d->f[D_SQLSTATE] = carve_text(cv, e->sqlstate);
	d->f[D_MESSAGE] = carve_text(cv, msg);
	d->f[D_DETAIL] = carve_text(cv, e->detail);
	d->f[D_HINT] = carve_text(cv, e->hint);
	d->f[D_POSITION] = carve_u32(cv, e->position);
	d->f[D_INTERNAL_POSITION] = carve_u32(cv, e->internal_position);
	d->f[D_INTERNAL_QUERY] = carve_text(cv, e->internal_query);
	d->f[D_CONTEXT] = carve_text(cv, e->context);
	d->f[D_SCHEMA] = carve_text(cv, e->schema_name);
	d->f[D_TABLE] = carve_text(cv, e->table_name);
	d->f[D_COLUMN] = carve_text(cv, e->column_name);
	d->f[D_DATATYPE] = carve_text(cv, e->datatype_name);
	d->f[D_CONSTRAINT] = carve_text(cv, e->constraint_name);
}

/* Carves the whole result into `*res` (a scratch struct while measuring,
 * else the block's first bytes). -1 on a malformed reply. */
static int result_carve(carver *cv, porter_db_result *res, const Porter__V1__Response *resp, int n,
			char **cols, const uint32_t *types)
{
	carve(cv, sizeof(*res));
	memset(res, 0, sizeof(*res));
	res->status = resp->status;
	diag_carve(cv, &res->err, resp->status ? resp->message : "",
		   resp->status ? resp->error : NULL);
	/* A failed query's reply may carry results too: those of the
	 * statements before the one that failed, and the notices. */
	if (resp->body_case == PORTER__V1__RESPONSE__BODY_DB_QUERY) {
		const Porter__V1__DbQueryReply *qr = resp->db_query;
		res->parts = carve(cv, (qr->n_results + 1) * sizeof(part));
		res->nparts = qr->n_results;
		for (size_t i = 0; i < qr->n_results; i++) {
			part scratch_part;
			part *p = res->parts ? &res->parts[i] : &scratch_part;
			memset(p, 0, sizeof(*p));
			if (part_carve(cv, p, qr->results[i], n, cols, types) < 0)
				return -1;
		}
		res->sel = res->nparts ? res->nparts - 1 : 0;
		res->notices = carve(cv, (qr->n_notices + 1) * sizeof(notice));
		res->nnotices = qr->n_notices;
		for (size_t i = 0; i < qr->n_notices; i++) {
			notice scratch_notice;
			notice *nt = res->notices ? &res->notices[i] : &scratch_notice;
			const Porter__V1__DbNotice *dn = qr->notices[i];
			diag_carve(cv, &nt->d, dn->message, dn->fields);
			nt->before = dn->before_result < qr->n_results ? dn->before_result
								       : qr->n_results;
		}
		res->notices_dropped = qr->notices_dropped;
	}
	return 0;
}

/* Builds a result from a response (success or error). NULL on OOM or a
 * malformed reply. */
static porter_db_result *result_from(const Porter__V1__Response *resp, int n, char **cols,
				     const uint32_t *types)
{
	carver cv = {NULL, 0};
	porter_db_result measured;
	if (result_carve(&cv, &measured, resp, n, cols, types) < 0 || !(cv.base = malloc(cv.off)))
		return NULL;
	cv.off = 0;
	porter_db_result *res = (porter_db_result *)cv.base;
	result_carve(&cv, res, resp, n, cols, types);
	return res;
}

/* The daemon's deadline is set a little earlier than the wait here, so
 * that its timeout reply (with the query cancelled on the server) arrives
 * before this side gives up on the connection. */
static uint32_t daemon_timeout(int timeout_ms)
{
	int t = timeout_ms ? timeout_ms : PCONN_DEFAULT_TIMEOUT_MS;
	int margin = t / 10 < 250 ? t / 10 : 250;
	return (uint32_t)(t - margin > 0 ? t - margin : 1);
}

static int fill_params(Porter__V1__DbQuery *q, const porter_db_param *params, size_t n,
		       Porter__V1__DbParam **ptrs, Porter__V1__DbParam *pp)
{
	for (size_t i = 0; i < n; i++) {
		porter__v1__db_param__init(&pp[i]);
		if (!params[i].value) {
			pp[i].is_null = 1;
		} else {
			pp[i].value.data = (uint8_t *)params[i].value;
			pp[i].value.len = params[i].len;
			pp[i].binary = params[i].binary != 0;
		}
		pp[i].type_oid = params[i].type_oid;
		ptrs[i] = &pp[i];
	}
	q->params = ptrs;
	q->n_params = n;
	return 0;
}

/* A DbQuery request and the parameter arrays it points into. */
typedef struct query_req {
	Porter__V1__Request req;
	Porter__V1__DbQuery q;
	Porter__V1__DbParam **ptrs; /* owned */
	Porter__V1__DbParam *pp;    /* owned */
} query_req;

/* Fills `qr` for the arguments (checked); release with query_release.
 * Returns 0 or a negative code (recorded as the thread's last error). */
static int query_build(query_req *qr, uint64_t session, const char *conninfo, const char *sql,
		       const porter_db_param *params, size_t nparams, unsigned chunk_rows)
{
	memset(qr, 0, sizeof(*qr));
	if (!sql || (!session && (!conninfo || !conninfo[0])) || (nparams && !params))
		return pconn_set_error(PORTER_E_INVAL,
				       "a query needs sql and a session or a conninfo");
	porter__v1__request__init(&qr->req);
	porter__v1__db_query__init(&qr->q);
	if (nparams) {
		qr->ptrs = calloc(nparams, sizeof(*qr->ptrs));
		qr->pp = calloc(nparams, sizeof(*qr->pp));
		if (!qr->ptrs || !qr->pp) {
			free(qr->ptrs);
			free(qr->pp);
			return pconn_set_error(PORTER_E_NOMEM, "out of memory");
		}
		fill_params(&qr->q, params, nparams, qr->ptrs, qr->pp);
	}
	qr->q.session = session;
	qr->q.conninfo = (char *)(session ? "" : conninfo);
	qr->q.sql = (char *)sql;
	qr->q.chunk_rows = chunk_rows;
	qr->req.body_case = PORTER__V1__REQUEST__BODY_DB_QUERY;
	qr->req.db_query = &qr->q;
	return 0;
}

static void query_release(query_req *qr)
{
	free(qr->ptrs);
	free(qr->pp);
}

/* Sends one DbQuery; the raw response goes to `*resp` when porterd answered,
 * in the thread's scratch arena (pconn_call_scratch): copy what is needed,
 * then pconn_scratch_release(). */
static int run_query(uint64_t session, const char *conninfo, const char *sql,
		     const porter_db_param *params, size_t nparams, unsigned chunk_rows,
		     uint64_t call_id, int timeout_ms, Porter__V1__Response **resp)
{
	*resp = NULL;
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "negative timeout");
	query_req qr;
	int rc = query_build(&qr, session, conninfo, sql, params, nparams, chunk_rows);
	if (rc < 0)
		return rc;
	qr.req.id = call_id;
	qr.req.timeout_ms = daemon_timeout(timeout_ms);
	rc = pconn_call_scratch(&qr.req, timeout_ms, PCONN_ONCE, resp);
	query_release(&qr);
	return rc;
}

int porter_db_query(uint64_t session, const char *conninfo, const char *sql,
		    const porter_db_param *params, size_t nparams, uint64_t call_id, int timeout_ms,
		    porter_db_result **out)
{
	if (!out)
		return pconn_set_error(PORTER_E_INVAL, "out is NULL");
	*out = NULL;
	Porter__V1__Response *resp = NULL;
	int rc = run_query(session, conninfo, sql, params, nparams, 0, call_id, timeout_ms, &resp);
	if (!resp)
		return rc;
	*out = result_from(resp, 0, NULL, NULL);
	pconn_scratch_release();
	if (!*out)
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	return rc;
}

int porter_db_open(const char *conninfo, uint64_t call_id, int timeout_ms, uint64_t *session)
{
	if (session)
		*session = 0;
	if (!conninfo || !session)
		return pconn_set_error(PORTER_E_INVAL, "conninfo and session must not be NULL");
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "negative timeout");
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__DbOpen o = PORTER__V1__DB_OPEN__INIT;
	Porter__V1__Response *resp = NULL;
	o.conninfo = (char *)conninfo;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_DB_OPEN;
	req.db_open = &o;
	req.timeout_ms = daemon_timeout(timeout_ms);
	int rc = pconn_call(&req, timeout_ms, PCONN_ONCE, &resp);
	if (rc < 0)
		return rc;
	if (resp->body_case != PORTER__V1__RESPONSE__BODY_DB_OPEN || !resp->db_open->session)
		rc = pconn_set_error(PORTER_E_PROTOCOL, "unexpected reply to DbOpen");
	else
		*session = resp->db_open->session;
	porter__v1__response__free_unpacked(resp, NULL);
	return rc;
}

static int close_ids(uint64_t session, uint64_t stream, uint64_t call_id, int timeout_ms)
{
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "negative timeout");
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__DbClose cl = PORTER__V1__DB_CLOSE__INIT;
	Porter__V1__Response *resp = NULL;
	cl.session = session;
	cl.stream = stream;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_DB_CLOSE;
	req.db_close = &cl;
	/* Closing twice has the same effect as once. */
	int rc = pconn_call(&req, timeout_ms, PCONN_IDEMPOTENT, &resp);
	if (rc == 0)
		porter__v1__response__free_unpacked(resp, NULL);
	return rc;
}

int porter_db_close(uint64_t session, uint64_t call_id, int timeout_ms)
{
	if (!session)
		return 0;
	return close_ids(session, 0, call_id, timeout_ms);
}

/* The closes a free hands to the background thread (pbg_submit_id). */
static int session_close_id(uint64_t session, int timeout_ms)
{
	return close_ids(session, 0, 0, timeout_ms);
}

static int stream_close_id(uint64_t stream, int timeout_ms)
{
	return close_ids(0, stream, 0, timeout_ms);
}

void porter_db_free(uint64_t session)
{
	pbg_submit_id(session_close_id, session);
}

int porter_db_status(const porter_db_result *res)
{
	return res ? res->status : PORTER_E_INVAL;
}

const char *porter_db_message(const porter_db_result *res)
{
	return res ? res->err.f[D_MESSAGE] : "";
}

const char *porter_db_sqlstate(const porter_db_result *res)
{
	return res ? res->err.f[D_SQLSTATE] : "";
}

const char *porter_db_detail(const porter_db_result *res)
{
	return res ? res->err.f[D_DETAIL] : "";
}

const char *porter_db_hint(const porter_db_result *res)
{
	return res ? res->err.f[D_HINT] : "";
}

static const char *diag_get(const diag *d, int field)
{
	for (int i = 0; i < N_DIAG; i++)
		if (diag_codes[i] == field)
			return d->f[i];
	return "";
}

const char *porter_db_error_field(const porter_db_result *res, int field)
{
	return res ? diag_get(&res->err, field) : "";
}

size_t porter_db_nnotices(const porter_db_result *res)
{
	return res ? res->nnotices : 0;
}

const char *porter_db_notice_field(const porter_db_result *res, size_t i, int field)
{
	return res && i < res->nnotices ? diag_get(&res->notices[i].d, field) : "";
}

size_t porter_db_notice_before(const porter_db_result *res, size_t i)
{
	return res && i < res->nnotices ? res->notices[i].before : 0;
}

uint64_t porter_db_notices_dropped(const porter_db_result *res)
{
	return res ? res->notices_dropped : 0;
}

size_t porter_db_nresults(const porter_db_result *res)
{
	return res ? res->nparts : 0;
}

int porter_db_select(porter_db_result *res, size_t i)
{
	if (!res || i >= res->nparts)
		return PORTER_E_INVAL;
	res->sel = i;
	return 0;
}

static const part *sel(const porter_db_result *res)
{
	return res && res->nparts ? &res->parts[res->sel] : NULL;
}

int porter_db_ntuples(const porter_db_result *res)
{
	const part *p = sel(res);
	return p ? p->ntuples : 0;
}

int porter_db_nfields(const porter_db_result *res)
{
	const part *p = sel(res);
	return p ? p->nfields : 0;
}

const char *porter_db_fname(const porter_db_result *res, int col)
{
	const part *p = sel(res);
	return p && col >= 0 && col < p->nfields ? p->fnames[col] : NULL;
}

uint32_t porter_db_ftype(const porter_db_result *res, int col)
{
	const part *p = sel(res);
	return p && col >= 0 && col < p->nfields ? p->ftypes[col] : 0;
}

static long cell(const part *p, int row, int col)
{
	if (!p || row < 0 || col < 0 || row >= p->ntuples || col >= p->nfields)
		return -1;
	return (long)row * p->nfields + col;
}

const char *porter_db_getvalue(const porter_db_result *res, int row, int col)
{
	const part *p = sel(res);
	long i = cell(p, row, col);
	return i < 0 ? NULL : p->buf + p->off[i];
}

int porter_db_getlength(const porter_db_result *res, int row, int col)
{
	const part *p = sel(res);
	long i = cell(p, row, col);
	return i < 0 ? 0 : p->len[i];
}

int porter_db_getisnull(const porter_db_result *res, int row, int col)
{
	const part *p = sel(res);
	long i = cell(p, row, col);
	return i < 0 ? 0 : p->isnull[i];
}

uint64_t porter_db_cmdtuples(const porter_db_result *res)
{
	const part *p = sel(res);
	return p ? p->affected : 0;
}

const char *porter_db_cmdstatus(const porter_db_result *res)
{
	const part *p = sel(res);
	return p ? p->tag : "";
}

/* ---- cursors ---- */

static void cursor_take_cols(porter_db_cursor *cur, const porter_db_result *res)
{
	if (cur->fnames || !res || res->nparts == 0)
		return;
	const part *p = &res->parts[0];
	cur->fnames = calloc(p->nfields + 1, sizeof(char *));
	cur->ftypes = calloc(p->nfields + 1, sizeof(uint32_t));
	if (!cur->fnames || !cur->ftypes)
		return;
	for (int i = 0; i < p->nfields; i++) {
		cur->fnames[i] = strdup(p->fnames[i]);
		cur->ftypes[i] = p->ftypes[i];
	}
	cur->nfields = p->nfields;
}

int porter_db_cursor_open(uint64_t session, const char *conninfo, const char *sql,
			  const porter_db_param *params, size_t nparams, unsigned chunk_rows,
			  uint32_t stream_timeout_ms, uint64_t call_id, int timeout_ms,
			  porter_db_cursor **out)
{
	if (!out)
		return pconn_set_error(PORTER_E_INVAL, "out is NULL");
	*out = NULL;
	if (chunk_rows == 0 || chunk_rows > 100000)
		return pconn_set_error(PORTER_E_INVAL, "chunk_rows must be 1..100000");
	Porter__V1__Response *resp = NULL;
	int64_t deadline = pconn_stream_deadline(stream_timeout_ms);
	int wait;
	int rc = pconn_bounded(deadline, timeout_ms, &wait);
	if (rc < 0)
		return rc;
	/* One id for the open and every read, so that a cancel of it reaches
	 * whichever request is in flight. */
	if (!call_id)
		call_id = pconn_next_id();
	rc = run_query(session, conninfo, sql, params, nparams, chunk_rows, call_id, wait, &resp);
	/* The server's own error on the first chunk is handed by the first
	 * read, with its SQLSTATE and fields, as a later chunk's would be;
	 * everything else (no answer, a refusal) fails the open. */
	int deferred = rc == PORTER_E_DB && resp;
	if (rc < 0 && !deferred) {
		pconn_scratch_release();
		return rc;
	}
	porter_db_cursor *cur = calloc(1, sizeof(*cur));
	if (!cur) {
		pconn_scratch_release();
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	}
	cur->first = result_from(resp, 0, NULL, NULL);
	cur->stream = !deferred && resp->more && resp->db_query ? resp->db_query->stream : 0;
	cur->done = !cur->stream;
	cur->call_id = call_id;
	cur->deadline = deadline;
	pconn_scratch_release();
	if (!cur->first) {
		porter_db_cursor_free(cur);
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	}
	cursor_take_cols(cur, cur->first);
	*out = cur;
	pconn_clear_error();
	return 0;
}

int porter_db_cursor_read(porter_db_cursor *cur, uint64_t call_id, int timeout_ms,
			  porter_db_result **chunk)
{
	if (chunk)
		*chunk = NULL;
	if (!cur || !chunk)
		return pconn_set_error(PORTER_E_INVAL, "cursor and chunk must not be NULL");
	if (cur->first) {
		*chunk = cur->first;
		cur->first = NULL;
		int st = (*chunk)->status;
		return st < 0 ? pconn_set_error(st, "%s", (*chunk)->err.f[D_MESSAGE]) : 1;
	}
	if (cur->done)
		return 0;
	int wait;
	int rc = pconn_bounded(cur->deadline, timeout_ms, &wait);
	if (rc < 0)
		return rc;
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__DbFetch f = PORTER__V1__DB_FETCH__INIT;
	Porter__V1__Response *resp = NULL;
	f.stream = cur->stream;
	req.id = call_id ? call_id : cur->call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_DB_FETCH;
	req.db_fetch = &f;
	req.timeout_ms = daemon_timeout(wait);
	rc = pconn_call_scratch(&req, wait, PCONN_ONCE, &resp);
	if (!resp) {
		/* The outcome is unknown: the stream may be gone. */
		cur->done = 1;
		cur->stream = 0;
		return rc;
	}
	*chunk = result_from(resp, cur->nfields, cur->fnames, cur->ftypes);
	if (rc < 0 || !resp->more) {
		cur->done = 1;
		cur->stream = 0;
	}
	pconn_scratch_release();
	if (!*chunk)
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	return rc < 0 ? rc : 1;
}

static void cursor_release(porter_db_cursor *cur)
{
	porter_db_result_free(cur->first);
	for (int i = 0; i < cur->nfields && cur->fnames; i++)
		free(cur->fnames[i]);
	free(cur->fnames);
	free(cur->ftypes);
	free(cur);
}

int porter_db_cursor_close(porter_db_cursor *cur, int timeout_ms)
{
	if (!cur)
		return 0;
	int rc = 0;
	if (!cur->done && cur->stream)
		rc = close_ids(0, cur->stream, 0, timeout_ms);
	cursor_release(cur);
	return rc;
}

void porter_db_cursor_free(porter_db_cursor *cur)
{
	if (!cur)
		return;
	/* An unfinished stream is closed by the background thread. */
	pbg_submit_id(stream_close_id, cur->done ? 0 : cur->stream);
	cursor_release(cur);
}

int porter_batch_add_db_query(porter_batch *b, uint64_t session, const char *conninfo,
			      const char *sql, const porter_db_param *params, size_t nparams,
			      int timeout_ms)
{
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "negative timeout");
	query_req qr;
	int rc = query_build(&qr, session, conninfo, sql, params, nparams, 0);
	if (rc < 0)
		return rc;
	qr.req.timeout_ms = (uint32_t)timeout_ms; /* 0: bounded by the batch */
	rc = pbatch_add(b, &qr.req);
	query_release(&qr);
	return rc;
}

int porter_batch_result_db(const porter_batch_result *r, size_t i, porter_db_result **out)
{
	if (out)
		*out = NULL;
	const Porter__V1__Response *m = pbatch_member(r, i);
	if (!m || !out || (m->status == 0 && m->body_case != PORTER__V1__RESPONSE__BODY_DB_QUERY))
		return PORTER_E_INVAL;
	*out = result_from(m, 0, NULL, NULL);
	return *out ? 0 : PORTER_E_NOMEM;
}
