/* httpwire - hand-written codec of HTTP requests and replies; see httpwire.h. */
#include "httpwire.h"

#include <stdatomic.h>
#include <stddef.h>

#include "dbwire.h"
#include "frame.h"
#include "porter_errors.h"

static int schema_check(void)
{
	return porter__v1__http_request__descriptor.n_fields == 14 &&
	       porter__v1__http_header__descriptor.n_fields == 2 &&
	       porter__v1__http_fetch__descriptor.n_fields == 1 &&
	       porter__v1__http_response__descriptor.n_fields == 9 &&
	       porter__v1__http_timings__descriptor.n_fields == 5 &&
	       porter__v1__http_hop__descriptor.n_fields == 2;
}

/* Looked at once: -1 until then. */
static _Atomic int shape = -1;

int httpwire_schema_known(void)
{
	int v = atomic_load_explicit(&shape, memory_order_relaxed);
	if (v < 0) {
		v = schema_check();
		atomic_store_explicit(&shape, v, memory_order_relaxed);
	}
	return v;
}

/* ---- encoding ---- */

static size_t header_size(const Porter__V1__HttpHeader *h)
{
	return str_size(1, h->name) + str_size(2, h->value);
}

/* Size of `n` headers as repeated field `field`; SIZE_MAX when one
 * carries unknown fields. */
static size_t headers_size(unsigned field, Porter__V1__HttpHeader *const *h, size_t n)
{
	size_t s = 0;
	for (size_t i = 0; i < n; i++) {
		if (h[i]->base.n_unknown_fields)
			return SIZE_MAX;
		s += len_size(field, header_size(h[i]));
	}
	return s;
}

static uint8_t *put_headers(uint8_t *p, unsigned field, Porter__V1__HttpHeader *const *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		p = put_len(p, field, header_size(h[i]));
		p = put_str(p, 1, h[i]->name);
		p = put_str(p, 2, h[i]->value);
	}
	return p;
}

static size_t timings_size(const Porter__V1__HttpTimings *t)
{
	return u64_size(1, t->namelookup_us) + u64_size(2, t->connect_us) + u64_size(3, t->tls_us) +
	       u64_size(4, t->first_byte_us) + u64_size(5, t->total_us);
}

/* A hop's size, SIZE_MAX when a message in it carries unknown fields. */
static size_t hop_size(const Porter__V1__HttpHop *hop)
{
	if (hop->base.n_unknown_fields)
		return SIZE_MAX;
	size_t h = headers_size(2, hop->headers, hop->n_headers);
	return h == SIZE_MAX ? h : str_size(1, hop->status_line) + h;
}

size_t httpwire_response_size(const Porter__V1__HttpResponse *h)
{
	if (!httpwire_schema_known() || h->base.n_unknown_fields ||
	    (h->timings && h->timings->base.n_unknown_fields))
		return SIZE_MAX;
	size_t n = headers_size(2, h->headers, h->n_headers);
	if (n == SIZE_MAX)
		return n;
	for (size_t i = 0; i < h->n_hops; i++) {
		size_t s = hop_size(h->hops[i]);
		if (s == SIZE_MAX)
			return s;
		n += len_size(9, s);
	}
	return n + u64_size(1, i32_wire(h->status)) + bytes_size(3, &h->body) +
	       str_size(4, h->effective_url) +
	       (h->timings ? len_size(5, timings_size(h->timings)) : 0) +
	       u64_size(6, h->stream_id) + u64_size(7, h->redirects) + str_size(8, h->status_line);
}

/* The fields before the body (3), in field order. */
static uint8_t *put_response_head(uint8_t *p, const Porter__V1__HttpResponse *h)
{
	p = put_u64(p, 1, i32_wire(h->status));
	return put_headers(p, 2, h->headers, h->n_headers);
}

/* The fields after the body, in field order. */
static uint8_t *put_response_tail(uint8_t *p, const Porter__V1__HttpResponse *h)
{
	p = put_str(p, 4, h->effective_url);
	if (h->timings) {
		const Porter__V1__HttpTimings *t = h->timings;
		p = put_len(p, 5, timings_size(t));
		p = put_u64(p, 1, t->namelookup_us);
		p = put_u64(p, 2, t->connect_us);
		p = put_u64(p, 3, t->tls_us);
		p = put_u64(p, 4, t->first_byte_us);
		p = put_u64(p, 5, t->total_us);
	}
	p = put_u64(p, 6, h->stream_id);
	p = put_u64(p, 7, h->redirects);
	p = put_str(p, 8, h->status_line);
	for (size_t i = 0; i < h->n_hops; i++) {
		const Porter__V1__HttpHop *hop = h->hops[i];
		p = put_len(p, 9, hop_size(hop));
		p = put_str(p, 1, hop->status_line);
		p = put_headers(p, 2, hop->headers, hop->n_headers);
	}
	return p;
}

