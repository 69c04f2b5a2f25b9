/*
 * Integration tests of HTTP through porterd: a real porterd, libporter and
 * porterctl, against a real HTTP server on loopback
 * (tests/support/http_server.py) with fault routes.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "httpd.h"
#include "porter.h"

static th_httpd srv;
static th_daemon d;

static void start(const char *const *extra)
{
	ck_assert_msg(th_daemon_start(&d, extra) == 0, "porterd did not start");
}

static const char *url(const char *path)
{
	static __thread char buf[2048];
	int n = snprintf(buf, sizeof(buf), "%s%s", srv.base, path);
	ck_assert(n > 0 && (size_t)n < sizeof(buf));
	return buf;
}

/* The server's body pattern: byte i is i % 251. */
static int check_pattern(const uint8_t *p, size_t n, size_t offset)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (uint8_t)((offset + i) % 251))
			return 0;
	return 1;
}

/* Waits (up to 5 s) until the server holds no /hang connection open,
 * which shows that porterd closed the abandoned transfers. */
static int hangs_closed(void)
{
	long long until = th_now_ms() + 5000;
	while (th_now_ms() < until) {
		porter_http_response *r = NULL;
		if (porter_http_get(url("/hanging"), 0, 2000, &r) == 0) {
			size_t len;
			const char *b = porter_http_response_body(r, &len);
			int zero = len == 1 && b[0] == '0';
			porter_http_response_free(r);
			if (zero)
				return 1;
		}
		usleep(50000);
	}
	return 0;
}

/* Waits (up to 5 s) for the daemon to have nothing in flight but the
 * stats request asking. */
static int settles(void)
{
	long long until = th_now_ms() + 5000;
	while (th_now_ms() < until) {
		if (th_total_inflight() <= 1)
			return 1;
		usleep(20000);
	}
	return 0;
}

START_TEST(status_codes)
{
	static const int codes[] = {200, 201, 204, 301, 404, 418, 500, 503};
	start(NULL);
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		char path[64], want[64];
		porter_http_response *r = NULL;
		snprintf(path, sizeof(path), "/status/%d", codes[i]);
		ck_assert_int_eq(
			porter_http_request("GET", url(path), NULL, 0, NULL, 0, NULL, 0, 5000, &r),
			0);
		ck_assert_int_eq(porter_http_response_status(r), codes[i]);
		size_t len;
		const char *body = porter_http_response_body(r, &len);
		if (codes[i] == 204) {
			ck_assert_uint_eq(len, 0);
		} else {
			snprintf(want, sizeof(want), "status %d", codes[i]);
			ck_assert_uint_eq(len, strlen(want));
			ck_assert(memcmp(body, want, len) == 0);
		}
		ck_assert_str_eq(porter_http_response_effective_url(r), url(path));
		porter_http_timings t;
		porter_http_response_timings(r, &t);
		ck_assert_uint_gt(t.total_us, 0);
		ck_assert_uint_ge(t.total_us, t.first_byte_us);
		ck_assert_uint_ge(t.first_byte_us, t.connect_us);
		porter_http_response_free(r);
	}
	/* HEAD: status and headers, no body. */
	porter_http_response *r = NULL;
	ck_assert_int_eq(
		porter_http_request("HEAD", url("/bin/1000"), NULL, 0, NULL, 0, NULL, 0, 5000, &r),
		0);
	ck_assert_int_eq(porter_http_response_status(r), 200);
	ck_assert_str_eq(porter_http_response_header(r, "content-length"), "1000");
	size_t len;
	porter_http_response_body(r, &len);
	ck_assert_uint_eq(len, 0);
	porter_http_response_free(r);
	th_stop_clean(&d);
}
END_TEST

