/*
 * Unit tests of fsconfine: paths confined to a directory with openat2 and
 * with the component walk, the lexical checks, splitting, and the one
 * errno -> PORTER_E_* mapping (which must never hand back an errno value).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsconfine.h"
#include "log.h"
#include "porter_errors.h"
#include "thmain.h"
#include "thsys.h"

static char top[64];
static int rootfd = -1;

/* top/root/{file, dir/inner, in -> file, out -> /etc, up -> ../outside,
 * proc -> /proc/self/root}, and top/outside (a file beside the root). */
static void setup(void)
{
	char p[160];
	snprintf(top, sizeof(top), "/tmp/porter-fsconfine-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
	snprintf(p, sizeof(p), "%s/root", top);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	rootfd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(rootfd, 0);
	ck_assert_int_eq(mkdirat(rootfd, "dir", 0700), 0);
	int fd = openat(rootfd, "file", O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	fd = openat(rootfd, "dir/inner", O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	snprintf(p, sizeof(p), "%s/outside", top);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(symlinkat("file", rootfd, "in"), 0);
	ck_assert_int_eq(symlinkat("/etc", rootfd, "out"), 0);
	ck_assert_int_eq(symlinkat("../outside", rootfd, "up"), 0);
	ck_assert_int_eq(symlinkat("/proc/self/root", rootfd, "proc"), 0);
}

static void teardown(void)
{
	close(rootfd);
	ck_assert_int_eq(th_rm_rf(top), 0);
}

/* Opens `path` read-only; returns 0 or the errno value, closing what it
 * opened. */
static int try_open(const char *path)
{
	int fd = -1;
	int e = fsconfine_open(rootfd, path, O_RDONLY, 0, 0, &fd);
	if (e == 0) {
		ck_assert_int_ge(fd, 0);
		close(fd);
	}
	return e;
}

/* Every escape is refused and reads as PORTER_E_FILE_ESCAPE; what stays
 * inside opens. Run under both methods. */
static void check_escapes(int walking)
{
	ck_assert_int_eq(fsconfine_init(walking ? "walk" : "auto"), 0);
	ck_assert_int_eq(fsconfine_walking(), walking);
	const char *escapes[] = {"..",         "../outside", "/etc/passwd",     "dir/../../outside",
				 "out/passwd", "up",         "proc/etc/passwd", "a/../../x"};
	for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
		int e = try_open(escapes[i]);
		ck_assert_msg(fsconfine_code(e) == PORTER_E_FILE_ESCAPE, "%s: '%s' gave errno %d",
			      walking ? "walk" : "openat2", escapes[i], e);
	}
	static const struct {
		const char *path;
		int errno_value;
	} inside[] = {
		{"file", 0},          {"dir/inner", 0},
		{"./dir/./inner", 0}, {"", 0}, /* the root itself */
		{"nope", ENOENT},     {"file/x", ENOTDIR},
	};
	for (size_t i = 0; i < sizeof(inside) / sizeof(inside[0]); i++) {
		int e = try_open(inside[i].path);
		ck_assert_msg(e == inside[i].errno_value, "%s: '%s' gave errno %d",
			      walking ? "walk" : "openat2", inside[i].path, e);
	}
	/* A link that stays inside: followed by openat2, refused by the walk
	 * (which follows no link at all). */
	if (walking)
		ck_assert_int_eq(fsconfine_code(try_open("in")), PORTER_E_FILE_ESCAPE);
	else
		ck_assert_int_eq(try_open("in"), 0);
}

START_TEST(escapes_openat2)
{
	check_escapes(0);
}
END_TEST

START_TEST(escapes_walk)
{
	check_escapes(1);
}
END_TEST

START_TEST(create_confined)
{
	ck_assert_int_eq(fsconfine_init("auto"), 0);
	int fd = -1;
	ck_assert_int_eq(fsconfine_open(rootfd, "dir/new", O_WRONLY | O_CREAT, 0600, 0, &fd), 0);
	close(fd);
	/* O_CREAT through a link out never creates outside. */
	ck_assert_int_eq(fsconfine_code(fsconfine_open(rootfd, "out/porter-test-x",
						       O_WRONLY | O_CREAT, 0600, 0, &fd)),
			 PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(access("/etc/porter-test-x", F_OK), -1);
}
END_TEST

START_TEST(lexical)
{
	static const struct {
		const char *path;
		int escapes;
	} cases[] = {
		{"a/b", 0},     {"a/../b", 0},    {"./a//b/", 0}, {"", 0},       {"..", 1},
		{"a/../..", 1}, {"a/../../b", 1}, {"/a", 1},      {"./../a", 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(fsconfine_escapes(cases[i].path) == cases[i].escapes, "'%s'",
			      cases[i].path);
}
END_TEST

START_TEST(split)
{
	static const struct {
		const char *path;
		int rc;                 /* 0, or the errno value */
		const char *dir, *base; /* when 0 */
	} cases[] = {
		{"a/b/c.txt", 0, "a/b/", "c.txt"},
		{"c.txt", 0, "", "c.txt"},
		{"a/..", EXDEV, 0, 0},
		{"", EINVAL, 0, 0},
		{"a/.", EINVAL, 0, 0},
		{"a/", EINVAL, 0, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *dir = NULL;
		const char *base = NULL;
		ck_assert_msg(fsconfine_split(cases[i].path, &dir, &base) == cases[i].rc, "'%s'",
			      cases[i].path);
		if (cases[i].rc == 0) {
			ck_assert_str_eq(dir, cases[i].dir);
			ck_assert_str_eq(base, cases[i].base);
		}
		free(dir);
	}
}
END_TEST

/* The mapping point: every errno value becomes a PORTER_E_* code, never
 * itself negated (-ENOENT is PORTER_E_NOMEM's value). */
START_TEST(codes_never_errno)
{
	static const int codes[][2] = {
		{ENOENT, PORTER_E_FILE_NOT_FOUND},
		{EXDEV, PORTER_E_FILE_ESCAPE},
		{ELOOP, PORTER_E_FILE_ESCAPE},
		{EACCES, PORTER_E_FILE_PERM},
		{EEXIST, PORTER_E_FILE_EXISTS},
		{ENOTDIR, PORTER_E_FILE_NOTDIR},
		{FSCONFINE_EMOUNT, PORTER_E_FILE_ESCAPE},
	};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		ck_assert_msg(fsconfine_code(codes[i][0]) == codes[i][1], "errno %d gave %s",
			      codes[i][0], porter_error_name(fsconfine_code(codes[i][0])));
	for (int e = 1; e < 134; e++) {
		int c = fsconfine_code(e);
		ck_assert_msg(c < 0 && porter_error_name(c) != NULL &&
				      strcmp(porter_error_name(c), "PORTER_E_UNKNOWN") != 0,
			      "errno %d gave %d", e, c);
		const char *why = fsconfine_reason(e, 0);
		ck_assert_msg(why && why[0] && !strstr(why, "cross-device"), "errno %d", e);
	}
	ck_assert_str_eq(fsconfine_reason(ENOENT, 1), "no such directory");
	ck_assert_str_eq(fsconfine_reason(EXDEV, 0), "the path leaves the root");
	ck_assert_ptr_nonnull(strstr(fsconfine_reason(FSCONFINE_EMOUNT, 0), "mount point"));
}
END_TEST

/* Without a mount inside the root nothing changes for a path, and
 * fsconfine_lstat reports a symlink itself, in both methods (mount
 * points themselves: test_trust_mounts, which can mount). */
START_TEST(lstat_both_methods)
{
	const char *modes[] = {"auto", "walk"};
	for (int m = 0; m < 2; m++) {
		ck_assert_int_eq(fsconfine_init(modes[m]), 0);
		struct stat sb;
		ck_assert_int_eq(fsconfine_lstat(rootfd, "in", 0, &sb), 0);
		ck_assert(S_ISLNK(sb.st_mode));
		ck_assert_int_eq(fsconfine_lstat(rootfd, "out", 0, &sb), 0);
		ck_assert(S_ISLNK(sb.st_mode));
		ck_assert_int_eq(fsconfine_lstat(rootfd, "dir", 0, &sb), 0);
		ck_assert(S_ISDIR(sb.st_mode));
		ck_assert_int_eq(fsconfine_lstat(rootfd, "file", FSCONFINE_CROSS_MOUNTS, &sb), 0);
		ck_assert(S_ISREG(sb.st_mode));
		ck_assert_int_eq(fsconfine_lstat(rootfd, "missing", 0, &sb), ENOENT);
		ck_assert_int_eq(fsconfine_lstat(rootfd, "dir/inner", 0, &sb), EINVAL);
		ck_assert_int_eq(fsconfine_lstat(rootfd, "..", 0, &sb), EINVAL);
		int fd = -1;
		ck_assert_int_eq(fsconfine_open(rootfd, "dir/inner", O_RDONLY, 0, 0, &fd), 0);
		close(fd);
		ck_assert_int_ge(fsconfine_mount_id(rootfd), 0);
	}
	ck_assert_int_eq(fsconfine_init("auto"), 0);
}
END_TEST

static Suite *suite(void)
{
	log_init();
	log_set_level(LOG_LVL_ERROR);
	const TTest *tests[] = {escapes_openat2, escapes_walk,      create_confined,    lexical,
				split,           codes_never_errno, lstat_both_methods, NULL};
	Suite *s = suite_create("fsconfine");
	tcase_add_checked_fixture(th_tcase(s, "confine", 0, tests), setup, teardown);
	return s;
}

TH_MAIN(suite)
