/* server - acceptor, hand-off, signals and shutdown; see server.h. */
#include "server.h"

#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clients.h"
#include "frame.h"
#include "httpbuf.h"
#include "listen.h"
#include "log.h"
#include "loopcpu.h"
#include "metrics.h"
#include "porter_errors.h"
#include "porter_version.h"
#include "porter.pb-c.h"
#include "sd.h"

/* Connections accepted per wake-up before other handles get a turn. */
#define ACCEPT_BATCH 64
/* How often RSS is compared with the heap in use, and how far above twice
 * that it may be before free memory is handed back (see on_trim). */
#define TRIM_INTERVAL_MS 2000
#define TRIM_SLACK (16u << 20)
/* Pause after running out of descriptors, so the loop does not spin. */
#define ACCEPT_PAUSE_MS 100

/* Tells a refused peer why (`code`, `text`; request id 0) before closing
 * `fd`, so its call fails clearly instead of seeing a bare EOF. */
static void refuse_with(int fd, int code, const char *text)
{
	uint8_t *buf;
	size_t len;
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;

	resp.status = code;
	resp.message = (char *)text;
	if (frame_pack(&resp.base, 4096, &buf, &len) == 0) {
		/* A fresh socket's buffer has room; never block for this. */
		ssize_t w = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)w;
		free(buf);
	}
	close(fd);
}

static void refuse(server *srv, int fd, uid_t uid)
{
	char text[96];
	snprintf(text, sizeof(text), "uid %u is not allowed to use this daemon", (unsigned)uid);
	refuse_with(fd, PORTER_E_DENIED, text);
	srv->denied++;
	log_info("refused a connection from uid %u", (unsigned)uid);
}

/*
 * Out of descriptors (EMFILE/ENFILE): a listener that just stops accepting
 * leaves clients hanging in the backlog until their own timeouts. The
 * reserve descriptor is given up for a moment to accept one of them, tell
 * it "daemon at capacity" and close it, then taken back. Returns 1 when a
 * connection was shed, 0 when nothing could be done (no reserve, or the
 * backlog is empty).
 */
static int shed_one(server *srv)
{
	if (srv->reserve_fd < 0)
		return 0;
	close(srv->reserve_fd);
	int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd >= 0)
		refuse_with(fd, PORTER_E_BUSY,
			    "daemon at capacity: out of file descriptors, try again later");
	srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	srv->shed++;
	srv->shed_unlogged++;
	/* Once per 10 s with a count, not once per connection. */
	uint64_t now = uv_now(&srv->loop);
	if (!srv->shed_logged_ms || now - srv->shed_logged_ms >= 10000) {
		log_warn("out of file descriptors: %llu connection(s) refused as \"daemon at "
			 "capacity\" since the last warning (%llu in all)",
			 (unsigned long long)srv->shed_unlogged, (unsigned long long)srv->shed);
		srv->shed_logged_ms = now;
		srv->shed_unlogged = 0;
	}
	return 1;
}

/* systemd gives services a soft RLIMIT_NOFILE of 1024 (for select()'s
 * sake); porterd uses epoll and needs a descriptor per client connection,
 * database connection and file stream, so it takes the hard limit. */
static void raise_fd_limit(server *srv)
{
	struct rlimit rl;
	srv->auto_uid_connections = 512;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	rlim_t was = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			log_warn("cannot raise the descriptor limit from %llu to %llu: %s",
				 (unsigned long long)was, (unsigned long long)rl.rlim_max,
				 strerror(errno));
			rl.rlim_cur = was;
		}
	}
	/* Half: whatever one uid does, the other half stays for the rest
	 * (and for database connections and files). */
	rlim_t half = rl.rlim_cur / 2;
	srv->auto_uid_connections = half > UINT32_MAX ? UINT32_MAX : half < 1 ? 1 : (uint32_t)half;
	log_info(
		"file descriptors: soft limit %llu (was %llu), hard limit %llu; uid-max-connections 0 means %u "
		"connections",
		(unsigned long long)rl.rlim_cur, (unsigned long long)was,
		(unsigned long long)rl.rlim_max, srv->auto_uid_connections);
}

static worker *least_loaded(server *srv)
{
	worker *best = &srv->workers[0];
	uint64_t min = stats_get(&best->counters.connections);
	for (unsigned i = 1; i < srv->n_workers; i++) {
		uint64_t n = stats_get(&srv->workers[i].counters.connections);
		if (n < min) {
			min = n;
			best = &srv->workers[i];
		}
	}
	return best;
}

