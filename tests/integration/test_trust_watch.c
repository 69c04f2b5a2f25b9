/*
 * File watches across the trust boundary: porterd runs as its own
 * unprivileged uid; alice and bob are two foreign clients of one worker.
 *
 * - One uid's flood of change events (many watches of one directory that
 *   it keeps changing) never keeps the worker from serving another uid:
 *   the inotify queue is read in bounded slices between the worker's
 *   other events.
 * - One uid that overflows its inotify queue (alice's flood) costs only
 *   its own watches their events: bob's watch on the same worker still
 *   reports his change, and no OVERFLOW (each uid has its own instance).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "rawc.h"
#include "tenant.h"

#define WATCHES 60    /* of one directory, on one connection (file-max-streams 64) */
#define FLOOD_MS 6000 /* how long alice changes the directory */
#define PING_MS 3000  /* bob's pings: a worker that serves him answers in ms */

static th_daemon d;
static char top[64];
static char team[96];

typedef struct flood {
	volatile int watching; /* alice's watches are open: bob may start */
	int watches;           /* how many alice opened */
	long events;           /* changes she made */
	int pings, failed;     /* bob's pings, and those that did not come back */
	int first_failure;     /* the code of the first one that failed */
	int bob_events;        /* events bob's watch reported */
	int bob_created;       /* of them, CREATED "bob/mine" */
	int bob_overflows;     /* of them, OVERFLOW */
	int bob_failure;       /* a failed call of bob's, or 0 */
} flood;

/* Alice: WATCHES watches of the team directory, then FLOOD_MS of changes
 * to two files in it (alternating, so the kernel cannot merge them). */
static int alice_floods(void *arg)
{
	flood *f = arg;
	porter_file_watch *w[WATCHES] = {0};
	for (int i = 0; i < WATCHES; i++) {
		int rc = porter_file_watch_open("team", "", 0, 5000, &w[i]);
		if (rc != 0) {
			fprintf(stderr, "watch %d: %s (%s)\n", i, porter_error_name(rc),
				porter_last_error_message());
			break;
		}
		f->watches++;
	}
	char a[128], b[128];
	snprintf(a, sizeof(a), "%s/a", team);
	snprintf(b, sizeof(b), "%s/b", team);
	int fa = open(a, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int fb = open(b, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	f->watching = 1;
	if (fa < 0 || fb < 0)
		return 2;
	long long until = th_now_ms() + FLOOD_MS;
	while (th_now_ms() < until) {
		for (int i = 0; i < 256; i++) {
			if (pwrite(fa, "x", 1, 0) != 1 || pwrite(fb, "y", 1, 0) != 1)
				return 3;
		}
		f->events += 512;
	}
	close(fa);
	close(fb);
	for (int i = 0; i < f->watches; i++)
		porter_file_watch_free(w[i]);
	return 0;
}

static void *run_alice(void *arg)
{
	flood *f = arg;
	int rc = th_as(TH_UID_ALICE, TH_GID_PORTER, FLOOD_MS + 30000, alice_floods, f);
	f->watching = 1; /* bob never waits for a child that failed */
	return (void *)(intptr_t)rc;
}

/* Bob: pings the same worker all through alice's flood. */
static int bob_pings(void *arg)
{
	flood *f = arg;
	if (!th_wait_flag(&f->watching, 30000))
		return 1;
	long long until = th_now_ms() + FLOOD_MS - 1000;
	while (th_now_ms() < until) {
		int rc = porter_ping("b", 1, 0, PING_MS);
		f->pings++;
		if (rc != 0 && f->failed++ == 0)
			f->first_failure = rc;
		usleep(20000);
	}
	return 0;
}

/* porterd as its own uid with one worker (alice and bob share it) and a
 * team root its members may also write directly, as such directories are;
 * bob watches a directory of its own in it. */
static void start(void)
{
	snprintf(top, sizeof(top), "/tmp/porter-trustw-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
	ck_assert_int_eq(chown(top, TH_UID_DAEMON, TH_GID_PORTER), 0);
	ck_assert_int_eq(chmod(top, 0750), 0);
	snprintf(team, sizeof(team), "%s/team", top);
	ck_assert_int_eq(mkdir(team, 0770), 0);
	ck_assert_int_eq(chown(team, TH_UID_DAEMON, TH_GID_PORTER), 0);
	ck_assert_int_eq(chmod(team, 02770), 0);
	char bobdir[128];
	snprintf(bobdir, sizeof(bobdir), "%s/bob", team);
	ck_assert_int_eq(mkdir(bobdir, 0770), 0);
	ck_assert_int_eq(chown(bobdir, TH_UID_DAEMON, TH_GID_PORTER), 0);
	ck_assert_int_eq(chmod(bobdir, 02770), 0);
	char roots[160];
	snprintf(roots, sizeof(roots), "team=%s:gids=%u", team, TH_GID_PORTER);
	const char *extra[] = {"--allow-gid",  "61020", "--workers", "1",
			       "--file-roots", roots,   NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, extra), 0);
}

/* Stops porterd (0 when it stopped cleanly) and removes the files. */
static int stop(void)
{
	int alive = th_daemon_stop(&d);
	th_daemon_cleanup(&d);
	ck_assert_int_eq(th_rm_rf(top), 0);
	return alive;
}

/* Starts porterd, runs alice's flood beside `bob_fn` as bob, stops
 * porterd: bob's exit code, with alice's in *alice, the results in *out and
 * whether porterd stopped cleanly (0) in *alive. */
static int run_both(int (*bob_fn)(void *), flood **out, int *alice, int *alive)
{
	start();
	flood *f = th_shared_alloc(sizeof(*f));
	ck_assert_ptr_nonnull(f);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, run_alice, f), 0);
	int bob = th_as(TH_UID_BOB, TH_GID_PORTER, FLOOD_MS + 30000, bob_fn, f);
	void *rc = NULL;
	pthread_join(t, &rc);
	*alive = stop();
	*alice = (int)(intptr_t)rc;
	*out = f;
	return bob;
}

