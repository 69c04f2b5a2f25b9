/*
 * Trust boundary, what one uid sees and stops of another's (issue 15):
 * porterd runs as its own unprivileged uid, clients as two others
 * (tenant.h).
 *
 * - Stats and metrics show no client another uid's activity (metrics only
 *   when the administrator sets metrics-uid-usage).
 * - A cancel never stops another uid's request, even naming its client
 *   instance.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "rawc.h"
#include "tenant.h"

static th_daemon d;

/* ---- stats: per uid, and only one's own ---- */

typedef struct seen_uids {
	volatile int ready, go;
	int n;
	uint32_t uid[8];
	uint64_t conns[8];
} seen_uids;

static int stats_uids(void *arg)
{
	seen_uids *s = arg;
	porter_stats_snapshot *st;
	if (porter_stats(0, 3000, &st) != 0)
		return 1;
	s->n = (int)porter_stats_uids(st);
	for (int i = 0; i < s->n && i < 8; i++) {
		porter_uid_usage u = PORTER_UID_USAGE_INIT;
		if (porter_stats_uid(st, (size_t)i, &u) != 0)
			return 2;
		s->uid[i] = u.uid;
		s->conns[i] = u.connections;
	}
	porter_stats_free(st);
	return 0;
}

/* Bob holds a connection open until told to let go. */
static int hold_open(void *arg)
{
	seen_uids *s = arg;
	if (porter_ping("b", 1, 0, 3000) != 0)
		return 1;
	s->ready = 1;
	th_wait_flag(&s->go, 10000);
	return 0;
}

static void *run_bob_hold(void *arg)
{
	th_as(TH_UID_BOB, TH_GID_PORTER, 20000, hold_open, arg);
	return NULL;
}

static int find_uid(const seen_uids *s, uint32_t uid)
{
	for (int i = 0; i < s->n && i < 8; i++)
		if (s->uid[i] == uid)
			return i;
	return -1;
}

START_TEST(stats_show_only_own_uid)
{
	const char *args[] = {"--allow-uid", "61010,61011,61012", NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	seen_uids *bob = th_shared_alloc(sizeof(*bob));
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, run_bob_hold, bob), 0);
	ck_assert(th_wait_flag(&bob->ready, 10000));

	/* Alice (foreign) sees her own uid, never bob's. */
	seen_uids *a = th_shared_alloc(sizeof(*a));
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 10000, stats_uids, a), 0);
	ck_assert_int_eq(a->n, 1);
	ck_assert_uint_eq(a->uid[0], TH_UID_ALICE);
	ck_assert_uint_ge(a->conns[0], 1);
	/* porterd's own uid (local) sees every uid holding something. */
	seen_uids *l = th_shared_alloc(sizeof(*l));
	ck_assert_int_eq(th_as(TH_UID_DAEMON, TH_GID_PORTER, 10000, stats_uids, l), 0);
	int b = find_uid(l, TH_UID_BOB);
	ck_assert_int_ge(b, 0);
	ck_assert_uint_eq(l->conns[b], 1);
	ck_assert_int_ge(find_uid(l, TH_UID_DAEMON), 0);

	bob->go = 1;
	pthread_join(t, NULL);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

/* ---- metrics: no uid's activity for every reader ---- */

typedef struct metrics_seen {
	int file_ok, http_ok;   /* a whole exposition was read */
	int file_bob, http_bob; /* bob's uid is in it */
} metrics_seen;

static char m_file[128]; /* set before the children fork */
static int m_port;

static void fill_metrics_seen(const char *text, int *ok, int *bob)
{
	char pat[32];
	snprintf(pat, sizeof(pat), "uid=\"%u\"", (unsigned)TH_UID_BOB);
	*ok = strstr(text, "porter_workers 1") != NULL;
	*bob = strstr(text, pat) != NULL;
}

/* A TCP connection to the metrics endpoint, or -1. */
static int metrics_connect(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)m_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* GET /metrics on connection `fd` (closed here) into `text`
 * (NUL-terminated, "" when nothing came). 0, or -1 when it could not
 * send. */
