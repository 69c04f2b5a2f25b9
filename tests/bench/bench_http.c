/*
 * bench_http - GET of a 1 KiB body through porterd vs direct libcurl (one
 * easy handle reused per thread, the way a careful user would do it), at 1
 * 8 and 32 client threads, in the same run, against the same loopback
 * server, with CPU per request of each process and a floor row (direct +
 * the same run's porter_ping round trip).
 *
 * The server is a minimal epoll HTTP/1.1 keep-alive responder (not the
 * Python test server, so that it is not the bottleneck) in a process of its
 * own, as a real server is: a thread of the benchmark itself would make the
 * direct path thread-to-thread switches, cheaper than the process switches
 * every real client-server exchange costs.
 * Prints p50, p99, rate and the porter/direct ratios; never fails on
 * timing. For profiling, PORTER_BENCH_ONLY=porter|direct runs one side
 * alone and PORTER_BENCH_SCALE=N multiplies the request counts.
 *
 * Then large bodies: GETs of 1 MiB and 8 MiB at 1 and 4 threads, porter
 * against direct libcurl that collects the body into a buffer it keeps
 * (what a user who wants the body in memory does; porter hands it over in
 * memory too). PORTER_BENCH_PART=small|large runs one table alone,
 * PORTER_BENCH_SIZE=1m|8m one size of the large one, and
 * PORTER_BENCH_LARGE_N=N sets its requests per thread (profiling).
 * PORTER_BENCH_THREADS=N runs only the rows of N client threads (A/B runs
 * of one row, alternating builds).
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_cpu.h"
#include "harness.h"
#include "porter.h"

#define BODY 1024
#define WARMUP 300
#define ITERS_1 5000 /* requests measured at 1 thread */
#define ITERS_8 1500 /* per thread at 8 threads */
#define ITERS_32 400 /* per thread at 32 threads */

/* ---- the loopback server ---- */

/* The bodies it serves, by path: a GET of PATH gets BYTES bytes. */
typedef struct body {
	const char *path;
	size_t bytes;
	char *response; /* head and body */
	size_t len;
} body;

static body bodies[] = {
	{"/1k", BODY, NULL, 0},
	{"/1m", 1u << 20, NULL, 0},
	{"/8m", 8u << 20, NULL, 0},
};
#define N_BODIES (sizeof(bodies) / sizeof(bodies[0]))

static int listen_fd;
static int server_port;

typedef struct sconn {
	int fd;
	char buf[8192];
	size_t len;
	const body *out; /* the response being sent; NULL when none */
	size_t out_off;
} sconn;

static const body *find_body(const char *req, size_t len)
{
	/* "GET /path HTTP/1.1" */
	const char *sp = memchr(req, ' ', len);
	for (size_t i = 0; sp && i < N_BODIES; i++) {
		size_t pl = strlen(bodies[i].path);
		if ((size_t)(req + len - (sp + 1)) > pl &&
		    memcmp(sp + 1, bodies[i].path, pl) == 0 && sp[1 + pl] == ' ')
			return &bodies[i];
	}
	return &bodies[0];
}

/* Sends what the socket takes of the response in progress: 1 when it is
 * all sent, 0 when the socket is full, -1 on error. */
