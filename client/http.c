/* http - the HTTP calls of libporter; see porter.h. */
#include "porter.h"

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pbatch.h"
#include "pbg.h"
#include "pconn.h"
#include "pout.h"

struct porter_http_response {
	/* Everything below points into this unpacked message (zero copy),
	 * which `mem` holds with all its pieces. */
	Porter__V1__Response *msg;
	Porter__V1__HttpResponse *hr;
	arena mem;
	porter_http_timings timings;
};

struct porter_http_stream {
	porter_http_response head; /* status, headers; msg owned */
	uint64_t id;
	uint64_t call_id;          /* the open's id, used by reads that pass 0 */
	int64_t deadline;          /* opts->transfer_timeout_ms from open; 0: none */
	int more;                  /* the daemon has more to give */
	Porter__V1__Response *cur; /* the chunk last handed out, in cur_mem */
	arena cur_mem;
	const uint8_t *first; /* the first chunk, inside head.msg */
	size_t first_len;
	int first_taken;
	/* The code of a read that ended the stream in failure: every later
	 * read returns it again, so a caller that reads on is never handed a
	 * truncated body as a clean end. */
	int failed;
};

/* Set by the reply of a failed HTTP call; every public HTTP call clears
 * it on entry, so a failure found before anything is sent (a bad
 * argument, a deadline already past, a stream or upload that failed
 * earlier) never shows the status of an older call: a Dart caller would
 * take that status for this failure's. */
static __thread int last_http_status;

int porter_http_last_status(void)
{
	return last_http_status;
}

/* Splits "Name: value" lines into HttpHeader messages (pointing into the
 * caller's strings, names copied). Returns 0 or a code. */
static int build_headers(const char *const *lines, size_t n, Porter__V1__HttpHeader **hv_out,
			 Porter__V1__HttpHeader ***hp_out)
{
	Porter__V1__HttpHeader *hv = NULL, **hp = NULL;
	*hv_out = NULL;
	*hp_out = NULL;
	if (n == 0)
		return 0;
	if (!lines)
		return pconn_set_error(PORTER_E_INVAL, "headers is NULL");
	hv = calloc(n, sizeof(*hv));
	hp = calloc(n, sizeof(*hp));
	if (!hv || !hp)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		const char *l = lines[i];
		const char *colon = l ? strchr(l, ':') : NULL;
		if (!colon || colon == l) {
			for (size_t j = 0; j < i; j++)
				free(hv[j].name);
			free(hv);
			free(hp);
			return pconn_set_error(PORTER_E_INVAL,
					       "header %zu is not a 'Name: value' line", i);
		}
		porter__v1__http_header__init(&hv[i]);
		hv[i].name = strndup(l, (size_t)(colon - l));
		if (!hv[i].name) {
			for (size_t j = 0; j < i; j++)
				free(hv[j].name);
			goto nomem;
		}
		const char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		hv[i].value = (char *)v;
		hp[i] = &hv[i];
	}
	*hv_out = hv;
	*hp_out = hp;
	return 0;
nomem:
	free(hv);
	free(hp);
	return pconn_set_error(PORTER_E_NOMEM, "out of memory");
}

static void free_headers(Porter__V1__HttpHeader *hv, size_t n, Porter__V1__HttpHeader **hp)
{
	for (size_t i = 0; hv && i < n; i++)
		free(hv[i].name);
	free(hv);
	free(hp);
}

static void set_timings(porter_http_response *r, const Porter__V1__HttpTimings *t)
{
	if (!t)
		return;
	r->timings.namelookup_us = t->namelookup_us;
	r->timings.connect_us = t->connect_us;
	r->timings.tls_us = t->tls_us;
	r->timings.first_byte_us = t->first_byte_us;
	r->timings.total_us = t->total_us;
}

/* Sends one HTTP request message; on success `*out` holds a response
 * whose body is HTTP, unpacked into `mem` (initialised by the caller, who
 * ends it with arena_free in every case). */
static int call_http(Porter__V1__Request *req, int timeout_ms, enum pconn_retry retry, arena *mem,
		     Porter__V1__Response **out)
{
	Porter__V1__Response *resp = NULL;
	last_http_status = 0;
	int rc = pconn_call_arena(req, timeout_ms, retry, mem, &resp);
	if (rc < 0) {
		if (resp && resp->error)
			last_http_status = resp->error->http_status;
		return rc;
	}
	if (resp->body_case != PORTER__V1__RESPONSE__BODY_HTTP)
		return pconn_set_error(PORTER_E_PROTOCOL, "HTTP reply missing");
	*out = resp;
	return 0;
}

