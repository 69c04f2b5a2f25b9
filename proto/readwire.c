/* readwire - a file read reply's frame around its chunk; see readwire.h. */
#include "readwire.h"

#include <stdatomic.h>

#include "frame.h"
#include "pbwire.h"
#include "porter_errors.h"

/* Whether field `id` of `d` is there with type `type`. */
static int field_is(const ProtobufCMessageDescriptor *d, unsigned id, ProtobufCType type)
{
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, id);
	return f && f->type == type && f->label != PROTOBUF_C_LABEL_REPEATED;
}

/* porter.proto's Response and FileReadReply as this was written for:
 * anything added or changed and protobuf-c packs them again. */
static int schema_known(void)
{
	const ProtobufCMessageDescriptor *r = &porter__v1__response__descriptor;
	const ProtobufCMessageDescriptor *f = &porter__v1__file_read_reply__descriptor;
	unsigned plain = 0;
	for (unsigned i = 0; i < r->n_fields; i++)
		plain += !(r->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF);
	const ProtobufCFieldDescriptor *body = protobuf_c_message_descriptor_get_field(r, 40);
	return plain == 5 && field_is(r, 1, PROTOBUF_C_TYPE_UINT64) &&
	       field_is(r, 2, PROTOBUF_C_TYPE_SINT32) && field_is(r, 3, PROTOBUF_C_TYPE_STRING) &&
	       field_is(r, 4, PROTOBUF_C_TYPE_MESSAGE) && field_is(r, 5, PROTOBUF_C_TYPE_BOOL) &&
	       body && body->type == PROTOBUF_C_TYPE_MESSAGE && body->descriptor == f &&
	       f->n_fields == 6 && field_is(f, 1, PROTOBUF_C_TYPE_BYTES) &&
	       field_is(f, 2, PROTOBUF_C_TYPE_UINT64) && field_is(f, 3, PROTOBUF_C_TYPE_UINT64) &&
	       field_is(f, 4, PROTOBUF_C_TYPE_UINT64) && field_is(f, 5, PROTOBUF_C_TYPE_BOOL) &&
	       field_is(f, 6, PROTOBUF_C_TYPE_UINT32);
}

/* Looked at once: -1 until then. */
static _Atomic int shape = -1;

static uint64_t zigzag32(int32_t v)
{
	return (uint32_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}

int readwire_frame(const Porter__V1__Response *r, size_t max_frame, uint8_t head[READWIRE_HEAD_MAX],
		   size_t *head_len, uint8_t tail[READWIRE_TAIL_MAX], size_t *tail_len)
{
	int known = atomic_load_explicit(&shape, memory_order_relaxed);
	if (known < 0) {
		known = schema_known();
		atomic_store_explicit(&shape, known, memory_order_relaxed);
	}
	const Porter__V1__FileReadReply *f = r->file_read;
	if (!known || r->body_case != PORTER__V1__RESPONSE__BODY_FILE_READ || !f ||
	    r->base.n_unknown_fields || f->base.n_unknown_fields || (r->message && *r->message) ||
	    r->error || !f->data.len)
		return 1;

	/* After the data: its fields in field order, zeros left out, as
	 * protobuf-c writes them. */
	uint8_t *t = tail;
	t = put_u64(t, 2, f->offset);
	t = put_u64(t, 3, f->file_size);
	t = put_u64(t, 4, f->stream_id);
	t = put_u64(t, 5, f->fd_passed ? 1 : 0);
	t = put_u64(t, 6, f->chunk_size);
	*tail_len = (size_t)(t - tail);

	size_t body = len_size(1, f->data.len) + *tail_len;
	size_t len = u64_size(1, r->id) + u64_size(2, zigzag32(r->status)) +
		     u64_size(5, r->more ? 1 : 0) + len_size(40, body);
	if (len > max_frame || len > UINT32_MAX)
		return PORTER_E_TOO_LARGE;
	frame_put_header(head, (uint32_t)len);
	uint8_t *h = head + FRAME_HEADER_SIZE;
	h = put_u64(h, 1, r->id);
	h = put_u64(h, 2, zigzag32(r->status));
	h = put_u64(h, 5, r->more ? 1 : 0);
	h = put_len(h, 40, body);
	h = put_len(h, 1, f->data.len);
	*head_len = (size_t)(h - head);
	return 0;
}
