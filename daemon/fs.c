/* fs - confined file operations on the thread pool; see fs.h. */
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "conn.h"
#include "fsroot.h"
#include "list.h"
#include "log.h"
#include "porter_errors.h"
#include "worker.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define TMP_PREFIX ".porter-"

/*
 * One open stream. Fields other than `link`, `busy` and `doomed` are
 * touched only by the request that holds the stream busy (its loop and
 * its thread-pool job, one after the other), so they need no lock.
 */
typedef struct fs_stream {
	list link; /* in G.streams, under G.lock */
	uint64_t id;
	uid_t uid; /* owner: uid and client instance */
	uint64_t instance;
	unsigned worker; /* the opening connection, for clean-up */
	uint64_t conn_serial;
	int writing; /* 0: read stream, 1: write stream */
	int busy;    /* a request is working on it (under G.lock) */
	int doomed;  /* drop it when the busy request ends */
	int fd;      /* the file, or the temp file of an atomic write */
	/* read streams */
	uint64_t pos, end, file_size;
	/* write streams */
	int dirfd;        /* parent directory (atomic writes), or -1 */
	char *base;       /* target name in dirfd (atomic writes) */
	char tmpname[64]; /* named temp file, "" for O_TMPFILE or none */
	uint32_t flags;
	uint64_t total; /* bytes written so far */
} fs_stream;

static struct {
	uint32_t chunk;
	uint32_t max_streams; /* open streams per connection */
	atomic_int walk;      /* resolve by walking (no openat2) */
	pthread_mutex_t lock; /* guards `streams` */
	list streams;
} G = {.lock = PTHREAD_MUTEX_INITIALIZER, .max_streams = 64, .streams = {&G.streams, &G.streams}};

/* What a job does. */
enum job_kind {
	JOB_READ,
	JOB_READ_NEXT,
	JOB_WRITE,
	JOB_WRITE_OPEN,
	JOB_WRITE_CHUNK,
	JOB_WRITE_COMMIT,
	JOB_DELETE,
	JOB_STAT,
	JOB_LIST,
	JOB_STREAM_CLOSE,
};

typedef struct fs_entry {
	char *name;
	int type;
	uint64_t size;
	int64_t mtime_ns;
} fs_entry;

/*
 * One request's work. The req (and the request message the job reads
 * from) stays alive until the job's after-work callback finishes it:
 * cancellation only sets `stop`, which the job checks between steps, and
 * the reply then carries the stop code.
 */
typedef struct fs_job {
	uv_work_t work;
	uv_timer_t timer; /* the deadline; the job is freed in its close */
	req *r;
	enum job_kind kind;
	const fsroot *root;
	int rootfd;           /* where paths resolve (fsroot_dir), or -1 */
	fs_stream *st;        /* stream held busy, or NULL */
	atomic_int stop;      /* set by the cancel hook */
	uint64_t deadline_ns; /* uv_hrtime() scale */
	uid_t uid;
	uint64_t instance;
	unsigned worker;
	uint64_t conn_serial;
	/* outcome */
	int code; /* 0 or PORTER_E_* */
	int err;  /* errno behind `code`, or 0 */
	char msg[256];
	uint8_t *data; /* read chunk, owned */
	size_t len;
	uint64_t offset, file_size, stream_id, written, total;
	int found;
	struct stat sb;
	fs_entry *entries;
	size_t n_entries;
	fs_stream *new_stream; /* created by the job, published after it */
	int drop_stream;       /* the held stream is finished */
} fs_job;

/* ------------------------------------------------------------- helpers */

static int map_errno(int e)
{
	switch (e) {
	case ENOENT:
		return PORTER_E_FILE_NOT_FOUND;
	case EACCES:
	case EPERM:
	case EROFS:
	case ETXTBSY:
		return PORTER_E_FILE_PERM;
	case EISDIR:
		return PORTER_E_FILE_ISDIR;
	case EEXIST:
	case ENOTEMPTY:
		return PORTER_E_FILE_EXISTS;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return PORTER_E_FILE_NOSPACE;
	case EXDEV:
	case ELOOP:
		return PORTER_E_FILE_ESCAPE;
	case ENOTDIR:
		return PORTER_E_FILE_NOTDIR;
	case ENAMETOOLONG:
	case EINVAL:
		return PORTER_E_INVAL;
	case ENOMEM:
		return PORTER_E_NOMEM;
	default:
		return PORTER_E_FILE_IO;
	}
}

