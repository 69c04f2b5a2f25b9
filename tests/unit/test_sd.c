/*
 * Unit tests of the systemd protocol code (socket activation variables,
 * notifications, the watchdog interval), reference-counted configs, and
 * conninfo masking for the log.
 */
#include <check.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "porter_errors.h"
#include "sd.h"
#include "thmain.h"

START_TEST(test_activation_not_ours)
{
	/* Not activated at all. */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	ck_assert_int_eq(sd_activation_fd(), 0);

	/* Meant for another process: ignored, and the variables are gone. */
	setenv("LISTEN_PID", "1", 1);
	setenv("LISTEN_FDS", "1", 1);
	setenv("LISTEN_FDNAMES", "x", 1);
	ck_assert_int_eq(sd_activation_fd(), 0);
	ck_assert_ptr_null(getenv("LISTEN_PID"));
	ck_assert_ptr_null(getenv("LISTEN_FDS"));
	ck_assert_ptr_null(getenv("LISTEN_FDNAMES"));

	/* Ours but two sockets: refused. */
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "2", 1);
	ck_assert_int_eq(sd_activation_fd(), PORTER_E_INVAL);
	ck_assert_ptr_null(getenv("LISTEN_FDS"));
}
END_TEST

/* In a child process: descriptor 3 may be Check's own in this one. */
START_TEST(test_activation_ours)
{
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/porter-unit-sd-%d.sock", (int)getpid());
	unlink(sa.sun_path);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(l, 4), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (l != 3 && (dup2(l, 3) != 3 || close(l) < 0))
			_exit(10);
		char spid[32];
		snprintf(spid, sizeof(spid), "%d", (int)getpid());
		setenv("LISTEN_PID", spid, 1);
		setenv("LISTEN_FDS", "1", 1);
		if (sd_activation_fd() != 3)
			_exit(11);
		if (!(fcntl(3, F_GETFL) & O_NONBLOCK) || !(fcntl(3, F_GETFD) & FD_CLOEXEC))
			_exit(12);
		if (getenv("LISTEN_PID") || getenv("LISTEN_FDS"))
			_exit(13);
		_exit(0);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	close(l);
	unlink(sa.sun_path);
}
END_TEST

START_TEST(test_notify)
{
	char name[64];
	snprintf(name, sizeof(name), "@porter-unit-notify-%d", (int)getpid());
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name))),
			 0);

	unsetenv("NOTIFY_SOCKET");
	ck_assert_int_eq(sd_notify_init(), 0);
	ck_assert_int_eq(sd_notifyf("READY=1"), 0); /* a no-op */
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	ck_assert_int_eq(sd_notify_init(), PORTER_E_INVAL);
	setenv("NOTIFY_SOCKET", name, 1);
	ck_assert_int_eq(sd_notify_init(), 1);
	ck_assert(sd_notify_enabled());
	ck_assert_int_eq(sd_notifyf("READY=1\nSTATUS=%s", "hello"), 0);
	char buf[256];
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ck_assert_int_eq(poll(&p, 1, 2000), 1);
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_str_eq(buf, "READY=1\nSTATUS=hello");
	sd_notify_close();
	ck_assert(!sd_notify_enabled());
	close(fd);
}
END_TEST

START_TEST(test_watchdog_usec)
{
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	ck_assert_uint_eq(sd_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "30000000", 1);
	ck_assert_uint_eq(sd_watchdog_usec(), 30000000);
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	ck_assert_uint_eq(sd_watchdog_usec(), 30000000);
	setenv("WATCHDOG_PID", "1", 1);
	ck_assert_uint_eq(sd_watchdog_usec(), 0);
	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "junk", 1);
	ck_assert_uint_eq(sd_watchdog_usec(), 0);
	unsetenv("WATCHDOG_USEC");
}
END_TEST

START_TEST(test_config_refs)
{
	config *c = config_alloc();
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c->max_inflight, 256);
	ck_assert_ptr_eq(config_ref(c), c);
	config_unref(c);
	config_unref(c); /* freed here; ASan would flag a double free */
	config_unref(NULL);
}
END_TEST

START_TEST(test_allow_any_and_loopback)
{
	config c;
	config_defaults(&c);
	char *argv[] = {"porterd", "--config", "", "--allow-uid", "any", NULL};
	FILE *sink = tmpfile();
	ck_assert_int_eq(config_parse_args(&c, 5, argv, sink, sink), 0);
	ck_assert(c.allow_any_uid);
	ck_assert(c.allow_uid_set);
	ck_assert(config_uid_allowed(&c, 12345));
	ck_assert_int_eq(config_resolve(&c), 0);
	ck_assert_uint_eq(c.n_allow_uids, 0); /* "any" is not replaced by our uid */
	config_free(&c);

	struct sockaddr_storage ss;
	ck_assert_int_eq(config_parse_loopback("127.0.0.1:9466", &ss), 0);
	ck_assert_int_eq(config_parse_loopback("[::1]:1", &ss), 0);
	ck_assert_int_eq(config_parse_loopback("localhost:80", &ss), 0);
	ck_assert_int_eq(config_parse_loopback("0.0.0.0:9466", &ss), PORTER_E_INVAL);
	ck_assert_int_eq(config_parse_loopback("127.0.0.1:0", &ss), PORTER_E_INVAL);
	ck_assert_int_eq(config_parse_loopback("127.0.0.1", &ss), PORTER_E_INVAL);
	fclose(sink);
}
END_TEST

static void masks(const char *in, const char *want)
{
	char out[256];
	log_mask_conninfo(in, out, sizeof(out));
	ck_assert_str_eq(out, want);
}

START_TEST(test_mask_conninfo)
{
	masks("host=db user=app password=s3cret dbname=x",
	      "host=db user=app password=*** dbname=x");
	masks("password = 'a b\\' c' host=h", "password = *** host=h");
	masks("host=h passwordx=1", "host=h passwordx=1");
	masks("postgresql://app:s3cret@db:5432/x?sslmode=require",
	      "postgresql://app:***@db:5432/x?sslmode=require");
	masks("postgres://app@db/x?password=s3cret&sslmode=off",
	      "postgres://app@db/x?password=***&sslmode=off");
	masks("postgresql://db/x", "postgresql://db/x");
	char small[8];
	log_mask_conninfo("password=secret", small, sizeof(small));
	ck_assert_str_eq(small, "passwor");
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {test_activation_not_ours,
				test_activation_ours,
				test_notify,
				test_watchdog_usec,
				test_config_refs,
				test_allow_any_and_loopback,
				test_mask_conninfo,
				NULL};
	return th_suite("sd", "sd", 0, tests);
}

TH_MAIN(suite)
