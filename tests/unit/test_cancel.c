/*
 * Unit tests of daemon/cancel.c on hand-built workers whose loops the test
 * runs itself (no threads): early cancels are remembered per client and
 * refuse the late request once, expire after 30 s of loop time, are
 * bounded per uid without one uid pushing out another's; a Cancel reaches
 * a request on another worker through the inboxes and answers only once
 * every worker has. Replies are read from the client end of a socketpair,
 * as a client would.
 */
#include <check.h>
#include <stdlib.h>

#include "cancel.h"
#include "conn.h"
#include "harness.h"
#include "porter_errors.h"
#include "req.h"
#include "worker.h"
#include "wrig.h"

enum { UID_A = 4001, UID_B = 4002, INST = 7 };

/* A request as conn would have unpacked it (malloc'd by protobuf-c). */
static req *request(conn *c, uint64_t id, uint64_t cancel_target)
{
	Porter__V1__Request m = PORTER__V1__REQUEST__INIT;
	Porter__V1__Ping p = PORTER__V1__PING__INIT;
	Porter__V1__Cancel cn = PORTER__V1__CANCEL__INIT;
	m.id = id;
	if (cancel_target) {
		cn.target_id = cancel_target;
		m.body_case = PORTER__V1__REQUEST__BODY_CANCEL;
		m.cancel = &cn;
	} else {
		m.body_case = PORTER__V1__REQUEST__BODY_PING;
		m.ping = &p;
	}
	return wrig_request(c, &m);
}

/* The next reply on the client's end: its status; `*found` gets a
 * CancelReply's answer (-1 for other bodies). */
static int reply(int fd, uint64_t id, int *found)
{
	Porter__V1__Response *resp = wrig_reply(fd, id);
	int status = resp->status;
	if (found)
		*found = resp->body_case == PORTER__V1__RESPONSE__BODY_CANCEL ? resp->cancel->found
									      : -1;
	porter__v1__response__free_unpacked(resp, NULL);
	return status;
}

/* A Cancel of `target` from `c`, answered "not found" (remembered). */
static void cancel_unknown(conn *c, int fd, uint64_t target)
{
	int found;
	cancel_handle(request(c, 900000 + target, target));
	ck_assert_int_eq(reply(fd, 900000 + target, &found), 0);
	ck_assert_int_eq(found, 0);
}

/* Whether request `id` of `c` is refused as cancelled before it started;
 * a request that is not is answered here, as dispatch would. */
static int refused(conn *c, int fd, uint64_t id)
{
	req *r = request(c, id, 0);
	if (cancel_refuse_early(r)) {
		ck_assert_int_eq(reply(fd, id, NULL), PORTER_E_CANCELLED);
		return 1;
	}
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	req_reply(r, &resp);
	ck_assert_int_eq(reply(fd, id, NULL), 0);
	return 0;
}

START_TEST(early_cancel_refuses_the_late_request_once)
{
	wrig_up(1);
	int fa, fa2, fb;
	conn *a = wrig_client(wrig_worker(0), UID_A, INST, &fa);
	conn *a2 = wrig_client(wrig_worker(0), UID_A, INST + 1, &fa2); /* another process of A */
	conn *b = wrig_client(wrig_worker(0), UID_B, INST, &fb);
	cancel_unknown(a, fa, 77);
	/* Ids are per client: neither another process of the same uid nor
	 * another uid with the same instance number is touched. */
	ck_assert(!refused(a2, fa2, 77));
	ck_assert(!refused(b, fb, 77));
	ck_assert(refused(a, fa, 77));
	ck_assert(!refused(a, fa, 77)); /* used up */
	wrig_down();
}
END_TEST

START_TEST(tombstones_expire_after_30_s_of_loop_time)
{
	wrig_up(1);
	int fa;
	conn *a = wrig_client(wrig_worker(0), UID_A, INST, &fa);
	cancel_unknown(a, fa, 5);
	cancel_unknown(a, fa, 6);
	/* The loop's clock is the test's to move while the loop is not run:
	 * cancel reads it through uv_now(). */
	wrig_worker(0)->loop.time += 29000;
	ck_assert(refused(a, fa, 5));
	wrig_worker(0)->loop.time += 1001;
	ck_assert(!refused(a, fa, 6));
	wrig_down();
}
END_TEST

START_TEST(tombstones_bounded_per_uid_never_across)
{
	wrig_up(1);
	int fa, fb;
	conn *a = wrig_client(wrig_worker(0), UID_A, INST, &fa);
	conn *b = wrig_client(wrig_worker(0), UID_B, INST, &fb);
	cancel_unknown(a, fa, 1);
	cancel_unknown(a, fa, 2);
	/* Another uid's flood (three times the bound) leaves A's alone. */
	for (uint64_t t = 10000; t < 13000; t++)
		cancel_unknown(b, fb, t);
	ck_assert(refused(a, fa, 1));
	ck_assert(refused(b, fb, 12999));
	ck_assert(!refused(b, fb, 10000)); /* B pushed out its own oldest */
	/* A's own 1,024 more push out A's oldest (2), keep the newest. */
	for (uint64_t t = 20000; t < 20000 + 1024; t++)
		cancel_unknown(a, fa, t);
	ck_assert(!refused(a, fa, 2));
	ck_assert(refused(a, fa, 20000));
	ck_assert(refused(a, fa, 20000 + 1023));
	wrig_down();
}
END_TEST

/* A running request's stop hook, as a service module sets it: stops and
 * answers (req_reply turns the answer into PORTER_E_CANCELLED). */
static int stopped;

static void stop_hook(req *r)
{
	stopped++;
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	req_reply(r, &resp);
}

START_TEST(cancel_reaches_another_worker_and_waits_for_every_answer)
{
	wrig_up(2);
	stopped = 0;
	int f0, f1, fo;
	conn *c0 = wrig_client(wrig_worker(0), UID_A, INST, &f0);
	conn *c1 = wrig_client(wrig_worker(1), UID_A, INST, &f1);
	conn *other = wrig_client(wrig_worker(1), UID_A, INST + 1, &fo);
	req *running = request(c1, 42, 0);
	running->cancel = stop_hook;
	req *foreign = request(other, 43, 0); /* another process's id 43 */
	foreign->cancel = stop_hook;

	cancel_handle(request(c0, 500, 42));
	/* Worker 1 has not run yet: no answer can be final. */
	ck_assert(wrig_quiet(f0));
	ck_assert_int_eq(stopped, 0);
	wrig_pump();
	ck_assert_int_eq(stopped, 1);
	ck_assert_int_eq(reply(f1, 42, NULL), PORTER_E_CANCELLED);
	int found;
	ck_assert_int_eq(reply(f0, 500, &found), 0);
	ck_assert_int_eq(found, 1);

	/* The same id from another process of the uid is not ours to stop. */
	cancel_handle(request(c0, 501, 43));
	wrig_pump();
	ck_assert_int_eq(reply(f0, 501, &found), 0);
	ck_assert_int_eq(found, 0);
	ck_assert_int_eq(stopped, 1);
	ck_assert(wrig_quiet(fo));
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	foreign->cancel = NULL;
	req_reply(foreign, &resp);
	ck_assert_int_eq(reply(fo, 43, NULL), 0);
	wrig_down();
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {early_cancel_refuses_the_late_request_once,
				tombstones_expire_after_30_s_of_loop_time,
				tombstones_bounded_per_uid_never_across,
				cancel_reaches_another_worker_and_waits_for_every_answer, NULL};
	return th_suite("cancel", "cancel", 0, tests);
}

TH_MAIN(suite)
