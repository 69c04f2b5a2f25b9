/*
 * File streams under one uid's flood (issues 16 and 14): alice opens file
 * streams and leaves them; bob, another uid, must still read and write his
 * files. porterd runs as its own unprivileged uid with two workers, the
 * clients as theirs (tests/support/tenant.h), on a per-user root.
 *
 * Proven here: file streams are limited per uid (file-max-streams-per-uid)
 * over processes, connections and workers, with a PORTER_E_BUSY naming the
 * limit; another uid keeps its own share and its plain reads; the streams
 * of a connection die with it and its uid's count comes back; a stream
 * nobody uses is reclaimed after file-stream-idle, its owner hears so on
 * the next read (PORTER_E_TIMEOUT naming the setting) and the slot serves
 * a new stream; a stream opened on one worker is continued from a
 * connection on the other (forwarded to its owner); watches count against
 * the same limit while another uid reads, writes and watches.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "tenant.h"

#define PER_UID 4
#define IDLE_MS 1500
/* The idle time, the sweep's period and plenty of slack for a busy
 * machine. */
#define RECLAIMED_AFTER_MS (IDLE_MS + 1000 + 2500)
#define T 10000
#define CHUNK 4096
#define BIG (16 * CHUNK)

static th_daemon d;
static char top[64];

typedef struct seen {
	int rc[16];
	char msg[16][256];
	long long streams[4];     /* own uid's open streams, from stats */
	volatile int ready, done; /* alice holds her watches; bob is done */
	int bob_rc[4];
	char bob_msg[4][256];
} seen;

static seen *shm;

static void setup(void)
{
	snprintf(top, sizeof(top), "/tmp/porter-fquota-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
	ck_assert_int_eq(chown(top, TH_UID_DAEMON, TH_GID_PORTER), 0);
	ck_assert_int_eq(chmod(top, 0700), 0);
	char roots[160];
	snprintf(roots, sizeof(roots), "home=%s/%%u", top);
	const char *const extra[] = {"--workers", "2", "--allow-uid", "61011,61012", "--file-roots",
				     roots, "--file-chunk-size", "4096",
				     "--file-max-streams-per-uid", "4", "--file-stream-idle",
				     "1500",
				     /* Readers stream bytes, so the daemon holds
				      * them (by descriptor it holds only atomic
				      * writes' temp files). */
				     "--file-pass-fd=false", NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, extra), 0);
	shm = th_shared_alloc(sizeof(*shm));
	ck_assert_ptr_nonnull(shm);
}

static void teardown(void)
{
	int st = th_daemon_stop(&d);
	if (st != 0)
		th_daemon_dump_log(&d);
	th_daemon_cleanup(&d);
	ck_assert_int_eq(th_rm_rf(top), 0);
	ck_assert_int_eq(st, 0);
}

static void note(int i, int rc)
{
	shm->rc[i] = rc;
	snprintf(shm->msg[i], sizeof(shm->msg[i]), "%s", rc < 0 ? porter_last_error_message() : "");
}

/* The calling uid's open file streams as porterd's stats count them; -1 when
 * the stats have no entry for it. */
static long long own_streams(void)
{
	porter_uid_usage u = PORTER_UID_USAGE_INIT;
	return th_own_usage(&u) == 0 ? (long long)u.file_streams : -1;
}

/* Writes a file of BIG bytes (several chunks) at `path` of the caller's
 * home. */
static int make_big(const char *path)
{
	static char buf[BIG];
	memset(buf, 'x', sizeof(buf));
	return porter_file_write("home", path, buf, sizeof(buf), PORTER_FILE_CREATE, 0600, 0, T);
}

/* Opens `*(int *)arg` writers and leaves them open: the process exits
 * without closing them, so the daemon drops them with its connection.
 * rc[i] is each open's result. */
static int open_and_leave(void *arg)
{
	int n = *(int *)arg;
	memset(shm, 0, sizeof(*shm));
	for (int i = 0; i < n; i++) {
		char path[32];
		porter_file_writer *w = NULL;
		snprintf(path, sizeof(path), "w%d.txt", i);
		note(i, porter_file_writer_open("home", path, PORTER_FILE_ATOMIC, 0600, 0, T, &w));
	}
	shm->streams[0] = own_streams();
	return 0;
}

