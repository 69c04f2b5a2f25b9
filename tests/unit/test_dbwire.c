/*
 * Unit tests of the hand-written codec of query requests and replies: for
 * messages of many shapes its bytes must equal protobuf-c's, what it
 * decodes must be what protobuf-c decodes (compared by packing both with
 * protobuf-c), and what it declines must be left to protobuf-c.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "dbwire.h"
#include "filewire.h"
#include "frame.h"
#include "porter_errors.h"
#include "porter.pb-c.h"
#include "thmain.h"

static uint32_t seed = 12345;

static uint32_t rnd(void)
{
	seed = seed * 1103515245u + 12345u;
	return seed >> 8;
}

/* A random string (sometimes NULL or empty, which proto3 leaves out). */
static char *rnd_str(void)
{
	uint32_t k = rnd() % 6;
	if (k == 0)
		return NULL;
	size_t n = k == 1 ? 0 : rnd() % (k == 5 ? 300 : 12);
	char *s = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		s[i] = (char)('a' + rnd() % 26);
	s[n] = 0;
	return s;
}

static uint64_t rnd_u64(void)
{
	switch (rnd() % 4) {
	case 0:
		return 0;
	case 1:
		return rnd() % 200;
	case 2:
		return (uint64_t)rnd() << 20;
	default:
		return ((uint64_t)rnd() << 40) | rnd();
	}
}

static Porter__V1__DbResult *rnd_result(void)
{
	Porter__V1__DbResult *dr = calloc(1, sizeof(*dr));
	porter__v1__db_result__init(dr);
	size_t nf = rnd() % 5, nr = rnd() % 6;
	if (rnd() % 2) {
		dr->n_columns = nf;
		dr->columns = calloc(nf + 1, sizeof(*dr->columns));
		for (size_t i = 0; i < nf; i++) {
			Porter__V1__DbColumn *c = calloc(1, sizeof(*c));
			porter__v1__db_column__init(c);
			c->name = rnd_str();
			c->type_oid = (uint32_t)rnd_u64();
			dr->columns[i] = c;
		}
	}
	dr->n_rows = nr;
	dr->rows = calloc(nr + 1, sizeof(*dr->rows));
	for (size_t r = 0; r < nr; r++) {
		Porter__V1__DbRow *row = calloc(1, sizeof(*row));
		porter__v1__db_row__init(row);
		row->n_values = nf;
		row->values = calloc(nf + 1, sizeof(*row->values));
		for (size_t i = 0; i < nf; i++) {
			/* Values up to 200 bytes, some empty; binary, with NULs. */
			size_t len = rnd() % 3 ? rnd() % 200 : 0;
			uint8_t *v = malloc(len + 1);
			for (size_t j = 0; j < len; j++)
				v[j] = (uint8_t)rnd();
			row->values[i].data = v;
			row->values[i].len = len;
		}
		if (nf && rnd() % 2) {
			row->nulls.len = nf;
			row->nulls.data = calloc(nf, 1);
			row->nulls.data[rnd() % nf] = 1;
		}
		dr->rows[r] = row;
	}
	dr->affected = rnd_u64();
	dr->command_tag = rnd_str();
	return dr;
}

static void free_result(Porter__V1__DbResult *dr)
{
	for (size_t i = 0; i < dr->n_columns; i++) {
		free(dr->columns[i]->name);
		free(dr->columns[i]);
	}
	free(dr->columns);
	for (size_t r = 0; r < dr->n_rows; r++) {
		for (size_t i = 0; i < dr->rows[r]->n_values; i++)
			free(dr->rows[r]->values[i].data);
		free(dr->rows[r]->values);
		free(dr->rows[r]->nulls.data);
		free(dr->rows[r]);
	}
	free(dr->rows);
	free(dr->command_tag);
	free(dr);
}

/* Packs `r` both ways and checks the frames are the same bytes. */
static void check_same(const Porter__V1__Response *r)
{
	uint8_t *want = NULL, *got = NULL;
	size_t want_len = 0, got_len = 0, cap = 0;
	ck_assert_int_eq(frame_pack(&r->base, 1 << 24, &want, &want_len), 0);
	ck_assert_int_eq(dbwire_pack_response(r, 1 << 24, &got, &cap, &got_len), 1);
	ck_assert_uint_eq(got_len, want_len);
	ck_assert_uint_ge(cap, got_len);
	ck_assert_mem_eq(got, want, want_len);
	/* And it decodes to what was encoded (protobuf-c reads it). */
	Porter__V1__Response *back = porter__v1__response__unpack(NULL, got_len - FRAME_HEADER_SIZE,
								  got + FRAME_HEADER_SIZE);
	ck_assert_ptr_nonnull(back);
	ck_assert_uint_eq(back->id, r->id);
	ck_assert_int_eq(back->status, r->status);
	porter__v1__response__free_unpacked(back, NULL);
	free(want);
	free(got);
}