START_TEST(one_uids_event_flood_does_not_stall_the_worker)
{
	flood *f = NULL;
	int alive = 0;
	int alice = 0;
	int bob = run_both(bob_pings, &f, &alice, &alive);

	fprintf(stderr, "bob pinged %d times (%d failed) while alice made %ld changes\n", f->pings,
		f->failed, f->events);
	ck_assert_int_eq(alice, 0);
	ck_assert_int_eq(bob, 0);
	ck_assert_int_eq(f->watches, WATCHES);
	ck_assert_msg(f->pings > 0, "bob never pinged");
	ck_assert_msg(f->failed == 0,
		      "%d of bob's %d pings failed (first: %s) while alice made %ld changes",
		      f->failed, f->pings, porter_error_name(f->first_failure), f->events);
	ck_assert_int_eq(alive, 0);
}
END_TEST

/* Counts the events of one batch of bob's watch into `f`. */
static void bob_counts(flood *f, const porter_file_events *e)
{
	for (size_t i = 0; i < porter_file_events_count(e); i++) {
		int kind = 0;
		const char *name = NULL;
		if (porter_file_events_get(e, i, &kind, &name, NULL) != 0)
			continue;
		f->bob_events++;
		if (kind == PORTER_FILE_EVENT_CREATED && strcmp(name, "bob/mine") == 0)
			f->bob_created++;
		if (kind == PORTER_FILE_EVENT_OVERFLOW)
			f->bob_overflows++;
	}
}

/* Bob: a watch of his own directory, one file created in it halfway
 * through alice's flood, and his watch read until well after it. */
static int bob_watches(void *arg)
{
	flood *f = arg;
	porter_file_watch *w = NULL;
	int rc = porter_file_watch_open("team", "bob", 0, 5000, &w);
	if (rc != 0) {
		f->bob_failure = rc;
		return 1;
	}
	if (!th_wait_flag(&f->watching, 30000))
		return 2;
	long long made_at = th_now_ms() + FLOOD_MS / 2;
	long long until = th_now_ms() + FLOOD_MS + 3000;
	int made = 0;
	while (th_now_ms() < until) {
		if (!made && th_now_ms() >= made_at) {
			char mine[160];
			snprintf(mine, sizeof(mine), "%s/bob/mine", team);
			int fd = open(mine, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			if (fd < 0)
				return 3;
			close(fd);
			made = 1;
		}
		porter_file_events *e = NULL;
		/* A read that times out on a loaded machine (ASan) is tried
		 * again: porterd keeps its events until one is acknowledged. */
		rc = porter_file_watch_read(w, 0, PING_MS, &e);
		if (rc == PORTER_E_TIMEOUT)
			continue;
		if (rc != 0) {
			f->bob_failure = rc;
			break;
		}
		bob_counts(f, e);
		porter_file_events_free(e);
	}
	porter_file_watch_free(w);
	return 0;
}

START_TEST(one_uids_queue_overflow_spares_another_uids_events)
{
	flood *f = NULL;
	int alive = 0;
	int alice = 0;
	int bob = run_both(bob_watches, &f, &alice, &alive);

	fprintf(stderr,
		"bob's watch: %d events (%d his, %d overflows) while alice made %ld changes\n",
		f->bob_events, f->bob_created, f->bob_overflows, f->events);
	ck_assert_int_eq(alice, 0);
	ck_assert_msg(bob == 0 && f->bob_failure == 0, "bob: %d (%s)", bob,
		      porter_error_name(f->bob_failure));
	ck_assert_int_eq(f->watches, WATCHES);
	ck_assert_msg(f->bob_overflows == 0 && f->bob_created == 1 && f->bob_events == 1,
		      "bob's watch reported %d events: %d of his file, %d OVERFLOW", f->bob_events,
		      f->bob_created, f->bob_overflows);
	ck_assert_int_eq(alive, 0);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {one_uids_event_flood_does_not_stall_the_worker,
				one_uids_queue_overflow_spares_another_uids_events, NULL};
	return th_suite("trust_watch", "trust_watch", 120, tests);
}

TH_MAIN_ROOT(suite)