/* Bob: his streams (readers and writers) and a plain read while alice
 * holds all of hers, then a plain write. */
static int bob_works(void *arg)
{
	(void)arg;
	memset(shm, 0, sizeof(*shm));
	porter_file_reader *r[PER_UID / 2] = {0};
	porter_file_writer *w[PER_UID / 2] = {0};
	note(0, make_big("big.bin"));
	for (int i = 0; i < PER_UID / 2; i++) {
		note(1 + i, porter_file_reader_open("home", "big.bin", 0, 0, 0, 0, T, &r[i]));
		note(1 + PER_UID / 2 + i,
		     porter_file_writer_open("home", "out.txt", PORTER_FILE_ATOMIC, 0600, 0, T,
					     &w[i]));
	}
	shm->streams[0] = own_streams();
	porter_bytes *b = NULL;
	note(PER_UID + 1, porter_file_read("home", "big.bin", 0, 100, 0, T, &b));
	porter_bytes_free(b);
	for (int i = 0; i < PER_UID / 2; i++) {
		porter_file_reader_close(r[i], T);
		porter_file_writer_close(w[i], T);
	}
	/* The count comes back as they close. */
	shm->streams[1] = own_streams();
	/* A plain write (libporter writes through a short-lived writer
	 * stream, so it needs a slot of bob's own quota). */
	note(PER_UID + 2,
	     porter_file_write("home", "plain.txt", "bob", 3, PORTER_FILE_CREATE, 0600, 0, T));
	return 0;
}

static void expect_all_ok(int from, int n, const char *who)
{
	for (int i = from; i < from + n; i++)
		ck_assert_msg(shm->rc[i] == 0, "%s: call %d gave %d '%s'", who, i, shm->rc[i],
			      shm->msg[i]);
}

static void expect_busy(int i, const char *who)
{
	ck_assert_msg(shm->rc[i] == PORTER_E_BUSY &&
			      strstr(shm->msg[i], "file-max-streams-per-uid"),
		      "%s: call %d gave %d '%s'", who, i, shm->rc[i], shm->msg[i]);
}

/* Holds `PER_UID` streams in one process while a second process of the
 * same uid tries one more; rc[PER_UID] is that try. */
static int alice_two_processes(void *arg)
{
	(void)arg;
	int n = PER_UID;
	memset(shm, 0, sizeof(*shm));
	porter_file_writer *w[PER_UID] = {0};
	for (int i = 0; i < n; i++) {
		char path[32];
		snprintf(path, sizeof(path), "h%d.txt", i);
		note(i,
		     porter_file_writer_open("home", path, PORTER_FILE_ATOMIC, 0600, 0, T, &w[i]));
	}
	pid_t pid = fork();
	if (pid == 0) {
		porter_file_writer *x = NULL;
		note(PER_UID,
		     porter_file_writer_open("home", "x.txt", PORTER_FILE_CREATE, 0600, 0, T, &x));
		_exit(0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	for (int i = 0; i < n; i++)
		porter_file_writer_close(w[i], T);
	return 0;
}

START_TEST(one_uid_cannot_take_every_file_stream)
{
	/* One process past the limit: the last open is refused. */
	int n = PER_UID + 1;
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 30000, open_and_leave, &n), 0);
	expect_all_ok(0, PER_UID, "alice");
	expect_busy(PER_UID, "alice's stream past her limit");
	ck_assert_int_eq(shm->streams[0], PER_UID);

	/* Another process of the same uid, while the first holds them all,
	 * is held to the same count. */
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 30000, alice_two_processes, NULL), 0);
	expect_all_ok(0, PER_UID, "alice (first process)");
	expect_busy(PER_UID, "alice's second process");

	/* Bob is not affected, and his count comes back as he closes. */
	ck_assert_int_eq(th_as(TH_UID_BOB, TH_GID_PORTER, 30000, bob_works, NULL), 0);
	expect_all_ok(0, PER_UID + 3, "bob");
	ck_assert_int_eq(shm->streams[0], PER_UID);
	ck_assert_int_eq(shm->streams[1], 0);

	/* Alice's streams died with her connections: her whole quota serves
	 * a new process. */
	n = PER_UID;
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 30000, open_and_leave, &n), 0);
	expect_all_ok(0, PER_UID, "alice after her processes ended");
}
END_TEST

