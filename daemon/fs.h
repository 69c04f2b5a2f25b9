/*
 * fs - file operations (FileRead, FileWrite, FileDelete, FileStat,
 * FileList and their streams), confined to the configured file roots.
 *
 * Roots are opened once at start-up (fs_init, main thread, before any
 * worker runs) and are read-only afterwards, so every worker shares them
 * without locks. Requests arrive on a worker loop (fs_handle); the system
 * calls run on libuv's thread pool (uv_queue_work: openat2 and friends
 * have no uv_fs_* counterpart), and the reply is built back on the loop
 * that owns the request.
 *
 * Confinement: every path is resolved inside its root with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS). "..", absolute paths,
 * symlinks that lead out and magic links (/proc/self/root ...) fail with
 * EXDEV or ELOOP and are answered with PORTER_E_FILE_ESCAPE. On a kernel
 * without openat2 (ENOSYS), or with `file-resolve = walk`, the path is
 * walked one component at a time with O_NOFOLLOW; then every ".." and
 * every symlink is refused, even one that stays inside the root.
 *
 * Deadlines and cancellation: a job still queued in the thread pool at its
 * deadline (a timer on the loop) or when cancelled is taken out of it
 * (uv_cancel) and answered at once; one already running cannot be interrupted,
 * so it checks a stop flag and its deadline between steps (before it
 * starts, between open and I/O, before the rename of an atomic write) and
 * its result is replaced by the stop code. An atomic write stopped before
 * its rename removes its temp file and leaves the target as it was; one
 * stopped after the rename has happened.
 *
 * Streams (reads larger than one chunk, chunked writes) live in one
 * process-wide table guarded by a mutex: a stream is named by a random id
 * and may be continued from any connection of the client (uid and client
 * instance) that opened it, on any worker. Only one request works on a
 * stream at a time (others get PORTER_E_BUSY), and one connection may
 * hold at most `file-max-streams` of them. When the connection that
 * opened a stream closes, the stream is dropped: an unfinished atomic
 * write leaves no trace at its target.
 */
#ifndef PORTER_FS_H
#define PORTER_FS_H

#include <stdint.h>

#include "config.h"
#include "req.h"

/*
 * Opens the roots (fsroot_init) and picks the resolution method. Main thread,
 * before the workers start. Returns 0, or PORTER_E_INVAL after logging why
 * (the daemon then refuses to start).
 */
int fs_init(const config *cfg);

/* Drops every stream and closes the roots. Main thread, after every worker
 * has stopped. */
void fs_shutdown(void);

/*
 * Performs a file request (any of the File* bodies) and finishes `r`
 * exactly once, later, on `r`'s loop. Loop thread.
 */
void fs_handle(req *r);

/*
 * The connection `conn_serial` of worker `worker_index` has closed: drops
 * the streams it opened (a stream busy in the thread pool is dropped when
 * its job ends). Loop thread of that worker.
 */
void fs_conn_closed(unsigned worker_index, uint64_t conn_serial);

#endif
