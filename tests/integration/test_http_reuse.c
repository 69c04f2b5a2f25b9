/*
 * Integration tests of upstream connection reuse: porterd keeps HTTP
 * connections open between requests (libcurl's connection cache), and a
 * kept connection the server has since closed, with a FIN or with a
 * reset, must be found dead before a request is sent on it: the next
 * request goes out on a new connection and succeeds. A live kept
 * connection is reused (so the first two cases do test a reuse).
 *
 * The server is a raw one in this process: it answers each request on a
 * connection with the number of that connection (1, 2, ...), so the body
 * tells which connection served it, and after the first answer on a
 * connection it closes it, or not, as the test says.
 *
 * A burst of concurrent requests keeps its connections: a second burst of
 * the same size reuses every one (a burst server holds its answers until
 * the whole burst is in, so each request has a connection of its own).
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
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "thmain.h"

/* What the server does with a connection once it has answered on it. */
enum after {
	KEEP,  /* keeps it open and answers further requests */
	FIN,   /* closes it (orderly: FIN) */
	RESET, /* aborts it (SO_LINGER 0: RST) */
};

static struct srv {
	int lfd;
	int port;
	enum after after;
	pthread_t th;
	atomic_int conns;  /* connections accepted */
	atomic_int closed; /* connections the server closed */
	atomic_int stop;
} S;

/* Reads one request head (until an empty line); 0, or -1 at EOF. */
static int read_head(int fd)
{
	char buf[4096];
	size_t n = 0;
	while (n < sizeof(buf)) {
		ssize_t k = read(fd, buf + n, 1);
		if (k <= 0)
			return -1;
		n++;
		if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0)
			return 0;
	}
	return -1;
}

static void *serve(void *arg)
{
	(void)arg;
	while (!atomic_load(&S.stop)) {
		int fd = accept(S.lfd, NULL, NULL);
		if (fd < 0)
			continue;
		int id = atomic_fetch_add(&S.conns, 1) + 1;
		while (read_head(fd) == 0) {
			char body[32], resp[160];
			int blen = snprintf(body, sizeof(body), "conn=%d", id);
			int rlen = snprintf(resp, sizeof(resp),
					    "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
					    "Content-Type: text/plain\r\n\r\n%s",
					    blen, body);
			if (write(fd, resp, (size_t)rlen) != rlen)
				break;
			if (S.after == KEEP)
				continue;
			/* Idle for a while first: porterd has put the
			 * connection back in its cache by then. */
			usleep(100 * 1000);
			if (S.after == RESET) {
				struct linger l = {1, 0};
				setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
			}
			break;
		}
		close(fd);
		atomic_fetch_add(&S.closed, 1);
	}
	return NULL;
}

/* Starts `fn` serving on a new loopback port. */
static void srv_start_with(enum after after, void *(*fn)(void *))
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	memset(&S, 0, sizeof(S));
	S.after = after;
	S.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(S.lfd, 0);
	ck_assert_int_eq(bind(S.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(S.lfd, 16), 0);
	ck_assert_int_eq(getsockname(S.lfd, (struct sockaddr *)&sa, &len), 0);
	S.port = ntohs(sa.sin_port);
	ck_assert_int_eq(pthread_create(&S.th, NULL, fn, NULL), 0);
}

static void srv_start(enum after after)
{
	srv_start_with(after, serve);
}

static void srv_stop(void)
{
	atomic_store(&S.stop, 1);
	shutdown(S.lfd, SHUT_RDWR); /* wakes accept */
	pthread_join(S.th, NULL);
	close(S.lfd);
}

/* A GET through porterd; returns the body's connection number. */
static int get_conn(void)
{
	char u[64];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/x", S.port);
	porter_http_response *r = NULL;
	int rc = porter_http_get(u, 0, 10000, &r);
	ck_assert_msg(rc == 0, "GET failed: %s %s", porter_error_name(rc),
		      porter_last_error_message());
	ck_assert_int_eq(porter_http_response_status(r), 200);
	size_t n;
	const char *b = porter_http_response_body(r, &n);
	char text[32];
	ck_assert_uint_lt(n, sizeof(text));
	memcpy(text, b, n);
	text[n] = 0;
	int id = 0;
	ck_assert_msg(sscanf(text, "conn=%d", &id) == 1, "body %s", text);
	porter_http_response_free(r);
	return id;
}

/* Waits until the server has closed `n` connections (bounded). */
static void wait_closed(int n)
{
	long long until = th_now_ms() + 10000;
	while (atomic_load(&S.closed) < n && th_now_ms() < until)
		usleep(5000);
	ck_assert_int_ge(atomic_load(&S.closed), n);
	usleep(50 * 1000); /* the FIN or RST reaches porterd's socket */
}

static th_daemon d;

/* ---- bursts ---- */

#define BURST 12

/* One connection of the burst server: its number and the request bytes
 * read so far. */
typedef struct bconn {
	int fd;
	int id;
	char buf[2048];
	size_t len;
	int waiting; /* a whole request head is in, unanswered */
} bconn;

static void answer(bconn *c)
{
	char body[32], resp[160];
	int blen = snprintf(body, sizeof(body), "conn=%d", c->id);
	int rlen = snprintf(resp, sizeof(resp),
			    "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
			    "Content-Type: text/plain\r\n\r\n%s",
			    blen, body);
	if (write(c->fd, resp, (size_t)rlen) != rlen)
		c->len = 0;
	c->waiting = 0;
	c->len = 0;
}

