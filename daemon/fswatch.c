/* fswatch - change events of files and directories; see fswatch.h. */
#include "fswatch.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>
#include <uv.h>

#include "fswatchseen.h"
#include "fswatchtmp.h"
#include "fwd.h"
#include "log.h"
#include "porter_errors.h"
#include "server.h"
#include "tmpname.h"
#include "worker.h"

/* What a watch asks inotify for. */
#define WATCH_MASK                                                                                 \
	(IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO |             \
	 IN_DELETE_SELF | IN_MOVE_SELF | IN_EXCL_UNLINK)
/* A parked read is answered this long before its deadline (at most a
 * third of its time), so the answer reaches a client still waiting on a
 * busy machine. */
#define READ_MARGIN_MS 1000
/* Reads of the inotify descriptor (64 KiB each) per wake-up of the loop. */
#define INOTIFY_SLICES 1
/* Events one reply carries at most (the rest go with the next read). */
#define REPLY_MAX_EVENTS 512
/* Renames of temp names held for their second half (fswatch_inst.held). */
#define FSWATCH_HELD_MAX 16

/* The inotify instances of all workers for single uids: bounded below
 * porterd's fs.inotify.max_user_instances (see inst_budget). */
static atomic_int uid_instances;

typedef struct fswatch_worker fswatch_worker;

/* One inotify instance of a worker and the watches on it: one per client
 * uid, so that one uid's flood that overflows the kernel's queue (an
 * IN_Q_OVERFLOW) costs only its own watches their events. Past the
 * budget, the uids that come later share the worker's overflow instance
 * (uid_shared): they keep working, only without that isolation. */
typedef struct fswatch_inst {
	list link; /* in fw->insts */
	fswatch_worker *fw;
	uid_t uid;
	int shared;     /* the worker's overflow instance, of any uid */
	int ifd;        /* inotify descriptor, closed with the poll handle */
	uv_poll_t poll; /* on ifd */
	int closing;
	list watches; /* fswatch.link */
	/* Temp names whose last event of porterd's this instance has seen
	 * (tmpname.h): later events of them are a client's. */
	fswatch_seen seen;
	/* Renames of porterd's temp names whose second half (the
	 * IN_MOVED_TO over an atomic write's target) was not in the buffer
	 * read: the kernel queues the two halves one after the other, and a
	 * read can fall between them. The second half comes with a later
	 * read and is then reported as the creation it is, not as a file
	 * moved in from outside; no read waits for it. Cookies are unique
	 * over the whole system, so an entry left by an overflowed queue
	 * matches nothing; the oldest is overwritten when all are taken. */
	struct {
		int wd;
		uint32_t cookie;
	} held[FSWATCH_HELD_MAX];
	unsigned next_held;
} fswatch_inst;

/* One worker's inotify instances and its parked reads. */
struct fswatch_worker {
	worker *w;
	uv_timer_t wake; /* answers parked reads near their deadlines */
	int handles;     /* open handles: the timer and every instance's poll */
	int closing;
	list insts;  /* fswatch_inst.link, not closing */
	list parked; /* fswatch.park_link: watches with a read waiting */
};

typedef struct fs_event {
	uint64_t seq;
	int kind; /* Porter__V1__FileEventKind */
	char *name, *new_name;
} fs_event;

struct fswatch {
	list link; /* in in->watches */
	list park_link;
	fswatch_worker *fw;
	fswatch_inst *in; /* the instance its wd belongs to */
	fs_stream *s;     /* the stream that owns it */
	int wd;           /* inotify watch descriptor, -1 once the kernel dropped it */
	fs_event *q;      /* events not yet acknowledged, oldest first */
	size_t n, cap, bytes;
	uint64_t next_seq;  /* of the next event */
	uint64_t sent;      /* highest seq a reply carried */
	int ended;          /* the watched object went: no more events */
	uint64_t since_ms;  /* tmpname_now_ms() when the watch began */
	req *parked;        /* a read waiting for events, or NULL */
	uint64_t answer_at; /* uv_now() ms at which the parked read is answered */
};

/* ---- the per-worker part ---- */

