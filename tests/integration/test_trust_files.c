/*
 * File roots have owners (issue 15, item 4): porterd runs as its own
 * unprivileged uid and serves two foreign clients, alice and bob.
 *
 * Roots of every suite: "home" is per user (a private directory per uid),
 * "bobs" is granted to bob's uid only, "group" to the clients' group,
 * "others" to a group nobody here is in, and "plain" has no owners (porterd's
 * own). Each check runs in a child that has become alice or bob (or porterd's
 * own uid, a local client); the child returns 0 when everything it tried
 * came out as expected, and prints what did not.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "porter_errors.h"
#include "tenant.h"

#define T 5000
#define CHILD_MS 20000

static th_daemon d;
static char top[64];   /* the roots' parent, owned by porterd's uid */
static char users[96]; /* the per-user root's directory */

/* In a th_as child (tenant.h). */
#define EXPECT(call, want) TH_EXPECT(call, want)
#define has_content(root, path, want) th_has_content(root, path, want, T)

static void make_owned_dir(const char *path, uid_t uid, mode_t mode)
{
	ck_assert_msg(mkdir(path, mode) == 0, "mkdir %s: %s", path, strerror(errno));
	ck_assert_int_eq(chown(path, uid, TH_GID_PORTER), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
}

static void start(void)
{
	snprintf(top, sizeof(top), "/tmp/porter-trustfs-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
	ck_assert_int_eq(chown(top, TH_UID_DAEMON, TH_GID_PORTER), 0);
	ck_assert_int_eq(chmod(top, 0700), 0);
	char p[128];
	const char *dirs[] = {"bobs", "group", "others", "plain"};
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/%s", top, dirs[i]);
		make_owned_dir(p, TH_UID_DAEMON, 0700);
	}
	snprintf(users, sizeof(users), "%s/users", top);
	char roots[1024];
	snprintf(roots, sizeof(roots),
		 "home=%s/users/%%u, bobs=%s/bobs:uids=%u, group=%s/group:gids=%u, "
		 "others=%s/others:gids=%u, plain=%s/plain",
		 top, top, TH_UID_BOB, top, TH_GID_PORTER, top, TH_GID_PORTER + 1, top);
	const char *extra[] = {"--allow-uid", "61010,61011,61012", "--file-roots", roots, NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, extra), 0);
}

static void stop_daemon_only(void)
{
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}

static void stop(void)
{
	stop_daemon_only();
	ck_assert_int_eq(th_rm_rf(top), 0);
}

static int run_as(uid_t uid, int (*fn)(void *))
{
	return th_as(uid, TH_GID_PORTER, CHILD_MS, fn, NULL);
}

/* ------------------------------------------------- per-user roots */

static int bob_writes_secret(void *arg)
{
	(void)arg;
	EXPECT(porter_file_write("home", "secret.txt", "bob's", 5, PORTER_FILE_CREATE, 0, 0, T), 0);
	EXPECT(has_content("home", "secret.txt", "bob's"), 0);
	return 0;
}

static int alice_cannot_see_bobs(void *arg)
{
	(void)arg;
	porter_bytes *b = NULL;
	porter_file_info info = PORTER_FILE_INFO_INIT;
	porter_file_list *l = NULL;
	/* Her "home" is her own directory: bob's file is not in it. */
	EXPECT(porter_file_read("home", "secret.txt", 0, 0, 0, T, &b), PORTER_E_FILE_NOT_FOUND);
	EXPECT(porter_file_stat("home", "secret.txt", 0, T, &info), PORTER_E_FILE_NOT_FOUND);
	EXPECT(porter_file_delete("home", "secret.txt", 0, 0, T), PORTER_E_FILE_NOT_FOUND);
	EXPECT(porter_file_list_dir("home", "", 0, T, &l), 0);
	size_t n = porter_file_list_count(l);
	porter_file_list_free(l);
	if (n != 0) {
		fprintf(stderr, "alice's home lists %zu entries, want 0\n", n);
		return 1;
	}
	/* Nor can she climb over to it. */
	char abs[256];
	snprintf(abs, sizeof(abs), "%s/%u/secret.txt", users, TH_UID_BOB);
	EXPECT(porter_file_read("home", "../61012/secret.txt", 0, 0, 0, T, &b),
	       PORTER_E_FILE_ESCAPE);
	EXPECT(porter_file_read("home", abs, 0, 0, 0, T, &b), PORTER_E_FILE_ESCAPE);
	EXPECT(porter_file_write("home", "../61012/secret.txt", "alice", 5, 0, 0, 0, T),
	       PORTER_E_FILE_ESCAPE);
	EXPECT(porter_file_delete("home", "../61012/secret.txt", 0, 0, T), PORTER_E_FILE_ESCAPE);
	EXPECT(porter_file_list_dir("home", "..", 0, T, &l), PORTER_E_FILE_ESCAPE);
	porter_file_watch *w = NULL;
	EXPECT(porter_file_watch_open("home", "..", 0, T, &w), PORTER_E_FILE_ESCAPE);
	EXPECT(porter_file_watch_open("home", "../61012", 0, T, &w), PORTER_E_FILE_ESCAPE);
	/* Writing the same name makes her own file. */
	EXPECT(porter_file_write("home", "secret.txt", "alice's", 7, PORTER_FILE_CREATE, 0, 0, T),
	       0);
	EXPECT(has_content("home", "secret.txt", "alice's"), 0);
	return 0;
}

