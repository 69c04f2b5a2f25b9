/* file - the file calls of libporter; see porter.h ("Files"). */
#include "porter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pbatch.h"
#include "pbg.h"
#include "pconn.h"

/* Bytes per write chunk: well under the daemon's 16 MiB frame limit. */
#define WRITE_CHUNK (1u << 20)
/* Data up to this size goes in one FileWrite request. */
#define WRITE_ONE_SHOT (4u << 20)
/* A deadline for a call made of several exchanges. */
static int64_t deadline_of(int timeout_ms)
{
	return pconn_now_ms() + (timeout_ms > 0 ? timeout_ms : PCONN_DEFAULT_TIMEOUT_MS);
}

/* What is left of `deadline` as a call timeout; PORTER_E_TIMEOUT when none. */
static int left_ms(int64_t deadline)
{
	int64_t left = deadline - pconn_now_ms();
	if (left <= 0)
		return pconn_set_error(PORTER_E_TIMEOUT, "file call timed out between chunks");
	return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

static char *root_arg(const char *root)
{
	return (char *)(root ? root : "");
}

static int bad_reply(Porter__V1__Response *resp, const char *what)
{
	porter__v1__response__free_unpacked(resp, NULL);
	return pconn_set_error(PORTER_E_PROTOCOL, "%s reply missing", what);
}

void porter_bytes_free(porter_bytes *b)
{
	if (!b)
		return;
	free(b->data);
	free(b);
}

/* --------------------------------------------------------------- reader */

struct porter_file_reader {
	uint64_t stream_id; /* 0 once the daemon has sent the last chunk */
	uint64_t file_size;
	Porter__V1__Response *cur; /* holds the chunk handed out, or pending */
	int pending;               /* `cur` has not been handed out yet */
	uint64_t call_id;          /* the open's id, used by reads that pass 0 */
	int64_t deadline;          /* whole-stream deadline; 0: none */
	/* The code of a pull that failed: later reads return it again. The
	 * stream id is kept, so that close tells porterd (a cancelled or
	 * timed-out pull leaves the stream there; closing one porterd
	 * already dropped is harmless). */
	int failed;
};

static int read_call(Porter__V1__Request *req, int timeout_ms, enum pconn_retry retry,
		     Porter__V1__Response **out)
{
	Porter__V1__Response *resp = NULL;
	int rc = pconn_call(req, timeout_ms, retry, &resp);
	if (rc < 0)
		return rc;
	if (resp->body_case != PORTER__V1__RESPONSE__BODY_FILE_READ)
		return bad_reply(resp, "file read");
	*out = resp;
	return 0;
}

int porter_file_reader_open(const char *root, const char *path, uint64_t offset, uint64_t length,
			    uint32_t stream_timeout_ms, uint64_t call_id, int timeout_ms,
			    porter_file_reader **out)
{
	if (out)
		*out = NULL;
	if (!path || !out)
		return pconn_set_error(PORTER_E_INVAL, "path or out is NULL");
	int64_t deadline = pconn_stream_deadline(stream_timeout_ms);
	int wait;
	int rc = pconn_bounded(deadline, timeout_ms, &wait);
	if (rc < 0)
		return rc;
	/* One id for the open and every pull, so a cancel reaches them all. */
	if (!call_id)
		call_id = pconn_next_id();
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileRead fr = PORTER__V1__FILE_READ__INIT;
	fr.root = root_arg(root);
	fr.path = (char *)path;
	fr.offset = offset;
	fr.length = length;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_READ;
	req.file_read = &fr;

	porter_file_reader *rd = calloc(1, sizeof(*rd));
	if (!rd)
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	/* Opening a read is safe to repeat: an orphaned stream of the lost
	 * connection is dropped by the daemon. */
	rc = read_call(&req, wait, PCONN_IDEMPOTENT, &rd->cur);
	if (rc < 0) {
		free(rd);
		return rc;
	}
	rd->call_id = call_id;
	rd->deadline = deadline;
	rd->stream_id = rd->cur->file_read->stream_id;
	rd->file_size = rd->cur->file_read->file_size;
	rd->pending = 1;
	*out = rd;
	return 0;
}

uint64_t porter_file_reader_size(const porter_file_reader *rd)
{
	return rd ? rd->file_size : 0;
}

int porter_file_reader_read(porter_file_reader *rd, uint64_t call_id, int timeout_ms,
			    const void **data, size_t *len)
{
	if (data)
		*data = NULL;
	if (len)
		*len = 0;
	if (!rd || !data || !len)
		return pconn_set_error(PORTER_E_INVAL, "reader, data or len is NULL");
	if (rd->failed)
		return pconn_set_error(rd->failed,
				       "an earlier read of this file stream failed (%s)",
				       porter_strerror(rd->failed));
	if (!rd->pending) {
		if (rd->cur) {
			porter__v1__response__free_unpacked(rd->cur, NULL);
			rd->cur = NULL;
		}
		if (!rd->stream_id)
			return 0;
		int wait;
		int rc = pconn_bounded(rd->deadline, timeout_ms, &wait);
		if (rc < 0)
			return rc;
		Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
		Porter__V1__FileReadNext fn = PORTER__V1__FILE_READ_NEXT__INIT;
		fn.stream_id = rd->stream_id;
		req.id = call_id ? call_id : rd->call_id;
		req.body_case = PORTER__V1__REQUEST__BODY_FILE_READ_NEXT;
		req.file_read_next = &fn;
		/* Not idempotent: a lost pull may have advanced the stream. */
		rc = read_call(&req, wait, PCONN_ONCE, &rd->cur);
		if (rc < 0) {
			rd->failed = rc;
			return rc;
		}
		rd->stream_id = rd->cur->file_read->stream_id;
	}
	rd->pending = 0;
	if (rd->cur->file_read->data.len == 0 && !rd->stream_id)
		return 0;
	*data = rd->cur->file_read->data.data;
	*len = rd->cur->file_read->data.len;
	return 1;
}

/* Tells the daemon a read or write stream is abandoned; 0 or a code. */
static int stream_close(uint64_t id, int timeout_ms)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileStreamClose sc = PORTER__V1__FILE_STREAM_CLOSE__INIT;
	Porter__V1__Response *resp = NULL;
	sc.stream_id = id;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_STREAM_CLOSE;
	req.file_stream_close = &sc;
	int rc = pconn_call(&req, timeout_ms, PCONN_IDEMPOTENT, &resp);
	if (rc == 0)
		porter__v1__response__free_unpacked(resp, NULL);
	return rc;
}

