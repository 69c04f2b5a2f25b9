/* ops - request routing; see ops.h. */
#include "ops.h"

#include "db.h"
#include "porter.h"
#include "stats.h"

static void handle_ping(req *r)
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

void ops_dispatch(req *r)
{
	switch (r->msg->body_case) {
	case PORTER__V1__REQUEST__BODY_PING:
		handle_ping(r);
		return;
	case PORTER__V1__REQUEST__BODY_STATS:
		stats_handle(r);
		return;
	case PORTER__V1__REQUEST__BODY_DB_OPEN:
	case PORTER__V1__REQUEST__BODY_DB_QUERY:
	case PORTER__V1__REQUEST__BODY_DB_FETCH:
	case PORTER__V1__REQUEST__BODY_DB_CLOSE:
		db_handle(r);
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
