/* pbwire - protobuf wire format pieces shared by the hand-written codecs; see pbwire.h. */
#include "pbwire.h"

#include <stdlib.h>

#include "frame.h"
#include "porter_errors.h"

int pbwire_reserve(uint8_t **buf, size_t *cap, size_t len)
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

int pbwire_begin_request(const Porter__V1__Request *r, unsigned field, size_t body,
			 size_t max_frame, uint8_t **buf, size_t *cap, uint8_t **p)
{
	size_t len = u64_size(1, r->id) + u64_size(2, r->timeout_ms) + len_size(field, body);
	if (len > max_frame || len > UINT32_MAX)
		return PORTER_E_TOO_LARGE;
	if (pbwire_reserve(buf, cap, len) < 0)
		return PORTER_E_NOMEM;
	uint8_t *q = *buf + FRAME_HEADER_SIZE;
	q = put_u64(q, 1, r->id);
	q = put_u64(q, 2, r->timeout_ms);
	*p = put_len(q, field, body);
	return 0;
}

/* Stores field `f` as kind `k` at `dst`. 0, or -1 to decline. */
static int flat_field(ProtobufCAllocator *a, const fld *f, pbwire_kind k, char *dst)
{
	if (k == PBWIRE_STR || k == PBWIRE_BYTES) {
		if (f->wt != WT_LEN)
			return -1;
		if (k == PBWIRE_BYTES)
			return take_bytes(a, &f->in, (ProtobufCBinaryData *)(void *)dst);
		char *s = take_str(a, &f->in);
		if (!s)
			return -1;
		memcpy(dst, &s, sizeof(s));
		return 0;
	}
	if (f->wt != WT_VARINT)
		return -1;
	if (k == PBWIRE_BOOL) {
		protobuf_c_boolean b = f->v != 0;
		memcpy(dst, &b, sizeof(b));
	} else if (k == PBWIRE_U64) {
		memcpy(dst, &f->v, sizeof(f->v));
	} else {
		uint32_t u = (uint32_t)f->v;
		memcpy(dst, &u, sizeof(u));
	}
	return 0;
}

int pbwire_store(ProtobufCAllocator *a, void *m, const fld *x, const pbwire_field *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (f[i].num == x->num)
			return flat_field(a, x, f[i].kind, (char *)m + f[i].offset);
	return 1;
}

void *pbwire_flat(ProtobufCAllocator *a, rd r, const ProtobufCMessageDescriptor *d,
		  const pbwire_field *f, size_t n)
{
	char *m = take_msg(a, d);
	fld x = {0};
	if (!m)
		return NULL;
	while (r.p < r.end)
		if (next_field(&r, &x) < 0 || pbwire_store(a, m, &x, f, n) != 0)
			return NULL;
	return m;
}