static void on_listen_readable(uv_poll_t *p, int status, int events);

static void on_accept_resume(uv_timer_t *t)
{
	server *srv = t->data;
	if (!srv->stopping)
		uv_poll_start(&srv->listen_poll, UV_READABLE, on_listen_readable);
}

static void on_listen_readable(uv_poll_t *p, int status, int events)
{
	server *srv = p->data;
	(void)events;
	if (status < 0) {
		log_warn("listening socket: %s", uv_strerror(status));
		return;
	}
	/* Another thread may have taken the descriptor the reserve gave up:
	 * take one back as soon as one is free. */
	if (srv->reserve_fd < 0)
		srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if ((errno == EMFILE || errno == ENFILE) && shed_one(srv))
				continue;
			log_warn("accept: %s; pausing accepts for %d ms", strerror(errno),
				 ACCEPT_PAUSE_MS);
			uv_poll_stop(&srv->listen_poll);
			uv_timer_start(&srv->accept_pause, on_accept_resume, ACCEPT_PAUSE_MS, 0);
			return;
		}
		/* A connection made before porterd set it on systemd's
		 * socket: refused from here on, and closed apart when it
		 * sent one already. */
		if (srv->fds_refused && listen_screen(fd)) {
			log_warn("a connection made before porterd started sent it descriptors: "
				 "closed unread");
			continue;
		}
		clients_peer peer;
		int rc = clients_peer_read(fd, &peer);
		if (rc < 0) {
			log_warn("SO_PEERCRED: %s", strerror(-rc));
			close(fd);
			continue;
		}
		if (!clients_peer_allowed(srv->cfg, srv->activated, &peer)) {
			refuse(srv, fd, peer.uid);
			continue;
		}
		/* One uid may not hold every descriptor: its connections are
		 * bounded, and past that it is told so. */
		clients_acct *acct = clients_acct_ref(peer.uid);
		uint32_t limit = srv->cfg->uid_max_connections ? srv->cfg->uid_max_connections
							       : srv->auto_uid_connections;
		if (!clients_take(acct, CLIENTS_CONNS, 1, limit)) {
			char text[160];
			snprintf(text, sizeof(text),
				 "uid %u holds %u connections, its limit (uid-max-connections)",
				 (unsigned)peer.uid, limit);
			refuse_with(fd, PORTER_E_BUSY, text);
			clients_acct_unref(acct);
			srv->quota_refused++;
			continue;
		}
		if (worker_handoff(least_loaded(srv), fd, &peer, acct) < 0) {
			clients_put(acct, CLIENTS_CONNS, 1);
			clients_acct_unref(acct);
			close(fd);
		}
	}
}

static void on_listen_closed(uv_handle_t *h)
{
	server *srv = h->data;
	close(srv->listen_fd);
	srv->listen_fd = -1;
}

static void server_stop(server *srv)
{
	if (srv->stopping)
		return;
	srv->stopping = 1;
	sd_notifyf("STOPPING=1\nSTATUS=Stopping: draining in-flight work (up to %u ms)",
		   srv->cfg->shutdown_grace_ms);
	uv_close((uv_handle_t *)&srv->listen_poll, on_listen_closed);
	uv_close((uv_handle_t *)&srv->accept_pause, NULL);
	/* SIGTERM and SIGINT stay caught (but no longer keep the loop
	 * alive) until the workers have drained: a second signal during the
	 * drain must not kill the process and cut work off. */
	uv_unref((uv_handle_t *)&srv->sig_term);
	uv_unref((uv_handle_t *)&srv->sig_int);
	uv_close((uv_handle_t *)&srv->sig_hup, NULL);
	uv_close((uv_handle_t *)&srv->watchdog, NULL);
	uv_close((uv_handle_t *)&srv->trim, NULL);
	loopcpu_close(srv->turn_cpu);
	srv->turn_cpu = NULL;
	if (srv->test_hooks)
		uv_close((uv_handle_t *)&srv->sig_test, NULL);
	metrics_close(srv->metrics);
	srv->metrics = NULL;
	listen_remove(srv);
	for (unsigned i = 0; i < srv->n_workers; i++)
		worker_post_stop(&srv->workers[i]);
}

