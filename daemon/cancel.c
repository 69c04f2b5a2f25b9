/* cancel - Cancel by request id across workers; see cancel.h. */
#include "cancel.h"

#include <stdlib.h>

#include "conn.h"
#include "dalloc.h"
#include "htab.h"
#include "log.h"
#include "porter_errors.h"
#include "server.h"
#include "worker.h"

/* How long an unmatched cancel is remembered (a request arriving later
 * than this after its cancel runs normally), and how many one uid may have
 * remembered on one worker: past that its own oldest is forgotten, never
 * another uid's, so no other client can push a tombstone out early. */
#define TOMBSTONE_MS 30000
#define TOMBSTONES_PER_UID 1024

/* An early cancel, found by hash of (uid, instance, id) on every request. */
typedef struct tombstone {
	htab_node node; /* in cancel_state.tombs; first member */
	list by_time;   /* in cancel_state.by_time, oldest first */
	list by_uid;    /* in its tuid's list, oldest first */
	struct tuid *u;
	uid_t uid;
	uint64_t instance;
	uint64_t id;
	uint64_t expires; /* uv_now() ms */
} tombstone;

/* The tombstones of one uid on this worker. */
typedef struct tuid {
	htab_node node; /* in cancel_state.uids; first member */
	uid_t uid;
	unsigned n;
	list tombs;
} tuid;

/* A Cancel request waiting for every worker's answer. */
typedef struct pending {
	list link; /* in cancel_state.pending */
	uint64_t token;
	req *r;           /* the Cancel request */
	unsigned waiting; /* answers still to come */
	int found;
	int unasked; /* a worker could not be asked (out of memory) */
} pending;

struct cancel_state {
	list pending;
	uint64_t next_token;
	htab tombs;   /* of tombstone */
	htab uids;    /* of tuid */
	list by_time; /* every tombstone, oldest first */
};

typedef struct answer_msg {
	inbox_msg base;
	uint64_t token;
	int found;
} answer_msg;

/* Asks a worker to cancel; answered to the origin's inbox. The answer is
 * allocated with the ask, so answering never needs memory: an answer lost
 * to a failed allocation would leave the Cancel waiting forever. */
typedef struct ask_msg {
	inbox_msg base;
	worker *origin;
	uint64_t token;
	uid_t uid;
	uint64_t instance;
	uint64_t target;
	answer_msg *answer; /* owned until sent */
} ask_msg;

static uint64_t tomb_hash(uid_t uid, uint64_t instance, uint64_t id)
{
	return htab_mix(id ^ htab_mix(instance ^ htab_mix((uint64_t)uid + 1)));
}

static void forget(cancel_state *cs, tombstone *t)
{
	tuid *u = t->u;
	htab_remove(&cs->tombs, &t->node);
	list_remove(&t->by_time);
	list_remove(&t->by_uid);
	free(t);
	if (--u->n == 0) {
		htab_remove(&cs->uids, &u->node);
		free(u);
	}
}

/* Forgets what is past its 30 s; the list is in expiry order. */
static void expire(cancel_state *cs, uint64_t now)
{
	while (!list_empty(&cs->by_time)) {
		tombstone *t = list_entry(cs->by_time.next, tombstone, by_time);
		if (t->expires > now)
			break;
		forget(cs, t);
	}
}

static tuid *get_tuid(cancel_state *cs, uid_t uid)
{
	uint64_t h = htab_mix((uint64_t)uid + 1);
	for (htab_node *n = htab_first(&cs->uids, h); n; n = htab_next(n))
		if (((tuid *)n)->uid == uid)
			return (tuid *)n;
	tuid *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->uid = uid;
	list_init(&u->tombs);
	if (htab_insert(&cs->uids, &u->node, h) < 0) {
		free(u);
		return NULL;
	}
	return u;
}

/* Remembers an unmatched cancel. Out of memory forgets it: the request
 * then runs if it arrives, as it would after 30 s. */
static void remember(cancel_state *cs, uint64_t now, uid_t uid, uint64_t instance, uint64_t id)
{
	expire(cs, now);
	tuid *u = get_tuid(cs, uid);
	tombstone *t = u ? calloc(1, sizeof(*t)) : NULL;
	if (!t || htab_insert(&cs->tombs, &t->node, tomb_hash(uid, instance, id)) < 0) {
		free(t);
		if (u && u->n == 0) {
			htab_remove(&cs->uids, &u->node);
			free(u);
		}
		return;
	}
	*t = (tombstone){t->node, {0}, {0}, u, uid, instance, id, now + TOMBSTONE_MS};
	list_push_back(&cs->by_time, &t->by_time);
	list_push_back(&u->tombs, &t->by_uid);
	if (++u->n > TOMBSTONES_PER_UID)
		forget(cs, list_entry(u->tombs.next, tombstone, by_uid));
}

/* Cancels the matching request on this worker. 1 when one was stopped. */
static int cancel_local(worker *w, uid_t uid, uint64_t instance, uint64_t target)
{
	list *pos, *tmp, *rpos, *rtmp;
	list_for_each_safe(pos, tmp, &w->conns) {
		conn *c = list_entry(pos, conn, link);
		if (c->uid != uid || c->client_instance != instance)
			continue;
		list_for_each_safe(rpos, rtmp, &c->reqs) {
			req *r = list_entry(rpos, req, link);
			if (r->id != target ||
			    r->msg->body_case == PORTER__V1__REQUEST__BODY_CANCEL)
				continue;
			/* Only work that can stop early counts as cancelled;
			 * anything else is about to finish on its own. */
			return req_stop(r, PORTER_E_CANCELLED);
		}
	}
	return 0;
}

