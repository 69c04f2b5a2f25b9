/*
 * How libporter waits for a reply (client/pconn.c, read_frame): poll for
 * the reply, then recvmsg. A fake porterd in this process answers Hello
 * and delays or holds the pings, so each wait is the client's own:
 *  - a waiting thread is woken once per call, by its reply: not also when
 *    porterd reads the request (a thread blocked in recvmsg on a Unix
 *    stream socket is woken then too, by the "writable" wake-up of the
 *    request's freed buffer, and the wake-up lands on porterd's CPU);
 *  - a call that gets no reply ends at its deadline, never before, for
 *    short and long timeouts in any order;
 *  - signals delivered during the wait (a handler without SA_RESTART:
 *    EINTR) do not end the call.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "porter.h"
#include "porter_version.h"
#include "thmain.h"

/* ------------------------------------------------- a fake porterd */

/*
 * One thread serving one connection at a time: Hello is answered at once;
 * a Ping is read read_delay_ms after it arrived and answered delay_ms
 * after that, or held when `hold` is set.
 */
typedef struct fake {
	char dir[32];
	char path[108];
	int listen_fd;
	pthread_t th;
	atomic_int hold;
	atomic_int read_delay_ms;
	atomic_int delay_ms;
} fake;

static void reply(int fd, Porter__V1__Response *resp)
{
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0;
	ck_assert_int_eq(frame_pack_into(&resp->base, 1 << 20, &buf, &cap, &len), 0);
	ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
	(void)n; /* a client gone is the client's failure to report */
	free(buf);
}

static void reply_ping(int fd, uint64_t id)
{
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__PingReply pr = PORTER__V1__PING_REPLY__INIT;
	pr.payload.data = (uint8_t *)"x";
	pr.payload.len = 1;
	resp.id = id;
	resp.body_case = PORTER__V1__RESPONSE__BODY_PING;
	resp.ping = &pr;
	reply(fd, &resp);
}

static void serve(fake *f, int fd)
{
	frame_reader rd;
	frame_reader_init(&rd, 1 << 20);
	for (;;) {
		const uint8_t *p;
		size_t len;
		while (frame_reader_next(&rd, &p, &len) != 1) {
			uint8_t *space;
			size_t cap;
			if (frame_reader_space(&rd, &space, &cap) < 0)
				goto out;
			int late = atomic_load(&f->read_delay_ms);
			if (late) {
				/* Arrived, left unread for a while. */
				struct pollfd pf = {.fd = fd, .events = POLLIN};
				if (poll(&pf, 1, -1) < 0)
					goto out;
				usleep((useconds_t)late * 1000);
			}
			ssize_t n = recv(fd, space, cap, 0);
			if (n <= 0)
				goto out;
			frame_reader_commit(&rd, (size_t)n);
		}
		Porter__V1__Request *req = porter__v1__request__unpack(NULL, len, p);
		if (!req)
			goto out;
		if (req->body_case == PORTER__V1__REQUEST__BODY_HELLO) {
			Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
			Porter__V1__HelloReply hr = PORTER__V1__HELLO_REPLY__INIT;
			hr.protocol = PORTER_PROTOCOL_VERSION;
			hr.daemon_version = PORTER_VERSION_STRING;
			hr.max_frame = 1 << 20;
			resp.id = req->id;
			resp.body_case = PORTER__V1__RESPONSE__BODY_HELLO;
			resp.hello = &hr;
			reply(fd, &resp);
		} else if (!atomic_load(&f->hold)) {
			int delay = atomic_load(&f->delay_ms);
			if (delay)
				usleep((useconds_t)delay * 1000);
			reply_ping(fd, req->id);
		}
		porter__v1__request__free_unpacked(req, NULL);
	}
out:
	frame_reader_free(&rd);
}

static void *fake_main(void *arg)
{
	fake *f = arg;
	for (;;) {
		int fd = accept(f->listen_fd, NULL, NULL);
		if (fd < 0)
			return NULL;
		serve(f, fd);
		close(fd);
	}
}

/* Starts the fake and points this process's calls at it. */
static void fake_start(fake *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/porter-wait-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/porter.sock", f->dir);
	f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	ck_assert_int_eq(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(f->listen_fd, 16), 0);
	pthread_create(&f->th, NULL, fake_main, f);
	setenv("PORTER_SOCKET", f->path, 1);
}

static void fake_stop(fake *f)
{
	porter_thread_disconnect();
	shutdown(f->listen_fd, SHUT_RDWR);
	close(f->listen_fd);
	pthread_join(f->th, NULL);
	unlink(f->path);
	rmdir(f->dir);
}

