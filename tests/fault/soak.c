/*
 * porter_soak - a bounded mixed load against a real porterd (`make soak`).
 *
 * SOAK_THREADS client threads (default 32) run for SOAK_SECONDS (default
 * 120, at most 540: the HTTP server's lifetime is 600 s) picking operations
 * from the table below in turn: pings, delayed pings, batches, cancels of a
 * slow call, file write/read/delete round trips, PostgreSQL (pooled
 * queries, session transactions read back after COMMIT, streamed cursors)
 * and HTTP (small GETs, streamed large GETs, POSTs echoed back). The soak
 * starts its own throwaway PostgreSQL (tests/support/pg.sh, with a watchdog
 * past the soak's length) and loopback HTTP server, and stops both.
 *
 * It prints requests sent per kind and in all, failures by code, calls
 * that hung (a call outliving its timeout by more than a slack), data
 * checks (rows committed against rows read back, bytes checked against the
 * servers' known patterns), and porterd's RSS and open fd count after
 * warm-up, half way and at the end, which should be flat. Exits 1 when a
 * call failed or hung, data came back wrong or was lost, a server could
 * not start, the daemon died or did not stop cleanly, or its fd count grew.
 *
 * Extension points: add a row to `ops` (a name and a function returning
 * 0 or a negative code, verifying what it got back); servers it needs are
 * started in main() beside the daemon.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "httpd.h"
#include "porter.h"

#define CALL_TIMEOUT_MS 5000
#define HANG_SLACK_MS 2000
#define MAX_CODE 64

typedef struct soak_thread {
	pthread_t th;
	int index;
	unsigned n;       /* operations made by this thread */
	uint64_t session; /* its database session, 0 until opened */
	long long txn;    /* transactions it started */
} soak_thread;

/* One kind of operation: returns 0 or a negative code; a reply that came
 * back but is wrong is counted through `wrong`. */
typedef int (*soak_fn)(soak_thread *t);

static atomic_int stop;
static atomic_llong wrong, hangs, by_code[MAX_CODE];
static atomic_ullong cancel_target; /* id of the slow call to cancel */
/* Single blocking calls made by the db and http operations (each timed). */
static atomic_llong requests;
/* Data checks: rows committed and confirmed, bytes compared. */
static atomic_llong rows_committed, rows_confirmed, bytes_checked;
static char conninfo[512];
static char http_base[64];

/* Times one blocking call that started at `t0`: counts it, and counts a
 * hang when it outlived its timeout by more than the slack. */
static int timed(long long t0, int rc)
{
	atomic_fetch_add(&requests, 1);
	if (th_now_ms() - t0 > CALL_TIMEOUT_MS + HANG_SLACK_MS)
		atomic_fetch_add(&hangs, 1);
	return rc;
}

static int op_ping(soak_thread *t)
{
	char p[32];
	int n = snprintf(p, sizeof(p), "ping-%d-%u", t->index, t->n);
	return porter_ping(p, (size_t)n, 0, CALL_TIMEOUT_MS);
}

static int op_delayed_ping(soak_thread *t)
{
	char p[32];
	int n = snprintf(p, sizeof(p), "delay-%d-%u", t->index, t->n);
	return porter_ping_delay(p, (size_t)n, 1 + t->n % 20, 0, CALL_TIMEOUT_MS);
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
	int rc = porter_batch_run(b, 0, CALL_TIMEOUT_MS, &r);
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
		uint64_t id = porter_call_id_new();
		atomic_store(&cancel_target, id);
		int rc = porter_ping_delay("slow", 4, 200, id, CALL_TIMEOUT_MS);
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
	int rc =
		porter_file_write("soak", path, data, sizeof(data),
				  PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE, 0, 0, CALL_TIMEOUT_MS);
	if (rc < 0)
		return rc;
	porter_bytes *b = NULL;
	rc = porter_file_read("soak", path, 0, 0, 0, CALL_TIMEOUT_MS, &b);
	if (rc < 0)
		return rc;
	if (b->len != sizeof(data) || memcmp(b->data, data, sizeof(data)))
		atomic_fetch_add(&wrong, 1);
	porter_bytes_free(b);
	return porter_file_delete("soak", path, 0, 0, CALL_TIMEOUT_MS);
}

