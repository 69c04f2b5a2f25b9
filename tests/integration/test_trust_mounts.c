/*
 * Mount points inside file roots. A root granted at a directory its user
 * can also change outside porterd (alice's own docs directory, granted to
 * her) lets her mount a file system inside it; with FUSE (fusermount is
 * setuid on most desktops) every open, stat and close porterd makes
 * there waits on her FUSE daemon, holding a pool thread shared by every
 * client, or a worker loop in the fast path. porterd refuses to cross a
 * mount point inside a root unless the root has the option `mounts`, and
 * refuses a root that is itself on FUSE.
 *
 * Each test runs in a mount namespace of its own (Check forks each test;
 * it unshares and makes / private), so the tmpfs, bind and FUSE mounts
 * made here are seen by porterd and the clients forked from it, and go
 * away with the test's processes: nothing on the host to clean up.
 * porterd runs as TH_UID_DAEMON; alice (TH_UID_ALICE) owns the directory
 * granted to her twice, as "docs" (no crossing) and "span" (`mounts`).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
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
#include "tenant.h"

#define T 5000
#define CHILD_MS 30000

static th_daemon d;
static char top[64];   /* root's, 0755: everything below */
static char docs[96];  /* alice's directory, the roots "docs" and "span" */
static char users[96]; /* per-user root's parent (bob's "home") */

/* In a th_as child (tenant.h). */
#define EXPECT(call, want) TH_EXPECT(call, want)
#define has_content(root, path, want) th_has_content(root, path, want, T)
/* Fails the child unless `call` is refused as a mount point crossing:
 * PORTER_E_FILE_ESCAPE with words that say so. */
#define REFUSED(call)                                                                              \
	do {                                                                                       \
		EXPECT(call, PORTER_E_FILE_ESCAPE);                                                \
		if (!strstr(porter_last_error_message(), "mount point")) {                         \
			fprintf(stderr, "line %d: %s: message '%s' does not name the mount\n",     \
				__LINE__, #call, porter_last_error_message());                     \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

/* A new mount namespace for this test's processes, with / private so
 * nothing mounted here propagates to the host. */
static void private_mounts(void)
{
	ck_assert_msg(unshare(CLONE_NEWNS) == 0, "unshare: %s", strerror(errno));
	ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
}

static void put(const char *dir, const char *name, const char *text)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0660);
	ck_assert_msg(fd >= 0, "open %s: %s", p, strerror(errno));
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(fchown(fd, TH_UID_ALICE, TH_GID_PORTER), 0);
	ck_assert_int_eq(fchmod(fd, 0660), 0);
	close(fd);
}

static void alice_dir(const char *p)
{
	ck_assert_msg(mkdir(p, 0770) == 0, "mkdir %s: %s", p, strerror(errno));
	ck_assert_int_eq(chown(p, TH_UID_ALICE, TH_GID_PORTER), 0);
	ck_assert_int_eq(chmod(p, 0770), 0);
}

/* top/docs: plain.txt; mnt/ with a tmpfs on it holding inside.txt and
 * sub/; fmnt, a file with another file (bound.txt's) bound over it. */
static void make_tree(void)
{
	char p[160], q[200];
	private_mounts();
	snprintf(top, sizeof(top), "/tmp/porter-mounts-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
	ck_assert_int_eq(chmod(top, 0755), 0);
	snprintf(docs, sizeof(docs), "%s/docs", top);
	alice_dir(docs);
	put(docs, "plain.txt", "plain");
	snprintf(p, sizeof(p), "%s/mnt", docs);
	alice_dir(p);
	ck_assert_msg(mount("porter-test", p, "tmpfs", 0, "mode=0770,uid=61011,gid=61020") == 0,
		      "mount tmpfs: %s", strerror(errno));
	put(p, "inside.txt", "inside");
	snprintf(q, sizeof(q), "%s/sub", p);
	alice_dir(q);
	put(docs, "fmnt", "under");
	put(top, "bound.txt", "bound");
	snprintf(p, sizeof(p), "%s/fmnt", docs);
	snprintf(q, sizeof(q), "%s/bound.txt", top);
	ck_assert_int_eq(mount(q, p, NULL, MS_BIND, NULL), 0);
	snprintf(users, sizeof(users), "%s/users", top);
	ck_assert_int_eq(mkdir(users, 0755), 0);
	ck_assert_int_eq(chown(users, TH_UID_DAEMON, TH_GID_PORTER), 0);
}

/* porterd as TH_UID_DAEMON with the roots, and `more` (NULL or two more
 * arguments). */
static void start(const char *more_key, const char *more_val)
{
	char roots[512];
	snprintf(roots, sizeof(roots), "docs=%s:uids=%u, span=%s:uids=%u:mounts, home=%s/%%u", docs,
		 TH_UID_ALICE, docs, TH_UID_ALICE, users);
	const char *extra[] = {"--allow-uid", "61011,61012", "--file-roots", roots, more_key,
			       more_val,      NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, extra), 0);
}

static void stop(void)
{
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
	/* The mounts go with the namespace; the directories stay on the
	 * host's /tmp, under the mounts: unmount to remove them. */
	char p[160];
	umount2(docs, MNT_DETACH); /* first: it may cover the others */
	const char *inner[] = {"mnt", "fmnt", "fuse"};
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", docs, inner[i]);
		umount2(p, MNT_DETACH);
	}
	ck_assert_int_eq(th_rm_rf(top), 0);
}

