/* httpdefer - requests held while libcurl runs a callback; see httpdefer.h. */
#include "httpdefer.h"

#include <stdlib.h>

#include "porter_errors.h"

typedef struct deferred {
	list link; /* the worker's queue */
	req *r;
	void (*run)(req *r); /* the http entry point it came to */
} deferred;

/* Takes `d` off its queue and gives its req back, hooks cleared. */
static req *unqueue(deferred *d)
{
	req *r = d->r;
	list_remove(&d->link);
	free(d);
	r->op = NULL;
	r->cancel = NULL;
	return r;
}

/* Cancel hook of a queued request: it never ran, so nothing to stop. */
static void on_cancel(req *r)
{
	req_fail(unqueue(r->op), PORTER_E_CANCELLED, "client went away");
}

int httpdefer_take(list *q, const httpglue *g, req *r, void (*run)(req *r))
{
	if (!g->in_curl)
		return 0;
	deferred *d = malloc(sizeof(*d));
	if (!d) {
		req_fail(r, PORTER_E_NOMEM, "out of memory");
		return 1;
	}
	d->r = r;
	d->run = run;
	r->op = d;
	r->cancel = on_cancel;
	list_push_back(q, &d->link);
	return 1;
}

void httpdefer_run(list *q, const httpglue *g)
{
	while (!g->in_curl && !list_empty(q)) {
		deferred *d = list_entry(q->next, deferred, link);
		void (*run)(req * r) = d->run;
		run(unqueue(d));
	}
}

void httpdefer_fail_all(list *q, int code, const char *msg)
{
	while (!list_empty(q))
		req_fail(unqueue(list_entry(q->next, deferred, link)), code, "%s", msg);
}
