/*
 * ctl_http - `porterctl http`: HTTP through porterd, with curl's flags
 * where they overlap, so curl users and scripts feel at home.
 *
 * The response body is streamed (porter_http_stream_*), so it can be of
 * any size; -m is one deadline for the whole transfer, enforced both by
 * porterd (the transfer's timeout) and here (each read waits at most the
 * time left). Failures curl names exit with curl's numbers (see --help).
 * Single-threaded.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#include "ctl.h"
#include "ctl_httpbody.h"
#include "ctl_httpout.h"
#include "porter.h"

#define CTL_HTTP_MAX_HEADERS 128
#define CTL_HTTP_MAX_DATA 64

/* curl's exit codes for the failures it names. */
enum {
	CURLX_RESOLVE = 6,
	CURLX_CONNECT = 7,
	CURLX_PARTIAL = 18,
	CURLX_HTTP_FAIL = 22,
	CURLX_WRITE = 23,
	CURLX_TIMEOUT = 28,
	CURLX_TLS_CONNECT = 35,
	CURLX_REDIRECTS = 47,
	CURLX_TLS = 60,
	CURLX_BAD_ENCODING = 61,
	CURLX_RECV = 56,
	CURLX_TOO_LARGE = 63,
};

static const char http_help[] =
	"Usage: porterctl http [OPTIONS] URL\n"
	"       porterctl http get|post URL [OPTIONS]\n"
	"       porterctl http request METHOD URL [OPTIONS]\n"
	"An HTTP request through porterd; the body goes to stdout. curl's flags:\n"
	"  -X, --request METHOD       method (default GET, POST with -d, HEAD with -I)\n"
	"  -H, --header 'Name: value' a request header (repeatable)\n"
	"  -d, --data DATA            body; repeated -d are joined with '&';\n"
	"                             @FILE reads FILE without CR/LF, @- stdin;\n"
	"                             sets Content-Type: application/x-www-form-urlencoded\n"
	"      --data-binary DATA     the same, but @FILE is sent byte for byte\n"
	"  -T, --upload-file FILE     PUT FILE ('-': stdin) byte for byte, no Content-Type\n"
	"      --data-raw DATA        the same, '@' has no meaning\n"
	"      --data-urlencode DATA  percent-encoded: content, =content, name=content,\n"
	"                             @FILE, name@FILE\n"
	"  -G, --get                  the data goes into the URL's query, with GET\n"
	"  -u, --user USER:PASSWORD   HTTP Basic authentication\n"
	"  -A, --user-agent NAME      User-Agent (default: porterctl/VERSION)\n"
	"      --compressed           ask for gzip or deflate and decode it here\n"
	"  -o, --output FILE          write the body to FILE ('-': stdout)\n"
	"  -i, --include              print the status line and headers first (with -L,\n"
	"                             those of every hop, as the servers sent them)\n"
	"  -D, --dump-header FILE     write the status lines and headers to FILE ('-': stdout)\n"
	"  -I, --head                 HEAD: headers only\n"
	"  -L, --location             follow redirects\n"
	"      --max-redirs N         at most N redirects with -L (default: porterd's, 10)\n"
	"  -f, --fail                 on a status >= 400 write no body and exit 22\n"
	"  -m, --max-time SECONDS     one deadline for the whole transfer (fractions allowed)\n"
	"      --connect-timeout SECONDS  bound of each connection attempt (porterd's\n"
	"                             http-connect-timeout caps it)\n"
	"  -w, --write-out FORMAT     print FORMAT after the transfer: %{http_code}\n"
	"                             %{response_code} %{size_download} %{size_header}\n"
	"                             %{time_total} %{time_namelookup} %{time_connect}\n"
	"                             %{time_appconnect} %{time_starttransfer}\n"
	"                             %{url_effective} %{num_redirects} %{content_type}\n"
	"                             %{method} %{exitcode} %header{NAME}\n"
	"                             \\n \\t \\r %%\n"
	"  -v, --verbose              the request and response heads on stderr\n"
	"  -s, --silent, -S, --show-error   accepted; porterctl has no progress meter\n"
	"Without -m, porterctl's -t/--timeout (given before 'http') bounds each\n"
	"exchange with porterd (the response head, then each chunk of the body),\n"
	"not the whole transfer: a server that trickles runs on; -m stops it.\n"
	"With porterctl's --json, the outcome is one JSON object: status, headers,\n"
	"and the body as \"body\" (UTF-8 text) or \"body_base64\" (unless -o);\n"
	"-i, -w and -D - print nothing then, so stdout stays one JSON document.\n"
	"\n"
	"Exit status: 0, 1, 2, 3 as for every command (porterctl --help), and\n"
	"curl's numbers: 6 host name not resolved, 7 connect failed, 18 body\n"
	"shorter than Content-Length, 22 status >= 400 with -f, 23 the output\n"
	"(stdout, -o, -D) cannot be written, 28 timeout, 35 TLS handshake failed,\n"
	"47 too many redirects, 56 connection reset while receiving, 60 TLS\n"
	"verification failed, 61 --compressed body that does not decode, 63\n"
	"response larger than porterd's limit.\n"
	"\n"
	"Request bodies that read a file or stdin (-d @FILE, --data-binary @-, -T)\n"
	"are streamed to porterd piece by piece, of any size: a regular file goes\n"
	"with Content-Length, a pipe with chunked encoding (curl reads a pipe\n"
	"whole first and sends its length). A redirect that asks for a streamed\n"
	"body again (307, 308) fails, as curl does when it cannot rewind.\n"
	"Not done: -T to a URL ending in '/' does not append the file name;\n"
	"-F, --retry, cookies, proxies and TLS client options are not offered.\n";