static void fw_handle_gone(fswatch_worker *fw)
{
	if (--fw->handles == 0)
		free(fw);
}

static void on_timer_closed(uv_handle_t *h)
{
	fw_handle_gone(h->data);
}

static void on_inst_closed(uv_handle_t *h)
{
	fswatch_inst *in = h->data;
	fswatch_worker *fw = in->fw;
	close(in->ifd);
	fswatch_seen_free(&in->seen);
	if (!in->shared)
		atomic_fetch_sub(&uid_instances, 1);
	free(in);
	fw_handle_gone(fw);
}

static void inst_close(fswatch_inst *in)
{
	if (in->closing)
		return;
	in->closing = 1;
	list_remove(&in->link);
	uv_close((uv_handle_t *)&in->poll, on_inst_closed);
}

static void on_inotify(uv_poll_t *p, int status, int events);
static void on_wake(uv_timer_t *t);

/* How many per-uid instances all workers may hold: porterd's
 * fs.inotify.max_user_instances (read once; 128 if unreadable), less one
 * overflow instance per worker and a few for whatever else of porterd's
 * uid uses inotify. */
static int inst_budget(const worker *w)
{
	static atomic_int max_instances;
	int max = atomic_load(&max_instances);
	if (max == 0) {
		max = 128;
		FILE *f = fopen("/proc/sys/fs/inotify/max_user_instances", "re");
		if (f) {
			if (fscanf(f, "%d", &max) != 1 || max < 1)
				max = 128;
			fclose(f);
		}
		atomic_store(&max_instances, max);
	}
	int reserve = (int)(w->srv ? w->srv->n_workers : 1) + 4;
	return max > reserve ? max - reserve : 0;
}

/* `w`'s part, made on first use. NULL when out of memory. */
static fswatch_worker *get_fw(worker *w, char *msg, size_t cap)
{
	if (w->fs_watch)
		return w->fs_watch;
	fswatch_worker *fw = calloc(1, sizeof(*fw));
	if (!fw) {
		snprintf(msg, cap, "out of memory");
		return NULL;
	}
	fw->w = w;
	list_init(&fw->insts);
	list_init(&fw->parked);
	uv_timer_init(&w->loop, &fw->wake);
	fw->wake.data = fw;
	fw->handles = 1;
	w->fs_watch = fw;
	return fw;
}

/* A new instance of `fw` for `uid` (or the shared one). NULL with errno. */
static fswatch_inst *inst_new(fswatch_worker *fw, uid_t uid, int shared)
{
	fswatch_inst *in = calloc(1, sizeof(*in));
	if (!in)
		return NULL;
	in->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (in->ifd < 0) {
		int e = errno;
		free(in);
		errno = e;
		return NULL;
	}
	in->fw = fw;
	in->uid = uid;
	in->shared = shared;
	list_init(&in->watches);
	uv_poll_init(&fw->w->loop, &in->poll, in->ifd);
	in->poll.data = in;
	fw->handles++;
	uv_poll_start(&in->poll, UV_READABLE, on_inotify);
	list_push_back(&fw->insts, &in->link);
	return in;
}

/* The instance `uid`'s next watch on `fw` goes on: its own (made on its
 * first watch), or the shared one once the budget is spent. NULL with the
 * reason in `msg` and the code in *rc. */
static fswatch_inst *get_inst(fswatch_worker *fw, uid_t uid, char *msg, size_t cap, int *rc)
{
	fswatch_inst *shared = NULL;
	list *pos;
	for (pos = fw->insts.next; pos != &fw->insts; pos = pos->next) {
		fswatch_inst *in = list_entry(pos, fswatch_inst, link);
		if (in->shared)
			shared = in;
		else if (in->uid == uid)
			return in;
	}
	if (atomic_fetch_add(&uid_instances, 1) < inst_budget(fw->w)) {
		fswatch_inst *in = inst_new(fw, uid, 0);
		if (in)
			return in;
		if (errno != EMFILE) {
			atomic_fetch_sub(&uid_instances, 1);
			goto fail;
		}
	}
	atomic_fetch_sub(&uid_instances, 1);
	if (shared)
		return shared;
	shared = inst_new(fw, (uid_t)-1, 1);
	if (shared)
		return shared;
fail:
	*rc = errno == EMFILE || errno == ENFILE ? PORTER_E_BUSY
	      : errno == ENOMEM                  ? PORTER_E_NOMEM
						 : PORTER_E_INTERNAL;
	snprintf(msg, cap, "cannot watch: inotify_init1: %s%s", strerror(errno),
		 errno == EMFILE ? " (porterd's uid holds as many inotify instances as "
				   "fs.inotify.max_user_instances allows)"
				 : "");
	return NULL;
}

