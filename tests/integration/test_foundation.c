/*
 * Integration tests of the foundation: a real porterd, libporter from many
 * threads, and raw sockets that misbehave.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

#include "frame.h"
#include "harness.h"
#include "porter.h"
#include "porter.pb-c.h"

static th_daemon d;

/* ---- a background client that must never notice the misbehaviour ---- */

typedef struct bystander {
	pthread_t th;
	atomic_int stop;
	atomic_int ok, failed;
	int last_error;
} bystander;

static void *bystander_main(void *arg)
{
	bystander *b = arg;
	while (!atomic_load(&b->stop)) {
		int rc = porter_ping("bystander", 9, 0, 5000);
		if (rc == 0) {
			atomic_fetch_add(&b->ok, 1);
		} else {
			b->last_error = rc;
			atomic_fetch_add(&b->failed, 1);
		}
		usleep(1000);
	}
	porter_thread_disconnect();
	return NULL;
}

static void bystander_start(bystander *b)
{
	memset(b, 0, sizeof(*b));
	ck_assert_int_eq(pthread_create(&b->th, NULL, bystander_main, b), 0);
}

static void bystander_finish(bystander *b)
{
	/* It must have been served at least once while the trouble went on
	 * (or right after it), and never failed. */
	long long until = th_now_ms() + 5000;
	while (atomic_load(&b->ok) == 0 && th_now_ms() < until)
		usleep(1000);
	atomic_store(&b->stop, 1);
	pthread_join(b->th, NULL);
	ck_assert_msg(atomic_load(&b->failed) == 0, "bystander saw %d failures (last %s)",
		      atomic_load(&b->failed), porter_error_name(b->last_error));
	ck_assert_int_gt(atomic_load(&b->ok), 0);
}

/* ---- tests ---- */

START_TEST(ping_and_stats)
{
	const char *args[] = {"--workers", "3", NULL};
	th_start(&d, args);
	const char payload[] = "a\0b\0c";
	ck_assert_int_eq(porter_ping(payload, sizeof(payload), 0, 2000), 0);
	ck_assert_int_eq(porter_last_error(), 0);
	ck_assert_int_eq(porter_ping(NULL, 0, 0, 2000), 0);
	ck_assert_int_eq(porter_ping(NULL, 5, 0, 2000), PORTER_E_INVAL);
	ck_assert_int_eq(porter_last_error(), PORTER_E_INVAL);

	/* The harness's readiness probe is a connection too; it is counted
	 * until its worker has seen it close. */
	porter_stats_snapshot *s = NULL;
	long long until = th_now_ms() + 5000;
	for (;;) {
		ck_assert_int_eq(porter_stats(0, 2000, &s), 0);
		uint64_t n = 0;
		for (size_t i = 0; i < porter_stats_workers(s); i++) {
			porter_worker_stats w = PORTER_WORKER_STATS_INIT;
			porter_stats_worker(s, i, &w);
			n += w.connections;
		}
		if (n == 1 || th_now_ms() > until)
			break;
		porter_stats_free(s);
		usleep(10000);
	}
	ck_assert_uint_eq(porter_stats_workers(s), 3);
	ck_assert_str_eq(porter_stats_daemon_version(s), PORTER_VERSION_STRING);
	uint64_t conns = 0, reqs = 0, bytes_in = 0;
	for (size_t i = 0; i < 3; i++) {
		porter_worker_stats w = PORTER_WORKER_STATS_INIT;
		ck_assert_int_eq(porter_stats_worker(s, i, &w), 0);
		ck_assert_uint_eq(w.worker, i);
		conns += w.connections;
		reqs += w.requests;
		bytes_in += w.bytes_in;
	}
	porter_worker_stats w = PORTER_WORKER_STATS_INIT;
	ck_assert_int_eq(porter_stats_worker(s, 3, &w), PORTER_E_INVAL);
	ck_assert_uint_eq(conns, 1);
	ck_assert_uint_ge(reqs, 4); /* hello, two pings, a stats */
	ck_assert_uint_gt(bytes_in, 0);
	porter_stats_free(s);
	porter_stats_free(NULL);
	th_stop_clean(&d);
}
END_TEST

#define PING_THREADS 64
#define PINGS_PER_THREAD 1000

typedef struct pinger {
	pthread_t th;
	int index;
	int failures;
	int first_error;
} pinger;