static int bob_still_has_his(void *arg)
{
	(void)arg;
	return has_content("home", "secret.txt", "bob's") == 0 ? 0 : 1;
}

START_TEST(per_user_root_is_private)
{
	start();
	char p[160];
	struct stat sb;
	/* Nothing is made before first use. */
	snprintf(p, sizeof(p), "%s/%u", users, TH_UID_BOB);
	ck_assert_int_eq(stat(p, &sb), -1);
	ck_assert_int_eq(run_as(TH_UID_BOB, bob_writes_secret), 0);
	/* Made on first use: porterd's, private. */
	ck_assert_int_eq(stat(p, &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	ck_assert_int_eq(sb.st_mode & 07777, 0700);
	ck_assert_int_eq(sb.st_uid, TH_UID_DAEMON);
	ck_assert_int_eq(run_as(TH_UID_ALICE, alice_cannot_see_bobs), 0);
	ck_assert_int_eq(run_as(TH_UID_BOB, bob_still_has_his), 0);
	snprintf(p, sizeof(p), "%s/%u/secret.txt", users, TH_UID_ALICE);
	ck_assert_int_eq(stat(p, &sb), 0);
	stop();
}
END_TEST

static int alice_uses_home(void *arg)
{
	(void)arg;
	porter_bytes *b = NULL;
	/* Whatever stands at her directory's name is not followed. */
	int rc = porter_file_read("home", "secret.txt", 0, 0, 0, T, &b);
	porter_bytes_free(b);
	if (rc == 0) {
		fprintf(stderr, "alice read through a planted directory\n");
		return 1;
	}
	rc = porter_file_write("home", "secret.txt", "alice", 5, PORTER_FILE_CREATE, 0, 0, T);
	return rc == 0 ? 1 : 0;
}

START_TEST(per_user_dir_never_followed)
{
	start();
	ck_assert_int_eq(run_as(TH_UID_BOB, bob_writes_secret), 0);
	/* A symlink in place of alice's directory, pointing at bob's, as a
	 * race or a careless administrator could leave it. */
	char link[160], target[160];
	snprintf(link, sizeof(link), "%s/%u", users, TH_UID_ALICE);
	snprintf(target, sizeof(target), "%s/%u", users, TH_UID_BOB);
	ck_assert_int_eq(symlink(target, link), 0);
	ck_assert_int_eq(run_as(TH_UID_ALICE, alice_uses_home), 0);
	ck_assert_int_eq(run_as(TH_UID_BOB, bob_still_has_his), 0);
	/* A directory there that porterd does not own is refused too. */
	ck_assert_int_eq(unlink(link), 0);
	make_owned_dir(link, TH_UID_ALICE, 0777);
	ck_assert_int_eq(run_as(TH_UID_ALICE, alice_uses_home), 0);
	stop();
}
END_TEST

/* --------------------------------------------------- granted roots */

static int bob_fills_roots(void *arg)
{
	(void)arg;
	EXPECT(porter_file_write("bobs", "mine.txt", "bob", 3, PORTER_FILE_CREATE, 0, 0, T), 0);
	EXPECT(has_content("bobs", "mine.txt", "bob"), 0);
	EXPECT(porter_file_write("group", "shared.txt", "bob", 3, PORTER_FILE_CREATE, 0, 0, T), 0);
	porter_bytes *b = NULL;
	EXPECT(porter_file_read("plain", "x", 0, 0, 0, T, &b), PORTER_E_DENIED);
	EXPECT(porter_file_read("others", "x", 0, 0, 0, T, &b), PORTER_E_DENIED);
	return 0;
}

static int alice_refused(void *arg)
{
	(void)arg;
	porter_bytes *b = NULL;
	porter_file_info info = PORTER_FILE_INFO_INIT;
	porter_file_list *l = NULL;
	porter_file_reader *rd = NULL;
	static const char *const roots[] = {"bobs", "plain", "others"};
	for (size_t i = 0; i < 3; i++) {
		const char *r = roots[i];
		EXPECT(porter_file_read(r, "mine.txt", 0, 0, 0, T, &b), PORTER_E_DENIED);
		EXPECT(porter_file_reader_open(r, "mine.txt", 0, 0, 0, 0, T, &rd), PORTER_E_DENIED);
		EXPECT(porter_file_stat(r, "mine.txt", 0, T, &info), PORTER_E_DENIED);
		EXPECT(porter_file_list_dir(r, "", 0, T, &l), PORTER_E_DENIED);
		EXPECT(porter_file_write(r, "mine.txt", "alice", 5, PORTER_FILE_TRUNCATE, 0, 0, T),
		       PORTER_E_DENIED);
		EXPECT(porter_file_write(r, "mine.txt", "alice", 5, PORTER_FILE_ATOMIC, 0, 0, T),
		       PORTER_E_DENIED);
		EXPECT(porter_file_write(r, "new.txt", "alice", 5, PORTER_FILE_CREATE, 0, 0, T),
		       PORTER_E_DENIED);
		EXPECT(porter_file_delete(r, "mine.txt", 0, 0, T), PORTER_E_DENIED);
		/* Nor may she watch another uid's root for changes. */
		porter_file_watch *w = NULL;
		EXPECT(porter_file_watch_open(r, "", 0, T, &w), PORTER_E_DENIED);
		EXPECT(porter_file_watch_open(r, "mine.txt", 0, T, &w), PORTER_E_DENIED);
	}
	/* The group's root is hers too. */
	EXPECT(has_content("group", "shared.txt", "bob"), 0);
	/* No root named: the first one granted to her (her home). */
	EXPECT(porter_file_write(NULL, "default.txt", "a", 1, PORTER_FILE_CREATE, 0, 0, T), 0);
	EXPECT(has_content("home", "default.txt", "a"), 0);
	return 0;
}

static int bob_checks(void *arg)
{
	(void)arg;
	EXPECT(has_content("bobs", "mine.txt", "bob"), 0);
	porter_file_info info = PORTER_FILE_INFO_INIT;
	EXPECT(porter_file_stat("bobs", "new.txt", 0, T, &info), PORTER_E_FILE_NOT_FOUND);
	/* His own root he may watch. */
	porter_file_watch *w = NULL;
	EXPECT(porter_file_watch_open("bobs", "", 0, T, &w), 0);
	EXPECT(porter_file_watch_close(w, T), 0);
	return 0;
}

/* porterd's own uid is a local client: every root, as before owners. */
static int local_reaches_all(void *arg)
{
	(void)arg;
	EXPECT(has_content("bobs", "mine.txt", "bob"), 0);
	EXPECT(porter_file_write("plain", "p.txt", "p", 1, PORTER_FILE_CREATE, 0, 0, T), 0);
	EXPECT(porter_file_write("others", "o.txt", "o", 1, PORTER_FILE_CREATE, 0, 0, T), 0);
	return 0;
}

START_TEST(ungranted_roots_refused)
{
	start();
	ck_assert_int_eq(run_as(TH_UID_BOB, bob_fills_roots), 0);
	ck_assert_int_eq(run_as(TH_UID_ALICE, alice_refused), 0);
	ck_assert_int_eq(run_as(TH_UID_BOB, bob_checks), 0);
	ck_assert_int_eq(run_as(TH_UID_DAEMON, local_reaches_all), 0);
	stop();
}
END_TEST

/* ------------------------------------------------------------ modes */

static int alice_asks_for_modes(void *arg)
{
	(void)arg;
	EXPECT(porter_file_write("home", "suid", "x", 1, PORTER_FILE_ATOMIC, 06777, 0, T), 0);
	EXPECT(porter_file_write("home", "world", "x", 1, PORTER_FILE_CREATE, 0666, 0, T), 0);
	EXPECT(porter_file_write("group", "world", "x", 1, PORTER_FILE_CREATE, 04777, 0, T), 0);
	/* A replace keeps the mode it finds, masked too. */
	EXPECT(porter_file_write("group", "world", "y", 1, PORTER_FILE_ATOMIC, 0, 0, T), 0);
	return 0;
}

static mode_t mode_of(const char *dir, const char *name)
{
	char p[256];
	struct stat sb;
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	ck_assert_msg(stat(p, &sb) == 0, "stat %s: %s", p, strerror(errno));
	return sb.st_mode & 07777;
}

START_TEST(modes_masked)
{
	start();
	ck_assert_int_eq(run_as(TH_UID_ALICE, alice_asks_for_modes), 0);
	char home[128], group[96];
	snprintf(home, sizeof(home), "%s/%u", users, TH_UID_ALICE);
	snprintf(group, sizeof(group), "%s/group", top);
	/* fchmod after O_TMPFILE: exactly the ceiling. */
	ck_assert_int_eq(mode_of(home, "suid"), 0660);
	/* Plain creates also go through porterd's umask: at most the ceiling,
	 * never setuid/setgid/sticky or anything for others. */
	ck_assert_int_eq(mode_of(home, "world") & ~0660, 0);
	ck_assert_int_eq(mode_of(group, "world") & ~0660, 0);
	stop();
}
END_TEST

/* -------------------------------------------------------- escapes */

static int alice_escapes(void *arg)
{
	(void)arg;
	porter_bytes *b = NULL;
	porter_file_info info = PORTER_FILE_INFO_INIT;
	EXPECT(porter_file_write("home", "inside.txt", "in", 2, PORTER_FILE_CREATE, 0, 0, T), 0);
	/* Planted by the test: links out of her directory. */
	EXPECT(porter_file_read("home", "to-bob/secret.txt", 0, 0, 0, T, &b), PORTER_E_FILE_ESCAPE);
	EXPECT(porter_file_read("home", "to-passwd", 0, 0, 0, T, &b), PORTER_E_FILE_ESCAPE);
	EXPECT(porter_file_write("home", "to-bob/secret.txt", "x", 1, 0, 0, 0, T),
	       PORTER_E_FILE_ESCAPE);
	EXPECT(porter_file_write("home", "to-bob/new.txt", "x", 1, PORTER_FILE_ATOMIC, 0, 0, T),
	       PORTER_E_FILE_ESCAPE);
	EXPECT(porter_file_stat("home", "to-bob/secret.txt", 0, T, &info), PORTER_E_FILE_ESCAPE);
	EXPECT(porter_file_read("home", "/etc/passwd", 0, 0, 0, T, &b), PORTER_E_FILE_ESCAPE);
	EXPECT(porter_file_read("home", "a/../../61012/secret.txt", 0, 0, 0, T, &b),
	       PORTER_E_FILE_ESCAPE);
	EXPECT(porter_file_read("group", "../bobs/mine.txt", 0, 0, 0, T, &b), PORTER_E_FILE_ESCAPE);
	EXPECT(porter_file_read("group", "/proc/self/root/etc/passwd", 0, 0, 0, T, &b),
	       PORTER_E_FILE_ESCAPE);
	/* A link that stays inside her directory still works. */
	EXPECT(has_content("home", "to-inside", "in"), 0);
	return 0;
}

START_TEST(escapes_refused_in_new_roots)
{
	start();
	ck_assert_int_eq(run_as(TH_UID_BOB, bob_writes_secret), 0);
	ck_assert_int_eq(run_as(TH_UID_BOB, bob_fills_roots), 0);
	char dir[160], p[192], target[192];
	snprintf(dir, sizeof(dir), "%s/%u", users, TH_UID_ALICE);
	make_owned_dir(dir, TH_UID_DAEMON, 0700);
	snprintf(p, sizeof(p), "%s/to-bob", dir);
	snprintf(target, sizeof(target), "%s/%u", users, TH_UID_BOB);
	ck_assert_int_eq(symlink(target, p), 0);
	snprintf(p, sizeof(p), "%s/to-passwd", dir);
	ck_assert_int_eq(symlink("/etc/passwd", p), 0);
	snprintf(p, sizeof(p), "%s/to-inside", dir);
	ck_assert_int_eq(symlink("inside.txt", p), 0);
	ck_assert_int_eq(run_as(TH_UID_ALICE, alice_escapes), 0);
	ck_assert_int_eq(run_as(TH_UID_BOB, bob_still_has_his), 0);
	ck_assert_int_eq(run_as(TH_UID_BOB, bob_checks), 0);
	stop();
}
END_TEST

/* ------------------------------------------------ files by descriptor */

/* What alice and bob tell each other across their processes. */
typedef struct fd_share {
	_Atomic uint64_t sid; /* alice's atomic write stream */
	atomic_int stage;     /* 1: alice holds it open; 2: bob has tried */
} fd_share;
static fd_share *share;

/* A raw connection of the calling child (Hello with client instance 42,
 * the same for alice and bob: only the uid tells them apart). */
typedef struct rawc {
	int fd;
	frame_reader rd;
	int fds[8];
	int n_fds;
} rawc;

static void rawc_open(rawc *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = th_raw_connect(d.socket);
	frame_reader_init(&c->rd, 1 << 20);
	th_raw_hello(c->fd, &c->rd, PORTER_PROTOCOL_VERSION, 0);
}

static Porter__V1__Response *rawc_call(rawc *c, Porter__V1__Request *req, uint64_t id)
{
	req->id = id;
	th_raw_send(c->fd, req);
	return th_raw_recv_fds(c->fd, &c->rd, T, c->fds, &c->n_fds, 8);
}

static int rawc_commit(rawc *c, uint64_t sid)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileWriteCommit wc = PORTER__V1__FILE_WRITE_COMMIT__INIT;
	wc.stream_id = sid;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_WRITE_COMMIT;
	req.file_write_commit = &wc;
	Porter__V1__Response *r = rawc_call(c, &req, 77);
	int st = r ? r->status : PORTER_E_CONN_LOST;
	porter__v1__response__free_unpacked(r, NULL);
	return st;
}

/* Fails the child when `cond` is false. */
#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "uid %u, line %d: %s (errno %s)\n", (unsigned)getuid(),    \
				__LINE__, #cond, strerror(errno));                                 \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

/* Makes `req` a read of the whole of home/`path` (not NULL, kept) that
 * asks for the descriptor, in `fr` (both zeroed by their INIT). */
static void read_by_fd(Porter__V1__Request *req, Porter__V1__FileRead *fr, const char *path)
{
	fr->root = "home";
	fr->path = (char *)path;
	fr->want_fd = 1;
	req->body_case = PORTER__V1__REQUEST__BODY_FILE_READ;
	req->file_read = fr;
}

/*
 * Alice's own file by descriptor: read-only, and nothing the descriptor
 * lets her widen (no write, no reopen for writing through /proc, no
 * chmod: porterd owns the file). Then an atomic write whose O_TMPFILE she
 * holds while bob tries to commit it, which she commits herself.
 */
static int alice_by_descriptor(void *arg)
{
	(void)arg;
	/* Past 64 KiB, so that its read passes the descriptor. */
	static char mine[100000];
	memset(mine, 'a', sizeof(mine));
	memcpy(mine, "alice", 5);
	EXPECT(porter_file_write("home", "mine.txt", mine, sizeof(mine), PORTER_FILE_CREATE, 0, 0,
				 T),
	       0);
	rawc c;
	rawc_open(&c);
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileRead fr = PORTER__V1__FILE_READ__INIT;
	read_by_fd(&req, &fr, "mine.txt");
	Porter__V1__Response *r = rawc_call(&c, &req, 2);
	CHECK(r && r->status == 0 && r->file_read->fd_passed && c.n_fds == 1);
	porter__v1__response__free_unpacked(r, NULL);
	int fd = c.fds[--c.n_fds];
	char proc[64], buf[8] = {0};
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY);
	CHECK(pread(fd, buf, 5, 0) == 5 && memcmp(buf, "alice", 5) == 0);
	CHECK(write(fd, "x", 1) == -1 && errno == EBADF);
	CHECK(open(proc, O_RDWR) == -1 && errno == EACCES);
	CHECK(open(proc, O_WRONLY) == -1 && errno == EACCES);
	CHECK(fchmod(fd, 0666) == -1 && errno == EPERM);
	close(fd);

	Porter__V1__Request wreq = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileWriteOpen wo = PORTER__V1__FILE_WRITE_OPEN__INIT;
	wo.root = "home";
	wo.path = "new.txt";
	wo.flags = PORTER_FILE_ATOMIC;
	wo.want_fd = 1;
	wreq.body_case = PORTER__V1__REQUEST__BODY_FILE_WRITE_OPEN;
	wreq.file_write_open = &wo;
	r = rawc_call(&c, &wreq, 3);
	CHECK(r && r->status == 0 && r->file_write->fd_passed && c.n_fds == 1);
	uint64_t sid = r->file_write->stream_id;
	porter__v1__response__free_unpacked(r, NULL);
	fd = c.fds[--c.n_fds];
	CHECK(write(fd, "atomic", 6) == 6);
	/* Her temp file cannot be given a name of her choosing outside the
	 * root: the kernel refuses hard links to a file she does not own
	 * (fs.protected_hardlinks, 1 here and on every common distribution). */
	FILE *ph = fopen("/proc/sys/fs/protected_hardlinks", "r");
	int protected_links = ph && fgetc(ph) == '1';
	if (ph)
		fclose(ph);
	if (protected_links) {
		char stolen[96];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		snprintf(stolen, sizeof(stolen), "/tmp/porter-stolen-%d", (int)getpid());
		CHECK(linkat(AT_FDCWD, proc, AT_FDCWD, stolen, AT_SYMLINK_FOLLOW) == -1);
		CHECK(linkat(fd, "", AT_FDCWD, stolen, AT_EMPTY_PATH) == -1);
	}
	close(fd);
	atomic_store(&share->sid, sid);
	atomic_store(&share->stage, 1);
	for (int i = 0; i < 1500 && atomic_load(&share->stage) != 2; i++)
		usleep(10000);
	CHECK(atomic_load(&share->stage) == 2);
	EXPECT(rawc_commit(&c, sid), 0);
	EXPECT(has_content("home", "new.txt", "atomic"), 0);
	close(c.fd);
	frame_reader_free(&c.rd);
	return 0;
}