/* A random reply and what it owns. */
typedef struct rnd_reply {
	Porter__V1__Response r;
	Porter__V1__DbQueryReply qr;
	Porter__V1__ErrorDetail ed;
} rnd_reply;

static void rnd_reply_init(rnd_reply *x)
{
	porter__v1__response__init(&x->r);
	porter__v1__db_query_reply__init(&x->qr);
	porter__v1__error_detail__init(&x->ed);
	Porter__V1__Response *r = &x->r;
	r->id = rnd_u64();
	/* Negative codes (zigzag), zero, and a positive one. */
	r->status = rnd() % 3 == 0 ? 0 : -(int32_t)(rnd() % 40) + (rnd() % 9 == 0 ? 1000 : 0);
	r->message = rnd_str();
	r->more = rnd() % 2;
	if (rnd() % 3 == 0) {
		x->ed.sqlstate = rnd_str();
		x->ed.detail = rnd_str();
		x->ed.hint = rnd_str();
		/* int32 fields: negative ones take ten bytes. */
		x->ed.http_status = rnd() % 2 ? (int32_t)(rnd() % 600) : 0;
		x->ed.sys_errno = rnd() % 3 == 0 ? -(int32_t)(rnd() % 200) : 0;
		r->error = &x->ed;
	}
	if (rnd() % 4) {
		x->qr.n_results = rnd() % 4;
		if (rnd() % 10 == 0)
			x->qr.n_results = 20; /* more than the sizes kept on the stack */
		x->qr.results = calloc(x->qr.n_results + 1, sizeof(*x->qr.results));
		for (size_t i = 0; i < x->qr.n_results; i++)
			x->qr.results[i] = rnd_result();
		x->qr.stream = rnd_u64();
		r->body_case = PORTER__V1__RESPONSE__BODY_DB_QUERY;
		r->db_query = &x->qr;
	}
}

static void rnd_reply_free(rnd_reply *x)
{
	for (size_t i = 0; i < x->qr.n_results; i++)
		free_result(x->qr.results[i]);
	free(x->qr.results);
	free(x->r.message);
	if (x->r.error) { /* else they are the initialiser's static "" */
		free(x->ed.sqlstate);
		free(x->ed.detail);
		free(x->ed.hint);
	}
}

START_TEST(random_replies_match_protobuf_c)
{
	seed = 777u + (uint32_t)_i;
	for (int round = 0; round < 200; round++) {
		rnd_reply x;
		rnd_reply_init(&x);
		check_same(&x.r);
		rnd_reply_free(&x);
	}
}
END_TEST

/* A random DbQuery request; free with rnd_request_free. */
static Porter__V1__Request *rnd_request(void)
{
	Porter__V1__Request *r = calloc(1, sizeof(*r));
	Porter__V1__DbQuery *q = calloc(1, sizeof(*q));
	porter__v1__request__init(r);
	porter__v1__db_query__init(q);
	r->id = rnd_u64();
	r->timeout_ms = (uint32_t)rnd_u64();
	q->session = rnd_u64();
	q->conninfo = rnd_str();
	q->sql = rnd_str();
	q->chunk_rows = rnd() % 3 ? 0 : rnd() % 100000;
	q->n_params = rnd() % 4 ? rnd() % 4 : 40;
	q->params = calloc(q->n_params + 1, sizeof(*q->params));
	for (size_t i = 0; i < q->n_params; i++) {
		Porter__V1__DbParam *pp = calloc(1, sizeof(*pp));
		porter__v1__db_param__init(pp);
		pp->is_null = rnd() % 4 == 0;
		pp->binary = rnd() % 3 == 0;
		pp->type_oid = (uint32_t)rnd_u64();
		size_t len = rnd() % 3 ? rnd() % 300 : 0;
		if (len) {
			pp->value.data = malloc(len);
			for (size_t j = 0; j < len; j++)
				pp->value.data[j] = (uint8_t)rnd();
			pp->value.len = len;
		}
		q->params[i] = pp;
	}
	r->body_case = PORTER__V1__REQUEST__BODY_DB_QUERY;
	r->db_query = q;
	return r;
}

static void rnd_request_free(Porter__V1__Request *r)
{
	Porter__V1__DbQuery *q = r->db_query;
	for (size_t i = 0; i < q->n_params; i++) {
		free(q->params[i]->value.data);
		free(q->params[i]);
	}
	free(q->params);
	free(q->conninfo);
	free(q->sql);
	free(q);
	free(r);
}

/* Packs a message with protobuf-c; the buffer is the caller's to free. */
static uint8_t *pb_pack(const ProtobufCMessage *m, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(m);
	uint8_t *b = malloc(*len + 1);
	ck_assert_uint_eq(protobuf_c_message_pack(m, b), *len);
	return b;
}

