/*
 * What a batch holds for its uid. A Batch answers once its slowest member
 * has (a Ping's delay, a slow server or query), and until then porterd
 * keeps every other member's result: a batch of 64 one-chunk file reads is
 * 64 MiB held for as long as one member waits. Those bytes count in the
 * uid's buffered bytes (uid-max-buffered) like its unsent replies, and a
 * batch whose results cannot fit in one reply (max-frame) is refused as
 * soon as that is known, not once its slowest member is done.
 */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "porter_errors.h"
#include "tenant.h"

#define T 20000
#define CHILD_MS 60000
#define CHUNK (1u << 20) /* file-chunk-size's default: what a member reads */
#define QUOTA "8388608"  /* uid-max-buffered in these tests: 8 MiB */

static th_daemon d;
static char top[64];

/* In a th_as child (tenant.h). */
#define EXPECT(call, want) TH_EXPECT(call, want)

/* top/docs (alice's) with "big": CHUNK bytes of 'b'. Returns the
 * --file-roots value (static). */
static const char *make_docs(void)
{
	static char roots[128];
	char p[128];
	snprintf(top, sizeof(top), "/tmp/porter-batch-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
	ck_assert_int_eq(chmod(top, 0755), 0);
	snprintf(p, sizeof(p), "%s/docs", top);
	ck_assert_int_eq(mkdir(p, 0770), 0);
	ck_assert_int_eq(chown(p, TH_UID_ALICE, TH_GID_PORTER), 0);
	snprintf(p, sizeof(p), "%s/docs/big", top);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	ck_assert_int_ge(fd, 0);
	char *buf = malloc(CHUNK);
	ck_assert_ptr_nonnull(buf);
	memset(buf, 'b', CHUNK);
	ck_assert_int_eq(write(fd, buf, CHUNK), (ssize_t)CHUNK);
	free(buf);
	close(fd);
	ck_assert_int_eq(chown(p, TH_UID_ALICE, TH_GID_PORTER), 0);
	snprintf(roots, sizeof(roots), "docs=%s/docs:uids=%u", top, TH_UID_ALICE);
	return roots;
}

static void start(const char *roots)
{
	const char *extra[] = {"--allow-uid", "61011", "--file-roots", roots, "--uid-max-buffered",
			       QUOTA,         NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, extra), 0);
}

static void stop(void)
{
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
	ck_assert_int_eq(th_rm_rf(top), 0);
}

/* A batch of `reads` reads of "big" and, when `delay_ms`, a Ping that
 * answers after it. Returns porter_batch_run's code, the result in
 * `*out`. */
static int run_reads(int reads, uint32_t delay_ms, porter_batch_result **out)
{
	porter_batch *b = porter_batch_new(PORTER_BATCH_ALL);
	if (!b)
		return PORTER_E_NOMEM;
	for (int i = 0; i < reads; i++)
		if (porter_batch_add_file_read(b, "docs", "big", 0, CHUNK, T) < 0)
			return PORTER_E_INTERNAL;
	if (delay_ms && porter_batch_add_ping(b, "x", 1, delay_ms, T) < 0)
		return PORTER_E_INTERNAL;
	int rc = porter_batch_run(b, 0, T, out);
	porter_batch_free(b);
	return rc;
}

/* 63 reads of 1 MiB held behind a Ping of 3 s: 63 MiB against a quota of
 * 8 MiB. The batch is refused with the quota's name. */
static int alice_holds_63_mib(void *arg)
{
	(void)arg;
	porter_batch_result *res = NULL;
	int rc = run_reads(63, 3000, &res);
	porter_batch_result_free(res);
	EXPECT(rc, PORTER_E_BUSY);
	if (!strstr(porter_last_error_message(), "uid-max-buffered")) {
		fprintf(stderr, "the refusal says '%s'\n", porter_last_error_message());
		return 1;
	}
	return 0;
}

/*
 * The old porterd kept all 63 MiB (no quota saw them) for the Ping's 3 s,
 * then answered PORTER_E_TOO_LARGE: "run_reads(63, 3000, &res) gave
 * PORTER_E_TOO_LARGE, want PORTER_E_BUSY". Now the batch is refused once
 * its results pass the quota. porterd's peak is printed, not bounded: reads
 * that finish on the pool before the loop takes them are held until it
 * does, however many the batch refuses after.
 */
