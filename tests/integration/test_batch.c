/*
 * Integration tests of Batch (join and select), using delayed Pings as
 * members that take known time and can be stopped.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

static th_daemon d;

static void expect_ping(const porter_batch_result *r, size_t i, const char *want)
{
	const void *data;
	size_t len;
	ck_assert_int_eq(porter_batch_result_status(r, i), 0);
	ck_assert_int_eq(porter_batch_result_ping(r, i, &data, &len), 0);
	ck_assert_uint_eq(len, strlen(want));
	ck_assert(memcmp(data, want, len) == 0);
}

START_TEST(join_returns_all_in_order_concurrently)
{
	th_start(&d, NULL);
	porter_batch *b = porter_batch_new(PORTER_BATCH_ALL);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(porter_batch_add_ping(b, "first", 5, 400, 0), 0);
	ck_assert_int_eq(porter_batch_add_ping(b, "second", 6, 100, 0), 1);
	ck_assert_int_eq(porter_batch_add_ping(b, "th\0rd", 5, 400, 0), 2);
	ck_assert_int_eq(porter_batch_add_ping(b, "now", 3, 0, 0), 3);
	ck_assert_uint_eq(porter_batch_count(b), 4);

	long long t0 = th_now_ms();
	porter_batch_result *r = NULL;
	ck_assert_int_eq(porter_batch_run(b, 0, 5000, &r), 0);
	long long took = th_now_ms() - t0;
	ck_assert_uint_eq(porter_batch_result_count(r), 4);
	ck_assert_int_eq(porter_batch_result_winner(r), -1);
	expect_ping(r, 0, "first");
	expect_ping(r, 1, "second");
	const void *data;
	size_t len;
	ck_assert_int_eq(porter_batch_result_ping(r, 2, &data, &len), 0);
	ck_assert_uint_eq(len, 5);
	ck_assert(memcmp(data, "th\0rd", 5) == 0);
	expect_ping(r, 3, "now");
	ck_assert_int_eq(porter_batch_result_status(r, 4), PORTER_E_INVAL);
	/* 900 ms of delays ran side by side: the batch took about the
	 * longest member, far less than their sum. */
	ck_assert_int_ge(took, 390);
	ck_assert_int_lt(took, 850);

	/* A builder can be run again. */
	porter_batch_result *r2 = NULL;
	ck_assert_int_eq(porter_batch_run(b, 0, 5000, &r2), 0);
	expect_ping(r2, 1, "second");
	porter_batch_result_free(r2);
	porter_batch_result_free(r);
	porter_batch_free(b);
	th_expect_idle();
	th_stop_clean(&d);
}
END_TEST

START_TEST(select_returns_the_fastest_and_stops_the_rest)
{
	th_start(&d, NULL);
	porter_batch *b = porter_batch_new(PORTER_BATCH_FIRST);
	porter_batch_add_ping(b, "slow", 4, 5000, 0);
	porter_batch_add_ping(b, "fast", 4, 100, 0);
	porter_batch_add_ping(b, "slower", 6, 8000, 0);
	long long t0 = th_now_ms();
	porter_batch_result *r = NULL;
	ck_assert_int_eq(porter_batch_run(b, 0, 10000, &r), 0);
	ck_assert_int_lt(th_now_ms() - t0, 2000);
	ck_assert_int_eq(porter_batch_result_winner(r), 1);
	expect_ping(r, 1, "fast");
	ck_assert_int_eq(porter_batch_result_status(r, 0), PORTER_E_CANCELLED);
	ck_assert_int_eq(porter_batch_result_status(r, 2), PORTER_E_CANCELLED);
	ck_assert_str_eq(porter_batch_result_message(r, 0), "stopped: another member won");
	porter_batch_result_free(r);
	porter_batch_free(b);
	/* The losers were stopped, not left running for seconds. */
	th_expect_idle();

	/* An instant member wins while the others are still being started. */
	b = porter_batch_new(PORTER_BATCH_FIRST);
	porter_batch_add_ping(b, "zero", 4, 0, 0);
	porter_batch_add_ping(b, "late", 4, 5000, 0);
	ck_assert_int_eq(porter_batch_run(b, 0, 10000, &r), 0);
	ck_assert_int_eq(porter_batch_result_winner(r), 0);
	expect_ping(r, 0, "zero");
	ck_assert_int_eq(porter_batch_result_status(r, 1), PORTER_E_CANCELLED);
	porter_batch_result_free(r);
	porter_batch_free(b);
	th_expect_idle();
	th_stop_clean(&d);
}
END_TEST

