/* dbwire - hand-written codec of DbQuery and its reply (Ping bodies: pingwire.c); see dbwire.h. */
#include "dbwire.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "filewire.h"
#include "frame.h"
#include "httpwire.h"
#include "pbwire.h"
#include "pingwire.h"
#include "porter_errors.h"

/* Results of one reply whose sizes are kept on the stack. */
#define RESULTS_ON_STACK 16

/* ---- what the codec knows of porter.proto ---- */

/* Fields of a message outside its body oneof. */
static unsigned plain_fields(const ProtobufCMessageDescriptor *d)
{
	unsigned n = 0;
	for (unsigned i = 0; i < d->n_fields; i++)
		n += !(d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF);
	return n;
}

static int request_known(void)
{
	return plain_fields(&porter__v1__request__descriptor) == 2 && pingwire_schema_known() &&
	       porter__v1__db_query__descriptor.n_fields == 5 &&
	       porter__v1__db_param__descriptor.n_fields == 4;
}

static int response_known(void)
{
	return plain_fields(&porter__v1__response__descriptor) == 5 &&
	       porter__v1__error_detail__descriptor.n_fields == 15 &&
	       porter__v1__db_query_reply__descriptor.n_fields == 4 &&
	       porter__v1__db_result__descriptor.n_fields == 4 &&
	       porter__v1__db_column__descriptor.n_fields == 2 &&
	       porter__v1__db_row__descriptor.n_fields == 2;
}

/* Looked at once: -1 until then. */
static _Atomic int request_shape = -1, response_shape = -1;

static int known(_Atomic int *shape, int (*check)(void))
{
	int v = atomic_load_explicit(shape, memory_order_relaxed);
	if (v < 0) {
		v = check();
		atomic_store_explicit(shape, v, memory_order_relaxed);
	}
	return v;
}

int dbwire_schema_known(void)
{
	return known(&request_shape, request_known) && known(&response_shape, response_known);
}

/* ---- encoding ---- */

