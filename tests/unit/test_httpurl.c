/* Unit tests of the per-tenant cache of parsed URLs (daemon/httpurl.c):
 * a repeated URL is the same entry, only an entry nobody holds is
 * replaced, and what cannot be cached is left to libcurl (NULL). */
#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "httpurl.h"

/* The URL part `part` of entry `u`, into `out`. */
static void part_of(const httpurl *u, CURLUPart part, char *out, size_t cap)
{
	char *v = NULL;
	ck_assert_int_eq(curl_url_get(u->cu, part, &v, 0), CURLUE_OK);
	snprintf(out, cap, "%s", v);
	curl_free(v);
}

START_TEST(repeated_urls_are_one_entry)
{
	httpurl_cache c = {0};
	httpurl *a = httpurl_hold(&c, "http://127.0.0.1:8080/a/b?x=1");
	ck_assert_ptr_nonnull(a);
	ck_assert_uint_eq(a->refs, 1);
	char got[256];
	part_of(a, CURLUPART_HOST, got, sizeof(got));
	ck_assert_str_eq(got, "127.0.0.1");
	part_of(a, CURLUPART_PATH, got, sizeof(got));
	ck_assert_str_eq(got, "/a/b");
	part_of(a, CURLUPART_QUERY, got, sizeof(got));
	ck_assert_str_eq(got, "x=1");
	ck_assert_ptr_eq(httpurl_hold(&c, "http://127.0.0.1:8080/a/b?x=1"), a);
	ck_assert_uint_eq(a->refs, 2);
	/* Another text is another entry, even when it means the same. */
	httpurl *b = httpurl_hold(&c, "http://127.0.0.1:8080/a/b?x=1#f");
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_ne(a, b);
	httpurl_put(a);
	httpurl_put(a);
	httpurl_put(b);
	httpurl_put(NULL);
	ck_assert_uint_eq(a->refs, 0);
	httpurl_cache_free(&c);
	for (unsigned i = 0; i < HTTPURL_SLOTS; i++)
		ck_assert_ptr_null(c.slot[i].text);
}
END_TEST

START_TEST(only_unheld_entries_are_replaced)
{
	httpurl_cache c = {0};
	httpurl *held[HTTPURL_SLOTS];
	char u[64];
	for (unsigned i = 0; i < HTTPURL_SLOTS; i++) {
		snprintf(u, sizeof(u), "http://h/%u", i);
		held[i] = httpurl_hold(&c, u);
		ck_assert_ptr_nonnull(held[i]);
	}
	/* Every slot held: a new URL is left to libcurl. */
	ck_assert_ptr_null(httpurl_hold(&c, "http://h/new"));
	/* One let go: it is the one replaced, and the rest stay. */
	httpurl_put(held[3]);
	httpurl *n = httpurl_hold(&c, "http://h/new");
	ck_assert_ptr_eq(n, held[3]);
	ck_assert_str_eq(n->text, "http://h/new");
	for (unsigned i = 0; i < HTTPURL_SLOTS; i++) {
		if (i == 3)
			continue;
		snprintf(u, sizeof(u), "http://h/%u", i);
		ck_assert_ptr_eq(httpurl_hold(&c, u), held[i]);
		httpurl_put(held[i]);
		httpurl_put(held[i]);
	}
	httpurl_put(n);
	/* None held: the least recently used goes first: h/new, then h/0
	 * (held again before the others). */
	ck_assert_ptr_eq(httpurl_hold(&c, "http://h/other"), n);
	ck_assert_ptr_eq(httpurl_hold(&c, "http://h/other2"), held[0]);
	httpurl_cache_free(&c);
}
END_TEST

START_TEST(what_cannot_be_cached_is_left_to_libcurl)
{
	httpurl_cache c = {0};
	char u[HTTPURL_MAX_LEN + 2];
	memset(u, 'a', sizeof(u) - 1);
	memcpy(u, "http://h/", 9);
	u[sizeof(u) - 1] = 0;
	ck_assert_ptr_null(httpurl_hold(&c, u));
	u[HTTPURL_MAX_LEN] = 0;
	httpurl *at = httpurl_hold(&c, u);
	ck_assert_ptr_nonnull(at);
	httpurl_put(at);
	/* What libcurl's parser refuses, libcurl reports itself. */
	ck_assert_ptr_null(httpurl_hold(&c, "http://exa mple.com/"));
	ck_assert_ptr_null(httpurl_hold(&c, "http://[::1/"));
	httpurl_cache_free(&c);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {repeated_urls_are_one_entry, only_unheld_entries_are_replaced,
				what_cannot_be_cached_is_left_to_libcurl, NULL};
	return th_suite("httpurl", "httpurl", 0, tests);
}

TH_MAIN(suite)