/* Records a failure from errno `e` during `what`; returns the code. */
static int fail_errno(fs_job *j, int e, const char *what)
{
	j->code = map_errno(e);
	j->err = e;
	if (j->code == PORTER_E_FILE_ESCAPE)
		snprintf(j->msg, sizeof(j->msg), "%s: path leaves the root '%s' (%s)", what,
			 j->root ? j->root->name : "?", strerror(e));
	else
		snprintf(j->msg, sizeof(j->msg), "%s: %s", what, strerror(e));
	return j->code;
}

static int fail_code(fs_job *j, int code, const char *fmt, const char *arg)
{
	j->code = code;
	snprintf(j->msg, sizeof(j->msg), fmt, arg);
	return code;
}

/* Whether the job should give up now: cancelled or past its deadline. */
static int should_stop(fs_job *j)
{
	if (atomic_load(&j->stop)) {
		j->code = PORTER_E_CANCELLED;
		snprintf(j->msg, sizeof(j->msg), "cancelled");
		return 1;
	}
	if (uv_hrtime() >= j->deadline_ns) {
		j->code = PORTER_E_TIMEOUT;
		snprintf(j->msg, sizeof(j->msg), "deadline passed");
		return 1;
	}
	return 0;
}

/*
 * Fallback resolution: walks `path` below `rootfd` one component at a
 * time, refusing "..", absolute paths and every symlink. Returns an fd or
 * -errno.
 */
static int walk_open(int rootfd, const char *path, int flags, mode_t mode)
{
	if (path[0] == '/')
		return -EXDEV;
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	int cur = openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int rc = cur < 0 ? -errno : 0;
	char *save = NULL, *comp = strtok_r(copy, "/", &save);
	char *last = NULL;

	while (rc == 0 && comp) {
		char *next = strtok_r(NULL, "/", &save);
		if (strcmp(comp, "..") == 0) {
			rc = -EXDEV;
			break;
		}
		if (strcmp(comp, ".") == 0) {
			comp = next;
			continue;
		}
		if (!next) {
			last = comp;
			break;
		}
		int nfd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0) {
			struct stat sb;
			rc = -errno;
			if (rc == -ENOTDIR && fstatat(cur, comp, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(sb.st_mode))
				rc = -ELOOP;
			break;
		}
		close(cur);
		cur = nfd;
		comp = next;
	}
	int fd = -1;
	if (rc == 0) {
		fd = openat(cur, last ? last : ".", flags | O_NOFOLLOW | O_CLOEXEC, mode);
		struct stat lsb;
		if (fd < 0) {
			rc = -errno;
			/* O_DIRECTORY | O_NOFOLLOW on a symlink says ENOTDIR. */
			if (rc == -ENOTDIR && last &&
			    fstatat(cur, last, &lsb, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(lsb.st_mode))
				rc = -ELOOP;
		} else if (flags & O_PATH) {
			/* O_PATH | O_NOFOLLOW opens the link itself. */
			struct stat sb;
			if (fstat(fd, &sb) == 0 && S_ISLNK(sb.st_mode)) {
				close(fd);
				fd = -1;
				rc = -ELOOP;
			}
		}
	}
	if (cur >= 0)
		close(cur);
	free(copy);
	return rc < 0 ? rc : fd;
}

/*
 * Whether `path` leaves its root on its face: absolute, or more ".." than
 * names before them. Checked before any lookup so that "a/../../x" is an
 * escape whether or not "a" exists; the kernel checks the rest.
 */
static int lexical_escape(const char *path)
{
	if (path[0] == '/')
		return 1;
	long depth = 0;
	const char *p = path;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (--depth < 0)
				return 1;
		} else if (n && !(n == 1 && p[0] == '.')) {
			depth++;
		}
		p += n;
		if (*p)
			p++;
	}
	return 0;
}

/* Opens `path` (may be "", meaning the root) confined to `rootfd`. Returns
 * an fd or -errno. Thread pool. */
