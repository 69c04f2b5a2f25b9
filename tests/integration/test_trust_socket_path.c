/*
 * Trust boundary, the socket a client reaches (issue 15): a client never
 * talks to another user's daemon at its default socket path
 * (/tmp/porter-$UID, which anyone can create first), nor at a named path
 * another uid could have prepared (a stale name in /tmp, a directory or
 * symlink someone made there, a third uid's directory on the way). The
 * daemon is a fake porterd run as another uid (tenant.h) that looks for
 * the victim's password in what it reads.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "rawc.h"
#include "tenant.h"

/* ---- the default socket path, taken by another user ---- */

typedef struct squat {
	char path[108]; /* /tmp/porter-V/porter.sock */
	volatile int listening;
	int frames;     /* frames the listener got from the client */
	int got_secret; /* the conninfo's password was among them */
	int client_rc;  /* what the client's call returned */
	int named;      /* the victim names path in PORTER_SOCKET */
	char via[108];  /* what she names there instead, if not "" */
	int via_fd;     /* she names /proc/self/fd/N, N her O_PATH descriptor of path */
} squat;

#define SQUAT_SECRET "victim-secret-7d1c"

/* Reads one frame into buf (capacity cap) within 3 s: its length, or -1. */
static ssize_t read_frame(int fd, uint8_t *buf, size_t cap)
{
	size_t got = 0, want = FRAME_HEADER_SIZE;
	long long until = th_now_ms() + 3000;
	while (got < want && th_now_ms() < until) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t r = recv(fd, buf + got, want - got, 0);
		if (r <= 0)
			return -1;
		got += (size_t)r;
		if (got == FRAME_HEADER_SIZE && want == FRAME_HEADER_SIZE) {
			size_t len = frame_get_header(buf);
			if (len > cap - FRAME_HEADER_SIZE)
				return -1;
			want += len;
		}
	}
	return got == want ? (ssize_t)got : -1;
}

/* A fake porterd at s->path: answers Hello as porterd would, then reads
 * the next request, looking for the password in it. */
static int fake_porterd(void *arg)
{
	squat *s = arg;
	static uint8_t buf[1 << 16];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->path);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unlink(s->path);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(s->path, 0777) < 0 ||
	    listen(l, 4) < 0)
		return 1;
	s->listening = 1;
	struct pollfd p = {.fd = l, .events = POLLIN};
	if (poll(&p, 1, 10000) <= 0)
		return 2;
	int c = accept(l, NULL, NULL);
	if (c < 0 || read_frame(c, buf, sizeof(buf)) < 0)
		return 0; /* the client went away before Hello: nothing taken */
	s->frames = 1;
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__HelloReply hr = PORTER__V1__HELLO_REPLY__INIT;
	hr.protocol = PORTER_PROTOCOL_VERSION;
	hr.daemon_version = "fake";
	hr.max_frame = 1 << 20;
	hr.max_inflight = 16;
	resp.id = 0;
	resp.body_case = PORTER__V1__RESPONSE__BODY_HELLO;
	resp.hello = &hr;
	Porter__V1__Request *hello =
		porter__v1__request__unpack(NULL, frame_get_header(buf), buf + FRAME_HEADER_SIZE);
	if (hello)
		resp.id = hello->id;
	porter__v1__request__free_unpacked(hello, NULL);
	uint8_t *out;
	size_t outlen;
	if (frame_pack(&resp.base, 1 << 20, &out, &outlen) != 0)
		return 3;
	send(c, out, outlen, MSG_NOSIGNAL);
	free(out);
	ssize_t n = read_frame(c, buf, sizeof(buf));
	if (n > 0) {
		s->frames = 2;
		s->got_secret = memmem(buf, (size_t)n, SQUAT_SECRET, strlen(SQUAT_SECRET)) != NULL;
	}
	close(c);
	close(l);
	return 0;
}

/* The victim: an app without XDG_RUNTIME_DIR (cron, su, a container) and
 * without PORTER_SOCKET, so libporter uses /tmp/porter-$UID; or, with
 * s->named, one whose PORTER_SOCKET names s->path. */