static void on_signal(uv_signal_t *s, int signum)
{
	server *srv = s->data;
	if (srv->stopping)
		return; /* already draining; shutdown-grace bounds it */
	log_info("received %s, shutting down (in-flight work gets up to %u ms)",
		 signum == SIGTERM ? "SIGTERM" : "SIGINT", srv->cfg->shutdown_grace_ms);
	server_stop(srv);
}

/* What the socket is, for humans: the path systemd bound, or ours. */
static void describe_listener(server *srv, char *buf, size_t len)
{
	struct sockaddr_un sa;
	socklen_t sl = sizeof(sa);
	memset(&sa, 0, sizeof(sa));
	if (!srv->activated) {
		snprintf(buf, len, "%s", srv->cfg->socket_path);
	} else if (getsockname(srv->listen_fd, (struct sockaddr *)&sa, &sl) == 0 &&
		   sl > offsetof(struct sockaddr_un, sun_path) && sa.sun_path[0]) {
		snprintf(buf, len, "%.*s (passed by systemd)",
			 (int)(sl - offsetof(struct sockaddr_un, sun_path)), sa.sun_path);
	} else {
		snprintf(buf, len, "a socket passed by systemd");
	}
}

/*
 * Watchdog tick, at half of WATCHDOG_USEC. Pings only when every worker's
 * heartbeat moved since the last ping: a loop stuck in a handler stops its
 * heartbeat timer, the pings stop, and systemd restarts the service.
 */
static void on_watchdog(uv_timer_t *t)
{
	server *srv = t->data;
	unsigned stuck = srv->n_workers;
	for (unsigned i = 0; i < srv->n_workers; i++) {
		uint64_t hb =
			atomic_load_explicit(&srv->workers[i].heartbeat, memory_order_relaxed);
		if (hb == srv->hb_seen[i]) {
			stuck = i;
			break;
		}
	}
	if (stuck < srv->n_workers) {
		if (!srv->watchdog_late)
			log_warn(
				"worker %u has not run its loop for over %llu ms; withholding the watchdog ping",
				stuck, (unsigned long long)(srv->watchdog_usec / 2000));
		srv->watchdog_late = 1;
		return;
	}
	for (unsigned i = 0; i < srv->n_workers; i++)
		srv->hb_seen[i] =
			atomic_load_explicit(&srv->workers[i].heartbeat, memory_order_relaxed);
	if (srv->watchdog_late)
		log_info("every worker loop is running again; watchdog pings resume");
	srv->watchdog_late = 0;
	sd_notifyf("WATCHDOG=1");
}

/* Resident set size of this process in bytes, or 0. */
static size_t rss_bytes(void)
{
	char buf[128];
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	unsigned long size, resident;
	if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
		return 0;
	return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/*
 * glibc keeps what a burst freed (per-thread arenas and the main heap
 * rarely shrink), so a daemon that once held 1 GiB for slow readers looks
 * that big for good. Every TRIM_INTERVAL_MS the acceptor compares RSS with
 * what malloc has in use, and when RSS is well above it, asks glibc to
 * return the free pages of every arena (malloc_trim).
 */
static void on_trim(uv_timer_t *t)
{
	server *srv = t->data;
	struct mallinfo2 mi = mallinfo2();
	/* HTTP bodies' buffers are mapped by httpbuf, not malloc. */
	size_t inuse = mi.uordblks + mi.hblkhd + httpbuf_mapped_total();
	size_t rss = rss_bytes();
	if (rss > 2 * inuse + TRIM_SLACK) {
		malloc_trim(0);
		srv->trims++;
		log_debug("memory: RSS %zu KiB, %zu KiB in use: trimmed to %zu KiB", rss / 1024,
			  inuse / 1024, rss_bytes() / 1024);
	}
}

/*
 * glibc adapts its thresholds to what it sees freed: after an mmapped
 * block of 16 MiB (a frame being read) is freed, blocks up to that size
 * come from the arenas, and free memory at a heap's top is kept up to
 * twice that, for good (RSS stayed at 4.4 times idle, 10 s after a burst
 * of 16 MiB frames). Fixed thresholds turn that off; on_trim hands back
 * the free pages inside the arenas after a burst.
 *
 * Blocks below MALLOC_MMAP_FROM (more than any frame or reply) come from
 * the arenas, so the buffer of a large reply (an HTTP body is collected
 * whole) reuses pages an earlier one faulted in. With 1 MiB, each such
 * buffer was mapped fresh and unmapped once sent: every 4 KiB page of
 * every body faulted in again, which on this project's VMs cost porterd
 * 6-8 ms of CPU per MiB (a GET of 1 MiB at 1 thread ran at 0.02x direct
 * libcurl; 0.27-0.74x with 32 MiB, porterd's CPU per GET 6.5-6.7 ->
 * 0.8-0.9 ms, in this change's bench_http runs).
 * Free space at a heap's top above MALLOC_TRIM_FROM still goes back at
 * once: malloc_trim does not shrink the top of a thread's arena, so a
 * higher value would keep a burst's memory (test_quotas' slow readers
 * kept 33 MiB against 11 idle with 64 MiB). HTTP bodies from 256 KiB up
 * are not malloc's (httpbuf.h keeps them a second for the next body), so
 * that does not make them fault in afresh.
 */
#define MALLOC_MMAP_FROM (32 * 1024 * 1024)
#define MALLOC_TRIM_FROM (4 * 1024 * 1024)

static void tune_malloc(void)
{
	if (!mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_FROM) ||
	    !mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_FROM))
		log_warn("memory: cannot set malloc's thresholds; RSS may stay high after bursts");
}

