/*
 * One uid's file streams are bounded (issue 16): alice opens 5 x 80 file
 * readers on the byte path (porterd holds a stream and a descriptor for
 * each) from five connections at once; at most file-max-streams per
 * connection and file-max-streams-per-uid over all of hers are open, the
 * rest get PORTER_E_BUSY naming the limit, and bob still reads.
 *
 * Needs root (porterd and the clients run as their own uids).
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "tenant.h"

#define THREADS 5
#define PER_THREAD 80
#define PER_UID 100

static th_daemon d;

typedef struct result {
	int ok, busy_conn, busy_uid, other;
	int other_rc;
	char other_text[160];
	int held;          /* file streams porterd's stats showed while held */
	volatile int open; /* threads done opening */
	int bob_rc;
	pthread_mutex_t mu; /* PTHREAD_PROCESS_SHARED */
} result;

static void *readers_thread(void *arg)
{
	result *r = arg;
	porter_file_reader *rd[PER_THREAD] = {0};
	for (int i = 0; i < PER_THREAD; i++) {
		int rc = porter_file_reader_open("q", "big", 0, 0, 0, 0, 20000, &rd[i]);
		const char *text = rc ? porter_last_error_message() : "";
		pthread_mutex_lock(&r->mu);
		if (rc == 0)
			r->ok++;
		else if (rc == PORTER_E_BUSY && strstr(text, "file-max-streams-per-uid"))
			r->busy_uid++;
		else if (rc == PORTER_E_BUSY && strstr(text, "file-max-streams"))
			r->busy_conn++;
		else if (!r->other++) {
			r->other_rc = rc;
			snprintf(r->other_text, sizeof(r->other_text), "%s", text);
		}
		pthread_mutex_unlock(&r->mu);
	}
	__atomic_add_fetch(&r->open, 1, __ATOMIC_SEQ_CST);
	/* Held until every thread is done, then measured, then freed. */
	while (__atomic_load_n(&r->open, __ATOMIC_SEQ_CST) < THREADS + 1)
		usleep(10000);
	for (int i = 0; i < PER_THREAD; i++)
		porter_file_reader_free(rd[i]);
	return NULL;
}

static int alice(void *arg)
{
	result *r = arg;
	size_t n = 4u << 20;
	char *data = calloc(1, n);
	if (!data || porter_file_write("q", "big", data, n,
				       PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE, 0, 0, 30000) != 0)
		return 2;
	free(data);
	/* Each thread has a connection of its own. */
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		if (pthread_create(&th[i], NULL, readers_thread, r) != 0)
			return 3;
	while (__atomic_load_n(&r->open, __ATOMIC_SEQ_CST) < THREADS)
		usleep(10000);
	porter_uid_usage u = PORTER_UID_USAGE_INIT;
	if (th_own_usage(&u) == 0)
		r->held = (int)u.file_streams;
	__atomic_add_fetch(&r->open, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	return 0;
}

static int bob(void *arg)
{
	result *r = arg;
	porter_bytes *data = NULL;
	if (porter_file_write("q", "mine", "hello", 5, PORTER_FILE_CREATE, 0, 0, 10000) != 0)
		return 2;
	r->bob_rc = porter_file_read("q", "mine", 0, 0, 0, 10000, &data);
	porter_bytes_free(data);
	return 0;
}

START_TEST(readers_bounded_per_connection_and_per_uid)
{
	char files[] = "/tmp/porter-file-quota-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(files));
	ck_assert_int_eq(chown(files, TH_UID_DAEMON, TH_GID_PORTER), 0);
	ck_assert_int_eq(chmod(files, 0755), 0);
	char roots[128];
	snprintf(roots, sizeof(roots), "q=%s/%%u", files);
	/* Readers by bytes, so porterd holds each; reclaimed only after a
	 * minute, so none goes before the last is opened at load 20. */
	const char *args[] = {"--allow-uid", "61011,61012",          "--file-roots",
			      roots,         "--file-pass-fd=false", "--file-max-streams-per-uid",
			      "100",         "--file-stream-idle",   "60000",
			      NULL};
	result *r = th_tenant_up(&d, args, sizeof(result));
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(&r->mu, &ma);

	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 120000, alice, r), 0);
	fprintf(stderr,
		"alice, %d x %d readers: %d open, %d refused per connection, %d per uid, %d "
		"other (%d %s); porterd counted %d\n",
		THREADS, PER_THREAD, r->ok, r->busy_conn, r->busy_uid, r->other, r->other_rc,
		r->other_text, r->held);
	ck_assert_int_eq(r->other, 0);
	ck_assert_int_eq(r->ok + r->busy_conn + r->busy_uid, THREADS * PER_THREAD);
	/* Exactly her share: every reader opened was still held. */
	ck_assert_int_eq(r->ok, PER_UID);
	ck_assert_int_eq(r->held, PER_UID);
	ck_assert_int_gt(r->busy_uid, 0);

	ck_assert_int_eq(th_as(TH_UID_BOB, TH_GID_PORTER, 30000, bob, r), 0);
	ck_assert_int_eq(r->bob_rc, 0);

	th_stop_clean(&d);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", files);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {readers_bounded_per_connection_and_per_uid, NULL};
	return th_suite("file_streams_quota", "file_streams_quota", 150, tests);
}

TH_MAIN_ROOT(suite)
