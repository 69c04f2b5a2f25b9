/* fsstream - the per-worker tables of open file streams; see fsstream.h. */
#include "fsstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include "clients.h"
#include "fsclose.h"
#include "fsfds.h"
#include "fswatch.h"
#include "fwd.h"
#include "log.h"
#include "porter_errors.h"
#include "tmpname.h"
#include "worker.h"

/* How often idle streams are looked for at most. */
#define SWEEP_MS 1000
/* A reclaimed stream's tombstone is kept this long (or six idle times, if
 * longer) for its owner's next request, then forgotten. */
#define TOMBSTONE_MS 60000

struct fsstream_table {
	struct worker *w;
	htab by_id;       /* fs_stream.node */
	list all;         /* fs_stream.link, streams and tombstones */
	size_t n_live;    /* streams that are not tombstones */
	uv_timer_t sweep; /* idle reclaim, tombstone expiry */
	int timer_open;   /* until the timer's close callback */
	int closing;      /* the worker is closing */
};

static uint64_t id_hash(uint64_t id)
{
	return htab_mix(id);
}

/* Stream `id` of table `t` (NULL: none), tombstones included; NULL when
 * unknown. */
static fs_stream *find(fsstream_table *t, uint64_t id)
{
	if (!t)
		return NULL;
	for (htab_node *n = htab_first(&t->by_id, id_hash(id)); n; n = htab_next(n)) {
		fs_stream *c = list_entry(n, fs_stream, node);
		if (c->id == id)
			return c;
	}
	return NULL;
}

static void maybe_free_table(fsstream_table *t)
{
	if (t->closing && !t->timer_open && list_empty(&t->all)) {
		htab_free(&t->by_id);
		free(t);
	}
}

static void on_timer_closed(uv_handle_t *h)
{
	fsstream_table *t = h->data;
	t->timer_open = 0;
	maybe_free_table(t);
}

fs_stream *fsstream_new(uid_t uid, uint64_t instance, unsigned owner, uint64_t conn_serial,
			enum fsstream_kind kind)
{
	fs_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (fwd_new_id(owner, &s->id) < 0) {
		free(s);
		return NULL;
	}
	s->uid = uid;
	s->instance = instance;
	s->worker = owner;
	s->conn_serial = conn_serial;
	s->kind = kind;
	s->writing = kind == FSSTREAM_WRITE;
	s->fd = -1;
	s->dirfd = -1;
	return s;
}

/* Lets go of what the stream holds (descriptors, temp file, quota
 * slot), keeping the struct. `w`: the loop thread of that worker runs
 * this, and a file that may be on FUSE is closed on the pool instead
 * (fsclose.h); NULL: a pool thread (or no worker known), closed here. */
