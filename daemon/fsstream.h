/*
 * fsstream - open file streams (reads larger than one chunk, chunked
 * writes) that span requests.
 *
 * A stream lives in one process-wide table guarded by a mutex: it is named
 * by a random 64-bit id and may be continued from any connection of the
 * client (uid and client instance) that opened it, on any worker. Only one
 * request works on a stream at a time (others get PORTER_E_BUSY), and one
 * connection may hold at most `file-max-streams` of them. When the
 * connection that opened a stream closes, the stream is dropped: an
 * unfinished atomic write leaves no trace at its target.
 *
 * Thread safety: the table functions may be called from any thread. The
 * fields of a stream other than `link`, `busy` and `doomed` are touched
 * only by the request that holds it busy (its loop and its thread-pool job,
 * one after the other), so they need no lock.
 */
#ifndef PORTER_FSSTREAM_H
#define PORTER_FSSTREAM_H

#include <stdint.h>
#include <sys/types.h>

#include "list.h"

typedef struct fs_stream {
	list link; /* in the table, under its lock */
	uint64_t id;
	uid_t uid; /* owner: uid and client instance */
	uint64_t instance;
	unsigned worker; /* the opening connection, for clean-up */
	uint64_t conn_serial;
	int writing; /* 0: read stream, 1: write stream */
	int busy;    /* a request is working on it (under the lock) */
	int doomed;  /* drop it when the busy request ends */
	int fd;      /* the file, or the temp file of an atomic write */
	char *where; /* "'path' in root 'name'", for messages; owned, may be NULL */
	/* read streams */
	uint64_t pos, end, file_size;
	/* write streams */
	int dirfd;        /* parent directory (atomic writes), or -1 */
	char *base;       /* target name in dirfd (atomic writes) */
	char tmpname[64]; /* named temp file, "" for O_TMPFILE or none */
	uint32_t flags;
	uint64_t total; /* bytes written so far */
} fs_stream;

/* Sets the per-connection limit (file-max-streams). Start-up. */
void fsstream_init(uint32_t max_per_conn);

/* Drops every stream. Main thread, after every worker has stopped. */
void fsstream_shutdown(void);

/* A random non-zero id (getrandom). Any thread. */
uint64_t fsstream_random_id(void);

/*
 * A new stream, not yet in the table, owned by (uid, instance) and the
 * connection (worker, conn_serial); descriptors -1. NULL when out of
 * memory. Freed with fsstream_destroy until published.
 */
fs_stream *fsstream_new(uid_t uid, uint64_t instance, unsigned worker, uint64_t conn_serial,
			int writing);

/* Closes a stream's files, removes a named temp file (an abandoned atomic
 * write leaves nothing) and frees it. It must not be in the table. NULL is
 * fine. */
void fsstream_destroy(fs_stream *s);

/*
 * Puts `s` in the table unless its connection already holds the limit:
 * returns 0, or PORTER_E_BUSY after destroying `s` (then `*n_open` tells
 * how many the connection holds).
 */
int fsstream_publish(fs_stream *s, uint32_t *n_open);

/*
 * Takes stream `id` for a request of (uid, instance), marking it busy.
 * `writing` is the kind wanted unless `any_kind`. Stores it in `*out` and
 * returns 0, or PORTER_E_NOT_FOUND (unknown, or not this client's: the two
 * are indistinguishable), PORTER_E_INVAL (wrong kind), PORTER_E_BUSY.
 */
int fsstream_take(uint64_t id, uid_t uid, uint64_t instance, int writing, int any_kind,
		  fs_stream **out);

/* Ends a request's hold on `s` (taken or published), dropping it when
 * `drop` is set or its connection closed meanwhile. */
void fsstream_release(fs_stream *s, int drop);

/*
 * The connection `conn_serial` of worker `worker_index` has closed: drops
 * the streams it opened (a stream busy in the thread pool is dropped when
 * its request releases it). Loop thread of that worker.
 */
void fsstream_conn_closed(unsigned worker_index, uint64_t conn_serial);

#endif