static int victim_queries(void *arg)
{
	squat *s = arg;
	if (s->named)
		setenv("PORTER_SOCKET", s->via[0] ? s->via : s->path, 1);
	else
		unsetenv("PORTER_SOCKET");
	unsetenv("XDG_RUNTIME_DIR");
	if (!th_wait_flag(&s->listening, 10000))
		return 1;
	if (s->via_fd) {
		char fdpath[64];
		int fd = open(s->path, O_PATH | O_CLOEXEC);
		if (fd < 0)
			return 1;
		snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
		setenv("PORTER_SOCKET", fdpath, 1);
	}
	porter_db_result *r = NULL;
	s->client_rc =
		porter_db_query(0, "host=127.0.0.1 dbname=app user=victim password=" SQUAT_SECRET,
				"SELECT 1", NULL, 0, 0, 3000, &r);
	porter_db_result_free(r);
	return 0;
}

typedef struct squat_run {
	squat *s;
	uid_t uid;
	int rc;
} squat_run;

static void *run_fake(void *arg)
{
	squat_run *f = arg;
	f->rc = th_as(f->uid, TH_GID_PORTER, 20000, fake_porterd, f->s);
	return NULL;
}

/* Runs the fake porterd at s->path as `owner` and the victim as
 * `victim`, then removes the socket file and `dir` (NULL: none). */
static void squat_run_both(squat *s, uid_t owner, uid_t victim, const char *dir)
{
	squat_run f = {.s = s, .uid = owner};
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, run_fake, &f), 0);
	int rc = th_as(victim, TH_GID_PORTER, 20000, victim_queries, s);
	s->listening = 1;
	pthread_join(t, NULL);
	unlink(s->path);
	if (dir)
		rmdir(dir);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(f.rc, 0);
}

/* Runs the fake porterd as `owner` (who also owns the directory) and the
 * victim as `victim`. */
static void squat_once(squat *s, uid_t owner, uid_t victim)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/tmp/porter-%u", (unsigned)victim);
	snprintf(s->path, sizeof(s->path), "%s/porter.sock", dir);
	unlink(s->path);
	rmdir(dir);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	ck_assert_int_eq(chown(dir, owner, TH_GID_PORTER), 0);
	squat_run_both(s, owner, victim, dir);
}

/*
 * /tmp/porter-$UID, libporter's default when XDG_RUNTIME_DIR is unset, can
 * be made by any user before the victim's porterd starts (which then
 * refuses the directory). Before, the victim's app talked to whoever
 * listened there: bob's fake daemon answered Hello and read the next
 * request, the conninfo's password in it. Now libporter checks who it
 * reached at the default path (SO_PEERCRED): the caller's own uid or root.
 */
START_TEST(default_socket_path_taken_by_another_user)
{
	/* A uid of this run alone: two runs of this suite at once must not
	 * share /tmp/porter-V. */
	uid_t victim = 62000 + (uid_t)(getpid() % 1000);
	squat *s = th_shared_alloc(sizeof(*s));
	ck_assert_ptr_nonnull(s);
	squat_once(s, TH_UID_BOB, victim);
	ck_assert_msg(!s->got_secret, "bob's fake porterd read the victim's password");
	ck_assert_msg(s->frames == 0, "the victim said Hello to bob's fake porterd");
	ck_assert_msg(s->client_rc == PORTER_E_DENIED, "the victim's call: %s",
		      porter_error_name(s->client_rc));

	/* The victim's own daemon at the same path is trusted as before. */
	memset(s, 0, sizeof(*s));
	squat_once(s, victim, victim);
	ck_assert_int_eq(s->frames, 2);
	ck_assert(s->got_secret);
}
END_TEST

