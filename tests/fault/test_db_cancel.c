/*
 * Server-side cancels are shared fairly (issue 16): a uid whose allowed
 * database target never answers cancel requests cannot hold up another
 * uid's cancels or file operations.
 *
 * libpq 15's PQcancel blocks until the server closes the cancel
 * connection, with no timeout. porterd ran them on libuv's thread pool, at
 * most 4 per worker whoever sent them: alice's 4 hung cancels took every
 * slot and, with one worker, every thread of the pool, so bob's file write
 * waited forever and his timed-out query was never cancelled (its
 * connection was closed instead, and PostgreSQL slept on).
 *
 * alice's target is a proxy on loopback that relays connections to the
 * fixture's PostgreSQL but accepts cancel requests and never answers them.
 * Needs root (porterd and its clients run as their own uids) and the `pg`
 * ctest fixture (tests/support/pg.sh, PORTER_PG_STATE).
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "tenant.h"

#define CANCEL_CODE 80877102u /* PostgreSQL's CancelRequest */
#define ALICE_QUERIES 6
#define MAX_HELD 64

static th_daemon d;
static char ci_pw[512];    /* the fixture, over TCP with a password */
static char ci_proxy[600]; /* the same through the proxy */
static char pg_port[16];

/* ---- the proxy ---- */

static int proxy_fd = -1;
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static int held[MAX_HELD]; /* cancel connections held unanswered */
static int n_held;
static atomic_int cancels_seen;

static int connect_pg(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(pg_port))};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

typedef struct relay {
	int a, b;
} relay;

/* Copies bytes both ways until either side closes. */
static void *relay_main(void *arg)
{
	relay r = *(relay *)arg;
	free(arg);
	char buf[16384];
	for (;;) {
		struct pollfd p[2] = {{r.a, POLLIN, 0}, {r.b, POLLIN, 0}};
		if (poll(p, 2, -1) < 0)
			break;
		int from = (p[0].revents & (POLLIN | POLLHUP | POLLERR)) ? 0 : 1;
		int src = from == 0 ? r.a : r.b, dst = from == 0 ? r.b : r.a;
		ssize_t n = recv(src, buf, sizeof(buf), 0);
		if (n <= 0 || send(dst, buf, (size_t)n, MSG_NOSIGNAL) != n)
			break;
	}
	close(r.a);
	close(r.b);
	return NULL;
}

/* Accepts until the listener is shut down. A connection whose first
 * packet is a cancel request is held and never read again; any other is
 * relayed to PostgreSQL. */