/*
 * Decodes `wire` with the fast decoder (`fast`, into an arena) and with
 * protobuf-c (`desc`). Whatever the fast one accepts protobuf-c must accept
 * too, and both must pack again to the same bytes. Returns whether the
 * fast one accepted.
 */
static int check_decode(const ProtobufCMessageDescriptor *desc,
			ProtobufCMessage *(*fast)(ProtobufCAllocator *, size_t, const uint8_t *),
			const uint8_t *wire, size_t len)
{
	arena a;
	arena_init(&a, 512);
	ProtobufCMessage *mine = fast(&a.base, len, wire);
	ProtobufCMessage *theirs = protobuf_c_message_unpack(desc, NULL, len, wire);
	if (mine) {
		ck_assert_msg(theirs != NULL, "accepted what protobuf-c refuses");
		size_t l1, l2;
		uint8_t *b1 = pb_pack(mine, &l1), *b2 = pb_pack(theirs, &l2);
		ck_assert_uint_eq(l1, l2);
		ck_assert_mem_eq(b1, b2, l1);
		free(b1);
		free(b2);
	}
	if (theirs)
		protobuf_c_message_free_unpacked(theirs, NULL);
	arena_free(&a);
	return mine != NULL;
}

static ProtobufCMessage *fast_response(ProtobufCAllocator *a, size_t len, const uint8_t *d)
{
	return (ProtobufCMessage *)dbwire_unpack_response(a, len, d);
}

static ProtobufCMessage *fast_request(ProtobufCAllocator *a, size_t len, const uint8_t *d)
{
	return (ProtobufCMessage *)dbwire_unpack_request(a, len, d);
}

/* Response `wire` (`len` bytes) decodes as protobuf-c decodes it, and so do
 * damaged and cut copies of it, or the decoder declines them. */
