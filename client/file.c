/* file - reads and writes of files, by descriptor or by chunks; see
 * porter.h ("Files"). The calls that only name files are in fileops.c. */
#include "porter.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "pbg.h"
#include "pconn.h"
#include "pfd.h"
#include "pfile.h"

/* Bytes per write chunk: well under the daemon's 16 MiB frame limit. */
#define WRITE_CHUNK (1u << 20)
/* Data up to this size goes in one FileWrite request. */
#define WRITE_ONE_SHOT (4u << 20)
/* porter_file_write sends plain writes, and atomic ones larger than this,
 * through a writer, which goes by descriptor: one round trip and the data
 * written here. A small atomic write stays one FileWrite with its bytes
 * (one round trip, where the descriptor path needs a second for the
 * commit). */
#define ATOMIC_BY_FD (64u << 10)
/* A reader by descriptor hands out pieces of at most this size. */
#define READ_PIECE (1u << 20)
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

/* --------------------------------------------------------------- reader */

struct porter_file_reader {
	uint64_t stream_id; /* 0 once the daemon has sent the last chunk */
	uint64_t file_size;
	/* The reply holding the chunk handed out, or pending; unpacked into
	 * `ar` (by dbwire's hand-written decoder: one allocation, the chunk
	 * copied once), NULL when none. */
	Porter__V1__Response *cur;
	arena ar;
	int pending;      /* `cur` has not been handed out yet */
	uint64_t call_id; /* the open's id, used by reads that pass 0 */
	int64_t deadline; /* whole-stream deadline; 0: none */
	/* The code of a pull that failed: later reads return it again. The
	 * stream id is kept, so that close tells porterd (a cancelled or
	 * timed-out pull leaves the stream there; closing one porterd
	 * already dropped is harmless). */
	int failed;
	/* By descriptor: the open file porterd passed (-1: chunks come over
	 * the socket), the next offset, where to stop (the size at open,
	 * capped by the length asked; UINT64_MAX to read to the end of a
	 * file whose size is unknown), and the piece handed out. */
	int fd;
	pconn_fdlink *fdlink; /* where fd's close is reported (pconn_fd_close) */
	uint64_t pos, end;
	uint32_t piece; /* the daemon's chunk size, capped by READ_PIECE */
	uint8_t *buf;
	char *path; /* for messages; owned */
};

/* Drops the reply `rd` holds. */
static void drop_cur(porter_file_reader *rd)
{
	rd->cur = NULL;
	arena_free(&rd->ar);
}

/* A read or pull of `rd`: its reply goes to rd->cur (any reply it held
 * before is gone), or NULL on failure. */
static int read_call(porter_file_reader *rd, Porter__V1__Request *req, int timeout_ms,
		     enum pconn_retry retry)
{
	Porter__V1__Response *resp = NULL;
	rd->cur = NULL;
	int rc = pconn_call_arena(req, timeout_ms, retry, &rd->ar, &resp);
	if (rc == 0 && resp->body_case != PORTER__V1__RESPONSE__BODY_FILE_READ)
		rc = pconn_set_error(PORTER_E_PROTOCOL, "file read reply missing");
	if (rc < 0) {
		drop_cur(rd);
		return rc;
	}
	rd->cur = resp;
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
	fr.root = pfile_root(root);
	fr.path = (char *)path;
	fr.offset = offset;
	fr.length = length;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_READ;
	req.file_read = &fr;

