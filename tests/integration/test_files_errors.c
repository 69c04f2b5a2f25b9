/*
 * Integration tests of file operations through porterd, reads and writes
 * both by descriptor (the default) and as bytes over the socket
 * (file-pass-fd false); the fixture is files_fixture.c.
 *
 * This suite: errno mapped to PORTER_E_* codes with porterd's own
 * messages, permission denied, a full file system.
 * The suites of this family: test_files (operations), test_files_errors
 * (errno mapping), test_files_confine (confinement), test_files_stream
 * (streams and concurrency).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "files_fixture.h"
#include "harness.h"
#include "porter.h"

/* ---------------------------------------------------------------- errors */

/* The calling thread's last error message contains `want`, and no text of
 * the C library's. */
static void expect_message(const char *want)
{
	const char *m = porter_last_error_message();
	ck_assert_msg(strstr(m, want), "message '%s' lacks '%s'", m, want);
	ck_assert_msg(!strstr(m, "cross-device") && !strstr(m, "No such"), "libc text in '%s'", m);
}

START_TEST(test_errno_mapping)
{
	put_local(root, "file", "x");
	char p[256];
	path_in(p, sizeof(p), root, "dir");
	mkdir(p, 0755);
	porter_bytes *b = NULL;
	porter_file_info fi = PORTER_FILE_INFO_INIT;
	porter_file_list *l = NULL;

	/* Messages name the operation, the path and the root, in words of
	 * their own rather than the C library's. */
	ck_assert_int_eq(porter_file_read("main", "nope", 0, 0, 0, T, &b), PORTER_E_FILE_NOT_FOUND);
	expect_message("cannot open 'nope' in root 'main': no such file or directory");
	ck_assert_int_eq(porter_file_stat("main", "nope", 0, T, &fi), PORTER_E_FILE_NOT_FOUND);
	expect_message("cannot stat 'nope' in root 'main': no such file or directory");
	ck_assert_int_eq(porter_file_list_dir("main", "nope", 0, T, &l), PORTER_E_FILE_NOT_FOUND);
	expect_message("cannot list 'nope' in root 'main'");
	ck_assert_int_eq(porter_file_write("main", "nodir/x", "a", 1, PORTER_FILE_CREATE, 0, 0, T),
			 PORTER_E_FILE_NOT_FOUND);
	expect_message("cannot open 'nodir/x' in root 'main': no such directory");
	ck_assert_int_eq(porter_file_write("main", "nodir/x", "a", 1, PORTER_FILE_ATOMIC, 0, 0, T),
			 PORTER_E_FILE_NOT_FOUND);
	expect_message("cannot write 'nodir/x' in root 'main': no such directory");
	/* An escape says so, never "Invalid cross-device link". */
	ck_assert_int_eq(porter_file_read("main", "../x", 0, 0, 0, T, &b), PORTER_E_FILE_ESCAPE);
	expect_message("cannot open '../x' in root 'main': the path leaves the root");
	ck_assert_int_eq(porter_file_write("main", "../x", "a", 1, PORTER_FILE_ATOMIC, 0, 0, T),
			 PORTER_E_FILE_ESCAPE);
	expect_message("cannot write '../x' in root 'main': the path leaves the root");

	ck_assert_int_eq(porter_file_read("main", "dir", 0, 0, 0, T, &b), PORTER_E_FILE_ISDIR);
	ck_assert_int_eq(porter_file_write("main", "dir", "a", 1, PORTER_FILE_CREATE, 0, 0, T),
			 PORTER_E_FILE_ISDIR);
	ck_assert_int_eq(porter_file_write("main", "dir", "a", 1, PORTER_FILE_ATOMIC, 0, 0, T),
			 PORTER_E_FILE_ISDIR);

	ck_assert_int_eq(porter_file_write("main", "file", "a", 1,
					   PORTER_FILE_CREATE | PORTER_FILE_EXCLUSIVE, 0, 0, T),
			 PORTER_E_FILE_EXISTS);

	ck_assert_int_eq(porter_file_read("main", "file/x", 0, 0, 0, T, &b), PORTER_E_FILE_NOTDIR);
	ck_assert_int_eq(porter_file_list_dir("main", "file", 0, T, &l), PORTER_E_FILE_NOTDIR);
	ck_assert_int_eq(porter_file_write("main", "file/x", "a", 1, PORTER_FILE_ATOMIC, 0, 0, T),
			 PORTER_E_FILE_NOTDIR);

	ck_assert_int_eq(porter_file_read("nope", "file", 0, 0, 0, T, &b), PORTER_E_FILE_ROOT);

	/* A FIFO is refused at once instead of blocking a pool thread. */
	path_in(p, sizeof(p), root, "fifo");
	ck_assert_int_eq(mkfifo(p, 0600), 0);
	long long t0 = th_now_ms();
	ck_assert_int_eq(porter_file_read("main", "fifo", 0, 0, 0, T, &b), PORTER_E_INVAL);
	ck_assert_int_ne(porter_file_write("main", "fifo", "a", 1, 0, 0, 0, T), 0);
	ck_assert_int_lt(th_now_ms() - t0, 2000);
	ck_assert_int_eq(porter_file_write("main", "x", "a", 1, 1u << 20, 0, 0, T), PORTER_E_INVAL);
}
END_TEST