static void stream_close_job(void *arg)
{
	stream_close(*(uint64_t *)arg, PBG_JOB_TIMEOUT_MS);
}

/* Hands the close of stream `id` (0: none) to the background thread. */
static void stream_close_later(uint64_t id)
{
	uint64_t *arg = id ? malloc(sizeof(*arg)) : NULL;
	if (arg) {
		*arg = id;
		pbg_submit(stream_close_job, arg);
	}
}

static void reader_release(porter_file_reader *rd)
{
	if (rd->cur)
		porter__v1__response__free_unpacked(rd->cur, NULL);
	free(rd);
}

int porter_file_reader_close(porter_file_reader *rd, int timeout_ms)
{
	if (!rd)
		return 0;
	int rc = rd->stream_id ? stream_close(rd->stream_id, timeout_ms) : 0;
	reader_release(rd);
	return rc;
}

void porter_file_reader_free(porter_file_reader *rd)
{
	if (!rd)
		return;
	stream_close_later(rd->stream_id);
	reader_release(rd);
}

int porter_file_read(const char *root, const char *path, uint64_t offset, uint64_t length,
		     uint64_t call_id, int timeout_ms, porter_bytes **out)
{
	if (!out)
		return pconn_set_error(PORTER_E_INVAL, "out is NULL");
	*out = NULL;
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "negative timeout");
	/* The whole call's timeout is the reader's deadline; every pull
	 * carries the caller's id (the reader keeps it). */
	int total = timeout_ms ? timeout_ms : PCONN_DEFAULT_TIMEOUT_MS;
	porter_file_reader *rd = NULL;
	porter_bytes *b = calloc(1, sizeof(*b));
	if (!b)
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	int rc = porter_file_reader_open(root, path, offset, length, (uint32_t)total, call_id,
					 total, &rd);
	if (rc < 0)
		goto fail;
	/* The size known at open sizes the buffer; a file whose size is
	 * unknown (0 for /proc files) or that grew makes it grow. */
	size_t cap = 0;
	uint64_t want = rd->file_size > offset ? rd->file_size - offset : 0;
	if (length && length < want)
		want = length;
	if (want > SIZE_MAX / 2) {
		rc = pconn_set_error(PORTER_E_TOO_LARGE, "file too large for memory");
		goto fail;
	}
	cap = want ? (size_t)want : 1;
	b->data = malloc(cap);
	if (!b->data) {
		rc = pconn_set_error(PORTER_E_NOMEM, "out of memory for %zu bytes", cap);
		goto fail;
	}
	for (;;) {
		const void *p;
		size_t n;
		rc = porter_file_reader_read(rd, 0, total, &p, &n);
		if (rc < 0)
			goto fail;
		if (rc == 0)
			break;
		if (n > cap - b->len) {
			size_t ncap = cap;
			while (n > ncap - b->len) {
				if (ncap > SIZE_MAX / 2) {
					rc = pconn_set_error(PORTER_E_TOO_LARGE,
							     "file too large for memory");
					goto fail;
				}
				ncap *= 2;
			}
			uint8_t *nd = realloc(b->data, ncap);
			if (!nd) {
				rc = pconn_set_error(PORTER_E_NOMEM, "out of memory");
				goto fail;
			}
			b->data = nd;
			cap = ncap;
		}
		memcpy(b->data + b->len, p, n);
		b->len += n;
	}
	porter_file_reader_free(rd); /* at its end: nothing to tell the daemon */
	*out = b;
	return 0;
