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
		"Pokes a running porterd.\n"
		"\n"
		"Commands:\n"
		"  ping [-c COUNT] [-i INTERVAL_MS] [-s SIZE] [-d DELAY_MS]\n"
		"                      round trips to the daemon; prints min/avg/p50/p99 latency\n"
		"                      (-d: the daemon waits before echoing, to try deadlines)\n"
		"  cancel ID           stop the in-flight request ID of this process\n"
		"  stats               per-worker counters\n"
		"  version             client and daemon versions\n"
		"  file cat [-r ROOT] PATH       print a file (streamed)\n"
		"  file put [-r ROOT] [-a|-A] [-x] [-m MODE] PATH [LOCAL]\n"
		"                      write stdin (or LOCAL) to PATH; atomic replace by default,\n"
		"                      -a appends, -A overwrites in place, -x refuses an existing file\n"
		"  file rm [-r ROOT] [-d] PATH   delete a file (-d: an empty directory)\n"
		"  file stat [-r ROOT] PATH      type, size, mode, mtime\n"
		"  file ls [-r ROOT] [PATH]      list a directory (default: the root)\n"
		"                      ROOT names one of porterd's file roots (default: its first)\n"
		"  batch [--first] [FILE]\n"
		"                      runs a JSON list of operations (stdin when no FILE) as one\n"
		"                      batch: all of them (join), or --first to succeed (select):\n"
		"                      [{\"op\":\"db\",\"conninfo\":\"...\",\"sql\":\"...\",\"params\":[\"1\",null]},\n"
		"                       {\"op\":\"http\",\"method\":\"GET\",\"url\":\"...\",\"headers\":[],\"body\":\"\"},\n"
		"                       {\"op\":\"file_read\",\"root\":\"...\",\"path\":\"...\"},\n"
		"                       {\"op\":\"ping\",\"payload\":\"x\",\"delay_ms\":10}]\n"
		"                      each may add \"timeout_ms\"\n"
		"  db query CONNINFO SQL [PARAM...]\n"
		"                      runs SQL on a pooled connection; PARAMs are $1..$n in\n"
		"                      text form (\\N is NULL); prints a table, or JSON with --json\n"
		"  http get|post|request [METHOD] URL [-H HDR] [-d DATA|@FILE] [-o FILE] [-i] [-L] [-f]\n"
		"                      HTTP through the daemon, curl-like (see 'http --help')\n"
		"\n"
		"Options:\n"
		"  -S, --socket PATH   daemon socket (default: $PORTER_SOCKET, else the daemon's default)\n"
		"  -j, --json          print JSON instead of a table\n"
		"  -t, --timeout MS    per-call timeout (default: 5000)\n"
		"  -h, --help          show this help\n"
		"\n"
		"Exit status:\n"
		"  0  success\n"
		"  1  the operation failed (an error from the daemon, or a timeout)\n"
		"  2  usage error\n"
		"  3  daemon unreachable (not running, refused this user, or connection lost)\n");
}

int ctl_exit_code(int rc)
{
	switch (rc) {
	case PORTER_OK:
		return EXIT_OK;
	case PORTER_E_UNREACHABLE:
	case PORTER_E_CONN_LOST:
	case PORTER_E_DENIED:
		return EXIT_UNREACHABLE;
	case PORTER_E_INVAL:
		return EXIT_USAGE;
	default:
		return EXIT_FAILED;
	}
}

int ctl_fail(int rc)
{
	fprintf(stderr, "porterctl: %s (%s)\n", porter_last_error_message(), porter_error_name(rc));
	return ctl_exit_code(rc);
}