/* Lines a failed parse wrote to the memory stream go to the log. */
static void log_lines(char *text)
{
	char *save = NULL;
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		log_error("reload: %s", strncmp(l, "porterd: ", 9) == 0 ? l + 9 : l);
}

/* Logs each setting whose value differs between two generations. */
static void log_changes(const config *old, const config *nc)
{
	char *a = NULL, *b = NULL;
	size_t al = 0, bl = 0;
	FILE *fa = open_memstream(&a, &al), *fb = open_memstream(&b, &bl);
	if (fa)
		config_dump(old, fa);
	if (fb)
		config_dump(nc, fb);
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	if (a && b) {
		/* Both dumps list the same keys in the same order. */
		char *sa = NULL, *sb = NULL;
		char *la = strtok_r(a, "\n", &sa), *lb = strtok_r(b, "\n", &sb);
		for (; la && lb; la = strtok_r(NULL, "\n", &sa), lb = strtok_r(NULL, "\n", &sb))
			if (strcmp(la, lb) != 0)
				log_info("reload: %s (was %s)", lb,
					 strchr(la, '=') ? strchr(la, '=') + 2 : la);
	}
	free(a);
	free(b);
}

static void status_serving(server *srv)
{
	char where[160];
	describe_listener(srv, where, sizeof(where));
	sd_notifyf("READY=1\nSTATUS=Serving on %s with %u worker(s)%s", where, srv->n_workers,
		   srv->last_reload_failed ? "; the last reload failed (see the log)" : "");
}

/*
 * SIGHUP: builds a new generation from the file and the original flags,
 * and hands it to every worker through its inbox. A file with errors
 * changes nothing. Settings bound at start-up keep their running values.
 */
