/*
 * Integration tests of HTTP through porterd: a real porterd, libporter and
 * porterctl, against a real HTTP server on loopback
 * (tests/support/http_server.py) with fault routes; the fixture is
 * http_fixture.c.
 *
 * This suite: transfers in flight. A server that never answers, a cancel
 * from another thread, batches, a reset mid-body, many threads at once,
 * shutdown with transfers open.
 * The suites of this family: test_http (requests and responses),
 * test_http_stream (streamed bodies), test_http_inflight (transfers in
 * flight).
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
#include "http_fixture.h"
#include "porter.h"

START_TEST(never_answering_server_times_out_and_aborts)
{
	start(NULL);
	porter_http_response *r = NULL;
	long long t0 = th_now_ms();
	ck_assert_int_eq(
		porter_http_request("GET", url("/hang"), NULL, 0, NULL, 0, NULL, 0, 1500, &r),
		PORTER_E_TIMEOUT);
	long long took = th_now_ms() - t0;
	ck_assert_int_ge(took, 1000);
	ck_assert_int_lt(took, 3000);
	/* The daemon answered (the connection is still good), and the
	 * transfer is gone. */
	ck_assert_int_eq(porter_ping("x", 1, 0, 2000), 0);
	ck_assert(settles());
	ck_assert(hangs_closed());

	/* A transfer timeout shorter than the call's. */
	porter_http_options o = {.struct_size = sizeof(porter_http_options),
				 .transfer_timeout_ms = 400};
	t0 = th_now_ms();
	ck_assert_int_eq(
		porter_http_request("GET", url("/hang"), NULL, 0, NULL, 0, &o, 0, 5000, &r),
		PORTER_E_TIMEOUT);
	took = th_now_ms() - t0;
	ck_assert_int_lt(took, 3000);

	/* A stream whose head never comes. */
	porter_http_stream *s = NULL;
	ck_assert_int_eq(
		porter_http_stream_open("GET", url("/hang"), NULL, 0, NULL, 0, NULL, 0, 1200, &s),
		PORTER_E_TIMEOUT);
	ck_assert(settles());
	ck_assert(hangs_closed());

	/* A client that gives up and goes away cancels the transfer. */
	porter_thread_disconnect();
	pid_t pid = fork();
	if (pid == 0) {
		porter_http_request("GET", url("/hang"), NULL, 0, NULL, 0, NULL, 0, 30000, &r);
		_exit(0);
	}
	usleep(300000);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	ck_assert(settles());
	ck_assert(hangs_closed());
	th_stop_clean(&d);
}
END_TEST

typedef struct cancel_arg {
	pthread_t th;
	_Atomic uint64_t id;
	int rc;
	long long took;
} cancel_arg;

static void *hang_caller(void *arg)
{
	cancel_arg *a = arg;
	porter_http_response *r = NULL;
	a->id = porter_call_id_new();
	long long t0 = th_now_ms();
	a->rc = porter_http_request("GET", url("/hang"), NULL, 0, NULL, 0, NULL, a->id, 20000, &r);
	a->took = th_now_ms() - t0;
	porter_http_response_free(r);
	porter_thread_disconnect();
	return NULL;
}

/* porter_cancel from another thread stops an HTTP transfer in flight: the
 * caller gets PORTER_E_CANCELLED at once and the server sees the
 * connection closed. */
START_TEST(cancel_from_another_thread)
{
	start(NULL);
	cancel_arg a = {.id = 0};
	ck_assert_int_eq(pthread_create(&a.th, NULL, hang_caller, &a), 0);
	while (!a.id)
		usleep(1000);
	usleep(300000);
	ck_assert_int_eq(porter_cancel(a.id, 2000), 0);
	pthread_join(a.th, NULL);
	ck_assert_int_eq(a.rc, PORTER_E_CANCELLED);
	ck_assert_int_lt(a.took, 5000);
	ck_assert(settles());
	ck_assert(hangs_closed());
	th_stop_clean(&d);
}
END_TEST

/* HTTP requests as batch members: ALL returns every response; FIRST
 * returns the first and aborts the transfers that lost. */
