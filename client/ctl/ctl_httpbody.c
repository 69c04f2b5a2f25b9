/* ctl_httpbody - porterctl http's request body; see ctl_httpbody.h. */
#include "ctl_httpbody.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Bytes read from a file per write: libporter sends them as one piece. */
#define BODY_READ (1u << 20)

int ctl_buf_add(ctl_buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 4096;
		while (nc < b->len + n + 1)
			nc *= 2;
		unsigned char *np = realloc(b->p, nc);
		if (!np)
			return -1;
		b->p = np;
		b->cap = nc;
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = 0;
	return 0;
}

/* Leaves CR and LF out of p[0..k) (curl -d @FILE); returns the new length. */
static size_t strip_crlf(unsigned char *p, size_t k)
{
	size_t w = 0;
	for (size_t i = 0; i < k; i++)
		if (p[i] != '\r' && p[i] != '\n')
			p[w++] = p[i];
	return w;
}

static FILE *open_source(const char *name, char *why, size_t why_len)
{
	FILE *f = strcmp(name, "-") == 0 ? stdin : fopen(name, "rb");
	if (!f)
		snprintf(why, why_len, "%s: %s", name, strerror(errno));
	return f;
}

/* Appends the content of file `name` ("-": stdin) to `out`, without CR
 * and LF when `strip`. 0, or -1 with the reason. */
static int read_source(const char *name, int strip, ctl_buf *out, char *why, size_t why_len)
{
	FILE *f = open_source(name, why, why_len);
	if (!f)
		return -1;
	unsigned char tmp[65536];
	size_t k;
	int rc = 0;
	while (rc == 0 && (k = fread(tmp, 1, sizeof(tmp), f)) > 0) {
		if (strip)
			k = strip_crlf(tmp, k);
		if (ctl_buf_add(out, tmp, k) < 0) {
			snprintf(why, why_len, "out of memory");
			rc = -1;
		}
	}
	if (rc == 0 && ferror(f)) {
		snprintf(why, why_len, "%s: %s", name, strerror(errno));
		rc = -1;
	}
	if (f != stdin)
		fclose(f);
	return rc;
}

/* Appends `n` bytes percent-encoded as curl --data-urlencode does: all
 * but letters, digits and -._~ become %XX, a space becomes '+'. */
static int url_encode(ctl_buf *out, const unsigned char *p, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
		char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
		if (c == ' ') {
			plain = 1;
			c = '+';
		}
		if (ctl_buf_add(out, plain ? (const char *)&c : esc, plain ? 1 : 3) < 0)
			return -1;
	}
	return 0;
}

/*
 * Appends one --data-urlencode argument, in curl's forms: content,
 * =content, name=content, @file, name@file (the first '=', else the first
 * '@', splits name from what is encoded). 0 or -1 with the reason.
 */
static int add_urlencoded(ctl_buf *body, const char *arg, char *why, size_t why_len)
{
	const char *p = strchr(arg, '=');
	if (!p)
		p = strchr(arg, '@');
	size_t nlen = p ? (size_t)(p - arg) : 0;
	ctl_buf content = {0};
	int rc = 0;
	if (p && *p == '@')
		rc = read_source(p + 1, 0, &content, why, why_len);
	else if (ctl_buf_add(&content, p ? p + 1 : arg, strlen(p ? p + 1 : arg)) < 0)
		rc = -1;
	if (rc == 0 && nlen && (ctl_buf_add(body, arg, nlen) < 0 || ctl_buf_add(body, "=", 1) < 0))
		rc = -1;
	if (rc == 0 && url_encode(body, content.p, content.len) < 0)
		rc = -1;
	free(content.p);
	if (rc < 0 && !why[0])
		snprintf(why, why_len, "out of memory");
	return rc;
}

/* 1 when argument `a` reads a file or stdin as the body goes. */
static int reads_file(const ctl_body_arg *a)
{
	return a->kind == 'T' || ((a->kind == 'd' || a->kind == 'b') && a->arg[0] == '@');
}