/* Entry `name`'s type in the listing of `path` in `root`, or -1. */
static int listed_type(const char *root, const char *path, const char *name)
{
	porter_file_list *l = NULL;
	if (porter_file_list_dir(root, path, 0, T, &l) != 0)
		return -1;
	int type = -1;
	for (size_t i = 0; i < porter_file_list_count(l); i++)
		if (!strcmp(porter_file_list_name(l, i), name))
			porter_file_list_entry(l, i, &type, NULL, NULL);
	porter_file_list_free(l);
	return type;
}

/* Every operation on "docs" that would cross a mount point is refused in
 * words that name it; what stays on the root's file system works. */
static int alice_never_crosses(void *arg)
{
	(void)arg;
	porter_bytes *b = NULL;
	porter_file_info fi = PORTER_FILE_INFO_INIT;
	porter_file_list *l = NULL;
	porter_file_reader *rd = NULL;
	porter_file_writer *wr = NULL;
	porter_file_watch *w = NULL;
	char buf[64];
	size_t n = 0;
	uint64_t size = 0;

	EXPECT(has_content("docs", "plain.txt", "plain"), 0);
	REFUSED(porter_file_read("docs", "mnt/inside.txt", 0, 0, 0, T, &b));
	REFUSED(porter_file_read_into("docs", "mnt/inside.txt", 0, buf, sizeof(buf), 0, T, &n));
	REFUSED(porter_file_reader_open("docs", "mnt/inside.txt", 0, 0, 0, 0, T, &rd));
	REFUSED(porter_file_read("docs", "fmnt", 0, 0, 0, T, &b));
	REFUSED(porter_file_stat("docs", "mnt/inside.txt", 0, T, &fi));
	REFUSED(porter_file_stat("docs", "mnt", 0, T, &fi));
	REFUSED(porter_file_lstat("docs", "mnt", 0, T, &fi));
	REFUSED(porter_file_lstat("docs", "mnt/sub", 0, T, &fi));
	REFUSED(porter_file_stat("docs", "fmnt", 0, T, &fi));
	REFUSED(porter_file_lstat("docs", "fmnt", 0, T, &fi));
	REFUSED(porter_file_list_dir("docs", "mnt", 0, T, &l));
	REFUSED(porter_file_list_dir("docs", "mnt/sub", 0, T, &l));
	/* Listed, never entered: a mount point is "other". */
	if (listed_type("docs", "", "mnt") != PORTER_FILE_TYPE_OTHER ||
	    listed_type("docs", "", "fmnt") != PORTER_FILE_TYPE_OTHER ||
	    listed_type("docs", "", "plain.txt") != PORTER_FILE_TYPE_REGULAR) {
		fprintf(stderr, "listing of docs: mnt %d, fmnt %d, plain.txt %d\n",
			listed_type("docs", "", "mnt"), listed_type("docs", "", "fmnt"),
			listed_type("docs", "", "plain.txt"));
		return 1;
	}
	REFUSED(porter_file_write("docs", "mnt/new", "x", 1, PORTER_FILE_CREATE, 0, 0, T));
	REFUSED(porter_file_write("docs", "mnt/new", "x", 1, PORTER_FILE_ATOMIC, 0, 0, T));
	REFUSED(porter_file_write("docs", "mnt/inside.txt", "x", 1, 0, 0, 0, T));
	REFUSED(porter_file_write("docs", "fmnt", "x", 1, 0, 0, 0, T));
	REFUSED(porter_file_write("docs", "fmnt", "x", 1, PORTER_FILE_ATOMIC, 0, 0, T));
	REFUSED(porter_file_writer_open("docs", "mnt/new", PORTER_FILE_CREATE, 0, 0, T, &wr));
	REFUSED(porter_file_writer_open("docs", "mnt/new", PORTER_FILE_ATOMIC, 0, 0, T, &wr));
	REFUSED(porter_file_delete("docs", "mnt/inside.txt", 0, 0, T));
	REFUSED(porter_file_delete("docs", "mnt/sub", 1, 0, T));
	REFUSED(porter_file_mkdir("docs", "mnt/d", 0, 0, 0, T));
	REFUSED(porter_file_mkdir("docs", "mnt/a/b", 0, PORTER_FILE_PARENTS, 0, T));
	REFUSED(porter_file_mkdir("docs", "mnt/sub/c", 0, PORTER_FILE_PARENTS, 0, T));
	REFUSED(porter_file_rename("docs", "mnt/inside.txt", "moved.txt", 0, 0, T));
	REFUSED(porter_file_rename("docs", "plain.txt", "mnt/moved.txt", 0, 0, T));
	REFUSED(porter_file_copy("docs", "mnt/inside.txt", "copy.txt", 0, 0, T, &size));
	REFUSED(porter_file_copy("docs", "plain.txt", "mnt/copy.txt", 0, 0, T, &size));
	REFUSED(porter_file_copy("docs", "fmnt", "copy.txt", 0, 0, T, &size));
	REFUSED(porter_file_watch_open("docs", "mnt", 0, T, &w));
	REFUSED(porter_file_watch_open("docs", "mnt/inside.txt", 0, T, &w));
	/* The root's own file system still works, names beside the mounts
	 * included. */
	EXPECT(porter_file_write("docs", "new.txt", "new", 3, PORTER_FILE_ATOMIC, 0, 0, T), 0);
	EXPECT(porter_file_copy("docs", "new.txt", "copy.txt", 0, 0, T, &size), 0);
	EXPECT(porter_file_stat("docs", "", 0, T, &fi), 0);
	return 0;
}

