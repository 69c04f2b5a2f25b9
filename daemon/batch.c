/* batch - concurrent member requests, join or select; see batch.h. */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include "clients.h"
#include "config.h"
#include "conn.h"
#include "dalloc.h"
#include "log.h"
#include "ops.h"
#include "dbwire.h"
#include "palloc.h"
#include "porter_errors.h"
#include "stats.h"
#include "worker.h"

struct batch {
	req *r;   /* the Batch request; NULL once answered */
	int mode; /* PORTER__V1__BATCH__MODE__ALL or __FIRST */
	unsigned n;
	unsigned pending;             /* members not yet finished */
	req **members;                /* live member reqs; NULL once finished */
	ProtobufCBinaryData *results; /* packed responses; len 0 until known */
	int winner;                   /* FIRST: the member that succeeded, or -1 */
	int busy;                     /* inside a loop over members: no freeing */
	int nomem;                    /* a member's result could not be kept */
	/* The members' results are held until the batch answers, as long
	 * as its slowest member takes (a Ping's delay, a slow server): they
	 * count in the uid's buffered bytes (uid-max-buffered) like its
	 * unsent replies. A batch of 64 one-chunk file reads held 64 MiB
	 * that no quota saw, and a uid could hold as many such batches as
	 * it may have requests in flight. */
	clients_acct *acct; /* its uid's counters (a reference), or NULL */
	uint64_t held;      /* bytes of results[] counted in acct */
	int refused;        /* a result was refused: code and words below */
	char why[160];
};

/* Drops the results kept so far and gives their bytes back. */
static void drop_results(batch *b)
{
	for (unsigned i = 0; i < b->n; i++) {
		free(b->results[i].data);
		b->results[i].data = NULL;
		b->results[i].len = 0;
	}
	clients_put(b->acct, CLIENTS_BUFFERED, b->held);
	b->held = 0;
}

static void batch_free(batch *b)
{
	drop_results(b);
	clients_acct_unref(b->acct);
	free(b->results);
	free(b->members);
	free(b);
}

static void reply(batch *b)
{
	req *r = b->r;
	Porter__V1__BatchReply br = PORTER__V1__BATCH_REPLY__INIT;
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;

	b->r = NULL;
	r->cancel = NULL;
	if (b->nomem || b->refused) {
		/* A member result missing from the reply would read as an
		 * empty success: fail the whole batch instead. */
		if (b->refused)
			req_fail(r, b->refused, "%s", b->why);
		else
			req_fail(r, PORTER_E_NOMEM,
				 "out of memory keeping a batch member's result");
		drop_results(b);
		return;
	}
	br.n_results = b->n;
	br.results = b->results;
	br.winner = b->winner;
	resp.body_case = PORTER__V1__RESPONSE__BODY_BATCH;
	resp.batch = &br;
	/* The reply's bytes are counted as it is queued (the connection's
	 * unsent output): the results' count goes first, or the two would
	 * count the same bytes twice against uid-max-buffered. */
	clients_put(b->acct, CLIENTS_BUFFERED, b->held);
	b->held = 0;
	req_reply(r, &resp);
	/* Packed into the reply (counted there as unsent bytes) or dropped
	 * with it: members still running (FIRST's losers) report nothing
	 * more. */
	drop_results(b);
}

/* Stops every member still running; they report back as they finish. */
static void stop_members(batch *b, int code, int detach)
{
	for (unsigned i = 0; i < b->n; i++) {
		req *m = b->members[i];
		if (!m)
			continue;
		if (detach)
			m->c = NULL;
		/* May finish the member on the spot (re-entering
		 * batch_member_done), which clears members[i]. */
		req_stop(m, code);
	}
}

/* Answers when the batch is complete, and frees it once nothing can
 * report to it any more. */
static void settle(batch *b)
{
	if (b->busy)
		return;
	if (b->r && (b->pending == 0 || b->winner >= 0 || b->refused))
		reply(b);
	if (!b->r && b->pending == 0)
		batch_free(b);
}