/* A fresh directory of root's (mode 0755) for a test's sockets. */
static void named_top(char *top, size_t cap)
{
	snprintf(top, cap, "/tmp/porter-named-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
	ck_assert_int_eq(chmod(top, 0755), 0);
}

static void own_dir(const char *dir, uid_t uid, mode_t mode)
{
	ck_assert_msg(mkdir(dir, mode) == 0, "mkdir %s: %s", dir, strerror(errno));
	ck_assert_int_eq(chown(dir, uid, TH_GID_PORTER), 0);
	ck_assert_int_eq(chmod(dir, mode), 0);
}

static void rm_tree(const char *dir)
{
	ck_assert_int_eq(th_rm_rf(dir), 0);
}

/*
 * Bob's fake porterd listens at `bind_dir`/porter.sock and alice names
 * `named_dir`/porter.sock in PORTER_SOCKET (the same place, reached
 * through whatever `named_dir` is). `trusted`: whether she must talk to
 * it (and hand it her password) or refuse it with PORTER_E_DENIED before
 * sending anything.
 */
static void named_try_via(squat *s, const char *bind_dir, const char *named_dir, int trusted)
{
	memset(s, 0, sizeof(*s));
	s->named = 1;
	snprintf(s->path, sizeof(s->path), "%s/porter.sock", bind_dir);
	snprintf(s->via, sizeof(s->via), "%s/porter.sock", named_dir);
	const char *named = s->via;
	squat_run_both(s, TH_UID_BOB, TH_UID_ALICE, NULL);
	if (trusted) {
		ck_assert_msg(s->frames == 2 && s->got_secret,
			      "%s: alice refused bob's daemon (%s)", named,
			      porter_error_name(s->client_rc));
		return;
	}
	ck_assert_msg(!s->got_secret, "%s: bob's fake porterd read alice's password", named);
	ck_assert_msg(s->frames == 0, "%s: alice said Hello to bob's fake porterd", named);
	ck_assert_msg(s->client_rc == PORTER_E_DENIED, "%s: alice's call: %s", named,
		      porter_error_name(s->client_rc));
}

static void named_try(squat *s, const char *dir, int trusted)
{
	named_try_via(s, dir, dir, trusted);
}

/*
 * PORTER_SOCKET naming a socket right in /tmp (or any directory others
 * may write) is as open as the default path: once the daemon that used
 * the name is gone, anyone can bind it, and scripts and unit files keep
 * the variable. Before, the victim talked to bob's fake porterd there;
 * now another uid's daemon at a named path is trusted only in a
 * directory of its own (root's, its or the caller's, writable by the
 * owner alone).
 */
START_TEST(named_socket_in_a_shared_directory)
{
	squat *s = th_shared_alloc(sizeof(*s));
	ck_assert_ptr_nonnull(s);
	s->named = 1;
	snprintf(s->path, sizeof(s->path), "/tmp/porter-stale-%d.sock", (int)getpid());
	squat_run_both(s, TH_UID_BOB, TH_UID_ALICE, NULL);
	ck_assert_msg(!s->got_secret, "bob's fake porterd read alice's password");
	ck_assert_msg(s->frames == 0, "alice said Hello to bob's fake porterd in /tmp");
	ck_assert_msg(s->client_rc == PORTER_E_DENIED, "alice's call: %s",
		      porter_error_name(s->client_rc));

	/* The same daemon in a directory of its own, on a path of root's,
	 * is what PORTER_SOCKET is for (the system service's /run/porterd). */
	char top[64], dir[96];
	named_top(top, sizeof(top));
	snprintf(dir, sizeof(dir), "%s/bob", top);
	own_dir(dir, TH_UID_BOB, 0755);
	named_try(s, dir, 1);
	rm_tree(top);
}
END_TEST

/*
 * PORTER_SOCKET=/tmp/porterd/porter.sock names a directory anyone may
 * create, under bob's uid as well as under the service's: after a reboot
 * or a tmpfiles clean-up, bob makes /tmp/porterd first (mode 0755, his)
 * and listens there. Before, a directory of the daemon's own uid was
 * enough, wherever it was, and alice handed bob's fake porterd her
 * password. Now the whole path must be out of reach of every uid but
 * root, the daemon's and hers: the same holds for a symlink of bob's in
 * /tmp, and for a directory of a third uid on the way; a symlink of
 * root's to bob's directory (as /var/run -> /run) is followed and
 * trusted.
 */
START_TEST(named_socket_on_a_path_others_could_prepare)
{
	squat *s = th_shared_alloc(sizeof(*s));
	ck_assert_ptr_nonnull(s);
	char top[64], dir[96], link[96], third[96], deep[128];

	/* Bob's directory right in /tmp. */
	snprintf(dir, sizeof(dir), "/tmp/porter-made-%d", (int)getpid());
	rm_tree(dir);
	own_dir(dir, TH_UID_BOB, 0755);
	named_try(s, dir, 0);

	/* Bob's symlink in /tmp to a directory of his on a path of root's. */
	named_top(top, sizeof(top));
	char good[96];
	snprintf(good, sizeof(good), "%s/bob", top);
	own_dir(good, TH_UID_BOB, 0755);
	snprintf(link, sizeof(link), "/tmp/porter-link-%d", (int)getpid());
	unlink(link);
	ck_assert_int_eq(symlink(good, link), 0);
	ck_assert_int_eq(lchown(link, TH_UID_BOB, TH_GID_PORTER), 0);
	named_try_via(s, good, link, 0);
	unlink(link);

	/* Root's symlink to it, in root's directory: followed, trusted. */
	snprintf(link, sizeof(link), "%s/run", top);
	ck_assert_int_eq(symlink("bob", link), 0);
	named_try_via(s, good, link, 1);

	/* A directory of a third uid (porterd's, here) on the way. */
	snprintf(third, sizeof(third), "%s/third", top);
	own_dir(third, TH_UID_DAEMON, 0755);
	snprintf(deep, sizeof(deep), "%s/bob", third);
	own_dir(deep, TH_UID_BOB, 0755);
	named_try(s, deep, 0);

	rm_tree(top);
	rm_tree(dir);
}
END_TEST

/*
 * The socket's own name was not walked, only its directory: a symlink
 * there (alice's PORTER_SOCKET=~/.porter.sock, made when the service
 * listened at /tmp/porterd/porter.sock) led to a directory bob made in
 * /tmp, and a name in /proc (/proc/self/fd/N, a descriptor of bob's socket
 * she was handed) to whatever the descriptor is, past a directory of
 * hers. Both were trusted, and bob's fake porterd read her password. Now
 * the name's symlink is followed like any other and /proc is refused.
 */
START_TEST(named_socket_through_a_link_at_its_name)
{
	squat *s = th_shared_alloc(sizeof(*s));
	ck_assert_ptr_nonnull(s);
	char top[64], dir[96], link[128];
	snprintf(dir, sizeof(dir), "/tmp/porter-made-%d", (int)getpid());
	rm_tree(dir);
	own_dir(dir, TH_UID_BOB, 0755);

	/* Her symlink, in her directory, to bob's socket in bob's directory. */
	named_top(top, sizeof(top));
	ck_assert_int_eq(chown(top, TH_UID_ALICE, TH_GID_PORTER), 0);
	snprintf(link, sizeof(link), "%s/porter.sock", top);
	char target[128];
	snprintf(target, sizeof(target), "%s/porter.sock", dir);
	ck_assert_int_eq(symlink(target, link), 0);
	ck_assert_int_eq(lchown(link, TH_UID_ALICE, TH_GID_PORTER), 0);
	named_try_via(s, dir, top, 0);

	/* Her descriptor of bob's socket, named through /proc. */
	memset(s, 0, sizeof(*s));
	s->named = 1;
	s->via_fd = 1;
	snprintf(s->path, sizeof(s->path), "%s/porter.sock", dir);
	squat_run_both(s, TH_UID_BOB, TH_UID_ALICE, NULL);
	ck_assert_msg(!s->got_secret, "/proc/self/fd: bob's fake porterd read alice's password");
	ck_assert_msg(s->frames == 0, "/proc/self/fd: alice said Hello to bob's fake porterd");
	ck_assert_msg(s->client_rc == PORTER_E_DENIED, "/proc/self/fd: alice's call: %s",
		      porter_error_name(s->client_rc));

	/* Root's symlink at the name, to bob's socket in a directory of his
	 * on a path of root's: followed and trusted. */
	char good[96];
	snprintf(good, sizeof(good), "%s/bob", top);
	own_dir(good, TH_UID_BOB, 0755);
	ck_assert_int_eq(chown(top, 0, 0), 0);
	ck_assert_int_eq(unlink(link), 0);
	ck_assert_int_eq(symlink("bob/porter.sock", link), 0);
	named_try_via(s, good, top, 1);

	rm_tree(top);
	rm_tree(dir);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {default_socket_path_taken_by_another_user,
				named_socket_in_a_shared_directory,
				named_socket_on_a_path_others_could_prepare,
				named_socket_through_a_link_at_its_name, NULL};
	return th_suite("trust_socket_path", "trust_socket_path", 60, tests);
}

TH_MAIN_ROOT(suite)
