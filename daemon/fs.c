/* fs - file requests: dispatch, deadlines, replies; see fs.h. */
#include "fs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "fsconfine.h"
#include "fslist.h"
#include "fsfast.h"
#include "fsclose.h"
#include "fsfds.h"
#include "fsroot.h"
#include "fsstream.h"
#include "fswatch.h"
#include "fswork.h"
#include "fwd.h"
#include "log.h"
#include "porter_errors.h"
#include "worker.h"

/* --------------------------------------------------------- loop side */

static void job_closed(uv_handle_t *h)
{
	fs_job *j = h->data;
	/* porterd's copy of a passed descriptor: on FUSE its close waits on
	 * the file system's daemon (fsclose.h). */
	if (j->pass_fd >= 0 && j->root && j->root->cross_mounts)
		fsclose_queue(h->loop, j->pass_fd, -1, "");
	else if (j->pass_fd >= 0)
		close(j->pass_fd);
	fswork_unhold(j);
	free(j->data);
	fslist_free(j->list);
	free(j);
}

/* Ends the job: its memory goes when the timer's close callback runs. */
static void job_free(fs_job *j)
{
	/* A descriptor reserved and not passed is not the client's. */
	if (j->fd_slot)
		fsfds_put(j->fd_w, j->conn_serial, 1);
	j->fd_slot = 0;
	uv_timer_stop(&j->timer);
	uv_close((uv_handle_t *)&j->timer, job_closed);
}

/* The deadline passed. A job still waiting for a pool thread is taken out
 * of the queue and answered now; a running one notices the deadline at its
 * next check. */
static void on_deadline(uv_timer_t *t)
{
	fs_job *j = t->data;
	uv_cancel((uv_req_t *)&j->work);
}

static void job_cancel(req *r)
{
	fs_job *j = r->op;
	/* The job cannot be interrupted: it stops at its next check and its
	 * result is replaced by the stop code (or discarded). */
	atomic_store(&j->stop, 1);
	/* Still queued behind other jobs: it then never runs at all. */
	uv_cancel((uv_req_t *)&j->work);
}

/* Releases the stream the job held, dropping it when it is finished or
 * was doomed meanwhile. Loop thread. */
static void release_stream(fs_job *j)
{
	if (!j->st)
		return;
	fsstream_release(j->st, j->drop_stream);
	j->st = NULL;
}

/* Publishes a stream created by the job, unless the request was stopped
 * or its connection is gone meanwhile (nobody could pull it). Returns its
 * id, or 0. */
static uint64_t publish_stream(fs_job *j)
{
	fs_stream *s = j->new_stream;
	j->new_stream = NULL;
	if (!s)
		return 0;
	/* A batch member answers with one chunk: nobody would pull the rest
	 * of a stream opened inside a batch. */
	if (!j->r->c || j->r->stop_code || j->r->batch || atomic_load(&j->stop)) {
		fsstream_destroy_on(j->r->w, s);
		return 0;
	}
	uint64_t id = s->id;
	int rc = fsstream_publish(j->r->w, s, j->msg, sizeof(j->msg));
	if (rc < 0) {
		j->code = rc;
		j->err = 0;
		return 0;
	}
	/* Held by this job until release_stream, like a taken one. */
	j->st = s;
	j->drop_stream = 0;
	return id;
}

/*
 * A client given a descriptor to read this many bytes per microsecond of
 * porterd's busy-poll spin, or more, copies them for longer than the spin
 * lasts (16 KiB a microsecond is some 16 GB/s, about what one core copies
 * from the page cache here): the spin after such a reply cannot catch its
 * next request, and on a machine of two CPUs it takes the other one from
 * the copy. So porterd does not spin after it (worker_no_spin).
 */
#define NO_SPIN_BYTES_PER_US 16384u

/* Whether the read `j` answers by descriptor is large enough that
 * spinning after it only competes with the client (NO_SPIN_BYTES_PER_US). */
static int long_client_read(const fs_job *j, uint32_t busy_poll_us)
{
	const Porter__V1__FileRead *m = j->r->msg->file_read;
	uint64_t want = j->file_size > m->offset ? j->file_size - m->offset : 0;
	if (m->length && m->length < want)
		want = m->length;
	return busy_poll_us && want >= (uint64_t)busy_poll_us * NO_SPIN_BYTES_PER_US;
}