START_TEST(deadlines_per_member_and_overall)
{
	th_start(&d, NULL);
	/* A member's own timeout. */
	porter_batch *b = porter_batch_new(PORTER_BATCH_ALL);
	porter_batch_add_ping(b, "late", 4, 3000, 100);
	porter_batch_add_ping(b, "ok", 2, 10, 0);
	porter_batch_result *r = NULL;
	long long t0 = th_now_ms();
	ck_assert_int_eq(porter_batch_run(b, 0, 5000, &r), 0);
	ck_assert_int_lt(th_now_ms() - t0, 2000);
	ck_assert_int_eq(porter_batch_result_status(r, 0), PORTER_E_TIMEOUT);
	expect_ping(r, 1, "ok");
	porter_batch_result_free(r);
	porter_batch_free(b);

	/* The batch's deadline bounds members that set none. */
	b = porter_batch_new(PORTER_BATCH_ALL);
	porter_batch_add_ping(b, "slow", 4, 5000, 0);
	t0 = th_now_ms();
	ck_assert_int_eq(porter_batch_run(b, 0, 500, &r), 0);
	ck_assert_int_lt(th_now_ms() - t0, 1500);
	ck_assert_int_eq(porter_batch_result_status(r, 0), PORTER_E_TIMEOUT);
	porter_batch_result_free(r);
	porter_batch_free(b);

	/* FIRST where every member fails: every failure is reported. */
	b = porter_batch_new(PORTER_BATCH_FIRST);
	porter_batch_add_ping(b, "a", 1, 3000, 50);
	porter_batch_add_ping(b, "b", 1, 3000, 80);
	ck_assert_int_eq(porter_batch_run(b, 0, 5000, &r), 0);
	ck_assert_int_eq(porter_batch_result_winner(r), -1);
	ck_assert_int_eq(porter_batch_result_status(r, 0), PORTER_E_TIMEOUT);
	ck_assert_int_eq(porter_batch_result_status(r, 1), PORTER_E_TIMEOUT);
	ck_assert_str_ne(porter_batch_result_message(r, 1), "");
	porter_batch_result_free(r);
	porter_batch_free(b);
	th_expect_idle();
	th_stop_clean(&d);
}
END_TEST

