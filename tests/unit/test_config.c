/* Unit tests of porterd's settings: defaults, flags, file, errors. */
#include <check.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "porter_errors.h"
#include "porter_version.h"
#include "thmain.h"

static FILE *sink(void)
{
	FILE *f = tmpfile();
	ck_assert_ptr_nonnull(f);
	return f;
}

static char *slurp(FILE *f)
{
	static char buf[8192];
	rewind(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	return buf;
}

static int parse(config *c, FILE *err, int argc, char **argv)
{
	FILE *out = sink();
	int rc = config_parse_args(c, argc, argv, out, err);
	fclose(out);
	return rc;
}

START_TEST(defaults)
{
	config c;
	config_defaults(&c);
	ck_assert_uint_eq(c.workers, 0);
	ck_assert_int_eq(c.log_level, LOG_LVL_INFO);
	ck_assert_uint_eq(c.max_frame, 16u * 1024 * 1024);
	ck_assert_uint_eq(c.hello_max_frame, 65536);
	ck_assert_uint_eq(c.max_inflight, 256);
	ck_assert_uint_eq(c.frame_timeout_ms, 10000);
	ck_assert_str_eq(c.socket_path, "");

	unsetenv("XDG_RUNTIME_DIR");
	ck_assert_int_eq(config_resolve(&c), 0);
	char want[128];
	snprintf(want, sizeof(want), "/tmp/porter-%u/porter.sock", (unsigned)getuid());
	ck_assert_str_eq(c.socket_path, want);
	ck_assert_uint_ge(c.workers, 1);
	ck_assert(config_uid_allowed(&c, getuid()));
	ck_assert(!config_uid_allowed(&c, getuid() + 1));
	config_free(&c);

	config_defaults(&c);
	setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
	ck_assert_int_eq(config_resolve(&c), 0);
	ck_assert_str_eq(c.socket_path, "/run/user/1000/porter/porter.sock");
	unsetenv("XDG_RUNTIME_DIR");
	config_free(&c);
}
END_TEST

/* workers = 0: half the usable CPUs, at least one; the resolved count
 * follows the affinity mask, not the machine's CPU count. */
START_TEST(default_workers)
{
	ck_assert_uint_eq(config_default_workers(0), 1);
	ck_assert_uint_eq(config_default_workers(1), 1);
	ck_assert_uint_eq(config_default_workers(2), 1);
	ck_assert_uint_eq(config_default_workers(3), 1);
	ck_assert_uint_eq(config_default_workers(4), 2);
	ck_assert_uint_eq(config_default_workers(16), 8);
	ck_assert_uint_eq(config_default_workers(4096), CONFIG_MAX_WORKERS);

	cpu_set_t old, one;
	ck_assert_int_eq(sched_getaffinity(0, sizeof(old), &old), 0);
	CPU_ZERO(&one);
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &old)) {
			CPU_SET(i, &one);
			break;
		}
	config c;
	config_defaults(&c);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(old), &old), 0);
	ck_assert_int_eq(config_resolve(&c), 0);
	ck_assert_uint_eq(c.workers, config_default_workers((unsigned)CPU_COUNT(&old)));
	config_free(&c);
	config_defaults(&c);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(one), &one), 0);
	ck_assert_int_eq(config_resolve(&c), 0);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(old), &old), 0);
	ck_assert_uint_eq(c.workers, 1);
	config_free(&c);
}
END_TEST

START_TEST(flags)
{
	config c;
	config_defaults(&c);
	char *argv[] = {"porterd", "-s",          "/tmp/x.sock", "--workers",        "3", "-l",
			"debug",   "--allow-uid", "1000,1001",   "--max-frame=2048", NULL};
	FILE *err = sink();
	ck_assert_int_eq(parse(&c, err, 10, argv), 0);
	ck_assert_str_eq(c.socket_path, "/tmp/x.sock");
	ck_assert_uint_eq(c.workers, 3);
	ck_assert_int_eq(c.log_level, LOG_LVL_DEBUG);
	ck_assert_uint_eq(c.n_allow_uids, 2);
	ck_assert(config_uid_allowed(&c, 1001));
	ck_assert_uint_eq(c.max_frame, 2048);
	ck_assert_uint_eq(c.hello_max_frame, 2048); /* clamped to max-frame */
	fclose(err);
	config_free(&c);
}
END_TEST

/* "--key BOOL" as --help shows it, "--key=BOOL", and a bare "--key". */
START_TEST(bool_flags)
{
	config c;
	config_defaults(&c);
	char *argv[] = {"porterd",           "--file-pass-fd", "false", "--http-share=no",
			"--http-tls-verify", "--workers",      "2",     NULL};
	FILE *err = sink();
	ck_assert_int_eq(parse(&c, err, 7, argv), 0);
	ck_assert_int_eq(c.file_pass_fd, 0);
	ck_assert_int_eq(c.http_share, 0);
	ck_assert_int_eq(c.http_tls_verify, 1);
	ck_assert_uint_eq(c.workers, 2);
	fclose(err);
	config_free(&c);
	/* A word that is no bool stays an operand, refused as before. */
	config_defaults(&c);
	char *argv2[] = {"porterd", "--file-pass-fd", "maybe", NULL};
	err = sink();
	ck_assert_int_eq(parse(&c, err, 3, argv2), PORTER_E_INVAL);
	ck_assert_msg(strstr(slurp(err), "unexpected argument 'maybe'"), "%s", slurp(err));
	fclose(err);
	config_free(&c);
}
END_TEST

