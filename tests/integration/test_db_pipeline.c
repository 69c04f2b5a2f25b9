/*
 * Pipelining that learns: porterd pipelines only statements it has seen
 * run fast on the pool, so slow queries never line up behind each other or
 * in front of a fast one. Real porterd, real PostgreSQL (the `pg` ctest
 * fixture), one worker and a pool of 8.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "porter_errors.h"
#include "rawc.h"
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

/*
 * A query known to be fast, arriving while the pool's connections are
 * being made for slow ones, runs on the first of them that is ready (its
 * slow query moves to a new connection) instead of opening a connection of
 * its own behind them: PostgreSQL forks and authenticates connections in
 * turn, so that one was ready last (a bystander's SELECT 1 took 250-400 ms
 * at load 15 beside 16 pg_sleep(0.3) on a pool of 8).
 *
 * Asserted by which backend served it, not by its latency: the test holds
 * pg_db_role_setting locked in a session of its own, which every new
 * backend reads while it starts, so the pool's new connections stay
 * unready, whatever the machine's load, until the lock is given back.
 * 16 sleepers fill the pool (the warm connection and 7 new ones waiting
 * on the lock, 8 queued); then the bystander's SELECT pg_backend_pid()
 * reaches porterd (its stats count it); then the lock goes. Its backend
 * must be one that existed or was being made before it came. Before, it
 * opened the pool's 9th connection (a backend of its own).
 */
#define FILL_SLEEPERS 16
#define FILL_NEW 7 /* the pool's size less its warm connection */
#define PID_SQL "SELECT pg_backend_pid()"
#define WAITING_SQL                                                                                \
	"SELECT pid FROM pg_locks WHERE locktype = 'relation' AND NOT granted AND "                \
	"relation = 'pg_catalog.pg_db_role_setting'::regclass ORDER BY pid"

static pthread_barrier_t g_connected, g_fill, g_bystander;
static char g_by_pid[32];

/* Each client thread makes its connection to porterd (a ping) before the
 * counting starts, so porterd's request count then grows by queries only. */
static void connect_and_wait(void)
{
	if (porter_ping("x", 1, 0, 10000) != 0)
		atomic_fetch_add(&g_sleep_failed, 1);
	pthread_barrier_wait(&g_connected);
}

static void *fill_sleeper(void *arg)
{
	(void)arg;
	connect_and_wait();
	pthread_barrier_wait(&g_fill);
	if (timed("SELECT pg_sleep(0.5)", 30000) < 0)
		atomic_fetch_add(&g_sleep_failed, 1);
	return NULL;
}

static void *pid_bystander(void *arg)
{
	(void)arg;
	connect_and_wait();
	pthread_barrier_wait(&g_bystander);
	porter_db_result *r = NULL;
	if (porter_db_query(0, conninfo, PID_SQL, NULL, 0, 0, 30000, &r) == 0 &&
	    porter_db_ntuples(r) == 1)
		snprintf(g_by_pid, sizeof(g_by_pid), "%s", porter_db_getvalue(r, 0, 0));
	porter_db_result_free(r);
	return NULL;
}

/* porterd's requests received since it started, less the `*calls`
 * requests the test's own thread made since counting began (this one
 * included: a Stats request counts itself). */
static long long requests_seen(int *calls)
{
	porter_stats_snapshot *s = NULL;
	porter_worker_stats w = PORTER_WORKER_STATS_INIT;
	ck_assert_int_eq(porter_stats(0, 5000, &s), 0);
	ck_assert_int_eq(porter_stats_worker(s, 0, &w), 0);
	porter_stats_free(s);
	return (long long)w.requests - ++*calls;
}

/* Waits (up to 30 s) until porterd has received `want` requests. */
static void await_requests(long long want, int *calls)
{
	long long t0 = th_now_ms(), seen;
	while ((seen = requests_seen(calls)) < want && th_now_ms() - t0 < 30000)
		usleep(5000);
	ck_assert_int_eq(seen, want);
}

/* Waits (up to 30 s) until `n` backends wait for the lock; their pids go
 * to `pids` as one comma-separated text. Counts its queries in `*calls`. */
static void await_waiting(uint64_t session, int n, char *pids, size_t cap, int *calls)
{
	long long t0 = th_now_ms();
	for (;;) {
		porter_db_result *r = th_db_ok(session, NULL, WAITING_SQL);
		++*calls;
		int got = porter_db_ntuples(r);
		pids[0] = ',';
		pids[1] = '\0';
		for (int i = 0; i < got; i++) {
			strncat(pids, porter_db_getvalue(r, i, 0), cap - strlen(pids) - 2);
			strncat(pids, ",", cap - strlen(pids) - 1);
		}
		porter_db_result_free(r);
		if (got >= n || th_now_ms() - t0 > 30000) {
			ck_assert_msg(got == n, "%d backends wait for the lock, not %d", got, n);
			return;
		}
		usleep(10000);
	}
}