static int resolve_open(int rootfd, const char *path, int flags, mode_t mode)
{
	if (!path[0])
		path = ".";
	if (lexical_escape(path))
		return -EXDEV;
	if (!atomic_load(&G.walk)) {
		struct open_how how;
		memset(&how, 0, sizeof(how));
		how.flags = (uint64_t)(flags | O_CLOEXEC);
		how.mode = (flags & O_CREAT) ? mode : 0;
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
		long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if (errno != ENOSYS)
			return -errno;
		atomic_store(&G.walk, 1);
		log_warn("openat2 is not available: resolving paths by walking them");
	}
	return walk_open(rootfd, path, flags, mode);
}

/*
 * Splits `path` into its directory (a new string, "" for the root) and its
 * last component (pointing into `path`). Returns 0, or -EXDEV for a final
 * "..", -EINVAL for an empty or "." name, -ENOMEM.
 */
static int split_parent(const char *path, char **dir, const char **base)
{
	size_t n = strlen(path);
	while (n > 0 && path[n - 1] == '/')
		n--;
	size_t b = n;
	while (b > 0 && path[b - 1] != '/')
		b--;
	size_t blen = n - b;
	if (blen == 0 || (blen == 1 && path[b] == '.'))
		return -EINVAL;
	if (blen == 2 && path[b] == '.' && path[b + 1] == '.')
		return -EXDEV;
	if (n != strlen(path))
		return -EINVAL; /* a trailing slash names a directory */
	*dir = strndup(path, b);
	if (!*dir)
		return -ENOMEM;
	*base = path + b;
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int file_type(mode_t m)
{
	if (S_ISREG(m))
		return PORTER__V1__FILE_TYPE__FILE_TYPE_REGULAR;
	if (S_ISDIR(m))
		return PORTER__V1__FILE_TYPE__FILE_TYPE_DIRECTORY;
	if (S_ISLNK(m))
		return PORTER__V1__FILE_TYPE__FILE_TYPE_SYMLINK;
	return PORTER__V1__FILE_TYPE__FILE_TYPE_OTHER;
}

static uint64_t random_id(void)
{
	uint64_t id = 0;
	while (id == 0) {
		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			id = uv_hrtime() ^ ((uint64_t)rand() << 32);
	}
	return id;
}

/* Frees a stream that is no longer in the table: closes its files and
 * removes a named temp file, so an abandoned atomic write leaves nothing. */
static void stream_destroy(fs_stream *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	if (s->tmpname[0] && s->dirfd >= 0)
		unlinkat(s->dirfd, s->tmpname, 0);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->base);
	free(s);
}

static fs_stream *stream_new(fs_job *j, int writing)
{
	fs_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->id = random_id();
	s->uid = j->uid;
	s->instance = j->instance;
	s->worker = j->worker;
	s->conn_serial = j->conn_serial;
	s->writing = writing;
	s->fd = -1;
	s->dirfd = -1;
	return s;
}

/* ----------------------------------------------------- thread-pool work */

