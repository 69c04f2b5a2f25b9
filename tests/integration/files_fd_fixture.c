/* files_fd_fixture - see files_fd_fixture.h. */
#include "files_fd_fixture.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

th_daemon d;
char root[64];

static void put_local(const char *rel, const char *content)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs(content, f);
	fclose(f);
}

static void start_with(const char *pass, const char *opt, const char *val)
{
	strcpy(root, "/tmp/porter-fd-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	char roots[128];
	snprintf(roots, sizeof(roots), "main=%s", root);
	const char *args[] = {
		"--file-roots", roots, "--file-chunk-size", "65536", pass, opt, val, NULL};
	ck_assert_msg(th_daemon_start(&d, args) == 0, "porterd did not start");
	put_local("f", "hello, descriptor");
	/* Past 64 KiB: a read of it passes the descriptor (smaller ones come
	 * as bytes, which cost less; see fspass_small_read). */
	char big[256];
	snprintf(big, sizeof(big), "%s/big", root);
	FILE *bf = fopen(big, "w");
	ck_assert_ptr_nonnull(bf);
	fputs("hello, descriptor", bf);
	for (int i = 0; i < 100000; i++)
		fputc('0' + i % 10, bf);
	fclose(bf);
	char p[256];
	snprintf(p, sizeof(p), "%s/sub", root);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/to_sub", root);
	ck_assert_int_eq(symlink("sub", p), 0);
	snprintf(p, sizeof(p), "%s/to_etc", root);
	ck_assert_int_eq(symlink("/etc", p), 0);
	snprintf(p, sizeof(p), "%s/fifo", root);
	ck_assert_int_eq(mkfifo(p, 0600), 0);
}

static void start(const char *pass)
{
	start_with(pass, NULL, NULL);
}

void setup_with(const char *opt, const char *val)
{
	start_with("--file-pass-fd=true", opt, val);
}

void setup_idle(void)
{
	start_with("--file-pass-fd=true", "--file-stream-idle", "1000");
}

void setup(void)
{
	start("--file-pass-fd=true");
}

void setup_bytes(void)
{
	start("--file-pass-fd=false");
}

void teardown(void)
{
	int st = th_daemon_finish(&d);
	th_rm_rf(root);
	ck_assert_int_eq(st, 0);
}
