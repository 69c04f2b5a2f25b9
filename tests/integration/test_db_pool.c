/*
 * Integration tests of PostgreSQL through porterd: a real porterd and the
 * real PostgreSQL 15 that the `pg` ctest fixture (tests/support/pg.sh)
 * started; its connection strings are read from $PORTER_PG_STATE.
 *
 * This suite: pooled connections. Pipelines keep the queries of many
 * threads apart, a timeout cancels on the server and never the next
 * query, prepared statements are kept per connection and kept fresh.
 * The suites of this family: test_db (queries), test_db_pool (pooled
 * connections), test_db_stream (cursors), test_db_session (sessions).
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

static th_daemon d;
static char conninfo[512]; /* Unix socket, superuser, trust */

static void start(const char *const *extra)
{
	th_pg_file("conninfo", conninfo, sizeof(conninfo));
	const char *def[] = {"--workers", "4", "--db-session-grace", "500", NULL};
	ck_assert_msg(th_daemon_start(&d, extra ? extra : def) == 0, "porterd did not start");
}

/* ---- pipelines: more threads than pooled connections ---- */

static atomic_int pipe_fail, pipe_errors;
/* The first unexpected outcome, for the failure message. */
static char pipe_first[256];
static atomic_flag pipe_first_taken = ATOMIC_FLAG_INIT;

static void pipe_failed(const char *what, int rc, const porter_db_result *r)
{
	atomic_fetch_add(&pipe_fail, 1);
	if (atomic_flag_test_and_set(&pipe_first_taken))
		return;
	snprintf(pipe_first, sizeof(pipe_first), "%s query: rc %d, sqlstate '%s', '%s'", what, rc,
		 r ? porter_db_sqlstate(r) : "",
		 r ? porter_db_message(r) : porter_last_error_message());
}

static void *pipe_main(void *arg)
{
	long k = (long)arg;
	for (int i = 0; i < 30; i++) {
		char v[32];
		int n = snprintf(v, sizeof(v), "%ld", k * 1000 + i + 1);
		porter_db_param p = {v, (size_t)n, 0, 0};
		porter_db_result *r = NULL;
		int bad = i % 7 == 3;
		int rc = porter_db_query(
			0, conninfo, bad ? "SELECT 1 / ($1::int - $1::int)" : "SELECT $1::int * 2",
			&p, 1, 0, 10000, &r);
		if (bad) {
			/* An error stays with its own query. */
			if (rc != PORTER_E_DB || strcmp(porter_db_sqlstate(r), "22012") != 0)
				pipe_failed("failing", rc, r);
			else
				atomic_fetch_add(&pipe_errors, 1);
		} else if (rc != 0 || porter_db_ntuples(r) != 1 ||
			   atol(porter_db_getvalue(r, 0, 0)) != (k * 1000 + i + 1) * 2) {
			pipe_failed("good", rc, r);
		}
		porter_db_result_free(r);
	}
	porter_thread_disconnect();
	return NULL;
}

static void *pipe_sleeper(void *arg)
{
	(void)arg;
	porter_db_result *r = NULL;
	long rc = porter_db_query(0, conninfo, "SELECT pg_sleep(30) /* piped */", NULL, 0, 0, 700,
				  &r);
	porter_db_result_free(r);
	porter_thread_disconnect();
	return (void *)rc;
}

START_TEST(pipelined_pool_keeps_queries_apart)
{
	const char *args[] = {"--workers", "1", "--db-pool-size", "2", NULL};
	start(args);
	pthread_t t[16], sl[2];
	for (long i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&sl[i], NULL, pipe_sleeper, NULL), 0);
	usleep(100 * 1000);
	for (long i = 0; i < 16; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, pipe_main, (void *)i), 0);
	for (int i = 0; i < 16; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 2; i++) {
		void *ret;
		pthread_join(sl[i], &ret);
		ck_assert_int_eq((long)ret, PORTER_E_TIMEOUT);
	}
	ck_assert_msg(atomic_load(&pipe_fail) == 0, "%d queries went wrong; the first: %s",
		      atomic_load(&pipe_fail), pipe_first);
	ck_assert_int_eq(atomic_load(&pipe_errors), 16 * 4);
	/* Two connections served them all. */
	long n = th_db_long(
		0, conninfo,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
		"AND application_name = ''");
	ck_assert_msg(n <= 2 + 1, "%ld backends", n);
	n = th_db_long(
		0, conninfo,
		"SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%' "
		"AND state = 'active'");
	ck_assert_int_eq(n, 0);
	/* A multi-statement query on a pipelined pool still works. */
	porter_db_result *r = th_db_ok(0, conninfo, "SELECT 1; SELECT 2");
	ck_assert_uint_eq(porter_db_nresults(r), 2);
	porter_db_result_free(r);
	ck_assert_int_eq(th_db_long(0, conninfo, "SELECT 3"), 3);
	th_stop_clean(&d);
}
END_TEST