static void read_chunk(fs_job *j, int fd, uint64_t pos, uint64_t end, uint32_t chunk)
{
	uint64_t want = end - pos;
	if (want > chunk)
		want = chunk;
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

static void do_read(fs_job *j)
{
	Porter__V1__FileRead *m = j->r->msg->file_read;
	uint32_t chunk = m->chunk_size && m->chunk_size < G.chunk ? m->chunk_size : G.chunk;
	if (chunk < 1)
		chunk = 1;
	/* O_NONBLOCK: opening a FIFO must not park a pool thread waiting
	 * for a writer (it is refused below); no effect on regular files. */
	int fd = resolve_open(j->rootfd, m->path, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0) {
		fail_errno(j, -fd, "open");
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
		fail_code(j, PORTER_E_INVAL, "read: not a regular file%s", "");
		goto out;
	}
	uint64_t size = (uint64_t)sb.st_size;
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
	read_chunk(j, fd, pos, end, chunk);
	if (j->code)
		goto out;
	pos += j->len;
	if (pos < end && j->len > 0) {
		fs_stream *s = stream_new(j, 0);
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

/* Flags of a write request, checked. Returns 0 or PORTER_E_INVAL. */
static int check_flags(fs_job *j, uint32_t f)
{
	const uint32_t known = 63;
	if (f & ~known)
		return fail_code(j, PORTER_E_INVAL, "unknown write flags%s", "");
	if ((f & PORTER__V1__FILE_WRITE_FLAG__FILE_ATOMIC) &&
	    (f & PORTER__V1__FILE_WRITE_FLAG__FILE_APPEND))
		return fail_code(j, PORTER_E_INVAL, "ATOMIC and APPEND exclude each other%s", "");
	return 0;
}

/*
 * Opens the target of a write: for an atomic write the parent directory
 * and a temp file in it (O_TMPFILE, else a unique name), otherwise the file
 * itself. Fills `s`. Returns 0 or the failure code.
 */
static int open_for_write(fs_job *j, fs_stream *s, const char *path, uint32_t f, uint32_t mode)
{
	/* Never setuid, setgid or sticky, never wider than file-max-mode,
	 * whoever asks. */
	mode = fsroot_file_mode(mode);
	s->flags = f;
	if (!(f & PORTER__V1__FILE_WRITE_FLAG__FILE_ATOMIC)) {
		int of = O_WRONLY;
		if (f & (PORTER__V1__FILE_WRITE_FLAG__FILE_CREATE |
			 PORTER__V1__FILE_WRITE_FLAG__FILE_EXCLUSIVE))
			of |= O_CREAT;
		if (f & PORTER__V1__FILE_WRITE_FLAG__FILE_EXCLUSIVE)
			of |= O_EXCL;
		if (f & PORTER__V1__FILE_WRITE_FLAG__FILE_TRUNCATE)
			of |= O_TRUNC;
		if (f & PORTER__V1__FILE_WRITE_FLAG__FILE_APPEND)
			of |= O_APPEND;
		/* O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead
		 * of parking a pool thread; no effect on regular files. */
		int fd = resolve_open(j->rootfd, path, of | O_NONBLOCK, mode);
		if (fd < 0)
			return fail_errno(j, -fd, "open");
		s->fd = fd;
		struct stat sb;
		if (fstat(fd, &sb) == 0 && (S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode)))
			return fail_code(j, PORTER_E_INVAL, "write: not a regular file%s", "");
		return 0;
	}

	char *dir = NULL;
	const char *base = NULL;
	int rc = split_parent(path, &dir, &base);
	if (rc < 0)
		return fail_errno(j, -rc, "path");
	/* A real descriptor, not O_PATH: fsync needs one. */
	s->dirfd = resolve_open(j->rootfd, dir, O_RDONLY | O_DIRECTORY, 0);
	free(dir);
	if (s->dirfd < 0) {
		int e = -s->dirfd;
		s->dirfd = -1;
		return fail_errno(j, e, "open directory");
	}
	s->base = strdup(base);
	if (!s->base)
		return fail_errno(j, ENOMEM, "open");
	/* Refuse a directory or an existing file (exclusive) early; the final
	 * link or rename checks again. */
	struct stat sb;
	if (fstatat(s->dirfd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(sb.st_mode))
			return fail_errno(j, EISDIR, "write");
		if (f & PORTER__V1__FILE_WRITE_FLAG__FILE_EXCLUSIVE)
			return fail_errno(j, EEXIST, "create");
		if (S_ISREG(sb.st_mode)) /* a replace keeps the permissions, masked */
			mode = fsroot_file_mode(sb.st_mode & 0777);
	}
	s->fd = openat(s->dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
	if (s->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		/* No O_TMPFILE on this file system: a unique name instead. */
		for (int tries = 0; tries < 16 && s->fd < 0; tries++) {
			snprintf(s->tmpname, sizeof(s->tmpname), TMP_PREFIX "%016llx.tmp",
				 (unsigned long long)random_id());
			s->fd = openat(s->dirfd, s->tmpname,
				       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
			if (s->fd < 0 && errno != EEXIST)
				break;
		}
		if (s->fd < 0)
			s->tmpname[0] = '\0';
	}
	if (s->fd < 0)
		return fail_errno(j, errno, "create temp file");
	fchmod(s->fd, mode); /* the umask must not narrow what was asked */
	return 0;
}

/* Gives an O_TMPFILE temp file the name `name` in s->dirfd. */
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
	return -e;
}

/*
 * Finishes a write stream: fsync, and for an atomic write the link or
 * rename over the target and the fsync of the directory. A job told to
 * stop before the rename leaves the target untouched.
 */
static int commit(fs_job *j, fs_stream *s)
{
	int sync = s->flags & (PORTER__V1__FILE_WRITE_FLAG__FILE_SYNC |
			       PORTER__V1__FILE_WRITE_FLAG__FILE_ATOMIC);
	if (sync && fsync(s->fd) < 0)
		return fail_errno(j, errno, "fsync");
	if (!(s->flags & PORTER__V1__FILE_WRITE_FLAG__FILE_ATOMIC)) {
		close(s->fd);
		s->fd = -1;
		return 0;
	}
	if (should_stop(j))
		return j->code;
	int excl = s->flags & PORTER__V1__FILE_WRITE_FLAG__FILE_EXCLUSIVE;
	int rc;
	if (!s->tmpname[0] && excl) {
		/* link(2) never replaces: an exclusive create in one step. */
		rc = link_tmpfile(s, s->base);
		if (rc < 0)
			return fail_errno(j, -rc, "link");
	} else {
		if (!s->tmpname[0]) {
			for (int tries = 0; tries < 16; tries++) {
				snprintf(s->tmpname, sizeof(s->tmpname), TMP_PREFIX "%016llx.tmp",
					 (unsigned long long)random_id());
				rc = link_tmpfile(s, s->tmpname);
				if (rc != -EEXIST)
					break;
			}
			if (rc < 0) {
				s->tmpname[0] = '\0';
				return fail_errno(j, -rc, "link temp file");
			}
		}
		rc = renameat2(s->dirfd, s->tmpname, s->dirfd, s->base,
			       excl ? RENAME_NOREPLACE : 0);
		if (rc < 0)
			return fail_errno(j, errno, "rename");
		s->tmpname[0] = '\0';
	}
	if (fsync(s->dirfd) < 0)
		return fail_errno(j, errno, "fsync directory");
	return 0;
}

static int write_data(fs_job *j, fs_stream *s, const uint8_t *p, size_t len)
{
	int rc = write_all(s->fd, p, len);
	if (rc < 0)
		return fail_errno(j, -rc, "write");
	s->total += len;
	j->written = len;
	j->total = s->total;
	return 0;
}

static void do_write(fs_job *j)
{
	Porter__V1__FileWrite *m = j->r->msg->file_write;
	fs_stream *s = stream_new(j, 1);
	if (!s) {
		fail_errno(j, ENOMEM, "write");
		return;
	}
	if (check_flags(j, m->flags) == 0 &&
	    open_for_write(j, s, m->path, m->flags, m->mode) == 0 && !should_stop(j) &&
	    write_data(j, s, m->data.data, m->data.len) == 0)
		commit(j, s);
	stream_destroy(s);
}

static void do_write_open(fs_job *j)
{
	Porter__V1__FileWriteOpen *m = j->r->msg->file_write_open;
	fs_stream *s = stream_new(j, 1);
	if (!s) {
		fail_errno(j, ENOMEM, "write");
		return;
	}
	if (check_flags(j, m->flags) == 0 &&
	    open_for_write(j, s, m->path, m->flags, m->mode) == 0) {
		j->new_stream = s;
		j->stream_id = s->id;
	} else {
		stream_destroy(s);
	}
}

static void do_write_chunk(fs_job *j)
{
	Porter__V1__FileWriteChunk *m = j->r->msg->file_write_chunk;
	if (write_data(j, j->st, m->data.data, m->data.len) < 0)
		j->drop_stream = 1;
}

static void do_write_commit(fs_job *j)
{
	commit(j, j->st);
	j->total = j->st->total;
	j->drop_stream = 1;
}

static void do_delete(fs_job *j)
{
	Porter__V1__FileDelete *m = j->r->msg->file_delete;
	char *dir = NULL;
	const char *base = NULL;
	int rc = split_parent(m->path, &dir, &base);
	if (rc < 0) {
		fail_errno(j, -rc, "path");
		return;
	}
	int dfd = resolve_open(j->rootfd, dir, O_PATH | O_DIRECTORY, 0);
	free(dir);
	if (dfd < 0) {
		fail_errno(j, -dfd, "open directory");
		return;
	}
	if (unlinkat(dfd, base, m->directory ? AT_REMOVEDIR : 0) < 0)
		fail_errno(j, errno, "delete");
	close(dfd);
}

static void do_stat(fs_job *j)
{
	int fd = resolve_open(j->rootfd, j->r->msg->file_stat->path, O_PATH, 0);
	if (fd < 0) {
		fail_errno(j, -fd, "open");
		return;
	}
	if (fstat(fd, &j->sb) < 0)
		fail_errno(j, errno, "stat");
	close(fd);
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const fs_entry *)a)->name, ((const fs_entry *)b)->name);
}

