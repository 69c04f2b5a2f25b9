/*
 * thmain - the one main() of every Check suite in tests/unit,
 * tests/integration and tests/fault.
 *
 * A suite file builds its Suite in `static Suite *suite(void)` (suite named
 * after the module, "htab" in test_htab.c) and ends with TH_MAIN(suite), or
 * TH_MAIN_ROOT(suite) when it runs porterd and clients as other uids.
 * Whatever every suite needs before its first test (SIGPIPE ignored, the
 * skip rule) lives here once. Main thread only.
 */
#ifndef PORTER_THMAIN_H
#define PORTER_THMAIN_H

#include <check.h>

/* What a suite needs from the machine; th_main skips it (exit 77, which
 * ctest's SKIP_RETURN_CODE reports as skipped) when that is missing. */
enum {
	TH_NEEDS_NOTHING = 0,
	TH_NEEDS_ROOT = 1, /* fork + setuid to the uids of tenant.h */
};

/*
 * Ignores SIGPIPE (a peer that died mid-write must fail a check, not kill
 * the test), returns 77 after saying why when `needs` is not met, and
 * otherwise runs the Suite that `make` (not NULL) builds in Check's normal
 * mode. Returns the process exit status: 0 when every test passed.
 */
int th_main(Suite *(*make)(void), unsigned needs);

/* Runs `s` (not NULL, freed here) in Check's normal mode; returns the
 * process exit status. */
int th_run_suite(Suite *s);

/* Adds to `s` (not NULL) a TCase `name` (not NULL, kept by Check) with a
 * timeout of `timeout_s` (0: Check's default, CK_DEFAULT_TIMEOUT) and each
 * test of the NULL-terminated list `tests`
 * (not NULL; the names START_TEST defines), in order. Returns the TCase,
 * for its fixtures. */
TCase *th_tcase(Suite *s, const char *name, double timeout_s, const TTest *const *tests);

/* A Suite `name` (not NULL, kept by Check) of one TCase made by th_tcase
 * without fixtures (its tests start and stop their own porterd): what
 * most suites build in suite(). */
Suite *th_suite(const char *name, const char *tcase, double timeout_s, const TTest *const *tests);

/* Defines main() for a suite built by `make`. */
#define TH_MAIN(make)                                                                              \
	int main(void)                                                                             \
	{                                                                                          \
		return th_main(make, TH_NEEDS_NOTHING);                                            \
	}

/* The same for a suite that needs root (multi-uid tests). */
#define TH_MAIN_ROOT(make)                                                                         \
	int main(void)                                                                             \
	{                                                                                          \
		return th_main(make, TH_NEEDS_ROOT);                                               \
	}

#endif