void fswatch_worker_close(worker *w)
{
	fswatch_worker *fw = w->fs_watch;
	if (!fw)
		return;
	w->fs_watch = NULL;
	fw->closing = 1;
	/* Its watches are gone with their streams, and their instances with
	 * them; any left are closed here. */
	while (fw->insts.next != &fw->insts)
		inst_close(list_entry(fw->insts.next, fswatch_inst, link));
	uv_close((uv_handle_t *)&fw->wake, on_timer_closed);
}

/* ---- the queue ---- */

static void free_event(fs_event *e)
{
	free(e->name);
	free(e->new_name);
}

static int push(struct fswatch *x, int kind, const char *name, const char *new_name)
{
	size_t sz = strlen(name) + (new_name ? strlen(new_name) : 0) + 2 + sizeof(fs_event);
	int overflow = kind == PORTER__V1__FILE_EVENT_KIND__FILE_EVENT_OVERFLOW;
	if (x->n && kind == PORTER__V1__FILE_EVENT_KIND__FILE_EVENT_MODIFIED) {
		fs_event *last = &x->q[x->n - 1];
		if (last->seq > x->sent && last->kind == kind && strcmp(last->name, name) == 0)
			return 0; /* coalesced with an unsent one */
	}
	if (!overflow && (x->n >= FSWATCH_MAX_EVENTS || x->bytes + sz > FSWATCH_MAX_BYTES)) {
		/* Full: one OVERFLOW says events were lost (it may pass the
		 * bounds by one). */
		if (x->n && x->q[x->n - 1].kind == PORTER__V1__FILE_EVENT_KIND__FILE_EVENT_OVERFLOW)
			return 0;
		return push(x, PORTER__V1__FILE_EVENT_KIND__FILE_EVENT_OVERFLOW, "", NULL);
	}
	if (x->n == x->cap) {
		size_t nc = x->cap ? x->cap * 2 : 16;
		fs_event *nq = realloc(x->q, nc * sizeof(*nq));
		if (!nq)
			goto lost;
		x->q = nq;
		x->cap = nc;
	}
	fs_event *e = &x->q[x->n];
	e->name = strdup(name);
	e->new_name = new_name ? strdup(new_name) : NULL;
	if (!e->name || (new_name && !e->new_name)) {
		free_event(e);
		goto lost;
	}
	e->kind = kind;
	e->seq = ++x->next_seq;
	x->n++;
	x->bytes += sz;
	return 1;
lost:
	/* Out of memory: the client hears that it missed something. */
	if (!overflow && x->n && x->n < x->cap)
		return push(x, PORTER__V1__FILE_EVENT_KIND__FILE_EVENT_OVERFLOW, "", NULL);
	return 0;
}

/* Forgets events up to `ack`. */
static void drop_acked(struct fswatch *x, uint64_t ack)
{
	size_t k = 0;
	while (k < x->n && x->q[k].seq <= ack) {
		x->bytes -= strlen(x->q[k].name) +
			    (x->q[k].new_name ? strlen(x->q[k].new_name) : 0) + 2 +
			    sizeof(fs_event);
		free_event(&x->q[k]);
		k++;
	}
	if (k && k < x->n) /* never memmove(NULL, ...): q is NULL until a first event */
		memmove(x->q, x->q + k, (x->n - k) * sizeof(*x->q));
	x->n -= k;
}

/* ---- answering reads ---- */

static void unpark(struct fswatch *x)
{
	req *r = x->parked;
	x->parked = NULL;
	list_remove(&x->park_link);
	r->cancel = NULL;
	r->op = NULL;
}

