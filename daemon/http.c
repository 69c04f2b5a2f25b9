/* http - libcurl multi-socket on a worker loop; see http.h. */
#include "http.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>
#include <uv.h>

#include "clients.h"
#include "config.h"
#include "fwd.h"
#include "httpbuf.h"
#include "httpdefer.h"
#include "httpglue.h"
#include "httppolicy.h"
#include "httpsetup.h"
#include "httpupload.h"
#include "httpxfer.h"
#include "list.h"
#include "log.h"
#include "porter_errors.h"
#include "req.h"
#include "worker.h"

/* Room kept in a frame for status, headers and framing beside the body. */
#define HTTP_FRAME_HEADROOM (HTTPXFER_MAX_HEADER_BYTES + 64 * 1024)
/* How often idle streams and overdue pulls are looked for. */
#define HTTP_SWEEP_MS 1000
/* A reclaimed stream's outcome is kept this long (or six idle times, if
 * longer) for its owner's next read, then forgotten. */
#define HTTP_TOMBSTONE_MS 60000

int http_global_init(const config *cfg)
{
	return httpglue_global_init(cfg);
}

void http_global_cleanup(void)
{
	httpglue_global_cleanup();
}

/* ---- per-worker state ---- */

struct http_worker {
	worker *w;
	httpglue glue;    /* the uids' connection caches */
	uv_timer_t reap;  /* deferred removals, the stream and tenant sweep */
	int open_handles; /* the reap timer, until closed */
	int closing;
	list xfers;     /* http_xfer.link, running or done */
	list reap_list; /* http_xfer.link, REAPING */
	list up_acks;   /* http_xfer.ack_link: body pieces read, to answer */
	list deferred;  /* requests that came inside libcurl (httpdefer.h) */
	unsigned n_streams;
	httpbuf_cache *bufs; /* large body buffers (httpbuf.h); NULL: malloc's */
};

static void drain_info(httpglue_tenant *t);
static void xfer_free(http_xfer *x);
static void schedule_reap(http_worker *hw);
static void schedule_sweep(http_worker *hw, uint64_t ms);

static void maybe_free_hw(http_worker *hw)
{
	if (hw->closing && hw->open_handles == 0 && hw->glue.n_alive == 0)
		free(hw);
}

/* httpglue's freed hook: the worker's state may go once its last tenant
 * has. */
static void on_tenant_freed(httpglue *g)
{
	maybe_free_hw(list_entry(g, http_worker, glue));
}

static void on_handle_closed(uv_handle_t *h)
{
	http_worker *hw = h->data;
	hw->open_handles--;
	maybe_free_hw(hw);
}

static int check_url(http_xfer *x, const char *url)
{
	/* Redirect targets come here too (follow), checked as the first URL. */
	return httppolicy_check_url(&x->hw->w->cfg->http_allow_hosts, x->foreign, url, x->err_msg,
				    sizeof(x->err_msg));
}

static void free_stream_slot(http_xfer *x)
{
	if (x->slot) {
		x->hw->n_streams--;
		httpglue_streams_put(x->owner_uid);
		clients_put(x->acct, CLIENTS_STREAMS, 1);
		clients_acct_unref(x->acct);
		x->acct = NULL;
		x->slot = 0;
	}
}

/* A transfer has ended (well or badly). Loop thread, outside libcurl. */
static void finish(http_xfer *x)
{
	x->state = XFER_DONE;
	/* A body piece still held is answered: the server has spoken. */
	httpupload_end(x);
	if (!x->stream) {
		req *r = x->r;
		if (r) {
			if (x->err)
				httpxfer_reply_error(x);
			else
				httpxfer_reply_body(x, 1);
		}
		list_remove(&x->link);
		xfer_free(x);
		return;
	}
	/* A stream answers a waiting pull now; otherwise the outcome waits
	 * for the next pull (or the idle sweep). */
	if (x->r) {
		if (x->err)
			httpxfer_reply_error(x);
		else
			httpxfer_reply_body(x, 1);
		free_stream_slot(x);
		list_remove(&x->link);
		xfer_free(x);
	}
}

