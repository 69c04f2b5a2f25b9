/*
 * bench_file - reading a file through porterd (porter_file_read) vs what a
 * program does without it (open, read(2) into a buffer, close), for a
 * 4 KiB and a 16 MiB file, at 1 and 4 client threads, in the same run.
 * The file is in the page cache for both, so the figures compare the
 * paths, not the disk.
 *
 * Prints p50, p99, throughput and the porter/direct ratios; never fails on
 * timing.
 */
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

static char root[64];

typedef struct job {
	pthread_t th;
	int porter; /* 1: porter_file_read, 0: read(2) */
	const char *name;
	size_t size;
	int iters;
	double *lat;
	int failures;
} job;

static int direct_read(const char *name, size_t size, uint8_t *buf)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/%s", root, name);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	return got == size ? 0 : -1;
}

static void *job_main(void *arg)
{
	job *j = arg;
	uint8_t *buf = j->porter ? NULL : malloc(j->size);
	for (int i = -3; i < j->iters; i++) { /* 3 warm-up rounds */
		double t0 = th_now_ns();
		int rc;
		if (j->porter) {
			porter_bytes *b = NULL;
			rc = porter_file_read("bench", j->name, 0, 0, 0, 30000, &b);
			if (rc == 0 && b->len != j->size)
				rc = -1;
			porter_bytes_free(b);
		} else {
			rc = direct_read(j->name, j->size, buf);
		}
		if (rc != 0)
			j->failures++;
		if (i >= 0)
			j->lat[i] = th_now_ns() - t0;
	}
	free(buf);
	porter_thread_disconnect();
	return NULL;
}

typedef struct result {
	double p50, p99, mib_s;
	int failures;
} result;

static result measure(int porter, const char *name, size_t size, int threads, int iters)
{
	job *jobs = calloc((size_t)threads, sizeof(*jobs));
	double *all = calloc((size_t)threads * (size_t)iters, sizeof(double));
	double t0 = th_now_ns();
	for (int t = 0; t < threads; t++) {
		jobs[t] = (job){.porter = porter,
				.name = name,
				.size = size,
				.iters = iters,
				.lat = all + (size_t)t * (size_t)iters};
		pthread_create(&jobs[t].th, NULL, job_main, &jobs[t]);
	}
	result r = {0};
	for (int t = 0; t < threads; t++) {
		pthread_join(jobs[t].th, NULL);
		r.failures += jobs[t].failures;
	}
	double wall = th_now_ns() - t0;
	size_t n = (size_t)threads * (size_t)iters;
	qsort(all, n, sizeof(double), th_cmp_double);
	r.p50 = all[n / 2];
	r.p99 = all[(n * 99) / 100];
	/* Warm-up rounds included in the wall time are few; close enough. */
	r.mib_s = (double)size * (double)(n + 3 * (size_t)threads) / wall * 1e9 / (1 << 20);
	free(all);
	free(jobs);
	return r;
}

static void fmt_ns(double ns, char *out, size_t cap)
{
	if (ns >= 1e6)
		snprintf(out, cap, "%.2f ms", ns / 1e6);
	else
		snprintf(out, cap, "%.1f us", ns / 1e3);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

int main(void)
{
	th_daemon d;
	char roots[128];
	strcpy(root, "/tmp/porter-bench-XXXXXX");
	if (!mkdtemp(root))
		return 1;
	snprintf(roots, sizeof(roots), "bench=%s", root);
	const char *args[] = {"--file-roots", roots, "--log-level", "warn", NULL};
	if (th_daemon_start(&d, args) != 0) {
		fprintf(stderr, "bench_file: porterd did not start\n");
		return 1;
	}
	const struct {
		const char *name;
		size_t size;
		int iters;
	} files[] = {{"small", 4096, 5000}, {"large", 16u << 20, 40}};
	for (size_t i = 0; i < 2; i++) {
		uint8_t *data = malloc(files[i].size);
		for (size_t k = 0; k < files[i].size; k++)
			data[k] = (uint8_t)(k * 13);
		if (porter_file_write("bench", files[i].name, data, files[i].size,
				      PORTER_FILE_ATOMIC, 0, 0, 30000) != 0) {
			fprintf(stderr, "bench_file: setup write failed: %s\n",
				porter_last_error_message());
			return 1;
		}
		free(data);
	}
	porter_thread_disconnect();

	printf("file read through porterd vs direct open+read(2)+close (page cache warm)\n");
	printf("%-6s %-7s %-8s %10s %10s %11s   %s\n", "size", "threads", "path", "p50", "p99",
	       "MiB/s", "ratio porter/direct (p50, throughput)");
	const int threads[] = {1, 4};
	for (size_t i = 0; i < 2; i++) {
		for (size_t t = 0; t < 2; t++) {
			int iters = files[i].iters / threads[t];
			if (iters < 10)
				iters = 10;
			result dr = measure(0, files[i].name, files[i].size, threads[t], iters);
			result pr = measure(1, files[i].name, files[i].size, threads[t], iters);
			char a[32], b[32], c[32], e[32];
			fmt_ns(dr.p50, a, sizeof(a));
			fmt_ns(dr.p99, b, sizeof(b));
			fmt_ns(pr.p50, c, sizeof(c));
			fmt_ns(pr.p99, e, sizeof(e));
			const char *label = i == 0 ? "4KiB" : "16MiB";
			printf("%-6s %-7d %-8s %10s %10s %11.1f\n", label, threads[t], "direct", a,
			       b, dr.mib_s);
			printf("%-6s %-7d %-8s %10s %10s %11.1f   p50 x%.2f, throughput x%.2f%s\n",
			       label, threads[t], "porter", c, e, pr.mib_s, pr.p50 / dr.p50,
			       pr.mib_s / dr.mib_s,
			       pr.failures || dr.failures ? "  (FAILURES)" : "");
		}
	}
	th_daemon_stop(&d);
	th_daemon_cleanup(&d);
	nftw(root, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}
