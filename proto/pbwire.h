/*
 * pbwire - the protobuf wire format pieces shared by the hand-written codecs
 * (dbwire.c for queries and their replies, pingwire.c for pings, httpwire.c
 * for HTTP requests and their replies): varint and
 * length-delimited writers with the sizes that go with them, a bounded
 * reader, and the allocations that build the same structs protobuf-c's
 * unpack builds. Internal to proto/: the codecs' callers include dbwire.h
 * or pingwire.h only.
 *
 * The small writers and readers are inline, as they were when one file held
 * both codecs: they run once per field of every reply.
 *
 * Stateless and thread safe.
 */
#ifndef PORTER_PBWIRE_H
#define PORTER_PBWIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "arena.h"
#include "porter.pb-c.h"

/* Wire types. */
#define WT_VARINT 0u
#define WT_LEN 2u

/* ---- encoding ---- */

static inline size_t varint_size(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static inline uint8_t *put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static inline uint64_t tag(unsigned field, unsigned wt)
{
	return ((uint64_t)field << 3) | wt;
}

/* Size of a length-delimited field holding `len` bytes. */
static inline size_t len_size(unsigned field, size_t len)
{
	return varint_size(tag(field, WT_LEN)) + varint_size(len) + len;
}

/* proto3 leaves out zero scalars and empty strings and bytes, as
 * protobuf-c does; the sizes below and the writers agree on that. */
static inline size_t str_size(unsigned field, const char *s)
{
	return s && *s ? len_size(field, strlen(s)) : 0;
}

static inline size_t u64_size(unsigned field, uint64_t v)
{
	return v ? varint_size(tag(field, WT_VARINT)) + varint_size(v) : 0;
}

/* int32 and int64 fields go on the wire as 64-bit varints, sign-extended. */
static inline uint64_t i32_wire(int32_t v)
{
	return (uint64_t)(int64_t)v;
}

static inline uint8_t *put_len(uint8_t *p, unsigned field, size_t len)
{
	p = put_varint(p, tag(field, WT_LEN));
	return put_varint(p, len);
}

static inline uint8_t *put_bytes(uint8_t *p, unsigned field, const void *data, size_t len)
{
	p = put_len(p, field, len);
	if (len)
		memcpy(p, data, len);
	return p + len;
}

static inline uint8_t *put_str(uint8_t *p, unsigned field, const char *s)
{
	return s && *s ? put_bytes(p, field, s, strlen(s)) : p;
}

static inline uint8_t *put_u64(uint8_t *p, unsigned field, uint64_t v)
{
	if (!v)
		return p;
	p = put_varint(p, tag(field, WT_VARINT));
	return put_varint(p, v);
}

/* A bytes field, left out when empty. */
static inline size_t bytes_size(unsigned field, const ProtobufCBinaryData *b)
{
	return b->len ? len_size(field, b->len) : 0;
}

static inline uint8_t *put_opt_bytes(uint8_t *p, unsigned field, const ProtobufCBinaryData *b)
{
	return b->len ? put_bytes(p, field, b->data, b->len) : p;
}

/*
 * Makes room for a frame of `len` payload bytes in the caller's reusable
 * buffer `*buf` of `*cap` bytes and writes its header. 0, or -1 when out of
 * memory (the buffer is left as it was).
 */
int pbwire_reserve(uint8_t **buf, size_t *cap, size_t len);

/*
 * Reserves the frame of a Request whose body is field `field` of `body`
 * bytes, and writes its header, id, timeout and the body's tag and length;
 * `*p` gets where the body goes. 0, PORTER_E_TOO_LARGE or PORTER_E_NOMEM.
 */
int pbwire_begin_request(const Porter__V1__Request *r, unsigned field, size_t body,
			 size_t max_frame, uint8_t **buf, size_t *cap, uint8_t **p);

/* ---- decoding ---- */

/* Bytes left to read of one message. */
typedef struct rd {
	const uint8_t *p, *end;
} rd;

/* The `len` bytes at `data`. An empty message may come as (NULL, 0), an
 * empty bytes field of protobuf-c (a batch member): NULL + 0 is undefined
 * in C, so it is not computed. */
static inline rd pbwire_rd(const uint8_t *data, size_t len)
{
	rd r = {data, len ? data + len : data};
	return r;
}

/* A varint of at most `max` bytes (protobuf-c reads tags and lengths in
 * five at most, values in ten). A tenth byte carrying more than the 64th
 * bit is declined: protobuf-c drops those bits from integers but counts
 * them for booleans. */
static inline int get_varint_max(rd *r, uint64_t *v, unsigned max)
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

static inline int get_varint(rd *r, uint64_t *v)
{
	return get_varint_max(r, v, 10);
}

/* The next field's number and wire type; -1 at a malformed tag. */
static inline int get_tag(rd *r, uint32_t *field, unsigned *wt)
{
	uint64_t v;
	if (get_varint_max(r, &v, 5) < 0 || v > UINT32_MAX || (v >> 3) == 0)
		return -1;
	*field = (uint32_t)(v >> 3);
	*wt = (unsigned)(v & 7);
	return 0;
}

/* A length-delimited field's bytes (wire type already checked). */
static inline int get_len(rd *r, rd *inner)
{
	uint64_t n;
	if (get_varint_max(r, &n, 5) < 0 || n > (uint64_t)(r->end - r->p))
		return -1;
	inner->p = r->p;
	inner->end = r->p + n;
	r->p += n;
	return 0;
}

/* Skips a field of a wire type these decoders read (varint or length). */
static inline int skip(rd *r, unsigned wt)
{
	uint64_t v;
	rd inner;
	if (wt == WT_VARINT)
		return get_varint(r, &v);
	if (wt == WT_LEN)
		return get_len(r, &inner);
	return -1;
}

/* One field as read: its number, wire type, and value (`v` of a varint,
 * `in` the bytes of a length-delimited one). */
typedef struct fld {
	uint32_t num;
	unsigned wt;
	uint64_t v;
	rd in;
} fld;

/* Reads the next field of `r` into `*f`; -1 when malformed or of a wire
 * type the decoders never accept (fixed-size, groups): they decline it. */
static inline int next_field(rd *r, fld *f)
{
	if (get_tag(r, &f->num, &f->wt) < 0)
		return -1;
	if (f->wt == WT_VARINT)
		return get_varint(r, &f->v);
	if (f->wt == WT_LEN)
		return get_len(r, &f->in);
	return -1;
}

static inline void *take(ProtobufCAllocator *a, size_t n)
{
	return a->alloc(a->allocator_data, n);
}

/* A message struct of type `d` set to its defaults, as unpack starts one. */
static inline void *take_msg(ProtobufCAllocator *a, const ProtobufCMessageDescriptor *d)
{
	void *m = take(a, d->sizeof_message);
	if (m)
		protobuf_c_message_init(d, m);
	return m;
}

/*
 * How a message without sub-messages is read: each of its fields, by
 * number, and where its value goes in the struct. Strings are stored as
 * protobuf-c stores them (a copy with a NUL after it), bytes too (data NULL
 * when empty), varints truncated to 32 bits (uint32 and int32 fields alike:
 * the same bits) or to 0/1 (booleans).
 */
typedef enum pbwire_kind {
	PBWIRE_STR,   /* char *, length-delimited */
	PBWIRE_BYTES, /* ProtobufCBinaryData, length-delimited */
	PBWIRE_U32,   /* uint32_t or int32_t, varint */
	PBWIRE_BOOL,  /* protobuf_c_boolean, varint */
	PBWIRE_U64,   /* uint64_t or int64_t, varint */
} pbwire_kind;

typedef struct pbwire_field {
	uint32_t num;     /* field number */
	pbwire_kind kind; /* how it is read and stored */
	size_t offset;    /* offsetof its member */
} pbwire_field;

/*
 * Reads message `r` of type `d` whose fields are the `n` of `f`, into a
 * struct from `a`. Accepts exactly those fields with their wire types, last
 * value wins; declines (NULL) anything else, malformed or merely unknown,
 * for protobuf-c to decode or report. Nothing is freed when it declines:
 * `a` is an arena's (dbwire.h).
 */
void *pbwire_flat(ProtobufCAllocator *a, rd r, const ProtobufCMessageDescriptor *d,
		  const pbwire_field *f, size_t n);

/*
 * Stores field `x` in message `m` as table `f` of `n` fields says: 0
 * stored, 1 not in the table (the caller reads it, or declines), -1 to
 * decline (a wrong wire type, or out of memory). For the messages with
 * sub-messages, whose plain fields a table takes.
 */
int pbwire_store(ProtobufCAllocator *a, void *m, const fld *x, const pbwire_field *f, size_t n);

/* As protobuf-c stores them: a copy with a NUL after it. NULL when out of
 * memory. */
static inline char *take_str(ProtobufCAllocator *a, const rd *v)
{
	size_t n = (size_t)(v->end - v->p);
	char *s = take(a, n + 1);
	if (s) {
		memcpy(s, v->p, n);
		s[n] = 0;
	}
	return s;
}

/* As protobuf-c stores them: data NULL when empty. A large field in bytes
 * the arena `a` lent (a reply's body in the frame buffer the arena took)
 * points into them instead of being copied. 0, or -1 when out of memory. */
static inline int take_bytes(ProtobufCAllocator *a, const rd *v, ProtobufCBinaryData *out)
{
	out->len = (size_t)(v->end - v->p);
	out->data = NULL;
	if (!out->len)
		return 0;
	if (out->len >= ARENA_LEND_MIN && arena_lent(a, v->p, out->len)) {
		out->data = (uint8_t *)(uintptr_t)v->p;
		return 0;
	}
	if (!(out->data = take(a, out->len)))
		return -1;
	memcpy(out->data, v->p, out->len);
	return 0;
}

#endif
