/*
 * Integration tests of concurrency and control across every kind of
 * operation: a Batch joining database, HTTP and file members; a select
 * whose losers are verifiably stopped; and Cancel from another thread of a
 * long query, a slow HTTP request and a queued file read, with the cancel
 * latency (cancel sent to cancelled reply) measured and printed.
 *
 * Needs the `pg` ctest fixture (PORTER_PG_STATE) and starts the loopback
 * HTTP test server itself.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "httpd.h"
#include "porter.h"

static th_daemon d;
static th_httpd web;
static char conninfo[512];
static char root[128];
static char roots_arg[160];

static void read_conninfo(void)
{
	const char *state = getenv("PORTER_PG_STATE");
	ck_assert_msg(state && state[0], "PORTER_PG_STATE is not set (run through ctest)");
	char path[512];
	snprintf(path, sizeof(path), "%s/conninfo", state);
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "no %s: is the pg fixture running?", path);
	ck_assert(fgets(conninfo, sizeof(conninfo), f) != NULL);
	fclose(f);
	conninfo[strcspn(conninfo, "\n")] = 0;
}

static void put_file(const char *name, const void *data, size_t len)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", root, name);
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	fclose(f);
}

/* 1: the next setup() starts porterd without the loop fast path, so a
 * stat of a cached file waits for the pool like any other file request
 * instead of being answered on the worker loop before it can be caught
 * queued. */
static int pool_only;

