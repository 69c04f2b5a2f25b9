/* turns - loop-turn tests' shared parts; see turns.h. */
#include "turns.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "porter.h"

#define MAX_PINGS 200000

long th_log_size(const th_daemon *d)
{
	FILE *f = fopen(d->log, "r");
	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fclose(f);
	return n;
}

int th_long_turns(const th_daemon *d, long from, long *max_us)
{
	FILE *f = fopen(d->log, "r");
	ck_assert_ptr_nonnull(f);
	fseek(f, from, SEEK_SET);
	char line[512];
	int n = 0;
	*max_us = 0;
	while (fgets(line, sizeof(line), f)) {
		const char *at = strstr(line, "a loop turn used ");
		if (!at)
			continue;
		long us = atol(at + strlen("a loop turn used "));
		*max_us = us > *max_us ? us : *max_us;
		if (n++ < 10)
			fprintf(stderr, "  %s", line);
	}
	fclose(f);
	return n;
}

static atomic_int by_stop, by_failed;
static int by_n;
static double by_ms[MAX_PINGS];
static pthread_t by_thread;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *bystander(void *arg)
{
	(void)arg;
	while (!atomic_load(&by_stop) && by_n < MAX_PINGS) {
		double t0 = now_ms();
		if (porter_ping("bystander", 9, 0, 10000) != 0)
			atomic_fetch_add(&by_failed, 1);
		by_ms[by_n++] = now_ms() - t0;
		usleep(200);
	}
	porter_thread_disconnect();
	return NULL;
}

void th_bystander_start(void)
{
	atomic_store(&by_stop, 0);
	atomic_store(&by_failed, 0);
	by_n = 0;
	ck_assert_int_eq(pthread_create(&by_thread, NULL, bystander, NULL), 0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void th_bystander_stop(const char *what)
{
	atomic_store(&by_stop, 1);
	pthread_join(by_thread, NULL);
	ck_assert_int_gt(by_n, 0);
	qsort(by_ms, (size_t)by_n, sizeof(by_ms[0]), cmp_double);
	printf("%s: bystander %d pings, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", what, by_n,
	       by_ms[by_n / 2], by_ms[by_n * 99 / 100], by_ms[by_n - 1]);
	ck_assert_msg(atomic_load(&by_failed) == 0, "%d of the bystander's pings failed",
		      atomic_load(&by_failed));
}
