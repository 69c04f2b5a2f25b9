/*
 * Unit tests of daemon/fsroot.c: parsing file-roots (names, paths, uids=
 * and gids= lists, per-user "%u" roots) and refusing what is malformed,
 * who each root grants (local, listed uids, primary and supplementary
 * groups, per-user roots for everyone), fsroot_find, the per-user
 * directories (created 0700, reused, a planted link, file or foreign-owned
 * directory refused), and the mode ceilings of created files and dirs.
 * Runs as root (CI does) only for the foreign-owned directory: the other
 * uids are just numbers in a clients_peer.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fsroot.h"
#include "porter_errors.h"
#include "thmain.h"
#include "thsys.h"

#define ALICE 61011
#define BOB 61012
#define CAROL 61013
#define GROUP 61020

static char top[64];

static void setup(void)
{
	snprintf(top, sizeof(top), "/tmp/porter-fsroot-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
}

static void teardown(void)
{
	fsroot_shutdown();
	ck_assert_int_eq(th_rm_rf(top), 0);
}

/* fsroot_init with up to 4 items (NULL-terminated; "%s" in an item is
 * replaced by top) and the two mode settings (NULL: unset). */
static int init4(const char *const *items, const char *max_mode, const char *max_dir_mode)
{
	static char bufs[4][256];
	char *list[4];
	size_t n = 0;
	for (; items[n]; n++) {
		ck_assert_uint_lt(n, 4);
		snprintf(bufs[n], sizeof(bufs[n]), items[n], top);
		list[n] = bufs[n];
	}
	config c;
	memset(&c, 0, sizeof(c));
	c.file_roots.items = list;
	c.file_roots.n = n;
	c.file_max_mode = (char *)max_mode;
	c.file_max_dir_mode = (char *)max_dir_mode;
	return fsroot_init(&c);
}

/* One item. */
static int init1(const char *item)
{
	const char *items[] = {item, NULL};
	return init4(items, NULL, NULL);
}

static clients_peer peer(uid_t uid, gid_t gid)
{
	clients_peer p;
	memset(&p, 0, sizeof(p));
	p.uid = uid;
	p.gid = gid;
	return p;
}

/* fsroot_init with the one item `item`, and its root `name`. */
static const fsroot *one_root(const char *item, const char *name)
{
	ck_assert_int_eq(init1(item), 0);
	clients_peer local = peer(geteuid(), getegid());
	const fsroot *rt = fsroot_find(name, &local);
	ck_assert_ptr_nonnull(rt);
	return rt;
}

static void mkdir_top(const char *name)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/%s", top, name);
	ck_assert_int_eq(mkdir(p, 0700), 0);
}