/* The same paths in "span" (option `mounts`) cross. */
static int alice_crosses_where_allowed(void *arg)
{
	(void)arg;
	porter_file_info fi = PORTER_FILE_INFO_INIT;
	porter_file_watch *w = NULL;
	uint64_t size = 0;
	EXPECT(has_content("span", "mnt/inside.txt", "inside"), 0);
	EXPECT(has_content("span", "fmnt", "bound"), 0);
	EXPECT(porter_file_stat("span", "mnt", 0, T, &fi), 0);
	EXPECT(fi.type, PORTER_FILE_TYPE_DIRECTORY);
	EXPECT(porter_file_lstat("span", "fmnt", 0, T, &fi), 0);
	EXPECT(fi.type, PORTER_FILE_TYPE_REGULAR);
	if (listed_type("span", "mnt", "inside.txt") != PORTER_FILE_TYPE_REGULAR ||
	    listed_type("span", "", "mnt") != PORTER_FILE_TYPE_DIRECTORY) {
		fprintf(stderr, "span's listings do not cross the mount\n");
		return 1;
	}
	EXPECT(porter_file_write("span", "mnt/new.txt", "new", 3, PORTER_FILE_ATOMIC, 0, 0, T), 0);
	EXPECT(porter_file_mkdir("span", "mnt/a/b", 0, PORTER_FILE_PARENTS, 0, T), 0);
	EXPECT(porter_file_copy("span", "mnt/new.txt", "mnt/a/b/c.txt", 0, 0, T, &size), 0);
	EXPECT(porter_file_rename("span", "mnt/a/b/c.txt", "mnt/d.txt", 0, 0, T), 0);
	EXPECT(porter_file_watch_open("span", "mnt", 0, T, &w), 0);
	EXPECT(porter_file_watch_close(w, T), 0);
	EXPECT(porter_file_delete("span", "mnt/d.txt", 0, 0, T), 0);
	return 0;
}

static void check_mounts(const char *key, const char *val)
{
	make_tree();
	start(key, val);
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_never_crosses, NULL),
			 0);
	/* Nothing refused reached the mounted file systems. */
	char p[160];
	snprintf(p, sizeof(p), "%s/mnt", docs);
	ck_assert_uint_eq(th_dir_entries(p), 2); /* inside.txt, sub */
	snprintf(p, sizeof(p), "%s/bound.txt", top);
	ck_assert_int_eq(th_file_has(p, "bound"), 1);
	ck_assert_int_eq(
		th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_crosses_where_allowed, NULL), 0);
	/* The log says which roots span mounts. */
	ck_assert_int_eq(th_file_has(d.log, "spanning mount points"), 1);
	stop();
}

