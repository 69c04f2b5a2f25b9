/*
 * What a whole HTTP response holds for its uid while it arrives. porterd
 * keeps a response's body until the last byte (a server may take as long
 * as the request's deadline to send it), up to http-max-response each,
 * and a uid may have thousands of requests in flight. The bodies count in
 * the uid's buffered bytes (uid-max-buffered) like its unsent replies:
 * one that cannot grow within the quota fails with PORTER_E_BUSY naming
 * it, instead of holding memory every other uid shares.
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
#include "tenant.h"

#define CHILD_MS 60000
#define GETS 4
/* Each GET: 6,000,000 bytes promised (reserved at once), 3,000,000
 * sent, then nothing until the client gives up. */
#define STALL "/stall/3000000"
#define GET_MS 8000

static th_daemon d;
static th_httpd srv;

/* The test server, and porterd serving alice with uid-max-buffered 8 MiB
 * and the server's host allowed. */
static void start(void)
{
	ck_assert_int_eq(th_httpd_start(&srv), 0);
	const char *extra[] = {"--workers",
			       "1",
			       "--allow-uid",
			       "61011",
			       "--http-allow-hosts",
			       "127.0.0.1:*",
			       "--uid-max-buffered",
			       "8388608",
			       NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, extra), 0);
}

static void stop(void)
{
	th_httpd_stop(&srv);
	th_stop_clean(&d);
}

typedef struct get {
	const char *url;
	int rc;
	char msg[256];
} get;

static void *one_get(void *arg)
{
	get *g = arg;
	porter_http_response *res = NULL;
	g->rc = porter_http_get(g->url, 0, GET_MS, &res);
	snprintf(g->msg, sizeof(g->msg), "%s", porter_last_error_message());
	porter_http_response_free(res);
	return NULL;
}

/* GETS stalled GETs at once, one thread (and connection) each. Those
 * past the quota fail PORTER_E_BUSY naming it; the others wait for their
 * deadline (PORTER_E_TIMEOUT). */
static int alice_stalls(void *arg)
{
	char url[128];
	snprintf(url, sizeof(url), "%s%s", (const char *)arg, STALL);
	get g[GETS];
	pthread_t t[GETS];
	for (int i = 0; i < GETS; i++) {
		g[i].url = url;
		if (pthread_create(&t[i], NULL, one_get, &g[i]) != 0)
			return 1;
	}
	int busy = 0, bad = 0;
	for (int i = 0; i < GETS; i++) {
		pthread_join(t[i], NULL);
		fprintf(stderr, "GET %d: %s: %s\n", i, porter_error_name(g[i].rc), g[i].msg);
		if (g[i].rc == PORTER_E_BUSY && strstr(g[i].msg, "uid-max-buffered"))
			busy++;
		else if (g[i].rc != PORTER_E_TIMEOUT)
			bad++;
	}
	if (busy == 0 || bad) {
		fprintf(stderr, "%d of %d GETs refused for the quota, %d failed otherwise\n", busy,
			GETS, bad);
		return 1;
	}
	/* Nothing stays counted once they are over. */
	return th_own_buffered_below(1u << 20);
}

/*
 * uid-max-buffered 8 MiB: four GETs that each reserve 6 MB for the length
 * promised and receive 3 MB hold 12-24 MB. The old porterd held them all
 * until the deadline: "0 of 4 GETs refused for the quota". Now at least
 * one is refused.
 */
START_TEST(stalled_bodies_count_against_the_uid)
{
	start();
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_stalls, srv.base), 0);
	stop();
}
END_TEST

/* A response within the quota, many times over: each one's count is
 * given back when its reply goes out, so none is refused for what the
 * ones before held. */
static int alice_gets(void *arg)
{
	char url[128];
	snprintf(url, sizeof(url), "%s/bin/3000000", (const char *)arg);
	for (int i = 0; i < 8; i++) {
		porter_http_response *res = NULL;
		int rc = porter_http_get(url, 0, 20000, &res);
		size_t len = 0;
		if (rc == 0)
			porter_http_response_body(res, &len);
		porter_http_response_free(res);
		if (rc != 0 || len != 3000000) {
			fprintf(stderr, "GET %d: %s (%s), %zu bytes\n", i, porter_error_name(rc),
				porter_last_error_message(), len);
			return 1;
		}
	}
	return 0;
}

START_TEST(bodies_within_the_quota_are_answered)
{
	start();
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_gets, srv.base), 0);
	stop();
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {stalled_bodies_count_against_the_uid,
				bodies_within_the_quota_are_answered, NULL};
	return th_suite("trust_http_held", "held", 120, tests);
}

TH_MAIN_ROOT(suite)
