/* req - one request in flight; see req.h. */
#include "req.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "batch.h"
#include "clients.h"
#include "conn.h"
#include "dalloc.h"
#include "fwd.h"
#include "listwire.h"
#include "porter_errors.h"
#include "stats.h"
#include "worker.h"

/* Frees the request message of `r`, however it was unpacked. */
static void free_msg(req *r)
{
	if (r->from_arena)
		arena_free(&r->msg_arena);
	else
		porter__v1__request__free_unpacked(r->msg, NULL);
	r->msg = NULL;
}

/* A req on `w` for `msg` of client (uid, instance), due at `deadline`
 * (uv_now() ms) and counted in flight; on no connection's list yet. NULL
 * when out of memory (`msg` is then still the caller's). */
static req *alloc_req(worker *w, Porter__V1__Request *msg, uid_t uid, uint64_t instance,
		      uint64_t deadline)
{
	req *r = dcalloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->w = w;
	r->id = msg->id;
	r->uid = uid;
	r->instance = instance;
	r->msg = msg;
	r->deadline = deadline;
	list_init(&r->link);
	stats_add(&w->counters.requests, 1);
	stats_add(&w->counters.inflight, 1);
	return r;
}

req *req_new(conn *c, Porter__V1__Request *msg, arena *from)
{
	worker *w = c->w;
	uint64_t t = msg->timeout_ms ? msg->timeout_ms : w->cfg->default_timeout_ms;
	if (t > w->cfg->max_timeout_ms)
		t = w->cfg->max_timeout_ms;
	req *r = alloc_req(w, msg, c->uid, c->client_instance, uv_now(&w->loop) + t);
	if (!r) {
		if (from)
			arena_free(from);
		else
			porter__v1__request__free_unpacked(msg, NULL);
		return NULL;
	}
	if (from) {
		arena_move(&r->msg_arena, from);
		r->from_arena = 1;
	}
	r->c = c;
	list_push_back(&c->reqs, &r->link);
	c->inflight++;
	clients_take(c->acct, CLIENTS_INFLIGHT, 1, 0); /* checked by conn */
	return r;
}

req *req_new_member(struct batch *b, unsigned index, conn *c, worker *w, uint64_t deadline,
		    Porter__V1__Request *msg)
{
	uint64_t now = uv_now(&w->loop);
	uint64_t t = msg->timeout_ms ? now + msg->timeout_ms : deadline;
	/* Not on the connection's list: the batch answers for it. */
	req *r = alloc_req(w, msg, c->uid, c->client_instance, t < deadline ? t : deadline);
	if (!r) {
		porter__v1__request__free_unpacked(msg, NULL);
		return NULL;
	}
	r->c = c;
	r->batch = b;
	r->batch_index = index;
	return r;
}

req *req_new_remote(worker *w, Porter__V1__Request *msg, uid_t uid, uint64_t instance,
		    uint64_t left_ms, struct fwd_back *back)
{
	req *r = alloc_req(w, msg, uid, instance, uv_now(&w->loop) + left_ms);
	if (!r) {
		porter__v1__request__free_unpacked(msg, NULL);
		return NULL;
	}
	r->back = back;
	return r;
}

void req_hold(req *r, clients_acct *acct, uint64_t bytes)
{
	r->held_acct = clients_acct_ref(r->uid);
	if (!r->held_acct) {
		clients_put(acct, CLIENTS_BUFFERED, bytes);
		return;
	}
	r->held = bytes;
}

/* Its frame stops counting: it is being answered (the reply counts as the
 * connection's output from here; the two must not add up against the
 * quota) or goes. */
static void unhold(req *r)
{
	clients_put(r->held_acct, CLIENTS_BUFFERED, r->held);
	clients_acct_unref(r->held_acct);
	r->held_acct = NULL;
	r->held = 0;
}

/* `r` is answered straight to its connection `c`: it leaves the
 * connection's list and counts. */
static void leave_conn(req *r, conn *c)
{
	unhold(r);
	list_remove(&r->link);
	c->inflight--;
	clients_put(c->acct, CLIENTS_INFLIGHT, 1);
}