static int flush_out(sconn *c)
{
	while (c->out_off < c->out->len) {
		ssize_t n = send(c->fd, c->out->response + c->out_off, c->out->len - c->out_off,
				 MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		c->out_off += (size_t)n;
	}
	c->out = NULL;
	return 1;
}

/* Answers the complete requests in the buffer (GETs, no bodies), one at
 * a time: 0 when all are answered or the socket is full (then the epoll
 * interest is EPOLLOUT until it drains), -1 on error. */
static int serve_buffer(int ep, sconn *c)
{
	for (;;) {
		if (c->out) {
			int rc = flush_out(c);
			if (rc <= 0) {
				struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
				if (rc == 0)
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
				return rc;
			}
			struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
			epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
		}
		char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
		if (!end)
			return 0;
		size_t used = (size_t)(end + 4 - c->buf);
		c->out = find_body(c->buf, used);
		c->out_off = 0;
		memmove(c->buf, c->buf + used, c->len - used);
		c->len -= used;
	}
}

static void server_main(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev);
	struct epoll_event evs[64];
	for (;;) {
		int n = epoll_wait(ep, evs, 64, 100);
		for (int i = 0; i < n; i++) {
			sconn *c = evs[i].data.ptr;
			if (!c) {
				int fd;
				while ((fd = accept4(listen_fd, NULL, NULL,
						     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					int one = 1;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					sconn *nc = calloc(1, sizeof(*nc));
					nc->fd = fd;
					struct epoll_event e = {.events = EPOLLIN, .data.ptr = nc};
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
				}
				continue;
			}
			ssize_t r = 0;
			if (!c->out) {
				r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
				if (r < 0 && errno == EAGAIN)
					continue;
			}
			if ((!c->out && r <= 0) || (c->len += (size_t)r, serve_buffer(ep, c) < 0) ||
			    c->len == sizeof(c->buf)) {
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				free(c);
			}
		}
	}
}

/* Forks the server; it dies with this process, and after 10 minutes. */
static pid_t server_start(void)
{
	for (size_t k = 0; k < N_BODIES; k++) {
		body *b = &bodies[k];
		char head[256];
		int hl = snprintf(head, sizeof(head),
				  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
				  "Content-Length: %zu\r\n\r\n",
				  b->bytes);
		b->response = malloc((size_t)hl + b->bytes);
		if (!b->response) {
			perror("bench_http: server");
			exit(1);
		}
		memcpy(b->response, head, (size_t)hl);
		for (size_t i = 0; i < b->bytes; i++)
			b->response[hl + i] = (char)('a' + i % 26);
		b->len = (size_t)hl + b->bytes;
	}

	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sa);
	if (bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(listen_fd, 256) < 0 ||
	    getsockname(listen_fd, (struct sockaddr *)&sa, &sl) < 0) {
		perror("bench_http: server");
		exit(1);
	}
	server_port = ntohs(sa.sin_port);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		perror("bench_http: fork");
		exit(1);
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		alarm(600);
		server_main();
		_exit(0);
	}
	close(listen_fd);
	return pid;
}

/* ---- clients ---- */

/* What the clients of one measurement fetch. */
typedef struct target {
	char url[128];
	size_t bytes;   /* the body's size */
	int warmup;     /* requests per thread before the measured ones */
	int collect;    /* direct libcurl copies the body into a buffer it keeps */
	int timeout_ms; /* porter's, per request */
} target;

static target tgt;

typedef struct run {
	pthread_t th;
	int direct; /* 1: libcurl, 0: porterd, 2: porter_ping (the floor) */
	int iters;
	double *lat;
	int failures;
} run;

/* Where direct libcurl's body goes: counted, and with `collect` copied
 * into a buffer grown once and kept across requests. */
typedef struct sinkbuf {
	size_t got;
	char *buf;
	size_t cap;
	int collect;
} sinkbuf;

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
	sinkbuf *sb = ud;
	size_t len = size * n;
	if (sb->collect) {
		if (sb->got + len > sb->cap) {
			size_t nc = sb->cap ? sb->cap : 65536;
			while (nc < sb->got + len)
				nc *= 2;
			char *nb = realloc(sb->buf, nc);
			if (!nb)
				return 0;
			sb->buf = nb;
			sb->cap = nc;
		}
		memcpy(sb->buf + sb->got, p, len);
	}
	sb->got += len;
	return len;
}

