/*
 * bench_db - `SELECT 1` through porterd (pooled, porter_db_query) vs direct
 * libpq (one blocking connection per thread, PQexec), at 1, 8 and 32
 * client threads in one run, against a throwaway PostgreSQL started with
 * tests/support/pg.sh. Prints rate, p50 and p99 of each and the ratios.
 *
 * Prints figures; never fails on timing. For profiling one side alone,
 * PORTER_BENCH_ONLY=porter|direct, PORTER_BENCH_THREADS=N and
 * PORTER_BENCH_MS=ms narrow or lengthen the run.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

static int RUN_MS = 2000;
#define MAX_SAMPLES 400000

static char conninfo[512];

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

typedef struct run {
	pthread_t th;
	int porter;  /* 1: porterd, 0: direct libpq */
	double *lat; /* ns per query */
	size_t n;
	int failures;
	double stop_at;
} run;

static void *run_main(void *arg)
{
	run *r = arg;
	PGconn *pg = NULL;
	if (!r->porter) {
		pg = PQconnectdb(conninfo);
		if (PQstatus(pg) != CONNECTION_OK) {
			fprintf(stderr, "direct connect: %s", PQerrorMessage(pg));
			r->failures++;
			PQfinish(pg);
			return NULL;
		}
	}
	/* Warm up: the pool (or the connection) is open before timing. */
	for (int i = 0; i < 20; i++) {
		if (r->porter) {
			porter_db_result *res = NULL;
			porter_db_query(0, conninfo, "SELECT 1", NULL, 0, 5000, &res);
			porter_db_result_free(res);
		} else {
			PQclear(PQexec(pg, "SELECT 1"));
		}
	}
	while (r->n < MAX_SAMPLES) {
		double t0 = now_ns();
		if (t0 >= r->stop_at)
			break;
		int ok;
		if (r->porter) {
			porter_db_result *res = NULL;
			ok = porter_db_query(0, conninfo, "SELECT 1", NULL, 0, 5000, &res) == 0 &&
			     porter_db_ntuples(res) == 1;
			porter_db_result_free(res);
		} else {
			PGresult *res = PQexec(pg, "SELECT 1");
			ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
			PQclear(res);
		}
		if (!ok)
			r->failures++;
		r->lat[r->n++] = now_ns() - t0;
	}
	if (pg)
		PQfinish(pg);
	porter_thread_disconnect();
	return NULL;
}

typedef struct figures {
	double rate, p50_us, p99_us;
	int failures;
} figures;

static figures measure(int porter, int threads)
{
	run *rs = calloc((size_t)threads, sizeof(*rs));
	double stop_at = now_ns() + RUN_MS * 1e6;
	for (int i = 0; i < threads; i++) {
		rs[i].porter = porter;
		rs[i].lat = malloc(MAX_SAMPLES * sizeof(double));
		rs[i].stop_at = stop_at;
		pthread_create(&rs[i].th, NULL, run_main, &rs[i]);
	}
	size_t total = 0;
	figures f = {0};
	for (int i = 0; i < threads; i++) {
		pthread_join(rs[i].th, NULL);
		total += rs[i].n;
		f.failures += rs[i].failures;
	}
	double *all = malloc((total + 1) * sizeof(double));
	size_t k = 0;
	for (int i = 0; i < threads; i++) {
		memcpy(all + k, rs[i].lat, rs[i].n * sizeof(double));
		k += rs[i].n;
		free(rs[i].lat);
	}
	qsort(all, total, sizeof(double), cmp);
	/* The warm-up happened inside the window; the rate uses the samples
	 * over the whole window, which understates both sides alike. */
	f.rate = (double)total / (RUN_MS / 1000.0);
	f.p50_us = total ? all[total / 2] / 1000.0 : 0;
	f.p99_us = total ? all[(size_t)((double)total * 0.99)] / 1000.0 : 0;
	free(all);
	free(rs);
	return f;
}

int main(void)
{
	char state[] = "/tmp/porter-bench-db.XXXXXX";
	if (!mkdtemp(state)) {
		perror("mkdtemp");
		return 1;
	}
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "PORTER_PG_LIMIT=600 sh %s/tests/support/pg.sh start %s >/dev/null",
		 PORTER_SOURCE_DIR, state);
	if (system(cmd) != 0) {
		fprintf(stderr, "bench_db: could not start PostgreSQL\n");
		return 1;
	}
	snprintf(cmd, sizeof(cmd), "%s/conninfo", state);
	FILE *f = fopen(cmd, "r");
	if (!f || !fgets(conninfo, sizeof(conninfo), f)) {
		fprintf(stderr, "bench_db: no conninfo\n");
		return 1;
	}
	fclose(f);
	conninfo[strcspn(conninfo, "\n")] = 0;

	if (getenv("PORTER_BENCH_MS") && atoi(getenv("PORTER_BENCH_MS")) > 0)
		RUN_MS = atoi(getenv("PORTER_BENCH_MS"));
	th_daemon d;
	const char *args[] = {NULL};
	int rc = 0;
	if (th_daemon_start(&d, args) != 0) {
		fprintf(stderr, "bench_db: porterd did not start\n");
		rc = 1;
		goto out;
	}
	printf("SELECT 1: porterd (pooled) vs direct libpq (PQexec, one connection per thread), %d "
	       "ms per run\n",
	       RUN_MS);
	printf("%-8s %-8s %12s %10s %10s\n", "threads", "path", "rate/s", "p50 us", "p99 us");
	int counts[] = {1, 8, 32};
	size_t ncounts = 3;
	const char *only = getenv("PORTER_BENCH_ONLY");
	const char *nth = getenv("PORTER_BENCH_THREADS");
	if (nth && atoi(nth) > 0) {
		counts[0] = atoi(nth);
		ncounts = 1;
	}
	for (size_t i = 0; i < ncounts; i++) {
		figures none = {0};
		figures direct = only && strcmp(only, "direct") ? none : measure(0, counts[i]);
		figures porter = only && strcmp(only, "porter") ? none : measure(1, counts[i]);
		printf("%-8d %-8s %12.0f %10.1f %10.1f%s\n", counts[i], "direct", direct.rate,
		       direct.p50_us, direct.p99_us, direct.failures ? "  (failures!)" : "");
		printf("%-8d %-8s %12.0f %10.1f %10.1f%s\n", counts[i], "porter", porter.rate,
		       porter.p50_us, porter.p99_us, porter.failures ? "  (failures!)" : "");
		printf("%-8d ratios: p50 porter/direct %.2f, throughput porter/direct %.2f\n",
		       counts[i], direct.p50_us > 0 ? porter.p50_us / direct.p50_us : 0,
		       direct.rate > 0 ? porter.rate / direct.rate : 0);
	}
	th_daemon_stop(&d);
	th_daemon_cleanup(&d);
out:
	snprintf(cmd, sizeof(cmd), "sh %s/tests/support/pg.sh stop %s; rmdir %s", PORTER_SOURCE_DIR,
		 state, state);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}