	porter_file_reader *rd = calloc(1, sizeof(*rd));
	if (!rd)
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	rd->fd = -1;
	arena_init(&rd->ar, 0);
	/* Files by descriptor over the Unix socket; the bytes come instead
	 * when porterd cannot pass one now (PORTER_E_BUSY) or the descriptor
	 * was lost on the way (this process is out of descriptors). Opening a
	 * read is safe to repeat: an orphaned stream of the lost connection
	 * is dropped by the daemon. */
	fr.want_fd = 1;
	rc = read_call(rd, &req, wait, PCONN_IDEMPOTENT);
	if (rc == 0 && rd->cur->file_read->fd_passed &&
	    (rd->fd = pfd_take(O_RDONLY, &rd->fdlink)) < 0) {
		drop_cur(rd);
		rc = rd->fd == -1 ? PORTER_E_BUSY : rd->fd;
		rd->fd = -1;
	}
	if (rc == PORTER_E_BUSY && (rc = pconn_bounded(deadline, timeout_ms, &wait)) == 0) {
		fr.want_fd = 0;
		rc = read_call(rd, &req, wait, PCONN_IDEMPOTENT);
	}
	if (rc < 0) {
		free(rd);
		return rc;
	}
	rd->call_id = call_id;
	rd->deadline = deadline;
	rd->stream_id = rd->cur->file_read->stream_id;
	rd->file_size = rd->cur->file_read->file_size;
	rd->pending = 1;
	if (rd->fd >= 0) {
		rd->stream_id = 0;
		rd->pending = 0;
		rd->pos = offset;
		/* As the byte path: up to the size at open, or to the end of a
		 * file whose size is unknown (0: /proc files). */
		uint64_t size = rd->file_size;
		rd->end = size ? size : UINT64_MAX;
		if (length && length < rd->end - (offset < rd->end ? offset : rd->end))
			rd->end = offset + length;
		rd->path = strdup(path);
		/* Pieces of the size the chunks would have had, so a stream
		 * hands out the same as over the socket. */
		uint32_t cs = rd->cur->file_read->chunk_size;
		rd->piece = cs && cs < READ_PIECE ? cs : READ_PIECE;
	}
	*out = rd;
	return 0;
}

