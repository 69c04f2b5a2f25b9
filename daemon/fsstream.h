/*
 * fsstream - open file streams (reads larger than one chunk, chunked
 * writes, watches) that span requests, owned by worker loops.
 *
 * Each worker keeps a table of the streams its connections opened. A
 * stream is named by an id in fwd.h's owner encoding (the owning worker in
 * the top bits, random below), so a request for it that arrives on another
 * worker is forwarded there (fwd_to_owner) instead of looking in a shared
 * table: no lock anywhere. Any connection of the client (uid and client
 * instance) that opened a stream may continue it; another client's request
 * reads exactly like an unknown id.
 *
 * Limits: one connection holds at most `file-max-streams` streams, one uid
 * at most `file-max-streams-per-uid` over all workers (counted in
 * clients.h's CLIENTS_FILE_STREAMS and, with cursors and HTTP streams, in
 * CLIENTS_STREAMS); both are read from the worker's current configuration,
 * so a reload applies to the next open. Only one request works on a
 * stream at a time (others get PORTER_E_BUSY).
 *
 * Lifetime: a stream is dropped when it ends, when it is closed, when the
 * connection that opened it closes (an unfinished atomic write leaves no
 * trace at its target), or when nobody used it for `file-stream-idle`
 * milliseconds: then its descriptors and its quota slot go at once, and a
 * tombstone stays for a while so the owner's next request on it fails with
 * PORTER_E_TIMEOUT saying it was reclaimed (once; a close just succeeds).
 *
 * Thread affinity: every function runs on the owning worker's loop thread,
 * except fsstream_new and fsstream_destroy (any thread: the thread pool
 * creates a stream before it is published). The file fields of a stream
 * held busy are touched only by the request holding it (its loop and its
 * thread-pool job, one after the other).
 */
#ifndef PORTER_FSSTREAM_H
#define PORTER_FSSTREAM_H

#include <stdint.h>
#include <sys/types.h>

#include "htab.h"
#include "list.h"

struct worker;
struct clients_acct;
struct fsroot;
struct fswatch;

/* What a stream is. */
enum fsstream_kind {
	FSSTREAM_READ,  /* a read past one chunk */
	FSSTREAM_WRITE, /* a chunked write */
	FSSTREAM_WATCH, /* change events of a file or directory (fswatch.h) */
};

typedef struct fsstream_table fsstream_table;

typedef struct fs_stream {
	fsstream_table *tab; /* the owner's table once published, else NULL */
	htab_node node;      /* in its table, by id */
	list link;           /* in its table's list, for sweeps */
	uint64_t id;         /* fwd.h owner encoding; never 0 */
	uid_t uid;           /* owner: uid and client instance */
	uint64_t instance;
	unsigned worker;      /* the owning worker */
	uint64_t conn_serial; /* the connection that opened it (on `worker`) */
	enum fsstream_kind kind;
	int writing;               /* kind == FSSTREAM_WRITE (fswork reads this) */
	int busy;                  /* a request is working on it */
	int doomed;                /* drop it when the busy request ends */
	int reclaimed;             /* a tombstone: reclaimed as idle, resources gone */
	uint64_t used_ms;          /* uv_now() of the last request (or reclaim) */
	struct clients_acct *acct; /* the uid's counters, one slot held; NULL if none */
	int fd;                    /* the file, the temp file of an atomic write, or a watch's
				    * O_PATH descriptor until it starts */
	int close_on_pool;         /* its root spans mounts: closed and unlinked on the
				    * pool when the loop lets it go (fsclose.h) */
	char *where;               /* "'path' in root 'name'", for messages; owned, may be NULL */
	/* read streams */
	uint64_t pos, end, file_size;
	/* write streams */
	int dirfd;        /* parent directory (atomic writes), or -1 */
	char *base;       /* target name in dirfd (atomic writes) */
	char tmpname[64]; /* named temp file, "" for O_TMPFILE or none */
	uint32_t flags;
	uint64_t total; /* bytes written so far */
	/* An atomic write whose temp file's descriptor porterd passed: the
	 * client holds it until it says it closed it (fsstream_fd_closed),
	 * and the stream's one slot stands for both meanwhile. A stream that
	 * ends first leaves the descriptor counted on `fd_w`'s connection
	 * `conn_serial` as any passed one (fsfds_adopt); its tombstone then
	 * has `fd_adopted`, so that a later "closed" gives that back. */
	int fd_out;
	int fd_adopted;
	struct worker *fd_w;
	/* watch streams */
	struct fswatch *watch;     /* owned once started; stopped with the stream */
	char *rel;                 /* the watched path relative to its root, owned */
	int watch_dir;             /* the watched path is a directory */
	const struct fsroot *root; /* its root (borrowed: lives until fsroot_shutdown) */
	dev_t watch_dev;           /* the watched object, as opened */
	ino_t watch_ino;
} fs_stream;

