/*
 * Integration tests of PostgreSQL through porterd: a real porterd and the
 * real PostgreSQL 15 that the `pg` ctest fixture (tests/support/pg.sh)
 * started; its connection strings are read from $PORTER_PG_STATE.
 */
#include <arpa/inet.h>
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "porter.pb-c.h"

static th_daemon d;
static char conninfo[512];    /* Unix socket, superuser, trust */
static char conninfo_pw[512]; /* TCP, password role */

static void setup_pg(void)
{
	th_pg_file("conninfo", conninfo, sizeof(conninfo));
	th_pg_file("conninfo_pw", conninfo_pw, sizeof(conninfo_pw));
}

static void start(const char *const *extra)
{
	setup_pg();
	const char *def[] = {"--workers", "4", "--db-session-grace", "500", NULL};
	ck_assert_msg(th_daemon_start(&d, extra ? extra : def) == 0, "porterd did not start");
}

/* Runs `sql` and asserts success; returns the result (caller frees). */
static porter_db_result *q_ok(uint64_t s, const char *ci, const char *sql)
{
	porter_db_result *r = NULL;
	int rc = porter_db_query(s, ci, sql, NULL, 0, 0, 10000, &r);
	ck_assert_msg(rc == 0, "%s: %s (%s)", sql, porter_error_name(rc),
		      porter_last_error_message());
	ck_assert_ptr_nonnull(r);
	return r;
}

static long q_long(uint64_t s, const char *ci, const char *sql)
{
	porter_db_result *r = q_ok(s, ci, sql);
	ck_assert_int_eq(porter_db_ntuples(r), 1);
	long v = atol(porter_db_getvalue(r, 0, 0));
	porter_db_result_free(r);
	return v;
}

START_TEST(types_nulls_and_multi_statement)
{
	start(NULL);
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &s), 0);
	ck_assert(s != 0);

	porter_db_result *r =
		q_ok(s, NULL,
		     "SELECT 42::int4 AS i, 'héllo'::text AS t, NULL::text AS n, ''::text AS e, "
		     "1.5::float8 AS f, true AS b, '2024-01-02'::date AS d, 12345678901234::int8 "
		     "AS big");
	ck_assert_int_eq(porter_db_status(r), 0);
	ck_assert_int_eq(porter_db_ntuples(r), 1);
	ck_assert_int_eq(porter_db_nfields(r), 8);
	ck_assert_str_eq(porter_db_fname(r, 0), "i");
	ck_assert_str_eq(porter_db_fname(r, 3), "e");
	ck_assert_uint_eq(porter_db_ftype(r, 0), 23);
	ck_assert_uint_eq(porter_db_ftype(r, 1), 25);
	ck_assert_uint_eq(porter_db_ftype(r, 4), 701);
	ck_assert_uint_eq(porter_db_ftype(r, 5), 16);
	ck_assert_uint_eq(porter_db_ftype(r, 6), 1082);
	ck_assert_uint_eq(porter_db_ftype(r, 7), 20);
	ck_assert_str_eq(porter_db_getvalue(r, 0, 0), "42");
	ck_assert_str_eq(porter_db_getvalue(r, 0, 1), "héllo");
	ck_assert_int_eq(porter_db_getlength(r, 0, 1), 6);
	ck_assert_int_eq(porter_db_getisnull(r, 0, 2), 1);
	ck_assert_str_eq(porter_db_getvalue(r, 0, 2), "");
	ck_assert_int_eq(porter_db_getisnull(r, 0, 3), 0);
	ck_assert_int_eq(porter_db_getlength(r, 0, 3), 0);
	ck_assert_str_eq(porter_db_getvalue(r, 0, 4), "1.5");
	ck_assert_str_eq(porter_db_getvalue(r, 0, 5), "t");
	ck_assert_str_eq(porter_db_getvalue(r, 0, 6), "2024-01-02");
	ck_assert_str_eq(porter_db_getvalue(r, 0, 7), "12345678901234");
	ck_assert_ptr_null(porter_db_getvalue(r, 1, 0));
	ck_assert_str_eq(porter_db_cmdstatus(r), "SELECT 1");
	porter_db_result_free(r);

	/* DDL and several statements in one string: one part each. */
	r = q_ok(s, NULL,
		 "CREATE TEMP TABLE t (a int, b text); "
		 "INSERT INTO t VALUES (1, 'x'), (2, NULL), (3, ''); "
		 "UPDATE t SET b = 'y' WHERE a >= 2; "
		 "SELECT a, b FROM t ORDER BY a");
	ck_assert_uint_eq(porter_db_nresults(r), 4);
	ck_assert_str_eq(porter_db_cmdstatus(r), "SELECT 3");
	ck_assert_int_eq(porter_db_ntuples(r), 3);
	ck_assert_str_eq(porter_db_getvalue(r, 2, 1), "y");
	ck_assert_int_eq(porter_db_select(r, 0), 0);
	ck_assert_str_eq(porter_db_cmdstatus(r), "CREATE TABLE");
	ck_assert_int_eq(porter_db_select(r, 1), 0);
	ck_assert_str_eq(porter_db_cmdstatus(r), "INSERT 0 3");
	ck_assert_uint_eq(porter_db_cmdtuples(r), 3);
	ck_assert_int_eq(porter_db_select(r, 2), 0);
	ck_assert_uint_eq(porter_db_cmdtuples(r), 2);
	ck_assert_int_eq(porter_db_select(r, 4), PORTER_E_INVAL);
	porter_db_result_free(r);

	/* An empty result keeps its columns. */
	r = q_ok(s, NULL, "SELECT a, b FROM t WHERE false");
	ck_assert_int_eq(porter_db_ntuples(r), 0);
	ck_assert_int_eq(porter_db_nfields(r), 2);
	porter_db_result_free(r);

	ck_assert_int_eq(porter_db_close(s, 0, 5000), 0);
	ck_assert_int_eq(porter_db_close(s, 0, 5000), PORTER_E_DB_SESSION);
	r = NULL;
	ck_assert_int_eq(porter_db_query(s, NULL, "SELECT 1", NULL, 0, 0, 5000, &r),
			 PORTER_E_DB_SESSION);
	porter_db_result_free(r);
	th_stop_clean(&d);
}
END_TEST