/* Everything up: PostgreSQL (fixture), HTTP server, porterd with a root. */
static void setup(void)
{
	read_conninfo();
	snprintf(root, sizeof(root), "/tmp/porter-control-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	snprintf(roots_arg, sizeof(roots_arg), "main=%s", root);
	ck_assert_int_eq(th_httpd_start(&web), 0);
	const char *args[] = {"--file-roots",
			      roots_arg,
			      "--workers",
			      "2",
			      pool_only ? "--file-loop-fast-path=false"
					: "--file-loop-fast-path=true",
			      NULL};
	pool_only = 0;
	th_start(&d, args);
}

static void teardown(void)
{
	th_stop_clean(&d);
	th_httpd_stop(&web);
	ck_assert_int_eq(th_rm_rf(root), 0);
}

/* How many backends are running pg_sleep now (other than the asker). */
static int sleeping_backends(void)
{
	porter_db_result *r = NULL;
	const char *sql = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
			  "AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()";
	ck_assert_int_eq(porter_db_query(0, conninfo, sql, NULL, 0, 0, 5000, &r), 0);
	int n = atoi(porter_db_getvalue(r, 0, 0));
	porter_db_result_free(r);
	return n;
}

static void wait_no_sleepers(void)
{
	long long until = th_now_ms() + 5000;
	while (sleeping_backends() > 0 && th_now_ms() < until)
		usleep(20000);
	ck_assert_int_eq(sleeping_backends(), 0);
}

START_TEST(join_of_db_http_and_file_members)
{
	setup();
	const uint8_t blob[] = {'b', 0, 'i', 0, 'n'};
	put_file("blob", blob, sizeof(blob));
	char url[128];
	snprintf(url, sizeof(url), "%s/status/201", web.base);

	porter_batch *b = porter_batch_new(PORTER_BATCH_ALL);
	ck_assert_int_eq(porter_batch_add_db_query(b, 0, conninfo,
						   "SELECT 40 + 2 AS answer, pg_sleep(0.3)::text",
						   NULL, 0, 0),
			 0);
	ck_assert_int_eq(porter_batch_add_http(b, "GET", url, NULL, 0, NULL, 0, NULL, 0), 1);
	ck_assert_int_eq(porter_batch_add_file_read(b, "main", "blob", 0, 0, 0), 2);
	ck_assert_int_eq(porter_batch_add_file_read(b, "main", "missing", 0, 0, 0), 3);
	ck_assert_int_eq(porter_batch_add_db_query(b, 0, conninfo, "SELEC nonsense", NULL, 0, 0),
			 4);

	porter_batch_result *r = NULL;
	ck_assert_int_eq(porter_batch_run(b, 0, 10000, &r), 0);
	ck_assert_uint_eq(porter_batch_result_count(r), 5);

	porter_db_result *db = NULL;
	ck_assert_int_eq(porter_batch_result_status(r, 0), 0);
	ck_assert_int_eq(porter_batch_result_db(r, 0, &db), 0);
	ck_assert_str_eq(porter_db_fname(db, 0), "answer");
	ck_assert_str_eq(porter_db_getvalue(db, 0, 0), "42");
	porter_db_result_free(db);

	porter_http_response *h = NULL;
	ck_assert_int_eq(porter_batch_result_status(r, 1), 0);
	ck_assert_int_eq(porter_batch_result_http(r, 1, &h), 0);
	ck_assert_int_eq(porter_http_response_status(h), 201);
	porter_http_response_free(h);

	const void *data;
	size_t len;
	uint64_t size;
	ck_assert_int_eq(porter_batch_result_file_read(r, 2, &data, &len, &size), 0);
	ck_assert_uint_eq(len, sizeof(blob));
	ck_assert_uint_eq(size, sizeof(blob));
	ck_assert(memcmp(data, blob, len) == 0);

	/* Failures stay with their member, with their own details. */
	ck_assert_int_eq(porter_batch_result_status(r, 3), PORTER_E_FILE_NOT_FOUND);
	ck_assert_int_eq(porter_batch_result_file_read(r, 3, &data, &len, NULL), PORTER_E_INVAL);
	ck_assert_int_eq(porter_batch_result_status(r, 4), PORTER_E_DB);
	ck_assert_int_eq(porter_batch_result_db(r, 4, &db), 0);
	ck_assert_str_eq(porter_db_sqlstate(db), "42601");
	porter_db_result_free(db);

	porter_batch_result_free(r);
	porter_batch_free(b);
	th_expect_idle();
	teardown();
}
END_TEST

START_TEST(select_stops_the_slow_db_and_http_members)
{
	setup();
	put_file("fast", "quick", 5);
	char url[128];
	snprintf(url, sizeof(url), "%s/hang", web.base);

	porter_batch *b = porter_batch_new(PORTER_BATCH_FIRST);
	porter_batch_add_db_query(b, 0, conninfo, "SELECT pg_sleep(30)", NULL, 0, 0);
	porter_batch_add_http(b, "GET", url, NULL, 0, NULL, 0, NULL, 0);
	porter_batch_add_file_read(b, "main", "fast", 0, 0, 0);
	porter_batch_result *r = NULL;
	long long t0 = th_now_ms();
	ck_assert_int_eq(porter_batch_run(b, 0, 20000, &r), 0);
	ck_assert_int_lt(th_now_ms() - t0, 5000);
	ck_assert_int_eq(porter_batch_result_winner(r), 2);
	ck_assert_int_eq(porter_batch_result_status(r, 0), PORTER_E_CANCELLED);
	ck_assert_int_eq(porter_batch_result_status(r, 1), PORTER_E_CANCELLED);
	porter_batch_result_free(r);
	porter_batch_free(b);

	/* The losers really stopped: no backend still sleeping, no request
	 * left in the daemon. */
	wait_no_sleepers();
	th_expect_idle();
	teardown();
}
END_TEST

/* ---- cancel from another thread, with latency ---- */

enum kind { KIND_DB, KIND_HTTP, KIND_FILE };

typedef struct victim {
	pthread_t th;
	enum kind kind;
	_Atomic uint64_t id;
	atomic_int started;
	int rc;
	long long returned_at;
} victim;

static void *victim_main(void *arg)
{
	victim *v = arg;
	char url[128];
	ck_assert_int_eq(porter_ping("warm", 4, 0, 2000), 0);
	atomic_store(&v->id, porter_call_id_new());
	atomic_store(&v->started, 1);
	switch (v->kind) {
	case KIND_DB: {
		porter_db_result *r = NULL;
		v->rc = porter_db_query(0, conninfo, "SELECT pg_sleep(30)", NULL, 0,
					atomic_load(&v->id), 60000, &r);
		porter_db_result_free(r);
		break;
	}
	case KIND_HTTP: {
		porter_http_response *h = NULL;
		snprintf(url, sizeof(url), "%s/hang", web.base);
		v->rc = porter_http_get(url, atomic_load(&v->id), 60000, &h);
		porter_http_response_free(h);
		break;
	}
	case KIND_FILE: {
		porter_file_info fi = PORTER_FILE_INFO_INIT;
		v->rc = porter_file_stat("main", "big", atomic_load(&v->id), 60000, &fi);
		break;
	}
	}
	v->returned_at = th_now_ms();
	porter_thread_disconnect();
	return NULL;
}

/* Keeps the daemon's only pool thread busy, so a file request queues. */
static atomic_int flood_stop;

static void *flood_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&flood_stop)) {
		porter_file_list *l = NULL;
		if (porter_file_list_dir("main", "many", 0, 30000, &l) == 0)
			porter_file_list_free(l);
	}
	porter_thread_disconnect();
	return NULL;
}

