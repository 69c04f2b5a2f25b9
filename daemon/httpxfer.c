/* httpxfer - one HTTP transfer and the response it collects; see
 * httpxfer.h. */
#include "httpxfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clients.h"
#include "connout.h"
#include "porter_errors.h"

/* ---- the response ---- */

/* header_bytes is not reset: it bounds every head of the transfer
 * together, since the hops' heads go out in the same reply. Nor is hbytes:
 * the kept hops' headers point into it. */
void httpxfer_headers_clear(http_xfer *x)
{
	x->n_headers = 0;
}

int httpxfer_keep_hop(http_xfer *x)
{
	http_hop *nh = realloc(x->hops, (x->n_hops + 1) * sizeof(*nh));
	if (!nh)
		return -1;
	x->hops = nh;
	http_hop *h = &x->hops[x->n_hops++];
	memcpy(h->status_line, x->status_line, sizeof(h->status_line));
	/* The headers move as they are: no copy. */
	h->headers = x->headers;
	h->n_headers = x->n_headers;
	x->headers = NULL;
	x->n_headers = x->cap_headers = 0;
	return 0;
}

/* Keeps the status line of a response (CR/LF cut, control bytes shown as
 * '?' so that a terminal printing it cannot be steered by the server). */
static void keep_status_line(http_xfer *x, const char *b, size_t len)
{
	while (len && (b[len - 1] == '\n' || b[len - 1] == '\r'))
		len--;
	if (len >= sizeof(x->status_line))
		len = sizeof(x->status_line) - 1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)b[i];
		x->status_line[i] = c < 0x20 || c == 0x7f || c >= 0x80 ? '?' : (char)c;
	}
	x->status_line[len] = 0;
}

static const char *header_get(const http_xfer *x, const char *name)
{
	for (size_t i = 0; i < x->n_headers; i++)
		if (strcasecmp(x->hbytes + x->headers[i].name, name) == 0)
			return x->hbytes + x->headers[i].value;
	return NULL;
}

/* Appends "name\0value\0" to x->hbytes and the header pointing at them to
 * x->headers. 0, or -1 when out of memory. */
static int header_add(http_xfer *x, const char *name, size_t nlen, const char *value, size_t vlen)
{
	if (x->n_headers == x->cap_headers) {
		size_t nc = x->cap_headers ? x->cap_headers * 2 : 16;
		http_header *nh = realloc(x->headers, nc * sizeof(*nh));
		if (!nh)
			return -1;
		x->headers = nh;
		x->cap_headers = nc;
	}
	size_t need = nlen + vlen + 2;
	if (x->hcap - x->hlen < need) {
		size_t nc = x->hcap ? x->hcap : 1024;
		while (nc - x->hlen < need)
			nc *= 2;
		char *nb = realloc(x->hbytes, nc);
		if (!nb)
			return -1;
		x->hbytes = nb;
		x->hcap = nc;
	}
	/* Offsets, not pointers: the block may move as it grows. The heads
	 * are bounded far below 4 GiB (HTTPXFER_MAX_HEADER_BYTES). */
	http_header *h = &x->headers[x->n_headers++];
	h->name = (uint32_t)x->hlen;
	memcpy(x->hbytes + x->hlen, name, nlen);
	x->hlen += nlen;
	x->hbytes[x->hlen++] = 0;
	h->value = (uint32_t)x->hlen;
	memcpy(x->hbytes + x->hlen, value, vlen);
	x->hlen += vlen;
	x->hbytes[x->hlen++] = 0;
	return 0;
}