/*
 * Files by descriptor: answers with the job's open file instead of bytes.
 * `sid` is the stream an atomic write keeps its temp file in (0: none).
 * Returns 1 when the request is finished (answered, or its connection
 * broke), 0 when the descriptor could not go now: the request is then
 * still to answer, and j->code says why (the client asks again for bytes).
 */
static int reply_with_fd(fs_job *j, uint64_t sid)
{
	req *r = j->r;
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__FileReadReply rr = PORTER__V1__FILE_READ_REPLY__INIT;
	Porter__V1__FileWriteReply wr = PORTER__V1__FILE_WRITE_REPLY__INIT;
	if (j->kind == JOB_READ) {
		rr.file_size = j->file_size;
		rr.fd_passed = 1;
		rr.chunk_size = j->chunk;
		resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_READ;
		resp.file_read = &rr;
	} else {
		wr.stream_id = sid;
		wr.fd_passed = 1;
		wr.idle_ms = sid ? r->w->cfg->file_stream_idle_ms : 0;
		resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_WRITE;
		resp.file_write = &wr;
	}
	worker *w = r->w; /* r is gone after the reply */
	int quiet = j->kind == JOB_READ && long_client_read(j, w->cfg->busy_poll_us);
	int rc = req_reply_fd(r, &resp, j->pass_fd);
	if (rc == 0)
		j->fd_slot = 0; /* the client's now: counted until it reports it closed */
	if (rc == 0 && quiet)
		worker_no_spin(w);
	if (rc != 0 && sid) {
		/* Nobody holds the temp file's descriptor: drop its stream now
		 * rather than at the connection's close. */
		fs_stream *st = NULL;
		char why[128];
		if (fsstream_take(w, sid, j->uid, j->instance, FSSTREAM_WRITE, 0, &st, why,
				  sizeof(why)) == 0) {
			st->fd_out = 0; /* it never went */
			fsstream_release(st, 1);
		}
	}
	if (rc == PORTER_E_BUSY) {
		j->code = PORTER_E_BUSY;
		snprintf(j->msg, sizeof(j->msg),
			 "cannot pass the open file now (replies are queued ahead of it); "
			 "ask for its bytes");
		return 0;
	}
	job_free(j);
	return 1;
}

