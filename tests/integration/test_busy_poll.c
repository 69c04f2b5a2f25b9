/*
 * Busy polling ends: a worker spins only for --busy-poll after its last
 * I/O, so a daemon that was busy and then left alone uses no CPU. (That it
 * spins while CPUs are free is a matter of speed, shown by make bench.)
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
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

static Suite *suite(void)
{
	const TTest *tests[] = {spin_ends_when_idle, NULL};
	return th_suite("busy_poll", "core", 60, tests);
}

TH_MAIN(suite)
