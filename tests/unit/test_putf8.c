/*
 * Unit tests of client/putf8.c: the text libporter hands out stays valid
 * UTF-8. A thread's last error message is cut at 511 bytes; a message
 * naming a long non-ASCII name (a root 'é' x 300: "no file root named
 * 'ééé...") was cut inside an é, and Dart's toDartString() (or Python's
 * decode()) then threw instead of reporting the error. Well-formed text
 * passes untouched, a character the end cuts is dropped, and a byte of no
 * character reads \xNN (a '?' made the names \xff\xfe and \xfe\xff
 * alike), cut at the buffer's end at a whole character or escape.
 */
#include <check.h>
#include <string.h>

#include "porter.h"
#include "putf8.h"
#include "thmain.h"

/* libporter's internal setter of the thread's last error (pconn.h, whose
 * other declarations need the generated protobuf headers). */
int pconn_set_error(int code, const char *fmt, ...);

/* putf8_tidy of `in`, compared with `want`. */
static void tidy_is(const char *in, const char *want)
{
	char buf[64];
	ck_assert_uint_lt(strlen(in), sizeof(buf));
	strcpy(buf, in);
	putf8_tidy(buf, sizeof(buf));
	ck_assert_msg(strcmp(buf, want) == 0, "tidy(\"%s\") gave \"%s\", want \"%s\"", in, buf,
		      want);
}

START_TEST(well_formed_text_is_untouched)
{
	tidy_is("", "");
	tidy_is("plain ascii", "plain ascii");
	tidy_is("caf\xc3\xa9", "caf\xc3\xa9");             /* é */
	tidy_is("\xe2\x82\xac 5", "\xe2\x82\xac 5");       /* € */
	tidy_is("\xf0\x9f\x98\x80!", "\xf0\x9f\x98\x80!"); /* U+1F600 */
	tidy_is("\xed\x9f\xbf", "\xed\x9f\xbf");           /* U+D7FF */
	tidy_is("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf");   /* U+10FFFF */
	tidy_is("\xe0\xa0\x80 \xf0\x90\x80\x80", "\xe0\xa0\x80 \xf0\x90\x80\x80");
}
END_TEST

START_TEST(a_character_the_end_cuts_is_dropped)
{
	tidy_is("caf\xc3", "caf");
	tidy_is("5 \xe2\x82", "5 ");
	tidy_is("5 \xe2", "5 ");
	tidy_is("smile \xf0\x9f\x98", "smile ");
	tidy_is("\xf0\x9f", "");
}
END_TEST

START_TEST(bytes_of_no_character_read_as_escapes)
{
	tidy_is("a\x80z", "a\\x80z");                                  /* stray continuation */
	tidy_is("\xc0\xaf", "\\xc0\\xaf");                             /* overlong '/' */
	tidy_is("\xe0\x80\xaf", "\\xe0\\x80\\xaf");                    /* overlong, 3 bytes */
	tidy_is("\xed\xa0\x80", "\\xed\\xa0\\x80");                    /* a surrogate */
	tidy_is("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80");           /* past U+10FFFF */
	tidy_is("\xf5\xff", "\\xf5\\xff");                             /* never in UTF-8 */
	tidy_is("caf\xe9 au lait", "caf\\xe9 au lait");                /* Latin-1 é */
	tidy_is("\xc3(", "\\xc3(");                                    /* a lead without its tail */
	tidy_is("'\xff\xfe' '\xfe\xff'", "'\\xff\\xfe' '\\xfe\\xff'"); /* told apart */
	/* Around and between whole characters, and the end still cut. */
	tidy_is("\xc3\xa9\xa9\xe2\x82\xac\x80", "\xc3\xa9\\xa9\xe2\x82\xac\\x80");
	tidy_is("\x80\xf0\x9f\x98\x80", "\\x80\xf0\x9f\x98\x80");
	tidy_is("\xff\xc3", "\\xff");
}
END_TEST

START_TEST(escapes_are_cut_whole_at_the_buffers_end)
{
	char buf[8];
	strcpy(buf, "ab\xff\xfe"); /* "ab\xff\xfe" needs 10 + 1 */
	putf8_tidy(buf, sizeof(buf));
	ck_assert_str_eq(buf, "ab\\xff");
	strcpy(buf, "a\xc3\xa9\xff"); /* "aé\xff" needs 7 + 1: fits */
	putf8_tidy(buf, sizeof(buf));
	ck_assert_str_eq(buf, "a\xc3\xa9\\xff");
	strcpy(buf, "\xff\xe2\x82\xac"); /* "\xff€" needs 7 + 1 */
	putf8_tidy(buf, sizeof(buf));
	ck_assert_str_eq(buf, "\\xff\xe2\x82\xac");
	strcpy(buf, "\xff\xff"); /* 8 + 1: the second escape does not fit */
	putf8_tidy(buf, sizeof(buf));
	ck_assert_str_eq(buf, "\\xff");
}
END_TEST

START_TEST(a_message_cut_inside_a_character_stays_utf8)
{
	/* "root 'ééé...'" of 605 bytes: the 512-byte buffer keeps 511, the
	 * last of them the first half of an é. */
	char name[601];
	for (int i = 0; i < 600; i += 2) {
		name[i] = '\xc3';
		name[i + 1] = '\xa9';
	}
	name[600] = '\0';
	ck_assert_int_eq(pconn_set_error(PORTER_E_FILE_ROOT, "root '%s'", name),
			 PORTER_E_FILE_ROOT);
	ck_assert_int_eq(porter_last_error(), PORTER_E_FILE_ROOT);
	const char *m = porter_last_error_message();
	size_t n = strlen(m);
	ck_assert_uint_eq(n, 510); /* 6 bytes of "root '", then 252 whole é */
	ck_assert(strncmp(m, "root '", 6) == 0);
	ck_assert(memcmp(m + n - 2, "\xc3\xa9", 2) == 0);

	/* A byte of no character in the middle (a Latin-1 name) reads
	 * \xNN. */
	pconn_set_error(PORTER_E_FILE_ROOT, "no file root named '%s'", "caf\xe9s");
	ck_assert_str_eq(porter_last_error_message(), "no file root named 'caf\\xe9s'");

	/* Escapes grow the message: still cut within the buffer, whole. */
	char bad[600];
	memset(bad, 0xff, sizeof(bad) - 1);
	bad[sizeof(bad) - 1] = '\0';
	pconn_set_error(PORTER_E_FILE_ROOT, "root '%s'", bad);
	m = porter_last_error_message();
	n = strlen(m);
	ck_assert_uint_eq(n, 6 + 4 * 126); /* 126 escapes fit in 511 after "root '" */
	ck_assert(strcmp(m + n - 4, "\\xff") == 0);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {well_formed_text_is_untouched,
				a_character_the_end_cuts_is_dropped,
				bytes_of_no_character_read_as_escapes,
				escapes_are_cut_whole_at_the_buffers_end,
				a_message_cut_inside_a_character_stays_utf8,
				NULL};
	return th_suite("putf8", "putf8", 0, tests);
}

TH_MAIN(suite)
