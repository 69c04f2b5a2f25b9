/* sd - socket activation and sd_notify without libsystemd; see sd.h. */
#include "sd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "porter_errors.h"

/* systemd passes descriptors from here on (SD_LISTEN_FDS_START). */
#define LISTEN_FDS_START 3

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_len;
static int notify_warned; /* a failing send is logged once, not per ping */

/* Parses a whole decimal number; -1 when `s` is not one. */
static long long parse_num(const char *s)
{
	char *end;
	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > (unsigned long long)INT64_MAX)
		return -1;
	return (long long)v;
}

static int sockopt_int(int fd, int opt, int *out)
{
	socklen_t len = sizeof(*out);
	return getsockopt(fd, SOL_SOCKET, opt, out, &len) < 0 ? -errno : 0;
}

int sd_activation_fd(void)
{
	const char *spid = getenv("LISTEN_PID");
	const char *sfds = getenv("LISTEN_FDS");
	long long pid = parse_num(spid);
	long long nfds = parse_num(sfds);
	int fd = LISTEN_FDS_START;
	int rc = 0;

	/* Unset before anything else can fail, so a child never mistakes
	 * the variables for its own. */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");

	if (!spid && !sfds)
		return 0;
	if (pid < 0 || nfds < 0) {
		log_warn(
			"ignoring malformed socket activation variables (LISTEN_PID=%s LISTEN_FDS=%s)",
			spid ? spid : "", sfds ? sfds : "");
		return 0;
	}
	if (pid != (long long)getpid()) {
		/* Meant for another process (an intermediate wrapper). */
		return 0;
	}
	if (nfds == 0)
		return 0;
	if (nfds != 1) {
		log_error(
			"systemd passed %lld sockets; porterd serves exactly one (one ListenStream= in porterd.socket)",
			nfds);
		return PORTER_E_INVAL;
	}

	int type, domain, listening;
	if ((rc = sockopt_int(fd, SO_TYPE, &type)) < 0 ||
	    (rc = sockopt_int(fd, SO_DOMAIN, &domain)) < 0 ||
	    (rc = sockopt_int(fd, SO_ACCEPTCONN, &listening)) < 0) {
		log_error("descriptor %d passed by systemd is not a socket: %s", fd, strerror(-rc));
		return PORTER_E_INVAL;
	}
	if (domain != AF_UNIX || type != SOCK_STREAM || !listening) {
		log_error(
			"descriptor %d passed by systemd is not a listening AF_UNIX stream socket (domain %d, type %d, listening %d)",
			fd, domain, type, listening);
		return PORTER_E_INVAL;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		log_error("cannot set flags on descriptor %d: %s", fd, strerror(errno));
		return PORTER_E_INVAL;
	}
	return fd;
}

int sd_notify_init(void)
{
	const char *e = getenv("NOTIFY_SOCKET");
	size_t n;

	if (notify_fd >= 0)
		return 1;
	if (!e || !*e)
		return 0;
	n = strlen(e);
	memset(&notify_addr, 0, sizeof(notify_addr));
	notify_addr.sun_family = AF_UNIX;
	if ((e[0] != '/' && e[0] != '@') || n >= sizeof(notify_addr.sun_path)) {
		log_error(
			"NOTIFY_SOCKET=%s is neither an absolute path nor an abstract '@' name that fits",
			e);
		return PORTER_E_INVAL;
	}
	memcpy(notify_addr.sun_path, e, n);
	if (e[0] == '@') {
		/* Abstract namespace: a leading NUL, and the length counts
		 * exactly the name (no terminator). */
		notify_addr.sun_path[0] = '\0';
		notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (notify_fd < 0) {
		log_error("cannot create the notification socket: %s", strerror(errno));
		return PORTER_E_INVAL;
	}
	return 1;
}

int sd_notify_enabled(void)
{
	return notify_fd >= 0;
}

int sd_notifyf(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (notify_fd < 0)
		return 0;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1; /* a long STATUS= is cut, not dropped */
	/* Non-blocking: systemd reads promptly, and a full queue must never
	 * stall the acceptor loop; a lost ping is retried at the next tick. */
	if (sendto(notify_fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&notify_addr,
		   notify_len) < 0) {
		int err = errno;
		if (!notify_warned) {
			notify_warned = 1;
			log_warn("sd_notify: %s", strerror(err));
		}
		return -err;
	}
	notify_warned = 0;
	return 0;
}

uint64_t sd_watchdog_usec(void)
{
	long long usec = parse_num(getenv("WATCHDOG_USEC"));
	const char *spid = getenv("WATCHDOG_PID");
	if (usec <= 0)
		return 0;
	if (spid && parse_num(spid) != (long long)getpid())
		return 0;
	return (uint64_t)usec;
}

void sd_notify_close(void)
{
	if (notify_fd >= 0)
		close(notify_fd);
	notify_fd = -1;
}
