/*
 * http_fixture - what the test_http* suites of HTTP through porterd share
 * (test_http, test_http_stream, test_http_inflight): the loopback HTTP
 * server of tests/support (http_server.py, started once around a tcase by
 * the unchecked fixture httpd_start/httpd_stop), the test's porterd, and
 * helpers on them. Check runs each test in a forked child, which finds the
 * server in srv. Test threads may call url(); the rest, the main test
 * thread only.
 */
#ifndef PORTER_HTTP_FIXTURE_H
#define PORTER_HTTP_FIXTURE_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "httpd.h"

extern th_httpd srv; /* the loopback server */
extern th_daemon d;  /* the porterd of the test */

/* Starts porterd with the NULL-terminated `extra` arguments (may be NULL);
 * asserts that it started. */
void start(const char *const *extra);

/* The server's URL of `path` (not NULL), in a buffer of the calling
 * thread's that the next call overwrites. */
const char *url(const char *path);

/* True when `p` (`n` bytes) is the server's body pattern from `offset`
 * on: byte i is i % 251. */
int check_pattern(const uint8_t *p, size_t n, size_t offset);

/* Waits (up to 5 s) until the server holds no /hang connection open,
 * which shows that porterd closed the abandoned transfers. True then. */
int hangs_closed(void);

/* Waits (up to 5 s) for the daemon to have nothing in flight but the
 * stats request asking. True then. */
int settles(void);

/* The unchecked fixture of a tcase: starts and stops the server. */
void httpd_start(void);
void httpd_stop(void);

/* The Suite `name` of a test_http* suite: the NULL-terminated list `tests`
 * in the tcase "http" around which the server runs. */
Suite *http_suite(const char *name, const TTest *const *tests);

#endif