static int scrape_on(int fd, char *text, size_t cap)
{
	size_t got = 0;
	text[0] = '\0';
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1) {
		close(fd);
		return -1;
	}
	for (long long until = th_now_ms() + 5000; got < cap - 1 && th_now_ms() < until;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t r = recv(fd, text + got, cap - 1 - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	text[got] = '\0';
	return 0;
}

/* scrape_on a new connection; -1 also when it could not connect. */
static int scrape(char *text, size_t cap)
{
	int fd = metrics_connect();
	return fd < 0 ? -1 : scrape_on(fd, text, cap);
}

/* As alice: the metrics file, then GET /metrics. */
static int read_metrics(void *arg)
{
	metrics_seen *s = arg;
	static char text[65536];
	size_t got = 0;
	FILE *f = fopen(m_file, "r");
	if (f) {
		got = fread(text, 1, sizeof(text) - 1, f);
		fclose(f);
	}
	text[got] = '\0';
	fill_metrics_seen(text, &s->file_ok, &s->file_bob);
	if (scrape(text, sizeof(text)) < 0)
		return 1;
	fill_metrics_seen(text, &s->http_ok, &s->http_bob);
	return 0;
}

/* Starts porterd with metrics (plus `more`, NULL-terminated), bob holding
 * a connection, and returns what alice read once the metrics show bob's
 * connection. */
static metrics_seen *metrics_with_bob(const char *const *more, seen_uids *bob, pthread_t *t)
{
	const char *args[16] = {"--allow-uid",        "61010,61011,61012",
				"--workers",          "1",
				"--metrics-file",     m_file,
				"--metrics-interval", "100",
				"--metrics-listen",   NULL};
	for (size_t n = 10; more && *more && n < 15; more++)
		args[n++] = *more;
	m_port = th_daemon_start_tcp(&d, TH_UID_DAEMON, TH_GID_PORTER, args, 9);
	ck_assert_int_eq(pthread_create(t, NULL, run_bob_hold, bob), 0);
	ck_assert(th_wait_flag(&bob->ready, 10000));
	/* Bob's connection is the only one: the file shows it once it was
	 * rewritten after bob connected. */
	long long until = th_now_ms() + 10000;
	while (th_now_ms() < until && !th_file_has(m_file, "porter_connections{worker=\"0\"} 1"))
		usleep(50 * 1000);
	ck_assert(th_file_has(m_file, "porter_connections{worker=\"0\"} 1"));
	metrics_seen *s = th_shared_alloc(sizeof(*s));
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 10000, read_metrics, s), 0);
	ck_assert_msg(s->file_ok && s->http_ok, "alice read no metrics (file %d, endpoint %d)",
		      s->file_ok, s->http_ok);
	return s;
}

/*
 * The metrics file is readable by porterd's group (which holds its clients
 * under the system unit) and the endpoint by every local user. Before,
 * both listed what every uid held (connections, requests in flight, bytes,
 * sessions, streams): alice watched bob's activity, which porter_stats
 * never shows her. Now porter_uid_usage is there only when the
 * administrator sets metrics-uid-usage.
 */
START_TEST(metrics_hide_other_uids_by_default)
{
	char dir[] = "/tmp/porter-trust-metrics-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chown(dir, TH_UID_DAEMON, TH_GID_PORTER), 0);
	ck_assert_int_eq(chmod(dir, 0755), 0);
	snprintf(m_file, sizeof(m_file), "%s/porter.prom", dir);

	seen_uids *bob = th_shared_alloc(sizeof(*bob));
	pthread_t t;
	metrics_seen *s = metrics_with_bob(NULL, bob, &t);
	ck_assert_msg(!s->file_bob, "the metrics file shows bob's uid to alice");
	ck_assert_msg(!s->http_bob, "GET /metrics shows bob's uid to alice");
	bob->go = 1;
	pthread_join(t, NULL);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);

	/* The administrator's choice: then every reader sees every uid. */
	memset(bob, 0, sizeof(*bob));
	const char *more[] = {"--metrics-uid-usage=true", NULL};
	s = metrics_with_bob(more, bob, &t);
	ck_assert(s->file_bob && s->http_bob);
	bob->go = 1;
	pthread_join(t, NULL);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
	unlink(m_file);
	rmdir(dir);
}
END_TEST

/* ---- metrics: no uid can keep the scraper out ---- */

#define HOLDERS 48 /* three times the endpoint's connection slots */

typedef struct slot_hold {
	volatile int ready, go;
	int opened; /* connections alice opened and started a request on */
} slot_hold;

/* Alice opens HOLDERS connections to the endpoint, each with half a
 * request, and sits on them until told to let go. */