START_TEST(batched_requests)
{
	start(NULL);
	porter_batch *b = porter_batch_new(PORTER_BATCH_ALL);
	ck_assert_ptr_nonnull(b);
	const char *h[] = {"X-Test-Which: first"};
	ck_assert_int_eq(porter_batch_add_http(b, "POST", url("/echo"), h, 1, "one", 3, NULL, 5000),
			 0);
	ck_assert_int_eq(
		porter_batch_add_http(b, NULL, url("/bin/1000"), NULL, 0, NULL, 0, NULL, 5000), 1);
	ck_assert_int_eq(
		porter_batch_add_http(b, NULL, "gopher://127.0.0.1/", NULL, 0, NULL, 0, NULL, 5000),
		2);
	porter_batch_result *res = NULL;
	ck_assert_int_eq(porter_batch_run(b, 0, 10000, &res), 0);
	ck_assert_int_eq(porter_batch_result_status(res, 0), 0);
	ck_assert_int_eq(porter_batch_result_status(res, 1), 0);
	ck_assert_int_eq(porter_batch_result_status(res, 2), PORTER_E_HTTP_SCHEME);
	porter_http_response *r0 = NULL, *r1 = NULL, *r2 = NULL;
	ck_assert_int_eq(porter_batch_result_http(res, 0, &r0), 0);
	ck_assert_int_eq(porter_batch_result_http(res, 1, &r1), 0);
	ck_assert_int_eq(porter_batch_result_http(res, 2, &r2), PORTER_E_INVAL);
	porter_batch_result_free(res);
	porter_batch_free(b);
	/* The responses outlive the batch result. */
	size_t len;
	const void *body = porter_http_response_body(r0, &len);
	ck_assert_uint_eq(len, 3);
	ck_assert(memcmp(body, "one", 3) == 0);
	ck_assert_str_eq(porter_http_response_header(r0, "X-Got-Which"), "first");
	body = porter_http_response_body(r1, &len);
	ck_assert_uint_eq(len, 1000);
	ck_assert(check_pattern(body, len, 0));
	porter_http_response_free(r0);
	porter_http_response_free(r1);

	b = porter_batch_new(PORTER_BATCH_FIRST);
	ck_assert_int_eq(porter_batch_add_http(b, NULL, url("/hang"), NULL, 0, NULL, 0, NULL, 8000),
			 0);
	ck_assert_int_eq(
		porter_batch_add_http(b, NULL, url("/slow/200"), NULL, 0, NULL, 0, NULL, 8000), 1);
	long long t0 = th_now_ms();
	ck_assert_int_eq(porter_batch_run(b, 0, 10000, &res), 0);
	ck_assert_int_lt(th_now_ms() - t0, 5000);
	ck_assert_int_eq(porter_batch_result_winner(res), 1);
	ck_assert_int_eq(porter_batch_result_status(res, 0), PORTER_E_CANCELLED);
	ck_assert_int_eq(porter_batch_result_http(res, 1, &r1), 0);
	ck_assert_int_eq(porter_http_response_status(r1), 200);
	porter_http_response_free(r1);
	porter_batch_result_free(res);
	porter_batch_free(b);
	ck_assert(settles());
	ck_assert(hangs_closed());
	th_stop_clean(&d);
}
END_TEST

START_TEST(connection_reset_mid_body)
{
	start(NULL);
	porter_http_response *r = NULL;
	ck_assert_int_eq(
		porter_http_request("GET", url("/reset"), NULL, 0, NULL, 0, NULL, 0, 5000, &r),
		PORTER_E_HTTP);
	ck_assert_int_eq(porter_http_last_status(), 200);
	ck_assert_ptr_nonnull(strstr(porter_last_error_message(), "reset"));
	porter_http_stream *s = NULL;
	ck_assert_int_eq(
		porter_http_stream_open("GET", url("/reset"), NULL, 0, NULL, 0, NULL, 0, 5000, &s),
		PORTER_E_HTTP);
	/* The worker is fine afterwards. */
	ck_assert_int_eq(porter_http_get(url("/status/200"), 0, 5000, &r), 0);
	porter_http_response_free(r);
	th_stop_clean(&d);
}
END_TEST