START_TEST(headers_both_ways)
{
	start(NULL);
	const char *h[] = {"X-Test-Foo: bar baz", "X-Test-Empty:", "X-Test-Colon: a:b"};
	porter_http_response *r = NULL;
	ck_assert_int_eq(porter_http_request("PUT", url("/echo"), h, 3, "x", 1, NULL, 0, 5000, &r),
			 0);
	ck_assert_int_eq(porter_http_response_status(r), 200);
	ck_assert_str_eq(porter_http_response_header(r, "X-Method"), "PUT");
	ck_assert_str_eq(porter_http_response_header(r, "x-got-foo"), "bar baz");
	ck_assert_str_eq(porter_http_response_header(r, "X-GOT-EMPTY"), "");
	ck_assert_str_eq(porter_http_response_header(r, "X-Got-Colon"), "a:b");
	ck_assert_ptr_null(porter_http_response_header(r, "X-Not-There"));
	porter_http_response_free(r);

	ck_assert_int_eq(porter_http_get(url("/headers"), 0, 5000, &r), 0);
	ck_assert_str_eq(porter_http_response_header(r, "x-one"), "1");
	ck_assert_str_eq(porter_http_response_header(r, "Content-Type"), "text/plain");
	int multi = 0;
	const char *first = NULL;
	for (size_t i = 0; i < porter_http_response_header_count(r); i++) {
		const char *n, *v;
		ck_assert_int_eq(porter_http_response_header_at(r, i, &n, &v), 0);
		if (strcmp(n, "X-Multi") == 0) {
			ck_assert_str_eq(v, multi == 0 ? "a" : "b");
			multi++;
		}
		if (!first)
			first = n;
	}
	ck_assert_int_eq(multi, 2);
	ck_assert_int_eq(porter_http_response_header_at(r, 1000, NULL, NULL), PORTER_E_INVAL);
	porter_http_response_free(r);

	/* Malformed headers are refused before anything is sent. */
	const char *bad[] = {"NoColonHere"};
	ck_assert_int_eq(
		porter_http_request("GET", url("/echo"), bad, 1, NULL, 0, NULL, 0, 5000, &r),
		PORTER_E_INVAL);
	const char *inject[] = {"X-Test-A: b\r\nX-Evil: 1"};
	ck_assert_int_eq(
		porter_http_request("GET", url("/echo"), inject, 1, NULL, 0, NULL, 0, 5000, &r),
		PORTER_E_INVAL);
	th_stop_clean(&d);
}
END_TEST

START_TEST(binary_bodies_with_nuls)
{
	start(NULL);
	size_t n = 256 * 64;
	uint8_t *body = malloc(n);
	for (size_t i = 0; i < n; i++)
		body[i] = (uint8_t)(i * 31 + (i >> 8));
	body[0] = 0;
	body[n - 1] = 0;
	porter_http_response *r = NULL;
	ck_assert_int_eq(
		porter_http_request("POST", url("/echo"), NULL, 0, body, n, NULL, 0, 5000, &r), 0);
	size_t len;
	const void *got = porter_http_response_body(r, &len);
	ck_assert_uint_eq(len, n);
	ck_assert(memcmp(got, body, n) == 0);
	ck_assert_str_eq(porter_http_response_header(r, "X-Method"), "POST");
	porter_http_response_free(r);
	free(body);

	ck_assert_int_eq(porter_http_get(url("/bin/100000"), 0, 5000, &r), 0);
	got = porter_http_response_body(r, &len);
	ck_assert_uint_eq(len, 100000);
	ck_assert(check_pattern(got, len, 0));
	porter_http_response_free(r);

	ck_assert_int_eq(porter_http_post_json(url("/echo"), "{\"a\":1}", 7, 0, 5000, &r), 0);
	got = porter_http_response_body(r, &len);
	ck_assert_uint_eq(len, 7);
	ck_assert(memcmp(got, "{\"a\":1}", 7) == 0);
	porter_http_response_free(r);
	th_stop_clean(&d);
}
END_TEST

