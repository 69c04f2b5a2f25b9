/* dbresult - PGresults into the reply's DbResults; see dbresult.h. */
#include "dbresult.h"

#include <stdlib.h>
#include <string.h>

#include "dbconn.h"
#include "dbdiag.h"
#include "dbop.h"
#include "porter_errors.h"

/* Room for `cap` entries of `size` in `arr` (holding `n`), which may be
 * the op's own first entries `own` (never freed); the new array, or NULL
 * (`arr` unchanged). */
static void *grow(void *arr, const void *own, size_t n, size_t cap, size_t size)
{
	if (arr != own)
		return realloc(arr, cap * size);
	void *p = malloc(cap * size);
	if (p && n)
		memcpy(p, own, n * size);
	return p;
}

static int keep_pg(dbop *op, PGresult *res)
{
	if (op->n_pgs == op->cap_pgs) {
		PGresult **p = op->cap_pgs ? grow(op->pgs, op->pgs0, op->n_pgs, op->cap_pgs * 2,
						  sizeof(*p))
					   : op->pgs0;
		if (!p)
			return -1;
		op->cap_pgs = op->cap_pgs ? op->cap_pgs * 2 : DBOP_PGS0;
		op->pgs = p;
	}
	op->pgs[op->n_pgs++] = res;
	return 0;
}

static Porter__V1__DbResult *new_result(dbop *op, PGresult *res, int with_cols)
{
	if (op->n_results == op->cap_results) {
		Porter__V1__DbResult **p = op->cap_results
						   ? grow(op->results, op->results0, op->n_results,
							  op->cap_results * 2, sizeof(*p))
						   : op->results0;
		if (!p)
			return NULL;
		op->cap_results = op->cap_results ? op->cap_results * 2 : DBOP_RESULTS0;
		op->results = p;
	}
	/* The first result of the op (dbop_clear empties it) is its own. */
	int own = op->n_results == 0;
	Porter__V1__DbResult *dr = own ? &op->result0 : malloc(sizeof(*dr));
	if (!dr)
		return NULL;
	porter__v1__db_result__init(dr);
	int nf = with_cols ? PQnfields(res) : 0;
	if (nf > 0) {
		/* One block: the pointer array, then the structs. */
		int inline_cols = own && nf <= DBOP_COLS0;
		void *blk = inline_cols ? NULL
					: malloc(nf * (sizeof(Porter__V1__DbColumn *) +
						       sizeof(Porter__V1__DbColumn)));
		if (!inline_cols && !blk) {
			if (!own)
				free(dr);
			return NULL;
		}
		Porter__V1__DbColumn **ptrs = inline_cols ? op->colp0 : blk;
		Porter__V1__DbColumn *cols =
			inline_cols ? op->cols0 : (Porter__V1__DbColumn *)(ptrs + nf);
		for (int i = 0; i < nf; i++) {
			porter__v1__db_column__init(&cols[i]);
			cols[i].name = PQfname(res, i);
			cols[i].type_oid = PQftype(res, i);
			ptrs[i] = &cols[i];
		}
		dr->columns = ptrs;
		dr->n_columns = nf;
	}
	op->results[op->n_results++] = dr;
	return dr;
}

static void set_tag(Porter__V1__DbResult *dr, PGresult *res)
{
	dr->command_tag = PQcmdStatus(res);
	const char *t = PQcmdTuples(res);
	dr->affected = t && t[0] ? strtoull(t, NULL, 10) : 0;
}

/* Whether s[0..n) is valid UTF-8: runs of ASCII eight bytes at a time,
 * then each sequence as RFC 3629 has it (no overlongs, surrogates or code
 * points past U+10FFFF). */
