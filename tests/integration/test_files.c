/*
 * Integration tests of file operations through porterd, reads and writes
 * both by descriptor (the default) and as bytes over the socket
 * (file-pass-fd false); the fixture is files_fixture.c.
 *
 * This suite: every operation, the default root, porterctl file.
 * The suites of this family: test_files (operations), test_files_errors
 * (errno mapping), test_files_confine (confinement), test_files_stream
 * (streams and concurrency).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files_fixture.h"
#include "harness.h"
#include "porter.h"

/* ------------------------------------------------------------ operations */

START_TEST(test_write_read_binary)
{
	const char data[] = "a\0b\0\0c\xff\x00z";
	size_t n = sizeof(data);
	ck_assert_int_eq(porter_file_write("main", "bin", data, n, PORTER_FILE_CREATE, 0, 0, T), 0);
	expect_content("main", "bin", data, n);
	/* The first root is the default. */
	expect_content(NULL, "bin", data, n);
	expect_content("", "bin", data, n);

	/* Ranges: middle, past the end, length beyond the end. */
	porter_bytes *b = NULL;
	ck_assert_int_eq(porter_file_read("main", "bin", 2, 3, 0, T, &b), 0);
	ck_assert_uint_eq(b->len, 3);
	ck_assert(memcmp(b->data, data + 2, 3) == 0);
	porter_bytes_free(b);
	ck_assert_int_eq(porter_file_read("main", "bin", 100, 0, 0, T, &b), 0);
	ck_assert_uint_eq(b->len, 0);
	porter_bytes_free(b);
	ck_assert_int_eq(porter_file_read("main", "bin", 5, 1000, 0, T, &b), 0);
	ck_assert_uint_eq(b->len, n - 5);
	porter_bytes_free(b);

	/* An empty file. */
	ck_assert_int_eq(porter_file_write("main", "empty", NULL, 0, PORTER_FILE_CREATE, 0, 0, T),
			 0);
	expect_content("main", "empty", "", 0);

	/* The bytes on disk are exactly what was sent. */
	char p[256];
	path_in(p, sizeof(p), root, "bin");
	FILE *f = fopen(p, "rb");
	char got[64];
	size_t gn = fread(got, 1, sizeof(got), f);
	fclose(f);
	ck_assert_uint_eq(gn, n);
	ck_assert(memcmp(got, data, n) == 0);
}
END_TEST