/* ---- PostgreSQL ---- */

/* A pooled query whose answer depends on its parameters. The text is
 * always the same, so pooled connections serve it from their prepared
 * statements. */
static int op_db_pool(soak_thread *t)
{
	char a[24], b[16];
	long v = (long)t->index * 100000 + t->n;
	int la = snprintf(a, sizeof(a), "%ld", v);
	int lb = snprintf(b, sizeof(b), "%u", t->n % 200);
	porter_db_param p[2] = {{a, (size_t)la, 0, 0}, {b, (size_t)lb, 0, 0}};
	porter_db_result *r = NULL;
	long long t0 = th_now_ms();
	int rc = timed(t0,
		       porter_db_query(0, conninfo, "SELECT $1::bigint + 1, repeat('p', $2::int)",
				       p, 2, 0, CALL_TIMEOUT_MS, &r));
	if (rc == 0 && (porter_db_ntuples(r) != 1 || atol(porter_db_getvalue(r, 0, 0)) != v + 1 ||
			porter_db_getlength(r, 0, 1) != (int)(t->n % 200)))
		atomic_fetch_add(&wrong, 1);
	porter_db_result_free(r);
	return rc;
}

static int session_call(soak_thread *t, const char *sql)
{
	porter_db_result *r = NULL;
	long long t0 = th_now_ms();
	int rc = timed(t0, porter_db_query(t->session, NULL, sql, NULL, 0, 0, CALL_TIMEOUT_MS, &r));
	porter_db_result_free(r);
	return rc;
}

/* A transaction on the thread's session (BEGIN, three INSERTs, COMMIT as
 * separate calls), then read back through the pool: committed rows must be
 * visible to everyone. */
#define TXN_ROWS 3
static int op_db_txn(soak_thread *t)
{
	char sql[160];
	int rc;
	if (!t->session) {
		long long t0 = th_now_ms();
		rc = timed(t0, porter_db_open(conninfo, 0, CALL_TIMEOUT_MS, &t->session));
		if (rc < 0)
			return rc;
	}
	long long id = (long long)t->index * 100000000LL + ++t->txn;
	rc = session_call(t, "BEGIN");
	for (int i = 0; rc == 0 && i < TXN_ROWS; i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO soak_txn VALUES (%lld, %d, 'row %d')", id,
			 i, i);
		rc = session_call(t, sql);
	}
	if (rc == 0)
		rc = session_call(t, "COMMIT");
	if (rc < 0) {
		/* Start over on a fresh session: this one's state is unknown. */
		porter_db_close(t->session, 0, CALL_TIMEOUT_MS);
		t->session = 0;
		return rc;
	}
	atomic_fetch_add(&rows_committed, TXN_ROWS);
	char idtext[24];
	int idlen = snprintf(idtext, sizeof(idtext), "%lld", id);
	porter_db_param p = {idtext, (size_t)idlen, 0, 0};
	porter_db_result *r = NULL;
	long long t0 = th_now_ms();
	rc = timed(t0, porter_db_query(0, conninfo,
				       "SELECT count(*) FROM soak_txn WHERE txn = $1::bigint", &p,
				       1, 0, CALL_TIMEOUT_MS, &r));
	if (rc == 0) {
		long n = porter_db_ntuples(r) == 1 ? atol(porter_db_getvalue(r, 0, 0)) : -1;
		if (n == TXN_ROWS)
			atomic_fetch_add(&rows_confirmed, TXN_ROWS);
		else
			atomic_fetch_add(&wrong, 1);
	}
	porter_db_result_free(r);
	return rc;
}

