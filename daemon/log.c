/* log - stderr logging; see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "porter_errors.h"

static atomic_int level = LOG_LVL_INFO;
static int journal; /* set once in log_init, read-only afterwards */

void log_init(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	journal = js && js[0];
}

void log_set_level(enum log_level l)
{
	atomic_store(&level, (int)l);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load(&level);
}

int log_parse_level(const char *s, enum log_level *out)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {
		{"error", LOG_LVL_ERROR}, {"warn", LOG_LVL_WARN},   {"warning", LOG_LVL_WARN},
		{"info", LOG_LVL_INFO},   {"debug", LOG_LVL_DEBUG},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].level;
			return 0;
		}
	}
	return PORTER_E_INVAL;
}

static const char *level_name(enum log_level l)
{
	switch (l) {
	case LOG_LVL_ERROR:
		return "error";
	case LOG_LVL_WARN:
		return "warn";
	case LOG_LVL_INFO:
		return "info";
	default:
		return "debug";
	}
}

/* Length of the well-formed UTF-8 sequence at p (n bytes available) that
 * is safe to print as is, or 0: overlong forms, surrogates, code points
 * past U+10FFFF and the C1 controls (U+0080..U+009F; a terminal takes
 * U+009B for CSI) are not. */
static size_t utf8_ok(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp, min;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1fu;
		min = 0xa0; /* 0x80..0x9f are the C1 controls */
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0fu;
		min = 0x800;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07u;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

size_t log_escape(const char *in, size_t n, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0;
	if (!cap)
		return 0;
	for (size_t i = 0; i < n;) {
		size_t len = p[i] >= 0x80 ? utf8_ok(p + i, n - i) : 0;
		char esc[4];
		const char *src;
		size_t m;
		if (len) {
			src = (const char *)p + i;
			m = len;
		} else if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
			src = (const char *)p + i;
			m = len = 1;
		} else if (p[i] == '\\') {
			src = "\\\\";
			m = 2;
			len = 1;
		} else {
			esc[0] = '\\';
			esc[1] = 'x';
			esc[2] = hex[p[i] >> 4];
			esc[3] = hex[p[i] & 15];
			src = esc;
			m = 4;
			len = 1;
		}
		/* Never half an escape or half a character. */
		if (o + m >= cap)
			break;
		memcpy(out + o, src, m);
		o += m;
		i += len;
	}
	out[o] = '\0';
	return o;
}

void log_msg(enum log_level l, const char *fmt, ...)
{
	if ((int)l > atomic_load(&level))
		return;

	char line[2048], msg[2048];
	size_t n;
	if (journal) {
		n = (size_t)snprintf(line, sizeof(line), "<%d>", (int)l);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof(line) - n,
				      ".%03ldZ porterd %s: ", ts.tv_nsec / 1000000, level_name(l));
	}

	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	if ((size_t)m >= sizeof(msg))
		m = sizeof(msg) - 1; /* truncated message */
	/* Messages carry text from clients and servers (names, SQL, URLs,
	 * libpq's errors): escaped here, in the one writer, so no caller can
	 * forget and nothing can end a line early or forge the next one. */
	n += log_escape(msg, (size_t)m, line + n, sizeof(line) - n - 1);
	line[n++] = '\n';

	/* One write per line; a short write to stderr is not worth a retry
	 * loop that could block the loop thread. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}

/* Output with a fixed capacity; what does not fit is dropped. */
typedef struct mbuf {
	char *p;
	size_t cap, len;
} mbuf;

static void put(mbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n && b->len + 1 < b->cap; i++)
		b->p[b->len++] = s[i];
	b->p[b->len] = '\0';
}

static void mask_uri(const char *in, mbuf *b)
{
	const char *auth = strstr(in, "://") + 3;
	size_t alen = strcspn(auth, "/?#");
	const char *at = NULL;
	for (const char *q = auth; q < auth + alen; q++)
		if (*q == '@')
			at = q;
	put(b, in, (size_t)(auth - in));
	const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (colon) {
		put(b, auth, (size_t)(colon - auth) + 1);
		put(b, "***", 3);
		put(b, at, (size_t)(auth + alen - at));
	} else {
		put(b, auth, alen);
	}
	const char *p = auth + alen;
	size_t path = strcspn(p, "?#");
	put(b, p, path);
	p += path;
	while (*p == '?' || *p == '&') {
		/* Query parameters: mask the value of password=. */
		const char *param = p + 1;
		size_t n = strcspn(param, "&#");
		put(b, p, 1);
		if (n >= 9 && strncmp(param, "password=", 9) == 0) {
			put(b, param, 9);
			put(b, "***", 3);
		} else {
			put(b, param, n);
		}
		p = param + n;
	}
	put(b, p, strlen(p)); /* the fragment, if any */
}

void log_mask_conninfo(const char *in, char *out, size_t outlen)
{
	mbuf b = {out, outlen, 0};
	if (!outlen)
		return;
	out[0] = '\0';
	if (strncmp(in, "postgresql://", 13) == 0 || strncmp(in, "postgres://", 11) == 0) {
		mask_uri(in, &b);
		return;
	}
	const char *p = in;
	while (*p) {
		size_t ws = strspn(p, " \t\n\r");
		put(&b, p, ws);
		p += ws;
		if (!*p)
			break;
		size_t klen = strcspn(p, "= \t\n\r");
		int secret = klen == 8 && strncmp(p, "password", 8) == 0;
		put(&b, p, klen);
		p += klen;
		size_t sp = strspn(p, " \t\n\r");
		if (p[sp] != '=') {
			continue; /* not key=value: copied as is */
		}
		put(&b, p, sp + 1);
		p += sp + 1;
		sp = strspn(p, " \t\n\r");
		put(&b, p, sp);
		p += sp;
		const char *v = p;
		if (*p == '\'') {
			for (p++; *p && *p != '\''; p++)
				if (*p == '\\' && p[1])
					p++;
			if (*p == '\'')
				p++;
		} else {
			while (*p && !strchr(" \t\n\r", *p)) {
				if (*p == '\\' && p[1])
					p++;
				p++;
			}
		}
		if (secret)
			put(&b, "***", 3);
		else
			put(&b, v, (size_t)(p - v));
	}
}
