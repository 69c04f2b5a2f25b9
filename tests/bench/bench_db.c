/*
 * bench_db - `SELECT 1` through porterd (pooled, porter_db_query) vs direct
 * libpq (one blocking connection per thread, PQexec), at 1, 8 and 32
 * client threads in one run, against a throwaway PostgreSQL started with
 * tests/support/pg.sh. Prints rate, p50 and p99 of each and the ratios,
 * CPU per query by process, and a floor row: direct + the same round's
 * porter_ping round trip.
 *
 * A shared or virtual machine's speed drifts by ±10% from one second to
 * the next, so every thread count runs in rounds (PORTER_BENCH_ROUNDS, default 5) in
 * which the paths take turns; the figures printed are medians over the
 * rounds and the ratios medians of each round's own ratio.
 *
 * The seed's pattern is a third path when it was built (tests/bench/seed,
 * `make bench` builds it with cargo when cargo is installed): a Rust
 * program whose threads each keep a current-thread Tokio runtime and a
 * tokio-postgres client in thread-local storage and block on each call.
 * It runs as a process of its own in each round; its CPU column is its
 * own (user + system over the run).
 *
 * Prints figures; never fails on timing. For profiling one side alone,
 * PORTER_BENCH_ONLY=porter|direct, PORTER_BENCH_THREADS=N and
 * PORTER_BENCH_MS=ms narrow or lengthen the run (PORTER_DAEMON_ARGS and
 * PORTER_DAEMON_WRAP, read by the harness, add porterd flags or run it
 * under a tool such as callgrind).
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/resource.h>

#include "bench_cpu.h"
#include "harness.h"
#include "porter.h"

static int RUN_MS = 2000;
/* Rounds per thread count (PORTER_BENCH_ROUNDS); odd, so a median is one. */
static int ROUNDS = 5;
#define MAX_ROUNDS 15
#define MAX_SAMPLES 400000

static char conninfo[512];

typedef struct run {
	pthread_t th;
	int porter;  /* 1: porterd, 0: direct libpq, 2: porter_ping (floor) */
	double *lat; /* ns per query */
	size_t n;
	int failures;
} run;

/* Threads warm up, meet here, and run until g_stop_at, which main sets
 * between the two waits (after reading the CPU counters). */
static pthread_barrier_t g_ready, g_go;
static double g_stop_at;

#ifndef PORTER_SEED_BIN
#define PORTER_SEED_BIN ""
#endif

/* Whether the seed's program was built. */
static int seed_built(void)
{
	return PORTER_SEED_BIN[0] && access(PORTER_SEED_BIN, X_OK) == 0;
}

/* One request of r's path; 1 when it was answered as expected. */
static int one_query(const run *r, PGconn *pg)
{
	int ok;
	if (r->porter == 2) {
		ok = porter_ping("0123456789abcdef", 16, 0, 5000) == 0;
	} else if (r->porter) {
		porter_db_result *res = NULL;
		ok = porter_db_query(0, conninfo, "SELECT 1", NULL, 0, 0, 5000, &res) == 0 &&
		     porter_db_ntuples(res) == 1;
		porter_db_result_free(res);
	} else {
		PGresult *res = PQexec(pg, "SELECT 1");
		ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
		PQclear(res);
	}
	return ok;
}

static void *run_main(void *arg)
{
	run *r = arg;
	PGconn *pg = NULL;
	if (r->porter == 0) {
		pg = PQconnectdb(conninfo);
		if (PQstatus(pg) != CONNECTION_OK) {
			fprintf(stderr, "direct connect: %s", PQerrorMessage(pg));
			r->failures++;
			PQfinish(pg);
			return NULL;
		}
	}
	/* Warm up: the pool (or the connection) is open before timing. */
	for (int i = 0; i < 20; i++)
		one_query(r, pg);
	pthread_barrier_wait(&g_ready);
	pthread_barrier_wait(&g_go);
	while (r->n < MAX_SAMPLES) {
		double t0 = th_now_ns();
		if (t0 >= g_stop_at)
			break;
		if (!one_query(r, pg))
			r->failures++;
		r->lat[r->n++] = th_now_ns() - t0;
	}
	if (pg)
		PQfinish(pg);
	porter_thread_disconnect();
	return NULL;
}