/* Bob, with alice's stream id and the same client instance number, while
 * her connection holds the temp file: not his, so it does not exist. */
static int bob_commits_alices(void *arg)
{
	(void)arg;
	rawc c;
	rawc_open(&c);
	EXPECT(rawc_commit(&c, atomic_load(&share->sid)), PORTER_E_NOT_FOUND);
	close(c.fd);
	frame_reader_free(&c.rd);
	return 0;
}

/* 1 when this process can hard-link `fd` into /tmp or reopen it for
 * reading and writing through /proc/self/fd (each undone at once). */
static int fd_widens(int fd)
{
	char proc[64], stolen[96];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	snprintf(stolen, sizeof(stolen), "/tmp/porter-stolen-%d", (int)getpid());
	int wide = 0;
	int rw = open(proc, O_RDWR);
	if (rw >= 0) {
		fprintf(stderr, "uid %u: reopened a passed descriptor O_RDWR\n",
			(unsigned)getuid());
		close(rw);
		wide = 1;
	}
	if (linkat(AT_FDCWD, proc, AT_FDCWD, stolen, AT_SYMLINK_FOLLOW) == 0) {
		fprintf(stderr, "uid %u: hard-linked a passed descriptor to %s\n",
			(unsigned)getuid(), stolen);
		unlink(stolen);
		wide = 1;
	}
	return wide;
}