static int is_redirect(long status)
{
	return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/*
 * Makes x->buf hold at least `need` bytes, its x->len kept. From
 * HTTPBUF_MIN up the buffer is one of the worker's kept mappings
 * (httpbuf.h), so a large body does not fault its pages in afresh; below,
 * malloc's. 0, or -1 when out of memory (x->buf unchanged).
 */
static int buf_reserve(http_xfer *x, size_t need)
{
	uint8_t *nb;
	size_t cap = need;
	if (need <= x->cap)
		return 0;
	if (x->body_acct && need > x->body_counted) {
		if (!clients_take(x->body_acct, CLIENTS_BUFFERED, need - x->body_counted,
				  x->body_quota)) {
			x->over_quota = 1;
			return -1;
		}
		x->body_counted = need;
	}
	if (x->buf_cached) {
		nb = httpbuf_grow(x->buf, x->len, need, &cap);
	} else if (need >= HTTPBUF_MIN && x->bufs) {
		if ((nb = httpbuf_get(x->bufs, need, &cap))) {
			if (x->len)
				memcpy(nb, x->buf, x->len);
			free(x->buf);
			x->buf_cached = 1;
		}
	} else {
		nb = realloc(x->buf, need);
	}
	if (!nb)
		return -1;
	x->buf = nb;
	x->cap = cap;
	return 0;
}

/* The body buffer stops counting in its uid's buffered bytes. */
static void buf_uncount(http_xfer *x)
{
	clients_put(x->body_acct, CLIENTS_BUFFERED, x->body_counted);
	x->body_counted = 0;
}

/* Gives the body buffer back (to the worker's cache or to malloc). */
static void buf_release(http_xfer *x)
{
	if (x->buf_cached)
		httpbuf_release(x->buf);
	else
		free(x->buf);
	x->buf = NULL;
	x->buf_cached = 0;
	x->len = x->cap = 0;
	buf_uncount(x);
}

/* A whole response with a known length gets its buffer in one piece
 * rather than by doubling (an over-limit length fails later, in libcurl's
 * CURLOPT_MAXFILESIZE check or the write callback). A failure here is
 * left to the write callback's own growth. */
static void reserve_body(http_xfer *x)
{
	const char *cl = header_get(x, "Content-Length");
	char *end;
	if (!cl)
		return;
	unsigned long long n = strtoull(cl, &end, 10);
	if (*end || n == 0 || n <= x->cap || (x->limit && n > x->limit) || n > SIZE_MAX / 2)
		return;
	(void)buf_reserve(x, (size_t)n);
	/* Nor is a declared length past the quota a failure yet: the body
	 * may be shorter (the write callback's growth decides). */
	x->over_quota = 0;
}

/* CURLOPT_HEADERFUNCTION: keeps the headers of the latest response only
 * (each redirect hop and each 1xx starts a new block). */
size_t httpxfer_on_header(char *b, size_t size, size_t n, void *ud)
{
	http_xfer *x = ud;
	size_t len = size * n;
	(void)size;
	if (x->state == XFER_REAPING)
		return 0;
	if (len >= 5 && memcmp(b, "HTTP/", 5) == 0) {
		x->header_bytes += len + HTTPXFER_HEADER_OVERHEAD;
		if (x->header_bytes > HTTPXFER_MAX_HEADER_BYTES) {
			x->too_large = 2;
			return 0;
		}
		keep_status_line(x, b, len);
		httpxfer_headers_clear(x);
		x->discard = 0;
		x->head_done = 0;
		x->status = 0;
		const char *sp = memchr(b, ' ', len);
		if (sp && (size_t)(sp - b) + 4 <= len)
			x->status = strtol(sp + 1, NULL, 10);
		return len;
	}
	x->header_bytes += len + HTTPXFER_HEADER_OVERHEAD;
	if (x->header_bytes > HTTPXFER_MAX_HEADER_BYTES) {
		x->too_large = 2; /* the heads, not the body */
		return 0;
	}
	while (len && (b[len - 1] == '\n' || b[len - 1] == '\r'))
		len--;
	if (len == 0) {
		/* End of a header block. */
		if (x->follow && is_redirect(x->status) && header_get(x, "Location"))
			x->discard = 1;
		else if (x->status >= 200)
			x->head_done = 1;
		if (x->head_done && !x->stream)
			reserve_body(x);
		return size * n;
	}
	const char *colon = memchr(b, ':', len);
	if (!colon)
		return size * n; /* folded continuation or junk: ignored */
	const char *v = colon + 1, *end = b + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	if (header_add(x, b, (size_t)(colon - b), v, (size_t)(end - v)) < 0)
		return 0;
	return size * n;
}

void httpxfer_set_timings(http_xfer *x)
{
	curl_off_t t;
	Porter__V1__HttpTimings init = PORTER__V1__HTTP_TIMINGS__INIT;
	x->timings = init;
	if (curl_easy_getinfo(x->easy, CURLINFO_NAMELOOKUP_TIME_T, &t) == CURLE_OK)
		x->timings.namelookup_us = (uint64_t)t;
	if (curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME_T, &t) == CURLE_OK)
		x->timings.connect_us = (uint64_t)t;
	if (curl_easy_getinfo(x->easy, CURLINFO_APPCONNECT_TIME_T, &t) == CURLE_OK)
		x->timings.tls_us = (uint64_t)t;
	if (curl_easy_getinfo(x->easy, CURLINFO_STARTTRANSFER_TIME_T, &t) == CURLE_OK)
		x->timings.first_byte_us = (uint64_t)t;
	x->timings.total_us = (uv_hrtime() - x->start_ns) / 1000;
}

/* Points `n` header messages at the kept headers `h`, whose strings are in
 * `bytes`; returns `n`. */
static size_t fill_headers(Porter__V1__HttpHeader *hv, Porter__V1__HttpHeader **hp,
			   const http_header *h, size_t n, char *bytes)
{
	for (size_t i = 0; i < n; i++) {
		porter__v1__http_header__init(&hv[i]);
		hv[i].name = bytes + h[i].name;
		hv[i].value = bytes + h[i].value;
		hp[i] = &hv[i];
	}
	return n;
}