static void check_reply_and_damaged(const uint8_t *wire, size_t len)
{
	ck_assert(check_decode(&porter__v1__response__descriptor, fast_response, wire, len));
	for (int k = 0; k < 20 && len; k++) {
		uint8_t *bad = malloc(len);
		memcpy(bad, wire, len);
		bad[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
		check_decode(&porter__v1__response__descriptor, fast_response, bad,
			     rnd() % 4 ? len : rnd() % len);
		free(bad);
	}
}

START_TEST(random_replies_decode_as_protobuf_c_does)
{
	seed = 4242u + (uint32_t)_i;
	for (int round = 0; round < 200; round++) {
		rnd_reply x;
		rnd_reply_init(&x);
		size_t len;
		uint8_t *wire = pb_pack(&x.r.base, &len);
		check_reply_and_damaged(wire, len);
		free(wire);
		rnd_reply_free(&x);
	}
}
END_TEST

/* Packs `r` with protobuf-c and with dbwire and checks the bytes are the
 * same; decodes them back, and damaged copies of them, both ways. */
static void check_request(const Porter__V1__Request *r)
{
	size_t want_len, got_len = 0, cap = 0;
	uint8_t *want = pb_pack(&r->base, &want_len), *got = NULL;
	ck_assert_int_eq(dbwire_pack_request(r, 1 << 24, &got, &cap, &got_len), 1);
	ck_assert_uint_eq(got_len, FRAME_HEADER_SIZE + want_len);
	ck_assert_mem_eq(got + FRAME_HEADER_SIZE, want, want_len);
	ck_assert(check_decode(&porter__v1__request__descriptor, fast_request, want, want_len));
	for (int k = 0; k < 20 && want_len; k++) {
		uint8_t *bad = malloc(want_len);
		memcpy(bad, want, want_len);
		bad[rnd() % want_len] ^= (uint8_t)(1u << (rnd() % 8));
		check_decode(&porter__v1__request__descriptor, fast_request, bad, want_len);
		free(bad);
	}
	free(want);
	free(got);
}

START_TEST(random_requests_match_protobuf_c)
{
	seed = 99u + (uint32_t)_i;
	for (int round = 0; round < 200; round++) {
		Porter__V1__Request *r = rnd_request();
		check_request(r);
		rnd_request_free(r);
	}
}
END_TEST

START_TEST(decoders_decline_what_they_do_not_know)
{
	/* Another body. */
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__StatsRequest stats = PORTER__V1__STATS_REQUEST__INIT;
	req.body_case = PORTER__V1__REQUEST__BODY_STATS;
	req.stats = &stats;
	size_t len;
	uint8_t *wire = pb_pack(&req.base, &len);
	ck_assert(!check_decode(&porter__v1__request__descriptor, fast_request, wire, len));
	free(wire);
	uint8_t *buf = NULL;
	size_t cap = 0;
	ck_assert_int_eq(dbwire_pack_request(&req, 1 << 20, &buf, &cap, &len), 0);
	ck_assert_ptr_null(buf);

	/* An unknown field (99, varint) after a valid reply. */
	const uint8_t unknown[] = {0x08, 0x07, 0x98, 0x06, 0x01};
	ck_assert(!check_decode(&porter__v1__response__descriptor, fast_response, unknown,
				sizeof(unknown)));
	/* A sub-message given twice, which protobuf-c merges. */
	const uint8_t twice[] = {0xaa, 0x01, 0x02, 0x10, 0x01, 0xaa, 0x01, 0x02, 0x10, 0x02};
	ck_assert(!check_decode(&porter__v1__response__descriptor, fast_response, twice,
				sizeof(twice)));
	/* A tag in six bytes, a length in six bytes: protobuf-c refuses both. */
	const uint8_t long_tag[] = {0x88, 0x80, 0x80, 0x80, 0x80, 0x00, 0x07};
	ck_assert(!check_decode(&porter__v1__response__descriptor, fast_response, long_tag,
				sizeof(long_tag)));
	const uint8_t long_len[] = {0x1a, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00, 'x'};
	ck_assert(!check_decode(&porter__v1__response__descriptor, fast_response, long_len,
				sizeof(long_len)));
	/* A boolean whose only set bit is past the 64th: true to protobuf-c. */
	const uint8_t odd_bool[] = {0x28, 0x80, 0x80, 0x80, 0x80, 0x80,
				    0x80, 0x80, 0x80, 0x80, 0x02};
	ck_assert(!check_decode(&porter__v1__response__descriptor, fast_response, odd_bool,
				sizeof(odd_bool)));
	/* The empty message is an empty reply. */
	ck_assert(check_decode(&porter__v1__response__descriptor, fast_response,
			       (const uint8_t *)"", 0));
}
END_TEST

/* A reply holding one result of one row of one value. */
typedef struct one_value {
	ProtobufCBinaryData val;
	Porter__V1__DbRow row, *rows[1];
	Porter__V1__DbResult dr, *results[1];
	Porter__V1__DbQueryReply qr;
	Porter__V1__Response r;
} one_value;

static void one_value_init(one_value *o, const uint8_t *data, size_t len)
{
	o->val.data = (uint8_t *)data;
	o->val.len = len;
	porter__v1__db_row__init(&o->row);
	o->row.values = &o->val;
	o->row.n_values = 1;
	o->rows[0] = &o->row;
	porter__v1__db_result__init(&o->dr);
	o->dr.rows = o->rows;
	o->dr.n_rows = 1;
	o->results[0] = &o->dr;
	porter__v1__db_query_reply__init(&o->qr);
	o->qr.results = o->results;
	o->qr.n_results = 1;
	porter__v1__response__init(&o->r);
	o->r.body_case = PORTER__V1__RESPONSE__BODY_DB_QUERY;
	o->r.db_query = &o->qr;
}

START_TEST(large_rows_and_lengths_over_one_varint_byte)
{
	/* Lengths of 127, 128, 16383, 16384 and 1 MiB cross varint sizes at
	 * every level (value, row, result, reply). */
	size_t lens[] = {0, 1, 127, 128, 16383, 16384, 1 << 20};
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		uint8_t *v = malloc(lens[k] + 1);
		memset(v, 0x5a, lens[k]);
		one_value o;
		one_value_init(&o, v, lens[k]);
		o.dr.command_tag = "SELECT 1";
		o.r.id = 1;
		check_same(&o.r);
		free(v);
	}
}
END_TEST

START_TEST(other_bodies_are_left_to_protobuf_c)
{
	Porter__V1__Response r = PORTER__V1__RESPONSE__INIT;
	Porter__V1__DbOpenReply o = PORTER__V1__DB_OPEN_REPLY__INIT;
	o.session = 7;
	r.body_case = PORTER__V1__RESPONSE__BODY_DB_OPEN;
	r.db_open = &o;
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0;
	ck_assert_int_eq(dbwire_pack_response(&r, 1 << 20, &buf, &cap, &len), 0);
	ck_assert_ptr_null(buf); /* untouched */
	ck_assert_uint_eq(cap, 0);

	/* An unknown field anywhere: only protobuf-c writes those. */
	Porter__V1__DbResult dr = PORTER__V1__DB_RESULT__INIT;
	ProtobufCMessageUnknownField uf = {99, PROTOBUF_C_WIRE_TYPE_VARINT, 1, (uint8_t *)"\x01"};
	dr.base.n_unknown_fields = 1;
	dr.base.unknown_fields = &uf;
	Porter__V1__DbResult *results[] = {&dr};
	Porter__V1__DbQueryReply qr = PORTER__V1__DB_QUERY_REPLY__INIT;
	qr.results = results;
	qr.n_results = 1;
	r.body_case = PORTER__V1__RESPONSE__BODY_DB_QUERY;
	r.db_query = &qr;
	ck_assert_int_eq(dbwire_pack_response(&r, 1 << 20, &buf, &cap, &len), 0);
	ck_assert_ptr_null(buf);
}
END_TEST

