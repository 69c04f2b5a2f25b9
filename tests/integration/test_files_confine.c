/*
 * Integration tests of file operations through porterd, reads and writes
 * both by descriptor (the default) and as bytes over the socket
 * (file-pass-fd false); the fixture is files_fixture.c.
 *
 * This suite: confinement, a table of escape attempts under both
 * resolution methods, and a root reached through a magic link.
 * The suites of this family: test_files (operations), test_files_errors
 * (errno mapping), test_files_confine (confinement), test_files_stream
 * (streams and concurrency).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files_fixture.h"
#include "harness.h"
#include "porter.h"

/* ------------------------------------------------------------ confinement */

/* Builds the escape fixtures inside `root`. */
static void make_escape_fixtures(void)
{
	char p[256], t[256];
	path_in(p, sizeof(p), root, "sub");
	mkdir(p, 0755);
	put_local(root, "sub/in", "inside");
	put_local(root, "top", "top");
	path_in(p, sizeof(p), root, "to_etc");
	ck_assert_int_eq(symlink("/etc", p), 0);
	path_in(p, sizeof(p), root, "to_outside");
	ck_assert_int_eq(symlink(outside, p), 0);
	path_in(t, sizeof(t), outside, "secret");
	path_in(p, sizeof(p), root, "to_secret");
	ck_assert_int_eq(symlink(t, p), 0);
	/* A chain: hop1 -> hop2 (inside) -> ../.. (out). */
	path_in(p, sizeof(p), root, "hop1");
	ck_assert_int_eq(symlink("hop2", p), 0);
	path_in(p, sizeof(p), root, "hop2");
	ck_assert_int_eq(symlink("sub/hop3", p), 0);
	path_in(p, sizeof(p), root, "sub/hop3");
	ck_assert_int_eq(symlink("../../..", p), 0);
	path_in(p, sizeof(p), root, "rel_out");
	snprintf(t, sizeof(t), "..%s/secret", outside); /* ../tmp/porter-outside-X/secret */
	ck_assert_int_eq(symlink(t, p), 0);
	path_in(p, sizeof(p), root, "to_proc_root");
	ck_assert_int_eq(symlink("/proc/self/root", p), 0);
	/* A symlink that stays inside. */
	path_in(p, sizeof(p), root, "in_link");
	ck_assert_int_eq(symlink("sub/in", p), 0);
}

static const char *const escapes[] = {
	"..",
	"../",
	"../etc/passwd",
	"a/../../porter-escape-probe",
	"sub/../../porter-escape-probe",
	"sub/../..",
	"/etc/passwd",
	"/",
	"//etc",
	"to_etc/passwd",
	"to_etc",
	"to_outside/secret",
	"to_outside/new",
	"to_secret",
	"hop1",
	"hop1/etc/passwd",
	"rel_out",
	"to_proc_root/etc/passwd",
	"to_proc_root",
};

