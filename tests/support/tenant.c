/* tenant - porterd and clients under other uids; see tenant.h. */
#include "tenant.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "porter.h"

/* No test daemon may live longer than this (as in harness.c). */
#define DAEMON_HARD_LIMIT_S 900

/* RLIMIT_NOFILE for the next daemon started here; 0: inherited. */
static rlim_t daemon_nofile;

void th_tenant_daemon_nofile(rlim_t n)
{
	daemon_nofile = n;
}

int th_tenant_available(void)
{
	return geteuid() == 0;
}

void *th_shared_alloc(size_t n)
{
	void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* Drops to uid/gid for good. The parent-death signal is set afterwards:
 * the kernel clears it when credentials change. */
static int become(uid_t uid, gid_t gid, pid_t parent)
{
	if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
		return -1;
	if (getuid() != uid || geteuid() != uid || getegid() != gid)
		return -1;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	return getppid() == parent ? 0 : -1;
}

static int copy_file(const char *from, const char *to, mode_t mode)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	int rc = -1;
	char buf[65536];
	if (in < 0 || out < 0)
		goto out;
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n == 0)
			break;
		if (n < 0 || write(out, buf, (size_t)n) != n)
			goto out;
	}
	rc = 0;
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

const char *th_daemon_home(const th_daemon *d)
{
	static char home[sizeof(d->dir) + 8];
	snprintf(home, sizeof(home), "%s/home", d->dir);
	return home;
}

