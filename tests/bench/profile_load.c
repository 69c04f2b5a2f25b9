/*
 * profile_load - a fixed number of requests of one kind through porterd, for
 * instruction counting (tests/bench/profile.sh runs it under callgrind).
 *
 *   profile_load ping|db|http|pgdirect|curldirect THREADS N
 *
 * Starts what the kind needs (a throwaway PostgreSQL through pg.sh for db,
 * the loopback test HTTP server for http) and porterd through the harness,
 * so PORTER_DAEMON_WRAP runs porterd under a tool. Each of THREADS threads
 * first makes WARMUP requests (connections, pools and caches set up), then
 * meets the others at a barrier, then makes N requests in run_requests(),
 * the one function whose instructions profile.sh counts on the client side
 * (--toggle-collect=run_requests). Counts do not depend on time, so a run
 * under load counts the same work; failures are counted and printed, and
 * the exit status is 1 when any request failed, so a profile of errors is
 * never taken for one of answers.
 *
 * PROFILE_ATTACH (words, say "strace -f -c -o FILE -p") attaches a tool to
 * the running porterd (its pid is the last word) before the first request:
 * a tool that wraps porterd through PORTER_DAEMON_WRAP would be the process
 * the harness stops with SIGTERM, and strace then detaches without its
 * summary. The tool ends when porterd does.
 *
 * Not part of `make bench` or `make test` (built by both).
 */
#include <curl/curl.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_pg.h"
#include "harness.h"
#include "httpd.h"
#include "porter.h"

#define WARMUP 50
#define BODY 1024

/* PGDIRECT and CURLDIRECT are the baselines without porterd: libpq with
 * one connection per thread (PQexec) and libcurl with one easy handle per
 * thread, as bench_db and bench_http compare. */
enum kind { PING, DB, HTTP, PGDIRECT, CURLDIRECT };

/* This thread's direct connection or easy handle (baselines only). */
static __thread PGconn *t_pg;
static __thread CURL *t_curl;
static __thread size_t t_got;

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	*(size_t *)ud += size * n;
	return size * n;
}

static enum kind g_kind;
static int g_n;
static char g_conninfo[512];
static char g_url[128];
static pthread_barrier_t g_ready;

/* One request of g_kind; 0 when it was answered as expected. */
static int one_request(void)
{
	switch (g_kind) {
	case PGDIRECT: {
		PGresult *res = PQexec(t_pg, "SELECT 1");
		int ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
		PQclear(res);
		return ok ? 0 : -1;
	}
	case CURLDIRECT: {
		long status = 0;
		t_got = 0;
		return curl_easy_perform(t_curl) == CURLE_OK &&
				       curl_easy_getinfo(t_curl, CURLINFO_RESPONSE_CODE, &status) ==
					       CURLE_OK &&
				       status == 200 && t_got == BODY
			       ? 0
			       : -1;
	}
	case PING:
		return porter_ping("0123456789abcdef", 16, 0, 10000) == 0 ? 0 : -1;
	case DB: {
		porter_db_result *res = NULL;
		int ok = porter_db_query(0, g_conninfo, "SELECT 1", NULL, 0, 0, 10000, &res) == 0 &&
			 porter_db_ntuples(res) == 1;
		porter_db_result_free(res);
		return ok ? 0 : -1;
	}
	case HTTP: {
		porter_http_response *resp = NULL;
		size_t len = 0;
		if (porter_http_request("GET", g_url, NULL, 0, NULL, 0, NULL, 0, 10000, &resp) != 0)
			return -1;
		porter_http_response_body(resp, &len);
		int ok = porter_http_response_status(resp) == 200 && len == BODY;
		porter_http_response_free(resp);
		return ok ? 0 : -1;
	}
	}
	return -1;
}

/* The measured requests. Not static and never inlined: callgrind's
 * --toggle-collect names it. Returns the number of failures. */
__attribute__((noinline)) int run_requests(int n);
__attribute__((noinline)) int run_requests(int n)
{
	int failures = 0;
	for (int i = 0; i < n; i++)
		failures += one_request() != 0;
	return failures;
}

