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

enum path { DIRECT, BY_FD, BYTES, READER, POOL, INTO, DIRECT_NEW };
enum op { OP_READ, OP_WRITE, OP_ATOMIC };

static const char *const path_name[] = {"direct", "porter", "bytes", "reader",
					"pool",   "into",   "dnew"};
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

/* Rounds per row (PORTER_BENCH_ROUNDS); odd, so a median is one. */
#define MAX_ROUNDS 15
static int rounds = 5;

typedef struct job {
	pthread_t th;
	enum path path;
	enum op op;
	size_t size;
	int index; /* the thread's own file: f<size>-<index> */
	int iters;
	double *lat;
	int failures;
} job;

static void name_of(const job *j, char *out, size_t cap)
{
	snprintf(out, cap, "f%zu-%d", j->size, j->index);
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

static int one(job *j, uint8_t *buf)
{
	char name[64], p[160];
	name_of(j, name, sizeof(name));
	snprintf(p, sizeof(p), "%s/%s", root, name);
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
	for (int i = -1; i < j->iters; i++) { /* a warm-up call */
		double t0 = th_now_ns();
		if (one(j, buf) != 0)
			j->failures++;
		if (i >= 0)
			j->lat[i] = th_now_ns() - t0;
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
} result;

/* Runs `iters` calls on each of `threads` threads of `path` (one round)
 * and adds their times to `r`, round `round`'s MiB/s to r->round_mib. */
static void measure(result *r, int round, enum path path, enum op op, size_t size, int threads,
		    int iters)
{
	setenv("PORTER_SOCKET", sock[path == BYTES ? 1 : path == POOL ? 2 : 0], 1);
	job jobs[MAX_THREADS];
	size_t n = (size_t)threads * (size_t)iters;
	double *lat = realloc(r->lat, (r->n + n) * sizeof(double));
	if (!lat)
		abort();
	r->lat = lat;
	lat += r->n;
	for (int t = 0; t < threads; t++) {
		jobs[t] = (job){.path = path,
				.op = op,
				.size = size,
				.index = t,
				.iters = iters,
				.lat = lat + (size_t)t * (size_t)iters};
		pthread_create(&jobs[t].th, NULL, job_main, &jobs[t]);
	}
	for (int t = 0; t < threads; t++) {
		pthread_join(jobs[t].th, NULL);
		r->failures += jobs[t].failures;
	}
	/* Throughput from the calls' own times (warm-ups excluded): every
	 * thread is busy for the whole run, so bytes over the mean call time,
	 * times the threads. */
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += lat[i];
	r->round_mib[round] = (double)size * (double)threads / (sum / (double)n) * 1e9 / (1 << 20);
	r->n += n;
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
	r->mib_s = (double)size * (double)threads / (sum / (double)r->n) * 1e9 / (1 << 20);
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
		if (!reuse_buf[t])
			return 1;
		memset(reuse_buf[t], 1, 16u << 20);
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
	for (int op = OP_READ; op <= OP_ATOMIC; op++) {
		printf("-- %s\n", op_name[op]);
		for (size_t s = 0; s < 2; s++) {
			for (size_t t = 0; t < 2; t++) {
				int rd = op == OP_READ;
				/* The paths of this row, taking turns in every round
				 * (each round starts one further along). A read's
				 * porter and bytes rows return a new buffer: their
				 * baseline is the direct read into a new one (dnew). */
				enum path paths[7];
				int np = 0;
				paths[np++] = DIRECT;
				if (rd)
					paths[np++] = DIRECT_NEW;
				paths[np++] = BY_FD;
				paths[np++] = BYTES;
				if (rd)
					paths[np++] = INTO;
				if (rd)
					paths[np++] = s == 0 ? POOL : READER;
				result res[7];
				memset(res, 0, sizeof(res));
				for (int k = 0; k < rounds; k++)
					for (int i = 0; i < np; i++) {
						int at = (i + k) % np;
						measure(&res[at], k, paths[at], op, sizes[s],
							threads[t],
							iters_of(paths[at], op, sizes[s],
								 threads[t]));
					}
				for (int i = 0; i < np; i++)
					finish(&res[i], sizes[s], threads[t]);
				const char *label = s == 0 ? "4KiB" : "16MiB";
				const result *d = &res[0], *dn = rd ? &res[1] : d;
				const result *p = &res[rd ? 2 : 1], *b = &res[rd ? 3 : 2];
				const char *nb = rd ? "dnew" : "direct";
				char note[128];
				target(op, sizes[s], threads[t], p, dn, ping, note, sizeof(note));
				row(label, threads[t], DIRECT, d, NULL, "", "");
				if (rd)
					row(label, threads[t], DIRECT_NEW, dn, d, "direct",
					    "  (direct into a new buffer each call)");
				row(label, threads[t], BY_FD, p, dn, nb, note);
				if (rd)
					row(label, threads[t], BY_FD, p, d, "direct",
					    "  (porter against a reused buffer)");
				row(label, threads[t], BYTES, b, dn, nb, "");
				if (rd) {
					const result *in = &res[4], *last = &res[5];
					target(op, sizes[s], threads[t], in, d, ping, note,
					       sizeof(note));
					row(label, threads[t], INTO, in, d, "direct", note);
					if (s == 0) {
						row(label, threads[t], POOL, last, dn, nb,
						    "  (no loop fast path)");
					} else {
						target(op, sizes[s], threads[t], last, d, ping,
						       note, sizeof(note));
						row(label, threads[t], READER, last, d, "direct",
						    note);
					}
				}
				for (int i = 0; i < np; i++)
					free(res[i].lat);
			}
		}
	}
	fmt_ns(ping_p50(2000), pb, sizeof(pb));
	printf("ping round trip p50 at the end %s (load %.2f)\n", pb, loadavg());
	free(content);
	for (int t = 0; t < MAX_THREADS; t++)
		free(reuse_buf[t]);
	th_daemon_stop(&dfd);
	th_daemon_cleanup(&dfd);
	th_daemon_stop(&dbytes);
	th_daemon_cleanup(&dbytes);
	th_daemon_stop(&dpool);
	th_daemon_cleanup(&dpool);
	th_rm_rf(root);
	return 0;
}