static int start_as(th_daemon *d, uid_t uid, gid_t gid, const char *const *extra,
		    int own_socket_mode)
{
	char bin[sizeof(d->dir) + 16];
	char home[sizeof(d->dir) + 8];
	const char *argv[64];
	int n = 0;

	memset(d, 0, sizeof(*d));
	/* The daemon's directory in one of root's: clients of other uids
	 * trust a named socket only on a path no other uid could have
	 * prepared (a directory of the daemon's uid right in /tmp could be
	 * anyone's), as the system unit's /run/porterd. */
	snprintf(d->outer, sizeof(d->outer), "/tmp/porter-tenant-XXXXXX");
	if (!mkdtemp(d->outer))
		return -1;
	snprintf(d->dir, sizeof(d->dir), "%s/d", d->outer);
	if (chmod(d->outer, 0755) != 0 || mkdir(d->dir, 0700) != 0)
		goto fail;
	snprintf(d->socket, sizeof(d->socket), "%s%s/porter.sock", d->dir,
		 own_socket_mode ? "/run" : "");
	snprintf(d->log, sizeof(d->log), "%s/porterd.log", d->dir);
	snprintf(bin, sizeof(bin), "%s/porterd", d->dir);
	snprintf(home, sizeof(home), "%s/home", d->dir);
	/* Clients of other uids reach the socket through the directory. */
	/* PORTER_TEST_PORTERD names another build's porterd (A/B runs of a
	 * benchmark against the old daemon); a wrapper would not do, since
	 * the binary is copied where only the daemon's uid may change it. */
	const char *exe = getenv("PORTER_TEST_PORTERD");
	if (!exe || !*exe)
		exe = PORTERD_PATH;
	if (chmod(d->dir, 0755) != 0 || copy_file(exe, bin, 0755) != 0 || mkdir(home, 0700) != 0 ||
	    chown(home, uid, gid) != 0 || chown(d->dir, uid, gid) != 0)
		goto fail;

	argv[n++] = bin;
	/* Hermetic: never the machine's /etc/porter/porterd.conf. */
	argv[n++] = "--config";
	argv[n++] = "";
	argv[n++] = "--socket";
	argv[n++] = d->socket;
	for (; extra && *extra && n < 62; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;

	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		goto fail;
	if (pid == 0) {
		int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			if (fchown(fd, uid, gid) != 0)
				_exit(126);
			dup2(fd, STDERR_FILENO);
			dup2(fd, STDOUT_FILENO);
		}
		if (become(uid, gid, parent) != 0)
			_exit(126);
		if (daemon_nofile) {
			/* Lowering one's own limits needs no privilege. */
			struct rlimit rl = {daemon_nofile, daemon_nofile};
			if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
				_exit(125);
		}
		setenv("HOME", home, 1);
		setenv("XDG_DATA_HOME", d->dir, 1);
		unsetenv("XDG_RUNTIME_DIR");
		alarm(DAEMON_HARD_LIMIT_S);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	d->pid = pid;
	if (th_daemon_wait_listening(d) != 0)
		return -1;
	/* What SocketGroup=porter and SocketMode=0660 give the system unit's
	 * socket. */
	if (!own_socket_mode &&
	    (chown(d->socket, uid, TH_GID_PORTER) != 0 || chmod(d->socket, 0660) != 0)) {
		th_daemon_kill(d);
		return -1;
	}
	setenv("PORTER_SOCKET", d->socket, 1);
	return 0;
fail:
	th_daemon_cleanup(d);
	return -1;
}

int th_daemon_start_as(th_daemon *d, uid_t uid, gid_t gid, const char *const *extra)
{
	return start_as(d, uid, gid, extra, 0);
}

void *th_tenant_up(th_daemon *d, const char *const *extra, size_t shared)
{
	ck_assert_int_eq(th_daemon_start_as(d, TH_UID_DAEMON, TH_GID_PORTER, extra), 0);
	void *mem = th_shared_alloc(shared);
	ck_assert_ptr_nonnull(mem);
	return mem;
}

int th_daemon_start_as_own_socket(th_daemon *d, uid_t uid, gid_t gid, const char *const *extra)
{
	return start_as(d, uid, gid, extra, 1);
}

int th_as(uid_t uid, gid_t gid, int timeout_ms, int (*fn)(void *arg), void *arg)
{
	fflush(NULL);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (become(uid, gid, parent) != 0)
			_exit(126);
		/* The parent's connection is the parent's: a new client
		 * instance, and the inherited socket is closed here only. */
		porter_reset();
		_exit(fn(arg) & 0xff);
	}
	long long until = th_now_ms() + timeout_ms;
	int status;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -1;
		if (th_now_ms() > until) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		usleep(2000);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int th_has_content(const char *root, const char *path, const char *want, int timeout_ms)
{
	porter_bytes *b = NULL;
	int rc = porter_file_read(root, path, 0, 0, 0, timeout_ms, &b);
	if (rc == 0 && (b->len != strlen(want) || memcmp(b->data, want, b->len) != 0))
		rc = PORTER_E_INTERNAL;
	porter_bytes_free(b);
	return rc;
}

int th_own_usage(porter_uid_usage *out)
{
	porter_stats_snapshot *st = NULL;
	int rc = -1;
	if (porter_stats(0, 5000, &st) != 0)
		return -1;
	for (size_t i = 0; i < porter_stats_uids(st) && rc; i++)
		if (porter_stats_uid(st, i, out) == 0 && out->uid == getuid())
			rc = 0;
	porter_stats_free(st);
	return rc;
}

int th_own_buffered_below(uint64_t bound)
{
	porter_uid_usage u = PORTER_UID_USAGE_INIT;
	if (th_own_usage(&u) != 0)
		return 1;
	if (u.buffered_bytes >= bound) {
		fprintf(stderr, "uid %u still holds %llu buffered bytes\n", (unsigned)getuid(),
			(unsigned long long)u.buffered_bytes);
		return 1;
	}
	return 0;
}

/* A loopback port nothing held a moment ago, or 0. */
static int unused_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int port = 0, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

int th_daemon_start_tcp(th_daemon *d, uid_t uid, gid_t gid, const char **args, size_t at)
{
	static char listen[32];
	char serving[96];
	for (int attempt = 0; attempt < 5; attempt++) {
		int port = unused_port();
		ck_assert_int_ne(port, 0);
		snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
		args[at] = listen;
		int rc = uid == TH_UID_SELF ? th_daemon_start(d, args)
					    : th_daemon_start_as(d, uid, gid, args);
		ck_assert_int_eq(rc, 0);
		/* The log line, not a connect: a connect would also succeed
		 * on another process's listener that took the port. */
		snprintf(serving, sizeof(serving), "serving metrics on http://%s/metrics", listen);
		for (long long until = th_now_ms() + 10000; th_now_ms() < until;) {
			if (th_file_has(d->log, serving))
				return port;
			if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
				d->pid = 0; /* reaped: nothing left to kill */
				break;
			}
			usleep(20 * 1000);
		}
		th_daemon_kill(d);
		th_daemon_dump_log(d);
		th_daemon_cleanup(d);
	}
	ck_abort_msg("porterd never served metrics on a free port");
	return 0;
}