static void do_list(fs_job *j)
{
	int fd = resolve_open(j->rootfd, j->r->msg->file_list->path, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0) {
		fail_errno(j, -fd, "open directory");
		return;
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		fail_errno(j, errno, "open directory");
		close(fd);
		return;
	}
	size_t cap = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat sb;
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* removed meanwhile */
		if (j->n_entries == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			fs_entry *ne = realloc(j->entries, ncap * sizeof(*ne));
			if (!ne) {
				fail_errno(j, ENOMEM, "list");
				break;
			}
			j->entries = ne;
			cap = ncap;
		}
		fs_entry *e = &j->entries[j->n_entries];
		e->name = strdup(de->d_name);
		if (!e->name) {
			fail_errno(j, ENOMEM, "list");
			break;
		}
		e->type = file_type(sb.st_mode);
		e->size = (uint64_t)sb.st_size;
		e->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
		j->n_entries++;
	}
	closedir(d);
	if (!j->code)
		qsort(j->entries, j->n_entries, sizeof(*j->entries), entry_cmp);
}

static void job_run(uv_work_t *w)
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
			fail_errno(j, e, "open the user's directory");
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
		do_delete(j);
		break;
	case JOB_STAT:
		do_stat(j);
		break;
	case JOB_LIST:
		do_list(j);
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