fail:
	porter_file_reader_free(rd);
	porter_bytes_free(b);
	return rc;
}

/* --------------------------------------------------------------- writer */

struct porter_file_writer {
	uint64_t stream_id; /* 0 once committed or abandoned */
};

static void writer_release(porter_file_writer *wr)
{
	free(wr);
}

static int write_call(Porter__V1__Request *req, int timeout_ms, Porter__V1__Response **out)
{
	Porter__V1__Response *resp = NULL;
	int rc = pconn_call(req, timeout_ms, PCONN_ONCE, &resp);
	if (rc < 0)
		return rc;
	if (resp->body_case != PORTER__V1__RESPONSE__BODY_FILE_WRITE)
		return bad_reply(resp, "file write");
	*out = resp;
	return 0;
}

int porter_file_writer_open(const char *root, const char *path, unsigned flags, unsigned mode,
			    uint64_t call_id, int timeout_ms, porter_file_writer **out)
{
	if (out)
		*out = NULL;
	if (!path || !out)
		return pconn_set_error(PORTER_E_INVAL, "path or out is NULL");
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileWriteOpen wo = PORTER__V1__FILE_WRITE_OPEN__INIT;
	Porter__V1__Response *resp = NULL;
	wo.root = root_arg(root);
	wo.path = (char *)path;
	wo.flags = flags;
	wo.mode = mode;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_WRITE_OPEN;
	req.file_write_open = &wo;
	porter_file_writer *wr = calloc(1, sizeof(*wr));
	if (!wr)
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	int rc = write_call(&req, timeout_ms, &resp);
	if (rc < 0) {
		free(wr);
		return rc;
	}
	wr->stream_id = resp->file_write->stream_id;
	porter__v1__response__free_unpacked(resp, NULL);
	if (!wr->stream_id) {
		free(wr);
		return pconn_set_error(PORTER_E_PROTOCOL, "no stream id in the reply");
	}
	*out = wr;
	return 0;
}