/* The next piece of a reader by descriptor, read from the file here. */
static int reader_read_fd(porter_file_reader *rd, const void **data, size_t *len)
{
	if (rd->pos >= rd->end)
		return 0;
	uint64_t want = rd->end - rd->pos;
	if (want > rd->piece)
		want = rd->piece;
	if (!rd->buf && !(rd->buf = malloc(rd->piece)))
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	size_t got = 0;
	int rc = pfd_read(rd->fd, rd->buf, (size_t)want, rd->pos, &got, rd->path);
	if (rc < 0) {
		rd->failed = rc;
		return rc;
	}
	if (got == 0) {
		rd->end = rd->pos; /* the file shrank: end early */
		return 0;
	}
	rd->pos += got;
	*data = rd->buf;
	*len = got;
	return 1;
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
	if (rd->fd >= 0)
		return reader_read_fd(rd, data, len);
	if (!rd->pending) {
		drop_cur(rd);
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
		rc = read_call(rd, &req, wait, PCONN_ONCE);
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

/* A FileStreamClose of stream `id`, saying `fd_closed`. */
static int stream_close(uint64_t id, int timeout_ms, int fd_closed)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileStreamClose sc = PORTER__V1__FILE_STREAM_CLOSE__INIT;
	sc.stream_id = id;
	sc.fd_closed = fd_closed;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_STREAM_CLOSE;
	req.file_stream_close = &sc;
	return pconn_call_ack(&req, timeout_ms, PCONN_IDEMPOTENT);
}

/* See pfile.h. */
int pfile_stream_close(uint64_t id, int timeout_ms)
{
	return stream_close(id, timeout_ms, 0);
}

/* See pfile.h. */
int pfile_stream_close_fd(uint64_t id, int timeout_ms)
{
	return stream_close(id, timeout_ms, 1);
}

/* See pfile.h. */
int pfile_stream_end(uint64_t id, int timeout_ms, int wait, int fd_closed)
{
	if (!id)
		return 0;
	int (*close_fn)(uint64_t, int) = fd_closed ? pfile_stream_close_fd : pfile_stream_close;
	if (wait)
		return close_fn(id, timeout_ms);
	pbg_submit_id(close_fn, id);
	return 0;
}

/* Ends reader `rd` (NULL: nothing): closes its stream in the daemon,
 * waiting up to `timeout_ms` when `wait`, else behind the caller, then frees
 * it. Returns 0 or the close's code. */
static int reader_end(porter_file_reader *rd, int timeout_ms, int wait)
{
	if (!rd)
		return 0;
	int rc = pfile_stream_end(rd->stream_id, timeout_ms, wait, 0);
	drop_cur(rd);
	pconn_fd_close(rd->fd, rd->fdlink);
	free(rd->buf);
	free(rd->path);
	free(rd);
	return rc;
}

int porter_file_reader_close(porter_file_reader *rd, int timeout_ms)
{
	return reader_end(rd, timeout_ms, 1);
}

void porter_file_reader_free(porter_file_reader *rd)
{
	reader_end(rd, 0, 0);
}

/* Reads what reader by descriptor `rd` still covers into `buf` (`cap`
 * bytes) from the file, straight: as pread(2) would, up to `cap` or the
 * end. Adds the count to `*n`. Returns 0 or a negative code. */
static int read_fd_into(porter_file_reader *rd, uint8_t *buf, size_t cap, size_t *n)
{
	uint64_t left = rd->pos < rd->end ? rd->end - rd->pos : 0;
	size_t want = left < cap ? (size_t)left : cap;
	size_t got = 0;
	int rc = want ? pfd_read(rd->fd, buf, want, rd->pos, &got, rd->path) : 0;
	if (rc < 0)
		return rc;
	if (got < want)
		rd->end = rd->pos + got; /* the file shrank: end early */
	rd->pos += got;
	*n += got;
	return 0;
}

/* A porter_bytes as the library allocates it: the bytes of a read that
 * came in one reply stay in that reply (no second copy), else in `buf`
 * of their own, which pub.data points to once the read is done (the
 * caller's view is const void *). */
typedef struct pbytes {
	porter_bytes pub;
	arena ar;     /* the reply holding pub.data, when it came in one */
	uint8_t *buf; /* else owns the bytes (malloc) */
} pbytes;

/* Reads what a reader by descriptor covers into `pb` (its buffer of `cap`
 * bytes, grown for a file that grew or has no size). */
static int read_fd_all(porter_file_reader *rd, pbytes *pb, size_t cap)
{
	for (;;) {
		int rc = read_fd_into(rd, pb->buf + pb->pub.len, cap - pb->pub.len, &pb->pub.len);
		if (rc < 0 || rd->pos >= rd->end)
			return rc;
		if (cap > SIZE_MAX / 2)
			return pconn_set_error(PORTER_E_TOO_LARGE, "file too large for memory");
		uint8_t *nd = realloc(pb->buf, cap * 2);
		if (!nd)
			return pconn_set_error(PORTER_E_NOMEM, "out of memory");
		pb->buf = nd;
		cap *= 2;
	}
}

void porter_bytes_free(porter_bytes *b)
{
	if (!b)
		return;
	pbytes *pb = (pbytes *)b;
	arena_free(&pb->ar);
	free(pb->buf);
	free(pb);
}

/* Whether byte reader `rd` has its whole range in the reply it holds
 * (pending, and no stream behind it): a small read. */
static int reader_whole(const porter_file_reader *rd)
{
	return rd->fd < 0 && rd->pending && rd->cur && !rd->stream_id;
}

/* Opens the reader of a whole-call read (porter_file_read, _read_into):
 * the call's timeout as the reader's deadline, every pull with the
 * caller's id. */
static int open_for_call(const char *root, const char *path, uint64_t offset, uint64_t length,
			 uint64_t call_id, int timeout_ms, int *total, porter_file_reader **rd)
{
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "negative timeout");
	*total = timeout_ms ? timeout_ms : PCONN_DEFAULT_TIMEOUT_MS;
	return porter_file_reader_open(root, path, offset, length, (uint32_t)*total, call_id,
				       *total, rd);
}

