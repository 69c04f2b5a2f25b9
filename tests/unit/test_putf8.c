/*
 * Unit tests of client/putf8.c: the text libporter hands out stays valid
 * UTF-8. A thread's last error message is cut at 511 bytes; a message
 * naming a long non-ASCII name (a root 'é' x 300: "no file root named
 * 'ééé...") was cut inside an é, and Dart's toDartString() (or Python's
 * decode()) then threw instead of reporting the error. Well-formed text
 * passes untouched, a character the end cuts is dropped, and a byte of no
 * character reads '?'.
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
	putf8_tidy(buf);
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

START_TEST(bytes_of_no_character_read_as_question_marks)
{
	tidy_is("a\x80z", "a?z");                   /* stray continuation */
	tidy_is("\xc0\xaf", "??");                  /* overlong '/' */
	tidy_is("\xe0\x80\xaf", "???");             /* overlong, 3 bytes */
	tidy_is("\xed\xa0\x80", "???");             /* a surrogate */
	tidy_is("\xf4\x90\x80\x80", "????");        /* past U+10FFFF */
	tidy_is("\xf5\xff", "??");                  /* never in UTF-8 */
	tidy_is("caf\xe9 au lait", "caf? au lait"); /* Latin-1 é */
	tidy_is("\xc3(", "?(");                     /* a lead without its tail */
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

	/* A byte of no character in the middle (a Latin-1 name) reads '?'. */
	pconn_set_error(PORTER_E_FILE_ROOT, "no file root named '%s'", "caf\xe9s");
	ck_assert_str_eq(porter_last_error_message(), "no file root named 'caf?s'");
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {well_formed_text_is_untouched, a_character_the_end_cuts_is_dropped,
				bytes_of_no_character_read_as_question_marks,
				a_message_cut_inside_a_character_stays_utf8, NULL};
	return th_suite("putf8", "putf8", 0, tests);
}

TH_MAIN(suite)
