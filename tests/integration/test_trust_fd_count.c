/*
 * Passed descriptors are counted per uid (issue 17): while alice, a client
 * that never reports its closes, holds all file-max-streams-per-uid (4)
 * descriptors she may and is refused more, bob (another uid) still gets
 * his own 4 by descriptor, and libporter's reads work for him. porterd
 * runs as TH_UID_DAEMON; the rest of the counting is in
 * test_files_fd_count.c.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "porter.h"
#include "rawc.h"
#include "tenant.h"

#define T 10000
#define CHILD_MS 60000
#define BIG 100000 /* past 64 KiB and one chunk: read by descriptor */

static th_daemon d;
static char top[64];

/* What alice and the test tell each other across processes. */
typedef struct share {
	atomic_int stage; /* 1: alice holds her 4; 2: bob is done */
	int in_flight;    /* descriptors alice's flood had in flight */
} share;
static share *sh;

/* Fails the child when `cond` is false. */
#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "uid %u, line %d: %s (errno %s)\n", (unsigned)getuid(),    \
				__LINE__, #cond, strerror(errno));                                 \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

/* A raw connection of the calling child and the descriptors it got. */
typedef struct rawc {
	frame_reader rd;
	int fd, fds[8], n_fds;
} rawc;

/* Connects and says Hello; 0 or -1. */
static int rawc_open(rawc *c)
{
	memset(c, 0, sizeof(*c));
	frame_reader_init(&c->rd, 1 << 20);
	c->fd = th_rc_open(d.socket, &c->rd, T, NULL);
	return c->fd < 0 ? -1 : 0;
}

static void rawc_close(rawc *c)
{
	while (c->n_fds)
		close(c->fds[--c->n_fds]);
	close(c->fd);
	frame_reader_free(&c->rd);
}

/* Reads "big" asking for its descriptor, never reporting a close. Returns
 * the reply's status (-1000 for none), with `*passed` saying whether a
 * descriptor came and `msg` (128 bytes) the message. */
static int rawc_read(rawc *c, uint64_t id, int *passed, char *msg)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileRead fr = PORTER__V1__FILE_READ__INIT;
	fr.root = "shared";
	fr.path = "big";
	fr.want_fd = 1;
	req.id = id;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_READ;
	req.file_read = &fr;
	th_raw_send(c->fd, &req);
	int had = c->n_fds;
	Porter__V1__Response *r = th_raw_recv_fds(c->fd, &c->rd, T, c->fds, &c->n_fds, 8);
	if (!r)
		return -1000;
	int st = r->status;
	*passed = st == 0 && r->file_read->fd_passed && c->n_fds == had + 1;
	snprintf(msg, 128, "%s", r->message ? r->message : "");
	porter__v1__response__free_unpacked(r, NULL);
	return st;
}

/* Opens `c` and reads "big" by descriptor 4 times, each passing one; 0
 * or 1 (said on stderr). */
static int take_four(rawc *c)
{
	CHECK(rawc_open(c) == 0);
	char msg[128];
	for (int i = 0; i < 4; i++) {
		int passed = 0;
		int st = rawc_read(c, 10 + (uint64_t)i, &passed, msg);
		if (st)
			fprintf(stderr, "uid %u, read %d: %d %s\n", (unsigned)getuid(), i, st, msg);
		CHECK(st == 0 && passed);
	}
	return 0;
}

/* Takes 4 descriptors, is refused the fifth naming the limit, and holds
 * them until the test says bob is done. */
static int alice(void *arg)
{
	(void)arg;
	rawc c;
	CHECK(take_four(&c) == 0);
	char msg[128];
	int passed = 0;
	CHECK(rawc_read(&c, 20, &passed, msg) == PORTER_E_BUSY);
	CHECK(strstr(msg, "file-max-streams-per-uid") != NULL);
	CHECK(c.n_fds == 4);
	atomic_store(&sh->stage, 1);
	for (int i = 0; i < 3000 && atomic_load(&sh->stage) != 2; i++)
		usleep(10000);
	CHECK(atomic_load(&sh->stage) == 2);
	rawc_close(&c);
	return 0;
}

