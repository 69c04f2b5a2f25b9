/* filewire - hand-written decoder of FileReadReply; see filewire.h. */
#include "filewire.h"

#include <stdatomic.h>
#include <stddef.h>

#define F(num, kind, member)                                                                       \
	{                                                                                          \
		num, PBWIRE_##kind, offsetof(Porter__V1__FileReadReply, member)                    \
	}

static const pbwire_field read_reply_fields[] = {
	F(1, BYTES, data),    F(2, U64, offset),     F(3, U64, file_size),
	F(4, U64, stream_id), F(5, BOOL, fd_passed), F(6, U32, chunk_size),
};

#define NFIELDS (sizeof(read_reply_fields) / sizeof(read_reply_fields[0]))

int filewire_schema_known(void)
{
	const ProtobufCMessageDescriptor *d = &porter__v1__file_read_reply__descriptor;
	if (d->n_fields != NFIELDS || porter__v1__file_read__descriptor.n_fields != 7)
		return 0;
	/* Each field where this table has it, of the type it reads. */
	for (size_t i = 0; i < NFIELDS; i++) {
		const ProtobufCFieldDescriptor *fd =
			protobuf_c_message_descriptor_get_field(d, read_reply_fields[i].num);
		static const ProtobufCType type_of[] = {
			[PBWIRE_BYTES] = PROTOBUF_C_TYPE_BYTES,
			[PBWIRE_U64] = PROTOBUF_C_TYPE_UINT64,
			[PBWIRE_BOOL] = PROTOBUF_C_TYPE_BOOL,
			[PBWIRE_U32] = PROTOBUF_C_TYPE_UINT32,
		};
		if (!fd || fd->offset != read_reply_fields[i].offset ||
		    fd->label != PROTOBUF_C_LABEL_NONE ||
		    fd->type != type_of[read_reply_fields[i].kind])
			return 0;
	}
	return 1;
}

/* Looked at once: -1 until then. */
static _Atomic int shape = -1;

static int known(void)
{
	int v = atomic_load_explicit(&shape, memory_order_relaxed);
	if (v < 0) {
		v = filewire_schema_known();
		atomic_store_explicit(&shape, v, memory_order_relaxed);
	}
	return v;
}

static size_t bool_size(unsigned field, int v)
{
	return v ? varint_size(tag(field, WT_VARINT)) + 1 : 0;
}

int filewire_pack_read(const Porter__V1__Request *r, size_t max_frame, uint8_t **buf, size_t *cap,
		       size_t *outlen)
{
	const Porter__V1__FileRead *m = r->file_read;
	if (!known() || !m || m->base.n_unknown_fields)
		return 0;
	size_t body = str_size(1, m->root) + str_size(2, m->path) + u64_size(3, m->offset) +
		      u64_size(4, m->length) + u64_size(5, m->chunk_size) +
		      bool_size(6, m->want_fd) + u64_size(7, m->fds_closed);
	uint8_t *p;
	int rc = pbwire_begin_request(r, 40, body, max_frame, buf, cap, &p);
	if (rc < 0)
		return rc;
	p = put_str(p, 1, m->root);
	p = put_str(p, 2, m->path);
	p = put_u64(p, 3, m->offset);
	p = put_u64(p, 4, m->length);
	p = put_u64(p, 5, m->chunk_size);
	p = put_u64(p, 6, m->want_fd != 0);
	p = put_u64(p, 7, m->fds_closed);
	*outlen = (size_t)(p - *buf);
	return 1;
}

Porter__V1__FileReadReply *filewire_unpack_read_reply(ProtobufCAllocator *a, rd r)
{
	if (!known())
		return NULL;
	return pbwire_flat(a, r, &porter__v1__file_read_reply__descriptor, read_reply_fields,
			   NFIELDS);
}