typedef struct http_args {
	const char *method, *url, *output, *dump, *user, *agent, *write_out;
	const char *headers[CTL_HTTP_MAX_HEADERS];
	size_t n_headers;
	ctl_body_arg data[CTL_HTTP_MAX_DATA]; /* -d family, -T (ctl_httpbody.h) */
	size_t n_data;
	int include, head, fail, verbose, compressed, follow, get, upload;
	long max_redirs;     /* -1: not given */
	double max_time;     /* seconds; 0: none */
	double connect_time; /* --connect-timeout seconds; 0: porterd's */
} http_args;

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* curl's exit number for a libporter failure of the transfer. */
static int http_exit(int rc)
{
	switch (rc) {
	case PORTER_E_TIMEOUT:
		return CURLX_TIMEOUT;
	case PORTER_E_HTTP_CONNECT:
		return CURLX_CONNECT;
	case PORTER_E_HTTP_REDIRECTS:
		return CURLX_REDIRECTS;
	case PORTER_E_HTTP_TLS:
		return CURLX_TLS;
	case PORTER_E_HTTP_TOO_LARGE:
		return CURLX_TOO_LARGE;
	default:
		return ctl_exit_code(rc);
	}
}

static int http_fail(int rc)
{
	int status = http_exit(rc);
	const char *msg = porter_last_error_message();
	if (!msg[0])
		msg = porter_strerror(rc);
	/* porterd passes on libcurl's message for CURLE_PARTIAL_FILE but no
	 * code of its own: a body cut short of its Content-Length. */
	if (rc == PORTER_E_HTTP && strstr(msg, "transfer closed with"))
		status = CURLX_PARTIAL;
	/* A connection reset while receiving (CURLE_RECV_ERROR). */
	if (rc == PORTER_E_HTTP && strstr(msg, "Recv failure"))
		status = CURLX_RECV;
	/* Nor one for a host name that does not resolve, which curl tells
	 * apart from a refused connection. */
	if (rc == PORTER_E_HTTP_CONNECT && strstr(msg, "Could not resolve host"))
		status = CURLX_RESOLVE;
	/* Nor one for a TLS handshake that failed before any certificate was
	 * checked (a server that does not speak TLS), curl's 35; libcurl's
	 * verification failures all name the certificate. */
	if (rc == PORTER_E_HTTP_TLS && !strstr(msg, "certificate"))
		status = CURLX_TLS_CONNECT;
	if (ctl_json_mode())
		ctl_json_error(porter_error_name(rc), msg, status);
	else
		fprintf(stderr, "porterctl http: %s (%s)\n", msg, porter_error_name(rc));
	return status;
}

static int usage_error(const char *msg)
{
	return ctl_error(EXIT_USAGE, "usage", "http: %s (see 'porterctl http --help')", msg);
}