#define N_THREADS 16
#define PER_THREAD 4

typedef struct worker_arg {
	pthread_t th;
	int index;
	int ok;
} worker_arg;

static void *concurrent_main(void *arg)
{
	worker_arg *a = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		char body[64];
		int n = snprintf(body, sizeof(body), "thread %d request %d", a->index, i);
		porter_http_response *r = NULL;
		const char *path = (i % 2) ? "/slow/200" : "/echo";
		if (porter_http_request("POST", url(path), NULL, 0, body, (size_t)n, NULL, 0, 20000,
					&r) != 0)
			continue;
		size_t len;
		const char *b = porter_http_response_body(r, &len);
		if (porter_http_response_status(r) == 200 &&
		    ((i % 2 && len == 4 && !memcmp(b, "slow", 4)) ||
		     (!(i % 2) && len == (size_t)n && !memcmp(b, body, len))))
			a->ok++;
		porter_http_response_free(r);
	}
	porter_thread_disconnect();
	return NULL;
}

START_TEST(concurrent_requests_from_many_threads)
{
	static const char *const extra[] = {"--workers", "2", NULL};
	start(extra);
	worker_arg a[N_THREADS];
	long long t0 = th_now_ms();
	for (int i = 0; i < N_THREADS; i++) {
		a[i].index = i;
		a[i].ok = 0;
		ck_assert_int_eq(pthread_create(&a[i].th, NULL, concurrent_main, &a[i]), 0);
	}
	int ok = 0;
	for (int i = 0; i < N_THREADS; i++) {
		pthread_join(a[i].th, NULL);
		ok += a[i].ok;
	}
	long long took = th_now_ms() - t0;
	ck_assert_int_eq(ok, N_THREADS * PER_THREAD);
	/* 32 slow requests of 200 ms one after another would take 6.4 s; far
	 * less shows they overlapped (a generous bound, not a timing goal). */
	ck_assert_msg(took < 6000, "64 requests took %lld ms: not concurrent", took);
	int fds = th_fd_count(d.pid);
	/* Repeated requests reuse connections: no fd growth. */
	for (int i = 0; i < 50; i++) {
		porter_http_response *r = NULL;
		ck_assert_int_eq(porter_http_get(url("/status/200"), 0, 5000, &r), 0);
		porter_http_response_free(r);
	}
	ck_assert_int_le(th_fd_count(d.pid), fds + 2);
	th_stop_clean(&d);
}
END_TEST

/* Shutdown with transfers and streams open still ends cleanly (every
 * loop closes with uv_loop_close() == 0, exit status 0). */
START_TEST(shutdown_with_transfers_in_flight)
{
	static const char *const extra[] = {"--shutdown-grace", "300", NULL};
	start(extra);
	porter_http_stream *s = NULL;
	porter_http_options o = {.struct_size = sizeof(porter_http_options), .chunk_size = 65536};
	ck_assert_int_eq(porter_http_stream_open("GET", url("/bin/50000000"), NULL, 0, NULL, 0, &o,
						 0, 5000, &s),
			 0);
	porter_thread_disconnect();
	pid_t pid = fork();
	if (pid == 0) {
		porter_http_response *r = NULL;
		porter_http_request("GET", url("/hang"), NULL, 0, NULL, 0, NULL, 0, 20000, &r);
		_exit(0);
	}
	usleep(300000);
	porter_thread_disconnect();
	int st = th_daemon_stop(&d);
	if (st != 0)
		th_daemon_dump_log(&d);
	ck_assert_int_eq(st, 0);
	waitpid(pid, NULL, 0);
	porter_http_stream_close(s, 1000);
	th_daemon_cleanup(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {never_answering_server_times_out_and_aborts,
				cancel_from_another_thread,
				batched_requests,
				connection_reset_mid_body,
				concurrent_requests_from_many_threads,
				shutdown_with_transfers_in_flight,
				NULL};
	return http_suite("http_inflight", tests);
}

TH_MAIN(suite)
