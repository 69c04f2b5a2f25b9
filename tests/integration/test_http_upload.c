/*
 * Integration tests of streamed request bodies (porter_http_upload_*), the
 * heads of every redirect hop and the per-request connect timeout, against
 * a real porterd and the loopback HTTP server (tests/support/http_server.py).
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "httpd.h"
#include "porter.h"

static th_httpd srv;
static th_daemon d;

static const char *url(const char *path)
{
	static __thread char buf[2048];
	int n = snprintf(buf, sizeof(buf), "%s%s", srv.base, path);
	ck_assert(n > 0 && (size_t)n < sizeof(buf));
	return buf;
}

/* The test server's pattern: byte i is i % 251. */
static uint8_t *pattern(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i % 251);
	return p;
}

/* Reads stream `s` to its end into `out` (`cap` bytes, NUL-terminated);
 * returns the body length. */
static size_t read_all(porter_http_stream *s, char *out, size_t cap)
{
	size_t n = 0;
	const void *p;
	size_t len;
	int rc;
	while ((rc = porter_http_stream_read(s, 0, 5000, &p, &len)) == 1) {
		ck_assert_uint_lt(n + len, cap);
		memcpy(out + n, p, len);
		n += len;
	}
	ck_assert_int_eq(rc, 0);
	out[n] = 0;
	return n;
}

/* Uploads `n` bytes of the pattern to /digest in writes of `step` bytes,
 * declaring `n` or -1, and checks what the server received. */
static void upload_pattern(size_t n, size_t step, int declare, const char *framing)
{
	uint8_t *body = pattern(n);
	porter_http_upload *u = NULL;
	static const char *const h[] = {"Content-Type: application/octet-stream"};
	ck_assert_int_eq(porter_http_upload_open("POST", url("/digest"), h, 1,
						 declare ? (int64_t)n : -1, NULL, 0, 5000, &u),
			 0);
	for (size_t off = 0; off < n; off += step) {
		size_t k = n - off < step ? n - off : step;
		ck_assert_int_eq(porter_http_upload_write(u, body + off, k, 0, 10000), 0);
	}
	porter_http_stream *s = NULL;
	ck_assert_int_eq(porter_http_upload_finish(u, 0, 10000, &s), 0);
	porter_http_upload_free(u);
	ck_assert_int_eq(porter_http_response_status(porter_http_stream_response(s)), 200);
	char got[256], want_len[32];
	read_all(s, got, sizeof(got));
	porter_http_stream_close(s, 2000);
	snprintf(want_len, sizeof(want_len), "%zu ", n);
	ck_assert_msg(strncmp(got, want_len, strlen(want_len)) == 0, "server got: %s", got);
	ck_assert_msg(strstr(got, framing) != NULL, "server got: %s", got);
	ck_assert_msg(strstr(got, " pattern") != NULL, "server got other bytes: %s", got);
	free(body);
}

/* A body far over one frame goes through in pieces, byte for byte, with
 * Content-Length when declared and chunked when not; nothing is left in
 * porterd afterwards. */
START_TEST(upload_any_size)
{
	th_start(&d, NULL);
	upload_pattern(0, 1, 1, "length");
	upload_pattern(1000, 7, 1, "length");
	upload_pattern(5u << 20, 300000, 1, "length");
	upload_pattern(3u << 20, (1u << 20) + 17, 0, "chunked");
	/* One write of 20 MiB: libporter cuts it into pieces. */
	upload_pattern(20u << 20, 20u << 20, 0, "chunked");
	th_expect_idle();
	th_stop_clean(&d);
}
END_TEST

/* The writes must add up to the declared size: neither more nor less
 * reaches the server. */
START_TEST(upload_declared_size_is_enforced)
{
	th_start(&d, NULL);
	porter_http_upload *u = NULL;
	porter_http_stream *s = NULL;
	ck_assert_int_eq(
		porter_http_upload_open("PUT", url("/digest"), NULL, 0, 10, NULL, 0, 5000, &u), 0);
	ck_assert_int_eq(porter_http_upload_write(u, "0123456789abc", 13, 0, 5000), PORTER_E_INVAL);
	ck_assert_ptr_nonnull(strstr(porter_last_error_message(), "declared"));
	/* A failed write is final. */
	ck_assert_int_eq(porter_http_upload_write(u, "x", 1, 0, 5000), PORTER_E_INVAL);
	ck_assert_int_eq(porter_http_upload_close(u, 2000), 0);

	ck_assert_int_eq(
		porter_http_upload_open("PUT", url("/digest"), NULL, 0, 10, NULL, 0, 5000, &u), 0);
	ck_assert_int_eq(porter_http_upload_write(u, "01234", 5, 0, 5000), 0);
	ck_assert_int_eq(porter_http_upload_finish(u, 0, 5000, &s), PORTER_E_INVAL);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(strstr(porter_last_error_message(), "ended after 5"));
	/* Closed, not freed: th_expect_idle below must not race the
	 * background abort (upload_abandoned covers free). */
	ck_assert_int_eq(porter_http_upload_close(u, 2000), 0);

	/* Bad arguments. */
	ck_assert_int_eq(
		porter_http_upload_open("PUT", url("/digest"), NULL, 0, -2, NULL, 0, 5000, &u),
		PORTER_E_INVAL);
	ck_assert_ptr_null(u);
	ck_assert_int_eq(
		porter_http_upload_open("HEAD", url("/digest"), NULL, 0, -1, NULL, 0, 5000, &u),
		PORTER_E_INVAL);
	static const char *const cl[] = {"Content-Length: 5"};
	ck_assert_int_eq(
		porter_http_upload_open("PUT", url("/digest"), cl, 1, -1, NULL, 0, 5000, &u),
		PORTER_E_INVAL);
	th_expect_idle();
	th_stop_clean(&d);
}
END_TEST