/* Parses seconds (fractions allowed, > 0, at most a year). 0 or -1. */
static int parse_seconds(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 86400.0 * 365)
		return -1;
	*out = v;
	return 0;
}

/* Parses the command line; EXIT_OK, a status, or -1 after --help. */
static int parse_args(http_args *a, int argc, char **argv)
{
	enum {
		OPT_BINARY = 1000,
		OPT_RAW,
		OPT_URLENCODE,
		OPT_COMPRESSED,
		OPT_MAXREDIRS,
		OPT_CONNECT
	};
	static const struct option lopts[] = {
		{"request", required_argument, NULL, 'X'},
		{"header", required_argument, NULL, 'H'},
		{"data", required_argument, NULL, 'd'},
		{"data-ascii", required_argument, NULL, 'd'},
		{"data-binary", required_argument, NULL, OPT_BINARY},
		{"data-raw", required_argument, NULL, OPT_RAW},
		{"data-urlencode", required_argument, NULL, OPT_URLENCODE},
		{"get", no_argument, NULL, 'G'},
		{"upload-file", required_argument, NULL, 'T'},
		{"user", required_argument, NULL, 'u'},
		{"user-agent", required_argument, NULL, 'A'},
		{"compressed", no_argument, NULL, OPT_COMPRESSED},
		{"output", required_argument, NULL, 'o'},
		{"include", no_argument, NULL, 'i'},
		{"dump-header", required_argument, NULL, 'D'},
		{"head", no_argument, NULL, 'I'},
		{"location", no_argument, NULL, 'L'},
		{"max-redirs", required_argument, NULL, OPT_MAXREDIRS},
		{"fail", no_argument, NULL, 'f'},
		{"max-time", required_argument, NULL, 'm'},
		{"connect-timeout", required_argument, NULL, OPT_CONNECT},
		{"write-out", required_argument, NULL, 'w'},
		{"verbose", no_argument, NULL, 'v'},
		{"silent", no_argument, NULL, 's'},
		{"show-error", no_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	long v;
	optind = 0; /* afresh, with permutation (see ctl_db.c) */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":X:H:d:GT:u:A:o:iD:ILfm:w:vsSh", lopts, NULL)) != -1) {
		switch (c) {
		case 'X':
			a->method = optarg;
			break;
		case 'H':
			if (a->n_headers == CTL_HTTP_MAX_HEADERS - 4)
				return usage_error("too many headers");
			/* Checked here, to name the -H the user typed: libporter
			 * could only say "header N", counting headers porterctl
			 * adds itself. */
			if (optarg[0] == ':' || !strchr(optarg, ':'))
				return ctl_error(EXIT_USAGE, "usage",
						 "http: -H '%s': expected 'Name: value' (see "
						 "'porterctl http --help')",
						 optarg);
			a->headers[a->n_headers++] = optarg;
			break;
		case 'd':
		case OPT_BINARY:
		case OPT_RAW:
		case OPT_URLENCODE:
			if (a->n_data == CTL_HTTP_MAX_DATA)
				return usage_error("too many -d");
			a->data[a->n_data].arg = optarg;
			a->data[a->n_data++].kind = c == 'd'          ? 'd'
						    : c == OPT_BINARY ? 'b'
						    : c == OPT_RAW    ? 'r'
								      : 'u';
			break;
		case 'G':
			a->get = 1;
			break;
		case 'T':
			if (a->upload)
				return usage_error("-T may be given once");
			if (a->n_data == CTL_HTTP_MAX_DATA)
				return usage_error("too many -d");
			a->upload = 1;
			a->data[a->n_data].arg = optarg;
			a->data[a->n_data++].kind = 'T';
			break;
		case 'u':
			if (!strchr(optarg, ':'))
				return usage_error("-u expects USER:PASSWORD");
			if (strlen(optarg) > 700)
				return usage_error("-u: at most 700 bytes");
			a->user = optarg;
			break;
		case 'A':
			a->agent = optarg;
			break;
		case OPT_COMPRESSED:
			a->compressed = 1;
			break;
		case 'o':
			a->output = optarg;
			break;
		case 'i':
			a->include = 1;
			break;
		case 'D':
			a->dump = optarg;
			break;
		case 'I':
			a->head = 1;
			break;
		case 'L':
			a->follow = 1;
			break;
		case OPT_MAXREDIRS:
			if (ctl_parse_long(optarg, -1, 100000, &v))
				return usage_error("--max-redirs expects a number");
			a->max_redirs = v;
			break;
		case 'f':
			a->fail = 1;
			break;
		case 'm':
			if (parse_seconds(optarg, &a->max_time) < 0)
				return usage_error("-m expects seconds (> 0)");
			break;
		case OPT_CONNECT:
			if (parse_seconds(optarg, &a->connect_time) < 0)
				return usage_error("--connect-timeout expects seconds (> 0)");
			break;
		case 'w':
			a->write_out = optarg;
			break;
		case 'v':
			a->verbose = 1;
			break;
		case 's':
		case 'S':
			break;
		case 'h':
			fputs(http_help, stdout);
			return -1;
		default: {
			char why[128];
			return usage_error(ctl_opt_problem(c, argv, why, sizeof(why)));
		}
		}
	}
	if (optind != argc - 1)
		return usage_error("expected exactly one URL");
	if (a->upload && a->n_data > 1)
		return usage_error("-T and -d cannot be combined");
	if (a->upload && a->get)
		return usage_error("-T and -G cannot be combined");
	a->url = argv[optind];
	return EXIT_OK;
}