static int hold_metrics_slots(void *arg)
{
	slot_hold *h = arg;
	int fds[HOLDERS];
	for (int i = 0; i < HOLDERS; i++) {
		fds[i] = metrics_connect();
		if (fds[i] >= 0 && send(fds[i], "GET /met", 8, MSG_NOSIGNAL) == 8)
			h->opened++;
	}
	h->ready = 1;
	th_wait_flag(&h->go, 30000);
	for (int i = 0; i < HOLDERS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return 0;
}

static void *run_hold_metrics_slots(void *arg)
{
	th_as(TH_UID_ALICE, TH_GID_PORTER, 40000, hold_metrics_slots, arg);
	return NULL;
}

/* porterd with the endpoint and one worker. */
static void metrics_daemon(void)
{
	const char *args[] = {"--allow-uid", "61010,61011,61012", "--workers",
			      "1",           "--metrics-listen",  NULL,
			      NULL};
	m_port = th_daemon_start_tcp(&d, TH_UID_DAEMON, TH_GID_PORTER, args, 5);
}

/* Runs `run` (alice's part) on thread `*t` with shared state it returns. */
static slot_hold *alice_at_endpoint(void *(*run)(void *), pthread_t *t)
{
	slot_hold *h = th_shared_alloc(sizeof(*h));
	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(pthread_create(t, NULL, run, h), 0);
	return h;
}

/*
 * The endpoint (loopback, open to every local user) has 16 connection
 * slots. Before, a newcomer past them was closed on arrival, so alice
 * held all 16 with idle connections and every scrape failed for as long
 * as she liked (each of hers lived 5 s, and she could open them again).
 * Now the oldest connection still waiting for its request makes room, and
 * the scraper, which sends its request at once, is answered.
 */
START_TEST(metrics_slots_cannot_be_held)
{
	metrics_daemon();
	pthread_t t;
	slot_hold *h = alice_at_endpoint(run_hold_metrics_slots, &t);
	ck_assert(th_wait_flag(&h->ready, 20000));
	ck_assert_int_eq(h->opened, HOLDERS);
	/* Within alice's 5 s: her connections are all still there. */
	static char text[65536];
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(scrape(text, sizeof(text)), 0);
		ck_assert_msg(strstr(text, "porter_workers 1") != NULL,
			      "scrape %d while alice holds the endpoint's slots got: '%.80s'", i,
			      text);
	}
	h->go = 1;
	pthread_join(t, NULL);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

/* ---- metrics: another uid's new connections cannot push the scraper out ---- */

/* Alice opens HOLDERS connections, each with half a request, after the
 * scraper's, and waits until porterd has closed all but the endpoint's
 * slots' worth of them (so it has accepted every one). */
static int push_scraper_out(void *arg)
{
	slot_hold *h = arg;
	int fds[HOLDERS];
	for (int i = 0; i < HOLDERS; i++) {
		fds[i] = metrics_connect();
		if (fds[i] >= 0 && send(fds[i], "GET /met", 8, MSG_NOSIGNAL) == 8)
			h->opened++;
	}
	/* porterd keeps 16 (the scraper's among them, or not): the other
	 * HOLDERS - 15 of hers at least must be closed. */
	int closed = 0;
	for (long long until = th_now_ms() + 10000; closed < HOLDERS - 15 && th_now_ms() < until;) {
		closed = 0;
		for (int i = 0; i < HOLDERS; i++) {
			char b;
			struct pollfd p = {.fd = fds[i], .events = POLLIN};
			closed += fds[i] >= 0 && poll(&p, 1, 0) == 1 &&
				  recv(fds[i], &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
		}
		usleep(10 * 1000);
	}
	h->ready = closed >= HOLDERS - 15 ? 1 : -1;
	if (h->ready == 1)
		th_wait_flag(&h->go, 30000);
	for (int i = 0; i < HOLDERS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return 0;
}

static void *run_push_scraper_out(void *arg)
{
	slot_hold *h = arg;
	th_as(TH_UID_ALICE, TH_GID_PORTER, 40000, push_scraper_out, arg);
	if (!h->ready)
		h->ready = -1; /* her child crashed or was killed */
	return NULL;
}

/*
 * porterd may accept many connections before it reads a request (a flood
 * of new ones is accepted in one go), and the endpoint made room by
 * closing the oldest connection still waiting for its request: the
 * scraper's, once alice's newer ones had filled the slots, however soon
 * it would have sent its request. Now porterd asks the kernel which uid
 * holds the other end (sock_diag) and makes room from the uid holding the
 * most: alice only ever pushes out her own.
 */
START_TEST(metrics_other_uids_connections_cannot_push_the_scraper_out)
{
	metrics_daemon();
	/* The scraper's connection, older than all of alice's, its request
	 * sent only once porterd has accepted hers. */
	int fd = metrics_connect();
	ck_assert_int_ge(fd, 0);
	pthread_t t;
	slot_hold *h = alice_at_endpoint(run_push_scraper_out, &t);
	th_wait_flag(&h->ready, 20000);
	ck_assert_msg(h->ready == 1 && h->opened == HOLDERS,
		      "alice opened %d of %d connections and porterd did not close the extra ones",
		      h->opened, HOLDERS);
	static char text[65536];
	ck_assert_int_eq(scrape_on(fd, text, sizeof(text)), 0);
	h->go = 1;
	pthread_join(t, NULL);
	ck_assert_msg(strstr(text, "porter_workers 1") != NULL,
		      "the scraper, pushed out by alice's newer connections, got: '%.80s'", text);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

/* ---- cancels: one's own only ---- */

typedef struct cancel_race {
	volatile int bob_ready, alice_done;
	int bob_pid;
	int alice_found[2]; /* CancelReply.found for bob's ids 77 and 78 */
	int alice_replies;  /* CancelReplies alice got */
	int bob_status[2];  /* bob's pings 77 (running) and 78 (sent after) */
	int bob_replies;
	int bob_rc; /* what bob's child returned */
} cancel_race;

/* Bob: ping 77 answered after 1.5 s; once alice has tried to cancel it
 * (and 78 before it exists), ping 78. */
static int bob_pings(void *arg)
{
	cancel_race *x = arg;
	frame_reader rd;
	frame_reader_init(&rd, 1 << 20);
	int fd = th_rc_open(getenv("PORTER_SOCKET"), &rd, 5000, NULL);
	if (fd < 0 || th_rc_ping(fd, 77, 0, 1500) != 0)
		return 1;
	x->bob_pid = (int)getpid();
	x->bob_ready = 1;
	if (!th_wait_flag(&x->alice_done, 10000) || th_rc_ping(fd, 78, 0, 0) != 0)
		return 2;
	for (int i = 0; i < 2; i++) {
		Porter__V1__Response *r = th_rc_recv(fd, &rd, 10000);
		if (!r)
			return 3;
		if (r->id == 77 || r->id == 78) {
			x->bob_status[r->id - 77] = r->status;
			x->bob_replies++;
		}
		porter__v1__response__free_unpacked(r, NULL);
	}
	close(fd);
	frame_reader_free(&rd);
	return 0;
}

/* Alice: says Hello with bob's client instance (she can guess or learn
 * it: it is no secret), then cancels bob's ids 77 and 78. */
static int alice_cancels(void *arg)
{
	cancel_race *x = arg;
	frame_reader rd;
	frame_reader_init(&rd, 1 << 20);
	if (!th_wait_flag(&x->bob_ready, 10000))
		return 1;
	int fd = th_rc_open_as(getenv("PORTER_SOCKET"), &rd, 5000, th_rc_instance(x->bob_pid));
	if (fd < 0)
		return 2;
	Porter__V1__Response *r = NULL;
	for (uint64_t target = 77; target <= 78; target++) {
		Porter__V1__Request c = PORTER__V1__REQUEST__INIT;
		Porter__V1__Cancel cb = PORTER__V1__CANCEL__INIT;
		cb.target_id = target;
		c.id = target + 100;
		c.body_case = PORTER__V1__REQUEST__BODY_CANCEL;
		c.cancel = &cb;
		if (th_rc_send(fd, &c) != 0 || !(r = th_rc_recv(fd, &rd, 5000)))
			return 4;
		if (r->status == 0 && r->body_case == PORTER__V1__RESPONSE__BODY_CANCEL) {
			x->alice_found[target - 77] = r->cancel->found;
			x->alice_replies++;
		}
		porter__v1__response__free_unpacked(r, NULL);
	}
	close(fd);
	frame_reader_free(&rd);
	x->alice_done = 1;
	return 0;
}

static void *run_bob_pings(void *arg)
{
	cancel_race *x = arg;
	x->bob_rc = th_as(TH_UID_BOB, TH_GID_PORTER, 20000, bob_pings, x);
	return NULL;
}

/* Alice cancels bob's request in flight, and one he is about to send,
 * naming his ids and even his client instance: neither is found, neither
 * is remembered against him, both of his requests succeed. (This held
 * when tried: a cancel matches uid, instance and id.) */
START_TEST(cancel_never_crosses_uids)
{
	const char *args[] = {"--allow-uid", "61011,61012", "--workers", "2", NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	cancel_race *x = th_shared_alloc(sizeof(*x));
	ck_assert_ptr_nonnull(x);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, run_bob_pings, x), 0);
	int rc = th_as(TH_UID_ALICE, TH_GID_PORTER, 20000, alice_cancels, x);
	x->alice_done = 1; /* bob never waits for a crashed alice */
	pthread_join(t, NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(x->bob_rc, 0);
	ck_assert_int_eq(x->alice_replies, 2);
	ck_assert_msg(!x->alice_found[0] && !x->alice_found[1], "alice found bob's requests");
	ck_assert_int_eq(x->bob_replies, 2);
	ck_assert_msg(x->bob_status[0] == 0 && x->bob_status[1] == 0, "bob's pings: %s, %s",
		      porter_error_name(x->bob_status[0]), porter_error_name(x->bob_status[1]));
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {stats_show_only_own_uid,
				metrics_hide_other_uids_by_default,
				metrics_slots_cannot_be_held,
				metrics_other_uids_connections_cannot_push_the_scraper_out,
				cancel_never_crosses_uids,
				NULL};
	return th_suite("trust_uids", "trust_uids", 60, tests);
}

TH_MAIN_ROOT(suite)
