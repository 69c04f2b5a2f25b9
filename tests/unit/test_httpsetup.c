/*
 * Unit tests of the parts of daemon/httpsetup.c that need no network: what
 * is left of a transfer's deadline for the next redirect hop (none set:
 * nothing to do; passed, or reached exactly: PORTER_E_TIMEOUT naming the
 * redirects followed; else the hop may go), and the credential headers
 * dropped when a redirect leaves the first origin (by header name, in
 * either line form, any case; every other header kept, in order).
 */
#include <check.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "httpsetup.h"
#include "porter_errors.h"
#include "thmain.h"

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

static Suite *suite(void)
{
	const TTest *tests[] = {no_deadline_leaves_the_hop_alone,
				time_left_lets_the_hop_go,
				a_passed_deadline_times_out_naming_the_redirects,
				credentials_are_stripped_and_the_rest_kept_in_order,
				stripping_only_credentials_leaves_no_headers,
				NULL};
	Suite *s = suite_create("httpsetup");
	TCase *tc = th_tcase(s, "httpsetup", 10, tests);
	tcase_add_checked_fixture(tc, setup, teardown);
	return s;
}

TH_MAIN(suite)
