/*
 * A client going away across a trust boundary (issue 15): porterd keeps
 * what a request asked for while libcurl or libpq works on it, and some of
 * it points into the client's request message, which ends when the
 * request is answered, cancelled or its connection closes. Alice (raw
 * frames, another uid) starts HTTP transfers (whole responses, redirect
 * chains with a body, stalled and streamed responses, a select batch
 * whose losers are stopped) or database work (pooled queries while the
 * pool's connections are being made, fast ones that take the first one
 * ready, a failing one in a pipeline, a cursor, a session), cancels one
 * and closes her connection at several moments while they are in flight;
 * bob's requests must still be served by the same worker afterwards.
 * Under ASan (make test runs this suite there too) any use of alice's
 * freed request aborts porterd, and bob's requests fail. Alice also makes
 * a service's sweep answer her while it walks her requests: a reply whose
 * write fails, or that makes room at her max-inflight, must not close her
 * connection or read her next frame inside that walk (conn.h).
 *
 * One worker: alice's work and bob's share its loop.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "harness.h"
#include "httpd.h"
#include "porter.h"
#include "rawc.h"
#include "tenant.h"

static th_daemon d;
static th_httpd srv;

typedef struct gone {
	int sent;     /* alice's requests sent */
	int answered; /* of bob's */
	int status;   /* of bob's last */
	char msg[256];
} gone;

static gone *shm;

static char ci_pw[512]; /* TCP, porter_pw with its password */

static void teardown(void)
{
	th_httpd_stop(&srv);
	th_stop_clean(&d);
}

/* Extra options of the next setup (NULL: none): see setup_one_conn. */
static const char *more_opt, *more_val;

static void setup(void)
{
	static char targets[64];
	char ci_tcp[512], *port;
	th_pg_file("conninfo_pw", ci_pw, sizeof(ci_pw));
	th_pg_file("conninfo_tcp", ci_tcp, sizeof(ci_tcp));
	ck_assert_ptr_nonnull(port = strstr(ci_tcp, "port="));
	snprintf(targets, sizeof(targets), "127.0.0.1:%.*s", (int)strcspn(port + 5, " "), port + 5);
	const char *const extra[] = {"--workers",
				     "1",
				     "--allow-uid",
				     "61011,61012",
				     "--http-allow-hosts",
				     "127.0.0.1:*",
				     "--db-allow-targets",
				     targets,
				     "--db-pool-size",
				     "2",
				     more_opt,
				     more_val,
				     NULL};
	ck_assert_int_eq(th_httpd_start(&srv), 0);
	shm = th_tenant_up(&d, extra, sizeof(*shm));
}

/* setup, each uid allowed one database connection. */
static void setup_one_conn(void)
{
	more_opt = "--db-max-connections-per-uid";
	more_val = "1";
	setup();
	more_opt = more_val = NULL;
}

/* Fills `hr` for `method` `path` on the test server (into `url`), with
 * `body` (NULL: none), following redirects, streamed when `stream`. */
static void http_req(Porter__V1__HttpRequest *hr, char *url, size_t cap, const char *method,
		     const char *path, const char *body, int stream)
{
	porter__v1__http_request__init(hr);
	snprintf(url, cap, "%s%s", srv.base, path);
	hr->method = (char *)method;
	hr->url = url;
	hr->follow_redirects = 1;
	hr->stream = stream;
	hr->chunk_size = stream ? 16 : 0;
	if (body) {
		hr->body.data = (uint8_t *)body;
		hr->body.len = strlen(body);
	}
}

/* Sends request `id` with HttpRequest `hr`. 0 or -1. */
static int send_http(int fd, uint64_t id, Porter__V1__HttpRequest *hr)
{
	Porter__V1__Request r = PORTER__V1__REQUEST__INIT;
	r.id = id;
	r.timeout_ms = 10000;
	r.body_case = PORTER__V1__REQUEST__BODY_HTTP;
	r.http = hr;
	return th_rc_send(fd, &r);
}

/* A select batch (id `id`) of a fast GET and two slow ones, stopped once
 * the fast one has answered. 0 or -1. */