/*
 * Permission denied. Root bypasses file modes through its capabilities, so
 * when run as root the check runs in a child that drops CAP_DAC_OVERRIDE,
 * CAP_DAC_READ_SEARCH and CAP_FOWNER from its bounding set before starting
 * its own porterd: that daemon, still uid 0, then obeys the modes of the
 * root-owned fixtures (0000 files, a 0000 directory, a 0555 directory).
 */
static int perm_checks(const char *rootdir)
{
	th_daemon pd;
	char roots[128];
	snprintf(roots, sizeof(roots), "p=%s", rootdir);
	const char *args[] = {"--file-roots", roots, NULL};
	if (th_daemon_start(&pd, args) != 0)
		return 100;
	int bad = 0;
	porter_bytes *b = NULL;
	porter_file_info fi = PORTER_FILE_INFO_INIT;
	porter_file_list *l = NULL;
	if (porter_file_read("p", "secret", 0, 0, 0, T, &b) != PORTER_E_FILE_PERM)
		bad |= 1;
	if (porter_file_write("p", "secret", "x", 1, 0, 0, 0, T) != PORTER_E_FILE_PERM)
		bad |= 2;
	if (porter_file_stat("p", "locked/inner", 0, T, &fi) != PORTER_E_FILE_PERM)
		bad |= 4;
	if (porter_file_list_dir("p", "locked", 0, T, &l) != PORTER_E_FILE_PERM)
		bad |= 8;
	if (porter_file_write("p", "ro/new", "x", 1, PORTER_FILE_ATOMIC, 0, 0, T) !=
	    PORTER_E_FILE_PERM)
		bad |= 16;
	if (porter_file_delete("p", "ro/keep", 0, 0, T) != PORTER_E_FILE_PERM)
		bad |= 32;
	porter_thread_disconnect();
	th_daemon_stop(&pd);
	th_daemon_cleanup(&pd);
	return bad;
}

START_TEST(test_permission_denied)
{
	char dir[64] = "/tmp/porter-perm-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	chmod(dir, 0755);
	char p[256];
	put_local(dir, "secret", "s");
	path_in(p, sizeof(p), dir, "secret");
	chmod(p, 0000);
	path_in(p, sizeof(p), dir, "locked");
	mkdir(p, 0755);
	put_local(dir, "locked/inner", "i");
	chmod(p, 0000);
	path_in(p, sizeof(p), dir, "ro");
	mkdir(p, 0755);
	put_local(dir, "ro/keep", "k");
	chmod(p, 0555);

	int bad;
	if (geteuid() == 0) {
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			if (prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, 0, 0, 0) ||
			    prctl(PR_CAPBSET_DROP, CAP_DAC_READ_SEARCH, 0, 0, 0) ||
			    prctl(PR_CAPBSET_DROP, CAP_FOWNER, 0, 0, 0))
				_exit(101);
			_exit(perm_checks(dir));
		}
		int st;
		waitpid(pid, &st, 0);
		bad = WIFEXITED(st) ? WEXITSTATUS(st) : 102;
	} else {
		bad = perm_checks(dir);
	}
	chmod(p, 0755);
	path_in(p, sizeof(p), dir, "locked");
	chmod(p, 0755);
	th_rm_rf(dir);
	ck_assert_msg(bad == 0, "permission checks failed: mask %d", bad);
}
END_TEST

START_TEST(test_no_space)
{
	/* /dev/full fails every write with ENOSPC, for any user. */
	porter_thread_disconnect();
	th_daemon_stop(&d);
	th_daemon_cleanup(&d);
	char roots[256];
	char small[64] = "/tmp/porter-small-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(small));
	int mounted = mount("tmpfs", small, "tmpfs", 0, "size=256k") == 0;
	snprintf(roots, sizeof(roots), "dev=/dev,small=%s", small);
	const char *args[] = {"--file-roots", roots, NULL};
	ck_assert_int_eq(th_daemon_start(&d, args), 0);

	char buf[4096] = {0};
	ck_assert_int_eq(porter_file_write("dev", "full", buf, sizeof(buf), 0, 0, 0, T),
			 PORTER_E_FILE_NOSPACE);
	if (mounted) {
		/* A real full file system: in place and atomic. The failed
		 * atomic write leaves no temp file and the old content. */
		size_t big = 512 * 1024;
		char *data = calloc(1, big);
		ck_assert_int_eq(
			porter_file_write("small", "keep", "old", 3, PORTER_FILE_ATOMIC, 0, 0, T),
			0);
		ck_assert_int_eq(
			porter_file_write("small", "f", data, big, PORTER_FILE_CREATE, 0, 0, T),
			PORTER_E_FILE_NOSPACE);
		ck_assert_int_eq(porter_file_delete("small", "f", 0, 0, T), 0);
		ck_assert_int_eq(
			porter_file_write("small", "keep", data, big, PORTER_FILE_ATOMIC, 0, 0, T),
			PORTER_E_FILE_NOSPACE);
		expect_content("small", "keep", "old", 3);
		ck_assert_uint_eq(th_dir_entries(small), 1);
		free(data);
		porter_thread_disconnect();
		th_daemon_stop(&d);
		ck_assert_int_eq(umount(small), 0);
	} else {
		fprintf(stderr,
			"test_no_space: cannot mount a tmpfs (not root?): checked /dev/full only\n");
	}
	rmdir(small);
}
END_TEST

static Suite *suite(void)
{
	const TTest *ops[] = {test_errno_mapping, test_permission_denied, test_no_space, NULL};
	const TTest *bytes[] = {test_errno_mapping, NULL};
	return files_suite("files_errors", ops, bytes);
}

TH_MAIN(suite)
