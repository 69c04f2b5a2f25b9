/*
 * Unit tests of the parts of daemon/httpsetup.c that need no network: what
 * is left of a transfer's deadline for the next redirect hop (none set:
 * nothing to do; passed, or reached exactly: PORTER_E_TIMEOUT naming the
 * redirects followed; else the hop may go), and the credential headers
 * dropped when a redirect leaves the first origin (by header name, in
 * either line form, any case; every other header kept, in order). And on
 * a real tenant of the worker rig (no transfer is started): the easy
 * handle's header lines ("Name: value", "Name;" for an empty value, Host
 * dropped, a refused header named), "Expect:" only with a body, and the
 * transfer's deadline and connect bound from the request's time, the
 * client's asks and the daemon's bounds.
 */
#include <check.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "config.h"
#include "httpglue.h"
#include "httpsetup.h"
#include "porter_errors.h"
#include "thmain.h"
#include "wrig.h"

static uv_loop_t loop;
static http_xfer *x;

static void setup(void)
{
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	x = calloc(1, sizeof(*x));
	ck_assert_ptr_nonnull(x);
	x->loop = &loop;
	x->easy = curl_easy_init();
	ck_assert_ptr_nonnull(x->easy);
}

static void teardown(void)
{
	curl_slist_free_all(x->hdrs);
	curl_easy_cleanup(x->easy);
	free(x);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}

START_TEST(no_deadline_leaves_the_hop_alone)
{
	loop.time = UINT64_MAX / 2;
	x->deadline = 0;
	ck_assert_int_eq(httpsetup_hop_deadline(x), 0);
	ck_assert_int_eq(x->err, 0);
	ck_assert_str_eq(x->err_msg, "");
}
END_TEST

START_TEST(time_left_lets_the_hop_go)
{
	loop.time = 1000;
	x->deadline = 1001; /* one millisecond is enough */
	x->connect_to = 5000;
	ck_assert_int_eq(httpsetup_hop_deadline(x), 0);
	x->deadline = 100000;
	x->connect_to = 0;
	ck_assert_int_eq(httpsetup_hop_deadline(x), 0);
	ck_assert_int_eq(x->err, 0);
	ck_assert_str_eq(x->err_msg, "");
}
END_TEST

START_TEST(a_passed_deadline_times_out_naming_the_redirects)
{
	loop.time = 5000;
	x->deadline = 5000; /* reached exactly: no time left */
	x->redirects = 3;
	ck_assert_int_eq(httpsetup_hop_deadline(x), -1);
	ck_assert_int_eq(x->err, PORTER_E_TIMEOUT);
	ck_assert_ptr_nonnull(strstr(x->err_msg, "after 3 redirects"));
	x->err = 0;
	x->deadline = 4000;
	x->redirects = 7;
	ck_assert_int_eq(httpsetup_hop_deadline(x), -1);
	ck_assert_int_eq(x->err, PORTER_E_TIMEOUT);
	ck_assert_ptr_nonnull(strstr(x->err_msg, "after 7 redirects"));
}
END_TEST

static void add_header(const char *line)
{
	struct curl_slist *l = curl_slist_append(x->hdrs, line);
	ck_assert_ptr_nonnull(l);
	x->hdrs = l;
}

START_TEST(credentials_are_stripped_and_the_rest_kept_in_order)
{
	static const char *const in[] = {
		"Accept: text/plain",
		"Authorization: Bearer abc",
		"X-Note: my token is not in the name", /* by name only */
		"cookie: a=b",                         /* any case */
		"Cookie;",                             /* the empty-header form */
		"X-Api-Key: k",
		"Proxy-Authorization: Basic eA==",
		"X-CSRF-Token: t",
		"User-Agent: porter-test",
		"X-Session-Id: s",
		"Content-Type: application/json",
	};
	static const char *const kept[] = {
		"Accept: text/plain",
		"X-Note: my token is not in the name",
		"User-Agent: porter-test",
		"Content-Type: application/json",
	};
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		add_header(in[i]);
	ck_assert_int_eq(x->stripped, 0);
	ck_assert_int_eq(httpsetup_strip_credentials(x), 0);
	ck_assert_int_eq(x->stripped, 1);
	size_t n = 0;
	for (struct curl_slist *l = x->hdrs; l; l = l->next, n++) {
		ck_assert_uint_lt(n, sizeof(kept) / sizeof(kept[0]));
		ck_assert_str_eq(l->data, kept[n]);
	}
	ck_assert_uint_eq(n, sizeof(kept) / sizeof(kept[0]));
}
END_TEST