static void release_resources(fs_stream *s, worker *w)
{
	if (s->watch) {
		fswatch_stop(s->watch);
		s->watch = NULL;
	}
	if (s->fd_out) {
		/* The client still holds the temp file's descriptor: from now
		 * on it counts as any passed one, on the connection that got
		 * it (nothing when that connection has closed). */
		s->fd_out = 0;
		s->fd_adopted = fsfds_adopt(s->fd_w, s->conn_serial);
	}
	if (w && s->close_on_pool) {
		fsclose_queue(&w->loop, s->fd, s->dirfd, s->tmpname);
		s->fd = s->dirfd = -1;
		s->tmpname[0] = 0;
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	if (s->tmpname[0] && s->dirfd >= 0)
		unlinkat(s->dirfd, s->tmpname, 0);
	tmpname_retire(s->tmpname);
	s->tmpname[0] = 0;
	if (s->dirfd >= 0)
		close(s->dirfd);
	s->dirfd = -1;
	if (s->acct) {
		clients_put(s->acct, CLIENTS_FILE_STREAMS, 1);
		clients_put(s->acct, CLIENTS_STREAMS, 1);
		clients_acct_unref(s->acct);
		s->acct = NULL;
	}
}

static void destroy(fs_stream *s, worker *w)
{
	if (!s)
		return;
	release_resources(s, w);
	free(s->base);
	free(s->where);
	free(s->rel);
	free(s);
}

void fsstream_destroy(fs_stream *s)
{
	destroy(s, NULL);
}

void fsstream_destroy_on(worker *w, fs_stream *s)
{
	destroy(s, w);
}

/* Takes `s` out of its table (not freed). */
static void unlink_stream(fs_stream *s)
{
	fsstream_table *t = s->tab;
	htab_remove(&t->by_id, &s->node);
	list_remove(&s->link);
	if (!s->reclaimed)
		t->n_live--;
	s->tab = NULL;
}

/* Removes and frees `s`; frees the table too when it was its last. */
static void drop(fs_stream *s)
{
	fsstream_table *t = s->tab;
	unlink_stream(s);
	destroy(s, t->w);
	maybe_free_table(t);
}

static uint32_t idle_ms(const fsstream_table *t)
{
	return t->w->cfg->file_stream_idle_ms;
}

/*
 * Reclaims `s`, which nobody used for `idle` ms: its descriptors
 * and quota slot go now; a tombstone stays for the owner's next request.
 */
static void reclaim(fs_stream *s, uint64_t now, uint32_t idle)
{
	log_info("file stream of uid %u not used for %u ms, reclaimed (file-stream-idle)",
		 (unsigned)s->uid, idle);
	release_resources(s, s->tab->w);
	s->reclaimed = 1;
	s->used_ms = now;
	s->tab->n_live--;
}

static void on_sweep(uv_timer_t *timer)
{
	fsstream_table *t = timer->data;
	uint64_t now = uv_now(&t->w->loop);
	uint32_t idle = idle_ms(t);
	uint64_t tomb = (uint64_t)idle * 6 > TOMBSTONE_MS ? (uint64_t)idle * 6 : TOMBSTONE_MS;
	uint64_t next = UINT64_MAX;
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &t->all) {
		fs_stream *s = list_entry(pos, fs_stream, link);
		uint64_t age = now - s->used_ms;
		uint64_t due;
		if (s->reclaimed) {
			if (age >= tomb) {
				drop(s);
				continue;
			}
			due = tomb - age;
		} else if (s->busy) {
			due = idle; /* looked at again after its request */
		} else if (age >= idle) {
			reclaim(s, now, idle);
			due = tomb;
		} else {
			due = idle - age;
		}
		if (due < next)
			next = due;
	}
	if (next != UINT64_MAX)
		uv_timer_start(&t->sweep, on_sweep, next < SWEEP_MS ? SWEEP_MS : next, 0);
}

/* Makes the sweep run within `ms` unless it already would. */
static void arm_sweep(fsstream_table *t, uint64_t ms)
{
	if (t->closing)
		return;
	if (ms < SWEEP_MS)
		ms = SWEEP_MS;
	if (!uv_is_active((uv_handle_t *)&t->sweep) || uv_timer_get_due_in(&t->sweep) > ms)
		uv_timer_start(&t->sweep, on_sweep, ms, 0);
}

int fsstream_worker_init(worker *w)
{
	fsstream_table *t = calloc(1, sizeof(*t));
	if (!t)
		return PORTER_E_NOMEM;
	t->w = w;
	list_init(&t->all);
	uv_timer_init(&w->loop, &t->sweep);
	t->sweep.data = t;
	t->timer_open = 1;
	/* The sweep alone never keeps a loop alive. */
	uv_unref((uv_handle_t *)&t->sweep);
	w->fs_streams = t;
	return 0;
}

void fsstream_worker_close(worker *w)
{
	fsstream_table *t = w->fs_streams;
	if (!t)
		return;
	w->fs_streams = NULL;
	t->closing = 1;
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &t->all) {
		fs_stream *s = list_entry(pos, fs_stream, link);
		if (s->busy) {
			s->doomed = 1;
			/* A read waiting for events is answered (and the
			 * watch dropped) now. */
			fswatch_cancel_read(s, PORTER_E_SHUTDOWN, "daemon shutting down");
		} else {
			unlink_stream(s);
			destroy(s, w);
		}
	}
	uv_close((uv_handle_t *)&t->sweep, on_timer_closed);
}

