/*
 * Integration tests of HTTP through porterd: a real porterd, libporter and
 * porterctl, against a real HTTP server on loopback
 * (tests/support/http_server.py) with fault routes; the fixture is
 * http_fixture.c.
 *
 * This suite: streamed response bodies, pulled in chunks in bounded memory
 * and read from other threads.
 * The suites of this family: test_http (requests and responses),
 * test_http_stream (streamed bodies), test_http_inflight (transfers in
 * flight).
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "http_fixture.h"
#include "porter.h"

/* Streams a body larger than the daemon would ever hold whole, checking
 * every byte and that the daemon's memory does not grow with it. */
START_TEST(streamed_body_is_pulled_in_chunks)
{
	const size_t total = 256u << 20;
	char path[64];
	snprintf(path, sizeof(path), "/bin/%zu", total);
	/* Under AddressSanitizer freed chunks sit in a quarantine that
	 * would read as growth; keep it small (ignored by other builds). */
	const char *asan = getenv("ASAN_OPTIONS");
	char opts[512];
	snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=4", asan ? asan : "", asan ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
	start(NULL);
	long rss0 = th_rss_kib(d.pid);
	porter_http_options o = {.struct_size = sizeof(porter_http_options),
				 .chunk_size = 256 * 1024};
	porter_http_stream *s = NULL;
	ck_assert_int_eq(
		porter_http_stream_open("GET", url(path), NULL, 0, NULL, 0, &o, 0, 10000, &s), 0);
	const porter_http_response *head = porter_http_stream_response(s);
	ck_assert_int_eq(porter_http_response_status(head), 200);
	size_t head_len = 1;
	porter_http_response_body(head, &head_len);
	ck_assert_uint_eq(head_len, 0);
	ck_assert_str_eq(porter_http_response_header(head, "Content-Type"),
			 "application/octet-stream");
	size_t off = 0, chunks = 0, biggest = 0;
	long rss_max = rss0;
	int rc;
	const void *p;
	size_t n;
	while ((rc = porter_http_stream_read(s, 0, 10000, &p, &n)) == 1) {
		ck_assert_msg(check_pattern(p, n, off), "wrong bytes at offset %zu", off);
		off += n;
		chunks++;
		if (n > biggest)
			biggest = n;
		if (chunks % 64 == 0) {
			long rss = th_rss_kib(d.pid);
			if (rss > rss_max)
				rss_max = rss;
			/* A slow reader: the daemon must pause, not buffer. */
			if (chunks == 128)
				usleep(300000);
		}
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(off, total);
	ck_assert_uint_gt(chunks, 100);
	ck_assert_uint_le(biggest, 256 * 1024 + 65536);
	porter_http_timings t = PORTER_HTTP_TIMINGS_INIT;
	porter_http_response_timings(porter_http_stream_response(s), &t);
	ck_assert_uint_gt(t.total_us, 0);
	porter_http_stream_close(s, 1000);
	ck_assert_msg(rss_max - rss0 < 48 * 1024, "daemon RSS grew by %ld KiB while streaming",
		      rss_max - rss0);

	/* A stream abandoned half way is aborted in the daemon. */
	ck_assert_int_eq(
		porter_http_stream_open("GET", url(path), NULL, 0, NULL, 0, &o, 0, 10000, &s), 0);
	ck_assert_int_eq(porter_http_stream_read(s, 0, 10000, &p, &n), 1);
	ck_assert_int_eq(porter_http_stream_read(s, 0, 10000, &p, &n), 1);
	porter_http_stream_close(s, 1000);
	ck_assert(settles());

	/* Small streamed bodies end in the first reply. */
	ck_assert_int_eq(
		porter_http_stream_open(NULL, url("/bin/10"), NULL, 0, NULL, 0, NULL, 0, 5000, &s),
		0);
	ck_assert_int_eq(porter_http_stream_read(s, 0, 5000, &p, &n), 1);
	ck_assert_uint_eq(n, 10);
	ck_assert(check_pattern(p, n, 0));
	ck_assert_int_eq(porter_http_stream_read(s, 0, 5000, &p, &n), 0);
	ck_assert_int_eq(porter_http_stream_read(s, 0, 5000, &p, &n), 0);
	porter_http_stream_close(s, 1000);
	th_stop_clean(&d);
}
END_TEST

typedef struct reader_arg {
	porter_http_stream *s;
	size_t total;
	int rc;
} reader_arg;

/* One chunk read on a thread (and connection) of its own. */
static void *one_read_main(void *arg)
{
	reader_arg *a = arg;
	const void *p;
	size_t n;
	a->rc = porter_http_stream_read(a->s, 0, 10000, &p, &n);
	if (a->rc == 1 && !check_pattern(p, n, a->total))
		a->rc = -100;
	else if (a->rc == 1)
		a->total += n;
	porter_thread_disconnect();
	return NULL;
}

static _Atomic uint64_t stalled_id;

static void *stalled_read_main(void *arg)
{
	reader_arg *a = arg;
	const void *p;
	size_t n;
	ck_assert_int_eq(porter_ping("hi", 2, 0, 5000), 0); /* its connection first */
	long long t0 = th_now_ms();
	uint64_t id = porter_call_id_new();
	atomic_store(&stalled_id, id);
	a->rc = porter_http_stream_read(a->s, id, 20000, &p, &n);
	a->total = (size_t)(th_now_ms() - t0);
	porter_thread_disconnect();
	return NULL;
}

/* A stream opened on one thread and read on others (an isolate that moved
 * between threads): each read comes from a new thread, so a new
 * connection, which the acceptor puts on another of the four workers than
 * the stream's; the read is forwarded to the stream's worker. */
START_TEST(stream_read_from_another_thread)
{
	static const char *const extra[] = {"--workers", "4", NULL};
	start(extra);
	porter_http_options o = {.struct_size = sizeof(porter_http_options), .chunk_size = 65536};
	reader_arg a = {0};
	ck_assert_int_eq(porter_http_stream_open("GET", url("/chunked/1000000"), NULL, 0, NULL, 0,
						 &o, 0, 5000, &a.s),
			 0);
	int reads = 0;
	do {
		pthread_t th;
		ck_assert_int_eq(pthread_create(&th, NULL, one_read_main, &a), 0);
		pthread_join(th, NULL);
		ck_assert_msg(a.rc >= 0, "read %d: %s", reads, porter_error_name(a.rc));
		reads++;
	} while (a.rc == 1 && reads < 1000);
	ck_assert_int_eq(a.rc, 0);
	ck_assert_uint_eq(a.total, 1000000);
	ck_assert_int_gt(reads, 4);
	porter_http_stream_close(a.s, 1000);

	/* A forwarded read that waits (the server stalls) is cancelled from
	 * yet another thread: the stop reaches the stream's worker. */
	reader_arg b = {0};
	ck_assert_int_eq(porter_http_stream_open("GET", url("/stall/1000"), NULL, 0, NULL, 0, &o, 0,
						 5000, &b.s),
			 0);
	const void *p;
	size_t n;
	ck_assert_int_eq(porter_http_stream_read(b.s, 0, 5000, &p, &n), 1);
	ck_assert_uint_eq(n, 1000);
	atomic_store(&stalled_id, 0);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, stalled_read_main, &b), 0);
	while (!atomic_load(&stalled_id))
		usleep(1000);
	usleep(300 * 1000);
	ck_assert_int_eq(porter_cancel(atomic_load(&stalled_id), 5000), 0);
	pthread_join(th, NULL);
	ck_assert_int_eq(b.rc, PORTER_E_CANCELLED);
	ck_assert_uint_lt(b.total, 5000);
	/* The stream itself lives on; closing it ends the transfer. */
	porter_http_stream_close(b.s, 1000);
	ck_assert(hangs_closed());
	th_stop_clean(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {streamed_body_is_pulled_in_chunks, stream_read_from_another_thread,
				NULL};
	return http_suite("http_stream", tests);
}

TH_MAIN(suite)