/*
 * A group-writable file (mode 0660, the default file-max-mode, porterd's
 * group being the clients'): a descriptor of it would let alice reopen a
 * read one for writing, and hard-link either kind outside the root where
 * it outlives her grant (fs.protected_hardlinks allows a link to a file
 * its uid may read and write). Whatever porterd passes must not.
 */
static int alice_group_writable(void *arg)
{
	(void)arg;
	static char big[100000];
	memset(big, 'g', sizeof(big));
	EXPECT(porter_file_write("home", "grp.txt", big, sizeof(big), PORTER_FILE_CREATE, 0660, 0,
				 T),
	       0);
	rawc c;
	rawc_open(&c);
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileRead fr = PORTER__V1__FILE_READ__INIT;
	read_by_fd(&req, &fr, "grp.txt");
	for (uint64_t id = 2; id < 4; id++) { /* the second may take the fast path */
		Porter__V1__Response *r = rawc_call(&c, &req, id);
		CHECK(r && r->status == 0);
		porter__v1__response__free_unpacked(r, NULL);
		while (c.n_fds > 0) {
			int fd = c.fds[--c.n_fds];
			int wide = fd_widens(fd);
			close(fd);
			CHECK(!wide);
		}
	}
	for (int i = 0; i < 2; i++) { /* an atomic write's temp file, a plain write's file */
		Porter__V1__Request wreq = PORTER__V1__REQUEST__INIT;
		Porter__V1__FileWriteOpen wo = PORTER__V1__FILE_WRITE_OPEN__INIT;
		wo.root = "home";
		wo.path = i ? "grp.txt" : "grp2.txt";
		wo.flags = i ? PORTER_FILE_APPEND : PORTER_FILE_ATOMIC | PORTER_FILE_CREATE;
		wo.mode = 0660;
		wo.want_fd = 1;
		wreq.body_case = PORTER__V1__REQUEST__BODY_FILE_WRITE_OPEN;
		wreq.file_write_open = &wo;
		Porter__V1__Response *r = rawc_call(&c, &wreq, 10 + (uint64_t)i);
		CHECK(r && r->status == 0);
		porter__v1__response__free_unpacked(r, NULL);
		while (c.n_fds > 0) {
			int fd = c.fds[--c.n_fds];
			int wide = fd_widens(fd);
			close(fd);
			CHECK(!wide);
		}
	}
	close(c.fd);
	frame_reader_free(&c.rd);
	return 0;
}

