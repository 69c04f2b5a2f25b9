/*
 * File operations beyond read and write (issue 17, item 3): mkdir (with
 * parents, modes masked), rename (with no-replace), copy (atomic at the
 * target), lstat; every one confined to its root like any path.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

#define T 10000

static th_daemon d;
static char root[64];
static char outside[64];

static void at(char *buf, size_t cap, const char *dir, const char *rel)
{
	snprintf(buf, cap, "%s/%s", dir, rel);
}

static void put(const char *dir, const char *rel, const char *content)
{
	char p[256];
	at(p, sizeof(p), dir, rel);
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs(content, f);
	fclose(f);
}

/* 1 when `rel` in `dir` exists (not following a final symlink). */
static int exists(const char *dir, const char *rel)
{
	char p[256];
	struct stat sb;
	at(p, sizeof(p), dir, rel);
	return lstat(p, &sb) == 0;
}

static void expect_content(const char *path, const char *want)
{
	porter_bytes *b = NULL;
	ck_assert_int_eq(porter_file_read("r", path, 0, 0, 0, T, &b), 0);
	ck_assert_uint_eq(b->len, strlen(want));
	ck_assert(memcmp(b->data, want, b->len) == 0);
	porter_bytes_free(b);
}

static void expect_message(const char *want)
{
	const char *m = porter_last_error_message();
	ck_assert_msg(strstr(m, want), "message '%s' lacks '%s'", m, want);
}

/* Nothing but .porter-free names in the root's top directory. */
static void no_temp_left(void)
{
	DIR *dir = opendir(root);
	ck_assert_ptr_nonnull(dir);
	struct dirent *e;
	while ((e = readdir(dir)) != NULL)
		ck_assert_msg(strncmp(e->d_name, ".porter-", 8) != 0, "temp file %s left",
			      e->d_name);
	closedir(dir);
}

