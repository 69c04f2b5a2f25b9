/*
 * porter_soak - a bounded mixed load against a real porterd (`make soak`).
 *
 * SOAK_THREADS client threads (default 32) run for SOAK_SECONDS (default
 * 120, at most 840) picking operations from the table below in turn: pings,
 * delayed pings, batches, cancels of a slow call, and file write/read/
 * delete round trips. It prints requests sent, failures by code, calls
 * that hung, data mismatches, and porterd's RSS and open fd count after
 * warm-up and at the end, which should be flat. Exits 1 when a call failed
 * or hung, data came back wrong, the daemon died or did not stop cleanly,
 * or its fd count grew.
 *
 * Extension points: add a row to `ops` (a name and a function returning
 * 0 or a negative code, verifying what it got back) and, when it needs a
 * server (PostgreSQL, an HTTP peer), start it in main() beside the daemon.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

#define CALL_TIMEOUT_MS 5000
#define HANG_SLACK_MS 2000
#define MAX_CODE 64

typedef struct soak_thread {
	pthread_t th;
	int index;
	unsigned n; /* calls made by this thread */
} soak_thread;

/* One kind of operation: returns 0 or a negative code; a reply that came
 * back but is wrong is counted through `wrong`. */
typedef int (*soak_fn)(soak_thread *t);

static atomic_int stop;
static atomic_llong wrong, hangs, by_code[MAX_CODE];
static atomic_ullong cancel_target; /* id of the slow call to cancel */

static int op_ping(soak_thread *t)
{
	char p[32];
	int n = snprintf(p, sizeof(p), "ping-%d-%u", t->index, t->n);
	return porter_ping(p, (size_t)n, CALL_TIMEOUT_MS);
}

static int op_delayed_ping(soak_thread *t)
{
	char p[32];
	int n = snprintf(p, sizeof(p), "delay-%d-%u", t->index, t->n);
	return porter_ping_delay(p, (size_t)n, 1 + t->n % 20, CALL_TIMEOUT_MS);
}

static int op_batch(soak_thread *t)
{
	int mode = t->n % 2 ? PORTER_BATCH_FIRST : PORTER_BATCH_ALL;
	porter_batch *b = porter_batch_new(mode);
	char want[4][24];
	if (!b)
		return PORTER_E_NOMEM;
	for (int i = 0; i < 4; i++) {
		snprintf(want[i], sizeof(want[i]), "b-%d-%u-%d", t->index, t->n, i);
		porter_batch_add_ping(b, want[i], strlen(want[i]), (uint32_t)(i * 5), 0);
	}
	porter_batch_result *r = NULL;
	int rc = porter_batch_run(b, CALL_TIMEOUT_MS, &r);
	if (rc == 0) {
		int bad = porter_batch_result_count(r) != 4;
		for (size_t i = 0; !bad && i < 4; i++) {
			const void *data;
			size_t len;
			if (porter_batch_result_status(r, i) != 0)
				continue; /* FIRST: the others were stopped */
			bad = porter_batch_result_ping(r, i, &data, &len) != 0 ||
			      len != strlen(want[i]) || memcmp(data, want[i], len) != 0;
		}
		if (mode == PORTER_BATCH_ALL)
			for (size_t i = 0; !bad && i < 4; i++)
				bad = porter_batch_result_status(r, i) != 0;
		if (bad)
			atomic_fetch_add(&wrong, 1);
		porter_batch_result_free(r);
	}
	porter_batch_free(b);
	return rc;
}

/* Half of the time a slow call whose id is published, the other half a
 * cancel of whatever slow call was published last. */
static int op_cancel(soak_thread *t)
{
	if (t->n % 2 == 0) {
		atomic_store(&cancel_target, porter_next_call_id());
		int rc = porter_ping_delay("slow", 4, 200, CALL_TIMEOUT_MS);
		return rc == PORTER_E_CANCELLED ? 0 : rc;
	}
	uint64_t id = atomic_load(&cancel_target);
	if (!id)
		return 0;
	int rc = porter_cancel(id, CALL_TIMEOUT_MS);
	return rc == PORTER_E_NOT_FOUND ? 0 : rc;
}

static int op_file(soak_thread *t)
{
	char path[64], data[4096];
	snprintf(path, sizeof(path), "t%d-%u.bin", t->index, t->n % 4);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(t->index * 31 + t->n + i);
	int rc = porter_file_write("soak", path, data, sizeof(data),
				   PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE, 0, CALL_TIMEOUT_MS);
	if (rc < 0)
		return rc;
	porter_bytes *b = NULL;
	rc = porter_file_read("soak", path, 0, 0, &b, CALL_TIMEOUT_MS);
	if (rc < 0)
		return rc;
	if (b->len != sizeof(data) || memcmp(b->data, data, sizeof(data)))
		atomic_fetch_add(&wrong, 1);
	porter_bytes_free(b);
	return porter_file_delete("soak", path, 0, CALL_TIMEOUT_MS);
}