START_TEST(group_writable_not_widened)
{
	start();
	ck_assert_int_eq(run_as(TH_UID_ALICE, alice_group_writable), 0);
	stop();
}
END_TEST

static void *alice_thread(void *arg)
{
	*(int *)arg = run_as(TH_UID_ALICE, alice_by_descriptor);
	return NULL;
}

START_TEST(descriptors_across_uids)
{
	start();
	share = th_shared_alloc(sizeof(*share));
	int alice_rc = -2;
	pthread_t th;
	pthread_create(&th, NULL, alice_thread, &alice_rc);
	for (int i = 0; i < 1500 && atomic_load(&share->stage) != 1; i++)
		usleep(10000);
	ck_assert_int_eq(atomic_load(&share->stage), 1);
	ck_assert_int_eq(run_as(TH_UID_BOB, bob_commits_alices), 0);
	atomic_store(&share->stage, 2);
	pthread_join(th, NULL);
	ck_assert_int_eq(alice_rc, 0);
	/* In her directory, porterd's, as any file it creates. */
	char p[192];
	struct stat sb;
	snprintf(p, sizeof(p), "%s/%u/new.txt", users, TH_UID_ALICE);
	ck_assert_int_eq(stat(p, &sb), 0);
	ck_assert_int_eq(sb.st_uid, TH_UID_DAEMON);
	ck_assert_int_eq(sb.st_nlink, 1);
	stop();
}
END_TEST

