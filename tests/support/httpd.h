/*
 * httpd - starts the loopback HTTP test server (tests/support/http_server.py)
 * for integration tests.
 *
 * The server listens on 127.0.0.1 on a port the OS picks, is killed when the
 * test process dies (PR_SET_PDEATHSIG, and the script also watches its
 * parent), and exits by itself after a hard lifetime, so it never outlives
 * its test. Not thread safe: call from the test's main thread.
 */
#ifndef PORTER_HTTPD_H
#define PORTER_HTTPD_H

#include <sys/types.h>

typedef struct th_httpd {
	pid_t pid;      /* 0 when not running */
	int port;       /* the port it listens on */
	char dir[64];   /* private temp directory (port file) */
	char base[64];  /* "http://127.0.0.1:PORT" (https with TLS) */
	char cert[128]; /* TLS: the server's self-signed certificate (PEM) */
} th_httpd;

/* Starts the server and waits (up to 10 s) until it accepts. 0 or -1. */
int th_httpd_start(th_httpd *h);

/* Same, serving HTTPS with a fresh self-signed certificate for 127.0.0.1
 * whose path is left in h->cert (a CA file that trusts the server). */
int th_httpd_start_tls(th_httpd *h);

/* Stops it (SIGTERM, then SIGKILL) and removes its directory. */
void th_httpd_stop(th_httpd *h);

#endif
