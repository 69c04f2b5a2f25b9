/* pingwire - hand-written codec of Ping and PingReply; see pingwire.h. */
#include "pingwire.h"

#include <stddef.h>

int pingwire_schema_known(void)
{
	return porter__v1__ping__descriptor.n_fields == 2 &&
	       porter__v1__ping_reply__descriptor.n_fields == 1;
}

size_t pingwire_reply_size(const Porter__V1__PingReply *ping)
{
	return bytes_size(1, &ping->payload);
}

uint8_t *pingwire_put_reply(uint8_t *p, const Porter__V1__PingReply *ping)
{
	return put_opt_bytes(p, 1, &ping->payload);
}

int pingwire_pack_request(const Porter__V1__Request *r, size_t max_frame, uint8_t **buf,
			  size_t *cap, size_t *outlen)
{
	const Porter__V1__Ping *ping = r->ping;
	if (!ping || ping->base.n_unknown_fields)
		return 0;
	size_t body = bytes_size(1, &ping->payload) + u64_size(2, ping->delay_ms);
	uint8_t *p;
	int rc = pbwire_begin_request(r, 11, body, max_frame, buf, cap, &p);
	if (rc < 0)
		return rc;
	p = put_opt_bytes(p, 1, &ping->payload);
	p = put_u64(p, 2, ping->delay_ms);
	*outlen = (size_t)(p - *buf);
	return 1;
}

static const pbwire_field ping_fields[] = {
	{1, PBWIRE_BYTES, offsetof(Porter__V1__Ping, payload)},
	{2, PBWIRE_U32, offsetof(Porter__V1__Ping, delay_ms)},
};

static const pbwire_field reply_fields[] = {
	{1, PBWIRE_BYTES, offsetof(Porter__V1__PingReply, payload)},
};

Porter__V1__Ping *pingwire_unpack_ping(ProtobufCAllocator *a, rd r)
{
	return pbwire_flat(a, r, &porter__v1__ping__descriptor, ping_fields, 2);
}

Porter__V1__PingReply *pingwire_unpack_reply(ProtobufCAllocator *a, rd r)
{
	return pbwire_flat(a, r, &porter__v1__ping_reply__descriptor, reply_fields, 1);
}