int porter_file_writer_write(porter_file_writer *wr, const void *data, size_t len, uint64_t call_id,
			     int timeout_ms)
{
	if (!wr || (!data && len))
		return pconn_set_error(PORTER_E_INVAL, "writer or data is NULL");
	if (!wr->stream_id)
		return pconn_set_error(PORTER_E_INVAL, "the write was committed or abandoned");
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "negative timeout");
	int64_t deadline = deadline_of(timeout_ms);
	/* Every chunk with one id, so a cancel reaches whichever is sent. */
	if (!call_id)
		call_id = pconn_next_id();
	const uint8_t *p = data;
	do {
		size_t n = len < WRITE_CHUNK ? len : WRITE_CHUNK;
		int t = left_ms(deadline);
		if (t < 0)
			return t;
		Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
		Porter__V1__FileWriteChunk wc = PORTER__V1__FILE_WRITE_CHUNK__INIT;
		Porter__V1__Response *resp = NULL;
		wc.stream_id = wr->stream_id;
		wc.data.data = (uint8_t *)p;
		wc.data.len = n;
		req.id = call_id;
		req.body_case = PORTER__V1__REQUEST__BODY_FILE_WRITE_CHUNK;
		req.file_write_chunk = &wc;
		int rc = write_call(&req, t, &resp);
		if (rc < 0) {
			/* The daemon drops a stream whose chunk failed; one
			 * that timed out is dropped by the close. */
			if (rc != PORTER_E_TIMEOUT && rc != PORTER_E_BUSY)
				wr->stream_id = 0;
			return rc;
		}
		porter__v1__response__free_unpacked(resp, NULL);
		p += n;
		len -= n;
	} while (len);
	return 0;
}

int porter_file_writer_commit(porter_file_writer *wr, uint64_t call_id, int timeout_ms)
{
	if (!wr)
		return pconn_set_error(PORTER_E_INVAL, "writer is NULL");
	if (!wr->stream_id)
		return pconn_set_error(PORTER_E_INVAL, "the write was committed or abandoned");
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileWriteCommit wc = PORTER__V1__FILE_WRITE_COMMIT__INIT;
	Porter__V1__Response *resp = NULL;
	wc.stream_id = wr->stream_id;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_WRITE_COMMIT;
	req.file_write_commit = &wc;
	int rc = write_call(&req, timeout_ms, &resp);
	/* Success or not, the daemon has finished with the stream, except
	 * when the reply never came (then the close drops it). */
	if (rc == 0 || (rc != PORTER_E_TIMEOUT && rc != PORTER_E_BUSY))
		wr->stream_id = 0;
	if (rc == 0)
		porter__v1__response__free_unpacked(resp, NULL);
	return rc;
}

int porter_file_writer_close(porter_file_writer *wr, int timeout_ms)
{
	if (!wr)
		return 0;
	int rc = wr->stream_id ? stream_close(wr->stream_id, timeout_ms) : 0;
	writer_release(wr);
	return rc;
}

void porter_file_writer_free(porter_file_writer *wr)
{
	if (!wr)
		return;
	stream_close_later(wr->stream_id);
	writer_release(wr);
}

int porter_file_write(const char *root, const char *path, const void *data, size_t len,
		      unsigned flags, unsigned mode, uint64_t call_id, int timeout_ms)
{
	if (!path || (!data && len))
		return pconn_set_error(PORTER_E_INVAL, "path or data is NULL");
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "negative timeout");
	if (len > WRITE_ONE_SHOT) {
		/* Open, chunks and commit all carry one id. */
		if (!call_id)
			call_id = pconn_next_id();
		int64_t deadline = deadline_of(timeout_ms);
		porter_file_writer *wr = NULL;
		int rc = porter_file_writer_open(root, path, flags, mode, call_id, timeout_ms, &wr);
		int t = 0;
		if (rc == 0 && (t = left_ms(deadline)) > 0)
			rc = porter_file_writer_write(wr, data, len, call_id, t);
		else if (rc == 0)
			rc = t;
		if (rc == 0 && (t = left_ms(deadline)) > 0)
			rc = porter_file_writer_commit(wr, call_id, t);
		else if (rc == 0)
			rc = t;
		porter_file_writer_free(wr); /* an abandoned write is dropped behind us */
		return rc;
	}
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileWrite fw = PORTER__V1__FILE_WRITE__INIT;
	Porter__V1__Response *resp = NULL;
	fw.root = root_arg(root);
	fw.path = (char *)path;
	fw.data.data = (uint8_t *)data;
	fw.data.len = len;
	fw.flags = flags;
	fw.mode = mode;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_WRITE;
	req.file_write = &fw;
	int rc = write_call(&req, timeout_ms, &resp);
	if (rc == 0)
		porter__v1__response__free_unpacked(resp, NULL);
	return rc;
}