int porter_file_read(const char *root, const char *path, uint64_t offset, uint64_t length,
		     uint64_t call_id, int timeout_ms, porter_bytes **out)
{
	if (!out)
		return pconn_set_error(PORTER_E_INVAL, "out is NULL");
	*out = NULL;
	int total = 0;
	porter_file_reader *rd = NULL;
	pbytes *pb = calloc(1, sizeof(*pb));
	if (!pb)
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	arena_init(&pb->ar, 0);
	porter_bytes *b = &pb->pub;
	int rc = open_for_call(root, path, offset, length, call_id, timeout_ms, &total, &rd);
	if (rc < 0)
		goto fail;
	if (reader_whole(rd)) {
		/* All in the one reply: hand it over as it is (its arena
		 * moves; the reader's is left empty). */
		b->data = rd->cur->file_read->data.data;
		b->len = rd->cur->file_read->data.len;
		pb->ar = rd->ar;
		arena_init(&rd->ar, 0);
		rd->cur = NULL;
		porter_file_reader_free(rd);
		*out = b;
		return 0;
	}
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
	pb->buf = malloc(cap);
	if (!pb->buf) {
		rc = pconn_set_error(PORTER_E_NOMEM, "out of memory for %zu bytes", cap);
		goto fail;
	}
	if (rd->fd >= 0) {
		/* By descriptor: straight into the result, no piece buffer. */
		rc = read_fd_all(rd, pb, cap);
		if (rc < 0)
			goto fail;
		porter_file_reader_free(rd);
		b->data = pb->buf;
		*out = b;
		return 0;
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
			uint8_t *nd = realloc(pb->buf, ncap);
			if (!nd) {
				rc = pconn_set_error(PORTER_E_NOMEM, "out of memory");
				goto fail;
			}
			pb->buf = nd;
			cap = ncap;
		}
		memcpy(pb->buf + b->len, p, n);
		b->len += n;
	}
	porter_file_reader_free(rd); /* at its end: nothing to tell the daemon */
	b->data = pb->buf;
	*out = b;
	return 0;
fail:
	porter_file_reader_free(rd);
	porter_bytes_free(b);
	return rc;
}

int porter_file_read_into(const char *root, const char *path, uint64_t offset, void *buf,
			  size_t cap, uint64_t call_id, int timeout_ms, size_t *n)
{
	if (n)
		*n = 0;
	if (!path || !n || (!buf && cap))
		return pconn_set_error(PORTER_E_INVAL, "path, buf or n is NULL");
	if (cap == 0) {
		pconn_clear_error();
		return 0; /* as read(2) of 0 bytes: nothing asked, nothing read */
	}
	int total = 0;
	porter_file_reader *rd = NULL;
	size_t got = 0;
	int rc = open_for_call(root, path, offset, cap, call_id, timeout_ms, &total, &rd);
	if (rc == 0 && rd->fd >= 0) {
		/* By descriptor: the caller's buffer is the only one. */
		rc = read_fd_into(rd, buf, cap, &got);
	} else {
		const void *p;
		size_t len;
		while (rc == 0 && (rc = porter_file_reader_read(rd, 0, total, &p, &len)) == 1) {
			if (len > cap - got)
				len = cap - got; /* never: the range asked is cap */
			memcpy((uint8_t *)buf + got, p, len);
			got += len;
			rc = 0;
		}
	}
	porter_file_reader_free(rd); /* an unfinished stream is dropped behind us */
	if (rc == 0)
		*n = got;
	return rc;
}

/* --------------------------------------------------------------- writer */

/*
 * A long write to an atomic write's temp file by descriptor does not
 * reach porterd, which reclaims a stream nobody used for file-stream-idle
 * (10 s by default) and with it the temp file: an empty chunk every
 * quarter of that (the reply to the open tells it; TOUCH_MS when it does
 * not) tells it the stream is in use, checked after every TOUCH_PIECE of
 * writing and at every porter_file_writer_write.
 */
#define TOUCH_MS 2000
#define TOUCH_PIECE (16u << 20)

struct porter_file_writer {
	uint64_t stream_id; /* 0 once committed or abandoned, or none */
	/* By descriptor: the open file (or an atomic write's temp file)
	 * porterd passed, -1 for chunks over the socket or once finished. */
	int fd;
	pconn_fdlink *fdlink; /* where fd's close is reported (pconn_fd_close) */
	int open;             /* not yet committed, failed or abandoned */
	int64_t seen;         /* pconn_now_ms() of the last request on its stream */
	/* An atomic write by descriptor: porterd counts the descriptor with
	 * its stream, so its close is not counted for the connection
	 * (pconn_fd_close_declared) but said by the commit or close of the
	 * stream (fd_closed), every time (saying it twice is harmless). */
	int declare;
	int touch_ms;   /* by descriptor: how often the stream is touched */
	unsigned flags; /* porter_file_flag bits asked at open */
	char *path;     /* for messages; owned */
};