static void reload(server *srv)
{
	char *errs = NULL;
	size_t errlen = 0;
	struct timespec ts;
	config *nc = NULL;
	int rc = PORTER_E_NOMEM;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf("RELOADING=1\nSTATUS=Reloading the configuration\nMONOTONIC_USEC=%llu",
		   (unsigned long long)ts.tv_sec * 1000000ULL +
			   (unsigned long long)ts.tv_nsec / 1000);
	FILE *err = open_memstream(&errs, &errlen);
	nc = config_alloc();
	if (err && nc) {
		rc = config_parse_args(nc, srv->argc, srv->argv, err, err);
		if (rc == 0 && config_resolve(nc) < 0) {
			fprintf(err, "cannot work out the socket path\n");
			rc = PORTER_E_INVAL;
		}
	}
	if (err)
		fclose(err);
	if (rc != 0) {
		if (errs)
			log_lines(errs);
		log_error("reload failed; the running configuration stays in effect");
		srv->reload_failures++;
		srv->last_reload_failed = 1;
		config_unref(nc);
		goto out;
	}

	if (strcmp(nc->socket_path, srv->cfg->socket_path) != 0) {
		log_warn("reload: socket changed to %s; restart porterd to apply it",
			 nc->socket_path);
		memcpy(nc->socket_path, srv->cfg->socket_path, sizeof(nc->socket_path));
	}
	if (nc->workers != srv->cfg->workers) {
		log_warn("reload: workers changed to %u; restart porterd to apply it", nc->workers);
		nc->workers = srv->cfg->workers;
	}
	/* The file roots, their owners and the mode ceilings are built once
	 * at start (fsroot_init); a reload that changed them keeps the
	 * running ones and says so, rather than logging them as applied. */
	static const char *const start_only[] = {"file-roots", "file-resolve", "file-max-mode",
						 "file-max-dir-mode", "file-loop-fast-path"};
	for (size_t i = 0; i < sizeof(start_only) / sizeof(start_only[0]); i++) {
		int kept = config_keep_running(nc, srv->cfg, start_only[i]);
		if (kept == 1)
			log_warn("reload: %s changed; restart porterd to apply it", start_only[i]);
		else if (kept < 0)
			log_error("reload: %s: %s; the running value stays", start_only[i],
				  porter_strerror(kept));
	}
	nc->check_only = 0;
	nc->print_example = 0;
	log_changes(srv->cfg, nc);
	log_set_level(nc->log_level);
	for (unsigned i = 0; i < srv->n_workers; i++)
		worker_post_config(&srv->workers[i], nc);
	config_unref(srv->cfg);
	srv->cfg = nc;
	srv->reloads++;
	srv->last_reload_failed = 0;
	listen_apply_access(srv);
	metrics_reconfigure(srv, &srv->metrics, nc);
	log_info("configuration reloaded from %s",
		 nc->config_file ? nc->config_file : "built-in defaults and flags");
out:
	free(errs);
	status_serving(srv);
}

static void on_hup(uv_signal_t *s, int signum)
{
	(void)signum;
	reload(s->data);
}

/* Test hook: SIGUSR2 stalls worker 0's loop for 3 s. */
static void on_test_signal(uv_signal_t *s, int signum)
{
	server *srv = s->data;
	(void)signum;
	worker_post_stall(&srv->workers[0], 3000);
}