static void setup(void)
{
	strcpy(root, "/tmp/porter-ops-XXXXXX");
	strcpy(outside, "/tmp/porter-ops-out-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	ck_assert_ptr_nonnull(mkdtemp(outside));
	put(outside, "secret", "outside secret");
	char p[256];
	at(p, sizeof(p), root, "out");
	ck_assert_int_eq(symlink(outside, p), 0); /* a directory link out */
	at(p, sizeof(p), root, "secret-link");
	char target[128];
	at(target, sizeof(target), outside, "secret");
	ck_assert_int_eq(symlink(target, p), 0); /* a file link out */
	char roots[160];
	snprintf(roots, sizeof(roots), "r=%s", root);
	const char *args[] = {"--file-roots", roots, NULL};
	ck_assert_int_eq(th_daemon_start(&d, args), 0);
}

static void teardown(void)
{
	porter_thread_disconnect();
	int st = th_daemon_stop(&d);
	th_daemon_cleanup(&d);
	th_rm_rf(root);
	th_rm_rf(outside);
	ck_assert_int_eq(st, 0);
}

START_TEST(mkdir_plain_and_parents)
{
	ck_assert_int_eq(porter_file_mkdir("r", "notes", 0, 0, 0, T), 0);
	ck_assert(exists(root, "notes"));
	ck_assert_int_eq(porter_file_mkdir("r", "notes", 0, 0, 0, T), PORTER_E_FILE_EXISTS);
	ck_assert_int_eq(porter_file_mkdir("r", "a/b/c", 0, 0, 0, T), PORTER_E_FILE_NOT_FOUND);
	expect_message("cannot create directory 'a/b/c' in root 'r': no such directory");
	ck_assert_int_eq(porter_file_mkdir("r", "a/b/c", 0, PORTER_FILE_PARENTS, 0, T), 0);
	ck_assert(exists(root, "a/b/c"));
	/* Again: nothing to do, no error. */
	ck_assert_int_eq(porter_file_mkdir("r", "a/b/c", 0, PORTER_FILE_PARENTS, 0, T), 0);
	ck_assert_int_eq(porter_file_mkdir("r", "x", 0, 0x1, 0, T), PORTER_E_INVAL);
	/* The README's first example: a file in a directory made first. */
	ck_assert_int_eq(porter_file_write("r", "notes/today.txt", "hello\n", 6, PORTER_FILE_ATOMIC,
					   0, 0, T),
			 0);
	expect_content("notes/today.txt", "hello\n");
}
END_TEST

START_TEST(mkdir_mode_masked)
{
	ck_assert_int_eq(porter_file_mkdir("r", "wide", 07777, 0, 0, T), 0);
	ck_assert_int_eq(porter_file_mkdir("r", "p/q", 07777, PORTER_FILE_PARENTS, 0, T), 0);
	const char *made[] = {"wide", "p", "p/q"};
	for (int i = 0; i < 3; i++) {
		char p[256];
		struct stat sb;
		at(p, sizeof(p), root, made[i]);
		ck_assert_int_eq(stat(p, &sb), 0);
		/* file-max-dir-mode 0770 (and porterd's umask may narrow it):
		 * never setuid, setgid, sticky or anything for others. */
		ck_assert_msg((sb.st_mode & 07777 & ~0770) == 0, "%s is %o", made[i],
			      sb.st_mode & 07777);
	}
}
END_TEST

START_TEST(mkdir_escapes)
{
	ck_assert_int_eq(porter_file_mkdir("r", "../evil", 0, 0, 0, T), PORTER_E_FILE_ESCAPE);
	expect_message("the path leaves the root");
	ck_assert_int_eq(porter_file_mkdir("r", "../evil", 0, PORTER_FILE_PARENTS, 0, T),
			 PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_mkdir("r", "out/evil", 0, 0, 0, T), PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_mkdir("r", "out/evil/deeper", 0, PORTER_FILE_PARENTS, 0, T),
			 PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_mkdir("r", "/tmp/porter-evil", 0, PORTER_FILE_PARENTS, 0, T),
			 PORTER_E_FILE_ESCAPE);
	ck_assert(!exists(outside, "evil"));
	ck_assert_int_eq(access("/tmp/porter-evil", F_OK), -1);
}
END_TEST

START_TEST(rename_within_root)
{
	put(root, "a", "A");
	put(root, "b", "B");
	ck_assert_int_eq(porter_file_mkdir("r", "dir", 0, 0, 0, T), 0);
	/* No-replace leaves both as they were. */
	ck_assert_int_eq(porter_file_rename("r", "a", "b", PORTER_FILE_NO_REPLACE, 0, T),
			 PORTER_E_FILE_EXISTS);
	expect_content("a", "A");
	expect_content("b", "B");
	ck_assert_int_eq(porter_file_rename("r", "a", "dir/a2", PORTER_FILE_NO_REPLACE, 0, T), 0);
	ck_assert(!exists(root, "a"));
	expect_content("dir/a2", "A");
	/* Replace. */
	ck_assert_int_eq(porter_file_rename("r", "dir/a2", "b", 0, 0, T), 0);
	expect_content("b", "A");
	/* A missing file is named as one (it said "no such directory"), and
	 * a missing directory on either side as one. */
	ck_assert_int_eq(porter_file_rename("r", "nope", "x", 0, 0, T), PORTER_E_FILE_NOT_FOUND);
	expect_message("cannot rename 'nope' in root 'r': no such file or directory");
	ck_assert_int_eq(porter_file_rename("r", "b", "nodir/x", 0, 0, T), PORTER_E_FILE_NOT_FOUND);
	expect_message("no such directory");
	ck_assert_int_eq(porter_file_rename("r", "nodir/b", "x", 0, 0, T), PORTER_E_FILE_NOT_FOUND);
	expect_message("no such directory");
	/* What is in the way at the target is named, not the source (a
	 * file onto a directory said "cannot rename 'b' ...: is a
	 * directory"). */
	ck_assert_int_eq(porter_file_rename("r", "b", "dir", 0, 0, T), PORTER_E_FILE_ISDIR);
	expect_message("cannot rename to 'dir' in root 'r': is a directory");
	put(root, "dir/in", "I");
	ck_assert_int_eq(porter_file_mkdir("r", "dir2", 0, 0, 0, T), 0);
	ck_assert_int_eq(porter_file_rename("r", "dir2", "dir", 0, 0, T), PORTER_E_FILE_EXISTS);
	expect_message("cannot rename to 'dir' in root 'r': directory not empty");
	expect_content("b", "A");
	expect_content("dir/in", "I");
	/* A symlink is moved itself, and stays a link out that reads fail. */
	ck_assert_int_eq(porter_file_rename("r", "secret-link", "moved-link", 0, 0, T), 0);
	porter_file_info fi = PORTER_FILE_INFO_INIT;
	ck_assert_int_eq(porter_file_lstat("r", "moved-link", 0, T, &fi), 0);
	ck_assert_int_eq(fi.type, PORTER_FILE_TYPE_SYMLINK);
	porter_bytes *bytes = NULL;
	ck_assert_int_eq(porter_file_read("r", "moved-link", 0, 0, 0, T, &bytes),
			 PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_rename("r", NULL, "x", 0, 0, T), PORTER_E_INVAL);
}
END_TEST

START_TEST(rename_escapes)
{
	put(root, "mine", "M");
	/* Out of the root, in either direction, or through a link out. */
	ck_assert_int_eq(porter_file_rename("r", "mine", "../stolen", 0, 0, T),
			 PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_rename("r", "mine", "out/stolen", 0, 0, T),
			 PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_rename("r", "mine", "/tmp/stolen", 0, 0, T),
			 PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_rename("r", "out/secret", "taken", 0, 0, T),
			 PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_rename("r", "../x", "taken", 0, 0, T), PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_rename("r", "", "taken", 0, 0, T), PORTER_E_INVAL);
	expect_content("mine", "M");
	ck_assert(!exists(outside, "stolen"));
	ck_assert(exists(outside, "secret"));
	ck_assert(!exists(root, "taken"));
}
END_TEST

START_TEST(copy_atomic)
{
	/* Larger than one copy_file_range piece's worth of small writes. */
	size_t n = 3u << 20;
	char *big = malloc(n + 1);
	ck_assert_ptr_nonnull(big);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + (i * 7) % 26);
	big[n] = '\0';
	ck_assert_int_eq(porter_file_write("r", "src", big, n, PORTER_FILE_CREATE, 0640, 0, T), 0);
	uint64_t size = 0;
	ck_assert_int_eq(porter_file_copy("r", "src", "dst", 0, 0, T, &size), 0);
	ck_assert_uint_eq(size, n);
	expect_content("dst", big);
	free(big);
	put(root, "other", "O");
	ck_assert_int_eq(porter_file_copy("r", "other", "dst", PORTER_FILE_NO_REPLACE, 0, T, NULL),
			 PORTER_E_FILE_EXISTS);
	ck_assert_int_eq(porter_file_copy("r", "other", "dst", 0, 0, T, &size), 0);
	ck_assert_uint_eq(size, 1);
	expect_content("dst", "O");
	ck_assert_int_eq(porter_file_mkdir("r", "d", 0, 0, 0, T), 0);
	ck_assert_int_eq(porter_file_copy("r", "d", "d2", 0, 0, T, NULL), PORTER_E_FILE_ISDIR);
	ck_assert_int_eq(porter_file_copy("r", "nope", "x", 0, 0, T, NULL),
			 PORTER_E_FILE_NOT_FOUND);
	ck_assert_int_eq(porter_file_copy("r", "other", "nodir/x", 0, 0, T, NULL),
			 PORTER_E_FILE_NOT_FOUND);
	expect_message("no such directory");
	no_temp_left();
}
END_TEST