static int send_select(int fd, uint64_t id)
{
	static const char *const paths[] = {"/slow/20", "/slow/3000", "/slow-redirect/300/3"};
	ProtobufCBinaryData members[3];
	uint8_t *packed[3] = {NULL, NULL, NULL};
	int rc = 0;
	for (int i = 0; i < 3; i++) {
		Porter__V1__HttpRequest hr;
		char url[256];
		http_req(&hr, url, sizeof(url), "GET", paths[i], NULL, 0);
		Porter__V1__Request m = PORTER__V1__REQUEST__INIT;
		m.id = id * 10 + (uint64_t)i;
		m.timeout_ms = 10000;
		m.body_case = PORTER__V1__REQUEST__BODY_HTTP;
		m.http = &hr;
		members[i].len = protobuf_c_message_get_packed_size(&m.base);
		packed[i] = malloc(members[i].len);
		if (!packed[i]) {
			rc = -1;
			goto out;
		}
		protobuf_c_message_pack(&m.base, packed[i]);
		members[i].data = packed[i];
	}
	Porter__V1__Batch b = PORTER__V1__BATCH__INIT;
	b.mode = PORTER__V1__BATCH__MODE__FIRST;
	b.n_members = 3;
	b.members = members;
	Porter__V1__Request r = PORTER__V1__REQUEST__INIT;
	r.id = id;
	r.timeout_ms = 10000;
	r.body_case = PORTER__V1__REQUEST__BODY_BATCH;
	r.batch = &b;
	rc = th_rc_send(fd, &r);
out:
	for (int i = 0; i < 3; i++)
		free(packed[i]);
	return rc;
}

/* Cancels request `target`. 0 or -1. */
static int send_cancel(int fd, uint64_t id, uint64_t target)
{
	Porter__V1__Request r = PORTER__V1__REQUEST__INIT;
	Porter__V1__Cancel c = PORTER__V1__CANCEL__INIT;
	c.target_id = target;
	r.id = id;
	r.body_case = PORTER__V1__REQUEST__BODY_CANCEL;
	r.cancel = &c;
	return th_rc_send(fd, &r);
}

/* As alice: in each round, a mix of transfers in flight, a cancel of one
 * of them, then her connection closed after `round` x 60 ms. */
static int alice_leaves(void *arg)
{
	gone *g = arg;
	/* A body to carry through a redirect (303 makes it a GET). */
	static char body[64 * 1024];
	memset(body, 'b', sizeof(body) - 1);
	for (int round = 0; round < 6; round++) {
		frame_reader rd;
		frame_reader_init(&rd, 1 << 20);
		int fd = th_rc_open(getenv("PORTER_SOCKET"), &rd, 5000, NULL);
		if (fd < 0)
			return 1;
		static const struct {
			const char *method, *path;
			int body, stream;
		} reqs[] = {
			{"GET", "/slow/200", 0, 0},       {"POST", "/slow-redirect/50/3", 1, 0},
			{"PUT", "/redirect/2", 1, 0},     {"GET", "/stall/4096", 0, 0},
			{"GET", "/trickle/100/20", 0, 1}, {"get", "/slow/100", 0, 1},
			{"POST", "/see-other", 1, 0},     {"GET", "/hang", 0, 0},
		};
		uint64_t id = 100;
		for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++, id++) {
			Porter__V1__HttpRequest hr;
			char url[256];
			http_req(&hr, url, sizeof(url), reqs[i].method, reqs[i].path,
				 reqs[i].body ? body : NULL, reqs[i].stream);
			if (send_http(fd, id, &hr) == 0)
				g->sent++;
		}
		if (send_select(fd, id++) == 0)
			g->sent++;
		/* The first whole response, stopped by hand. */
		if (send_cancel(fd, id++, 100) == 0)
			g->sent++;
		usleep((useconds_t)round * 60 * 1000);
		close(fd);
		frame_reader_free(&rd);
	}
	return 0;
}

/* As bob: a GET on the same worker, after alice has gone. */
static int bob_gets(void *arg)
{
	gone *g = arg;
	char url[256];
	snprintf(url, sizeof(url), "%s/slow/10", srv.base);
	for (int i = 0; i < 3; i++) {
		porter_http_response *r = NULL;
		int rc = porter_http_get(url, 0, 10000, &r);
		g->status = rc;
		snprintf(g->msg, sizeof(g->msg), "%s", rc ? porter_last_error_message() : "");
		if (rc == 0 && porter_http_response_status(r) == 200)
			g->answered++;
		porter_http_response_free(r);
	}
	return 0;
}

/* Alice's part (sending at least `sent` requests), then bob's, whose
 * three requests must all be answered, and porterd is still there to stop
 * cleanly (teardown). */
