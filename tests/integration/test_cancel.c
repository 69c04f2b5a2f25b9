/*
 * Integration tests of Cancel and daemon-side deadlines, using the delayed
 * Ping as a stoppable operation that needs no external server.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

static th_daemon d;

typedef struct slow_call {
	pthread_t th;
	uint32_t delay_ms;
	int timeout_ms;
	_Atomic uint64_t id; /* published before the call blocks */
	atomic_int started;
	int rc;
	long long returned_at;
} slow_call;

static void *slow_main(void *arg)
{
	slow_call *c = arg;
	/* A connection of its own first, so the call below is the only
	 * thing between the published id and the daemon. */
	ck_assert_int_eq(porter_ping("warm", 4, 0, 2000), 0);
	atomic_store(&c->id, porter_call_id_new());
	atomic_store(&c->started, 1);
	c->rc = porter_ping_delay("slow", 4, c->delay_ms, atomic_load(&c->id), c->timeout_ms);
	c->returned_at = th_now_ms();
	porter_thread_disconnect();
	return NULL;
}

static void slow_start(slow_call *c, uint32_t delay_ms, int timeout_ms)
{
	memset(c, 0, sizeof(*c));
	c->delay_ms = delay_ms;
	c->timeout_ms = timeout_ms;
	ck_assert_int_eq(pthread_create(&c->th, NULL, slow_main, c), 0);
	while (!atomic_load(&c->started))
		usleep(1000);
}

START_TEST(cancel_from_another_thread)
{
	/* Several workers, and enough connections that the canceller and the
	 * target usually sit on different workers: the cancel must reach the
	 * target's worker either way. */
	const char *args[] = {"--workers", "4", NULL};
	th_start(&d, args);
	ck_assert_int_eq(porter_ping("main", 4, 0, 2000), 0);

	enum { N = 6 };
	slow_call calls[N];
	for (int i = 0; i < N; i++)
		slow_start(&calls[i], 20000, 30000);
	usleep(200000); /* let every call reach the daemon */
	ck_assert_uint_ge(th_total_inflight(), N);

	long long worst = 0;
	for (int i = 0; i < N; i++) {
		long long t0 = th_now_ms();
		ck_assert_int_eq(porter_cancel(atomic_load(&calls[i].id), 2000), 0);
		pthread_join(calls[i].th, NULL);
		ck_assert_int_eq(calls[i].rc, PORTER_E_CANCELLED);
		long long lat = calls[i].returned_at - t0;
		if (lat > worst)
			worst = lat;
		ck_assert_int_lt(lat, 5000); /* promptly, never the 20 s delay */
	}
	printf("cancel latency (cancel sent to cancelled call returned), worst of %d: %lld ms\n", N,
	       worst);

	/* Cancelling again finds nothing. */
	ck_assert_int_eq(porter_cancel(atomic_load(&calls[0].id), 2000), PORTER_E_NOT_FOUND);
	ck_assert_int_eq(th_total_inflight(), 1); /* the stats request itself */
	th_stop_clean(&d);
}
END_TEST

static void *cancel_id_main(void *arg)
{
	uint64_t id = *(uint64_t *)arg;
	*(int *)((uint64_t *)arg + 1) = porter_cancel(id, 2000);
	porter_thread_disconnect();
	return NULL;
}

START_TEST(cancel_before_the_request_arrives)
{
	th_start(&d, NULL);
	ck_assert_int_eq(porter_ping("x", 1, 0, 2000), 0);
	uint64_t box[2] = {porter_call_id_new(), 0};
	ck_assert_uint_ne(box[0], 0);
	ck_assert_uint_ne(porter_call_id_new(), box[0]); /* every id is new */
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, cancel_id_main, box), 0);
	pthread_join(th, NULL);
	ck_assert_int_eq((int)box[1], PORTER_E_NOT_FOUND);

	/* The id is used now: the daemon remembers it and refuses. */
	long long t0 = th_now_ms();
	ck_assert_int_eq(porter_ping_delay("x", 1, 10000, box[0], 20000), PORTER_E_CANCELLED);
	ck_assert_int_lt(th_now_ms() - t0, 2000);
	/* A call without an id (or with another) runs normally. */
	ck_assert_int_eq(porter_ping_delay("y", 1, 10, 0, 2000), 0);
	th_stop_clean(&d);
}
END_TEST