START_TEST(mounts_refused_openat2)
{
	check_mounts("--file-resolve", "auto");
}
END_TEST

START_TEST(mounts_refused_walk)
{
	check_mounts("--file-resolve", "walk");
}
END_TEST

/* A mount placed over the root's directory after porterd opened it is not
 * seen through the open root, nor after a reload (roots are opened at
 * start only): porterd keeps serving the directory it was given. */
static int alice_sees_the_covered_root(void *arg)
{
	(void)arg;
	porter_bytes *b = NULL;
	EXPECT(has_content("docs", "plain.txt", "plain"), 0);
	EXPECT(porter_file_read("docs", "cover.txt", 0, 0, 0, T, &b), PORTER_E_FILE_NOT_FOUND);
	EXPECT(porter_file_write("docs", "after.txt", "after", 5, PORTER_FILE_ATOMIC, 0, 0, T), 0);
	EXPECT(has_content("docs", "after.txt", "after"), 0);
	return 0;
}

START_TEST(mount_over_the_root_is_not_followed)
{
	make_tree();
	start("--file-resolve", "auto");
	ck_assert_int_eq(mount("porter-cover", docs, "tmpfs", 0, "mode=0770,uid=61011,gid=61020"),
			 0);
	put(docs, "cover.txt", "cover");
	ck_assert_int_eq(
		th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_sees_the_covered_root, NULL), 0);
	th_daemon_reload(&d, 1);
	ck_assert_int_eq(
		th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_sees_the_covered_root, NULL), 0);
	/* after.txt went to the covered directory, not the tmpfs. */
	char p[160];
	snprintf(p, sizeof(p), "%s/after.txt", docs);
	ck_assert_int_eq(access(p, F_OK), -1);
	stop();
}
END_TEST

/* A root that is itself a mount point (not FUSE): served as the file
 * system porterd found there at start; a mount inside it is not crossed. */
static int alice_uses_the_mounted_root(void *arg)
{
	(void)arg;
	porter_bytes *b = NULL;
	EXPECT(has_content("own", "on-mount.txt", "on the mount"), 0);
	EXPECT(porter_file_write("own", "new.txt", "new", 3, PORTER_FILE_ATOMIC, 0, 0, T), 0);
	REFUSED(porter_file_read("own", "inner/x.txt", 0, 0, 0, T, &b));
	return 0;
}

/*
 * Refutes that a root whose own directory is a mount point leaves a hole
 * beside the FUSE check: porterd opens the root once and serves the file
 * system found there; only a FUSE one (which any user may mount with
 * fusermount over a directory she owns) is refused at start. Any other
 * mount at the root's directory was made before porterd started by
 * whoever may mount there (root, an fstab 'user' entry's fixed place),
 * and nothing below it crosses into another mount either.
 */
START_TEST(root_that_is_a_mount_point_is_its_file_system)
{
	make_tree();
	char own[128], p[160], roots[512];
	snprintf(own, sizeof(own), "%s/own", top);
	alice_dir(own);
	ck_assert_int_eq(mount("porter-own", own, "tmpfs", 0, "mode=0770,uid=61011,gid=61020"), 0);
	put(own, "on-mount.txt", "on the mount");
	snprintf(p, sizeof(p), "%s/inner", own);
	alice_dir(p);
	ck_assert_int_eq(mount("porter-inner", p, "tmpfs", 0, "mode=0770,uid=61011,gid=61020"), 0);
	put(p, "x.txt", "inner");
	snprintf(roots, sizeof(roots), "own=%s:uids=%u", own, TH_UID_ALICE);
	const char *extra[] = {"--allow-uid", "61011,61012", "--file-roots", roots, NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, extra), 0);
	ck_assert_int_eq(
		th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_uses_the_mounted_root, NULL), 0);
	ck_assert_int_eq(th_file_has(d.log, "is on a FUSE file system"), 0);
	umount2(p, MNT_DETACH);
	umount2(own, MNT_DETACH);
	stop();
}
END_TEST

/* ---------------------------------------------------------------- FUSE */

/* The tree, and alice's empty directory docs/fuse (its path in `p`) for a
 * FUSE mount. */