START_TEST(large_and_chunked_bodies)
{
	start(NULL);
	porter_http_response *r = NULL;
	size_t len;
	const void *got;
	ck_assert_int_eq(porter_http_get(url("/bin/6000000"), 0, 10000, &r), 0);
	got = porter_http_response_body(r, &len);
	ck_assert_uint_eq(len, 6000000);
	ck_assert(check_pattern(got, len, 0));
	porter_http_response_free(r);

	ck_assert_int_eq(porter_http_get(url("/chunked/3000001"), 0, 10000, &r), 0);
	got = porter_http_response_body(r, &len);
	ck_assert_uint_eq(len, 3000001);
	ck_assert(check_pattern(got, len, 0));
	ck_assert_ptr_null(porter_http_response_header(r, "Content-Length"));
	porter_http_response_free(r);
	th_stop_clean(&d);
}
END_TEST

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
	porter_http_timings t;
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

START_TEST(redirects_and_their_limit)
{
	start(NULL);
	porter_http_response *r = NULL;
	porter_http_options follow = {.struct_size = sizeof(porter_http_options),
				      .follow_redirects = 1};
	ck_assert_int_eq(porter_http_request("GET", url("/redirect/3"), NULL, 0, NULL, 0, &follow,
					     0, 5000, &r),
			 0);
	ck_assert_int_eq(porter_http_response_status(r), 200);
	ck_assert_uint_eq(porter_http_response_redirects(r), 3);
	ck_assert_str_eq(porter_http_response_effective_url(r), url("/redirect/0"));
	size_t len;
	const char *b = porter_http_response_body(r, &len);
	ck_assert_uint_eq(len, 4);
	ck_assert(memcmp(b, "done", 4) == 0);
	porter_http_response_free(r);

	/* Not followed unless asked. */
	ck_assert_int_eq(
		porter_http_request("GET", url("/redirect/3"), NULL, 0, NULL, 0, NULL, 0, 5000, &r),
		0);
	ck_assert_int_eq(porter_http_response_status(r), 302);
	ck_assert_str_eq(porter_http_response_header(r, "Location"), "/redirect/2");
	porter_http_response_free(r);

	/* The caller's limit. */
	porter_http_options two = {.struct_size = sizeof(porter_http_options),
				   .follow_redirects = 1,
				   .max_redirects = 2};
	ck_assert_int_eq(
		porter_http_request("GET", url("/redirect/3"), NULL, 0, NULL, 0, &two, 0, 5000, &r),
		PORTER_E_HTTP_REDIRECTS);
	ck_assert_int_eq(porter_http_last_status(), 302);
	ck_assert_int_eq(
		porter_http_request("GET", url("/redirect/2"), NULL, 0, NULL, 0, &two, 0, 5000, &r),
		0);
	porter_http_response_free(r);

	/* The daemon's limit (default 10) caps any request. */
	porter_http_options many = {.struct_size = sizeof(porter_http_options),
				    .follow_redirects = 1,
				    .max_redirects = 50};
	ck_assert_int_eq(porter_http_request("GET", url("/redirect/11"), NULL, 0, NULL, 0, &many, 0,
					     5000, &r),
			 PORTER_E_HTTP_REDIRECTS);
	ck_assert_int_eq(porter_http_request("GET", url("/redirect/10"), NULL, 0, NULL, 0, &many, 0,
					     5000, &r),
			 0);
	porter_http_response_free(r);

	/* Credentials follow a redirect on the same origin only. */
	const char *cred[] = {"Authorization: Bearer secret", "Cookie: a=b", "X-Test-Keep: yes"};
	char path[1024], target[512];
	snprintf(target, sizeof(target), "%s", url("/echo"));
	snprintf(path, sizeof(path), "/redirect-to?url=%s", target);
	ck_assert_int_eq(
		porter_http_request("GET", url(path), cred, 3, NULL, 0, &follow, 0, 5000, &r), 0);
	ck_assert_str_eq(porter_http_response_header(r, "X-Got-Authorization"), "Bearer secret");
	ck_assert_str_eq(porter_http_response_header(r, "X-Got-Cookie"), "a=b");
	porter_http_response_free(r);
	snprintf(path, sizeof(path), "/redirect-to?url=http://localhost:%d/echo", srv.port);
	ck_assert_int_eq(
		porter_http_request("GET", url(path), cred, 3, NULL, 0, &follow, 0, 5000, &r), 0);
	ck_assert_int_eq(porter_http_response_status(r), 200);
	ck_assert_ptr_null(porter_http_response_header(r, "X-Got-Authorization"));
	ck_assert_ptr_null(porter_http_response_header(r, "X-Got-Cookie"));
	ck_assert_str_eq(porter_http_response_header(r, "X-Got-Keep"), "yes");
	porter_http_response_free(r);

	/* 303 turns a POST into a GET without a body. */
	ck_assert_int_eq(porter_http_request("POST", url("/see-other"), NULL, 0, "data", 4, &follow,
					     0, 5000, &r),
			 0);
	ck_assert_str_eq(porter_http_response_header(r, "X-Method"), "GET");
	porter_http_response_body(r, &len);
	ck_assert_uint_eq(len, 0);
	porter_http_response_free(r);
	th_stop_clean(&d);
}
END_TEST

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