static void *alice_thread(void *arg)
{
	*(int *)arg = th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice, NULL);
	return NULL;
}

/* While alice holds her 4: bob's own 4 come by descriptor, and libporter
 * reads the file for him, by descriptor, over and over. */
static int bob(void *arg)
{
	(void)arg;
	rawc c;
	CHECK(take_four(&c) == 0);
	rawc_close(&c);
	for (int i = 0; i < 50; i++) {
		porter_bytes *b = NULL;
		int rc = porter_file_read("shared", "big", 0, 0, 0, T, &b);
		CHECK(rc == 0);
		CHECK(b->len == BIG);
		porter_bytes_free(b);
	}
	return 0;
}

/* porterd as TH_UID_DAEMON with root "shared" (granted to the clients'
 * group) holding "big", at most 4 file streams per uid, and a descriptor
 * limit of `nofile` (0: the inherited one). */
static void start_shared(rlim_t nofile)
{
	snprintf(top, sizeof(top), "/tmp/porter-trustfdc-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
	ck_assert_int_eq(chown(top, TH_UID_DAEMON, TH_GID_PORTER), 0);
	ck_assert_int_eq(chmod(top, 0755), 0);
	/* porterd's file, readable by all and writable by none but it: one
	 * it passes to a foreign uid for reading (fspass_passable). */
	char p[128];
	snprintf(p, sizeof(p), "%s/big", top);
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < BIG; i++)
		fputc('0' + i % 10, f);
	fclose(f);
	ck_assert_int_eq(chown(p, TH_UID_DAEMON, TH_GID_PORTER), 0);
	ck_assert_int_eq(chmod(p, 0644), 0);
	char roots[128];
	snprintf(roots, sizeof(roots), "shared=%s:gids=%u", top, TH_GID_PORTER);
	const char *extra[] = {"--allow-uid",
			       "61010,61011,61012",
			       "--file-roots",
			       roots,
			       "--file-chunk-size",
			       "65536",
			       "--file-max-streams-per-uid",
			       "4",
			       NULL};

	th_tenant_daemon_nofile(nofile);
	int rc = th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, extra);
	th_tenant_daemon_nofile(0);
	ck_assert_int_eq(rc, 0);
}

static void stop_shared(void)
{
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
	th_rm_rf(top);
}

START_TEST(bystander_uid_unaffected)
{
	start_shared(0);
	sh = th_shared_alloc(sizeof(*sh));
	int alice_rc = -2;
	pthread_t th;
	pthread_create(&th, NULL, alice_thread, &alice_rc);
	for (int i = 0; i < 3000 && atomic_load(&sh->stage) != 1; i++)
		usleep(10000);
	ck_assert_int_eq(atomic_load(&sh->stage), 1);
	ck_assert_int_eq(th_as(TH_UID_BOB, TH_GID_PORTER, CHILD_MS, bob, NULL), 0);
	atomic_store(&sh->stage, 2);
	pthread_join(th, NULL);
	ck_assert_int_eq(alice_rc, 0);

	stop_shared();
}
END_TEST

#define FLOOD_CONNS 1
#define FLOOD_READS 201

/* Alice's flood: on each of FLOOD_CONNS connections, FLOOD_READS reads of
 * "big" by descriptor, each claiming every descriptor closed (which
 * porterd cannot check), and never a reply read: the descriptors stay in
 * flight in her sockets, charged to porterd's uid by the kernel. Holds
 * them until the test says bob is done. */