/* Header messages of a reply built on the stack; more take a block. */
#define REPLY_LOCAL_HEADERS 16

/*
 * Answers x->r with the status, headers (first reply of a stream or a
 * whole response) and the buffered body, then empties the buffer. `last`
 * adds the timings and clears `more`. No libcurl call: this runs inside the
 * write callback too.
 */
void httpxfer_reply_body(http_xfer *x, int last)
{
	req *r = x->r;
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__HttpResponse hr = PORTER__V1__HTTP_RESPONSE__INIT;
	/* A usual head fits on the stack; a larger one takes one block
	 * (hv_heap owns it). */
	Porter__V1__HttpHeader hv_local[REPLY_LOCAL_HEADERS], *hp_local[REPLY_LOCAL_HEADERS];
	Porter__V1__HttpHeader *hv = NULL, **hp = NULL, *hv_heap = NULL;
	Porter__V1__HttpHop *ov = NULL, **op = NULL;

	x->r = NULL;
	r->cancel = NULL;
	r->op = NULL;
	if (!x->sent_head) {
		hr.status = (int32_t)x->status;
		hr.status_line = x->status_line;
		hr.effective_url = (char *)x->url;
		hr.redirects = x->redirects;
		/* One array of header messages for the final head and every
		 * hop's, pointing at the kept strings (no copy). */
		size_t total = x->n_headers;
		for (size_t i = 0; i < x->n_hops; i++)
			total += x->hops[i].n_headers;
		/* One block for the header messages and their pointers,
		 * one for the hops' (hv_heap and ov own them). */
		if (total <= REPLY_LOCAL_HEADERS) {
			hv = hv_local;
			hp = hp_local;
		} else if ((hv = hv_heap = malloc(total * (sizeof(*hv) + sizeof(*hp))))) {
			hp = (Porter__V1__HttpHeader **)(hv + total);
		}
		ov = x->n_hops ? malloc(x->n_hops * (sizeof(*ov) + sizeof(*op))) : NULL;
		op = ov ? (Porter__V1__HttpHop **)(ov + x->n_hops) : NULL;
		if (!hv || (x->n_hops && !ov)) {
			free(hv_heap);
			free(ov);
			req_fail(r, PORTER_E_NOMEM, "out of memory building the HTTP response");
			return;
		}
		size_t k = 0;
		for (size_t i = 0; i < x->n_hops; i++) {
			porter__v1__http_hop__init(&ov[i]);
			ov[i].status_line = x->hops[i].status_line;
			ov[i].n_headers = x->hops[i].n_headers;
			if (x->hops[i].n_headers) {
				ov[i].headers = hp + k;
				k += fill_headers(hv + k, hp + k, x->hops[i].headers,
						  x->hops[i].n_headers, x->hbytes);
			}
			op[i] = &ov[i];
		}
		hr.n_hops = x->n_hops;
		hr.hops = op;
		if (x->n_headers) {
			hr.n_headers = x->n_headers;
			hr.headers = hp + k;
			fill_headers(hv + k, hp + k, x->headers, x->n_headers, x->hbytes);
		}
		x->sent_head = 1;
	}
	hr.stream_id = x->stream_id;
	hr.body.data = x->buf;
	hr.body.len = x->len;
	if (last)
		hr.timings = &x->timings;
	resp.more = !last;
	resp.body_case = PORTER__V1__RESPONSE__BODY_HTTP;
	resp.http = &hr;
	/* The body goes to the client from where the write callback put it
	 * (conn_send_take): a whole response's buffer is handed over (the
	 * transfer ends with this reply), and so is a stream's chunk large
	 * enough to go out in place (the next chunk gets a buffer of its
	 * own); a small chunk is copied and its buffer kept for the next. */
	uint8_t *take = NULL;
	void (*release)(void *) = x->buf_cached ? httpbuf_release : free;
	if (x->len && (!x->stream || x->len >= CONN_TAKE_MIN)) {
		take = x->buf;
		x->buf = NULL;
		x->buf_cached = 0;
		x->cap = 0;
		/* Counted from here as the connection's unsent reply (the
		 * same bytes must not count twice against the quota). */
		buf_uncount(x);
	}
	req_reply_take_with(r, &resp, take, release);
	free(hv_heap);
	free(ov);
	x->len = 0;
	x->idle_since = uv_now(x->loop);
}

void httpxfer_reply_error(http_xfer *x)
{
	req *r = x->r;
	Porter__V1__ErrorDetail d = PORTER__V1__ERROR_DETAIL__INIT;
	x->r = NULL;
	r->cancel = NULL;
	r->op = NULL;
	if (x->status > 0)
		d.http_status = (int32_t)x->status;
	req_fail_detail(r, x->err, &d, "%s", x->err_msg);
}