static void *proxy_main(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept4(proxy_fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			break;
		uint8_t head[8];
		if (recv(c, head, sizeof(head), MSG_WAITALL) != (ssize_t)sizeof(head)) {
			close(c);
			continue;
		}
		uint32_t code = (uint32_t)head[4] << 24 | (uint32_t)head[5] << 16 |
				(uint32_t)head[6] << 8 | head[7];
		if (code == CANCEL_CODE) {
			pthread_mutex_lock(&held_mu);
			if (n_held < MAX_HELD)
				held[n_held++] = c;
			else
				close(c);
			pthread_mutex_unlock(&held_mu);
			atomic_fetch_add(&cancels_seen, 1);
			continue;
		}
		int pg = connect_pg();
		relay *r = malloc(sizeof(*r));
		pthread_t t;
		if (pg < 0 || !r || send(pg, head, sizeof(head), MSG_NOSIGNAL) != sizeof(head)) {
			free(r);
			close(c);
			if (pg >= 0)
				close(pg);
			continue;
		}
		r->a = c;
		r->b = pg;
		if (pthread_create(&t, NULL, relay_main, r) != 0) {
			free(r);
			close(c);
			close(pg);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

/* Listens on a loopback port; returns it. */
static int proxy_start(pthread_t *t)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof(a);
	proxy_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(proxy_fd, 0);
	ck_assert_int_eq(bind(proxy_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(proxy_fd, 64), 0);
	ck_assert_int_eq(getsockname(proxy_fd, (struct sockaddr *)&a, &al), 0);
	ck_assert_int_eq(pthread_create(t, NULL, proxy_main, NULL), 0);
	return ntohs(a.sin_port);
}

/* Answers (closes) every held cancel and stops accepting. */
static void proxy_stop(pthread_t t)
{
	shutdown(proxy_fd, SHUT_RDWR);
	pthread_join(t, NULL);
	close(proxy_fd);
	pthread_mutex_lock(&held_mu);
	for (int i = 0; i < n_held; i++)
		close(held[i]);
	n_held = 0;
	pthread_mutex_unlock(&held_mu);
}

/* ---- the clients ---- */

typedef struct results {
	int alice_rc[ALICE_QUERIES];
	int write_rc, read_rc, query_rc, gone;
	long long write_ms, read_ms, gone_ms;
	char text[256];
} results;

static void *alice_query(void *arg)
{
	int *rc = arg;
	porter_db_result *r = NULL;
	*rc = porter_db_query(0, ci_proxy, "SELECT pg_sleep(60)", NULL, 0, 0, 2000, &r);
	porter_db_result_free(r);
	return NULL;
}

/* alice's queries through the proxy all time out: porterd cancels each. */
static int alice_main(void *arg)
{
	results *res = arg;
	pthread_t t[ALICE_QUERIES];
	for (int i = 0; i < ALICE_QUERIES; i++)
		if (pthread_create(&t[i], NULL, alice_query, &res->alice_rc[i]) != 0)
			return 1;
	for (int i = 0; i < ALICE_QUERIES; i++)
		pthread_join(t[i], NULL);
	return 0;
}

/* bob writes and reads a file, then has a query time out and watches
 * PostgreSQL for it: it must be cancelled there, not left running. */
static int bob_main(void *arg)
{
	results *res = arg;
	long long t0 = th_now_ms();
	res->write_rc = porter_file_write("t", "f", "hello", 5,
					  PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE, 0600, 0, 5000);
	res->write_ms = th_now_ms() - t0;
	t0 = th_now_ms();
	porter_bytes *b = NULL;
	res->read_rc = porter_file_read("t", "f", 0, 0, 0, 5000, &b);
	res->read_ms = th_now_ms() - t0;
	porter_bytes_free(b);

	porter_db_result *r = NULL;
	res->query_rc = porter_db_query(0, ci_pw, "SELECT pg_sleep(30) /* bob-marker */", NULL, 0,
					0, 500, &r);
	porter_db_result_free(r);
	t0 = th_now_ms();
	while (th_now_ms() - t0 < 10000) {
		r = NULL;
		int rc = porter_db_query(0, ci_pw,
					 "SELECT count(*) FROM pg_stat_activity WHERE state = "
					 "'active' AND query LIKE '%bob-marker%' AND pid <> "
					 "pg_backend_pid()",
					 NULL, 0, 0, 5000, &r);
		int zero = rc == 0 && strcmp(porter_db_getvalue(r, 0, 0), "0") == 0;
		if (rc != 0)
			snprintf(res->text, sizeof(res->text), "%s: %s", porter_error_name(rc),
				 porter_last_error_message());
		porter_db_result_free(r);
		if (zero) {
			res->gone = 1;
			break;
		}
		usleep(100 * 1000);
	}
	res->gone_ms = th_now_ms() - t0;
	return 0;
}

START_TEST(hung_cancels_of_one_uid_spare_the_others)
{
	char ci_tcp[512], files[] = "/tmp/porter-dbcancel-XXXXXX", roots[128], targets[128];
	th_pg_file("conninfo_pw", ci_pw, sizeof(ci_pw));
	th_pg_file("conninfo_tcp", ci_tcp, sizeof(ci_tcp));
	const char *p = strstr(ci_tcp, "port=");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(sscanf(p + 5, "%15[0-9]", pg_port), 1);
	pthread_t proxy;
	int proxy_port = proxy_start(&proxy);
	/* The same conninfo with the proxy's port. */
	p = strstr(ci_pw, "port=");
	ck_assert_ptr_nonnull(p);
	snprintf(ci_proxy, sizeof(ci_proxy), "%.*sport=%d%s", (int)(p - ci_pw), ci_pw, proxy_port,
		 p + 5 + strlen(pg_port));
	snprintf(targets, sizeof(targets), "127.0.0.1:%s,127.0.0.1:%d", pg_port, proxy_port);
	ck_assert_ptr_nonnull(mkdtemp(files));
	ck_assert_int_eq(chown(files, TH_UID_DAEMON, TH_GID_PORTER), 0);
	ck_assert_int_eq(chmod(files, 0755), 0);
	snprintf(roots, sizeof(roots), "t=%s/%%u", files);
	/* One worker: before, its 4 cancel slots were every uid's, and the
	 * thread pool (4 threads) ran them. File work always goes to the
	 * pool here. */
	const char *args[] = {"--allow-uid",
			      "61011,61012",
			      "--workers",
			      "1",
			      "--db-allow-targets",
			      targets,
			      "--file-roots",
			      roots,
			      "--file-loop-fast-path=false",
			      NULL};
	results *res = th_tenant_up(&d, args, sizeof(results));

	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 60000, alice_main, res), 0);
	for (int i = 0; i < ALICE_QUERIES; i++)
		ck_assert_msg(res->alice_rc[i] == PORTER_E_TIMEOUT, "alice's query %d: %s", i,
			      porter_error_name(res->alice_rc[i]));
	/* Her cancels reach the proxy, which holds them. */
	long long t0 = th_now_ms();
	while (atomic_load(&cancels_seen) < 4 && th_now_ms() - t0 < 20000)
		usleep(20 * 1000);
	if (atomic_load(&cancels_seen) < 4)
		th_daemon_dump_log(&d);
	ck_assert_int_ge(atomic_load(&cancels_seen), 4);
	printf("alice: %d cancel requests held unanswered\n", atomic_load(&cancels_seen));

	ck_assert_int_eq(th_as(TH_UID_BOB, TH_GID_PORTER, 60000, bob_main, res), 0);
	printf("bob: file write %s in %lld ms, read %s in %lld ms; his timed-out query %s on the "
	       "server after %lld ms\n",
	       porter_error_name(res->write_rc), res->write_ms, porter_error_name(res->read_rc),
	       res->read_ms, res->gone ? "ended" : "still ran", res->gone_ms);
	/* Each would take milliseconds; 5 s is the calls' own timeout. */
	ck_assert_msg(res->write_rc == 0, "bob's file write: %s after %lld ms",
		      porter_error_name(res->write_rc), res->write_ms);
	ck_assert_msg(res->read_rc == 0, "bob's file read: %s after %lld ms",
		      porter_error_name(res->read_rc), res->read_ms);
	ck_assert_int_eq(res->query_rc, PORTER_E_TIMEOUT);
	ck_assert_msg(res->gone, "bob's query still ran on the server after %lld ms %s",
		      res->gone_ms, res->text);

	/* The held cancels are answered now; porterd stops cleanly. */
	proxy_stop(proxy);
	th_stop_clean(&d);
	ck_assert_int_eq(th_rm_rf(files), 0);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {hung_cancels_of_one_uid_spare_the_others, NULL};
	return th_suite("db_cancel", "db_cancel", 150, tests);
}

TH_MAIN_ROOT(suite)
