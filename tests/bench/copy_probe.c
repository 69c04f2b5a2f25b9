/*
 * copy_probe - how much a 16 MiB read(2) of a file in the page cache owes
 * to what the CPU cache kept from the read before it. bench_file's warm
 * 16 MiB rows repeat the same read into the same buffer; a loop that never
 * waits keeps part of those 32 MiB in the cache, a call that waits for a
 * reply (every porter call) loses part of it. This prints the same read
 * timed after each of:
 *   again    the same read just before, on the same CPU
 *   evicted  64 MiB of other memory read after it
 *   moved    the thread moved to the next CPU after it
 *   slept    usleep(20) after it (about one round trip's wait)
 *   echo     a one-byte round trip through a pipe to a thread on the
 *            next CPU after it (a wait for another thread's reply)
 * in turns, `N` times each (default 100), pinned to CPU 0, so that the
 * machine's drift moves every case alike.
 *
 *   copy_probe FILE [N]      (FILE: at least 16 MiB, read twice first)
 *
 * Built with the benchmarks, run by neither make target. On this 2-vCPU
 * VM under SCHED_FIFO, at load 9-13 (a first version of it): again 801 us,
 * evicted 1233 us, moved 1273 us; at load 8-9, p50 of two runs of 40:
 * again 1467/1640, slept 1584/1716, echo 1459/1701, evicted 1937/2061,
 * moved 1982/2013 us (the machine's other work moves the absolute
 * figures, not their order). Run it on the idle machine, or under
 * chrt -f when the machine is not idle.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SIZE (16u << 20)
#define EVICT (64u << 20)

enum kase { AGAIN, EVICTED, MOVED, SLEPT, ECHO, NKASE };
static const char *const kase_name[NKASE] = {"again", "evicted", "moved", "slept", "echo"};

static uint8_t *buf, *other;
static volatile uint8_t sink;
static int to_echo[2], from_echo[2];

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	return sched_setaffinity(0, sizeof(s), &s);
}

/* Reads the file's first 16 MiB into `buf`; returns the read's ns or -1. */
static double read_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	double t0 = now_ns();
	ssize_t n = read(fd, buf, SIZE);
	double t = now_ns() - t0;
	close(fd);
	return n == (ssize_t)SIZE ? t : -1;
}

/* The echo thread, pinned to the next CPU: answers each byte. */
static void *echo_main(void *arg)
{
	pin(*(int *)arg);
	char c;
	while (read(to_echo[0], &c, 1) == 1)
		if (write(from_echo[1], &c, 1) != 1)
			break;
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: copy_probe FILE [N]\n");
		return 2;
	}
	int n = argc > 2 ? atoi(argv[2]) : 100;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int next = ncpu > 1 ? 1 : 0;
	buf = malloc(SIZE);
	other = malloc(EVICT);
	double *t = calloc((size_t)n * NKASE, sizeof(double));
	if (n < 1 || !buf || !other || !t || pipe(to_echo) < 0 || pipe(from_echo) < 0)
		return 1;
	memset(buf, 1, SIZE);
	memset(other, 2, EVICT); /* written, so that its reads are not all one zero page */
	pthread_t echo;
	pthread_create(&echo, NULL, echo_main, &next);
	pin(0);
	if (read_file(argv[1]) < 0 || read_file(argv[1]) < 0) {
		fprintf(stderr, "copy_probe: cannot read 16 MiB of %s\n", argv[1]);
		return 1;
	}
	for (int i = 0; i < n; i++)
		for (int k = 0; k < NKASE; k++) {
			read_file(argv[1]);
			if (k == EVICTED) {
				uint8_t s = 0;
				for (size_t j = 0; j < EVICT; j += 64)
					s = (uint8_t)(s + other[j]);
				sink = s;
			} else if (k == MOVED) {
				pin(next);
			} else if (k == SLEPT) {
				usleep(20);
			} else if (k == ECHO) {
				char c = 'x';
				if (write(to_echo[1], &c, 1) != 1 || read(from_echo[0], &c, 1) != 1)
					return 1;
			}
			t[k * n + i] = read_file(argv[1]);
			if (k == MOVED)
				pin(0);
		}
	printf("16 MiB read(2) of %s, %d times per case, pinned to CPU 0 (next CPU %d)\n", argv[1],
	       n, next);
	for (int k = 0; k < NKASE; k++) {
		double *v = t + (size_t)k * (size_t)n;
		qsort(v, (size_t)n, sizeof(double), cmp_double);
		printf("%-8s p25 %7.0f us  p50 %7.0f us  p75 %7.0f us\n", kase_name[k],
		       v[n / 4] / 1e3, v[n / 2] / 1e3, v[3 * n / 4] / 1e3);
	}
	close(to_echo[1]);
	pthread_join(echo, NULL);
	free(t);
	free(other);
	free(buf);
	return 0;
}
