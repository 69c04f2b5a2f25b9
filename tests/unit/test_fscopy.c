/*
 * test_fscopy - the bytes of a file copy (daemon/fscopy.c): the copy is
 * the `len` bytes asked for, never more, whatever the source holds past
 * them by the time its holes are looked for.
 */
#include <check.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fscopy.h"
#include "fswork.h"
#include "thmain.h"

/* A temp file of the test's, unlinked at once: its descriptor. */
static int temp_file(void)
{
	char path[] = "/tmp/test_fscopy.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	return fd;
}

/*
 * A source that grew after its size was taken (a writer appending past a
 * hole while the copy runs): its data past `len` is not copied, and no
 * hole up to it is made either. Before, the next data range's start past
 * `len` became the copy's size: a copy of 8 KiB asked for was 1 MiB long.
 */
START_TEST(a_source_grown_past_len_gives_len_bytes)
{
	int in = temp_file(), out = temp_file();
	char a[4096], b[4096], got[8192];
	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	ck_assert_int_eq(pwrite(in, a, sizeof(a), 0), (ssize_t)sizeof(a));
	/* What the writer added after the copy took the size (8 KiB): data
	 * at 1 MiB, a hole between. */
	ck_assert_int_eq(pwrite(in, b, sizeof(b), 1 << 20), (ssize_t)sizeof(b));
	fs_job j;
	memset(&j, 0, sizeof(j));
	j.deadline_ns = UINT64_MAX;
	ck_assert_int_eq(fscopy_data(&j, in, out, sizeof(got)), 0);
	struct stat sb;
	ck_assert_int_eq(fstat(out, &sb), 0);
	ck_assert_int_eq(sb.st_size, (off_t)sizeof(got));
	ck_assert_uint_eq(j.total, sizeof(got));
	ck_assert_int_eq(pread(out, got, sizeof(got), 0), (ssize_t)sizeof(got));
	ck_assert(!memcmp(got, a, sizeof(a)));
	for (size_t i = sizeof(a); i < sizeof(got); i++)
		ck_assert_int_eq(got[i], 0);
	close(in);
	close(out);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("fscopy");
	const TTest *const tests[] = {a_source_grown_past_len_gives_len_bytes, NULL};
	th_tcase(s, "fscopy", 10, tests);
	return s;
}

TH_MAIN(suite)