static void close_remaining(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int server_run(config *cfg, int argc, char **argv)
{
	server srv;
	int status = 1;
	unsigned started = 0;
	char where[160];

	memset(&srv, 0, sizeof(srv));
	srv.cfg = config_ref(cfg);
	srv.argc = argc;
	srv.argv = argv;
	srv.listen_fd = -1;
	srv.lock_fd = -1;
	srv.reserve_fd = -1;
	srv.start_ms = uv_hrtime() / 1000000;
	const char *hooks = getenv("PORTER_TEST_HOOKS");
	srv.test_hooks = hooks && strcmp(hooks, "1") == 0;

	if (uv_loop_init(&srv.loop) < 0) {
		log_error("cannot create the acceptor loop");
		config_unref(srv.cfg);
		return 1;
	}
	/* Before the socket listens: a client may connect, and a supervisor
	 * may send SIGTERM, as soon as it does, while the workers are still
	 * starting. Caught from here on, a signal waits for the loop to run
	 * (everything started by then) instead of killing porterd outright
	 * with its socket file left behind. */
	uv_signal_init(&srv.loop, &srv.sig_term);
	uv_signal_init(&srv.loop, &srv.sig_int);
	srv.sig_term.data = srv.sig_int.data = &srv;
	uv_signal_start(&srv.sig_term, on_signal, SIGTERM);
	uv_signal_start(&srv.sig_int, on_signal, SIGINT);
	uv_signal_init(&srv.loop, &srv.sig_hup);
	srv.sig_hup.data = &srv;
	uv_signal_start(&srv.sig_hup, on_hup, SIGHUP);
	raise_fd_limit(&srv);
	tune_malloc(); /* before any worker thread has an arena */
	/* Taken before anything else can use the last descriptors. */
	srv.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (sd_notify_init() < 0)
		goto out;
	int afd = sd_activation_fd();
	if (afd < 0)
		goto out;
	if (afd > 0) {
		srv.listen_fd = afd;
		srv.activated = 1;
		/* For connections made from now on; those systemd queued
		 * before porterd started get it at accept. */
		srv.fds_refused = listen_refuse_fds(afd, 1) == 0;
	} else if (listen_open(&srv) < 0) {
		goto out;
	}

	srv.watchdog_usec = sd_watchdog_usec();
	srv.n_workers = cfg->workers;
	srv.workers = calloc(srv.n_workers, sizeof(*srv.workers));
	srv.hb_seen = calloc(srv.n_workers, sizeof(*srv.hb_seen));
	if (!srv.workers || !srv.hb_seen) {
		log_error("out of memory");
		goto out;
	}
	/* Workers beat four times per ping interval, so a healthy loop
	 * always has moved by the next tick. */
	unsigned beat_ms = 0;
	if (srv.watchdog_usec) {
		uint64_t b = srv.watchdog_usec / 8000;
		beat_ms = b < 1 ? 1 : b > 60000 ? 60000 : (unsigned)b;
	}
	for (; started < srv.n_workers; started++) {
		worker *w = &srv.workers[started];
		if (worker_init(w, &srv, cfg, started, beat_ms) < 0) {
			log_error("cannot start worker %u", started);
			goto out;
		}
		if (worker_start(w) < 0) {
			log_error("cannot start worker %u", started);
			goto out;
		}
	}

	uv_poll_init(&srv.loop, &srv.listen_poll, srv.listen_fd);
	srv.listen_poll.data = &srv;
	uv_timer_init(&srv.loop, &srv.accept_pause);
	srv.accept_pause.data = &srv;
	if (srv.test_hooks) {
		log_warn(
			"PORTER_TEST_HOOKS=1: test hooks enabled (SIGUSR2 stalls worker 0); never use this in production");
		uv_signal_init(&srv.loop, &srv.sig_test);
		srv.sig_test.data = &srv;
		uv_signal_start(&srv.sig_test, on_test_signal, SIGUSR2);
	}
	srv.turn_cpu = loopcpu_start(&srv.loop, -1);
	uv_timer_init(&srv.loop, &srv.trim);
	srv.trim.data = &srv;
	uv_timer_start(&srv.trim, on_trim, TRIM_INTERVAL_MS, TRIM_INTERVAL_MS);
	uv_timer_init(&srv.loop, &srv.watchdog);
	srv.watchdog.data = &srv;
	if (srv.watchdog_usec) {
		uint64_t half = srv.watchdog_usec / 2000;
		uv_timer_start(&srv.watchdog, on_watchdog, half ? half : 1, half ? half : 1);
	}
	if (metrics_start(&srv, cfg, &srv.metrics) < 0) {
		server_stop(&srv);
		uv_run(&srv.loop, UV_RUN_DEFAULT);
		status = 1;
		goto out;
	}
	uv_poll_start(&srv.listen_poll, UV_READABLE, on_listen_readable);

	describe_listener(&srv, where, sizeof(where));
	log_info("porterd %s listening on %s with %u worker(s)%s", PORTER_VERSION_STRING, where,
		 srv.n_workers, srv.watchdog_usec ? ", watchdog on" : "");
	/* The socket is listening and polled, and every worker runs: clients
	 * connecting from now on are served. */
	status_serving(&srv);
	uv_run(&srv.loop, UV_RUN_DEFAULT);
	status = 0;

out:
	if (!srv.stopping) {
		/* Start-up failed part-way: stop what did start. */
		srv.stopping = 1;
		listen_remove(&srv);
		for (unsigned i = 0; i < started; i++)
			worker_post_stop(&srv.workers[i]);
		status = 1;
	}
	for (unsigned i = 0; i < started; i++)
		if (worker_join(&srv.workers[i]) != 0)
			status = 1;
	for (unsigned i = 0; i < started; i++)
		worker_destroy(&srv.workers[i]);
	/* The workers are gone: close what was kept open for them (the
	 * signal handles). */
	loopcpu_close(srv.turn_cpu);
	srv.turn_cpu = NULL;
	uv_walk(&srv.loop, close_remaining, NULL);
	uv_run(&srv.loop, UV_RUN_DEFAULT);
	free(srv.workers);
	free(srv.hb_seen);
	if (srv.listen_fd >= 0)
		close(srv.listen_fd);
	sd_notify_close();
	config_unref(srv.cfg);
	int rc = uv_loop_close(&srv.loop);
	if (rc != 0) {
		log_error("acceptor: uv_loop_close: %s", uv_strerror(rc));
		status = 1;
	}
	if (srv.lock_fd >= 0)
		close(srv.lock_fd);
	if (srv.reserve_fd >= 0)
		close(srv.reserve_fd);
	if (status == 0)
		log_info("porterd stopped cleanly");
	return status;
}