/* Notices and the rarer diagnostic fields of an error are not the codec's:
 * it declines to pack them (protobuf-c does) and declines to decode them
 * (protobuf-c does), so nothing of them is ever dropped. */
START_TEST(notices_and_error_fields_are_left_to_protobuf_c)
{
	Porter__V1__ErrorDetail nf = PORTER__V1__ERROR_DETAIL__INIT;
	nf.severity = "NOTICE";
	nf.sqlstate = "00000";
	Porter__V1__DbNotice n = PORTER__V1__DB_NOTICE__INIT;
	n.message = "table \"t\" does not exist, skipping";
	n.fields = &nf;
	Porter__V1__DbNotice *ns[] = {&n};
	Porter__V1__DbQueryReply qr = PORTER__V1__DB_QUERY_REPLY__INIT;
	qr.notices = ns;
	qr.n_notices = 1;
	Porter__V1__Response r = PORTER__V1__RESPONSE__INIT;
	r.body_case = PORTER__V1__RESPONSE__BODY_DB_QUERY;
	r.db_query = &qr;
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0;
	ck_assert_int_eq(dbwire_pack_response(&r, 1 << 20, &buf, &cap, &len), 0);
	ck_assert_ptr_null(buf);
	/* Only a count of dropped notices: the same. */
	qr.n_notices = 0;
	qr.notices_dropped = 3;
	ck_assert_int_eq(dbwire_pack_response(&r, 1 << 20, &buf, &cap, &len), 0);
	qr.notices_dropped = 0;
	/* Each diagnostic field the codec does not write. */
	for (int k = 0; k < 10; k++) {
		Porter__V1__ErrorDetail e = PORTER__V1__ERROR_DETAIL__INIT;
		e.sqlstate = "42601";
		char **strs[] = {&e.severity,      &e.internal_query, &e.context,
				 &e.schema_name,   &e.table_name,     &e.column_name,
				 &e.datatype_name, &e.constraint_name};
		if (k < 8)
			*strs[k] = "x";
		else if (k == 8)
			e.position = 8;
		else
			e.internal_position = 2;
		r.status = PORTER_E_DB;
		r.error = &e;
		ck_assert_msg(dbwire_pack_response(&r, 1 << 20, &buf, &cap, &len) == 0, "field %d",
			      k);
		ck_assert_ptr_null(buf);
		/* protobuf-c's bytes are declined by the fast decoder too, and
		 * protobuf-c reads them back whole. */
		size_t wl;
		uint8_t *wire = pb_pack(&r.base, &wl);
		ck_assert(
			!check_decode(&porter__v1__response__descriptor, fast_response, wire, wl));
		free(wire);
	}
	/* With only the plain fields it packs as before. */
	Porter__V1__ErrorDetail plain = PORTER__V1__ERROR_DETAIL__INIT;
	plain.sqlstate = "42601";
	r.error = &plain;
	check_same(&r);
	free(buf);
}
END_TEST

/* A Request packed by protobuf-c with a DbQuery of `n` empty params. */
static uint8_t *request_with_params(size_t n, uint64_t id, size_t *len)
{
	Porter__V1__DbParam p = PORTER__V1__DB_PARAM__INIT;
	Porter__V1__DbParam **ps = malloc((n ? n : 1) * sizeof(*ps));
	for (size_t i = 0; i < n; i++)
		ps[i] = &p;
	Porter__V1__DbQuery q = PORTER__V1__DB_QUERY__INIT;
	q.sql = "SELECT 1";
	q.params = ps;
	q.n_params = n;
	Porter__V1__Request r = PORTER__V1__REQUEST__INIT;
	r.id = id;
	r.timeout_ms = 5;
	r.body_case = PORTER__V1__REQUEST__BODY_DB_QUERY;
	r.db_query = &q;
	uint8_t *b = pb_pack(&r.base, len);
	free(ps);
	return b;
}

