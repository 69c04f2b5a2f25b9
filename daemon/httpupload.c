/* httpupload - a streamed request body; see httpupload.h. */
#include "httpupload.h"

#include <string.h>

#include "clients.h"
#include "porter_errors.h"

/* Lets go of the piece held by `x` and of its bytes in the uid's count;
 * returns its req (NULL when none), which the caller answers. */
static req *release(http_xfer *x)
{
	req *r = x->up_r;
	list_remove(&x->ack_link);
	if (!r)
		return NULL;
	x->up_r = NULL;
	x->up_data = NULL;
	r->cancel = NULL;
	r->op = NULL;
	if (x->up_counted)
		clients_put(x->acct, CLIENTS_BUFFERED, x->up_counted);
	x->up_counted = 0;
	return r;
}

static void answer(req *r, int done)
{
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__HttpUploadReply ur = PORTER__V1__HTTP_UPLOAD_REPLY__INIT;
	ur.done = done != 0;
	resp.body_case = PORTER__V1__RESPONSE__BODY_HTTP_UPLOAD;
	resp.http_upload = &ur;
	req_reply(r, &resp);
}

size_t httpupload_on_read(char *b, size_t size, size_t n, void *ud)
{
	http_xfer *x = ud;
	size_t cap = size * n;
	if (x->state == XFER_REAPING || x->err)
		return CURL_READFUNC_ABORT;
	if (x->up_r && x->up_off < x->up_len) {
		size_t k = x->up_len - x->up_off < cap ? x->up_len - x->up_off : cap;
		memcpy(b, x->up_data + x->up_off, k);
		x->up_off += k;
		/* All of it taken: answered after libcurl returns. */
		if (x->up_off == x->up_len && list_empty(&x->ack_link))
			list_push_back(x->up_acks, &x->ack_link);
		return k;
	}
	if (x->up_last)
		return 0; /* the end of the body */
	x->up_paused = 1;
	return CURL_READFUNC_PAUSE;
}

void httpupload_set_hop(http_xfer *x)
{
	CURL *e = x->easy;
	curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(e, CURLOPT_READFUNCTION, httpupload_on_read);
	curl_easy_setopt(e, CURLOPT_READDATA, x);
	/* -1: unknown, which libcurl sends with chunked encoding. */
	curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->up_size);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, strcmp(x->method, "PUT") ? x->method : NULL);
}

/* Cancel hook of a held piece (Cancel, or the client went away): the body
 * would be cut, so the transfer goes too. Possibly inside a libcurl
 * callback: state changes only. */
static void on_piece_cancel(req *r)
{
	http_xfer *x = r->op;
	req *p = release(x);
	req_fail(p, PORTER_E_CANCELLED, "the request body was cancelled; the transfer is aborted");
	http_xfer_abandon(x);
}

int httpupload_piece(http_xfer *x, req *r)
{
	const Porter__V1__HttpUpload *u = r->msg->http_upload;
	size_t len = u->data.len;
	if (!x->upload) {
		req_fail(r, PORTER_E_INVAL, "this HTTP stream has no streamed request body");
		return 0;
	}
	if (x->state == XFER_RECLAIMED || x->err) {
		Porter__V1__ErrorDetail d = PORTER__V1__ERROR_DETAIL__INIT;
		if (x->status > 0)
			d.http_status = (int32_t)x->status;
		req_fail_detail(r, x->err, &d, "%s", x->err_msg);
		return 0;
	}
	if (x->up_r) {
		req_fail(r, PORTER_E_BUSY,
			 "a piece of this request body is still being sent: send one at a time");
		return 0;
	}
	if (x->up_last) {
		req_fail(r, PORTER_E_INVAL, "the request body has already ended");
		return 0;
	}
	if (x->up_over || x->state == XFER_DONE) {
		/* Nothing more is wanted: the client stops and reads. */
		x->up_over = 1;
		x->up_last |= u->last;
		answer(r, 1);
		return 0;
	}
	if (x->up_size >= 0 && (uint64_t)len > (uint64_t)x->up_size - x->up_taken) {
		req_fail(r, PORTER_E_INVAL, "more request body than the %lld bytes declared",
			 (long long)x->up_size);
		return 0;
	}
	if (u->last && x->up_size >= 0 && x->up_taken + len < (uint64_t)x->up_size) {
		req_fail(r, PORTER_E_INVAL,
			 "the request body ended after %llu of the %lld bytes declared",
			 (unsigned long long)(x->up_taken + len), (long long)x->up_size);
		return 0;
	}
	/* A large piece's frame counts already, as long as its req lives
	 * (req_hold): the piece is those very bytes. */
	int counted = r->held == 0;
	if (len && counted && !clients_take(x->acct, CLIENTS_BUFFERED, len, x->up_max_buffered)) {
		req_fail(r, PORTER_E_BUSY,
			 "uid %u holds too many buffered bytes (uid-max-buffered = %llu)",
			 (unsigned)x->owner_uid, (unsigned long long)x->up_max_buffered);
		return 0;
	}
	x->up_taken += len;
	x->up_last = u->last;
	x->idle_since = uv_now(x->loop);
	if (!len) {
		answer(r, 0);
		return 0;
	}
	x->up_counted = counted ? len : 0;
	x->up_r = r;
	x->up_data = u->data.data;
	x->up_len = len;
	x->up_off = 0;
	r->op = x;
	r->cancel = on_piece_cancel;
	return 1;
}

void httpupload_answer_read(list *acks)
{
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, acks) {
		http_xfer *x = list_entry(pos, http_xfer, ack_link);
		req *r = release(x);
		if (r) {
			x->idle_since = uv_now(x->loop);
			answer(r, x->up_over);
		}
	}
}

void httpupload_end(http_xfer *x)
{
	int taken = x->up_r && x->up_off == x->up_len && x->up_last;
	req *r = release(x);
	if (!x->upload)
		return;
	x->up_over = 1;
	if (!r)
		return;
	if (x->err) {
		Porter__V1__ErrorDetail d = PORTER__V1__ERROR_DETAIL__INIT;
		if (x->status > 0)
			d.http_status = (int32_t)x->status;
		req_fail_detail(r, x->err, &d, "%s", x->err_msg);
	} else {
		answer(r, !taken);
	}
}

int httpupload_overdue(const http_xfer *x, uint64_t margin)
{
	return x->up_r && req_remaining_ms(x->up_r) <= margin;
}
