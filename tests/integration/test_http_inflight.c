/*
 * Integration tests of HTTP through porterd: a real porterd, libporter and
 * porterctl, against a real HTTP server on loopback
 * (tests/support/http_server.py) with fault routes; the fixture is
 * http_fixture.c.
 *
 * This suite: transfers in flight. A server that never answers, a cancel
 * from another thread, batches, a reset mid-body, many threads at once,
 * shutdown with transfers open, large bodies several at once and how
 * porterd reads them.
 * The suites of this family: test_http (requests and responses),
 * test_http_stream (streamed bodies), test_http_inflight (transfers in
 * flight).
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "http_fixture.h"
#include "porter.h"
#include "porter.pb-c.h"

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

/* This uid's buffered bytes in porterd (unsent replies, read buffers). */
static uint64_t buffered(void)
{
	porter_stats_snapshot *s = NULL;
	uint64_t n = 0;
	ck_assert_int_eq(porter_stats(0, 5000, &s), 0);
	for (size_t i = 0; i < porter_stats_uids(s); i++) {
		porter_uid_usage u = PORTER_UID_USAGE_INIT;
		if (porter_stats_uid(s, i, &u) == 0 && u.uid == getuid())
			n += u.buffered_bytes;
	}
	porter_stats_free(s);
	return n;
}

/* Waits up to 10 s for buffered() to be at least `min` (or, with `below`,
 * under it). True then. */
static int buffered_reaches(uint64_t min, int below)
{
	long long until = th_now_ms() + 10000;
	while (th_now_ms() < until) {
		uint64_t b = buffered();
		if (below ? b < min : b >= min)
			return 1;
		usleep(20000);
	}
	return 0;
}

/* Sends HttpRequest `id` (GET `path`, streamed in chunks of `chunk` when
 * not 0) on raw connection `fd`. */
static void raw_get(int fd, uint64_t id, const char *path, uint32_t chunk)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__HttpRequest hr = PORTER__V1__HTTP_REQUEST__INIT;
	hr.method = "GET";
	hr.url = (char *)url(path);
	hr.stream = chunk != 0;
	hr.chunk_size = chunk;
	req.id = id;
	req.timeout_ms = 20000;
	req.body_case = PORTER__V1__REQUEST__BODY_HTTP;
	req.http = &hr;
	th_raw_send(fd, &req);
}

/*
 * A client that goes away while porterd sends it a large body: the body
 * goes out from the buffer libcurl's data was written to (a whole
 * response's, a stream's chunk), queued behind a socket the client does
 * not read, and must be freed once, when the write is cancelled by the
 * close, not before (AddressSanitizer builds catch either). Each way: gone
 * before the body arrived (the transfer is abandoned), with the reply
 * queued whole, after reading part of it, and a stream with a pulled
 * chunk queued. porterd then holds nothing for the uid and serves on.
 */
START_TEST(client_gone_while_a_large_body_is_sent)
{
	start(NULL);
	/* What this test's own connection holds (its read buffer). */
	uint64_t idle = buffered();
	for (int way = 0; way < 4; way++) {
		int fd = th_raw_connect(d.socket);
		frame_reader rd;
		frame_reader_init(&rd, 64u << 20);
		th_raw_hello(fd, &rd, PORTER_PROTOCOL_VERSION, 0);
		if (way < 3) {
			raw_get(fd, 7, "/bin/8000000", 0);
		} else {
			/* The head comes with the first chunk; the pull's
			 * chunk is left unread. */
			raw_get(fd, 7, "/bin/8000000", 1u << 20);
			Porter__V1__Response *head = th_raw_recv(fd, &rd, 10000);
			ck_assert_ptr_nonnull(head);
			ck_assert_int_eq(head->status, 0);
			ck_assert_int_eq(head->body_case, PORTER__V1__RESPONSE__BODY_HTTP);
			Porter__V1__Request fetch = PORTER__V1__REQUEST__INIT;
			Porter__V1__HttpFetch f = PORTER__V1__HTTP_FETCH__INIT;
			f.stream_id = head->http->stream_id;
			fetch.id = 8;
			fetch.timeout_ms = 20000;
			fetch.body_case = PORTER__V1__REQUEST__BODY_HTTP_FETCH;
			fetch.http_fetch = &f;
			porter__v1__response__free_unpacked(head, NULL);
			th_raw_send(fd, &fetch);
		}
		if (way >= 1)
			ck_assert_msg(buffered_reaches(512 * 1024, 0),
				      "way %d: no reply queued for the client", way);
		if (way == 2) {
			/* Part of the frame read: the write in progress is the
			 * one cancelled. */
			static uint8_t part[300000];
			size_t got = 0;
			while (got < sizeof(part)) {
				ssize_t n = read(fd, part + got, sizeof(part) - got);
				ck_assert_int_gt(n, 0);
				got += (size_t)n;
			}
		}
		close(fd);
		frame_reader_free(&rd);
		ck_assert_msg(buffered_reaches(idle + 1, 1),
			      "way %d: porterd still holds %llu bytes (%llu before)", way,
			      (unsigned long long)buffered(), (unsigned long long)idle);
		ck_assert(settles());
	}
	porter_http_response *r = NULL;
	ck_assert_int_eq(porter_http_get(url("/bin/3000000"), 0, 10000, &r), 0);
	size_t len;
	const void *got = porter_http_response_body(r, &len);
	ck_assert_uint_eq(len, 3000000);
	ck_assert(check_pattern(got, len, 0));
	porter_http_response_free(r);
	th_stop_clean(&d);
}
END_TEST