/* Creates `w`'s table and its idle-sweep timer (w->fs_streams). Before the
 * worker's loop runs. Returns 0 or PORTER_E_NOMEM. */
int fsstream_worker_init(struct worker *w);

/*
 * The worker is closing: drops every stream (one busy in the thread pool is
 * dropped when its request releases it) and closes the timer; the table is
 * freed once both are done. Loop thread.
 */
void fsstream_worker_close(struct worker *w);

/*
 * A new stream of `kind`, not yet in a table, owned by (uid, instance)
 * and the connection `conn_serial` of worker `owner` (its id names that
 * worker); descriptors -1. NULL when out of memory or randomness. Freed
 * with fsstream_destroy until published. Any thread.
 */
fs_stream *fsstream_new(uid_t uid, uint64_t instance, unsigned owner, uint64_t conn_serial,
			enum fsstream_kind kind);

/* Stops a watch, closes a stream's files, removes a named temp file (an
 * abandoned atomic write leaves nothing), gives its quota slot back and
 * frees it. It must not be in a table. NULL is fine. Any thread for
 * streams that were never published; the owner's loop otherwise. */
void fsstream_destroy(fs_stream *s);

/* fsstream_destroy on the loop thread of `w` (not NULL): a stream whose
 * root spans mounts has its files closed and its temp file removed on the
 * pool (fsclose.h), not here. */
void fsstream_destroy_on(struct worker *w, fs_stream *s);

/*
 * Puts `s` (created for worker `w`) in `w`'s table, held busy by the
 * publishing request, unless its connection or its uid already holds its
 * limit: returns 0, or PORTER_E_BUSY after destroying `s`, with a message
 * naming the limit in `msg` (`cap` bytes). PORTER_E_NOMEM likewise. Loop
 * thread of `w`.
 */
int fsstream_publish(struct worker *w, fs_stream *s, char *msg, size_t cap);

/*
 * Takes stream `id` of `w`'s table for a request of (uid, instance),
 * marking it busy. `kind` is the kind wanted unless `any_kind`. Stores it
 * in `*out` and returns 0, or PORTER_E_NOT_FOUND (unknown, or not this
 * client's: the two are indistinguishable), PORTER_E_INVAL (wrong kind),
 * PORTER_E_BUSY, PORTER_E_TIMEOUT (reclaimed as idle: the tombstone is
 * consumed; `msg` says so). `msg` (`cap` bytes) gets the reason of any
 * failure. Loop thread of `w`.
 */
int fsstream_take(struct worker *w, uint64_t id, uid_t uid, uint64_t instance,
		  enum fsstream_kind kind, int any_kind, fs_stream **out, char *msg, size_t cap);

/* Ends a request's hold on `s` (taken or published), dropping it when
 * `drop` is set or its connection closed meanwhile. Loop thread of its
 * worker. */
void fsstream_release(fs_stream *s, int drop);

/*
 * The client (uid, instance) says it closed the descriptor porterd passed
 * for stream `id` of `w` (FileWriteCommit.fd_closed,
 * FileStreamClose.fd_closed): a live stream's slot then stands for the
 * stream alone; a tombstone's adopted descriptor is given back. Anything
 * else (unknown, not the client's, nothing passed) is ignored. Loop
 * thread of `w`.
 */
void fsstream_fd_closed(struct worker *w, uint64_t id, uid_t uid, uint64_t instance);

/* Marks `s` (held or not) used now, so the idle sweep leaves it. */
void fsstream_touch(fs_stream *s);

/*
 * The connection `conn_serial` of `w` has closed: drops the streams it
 * opened (one busy in the thread pool is dropped when its request releases
 * it). Loop thread of `w`.
 */
void fsstream_conn_closed(struct worker *w, uint64_t conn_serial);

/* Streams (not tombstones) in `w`'s table; for tests and stats. */
size_t fsstream_count(const struct worker *w);

#endif
