/*
 * Integration tests of PostgreSQL through porterd: a real porterd and the
 * real PostgreSQL 15 that the `pg` ctest fixture (tests/support/pg.sh)
 * started; its connection strings are read from $PORTER_PG_STATE.
 *
 * This suite: sessions' lifetimes. A restart of PostgreSQL, the sessions
 * of a gone client and idle ones closed, a session's queue, a query queued
 * behind a long one, shutdown with queries in flight.
 * The suites of this family: test_db (queries), test_db_pool (pooled
 * connections), test_db_stream (cursors), test_db_session (sessions).
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

static th_daemon d;
static char conninfo[512]; /* Unix socket, superuser, trust */
/* The session that the threads of a test share. */
static uint64_t shared_session;

static void start(const char *const *extra)
{
	th_pg_file("conninfo", conninfo, sizeof(conninfo));
	const char *def[] = {"--workers", "4", "--db-session-grace", "500", NULL};
	ck_assert_msg(th_daemon_start(&d, extra ? extra : def) == 0, "porterd did not start");
}

START_TEST(postgres_restart_mid_run)
{
	start(NULL);
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &s), 0);
	ck_assert_int_eq(th_db_long(s, NULL, "SELECT 1"), 1);
	ck_assert_int_eq(th_db_long(0, conninfo, "SELECT 2"), 2);

	ck_assert_int_eq(th_pg_sh("restart"), 0);

	/* The session reports the loss... */
	porter_db_result *r = NULL;
	int rc = porter_db_query(s, NULL, "SELECT 1", NULL, 0, 0, 5000, &r);
	ck_assert_msg(rc == PORTER_E_DB_BROKEN || rc == PORTER_E_DB, "%s", porter_error_name(rc));
	porter_db_result_free(r);
	rc = porter_db_query(s, NULL, "SELECT 1", NULL, 0, 0, 5000, &r);
	ck_assert_int_eq(rc, PORTER_E_DB_BROKEN);
	porter_db_result_free(r);
	ck_assert_int_eq(porter_db_close(s, 0, 5000), 0);
	/* ...the pool recovers (its dead idle connection is replaced)... */
	ck_assert_int_eq(th_db_long(0, conninfo, "SELECT 4"), 4);
	/* ...and new sessions work. */
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &s), 0);
	ck_assert_int_eq(th_db_long(s, NULL, "SELECT 5"), 5);
	porter_db_close(s, 0, 5000);
	th_stop_clean(&d);
}
END_TEST

START_TEST(sessions_of_a_gone_client_are_closed)
{
	start(NULL);
	porter_db_result_free(
		th_db_ok(0, conninfo, "CREATE TABLE IF NOT EXISTS gone_t (id int PRIMARY KEY)"));
	porter_db_result_free(th_db_ok(0, conninfo, "TRUNCATE gone_t"));
	porter_thread_disconnect();
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* A client process that leaves a transaction open and exits. */
		uint64_t s;
		porter_db_result *r = NULL;
		if (porter_db_open(conninfo, 0, 5000, &s) != 0)
			_exit(1);
		if (porter_db_query(s, NULL, "BEGIN; INSERT INTO gone_t VALUES (1)", NULL, 0, 0,
				    5000, &r) != 0)
			_exit(2);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* Within the grace period plus a sweep the transaction is gone. */
	long n = 1;
	for (int i = 0; i < 60 && n; i++) {
		n = th_db_long(0, conninfo,
			       "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in "
			       "transaction%'");
		if (n)
			usleep(100 * 1000);
	}
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(th_db_long(0, conninfo, "SELECT count(*) FROM gone_t"), 0);
	porter_db_result_free(th_db_ok(0, conninfo, "DROP TABLE gone_t"));
	th_stop_clean(&d);
}
END_TEST

START_TEST(idle_sessions_are_closed)
{
	const char *args[] = {"--workers", "2", "--db-session-idle", "300", NULL};
	start(args);
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &s), 0);
	ck_assert_int_eq(th_db_long(s, NULL, "SELECT 1"), 1);
	usleep(800 * 1000);
	porter_db_result *r = NULL;
	ck_assert_int_eq(porter_db_query(s, NULL, "SELECT 1", NULL, 0, 0, 5000, &r),
			 PORTER_E_DB_SESSION);
	porter_db_result_free(r);
	th_stop_clean(&d);
}
END_TEST

/* ---- one session, many threads: queued, one at a time ---- */

static atomic_int q_fail;

static void *queue_main(void *arg)
{
	long k = (long)arg;
	for (int i = 0; i < 10; i++) {
		porter_db_result *r = NULL;
		char sql[128];
		snprintf(sql, sizeof(sql), "INSERT INTO qt VALUES (%ld) RETURNING pg_backend_pid()",
			 k * 100 + i);
		int rc = porter_db_query(shared_session, NULL, sql, NULL, 0, 0, 10000, &r);
		if (rc != 0 || porter_db_ntuples(r) != 1)
			atomic_fetch_add(&q_fail, 1);
		porter_db_result_free(r);
	}
	porter_thread_disconnect();
	return NULL;
}

