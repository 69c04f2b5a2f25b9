/*
 * porterctl - the command-line tool for poking and debugging a running
 * porterd. Built on libporter's public API only.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "porter.h"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: porterctl [--socket PATH] [--json] [--timeout MS] COMMAND [ARGS]\n"
		"Pokes a running porterd. 'porterctl COMMAND --help' describes each command.\n"
		"\n"
		"Commands:\n"
		"  ping [-c COUNT] [-i INTERVAL_MS] [-s SIZE] [-d DELAY_MS]\n"
		"                      round trips to the daemon; prints min/avg/p50/p99 latency\n"
		"                      (-d: the daemon waits before echoing, to try deadlines)\n"
		"  cancel ID           stop request ID of this porterctl process (so none from a\n"
		"                      shell: see 'cancel --help')\n"
		"  stats               per-worker counters\n"
		"  version             client and daemon versions\n"
		"  file cat|put|rm|stat|ls|mkdir|mv|cp|watch ...\n"
		"                      files under porterd's roots (see 'file --help')\n"
		"  batch [--first] [FILE]        a JSON list of operations as one batch\n"
		"                                (see 'batch --help')\n"
		"  db [query] [OPTIONS] [CONNINFO [SQL [PARAM...]]]\n"
		"                      SQL through porterd, psql-like: tables, -A, -t, -x, --csv,\n"
		"                      --json; results of any size (see 'db --help')\n"
		"  http [get|post|request METHOD] [OPTIONS] URL\n"
		"                      HTTP through porterd, curl-like (see 'http --help')\n"
		"\n"
		"Options:\n"
		"  -S, --socket PATH   daemon socket (default: $PORTER_SOCKET, else the daemon's default)\n"
		"  -j, --json          every command prints JSON on stdout, errors included:\n"
		"                      {\"error\":{\"code\":\"...\",\"message\":\"...\",\"exit\":N}}\n"
		"  -t, --timeout MS    per-call timeout (default: 5000)\n"
		"  -V, --version       print porterctl's version (no daemon needed)\n"
		"  -h, --help          show this help\n"
		"\n"
		"Output: results go to stdout; without --json, errors, notices and\n"
		"diagnostics go to stderr. --help of any command prints to stdout, exit 0.\n"
		"\n"
		"Exit status (every command):\n"
		"  0  success\n"
		"  1  the operation failed: the daemon, the database or the HTTP server\n"
		"     reported an error, a timeout, a local file could not be read or written\n"
		"  2  the command line was wrong (unknown option, missing argument)\n"
		"  3  the daemon is unreachable: not running, refused this user, or the\n"
		"     connection was lost\n"
		"  http only: curl's numbers for the failures curl names, so curl scripts\n"
		"     keep working: 6 host name not resolved, 7 connect failed, 18 body\n"
		"     shorter than Content-Length, 22 HTTP status >= 400 under -f, 23 output\n"
		"     that cannot be written, 28 timeout, 35 TLS handshake failed, 47 too\n"
		"     many redirects, 56 connection reset while receiving, 60 TLS\n"
		"     verification failed, 61 --compressed body that does not decode,\n"
		"     63 response over the size limit\n");
}

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, size_t n, double p)
{
	size_t i = (size_t)ceil(p / 100.0 * (double)n);
	if (i == 0)
		i = 1;
	return sorted[i - 1];
}

static int cmd_ping(const ctl_opts *o, int argc, char **argv)
{
	long count = 5, interval = 200, size = 0, delay = 0;
	/* Each option's bounds, so an error names the option, its range and
	 * what was given instead of repeating the usage line. */
	const struct {
		int opt;
		long lo, hi;
		long *val;
	} num[] = {{'c', 1, 10000000, &count},
		   {'i', 0, 3600000, &interval},
		   {'s', 0, 1 << 20, &size},
		   {'d', 0, 3600000, &delay}};
	int c;
	char why[128];
	optind = 1;
	opterr = 0;
	while ((c = getopt(argc, argv, ":c:i:s:d:")) != -1) {
		if (c == '?' || c == ':')
			return ctl_error(EXIT_USAGE, "usage",
					 "ping: %s (see 'porterctl ping --help')",
					 ctl_opt_problem(c, argv, why, sizeof(why)));
		size_t k = 0;
		while (k < sizeof(num) / sizeof(num[0]) && num[k].opt != c)
			k++;
		if (k == sizeof(num) / sizeof(num[0]))
			goto bad;
		if (ctl_parse_long(optarg, num[k].lo, num[k].hi, num[k].val))
			return ctl_error(EXIT_USAGE, "usage",
					 "ping: -%c: expected an integer in %ld..%ld, got '%s'", c,
					 num[k].lo, num[k].hi, optarg);
	}
	if (optind != argc)
		goto bad;

	char *payload = malloc((size_t)size + 1);
	double *lat = malloc(sizeof(double) * (size_t)count);
	if (!payload || !lat) {
		free(payload);
		free(lat);
		return ctl_error(EXIT_FAILED, "nomem", "ping: out of memory");
	}
	for (long i = 0; i < size; i++)
		payload[i] = (char)i;

	int rc = 0;
	long done = 0;
	for (; done < count; done++) {
		double t0 = now_us();
		rc = porter_ping_delay(payload, (size_t)size, (uint32_t)delay, 0, o->timeout_ms);
		double dt = now_us() - t0;
		if (rc < 0)
			break;
		lat[done] = dt;
		if (!o->json)
			printf("reply %ld: %.1f us\n", done + 1, dt);
		if (interval && done + 1 < count) {
			struct timespec ts = {interval / 1000, (interval % 1000) * 1000000};
			nanosleep(&ts, NULL);
		}
	}
	int status = EXIT_OK;
	/* Under --json the outcome is one object: the latencies so far and,
	 * after a failure, its "error" member. */
	if (rc < 0 && !o->json)
		status = ctl_fail(rc);
	else if (rc < 0)
		status = ctl_exit_code(rc);
	if (o->json && (done == 0 || rc < 0)) {
		printf("{\"sent\":%ld,\"received\":%ld", count, done);
		if (rc < 0) {
			fputs(",\"error\":{\"code\":", stdout);
			ctl_json_cstr(stdout, porter_error_name(rc));
			fputs(",\"message\":", stdout);
			ctl_json_cstr(stdout, porter_last_error_message());
			printf(",\"exit\":%d}", status);
		}
		fputs("}\n", stdout);
	} else if (done > 0) {
		double sum = 0;
		for (long i = 0; i < done; i++)
			sum += lat[i];
		qsort(lat, (size_t)done, sizeof(double), cmp_double);
		double avg = sum / (double)done;
		double p50 = percentile(lat, (size_t)done, 50),
		       p99 = percentile(lat, (size_t)done, 99);
		if (o->json)
			printf("{\"sent\":%ld,\"received\":%ld,\"min_us\":%.1f,\"avg_us\":%.1f,"
			       "\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}\n",
			       count, done, lat[0], avg, p50, p99, lat[done - 1]);
		else
			printf("%ld sent, %ld received; latency min %.1f us, avg %.1f us, p50 %.1f us, p99 %.1f us, max %.1f us\n",
			       count, done, lat[0], avg, p50, p99, lat[done - 1]);
	}
	free(payload);
	free(lat);
	return status;