static void job_done(uv_work_t *w, int status)
{
	fs_job *j = w->data;
	req *r = j->r;
	/* The chunk is the loop's now: counted as a reply from here (or
	 * freed with the job). */
	fswork_unhold(j);
	if (status == UV_ECANCELED) {
		/* Cancelled before it started: nothing was done. */
		fswork_stopped(j, atomic_load(&j->stop) ? PORTER_E_CANCELLED : PORTER_E_TIMEOUT,
			       "before a pool thread was free");
	}
	r->cancel = NULL;
	r->op = NULL;
	/* An atomic write by descriptor: the stream's slot will stand for
	 * its temp file's descriptor too (one file, counted once), so the
	 * one reserved for the descriptor goes back before the stream takes
	 * its own. */
	int fd_in_stream = j->fd_slot && j->pass_fd >= 0 && j->new_stream && !j->code;
	if (fd_in_stream) {
		fsfds_put(j->fd_w, j->conn_serial, 1);
		j->fd_slot = 0;
	}
	uint64_t sid = publish_stream(j);
	if (sid && fd_in_stream) {
		j->st->fd_out = 1; /* cleared by reply_with_fd if it does not go */
		j->st->fd_w = r->w;
	}
	if (sid && j->kind == JOB_WATCH_OPEN) {
		int rc = fswatch_start(r->w, j->st, j->msg, sizeof(j->msg));
		if (rc) {
			j->code = rc;
			j->drop_stream = 1;
		}
	}
	release_stream(j);
	if (!j->code && j->pass_fd >= 0 && reply_with_fd(j, sid))
		return;
	/* No descriptor goes with this reply: the slot reserved for one is
	 * given back before the client can see the reply (and count). */
	if (j->fd_slot) {
		fsfds_put(j->fd_w, j->conn_serial, 1);
		j->fd_slot = 0;
	}

	if (j->code) {
		Porter__V1__ErrorDetail ed = PORTER__V1__ERROR_DETAIL__INIT;
		ed.sys_errno = j->err;
		req_fail_detail(r, j->code, j->err ? &ed : NULL, "%s", j->msg);
		job_free(j);
		return;
	}

	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__FileReadReply rr = PORTER__V1__FILE_READ_REPLY__INIT;
	Porter__V1__FileWriteReply wr = PORTER__V1__FILE_WRITE_REPLY__INIT;
	Porter__V1__FileDeleteReply dr = PORTER__V1__FILE_DELETE_REPLY__INIT;
	Porter__V1__FileStatReply sr = PORTER__V1__FILE_STAT_REPLY__INIT;
	Porter__V1__FileStreamCloseReply cr = PORTER__V1__FILE_STREAM_CLOSE_REPLY__INIT;
	Porter__V1__FileMkdirReply mr = PORTER__V1__FILE_MKDIR_REPLY__INIT;
	Porter__V1__FileRenameReply rnr = PORTER__V1__FILE_RENAME_REPLY__INIT;
	Porter__V1__FileCopyReply cpr = PORTER__V1__FILE_COPY_REPLY__INIT;
	Porter__V1__FileWatchReply fwr = PORTER__V1__FILE_WATCH_REPLY__INIT;

	switch (j->kind) {
	case JOB_READ:
	case JOB_READ_NEXT:
		rr.data.data = j->data;
		rr.data.len = j->len;
		rr.offset = j->offset;
		rr.file_size = j->file_size;
		rr.stream_id = j->kind == JOB_READ ? sid : j->stream_id;
		resp.more = rr.stream_id != 0;
		resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_READ;
		resp.file_read = &rr;
		break;
	case JOB_WRITE:
	case JOB_WRITE_OPEN:
	case JOB_WRITE_CHUNK:
	case JOB_WRITE_COMMIT:
		wr.stream_id = sid;
		wr.written = j->written;
		wr.total = j->total;
		resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_WRITE;
		resp.file_write = &wr;
		break;
	case JOB_DELETE:
		resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_DELETE;
		resp.file_delete = &dr;
		break;
	case JOB_STAT:
		sr.type = fswork_file_type(j->sb.st_mode);
		sr.size = (uint64_t)j->sb.st_size;
		sr.mode = j->sb.st_mode & 07777;
		sr.mtime_ns = (int64_t)j->sb.st_mtim.tv_sec * 1000000000 + j->sb.st_mtim.tv_nsec;
		sr.uid = j->sb.st_uid;
		sr.gid = j->sb.st_gid;
		sr.nlink = j->sb.st_nlink;
		resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_STAT;
		resp.file_stat = &sr;
		break;
	case JOB_LIST:
		/* Its entries go out as they were packed on the pool. */
		req_reply_list(r, j->list, j->list_len, fslist_free);
		j->list = NULL;
		job_free(j);
		return;
	case JOB_STREAM_CLOSE:
		cr.found = j->found;
		resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_STREAM_CLOSE;
		resp.file_stream_close = &cr;
		break;
	case JOB_MKDIR:
		mr.created = j->found;
		resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_MKDIR;
		resp.file_mkdir = &mr;
		break;
	case JOB_RENAME:
		resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_RENAME;
		resp.file_rename = &rnr;
		break;
	case JOB_WATCH_OPEN:
		fwr.stream_id = sid;
		fwr.type = j->found ? PORTER__V1__FILE_TYPE__FILE_TYPE_DIRECTORY
				    : PORTER__V1__FILE_TYPE__FILE_TYPE_REGULAR;
		resp.more = 1;
		resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_WATCH;
		resp.file_watch = &fwr;
		break;
	case JOB_COPY:
		cpr.size = j->total;
		resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_COPY;
		resp.file_copy = &cpr;
		break;
	}
	/* A read's chunk goes to the connection where it was read into,
	 * not copied into a reply buffer on the loop. */
	req_reply_take(r, &resp, j->data);
	j->data = NULL;
	job_free(j);
}

/* Takes stream `id` for the job, checking its owner and kind. Returns 0 or
 * a code, with the reason in j->msg (the stream is then untouched). */
static int take_stream(fs_job *j, uint64_t id, int writing, int any_kind)
{
	return fsstream_take(j->r->w, id, j->uid, j->instance,
			     writing ? FSSTREAM_WRITE : FSSTREAM_READ, any_kind, &j->st, j->msg,
			     sizeof(j->msg));
}