int fsstream_publish(worker *w, fs_stream *s, char *msg, size_t cap)
{
	fsstream_table *t = w->fs_streams;
	const config *cfg = w->cfg;
	int rc = 0;
	if (!t) {
		snprintf(msg, cap, "daemon shutting down");
		rc = PORTER_E_SHUTDOWN;
		goto out;
	}
	/* Each stream holds a descriptor: neither a connection
	 * nor a uid may pile them up. */
	uint32_t n = 0;
	list *pos;
	for (pos = t->all.next; pos != &t->all; pos = pos->next) {
		fs_stream *o = list_entry(pos, fs_stream, link);
		n += !o->reclaimed && o->conn_serial == s->conn_serial;
	}
	if (n >= cfg->file_max_streams) {
		snprintf(
			msg, cap,
			"%u file streams already open on this connection (file-max-streams): read them to the end or close them",
			n);
		rc = PORTER_E_BUSY;
		goto out;
	}
	s->acct = clients_acct_ref(s->uid);
	if (!s->acct) {
		snprintf(msg, cap, "out of memory");
		rc = PORTER_E_NOMEM;
		goto out;
	}
	if (!clients_take(s->acct, CLIENTS_FILE_STREAMS, 1, cfg->file_max_streams_per_uid)) {
		clients_acct_unref(s->acct);
		s->acct = NULL;
		snprintf(
			msg, cap,
			"uid %u holds %u file streams, its limit (file-max-streams-per-uid): read them to the end or close them",
			(unsigned)s->uid, cfg->file_max_streams_per_uid);
		rc = PORTER_E_BUSY;
		goto out;
	}
	/* Shown per uid with its cursors and HTTP streams. */
	clients_take(s->acct, CLIENTS_STREAMS, 1, 0);
	if (htab_insert(&t->by_id, &s->node, id_hash(s->id)) < 0) {
		snprintf(msg, cap, "out of memory");
		rc = PORTER_E_NOMEM;
		goto out;
	}
	s->tab = t;
	list_push_back(&t->all, &s->link);
	t->n_live++;
	s->busy = 1;
	s->used_ms = uv_now(&w->loop);
	arm_sweep(t, idle_ms(t));
out:
	if (rc)
		destroy(s, w);
	return rc;
}

int fsstream_take(worker *w, uint64_t id, uid_t uid, uint64_t instance, enum fsstream_kind kind,
		  int any_kind, fs_stream **out, char *msg, size_t cap)
{
	fsstream_table *t = w->fs_streams;
	fs_stream *s = find(t, id);
	/* Not yours: indistinguishable from unknown. */
	if (!s || s->uid != uid || s->instance != instance || s->doomed) {
		snprintf(msg, cap, "no such file stream (ended, closed, or its connection closed)");
		return PORTER_E_NOT_FOUND;
	}
	if (s->reclaimed) {
		snprintf(msg, cap,
			 "file stream reclaimed: it was not used for %u ms (file-stream-idle)",
			 idle_ms(t));
		drop(s);
		return PORTER_E_TIMEOUT;
	}
	if (!any_kind && s->kind != kind) {
		snprintf(msg, cap, "wrong kind of stream");
		return PORTER_E_INVAL;
	}
	if (s->busy && any_kind)
		/* A close ends a read waiting for events. */
		fswatch_cancel_read(s, PORTER_E_CANCELLED, "watch closed");
	if (s->busy) {
		snprintf(msg, cap, "another request is using this file stream");
		return PORTER_E_BUSY;
	}
	s->busy = 1;
	s->used_ms = uv_now(&w->loop);
	*out = s;
	return 0;
}

void fsstream_fd_closed(worker *w, uint64_t id, uid_t uid, uint64_t instance)
{
	fs_stream *s = find(w->fs_streams, id);
	if (!s || s->uid != uid || s->instance != instance)
		return;
	s->fd_out = 0;
	if (s->fd_adopted)
		fsfds_put(w, s->conn_serial, 1);
	s->fd_adopted = 0;
}

void fsstream_touch(fs_stream *s)
{
	if (s->tab)
		s->used_ms = uv_now(&s->tab->w->loop);
}

void fsstream_release(fs_stream *s, int drop_it)
{
	s->busy = 0;
	if (!s->tab) {
		fsstream_destroy(s);
		return;
	}
	s->used_ms = uv_now(&s->tab->w->loop);
	if (drop_it || s->doomed)
		drop(s);
}

void fsstream_conn_closed(worker *w, uint64_t conn_serial)
{
	fsstream_table *t = w->fs_streams;
	if (!t)
		return;
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &t->all) {
		fs_stream *s = list_entry(pos, fs_stream, link);
		if (s->conn_serial != conn_serial)
			continue;
		if (s->busy) {
			s->doomed = 1;
			fswatch_cancel_read(s, PORTER_E_CANCELLED,
					    "the connection that opened the watch closed");
		} else {
			log_debug("dropping file stream %llx: its connection closed",
				  (unsigned long long)s->id);
			drop(s);
		}
	}
}

size_t fsstream_count(const worker *w)
{
	return w->fs_streams ? w->fs_streams->n_live : 0;
}
