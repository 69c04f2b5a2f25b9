/*
 * HTTP streams under one uid's flood (issue 16): alice opens streams and
 * never reads them; bob, another uid, must still get his. porterd runs as
 * its own unprivileged uid and the clients as theirs (tests/support/
 * tenant.h), against the loopback test server.
 *
 * Proven here: streams are limited per uid (http-max-streams-per-uid),
 * across processes and workers, with a PORTER_E_BUSY naming the limit;
 * another uid keeps its own share of the worker's streams; a stream nobody
 * reads is reclaimed after http-stream-idle, its owner hears so on the next
 * read (PORTER_E_TIMEOUT, on every read until it closes the stream), and
 * the reclaimed slots serve new streams.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "httpd.h"
#include "porter.h"
#include "tenant.h"

#define PER_UID 4
#define IDLE_MS 1500
/* The idle time, the sweep's period and plenty of slack for a busy
 * machine. */
#define RECLAIMED_AFTER_MS (IDLE_MS + 1000 + 2500)

static th_daemon d;
static th_httpd srv;

typedef struct seen {
	int rc[16];
	char msg[16][256];
	long long streams_open, streams_reclaimed; /* own uid's, from stats */
	porter_uid_usage usage;                    /* bob's, with his streams open */
	int usage_rc;
} seen;

static seen *shm;

static void setup(void)
{
	/* A worker cap of two uids' worth: one uid alone could take it all
	 * if only the worker counted. */
	static const char *const extra[] = {"--workers",
					    "2",
					    "--allow-uid",
					    "61011,61012",
					    "--http-max-streams-per-uid",
					    "4",
					    "--http-max-streams",
					    "8",
					    "--http-stream-idle",
					    "1500",
					    "--http-allow-hosts",
					    "127.0.0.1:*",
					    NULL};
	ck_assert_int_eq(th_httpd_start(&srv), 0);
	shm = th_tenant_up(&d, extra, sizeof(*shm));
}

static void teardown(void)
{
	th_httpd_stop(&srv);
	th_stop_clean(&d);
}

static void note(int i, int rc)
{
	shm->rc[i] = rc;
	snprintf(shm->msg[i], sizeof(shm->msg[i]), "%s", rc < 0 ? porter_last_error_message() : "");
}

/* A stream of a body far larger than what TCP buffers hold, so it stays
 * open (paused) until read, closed or reclaimed. */
static int open_stream(porter_http_stream **s)
{
	char url[256];
	porter_http_options o = PORTER_HTTP_OPTIONS_INIT;
	o.chunk_size = 16384;
	snprintf(url, sizeof(url), "%s/bin/50000000", srv.base);
	return porter_http_stream_open("GET", url, NULL, 0, NULL, 0, &o, 0, 10000, s);
}

/* Opens `*(int *)arg` streams and leaves them unread (the process exits
 * without closing them: the daemon keeps them for their owner until they
 * idle out). rc[i] is each open's result. */
static int open_and_leave(void *arg)
{
	int n = *(int *)arg;
	memset(shm, 0, sizeof(*shm));
	for (int i = 0; i < n; i++) {
		porter_http_stream *s = NULL;
		note(i, open_stream(&s));
	}
	return 0;
}

/* Bob: his streams and a plain request, while alice holds hers. */
static int bob_works(void *arg)
{
	(void)arg;
	memset(shm, 0, sizeof(*shm));
	porter_http_stream *s[PER_UID] = {0};
	for (int i = 0; i < PER_UID; i++)
		note(i, open_stream(&s[i]));
	shm->usage = (porter_uid_usage)PORTER_UID_USAGE_INIT;
	shm->usage_rc = th_own_usage(&shm->usage);
	char url[256];
	porter_http_response *r = NULL;
	snprintf(url, sizeof(url), "%s/status/200", srv.base);
	note(PER_UID, porter_http_request("GET", url, NULL, 0, NULL, 0, NULL, 0, 10000, &r));
	porter_http_response_free(r);
	for (int i = 0; i < PER_UID; i++)
		porter_http_stream_close(s[i], 1000);
	return 0;
}

static void expect_all_ok(int n, const char *who)
{
	for (int i = 0; i < n; i++)
		ck_assert_msg(shm->rc[i] == 0, "%s: call %d gave %d '%s'", who, i, shm->rc[i],
			      shm->msg[i]);
}