START_TEST(bad_flags)
{
	static const char *cases[][3] = {
		{"--workers", "0x3", "--workers"},      {"--workers", "9999", "--workers"},
		{"--log-level", "loud", "--log-level"}, {"--max-frame", "12", "--max-frame"},
		{"--allow-uid", "a,b", "--allow-uid"},  {"--bogus", "1", "unknown option"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		config c;
		config_defaults(&c);
		char *argv[] = {"porterd", (char *)cases[i][0], (char *)cases[i][1], NULL};
		FILE *err = sink();
		ck_assert_int_eq(parse(&c, err, 3, argv), PORTER_E_INVAL);
		ck_assert_msg(strstr(slurp(err), cases[i][2]), "case %zu: %s", i, slurp(err));
		fclose(err);
		config_free(&c);
	}
	config c;
	config_defaults(&c);
	char *argv[] = {"porterd", "extra", NULL};
	FILE *err = sink();
	ck_assert_int_eq(parse(&c, err, 2, argv), PORTER_E_INVAL);
	fclose(err);
	char *argv2[] = {"porterd", "--workers", NULL};
	err = sink();
	ck_assert_int_eq(parse(&c, err, 2, argv2), PORTER_E_INVAL);
	ck_assert(strstr(slurp(err), "needs a value"));
	fclose(err);
	config_free(&c);
}
END_TEST

START_TEST(help_and_version)
{
	config c;
	config_defaults(&c);
	char *argv[] = {"porterd", "--help", NULL};
	FILE *out = sink(), *err = sink();
	ck_assert_int_eq(config_parse_args(&c, 2, argv, out, err), 1);
	ck_assert(strstr(slurp(out), "--socket PATH"));
	ck_assert(strstr(slurp(out), "(default: 16777216)"));
	fclose(out);
	out = sink();
	char *argv2[] = {"porterd", "-V", NULL};
	ck_assert_int_eq(config_parse_args(&c, 2, argv2, out, err), 1);
	ck_assert(strstr(slurp(out), PORTER_VERSION_STRING));
	fclose(out);
	fclose(err);
	config_free(&c);
}
END_TEST

static char *write_file(const char *text)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/porter-config-XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

START_TEST(file_then_flags)
{
	char *path = write_file("# comment\n\n  workers = 5\nlog_level=warn\nmax-inflight = 9 \n");
	config c;
	config_defaults(&c);
	char *argv[] = {"porterd", "--workers", "2", "--config", path, NULL};
	FILE *err = sink();
	ck_assert_int_eq(parse(&c, err, 5, argv), 0);
	ck_assert_uint_eq(c.workers, 2); /* the flag wins wherever it appears */
	ck_assert_int_eq(c.log_level, LOG_LVL_WARN);
	ck_assert_uint_eq(c.max_inflight, 9);
	fclose(err);
	unlink(path);
	config_free(&c);
}
END_TEST

START_TEST(file_errors_name_line_and_key)
{
	char *path = write_file("workers = 2\nbogus = 1\nmax_frame = big\nno equals sign\n");
	config c;
	config_defaults(&c);
	FILE *err = sink();
	ck_assert_int_eq(config_load_file(&c, path, err), PORTER_E_INVAL);
	char *text = slurp(err);
	char want[128];
	snprintf(want, sizeof(want), "%s:2: bogus: unknown key", path);
	ck_assert_msg(strstr(text, want), "%s", text);
	snprintf(want, sizeof(want), "%s:3: max-frame: expected an integer", path);
	ck_assert_msg(strstr(text, want), "%s", text);
	snprintf(want, sizeof(want), "%s:4: expected 'key = value'", path);
	ck_assert_msg(strstr(text, want), "%s", text);
	fclose(err);
	unlink(path);

	err = sink();
	ck_assert_int_eq(config_load_file(&c, "/nonexistent/porterd.conf", err), PORTER_E_INVAL);
	ck_assert(strstr(slurp(err), "/nonexistent/porterd.conf"));
	fclose(err);
	config_free(&c);
}
END_TEST

START_TEST(dump_round_trips)
{
	config c;
	config_defaults(&c);
	char *argv[] = {"porterd", "-w", "7", "-s", "/tmp/y.sock", NULL};
	FILE *err = sink();
	ck_assert_int_eq(parse(&c, err, 5, argv), 0);
	ck_assert_int_eq(config_resolve(&c), 0);
	FILE *dump = sink();
	config_dump(&c, dump);
	char *text = strdup(slurp(dump));
	fclose(dump);
	char *path = write_file(text);
	config d;
	config_defaults(&d);
	ck_assert_int_eq(config_load_file(&d, path, err), 0);
	ck_assert_uint_eq(d.workers, 7);
	ck_assert_str_eq(d.socket_path, "/tmp/y.sock");
	ck_assert_uint_eq(d.n_allow_uids, 1);
	unlink(path);
	free(text);
	fclose(err);
	config_free(&c);
	config_free(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {defaults,
				default_workers,
				flags,
				bool_flags,
				bad_flags,
				help_and_version,
				file_then_flags,
				file_errors_name_line_and_key,
				dump_round_trips,
				NULL};
	return th_suite("config", "core", 0, tests);
}

TH_MAIN(suite)