/* One transfer's state while the body streams. */
typedef struct xfer {
	const http_args *a;
	const ctl_opts *o;
	double start, deadline; /* deadline 0: none (-m not given) */
	FILE *out;              /* body destination; NULL with --json */
	ctl_buf json_body;      /* --json without -o: the body */
	z_stream z;             /* --compressed */
	int inflating;
	uint64_t received; /* bytes from the server (before decoding) */
} xfer;

/* Where the body goes, for a message: -o's path, or "stdout". */
static const char *out_name(const xfer *x)
{
	return x->out && x->out != stdout ? x->a->output : "stdout";
}

/* Flushes `f`; NULL when everything written to it got there, else why
 * not (a write that failed earlier leaves nothing to flush, only the
 * error indicator). */
static const char *flush_error(FILE *f)
{
	if (fflush(f) != 0)
		return strerror(errno);
	return ferror(f) ? "a write failed" : NULL;
}

/* The timeout of the next exchange with porterd: what is left of -m
 * (bounded by an explicit --timeout), else --timeout. */
static int call_timeout(const xfer *x)
{
	if (!x->deadline)
		return x->o->timeout_ms;
	double left = (x->deadline - now_s()) * 1000.0;
	int ms = left < 1 ? 1 : left > 2e9 ? 2000000000 : (int)ceil(left);
	if (x->o->timeout_set && x->o->timeout_ms < ms)
		ms = x->o->timeout_ms;
	return ms;
}

static int call_timeout_cb(void *arg)
{
	return call_timeout(arg);
}

/* Sends a body read from files or stdin piece by piece, then waits for the
 * response head in `*s`. 0, a libporter code, or CTL_BODY_READ_FAILED with
 * the reason in `why`. `*up` is the caller's to close. */
static int send_streamed(xfer *x, ctl_body *body, const char *method, const char **hdrs,
			 size_t n_hdrs, const porter_http_options *opts, porter_http_upload **up,
			 porter_http_stream **s, char *why, size_t why_len)
{
	uint64_t sent = 0;
	int rc = porter_http_upload_open(method, x->a->url, hdrs, n_hdrs, body->size, opts, 0,
					 call_timeout(x), up);
	if (rc < 0)
		return rc;
	rc = ctl_body_send(body, *up, call_timeout_cb, x, &sent, why, why_len);
	if (rc < 0)
		return rc;
	if (x->a->verbose)
		fprintf(stderr, "* %llu bytes of request body sent%s\n", (unsigned long long)sent,
			rc == 1 ? " (the server answered before the rest)" : "");
	return porter_http_upload_finish(*up, 0, call_timeout(x), s);
}

static int emit(xfer *x, const void *p, size_t n)
{
	if (!x->out)
		return ctl_buf_add(&x->json_body, p, n);
	return fwrite(p, 1, n, x->out) == n ? 0 : -1;
}