START_TEST(daemon_enforces_deadline)
{
	th_start(&d, NULL);
	long long t0 = th_now_ms();
	int rc = porter_ping_delay("x", 1, 10000, 0, 300);
	long long took = th_now_ms() - t0;
	ck_assert_int_eq(rc, PORTER_E_TIMEOUT);
	ck_assert_int_ge(took, 250);
	ck_assert_int_lt(took, 2300);
	/* The delay fits: an ordinary reply. */
	ck_assert_int_eq(porter_ping_delay("x", 1, 50, 0, 2000), 0);
	/* The work of the timed-out call is gone from the daemon. */
	long long until = th_now_ms() + 3000;
	while (th_total_inflight() > 1 && th_now_ms() < until)
		usleep(20000);
	ck_assert_int_eq(th_total_inflight(), 1);
	th_stop_clean(&d);
}
END_TEST

START_TEST(client_gone_frees_its_work)
{
	th_start(&d, NULL);
	slow_call c;
	slow_start(&c, 20000, 30000);
	usleep(200000);
	ck_assert_int_eq(th_total_inflight(), 2);
	/* A client process that dies mid-call: its work is dropped. */
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		porter_ping_delay("child", 5, 20000, 0, 30000);
		_exit(0);
	}
	usleep(300000);
	ck_assert_int_eq(th_total_inflight(), 3);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	long long until = th_now_ms() + 3000;
	while (th_total_inflight() > 2 && th_now_ms() < until)
		usleep(20000);
	ck_assert_int_eq(th_total_inflight(), 2);
	ck_assert_int_eq(porter_cancel(atomic_load(&c.id), 2000), 0);
	pthread_join(c.th, NULL);
	ck_assert_int_eq(c.rc, PORTER_E_CANCELLED);
	th_stop_clean(&d);
}
END_TEST

START_TEST(other_clients_cannot_cancel)
{
	th_start(&d, NULL);
	int pipefd[2];
	ck_assert_int_eq(pipe(pipefd), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Another process (another client instance) runs a slow call
		 * and reports its id and result. */
		close(pipefd[0]);
		uint64_t id = porter_call_id_new();
		if (write(pipefd[1], &id, sizeof(id)) != sizeof(id))
			_exit(2);
		int rc = porter_ping_delay("other", 5, 700, id, 5000);
		_exit(rc == 0 ? 0 : 1);
	}
	close(pipefd[1]);
	uint64_t id;
	ck_assert_int_eq(read(pipefd[0], &id, sizeof(id)), sizeof(id));
	close(pipefd[0]);
	usleep(200000);
	ck_assert_int_eq(porter_cancel(id, 2000), PORTER_E_NOT_FOUND);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0); /* its call completed */
	ck_assert_int_eq(porter_cancel(0, 1000), PORTER_E_INVAL);
	th_stop_clean(&d);
}
END_TEST

START_TEST(shutdown_cancels_work_past_grace)
{
	const char *args[] = {"--shutdown-grace", "200", NULL};
	th_start(&d, args);
	slow_call c;
	slow_start(&c, 20000, 30000);
	usleep(200000);
	long long t0 = th_now_ms();
	/* SIGTERM: the 20 s call cannot finish within the grace; the
	 * daemon still stops cleanly and promptly, and the caller gets an
	 * error rather than a hang. */
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	ck_assert_int_lt(th_now_ms() - t0, 5000);
	pthread_join(c.th, NULL);
	ck_assert_int_eq(c.rc, PORTER_E_SHUTDOWN);
	th_daemon_cleanup(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {cancel_from_another_thread,
				cancel_before_the_request_arrives,
				daemon_enforces_deadline,
				client_gone_frees_its_work,
				other_clients_cannot_cancel,
				shutdown_cancels_work_past_grace,
				NULL};
	return th_suite("cancel", "core", 60, tests);
}

TH_MAIN(suite)
