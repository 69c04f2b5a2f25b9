/*
 * Integration tests of porterd under a service manager: sd_notify (READY,
 * STATUS, RELOADING, STOPPING, WATCHDOG, and the watchdog going quiet while
 * a worker loop is stalled), socket activation through
 * systemd-socket-activate, rejected activation descriptors, and SIGHUP
 * reload. The test binds its own notification socket, as systemd would.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "tenant.h"
#include "porter.h"
#include "porter.pb-c.h"
#include "rawc.h"

/* ---- the notification socket ---- */

static int notify_fd = -1;
static char notify_path[108];

/* Binds a datagram socket; `abstract` picks "@name" over a path in `dir`. */
static void notify_open(int abstract, const char *dir)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t len;
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(notify_fd, 0);
	if (abstract) {
		snprintf(notify_path, sizeof(notify_path), "@porter-test-notify-%d", (int)getpid());
		memcpy(sa.sun_path, notify_path, strlen(notify_path));
		sa.sun_path[0] = '\0';
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(notify_path));
	} else {
		snprintf(notify_path, sizeof(notify_path), "%s/notify", dir);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", notify_path);
		len = sizeof(sa);
	}
	ck_assert_int_eq(bind(notify_fd, (struct sockaddr *)&sa, len), 0);
}

static void notify_close(void)
{
	close(notify_fd);
	notify_fd = -1;
	if (notify_path[0] == '/')
		unlink(notify_path);
}

/* One datagram within timeout_ms into buf (NUL-terminated); 0 on timeout. */
static int notify_recv(char *buf, size_t len, int timeout_ms)
{
	struct pollfd p = {.fd = notify_fd, .events = POLLIN};
	if (timeout_ms < 0 || poll(&p, 1, timeout_ms) <= 0)
		return 0;
	ssize_t n = recv(notify_fd, buf, len - 1, 0);
	if (n < 0)
		return 0;
	buf[n] = '\0';
	return 1;
}

/* True when `line` is one of msg's newline-separated assignments. */
static int has_line(const char *msg, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = msg; p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return 1;
	}
	return 0;
}

/* Waits for a datagram with assignment `line`; its text goes to `out`. */
static int notify_wait(const char *line, int timeout_ms, char *out, size_t outlen)
{
	long long until = th_now_ms() + timeout_ms;
	char buf[1024];
	while (notify_recv(buf, sizeof(buf), (int)(until - th_now_ms()))) {
		if (has_line(buf, line)) {
			if (out)
				snprintf(out, outlen, "%s", buf);
			return 1;
		}
	}
	return 0;
}

/* WATCHDOG=1 datagrams during the next `ms`. */
static int count_watchdog(int ms)
{
	long long until = th_now_ms() + ms;
	char buf[1024];
	int n = 0;
	while (notify_recv(buf, sizeof(buf), (int)(until - th_now_ms())))
		if (has_line(buf, "WATCHDOG=1"))
			n++;
	return n;
}