static void *pinger_main(void *arg)
{
	pinger *p = arg;
	char payload[64];
	for (int i = 0; i < PINGS_PER_THREAD; i++) {
		/* A payload unique to this thread and call: a crossed reply
		 * would fail porter_ping's echo check. */
		int n = snprintf(payload, sizeof(payload), "thread %d call %d", p->index, i);
		int rc = porter_ping(payload, (size_t)n, 0, 10000);
		if (rc != 0) {
			if (!p->failures)
				p->first_error = rc;
			p->failures++;
		}
	}
	return NULL;
}

START_TEST(many_threads_no_lost_or_crossed_replies)
{
	th_start(&d, NULL);
	static pinger p[PING_THREADS];
	for (int i = 0; i < PING_THREADS; i++) {
		p[i].index = i;
		p[i].failures = 0;
		ck_assert_int_eq(pthread_create(&p[i].th, NULL, pinger_main, &p[i]), 0);
	}
	int failures = 0;
	for (int i = 0; i < PING_THREADS; i++) {
		pthread_join(p[i].th, NULL);
		ck_assert_msg(p[i].failures == 0, "thread %d: %d failures, first %s", i,
			      p[i].failures, porter_error_name(p[i].first_error));
		failures += p[i].failures;
	}
	ck_assert_int_eq(failures, 0);

	/* The daemon saw every ping, and each thread's connection closed at
	 * thread exit. */
	porter_stats_snapshot *s = NULL;
	long long until = th_now_ms() + 5000;
	uint64_t conns, reqs;
	do {
		ck_assert_int_eq(porter_stats(0, 2000, &s), 0);
		conns = reqs = 0;
		for (size_t i = 0; i < porter_stats_workers(s); i++) {
			porter_worker_stats w = PORTER_WORKER_STATS_INIT;
			porter_stats_worker(s, i, &w);
			conns += w.connections;
			reqs += w.requests;
		}
		porter_stats_free(s);
	} while (conns != 1 && th_now_ms() < until && usleep(20000) == 0);
	ck_assert_uint_eq(conns, 1);
	ck_assert_uint_ge(reqs, (uint64_t)PING_THREADS * (PINGS_PER_THREAD + 1));
	th_stop_clean(&d);
}
END_TEST

START_TEST(pipelined_requests_all_answered)
{
	th_start(&d, NULL);
	int fd = th_raw_connect(d.socket);
	frame_reader r;
	frame_reader_init(&r, 1 << 24);
	th_raw_hello(fd, &r, PORTER_PROTOCOL_VERSION, 0);

	enum { N = 2000 };
	/* All requests in one buffer, sent before reading any reply. */
	uint8_t *all = NULL;
	size_t total = 0;
	for (uint64_t i = 0; i < N; i++) {
		Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
		Porter__V1__Ping ping = PORTER__V1__PING__INIT;
		char payload[32];
		int n = snprintf(payload, sizeof(payload), "p%llu", (unsigned long long)i);
		ping.payload.data = (uint8_t *)payload;
		ping.payload.len = (size_t)n;
		req.id = 1000 + i;
		req.body_case = PORTER__V1__REQUEST__BODY_PING;
		req.ping = &ping;
		uint8_t *buf;
		size_t len;
		ck_assert_int_eq(frame_pack(&req.base, 1 << 20, &buf, &len), 0);
		all = realloc(all, total + len);
		memcpy(all + total, buf, len);
		total += len;
		free(buf);
	}
	th_raw_write(fd, all, total);
	free(all);

	static char seen[N];
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < N; i++) {
		Porter__V1__Response *resp = th_raw_recv(fd, &r, 5000);
		ck_assert_msg(resp != NULL, "reply %d missing", i);
		ck_assert_int_eq(resp->status, 0);
		uint64_t k = resp->id - 1000;
		ck_assert_uint_lt(k, N);
		ck_assert_int_eq(seen[k], 0);
		seen[k] = 1;
		char want[32];
		int n = snprintf(want, sizeof(want), "p%llu", (unsigned long long)k);
		ck_assert_uint_eq(resp->ping->payload.len, (size_t)n);
		ck_assert(memcmp(resp->ping->payload.data, want, (size_t)n) == 0);
		porter__v1__response__free_unpacked(resp, NULL);
	}
	frame_reader_free(&r);
	close(fd);
	th_stop_clean(&d);
}
END_TEST

