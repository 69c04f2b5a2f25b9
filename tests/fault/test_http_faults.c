/*
 * Faults: the HTTP peer vanishes mid-transfer. The loopback HTTP server is
 * SIGKILLed while client threads have streamed downloads, whole GETs and
 * POSTs in flight through porterd, then a new one starts.
 *
 * Every call returns within its timeout plus a slack with an HTTP error
 * (never a hang, never a success carrying a truncated or wrong body: every
 * byte that succeeds is checked); every thread is served by the new server
 * without doing anything special; afterwards porterd holds no transfer and
 * no more descriptors than before.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "httpd.h"
#include "porter.h"

#define THREADS 9
#define KILLS 2
#define CALL_TIMEOUT_MS 3000
#define HANG_SLACK_MS 1500
#define RECOVER_MS 15000
#define STREAM_BYTES (16u << 20)
#define GET_BYTES 200000
#define MAX_CODE 64

typedef struct loader {
	pthread_t th;
	int index;
	atomic_llong calls, ok, hangs, wrong, bad_errors, longest_ms;
	atomic_llong mid_transfer;     /* failures after data had arrived */
	atomic_llong last_ok_start_ms; /* start of the latest success */
	atomic_llong by_code[MAX_CODE];
} loader;

static th_daemon d;
static th_httpd h;
static atomic_int stop;
static loader L[THREADS];
/* The current server's base URL; threads copy it under the lock. */
static pthread_mutex_t base_lock = PTHREAD_MUTEX_INITIALIZER;
static char base[64];

/* The server's body pattern: byte i of /bin/N is i % 251. */
static int pattern_ok(const unsigned char *p, size_t n, size_t off)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)((off + i) % 251))
			return 0;
	return 1;
}

static void url(char *out, size_t cap, const char *path)
{
	pthread_mutex_lock(&base_lock);
	snprintf(out, cap, "%s%s", base, path);
	pthread_mutex_unlock(&base_lock);
}

/* Counts a failure; those a vanished peer explains are expected. */
static void failed(loader *l, int rc, const char *what)
{
	int k = -rc;
	atomic_fetch_add(&l->by_code[k > 0 && k < MAX_CODE ? k : 0], 1);
	if (rc != PORTER_E_HTTP && rc != PORTER_E_HTTP_CONNECT && rc != PORTER_E_TIMEOUT) {
		atomic_fetch_add(&l->bad_errors, 1);
		fprintf(stderr, "unexpected %s failure: %s %s\n", what, porter_error_name(rc),
			porter_last_error_message());
	}
}

/* Counts a single call that outlived its timeout by more than the slack. */
static void timed(loader *l, long long t0)
{
	if (th_now_ms() - t0 > CALL_TIMEOUT_MS + HANG_SLACK_MS)
		atomic_fetch_add(&l->hangs, 1);
}

/* A streamed download read to its end, every byte checked; the open and
 * every read are each bounded by the timeout. */
static int do_stream(loader *l)
{
	char u[128];
	char path[32];
	snprintf(path, sizeof(path), "/bin/%u", STREAM_BYTES);
	url(u, sizeof(u), path);
	porter_http_options o = {.struct_size = sizeof(porter_http_options),
				 .chunk_size = 64 * 1024};
	porter_http_stream *s = NULL;
	long long t0 = th_now_ms();
	int rc = porter_http_stream_open("GET", u, NULL, 0, NULL, 0, &o, 0, CALL_TIMEOUT_MS, &s);
	timed(l, t0);
	if (rc < 0) {
		failed(l, rc, "stream open");
		return rc;
	}
	size_t off = 0;
	const void *p;
	size_t n;
	for (;;) {
		t0 = th_now_ms();
		rc = porter_http_stream_read(s, 0, CALL_TIMEOUT_MS, &p, &n);
		timed(l, t0);
		if (rc != 1)
			break;
		if (!pattern_ok(p, n, off))
			atomic_fetch_add(&l->wrong, 1);
		off += n;
		if (atomic_load(&stop))
			break;
	}
	if (rc < 0) {
		failed(l, rc, "stream read");
		if (off)
			atomic_fetch_add(&l->mid_transfer, 1);
	} else if (rc == 0 && off != STREAM_BYTES) {
		atomic_fetch_add(&l->wrong, 1); /* ended "cleanly" but short */
	}
	porter_http_stream_close(s, 1000);
	return rc < 0 ? rc : 0;
}