bad:
	return ctl_error(EXIT_USAGE, "usage",
			 "ping: expected [-c COUNT] [-i INTERVAL_MS] [-s SIZE] [-d DELAY_MS]");
}

/* What each uid listed holds, as used/limit. */
static void print_uids(const porter_stats_snapshot *s)
{
	if (!porter_stats_uids(s))
		return;
	printf("\n%-10s %17s %15s %27s %11s %8s %13s %13s\n", "uid", "connections", "inflight",
	       "buffered bytes", "db conns", "streams", "file streams", "http streams");
	for (size_t i = 0; i < porter_stats_uids(s); i++) {
		porter_uid_usage u = PORTER_UID_USAGE_INIT;
		char c[40], f[40], b[48], fs[48], ss[48], hs[48];
		porter_stats_uid(s, i, &u);
		snprintf(c, sizeof(c), "%llu/%llu", (unsigned long long)u.connections,
			 (unsigned long long)u.max_connections);
		snprintf(f, sizeof(f), "%llu/%llu", (unsigned long long)u.inflight,
			 (unsigned long long)u.max_inflight);
		snprintf(b, sizeof(b), "%llu/%llu", (unsigned long long)u.buffered_bytes,
			 (unsigned long long)u.max_buffered);
		snprintf(fs, sizeof(fs), "%llu/%llu", (unsigned long long)u.file_streams,
			 (unsigned long long)u.max_file_streams);
		snprintf(ss, sizeof(ss), "%llu/%llu", (unsigned long long)u.sessions,
			 (unsigned long long)u.max_sessions);
		snprintf(hs, sizeof(hs), "%llu/%llu", (unsigned long long)u.http_streams,
			 (unsigned long long)u.max_http_streams);
		printf("%-10u %17s %15s %27s %11s %8llu %13s %13s\n", u.uid, c, f, b, ss,
		       (unsigned long long)u.streams, fs, hs);
	}
}