/* Appends argument `a` in memory. 0 or -1 with the reason. */
static int add_in_memory(ctl_buf *body, const ctl_body_arg *a, char *why, size_t why_len)
{
	if (a->kind == 'u')
		return add_urlencoded(body, a->arg, why, why_len);
	if (reads_file(a))
		return read_source(a->arg + (a->kind != 'T'), a->kind == 'd', body, why, why_len);
	if (ctl_buf_add(body, a->arg, strlen(a->arg)) < 0) {
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	return 0;
}

/* The bytes file `f` will give: its size, or what is left of it with CR
 * and LF out when `strip` (a counting pass, then back to where it was);
 * -1 when it is not a regular file (a pipe, a terminal). */
static int64_t source_size(FILE *f, int strip)
{
	struct stat st;
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode))
		return -1;
	long at = ftell(f);
	if (at < 0)
		return -1;
	if (!strip)
		return (int64_t)st.st_size - at;
	unsigned char tmp[65536];
	size_t k;
	int64_t n = 0;
	while ((k = fread(tmp, 1, sizeof(tmp), f)) > 0)
		n += (int64_t)strip_crlf(tmp, k);
	if (ferror(f) || fseek(f, at, SEEK_SET) < 0)
		return -1;
	return n;
}

int ctl_body_prepare(ctl_body *b, const ctl_body_arg *args, size_t n, int in_memory, char *why,
		     size_t why_len)
{
	int stream = 0;
	for (size_t i = 0; i < n; i++)
		stream |= reads_file(&args[i]);
	if (!stream || in_memory) {
		for (size_t i = 0; i < n; i++) {
			if (b->mem.len && ctl_buf_add(&b->mem, "&", 1) < 0)
				goto oom;
			if (add_in_memory(&b->mem, &args[i], why, why_len) < 0)
				return -1;
		}
		return 0;
	}
	b->streamed = 1;
	b->parts = calloc(2 * n, sizeof(*b->parts));
	if (!b->parts)
		goto oom;
	b->size = 0;
	for (size_t i = 0; i < n; i++) {
		const ctl_body_arg *a = &args[i];
		ctl_body_part *p;
		if (i && a->kind != 'T') {
			p = &b->parts[b->n_parts++];
			if (ctl_buf_add(&p->lit, "&", 1) < 0)
				goto oom;
			b->size = b->size < 0 ? -1 : b->size + 1;
		}
		p = &b->parts[b->n_parts++];
		if (!reads_file(a)) {
			if (add_in_memory(&p->lit, a, why, why_len) < 0)
				return -1;
			b->size = b->size < 0 ? -1 : b->size + (int64_t)p->lit.len;
			continue;
		}
		p->name = a->arg + (a->kind != 'T');
		p->strip = a->kind == 'd';
		p->f = open_source(p->name, why, why_len);
		if (!p->f)
			return -1;
		int64_t k = source_size(p->f, p->strip);
		b->size = b->size < 0 || k < 0 ? -1 : b->size + k;
	}
	return 0;
oom:
	snprintf(why, why_len, "out of memory");
	return -1;
}

/* Writes `n` bytes; 0, 1 (no more wanted) or a libporter code. */
static int put(porter_http_upload *u, const void *p, size_t n, int (*timeout)(void *), void *arg,
	       uint64_t *sent)
{
	int rc = porter_http_upload_write(u, p, n, 0, timeout(arg));
	if (rc == 0)
		*sent += n;
	return rc;
}

int ctl_body_send(ctl_body *b, porter_http_upload *u, int (*timeout)(void *arg), void *arg,
		  uint64_t *sent, char *why, size_t why_len)
{
	unsigned char *tmp = NULL;
	int rc = 0;
	*sent = 0;
	for (size_t i = 0; i < b->n_parts && rc == 0; i++) {
		ctl_body_part *p = &b->parts[i];
		if (!p->f) {
			if (p->lit.len)
				rc = put(u, p->lit.p, p->lit.len, timeout, arg, sent);
			continue;
		}
		if (!tmp && !(tmp = malloc(BODY_READ))) {
			snprintf(why, why_len, "out of memory");
			return CTL_BODY_READ_FAILED;
		}
		size_t k;
		while (rc == 0 && (k = fread(tmp, 1, BODY_READ, p->f)) > 0) {
			if (p->strip)
				k = strip_crlf(tmp, k);
			if (k)
				rc = put(u, tmp, k, timeout, arg, sent);
		}
		if (rc == 0 && ferror(p->f)) {
			snprintf(why, why_len, "%s: %s", p->name, strerror(errno));
			rc = CTL_BODY_READ_FAILED;
		}
	}
	free(tmp);
	return rc;
}

void ctl_body_free(ctl_body *b)
{
	free(b->mem.p);
	for (size_t i = 0; i < b->n_parts; i++) {
		free(b->parts[i].lit.p);
		if (b->parts[i].f && b->parts[i].f != stdin)
			fclose(b->parts[i].f);
	}
	free(b->parts);
	memset(b, 0, sizeof(*b));
}