/* Answers `r` with what `x` holds and lets go of the stream (dropped when
 * the watch ended, or its stream was doomed meanwhile). */
static void answer(struct fswatch *x, req *r)
{
	size_t n = x->n < REPLY_MAX_EVENTS ? x->n : REPLY_MAX_EVENTS;
	Porter__V1__FileEvent *evs = calloc(n ? n : 1, sizeof(*evs));
	Porter__V1__FileEvent **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	fs_stream *s = x->s;
	if (!evs || !ptrs) {
		free(evs);
		free(ptrs);
		req_fail(r, PORTER_E_NOMEM, "out of memory");
		fsstream_release(s, 0);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		porter__v1__file_event__init(&evs[i]);
		evs[i].seq = x->q[i].seq;
		evs[i].kind = x->q[i].kind;
		evs[i].name = x->q[i].name;
		evs[i].new_name = x->q[i].new_name ? x->q[i].new_name : "";
		ptrs[i] = &evs[i];
		x->sent = evs[i].seq;
	}
	Porter__V1__FileWatchReply wr = PORTER__V1__FILE_WATCH_REPLY__INIT;
	wr.stream_id = s->id;
	wr.n_events = n;
	wr.events = ptrs;
	int finished = x->ended && n == x->n;
	wr.ended = finished;
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_WATCH;
	resp.file_watch = &wr;
	resp.more = !finished;
	req_reply(r, &resp);
	free(evs);
	free(ptrs);
	/* An ended watch is gone with its last events. */
	fsstream_release(s, finished);
}

static void arm_wake(fswatch_worker *fw);

/* Milliseconds before `r`'s deadline at which it is answered anyway. */
static uint64_t answer_in(const req *r)
{
	uint64_t left = req_remaining_ms(r);
	uint64_t margin = left / 3 < READ_MARGIN_MS ? left / 3 : READ_MARGIN_MS;
	return left - margin;
}

static void on_wake(uv_timer_t *t)
{
	fswatch_worker *fw = t->data;
	uint64_t now = uv_now(t->loop);
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &fw->parked) {
		struct fswatch *x = list_entry(pos, struct fswatch, park_link);
		if (x->answer_at <= now) {
			req *r = x->parked;
			unpark(x);
			answer(x, r); /* no events: an empty batch */
		}
	}
	arm_wake(fw);
}

static void arm_wake(fswatch_worker *fw)
{
	uint64_t now = uv_now(fw->wake.loop);
	uint64_t next = UINT64_MAX;
	list *pos;
	for (pos = fw->parked.next; pos != &fw->parked; pos = pos->next) {
		struct fswatch *x = list_entry(pos, struct fswatch, park_link);
		uint64_t in = x->answer_at > now ? x->answer_at - now : 0;
		if (in < next)
			next = in;
	}
	if (next == UINT64_MAX)
		uv_timer_stop(&fw->wake);
	else if (!fw->closing)
		uv_timer_start(&fw->wake, on_wake, next, 0);
}

/* Cancel hook of a parked read (Cancel, client gone, shutdown). */
static void on_read_cancel(req *r)
{
	struct fswatch *x = r->op;
	unpark(x);
	arm_wake(x->fw);
	req_fail(r, PORTER_E_CANCELLED, "cancelled");
	fsstream_release(x->s, 0);
}

void fswatch_cancel_read(fs_stream *s, int code, const char *why)
{
	struct fswatch *x = s->watch;
	if (!x || !x->parked)
		return;
	req *r = x->parked;
	unpark(x);
	arm_wake(x->fw);
	req_fail(r, code, "%s", why);
	fsstream_release(s, 0);
}

