/*
 * libporter's public calls against a real porterd, written to run under
 * Valgrind memcheck (ctest runs it a second time under valgrind with
 * CK_FORK=no): pings, errors, stats, batches, cancel from another thread,
 * thread exit, a vanished and restarted daemon, and a reset. Every object
 * returned is freed, so any definite leak or invalid access is the
 * library's.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

static th_daemon d;

START_TEST(calls_errors_and_stats)
{
	th_start(&d, NULL);
	ck_assert_int_eq(porter_ping("hello", 5, 0, 5000), 0);
	ck_assert_int_eq(porter_last_error(), 0);
	ck_assert_int_eq(porter_ping(NULL, 3, 0, 5000), PORTER_E_INVAL);
	ck_assert_int_eq(porter_last_error(), PORTER_E_INVAL);
	ck_assert_ptr_nonnull(porter_last_error_message());
	ck_assert_str_eq(porter_error_name(PORTER_E_TIMEOUT), "PORTER_E_TIMEOUT");
	/* The daemon's own deadline: a delay longer than the timeout. */
	ck_assert_int_eq(porter_ping_delay("late", 4, 3000, 0, 300), PORTER_E_TIMEOUT);
	ck_assert_int_eq(porter_ping_delay("soon", 4, 10, 0, 5000), 0);

	porter_stats_snapshot *s = NULL;
	ck_assert_int_eq(porter_stats(0, 5000, &s), 0);
	ck_assert_uint_ge(porter_stats_workers(s), 1);
	uint64_t requests = 0;
	for (size_t i = 0; i < porter_stats_workers(s); i++) {
		porter_worker_stats w = PORTER_WORKER_STATS_INIT;
		ck_assert_int_eq(porter_stats_worker(s, i, &w), 0);
		requests += w.requests;
	}
	ck_assert_uint_ge(requests, 5);
	ck_assert_str_eq(porter_stats_daemon_version(s), PORTER_VERSION_STRING);
	porter_stats_free(s);
	th_stop_clean(&d);
}
END_TEST

START_TEST(batches)
{
	th_start(&d, NULL);
	for (int mode = PORTER_BATCH_ALL; mode <= PORTER_BATCH_FIRST; mode++) {
		porter_batch *b = porter_batch_new(mode);
		ck_assert_ptr_nonnull(b);
		ck_assert_int_eq(porter_batch_add_ping(b, "a", 1, 0, 0), 0);
		ck_assert_int_eq(porter_batch_add_ping(b, "bb", 2, 200, 0), 1);
		ck_assert_int_eq(porter_batch_add_ping(b, "ccc", 3, 3000, 200), 2);
		porter_batch_result *r = NULL;
		ck_assert_int_eq(porter_batch_run(b, 0, 5000, &r), 0);
		ck_assert_uint_eq(porter_batch_result_count(r), 3);
		const void *data;
		size_t len;
		ck_assert_int_eq(porter_batch_result_status(r, 0), 0);
		ck_assert_int_eq(porter_batch_result_ping(r, 0, &data, &len), 0);
		ck_assert_uint_eq(len, 1);
		if (mode == PORTER_BATCH_ALL) {
			ck_assert_int_eq(porter_batch_result_status(r, 1), 0);
			ck_assert_int_eq(porter_batch_result_status(r, 2), PORTER_E_TIMEOUT);
			ck_assert_str_ne(porter_batch_result_message(r, 2), "");
		} else {
			ck_assert_int_eq(porter_batch_result_winner(r), 0);
		}
		ck_assert_int_eq(porter_batch_result_status(r, 7), PORTER_E_INVAL);
		porter_batch_result_free(r);
		porter_batch_free(b);
	}
	porter_batch_free(NULL);
	porter_batch_result_free(NULL);
	th_stop_clean(&d);
}
END_TEST

static atomic_ullong target_id;
static atomic_int target_done;
static int target_rc;

static void *slow_call(void *arg)
{
	(void)arg;
	uint64_t id = porter_call_id_new();
	atomic_store(&target_id, id);
	target_rc = porter_ping_delay("slow", 4, 10000, id, 20000);
	atomic_store(&target_done, 1);
	/* No disconnect: thread exit closes the connection (key destructor). */
	return NULL;
}

START_TEST(cancel_from_another_thread)
{
	th_start(&d, NULL);
	atomic_store(&target_id, 0);
	atomic_store(&target_done, 0);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, slow_call, NULL), 0);
	while (atomic_load(&target_id) == 0)
		usleep(1000);
	int rc;
	long long until = th_now_ms() + 10000;
	/* Until the target has reached the daemon. A cancel that comes
	 * first is remembered and refuses the target on arrival, so the
	 * target may also be finished by then. */
	while ((rc = porter_cancel(atomic_load(&target_id), 5000)) == PORTER_E_NOT_FOUND &&
	       !atomic_load(&target_done) && th_now_ms() < until)
		usleep(20000);
	ck_assert(rc == 0 || rc == PORTER_E_NOT_FOUND);
	pthread_join(th, NULL);
	ck_assert_int_eq(target_rc, PORTER_E_CANCELLED);
	ck_assert_int_eq(porter_cancel(12345, 5000), PORTER_E_NOT_FOUND);
	th_stop_clean(&d);
}
END_TEST

START_TEST(daemon_gone_restarted_and_reset)
{
	th_start(&d, NULL);
	ck_assert_int_eq(porter_ping("x", 1, 0, 5000), 0);
	th_daemon_kill(&d);
	ck_assert_int_eq(porter_ping("x", 1, 0, 1000), PORTER_E_UNREACHABLE);
	ck_assert_int_eq(th_daemon_restart(&d, NULL), 0);
	ck_assert_int_eq(porter_ping("x", 1, 0, 5000), 0);
	porter_reset();
	ck_assert_int_eq(porter_ping("y", 1, 0, 5000), 0);
	th_stop_clean(&d);
}
END_TEST

/* With CK_FORK=no (under valgrind) every test runs in this one process:
 * nothing a failed test left behind may reach the next. */
static void fresh(void)
{
	porter_thread_disconnect();
	if (d.pid > 0) {
		th_daemon_kill(&d);
		th_daemon_cleanup(&d);
	}
	memset(&d, 0, sizeof(d));
}

static Suite *suite(void)
{
	Suite *s = suite_create("client_memcheck");
	const TTest *tests[] = {calls_errors_and_stats, batches, cancel_from_another_thread,
				daemon_gone_restarted_and_reset, NULL};
	/* Valgrind makes everything several times slower. */
	tcase_add_checked_fixture(th_tcase(s, "client", 120, tests), fresh, NULL);
	return s;
}

TH_MAIN(suite)
