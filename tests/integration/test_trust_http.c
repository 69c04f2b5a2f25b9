/*
 * HTTP across a trust boundary (issue 15): porterd runs as its own
 * unprivileged uid, alice and bob are clients of two other uids (fork +
 * setuid, tests/support/tenant.h), and the upstream is the loopback test
 * server, which tells connections apart by their source port (/peer).
 *
 * Proven here: a client cannot smuggle a request onto an upstream
 * connection (framing and hop-by-hop headers are refused, naming the
 * header); an upstream connection never carries two uids' requests, while
 * one uid's requests still reuse theirs; credential headers do not follow a
 * redirect to another origin unless the request asks; one deadline bounds a
 * whole redirect chain; a proxy in porterd's environment serves porterd's own
 * uid only; another uid cannot fetch, upload to or close a stream; without
 * http-allow-hosts a foreign uid reaches no host (porterd's own uid any),
 * and an allow-list entry admits its own port only, redirects included.
 *
 * One worker, so every client lands on the same loop and would share its
 * connection cache if anything did.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "httpd.h"
#include "porter.h"
#include "rawc.h"
#include "steal.h"
#include "tenant.h"

static th_daemon d;
static th_httpd srv;

/* HTTP fails closed for foreign clients without http-allow-hosts: the
 * test server, on a port the OS picks, is let in by name on any port. */
#define ALLOW_TEST_SERVER "127.0.0.1:*,localhost:*"

/* What a child saw, brought back to the test (th_shared_alloc). */
typedef struct seen {
	int rc;
	int status;
	char msg[512];
	char body[1024];
	char got[4][128]; /* X-Got-* values asked for, "" when absent */
	long long elapsed_ms;
} seen;

static seen *shm;

static void setup(void)
{
	static const char *const extra[] = {
		"--workers",       "1", "--allow-uid", "61011,61012", "--http-allow-hosts",
		ALLOW_TEST_SERVER, NULL};
	ck_assert_int_eq(th_httpd_start(&srv), 0);
	shm = th_tenant_up(&d, extra, sizeof(*shm));
}

static void teardown(void)
{
	th_httpd_stop(&srv);
	th_stop_clean(&d);
}

/* One request in a child, recorded in shm. */
typedef struct call {
	const char *method;
	char url[512];
	const char *const *headers;
	size_t n_headers;
	const char *body;
	porter_http_options opts;
	int timeout_ms;
	const char *want[4]; /* response headers to copy into shm->got */
} call;

static int do_call(void *arg)
{
	const call *c = arg;
	porter_http_response *r = NULL;
	memset(shm, 0, sizeof(*shm));
	long long t0 = th_now_ms();
	shm->rc =
		porter_http_request(c->method, c->url, c->headers, c->n_headers, c->body,
				    c->body ? strlen(c->body) : 0, &c->opts, 0, c->timeout_ms, &r);
	shm->elapsed_ms = th_now_ms() - t0;
	if (shm->rc < 0) {
		snprintf(shm->msg, sizeof(shm->msg), "%s", porter_last_error_message());
		return 0;
	}
	size_t len = 0;
	const char *b = porter_http_response_body(r, &len);
	shm->status = porter_http_response_status(r);
	snprintf(shm->body, sizeof(shm->body), "%.*s", (int)len, b);
	for (int i = 0; i < 4 && c->want[i]; i++) {
		const char *v = porter_http_response_header(r, c->want[i]);
		snprintf(shm->got[i], sizeof(shm->got[i]), "%s", v ? v : "");
	}
	porter_http_response_free(r);
	return 0;
}

/* Runs `c` as `uid`; the outcome is in shm. */
static void run_as(uid_t uid, call *c)
{
	if (!c->timeout_ms)
		c->timeout_ms = 10000;
	c->opts.struct_size = sizeof(c->opts);
	ck_assert_int_eq(th_as(uid, TH_GID_PORTER, 30000, do_call, c), 0);
}

static void get_as(uid_t uid, const char *path)
{
	call c = {.method = "GET"};
	snprintf(c.url, sizeof(c.url), "%s%s", srv.base, path);
	run_as(uid, &c);
}