static void *client_main(void *arg)
{
	run *r = arg;
	CURL *e = NULL;
	sinkbuf sb = {0, NULL, 0, tgt.collect};
	if (r->direct == 1) {
		e = curl_easy_init();
		curl_easy_setopt(e, CURLOPT_URL, tgt.url);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &sb);
	}
	for (int i = 0; i < tgt.warmup + r->iters; i++) {
		double t0 = th_now_ns();
		int ok;
		if (r->direct == 2) {
			ok = porter_ping("0123456789abcdef", 16, 0, 5000) == 0;
		} else if (r->direct) {
			sb.got = 0;
			long status = 0;
			ok = curl_easy_perform(e) == CURLE_OK &&
			     curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
			     status == 200 && sb.got == tgt.bytes;
		} else {
			porter_http_response *resp = NULL;
			size_t len = 0;
			ok = porter_http_request("GET", tgt.url, NULL, 0, NULL, 0, NULL, 0,
						 tgt.timeout_ms, &resp) == 0;
			if (ok) {
				porter_http_response_body(resp, &len);
				ok = porter_http_response_status(resp) == 200 && len == tgt.bytes;
				porter_http_response_free(resp);
			}
		}
		double dt = th_now_ns() - t0;
		if (!ok)
			r->failures++;
		if (i >= tgt.warmup)
			r->lat[i - tgt.warmup] = dt;
	}
	if (e)
		curl_easy_cleanup(e);
	free(sb.buf);
	porter_thread_disconnect();
	return NULL;
}

typedef struct result {
	double p50_us, p99_us, rate;
	int failures;
	/* CPU microseconds per request: the client threads, porterd, the
	 * loopback server. */
	double cpu_cli, cpu_pd, cpu_srv;
} result;

static pid_t g_porterd, g_server;

static result measure(int direct, int threads, int iters)
{
	run *runs = calloc((size_t)threads, sizeof(run));
	double *all = malloc(sizeof(double) * (size_t)threads * (size_t)iters);
	result res = {0};
	for (int i = 0; i < threads; i++) {
		runs[i].direct = direct;
		runs[i].iters = iters;
		runs[i].lat = all + (size_t)i * (size_t)iters;
	}
	double t0 = th_now_ns(), c0 = bench_self_cpu(), d0 = bench_proc_cpu(g_porterd, 0, NULL),
	       s0 = bench_proc_cpu(g_server, 0, NULL);
	for (int i = 0; i < threads; i++)
		pthread_create(&runs[i].th, NULL, client_main, &runs[i]);
	for (int i = 0; i < threads; i++) {
		pthread_join(runs[i].th, NULL);
		res.failures += runs[i].failures;
	}
	double wall = th_now_ns() - t0;
	/* Warm-up requests included, as in the rate. */
	double reqs = (double)threads * (tgt.warmup + iters);
	res.cpu_cli = (bench_self_cpu() - c0) * 1e6 / reqs;
	res.cpu_pd = (bench_proc_cpu(g_porterd, 0, NULL) - d0) * 1e6 / reqs;
	res.cpu_srv = (bench_proc_cpu(g_server, 0, NULL) - s0) * 1e6 / reqs;
	size_t n = (size_t)threads * (size_t)iters;
	qsort(all, n, sizeof(double), th_cmp_double);
	res.p50_us = all[n / 2] / 1e3;
	res.p99_us = all[(size_t)ceil(0.99 * (double)n) - 1] / 1e3;
	res.rate = reqs / (wall / 1e9);
	free(runs);
	free(all);
	return res;
}

/* Whether the rows of `threads` client threads run (PORTER_BENCH_THREADS,
 * unset: all of them). */
static int threads_wanted(int threads)
{
	const char *only = getenv("PORTER_BENCH_THREADS");
	return !only || !*only || atoi(only) == threads;
}

/* porterd's settings as run: its defaults, then PORTER_DAEMON_ARGS,
 * which the harness appends (later flags win). */
static const char *daemon_args(void)
{
	static char text[256];
	const char *more = getenv("PORTER_DAEMON_ARGS");
	snprintf(text, sizeof(text), "default workers%s%s", more && *more ? ", " : "",
		 more ? more : "");
	return text;
}

/* The 1 KiB table: direct, porter, porter without busy polling, ping and
 * the floor at 1, 8 and 32 threads. 0, or 1 when porterd did not restart. */