/* Pulls the next piece of stream `stream_id` (HttpFetch) with request id
 * `call_id`, waiting at most `wait` ms, the reply into `mem` (as for
 * call_http). Not retried: a repeated pull
 * would skip a chunk. */
static int fetch_http(uint64_t stream_id, uint64_t call_id, int wait, arena *mem,
		      Porter__V1__Response **out)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__HttpFetch f = PORTER__V1__HTTP_FETCH__INIT;
	f.stream_id = stream_id;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_HTTP_FETCH;
	req.http_fetch = &f;
	return call_http(&req, wait, PCONN_ONCE, mem, out);
}

/* Fills `req`/`hr` from the caller's arguments; the header arrays it
 * allocates are returned in *hv and *hp for free_headers. */
static int build_request(Porter__V1__Request *req, Porter__V1__HttpRequest *hr, const char *method,
			 const char *url, const char *const *headers, size_t n_headers,
			 const void *body, size_t body_len, const porter_http_options *opts,
			 int stream, Porter__V1__HttpHeader **hv, Porter__V1__HttpHeader ***hp)
{
	if (!url)
		return pconn_set_error(PORTER_E_INVAL, "url is NULL");
	if (body_len && !body)
		return pconn_set_error(PORTER_E_INVAL, "body is NULL but body_len is not 0");
	/* Version 1's struct ends with chunk_size; a later caller's larger
	 * struct is fine (its extra fields are not read). */
	if (opts && opts->struct_size <
			    offsetof(porter_http_options, chunk_size) + sizeof(opts->chunk_size))
		return pconn_set_error(PORTER_E_INVAL,
				       "opts->struct_size is %zu: initialise the options with "
				       "PORTER_HTTP_OPTIONS_INIT",
				       opts->struct_size);
	int rc = build_headers(headers, n_headers, hv, hp);
	if (rc < 0)
		return rc;
	hr->method = (char *)(method ? method : "GET");
	hr->url = (char *)url;
	hr->n_headers = n_headers;
	hr->headers = *hp;
	hr->body.data = (uint8_t *)body;
	hr->body.len = body_len;
	if (opts) {
		hr->follow_redirects = opts->follow_redirects != 0;
		hr->max_redirects = opts->max_redirects;
		hr->max_response = opts->max_response;
		hr->transfer_timeout_ms = opts->transfer_timeout_ms;
		hr->chunk_size = opts->chunk_size;
		/* Added after version 1: read only from a struct that has it. */
		if (opts->struct_size >= offsetof(porter_http_options, keep_credentials) +
						 sizeof(opts->keep_credentials))
			hr->keep_credentials = opts->keep_credentials != 0;
		if (opts->struct_size >= offsetof(porter_http_options, connect_timeout_ms) +
						 sizeof(opts->connect_timeout_ms))
			hr->connect_timeout_ms = opts->connect_timeout_ms;
	}
	hr->stream = stream;
	req->body_case = PORTER__V1__REQUEST__BODY_HTTP;
	req->http = hr;
	return 0;
}

/* Sends the request; on success `*out` is the reply, in `mem` (as for
 * call_http). */
static int start(const char *method, const char *url, const char *const *headers, size_t n_headers,
		 const void *body, size_t body_len, const porter_http_options *opts, int stream,
		 uint64_t call_id, int timeout_ms, arena *mem, Porter__V1__Response **out)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__HttpRequest hr = PORTER__V1__HTTP_REQUEST__INIT;
	Porter__V1__HttpHeader *hv = NULL, **hp = NULL;

	if (!out)
		return pconn_set_error(PORTER_E_INVAL, "out is NULL");
	int rc = build_request(&req, &hr, method, url, headers, n_headers, body, body_len, opts,
			       stream, &hv, &hp);
	if (rc < 0)
		return rc;
	req.id = call_id;
	/* Only safe methods may be sent twice. */
	int safe = strcasecmp(hr.method, "GET") == 0 || strcasecmp(hr.method, "HEAD") == 0;
	rc = call_http(&req, timeout_ms, safe ? PCONN_IDEMPOTENT : PCONN_ONCE, mem, out);
	free_headers(hv, n_headers, hp);
	return rc;
}