START_TEST(parameters_text_binary_null)
{
	start(NULL);
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &s), 0);
	porter_db_result_free(q_ok(s, NULL, "CREATE TEMP TABLE b (id int, x bytea, t text)"));

	static const unsigned char blob[] = {0x00, 0x01, 0x00, 0xff, 0x00, 'a', 0x00};
	porter_db_param p[3] = {
		{"7", 1, 0, 0},              /* text, inferred int */
		{blob, sizeof(blob), 1, 17}, /* binary bytea with NULs */
		{NULL, 0, 0, 0},             /* SQL NULL */
	};
	porter_db_result *r = NULL;
	int rc = porter_db_query(s, NULL, "INSERT INTO b VALUES ($1, $2, $3)", p, 3, 0, 5000, &r);
	ck_assert_msg(rc == 0, "%s", porter_last_error_message());
	ck_assert_uint_eq(porter_db_cmdtuples(r), 1);
	porter_db_result_free(r);

	/* The bytes arrived intact, and the NULL is a NULL. */
	porter_db_param q[1] = {{blob, sizeof(blob), 1, 17}};
	rc = porter_db_query(
		s, NULL,
		"SELECT x = $1, length(x), encode(x, 'hex'), t IS NULL, t, x FROM b WHERE id = 7",
		q, 1, 0, 5000, &r);
	ck_assert_msg(rc == 0, "%s", porter_last_error_message());
	ck_assert_int_eq(porter_db_ntuples(r), 1);
	ck_assert_str_eq(porter_db_getvalue(r, 0, 0), "t");
	ck_assert_str_eq(porter_db_getvalue(r, 0, 1), "7");
	ck_assert_str_eq(porter_db_getvalue(r, 0, 2), "000100ff006100");
	ck_assert_str_eq(porter_db_getvalue(r, 0, 3), "t");
	ck_assert_int_eq(porter_db_getisnull(r, 0, 4), 1);
	ck_assert_str_eq(porter_db_getvalue(r, 0, 5), "\\x000100ff006100");
	porter_db_result_free(r);

	/* Text parameters of length 0 are the empty string, not NULL. */
	porter_db_param e[2] = {{"", 0, 0, 25}, {NULL, 0, 0, 25}};
	rc = porter_db_query(s, NULL, "SELECT $1::text IS NULL, length($1::text), $2::text IS NULL",
			     e, 2, 0, 5000, &r);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(porter_db_getvalue(r, 0, 0), "f");
	ck_assert_str_eq(porter_db_getvalue(r, 0, 1), "0");
	ck_assert_str_eq(porter_db_getvalue(r, 0, 2), "t");
	porter_db_result_free(r);

	/* A text parameter that is not NUL-terminated is read by length. */
	const char buf[] = "123456";
	porter_db_param l[1] = {{buf, 3, 0, 0}};
	rc = porter_db_query(0, conninfo, "SELECT $1::int + 1", l, 1, 0, 5000, &r);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(porter_db_getvalue(r, 0, 0), "124");
	porter_db_result_free(r);

	/* A binary int4 parameter. */
	uint32_t be = htonl(41);
	porter_db_param bi[1] = {{&be, 4, 1, 23}};
	rc = porter_db_query(s, NULL, "SELECT $1 + 1", bi, 1, 0, 5000, &r);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(porter_db_getvalue(r, 0, 0), "42");
	porter_db_result_free(r);

	porter_db_close(s, 0, 5000);
	th_stop_clean(&d);
}
END_TEST