/* A server that answers before reading the body: the writes stop being
 * wanted (or go on harmlessly), never fail, and the finish returns its
 * answer. */
START_TEST(upload_answered_early)
{
	th_start(&d, NULL);
	uint8_t *body = pattern(1u << 20);
	porter_http_upload *u = NULL;
	ck_assert_int_eq(
		porter_http_upload_open("POST", url("/early/413"), NULL, 0, -1, NULL, 0, 5000, &u),
		0);
	int rc = 0;
	for (int i = 0; i < 16 && rc == 0; i++)
		rc = porter_http_upload_write(u, body, 1u << 20, 0, 10000);
	ck_assert_msg(rc == 0 || rc == 1, "write: %d %s", rc, porter_last_error_message());
	porter_http_stream *s = NULL;
	ck_assert_int_eq(porter_http_upload_finish(u, 0, 10000, &s), 0);
	porter_http_upload_free(u);
	ck_assert_int_eq(porter_http_response_status(porter_http_stream_response(s)), 413);
	char got[64];
	read_all(s, got, sizeof(got));
	ck_assert_str_eq(got, "early");
	porter_http_stream_free(s);
	free(body);
	th_expect_idle();
	th_stop_clean(&d);
}
END_TEST

/* 303 follows with a GET and no body; 307 asks for the body again, which
 * a stream cannot give: an error, as curl's when it cannot rewind. */
START_TEST(upload_redirects)
{
	th_start(&d, NULL);
	porter_http_options o = PORTER_HTTP_OPTIONS_INIT;
	o.follow_redirects = 1;
	porter_http_upload *u = NULL;
	porter_http_stream *s = NULL;
	ck_assert_int_eq(
		porter_http_upload_open("POST", url("/moved/303"), NULL, 0, 5, &o, 0, 5000, &u), 0);
	ck_assert_int_eq(porter_http_upload_write(u, "hello", 5, 0, 5000), 0);
	ck_assert_int_eq(porter_http_upload_finish(u, 0, 5000, &s), 0);
	porter_http_upload_free(u);
	const porter_http_response *h = porter_http_stream_response(s);
	ck_assert_int_eq(porter_http_response_status(h), 200);
	ck_assert_str_eq(porter_http_response_header(h, "X-Method"), "GET");
	ck_assert_uint_eq(porter_http_response_hop_count(h), 1);
	ck_assert_str_eq(porter_http_response_hop_status_line(h, 0), "HTTP/1.1 303 See Other");
	porter_http_stream_close(s, 2000);

	ck_assert_int_eq(
		porter_http_upload_open("PUT", url("/moved/307"), NULL, 0, 5, &o, 0, 5000, &u), 0);
	ck_assert_int_eq(porter_http_upload_write(u, "hello", 5, 0, 5000), 0);
	ck_assert_int_eq(porter_http_upload_finish(u, 0, 5000, &s), PORTER_E_HTTP);
	ck_assert_ptr_nonnull(strstr(porter_last_error_message(), "body again"));
	porter_http_upload_close(u, 2000);
	th_expect_idle();
	th_stop_clean(&d);
}
END_TEST

/* The piece porterd holds counts in the uid's buffered bytes: a uid at
 * its uid-max-buffered gets PORTER_E_BUSY naming the limit. */
