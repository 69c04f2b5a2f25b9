/* Unit tests of the db module's pure parts: conninfo masking and the
 * client-identity registry. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"

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

START_TEST(identity_registry_counts_connections)
{
	/* Attach/detach balance per identity, independent of others. */
	ck_assert_uint_eq(db_client_gone_ms(1000, 42), UINT64_MAX);
	db_client_attach(1000, 42);
	db_client_attach(1000, 42);
	db_client_attach(1001, 42);
	ck_assert_uint_eq(db_client_gone_ms(1000, 42), 0);
	db_client_detach(1000, 42);
	ck_assert_uint_eq(db_client_gone_ms(1000, 42), 0);
	db_client_detach(1000, 42);
	uint64_t g = db_client_gone_ms(1000, 42);
	ck_assert_uint_ne(g, UINT64_MAX);
	ck_assert_uint_eq(db_client_gone_ms(1001, 42), 0);
	usleep(20 * 1000);
	ck_assert_uint_ge(db_client_gone_ms(1000, 42), 15);
	/* Another instance of the same uid is another client. */
	ck_assert_uint_eq(db_client_gone_ms(1001, 43), UINT64_MAX);
	db_client_detach(1001, 42);
	ck_assert_uint_ne(db_client_gone_ms(1001, 42), 0);
	/* A detach without attach is ignored rather than going negative. */
	db_client_detach(1002, 7);
	ck_assert_uint_eq(db_client_gone_ms(1002, 7), UINT64_MAX);
	db_client_attach(1000, 42);
	ck_assert_uint_eq(db_client_gone_ms(1000, 42), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("db");
	TCase *tc = tcase_create("pure");
	tcase_add_test(tc, mask_hides_passwords);
	tcase_add_test(tc, identity_registry_counts_connections);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