void fswatch_handle_read(req *r)
{
	Porter__V1__FileWatchRead *m = r->msg->file_watch_read;
	if (r->batch) {
		req_fail(r, PORTER_E_INVAL, "a file watch cannot be read in a batch");
		return;
	}
	/* A watch lives on the worker whose connection opened it. */
	if (fwd_to_owner(r, m->stream_id))
		return;
	fs_stream *s = NULL;
	char why[160];
	int rc = fsstream_take(r->w, m->stream_id, r->uid, r->instance, FSSTREAM_WATCH, 0, &s, why,
			       sizeof(why));
	if (rc) {
		req_fail(r, rc, "file watch %llx: %s", (unsigned long long)m->stream_id, why);
		return;
	}
	struct fswatch *x = s->watch;
	if (!x) {
		fsstream_release(s, 1);
		req_fail(r, PORTER_E_INTERNAL, "file watch without its watch");
		return;
	}
	drop_acked(x, m->ack);
	if (x->n || x->ended || answer_in(r) == 0) {
		answer(x, r);
		return;
	}
	/* When to answer is fixed now: a margin recomputed at each wake-up
	 * from the time left shrinks with it, so the answer slid to the
	 * deadline itself, where the client has given up (and dropped its
	 * connection, and the watch with it). */
	x->answer_at = uv_now(x->fw->wake.loop) + answer_in(r);
	x->parked = r;
	r->op = x;
	r->cancel = on_read_cancel;
	list_push_back(&x->fw->parked, &x->park_link);
	arm_wake(x->fw);
}

/* ---- events ---- */

/* The name of `name` in watch `x`, relative to the root, into `out`. */
static const char *rel_name(const struct fswatch *x, const char *name, char *out, size_t cap)
{
	const char *rel = x->s->rel ? x->s->rel : "";
	if (!name || !name[0])
		return rel;
	snprintf(out, cap, "%s%s%s", rel, rel[0] ? "/" : "", name);
	return out;
}

/* The watch is over: the kernel dropped (or will drop) its descriptor. */
static void end_watch(struct fswatch *x)
{
	x->ended = 1;
	x->wd = -1;
}

/*
 * Whether the entry `name` of `x`'s directory is porterd's O_TMPFILE temp
 * file of an atomic write (fswork.c), which a watcher of the directory
 * must not see: the kernel names it '#' and its inode number while it has
 * no name of its own (its writes and mode change show as modifications of
 * that name). The name the temp file is then linked as before its rename
 * over the target (also the temp file made where there is no O_TMPFILE)
 * is judged by fswatch_seen_state: a name tmpname.h made in this run, which no
 * client can make, and porterd's only until it is done with it, so a
 * client's file can hide behind neither the form nor a name she saw.
 *
 * '#' and digits is also a name any client may give a file. An unnamed
 * file has no entry in the directory, and a named one just written is in
 * the kernel's lookup cache (its writer's open holds it): so a change of
 * '#N' is the unnamed file's unless the directory has an entry '#N'
 * (fswatchtmp.h). A client's '#N' renamed or deleted before porterd reads
 * the event loses that change (not its move or deletion), and so does one
 * whose directory the cache cannot find at the watched path (a directory
 * above renamed); before Linux 5.12 every '#N' loses its changes.
 */
static int temp_name(const struct fswatch *x, const char *name, uint32_t mask)
{
	return (mask & (IN_MODIFY | IN_ATTRIB)) && fswatchtmp_unnamed(x->s, name);
}

/* Delivers `ev` to `x`; `ours`: its name is porterd's temp file of a
 * named form (fswatch_seen_state), whose events are not reported. */