void fs_handle(req *r)
{
	Porter__V1__Request *m = r->msg;
	if (m->body_case == PORTER__V1__REQUEST__BODY_FILE_WATCH_READ) {
		/* No system call to make: the loop answers it. */
		fswatch_handle_read(r);
		return;
	}
	fs_job *j = calloc(1, sizeof(*j));
	if (!j) {
		req_fail(r, PORTER_E_NOMEM, "out of memory");
		return;
	}
	j->r = r;
	j->work.data = j;
	j->uid = r->uid;
	j->instance = r->instance;
	j->rootfd = -1;
	j->worker = r->w->index;
	/* A forwarded request has no connection: it never opens a stream. */
	j->conn_serial = r->c ? r->c->serial : 0;
	j->pass_fd = -1;
	/* A batch member's chunk is counted without a limit: the batch
	 * refuses itself, naming the quota, once the results it keeps pass
	 * it (batch.h), and stops its other members. */
	j->held_max = r->batch ? 0 : r->w->cfg->uid_max_buffered;
	j->deadline_ns = uv_hrtime() + req_remaining_ms(r) * 1000000ull;

	const char *root = NULL;
	uint64_t sid = 0;
	uint32_t closed = 0;
	int rc = 0, cont = 0;
	switch (m->body_case) {
	case PORTER__V1__REQUEST__BODY_FILE_READ:
		j->kind = JOB_READ;
		root = m->file_read->root;
		j->path = m->file_read->path;
		j->want_fd = m->file_read->want_fd;
		closed = m->file_read->fds_closed;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_WRITE:
		j->kind = JOB_WRITE;
		root = m->file_write->root;
		j->path = m->file_write->path;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_WRITE_OPEN:
		j->kind = JOB_WRITE_OPEN;
		root = m->file_write_open->root;
		j->path = m->file_write_open->path;
		j->want_fd = m->file_write_open->want_fd;
		closed = m->file_write_open->fds_closed;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_DELETE:
		j->kind = JOB_DELETE;
		root = m->file_delete->root;
		j->path = m->file_delete->path;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_STAT:
		j->kind = JOB_STAT;
		root = m->file_stat->root;
		j->path = m->file_stat->path;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_LIST:
		j->kind = JOB_LIST;
		root = m->file_list->root;
		j->path = m->file_list->path;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_MKDIR:
		j->kind = JOB_MKDIR;
		root = m->file_mkdir->root;
		j->path = m->file_mkdir->path;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_RENAME:
		j->kind = JOB_RENAME;
		root = m->file_rename->root;
		j->path = m->file_rename->from;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_COPY:
		j->kind = JOB_COPY;
		root = m->file_copy->root;
		j->path = m->file_copy->from;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_WATCH_OPEN:
		if (r->batch) {
			free(j);
			req_fail(r, PORTER_E_INVAL, "a file watch cannot be a batch member");
			return;
		}
		j->kind = JOB_WATCH_OPEN;
		root = m->file_watch_open->root;
		j->path = m->file_watch_open->path;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_READ_NEXT:
		j->kind = JOB_READ_NEXT;
		sid = m->file_read_next->stream_id;
		cont = 1;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_WRITE_CHUNK:
		j->kind = JOB_WRITE_CHUNK;
		sid = m->file_write_chunk->stream_id;
		cont = 1;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_WRITE_COMMIT:
		j->kind = JOB_WRITE_COMMIT;
		sid = m->file_write_commit->stream_id;
		cont = 1;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_STREAM_CLOSE:
		j->kind = JOB_STREAM_CLOSE;
		sid = m->file_stream_close->stream_id;
		cont = 1;
		break;
	default:
		free(j);
		req_fail(r, PORTER_E_UNSUPPORTED, "not a file request");
		return;
	}
	if (cont) {
		/* A stream lives on the worker whose connection opened it; any
		 * connection of the same client may continue it. */
		if (fwd_to_owner(r, sid)) {
			free(j);
			return;
		}
		/* The client closed the descriptor of its atomic write: said
		 * before the stream is looked at, which may fail (a tombstone)
		 * and still owe the count back. */
		if ((j->kind == JOB_WRITE_COMMIT && m->file_write_commit->fd_closed) ||
		    (j->kind == JOB_STREAM_CLOSE && m->file_stream_close->fd_closed))
			fsstream_fd_closed(r->w, sid, r->uid, r->instance);
		rc = take_stream(j, sid, j->kind != JOB_READ_NEXT, j->kind == JOB_STREAM_CLOSE);
		if ((rc == PORTER_E_NOT_FOUND || rc == PORTER_E_TIMEOUT) &&
		    j->kind == JOB_STREAM_CLOSE) {
			/* Closing an unknown stream is not an error: it may
			 * have ended with its last chunk (or been reclaimed as
			 * idle, whose tombstone is now gone too). */
			Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
			Porter__V1__FileStreamCloseReply cr =
				PORTER__V1__FILE_STREAM_CLOSE_REPLY__INIT;
			resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_STREAM_CLOSE;
			resp.file_stream_close = &cr;
			free(j);
			req_reply(r, &resp);
			return;
		}
	}
	/* Descriptors go only to the client at the other end of this
	 * connection: never into a batch's reply (nobody would take them). */
	if (j->want_fd && (!r->c || r->batch || r->back || !r->w->cfg->file_pass_fd))
		j->want_fd = 0;
	/* A batch member's report of closes gives their count back here (a
	 * request of its own had it applied by the connection, before
	 * anything could refuse it: fs_note_closes); only on the
	 * connection's own loop, where the count is kept. */
	if (closed && r->batch && r->c && !r->back)
		fsfds_put(r->w, r->c->serial, closed);
	if (rc) {
		req_fail(r, rc, "stream %llx: %s", (unsigned long long)sid, j->msg);
		free(j);
		return;
	}
	if (!j->st) {
		if (!root)
			root = "";
		/* Groups are the kernel's word at connect, kept by the
		 * connection (a batch member shares it); a request without one
		 * is judged by its uid alone. */
		clients_peer by_uid = {.uid = r->uid, .gid = (gid_t)-1};
		const clients_peer *peer = r->c ? &r->c->peer : &by_uid;
		j->root = fsroot_find(root, peer);
		if (!j->root) {
			free(j);
			if (root[0])
				req_fail(r, PORTER_E_FILE_ROOT, "no file root named '%s'", root);
			else
				req_fail(r, PORTER_E_FILE_ROOT, "no file root is granted to uid %u",
					 (unsigned)r->uid);
			return;
		}
		if (!fsroot_grants(j->root, peer)) {
			req_fail(r, PORTER_E_DENIED, "file root '%s' is not granted to uid %u",
				 j->root->name, (unsigned)r->uid);
			free(j);
			return;
		}
	}
	if (j->want_fd) {
		/* A passed descriptor counts as an open stream: past the
		 * limits the request is served by bytes, as if it had not
		 * asked (a read of one chunk needs no stream; anything more
		 * takes a stream slot, and is refused naming the limit when
		 * there is none). */
		char why[256];
		if (fsfds_take(r->w, r->c->serial, r->c->acct, r->uid, why, sizeof(why)) == 0) {
			j->fd_slot = 1;
			j->fd_w = r->w;
		} else {
			log_debug("uid %u: file by bytes, not by descriptor: %s", (unsigned)r->uid,
				  why);
			j->want_fd = 0;
		}
	}
	r->op = j;
	r->cancel = job_cancel;
	uv_timer_init(&r->w->loop, &j->timer);
	j->timer.data = j;
	if (fsfast_try(j)) {
		/* Done on the loop: answered as the pool's job would be. */
		stats_add(&r->w->counters.file_fast, 1);
		job_done(&j->work, 0);
		return;
	}
	int qrc = uv_queue_work(&r->w->loop, &j->work, fswork_run, job_done);
	if (qrc < 0) {
		r->cancel = NULL;
		r->op = NULL;
		release_stream(j);
		job_free(j);
		req_fail(r, PORTER_E_INTERNAL, "cannot queue file work: %s", uv_strerror(qrc));
		return;
	}
	uv_timer_start(&j->timer, on_deadline, req_remaining_ms(r), 0);
}

void fs_note_closes(struct worker *w, uint64_t conn_serial, const Porter__V1__Request *msg)
{
	uint32_t closed = 0;
	if (msg->body_case == PORTER__V1__REQUEST__BODY_FILE_READ && msg->file_read)
		closed = msg->file_read->fds_closed;
	else if (msg->body_case == PORTER__V1__REQUEST__BODY_FILE_WRITE_OPEN &&
		 msg->file_write_open)
		closed = msg->file_write_open->fds_closed;
	if (closed)
		fsfds_put(w, conn_serial, closed);
}

void fs_conn_closed(struct worker *w, uint64_t conn_serial)
{
	fsstream_conn_closed(w, conn_serial);
	fsfds_conn_closed(w, conn_serial);
}

/* ------------------------------------------------------------ start-up */

int fs_init(const config *cfg)
{
	fswork_init(cfg->file_chunk);
	fslist_limit(cfg->max_frame);
	fsfast_init(cfg->file_fast_path);
	if (fsconfine_init(cfg->file_resolve) < 0)
		return PORTER_E_INVAL;
	return fsroot_init(cfg);
}

void fs_shutdown(void)
{
	fsroot_shutdown();
}