/* Every operation refuses every escape and nothing changes outside. */
static void make_escape_fixtures(void);
static void check_escapes(void)
{
	porter_bytes *b = NULL;
	porter_file_info fi = PORTER_FILE_INFO_INIT;
	porter_file_list *l = NULL;
	porter_file_reader *rd = NULL;
	porter_file_writer *wr = NULL;
	for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
		const char *e = escapes[i];
		int rc = porter_file_read("main", e, 0, 0, 0, T, &b);
		ck_assert_msg(rc == PORTER_E_FILE_ESCAPE, "read %s: %d (%s)", e, rc,
			      porter_last_error_message());
		rc = porter_file_stat("main", e, 0, T, &fi);
		ck_assert_msg(rc == PORTER_E_FILE_ESCAPE, "stat %s: %d", e, rc);
		rc = porter_file_list_dir("main", e, 0, T, &l);
		ck_assert_msg(rc == PORTER_E_FILE_ESCAPE, "list %s: %d", e, rc);
		rc = porter_file_reader_open("main", e, 0, 0, 0, 0, T, &rd);
		ck_assert_msg(rc == PORTER_E_FILE_ESCAPE, "reader %s: %d", e, rc);
		/* Writes and deletes: refused, or (for a path whose last
		 * component is a symlink inside the root) acting on the link
		 * itself, never on what it points to. */
		rc = porter_file_write("main", e, "pwned", 5, PORTER_FILE_CREATE, 0, 0, T);
		ck_assert_msg(rc == PORTER_E_FILE_ESCAPE, "write %s: %d", e, rc);
		rc = porter_file_writer_open("main", e, PORTER_FILE_CREATE, 0, 0, T, &wr);
		ck_assert_msg(rc == PORTER_E_FILE_ESCAPE, "writer %s: %d", e, rc);
		rc = porter_file_write("main", e, "pwned", 5, PORTER_FILE_ATOMIC, 0, 0, T);
		ck_assert_msg(rc == PORTER_E_FILE_ESCAPE || rc == 0 || rc == PORTER_E_INVAL,
			      "atomic write %s: %d", e, rc);
		rc = porter_file_delete("main", e, 0, 0, T);
		ck_assert_msg(rc == PORTER_E_FILE_ESCAPE || rc == 0 || rc == PORTER_E_INVAL,
			      "delete %s: %d", e, rc);
		/* Put back what an in-root replace or delete of a link took. */
		empty_dir(root);
		make_escape_fixtures();
	}
	/* Outside is untouched. */
	char p[256];
	path_in(p, sizeof(p), outside, "secret");
	FILE *f = fopen(p, "r");
	ck_assert_ptr_nonnull(f);
	char buf[64] = {0};
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
	fclose(f);
	ck_assert_str_eq(buf, "outside secret");
	ck_assert_uint_eq(th_dir_entries(outside), 1);
	ck_assert_int_ne(access("/pwned", F_OK), 0);
	ck_assert_int_ne(access("/tmp/porter-escape-probe", F_OK), 0);
}

START_TEST(test_escape_table_openat2)
{
	make_escape_fixtures();
	check_escapes();
	/* What stays inside works: ".." within the root, a symlink inside. */
	expect_content("main", "sub/../top", "top", 3);
	expect_content("main", "sub/./in", "inside", 6);
	empty_dir(root);
	make_escape_fixtures();
	expect_content("main", "in_link", "inside", 6);
}
END_TEST

START_TEST(test_escape_table_walk)
{
	porter_thread_disconnect();
	th_daemon_stop(&d);
	th_daemon_cleanup(&d);
	start_with("walk");
	make_escape_fixtures();
	check_escapes();
	/* The walk refuses every ".." and every symlink, even inside. */
	porter_bytes *b = NULL;
	ck_assert_int_eq(porter_file_read("main", "sub/../top", 0, 0, 0, T, &b),
			 PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_read("main", "in_link", 0, 0, 0, T, &b), PORTER_E_FILE_ESCAPE);
	expect_content("main", "sub/in", "inside", 6);
	expect_content("main", "sub/./in", "inside", 6);
	ck_assert_int_eq(porter_file_write("main", "sub/w", "w", 1, PORTER_FILE_ATOMIC, 0, 0, T),
			 0);
	expect_content("main", "sub/w", "w", 1);
}
END_TEST

START_TEST(test_magic_link_root)
{
	/* A root at /proc/self: its "root" entry is a magic link. */
	porter_thread_disconnect();
	th_daemon_stop(&d);
	th_daemon_cleanup(&d);
	const char *args[] = {"--file-roots", "proc=/proc/self", NULL};
	ck_assert_int_eq(th_daemon_start(&d, args), 0);
	porter_bytes *b = NULL;
	porter_file_info fi = PORTER_FILE_INFO_INIT;
	ck_assert_int_eq(porter_file_read("proc", "root/etc/passwd", 0, 0, 0, T, &b),
			 PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_stat("proc", "cwd", 0, T, &fi), PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_read("proc", "exe", 0, 0, 0, T, &b), PORTER_E_FILE_ESCAPE);
	/* An ordinary file there still reads. */
	ck_assert_int_eq(porter_file_read("proc", "status", 0, 0, 0, T, &b), 0);
	ck_assert(b->len > 0);
	porter_bytes_free(b);
}
END_TEST

static Suite *suite(void)
{
	const TTest *ops[] = {test_escape_table_openat2, test_escape_table_walk,
			      test_magic_link_root, NULL};
	const TTest *bytes[] = {test_escape_table_openat2, test_escape_table_walk,
				test_magic_link_root, NULL};
	return files_suite("files_confine", ops, bytes);
}

TH_MAIN(suite)
