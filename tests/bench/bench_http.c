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

static char response[256 + BODY];
static size_t response_len;
static int listen_fd;
static int server_port;

typedef struct sconn {
	int fd;
	char buf[8192];
	size_t len;
} sconn;

/* Answers every complete request in the buffer (GETs, no bodies). */
static int serve_buffer(sconn *c)
{
	for (;;) {
		char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
		if (!end)
			return 0;
		size_t used = (size_t)(end + 4 - c->buf);
		size_t off = 0;
		while (off < response_len) {
			ssize_t n = send(c->fd, response + off, response_len - off, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN) {
					usleep(50);
					continue;
				}
				return -1;
			}
			off += (size_t)n;
		}
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
			ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
			if (r < 0 && errno == EAGAIN)
				continue;
			if (r <= 0 || (c->len += (size_t)r, serve_buffer(c) < 0) ||
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
	char body[BODY];
	for (int i = 0; i < BODY; i++)
		body[i] = (char)('a' + i % 26);
	response_len = (size_t)snprintf(response, sizeof(response),
					"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
					"Content-Length: %d\r\n\r\n",
					BODY);
	memcpy(response + response_len, body, BODY);
	response_len += BODY;

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

static char url[128];

typedef struct run {
	pthread_t th;
	int direct; /* 1: libcurl, 0: porterd, 2: porter_ping (the floor) */
	int iters;
	double *lat;
	int failures;
} run;

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	*(size_t *)ud += size * n;
	return size * n;
}

static void *client_main(void *arg)
{
	run *r = arg;
	CURL *e = NULL;
	size_t got = 0;
	if (r->direct == 1) {
		e = curl_easy_init();
		curl_easy_setopt(e, CURLOPT_URL, url);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &got);
	}
	for (int i = 0; i < WARMUP + r->iters; i++) {
		double t0 = th_now_ns();
		int ok;
		if (r->direct == 2) {
			ok = porter_ping("0123456789abcdef", 16, 0, 5000) == 0;
		} else if (r->direct) {
			got = 0;
			long status = 0;
			ok = curl_easy_perform(e) == CURLE_OK &&
			     curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
			     status == 200 && got == BODY;
		} else {
			porter_http_response *resp = NULL;
			size_t len = 0;
			ok = porter_http_request("GET", url, NULL, 0, NULL, 0, NULL, 0, 5000,
						 &resp) == 0;
			if (ok) {
				porter_http_response_body(resp, &len);
				ok = porter_http_response_status(resp) == 200 && len == BODY;
				porter_http_response_free(resp);
			}
		}
		double dt = th_now_ns() - t0;
		if (!ok)
			r->failures++;
		if (i >= WARMUP)
			r->lat[i - WARMUP] = dt;
	}
	if (e)
		curl_easy_cleanup(e);
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
	double reqs = (double)threads * (WARMUP + iters);
	res.cpu_cli = (bench_self_cpu() - c0) * 1e6 / reqs;
	res.cpu_pd = (bench_proc_cpu(g_porterd, 0, NULL) - d0) * 1e6 / reqs;
	res.cpu_srv = (bench_proc_cpu(g_server, 0, NULL) - s0) * 1e6 / reqs;
	size_t n = (size_t)threads * (size_t)iters;
	qsort(all, n, sizeof(double), th_cmp_double);
	res.p50_us = all[n / 2] / 1e3;
	res.p99_us = all[(size_t)ceil(0.99 * (double)n) - 1] / 1e3;
	res.rate = (double)threads * (WARMUP + iters) / (wall / 1e9);
	free(runs);
	free(all);
	return res;
}

int main(void)
{
	th_daemon d;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	pid_t srv = server_start();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/1k", server_port);
	static const char *const extra[] = {"--workers", "2", "--log-level", "warn", NULL};
	static const char *const extra_blocking[] = {"--workers",   "2", "--log-level", "warn",
						     "--busy-poll", "0", NULL};
	if (th_daemon_start(&d, extra) != 0) {
		fprintf(stderr, "bench_http: porterd did not start\n");
		return 1;
	}

	printf("bench_http: GET of a %d-byte body on loopback, porterd (2 workers) vs direct libcurl %s\n",
	       BODY, curl_version_info(CURLVERSION_NOW)->version);
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
	g_porterd = d.pid;
	g_server = srv;
	for (size_t t = 0; t < 3; t++) {
		int threads = thread_counts[t];
		int iters = thread_iters[t] * scale;
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
		if (!only && th_daemon_stop(&d) == 0 &&
		    th_daemon_restart(&d, extra_blocking) == 0) {
			g_porterd = d.pid;
			blocking = measure(0, threads, iters);
			th_daemon_stop(&d);
			if (th_daemon_restart(&d, extra) != 0) {
				fprintf(stderr, "bench_http: porterd did not restart\n");
				return 1;
			}
			g_porterd = d.pid;
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
	fflush(stdout);
	th_daemon_stop(&d);
	th_daemon_cleanup(&d);
	kill(srv, SIGKILL);
	waitpid(srv, NULL, 0);
	curl_global_cleanup();
	return 0;
}