START_TEST(errors_carry_sqlstate)
{
	start(NULL);
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &s), 0);
	porter_db_result *r = NULL;
	int rc = porter_db_query(s, NULL, "SELEC 1", NULL, 0, 0, 5000, &r);
	ck_assert_int_eq(rc, PORTER_E_DB);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(porter_db_status(r), PORTER_E_DB);
	ck_assert_str_eq(porter_db_sqlstate(r), "42601");
	ck_assert_msg(strstr(porter_db_message(r), "syntax error") != NULL, "%s",
		      porter_db_message(r));
	porter_db_result_free(r);

	porter_db_result_free(q_ok(s, NULL, "CREATE TEMP TABLE u (id int PRIMARY KEY)"));
	porter_db_result_free(q_ok(s, NULL, "INSERT INTO u VALUES (1)"));
	rc = porter_db_query(s, NULL, "INSERT INTO u VALUES (1)", NULL, 0, 0, 5000, &r);
	ck_assert_int_eq(rc, PORTER_E_DB);
	ck_assert_str_eq(porter_db_sqlstate(r), "23505");
	ck_assert_msg(strstr(porter_db_detail(r), "Key (id)=(1) already exists") != NULL,
		      "detail: %s", porter_db_detail(r));
	porter_db_result_free(r);

	/* A hint comes through too. */
	rc = porter_db_query(s, NULL, "SELECT * FROM u WHERE idd = 1", NULL, 0, 0, 5000, &r);
	ck_assert_int_eq(rc, PORTER_E_DB);
	ck_assert_str_eq(porter_db_sqlstate(r), "42703");
	porter_db_result_free(r);
	rc = porter_db_query(s, NULL, "SELECT 1 FROM u GROUP BY ()::int", NULL, 0, 0, 5000, &r);
	ck_assert_int_eq(rc, PORTER_E_DB);
	porter_db_result_free(r);

	/* An error inside a multi-statement string reports the error. */
	rc = porter_db_query(s, NULL, "SELECT 1; SELECT 1/0; SELECT 2", NULL, 0, 0, 5000, &r);
	ck_assert_int_eq(rc, PORTER_E_DB);
	ck_assert_str_eq(porter_db_sqlstate(r), "22012");
	porter_db_result_free(r);

	/* The session is still usable; so is the pool after an error. */
	ck_assert_int_eq(q_long(s, NULL, "SELECT count(*) FROM u"), 1);
	rc = porter_db_query(0, conninfo, "SELECT nope", NULL, 0, 0, 5000, &r);
	ck_assert_int_eq(rc, PORTER_E_DB);
	porter_db_result_free(r);
	ck_assert_int_eq(q_long(0, conninfo, "SELECT 5"), 5);
	porter_db_close(s, 0, 5000);
	th_stop_clean(&d);
}
END_TEST

/* ---- a transaction from several threads ---- */

static uint64_t shared_session;

static void *tx_step(void *arg)
{
	const char *sql = arg;
	porter_db_result *r = NULL;
	int rc = porter_db_query(shared_session, NULL, sql, NULL, 0, 0, 5000, &r);
	long v = rc == 0 && porter_db_ntuples(r) == 1 ? atol(porter_db_getvalue(r, 0, 0))
						      : (rc < 0 ? rc : -1000);
	if (rc == 0 && porter_db_ntuples(r) == 0)
		v = 0;
	porter_db_result_free(r);
	return (void *)v;
}

static long in_thread(const char *sql)
{
	pthread_t t;
	void *ret;
	ck_assert_int_eq(pthread_create(&t, NULL, tx_step, (void *)sql), 0);
	pthread_join(t, &ret);
	return (long)ret;
}

/* Sends a raw Hello and a DbQuery from a connection with another client
 * instance; returns the query's status. */
static int foreign_query(uint64_t session)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d.socket);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	int status = 1;
	for (int step = 0; step < 2; step++) {
		Porter__V1__Request rq = PORTER__V1__REQUEST__INIT;
		Porter__V1__Hello h = PORTER__V1__HELLO__INIT;
		Porter__V1__DbQuery q = PORTER__V1__DB_QUERY__INIT;
		rq.id = step + 1;
		rq.timeout_ms = 5000;
		if (step == 0) {
			h.protocol = 1;
			h.client_instance = 0x1234567;
			h.pid = getpid();
			rq.body_case = PORTER__V1__REQUEST__BODY_HELLO;
			rq.hello = &h;
		} else {
			q.session = session;
			q.sql = "SELECT 1";
			q.conninfo = "";
			rq.body_case = PORTER__V1__REQUEST__BODY_DB_QUERY;
			rq.db_query = &q;
		}
		uint8_t buf[4096];
		size_t n = porter__v1__request__pack(&rq, buf + 4);
		uint32_t be = htonl((uint32_t)n);
		memcpy(buf, &be, 4);
		ck_assert_int_eq(write(fd, buf, n + 4), (ssize_t)(n + 4));
		ck_assert_int_eq(recv(fd, buf, 4, MSG_WAITALL), 4);
		memcpy(&be, buf, 4);
		n = ntohl(be);
		ck_assert(n < sizeof(buf));
		ck_assert_int_eq(recv(fd, buf, n, MSG_WAITALL), (ssize_t)n);
		Porter__V1__Response *resp = porter__v1__response__unpack(NULL, n, buf);
		ck_assert_ptr_nonnull(resp);
		status = resp->status;
		porter__v1__response__free_unpacked(resp, NULL);
		if (step == 0)
			ck_assert_int_eq(status, 0);
	}
	close(fd);
	return status;
}

START_TEST(transaction_spans_threads)
{
	start(NULL);
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &shared_session), 0);
	ck_assert_int_eq(in_thread("CREATE TABLE IF NOT EXISTS tx_t (a int)"), 0);
	ck_assert_int_eq(in_thread("TRUNCATE tx_t"), 0);
	ck_assert_int_eq(in_thread("BEGIN"), 0);
	ck_assert_int_eq(in_thread("INSERT INTO tx_t VALUES (1), (2)"), 0);
	/* Another thread, another connection (likely another worker): the
	 * same transaction. */
	ck_assert_int_eq(in_thread("SELECT count(*) FROM tx_t"), 2);
	/* Outside the session the rows are not visible yet. */
	ck_assert_int_eq(q_long(0, conninfo, "SELECT count(*) FROM tx_t"), 0);
	ck_assert_int_eq(in_thread("SELECT txid_current_if_assigned() IS NOT NULL"), 0);
	ck_assert_int_eq(in_thread("ROLLBACK"), 0);
	ck_assert_int_eq(in_thread("SELECT count(*) FROM tx_t"), 0);
	ck_assert_int_eq(in_thread("BEGIN; INSERT INTO tx_t VALUES (3); COMMIT"), 0);
	ck_assert_int_eq(q_long(0, conninfo, "SELECT count(*) FROM tx_t"), 1);

	/* Another client identity cannot use the session. */
	ck_assert_int_eq(foreign_query(shared_session), PORTER_E_DB_SESSION);
	ck_assert_int_eq(in_thread("SELECT 7"), 7);
	ck_assert_int_eq(in_thread("DROP TABLE tx_t"), 0);
	porter_db_close(shared_session, 0, 5000);
	th_stop_clean(&d);
}
END_TEST