static void finish_pending(pending *p)
{
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__CancelReply cr = PORTER__V1__CANCEL_REPLY__INIT;
	cr.found = p->found;
	resp.body_case = PORTER__V1__RESPONSE__BODY_CANCEL;
	resp.cancel = &cr;
	list_remove(&p->link);
	if (!p->found && p->unasked)
		/* "Not found" would be a guess: the target may run on the
		 * worker that was never asked. */
		req_fail(p->r, PORTER_E_NOMEM, "out of memory asking every worker");
	else
		req_reply(p->r, &resp);
	free(p);
}

static void answer(worker *origin, uint64_t token, int found);

static void answer_run(void *owner, inbox_msg *m)
{
	worker *w = owner;
	answer_msg *a = (answer_msg *)m;
	answer(w, a->token, a->found);
	free(a);
}

static void answer_drop(inbox_msg *m)
{
	free(m);
}

/* Counts one worker's answer on the origin worker. */
static void answer(worker *origin, uint64_t token, int found)
{
	cancel_state *cs = origin->cancel;
	list *pos, *tmp;
	if (!cs)
		return;
	list_for_each_safe(pos, tmp, &cs->pending) {
		pending *p = list_entry(pos, pending, link);
		if (p->token != token)
			continue;
		p->found |= found;
		if (--p->waiting == 0)
			finish_pending(p);
		return;
	}
}

/* Sends the ask's preallocated answer to its origin; consumes it. */
static void send_answer(ask_msg *ask, int found)
{
	answer_msg *a = ask->answer;
	ask->answer = NULL;
	a->base.run = answer_run;
	a->base.drop = answer_drop;
	a->token = ask->token;
	a->found = found;
	if (inbox_push(&ask->origin->inbox, &a->base) < 0)
		free(a); /* the origin is stopping and finishes it itself */
}

static void ask_run(void *owner, inbox_msg *m)
{
	worker *w = owner;
	ask_msg *a = (ask_msg *)m;
	int found = 0;
	if (w->cancel) {
		found = cancel_local(w, a->uid, a->instance, a->target);
		if (!found)
			remember(w->cancel, uv_now(&w->loop), a->uid, a->instance, a->target);
	}
	send_answer(a, found);
	free(a);
}

static void ask_drop(inbox_msg *m)
{
	ask_msg *a = (ask_msg *)m;
	send_answer(a, 0);
	free(a);
}

/* The Cancel request's own connection went away: nothing to stop, the
 * answers still arrive and finish it (the reply is discarded). */
static void pending_cancelled(req *r)
{
	(void)r;
}

void cancel_handle(req *r)
{
	worker *w = r->w;
	server *srv = w->srv;
	cancel_state *cs = w->cancel;
	conn *c = r->c;
	uint64_t target = r->msg->cancel->target_id;

	pending *p = dcalloc(1, sizeof(*p));
	if (!p) {
		req_fail(r, PORTER_E_NOMEM, "out of memory");
		return;
	}
	p->token = ++cs->next_token;
	p->r = r;
	p->waiting = srv->n_workers;
	list_push_back(&cs->pending, &p->link);
	r->cancel = pending_cancelled;

	/* This worker answers directly; the others through their inboxes. */
	uid_t uid = c->uid;
	uint64_t instance = c->client_instance;
	for (unsigned i = 0; i < srv->n_workers; i++) {
		worker *other = &srv->workers[i];
		if (other == w)
			continue;
		ask_msg *a = dmalloc(sizeof(*a));
		if (a && !(a->answer = dmalloc(sizeof(*a->answer)))) {
			free(a);
			a = NULL;
		}
		if (a) {
			a->base.run = ask_run;
			a->base.drop = ask_drop;
			a->origin = w;
			a->token = p->token;
			a->uid = uid;
			a->instance = instance;
			a->target = target;
			if (inbox_push(&other->inbox, &a->base) == 0)
				continue;
			free(a->answer);
			free(a);
			p->waiting--; /* that worker is stopping: nothing runs there */
			continue;
		}
		p->unasked = 1;
		p->waiting--;
	}
	int found = cancel_local(w, uid, instance, target);
	if (!found)
		remember(cs, uv_now(&w->loop), uid, instance, target);
	p->waiting--;
	p->found |= found;
	if (p->waiting == 0)
		finish_pending(p);
}

int cancel_refuse_early(req *r)
{
	cancel_state *cs = r->w->cancel;
	if (!cs || cs->tombs.n == 0 || !r->c)
		return 0;
	expire(cs, uv_now(&r->w->loop));
	uid_t uid = r->c->uid;
	uint64_t instance = r->c->client_instance;
	uint64_t h = tomb_hash(uid, instance, r->id);
	for (htab_node *n = htab_first(&cs->tombs, h); n; n = htab_next(n)) {
		tombstone *t = (tombstone *)n;
		if (t->id == r->id && t->uid == uid && t->instance == instance) {
			forget(cs, t);
			req_fail(r, PORTER_E_CANCELLED, "cancelled before it started");
			return 1;
		}
	}
	return 0;
}

int cancel_worker_init(worker *w)
{
	cancel_state *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return PORTER_E_NOMEM;
	list_init(&cs->pending);
	list_init(&cs->by_time);
	w->cancel = cs;
	return 0;
}

void cancel_worker_close(worker *w)
{
	cancel_state *cs = w->cancel;
	list *pos, *tmp;
	if (!cs)
		return;
	list_for_each_safe(pos, tmp, &cs->pending)
		finish_pending(list_entry(pos, pending, link));
	while (!list_empty(&cs->by_time))
		forget(cs, list_entry(cs->by_time.next, tombstone, by_time));
	htab_free(&cs->tombs);
	htab_free(&cs->uids);
	w->cancel = NULL;
	free(cs);
}