static int do_get(loader *l)
{
	char u[128];
	char path[32];
	snprintf(path, sizeof(path), "/bin/%d", GET_BYTES);
	url(u, sizeof(u), path);
	porter_http_response *r = NULL;
	int rc = porter_http_get(u, 0, CALL_TIMEOUT_MS, &r);
	if (rc < 0) {
		failed(l, rc, "GET");
		return rc;
	}
	size_t n = 0;
	const void *b = porter_http_response_body(r, &n);
	if (porter_http_response_status(r) != 200 || n != GET_BYTES || !pattern_ok(b, n, 0))
		atomic_fetch_add(&l->wrong, 1);
	porter_http_response_free(r);
	return 0;
}

static int do_post(loader *l, unsigned n)
{
	char u[128], body[8192];
	url(u, sizeof(u), "/echo");
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)(l->index * 7 + n + i);
	porter_http_response *r = NULL;
	int rc = porter_http_request("POST", u, NULL, 0, body, sizeof(body), NULL, 0,
				     CALL_TIMEOUT_MS, &r);
	if (rc < 0) {
		failed(l, rc, "POST");
		return rc;
	}
	size_t len = 0;
	const void *b = porter_http_response_body(r, &len);
	if (porter_http_response_status(r) != 200 || len != sizeof(body) || memcmp(b, body, len))
		atomic_fetch_add(&l->wrong, 1);
	porter_http_response_free(r);
	return 0;
}

static void *loader_main(void *arg)
{
	loader *l = arg;
	for (unsigned n = 0; !atomic_load(&stop); n++) {
		long long t0 = th_now_ms();
		int rc;
		switch (l->index % 3) {
		case 0:
			rc = do_stream(l);
			break;
		case 1:
			rc = do_get(l);
			break;
		default:
			rc = do_post(l, n);
		}
		long long took = th_now_ms() - t0;
		atomic_fetch_add(&l->calls, 1);
		if (took > atomic_load(&l->longest_ms))
			atomic_store(&l->longest_ms, took);
		/* A stream is many calls, each timed in do_stream. */
		if (l->index % 3 != 0 && took > CALL_TIMEOUT_MS + HANG_SLACK_MS)
			atomic_fetch_add(&l->hangs, 1);
		if (rc == 0) {
			atomic_fetch_add(&l->ok, 1);
			atomic_store(&l->last_ok_start_ms, t0);
		} else {
			usleep(20000);
		}
	}
	porter_thread_disconnect();
	return NULL;
}

static void set_base(void)
{
	pthread_mutex_lock(&base_lock);
	snprintf(base, sizeof(base), "%s", h.base);
	pthread_mutex_unlock(&base_lock);
}

static void daemon_holds(uint64_t *fds, uint64_t *transfers)
{
	porter_stats_snapshot *st = NULL;
	ck_assert_int_eq(porter_stats(0, 5000, &st), 0);
	*fds = porter_stats_open_fds(st);
	*transfers = porter_stats_http_transfers(st);
	porter_stats_free(st);
}