/* ---- 32 threads at once ---- */

static atomic_int conc_fail;

static void *conc_main(void *arg)
{
	long k = (long)arg;
	uint64_t s = 0;
	int own = k % 4 == 0;
	if (own && porter_db_open(conninfo, 0, 10000, &s) != 0) {
		atomic_fetch_add(&conc_fail, 1);
		return NULL;
	}
	for (int i = 0; i < 40; i++) {
		char v[32];
		int n = snprintf(v, sizeof(v), "%ld", k * 1000 + i);
		porter_db_param p = {v, (size_t)n, 0, 0};
		porter_db_result *r = NULL;
		int rc = porter_db_query(s, own ? NULL : conninfo,
					 "SELECT $1::int * 2, pg_backend_pid()", &p, 1, 0, 10000,
					 &r);
		if (rc != 0 || porter_db_ntuples(r) != 1 ||
		    atol(porter_db_getvalue(r, 0, 0)) != (k * 1000 + i) * 2)
			atomic_fetch_add(&conc_fail, 1);
		porter_db_result_free(r);
	}
	if (own)
		porter_db_close(s, 0, 5000);
	porter_thread_disconnect();
	return NULL;
}

START_TEST(thirty_two_threads)
{
	start(NULL);
	pthread_t t[32];
	for (long i = 0; i < 32; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, conc_main, (void *)i), 0);
	for (int i = 0; i < 32; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(atomic_load(&conc_fail), 0);
	/* Pools are bounded: 4 workers x 8 connections at most, plus the
	 * 8 sessions, plus this check. */
	long n = q_long(
		0, conninfo,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'");
	ck_assert_msg(n <= 4 * 8 + 8 + 1, "%ld backends", n);
	th_stop_clean(&d);
}
END_TEST

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
	setup_pg();
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
	long n = q_long(
		0, conninfo,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
		"AND application_name = ''");
	ck_assert_msg(n <= 2 + 1, "%ld backends", n);
	n = q_long(0, conninfo,
		   "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%' "
		   "AND state = 'active'");
	ck_assert_int_eq(n, 0);
	/* A multi-statement query on a pipelined pool still works. */
	porter_db_result *r = q_ok(0, conninfo, "SELECT 1; SELECT 2");
	ck_assert_uint_eq(porter_db_nresults(r), 2);
	porter_db_result_free(r);
	ck_assert_int_eq(q_long(0, conninfo, "SELECT 3"), 3);
	th_stop_clean(&d);
}
END_TEST

/* ---- timeouts ---- */

