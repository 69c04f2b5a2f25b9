/*
 * Trust boundary, server side (issue 15, items 5 and 6): porterd runs as its
 * own unprivileged uid, clients as two others (tenant.h).
 *
 * - A reload that drops a uid closes that uid's open connections with a
 *   clear error and refuses its new ones, while another uid's connection
 *   keeps working.
 * - Without socket activation, allow-uid and allow-gid open porterd's own
 *   socket (mode, group, and the directory it creates) to exactly the
 *   peers that need it; the unlisted are refused by the kernel or at
 *   accept.
 * - Text a client sends cannot forge a line in porterd's log.
 *
 * What one uid sees of another's (stats, metrics, cancels) is in
 * test_trust_uids.c; a socket path taken by another user in
 * test_trust_socket_path.c.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "rawc.h"
#include "tenant.h"

#define TH_UID_STRANGER 61013 /* in no allowed group, on no list */
#define TH_GID_STRANGER 61013

static th_daemon d;
static char conf[64];

static void write_conf(const char *text)
{
	/* Replaced by rename, so porterd never reads half a file. */
	char tmp[80];
	snprintf(tmp, sizeof(tmp), "%s.tmp", conf);
	FILE *f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(tmp, 0644), 0);
	ck_assert_int_eq(rename(tmp, conf), 0);
}

static void setup(void)
{
	snprintf(conf, sizeof(conf), "/tmp/porter-trust-%d.conf", (int)getpid());
}

static void teardown(void)
{
	unlink(conf);
}

/* Waits up to 5 s for `needle` in the daemon's log. */
static int wait_log(const char *needle)
{
	long long until = th_now_ms() + 5000;
	while (th_now_ms() < until) {
		if (th_file_has(d.log, needle))
			return 1;
		usleep(10000);
	}
	return 0;
}

/* ---- reload revocation ---- */

/* What one client saw, in memory shared with the test. */
typedef struct hold {
	volatile int ready; /* the first call went through on its connection */
	volatile int go;    /* the reload is done */
	int before, after, fresh;
} hold;

/* A client holding its connection open across the reload: a call before,
 * one on the same connection after, and one on a new connection. */
static int hold_across_reload(void *arg)
{
	hold *h = arg;
	h->before = porter_ping("a", 1, 0, 3000);
	h->ready = 1;
	if (!th_wait_flag(&h->go, 10000))
		return 2;
	h->after = porter_ping("b", 1, 0, 3000);
	porter_thread_disconnect();
	h->fresh = porter_ping("c", 1, 0, 3000);
	return 0;
}

typedef struct as_thread {
	uid_t uid;
	hold *h;
	int rc;
} as_thread;

static void *run_as(void *arg)
{
	as_thread *t = arg;
	t->rc = th_as(t->uid, TH_GID_PORTER, 20000, hold_across_reload, t->h);
	return NULL;
}

/*
 * Alice and bob each hold a connection (one call made) while the
 * configuration is rewritten to `conf_after`, which lists alice alone, and
 * reloaded. Alice keeps working, on her connection and on a new one; bob's
 * open connection is closed with the reason, and a new one is refused.
 */
static void reload_revokes_bob(const char *conf_after)
{
	hold *h = th_shared_alloc(2 * sizeof(hold));
	ck_assert_ptr_nonnull(h);
	as_thread alice = {TH_UID_ALICE, &h[0], -1}, bob = {TH_UID_BOB, &h[1], -1};
	pthread_t ta, tb;
	ck_assert_int_eq(pthread_create(&ta, NULL, run_as, &alice), 0);
	ck_assert_int_eq(pthread_create(&tb, NULL, run_as, &bob), 0);
	ck_assert(th_wait_flag(&h[0].ready, 10000) && th_wait_flag(&h[1].ready, 10000));
	write_conf(conf_after);
	th_daemon_reload(&d, 1);
	h[0].go = h[1].go = 1;
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	ck_assert_int_eq(alice.rc, 0);
	ck_assert_int_eq(bob.rc, 0);
	ck_assert_int_eq(h[0].before, 0);
	ck_assert_int_eq(h[0].after, 0);
	ck_assert_int_eq(h[0].fresh, 0);
	ck_assert_int_eq(h[1].before, 0);
	ck_assert_int_eq(h[1].after, PORTER_E_DENIED);
	ck_assert_int_eq(h[1].fresh, PORTER_E_DENIED);
}