static long long cancel_one(enum kind kind, int settle_ms)
{
	victim v = {0};
	v.kind = kind;
	ck_assert_int_eq(pthread_create(&v.th, NULL, victim_main, &v), 0);
	while (!atomic_load(&v.started))
		usleep(1000);
	usleep((useconds_t)settle_ms * 1000); /* the request is in the daemon now */
	long long t0 = th_now_ms();
	int rc = porter_cancel(atomic_load(&v.id), 5000);
	pthread_join(v.th, NULL);
	ck_assert_msg(rc == 0, "cancel of kind %d: %s", (int)kind, porter_error_name(rc));
	ck_assert_msg(v.rc == PORTER_E_CANCELLED, "cancelled call returned %s",
		      porter_error_name(v.rc));
	return v.returned_at - t0;
}

START_TEST(cancel_each_kind_from_another_thread)
{
	/* One pool thread, so that a file request can be caught queued. */
	setenv("UV_THREADPOOL_SIZE", "1", 1);
	pool_only = 1;
	setup();
	unsetenv("UV_THREADPOOL_SIZE");

	long long db = cancel_one(KIND_DB, 300);
	wait_no_sleepers(); /* cancelled on the server, not just abandoned */

	long long http = cancel_one(KIND_HTTP, 300);

	char p[256];
	snprintf(p, sizeof(p), "%s/many", root);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	for (int i = 0; i < 20000; i++) {
		char name[32];
		snprintf(name, sizeof(name), "many/f%d", i);
		put_file(name, "x", 1);
	}
	put_file("big", "x", 1);
	enum { FLOODERS = 32 };
	pthread_t fl[FLOODERS];
	atomic_store(&flood_stop, 0);
	for (int i = 0; i < FLOODERS; i++)
		pthread_create(&fl[i], NULL, flood_main, NULL);
	usleep(200000);
	long long file = cancel_one(KIND_FILE, 30);
	atomic_store(&flood_stop, 1);
	for (int i = 0; i < FLOODERS; i++)
		pthread_join(fl[i], NULL);

	printf("cancel latency, cancel sent to cancelled reply: database query %lld ms, "
	       "HTTP request %lld ms, queued file request %lld ms\n",
	       db, http, file);
	ck_assert_int_lt(db, 3000);
	ck_assert_int_lt(http, 3000);
	ck_assert_int_lt(file, 3000);
	th_expect_idle();
	teardown();
}
END_TEST

typedef struct resources {
	uint64_t fds, db, http;
} resources;

static resources resources_now(void)
{
	porter_stats_snapshot *s = NULL;
	ck_assert_int_eq(porter_stats(0, 2000, &s), 0);
	resources r = {porter_stats_open_fds(s), porter_stats_db_connections(s),
		       porter_stats_http_transfers(s)};
	porter_stats_free(s);
	return r;
}

static void run_mixed_batch(int sleep_s)
{
	char sql[64], url[128];
	snprintf(sql, sizeof(sql), "SELECT pg_sleep(%d)", sleep_s);
	snprintf(url, sizeof(url), "%s/%s", web.base, sleep_s ? "hang" : "status/200");
	porter_batch *b = porter_batch_new(PORTER_BATCH_ALL);
	porter_batch_add_db_query(b, 0, conninfo, sql, NULL, 0, 0);
	porter_batch_add_http(b, "GET", url, NULL, 0, NULL, 0, NULL, 0);
	porter_batch_add_file_read(b, "main", "fast", 0, 0, 0);
	porter_batch_result *r = NULL;
	porter_batch_run(b, 0, 60000, &r);
	porter_batch_result_free(r);
	porter_batch_free(b);
}

