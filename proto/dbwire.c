/* dbwire - hand-written codec of query and ping requests and replies; see dbwire.h. */
#include "dbwire.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "porter_errors.h"

/* Wire types. */
#define WT_VARINT 0u
#define WT_LEN 2u

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
	return plain_fields(&porter__v1__request__descriptor) == 2 &&
	       porter__v1__ping__descriptor.n_fields == 2 &&
	       porter__v1__db_query__descriptor.n_fields == 5 &&
	       porter__v1__db_param__descriptor.n_fields == 4;
}

static int response_known(void)
{
	return plain_fields(&porter__v1__response__descriptor) == 5 &&
	       porter__v1__error_detail__descriptor.n_fields == 15 &&
	       porter__v1__ping_reply__descriptor.n_fields == 1 &&
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

static size_t varint_size(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static uint64_t tag(unsigned field, unsigned wt)
{
	return ((uint64_t)field << 3) | wt;
}

/* Size of a length-delimited field holding `len` bytes. */
static size_t len_size(unsigned field, size_t len)
{
	return varint_size(tag(field, WT_LEN)) + varint_size(len) + len;
}

/* proto3 leaves out zero scalars and empty strings and bytes, as
 * protobuf-c does; the sizes below and the writers agree on that. */
static size_t str_size(unsigned field, const char *s)
{
	return s && *s ? len_size(field, strlen(s)) : 0;
}

static size_t u64_size(unsigned field, uint64_t v)
{
	return v ? varint_size(tag(field, WT_VARINT)) + varint_size(v) : 0;
}

static uint8_t *put_len(uint8_t *p, unsigned field, size_t len)
{
	p = put_varint(p, tag(field, WT_LEN));
	return put_varint(p, len);
}

static uint8_t *put_bytes(uint8_t *p, unsigned field, const void *data, size_t len)
{
	p = put_len(p, field, len);
	if (len)
		memcpy(p, data, len);
	return p + len;
}

static uint8_t *put_str(uint8_t *p, unsigned field, const char *s)
{
	return s && *s ? put_bytes(p, field, s, strlen(s)) : p;
}

static uint8_t *put_u64(uint8_t *p, unsigned field, uint64_t v)
{
	if (!v)
		return p;
	p = put_varint(p, tag(field, WT_VARINT));
	return put_varint(p, v);
}

/* A bytes field, left out when empty. */
static size_t bytes_size(unsigned field, const ProtobufCBinaryData *b)
{
	return b->len ? len_size(field, b->len) : 0;
}

static uint8_t *put_opt_bytes(uint8_t *p, unsigned field, const ProtobufCBinaryData *b)
{
	return b->len ? put_bytes(p, field, b->data, b->len) : p;
}

/* int32 fields go on the wire sign-extended to 64 bits. */
static uint64_t i32_wire(int32_t v)
{
	return (uint64_t)(int64_t)v;
}

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

/* Makes room for a frame of `len` payload bytes in `*buf` and writes its
 * header. 0 or -1 (out of memory; the buffer is left as it was). */
static int reserve(uint8_t **buf, size_t *cap, size_t len)
{
	if (*cap < FRAME_HEADER_SIZE + len) {
		uint8_t *nbuf = realloc(*buf, FRAME_HEADER_SIZE + len);
		if (!nbuf)
			return -1;
		*buf = nbuf;
		*cap = FRAME_HEADER_SIZE + len;
	}
	frame_put_header(*buf, (uint32_t)len);
	return 0;
}

int dbwire_pack_response(const Porter__V1__Response *r, size_t max_frame, uint8_t **buf,
			 size_t *cap, size_t *outlen)
{
	const Porter__V1__DbQueryReply *qr = NULL;
	const Porter__V1__PingReply *ping = NULL;
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
		     (ping ? len_size(11, bytes_size(1, &ping->payload)) : 0);
	if (len > max_frame || len > UINT32_MAX) {
		rc = PORTER_E_TOO_LARGE;
		goto out;
	}
	if (reserve(buf, cap, len) < 0) {
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
		p = put_len(p, 11, bytes_size(1, &ping->payload));
		p = put_opt_bytes(p, 1, &ping->payload);
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

/* Reserves the frame of a Request whose body is field `field` of `body`
 * bytes, and writes its header, id, timeout and the body's tag and length;
 * `*p` is where the body goes. 0, PORTER_E_TOO_LARGE or PORTER_E_NOMEM. */
static int begin_request(const Porter__V1__Request *r, unsigned field, size_t body,
			 size_t max_frame, uint8_t **buf, size_t *cap, uint8_t **p)
{
	size_t len = u64_size(1, r->id) + u64_size(2, r->timeout_ms) + len_size(field, body);
	if (len > max_frame || len > UINT32_MAX)
		return PORTER_E_TOO_LARGE;
	if (reserve(buf, cap, len) < 0)
		return PORTER_E_NOMEM;
	uint8_t *q = *buf + FRAME_HEADER_SIZE;
	q = put_u64(q, 1, r->id);
	q = put_u64(q, 2, r->timeout_ms);
	*p = put_len(q, field, body);
	return 0;
}

/* A Request whose body is a Ping; as dbwire_pack_request. */
static int pack_ping(const Porter__V1__Request *r, size_t max_frame, uint8_t **buf, size_t *cap,
		     size_t *outlen)
{
	const Porter__V1__Ping *ping = r->ping;
	if (!ping || ping->base.n_unknown_fields)
		return 0;
	size_t body = bytes_size(1, &ping->payload) + u64_size(2, ping->delay_ms);
	uint8_t *p;
	int rc = begin_request(r, 11, body, max_frame, buf, cap, &p);
	if (rc < 0)
		return rc;
	p = put_opt_bytes(p, 1, &ping->payload);
	p = put_u64(p, 2, ping->delay_ms);
	*outlen = (size_t)(p - *buf);
	return 1;
}

int dbwire_pack_request(const Porter__V1__Request *r, size_t max_frame, uint8_t **buf, size_t *cap,
			size_t *outlen)
{
	if (!known(&request_shape, request_known) || r->base.n_unknown_fields)
		return 0;
	if (r->body_case == PORTER__V1__REQUEST__BODY_PING)
		return pack_ping(r, max_frame, buf, cap, outlen);
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
	int rc = begin_request(r, 21, body, max_frame, buf, cap, &p);
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

/* Bytes left to read of one message. */
typedef struct rd {
	const uint8_t *p, *end;
} rd;

/* A varint of at most `max` bytes (protobuf-c reads tags and lengths in
 * five at most, values in ten). A tenth byte carrying more than the 64th
 * bit is declined: protobuf-c drops those bits from integers but counts
 * them for booleans. */
static int get_varint_max(rd *r, uint64_t *v, unsigned max)
{
	uint64_t x = 0;
	for (unsigned i = 0; i < max; i++) {
		if (r->p >= r->end)
			return -1;
		uint8_t b = *r->p++;
		if (i == 9 && (b & 0x7e))
			return -1;
		x |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

static int get_varint(rd *r, uint64_t *v)
{
	return get_varint_max(r, v, 10);
}

/* The next field's number and wire type; -1 at a malformed tag. */
static int get_tag(rd *r, uint32_t *field, unsigned *wt)
{
	uint64_t v;
	if (get_varint_max(r, &v, 5) < 0 || v > UINT32_MAX || (v >> 3) == 0)
		return -1;
	*field = (uint32_t)(v >> 3);
	*wt = (unsigned)(v & 7);
	return 0;
}

/* A length-delimited field's bytes (wire type already checked). */
static int get_len(rd *r, rd *inner)
{
	uint64_t n;
	if (get_varint_max(r, &n, 5) < 0 || n > (uint64_t)(r->end - r->p))
		return -1;
	inner->p = r->p;
	inner->end = r->p + n;
	r->p += n;
	return 0;
}

/* Skips a field of a wire type this decoder reads (varint or length). */
static int skip(rd *r, unsigned wt)
{
	uint64_t v;
	rd inner;
	if (wt == WT_VARINT)
		return get_varint(r, &v);
	if (wt == WT_LEN)
		return get_len(r, &inner);
	return -1;
}

static void *take(ProtobufCAllocator *a, size_t n)
{
	return a->alloc(a->allocator_data, n);
}

/* A message struct of type `d` set to its defaults, as unpack starts one. */
static void *take_msg(ProtobufCAllocator *a, const ProtobufCMessageDescriptor *d)
{
	void *m = take(a, d->sizeof_message);
	if (m)
		protobuf_c_message_init(d, m);
	return m;
}

/* As protobuf-c stores them: a copy with a NUL after it. */
static char *take_str(ProtobufCAllocator *a, const rd *v)
{
	size_t n = (size_t)(v->end - v->p);
	char *s = take(a, n + 1);
	if (s) {
		memcpy(s, v->p, n);
		s[n] = 0;
	}
	return s;
}

/* As protobuf-c stores them: data NULL when empty. 0 or -1. */
static int take_bytes(ProtobufCAllocator *a, const rd *v, ProtobufCBinaryData *out)
{
	out->len = (size_t)(v->end - v->p);
	out->data = NULL;
	if (!out->len)
		return 0;
	if (!(out->data = take(a, out->len)))
		return -1;
	memcpy(out->data, v->p, out->len);
	return 0;
}

/*
 * Each message decoder below accepts exactly the fields of its message with
 * their proper wire types, each singular sub-message at most once, and
 * declines (NULL) anything else, whether malformed or merely unusual
 * (unknown fields, a repeated sub-message to merge): protobuf-c then
 * decodes it, or reports it malformed. What it accepts it stores as
 * protobuf-c would: last value wins, scalars truncated to their width.
 */

/* Field reading helpers: the field's value, or decline. */
#define VARINT(v)                                                                                  \
	do {                                                                                       \
		if (wt != WT_VARINT || get_varint(&r, &(v)) < 0)                                   \
			return NULL;                                                               \
	} while (0)
#define LEN(in)                                                                                    \
	do {                                                                                       \
		if (wt != WT_LEN || get_len(&r, &(in)) < 0)                                        \
			return NULL;                                                               \
	} while (0)

static Porter__V1__ErrorDetail *error_detail(ProtobufCAllocator *a, rd r)
{
	Porter__V1__ErrorDetail *m = take_msg(a, &porter__v1__error_detail__descriptor);
	if (!m)
		return NULL;
	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		uint64_t v;
		rd in;
		if (get_tag(&r, &field, &wt) < 0)
			return NULL;
		switch (field) {
		case 1:
		case 2:
		case 3: {
			LEN(in);
			char *s = take_str(a, &in);
			if (!s)
				return NULL;
			*(field == 1 ? &m->sqlstate : field == 2 ? &m->detail : &m->hint) = s;
			break;
		}
		case 4:
			VARINT(v);
			m->http_status = (int32_t)(uint32_t)v;
			break;
		case 5:
			VARINT(v);
			m->sys_errno = (int32_t)(uint32_t)v;
			break;
		default:
			return NULL;
		}
	}
	return m;
}

static Porter__V1__DbColumn *column(ProtobufCAllocator *a, rd r)
{
	Porter__V1__DbColumn *m = take_msg(a, &porter__v1__db_column__descriptor);
	if (!m)
		return NULL;
	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		uint64_t v;
		rd in;
		if (get_tag(&r, &field, &wt) < 0)
			return NULL;
		if (field == 1) {
			LEN(in);
			if (!(m->name = take_str(a, &in)))
				return NULL;
		} else if (field == 2) {
			VARINT(v);
			m->type_oid = (uint32_t)v;
		} else {
			return NULL;
		}
	}
	return m;
}

/* Counts the occurrences of `want` (length-delimited) in message `r`,
 * checking every tag and skipping every value; -1 when malformed or when a
 * field other than `known` (a bit per field number below 32) appears. */
static long count_field(rd r, uint32_t want, uint32_t known)
{
	long n = 0;
	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		if (get_tag(&r, &field, &wt) < 0 || field >= 32 || !(known & (1u << field)))
			return -1;
		if (field == want && wt != WT_LEN)
			return -1;
		if (skip(&r, wt) < 0)
			return -1;
		n += field == want;
	}
	return n;
}

/* An array of `n` pointers (or bytes), or a non-NULL empty one. */
static void *take_array(ProtobufCAllocator *a, long n, size_t each)
{
	return n ? take(a, (size_t)n * each) : NULL;
}

static Porter__V1__DbRow *row(ProtobufCAllocator *a, rd r)
{
	Porter__V1__DbRow *m = take_msg(a, &porter__v1__db_row__descriptor);
	long n = count_field(r, 1, 1u << 1 | 1u << 2);
	if (!m || n < 0)
		return NULL;
	if (n && !(m->values = take_array(a, n, sizeof(*m->values))))
		return NULL;
	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		rd in;
		if (get_tag(&r, &field, &wt) < 0)
			return NULL;
		LEN(in);
		if (take_bytes(a, &in, field == 1 ? &m->values[m->n_values++] : &m->nulls) < 0)
			return NULL;
	}
	return m;
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
	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		uint64_t v;
		rd in;
		if (get_tag(&r, &field, &wt) < 0)
			return NULL;
		switch (field) {
		case 1:
			LEN(in);
			if (!(m->columns[m->n_columns++] = column(a, in)))
				return NULL;
			break;
		case 2:
			LEN(in);
			if (!(m->rows[m->n_rows++] = row(a, in)))
				return NULL;
			break;
		case 3:
			VARINT(v);
			m->affected = v;
			break;
		case 4:
			LEN(in);
			if (!(m->command_tag = take_str(a, &in)))
				return NULL;
			break;
		default:
			return NULL;
		}
	}
	return m;
}

static Porter__V1__DbQueryReply *query_reply(ProtobufCAllocator *a, rd r)
{
	Porter__V1__DbQueryReply *m = take_msg(a, &porter__v1__db_query_reply__descriptor);
	long n = count_field(r, 1, 1u << 1 | 1u << 2);
	if (!m || n < 0)
		return NULL;
	if (n && !(m->results = take_array(a, n, sizeof(*m->results))))
		return NULL;
	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		uint64_t v;
		rd in;
		if (get_tag(&r, &field, &wt) < 0)
			return NULL;
		if (field == 1) {
			LEN(in);
			if (!(m->results[m->n_results++] = result(a, in)))
				return NULL;
		} else {
			VARINT(v);
			m->stream = v;
		}
	}
	return m;
}

/* The fields of a Ping (`delay` not NULL) or of a PingReply (NULL): the
 * payload, and the delay. 0, or -1 to decline. */
static int ping_fields(ProtobufCAllocator *a, rd r, ProtobufCBinaryData *payload, uint32_t *delay)
{
	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		uint64_t v;
		rd in;
		if (get_tag(&r, &field, &wt) < 0)
			return -1;
		if (field == 1 && wt == WT_LEN) {
			if (get_len(&r, &in) < 0 || take_bytes(a, &in, payload) < 0)
				return -1;
		} else if (field == 2 && delay && wt == WT_VARINT) {
			if (get_varint(&r, &v) < 0)
				return -1;
			*delay = (uint32_t)v;
		} else {
			return -1;
		}
	}
	return 0;
}