/* Writes `text` at `off` of `rel` in the root (made if missing). */
static void put_at(const char *rel, const char *text, off_t off)
{
	char p[256];
	at(p, sizeof(p), root, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, text, strlen(text), off), (ssize_t)strlen(text));
	close(fd);
}

static void expect_at(const char *rel, const char *want, off_t off)
{
	char p[256], got[64] = "";
	at(p, sizeof(p), root, rel);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, got, strlen(want), off), (ssize_t)strlen(want));
	close(fd);
	ck_assert_int_eq(memcmp(got, want, strlen(want)), 0);
}

/* Bytes of disk `rel` in the root takes. */
static long long disk_bytes(const char *rel)
{
	char p[256];
	struct stat sb;
	at(p, sizeof(p), root, rel);
	ck_assert_int_eq(stat(p, &sb), 0);
	return (long long)sb.st_blocks * 512;
}

/* A sparse file's copy is as sparse: its holes are skipped, not read as
 * zeros and written (a copy of this 256 MiB file with three words of data
 * took 256 MiB of disk), and a hole at the end is the size alone. A file
 * copied onto itself stays whole. */
START_TEST(copy_keeps_holes)
{
	const off_t big = 256ll << 20;
	put_at("sparse", "head", 0);
	put_at("sparse", "middle", 100ll << 20);
	put_at("sparse", "tail", big - 4);
	uint64_t size = 0;
	ck_assert_int_eq(porter_file_copy("r", "sparse", "copy", 0, 0, T, &size), 0);
	ck_assert_uint_eq(size, (uint64_t)big);
	expect_at("copy", "head", 0);
	expect_at("copy", "middle", 100ll << 20);
	expect_at("copy", "tail", big - 4);
	expect_at("copy", "\0\0\0\0", 50ll << 20);
	ck_assert_msg(disk_bytes("copy") < (4ll << 20), "the copy takes %lld bytes of disk",
		      disk_bytes("copy"));
	/* Data, then a hole to the end. */
	put_at("trailing", "data", 0);
	char p[256];
	at(p, sizeof(p), root, "trailing");
	ck_assert_int_eq(truncate(p, 1 << 20), 0);
	ck_assert_int_eq(porter_file_copy("r", "trailing", "copy2", 0, 0, T, &size), 0);
	ck_assert_uint_eq(size, 1u << 20);
	at(p, sizeof(p), root, "copy2");
	struct stat sb;
	ck_assert_int_eq(stat(p, &sb), 0);
	ck_assert_int_eq(sb.st_size, 1 << 20);
	expect_at("copy2", "data", 0);
	/* A hole alone. */
	at(p, sizeof(p), root, "holes");
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 12345), 0);
	close(fd);
	ck_assert_int_eq(porter_file_copy("r", "holes", "copy3", 0, 0, T, &size), 0);
	ck_assert_uint_eq(size, 12345);
	/* Onto itself. */
	ck_assert_int_eq(porter_file_copy("r", "trailing", "trailing", 0, 0, T, &size), 0);
	ck_assert_uint_eq(size, 1u << 20);
	expect_at("trailing", "data", 0);
	no_temp_left();
}
END_TEST