static int utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint64_t w;
		if (n - i >= 8 && (memcpy(&w, s + i, 8), !(w & 0x8080808080808080ull))) {
			i += 8;
			continue;
		}
		uint8_t c = s[i];
		size_t len = c < 0x80                 ? 1
			     : c >= 0xc2 && c <= 0xdf ? 2
			     : c >= 0xe0 && c <= 0xef ? 3
			     : c >= 0xf0 && c <= 0xf4 ? 4
						      : 0;
		if (!len || n - i < len)
			return 0;
		/* The second byte's range depends on the first (overlongs,
		 * surrogates, the top of the code space); the rest are 10xxxxxx. */
		uint8_t lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
		uint8_t hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
		if (len > 1 && (s[i + 1] < lo || s[i + 1] > hi))
			return 0;
		for (size_t k = 2; k < len; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
		i += len;
	}
	return 1;
}

/* Appends the rows of `res` to `dr`. Their values point into `res`, which
 * the caller keeps alive with the op, or with `copy` are copied into the
 * row's own block (so `res` can be freed at once). */
static int add_rows(dbop *op, Porter__V1__DbResult *dr, PGresult *res, size_t frame_cap, int copy)
{
	int nt = PQntuples(res), nf = PQnfields(res);
	for (int t = 0; t < nt; t++) {
		if (op->bytes > frame_cap && !op->chunk_rows) {
			op->too_large = 1;
			return 0;
		}
		size_t data = 0;
		for (int i = 0; copy && i < nf; i++)
			data += (size_t)PQgetlength(res, t, i);
		Porter__V1__DbRow *row =
			malloc(sizeof(*row) + nf * (sizeof(ProtobufCBinaryData) + 1) + data);
		if (!row)
			return -1;
		porter__v1__db_row__init(row);
		ProtobufCBinaryData *vals = (ProtobufCBinaryData *)(row + 1);
		uint8_t *nulls = (uint8_t *)(vals + nf);
		uint8_t *at = nulls + nf;
		int any_null = 0;
		for (int i = 0; i < nf; i++) {
			nulls[i] = (uint8_t)PQgetisnull(res, t, i);
			any_null |= nulls[i];
			vals[i].len = nulls[i] ? 0 : (size_t)PQgetlength(res, t, i);
			vals[i].data = nulls[i] ? NULL : (uint8_t *)PQgetvalue(res, t, i);
			/* The connection speaks UTF8, but a SET LOCAL
			 * client_encoding lasts only to its transaction's end,
			 * unreported, and a SQL_ASCII database passes bytes on
			 * unconverted: what is not UTF-8 is refused here, so
			 * every value a client gets is. */
			if (!utf8_valid(vals[i].data, vals[i].len)) {
				free(row);
				dbop_set_error(
					op, PORTER_E_DB,
					"a value is not valid UTF-8 (client_encoding changed "
					"for a transaction, or a SQL_ASCII database); porterd "
					"hands on UTF-8 only",
					"22021", NULL, NULL);
				return 0;
			}
			if (copy && vals[i].len) {
				memcpy(at, vals[i].data, vals[i].len);
				vals[i].data = at;
				at += vals[i].len;
			}
			op->bytes += vals[i].len + 3;
		}
		row->values = vals;
		row->n_values = nf;
		if (any_null) {
			row->nulls.data = nulls;
			row->nulls.len = nf;
		}
		op->bytes += 4 + nf;
		if (copy) /* the chunk bound is on memory held, not wire size */
			op->bytes += sizeof(*row) + nf * sizeof(ProtobufCBinaryData);
		if ((dr->n_rows & (dr->n_rows - 1)) == 0) {
			/* Grows at powers of two; the op's first result starts
			 * with the op's own entry. */
			Porter__V1__DbRow **p = dr->n_rows ? grow(dr->rows, op->rows0, dr->n_rows,
								  dr->n_rows * 2, sizeof(*p))
						: dr == &op->result0 ? op->rows0
								     : malloc(sizeof(*p));
			if (!p) {
				free(row);
				return -1;
			}
			dr->rows = p;
		}
		dr->rows[dr->n_rows++] = row;
	}
	return 0;
}

void dbresult_empty(dbop *op)
{
	new_result(op, NULL, 0);
}

