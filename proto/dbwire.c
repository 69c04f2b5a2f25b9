/* dbwire - hand-written encoder of query-result replies; see dbwire.h. */
#include "dbwire.h"

#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "porter.h"

/* Wire types. */
#define WT_VARINT 0u
#define WT_LEN 2u

/* Results of one reply whose sizes are kept on the stack. */
#define RESULTS_ON_STACK 16

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

/* int32 fields go on the wire sign-extended to 64 bits. */
static uint64_t i32_wire(int32_t v)
{
	return (uint64_t)(int64_t)v;
}

static uint64_t zigzag32(int32_t v)
{
	return (uint32_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
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
	if (r->base.n_unknown_fields || (r->error && r->error->base.n_unknown_fields))
		return 0;
	if (r->body_case == PORTER__V1__RESPONSE__BODY_DB_QUERY) {
		qr = r->db_query;
		if (!qr || qr->base.n_unknown_fields)
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
		     u64_size(5, r->more != 0) + (qr ? len_size(21, body) : 0);
	if (len > max_frame || len > UINT32_MAX) {
		rc = PORTER_E_TOO_LARGE;
		goto out;
	}
	if (*cap < FRAME_HEADER_SIZE + len) {
		uint8_t *nbuf = realloc(*buf, FRAME_HEADER_SIZE + len);
		if (!nbuf) {
			rc = PORTER_E_NOMEM;
			goto out;
		}
		*buf = nbuf;
		*cap = FRAME_HEADER_SIZE + len;
	}
	frame_put_header(*buf, (uint32_t)len);
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
	*outlen = (size_t)(p - *buf);
	rc = 1;
out:
	if (sizes != sizes_s)
		free(sizes);
	return rc;
}