static int cmd_stats(const ctl_opts *o, int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		return ctl_error(EXIT_USAGE, "usage", "stats: takes no arguments");
	}
	porter_stats_snapshot *s;
	int rc = porter_stats(0, o->timeout_ms, &s);
	if (rc < 0)
		return ctl_fail(rc);
	size_t n = porter_stats_workers(s);
	porter_worker_stats w = PORTER_WORKER_STATS_INIT, total = {0};
	if (o->json) {
		/* The version is the daemon's text: escaped like any other. */
		fputs("{\"daemon_version\":", stdout);
		ctl_json_cstr(stdout, porter_stats_daemon_version(s));
		printf(",\"uptime_ms\":%llu,\"open_fds\":%llu,"
		       "\"db_connections\":%llu,\"http_transfers\":%llu,\"file_fast\":%llu,"
		       "\"workers\":[",
		       (unsigned long long)porter_stats_uptime_ms(s),
		       (unsigned long long)porter_stats_open_fds(s),
		       (unsigned long long)porter_stats_db_connections(s),
		       (unsigned long long)porter_stats_http_transfers(s),
		       (unsigned long long)porter_stats_file_fast(s));
		for (size_t i = 0; i < n; i++) {
			porter_stats_worker(s, i, &w);
			printf("%s{\"worker\":%u,\"connections\":%llu,\"requests\":%llu,\"inflight\":%llu,"
			       "\"errors\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu}",
			       i ? "," : "", w.worker, (unsigned long long)w.connections,
			       (unsigned long long)w.requests, (unsigned long long)w.inflight,
			       (unsigned long long)w.errors, (unsigned long long)w.bytes_in,
			       (unsigned long long)w.bytes_out);
		}
		printf("],\"uids\":[");
		for (size_t i = 0; i < porter_stats_uids(s); i++) {
			porter_uid_usage u = PORTER_UID_USAGE_INIT;
			porter_stats_uid(s, i, &u);
			printf("%s{\"uid\":%u,\"connections\":%llu,\"inflight\":%llu,"
			       "\"buffered_bytes\":%llu,\"sessions\":%llu,\"streams\":%llu,"
			       "\"max_connections\":%llu,\"max_inflight\":%llu,\"max_buffered\":%llu,"
			       "\"file_streams\":%llu,\"max_file_streams\":%llu,\"max_sessions\":%llu,"
			       "\"http_streams\":%llu,\"max_http_streams\":%llu}",
			       i ? "," : "", u.uid, (unsigned long long)u.connections,
			       (unsigned long long)u.inflight, (unsigned long long)u.buffered_bytes,
			       (unsigned long long)u.sessions, (unsigned long long)u.streams,
			       (unsigned long long)u.max_connections,
			       (unsigned long long)u.max_inflight,
			       (unsigned long long)u.max_buffered,
			       (unsigned long long)u.file_streams,
			       (unsigned long long)u.max_file_streams,
			       (unsigned long long)u.max_sessions,
			       (unsigned long long)u.http_streams,
			       (unsigned long long)u.max_http_streams);
		}
		printf("]}\n");
	} else {
		printf("porterd %s, up %.1f s; %llu open fds, %llu PostgreSQL connections, %llu HTTP transfers\n",
		       porter_stats_daemon_version(s), (double)porter_stats_uptime_ms(s) / 1000.0,
		       (unsigned long long)porter_stats_open_fds(s),
		       (unsigned long long)porter_stats_db_connections(s),
		       (unsigned long long)porter_stats_http_transfers(s));
		printf("%-7s %12s %12s %9s %9s %14s %14s\n", "worker", "connections", "requests",
		       "inflight", "errors", "bytes_in", "bytes_out");
		for (size_t i = 0; i < n; i++) {
			porter_stats_worker(s, i, &w);
			printf("%-7u %12llu %12llu %9llu %9llu %14llu %14llu\n", w.worker,
			       (unsigned long long)w.connections, (unsigned long long)w.requests,
			       (unsigned long long)w.inflight, (unsigned long long)w.errors,
			       (unsigned long long)w.bytes_in, (unsigned long long)w.bytes_out);
			total.connections += w.connections;
			total.requests += w.requests;
			total.inflight += w.inflight;
			total.errors += w.errors;
			total.bytes_in += w.bytes_in;
			total.bytes_out += w.bytes_out;
		}
		printf("%-7s %12llu %12llu %9llu %9llu %14llu %14llu\n", "total",
		       (unsigned long long)total.connections, (unsigned long long)total.requests,
		       (unsigned long long)total.inflight, (unsigned long long)total.errors,
		       (unsigned long long)total.bytes_in, (unsigned long long)total.bytes_out);
		print_uids(s);
	}
	porter_stats_free(s);
	return EXIT_OK;
}

