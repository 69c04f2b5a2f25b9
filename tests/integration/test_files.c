/*
 * Integration tests of file operations through porterd: every operation,
 * errno mapping, confinement (a table of escape attempts under both
 * resolution methods), concurrent atomic writers, streams and their
 * clean-up, and the default root; reads and writes both by descriptor
 * (the default) and as bytes over the socket (file-pass-fd false).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <linux/capability.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

#define T 10000

static th_daemon d;
static char root[64];    /* the "main" root */
static char other[64];   /* the "other" root */
static char outside[64]; /* a directory outside every root */
/* 1: porterd runs with file-pass-fd false, so reads and writes go as
 * bytes over the socket; 0: by descriptor (the default). The suite runs
 * both ways, confinement included. */
static int bytes_mode;
/* 1: porterd runs with file-loop-fast-path false, so that every request
 * goes through the thread pool (the tests of its queue). */
static int pool_only;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

static void rm_rf(const char *p)
{
	nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Empties `dir` but keeps it: the daemon holds the root open. */
static void empty_dir(const char *dir)
{
	DIR *dd = opendir(dir);
	ck_assert_ptr_nonnull(dd);
	struct dirent *e;
	char p[512];
	while ((e = readdir(dd))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		rm_rf(p);
	}
	closedir(dd);
}

static void path_in(char *buf, size_t cap, const char *dir, const char *rel)
{
	snprintf(buf, cap, "%s/%s", dir, rel);
}

static void put_local(const char *dir, const char *rel, const char *content)
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

static void start_with(const char *resolve)
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

static void setup(void)
{
	make_dirs();
	start_with("auto");
}

static void setup_bytes(void)
{
	bytes_mode = 1;
	setup();
}

static void teardown(void)
{
	porter_thread_disconnect();
	int st = d.pid ? th_daemon_stop(&d) : 0;
	if (st != 0)
		th_daemon_dump_log(&d);
	th_daemon_cleanup(&d);
	rm_rf(root);
	rm_rf(other);
	rm_rf(outside);
	ck_assert_int_eq(st, 0);
}

/* Reads `path` through porterd and compares it with `want`/`n`. */
static void expect_content(const char *rt, const char *path, const void *want, size_t n)
{
	porter_bytes *b = NULL;
	int rc = porter_file_read(rt, path, 0, 0, 0, T, &b);
	ck_assert_msg(rc == 0, "read %s: %s", path, porter_last_error_message());
	ck_assert_uint_eq(b->len, n);
	ck_assert(n == 0 || memcmp(b->data, want, n) == 0);
	porter_bytes_free(b);
}

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

	porter_file_info fi;
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
	porter_file_info fi;
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
	porter_file_info fi;
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
	rm_rf(dir);
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
	porter_file_info fi;
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
	porter_file_info fi;
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

/* ------------------------------------------------- concurrency, streams */

#define WRITERS 6
#define ROUNDS 15
#define WSIZE (300 * 1024)

static void *writer_main(void *arg)
{
	long id = (long)arg;
	char *buf = malloc(WSIZE);
	memset(buf, 'A' + (int)id, WSIZE);
	long fails = 0;
	for (int i = 0; i < ROUNDS; i++)
		if (porter_file_write("main", "shared", buf, WSIZE, PORTER_FILE_ATOMIC, 0, 0, T) !=
		    0)
			fails++;
	free(buf);
	porter_thread_disconnect();
	return (void *)fails;
}

static atomic_int readers_stop;

static void *reader_main(void *arg)
{
	(void)arg;
	long bad = 0;
	while (!atomic_load(&readers_stop)) {
		porter_bytes *b = NULL;
		if (porter_file_read("main", "shared", 0, 0, 0, T, &b) != 0) {
			bad++;
			continue;
		}
		if (b->len != WSIZE)
			bad++;
		else
			for (size_t i = 1; i < b->len; i++)
				if (b->data[i] != b->data[0]) {
					bad++;
					break;
				}
		porter_bytes_free(b);
	}
	porter_thread_disconnect();
	return (void *)bad;
}

START_TEST(test_concurrent_atomic_writers)
{
	char *init = malloc(WSIZE);
	memset(init, 'z', WSIZE);
	ck_assert_int_eq(
		porter_file_write("main", "shared", init, WSIZE, PORTER_FILE_ATOMIC, 0, 0, T), 0);
	free(init);
	pthread_t w[WRITERS], r;
	atomic_store(&readers_stop, 0);
	pthread_create(&r, NULL, reader_main, NULL);
	for (long i = 0; i < WRITERS; i++)
		pthread_create(&w[i], NULL, writer_main, (void *)i);
	for (int i = 0; i < WRITERS; i++) {
		void *fails;
		pthread_join(w[i], &fails);
		ck_assert_int_eq((long)fails, 0);
	}
	atomic_store(&readers_stop, 1);
	void *bad;
	pthread_join(r, &bad);
	ck_assert_msg((long)bad == 0, "a reader saw %ld torn or short versions", (long)bad);

	porter_bytes *b = NULL;
	ck_assert_int_eq(porter_file_read("main", "shared", 0, 0, 0, T, &b), 0);
	ck_assert_uint_eq(b->len, WSIZE);
	ck_assert(b->data[0] >= 'A' && b->data[0] < 'A' + WRITERS);
	for (size_t i = 1; i < b->len; i++)
		ck_assert(b->data[i] == b->data[0]);
	porter_bytes_free(b);
	ck_assert_uint_eq(th_dir_entries(root), 1); /* no temp files left */
}
END_TEST

START_TEST(test_streams)
{
	/* 1 MiB + 3 bytes through a 64 KiB chunk: many pulls. */
	size_t n = (1u << 20) + 3;
	uint8_t *data = malloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 11));
	porter_file_writer *wr = NULL;
	ck_assert_int_eq(porter_file_writer_open("main", "s", PORTER_FILE_ATOMIC, 0, 0, T, &wr), 0);
	for (size_t off = 0; off < n; off += 100000)
		ck_assert_int_eq(porter_file_writer_write(
					 wr, data + off, n - off < 100000 ? n - off : 100000, 0, T),
				 0);
	/* Nothing at the target until the commit. */
	porter_file_info fi;
	ck_assert_int_eq(porter_file_stat("main", "s", 0, T, &fi), PORTER_E_FILE_NOT_FOUND);
	ck_assert_int_eq(porter_file_writer_commit(wr, 0, T), 0);
	porter_file_writer_close(wr, 1000);
	expect_content("main", "s", data, n);

	porter_file_reader *rd = NULL;
	ck_assert_int_eq(porter_file_reader_open("main", "s", 10, 0, 0, 0, T, &rd), 0);
	ck_assert_uint_eq(porter_file_reader_size(rd), n);
	size_t got = 0, chunks = 0;
	const void *p;
	size_t len;
	int rc;
	/* Chunks of the daemon's file-chunk-size, also when the reader
	 * reads them from a passed descriptor itself. */
	while ((rc = porter_file_reader_read(rd, 0, T, &p, &len)) == 1) {
		ck_assert(len <= 65536);
		ck_assert(memcmp(p, data + 10 + got, len) == 0);
		got += len;
		chunks++;
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(got, n - 10);
	ck_assert_uint_ge(chunks, 16);
	ck_assert_int_eq(porter_file_reader_read(rd, 0, T, &p, &len), 0);
	porter_file_reader_close(rd, 1000);

	/* A reader closed early, then the same file read again. */
	ck_assert_int_eq(porter_file_reader_open("main", "s", 0, 0, 0, 0, T, &rd), 0);
	ck_assert_int_eq(porter_file_reader_read(rd, 0, T, &p, &len), 1);
	porter_file_reader_close(rd, 1000);
	expect_content("main", "s", data, n);
	/* A large whole-file write goes in chunks (over 4 MiB). */
	size_t big = 5u << 20;
	uint8_t *bd = malloc(big);
	for (size_t i = 0; i < big; i++)
		bd[i] = (uint8_t)(i ^ (i >> 9));
	ck_assert_int_eq(porter_file_write("main", "big", bd, big, PORTER_FILE_ATOMIC, 0, 0, T), 0);
	expect_content("main", "big", bd, big);
	free(bd);
	free(data);
}
END_TEST