START_TEST(a_fast_query_takes_the_first_connection_ready)
{
	start();
	/* Learnt fast, on the pool's one (warm) connection. */
	char warm[32] = "";
	for (int i = 0; i < 10; i++) {
		porter_db_result *r = th_db_ok(0, conninfo, PID_SQL);
		snprintf(warm, sizeof(warm), ",%s,", porter_db_getvalue(r, 0, 0));
		porter_db_result_free(r);
	}
	uint64_t locker = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 10000, &locker), 0);
	atomic_store(&g_sleep_failed, 0);
	g_by_pid[0] = '\0';
	ck_assert_int_eq(pthread_barrier_init(&g_connected, NULL, FILL_SLEEPERS + 2), 0);
	ck_assert_int_eq(pthread_barrier_init(&g_fill, NULL, FILL_SLEEPERS + 1), 0);
	ck_assert_int_eq(pthread_barrier_init(&g_bystander, NULL, 2), 0);
	pthread_t th[FILL_SLEEPERS + 1];
	for (int i = 0; i < FILL_SLEEPERS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, fill_sleeper, NULL), 0);
	ck_assert_int_eq(pthread_create(&th[FILL_SLEEPERS], NULL, pid_bystander, NULL), 0);
	pthread_barrier_wait(&g_connected);

	porter_db_result_free(th_db_ok(locker, NULL, "BEGIN"));
	porter_db_result_free(th_db_ok(
		locker, NULL, "LOCK TABLE pg_catalog.pg_db_role_setting IN ACCESS EXCLUSIVE MODE"));
	int calls = 0;
	long long base = requests_seen(&calls);
	pthread_barrier_wait(&g_fill);
	await_requests(base + FILL_SLEEPERS, &calls);
	char before[512];
	await_waiting(locker, FILL_NEW, before, sizeof(before), &calls);
	pthread_barrier_wait(&g_bystander);
	await_requests(base + FILL_SLEEPERS + 1, &calls);
	/* The request is in the pool now: it was dispatched as it was read. */
	porter_db_result_free(th_db_ok(locker, NULL, "COMMIT"));

	for (int i = 0; i <= FILL_SLEEPERS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&g_connected);
	pthread_barrier_destroy(&g_fill);
	pthread_barrier_destroy(&g_bystander);
	ck_assert_int_eq(porter_db_close(locker, 0, 5000), 0);
	ck_assert_int_eq(atomic_load(&g_sleep_failed), 0);
	ck_assert_msg(g_by_pid[0], "the bystander's query failed");
	char mine[40];
	snprintf(mine, sizeof(mine), ",%s,", g_by_pid);
	fprintf(stderr, "bystander on backend %s; warm %s, being made before it came %s\n",
		g_by_pid, warm, before);
	ck_assert_msg(strstr(before, mine) || strcmp(warm, mine) == 0,
		      "the bystander ran on backend %s, made after it came (warm %s, being made "
		      "before %s)",
		      g_by_pid, warm, before);
	/* The sleeper it displaced took the lane's connection: the pool holds
	 * at most its 8 and the lane's (the locking session is closed). */
	porter_stats_snapshot *s = NULL;
	ck_assert_int_eq(porter_stats(0, 5000, &s), 0);
	uint64_t dbconns = porter_stats_db_connections(s);
	porter_stats_free(s);
	ck_assert_msg(dbconns <= 9, "porterd holds %llu PostgreSQL connections",
		      (unsigned long long)dbconns);
	th_stop_clean(&d);
}
END_TEST

/*
 * A pipelined query stopped in the loop turn it came in, while it still
 * waits in porterd for the end of the turn (a segment's queries reach
 * libpq only then, with their Sync), keeps its place in the pipeline: the
 * query gathered behind it gets its own answer, and so does every query
 * after. One raw connection writes a query, a Cancel of it and a second
 * query in one write, so porterd reads all three in one turn; SELECT $1::int
 * was learnt fast on the same connection first, so both are pipelined on
 * the pool's one warm connection. Without the stopped query handed to
 * libpq before its op was answered, the segment could not be sent and the
 * second query failed with the connection.
 */
static Porter__V1__Request *int_query(uint64_t id, Porter__V1__DbQuery *q, Porter__V1__DbParam *par,
				      Porter__V1__DbParam **pars, Porter__V1__Request *req,
				      char *text)
{
	porter__v1__request__init(req);
	porter__v1__db_query__init(q);
	porter__v1__db_param__init(par);
	par->value.data = (uint8_t *)text;
	par->value.len = strlen(text);
	pars[0] = par;
	q->conninfo = conninfo;
	q->sql = "SELECT $1::int";
	q->params = pars;
	q->n_params = 1;
	req->id = id;
	req->timeout_ms = 10000;
	req->body_case = PORTER__V1__REQUEST__BODY_DB_QUERY;
	req->db_query = q;
	return req;
}