/* In field order, as protobuf-c writes them. */
uint8_t *httpwire_put_response(uint8_t *p, const Porter__V1__HttpResponse *h)
{
	p = put_response_head(p, h);
	p = put_opt_bytes(p, 3, &h->body);
	return put_response_tail(p, h);
}

static uint64_t zigzag32(int32_t v)
{
	return (uint32_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}

int httpwire_frame_response(const Porter__V1__Response *r, size_t max_frame, uint8_t **buf,
			    size_t *cap, size_t *head_len, size_t *tail_len)
{
	const Porter__V1__HttpResponse *h = r->http;
	size_t hsz;
	/* What dbwire_pack_response would pack itself, less the error
	 * replies (they carry no body) and empty bodies. */
	if (!dbwire_schema_known() || r->body_case != PORTER__V1__RESPONSE__BODY_HTTP || !h ||
	    !h->body.len || r->base.n_unknown_fields || r->error || (r->message && *r->message) ||
	    (hsz = httpwire_response_size(h)) == SIZE_MAX)
		return 1;
	size_t len = u64_size(1, r->id) + u64_size(2, zigzag32(r->status)) +
		     u64_size(5, r->more != 0) + len_size(30, hsz);
	if (len > max_frame || len > UINT32_MAX)
		return PORTER_E_TOO_LARGE;
	/* Room for everything but the body; the header written is the
	 * whole frame's. */
	if (pbwire_reserve(buf, cap, len - h->body.len) < 0)
		return PORTER_E_NOMEM;
	frame_put_header(*buf, (uint32_t)len);
	uint8_t *p = *buf + FRAME_HEADER_SIZE;
	p = put_u64(p, 1, r->id);
	p = put_u64(p, 2, zigzag32(r->status));
	p = put_u64(p, 5, r->more != 0);
	p = put_len(p, 30, hsz);
	p = put_response_head(p, h);
	p = put_len(p, 3, h->body.len);
	*head_len = (size_t)(p - *buf);
	p = put_response_tail(p, h);
	*tail_len = (size_t)(p - *buf) - *head_len;
	return 0;
}

static size_t request_size(const Porter__V1__HttpRequest *q)
{
	size_t h = headers_size(3, q->headers, q->n_headers);
	if (h == SIZE_MAX)
		return h;
	return str_size(1, q->method) + str_size(2, q->url) + h + bytes_size(4, &q->body) +
	       u64_size(5, q->transfer_timeout_ms) + u64_size(6, q->follow_redirects != 0) +
	       u64_size(7, q->max_redirects) + u64_size(8, q->max_response) +
	       u64_size(9, q->stream != 0) + u64_size(10, q->chunk_size) +
	       u64_size(11, q->keep_credentials != 0) + u64_size(12, q->body_stream != 0) +
	       u64_size(13, (uint64_t)q->body_size) + u64_size(14, q->connect_timeout_ms);
}

static uint8_t *put_request(uint8_t *p, const Porter__V1__HttpRequest *q)
{
	p = put_str(p, 1, q->method);
	p = put_str(p, 2, q->url);
	p = put_headers(p, 3, q->headers, q->n_headers);
	p = put_opt_bytes(p, 4, &q->body);
	p = put_u64(p, 5, q->transfer_timeout_ms);
	p = put_u64(p, 6, q->follow_redirects != 0);
	p = put_u64(p, 7, q->max_redirects);
	p = put_u64(p, 8, q->max_response);
	p = put_u64(p, 9, q->stream != 0);
	p = put_u64(p, 10, q->chunk_size);
	p = put_u64(p, 11, q->keep_credentials != 0);
	p = put_u64(p, 12, q->body_stream != 0);
	p = put_u64(p, 13, (uint64_t)q->body_size);
	return put_u64(p, 14, q->connect_timeout_ms);
}

int httpwire_pack_request(const Porter__V1__Request *r, size_t max_frame, uint8_t **buf,
			  size_t *cap, size_t *outlen)
{
	const Porter__V1__HttpRequest *q = NULL;
	const Porter__V1__HttpFetch *fetch = NULL;
	size_t body;
	if (!httpwire_schema_known())
		return 0;
	if (r->body_case == PORTER__V1__REQUEST__BODY_HTTP) {
		q = r->http;
		if (!q || q->base.n_unknown_fields || (body = request_size(q)) == SIZE_MAX)
			return 0;
	} else if (r->body_case == PORTER__V1__REQUEST__BODY_HTTP_FETCH) {
		fetch = r->http_fetch;
		if (!fetch || fetch->base.n_unknown_fields)
			return 0;
		body = u64_size(1, fetch->stream_id);
	} else {
		return 0;
	}
	uint8_t *p;
	int rc = pbwire_begin_request(r, q ? 30 : 31, body, max_frame, buf, cap, &p);
	if (rc < 0)
		return rc;
	p = q ? put_request(p, q) : put_u64(p, 1, fetch->stream_id);
	*outlen = (size_t)(p - *buf);
	return 1;
}

/* ---- decoding ---- */

#define F(T, num, kind, member)                                                                    \
	{                                                                                          \
		num, PBWIRE_##kind, offsetof(T, member)                                            \
	}
#define NFIELDS(f) (sizeof(f) / sizeof((f)[0]))

static const pbwire_field header_fields[] = {
	F(Porter__V1__HttpHeader, 1, STR, name),
	F(Porter__V1__HttpHeader, 2, STR, value),
};

static const pbwire_field timings_fields[] = {
	F(Porter__V1__HttpTimings, 1, U64, namelookup_us),
	F(Porter__V1__HttpTimings, 2, U64, connect_us),
	F(Porter__V1__HttpTimings, 3, U64, tls_us),
	F(Porter__V1__HttpTimings, 4, U64, first_byte_us),
	F(Porter__V1__HttpTimings, 5, U64, total_us),
};

static const pbwire_field fetch_fields[] = {
	F(Porter__V1__HttpFetch, 1, U64, stream_id),
};

static const pbwire_field hop_fields[] = {
	F(Porter__V1__HttpHop, 1, STR, status_line),
};

static const pbwire_field request_fields[] = {
	F(Porter__V1__HttpRequest, 1, STR, method),
	F(Porter__V1__HttpRequest, 2, STR, url),
	F(Porter__V1__HttpRequest, 4, BYTES, body),
	F(Porter__V1__HttpRequest, 5, U32, transfer_timeout_ms),
	F(Porter__V1__HttpRequest, 6, BOOL, follow_redirects),
	F(Porter__V1__HttpRequest, 7, U32, max_redirects),
	F(Porter__V1__HttpRequest, 8, U64, max_response),
	F(Porter__V1__HttpRequest, 9, BOOL, stream),
	F(Porter__V1__HttpRequest, 10, U32, chunk_size),
	F(Porter__V1__HttpRequest, 11, BOOL, keep_credentials),
	F(Porter__V1__HttpRequest, 12, BOOL, body_stream),
	F(Porter__V1__HttpRequest, 13, U64, body_size),
	F(Porter__V1__HttpRequest, 14, U32, connect_timeout_ms),
};

/* HttpResponse's plain fields; headers (2), timings (5) and hops (9) are
 * read by response_sub. */
static const pbwire_field response_fields[] = {
	F(Porter__V1__HttpResponse, 1, U32, status),
	F(Porter__V1__HttpResponse, 3, BYTES, body),
	F(Porter__V1__HttpResponse, 4, STR, effective_url),
	F(Porter__V1__HttpResponse, 6, U64, stream_id),
	F(Porter__V1__HttpResponse, 7, U32, redirects),
	F(Porter__V1__HttpResponse, 8, STR, status_line),
};

/* Bits of the field numbers (all below 32) each message has. */
#define KNOWN(hi) ((uint32_t)((1ull << ((hi) + 1)) - 2u))

/*
 * The occurrences of length-delimited fields `w1` and `w2` (0: none) in
 * message `r`, into `*n1` and `*n2`, every tag checked and every value
 * skipped, in one pass; -1 when malformed, when a field outside `known`
 * appears, or when w1 or w2 comes with another wire type. Counted first so
 * that a repeated field's array is allocated once, at its final size.
 */
static int count_fields(rd r, uint32_t known, uint32_t w1, size_t *n1, uint32_t w2, size_t *n2)
{
	*n1 = *n2 = 0;
	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		if (get_tag(&r, &field, &wt) < 0 || field >= 32 || !(known & (1u << field)) ||
		    ((field == w1 || field == w2) && wt != WT_LEN) || skip(&r, wt) < 0)
			return -1;
		*n1 += field == w1;
		*n2 += field == w2;
	}
	return 0;
}