/* Waits until the daemon has seen every other connection of this process
 * close: a closed socket is noticed asynchronously, on its own worker. */
static void wait_only_one_conn(void)
{
	for (int i = 0; i < 200; i++) {
		porter_stats_snapshot *s = NULL;
		ck_assert_int_eq(porter_stats(0, T, &s), 0);
		uint64_t n = 0;
		for (size_t k = 0; k < porter_stats_workers(s); k++) {
			porter_worker_stats w;
			porter_stats_worker(s, k, &w);
			n += w.connections;
		}
		porter_stats_free(s);
		if (n == 1)
			return;
		usleep(10000);
	}
	ck_abort_msg("old connections were never closed");
}

typedef struct cross {
	porter_file_reader *rd;
	int rc;
} cross;

static void *pull_other_thread(void *arg)
{
	cross *c = arg;
	const void *p;
	size_t len;
	c->rc = porter_file_reader_read(c->rd, 0, T, &p, &len); /* the first, held */
	if (c->rc == 1)
		c->rc = porter_file_reader_read(c->rd, 0, T, &p, &len); /* a pull */
	porter_thread_disconnect();
	return NULL;
}

START_TEST(test_stream_cleanup_and_migration)
{
	char buf[200000];
	memset(buf, 'q', sizeof(buf));
	/* An atomic write abandoned by closing its connection leaves no
	 * trace: no target, no temp file. */
	porter_file_writer *wr = NULL;
	ck_assert_int_eq(
		porter_file_writer_open("main", "abandoned", PORTER_FILE_ATOMIC, 0, 0, T, &wr), 0);
	ck_assert_int_eq(porter_file_writer_write(wr, buf, sizeof(buf), 0, T), 0);
	porter_thread_disconnect();
	wait_only_one_conn();
	if (bytes_mode) {
		ck_assert_int_eq(porter_file_writer_write(wr, buf, 10, 0, T), PORTER_E_NOT_FOUND);
		ck_assert_int_eq(porter_file_writer_commit(wr, 0, T), PORTER_E_INVAL);
	} else {
		/* By descriptor the client still writes its (nameless) temp
		 * file, but porterd dropped the stream: nothing to commit. */
		ck_assert_int_eq(porter_file_writer_write(wr, buf, 10, 0, T), 0);
		ck_assert_int_eq(porter_file_writer_commit(wr, 0, T), PORTER_E_NOT_FOUND);
	}
	porter_file_writer_close(wr, 1000);
	ck_assert_uint_eq(th_dir_entries(root), 0);
	ck_assert_int_eq(th_fd_count(d.pid) >= 0, 1);

	/* Abandoned writers and readers do not leak descriptors. */
	ck_assert_int_eq(
		porter_file_write("main", "r", buf, sizeof(buf), PORTER_FILE_ATOMIC, 0, 0, T), 0);
	int fds0 = th_fd_count(d.pid);
	porter_file_reader *rds[20];
	porter_file_writer *wrs[20];
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(porter_file_reader_open("main", "r", 0, 0, 0, 0, T, &rds[i]), 0);
		ck_assert_int_eq(
			porter_file_writer_open("main", "w", PORTER_FILE_ATOMIC, 0, 0, T, &wrs[i]),
			0);
		porter_thread_disconnect(); /* the streams' connection goes */
	}
	/* Not closed through the library yet: the daemon cleans up by itself. */
	wait_only_one_conn();
	ck_assert_int_le(th_fd_count(d.pid), fds0 + 1);
	for (int i = 0; i < 20; i++) {
		porter_file_reader_close(rds[i], 1000);
		porter_file_writer_close(wrs[i], 1000);
	}
	ck_assert_uint_eq(th_dir_entries(root), 1);

	/* A connection may hold only so many streams (file-max-streams, 64). */
	porter_file_writer *ws[65];
	for (int i = 0; i < 64; i++)
		ck_assert_int_eq(
			porter_file_writer_open("main", "w", PORTER_FILE_ATOMIC, 0, 0, T, &ws[i]),
			0);
	ck_assert_int_eq(porter_file_writer_open("main", "w", PORTER_FILE_ATOMIC, 0, 0, T, &ws[64]),
			 PORTER_E_BUSY);
	for (int i = 0; i < 64; i++)
		porter_file_writer_close(ws[i], 1000);
	ck_assert_int_eq(porter_file_writer_open("main", "w", PORTER_FILE_ATOMIC, 0, 0, T, &ws[0]),
			 0);
	porter_file_writer_close(ws[0], 1000);

	/* A stream opened on one thread continues on another (isolates
	 * migrate between threads), while the opener's connection lives. */
	cross c = {0};
	ck_assert_int_eq(porter_file_reader_open("main", "r", 0, 0, 0, 0, T, &c.rd), 0);
	pthread_t th;
	pthread_create(&th, NULL, pull_other_thread, &c);
	pthread_join(th, NULL);
	ck_assert_int_eq(c.rc, 1);
	porter_file_reader_close(c.rd, 1000);
}
END_TEST