static void make_tree_fuse_dir(char *p, size_t cap)
{
	make_tree();
	snprintf(p, cap, "%s/fuse", docs);
	alice_dir(p);
}

/* Reads of `arg` (a path in "docs") by 8 threads at once. */
static void *stalled_read(void *arg)
{
	porter_bytes *b = NULL;
	int rc = porter_file_read("docs", arg, 0, 0, 0, 2000, &b);
	porter_bytes_free(b);
	porter_thread_disconnect();
	return (void *)(intptr_t)rc;
}

static int alice_reads_her_fuse(void *arg)
{
	pthread_t t[8];
	int bad = 0;
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, stalled_read, arg);
	for (int i = 0; i < 8; i++) {
		void *rc;
		pthread_join(t[i], &rc);
		if ((int)(intptr_t)rc != PORTER_E_FILE_ESCAPE) {
			fprintf(stderr, "alice's read of %s gave %s (%s), want ESCAPE\n",
				(const char *)arg, porter_error_name((int)(intptr_t)rc),
				porter_last_error_message());
			bad = 1;
		}
	}
	return bad;
}

/* Bob's writes (always on the pool) in his per-user root. */
static int bob_is_served(void *arg)
{
	(void)arg;
	for (int i = 0; i < 4; i++)
		EXPECT(porter_file_write("home", "b.txt", "bob", 3, PORTER_FILE_ATOMIC, 0, 0, T),
		       0);
	return 0;
}

/* Alice mounts a stalled FUSE file system inside her root and asks for
 * files there from 8 threads: every one is refused at once, and bob's
 * writes meanwhile are served. (Before, each read held a pool thread until
 * the FUSE daemon answered, and bob's writes waited for a free one.) */
START_TEST(fuse_inside_a_root_holds_no_thread)
{
	char p[160];
	make_tree_fuse_dir(p, sizeof(p));
	int fuse = fuse_mount_stalled(p, TH_UID_ALICE, TH_GID_PORTER);
	ck_assert_msg(fuse >= 0, "no FUSE here (/dev/fuse): %s", strerror(errno));
	start("--file-resolve", "auto");
	pid_t alice = fork();
	ck_assert_int_ge(alice, 0);
	if (alice == 0)
		_exit(th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_reads_her_fuse,
			    "fuse/x") == 0
			      ? 0
			      : 1);
	int bob = th_as(TH_UID_BOB, TH_GID_PORTER, CHILD_MS, bob_is_served, NULL);
	int status = 0;
	ck_assert_int_eq(waitpid(alice, &status, 0), alice);
	ck_assert_int_eq(bob, 0);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "alice's reads: %d", status);
	close(fuse); /* aborts the connection: anything waiting fails */
	stop();
}
END_TEST

/* A root whose directory is on FUSE when porterd starts (alice mounted
 * over her own directory and waited for a restart) is refused: porterd
 * starts, says so, and the root's requests fail at once instead of
 * waiting on her daemon. */
static int alice_is_refused_fuse_root(void *arg)
{
	(void)arg;
	porter_bytes *b = NULL;
	porter_file_info fi = PORTER_FILE_INFO_INIT;
	REFUSED(porter_file_read("docs", "x", 0, 0, 0, T, &b));
	REFUSED(porter_file_stat("docs", "", 0, T, &fi));
	REFUSED(porter_file_write("docs", "y", "y", 1, PORTER_FILE_CREATE, 0, 0, T));
	/* Her other roots work. */
	EXPECT(porter_file_write("home", "a.txt", "a", 1, PORTER_FILE_ATOMIC, 0, 0, T), 0);
	return 0;
}

START_TEST(fuse_root_refused_at_start)
{
	make_tree();
	int fuse = fuse_mount_stalled(docs, TH_UID_ALICE, TH_GID_PORTER);
	ck_assert_msg(fuse >= 0, "no FUSE here (/dev/fuse): %s", strerror(errno));
	start("--file-resolve", "auto");
	ck_assert_int_eq(
		th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_is_refused_fuse_root, NULL), 0);
	ck_assert_int_eq(th_file_has(d.log, "is on a FUSE file system"), 1);
	close(fuse);
	stop();
}
END_TEST

/* A read of `arg` in "span", which crosses into the stalled FUSE mount:
 * it holds a pool thread until the mount's connection is aborted. */
static void *held_read(void *arg)
{
	porter_bytes *b = NULL;
	porter_file_read("span", arg, 0, 0, 0, CHILD_MS, &b);
	porter_bytes_free(b);
	return NULL;
}