START_TEST(upload_counts_buffered_bytes)
{
	const char *const extra[] = {"--uid-max-buffered", "1572864", NULL};
	th_start(&d, extra);
	uint8_t *body = pattern(1u << 20);
	porter_http_upload *u = NULL;
	ck_assert_int_eq(
		porter_http_upload_open("POST", url("/digest"), NULL, 0, -1, NULL, 0, 5000, &u), 0);
	/* The piece's frame in the read buffer (1 MiB) and the piece held
	 * for libcurl (1 MiB) pass 1.5 MiB together. */
	ck_assert_int_eq(porter_http_upload_write(u, body, 1u << 20, 0, 5000), PORTER_E_BUSY);
	ck_assert_ptr_nonnull(strstr(porter_last_error_message(), "uid-max-buffered"));
	porter_http_upload_free(u);
	/* Small pieces pass. */
	ck_assert_int_eq(
		porter_http_upload_open("POST", url("/digest"), NULL, 0, -1, NULL, 0, 5000, &u), 0);
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(porter_http_upload_write(u, body, 100000, 0, 5000), 0);
	porter_http_stream *s = NULL;
	ck_assert_int_eq(porter_http_upload_finish(u, 0, 5000, &s), 0);
	porter_http_upload_free(u);
	char got[256];
	read_all(s, got, sizeof(got));
	ck_assert_msg(strncmp(got, "800000 ", 7) == 0, "server got: %s", got);
	porter_http_stream_free(s);
	free(body);
	th_stop_clean(&d);
}
END_TEST

/* An upload nobody writes is reclaimed after http-stream-idle, and a
 * freed one is aborted: the server sees the connection go. */
START_TEST(upload_abandoned)
{
	const char *const extra[] = {"--http-stream-idle", "300", NULL};
	th_start(&d, extra);
	porter_http_upload *u = NULL;
	ck_assert_int_eq(
		porter_http_upload_open("POST", url("/digest"), NULL, 0, -1, NULL, 0, 5000, &u), 0);
	ck_assert_int_eq(porter_http_upload_write(u, "abc", 3, 0, 5000), 0);
	usleep(2500 * 1000);
	ck_assert_int_eq(porter_http_upload_write(u, "def", 3, 0, 5000), PORTER_E_TIMEOUT);
	ck_assert_ptr_nonnull(strstr(porter_last_error_message(), "not written"));
	porter_http_upload_close(u, 2000);

	ck_assert_int_eq(
		porter_http_upload_open("POST", url("/digest"), NULL, 0, -1, NULL, 0, 5000, &u), 0);
	ck_assert_int_eq(porter_http_upload_write(u, "abc", 3, 0, 5000), 0);
	porter_http_upload_free(u);
	long long until = th_now_ms() + 5000;
	porter_stats_snapshot *st = NULL;
	uint64_t xfers = 1;
	while (xfers && th_now_ms() < until) {
		ck_assert_int_eq(porter_stats(0, 2000, &st), 0);
		xfers = porter_stats_http_transfers(st);
		porter_stats_free(st);
		usleep(20000);
	}
	ck_assert_uint_eq(xfers, 0);
	th_stop_clean(&d);
}
END_TEST

typedef struct writer_arg {
	porter_http_upload *u;
	const uint8_t *p;
	size_t n;
	int rc;
} writer_arg;

static void *writer(void *arg)
{
	writer_arg *w = arg;
	w->rc = porter_http_upload_write(w->u, w->p, w->n, 0, 10000);
	porter_thread_disconnect();
	return NULL;
}

/* Any thread may write: a piece arriving on another worker is forwarded
 * to the one that holds the upload. */
START_TEST(upload_written_from_other_threads)
{
	const char *const extra[] = {"--workers", "4", NULL};
	th_start(&d, extra);
	uint8_t *body = pattern(4u << 20);
	porter_http_upload *u = NULL;
	ck_assert_int_eq(porter_http_upload_open("POST", url("/digest"), NULL, 0, 4u << 20, NULL, 0,
						 5000, &u),
			 0);
	for (int i = 0; i < 4; i++) {
		writer_arg w = {.u = u, .p = body + ((size_t)i << 20), .n = 1u << 20};
		pthread_t t;
		ck_assert_int_eq(pthread_create(&t, NULL, writer, &w), 0);
		pthread_join(t, NULL);
		ck_assert_int_eq(w.rc, 0);
	}
	porter_http_stream *s = NULL;
	ck_assert_int_eq(porter_http_upload_finish(u, 0, 10000, &s), 0);
	porter_http_upload_free(u);
	char got[256];
	read_all(s, got, sizeof(got));
	ck_assert_msg(strstr(got, "4194304 ") == got && strstr(got, " length pattern"),
		      "server got: %s", got);
	porter_http_stream_free(s);
	free(body);
	th_stop_clean(&d);
}
END_TEST

/* Every hop's status line and headers come back, as the server sent
 * them, and whole responses carry them too. */