/* ---- timeouts ---- */

static long active_sleeps(void)
{
	return th_db_long(0, conninfo,
			  "SELECT count(*) FROM pg_stat_activity "
			  "WHERE query LIKE 'SELECT pg_sleep(30)%' AND state = 'active'");
}

START_TEST(timeout_cancels_on_server)
{
	start(NULL);
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &s), 0);
	porter_db_result *r = NULL;
	long long t0 = th_now_ms();
	int rc =
		porter_db_query(s, NULL, "SELECT pg_sleep(30) /* session */", NULL, 0, 0, 1000, &r);
	long long el = th_now_ms() - t0;
	ck_assert_int_eq(rc, PORTER_E_TIMEOUT);
	ck_assert_msg(el < 2500, "took %lld ms", el);
	porter_db_result_free(r);
	/* The backend stopped running it. */
	long n = 1;
	for (int i = 0; i < 40 && n; i++) {
		n = active_sleeps();
		if (n)
			usleep(50 * 1000);
	}
	ck_assert_int_eq(n, 0);
	/* The session is usable and still the same backend connection. */
	ck_assert_int_eq(th_db_long(s, NULL, "SELECT 3"), 3);

	/* Same on a pooled connection. */
	t0 = th_now_ms();
	rc = porter_db_query(0, conninfo, "SELECT pg_sleep(30) /* pool */", NULL, 0, 0, 800, &r);
	ck_assert_int_eq(rc, PORTER_E_TIMEOUT);
	ck_assert_msg(th_now_ms() - t0 < 2500, "took %lld ms", th_now_ms() - t0);
	porter_db_result_free(r);
	n = 1;
	for (int i = 0; i < 40 && n; i++) {
		n = active_sleeps();
		if (n)
			usleep(50 * 1000);
	}
	ck_assert_int_eq(n, 0);

	/* Queued behind a long query on one session: both time out. */
	porter_db_close(s, 0, 5000);
	th_stop_clean(&d);
}
END_TEST

/* Pooled statements are prepared once per connection, bounded, and a
 * statement whose result type changed under it is run again unnamed. One
 * worker and one pooled connection, so every pooled query shares it. */
static long porter_stmts(const char *like)
{
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'porter_s%%' AND "
		 "statement LIKE '%s'",
		 like);
	return th_db_long(0, conninfo, sql);
}