/* Wraps a response unpacked into `mem` in a response object, which takes
 * `mem` over (it is left empty). */
static int wrap_response(Porter__V1__Response *resp, arena *mem, porter_http_response **out)
{
	porter_http_response *r = calloc(1, sizeof(*r));
	if (!r) {
		arena_free(mem);
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	}
	arena_move(&r->mem, mem);
	r->msg = resp;
	r->hr = resp->http;
	set_timings(r, r->hr->timings);
	*out = r;
	return 0;
}

int porter_batch_add_http(porter_batch *b, const char *method, const char *url,
			  const char *const *headers, size_t n_headers, const void *body,
			  size_t body_len, const porter_http_options *opts, int timeout_ms)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__HttpRequest hr = PORTER__V1__HTTP_REQUEST__INIT;
	Porter__V1__HttpHeader *hv = NULL, **hp = NULL;
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "negative timeout");
	int rc = build_request(&req, &hr, method, url, headers, n_headers, body, body_len, opts, 0,
			       &hv, &hp);
	if (rc < 0)
		return rc;
	req.timeout_ms = (uint32_t)timeout_ms;
	rc = pbatch_add(b, &req);
	free_headers(hv, n_headers, hp);
	return rc;
}

int porter_batch_result_http(const porter_batch_result *r, size_t i, porter_http_response **out)
{
	if (out)
		*out = NULL;
	if (!out)
		return pconn_set_error(PORTER_E_INVAL, "out is NULL");
	const Porter__V1__Response *m = pbatch_member(r, i);
	if (!m || m->status != 0 || m->body_case != PORTER__V1__RESPONSE__BODY_HTTP)
		return pconn_set_error(PORTER_E_INVAL,
				       "member %zu is not a successful HTTP request", i);
	/* A copy, so the response outlives the batch result like any other. */
	size_t len = protobuf_c_message_get_packed_size(&m->base);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	protobuf_c_message_pack(&m->base, buf);
	arena mem;
	arena_init(&mem, 0);
	Porter__V1__Response *copy = porter__v1__response__unpack(&mem.base, len, buf);
	free(buf);
	if (!copy) {
		arena_free(&mem);
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	}
	return wrap_response(copy, &mem, out);
}

int porter_http_request(const char *method, const char *url, const char *const *headers,
			size_t n_headers, const void *body, size_t body_len,
			const porter_http_options *opts, uint64_t call_id, int timeout_ms,
			porter_http_response **out)
{
	last_http_status = 0;
	if (!out)
		return pconn_set_error(PORTER_E_INVAL, "out is NULL");
	*out = NULL;
	Porter__V1__Response *resp = NULL;
	arena mem;
	arena_init(&mem, 0);
	int rc = start(method, url, headers, n_headers, body, body_len, opts, 0, call_id,
		       timeout_ms, &mem, &resp);
	if (rc < 0) {
		arena_free(&mem);
		return rc;
	}
	return wrap_response(resp, &mem, out);
}

int porter_http_get(const char *url, uint64_t call_id, int timeout_ms, porter_http_response **out)
{
	porter_http_options o = {.struct_size = sizeof(porter_http_options), .follow_redirects = 1};
	return porter_http_request("GET", url, NULL, 0, NULL, 0, &o, call_id, timeout_ms, out);
}

int porter_http_post_json(const char *url, const char *json, size_t len, uint64_t call_id,
			  int timeout_ms, porter_http_response **out)
{
	static const char *const h[] = {"Content-Type: application/json"};
	porter_http_options o = {.struct_size = sizeof(porter_http_options), .follow_redirects = 1};
	return porter_http_request("POST", url, h, 1, json, len, &o, call_id, timeout_ms, out);
}

int porter_http_response_status(const porter_http_response *r)
{
	return r ? r->hr->status : 0;
}

const char *porter_http_response_header(const porter_http_response *r, const char *name)
{
	if (!r || !name)
		return NULL;
	for (size_t i = 0; i < r->hr->n_headers; i++)
		if (strcasecmp(r->hr->headers[i]->name, name) == 0)
			return r->hr->headers[i]->value;
	return NULL;
}

