/*
 * File reads that end on the thread pool before their worker's loop
 * collects them. A read's chunk is allocated and filled on a pool thread;
 * until the loop takes the finished job it is held for the uid, and a uid
 * may have uid-max-inflight (4096) reads of up to a chunk (1 MiB) each
 * queued: a loop busy for a moment while the pool finishes them held
 * gigabytes counted nowhere. Each chunk counts in its uid's buffered
 * bytes from its allocation on the pool, against uid-max-buffered (a read
 * past it fails PORTER_E_BUSY naming it), until the loop collects it.
 *
 * The test holds every pool thread with lookups on a FUSE file system
 * that never answers, queues alice's reads behind them, stalls worker 0's
 * loop (PORTER_TEST_HOOKS: SIGUSR2, 3 s asleep), then aborts the FUSE
 * connection: the pool runs the reads while the loop sleeps, and alice
 * asks worker 1 what she holds. It runs in a mount namespace of its own
 * (Check forks each test), as test_trust_mounts does.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuse_daemon.h"
#include "harness.h"
#include "porter.h"
#include "porter_errors.h"
#include "rawc.h"
#include "tenant.h"

#define CHILD_MS 150000
#define FILE_SIZE 1000000u   /* one chunk */
#define QUOTA (6u << 20)     /* uid-max-buffered */
#define READS 12             /* twice what fits the quota */
#define BLOCKERS 4           /* the pool's threads for two workers */
#define WANT_HELD (4u << 20) /* at least four chunks counted */
#define MANY 4000            /* names in "many": a listing of about 1 MB */

typedef struct shared {
	volatile int sent;    /* alice queued her reads behind the blockers */
	volatile int stalled; /* worker 0 sleeps and the blockers are gone */
} shared;

static th_daemon d;
static shared *shm;
static char top[64];

/* A lookup on the FUSE mount: holds a pool thread until the connection
 * is aborted. Its result does not matter. */
static void *blocker(void *arg)
{
	(void)arg;
	porter_bytes *b = NULL;
	porter_file_read("span", "fuse/x", 0, 0, 0, CHILD_MS, &b);
	porter_bytes_free(b);
	return NULL;
}

/* A read of "big", or with `listing` a listing of "many" (each about
 * FILE_SIZE bytes). */
static int send_read(int fd, uint64_t id, int listing)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileRead fr = PORTER__V1__FILE_READ__INIT;
	Porter__V1__FileList fl = PORTER__V1__FILE_LIST__INIT;
	fr.root = fl.root = "span";
	fr.path = "big";
	fl.path = "many";
	req.id = id;
	req.timeout_ms = 100000;
	req.body_case =
		listing ? PORTER__V1__REQUEST__BODY_FILE_LIST : PORTER__V1__REQUEST__BODY_FILE_READ;
	if (listing) /* one of the two: they share the oneof's storage */
		req.file_list = &fl;
	else
		req.file_read = &fr;
	return th_rc_send(fd, &req);
}

/* Waits (up to 20 s) until alice has `want` requests in flight over all
 * her connections, as porterd counts them: admitted, so on the pool's
 * queue for a FUSE root's file (its requests go there in the turn that
 * reads them). 0, or 1 when they never were. */
static int wait_inflight(uint64_t want)
{
	porter_uid_usage u = PORTER_UID_USAGE_INIT;
	for (int i = 0; i < 2000; i++) {
		if (th_own_usage(&u) == 0 && u.inflight >= want)
			return 0;
		usleep(10 * 1000);
	}
	fprintf(stderr, "alice has %llu requests in flight, want %llu\n",
		(unsigned long long)u.inflight, (unsigned long long)want);
	return 1;
}

static int alice_reads_behind_the_pool(void *arg)
{
	int listing = arg != NULL;
	frame_reader rd;
	frame_reader_init(&rd, 4u << 20);
	/* The daemon's first connection: worker 0, the one stalled. */
	int fd = th_rc_open(d.socket, &rd, 5000, NULL);
	if (fd < 0)
		return 1;
	/* Her libporter connection, the next: worker 1. */
	if (th_own_buffered_below(1u << 20) != 0)
		return 1;
	/* What her asking counts itself, if anything. */
	porter_uid_usage u0 = PORTER_UID_USAGE_INIT;
	if (th_own_usage(&u0) != 0)
		return 1;
	pthread_t t[BLOCKERS];
	for (int i = 0; i < BLOCKERS; i++)
		pthread_create(&t[i], NULL, blocker, NULL);
	/* The lookups reach the pool first. */
	if (wait_inflight(u0.inflight + BLOCKERS) != 0)
		return 1;
	for (int i = 0; i < READS; i++)
		if (send_read(fd, 100 + (uint64_t)i, listing) != 0)
			return 1;
	/* Read from her socket and queued behind them. */
	if (wait_inflight(u0.inflight + BLOCKERS + READS) != 0)
		return 1;
	shm->sent = 1;
	if (!th_wait_flag(&shm->stalled, 20000))
		return 1;
	/* The pool runs her reads now; the loop that would collect them
	 * sleeps, and no reply reaches her before it wakes. */
	uint64_t most = 0;
	struct pollfd p = {fd, POLLIN, 0};
	while (most < WANT_HELD && poll(&p, 1, 0) == 0) {
		porter_uid_usage u = PORTER_UID_USAGE_INIT;
		if (th_own_usage(&u) == 0 && u.buffered_bytes > most)
			most = u.buffered_bytes;
		usleep(10 * 1000);
	}
	int ok = 0, busy = 0, bad = 0;
	for (int i = 0; i < READS; i++) {
		Porter__V1__Response *r = th_rc_recv(fd, &rd, 100000);
		if (!r) {
			fprintf(stderr, "reply %d of %d did not come (connection dropped?)\n", i,
				READS);
			bad = 1;
			break;
		}
		if (r->status == 0 &&
		    (listing ? r->file_list && r->file_list->n_entries == MANY
			     : r->file_read && r->file_read->data.len == FILE_SIZE))
			ok++;
		else if (r->status == PORTER_E_BUSY && strstr(r->message, "uid-max-buffered"))
			busy++;
		else
			fprintf(stderr, "read %llu: %s (%s)\n", (unsigned long long)r->id,
				porter_error_name(r->status), r->message);
		porter__v1__response__free_unpacked(r, NULL);
	}
	close(fd);
	frame_reader_free(&rd);
	for (int i = 0; i < BLOCKERS; i++)
		pthread_join(t[i], NULL);
	fprintf(stderr,
		"while its loop slept alice's finished reads counted %llu bytes; "
		"%d answered, %d refused for the quota\n",
		(unsigned long long)most, ok, busy);
	if (bad || most < WANT_HELD || busy < 1 || ok < 4 || ok + busy != READS)
		return 1;
	/* Nothing stays counted. */
	return th_own_buffered_below(1u << 20);
}

