/*
 * listwire: a listing's reply built from packed entries (head + entries)
 * is the frame protobuf-c packs, byte for byte, over the values each
 * field may take (zeros left out, varints of every length, negative
 * times), each entry's name reads back, and a frame past the limit is
 * refused.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "listwire.h"
#include "porter.pb-c.h"
#include "porter_errors.h"
#include "thmain.h"
#include "thrnd.h"

START_TEST(frame_is_what_protobuf_c_packs)
{
	enum { MAX_N = 300 };
	th_rnd_seed(0x2545f4914f6cdd1dull);
	static Porter__V1__FileEntry ents[MAX_N];
	static Porter__V1__FileEntry *ptrs[MAX_N];
	static char names[MAX_N][300];
	static uint8_t body[MAX_N * 340];
	for (int k = 0; k < 500; k++) {
		size_t n = (size_t)(k % 7 == 0 ? 0 : th_rnd() % MAX_N);
		uint8_t *p = body;
		for (size_t i = 0; i < n; i++) {
			porter__v1__file_entry__init(&ents[i]);
			size_t nl = 1 + (size_t)(th_rnd() % (i % 5 == 0 ? 255 : 20));
			for (size_t c = 0; c < nl; c++)
				names[i][c] = (char)(1 + th_rnd() % 255);
			names[i][nl] = '\0';
			ents[i].name = names[i];
			ents[i].type = (int)(th_rnd() % 8);
			ents[i].size = th_rnd_value();
			ents[i].mtime_ns = (int64_t)th_rnd_value();
			ptrs[i] = &ents[i];
			size_t es = listwire_entry_size(nl, ents[i].type, ents[i].size,
							ents[i].mtime_ns);
			uint8_t *end = listwire_put_entry(p, names[i], nl, ents[i].type,
							  ents[i].size, ents[i].mtime_ns);
			ck_assert_uint_eq((size_t)(end - p), es);
			size_t got_nl, got_el;
			const uint8_t *got = listwire_entry_name(p, &got_nl, &got_el);
			ck_assert_uint_eq(got_nl, nl);
			ck_assert_uint_eq(got_el, es);
			ck_assert_int_eq(memcmp(got, names[i], nl), 0);
			p = end;
		}
		Porter__V1__Response r = PORTER__V1__RESPONSE__INIT;
		Porter__V1__FileListReply l = PORTER__V1__FILE_LIST_REPLY__INIT;
		r.id = th_rnd_value();
		l.n_entries = n;
		l.entries = ptrs;
		r.body_case = PORTER__V1__RESPONSE__BODY_FILE_LIST;
		r.file_list = &l;
		size_t bl = (size_t)(p - body);
		uint8_t head[LISTWIRE_HEAD_MAX];
		size_t hl = 0;
		ck_assert_int_eq(listwire_frame(r.id, bl, 1u << 30, head, &hl), 0);
		size_t want = protobuf_c_message_get_packed_size(&r.base);
		uint8_t *pb = malloc(want + 1);
		ck_assert_ptr_nonnull(pb);
		protobuf_c_message_pack(&r.base, pb);
		ck_assert_uint_eq(hl + bl, FRAME_HEADER_SIZE + want);
		ck_assert_uint_le(want - bl, LISTWIRE_OVERHEAD);
		ck_assert_uint_eq(frame_get_header(head), want);
		ck_assert_int_eq(memcmp(head + FRAME_HEADER_SIZE, pb, hl - FRAME_HEADER_SIZE), 0);
		ck_assert_int_eq(memcmp(pb + hl - FRAME_HEADER_SIZE, body, bl), 0);
		free(pb);
	}
}
END_TEST

START_TEST(frame_past_the_limit_is_refused)
{
	uint8_t head[LISTWIRE_HEAD_MAX];
	size_t hl = 0;
	ck_assert_int_eq(listwire_known(), 1);
	ck_assert_int_eq(listwire_frame(1, 1000, 1000, head, &hl), PORTER_E_TOO_LARGE);
	ck_assert_int_eq(listwire_frame(1, 1000 - LISTWIRE_OVERHEAD, 1000, head, &hl), 0);
	ck_assert_int_eq(listwire_frame(UINT64_MAX, 0, 1000, head, &hl), 0);
	ck_assert_uint_le(hl, LISTWIRE_HEAD_MAX);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {frame_is_what_protobuf_c_packs, frame_past_the_limit_is_refused,
				NULL};
	return th_suite("listwire", "core", 60, tests);
}

TH_MAIN(suite)
