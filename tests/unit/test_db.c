/* Unit tests of the db module's pure parts: conninfo masking. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "thmain.h"

START_TEST(mask_hides_passwords)
{
	char out[256];
	db_mask_conninfo("host=db.example port=5433 user=app password=s3cret dbname=x", out,
			 sizeof(out));
	ck_assert(strstr(out, "s3cret") == NULL);
	ck_assert(strstr(out, "password=***") != NULL);
	ck_assert(strstr(out, "host=db.example") != NULL);
	ck_assert(strstr(out, "port=5433") != NULL);

	/* URIs too, with the password in the userinfo or the query. */
	db_mask_conninfo("postgresql://app:pw-in-uri@localhost:5432/x?sslmode=disable", out,
			 sizeof(out));
	ck_assert(strstr(out, "pw-in-uri") == NULL);
	db_mask_conninfo("postgresql://localhost/x?password=qsecret", out, sizeof(out));
	ck_assert(strstr(out, "qsecret") == NULL);

	/* Quoted values with spaces. */
	db_mask_conninfo("password='a b c' user=u", out, sizeof(out));
	ck_assert(strstr(out, "a b c") == NULL);

	/* Unparsable input is not echoed (it may hold a password). */
	db_mask_conninfo("password='unterminated", out, sizeof(out));
	ck_assert_str_eq(out, "(unparsable conninfo)");

	/* Truncation never overflows. */
	char tiny[8];
	db_mask_conninfo("host=averyveryverylonghostname password=x", tiny, sizeof(tiny));
	ck_assert_uint_lt(strlen(tiny), sizeof(tiny));
	ck_assert(strstr(tiny, "x") == NULL || strstr(tiny, "password") == NULL);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {mask_hides_passwords, NULL};
	return th_suite("db", "pure", 0, tests);
}

TH_MAIN(suite)