START_TEST(test_write_modes)
{
	ck_assert_int_eq(porter_file_write("main", "f", "hello", 5, PORTER_FILE_CREATE, 0, 0, T),
			 0);
	/* Plain overwrite from the start keeps the tail. */
	ck_assert_int_eq(porter_file_write("main", "f", "J", 1, 0, 0, 0, T), 0);
	expect_content("main", "f", "Jello", 5);
	ck_assert_int_eq(porter_file_write("main", "f", " world", 6, PORTER_FILE_APPEND, 0, 0, T),
			 0);
	expect_content("main", "f", "Jello world", 11);
	ck_assert_int_eq(porter_file_write("main", "f", "x", 1, PORTER_FILE_TRUNCATE, 0, 0, T), 0);
	expect_content("main", "f", "x", 1);
	ck_assert_int_eq(porter_file_write("main", "f", "y", 1,
					   PORTER_FILE_CREATE | PORTER_FILE_EXCLUSIVE, 0, 0, T),
			 PORTER_E_FILE_EXISTS);
	ck_assert_int_eq(porter_file_write("main", "f", "y", 1,
					   PORTER_FILE_ATOMIC | PORTER_FILE_EXCLUSIVE, 0, 0, T),
			 PORTER_E_FILE_EXISTS);
	expect_content("main", "f", "x", 1);
	ck_assert_int_eq(porter_file_write("main", "g", "new", 3,
					   PORTER_FILE_ATOMIC | PORTER_FILE_EXCLUSIVE, 0, 0, T),
			 0);
	expect_content("main", "g", "new", 3);
	/* Without CREATE a missing file is not made. */
	ck_assert_int_eq(porter_file_write("main", "missing", "a", 1, 0, 0, 0, T),
			 PORTER_E_FILE_NOT_FOUND);
	/* ATOMIC with APPEND makes no sense. */
	ck_assert_int_eq(porter_file_write("main", "f", "a", 1,
					   PORTER_FILE_ATOMIC | PORTER_FILE_APPEND, 0, 0, T),
			 PORTER_E_INVAL);

	/* Atomic replace: new content, permissions kept, no temp left. */
	char p[256];
	path_in(p, sizeof(p), root, "f");
	chmod(p, 0640);
	ck_assert_int_eq(porter_file_write("main", "f", "replaced", 8, PORTER_FILE_ATOMIC, 0, 0, T),
			 0);
	expect_content("main", "f", "replaced", 8);
	struct stat sb;
	ck_assert_int_eq(stat(p, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0640);
	ck_assert_uint_eq(th_dir_entries(root), 2);

	/* Mode of a created file: as asked within file-max-mode (0660). */
	ck_assert_int_eq(porter_file_write("main", "m", "x", 1, PORTER_FILE_CREATE, 0640, 0, T), 0);
	path_in(p, sizeof(p), root, "m");
	ck_assert_int_eq(stat(p, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0640);
	/* Beyond it, masked: no setuid, setgid, sticky or world bits. */
	ck_assert_int_eq(porter_file_write("main", "m2", "x", 1, PORTER_FILE_CREATE, 07777, 0, T),
			 0);
	path_in(p, sizeof(p), root, "m2");
	ck_assert_int_eq(stat(p, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777 & ~0660, 0); /* porterd's umask may narrow it */
	ck_assert_int_eq(porter_file_delete("main", "m2", 0, 0, T), 0);
	/* An atomic write sets the mode exactly (fchmod), masked. */
	ck_assert_int_eq(porter_file_write("main", "m2", "x", 1, PORTER_FILE_ATOMIC, 07777, 0, T),
			 0);
	ck_assert_int_eq(stat(p, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0660);
	ck_assert_int_eq(porter_file_delete("main", "m2", 0, 0, T), 0);

	/* The second root is separate. */
	ck_assert_int_eq(porter_file_write("other", "f", "o", 1, PORTER_FILE_CREATE, 0, 0, T), 0);
	expect_content("other", "f", "o", 1);
	expect_content("main", "f", "replaced", 8);
	ck_assert_int_eq(porter_file_write("nope", "f", "o", 1, PORTER_FILE_CREATE, 0, 0, T),
			 PORTER_E_FILE_ROOT);
}
END_TEST

START_TEST(test_stat_list_delete)
{
	char p[256];
	path_in(p, sizeof(p), root, "dir");
	mkdir(p, 0755);
	put_local(root, "dir/b", "bb");
	put_local(root, "dir/a", "a");
	path_in(p, sizeof(p), root, "dir/sub");
	mkdir(p, 0700);
	path_in(p, sizeof(p), root, "dir/link");
	ck_assert_int_eq(symlink("a", p), 0);

	porter_file_info fi = PORTER_FILE_INFO_INIT;
	ck_assert_int_eq(porter_file_stat("main", "dir/b", 0, T, &fi), 0);
	ck_assert_int_eq(fi.type, PORTER_FILE_TYPE_REGULAR);
	ck_assert_uint_eq(fi.size, 2);
	ck_assert_uint_eq(fi.uid, getuid());
	ck_assert_uint_eq(fi.nlink, 1);
	ck_assert(fi.mtime_ns > 0);
	ck_assert_int_eq(porter_file_stat("main", "dir", 0, T, &fi), 0);
	ck_assert_int_eq(fi.type, PORTER_FILE_TYPE_DIRECTORY);
	ck_assert_uint_eq(fi.mode, 0755);
	/* A symlink inside the root is followed. */
	ck_assert_int_eq(porter_file_stat("main", "dir/link", 0, T, &fi), 0);
	ck_assert_int_eq(fi.type, PORTER_FILE_TYPE_REGULAR);
	ck_assert_uint_eq(fi.size, 1);
	ck_assert_int_eq(porter_file_stat("main", "", 0, T, &fi), 0);
	ck_assert_int_eq(fi.type, PORTER_FILE_TYPE_DIRECTORY);

	porter_file_list *l = NULL;
	ck_assert_int_eq(porter_file_list_dir("main", "dir", 0, T, &l), 0);
	ck_assert_uint_eq(porter_file_list_count(l), 4);
	const char *names[] = {"a", "b", "link", "sub"};
	const int types[] = {PORTER_FILE_TYPE_REGULAR, PORTER_FILE_TYPE_REGULAR,
			     PORTER_FILE_TYPE_SYMLINK, PORTER_FILE_TYPE_DIRECTORY};
	for (size_t i = 0; i < 4; i++) {
		int type;
		uint64_t size;
		ck_assert_str_eq(porter_file_list_name(l, i), names[i]);
		ck_assert_int_eq(porter_file_list_entry(l, i, &type, &size, NULL), 0);
		ck_assert_int_eq(type, types[i]);
		if (i == 1)
			ck_assert_uint_eq(size, 2);
	}
	ck_assert_ptr_null(porter_file_list_name(l, 4));
	ck_assert_int_eq(porter_file_list_entry(l, 4, NULL, NULL, NULL), PORTER_E_INVAL);
	porter_file_list_free(l);
	ck_assert_int_eq(porter_file_list_dir("main", NULL, 0, T, &l), 0);
	ck_assert_uint_eq(porter_file_list_count(l), 1);
	porter_file_list_free(l);

	/* Delete: a symlink itself, a file, an empty directory, then a
	 * non-empty one fails. */
	ck_assert_int_eq(porter_file_delete("main", "dir/link", 0, 0, T), 0);
	path_in(p, sizeof(p), root, "dir/a");
	ck_assert_int_eq(access(p, F_OK), 0);
	ck_assert_int_eq(porter_file_delete("main", "dir/a", 0, 0, T), 0);
	ck_assert_int_ne(access(p, F_OK), 0);
	ck_assert_int_eq(porter_file_delete("main", "dir/a", 0, 0, T), PORTER_E_FILE_NOT_FOUND);
	ck_assert_int_eq(porter_file_delete("main", "dir/sub", 0, 0, T), PORTER_E_FILE_ISDIR);
	ck_assert_int_eq(porter_file_delete("main", "dir/sub", 1, 0, T), 0);
	ck_assert_int_eq(porter_file_delete("main", "dir", 1, 0, T), PORTER_E_FILE_EXISTS);
	ck_assert_int_eq(porter_file_delete("main", "dir/b", 0, 0, T), 0);
	ck_assert_int_eq(porter_file_delete("main", "dir", 1, 0, T), 0);
	ck_assert_uint_eq(th_dir_entries(root), 0);
	/* The root itself cannot be deleted. */
	ck_assert_int_eq(porter_file_delete("main", "", 1, 0, T), PORTER_E_INVAL);
	ck_assert_int_eq(porter_file_delete("main", ".", 1, 0, T), PORTER_E_INVAL);
}
END_TEST

START_TEST(test_default_root)
{
	porter_thread_disconnect();
	th_daemon_stop(&d);
	th_daemon_cleanup(&d);
	char xdg[256];
	snprintf(xdg, sizeof(xdg), "%s/xdg", other);
	setenv("XDG_DATA_HOME", xdg, 1);
	ck_assert_int_eq(th_daemon_start(&d, NULL), 0);
	ck_assert_int_eq(porter_file_write(NULL, "hello", "hi", 2, PORTER_FILE_ATOMIC, 0, 0, T), 0);
	ck_assert_int_eq(porter_file_write("files", "hello2", "hi", 2, PORTER_FILE_ATOMIC, 0, 0, T),
			 0);
	char p[300];
	snprintf(p, sizeof(p), "%s/porter/files/hello", xdg);
	ck_assert_int_eq(access(p, F_OK), 0);
	snprintf(p, sizeof(p), "%s/porter/files", xdg);
	struct stat sb;
	ck_assert_int_eq(stat(p, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0700);
	/* The start-up log names the root. */
	FILE *f = fopen(d.log, "r");
	ck_assert_ptr_nonnull(f);
	char line[512];
	int seen = 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "file root 'files' is") && strstr(line, p))
			seen = 1;
	fclose(f);
	ck_assert_msg(seen, "start-up log does not name the default root");
	unsetenv("XDG_DATA_HOME");
}
END_TEST

START_TEST(test_porterctl_file)
{
	char out[4096];
	size_t n = 0;
	const char *ctl = PORTERCTL_PATH;
	ck_assert_int_eq(th_ctl("a\0b", 3, TH_ERR_KEEP, out, sizeof(out), "file", "put", "-r",
				"main", "x", NULL),
			 0);
	const char *const cat[] = {ctl, "file", "cat", "-r", "main", "x", NULL};
	ck_assert_int_eq(th_run(cat, TH_ERR_KEEP, NULL, 0, out, sizeof(out), &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_mem_eq(out, "a\0b", 3);
	ck_assert_int_eq(
		th_ctl(NULL, 0, TH_ERR_KEEP, out, sizeof(out), "--json", "file", "stat", "x", NULL),
		0);
	ck_assert_ptr_nonnull(strstr(out, "\"size\":3"));
	ck_assert_ptr_nonnull(strstr(out, "\"type\":\"file\""));
	ck_assert_int_eq(th_ctl(NULL, 0, TH_ERR_KEEP, out, sizeof(out), "file", "ls", NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, " x\n"));
	ck_assert_int_eq(
		th_ctl("more\n", 5, TH_ERR_KEEP, out, sizeof(out), "file", "put", "-a", "x", NULL),
		0);
	expect_content("main", "x", "a\0bmore\n", 8);
	ck_assert_int_eq(
		th_ctl("y\n", 2, TH_ERR_OUT, out, sizeof(out), "file", "put", "-x", "x", NULL), 1);
	ck_assert_ptr_nonnull(strstr(out, "PORTER_E_FILE_EXISTS"));
	ck_assert_int_eq(
		th_ctl(NULL, 0, TH_ERR_OUT, out, sizeof(out), "file", "cat", "../etc/passwd", NULL),
		1);
	ck_assert_ptr_nonnull(strstr(out, "PORTER_E_FILE_ESCAPE"));
	ck_assert_int_eq(th_ctl(NULL, 0, TH_ERR_KEEP, out, sizeof(out), "file", "rm", "x", NULL),
			 0);
	ck_assert_int_eq(th_ctl(NULL, 0, TH_ERR_OUT, out, sizeof(out), "file", "cat", "x", NULL),
			 1);
	ck_assert_ptr_nonnull(strstr(out, "PORTER_E_FILE_NOT_FOUND"));
	ck_assert_int_eq(th_ctl(NULL, 0, TH_ERR_NULL, out, sizeof(out), "file", "frob", NULL), 2);
}
END_TEST

static Suite *suite(void)
{
	const TTest *ops[] = {test_write_read_binary, test_write_modes,    test_stat_list_delete,
			      test_default_root,      test_porterctl_file, NULL};
	const TTest *bytes[] = {test_write_read_binary, test_write_modes, NULL};
	return files_suite("files", ops, bytes);
}

TH_MAIN(suite)
