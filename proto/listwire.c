/* listwire - a directory listing's reply as wire bytes; see listwire.h. */
#include "listwire.h"

#include <stdatomic.h>

#include "frame.h"
#include "pbwire.h"
#include "porter.pb-c.h"
#include "porter_errors.h"

/* Whether field `id` of `d` is there, single, of type `type`. */
static int field_is(const ProtobufCMessageDescriptor *d, unsigned id, ProtobufCType type)
{
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, id);
	return f && f->type == type && f->label != PROTOBUF_C_LABEL_REPEATED;
}

/* porter.proto's Response, FileListReply and FileEntry as this was
 * written for: anything added or changed and protobuf-c packs them. */
static int schema_known(void)
{
	const ProtobufCMessageDescriptor *r = &porter__v1__response__descriptor;
	const ProtobufCMessageDescriptor *l = &porter__v1__file_list_reply__descriptor;
	const ProtobufCMessageDescriptor *e = &porter__v1__file_entry__descriptor;
	const ProtobufCFieldDescriptor *body = protobuf_c_message_descriptor_get_field(r, 48);
	const ProtobufCFieldDescriptor *ents = protobuf_c_message_descriptor_get_field(l, 1);
	unsigned plain = 0;
	for (unsigned i = 0; i < r->n_fields; i++)
		plain += !(r->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF);
	return plain == 5 && field_is(r, 1, PROTOBUF_C_TYPE_UINT64) &&
	       field_is(r, 2, PROTOBUF_C_TYPE_SINT32) && field_is(r, 3, PROTOBUF_C_TYPE_STRING) &&
	       field_is(r, 4, PROTOBUF_C_TYPE_MESSAGE) && field_is(r, 5, PROTOBUF_C_TYPE_BOOL) &&
	       body && body->type == PROTOBUF_C_TYPE_MESSAGE && body->descriptor == l &&
	       l->n_fields == 1 && ents && ents->type == PROTOBUF_C_TYPE_MESSAGE &&
	       ents->label == PROTOBUF_C_LABEL_REPEATED && ents->descriptor == e &&
	       e->n_fields == 4 && field_is(e, 1, PROTOBUF_C_TYPE_STRING) &&
	       field_is(e, 2, PROTOBUF_C_TYPE_ENUM) && field_is(e, 3, PROTOBUF_C_TYPE_UINT64) &&
	       field_is(e, 4, PROTOBUF_C_TYPE_INT64);
}

/* Looked at once: -1 until then. */
static _Atomic int shape = -1;

/* The FileEntry's own bytes (without its tag and length). */
static size_t inner_size(size_t name_len, int type, uint64_t size, int64_t mtime_ns)
{
	return len_size(1, name_len) + u64_size(2, (uint64_t)(int64_t)type) + u64_size(3, size) +
	       u64_size(4, (uint64_t)mtime_ns);
}

size_t listwire_entry_size(size_t name_len, int type, uint64_t size, int64_t mtime_ns)
{
	return len_size(1, inner_size(name_len, type, size, mtime_ns));
}

uint8_t *listwire_put_entry(uint8_t *p, const char *name, size_t name_len, int type, uint64_t size,
			    int64_t mtime_ns)
{
	p = put_len(p, 1, inner_size(name_len, type, size, mtime_ns));
	p = put_bytes(p, 1, name, name_len);
	p = put_u64(p, 2, (uint64_t)(int64_t)type);
	p = put_u64(p, 3, size);
	return put_u64(p, 4, (uint64_t)mtime_ns);
}

const uint8_t *listwire_entry_name(const uint8_t *e, size_t *name_len, size_t *entry_len)
{
	/* Bytes listwire_put_entry wrote: well formed, and each varint is
	 * at most 10 bytes. */
	uint64_t inner = 0, n = 0;
	rd r = {.p = e + 1, .end = e + 11}; /* after the entry's tag */
	get_varint(&r, &inner);
	*entry_len = (size_t)(r.p - e) + (size_t)inner;
	r.p++; /* the name's tag */
	r.end = r.p + 10;
	get_varint(&r, &n);
	*name_len = (size_t)n;
	return r.p;
}

int listwire_known(void)
{
	int known = atomic_load_explicit(&shape, memory_order_relaxed);
	if (known < 0) {
		known = schema_known();
		atomic_store_explicit(&shape, known, memory_order_relaxed);
	}
	return known;
}

int listwire_frame(uint64_t id, size_t body_len, size_t max_frame, uint8_t head[LISTWIRE_HEAD_MAX],
		   size_t *head_len)
{
	if (!listwire_known())
		return 1;
	size_t len = u64_size(1, id) + len_size(48, body_len);
	if (len > max_frame || len > UINT32_MAX)
		return PORTER_E_TOO_LARGE;
	frame_put_header(head, (uint32_t)len);
	uint8_t *h = head + FRAME_HEADER_SIZE;
	h = put_u64(h, 1, id);
	h = put_len(h, 48, body_len);
	*head_len = (size_t)(h - head);
	return 0;
}