START_TEST(hops_carry_their_heads)
{
	th_start(&d, NULL);
	porter_http_response *r = NULL;
	ck_assert_int_eq(porter_http_get(url("/redirect/2"), 0, 5000, &r), 0);
	ck_assert_str_eq(porter_http_response_status_line(r), "HTTP/1.1 200 OK");
	ck_assert_uint_eq(porter_http_response_hop_count(r), 2);
	for (size_t i = 0; i < 2; i++) {
		ck_assert_str_eq(porter_http_response_hop_status_line(r, i), "HTTP/1.1 302 Found");
		int loc = 0;
		for (size_t j = 0; j < porter_http_response_hop_header_count(r, i); j++) {
			const char *n, *v;
			ck_assert_int_eq(porter_http_response_hop_header_at(r, i, j, &n, &v), 0);
			if (!strcmp(n, "Location"))
				loc = !strcmp(v, i ? "/redirect/0" : "/redirect/1");
		}
		ck_assert_msg(loc, "hop %zu has no Location of its own", i);
	}
	ck_assert_ptr_null(porter_http_response_hop_status_line(r, 2));
	ck_assert_int_eq(porter_http_response_hop_header_at(r, 2, 0, NULL, NULL), PORTER_E_INVAL);
	porter_http_response_free(r);

	ck_assert_int_eq(porter_http_get(url("/moved/308"), 0, 5000, &r), 0);
	ck_assert_str_eq(porter_http_response_hop_status_line(r, 0),
			 "HTTP/1.1 308 Permanent Redirect");
	ck_assert_str_eq(porter_http_response_header(r, "X-Method"), "GET");
	porter_http_response_free(r);

	/* No redirect: no hops. */
	ck_assert_int_eq(porter_http_get(url("/status/404"), 0, 5000, &r), 0);
	ck_assert_str_eq(porter_http_response_status_line(r), "HTTP/1.1 404 Not Found");
	ck_assert_uint_eq(porter_http_response_hop_count(r), 0);
	porter_http_response_free(r);
	th_stop_clean(&d);
}
END_TEST

/* The heads of all hops count together against porterd's header limit,
 * so a server cannot grow the reply by redirecting: 5 hops of 40 KiB
 * pass, 10 do not, and the error says it was the headers. */
START_TEST(hop_heads_are_bounded)
{
	th_start(&d, NULL);
	porter_http_response *r = NULL;
	ck_assert_int_eq(porter_http_get(url("/bigheads/4/40"), 0, 10000, &r), 0);
	ck_assert_uint_eq(porter_http_response_hop_count(r), 4);
	porter_http_response_free(r);
	ck_assert_int_eq(porter_http_get(url("/bigheads/9/40"), 0, 10000, &r),
			 PORTER_E_HTTP_TOO_LARGE);
	ck_assert_ptr_nonnull(strstr(porter_last_error_message(), "headers"));
	th_expect_idle();
	th_stop_clean(&d);
}
END_TEST

/* connect_timeout_ms bounds the connection attempt: a listener whose
 * backlog is full never completes the handshake. */
START_TEST(connect_timeout_per_request)
{
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(lfd, 0), 0);
	socklen_t al = sizeof(a);
	getsockname(lfd, (struct sockaddr *)&a, &al);
	/* Fill the backlog: later SYNs are dropped, connect() hangs. */
	int fill[4];
	for (int i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&a, sizeof(a));
	}
	usleep(100000);
	th_start(&d, NULL);
	char u[64];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/", ntohs(a.sin_port));
	porter_http_options o = PORTER_HTTP_OPTIONS_INIT;
	o.connect_timeout_ms = 300;
	porter_http_response *r = NULL;
	long long t0 = th_now_ms();
	int rc = porter_http_request("GET", u, NULL, 0, NULL, 0, &o, 0, 20000, &r);
	long long took = th_now_ms() - t0;
	ck_assert_msg(rc == PORTER_E_TIMEOUT || rc == PORTER_E_HTTP_CONNECT, "rc %d: %s", rc,
		      porter_last_error_message());
	/* Generous: porterd's own bound is 10 s, the call's 20 s. */
	ck_assert_msg(took < 5000, "the connect took %lld ms", took);
	th_stop_clean(&d);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(lfd);
}
END_TEST

int main(void)
{
	if (th_httpd_start(&srv) != 0) {
		fprintf(stderr, "test_http_upload: could not start the loopback HTTP server\n");
		return 1;
	}
	Suite *s = suite_create("http_upload");
	const TTest *tests[] = {upload_any_size,
				upload_declared_size_is_enforced,
				upload_answered_early,
				upload_redirects,
				upload_counts_buffered_bytes,
				upload_abandoned,
				upload_written_from_other_threads,
				hops_carry_their_heads,
				hop_heads_are_bounded,
				connect_timeout_per_request,
				NULL};
	th_tcase(s, "http_upload", 120, tests);
	int rc = th_run_suite(s);
	th_httpd_stop(&srv);
	return rc;
}
