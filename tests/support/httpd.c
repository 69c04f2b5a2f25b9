/* httpd - the loopback HTTP test server; see httpd.h. */
#include "httpd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* No test server may live longer than this, whatever happens to its test. */
#define HTTPD_LIFETIME_S "600"
/* How long a start may take before the test gives up. */
#define HTTPD_START_MS 60000

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int can_connect(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static int start(th_httpd *h, int tls)
{
	char portfile[128];
	memset(h, 0, sizeof(*h));
	snprintf(h->dir, sizeof(h->dir), "/tmp/porter-httpd-XXXXXX");
	if (!mkdtemp(h->dir))
		return -1;
	snprintf(portfile, sizeof(portfile), "%s/port", h->dir);

	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (tls)
			execl(PORTER_PYTHON3, PORTER_PYTHON3, PORTER_HTTP_SERVER, "--port-file",
			      portfile, "--lifetime", HTTPD_LIFETIME_S, "--tls-dir", h->dir,
			      (char *)NULL);
		else
			execl(PORTER_PYTHON3, PORTER_PYTHON3, PORTER_HTTP_SERVER, "--port-file",
			      portfile, "--lifetime", HTTPD_LIFETIME_S, (char *)NULL);
		_exit(127);
	}
	h->pid = pid;

	/* Python's start-up (and, for TLS, making a certificate) took over 10 s
	 * at load 20 on this 2-core machine; a server that is slow to start is
	 * not what any test here is about. */
	long long until = now_ms() + HTTPD_START_MS;
	while (now_ms() < until) {
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			h->pid = 0;
			fprintf(stderr, "httpd: the test HTTP server exited at start\n");
			return -1;
		}
		FILE *f = fopen(portfile, "r");
		if (f) {
			int port = 0;
			if (fscanf(f, "%d", &port) == 1 && port > 0 && can_connect(port)) {
				fclose(f);
				h->port = port;
				snprintf(h->base, sizeof(h->base), "%s://127.0.0.1:%d",
					 tls ? "https" : "http", port);
				if (tls)
					snprintf(h->cert, sizeof(h->cert), "%s/cert.pem", h->dir);
				return 0;
			}
			fclose(f);
		}
		usleep(10000);
	}
	fprintf(stderr, "httpd: the test HTTP server was not listening within %d ms\n",
		HTTPD_START_MS);
	th_httpd_stop(h);
	return -1;
}

int th_httpd_start(th_httpd *h)
{
	return start(h, 0);
}

int th_httpd_start_tls(th_httpd *h)
{
	return start(h, 1);
}

void th_httpd_stop(th_httpd *h)
{
	char path[128];
	if (h->pid) {
		kill(h->pid, SIGTERM);
		long long until = now_ms() + 5000;
		int status, done = 0;
		while (now_ms() < until) {
			if (waitpid(h->pid, &status, WNOHANG) == h->pid) {
				done = 1;
				break;
			}
			usleep(5000);
		}
		if (!done) {
			kill(h->pid, SIGKILL);
			waitpid(h->pid, &status, 0);
		}
		h->pid = 0;
	}
	if (h->dir[0]) {
		static const char *const files[] = {"port", "cert.pem", "key.pem"};
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", h->dir, files[i]);
			unlink(path);
		}
		rmdir(h->dir);
		h->dir[0] = '\0';
	}
}