START_TEST(params_are_counted_on_the_wire)
{
	size_t len;
	uint64_t id;
	uint8_t *b = request_with_params(70000, 42, &len);
	/* Counting stops one past the limit: that decides, and the rest of
	 * a huge frame is not scanned. */
	ck_assert_uint_eq(dbwire_request_params(len, b, &id), DBWIRE_MAX_PARAMS + 1);
	ck_assert_uint_eq(id, 42);
	free(b);
	b = request_with_params(0, 7, &len);
	ck_assert_uint_eq(dbwire_request_params(len, b, &id), 0);
	ck_assert_uint_eq(id, 7);
	/* A body that occurs twice is counted twice: an upper bound of what
	 * protobuf-c keeps (it unpacks both). */
	size_t l1;
	uint8_t *one = request_with_params(30000, 9, &l1);
	uint8_t *twice = malloc(2 * l1);
	memcpy(twice, one, l1);
	memcpy(twice + l1, one, l1);
	ck_assert_uint_eq(dbwire_request_params(2 * l1, twice, &id), 60000);
	Porter__V1__Request *m = porter__v1__request__unpack(NULL, 2 * l1, twice);
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_le(m->db_query->n_params, 60000);
	porter__v1__request__free_unpacked(m, NULL);
	/* Unknown fields of every wire type are skipped; a malformed tail
	 * is said to be one, without reading past the end. */
	uint8_t odd[] = {0x08, 0x05, 0x1d, 1, 2, 3, 4,    0x19, 1,    2,
			 3,    4,    5,    6, 7, 8, 0xaa, 0x01, 0x22, 0x00};
	ck_assert_uint_eq(dbwire_request_params(sizeof(odd), odd, &id), DBWIRE_MALFORMED);
	ck_assert_uint_eq(id, 5);
	ck_assert_uint_eq(dbwire_request_params(16, odd, &id), 0);
	/* So is a body cut short: unpacking would refuse it anyway. */
	ck_assert_uint_eq(dbwire_request_params(l1 - 1, one, &id), DBWIRE_MALFORMED);
	/* An id whose tenth varint byte carries bits past the 64th: these
	 * readers decline it, protobuf-c reads it (dropping the bits) and
	 * every parameter after it. The count used to stop there at 0, and
	 * the frame was unpacked whole. */
	uint8_t *over = malloc(l1 + 9);
	over[0] = 0x08;
	memset(over + 1, 0xff, 9);
	over[10] = 0x7f;
	memcpy(over + 11, one + 2, l1 - 2); /* one's id field is 08 09 */
	ck_assert_uint_eq(one[0], 0x08);
	ck_assert_uint_eq(one[1], 9);
	Porter__V1__Request *om = porter__v1__request__unpack(NULL, l1 + 9, over);
	ck_assert_ptr_nonnull(om);
	ck_assert_uint_eq(om->db_query->n_params, 30000);
	porter__v1__request__free_unpacked(om, NULL);
	ck_assert_uint_eq(dbwire_request_params(l1 + 9, over, &id), DBWIRE_MALFORMED);
	free(over);
	free(one);
	free(twice);
	free(b);
	/* Other bodies have none. */
	uint8_t ping[] = {0x08, 0x01, 0x5a, 0x00};
	ck_assert_uint_eq(dbwire_request_params(sizeof(ping), ping, &id), 0);
}
END_TEST

/* The tight loop over runs of short parameters (empty ones four at a
 * time) counts what the general reader counts: parameters of every length
 * mixed (empty, one-byte lengths, two-byte lengths), with runs of empty
 * ones that end anywhere in a group of four; every cut of the frame counts
 * a lower bound, never more than the next cut; the fast decoder unpacks
 * what protobuf-c unpacks. */
START_TEST(short_params_are_counted_in_runs)
{
	static const size_t lens[] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 127, 0, 128, 0, 0, 300, 0, 0, 0};
	char text[300];
	memset(text, 'x', sizeof(text));
	for (size_t n = 0; n <= 40; n++) {
		Porter__V1__DbParam *ps = calloc(n ? n : 1, sizeof(*ps));
		Porter__V1__DbParam **pp = calloc(n ? n : 1, sizeof(*pp));
		for (size_t i = 0; i < n; i++) {
			porter__v1__db_param__init(&ps[i]);
			size_t l = lens[(i * 7 + n) % (sizeof(lens) / sizeof(lens[0]))];
			if (l) {
				ps[i].value.data = (uint8_t *)text;
				ps[i].value.len = l;
			}
			pp[i] = &ps[i];
		}
		Porter__V1__DbQuery q = PORTER__V1__DB_QUERY__INIT;
		q.sql = "SELECT 1";
		q.params = pp;
		q.n_params = n;
		Porter__V1__Request r = PORTER__V1__REQUEST__INIT;
		r.id = 3;
		r.body_case = PORTER__V1__REQUEST__BODY_DB_QUERY;
		r.db_query = &q;
		size_t len;
		uint8_t *b = pb_pack(&r.base, &len);
		uint64_t id;
		ck_assert_uint_eq(dbwire_request_params(len, b, &id), n);
		ck_assert(check_decode(&porter__v1__request__descriptor, fast_request, b, len));
		size_t last = 0;
		for (size_t cut = 0; cut <= len; cut++) {
			size_t k = dbwire_request_params_prefix(cut, b, &id);
			ck_assert_uint_le(k, n);
			ck_assert_uint_ge(k, last);
			last = k;
		}
		ck_assert_uint_eq(last, n);
		free(b);
		free(pp);
		free(ps);
	}
}
END_TEST