/* Alice reads one chunk, then stops reading: the reader is reclaimed, the
 * next read says so, and the slot serves new streams up to her limit. */
static int read_then_idle(void *arg)
{
	(void)arg;
	memset(shm, 0, sizeof(*shm));
	porter_file_reader *r = NULL;
	const void *data;
	size_t len;
	note(0, make_big("big.bin"));
	note(1, porter_file_reader_open("home", "big.bin", 0, 0, 0, 0, T, &r));
	if (!r)
		return 0;
	note(2, porter_file_reader_read(r, 0, T, &data, &len)); /* the first chunk */
	note(3, porter_file_reader_read(r, 0, T, &data, &len)); /* pulled */
	shm->streams[0] = own_streams();
	usleep(RECLAIMED_AFTER_MS * 1000);
	shm->streams[1] = own_streams();
	note(4, porter_file_reader_read(r, 0, T, &data, &len));
	/* The whole quota serves again, the reclaimed reader still held. */
	porter_file_writer *w[PER_UID] = {0};
	for (int i = 0; i < PER_UID; i++) {
		char path[32];
		snprintf(path, sizeof(path), "n%d.txt", i);
		note(5 + i,
		     porter_file_writer_open("home", path, PORTER_FILE_CREATE, 0600, 0, T, &w[i]));
	}
	for (int i = 0; i < PER_UID; i++)
		porter_file_writer_close(w[i], T);
	note(5 + PER_UID, porter_file_reader_close(r, T));
	return 0;
}

START_TEST(unused_stream_is_reclaimed_and_its_owner_told)
{
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 60000, read_then_idle, NULL), 0);
	expect_all_ok(0, 2, "alice's file and open");
	ck_assert_msg(shm->rc[2] == 1 && shm->rc[3] == 1, "reads: %d '%s', %d '%s'", shm->rc[2],
		      shm->msg[2], shm->rc[3], shm->msg[3]);
	ck_assert_int_eq(shm->streams[0], 1);
	ck_assert_msg(shm->streams[1] <= 0, "streams after the reclaim: %lld", shm->streams[1]);
	ck_assert_msg(shm->rc[4] == PORTER_E_TIMEOUT && strstr(shm->msg[4], "reclaimed") &&
			      strstr(shm->msg[4], "file-stream-idle"),
		      "read after the idle time: %d '%s'", shm->rc[4], shm->msg[4]);
	expect_all_ok(5, PER_UID + 1, "alice after the reclaim");
	fprintf(stderr, "reclaimed: '%s'\n", shm->msg[4]);
}
END_TEST

/* ---- watches count as file streams ---- */

/* Alice opens watches up to her limit and one more, then holds them until
 * bob is done. */
static int alice_holds_watches(void *arg)
{
	(void)arg;
	porter_file_watch *w[PER_UID + 1] = {0};
	note(0, porter_file_mkdir("home", "d", 0, 0, 0, T));
	for (int i = 0; i <= PER_UID; i++)
		note(1 + i, porter_file_watch_open("home", "d", 0, T, &w[i]));
	shm->streams[0] = own_streams();
	shm->ready = 1;
	for (int i = 0; i < 600 && !shm->done; i++)
		usleep(50000);
	for (int i = 0; i <= PER_UID; i++)
		porter_file_watch_close(w[i], T);
	return 0;
}