static long active_sleeps(void)
{
	return q_long(0, conninfo,
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
	ck_assert_int_eq(q_long(s, NULL, "SELECT 3"), 3);

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

/* ---- streaming ---- */

START_TEST(stream_million_rows_bounded_memory)
{
	/* The client's own growth is checked in the plain build only: TSan's
	 * runtime holds on to freed memory too (33 MiB here). */
	int check_client = 1;
#ifdef __SANITIZE_THREAD__
	check_client = 0;
#endif
#ifdef __SANITIZE_ADDRESS__
	/* ASan keeps freed memory in a quarantine (256 MiB by default),
	 * which would read as growth here. The setting reaches porterd, which
	 * starts after it; this process's runtime read its options at start. */
	check_client = 0;
	char asan[512];
	const char *prev = getenv("ASAN_OPTIONS");
	snprintf(asan, sizeof(asan), "%s%squarantine_size_mb=8", prev ? prev : "", prev ? ":" : "");
	setenv("ASAN_OPTIONS", asan, 1);
#endif
	start(NULL);
	porter_db_cursor *cur = NULL;
	/* Warm up so the baseline includes the pool and buffers. */
	porter_db_result_free(q_ok(0, conninfo, "SELECT 1"));
	long base = th_rss_kib(d.pid);
	ck_assert(base > 0);
	/* This process is the client: its chunks (each read into the thread's
	 * scratch arena, then copied into a result) must not pile up either.
	 * It grows by well under 1 MiB; keeping every chunk would be ~50 MiB. */
	long cbase = th_rss_kib(getpid()), cpeak = cbase;
	ck_assert(cbase > 0);
	int rc = porter_db_cursor_open(
		0, conninfo, "SELECT g, repeat('x', 40) || g FROM generate_series(1, 1000000) g",
		NULL, 0, 2000, 0, 0, 20000, &cur);
	ck_assert_msg(rc == 0, "%s", porter_last_error_message());
	long long rows = 0, sum = 0;
	long peak = base;
	int chunks = 0, nf = -1;
	porter_db_result *ch;
	while ((rc = porter_db_cursor_read(cur, 0, 20000, &ch)) == 1) {
		if (nf < 0) {
			nf = porter_db_nfields(ch);
			ck_assert_str_eq(porter_db_fname(ch, 0), "g");
		}
		ck_assert_int_eq(porter_db_nfields(ch), 2);
		ck_assert_int_le(porter_db_ntuples(ch), 2000);
		for (int i = 0; i < porter_db_ntuples(ch); i++)
			sum += atol(porter_db_getvalue(ch, i, 0));
		rows += porter_db_ntuples(ch);
		porter_db_result_free(ch);
		if (++chunks % 50 == 0) {
			long rss = th_rss_kib(d.pid), crss = th_rss_kib(getpid());
			if (rss > peak)
				peak = rss;
			if (crss > cpeak)
				cpeak = crss;
		}
	}
	ck_assert_msg(rc == 0, "%s: %s", porter_error_name(rc), porter_last_error_message());
	porter_db_cursor_close(cur, 1000);
	ck_assert_int_eq(rows, 1000000);
	ck_assert_int_eq(sum, 500000500000LL);
	fprintf(stderr,
		"stream: %d chunks, porterd RSS %ld KiB -> peak %ld KiB, client %ld -> %ld KiB\n",
		chunks, base, peak, cbase, cpeak);
	ck_assert_msg(peak - base < 64 * 1024, "porterd grew by %ld KiB", peak - base);
	ck_assert_msg(!check_client || cpeak - cbase < 16 * 1024, "the client grew by %ld KiB",
		      cpeak - cbase);

	/* The largest chunk size allowed is still bounded in bytes. */
	rc = porter_db_cursor_open(0, conninfo, "SELECT g FROM generate_series(1, 300000) g", NULL,
				   0, 100000, 0, 0, 20000, &cur);
	ck_assert_int_eq(rc, 0);
	rows = 0;
	while ((rc = porter_db_cursor_read(cur, 0, 20000, &ch)) == 1) {
		rows += porter_db_ntuples(ch);
		porter_db_result_free(ch);
		long rss = th_rss_kib(d.pid), crss = th_rss_kib(getpid());
		if (rss > peak)
			peak = rss;
		if (crss > cpeak)
			cpeak = crss;
	}
	ck_assert_int_eq(rc, 0);
	porter_db_cursor_close(cur, 1000);
	ck_assert_int_eq(rows, 300000);
	ck_assert_msg(peak - base < 64 * 1024, "porterd grew by %ld KiB", peak - base);
	ck_assert_msg(!check_client || cpeak - cbase < 16 * 1024, "the client grew by %ld KiB",
		      cpeak - cbase);

	/* A cursor abandoned early: the query is cancelled, the pool goes on. */
	rc = porter_db_cursor_open(0, conninfo, "SELECT g FROM generate_series(1, 10000000) g",
				   NULL, 0, 100, 0, 0, 10000, &cur);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(porter_db_cursor_read(cur, 0, 5000, &ch), 1);
	porter_db_result_free(ch);
	ck_assert_int_eq(porter_db_cursor_read(cur, 0, 5000, &ch), 1);
	ck_assert_int_eq(porter_db_ntuples(ch), 100);
	ck_assert_str_eq(porter_db_getvalue(ch, 0, 0), "101");
	porter_db_result_free(ch);
	porter_db_cursor_close(cur, 1000);
	ck_assert_int_eq(q_long(0, conninfo, "SELECT 9"), 9);
	th_stop_clean(&d);
}
END_TEST

static porter_db_cursor *shared_cursor;

static void *fetch_main(void *arg)
{
	long *sum = arg;
	porter_db_result *ch = NULL;
	long rc = porter_db_cursor_read(shared_cursor, 0, 5000, &ch);
	for (int i = 0; rc == 1 && i < porter_db_ntuples(ch); i++)
		*sum += atol(porter_db_getvalue(ch, i, 0));
	porter_db_result_free(ch);
	porter_thread_disconnect();
	return (void *)rc;
}

START_TEST(stream_on_session_fetched_from_other_threads)
{
	start(NULL);
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &s), 0);
	porter_db_param p = {"1000", 4, 0, 0};
	int rc = porter_db_cursor_open(s, NULL, "SELECT g FROM generate_series(1, $1::int) g", &p,
				       1, 100, 0, 0, 5000, &shared_cursor);
	ck_assert_int_eq(rc, 0);
	/* Every chunk pulled by a new thread, i.e. a new connection that
	 * may land on any worker. */
	long sum = 0;
	int chunks = 0;
	for (;;) {
		pthread_t t;
		void *ret;
		ck_assert_int_eq(pthread_create(&t, NULL, fetch_main, &sum), 0);
		pthread_join(t, &ret);
		if ((long)ret == 0)
			break;
		ck_assert_int_eq((long)ret, 1);
		chunks++;
	}
	porter_db_cursor_close(shared_cursor, 1000);
	ck_assert_int_eq(sum, 500500);
	ck_assert_int_ge(chunks, 10);
	/* The session is free again. */
	ck_assert_int_eq(q_long(s, NULL, "SELECT 11"), 11);

	/* A stream whose client closes the cursor early leaves the session
	 * usable. */
	rc = porter_db_cursor_open(s, NULL, "SELECT g FROM generate_series(1, 5000000) g", NULL, 0,
				   50, 0, 0, 5000, &shared_cursor);
	ck_assert_int_eq(rc, 0);
	porter_db_cursor_close(shared_cursor, 1000);
	ck_assert_int_eq(q_long(s, NULL, "SELECT 12"), 12);
	porter_db_close(s, 0, 5000);
	th_stop_clean(&d);
}
END_TEST

