/* ctl_http - `porterctl http get|post|request`, curl-like. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "porter.h"

#define CTL_HTTP_MAX_HEADERS 128

static void http_usage(FILE *out)
{
	fprintf(out, "Usage: porterctl http get URL [OPTIONS]\n"
		     "       porterctl http post URL -d DATA [OPTIONS]\n"
		     "       porterctl http request METHOD URL [OPTIONS]\n"
		     "Performs an HTTP request through porterd and writes the body to stdout.\n"
		     "  -H, --header 'Name: value'  add a request header (repeatable)\n"
		     "  -d, --data DATA             request body; @FILE reads it from FILE\n"
		     "  -o, --output FILE           write the body to FILE\n"
		     "  -i, --include               print the status line and headers first\n"
		     "  -L, --location              follow redirects\n"
		     "  -f, --fail                  exit 1 when the status is 400 or more\n"
		     "The body is streamed, so it may be of any size. --timeout bounds each\n"
		     "exchange with the daemon, and the whole transfer for non-stream use.\n");
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;
	if (!f)
		return NULL;
	for (;;) {
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 65536;
			char *nb = realloc(buf, nc);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap = nc;
		}
		size_t k = fread(buf + n, 1, cap - n, f);
		n += k;
		if (k == 0)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

int ctl_http(const ctl_opts *o, int argc, char **argv)
{
	static const struct option lopts[] = {
		{"header", required_argument, NULL, 'H'}, {"data", required_argument, NULL, 'd'},
		{"output", required_argument, NULL, 'o'}, {"include", no_argument, NULL, 'i'},
		{"location", no_argument, NULL, 'L'},     {"fail", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	const char *headers[CTL_HTTP_MAX_HEADERS];
	size_t n_headers = 0;
	const char *data = NULL, *output = NULL, *method = NULL, *url = NULL;
	int include = 0, fail = 0, c, status = EXIT_OK;
	porter_http_options opts = PORTER_HTTP_OPTIONS_INIT;
	char *body = NULL;
	size_t body_len = 0;
	porter_http_stream *s = NULL;
	FILE *out = stdout;

	if (argc < 2) {
		http_usage(stderr);
		return EXIT_USAGE;
	}
	const char *sub = argv[1];
	int pos = 2;
	if (!strcmp(sub, "get")) {
		method = "GET";
	} else if (!strcmp(sub, "post")) {
		method = "POST";
	} else if (!strcmp(sub, "request")) {
		if (argc < 3) {
			http_usage(stderr);
			return EXIT_USAGE;
		}
		method = argv[2];
		pos = 3;
	} else if (!strcmp(sub, "-h") || !strcmp(sub, "--help")) {
		http_usage(stdout);
		return EXIT_OK;
	} else {
		fprintf(stderr, "porterctl http: unknown subcommand '%s'\n", sub);
		http_usage(stderr);
		return EXIT_USAGE;
	}

	/* Options may come before or after the URL. */
	optind = pos;
	while ((c = getopt_long(argc, argv, "H:d:o:iLfh", lopts, NULL)) != -1) {
		switch (c) {
		case 'H':
			if (n_headers == CTL_HTTP_MAX_HEADERS) {
				fprintf(stderr, "porterctl http: at most %d headers\n",
					CTL_HTTP_MAX_HEADERS);
				return EXIT_USAGE;
			}
			headers[n_headers++] = optarg;
			break;
		case 'd':
			data = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case 'i':
			include = 1;
			break;
		case 'L':
			opts.follow_redirects = 1;
			break;
		case 'f':
			fail = 1;
			break;
		case 'h':
			http_usage(stdout);
			return EXIT_OK;
		default:
			http_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "porterctl http: expected exactly one URL\n");
		return EXIT_USAGE;
	}
	url = argv[optind];

	if (data && data[0] == '@') {
		body = read_file(data + 1, &body_len);
		if (!body) {
			fprintf(stderr, "porterctl http: cannot read %s: %s\n", data + 1,
				strerror(errno ? errno : ENOMEM));
			return EXIT_USAGE;
		}
	} else if (data) {
		body_len = strlen(data);
		body = malloc(body_len + 1);
		if (!body)
			return EXIT_FAILED;
		memcpy(body, data, body_len + 1);
	}

	int rc = porter_http_stream_open(method, url, headers, n_headers, body, body_len, &opts,
					 o->timeout_ms, &s);
	if (rc < 0) {
		status = ctl_fail(rc);
		goto out;
	}
	const porter_http_response *head = porter_http_stream_response(s);
	int code = porter_http_response_status(head);
	if (output) {
		out = fopen(output, "wb");
		if (!out) {
			fprintf(stderr, "porterctl http: cannot write %s: %s\n", output,
				strerror(errno));
			out = stdout;
			status = EXIT_FAILED;
			goto out;
		}
	}
	if (include) {
		fprintf(out, "HTTP %d\r\n", code);
		for (size_t i = 0; i < porter_http_response_header_count(head); i++) {
			const char *n, *v;
			porter_http_response_header_at(head, i, &n, &v);
			fprintf(out, "%s: %s\r\n", n, v);
		}
		fprintf(out, "\r\n");
	}
	for (;;) {
		const void *p;
		size_t n;
		rc = porter_http_stream_read(s, &p, &n, o->timeout_ms);
		if (rc < 0) {
			status = ctl_fail(rc);
			goto out;
		}
		if (rc == 0)
			break;
		if (fwrite(p, 1, n, out) != n) {
			fprintf(stderr, "porterctl http: write failed: %s\n", strerror(errno));
			status = EXIT_FAILED;
			goto out;
		}
	}
	if (fail && code >= 400) {
		fprintf(stderr, "porterctl http: the server answered %d\n", code);
		status = EXIT_FAILED;
	}
out:
	porter_http_stream_close(s);
	if (out != stdout && fclose(out) != 0 && status == EXIT_OK) {
		fprintf(stderr, "porterctl http: cannot write %s: %s\n", output, strerror(errno));
		status = EXIT_FAILED;
	}
	fflush(stdout);
	free(body);
	return status;
}
