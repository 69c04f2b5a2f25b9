/*
 * fslist - a directory listing (a FileList job of fswork, on libuv's
 * thread pool): the entries of a directory inside a root with what lstat
 * says of each, sorted by name. A mount point the root does not allow
 * crossing is listed as "other" and never entered (fsconfine_lstat). A
 * listing is answered in one frame, so one whose entries alone would pack
 * larger than max-frame is refused with PORTER_E_TOO_LARGE as soon as it
 * gets there, and the job's deadline and cancellation are checked every
 * few hundred entries: a directory of millions of names (which a client
 * can make in a root it may also change outside porterd) once held a pool
 * thread for all of them and grew porterd by some 300 bytes a name, past
 * the deadline, for a reply too large to send.
 *
 * Thread safety: fslist_limit at start-up (main thread), fslist_run on the
 * pool thread of its job.
 */
#ifndef PORTER_FSLIST_H
#define PORTER_FSLIST_H

#include <stdint.h>

#include "fswork.h"

/* Sets the largest reply frame (max-frame; 0: 16 MiB). Start-up. */
void fslist_limit(uint32_t max_frame);

/* Runs the listing job `j` (not NULL; kind JOB_LIST, its root directory in
 * j->rootfd): fills j->entries and j->n_entries, or records a failure. */
void fslist_run(fs_job *j);

#endif