static Porter__V1__PingReply *ping_reply(ProtobufCAllocator *a, rd r)
{
	Porter__V1__PingReply *m = take_msg(a, &porter__v1__ping_reply__descriptor);
	return m && ping_fields(a, r, &m->payload, NULL) == 0 ? m : NULL;
}

static Porter__V1__Ping *ping_msg(ProtobufCAllocator *a, rd r)
{
	Porter__V1__Ping *m = take_msg(a, &porter__v1__ping__descriptor);
	return m && ping_fields(a, r, &m->payload, &m->delay_ms) == 0 ? m : NULL;
}

Porter__V1__Response *dbwire_unpack_response(ProtobufCAllocator *a, size_t len, const uint8_t *data)
{
	Porter__V1__Response *m = take_msg(a, &porter__v1__response__descriptor);
	if (!m)
		return NULL;
	rd r = {data, data + len};
	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		uint64_t v;
		rd in;
		if (get_tag(&r, &field, &wt) < 0)
			return NULL;
		switch (field) {
		case 1:
			VARINT(v);
			m->id = v;
			break;
		case 2:
			VARINT(v);
			m->status = (int32_t)(((uint32_t)v >> 1) ^ -((uint32_t)v & 1));
			break;
		case 3:
			LEN(in);
			if (!(m->message = take_str(a, &in)))
				return NULL;
			break;
		case 4:
			LEN(in);
			if (m->error || !(m->error = error_detail(a, in)))
				return NULL;
			break;
		case 5:
			VARINT(v);
			m->more = v != 0;
			break;
		case 21:
			LEN(in);
			if (m->db_query || !(m->db_query = query_reply(a, in)))
				return NULL;
			m->body_case = PORTER__V1__RESPONSE__BODY_DB_QUERY;
			break;
		case 11:
			LEN(in);
			if (m->ping || !(m->ping = ping_reply(a, in)))
				return NULL;
			m->body_case = PORTER__V1__RESPONSE__BODY_PING;
			break;
		default:
			return NULL;
		}
	}
	return m;
}