int ctl_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || !*s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
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
	int c;
	optind = 1;
	while ((c = getopt(argc, argv, "c:i:s:d:")) != -1) {
		switch (c) {
		case 'd':
			if (ctl_parse_long(optarg, 0, 3600000, &delay))
				goto bad;
			break;
		case 'c':
			if (ctl_parse_long(optarg, 1, 10000000, &count))
				goto bad;
			break;
		case 'i':
			if (ctl_parse_long(optarg, 0, 3600000, &interval))
				goto bad;
			break;
		case 's':
			if (ctl_parse_long(optarg, 0, 1 << 20, &size))
				goto bad;
			break;
		default:
			goto bad;
		}
	}
	if (optind != argc)
		goto bad;

	char *payload = malloc((size_t)size + 1);
	double *lat = malloc(sizeof(double) * (size_t)count);
	if (!payload || !lat) {
		fprintf(stderr, "porterctl: out of memory\n");
		free(payload);
		free(lat);
		return EXIT_FAILED;
	}
	for (long i = 0; i < size; i++)
		payload[i] = (char)i;

	int rc = 0;
	long done = 0;
	for (; done < count; done++) {
		double t0 = now_us();
		rc = porter_ping_delay(payload, (size_t)size, (uint32_t)delay, o->timeout_ms);
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
	if (rc < 0)
		status = ctl_fail(rc);
	if (done > 0) {
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
	fprintf(stderr,
		"porterctl ping: expected [-c COUNT] [-i INTERVAL_MS] [-s SIZE] [-d DELAY_MS]\n");
	return EXIT_USAGE;
}

static int cmd_stats(const ctl_opts *o, int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "porterctl stats: takes no arguments\n");
		return EXIT_USAGE;
	}
	porter_stats_snapshot *s;
	int rc = porter_stats(&s, o->timeout_ms);
	if (rc < 0)
		return ctl_fail(rc);
	size_t n = porter_stats_workers(s);
	porter_worker_stats w, total = {0};
	if (o->json) {
		printf("{\"daemon_version\":\"%s\",\"uptime_ms\":%llu,\"open_fds\":%llu,"
		       "\"db_connections\":%llu,\"http_transfers\":%llu,\"workers\":[",
		       porter_stats_daemon_version(s),
		       (unsigned long long)porter_stats_uptime_ms(s),
		       (unsigned long long)porter_stats_open_fds(s),
		       (unsigned long long)porter_stats_db_connections(s),
		       (unsigned long long)porter_stats_http_transfers(s));
		for (size_t i = 0; i < n; i++) {
			porter_stats_worker(s, i, &w);
			printf("%s{\"worker\":%u,\"connections\":%llu,\"requests\":%llu,\"inflight\":%llu,"
			       "\"errors\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu}",
			       i ? "," : "", w.worker, (unsigned long long)w.connections,
			       (unsigned long long)w.requests, (unsigned long long)w.inflight,
			       (unsigned long long)w.errors, (unsigned long long)w.bytes_in,
			       (unsigned long long)w.bytes_out);
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
	}
	porter_stats_free(s);
	return EXIT_OK;
}

/* Mostly useful from scripts that know an id, and to see the codes. */
static int cmd_cancel(const ctl_opts *o, int argc, char **argv)
{
	char *end;
	if (argc != 2) {
		fprintf(stderr, "porterctl cancel: expected a request id\n");
		return EXIT_USAGE;
	}
	errno = 0;
	unsigned long long id = strtoull(argv[1], &end, 10);
	if (errno || *end || id == 0) {
		fprintf(stderr, "porterctl cancel: '%s' is not a request id\n", argv[1]);
		return EXIT_USAGE;
	}
	int rc = porter_cancel((uint64_t)id, o->timeout_ms);
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
		fprintf(stderr, "porterctl version: takes no arguments\n");
		return EXIT_USAGE;
	}
	porter_stats_snapshot *s;
	int rc = porter_stats(&s, o->timeout_ms);
	if (rc < 0)
		return ctl_fail(rc);
	if (o->json)
		printf("{\"client\":\"%s\",\"daemon\":\"%s\"}\n", porter_version(),
		       porter_stats_daemon_version(s));
	else
		printf("porterctl %s\nporterd %s\n", porter_version(),
		       porter_stats_daemon_version(s));
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
		{NULL, 0, NULL, 0},
	};
	ctl_opts o = {.json = 0, .timeout_ms = 5000};
	long v;
	int c;

	/* '+': stop at the command, so its own flags are not taken here. */
	while ((c = getopt_long(argc, argv, "+S:jt:h", lopts, NULL)) != -1) {
		switch (c) {
		case 'S':
			setenv("PORTER_SOCKET", optarg, 1);
			break;
		case 'j':
			o.json = 1;
			break;
		case 't':
			if (ctl_parse_long(optarg, 1, 24L * 3600 * 1000, &v)) {
				fprintf(stderr,
					"porterctl: --timeout: expected milliseconds, got '%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			o.timeout_ms = (int)v;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[optind];
	int cargc = argc - optind;
	char **cargv = argv + optind;
	static const struct {
		const char *name;
		int (*run)(const ctl_opts *o, int argc, char **argv);
	} cmds[] = {
		{"ping", cmd_ping},       {"stats", cmd_stats}, {"cancel", cmd_cancel},
		{"version", cmd_version}, {"file", ctl_file},   {"db", ctl_db},
		{"batch", ctl_batch},     {"http", ctl_http},
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(cmd, cmds[i].name) == 0)
			return cmds[i].run(&o, cargc, cargv);
	fprintf(stderr, "porterctl: unknown command '%s' (see --help)\n", cmd);
	return EXIT_USAGE;
}
