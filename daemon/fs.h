/*
 * fs - file operations (FileRead, FileWrite, FileDelete, FileStat,
 * FileList, FileMkdir, FileRename, FileCopy and the streams), confined to
 * the configured file roots: the dispatch, deadlines and replies.
 *
 * The module is split by concern:
 *   fsroot     the roots, who may use each, per-user directories, modes;
 *   fsconfine  paths confined to a root, and errno to PORTER_E_* (once);
 *   fsstream   streams that span requests (the table, owners, limits);
 *   fswork     the system calls of each request on the thread pool;
 *   fs         this file: from request to job to reply.
 *
 * Requests arrive on a worker loop (fs_handle); the system calls run on
 * libuv's thread pool (uv_queue_work: openat2 and friends have no uv_fs_*
 * counterpart), and the reply is built back on the loop that owns the
 * request.
 *
 * Deadlines and cancellation: a job still queued in the thread pool at its
 * deadline (a timer on the loop) or when cancelled is taken out of it
 * (uv_cancel) and answered at once; one already running cannot be
 * interrupted, so it checks a stop flag and its deadline between steps
 * (before it starts, between open and I/O, before the rename of an atomic
 * write, between the pieces of a copy) and its result is replaced by the
 * stop code. An atomic write stopped before its rename removes its temp
 * file and leaves the target as it was; one stopped after the rename has
 * happened.
 */
#ifndef PORTER_FS_H
#define PORTER_FS_H

#include <stdint.h>

#include "config.h"
#include "req.h"

struct worker;

/*
 * Opens the roots (fsroot_init) and picks the resolution method. Main thread,
 * before the workers start. Returns 0, or PORTER_E_INVAL after logging why
 * (the daemon then refuses to start).
 */
int fs_init(const config *cfg);

/* Closes the roots. Main thread, after every worker has stopped (the
 * workers dropped their streams). */
void fs_shutdown(void);

/*
 * Performs a file request (any of the File* bodies) and finishes `r`
 * exactly once, later, on `r`'s loop. Loop thread.
 */
void fs_handle(req *r);

/*
 * The connection `conn_serial` of worker `w` has closed: drops the streams
 * it opened (a stream busy in the thread pool is dropped when its job
 * ends). Loop thread of `w`.
 */
void fs_conn_closed(struct worker *w, uint64_t conn_serial);

/*
 * Applies the report of closed descriptors that request `msg` (not NULL;
 * read only) carries (FileRead.fds_closed, FileWriteOpen.fds_closed) to
 * the count of connection `conn_serial` of worker `w` (fsfds.h). Called by
 * the connection for every request it decodes, before anything may refuse
 * it (the uid's in-flight limit, a cancel that came first): the report
 * states closes that already happened, whatever becomes of the request
 * carrying it, and the client sends each close once. A batch member's
 * report is applied by fs_handle. Loop thread of `w`.
 */
void fs_note_closes(struct worker *w, uint64_t conn_serial, const Porter__V1__Request *msg);

#endif
