/* server - acceptor, hand-off, signals and shutdown; see server.h. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clients.h"
#include "frame.h"
#include "log.h"
#include "metrics.h"
#include "porter_errors.h"
#include "porter_version.h"
#include "porter.pb-c.h"
#include "sd.h"
#include "sockpath.h"

/* Connections accepted per wake-up before other handles get a turn. */
#define ACCEPT_BATCH 64
/* Pause after running out of descriptors, so the loop does not spin. */
#define ACCEPT_PAUSE_MS 100

/* mkdir -p with mode 0700 for every directory it creates. Returns 1 when
 * it created `dir` itself, 0 when that existed, or -errno. */
static int make_dirs(const char *dir)
{
	char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
	size_t n = strlen(dir);
	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, dir, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) == 0)
		return 1;
	return errno == EEXIST ? 0 : -errno;
}

/*
 * The socket's directory must exist. When it is the default location (in a
 * shared /tmp), it must also be ours and writable by us alone, or another
 * user could have planted it to intercept clients. `*own_dir` is set when
 * the directory is ours to open up for allowed peers (we created it, or it
 * is the default one we just checked); its mode is set by apply_access.
 */
static int prepare_dir(const char *path, int must_be_private, int *own_dir)
{
	char copy[sizeof(((struct sockaddr_un *)0)->sun_path)];
	snprintf(copy, sizeof(copy), "%s", path);
	const char *dir = dirname(copy);
	struct stat st;

	int rc = make_dirs(dir);
	*own_dir = 0;
	if (rc < 0) {
		log_error("cannot create directory %s: %s", dir, strerror(-rc));
		return -1;
	}
	if (lstat(dir, &st) < 0) {
		log_error("cannot stat %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_error("%s is not a directory", dir);
		return -1;
	}
	/* Group and others may search it (apply_access opens it up that far
	 * for allowed peers), never write to it. */
	if (must_be_private && (st.st_uid != geteuid() || (st.st_mode & 022))) {
		log_error(
			"refusing to listen in %s: not a directory of uid %u that only it can write to (owner %u, mode %03o)",
			dir, (unsigned)geteuid(), (unsigned)st.st_uid,
			(unsigned)(st.st_mode & 0777));
		return -1;
	}
	*own_dir = (rc == 1 || must_be_private) && st.st_uid == geteuid();
	return 0;
}

/* Who the socket file (and a directory porterd owns for it) lets connect:
 * the kernel's permission check comes first, the allow-lists are checked at
 * accept. A socket cannot be opened to a list of uids, so any other uid
 * opens it to everyone and accept refuses the unlisted with a clear
 * error; one group alone is expressed exactly with the file's group. */
typedef struct sock_access {
	mode_t sock_mode;
	mode_t dir_mode;
	gid_t group; /* (gid_t)-1: left as it is */
} sock_access;

static sock_access access_for(const config *cfg)
{
	int other_uid = cfg->allow_any_uid;
	for (size_t i = 0; i < cfg->n_allow_uids; i++)
		if (cfg->allow_uids[i] != geteuid())
			other_uid = 1;
	if (!other_uid && cfg->n_allow_gids == 0)
		return (sock_access){0600, 0700, (gid_t)-1};
	if (!other_uid && cfg->n_allow_gids == 1)
		return (sock_access){0660, 0710, cfg->allow_gids[0]};
	return (sock_access){0666, 0711, (gid_t)-1};
}

/* Sets mode (and group) of `path` if it is still the file (dev, ino) we
 * made. 0, or -1 with errno. */
static int set_access(const char *path, dev_t dev, ino_t ino, mode_t mode, gid_t group)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return -1;
	if (st.st_dev != dev || st.st_ino != ino) {
		errno = ESTALE;
		return -1;
	}
	if (group != (gid_t)-1 && st.st_gid != group && chown(path, (uid_t)-1, group) < 0)
		return -1;
	return chmod(path, mode);
}

/* Warns when an ancestor of the socket keeps the allowed peers out (a
 * private $XDG_RUNTIME_DIR does): the mode of the socket alone is not
 * enough for them to reach it. */