static void deliver(struct fswatch *x, const struct inotify_event *ev, const char *moved_to,
		    int ours)
{
	char a[PATH_MAX + NAME_MAX + 2], b[PATH_MAX + NAME_MAX + 2];
	const char *name = ev->len ? ev->name : NULL;
	if (x->ended)
		return;
	if (name && (ours || temp_name(x, name, ev->mask))) {
		/* An atomic write is one event: its rename over the target,
		 * reported as the creation of the file now at that name (the
		 * kernel does not say whether another was there: a replaced
		 * file is gone, a new one is in its place), whatever its
		 * name: porterd never renames a temp file to another temp
		 * name, and a target named like one (a client's, maybe a
		 * name porterd used before) is a file of hers. Its other
		 * steps, and a temp file renamed out of the directory, are
		 * not reported. */
		if ((ev->mask & IN_MOVED_FROM) && moved_to && moved_to[0])
			push(x, PORTER__V1__FILE_EVENT_KIND__FILE_EVENT_CREATED,
			     rel_name(x, moved_to, a, sizeof(a)), NULL);
		return;
	}
	if (ev->mask & IN_CREATE)
		push(x, PORTER__V1__FILE_EVENT_KIND__FILE_EVENT_CREATED,
		     rel_name(x, name, a, sizeof(a)), NULL);
	else if (ev->mask & IN_DELETE)
		push(x, PORTER__V1__FILE_EVENT_KIND__FILE_EVENT_DELETED,
		     rel_name(x, name, a, sizeof(a)), NULL);
	else if (ev->mask & (IN_MODIFY | IN_ATTRIB))
		push(x, PORTER__V1__FILE_EVENT_KIND__FILE_EVENT_MODIFIED,
		     rel_name(x, name, a, sizeof(a)), NULL);
	else if (ev->mask & IN_MOVED_FROM)
		push(x, PORTER__V1__FILE_EVENT_KIND__FILE_EVENT_MOVED,
		     rel_name(x, name, a, sizeof(a)),
		     moved_to ? rel_name(x, moved_to, b, sizeof(b)) : "");
	else if (ev->mask & IN_MOVED_TO)
		push(x, PORTER__V1__FILE_EVENT_KIND__FILE_EVENT_MOVED, "",
		     rel_name(x, name, a, sizeof(a)));
	else if (ev->mask & IN_DELETE_SELF) {
		push(x, PORTER__V1__FILE_EVENT_KIND__FILE_EVENT_DELETED,
		     rel_name(x, NULL, a, sizeof(a)), NULL);
		end_watch(x);
	} else if (ev->mask & IN_MOVE_SELF) {
		/* Where it went may be outside the root: not followed. */
		push(x, PORTER__V1__FILE_EVENT_KIND__FILE_EVENT_MOVED,
		     rel_name(x, NULL, a, sizeof(a)), "");
		end_watch(x);
	} else if (ev->mask & (IN_IGNORED | IN_UNMOUNT)) {
		end_watch(x);
	}
}

/* The IN_MOVED_TO of the same rename as `from` (same cookie and watch) in
 * the rest of the buffer, or NULL. */
static const struct inotify_event *find_moved_to(const struct inotify_event *from, const char *end)
{
	const char *p = (const char *)from + sizeof(*from) + from->len;
	while (p + sizeof(struct inotify_event) <= end) {
		const struct inotify_event *ev = (const void *)p;
		if ((ev->mask & IN_MOVED_TO) && ev->cookie == from->cookie && ev->wd == from->wd)
			return ev;
		p += sizeof(*ev) + ev->len;
	}
	return NULL;
}

/* Whether `ev`, an IN_ATTRIB of a watched object itself (no name), is its
 * link count dropping as it is deleted: the next event of the same watch
 * in the buffer is its IN_DELETE_SELF. `rm` of a watched file then reads
 * as what it is, "deleted", not "modified" and then "deleted". (A link
 * count that drops while another name or an open descriptor keeps the
 * file is still "modified": nothing is deleted then.) */
static int attrib_of_delete(const struct inotify_event *ev, const char *end)
{
	if (!(ev->mask & IN_ATTRIB) || ev->len)
		return 0;
	const char *p = (const char *)ev + sizeof(*ev) + ev->len;
	while (p + sizeof(struct inotify_event) <= end) {
		const struct inotify_event *next = (const void *)p;
		if (next->wd == ev->wd)
			return (next->mask & IN_DELETE_SELF) != 0;
		p += sizeof(*next) + next->len;
	}
	return 0;
}

/* Holds the first half `from` of a rename of porterd's temp name whose
 * second half is still in the kernel's queue. */
static void hold_first_half(fswatch_inst *in, const struct inotify_event *from)
{
	unsigned i = in->next_held++ % FSWATCH_HELD_MAX;
	in->held[i].wd = from->wd;
	in->held[i].cookie = from->cookie;
}

/* Whether `to`, an IN_MOVED_TO, is the second half of a held rename of a
 * temp name (the entry is then released). */
