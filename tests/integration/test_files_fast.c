/*
 * The loop fast path of small file requests (issue 17.2) in per-user
 * roots: a read or stat of a cached path in the uid's own directory is
 * answered on the worker loop, told from the pool by porterd's file_fast
 * counter (porter_stats_file_fast); a missing directory, or anything in
 * its place that fsroot_dir would refuse (a symlink, a file, a directory
 * porterd does not own), goes to the pool, which makes or refuses it.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "tenant.h"

#define T 10000
#define ROUNDS 20

static th_daemon d;
static char top[64];    /* holds users/ (the per-user root) and outside/ */
static char users[96];  /* the per-user root's directory */
static char mine[128];  /* this uid's directory in it */
static char secret[64]; /* a directory outside every root, holding "secret" */

static void setup(void)
{
	strcpy(top, "/tmp/porter-fast-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
	snprintf(users, sizeof(users), "%s/users", top);
	snprintf(mine, sizeof(mine), "%s/%u", users, (unsigned)geteuid());
	snprintf(secret, sizeof(secret), "%s/outside", top);
	ck_assert_int_eq(mkdir(users, 0700), 0);
	ck_assert_int_eq(mkdir(secret, 0700), 0);
	char p[160];
	snprintf(p, sizeof(p), "%s/secret", secret);
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs("outside secret", f);
	fclose(f);
	char roots[160];
	snprintf(roots, sizeof(roots), "home=%s/%%u", users);
	const char *args[] = {"--file-roots", roots, NULL};
	ck_assert_int_eq(th_daemon_start(&d, args), 0);
}

static void teardown(void)
{
	int st = th_daemon_finish(&d);
	th_rm_rf(top);
	ck_assert_int_eq(st, 0);
}

/* File requests porterd answered on its loops so far. */
static uint64_t fast_count(void)
{
	porter_stats_snapshot *s = NULL;
	ck_assert_int_eq(porter_stats(0, T, &s), 0);
	uint64_t n = porter_stats_file_fast(s);
	porter_stats_free(s);
	return n;
}

START_TEST(per_user_reads_and_stats_on_the_loop)
{
	static uint8_t small[4096], big[256 << 10], got[256 << 10];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	memcpy(small, big, sizeof(small));
	/* The writes make the uid's directory (the pool's part). */
	ck_assert_int_eq(porter_file_write("home", "a.txt", small, sizeof(small),
					   PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE, 0, 0, T),
			 0);
	ck_assert_int_eq(porter_file_write("home", "big.bin", big, sizeof(big),
					   PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE, 0, 0, T),
			 0);
	struct stat sb;
	ck_assert_int_eq(stat(mine, &sb), 0);
	ck_assert_uint_eq(sb.st_uid, geteuid());

	/* Small reads: the bytes in the reply, from the loop. Every round
	 * after a warm one finds the path cached; the bound leaves room for
	 * a dentry the kernel dropped in between. */
	porter_bytes *b = NULL;
	ck_assert_int_eq(porter_file_read("home", "a.txt", 0, 0, 0, T, &b), 0);
	porter_bytes_free(b);
	uint64_t n0 = fast_count();
	for (int i = 0; i < ROUNDS; i++) {
		b = NULL;
		ck_assert_int_eq(porter_file_read("home", "a.txt", 0, 0, 0, T, &b), 0);
		ck_assert_uint_eq(b->len, sizeof(small));
		ck_assert(memcmp(b->data, small, sizeof(small)) == 0);
		porter_bytes_free(b);
	}
	uint64_t n1 = fast_count();
	ck_assert_msg(n1 - n0 >= ROUNDS / 2, "%llu of %d small reads on the loop",
		      (unsigned long long)(n1 - n0), ROUNDS);

	/* Stats. */
	for (int i = 0; i < ROUNDS; i++) {
		porter_file_info fi = PORTER_FILE_INFO_INIT;
		ck_assert_int_eq(porter_file_stat("home", "a.txt", 0, T, &fi), 0);
		ck_assert_uint_eq(fi.size, sizeof(small));
	}
	uint64_t n2 = fast_count();
	ck_assert_msg(n2 - n1 >= ROUNDS / 2, "%llu of %d stats on the loop",
		      (unsigned long long)(n2 - n1), ROUNDS);

	/* A larger read: its descriptor passed from the loop. */
	for (int i = 0; i < ROUNDS; i++) {
		size_t n = 0;
		memset(got, 0, sizeof(got));
		ck_assert_int_eq(
			porter_file_read_into("home", "big.bin", 0, got, sizeof(got), 0, T, &n), 0);
		ck_assert_uint_eq(n, sizeof(big));
		ck_assert(memcmp(got, big, sizeof(big)) == 0);
	}
	uint64_t n3 = fast_count();
	ck_assert_msg(n3 - n2 >= ROUNDS / 2, "%llu of %d descriptor reads on the loop",
		      (unsigned long long)(n3 - n2), ROUNDS);
}
END_TEST

START_TEST(per_user_missing_directory_goes_to_the_pool)
{
	struct stat sb;
	ck_assert_int_eq(stat(mine, &sb), -1);
	uint64_t n0 = fast_count();
	porter_bytes *b = NULL;
	ck_assert_int_eq(porter_file_read("home", "x", 0, 0, 0, T, &b), PORTER_E_FILE_NOT_FOUND);
	ck_assert_ptr_null(b);
	ck_assert_uint_eq(fast_count(), n0);
	/* The pool made the directory, porterd's own. */
	ck_assert_int_eq(stat(mine, &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	ck_assert_uint_eq(sb.st_uid, geteuid());
}
END_TEST

/* Reads and stats "secret" in the per-user root with `mine` replaced by
 * something fsroot_dir refuses: both fail, neither on the loop. */
static void expect_refused_by_the_pool(const char *what)
{
	uint64_t n0 = fast_count();
	for (int i = 0; i < 3; i++) {
		porter_bytes *b = NULL;
		int rc = porter_file_read("home", "secret", 0, 0, 0, T, &b);
		ck_assert_msg(rc < 0, "%s: read 'secret' gave %d", what, rc);
		ck_assert_ptr_null(b);
		porter_file_info fi = PORTER_FILE_INFO_INIT;
		rc = porter_file_stat("home", "secret", 0, T, &fi);
		ck_assert_msg(rc < 0, "%s: stat 'secret' gave %d", what, rc);
	}
	ck_assert_msg(fast_count() == n0, "%s: answered on the loop", what);
}

START_TEST(per_user_foreign_directory_goes_to_the_pool)
{
	/* A symlink under the uid's name, to a directory outside. */
	ck_assert_int_eq(symlink(secret, mine), 0);
	expect_refused_by_the_pool("a symlink");
	ck_assert_int_eq(unlink(mine), 0);
	/* A file under the uid's name. */
	FILE *f = fopen(mine, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	expect_refused_by_the_pool("a file");
	ck_assert_int_eq(unlink(mine), 0);
	/* A directory someone else owns (made by root for another uid; CI
	 * runs as root, which only can give a directory away). */
	if (geteuid() == 0) {
		ck_assert_int_eq(rename(secret, mine), 0);
		ck_assert_int_eq(chown(mine, TH_UID_ALICE, TH_GID_PORTER), 0);
		expect_refused_by_the_pool("another uid's directory");
	}
}
END_TEST

static Suite *suite(void)
{
	const TTest *const tests[] = {per_user_reads_and_stats_on_the_loop,
				      per_user_missing_directory_goes_to_the_pool,
				      per_user_foreign_directory_goes_to_the_pool, NULL};
	Suite *s = suite_create("files_fast");
	TCase *tc = th_tcase(s, "per_user", 60, tests);
	tcase_add_checked_fixture(tc, setup, teardown);
	return s;
}

TH_MAIN(suite)