static void check_reachable(const char *dir, const sock_access *a)
{
	char buf[CONFIG_PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", dir);
	for (;;) {
		char *slash = strrchr(buf, '/');
		if (!slash)
			return;
		*(slash == buf ? slash + 1 : slash) = '\0';
		struct stat st;
		if (stat(buf, &st) == 0 && !(st.st_mode & S_IXOTH) &&
		    !(a->group != (gid_t)-1 && st.st_gid == a->group && (st.st_mode & S_IXGRP))) {
			log_warn(
				"allow-uid/allow-gid admit other users, but %s (mode %03o) keeps them from reaching the socket",
				buf, (unsigned)(st.st_mode & 0777));
			return;
		}
		if (slash == buf)
			return;
	}
}

/* Opens the socket we created (and its directory, if ours) to the peers
 * the current allow-lists name, or closes it back to our uid. At start-up
 * and after every reload; never on a socket from systemd. */
static void apply_access(server *srv)
{
	sock_access a = access_for(srv->cfg);
	const char *path = srv->cfg->socket_path;
	char group[32] = "";
	if (!srv->created_socket)
		return;
	if (set_access(path, srv->sock_dev, srv->sock_ino, a.sock_mode, a.group) < 0 &&
	    a.group != (gid_t)-1) {
		/* We may only give a file a group we are in: fall back to
		 * the open mode, where accept still checks the group. */
		log_warn(
			"cannot give %s group %u (%s); opening it to every uid, accept checks the group",
			path, (unsigned)a.group, strerror(errno));
		a = (sock_access){0666, 0711, (gid_t)-1};
		set_access(path, srv->sock_dev, srv->sock_ino, 0666, a.group);
	}
	if (srv->own_dir) {
		struct stat st;
		if (lstat(srv->sock_dir, &st) < 0 ||
		    set_access(srv->sock_dir, st.st_dev, st.st_ino, a.dir_mode, a.group) < 0)
			log_warn("cannot set the mode of %s: %s", srv->sock_dir, strerror(errno));
	}
	if (a.sock_mode != 0600)
		check_reachable(path, &a);
	if (a.group != (gid_t)-1)
		snprintf(group, sizeof(group), ", group %u", (unsigned)a.group);
	log_info("socket %s: mode %04o%s%s%04o", path, (unsigned)a.sock_mode, group,
		 srv->own_dir ? ", directory mode " : "", srv->own_dir ? (unsigned)a.dir_mode : 0);
}

/*
 * Replaces a stale socket file left by a dead daemon; refuses to touch a
 * live one or anything that is not a socket.
 */
static int clear_stale(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		log_error("%s exists and is not a socket; not replacing it", path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	int err = errno;
	close(fd);
	if (live) {
		log_error("another daemon is listening on %s", path);
		return -1;
	}
	if (err != ECONNREFUSED && err != ENOENT) {
		log_error("cannot probe %s: %s", path, strerror(err));
		return -1;
	}
	log_info("removing stale socket %s", path);
	if (unlink(path) < 0 && errno != ENOENT) {
		log_error("cannot remove stale socket %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int open_listener(server *srv)
{
	const config *cfg = srv->cfg;
	const char *path = cfg->socket_path;
	char def[sizeof(cfg->socket_path)];
	char lock_path[sizeof(cfg->socket_path) + 8];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;

	int is_default = sockpath_default(def, sizeof(def)) > 0 && strcmp(def, path) == 0;
	if (prepare_dir(path, is_default, &srv->own_dir) < 0)
		return -1;
	char copy[sizeof(cfg->socket_path)];
	snprintf(copy, sizeof(copy), "%s", path);
	snprintf(srv->sock_dir, sizeof(srv->sock_dir), "%s", dirname(copy));

	/* The lock makes "is a daemon alive here?" race-free between two
	 * daemons starting at once; it is held until the process exits. */
	snprintf(lock_path, sizeof(lock_path), "%s.lock", path);
	srv->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (srv->lock_fd < 0) {
		log_error("cannot open %s: %s", lock_path, strerror(errno));
		return -1;
	}
	if (flock(srv->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		log_error("another daemon owns %s (%s is locked)", path, lock_path);
		return -1;
	}
	if (clear_stale(path) < 0)
		return -1;

	srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->listen_fd < 0) {
		log_error("socket: %s", strerror(errno));
		return -1;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	/* Created 0600 from the start: no window where others could connect. */
	mode_t old = umask(0177);
	int rc = bind(srv->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0) {
		log_error("cannot bind %s: %s", path, strerror(errno));
		return -1;
	}
	srv->created_socket = 1;
	if (chmod(path, 0600) < 0 || stat(path, &st) < 0) {
		log_error("cannot set the mode of %s: %s", path, strerror(errno));
		return -1;
	}
	srv->sock_dev = st.st_dev;
	srv->sock_ino = st.st_ino;
	apply_access(srv);
	if (listen(srv->listen_fd, SOMAXCONN) < 0) {
		log_error("listen: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Removes the socket file only if it is still the one we created. */
static void remove_socket(server *srv)
{
	struct stat st;
	if (!srv->created_socket)
		return;
	srv->created_socket = 0;
	if (stat(srv->cfg->socket_path, &st) == 0 && st.st_dev == srv->sock_dev &&
	    st.st_ino == srv->sock_ino)
		unlink(srv->cfg->socket_path);
}

/* Tells a refused peer why before closing, so its call fails clearly. */
static void refuse(server *srv, int fd, uid_t uid)
{
	char text[96];
	uint8_t *buf;
	size_t len;
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;

	snprintf(text, sizeof(text), "uid %u is not allowed to use this daemon", (unsigned)uid);
	resp.status = PORTER_E_DENIED;
	resp.message = text;
	if (frame_pack(&resp.base, 4096, &buf, &len) == 0) {
		/* A fresh socket's buffer has room; never block for this. */
		ssize_t w = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)w;
		free(buf);
	}
	close(fd);
	srv->denied++;
	log_info("refused a connection from uid %u", (unsigned)uid);
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
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			log_warn("accept: %s; pausing accepts for %d ms", strerror(errno),
				 ACCEPT_PAUSE_MS);
			uv_poll_stop(&srv->listen_poll);
			uv_timer_start(&srv->accept_pause, on_accept_resume, ACCEPT_PAUSE_MS, 0);
			return;
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
		if (worker_handoff(least_loaded(srv), fd, &peer) < 0)
			close(fd);
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
	if (srv->test_hooks)
		uv_close((uv_handle_t *)&srv->sig_test, NULL);
	metrics_close(srv->metrics);
	srv->metrics = NULL;
	remove_socket(srv);
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
	apply_access(srv);
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
	srv.start_ms = uv_hrtime() / 1000000;
	const char *hooks = getenv("PORTER_TEST_HOOKS");
	srv.test_hooks = hooks && strcmp(hooks, "1") == 0;

	if (uv_loop_init(&srv.loop) < 0) {
		log_error("cannot create the acceptor loop");
		config_unref(srv.cfg);
		return 1;
	}
	if (sd_notify_init() < 0)
		goto out;
	int afd = sd_activation_fd();
	if (afd < 0)
		goto out;
	if (afd > 0) {
		srv.listen_fd = afd;
		srv.activated = 1;
	} else if (open_listener(&srv) < 0) {
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
	uv_signal_init(&srv.loop, &srv.sig_term);
	uv_signal_init(&srv.loop, &srv.sig_int);
	srv.sig_term.data = srv.sig_int.data = &srv;
	uv_signal_start(&srv.sig_term, on_signal, SIGTERM);
	uv_signal_start(&srv.sig_int, on_signal, SIGINT);
	uv_signal_init(&srv.loop, &srv.sig_hup);
	srv.sig_hup.data = &srv;
	uv_signal_start(&srv.sig_hup, on_hup, SIGHUP);
	if (srv.test_hooks) {
		log_warn(
			"PORTER_TEST_HOOKS=1: test hooks enabled (SIGUSR2 stalls worker 0); never use this in production");
		uv_signal_init(&srv.loop, &srv.sig_test);
		srv.sig_test.data = &srv;
		uv_signal_start(&srv.sig_test, on_test_signal, SIGUSR2);
	}
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
		remove_socket(&srv);
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
	if (status == 0)
		log_info("porterd stopped cleanly");
	return status;
}