static void alice_then_bob(int (*alice)(void *), int sent, int (*bob)(void *))
{
	int alice_rc = th_as(TH_UID_ALICE, TH_GID_PORTER, 30000, alice, shm);
	if (alice_rc != 0 || kill(d.pid, 0) != 0)
		th_daemon_dump_log(&d);
	ck_assert_msg(alice_rc == 0,
		      "alice could not connect again after leaving: porterd is gone");
	ck_assert_int_ge(shm->sent, sent);
	ck_assert_int_eq(th_as(TH_UID_BOB, TH_GID_PORTER, 40000, bob, shm), 0);
	ck_assert_msg(shm->answered == 3, "bob got %d of 3 answers after alice left (last: %s %s)",
		      shm->answered, porter_error_name(shm->status), shm->msg);
	ck_assert_int_eq(kill(d.pid, 0), 0);
}

START_TEST(a_client_gone_mid_request_leaves_nothing_in_use)
{
	/* Whatever alice left to run out (the hanging and stalled ones, the
	 * batch's losers) runs out meanwhile: bob's requests go beside it. */
	alice_then_bob(alice_leaves, 6 * 10, bob_gets);
}
END_TEST

/* Sends pooled query `id` (`sql`, a cursor of `chunk` rows when not 0),
 * or on session `session`, due in `timeout_ms`. 0 or -1. */
static int send_query_in(int fd, uint64_t id, uint64_t session, const char *sql, uint32_t chunk,
			 uint32_t timeout_ms)
{
	Porter__V1__Request r = PORTER__V1__REQUEST__INIT;
	Porter__V1__DbQuery q = PORTER__V1__DB_QUERY__INIT;
	q.session = session;
	q.conninfo = session ? NULL : ci_pw;
	q.sql = (char *)sql;
	q.chunk_rows = chunk;
	r.id = id;
	r.timeout_ms = timeout_ms;
	r.body_case = PORTER__V1__REQUEST__BODY_DB_QUERY;
	r.db_query = &q;
	return th_rc_send(fd, &r);
}

/* send_query_in due in 10 s. */
static int send_query(int fd, uint64_t id, uint64_t session, const char *sql, uint32_t chunk)
{
	return send_query_in(fd, id, session, sql, chunk, 10000);
}

/* As alice: in each round, slow and fast pooled queries (the pool of 2 is
 * making its connections), a failing one, a cursor, a session with a
 * query on it, a cancel, then her connection closed after `round` x 40
 * ms. */
static int alice_leaves_db(void *arg)
{
	gone *g = arg;
	for (int round = 0; round < 6; round++) {
		frame_reader rd;
		frame_reader_init(&rd, 1 << 20);
		int fd = th_rc_open(getenv("PORTER_SOCKET"), &rd, 5000, NULL);
		if (fd < 0)
			return 1;
		static const struct {
			const char *sql;
			uint32_t chunk;
		} qs[] = {
			{"SELECT pg_sleep(0.2)", 0},
			{"SELECT 1", 0},
			{"SELECT pg_sleep(0.1)", 0},
			{"SELECT 1", 0},
			{"SELECT 1/0", 0},
			{"SELECT 1", 0},
			{"SELECT generate_series(1, 100000)", 10},
			{"SELECT pg_sleep(0.3)", 0},
			{"SELECT 1", 0},
		};
		uint64_t id = 200;
		for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++, id++)
			g->sent += send_query(fd, id, 0, qs[i].sql, qs[i].chunk) == 0;
		g->sent += send_cancel(fd, id++, 200) == 0;
		/* A session, and a query on it once it is open. */
		Porter__V1__Request r = PORTER__V1__REQUEST__INIT;
		Porter__V1__DbOpen o = PORTER__V1__DB_OPEN__INIT;
		o.conninfo = ci_pw;
		r.id = id++;
		r.timeout_ms = 10000;
		r.body_case = PORTER__V1__REQUEST__BODY_DB_OPEN;
		r.db_open = &o;
		g->sent += th_rc_send(fd, &r) == 0;
		for (long long until = th_now_ms() + (long long)round * 40; th_now_ms() < until;) {
			Porter__V1__Response *resp = th_rc_recv(fd, &rd, 20);
			if (resp && resp->body_case == PORTER__V1__RESPONSE__BODY_DB_OPEN)
				g->sent += send_query(fd, id++, resp->db_open->session,
						      "SELECT pg_sleep(0.1)", 0) == 0;
			if (resp)
				porter__v1__response__free_unpacked(resp, NULL);
		}
		close(fd);
		frame_reader_free(&rd);
	}
	return 0;
}

