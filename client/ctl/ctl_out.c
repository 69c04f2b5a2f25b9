/*
 * ctl_out - porterctl's one rule for exit codes and error output.
 *
 * Every command reports a failure through ctl_fail (a libporter error) or
 * ctl_error (porterctl's own: a wrong command line, a local file): plain
 * text on stderr, or under --json one object on stdout
 *   {"error":{"code":"...","message":"...","exit":N}}
 * so a script reading stdout sees every outcome. Single-threaded.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "porter.h"

/* --json of this run; set once by main before any command runs. */
static int g_json;

void ctl_set_json(int json)
{
	g_json = json;
}

int ctl_json_mode(void)
{
	return g_json;
}

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0 when it is
 * not one (overlong forms, surrogates and code points past U+10FFFF
 * included), so that what ctl_json_str emits is always valid JSON. */
size_t ctl_utf8_len(const unsigned char *s, size_t n, unsigned *cp)
{
	unsigned c = s[0];
	size_t len;
	unsigned min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		min = 0x80;
		c &= 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		min = 0x800;
		c &= 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		min = 0x10000;
		c &= 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return len;
}

void ctl_json_str(FILE *f, const void *data, size_t len)
{
	const unsigned char *s = data;
	putc('"', f);
	for (size_t i = 0; i < len;) {
		unsigned cp;
		size_t k = ctl_utf8_len(s + i, len - i, &cp);
		if (k == 0) {
			/* Not UTF-8: JSON cannot carry the byte, so it is shown
			 * as U+FFFD rather than breaking every parser. */
			fputs("\\ufffd", f);
			i++;
			continue;
		}
		if (cp == '"' || cp == '\\') {
			putc('\\', f);
			putc((int)cp, f);
		} else if (cp == '\n') {
			fputs("\\n", f);
		} else if (cp == '\t') {
			fputs("\\t", f);
		} else if (cp == '\r') {
			fputs("\\r", f);
		} else if (cp < 0x20 || cp == 0x7F) {
			fprintf(f, "\\u%04x", cp);
		} else {
			fwrite(s + i, 1, k, f);
		}
		i += k;
	}
	putc('"', f);
}

void ctl_json_cstr(FILE *f, const char *s)
{
	ctl_json_str(f, s ? s : "", s ? strlen(s) : 0);
}

size_t ctl_base64(const void *data, size_t n, char *out)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = data;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)s[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? tbl[v & 63] : '=';
	}
	out[o] = 0;
	return o;
}

void ctl_json_body(FILE *f, const void *data, size_t n)
{
	const unsigned char *s = data;
	unsigned cp;
	size_t i = 0, k;
	/* Text is UTF-8 without NUL bytes; anything else is binary. */
	while (i < n && s[i] && (k = ctl_utf8_len(s + i, n - i, &cp)) > 0)
		i += k;
	if (i == n) {
		fputs("\"body\":", f);
		ctl_json_str(f, s, n);
		return;
	}
	/* Not text: base64, written in blocks of whole 3-byte groups. */
	char block[4 * 1024 + 1];
	fputs("\"body_base64\":\"", f);
	for (i = 0; i < n; i += 3 * 1024)
		fwrite(block, 1, ctl_base64(s + i, n - i < 3 * 1024 ? n - i : 3 * 1024, block), f);
	putc('"', f);
}

int ctl_exit_code(int rc)
{
	switch (rc) {
	case PORTER_OK:
		return EXIT_OK;
	case PORTER_E_UNREACHABLE:
	case PORTER_E_CONN_LOST:
	case PORTER_E_DENIED:
	case PORTER_E_SHUTDOWN:
		return EXIT_UNREACHABLE;
	default:
		/* Everything libporter or the daemon reports, PORTER_E_INVAL
		 * included (a URL or header the daemon refused), is a failed
		 * operation: only porterctl's own parsing says "usage". */
		return EXIT_FAILED;
	}
}

void ctl_json_error(const char *code, const char *msg, int status)
{
	fputs("{\"error\":{\"code\":", stdout);
	ctl_json_cstr(stdout, code);
	fputs(",\"message\":", stdout);
	ctl_json_cstr(stdout, msg);
	printf(",\"exit\":%d}}\n", status);
	/* A failure to write stdout (a full disk: often the very failure
	 * being reported) would lose the error with the output: then it goes
	 * to stderr as well. */
	if (fflush(stdout) != 0 || ferror(stdout))
		fprintf(stderr, "porterctl: %s\n", msg ? msg : "");
}

int ctl_fail(int rc)
{
	return ctl_fail_hint(rc, NULL);
}

int ctl_fail_hint(int rc, const char *hint)
{
	int status = ctl_exit_code(rc);
	const char *msg = porter_last_error_message();
	if (!msg[0] || porter_last_error() != rc)
		msg = porter_strerror(rc);
	if (g_json) {
		char full[1024];
		snprintf(full, sizeof(full), "%s%s%s", msg, hint ? "; " : "", hint ? hint : "");
		ctl_json_error(porter_error_name(rc), full, status);
	} else {
		fprintf(stderr, "porterctl: %s (%s)%s%s\n", msg, porter_error_name(rc),
			hint ? "; " : "", hint ? hint : "");
	}
	return status;
}

int ctl_error(int status, const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* A message for porterctl as a whole starts with ':' ("porterctl:
	 * ..."), a command's with its name ("porterctl db: ..."). */
	if (g_json)
		ctl_json_error(code, msg[0] == ':' ? msg + 2 : msg, status);
	else
		fprintf(stderr, "porterctl%s%s\n", msg[0] == ':' ? "" : " ", msg);
	return status;
}

int ctl_stdout_broken(void)
{
	return ferror(stdout) != 0;
}

int ctl_stdout_finish(int status)
{
	/* The error indicator matters as much as the flush: a write that
	 * failed when the buffer filled up earlier leaves it set, and may
	 * leave nothing to flush now. */
	int failed = fflush(stdout) != 0;
	int err = failed ? errno : 0;
	if (!failed && !ferror(stdout))
		return status;
	if (status != EXIT_OK)
		return status;
	if (err)
		fprintf(stderr, "porterctl: cannot write the output to stdout: %s\n",
			strerror(err));
	else
		fprintf(stderr, "porterctl: cannot write the output to stdout: a write failed\n");
	return EXIT_FAILED;
}

void ctl_name(FILE *f, const char *s)
{
	if (!isatty(fileno(f))) {
		fputs(s, f);
		return;
	}
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s);
	for (size_t i = 0; i < len;) {
		unsigned cp;
		size_t k = ctl_utf8_len(p + i, len - i, &cp);
		if (k == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
			fprintf(f, "\\x%02x", p[i]);
			i++;
			continue;
		}
		fwrite(p + i, 1, k, f);
		i += k;
	}
}

const char *ctl_opt_problem(int c, char *const *argv, char *buf, size_t cap)
{
	/* glibc leaves optopt 0 for a long option it does not know (or that
	 * is ambiguous); a long option missing its value has optind past it,
	 * so it is argv[optind - 1] either way. A short one is optopt: inside
	 * a cluster (-xZ) optind has not moved past the cluster yet. */
	const char *arg = optind > 0 ? argv[optind - 1] : "";
	int is_long = (c == '?' && optopt == 0) || (c == ':' && arg[0] == '-' && arg[1] == '-');
	char name[80];
	if (is_long)
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(arg, "="), arg);
	else
		snprintf(name, sizeof(name), "-%c", optopt);
	snprintf(buf, cap, c == ':' ? "option '%s' needs a value" : "unknown option '%s'", name);
	return buf;
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