static void *thread_main(void *arg)
{
	int *failures = arg;
	if (g_kind == PGDIRECT)
		t_pg = PQconnectdb(g_conninfo);
	if (g_kind == CURLDIRECT && (t_curl = curl_easy_init())) {
		curl_easy_setopt(t_curl, CURLOPT_URL, g_url);
		curl_easy_setopt(t_curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(t_curl, CURLOPT_WRITEFUNCTION, sink);
		curl_easy_setopt(t_curl, CURLOPT_WRITEDATA, &t_got);
	}
	for (int i = 0; i < WARMUP; i++)
		*failures += one_request() != 0;
	pthread_barrier_wait(&g_ready);
	*failures += run_requests(g_n);
	PQfinish(t_pg);
	if (t_curl)
		curl_easy_cleanup(t_curl);
	porter_thread_disconnect();
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4 || atoi(argv[2]) < 1 || atoi(argv[3]) < 0) {
		fprintf(stderr, "usage: profile_load ping|db|http|pgdirect|curldirect THREADS N\n");
		return 2;
	}
	static const struct {
		const char *name;
		enum kind kind;
	} kinds[] = {{"ping", PING},
		     {"db", DB},
		     {"http", HTTP},
		     {"pgdirect", PGDIRECT},
		     {"curldirect", CURLDIRECT}};
	g_kind = PING;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(argv[1], kinds[i].name))
			g_kind = kinds[i].kind;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int threads = atoi(argv[2]);
	g_n = atoi(argv[3]);
	char state[] = "/tmp/porter-profile-pg.XXXXXX";
	int have_pg = 0, rc = 1, failures = 0;
	th_httpd httpd = {0};
	th_daemon d = {0};
	pthread_t *th = calloc((size_t)threads, sizeof(*th));
	int *fails = calloc((size_t)threads, sizeof(*fails));
	if (!th || !fails)
		goto out;

	if (g_kind == DB || g_kind == PGDIRECT) {
		if (!mkdtemp(state) || bench_pg_start(state, g_conninfo, sizeof(g_conninfo)) != 0) {
			fprintf(stderr, "profile_load: could not start PostgreSQL\n");
			goto out;
		}
		have_pg = 1;
	}
	const char *given = getenv("PROFILE_HTTP_URL");
	if ((g_kind == HTTP || g_kind == CURLDIRECT) && given && *given) {
		/* A server started once for many runs (profile.sh on a busy
		 * machine, where starting Python each time may take 10 s). */
		snprintf(g_url, sizeof(g_url), "%s", given);
	} else if (g_kind == HTTP || g_kind == CURLDIRECT) {
		if (th_httpd_start(&httpd) != 0) {
			fprintf(stderr, "profile_load: could not start the HTTP server\n");
			goto out;
		}
		snprintf(g_url, sizeof(g_url), "%s/bin/%d", httpd.base, BODY);
	}
	/* porterd may start slowly under a tool; the harness waits 10 s. */
	static const char *const extra[] = {"--log-level", "warn", NULL};
	if (th_daemon_start(&d, extra) != 0) {
		fprintf(stderr, "profile_load: porterd did not start\n");
		goto out;
	}
	pid_t tool = 0;
	const char *attach_tool = getenv("PROFILE_ATTACH");
	if (attach_tool && *attach_tool && (tool = th_attach(attach_tool, d.pid)) < 0) {
		fprintf(stderr, "profile_load: %s did not attach to porterd\n", attach_tool);
		th_daemon_kill(&d);
		th_daemon_cleanup(&d);
		goto out;
	}
	pthread_barrier_init(&g_ready, NULL, (unsigned)threads);
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, thread_main, &fails[i]);
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		failures += fails[i];
	}
	pthread_barrier_destroy(&g_ready);
	printf("profile_load: %s, %d threads x (%d warm-up + %d) requests, %d failed\n", argv[1],
	       threads, WARMUP, g_n, failures);
	/* A clean stop, so the tool writes its output. */
	rc = th_daemon_stop(&d) == 0 && failures == 0 ? 0 : 1;
	if (tool > 0 && waitpid(tool, NULL, 0) != tool)
		rc = 1;
	th_daemon_cleanup(&d);
out:
	if (httpd.pid)
		th_httpd_stop(&httpd);
	if (have_pg && bench_pg_stop(state) != 0)
		rc = 1;
	free(th);
	free(fails);
	curl_global_cleanup();
	return rc;
}
