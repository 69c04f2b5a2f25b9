/*
 * Integration tests of HTTP through porterd: a real porterd, libporter and
 * porterctl, against a real HTTP server on loopback
 * (tests/support/http_server.py) with fault routes; the fixture is
 * http_fixture.c.
 *
 * This suite: requests and responses. Status codes, headers both ways,
 * binary, large and chunked bodies, redirects and their limit, schemes and
 * hosts refused, oversized responses, TLS verification, porterctl http.
 * The suites of this family: test_http (requests and responses),
 * test_http_stream (streamed bodies), test_http_inflight (transfers in
 * flight).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "http_fixture.h"
#include "porter.h"

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
		porter_http_timings t = PORTER_HTTP_TIMINGS_INIT;
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

/* Status of GET `u` (following redirects with `follow`), and its effective
 * URL into `eff`. */
static long get_status(const char *u, int follow, char *eff, size_t cap)
{
	porter_http_options o = {.struct_size = sizeof(porter_http_options),
				 .follow_redirects = follow};
	porter_http_response *r = NULL;
	ck_assert_int_eq(porter_http_request("GET", u, NULL, 0, NULL, 0, &o, 0, 5000, &r), 0);
	long st = porter_http_response_status(r);
	snprintf(eff, cap, "%s", porter_http_response_effective_url(r));
	porter_http_response_free(r);
	return st;
}

/*
 * porterd hands libcurl a URL it parsed before (httpurl.h) on an easy
 * handle kept from earlier requests: a relative redirect must resolve
 * against the URL of the request it answers, never an earlier request's
 * (libcurl keeps the last URL on the handle), and a request after a
 * followed redirect goes to its own URL, not the redirect's target. One
 * worker, so the requests share one tenant's handles and cache; each
 * request repeated, so each is served from the cache from the second
 * round on.
 */
START_TEST(relative_redirects_after_cached_urls)
{
	static const char *const extra[] = {"--workers", "1", NULL};
	start(extra);
	char deep[512], rel[512], up[512], eff[512], want[512];
	/* Resolved against deep's URL, "status/207" would be
	 * /status/201/x/status/207, answered 201. */
	snprintf(deep, sizeof(deep), "%s", url("/status/201/x/y"));
	snprintf(rel, sizeof(rel), "%s", url("/redirect-to?url=status/207"));
	snprintf(up, sizeof(up), "%s", url("/redirect-to/a/b?url=../../status/203"));
	for (int round = 0; round < 4; round++) {
		ck_assert_int_eq(get_status(deep, 1, eff, sizeof(eff)), 201);
		ck_assert_str_eq(eff, deep);
		ck_assert_int_eq(get_status(rel, 1, eff, sizeof(eff)), 207);
		snprintf(want, sizeof(want), "%s", url("/status/207"));
		ck_assert_str_eq(eff, want);
		ck_assert_int_eq(get_status(deep, 1, eff, sizeof(eff)), 201);
		ck_assert_int_eq(get_status(up, 1, eff, sizeof(eff)), 203);
		snprintf(want, sizeof(want), "%s", url("/status/203"));
		ck_assert_str_eq(eff, want);
		/* Not followed: the Location is the server's, as sent. */
		ck_assert_int_eq(get_status(rel, 0, eff, sizeof(eff)), 302);
		ck_assert_str_eq(eff, rel);
	}
	th_stop_clean(&d);
}
END_TEST

START_TEST(refused_schemes_and_hosts)
{
	static const char *const schemes[] = {"file:///etc/passwd", "ftp://127.0.0.1/x",
					      "gopher://127.0.0.1/x", "dict://127.0.0.1/x",
					      "FILE:///etc/passwd"};
	static const char *const extra[] = {"--http-allow-hosts", "127.0.0.1:*, *.example.test",
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
	porter_http_timings t = PORTER_HTTP_TIMINGS_INIT;
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
	char out[8192], path[256];
	start(NULL);
	ck_assert_int_eq(th_ctl(NULL, 0, TH_ERR_KEEP, out, sizeof(out), "http", "get", "-i",
				url("/headers"), NULL),
			 0);
	ck_assert_ptr_nonnull(strstr(out, "HTTP/1.1 200 OK\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "X-Multi: b\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "\r\n\r\nheaders"));

	ck_assert_int_eq(th_ctl(NULL, 0, TH_ERR_KEEP, out, sizeof(out), "http", "post", "-H",
				"X-Test-K: v", "-d", "hello there", url("/echo"), NULL),
			 0);
	ck_assert_str_eq(out, "hello there");

	ck_assert_int_eq(th_ctl(NULL, 0, TH_ERR_KEEP, out, sizeof(out), "http", "request", "DELETE",
				"-i", url("/echo"), NULL),
			 0);
	ck_assert_ptr_nonnull(strstr(out, "X-Method: DELETE"));

	snprintf(path, sizeof(path), "%s/body.bin", d.dir);
	ck_assert_int_eq(th_ctl(NULL, 0, TH_ERR_KEEP, out, sizeof(out), "http", "get", "-o", path,
				url("/bin/3000000"), NULL),
			 0);
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	uint8_t *buf = malloc(3000001);
	size_t n = fread(buf, 1, 3000001, f);
	fclose(f);
	unlink(path);
	ck_assert_uint_eq(n, 3000000);
	ck_assert(check_pattern(buf, n, 0));
	free(buf);

	ck_assert_int_eq(th_ctl(NULL, 0, TH_ERR_KEEP, out, sizeof(out), "http", "get", "-L",
				url("/redirect/2"), NULL),
			 0);
	ck_assert_str_eq(out, "done");
	/* curl's exit code for -f on an error status. */
	ck_assert_int_eq(th_ctl(NULL, 0, TH_ERR_NULL, out, sizeof(out), "http", "get", "-f",
				url("/status/404"), NULL),
			 22);
	ck_assert_int_eq(th_ctl(NULL, 0, TH_ERR_NULL, out, sizeof(out), "http", "get",
				"file:///etc/passwd", NULL),
			 1);
	ck_assert_int_eq(th_ctl(NULL, 0, TH_ERR_NULL, out, sizeof(out), "http", "get", NULL), 2);
	th_stop_clean(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {status_codes,
				headers_both_ways,
				binary_bodies_with_nuls,
				large_and_chunked_bodies,
				redirects_and_their_limit,
				relative_redirects_after_cached_urls,
				refused_schemes_and_hosts,
				oversized_responses,
				tls_verification,
				porterctl_http,
				NULL};
	return http_suite("http", tests);
}

TH_MAIN(suite)
