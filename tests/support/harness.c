/* harness - real porterd processes for tests; see harness.h. */
#include "harness.h"

#include <check.h>
#include <poll.h>

#include "porter.h"
#include "rawc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* No test daemon may live longer than this. */
#define DAEMON_HARD_LIMIT_S 900

long long th_now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

double th_now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int th_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int th_can_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* Appends the space-separated words of environment variable `var` to
 * argv (up to `max` entries in all), splitting them in `buf`, which must
 * outlive the exec. */
static void append_env_words(const char **argv, int *n, int max, const char *var, char *buf,
			     size_t cap)
{
	const char *v = getenv(var);
	if (!v || !*v)
		return;
	snprintf(buf, cap, "%s", v);
	char *save = NULL;
	for (char *w = strtok_r(buf, " ", &save); w && *n < max; w = strtok_r(NULL, " ", &save))
		argv[(*n)++] = w;
}

static int spawn(th_daemon *d, const char *const *extra)
{
	const char *argv[64];
	int n = 0;
	/* Profiling runs the daemon under a tool: the words of
	 * PORTER_DAEMON_WRAP (say "valgrind --tool=callgrind") come first. */
	static char wrap[512];
	append_env_words(argv, &n, 16, "PORTER_DAEMON_WRAP", wrap, sizeof(wrap));
	argv[n++] = PORTERD_PATH;
	/* Hermetic: never the machine's /etc/porter/porterd.conf. */
	argv[n++] = "--config";
	argv[n++] = "";
	argv[n++] = "--socket";
	argv[n++] = d->socket;
	for (; extra && *extra && n < 60; extra++)
		argv[n++] = *extra;
	/* Benchmarks compare daemon settings without a rebuild: words of
	 * PORTER_DAEMON_ARGS are appended (later flags win). */
	static char words[512];
	append_env_words(argv, &n, 63, "PORTER_DAEMON_ARGS", words, sizeof(words));
	argv[n] = NULL;

	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			dup2(fd, STDOUT_FILENO);
		}
		/* The default file root goes under the test's own directory,
		 * not the runner's home (unless the test chose a place). */
		setenv("XDG_DATA_HOME", d->dir, 0);
		alarm(DAEMON_HARD_LIMIT_S);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	d->pid = pid;
	if (th_daemon_wait_listening(d) != 0)
		return -1;
	setenv("PORTER_SOCKET", d->socket, 1);
	return 0;
}

/* How long porterd may take to start or stop: 10 s, or PORTER_TEST_WAIT_MS
 * (profiling under valgrind on a busy machine needs more). */
static long long wait_ms(void)
{
	const char *v = getenv("PORTER_TEST_WAIT_MS");
	long long ms = v && *v ? atoll(v) : 0;
	return ms > 0 ? ms : 10000;
}

int th_daemon_wait_listening(th_daemon *d)
{
	long long until = th_now_ms() + wait_ms();
	while (th_now_ms() < until) {
		int status;
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
			th_daemon_dump_log(d);
			return -1;
		}
		if (th_can_connect(d->socket))
			return 0;
		usleep(5000);
	}
	th_daemon_kill(d);
	th_daemon_dump_log(d);
	return -1;
}

int th_daemon_start(th_daemon *d, const char *const *extra)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "/tmp/porter-test-XXXXXX");
	if (!mkdtemp(d->dir))
		return -1;
	snprintf(d->socket, sizeof(d->socket), "%s/porter.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/porterd.log", d->dir);
	return spawn(d, extra);
}

int th_daemon_restart(th_daemon *d, const char *const *extra)
{
	return spawn(d, extra);
}

int th_daemon_stop(th_daemon *d)
{
	if (!d->pid)
		return -1;
	kill(d->pid, SIGTERM);
	long long until = th_now_ms() + wait_ms();
	int status;
	while (th_now_ms() < until) {
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		}
		usleep(5000);
	}
	th_daemon_kill(d);
	return -1;
}

void th_daemon_kill(th_daemon *d)
{
	if (!d->pid)
		return;
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	d->pid = 0;
}

void th_daemon_cleanup(th_daemon *d)
{
	/* Everything the daemon left in its directory: socket, lock, log, the
	 * default file root. */
	if (d->dir[0])
		th_rm_rf(d->dir);
	if (d->outer[0])
		rmdir(d->outer);
}

void th_daemon_dump_log(const th_daemon *d)
{
	FILE *f = fopen(d->log, "r");
	char line[1024];
	if (!f)
		return;
	fprintf(stderr, "---- porterd log (%s) ----\n", d->log);
	while (fgets(line, sizeof(line), f))
		fputs(line, stderr);
	fprintf(stderr, "---- end of log ----\n");
	fclose(f);
}

const char *th_pg_state(void)
{
	const char *state = getenv("PORTER_PG_STATE");
	ck_assert_msg(state && state[0], "PORTER_PG_STATE is not set (run through ctest)");
	return state;
}

int th_pg_sh(const char *cmd)
{
	const char *argv[] = {"sh", PORTER_SOURCE_DIR "/tests/support/pg.sh", cmd, th_pg_state(),
			      NULL};
	return th_run(argv, TH_ERR_KEEP, NULL, 0, NULL, 0, NULL);
}