size_t porter_http_response_header_count(const porter_http_response *r)
{
	return r ? r->hr->n_headers : 0;
}

/* Header `i` of `n` in `hv` into `*name` and `*value` (either may be NULL;
 * both NULL when `i` is out of range). */
static int header_at(Porter__V1__HttpHeader *const *hv, size_t n, size_t i, const char **name,
		     const char **value)
{
	if (name)
		*name = i < n ? hv[i]->name : NULL;
	if (value)
		*value = i < n ? hv[i]->value : NULL;
	return i < n ? 0 : PORTER_E_INVAL;
}

int porter_http_response_header_at(const porter_http_response *r, size_t i, const char **name,
				   const char **value)
{
	return r ? header_at(r->hr->headers, r->hr->n_headers, i, name, value)
		 : header_at(NULL, 0, i, name, value);
}

const void *porter_http_response_body(const porter_http_response *r, size_t *len)
{
	if (len)
		*len = r ? r->hr->body.len : 0;
	return r && r->hr->body.data ? (const void *)r->hr->body.data : (const void *)"";
}

const char *porter_http_response_effective_url(const porter_http_response *r)
{
	return r && r->hr->effective_url ? r->hr->effective_url : "";
}

uint32_t porter_http_response_redirects(const porter_http_response *r)
{
	return r ? r->hr->redirects : 0;
}

const char *porter_http_response_status_line(const porter_http_response *r)
{
	return r && r->hr->status_line ? r->hr->status_line : "";
}

size_t porter_http_response_hop_count(const porter_http_response *r)
{
	return r ? r->hr->n_hops : 0;
}

static const Porter__V1__HttpHop *hop_at(const porter_http_response *r, size_t hop)
{
	return r && hop < r->hr->n_hops ? r->hr->hops[hop] : NULL;
}

const char *porter_http_response_hop_status_line(const porter_http_response *r, size_t hop)
{
	const Porter__V1__HttpHop *h = hop_at(r, hop);
	return h ? (h->status_line ? h->status_line : "") : NULL;
}

size_t porter_http_response_hop_header_count(const porter_http_response *r, size_t hop)
{
	const Porter__V1__HttpHop *h = hop_at(r, hop);
	return h ? h->n_headers : 0;
}

int porter_http_response_hop_header_at(const porter_http_response *r, size_t hop, size_t i,
				       const char **name, const char **value)
{
	const Porter__V1__HttpHop *h = hop_at(r, hop);
	return h ? header_at(h->headers, h->n_headers, i, name, value)
		 : header_at(NULL, 0, i, name, value);
}

int porter_http_response_timings(const porter_http_response *r, porter_http_timings *out)
{
	int rc = pout_check(out, POUT_V1(porter_http_timings, total_us), "porter_http_timings");
	if (rc < 0)
		return rc;
	pout_put(out, r ? &r->timings : NULL, sizeof(*out));
	return r ? 0 : pconn_set_error(PORTER_E_INVAL, "response is NULL");
}

void porter_http_response_free(porter_http_response *r)
{
	if (!r)
		return;
	arena_free(&r->mem);
	free(r);
}

/* ---- streams ---- */

static int stream_new(Porter__V1__Response *resp, arena *mem, uint64_t call_id, int64_t deadline,
		      porter_http_stream **out);

int porter_http_stream_open(const char *method, const char *url, const char *const *headers,
			    size_t n_headers, const void *body, size_t body_len,
			    const porter_http_options *opts, uint64_t call_id, int timeout_ms,
			    porter_http_stream **out)
{
	last_http_status = 0;
	if (!out)
		return pconn_set_error(PORTER_E_INVAL, "out is NULL");
	*out = NULL;
	Porter__V1__Response *resp = NULL;
	/* The stream's deadline counts from now; build_request checks opts. */
	uint32_t total = opts && opts->struct_size >= sizeof(porter_http_options)
				 ? opts->transfer_timeout_ms
				 : 0;
	int64_t deadline = pconn_stream_deadline(total);
	int wait;
	int rc = pconn_bounded(deadline, timeout_ms, &wait);
	if (rc < 0)
		return rc;
	/* One id for the open and every pull, so a cancel reaches them all. */
	if (!call_id)
		call_id = pconn_next_id();
	arena mem;
	arena_init(&mem, 0);
	rc = start(method, url, headers, n_headers, body, body_len, opts, 1, call_id, wait, &mem,
		   &resp);
	if (rc < 0) {
		arena_free(&mem);
		return rc;
	}
	return stream_new(resp, &mem, call_id, deadline, out);
}