/* Writes a chunk, decoding it first under --compressed. 0, or curl's exit
 * number for the failure (CURLX_WRITE, CURLX_BAD_ENCODING) with the reason
 * in `why`. */
static int deliver(xfer *x, const void *p, size_t n, char *why, size_t why_len)
{
	if (!x->inflating) {
		if (emit(x, p, n) == 0)
			return 0;
		snprintf(why, why_len, "cannot write the body to %s: %s", out_name(x),
			 strerror(errno));
		return CURLX_WRITE;
	}
	unsigned char tmp[65536];
	x->z.next_in = (unsigned char *)(uintptr_t)p;
	x->z.avail_in = (uInt)n;
	while (x->z.avail_in) {
		x->z.next_out = tmp;
		x->z.avail_out = sizeof(tmp);
		int zr = inflate(&x->z, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
			snprintf(why, why_len, "cannot decode the compressed body: %s",
				 x->z.msg ? x->z.msg : "bad data");
			return CURLX_BAD_ENCODING;
		}
		if (emit(x, tmp, sizeof(tmp) - x->z.avail_out) < 0) {
			snprintf(why, why_len, "cannot write the body to %s: %s", out_name(x),
				 strerror(errno));
			return CURLX_WRITE;
		}
		if (zr == Z_STREAM_END || (zr == Z_BUF_ERROR && x->z.avail_out))
			break;
	}
	return 0;
}

/* Builds the request headers: the user's, then the defaults curl sends
 * that the user did not set. `store` keeps the generated lines. */
static size_t build_headers(const http_args *a, int has_body, const char **out, char store[3][1024])
{
	size_t n = 0;
	int have_ct = 0, have_ua = 0, have_auth = 0, have_ae = 0;
	for (size_t i = 0; i < a->n_headers; i++) {
		out[n++] = a->headers[i];
		have_ct |= !strncasecmp(a->headers[i], "Content-Type:", 13);
		have_ua |= !strncasecmp(a->headers[i], "User-Agent:", 11);
		have_auth |= !strncasecmp(a->headers[i], "Authorization:", 14);
		have_ae |= !strncasecmp(a->headers[i], "Accept-Encoding:", 16);
	}
	if (has_body && !have_ct)
		out[n++] = "Content-Type: application/x-www-form-urlencoded";
	/* -A "" sends no User-Agent, as in curl. */
	if (!have_ua && (!a->agent || a->agent[0])) {
		snprintf(store[0], sizeof(store[0]), "User-Agent: %s",
			 a->agent ? a->agent : "porterctl/" PORTER_VERSION_STRING);
		out[n++] = store[0];
	}
	if (a->user && !have_auth) {
		/* parse_args bounds -u so that its base64 fits. */
		char b64[sizeof(store[1]) - 32];
		ctl_base64(a->user, strlen(a->user), b64);
		snprintf(store[1], sizeof(store[1]), "Authorization: Basic %s", b64);
		out[n++] = store[1];
	}
	if (a->compressed && !have_ae)
		out[n++] = "Accept-Encoding: gzip, deflate";
	return n;
}

static void print_json(xfer *x, const porter_http_response *h, const char *method)
{
	porter_http_timings t = PORTER_HTTP_TIMINGS_INIT;
	porter_http_response_timings(h, &t);
	char line[64];
	printf("{\"status\":%d,\"status_line\":", porter_http_response_status(h));
	ctl_json_cstr(stdout, ctl_http_status_line(h, line, sizeof(line)));
	fputs(",\"method\":", stdout);
	ctl_json_cstr(stdout, method);
	fputs(",\"url\":", stdout);
	ctl_json_cstr(stdout, porter_http_response_effective_url(h));
	printf(",\"redirects\":%u,\"headers\":[", porter_http_response_redirects(h));
	for (size_t i = 0; i < porter_http_response_header_count(h); i++) {
		const char *n, *v;
		porter_http_response_header_at(h, i, &n, &v);
		fputs(i ? ",[" : "[", stdout);
		ctl_json_cstr(stdout, n);
		putchar(',');
		ctl_json_cstr(stdout, v);
		putchar(']');
	}
	fputs("],\"hops\":[", stdout);
	for (size_t i = 0; i < porter_http_response_hop_count(h); i++) {
		fputs(i ? ",{\"status_line\":" : "{\"status_line\":", stdout);
		ctl_json_cstr(stdout, porter_http_response_hop_status_line(h, i));
		fputs(",\"headers\":[", stdout);
		for (size_t j = 0; j < porter_http_response_hop_header_count(h, i); j++) {
			const char *n, *v;
			porter_http_response_hop_header_at(h, i, j, &n, &v);
			fputs(j ? ",[" : "[", stdout);
			ctl_json_cstr(stdout, n);
			putchar(',');
			ctl_json_cstr(stdout, v);
			putchar(']');
		}
		fputs("]}", stdout);
	}
	printf("],\"size_download\":%llu,\"time_total\":%.6f", (unsigned long long)x->received,
	       t.total_us ? (double)t.total_us / 1e6 : now_s() - x->start);
	if (!x->out) {
		putchar(',');
		ctl_json_body(stdout, x->json_body.p ? x->json_body.p : (unsigned char *)"",
			      x->json_body.len);
	}
	fputs("}\n", stdout);
}

