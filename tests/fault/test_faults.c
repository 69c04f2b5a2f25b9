/*
 * Faults: porterd SIGKILLed under load and restarted. Every call returns
 * within its timeout (no hang), and every client thread is served again
 * after the restart without doing anything special.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

static th_daemon d;

#define THREADS 16
#define CALL_TIMEOUT_MS 2000
/* A call taking this much longer than its timeout counts as a hang. */
#define HANG_SLACK_MS 1000
/* Error codes are small negatives; index by -code. */
#define MAX_CODE 64

typedef struct loader {
	pthread_t th;
	int index;
	atomic_llong calls, ok, hangs;
	atomic_llong by_code[MAX_CODE];
	atomic_llong last_ok_start_ms; /* start time of the latest success */
	long long longest_ms;
} loader;

static atomic_int stop;

static void *loader_main(void *arg)
{
	loader *l = arg;
	char payload[32];
	unsigned n = 0;
	while (!atomic_load(&stop)) {
		int len = snprintf(payload, sizeof(payload), "t%d-%u", l->index, n);
		long long t0 = th_now_ms();
		int rc;
		/* A quarter of the threads make slow calls, so the kill
		 * lands on requests in flight inside the daemon. */
		if (l->index % 4 == 0)
			rc = porter_ping_delay(payload, (size_t)len, 50 + (n % 4) * 50, 0,
					       CALL_TIMEOUT_MS);
		else
			rc = porter_ping(payload, (size_t)len, 0, CALL_TIMEOUT_MS);
		long long took = th_now_ms() - t0;
		atomic_fetch_add(&l->calls, 1);
		if (took > l->longest_ms)
			l->longest_ms = took;
		if (took > CALL_TIMEOUT_MS + HANG_SLACK_MS)
			atomic_fetch_add(&l->hangs, 1);
		if (rc == 0) {
			atomic_fetch_add(&l->ok, 1);
			atomic_store(&l->last_ok_start_ms, t0);
		} else {
			int k = -rc;
			atomic_fetch_add(&l->by_code[k > 0 && k < MAX_CODE ? k : 0], 1);
			/* No busy loop while the daemon is down. */
			usleep(10000);
		}
		n++;
	}
	porter_thread_disconnect();
	return NULL;
}

START_TEST(sigkill_under_load_and_restart)
{
	const char *args[] = {"--workers", "2", NULL};
	static loader l[THREADS];
	th_start(&d, args);
	memset(l, 0, sizeof(l));
	atomic_store(&stop, 0);
	for (int i = 0; i < THREADS; i++) {
		l[i].index = i;
		ck_assert_int_eq(pthread_create(&l[i].th, NULL, loader_main, &l[i]), 0);
	}
	int kills = 3;
	long long restarted_at = 0;
	for (int k = 0; k < kills; k++) {
		usleep(700 * 1000);
		th_daemon_kill(&d);
		usleep(300 * 1000); /* clients see a dead daemon meanwhile */
		ck_assert_int_eq(th_daemon_restart(&d, args), 0);
		restarted_at = th_now_ms();
	}
	/* Every thread must succeed again after the last restart. */
	th_wait_stamps(TH_EACH(l, last_ok_start_ms), THREADS, restarted_at, 5000);
	atomic_store(&stop, 1);
	for (int i = 0; i < THREADS; i++)
		pthread_join(l[i].th, NULL);

	long long calls = 0, ok = 0, hangs = 0, longest = 0, by_code[MAX_CODE] = {0};
	int recovered = 0;
	for (int i = 0; i < THREADS; i++) {
		calls += l[i].calls;
		ok += l[i].ok;
		hangs += l[i].hangs;
		if (l[i].longest_ms > longest)
			longest = l[i].longest_ms;
		for (int c = 0; c < MAX_CODE; c++)
			by_code[c] += l[i].by_code[c];
		if (atomic_load(&l[i].last_ok_start_ms) >= restarted_at)
			recovered++;
	}
	fprintf(stderr,
		"SIGKILL x%d under load: %lld calls, %lld ok, %lld hung, longest %lld ms, %d/%d threads served after the last restart\n",
		kills, calls, ok, hangs, longest, recovered, THREADS);
	th_print_failures(by_code, MAX_CODE);
	ck_assert_int_eq(hangs, 0);
	ck_assert_int_eq(recovered, THREADS);
	ck_assert_int_gt(ok, 0);
	/* Failures are what a vanished daemon explains, nothing else. */
	for (int c = 0; c < MAX_CODE; c++) {
		if (!by_code[c])
			continue;
		int code = -c;
		ck_assert_msg(code == PORTER_E_UNREACHABLE || code == PORTER_E_CONN_LOST ||
				      code == PORTER_E_TIMEOUT,
			      "unexpected failure %s", porter_error_name(code));
	}
	th_stop_clean(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {sigkill_under_load_and_restart, NULL};
	return th_suite("faults", "faults", 60, tests);
}

TH_MAIN(suite)