static Porter__V1__DbParam *param(ProtobufCAllocator *a, rd r)
{
	Porter__V1__DbParam *m = take_msg(a, &porter__v1__db_param__descriptor);
	if (!m)
		return NULL;
	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		uint64_t v;
		rd in;
		if (get_tag(&r, &field, &wt) < 0)
			return NULL;
		switch (field) {
		case 1:
			VARINT(v);
			m->is_null = v != 0;
			break;
		case 2:
			LEN(in);
			if (take_bytes(a, &in, &m->value) < 0)
				return NULL;
			break;
		case 3:
			VARINT(v);
			m->binary = v != 0;
			break;
		case 4:
			VARINT(v);
			m->type_oid = (uint32_t)v;
			break;
		default:
			return NULL;
		}
	}
	return m;
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
	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		uint64_t v;
		rd in;
		if (get_tag(&r, &field, &wt) < 0)
			return NULL;
		switch (field) {
		case 1:
			VARINT(v);
			m->session = v;
			break;
		case 2:
		case 3: {
			LEN(in);
			char *s = take_str(a, &in);
			if (!s)
				return NULL;
			*(field == 2 ? &m->conninfo : &m->sql) = s;
			break;
		}
		case 4:
			LEN(in);
			if (!(m->params[m->n_params++] = param(a, in)))
				return NULL;
			break;
		default: /* 5: count_field let no other through */
			VARINT(v);
			m->chunk_rows = (uint32_t)v;
			break;
		}
	}
	return m;
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
 * DbQuery's params); with `id` not NULL, its varint field 1 goes there. */
