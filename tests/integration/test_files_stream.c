/*
 * Integration tests of file operations through porterd, reads and writes
 * both by descriptor (the default) and as bytes over the socket
 * (file-pass-fd false); the fixture is files_fixture.c.
 *
 * This suite: concurrent atomic writers, streams and their clean-up when a
 * client goes, and deadlines and cancels of requests queued for the pool.
 * The suites of this family: test_files (operations), test_files_errors
 * (errno mapping), test_files_confine (confinement), test_files_stream
 * (streams and concurrency).
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files_fixture.h"
#include "harness.h"
#include "porter.h"

/* ------------------------------------------------- concurrency, streams */

#define WRITERS 6
#define ROUNDS 15
#define WSIZE (300 * 1024)

static void *writer_main(void *arg)
{
	long id = (long)arg;
	char *buf = malloc(WSIZE);
	memset(buf, 'A' + (int)id, WSIZE);
	long fails = 0;
	for (int i = 0; i < ROUNDS; i++)
		if (porter_file_write("main", "shared", buf, WSIZE, PORTER_FILE_ATOMIC, 0, 0, T) !=
		    0)
			fails++;
	free(buf);
	porter_thread_disconnect();
	return (void *)fails;
}

static atomic_int readers_stop;

static void *reader_main(void *arg)
{
	(void)arg;
	long bad = 0;
	while (!atomic_load(&readers_stop)) {
		porter_bytes *b = NULL;
		if (porter_file_read("main", "shared", 0, 0, 0, T, &b) != 0) {
			bad++;
			continue;
		}
		const uint8_t *got = b->data;
		if (b->len != WSIZE)
			bad++;
		else
			for (size_t i = 1; i < b->len; i++)
				if (got[i] != got[0]) {
					bad++;
					break;
				}
		porter_bytes_free(b);
	}
	porter_thread_disconnect();
	return (void *)bad;
}

START_TEST(test_concurrent_atomic_writers)
{
	char *init = malloc(WSIZE);
	memset(init, 'z', WSIZE);
	ck_assert_int_eq(
		porter_file_write("main", "shared", init, WSIZE, PORTER_FILE_ATOMIC, 0, 0, T), 0);
	free(init);
	pthread_t w[WRITERS], r;
	atomic_store(&readers_stop, 0);
	pthread_create(&r, NULL, reader_main, NULL);
	for (long i = 0; i < WRITERS; i++)
		pthread_create(&w[i], NULL, writer_main, (void *)i);
	for (int i = 0; i < WRITERS; i++) {
		void *fails;
		pthread_join(w[i], &fails);
		ck_assert_int_eq((long)fails, 0);
	}
	atomic_store(&readers_stop, 1);
	void *bad;
	pthread_join(r, &bad);
	ck_assert_msg((long)bad == 0, "a reader saw %ld torn or short versions", (long)bad);

	porter_bytes *b = NULL;
	ck_assert_int_eq(porter_file_read("main", "shared", 0, 0, 0, T, &b), 0);
	ck_assert_uint_eq(b->len, WSIZE);
	const uint8_t *got = b->data;
	ck_assert(got[0] >= 'A' && got[0] < 'A' + WRITERS);
	for (size_t i = 1; i < b->len; i++)
		ck_assert(got[i] == got[0]);
	porter_bytes_free(b);
	ck_assert_uint_eq(th_dir_entries(root), 1); /* no temp files left */
}
END_TEST