/* ------------------------------------------------- delete, stat, list */

int porter_file_delete(const char *root, const char *path, int directory, uint64_t call_id,
		       int timeout_ms)
{
	if (!path)
		return pconn_set_error(PORTER_E_INVAL, "path is NULL");
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileDelete fd = PORTER__V1__FILE_DELETE__INIT;
	Porter__V1__Response *resp = NULL;
	fd.root = root_arg(root);
	fd.path = (char *)path;
	fd.directory = directory != 0;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_DELETE;
	req.file_delete = &fd;
	int rc = pconn_call(&req, timeout_ms, PCONN_ONCE, &resp);
	if (rc < 0)
		return rc;
	if (resp->body_case != PORTER__V1__RESPONSE__BODY_FILE_DELETE)
		return bad_reply(resp, "file delete");
	porter__v1__response__free_unpacked(resp, NULL);
	return 0;
}

/* FileStat, following a final symlink or not. */
static int file_stat(const char *root, const char *path, int no_follow, uint64_t call_id,
		     int timeout_ms, porter_file_info *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!path || !out)
		return pconn_set_error(PORTER_E_INVAL, "path or out is NULL");
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileStat fs = PORTER__V1__FILE_STAT__INIT;
	Porter__V1__Response *resp = NULL;
	fs.root = root_arg(root);
	fs.path = (char *)path;
	fs.no_follow = no_follow != 0;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_STAT;
	req.file_stat = &fs;
	int rc = pconn_call(&req, timeout_ms, PCONN_IDEMPOTENT, &resp);
	if (rc < 0)
		return rc;
	if (resp->body_case != PORTER__V1__RESPONSE__BODY_FILE_STAT)
		return bad_reply(resp, "file stat");
	Porter__V1__FileStatReply *s = resp->file_stat;
	*out = (porter_file_info){
		.type = s->type,
		.size = s->size,
		.mode = s->mode,
		.mtime_ns = s->mtime_ns,
		.uid = s->uid,
		.gid = s->gid,
		.nlink = s->nlink,
	};
	porter__v1__response__free_unpacked(resp, NULL);
	return 0;
}

int porter_file_stat(const char *root, const char *path, uint64_t call_id, int timeout_ms,
		     porter_file_info *out)
{
	return file_stat(root, path, 0, call_id, timeout_ms, out);
}

int porter_file_lstat(const char *root, const char *path, uint64_t call_id, int timeout_ms,
		      porter_file_info *out)
{
	return file_stat(root, path, 1, call_id, timeout_ms, out);
}

/* Checks a mkdir's arguments and fills `req` and its message `m` (which
 * borrow the strings). Returns 0 or PORTER_E_INVAL (the error set). */
static int mkdir_req(Porter__V1__Request *req, Porter__V1__FileMkdir *m, const char *root,
		     const char *path, unsigned mode, unsigned flags)
{
	if (!path)
		return pconn_set_error(PORTER_E_INVAL, "path is NULL");
	if (flags & ~PORTER_FILE_PARENTS)
		return pconn_set_error(PORTER_E_INVAL, "unknown mkdir flags");
	m->root = root_arg(root);
	m->path = (char *)path;
	m->mode = mode;
	m->parents = (flags & PORTER_FILE_PARENTS) != 0;
	req->body_case = PORTER__V1__REQUEST__BODY_FILE_MKDIR;
	req->file_mkdir = m;
	return 0;
}

int porter_file_mkdir(const char *root, const char *path, unsigned mode, unsigned flags,
		      uint64_t call_id, int timeout_ms)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileMkdir m = PORTER__V1__FILE_MKDIR__INIT;
	Porter__V1__Response *resp = NULL;
	if (mkdir_req(&req, &m, root, path, mode, flags) < 0)
		return PORTER_E_INVAL;
	req.id = call_id;
	/* With parents, doing it twice is the same as once. */
	int rc = pconn_call(&req, timeout_ms, m.parents ? PCONN_IDEMPOTENT : PCONN_ONCE, &resp);
	if (rc < 0)
		return rc;
	if (resp->body_case != PORTER__V1__RESPONSE__BODY_FILE_MKDIR)
		return bad_reply(resp, "file mkdir");
	porter__v1__response__free_unpacked(resp, NULL);
	return 0;
}