/* Follows the redirect of the hop that just ended, when allowed. Returns 1
 * when the transfer goes on, 0 when it ended (x->err may be set). */
static int follow(http_xfer *x)
{
	char *target = NULL;
	if (curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &target) != CURLE_OK || !target)
		return 0;
	if (x->redirects >= x->max_redirects) {
		x->err = PORTER_E_HTTP_REDIRECTS;
		snprintf(x->err_msg, sizeof(x->err_msg), "more than %u redirects (last to %.200s)",
			 x->max_redirects, target);
		return 0;
	}
	int rc = check_url(x, target);
	if (rc) {
		x->err = rc;
		return 0;
	}
	char *nu = strdup(target);
	if (!nu) {
		httpxfer_fail(x, PORTER_E_NOMEM, "%s", "out of memory following a redirect");
		return 0;
	}
	free(x->url_own);
	x->url = x->url_own = nu;
	if (!x->stripped && !x->keep_credentials) {
		char origin[sizeof(x->origin)];
		httppolicy_origin(x->url, origin, sizeof(origin));
		if (strcmp(origin, x->origin) && httpsetup_strip_credentials(x) < 0) {
			httpxfer_fail(x, PORTER_E_NOMEM, "%s",
				      "out of memory following a redirect");
			return 0;
		}
	}
	/* What browsers and curl do: 303 turns anything but HEAD into GET,
	 * 301/302 turn POST into GET; 307/308 repeat the request as is. */
	int to_get = (x->status == 303 && strcmp(x->method, "HEAD")) ||
		     ((x->status == 301 || x->status == 302) && strcmp(x->method, "POST") == 0);
	if (x->upload && !x->up_over && !to_get) {
		/* curl fails the same way (CURLE_SEND_FAIL_REWIND) when it
		 * cannot rewind what it read from a pipe. */
		x->err = PORTER_E_HTTP;
		snprintf(x->err_msg, sizeof(x->err_msg),
			 "the redirect (%ld) asks for the request body again, which a streamed "
			 "body cannot give",
			 x->status);
		return 0;
	}
	if (httpxfer_keep_hop(x) < 0) {
		httpxfer_fail(x, PORTER_E_NOMEM, "%s", "out of memory following a redirect");
		return 0;
	}
	if (to_get) {
		if (x->upload && !x->up_over) {
			/* The rest of the body is not wanted any more. */
			httpupload_end(x);
			curl_easy_setopt(x->easy, CURLOPT_UPLOAD, 0L);
			curl_easy_setopt(x->easy, CURLOPT_READFUNCTION, NULL);
		}
		memcpy(x->method, "GET", 4);
		/* The message (in x->msg) stays until the transfer ends. */
		free(x->body_own);
		x->body_own = NULL;
		x->body = NULL;
		x->body_len = 0;
		curl_easy_setopt(x->easy, CURLOPT_CUSTOMREQUEST, NULL);
		curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, NULL);
	}
	x->redirects++;
	/* The target is parsed by libcurl (a redirect is rarely repeated). */
	httpurl_put(x->cu);
	x->cu = NULL;
	httpxfer_headers_clear(x);
	x->status = 0;
	x->discard = 0;
	x->len = 0;
	x->received = 0;
	httpsetup_hop(x);
	if (httpsetup_hop_deadline(x) < 0)
		return 0;
	if (curl_multi_add_handle(x->t->multi, x->easy) != CURLM_OK) {
		httpxfer_fail(x, PORTER_E_INTERNAL, "%s", "could not restart the transfer");
		return 0;
	}
	x->in_multi = 1;
	return 1;
}

/* Collects finished transfers. Called after every curl_multi_socket_action,
 * never from inside a libcurl callback. */
