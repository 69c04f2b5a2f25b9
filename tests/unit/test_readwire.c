/*
 * readwire: the frame of a file read reply framed around its chunk is the
 * one protobuf-c packs, byte for byte (head + data + tail), over the
 * values each field may take (zeros left out, varints of every length,
 * status codes negative), and what it does not write is declined.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "porter_errors.h"
#include "readwire.h"
#include "thmain.h"
#include "thrnd.h"

START_TEST(frame_is_what_protobuf_c_packs)
{
	static uint8_t data[300000];
	th_rnd_seed(0x9e3779b97f4a7c15ull);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	for (int k = 0; k < 2000; k++) {
		Porter__V1__Response r = PORTER__V1__RESPONSE__INIT;
		Porter__V1__FileReadReply f = PORTER__V1__FILE_READ_REPLY__INIT;
		r.id = th_rnd_value();
		r.status = k % 5 == 0 ? (int32_t)(th_rnd() % 40) - 30 : 0;
		r.more = (int)(th_rnd() % 2);
		f.data.data = data;
		f.data.len = 1 + (size_t)(th_rnd() % (k % 3 == 0 ? sizeof(data) : 200));
		f.offset = th_rnd_value();
		f.file_size = th_rnd_value();
		f.stream_id = th_rnd_value();
		f.fd_passed = (int)(th_rnd() % 3 == 0);
		f.chunk_size = (uint32_t)th_rnd_value();
		r.body_case = PORTER__V1__RESPONSE__BODY_FILE_READ;
		r.file_read = &f;

		uint8_t head[READWIRE_HEAD_MAX], tail[READWIRE_TAIL_MAX];
		size_t hl = 0, tl = 0;
		ck_assert_int_eq(readwire_frame(&r, 1u << 30, head, &hl, tail, &tl), 0);
		size_t want = protobuf_c_message_get_packed_size(&r.base);
		uint8_t *pb = malloc(want);
		ck_assert_ptr_nonnull(pb);
		protobuf_c_message_pack(&r.base, pb);
		ck_assert_uint_eq(hl + f.data.len + tl, FRAME_HEADER_SIZE + want);
		ck_assert_uint_eq(frame_get_header(head), want);
		ck_assert_int_eq(memcmp(head + FRAME_HEADER_SIZE, pb, hl - FRAME_HEADER_SIZE), 0);
		ck_assert_int_eq(memcmp(pb + hl - FRAME_HEADER_SIZE, data, f.data.len), 0);
		ck_assert_int_eq(memcmp(pb + hl - FRAME_HEADER_SIZE + f.data.len, tail, tl), 0);
		free(pb);
	}
}
END_TEST

START_TEST(declines_what_it_does_not_write)
{
	uint8_t data[8] = "abcdefg";
	uint8_t head[READWIRE_HEAD_MAX], tail[READWIRE_TAIL_MAX];
	size_t hl, tl;
	Porter__V1__Response r = PORTER__V1__RESPONSE__INIT;
	Porter__V1__FileReadReply f = PORTER__V1__FILE_READ_REPLY__INIT;
	Porter__V1__ErrorDetail e = PORTER__V1__ERROR_DETAIL__INIT;
	Porter__V1__PingReply ping = PORTER__V1__PING_REPLY__INIT;
	r.body_case = PORTER__V1__RESPONSE__BODY_FILE_READ;
	r.file_read = &f;
	/* Empty data: protobuf-c leaves the field out. */
	ck_assert_int_eq(readwire_frame(&r, 1u << 20, head, &hl, tail, &tl), 1);
	f.data.data = data;
	f.data.len = sizeof(data);
	ck_assert_int_eq(readwire_frame(&r, 1u << 20, head, &hl, tail, &tl), 0);
	r.message = "something";
	ck_assert_int_eq(readwire_frame(&r, 1u << 20, head, &hl, tail, &tl), 1);
	r.message = "";
	r.error = &e;
	ck_assert_int_eq(readwire_frame(&r, 1u << 20, head, &hl, tail, &tl), 1);
	r.error = NULL;
	r.body_case = PORTER__V1__RESPONSE__BODY_PING;
	r.ping = &ping;
	ck_assert_int_eq(readwire_frame(&r, 1u << 20, head, &hl, tail, &tl), 1);
	r.body_case = PORTER__V1__RESPONSE__BODY_FILE_READ;
	r.file_read = &f;
	/* Past the frame limit: the caller answers with the error. */
	ck_assert_int_eq(readwire_frame(&r, 8, head, &hl, tail, &tl), PORTER_E_TOO_LARGE);
	ck_assert_int_eq(readwire_frame(&r, 64, head, &hl, tail, &tl), 0);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {frame_is_what_protobuf_c_packs, declines_what_it_does_not_write,
				NULL};
	return th_suite("readwire", "core", 60, tests);
}

TH_MAIN(suite)