/* Reads sub-message field `f` of `m` (its plain fields are the table's):
 * 0, or -1 to decline. */
typedef int sub_fn(ProtobufCAllocator *a, void *m, const fld *f);

/*
 * Reads message `r` into `m` (not NULL): repeated header field `hf` into
 * `*headers`/`*n` (the message's own members, their array allocated here
 * for the `count` counted), the fields of table `t` (`nt` of them) as
 * pbwire stores them, any other field by `sub` (NULL: none; the caller's
 * count let only known fields through). `m`, or NULL to decline.
 */
static void *read_msg(ProtobufCAllocator *a, rd r, void *m, const pbwire_field *t, size_t nt,
		      uint32_t hf, size_t count, size_t *n, Porter__V1__HttpHeader ***headers,
		      sub_fn *sub)
{
	if (count && !(*headers = take(a, count * sizeof(**headers))))
		return NULL;
	fld f;
	while (r.p < r.end) {
		if (next_field(&r, &f) < 0)
			return NULL;
		if (f.num == hf) {
			/* The count saw it with its wire type. */
			Porter__V1__HttpHeader *h =
				pbwire_flat(a, f.in, &porter__v1__http_header__descriptor,
					    header_fields, NFIELDS(header_fields));
			if (!h)
				return NULL;
			(*headers)[(*n)++] = h;
			continue;
		}
		int rc = pbwire_store(a, m, &f, t, nt);
		if (rc < 0 || (rc > 0 && (!sub || sub(a, m, &f) < 0)))
			return NULL;
	}
	return m;
}