static void drain_info(httpglue_tenant *t)
{
	CURLMsg *m;
	int left;
	httpupload_answer_read(&t->g->w->http->up_acks);
	while (t->multi && (m = curl_multi_info_read(t->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *e = m->easy_handle;
		CURLcode rc = m->data.result;
		http_xfer *x = NULL;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(t->multi, e);
		x->in_multi = 0;
		if (x->state == XFER_REAPING)
			continue;
		httpxfer_set_timings(x);
		if (rc == CURLE_OK && x->discard && follow(x))
			continue;
		if (rc != CURLE_OK && !x->err)
			httpxfer_map_error(x, rc);
		finish(x);
	}
	httpdefer_run(&t->g->w->http->deferred, t->g);
}

/* ---- reaping and the stream sweep ---- */

/* Lets go of the transfer: out of the multi, the easy handle back to its
 * tenant's pool, the tenant released. Not inside a libcurl callback. */
static void release_transfer(http_xfer *x)
{
	httpglue_tenant *t = x->t;
	if (!t)
		return;
	if (x->in_multi)
		curl_multi_remove_handle(t->multi, x->easy);
	x->in_multi = 0;
	/* libcurl reads it no more (a retry would, until the removal). */
	httpurl_put(x->cu);
	x->cu = NULL;
	if (x->easy) {
		httpglue_easy_put(t, x->easy, x->easy_epoch);
		x->easy = NULL;
	}
	if (httpglue_release(t, uv_now(&x->hw->w->loop)))
		schedule_sweep(x->hw, HTTPGLUE_TENANT_IDLE_MS);
	x->t = NULL;
}

static void xfer_free(http_xfer *x)
{
	httpupload_end(x);
	release_transfer(x);
	free_stream_slot(x);
	httpxfer_free_buffers(x);
	clients_acct_unref(x->body_acct);
	free(x->url_own);
	/* A reclaimed stream stopped counting as a transfer then. */
	if (x->state != XFER_RECLAIMED)
		stats_sub(&x->hw->w->counters.http_transfers, 1);
	free(x);
}

/*
 * Reclaims stream `x`, which nobody read for `idle` ms: the transfer, its
 * upstream connection's place and the buffered chunk go now, the stream's
 * quota slot too; the outcome stays for the owner's next read (which fails
 * with PORTER_E_TIMEOUT saying why) or close, until HTTP_TOMBSTONE_MS.
 */
static void reclaim(http_xfer *x, uint64_t now, const char *why)
{
	release_transfer(x);
	free_stream_slot(x);
	httpxfer_free_buffers(x);
	stats_sub(&x->hw->w->counters.http_transfers, 1);
	x->state = XFER_RECLAIMED;
	x->err = PORTER_E_TIMEOUT;
	snprintf(x->err_msg, sizeof(x->err_msg), "%s", why);
	/* A body piece still held fails with the same reason. */
	httpupload_end(x);
	x->idle_since = now;
}

static void reclaim_idle(http_xfer *x, uint64_t now, uint32_t idle)
{
	char why[128];
	log_info("http: stream of uid %u not used for %u ms, reclaimed", (unsigned)x->owner_uid,
		 idle);
	snprintf(why, sizeof(why),
		 "HTTP stream reclaimed: it was not %s for %u ms (http-stream-idle)",
		 x->upload && !x->up_last ? "written" : "read", idle);
	reclaim(x, now, why);
}

/* Marks `x` abandoned: libcurl calls are not allowed where this may run
 * (inside a callback), so the removal happens on the next reap. */
static void abandon(http_xfer *x);

void http_xfer_abandon(http_xfer *x)
{
	abandon(x);
}

static void abandon(http_xfer *x)
{
	if (x->state == XFER_REAPING)
		return;
	free_stream_slot(x);
	x->state = XFER_REAPING;
	list_remove(&x->link);
	list_push_back(&x->hw->reap_list, &x->link);
	schedule_reap(x->hw);
}

static void on_reap(uv_timer_t *timer)
{
	http_worker *hw = timer->data;
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &hw->reap_list) {
		http_xfer *x = list_entry(pos, http_xfer, link);
		list_remove(&x->link);
		xfer_free(x);
	}
	/* Streams nobody pulls are reclaimed; pulls past their deadline fail;
	 * reclaimed streams are forgotten after a while. */
	uint64_t now = uv_now(&hw->w->loop);
	uint32_t idle = hw->w->cfg->http_stream_idle_ms;
	uint64_t next = UINT64_MAX;
	uint64_t tomb_ms =
		(uint64_t)idle * 6 > HTTP_TOMBSTONE_MS ? (uint64_t)idle * 6 : HTTP_TOMBSTONE_MS;
	/* Replies sent here may close a client's connection (its write
	 * fails), which abandons that client's other transfers: they move to
	 * the reap list, and one of them may be the next in this walk. So the
	 * walk takes each transfer from a list of its own, back into xfers
	 * before it is looked at: a transfer moved or freed meanwhile simply
	 * leaves that list (list_remove), and the walk never follows a node
	 * that left xfers. */
	list todo;
	list_move_all(&todo, &hw->xfers);
	while (!list_empty(&todo)) {
		pos = todo.next;
		list_remove(pos);
		list_push_back(&hw->xfers, pos);
		http_xfer *x = list_entry(pos, http_xfer, link);
		if (!x->stream)
			continue;
		if (x->state == XFER_RECLAIMED) {
			if (now - x->idle_since >= tomb_ms) {
				list_remove(&x->link);
				xfer_free(x);
			} else if (tomb_ms - (now - x->idle_since) < next) {
				next = tomb_ms - (now - x->idle_since);
			}
			continue;
		}
		if (next > HTTP_SWEEP_MS)
			next = HTTP_SWEEP_MS;
		if (x->r && (x->len > 0 || (!x->sent_head && x->head_done))) {
			/* A slow body: hand over what is there rather than wait
			 * for a full chunk. */
			httpxfer_reply_body(x, 0);
		} else if (x->r && req_remaining_ms(x->r) <= HTTP_DEADLINE_MARGIN_MS) {
			/* Answered just before the client gives up, so it
			 * hears why. */
			req *r = x->r;
			x->r = NULL;
			r->cancel = NULL;
			r->op = NULL;
			x->idle_since = now;
			req_fail(r, PORTER_E_TIMEOUT,
				 "no data arrived before the request's deadline");
			if (!x->sent_head) {
				abandon(x);
				continue;
			}
		} else if (x->r) {
			uint64_t left = req_remaining_ms(x->r) - HTTP_DEADLINE_MARGIN_MS;
			if (left < next)
				next = left;
		} else if (httpupload_overdue(x, HTTP_DEADLINE_MARGIN_MS)) {
			/* libcurl could not send a piece of the body in time (the
			 * server does not read): the body would be cut. */
			reclaim(x, now,
				"the server did not take the request body before the request's "
				"deadline; the transfer is aborted");
		} else if (!x->r && !x->up_r && (x->sent_head || x->upload) &&
			   now - x->idle_since >= idle) {
			reclaim_idle(x, now, idle);
		}
	}
	/* Tenants without transfers go after a while, with their idle
	 * upstream connections. */
	uint64_t tenants_next = httpglue_close_idle(&hw->glue, now);
	if (tenants_next < next)
		next = tenants_next;
	if (next != UINT64_MAX)
		schedule_sweep(hw, next);
}

/* Makes the reap timer run within `ms` (sooner if it already would). */
static void schedule_sweep(http_worker *hw, uint64_t ms)
{
	if (!hw->closing &&
	    (!uv_is_active((uv_handle_t *)&hw->reap) || uv_timer_get_due_in(&hw->reap) > ms))
		uv_timer_start(&hw->reap, on_reap, ms, 0);
}

static void schedule_reap(http_worker *hw)
{
	schedule_sweep(hw, 0);
}

/* ---- requests ---- */

/* 1 when `r` waits (httpdefer.h) for libcurl to return before `run` may
 * handle it: it arrived from inside a libcurl callback. */
static int deferred(req *r, void (*run)(req *r))
{
	http_worker *hw = r->w->http;
	return hw && httpdefer_take(&hw->deferred, &hw->glue, r, run);
}

/* Cancel hook: the client went away. Runs wherever the connection closed,
 * possibly inside a libcurl callback, so only state changes here. */
static void on_cancel(req *r)
{
	http_xfer *x = r->op;
	x->r = NULL;
	r->op = NULL;
	req_fail(r, PORTER_E_CANCELLED, "client went away");
	/* A pull that is dropped leaves the stream for another pull; a
	 * transfer whose first reply never went out has no one to read it. */
	if (!x->stream || !x->sent_head)
		abandon(x);
}

static void park(http_xfer *x, req *r)
{
	x->r = r;
	r->op = x;
	r->cancel = on_cancel;
	if (!x->stream)
		return;
	/* Streams have no transfer timeout: the sweep answers a pull that
	 * waits too long, so make sure it runs in time. */
	uint64_t left = req_remaining_ms(r);
	uint64_t due = left > HTTP_DEADLINE_MARGIN_MS ? left - HTTP_DEADLINE_MARGIN_MS : 0;
	schedule_sweep(x->hw, due < HTTP_SWEEP_MS ? due : HTTP_SWEEP_MS);
}

/*
 * Finds the stream `id` for request `r`, or returns NULL having finished
 * `r`: failed, or sent to the worker that owns the stream (fwd.h's owner
 * encoding), since any connection of the client may pull it. A stream
 * answers only the client process that opened it: identity from the req,
 * which carries it for forwarded requests too.
 */
static http_xfer *stream_lookup(req *r, uint64_t id)
{
	http_worker *hw = r->w->http;
	list *pos, *tmp;
	if (hw && id) {
		list_for_each_safe(pos, tmp, &hw->xfers) {
			http_xfer *x = list_entry(pos, http_xfer, link);
			if (x->stream && x->stream_id == id && x->state != XFER_REAPING &&
			    r->uid == x->owner_uid && r->instance == x->owner_instance)
				return x;
		}
	}
	if (fwd_to_owner(r, id))
		return NULL;
	req_fail(r, PORTER_E_NOT_FOUND, "no such HTTP stream (ended, closed or idle too long)");
	return NULL;
}

/* Checks and takes the arguments of a streamed request body. 0, or <0
 * with `r` failed. */
static int upload_args(http_xfer *x, const Porter__V1__HttpRequest *hr, const char *method, req *r)
{
	if (hr->body.len) {
		req_fail(r, PORTER_E_INVAL,
			 "a streamed request body comes in HttpUpload pieces, not in `body`");
		return PORTER_E_INVAL;
	}
	if (strcasecmp(method, "HEAD") == 0) {
		req_fail(r, PORTER_E_INVAL, "a HEAD request has no body");
		return PORTER_E_INVAL;
	}
	if (hr->body_size < -1) {
		req_fail(r, PORTER_E_INVAL, "body_size is %lld: -1 (unknown) or a size",
			 (long long)hr->body_size);
		return PORTER_E_INVAL;
	}
	x->upload = 1;
	x->up_size = hr->body_size;
	x->up_max_buffered = x->hw->w->cfg->uid_max_buffered;
	return 0;
}

/* Answers the request that opened an upload with the stream's id only:
 * no head yet, the response comes after the body. */
static void reply_upload_open(http_xfer *x, req *r)
{
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__HttpResponse hr = PORTER__V1__HTTP_RESPONSE__INIT;
	hr.stream_id = x->stream_id;
	resp.more = 1;
	resp.body_case = PORTER__V1__RESPONSE__BODY_HTTP;
	resp.http = &hr;
	x->idle_since = uv_now(x->loop);
	req_reply(r, &resp);
}

void http_handle(req *r)
{
	worker *w = r->w;
	http_worker *hw = w->http;
	const config *cfg = w->cfg;
	const Porter__V1__HttpRequest *hr = r->msg->http;
	http_xfer *x = NULL;
	int rc;

	if (!hw) {
		req_fail(r, PORTER_E_UNSUPPORTED, "HTTP is not available in this daemon");
		return;
	}
	if (deferred(r, http_handle))
		return;
	x = calloc(1, sizeof(*x));
	if (!x) {
		req_fail(r, PORTER_E_NOMEM, "out of memory");
		return;
	}
	x->hw = hw;
	x->loop = &w->loop;
	x->bufs = hw->bufs;
	stats_add(&hw->w->counters.http_transfers, 1); /* until xfer_free */
	list_init(&x->link);
	list_init(&x->ack_link);
	x->up_acks = &hw->up_acks;
	x->start_ns = uv_hrtime();
	const char *method = hr->method && hr->method[0] ? hr->method : "GET";
	if (!httppolicy_valid_method(method)) {
		req_fail(r, PORTER_E_INVAL, "invalid HTTP method");
		goto fail_free;
	}
	if (!hr->url || !hr->url[0]) {
		req_fail(r, PORTER_E_INVAL, "no URL");
		goto fail_free;
	}
	x->foreign = r->uid != clients_self();
	rc = check_url(x, hr->url);
	if (rc) {
		req_fail(r, rc, "%s", x->err_msg);
		goto fail_free;
	}
	/* Valid, so at most HTTPXFER_METHOD_MAX letters (the last byte stays
	 * the NUL calloc put there). */
	for (size_t i = 0; i < HTTPXFER_METHOD_MAX; i++) {
		char ch = method[i];
		x->method[i] = ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
		if (!ch)
			break;
	}
	x->stream = hr->stream || hr->body_stream;
	/* A stream (an upload too) outlives the request that opened it: its
	 * URL is its own. A whole response borrows the request's. */
	x->url = hr->url;
	if (x->stream && !(x->url = x->url_own = strdup(hr->url))) {
		req_fail(r, PORTER_E_NOMEM, "out of memory");
		goto fail_free;
	}
	if (hr->body.len) {
		/* Kept as long as the transfer: libcurl reads
		 * CURLOPT_POSTFIELDS in place, and a cancelled request is
		 * freed before its transfer is removed. A message in an arena
		 * (one read from a connection) moves to the transfer whole,
		 * the body with it; another (a batch member, a forwarded
		 * request) is freed with its req, so its body is copied. */
		if (r->from_arena) {
			arena_move(&x->msg, &r->msg_arena);
			x->body = hr->body.data;
		} else if ((x->body = x->body_own = malloc(hr->body.len))) {
			memcpy(x->body_own, hr->body.data, hr->body.len);
		} else {
			req_fail(r, PORTER_E_NOMEM, "out of memory");
			goto fail_free;
		}
		x->body_len = hr->body.len;
	}
	x->follow = hr->follow_redirects;
	x->keep_credentials = hr->keep_credentials;
	if (x->follow)
		httppolicy_origin(x->url, x->origin, sizeof(x->origin));
	x->max_redirects = cfg->http_max_redirects;
	if (hr->max_redirects && hr->max_redirects < x->max_redirects)
		x->max_redirects = hr->max_redirects;
	if (hr->body_stream) {
		rc = upload_args(x, hr, method, r);
		if (rc < 0)
			goto fail_free;
	}
	if (x->stream && r->batch) {
		/* A stream's later chunks are pulled by id: a batch has no
		 * way to carry them. */
		req_fail(r, PORTER_E_INVAL, "an HTTP stream cannot be a batch member");
		goto fail_free;
	}
	if (x->stream) {
		if (hw->n_streams >= cfg->http_max_streams) {
			req_fail(
				r, PORTER_E_BUSY,
				"too many open HTTP streams on this worker (http-max-streams = %u)",
				cfg->http_max_streams);
			goto fail_free;
		}
		/* The uid's own limit, live on reload (cfg is the worker's
		 * current generation). */
		rc = httpglue_streams_take(r->uid, cfg->http_max_streams_per_uid);
		if (rc) {
			if (rc == PORTER_E_BUSY)
				req_fail(
					r, rc,
					"too many open HTTP streams for this uid (http-max-streams-per-uid = %u): read them to the end or close them",
					cfg->http_max_streams_per_uid);
			else
				req_fail(r, rc, "out of memory");
			goto fail_free;
		}
		x->owner_uid = r->uid;
		x->slot = 1;
		hw->n_streams++;
		/* Shown per uid in stats and metrics, with the uid's cursors
		 * and file streams (the limit above is HTTP's own). */
		x->acct = clients_acct_ref(r->uid);
		clients_take(x->acct, CLIENTS_STREAMS, 1, 0);
		x->chunk_cap = hr->chunk_size ? hr->chunk_size : cfg->http_chunk_size;
		if (x->chunk_cap > cfg->http_chunk_size)
			x->chunk_cap = cfg->http_chunk_size;
		if (x->chunk_cap > cfg->max_frame / 2)
			x->chunk_cap = cfg->max_frame / 2;
		if (x->chunk_cap < 1024)
			x->chunk_cap = 1024;
		x->limit = hr->max_response;
		if (fwd_new_id(w->index, &x->stream_id) < 0) {
			req_fail(r, PORTER_E_INTERNAL, "no randomness for a stream id");
			goto fail_free;
		}
		x->owner_instance = r->instance;
	} else {
		/* A whole response must fit in one frame. */
		uint64_t cap = cfg->http_max_response;
		uint64_t frame_cap = cfg->max_frame > HTTP_FRAME_HEADROOM * 2
					     ? cfg->max_frame - HTTP_FRAME_HEADROOM
					     : cfg->max_frame / 2;
		if (cap > frame_cap)
			cap = frame_cap;
		x->limit = hr->max_response && hr->max_response < cap ? hr->max_response : cap;
		x->body_acct = clients_acct_ref(r->uid);
		x->body_quota = cfg->uid_max_buffered;
	}
	/* The uid's own connection cache: identity from the req, which
	 * carries it for forwarded and batch requests too. */
	x->t = httpglue_hold(&hw->glue, r->uid); /* until xfer_free */
	if (!x->t) {
		req_fail(r, PORTER_E_NOMEM, "out of memory");
		free_stream_slot(x);
		goto fail_free;
	}
	rc = httpsetup_easy(x, cfg, hr, r);
	if (rc) {
		req_fail(r, rc, "%s", x->err_msg[0] ? x->err_msg : "could not set up the transfer");
		free_stream_slot(x);
		goto fail_free;
	}
	if (curl_multi_add_handle(x->t->multi, x->easy) != CURLM_OK) {
		req_fail(r, PORTER_E_INTERNAL, "could not start the transfer");
		free_stream_slot(x);
		goto fail_free;
	}
	x->in_multi = 1;
	x->state = XFER_RUNNING;
	list_push_back(&hw->xfers, &x->link);
	if (x->upload) {
		/* The client sends the body next, naming the stream. */
		reply_upload_open(x, r);
		httpglue_kick(x->t);
		return;
	}
	park(x, r);
	/* Start it now rather than on the 0 ms timer libcurl just asked for:
	 * one loop iteration less per request. */
	httpglue_kick(x->t);
	return;

fail_free:
	xfer_free(x);
}

/*
 * Lets libcurl go on after a pause (x->paused or x->up_paused was just
 * cleared), keeping the other direction paused when it still is. Not
 * inside a libcurl callback: resuming may deliver held-back data at once.
 */
static void resume(http_xfer *x)
{
	int keep = (x->paused ? CURLPAUSE_RECV : 0) | (x->up_paused ? CURLPAUSE_SEND : 0);
	CURLcode prc = httpglue_pause(&x->hw->glue, x->easy, keep);
	if (prc != CURLE_OK) {
		/* The held-back data failed in the write callback (the size
		 * limit): libcurl reports it here, not through the multi
		 * handle, so end the transfer now. */
		if (!x->err)
			httpxfer_map_error(x, prc);
		curl_multi_remove_handle(x->t->multi, x->easy);
		x->in_multi = 0;
		httpxfer_set_timings(x);
		x->state = XFER_DONE;
		httpupload_end(x);
	}
	/* Resuming may have ended the transfer (or others). */
	drain_info(x->t);
}

void http_handle_fetch(req *r)
{
	if (deferred(r, http_handle_fetch))
		return;
	http_xfer *x = stream_lookup(r, r->msg->http_fetch->stream_id);
	if (!x)
		return;
	if (x->state == XFER_RECLAIMED) {
		/* Said again on every read until the stream is closed. */
		req_fail(r, x->err, "%s", x->err_msg);
		return;
	}
	if (x->r) {
		req_fail(r, PORTER_E_BUSY, "a pull of this stream is already waiting");
		return;
	}
	if (x->upload && !x->up_last && !x->up_over && x->state != XFER_DONE) {
		req_fail(r, PORTER_E_INVAL,
			 "the request body has not ended: send its last piece before reading");
		return;
	}
	park(x, r);
	if (x->state == XFER_DONE) {
		finish(x);
		return;
	}
	if (x->len == 0)
		return; /* answered by the write callback or at the end */
	httpxfer_reply_body(x, 0);
	if (x->paused) {
		x->paused = 0;
		resume(x);
	}
}

void http_handle_upload(req *r)
{
	if (deferred(r, http_handle_upload))
		return;
	http_xfer *x = stream_lookup(r, r->msg->http_upload->stream_id);
	if (!x)
		return;
	if (httpupload_piece(x, r)) {
		/* Held until libcurl has read it: the sweep fails it if the
		 * server does not take it in time. */
		uint64_t left = req_remaining_ms(r);
		uint64_t due = left > HTTP_DEADLINE_MARGIN_MS ? left - HTTP_DEADLINE_MARGIN_MS : 0;
		schedule_sweep(x->hw, due < HTTP_SWEEP_MS ? due : HTTP_SWEEP_MS);
	}
	if (x->up_paused && x->in_multi) {
		x->up_paused = 0;
		resume(x);
	}
}

void http_handle_close(req *r)
{
	if (deferred(r, http_handle_close))
		return;
	http_xfer *x = stream_lookup(r, r->msg->http_close->stream_id);
	if (!x)
		return;
	if (x->r) {
		req *p = x->r;
		x->r = NULL;
		p->cancel = NULL;
		p->op = NULL;
		req_fail(p, PORTER_E_CANCELLED, "stream closed");
	}
	if (x->up_r) {
		httpxfer_fail(x, PORTER_E_CANCELLED, "%s", "stream closed");
		httpupload_end(x);
	}
	abandon(x);
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__HttpCloseReply cr = PORTER__V1__HTTP_CLOSE_REPLY__INIT;
	resp.body_case = PORTER__V1__RESPONSE__BODY_HTTP_CLOSE;
	resp.http_close = &cr;
	req_reply(r, &resp);
}

/* ---- worker life ---- */

http_worker *http_worker_new(worker *w)
{
	http_worker *hw = calloc(1, sizeof(*hw));
	if (!hw)
		return NULL;
	hw->w = w;
	httpglue_init(&hw->glue, w, drain_info, on_tenant_freed);
	list_init(&hw->xfers);
	list_init(&hw->reap_list);
	list_init(&hw->up_acks);
	list_init(&hw->deferred);
	uv_timer_init(&w->loop, &hw->reap);
	hw->reap.data = hw;
	hw->open_handles = 1;
	/* Without it, bodies are malloc'd as small ones are. */
	hw->bufs = httpbuf_cache_new(&w->loop);
	return hw;
}

void http_worker_close(http_worker *hw)
{
	list *pos, *tmp;
	hw->closing = 1;
	/* Forwarded requests (no connection to cancel them) may still wait
	 * for libcurl to return; it never will now. */
	httpdefer_fail_all(&hw->deferred, PORTER_E_SHUTDOWN, "daemon shutting down");
	/* Every connection is gone by now, so no req waits on a transfer
	 * except through a stream pull that was already cancelled. */
	list_for_each_safe(pos, tmp, &hw->xfers) {
		http_xfer *x = list_entry(pos, http_xfer, link);
		if (x->r) {
			req *r = x->r;
			x->r = NULL;
			r->cancel = NULL;
			r->op = NULL;
			req_fail(r, PORTER_E_SHUTDOWN, "daemon shutting down");
		}
		if (x->up_r) {
			httpxfer_fail(x, PORTER_E_SHUTDOWN, "%s", "daemon shutting down");
			httpupload_end(x);
		}
		list_remove(&x->link);
		xfer_free(x);
	}
	list_for_each_safe(pos, tmp, &hw->reap_list) {
		http_xfer *x = list_entry(pos, http_xfer, link);
		list_remove(&x->link);
		xfer_free(x);
	}
	httpglue_close_all(&hw->glue);
	/* Replies still queued on closing connections give their buffers
	 * back later; the cache goes with the last. */
	httpbuf_cache_close(hw->bufs);
	hw->bufs = NULL;
	uv_close((uv_handle_t *)&hw->reap, on_handle_closed);
}