/* ------------------------------------------------- special files */

/* Fails the child when `call` gives 0 (it must be refused, not hang). */
#define EXPECT_REFUSED(call)                                                                       \
	do {                                                                                       \
		int rc_ = (call);                                                                  \
		if (rc_ == 0) {                                                                    \
			fprintf(stderr, "uid %u, line %d: %s succeeded\n", (unsigned)getuid(),     \
				__LINE__, #call);                                                  \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

/* A FIFO (with a reader waiting on it) and a socket file in a root that
 * its members could also write directly: every operation answers at once
 * (no pool thread parked on an open or a read), and none treats them as
 * files. */
static int alice_special_files(void *arg)
{
	(void)arg;
	porter_bytes *b = NULL;
	porter_file_watch *w = NULL;
	porter_file_info info = PORTER_FILE_INFO_INIT;
	uint64_t n = 0;
	EXPECT(porter_file_read("group", "fifo", 0, 0, 0, T, &b), PORTER_E_INVAL);
	EXPECT(porter_file_read("group", "fifo", 0, 16, 0, T, &b), PORTER_E_INVAL);
	EXPECT_REFUSED(porter_file_read("group", "sock", 0, 0, 0, T, &b));
	EXPECT(porter_file_copy("group", "fifo", "copy", 0, 0, T, &n), PORTER_E_INVAL);
	EXPECT(porter_file_write("group", "fifo", "x", 1, 0, 0, 0, T), PORTER_E_INVAL);
	EXPECT(porter_file_write("group", "fifo", "x", 1, PORTER_FILE_APPEND, 0, 0, T),
	       PORTER_E_INVAL);
	EXPECT_REFUSED(porter_file_write("group", "sock", "x", 1, 0, 0, 0, T));
	EXPECT(porter_file_watch_open("group", "fifo", 0, T, &w), PORTER_E_INVAL);
	EXPECT(porter_file_stat("group", "fifo", 0, T, &info), 0);
	if (info.type != PORTER_FILE_TYPE_OTHER)
		return 1;
	/* An atomic replace puts a regular file in its place. */
	EXPECT(porter_file_write("group", "fifo", "file", 4, PORTER_FILE_ATOMIC, 0, 0, T), 0);
	EXPECT(has_content("group", "fifo", "file"), 0);
	return 0;
}

START_TEST(special_files_never_block)
{
	start();
	char fifo[100], sock[100];
	snprintf(fifo, sizeof(fifo), "%s/group/fifo", top);
	snprintf(sock, sizeof(sock), "%s/group/sock", top);
	ck_assert_int_eq(mkfifo(fifo, 0666), 0);
	ck_assert_int_eq(chown(fifo, TH_UID_ALICE, TH_GID_PORTER), 0);
	ck_assert_int_eq(chmod(fifo, 0666), 0);
	/* Its reader: a writer's open then succeeds at once. */
	int rfd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ge(rfd, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	int sfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(bind(sfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(sfd, 1), 0);
	int rc = run_as(TH_UID_ALICE, alice_special_files);
	close(rfd);
	close(sfd);
	ck_assert_int_eq(rc, 0);
	stop();
}
END_TEST

/* Alice moves bob's directory to her number (she may write the parent). */
static int alice_takes_bobs_dir(void *arg)
{
	const char *parent = arg;
	char from[160], to[160];
	snprintf(from, sizeof(from), "%s/%u", parent, TH_UID_BOB);
	snprintf(to, sizeof(to), "%s/%u", parent, TH_UID_ALICE);
	return rename(from, to) == 0 ? 0 : 1;
}

/* 0 when alice reads bob's secret as her own. */
static int alice_reads_bobs(void *arg)
{
	(void)arg;
	return has_content("home", "secret.txt", "bob's") == 0 ? 0 : 1;
}

/*
 * A per-user root's parent that the clients' group may write (root's,
 * 0770, group porter: how porterd's uid would be let in without owning
 * it) let alice rename bob's directory to her number: porterd owns both,
 * so the check of the owner passed, and her next read was bob's secret.
 * Now porterd refuses such a parent at start and names it.
 */
START_TEST(per_user_parent_others_may_write_refused)
{
	char base[64], parent[96], roots[160];
	snprintf(base, sizeof(base), "/tmp/porter-trustpu-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
	ck_assert_int_eq(chmod(base, 0755), 0);
	snprintf(parent, sizeof(parent), "%s/users", base);
	make_owned_dir(parent, 0, 0770);
	snprintf(roots, sizeof(roots), "home=%s/%%u", parent);
	const char *extra[] = {"--allow-uid", "61010,61011,61012", "--file-roots", roots, NULL};
	if (th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, extra) == 0) {
		/* The old code started: show what the parent gives alice. */
		ck_assert_int_eq(run_as(TH_UID_BOB, bob_writes_secret), 0);
		ck_assert_int_eq(
			th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_takes_bobs_dir, parent),
			0);
		int stolen = run_as(TH_UID_ALICE, alice_reads_bobs) == 0;
		stop_daemon_only();
		th_rm_rf(base);
		ck_assert_msg(!stolen, "alice renamed bob's directory to her number and read his "
				       "secret");
		ck_abort_msg("porterd started with a per-user parent others may write");
	}
	ck_assert_int_ge(th_file_count(d.log, "holds every uid's directory and others may change "
					      "it"),
			 1);
	th_daemon_cleanup(&d);
	th_rm_rf(base);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {per_user_root_is_private,
				per_user_dir_never_followed,
				ungranted_roots_refused,
				modes_masked,
				escapes_refused_in_new_roots,
				descriptors_across_uids,
				group_writable_not_widened,
				special_files_never_block,
				per_user_parent_others_may_write_refused,
				NULL};
	return th_suite("trust_files", "roots", 120, tests);
}

TH_MAIN_ROOT(suite)