START_TEST(reload_revokes_open_connections)
{
	write_conf("allow-uid = 61011,61012\nlog-level = info\n");
	const char *args[] = {"--config", conf, "--workers", "2", NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	/* Bob is taken off the list while both hold a connection. */
	reload_revokes_bob("allow-uid = 61011\nlog-level = info\n");
	ck_assert(wait_log("uid 61012 is no longer allowed to use this daemon"));
	ck_assert_int_eq(th_file_count(d.log, "uid 61011 is no longer allowed"), 0);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

START_TEST(reload_revokes_by_group)
{
	/* Admitted as members of the group; the group is then dropped and
	 * only alice is listed by uid. */
	write_conf("allow-gid = 61020\n");
	const char *args[] = {"--config", conf, NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	reload_revokes_bob("allow-uid = 61011\n");
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

/* ---- porterd's own socket: mode, group, directory ---- */

static int ping_rc(void *arg)
{
	int *rc = arg;
	*rc = porter_ping("x", 1, 0, 3000);
	return 0;
}

/* porter_ping's result for `uid`/`gid`, run in a child. */
static int ping_as(uid_t uid, gid_t gid)
{
	int *rc = th_shared_alloc(sizeof(int));
	ck_assert_ptr_nonnull(rc);
	ck_assert_int_eq(th_as(uid, gid, 10000, ping_rc, rc), 0);
	return *rc;
}

static mode_t mode_of(const char *path, gid_t *group)
{
	struct stat st;
	ck_assert_int_eq(lstat(path, &st), 0);
	if (group)
		*group = st.st_gid;
	return st.st_mode & 07777;
}

/* The directory porterd made for its socket. */
static const char *sock_dir(void)
{
	static char dir[sizeof(d.dir) + 8];
	snprintf(dir, sizeof(dir), "%s/run", d.dir);
	return dir;
}

START_TEST(socket_open_to_a_group)
{
	/* The socket and the directory porterd made for it are opened to
	 * the group, no further. */
	const char *args[] = {"--allow-gid", "61020", NULL};
	ck_assert_int_eq(th_daemon_start_as_own_socket(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	gid_t g;
	ck_assert_uint_eq(mode_of(d.socket, &g), 0660);
	ck_assert_uint_eq(g, TH_GID_PORTER);
	ck_assert_uint_eq(mode_of(sock_dir(), &g), 0710);
	ck_assert_uint_eq(g, TH_GID_PORTER);
	ck_assert(th_file_has(d.log, ": mode 0660, group 61020, directory mode 0710\n"));
	ck_assert_int_eq(ping_as(TH_UID_ALICE, TH_GID_PORTER), 0);
	ck_assert_int_eq(ping_as(TH_UID_BOB, TH_GID_PORTER), 0);
	/* Not in the group: the kernel refuses the connect itself. */
	int rc = ping_as(TH_UID_STRANGER, TH_GID_STRANGER);
	ck_assert_int_ne(rc, 0);
	ck_assert_int_ne(rc, PORTER_E_DENIED);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

START_TEST(socket_open_to_listed_uids)
{
	/* Single uids cannot be expressed in a file mode: the socket is
	 * opened to all and accept refuses the unlisted with a reason. */
	const char *args[] = {"--allow-uid", "61011", NULL};
	ck_assert_int_eq(th_daemon_start_as_own_socket(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	ck_assert_uint_eq(mode_of(d.socket, NULL), 0666);
	ck_assert_uint_eq(mode_of(sock_dir(), NULL), 0711);
	ck_assert_int_eq(ping_as(TH_UID_ALICE, TH_GID_PORTER), 0);
	ck_assert_int_eq(ping_as(TH_UID_BOB, TH_GID_PORTER), PORTER_E_DENIED);
	ck_assert_int_eq(ping_as(TH_UID_STRANGER, TH_GID_STRANGER), PORTER_E_DENIED);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

START_TEST(socket_private_by_default_and_opened_on_reload)
{
	write_conf("log-level = info\n");
	const char *args[] = {"--config", conf, NULL};
	ck_assert_int_eq(th_daemon_start_as_own_socket(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	ck_assert_uint_eq(mode_of(d.socket, NULL), 0600);
	ck_assert_uint_eq(mode_of(sock_dir(), NULL), 0700);
	int rc = ping_as(TH_UID_ALICE, TH_GID_PORTER);
	ck_assert_int_ne(rc, 0);
	ck_assert_int_ne(rc, PORTER_E_DENIED); /* refused by the kernel */

	write_conf("allow-gid = 61020\n");
	th_daemon_reload(&d, 1);
	gid_t g;
	ck_assert_uint_eq(mode_of(d.socket, &g), 0660);
	ck_assert_uint_eq(g, TH_GID_PORTER);
	ck_assert_int_eq(ping_as(TH_UID_ALICE, TH_GID_PORTER), 0);

	/* And closed again. */
	write_conf("log-level = info\n");
	th_daemon_reload(&d, 2);
	ck_assert_uint_eq(mode_of(d.socket, NULL), 0600);
	ck_assert_int_ne(ping_as(TH_UID_ALICE, TH_GID_PORTER), 0);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

/* ---- logs ---- */

START_TEST(socket_log_names_no_directory_it_did_not_make)
{
	/* The socket in a directory porterd found: its log line gives the
	 * socket's mode and nothing after it (it printed "mode 06000000", a
	 * directory mode of 0 glued on). */
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, NULL), 0);
	char needle[sizeof(d.socket) + 32];
	snprintf(needle, sizeof(needle), "socket %s: mode 0600\n", d.socket);
	ck_assert_msg(th_file_has(d.log, needle), "no line ending in '%s'", needle);
	ck_assert_int_eq(th_file_count(d.log, "directory mode"), 0);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

#define FORGED "2026-01-01T00:00:00.000Z porterd error: FORGED by a client"

static int ping_named(void *arg)
{
	/* libporter sends its program name in Hello, and porterd logs it. */
	program_invocation_short_name = arg;
	return porter_ping("x", 1, 0, 3000) == 0 ? 0 : 1;
}

START_TEST(client_text_cannot_forge_log_lines)
{
	const char *args[] = {"--allow-uid", "61011", "--log-level", "debug", NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	char *name = th_shared_alloc(256);
	ck_assert_ptr_nonnull(name);
	snprintf(name, 256, "app\n" FORGED "\r\x1b[2K\xc2\x9b");
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 10000, ping_named, name), 0);
	ck_assert(wait_log("hello from pid"));

	/* The name is in the log, on the hello line, escaped. */
	ck_assert(th_file_has(d.log, "(app\\x0a" FORGED "\\x0d\\x1b[2K\\xc2\\x9b)"));
	/* No line starts with the forged text, and no raw control bytes
	 * other than the newlines ending lines made it into the file. */
	FILE *f = fopen(d.log, "r");
	ck_assert_ptr_nonnull(f);
	char line[4096];
	while (fgets(line, sizeof(line), f)) {
		ck_assert_msg(strncmp(line, FORGED, strlen(FORGED)) != 0, "forged line: %s", line);
		for (const char *p = line; *p; p++)
			ck_assert_msg((unsigned char)*p >= 0x20 || *p == '\n' || *p == '\t',
				      "control byte 0x%02x in: %s", (unsigned char)*p, line);
		ck_assert_ptr_null(strstr(line, "\xc2\x9b"));
	}
	fclose(f);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {reload_revokes_open_connections,
				reload_revokes_by_group,
				socket_open_to_a_group,
				socket_open_to_listed_uids,
				socket_private_by_default_and_opened_on_reload,
				socket_log_names_no_directory_it_did_not_make,
				client_text_cannot_forge_log_lines,
				NULL};
	Suite *s = suite_create("trust_server");
	TCase *tc = th_tcase(s, "trust_server", 60, tests);
	tcase_add_checked_fixture(tc, setup, teardown);
	return s;
}

TH_MAIN_ROOT(suite)