/* Minor page faults of `pid` so far (/proc/PID/stat, field 10). */
static long long minor_faults(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* After the command's ")" come state, ppid, pgrp, session, tty,
	 * tpgid, flags, then minflt. */
	const char *p = strrchr(buf, ')');
	long long v = -1;
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %lld", &v), 1);
	return v;
}

#define LARGE_BODY 8000000
#define LARGE_THREADS 4

static void *large_get_main(void *arg)
{
	int *ok = arg;
	porter_http_response *r = NULL;
	size_t len = 0;
	*ok = porter_http_get(url("/bin/8000000"), 0, 30000, &r) == 0 &&
	      porter_http_response_status(r) == 200;
	const void *body = *ok ? porter_http_response_body(r, &len) : NULL;
	*ok = *ok && len == LARGE_BODY && check_pattern(body, len, 0);
	porter_http_response_free(r);
	porter_thread_disconnect();
	return NULL;
}

/* LARGE_THREADS GETs of LARGE_BODY bytes at once; asserts each body. */
static void large_round(void)
{
	pthread_t th[LARGE_THREADS];
	int ok[LARGE_THREADS];
	for (int i = 0; i < LARGE_THREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, large_get_main, &ok[i]), 0);
	for (int i = 0; i < LARGE_THREADS; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(ok[i], "a GET of %d bytes failed", LARGE_BODY);
	}
}

/*
 * Large bodies at several at once reuse the pages of the ones before
 * (daemon/httpbuf.c): a body collected into fresh memory faults in each of
 * its pages (1,954 for 8 MB), which cost porterd more CPU than the rest of
 * the GET. A count of porterd's page faults, not a timing: at most one
 * fresh buffer per GET in flight at once is allowed for (a round may run
 * its GETs one after another, the next more at once). And the memory
 * comes back after the burst.
 */
START_TEST(large_bodies_reuse_pages_and_memory_comes_back)
{
	start(NULL);
	porter_http_response *r = NULL;
	ck_assert_int_eq(porter_http_get(url("/bin/1000"), 0, 10000, &r), 0);
	porter_http_response_free(r);
	long rss0 = th_rss_kib(d.pid);
	large_round();
	const long long rounds = 6, pages = LARGE_BODY / 4096;
	long long f0 = minor_faults(d.pid);
	for (int i = 0; i < rounds; i++)
		large_round();
	long long faults = minor_faults(d.pid) - f0;
	long long per_get = (faults - LARGE_THREADS * pages) / (rounds * LARGE_THREADS);
	long peak = th_rss_kib(d.pid);
	fprintf(stderr,
		"large bodies: %lld page faults in %lld GETs of %d bytes (%lld per GET beyond "
		"%d fresh buffers), RSS %ld -> %ld KiB\n",
		faults, rounds * LARGE_THREADS, LARGE_BODY, per_get, LARGE_THREADS, rss0, peak);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	/* Not under AddressSanitizer: its allocator faults in some 1,800
	 * pages per GET of its own (seen with its quarantine off too), and
	 * its quarantine keeps freed blocks mapped. Nor under
	 * ThreadSanitizer: its shadow memory faults in pages of its own for
	 * the bodies' copies (502 per GET seen) and holds RSS. */
	ck_assert_msg(per_get < pages / 5,
		      "porterd faulted in %lld pages per GET of %d bytes: its body buffers are "
		      "not reused",
		      per_get, LARGE_BODY);
	/* Back within a few seconds (the buffers are kept one). */
	long long until = th_now_ms() + 10000;
	long rss = peak;
	while (th_now_ms() < until && (rss = th_rss_kib(d.pid)) > rss0 + 8 * 1024)
		usleep(100000);
	ck_assert_msg(rss <= rss0 + 8 * 1024, "porterd's RSS %ld KiB 10 s after, %ld KiB before",
		      rss, rss0);
#endif
	th_stop_clean(&d);
}
END_TEST

/* The calls of system call `name` in strace -c's summary `path` ("% time,
 * seconds, usecs/call, calls, [errors,] syscall" rows); -1 when absent. */