START_TEST(test_streams)
{
	/* 1 MiB + 3 bytes through a 64 KiB chunk: many pulls. */
	size_t n = (1u << 20) + 3;
	uint8_t *data = malloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 11));
	porter_file_writer *wr = NULL;
	ck_assert_int_eq(porter_file_writer_open("main", "s", PORTER_FILE_ATOMIC, 0, 0, T, &wr), 0);
	for (size_t off = 0; off < n; off += 100000)
		ck_assert_int_eq(porter_file_writer_write(
					 wr, data + off, n - off < 100000 ? n - off : 100000, 0, T),
				 0);
	/* Nothing at the target until the commit. */
	porter_file_info fi = PORTER_FILE_INFO_INIT;
	ck_assert_int_eq(porter_file_stat("main", "s", 0, T, &fi), PORTER_E_FILE_NOT_FOUND);
	ck_assert_int_eq(porter_file_writer_commit(wr, 0, T), 0);
	porter_file_writer_close(wr, 1000);
	expect_content("main", "s", data, n);

	porter_file_reader *rd = NULL;
	ck_assert_int_eq(porter_file_reader_open("main", "s", 10, 0, 0, 0, T, &rd), 0);
	ck_assert_uint_eq(porter_file_reader_size(rd), n);
	size_t got = 0, chunks = 0;
	const void *p;
	size_t len;
	int rc;
	/* Chunks of the daemon's file-chunk-size, also when the reader
	 * reads them from a passed descriptor itself. */
	while ((rc = porter_file_reader_read(rd, 0, T, &p, &len)) == 1) {
		ck_assert(len <= 65536);
		ck_assert(memcmp(p, data + 10 + got, len) == 0);
		got += len;
		chunks++;
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(got, n - 10);
	ck_assert_uint_ge(chunks, 16);
	ck_assert_int_eq(porter_file_reader_read(rd, 0, T, &p, &len), 0);
	porter_file_reader_close(rd, 1000);

	/* A reader closed early, then the same file read again. */
	ck_assert_int_eq(porter_file_reader_open("main", "s", 0, 0, 0, 0, T, &rd), 0);
	ck_assert_int_eq(porter_file_reader_read(rd, 0, T, &p, &len), 1);
	porter_file_reader_close(rd, 1000);
	expect_content("main", "s", data, n);
	/* A large whole-file write goes in chunks (over 4 MiB). */
	size_t big = 5u << 20;
	uint8_t *bd = malloc(big);
	for (size_t i = 0; i < big; i++)
		bd[i] = (uint8_t)(i ^ (i >> 9));
	ck_assert_int_eq(porter_file_write("main", "big", bd, big, PORTER_FILE_ATOMIC, 0, 0, T), 0);
	expect_content("main", "big", bd, big);
	free(bd);
	free(data);
}
END_TEST

/* Waits until the daemon has seen every other connection of this process
 * close: a closed socket is noticed asynchronously, on its own worker. */
static void wait_only_one_conn(void)
{
	for (int i = 0; i < 200; i++) {
		porter_stats_snapshot *s = NULL;
		ck_assert_int_eq(porter_stats(0, T, &s), 0);
		uint64_t n = 0;
		for (size_t k = 0; k < porter_stats_workers(s); k++) {
			porter_worker_stats w = PORTER_WORKER_STATS_INIT;
			porter_stats_worker(s, k, &w);
			n += w.connections;
		}
		porter_stats_free(s);
		if (n == 1)
			return;
		usleep(10000);
	}
	ck_abort_msg("old connections were never closed");
}

typedef struct cross {
	porter_file_reader *rd;
	int rc;
} cross;

static void *pull_other_thread(void *arg)
{
	cross *c = arg;
	const void *p;
	size_t len;
	c->rc = porter_file_reader_read(c->rd, 0, T, &p, &len); /* the first, held */
	if (c->rc == 1)
		c->rc = porter_file_reader_read(c->rd, 0, T, &p, &len); /* a pull */
	porter_thread_disconnect();
	return NULL;
}