static int buf_append(http_xfer *x, const void *p, size_t n)
{
	if (x->len + n > x->cap) {
		/* A stream's chunk is cut once it reaches chunk_cap, so it
		 * never holds more than that plus one delivery. */
		size_t nc = x->cap      ? x->cap
			    : x->stream ? x->chunk_cap + CURL_MAX_WRITE_SIZE
					: 16384;
		while (nc < x->len + n)
			nc *= 2;
		if (buf_reserve(x, nc) < 0)
			return -1;
	}
	memcpy(x->buf + x->len, p, n);
	x->len += n;
	return 0;
}

/* CURLOPT_WRITEFUNCTION. Enforces the size limit as data arrives, and for
 * streams pauses when the chunk is full and nobody has pulled it. */
size_t httpxfer_on_write(char *p, size_t size, size_t n, void *ud)
{
	http_xfer *x = ud;
	size_t len = size * n;
	if (x->state == XFER_REAPING)
		return 0;
	if (x->discard)
		return len;
	if (x->stream && x->len >= x->chunk_cap) {
		x->paused = 1;
		return CURL_WRITEFUNC_PAUSE;
	}
	if (x->limit && x->received + len > x->limit) {
		x->too_large = 1;
		return 0;
	}
	if (buf_append(x, p, len) < 0)
		return 0;
	x->received += len;
	if (x->stream && x->len >= x->chunk_cap && x->r)
		httpxfer_reply_body(x, 0);
	return len;
}

/* ---- errors ---- */

void httpxfer_fail(http_xfer *x, int code, const char *fmt, const char *arg)
{
	x->err = code;
	snprintf(x->err_msg, sizeof(x->err_msg), fmt, arg);
}

void httpxfer_map_error(http_xfer *x, CURLcode rc)
{
	const char *what = x->curl_err[0] ? x->curl_err : curl_easy_strerror(rc);
	if (x->over_quota && rc == CURLE_WRITE_ERROR) {
		x->err = PORTER_E_BUSY;
		snprintf(x->err_msg, sizeof(x->err_msg),
			 "this uid holds too many buffered bytes (uid-max-buffered = %llu) for "
			 "this response's body (%llu bytes so far): stream large responses",
			 (unsigned long long)x->body_quota, (unsigned long long)x->received);
		return;
	}
	if (x->too_large == 2) {
		x->err = PORTER_E_HTTP_TOO_LARGE;
		snprintf(x->err_msg, sizeof(x->err_msg),
			 "response headers larger than porterd's limit of %u bytes (the heads of "
			 "every redirect hop count together)",
			 (unsigned)HTTPXFER_MAX_HEADER_BYTES);
		return;
	}
	if (x->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
		x->err = PORTER_E_HTTP_TOO_LARGE;
		snprintf(x->err_msg, sizeof(x->err_msg),
			 "response larger than the limit of %llu bytes",
			 (unsigned long long)x->limit);
		return;
	}
	switch (rc) {
	case CURLE_URL_MALFORMAT:
		httpxfer_fail(x, PORTER_E_INVAL, "malformed URL: %s", what);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		if (x->redirects) {
			/* libcurl's text counts from the last hop only. */
			x->err = PORTER_E_TIMEOUT;
			snprintf(
				x->err_msg, sizeof(x->err_msg),
				"HTTP transfer timed out after %u redirects: the deadline covers every hop",
				x->redirects);
		} else {
			httpxfer_fail(x, PORTER_E_TIMEOUT, "HTTP transfer timed out: %s", what);
		}
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		httpxfer_fail(x, PORTER_E_HTTP_CONNECT, "HTTP connection failed: %s", what);
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		httpxfer_fail(x, PORTER_E_HTTP_TLS, "TLS failed: %s", what);
		break;
	case CURLE_TOO_MANY_REDIRECTS:
		httpxfer_fail(x, PORTER_E_HTTP_REDIRECTS, "too many redirects: %s", what);
		break;
	default:
		httpxfer_fail(x, PORTER_E_HTTP, "HTTP transfer failed: %s", what);
		break;
	}
}

/* Frees what the request and its response hold. */
void httpxfer_free_buffers(http_xfer *x)
{
	curl_slist_free_all(x->hdrs);
	x->hdrs = NULL;
	httpxfer_headers_clear(x);
	free(x->headers);
	x->headers = NULL;
	x->cap_headers = 0;
	for (size_t i = 0; i < x->n_hops; i++)
		free(x->hops[i].headers);
	free(x->hops);
	x->hops = NULL;
	x->n_hops = 0;
	free(x->hbytes);
	x->hbytes = NULL;
	x->hlen = x->hcap = 0;
	free(x->body_own);
	x->body_own = NULL;
	x->body = NULL;
	arena_free(&x->msg);
	buf_release(x);
}