/* Checks a rename's or copy's arguments and fills `req` and the message
 * it points to (`rn` or `cp`, borrowing the strings). Returns 0 or
 * PORTER_E_INVAL (the error set). */
static int names_req(int copy, Porter__V1__Request *req, Porter__V1__FileRename *rn,
		     Porter__V1__FileCopy *cp, const char *root, const char *from, const char *to,
		     unsigned flags)
{
	if (!from || !to)
		return pconn_set_error(PORTER_E_INVAL, "from or to is NULL");
	if (flags & ~PORTER_FILE_NO_REPLACE)
		return pconn_set_error(PORTER_E_INVAL, "unknown %s flags",
				       copy ? "copy" : "rename");
	int no_replace = (flags & PORTER_FILE_NO_REPLACE) != 0;
	if (copy) {
		cp->root = root_arg(root);
		cp->from = (char *)from;
		cp->to = (char *)to;
		cp->no_replace = no_replace;
		req->body_case = PORTER__V1__REQUEST__BODY_FILE_COPY;
		req->file_copy = cp;
	} else {
		rn->root = root_arg(root);
		rn->from = (char *)from;
		rn->to = (char *)to;
		rn->no_replace = no_replace;
		req->body_case = PORTER__V1__REQUEST__BODY_FILE_RENAME;
		req->file_rename = rn;
	}
	return 0;
}

/* Rename and copy: two names in one root and the no-replace flag. Stores
 * a copy's size in `*size` (NULL accepted; 0 on failure). */
static int two_names(int copy, const char *root, const char *from, const char *to, unsigned flags,
		     uint64_t call_id, int timeout_ms, uint64_t *size)
{
	if (size)
		*size = 0;
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileRename rn = PORTER__V1__FILE_RENAME__INIT;
	Porter__V1__FileCopy cp = PORTER__V1__FILE_COPY__INIT;
	Porter__V1__Response *resp = NULL;
	if (names_req(copy, &req, &rn, &cp, root, from, to, flags) < 0)
		return PORTER_E_INVAL;
	int no_replace = (flags & PORTER_FILE_NO_REPLACE) != 0;
	req.id = call_id;
	/* A copy replaces `to` whole each time: repeating it is harmless,
	 * except with no_replace, whose second try would fail. A rename is
	 * never repeated. */
	int rc = pconn_call(&req, timeout_ms, copy && !no_replace ? PCONN_IDEMPOTENT : PCONN_ONCE,
			    &resp);
	if (rc < 0)
		return rc;
	if (resp->body_case !=
	    (copy ? PORTER__V1__RESPONSE__BODY_FILE_COPY : PORTER__V1__RESPONSE__BODY_FILE_RENAME))
		return bad_reply(resp, copy ? "file copy" : "file rename");
	if (copy && size)
		*size = resp->file_copy->size;
	porter__v1__response__free_unpacked(resp, NULL);
	return 0;
}

int porter_file_rename(const char *root, const char *from, const char *to, unsigned flags,
		       uint64_t call_id, int timeout_ms)
{
	return two_names(0, root, from, to, flags, call_id, timeout_ms, NULL);
}

int porter_file_copy(const char *root, const char *from, const char *to, unsigned flags,
		     uint64_t call_id, int timeout_ms, uint64_t *size)
{
	return two_names(1, root, from, to, flags, call_id, timeout_ms, size);
}

struct porter_file_list {
	Porter__V1__Response *resp; /* owns the entries */
};

