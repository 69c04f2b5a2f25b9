/* httpsetup - a transfer's libcurl options; see httpsetup.h. */
#include "httpsetup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clients.h"
#include "config.h"
#include "httppolicy.h"
#include "httpupload.h"
#include "porter_errors.h"

/* Sets the per-hop options (URL, method, body) of the easy handle. */
void httpsetup_hop(http_xfer *x)
{
	CURL *e = x->easy;
	/* The text too: libcurl keeps it as the transfer's URL (a retry
	 * goes back to it), see httpurl.h. */
	curl_easy_setopt(e, CURLOPT_URL, x->url);
	curl_easy_setopt(e, CURLOPT_CURLU, x->cu ? x->cu->cu : NULL);
	if (x->upload && !x->up_over) {
		httpupload_set_hop(x);
	} else if (strcmp(x->method, "HEAD") == 0) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (strcmp(x->method, "GET") == 0 && x->body_len == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body ? (char *)x->body : "");
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
				 strcmp(x->method, "POST") ? x->method : NULL);
	}
}

/* 1 when header line `line` ("Name: value" or "Name;") is a credential. */
static int is_credential(const char *line)
{
	size_t n = strcspn(line, ":;");
	return httppolicy_is_credential(line, n);
}

/* Drops the caller's credentials from the request headers: they were meant
 * for the first origin, not for wherever a redirect points. */
int httpsetup_strip_credentials(http_xfer *x)
{
	struct curl_slist *nl = NULL;
	for (struct curl_slist *l = x->hdrs; l; l = l->next) {
		if (is_credential(l->data))
			continue;
		struct curl_slist *t = curl_slist_append(nl, l->data);
		if (!t) {
			curl_slist_free_all(nl);
			return -1;
		}
		nl = t;
	}
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, nl);
	curl_slist_free_all(x->hdrs);
	x->hdrs = nl;
	x->stripped = 1;
	return 0;
}

/*
 * Gives the next hop what is left of the transfer's time: libcurl's
 * timeouts restart with each transfer, so a handle re-added for a redirect
 * would otherwise get the whole budget again and a chain of slow hops could
 * run far past the request's deadline. 0, or -1 with x->err set when no
 * time is left.
 */
int httpsetup_hop_deadline(http_xfer *x)
{
	if (!x->deadline)
		return 0;
	uint64_t now = uv_now(x->loop);
	if (now >= x->deadline) {
		x->err = PORTER_E_TIMEOUT;
		snprintf(x->err_msg, sizeof(x->err_msg),
			 "HTTP transfer timed out: the deadline passed after %u redirects",
			 x->redirects);
		return -1;
	}
	uint64_t left = x->deadline - now;
	uint64_t connect_to = x->connect_to;
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)left);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(connect_to && connect_to < left ? connect_to : left));
	return 0;
}

/* The options every transfer of tenant `t` has, set once per easy handle
 * (see httpglue_easy_get). */
static void set_constant(CURL *e, const httpglue_tenant *t)
{
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* A transfer removed while its name is still being resolved would
	 * otherwise join the resolver thread, blocking the loop until
	 * getaddrinfo gives up; this detaches it instead (the thread frees
	 * its own state when the lookup ends). */
	curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	/* A proxy named in porterd's environment (http_proxy, HTTPS_PROXY,
	 * ALL_PROXY) is porterd's own: its credentials and its network
	 * position. A foreign client's request never goes through one ("" is
	 * libcurl's "no proxy, whatever the environment says"). */
	if (t->uid != clients_self())
		curl_easy_setopt(e, CURLOPT_PROXY, "");
	/* Redirects are followed here, not by libcurl, so each target's
	 * scheme and host are checked before anything is sent to it. */
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, httpxfer_on_write);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, httpxfer_on_header);
}

int httpsetup_easy(http_xfer *x, const config *cfg, const Porter__V1__HttpRequest *hr, req *r)
{
	httpglue_tenant *t = x->t;
	int fresh;
	CURL *e = httpglue_easy_get(t, cfg, &x->easy_epoch, &fresh);
	if (!e)
		return PORTER_E_NOMEM;
	x->easy = e;
	if (fresh)
		set_constant(e, t);
	/* A GET without a body leaves only options that the next transfer
	 * sets again (below and in httpsetup_hop), so its handle goes back
	 * to the pool as it is; any other request is reset after it. */
	if (strcmp(x->method, "GET") || x->body_len || x->upload)
		x->easy_epoch = 0;
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->curl_err);
	uint64_t remaining = req_remaining_ms(r);
	uint64_t connect_to = cfg->http_connect_timeout_ms;
	/* The client may ask for less than the daemon's bound, never more. */
	if (hr->connect_timeout_ms && (!connect_to || hr->connect_timeout_ms < connect_to))
		connect_to = hr->connect_timeout_ms;
	x->connect_to = connect_to;
	if (!x->stream && connect_to > remaining)
		connect_to = remaining;
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(connect_to ? connect_to : 1));
	uint64_t total = hr->transfer_timeout_ms;
	/* Ends a little before the request's deadline, so that the client
	 * hears why rather than timing out itself. */
	uint64_t bound = remaining > 4 * HTTP_DEADLINE_MARGIN_MS
				 ? remaining - HTTP_DEADLINE_MARGIN_MS
				 : (remaining ? remaining : 1);
	if ((!total && !x->stream) || (total && !x->stream && total > bound))
		total = bound;
	/* Set even when 0 (none): a pooled handle keeps the last value. */
	if (total) /* the one deadline of every hop (hop_deadline) */
		x->deadline = uv_now(x->loop) + total;
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)total);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->limit);
	/* Set per transfer: a pooled handle keeps the last value, and libcurl
	 * allocates the buffer anew for each transfer (and frees it when the
	 * transfer is done), so nothing of this size stays with an idle
	 * handle. */
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, x->stream ? 0L : (long)HTTPSETUP_RECV_BUFFER);

	for (size_t i = 0; i < hr->n_headers; i++) {
		const Porter__V1__HttpHeader *h = hr->headers[i];
		int v = httppolicy_header(h->name, h->value, x->url, x->err_msg,
					  sizeof(x->err_msg));
		if (v < 0)
			return v;
		if (v == HTTPPOLICY_DROP)
			continue;
		size_t n = strlen(h->name) + strlen(h->value) + 3;
		char *line = malloc(n);
		if (!line)
			return PORTER_E_NOMEM;
		/* "Name;" sends an empty header; "Name:" would remove it. */
		if (h->value[0])
			snprintf(line, n, "%s: %s", h->name, h->value);
		else
			snprintf(line, n, "%s;", h->name);
		struct curl_slist *nl = curl_slist_append(x->hdrs, line);
		free(line);
		if (!nl)
			return PORTER_E_NOMEM;
		x->hdrs = nl;
	}
	/* libcurl would wait up to a second for "100 Continue" before a
	 * large body; servers rarely need it, clients notice the delay. (A
	 * client's own Expect was refused above.) */
	if (x->body_len || x->upload) {
		struct curl_slist *nl = curl_slist_append(x->hdrs, "Expect:");
		if (!nl)
			return PORTER_E_NOMEM;
		x->hdrs = nl;
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
	x->cu = httpurl_hold(&t->urls, x->url);
	httpsetup_hop(x);
	return 0;
}