/* A streamed result pulled in chunks, every row checked. */
#define STREAM_ROWS 20000
static int op_db_stream(soak_thread *t)
{
	(void)t;
	porter_db_cursor *cur = NULL;
	long long t0 = th_now_ms();
	int rc = timed(t0, porter_db_cursor_open(0, conninfo,
						 "SELECT g, md5(g::text) FROM generate_series(1, "
						 "20000) g",
						 NULL, 0, 1000, 0, 0, CALL_TIMEOUT_MS, &cur));
	if (rc < 0)
		return rc;
	long long next = 1, bytes = 0;
	porter_db_result *ch = NULL;
	for (;;) {
		t0 = th_now_ms();
		rc = timed(t0, porter_db_cursor_read(cur, 0, CALL_TIMEOUT_MS, &ch));
		if (rc != 1)
			break;
		for (int i = 0; i < porter_db_ntuples(ch); i++, next++) {
			if (atoll(porter_db_getvalue(ch, i, 0)) != next ||
			    porter_db_getlength(ch, i, 1) != 32)
				atomic_fetch_add(&wrong, 1);
			bytes += porter_db_getlength(ch, i, 0) + porter_db_getlength(ch, i, 1);
		}
		porter_db_result_free(ch);
		ch = NULL;
	}
	porter_db_result_free(ch);
	porter_db_cursor_close(cur, 1000);
	if (rc == 0) {
		if (next != STREAM_ROWS + 1)
			atomic_fetch_add(&wrong, 1);
		atomic_fetch_add(&bytes_checked, bytes);
	}
	return rc;
}

/* ---- HTTP ---- */

/* The HTTP server's /bin/N body: byte i is i % 251. */
static int pattern_ok(const unsigned char *p, size_t n, size_t off)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)((off + i) % 251))
			return 0;
	return 1;
}

static int op_http_get(soak_thread *t)
{
	char url[128];
	size_t want = 1000 + (t->n % 8) * 1000;
	snprintf(url, sizeof(url), "%s/bin/%zu", http_base, want);
	porter_http_response *r = NULL;
	long long t0 = th_now_ms();
	int rc = timed(t0, porter_http_get(url, 0, CALL_TIMEOUT_MS, &r));
	if (rc < 0)
		return rc;
	size_t n = 0;
	const void *b = porter_http_response_body(r, &n);
	if (porter_http_response_status(r) != 200 || n != want || !pattern_ok(b, n, 0))
		atomic_fetch_add(&wrong, 1);
	else
		atomic_fetch_add(&bytes_checked, (long long)n);
	porter_http_response_free(r);
	return 0;
}

#define HTTP_STREAM_BYTES (2u << 20)
static int op_http_stream(soak_thread *t)
{
	(void)t;
	char url[128];
	snprintf(url, sizeof(url), "%s/bin/%u", http_base, HTTP_STREAM_BYTES);
	porter_http_options o = {.struct_size = sizeof(porter_http_options),
				 .chunk_size = 128 * 1024};
	porter_http_stream *s = NULL;
	long long t0 = th_now_ms();
	int rc = timed(t0, porter_http_stream_open("GET", url, NULL, 0, NULL, 0, &o, 0,
						   CALL_TIMEOUT_MS, &s));
	if (rc < 0)
		return rc;
	size_t off = 0;
	const void *p;
	size_t n;
	int bad = porter_http_response_status(porter_http_stream_response(s)) != 200;
	for (;;) {
		t0 = th_now_ms();
		rc = timed(t0, porter_http_stream_read(s, 0, CALL_TIMEOUT_MS, &p, &n));
		if (rc != 1)
			break;
		if (!pattern_ok(p, n, off))
			bad = 1;
		off += n;
	}
	porter_http_stream_close(s, 1000);
	if (rc == 0 && (bad || off != HTTP_STREAM_BYTES))
		atomic_fetch_add(&wrong, 1);
	else if (rc == 0)
		atomic_fetch_add(&bytes_checked, (long long)off);
	return rc;
}