/* A directory moved below itself, and a copy of a FIFO, are refused in
 * words that say why, not as an invalid name. */
START_TEST(refusals_say_why)
{
	ck_assert_int_eq(porter_file_mkdir("r", "dd", 0, 0, 0, T), 0);
	ck_assert_int_eq(porter_file_rename("r", "dd", "dd/sub", 0, 0, T), PORTER_E_INVAL);
	expect_message("cannot rename 'dd' in root 'r': a directory cannot be moved into itself");
	ck_assert(exists(root, "dd"));
	/* Nor is a FIFO's copy refused as a bad name. */
	char p[256];
	at(p, sizeof(p), root, "fifo");
	ck_assert_int_eq(mkfifo(p, 0600), 0);
	ck_assert_int_eq(porter_file_copy("r", "fifo", "f2", 0, 0, T, NULL), PORTER_E_INVAL);
	expect_message("cannot copy 'fifo' in root 'r': not a regular file");
	/* A file removed as a directory is not one (it said "a component of
	 * the path is not a directory"). */
	put(root, "plain", "P");
	ck_assert_int_eq(porter_file_delete("r", "plain", 1, 0, T), PORTER_E_FILE_NOTDIR);
	expect_message("cannot delete 'plain' in root 'r': not a directory");
	ck_assert(exists(root, "plain"));
	/* So is a file listed; a file on the way stays "a component". */
	porter_file_list *l = NULL;
	ck_assert_int_eq(porter_file_list_dir("r", "plain", 0, T, &l), PORTER_E_FILE_NOTDIR);
	expect_message("cannot list 'plain' in root 'r': not a directory");
	ck_assert_int_eq(porter_file_list_dir("r", "plain/x", 0, T, &l), PORTER_E_FILE_NOTDIR);
	expect_message("a component of the path is not a directory");
	ck_assert_ptr_null(l);
}
END_TEST