typedef struct figures {
	double rate, p50_us, p99_us;
	int failures;
	/* CPU microseconds per query: this process (the clients), porterd,
	 * and the PostgreSQL server (postmaster and every backend). */
	double cpu_client, cpu_porterd, cpu_pg;
} figures;

static pid_t g_porterd;    /* 0 when not running */
static pid_t g_postmaster; /* 0 when unknown */

static double pg_cpu(void)
{
	if (!g_postmaster)
		return 0;
	double t = bench_proc_cpu(g_postmaster, 1, NULL);
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		pid_t pid = (pid_t)atoi(e->d_name), ppid = 0;
		if (pid <= 0)
			continue;
		double c = bench_proc_cpu(pid, 0, &ppid);
		if (ppid == g_postmaster)
			t += c;
	}
	if (d)
		closedir(d);
	return t;
}

static figures measure(int porter, int threads)
{
	run *rs = calloc((size_t)threads, sizeof(*rs));
	pthread_barrier_init(&g_ready, NULL, (unsigned)threads + 1);
	pthread_barrier_init(&g_go, NULL, (unsigned)threads + 1);
	for (int i = 0; i < threads; i++) {
		rs[i].porter = porter;
		rs[i].lat = malloc(MAX_SAMPLES * sizeof(double));
		pthread_create(&rs[i].th, NULL, run_main, &rs[i]);
	}
	pthread_barrier_wait(&g_ready);
	double c0 = bench_self_cpu(), d0 = g_porterd ? bench_proc_cpu(g_porterd, 0, NULL) : 0,
	       p0 = pg_cpu();
	g_stop_at = th_now_ns() + RUN_MS * 1e6;
	pthread_barrier_wait(&g_go);
	size_t total = 0;
	figures f = {0};
	for (int i = 0; i < threads; i++) {
		pthread_join(rs[i].th, NULL);
		total += rs[i].n;
		f.failures += rs[i].failures;
	}
	double c1 = bench_self_cpu(), d1 = g_porterd ? bench_proc_cpu(g_porterd, 0, NULL) : 0,
	       p1 = pg_cpu();
	if (total) {
		f.cpu_client = (c1 - c0) * 1e6 / (double)total;
		f.cpu_porterd = (d1 - d0) * 1e6 / (double)total;
		f.cpu_pg = (p1 - p0) * 1e6 / (double)total;
	}
	pthread_barrier_destroy(&g_ready);
	pthread_barrier_destroy(&g_go);
	double *all = malloc((total + 1) * sizeof(double));
	size_t k = 0;
	for (int i = 0; i < threads; i++) {
		memcpy(all + k, rs[i].lat, rs[i].n * sizeof(double));
		k += rs[i].n;
		free(rs[i].lat);
	}
	qsort(all, total, sizeof(double), th_cmp_double);
	f.rate = (double)total / (RUN_MS / 1000.0);
	f.p50_us = total ? all[total / 2] / 1000.0 : 0;
	f.p99_us = total ? all[(size_t)((double)total * 0.99)] / 1000.0 : 0;
	free(all);
	free(rs);
	return f;
}

/* The seed's pattern for `threads` threads, one run of RUN_MS as a process
 * of its own; its line: queries N p50_us X p99_us Y cpu_s Z failures F. */
