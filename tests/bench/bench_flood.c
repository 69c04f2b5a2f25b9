/*
 * bench_flood - issue 16's table: one uid (alice) floods one resource of
 * porterd at a time while another uid (bob) pings and queries. For each
 * resource it prints the limit porterd applies, what alice saw (calls
 * welcomed, refused with PORTER_E_BUSY and the first refusal's text,
 * anything else), bob's ping p99 idle and during the flood (plus his
 * failed calls), and porterd's RSS before, at its peak during the flood,
 * and 10 s after alice let go.
 *
 * One porterd for the whole run, as TH_UID_DAEMON with two workers and a
 * descriptor limit of 1024 (systemd's default soft limit), PostgreSQL and
 * the loopback HTTP server of tests/support; alice and bob are forked
 * children (tenant.h), so it needs root. A resource's "before" is what the
 * one before left. Prints figures; never fails on timing.
 *
 * porterd runs with --file-pass-fd false, so file readers are streams it
 * holds (the byte path); by default it passes each reader its descriptor
 * and holds nothing per reader, which leaves nothing to flood.
 *
 * Arguments, if any, pick the rows: those whose resource names contain one
 * of them (`bench_flood params cursors`).
 *
 * With PORTER_TEST_TURN_CPU_US=N in the environment (daemon/loopcpu.h),
 * porterd logs at info level and each row also prints the loop turns that
 * used more than N us of CPU while alice flooded and let go (the first
 * few, with what porterd logged just before each): what made bob wait,
 * whatever the machine's load.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_pg.h"
#include "harness.h"
#include "httpd.h"
#include "porter.h"
#include "rawc.h"
#include "tenant.h"

#define NOFILE 1024
/* Pings per measurement: a p99 of 200 was the second-worst sample, and
 * one stall more or less moved it tenfold; of 2,000 it is the 20th worst
 * (some 50-100 ms of pings). */
#define BOB_PINGS 2000
#define BOB_QUERIES 20
#define MAX_CONNS 1100

static th_daemon d;
static long idle_kib; /* porterd's RSS before the first row */
static int turns_on;  /* PORTER_TEST_TURN_CPU_US is set: long turns are printed */
static th_httpd web;
static char ci_pw[512];   /* password login over TCP: what foreign uids may use */
static char big_url[128]; /* a 50 MB body, streamed */

/* What alice saw, in memory shared with her process. */
typedef struct flood {
	volatile int ready; /* the flood is in place: bob measures now */
	volatile int done;  /* bob has measured: let go */
	int ok, busy, other;
	char busy_text[160];
	char other_text[160];
	char note[120];     /* what else alice saw */
	int opened;         /* alice's threads done opening (atomic) */
	int held_max;       /* most of alice's streams porterd held (under mu) */
	long long t0;       /* when they began, ms */
	pthread_mutex_t mu; /* alice's threads tally under it (PTHREAD_PROCESS_SHARED) */
} flood;

static void tally(flood *f, int rc, const char *text)
{
	pthread_mutex_lock(&f->mu);
	if (rc == 0) {
		f->ok++;
	} else if (rc == PORTER_E_BUSY) {
		if (!f->busy++)
			snprintf(f->busy_text, sizeof(f->busy_text), "%s", text ? text : "");
	} else if (!f->other++) {
		snprintf(f->other_text, sizeof(f->other_text), "%s: %s", porter_strerror(rc),
			 text ? text : "");
	}
	pthread_mutex_unlock(&f->mu);
}

/* tally for a libporter call: the message is the thread's last error. */
static void tally_call(flood *f, int rc)
{
	tally(f, rc, rc ? porter_last_error_message() : NULL);
}

/* tally for a raw response (NULL: no reply at all). */
static void tally_resp(flood *f, const Porter__V1__Response *resp)
{
	if (!resp)
		tally(f, PORTER_E_CONN_LOST, "no reply (connection closed or timed out)");
	else
		tally(f, resp->status, resp->message);
}

/* A connection of alice's past its Hello, its answer tallied (welcomed or
 * refused); -1 when refused. */
static int greeted(flood *f, frame_reader *rd)
{
	Porter__V1__Response *hello = NULL;
	int fd = th_rc_open(d.socket, rd, 5000, &hello);
	tally_resp(f, hello);
	if (hello)
		porter__v1__response__free_unpacked(hello, NULL);
	return fd;
}

/* ---- floods: each runs as alice, sets ready, waits for done, lets go ---- */