static int small_table(th_daemon *d, const char *const *extra, const char *const *extra_blocking)
{
	printf("bench_http: GET of a %d-byte body on loopback, porterd (%s) vs direct libcurl %s\n",
	       BODY, daemon_args(), curl_version_info(CURLVERSION_NOW)->version);
	printf("(porter0: porterd with --busy-poll 0; ratio0 compares it with direct)\n");
	printf("(ping: porter_ping at the same thread count; floor: direct + ping, latencies and\n"
	       "CPU added, rates combined as 1/(1/direct + 1/ping). CPU columns: microseconds per\n"
	       "request of the client threads, porterd and the loopback server.)\n");
	printf("%-8s %-8s %10s %10s %12s %9s %8s %8s %8s\n", "threads", "path", "p50 us", "p99 us",
	       "req/s", "failures", "cpu cli", "cpu pd", "cpu srv");
	static const int thread_counts[] = {1, 8, 32};
	static const int thread_iters[] = {ITERS_1, ITERS_8, ITERS_32};
	const char *only = getenv("PORTER_BENCH_ONLY");
	int scale = getenv("PORTER_BENCH_SCALE") ? atoi(getenv("PORTER_BENCH_SCALE")) : 1;
	if (scale < 1)
		scale = 1;
	snprintf(tgt.url, sizeof(tgt.url), "http://127.0.0.1:%d/1k", server_port);
	tgt.bytes = BODY;
	tgt.warmup = WARMUP;
	tgt.collect = 0;
	tgt.timeout_ms = 5000;
	for (size_t t = 0; t < 3; t++) {
		int threads = thread_counts[t];
		int iters = thread_iters[t] * scale;
		if (!threads_wanted(threads))
			continue;
		result none = {0};
		result direct = only && strcmp(only, "direct") ? none : measure(1, threads, iters);
		result porter = only && strcmp(only, "porter") ? none : measure(0, threads, iters);
		result ping = only ? none : measure(2, threads, iters);
		result floor = {direct.p50_us + ping.p50_us,
				direct.p99_us + ping.p99_us,
				direct.rate > 0 && ping.rate > 0
					? 1.0 / (1.0 / direct.rate + 1.0 / ping.rate)
					: 0,
				0,
				direct.cpu_cli + ping.cpu_cli,
				direct.cpu_pd + ping.cpu_pd,
				direct.cpu_srv + ping.cpu_srv};
		/* The same daemon without busy polling, for comparison. */
		result blocking = {0};
		if (!only && th_daemon_stop(d) == 0 && th_daemon_restart(d, extra_blocking) == 0) {
			g_porterd = d->pid;
			blocking = measure(0, threads, iters);
			th_daemon_stop(d);
			if (th_daemon_restart(d, extra) != 0) {
				fprintf(stderr, "bench_http: porterd did not restart\n");
				return 1;
			}
			g_porterd = d->pid;
		}
		const char *names[] = {"direct", "porter", "porter0", "ping", "floor"};
		const result *rows[] = {&direct, &porter, &blocking, &ping, &floor};
		for (size_t k = 0; k < 5; k++)
			printf("%-8d %-8s %10.1f %10.1f %12.0f %9d %8.1f %8.1f %8.1f\n", threads,
			       names[k], rows[k]->p50_us, rows[k]->p99_us, rows[k]->rate,
			       rows[k]->failures, rows[k]->cpu_cli, rows[k]->cpu_pd,
			       rows[k]->cpu_srv);
		printf("%-8d %-8s %10.2fx %9.2fx %11.2fx\n", threads, "ratio",
		       porter.p50_us / direct.p50_us, porter.p99_us / direct.p99_us,
		       porter.rate / direct.rate);
		printf("%-8d %-8s %10.2fx %9.2fx %11.2fx\n", threads, "ratio0",
		       blocking.p50_us / direct.p50_us, blocking.p99_us / direct.p99_us,
		       blocking.rate / direct.rate);
		printf("%-8d %-8s %10.2fx %9.2fx %11.2fx\n", threads, "/floor",
		       porter.p50_us / floor.p50_us, porter.p99_us / floor.p99_us,
		       porter.rate / floor.rate);
	}
	return 0;
}

/* The large bodies: 1 MiB and 8 MiB at 1 and 4 threads, porter against
 * direct libcurl collecting the body, with the rate in MiB/s too. */
