/*
 * A 1 GiB file through porterd and back, streamed both ways, with the
 * resident memory of both processes sampled throughout: neither may hold
 * the file.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

#define SIZE (1ull << 30)
#define CHUNK (1u << 20)
/* Bounds far below the file (1 GiB) but far above a few chunks in flight. */
#define DAEMON_RSS_MAX_KIB (96 * 1024)
#define CLIENT_RSS_GROWTH_MAX_KIB (64 * 1024)

static void fill(uint8_t *buf, uint64_t off, size_t n)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t x = (off + i) * 0x9e3779b97f4a7c15ull;
		memcpy(buf + i, &x, 8);
	}
}

START_TEST(test_1gib_round_trip)
{
	th_daemon d;
	char root[64] = "/tmp/porter-large-XXXXXX", roots[128];
	ck_assert_ptr_nonnull(mkdtemp(root));
	snprintf(roots, sizeof(roots), "big=%s", root);
	const char *args[] = {"--file-roots", roots, NULL};
	ck_assert_int_eq(th_daemon_start(&d, args), 0);

	uint8_t *buf = malloc(CHUNK), *want = malloc(CHUNK);
	long client0 = th_rss_kib(getpid());
	long dmax = 0, cmax = 0;
	long long t0 = th_now_ms();

	porter_file_writer *wr = NULL;
	ck_assert_int_eq(porter_file_writer_open("big", "g", PORTER_FILE_ATOMIC, 0, 0, 10000, &wr),
			 0);
	for (uint64_t off = 0; off < SIZE; off += CHUNK) {
		fill(buf, off, CHUNK);
		int rc = porter_file_writer_write(wr, buf, CHUNK, 0, 10000);
		ck_assert_msg(rc == 0, "chunk at %llu: %s", (unsigned long long)off,
			      porter_last_error_message());
		if ((off / CHUNK) % 32 == 0) {
			long dr = th_rss_kib(d.pid), cr = th_rss_kib(getpid());
			dmax = dr > dmax ? dr : dmax;
			cmax = cr > cmax ? cr : cmax;
		}
	}
	ck_assert_int_eq(porter_file_writer_commit(wr, 0, 60000), 0);
	porter_file_writer_close(wr, 1000);
	long long t1 = th_now_ms();

	porter_file_info fi = PORTER_FILE_INFO_INIT;
	ck_assert_int_eq(porter_file_stat("big", "g", 0, 10000, &fi), 0);
	ck_assert_uint_eq(fi.size, SIZE);

	porter_file_reader *rd = NULL;
	ck_assert_int_eq(porter_file_reader_open("big", "g", 0, 0, 0, 0, 10000, &rd), 0);
	uint64_t off = 0;
	const void *p;
	size_t n;
	int rc, k = 0;
	while ((rc = porter_file_reader_read(rd, 0, 10000, &p, &n)) == 1) {
		/* Chunks need not align with what was written. */
		size_t done = 0;
		while (done < n) {
			uint64_t at = off + done;
			uint64_t base = at - at % CHUNK;
			size_t in = (size_t)(at - base);
			size_t take = CHUNK - in < n - done ? CHUNK - in : n - done;
			fill(want, base, CHUNK);
			ck_assert_msg(memcmp(p + done, want + in, take) == 0,
				      "content differs at %llu", (unsigned long long)at);
			done += take;
		}
		off += n;
		if (++k % 32 == 0) {
			long dr = th_rss_kib(d.pid), cr = th_rss_kib(getpid());
			dmax = dr > dmax ? dr : dmax;
			cmax = cr > cmax ? cr : cmax;
		}
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(off, SIZE);
	porter_file_reader_close(rd, 1000);
	long long t2 = th_now_ms();

	fprintf(stderr,
		"1 GiB: write %.0f MiB/s, read %.0f MiB/s; peak RSS daemon %ld KiB, client %ld KiB (start %ld KiB)\n",
		1024.0 * 1000 / (double)(t1 - t0 + 1), 1024.0 * 1000 / (double)(t2 - t1 + 1), dmax,
		cmax, client0);
	ck_assert_int_gt(dmax, 0);
	ck_assert_msg(dmax < DAEMON_RSS_MAX_KIB, "daemon RSS %ld KiB", dmax);
	ck_assert_msg(cmax - client0 < CLIENT_RSS_GROWTH_MAX_KIB, "client RSS grew to %ld KiB",
		      cmax);

	ck_assert_int_eq(porter_file_delete("big", "g", 0, 0, 10000), 0);
	porter_thread_disconnect();
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
	th_rm_rf(root);
	free(buf);
	free(want);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {test_1gib_round_trip, NULL};
	return th_suite("files_large", "large", 240, tests);
}

TH_MAIN(suite)
