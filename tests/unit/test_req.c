/*
 * Unit tests of daemon/req.c on the worker rig (tests/support/wrig.h):
 * deadlines from the request's timeout, the default and the maximum; a
 * stop calls the module's hook once and the client sees the stop's code
 * whatever the module answers; a request whose connection went away is
 * stopped once and its late reply goes nowhere; the connection's and the
 * worker's in-flight counts come back to zero.
 */
#include <check.h>

#include "config.h"
#include "conn.h"
#include "porter_errors.h"
#include "stats.h"
#include "thmain.h"
#include "wrig.h"

enum { UID = 4001, INST = 7 };

static int hook_calls;

/* Each test: one worker, one client `c` whose end of the socket is `fd`. */
static conn *c;
static int fd;

static void setup(void)
{
	wrig_up(1);
	c = wrig_client(wrig_worker(0), UID, INST, &fd);
	hook_calls = 0;
}

static void count_hook(req *r)
{
	(void)r;
	hook_calls++;
}

static void answer(req *r)
{
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	req_reply(r, &resp);
}

START_TEST(deadlines_follow_timeout_default_and_maximum)
{
	config *cfg = wrig_config();
	cfg->default_timeout_ms = 30000;
	cfg->max_timeout_ms = 60000;
	uint64_t now = uv_now(&wrig_worker(0)->loop);
	req *given = wrig_ping(c, 1, 0, 1500);
	req *dflt = wrig_ping(c, 2, 0, 0);
	req *capped = wrig_ping(c, 3, 0, 3600000);
	ck_assert_uint_eq(given->deadline, now + 1500);
	ck_assert_uint_eq(dflt->deadline, now + 30000);
	ck_assert_uint_eq(capped->deadline, now + 60000);
	ck_assert_uint_eq(req_remaining_ms(given), 1500);
	wrig_worker(0)->loop.time += 2000; /* past it: 0, never wrapped */
	ck_assert_uint_eq(req_remaining_ms(given), 0);
	ck_assert_uint_eq(c->inflight, 3);
	ck_assert_uint_eq(stats_get(&wrig_worker(0)->counters.inflight), 3);
	answer(given);
	answer(dflt);
	answer(capped);
	for (uint64_t id = 1; id <= 3; id++)
		ck_assert_int_eq(wrig_status(fd, id), 0);
	ck_assert_uint_eq(c->inflight, 0);
	ck_assert_uint_eq(stats_get(&wrig_worker(0)->counters.inflight), 0);
}
END_TEST

START_TEST(stop_runs_the_hook_once_and_its_code_wins)
{
	req *plain = wrig_ping(c, 10, 0, 0);
	/* No hook: the work cannot stop early and will answer itself. */
	ck_assert_int_eq(req_stop(plain, PORTER_E_CANCELLED), 0);
	answer(plain);
	ck_assert_int_eq(wrig_status(fd, 10), 0);

	req *r = wrig_ping(c, 11, 0, 0);
	r->cancel = count_hook;
	ck_assert_int_eq(req_stop(r, PORTER_E_SHUTDOWN), 1);
	ck_assert_int_eq(req_stop(r, PORTER_E_CANCELLED), 0); /* hook used up */
	ck_assert_int_eq(hook_calls, 1);
	/* The module answers success after all; the client is told why it
	 * was stopped. */
	answer(r);
	ck_assert_int_eq(wrig_status(fd, 11), PORTER_E_SHUTDOWN);
}
END_TEST

START_TEST(detached_request_is_stopped_once_and_answers_nobody)
{
	req *r = wrig_ping(c, 20, 0, 0);
	r->cancel = count_hook;
	req_detach(r);
	ck_assert_ptr_null(r->c);
	ck_assert_int_eq(hook_calls, 1);
	ck_assert_int_eq(req_stop(r, PORTER_E_CANCELLED), 0);
	ck_assert_int_eq(hook_calls, 1);
	answer(r); /* the module finishes it later: nothing is sent */
	wrig_pump();
	ck_assert(wrig_quiet(fd));
	ck_assert_uint_eq(stats_get(&wrig_worker(0)->counters.inflight), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("req");
	const TTest *tests[] = {deadlines_follow_timeout_default_and_maximum,
				stop_runs_the_hook_once_and_its_code_wins,
				detached_request_is_stopped_once_and_answers_nobody, NULL};
	tcase_add_checked_fixture(th_tcase(s, "req", 0, tests), setup, wrig_down);
	return s;
}

TH_MAIN(suite)
