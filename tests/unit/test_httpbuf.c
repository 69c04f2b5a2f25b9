/* Unit tests of a worker's large body buffers (daemon/httpbuf.c): a
 * buffer given back is taken again with its pages, the best fit first; a
 * buffer grows with its bytes; what is kept is bounded and unmapped after
 * HTTPBUF_KEEP_MS; a cache closed with buffers out goes with the last. */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "harness.h"
#include "httpbuf.h"

#define MIB (1024u * 1024u)

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i + seed) % 251);
}

static int same(const uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (uint8_t)((i + seed) % 251))
			return 0;
	return 1;
}

START_TEST(a_buffer_given_back_is_taken_again)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	httpbuf_cache *c = httpbuf_cache_new(&loop);
	ck_assert_ptr_nonnull(c);
	size_t cap = 0;
	uint8_t *a = httpbuf_get(c, 8 * MIB, &cap);
	ck_assert_ptr_nonnull(a);
	ck_assert_uint_ge(cap, 8 * MIB);
	fill(a, cap, 1);
	ck_assert_uint_eq(httpbuf_kept_bytes(c), 0);
	httpbuf_release(a);
	ck_assert_uint_gt(httpbuf_kept_bytes(c), 8 * MIB);
	/* A body of nearly the same size takes it, bytes (pages) and all. */
	size_t cap2 = 0;
	uint8_t *b = httpbuf_get(c, 8 * MIB - 1000, &cap2);
	ck_assert_ptr_eq(b, a);
	ck_assert_uint_eq(cap2, cap);
	ck_assert(same(b, cap2, 1));
	ck_assert_uint_eq(httpbuf_kept_bytes(c), 0);
	/* Of two kept, the smaller that fits. */
	size_t cs = 0;
	uint8_t *s = httpbuf_get(c, 1 * MIB, &cs);
	ck_assert_ptr_nonnull(s);
	httpbuf_release(b);
	httpbuf_release(s);
	size_t cm = 0;
	uint8_t *m = httpbuf_get(c, 300 * 1024, &cm);
	ck_assert_ptr_eq(m, s);
	ck_assert_uint_eq(cm, cs);
	/* None fits: the newest kept one grows (here the 8 MiB one). */
	size_t cb = 0;
	uint8_t *big = httpbuf_get(c, 12 * MIB, &cb);
	ck_assert_ptr_nonnull(big);
	ck_assert_uint_ge(cb, 12 * MIB);
	ck_assert_uint_eq(httpbuf_kept_bytes(c), 0);
	httpbuf_release(m);
	httpbuf_release(big);
	httpbuf_release(NULL);
	httpbuf_cache_close(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(a_buffer_grows_with_its_bytes)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	httpbuf_cache *c = httpbuf_cache_new(&loop);
	size_t cap = 0;
	uint8_t *p = httpbuf_get(c, 300 * 1024, &cap);
	ck_assert_ptr_nonnull(p);
	fill(p, 300 * 1024, 7);
	/* Remapped: the bytes move with the pages. */
	p = httpbuf_grow(p, 300 * 1024, 5 * MIB, &cap);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_ge(cap, 5 * MIB);
	ck_assert(same(p, 300 * 1024, 7));
	fill(p, 5 * MIB, 9);
	/* Into a kept buffer that fits: copied. */
	size_t kc = 0;
	uint8_t *k = httpbuf_get(c, 9 * MIB, &kc);
	httpbuf_release(k);
	uint8_t *q = httpbuf_grow(p, 5 * MIB, 8 * MIB, &cap);
	ck_assert_ptr_eq(q, k);
	ck_assert_uint_eq(cap, kc);
	ck_assert(same(q, 5 * MIB, 9));
	/* The one it left is kept. */
	ck_assert_uint_gt(httpbuf_kept_bytes(c), 5 * MIB);
	httpbuf_release(q);
	httpbuf_cache_close(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(what_is_kept_is_bounded_and_unmapped_after_a_while)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	httpbuf_cache *c = httpbuf_cache_new(&loop);
	uint8_t *p[12];
	size_t cap;
	long rss0 = th_rss_kib(getpid());
	for (int i = 0; i < 12; i++) {
		p[i] = httpbuf_get(c, 8 * MIB, &cap);
		ck_assert_ptr_nonnull(p[i]);
		memset(p[i], i, cap);
	}
	/* The loop's clock, as a worker's is at each turn. */
	uv_update_time(&loop);
	uint64_t t0 = uv_hrtime();
	for (int i = 0; i < 12; i++)
		httpbuf_release(p[i]);
	size_t kept = httpbuf_kept_bytes(c);
	ck_assert_uint_le(kept, HTTPBUF_KEEP_BYTES);
	ck_assert_uint_ge(kept, HTTPBUF_KEEP_BYTES - 9 * MIB);
	long rss_kept = th_rss_kib(getpid());
	/* The loop ends when the timer has unmapped everything. */
	uv_run(&loop, UV_RUN_DEFAULT);
	uint64_t ms = (uv_hrtime() - t0) / 1000000;
	ck_assert_uint_eq(httpbuf_kept_bytes(c), 0);
	ck_assert_uint_ge(ms, HTTPBUF_KEEP_MS - 50);
	long rss1 = th_rss_kib(getpid());
	fprintf(stderr, "rss %ld KiB, kept %ld KiB, after %llu ms %ld KiB\n", rss0, rss_kept,
		(unsigned long long)ms, rss1);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	/* Unmapped, not just forgotten (AddressSanitizer's build uses malloc,
	 * whose quarantine keeps freed memory a while; ThreadSanitizer's
	 * shadow memory counts in RSS). */
	ck_assert_int_ge(rss_kept - rss0, 36 * 1024);
	ck_assert_int_le(rss1 - rss0, 4 * 1024);
#endif
	httpbuf_cache_close(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* Buffers out when the worker closes come back later (a reply still
 * queued on a closing connection): unmapped then, the cache freed with
 * the last (LeakSanitizer and AddressSanitizer builds see either going
 * wrong). */
START_TEST(closed_with_buffers_out)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	httpbuf_cache *c = httpbuf_cache_new(&loop);
	size_t cap;
	uint8_t *a = httpbuf_get(c, 1 * MIB, &cap);
	uint8_t *b = httpbuf_get(c, 2 * MIB, &cap);
	uint8_t *k = httpbuf_get(c, 3 * MIB, &cap);
	httpbuf_release(k);
	httpbuf_cache_close(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	memset(a, 1, 1 * MIB);
	httpbuf_release(a);
	memset(b, 2, 2 * MIB);
	httpbuf_release(b);
	httpbuf_cache_close(NULL);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {a_buffer_given_back_is_taken_again, a_buffer_grows_with_its_bytes,
				what_is_kept_is_bounded_and_unmapped_after_a_while,
				closed_with_buffers_out, NULL};
	return th_suite("httpbuf", "httpbuf", 30, tests);
}

TH_MAIN(suite)
