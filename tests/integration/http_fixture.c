/*
 * http_fixture - see http_fixture.h.
 */
#include "http_fixture.h"

#include <check.h>
#include <stdio.h>
#include <unistd.h>

#include "porter.h"

th_httpd srv;
th_daemon d;

void start(const char *const *extra)
{
	ck_assert_msg(th_daemon_start(&d, extra) == 0, "porterd did not start");
}

const char *url(const char *path)
{
	static __thread char buf[2048];
	int n = snprintf(buf, sizeof(buf), "%s%s", srv.base, path);
	ck_assert(n > 0 && (size_t)n < sizeof(buf));
	return buf;
}

/* The server's body pattern: byte i is i % 251. */
int check_pattern(const uint8_t *p, size_t n, size_t offset)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (uint8_t)((offset + i) % 251))
			return 0;
	return 1;
}

/* Waits (up to 5 s) until the server holds no /hang connection open,
 * which shows that porterd closed the abandoned transfers. */
int hangs_closed(void)
{
	long long until = th_now_ms() + 5000;
	while (th_now_ms() < until) {
		porter_http_response *r = NULL;
		if (porter_http_get(url("/hanging"), 0, 2000, &r) == 0) {
			size_t len;
			const char *b = porter_http_response_body(r, &len);
			int zero = len == 1 && b[0] == '0';
			porter_http_response_free(r);
			if (zero)
				return 1;
		}
		usleep(50000);
	}
	return 0;
}

/* Waits (up to 5 s) for the daemon to have nothing in flight but the
 * stats request asking. */
int settles(void)
{
	long long until = th_now_ms() + 5000;
	while (th_now_ms() < until) {
		if (th_total_inflight() <= 1)
			return 1;
		usleep(20000);
	}
	return 0;
}

/* In the test process, once around the test case: every test (a forked
 * child) finds the server at srv. */
void httpd_start(void)
{
	ck_assert_msg(th_httpd_start(&srv) == 0, "could not start the loopback HTTP server");
}

void httpd_stop(void)
{
	th_httpd_stop(&srv);
}

Suite *http_suite(const char *name, const TTest *const *tests)
{
	Suite *s = suite_create(name);
	tcase_add_unchecked_fixture(th_tcase(s, "http", 120, tests), httpd_start, httpd_stop);
	return s;
}
