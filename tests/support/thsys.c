/* thsys - running programs and removing trees without a shell; see thsys.h. */
#include "thsys.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* In the child: puts `fd` on `target` (dup2 clears close-on-exec). */
static void place(int fd, int target)
{
	if (fd != target && dup2(fd, target) < 0)
		_exit(127);
}

pid_t th_spawn(const char *const *argv, int err, int *in_fd, int *out_fd)
{
	/* Standard input is a socket, so the writer can send with
	 * MSG_NOSIGNAL: a child that exits before reading all of it gives
	 * EPIPE, not a SIGPIPE that would kill the test. */
	int in[2] = {-1, -1}, out[2] = {-1, -1};
	int devnull = -1;
	pid_t pid = -1;
	if (pipe2(out, O_CLOEXEC) != 0)
		goto fail;
	if (in_fd && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0)
		goto fail;
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		goto fail;
	pid_t parent = getpid();
	pid = fork();
	if (pid < 0)
		goto fail;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		place(in_fd ? in[1] : devnull, STDIN_FILENO);
		place(out[1], STDOUT_FILENO);
		if (err == TH_ERR_OUT)
			place(STDOUT_FILENO, STDERR_FILENO);
		else if (err == TH_ERR_NULL)
			place(devnull, STDERR_FILENO);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(devnull);
	close(out[1]);
	*out_fd = out[0];
	if (in_fd) {
		close(in[1]);
		*in_fd = in[0];
	}
	return pid;
fail:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	if (devnull >= 0)
		close(devnull);
	return -1;
}

/* Keeps what fits of `n` bytes just read. */
static void keep(char *out, size_t cap, size_t *got, const char *buf, size_t n)
{
	for (size_t i = 0; i < n && *got + 1 < cap; i++)
		out[(*got)++] = buf[i];
}

static int reap(pid_t pid, char *out, size_t cap, size_t got, size_t *len)
{
	int st;
	if (out && cap)
		out[got] = '\0';
	if (len)
		*len = got;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int th_collect(pid_t pid, int out_fd, char *out, size_t cap, size_t *len)
{
	char buf[4096];
	size_t got = 0;
	for (;;) {
		ssize_t n = read(out_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		keep(out, cap, &got, buf, (size_t)n);
	}
	close(out_fd);
	return reap(pid, out, cap, got, len);
}

int th_run(const char *const *argv, int err, const void *in, size_t in_len, char *out, size_t cap,
	   size_t *len)
{
	int in_fd = -1, out_fd;
	pid_t pid = th_spawn(argv, err, &in_fd, &out_fd);
	if (pid < 0)
		return -1;
	/* Input and output move together, so neither side waits for the
	 * other with a full pipe. */
	const uint8_t *p = in;
	size_t sent = 0, got = 0;
	char buf[4096];
	for (;;) {
		if (in_fd >= 0 && sent == in_len) {
			close(in_fd);
			in_fd = -1;
		}
		struct pollfd pfd[2] = {{.fd = out_fd, .events = POLLIN},
					{.fd = in_fd, .events = POLLOUT}};
		if (poll(pfd, in_fd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents) {
			ssize_t n = read(out_fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			keep(out, cap, &got, buf, (size_t)n);
		}
		if (in_fd >= 0 && pfd[1].revents) {
			ssize_t n =
				send(in_fd, p + sent, in_len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				sent = in_len; /* the child stopped reading */
		}
	}
	if (in_fd >= 0)
		close(in_fd);
	close(out_fd);
	return reap(pid, out, cap, got, len);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

int th_rm_rf(const char *path)
{
	struct stat st;
	/* FTW_DEPTH: children before their directory; FTW_PHYS: a symlink is
	 * removed, never followed. */
	nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return lstat(path, &st) != 0 && errno == ENOENT ? 0 : -1;
}
