/*
 * Large frames cost porterd's loop little (issue 16).
 *
 * A 16 MiB frame of some 8 million empty query parameters cannot be valid
 * (PostgreSQL takes at most 65,535), but porterd read all of it into a
 * buffer of its size (allocated, faulted in and freed on the loop) before
 * refusing it, delaying every other connection of the worker. It now looks
 * at the first 256 KiB of a large frame, refuses such a query at once and
 * throws the rest of the frame away as it arrives. A large frame that may
 * be valid is read in turns of about 1 MiB, and its stall deadline still
 * counts from its first byte.
 */
#include <check.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "porter.h"
#include "porter.pb-c.h"
#include "rawc.h"

/* Under a sanitizer the daemon's memory figures measure the sanitizer. */
#ifdef PORTER_SANITIZED
#define HWM_BOUND(x) ((void)(x))
#else
#define HWM_BOUND(x) ck_assert(x)
#endif

static th_daemon d;

/* Writes all `n` bytes of `p` to `fd` (blocking). 0 or -1. */
static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* The next response is request `id`'s, with `status`. */
static void expect_reply(int fd, frame_reader *rd, uint64_t id, int status, const char *what)
{
	Porter__V1__Response *resp = th_rc_recv(fd, rd, 10000);
	ck_assert_msg(resp != NULL, "%s: no reply within 10 s", what);
	ck_assert_msg(resp->id == id && resp->status == status,
		      "%s: reply to %llu with %d (%s), wanted %llu with %d", what,
		      (unsigned long long)resp->id, resp->status,
		      resp->message ? resp->message : "", (unsigned long long)id, status);
	porter__v1__response__free_unpacked(resp, NULL);
}

START_TEST(parameter_flood_refused_from_its_first_bytes)
{
	ck_assert_int_eq(th_daemon_start(&d, NULL), 0);
	frame_reader rd;
	frame_reader_init(&rd, 1u << 20);
	int fd = th_rc_open(d.socket, &rd, 10000, NULL);
	ck_assert_int_ge(fd, 0);
	long hwm0 = th_hwm_kib(d.pid);

	/* 8 million empty parameters: 16,000,000 bytes, within max-frame. */
	size_t len, len2;
	uint8_t *frame = th_rc_params_frame("host=/nonexistent", 77, 8000000, &len);
	uint8_t *frame2 = th_rc_params_frame("host=/nonexistent", 79, 8000000, &len2);
	ck_assert(frame != NULL && frame2 != NULL);
	ck_assert_uint_le(len, FRAME_HEADER_SIZE + (16u << 20));

	/* Its first 512 KiB are enough for porterd to answer: before, the
	 * answer came only once all 16 MB were in. */
	size_t head = 512 * 1024;
	ck_assert_int_eq(write_all(fd, frame, head), 0);
	expect_reply(fd, &rd, 77, PORTER_E_INVAL, "a frame of 8 million parameters, half a MiB in");
	/* The rest is thrown away as it comes, and the connection reads the
	 * frames after it as usual: a second such frame whole, then a ping. */
	ck_assert_int_eq(write_all(fd, frame + head, len - head), 0);
	ck_assert_int_eq(write_all(fd, frame2, len2), 0);
	expect_reply(fd, &rd, 79, PORTER_E_INVAL, "a second frame of 8 million parameters");
	ck_assert_int_eq(th_rc_ping(fd, 80, 1000, 0), 0);
	expect_reply(fd, &rd, 80, 0, "a ping after them");
	long hwm1 = th_hwm_kib(d.pid);
	fprintf(stderr, "two 16 MB parameter frames refused: porterd peak RSS %ld -> %ld KiB\n",
		hwm0, hwm1);
	/* Neither frame was held whole (16 MB each before). */
	HWM_BOUND(hwm1 - hwm0 < 8 * 1024);

	free(frame);
	free(frame2);
	frame_reader_free(&rd);
	close(fd);
	th_stop_clean(&d);
}
END_TEST

START_TEST(large_frames_read_in_turns_keep_their_deadline)
{
	const char *args[] = {"--frame-timeout", "2000", NULL};
	ck_assert_int_eq(th_daemon_start(&d, args), 0);
	frame_reader rd;
	frame_reader_init(&rd, 8u << 20);
	int fd = th_rc_open(d.socket, &rd, 10000, NULL);
	ck_assert_int_ge(fd, 0);

	/* A valid 6 MiB frame, read in several turns, is answered. */
	ck_assert_int_eq(th_rc_ping(fd, 5, 6u << 20, 0), 0);
	Porter__V1__Response *resp = th_rc_recv(fd, &rd, 20000);
	ck_assert(resp != NULL);
	ck_assert_int_eq(resp->status, 0);
	ck_assert(resp->ping != NULL);
	ck_assert_uint_eq(resp->ping->payload.len, 6u << 20);
	porter__v1__response__free_unpacked(resp, NULL);

	/* 3 of a 4 MiB frame's MiB, then nothing: the stall deadline runs
	 * from its first byte across the turns it was read in. */
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Ping p = PORTER__V1__PING__INIT;
	uint8_t *zeros = calloc(1, 4u << 20);
	ck_assert(zeros != NULL);
	p.payload.data = zeros;
	p.payload.len = 4u << 20;
	req.id = 6;
	req.body_case = PORTER__V1__REQUEST__BODY_PING;
	req.ping = &p;
	uint8_t *frame;
	size_t len;
	ck_assert_int_eq(frame_pack(&req.base, 16u << 20, &frame, &len), 0);
	long long t0 = th_now_ms();
	ck_assert_int_eq(write_all(fd, frame, 3u << 20), 0);
	resp = th_rc_recv(fd, &rd, 20000);
	long long took = th_now_ms() - t0;
	ck_assert_msg(resp == NULL, "a reply to a frame never finished");
	fprintf(stderr, "a frame stalled 3 MiB in: connection closed after %lld ms\n", took);
	/* Closed (EOF before the 20 s wait ran out), not before its 2 s. */
	ck_assert_msg(took >= 1900 && took < 15000, "closed after %lld ms (frame-timeout 2000)",
		      took);

	free(zeros);
	free(frame);
	frame_reader_free(&rd);
	close(fd);
	th_stop_clean(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {parameter_flood_refused_from_its_first_bytes,
				large_frames_read_in_turns_keep_their_deadline, NULL};
	return th_suite("big_frames", "big_frames", 120, tests);
}

TH_MAIN(suite)