START_TEST(pooled_statements_prepared_and_kept_fresh)
{
	const char *args[] = {"--workers", "1", "--db-pool-size", "1", "--db-statement-cache",
			      "4",         NULL};
	start(args);
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &s), 0);
	porter_db_result_free(th_db_ok(s, NULL, "DROP TABLE IF EXISTS stmt_t"));
	porter_db_result_free(th_db_ok(s, NULL, "CREATE TABLE stmt_t (a int)"));
	porter_db_result_free(th_db_ok(s, NULL, "INSERT INTO stmt_t VALUES (7)"));

	/* Used until porterd knows it is fast (a new connection's first run
	 * does not count, the next tells; on a busy machine a run may take
	 * longer), and then pipelined: prepared once on the server, however
	 * often it runs, answers unchanged. */
	long prepared = 0;
	for (int i = 0; i < 40 && (i < 6 || prepared != 1); i++) {
		porter_db_result *r = th_db_ok(0, conninfo, "SELECT * FROM stmt_t");
		ck_assert_int_eq(porter_db_nfields(r), 1);
		ck_assert_str_eq(porter_db_getvalue(r, 0, 0), "7");
		porter_db_result_free(r);
		prepared = porter_stmts("SELECT * FROM stmt_t");
	}
	ck_assert_int_eq(prepared, 1);

	/* Another connection changes the table: the cached statement would
	 * fail with "cached plan must not change result type"; the daemon
	 * runs it again unnamed and drops the stale one. */
	porter_db_result_free(
		th_db_ok(s, NULL, "ALTER TABLE stmt_t ADD COLUMN b text DEFAULT 'x'"));
	porter_db_result *r = th_db_ok(0, conninfo, "SELECT * FROM stmt_t");
	ck_assert_int_eq(porter_db_nfields(r), 2);
	ck_assert_str_eq(porter_db_getvalue(r, 0, 1), "x");
	porter_db_result_free(r);
	r = th_db_ok(0, conninfo, "SELECT * FROM stmt_t");
	ck_assert_int_eq(porter_db_nfields(r), 2);
	porter_db_result_free(r);

	/* Parameter types are part of the key; twelve distinct statements
	 * through a cache of four keep at most four on the server. */
	for (int i = 0; i < 12; i++) {
		char sql[64], v[16];
		snprintf(sql, sizeof(sql), "SELECT $1::int + %d", i);
		snprintf(v, sizeof(v), "%d", 100 * i);
		porter_db_param p = {.value = v, .len = strlen(v)};
		porter_db_result *pr = NULL;
		ck_assert_int_eq(porter_db_query(0, conninfo, sql, &p, 1, 0, 5000, &pr), 0);
		ck_assert_int_eq(atol(porter_db_getvalue(pr, 0, 0)), 100 * i + i);
		porter_db_result_free(pr);
	}
	ck_assert_int_le(porter_stmts("%"), 4);

	/* A statement the server refuses is not kept, and reports its error
	 * each time. */
	for (int i = 0; i < 2; i++) {
		porter_db_result *er = NULL;
		ck_assert_int_eq(porter_db_query(0, conninfo, "SELEC 1", NULL, 0, 0, 5000, &er),
				 PORTER_E_DB);
		ck_assert_str_eq(porter_db_sqlstate(er), "42601");
		porter_db_result_free(er);
	}
	ck_assert_int_eq(porter_stmts("SELEC 1"), 0);

	/* A reset (DISCARD ALL, after a pooled SET) drops the server's
	 * statements; the cache follows and queries keep working. */
	porter_db_result_free(th_db_ok(0, conninfo, "SET application_name = 'stmt'"));
	ck_assert_int_eq(th_db_long(0, conninfo, "SELECT count(*) FROM stmt_t"), 1);
	ck_assert_int_eq(th_db_long(0, conninfo, "SELECT count(*) FROM stmt_t"), 1);
	ck_assert_int_eq(porter_stmts("SELECT count(*) FROM stmt_t"), 1);

	porter_db_result_free(th_db_ok(s, NULL, "DROP TABLE stmt_t"));
	porter_db_close(s, 0, 5000);
	th_stop_clean(&d);
}
END_TEST

/* With the cache off nothing is prepared. */
START_TEST(statement_cache_off)
{
	const char *args[] = {"--workers", "1", "--db-pool-size", "1", "--db-statement-cache",
			      "0",         NULL};
	start(args);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(th_db_long(0, conninfo, "SELECT 41 + 1"), 42);
	ck_assert_int_eq(porter_stmts("%"), 0);
	th_stop_clean(&d);
}
END_TEST

/* A query that times out is cancelled on the server; the cancel must not
 * land on the query that follows it on the same connection, however soon
 * that one is sent. */