/* Wraps the first reply of a stream, unpacked into `mem` (taken over, left
 * empty), in a stream handle. */
static int stream_new(Porter__V1__Response *resp, arena *mem, uint64_t call_id, int64_t deadline,
		      porter_http_stream **out)
{
	porter_http_stream *s = calloc(1, sizeof(*s));
	if (!s) {
		arena_free(mem);
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	}
	/* The head and the first chunk share one message: the stream keeps
	 * it as the head and hands out its body once. */
	arena_move(&s->head.mem, mem);
	arena_init(&s->cur_mem, 0);
	s->head.msg = resp;
	s->head.hr = resp->http;
	s->id = resp->http->stream_id;
	s->call_id = call_id;
	s->deadline = deadline;
	s->more = resp->more;
	/* The head reads as bodiless; the bytes stay where they are (freed
	 * with the message) until the first read hands them out. */
	s->first = resp->http->body.data;
	s->first_len = resp->http->body.len;
	resp->http->body.len = 0;
	set_timings(&s->head, resp->http->timings);
	*out = s;
	return 0;
}

const porter_http_response *porter_http_stream_response(const porter_http_stream *s)
{
	return s ? &s->head : NULL;
}

int porter_http_stream_read(porter_http_stream *s, uint64_t call_id, int timeout_ms,
			    const void **data, size_t *len)
{
	last_http_status = 0;
	if (data)
		*data = NULL;
	if (len)
		*len = 0;
	if (!s || !data || !len)
		return pconn_set_error(PORTER_E_INVAL, "NULL argument");
	if (s->failed)
		return pconn_set_error(s->failed, "an earlier read of this HTTP stream failed (%s)",
				       porter_strerror(s->failed));
	if (s->cur) {
		arena_free(&s->cur_mem);
		s->cur = NULL;
	}
	if (!s->first_taken) {
		s->first_taken = 1;
		if (s->first_len) {
			*data = s->first;
			*len = s->first_len;
			pconn_clear_error();
			return 1;
		}
	}
	while (s->more) {
		Porter__V1__Response *resp = NULL;
		int wait;
		int rc = pconn_bounded(s->deadline, timeout_ms, &wait);
		if (rc < 0)
			return rc;
		rc = fetch_http(s->id, call_id ? call_id : s->call_id, wait, &s->cur_mem, &resp);
		if (rc < 0) {
			arena_free(&s->cur_mem);
			/* A timed-out pull may be repeated, and so may one
			 * refused with PORTER_E_NOT_FOUND: it came from a thread
			 * whose connection another worker serves, and the stream
			 * is still there for the opening thread. Any other
			 * failure is final for the caller. `more` stays set
			 * either way, so that close tells the daemon: a failed
			 * transfer has ended there already (the close is then
			 * refused, harmlessly), but a cancelled or lost pull
			 * leaves the stream in the daemon until its idle
			 * timeout otherwise. */
			if (rc != PORTER_E_TIMEOUT && rc != PORTER_E_NOT_FOUND)
				s->failed = rc;
			return rc;
		}
		s->more = resp->more;
		set_timings(&s->head, resp->http->timings);
		if (resp->http->body.len) {
			s->cur = resp;
			*data = resp->http->body.data;
			*len = resp->http->body.len;
			return 1;
		}
		arena_free(&s->cur_mem);
	}
	pconn_clear_error();
	return 0;
}

/* Tells the daemon to abort stream `id`; 0 or a negative code. The
 * daemon's idle timeout aborts it anyway when this cannot be sent. */
static int stream_abort(uint64_t id, int timeout_ms)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__HttpClose c = PORTER__V1__HTTP_CLOSE__INIT;
	c.stream_id = id;
	req.body_case = PORTER__V1__REQUEST__BODY_HTTP_CLOSE;
	req.http_close = &c;
	return pconn_call_ack(&req, timeout_ms, PCONN_IDEMPOTENT);
}

static void stream_release(porter_http_stream *s)
{
	arena_free(&s->cur_mem);
	arena_free(&s->head.mem);
	free(s);
}