static long long strace_calls(const char *path, const char *name)
{
	char line[256], last[64];
	long long calls = -1;
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "no strace summary at %s", path);
	while (fgets(line, sizeof(line), f)) {
		double pct, secs;
		long long per, n;
		char *sp = strrchr(line, ' ');
		if (!sp || sscanf(sp + 1, "%63s", last) != 1 || strcmp(last, name))
			continue;
		if (sscanf(line, "%lf %lf %lld %lld", &pct, &secs, &per, &n) == 4)
			calls = n;
	}
	fclose(f);
	return calls;
}

/*
 * A whole response is read from the server in large pieces
 * (HTTPSETUP_RECV_BUFFER): at libcurl's default of 16 KiB every 16 KiB of
 * a body cost porterd a recv() and a poll(), some 1,000 system calls per
 * GET of 8 MB. A count, not a timing: porterd's recvfrom calls under
 * strace (libcurl's reads of the server; porterd reads its clients with
 * read), which at 16 KiB are at least LARGE_BODY / 16384 per GET.
 */
START_TEST(a_large_body_is_read_in_large_pieces)
{
	start(NULL);
	porter_http_response *r = NULL;
	ck_assert_int_eq(porter_http_get(url("/bin/1000"), 0, 10000, &r), 0);
	porter_http_response_free(r);
	char out[192], tool[320];
	snprintf(out, sizeof(out), "%s/strace.out", d.dir);
	snprintf(tool, sizeof(tool), "strace -f -c -e trace=recvfrom -o %s -p", out);
	pid_t st = th_attach(tool, d.pid);
	ck_assert_msg(st > 0, "strace (a test dependency) did not attach to porterd");
	const long long gets = 3;
	for (long long i = 0; i < gets; i++) {
		size_t len = 0;
		ck_assert_int_eq(porter_http_get(url("/bin/8000000"), 0, 30000, &r), 0);
		const void *body = porter_http_response_body(r, &len);
		ck_assert_int_eq(len, LARGE_BODY);
		ck_assert(check_pattern(body, len, 0));
		porter_http_response_free(r);
	}
	/* strace detaches and writes its summary on SIGINT; porterd must not
	 * exit traced (LeakSanitizer's check at exit fails under ptrace). */
	ck_assert_int_eq(kill(st, SIGINT), 0);
	ck_assert_int_eq(waitpid(st, NULL, 0), st);
	long long n = strace_calls(out, "recvfrom");
	fprintf(stderr, "large bodies: %lld recvfrom in %lld GETs of %d bytes\n", n, gets,
		LARGE_BODY);
	th_stop_clean(&d);
	ck_assert_msg(n > 0, "no recvfrom counted: is strace's summary read right?");
	ck_assert_msg(n < gets * (LARGE_BODY / 16384) / 2,
		      "porterd read %lld GETs of %d bytes in %lld recv calls: libcurl reads "
		      "them 16 KiB at a time",
		      gets, LARGE_BODY, n);
}
END_TEST

/* Minor page faults of the calling thread so far. */
static long long thread_faults(void)
{
	struct rusage ru;
	ck_assert_int_eq(getrusage(RUSAGE_THREAD, &ru), 0);
	return ru.ru_minflt;
}

/*
 * A large body is handed over where libporter read it: the reply's frame
 * buffer becomes the result's (frame_reader_lend), not copied into a
 * second buffer of the body's size. A count, not a timing: the calling
 * thread's page faults per GET. With malloc's mmap threshold fixed at
 * 1 MiB every buffer of megabytes is fresh memory, so each one the call
 * fills costs a fault per page: one buffer is about LARGE_BODY / 4096
 * faults per GET, a copy into a second one twice that.
 */
START_TEST(a_large_body_is_not_copied_by_the_client)
{
	start(NULL);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	/* Fixed, so that glibc does not raise it to the size of the buffers
	 * freed (it would then reuse heap pages, and the count would say
	 * nothing about how many buffers a GET filled). The sanitizers'
	 * allocators ignore it. */
	ck_assert_int_eq(mallopt(M_MMAP_THRESHOLD, 1 << 20), 1);
#endif
	porter_http_response *r = NULL;
	ck_assert_int_eq(porter_http_get(url("/bin/1000"), 0, 10000, &r), 0);
	porter_http_response_free(r);
	const long long gets = 4, pages = LARGE_BODY / 4096;
	long long faults = 0;
	for (long long i = 0; i < gets; i++) {
		size_t len = 0;
		long long f0 = thread_faults();
		ck_assert_int_eq(porter_http_get(url("/bin/8000000"), 0, 30000, &r), 0);
		faults += thread_faults() - f0;
		const void *body = porter_http_response_body(r, &len);
		ck_assert_int_eq(len, LARGE_BODY);
		ck_assert(check_pattern(body, len, 0));
		porter_http_response_free(r);
	}
	th_stop_clean(&d);
	fprintf(stderr,
		"large bodies: the client faulted %lld pages per GET of %d bytes (%lld pages)\n",
		faults / gets, LARGE_BODY, pages);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	/* Not under the sanitizers: their allocators ignore mallopt and keep
	 * freed memory (ASan's quarantine), and TSan's shadow pages fault in
	 * with the body's. */
	ck_assert_msg(faults / gets < pages + pages / 2,
		      "the client faulted %lld pages per GET of %d bytes: the body was copied "
		      "out of the buffer it was read into",
		      faults / gets, LARGE_BODY);
#endif
}
END_TEST