START_TEST(cancel_never_hits_the_next_query)
{
	start(NULL);
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &s), 0);
	for (int i = 0; i < 20; i++) {
		porter_db_result *r = NULL;
		ck_assert_int_eq(porter_db_query(s, NULL, "SELECT pg_sleep(5)", NULL, 0, 0, 60, &r),
				 PORTER_E_TIMEOUT);
		porter_db_result_free(r);
		r = NULL;
		int rc =
			porter_db_query(s, NULL, "SELECT pg_sleep(0.02), 1", NULL, 0, 0, 10000, &r);
		ck_assert_msg(rc == 0, "query after a cancel: %s (%s)", porter_error_name(rc),
			      porter_db_message(r));
		porter_db_result_free(r);
		/* The same through the pool. */
		r = NULL;
		ck_assert_int_eq(
			porter_db_query(0, conninfo, "SELECT pg_sleep(5)", NULL, 0, 0, 60, &r),
			PORTER_E_TIMEOUT);
		porter_db_result_free(r);
		ck_assert_int_eq(th_db_long(0, conninfo, "SELECT 1 FROM pg_sleep(0.02)"), 1);
	}
	ck_assert_int_eq(porter_db_close(s, 0, 5000), 0);
	th_stop_clean(&d);
}
END_TEST

/* Pooled inserts from many threads share segments (one transaction per
 * sync); a failing neighbour must never change another query's outcome:
 * its segment is rolled back and every query in it runs again alone. */
static atomic_int seg_ok, seg_dup, seg_wrong;

static void *seg_main(void *arg)
{
	long t = (long)arg;
	for (int i = 0; i < 150; i++) {
		/* One statement text, so porterd learns it is fast and
		 * pipelines it (a text it has not seen runs alone). */
		char tv[16], iv[16];
		int dup = i % 10 == 5;
		snprintf(tv, sizeof(tv), "%ld", dup ? 0 : t);
		snprintf(iv, sizeof(iv), "%d", dup ? 0 : i);
		porter_db_param p[2] = {{.value = tv, .len = strlen(tv)},
					{.value = iv, .len = strlen(iv)}};
		porter_db_result *r = NULL;
		int rc = porter_db_query(0, conninfo, "INSERT INTO seg_t VALUES ($1, $2)", p, 2, 0,
					 20000, &r);
		if (dup && rc == PORTER_E_DB && !strcmp(porter_db_sqlstate(r), "23505"))
			atomic_fetch_add(&seg_dup, 1);
		else if (!dup && rc == 0 && porter_db_cmdtuples(r) == 1)
			atomic_fetch_add(&seg_ok, 1);
		else
			atomic_fetch_add(&seg_wrong, 1);
		porter_db_result_free(r);
	}
	porter_thread_disconnect();
	return NULL;
}

START_TEST(pipelined_segments_keep_outcomes_apart)
{
	const char *args[] = {"--workers", "1", "--db-pool-size", "1", NULL};
	start(args);
	porter_db_result_free(th_db_ok(0, conninfo, "DROP TABLE IF EXISTS seg_t"));
	porter_db_result_free(
		th_db_ok(0, conninfo, "CREATE TABLE seg_t (t int, i int, PRIMARY KEY (t, i))"));
	porter_db_result_free(th_db_ok(0, conninfo, "INSERT INTO seg_t VALUES (0, 0)"));
	pthread_t th[16];
	for (long i = 0; i < 16; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, seg_main, (void *)(i + 1)), 0);
	for (int i = 0; i < 16; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&seg_wrong), 0);
	ck_assert_int_eq(atomic_load(&seg_ok), 16 * 135);
	ck_assert_int_eq(atomic_load(&seg_dup), 16 * 15);
	/* Every acknowledged insert is there, nothing else. */
	ck_assert_int_eq(th_db_long(0, conninfo, "SELECT count(*) FROM seg_t WHERE t > 0"),
			 16 * 135);
	/* And inserts did share transactions (xmin is the inserting one). */
	long xacts =
		th_db_long(0, conninfo, "SELECT count(DISTINCT xmin::text) FROM seg_t WHERE t > 0");
	fprintf(stderr, "segments: %d inserts in %ld transactions\n", 16 * 135, xacts);
	ck_assert_int_lt(xacts, 16 * 135);
	porter_db_result_free(th_db_ok(0, conninfo, "DROP TABLE seg_t"));
	th_stop_clean(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {pipelined_pool_keeps_queries_apart,
				timeout_cancels_on_server,
				pooled_statements_prepared_and_kept_fresh,
				statement_cache_off,
				cancel_never_hits_the_next_query,
				pipelined_segments_keep_outcomes_apart,
				NULL};
	return th_suite("db_pool", "pool", 120, tests);
}

TH_MAIN(suite)
