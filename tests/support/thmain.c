/* thmain - the shared main of the Check suites; see thmain.h. */
#include "thmain.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int th_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

TCase *th_tcase(Suite *s, const char *name, double timeout_s, const TTest *const *tests)
{
	TCase *tc = tcase_create(name);
	if (timeout_s > 0)
		tcase_set_timeout(tc, timeout_s);
	for (; *tests; tests++)
		tcase_add_test(tc, *tests);
	suite_add_tcase(s, tc);
	return tc;
}

Suite *th_suite(const char *name, const char *tcase, double timeout_s, const TTest *const *tests)
{
	Suite *s = suite_create(name);
	th_tcase(s, tcase, timeout_s, tests);
	return s;
}

int th_main(Suite *(*make)(void), unsigned needs)
{
	signal(SIGPIPE, SIG_IGN);
	if ((needs & TH_NEEDS_ROOT) && geteuid() != 0) {
		fprintf(stderr, "%s: needs root to run porterd and clients as other uids\n",
			program_invocation_short_name);
		return 77;
	}
	return th_run_suite(make());
}