static int flood_connections(void *arg)
{
	flood *f = arg;
	static int fds[MAX_CONNS];
	static frame_reader rd[MAX_CONNS];
	for (int i = 0; i < MAX_CONNS; i++) {
		fds[i] = th_rc_connect(d.socket);
		frame_reader_init(&rd[i], 1 << 16);
		if (fds[i] >= 0)
			th_rc_hello(fds[i]);
	}
	long long until = th_now_ms() + 30000;
	for (int i = 0; i < MAX_CONNS; i++) {
		long long left = until - th_now_ms();
		Porter__V1__Response *resp =
			fds[i] < 0 ? NULL : th_rc_recv(fds[i], &rd[i], left > 0 ? (int)left : 0);
		tally_resp(f, resp);
		if (resp)
			porter__v1__response__free_unpacked(resp, NULL);
	}
	f->ready = 1;
	th_wait_flag(&f->done, 300000);
	for (int i = 0; i < MAX_CONNS; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		frame_reader_free(&rd[i]);
	}
	return 0;
}

static int flood_sessions(void *arg)
{
	flood *f = arg;
	static uint64_t s[110];
	for (int i = 0; i < 110; i++)
		tally_call(f, porter_db_open(ci_pw, 0, 10000, &s[i]));
	f->ready = 1;
	th_wait_flag(&f->done, 300000);
	for (int i = 0; i < 110; i++)
		if (s[i])
			porter_db_close(s[i], 0, 5000);
	return 0;
}

/* 16 threads keep the pool busy with half-second queries. */
static void *pool_thread(void *arg)
{
	flood *f = arg;
	while (!f->done) {
		porter_db_result *res = NULL;
		int rc = porter_db_query(0, ci_pw, "SELECT pg_sleep(0.5)", NULL, 0, 0, 10000, &res);
		tally(f, rc, res ? porter_db_message(res) : porter_last_error_message());
		porter_db_result_free(res);
		if (rc != 0)
			usleep(50000);
	}
	return NULL;
}

/* Runs `fn(f)` on `n` threads of alice until bob has measured. */
static int on_threads(flood *f, int n, void *(*fn)(void *))
{
	pthread_t th[32];
	for (int i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, fn, f) != 0)
			return 1;
	usleep(1500 * 1000); /* every thread has a query in the pool */
	f->ready = 1;
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	return 0;
}

static int flood_pool(void *arg)
{
	return on_threads(arg, 16, pool_thread);
}

static int flood_cursors(void *arg)
{
	flood *f = arg;
	static porter_db_cursor *cur[16];
	for (int i = 0; i < 16; i++)
		tally_call(f, porter_db_cursor_open(0, ci_pw, "SELECT generate_series(1, 10000000)",
						    NULL, 0, 100, 0, 0, 10000, &cur[i]));
	f->ready = 1;
	th_wait_flag(&f->done, 300000);
	for (int i = 0; i < 16; i++)
		porter_db_cursor_free(cur[i]);
	return 0;
}

static int flood_http_streams(void *arg)
{
	flood *f = arg;
	static porter_http_stream *s[300];
	porter_http_options o = PORTER_HTTP_OPTIONS_INIT;
	o.chunk_size = 16384;
	for (int i = 0; i < 300; i++)
		tally_call(f, porter_http_stream_open("GET", big_url, NULL, 0, NULL, 0, &o, 0,
						      10000, &s[i]));
	f->ready = 1;
	th_wait_flag(&f->done, 300000);
	for (int i = 0; i < 300; i++)
		porter_http_stream_free(s[i]);
	return 0;
}

/* One of five connections (threads) opening 80 readers each. Each keeps
 * its readers until every thread has opened its own and bob has measured:
 * readers freed early (bob done first) gave their slots to the opens
 * still running, so "ok" passed the per-uid limit with no count wrong. */
