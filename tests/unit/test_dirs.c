/* dirs: mkdir -p of porterd's own directories, private levels. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dirs.h"
#include "thmain.h"
#include "thsys.h"

static char base[64];

static void setup(void)
{
	snprintf(base, sizeof(base), "/tmp/porter-dirs-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
}

static void teardown(void)
{
	ck_assert_int_eq(th_rm_rf(base), 0);
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	return st.st_mode & 07777;
}

START_TEST(creates_every_missing_level_private)
{
	char path[128], mid[128];
	snprintf(path, sizeof(path), "%s/a/b/c", base);
	snprintf(mid, sizeof(mid), "%s/a/b", base);
	mode_t old = umask(0);
	int rc = dirs_make(path);
	umask(old);
	ck_assert_int_eq(rc, 1);
	ck_assert_uint_eq(mode_of(path), 0700);
	ck_assert_uint_eq(mode_of(mid), 0700);
	/* A second call finds it: 0, and nothing about it changes. */
	ck_assert_int_eq(chmod(path, 0755), 0);
	ck_assert_int_eq(dirs_make(path), 0);
	ck_assert_uint_eq(mode_of(path), 0755);
	/* A trailing slash names the same directory. */
	strcat(path, "/");
	ck_assert_int_eq(dirs_make(path), 0);
}
END_TEST

START_TEST(files_in_the_way_are_errors)
{
	char file[128], below[160];
	snprintf(file, sizeof(file), "%s/f", base);
	int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	/* The path itself is a file: mkdir -p fails, so does this. */
	ck_assert_int_eq(dirs_make(file), -EEXIST);
	/* A file as a parent. */
	snprintf(below, sizeof(below), "%s/x/y", file);
	ck_assert_int_eq(dirs_make(below), -ENOTDIR);
}
END_TEST

START_TEST(overlong_paths_are_refused_before_any_mkdir)
{
	size_t n = PATH_MAX + 10;
	char *p = malloc(n + 1);
	ck_assert_ptr_nonnull(p);
	int k = snprintf(p, n + 1, "%s/", base);
	memset(p + k, 'a', n - (size_t)k);
	p[n] = '\0';
	ck_assert_int_eq(dirs_make(p), -ENAMETOOLONG);
	free(p);
	char first[80];
	snprintf(first, sizeof(first), "%s/aaaa", base);
	ck_assert_int_eq(access(first, F_OK), -1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("dirs");
	const TTest *tests[] = {creates_every_missing_level_private, files_in_the_way_are_errors,
				overlong_paths_are_refused_before_any_mkdir, NULL};
	tcase_add_checked_fixture(th_tcase(s, "dirs", 0, tests), setup, teardown);
	return s;
}

TH_MAIN(suite)