START_TEST(misbehaving_connections_are_closed_others_unaffected)
{
	const char *args[] = {"--frame-timeout", "300", NULL};
	th_start(&d, args);
	bystander b;
	bystander_start(&b);
	frame_reader r;
	Porter__V1__Response *resp;
	int fd;

	/* Each of these gets an error reply (id 0), then the connection is
	 * closed. */
	const uint8_t garbage[] = {0, 0, 0, 6, 0x0f, 0xff, 0xff, 0xff, 0xff, 0x0f};
	const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3}; /* 4 GiB */
	const uint8_t mib[] = {0, 0x10, 0, 0};
	const uint8_t ping_before_hello[] = {0, 0, 0, 4, 0x08, 0x05, 0x5a, 0x00};
	const struct {
		const char *what;
		int hello_first;
		const uint8_t *bytes;
		size_t len;
		int status;
	} refused[] = {
		{"garbage as the first frame", 0, garbage, sizeof(garbage), PORTER_E_PROTOCOL},
		{"garbage after Hello", 1, garbage, sizeof(garbage), PORTER_E_PROTOCOL},
		{"a 4 GiB length, refused before any allocation", 1, huge, sizeof(huge),
		 PORTER_E_TOO_LARGE},
		{"1 MiB before Hello, past the small pre-Hello limit", 0, mib, sizeof(mib),
		 PORTER_E_TOO_LARGE},
		{"a request before Hello", 0, ping_before_hello, sizeof(ping_before_hello),
		 PORTER_E_PROTOCOL},
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		fd = th_raw_connect(d.socket);
		frame_reader_init(&r, 1 << 20);
		if (refused[i].hello_first)
			th_raw_hello(fd, &r, PORTER_PROTOCOL_VERSION, 0);
		th_raw_write(fd, refused[i].bytes, refused[i].len);
		resp = th_raw_recv(fd, &r, 5000);
		ck_assert_msg(resp != NULL, "%s: no error reply", refused[i].what);
		ck_assert_msg(resp->status == refused[i].status, "%s: status %d", refused[i].what,
			      resp->status);
		ck_assert_uint_eq(resp->id, 0);
		porter__v1__response__free_unpacked(resp, NULL);
		ck_assert_msg(th_raw_wait_closed(fd, 5000), "%s: not closed", refused[i].what);
		close(fd);
		frame_reader_free(&r);
	}

	/* A protocol version the daemon does not speak. */
	fd = th_raw_connect(d.socket);
	frame_reader_init(&r, 1 << 20);
	th_raw_hello(fd, &r, 99, PORTER_E_UNSUPPORTED);
	ck_assert(th_raw_wait_closed(fd, 5000));
	close(fd);
	frame_reader_free(&r);

	/* Half a frame, then a stall: closed after the frame timeout. */
	fd = th_raw_connect(d.socket);
	frame_reader_init(&r, 1 << 20);
	th_raw_hello(fd, &r, PORTER_PROTOCOL_VERSION, 0);
	const uint8_t half[] = {0, 0, 0, 100, 1, 2, 3};
	th_raw_write(fd, half, sizeof(half));
	ck_assert(th_raw_wait_closed(fd, 5000));
	close(fd);
	frame_reader_free(&r);

	/* Silent after connecting (no Hello): closed too. */
	fd = th_raw_connect(d.socket);
	ck_assert(th_raw_wait_closed(fd, 5000));
	close(fd);

	/* Half a frame, then a disconnect. */
	fd = th_raw_connect(d.socket);
	th_raw_write(fd, half, sizeof(half));
	close(fd);

	/* An unknown request type is answered, not fatal. */
	fd = th_raw_connect(d.socket);
	frame_reader_init(&r, 1 << 20);
	th_raw_hello(fd, &r, PORTER_PROTOCOL_VERSION, 0);
	const uint8_t unknown[] = {0, 0, 0, 7, 0x08, 0x07, 0xba, 0x3e, 0x02, 0x08, 0x01};
	th_raw_write(fd, unknown, sizeof(unknown));
	resp = th_raw_recv(fd, &r, 5000);
	ck_assert_ptr_nonnull(resp);
	ck_assert_uint_eq(resp->id, 7);
	ck_assert_int_eq(resp->status, PORTER_E_UNSUPPORTED);
	porter__v1__response__free_unpacked(resp, NULL);
	Porter__V1__Request again = PORTER__V1__REQUEST__INIT;
	Porter__V1__Ping p2 = PORTER__V1__PING__INIT;
	again.id = 8;
	again.body_case = PORTER__V1__REQUEST__BODY_PING;
	again.ping = &p2;
	th_raw_send(fd, &again);
	resp = th_raw_recv(fd, &r, 5000);
	ck_assert_ptr_nonnull(resp);
	ck_assert_uint_eq(resp->id, 8);
	ck_assert_int_eq(resp->status, 0);
	porter__v1__response__free_unpacked(resp, NULL);
	close(fd);
	frame_reader_free(&r);

	bystander_finish(&b);
	th_stop_clean(&d);
}
END_TEST