/* The attack: alice's POST says its body is empty, so the server
 * reads the body as a second request, which waits for 90 more bytes; bob's
 * next request, with his bearer token, would become those bytes on the same
 * upstream connection, and alice would read them back from /stored. */
START_TEST(request_smuggling_is_refused)
{
	static const char smuggled[] = "POST /store/loot HTTP/1.1\r\n"
				       "Host: 127.0.0.1\r\n"
				       "Content-Length: 90\r\n\r\n";
	const char *alice_hdr[] = {"Content-Length: 0"};
	call c = {.method = "POST", .headers = alice_hdr, .n_headers = 1, .body = smuggled};
	snprintf(c.url, sizeof(c.url), "%s/echo", srv.base);
	run_as(TH_UID_ALICE, &c);
	int alice_rc = shm->rc;
	char alice_msg[512];
	snprintf(alice_msg, sizeof(alice_msg), "%s", shm->msg);

	char pad[160];
	memset(pad, 'p', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	char pad_hdr[200];
	snprintf(pad_hdr, sizeof(pad_hdr), "X-Test-Pad: %s", pad);
	const char *bob_hdr[] = {"Authorization: Bearer bob-secret-token", pad_hdr};
	call b = {.method = "GET",
		  .headers = bob_hdr,
		  .n_headers = 2,
		  .want = {"X-Got-Authorization", "X-Method"}};
	snprintf(b.url, sizeof(b.url), "%s/echo", srv.base);
	run_as(TH_UID_BOB, &b);
	int bob_rc = shm->rc, bob_status = shm->status;
	char bob_auth[128], bob_method[128];
	snprintf(bob_auth, sizeof(bob_auth), "%s", shm->got[0]);
	snprintf(bob_method, sizeof(bob_method), "%s", shm->got[1]);

	get_as(TH_UID_ALICE, "/stored/loot");
	fprintf(stderr, "smuggling: alice %d '%s'; bob %d %d '%s'; loot %d %d '%s' '%.120s'\n",
		alice_rc, alice_msg, bob_rc, bob_status, bob_auth, shm->rc, shm->status, shm->msg,
		shm->body);
	ck_assert_ptr_null(strstr(shm->body, "bob-secret"));
	ck_assert_int_eq(alice_rc, PORTER_E_INVAL);
	ck_assert_ptr_nonnull(strstr(alice_msg, "Content-Length"));
	/* Bob's request reached the server as he sent it. */
	ck_assert_int_eq(bob_rc, 0);
	ck_assert_int_eq(bob_status, 200);
	ck_assert_str_eq(bob_auth, "Bearer bob-secret-token");
	ck_assert_str_eq(bob_method, "GET");
}
END_TEST

/* Each refused header gives PORTER_E_INVAL with a message naming it. */
START_TEST(refused_headers_name_the_header)
{
	static const struct {
		const char *line;
		const char *named; /* in the message */
	} bad[] = {
		{"Content-Length: 5", "Content-Length"},
		{"Transfer-Encoding: chunked", "Transfer-Encoding"},
		{"transfer-encoding: chunked", "transfer-encoding"},
		{"Connection: close", "Connection"},
		{"Keep-Alive: timeout=5", "Keep-Alive"},
		{"TE: trailers", "TE"},
		{"Trailer: X-Sum", "Trailer"},
		{"Upgrade: h2c", "Upgrade"},
		{"Expect: 100-continue", "Expect"},
		{"Proxy-Authorization: Basic eDp5", "Proxy-Authorization"},
		{"Proxy-Connection: keep-alive", "Proxy-Connection"},
		{"Host: evil.example", "Host"},
		{"X-Test-A: one\r\nInjected: two", "X-Test-A"},
		{"X-Test-B: one\ntwo", "X-Test-B"},
		{"X-Test-C: a\001b", "X-Test-C"},
		{"X-Test-D: a\177b", "X-Test-D"},
		{"X-Te st: a", "header name"},
		{"X\r\nInjected: 1", "header name"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *h[] = {bad[i].line};
		call c = {.method = "POST", .headers = h, .n_headers = 1, .body = "x"};
		snprintf(c.url, sizeof(c.url), "%s/echo", srv.base);
		run_as(TH_UID_ALICE, &c);
		if (shm->rc != PORTER_E_INVAL || !strstr(shm->msg, bad[i].named))
			ck_abort_msg("header %zu (%s) gave %d '%s'", i, bad[i].named, shm->rc,
				     shm->msg);
	}
	/* What is allowed still works: a Host naming the URL's own host and
	 * port, a tab in a value, an ordinary header. */
	char host[64];
	snprintf(host, sizeof(host), "Host: 127.0.0.1:%d", srv.port);
	const char *ok[] = {host, "X-Test-Ok: tab\there"};
	call c = {.method = "GET", .headers = ok, .n_headers = 2, .want = {"X-Got-Ok"}};
	snprintf(c.url, sizeof(c.url), "%s/echo", srv.base);
	run_as(TH_UID_ALICE, &c);
	ck_assert_msg(shm->rc == 0, "allowed headers: %d %s", shm->rc, shm->msg);
	ck_assert_int_eq(shm->status, 200);
	ck_assert_str_eq(shm->got[0], "tab\there");
}
END_TEST

/* The server sees alice's second request on her first connection (reuse
 * works within a uid), bob's on another one, and alice's connection is
 * still hers afterwards. */
START_TEST(upstream_connections_are_per_uid)
{
	get_as(TH_UID_ALICE, "/peer");
	ck_assert_int_eq(shm->status, 200);
	int a1 = atoi(shm->body);
	get_as(TH_UID_ALICE, "/peer");
	int a2 = atoi(shm->body);
	get_as(TH_UID_BOB, "/peer");
	int b1 = atoi(shm->body);
	get_as(TH_UID_BOB, "/peer");
	int b2 = atoi(shm->body);
	get_as(TH_UID_ALICE, "/peer");
	int a3 = atoi(shm->body);
	fprintf(stderr, "peer ports: alice %d %d %d, bob %d %d\n", a1, a2, a3, b1, b2);
	ck_assert_int_gt(a1, 0);
	ck_assert_int_gt(b1, 0);
	ck_assert_int_eq(a2, a1);
	ck_assert_int_eq(a3, a1);
	ck_assert_int_eq(b2, b1);
	ck_assert_int_ne(b1, a1);
}
END_TEST

/* Authorization, Cookie, X-Api-Key and X-Auth-Token reach a same-origin
 * redirect target, not a cross-origin one (localhost vs 127.0.0.1), unless
 * the request sets keep_credentials. */
START_TEST(credentials_stay_with_their_origin)
{
	const char *h[] = {"Authorization: Bearer a", "Cookie: c=1", "X-Api-Key: k",
			   "X-Auth-Token: t", "X-Test-Keep: yes"};
	call c = {.method = "GET",
		  .headers = h,
		  .n_headers = 5,
		  .opts = {.follow_redirects = 1},
		  .want = {"X-Got-Authorization", "X-Got-Cookie", "X-Got-X-Api-Key",
			   "X-Got-X-Auth-Token"}};

	snprintf(c.url, sizeof(c.url), "%s/redirect-to?url=/echo", srv.base);
	run_as(TH_UID_ALICE, &c);
	ck_assert_msg(shm->rc == 0, "%d %s", shm->rc, shm->msg);
	ck_assert_str_eq(shm->got[0], "Bearer a");
	ck_assert_str_eq(shm->got[1], "c=1");
	ck_assert_str_eq(shm->got[2], "k");
	ck_assert_str_eq(shm->got[3], "t");

	snprintf(c.url, sizeof(c.url), "%s/redirect-to?url=http://localhost:%d/echo", srv.base,
		 srv.port);
	run_as(TH_UID_ALICE, &c);
	ck_assert_msg(shm->rc == 0, "%d %s", shm->rc, shm->msg);
	ck_assert_int_eq(shm->status, 200);
	for (int i = 0; i < 4; i++)
		ck_assert_msg(shm->got[i][0] == '\0', "%s followed a cross-origin redirect: %s",
			      c.want[i], shm->got[i]);

	c.opts.keep_credentials = 1;
	run_as(TH_UID_ALICE, &c);
	ck_assert_msg(shm->rc == 0, "%d %s", shm->rc, shm->msg);
	ck_assert_str_eq(shm->got[0], "Bearer a");
	ck_assert_str_eq(shm->got[1], "c=1");
	ck_assert_str_eq(shm->got[2], "k");
	ck_assert_str_eq(shm->got[3], "t");
}
END_TEST

/*
 * porterd's environment names a proxy with porterd's credentials in it
 * (as a unit's Environment= or a desktop session would). A foreign
 * client's request never goes through it: it would carry porterd's
 * Proxy-Authorization and reach whatever the proxy reaches. The test
 * server stands for the proxy (it serves an absolute-form request like any
 * other); the target, port 1 of loopback, refuses a direct connection.
 * Before, alice got 200 from /echo with porterd's proxy password in it.
 */
START_TEST(proxy_from_the_environment_is_porterds_own)
{
	static const char *const extra[] = {
		"--workers",       "1", "--allow-uid", "61010,61011,61012", "--http-allow-hosts",
		ALLOW_TEST_SERVER, NULL};
	static const char *const vars[] = {"http_proxy", "HTTPS_PROXY", "ALL_PROXY"};
	char proxy[128];
	snprintf(proxy, sizeof(proxy), "http://porterd:proxy-secret@127.0.0.1:%d", srv.port);
	th_stop_clean(&d);
	for (size_t i = 0; i < 3; i++)
		ck_assert_int_eq(setenv(vars[i], proxy, 1), 0);
	shm = th_tenant_up(&d, extra, sizeof(*shm));
	for (size_t i = 0; i < 3; i++)
		unsetenv(vars[i]);

	call c = {.method = "GET", .want = {"X-Got-Proxy-Authorization"}};
	snprintf(c.url, sizeof(c.url), "http://127.0.0.1:1/echo");
	run_as(TH_UID_ALICE, &c);
	ck_assert_msg(shm->rc < 0, "alice's request went through porterd's proxy: %d, %s",
		      shm->status, shm->got[0]);
	run_as(TH_UID_BOB, &c);
	ck_assert_msg(shm->rc < 0, "bob's request went through porterd's proxy: %d, %s",
		      shm->status, shm->got[0]);
	/* The environment is porterd's own uid's: its requests keep it. */
	run_as(TH_UID_DAEMON, &c);
	ck_assert_msg(shm->rc == 0, "%d %s", shm->rc, shm->msg);
	ck_assert_int_eq(shm->status, 200);
	ck_assert_str_eq(shm->got[0], "Basic cG9ydGVyZDpwcm94eS1zZWNyZXQ=");
}
END_TEST

/* ---- streams: their owner's only ---- */

/* Alice's stream (steal.h): a streamed GET of 300,000 bytes in 4 KiB
 * chunks; bob fetches, uploads to and closes it with her client
 * instance; then she reads its next chunk. */
static Porter__V1__HttpRequest s_get = PORTER__V1__HTTP_REQUEST__INIT;
static Porter__V1__HttpFetch s_fetch = PORTER__V1__HTTP_FETCH__INIT;
static Porter__V1__HttpUpload s_upload = PORTER__V1__HTTP_UPLOAD__INIT;
static Porter__V1__HttpClose s_close = PORTER__V1__HTTP_CLOSE__INIT;

static uint64_t stream_of(const Porter__V1__Response *r)
{
	return r->body_case == PORTER__V1__RESPONSE__BODY_HTTP ? r->http->stream_id : 0;
}

static void aim_at_stream(uint64_t id)
{
	s_fetch.stream_id = s_upload.stream_id = s_close.stream_id = id;
}

/* Bob knows alice's stream id (ids are unguessable, but say he learnt it)
 * and her client instance, and asks from connections on both workers:
 * every fetch, upload and close is refused, and alice's stream is still
 * hers to read. (This held when tried: a stream matches uid and client
 * instance, on its own worker and through forwarding alike.) */
START_TEST(http_streams_stay_with_their_owner)
{
	static const char *const extra[] = {
		"--workers",       "2", "--allow-uid", "61011,61012", "--http-allow-hosts",
		ALLOW_TEST_SERVER, NULL};
	th_stop_clean(&d);
	shm = th_tenant_up(&d, extra, sizeof(*shm));
	static char url[128];
	snprintf(url, sizeof(url), "%s/bin/300000", srv.base);
	s_get.method = "GET";
	s_get.url = url;
	s_get.stream = 1;
	s_get.chunk_size = 4096;
	s_upload.data.data = (uint8_t *)"x";
	s_upload.data.len = 1;
	Porter__V1__Request open = PORTER__V1__REQUEST__INIT, again = PORTER__V1__REQUEST__INIT;
	open.body_case = PORTER__V1__REQUEST__BODY_HTTP;
	open.http = &s_get;
	again.body_case = PORTER__V1__REQUEST__BODY_HTTP_FETCH;
	again.http_fetch = &s_fetch;
	Porter__V1__Request tries[3] = {again, PORTER__V1__REQUEST__INIT,
					PORTER__V1__REQUEST__INIT};
	tries[1].body_case = PORTER__V1__REQUEST__BODY_HTTP_UPLOAD;
	tries[1].http_upload = &s_upload;
	tries[2].body_case = PORTER__V1__REQUEST__BODY_HTTP_CLOSE;
	tries[2].http_close = &s_close;
	th_steal *s = th_steal_new();
	*s = (th_steal){.open = &open,
			.again = &again,
			.tries = tries,
			.n_tries = 3,
			.opened_id = stream_of,
			.aim = aim_at_stream,
			.timeout_ms = 20000};
	th_steal_refused(s, "stream");
	ck_assert_uint_gt(s->again_body_len, 0);
}
END_TEST

static int hops(void)
{
	get_as(TH_UID_BOB, "/hops");
	ck_assert_int_eq(shm->status, 200);
	return atoi(shm->body);
}

/* Five hops of 400 ms each under a 1,000 ms budget: the chain ends with
 * PORTER_E_TIMEOUT once the budget is spent, and no hop starts after
 * that. Before, each hop got the whole budget again. */
START_TEST(redirect_chain_shares_one_deadline)
{
	int before = hops();
	call c = {.method = "GET", .opts = {.follow_redirects = 1, .transfer_timeout_ms = 1000}};
	snprintf(c.url, sizeof(c.url), "%s/slow-redirect/400/4", srv.base);
	run_as(TH_UID_ALICE, &c);
	fprintf(stderr, "transfer_timeout 1000: %d '%s' after %lld ms\n", shm->rc, shm->msg,
		shm->elapsed_ms);
	ck_assert_int_eq(shm->rc, PORTER_E_TIMEOUT);
	ck_assert_int_lt(shm->elapsed_ms, 5000);
	usleep(2500 * 1000);
	int served = hops() - before;
	ck_assert_int_le(served, 3);

	/* The call's own timeout is the budget when no transfer timeout is
	 * given: the daemon stops the chain too, not only the client. */
	before = hops();
	c.opts.transfer_timeout_ms = 0;
	c.timeout_ms = 1000;
	run_as(TH_UID_ALICE, &c);
	fprintf(stderr, "call timeout 1000: %d '%s' after %lld ms\n", shm->rc, shm->msg,
		shm->elapsed_ms);
	ck_assert_int_eq(shm->rc, PORTER_E_TIMEOUT);
	usleep(2500 * 1000);
	served = hops() - before;
	ck_assert_int_le(served, 3);
}
END_TEST

/* ---- the allow-list: closed for foreign uids, ports included ---- */

/* Restarts porterd with `allow` as http-allow-hosts (NULL: none) and
 * porterd's own uid among its clients. */
static void restart_allowing(const char *allow)
{
	const char *extra[] = {"--workers", "1",  "--allow-uid", "61010,61011,61012",
			       NULL,        NULL, NULL};
	if (allow) {
		extra[4] = "--http-allow-hosts";
		extra[5] = allow;
	}
	th_stop_clean(&d);
	shm = th_tenant_up(&d, extra, sizeof(*shm));
}

/* The default config has no http-allow-hosts. Before, a foreign uid then
 * had porterd's whole network position: a loopback service (here the
 * test server), 169.254.169.254, whatever a firewall lets porterd's uid
 * reach. Now it reaches none, told which setting to change; porterd's own
 * uid keeps what it had. */
START_TEST(no_allow_list_fails_closed_for_foreign_uids)
{
	restart_allowing(NULL);
	get_as(TH_UID_ALICE, "/echo");
	ck_assert_msg(shm->rc == PORTER_E_HTTP_HOST, "alice reached loopback: %d %s status %d",
		      shm->rc, shm->msg, shm->status);
	ck_assert_msg(strstr(shm->msg, "http-allow-hosts") != NULL, "%s", shm->msg);
	get_as(TH_UID_BOB, "/echo");
	ck_assert_int_eq(shm->rc, PORTER_E_HTTP_HOST);
	call c = {.method = "GET", .timeout_ms = 3000};
	snprintf(c.url, sizeof(c.url), "http://169.254.169.254/latest/meta-data/");
	run_as(TH_UID_ALICE, &c);
	ck_assert_int_eq(shm->rc, PORTER_E_HTTP_HOST);
	get_as(TH_UID_DAEMON, "/echo");
	ck_assert_msg(shm->rc == 0, "porterd's own uid: %d %s", shm->rc, shm->msg);
	ck_assert_int_eq(shm->status, 200);
}
END_TEST

/* "127.0.0.1" in the allow-list admits port 80 only: before, it admitted
 * the test server's port too (as it would a Redis on 6379). host:port
 * admits that port, and a redirect is checked the same way: to another
 * port or to a host not listed it is refused, nothing sent there. */
START_TEST(allow_list_entries_bind_their_port)
{
	restart_allowing("127.0.0.1");
	get_as(TH_UID_ALICE, "/echo");
	ck_assert_msg(shm->rc == PORTER_E_HTTP_HOST, "a port not listed was reached: %d %s",
		      shm->rc, shm->msg);
	ck_assert_msg(strstr(shm->msg, "http-allow-hosts") != NULL, "%s", shm->msg);

	char allow[64];
	snprintf(allow, sizeof(allow), "127.0.0.1:%d", srv.port);
	restart_allowing(allow);
	get_as(TH_UID_ALICE, "/echo");
	ck_assert_msg(shm->rc == 0, "the listed port: %d %s", shm->rc, shm->msg);
	ck_assert_int_eq(shm->status, 200);

	int before = hops();
	call c = {.method = "GET", .opts = {.follow_redirects = 1}};
	snprintf(c.url, sizeof(c.url), "%s/redirect-to?url=http://127.0.0.1:%d/hops", srv.base,
		 srv.port + 1 == 65536 ? 1 : srv.port + 1);
	run_as(TH_UID_ALICE, &c);
	ck_assert_msg(shm->rc == PORTER_E_HTTP_HOST, "redirect to another port: %d %s", shm->rc,
		      shm->msg);
	snprintf(c.url, sizeof(c.url), "%s/redirect-to?url=http://localhost:%d/slow-redirect/0/0",
		 srv.base, srv.port);
	run_as(TH_UID_ALICE, &c);
	ck_assert_msg(shm->rc == PORTER_E_HTTP_HOST, "redirect to a host not listed: %d %s",
		      shm->rc, shm->msg);
	/* The test server never saw the redirect to localhost. */
	ck_assert_int_eq(hops(), before);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("trust_http");
	const TTest *tests[] = {request_smuggling_is_refused,
				refused_headers_name_the_header,
				upstream_connections_are_per_uid,
				credentials_stay_with_their_origin,
				proxy_from_the_environment_is_porterds_own,
				http_streams_stay_with_their_owner,
				redirect_chain_shares_one_deadline,
				no_allow_list_fails_closed_for_foreign_uids,
				allow_list_entries_bind_their_port,
				NULL};
	TCase *tc = th_tcase(s, "trust_http", 120, tests);
	tcase_add_checked_fixture(tc, setup, teardown);
	return s;
}

TH_MAIN_ROOT(suite)