porter_db_result *th_db_ok(uint64_t session, const char *conninfo, const char *sql)
{
	porter_db_result *r = NULL;
	int rc = porter_db_query(session, conninfo, sql, NULL, 0, 0, 10000, &r);
	ck_assert_msg(rc == 0, "%s: %s (%s)", sql, porter_error_name(rc),
		      porter_last_error_message());
	ck_assert_ptr_nonnull(r);
	return r;
}

long th_db_long(uint64_t session, const char *conninfo, const char *sql)
{
	porter_db_result *r = th_db_ok(session, conninfo, sql);
	ck_assert_int_eq(porter_db_ntuples(r), 1);
	long v = atol(porter_db_getvalue(r, 0, 0));
	porter_db_result_free(r);
	return v;
}

void th_pg_file(const char *name, char *out, size_t cap)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", th_pg_state(), name);
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "no %s: is the pg fixture running?", path);
	ck_assert(fgets(out, (int)cap, f) != NULL);
	fclose(f);
	out[strcspn(out, "\n")] = 0;
}

int th_wait_stamps(atomic_llong *first, size_t stride, int n, long long since, long long window_ms)
{
	long long until = th_now_ms() + window_ms;
	for (;;) {
		int all = 1;
		for (int i = 0; i < n && all; i++)
			all = atomic_load((atomic_llong *)((char *)first + (size_t)i * stride)) >=
			      since;
		if (all)
			return 1;
		if (th_now_ms() >= until)
			return 0;
		usleep(10000);
	}
}

void th_print_failures(const long long *by_code, int n)
{
	for (int c = 0; c < n; c++)
		if (by_code[c])
			fprintf(stderr, "  failures %s: %lld\n",
				c ? porter_error_name(-c) : "(other)", by_code[c]);
}

long th_proc_status(pid_t pid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long v = -1;
	size_t n = strlen(field);
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':' &&
		    sscanf(line + n + 1, "%ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* 1 when every thread of `pid` has a tracer. */
static int all_traced(pid_t pid)
{
	char path[64], line[128];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *dir = opendir(path);
	if (!dir)
		return 0;
	int traced = 1;
	struct dirent *e;
	while (traced && (e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/status", (int)pid, e->d_name);
		FILE *f = fopen(path, "r");
		int tracer = 0;
		while (f && fgets(line, sizeof(line), f))
			if (sscanf(line, "TracerPid: %d", &tracer) == 1)
				break;
		if (f)
			fclose(f);
		traced = tracer != 0;
	}
	closedir(dir);
	return traced;
}

pid_t th_attach(const char *tool, pid_t pid)
{
	static char words[512], pidstr[16];
	const char *argv[40];
	int n = 0;
	char *save = NULL;
	snprintf(words, sizeof(words), "%s", tool);
	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
	for (char *w = strtok_r(words, " ", &save); w && n < 38; w = strtok_r(NULL, " ", &save))
		argv[n++] = w;
	argv[n++] = pidstr;
	argv[n] = NULL;
	pid_t child = fork();
	if (child < 0)
		return -1;
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	long long until = th_now_ms() + 20000;
	while (th_now_ms() < until) {
		if (all_traced(pid))
			return child;
		if (waitpid(child, NULL, WNOHANG) == child)
			return -1;
		usleep(10000);
	}
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	return -1;
}

long th_rss_kib(pid_t pid)
{
	return th_proc_status(pid, "VmRSS");
}

long th_hwm_kib(pid_t pid)
{
	return th_proc_status(pid, "VmHWM");
}

int th_fd_count(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *dir = opendir(path);
	if (!dir)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* ---- raw protocol (Check assertions inside) ---- */

int th_raw_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	int rc;
	while ((rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa))) < 0 && errno == EINTR)
		;
	ck_assert_msg(rc == 0, "connect %s: %s", path, strerror(errno));
	return fd;
}

void th_raw_write(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		ck_assert_msg(n > 0, "send: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

void th_raw_send(int fd, Porter__V1__Request *req)
{
	uint8_t *buf;
	size_t len;
	ck_assert_int_eq(frame_pack(&req->base, 1 << 24, &buf, &len), 0);
	th_raw_write(fd, buf, len);
	free(buf);
}

/* Reads one response; NULL on EOF or when nothing comes within timeout. */
Porter__V1__Response *th_raw_recv(int fd, frame_reader *r, int timeout_ms)
{
	return th_rc_recv(fd, r, timeout_ms);
}

size_t th_dir_entries(const char *dir)
{
	DIR *dd = opendir(dir);
	ck_assert_msg(dd != NULL, "opendir %s: %s", dir, strerror(errno));
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(dd)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(dd);
	return n;
}

int th_file_has(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int found = 0;
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

int th_file_count(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int n = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

void th_daemon_reload(th_daemon *d, int nth)
{
	ck_assert_int_eq(kill(d->pid, SIGHUP), 0);
	long long until = th_now_ms() + 10000;
	while (th_file_count(d->log, "configuration reloaded") < nth && th_now_ms() < until)
		usleep(10000);
	ck_assert_int_ge(th_file_count(d->log, "configuration reloaded"), nth);
}

Porter__V1__Response *th_raw_recv_fds(int fd, frame_reader *r, int timeout_ms, int *fds, int *n_fds,
				      int max)
{
	long long until = th_now_ms() + timeout_ms;
	for (;;) {
		const uint8_t *p;
		size_t len;
		if (frame_reader_next(r, &p, &len) == 1)
			return porter__v1__response__unpack(NULL, len, p);
		long long left = until - th_now_ms();
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return NULL;
		uint8_t *space;
		size_t cap;
		ck_assert_int_eq(frame_reader_space(r, &space, &cap), 0);
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(8 * sizeof(int))];
		} u;
		struct iovec iov = {.iov_base = space, .iov_len = cap};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = u.buf,
				    .msg_controllen = sizeof(u.buf)};
		ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
		if (n <= 0)
			return NULL;
		ck_assert_int_eq(mh.msg_flags & MSG_CTRUNC, 0);
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			ck_assert_int_eq(cm->cmsg_type, SCM_RIGHTS);
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				ck_assert_int_lt(*n_fds, max);
				memcpy(&fds[(*n_fds)++], CMSG_DATA(cm) + i * sizeof(int),
				       sizeof(int));
			}
		}
		frame_reader_commit(r, (size_t)n);
	}
}