START_TEST(stripping_only_credentials_leaves_no_headers)
{
	add_header("Authorization: Basic eA==");
	add_header("Cookie: a=b");
	ck_assert_int_eq(httpsetup_strip_credentials(x), 0);
	ck_assert_ptr_null(x->hdrs);
	ck_assert_int_eq(x->stripped, 1);
	/* And again on nothing: still nothing, still 0. */
	ck_assert_int_eq(httpsetup_strip_credentials(x), 0);
	ck_assert_ptr_null(x->hdrs);
}
END_TEST

/* The second case: a tenant of worker 0's glue, a client, and a transfer
 * `ex` not yet set up. */
static httpglue glue;
static httpglue_tenant *tenant;
static http_xfer *ex;
static conn *client;
static int client_fd;
static int tenants_freed;

static void no_drain(httpglue_tenant *t)
{
	(void)t;
}

static void on_freed(httpglue *g)
{
	(void)g;
	tenants_freed++;
}

static void easy_setup(void)
{
	wrig_up(1);
	ck_assert_int_eq(httpglue_global_init(wrig_config()), 0);
	httpglue_init(&glue, wrig_worker(0), no_drain, on_freed);
	tenant = httpglue_hold(&glue, 4001);
	ck_assert_ptr_nonnull(tenant);
	client = wrig_client(wrig_worker(0), 4001, 7, &client_fd);
	ex = calloc(1, sizeof(*ex));
	ck_assert_ptr_nonnull(ex);
	ex->loop = &wrig_worker(0)->loop;
	ex->t = tenant;
	snprintf(ex->method, sizeof(ex->method), "GET");
	ex->url = "http://example.test/x";
	tenants_freed = 0;
}

static void easy_teardown(void)
{
	if (ex->easy)
		httpglue_easy_put(tenant, ex->easy, 0);
	curl_slist_free_all(ex->hdrs);
	free(ex);
	httpglue_release(tenant, uv_now(&wrig_worker(0)->loop));
	httpglue_close_all(&glue);
	wrig_pump();
	ck_assert_int_eq(tenants_freed, 1);
	wrig_down();
	httpglue_global_cleanup();
}

/* A Ping of the client standing for the HTTP request (only its deadline
 * is read), answered at once after setup. */
static req *request_with_timeout(uint32_t timeout_ms)
{
	static uint64_t id;
	return wrig_ping(client, ++id, 0, timeout_ms);
}

static void finish(req *r)
{
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	req_reply(r, &resp);
}

/* Sets up `ex` for headers name[i]: value[i] (n of them); returns its
 * result. */
static int setup_with(const char *const *names, const char *const *values, size_t n,
		      uint32_t timeout_ms, uint32_t transfer_ms, uint32_t connect_ms)
{
	Porter__V1__HttpHeader h[8], *hp[8];
	ck_assert_uint_le(n, 8);
	for (size_t i = 0; i < n; i++) {
		porter__v1__http_header__init(&h[i]);
		h[i].name = (char *)names[i];
		h[i].value = (char *)values[i];
		hp[i] = &h[i];
	}
	Porter__V1__HttpRequest hr = PORTER__V1__HTTP_REQUEST__INIT;
	hr.n_headers = n;
	hr.headers = hp;
	hr.transfer_timeout_ms = transfer_ms;
	hr.connect_timeout_ms = connect_ms;
	req *r = request_with_timeout(timeout_ms);
	int rc = httpsetup_easy(ex, wrig_config(), &hr, r);
	finish(r);
	return rc;
}

static void expect_lines(const char *const *want, size_t n)
{
	size_t k = 0;
	for (struct curl_slist *l = ex->hdrs; l; l = l->next, k++) {
		ck_assert_uint_lt(k, n);
		ck_assert_str_eq(l->data, want[k]);
	}
	ck_assert_uint_eq(k, n);
}

START_TEST(header_lines_are_formed_and_host_dropped)
{
	const char *names[] = {"Accept", "X-Empty", "Host"};
	const char *values[] = {"text/plain", "", "example.test"};
	ck_assert_int_eq(setup_with(names, values, 3, 10000, 0, 0), 0);
	ck_assert_ptr_nonnull(ex->easy);
	const char *want[] = {"Accept: text/plain", "X-Empty;"};
	expect_lines(want, 2); /* a GET without a body: no Expect */
}
END_TEST