int porter_http_stream_close(porter_http_stream *s, int timeout_ms)
{
	if (!s)
		return 0;
	int rc = s->more && s->id ? stream_abort(s->id, timeout_ms) : 0;
	stream_release(s);
	return rc;
}

void porter_http_stream_free(porter_http_stream *s)
{
	if (!s)
		return;
	pbg_submit_id(stream_abort, s->more ? s->id : 0);
	stream_release(s);
}

/* ---- streamed request bodies ---- */

/* Bytes per HttpUpload piece: well under the daemon's frame limit, and the
 * most porterd holds for one upload. */
#define UPLOAD_PIECE (1u << 20)

struct porter_http_upload {
	uint64_t id;      /* the stream in porterd */
	uint64_t call_id; /* the open's id, used by calls that pass 0 */
	int64_t deadline; /* opts->transfer_timeout_ms from open; 0: none */
	int done;         /* the server answered: no more body is wanted */
	int handed;       /* the transfer went to a stream (finish) */
	int failed;       /* the code of a failed write, returned again */
};

int porter_http_upload_open(const char *method, const char *url, const char *const *headers,
			    size_t n_headers, int64_t body_size, const porter_http_options *opts,
			    uint64_t call_id, int timeout_ms, porter_http_upload **out)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__HttpRequest hr = PORTER__V1__HTTP_REQUEST__INIT;
	Porter__V1__HttpHeader *hv = NULL, **hp = NULL;
	Porter__V1__Response *resp = NULL;
	porter_http_upload *u = NULL;
	int wait, rc;
	last_http_status = 0;

	if (out)
		*out = NULL;
	if (!out)
		return pconn_set_error(PORTER_E_INVAL, "out is NULL");
	if (body_size < -1)
		return pconn_set_error(PORTER_E_INVAL, "body_size is %lld: -1 (unknown) or a size",
				       (long long)body_size);
	uint32_t total = opts && opts->struct_size >= sizeof(porter_http_options)
				 ? opts->transfer_timeout_ms
				 : 0;
	int64_t deadline = pconn_stream_deadline(total);
	rc = pconn_bounded(deadline, timeout_ms, &wait);
	if (rc < 0)
		return rc;
	rc = build_request(&req, &hr, method, url, headers, n_headers, NULL, 0, opts, 1, &hv, &hp);
	if (rc < 0)
		return rc;
	hr.body_stream = 1;
	hr.body_size = body_size;
	if (!call_id)
		call_id = pconn_next_id();
	req.id = call_id;
	/* Not idempotent: a retried open would start a second transfer. */
	arena mem;
	arena_init(&mem, 0);
	rc = call_http(&req, wait, PCONN_ONCE, &mem, &resp);
	free_headers(hv, n_headers, hp);
	uint64_t id = rc < 0 ? 0 : resp->http->stream_id;
	arena_free(&mem);
	if (rc < 0)
		return rc;
	if (!id)
		return pconn_set_error(PORTER_E_UNSUPPORTED,
				       "this porterd does not stream request bodies");
	u = calloc(1, sizeof(*u));
	/* Nobody will write it then: porterd reclaims it when idle. */
	if (!u)
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	u->id = id;
	u->call_id = call_id;
	u->deadline = deadline;
	*out = u;
	pconn_clear_error();
	return 0;
}

/* Sends one piece; 0, 1 when no more body is wanted, or a code. */
static int upload_piece(porter_http_upload *u, const void *data, size_t len, int last,
			uint64_t call_id, int64_t until)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__HttpUpload up = PORTER__V1__HTTP_UPLOAD__INIT;
	Porter__V1__Response *resp = NULL;
	int wait;
	int rc = pconn_bounded(until, INT_MAX, &wait);
	if (rc < 0)
		return rc;
	up.stream_id = u->id;
	up.data.data = (uint8_t *)data;
	up.data.len = len;
	up.last = last;
	req.id = call_id ? call_id : u->call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_HTTP_UPLOAD;
	req.http_upload = &up;
	last_http_status = 0;
	rc = pconn_call_full(&req, wait, PCONN_ONCE, &resp);
	if (rc < 0) {
		if (resp && resp->error)
			last_http_status = resp->error->http_status;
		if (resp)
			porter__v1__response__free_unpacked(resp, NULL);
		return rc;
	}
	int done = resp->body_case == PORTER__V1__RESPONSE__BODY_HTTP_UPLOAD &&
		   resp->http_upload->done;
	int ok = resp->body_case == PORTER__V1__RESPONSE__BODY_HTTP_UPLOAD;
	porter__v1__response__free_unpacked(resp, NULL);
	if (!ok)
		return pconn_set_error(PORTER_E_PROTOCOL, "HttpUpload reply missing");
	return done;
}

