/*
 * Integration tests of PostgreSQL through porterd: a real porterd and the
 * real PostgreSQL 15 that the `pg` ctest fixture (tests/support/pg.sh)
 * started; its connection strings are read from $PORTER_PG_STATE.
 *
 * This suite: queries and their results (types, NULLs, parameters,
 * SQLSTATEs), a transaction across threads, many threads at once, failed
 * connections, what porterd logs of a password, and porterctl db.
 * The suites of this family: test_db (queries), test_db_pool (pooled
 * connections), test_db_stream (cursors), test_db_session (sessions).
 */
#include <arpa/inet.h>
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "porter.pb-c.h"

static th_daemon d;
static char conninfo[512];    /* Unix socket, superuser, trust */
static char conninfo_pw[512]; /* TCP, password role */

static void start(const char *const *extra)
{
	th_pg_file("conninfo", conninfo, sizeof(conninfo));
	th_pg_file("conninfo_pw", conninfo_pw, sizeof(conninfo_pw));
	const char *def[] = {"--workers", "4", "--db-session-grace", "500", NULL};
	ck_assert_msg(th_daemon_start(&d, extra ? extra : def) == 0, "porterd did not start");
}

START_TEST(types_nulls_and_multi_statement)
{
	start(NULL);
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &s), 0);
	ck_assert(s != 0);

	porter_db_result *r = th_db_ok(
		s, NULL,
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
	r = th_db_ok(s, NULL,
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
	r = th_db_ok(s, NULL, "SELECT a, b FROM t WHERE false");
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
	porter_db_result_free(th_db_ok(s, NULL, "CREATE TEMP TABLE b (id int, x bytea, t text)"));

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

	porter_db_result_free(th_db_ok(s, NULL, "CREATE TEMP TABLE u (id int PRIMARY KEY)"));
	porter_db_result_free(th_db_ok(s, NULL, "INSERT INTO u VALUES (1)"));
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
	ck_assert_int_eq(th_db_long(s, NULL, "SELECT count(*) FROM u"), 1);
	rc = porter_db_query(0, conninfo, "SELECT nope", NULL, 0, 0, 5000, &r);
	ck_assert_int_eq(rc, PORTER_E_DB);
	porter_db_result_free(r);
	ck_assert_int_eq(th_db_long(0, conninfo, "SELECT 5"), 5);
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
	ck_assert_int_eq(th_db_long(0, conninfo, "SELECT count(*) FROM tx_t"), 0);
	ck_assert_int_eq(in_thread("SELECT txid_current_if_assigned() IS NOT NULL"), 0);
	ck_assert_int_eq(in_thread("ROLLBACK"), 0);
	ck_assert_int_eq(in_thread("SELECT count(*) FROM tx_t"), 0);
	ck_assert_int_eq(in_thread("BEGIN; INSERT INTO tx_t VALUES (3); COMMIT"), 0);
	ck_assert_int_eq(th_db_long(0, conninfo, "SELECT count(*) FROM tx_t"), 1);

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
	long n = th_db_long(
		0, conninfo,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'");
	ck_assert_msg(n <= 4 * 8 + 8 + 1, "%ld backends", n);
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
	ck_assert_int_eq(th_db_long(s, NULL, "SELECT 1"), 1);
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

/* An HTTP host name that does not resolve, then queries on the same
 * worker. libcurl's threaded resolver watches a socket of its own, which
 * it closes itself; porterd kept it as watched on the worker's loop, so
 * the next PostgreSQL connection given that fd number could not be
 * watched: every connection failed with "connection to PostgreSQL has no
 * socket" until an HTTP socket took the number back. */
START_TEST(a_failed_http_resolve_leaves_db_connections_working)
{
	const char *one[] = {"--workers", "1", NULL};
	start(one);
	for (int round = 0; round < 3; round++) {
		porter_http_response *h = NULL;
		int rc = porter_http_get("http://no-such-host.invalid/", 0, 10000, &h);
		ck_assert_msg(rc == PORTER_E_HTTP_CONNECT || rc == PORTER_E_TIMEOUT, "%s",
			      porter_error_name(rc));
		porter_http_response_free(h);
		/* A session is a connection of its own, opened now. */
		uint64_t s = 0;
		rc = porter_db_open(conninfo, 0, 10000, &s);
		ck_assert_msg(rc == 0, "round %d: %s (%s)", round, porter_error_name(rc),
			      porter_last_error_message());
		ck_assert_int_eq(th_db_long(s, NULL, "SELECT 1"), 1);
		ck_assert_int_eq(porter_db_close(s, 0, 5000), 0);
	}
	th_stop_clean(&d);
}
END_TEST

START_TEST(passwords_never_logged_and_porterctl)
{
	const char *args[] = {"--workers", "2", "--log-level", "debug", NULL};
	start(args);
	uint64_t s = 0;
	ck_assert_int_eq(porter_db_open(conninfo_pw, 0, 5000, &s), 0);
	ck_assert_int_eq(th_db_long(0, conninfo_pw, "SELECT 6"), 6);
	porter_db_close(s, 0, 5000);
	porter_db_result *r = NULL;
	char bad[600];
	snprintf(bad, sizeof(bad), "%s", conninfo_pw);
	strcpy(strstr(bad, "password="), "password=other-secret");
	ck_assert_int_lt(porter_db_query(0, bad, "SELECT 1", NULL, 0, 0, 5000, &r), 0);
	porter_db_result_free(r);

	/* porterctl db query, as a table and as JSON. */
	char out[4096];
	ck_assert_int_eq(th_ctl(NULL, 0, TH_ERR_KEEP, out, sizeof(out), "--json", "db", "query",
				conninfo, "SELECT 1 AS a, NULL AS n, $1::text AS t", "x\"y", NULL),
			 0);
	/* Typed values: the integer is a JSON number. */
	ck_assert_msg(strstr(out, "\"rows\":[[1,null,\"x\\\"y\"]]") != NULL, "%s", out);
	ck_assert_int_eq(th_ctl(NULL, 0, TH_ERR_KEEP, out, sizeof(out), "db", "query", conninfo,
				"SELECT 12 AS num, 'ab' AS txt", NULL),
			 0);
	/* psql's bytes, the blank after the last header included. */
	ck_assert_msg(strstr(out, " num | txt \n-----+-----\n  12 | ab\n(1 row)\n") != NULL, "%s",
		      out);
	ck_assert_int_eq(th_ctl(NULL, 0, TH_ERR_OUT, out, sizeof(out), "db", "query", conninfo,
				"SELEC", NULL),
			 1);
	/* psql's form; the SQLSTATE is in --json's "sqlstate" when the stream
	 * carries it. */
	ck_assert_msg(strstr(out, "ERROR:  syntax error at or near \"SELEC\"") != NULL, "%s", out);

	porter_thread_disconnect();
	th_daemon_stop(&d);
	char log[1 << 16];
	FILE *f = fopen(d.log, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(log, 1, sizeof(log) - 1, f);
	log[n] = 0;
	fclose(f);
	ck_assert_msg(strstr(log, "opening session") != NULL, "debug log missing:\n%s", log);
	ck_assert_msg(strstr(log, "password=***") != NULL, "%s", log);
	ck_assert(strstr(log, "porter-secret") == NULL);
	ck_assert(strstr(log, "other-secret") == NULL);
	th_daemon_cleanup(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {types_nulls_and_multi_statement,
				parameters_text_binary_null,
				errors_carry_sqlstate,
				transaction_spans_threads,
				thirty_two_threads,
				wrong_password_and_unreachable,
				a_failed_http_resolve_leaves_db_connections_working,
				passwords_never_logged_and_porterctl,
				NULL};
	return th_suite("db", "postgres", 120, tests);
}

TH_MAIN(suite)
