/*
 * bench_ping - porter_ping round trip vs a raw Unix-socket round trip
 * between two threads, at 1 and 8 client threads, in the same run, with
 * the CPU each call cost this process (the clients; for the raw path the
 * echo threads too) and porterd; plus porterd's memory per client
 * connection.
 *
 * Prints figures; never fails on timing.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_cpu.h"
#include "harness.h"
#include "porter.h"

#define WARMUP 2000
#define ITERS 40000
#define MSG 16

typedef struct run {
	pthread_t th;
	int raw;     /* 1: raw socket, 0: porter_ping */
	int fd;      /* raw: client end */
	double *lat; /* ns per round trip */
	int failures;
} run;

static void *echo_main(void *arg)
{
	int fd = *(int *)arg;
	char buf[MSG];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		if (write(fd, buf, (size_t)n) != n)
			break;
	}
	return NULL;
}

static int read_full(int fd, char *buf, size_t len)
{
	while (len) {
		ssize_t n = read(fd, buf, len);
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void *client_main(void *arg)
{
	run *r = arg;
	char msg[MSG] = "0123456789abcdef", back[MSG];
	for (int i = 0; i < WARMUP + ITERS; i++) {
		double t0 = th_now_ns();
		int rc;
		if (r->raw)
			rc = (write(r->fd, msg, MSG) == MSG && read_full(r->fd, back, MSG) == 0)
				     ? 0
				     : -1;
		else
			rc = porter_ping(msg, MSG, 0, 5000);
		double dt = th_now_ns() - t0;
		if (rc != 0)
			r->failures++;
		if (i >= WARMUP)
			r->lat[i - WARMUP] = dt;
	}
	porter_thread_disconnect();
	return NULL;
}

typedef struct result {
	double p50_us, p99_us, rate;
	double cpu_self_us, cpu_porterd_us; /* CPU per call, by process */
	int failures;
} result;

static result measure(pid_t porterd, int raw, int threads)
{
	run *runs = calloc((size_t)threads, sizeof(run));
	pthread_t *echo = calloc((size_t)threads, sizeof(pthread_t));
	int(*pairs)[2] = calloc((size_t)threads, sizeof(int[2]));
	double *all = malloc(sizeof(double) * (size_t)threads * ITERS);
	result res = {0};

	for (int i = 0; i < threads; i++) {
		runs[i].raw = raw;
		runs[i].lat = all + (size_t)i * ITERS;
		if (raw) {
			if (socketpair(AF_UNIX, SOCK_STREAM, 0, pairs[i]) < 0) {
				perror("socketpair");
				exit(1);
			}
			runs[i].fd = pairs[i][0];
			pthread_create(&echo[i], NULL, echo_main, &pairs[i][1]);
		}
	}
	double t0 = th_now_ns();
	double c0 = bench_self_cpu(), d0 = bench_proc_cpu(porterd, 0, NULL);
	for (int i = 0; i < threads; i++)
		pthread_create(&runs[i].th, NULL, client_main, &runs[i]);
	for (int i = 0; i < threads; i++) {
		pthread_join(runs[i].th, NULL);
		res.failures += runs[i].failures;
	}
	double wall = th_now_ns() - t0;
	double calls = (double)threads * (WARMUP + ITERS);
	res.cpu_self_us = (bench_self_cpu() - c0) * 1e6 / calls;
	res.cpu_porterd_us = (bench_proc_cpu(porterd, 0, NULL) - d0) * 1e6 / calls;
	if (raw) {
		for (int i = 0; i < threads; i++) {
			close(pairs[i][0]);
			pthread_join(echo[i], NULL);
			close(pairs[i][1]);
		}
	}
	size_t n = (size_t)threads * ITERS;
	qsort(all, n, sizeof(double), th_cmp_double);
	res.p50_us = all[n / 2] / 1e3;
	res.p99_us = all[(size_t)ceil(0.99 * (double)n) - 1] / 1e3;
	res.rate = calls / (wall / 1e9);
	free(runs);
	free(echo);
	free(pairs);
	free(all);
	return res;
}

/* Idle connections held by many threads, to price one in porterd. */
#define HOLDERS 256
static pthread_barrier_t hold_in, hold_out;

static void *holder_main(void *arg)
{
	(void)arg;
	porter_ping("h", 1, 0, 10000);
	pthread_barrier_wait(&hold_in);
	pthread_barrier_wait(&hold_out);
	porter_thread_disconnect();
	return NULL;
}

int main(void)
{
	th_daemon d;
	const char *args[] = {"--log-level", "warn", NULL};
	if (th_daemon_start(&d, args) != 0) {
		fprintf(stderr, "bench_ping: porterd did not start\n");
		return 1;
	}

	printf("bench_ping: %d round trips of %d bytes per thread (after %d warm-up), porterd with %ld workers\n",
	       ITERS, MSG, WARMUP, sysconf(_SC_NPROCESSORS_ONLN));
	printf("(cpu us: CPU per call of this process, its clients and for the raw path the echo "
	       "threads, and of porterd)\n");
	printf("%-8s %-20s %10s %10s %12s %9s %9s %9s\n", "threads", "path", "p50 us", "p99 us",
	       "calls/s", "cpu self", "cpu pd", "failures");
	int counts[] = {1, 8};
	for (size_t k = 0; k < 2; k++) {
		int t = counts[k];
		result raw = measure(d.pid, 1, t);
		result por = measure(d.pid, 0, t);
		printf("%-8d %-20s %10.1f %10.1f %12.0f %9.2f %9.2f %9d\n", t, "raw unix socket",
		       raw.p50_us, raw.p99_us, raw.rate, raw.cpu_self_us, raw.cpu_porterd_us,
		       raw.failures);
		printf("%-8d %-20s %10.1f %10.1f %12.0f %9.2f %9.2f %9d\n", t, "porter_ping",
		       por.p50_us, por.p99_us, por.rate, por.cpu_self_us, por.cpu_porterd_us,
		       por.failures);
		printf("%-8d %-20s %10.2fx %9.2fx %11.2fx\n", t, "ratio porter/raw",
		       por.p50_us / raw.p50_us, por.p99_us / raw.p99_us, por.rate / raw.rate);
	}

	long before = th_rss_kib(d.pid);
	pthread_t holders[HOLDERS];
	pthread_barrier_init(&hold_in, NULL, HOLDERS + 1);
	pthread_barrier_init(&hold_out, NULL, HOLDERS + 1);
	for (int i = 0; i < HOLDERS; i++)
		pthread_create(&holders[i], NULL, holder_main, NULL);
	pthread_barrier_wait(&hold_in);
	long during = th_rss_kib(d.pid);
	pthread_barrier_wait(&hold_out);
	for (int i = 0; i < HOLDERS; i++)
		pthread_join(holders[i], NULL);
	printf("porterd RSS: %ld KiB idle, %ld KiB with %d client connections: %.1f KiB per connection\n",
	       before, during, HOLDERS, (double)(during - before) / HOLDERS);

	th_daemon_stop(&d);
	th_daemon_cleanup(&d);
	return 0;
}