/* --------------------------------------------------------- loop side */

static void job_closed(uv_handle_t *h)
{
	fs_job *j = h->data;
	free(j->data);
	for (size_t i = 0; i < j->n_entries; i++)
		free(j->entries[i].name);
	free(j->entries);
	free(j);
}

/* Ends the job: its memory goes when the timer's close callback runs. */
static void job_free(fs_job *j)
{
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
	fs_stream *s = j->st, *drop = NULL;
	if (!s)
		return;
	pthread_mutex_lock(&G.lock);
	s->busy = 0;
	if (j->drop_stream || s->doomed) {
		list_remove(&s->link);
		drop = s;
	}
	pthread_mutex_unlock(&G.lock);
	stream_destroy(drop);
	j->st = NULL;
}

/* Publishes a stream created by the job, unless the request was stopped
 * or its connection is gone meanwhile (nobody could pull it). */
static uint64_t publish_stream(fs_job *j)
{
	fs_stream *s = j->new_stream;
	j->new_stream = NULL;
	if (!s)
		return 0;
	/* A batch member answers with one chunk: nobody would pull the rest
	 * of a stream opened inside a batch. */
	if (!j->r->c || j->r->stop_code || j->r->batch || atomic_load(&j->stop)) {
		stream_destroy(s);
		return 0;
	}
	/* Each stream holds a descriptor: a connection may not pile them up. */
	uint32_t n = 0;
	list *pos, *tmp;
	pthread_mutex_lock(&G.lock);
	list_for_each_safe(pos, tmp, &G.streams) {
		fs_stream *o = list_entry(pos, fs_stream, link);
		n += o->worker == s->worker && o->conn_serial == s->conn_serial;
	}
	if (n < G.max_streams)
		list_push_back(&G.streams, &s->link);
	pthread_mutex_unlock(&G.lock);
	if (n >= G.max_streams) {
		stream_destroy(s);
		j->code = PORTER_E_BUSY;
		j->err = 0;
		snprintf(j->msg, sizeof(j->msg),
			 "%u file streams already open on this connection (file-max-streams)", n);
		return 0;
	}
	return s->id;
}