/* Ends writer `wr` (NULL: nothing) as reader_end ends a reader. */
static int writer_end(porter_file_writer *wr, int timeout_ms, int wait)
{
	if (!wr)
		return 0;
	int rc = 0;
	if (wr->declare) {
		pconn_fd_close_declared(wr->fd, wr->fdlink);
		rc = pfile_stream_end(wr->stream_id, timeout_ms, wait, 1);
	} else {
		rc = pfile_stream_end(wr->stream_id, timeout_ms, wait, 0);
		pconn_fd_close(wr->fd, wr->fdlink);
	}
	free(wr->path);
	free(wr);
	return rc;
}

/* A write request (never repeated: an append twice is not once). */
static int write_call(Porter__V1__Request *req, int timeout_ms, Porter__V1__Response **out)
{
	return pfile_call(req, req->id, timeout_ms, PCONN_ONCE,
			  PORTER__V1__RESPONSE__BODY_FILE_WRITE, "file write", out);
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
	wo.root = pfile_root(root);
	wo.path = (char *)path;
	wo.flags = flags;
	wo.mode = mode;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_WRITE_OPEN;
	req.file_write_open = &wo;
	porter_file_writer *wr = calloc(1, sizeof(*wr));
	if (!wr)
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	wr->fd = -1;
	wr->flags = flags;
	if (timeout_ms < 0) {
		free(wr);
		return pconn_set_error(PORTER_E_INVAL, "negative timeout");
	}
	int64_t deadline = deadline_of(timeout_ms);
	/* By descriptor over the Unix socket; by chunks when porterd cannot
	 * pass one now (PORTER_E_BUSY) or it was lost on the way. */
	wo.want_fd = 1;
	int rc = write_call(&req, timeout_ms, &resp);
	if (rc == 0 && resp->file_write->fd_passed) {
		wr->stream_id = resp->file_write->stream_id;
		/* A quarter of the daemon's file-stream-idle, which an older
		 * porterd does not tell (its default is 10 s). */
		uint32_t idle = resp->file_write->idle_ms;
		wr->touch_ms = idle ? (int)(idle / 4 ? idle / 4 : 1) : TOUCH_MS;
		porter__v1__response__free_unpacked(resp, NULL);
		resp = NULL;
		if ((flags & PORTER_FILE_ATOMIC) && !wr->stream_id) {
			pconn_fdlink *link;
			int fd = pconn_take_fd(&link);
			pconn_fd_close(fd, link);
			rc = pconn_set_error(PORTER_E_PROTOCOL, "no stream id in the reply");
		} else if ((wr->fd = pfd_take(O_WRONLY, &wr->fdlink)) < 0) {
			rc = wr->fd == -1 ? PORTER_E_BUSY : wr->fd;
			/* The temp file nobody can write: dropped behind us.
			 * A descriptor that never arrived is said closed; one
			 * refused was closed and counted by pfd_take. */
			pfile_stream_end(wr->stream_id, 0, 0,
					 (flags & PORTER_FILE_ATOMIC) && wr->fd == -1);
			wr->fd = -1;
			wr->stream_id = 0;
		} else if (flags & PORTER_FILE_ATOMIC) {
			wr->declare = 1;
		}
	}
	if (rc == PORTER_E_BUSY && (rc = left_ms(deadline)) > 0) {
		wo.want_fd = 0;
		rc = write_call(&req, rc, &resp);
	}
	if (rc < 0) {
		free(wr);
		return rc;
	}
	if (resp) {
		wr->stream_id = resp->file_write->stream_id;
		porter__v1__response__free_unpacked(resp, NULL);
		if (!wr->stream_id) {
			free(wr);
			return pconn_set_error(PORTER_E_PROTOCOL, "no stream id in the reply");
		}
	} else {
		wr->path = strdup(path);
	}
	wr->open = 1;
	wr->seen = pconn_now_ms();
	*out = wr;
	return 0;
}