/* Bob reads, writes and watches while alice holds every watch she may. */
static int bob_with_alice_watching(void *arg)
{
	(void)arg;
	porter_bytes *b = NULL;
	porter_file_watch *w = NULL;
	shm->bob_rc[0] = make_big("big.bin");
	shm->bob_rc[1] = porter_file_read("home", "big.bin", 0, 100, 0, T, &b);
	porter_bytes_free(b);
	shm->bob_rc[2] = porter_file_watch_open("home", "", 0, T, &w);
	shm->bob_rc[3] = porter_file_watch_close(w, T);
	for (int i = 0; i < 4; i++)
		snprintf(shm->bob_msg[i], sizeof(shm->bob_msg[i]), "%s",
			 shm->bob_rc[i] < 0 ? porter_last_error_message() : "");
	return 0;
}

START_TEST(watches_count_against_the_uid)
{
	memset(shm, 0, sizeof(*shm));
	pid_t pid = fork();
	if (pid == 0)
		_exit(th_as(TH_UID_ALICE, TH_GID_PORTER, 60000, alice_holds_watches, NULL) == 0
			      ? 0
			      : 1);
	for (int i = 0; i < 600 && !shm->ready; i++)
		usleep(50000);
	ck_assert_msg(shm->ready, "alice never held her watches");
	int bob = th_as(TH_UID_BOB, TH_GID_PORTER, 30000, bob_with_alice_watching, NULL);
	shm->done = 1;
	int st = 0;
	waitpid(pid, &st, 0);
	ck_assert_int_eq(bob, 0);
	ck_assert_int_eq(st, 0);
	expect_all_ok(0, 1 + PER_UID, "alice's mkdir and watches");
	expect_busy(1 + PER_UID, "alice's watch past her limit");
	ck_assert_int_eq(shm->streams[0], PER_UID);
	for (int i = 0; i < 4; i++)
		ck_assert_msg(shm->bob_rc[i] == 0, "bob: call %d gave %d '%s'", i, shm->bob_rc[i],
			      shm->bob_msg[i]);
}
END_TEST

/* ---- one stream, two workers ---- */

typedef struct pull_arg {
	porter_file_reader *r;
	uint64_t got;
	int rc;
} pull_arg;

/* Reads the rest of the reader on this thread, whose connection the
 * acceptor gives to the other worker (the least loaded one). */
static void *pull_rest(void *p)
{
	pull_arg *a = p;
	const void *data;
	size_t len;
	int rc;
	while ((rc = porter_file_reader_read(a->r, 0, T, &data, &len)) == 1)
		a->got += len;
	a->rc = rc;
	porter_thread_disconnect();
	return NULL;
}

static int read_across_workers(void *arg)
{
	(void)arg;
	memset(shm, 0, sizeof(*shm));
	note(0, make_big("big.bin"));
	pull_arg a = {0};
	note(1, porter_file_reader_open("home", "big.bin", 0, 0, 0, 0, T, &a.r));
	if (!a.r)
		return 0;
	const void *data;
	size_t len;
	note(2, porter_file_reader_read(a.r, 0, T, &data, &len));
	a.got = len;
	pthread_t t;
	pthread_create(&t, NULL, pull_rest, &a);
	pthread_join(t, NULL);
	note(3, a.rc);
	shm->streams[0] = (long long)a.got;
	note(4, porter_file_reader_close(a.r, T));
	return 0;
}

START_TEST(stream_continues_from_another_worker)
{
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 30000, read_across_workers, NULL), 0);
	expect_all_ok(0, 2, "alice's file and open");
	ck_assert_msg(shm->rc[2] == 1, "first read: %d '%s'", shm->rc[2], shm->msg[2]);
	ck_assert_msg(shm->rc[3] == 0, "reads on the other thread: %d '%s'", shm->rc[3],
		      shm->msg[3]);
	ck_assert_int_eq(shm->streams[0], BIG);
	ck_assert_msg(shm->rc[4] == 0, "close: %d '%s'", shm->rc[4], shm->msg[4]);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {one_uid_cannot_take_every_file_stream,
				unused_stream_is_reclaimed_and_its_owner_told,
				stream_continues_from_another_worker, watches_count_against_the_uid,
				NULL};
	Suite *s = suite_create("file_quota");
	tcase_add_checked_fixture(th_tcase(s, "file_quota", 120, tests), setup, teardown);
	return s;
}

TH_MAIN_ROOT(suite)