/* `r` is answered: it goes. */
static void req_end(req *r)
{
	unhold(r);
	stats_sub(&r->w->counters.inflight, 1);
	free_msg(r);
	free(r);
}

void req_reply(req *r, Porter__V1__Response *resp)
{
	req_reply_take(r, resp, NULL);
}

void req_reply_take(req *r, Porter__V1__Response *resp, uint8_t *data)
{
	req_reply_take_with(r, resp, data, free);
}

void req_reply_take_with(req *r, Porter__V1__Response *resp, uint8_t *data, void (*release)(void *))
{
	conn *c = r->c;
	Porter__V1__Response stopped = PORTER__V1__RESPONSE__INIT;

	if (r->stop_code) {
		stopped.status = r->stop_code;
		/* A module that answers with the stop code itself says in its
		 * own words what was stopped ("cannot list 'big' in root
		 * 'docs': cancelled"). */
		stopped.message = resp->status == r->stop_code && resp->message && resp->message[0]
					  ? resp->message
					  : (char *)porter_strerror(r->stop_code);
		resp = &stopped;
	}
	resp->id = r->id;
	if (resp->status != 0)
		stats_add(&r->w->counters.errors, 1);
	if (r->batch) {
		batch_member_done(r->batch, r->batch_index, resp);
	} else if (r->back) {
		fwd_reply(r->back, resp);
	} else if (c) {
		leave_conn(r, c);
		conn_send_take(c, resp, data, release);
		data = NULL;
		conn_req_done(c);
	}
	if (data)
		release(data);
	req_end(r);
}

void req_reply_list(req *r, uint8_t *entries, size_t len, void (*release)(void *))
{
	conn *c = r->c;
	if (r->stop_code) {
		/* Answered with the stop code: nothing to unpack. */
		Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
		release(entries);
		req_reply(r, &resp);
		return;
	}
	if (r->batch || r->back || !c || !listwire_known()) {
		Porter__V1__FileListReply *lr =
			porter__v1__file_list_reply__unpack(NULL, len, entries);
		release(entries);
		if (!lr) {
			req_fail(r, PORTER_E_NOMEM, "out of memory");
			return;
		}
		Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
		resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_LIST;
		resp.file_list = lr;
		req_reply(r, &resp);
		porter__v1__file_list_reply__free_unpacked(lr, NULL);
		return;
	}
	leave_conn(r, c);
	conn_send_list(c, r->id, entries, len, release);
	conn_req_done(c);
	req_end(r);
}

int req_reply_fd(req *r, Porter__V1__Response *resp, int fd)
{
	conn *c = r->c;
	if (r->stop_code || r->batch || r->back || !c)
		return PORTER_E_BUSY;
	resp->id = r->id;
	int rc = conn_send_fd(c, resp, fd);
	if (rc == PORTER_E_BUSY)
		return rc;
	/* Still attached when the send broke the connection: it closes
	 * from its timer (conn_close_soon). */
	if (r->c) {
		leave_conn(r, c);
		conn_req_done(c);
	}
	req_end(r);
	return rc;
}

static void fail_v(req *r, int code, Porter__V1__ErrorDetail *detail, const char *fmt, va_list ap)
{
	char text[1024];
	vsnprintf(text, sizeof(text), fmt, ap);
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	resp.status = code;
	resp.message = text;
	resp.error = detail;
	req_reply(r, &resp);
}

void req_fail(req *r, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fail_v(r, code, NULL, fmt, ap);
	va_end(ap);
}

void req_fail_detail(req *r, int code, Porter__V1__ErrorDetail *detail, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fail_v(r, code, detail, fmt, ap);
	va_end(ap);
}

uint64_t req_remaining_ms(const req *r)
{
	uint64_t now = uv_now(&r->w->loop);
	return now >= r->deadline ? 0 : r->deadline - now;
}

int req_stop(req *r, int code)
{
	if (!r->cancel)
		return 0;
	void (*cancel)(req *) = r->cancel;
	r->cancel = NULL;
	r->stop_code = code;
	cancel(r);
	return 1;
}

void req_detach(req *r)
{
	list_remove(&r->link);
	r->c = NULL;
	if (r->cancel) {
		void (*cancel)(req *) = r->cancel;
		r->cancel = NULL;
		cancel(r);
	}
}