/* Mostly useful from scripts that know an id, and to see the codes. */
static int cmd_cancel(const ctl_opts *o, int argc, char **argv)
{
	char *end;
	if (argc != 2) {
		return ctl_error(EXIT_USAGE, "usage", "cancel: expected a request id");
	}
	errno = 0;
	unsigned long long id = strtoull(argv[1], &end, 10);
	if (errno || *end || id == 0) {
		return ctl_error(EXIT_USAGE, "usage", "cancel: '%s' is not a request id", argv[1]);
	}
	int rc = porter_cancel((uint64_t)id, o->timeout_ms);
	if (rc == PORTER_E_NOT_FOUND)
		return ctl_error(ctl_exit_code(rc), porter_error_name(rc),
				 "cancel: request %llu is not in flight in this process (porterctl "
				 "can stop only requests it made itself: see 'cancel --help')",
				 id);
	if (rc < 0)
		return ctl_fail(rc);
	if (o->json)
		printf("{\"cancelled\":%llu}\n", id);
	else
		printf("request %llu cancelled\n", id);
	return EXIT_OK;
}

static int cmd_version(const ctl_opts *o, int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		return ctl_error(EXIT_USAGE, "usage", "version: takes no arguments");
	}
	/* The client's version first: it is known even when the daemon's
	 * cannot be had (not running, or this user refused). */
	if (!o->json)
		printf("porterctl %s\n", porter_version());
	porter_stats_snapshot *s;
	int rc = porter_stats(0, o->timeout_ms, &s);
	if (rc < 0)
		return ctl_fail(rc);
	if (o->json) {
		fputs("{\"client\":", stdout);
		ctl_json_cstr(stdout, porter_version());
		fputs(",\"daemon\":", stdout);
		ctl_json_cstr(stdout, porter_stats_daemon_version(s));
		fputs("}\n", stdout);
	} else
		printf("porterd %s\n", porter_stats_daemon_version(s));
	porter_stats_free(s);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{"socket", required_argument, NULL, 'S'},
		{"json", no_argument, NULL, 'j'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'}, /* porterctl's own; no daemon */
		{NULL, 0, NULL, 0},
	};
	ctl_opts o = {.json = 0, .timeout_ms = 5000};
	long v;
	int c;
	char why[128];

	/* '+': stop at the command, so its own flags are not taken here;
	 * ':' and opterr 0: porterctl names a bad option itself. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:S:jt:hV", lopts, NULL)) != -1) {
		switch (c) {
		case 'S':
			setenv("PORTER_SOCKET", optarg, 1);
			break;
		case 'j':
			o.json = 1;
			ctl_set_json(1);
			break;
		case 't':
			if (ctl_parse_long(optarg, 1, 24L * 3600 * 1000, &v)) {
				return ctl_error(EXIT_USAGE, "usage",
						 "--timeout: expected milliseconds in 1..86400000, "
						 "got '%s'",
						 optarg);
			}
			o.timeout_ms = (int)v;
			o.timeout_set = 1;
			break;
		case 'h':
			usage(stdout);
			return ctl_stdout_finish(EXIT_OK);
		case 'V':
			/* The installed client's version, as porterd --version: the
			 * 'version' command also asks a daemon, which may not run. */
			printf("porterctl %s\n", porter_version());
			return ctl_stdout_finish(EXIT_OK);
		default:
			/* One line naming the option: the whole usage in front of
			 * it buried the reason. */
			return ctl_error(EXIT_USAGE, "usage", ": %s (see 'porterctl --help')",
					 ctl_opt_problem(c, argv, why, sizeof(why)));
		}
	}
	if (optind >= argc) {
		if (!o.json)
			usage(stderr);
		return ctl_error(EXIT_USAGE, "usage", "%s", ": expected a command (see --help)");
	}
	const char *cmd = argv[optind];
	int cargc = argc - optind;
	char **cargv = argv + optind;
	/* Commands without a help of their own show their line of usage();
	 * the others answer --help themselves. */
	static const struct {
		const char *name;
		int (*run)(const ctl_opts *o, int argc, char **argv);
		const char *help;
	} cmds[] = {
		{"ping", cmd_ping,
		 "Usage: porterctl ping [-c COUNT] [-i INTERVAL_MS] [-s SIZE] [-d DELAY_MS]\n"
		 "Round trips to the daemon (default 5, 200 ms apart, empty payload);\n"
		 "prints each latency, then min/avg/p50/p99/max. -d makes the daemon wait\n"
		 "DELAY_MS before echoing, to try deadlines.\n"
		 "  -c COUNT        1..10000000\n"
		 "  -i INTERVAL_MS  0..3600000\n"
		 "  -s SIZE         payload bytes, 0..1048576\n"
		 "  -d DELAY_MS     0..3600000\n"},
		{"stats", cmd_stats,
		 "Usage: porterctl stats\nPer-worker counters of the daemon.\n"},
		{"cancel", cmd_cancel,
		 "Usage: porterctl cancel ID\n"
		 "Asks porterd to stop the in-flight request ID of this porterctl process.\n"
		 "porterd takes a cancel only from the process that made the request, so\n"
		 "this cannot stop a request of another program, nor of an earlier\n"
		 "porterctl: from a shell it always answers that the request is not in\n"
		 "flight (exit 1). It shows what porter_cancel answers; a program cancels\n"
		 "its own calls with porter_cancel (in Dart, a PorterCancelToken). To bound\n"
		 "a porterctl command, give it --timeout; Ctrl-C stops it.\n"},
		{"version", cmd_version,
		 "Usage: porterctl version\n"
		 "The client's and the daemon's versions. The client's is printed first,\n"
		 "also when the daemon cannot be reached (exit 3); porterctl --version\n"
		 "prints it alone.\n"},
		{"file", ctl_file, NULL},
		{"db", ctl_db, NULL},
		{"batch", ctl_batch, NULL},
		{"http", ctl_http, NULL},
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(cmd, cmds[i].name) != 0)
			continue;
		if (cmds[i].help && cargc >= 2 &&
		    (!strcmp(cargv[1], "--help") || !strcmp(cargv[1], "-h"))) {
			fputs(cmds[i].help, stdout);
			return ctl_stdout_finish(EXIT_OK);
		}
		return ctl_stdout_finish(cmds[i].run(&o, cargc, cargv));
	}
	return ctl_error(EXIT_USAGE, "usage", ": unknown command '%s' (see --help)", cmd);
}
