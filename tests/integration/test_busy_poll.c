/*
 * Busy polling ends: a worker spins only for --busy-poll after its last
 * I/O, so a daemon that was busy and then left alone uses no CPU; and it
 * does not spin while as many clients as CPUs are in conversation with it.
 * (That it spins while CPUs are free is a matter of speed, shown by make
 * bench.)
 */
#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

/* CPU time of `pid` in clock ticks (user + system, all threads). */
static long cpu_ticks(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	unsigned long ut = 0, st = 0;
	int n = fscanf(f, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
	fclose(f);
	ck_assert_int_eq(n, 2);
	return (long)(ut + st);
}

static void idle_after_load(const char *busy_poll)
{
	th_daemon d;
	const char *args[] = {"--workers", "2", "--busy-poll", busy_poll, NULL};
	ck_assert_int_eq(th_daemon_start(&d, args), 0);
	for (int i = 0; i < 2000; i++)
		ck_assert_int_eq(porter_ping("x", 1, 0, 5000), 0);
	usleep(200 * 1000); /* well past any spin window */
	long t0 = cpu_ticks(d.pid);
	usleep(1000 * 1000);
	long used = cpu_ticks(d.pid) - t0;
	/* A worker still spinning would use most of a CPU (~100 ticks). */
	ck_assert_msg(used <= 5, "idle porterd used %ld ticks in 1 s (busy-poll %s)", used,
		      busy_poll);
	porter_thread_disconnect();
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}

START_TEST(spin_ends_when_idle)
{
	idle_after_load("100000"); /* the longest window, 100 ms */
	idle_after_load("200");
	idle_after_load("0");
}
END_TEST

/* Voluntary context switches of every thread of `pid`. A loop blocking in
 * epoll_wait makes one each time it sleeps; a spinning loop makes none
 * (sched_yield, which it calls on every turn, does not sleep). */
static long voluntary_switches(pid_t pid)
{
	char path[300], line[128];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	ck_assert_ptr_nonnull(d);
	long sum = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, e->d_name);
		FILE *f = fopen(path, "r");
		while (f && fgets(line, sizeof(line), f))
			if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
				sum += atol(line + 24);
		if (f)
			fclose(f);
	}
	closedir(d);
	return sum;
}

/* One worker spinning 100 ms after each I/O, with the run queue check
 * masked (PORTER_TEST_SPIN_ANY_LOAD): on a loaded machine it stops the
 * spin whatever the clients do, and only the crowd rule is tested here. */
static void start_spinning(th_daemon *d)
{
	const char *args[] = {"--workers", "1", "--busy-poll", "100000", NULL};
	setenv("PORTER_TEST_SPIN_ANY_LOAD", "1", 1);
	ck_assert_int_eq(th_daemon_start(d, args), 0);
	unsetenv("PORTER_TEST_SPIN_ANY_LOAD");
}

#define PINGS 150

/* A client in conversation: a ping every 2 ms or so, PINGS of them. */
static void *pinger(void *arg)
{
	(void)arg;
	for (int i = 0; i < PINGS; i++) {
		ck_assert_int_eq(porter_ping("x", 1, 0, 5000), 0);
		usleep(2000);
	}
	porter_thread_disconnect();
	return NULL;
}

/* porterd's voluntary switches while `threads` clients each make PINGS
 * pings 2 ms apart. */
static long switches_with(pid_t pd, int threads)
{
	pthread_t th[64];
	long v0 = voluntary_switches(pd);
	for (int i = 0; i < threads; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, pinger, NULL), 0);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	return voluntary_switches(pd) - v0;
}

/*
 * With a spin of 100 ms after each I/O, a lone client pinging every 2 ms
 * never lets the loop sleep; as many clients as CPUs and one more, each
 * pinging as often, do not keep it spinning: it sleeps between their
 * requests (about one switch per ping; at least a quarter of the pings is
 * asked for). The run queue check is masked (PORTER_TEST_SPIN_ANY_LOAD),
 * since on a loaded machine it stops the spin whatever the clients do.
 */
START_TEST(no_spin_with_as_many_clients_as_cpus)
{
	th_daemon d;
	start_spinning(&d);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int crowd = (int)(ncpu > 0 && ncpu < 63 ? ncpu : 1) + 1;
	long alone = switches_with(d.pid, 1);
	ck_assert_msg(alone < PINGS / 4, "a lone client's %d pings: porterd slept %ld times", PINGS,
		      alone);
	usleep(200 * 1000); /* the spin is over, and so is the crowd period */
	long many = switches_with(d.pid, crowd);
	fprintf(stderr, "porterd slept %ld times for 1 client's %d pings, %ld for %d clients' %d\n",
		alone, PINGS, many, crowd, crowd * PINGS);
	ck_assert_msg(many >= (long)crowd * PINGS / 4,
		      "%d clients' %d pings: porterd slept only %ld times (it spun)", crowd,
		      crowd * PINGS, many);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

#define RELAYS 10

/* One client after another, each a thread of its own connection making
 * PINGS / RELAYS pings 2 ms apart and disconnecting: never more than one
 * in conversation. */
static void *relay_pinger(void *arg)
{
	(void)arg;
	for (int i = 0; i < PINGS / RELAYS; i++) {
		ck_assert_int_eq(porter_ping("x", 1, 0, 5000), 0);
		usleep(2000);
	}
	porter_thread_disconnect();
	return NULL;
}

/*
 * A connection that closed is no client in conversation: a lone client
 * that reconnects (a thread or isolate that comes and goes) keeps the spin
 * as one that stays. When closed connections still counted for the two
 * crowd periods after their last frame, each new connection made a crowd
 * of two with its predecessor on two CPUs, and porterd slept on most of
 * its pings (the old porterd: about two in three).
 */
START_TEST(a_closed_connection_leaves_the_crowd)
{
	th_daemon d;
	start_spinning(&d);
	long v0 = voluntary_switches(d.pid);
	for (int i = 0; i < RELAYS; i++) {
		pthread_t th;
		ck_assert_int_eq(pthread_create(&th, NULL, relay_pinger, NULL), 0);
		pthread_join(th, NULL);
	}
	long slept = voluntary_switches(d.pid) - v0;
	fprintf(stderr, "porterd slept %ld times for %d clients' %d pings one after another\n",
		slept, RELAYS, PINGS);
	ck_assert_msg(slept < PINGS / 4,
		      "%d clients one after another, %d pings: porterd slept %ld times", RELAYS,
		      PINGS, slept);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {spin_ends_when_idle, no_spin_with_as_many_clients_as_cpus,
				a_closed_connection_leaves_the_crowd, NULL};
	return th_suite("busy_poll", "core", 60, tests);
}

TH_MAIN(suite)
