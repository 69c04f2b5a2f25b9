/* Unit tests of porterd's HTTP settings: defaults, flags, file, bounds. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "porter_errors.h"
#include "thmain.h"

static int parse(config *c, int argc, char **argv)
{
	FILE *out = tmpfile(), *err = tmpfile();
	ck_assert_ptr_nonnull(out);
	ck_assert_ptr_nonnull(err);
	int rc = config_parse_args(c, argc, argv, out, err);
	fclose(out);
	fclose(err);
	return rc;
}

START_TEST(http_defaults)
{
	config c;
	config_defaults(&c);
	ck_assert_uint_eq(c.http_max_response, 8u << 20);
	ck_assert_uint_eq(c.http_max_redirects, 10);
	ck_assert_uint_eq(c.http_chunk_size, 1u << 20);
	ck_assert_uint_eq(c.http_stream_idle_ms, 10000);
	ck_assert_uint_eq(c.http_max_streams, 256);
	ck_assert_uint_eq(c.http_max_streams_per_uid, 64);
	ck_assert_uint_eq(c.http_connect_timeout_ms, 10000);
	ck_assert_uint_eq(c.http_max_host_connections, 0);
	ck_assert_uint_eq(c.http_allow_hosts.n, 0);
	ck_assert_ptr_null(c.http_ca_file);
	ck_assert_ptr_null(c.http_ca_path);
	ck_assert_int_eq(c.http_tls_verify, 1);
	ck_assert_int_eq(c.http_share, 1);
	config_free(&c);
}
END_TEST

START_TEST(http_flags)
{
	config c;
	config_defaults(&c);
	char *argv[] = {"porterd",
			"--http-allow-hosts",
			" a.example , *.b.example,,",
			"--http-ca-file",
			"/etc/ssl/x.pem",
			"--http-tls-verify=false",
			"--http-max-redirects",
			"0",
			"--http-share=no",
			NULL};
	ck_assert_int_eq(parse(&c, 9, argv), 0);
	ck_assert_uint_eq(c.http_allow_hosts.n, 2);
	ck_assert_str_eq(c.http_allow_hosts.items[0], "a.example");
	ck_assert_str_eq(c.http_allow_hosts.items[1], "*.b.example");
	ck_assert_str_eq(c.http_ca_file, "/etc/ssl/x.pem");
	ck_assert_int_eq(c.http_tls_verify, 0);
	ck_assert_int_eq(c.http_share, 0);
	ck_assert_uint_eq(c.http_max_redirects, 0);
	config_free(&c);
}
END_TEST

START_TEST(http_file_and_bounds)
{
	char path[] = "/tmp/porter-http-config-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	const char *text = "http_max_response = 4096\nhttp-chunk-size = 65536\n"
			   "http-allow-hosts = only.example\n";
	ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	config c;
	config_defaults(&c);
	char *argv[] = {"porterd", "--config", path, NULL};
	ck_assert_int_eq(parse(&c, 3, argv), 0);
	ck_assert_uint_eq(c.http_max_response, 4096);
	ck_assert_uint_eq(c.http_chunk_size, 65536);
	ck_assert_uint_eq(c.http_allow_hosts.n, 1);
	ck_assert_str_eq(c.http_allow_hosts.items[0], "only.example");
	config_free(&c);
	unlink(path);

	static char *bad[][3] = {
		{"porterd", "--http-max-response", "10"}, /* below 1024 */
		{"porterd", "--http-chunk-size", "100"},  /* below 4096 */
		{"porterd", "--http-chunk-size", "999999999"},
		{"porterd", "--http-max-redirects", "101"},
		{"porterd", "--http-tls-verify=maybe", NULL},
		{"porterd", "--http-stream-idle", "5"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		config_defaults(&c);
		char *av[4] = {bad[i][0], bad[i][1], bad[i][2], NULL};
		ck_assert_int_eq(parse(&c, bad[i][2] ? 3 : 2, av), PORTER_E_INVAL);
		config_free(&c);
	}
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {http_defaults, http_flags, http_file_and_bounds, NULL};
	return th_suite("http_config", "http_config", 0, tests);
}

TH_MAIN(suite)