START_TEST(copy_escapes)
{
	put(root, "mine", "M");
	ck_assert_int_eq(porter_file_copy("r", "out/secret", "got", 0, 0, T, NULL),
			 PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_copy("r", "secret-link", "got", 0, 0, T, NULL),
			 PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_copy("r", "../x", "got", 0, 0, T, NULL), PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_copy("r", "mine", "out/planted", 0, 0, T, NULL),
			 PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_copy("r", "mine", "../planted", 0, 0, T, NULL),
			 PORTER_E_FILE_ESCAPE);
	ck_assert(!exists(root, "got"));
	ck_assert(!exists(outside, "planted"));
	no_temp_left();
}
END_TEST

START_TEST(lstat_reports_links)
{
	put(root, "f", "F");
	char p[256];
	at(p, sizeof(p), root, "link");
	ck_assert_int_eq(symlink("f", p), 0);
	porter_file_info fi = PORTER_FILE_INFO_INIT;
	ck_assert_int_eq(porter_file_lstat("r", "link", 0, T, &fi), 0);
	ck_assert_int_eq(fi.type, PORTER_FILE_TYPE_SYMLINK);
	ck_assert_int_eq(porter_file_stat("r", "link", 0, T, &fi), 0);
	ck_assert_int_eq(fi.type, PORTER_FILE_TYPE_REGULAR);
	ck_assert_uint_eq(fi.size, 1);
	/* A link out is reported as a link, and never followed. */
	ck_assert_int_eq(porter_file_lstat("r", "secret-link", 0, T, &fi), 0);
	ck_assert_int_eq(fi.type, PORTER_FILE_TYPE_SYMLINK);
	ck_assert_int_eq(porter_file_stat("r", "secret-link", 0, T, &fi), PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_lstat("r", "out/secret", 0, T, &fi), PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_lstat("r", "../x", 0, T, &fi), PORTER_E_FILE_ESCAPE);
	ck_assert_int_eq(porter_file_lstat("r", "", 0, T, &fi), 0);
	ck_assert_int_eq(fi.type, PORTER_FILE_TYPE_DIRECTORY);
}
END_TEST

/* mkdir, copy and rename as batch members, an escape among them refused. */
START_TEST(batch_members)
{
	put(root, "src", "S");
	porter_batch *b = porter_batch_new(PORTER_BATCH_ALL);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(porter_batch_add_file_mkdir(b, "r", "bd/inner", 0, PORTER_FILE_PARENTS, 0),
			 0);
	ck_assert_int_eq(porter_batch_add_file_copy(b, "r", "src", "copied", 0, 0), 1);
	ck_assert_int_eq(porter_batch_add_file_rename(b, "r", "src", "../gone", 0, 0), 2);
	ck_assert_int_eq(porter_batch_add_file_copy(b, "r", "src", "x", 0x1, 0), PORTER_E_INVAL);
	porter_batch_result *r = NULL;
	ck_assert_int_eq(porter_batch_run(b, 0, T, &r), 0);
	ck_assert_int_eq(porter_batch_result_status(r, 0), 0);
	ck_assert_int_eq(porter_batch_result_status(r, 1), 0);
	ck_assert_int_eq(porter_batch_result_status(r, 2), PORTER_E_FILE_ESCAPE);
	ck_assert_ptr_nonnull(strstr(porter_batch_result_message(r, 2), "leaves the root"));
	porter_batch_result_free(r);
	porter_batch_free(b);
	ck_assert(exists(root, "bd/inner"));
	expect_content("copied", "S");
	expect_content("src", "S");
	ck_assert(!exists(outside, "../gone"));
}
END_TEST