/* The deadline of one call on upload `u`: its own timeout, bounded by the
 * upload's deadline. 0 or a code (PORTER_E_INVAL, PORTER_E_TIMEOUT). */
static int upload_until(const porter_http_upload *u, int timeout_ms, int64_t *until)
{
	int wait;
	int rc = pconn_bounded(u->deadline, timeout_ms, &wait);
	if (rc < 0)
		return rc;
	*until = pconn_now_ms() + wait;
	return 0;
}

int porter_http_upload_write(porter_http_upload *u, const void *data, size_t len, uint64_t call_id,
			     int timeout_ms)
{
	int64_t until;
	last_http_status = 0;
	if (!u || (len && !data))
		return pconn_set_error(PORTER_E_INVAL, "NULL argument");
	if (u->failed)
		return pconn_set_error(u->failed, "an earlier write of this upload failed (%s)",
				       porter_strerror(u->failed));
	if (u->handed)
		return pconn_set_error(PORTER_E_INVAL, "this upload is finished");
	if (u->done)
		return 1;
	int rc = upload_until(u, timeout_ms, &until);
	if (rc < 0)
		return rc;
	const uint8_t *p = data;
	while (len) {
		size_t n = len < UPLOAD_PIECE ? len : UPLOAD_PIECE;
		rc = upload_piece(u, p, n, 0, call_id, until);
		if (rc < 0) {
			/* A piece that timed out or was cancelled may have been
			 * half read by libcurl: the body is cut either way, so
			 * every failure is final. */
			u->failed = rc;
			return rc;
		}
		if (rc == 1) {
			u->done = 1;
			pconn_clear_error();
			return 1;
		}
		p += n;
		len -= n;
	}
	pconn_clear_error();
	return 0;
}

int porter_http_upload_finish(porter_http_upload *u, uint64_t call_id, int timeout_ms,
			      porter_http_stream **out)
{
	Porter__V1__Response *resp = NULL;
	int64_t until;
	int wait;
	last_http_status = 0;
	if (out)
		*out = NULL;
	if (!u || !out)
		return pconn_set_error(PORTER_E_INVAL, "NULL argument");
	if (u->failed)
		return pconn_set_error(u->failed, "an earlier write of this upload failed (%s)",
				       porter_strerror(u->failed));
	if (u->handed)
		return pconn_set_error(PORTER_E_INVAL, "this upload is finished");
	int rc = upload_until(u, timeout_ms, &until);
	if (rc < 0)
		return rc;
	if (!u->done) {
		rc = upload_piece(u, NULL, 0, 1, call_id, until);
		if (rc < 0) {
			u->failed = rc;
			return rc;
		}
	}
	rc = pconn_bounded(until, INT_MAX, &wait);
	if (rc < 0)
		return rc;
	if (!call_id)
		call_id = u->call_id;
	arena mem;
	arena_init(&mem, 0);
	rc = fetch_http(u->id, call_id, wait, &mem, &resp);
	if (rc < 0) {
		arena_free(&mem);
		/* A timeout leaves the stream for a second finish or a close;
		 * anything else ended it in porterd. */
		if (rc != PORTER_E_TIMEOUT)
			u->failed = rc;
		return rc;
	}
	u->handed = 1;
	return stream_new(resp, &mem, call_id, u->deadline, out);
}

static int upload_release(porter_http_upload *u)
{
	int live = !u->handed;
	free(u);
	return live;
}

int porter_http_upload_close(porter_http_upload *u, int timeout_ms)
{
	if (!u)
		return 0;
	uint64_t id = u->id;
	return upload_release(u) ? stream_abort(id, timeout_ms) : 0;
}

void porter_http_upload_free(porter_http_upload *u)
{
	if (!u)
		return;
	uint64_t id = u->id;
	if (upload_release(u))
		pbg_submit_id(stream_abort, id);
}
