/* fwd - runs a request on the worker loop that owns its state; see fwd.h. */
#include "fwd.h"

#include <stdlib.h>
#include <string.h>

#include "inbox.h"
#include "log.h"
#include "ops.h"
#include "porter_errors.h"
#include "randid.h"
#include "server.h"
#include "worker.h"

/* On the origin: a req waiting for its reply from another worker. */
typedef struct fwd_wait {
	list link; /* origin's w->fwd_waits */
	req *r;
	uint64_t token; /* names it in the messages */
	worker *to;
} fwd_wait;

/* On the owner: a remote req running, and where its reply goes. */
struct fwd_back {
	list link; /* owner's w->fwd_remote */
	req *r;
	worker *from;
	uint64_t token;
};

/* origin -> owner: run this request. */
typedef struct go_msg {
	inbox_msg base;
	worker *from;
	uint64_t token;
	uid_t uid;
	uint64_t instance;
	uint64_t left_ms; /* time left of the origin's deadline */
	size_t len;
	uint8_t buf[]; /* the packed Request */
} go_msg;

/* owner -> origin: the reply. */
typedef struct back_msg {
	inbox_msg base;
	uint64_t token;
	size_t len;
	uint8_t buf[]; /* the packed Response */
} back_msg;

/* origin -> owner: stop it. */
typedef struct stop_msg {
	inbox_msg base;
	uint64_t token;
	int code;
} stop_msg;

static void back_run(void *owner, inbox_msg *m);

static void free_msg(inbox_msg *m)
{
	free(m);
}

/* Packs `resp` and posts it to `from`; a stopping origin drops it. */
static void post_back(worker *from, uint64_t token, const Porter__V1__Response *resp)
{
	size_t len = porter__v1__response__get_packed_size(resp);
	back_msg *b = malloc(sizeof(*b) + len);
	if (!b) {
		log_error("fwd: no memory for a forwarded reply; its request will time out");
		return;
	}
	porter__v1__response__pack(resp, b->buf);
	b->len = len;
	b->token = token;
	b->base.drop = free_msg;
	b->base.run = back_run;
	if (inbox_push(&from->inbox, &b->base) < 0)
		free(b);
}

static void post_error(worker *from, uint64_t token, int code, const char *msg)
{
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	resp.status = code;
	resp.message = (char *)msg;
	post_back(from, token, &resp);
}

void fwd_reply(fwd_back *back, Porter__V1__Response *resp)
{
	list_remove(&back->link);
	post_back(back->from, back->token, resp);
	free(back);
}

/* ---- on the owner ---- */

static void go_run(void *owner, inbox_msg *m)
{
	worker *w = owner;
	go_msg *g = (go_msg *)m;
	Porter__V1__Request *msg = porter__v1__request__unpack(NULL, g->len, g->buf);
	fwd_back *back = msg ? calloc(1, sizeof(*back)) : NULL;
	if (!back) {
		if (msg)
			porter__v1__request__free_unpacked(msg, NULL);
		post_error(g->from, g->token, PORTER_E_NOMEM, "out of memory");
		free(g);
		return;
	}
	back->from = g->from;
	back->token = g->token;
	req *r = req_new_remote(w, msg, g->uid, g->instance, g->left_ms, back);
	if (!r) {
		free(back);
		post_error(g->from, g->token, PORTER_E_NOMEM, "out of memory");
		free(g);
		return;
	}
	back->r = r;
	list_push_back(&w->fwd_remote, &back->link);
	free(g);
	if (w->state == WORKER_CLOSING) {
		req_fail(r, PORTER_E_SHUTDOWN, "daemon shutting down");
		return;
	}
	ops_dispatch(r);
}

/* The owner stops: nothing runs the request; the origin hears so. */
static void go_drop(inbox_msg *m)
{
	go_msg *g = (go_msg *)m;
	post_error(g->from, g->token, PORTER_E_SHUTDOWN, "daemon shutting down");
	free(g);
}

