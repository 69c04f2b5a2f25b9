/* fswork - file requests' system calls on the thread pool; see fswork.h. */
#include "fswork.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clients.h"
#include "fsconfine.h"
#include "fscopy.h"
#include "fslist.h"
#include "fsnames.h"
#include "fspass.h"
#include "porter_errors.h"
#include "tmpname.h"

/* The first chunk of a read that becomes a stream is at most this: a
 * client opening hundreds of readers it never reads cost porterd a full
 * chunk (1 MiB) read and written for each, and this much fits a Unix
 * socket's default buffer and stays below the mmap threshold (no fresh
 * pages to fault in, no unmapping on the loop). Later chunks, asked for
 * by a reader that reads, are full. */
#define FIRST_CHUNK (256u * 1024u)

#define F_CREATE PORTER__V1__FILE_WRITE_FLAG__FILE_CREATE
#define F_TRUNCATE PORTER__V1__FILE_WRITE_FLAG__FILE_TRUNCATE
#define F_APPEND PORTER__V1__FILE_WRITE_FLAG__FILE_APPEND
#define F_EXCLUSIVE PORTER__V1__FILE_WRITE_FLAG__FILE_EXCLUSIVE
#define F_ATOMIC PORTER__V1__FILE_WRITE_FLAG__FILE_ATOMIC
#define F_SYNC PORTER__V1__FILE_WRITE_FLAG__FILE_SYNC

static uint32_t chunk_max = 1u << 20;

void fswork_init(uint32_t chunk)
{
	chunk_max = chunk ? chunk : 1u << 20;
}

uint32_t fswork_chunk(uint32_t asked)
{
	uint32_t chunk = asked && asked < chunk_max ? asked : chunk_max;
	return chunk < 1 ? 1 : chunk;
}

/* ---------------------------------------------------------- outcomes */

/* Writes "'path' in root 'name'" for `path` (NULL: the job's own). */
static void where(const fs_job *j, const char *path, char *buf, size_t cap)
{
	if (!path && j->st && j->st->where) {
		snprintf(buf, cap, "%s", j->st->where);
		return;
	}
	if (!path)
		path = j->path ? j->path : "";
	snprintf(buf, cap, "'%s' in root '%s'", path[0] ? path : ".",
		 j->root ? j->root->name : "?");
}

/*
 * Records that `op` ("open", "write", ...) on `path` (NULL: the job's
 * path) failed with errno value `e` (positive): the code from the one
 * mapping (fsconfine_code) and a message that names both. `creating`: the
 * operation makes its target (a missing directory on the way, not the
 * target, is then what ENOENT means). Returns the code.
 */
static int fail_at(fs_job *j, int e, const char *op, const char *path, int creating)
{
	char w[320];
	where(j, path, w, sizeof(w));
	j->code = fsconfine_code(e);
	j->err = e;
	snprintf(j->msg, sizeof(j->msg), "cannot %s %s: %s", op, w, fsconfine_reason(e, creating));
	return j->code;
}

static int fail_errno(fs_job *j, int e, const char *op)
{
	return fail_at(j, e, op, NULL, 0);
}

/* A failure that is not an errno: `code` with "cannot OP 'path' in root
 * 'name': why". */
static int fail_code(fs_job *j, int code, const char *op, const char *why)
{
	char w[320];
	where(j, NULL, w, sizeof(w));
	j->code = code;
	j->err = 0;
	snprintf(j->msg, sizeof(j->msg), "cannot %s %s: %s", op, w, why);
	return code;
}

/* The operation a job does, in the words of its failures. */
static const char *job_op(const fs_job *j)
{
	switch (j->kind) {
	case JOB_READ:
	case JOB_READ_NEXT:
		return "read";
	case JOB_WRITE:
	case JOB_WRITE_OPEN:
	case JOB_WRITE_CHUNK:
	case JOB_WRITE_COMMIT:
		return "write";
	case JOB_DELETE:
		return "delete";
	case JOB_STAT:
		return "stat";
	case JOB_LIST:
		return "list";
	case JOB_STREAM_CLOSE:
		return "close";
	case JOB_MKDIR:
		return "create directory";
	case JOB_RENAME:
		return "rename";
	case JOB_COPY:
		return "copy";
	case JOB_WATCH_OPEN:
		return "watch";
	}
	return "use";
}