/* ---- failures ---- */

START_TEST(wrong_password_and_unreachable)
{
	start(NULL);
	uint64_t s = 0;
	/* The right password works (SCRAM over TCP)... */
	ck_assert_int_eq(porter_db_open(conninfo_pw, 0, 5000, &s), 0);
	ck_assert_int_eq(q_long(s, NULL, "SELECT 1"), 1);
	porter_db_close(s, 0, 5000);
	/* ...the wrong one is refused clearly, and never echoed. */
	char bad[600];
	snprintf(bad, sizeof(bad), "%s", conninfo_pw);
	char *pw = strstr(bad, "password=");
	ck_assert_ptr_nonnull(pw);
	strcpy(pw, "password=wrong-secret-xyz");
	long long t0 = th_now_ms();
	int rc = porter_db_open(bad, 0, 5000, &s);
	ck_assert_int_eq(rc, PORTER_E_DB_CONNECT);
	ck_assert_msg(strstr(porter_last_error_message(), "password authentication failed") != NULL,
		      "%s", porter_last_error_message());
	ck_assert(strstr(porter_last_error_message(), "wrong-secret-xyz") == NULL);
	ck_assert(th_now_ms() - t0 < 5000);
	porter_db_result *r = NULL;
	rc = porter_db_query(0, bad, "SELECT 1", NULL, 0, 0, 5000, &r);
	ck_assert_int_eq(rc, PORTER_E_DB_CONNECT);
	porter_db_result_free(r);

	/* Nothing listens: refused at once. */
	rc = porter_db_open("host=127.0.0.1 port=1 dbname=postgres connect_timeout=10", 0, 5000,
			    &s);
	ck_assert_int_eq(rc, PORTER_E_DB_CONNECT);
	ck_assert_msg(strstr(porter_last_error_message(), "refused") != NULL, "%s",
		      porter_last_error_message());
	/* A name that does not resolve. */
	rc = porter_db_open("host=no-such-host.invalid dbname=postgres", 0, 5000, &s);
	ck_assert_int_eq(rc, PORTER_E_DB_CONNECT);
	ck_assert_msg(strstr(porter_last_error_message(), "resolve") != NULL, "%s",
		      porter_last_error_message());
	/* A host that never answers (a blackholed address): the deadline. */
	t0 = th_now_ms();
	rc = porter_db_open("host=10.255.255.1 port=5432 dbname=postgres", 0, 1500, &s);
	long long el = th_now_ms() - t0;
	ck_assert_msg(rc == PORTER_E_TIMEOUT || rc == PORTER_E_DB_CONNECT, "%s",
		      porter_error_name(rc));
	ck_assert_msg(el < 2500, "took %lld ms", el);
	/* The daemon is fine. */
	ck_assert_int_eq(porter_ping("x", 1, 0, 2000), 0);
	th_stop_clean(&d);
}
END_TEST

START_TEST(postgres_restart_mid_run)
{
	start(NULL);
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &s), 0);
	ck_assert_int_eq(q_long(s, NULL, "SELECT 1"), 1);
	ck_assert_int_eq(q_long(0, conninfo, "SELECT 2"), 2);

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
	ck_assert_int_eq(q_long(0, conninfo, "SELECT 4"), 4);
	/* ...and new sessions work. */
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &s), 0);
	ck_assert_int_eq(q_long(s, NULL, "SELECT 5"), 5);
	porter_db_close(s, 0, 5000);
	th_stop_clean(&d);
}
END_TEST

START_TEST(sessions_of_a_gone_client_are_closed)
{
	start(NULL);
	porter_db_result_free(
		q_ok(0, conninfo, "CREATE TABLE IF NOT EXISTS gone_t (id int PRIMARY KEY)"));
	porter_db_result_free(q_ok(0, conninfo, "TRUNCATE gone_t"));
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
		n = q_long(0, conninfo,
			   "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in "
			   "transaction%'");
		if (n)
			usleep(100 * 1000);
	}
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(q_long(0, conninfo, "SELECT count(*) FROM gone_t"), 0);
	porter_db_result_free(q_ok(0, conninfo, "DROP TABLE gone_t"));
	th_stop_clean(&d);
}
END_TEST