static uint64_t queued_id;

static void *queued_list(void *arg)
{
	(void)arg;
	porter_file_list *l = NULL;
	int rc = porter_file_list_dir("docs", "", queued_id, CHILD_MS, &l);
	porter_file_list_free(l);
	if (rc != PORTER_E_CANCELLED) {
		fprintf(stderr, "the queued listing gave %s, want CANCELLED\n",
			porter_error_name(rc));
		return (void *)1;
	}
	const char *m = porter_last_error_message();
	if (!strstr(m, "cannot list '.' in root 'docs': cancelled")) {
		fprintf(stderr, "the queued listing's message: '%s'\n", m);
		return (void *)1;
	}
	return NULL;
}

/* Eight reads hold (or wait for) every pool thread; a listing queued
 * behind them is cancelled, and its refusal names the operation, the path
 * and the root (it said "cancelled before a pool thread was free"). */
static int alice_cancels_a_queued_listing(void *arg)
{
	pthread_t t[8], lt;
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, held_read, arg);
	usleep(1000 * 1000); /* the reads reach porterd first */
	queued_id = porter_call_id_new();
	pthread_create(&lt, NULL, queued_list, NULL);
	usleep(500 * 1000);
	EXPECT(porter_cancel(queued_id, T), 0);
	void *bad = NULL;
	pthread_join(lt, &bad);
	return bad ? 1 : 0; /* the reads end with the process */
}

START_TEST(stopped_request_names_itself)
{
	char p[160];
	make_tree_fuse_dir(p, sizeof(p));
	int fuse = fuse_mount_stalled(p, TH_UID_ALICE, TH_GID_PORTER);
	ck_assert_msg(fuse >= 0, "no FUSE here (/dev/fuse): %s", strerror(errno));
	start("--file-resolve", "auto");
	int rc = th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_cancels_a_queued_listing,
		       "fuse/x");
	close(fuse); /* aborts the connection: the held pool threads go */
	ck_assert_int_eq(rc, 0);
	stop();
}
END_TEST

/* ---------------------------------------- a mount placed as porterd opens */

static atomic_int toggling;

/* Mounts a stalled FUSE file system on `arg` and takes it off again, over
 * and over while `toggling`; each one's connection is aborted once it is
 * off, so whatever waited on it fails then. Returns how many it made. */
static void *toggle_fuse(void *arg)
{
	const char *dir = arg;
	uintptr_t n = 0;
	while (atomic_load(&toggling)) {
		int fd = fuse_mount_stalled(dir, TH_UID_ALICE, TH_GID_PORTER);
		if (fd < 0)
			break;
		umount2(dir, MNT_DETACH);
		close(fd);
		n++;
	}
	return (void *)n;
}

#define FLIPS 6000

/* Lists "flip" (an empty directory that a FUSE mount keeps covering and
 * uncovering) over and over: each listing is either of the directory
 * (empty) or refused as a mount point, never anything that came from the
 * mounted file system (its stalled daemon: an error once its connection
 * is aborted, or a wait). */
static int alice_lists_the_flipping_dir(void *arg)
{
	(void)arg;
	int ok = 0, refused = 0, other = 0;
	for (int i = 0; i < FLIPS; i++) {
		porter_file_list *l = NULL;
		int rc = porter_file_list_dir("docs", "flip", 0, T, &l);
		if (rc == 0 && porter_file_list_count(l) == 0)
			ok++;
		else if (rc == PORTER_E_FILE_ESCAPE && strstr(porter_last_error_message(), "mount"))
			refused++;
		else if (other++ < 5)
			fprintf(stderr, "listing %d of flip: %s (%s), %zu entries\n", i,
				porter_error_name(rc), rc ? porter_last_error_message() : "",
				rc ? 0 : porter_file_list_count(l));
		porter_file_list_free(l);
	}
	fprintf(stderr, "flip listed %d times, refused as a mount %d, other %d\n", ok, refused,
		other);
	return other ? 1 : 0;
}

/*
 * Walking a path (file-resolve walk), the mount of the last name is
 * checked and then the object checked is opened, never the name again: a
 * FUSE file system mounted on it in between is not entered. (The walk
 * used to open the name after checking it, and a mount made in between
 * was entered: listings of the flipping directory came back
 * PORTER_E_FILE_IO, from the mount's aborted connection, after waiting on
 * its stalled daemon.) openat2's RESOLVE_NO_XDEV is one step: checked
 * the same way.
 */