static int second_half_of_held(fswatch_inst *in, const struct inotify_event *to)
{
	if (!to->cookie)
		return 0;
	for (unsigned i = 0; i < FSWATCH_HELD_MAX; i++)
		if (in->held[i].cookie == to->cookie && in->held[i].wd == to->wd) {
			in->held[i].cookie = 0;
			return 1;
		}
	return 0;
}

/* Whether porterd gave the temp name of `nonce` in the directory `ev`'s
 * watch is of (or where is not known): a client who saw the name used in
 * another directory may name a file of hers that way here, where this
 * instance never sees porterd's use of it end. */
static int temp_here(const fswatch_inst *in, const struct inotify_event *ev, uint64_t nonce)
{
	const list *pos;
	for (pos = in->watches.next; pos != &in->watches; pos = pos->next) {
		const struct fswatch *x = list_entry(pos, struct fswatch, link);
		if (x->wd == ev->wd)
			return tmpname_in_dir(nonce, (uint64_t)x->s->watch_dev,
					      (uint64_t)x->s->watch_ino);
	}
	return 1;
}

static void on_inotify(uv_poll_t *p, int status, int events)
{
	(void)events;
	fswatch_inst *in = p->data;
	fswatch_worker *fw = in->fw;
	if (status < 0)
		return;
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	/* One buffer per wake-up, never "until EAGAIN": a uid that changes a
	 * directory it watches many times over (every watch of one object
	 * gets each event) made events faster than they were delivered, so
	 * the loop never got back to its other clients (another uid's pings
	 * timed out). The poll is level-triggered: what is left wakes it
	 * again after the loop's other events. */
	for (int slices = 0; slices < INOTIFY_SLICES; slices++) {
		fswatch_seen_before_read(&in->seen, in->ifd);
		ssize_t n = read(in->ifd, buf, sizeof(buf));
		if (n <= 0)
			break;
		char *end = buf + n;
		for (const char *q = buf; q + sizeof(struct inotify_event) <= end;) {
			const struct inotify_event *ev = (const void *)q;
			q += sizeof(*ev) + ev->len;
			list *pos, *tmp;
			if (ev->mask & IN_Q_OVERFLOW) {
				/* Only this instance's queue overflowed: its
				 * uid's watches (or the shared instance's). */
				list_for_each_safe(pos, tmp, &in->watches)
					push(list_entry(pos, struct fswatch, link),
					     PORTER__V1__FILE_EVENT_KIND__FILE_EVENT_OVERFLOW, "",
					     NULL);
				continue;
			}
			/* A pair of a rename was reported with its first half. */
			if ((ev->mask & IN_MOVED_TO) && ev->cookie && ev->len && ev->name[0] == 0)
				continue;
			if (attrib_of_delete(ev, end))
				continue;
			const struct inotify_event *to = NULL;
			uint64_t now = tmpname_now_ms(), nonce = 0, retired = 0;
			fswatch_seen_at(&in->seen,
					in->seen.offset + (uint64_t)((const char *)ev - buf));
			enum tmpname_state st = ev->len ? fswatch_seen_state(&in->seen, ev->name,
									     now, &nonce, &retired)
							: TMPNAME_FOREIGN;
			if (st != TMPNAME_FOREIGN && !temp_here(in, ev, nonce))
				st = TMPNAME_FOREIGN;
			if (ev->mask & IN_MOVED_FROM)
				to = find_moved_to(ev, end);
			/* Live, or retired by now (porterd retires the name as
			 * soon as its rename returns) and still porterd's for
			 * this instance. */
			if (!to && (ev->mask & IN_MOVED_FROM) && st != TMPNAME_FOREIGN)
				hold_first_half(in, ev);
			if ((ev->mask & IN_MOVED_TO) && ev->len && second_half_of_held(in, ev)) {
				/* An atomic write whose rename was read in two
				 * halves: its creation, as deliver() reports it
				 * when both are read together. */
				char a[PATH_MAX + NAME_MAX + 2];
				list_for_each_safe(pos, tmp, &in->watches) {
					struct fswatch *x = list_entry(pos, struct fswatch, link);
					if (x->wd == ev->wd && !x->ended)
						push(x,
						     PORTER__V1__FILE_EVENT_KIND__FILE_EVENT_CREATED,
						     rel_name(x, ev->name, a, sizeof(a)), NULL);
				}
				continue;
			}
			list_for_each_safe(pos, tmp, &in->watches) {
				struct fswatch *x = list_entry(pos, struct fswatch, link);
				if (x->wd == ev->wd)
					deliver(x, ev, to ? to->name : NULL,
						st == TMPNAME_LIVE || (st == TMPNAME_RETIRED &&
								       x->since_ms <= retired));
			}
			if (st != TMPNAME_FOREIGN && (ev->mask & (IN_MOVED_FROM | IN_DELETE)))
				fswatch_seen_ended(&in->seen, nonce, now);
			if (to)
				/* Its second half is taken: blank its name
				 * so the loop above skips it. */
				((struct inotify_event *)to)->name[0] = 0;
			if (ev->mask & IN_MOVE_SELF)
				inotify_rm_watch(in->ifd, ev->wd);
		}
		in->seen.offset += (uint64_t)n;
		fswatch_seen_at(&in->seen, in->seen.offset);
	}
	/* Parked reads that have events are answered now. */
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &fw->parked) {
		struct fswatch *x = list_entry(pos, struct fswatch, park_link);
		if (x->n || x->ended) {
			req *r = x->parked;
			unpark(x);
			answer(x, r);
		}
	}
	arm_wake(fw);
}

