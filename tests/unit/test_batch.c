/*
 * Unit tests of daemon/batch.c on the worker rig (tests/support/wrig.h),
 * with Ping members (delays run on the rig's loop): ALL answers once, in
 * member order whatever order members finish in; FIRST answers with the
 * first success and stops the rest at once; the member limit, empty
 * batches, nested Batch/Hello/Cancel members and members with more
 * parameters than PostgreSQL takes are refused before anything runs; a
 * cancelled batch stops every member.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "config.h"
#include "conn.h"
#include "harness.h"
#include "ops.h"
#include "porter_errors.h"
#include "wrig.h"

enum { UID = 4001, INST = 7 };

/* Each test: one worker, one client `c` whose end of the socket is `fd`. */
static conn *c;
static int fd;

static void setup(void)
{
	wrig_up(1);
	c = wrig_client(wrig_worker(0), UID, INST, &fd);
}

/* A member: Ping `id` answered after `delay_ms`, packed as Batch carries
 * it (heap, freed by free_members). */
static ProtobufCBinaryData ping_member(uint64_t id, uint32_t delay_ms)
{
	Porter__V1__Request m = PORTER__V1__REQUEST__INIT;
	Porter__V1__Ping p = PORTER__V1__PING__INIT;
	m.id = id;
	p.delay_ms = delay_ms;
	p.payload.data = (uint8_t *)&id;
	p.payload.len = sizeof(id);
	m.body_case = PORTER__V1__REQUEST__BODY_PING;
	m.ping = &p;
	return wrig_packed(&m);
}

/* Dispatches Batch `id` of `n` members in `mode` from `c`, as conn does. */
static req *run_batch(uint64_t id, int mode, ProtobufCBinaryData *members, size_t n)
{
	Porter__V1__Request m = PORTER__V1__REQUEST__INIT;
	Porter__V1__Batch b = PORTER__V1__BATCH__INIT;
	m.id = id;
	b.mode = mode;
	b.n_members = n;
	b.members = members;
	m.body_case = PORTER__V1__REQUEST__BODY_BATCH;
	m.batch = &b;
	req *r = wrig_request(c, &m);
	ops_dispatch(r);
	return r;
}

static void free_members(ProtobufCBinaryData *members, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(members[i].data);
}

/* Waits (running the loops) for the reply to `id` on the client end. */
static Porter__V1__Response *await(uint64_t id, int ms)
{
	long long until = th_now_ms() + ms;
	while (wrig_quiet(fd) && th_now_ms() < until) {
		wrig_pump();
		usleep(1000);
	}
	return wrig_reply(fd, id);
}

/* The id a member's packed Ping reply echoes (its payload). */
static uint64_t echoed(const ProtobufCBinaryData *raw, int *status)
{
	Porter__V1__Response *m = porter__v1__response__unpack(NULL, raw->len, raw->data);
	ck_assert_ptr_nonnull(m);
	*status = m->status;
	uint64_t id = 0;
	if (m->body_case == PORTER__V1__RESPONSE__BODY_PING && m->ping->payload.len == sizeof(id))
		memcpy(&id, m->ping->payload.data, sizeof(id));
	porter__v1__response__free_unpacked(m, NULL);
	return id;
}

START_TEST(all_answers_once_in_member_order)
{
	/* Finishing order 3, 1, 2, 0: the reply keeps member order. */
	ProtobufCBinaryData m[4] = {ping_member(100, 60), ping_member(101, 20),
				    ping_member(102, 40), ping_member(103, 0)};
	run_batch(1, PORTER__V1__BATCH__MODE__ALL, m, 4);
	/* Member 3 has answered; the loop has not run, so no timer has: the
	 * batch must still be waiting (a check free of timing). */
	ck_assert(wrig_quiet(fd));
	Porter__V1__Response *resp = await(1, 5000);
	ck_assert_int_eq(resp->status, 0);
	ck_assert_int_eq(resp->body_case, PORTER__V1__RESPONSE__BODY_BATCH);
	ck_assert_uint_eq(resp->batch->n_results, 4);
	for (unsigned i = 0; i < 4; i++) {
		int st;
		ck_assert_uint_eq(echoed(&resp->batch->results[i], &st), 100 + i);
		ck_assert_int_eq(st, 0);
	}
	porter__v1__response__free_unpacked(resp, NULL);
	wrig_pump();
	ck_assert(wrig_quiet(fd)); /* one reply, nothing after it */
	ck_assert_uint_eq(c->inflight, 0);
	free_members(m, 4);
}
END_TEST

START_TEST(first_answers_with_the_winner_and_stops_the_rest)
{
	ProtobufCBinaryData m[3] = {ping_member(200, 10000), ping_member(201, 10),
				    ping_member(202, 10000)};
	long long t0 = th_now_ms();
	run_batch(2, PORTER__V1__BATCH__MODE__FIRST, m, 3);
	Porter__V1__Response *resp = await(2, 5000);
	/* The 10 s members were stopped, not waited for (generous bound). */
	ck_assert_int_lt(th_now_ms() - t0, 5000);
	ck_assert_int_eq(resp->status, 0);
	ck_assert_int_eq(resp->batch->winner, 1);
	int st;
	ck_assert_uint_eq(echoed(&resp->batch->results[1], &st), 201);
	porter__v1__response__free_unpacked(resp, NULL);
	/* The losers were stopped with the answer, not left running: no
	 * member of the worker is in flight any more. */
	ck_assert_uint_eq(stats_get(&wrig_worker(0)->counters.inflight), 0);
	ck_assert_uint_eq(c->inflight, 0);
	free_members(m, 3);
}
END_TEST