void fswork_stopped(fs_job *j, int code, const char *when)
{
	char why[96];
	snprintf(why, sizeof(why), "%s%s%s",
		 code == PORTER_E_CANCELLED ? "cancelled" : "deadline passed", when ? " " : "",
		 when ? when : "");
	fail_code(j, code, job_op(j), why);
}

/* Whether the job should give up now: cancelled or past its deadline
 * (the code and words recorded). */
static int should_stop(fs_job *j)
{
	if (atomic_load(&j->stop)) {
		fswork_stopped(j, PORTER_E_CANCELLED, NULL);
		return 1;
	}
	if (uv_hrtime() >= j->deadline_ns) {
		fswork_stopped(j, PORTER_E_TIMEOUT, NULL);
		return 1;
	}
	return 0;
}

int fswork_file_type(mode_t m)
{
	if (S_ISREG(m))
		return PORTER__V1__FILE_TYPE__FILE_TYPE_REGULAR;
	if (S_ISDIR(m))
		return PORTER__V1__FILE_TYPE__FILE_TYPE_DIRECTORY;
	if (S_ISLNK(m))
		return PORTER__V1__FILE_TYPE__FILE_TYPE_SYMLINK;
	return PORTER__V1__FILE_TYPE__FILE_TYPE_OTHER;
}

/* Returns 0 or a positive errno value. */
static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* How the job's paths resolve (fsconfine.h): crossing mount points inside
 * the root only when the root allows it. */
static unsigned confine_opts(const fs_job *j)
{
	return j->root && j->root->cross_mounts ? FSCONFINE_CROSS_MOUNTS : 0;
}

int fswork_fail(fs_job *j, int e, const char *op, const char *path, int creating)
{
	return fail_at(j, e, op, path, creating);
}

int fswork_fail_code(fs_job *j, int code, const char *op, const char *why)
{
	return fail_code(j, code, op, why);
}

int fswork_should_stop(fs_job *j)
{
	return should_stop(j);
}

unsigned fswork_confine_opts(const fs_job *j)
{
	return confine_opts(j);
}

/* Opens the directory that holds `path`'s last component, confined to the
 * job's root: the new descriptor in `*dfd` and the name in `*base`
 * (pointing into `path`). Returns 0 or the failure code. */
int fswork_open_parent(fs_job *j, const char *path, int flags, const char *op, int *dfd,
		       const char **base)
{
	char *dir = NULL;
	int e = fsconfine_split(path, &dir, base);
	if (e)
		return fail_at(j, e, op, path, 0);
	e = fsconfine_open(j->rootfd, dir, flags | O_DIRECTORY, 0, confine_opts(j), dfd);
	free(dir);
	return e ? fail_at(j, e, op, path, 1) : 0;
}

/* ------------------------------------------------------------- reads */

int fswork_hold(fs_job *j, uint64_t n, const char *op)
{
	/* Out of memory for the counters: nothing is counted, as for a
	 * connection whose counters could not be made. */
	if (!j->held_acct && !(j->held_acct = clients_acct_ref(j->uid)))
		return 0;
	if (!clients_take(j->held_acct, CLIENTS_BUFFERED, n, j->held_max)) {
		char why[200];
		snprintf(why, sizeof(why),
			 "uid %u holds too many buffered bytes (uid-max-buffered = %llu) for "
			 "%llu bytes more",
			 (unsigned)j->uid, (unsigned long long)j->held_max, (unsigned long long)n);
		fail_code(j, PORTER_E_BUSY, op, why);
		return -1;
	}
	j->held += n;
	return 0;
}

void fswork_unhold(fs_job *j)
{
	clients_put(j->held_acct, CLIENTS_BUFFERED, j->held);
	j->held = 0;
	clients_acct_unref(j->held_acct);
	j->held_acct = NULL;
}