static void stop_run(void *owner, inbox_msg *m)
{
	worker *w = owner;
	stop_msg *s = (stop_msg *)m;
	list *pos;
	for (pos = w->fwd_remote.next; pos != &w->fwd_remote; pos = pos->next) {
		fwd_back *b = list_entry(pos, fwd_back, link);
		if (b->token == s->token) {
			/* Its reply still travels back, to no one. */
			req_stop(b->r, s->code);
			break;
		}
	}
	free(s);
}

/* ---- on the origin ---- */

static void back_run(void *owner, inbox_msg *m)
{
	worker *w = owner;
	back_msg *b = (back_msg *)m;
	list *pos;
	for (pos = w->fwd_waits.next; pos != &w->fwd_waits; pos = pos->next) {
		fwd_wait *fw = list_entry(pos, fwd_wait, link);
		if (fw->token != b->token)
			continue;
		list_remove(&fw->link);
		req *r = fw->r;
		free(fw);
		r->cancel = NULL;
		r->op = NULL;
		Porter__V1__Response *resp = porter__v1__response__unpack(NULL, b->len, b->buf);
		if (resp) {
			req_reply(r, resp);
			porter__v1__response__free_unpacked(resp, NULL);
		} else {
			req_fail(r, PORTER_E_INTERNAL, "a forwarded reply could not be read");
		}
		break;
	}
	/* Not found: the req was stopped and answered already. */
	free(b);
}

/* The waiting req is stopped (Cancel, client gone, shutdown): the remote
 * one is told to stop, and this one is answered now. */
static void fwd_cancel(req *r)
{
	fwd_wait *fw = r->op;
	r->op = NULL;
	list_remove(&fw->link);
	stop_msg *s = malloc(sizeof(*s));
	if (s) {
		s->base.run = stop_run;
		s->base.drop = free_msg;
		s->token = fw->token;
		s->code = r->stop_code ? r->stop_code : PORTER_E_CANCELLED;
		if (inbox_push(&fw->to->inbox, &s->base) < 0)
			free(s);
	}
	free(fw);
	req_fail(r, PORTER_E_CANCELLED, "cancelled");
}

void fwd_request(req *r, worker *to)
{
	fwd_wait *fw = calloc(1, sizeof(*fw));
	size_t len = porter__v1__request__get_packed_size(r->msg);
	go_msg *g = fw ? malloc(sizeof(*g) + len) : NULL;
	if (!g) {
		free(fw);
		req_fail(r, PORTER_E_NOMEM, "out of memory");
		return;
	}
	porter__v1__request__pack(r->msg, g->buf);
	g->len = len;
	g->base.run = go_run;
	g->base.drop = go_drop;
	g->from = r->w;
	g->token = ++r->w->fwd_next;
	g->uid = r->uid;
	g->instance = r->instance;
	g->left_ms = req_remaining_ms(r);
	fw->r = r;
	fw->token = g->token;
	fw->to = to;
	if (inbox_push(&to->inbox, &g->base) < 0) {
		free(g);
		free(fw);
		req_fail(r, PORTER_E_SHUTDOWN, "daemon shutting down");
		return;
	}
	list_push_back(&r->w->fwd_waits, &fw->link);
	r->op = fw;
	r->cancel = fwd_cancel;
	log_debug("fwd: worker %u sends request %llu to worker %u", r->w->index,
		  (unsigned long long)r->id, to->index);
}

void fwd_worker_init(worker *w)
{
	list_init(&w->fwd_waits);
	list_init(&w->fwd_remote);
	w->fwd_next = 0;
}

int fwd_new_id(unsigned worker_index, uint64_t *out)
{
	uint64_t rnd;
	int rc = randid_new(FWD_OWNER_SHIFT, &rnd);
	if (rc < 0)
		return rc;
	*out = ((uint64_t)worker_index << FWD_OWNER_SHIFT) | rnd;
	return 0;
}

int fwd_to_owner(req *r, uint64_t id)
{
	unsigned owner = fwd_id_owner(id);
	/* A remote req is never sent on: its origin already chose this
	 * worker, and a second hop could only bounce. */
	if (!id || r->back || owner == r->w->index || !r->w->srv || owner >= r->w->srv->n_workers)
		return 0;
	fwd_request(r, &r->w->srv->workers[owner]);
	return 1;
}
