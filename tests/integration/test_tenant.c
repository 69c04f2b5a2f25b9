/*
 * The multi-uid harness itself (tests/support/tenant.c): porterd really runs
 * as its own unprivileged uid, clients really run as theirs, and the
 * daemon's allow-list is what decides who gets in. The trust suites build on
 * these facts, so they are proven here once.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "tenant.h"

#define TH_UID_STRANGER 61013 /* in the group, not on the allow-list */

static th_daemon d;

static const char *const allow_two[] = {"--allow-uid", "61011,61012", NULL};

/* Child bodies: exit code 0 means what the test expects happened. */
static int ping_ok(void *arg)
{
	(void)arg;
	if (getuid() == 0)
		return 10;
	return porter_ping("x", 1, 0, 2000) == 0 ? 0 : 1;
}

static int ping_refused(void *arg)
{
	(void)arg;
	return porter_ping("x", 1, 0, 2000) < 0 ? 0 : 1;
}

static int report_uid(void *arg)
{
	*(uid_t *)arg = getuid();
	return 0;
}

START_TEST(daemon_runs_as_its_uid)
{
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, allow_two), 0);
	ck_assert_int_eq(th_proc_status(d.pid, "Uid"), TH_UID_DAEMON);
	th_daemon_stop(&d);
	th_daemon_cleanup(&d);
}
END_TEST

START_TEST(children_run_as_theirs)
{
	uid_t *seen = th_shared_alloc(sizeof(uid_t));
	ck_assert_ptr_nonnull(seen);
	ck_assert_int_eq(th_as(TH_UID_BOB, TH_GID_PORTER, 5000, report_uid, seen), 0);
	ck_assert_int_eq(*seen, TH_UID_BOB);
}
END_TEST

START_TEST(allow_list_decides)
{
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, allow_two), 0);
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 10000, ping_ok, NULL), 0);
	ck_assert_int_eq(th_as(TH_UID_BOB, TH_GID_PORTER, 10000, ping_ok, NULL), 0);
	ck_assert_int_eq(th_as(TH_UID_STRANGER, TH_GID_PORTER, 10000, ping_refused, NULL), 0);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {daemon_runs_as_its_uid, children_run_as_theirs, allow_list_decides,
				NULL};
	return th_suite("tenant", "tenant", 60, tests);
}

TH_MAIN_ROOT(suite)