static void expect_busy(int i, const char *who)
{
	ck_assert_msg(shm->rc[i] == PORTER_E_BUSY &&
			      strstr(shm->msg[i], "http-max-streams-per-uid"),
		      "%s: call %d gave %d '%s'", who, i, shm->rc[i], shm->msg[i]);
}

START_TEST(one_uid_cannot_take_every_stream)
{
	int n = PER_UID + 1;
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 30000, open_and_leave, &n), 0);
	expect_all_ok(PER_UID, "alice");
	expect_busy(PER_UID, "alice's stream past her limit");

	/* Another process of the same uid is held to the same count. */
	n = 1;
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 30000, open_and_leave, &n), 0);
	expect_busy(0, "alice's second process");

	/* Bob is not affected. */
	ck_assert_int_eq(th_as(TH_UID_BOB, TH_GID_PORTER, 30000, bob_works, NULL), 0);
	expect_all_ok(PER_UID + 1, "bob");
	/* porterctl stats shows him his HTTP streams against their limit. */
	ck_assert_int_eq(shm->usage_rc, 0);
	ck_assert_uint_eq(shm->usage.http_streams, PER_UID);
	ck_assert_uint_eq(shm->usage.max_http_streams, PER_UID);
	ck_assert_uint_ge(shm->usage.streams, PER_UID);

	/* Alice's unread streams are reclaimed; her quota serves again. */
	usleep(RECLAIMED_AFTER_MS * 1000);
	n = PER_UID;
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 30000, open_and_leave, &n), 0);
	expect_all_ok(PER_UID, "alice after the reclaim");
}
END_TEST

/* Alice reads one chunk, then stops reading: the stream is reclaimed and
 * every later read says so, until she closes it; a new stream works. */
/* The calling uid's open streams as porterd's stats count them; -1 when
 * the stats have no entry for it. */
static long long own_streams(void)
{
	porter_uid_usage u = PORTER_UID_USAGE_INIT;
	return th_own_usage(&u) == 0 ? (long long)u.streams : -1;
}

static int read_then_idle(void *arg)
{
	(void)arg;
	memset(shm, 0, sizeof(*shm));
	porter_http_stream *s = NULL;
	const void *data;
	size_t len;
	note(0, open_stream(&s));
	if (!s)
		return 0;
	note(1, porter_http_stream_read(s, 0, 10000, &data, &len));
	shm->streams_open = own_streams();
	usleep(RECLAIMED_AFTER_MS * 1000);
	shm->streams_reclaimed = own_streams();
	note(2, porter_http_stream_read(s, 0, 10000, &data, &len));
	note(3, porter_http_stream_read(s, 0, 10000, &data, &len));
	porter_http_stream_close(s, 1000);
	s = NULL;
	note(4, open_stream(&s));
	if (s)
		note(5, porter_http_stream_read(s, 0, 10000, &data, &len));
	porter_http_stream_close(s, 1000);
	return 0;
}

START_TEST(unread_stream_is_reclaimed_and_its_owner_told)
{
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 60000, read_then_idle, NULL), 0);
	ck_assert_msg(shm->rc[0] == 0, "open: %d '%s'", shm->rc[0], shm->msg[0]);
	ck_assert_msg(shm->rc[1] == 1, "first read: %d '%s'", shm->rc[1], shm->msg[1]);
	for (int i = 2; i <= 3; i++)
		ck_assert_msg(shm->rc[i] == PORTER_E_TIMEOUT && strstr(shm->msg[i], "reclaimed") &&
				      strstr(shm->msg[i], "http-stream-idle"),
			      "read %d after the idle time: %d '%s'", i - 1, shm->rc[i],
			      shm->msg[i]);
	/* The per-uid stats count the stream while it is open, not after. */
	ck_assert_int_eq(shm->streams_open, 1);
	ck_assert_msg(shm->streams_reclaimed <= 0, "streams after the reclaim: %lld",
		      shm->streams_reclaimed);
	ck_assert_msg(shm->rc[4] == 0, "new open: %d '%s'", shm->rc[4], shm->msg[4]);
	ck_assert_msg(shm->rc[5] == 1, "new read: %d '%s'", shm->rc[5], shm->msg[5]);
	fprintf(stderr, "reclaimed: '%s'\n", shm->msg[2]);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("http_quota");
	const TTest *tests[] = {one_uid_cannot_take_every_stream,
				unread_stream_is_reclaimed_and_its_owner_told, NULL};
	tcase_add_checked_fixture(th_tcase(s, "http_quota", 120, tests), setup, teardown);
	return s;
}

TH_MAIN_ROOT(suite)