/* Whether a result of `size` bytes may be kept: it fits the batch's reply
 * (max-frame) and the uid's uid-max-buffered, and is then counted. Else
 * the batch is refused (with the words why) and its other members
 * stopped. */
static int keep_result(batch *b, unsigned index, size_t size)
{
	const config *cfg = b->r->w->cfg;
	/* Each result takes its field's tag and a length of at most 5
	 * bytes besides its own; the reply's other fields are under 32. */
	uint64_t reply = b->held + 6u * b->n + 32u + size;
	if (reply > cfg->max_frame) {
		b->refused = PORTER_E_TOO_LARGE;
		snprintf(b->why, sizeof(b->why),
			 "the batch's results do not fit in one reply (max-frame %u bytes) with "
			 "member %u's",
			 (unsigned)cfg->max_frame, index);
	} else if (!clients_take(b->acct, CLIENTS_BUFFERED, size, cfg->uid_max_buffered)) {
		b->refused = PORTER_E_BUSY;
		snprintf(b->why, sizeof(b->why),
			 "uid %u holds too many buffered bytes (uid-max-buffered = %llu) to keep "
			 "batch member %u's result",
			 (unsigned)b->r->uid, (unsigned long long)cfg->uid_max_buffered, index);
	} else {
		b->held += size;
		return 1;
	}
	b->busy++;
	stop_members(b, PORTER_E_CANCELLED, 0);
	b->busy--;
	return 0;
}

void batch_member_done(batch *b, unsigned index, const Porter__V1__Response *resp)
{
	b->members[index] = NULL;
	b->pending--;

	/* Once a FIRST batch has its winner, or any batch is answered, the
	 * others' results are not reported: they were stopped. */
	if (b->r && !b->refused && !(b->mode == PORTER__V1__BATCH__MODE__FIRST && b->winner >= 0)) {
		size_t size = protobuf_c_message_get_packed_size(&resp->base);
		uint8_t *buf = keep_result(b, index, size) ? dmalloc(size + 1) : NULL;
		if (b->refused) {
			/* Not kept. */
		} else if (buf) {
			b->results[index].len = protobuf_c_message_pack(&resp->base, buf);
			b->results[index].data = buf;
		} else {
			clients_put(b->acct, CLIENTS_BUFFERED, size);
			b->held -= size;
			b->nomem = 1;
		}
		if (!b->refused && b->mode == PORTER__V1__BATCH__MODE__FIRST && resp->status == 0) {
			b->winner = (int)index;
			b->busy++;
			stop_members(b, PORTER_E_CANCELLED, 0);
			b->busy--;
		}
	}
	settle(b);
}

/* The batch's own connection went away, or the batch was cancelled or the
 * daemon is stopping: stop every member. */
static void on_batch_stopped(req *r)
{
	batch *b = r->op;
	int code = r->stop_code ? r->stop_code : PORTER_E_CANCELLED;
	b->busy++;
	stop_members(b, code, r->c == NULL);
	b->busy--;
	settle(b);
}

/* Decodes member `i`, refusing what may not be nested. NULL after failing
 * the batch with a message in `why`. */
static Porter__V1__Request *decode_member(const ProtobufCBinaryData *raw, char *why, size_t whylen,
					  unsigned i, int *code)
{
	*code = PORTER_E_INVAL;
	uint64_t id;
	size_t n = dbwire_request_params(raw->len, raw->data, &id);
	if (n == DBWIRE_MALFORMED) {
		/* Not unpacked: parameters after what cannot be read are
		 * uncounted. */
		snprintf(why, whylen, "batch member %u is not a valid request", i);
		return NULL;
	}
	if (n > DBWIRE_MAX_PARAMS) {
		snprintf(why, whylen, "batch member %u has more than 65535 query parameters", i);
		return NULL;
	}
	palloc_budget budget;
	palloc_budget_init(&budget, raw->len, NULL);
	Porter__V1__Request *m = porter__v1__request__unpack(&budget.base, raw->len, raw->data);
	if (!m) {
		if (budget.nomem) {
			*code = PORTER_E_NOMEM;
			snprintf(why, whylen, "out of memory decoding batch member %u", i);
		} else {
			snprintf(why, whylen, "batch member %u is not a valid request", i);
		}
		return NULL;
	}
	switch (m->body_case) {
	case PORTER__V1__REQUEST__BODY__NOT_SET:
		snprintf(why, whylen, "batch member %u has no request type this daemon knows", i);
		break;
	case PORTER__V1__REQUEST__BODY_HELLO:
	case PORTER__V1__REQUEST__BODY_CANCEL:
	case PORTER__V1__REQUEST__BODY_BATCH:
		snprintf(why, whylen,
			 "batch member %u: Hello, Cancel and Batch cannot be batch members", i);
		break;
	default:
		return m;
	}
	porter__v1__request__free_unpacked(m, NULL);
	return NULL;
}