static void read_chunk(fs_job *j, int fd, uint64_t pos, uint64_t end, uint32_t chunk)
{
	uint64_t want = end - pos;
	if (want > chunk)
		want = chunk;
	if (fswork_hold(j, want ? want : 1, "read") != 0)
		return;
	j->data = malloc(want ? want : 1);
	if (!j->data) {
		fail_errno(j, ENOMEM, "read");
		return;
	}
	size_t got = 0;
	while (got < want) {
		ssize_t n = pread(fd, j->data + got, want - got, (off_t)(pos + got));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fail_errno(j, errno, "read");
			return;
		}
		if (n == 0)
			break; /* the file shrank: end early */
		got += (size_t)n;
	}
	j->len = got;
	j->offset = pos;
}

fs_stream *fswork_stream_new(fs_job *j, enum fsstream_kind kind)
{
	fs_stream *s = fsstream_new(j->uid, j->instance, j->worker, j->conn_serial, kind);
	if (!s)
		return NULL;
	char w[320];
	where(j, NULL, w, sizeof(w));
	s->where = strdup(w); /* NULL is fine: messages then say less */
	s->close_on_pool = j->root && j->root->cross_mounts;
	return s;
}

static void do_read(fs_job *j)
{
	Porter__V1__FileRead *m = j->r->msg->file_read;
	uint32_t chunk = fswork_chunk(m->chunk_size);
	j->chunk = chunk;
	/* O_NONBLOCK: opening a FIFO must not park a pool thread waiting
	 * for a writer (it is refused below); no effect on regular files. */
	int fd = -1;
	const int of = O_RDONLY | O_NONBLOCK;
	int e = fsconfine_open(j->rootfd, m->path, of, 0, confine_opts(j), &fd);
	if (e) {
		fail_errno(j, e, "open");
		return;
	}
	struct stat sb;
	if (fstat(fd, &sb) < 0) {
		fail_errno(j, errno, "stat");
		goto out;
	}
	if (S_ISDIR(sb.st_mode)) {
		fail_errno(j, EISDIR, "read");
		goto out;
	}
	if (S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode)) {
		/* Reads from these block a pool thread for ever. */
		fail_code(j, PORTER_E_INVAL, "read", "not a regular file");
		goto out;
	}
	uint64_t size = (uint64_t)sb.st_size;
	if (j->want_fd && !fspass_small_read(m, size) && fspass_read(j, &fd, &sb, of) == 0)
		return;
	uint64_t pos = m->offset > size ? size : m->offset;
	uint64_t end = size;
	if (m->length && m->length < size - pos)
		end = pos + m->length;
	if (size == 0) {
		/* Size unknown (a /proc or /sys file) or empty: read until
		 * end of file, which ends the stream. */
		pos = m->offset;
		end = m->length && m->length < UINT64_MAX - pos ? pos + m->length : UINT64_MAX;
	}
	j->file_size = size;
	/* What one full chunk holds is answered whole (no stream); a batch
	 * member gets a single chunk, so a full one. */
	uint32_t first = chunk;
	if (first > FIRST_CHUNK && end - pos > chunk && !j->r->batch)
		first = FIRST_CHUNK;
	read_chunk(j, fd, pos, end, first);
	if (j->code)
		goto out;
	pos += j->len;
	if (pos < end && j->len > 0) {
		fs_stream *s = fswork_stream_new(j, FSSTREAM_READ);
		if (!s) {
			fail_errno(j, ENOMEM, "read");
			goto out;
		}
		s->fd = fd;
		fd = -1;
		s->pos = pos;
		s->end = end;
		s->file_size = size;
		s->flags = chunk;
		j->new_stream = s;
		j->stream_id = s->id;
	}
out:
	if (fd >= 0)
		close(fd);
}

static void do_read_next(fs_job *j)
{
	fs_stream *s = j->st;
	read_chunk(j, s->fd, s->pos, s->end, s->flags);
	j->file_size = s->file_size;
	if (j->code) {
		j->drop_stream = 1;
		return;
	}
	s->pos += j->len;
	if (s->pos < s->end && j->len > 0)
		j->stream_id = s->id;
	else
		j->drop_stream = 1;
}

/* ------------------------------------------------------------ writes */

/* Flags of a write request, checked. Returns 0 or PORTER_E_INVAL. */
static int check_flags(fs_job *j, uint32_t f)
{
	const uint32_t known = 63;
	if (f & ~known)
		return fail_code(j, PORTER_E_INVAL, "write", "unknown write flags");
	if ((f & F_ATOMIC) && (f & F_APPEND))
		return fail_code(j, PORTER_E_INVAL, "write",
				 "ATOMIC and APPEND exclude each other");
	return 0;
}