static void flip_under_listings(const char *mode)
{
	make_tree();
	char p[160];
	snprintf(p, sizeof(p), "%s/flip", docs);
	alice_dir(p);
	int probe = fuse_mount_stalled(p, TH_UID_ALICE, TH_GID_PORTER);
	ck_assert_msg(probe >= 0, "no FUSE here (/dev/fuse): %s", strerror(errno));
	umount2(p, MNT_DETACH);
	close(probe);
	start("--file-resolve", mode);
	atomic_store(&toggling, 1);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, toggle_fuse, p), 0);
	int rc = th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS * 2, alice_lists_the_flipping_dir,
		       NULL);
	atomic_store(&toggling, 0);
	void *made = NULL;
	pthread_join(t, &made);
	fprintf(stderr, "%s: %zu FUSE mounts made and taken off meanwhile\n", mode,
		(size_t)(uintptr_t)made);
	ck_assert_uint_gt((uintptr_t)made, 0);
	ck_assert_int_eq(rc, 0);
	stop();
}

START_TEST(walk_never_enters_a_mount_made_as_it_opens)
{
	flip_under_listings("walk");
}
END_TEST

START_TEST(openat2_never_enters_a_mount_made_as_it_opens)
{
	flip_under_listings("auto");
}
END_TEST

/* ------------------------------------- the loop on alice's FUSE files */

/*
 * alice's FUSE daemon (fuse_serve, answering `getattrs` stats at most when
 * > 0) mounted on docs/fuse with `more_opts` added to the mount options
 * ("" or ",option..."), porterd with one worker, and `fn` run as alice
 * (given docs). Fails unless it returns 0.
 */
static void run_on_fuse(int (*fn)(void *), int getattrs, const char *more_opts)
{
	char p[160];
	make_tree_fuse_dir(p, sizeof(p));
	fuse_srv f = {.getattrs = getattrs};
	pthread_t t;
	ck_assert_msg(fuse_srv_start(&f, &t, p, more_opts) == 0, "no FUSE here: %s",
		      strerror(errno));
	start("--workers", "1");
	int rc = th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, fn, docs);
	fprintf(stderr, "stats left unanswered: %d\n", atomic_load(&f.stalled));
	fuse_srv_stop(&f, t); /* anything waiting on it fails */
	ck_assert_int_eq(rc, 0);
	stop();
}

/* Changes the mode of docs/fuse/#5 (`docs` in arg): from then on alice's
 * FUSE daemon answers no stat. */
static int chmod_5(const void *docs_dir)
{
	char p[160];
	snprintf(p, sizeof(p), "%s/fuse/#5", (const char *)docs_dir);
	if (chmod(p, 0640) != 0) {
		fprintf(stderr, "chmod %s: %s\n", p, strerror(errno));
		return 1;
	}
	return 0;
}

/* Five pings, each answered only if nothing on the worker's loop waits on
 * the FUSE daemon. */
static int pings_answered(void)
{
	for (int i = 0; i < 5; i++) {
		usleep(100 * 1000);
		EXPECT(porter_ping(NULL, 0, 0, T), 0);
	}
	return 0;
}

/* Alice asks to watch her FUSE directory through "span" (which crosses
 * mounts), changes the mode of its "#5", then pings. */
static int alice_watches_her_fuse(void *arg)
{
	porter_file_watch *w = NULL;
	int rc = porter_file_watch_open("span", "fuse", 0, T, &w);
	if (rc != PORTER_E_UNSUPPORTED) {
		fprintf(stderr,
			"a watch on alice's FUSE directory gave %s (%s), want UNSUPPORTED\n",
			porter_error_name(rc), porter_last_error_message());
		porter_file_watch_free(w);
		return 1;
	}
	fprintf(stderr, "refused: %s\n", porter_last_error_message());
	return chmod_5(arg) || pings_answered();
}

/*
 * A watch is put on its object by the worker's loop (inotify_add_watch),
 * whose permission check asks a FUSE daemon mounted with
 * default_permissions for fresh attributes; and a change of '#N' in a
 * watched directory had the loop stat the directory, which asks any FUSE
 * daemon once its attributes expire. On a root that spans mounts the
 * object may be on alice's FUSE file system, whose daemon may never
 * answer: the worker's loop stopped, and her pings (everyone's on that
 * worker) timed out. A watch on FUSE is now refused, on the pool, before
 * the loop touches it (inotify sees there only the changes made on this
 * machine anyway). The old porterd opened the watch.
 */
