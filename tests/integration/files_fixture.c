/*
 * files_fixture - see files_fixture.h.
 */
#include "files_fixture.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "porter.h"

th_daemon d;
char root[64];
char other[64];
char outside[64];
int bytes_mode;
int pool_only;

void empty_dir(const char *dir)
{
	DIR *dd = opendir(dir);
	ck_assert_ptr_nonnull(dd);
	struct dirent *e;
	char p[512];
	while ((e = readdir(dd))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		th_rm_rf(p);
	}
	closedir(dd);
}

void path_in(char *buf, size_t cap, const char *dir, const char *rel)
{
	snprintf(buf, cap, "%s/%s", dir, rel);
}

void put_local(const char *dir, const char *rel, const char *content)
{
	char p[256];
	path_in(p, sizeof(p), dir, rel);
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs(content, f);
	fclose(f);
}

static void make_dirs(void)
{
	strcpy(root, "/tmp/porter-files-XXXXXX");
	strcpy(other, "/tmp/porter-other-XXXXXX");
	strcpy(outside, "/tmp/porter-outside-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	ck_assert_ptr_nonnull(mkdtemp(other));
	ck_assert_ptr_nonnull(mkdtemp(outside));
	put_local(outside, "secret", "outside secret");
}

void start_with(const char *resolve)
{
	char roots[256];
	snprintf(roots, sizeof(roots), "main=%s,other=%s", root, other);
	const char *args[] = {"--file-roots",
			      roots,
			      "--file-resolve",
			      resolve,
			      "--file-chunk-size",
			      "65536",
			      bytes_mode ? "--file-pass-fd=false" : "--file-pass-fd=true",
			      pool_only ? "--file-loop-fast-path=false"
					: "--file-loop-fast-path=true",
			      NULL};
	ck_assert_msg(th_daemon_start(&d, args) == 0, "porterd did not start");
}

void setup(void)
{
	make_dirs();
	start_with("auto");
}

void setup_bytes(void)
{
	bytes_mode = 1;
	setup();
}

void teardown(void)
{
	int st = th_daemon_finish(&d);
	th_rm_rf(root);
	th_rm_rf(other);
	th_rm_rf(outside);
	ck_assert_int_eq(st, 0);
}

void expect_content(const char *rt, const char *path, const void *want, size_t n)
{
	porter_bytes *b = NULL;
	int rc = porter_file_read(rt, path, 0, 0, 0, T, &b);
	ck_assert_msg(rc == 0, "read %s: %s", path, porter_last_error_message());
	ck_assert_uint_eq(b->len, n);
	ck_assert(n == 0 || memcmp(b->data, want, n) == 0);
	porter_bytes_free(b);
}

Suite *files_suite(const char *name, const TTest *const *ops, const TTest *const *bytes)
{
	Suite *s = suite_create(name);
	tcase_add_checked_fixture(th_tcase(s, "ops", 150, ops), setup, teardown);
	/* The same with every byte over the socket (file-pass-fd false:
	 * batch members and the fallback). */
	tcase_add_checked_fixture(th_tcase(s, "bytes", 150, bytes), setup_bytes, teardown);
	return s;
}