/* The one value of a DbQuery reply, or "" when it is not one. */
static void reply_value(const Porter__V1__Response *r, char *out, size_t cap)
{
	out[0] = '\0';
	if (r->status == 0 && r->body_case == PORTER__V1__RESPONSE__BODY_DB_QUERY &&
	    r->db_query->n_results == 1 && r->db_query->results[0]->n_rows == 1 &&
	    r->db_query->results[0]->rows[0]->n_values == 1) {
		const ProtobufCBinaryData *v = &r->db_query->results[0]->rows[0]->values[0];
		snprintf(out, cap, "%.*s", (int)v->len, (const char *)v->data);
	}
}

START_TEST(a_query_stopped_while_gathered_keeps_its_place)
{
	start();
	frame_reader rd;
	frame_reader_init(&rd, 1u << 20);
	int fd = th_rc_open(d.socket, &rd, 10000, NULL);
	ck_assert_int_ge(fd, 0);
	Porter__V1__DbQuery q[3];
	Porter__V1__DbParam par[3], *pars[3][1];
	Porter__V1__Request req[3];
	char text[3][16], got[16];
	for (int i = 0; i < 25; i++) {
		snprintf(text[0], sizeof(text[0]), "%d", 100 + i);
		Porter__V1__Response *r = th_rc_call(
			fd, &rd, int_query(1 + i, &q[0], &par[0], pars[0], &req[0], text[0]),
			10000);
		ck_assert_ptr_nonnull(r);
		reply_value(r, got, sizeof(got));
		ck_assert_msg(strcmp(got, text[0]) == 0, "query %d: status %d (%s), value '%s'", i,
			      r->status, r->message ? r->message : "", got);
		porter__v1__response__free_unpacked(r, NULL);
		if (i == 4) {
			/* Learnt fast: the three that follow go in one turn. */
			snprintf(text[1], sizeof(text[1]), "1");
			snprintf(text[2], sizeof(text[2]), "2");
			Porter__V1__Cancel cancel = PORTER__V1__CANCEL__INIT;
			cancel.target_id = 1000;
			porter__v1__request__init(&req[1]);
			req[1].id = 1001;
			req[1].timeout_ms = 10000;
			req[1].body_case = PORTER__V1__REQUEST__BODY_CANCEL;
			req[1].cancel = &cancel;
			uint8_t *a = NULL, *b = NULL, *c = NULL, all[4096];
			size_t la, lb, lc;
			ck_assert_int_eq(frame_pack(&int_query(1000, &q[0], &par[0], pars[0],
							       &req[0], text[1])
							     ->base,
						    1u << 20, &a, &la),
					 0);
			ck_assert_int_eq(frame_pack(&req[1].base, 1u << 20, &b, &lb), 0);
			ck_assert_int_eq(frame_pack(&int_query(1002, &q[2], &par[2], pars[2],
							       &req[2], text[2])
							     ->base,
						    1u << 20, &c, &lc),
					 0);
			ck_assert_uint_le(la + lb + lc, sizeof(all));
			memcpy(all, a, la);
			memcpy(all + la, b, lb);
			memcpy(all + la + lb, c, lc);
			free(a);
			free(b);
			free(c);
			ck_assert_int_eq(send(fd, all, la + lb + lc, MSG_NOSIGNAL),
					 (ssize_t)(la + lb + lc));
			int stopped = 0, told = 0, second = 0;
			for (int k = 0; k < 3; k++) {
				Porter__V1__Response *x = th_rc_recv(fd, &rd, 10000);
				ck_assert_ptr_nonnull(x);
				if (x->id == 1000) {
					stopped = x->status == PORTER_E_CANCELLED;
				} else if (x->id == 1001) {
					told = x->status == 0 &&
					       x->body_case == PORTER__V1__RESPONSE__BODY_CANCEL &&
					       x->cancel->found;
				} else {
					ck_assert_uint_eq(x->id, 1002);
					reply_value(x, got, sizeof(got));
					ck_assert_msg(
						strcmp(got, "2") == 0,
						"the query behind: status %d (%s), value '%s'",
						x->status, x->message ? x->message : "", got);
					second = 1;
				}
				porter__v1__response__free_unpacked(x, NULL);
			}
			ck_assert_msg(stopped && told && second,
				      "cancelled %d, cancel found %d, second answered %d", stopped,
				      told, second);
		}
	}
	close(fd);
	frame_reader_free(&rd);
	th_stop_clean(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {slow_queries_never_stack,
				a_statement_that_turns_slow_leaves_the_pipelines,
				a_fast_query_takes_the_first_connection_ready,
				a_query_stopped_while_gathered_keeps_its_place, NULL};
	return th_suite("db_pipeline", "core", 120, tests);
}

TH_MAIN(suite)