Porter__V1__HttpRequest *httpwire_unpack_request(ProtobufCAllocator *a, rd r)
{
	if (!httpwire_schema_known())
		return NULL;
	size_t nh, none;
	if (count_fields(r, KNOWN(14), 3, &nh, 0, &none) < 0)
		return NULL;
	Porter__V1__HttpRequest *m = take_msg(a, &porter__v1__http_request__descriptor);
	if (!m)
		return NULL;
	return read_msg(a, r, m, request_fields, NFIELDS(request_fields), 3, nh, &m->n_headers,
			&m->headers, NULL);
}

Porter__V1__HttpFetch *httpwire_unpack_fetch(ProtobufCAllocator *a, rd r)
{
	if (!httpwire_schema_known())
		return NULL;
	return pbwire_flat(a, r, &porter__v1__http_fetch__descriptor, fetch_fields,
			   NFIELDS(fetch_fields));
}

static Porter__V1__HttpHop *hop(ProtobufCAllocator *a, rd r)
{
	size_t nh, none;
	if (count_fields(r, KNOWN(2), 2, &nh, 0, &none) < 0)
		return NULL;
	Porter__V1__HttpHop *m = take_msg(a, &porter__v1__http_hop__descriptor);
	if (!m)
		return NULL;
	return read_msg(a, r, m, hop_fields, NFIELDS(hop_fields), 2, nh, &m->n_headers, &m->headers,
			NULL);
}

/* HttpResponse's timings, at most once (protobuf-c would merge a second),
 * and its hops, into the array httpwire_unpack_response sized. */
static int response_sub(ProtobufCAllocator *a, void *msg, const fld *f)
{
	Porter__V1__HttpResponse *m = msg;
	if (f->wt != WT_LEN)
		return -1;
	if (f->num == 5) {
		if (m->timings)
			return -1;
		m->timings = pbwire_flat(a, f->in, &porter__v1__http_timings__descriptor,
					 timings_fields, NFIELDS(timings_fields));
		return m->timings ? 0 : -1;
	}
	/* 9: read_msg let no other field through. */
	return (m->hops[m->n_hops++] = hop(a, f->in)) ? 0 : -1;
}

Porter__V1__HttpResponse *httpwire_unpack_response(ProtobufCAllocator *a, rd r)
{
	if (!httpwire_schema_known())
		return NULL;
	size_t nh, hops;
	if (count_fields(r, KNOWN(9), 2, &nh, 9, &hops) < 0)
		return NULL;
	Porter__V1__HttpResponse *m = take_msg(a, &porter__v1__http_response__descriptor);
	if (!m || (hops && !(m->hops = take(a, hops * sizeof(*m->hops)))))
		return NULL;
	return read_msg(a, r, m, response_fields, NFIELDS(response_fields), 2, nh, &m->n_headers,
			&m->headers, response_sub);
}
