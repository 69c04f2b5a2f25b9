/*
 * Integration tests of PostgreSQL through porterd: a real porterd and the
 * real PostgreSQL 15 that the `pg` ctest fixture (tests/support/pg.sh)
 * started; its connection strings are read from $PORTER_PG_STATE.
 *
 * This suite: cursors. A million rows in bounded memory, and a cursor
 * of a session read from other threads.
 * The suites of this family: test_db (queries), test_db_pool (pooled
 * connections), test_db_stream (cursors), test_db_session (sessions).
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

static th_daemon d;
static char conninfo[512]; /* Unix socket, superuser, trust */

static void start(const char *const *extra)
{
	th_pg_file("conninfo", conninfo, sizeof(conninfo));
	const char *def[] = {"--workers", "4", "--db-session-grace", "500", NULL};
	ck_assert_msg(th_daemon_start(&d, extra ? extra : def) == 0, "porterd did not start");
}

/* ---- streaming ---- */

START_TEST(stream_million_rows_bounded_memory)
{
	/* The client's own growth is checked in the plain build only: TSan's
	 * runtime holds on to freed memory too (33 MiB here). */
	int check_client = 1;
#ifdef __SANITIZE_THREAD__
	check_client = 0;
#endif
#ifdef __SANITIZE_ADDRESS__
	/* ASan keeps freed memory in a quarantine (256 MiB by default),
	 * which would read as growth here. The setting reaches porterd, which
	 * starts after it; this process's runtime read its options at start. */
	check_client = 0;
	char asan[512];
	const char *prev = getenv("ASAN_OPTIONS");
	snprintf(asan, sizeof(asan), "%s%squarantine_size_mb=8", prev ? prev : "", prev ? ":" : "");
	setenv("ASAN_OPTIONS", asan, 1);
#endif
	start(NULL);
	porter_db_cursor *cur = NULL;
	/* Warm up so the baseline includes the pool and buffers. */
	porter_db_result_free(th_db_ok(0, conninfo, "SELECT 1"));
	long base = th_rss_kib(d.pid);
	ck_assert(base > 0);
	/* This process is the client: its chunks (each read into the thread's
	 * scratch arena, then copied into a result) must not pile up either.
	 * It grows by well under 1 MiB; keeping every chunk would be ~50 MiB. */
	long cbase = th_rss_kib(getpid()), cpeak = cbase;
	ck_assert(cbase > 0);
	int rc = porter_db_cursor_open(
		0, conninfo, "SELECT g, repeat('x', 40) || g FROM generate_series(1, 1000000) g",
		NULL, 0, 2000, 0, 0, 20000, &cur);
	ck_assert_msg(rc == 0, "%s", porter_last_error_message());
	long long rows = 0, sum = 0;
	long peak = base;
	int chunks = 0, nf = -1;
	porter_db_result *ch;
	while ((rc = porter_db_cursor_read(cur, 0, 20000, &ch)) == 1) {
		if (nf < 0) {
			nf = porter_db_nfields(ch);
			ck_assert_str_eq(porter_db_fname(ch, 0), "g");
		}
		ck_assert_int_eq(porter_db_nfields(ch), 2);
		ck_assert_int_le(porter_db_ntuples(ch), 2000);
		for (int i = 0; i < porter_db_ntuples(ch); i++)
			sum += atol(porter_db_getvalue(ch, i, 0));
		rows += porter_db_ntuples(ch);
		porter_db_result_free(ch);
		if (++chunks % 50 == 0) {
			long rss = th_rss_kib(d.pid), crss = th_rss_kib(getpid());
			if (rss > peak)
				peak = rss;
			if (crss > cpeak)
				cpeak = crss;
		}
	}
	ck_assert_msg(rc == 0, "%s: %s", porter_error_name(rc), porter_last_error_message());
	porter_db_cursor_close(cur, 1000);
	ck_assert_int_eq(rows, 1000000);
	ck_assert_int_eq(sum, 500000500000LL);
	fprintf(stderr,
		"stream: %d chunks, porterd RSS %ld KiB -> peak %ld KiB, client %ld -> %ld KiB\n",
		chunks, base, peak, cbase, cpeak);
	ck_assert_msg(peak - base < 64 * 1024, "porterd grew by %ld KiB", peak - base);
	ck_assert_msg(!check_client || cpeak - cbase < 16 * 1024, "the client grew by %ld KiB",
		      cpeak - cbase);

	/* The largest chunk size allowed is still bounded in bytes. */
	rc = porter_db_cursor_open(0, conninfo, "SELECT g FROM generate_series(1, 300000) g", NULL,
				   0, 100000, 0, 0, 20000, &cur);
	ck_assert_int_eq(rc, 0);
	rows = 0;
	while ((rc = porter_db_cursor_read(cur, 0, 20000, &ch)) == 1) {
		rows += porter_db_ntuples(ch);
		porter_db_result_free(ch);
		long rss = th_rss_kib(d.pid), crss = th_rss_kib(getpid());
		if (rss > peak)
			peak = rss;
		if (crss > cpeak)
			cpeak = crss;
	}
	ck_assert_int_eq(rc, 0);
	porter_db_cursor_close(cur, 1000);
	ck_assert_int_eq(rows, 300000);
	ck_assert_msg(peak - base < 64 * 1024, "porterd grew by %ld KiB", peak - base);
	ck_assert_msg(!check_client || cpeak - cbase < 16 * 1024, "the client grew by %ld KiB",
		      cpeak - cbase);

	/* A cursor abandoned early: the query is cancelled, the pool goes on. */
	rc = porter_db_cursor_open(0, conninfo, "SELECT g FROM generate_series(1, 10000000) g",
				   NULL, 0, 100, 0, 0, 10000, &cur);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(porter_db_cursor_read(cur, 0, 5000, &ch), 1);
	porter_db_result_free(ch);
	ck_assert_int_eq(porter_db_cursor_read(cur, 0, 5000, &ch), 1);
	ck_assert_int_eq(porter_db_ntuples(ch), 100);
	ck_assert_str_eq(porter_db_getvalue(ch, 0, 0), "101");
	porter_db_result_free(ch);
	porter_db_cursor_close(cur, 1000);
	ck_assert_int_eq(th_db_long(0, conninfo, "SELECT 9"), 9);
	th_stop_clean(&d);
}
END_TEST