START_TEST(client_killed_mid_batch_releases_everything)
{
	setup();
	put_file("fast", "quick", 5);
	/* Warm the pools, then take the baseline. */
	run_mixed_batch(0);
	usleep(200000);
	resources base = resources_now();
	ck_assert_uint_eq(base.http, 0);

	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		run_mixed_batch(30);
		_exit(0);
	}
	long long until = th_now_ms() + 5000;
	while ((resources_now().http == 0 || sleeping_backends() == 0) && th_now_ms() < until)
		usleep(20000);
	resources busy = resources_now();
	ck_assert_uint_ge(busy.http, 1);
	ck_assert_int_ge(sleeping_backends(), 1);

	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	/* Its work is cancelled and its resources freed: the query stopped on
	 * the server, the transfer and its socket gone, no connection left
	 * beyond the pools. */
	wait_no_sleepers();
	until = th_now_ms() + 5000;
	resources after;
	do {
		after = resources_now();
		if (after.http == 0 && after.db <= busy.db && after.fds < busy.fds)
			break;
		usleep(20000);
	} while (th_now_ms() < until);
	printf("resources before / during / after the killed client: fds %llu/%llu/%llu, "
	       "PostgreSQL connections %llu/%llu/%llu, HTTP transfers %llu/%llu/%llu\n",
	       (unsigned long long)base.fds, (unsigned long long)busy.fds,
	       (unsigned long long)after.fds, (unsigned long long)base.db,
	       (unsigned long long)busy.db, (unsigned long long)after.db,
	       (unsigned long long)base.http, (unsigned long long)busy.http,
	       (unsigned long long)after.http);
	/* This test's own pg_stat_activity queries may have grown the pool
	 * while the killed query held a connection, so the bound is "no
	 * more than during"; the HTTP socket to /hang must be gone. */
	ck_assert_uint_eq(after.http, 0);
	ck_assert_uint_le(after.db, busy.db);
	ck_assert_uint_lt(after.fds, busy.fds);
	th_expect_idle();
	teardown();
}
END_TEST

typedef struct session_call {
	pthread_t th;
	uint64_t session;
	_Atomic uint64_t id;
	atomic_int started;
	int rc;
} session_call;

static void *session_sleep_main(void *arg)
{
	session_call *sc = arg;
	porter_db_result *r = NULL;
	ck_assert_int_eq(porter_ping("warm", 4, 0, 2000), 0); /* a connection of its own */
	atomic_store(&sc->id, porter_call_id_new());
	atomic_store(&sc->started, 1);
	sc->rc = porter_db_query(sc->session, NULL, "SELECT pg_sleep(5)", NULL, 0,
				 atomic_load(&sc->id), 30000, &r);
	porter_db_result_free(r);
	porter_thread_disconnect();
	return NULL;
}

START_TEST(cancel_reaches_a_session_query_on_another_worker)
{
	setup();
	uint64_t session = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &session), 0);
	/* Each call comes from a new thread, so a new connection, which the
	 * acceptor spreads over the two workers: some of these queries are
	 * forwarded to the session's worker. Cancelling each must stop it
	 * there, freeing the session at once rather than after the sleep. */
	for (int i = 0; i < 4; i++) {
		session_call sc = {.session = session};
		ck_assert_int_eq(pthread_create(&sc.th, NULL, session_sleep_main, &sc), 0);
		while (!atomic_load(&sc.started))
			usleep(1000);
		usleep(300000);
		/* A Cancel that overtakes its query on a loaded machine is
		 * remembered (NOT_FOUND) and the query refused on arrival;
		 * either way the call ends cancelled. */
		int crc = porter_cancel(atomic_load(&sc.id), 5000);
		ck_assert_msg(crc == 0 || crc == PORTER_E_NOT_FOUND, "cancel: %s",
			      porter_error_name(crc));
		pthread_join(sc.th, NULL);
		ck_assert_int_eq(sc.rc, PORTER_E_CANCELLED);
		long long t0 = th_now_ms();
		porter_db_result *r = NULL;
		ck_assert_int_eq(porter_db_query(session, NULL, "SELECT 1", NULL, 0, 0, 10000, &r),
				 0);
		porter_db_result_free(r);
		ck_assert_int_lt(th_now_ms() - t0, 2000);
	}
	wait_no_sleepers();
	ck_assert_int_eq(porter_db_close(session, 0, 5000), 0);
	teardown();
}
END_TEST