static int op_http_post(soak_thread *t)
{
	char url[128], body[4096];
	snprintf(url, sizeof(url), "%s/echo", http_base);
	size_t len = 100 + (t->n * 37) % (sizeof(body) - 100);
	for (size_t i = 0; i < len; i++)
		body[i] = (char)(t->index * 13 + t->n + i);
	porter_http_response *r = NULL;
	long long t0 = th_now_ms();
	int rc = timed(t0, porter_http_request("POST", url, NULL, 0, body, len, NULL, 0,
					       CALL_TIMEOUT_MS, &r));
	if (rc < 0)
		return rc;
	size_t n = 0;
	const void *b = porter_http_response_body(r, &n);
	if (porter_http_response_status(r) != 200 || n != len || memcmp(b, body, n))
		atomic_fetch_add(&wrong, 1);
	else
		atomic_fetch_add(&bytes_checked, (long long)n);
	porter_http_response_free(r);
	return 0;
}

/* The mix. Extension point: new kinds go here as rows of their own. */
static const struct {
	const char *name;
	soak_fn fn;
} ops[] = {
	{"ping", op_ping},           {"delayed ping", op_delayed_ping},
	{"batch", op_batch},         {"cancel", op_cancel},
	{"file", op_file},           {"db pooled", op_db_pool},
	{"db txn", op_db_txn},       {"db stream", op_db_stream},
	{"http get", op_http_get},   {"http stream", op_http_stream},
	{"http post", op_http_post},
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
	if (t->session)
		porter_db_close(t->session, 0, CALL_TIMEOUT_MS);
	porter_thread_disconnect();
	return NULL;
}

static long env_long(const char *name, long def, long lo, long hi)
{
	const char *s = getenv(name);
	long v = s && *s ? strtol(s, NULL, 10) : def;
	return v < lo ? lo : v > hi ? hi : v;
}

/* Runs tests/support/pg.sh `cmd` on the soak's own server. */
static int pg_sh(const char *cmd, const char *state)
{
	const char *const argv[] = {"sh", PORTER_SOURCE_DIR "/tests/support/pg.sh", cmd, state,
				    NULL};
	return th_run(argv, TH_ERR_KEEP, NULL, 0, NULL, 0, NULL);
}

static int read_conninfo(const char *state)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/conninfo", state);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	int ok = fgets(conninfo, sizeof(conninfo), f) != NULL;
	fclose(f);
	conninfo[strcspn(conninfo, "\n")] = 0;
	return ok ? 0 : -1;
}

/* Runs `sql` on the pool; returns the first value as a number (0 when it
 * returns no row), or -1 when it failed. */
static long long db_scalar(const char *sql)
{
	porter_db_result *r = NULL;
	long long v = -1;
	if (porter_db_query(0, conninfo, sql, NULL, 0, 0, 10000, &r) == 0)
		v = porter_db_ntuples(r) == 1 ? atoll(porter_db_getvalue(r, 0, 0)) : 0;
	porter_db_result_free(r);
	return v;
}

