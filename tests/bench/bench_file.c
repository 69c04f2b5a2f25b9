/*
 * bench_file - files through porterd against what a program does without
 * it, in one run (issue 17, "Benchmarks"):
 *
 *   read    porter_file_read          vs open + read(2) + close
 *   write   porter_file_write         vs open(O_TRUNC) + write(2) + close
 *   atomic  porter_file_write ATOMIC  vs write a temp file + fsync + rename
 *                                        + fsync of the directory
 *
 * for 4 KiB and 16 MiB at 1 and 4 client threads (each thread its own
 * file), each porter figure twice: by descriptor (porterd passes the open
 * file, the default) and as bytes over the socket (a second porterd with
 * file-pass-fd=false: the path before descriptors), and 16 MiB reads also
 * through a reader (porter_file_reader_*, by descriptor: the pieces reuse
 * one buffer, where porter_file_read allocates the whole size, whose page
 * faults cost more than the read itself), and all reads also through
 * porter_file_read_into ("into"), which reads into the caller's buffer as
 * read(2) does. Buffers: direct and into read into the same buffer of
 * the file's size per thread, allocated and touched once at start and
 * reused, as a program reading with read(2) would (the very same memory
 * for both, so that neither gains from where its buffer happens to lie);
 * porter and bytes rows get a new buffer from
 * porter_file_read every call (the API gives no other), and so does
 * "dnew", a direct read into a fresh malloc of the file's size freed after
 * each call (what dart:io's readAsBytes does): the like-for-like baseline
 * of porter and bytes, printed next to the reused-buffer direct row, with
 * each row saying which baseline its ratios use; reader rows reuse
 * the reader's piece buffer. The ping round trip of
 * the same run gives the 4 KiB target its unit. Files are in the page cache
 * for reads; the atomic rows include the disk's fsync on both sides.
 *
 * A virtual machine's speed drifts from one second to the next, and a
 * 16 MiB row of a few dozen calls lasts some 30 ms, so each row used to
 * move by more than the margins between runs. Each size and thread count
 * now runs in rounds (PORTER_BENCH_ROUNDS, default 5) in which the paths
 * take turns, in an order that rotates from round to round; p50 and p99
 * are over every call of the row, MiB/s over all its calls, and the MiB/s
 * ratio is the median of the rounds' own ratios (with their range), so a
 * machine that speeds up or slows down moves both sides alike.
 *
 * 16 MiB reads run twice. "warm" as above: each path repeats the same
 * read into the same buffer, and what the previous call left of the
 * file's data and of the buffer in the CPU cache serves the next. A loop
 * of read(2) that never blocks keeps that; a call that waits between two
 * reads loses part of it (its CPU runs something else or idles
 * meanwhile, or the thread wakes on the other CPU), and so does every
 * porter call, which waits for porterd's reply. Measured on this 2-vCPU
 * VM (a loop pinned to one CPU under SCHED_FIFO, the cases alternating,
 * load 9-13): a 16 MiB read(2) right after the same read 801 us, after
 * reading 64 MiB of other memory 1233 us, after moving to the other CPU
 * 1273 us. Two more warm rows tell that part of porter's gap from the
 * trip itself: "dwait", a direct read timed after an untimed porter_ping
 * (the same read after a wait), and "pgap", a porter_ping timed after an
 * untimed 16 MiB direct read (a round trip to a porterd that idled for as
 * long as a client's copy, against the back-to-back ping of the header).
 * "cold" (rows 16MiBc) runs the paths again with 64 MiB of other memory
 * read, untimed, before every call of every path, so that none finds its
 * previous call in the cache: a program reading a file it did not just
 * read into the same buffer. At 4 threads a cold row's threads start each
 * call together (a barrier before and after it), so that no thread's
 * eviction runs during another's call: a call that blocks on porterd
 * would be charged that work, one that never blocks would not; so a
 * cold row's MiB/s are its bytes over the time its waves took (waves_ns),
 * not over the mean call time. The targets are printed for both; cold is
 * the like-for-like comparison.
 * PORTER_BENCH_PART=read|write|atomic runs one of the three tables.
 *
 * Prints p50, p99, MiB/s, the ratios to direct and the targets of issue
 * 17 (4 KiB read p50 <= direct + 1.3 ping; 16 MiB read and write
 * throughput >= 0.9x direct; atomic 16 MiB >= 0.9x direct write + fsync +
 * rename) with the load average at each row, since the machine may be
 * shared. Never fails on timing.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

enum path { DIRECT, BY_FD, BYTES, READER, POOL, INTO, DIRECT_NEW, DIRECT_WAIT, PING_GAP };
enum op { OP_READ, OP_WRITE, OP_ATOMIC };

static const char *const path_name[] = {"direct", "porter", "bytes", "reader", "pool",
					"into",   "dnew",   "dwait", "pgap"};
static const char *const op_name[] = {"read", "write", "atomic"};

static char root[64];
/* The daemons: by descriptor (BY_FD, READER), bytes (BYTES), and by
 * descriptor with file-loop-fast-path=false (POOL: every open through the
 * thread pool, to see what the fast path of issue 17.2 saves). */
