/* filewatch - libporter's file watches (porter_file_watch_*); see porter.h. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "pconn.h"
#include "pfile.h"
#include "porter.h"

struct porter_file_watch {
	uint64_t stream_id;
	uint64_t ack; /* the last event handed to the caller */
	int is_dir;
	int ended; /* the daemon said the watch is over */
};

struct porter_file_events {
	Porter__V1__Response *resp; /* owned; NULL for an empty batch */
	size_t first;               /* events before it were handed out already */
	int ended;
};

/*
 * How much longer than its timeout a read waits for porterd's answer.
 * porterd answers a read that found no events before the read's deadline
 * (a third of its time, at most 1 s, early); a caller that gave up on a
 * later answer would drop its connection, and with it a watch opened on
 * that connection: every later read of the watch would fail with "no such
 * file stream" and its events be lost (on a loaded machine a read of 50
 * ms, answered after 30 ms, was late often enough to lose half the events
 * of a run). porterd is told the caller's timeout, so its answer comes
 * when it did, and only a late one is waited for.
 */
#define WATCH_READ_GRACE_MS 1000

/* Sends `req` and checks that a FileWatchReply came back. */
static int watch_call(Porter__V1__Request *req, int timeout_ms, Porter__V1__Response **out)
{
	Porter__V1__Response *resp = NULL;
	/* Both are safe to repeat: a watch orphaned with its connection is
	 * dropped by the daemon, and a read names what it acknowledges. */
	int rc = pconn_call(req, timeout_ms, PCONN_IDEMPOTENT, &resp);
	if (rc < 0)
		return rc;
	if (resp->body_case != PORTER__V1__RESPONSE__BODY_FILE_WATCH || !resp->file_watch)
		return pfile_bad_reply(resp, "file watch");
	*out = resp;
	return 0;
}

int porter_file_watch_open(const char *root, const char *path, uint64_t call_id, int timeout_ms,
			   porter_file_watch **out)
{
	if (out)
		*out = NULL;
	if (!path || !out)
		return pconn_set_error(PORTER_E_INVAL, "path or out is NULL");
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "negative timeout");
	porter_file_watch *w = calloc(1, sizeof(*w));
	if (!w)
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileWatchOpen wo = PORTER__V1__FILE_WATCH_OPEN__INIT;
	Porter__V1__Response *resp = NULL;
	wo.root = pfile_root(root);
	wo.path = (char *)path;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_WATCH_OPEN;
	req.file_watch_open = &wo;
	int rc = watch_call(&req, timeout_ms, &resp);
	if (rc < 0) {
		free(w);
		return rc;
	}
	w->stream_id = resp->file_watch->stream_id;
	w->is_dir = resp->file_watch->type == PORTER__V1__FILE_TYPE__FILE_TYPE_DIRECTORY;
	porter__v1__response__free_unpacked(resp, NULL);
	if (!w->stream_id) {
		free(w);
		return pconn_set_error(PORTER_E_PROTOCOL, "file watch reply without a watch");
	}
	*out = w;
	return 0;
}

int porter_file_watch_is_dir(const porter_file_watch *w)
{
	return w && w->is_dir;
}

int porter_file_watch_read(porter_file_watch *w, uint64_t call_id, int timeout_ms,
			   porter_file_events **out)
{
	if (out)
		*out = NULL;
	if (!w || !out)
		return pconn_set_error(PORTER_E_INVAL, "watch or out is NULL");
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "negative timeout");
	porter_file_events *e = calloc(1, sizeof(*e));
	if (!e)
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	if (w->ended) {
		e->ended = 1;
		*out = e;
		return 0;
	}
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileWatchRead wr = PORTER__V1__FILE_WATCH_READ__INIT;
	wr.stream_id = w->stream_id;
	wr.ack = w->ack;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_WATCH_READ;
	req.file_watch_read = &wr;
	int t = timeout_ms ? timeout_ms : PCONN_DEFAULT_TIMEOUT_MS;
	req.timeout_ms = (uint32_t)t;
	int rc = watch_call(&req,
			    t < INT_MAX - WATCH_READ_GRACE_MS ? t + WATCH_READ_GRACE_MS : INT_MAX,
			    &e->resp);
	if (rc < 0) {
		free(e);
		return rc;
	}
	Porter__V1__FileWatchReply *r = e->resp->file_watch;
	/* Events already handed out (a reply the daemon sent again) are
	 * skipped, so each reaches the caller once. */
	while (e->first < r->n_events && r->events[e->first]->seq <= w->ack)
		e->first++;
	if (e->first < r->n_events)
		w->ack = r->events[r->n_events - 1]->seq;
	e->ended = w->ended = r->ended;
	*out = e;
	return 0;
}

size_t porter_file_events_count(const porter_file_events *e)
{
	return e && e->resp ? e->resp->file_watch->n_events - e->first : 0;
}

int porter_file_events_get(const porter_file_events *e, size_t i, int *kind, const char **name,
			   const char **new_name)
{
	if (kind)
		*kind = 0;
	if (name)
		*name = NULL;
	if (new_name)
		*new_name = NULL;
	if (!e || i >= porter_file_events_count(e))
		return pconn_set_error(PORTER_E_INVAL, "no event %zu in the batch", i);
	const Porter__V1__FileEvent *ev = e->resp->file_watch->events[e->first + i];
	if (kind)
		*kind = (int)ev->kind;
	if (name)
		*name = ev->name ? ev->name : "";
	if (new_name)
		*new_name = ev->new_name ? ev->new_name : "";
	return 0;
}

int porter_file_events_ended(const porter_file_events *e)
{
	return e && e->ended;
}

void porter_file_events_free(porter_file_events *e)
{
	if (!e)
		return;
	if (e->resp)
		porter__v1__response__free_unpacked(e->resp, NULL);
	free(e);
}

int porter_file_watch_close(porter_file_watch *w, int timeout_ms)
{
	if (!w)
		return 0;
	int rc = pfile_stream_end(w->ended ? 0 : w->stream_id, timeout_ms, 1, 0);
	free(w);
	return rc;
}

void porter_file_watch_free(porter_file_watch *w)
{
	if (!w)
		return;
	pfile_stream_end(w->ended ? 0 : w->stream_id, 0, 0, 0);
	free(w);
}