static figures measure_seed(int threads)
{
	figures f = {0};
	char nthreads[16], run_ms[16], out[512];
	snprintf(nthreads, sizeof(nthreads), "%d", threads);
	snprintf(run_ms, sizeof(run_ms), "%d", RUN_MS);
	const char *const argv[] = {PORTER_SEED_BIN, conninfo, nthreads, run_ms, NULL};
	double p0 = pg_cpu();
	int st = th_run(argv, TH_ERR_KEEP, NULL, 0, out, sizeof(out), NULL);
	unsigned long n = 0;
	double cpu = 0;
	if (st < 0 || sscanf(out, "queries %lu p50_us %lf p99_us %lf cpu_s %lf failures %d", &n,
			     &f.p50_us, &f.p99_us, &cpu, &f.failures) != 5) {
		fprintf(stderr, "bench_db: the seed's program gave no figures\n");
		f.failures = 1;
	}
	double p1 = pg_cpu();
	if (n) {
		f.rate = (double)n / (RUN_MS / 1000.0);
		f.cpu_client = cpu * 1e6 / (double)n;
		/* Includes its threads' connecting: a few ms over the run. */
		f.cpu_pg = (p1 - p0) * 1e6 / (double)n;
	}
	return f;
}

static void print_row(int threads, const char *path, const figures *f)
{
	printf("%-8d %-8s %10.0f %9.1f %9.1f %8.1f %8.1f %8.1f %8.1f%s\n", threads, path, f->rate,
	       f->p50_us, f->p99_us, f->cpu_client, f->cpu_porterd, f->cpu_pg,
	       f->cpu_client + f->cpu_porterd + f->cpu_pg, f->failures ? "  (failures!)" : "");
}

/* The floor of one round: direct libpq plus one porterd round trip (the
 * same round's ping), the least a relay that adds one process hop can
 * cost. Latencies add; rates combine as the time per request adds. */
static figures floor_of(const figures *direct, const figures *ping)
{
	figures f = {0};
	f.p50_us = direct->p50_us + ping->p50_us;
	f.p99_us = direct->p99_us + ping->p99_us;
	if (direct->rate > 0 && ping->rate > 0)
		f.rate = 1.0 / (1.0 / direct->rate + 1.0 / ping->rate);
	f.cpu_client = direct->cpu_client + ping->cpu_client;
	f.cpu_porterd = direct->cpu_porterd + ping->cpu_porterd;
	f.cpu_pg = direct->cpu_pg + ping->cpu_pg;
	return f;
}

enum figure { RATE, P50, CPU };

static double figure_of(const figures *f, enum figure which)
{
	switch (which) {
	case RATE:
		return f->rate;
	case P50:
		return f->p50_us;
	default:
		return f->cpu_client + f->cpu_porterd + f->cpu_pg;
	}
}

/* The median of the rounds' a/b ratios of one figure; the smallest and
 * largest in `*lo` and `*hi` when given. 0 when a round has no figure. */
static double median_ratio(const figures *a, const figures *b, enum figure which, double *lo,
			   double *hi)
{
	double r[MAX_ROUNDS];
	for (int k = 0; k < ROUNDS; k++) {
		double den = figure_of(&b[k], which);
		r[k] = den > 0 ? figure_of(&a[k], which) / den : 0;
	}
	qsort(r, (size_t)ROUNDS, sizeof(double), th_cmp_double);
	if (lo)
		*lo = r[0];
	if (hi)
		*hi = r[ROUNDS - 1];
	return r[ROUNDS / 2];
}

/* Each column's median over the rounds; failures add up. */
static figures median_figures(const figures *f)
{
	figures m = {0};
	double v[MAX_ROUNDS];
	double *cols[] = {&m.rate, &m.p50_us, &m.p99_us, &m.cpu_client, &m.cpu_porterd, &m.cpu_pg};
	size_t offs[] = {offsetof(figures, rate),        offsetof(figures, p50_us),
			 offsetof(figures, p99_us),      offsetof(figures, cpu_client),
			 offsetof(figures, cpu_porterd), offsetof(figures, cpu_pg)};
	for (size_t c = 0; c < sizeof(offs) / sizeof(offs[0]); c++) {
		for (int k = 0; k < ROUNDS; k++)
			v[k] = *(const double *)((const char *)&f[k] + offs[c]);
		qsort(v, (size_t)ROUNDS, sizeof(double), th_cmp_double);
		*cols[c] = v[ROUNDS / 2];
	}
	for (int k = 0; k < ROUNDS; k++)
		m.failures += f[k].failures;
	return m;
}

