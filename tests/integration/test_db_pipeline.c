/*
 * Pipelining that learns: porterd pipelines only statements it has seen
 * run fast on the pool, so slow queries never line up behind each other or
 * in front of a fast one. Real porterd, real PostgreSQL (the `pg` ctest
 * fixture), one worker and a pool of 8.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "thmain.h"

#define SLEEPERS 16
#define SLEEP_ROUNDS 2
/* A bystander's SELECT 1 times out after this long: the sleeps are 1 s,
 * and behind one of them it would take up to that (it takes a few ms,
 * some 300 ms at worst on a machine at load 10). */
#define BYSTANDER_MAX_MS 1000
/* A sleeper's query: two waves of 1 s on 8 connections, and a margin. */
#define SLEEPER_MAX_MS 3500

static th_daemon d;
static char conninfo[512];

static void start(void)
{
	th_pg_file("conninfo", conninfo, sizeof(conninfo));
	const char *args[] = {"--workers", "1", "--db-pool-size", "8", NULL};
	th_start(&d, args);
}

/* One query expecting one row, with one text parameter `param` (NULL:
 * none): its latency in ms, or -1 after printing why it failed. */
static long long timed_p(const char *sql, const char *param, int timeout_ms)
{
	porter_db_result *r = NULL;
	porter_db_param p = {.value = param, .len = param ? strlen(param) : 0};
	long long t0 = th_now_ms();
	int rc = porter_db_query(0, conninfo, sql, param ? &p : NULL, param ? 1 : 0, 0, timeout_ms,
				 &r);
	long long ms = th_now_ms() - t0;
	int ok = rc == 0 && porter_db_ntuples(r) == 1;
	if (!ok)
		fprintf(stderr, "%s: %s (%s) after %lld ms\n", sql, porter_error_name(rc),
			porter_last_error_message(), ms);
	porter_db_result_free(r);
	return ok ? ms : -1;
}

static long long timed(const char *sql, int timeout_ms)
{
	return timed_p(sql, NULL, timeout_ms);
}

static atomic_int g_sleepers_left;
static atomic_llong g_sleep_worst;
static atomic_int g_sleep_failed;

static void *sleeper(void *arg)
{
	(void)arg;
	for (int k = 0; k < SLEEP_ROUNDS; k++) {
		long long ms = timed("SELECT pg_sleep(1)", 10000);
		if (ms < 0)
			atomic_fetch_add(&g_sleep_failed, 1);
		long long worst = atomic_load(&g_sleep_worst);
		while (ms > worst && !atomic_compare_exchange_weak(&g_sleep_worst, &worst, ms))
			;
	}
	atomic_fetch_sub(&g_sleepers_left, 1);
	return NULL;
}

/*
 * 16 threads run pg_sleep(1) twice each on a pool of 8 while a bystander
 * runs SELECT 1 every 20 ms. No sleep may queue behind another beyond the
 * two waves 16 of them on 8 connections take, and the bystander (known
 * fast) is never held behind a sleep: it runs on the pool's fast lane.
 * Before, the sleeps were sent ahead in pipelines behind each other and
 * the bystander behind them (seconds, or a timeout).
 */
START_TEST(slow_queries_never_stack)
{
	start();
	/* SELECT 1 runs a few times alone first: porterd learns it is fast. */
	for (int i = 0; i < 10; i++)
		ck_assert_int_ge(timed("SELECT 1", 5000), 0);
	atomic_store(&g_sleepers_left, SLEEPERS);
	atomic_store(&g_sleep_worst, 0);
	atomic_store(&g_sleep_failed, 0);
	pthread_t th[SLEEPERS];
	for (int i = 0; i < SLEEPERS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, sleeper, NULL), 0);
	long long worst = 0;
	int n = 0, failed = 0;
	while (atomic_load(&g_sleepers_left) > 0) {
		long long ms = timed("SELECT 1", BYSTANDER_MAX_MS);
		if (ms < 0)
			failed++;
		else if (ms > worst)
			worst = ms;
		n++;
		usleep(20 * 1000);
	}
	for (int i = 0; i < SLEEPERS; i++)
		pthread_join(th[i], NULL);
	fprintf(stderr, "bystander: %d queries, slowest %lld ms; slowest sleep %lld ms\n", n, worst,
		(long long)atomic_load(&g_sleep_worst));
	ck_assert_int_eq(failed, 0);
	ck_assert_int_eq(atomic_load(&g_sleep_failed), 0);
	ck_assert_int_ge(n, 20);
	ck_assert_msg(worst <= BYSTANDER_MAX_MS, "a bystander's SELECT 1 took %lld ms", worst);
	ck_assert_msg(atomic_load(&g_sleep_worst) <= SLEEPER_MAX_MS,
		      "a pg_sleep(1) took %lld ms: it queued behind more than one other",
		      (long long)atomic_load(&g_sleep_worst));
	th_stop_clean(&d);
}
END_TEST

/*
 * A statement known to be fast that turns slow leaves the pipelines at
 * once, and the members of one batch never share a sync point when they
 * are slow. pg_sleep($1) with 0 runs fast five times (learnt fast), then
 * twice with 0.5 s (two of its last three runs slow: slow now, although
 * it was pipelined for the second); then a batch of 8 members of it with
 * 0.5 s takes a connection each and ends in about one sleep. Before, the
 * members (dispatched in one loop turn) were sent ahead in one pipeline
 * behind each other and answered at one sync point, after 4 s.
 */
#define SAME_TEXT "SELECT pg_sleep($1::float8)"
#define MEMBERS 8

START_TEST(a_statement_that_turns_slow_leaves_the_pipelines)
{
	start();
	for (int i = 0; i < 5; i++)
		ck_assert_int_ge(timed_p(SAME_TEXT, "0", 5000), 0);
	ck_assert_int_ge(timed_p(SAME_TEXT, "0.5", 5000), 400);
	ck_assert_int_ge(timed_p(SAME_TEXT, "0.5", 5000), 400);
	porter_batch *b = porter_batch_new(PORTER_BATCH_ALL);
	ck_assert_ptr_nonnull(b);
	porter_db_param p = {.value = "0.5", .len = 3};
	for (int i = 0; i < MEMBERS; i++)
		ck_assert_int_eq(porter_batch_add_db_query(b, 0, conninfo, SAME_TEXT, &p, 1, 10000),
				 i);
	porter_batch_result *r = NULL;
	long long t0 = th_now_ms();
	ck_assert_int_eq(porter_batch_run(b, 0, 10000, &r), 0);
	long long ms = th_now_ms() - t0;
	for (int i = 0; i < MEMBERS; i++)
		ck_assert_msg(porter_batch_result_status(r, (size_t)i) == 0, "member %d: %s", i,
			      porter_batch_result_message(r, (size_t)i));
	porter_batch_result_free(r);
	porter_batch_free(b);
	fprintf(stderr, "a batch of 8 pg_sleep(0.5) of a statement turned slow: %lld ms\n", ms);
	/* One sleep and the connecting of new connections; 4 s when they
	 * shared one pipeline. */
	ck_assert_msg(ms <= 2000, "the batch took %lld ms: its members were stacked", ms);
	th_stop_clean(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {slow_queries_never_stack,
				a_statement_that_turns_slow_leaves_the_pipelines, NULL};
	return th_suite("db_pipeline", "core", 120, tests);
}

TH_MAIN(suite)
