/* Unit tests of the fs module's start-up: roots from settings, the default
 * root, and refusal of bad root settings. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fs.h"
#include "fsroot.h"
#include "log.h"
#include "porter_errors.h"
#include "thmain.h"

static int init_with(const char *roots, const char *resolve)
{
	config c;
	config_defaults(&c);
	char a1[512], a2[64];
	snprintf(a1, sizeof(a1), "--file-roots=%s", roots);
	snprintf(a2, sizeof(a2), "--file-resolve=%s", resolve);
	char *argv[] = {"porterd", a1, a2, NULL};
	FILE *out = tmpfile(), *err = tmpfile();
	int rc = config_parse_args(&c, 3, argv, out, err);
	fclose(out);
	fclose(err);
	ck_assert_int_eq(rc, 0);
	rc = fs_init(&c);
	fs_shutdown();
	config_free(&c);
	return rc;
}

START_TEST(roots_from_settings)
{
	ck_assert_int_eq(init_with("a=/tmp", "auto"), 0);
	ck_assert_int_eq(init_with("a=/tmp,b=/", "walk"), 0);
	ck_assert_int_eq(init_with("a = /tmp , b=/", "auto"), 0);
}
END_TEST

START_TEST(bad_roots_refused)
{
	ck_assert_int_eq(init_with("a=relative/dir", "auto"), PORTER_E_INVAL);
	ck_assert_int_eq(init_with("a=/nonexistent-porter-root", "auto"), PORTER_E_INVAL);
	ck_assert_int_eq(init_with("a=/etc/passwd", "auto"), PORTER_E_INVAL); /* not a directory */
	ck_assert_int_eq(init_with("noequals", "auto"), PORTER_E_INVAL);
	ck_assert_int_eq(init_with("=/tmp", "auto"), PORTER_E_INVAL);
	ck_assert_int_eq(init_with("a=", "auto"), PORTER_E_INVAL);
	ck_assert_int_eq(init_with("a=/tmp,a=/", "auto"), PORTER_E_INVAL);
	ck_assert_int_eq(init_with("a=/tmp", "sometimes"), PORTER_E_INVAL);
}
END_TEST

START_TEST(default_root_location)
{
	char buf[256];
	setenv("XDG_DATA_HOME", "/x/data", 1);
	setenv("HOME", "/home/u", 1);
	ck_assert_int_eq(fsroot_default_path(buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "/x/data/porter/files");
	setenv("XDG_DATA_HOME", "relative", 1); /* ignored, as the XDG spec says */
	ck_assert_int_eq(fsroot_default_path(buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "/home/u/.local/share/porter/files");
	unsetenv("XDG_DATA_HOME");
	ck_assert_int_eq(fsroot_default_path(buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "/home/u/.local/share/porter/files");
	ck_assert_int_eq(fsroot_default_path(buf, 10), PORTER_E_INVAL);
	unsetenv("HOME");
	ck_assert_int_eq(fsroot_default_path(buf, sizeof(buf)), PORTER_E_INVAL);
}
END_TEST

START_TEST(default_root_created_private)
{
	char dir[64] = "/tmp/porter-fsunit-XXXXXX", path[256];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	setenv("XDG_DATA_HOME", dir, 1);
	config c;
	config_defaults(&c);
	ck_assert_int_eq(fs_init(&c), 0);
	fs_shutdown();
	config_free(&c);
	snprintf(path, sizeof(path), "%s/porter/files", dir);
	struct stat sb;
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	ck_assert_int_eq(sb.st_mode & 0777, 0700);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/porter", dir);
	rmdir(path);
	rmdir(dir);

	/* A default root that cannot be made leaves the daemon running
	 * without file roots rather than failing to start. */
	setenv("XDG_DATA_HOME", "/proc/porter-cannot-exist", 1);
	config_defaults(&c);
	ck_assert_int_eq(fs_init(&c), 0);
	fs_shutdown();
	config_free(&c);
	unsetenv("XDG_DATA_HOME");
}
END_TEST

static Suite *suite(void)
{
	log_init();
	log_set_level(LOG_LVL_ERROR);
	const TTest *tests[] = {roots_from_settings, bad_roots_refused, default_root_location,
				default_root_created_private, NULL};
	return th_suite("fs", "init", 0, tests);
}

TH_MAIN(suite)