/* Accepts any number of connections and answers the requests pending on
 * them only once BURST are (or after 5 s without a new one, so a test that
 * fails does not hang). One request per connection at a time. */
static void *serve_bursts(void *arg)
{
	(void)arg;
	bconn conns[64];
	struct pollfd pfd[65];
	int n = 0, pending = 0;
	long long last = th_now_ms();
	while (!atomic_load(&S.stop)) {
		pfd[0] = (struct pollfd){.fd = S.lfd, .events = POLLIN};
		for (int i = 0; i < n; i++)
			pfd[i + 1] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
		int k = poll(pfd, (nfds_t)n + 1, 50);
		if (pending && (pending >= BURST || th_now_ms() - last > 5000)) {
			for (int i = 0; i < n; i++)
				if (conns[i].waiting)
					answer(&conns[i]);
			pending = 0;
		}
		if (k <= 0)
			continue;
		if ((pfd[0].revents & POLLIN) && n < 64) {
			int fd = accept(S.lfd, NULL, NULL);
			if (fd >= 0) {
				conns[n] =
					(bconn){.fd = fd, .id = atomic_fetch_add(&S.conns, 1) + 1};
				n++;
			}
		}
		for (int i = 0; i < n; i++) {
			bconn *c = &conns[i];
			if (!(pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) || c->fd < 0)
				continue;
			ssize_t r = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
			if (r <= 0) {
				close(c->fd);
				atomic_fetch_add(&S.closed, 1);
				pending -= c->waiting;
				conns[i--] = conns[--n];
				continue;
			}
			c->len += (size_t)r;
			c->buf[c->len] = 0;
			if (!c->waiting && strstr(c->buf, "\r\n\r\n")) {
				c->waiting = 1;
				pending++;
				last = th_now_ms();
			}
		}
	}
	for (int i = 0; i < n; i++)
		close(conns[i].fd);
	return NULL;
}

static void *burst_client(void *arg)
{
	int *id = arg;
	char u[64];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/x", S.port);
	porter_http_response *r = NULL;
	if (porter_http_get(u, 0, 15000, &r) == 0) {
		size_t len;
		const char *b = porter_http_response_body(r, &len);
		char text[32];
		if (len < sizeof(text)) {
			memcpy(text, b, len);
			text[len] = 0;
			if (sscanf(text, "conn=%d", id) != 1)
				*id = 0;
		}
		porter_http_response_free(r);
	}
	porter_thread_disconnect();
	return NULL;
}

/* BURST concurrent GETs, each from a thread (a connection to porterd) of
 * its own; returns how many distinct upstream connections served them. */
static int burst(void)
{
	pthread_t th[BURST];
	int ids[BURST] = {0};
	int seen[65] = {0}, distinct = 0;
	for (int i = 0; i < BURST; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, burst_client, &ids[i]), 0);
	for (int i = 0; i < BURST; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(ids[i] > 0 && ids[i] <= 64, "request %d failed or was misanswered",
			      i);
		distinct += !seen[ids[i]];
		seen[ids[i]] = 1;
	}
	return distinct;
}

START_TEST(live_connection_is_reused)
{
	srv_start(KEEP);
	th_start(&d, NULL);
	ck_assert_int_eq(get_conn(), 1);
	ck_assert_int_eq(get_conn(), 1);
	ck_assert_int_eq(get_conn(), 1);
	ck_assert_int_eq(atomic_load(&S.conns), 1);
	th_stop_clean(&d);
	srv_stop();
}
END_TEST

/* The server closes each connection after one answer: every request finds
 * its cached connection dead and takes a new one, several times over. */
static void dead_connection_is_replaced(enum after how)
{
	srv_start(how);
	th_start(&d, NULL);
	for (int i = 1; i <= 4; i++) {
		ck_assert_int_eq(get_conn(), i);
		wait_closed(i);
	}
	ck_assert_int_eq(atomic_load(&S.conns), 4);
	th_stop_clean(&d);
	srv_stop();
}

START_TEST(connection_closed_by_the_server_is_replaced)
{
	dead_connection_is_replaced(FIN);
}
END_TEST

START_TEST(connection_reset_by_the_server_is_replaced)
{
	dead_connection_is_replaced(RESET);
}
END_TEST

/* A second burst reuses all of the first one's connections: none was
 * closed as the first burst's transfers ended. With libcurl's default
 * cache size (4 × the handles in the multi when each transfer ends), the
 * last of them found the cache over its shrinking size and closed
 * connections, which the second burst had to open again. One worker, so
 * that one connection cache serves every request. */
START_TEST(a_burst_keeps_its_connections)
{
	static const char *const one_worker[] = {"--workers", "1", NULL};
	srv_start_with(KEEP, serve_bursts);
	th_start(&d, one_worker);
	ck_assert_int_eq(burst(), BURST);
	ck_assert_int_eq(atomic_load(&S.conns), BURST);
	usleep(100 * 1000);
	ck_assert_int_eq(burst(), BURST);
	ck_assert_msg(atomic_load(&S.conns) == BURST,
		      "the second burst opened %d new connections (none expected)",
		      atomic_load(&S.conns) - BURST);
	ck_assert_int_eq(atomic_load(&S.closed), 0);
	th_stop_clean(&d);
	srv_stop();
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {
		live_connection_is_reused, connection_closed_by_the_server_is_replaced,
		connection_reset_by_the_server_is_replaced, a_burst_keeps_its_connections, NULL};
	return th_suite("http_reuse", "core", 120, tests);
}

TH_MAIN(suite)
