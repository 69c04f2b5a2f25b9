/* Unit tests of the log writer (daemon/log.c): nothing a message carries
 * can end its line early, forge another, or reach a terminal as an escape
 * sequence. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "thmain.h"

static const char *esc(const char *in, size_t n)
{
	static char out[512];
	log_escape(in, n, out, sizeof(out));
	return out;
}

START_TEST(escape_controls_and_backslash)
{
	ck_assert_str_eq(esc("plain text", 10), "plain text");
	ck_assert_str_eq(esc("a\nb", 3), "a\\x0ab");
	ck_assert_str_eq(esc("a\r\n2026-01-01T00:00:00Z porterd error: x", 10),
			 "a\\x0d\\x0a2026-01");
	ck_assert_str_eq(esc("\x1b[31mred", 8), "\\x1b[31mred");
	ck_assert_str_eq(esc("tab\there", 8), "tab\\x09here");
	ck_assert_str_eq(esc("del\x7f", 4), "del\\x7f");
	/* A literal "\x0a" typed by a client stays distinguishable. */
	ck_assert_str_eq(esc("\\x0a", 4), "\\\\x0a");
	/* NUL bytes inside the given length are escaped, not the end. */
	ck_assert_str_eq(esc("a\0b", 3), "a\\x00b");
}
END_TEST

START_TEST(escape_keeps_utf8_refuses_malformed)
{
	ck_assert_str_eq(esc("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14),
			 "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	/* Truncated, overlong, surrogate, beyond U+10FFFF, stray bytes. */
	ck_assert_str_eq(esc("x\xc3", 2), "x\\xc3");
	ck_assert_str_eq(esc("\xc0\x8a", 2), "\\xc0\\x8a");
	ck_assert_str_eq(esc("\xe0\x80\x8a", 3), "\\xe0\\x80\\x8a");
	ck_assert_str_eq(esc("\xed\xa0\x80", 3), "\\xed\\xa0\\x80");
	ck_assert_str_eq(esc("\xf4\x90\x80\x80", 4), "\\xf4\\x90\\x80\\x80");
	ck_assert_str_eq(esc("\x80\xff", 2), "\\x80\\xff");
	/* C1 controls: U+009B is CSI on some terminals, U+0085 is NEL. */
	ck_assert_str_eq(esc("\xc2\x9b"
			     "31m",
			     5),
			 "\\xc2\\x9b31m");
	ck_assert_str_eq(esc("\xc2\x85", 2), "\\xc2\\x85");
	ck_assert_str_eq(esc("\xc2\xa0", 2), "\xc2\xa0");
}
END_TEST

START_TEST(escape_never_splits_or_overflows)
{
	char out[6];
	/* "ab" then an escape of 4 would need 7 bytes with the NUL. */
	ck_assert_uint_eq(log_escape("ab\n", 3, out, sizeof(out)), 2);
	ck_assert_str_eq(out, "ab");
	ck_assert_uint_eq(log_escape("abc\xe2\x82\xac", 6, out, sizeof(out)), 3);
	ck_assert_str_eq(out, "abc");
	ck_assert_uint_eq(log_escape("abcdefgh", 8, out, sizeof(out)), 5);
	ck_assert_str_eq(out, "abcde");
	ck_assert_uint_eq(log_escape("x", 1, out, 1), 0);
	ck_assert_str_eq(out, "");
}
END_TEST

/* Runs log_info("%s", text) with stderr sent to a file; returns what was
 * written (static storage). */
static const char *logged(const char *text)
{
	static char buf[8192];
	char path[] = "/tmp/porter-test-log-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	int saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	log_info("conn 1: hello from (%s)", text);
	dup2(saved, STDERR_FILENO);
	close(saved);
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	return buf;
}

START_TEST(a_message_is_one_line)
{
	const char *forged = "x\n2026-12-06T21:00:00.000Z porterd error: forged\r\x1b[2K";
	const char *out = logged(forged);
	/* Exactly one newline, at the end. */
	ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
	ck_assert_ptr_null(strchr(out, '\r'));
	ck_assert_ptr_null(strchr(out, '\x1b'));
	ck_assert_ptr_nonnull(strstr(out, "(x\\x0a2026-12-06T21:00:00.000Z porterd error: forged"
					  "\\x0d\\x1b[2K)\n"));

	/* A message longer than the line is cut, still one line. */
	char big[5000];
	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	out = logged(big);
	ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
	ck_assert_uint_le(strlen(out), 2048);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {escape_controls_and_backslash, escape_keeps_utf8_refuses_malformed,
				escape_never_splits_or_overflows, a_message_is_one_line, NULL};
	return th_suite("log", "escape", 0, tests);
}

TH_MAIN(suite)