START_TEST(test_stream_cleanup_and_migration)
{
	char buf[200000];
	memset(buf, 'q', sizeof(buf));
	/* An atomic write abandoned by closing its connection leaves no
	 * trace: no target, no temp file. */
	porter_file_writer *wr = NULL;
	ck_assert_int_eq(
		porter_file_writer_open("main", "abandoned", PORTER_FILE_ATOMIC, 0, 0, T, &wr), 0);
	ck_assert_int_eq(porter_file_writer_write(wr, buf, sizeof(buf), 0, T), 0);
	porter_thread_disconnect();
	wait_only_one_conn();
	if (bytes_mode) {
		ck_assert_int_eq(porter_file_writer_write(wr, buf, 10, 0, T), PORTER_E_NOT_FOUND);
		ck_assert_int_eq(porter_file_writer_commit(wr, 0, T), PORTER_E_INVAL);
	} else {
		/* By descriptor the client still writes its (nameless) temp
		 * file, but porterd dropped the stream: nothing to commit. */
		ck_assert_int_eq(porter_file_writer_write(wr, buf, 10, 0, T), 0);
		ck_assert_int_eq(porter_file_writer_commit(wr, 0, T), PORTER_E_NOT_FOUND);
	}
	porter_file_writer_close(wr, 1000);
	ck_assert_uint_eq(th_dir_entries(root), 0);
	ck_assert_int_eq(th_fd_count(d.pid) >= 0, 1);

	/* Abandoned writers and readers do not leak descriptors. */
	ck_assert_int_eq(
		porter_file_write("main", "r", buf, sizeof(buf), PORTER_FILE_ATOMIC, 0, 0, T), 0);
	int fds0 = th_fd_count(d.pid);
	porter_file_reader *rds[20];
	porter_file_writer *wrs[20];
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(porter_file_reader_open("main", "r", 0, 0, 0, 0, T, &rds[i]), 0);
		ck_assert_int_eq(
			porter_file_writer_open("main", "w", PORTER_FILE_ATOMIC, 0, 0, T, &wrs[i]),
			0);
		porter_thread_disconnect(); /* the streams' connection goes */
	}
	/* Not closed through the library yet: the daemon cleans up by itself. */
	wait_only_one_conn();
	ck_assert_int_le(th_fd_count(d.pid), fds0 + 1);
	for (int i = 0; i < 20; i++) {
		porter_file_reader_close(rds[i], 1000);
		porter_file_writer_close(wrs[i], 1000);
	}
	ck_assert_uint_eq(th_dir_entries(root), 1);

	/* A connection may hold only so many streams (file-max-streams, 64). */
	porter_file_writer *ws[65];
	for (int i = 0; i < 64; i++)
		ck_assert_int_eq(
			porter_file_writer_open("main", "w", PORTER_FILE_ATOMIC, 0, 0, T, &ws[i]),
			0);
	ck_assert_int_eq(porter_file_writer_open("main", "w", PORTER_FILE_ATOMIC, 0, 0, T, &ws[64]),
			 PORTER_E_BUSY);
	for (int i = 0; i < 64; i++)
		porter_file_writer_close(ws[i], 1000);
	ck_assert_int_eq(porter_file_writer_open("main", "w", PORTER_FILE_ATOMIC, 0, 0, T, &ws[0]),
			 0);
	porter_file_writer_close(ws[0], 1000);

	/* A stream opened on one thread continues on another (isolates
	 * migrate between threads), while the opener's connection lives. */
	cross c = {0};
	ck_assert_int_eq(porter_file_reader_open("main", "r", 0, 0, 0, 0, T, &c.rd), 0);
	pthread_t th;
	pthread_create(&th, NULL, pull_other_thread, &c);
	pthread_join(th, NULL);
	ck_assert_int_eq(c.rc, 1);
	porter_file_reader_close(c.rd, 1000);
}
END_TEST

/* Keeps the daemon's only pool thread busy with directory listings. */
static atomic_int lister_stop;

static void *lister_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&lister_stop)) {
		porter_file_list *l = NULL;
		if (porter_file_list_dir("main", "many", 0, 30000, &l) == 0)
			porter_file_list_free(l);
	}
	porter_thread_disconnect();
	return NULL;
}

typedef struct queued_call {
	_Atomic uint64_t id;
	int rc;
	char msg[256];
	long long took_ms;
} queued_call;