static porter_db_cursor *shared_cursor;

static void *fetch_main(void *arg)
{
	long *sum = arg;
	porter_db_result *ch = NULL;
	long rc = porter_db_cursor_read(shared_cursor, 0, 5000, &ch);
	for (int i = 0; rc == 1 && i < porter_db_ntuples(ch); i++)
		*sum += atol(porter_db_getvalue(ch, i, 0));
	porter_db_result_free(ch);
	porter_thread_disconnect();
	return (void *)rc;
}

START_TEST(stream_on_session_fetched_from_other_threads)
{
	start(NULL);
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &s), 0);
	porter_db_param p = {"1000", 4, 0, 0};
	int rc = porter_db_cursor_open(s, NULL, "SELECT g FROM generate_series(1, $1::int) g", &p,
				       1, 100, 0, 0, 5000, &shared_cursor);
	ck_assert_int_eq(rc, 0);
	/* Every chunk pulled by a new thread, i.e. a new connection that
	 * may land on any worker. */
	long sum = 0;
	int chunks = 0;
	for (;;) {
		pthread_t t;
		void *ret;
		ck_assert_int_eq(pthread_create(&t, NULL, fetch_main, &sum), 0);
		pthread_join(t, &ret);
		if ((long)ret == 0)
			break;
		ck_assert_int_eq((long)ret, 1);
		chunks++;
	}
	porter_db_cursor_close(shared_cursor, 1000);
	ck_assert_int_eq(sum, 500500);
	ck_assert_int_ge(chunks, 10);
	/* The session is free again. */
	ck_assert_int_eq(th_db_long(s, NULL, "SELECT 11"), 11);

	/* A stream whose client closes the cursor early leaves the session
	 * usable. */
	rc = porter_db_cursor_open(s, NULL, "SELECT g FROM generate_series(1, 5000000) g", NULL, 0,
				   50, 0, 0, 5000, &shared_cursor);
	ck_assert_int_eq(rc, 0);
	porter_db_cursor_close(shared_cursor, 1000);
	ck_assert_int_eq(th_db_long(s, NULL, "SELECT 12"), 12);
	porter_db_close(s, 0, 5000);
	th_stop_clean(&d);
}
END_TEST

/* Under a small max-frame a chunk ends at the frame's byte bound, not at
 * 4 MiB: three rows of 900 KB stream within 2 MiB frames (a chunk of all
 * three was refused whole as too large), and a single row over the frame
 * is a clear PORTER_E_TOO_LARGE, whole or streamed. */
START_TEST(stream_chunks_fit_a_small_frame)
{
	const char *extra[] = {"--max-frame", "2097152", NULL};
	start(extra);
	porter_db_cursor *cur = NULL;
	porter_db_result *ch = NULL;
	int rc = porter_db_cursor_open(0, conninfo,
				       "SELECT repeat('x', 900000) FROM generate_series(1, 3)",
				       NULL, 0, 100, 0, 0, 20000, &cur);
	ck_assert_int_eq(rc, 0);
	int rows = 0, chunks = 0;
	while ((rc = porter_db_cursor_read(cur, 0, 20000, &ch)) == 1) {
		for (int i = 0; i < porter_db_ntuples(ch); i++)
			ck_assert_int_eq(porter_db_getlength(ch, i, 0), 900000);
		rows += porter_db_ntuples(ch);
		chunks++;
		porter_db_result_free(ch);
	}
	ck_assert_msg(rc == 0, "%s: %s", porter_error_name(rc), porter_last_error_message());
	ck_assert_int_eq(rows, 3);
	ck_assert_int_ge(chunks, 2);
	porter_db_cursor_close(cur, 1000);

	porter_db_result *r = NULL;
	rc = porter_db_query(0, conninfo, "SELECT repeat('x', 1500000), repeat('y', 1500000)", NULL,
			     0, 0, 20000, &r);
	ck_assert_int_eq(rc, PORTER_E_TOO_LARGE);
	porter_db_result_free(r);
	rc = porter_db_cursor_open(0, conninfo, "SELECT repeat('x', 3000000)", NULL, 0, 100, 0, 0,
				   20000, &cur);
	if (rc == 0) {
		rc = porter_db_cursor_read(cur, 0, 20000, &ch);
		porter_db_result_free(ch);
		porter_db_cursor_close(cur, 1000);
	}
	ck_assert_int_eq(rc, PORTER_E_TOO_LARGE);
	/* porterd serves on. */
	ck_assert_int_eq(th_db_long(0, conninfo, "SELECT 7"), 7);
	th_stop_clean(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {stream_million_rows_bounded_memory,
				stream_on_session_fetched_from_other_threads,
				stream_chunks_fit_a_small_frame, NULL};
	return th_suite("db_stream", "stream", 120, tests);
}

TH_MAIN(suite)