static char sock[3][100];
static uint8_t *content; /* 16 MiB of data every write writes */

/* The buffers of direct and into reads: one per thread index, of the
 * largest size, touched once at start so that no row pays its faults. */
#define MAX_THREADS 4
static uint8_t *reuse_buf[MAX_THREADS];

/* Other memory read before every call of a cold row, per thread: more
 * than the host's last-level cache (touching 64 MiB made a 16 MiB read as
 * slow as moving it to the other CPU). Written once at start, so that its
 * reads do not all hit the one zero page. */
#define EVICT_BYTES (64u << 20)
static uint8_t *evict_buf[MAX_THREADS];
static volatile uint8_t evict_sink;

/* Rounds per row (PORTER_BENCH_ROUNDS); odd, so a median is one. */
#define MAX_ROUNDS 15
static int rounds = 5;

typedef struct job {
	pthread_t th;
	enum path path;
	enum op op;
	size_t size;
	int index; /* the thread's own file: f<size>-<index> */
	int cold;  /* empty the CPU cache before every call (untimed) */
	/* Cold rows: every thread of the row waits here before and after each
	 * timed call, so that no thread's eviction runs during another's
	 * call (a call that blocks on porterd would otherwise be charged the
	 * others' untimed work; one that never blocks would not). */
	pthread_barrier_t *wave;
	int iters;
	double *lat;   /* each timed call's time */
	double *start; /* and when it began (th_now_ns) */
	int failures;
} job;

static void name_of(const job *j, char *out, size_t cap)
{
	snprintf(out, cap, "f%zu-%d", j->size, j->index);
}

static void path_of(const job *j, char *out, size_t cap)
{
	char name[64];
	name_of(j, name, sizeof(name));
	snprintf(out, cap, "%s/%s", root, name);
}

