/* ops - request routing; see ops.h. */
#include "ops.h"

#include <stdlib.h>

#include "batch.h"
#include "cancel.h"
#include "dalloc.h"
#include "db.h"
#include "fs.h"
#include "http.h"
#include "porter_errors.h"
#include "stats.h"
#include "worker.h"

/* A Ping with a delay: a timer owned by the request. */
typedef struct delayed_ping {
	uv_timer_t timer;
	req *r;     /* NULL once finished */
	int status; /* what the timer's expiry means: 0 or PORTER_E_TIMEOUT */
} delayed_ping;

static void free_handle(uv_handle_t *h)
{
	free(h->data);
}

static void echo(req *r)
{
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__PingReply pr = PORTER__V1__PING_REPLY__INIT;
	/* The payload is echoed straight from the request; both live until
	 * req_reply has packed the response. */
	pr.payload = r->msg->ping->payload;
	resp.body_case = PORTER__V1__RESPONSE__BODY_PING;
	resp.ping = &pr;
	req_reply(r, &resp);
}

static void delayed_ping_fire(uv_timer_t *t)
{
	delayed_ping *dp = t->data;
	req *r = dp->r;
	dp->r = NULL;
	r->cancel = NULL;
	uv_close((uv_handle_t *)&dp->timer, free_handle);
	if (dp->status == 0)
		echo(r);
	else
		req_fail(r, PORTER_E_TIMEOUT, "deadline passed before the %u ms delay",
			 r->msg->ping->delay_ms);
}

static void delayed_ping_cancel(req *r)
{
	delayed_ping *dp = r->op;
	dp->r = NULL;
	uv_timer_stop(&dp->timer);
	uv_close((uv_handle_t *)&dp->timer, free_handle);
	req_fail(r, PORTER_E_CANCELLED, "cancelled");
}

static void handle_ping(req *r)
{
	uint32_t delay = r->msg->ping->delay_ms;
	if (delay == 0) {
		echo(r);
		return;
	}
	delayed_ping *dp = dcalloc(1, sizeof(*dp));
	if (!dp) {
		req_fail(r, PORTER_E_NOMEM, "out of memory");
		return;
	}
	/* The daemon enforces the deadline itself, as every operation must. */
	uint64_t left = req_remaining_ms(r);
	dp->r = r;
	dp->status = delay > left ? PORTER_E_TIMEOUT : 0;
	uv_timer_init(&r->w->loop, &dp->timer);
	dp->timer.data = dp;
	uv_timer_start(&dp->timer, delayed_ping_fire, delay > left ? left : delay, 0);
	r->op = dp;
	r->cancel = delayed_ping_cancel;
}

void ops_dispatch(req *r)
{
	if (!r->batch && cancel_refuse_early(r))
		return;
	switch (r->msg->body_case) {
	case PORTER__V1__REQUEST__BODY_PING:
		handle_ping(r);
		return;
	case PORTER__V1__REQUEST__BODY_CANCEL:
		cancel_handle(r);
		return;
	case PORTER__V1__REQUEST__BODY_BATCH:
		batch_handle(r);
		return;
	case PORTER__V1__REQUEST__BODY_STATS:
		stats_handle(r);
		return;
	case PORTER__V1__REQUEST__BODY_FILE_READ:
	case PORTER__V1__REQUEST__BODY_FILE_READ_NEXT:
	case PORTER__V1__REQUEST__BODY_FILE_WRITE:
	case PORTER__V1__REQUEST__BODY_FILE_WRITE_OPEN:
	case PORTER__V1__REQUEST__BODY_FILE_WRITE_CHUNK:
	case PORTER__V1__REQUEST__BODY_FILE_WRITE_COMMIT:
	case PORTER__V1__REQUEST__BODY_FILE_DELETE:
	case PORTER__V1__REQUEST__BODY_FILE_STAT:
	case PORTER__V1__REQUEST__BODY_FILE_LIST:
	case PORTER__V1__REQUEST__BODY_FILE_STREAM_CLOSE:
	case PORTER__V1__REQUEST__BODY_FILE_MKDIR:
	case PORTER__V1__REQUEST__BODY_FILE_RENAME:
	case PORTER__V1__REQUEST__BODY_FILE_COPY:
	case PORTER__V1__REQUEST__BODY_FILE_WATCH_OPEN:
	case PORTER__V1__REQUEST__BODY_FILE_WATCH_READ:
		fs_handle(r);
		return;
	case PORTER__V1__REQUEST__BODY_DB_OPEN:
	case PORTER__V1__REQUEST__BODY_DB_QUERY:
	case PORTER__V1__REQUEST__BODY_DB_FETCH:
	case PORTER__V1__REQUEST__BODY_DB_CLOSE:
#ifdef PORTER_FUZZING
		/* A fuzzer must never send traffic off the machine: conninfo
		 * and URLs come straight from its input. */
		req_fail(r, PORTER_E_UNSUPPORTED, "no network while fuzzing");
		return;
#endif
		db_handle(r);
		return;
	case PORTER__V1__REQUEST__BODY_HTTP:
#ifdef PORTER_FUZZING
		req_fail(r, PORTER_E_UNSUPPORTED, "no network while fuzzing");
		return;
#endif
		http_handle(r);
		return;
	case PORTER__V1__REQUEST__BODY_HTTP_FETCH:
		http_handle_fetch(r);
		return;
	case PORTER__V1__REQUEST__BODY_HTTP_CLOSE:
		http_handle_close(r);
		return;
	case PORTER__V1__REQUEST__BODY_HTTP_UPLOAD:
		http_handle_upload(r);
		return;
	case PORTER__V1__REQUEST__BODY_HELLO:
		req_fail(r, PORTER_E_PROTOCOL, "Hello was already exchanged on this connection");
		return;
	default:
		/* Includes bodies from a newer client that this daemon does
		 * not know: protobuf-c skips them, leaving the oneof unset. */
		req_fail(r, PORTER_E_UNSUPPORTED, "request type not supported by this daemon");
		return;
	}
}