START_TEST(a_body_adds_an_empty_expect_and_resets_the_handle)
{
	snprintf(ex->method, sizeof(ex->method), "POST");
	ex->body = (uint8_t *)"abc";
	ex->body_len = 3;
	const char *names[] = {"Content-Type"};
	const char *values[] = {"text/plain"};
	ck_assert_int_eq(setup_with(names, values, 1, 10000, 0, 0), 0);
	const char *want[] = {"Content-Type: text/plain", "Expect:"};
	expect_lines(want, 2);
	ck_assert_uint_eq(ex->easy_epoch, 0);
}
END_TEST

START_TEST(a_refused_header_is_named)
{
	const char *names[] = {"Accept", "Transfer-Encoding"};
	const char *values[] = {"*/*", "chunked"};
	ck_assert_int_eq(setup_with(names, values, 2, 10000, 0, 0), PORTER_E_INVAL);
	ck_assert_ptr_nonnull(strcasestr(ex->err_msg, "transfer-encoding"));
}
END_TEST

/* The transfer's deadline for a request of `timeout_ms` asking for
 * `transfer_ms`: `want_ms` from now. */
static void expect_deadline(uint32_t timeout_ms, uint32_t transfer_ms, uint64_t want_ms)
{
	uint64_t now = uv_now(ex->loop);
	ck_assert_int_eq(setup_with(NULL, NULL, 0, timeout_ms, transfer_ms, 0), 0);
	ck_assert_uint_eq(ex->deadline, now + want_ms);
	httpglue_easy_put(tenant, ex->easy, 0);
	ex->easy = NULL;
}

START_TEST(the_deadline_ends_a_margin_before_the_requests)
{
	/* No transfer timeout: the request's time less the margin. */
	expect_deadline(10000, 0, 10000 - HTTP_DEADLINE_MARGIN_MS);
	/* A shorter transfer timeout wins. */
	expect_deadline(10000, 2000, 2000);
	/* A longer one is cut to the request's time less the margin. */
	expect_deadline(10000, 60000, 10000 - HTTP_DEADLINE_MARGIN_MS);
	/* At most four margins left: no margin taken (it would eat most). */
	expect_deadline(4 * HTTP_DEADLINE_MARGIN_MS, 0, 4 * HTTP_DEADLINE_MARGIN_MS);
	expect_deadline(4 * HTTP_DEADLINE_MARGIN_MS + 1, 0, 3 * HTTP_DEADLINE_MARGIN_MS + 1);
}
END_TEST

START_TEST(the_client_may_ask_a_shorter_connect_bound_never_longer)
{
	wrig_config()->http_connect_timeout_ms = 3000;
	ck_assert_int_eq(setup_with(NULL, NULL, 0, 10000, 0, 1000), 0);
	ck_assert_uint_eq(ex->connect_to, 1000);
	httpglue_easy_put(tenant, ex->easy, 0);
	ex->easy = NULL;
	ck_assert_int_eq(setup_with(NULL, NULL, 0, 10000, 0, 5000), 0);
	ck_assert_uint_eq(ex->connect_to, 3000);
	httpglue_easy_put(tenant, ex->easy, 0);
	ex->easy = NULL;
	ck_assert_int_eq(setup_with(NULL, NULL, 0, 10000, 0, 0), 0);
	ck_assert_uint_eq(ex->connect_to, 3000);
	httpglue_easy_put(tenant, ex->easy, 0);
	ex->easy = NULL;
	wrig_config()->http_connect_timeout_ms = 0; /* no daemon bound */
	ck_assert_int_eq(setup_with(NULL, NULL, 0, 10000, 0, 700), 0);
	ck_assert_uint_eq(ex->connect_to, 700);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {no_deadline_leaves_the_hop_alone,
				time_left_lets_the_hop_go,
				a_passed_deadline_times_out_naming_the_redirects,
				credentials_are_stripped_and_the_rest_kept_in_order,
				stripping_only_credentials_leaves_no_headers,
				NULL};
	const TTest *easy_tests[] = {header_lines_are_formed_and_host_dropped,
				     a_body_adds_an_empty_expect_and_resets_the_handle,
				     a_refused_header_is_named,
				     the_deadline_ends_a_margin_before_the_requests,
				     the_client_may_ask_a_shorter_connect_bound_never_longer,
				     NULL};
	Suite *s = suite_create("httpsetup");
	TCase *tc = th_tcase(s, "httpsetup", 10, tests);
	tcase_add_checked_fixture(tc, setup, teardown);
	tc = th_tcase(s, "easy", 10, easy_tests);
	tcase_add_checked_fixture(tc, easy_setup, easy_teardown);
	return s;
}

TH_MAIN(suite)
