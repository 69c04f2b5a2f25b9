/*
 * Closes that wait on a FUSE daemon. In a root with the option `mounts`,
 * alice can mount her own FUSE file system, and the kernel asks her daemon
 * on every close of a descriptor of one of its files (FUSE_FLUSH), and
 * waits for the answer. porterd closes such descriptors on its worker's
 * loop: its own copy of a descriptor it passed (a read by descriptor), a
 * stream's file when its connection closes or it is reclaimed as idle. A
 * daemon that answers no close there stops the loop, and every client of
 * the worker with it; they are closed on the pool instead, where the
 * `mounts` option already accepts that her daemon may hold a thread.
 *
 * The test serves the FUSE file system itself (fuse_daemon.c), in a mount
 * namespace of its own (Check forks each test): it answers everything
 * but the closes porterd's uid makes. One worker.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuse_daemon.h"
#include "harness.h"
#include "porter.h"
#include "porter_errors.h"
#include "tenant.h"

#define T 5000
#define CHILD_MS 60000

static th_daemon d;
static char top[64];

#define EXPECT(call, want) TH_EXPECT(call, want)

/* Alice reads her FUSE file by descriptor (the file is passed, and
 * porterd closes its own copy), then pings: each ping is answered only if
 * the worker's loop does not wait on her daemon. */
static int alice_reads_by_descriptor(void *arg)
{
	(void)arg;
	porter_file_reader *rd = NULL;
	EXPECT(porter_file_reader_open("span", "fuse/#5", 0, 0, 0, 0, T, &rd), 0);
	for (int i = 0; i < 5; i++) {
		usleep(100 * 1000);
		EXPECT(porter_ping(NULL, 0, 0, T), 0);
	}
	porter_file_reader_free(rd); /* her own close is answered */
	return 0;
}

/* The old porterd: "porter_ping(NULL, 0, 0, T) gave PORTER_E_TIMEOUT",
 * with porterd's close of the passed descriptor left unanswered. */
START_TEST(a_passed_descriptor_closes_off_the_loop)
{
	char p[160];
	ck_assert_msg(fuse_tree("/tmp/porter-fuse-close-XXXXXX", top, sizeof(top)) == 0,
		      "the tree: %s", strerror(errno));
	snprintf(p, sizeof(p), "%s/docs/fuse", top);
	fuse_srv f = {.root_file = 1, .hold_flush_uid = TH_UID_DAEMON};
	pthread_t t;
	ck_assert_msg(fuse_srv_start(&f, &t, p, "") == 0, "no FUSE here: %s", strerror(errno));
	char roots[160];
	snprintf(roots, sizeof(roots), "span=%s/docs:uids=%u:mounts", top, TH_UID_ALICE);
	const char *const extra[] = {"--workers",    "1",   "--allow-uid", "61011",
				     "--file-roots", roots, NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, extra), 0);
	int rc = th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_reads_by_descriptor, NULL);
	fprintf(stderr, "porterd's closes left unanswered: %d\n", atomic_load(&f.flushes_held));
	fuse_srv_stop(&f, t); /* the held close fails */
	ck_assert_int_eq(rc, 0);
	ck_assert_int_ge(atomic_load(&f.flushes_held), 1); /* it did close it */
	th_stop_clean(&d);
	umount2(p, MNT_DETACH);
	th_rm_rf(top);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {a_passed_descriptor_closes_off_the_loop, NULL};
	return th_suite("trust_fuse_close", "fuse_close", 120, tests);
}

TH_MAIN_ROOT(suite)