static void job_done(uv_work_t *w, int status)
{
	fs_job *j = w->data;
	req *r = j->r;
	if (status == UV_ECANCELED) {
		/* Cancelled before it started: nothing was done. */
		j->code = atomic_load(&j->stop) ? PORTER_E_CANCELLED : PORTER_E_TIMEOUT;
		snprintf(j->msg, sizeof(j->msg), "%s before a pool thread was free",
			 j->code == PORTER_E_CANCELLED ? "cancelled" : "deadline passed");
	}
	r->cancel = NULL;
	r->op = NULL;
	uint64_t sid = publish_stream(j);
	release_stream(j);

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
	Porter__V1__FileListReply lr = PORTER__V1__FILE_LIST_REPLY__INIT;
	Porter__V1__FileStreamCloseReply cr = PORTER__V1__FILE_STREAM_CLOSE_REPLY__INIT;
	Porter__V1__FileEntry *ents = NULL, **ptrs = NULL;

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
		sr.type = file_type(j->sb.st_mode);
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
		ents = calloc(j->n_entries ? j->n_entries : 1, sizeof(*ents));
		ptrs = calloc(j->n_entries ? j->n_entries : 1, sizeof(*ptrs));
		if (!ents || !ptrs) {
			free(ents);
			free(ptrs);
			req_fail(r, PORTER_E_NOMEM, "out of memory");
			job_free(j);
			return;
		}
		for (size_t i = 0; i < j->n_entries; i++) {
			porter__v1__file_entry__init(&ents[i]);
			ents[i].name = j->entries[i].name;
			ents[i].type = j->entries[i].type;
			ents[i].size = j->entries[i].size;
			ents[i].mtime_ns = j->entries[i].mtime_ns;
			ptrs[i] = &ents[i];
		}
		lr.n_entries = j->n_entries;
		lr.entries = ptrs;
		resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_LIST;
		resp.file_list = &lr;
		break;
	case JOB_STREAM_CLOSE:
		cr.found = j->found;
		resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_STREAM_CLOSE;
		resp.file_stream_close = &cr;
		break;
	}
	req_reply(r, &resp);
	free(ents);
	free(ptrs);
	job_free(j);
}

/* Takes stream `id` for the job, checking its owner and kind. Returns 0 or
 * a code (the stream is then untouched). */
static int take_stream(fs_job *j, uint64_t id, int writing, int any_kind)
{
	int rc = PORTER_E_NOT_FOUND;
	pthread_mutex_lock(&G.lock);
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &G.streams) {
		fs_stream *s = list_entry(pos, fs_stream, link);
		if (s->id != id)
			continue;
		if (s->uid != j->uid || s->instance != j->instance || s->doomed)
			break; /* not yours: indistinguishable from unknown */
		if (!any_kind && s->writing != writing) {
			rc = PORTER_E_INVAL;
			break;
		}
		if (s->busy) {
			rc = PORTER_E_BUSY;
			break;
		}
		s->busy = 1;
		j->st = s;
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&G.lock);
	return rc;
}