START_TEST(reader_that_never_reads_is_dropped)
{
	const char *args[] = {"--output-cap", "1048576", NULL};
	th_start(&d, args);
	bystander b;
	bystander_start(&b);

	int fd = th_raw_connect(d.socket);
	frame_reader r;
	frame_reader_init(&r, 1 << 20);
	th_raw_hello(fd, &r, PORTER_PROTOCOL_VERSION, 0);
	/* Pings with 32 KiB payloads, never reading the echoes: once the
	 * unsent replies pass the cap the daemon drops this client. */
	static uint8_t payload[32768];
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Ping ping = PORTER__V1__PING__INIT;
	ping.payload.data = payload;
	ping.payload.len = sizeof(payload);
	req.body_case = PORTER__V1__REQUEST__BODY_PING;
	req.ping = &ping;
	uint8_t *buf;
	size_t len;
	ck_assert_int_eq(frame_pack(&req.base, 1 << 20, &buf, &len), 0);
	int dropped = 0;
	long long until = th_now_ms() + 20000;
	size_t sent = 0;
	while (!dropped && th_now_ms() < until) {
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if (pfd.revents & (POLLERR | POLLHUP)) {
			dropped = 1;
			break;
		}
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			dropped = 1;
		else if (n > 0)
			sent += (size_t)n;
	}
	free(buf);
	ck_assert_msg(dropped, "client never dropped after sending %zu bytes", sent);
	ck_assert_uint_gt(sent, 1048576);
	close(fd);
	frame_reader_free(&r);
	bystander_finish(&b);
	th_stop_clean(&d);
}
END_TEST

START_TEST(daemon_restart_and_reconnect)
{
	th_start(&d, NULL);
	ck_assert_int_eq(porter_ping("x", 1, 0, 2000), 0);

	/* Clean restart: this thread's old connection is dead; the next
	 * call reconnects by itself. */
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	ck_assert_int_eq(th_daemon_restart(&d, NULL), 0);
	ck_assert_int_eq(porter_ping("y", 1, 0, 2000), 0);

	/* SIGKILL leaves a stale socket file; the new daemon replaces it. */
	th_daemon_kill(&d);
	ck_assert_int_eq(access(d.socket, F_OK), 0);
	ck_assert_int_eq(th_daemon_restart(&d, NULL), 0);
	ck_assert_int_eq(porter_ping("z", 1, 0, 2000), 0);

	/* Daemon gone: a clear error, no hang, then recovery. */
	th_daemon_kill(&d);
	long long t0 = th_now_ms();
	int rc = porter_ping("w", 1, 0, 3000);
	ck_assert_int_eq(rc, PORTER_E_UNREACHABLE);
	ck_assert_int_lt(th_now_ms() - t0, 3000);
	ck_assert_int_eq(porter_last_error(), PORTER_E_UNREACHABLE);
	ck_assert_int_eq(th_daemon_restart(&d, NULL), 0);
	ck_assert_int_eq(porter_ping("v", 1, 0, 2000), 0);
	th_stop_clean(&d);
}
END_TEST

START_TEST(live_socket_is_not_stolen)
{
	th_start(&d, NULL);
	th_daemon second = d;
	second.pid = 0;
	/* Same socket path: the second daemon must refuse to start. */
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 2);
		execl(PORTERD_PATH, PORTERD_PATH, "--socket", d.socket, (char *)NULL);
		_exit(127);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 1);
	(void)second;
	ck_assert_int_eq(porter_ping("still here", 10, 0, 2000), 0);
	th_stop_clean(&d);
}
END_TEST

START_TEST(daemon_absent_fails_fast)
{
	setenv("PORTER_SOCKET", "/tmp/porter-test-nonexistent/porter.sock", 1);
	long long t0 = th_now_ms();
	ck_assert_int_eq(porter_ping("x", 1, 0, 2000), PORTER_E_UNREACHABLE);
	ck_assert_int_lt(th_now_ms() - t0, 2000);
	ck_assert(strstr(porter_last_error_message(), "porter-test-nonexistent") != NULL);
	porter_stats_snapshot *s = NULL;
	ck_assert_int_eq(porter_stats(0, 2000, &s), PORTER_E_UNREACHABLE);
	ck_assert_ptr_null(s);
}
END_TEST