START_TEST(invalid_batches_are_refused)
{
	const char *args[] = {"--batch-max-members", "4", NULL};
	th_start(&d, args);
	ck_assert_ptr_null(porter_batch_new(7));
	porter_batch *b = porter_batch_new(PORTER_BATCH_ALL);
	porter_batch_result *r = NULL;
	ck_assert_int_eq(porter_batch_run(b, 0, 2000, &r), PORTER_E_INVAL);
	ck_assert(strstr(porter_last_error_message(), "at least one member"));
	for (int i = 0; i < 5; i++)
		porter_batch_add_ping(b, "x", 1, 0, 0);
	ck_assert_int_eq(porter_batch_run(b, 0, 2000, &r), PORTER_E_INVAL);
	ck_assert(strstr(porter_last_error_message(), "at most 4"));
	ck_assert_ptr_null(r);
	ck_assert_int_eq(porter_batch_add_ping(b, NULL, 3, 0, 0), PORTER_E_INVAL);
	porter_batch_free(b);
	porter_batch_free(NULL);
	porter_batch_result_free(NULL);

	/* Only one level: a Batch inside a Batch, and garbage members, are
	 * refused (raw protocol, since the API cannot build them). */
	int fd = th_raw_connect(d.socket);
	frame_reader rd;
	frame_reader_init(&rd, 1 << 20);
	th_raw_hello(fd, &rd, PORTER_PROTOCOL_VERSION, 0);

	Porter__V1__Request inner = PORTER__V1__REQUEST__INIT;
	Porter__V1__Batch inner_batch = PORTER__V1__BATCH__INIT;
	inner.body_case = PORTER__V1__REQUEST__BODY_BATCH;
	inner.batch = &inner_batch;
	uint8_t packed[64];
	size_t plen = porter__v1__request__pack(&inner, packed);
	uint8_t junk[] = {0x0f, 0xff, 0xff};
	const struct {
		ProtobufCBinaryData member;
		const char *why;
	} cases[] = {
		{{plen, packed}, "cannot be batch members"},
		{{sizeof(junk), junk}, "not a valid request"},
		{{0, NULL}, "no request type"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
		Porter__V1__Batch outer = PORTER__V1__BATCH__INIT;
		ProtobufCBinaryData member = cases[i].member;
		outer.n_members = 1;
		outer.members = &member;
		req.id = 100 + i;
		req.body_case = PORTER__V1__REQUEST__BODY_BATCH;
		req.batch = &outer;
		th_raw_send(fd, &req);
		Porter__V1__Response *resp = th_raw_recv(fd, &rd, 5000);
		ck_assert_ptr_nonnull(resp);
		ck_assert_uint_eq(resp->id, 100 + i);
		ck_assert_int_eq(resp->status, PORTER_E_INVAL);
		ck_assert_msg(strstr(resp->message, cases[i].why), "%s", resp->message);
		porter__v1__response__free_unpacked(resp, NULL);
	}
	close(fd);
	frame_reader_free(&rd);
	th_stop_clean(&d);
}
END_TEST

typedef struct runner {
	pthread_t th;
	porter_batch *b;
	_Atomic uint64_t id;
	atomic_int started;
	int rc;
} runner;

static void *runner_main(void *arg)
{
	runner *ru = arg;
	porter_batch_result *r = NULL;
	ck_assert_int_eq(porter_ping("warm", 4, 0, 2000), 0);
	atomic_store(&ru->id, porter_call_id_new());
	atomic_store(&ru->started, 1);
	ru->rc = porter_batch_run(ru->b, atomic_load(&ru->id), 20000, &r);
	porter_batch_result_free(r);
	porter_thread_disconnect();
	return NULL;
}

START_TEST(cancel_a_whole_batch)
{
	th_start(&d, NULL);
	runner ru = {0};
	ru.b = porter_batch_new(PORTER_BATCH_ALL);
	porter_batch_add_ping(ru.b, "a", 1, 10000, 0);
	porter_batch_add_ping(ru.b, "b", 1, 10000, 0);
	ck_assert_int_eq(pthread_create(&ru.th, NULL, runner_main, &ru), 0);
	while (!atomic_load(&ru.started))
		usleep(1000);
	usleep(200000);
	ck_assert_uint_eq(th_total_inflight(), 4); /* batch, two members, stats */
	long long t0 = th_now_ms();
	ck_assert_int_eq(porter_cancel(atomic_load(&ru.id), 2000), 0);
	pthread_join(ru.th, NULL);
	ck_assert_int_eq(ru.rc, PORTER_E_CANCELLED);
	ck_assert_int_lt(th_now_ms() - t0, 2000);
	porter_batch_free(ru.b);
	th_expect_idle();
	th_stop_clean(&d);
}
END_TEST

START_TEST(client_killed_mid_batch)
{
	th_start(&d, NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		porter_batch *b = porter_batch_new(PORTER_BATCH_ALL);
		for (int i = 0; i < 8; i++)
			porter_batch_add_ping(b, "x", 1, 20000, 0);
		porter_batch_result *r = NULL;
		porter_batch_run(b, 0, 30000, &r);
		_exit(0);
	}
	long long until = th_now_ms() + 3000;
	while (th_total_inflight() < 10 && th_now_ms() < until)
		usleep(10000);
	ck_assert_uint_eq(th_total_inflight(), 10); /* batch, 8 members, stats */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	th_expect_idle();
	th_stop_clean(&d);
}
END_TEST

#define BATCH_THREADS 16
#define BATCHES_PER_THREAD 63 /* 1008 batches in all */

static void *many_main(void *arg)
{
	atomic_int *failures = arg;
	for (int i = 0; i < BATCHES_PER_THREAD; i++) {
		porter_batch *b = porter_batch_new(i % 2 ? PORTER_BATCH_FIRST : PORTER_BATCH_ALL);
		char p0[32], p1[32];
		int n0 = snprintf(p0, sizeof(p0), "%p-%d-a", (void *)&i, i);
		int n1 = snprintf(p1, sizeof(p1), "%p-%d-b", (void *)&i, i);
		porter_batch_add_ping(b, p0, (size_t)n0, (uint32_t)(i % 3), 0);
		porter_batch_add_ping(b, p1, (size_t)n1, 5, 0);
		porter_batch_result *r = NULL;
		int ok = porter_batch_run(b, 0, 10000, &r) == 0;
		if (ok) {
			const void *data;
			size_t len;
			int w = i % 2 ? porter_batch_result_winner(r) : 0;
			ok = w >= 0 && porter_batch_result_ping(r, (size_t)w, &data, &len) == 0 &&
			     len == (size_t)(w ? n1 : n0) && memcmp(data, w ? p1 : p0, len) == 0;
			if (i % 2 == 0)
				ok = ok && porter_batch_result_ping(r, 1, &data, &len) == 0 &&
				     len == (size_t)n1 && memcmp(data, p1, len) == 0;
		}
		if (!ok)
			atomic_fetch_add(failures, 1);
		porter_batch_result_free(r);
		porter_batch_free(b);
	}
	porter_thread_disconnect();
	return NULL;
}

START_TEST(a_thousand_concurrent_batches)
{
	th_start(&d, NULL);
	pthread_t th[BATCH_THREADS];
	atomic_int failures = 0;
	for (int i = 0; i < BATCH_THREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, many_main, &failures), 0);
	for (int i = 0; i < BATCH_THREADS; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&failures), 0);
	th_expect_idle();
	th_stop_clean(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {join_returns_all_in_order_concurrently,
				select_returns_the_fastest_and_stops_the_rest,
				deadlines_per_member_and_overall,
				invalid_batches_are_refused,
				cancel_a_whole_batch,
				client_killed_mid_batch,
				a_thousand_concurrent_batches,
				NULL};
	return th_suite("batch", "core", 60, tests);
}

TH_MAIN(suite)