START_TEST(a_batch_past_the_quota_is_refused)
{
	start(make_docs());
	long before = th_hwm_kib(d.pid);
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_holds_63_mib, NULL), 0);
	fprintf(stderr, "porterd's peak: %ld -> %ld KiB\n", before, th_hwm_kib(d.pid));
	stop();
}
END_TEST

/* A batch of five reads held behind a Ping of 5 s, on its own thread (and
 * connection). */
static void *five_held(void *arg)
{
	porter_batch_result *res = NULL;
	int *rc = arg;
	*rc = run_reads(5, 5000, &res);
	if (*rc == 0 && porter_batch_result_count(res) != 6)
		*rc = PORTER_E_INTERNAL;
	porter_batch_result_free(res);
	__atomic_store_n(rc + 1, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* While the batch waits for its Ping, porterd's stats show its 5 MiB of
 * results among alice's buffered bytes. */
static int alice_sees_them_counted(void *arg)
{
	(void)arg;
	int st[2] = {0, 0}; /* the batch's code, then 1 once it returned */
	pthread_t t;
	if (pthread_create(&t, NULL, five_held, st) != 0)
		return 1;
	uint64_t most = 0;
	while (!__atomic_load_n(&st[1], __ATOMIC_ACQUIRE) && most < 5 * CHUNK) {
		porter_uid_usage u = PORTER_UID_USAGE_INIT;
		if (th_own_usage(&u) == 0 && u.buffered_bytes > most)
			most = u.buffered_bytes;
		usleep(20 * 1000);
	}
	pthread_join(t, NULL);
	EXPECT(st[0], 0);
	if (most < 5 * CHUNK) {
		fprintf(stderr, "while its batch was held alice held at most %llu bytes\n",
			(unsigned long long)most);
		return 1;
	}
	return 0;
}

/* The old porterd: "while its batch was held alice held at most 0 bytes". */
START_TEST(held_results_count_against_the_uid)
{
	start(make_docs());
	ck_assert_int_eq(
		th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_sees_them_counted, NULL), 0);
	stop();
}
END_TEST

/* A batch under the quota is answered whole, its bytes intact, and what
 * it held is given back: the reply's bytes are not counted twice (held
 * results, then the same bytes queued), and nothing stays counted. */
static int alice_batches_within(void *arg)
{
	(void)arg;
	for (int k = 0; k < 3; k++) {
		porter_batch_result *res = NULL;
		EXPECT(run_reads(6, 200, &res), 0);
		for (size_t i = 0; i < 6; i++) {
			const void *data = NULL;
			size_t len = 0;
			EXPECT(porter_batch_result_file_read(res, i, &data, &len, NULL), 0);
			const char *c = data;
			if (len != CHUNK || c[0] != 'b' || c[CHUNK - 1] != 'b') {
				fprintf(stderr, "member %zu read %zu bytes\n", i, len);
				porter_batch_result_free(res);
				return 1;
			}
		}
		porter_batch_result_free(res);
	}
	/* Nine results of 1 MiB fit a reply (max-frame 16 MiB), not the
	 * quota. */
	porter_batch_result *res = NULL;
	EXPECT(run_reads(9, 200, &res), PORTER_E_BUSY);
	porter_batch_result_free(res);
	/* The connection is still there, and what the batches held is
	 * given back: only read buffers stay (under 1 MiB). Members the
	 * refusal stopped may still be reading on the pool: their chunks
	 * count until the loop collects them, soon after. */
	EXPECT(porter_ping(NULL, 0, 0, T), 0);
	porter_uid_usage u = PORTER_UID_USAGE_INIT;
	for (int ms = 0; ms < 10000; ms += 20) {
		if (th_own_usage(&u) != 0)
			return 1;
		if (u.buffered_bytes < CHUNK)
			break;
		usleep(20 * 1000);
	}
	if (u.buffered_bytes >= CHUNK) {
		fprintf(stderr, "alice still holds %llu buffered bytes\n",
			(unsigned long long)u.buffered_bytes);
		return 1;
	}
	return 0;
}

START_TEST(results_within_the_quota_are_answered)
{
	start(make_docs());
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_batches_within, NULL),
			 0);
	stop();
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {held_results_count_against_the_uid,
				a_batch_past_the_quota_is_refused,
				results_within_the_quota_are_answered, NULL};
	return th_suite("trust_batch", "batch", 120, tests);
}

TH_MAIN_ROOT(suite)