typedef struct upload_arg {
	pthread_t th;
	_Atomic uint64_t id;
	const char *url;
	const uint8_t *body;
	size_t len;
	int rc;
	char err[256]; /* the request's error message */
} upload_arg;

static void *upload_caller(void *arg)
{
	upload_arg *a = arg;
	porter_http_response *r = NULL;
	uint64_t id = porter_call_id_new();
	a->rc = 1;
	a->id = id;
	a->rc = porter_http_request("POST", a->url, NULL, 0, a->body, a->len, NULL, id, 20000, &r);
	snprintf(a->err, sizeof(a->err), "%s", porter_last_error_message());
	porter_http_response_free(r);
	porter_thread_disconnect();
	return NULL;
}

/* HTTP transfers porterd has now. */
static uint64_t http_transfers(void)
{
	porter_stats_snapshot *s = NULL;
	ck_assert_int_eq(porter_stats(0, 5000, &s), 0);
	uint64_t n = porter_stats_http_transfers(s);
	porter_stats_free(s);
	return n;
}

/* A loopback TCP socket listening on a port of the kernel's choice, which
 * goes to `*port`. */
static int listen_loopback(int *port)
{
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(ls, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sa);
	ck_assert_int_eq(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(ls, 16), 0);
	ck_assert_int_eq(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return ls;
}

/* The whole body of a request, read by libcurl from the request's own
 * message (not a copy), outlives a cancel that comes while it is being
 * sent to a server that does not read it; a large body sent whole reaches
 * the server intact. */
START_TEST(request_body_cancelled_while_sent)
{
	start(NULL);
	const size_t n = 8000000;
	uint8_t *body = malloc(n);
	ck_assert_ptr_nonnull(body);
	for (size_t i = 0; i < n; i++)
		body[i] = (uint8_t)(i % 251);
	/* A server that accepts (the kernel's backlog does) and never reads:
	 * libcurl sends until the socket is full, mid-body. */
	int port;
	int ls = listen_loopback(&port);
	char where[96];
	snprintf(where, sizeof(where), "http://127.0.0.1:%d/sink", port);
	for (int i = 0; i < 3; i++) {
		/* The last round's transfer is gone first. */
		long long gone = th_now_ms() + 10000;
		while (http_transfers() > 0 && th_now_ms() < gone)
			usleep(10000);
		ck_assert_uint_eq(http_transfers(), 0);
		upload_arg a = {.url = where, .body = body, .len = n};
		ck_assert_int_eq(pthread_create(&a.th, NULL, upload_caller, &a), 0);
		/* Cancelled once porterd has its transfer (the 8 MB frame
		 * may take a while to arrive on a busy machine), and libcurl
		 * has had time to fill the socket. */
		long long until = th_now_ms() + 10000;
		while (http_transfers() < 1 && th_now_ms() < until)
			usleep(10000);
		usleep(200000);
		int crc = porter_cancel(a.id, 2000);
		pthread_join(a.th, NULL);
		ck_assert_msg(crc == 0 && a.rc == PORTER_E_CANCELLED,
			      "round %d: cancel %d, the request %d (%s)", i, crc, a.rc, a.err);
		ck_assert(settles());
	}
	close(ls);
	porter_http_response *r = NULL;
	ck_assert_int_eq(
		porter_http_request("POST", url("/digest"), NULL, 0, body, n, NULL, 0, 20000, &r),
		0);
	size_t len;
	const char *got = porter_http_response_body(r, &len);
	char text[256];
	snprintf(text, sizeof(text), "%.*s", (int)len, got);
	ck_assert_msg(strncmp(text, "8000000 ", 8) == 0 && strstr(text, " length pattern"),
		      "server got: %s", text);
	porter_http_response_free(r);
	free(body);
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
				client_gone_while_a_large_body_is_sent,
				request_body_cancelled_while_sent,
				large_bodies_reuse_pages_and_memory_comes_back,
				a_large_body_is_read_in_large_pieces,
				a_large_body_is_not_copied_by_the_client,
				NULL};
	return http_suite("http_inflight", tests);
}

TH_MAIN(suite)