/* A member whose encoding claims `n` query parameters. */
static ProtobufCBinaryData params_member(size_t n)
{
	Porter__V1__Request m = PORTER__V1__REQUEST__INIT;
	Porter__V1__DbQuery q = PORTER__V1__DB_QUERY__INIT;
	Porter__V1__DbParam p = PORTER__V1__DB_PARAM__INIT;
	Porter__V1__DbParam **ps = malloc(n * sizeof(*ps));
	ck_assert_ptr_nonnull(ps);
	for (size_t i = 0; i < n; i++)
		ps[i] = &p;
	q.conninfo = "host=/nonexistent";
	q.sql = "SELECT 1";
	q.n_params = n;
	q.params = ps;
	m.id = 9;
	m.body_case = PORTER__V1__REQUEST__BODY_DB_QUERY;
	m.db_query = &q;
	ProtobufCBinaryData b = wrig_packed(&m);
	free(ps);
	return b;
}

/* Batch `id` is refused with PORTER_E_INVAL and a message containing
 * `why`, and nothing of it runs. */
static void refused(uint64_t id, ProtobufCBinaryData *m, size_t n, int mode, const char *why)
{
	run_batch(id, mode, m, n);
	Porter__V1__Response *resp = wrig_reply(fd, id);
	ck_assert_int_eq(resp->status, PORTER_E_INVAL);
	ck_assert_msg(resp->message && strstr(resp->message, why), "batch %llu: '%s'",
		      (unsigned long long)id, resp->message ? resp->message : "");
	porter__v1__response__free_unpacked(resp, NULL);
	ck_assert_uint_eq(c->inflight, 0);
}

START_TEST(invalid_batches_refused_before_anything_runs)
{
	unsigned max = wrig_config()->batch_max_members;
	ProtobufCBinaryData *m = calloc(max + 1, sizeof(*m));
	ck_assert_ptr_nonnull(m);
	for (unsigned i = 0; i <= max; i++)
		m[i] = ping_member(300 + i, 0);
	refused(3, m, max + 1, PORTER__V1__BATCH__MODE__ALL, "at most");
	refused(4, m, 0, PORTER__V1__BATCH__MODE__ALL, "at least one member");
	refused(5, m, 1, 7, "unknown batch mode");

	/* Nested control requests: the one level of recursion the schema
	 * allows stops here. */
	Porter__V1__Request nested = PORTER__V1__REQUEST__INIT;
	Porter__V1__Batch inner = PORTER__V1__BATCH__INIT;
	nested.body_case = PORTER__V1__REQUEST__BODY_BATCH;
	nested.batch = &inner;
	uint8_t buf[32];
	ProtobufCBinaryData two[2] = {m[0], {porter__v1__request__pack(&nested, buf), buf}};
	refused(6, two, 2, PORTER__V1__BATCH__MODE__ALL, "cannot be batch members");
	uint8_t junk[] = {0xff, 0xff, 0xff};
	two[1] = (ProtobufCBinaryData){sizeof(junk), junk};
	refused(7, two, 2, PORTER__V1__BATCH__MODE__ALL, "not a valid request");
	/* Counted on the wire before unpacking (each empty parameter would
	 * unpack into a struct many times its two bytes). */
	two[1] = params_member(65536);
	refused(8, two, 2, PORTER__V1__BATCH__MODE__ALL, "65535");
	free(two[1].data);

	/* The limit itself is accepted. */
	run_batch(10, PORTER__V1__BATCH__MODE__ALL, m, max);
	Porter__V1__Response *resp = await(10, 5000);
	ck_assert_int_eq(resp->status, 0);
	ck_assert_uint_eq(resp->batch->n_results, max);
	porter__v1__response__free_unpacked(resp, NULL);
	free_members(m, max + 1);
	free(m);
}
END_TEST

START_TEST(stopping_the_batch_stops_every_member)
{
	ProtobufCBinaryData m[2] = {ping_member(400, 10000), ping_member(401, 10000)};
	req *r = run_batch(11, PORTER__V1__BATCH__MODE__ALL, m, 2);
	wrig_pump();
	ck_assert(wrig_quiet(fd));
	ck_assert_int_eq(req_stop(r, PORTER_E_CANCELLED), 1);
	Porter__V1__Response *resp = await(11, 2000);
	ck_assert_int_eq(resp->status, PORTER_E_CANCELLED);
	porter__v1__response__free_unpacked(resp, NULL);
	ck_assert_uint_eq(c->inflight, 0);
	free_members(m, 2);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("batch");
	const TTest *tests[] = {all_answers_once_in_member_order,
				first_answers_with_the_winner_and_stops_the_rest,
				invalid_batches_refused_before_anything_runs,
				stopping_the_batch_stops_every_member, NULL};
	tcase_add_checked_fixture(th_tcase(s, "batch", 60, tests), setup, wrig_down);
	return s;
}

TH_MAIN(suite)