START_TEST(frame_limit_is_enforced)
{
	uint8_t v[300];
	memset(v, 1, sizeof(v));
	one_value o;
	one_value_init(&o, v, sizeof(v));
	Porter__V1__Response r = o.r;
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0;
	ck_assert_int_eq(dbwire_pack_response(&r, 200, &buf, &cap, &len), PORTER_E_TOO_LARGE);
	ck_assert_ptr_null(buf);
	/* The reusable buffer is grown once and then reused. */
	ck_assert_int_eq(dbwire_pack_response(&r, 1 << 20, &buf, &cap, &len), 1);
	uint8_t *first = buf;
	ck_assert_int_eq(dbwire_pack_response(&r, 1 << 20, &buf, &cap, &len), 1);
	ck_assert_ptr_eq(buf, first);
	free(buf);
}
END_TEST

/* Random pings and ping replies, empty payloads and delays included: the
 * encoders write protobuf-c's bytes, the decoders build what it builds,
 * and damaged copies mean the same to both or are declined. */
START_TEST(random_pings_match_protobuf_c)
{
	seed = 31337u + (uint32_t)_i;
	for (int round = 0; round < 300; round++) {
		uint8_t payload[300];
		size_t plen = rnd() % 3 ? rnd() % sizeof(payload) : 0;
		for (size_t j = 0; j < plen; j++)
			payload[j] = (uint8_t)rnd();
		Porter__V1__Ping ping = PORTER__V1__PING__INIT;
		ping.payload.data = plen ? payload : NULL;
		ping.payload.len = plen;
		ping.delay_ms = rnd() % 2 ? (uint32_t)rnd_u64() : 0;
		Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
		req.id = rnd() % 5 ? rnd_u64() : 0;
		req.timeout_ms = rnd() % 2 ? (uint32_t)rnd_u64() : 0;
		req.body_case = PORTER__V1__REQUEST__BODY_PING;
		req.ping = &ping;
		Porter__V1__PingReply pr = PORTER__V1__PING_REPLY__INIT;
		pr.payload = ping.payload;
		Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
		resp.id = req.id;
		resp.status = rnd() % 4 ? 0 : -(int32_t)(rnd() % 40);
		resp.body_case = PORTER__V1__RESPONSE__BODY_PING;
		resp.ping = &pr;
		check_same(&resp);
		ck_assert(check_decode(&porter__v1__response__descriptor, fast_response,
				       (const uint8_t *)"\x5a\x00", 2));

		check_request(&req);
		/* The reply decodes to the same payload. */
		size_t rlen;
		uint8_t *rw = pb_pack(&resp.base, &rlen);
		ck_assert(check_decode(&porter__v1__response__descriptor, fast_response, rw, rlen));
		free(rw);
	}
}
END_TEST

START_TEST(schema_is_the_one_dbwire_knows)
{
	ck_assert_msg(dbwire_schema_known(),
		      "porter.proto's query messages gained a field: teach proto/dbwire.c "
		      "(encoders, decoders, and the field counts it checks)");
	ck_assert_msg(filewire_schema_known(),
		      "porter.proto's FileReadReply changed: teach proto/filewire.c (its field "
		      "table)");
}
END_TEST

/* Random file reads and their replies (the bytes of a small read, a chunk
 * of a stream, or a passed descriptor's reply), zero fields, empty strings
 * and data included: the encoder writes protobuf-c's bytes (and refuses a
 * frame over the limit), the decoder builds what protobuf-c builds (field
 * by field, the data copied into the arena), and damaged or cut copies
 * mean the same to both or are declined. */