/* As bob: pooled SELECT 1 on the same worker, after alice has gone. */
static int bob_queries(void *arg)
{
	gone *g = arg;
	for (int i = 0; i < 3; i++) {
		porter_db_result *res = NULL;
		int rc = porter_db_query(0, ci_pw, "SELECT 1", NULL, 0, 0, 10000, &res);
		g->status = rc;
		snprintf(g->msg, sizeof(g->msg), "%s", rc ? porter_last_error_message() : "");
		if (rc == 0 && strcmp(porter_db_getvalue(res, 0, 0), "1") == 0)
			g->answered++;
		porter_db_result_free(res);
	}
	return 0;
}

START_TEST(a_client_gone_mid_query_leaves_nothing_in_use)
{
	alice_then_bob(alice_leaves_db, 6 * 11, bob_queries);
}
END_TEST

/* Pings on `fd` (read through `rd`) and, once answered, shuts her read side
 * (porterd's writes fail; it sees nothing to read) and waits `ms`. 0, or 3
 * when the ping was not answered. */
static int ping_then_stop_reading(int fd, frame_reader *rd, int ms)
{
	if (th_rc_ping(fd, 300, 0, 0) != 0)
		return 3;
	Porter__V1__Response *resp = th_rc_recv(fd, rd, 5000);
	int rc = !resp || resp->id != 300 ? 3 : 0;
	if (resp)
		porter__v1__response__free_unpacked(resp, NULL);
	if (rc)
		return rc;
	shutdown(fd, SHUT_RD);
	usleep((useconds_t)ms * 1000);
	return 0;
}

/*
 * As alice: a stream on a server that never answers, its open due to time
 * out (the sweep answers it), then a whole GET on the same connection,
 * started after it; she stops reading (shutdown SHUT_RD, so porterd's
 * writes fail while it sees nothing to read) and waits past the stream's
 * deadline. The sweep's answer to the stream fails, which closes her
 * connection inside the sweep, and the close abandons the GET: the
 * transfer after the stream in the sweep's walk.
 */
static int alice_stops_reading(void *arg)
{
	gone *g = arg;
	frame_reader rd;
	frame_reader_init(&rd, 1 << 20);
	int fd = th_rc_open(getenv("PORTER_SOCKET"), &rd, 5000, NULL);
	if (fd < 0)
		return 1;
	int rc = 2;
	for (int i = 0; i < 2; i++) {
		Porter__V1__HttpRequest hr;
		char url[256];
		http_req(&hr, url, sizeof(url), "GET", "/hang", NULL, i == 0);
		Porter__V1__Request r = PORTER__V1__REQUEST__INIT;
		r.id = 200 + (uint64_t)i;
		r.timeout_ms = i == 0 ? 700 : 10000;
		r.body_case = PORTER__V1__REQUEST__BODY_HTTP;
		r.http = &hr;
		if (th_rc_send(fd, &r) != 0)
			goto out;
		g->sent++;
	}
	/* The ping's answer says porterd has read and started both. */
	rc = ping_then_stop_reading(fd, &rd, 2000);
out:
	close(fd);
	frame_reader_free(&rd);
	return rc;
}

START_TEST(a_client_closed_by_the_sweep_leaves_the_walk_intact)
{
	alice_then_bob(alice_stops_reading, 2, bob_gets);
}
END_TEST

/* Sends DbOpen `id` for alice's password conninfo and returns the
 * session's id once open, or 0. */
static uint64_t open_session(int fd, frame_reader *rd, uint64_t id)
{
	Porter__V1__Request r = PORTER__V1__REQUEST__INIT;
	Porter__V1__DbOpen o = PORTER__V1__DB_OPEN__INIT;
	o.conninfo = ci_pw;
	r.id = id;
	r.timeout_ms = 10000;
	r.body_case = PORTER__V1__REQUEST__BODY_DB_OPEN;
	r.db_open = &o;
	Porter__V1__Response *resp = th_rc_call(fd, rd, &r, 10000);
	uint64_t s =
		resp && resp->status == 0 && resp->body_case == PORTER__V1__RESPONSE__BODY_DB_OPEN
			? resp->db_open->session
			: 0;
	if (resp)
		porter__v1__response__free_unpacked(resp, NULL);
	return s;
}

/*
 * As alice, on a session: a slow query, one queued behind it due to time
 * out in 300 ms (the sweep answers it), then more queued behind. Then:
 *
 * - `fill` 0: two more, and she stops reading (shutdown SHUT_RD:
 *   porterd's writes fail) and waits past the short deadline. The
 *   sweep's answer failed, which closed her connection inside the sweep's
 *   walk over the session's queue, and the close cancelled the next query
 *   in that walk: the walk went on from a freed query (porterd crashed).
 * - `fill` 1: enough to fill her connection's max-inflight (256: porterd
 *   stops reading it), then a Cancel of the query after the one due,
 *   which waits in porterd's read buffer. The sweep's answer made room,
 *   and the connection went on with its buffered frames inside that
 *   answer: the Cancel took the next query in the walk off the queue and
 *   freed it under the walk (porterd crashed). She waits for the
 *   cancelled query's answer.
 */