/* The tree: top/docs (alice's, the root "span", spanning mounts) with
 * "big" (one chunk) and "fuse", a FUSE mount that never answers. Returns
 * the FUSE descriptor. */
static int make_tree(void)
{
	char p[160];
	ck_assert_msg(fuse_tree("/tmp/porter-pool-held-XXXXXX", top, sizeof(top)) == 0,
		      "the tree: %s", strerror(errno));
	snprintf(p, sizeof(p), "%s/docs/big", top);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0660);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, FILE_SIZE), 0);
	ck_assert_int_eq(fchown(fd, TH_UID_ALICE, TH_GID_PORTER), 0);
	close(fd);
	snprintf(p, sizeof(p), "%s/docs/many", top);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	for (int i = 0; i < MANY; i++) {
		char q[512];
		snprintf(q, sizeof(q), "%s/%05d-%0200d", p, i, 0);
		int f = open(q, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		ck_assert_int_ge(f, 0);
		close(f);
	}
	snprintf(p, sizeof(p), "%s/docs/fuse", top);
	int fuse = fuse_mount_stalled(p, TH_UID_ALICE, TH_GID_PORTER);
	ck_assert_msg(fuse >= 0, "no FUSE here (/dev/fuse): %s", strerror(errno));
	return fuse;
}

/* The old porterd: "while its loop slept alice's finished reads counted
 * 262144 bytes" (393216 in other runs: her read buffers alone), and her
 * connection was dropped when the twelve came at once. */
static void run(int listing)
{
	int fuse = make_tree();
	char roots[160], quota[16];
	snprintf(roots, sizeof(roots), "span=%s/docs:uids=%u:mounts", top, TH_UID_ALICE);
	snprintf(quota, sizeof(quota), "%u", QUOTA);
	const char *const extra[] = {
		"--workers",    "2",   "--allow-uid", "61011", "--uid-max-buffered", quota,
		"--file-roots", roots, NULL};
	setenv("PORTER_TEST_HOOKS", "1", 1);
	unsetenv("UV_THREADPOOL_SIZE"); /* porterd's own: 4 for two workers */
	shm = th_tenant_up(&d, extra, sizeof(*shm));
	unsetenv("PORTER_TEST_HOOKS");
	pid_t alice = fork();
	ck_assert_int_ge(alice, 0);
	if (alice == 0) {
		/* Only the test holds the FUSE connection: its close aborts
		 * it. */
		close(fuse);
		_exit(th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_reads_behind_the_pool,
			    listing ? "list" : NULL) == 0
			      ? 0
			      : 1);
	}
	ck_assert(th_wait_flag(&shm->sent, 30000));
	ck_assert_int_eq(kill(d.pid, SIGUSR2), 0);
	for (int ms = 0; ms < 10000 && !th_file_has(d.log, "test hook: stalling the loop");
	     ms += 10)
		usleep(10 * 1000);
	ck_assert(th_file_has(d.log, "test hook: stalling the loop"));
	close(fuse); /* aborts the connection: the held pool threads go */
	shm->stalled = 1;
	int status = 0;
	ck_assert_int_eq(waitpid(alice, &status, 0), alice);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "alice: %d", status);
	th_stop_clean(&d);
	char p[160];
	snprintf(p, sizeof(p), "%s/docs/fuse", top);
	umount2(p, MNT_DETACH);
	th_rm_rf(top);
}

START_TEST(reads_finished_on_the_pool_count_until_collected)
{
	run(0);
}
END_TEST

/* The same for listings, whose reply is packed on the pool. The old
 * porterd: "counted 393216 bytes" (read buffers alone), her connection
 * dropped. */
START_TEST(listings_finished_on_the_pool_count_until_collected)
{
	run(1);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {reads_finished_on_the_pool_count_until_collected,
				listings_finished_on_the_pool_count_until_collected, NULL};
	return th_suite("trust_pool_held", "pool_held", 190, tests);
}

TH_MAIN_ROOT(suite)