START_TEST(http_peer_killed_mid_transfer)
{
	const char *args[] = {"--workers", "2", NULL};
	th_start(&d, args);
	ck_assert_int_eq(th_httpd_start(&h), 0);
	set_base();
	uint64_t fds0, tr0;
	daemon_holds(&fds0, &tr0);

	memset(L, 0, sizeof(L));
	atomic_store(&stop, 0);
	for (int i = 0; i < THREADS; i++) {
		L[i].index = i;
		ck_assert_int_eq(pthread_create(&L[i].th, NULL, loader_main, &L[i]), 0);
	}
	long long recover_ms[KILLS] = {0};
	int recovered[KILLS] = {0};
	for (int k = 0; k < KILLS; k++) {
		usleep(1500 * 1000);
		/* The peer vanishes at once: no FIN from an orderly close of
		 * each transfer, just the kernel tearing its sockets down. */
		ck_assert_int_eq(kill(h.pid, SIGKILL), 0);
		int st;
		ck_assert_int_eq(waitpid(h.pid, &st, 0), h.pid);
		h.pid = 0;
		th_httpd_stop(&h); /* removes its directory */
		usleep(500 * 1000);
		ck_assert_int_eq(th_httpd_start(&h), 0);
		set_base();
		long long started = th_now_ms();
		recovered[k] =
			th_wait_stamps(TH_EACH(L, last_ok_start_ms), THREADS, started, RECOVER_MS);
		recover_ms[k] = th_now_ms() - started;
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < THREADS; i++)
		pthread_join(L[i].th, NULL);

	long long calls = 0, ok = 0, hangs = 0, wrong = 0, bad = 0, mid = 0, longest = 0;
	long long by_code[MAX_CODE] = {0};
	for (int i = 0; i < THREADS; i++) {
		calls += L[i].calls;
		ok += L[i].ok;
		hangs += L[i].hangs;
		wrong += L[i].wrong;
		bad += L[i].bad_errors;
		mid += L[i].mid_transfer;
		if (L[i].longest_ms > longest && i % 3 != 0)
			longest = L[i].longest_ms;
		for (int c = 0; c < MAX_CODE; c++)
			by_code[c] += L[i].by_code[c];
	}
	/* The daemon lets go of every transfer and of the dead peer's
	 * sockets (idle connections to the new server may stay cached, and
	 * the uid's connection cache on each of the 2 workers holds libcurl's
	 * wake-up socket pair until it has been idle for 30 s). */
	uint64_t fds1 = 0, tr1 = 1;
	long long t0 = th_now_ms();
	do {
		daemon_holds(&fds1, &tr1);
		if (tr1 == 0 && fds1 <= fds0 + THREADS + 2 * 2)
			break;
		usleep(100000);
	} while (th_now_ms() - t0 < 5000);
	fprintf(stderr,
		"HTTP peer killed x%d: %lld calls, %lld ok, %lld hung, %lld wrong, longest "
		"whole call %lld ms, %lld streams cut mid-body; recovered in",
		KILLS, calls, ok, hangs, wrong, longest, mid);
	for (int k = 0; k < KILLS; k++)
		fprintf(stderr, " %lld ms%s", recover_ms[k], recovered[k] ? "" : " (NOT)");
	fprintf(stderr, "; porterd fds %llu -> %llu, transfers %llu\n", (unsigned long long)fds0,
		(unsigned long long)fds1, (unsigned long long)tr1);
	th_print_failures(by_code, MAX_CODE);

	ck_assert_int_eq(hangs, 0);
	ck_assert_int_eq(wrong, 0);
	ck_assert_int_eq(bad, 0);
	ck_assert_int_gt(mid, 0);
	for (int k = 0; k < KILLS; k++)
		ck_assert_msg(recovered[k], "not every thread served within %d ms of restart %d",
			      RECOVER_MS, k + 1);
	ck_assert_uint_eq(tr1, 0);
	ck_assert_uint_le(fds1, fds0 + THREADS + 2 * 2);

	/* The worker is fine: a fresh request succeeds. */
	char u[128];
	url(u, sizeof(u), "/status/200");
	porter_http_response *r = NULL;
	ck_assert_int_eq(porter_http_get(u, 0, 5000, &r), 0);
	ck_assert_int_eq(porter_http_response_status(r), 200);
	porter_http_response_free(r);
	th_expect_idle();
	th_httpd_stop(&h);
	th_stop_clean(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {http_peer_killed_mid_transfer, NULL};
	return th_suite("http_faults", "http_faults", 120, tests);
}

TH_MAIN(suite)
