/* frame - length-prefixed framing; see frame.h. */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

#include "porter_errors.h"

void frame_reader_init(frame_reader *r, size_t max_frame)
{
	memset(r, 0, sizeof(*r));
	r->max_frame = max_frame;
}

void frame_reader_free(frame_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

void frame_reader_set_limit(frame_reader *r, size_t max_frame)
{
	r->max_frame = max_frame;
}

size_t frame_reader_pending(const frame_reader *r)
{
	return r->end - r->start + r->skip;
}

uint8_t *frame_reader_give(frame_reader *r)
{
	if (!r->buf || frame_reader_pending(r))
		return NULL;
	uint8_t *buf = r->buf;
	r->buf = NULL;
	r->cap = r->start = r->end = 0;
	return buf;
}

void frame_reader_lend(frame_reader *r, arena *a, const uint8_t *payload, size_t len, size_t keep)
{
	if (len < ARENA_LEND_MIN || r->cap <= keep || !r->buf || frame_reader_pending(r))
		return;
	/* Adopting can fail (it allocates), giving cannot: adopt first. */
	if (arena_adopt(a, r->buf) < 0)
		return;
	frame_reader_give(r);
	arena_lend(a, payload, len);
}

int frame_reader_partial(const frame_reader *r, const uint8_t **payload, size_t *have,
			 uint32_t *declared)
{
	size_t got = r->end - r->start;
	if (got < FRAME_HEADER_SIZE)
		return 0;
	uint32_t flen = frame_get_header(r->buf + r->start);
	if (flen > r->max_frame || got - FRAME_HEADER_SIZE >= flen)
		return 0;
	*payload = r->buf + r->start + FRAME_HEADER_SIZE;
	*have = got - FRAME_HEADER_SIZE;
	*declared = flen;
	return 1;
}

void frame_reader_discard(frame_reader *r)
{
	const uint8_t *p;
	size_t have;
	uint32_t flen;
	if (!frame_reader_partial(r, &p, &have, &flen))
		return;
	/* A partial frame is the last thing buffered. */
	r->skip = flen - have;
	r->start = r->end = 0;
	if (r->cap > FRAME_READ_CHUNK) {
		free(r->buf);
		r->buf = NULL;
		r->cap = 0;
	}
}

int frame_reader_has_frame(const frame_reader *r)
{
	size_t have = r->end - r->start;
	if (have < FRAME_HEADER_SIZE)
		return 0;
	uint32_t flen = frame_get_header(r->buf + r->start);
	return flen > r->max_frame || have - FRAME_HEADER_SIZE >= flen;
}

void frame_reader_trim(frame_reader *r, size_t keep)
{
	if (r->start == r->end && r->cap > keep) {
		free(r->buf);
		r->buf = NULL;
		r->cap = r->start = r->end = 0;
	}
}

int frame_reader_space(frame_reader *r, uint8_t **p, size_t *n)
{
	size_t have = r->end - r->start;
	size_t want = FRAME_READ_CHUNK;

	if (have >= FRAME_HEADER_SIZE) {
		uint32_t len = frame_get_header(r->buf + r->start);
		if (len > r->max_frame)
			return PORTER_E_TOO_LARGE;
		/* Room for the rest of this frame and the next header, but
		 * grown at most by the bytes already received (doubling), so
		 * a declared length alone never reserves memory. */
		size_t need = FRAME_HEADER_SIZE + (size_t)len - have + FRAME_HEADER_SIZE;
		size_t step = have > FRAME_READ_CHUNK ? have : FRAME_READ_CHUNK;
		want = need <= step + step / 8 ? need : step;
		if (want < FRAME_READ_CHUNK / 4)
			want = FRAME_READ_CHUNK / 4;
	}

	/* Move the partial frame to the front before growing. */
	if (r->start > 0 && r->cap - r->end < want) {
		memmove(r->buf, r->buf + r->start, have);
		r->start = 0;
		r->end = have;
	}
	if (r->cap - r->end < want) {
		size_t cap = r->end + want;
		uint8_t *nb = realloc(r->buf, cap);
		if (!nb)
			return PORTER_E_NOMEM;
		r->buf = nb;
		r->cap = cap;
	}
	*p = r->buf + r->end;
	*n = r->cap - r->end;
	return 0;
}

void frame_reader_commit(frame_reader *r, size_t n)
{
	if (r->skip) {
		/* The discarded frame's bytes come first; what follows them
		 * (the next frame) moves down over them. */
		size_t k = n < r->skip ? n : r->skip;
		r->skip -= k;
		if (n > k)
			memmove(r->buf + r->end, r->buf + r->end + k, n - k);
		n -= k;
	}
	r->end += n;
}

int frame_reader_next(frame_reader *r, const uint8_t **payload, size_t *len)
{
	size_t have = r->end - r->start;
	if (have < FRAME_HEADER_SIZE)
		return 0;
	uint32_t flen = frame_get_header(r->buf + r->start);
	if (flen > r->max_frame)
		return PORTER_E_TOO_LARGE;
	if (have - FRAME_HEADER_SIZE < flen)
		return 0;
	*payload = r->buf + r->start + FRAME_HEADER_SIZE;
	*len = flen;
	r->start += FRAME_HEADER_SIZE + flen;
	if (r->start == r->end)
		r->start = r->end = 0;
	return 1;
}

int frame_pack(const ProtobufCMessage *msg, size_t max_frame, uint8_t **out, size_t *outlen)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	if (len > max_frame || len > UINT32_MAX)
		return PORTER_E_TOO_LARGE;
	uint8_t *buf = malloc(FRAME_HEADER_SIZE + len);
	if (!buf)
		return PORTER_E_NOMEM;
	frame_put_header(buf, (uint32_t)len);
	protobuf_c_message_pack(msg, buf + FRAME_HEADER_SIZE);
	*out = buf;
	*outlen = FRAME_HEADER_SIZE + len;
	return 0;
}

int frame_pack_into(const ProtobufCMessage *msg, size_t max_frame, uint8_t **buf, size_t *cap,
		    size_t *outlen)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	if (len > max_frame || len > UINT32_MAX)
		return PORTER_E_TOO_LARGE;
	if (*cap < FRAME_HEADER_SIZE + len) {
		uint8_t *nbuf = realloc(*buf, FRAME_HEADER_SIZE + len);
		if (!nbuf)
			return PORTER_E_NOMEM;
		*buf = nbuf;
		*cap = FRAME_HEADER_SIZE + len;
	}
	frame_put_header(*buf, (uint32_t)len);
	protobuf_c_message_pack(msg, *buf + FRAME_HEADER_SIZE);
	*outlen = FRAME_HEADER_SIZE + len;
	return 0;
}