static void *queued_stat_main(void *arg)
{
	queued_call *q = arg;
	porter_file_info fi = PORTER_FILE_INFO_INIT;
	atomic_store(&q->id, porter_call_id_new());
	long long t0 = th_now_ms();
	q->rc = porter_file_stat("main", "many/f0", atomic_load(&q->id), 5000, &fi);
	q->took_ms = th_now_ms() - t0;
	snprintf(q->msg, sizeof(q->msg), "%s", porter_last_error_message());
	porter_thread_disconnect();
	return NULL;
}

/*
 * Deadlines and Cancel reach requests waiting for a pool thread: with one
 * pool thread kept busy, a queued request is taken out of the queue and
 * answered by the daemon at its deadline, or at once when cancelled.
 */
START_TEST(test_deadline_and_cancel_while_queued)
{
	porter_thread_disconnect();
	th_daemon_stop(&d);
	th_daemon_cleanup(&d);
	setenv("UV_THREADPOOL_SIZE", "1", 1);
	pool_only = 1; /* a cached stat would not wait for the pool at all */
	start_with("auto");
	unsetenv("UV_THREADPOOL_SIZE");
	char p[256];
	path_in(p, sizeof(p), root, "many");
	ck_assert_int_eq(mkdir(p, 0755), 0);
	for (int i = 0; i < 20000; i++) {
		char name[32];
		snprintf(name, sizeof(name), "many/f%d", i);
		put_local(root, name, "x");
	}
	enum { LISTERS = 32 };
	pthread_t ls[LISTERS];
	atomic_store(&lister_stop, 0);
	for (int i = 0; i < LISTERS; i++)
		pthread_create(&ls[i], NULL, lister_main, NULL);
	usleep(200000); /* every lister has a listing queued */

	/* A deadline that passes while queued: the daemon's own reply. The
	 * client waits 30 ms longer than the daemon's deadline; on a loaded
	 * machine (ASan, two cores) the daemon's reply can miss that margin,
	 * so a client-side timeout is tried again, and one daemon reply out
	 * of five attempts is what must hold. */
	porter_file_info fi = PORTER_FILE_INFO_INIT;
	int rc = 0, by_daemon = 0;
	for (int attempt = 0; attempt < 5 && !by_daemon; attempt++) {
		rc = porter_file_stat("main", "many/f1", 0, 300, &fi);
		ck_assert_int_eq(rc, PORTER_E_TIMEOUT);
		by_daemon = strstr(porter_last_error_message(), "pool thread") != NULL;
	}
	ck_assert_msg(by_daemon, "not answered by the daemon: %s", porter_last_error_message());

	/* A Cancel of a queued request: answered at once. */
	queued_call q = {0};
	pthread_t th;
	pthread_create(&th, NULL, queued_stat_main, &q);
	while (atomic_load(&q.id) == 0)
		usleep(1000);
	usleep(200000); /* let it reach the daemon's queue */
	/* On a loaded machine the Cancel may still arrive first: then it is
	 * remembered (NOT_FOUND now) and the request refused on arrival. */
	rc = porter_cancel(atomic_load(&q.id), 2000);
	ck_assert_msg(rc == 0 || rc == PORTER_E_NOT_FOUND, "cancel: %s", porter_error_name(rc));
	pthread_join(th, NULL);
	ck_assert_msg(q.rc == PORTER_E_CANCELLED, "queued stat: %d %s", q.rc, q.msg);
	ck_assert_int_lt(q.took_ms, 2000);

	atomic_store(&lister_stop, 1);
	for (int i = 0; i < LISTERS; i++)
		pthread_join(ls[i], NULL);
	/* The pool is free again: the same request now succeeds. */
	ck_assert_int_eq(porter_file_stat("main", "many/f1", 0, T, &fi), 0);
}
END_TEST

static Suite *suite(void)
{
	const TTest *ops[] = {test_concurrent_atomic_writers, test_streams,
			      test_stream_cleanup_and_migration,
			      test_deadline_and_cancel_while_queued, NULL};
	const TTest *bytes[] = {test_streams, test_stream_cleanup_and_migration, NULL};
	return files_suite("files_stream", ops, bytes);
}

TH_MAIN(suite)