START_TEST(pooled_query_after_a_pooled_stream)
{
	setup();
	/* One pooled connection, so the three calls share it: a stream in
	 * single-row mode, then ordinary (pipelined) queries. */
	porter_thread_disconnect();
	th_daemon_stop(&d);
	th_daemon_cleanup(&d);
	const char *args[] = {"--file-roots",   roots_arg, "--workers", "1",
			      "--db-pool-size", "1",       NULL};
	th_start(&d, args);
	porter_db_param p = {"x", 1, 0, 0};
	for (int round = 0; round < 3; round++) {
		porter_db_result *r = NULL;
		ck_assert_int_eq(
			porter_db_query(0, conninfo, "SELECT $1::text AS v", &p, 1, 0, 5000, &r),
			0);
		ck_assert_int_eq(porter_db_nfields(r), 1);
		ck_assert_str_eq(porter_db_getvalue(r, 0, 0), "x");
		porter_db_result_free(r);

		porter_db_cursor *cur = NULL;
		ck_assert_int_eq(porter_db_cursor_open(0, conninfo, "SELECT generate_series(1, 50)",
						       NULL, 0, 20, 0, 0, 5000, &cur),
				 0);
		porter_db_result *chunk = NULL;
		int rows = 0, rc;
		while ((rc = porter_db_cursor_read(cur, 0, 5000, &chunk)) == 1) {
			rows += porter_db_ntuples(chunk);
			porter_db_result_free(chunk);
			chunk = NULL;
		}
		porter_db_result_free(chunk);
		porter_db_cursor_close(cur, 1000);
		ck_assert_int_ge(rc, 0);
		ck_assert_int_ge(rows, 30); /* the chunks after the first */

		ck_assert_int_eq(
			porter_db_query(0, conninfo, "SELECT $1::text AS v", &p, 1, 0, 5000, &r),
			0);
		ck_assert_int_eq(porter_db_nfields(r), 1);
		ck_assert_str_eq(porter_db_fname(r, 0), "v");
		ck_assert_str_eq(porter_db_getvalue(r, 0, 0), "x");
		ck_assert_str_eq(porter_db_cmdstatus(r), "SELECT 1");
		porter_db_result_free(r);
	}
	teardown();
}
END_TEST

/* Runs porterctl `a` [`b`] (b may be NULL) with `json` (not NULL) on its
 * standard input; returns its exit status and its output in `out`. */
static int porterctl_batch(const char *a, const char *b, const char *json, char *out, size_t cap)
{
	return th_ctl(json, strlen(json), TH_ERR_KEEP, out, cap, a, b, NULL);
}

START_TEST(porterctl_batch_reads_a_json_list)
{
	setup();
	put_file("fast", "quick", 5);
	char json[1024], out[4096];
	snprintf(json, sizeof(json),
		 "[{\"op\":\"db\",\"conninfo\":\"%s\",\"sql\":\"SELECT $1::int * 2\","
		 "\"params\":[\"21\"]},"
		 " {\"op\":\"http\",\"method\":\"GET\",\"url\":\"%s/status/204\"},"
		 " {\"op\":\"file_read\",\"root\":\"main\",\"path\":\"fast\"},"
		 " {\"op\":\"ping\",\"payload\":\"a\\u0000b\"}]",
		 conninfo, web.base);
	ck_assert_int_eq(porterctl_batch("--json", "batch", json, out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "\"winner\":-1"), "%s", out);
	ck_assert_msg(strstr(out, "SELECT 1, 1 row(s), first value 42"), "%s", out);
	ck_assert_msg(strstr(out, "HTTP 204, 0 body bytes"), "%s", out);
	ck_assert_msg(strstr(out, "5 of 5 bytes"), "%s", out);
	ck_assert_msg(strstr(out, "echoed 3 bytes"), "%s", out);

	/* A member's failure: exit 1, the others still reported. */
	ck_assert_int_eq(
		porterctl_batch("batch", NULL,
				"[{\"op\":\"file_read\",\"root\":\"main\",\"path\":\"nope\"},"
				" {\"op\":\"ping\"}]",
				out, sizeof(out)),
		1);
	ck_assert_msg(strstr(out, "PORTER_E_FILE_NOT_FOUND"), "%s", out);
	ck_assert_msg(strstr(out, "echoed 0 bytes"), "%s", out);

	/* Select: the fast member wins. */
	ck_assert_int_eq(porterctl_batch("batch", "--first",
					 "[{\"op\":\"ping\",\"delay_ms\":5000},{\"op\":\"ping\"}]",
					 out, sizeof(out)),
			 0);
	ck_assert_msg(strstr(out, "winner: 1"), "%s", out);

	/* Bad input is a failed operation (exit 1; 2 is for the command line
	 * itself), with the reason. */
	ck_assert_int_eq(porterctl_batch("batch", NULL, "[{\"op\":\"ping\",]", out, sizeof(out)),
			 1);
	ck_assert_int_eq(
		porterctl_batch("batch", NULL, "[{\"op\":\"teleport\"}]", out, sizeof(out)), 1);
	ck_assert_int_eq(porterctl_batch("batch", NULL, "{}", out, sizeof(out)), 1);
	teardown();
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {join_of_db_http_and_file_members,
				select_stops_the_slow_db_and_http_members,
				cancel_each_kind_from_another_thread,
				client_killed_mid_batch_releases_everything,
				porterctl_batch_reads_a_json_list,
				cancel_reaches_a_session_query_on_another_worker,
				pooled_query_after_a_pooled_stream,
				NULL};
	return th_suite("control", "core", 120, tests);
}

TH_MAIN(suite)