static int alice_floods(void *arg)
{
	(void)arg;
	int fds[FLOOD_CONNS];
	frame_reader rd[FLOOD_CONNS];
	for (int k = 0; k < FLOOD_CONNS; k++) {
		frame_reader_init(&rd[k], 1 << 20);
		fds[k] = th_rc_open(d.socket, &rd[k], T, NULL);
		CHECK(fds[k] >= 0);
		for (int i = 0; i < FLOOD_READS; i++) {
			Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
			Porter__V1__FileRead fr = PORTER__V1__FILE_READ__INIT;
			fr.root = "shared";
			fr.path = "big";
			fr.want_fd = 1;
			fr.fds_closed = UINT32_MAX;
			req.id = 100 + (uint64_t)i;
			req.timeout_ms = 60000;
			req.body_case = PORTER__V1__REQUEST__BODY_FILE_READ;
			req.file_read = &fr;
			CHECK(th_rc_send(fds[k], &req) == 0);
		}
	}
	sleep(2); /* porterd answers them all */
	atomic_store(&sh->stage, 1);
	for (int i = 0; i < 3000 && atomic_load(&sh->stage) != 2; i++)
		usleep(10000);
	/* Now she reads: how many descriptors were in flight to her. */
	static int got[FLOOD_READS + 8];
	for (int k = 0; k < FLOOD_CONNS; k++) {
		int n = 0;
		for (int i = 0; i < FLOOD_READS; i++) {
			Porter__V1__Response *r =
				th_raw_recv_fds(fds[k], &rd[k], T, got, &n, FLOOD_READS + 8);
			CHECK(r != NULL);
			porter__v1__response__free_unpacked(r, NULL);
		}
		sh->in_flight += n;
		while (n)
			close(got[--n]);
		close(fds[k]);
		frame_reader_free(&rd[k]);
	}
	return 0;
}

static void *alice_flood_thread(void *arg)
{
	*(int *)arg = th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_floods, NULL);
	return NULL;
}

/* Bob's reads of "big" through libporter while alice's flood is held. */
static int bob_reads(void *arg)
{
	(void)arg;
	for (int i = 0; i < 20; i++) {
		porter_bytes *b = NULL;
		int rc = porter_file_read("shared", "big", 0, 0, 0, T, &b);
		if (rc != 0)
			fprintf(stderr, "bob's read %d: %s: %s\n", i, porter_error_name(rc),
				porter_last_error_message());
		CHECK(rc == 0);
		CHECK(b->len == BIG);
		porter_bytes_free(b);
	}
	return 0;
}

/*
 * The kernel charges descriptors in flight (sent, not yet received) to the
 * sender's uid, up to its descriptor limit; past it every SCM_RIGHTS send
 * fails. Alice's reads by descriptor, never received and each claiming
 * every earlier one closed (the count trusts reports), filled porterd's
 * uid's share (201 on one connection against a limit of 200), and porterd
 * then took bob's failed send for a dead peer: his connection was closed
 * under his read. Now porterd passes a
 * descriptor only to a client that has read everything sent to it
 * before, so at most one per connection is ever in flight, and a send
 * the kernel refuses is answered by bytes.
 */
START_TEST(unread_descriptors_never_cut_off_a_bystander)
{
	start_shared(200);
	sh = th_shared_alloc(sizeof(*sh));
	int alice_rc = -2;
	pthread_t th;
	pthread_create(&th, NULL, alice_flood_thread, &alice_rc);
	for (int i = 0; i < 3000 && atomic_load(&sh->stage) != 1; i++)
		usleep(10000);
	ck_assert_int_eq(atomic_load(&sh->stage), 1);
	int bob_rc = th_as(TH_UID_BOB, TH_GID_PORTER, CHILD_MS, bob_reads, NULL);
	atomic_store(&sh->stage, 2);
	pthread_join(th, NULL);
	ck_assert_int_eq(alice_rc, 0);
	ck_assert_msg(bob_rc == 0, "bob's reads failed while alice's descriptors were in flight");
	ck_assert_msg(sh->in_flight <= FLOOD_CONNS,
		      "%d descriptors in flight on %d connections that read nothing", sh->in_flight,
		      FLOOD_CONNS);
	stop_shared();
}
END_TEST

static Suite *suite(void)
{
	const TTest *const tests[] = {bystander_uid_unaffected,
				      unread_descriptors_never_cut_off_a_bystander, NULL};
	return th_suite("trust_fd_count", "bystander", 120, tests);
}

TH_MAIN_ROOT(suite)
