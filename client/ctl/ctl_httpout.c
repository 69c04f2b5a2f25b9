/* ctl_httpout - curl's presentation of a response head (see ctl_httpout.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_httpout.h"

const char *ctl_http_reason(int code)
{
	static const struct {
		int code;
		const char *text;
	} r[] = {
		{100, "Continue"},
		{101, "Switching Protocols"},
		{200, "OK"},
		{201, "Created"},
		{202, "Accepted"},
		{203, "Non-Authoritative Information"},
		{204, "No Content"},
		{205, "Reset Content"},
		{206, "Partial Content"},
		{300, "Multiple Choices"},
		{301, "Moved Permanently"},
		{302, "Found"},
		{303, "See Other"},
		{304, "Not Modified"},
		{307, "Temporary Redirect"},
		{308, "Permanent Redirect"},
		{400, "Bad Request"},
		{401, "Unauthorized"},
		{403, "Forbidden"},
		{404, "Not Found"},
		{405, "Method Not Allowed"},
		{406, "Not Acceptable"},
		{408, "Request Timeout"},
		{409, "Conflict"},
		{410, "Gone"},
		{411, "Length Required"},
		{412, "Precondition Failed"},
		{413, "Content Too Large"},
		{414, "URI Too Long"},
		{415, "Unsupported Media Type"},
		{416, "Range Not Satisfiable"},
		{418, "I'm a teapot"},
		{422, "Unprocessable Content"},
		{429, "Too Many Requests"},
		{500, "Internal Server Error"},
		{501, "Not Implemented"},
		{502, "Bad Gateway"},
		{503, "Service Unavailable"},
		{504, "Gateway Timeout"},
	};
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
		if (r[i].code == code)
			return r[i].text;
	return "";
}

const char *ctl_http_status_line(const porter_http_response *h, char *buf, size_t cap)
{
	const char *line = porter_http_response_status_line(h);
	if (line[0])
		return line;
	int code = porter_http_response_status(h);
	const char *why = ctl_http_reason(code);
	snprintf(buf, cap, "HTTP/1.1 %d%s%s", code, why[0] ? " " : "", why);
	return buf;
}

/* Writes (or, with `f` NULL, counts) one head: status line, headers and
 * the blank line, CRLF-terminated, each line after `prefix`. */
static size_t one_head(FILE *f, const char *prefix, const char *line, size_t n,
		       const porter_http_response *h, size_t hop, int final)
{
	size_t bytes = strlen(line) + 2;
	if (f)
		fprintf(f, "%s%s\r\n", prefix, line);
	for (size_t i = 0; i < n; i++) {
		const char *k = "", *v = "";
		if (final)
			porter_http_response_header_at(h, i, &k, &v);
		else
			porter_http_response_hop_header_at(h, hop, i, &k, &v);
		bytes += strlen(k) + 2 + strlen(v) + 2;
		if (f)
			fprintf(f, "%s%s: %s\r\n", prefix, k, v);
	}
	if (f)
		fprintf(f, "%s\r\n", prefix);
	return bytes + 2;
}

/* Writes or counts every head: the redirect hops', then the final one. */
static size_t all_heads(FILE *f, const porter_http_response *h, const char *prefix)
{
	size_t bytes = 0;
	for (size_t i = 0; i < porter_http_response_hop_count(h); i++)
		bytes += one_head(f, prefix, porter_http_response_hop_status_line(h, i),
				  porter_http_response_hop_header_count(h, i), h, i, 0);
	char buf[64];
	return bytes + one_head(f, prefix, ctl_http_status_line(h, buf, sizeof(buf)),
				porter_http_response_header_count(h), h, 0, 1);
}

void ctl_http_write_head(FILE *f, const porter_http_response *h, const char *prefix)
{
	all_heads(f, h, prefix);
}

size_t ctl_http_head_size(const porter_http_response *h)
{
	return all_heads(NULL, h, "");
}

void ctl_http_write_out(const char *fmt, const ctl_http_outcome *oc)
{
	porter_http_timings t = PORTER_HTTP_TIMINGS_INIT;
	if (oc->head)
		porter_http_response_timings(oc->head, &t);
	for (const char *p = fmt; *p; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			putchar(*p == 'n' ? '\n' : *p == 't' ? '\t' : *p == 'r' ? '\r' : *p);
			continue;
		}
		if (*p != '%') {
			putchar(*p);
			continue;
		}
		if (p[1] == '%') {
			putchar('%');
			p++;
			continue;
		}
		if (!strncmp(p, "%header{", 8)) {
			const char *e = strchr(p + 8, '}');
			if (e) {
				char name[256];
				snprintf(name, sizeof(name), "%.*s", (int)(e - p - 8), p + 8);
				const char *v =
					oc->head ? porter_http_response_header(oc->head, name)
						 : NULL;
				fputs(v ? v : "", stdout);
				p = e;
				continue;
			}
		}
		const char *e = p[1] == '{' ? strchr(p + 2, '}') : NULL;
		if (!e) {
			putchar('%');
			continue;
		}
		char var[64];
		snprintf(var, sizeof(var), "%.*s", (int)(e - p - 2), p + 2);
		p = e;
		int code = oc->head ? porter_http_response_status(oc->head) : 0;
		if (!strcmp(var, "http_code") || !strcmp(var, "response_code"))
			printf("%03d", code);
		else if (!strcmp(var, "size_download"))
			printf("%llu", (unsigned long long)oc->size_download);
		else if (!strcmp(var, "size_header"))
			printf("%zu", oc->head ? ctl_http_head_size(oc->head) : 0);
		else if (!strcmp(var, "time_total"))
			printf("%.6f", t.total_us ? (double)t.total_us / 1e6 : oc->total_s);
		else if (!strcmp(var, "time_namelookup"))
			printf("%.6f", (double)t.namelookup_us / 1e6);
		else if (!strcmp(var, "time_connect"))
			printf("%.6f", (double)t.connect_us / 1e6);
		else if (!strcmp(var, "time_appconnect"))
			printf("%.6f", (double)t.tls_us / 1e6);
		else if (!strcmp(var, "time_starttransfer"))
			printf("%.6f", (double)t.first_byte_us / 1e6);
		else if (!strcmp(var, "url_effective"))
			fputs(oc->head ? porter_http_response_effective_url(oc->head) : "", stdout);
		else if (!strcmp(var, "num_redirects"))
			printf("%u", oc->head ? porter_http_response_redirects(oc->head) : 0);
		else if (!strcmp(var, "content_type")) {
			const char *v =
				oc->head ? porter_http_response_header(oc->head, "Content-Type")
					 : NULL;
			fputs(v ? v : "", stdout);
		} else if (!strcmp(var, "method"))
			fputs(oc->method, stdout);
		else if (!strcmp(var, "exitcode"))
			printf("%d", oc->exit);
		else
			/* curl's answer, word for word but for the program's
			 * name: a warning, and nothing in the output. */
			fprintf(stderr, "porterctl: unknown --write-out variable: '%s'\n", var);
	}
}
