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
#include "rawc.h"
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

/* Alice opens a stream of her FUSE file by bytes (raw frames: libporter
 * asks for the descriptor), takes its first chunk and closes her
 * connection, which ends the stream; then she pings from another. */
static int alice_leaves_a_stream(void *arg)
{
	(void)arg;
	frame_reader rd;
	frame_reader_init(&rd, 1u << 20);
	int fd = th_rc_open(d.socket, &rd, T, NULL);
	if (fd < 0)
		return 1;
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileRead fr = PORTER__V1__FILE_READ__INIT;
	fr.root = "span";
	fr.path = "fuse/#5";
	fr.chunk_size = 65536;
	req.id = 1;
	req.timeout_ms = T;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_READ;
	req.file_read = &fr;
	Porter__V1__Response *r = th_rc_call(fd, &rd, &req, T);
	int streamed = r && r->status == 0 && r->more;
	if (!streamed)
		fprintf(stderr, "the stream's first chunk: %s (%s)\n",
			r ? porter_error_name(r->status) : "no reply", r ? r->message : "");
	if (r)
		porter__v1__response__free_unpacked(r, NULL);
	close(fd);
	frame_reader_free(&rd);
	if (!streamed)
		return 1;
	for (int i = 0; i < 5; i++) {
		usleep(100 * 1000);
		EXPECT(porter_ping(NULL, 0, 0, T), 0);
	}
	return 0;
}

/* The old porterd: "porter_ping(NULL, 0, 0, T) gave PORTER_E_TIMEOUT",
 * with porterd's close of the passed descriptor left unanswered. */
static void run(int (*fn)(void *), uint64_t file_size)
{
	char p[160];
	ck_assert_msg(fuse_tree("/tmp/porter-fuse-close-XXXXXX", top, sizeof(top)) == 0,
		      "the tree: %s", strerror(errno));
	snprintf(p, sizeof(p), "%s/docs/fuse", top);
	fuse_srv f = {.root_file = 1, .file_size = file_size, .hold_flush_uid = TH_UID_DAEMON};
	pthread_t t;
	ck_assert_msg(fuse_srv_start(&f, &t, p, "") == 0, "no FUSE here: %s", strerror(errno));
	char roots[160];
	snprintf(roots, sizeof(roots), "span=%s/docs:uids=%u:mounts", top, TH_UID_ALICE);
	const char *const extra[] = {"--workers",    "1",   "--allow-uid", "61011",
				     "--file-roots", roots, NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, extra), 0);
	int rc = th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, fn, NULL);
	fprintf(stderr, "porterd's closes left unanswered: %d\n", atomic_load(&f.flushes_held));
	fuse_srv_stop(&f, t); /* the held close fails */
	ck_assert_int_eq(rc, 0);
	ck_assert_int_ge(atomic_load(&f.flushes_held), 1); /* it did close it */
	th_stop_clean(&d);
	umount2(p, MNT_DETACH);
	th_rm_rf(top);
}

START_TEST(a_passed_descriptor_closes_off_the_loop)
{
	run(alice_reads_by_descriptor, 0);
}
END_TEST

/* A stream's file, closed when its connection closes. */
START_TEST(a_stream_closes_off_the_loop)
{
	run(alice_leaves_a_stream, 1u << 20);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {a_passed_descriptor_closes_off_the_loop,
				a_stream_closes_off_the_loop, NULL};
	return th_suite("trust_fuse_close", "fuse_close", 120, tests);
}

TH_MAIN_ROOT(suite)