int porter_file_list_dir(const char *root, const char *path, uint64_t call_id, int timeout_ms,
			 porter_file_list **out)
{
	if (!out)
		return pconn_set_error(PORTER_E_INVAL, "out is NULL");
	*out = NULL;
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileList fl = PORTER__V1__FILE_LIST__INIT;
	Porter__V1__Response *resp = NULL;
	fl.root = root_arg(root);
	fl.path = (char *)(path ? path : "");
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_LIST;
	req.file_list = &fl;
	int rc = pconn_call(&req, timeout_ms, PCONN_IDEMPOTENT, &resp);
	if (rc < 0)
		return rc;
	if (resp->body_case != PORTER__V1__RESPONSE__BODY_FILE_LIST)
		return bad_reply(resp, "file list");
	porter_file_list *l = malloc(sizeof(*l));
	if (!l) {
		porter__v1__response__free_unpacked(resp, NULL);
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	}
	l->resp = resp;
	*out = l;
	return 0;
}

size_t porter_file_list_count(const porter_file_list *l)
{
	return l ? l->resp->file_list->n_entries : 0;
}

const char *porter_file_list_name(const porter_file_list *l, size_t i)
{
	if (!l || i >= l->resp->file_list->n_entries)
		return NULL;
	return l->resp->file_list->entries[i]->name;
}

int porter_file_list_entry(const porter_file_list *l, size_t i, int *type, uint64_t *size,
			   int64_t *mtime_ns)
{
	if (!l || i >= l->resp->file_list->n_entries)
		return PORTER_E_INVAL;
	Porter__V1__FileEntry *e = l->resp->file_list->entries[i];
	if (type)
		*type = e->type;
	if (size)
		*size = e->size;
	if (mtime_ns)
		*mtime_ns = e->mtime_ns;
	return 0;
}

void porter_file_list_free(porter_file_list *l)
{
	if (!l)
		return;
	porter__v1__response__free_unpacked(l->resp, NULL);
	free(l);
}

int porter_batch_add_file_read(porter_batch *b, const char *root, const char *path, uint64_t offset,
			       uint64_t length, int timeout_ms)
{
	if (!path || timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "path is NULL or timeout negative");
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileRead fr = PORTER__V1__FILE_READ__INIT;
	fr.root = root_arg(root);
	fr.path = (char *)path;
	fr.offset = offset;
	fr.length = length;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_READ;
	req.file_read = &fr;
	req.timeout_ms = (uint32_t)timeout_ms;
	return pbatch_add(b, &req);
}

int porter_batch_add_file_mkdir(porter_batch *b, const char *root, const char *path, unsigned mode,
				unsigned flags, int timeout_ms)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileMkdir m = PORTER__V1__FILE_MKDIR__INIT;
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "timeout negative");
	if (mkdir_req(&req, &m, root, path, mode, flags) < 0)
		return PORTER_E_INVAL;
	req.timeout_ms = (uint32_t)timeout_ms;
	return pbatch_add(b, &req);
}

/* A rename or copy member. */
static int batch_names(porter_batch *b, int copy, const char *root, const char *from,
		       const char *to, unsigned flags, int timeout_ms)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileRename rn = PORTER__V1__FILE_RENAME__INIT;
	Porter__V1__FileCopy cp = PORTER__V1__FILE_COPY__INIT;
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "timeout negative");
	if (names_req(copy, &req, &rn, &cp, root, from, to, flags) < 0)
		return PORTER_E_INVAL;
	req.timeout_ms = (uint32_t)timeout_ms;
	return pbatch_add(b, &req);
}

int porter_batch_add_file_rename(porter_batch *b, const char *root, const char *from,
				 const char *to, unsigned flags, int timeout_ms)
{
	return batch_names(b, 0, root, from, to, flags, timeout_ms);
}

int porter_batch_add_file_copy(porter_batch *b, const char *root, const char *from, const char *to,
			       unsigned flags, int timeout_ms)
{
	return batch_names(b, 1, root, from, to, flags, timeout_ms);
}

int porter_batch_result_file_read(const porter_batch_result *r, size_t i, const void **data,
				  size_t *len, uint64_t *file_size)
{
	const Porter__V1__Response *m = pbatch_member(r, i);
	if (!m || !data || !len || m->status != 0 ||
	    m->body_case != PORTER__V1__RESPONSE__BODY_FILE_READ)
		return PORTER_E_INVAL;
	*data = m->file_read->data.data;
	*len = m->file_read->data.len;
	if (file_size)
		*file_size = m->file_read->file_size;
	return 0;
}
