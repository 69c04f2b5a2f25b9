/* batch - the Batch builder and its results; see porter.h and pbatch.h. */
#include <stdlib.h>
#include <string.h>

#include "pbatch.h"
#include "pconn.h"

struct porter_batch {
	int mode;
	size_t n, cap;
	ProtobufCBinaryData *members; /* packed Requests, owned */
};

struct porter_batch_result {
	size_t n;
	int winner;
	Porter__V1__Response **members; /* unpacked; NULL when not reported */
};

porter_batch *porter_batch_new(int mode)
{
	if (mode != PORTER_BATCH_ALL && mode != PORTER_BATCH_FIRST)
		return NULL;
	porter_batch *b = calloc(1, sizeof(*b));
	if (b)
		b->mode = mode;
	return b;
}

void porter_batch_free(porter_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		free(b->members[i].data);
	free(b->members);
	free(b);
}

size_t porter_batch_count(const porter_batch *b)
{
	return b ? b->n : 0;
}

int pbatch_add(porter_batch *b, const Porter__V1__Request *req)
{
	if (!b)
		return pconn_set_error(PORTER_E_INVAL, "batch is NULL");
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 8;
		ProtobufCBinaryData *m = realloc(b->members, cap * sizeof(*m));
		if (!m)
			return pconn_set_error(PORTER_E_NOMEM, "out of memory");
		b->members = m;
		b->cap = cap;
	}
	size_t len = protobuf_c_message_get_packed_size(&req->base);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	protobuf_c_message_pack(&req->base, buf);
	b->members[b->n].data = buf;
	b->members[b->n].len = len;
	return (int)b->n++;
}

int porter_batch_add_ping(porter_batch *b, const void *payload, size_t len, uint32_t delay_ms,
			  int timeout_ms)
{
	if ((!payload && len) || timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "bad payload or timeout");
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Ping ping = PORTER__V1__PING__INIT;
	ping.payload.data = (uint8_t *)payload;
	ping.payload.len = len;
	ping.delay_ms = delay_ms;
	req.timeout_ms = (uint32_t)timeout_ms;
	req.body_case = PORTER__V1__REQUEST__BODY_PING;
	req.ping = &ping;
	return pbatch_add(b, &req);
}

int porter_batch_run(porter_batch *b, uint64_t call_id, int timeout_ms, porter_batch_result **out)
{
	if (out)
		*out = NULL;
	if (!b || !out)
		return pconn_set_error(PORTER_E_INVAL, "batch or out is NULL");

	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Batch batch = PORTER__V1__BATCH__INIT;
	Porter__V1__Response *resp = NULL;
	porter_batch_result *r = NULL;
	batch.mode = b->mode == PORTER_BATCH_FIRST ? PORTER__V1__BATCH__MODE__FIRST
						   : PORTER__V1__BATCH__MODE__ALL;
	batch.n_members = b->n;
	batch.members = b->members;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_BATCH;
	req.batch = &batch;

	int rc = pconn_call(&req, timeout_ms, PCONN_ONCE, &resp);
	if (rc < 0)
		return rc;
	Porter__V1__BatchReply *br = resp->batch;
	if (resp->body_case != PORTER__V1__RESPONSE__BODY_BATCH || br->n_results != b->n) {
		rc = pconn_set_error(PORTER_E_PROTOCOL, "batch reply does not match the batch");
		goto out;
	}
	r = calloc(1, sizeof(*r));
	if (!r || !(r->members = calloc(b->n ? b->n : 1, sizeof(*r->members)))) {
		rc = pconn_set_error(PORTER_E_NOMEM, "out of memory");
		goto out;
	}
	r->n = b->n;
	r->winner = br->winner;
	for (size_t i = 0; i < r->n; i++) {
		if (br->results[i].len == 0)
			continue; /* stopped: another member won */
		r->members[i] =
			porter__v1__response__unpack(NULL, br->results[i].len, br->results[i].data);
		if (!r->members[i]) {
			rc = pconn_set_error(PORTER_E_PROTOCOL,
					     "batch member %zu reply is malformed", i);
			goto out;
		}
	}
	*out = r;
	r = NULL;
out:
	porter_batch_result_free(r);
	porter__v1__response__free_unpacked(resp, NULL);
	return rc;
}

const Porter__V1__Response *pbatch_member(const porter_batch_result *r, size_t i)
{
	return r && i < r->n ? r->members[i] : NULL;
}

size_t porter_batch_result_count(const porter_batch_result *r)
{
	return r ? r->n : 0;
}

int porter_batch_result_winner(const porter_batch_result *r)
{
	return r ? r->winner : -1;
}

int porter_batch_result_status(const porter_batch_result *r, size_t i)
{
	if (!r || i >= r->n)
		return PORTER_E_INVAL;
	return r->members[i] ? r->members[i]->status : PORTER_E_CANCELLED;
}

const char *porter_batch_result_message(const porter_batch_result *r, size_t i)
{
	if (!r || i >= r->n)
		return "";
	if (!r->members[i])
		return "stopped: another member won";
	return r->members[i]->message ? r->members[i]->message : "";
}

int porter_batch_result_ping(const porter_batch_result *r, size_t i, const void **data, size_t *len)
{
	if (data)
		*data = NULL;
	if (len)
		*len = 0;
	const Porter__V1__Response *m = pbatch_member(r, i);
	if (!m || m->status != 0 || m->body_case != PORTER__V1__RESPONSE__BODY_PING || !data ||
	    !len)
		return PORTER_E_INVAL;
	*data = m->ping->payload.data;
	*len = m->ping->payload.len;
	return 0;
}

void porter_batch_result_free(porter_batch_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		if (r->members[i])
			porter__v1__response__free_unpacked(r->members[i], NULL);
	free(r->members);
	free(r);
}