static int is_redirect(int code)
{
	return code == 301 || code == 302 || code == 303 || code == 307 || code == 308;
}

/* Whether `url` starts with a scheme and "://" (RFC 3986: a letter, then
 * letters, digits, '+', '-', '.'). */
static int has_scheme(const char *url)
{
	const char *p = url;
	if (!isalpha((unsigned char)*p))
		return 0;
	while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
		p++;
	return !strncmp(p, "://", 3);
}

/* Opens -o/-D destinations: NULL for stdout ("-" or none). */
static FILE *open_out(const char *path, int *failed)
{
	if (!path || !strcmp(path, "-"))
		return NULL;
	FILE *f = fopen(path, "wb");
	if (!f) {
		*failed = 1;
		ctl_error(CURLX_WRITE, "io", "http: cannot write %s: %s", path, strerror(errno));
	}
	return f;
}

int ctl_http(const ctl_opts *o, int argc, char **argv)
{
	http_args a = {.max_redirs = -1};
	const char *sub_method = NULL;
	int skip = 1; /* argv[skip - 1] plays getopt's argv[0] */
	if (argc >= 2 && !strcmp(argv[1], "get")) {
		sub_method = "GET";
		skip = 2;
	} else if (argc >= 2 && !strcmp(argv[1], "post")) {
		sub_method = "POST";
		skip = 2;
	} else if (argc >= 2 && !strcmp(argv[1], "request")) {
		if (argc < 3)
			return usage_error("request expects METHOD URL");
		/* 'http request --help' asks for the help: it is no METHOD. */
		int help = !strcmp(argv[2], "--help") || !strcmp(argv[2], "-h");
		sub_method = help ? NULL : argv[2];
		skip = help ? 2 : 3;
	}
	int status = parse_args(&a, argc - skip + 1, argv + skip - 1);
	if (status)
		return status < 0 ? EXIT_OK : status;

	const char *method = a.method             ? a.method
			     : a.head             ? "HEAD"
			     : sub_method         ? sub_method
			     : a.upload           ? "PUT"
			     : a.n_data && !a.get ? "POST"
						  : "GET";
	xfer x = {.a = &a, .o = o, .start = now_s(), .out = stdout};
	ctl_body body = {0};
	ctl_buf *mem = &body.mem;
	char why[512] = "";
	if (ctl_body_prepare(&body, a.data, a.n_data, a.get, why, sizeof(why)) < 0) {
		ctl_body_free(&body);
		return ctl_error(EXIT_FAILED, "io", "http: %s", why);
	}
	/* A URL without a scheme is http's, as curl takes it ('porterctl
	 * http localhost:8080/' was a malformed URL); -G: the data goes into
	 * the URL's query, as curl does. */
	ctl_buf get_url = {0};
	int query = a.get && a.n_data, schemeless = !has_scheme(a.url);
	if (query || schemeless) {
		if ((schemeless && ctl_buf_add(&get_url, "http://", 7) < 0) ||
		    ctl_buf_add(&get_url, a.url, strlen(a.url)) < 0 ||
		    (query && (ctl_buf_add(&get_url, strchr(a.url, '?') ? "&" : "?", 1) < 0 ||
			       ctl_buf_add(&get_url, mem->p, mem->len) < 0))) {
			ctl_body_free(&body);
			free(get_url.p);
			return ctl_error(EXIT_FAILED, "nomem", "http: out of memory");
		}
		a.url = (const char *)get_url.p;
		if (query)
			mem->len = 0;
	}
	const char *hdrs[CTL_HTTP_MAX_HEADERS];
	char store[3][1024];
	/* curl -T sends no Content-Type of its own; -d does. */
	size_t n_hdrs =
		build_headers(&a, !a.upload && (body.streamed || mem->len > 0), hdrs, store);
	porter_http_options opts = PORTER_HTTP_OPTIONS_INIT;
	opts.follow_redirects = a.follow && a.max_redirs != 0;
	if (a.max_redirs > 0)
		opts.max_redirects = (uint32_t)a.max_redirs;
	if (a.max_time > 0) {
		x.deadline = x.start + a.max_time;
		double ms = ceil(a.max_time * 1000.0);
		opts.transfer_timeout_ms = ms > 4e9 ? 4000000000u : (uint32_t)ms;
	}
	if (a.connect_time > 0) {
		double ms = ceil(a.connect_time * 1000.0);
		opts.connect_timeout_ms = ms > 4e9 ? 4000000000u : (uint32_t)ms;
	}
	if (a.verbose) {
		fprintf(stderr, "> %s %s\n", method, a.url);
		for (size_t i = 0; i < n_hdrs; i++)
			fprintf(stderr, "> %s\n", hdrs[i]);
		if (body.streamed && body.size < 0)
			fprintf(stderr, ">\n* request body streamed, size unknown (chunked)\n");
		else
			fprintf(stderr, ">\n* %lld bytes of request body%s\n",
				(long long)(body.streamed ? body.size : (int64_t)mem->len),
				body.streamed ? ", streamed" : "");
	}

	porter_http_stream *s = NULL;
	FILE *dump = NULL, *file = NULL;
	int failed = 0, rc;
	const char *lost = NULL; /* why output was lost, once flushed */
	ctl_http_outcome oc = {.method = method};
	porter_http_upload *up = NULL;
	const porter_http_response *h = NULL;
	if (body.streamed)
		rc = send_streamed(&x, &body, method, hdrs, n_hdrs, &opts, &up, &s, why,
				   sizeof(why));
	else
		rc = porter_http_stream_open(method, a.url, hdrs, n_hdrs, mem->p, mem->len, &opts,
					     0, call_timeout(&x), &s);
	if (rc == CTL_BODY_READ_FAILED) {
		status = ctl_error(EXIT_FAILED, "io", "http: %s", why);
		goto out;
	}
	if (rc == PORTER_E_TOO_LARGE && mem->len) {
		status = ctl_error(EXIT_FAILED, "PORTER_E_TOO_LARGE",
				   "http: a request body of %zu bytes does not fit in one frame to "
				   "porterd (max-frame)",
				   mem->len);
		goto out;
	}
	if (rc < 0) {
		status = http_fail(rc);
		goto out;
	}
	h = porter_http_stream_response(s);
	oc.head = h;
	int code = porter_http_response_status(h);
	if (a.verbose)
		ctl_http_write_head(stderr, h, "< ");
	if (a.follow && a.max_redirs == 0 && is_redirect(code) &&
	    porter_http_response_header(h, "Location")) {
		status = ctl_error(CURLX_REDIRECTS, "PORTER_E_HTTP_REDIRECTS",
				   "http: maximum (0) redirects followed");
		goto out;
	}
	if (a.dump) {
		dump = open_out(a.dump, &failed);
		if (failed) {
			status = CURLX_WRITE;
			goto out;
		}
		if (dump || !o->json)
			ctl_http_write_head(dump ? dump : stdout, h, "");
	}
	if (o->json && (!a.output || !strcmp(a.output, "-"))) {
		x.out = NULL;
	} else {
		file = open_out(a.output, &failed);
		if (failed) {
			status = CURLX_WRITE;
			goto out;
		}
		if (file)
			x.out = file;
	}
	if ((a.include || a.head) && x.out && !o->json)
		ctl_http_write_head(x.out, h, "");
	if (a.fail && code >= 400) {
		/* As curl -f: the head under -i, no body, curl's exit number. */
		status = ctl_error(CURLX_HTTP_FAIL, "http_status",
				   "http: the requested URL returned error: %d", code);
		goto out;
	}
	const char *ce = porter_http_response_header(h, "Content-Encoding");
	if (a.compressed && ce &&
	    (!strcasecmp(ce, "gzip") || !strcasecmp(ce, "x-gzip") || !strcasecmp(ce, "deflate"))) {
		/* 15 + 32: zlib or gzip, told apart by the header. */
		if (inflateInit2(&x.z, 15 + 32) != Z_OK) {
			status = ctl_error(EXIT_FAILED, "nomem", "http: cannot start zlib");
			goto out;
		}
		x.inflating = 1;
	}
	for (;;) {
		const void *p;
		size_t n;
		if (x.deadline && now_s() >= x.deadline) {
			rc = PORTER_E_TIMEOUT;
			break;
		}
		rc = porter_http_stream_read(s, 0, call_timeout(&x), &p, &n);
		if (rc <= 0)
			break;
		x.received += n;
		int bad = deliver(&x, p, n, why, sizeof(why));
		if (bad) {
			status = ctl_error(bad, bad == CURLX_WRITE ? "io" : "encoding", "http: %s",
					   why);
			goto out;
		}
	}
	oc.size_download = x.received;
	const char *cl = porter_http_response_header(h, "Content-Length");
	unsigned long long want = cl ? strtoull(cl, NULL, 10) : 0;
	int bodyless = !strcmp(method, "HEAD") || code == 204 || code == 304 || code < 200;
	/* A body that ended without an error yet short of its length; one cut
	 * by an error is that error's (a reset is curl's 56, not 18). */
	if (cl && !bodyless && x.received < want && rc == 0) {
		status = ctl_error(CURLX_PARTIAL, "partial",
				   "http: transfer closed with %llu bytes remaining to read "
				   "(Content-Length %llu)",
				   want - x.received, want);
		goto out;
	}
	/* Each call waits for what is left of -m, so a timeout is -m's unless
	 * a shorter --timeout was given and the deadline is still ahead. */
	if (rc == PORTER_E_TIMEOUT && x.deadline &&
	    (!o->timeout_set || now_s() >= x.deadline - 0.05)) {
		status = ctl_error(CURLX_TIMEOUT, "PORTER_E_TIMEOUT",
				   "http: operation timed out after %.0f ms with %llu bytes "
				   "received (-m)",
				   (now_s() - x.start) * 1000.0, (unsigned long long)x.received);
		goto out;
	}
	if (rc < 0) {
		status = http_fail(rc);
		goto out;
	}
	lost = x.out ? flush_error(x.out) : NULL;
	if (lost) {
		status = ctl_error(CURLX_WRITE, "io", "http: cannot write the output to %s: %s",
				   out_name(&x), lost);
		goto out;
	}
	if (o->json)
		print_json(&x, h, method);
out:
	oc.exit = status;
	oc.total_s = now_s() - x.start;
	if (a.write_out && !o->json) {
		fflush(x.out ? x.out : stdout);
		ctl_http_write_out(a.write_out, &oc);
	}
	if (x.inflating)
		inflateEnd(&x.z);
	porter_http_stream_close(s, 1000);
	porter_http_upload_close(up, 1000);
	if (file && fclose(file) != 0 && status == EXIT_OK)
		status = ctl_error(CURLX_WRITE, "io", "http: cannot write %s: %s", a.output,
				   strerror(errno));
	if (dump && fclose(dump) != 0 && status == EXIT_OK)
		status = ctl_error(CURLX_WRITE, "io", "http: cannot write %s: %s", a.dump,
				   strerror(errno));
	/* The head (-i, -D -), -w and --json's object go to stdout too: a
	 * write of any of them that failed is curl's write error, not the
	 * plain failure main would make of it. */
	lost = status == EXIT_OK ? flush_error(stdout) : NULL;
	if (lost)
		status = ctl_error(CURLX_WRITE, "io", "http: cannot write the output to stdout: %s",
				   lost);
	ctl_body_free(&body);
	free(get_url.p);
	free(x.json_body.p);
	return status;
}