START_TEST(refused_schemes_and_hosts)
{
	static const char *const schemes[] = {"file:///etc/passwd", "ftp://127.0.0.1/x",
					      "gopher://127.0.0.1/x", "dict://127.0.0.1/x",
					      "FILE:///etc/passwd"};
	static const char *const extra[] = {"--http-allow-hosts", "127.0.0.1, *.example.test",
					    NULL};
	start(extra);
	porter_http_response *r = NULL;
	porter_http_options follow = {.struct_size = sizeof(porter_http_options),
				      .follow_redirects = 1};
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		ck_assert_int_eq(porter_http_request("GET", schemes[i], NULL, 0, NULL, 0, &follow,
						     0, 5000, &r),
				 PORTER_E_HTTP_SCHEME);
		char path[256];
		snprintf(path, sizeof(path), "/redirect-to?url=%s", schemes[i]);
		ck_assert_int_eq(porter_http_request("GET", url(path), NULL, 0, NULL, 0, &follow, 0,
						     5000, &r),
				 PORTER_E_HTTP_SCHEME);
		ck_assert_int_eq(porter_http_last_status(), 302);
	}
	ck_assert_int_eq(
		porter_http_request("GET", "not a url", NULL, 0, NULL, 0, NULL, 0, 5000, &r),
		PORTER_E_INVAL);
	ck_assert_int_eq(porter_http_request("GET", "http://", NULL, 0, NULL, 0, NULL, 0, 5000, &r),
			 PORTER_E_INVAL);

	/* The host allow-list, for the first request and for redirects. */
	char local[128];
	snprintf(local, sizeof(local), "http://localhost:%d/status/200", srv.port);
	ck_assert_int_eq(porter_http_get(local, 0, 5000, &r), PORTER_E_HTTP_HOST);
	char path[256];
	snprintf(path, sizeof(path), "/redirect-to?url=%s", local);
	ck_assert_int_eq(porter_http_get(url(path), 0, 5000, &r), PORTER_E_HTTP_HOST);
	ck_assert_int_eq(porter_http_get(url("/status/200"), 0, 5000, &r), 0);
	porter_http_response_free(r);
	th_stop_clean(&d);

	/* Without a list, a host name is resolved (off the loop) and works;
	 * schemes and malformed URLs are refused the same way. */
	start(NULL);
	ck_assert_int_eq(porter_http_get("http://", 0, 5000, &r), PORTER_E_INVAL);
	ck_assert_int_eq(porter_http_get(" file:///etc/passwd", 0, 5000, &r), PORTER_E_INVAL);
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		char p2[256];
		snprintf(p2, sizeof(p2), "/redirect-to?url=%s", schemes[i]);
		ck_assert_int_eq(porter_http_request("GET", schemes[i], NULL, 0, NULL, 0, &follow,
						     0, 5000, &r),
				 PORTER_E_HTTP_SCHEME);
		ck_assert_int_eq(
			porter_http_request("GET", url(p2), NULL, 0, NULL, 0, &follow, 0, 5000, &r),
			PORTER_E_HTTP_SCHEME);
	}
	ck_assert_int_eq(porter_http_get(local, 0, 5000, &r), 0);
	ck_assert_int_eq(porter_http_response_status(r), 200);
	porter_http_response_free(r);
	th_stop_clean(&d);
}
END_TEST