START_TEST(idle_sessions_are_closed)
{
	setup_pg();
	const char *args[] = {"--workers", "2", "--db-session-idle", "300", NULL};
	start(args);
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &s), 0);
	ck_assert_int_eq(q_long(s, NULL, "SELECT 1"), 1);
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
	porter_db_result_free(q_ok(shared_session, NULL, "CREATE TEMP TABLE qt (a int)"));
	long pid = q_long(shared_session, NULL, "SELECT pg_backend_pid()");
	pthread_t t[8];
	for (long i = 0; i < 8; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, queue_main, (void *)i), 0);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(atomic_load(&q_fail), 0);
	ck_assert_int_eq(q_long(shared_session, NULL, "SELECT count(DISTINCT a) FROM qt"), 80);
	ck_assert_int_eq(q_long(shared_session, NULL, "SELECT pg_backend_pid()"), pid);

	/* A query queued behind a long one times out by its own deadline;
	 * the long one is cancelled at its deadline; the session survives. */
	porter_db_result *r = NULL;
	int rc = porter_db_query(shared_session, NULL, "SELECT 1", NULL, 0, 0, 5000, &r);
	ck_assert_int_eq(rc, 0);
	porter_db_result_free(r);

	/* Pooled connections do not leak session state between queries. */
	porter_db_result_free(q_ok(0, conninfo, "SET application_name = 'leaky'"));
	r = q_ok(0, conninfo, "SHOW application_name");
	ck_assert_str_ne(porter_db_getvalue(r, 0, 0), "leaky");
	porter_db_result_free(r);
	porter_db_result_free(q_ok(0, conninfo, "BEGIN"));
	usleep(300 * 1000);
	/* Not inside that transaction (now() would be its start)... */
	r = q_ok(0, conninfo, "SELECT clock_timestamp() - now() < interval '150 ms'");
	ck_assert_str_eq(porter_db_getvalue(r, 0, 0), "t");
	porter_db_result_free(r);
	/* ...and its connection was discarded, ending it. */
	long n = 1;
	for (int i = 0; i < 40 && n; i++) {
		n = q_long(0, conninfo,
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
	ck_assert_int_eq(q_long(shared_session, NULL, "SELECT 8"), 8);
	porter_db_close(shared_session, 0, 5000);
	th_stop_clean(&d);
}
END_TEST

START_TEST(passwords_never_logged_and_porterctl)
{
	setup_pg();
	const char *args[] = {"--workers", "2", "--log-level", "debug", NULL};
	start(args);
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo_pw, 0, 5000, &s), 0);
	ck_assert_int_eq(q_long(0, conninfo_pw, "SELECT 6"), 6);
	porter_db_close(s, 0, 5000);
	porter_db_result *r = NULL;
	char bad[600];
	snprintf(bad, sizeof(bad), "%s", conninfo_pw);
	strcpy(strstr(bad, "password="), "password=other-secret");
	ck_assert_int_lt(porter_db_query(0, bad, "SELECT 1", NULL, 0, 0, 5000, &r), 0);
	porter_db_result_free(r);

	/* porterctl db query, as a table and as JSON. */
	char cmd[2048], out[4096];
	snprintf(cmd, sizeof(cmd),
		 "%s --json db query '%s' \"SELECT 1 AS a, NULL AS n, \\$1::text AS t\" 'x\"y'",
		 PORTERCTL_PATH, conninfo);
	FILE *f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	ck_assert_int_eq(pclose(f), 0);
	/* Typed values: the integer is a JSON number. */
	ck_assert_msg(strstr(out, "\"rows\":[[1,null,\"x\\\"y\"]]") != NULL, "%s", out);
	snprintf(cmd, sizeof(cmd), "%s db query '%s' \"SELECT 12 AS num, 'ab' AS txt\"",
		 PORTERCTL_PATH, conninfo);
	f = popen(cmd, "r");
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	ck_assert_int_eq(pclose(f), 0);
	/* psql's bytes, the blank after the last header included. */
	ck_assert_msg(strstr(out, " num | txt \n-----+-----\n  12 | ab\n(1 row)\n") != NULL, "%s",
		      out);
	snprintf(cmd, sizeof(cmd), "%s db query '%s' 'SELEC' 2>&1", PORTERCTL_PATH, conninfo);
	f = popen(cmd, "r");
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	ck_assert_int_eq(WEXITSTATUS(pclose(f)), 1);
	/* psql's form; the SQLSTATE is in --json's "sqlstate" when the stream
	 * carries it. */
	ck_assert_msg(strstr(out, "ERROR:  syntax error at or near \"SELEC\"") != NULL, "%s", out);

	porter_thread_disconnect();
	th_daemon_stop(&d);
	char log[1 << 16];
	f = fopen(d.log, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(log, 1, sizeof(log) - 1, f);
	log[n] = 0;
	fclose(f);
	ck_assert_msg(strstr(log, "opening session") != NULL, "debug log missing:\n%s", log);
	ck_assert_msg(strstr(log, "password=***") != NULL, "%s", log);
	ck_assert(strstr(log, "porter-secret") == NULL);
	ck_assert(strstr(log, "other-secret") == NULL);
	th_daemon_cleanup(&d);
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
	porter_db_result_free(q_ok(s, NULL, "BEGIN"));
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
	char cmd[1024];
	snprintf(
		cmd, sizeof(cmd),
		"for i in $(seq 50); do n=$(psql '%s' -Atc \"SELECT count(*) FROM pg_stat_activity "
		"WHERE query LIKE 'SELECT pg_sleep(20)%%' AND state = 'active'\"); "
		"[ \"$n\" = 0 ] && exit 0; sleep 0.1; done; exit 1",
		conninfo);
	ck_assert_int_eq(system(cmd), 0);
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
	return q_long(0, conninfo, sql);
}