static void *readers_thread(void *arg)
{
	flood *f = arg;
	porter_file_reader *rd[80] = {0};
	for (int i = 0; i < 80; i++) {
		tally_call(f, porter_file_reader_open("flood", "big", 0, 0, 0, 0, 10000, &rd[i]));
		/* What porterd holds for alice, now and then. */
		porter_uid_usage u = PORTER_UID_USAGE_INIT;
		if (i % 8 == 7 && th_own_usage(&u) == 0) {
			pthread_mutex_lock(&f->mu);
			if ((int)u.file_streams > f->held_max)
				f->held_max = (int)u.file_streams;
			pthread_mutex_unlock(&f->mu);
		}
	}
	/* The last one done says how many porterd holds for alice at once:
	 * opens that took longer than file-stream-idle (10 s) find the first
	 * readers reclaimed, so "ok" may pass the per-uid limit. */
	if (__atomic_add_fetch(&f->opened, 1, __ATOMIC_SEQ_CST) == 5) {
		porter_uid_usage u = PORTER_UID_USAGE_INIT;
		if (th_own_usage(&u) == 0)
			snprintf(f->note, sizeof(f->note),
				 "%llu file streams held once all were opened, after %.1f s (at "
				 "most %d seen)",
				 (unsigned long long)u.file_streams,
				 (double)(th_now_ms() - f->t0) / 1000.0, f->held_max);
	}
	th_wait_flag(&f->done, 300000);
	while (__atomic_load_n(&f->opened, __ATOMIC_SEQ_CST) < 5)
		usleep(10000);
	for (int i = 0; i < 80; i++)
		porter_file_reader_free(rd[i]);
	return NULL;
}

static int flood_file_streams(void *arg)
{
	flood *f = arg;
	size_t n = 8u << 20;
	char *data = calloc(1, n);
	if (!data ||
	    porter_file_write("flood", "big", data, n, PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE, 0,
			      0, 30000) != 0) {
		tally_call(f, porter_last_error());
		f->ready = 1;
		free(data);
		return 1;
	}
	free(data);
	f->t0 = th_now_ms();
	return on_threads(f, 5, readers_thread);
}

/* Sends one hand-built frame on a fresh connection and tallies the reply. */
static void send_params(flood *f, const uint8_t *frame, size_t len)
{
	frame_reader rd;
	frame_reader_init(&rd, 1 << 20);
	Porter__V1__Response *resp = NULL;
	int fd = th_rc_open(d.socket, &rd, 5000, NULL);
	if (fd >= 0) {
		struct timeval tv = {5, 0};
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		size_t off = 0;
		ssize_t n = 0;
		while (off < len && (n = send(fd, frame + off, len - off, MSG_NOSIGNAL)) > 0)
			off += (size_t)n;
		resp = th_rc_recv(fd, &rd, 10000);
		close(fd);
	}
	tally_resp(f, resp);
	if (resp)
		porter__v1__response__free_unpacked(resp, NULL);
	frame_reader_free(&rd);
}

/* 65,536 parameters (one past PostgreSQL's limit), and a 16 MiB frame of
 * about 8.4 million empty ones, again and again until bob has measured. */
static int flood_params(void *arg)
{
	flood *f = arg;
	size_t l1, l2;
	uint8_t *over = th_rc_params_frame(ci_pw, 7, 65536, &l1);
	uint8_t *huge = th_rc_params_frame(ci_pw, 8, ((16u << 20) - 400 - strlen(ci_pw)) / 2, &l2);
	if (!over || !huge)
		return 1;
	for (int round = 0; !f->done; round++) {
		send_params(f, over, l1);
		send_params(f, huge, l2);
		f->ready = 1;
	}
	free(over);
	free(huge);
	return 0;
}

/* 300 cancels of ids nobody uses, in rounds until bob has measured. */
static int flood_cancels(void *arg)
{
	flood *f = arg;
	uint64_t base = 0x7000000;
	do {
		for (int i = 0; i < 300; i++) {
			int rc = porter_cancel(base++, 5000);
			tally(f, rc == PORTER_E_NOT_FOUND ? 0 : rc, porter_last_error_message());
		}
		f->ready = 1;
	} while (!f->done);
	return 0;
}