START_TEST(random_file_reads_match_protobuf_c)
{
	seed = 7177u + (uint32_t)_i;
	static uint8_t data[70000];
	for (int round = 0; round < 300; round++) {
		size_t dlen = rnd() % 4 ? rnd() % 5000 : rnd() % 3 ? 0 : rnd() % sizeof(data);
		for (size_t j = 0; j < dlen; j++)
			data[j] = (uint8_t)rnd();
		Porter__V1__FileReadReply fr = PORTER__V1__FILE_READ_REPLY__INIT;
		fr.data.data = dlen ? data : NULL;
		fr.data.len = dlen;
		fr.offset = rnd() % 2 ? rnd_u64() : 0;
		fr.file_size = rnd() % 2 ? rnd_u64() : 0;
		fr.stream_id = rnd() % 2 ? rnd_u64() : 0;
		fr.fd_passed = rnd() % 2;
		fr.chunk_size = rnd() % 2 ? (uint32_t)rnd_u64() : 0;
		/* The request the encoder writes: protobuf-c's bytes. */
		Porter__V1__FileRead rq = PORTER__V1__FILE_READ__INIT;
		char *root = rnd_str(), *path = rnd_str();
		rq.root = root ? root : "";
		rq.path = path ? path : "";
		rq.offset = fr.offset;
		rq.length = fr.file_size;
		rq.chunk_size = fr.chunk_size;
		rq.want_fd = fr.fd_passed;
		rq.fds_closed = rnd() % 2 ? (uint32_t)rnd_u64() : 0;
		Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
		req.id = rnd() % 5 ? rnd_u64() : 0;
		req.timeout_ms = rnd() % 2 ? (uint32_t)rnd_u64() : 0;
		req.body_case = PORTER__V1__REQUEST__BODY_FILE_READ;
		req.file_read = &rq;
		size_t want_len, packed_len = 0, cap = 0;
		uint8_t *want = pb_pack(&req.base, &want_len), *packed = NULL;
		ck_assert_int_eq(dbwire_pack_request(&req, 1 << 24, &packed, &cap, &packed_len), 1);
		ck_assert_uint_eq(packed_len, FRAME_HEADER_SIZE + want_len);
		ck_assert_mem_eq(packed + FRAME_HEADER_SIZE, want, want_len);
		ck_assert_int_eq(
			dbwire_pack_request(&req, want_len - 1, &packed, &cap, &packed_len),
			PORTER_E_TOO_LARGE);
		free(want);
		free(packed);
		free(root);
		free(path);

		Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
		resp.id = rnd() % 5 ? rnd_u64() : 0;
		resp.more = rnd() % 2;
		resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_READ;
		resp.file_read = &fr;
		size_t len;
		uint8_t *wire = pb_pack(&resp.base, &len);
		arena a;
		arena_init(&a, 0);
		Porter__V1__Response *got = dbwire_unpack_response(&a.base, len, wire);
		ck_assert_ptr_nonnull(got);
		ck_assert_int_eq(got->body_case, PORTER__V1__RESPONSE__BODY_FILE_READ);
		ck_assert_uint_eq(got->id, resp.id);
		ck_assert_int_eq(got->more, resp.more);
		const Porter__V1__FileReadReply *g = got->file_read;
		ck_assert_uint_eq(g->data.len, dlen);
		if (dlen) {
			ck_assert_mem_eq(g->data.data, data, dlen);
			/* A copy in the arena, not a pointer into the frame. */
			ck_assert(g->data.data < wire || g->data.data >= wire + len);
		} else {
			ck_assert_ptr_null(g->data.data);
		}
		ck_assert_uint_eq(g->offset, fr.offset);
		ck_assert_uint_eq(g->file_size, fr.file_size);
		ck_assert_uint_eq(g->stream_id, fr.stream_id);
		ck_assert_int_eq(g->fd_passed, fr.fd_passed);
		ck_assert_uint_eq(g->chunk_size, fr.chunk_size);
		arena_free(&a);
		check_reply_and_damaged(wire, len);
		free(wire);
	}
	/* An unknown field (9, varint) inside the reply is protobuf-c's. */
	const uint8_t unknown[] = {0xc2, 0x02, 0x04, 0x10, 0x05, 0x48, 0x01};
	ck_assert(!check_decode(&porter__v1__response__descriptor, fast_response, unknown,
				sizeof(unknown)));
	/* So is data given as a varint. */
	const uint8_t wrong_type[] = {0xc2, 0x02, 0x02, 0x08, 0x05};
	ck_assert(!check_decode(&porter__v1__response__descriptor, fast_response, wrong_type,
				sizeof(wrong_type)));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("dbwire");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, schema_is_the_one_dbwire_knows);
	tcase_add_loop_test(tc, random_replies_match_protobuf_c, 0, 10);
	tcase_add_loop_test(tc, random_replies_decode_as_protobuf_c_does, 0, 5);
	tcase_add_loop_test(tc, random_requests_match_protobuf_c, 0, 5);
	tcase_add_test(tc, decoders_decline_what_they_do_not_know);
	tcase_add_test(tc, large_rows_and_lengths_over_one_varint_byte);
	tcase_add_test(tc, other_bodies_are_left_to_protobuf_c);
	tcase_add_test(tc, notices_and_error_fields_are_left_to_protobuf_c);
	tcase_add_test(tc, frame_limit_is_enforced);
	tcase_add_test(tc, params_are_counted_on_the_wire);
	tcase_add_test(tc, short_params_are_counted_in_runs);
	tcase_add_loop_test(tc, random_pings_match_protobuf_c, 0, 3);
	tcase_add_loop_test(tc, random_file_reads_match_protobuf_c, 0, 3);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