START_TEST(pooled_statements_prepared_and_kept_fresh)
{
	setup_pg();
	const char *args[] = {"--workers", "1", "--db-pool-size", "1", "--db-statement-cache",
			      "4",         NULL};
	ck_assert_msg(th_daemon_start(&d, args) == 0, "porterd did not start");
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &s), 0);
	porter_db_result_free(q_ok(s, NULL, "DROP TABLE IF EXISTS stmt_t"));
	porter_db_result_free(q_ok(s, NULL, "CREATE TABLE stmt_t (a int)"));
	porter_db_result_free(q_ok(s, NULL, "INSERT INTO stmt_t VALUES (7)"));

	/* Used until porterd knows it is fast (a new connection's first run
	 * does not count, the next tells; on a busy machine a run may take
	 * longer), and then pipelined: prepared once on the server, however
	 * often it runs, answers unchanged. */
	long prepared = 0;
	for (int i = 0; i < 40 && (i < 6 || prepared != 1); i++) {
		porter_db_result *r = q_ok(0, conninfo, "SELECT * FROM stmt_t");
		ck_assert_int_eq(porter_db_nfields(r), 1);
		ck_assert_str_eq(porter_db_getvalue(r, 0, 0), "7");
		porter_db_result_free(r);
		prepared = porter_stmts("SELECT * FROM stmt_t");
	}
	ck_assert_int_eq(prepared, 1);

	/* Another connection changes the table: the cached statement would
	 * fail with "cached plan must not change result type"; the daemon
	 * runs it again unnamed and drops the stale one. */
	porter_db_result_free(q_ok(s, NULL, "ALTER TABLE stmt_t ADD COLUMN b text DEFAULT 'x'"));
	porter_db_result *r = q_ok(0, conninfo, "SELECT * FROM stmt_t");
	ck_assert_int_eq(porter_db_nfields(r), 2);
	ck_assert_str_eq(porter_db_getvalue(r, 0, 1), "x");
	porter_db_result_free(r);
	r = q_ok(0, conninfo, "SELECT * FROM stmt_t");
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
	porter_db_result_free(q_ok(0, conninfo, "SET application_name = 'stmt'"));
	ck_assert_int_eq(q_long(0, conninfo, "SELECT count(*) FROM stmt_t"), 1);
	ck_assert_int_eq(q_long(0, conninfo, "SELECT count(*) FROM stmt_t"), 1);
	ck_assert_int_eq(porter_stmts("SELECT count(*) FROM stmt_t"), 1);

	porter_db_result_free(q_ok(s, NULL, "DROP TABLE stmt_t"));
	porter_db_close(s, 0, 5000);
	th_stop_clean(&d);
}
END_TEST

/* With the cache off nothing is prepared. */
START_TEST(statement_cache_off)
{
	setup_pg();
	const char *args[] = {"--workers", "1", "--db-pool-size", "1", "--db-statement-cache",
			      "0",         NULL};
	ck_assert_msg(th_daemon_start(&d, args) == 0, "porterd did not start");
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(q_long(0, conninfo, "SELECT 41 + 1"), 42);
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
		ck_assert_int_eq(q_long(0, conninfo, "SELECT 1 FROM pg_sleep(0.02)"), 1);
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
	setup_pg();
	const char *args[] = {"--workers", "1", "--db-pool-size", "1", NULL};
	ck_assert_msg(th_daemon_start(&d, args) == 0, "porterd did not start");
	porter_db_result_free(q_ok(0, conninfo, "DROP TABLE IF EXISTS seg_t"));
	porter_db_result_free(
		q_ok(0, conninfo, "CREATE TABLE seg_t (t int, i int, PRIMARY KEY (t, i))"));
	porter_db_result_free(q_ok(0, conninfo, "INSERT INTO seg_t VALUES (0, 0)"));
	pthread_t th[16];
	for (long i = 0; i < 16; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, seg_main, (void *)(i + 1)), 0);
	for (int i = 0; i < 16; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&seg_wrong), 0);
	ck_assert_int_eq(atomic_load(&seg_ok), 16 * 135);
	ck_assert_int_eq(atomic_load(&seg_dup), 16 * 15);
	/* Every acknowledged insert is there, nothing else. */
	ck_assert_int_eq(q_long(0, conninfo, "SELECT count(*) FROM seg_t WHERE t > 0"), 16 * 135);
	/* And inserts did share transactions (xmin is the inserting one). */
	long xacts =
		q_long(0, conninfo, "SELECT count(DISTINCT xmin::text) FROM seg_t WHERE t > 0");
	fprintf(stderr, "segments: %d inserts in %ld transactions\n", 16 * 135, xacts);
	ck_assert_int_lt(xacts, 16 * 135);
	porter_db_result_free(q_ok(0, conninfo, "DROP TABLE seg_t"));
	th_stop_clean(&d);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("db");
	TCase *tc = tcase_create("postgres");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, types_nulls_and_multi_statement);
	tcase_add_test(tc, parameters_text_binary_null);
	tcase_add_test(tc, errors_carry_sqlstate);
	tcase_add_test(tc, transaction_spans_threads);
	tcase_add_test(tc, thirty_two_threads);
	tcase_add_test(tc, pipelined_pool_keeps_queries_apart);
	tcase_add_test(tc, timeout_cancels_on_server);
	tcase_add_test(tc, stream_million_rows_bounded_memory);
	tcase_add_test(tc, stream_on_session_fetched_from_other_threads);
	tcase_add_test(tc, wrong_password_and_unreachable);
	tcase_add_test(tc, sessions_of_a_gone_client_are_closed);
	tcase_add_test(tc, idle_sessions_are_closed);
	tcase_add_test(tc, session_queue_and_pool_reset);
	tcase_add_test(tc, queued_behind_long_query_times_out);
	tcase_add_test(tc, passwords_never_logged_and_porterctl);
	tcase_add_test(tc, shutdown_with_queries_in_flight);
	tcase_add_test(tc, pooled_statements_prepared_and_kept_fresh);
	tcase_add_test(tc, statement_cache_off);
	tcase_add_test(tc, cancel_never_hits_the_next_query);
	tcase_add_test(tc, pipelined_segments_keep_outcomes_apart);
	tcase_add_test(tc, postgres_restart_mid_run);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