void batch_handle(req *r)
{
	Porter__V1__Batch *msg = r->msg->batch;
	worker *w = r->w;
	unsigned n = (unsigned)msg->n_members;
	Porter__V1__Request **decoded = NULL;
	char why[160];
	batch *b = NULL;

	if (n == 0) {
		req_fail(r, PORTER_E_INVAL, "a batch needs at least one member");
		return;
	}
	if (n > w->cfg->batch_max_members) {
		req_fail(r, PORTER_E_INVAL, "a batch may have at most %u members, this one has %u",
			 w->cfg->batch_max_members, n);
		return;
	}
	if (msg->mode != PORTER__V1__BATCH__MODE__ALL &&
	    msg->mode != PORTER__V1__BATCH__MODE__FIRST) {
		req_fail(r, PORTER_E_INVAL, "unknown batch mode %d", (int)msg->mode);
		return;
	}

	decoded = dcalloc(n, sizeof(*decoded));
	b = dcalloc(1, sizeof(*b));
	if (!decoded || !b || !(b->members = dcalloc(n, sizeof(*b->members))) ||
	    !(b->results = dcalloc(n, sizeof(*b->results)))) {
		req_fail(r, PORTER_E_NOMEM, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < n; i++) {
		int code;
		decoded[i] = decode_member(&msg->members[i], why, sizeof(why), i, &code);
		if (!decoded[i]) {
			req_fail(r, code, "%s", why);
			goto fail;
		}
	}

	b->r = r;
	b->acct = clients_acct_ref(r->uid);
	b->mode = msg->mode;
	b->n = n;
	b->winner = -1;
	for (unsigned i = 0; i < n; i++) {
		req *m = req_new_member(b, i, r->c, w, r->deadline, decoded[i]);
		decoded[i] = NULL; /* owned by the member now, even on failure */
		if (!m) {
			for (unsigned j = 0; j < i; j++) {
				/* Counted in flight by req_new_member. */
				stats_sub(&w->counters.inflight, 1);
				porter__v1__request__free_unpacked(b->members[j]->msg, NULL);
				free(b->members[j]);
			}
			req_fail(r, PORTER_E_NOMEM, "out of memory");
			goto fail;
		}
		b->members[i] = m;
	}
	free(decoded);
	decoded = NULL;

	r->op = b;
	r->cancel = on_batch_stopped;
	b->pending = n;
	/* Members may finish while they are being started (a fast member
	 * winning a FIRST batch stops the others); settle() waits until
	 * every member has been started or stopped. */
	b->busy++;
	for (unsigned i = 0; i < n; i++) {
		req *m = b->members[i];
		if (!m)
			continue;
		if (b->winner >= 0 || !b->r || b->refused) {
			/* Decided before this member started: it never runs. */
			req_fail(m, PORTER_E_CANCELLED, "not started: the batch was decided");
			continue;
		}
		ops_dispatch(m);
	}
	b->busy--;
	settle(b);
	return;

fail:
	if (decoded)
		for (unsigned i = 0; i < n; i++)
			if (decoded[i])
				porter__v1__request__free_unpacked(decoded[i], NULL);
	free(decoded);
	if (b) {
		clients_acct_unref(b->acct);
		free(b->members);
		free(b->results);
		free(b);
	}
}