static uint64_t zigzag32(int32_t v)
{
	return (uint32_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}

/* Whether `e` holds only the fields this codec writes (sqlstate, detail,
 * hint, http_status, sys_errno). A database error's position, context and
 * names, like notices, are rare and left to protobuf-c: the codec's worth
 * is in the rows of the common reply. */
static int error_plain(const Porter__V1__ErrorDetail *e)
{
	return !e->base.n_unknown_fields && !(e->severity && *e->severity) && !e->position &&
	       !e->internal_position && !(e->internal_query && *e->internal_query) &&
	       !(e->context && *e->context) && !(e->schema_name && *e->schema_name) &&
	       !(e->table_name && *e->table_name) && !(e->column_name && *e->column_name) &&
	       !(e->datatype_name && *e->datatype_name) &&
	       !(e->constraint_name && *e->constraint_name);
}

static size_t error_size(const Porter__V1__ErrorDetail *e)
{
	return str_size(1, e->sqlstate) + str_size(2, e->detail) + str_size(3, e->hint) +
	       u64_size(4, i32_wire(e->http_status)) + u64_size(5, i32_wire(e->sys_errno));
}

static uint8_t *put_error(uint8_t *p, const Porter__V1__ErrorDetail *e)
{
	p = put_str(p, 1, e->sqlstate);
	p = put_str(p, 2, e->detail);
	p = put_str(p, 3, e->hint);
	p = put_u64(p, 4, i32_wire(e->http_status));
	return put_u64(p, 5, i32_wire(e->sys_errno));
}

static size_t column_size(const Porter__V1__DbColumn *c)
{
	return str_size(1, c->name) + u64_size(2, c->type_oid);
}

static size_t row_size(const Porter__V1__DbRow *row)
{
	size_t n = 0;
	for (size_t i = 0; i < row->n_values; i++)
		n += len_size(1, row->values[i].len); /* each element, even empty */
	if (row->nulls.len)
		n += len_size(2, row->nulls.len);
	return n;
}

/* Size of result `dr`; -1 (as SIZE_MAX) when a message in it carries
 * unknown fields, which only protobuf-c knows how to write. */
static size_t result_size(const Porter__V1__DbResult *dr)
{
	if (dr->base.n_unknown_fields)
		return SIZE_MAX;
	size_t n = 0;
	for (size_t i = 0; i < dr->n_columns; i++) {
		if (dr->columns[i]->base.n_unknown_fields)
			return SIZE_MAX;
		n += len_size(1, column_size(dr->columns[i]));
	}
	for (size_t i = 0; i < dr->n_rows; i++) {
		if (dr->rows[i]->base.n_unknown_fields)
			return SIZE_MAX;
		n += len_size(2, row_size(dr->rows[i]));
	}
	return n + u64_size(3, dr->affected) + str_size(4, dr->command_tag);
}

static uint8_t *put_result(uint8_t *p, const Porter__V1__DbResult *dr)
{
	for (size_t i = 0; i < dr->n_columns; i++) {
		const Porter__V1__DbColumn *c = dr->columns[i];
		p = put_len(p, 1, column_size(c));
		p = put_str(p, 1, c->name);
		p = put_u64(p, 2, c->type_oid);
	}
	for (size_t i = 0; i < dr->n_rows; i++) {
		const Porter__V1__DbRow *row = dr->rows[i];
		p = put_len(p, 2, row_size(row));
		for (size_t j = 0; j < row->n_values; j++)
			p = put_bytes(p, 1, row->values[j].data, row->values[j].len);
		if (row->nulls.len)
			p = put_bytes(p, 2, row->nulls.data, row->nulls.len);
	}
	p = put_u64(p, 3, dr->affected);
	return put_str(p, 4, dr->command_tag);
}

int dbwire_pack_response(const Porter__V1__Response *r, size_t max_frame, uint8_t **buf,
			 size_t *cap, size_t *outlen)
{
	const Porter__V1__DbQueryReply *qr = NULL;
	const Porter__V1__PingReply *ping = NULL;
	const Porter__V1__HttpResponse *http = NULL;
	size_t http_len = 0;
	if (!known(&response_shape, response_known) || r->base.n_unknown_fields ||
	    (r->error && !error_plain(r->error)))
		return 0;
	if (r->body_case == PORTER__V1__RESPONSE__BODY_DB_QUERY) {
		qr = r->db_query;
		if (!qr || qr->base.n_unknown_fields || qr->n_notices || qr->notices_dropped)
			return 0;
	} else if (r->body_case == PORTER__V1__RESPONSE__BODY_PING) {
		ping = r->ping;
		if (!ping || ping->base.n_unknown_fields)
			return 0;
	} else if (r->body_case == PORTER__V1__RESPONSE__BODY_HTTP) {
		http = r->http;
		if (!http || (http_len = httpwire_response_size(http)) == SIZE_MAX)
			return 0;
	} else if (r->body_case != PORTER__V1__RESPONSE__BODY__NOT_SET) {
		return 0;
	}

	size_t sizes_s[RESULTS_ON_STACK];
	size_t *sizes = sizes_s;
	size_t nres = qr ? qr->n_results : 0;
	int rc = 0;
	if (nres > RESULTS_ON_STACK && !(sizes = malloc(nres * sizeof(*sizes))))
		return PORTER_E_NOMEM;

	size_t body = 0;
	for (size_t i = 0; i < nres; i++) {
		sizes[i] = result_size(qr->results[i]);
		if (sizes[i] == SIZE_MAX)
			goto out; /* rc 0: protobuf-c packs it */
		body += len_size(1, sizes[i]);
	}
	if (qr)
		body += u64_size(2, qr->stream);
	size_t err = r->error ? error_size(r->error) : 0;
	size_t len = u64_size(1, r->id) + u64_size(2, zigzag32(r->status)) +
		     str_size(3, r->message) + (r->error ? len_size(4, err) : 0) +
		     u64_size(5, r->more != 0) + (qr ? len_size(21, body) : 0) +
		     (ping ? len_size(11, pingwire_reply_size(ping)) : 0) +
		     (http ? len_size(30, http_len) : 0);
	if (len > max_frame || len > UINT32_MAX) {
		rc = PORTER_E_TOO_LARGE;
		goto out;
	}
	if (pbwire_reserve(buf, cap, len) < 0) {
		rc = PORTER_E_NOMEM;
		goto out;
	}
	uint8_t *p = *buf + FRAME_HEADER_SIZE;
	p = put_u64(p, 1, r->id);
	p = put_u64(p, 2, zigzag32(r->status));
	p = put_str(p, 3, r->message);
	if (r->error) {
		p = put_len(p, 4, err);
		p = put_error(p, r->error);
	}
	p = put_u64(p, 5, r->more != 0);
	if (qr) {
		p = put_len(p, 21, body);
		for (size_t i = 0; i < nres; i++) {
			p = put_len(p, 1, sizes[i]);
			p = put_result(p, qr->results[i]);
		}
		p = put_u64(p, 2, qr->stream);
	}
	if (ping) {
		p = put_len(p, 11, pingwire_reply_size(ping));
		p = pingwire_put_reply(p, ping);
	}
	if (http) {
		p = put_len(p, 30, http_len);
		p = httpwire_put_response(p, http);
	}
	*outlen = (size_t)(p - *buf);
	rc = 1;
out:
	if (sizes != sizes_s)
		free(sizes);
	return rc;
}

static size_t param_size(const Porter__V1__DbParam *p)
{
	return u64_size(1, p->is_null != 0) + (p->value.len ? len_size(2, p->value.len) : 0) +
	       u64_size(3, p->binary != 0) + u64_size(4, p->type_oid);
}

int dbwire_pack_request(const Porter__V1__Request *r, size_t max_frame, uint8_t **buf, size_t *cap,
			size_t *outlen)
{
	if (!known(&request_shape, request_known) || r->base.n_unknown_fields)
		return 0;
	if (r->body_case == PORTER__V1__REQUEST__BODY_PING)
		return pingwire_pack_request(r, max_frame, buf, cap, outlen);
	if (r->body_case == PORTER__V1__REQUEST__BODY_FILE_READ)
		return filewire_pack_read(r, max_frame, buf, cap, outlen);
	if (r->body_case == PORTER__V1__REQUEST__BODY_HTTP ||
	    r->body_case == PORTER__V1__REQUEST__BODY_HTTP_FETCH)
		return httpwire_pack_request(r, max_frame, buf, cap, outlen);
	const Porter__V1__DbQuery *q = r->db_query;
	if (r->body_case != PORTER__V1__REQUEST__BODY_DB_QUERY || !q || q->base.n_unknown_fields)
		return 0;
	size_t body = u64_size(1, q->session) + str_size(2, q->conninfo) + str_size(3, q->sql) +
		      u64_size(5, q->chunk_rows);
	for (size_t i = 0; i < q->n_params; i++) {
		if (q->params[i]->base.n_unknown_fields)
			return 0;
		body += len_size(4, param_size(q->params[i]));
	}
	uint8_t *p;
	int rc = pbwire_begin_request(r, 21, body, max_frame, buf, cap, &p);
	if (rc < 0)
		return rc;
	p = put_u64(p, 1, q->session);
	p = put_str(p, 2, q->conninfo);
	p = put_str(p, 3, q->sql);
	for (size_t i = 0; i < q->n_params; i++) {
		const Porter__V1__DbParam *pp = q->params[i];
		p = put_len(p, 4, param_size(pp));
		p = put_u64(p, 1, pp->is_null != 0);
		if (pp->value.len)
			p = put_bytes(p, 2, pp->value.data, pp->value.len);
		p = put_u64(p, 3, pp->binary != 0);
		p = put_u64(p, 4, pp->type_oid);
	}
	p = put_u64(p, 5, q->chunk_rows);
	*outlen = (size_t)(p - *buf);
	return 1;
}

/* ---- decoding ---- */

/*
 * Each message decoder below accepts exactly the fields of its message with
 * their proper wire types, each singular sub-message at most once, and
 * declines (NULL) anything else, whether malformed or merely unusual
 * (unknown fields, a repeated sub-message to merge): protobuf-c then
 * decodes it, or reports it malformed. What it accepts it stores as
 * protobuf-c would: last value wins, scalars truncated to their width.
 */

/* Stores one field `f` in message `m`: 0, or -1 to decline. */
typedef int field_fn(ProtobufCAllocator *a, void *m, const fld *f);

/* Reads every field of message `r` into `m` (NULL when allocating it
 * failed) with `fn`. `m`, or NULL to decline. */
static void *each_field(ProtobufCAllocator *a, rd r, void *m, field_fn *fn)
{
	fld f;
	if (!m)
		return NULL;
	while (r.p < r.end)
		if (next_field(&r, &f) < 0 || fn(a, m, &f) < 0)
			return NULL;
	return m;
}

/* Inside a field_fn: field f's wire type, or decline. */
#define VARINT()                                                                                   \
	do {                                                                                       \
		if (f->wt != WT_VARINT)                                                            \
			return -1;                                                                 \
	} while (0)
#define LEN()                                                                                      \
	do {                                                                                       \
		if (f->wt != WT_LEN)                                                               \
			return -1;                                                                 \
	} while (0)
/* Sub-message field f stored in m->member by decoder fn, at most once (a
 * second one protobuf-c would merge into the first: decline). */
#define ONCE(member, fn)                                                                           \
	do {                                                                                       \
		LEN();                                                                             \
		if (m->member || !(m->member = fn(a, f->in)))                                      \
			return -1;                                                                 \
	} while (0)
/* Varint field f stored in dst as `val` (of f->v). */
#define VAR(dst, val)                                                                              \
	do {                                                                                       \
		VARINT();                                                                          \
		(dst) = (val);                                                                     \
	} while (0)
/* String field f stored in dst. */
#define STR(dst)                                                                                   \
	do {                                                                                       \
		LEN();                                                                             \
		if (!((dst) = take_str(a, &f->in)))                                                \
			return -1;                                                                 \
	} while (0)

/* The messages without sub-messages, read by pbwire_flat. */
#define F(T, num, kind, member)                                                                    \
	{                                                                                          \
		num, PBWIRE_##kind, offsetof(T, member)                                            \
	}

static const pbwire_field error_fields[] = {
	F(Porter__V1__ErrorDetail, 1, STR, sqlstate),
	F(Porter__V1__ErrorDetail, 2, STR, detail),
	F(Porter__V1__ErrorDetail, 3, STR, hint),
	F(Porter__V1__ErrorDetail, 4, U32, http_status),
	F(Porter__V1__ErrorDetail, 5, U32, sys_errno),
};

static const pbwire_field column_fields[] = {
	F(Porter__V1__DbColumn, 1, STR, name),
	F(Porter__V1__DbColumn, 2, U32, type_oid),
};

static const pbwire_field param_fields[] = {
	F(Porter__V1__DbParam, 1, BOOL, is_null),
	F(Porter__V1__DbParam, 2, BYTES, value),
	F(Porter__V1__DbParam, 3, BOOL, binary),
	F(Porter__V1__DbParam, 4, U32, type_oid),
};

#define NFIELDS(f) (sizeof(f) / sizeof((f)[0]))

static Porter__V1__ErrorDetail *error_detail(ProtobufCAllocator *a, rd r)
{
	return pbwire_flat(a, r, &porter__v1__error_detail__descriptor, error_fields,
			   NFIELDS(error_fields));
}

static Porter__V1__DbColumn *column(ProtobufCAllocator *a, rd r)
{
	return pbwire_flat(a, r, &porter__v1__db_column__descriptor, column_fields,
			   NFIELDS(column_fields));
}

static Porter__V1__DbParam *param(ProtobufCAllocator *a, rd r)
{
	return pbwire_flat(a, r, &porter__v1__db_param__descriptor, param_fields,
			   NFIELDS(param_fields));
}

/*
 * Counts a run of fields `want` (length-delimited, below 16) each with a
 * one-byte length, the shape of every short query parameter, from r->p on,
 * in a tight loop, adding them to `n`; stops at the first field of another
 * shape (the caller reads it the general way) or once `n` is past
 * DBWIRE_MAX_PARAMS. The general readers took some 6 ns a field: a frame
 * over the limit was counted twice on the worker's loop (400 us each).
 */
static size_t count_run(rd *r, uint32_t want, size_t n)
{
	if (want >= 16)
		return n;
	const uint8_t tag = (uint8_t)(want << 3 | WT_LEN);
	const uint8_t *p = r->p;
	/* Empty ones (a 16 MiB frame holds 8 million), four at a time. */
	const uint8_t four[8] = {tag, 0, tag, 0, tag, 0, tag, 0};
	while (n <= DBWIRE_MAX_PARAMS && r->end - p >= 8 && memcmp(p, four, 8) == 0) {
		p += 8;
		n += 4;
	}
	while (n <= DBWIRE_MAX_PARAMS && r->end - p >= 2 && p[0] == tag && p[1] < 0x80 &&
	       (size_t)(r->end - p) - 2 >= p[1]) {
		p += 2 + p[1];
		n++;
	}
	r->p = p;
	return n;
}

/* Counts the occurrences of `want` (length-delimited) in message `r`,
 * checking every tag and skipping every value; -1 when malformed or when a
 * field other than `known` (a bit per field number below 32) appears. */
static long count_field(rd r, uint32_t want, uint32_t known)
{
	long n = 0;
	while (r.p < r.end) {
		if (known & (1u << want)) {
			n = (long)count_run(&r, want, (size_t)n);
			if (n > DBWIRE_MAX_PARAMS)
				return n;
			if (r.p == r.end)
				break;
		}
		uint32_t field;
		unsigned wt;
		if (get_tag(&r, &field, &wt) < 0 || field >= 32 || !(known & (1u << field)))
			return -1;
		if (field == want && wt != WT_LEN)
			return -1;
		if (skip(&r, wt) < 0)
			return -1;
		/* One past the limit decides: the rest of a 16 MiB frame is
		 * not read on the loop. */
		if ((n += field == want) > DBWIRE_MAX_PARAMS)
			return n;
	}
	return n;
}

/* An array of `n` pointers (or bytes), or a non-NULL empty one. */
static void *take_array(ProtobufCAllocator *a, long n, size_t each)
{
	return n ? take(a, (size_t)n * each) : NULL;
}

/* The repeated fields below are counted first (count_field, which also
 * declines any field the message does not have), so their arrays are
 * allocated once at their final size. */

static int row_field(ProtobufCAllocator *a, void *msg, const fld *f)
{
	Porter__V1__DbRow *m = msg;
	LEN();
	return take_bytes(a, &f->in, f->num == 1 ? &m->values[m->n_values++] : &m->nulls);
}

static Porter__V1__DbRow *row(ProtobufCAllocator *a, rd r)
{
	Porter__V1__DbRow *m = take_msg(a, &porter__v1__db_row__descriptor);
	long n = count_field(r, 1, 1u << 1 | 1u << 2);
	if (!m || n < 0)
		return NULL;
	if (n && !(m->values = take_array(a, n, sizeof(*m->values))))
		return NULL;
	return each_field(a, r, m, row_field);
}

static int result_field(ProtobufCAllocator *a, void *msg, const fld *f)
{
	Porter__V1__DbResult *m = msg;
	switch (f->num) {
	case 1:
		LEN();
		return (m->columns[m->n_columns++] = column(a, f->in)) ? 0 : -1;
	case 2:
		LEN();
		return (m->rows[m->n_rows++] = row(a, f->in)) ? 0 : -1;
	case 3:
		VAR(m->affected, f->v);
		return 0;
	default: /* 4: count_field let no other through */
		STR(m->command_tag);
		return 0;
	}
}

static Porter__V1__DbResult *result(ProtobufCAllocator *a, rd r)
{
	Porter__V1__DbResult *m = take_msg(a, &porter__v1__db_result__descriptor);
	long ncol = count_field(r, 1, 0x1e), nrow = count_field(r, 2, 0x1e);
	if (!m || ncol < 0 || nrow < 0)
		return NULL;
	if ((ncol && !(m->columns = take_array(a, ncol, sizeof(*m->columns)))) ||
	    (nrow && !(m->rows = take_array(a, nrow, sizeof(*m->rows)))))
		return NULL;
	return each_field(a, r, m, result_field);
}

static int query_reply_field(ProtobufCAllocator *a, void *msg, const fld *f)
{
	Porter__V1__DbQueryReply *m = msg;
	if (f->num == 1) {
		LEN();
		return (m->results[m->n_results++] = result(a, f->in)) ? 0 : -1;
	}
	VAR(m->stream, f->v); /* 2: count_field let no other through */
	return 0;
}

static Porter__V1__DbQueryReply *query_reply(ProtobufCAllocator *a, rd r)
{
	Porter__V1__DbQueryReply *m = take_msg(a, &porter__v1__db_query_reply__descriptor);
	long n = count_field(r, 1, 1u << 1 | 1u << 2);
	if (!m || n < 0)
		return NULL;
	if (n && !(m->results = take_array(a, n, sizeof(*m->results))))
		return NULL;
	return each_field(a, r, m, query_reply_field);
}

static int response_field(ProtobufCAllocator *a, void *msg, const fld *f)
{
	Porter__V1__Response *m = msg;
	switch (f->num) {
	case 1:
		VAR(m->id, f->v);
		return 0;
	case 2:
		VAR(m->status, (int32_t)(((uint32_t)f->v >> 1) ^ -((uint32_t)f->v & 1)));
		return 0;
	case 3:
		STR(m->message);
		return 0;
	case 4:
		ONCE(error, error_detail);
		return 0;
	case 5:
		VAR(m->more, f->v != 0);
		return 0;
	case 21:
		ONCE(db_query, query_reply);
		m->body_case = PORTER__V1__RESPONSE__BODY_DB_QUERY;
		return 0;
	case 11:
		ONCE(ping, pingwire_unpack_reply);
		m->body_case = PORTER__V1__RESPONSE__BODY_PING;
		return 0;
	case 30:
		ONCE(http, httpwire_unpack_response);
		m->body_case = PORTER__V1__RESPONSE__BODY_HTTP;
		return 0;
	case 40:
		ONCE(file_read, filewire_unpack_read_reply);
		m->body_case = PORTER__V1__RESPONSE__BODY_FILE_READ;
		return 0;
	default:
		return -1;
	}
}

Porter__V1__Response *dbwire_unpack_response(ProtobufCAllocator *a, size_t len, const uint8_t *data)
{
	rd r = pbwire_rd(data, len);
	return each_field(a, r, take_msg(a, &porter__v1__response__descriptor), response_field);
}

static int query_field(ProtobufCAllocator *a, void *msg, const fld *f)
{
	Porter__V1__DbQuery *m = msg;
	switch (f->num) {
	case 1:
		VAR(m->session, f->v);
		return 0;
	case 2:
		STR(m->conninfo);
		return 0;
	case 3:
		STR(m->sql);
		return 0;
	case 4:
		LEN();
		return (m->params[m->n_params++] = param(a, f->in)) ? 0 : -1;
	default: /* 5: count_field let no other through */
		VAR(m->chunk_rows, (uint32_t)f->v);
		return 0;
	}
}

static Porter__V1__DbQuery *query(ProtobufCAllocator *a, rd r)
{
	Porter__V1__DbQuery *m = take_msg(a, &porter__v1__db_query__descriptor);
	long n = count_field(r, 4, 0x3e);
	/* Over PostgreSQL's limit the caller refuses it, after counting. */
	if (!m || n < 0 || n > DBWIRE_MAX_PARAMS)
		return NULL;
	if (n && !(m->params = take_array(a, n, sizeof(*m->params))))
		return NULL;
	return each_field(a, r, m, query_field);
}

/* Skips a field of any wire type but the deprecated groups. */
static int skip_any(rd *r, unsigned wt)
{
	size_t fixed = wt == 1 ? 8 : wt == 5 ? 4 : 0;
	if (!fixed)
		return skip(r, wt);
	if ((size_t)(r->end - r->p) < fixed)
		return -1;
	r->p += fixed;
	return 0;
}

/* How many length-delimited fields `want` message `r` has, plus, for each
 * length-delimited field `nested` (0: none), that message's fields 4 (a
 * DbQuery's params); with `id` not NULL, its varint field 1 goes there.
 * With `prefix`, `r` is the start of a message cut short: a nested message
 * running past its end is counted over the bytes there are, and a field
 * that cannot be read ends the count (a lower bound). Without, such a
 * field makes it DBWIRE_MALFORMED: answering with the count so far let
 * protobuf-c, which reads some encodings these readers decline (a varint
 * whose tenth byte carries bits past the 64th, a 5-byte length or tag past
 * 32 bits), unpack every parameter after it. */
static size_t count_params(rd r, uint32_t want, uint32_t nested, uint64_t *id, int prefix)
{
	size_t n = 0;
	while (r.p < r.end) {
		if (want && (n = count_run(&r, want, n)) > DBWIRE_MAX_PARAMS)
			break;
		if (r.p == r.end)
			break;
		uint32_t field;
		unsigned wt;
		uint64_t v;
		rd in;
		if (get_tag(&r, &field, &wt) < 0)
			goto unreadable;
		if (id && field == 1 && wt == WT_VARINT) {
			if (get_varint(&r, &v) < 0)
				goto unreadable;
			*id = v;
		} else if (wt == WT_LEN && (field == want || field == nested)) {
			const uint8_t *at = r.p;
			if (get_len(&r, &in) < 0) {
				if (!prefix || field != nested)
					goto unreadable;
				/* Past the end of the bytes there are: counted
				 * as far as they go, a lower bound of the whole
				 * message's count. */
				r.p = at;
				if (get_varint_max(&r, &v, 5) < 0)
					goto unreadable;
				in = r;
				r.p = r.end;
			}
			size_t k = field == want ? 1 : count_params(in, 4, 0, NULL, prefix);
			if (k == DBWIRE_MALFORMED)
				return k;
			n += k;
			if (n > DBWIRE_MAX_PARAMS) /* enough to refuse it */
				break;
		} else if (skip_any(&r, wt) < 0) {
			goto unreadable;
		}
	}
	return n;
unreadable:
	return prefix ? n : DBWIRE_MALFORMED;
}

size_t dbwire_request_params(size_t len, const uint8_t *data, uint64_t *id)
{
	*id = 0;
	rd r = pbwire_rd(data, len);
	/* Request.db_query is field 21; DbQuery.params is field 4. */
	return count_params(r, 0, 21, id, 0);
}

size_t dbwire_request_params_prefix(size_t have, const uint8_t *data, uint64_t *id)
{
	*id = 0;
	rd r = pbwire_rd(data, have);
	return count_params(r, 0, 21, id, 1);
}

static int request_field(ProtobufCAllocator *a, void *msg, const fld *f)
{
	Porter__V1__Request *m = msg;
	switch (f->num) {
	case 1:
		VAR(m->id, f->v);
		return 0;
	case 2:
		VAR(m->timeout_ms, (uint32_t)f->v);
		return 0;
	case 21:
		ONCE(db_query, query);
		m->body_case = PORTER__V1__REQUEST__BODY_DB_QUERY;
		return 0;
	case 11:
		ONCE(ping, pingwire_unpack_ping);
		m->body_case = PORTER__V1__REQUEST__BODY_PING;
		return 0;
	case 30:
		ONCE(http, httpwire_unpack_request);
		m->body_case = PORTER__V1__REQUEST__BODY_HTTP;
		return 0;
	case 31:
		ONCE(http_fetch, httpwire_unpack_fetch);
		m->body_case = PORTER__V1__REQUEST__BODY_HTTP_FETCH;
		return 0;
	default:
		return -1;
	}
}

Porter__V1__Request *dbwire_unpack_request(ProtobufCAllocator *a, size_t len, const uint8_t *data)
{
	rd r = pbwire_rd(data, len);
	return each_field(a, r, take_msg(a, &porter__v1__request__descriptor), request_field);
}