static int file_contains(const char *path, const char *needle)
{
	char buf[65536];
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

static int wait_log(const th_daemon *d, const char *needle, int timeout_ms)
{
	long long until = th_now_ms() + timeout_ms;
	while (th_now_ms() < until) {
		if (file_contains(d->log, needle))
			return 1;
		usleep(10000);
	}
	return 0;
}

/* ---- notify and watchdog ---- */

START_TEST(test_notify_and_watchdog)
{
	th_daemon d;
	char msg[1024];
	const char *args[] = {"--workers", "2", NULL};

	notify_open(1, NULL);
	setenv("NOTIFY_SOCKET", notify_path, 1);
	setenv("WATCHDOG_USEC", "200000", 1); /* a ping every 100 ms */
	setenv("PORTER_TEST_HOOKS", "1", 1);
	ck_assert_int_eq(th_daemon_start(&d, args), 0);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("PORTER_TEST_HOOKS");

	ck_assert_msg(notify_wait("READY=1", 5000, msg, sizeof(msg)), "no READY=1");
	ck_assert_msg(strstr(msg, "STATUS=Serving on ") && strstr(msg, "with 2 worker(s)"),
		      "READY without STATUS: %s", msg);
	ck_assert_int_eq(porter_ping("x", 1, 0, 2000), 0);

	/* Healthy: about ten pings a second (fewer on a loaded machine). */
	int healthy = count_watchdog(1000);
	ck_assert_msg(healthy >= 3, "only %d watchdog pings in 1 s", healthy);

	/* Stall worker 0 for 3 s: the pings stop... */
	ck_assert_int_eq(kill(d.pid, SIGUSR2), 0);
	ck_assert(wait_log(&d, "stalling the loop", 2000));
	count_watchdog(300); /* a tick may have seen the last beat */
	int stalled = count_watchdog(1500);
	ck_assert_msg(stalled == 0, "%d watchdog pings while a loop was stalled", stalled);
	ck_assert(file_contains(d.log, "withholding the watchdog ping"));

	/* ...and resume when the loop runs again. */
	ck_assert(wait_log(&d, "stall over", 3000));
	/* About twenty in 2 s; a loaded machine may delay some, not all. */
	int resumed = count_watchdog(2000);
	ck_assert_msg(resumed >= 2, "only %d watchdog pings after the stall", resumed);

	/* SIGHUP: RELOADING, then READY again. */
	ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
	ck_assert_msg(notify_wait("RELOADING=1", 3000, msg, sizeof(msg)), "no RELOADING=1");
	ck_assert(strstr(msg, "MONOTONIC_USEC="));
	ck_assert_msg(notify_wait("READY=1", 3000, NULL, 0), "no READY=1 after reload");

	/* SIGTERM: STOPPING=1 with a status, then a clean exit. Worker 0 is
	 * stalled meanwhile, so the drain is still going when a second
	 * SIGTERM arrives: it must be caught, not fatal. */
	ck_assert_int_eq(kill(d.pid, SIGUSR2), 0);
	ck_assert(wait_log(&d, "stalling the loop for 3000 ms", 2000));
	ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
	ck_assert_msg(notify_wait("STOPPING=1", 5000, msg, sizeof(msg)), "no STOPPING=1");
	ck_assert(strstr(msg, "STATUS=Stopping"));
	usleep(200000);
	ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
	int status;
	ck_assert_int_eq(waitpid(d.pid, &status, 0), d.pid);
	d.pid = 0;
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	th_daemon_cleanup(&d);
	notify_close();
}
END_TEST

/* Without NOTIFY_SOCKET nothing is sent and nothing breaks; a WATCHDOG_PID
 * naming another process turns the watchdog off. */
START_TEST(test_watchdog_pid_other)
{
	th_daemon d;
	notify_open(1, NULL);
	setenv("NOTIFY_SOCKET", notify_path, 1);
	setenv("WATCHDOG_USEC", "200000", 1);
	setenv("WATCHDOG_PID", "1", 1);
	ck_assert_int_eq(th_daemon_start(&d, NULL), 0);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	ck_assert(notify_wait("READY=1", 5000, NULL, 0));
	ck_assert_int_eq(count_watchdog(600), 0);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
	notify_close();
}
END_TEST

/* ---- socket activation ---- */

/*
 * Starts systemd-socket-activate listening on `sock` with `args` (its own
 * options, then the porterd command line), stderr into `logp`. It binds
 * and listens, then on the first connection execs porterd with LISTEN_FDS=1
 * and LISTEN_PID set to porterd's pid.
 */
static pid_t spawn_activated(const char *sock, const char *logp, const char *const *args)
{
	const char *argv[32];
	int n = 0;
	argv[n++] = "systemd-socket-activate";
	argv[n++] = "-l";
	argv[n++] = sock;
	for (; *args && n < 31; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	pid_t parent = getpid();
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		dup2(fd, STDERR_FILENO);
		dup2(fd, STDOUT_FILENO);
		alarm(120);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* The first ping through an activated socket: systemd-socket-activate
 * binds before it listens, so "unreachable" is retried for a while. */
static int first_ping(const char *sock)
{
	long long until = th_now_ms() + 10000;
	int rc;
	setenv("PORTER_SOCKET", sock, 1);
	while ((rc = porter_ping("first", 5, 0, 10000)) == PORTER_E_UNREACHABLE &&
	       th_now_ms() < until) {
		porter_thread_disconnect();
		usleep(10000);
	}
	return rc;
}

/* A raw connection to `sock`, made as soon as systemd-socket-activate
 * listens there (before porterd runs: this one starts it). */
static int connect_early(const char *sock)
{
	int fd = -1;
	for (long long until = th_now_ms() + 10000; fd < 0 && th_now_ms() < until;)
		if ((fd = th_rc_connect(sock)) < 0)
			usleep(10000);
	ck_assert_int_ge(fd, 0);
	return fd;
}

START_TEST(test_socket_activation)
{
	char dir[] = "/tmp/porter-act-XXXXXX";
	char sock[128], unused[128], logp[128], lockp[140];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/act.sock", dir);
	snprintf(unused, sizeof(unused), "%s/unused.sock", dir);
	snprintf(logp, sizeof(logp), "%s/porterd.log", dir);
	snprintf(lockp, sizeof(lockp), "%s.lock", sock);
	notify_open(0, dir);

	char env_notify[160];
	snprintf(env_notify, sizeof(env_notify), "NOTIFY_SOCKET=%s", notify_path);
	const char *args[] = {"-E",   env_notify,  PORTERD_PATH, "--socket",
			      unused, "--workers", "2",          NULL};
	pid_t pid = spawn_activated(sock, logp, args);
	/* systemd-socket-activate starts porterd on the first connection,
	 * which then waits in the backlog until porterd accepts it. That
	 * one is made before porterd could set anything on the socket. */
	int early = connect_early(sock);
	struct stat st;
	ck_assert_int_eq(first_ping(sock), 0);
	char msg[1024];
	ck_assert_msg(notify_wait("READY=1", 10000, msg, sizeof(msg)), "no READY=1");
	ck_assert_msg(strstr(msg, "passed by systemd"), "status: %s", msg);

	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(porter_ping("act", 3, 0, 2000), 0);
	porter_thread_disconnect();

	/* Descriptors from clients are refused (test_trust_wire says why)
	 * on systemd's socket too: on a connection made before porterd
	 * started (set at accept) and on one made after (inherited from the
	 * listener). */
	int late = th_rc_connect(sock);
	ck_assert_int_ge(late, 0);
	ck_assert_int_eq(th_rc_send_fd(early, STDIN_FILENO), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(th_rc_send_fd(late, STDIN_FILENO), -1);
	ck_assert_int_eq(errno, EPERM);
	close(early);
	close(late);

	/* porterd neither created its own socket nor locked or touched the
	 * activated one. */
	ck_assert_int_ne(stat(unused, &st), 0);
	ck_assert_int_ne(stat(lockp, &st), 0);

	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert(file_contains(logp, "listening on "));
	ck_assert(file_contains(logp, "act.sock (passed by systemd)"));
	ck_assert(file_contains(logp, "stopped cleanly"));
	/* The socket belongs to systemd: it is still there after porterd. */
	ck_assert_int_eq(lstat(sock, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));

	notify_close();
	unlink(sock);
	unlink(logp);
	rmdir(dir);
}
END_TEST

/*
 * A connection made while porterd is not running (here the one that
 * starts it) could send a descriptor before porterd set SO_PASSRIGHTS on
 * systemd's socket: one whose release waits (a socket lingering 30 s)
 * froze the worker that read it, and the first ping timed out. porterd
 * closes such a connection unread, on a thread of its own.
 */
START_TEST(test_activation_early_descriptor)
{
	char dir[] = "/tmp/porter-act-XXXXXX";
	char sock[128], unused[128], logp[128];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/act.sock", dir);
	snprintf(unused, sizeof(unused), "%s/unused.sock", dir);
	snprintf(logp, sizeof(logp), "%s/porterd.log", dir);
	const char *args[] = {PORTERD_PATH, "--socket", unused, "--workers", "1", NULL};
	pid_t pid = spawn_activated(sock, logp, args);
	int early = connect_early(sock);
	int keep[2];
	int s = th_rc_lingering_socket(30, keep);
	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(th_rc_send_fd(early, s), 0);
	close(s); /* the one in flight is the last */
	long long t0 = th_now_ms();
	int rc = first_ping(sock);
	ck_assert_msg(rc == 0, "the first ping got %s after %lld ms", porter_error_name(rc),
		      th_now_ms() - t0);
	porter_thread_disconnect();
	ck_assert(file_contains(logp, "sent it descriptors: closed unread"));
	close(keep[0]);
	close(keep[1]);
	close(early);
	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	unlink(sock);
	unlink(logp);
	rmdir(dir);
}
END_TEST

/* With a socket from systemd, an explicit allow-uid still applies. */
START_TEST(test_activation_allow_uid)
{
	char dir[] = "/tmp/porter-act-XXXXXX";
	char sock[128], logp[128], uid[32];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/act.sock", dir);
	snprintf(logp, sizeof(logp), "%s/porterd.log", dir);
	snprintf(uid, sizeof(uid), "%u", (unsigned)getuid() + 4242);
	const char *args[] = {PORTERD_PATH, "--allow-uid", uid, NULL};
	pid_t pid = spawn_activated(sock, logp, args);
	ck_assert_int_eq(first_ping(sock), PORTER_E_DENIED);
	porter_thread_disconnect();
	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert(file_contains(logp, "refused a connection from uid"));
	unlink(sock);
	unlink(logp);
	rmdir(dir);
}
END_TEST

/*
 * Runs porterd with descriptor 3 = `fd3` and LISTEN_FDS=1, LISTEN_PID set
 * to its own pid. Returns its exit status; its stderr goes to `logp`.
 */
static int run_with_fd3(int fd3, const char *logp)
{
	char sock[128];
	snprintf(sock, sizeof(sock), "%s.sock", logp);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		dup2(fd, STDERR_FILENO);
		if (fd3 != 3) {
			dup2(fd3, 3);
			close(fd3);
		}
		char spid[32];
		snprintf(spid, sizeof(spid), "%d", (int)getpid());
		setenv("LISTEN_PID", spid, 1);
		setenv("LISTEN_FDS", "1", 1);
		alarm(30);
		execl(PORTERD_PATH, PORTERD_PATH, "--socket", sock, (char *)NULL);
		_exit(127);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

START_TEST(test_activation_rejects_bad_fd)
{
	char logp[] = "/tmp/porter-badfd-XXXXXX";
	int lfd = mkstemp(logp);
	ck_assert_int_ge(lfd, 0);
	close(lfd);

	int file = open("/dev/null", O_RDONLY);
	ck_assert_int_eq(run_with_fd3(file, logp), 1);
	ck_assert(file_contains(logp, "descriptor 3 passed by systemd is not a socket"));
	close(file);

	int dgram = socket(AF_UNIX, SOCK_DGRAM, 0);
	ck_assert_int_eq(run_with_fd3(dgram, logp), 1);
	ck_assert(file_contains(logp, "not a listening AF_UNIX stream socket"));
	close(dgram);

	int notlistening = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(run_with_fd3(notlistening, logp), 1);
	ck_assert(file_contains(logp, "not a listening AF_UNIX stream socket"));
	close(notlistening);

	char sock[160];
	snprintf(sock, sizeof(sock), "%s.sock", logp);
	unlink(sock);
	unlink(logp);
}
END_TEST

/* ---- reload ---- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

/* max_inflight from the Hello reply of a fresh raw connection. */
static uint32_t hello_max_inflight(const char *path)
{
	int fd = th_raw_connect(path);
	frame_reader r;
	frame_reader_init(&r, 1 << 20);
	Porter__V1__Response *resp = th_raw_hello_reply(fd, &r, PORTER_PROTOCOL_VERSION);
	ck_assert_int_eq(resp->status, 0);
	ck_assert_int_eq(resp->body_case, PORTER__V1__RESPONSE__BODY_HELLO);
	uint32_t v = resp->hello->max_inflight;
	porter__v1__response__free_unpacked(resp, NULL);
	frame_reader_free(&r);
	close(fd);
	return v;
}

START_TEST(test_reload)
{
	th_daemon d;
	char conf[] = "/tmp/porter-reload-XXXXXX";
	int cfd = mkstemp(conf);
	ck_assert_int_ge(cfd, 0);
	close(cfd);
	write_file(conf, "log-level = info\nmax-inflight = 100\n");
	const char *args[] = {"--config", conf, NULL};
	ck_assert_int_eq(th_daemon_start(&d, args), 0);

	ck_assert_uint_eq(hello_max_inflight(d.socket), 100);
	ck_assert_int_eq(porter_ping("a", 1, 0, 2000), 0);
	porter_thread_disconnect();
	ck_assert(!file_contains(d.log, "accepted on worker"));

	/* Live: log level and max-inflight; workers needs a restart. */
	write_file(conf, "# reloaded\nlog-level = debug\nmax-inflight = 7\nworkers = 3\n"
			 "file-max-mode = 0600\n");
	ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
	ck_assert(wait_log(&d, "configuration reloaded from", 3000));
	ck_assert(file_contains(d.log, "workers changed to 3; restart porterd to apply it"));
	/* The file roots and mode ceilings are built at start: a reload
	 * says so instead of logging them as applied. */
	ck_assert(
		file_contains(d.log, "reload: file-max-mode changed; restart porterd to apply it"));
	ck_assert(!file_contains(d.log, "reload: file-max-mode = 0600"));
	ck_assert(file_contains(d.log, "reload: max-inflight = 7 (was 100)"));
	/* Each worker swaps its config through its inbox; a new connection
	 * may land on any of them, so try several. */
	for (int i = 0; i < 8; i++)
		ck_assert_uint_eq(hello_max_inflight(d.socket), 7);
	ck_assert(wait_log(&d, "accepted on worker", 2000));

	/* A file with errors changes nothing and names file, line and key. */
	write_file(conf, "log-level = info\n\nmax-inflight = many\n");
	ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
	ck_assert(wait_log(&d, "reload failed; the running configuration stays in effect", 3000));
	char where[200];
	snprintf(where, sizeof(where), "reload: %s:3: max-inflight: expected an integer", conf);
	ck_assert_msg(file_contains(d.log, where), "no '%s' in the log", where);
	for (int i = 0; i < 4; i++)
		ck_assert_uint_eq(hello_max_inflight(d.socket), 7);

	/* allow-uid changes live: another uid only, and we are refused. */
	char text[128];
	snprintf(text, sizeof(text), "log-level = debug\nallow-uid = %u\n",
		 (unsigned)getuid() + 4242);
	write_file(conf, text);
	ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
	long long until = th_now_ms() + 3000;
	while (!file_contains(d.log, "reload: allow-uid = ") && th_now_ms() < until)
		usleep(10000);
	ck_assert_int_eq(porter_ping("b", 1, 0, 2000), PORTER_E_DENIED);
	porter_thread_disconnect();
	write_file(conf, "log-level = debug\n");
	ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
	until = th_now_ms() + 3000;
	int rc;
	while ((rc = porter_ping("c", 1, 0, 2000)) != 0 && th_now_ms() < until) {
		porter_thread_disconnect();
		usleep(20000);
	}
	ck_assert_int_eq(rc, 0);
	porter_thread_disconnect();

	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
	unlink(conf);
}
END_TEST

/* True once the file `path` contains `needle`, looked at for up to 5 s
 * (the metrics file is rewritten every interval). */
static int file_shows(const char *path, const char *needle)
{
	long long until = th_now_ms() + 5000;
	while (th_now_ms() < until) {
		if (file_contains(path, needle))
			return 1;
		usleep(20000);
	}
	return 0;
}

/* A raw connection refused at accept: its only frame is the refusal,
 * sent before any Hello. Returns its message (owned by the caller). */
static char *refused_at_accept(const char *path, int status)
{
	int fd = th_raw_connect(path);
	frame_reader r;
	frame_reader_init(&r, 1 << 16);
	Porter__V1__Response *resp = th_raw_recv(fd, &r, 5000);
	ck_assert_msg(resp != NULL, "a connection over the quota was not refused");
	ck_assert_int_eq(resp->status, status);
	char *text = strdup(resp->message ? resp->message : "");
	porter__v1__response__free_unpacked(resp, NULL);
	frame_reader_free(&r);
	close(fd);
	return text;
}

/* Per-uid quotas change on reload (the connections a uid holds already
 * count against the new value), and the metrics show the ones in force
 * (porter_uid_limit). */
START_TEST(test_quotas_live_on_reload)
{
	th_daemon d;
	char conf[] = "/tmp/porter-quota-reload-XXXXXX";
	char dir[] = "/tmp/porter-quota-metrics-XXXXXX";
	char file[128];
	int cfd = mkstemp(conf);
	ck_assert_int_ge(cfd, 0);
	close(cfd);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/porter.prom", dir);
	write_file(conf, "log-level = info\nuid-max-connections = 3\nuid-max-inflight = 100\n");
	const char *args[] = {"--config", conf, "--metrics-file", file, "--metrics-interval",
			      "100",      NULL};
	ck_assert_int_eq(th_daemon_start(&d, args), 0);
	ck_assert(file_shows(file, "porter_uid_limit{resource=\"connections\"} 3\n"));
	ck_assert(file_shows(file, "porter_uid_limit{resource=\"inflight\"} 100\n"));
	ck_assert(file_shows(file, "porter_uid_limit{resource=\"sessions\"} 32\n"));

	int fds[5];
	frame_reader r;
	for (int i = 0; i < 3; i++) {
		fds[i] = th_raw_connect(d.socket);
		frame_reader_init(&r, 1 << 16);
		th_raw_hello(fds[i], &r, PORTER_PROTOCOL_VERSION, 0);
		frame_reader_free(&r);
	}
	char *text = refused_at_accept(d.socket, PORTER_E_BUSY);
	ck_assert_msg(strstr(text, "holds 3 connections") && strstr(text, "uid-max-connections"),
		      "refusal: %s", text);
	free(text);

	write_file(conf, "log-level = info\nuid-max-connections = 5\nuid-max-inflight = 7\n");
	ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
	ck_assert(wait_log(&d, "configuration reloaded from", 3000));
	for (int i = 3; i < 5; i++) {
		fds[i] = th_raw_connect(d.socket);
		frame_reader_init(&r, 1 << 16);
		th_raw_hello(fds[i], &r, PORTER_PROTOCOL_VERSION, 0);
		frame_reader_free(&r);
	}
	text = refused_at_accept(d.socket, PORTER_E_BUSY);
	ck_assert_msg(strstr(text, "holds 5 connections"), "refusal: %s", text);
	free(text);
	ck_assert(file_shows(file, "porter_uid_limit{resource=\"connections\"} 5\n"));
	ck_assert(file_shows(file, "porter_uid_limit{resource=\"inflight\"} 7\n"));

	for (int i = 0; i < 5; i++)
		close(fds[i]);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
	unlink(conf);
	unlink(file);
	rmdir(dir);
}
END_TEST

/* ---- metrics ---- */

/* One HTTP/1.1 GET on 127.0.0.1:port; the whole answer into buf. */
static void http_get(int port, const char *path, char *buf, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	char req[256];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
	ck_assert_int_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
	size_t got = 0;
	long long until = th_now_ms() + 5000;
	while (got < len - 1 && th_now_ms() < until) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t r = recv(fd, buf + got, len - 1 - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	close(fd);
}

/* Sum of `name{worker="N"} V` samples in a text exposition. */
static unsigned long long sum_metric(const char *text, const char *name)
{
	unsigned long long sum = 0;
	size_t n = strlen(name);
	for (const char *p = text; (p = strstr(p, name)); p += n) {
		if ((p != text && p[-1] != '\n') || p[n] != '{')
			continue;
		const char *sp = strchr(p, ' ');
		if (sp)
			sum += strtoull(sp + 1, NULL, 10);
	}
	return sum;
}

START_TEST(test_metrics)
{
	th_daemon d;
	char dir[] = "/tmp/porter-metrics-XXXXXX";
	char file[128], tmp[140], text[65536];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/porter.prom", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	const char *args[] = {"--workers",
			      "2",
			      "--metrics-file",
			      file,
			      "--metrics-interval",
			      "100",
			      "--metrics-listen",
			      NULL,
			      NULL};
	int port = th_daemon_start_tcp(&d, TH_UID_SELF, 0, args, 7);

	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(porter_ping("m", 1, 0, 2000), 0);

	/* The file: rewritten every 100 ms, so it soon shows Hello + 5 pings. */
	unsigned long long reqs = 0;
	long long until = th_now_ms() + 5000;
	while (th_now_ms() < until) {
		FILE *f = fopen(file, "r");
		if (f) {
			size_t n = fread(text, 1, sizeof(text) - 1, f);
			text[n] = '\0';
			fclose(f);
			reqs = sum_metric(text, "porter_requests_total");
			if (reqs >= 6)
				break;
		}
		usleep(50000);
	}
	ck_assert_msg(reqs >= 6, "porter_requests_total %llu in:\n%s", reqs, text);
	ck_assert(strstr(text, "# HELP porter_requests_total "));
	ck_assert(strstr(text, "# TYPE porter_requests_total counter\n"));
	ck_assert(strstr(text, "# TYPE porter_connections gauge\n"));
	ck_assert(strstr(text, "porter_workers 2\n"));
	ck_assert(strstr(text, "porter_received_bytes_total{worker=\"1\"} "));
	ck_assert_uint_gt(sum_metric(text, "porter_sent_bytes_total"), 0);
	struct stat st;
	ck_assert_int_ne(stat(tmp, &st), 0); /* renamed into place, not left */
	ck_assert_int_eq(stat(file, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0644);

	/* The endpoint. */
	http_get(port, "/metrics", text, sizeof(text));
	ck_assert_msg(strncmp(text, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", text);
	ck_assert(strstr(text, "Content-Type: text/plain; version=0.0.4"));
	ck_assert_uint_ge(sum_metric(strstr(text, "\r\n\r\n") + 4, "porter_requests_total"), 6);
	http_get(port, "/other", text, sizeof(text));
	ck_assert(strncmp(text, "HTTP/1.1 404 ", 13) == 0);

	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
	unlink(file);
	rmdir(dir);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {test_notify_and_watchdog,
				test_watchdog_pid_other,
				test_socket_activation,
				test_activation_early_descriptor,
				test_activation_allow_uid,
				test_activation_rejects_bad_fd,
				test_reload,
				test_quotas_live_on_reload,
				test_metrics,
				NULL};
	return th_suite("sd", "sd", 60, tests);
}

TH_MAIN(suite)