/* The postmaster's pid, from the data directory under the conninfo's
 * socket directory (host=DIR). 0 when not found. */
static pid_t find_postmaster(void)
{
	const char *h = strstr(conninfo, "host=");
	if (!h)
		return 0;
	char dir[256], path[300];
	snprintf(dir, sizeof(dir), "%s", h + 5);
	dir[strcspn(dir, " ")] = 0;
	snprintf(path, sizeof(path), "%s/data/postmaster.pid", dir);
	FILE *f = fopen(path, "r");
	long pid = 0;
	if (f) {
		if (fscanf(f, "%ld", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return (pid_t)pid;
}

int main(void)
{
	char state[] = "/tmp/porter-bench-db.XXXXXX";
	if (!mkdtemp(state)) {
		perror("mkdtemp");
		return 1;
	}
	char cmd[1024];
	const char *const start[] = {"sh", PORTER_SOURCE_DIR "/tests/support/pg.sh", "start", state,
				     NULL};
	setenv("PORTER_PG_LIMIT", "600", 1);
	int started = th_run(start, TH_ERR_KEEP, NULL, 0, NULL, 0, NULL);
	unsetenv("PORTER_PG_LIMIT");
	if (started != 0) {
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
	g_postmaster = find_postmaster();

	if (getenv("PORTER_BENCH_MS") && atoi(getenv("PORTER_BENCH_MS")) > 0)
		RUN_MS = atoi(getenv("PORTER_BENCH_MS"));
	if (getenv("PORTER_BENCH_ROUNDS") && atoi(getenv("PORTER_BENCH_ROUNDS")) > 0)
		ROUNDS = atoi(getenv("PORTER_BENCH_ROUNDS"));
	if (ROUNDS > MAX_ROUNDS)
		ROUNDS = MAX_ROUNDS;
	th_daemon d;
	const char *args[] = {NULL};
	const char *blocking_args[] = {"--busy-poll", "0", NULL};
	int rc = 0;
	if (th_daemon_start(&d, args) != 0) {
		fprintf(stderr, "bench_db: porterd did not start\n");
		rc = 1;
		goto out;
	}
	g_porterd = d.pid;
	printf("SELECT 1: porterd (pooled) vs direct libpq (PQexec, one connection per thread).\n"
	       "Each row is the median of %d rounds of %d ms; the paths take turns within a\n"
	       "round, and each ratio is the median of the rounds' own ratios, so a machine\n"
	       "that speeds up or slows down between rounds moves both sides alike.\n",
	       ROUNDS, RUN_MS);
	printf("ping is porter_ping at the same thread count; floor is direct + ping of each round\n"
	       "(latencies and CPU added, rates combined as 1/(1/direct + 1/ping)).\n");
	printf("porter0 is porterd with --busy-poll 0. CPU columns: microseconds of CPU per query\n"
	       "spent by the clients, porterd and PostgreSQL (postmaster and backends).\n");
	int seed = seed_built();
	if (seed)
		printf("seed is the seed's pattern (tests/bench/seed: a thread-local current-thread\n"
		       "Tokio runtime and tokio-postgres client per thread, block_on per query).\n");
	else
		printf("seed: not built (needs cargo, librust-tokio-dev and librust-tokio-postgres-dev;\n"
		       "`make bench` builds it when cargo is installed).\n");
	printf("%-8s %-8s %10s %9s %9s %8s %8s %8s %8s\n", "threads", "path", "rate/s", "p50 us",
	       "p99 us", "cpu cli", "cpu pd", "cpu pg", "cpu all");
	int counts[] = {1, 8, 32};
	size_t ncounts = 3;
	const char *only = getenv("PORTER_BENCH_ONLY");
	const char *nth = getenv("PORTER_BENCH_THREADS");
	if (nth && atoi(nth) > 0) {
		counts[0] = atoi(nth);
		ncounts = 1;
	}
	for (size_t i = 0; i < ncounts; i++) {
		int n = counts[i];
		figures direct[MAX_ROUNDS] = {{0}}, porter[MAX_ROUNDS] = {{0}},
			blocking[MAX_ROUNDS] = {{0}}, ping[MAX_ROUNDS] = {{0}},
			floor[MAX_ROUNDS] = {{0}}, seeded[MAX_ROUNDS] = {{0}};
		for (int k = 0; k < ROUNDS; k++) {
			if (!only || !strcmp(only, "direct")) {
				g_porterd = 0; /* idle meanwhile; not counted */
				direct[k] = measure(0, n);
				g_porterd = d.pid;
			}
			if (!only || !strcmp(only, "porter"))
				porter[k] = measure(1, n);
			if (!only) {
				ping[k] = measure(2, n);
				floor[k] = floor_of(&direct[k], &ping[k]);
			}
			if (seed && !only) {
				g_porterd = 0; /* idle meanwhile; not counted */
				seeded[k] = measure_seed(n);
				g_porterd = d.pid;
			}
			/* The same daemon without busy polling, for comparison. */
			if (!only && th_daemon_stop(&d) == 0 &&
			    th_daemon_restart(&d, blocking_args) == 0) {
				g_porterd = d.pid;
				blocking[k] = measure(1, n);
				th_daemon_stop(&d);
				if (th_daemon_restart(&d, args) != 0) {
					fprintf(stderr, "bench_db: porterd did not restart\n");
					rc = 1;
					goto out;
				}
				g_porterd = d.pid;
			}
		}
		figures md = median_figures(direct), mp = median_figures(porter),
			mb = median_figures(blocking);
		print_row(n, "direct", &md);
		print_row(n, "porter", &mp);
		if (only)
			continue;
		print_row(n, "porter0", &mb);
		figures mping = median_figures(ping), mfloor = median_figures(floor);
		print_row(n, "ping", &mping);
		print_row(n, "floor", &mfloor);
		if (seed) {
			figures ms = median_figures(seeded);
			print_row(n, "seed", &ms);
		}
		double lo, hi;
		double tp = median_ratio(porter, direct, RATE, &lo, &hi);
		printf("%-8d ratios porter/direct: p50 %.2f, throughput %.2f (rounds %.2f-%.2f), "
		       "cpu per query %.2f\n",
		       n, median_ratio(porter, direct, P50, NULL, NULL), tp, lo, hi,
		       median_ratio(porter, direct, CPU, NULL, NULL));
		printf("%-8d ratios porter/floor: p50 %.2f, throughput %.2f\n", n,
		       median_ratio(porter, floor, P50, NULL, NULL),
		       median_ratio(porter, floor, RATE, NULL, NULL));
		if (seed) {
			tp = median_ratio(porter, seeded, RATE, &lo, &hi);
			printf("%-8d ratios porter/seed: p50 %.2f, throughput %.2f (rounds %.2f-%.2f; "
			       "target >= 2)\n",
			       n, median_ratio(porter, seeded, P50, NULL, NULL), tp, lo, hi);
		}
		tp = median_ratio(blocking, direct, RATE, &lo, &hi);
		printf("%-8d ratios porter0/direct: p50 %.2f, throughput %.2f (rounds %.2f-%.2f)\n",
		       n, median_ratio(blocking, direct, P50, NULL, NULL), tp, lo, hi);
	}
	th_daemon_stop(&d);
	th_daemon_cleanup(&d);
out:
	const char *const stop[] = {"sh", PORTER_SOURCE_DIR "/tests/support/pg.sh", "stop", state,
				    NULL};
	th_run(stop, TH_ERR_KEEP, NULL, 0, NULL, 0, NULL);
	if (rmdir(state) != 0)
		rc = 1;
	return rc;
}