static void large_table(void)
{
	static const struct {
		const char *path;
		size_t bytes;
		int iters[2]; /* per thread at 1 and 4 threads */
	} sizes[] = {{"/1m", 1u << 20, {200, 60}}, {"/8m", 8u << 20, {30, 10}}};
	static const int thread_counts[] = {1, 4};
	const char *only = getenv("PORTER_BENCH_ONLY");
	int scale = getenv("PORTER_BENCH_SCALE") ? atoi(getenv("PORTER_BENCH_SCALE")) : 1;
	if (scale < 1)
		scale = 1;
	printf("\nbench_http: large bodies, porterd (%s) vs direct libcurl collecting the\n"
	       "body into a buffer it reuses (porter hands the body over in memory too)\n",
	       daemon_args());
	printf("%-8s %-8s %-8s %10s %10s %9s %9s %9s %9s %9s\n", "size", "threads", "path",
	       "p50 ms", "p99 ms", "req/s", "MiB/s", "cpu cli", "cpu pd", "cpu srv");
	const char *size_only = getenv("PORTER_BENCH_SIZE");
	int large_n = getenv("PORTER_BENCH_LARGE_N") ? atoi(getenv("PORTER_BENCH_LARGE_N")) : 0;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		if (size_only && strcmp(size_only, sizes[k].path + 1))
			continue;
		snprintf(tgt.url, sizeof(tgt.url), "http://127.0.0.1:%d%s", server_port,
			 sizes[k].path);
		tgt.bytes = sizes[k].bytes;
		tgt.warmup = 3;
		tgt.collect = 1;
		tgt.timeout_ms = 60000;
		for (size_t t = 0; t < 2; t++) {
			int threads = thread_counts[t];
			int iters = large_n > 0 ? large_n : sizes[k].iters[t] * scale;
			if (!threads_wanted(threads))
				continue;
			result none = {0};
			result direct =
				only && strcmp(only, "direct") ? none : measure(1, threads, iters);
			result porter =
				only && strcmp(only, "porter") ? none : measure(0, threads, iters);
			const char *names[] = {"direct", "porter"};
			const result *rows[] = {&direct, &porter};
			double mib = (double)sizes[k].bytes / (1024.0 * 1024.0);
			for (size_t i = 0; i < 2; i++)
				printf("%-8s %-8d %-8s %10.2f %10.2f %9.1f %9.0f %9.0f %9.0f %9.0f"
				       "%s\n",
				       sizes[k].path + 1, threads, names[i], rows[i]->p50_us / 1e3,
				       rows[i]->p99_us / 1e3, rows[i]->rate, rows[i]->rate * mib,
				       rows[i]->cpu_cli, rows[i]->cpu_pd, rows[i]->cpu_srv,
				       rows[i]->failures ? " (failures)" : "");
			printf("%-8s %-8d %-8s %9.2fx %9.2fx %8.2fx\n", sizes[k].path + 1, threads,
			       "ratio", porter.p50_us / direct.p50_us,
			       porter.p99_us / direct.p99_us, porter.rate / direct.rate);
		}
	}
	printf("(CPU columns: microseconds per request; failures are requests that did not\n"
	       "return the whole body)\n");
}

int main(void)
{
	th_daemon d;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	pid_t srv = server_start();
	/* porterd's default worker count, as deployed (README "Worker loops");
	 * PORTER_DAEMON_ARGS="--workers N" compares another. */
	static const char *const extra[] = {"--log-level", "warn", NULL};
	static const char *const extra_blocking[] = {"--log-level", "warn", "--busy-poll", "0",
						     NULL};
	if (th_daemon_start(&d, extra) != 0) {
		fprintf(stderr, "bench_http: porterd did not start\n");
		return 1;
	}
	g_porterd = d.pid;
	g_server = srv;
	const char *part = getenv("PORTER_BENCH_PART");
	int rc = 0;
	if (!part || strcmp(part, "large"))
		rc = small_table(&d, extra, extra_blocking);
	if (rc == 0 && (!part || strcmp(part, "small")))
		large_table();
	fflush(stdout);
	th_daemon_stop(&d);
	th_daemon_cleanup(&d);
	kill(srv, SIGKILL);
	waitpid(srv, NULL, 0);
	curl_global_cleanup();
	return rc;
}