/* Runs porterctl with the arguments after `out` (an array); returns its
 * exit status, its output in `out` (run_err: its errors too). */
#define run(out, ...) th_ctl(NULL, 0, TH_ERR_KEEP, out, sizeof(out), __VA_ARGS__, NULL)
#define run_err(out, ...) th_ctl(NULL, 0, TH_ERR_OUT, out, sizeof(out), __VA_ARGS__, NULL)

/* The README's file example as written, then mv, cp and stat's views. */
START_TEST(porterctl_file_ops)
{
	char out[4096];
	ck_assert_int_eq(run(out, "file", "mkdir", "-p", "notes"), 0);
	ck_assert_int_eq(th_ctl("hello\n", 6, TH_ERR_KEEP, out, sizeof(out), "file", "put",
				"notes/today.txt", NULL),
			 0);
	ck_assert_int_eq(run(out, "file", "cat", "notes/today.txt"), 0);
	ck_assert_str_eq(out, "hello\n");
	ck_assert_int_eq(run(out, "file", "ls", "notes"), 0);
	ck_assert_ptr_nonnull(strstr(out, " today.txt\n"));
	ck_assert_int_eq(run(out, "file", "stat", "notes/today.txt"), 0);
	ck_assert_msg(strstr(out, "type: file\n") && strstr(out, "mode: 0"), "%s", out);
	/* ISO 8601, UTC, nanoseconds: mtime: 2026-12-06T22:51:25.123456789Z */
	const char *m = strstr(out, "mtime: ");
	ck_assert_ptr_nonnull(m);
	m += 7;
	ck_assert_msg(strlen(m) >= 31 && m[4] == '-' && m[7] == '-' && m[10] == 'T' &&
			      m[13] == ':' && m[16] == ':' && m[19] == '.' && m[29] == 'Z',
		      "mtime not ISO 8601: %s", m);
	ck_assert_int_eq(run(out, "--json", "file", "stat", "notes/today.txt"), 0);
	ck_assert_msg(strstr(out, "\"type\":\"file\"") && strstr(out, "\"mtime\":\"20"), "%s", out);
	/* A symlink is reported as one; -L follows it. */
	ck_assert_int_eq(run(out, "file", "stat", "secret-link"), 0);
	ck_assert_ptr_nonnull(strstr(out, "type: symlink\n"));
	ck_assert_int_eq(run_err(out, "file", "stat", "-L", "secret-link"), 1);
	ck_assert_ptr_nonnull(strstr(out, "PORTER_E_FILE_ESCAPE"));
	ck_assert_int_eq(run(out, "file", "cp", "notes/today.txt", "notes/copy.txt"), 0);
	ck_assert_int_eq(run_err(out, "file", "cp", "-n", "notes/today.txt", "notes/copy.txt"), 1);
	ck_assert_ptr_nonnull(strstr(out, "PORTER_E_FILE_EXISTS"));
	ck_assert_int_eq(run(out, "file", "mv", "notes/copy.txt", "notes/moved.txt"), 0);
	expect_content("notes/moved.txt", "hello\n");
	ck_assert_int_eq(run_err(out, "file", "mv", "notes/moved.txt", "../x"), 1);
	ck_assert_ptr_nonnull(strstr(out, "PORTER_E_FILE_ESCAPE"));
	ck_assert_int_eq(run(out, "--json", "file", "mkdir", "-p", "notes"), 0);
	ck_assert_ptr_nonnull(strstr(out, "{\"created\":\"notes\"}"));
	ck_assert_int_eq(run(out, "file", "rm", "notes/today.txt"), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("files_ops");
	const TTest *tests[] = {mkdir_plain_and_parents,
				mkdir_mode_masked,
				mkdir_escapes,
				rename_within_root,
				rename_escapes,
				copy_atomic,
				copy_escapes,
				lstat_reports_links,
				porterctl_file_ops,
				batch_members,
				copy_keeps_holes,
				refusals_say_why,
				NULL};
	TCase *tc = th_tcase(s, "ops", 60, tests);
	tcase_add_checked_fixture(tc, setup, teardown);
	return s;
}

TH_MAIN(suite)