/* The mix. Extension point: database queries and HTTP requests go here
 * as rows of their own. */
static const struct {
	const char *name;
	soak_fn fn;
} ops[] = {
	{"ping", op_ping},   {"delayed ping", op_delayed_ping},
	{"batch", op_batch}, {"cancel", op_cancel},
	{"file", op_file},
};
#define N_OPS (sizeof(ops) / sizeof(ops[0]))
static atomic_llong op_calls[N_OPS], op_fail[N_OPS];

static void *soak_main(void *arg)
{
	soak_thread *t = arg;
	while (!atomic_load(&stop)) {
		size_t k = (size_t)(t->index + t->n) % N_OPS;
		long long t0 = th_now_ms();
		int rc = ops[k].fn(t);
		long long took = th_now_ms() - t0;
		atomic_fetch_add(&op_calls[k], 1);
		if (took > CALL_TIMEOUT_MS * 3 + HANG_SLACK_MS)
			atomic_fetch_add(&hangs, 1);
		if (rc < 0) {
			int c = -rc;
			atomic_fetch_add(&op_fail[k], 1);
			atomic_fetch_add(&by_code[c < MAX_CODE ? c : 0], 1);
		}
		t->n++;
	}
	porter_thread_disconnect();
	return NULL;
}

static long env_long(const char *name, long def, long lo, long hi)
{
	const char *s = getenv(name);
	long v = s && *s ? strtol(s, NULL, 10) : def;
	return v < lo ? lo : v > hi ? hi : v;
}

int main(void)
{
	long seconds = env_long("SOAK_SECONDS", 120, 5, 840);
	long nthreads = env_long("SOAK_THREADS", 32, 1, 1024);
	char root[64] = "/tmp/porter-soak-XXXXXX", roots[128];
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(roots, sizeof(roots), "soak=%s", root);
	const char *args[] = {"--file-roots", roots, NULL};
	th_daemon d;
	if (th_daemon_start(&d, args) != 0) {
		fprintf(stderr, "soak: porterd did not start\n");
		rmdir(root);
		return 1;
	}
	printf("soak: %ld threads for %ld s against porterd pid %d\n", nthreads, seconds,
	       (int)d.pid);
	fflush(stdout);

	soak_thread *th = calloc((size_t)nthreads, sizeof(*th));
	for (long i = 0; i < nthreads; i++) {
		th[i].index = (int)i;
		pthread_create(&th[i].th, NULL, soak_main, &th[i]);
	}
	/* Start figures after a warm-up: connections open, pools grown. */
	long warm = seconds / 10 < 10 ? seconds / 10 : 10;
	sleep((unsigned)warm);
	long rss0 = th_rss_kib(d.pid);
	int fds0 = th_fd_count(d.pid);
	long long t0 = th_now_ms();
	long long last = t0;
	while (th_now_ms() - t0 < (seconds - warm) * 1000LL) {
		sleep(1);
		if (th_now_ms() - last >= 30000) {
			last = th_now_ms();
			printf("soak: %lld s, porterd RSS %ld KiB, %d fds\n",
			       (last - t0) / 1000 + warm, th_rss_kib(d.pid), th_fd_count(d.pid));
			fflush(stdout);
		}
	}
	long rss1 = th_rss_kib(d.pid);
	int fds1 = th_fd_count(d.pid);
	atomic_store(&stop, 1);
	for (long i = 0; i < nthreads; i++)
		pthread_join(th[i].th, NULL);
	free(th);

	long long total = 0, failed = 0;
	for (size_t k = 0; k < N_OPS; k++) {
		printf("soak: %-13s %10lld calls, %lld failed\n", ops[k].name,
		       (long long)op_calls[k], (long long)op_fail[k]);
		total += op_calls[k];
		failed += op_fail[k];
	}
	printf("soak: %lld calls (%.0f/s), %lld failed, %lld hung, %lld wrong\n", total,
	       (double)total / (double)seconds, failed, (long long)hangs, (long long)wrong);
	for (int c = 0; c < MAX_CODE; c++)
		if (by_code[c])
			printf("soak:   failures %s: %lld\n", c ? porter_error_name(-c) : "(other)",
			       (long long)by_code[c]);
	printf("soak: porterd RSS %ld KiB -> %ld KiB, fds %d -> %d\n", rss0, rss1, fds0, fds1);

	int alive = d.pid > 0 && kill(d.pid, 0) == 0;
	int st = th_daemon_stop(&d);
	printf("soak: porterd %s, shutdown %s\n", alive ? "alive" : "DIED",
	       st == 0 ? "clean (exit 0)" : "NOT clean");
	if (st != 0)
		th_daemon_dump_log(&d);
	th_daemon_cleanup(&d);
	rmdir(root);

	int ok = alive && st == 0 && failed == 0 && hangs == 0 && wrong == 0 && fds1 <= fds0 + 8;
	printf("soak: %s\n", ok ? "OK" : "FAILED");
	return ok ? 0 : 1;
}