static int direct_read(const char *p, size_t size, uint8_t *buf)
{
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

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* What a careful program does for a durable replace (PostgreSQL's
 * durable_rename): temp file, fsync, rename, fsync the directory. */
static int direct_write(const char *p, size_t size, int atomic)
{
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s.tmp", p);
	int fd = open(atomic ? tmp : p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	int rc = write_all(fd, content, size);
	if (atomic && rc == 0)
		rc = fsync(fd);
	close(fd);
	if (!atomic || rc)
		return rc;
	if (rename(tmp, p) < 0)
		return -1;
	int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = dfd < 0 ? -1 : fsync(dfd);
	if (dfd >= 0)
		close(dfd);
	return rc;
}

/* Reads thread `t`'s eviction buffer: every line, once. */
static void evict(int t)
{
	const volatile uint8_t *p = evict_buf[t];
	uint8_t sum = 0;
	for (size_t k = 0; k < EVICT_BYTES; k += 64)
		sum = (uint8_t)(sum + p[k]);
	evict_sink = sum;
}

/* What a call of `j` does before its timed part: empty the cache (cold
 * rows), wait for a ping (dwait), or copy the file (pgap). */
static void prepare(const job *j, uint8_t *buf)
{
	if (j->cold)
		evict(j->index);
	if (j->path == DIRECT_WAIT) {
		porter_ping("x", 1, 0, 5000);
	} else if (j->path == PING_GAP) {
		char p[160];
		path_of(j, p, sizeof(p));
		direct_read(p, j->size, buf);
	}
}

static int one(job *j, uint8_t *buf)
{
	char name[64], p[160];
	name_of(j, name, sizeof(name));
	path_of(j, p, sizeof(p));
	if (j->path == PING_GAP)
		return porter_ping("x", 1, 0, 5000) == 0 ? 0 : -1;
	if (j->path == DIRECT_WAIT)
		return direct_read(p, j->size, buf);
	if (j->path == DIRECT)
		return j->op == OP_READ ? direct_read(p, j->size, buf)
					: direct_write(p, j->size, j->op == OP_ATOMIC);
	if (j->path == DIRECT_NEW) {
		uint8_t *fresh = malloc(j->size);
		int rc = fresh ? direct_read(p, j->size, fresh) : -1;
		free(fresh);
		return rc;
	}
	if (j->path == READER) {
		/* The stream: pieces of the daemon's chunk size into one
		 * buffer the reader reuses, where porter_file_read gives the
		 * caller a new buffer of the whole size every time. */
		porter_file_reader *rd = NULL;
		int rc = porter_file_reader_open("bench", name, 0, 0, 0, 0, 60000, &rd);
		const void *p_;
		size_t n, got = 0;
		while (rc == 0 && (rc = porter_file_reader_read(rd, 0, 60000, &p_, &n)) == 1) {
			got += n;
			rc = 0;
		}
		porter_file_reader_close(rd, 1000);
		return rc == 0 && got == j->size ? 0 : -1;
	}
	if (j->path == INTO) {
		size_t n = 0;
		int rc = porter_file_read_into("bench", name, 0, buf, j->size, 0, 60000, &n);
		return rc == 0 && n == j->size ? 0 : -1;
	}
	if (j->op == OP_READ) {
		porter_bytes *b = NULL;
		int rc = porter_file_read("bench", name, 0, 0, 0, 60000, &b);
		if (rc == 0 && b->len != j->size)
			rc = -1;
		porter_bytes_free(b);
		return rc;
	}
	unsigned flags =
		j->op == OP_ATOMIC ? PORTER_FILE_ATOMIC : PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE;
	return porter_file_write("bench", name, content, j->size, flags, 0, 0, 60000);
}

static void *job_main(void *arg)
{
	job *j = arg;
	uint8_t *buf = j->op == OP_READ ? reuse_buf[j->index] : NULL;
	/* Two warm-up calls: a path that takes a fresh buffer each call
	 * (porter's bytes, dnew) faults the whole of its first two, 16 MiB
	 * each, as glibc maps the first and then raises its mmap threshold
	 * and serves the second from a new thread's arena heap (4,096 page
	 * faults each); from the third on it faults none. With one warm-up
	 * the first timed call of each new thread carried those faults,
	 * which the reused-buffer paths never pay. */
	for (int i = -2; i < j->iters; i++) {
		prepare(j, buf);
		if (j->wave)
			pthread_barrier_wait(j->wave);
		double t0 = th_now_ns();
		if (one(j, buf) != 0)
			j->failures++;
		if (i >= 0) {
			j->lat[i] = th_now_ns() - t0;
			j->start[i] = t0;
		}
		if (j->wave)
			pthread_barrier_wait(j->wave);
	}
	porter_thread_disconnect();
	return NULL;
}

/* One path's figures over every round of a row. */
typedef struct result {
	double p50, p99, mib_s;
	double round_mib[MAX_ROUNDS]; /* each round's own MiB/s */
	int failures;
	/* The calls' times, collected round by round (owned). */
	double *lat;
	size_t n;
	/* Cold rows: the waves' bytes and durations, over every round. */
	double wave_bytes, wave_ns;
} result;

/*
 * The time `threads` threads' calls of one cold row took as waves: each
 * wave from its first call's start to its last call's end, summed. The
 * threads of a cold row start each call together and wait for each
 * other's end (the barrier), so a thread done early waits for the
 * slowest: bytes over the mean call time would count it busy meanwhile.
 * And a thread the barrier woke but no CPU runs yet takes its start only
 * once it runs: a read(2), which never sleeps, then starts after the
 * reads that had the CPUs ended, and its wait is in no call's time, while
 * a porter call, which sleeps at once on its round trip, lets the others
 * start theirs and counts its own wait for a CPU. (In the baseline's idle
 * run, direct cold reads gave 2.55 times the MiB/s at 4 threads as at 1,
 * on two CPUs.) Of two schedules that end a wave at the same moment, the
 * mean also favours
 * the one in which some threads end early: four reads on two CPUs run
 * two at a time to their end (calls of C, C, 2C, 2C: a mean of 1.5C) or
 * share the CPUs to the end (2C each): the same bytes in the same time,
 * but a mean a third longer for the second, and which one the scheduler
 * picks depends on how the threads woke (from a barrier together, or
 * one by one as porterd's replies come), not on the path's cost. The
 * waves' duration is the time the bytes took.
 */
static double waves_ns(const job *jobs, int threads, int iters)
{
	double sum = 0;
	for (int i = 0; i < iters; i++) {
		double first = jobs[0].start[i], last = first + jobs[0].lat[i];
		for (int t = 1; t < threads; t++) {
			double s = jobs[t].start[i], e = s + jobs[t].lat[i];
			first = s < first ? s : first;
			last = e > last ? e : last;
		}
		sum += last - first;
	}
	return sum;
}

/* Runs `iters` calls on each of `threads` threads of `path` (one round)
 * and adds their times to `r`, round `round`'s MiB/s to r->round_mib. */
static void measure(result *r, int round, enum path path, enum op op, size_t size, int cold,
		    int threads, int iters)
{
	setenv("PORTER_SOCKET", sock[path == BYTES ? 1 : path == POOL ? 2 : 0], 1);
	job jobs[MAX_THREADS];
	pthread_barrier_t wave;
	if (cold)
		pthread_barrier_init(&wave, NULL, (unsigned)threads);
	size_t n = (size_t)threads * (size_t)iters;
	double *lat = realloc(r->lat, (r->n + n) * sizeof(double));
	if (!lat)
		abort();
	r->lat = lat;
	lat += r->n;
	double *start = calloc(n, sizeof(double));
	if (!start)
		abort();
	for (int t = 0; t < threads; t++) {
		jobs[t] = (job){.path = path,
				.op = op,
				.size = size,
				.index = t,
				.cold = cold,
				.wave = cold ? &wave : NULL,
				.iters = iters,
				.lat = lat + (size_t)t * (size_t)iters,
				.start = start + (size_t)t * (size_t)iters};
		pthread_create(&jobs[t].th, NULL, job_main, &jobs[t]);
	}
	for (int t = 0; t < threads; t++) {
		pthread_join(jobs[t].th, NULL);
		r->failures += jobs[t].failures;
	}
	/* Throughput from the calls' own times (warm-ups excluded): in a
	 * warm row every thread is busy for the whole run, so bytes over the
	 * mean call time, times the threads; a cold row's threads run in
	 * waves, so bytes over the waves' time (waves_ns). */
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += lat[i];
	double per_ns = (double)size * (double)threads / (sum / (double)n);
	if (cold) {
		pthread_barrier_destroy(&wave);
		double span = waves_ns(jobs, threads, iters);
		r->wave_bytes += (double)size * (double)n;
		r->wave_ns += span;
		per_ns = (double)size * (double)n / span;
	}
	r->round_mib[round] = per_ns * 1e9 / (1 << 20);
	r->n += n;
	free(start);
}

/* The row's p50, p99 and MiB/s over all its calls. */
static void finish(result *r, size_t size, int threads)
{
	double sum = 0;
	for (size_t i = 0; i < r->n; i++)
		sum += r->lat[i];
	qsort(r->lat, r->n, sizeof(double), th_cmp_double);
	r->p50 = r->lat[r->n / 2];
	r->p99 = r->lat[(r->n * 99) / 100];
	r->mib_s = r->wave_ns > 0 ? r->wave_bytes / r->wave_ns * 1e9 / (1 << 20)
				  : (double)size * (double)threads / (sum / (double)r->n) * 1e9 /
					    (1 << 20);
}

/* The median of the rounds' MiB/s ratios of `a` to `b`, with the
 * smallest and largest in *lo and *hi. */
static double median_ratio(const result *a, const result *b, double *lo, double *hi)
{
	double q[MAX_ROUNDS];
	for (int i = 0; i < rounds; i++)
		q[i] = a->round_mib[i] / b->round_mib[i];
	qsort(q, (size_t)rounds, sizeof(double), th_cmp_double);
	*lo = q[0];
	*hi = q[rounds - 1];
	return q[rounds / 2];
}

static void fmt_ns(double ns, char *out, size_t cap)
{
	if (ns >= 1e6)
		snprintf(out, cap, "%.2f ms", ns / 1e6);
	else
		snprintf(out, cap, "%.1f us", ns / 1e3);
}

static double loadavg(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static double ping_p50(int n)
{
	setenv("PORTER_SOCKET", sock[0], 1);
	double *lat = calloc((size_t)n, sizeof(double));
	for (int i = -500; i < n; i++) {
		double t0 = th_now_ns();
		porter_ping("x", 1, 0, 5000);
		if (i >= 0)
			lat[i] = th_now_ns() - t0;
	}
	qsort(lat, (size_t)n, sizeof(double), th_cmp_double);
	double p = lat[n / 2];
	free(lat);
	porter_thread_disconnect();
	return p;
}

/* Prints one row; its ratios are to `direct` (NULL: none), the row
 * named `base`: p50 over all calls, MiB/s the median of the rounds'. */
static void row(const char *size, int threads, enum path path, const result *r,
		const result *direct, const char *base, const char *note)
{
	char a[32], b[32];
	fmt_ns(r->p50, a, sizeof(a));
	fmt_ns(r->p99, b, sizeof(b));
	printf("%-6s %-7d %-7s %10s %10s %9.1f", size, threads, path_name[path], a, b, r->mib_s);
	if (direct) {
		double lo, hi, m = median_ratio(r, direct, &lo, &hi);
		printf("   x%-5.2f x%-5.2f %-6s (rounds %.2f-%.2f)", r->p50 / direct->p50, m, base,
		       lo, hi);
	} else {
		printf("   %-6s %-6s %-6s %20s", "", "", "", "");
	}
	printf("  load %.2f%s%s\n", loadavg(), note, r->failures ? "  (FAILURES)" : "");
}

/* The target for this row, met or not, as a note. */
static void target(enum op op, size_t size, int threads, const result *p, const result *direct,
		   double ping, char *out, size_t cap)
{
	out[0] = '\0';
	if (op == OP_READ && size == 4096 && threads == 1) {
		double bound = direct->p50 + 1.3 * ping;
		snprintf(out, cap, "  target p50 <= direct + 1.3 ping = %.1f us: %s", bound / 1e3,
			 p->p50 <= bound ? "met" : "MISSED");
	} else if (size > 4096) {
		double lo, hi;
		snprintf(out, cap, "  target >= 0.9x direct: %s",
			 median_ratio(p, direct, &lo, &hi) >= 0.9 ? "met" : "MISSED");
	}
}

/* Calls per thread and round of a row: some 10-200 ms of each path per
 * round (the byte path of 16 MiB, at ~70 ms a call, fewer). */
static int iters_of(enum path path, enum op op, size_t size, int threads)
{
	int total;
	if (size == 4096)
		total = op == OP_ATOMIC ? 200 : 4000;
	else if (op == OP_READ)
		total = path == BYTES ? 10 : 150;
	else
		total = op == OP_ATOMIC ? (path == BYTES ? 10 : 25) : (path == BYTES ? 10 : 40);
	int n = total / threads / rounds;
	return n < 1 ? 1 : n;
}

/*
 * Runs one row group: `op` of `size` at `threads` threads (`cold`: the
 * cache emptied before every call), its paths taking turns in every round
 * (each round starts one further along), and prints its rows. A read's
 * porter and bytes rows return a new buffer: their baseline is the direct
 * read into a new one (dnew).
 */
static void run_case(enum op op, size_t size, int cold, int threads, double ping)
{
	int rd = op == OP_READ, big = size > 4096;
	enum path paths[9];
	int np = 0;
	paths[np++] = DIRECT;
	if (rd)
		paths[np++] = DIRECT_NEW;
	paths[np++] = BY_FD;
	paths[np++] = BYTES;
	if (rd) {
		paths[np++] = INTO;
		paths[np++] = big ? READER : POOL;
	}
	if (rd && big && !cold) {
		paths[np++] = DIRECT_WAIT;
		paths[np++] = PING_GAP;
	}
	result res[9];
	memset(res, 0, sizeof(res));
	for (int k = 0; k < rounds; k++)
		for (int i = 0; i < np; i++) {
			int at = (i + k) % np;
			measure(&res[at], k, paths[at], op, size, cold, threads,
				iters_of(paths[at], op, size, threads));
		}
	for (int i = 0; i < np; i++)
		finish(&res[i], size, threads);
	const char *label = !big ? "4KiB" : cold ? "16MiBc" : "16MiB";
	const result *d = &res[0], *dn = rd ? &res[1] : d;
	const result *p = &res[rd ? 2 : 1], *b = &res[rd ? 3 : 2];
	const char *nb = rd ? "dnew" : "direct";
	char note[160];
	target(op, size, threads, p, dn, ping, note, sizeof(note));
	row(label, threads, DIRECT, d, NULL, "", "");
	if (rd)
		row(label, threads, DIRECT_NEW, dn, d, "direct",
		    "  (direct into a new buffer each call)");
	row(label, threads, BY_FD, p, dn, nb, note);
	if (rd)
		row(label, threads, BY_FD, p, d, "direct", "  (porter against a reused buffer)");
	row(label, threads, BYTES, b, dn, nb, "");
	if (rd) {
		const result *in = &res[4], *last = &res[5];
		target(op, size, threads, in, d, ping, note, sizeof(note));
		row(label, threads, INTO, in, d, "direct", note);
		if (!big) {
			row(label, threads, POOL, last, dn, nb, "  (no loop fast path)");
		} else {
			target(op, size, threads, last, d, ping, note, sizeof(note));
			row(label, threads, READER, last, d, "direct", note);
		}
	}
	if (np > 7) {
		row(label, threads, DIRECT_WAIT, &res[6], d, "direct",
		    "  (direct read after an untimed ping: the cache a wait costs)");
		char gap[32], bb[32];
		fmt_ns(res[7].p50, gap, sizeof(gap));
		fmt_ns(ping, bb, sizeof(bb));
		printf("%-6s %-7d %-7s %10s   (a ping right after an untimed 16 MiB copy; back to "
		       "back %s)  load %.2f\n",
		       label, threads, path_name[PING_GAP], gap, bb, loadavg());
	}
	for (int i = 0; i < np; i++)
		free(res[i].lat);
}

static int start_daemon(th_daemon *d, const char *pass, const char *fast, char *sock_out)
{
	char roots[128];
	snprintf(roots, sizeof(roots), "bench=%s", root);
	const char *args[] = {"--file-roots", roots, "--log-level", "warn", pass, fast, NULL};
	if (th_daemon_start(d, args) != 0) {
		fprintf(stderr, "bench_file: porterd (%s) did not start\n", pass);
		return -1;
	}
	snprintf(sock_out, sizeof(sock[0]), "%s", d->socket);
	return 0;
}

int main(void)
{
	th_daemon dfd, dbytes, dpool;
	strcpy(root, "/tmp/porter-bench-XXXXXX");
	if (!mkdtemp(root))
		return 1;
	if (start_daemon(&dfd, "--file-pass-fd=true", "--file-loop-fast-path=true", sock[0]) < 0 ||
	    start_daemon(&dbytes, "--file-pass-fd=false", "--file-loop-fast-path=true", sock[1]) <
		    0 ||
	    start_daemon(&dpool, "--file-pass-fd=true", "--file-loop-fast-path=false", sock[2]) < 0)
		return 1;
	const char *env = getenv("PORTER_BENCH_ROUNDS");
	if (env && atoi(env) > 0)
		rounds = atoi(env) > MAX_ROUNDS ? MAX_ROUNDS : atoi(env);
	for (int t = 0; t < MAX_THREADS; t++) {
		reuse_buf[t] = malloc(16u << 20);
		evict_buf[t] = malloc(EVICT_BYTES);
		if (!reuse_buf[t] || !evict_buf[t])
			return 1;
		memset(reuse_buf[t], 1, 16u << 20);
		memset(evict_buf[t], 2, EVICT_BYTES);
	}
	content = malloc(16u << 20);
	for (size_t k = 0; k < (16u << 20); k++)
		content[k] = (uint8_t)(k * 13);
	/* Every thread's files, written once so that the reads find them. */
	static const size_t sizes[] = {4096, 16u << 20};
	for (size_t s = 0; s < 2; s++)
		for (int t = 0; t < 4; t++) {
			job j = {.size = sizes[s], .index = t};
			char name[64], p[160];
			name_of(&j, name, sizeof(name));
			snprintf(p, sizeof(p), "%s/%s", root, name);
			if (direct_write(p, sizes[s], 0) != 0) {
				fprintf(stderr, "bench_file: cannot write %s\n", p);
				return 1;
			}
		}

	double ping = ping_p50(2000);
	char pb[32];
	fmt_ns(ping, pb, sizeof(pb));
	printf("files through porterd vs direct system calls, one run of %d rounds (the paths "
	       "take turns in each); porter = by descriptor (default), bytes = "
	       "file-pass-fd=false\n",
	       rounds);
	printf("p50 and p99 over every call of a row; the MiB/s ratio is the median of the "
	       "rounds' own ratios\n");
	printf("ping round trip p50 %s (load %.2f)\n", pb, loadavg());
	printf("%-6s %-7s %-7s %10s %10s %9s   %-6s %-6s %-6s\n", "size", "threads", "path", "p50",
	       "p99", "MiB/s", "p50", "MiB/s", "vs");
	static const int threads[] = {1, 4};
	const char *part = getenv("PORTER_BENCH_PART");
	for (int op = OP_READ; op <= OP_ATOMIC; op++) {
		if (part && *part && strcmp(part, op_name[op]) != 0)
			continue;
		printf("-- %s\n", op_name[op]);
		for (size_t s = 0; s < 2; s++)
			for (int cold = 0; cold <= (op == OP_READ && s == 1); cold++) {
				if (cold)
					printf("-- read, cold: 64 MiB of other memory read before "
					       "every call of every path (untimed)\n");
				for (size_t t = 0; t < 2; t++)
					run_case((enum op)op, sizes[s], cold, threads[t], ping);
			}
	}
	fmt_ns(ping_p50(2000), pb, sizeof(pb));
	printf("ping round trip p50 at the end %s (load %.2f)\n", pb, loadavg());
	free(content);
	for (int t = 0; t < MAX_THREADS; t++) {
		free(reuse_buf[t]);
		free(evict_buf[t]);
	}
	th_daemon_stop(&dfd);
	th_daemon_cleanup(&dfd);
	th_daemon_stop(&dbytes);
	th_daemon_cleanup(&dbytes);
	th_daemon_stop(&dpool);
	th_daemon_cleanup(&dpool);
	th_rm_rf(root);
	return 0;
}