START_TEST(parse_roots)
{
	mkdir_top("a");
	mkdir_top("b");
	const char *items[] = {"plain=%s/a",
			       "shared = %s/b : uids=61011 61011\t61012 : gids=61020 ",
			       "mine=%s/users/%%u", NULL};
	ck_assert_int_eq(init4(items, NULL, NULL), 0);
	ck_assert_uint_eq(clients_self(), geteuid());
	clients_peer local = peer(geteuid(), getegid());
	char want[128];

	const fsroot *rt = fsroot_find("plain", &local);
	ck_assert_ptr_nonnull(rt);
	snprintf(want, sizeof(want), "%s/a", top);
	ck_assert_str_eq(rt->path, want);
	ck_assert_int_eq(rt->per_user, 0);
	ck_assert_int_eq(rt->has_owners, 0);
	ck_assert_uint_eq(rt->n_uids + rt->n_gids, 0);
	ck_assert_int_ge(fcntl(rt->fd, F_GETFD), 0);

	/* Spaces around '=', paths and options are trimmed (config trims
	 * the item itself); repeated uids count once. */
	rt = fsroot_find("shared", &local);
	ck_assert_ptr_nonnull(rt);
	ck_assert_str_eq(rt->name, "shared");
	snprintf(want, sizeof(want), "%s/b", top);
	ck_assert_str_eq(rt->path, want);
	ck_assert_int_eq(rt->has_owners, 1);
	ck_assert_uint_eq(rt->n_uids, 2);
	ck_assert_uint_eq(rt->uids[0], ALICE);
	ck_assert_uint_eq(rt->uids[1], BOB);
	ck_assert_uint_eq(rt->n_gids, 1);
	ck_assert_uint_eq(rt->gids[0], GROUP);

	/* A per-user root keeps "%u" in its path and opens (creating it
	 * 0700) the directory that holds the users' directories. */
	rt = fsroot_find("mine", &local);
	ck_assert_ptr_nonnull(rt);
	snprintf(want, sizeof(want), "%s/users/%%u", top);
	ck_assert_str_eq(rt->path, want);
	ck_assert_int_eq(rt->per_user, 1);
	ck_assert_int_eq(rt->has_owners, 0);
	struct stat sb, fsb;
	snprintf(want, sizeof(want), "%s/users", top);
	ck_assert_int_eq(stat(want, &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	ck_assert_int_eq(sb.st_mode & 0777, 0700);
	ck_assert_int_eq(fstat(rt->fd, &fsb), 0);
	ck_assert(sb.st_ino == fsb.st_ino && sb.st_dev == fsb.st_dev);

	ck_assert_ptr_null(fsroot_find("nope", &local));
	ck_assert_ptr_null(fsroot_find("plai", &local));
}
END_TEST

/* Every malformed item fails start-up with PORTER_E_INVAL and leaves no
 * table behind. */
START_TEST(parse_refusals)
{
	mkdir_top("a");
	static const char *const bad[] = {
		"noequals",
		"=%s/a",
		"  =%s/a",
		"a=",
		"a=  :uids=61011",
		"a=relative/dir",
		"a=%s/a:uids=",
		"a=%s/a:gids= ",
		"a=%s/a:uids=porter-no-such-user-x",
		"a=%s/a:gids=porter-no-such-group-x",
		"a=%s/a:uids=4294967295", /* (uid_t)-1: "no uid" */
		"a=%s/a:uids=-1",
		"a=%s/a:mode=0700",
		"a=%s/a:uids", /* no '=' */
		"a=%s/a:",
		"a=%s/u/%%u/x",
		"a=%s/u/%%ux",
		"a=%s/u%%u",
		"a=%s/nonexistent",
		NULL,
	};
	clients_peer local = peer(geteuid(), getegid());
	for (size_t i = 0; bad[i]; i++) {
		ck_assert_msg(init1(bad[i]) == PORTER_E_INVAL, "'%s' was accepted", bad[i]);
		ck_assert_ptr_null(fsroot_find("a", &local));
		ck_assert_ptr_null(fsroot_find("", &local));
	}
	/* The same name twice, even on another path. */
	mkdir_top("b");
	const char *twice[] = {"a=%s/a", "a=%s/b", NULL};
	ck_assert_int_eq(init4(twice, NULL, NULL), PORTER_E_INVAL);
	ck_assert_ptr_null(fsroot_find("a", &local));
	/* Mode ceilings: octal up to 0777 only. */
	const char *one[] = {"a=%s/a", NULL};
	static const char *const bad_modes[] = {"1777", "4755", "0778", "8", "-1", "abc", "07x"};
	for (size_t i = 0; i < sizeof(bad_modes) / sizeof(bad_modes[0]); i++) {
		ck_assert_msg(init4(one, bad_modes[i], NULL) == PORTER_E_INVAL,
			      "file-max-mode '%s' was accepted", bad_modes[i]);
		ck_assert_msg(init4(one, NULL, bad_modes[i]) == PORTER_E_INVAL,
			      "file-max-dir-mode '%s' was accepted", bad_modes[i]);
	}
	/* Numbers and names that exist are fine. */
	ck_assert_int_eq(init1("a=%s/a:uids=root 0:gids=root"), 0);
	const fsroot *rt = fsroot_find("a", &local);
	ck_assert_ptr_nonnull(rt);
	ck_assert_uint_eq(rt->n_uids, 1);
	ck_assert_uint_eq(rt->uids[0], 0);
	ck_assert_uint_eq(rt->n_gids, 1);
	ck_assert_uint_eq(rt->gids[0], 0);
}
END_TEST

START_TEST(grants)
{
	mkdir_top("a");
	mkdir_top("b");
	mkdir_top("c");
	const char *items[] = {"own=%s/a", "team=%s/b:uids=61011:gids=61020", "home=%s/c/%%u",
			       "priv=%s/c/p/%%u:uids=61012", NULL};
	ck_assert_int_eq(init4(items, NULL, NULL), 0);
	clients_peer local = peer(geteuid(), 12345);
	const fsroot *own = fsroot_find("own", &local), *team = fsroot_find("team", &local),
		     *home = fsroot_find("home", &local), *priv = fsroot_find("priv", &local);
	ck_assert(own && team && home && priv);

	/* porterd's own uid reaches every root. */
	ck_assert_int_eq(fsroot_grants(own, &local), 1);
	ck_assert_int_eq(fsroot_grants(team, &local), 1);
	ck_assert_int_eq(fsroot_grants(home, &local), 1);
	ck_assert_int_eq(fsroot_grants(priv, &local), 1);

	/* A listed uid. */
	clients_peer alice = peer(ALICE, 999);
	ck_assert_int_eq(fsroot_grants(own, &alice), 0);
	ck_assert_int_eq(fsroot_grants(team, &alice), 1);
	ck_assert_int_eq(fsroot_grants(home, &alice), 1); /* every client its own dir */
	ck_assert_int_eq(fsroot_grants(priv, &alice), 0); /* owners given: only them */

	/* Unlisted uid: by the primary group, or a supplementary one. */
	clients_peer carol = peer(CAROL, 999);
	ck_assert_int_eq(fsroot_grants(team, &carol), 0);
	carol.gid = GROUP;
	ck_assert_int_eq(fsroot_grants(team, &carol), 1);
	ck_assert_int_eq(fsroot_grants(own, &carol), 0);
	carol.gid = 999;
	carol.n_groups = 3;
	carol.groups[0] = 1;
	carol.groups[1] = 2;
	carol.groups[2] = GROUP;
	ck_assert_int_eq(fsroot_grants(team, &carol), 1);
	ck_assert_int_eq(fsroot_grants(priv, &carol), 0);
	/* Only the first n_groups count, and never past the array. */
	carol.n_groups = 2;
	ck_assert_int_eq(fsroot_grants(team, &carol), 0);
	/* A count past the array stays bounded: what lies after the peer
	 * (here the granted group, everywhere) never counts. */
	struct {
		clients_peer p;
		gid_t after[128];
	} w;
	memset(&w, 0, sizeof(w));
	w.p = peer(CAROL, 999);
	w.p.n_groups = CLIENTS_MAX_GROUPS + 100;
	for (unsigned k = 0; k < CLIENTS_MAX_GROUPS; k++)
		w.p.groups[k] = 7;
	for (unsigned k = 0; k < 128; k++)
		w.after[k] = GROUP;
	ck_assert_int_eq(fsroot_grants(team, &w.p), 0);
	w.p.groups[CLIENTS_MAX_GROUPS - 1] = GROUP;
	ck_assert_int_eq(fsroot_grants(team, &w.p), 1);

	clients_peer bob = peer(BOB, 999);
	ck_assert_int_eq(fsroot_grants(priv, &bob), 1);
	ck_assert_int_eq(fsroot_grants(team, &bob), 0);
	/* The uid is checked, not the pid or a group named like the uid. */
	clients_peer g = peer(CAROL, ALICE);
	ck_assert_int_eq(fsroot_grants(team, &g), 0);

	/* "" finds the first root that grants the client. */
	ck_assert_ptr_eq(fsroot_find("", &local), own);
	ck_assert_ptr_eq(fsroot_find("", &alice), team);
	ck_assert_ptr_eq(fsroot_find("", &bob), home);
	clients_peer dave = peer(CAROL, 999);
	ck_assert_ptr_eq(fsroot_find("", &dave), home);
	/* By name, fsroot_find does not judge grants: callers check. */
	ck_assert_ptr_eq(fsroot_find("own", &alice), own);
}
END_TEST

/* With nothing but an ungranted root, "" finds nothing for a foreigner. */
START_TEST(find_none_granted)
{
	mkdir_top("a");
	ck_assert_int_eq(init1("own=%s/a"), 0);
	clients_peer alice = peer(ALICE, GROUP);
	ck_assert_ptr_null(fsroot_find("", &alice));
	clients_peer local = peer(geteuid(), getegid());
	ck_assert_ptr_nonnull(fsroot_find("", &local));
}
END_TEST

START_TEST(dir_plain_root_borrowed)
{
	mkdir_top("a");
	const fsroot *rt = one_root("own=%s/a", "own");
	int fd = -1;
	ck_assert_int_eq(fsroot_dir(rt, ALICE, &fd), 0);
	ck_assert_int_eq(fd, rt->fd);
	fsroot_put_dir(rt, fd); /* the root's own: not closed */
	ck_assert_int_ge(fcntl(rt->fd, F_GETFD), 0);
	fsroot_put_dir(rt, -1); /* harmless */
	ck_assert_int_ge(fcntl(rt->fd, F_GETFD), 0);
}
END_TEST

START_TEST(dir_per_user)
{
	const fsroot *rt = one_root("home=%s/h/%%u", "home");
	char p[128];
	struct stat sb, fsb;

	/* Created 0700 on first use, owned by porterd, named by the uid. */
	int fd = -1;
	ck_assert_int_eq(fsroot_dir(rt, ALICE, &fd), 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_ne(fd, rt->fd);
	snprintf(p, sizeof(p), "%s/h/%u", top, (unsigned)ALICE);
	ck_assert_int_eq(lstat(p, &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	ck_assert_int_eq(sb.st_mode & 0777, 0700);
	ck_assert_uint_eq(sb.st_uid, geteuid());
	ck_assert_int_eq(fstat(fd, &fsb), 0);
	ck_assert(sb.st_ino == fsb.st_ino && sb.st_dev == fsb.st_dev);
	ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	fsroot_put_dir(rt, fd);

	/* Reused: the same directory the second time; another uid gets
	 * another one. */
	snprintf(p, sizeof(p), "%s/h/%u/mark", top, (unsigned)ALICE);
	int mfd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(mfd, 0);
	close(mfd);
	ck_assert_int_eq(fsroot_dir(rt, ALICE, &fd), 0);
	ck_assert_int_eq(faccessat(fd, "mark", F_OK, 0), 0);
	fsroot_put_dir(rt, fd);
	ck_assert_int_eq(fsroot_dir(rt, BOB, &fd), 0);
	ck_assert_int_eq(faccessat(fd, "mark", F_OK, 0), -1);
	fsroot_put_dir(rt, fd);
	/* put_dir closed it (the number is free again). */
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	ck_assert_int_eq(errno, EBADF);
	/* uid 0 and the largest uid are names like any other. */
	ck_assert_int_eq(fsroot_dir(rt, 4294967294u, &fd), 0);
	fsroot_put_dir(rt, fd);
	snprintf(p, sizeof(p), "%s/h/4294967294", top);
	ck_assert_int_eq(access(p, F_OK), 0);
}
END_TEST

/* What someone planted under a uid's name is refused, never followed. */
START_TEST(dir_per_user_planted)
{
	mkdir_top("elsewhere");
	const fsroot *rt = one_root("home=%s/h/%%u", "home");
	char p[128], target[128];
	int fd = 12345;

	/* A symlink to a directory outside. */
	snprintf(target, sizeof(target), "%s/elsewhere", top);
	snprintf(p, sizeof(p), "%s/h/%u", top, (unsigned)ALICE);
	ck_assert_int_eq(symlink(target, p), 0);
	ck_assert_int_eq(fsroot_dir(rt, ALICE, &fd), ELOOP);
	ck_assert_int_eq(fd, 12345); /* untouched on failure */
	/* A dangling symlink: not followed to create its target. */
	snprintf(p, sizeof(p), "%s/h/%u", top, (unsigned)BOB);
	snprintf(target, sizeof(target), "%s/made-by-follow", top);
	ck_assert_int_eq(symlink(target, p), 0);
	ck_assert_int_eq(fsroot_dir(rt, BOB, &fd), ELOOP);
	ck_assert_int_eq(access(target, F_OK), -1);
	/* A regular file. */
	snprintf(p, sizeof(p), "%s/h/%u", top, (unsigned)CAROL);
	int f = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(f, 0);
	close(f);
	ck_assert_int_eq(fsroot_dir(rt, CAROL, &fd), ELOOP);
	ck_assert_int_eq(fd, 12345);
}
END_TEST

/* A directory there that another uid owns (it could swap what is inside)
 * is refused. Needs root to chown; CI runs as root. */
START_TEST(dir_per_user_foreign_owner)
{
	ck_assert_msg(geteuid() == 0, "this check needs root (chown), as CI runs");
	const fsroot *rt = one_root("home=%s/h/%%u", "home");
	char p[128];
	snprintf(p, sizeof(p), "%s/h/%u", top, (unsigned)ALICE);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	ck_assert_int_eq(chown(p, ALICE, GROUP), 0);
	int fd = 12345;
	/* The warning names the directory itself, not the configured path. */
	char log[2048], want[256];
	int saved = dup(STDERR_FILENO), tmp = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	ck_assert_int_ge(tmp, 0);
	dup2(tmp, STDERR_FILENO);
	int rc = fsroot_dir(rt, ALICE, &fd);
	dup2(saved, STDERR_FILENO);
	close(saved);
	ssize_t n = pread(tmp, log, sizeof(log) - 1, 0);
	close(tmp);
	ck_assert_int_eq(rc, EPERM);
	ck_assert_int_eq(fd, 12345);
	ck_assert_int_gt(n, 0);
	log[n] = '\0';
	snprintf(want, sizeof(want), " %s is owned by uid %u, not porterd", p, (unsigned)ALICE);
	ck_assert_msg(strstr(log, want) && !strstr(log, "%u"), "log: %s", log);
	/* Given back to porterd, it is used. */
	ck_assert_int_eq(chown(p, geteuid(), getegid()), 0);
	ck_assert_int_eq(fsroot_dir(rt, ALICE, &fd), 0);
	fsroot_put_dir(rt, fd);
}
END_TEST

START_TEST(modes_default_ceiling)
{
	mkdir_top("a");
	ck_assert_int_eq(init1("a=%s/a"), 0);
	/* Defaults: 0600 / 0700 when the client asks nothing; ceilings
	 * 0660 / 0770; setuid, setgid and sticky never given. */
	ck_assert_uint_eq(fsroot_file_mode(0), 0600);
	ck_assert_uint_eq(fsroot_file_mode(0644), 0640);
	ck_assert_uint_eq(fsroot_file_mode(0777), 0660);
	ck_assert_uint_eq(fsroot_file_mode(07777), 0660);
	ck_assert_uint_eq(fsroot_file_mode(04700), 0600);
	ck_assert_uint_eq(fsroot_file_mode(0400), 0400);
	ck_assert_uint_eq(fsroot_file_mode(0xffffffffu), 0660);
	ck_assert_uint_eq(fsroot_dir_mode(0), 0700);
	ck_assert_uint_eq(fsroot_dir_mode(0755), 0750);
	ck_assert_uint_eq(fsroot_dir_mode(0777), 0770);
	ck_assert_uint_eq(fsroot_dir_mode(01777), 0770);
	ck_assert_uint_eq(fsroot_dir_mode(02770), 0770);
	ck_assert_uint_eq(fsroot_dir_mode(0xffffffffu), 0770);
}
END_TEST

START_TEST(modes_configured_ceiling)
{
	mkdir_top("a");
	const char *one[] = {"a=%s/a", NULL};
	ck_assert_int_eq(init4(one, "0644", "755"), 0);
	ck_assert_uint_eq(fsroot_file_mode(0), 0600);
	ck_assert_uint_eq(fsroot_file_mode(0666), 0644);
	ck_assert_uint_eq(fsroot_file_mode(0777), 0644);
	ck_assert_uint_eq(fsroot_dir_mode(0777), 0755);
	ck_assert_uint_eq(fsroot_dir_mode(0), 0700);
	fsroot_shutdown();
	/* A ceiling below the default narrows even the default. */
	ck_assert_int_eq(init4(one, "0400", "0500"), 0);
	ck_assert_uint_eq(fsroot_file_mode(0), 0400);
	ck_assert_uint_eq(fsroot_dir_mode(0), 0500);
	fsroot_shutdown();
	ck_assert_int_eq(init4(one, "0", "0"), 0);
	ck_assert_uint_eq(fsroot_file_mode(0777), 0);
	ck_assert_uint_eq(fsroot_dir_mode(0777), 0);
	fsroot_shutdown();
	/* Empty means the default. */
	ck_assert_int_eq(init4(one, "", ""), 0);
	ck_assert_uint_eq(fsroot_file_mode(0777), 0660);
	ck_assert_uint_eq(fsroot_dir_mode(0777), 0770);
}
END_TEST

/* No roots configured: the default root "files" under XDG_DATA_HOME,
 * porterd's own (no foreign client). */
START_TEST(default_root)
{
	setenv("XDG_DATA_HOME", top, 1);
	const char *none[] = {NULL};
	ck_assert_int_eq(init4(none, NULL, NULL), 0);
	clients_peer local = peer(geteuid(), getegid());
	const fsroot *rt = fsroot_find("", &local);
	ck_assert_ptr_nonnull(rt);
	ck_assert_str_eq(rt->name, "files");
	char want[128];
	snprintf(want, sizeof(want), "%s/porter/files", top);
	ck_assert_str_eq(rt->path, want);
	ck_assert_int_eq(rt->per_user, 0);
	ck_assert_int_eq(rt->has_owners, 0);
	clients_peer alice = peer(ALICE, GROUP);
	ck_assert_int_eq(fsroot_grants(rt, &alice), 0);
	ck_assert_ptr_null(fsroot_find("", &alice));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("fsroot");
	const TTest *const tests[] = {
		parse_roots,
		parse_refusals,
		grants,
		find_none_granted,
		dir_plain_root_borrowed,
		dir_per_user,
		dir_per_user_planted,
		dir_per_user_foreign_owner,
		modes_default_ceiling,
		modes_configured_ceiling,
		default_root,
		NULL,
	};
	TCase *tc = th_tcase(s, "fsroot", 10, tests);
	tcase_add_checked_fixture(tc, setup, teardown);
	return s;
}

TH_MAIN(suite)