START_TEST(a_watch_on_fuse_never_waits_on_its_daemon)
{
	run_on_fuse(alice_watches_her_fuse, 0, "");
}
END_TEST

/* A stat of "#5" that waits on the daemon (its thread times out). */
static void *stat_5(void *arg)
{
	(void)arg;
	porter_file_info fi = PORTER_FILE_INFO_INIT;
	intptr_t rc = porter_file_stat("span", "fuse/#5", 0, 3000, &fi);
	porter_thread_disconnect();
	return (void *)rc;
}

/* alice stats "#5" (its name is then cached), changes its mode, stats it
 * again from another thread while she pings. */
static int alice_stats_her_fuse(void *arg)
{
	porter_file_info fi = PORTER_FILE_INFO_INIT;
	EXPECT(porter_file_stat("span", "fuse/#5", 0, T, &fi), 0);
	if (chmod_5(arg))
		return 1;
	pthread_t t;
	if (pthread_create(&t, NULL, stat_5, NULL) != 0)
		return 1;
	int bad = pings_answered();
	void *rc;
	pthread_join(t, &rc);
	fprintf(stderr, "the stat that waited: %s\n", porter_error_name((int)(intptr_t)rc));
	return bad;
}

/*
 * The loop's fast path (fsfast) opens and stats a file whose name is in
 * the kernel's cache on the worker's loop. In a root that spans mounts the
 * file may be on alice's FUSE file system, and fstat asks her daemon once
 * its attributes expire: the old porterd's loop waited for it, and
 * alice's pings (everyone's on that worker) timed out, "porter_ping(...)
 * gave PORTER_E_TIMEOUT". Such roots' requests now go to the pool, where a
 * daemon that never answers holds one thread, as the `mounts` option says.
 */
START_TEST(a_fast_path_on_fuse_never_waits_on_its_daemon)
{
	run_on_fuse(alice_stats_her_fuse, 0, "");
}
END_TEST

typedef struct watch_try {
	int rc;
	char msg[256];
} watch_try;

/* alice's watch of her FUSE directory, on a thread of its own. */
static void *open_fuse_watch(void *arg)
{
	watch_try *wt = arg;
	porter_file_watch *w = NULL;
	wt->rc = porter_file_watch_open("span", "fuse", 0, 4000, &w);
	snprintf(wt->msg, sizeof(wt->msg), "%s", porter_last_error_message());
	porter_file_watch_free(w);
	porter_thread_disconnect();
	return NULL;
}

/* alice opens a watch of her FUSE directory from one thread and pings
 * from another: refused, and every ping answered. */
static int alice_watches_fuse_with_permissions(void *arg)
{
	(void)arg;
	watch_try wt = {0};
	pthread_t t;
	if (pthread_create(&t, NULL, open_fuse_watch, &wt) != 0)
		return 1;
	int bad = pings_answered();
	pthread_join(t, NULL);
	fprintf(stderr, "the watch: %s: %s\n", porter_error_name(wt.rc), wt.msg);
	EXPECT(wt.rc, PORTER_E_UNSUPPORTED);
	return bad;
}

/*
 * The hang itself, as a user could cause it: adding an inotify watch, on
 * the worker's loop, checks that porterd may read the object, and on FUSE
 * mounted with default_permissions (any user may ask fusermount for it)
 * that refreshes expired attributes from the daemon. alice's daemon
 * answers one stat (the pool's, as the watch opens) and no more: without
 * the refusal on the pool, porterd's loop waited on it, and a ping from
 * her other thread got "no Hello from porterd ... timed out".
 */
START_TEST(a_watch_never_reaches_the_loop_on_fuse)
{
	run_on_fuse(alice_watches_fuse_with_permissions, 1, ",default_permissions");
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {
		mounts_refused_openat2,
		mounts_refused_walk,
		mount_over_the_root_is_not_followed,
		root_that_is_a_mount_point_is_its_file_system,
		fuse_inside_a_root_holds_no_thread,
		fuse_root_refused_at_start,
		walk_never_enters_a_mount_made_as_it_opens,
		openat2_never_enters_a_mount_made_as_it_opens,
		stopped_request_names_itself,
		a_watch_on_fuse_never_waits_on_its_daemon,
		a_fast_path_on_fuse_never_waits_on_its_daemon,
		a_watch_never_reaches_the_loop_on_fuse,
		NULL,
	};
	return th_suite("trust_mounts", "mounts", 120, tests);
}

TH_MAIN_ROOT(suite)
