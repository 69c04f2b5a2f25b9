/*
 * fswork - what a file request does on libuv's thread pool: the system
 * calls of reads, writes (plain, atomic, chunked) and copies here; deletes,
 * stats, mkdir, rename and watch opens in fsnames, listings in fslist;
 * each confined to its root (fsconfine).
 *
 * A job is created and finished on the loop that owns its request (fs.c);
 * fswork_run runs it on a pool thread in between, touching only the job,
 * the stream it holds busy and the request message (read-only). Failures
 * are recorded in the job as a PORTER_E_* code with a message that names
 * the operation, the path and the root ("cannot open 'notes/today.txt' in
 * root 'files': no such directory"), and the errno behind it.
 */
#ifndef PORTER_FSWORK_H
#define PORTER_FSWORK_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <uv.h>

#include "fsroot.h"
#include "fsstream.h"
#include "req.h"

/* What a job does. */
enum fs_job_kind {
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
	JOB_MKDIR,
	JOB_RENAME,
	JOB_COPY,
	JOB_WATCH_OPEN,
};

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
	enum fs_job_kind kind;
	const fsroot *root;   /* NULL for a stream continuation */
	const char *path;     /* the request's path (borrowed), for messages */
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
	char msg[512];
	uint8_t *data; /* read chunk, owned */
	size_t len;
	/* A read's chunk (and a listing's reply) counts in its uid's
	 * buffered bytes from the moment the pool thread allocates it until
	 * the loop collects it
	 * (fswork_unhold): finished reads wait for a busy loop, and a uid has
	 * up to uid-max-inflight of them. `held_max` is uid-max-buffered,
	 * copied on the loop (the pool reads no config), or 0 (no limit) for
	 * a batch member. */
	struct clients_acct *held_acct; /* one reference, taken on the pool; or NULL */
	uint64_t held;
	uint64_t held_max;
	uint64_t offset, file_size, stream_id, written, total;
	int found; /* stream close: it existed; mkdir: it was created */
	struct stat sb;
	uint8_t *list; /* a listing's packed entries (fslist.h), owned */
	size_t list_len;
	fs_stream *new_stream; /* created by the job, published after it */
	int drop_stream;       /* the held stream is finished */
	/* Files by descriptor: the client asked for the open file (a read or
	 * a write open, from a connection, not in a batch) and file-pass-fd
	 * allows it; the job then leaves in `pass_fd` the descriptor to send
	 * instead of bytes (owned by the job, closed when it is freed), or -1
	 * when the file is not one to pass (not a regular file). */
	int want_fd;
	int pass_fd;
	/* With want_fd: one descriptor is reserved for the connection in
	 * fsfds.h's count of `fd_w` (the connection's worker); it stays
	 * counted once passed, and goes back when the job ends otherwise. */
	int fd_slot;
	struct worker *fd_w;
	uint32_t chunk; /* a read's chunk size, told with a passed descriptor */
} fs_job;

/* On the pool: counts `n` more bytes job `j` holds for its uid (a read's
 * chunk, a listing), against fs_job.held_max. 0, or -1 with the job
 * failed PORTER_E_BUSY naming uid-max-buffered (`op` names the operation
 * in the message). */
int fswork_hold(fs_job *j, uint64_t n, const char *op);

/* Gives back what job `j` counted (fs_job.held). Idempotent. Loop
 * thread, once the pool is done with `j`. */
void fswork_unhold(fs_job *j);

/* Sets the largest chunk a read answers with (file-chunk-size). Start-up. */
void fswork_init(uint32_t chunk);

/* For the job modules beside this one (fslist, fsnames, fscopy), on the pool thread of
 * job `j` (not NULL): */
/* Records that `op` on `path` (NULL: the job's path) failed with errno
 * value `e` (positive): the code and a message naming both; `creating`:
 * the operation makes its target. Returns the code. */
int fswork_fail(fs_job *j, int e, const char *op, const char *path, int creating);
/* Records a failure that is not an errno: `code` with "cannot OP 'path'
 * in root 'name': why". Returns `code`. */
int fswork_fail_code(fs_job *j, int code, const char *op, const char *why);
/* Records that the job stopped: `code` PORTER_E_CANCELLED or
 * PORTER_E_TIMEOUT, in words that name its operation and path ("cannot
 * list 'big' in root 'docs': deadline passed"), then `when` (NULL: none,
 * "before a pool thread was free"). Any thread that holds the job. */
void fswork_stopped(fs_job *j, int code, const char *when);
/* 1 (with the code and message recorded) when the job was cancelled or is
 * past its deadline, else 0. */
int fswork_should_stop(fs_job *j);
/* The fsconfine options of the job's root (crossing mount points only
 * where the root allows it). */
unsigned fswork_confine_opts(const fs_job *j);
/* Opens the directory that holds `path`'s last component, confined to the
 * job's root: the new descriptor (owned by the caller) in `*dfd` and the
 * name in `*base` (pointing into `path`). Returns 0 or the failure code,
 * recorded. */
int fswork_open_parent(fs_job *j, const char *path, int flags, const char *op, int *dfd,
		       const char **base);
/* A new stream of the job's uid, connection and path (owned by the
 * caller: fsstream_destroy), or NULL without memory. */
fs_stream *fswork_stream_new(fs_job *j, enum fsstream_kind kind);

/* The chunk size of a read that asked for `asked` bytes per chunk (0: the
 * daemon's): capped by file-chunk-size, at least 1. Any thread. */
uint32_t fswork_chunk(uint32_t asked);

/* Runs the job in `w->data`. Thread pool (uv_queue_work's work callback). */
void fswork_run(uv_work_t *w);

/* The wire's FileType for a st_mode. */
int fswork_file_type(mode_t m);

#endif