size_t dbresult_frame_cap(uint32_t max_frame)
{
	return max_frame > (2u << 20) ? max_frame - (1u << 20) : max_frame / 2;
}

void dbresult_take(dbc *c, PGresult *res)
{
	dbop *op = c->cur;
	if (!op) {
		/* Draining an abandoned query. */
		PQclear(res);
		return;
	}
	ExecStatusType st = PQresultStatus(res);
	size_t cap = dbresult_frame_cap(c->dw->w->cfg->max_frame);
	if (st == PGRES_FATAL_ERROR) {
		dbdiag_error(op, res);
		PQclear(res);
		return;
	}
	if (op->err || op->too_large ||
	    (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK &&
	     st != PGRES_EMPTY_QUERY)) {
		/* Nothing of it goes into the reply. */
		PQclear(res);
		if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH)
			goto copy;
		return;
	}
	if (st == PGRES_SINGLE_TUPLE) {
		/* Each row is a PGresult of its own, several KiB: its values
		 * are copied and it is freed at once, except the one whose
		 * column names the chunk points to. */
		int keep = 0;
		if (op->n_results == 0) {
			int cols = !c->stream_cols_sent;
			if (!new_result(op, res, cols)) {
				PQclear(res);
				goto nomem;
			}
			if (cols) {
				/* The op fails then, so the column names that
				 * point into `res` are never read. */
				if (keep_pg(op, res) < 0) {
					PQclear(res);
					goto nomem;
				}
				keep = 1;
			}
		}
		c->stream_cols_sent = 1;
		int rc = add_rows(op, op->results[0], res, cap, 1);
		if (!keep)
			PQclear(res);
		if (rc < 0)
			goto nomem;
		return;
	}
	if (keep_pg(op, res) < 0) {
		PQclear(res);
		dbop_set_error(op, PORTER_E_NOMEM, "out of memory", NULL, NULL, NULL);
		return;
	}
	switch (st) {
	case PGRES_TUPLES_OK:
		if (op->chunk_rows) {
			/* The end of a streamed result: no rows, the tag. */
			if (op->n_results == 0 && !new_result(op, res, !c->stream_cols_sent))
				goto nomem;
			c->stream_cols_sent = 1;
			set_tag(op->results[0], res);
			if (add_rows(op, op->results[0], res, cap, 0) < 0)
				goto nomem;
			return;
		} else {
			Porter__V1__DbResult *dr = new_result(op, res, 1);
			if (!dr)
				goto nomem;
			set_tag(dr, res);
			if (add_rows(op, dr, res, cap, 0) < 0)
				goto nomem;
		}
		return;
	case PGRES_COMMAND_OK:
	case PGRES_EMPTY_QUERY: {
		Porter__V1__DbResult *dr = new_result(op, res, 0);
		if (!dr)
			goto nomem;
		set_tag(dr, res);
		if (op->kind == OP_QUERY && c->pool) {
			/* Anything but plain DML may change session state. */
			const char *tag = dr->command_tag;
			if (strncmp(tag, "SELECT", 6) && strncmp(tag, "INSERT", 6) &&
			    strncmp(tag, "UPDATE", 6) && strncmp(tag, "DELETE", 6))
				c->needs_reset = 1;
		}
		return;
	}
	default:
		return;
	}
nomem:
	dbop_set_error(op, PORTER_E_NOMEM, "out of memory", NULL, NULL, NULL);
	return;
copy:
	dbop_set_error(op, PORTER_E_UNSUPPORTED, "COPY is not supported through porter", NULL, NULL,
		       NULL);
	if (st == PGRES_COPY_IN) {
		PQputCopyEnd(c->pg, "COPY is not supported through porter");
		return;
	}
	/* The connection would have to read the whole copy stream; giving
	 * it up is simpler and bounded. */
	c->cur = NULL;
	dbop_finish(op, 0, 0);
	dbconn_broken(c, "COPY is not supported");
}