/* Names the temp file of stream `s` (tmpname.h: 64 random bits, a name
 * from the clock could be guessed and planted ahead by another writer of
 * the directory, and a tag only porterd can make, so that watches know
 * porterd's temp files from a client's; O_EXCL and link(2) still keep
 * names apart). Returns 0, or EAGAIN when the kernel gives no random
 * bytes (s->tmpname is then empty). */
static int tmp_name(fs_stream *s)
{
	_Static_assert(sizeof(s->tmpname) >= TMPNAME_SIZE, "fs_stream.tmpname holds a tmpname");
	int e = tmpname_make(s->tmpname);
	/* Watches of other directories report a file of this name. */
	struct stat sb;
	if (!e && fstat(s->dirfd, &sb) == 0)
		tmpname_place(s->tmpname, (uint64_t)sb.st_dev, (uint64_t)sb.st_ino);
	return e;
}

/* Makes the temp file of an atomic write in s->dirfd: O_TMPFILE, else a
 * unique name. Returns 0 or a positive errno value. */
static int make_temp(fs_stream *s, mode_t mode)
{
	s->fd = openat(s->dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
	if (s->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		/* No O_TMPFILE on this file system: a unique name instead. */
		for (int tries = 0; tries < 16 && s->fd < 0; tries++) {
			if ((errno = tmp_name(s)) != 0)
				break;
			s->fd = openat(s->dirfd, s->tmpname,
				       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
			if (s->fd < 0) {
				int e = errno;
				tmpname_retire(s->tmpname); /* not porterd's file */
				errno = e;
				if (e != EEXIST)
					break;
			}
		}
		if (s->fd < 0)
			s->tmpname[0] = '\0';
	}
	if (s->fd < 0)
		return errno;
	fchmod(s->fd, mode); /* the umask must not narrow what was asked */
	return 0;
}

/*
 * Opens the target of a write: for an atomic write the parent directory
 * and a temp file in it, otherwise the file itself. Fills `s`. Returns 0
 * or the failure code.
 */
static int open_for_write(fs_job *j, fs_stream *s, const char *path, uint32_t f, uint32_t mode)
{
	/* Never setuid, setgid or sticky, never wider than file-max-mode,
	 * whoever asks. */
	mode = fsroot_file_mode(mode);
	s->flags = f;
	int creating = (f & (F_CREATE | F_EXCLUSIVE)) != 0;
	if (!(f & F_ATOMIC)) {
		int of = O_WRONLY;
		if (creating)
			of |= O_CREAT;
		if (f & F_EXCLUSIVE)
			of |= O_EXCL;
		if (f & F_TRUNCATE)
			of |= O_TRUNC;
		if (f & F_APPEND)
			of |= O_APPEND;
		/* O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead
		 * of parking a pool thread; no effect on regular files. */
		int e = fsconfine_open(j->rootfd, path, of | O_NONBLOCK, mode, confine_opts(j),
				       &s->fd);
		if (e)
			return fail_at(j, e, "open", path, creating);
		struct stat sb;
		if (fstat(s->fd, &sb) == 0 && (S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode)))
			return fail_code(j, PORTER_E_INVAL, "write", "not a regular file");
		return 0;
	}

	/* A real descriptor, not O_PATH: fsync needs one. */
	const char *base = NULL;
	int rc = fswork_open_parent(j, path, O_RDONLY, "write", &s->dirfd, &base);
	if (rc)
		return rc;
	s->base = strdup(base);
	if (!s->base)
		return fail_errno(j, ENOMEM, "write");
	/* Refuse a directory or an existing file (exclusive) early; the final
	 * link or rename checks again. */
	struct stat sb;
	int le = fsconfine_lstat(s->dirfd, base, confine_opts(j), &sb);
	if (le == FSCONFINE_EMOUNT) /* the rename could not replace it anyway */
		return fail_at(j, le, "write", path, 0);
	if (le == 0) {
		if (S_ISDIR(sb.st_mode))
			return fail_at(j, EISDIR, "write", path, 0);
		if (f & F_EXCLUSIVE)
			return fail_at(j, EEXIST, "create", path, 0);
		if (S_ISREG(sb.st_mode)) /* a replace keeps the permissions, masked */
			mode = fsroot_file_mode(sb.st_mode & 0777);
	}
	int e = make_temp(s, mode);
	return e ? fail_at(j, e, "create a temp file for", path, 1) : 0;
}

/* Gives an O_TMPFILE temp file the name `name` in s->dirfd. Returns 0 or a
 * positive errno value. */
static int link_tmpfile(fs_stream *s, const char *name)
{
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", s->fd);
	if (linkat(AT_FDCWD, proc, s->dirfd, name, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	int e = errno;
	if (e == ENOENT && access("/proc/self/fd", F_OK) != 0) {
		/* No /proc: AT_EMPTY_PATH (needs CAP_DAC_READ_SEARCH). */
		if (linkat(s->fd, "", s->dirfd, name, AT_EMPTY_PATH) == 0)
			return 0;
		e = errno;
	}
	return e;
}

/*
 * Finishes a write stream: fsync, and for an atomic write the link or
 * rename over the target and the fsync of the directory. A job told to
 * stop before the rename leaves the target untouched.
 */
static int commit(fs_job *j, fs_stream *s)
{
	int sync = s->flags & (F_SYNC | F_ATOMIC);
	if (sync && fsync(s->fd) < 0)
		return fail_errno(j, errno, "sync");
	if (!(s->flags & F_ATOMIC)) {
		close(s->fd);
		s->fd = -1;
		return 0;
	}
	if (should_stop(j))
		return j->code;
	int excl = s->flags & F_EXCLUSIVE;
	int e = 0;
	if (!s->tmpname[0] && excl) {
		/* link(2) never replaces: an exclusive create in one step. */
		e = link_tmpfile(s, s->base);
		if (e)
			return fail_at(j, e, "create", NULL, 1);
	} else {
		if (!s->tmpname[0]) {
			for (int tries = 0; tries < 16; tries++) {
				if ((e = tmp_name(s)) != 0)
					break;
				e = link_tmpfile(s, s->tmpname);
				if (e)
					tmpname_retire(s->tmpname); /* not porterd's file */
				if (e != EEXIST)
					break;
			}
			if (e) {
				s->tmpname[0] = '\0';
				return fail_at(j, e, "name the temp file of", NULL, 1);
			}
		}
		if (renameat2(s->dirfd, s->tmpname, s->dirfd, s->base,
			      excl ? RENAME_NOREPLACE : 0) < 0)
			return fail_at(j, errno, "replace", NULL, 1);
		/* The name left with the rename: a file of that name now is a
		 * client's (tmpname.h). */
		tmpname_retire(s->tmpname);
		s->tmpname[0] = '\0';
	}
	if (fsync(s->dirfd) < 0)
		return fail_errno(j, errno, "sync the directory of");
	return 0;
}

static int write_data(fs_job *j, fs_stream *s, const uint8_t *p, size_t len)
{
	int e = write_all(s->fd, p, len);
	if (e)
		return fail_errno(j, e, "write");
	s->total += len;
	j->written = len;
	j->total = s->total;
	return 0;
}

static void do_write(fs_job *j)
{
	Porter__V1__FileWrite *m = j->r->msg->file_write;
	fs_stream *s = fswork_stream_new(j, FSSTREAM_WRITE);
	if (!s) {
		fail_errno(j, ENOMEM, "write");
		return;
	}
	if (check_flags(j, m->flags) == 0 &&
	    open_for_write(j, s, m->path, m->flags, m->mode) == 0 && !should_stop(j) &&
	    write_data(j, s, m->data.data, m->data.len) == 0)
		commit(j, s);
	fsstream_destroy(s);
}

static void do_write_open(fs_job *j)
{
	Porter__V1__FileWriteOpen *m = j->r->msg->file_write_open;
	fs_stream *s = fswork_stream_new(j, FSSTREAM_WRITE);
	if (!s) {
		fail_errno(j, ENOMEM, "write");
		return;
	}
	if (check_flags(j, m->flags) == 0 &&
	    open_for_write(j, s, m->path, m->flags, m->mode) == 0) {
		if (j->want_fd && fspass_write(j, s) == 0 && !(m->flags & F_ATOMIC)) {
			/* A plain write by descriptor needs no stream: the
			 * client writes, fsyncs if it asked for FILE_SYNC,
			 * and closes. */
			fsstream_destroy(s);
			return;
		}
		j->new_stream = s;
		j->stream_id = s->id;
	} else {
		fsstream_destroy(s);
	}
}

static void do_write_chunk(fs_job *j)
{
	Porter__V1__FileWriteChunk *m = j->r->msg->file_write_chunk;
	if (write_data(j, j->st, m->data.data, m->data.len))
		j->drop_stream = 1;
}

static void do_write_commit(fs_job *j)
{
	commit(j, j->st);
	j->total = j->st->total;
	j->drop_stream = 1;
}

/* ------------------------------------------------------------- copies */

static void do_copy(fs_job *j)
{
	Porter__V1__FileCopy *m = j->r->msg->file_copy;
	int in = -1;
	fs_stream *s = NULL;
	int e = fsconfine_open(j->rootfd, m->from, O_RDONLY | O_NONBLOCK, 0, confine_opts(j), &in);
	if (e) {
		fail_at(j, e, "copy", m->from, 0);
		return;
	}
	struct stat sb;
	if (fstat(in, &sb) < 0) {
		fail_at(j, errno, "copy", m->from, 0);
		goto out;
	}
	if (S_ISDIR(sb.st_mode)) {
		fail_at(j, EISDIR, "copy", m->from, 0);
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) { /* not "invalid path or name" */
		fail_code(j, PORTER_E_INVAL, "copy", "not a regular file");
		goto out;
	}
	/* The target is an atomic write: temp file, fsync, rename (or link
	 * for no_replace), fsync of the directory. */
	s = fswork_stream_new(j, FSSTREAM_WRITE);
	if (!s) {
		fail_errno(j, ENOMEM, "copy");
		goto out;
	}
	j->path = m->to;
	uint32_t f = F_ATOMIC | (m->no_replace ? F_EXCLUSIVE : 0);
	if (open_for_write(j, s, m->to, f, sb.st_mode & 0777))
		goto out;
	e = fscopy_data(j, in, s->fd, (uint64_t)sb.st_size);
	if (e > 0)
		fail_at(j, e, "copy to", m->to, 1);
	else if (e == 0)
		commit(j, s);
out:
	fsstream_destroy(s);
	close(in);
}

/* ------------------------------------------------------------ dispatch */

void fswork_run(uv_work_t *w)
{
	fs_job *j = w->data;
	if (j->kind != JOB_STREAM_CLOSE && j->kind != JOB_WRITE_COMMIT && should_stop(j)) {
		if (j->st)
			j->drop_stream = j->st->writing; /* a half-written stream is useless */
		return;
	}
	if (j->root) {
		/* A per-user root: the client's own directory, made on first
		 * use. */
		int e = fsroot_dir(j->root, j->uid, &j->rootfd);
		if (e) {
			j->rootfd = -1;
			fail_at(j, e, "open", "", 1);
			return;
		}
	}
	switch (j->kind) {
	case JOB_READ:
		do_read(j);
		break;
	case JOB_READ_NEXT:
		do_read_next(j);
		break;
	case JOB_WRITE:
		do_write(j);
		break;
	case JOB_WRITE_OPEN:
		do_write_open(j);
		break;
	case JOB_WRITE_CHUNK:
		do_write_chunk(j);
		break;
	case JOB_WRITE_COMMIT:
		do_write_commit(j);
		break;
	case JOB_DELETE:
		fsnames_delete(j);
		break;
	case JOB_STAT:
		fsnames_stat(j);
		break;
	case JOB_LIST:
		fslist_run(j);
		break;
	case JOB_MKDIR:
		fsnames_mkdir(j);
		break;
	case JOB_RENAME:
		fsnames_rename(j);
		break;
	case JOB_COPY:
		do_copy(j);
		break;
	case JOB_WATCH_OPEN:
		fsnames_watch_open(j);
		break;
	case JOB_STREAM_CLOSE:
		j->drop_stream = 1;
		j->found = 1;
		break;
	}
	if (j->root) {
		fsroot_put_dir(j->root, j->rootfd);
		j->rootfd = -1;
	}
}
