/*
 * A frame refused from its first bytes (issue 16): the parameter count of a
 * Request cut short, and a frame reader that throws the rest of a frame
 * away as it arrives and then reads the next frame as usual.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "dbwire.h"
#include "frame.h"
#include "rawc.h"
#include "thmain.h"

START_TEST(prefix_count_is_a_lower_bound_of_the_whole)
{
	size_t len;
	uint8_t *f = th_rc_params_frame("host=/nonexistent", 42, 300, &len);
	ck_assert_ptr_nonnull(f);
	const uint8_t *p = f + FRAME_HEADER_SIZE;
	size_t plen = len - FRAME_HEADER_SIZE;
	uint64_t id;
	size_t whole = dbwire_request_params(plen, p, &id);
	ck_assert_uint_eq(whole, 300);
	/* Every cut counts at most the whole, and the whole frame counts
	 * the same either way. */
	size_t last = 0;
	for (size_t k = 0; k <= plen; k++) {
		size_t n = dbwire_request_params_prefix(k, p, &id);
		ck_assert_uint_le(n, whole);
		ck_assert_uint_ge(n, last); /* more bytes never count fewer */
		last = n;
	}
	ck_assert_uint_eq(last, whole);
	ck_assert_uint_eq(id, 42);
	/* The whole count says a message cut short is malformed (the body's
	 * length runs past the end); the prefix count sees what is there. */
	ck_assert_uint_eq(dbwire_request_params(plen / 2, p, &id), DBWIRE_MALFORMED);
	ck_assert_uint_gt(dbwire_request_params_prefix(plen / 2, p, &id), 100);
	free(f);

	/* 256 KiB of a frame of 8 million empty parameters decide it. */
	f = th_rc_params_frame("host=/nonexistent", 7, 8000000, &len);
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(dbwire_request_params_prefix(256 * 1024, f + FRAME_HEADER_SIZE, &id),
			  DBWIRE_MAX_PARAMS + 1);
	ck_assert_uint_eq(id, 7);
	free(f);
	/* Other bodies have none, cut or not. */
	uint8_t ping[] = {0x08, 0x01, 0x5a, 0x05, 0x0a, 0x03, 1, 2, 3};
	ck_assert_uint_eq(dbwire_request_params_prefix(sizeof(ping) - 2, ping, &id), 0);
}
END_TEST

/* Commits `n` bytes of `src` to `r` in reads of at most `step`. */
static void feed(frame_reader *r, const uint8_t *src, size_t n, size_t step)
{
	while (n > 0) {
		uint8_t *p;
		size_t room;
		ck_assert_int_eq(frame_reader_space(r, &p, &room), 0);
		size_t k = n < room ? n : room;
		if (k > step)
			k = step;
		memcpy(p, src, k);
		frame_reader_commit(r, k);
		src += k;
		n -= k;
	}
}

START_TEST(discarded_frame_is_skipped_and_the_next_read)
{
	/* A 200,000-byte frame, then a 5-byte one, as the socket brings
	 * them. */
	size_t big = 200000;
	uint8_t *wire = malloc(2 * FRAME_HEADER_SIZE + big + 5);
	ck_assert_ptr_nonnull(wire);
	frame_put_header(wire, (uint32_t)big);
	memset(wire + FRAME_HEADER_SIZE, 0xee, big);
	frame_put_header(wire + FRAME_HEADER_SIZE + big, 5);
	memcpy(wire + 2 * FRAME_HEADER_SIZE + big, "hello", 5);
	size_t total = 2 * FRAME_HEADER_SIZE + big + 5;

	size_t steps[] = {3, 4096, 65536, 1u << 20};
	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		frame_reader r;
		frame_reader_init(&r, 1u << 20);
		size_t first = 80000;
		/* (Reads of a byte while a frame grows would realloc per
		 * byte: slow under ASan, and not what is tested here.) */
		feed(&r, wire, first, 4096);
		const uint8_t *p;
		size_t have, len;
		uint32_t declared;
		ck_assert_int_eq(frame_reader_partial(&r, &p, &have, &declared), 1);
		ck_assert_uint_eq(have, first - FRAME_HEADER_SIZE);
		ck_assert_uint_eq(declared, big);
		frame_reader_discard(&r);
		/* Still inside the frame (its stall deadline runs), holding
		 * about a read chunk, not the frame. */
		ck_assert_uint_eq(frame_reader_pending(&r), big - have);
		ck_assert_uint_le(r.cap, 2 * FRAME_READ_CHUNK);
		ck_assert_int_eq(frame_reader_next(&r, &p, &len), 0);
		feed(&r, wire + first, total - first, steps[s]);
		ck_assert_uint_le(r.cap, 2 * FRAME_READ_CHUNK);
		ck_assert_int_eq(frame_reader_next(&r, &p, &len), 1);
		ck_assert_uint_eq(len, 5);
		ck_assert_int_eq(memcmp(p, "hello", 5), 0);
		ck_assert_uint_eq(frame_reader_pending(&r), 0);
		/* Nothing to discard between frames. */
		frame_reader_discard(&r);
		ck_assert_uint_eq(frame_reader_pending(&r), 0);
		frame_reader_free(&r);
	}
	free(wire);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {prefix_count_is_a_lower_bound_of_the_whole,
				discarded_frame_is_skipped_and_the_next_read, NULL};
	return th_suite("frame_discard", "core", 60, tests);
}

TH_MAIN(suite)