/* Keeps the daemon's only pool thread busy with directory listings. */
static atomic_int lister_stop;

static void *lister_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&lister_stop)) {
		porter_file_list *l = NULL;
		if (porter_file_list_dir("main", "many", 0, 30000, &l) == 0)
			porter_file_list_free(l);
	}
	porter_thread_disconnect();
	return NULL;
}

typedef struct queued_call {
	_Atomic uint64_t id;
	int rc;
	char msg[256];
	long long took_ms;
} queued_call;

static void *queued_stat_main(void *arg)
{
	queued_call *q = arg;
	porter_file_info fi;
	atomic_store(&q->id, porter_call_id_new());
	long long t0 = th_now_ms();
	q->rc = porter_file_stat("main", "many/f0", atomic_load(&q->id), 5000, &fi);
	q->took_ms = th_now_ms() - t0;
	snprintf(q->msg, sizeof(q->msg), "%s", porter_last_error_message());
	porter_thread_disconnect();
	return NULL;
}

/*
 * Deadlines and Cancel reach requests waiting for a pool thread: with one
 * pool thread kept busy, a queued request is taken out of the queue and
 * answered by the daemon at its deadline, or at once when cancelled.
 */
START_TEST(test_deadline_and_cancel_while_queued)
{
	porter_thread_disconnect();
	th_daemon_stop(&d);
	th_daemon_cleanup(&d);
	setenv("UV_THREADPOOL_SIZE", "1", 1);
	pool_only = 1; /* a cached stat would not wait for the pool at all */
	start_with("auto");
	unsetenv("UV_THREADPOOL_SIZE");
	char p[256];
	path_in(p, sizeof(p), root, "many");
	ck_assert_int_eq(mkdir(p, 0755), 0);
	for (int i = 0; i < 20000; i++) {
		char name[32];
		snprintf(name, sizeof(name), "many/f%d", i);
		put_local(root, name, "x");
	}
	enum { LISTERS = 32 };
	pthread_t ls[LISTERS];
	atomic_store(&lister_stop, 0);
	for (int i = 0; i < LISTERS; i++)
		pthread_create(&ls[i], NULL, lister_main, NULL);
	usleep(200000); /* every lister has a listing queued */

	/* A deadline that passes while queued: the daemon's own reply. The
	 * client waits 30 ms longer than the daemon's deadline; on a loaded
	 * machine (ASan, two cores) the daemon's reply can miss that margin,
	 * so a client-side timeout is tried again, and one daemon reply out
	 * of five attempts is what must hold. */
	porter_file_info fi;
	int rc = 0, by_daemon = 0;
	for (int attempt = 0; attempt < 5 && !by_daemon; attempt++) {
		rc = porter_file_stat("main", "many/f1", 0, 300, &fi);
		ck_assert_int_eq(rc, PORTER_E_TIMEOUT);
		by_daemon = strstr(porter_last_error_message(), "pool thread") != NULL;
	}
	ck_assert_msg(by_daemon, "not answered by the daemon: %s", porter_last_error_message());

	/* A Cancel of a queued request: answered at once. */
	queued_call q = {0};
	pthread_t th;
	pthread_create(&th, NULL, queued_stat_main, &q);
	while (atomic_load(&q.id) == 0)
		usleep(1000);
	usleep(200000); /* let it reach the daemon's queue */
	/* On a loaded machine the Cancel may still arrive first: then it is
	 * remembered (NOT_FOUND now) and the request refused on arrival. */
	rc = porter_cancel(atomic_load(&q.id), 2000);
	ck_assert_msg(rc == 0 || rc == PORTER_E_NOT_FOUND, "cancel: %s", porter_error_name(rc));
	pthread_join(th, NULL);
	ck_assert_msg(q.rc == PORTER_E_CANCELLED, "queued stat: %d %s", q.rc, q.msg);
	ck_assert_int_lt(q.took_ms, 2000);

	atomic_store(&lister_stop, 1);
	for (int i = 0; i < LISTERS; i++)
		pthread_join(ls[i], NULL);
	/* The pool is free again: the same request now succeeds. */
	ck_assert_int_eq(porter_file_stat("main", "many/f1", 0, T, &fi), 0);
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
	char cmd[512], out[4096];
	const char *ctl = PORTERCTL_PATH;
	snprintf(cmd, sizeof(cmd), "printf 'a\\000b' | %s file put -r main x", ctl);
	ck_assert_int_eq(th_run_cmd(cmd, out, sizeof(out)), 0);
	snprintf(cmd, sizeof(cmd), "%s file cat -r main x | od -An -c | tr -d ' \n'", ctl);
	ck_assert_int_eq(th_run_cmd(cmd, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "a\\0b");
	snprintf(cmd, sizeof(cmd), "%s --json file stat x", ctl);
	ck_assert_int_eq(th_run_cmd(cmd, out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(out, "\"size\":3"));
	ck_assert_ptr_nonnull(strstr(out, "\"type\":\"file\""));
	snprintf(cmd, sizeof(cmd), "%s file ls", ctl);
	ck_assert_int_eq(th_run_cmd(cmd, out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(out, " x\n"));
	snprintf(cmd, sizeof(cmd), "echo more | %s file put -a x", ctl);
	ck_assert_int_eq(th_run_cmd(cmd, out, sizeof(out)), 0);
	expect_content("main", "x", "a\0bmore\n", 8);
	snprintf(cmd, sizeof(cmd), "echo y | %s file put -x x 2>&1", ctl);
	ck_assert_int_eq(th_run_cmd(cmd, out, sizeof(out)), 1);
	ck_assert_ptr_nonnull(strstr(out, "PORTER_E_FILE_EXISTS"));
	snprintf(cmd, sizeof(cmd), "%s file cat ../etc/passwd 2>&1", ctl);
	ck_assert_int_eq(th_run_cmd(cmd, out, sizeof(out)), 1);
	ck_assert_ptr_nonnull(strstr(out, "PORTER_E_FILE_ESCAPE"));
	snprintf(cmd, sizeof(cmd), "%s file rm x", ctl);
	ck_assert_int_eq(th_run_cmd(cmd, out, sizeof(out)), 0);
	snprintf(cmd, sizeof(cmd), "%s file cat x 2>&1", ctl);
	ck_assert_int_eq(th_run_cmd(cmd, out, sizeof(out)), 1);
	ck_assert_ptr_nonnull(strstr(out, "PORTER_E_FILE_NOT_FOUND"));
	snprintf(cmd, sizeof(cmd), "%s file frob 2>/dev/null", ctl);
	ck_assert_int_eq(th_run_cmd(cmd, out, sizeof(out)), 2);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("files");
	TCase *tc = tcase_create("ops");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 150);
	tcase_add_test(tc, test_write_read_binary);
	tcase_add_test(tc, test_write_modes);
	tcase_add_test(tc, test_stat_list_delete);
	tcase_add_test(tc, test_errno_mapping);
	tcase_add_test(tc, test_permission_denied);
	tcase_add_test(tc, test_no_space);
	tcase_add_test(tc, test_escape_table_openat2);
	tcase_add_test(tc, test_escape_table_walk);
	tcase_add_test(tc, test_magic_link_root);
	tcase_add_test(tc, test_concurrent_atomic_writers);
	tcase_add_test(tc, test_streams);
	tcase_add_test(tc, test_stream_cleanup_and_migration);
	tcase_add_test(tc, test_deadline_and_cancel_while_queued);
	tcase_add_test(tc, test_default_root);
	tcase_add_test(tc, test_porterctl_file);
	suite_add_tcase(s, tc);

	/* The same reads, writes and confinement with every byte over the
	 * socket (file-pass-fd false: batch members and the fallback). */
	tc = tcase_create("bytes");
	tcase_add_checked_fixture(tc, setup_bytes, teardown);
	tcase_set_timeout(tc, 150);
	tcase_add_test(tc, test_write_read_binary);
	tcase_add_test(tc, test_write_modes);
	tcase_add_test(tc, test_errno_mapping);
	tcase_add_test(tc, test_escape_table_openat2);
	tcase_add_test(tc, test_escape_table_walk);
	tcase_add_test(tc, test_magic_link_root);
	tcase_add_test(tc, test_streams);
	tcase_add_test(tc, test_stream_cleanup_and_migration);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