static size_t count_params(rd r, uint32_t want, uint32_t nested, uint64_t *id)
{
	size_t n = 0;
	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		uint64_t v;
		rd in;
		if (get_tag(&r, &field, &wt) < 0)
			break;
		if (id && field == 1 && wt == WT_VARINT) {
			if (get_varint(&r, &v) < 0)
				break;
			*id = v;
		} else if (wt == WT_LEN && (field == want || field == nested)) {
			if (get_len(&r, &in) < 0)
				break;
			n += field == want ? 1 : count_params(in, 4, 0, NULL);
		} else if (skip_any(&r, wt) < 0) {
			break;
		}
	}
	return n;
}

size_t dbwire_request_params(size_t len, const uint8_t *data, uint64_t *id)
{
	*id = 0;
	rd r = {data, data + len};
	/* Request.db_query is field 21; DbQuery.params is field 4. */
	return count_params(r, 0, 21, id);
}

Porter__V1__Request *dbwire_unpack_request(ProtobufCAllocator *a, size_t len, const uint8_t *data)
{
	Porter__V1__Request *m = take_msg(a, &porter__v1__request__descriptor);
	if (!m)
		return NULL;
	rd r = {data, data + len};
	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		uint64_t v;
		rd in;
		if (get_tag(&r, &field, &wt) < 0)
			return NULL;
		switch (field) {
		case 1:
			VARINT(v);
			m->id = v;
			break;
		case 2:
			VARINT(v);
			m->timeout_ms = (uint32_t)v;
			break;
		case 21:
			LEN(in);
			if (m->db_query || !(m->db_query = query(a, in)))
				return NULL;
			m->body_case = PORTER__V1__REQUEST__BODY_DB_QUERY;
			break;
		case 11:
			LEN(in);
			if (m->ping || !(m->ping = ping_msg(a, in)))
				return NULL;
			m->body_case = PORTER__V1__REQUEST__BODY_PING;
			break;
		default:
			return NULL;
		}
	}
	return m;
}