void fs_handle(req *r)
{
	Porter__V1__Request *m = r->msg;
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
	j->conn_serial = r->c->serial;
	j->deadline_ns = uv_hrtime() + req_remaining_ms(r) * 1000000ull;

	const char *root = NULL;
	uint64_t sid = 0;
	int rc = 0;
	switch (m->body_case) {
	case PORTER__V1__REQUEST__BODY_FILE_READ:
		j->kind = JOB_READ;
		root = m->file_read->root;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_WRITE:
		j->kind = JOB_WRITE;
		root = m->file_write->root;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_WRITE_OPEN:
		j->kind = JOB_WRITE_OPEN;
		root = m->file_write_open->root;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_DELETE:
		j->kind = JOB_DELETE;
		root = m->file_delete->root;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_STAT:
		j->kind = JOB_STAT;
		root = m->file_stat->root;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_LIST:
		j->kind = JOB_LIST;
		root = m->file_list->root;
		break;
	case PORTER__V1__REQUEST__BODY_FILE_READ_NEXT:
		j->kind = JOB_READ_NEXT;
		sid = m->file_read_next->stream_id;
		rc = take_stream(j, sid, 0, 0);
		break;
	case PORTER__V1__REQUEST__BODY_FILE_WRITE_CHUNK:
		j->kind = JOB_WRITE_CHUNK;
		sid = m->file_write_chunk->stream_id;
		rc = take_stream(j, sid, 1, 0);
		break;
	case PORTER__V1__REQUEST__BODY_FILE_WRITE_COMMIT:
		j->kind = JOB_WRITE_COMMIT;
		sid = m->file_write_commit->stream_id;
		rc = take_stream(j, sid, 1, 0);
		break;
	case PORTER__V1__REQUEST__BODY_FILE_STREAM_CLOSE: {
		j->kind = JOB_STREAM_CLOSE;
		sid = m->file_stream_close->stream_id;
		rc = take_stream(j, sid, 0, 1);
		if (rc == PORTER_E_NOT_FOUND) {
			/* Closing an unknown stream is not an error: it may
			 * have ended with its last chunk. */
			Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
			Porter__V1__FileStreamCloseReply cr =
				PORTER__V1__FILE_STREAM_CLOSE_REPLY__INIT;
			resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_STREAM_CLOSE;
			resp.file_stream_close = &cr;
			free(j);
			req_reply(r, &resp);
			return;
		}
		break;
	}
	default:
		free(j);
		req_fail(r, PORTER_E_UNSUPPORTED, "not a file request");
		return;
	}
	if (rc) {
		free(j);
		req_fail(r, rc, "stream %llx: %s", (unsigned long long)sid,
			 rc == PORTER_E_BUSY    ? "another request is using it"
			 : rc == PORTER_E_INVAL ? "wrong kind of stream"
						: "no such stream");
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
	r->op = j;
	r->cancel = job_cancel;
	uv_timer_init(&r->w->loop, &j->timer);
	j->timer.data = j;
	int qrc = uv_queue_work(&r->w->loop, &j->work, job_run, job_done);
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

void fs_conn_closed(unsigned worker_index, uint64_t conn_serial)
{
	list dropped, *pos, *tmp;
	list_init(&dropped);
	pthread_mutex_lock(&G.lock);
	list_for_each_safe(pos, tmp, &G.streams) {
		fs_stream *s = list_entry(pos, fs_stream, link);
		if (s->worker != worker_index || s->conn_serial != conn_serial)
			continue;
		if (s->busy) {
			s->doomed = 1;
		} else {
			list_remove(&s->link);
			list_push_back(&dropped, &s->link);
		}
	}
	pthread_mutex_unlock(&G.lock);
	list_for_each_safe(pos, tmp, &dropped) {
		fs_stream *s = list_entry(pos, fs_stream, link);
		list_remove(&s->link);
		log_debug("dropping file stream %llx: its connection closed",
			  (unsigned long long)s->id);
		stream_destroy(s);
	}
}

/* ------------------------------------------------------------ start-up */

int fs_init(const config *cfg)
{
	G.chunk = cfg->file_chunk ? cfg->file_chunk : 1u << 20;
	G.max_streams = cfg->file_max_streams ? cfg->file_max_streams : 64;
	if (cfg->file_resolve && !strcmp(cfg->file_resolve, "walk")) {
		atomic_store(&G.walk, 1);
	} else if (cfg->file_resolve && strcmp(cfg->file_resolve, "auto") != 0) {
		log_error("file-resolve: expected auto or walk, got '%s'", cfg->file_resolve);
		return PORTER_E_INVAL;
	}

	int rc = fsroot_init(cfg);
	if (rc < 0)
		return rc;
	if (!atomic_load(&G.walk)) {
		struct open_how how = {.flags = O_PATH | O_CLOEXEC,
				       .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
		long fd = syscall(SYS_openat2, AT_FDCWD, ".", &how, sizeof(how));
		if (fd >= 0)
			close((int)fd);
		else if (errno == ENOSYS)
			atomic_store(&G.walk, 1);
	}
	log_info("file paths are confined with %s",
		 atomic_load(&G.walk) ? "a component walk (O_NOFOLLOW; no symlinks, no '..')"
				      : "openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)");
	return 0;
}

void fs_shutdown(void)
{
	list *pos, *tmp;
	pthread_mutex_lock(&G.lock);
	list_for_each_safe(pos, tmp, &G.streams) {
		fs_stream *s = list_entry(pos, fs_stream, link);
		list_remove(&s->link);
		stream_destroy(s);
	}
	pthread_mutex_unlock(&G.lock);
	fsroot_shutdown();
}