/* 32 connections each asking for 24 echoes of 512 KiB, never reading. */
static int flood_never_read(void *arg)
{
	flood *f = arg;
	int fds[32];
	for (int i = 0; i < 32; i++) {
		frame_reader rd;
		frame_reader_init(&rd, 1 << 16);
		fds[i] = greeted(f, &rd);
		frame_reader_free(&rd);
		/* porterd stops reading a connection it dropped: that must not
		 * stall the flood. */
		struct timeval tv = {0, 200000};
		if (fds[i] >= 0)
			setsockopt(fds[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	int dropped = 0;
	for (int k = 0; k < 24; k++)
		for (int i = 0; i < 32; i++)
			if (fds[i] >= 0 &&
			    th_rc_ping(fds[i], 10 + (uint64_t)k, 512 * 1024, 0) < 0) {
				close(fds[i]);
				fds[i] = -1;
				dropped++;
			}
	snprintf(f->note, sizeof(f->note), "%d of 32 connections dropped by porterd", dropped);
	f->ready = 1;
	th_wait_flag(&f->done, 300000);
	for (int i = 0; i < 32; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return 0;
}

/* 10,000 connections opened, greeted and closed one after another. */
static int flood_churn(void *arg)
{
	flood *f = arg;
	f->ready = 1; /* bob measures while it runs */
	for (int i = 0; i < 10000; i++) {
		frame_reader rd;
		frame_reader_init(&rd, 1 << 16);
		int fd = greeted(f, &rd);
		frame_reader_free(&rd);
		if (fd >= 0)
			close(fd);
	}
	return 0;
}

typedef struct scenario {
	const char *name;
	const char *limit; /* what porterd applies, as configured here */
	int (*fn)(void *arg);
} scenario;

static const scenario scenarios[] = {
	{"1,100 connections (fd limit 1,024)",
	 "uid-max-connections = half the fd limit (512); spare fd answers 'at capacity'",
	 flood_connections},
	{"110 DB sessions", "db-max-connections-per-uid 32 (sessions + pooled)", flood_sessions},
	{"16 threads on the pool", "pool 8/worker; the uid's pooled connections count in its 32",
	 flood_pool},
	{"16 cursors left unread", "per-uid 32 connections; db-stream-idle 30 s reclaims",
	 flood_cursors},
	{"300 HTTP streams unread", "http-max-streams-per-uid 64; http-stream-idle 10 s",
	 flood_http_streams},
	{"5 x 80 file readers open (byte path)",
	 "file-max-streams 64 per connection, file-max-streams-per-uid 256", flood_file_streams},
	{"65,536 params; 16 MiB of empty params", "65,535 params, counted before unpacking",
	 flood_params},
	{"300 cancels of unknown ids (rounds)", "tombstones: 1,024 per uid and worker, 30 s",
	 flood_cancels},
	{"32 clients never reading (24 x 512 KiB)",
	 "uid-max-buffered 256 MiB; output soft/hard 256 MiB/1 GiB", flood_never_read},
	{"10,000-connection churn", "none needed: all freed at close", flood_churn},
};
#define N_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

/* ---- bob, the bystander ---- */

typedef struct bob_result {
	int failed;
	char first_error[120];
	double ms[BOB_PINGS];
} bob_result;

static void bob_failed(bob_result *b, const char *what, int rc)
{
	if (!b->failed++)
		snprintf(b->first_error, sizeof(b->first_error), "%s: %s (%s)", what,
			 porter_strerror(rc), porter_last_error_message());
}

static int bob_main(void *arg)
{
	bob_result *b = arg;
	for (int i = 0; i < BOB_PINGS; i++) {
		double t0 = th_now_ns();
		int rc = porter_ping("bob", 3, 0, 5000);
		b->ms[i] = (th_now_ns() - t0) / 1e6;
		if (rc != 0)
			bob_failed(b, "ping", rc);
	}
	for (int i = 0; i < BOB_QUERIES; i++) {
		porter_db_result *res = NULL;
		int rc = porter_db_query(0, ci_pw, "SELECT 1", NULL, 0, 0, 5000, &res);
		if (rc != 0)
			bob_failed(b, "query", rc);
		porter_db_result_free(res);
	}
	return 0;
}

/* Runs bob; his ping p99 in ms (-1 when he could not run). */
static double bob_run(bob_result *b)
{
	if (th_as(TH_UID_BOB, TH_GID_PORTER, 120000, bob_main, b) != 0)
		return -1;
	qsort(b->ms, BOB_PINGS, sizeof(double), th_cmp_double);
	return b->ms[BOB_PINGS * 99 / 100];
}

/* ---- the parent: one row per resource ---- */

static atomic_int sampling;
static atomic_long peak_kib;

static void *sampler_main(void *arg)
{
	(void)arg;
	while (atomic_load(&sampling)) {
		long r = th_rss_kib(d.pid);
		if (r > atomic_load(&peak_kib))
			atomic_store(&peak_kib, r);
		usleep(10000);
	}
	return NULL;
}

typedef struct alice_run {
	const scenario *sc;
	flood *f;
	int rc;
} alice_run;

static void *alice_main(void *arg)
{
	alice_run *a = arg;
	a->rc = th_as(TH_UID_ALICE, TH_GID_PORTER, 600000, a->sc->fn, a->f);
	a->f->ready = 1; /* a flood that died still lets the row finish */
	return NULL;
}

typedef struct row {
	double idle_p99, flood_p99;
	int bob_failed;
	char bob_error[120];
	long rss0, peak, after;
	flood f;
	int alice_rc;
} row;

/* The size of porterd's log now: where a row's part of it starts. */
static long log_size(void)
{
	struct stat st;
	return stat(d.log, &st) == 0 ? (long)st.st_size : 0;
}

/* Prints the loop turns porterd logged as over the bound since `from`,
 * the first few with the line logged before each (what the loop was doing
 * then), and how many there were and the most CPU one used. */
static void print_turns(const char *name, long from)
{
	FILE *f = fopen(d.log, "r");
	if (!f)
		return;
	fseek(f, from, SEEK_SET);
	char line[512], before[512] = "";
	int n = 0;
	long max_us = 0;
	while (fgets(line, sizeof(line), f)) {
		const char *at = strstr(line, "a loop turn used ");
		if (!at) {
			snprintf(before, sizeof(before), "%s", line);
			continue;
		}
		long us = atol(at + strlen("a loop turn used "));
		max_us = us > max_us ? us : max_us;
		if (n++ < 8)
			fprintf(stderr, "    after: %s    %s", before, line);
		before[0] = 0;
	}
	fclose(f);
	fprintf(stderr, "bench_flood: %s: %d loop turns over %s us of CPU, the most %ld us\n", name,
		n, getenv("PORTER_TEST_TURN_CPU_US"), max_us);
}

static void run_one(const scenario *sc, row *out)
{
	bob_result *b = th_shared_alloc(sizeof(*b));
	flood *f = th_shared_alloc(sizeof(*f));
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(&f->mu, &ma);
	out->idle_p99 = bob_run(b);
	memset(b, 0, sizeof(*b));
	out->rss0 = th_rss_kib(d.pid);
	long log_from = log_size();
	atomic_store(&peak_kib, out->rss0);
	atomic_store(&sampling, 1);
	pthread_t sampler, alice;
	pthread_create(&sampler, NULL, sampler_main, NULL);
	alice_run a = {sc, f, 0};
	pthread_create(&alice, NULL, alice_main, &a);
	th_wait_flag(&f->ready, 300000);
	out->flood_p99 = bob_run(b);
	out->bob_failed = b->failed;
	snprintf(out->bob_error, sizeof(out->bob_error), "%s", b->first_error);
	f->done = 1;
	pthread_join(alice, NULL);
	atomic_store(&sampling, 0);
	pthread_join(sampler, NULL);
	out->peak = atomic_load(&peak_kib);
	if (turns_on)
		print_turns(sc->name, log_from);
	sleep(10);
	out->after = th_rss_kib(d.pid);
	out->f = *f;
	out->alice_rc = a.rc;
	fprintf(stderr,
		"bench_flood: %s: alice %d ok, %d busy, %d other; bob p99 %.2f -> %.2f ms, %d "
		"failed; RSS %ld/%ld/%ld KiB\n",
		sc->name, f->ok, f->busy, f->other, out->idle_p99, out->flood_p99, b->failed,
		out->rss0, out->peak, out->after);
}

static void print_loadavg(const char *when)
{
	char buf[128] = "?";
	FILE *fp = fopen("/proc/loadavg", "r");
	if (fp && fgets(buf, sizeof(buf), fp))
		buf[strcspn(buf, "\n")] = 0;
	if (fp)
		fclose(fp);
	printf("load average %s: %s\n", when, buf);
}

static void print_row(const scenario *sc, const row *r)
{
	char saw[700];
	int n = snprintf(saw, sizeof(saw), "%d ok, %d BUSY", r->f.ok, r->f.busy);
	if (r->f.busy)
		n += snprintf(saw + n, sizeof(saw) - (size_t)n, " (\"%s\")", r->f.busy_text);
	if (r->f.other)
		n += snprintf(saw + n, sizeof(saw) - (size_t)n, ", %d other errors (first: %s)",
			      r->f.other, r->f.other_text);
	if (r->f.note[0])
		n += snprintf(saw + n, sizeof(saw) - (size_t)n, "; %s", r->f.note);
	if (r->alice_rc != 0)
		snprintf(saw + n, sizeof(saw) - (size_t)n, ", alice's process returned %d",
			 r->alice_rc);
	printf("| %s | %s | %s | %.2f / %.2f ms (%.1fx)%s%s%s | %.1f / %.1f / %.1f MiB (%.1fx "
	       "idle) |\n",
	       sc->name, sc->limit, saw, r->idle_p99, r->flood_p99,
	       r->idle_p99 > 0 ? r->flood_p99 / r->idle_p99 : 0, r->bob_failed ? ", " : "",
	       r->bob_failed ? "bob failed: " : "", r->bob_failed ? r->bob_error : "",
	       (double)r->rss0 / 1024, (double)r->peak / 1024, (double)r->after / 1024,
	       idle_kib > 0 ? (double)r->after / (double)idle_kib : 0);
}

/* True when scenario `sc` is to run: every one without arguments, else
 * those whose name contains one of them. */
static int chosen(const scenario *sc, int argc, char **argv)
{
	if (argc < 2)
		return 1;
	for (int i = 1; i < argc; i++)
		if (strstr(sc->name, argv[i]))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	if (!th_tenant_available()) {
		fprintf(stderr, "bench_flood: needs root (porterd and its clients run as other "
				"uids); skipped\n");
		return 0;
	}
	char pg_state[] = "/tmp/porter-bench-flood-pg-XXXXXX";
	char files[] = "/tmp/porter-bench-flood-XXXXXX";
	char ci[512], port[16] = "", target[64], roots[128];
	int rc = 1;
	static row rows[N_SCENARIOS];
	if (!mkdtemp(pg_state) || !mkdtemp(files) || bench_pg_start(pg_state, ci, sizeof(ci)) ||
	    bench_pg_file(pg_state, "conninfo_pw", ci_pw, sizeof(ci_pw))) {
		fprintf(stderr, "bench_flood: PostgreSQL did not start\n");
		return 1;
	}
	const char *p = strstr(ci_pw, "port=");
	if (p)
		sscanf(p + 5, "%15[0-9]", port);
	snprintf(target, sizeof(target), "127.0.0.1:%s", port);
	/* The per-user root's parent belongs to porterd, which makes alice's
	 * private directory in it. */
	if (chown(files, TH_UID_DAEMON, TH_GID_PORTER) || chmod(files, 0755))
		goto out;
	snprintf(roots, sizeof(roots), "flood=%s/%%u", files);
	if (th_httpd_start(&web) != 0) {
		fprintf(stderr, "bench_flood: the HTTP server did not start\n");
		goto out;
	}
	snprintf(big_url, sizeof(big_url), "%s/bin/50000000", web.base);
	const char *turn_us = getenv("PORTER_TEST_TURN_CPU_US");
	turns_on = turn_us && *turn_us;
	const char *args[] = {"--allow-uid",
			      "61011,61012",
			      "--workers",
			      "2",
			      "--db-allow-targets",
			      target,
			      "--file-roots",
			      roots,
			      "--log-level",
			      turns_on ? "info" : "warn",
			      "--file-pass-fd=false",
			      "--http-allow-hosts",
			      "127.0.0.1:*",
			      NULL};
	th_tenant_daemon_nofile(NOFILE);
	int started = th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, args);
	th_tenant_daemon_nofile(0);
	if (started != 0)
		goto out_web;
	sleep(1);
	print_loadavg("before");
	idle_kib = th_rss_kib(d.pid);
	printf("porterd: 2 workers, RLIMIT_NOFILE %d, idle RSS %.1f MiB; bob: %d pings and %d "
	       "pooled SELECT 1 per measurement\n\n",
	       NOFILE, (double)idle_kib / 1024, BOB_PINGS, BOB_QUERIES);
	fflush(stdout);
	for (size_t i = 0; i < N_SCENARIOS; i++)
		if (chosen(&scenarios[i], argc, argv))
			run_one(&scenarios[i], &rows[i]);
	printf("| resource (alice floods) | limit | what alice saw | bob's ping p99 of %d, idle / "
	       "during (ratio) | porterd RSS before / peak / 10 s after (after / idle) |\n",
	       BOB_PINGS);
	printf("| --- | --- | --- | --- | --- |\n");
	for (size_t i = 0; i < N_SCENARIOS; i++)
		if (chosen(&scenarios[i], argc, argv))
			print_row(&scenarios[i], &rows[i]);
	printf("\n");
	print_loadavg("after");
	rc = th_daemon_stop(&d) == 0 ? 0 : 1;
	if (rc)
		th_daemon_dump_log(&d);
	th_daemon_cleanup(&d);
out_web:
	th_httpd_stop(&web);
out:
	bench_pg_stop(pg_state);
	if (th_rm_rf(files) != 0)
		rc = 1;
	return rc;
}