START_TEST(session_queue_and_pool_reset)
{
	start(NULL);
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &shared_session), 0);
	porter_db_result_free(th_db_ok(shared_session, NULL, "CREATE TEMP TABLE qt (a int)"));
	long pid = th_db_long(shared_session, NULL, "SELECT pg_backend_pid()");
	pthread_t t[8];
	for (long i = 0; i < 8; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, queue_main, (void *)i), 0);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(atomic_load(&q_fail), 0);
	ck_assert_int_eq(th_db_long(shared_session, NULL, "SELECT count(DISTINCT a) FROM qt"), 80);
	ck_assert_int_eq(th_db_long(shared_session, NULL, "SELECT pg_backend_pid()"), pid);

	/* A query queued behind a long one times out by its own deadline;
	 * the long one is cancelled at its deadline; the session survives. */
	porter_db_result *r = NULL;
	int rc = porter_db_query(shared_session, NULL, "SELECT 1", NULL, 0, 0, 5000, &r);
	ck_assert_int_eq(rc, 0);
	porter_db_result_free(r);

	/* Pooled connections do not leak session state between queries. */
	porter_db_result_free(th_db_ok(0, conninfo, "SET application_name = 'leaky'"));
	r = th_db_ok(0, conninfo, "SHOW application_name");
	ck_assert_str_ne(porter_db_getvalue(r, 0, 0), "leaky");
	porter_db_result_free(r);
	porter_db_result_free(th_db_ok(0, conninfo, "BEGIN"));
	usleep(300 * 1000);
	/* Not inside that transaction (now() would be its start)... */
	r = th_db_ok(0, conninfo, "SELECT clock_timestamp() - now() < interval '150 ms'");
	ck_assert_str_eq(porter_db_getvalue(r, 0, 0), "t");
	porter_db_result_free(r);
	/* ...and its connection was discarded, ending it. */
	long n = 1;
	for (int i = 0; i < 40 && n; i++) {
		n = th_db_long(0, conninfo,
			       "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in "
			       "transaction%'");
		if (n)
			usleep(50 * 1000);
	}
	ck_assert_int_eq(n, 0);
	porter_db_close(shared_session, 0, 5000);
	th_stop_clean(&d);
}
END_TEST

static void *long_query_main(void *arg)
{
	(void)arg;
	porter_db_result *r = NULL;
	long rc = porter_db_query(shared_session, NULL, "SELECT pg_sleep(30) /* held */", NULL, 0,
				  0, 1500, &r);
	porter_db_result_free(r);
	return (void *)rc;
}

START_TEST(queued_behind_long_query_times_out)
{
	start(NULL);
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &shared_session), 0);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, long_query_main, NULL), 0);
	usleep(200 * 1000);
	porter_db_result *r = NULL;
	long long t0 = th_now_ms();
	int rc = porter_db_query(shared_session, NULL, "SELECT 1", NULL, 0, 0, 600, &r);
	ck_assert_int_eq(rc, PORTER_E_TIMEOUT);
	ck_assert(th_now_ms() - t0 < 1500);
	porter_db_result_free(r);
	void *ret;
	pthread_join(t, &ret);
	ck_assert_int_eq((long)ret, PORTER_E_TIMEOUT);
	ck_assert_int_eq(th_db_long(shared_session, NULL, "SELECT 8"), 8);
	porter_db_close(shared_session, 0, 5000);
	th_stop_clean(&d);
}
END_TEST

static void *doomed_main(void *arg)
{
	(void)arg;
	porter_db_result *r = NULL;
	long rc = porter_db_query(0, conninfo, "SELECT pg_sleep(20) /* doomed */", NULL, 0, 0,
				  15000, &r);
	porter_db_result_free(r);
	return (void *)rc;
}

START_TEST(shutdown_with_queries_in_flight)
{
	start(NULL);
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &s), 0);
	porter_db_result_free(th_db_ok(s, NULL, "BEGIN"));
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, doomed_main, NULL), 0);
	usleep(300 * 1000);
	porter_thread_disconnect();
	long long t0 = th_now_ms();
	int st = th_daemon_stop(&d);
	if (st != 0)
		th_daemon_dump_log(&d);
	ck_assert_int_eq(st, 0);
	ck_assert(th_now_ms() - t0 < 9000);
	void *ret;
	pthread_join(t, &ret);
	ck_assert_int_lt((long)ret, 0);
	th_daemon_cleanup(&d);
	/* The sleeping backend was cancelled, the open transaction ended. */
	const char *const psql[] = {"psql", conninfo, "-Atc",
				    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
				    "'SELECT pg_sleep(20)%' AND state = 'active'",
				    NULL};
	char out[64] = "";
	for (int i = 0; i < 50; i++) {
		ck_assert_int_eq(th_run(psql, TH_ERR_KEEP, NULL, 0, out, sizeof(out), NULL), 0);
		if (strcmp(out, "0\n") == 0)
			break;
		usleep(100 * 1000);
	}
	ck_assert_str_eq(out, "0\n");
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {sessions_of_a_gone_client_are_closed,
				idle_sessions_are_closed,
				session_queue_and_pool_reset,
				queued_behind_long_query_times_out,
				shutdown_with_queries_in_flight,
				postgres_restart_mid_run,
				NULL};
	return th_suite("db_session", "session", 120, tests);
}

TH_MAIN(suite)