/* ---- start and stop ---- */

int fswatch_start(worker *w, fs_stream *s, char *msg, size_t cap)
{
	int rc = 0;
	struct fswatch *x = NULL;
	fswatch_inst *in = NULL;
	fswatch_worker *fw = get_fw(w, msg, cap);
	if (!fw) {
		rc = PORTER_E_NOMEM;
		goto out;
	}
	in = get_inst(fw, s->uid, msg, cap, &rc);
	if (!in)
		goto out;
	x = calloc(1, sizeof(*x));
	if (!x) {
		snprintf(msg, cap, "out of memory");
		rc = PORTER_E_NOMEM;
		goto out;
	}
	/* The object the confined open found, not whatever is at its path
	 * now. */
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", s->fd);
	x->since_ms = tmpname_now_ms(); /* before the kernel watches: deliver() */
	x->wd = inotify_add_watch(in->ifd, path, WATCH_MASK | (s->watch_dir ? IN_ONLYDIR : 0));
	if (x->wd < 0) {
		int e = errno;
		rc = e == ENOSPC ? PORTER_E_BUSY : PORTER_E_INTERNAL;
		snprintf(msg, cap, "cannot watch %s: %s", s->where ? s->where : "the path",
			 e == ENOSPC ? "porterd's uid holds as many inotify watches as the system "
				       "allows (fs.inotify.max_user_watches)"
				     : strerror(e));
		goto out;
	}
	x->fw = fw;
	x->in = in;
	x->s = s;
	list_push_back(&in->watches, &x->link);
	s->watch = x;
	x = NULL;
out:
	free(x);
	if (in && list_empty(&in->watches))
		inst_close(in); /* made for this watch, which failed */
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	return rc;
}

void fswatch_stop(struct fswatch *x)
{
	if (!x)
		return;
	fswatch_worker *fw = x->fw;
	fswatch_inst *in = x->in;
	if (x->parked) {
		/* Only when its stream goes while a read waits (shutdown). */
		req *r = x->parked;
		unpark(x);
		req_fail(r, PORTER_E_SHUTDOWN, "file watch dropped");
	}
	list_remove(&x->link);
	if (x->wd >= 0) {
		/* Watches of the same object share its descriptor. */
		int shared = 0;
		list *pos;
		for (pos = in->watches.next; pos != &in->watches && !shared; pos = pos->next)
			shared = list_entry(pos, struct fswatch, link)->wd == x->wd;
		if (!shared)
			inotify_rm_watch(in->ifd, x->wd);
	}
	/* An instance goes with its last watch: it counts against porterd's
	 * fs.inotify.max_user_instances. */
	if (list_empty(&in->watches))
		inst_close(in);
	for (size_t i = 0; i < x->n; i++)
		free_event(&x->q[i]);
	free(x->q);
	free(x);
	arm_wake(fw);
}