static int alice_db_sweep(gone *g, int fill)
{
	frame_reader rd;
	frame_reader_init(&rd, 1 << 20);
	int fd = th_rc_open(getenv("PORTER_SOCKET"), &rd, 5000, NULL);
	if (fd < 0)
		return 1;
	int rc = 2;
	uint64_t s = open_session(fd, &rd, 10);
	if (!s)
		goto out;
	for (uint64_t i = 0; i < (fill ? 256 : 4); i++) {
		if (send_query_in(fd, 20 + i, s, i == 0 ? "SELECT pg_sleep(1)" : "SELECT 2", 0,
				  i == 1 ? 300 : 10000) != 0)
			goto out;
		g->sent++;
	}
	if (!fill) {
		/* The ping's answer says porterd has read and queued them. */
		rc = ping_then_stop_reading(fd, &rd, 1000);
		goto out;
	}
	if (send_cancel(fd, 900, 22) != 0)
		goto out;
	g->sent++;
	rc = 3;
	for (long long until = th_now_ms() + 3000; rc && th_now_ms() < until;) {
		Porter__V1__Response *resp = th_rc_recv(fd, &rd, 100);
		if (resp && resp->id == 22 && resp->status == PORTER_E_CANCELLED)
			rc = 0;
		if (resp)
			porter__v1__response__free_unpacked(resp, NULL);
	}
out:
	close(fd);
	frame_reader_free(&rd);
	return rc;
}

static int alice_stops_reading_db(void *arg)
{
	return alice_db_sweep(arg, 0);
}

static int alice_fills_her_inflight(void *arg)
{
	return alice_db_sweep(arg, 1);
}

START_TEST(a_client_closed_by_the_db_sweep_leaves_the_walk_intact)
{
	alice_then_bob(alice_stops_reading_db, 4, bob_queries);
}
END_TEST

START_TEST(a_reply_in_the_db_sweep_starts_no_buffered_request)
{
	alice_then_bob(alice_fills_her_inflight, 257, bob_queries);
}
END_TEST

/*
 * As alice, whose uid may hold one database connection: in each round two
 * pooled queries, the second waiting for her quota while the pool makes a
 * connection for the first, and her connection closed at once. The close
 * cancels the first, which closes the pool's connection being made; the
 * pool then gives the second a connection of its own, inside the close's
 * walk over her requests, and fails it there (the closed one still counts
 * until it is freed). The walk must not go on from that freed request.
 */
static int alice_leaves_over_quota(void *arg)
{
	gone *g = arg;
	for (int round = 0; round < 5; round++) {
		frame_reader rd;
		frame_reader_init(&rd, 1 << 20);
		int fd = th_rc_open(getenv("PORTER_SOCKET"), &rd, 5000, NULL);
		if (fd < 0)
			return 1;
		g->sent += send_query(fd, 200, 0, "SELECT 1", 0) == 0;
		g->sent += send_query(fd, 201, 0, "SELECT 2", 0) == 0;
		close(fd);
		frame_reader_free(&rd);
		/* The connection closed is freed, its quota given back. */
		usleep(300 * 1000);
	}
	return 0;
}

START_TEST(a_reply_inside_the_close_walk_leaves_it_intact)
{
	alice_then_bob(alice_leaves_over_quota, 5 * 2, bob_queries);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("trust_gone");
	const TTest *tests[] = {a_client_gone_mid_request_leaves_nothing_in_use,
				a_client_gone_mid_query_leaves_nothing_in_use,
				a_client_closed_by_the_sweep_leaves_the_walk_intact,
				a_client_closed_by_the_db_sweep_leaves_the_walk_intact,
				a_reply_in_the_db_sweep_starts_no_buffered_request,
				NULL};
	TCase *tc = th_tcase(s, "trust_gone", 120, tests);
	tcase_add_checked_fixture(tc, setup, teardown);
	const TTest *quota[] = {a_reply_inside_the_close_walk_leaves_it_intact, NULL};
	tc = th_tcase(s, "trust_gone_quota", 120, quota);
	tcase_add_checked_fixture(tc, setup_one_conn, teardown);
	return s;
}

TH_MAIN_ROOT(suite)