/* True when the peer closes the connection within timeout_ms. */
int th_raw_wait_closed(int fd, int timeout_ms)
{
	long long until = th_now_ms() + timeout_ms;
	char buf[4096];
	while (th_now_ms() < until) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return 1;
	}
	return 0;
}

Porter__V1__Response *th_raw_hello_reply(int fd, frame_reader *r, uint32_t protocol)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Hello hello = PORTER__V1__HELLO__INIT;
	hello.protocol = protocol;
	hello.client_instance = 42;
	hello.pid = (uint32_t)getpid();
	hello.client_name = "raw";
	req.id = 1;
	req.body_case = PORTER__V1__REQUEST__BODY_HELLO;
	req.hello = &hello;
	th_raw_send(fd, &req);
	Porter__V1__Response *resp = th_raw_recv(fd, r, 5000);
	ck_assert_ptr_nonnull(resp);
	return resp;
}

void th_raw_hello(int fd, frame_reader *r, uint32_t protocol, int expect_status)
{
	Porter__V1__Response *resp = th_raw_hello_reply(fd, r, protocol);
	ck_assert_int_eq(resp->status, expect_status);
	if (expect_status == 0) {
		ck_assert_int_eq(resp->body_case, PORTER__V1__RESPONSE__BODY_HELLO);
		ck_assert_uint_eq(resp->hello->protocol, PORTER_PROTOCOL_VERSION);
		ck_assert_str_eq(resp->hello->daemon_version, PORTER_VERSION_STRING);
	}
	porter__v1__response__free_unpacked(resp, NULL);
}

/* ---- Check helpers ---- */

void th_start(th_daemon *d, const char *const *extra)
{
	ck_assert_msg(th_daemon_start(d, extra) == 0, "porterd did not start");
}

int th_daemon_finish(th_daemon *d)
{
	porter_thread_disconnect();
	int st = d->pid ? th_daemon_stop(d) : 0;
	if (st != 0)
		th_daemon_dump_log(d);
	th_daemon_cleanup(d);
	return st;
}

void th_stop_clean(th_daemon *d)
{
	porter_thread_disconnect();
	int st = th_daemon_stop(d);
	if (st != 0)
		th_daemon_dump_log(d);
	ck_assert_int_eq(st, 0);
	th_daemon_cleanup(d);
}

static uint64_t total(int which)
{
	porter_stats_snapshot *s = NULL;
	ck_assert_int_eq(porter_stats(0, 2000, &s), 0);
	uint64_t n = 0;
	for (size_t i = 0; i < porter_stats_workers(s); i++) {
		porter_worker_stats w = PORTER_WORKER_STATS_INIT;
		porter_stats_worker(s, i, &w);
		n += which ? w.connections : w.inflight;
	}
	porter_stats_free(s);
	return n;
}

uint64_t th_total_inflight(void)
{
	return total(0);
}

uint64_t th_total_connections(void)
{
	return total(1);
}

void th_expect_idle(void)
{
	long long until = th_now_ms() + 3000;
	while (th_total_inflight() > 1 && th_now_ms() < until)
		usleep(10000);
	ck_assert_int_eq(th_total_inflight(), 1);
}

int th_ctl(const void *in, size_t in_len, int err, char *out, size_t cap, ...)
{
	const char *argv[32] = {PORTERCTL_PATH};
	int n = 1;
	va_list ap;
	va_start(ap, cap);
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL) {
		ck_assert_int_lt(n, 31);
		argv[n++] = a;
	}
	va_end(ap);
	argv[n] = NULL;
	int st = th_run(argv, err, in, in_len, out, cap, NULL);
	ck_assert_msg(st >= 0, "porterctl %s did not run to its end", argv[1] ? argv[1] : "");
	return st;
}