START_TEST(daemon_that_never_answers_times_out)
{
	/* A listening socket nobody serves: connect succeeds, no Hello. */
	char dir[] = "/tmp/porter-test-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char path[100];
	snprintf(path, sizeof(path), "%s/porter.sock", dir);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 16), 0);
	setenv("PORTER_SOCKET", path, 1);

	long long t0 = th_now_ms();
	ck_assert_int_eq(porter_ping("x", 1, 0, 300), PORTER_E_TIMEOUT);
	long long took = th_now_ms() - t0;
	ck_assert_int_ge(took, 290);
	ck_assert_int_lt(took, 2300); /* bounded by its timeout, generous margin */
	close(lfd);
	unlink(path);
	rmdir(dir);
}
END_TEST

START_TEST(uid_not_allowed_is_refused)
{
	char other[16];
	snprintf(other, sizeof(other), "%u", (unsigned)getuid() + 12345);
	const char *args[] = {"--allow-uid", other, NULL};
	th_start(&d, args);
	ck_assert_int_eq(porter_ping("x", 1, 0, 2000), PORTER_E_DENIED);
	ck_assert(strstr(porter_last_error_message(), "not allowed") != NULL);
	th_stop_clean(&d);
}
END_TEST

START_TEST(shutdown_with_clients_connected)
{
	th_start(&d, NULL);
	/* Open connections on several threads, then stop: the daemon must
	 * close them and exit cleanly, and callers must see an error, not
	 * a hang. */
	ck_assert_int_eq(porter_ping("a", 1, 0, 2000), 0);
	int fd = th_raw_connect(d.socket);
	frame_reader r;
	frame_reader_init(&r, 1 << 20);
	th_raw_hello(fd, &r, PORTER_PROTOCOL_VERSION, 0);
	int st = th_daemon_stop(&d);
	ck_assert_int_eq(st, 0);
	ck_assert(th_raw_wait_closed(fd, 5000));
	close(fd);
	frame_reader_free(&r);
	ck_assert_int_eq(porter_ping("b", 1, 0, 1000), PORTER_E_UNREACHABLE);
	th_daemon_cleanup(&d);
}
END_TEST

/* A SIGTERM that arrives as soon as the socket accepts (systemctl stop
 * during start-up, a supervisor giving up, th_daemon_stop right after
 * th_daemon_start) stops porterd cleanly. Before, the socket listened
 * while the workers were still starting and before the signal handlers
 * were installed, so such a SIGTERM killed porterd outright, its socket
 * file left behind. 200 starts (50 under the sanitizers), each stopped as
 * soon as it accepts; eight workers make the start-up longer. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define STARTSTOP_ROUNDS 50 /* a sanitized start takes over 1 s at load 15 */
#else
#define STARTSTOP_ROUNDS 200
#endif

START_TEST(sigterm_during_start_up_stops_cleanly)
{
	static const char *const args[] = {"--workers", "8", NULL};
	int killed = 0;
	for (int i = 0; i < STARTSTOP_ROUNDS; i++) {
		th_daemon d2;
		ck_assert_msg(th_daemon_start(&d2, args) == 0, "start %d failed", i);
		int st = th_daemon_stop(&d2);
		if (st != 0) {
			th_daemon_dump_log(&d2);
			killed++;
		}
		th_daemon_cleanup(&d2);
	}
	ck_assert_msg(killed == 0, "%d of %d porterds died of a SIGTERM sent right after start",
		      killed, STARTSTOP_ROUNDS);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("foundation");
	const TTest *core[] = {ping_and_stats,
			       many_threads_no_lost_or_crossed_replies,
			       pipelined_requests_all_answered,
			       misbehaving_connections_are_closed_others_unaffected,
			       reader_that_never_reads_is_dropped,
			       daemon_restart_and_reconnect,
			       live_socket_is_not_stolen,
			       daemon_absent_fails_fast,
			       daemon_that_never_answers_times_out,
			       uid_not_allowed_is_refused,
			       shutdown_with_clients_connected,
			       NULL};
	th_tcase(s, "core", 120, core);
	/* 200 starts take 40 s at load 15; 50 under ASan, 70 s. */
	const TTest *startstop[] = {sigterm_during_start_up_stops_cleanly, NULL};
	th_tcase(s, "startstop", 280, startstop);
	return s;
}

TH_MAIN(suite)
