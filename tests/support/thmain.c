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