static int writer_touch(porter_file_writer *wr, uint64_t call_id, int64_t deadline)
{
	int t = left_ms(deadline);
	if (t < 0)
		return t;
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileWriteChunk wc = PORTER__V1__FILE_WRITE_CHUNK__INIT;
	Porter__V1__Response *resp = NULL;
	wc.stream_id = wr->stream_id;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_WRITE_CHUNK;
	req.file_write_chunk = &wc;
	int rc = write_call(&req, t, &resp);
	if (rc == 0)
		porter__v1__response__free_unpacked(resp, NULL);
	wr->seen = pconn_now_ms();
	return rc;
}

int porter_file_writer_write(porter_file_writer *wr, const void *data, size_t len, uint64_t call_id,
			     int timeout_ms)
{
	if (!wr || (!data && len))
		return pconn_set_error(PORTER_E_INVAL, "writer or data is NULL");
	if (!wr->open)
		return pconn_set_error(PORTER_E_INVAL, "the write was committed or abandoned");
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "negative timeout");
	int64_t deadline = deadline_of(timeout_ms);
	if (wr->fd >= 0) {
		const uint8_t *p = data;
		int rc = 0;
		do {
			size_t n = len < TOUCH_PIECE ? len : TOUCH_PIECE;
			rc = pfd_write(wr->fd, p, n, deadline, wr->path);
			p += n;
			len -= n;
			if (rc == 0 && wr->stream_id && pconn_now_ms() - wr->seen >= wr->touch_ms)
				rc = writer_touch(wr, call_id, deadline);
		} while (rc == 0 && len);
		/* A failed write leaves the file as the byte path's would: a
		 * plain one written up to there, an atomic one never
		 * committed. */
		if (rc < 0 && rc != PORTER_E_TIMEOUT)
			wr->open = 0;
		return rc;
	}
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
			if (rc != PORTER_E_TIMEOUT && rc != PORTER_E_BUSY) {
				wr->stream_id = 0;
				wr->open = 0;
			}
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
	if (!wr->open)
		return pconn_set_error(PORTER_E_INVAL, "the write was committed or abandoned");
	if (wr->fd >= 0 && wr->declare) {
		/* porterd keeps its own copy of an atomic write's temp file
		 * and fsyncs that (the same file) at the commit. */
		pconn_fd_close_declared(wr->fd, wr->fdlink);
		wr->fd = -1;
		wr->fdlink = NULL;
	} else if (wr->fd >= 0) {
		/* A plain write is finished here. */
		int rc = pfd_finish(wr->fd, wr->fdlink, (wr->flags & PORTER_FILE_SYNC) != 0,
				    wr->path);
		wr->fd = -1;
		wr->fdlink = NULL;
		wr->open = 0;
		return rc;
	}
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileWriteCommit wc = PORTER__V1__FILE_WRITE_COMMIT__INIT;
	Porter__V1__Response *resp = NULL;
	wc.stream_id = wr->stream_id;
	wc.fd_closed = wr->declare;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_WRITE_COMMIT;
	req.file_write_commit = &wc;
	int rc = write_call(&req, timeout_ms, &resp);
	/* Success or not, the daemon has finished with the stream, except
	 * when the reply never came (then the close drops it). */
	if (rc == 0 || (rc != PORTER_E_TIMEOUT && rc != PORTER_E_BUSY))
		wr->stream_id = 0;
	/* Committed or failed; a commit whose reply never came may be asked
	 * again (a descriptor is closed by then: porterd has its own). */
	wr->open = wr->stream_id != 0;
	if (rc == 0)
		porter__v1__response__free_unpacked(resp, NULL);
	return rc;
}

int porter_file_writer_close(porter_file_writer *wr, int timeout_ms)
{
	return writer_end(wr, timeout_ms, 1);
}

void porter_file_writer_free(porter_file_writer *wr)
{
	writer_end(wr, 0, 0);
}

int porter_file_write(const char *root, const char *path, const void *data, size_t len,
		      unsigned flags, unsigned mode, uint64_t call_id, int timeout_ms)
{
	if (!path || (!data && len))
		return pconn_set_error(PORTER_E_INVAL, "path or data is NULL");
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "negative timeout");
	if (len > WRITE_ONE_SHOT || !(flags & PORTER_FILE_ATOMIC) || len > ATOMIC_BY_FD) {
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
	fw.root = pfile_root(root);
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