START_TEST(oversized_responses)
{
	static const char *const extra[] = {"--http-max-response", "1000000", NULL};
	start(extra);
	porter_http_response *r = NULL;
	porter_http_options small = {.struct_size = sizeof(porter_http_options),
				     .max_response = 1000};
	ck_assert_int_eq(
		porter_http_request("GET", url("/bin/1000"), NULL, 0, NULL, 0, &small, 0, 5000, &r),
		0);
	porter_http_response_free(r);
	ck_assert_int_eq(
		porter_http_request("GET", url("/bin/1001"), NULL, 0, NULL, 0, &small, 0, 5000, &r),
		PORTER_E_HTTP_TOO_LARGE);
	/* No length announced: enforced while receiving. */
	ck_assert_int_eq(porter_http_request("GET", url("/chunked/5000"), NULL, 0, NULL, 0, &small,
					     0, 5000, &r),
			 PORTER_E_HTTP_TOO_LARGE);
	ck_assert_int_eq(porter_http_get(url("/nolength/2000000"), 0, 5000, &r),
			 PORTER_E_HTTP_TOO_LARGE);
	ck_assert_int_eq(porter_http_get(url("/bin/1000001"), 0, 5000, &r),
			 PORTER_E_HTTP_TOO_LARGE);
	ck_assert_int_eq(porter_http_get(url("/bin/1000000"), 0, 5000, &r), 0);
	porter_http_response_free(r);
	/* Streams honour a limit when given one. */
	porter_http_stream *s = NULL;
	porter_http_options lim = {.struct_size = sizeof(porter_http_options),
				   .max_response = 100000,
				   .chunk_size = 16384};
	ck_assert_int_eq(porter_http_stream_open("GET", url("/chunked/300000"), NULL, 0, NULL, 0,
						 &lim, 0, 5000, &s),
			 0);
	const void *p;
	size_t n, total = 0;
	int rc;
	while ((rc = porter_http_stream_read(s, 0, 5000, &p, &n)) == 1)
		total += n;
	ck_assert_int_eq(rc, PORTER_E_HTTP_TOO_LARGE);
	ck_assert_uint_le(total, 100000);
	porter_http_stream_close(s, 1000);
	ck_assert(settles());
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

static int run_ctl(const char *args, char *out, size_t cap)
{
	char cmd[1024];
	int n = snprintf(cmd, sizeof(cmd), "%s %s", PORTERCTL_PATH, args);
	ck_assert(n > 0 && (size_t)n < sizeof(cmd));
	return th_run_cmd(cmd, out, cap);
}

/* TLS: verified by default against the system's CAs (which do not know
 * the test server), accepted with its certificate as the CA file. */
START_TEST(tls_verification)
{
	th_httpd tls;
	ck_assert_int_eq(th_httpd_start_tls(&tls), 0);
	char u[128];
	snprintf(u, sizeof(u), "%s/status/200", tls.base);
	porter_http_response *r = NULL;

	start(NULL);
	ck_assert_int_eq(porter_http_get(u, 0, 5000, &r), PORTER_E_HTTP_TLS);
	th_stop_clean(&d);

	char ca[160];
	snprintf(ca, sizeof(ca), "--http-ca-file=%s", tls.cert);
	const char *const with_ca[] = {ca, NULL};
	start(with_ca);
	ck_assert_int_eq(porter_http_get(u, 0, 5000, &r), 0);
	ck_assert_int_eq(porter_http_response_status(r), 200);
	porter_http_timings t;
	porter_http_response_timings(r, &t);
	ck_assert_uint_gt(t.tls_us, 0);
	ck_assert_uint_ge(t.tls_us, t.connect_us);
	porter_http_response_free(r);
	/* The certificate names 127.0.0.1, not localhost. */
	char lu[128];
	snprintf(lu, sizeof(lu), "https://localhost:%d/status/200", tls.port);
	ck_assert_int_eq(porter_http_get(lu, 0, 5000, &r), PORTER_E_HTTP_TLS);
	th_stop_clean(&d);

	const char *const insecure[] = {"--http-tls-verify=false", NULL};
	start(insecure);
	ck_assert_int_eq(porter_http_get(lu, 0, 5000, &r), 0);
	porter_http_response_free(r);
	th_stop_clean(&d);
	th_httpd_stop(&tls);
}
END_TEST

START_TEST(porterctl_http)
{
	char args[1024], out[8192], path[256];
	start(NULL);
	snprintf(args, sizeof(args), "http get -i %s", url("/headers"));
	ck_assert_int_eq(run_ctl(args, out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(out, "HTTP/1.1 200 OK\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "X-Multi: b\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "\r\n\r\nheaders"));

	snprintf(args, sizeof(args), "http post -H 'X-Test-K: v' -d 'hello there' %s",
		 url("/echo"));
	ck_assert_int_eq(run_ctl(args, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "hello there");

	snprintf(args, sizeof(args), "http request DELETE -i %s", url("/echo"));
	ck_assert_int_eq(run_ctl(args, out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(out, "X-Method: DELETE"));

	snprintf(path, sizeof(path), "%s/body.bin", d.dir);
	snprintf(args, sizeof(args), "http get -o %s %s", path, url("/bin/3000000"));
	ck_assert_int_eq(run_ctl(args, out, sizeof(out)), 0);
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	uint8_t *buf = malloc(3000001);
	size_t n = fread(buf, 1, 3000001, f);
	fclose(f);
	unlink(path);
	ck_assert_uint_eq(n, 3000000);
	ck_assert(check_pattern(buf, n, 0));
	free(buf);

	snprintf(args, sizeof(args), "http get -L %s", url("/redirect/2"));
	ck_assert_int_eq(run_ctl(args, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "done");
	/* curl's exit code for -f on an error status. */
	snprintf(args, sizeof(args), "http get -f %s 2>/dev/null", url("/status/404"));
	ck_assert_int_eq(run_ctl(args, out, sizeof(out)), 22);
	ck_assert_int_eq(run_ctl("http get file:///etc/passwd 2>/dev/null", out, sizeof(out)), 1);
	ck_assert_int_eq(run_ctl("http get 2>/dev/null", out, sizeof(out)), 2);
	th_stop_clean(&d);
}
END_TEST

/* In the test process, once around the test case: every test (a forked
 * child) finds the server at srv. */
static void httpd_start(void)
{
	ck_assert_msg(th_httpd_start(&srv) == 0, "could not start the loopback HTTP server");
}

static void httpd_stop(void)
{
	th_httpd_stop(&srv);
}

static Suite *suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("http");
	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, httpd_start, httpd_stop);
	tcase_add_test(tc, status_codes);
	tcase_add_test(tc, headers_both_ways);
	tcase_add_test(tc, binary_bodies_with_nuls);
	tcase_add_test(tc, large_and_chunked_bodies);
	tcase_add_test(tc, streamed_body_is_pulled_in_chunks);
	tcase_add_test(tc, stream_read_from_another_thread);
	tcase_add_test(tc, redirects_and_their_limit);
	tcase_add_test(tc, never_answering_server_times_out_and_aborts);
	tcase_add_test(tc, cancel_from_another_thread);
	tcase_add_test(tc, batched_requests);
	tcase_add_test(tc, connection_reset_mid_body);
	tcase_add_test(tc, refused_schemes_and_hosts);
	tcase_add_test(tc, oversized_responses);
	tcase_add_test(tc, concurrent_requests_from_many_threads);
	tcase_add_test(tc, shutdown_with_transfers_in_flight);
	tcase_add_test(tc, tls_verification);
	tcase_add_test(tc, porterctl_http);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