int main(void)
{
	long seconds = env_long("SOAK_SECONDS", 120, 5, 540);
	long nthreads = env_long("SOAK_THREADS", 32, 1, 1024);
	char root[64] = "/tmp/porter-soak-XXXXXX", roots[128];
	char pg_state[64] = "/tmp/porter-soak-pg-XXXXXX";
	char limit[32];
	th_daemon d = {0};
	th_httpd h = {0};
	int pg_up = 0, ok = 0;
	if (!mkdtemp(root) || !mkdtemp(pg_state)) {
		perror("mkdtemp");
		return 1;
	}
	/* The server's watchdog stops it well after the soak would have. */
	snprintf(limit, sizeof(limit), "%ld", seconds + 300);
	setenv("PORTER_PG_LIMIT", limit, 1);
	if (pg_sh("start", pg_state) != 0 || read_conninfo(pg_state) != 0) {
		fprintf(stderr, "soak: PostgreSQL did not start\n");
		goto out;
	}
	pg_up = 1;
	if (th_httpd_start(&h) != 0) {
		fprintf(stderr, "soak: the HTTP server did not start\n");
		goto out;
	}
	snprintf(http_base, sizeof(http_base), "%s", h.base);
	snprintf(roots, sizeof(roots), "soak=%s", root);
	const char *args[] = {"--file-roots", roots, NULL};
	if (th_daemon_start(&d, args) != 0) {
		fprintf(stderr, "soak: porterd did not start\n");
		goto out;
	}
	if (db_scalar("CREATE TABLE soak_txn (txn bigint, seq int, note text, "
		      "PRIMARY KEY (txn, seq))") < 0) {
		fprintf(stderr, "soak: cannot create the table: %s\n", porter_last_error_message());
		goto out;
	}
	porter_thread_disconnect();
	printf("soak: %ld threads for %ld s against porterd pid %d, PostgreSQL and HTTP on "
	       "loopback\n",
	       nthreads, seconds, (int)d.pid);
	fflush(stdout);

	soak_thread *th = calloc((size_t)nthreads, sizeof(*th));
	for (long i = 0; i < nthreads; i++) {
		th[i].index = (int)i;
		pthread_create(&th[i].th, NULL, soak_main, &th[i]);
	}
	/* Start figures after a warm-up: connections open, sessions opened,
	 * pools grown (a third of a short run, at most 10 s). */
	long warm = seconds / 3 < 10 ? seconds / 3 : 10;
	sleep((unsigned)warm);
	long rss0 = th_rss_kib(d.pid), rss_mid = -1;
	int fds0 = th_fd_count(d.pid), fds_mid = -1;
	long long t0 = th_now_ms();
	long long last = t0;
	long long half = (seconds - warm) * 500LL;
	while (th_now_ms() - t0 < (seconds - warm) * 1000LL) {
		usleep(200 * 1000);
		if (rss_mid < 0 && th_now_ms() - t0 >= half) {
			rss_mid = th_rss_kib(d.pid);
			fds_mid = th_fd_count(d.pid);
		}
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

	/* Every row a COMMIT acknowledged is in the table, and nothing else. */
	long long rows_in_table = db_scalar("SELECT count(*) FROM soak_txn");
	long long lost = (long long)rows_committed - rows_in_table;
	porter_thread_disconnect();

	long long total = 0, failed = 0;
	for (size_t k = 0; k < N_OPS; k++) {
		printf("soak: %-13s %10lld ops, %lld failed\n", ops[k].name, (long long)op_calls[k],
		       (long long)op_fail[k]);
		total += op_calls[k];
		failed += op_fail[k];
	}
	printf("soak: %lld ops (%.0f/s), %lld db/http requests, %lld failed, %lld hung, %lld "
	       "wrong\n",
	       total, (double)total / (double)seconds, (long long)requests, failed,
	       (long long)hangs, (long long)wrong);
	for (int c = 0; c < MAX_CODE; c++)
		if (by_code[c])
			printf("soak:   failures %s: %lld\n", c ? porter_error_name(-c) : "(other)",
			       (long long)by_code[c]);
	printf("soak: data: %lld rows committed, %lld read back after their commit, %lld in the "
	       "table at the end (%lld lost); %lld bytes checked\n",
	       (long long)rows_committed, (long long)rows_confirmed, rows_in_table, lost,
	       (long long)bytes_checked);
	printf("soak: porterd RSS %ld -> %ld -> %ld KiB, fds %d -> %d -> %d "
	       "(after warm-up, half way, end)\n",
	       rss0, rss_mid, rss1, fds0, fds_mid, fds1);

	int alive = d.pid > 0 && kill(d.pid, 0) == 0;
	int st = th_daemon_stop(&d);
	printf("soak: porterd %s, shutdown %s\n", alive ? "alive" : "DIED",
	       st == 0 ? "clean (exit 0)" : "NOT clean");
	if (st != 0)
		th_daemon_dump_log(&d);
	ok = alive && st == 0 && failed == 0 && hangs == 0 && wrong == 0 && lost == 0 &&
	     rows_in_table >= 0 && rows_confirmed == rows_committed && fds1 <= fds0 + 8 &&
	     fds_mid <= fds0 + 8;
out:
	if (d.pid)
		th_daemon_kill(&d);
	if (d.dir[0])
		th_daemon_cleanup(&d);
	if (h.pid || h.dir[0])
		th_httpd_stop(&h);
	if (pg_up)
		pg_sh("stop", pg_state);
	rmdir(pg_state);
	rmdir(root);
	printf("soak: %s\n", ok ? "OK" : "FAILED");
	return ok ? 0 : 1;
}