/* How many times the calling thread slept (gave up the CPU itself). */
static long my_sleeps(void)
{
	FILE *fp = fopen("/proc/thread-self/status", "r");
	ck_assert_ptr_nonnull(fp);
	char line[128];
	long n = -1;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
			break;
	fclose(fp);
	ck_assert_int_ge(n, 0);
	return n;
}

/* -------------------------------------------- the waiting thread */

typedef struct caller {
	pthread_t th;
	int timeout_ms;
	atomic_int done;
	int rc;
	long long took_ms;
} caller;

static void *caller_main(void *arg)
{
	caller *c = arg;
	long long t0 = th_now_ms();
	c->rc = porter_ping("x", 1, 0, c->timeout_ms);
	c->took_ms = th_now_ms() - t0;
	porter_thread_disconnect();
	atomic_store(&c->done, 1);
	return NULL;
}

/* ----------------------------------------------------------- tests */

/*
 * porterd reads each request 20 ms after it came and answers 20 ms later:
 * the calling thread sleeps once per call. A blocking recvmsg (tried, see
 * pconn.c) slept twice: woken when the request was read, asleep again.
 */
#define WAKE_CALLS 20
START_TEST(a_waiting_thread_wakes_once_per_call)
{
	fake f;
	fake_start(&f);
	ck_assert_int_eq(porter_ping("x", 1, 0, 5000), 0); /* connected */
	atomic_store(&f.read_delay_ms, 20);
	atomic_store(&f.delay_ms, 20);
	long before = my_sleeps();
	for (int i = 0; i < WAKE_CALLS; i++)
		ck_assert_msg(porter_ping("x", 1, 0, 5000) == 0, "call %d: %s", i,
			      porter_last_error_message());
	long slept = my_sleeps() - before;
	ck_assert_msg(slept <= WAKE_CALLS + WAKE_CALLS / 4,
		      "%d calls slept %ld times: woken before their replies", WAKE_CALLS, slept);
	fake_stop(&f);
}
END_TEST

/* No reply: each call ends with PORTER_E_TIMEOUT at its deadline, not
 * before it, short and long timeouts in any order (each on a new
 * connection: a call that timed out drops its own). */
START_TEST(a_call_without_reply_ends_at_its_deadline)
{
	fake f;
	fake_start(&f);
	atomic_store(&f.hold, 1);
	static const int timeouts[] = {1000, 100, 300, 50, 2000, 70, 700};
	for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
		int t = timeouts[i];
		long long t0 = th_now_ms();
		int rc = porter_ping("x", 1, 0, t);
		long long took = th_now_ms() - t0;
		ck_assert_msg(rc == PORTER_E_TIMEOUT, "timeout %d: %d (%s)", t, rc,
			      porter_last_error_message());
		/* Both clocks count whole milliseconds. */
		ck_assert_msg(took >= t - 2, "timeout %d ended after %lld ms", t, took);
		ck_assert_msg(took < t + 3000, "timeout %d ended after %lld ms", t, took);
	}
	fake_stop(&f);
}
END_TEST

static atomic_int signals_seen;

static void on_usr1(int sig)
{
	(void)sig;
	atomic_fetch_add(&signals_seen, 1);
}

/* SIGUSR1 every 5 ms at a thread waiting 300 ms for its reply, with a
 * handler that does not restart system calls: the call is answered. */
START_TEST(signals_during_the_wait_do_not_end_the_call)
{
	fake f;
	fake_start(&f);
	atomic_store(&f.delay_ms, 300);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: the wait sees EINTR */
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	atomic_store(&signals_seen, 0);

	caller c = {.timeout_ms = 5000};
	pthread_create(&c.th, NULL, caller_main, &c);
	while (!atomic_load(&c.done)) {
		pthread_kill(c.th, SIGUSR1);
		usleep(5000);
	}
	pthread_join(c.th, NULL);
	ck_assert_msg(c.rc == 0, "interrupted wait: %d after %lld ms", c.rc, c.took_ms);
	ck_assert_msg(atomic_load(&signals_seen) >= 5, "only %d signals delivered",
		      atomic_load(&signals_seen));
	ck_assert_msg(c.took_ms >= 290, "answered after %lld ms, before the fake's 300", c.took_ms);
	fake_stop(&f);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {a_waiting_thread_wakes_once_per_call,
				a_call_without_reply_ends_at_its_deadline,
				signals_during_the_wait_do_not_end_the_call, NULL};
	return th_suite("client_wait", "wait", 60, tests);
}

TH_MAIN(suite)
