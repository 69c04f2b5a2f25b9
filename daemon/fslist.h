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
 * Memory: the entries are packed as they are read, in the reply's own
 * wire bytes (listwire.h), and sorted into one buffer that goes to the
 * client's socket as it is: a listing holds about twice its reply's size
 * at its peak (what was read, and its sorted copy) and four bytes a name,
 * where it held a copy of every name, an entry struct, protobuf-c's
 * message structs and then the packed reply (400,000 short names: some
 * 70 MB for a 16 MiB reply), and was packed on the worker loop.
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
 * j->rootfd): sets j->list (the FileListReply's packed entries, sorted by
 * name; freed with fslist_free) and j->list_len, or records a failure. */
void fslist_run(fs_job *j);

/* Frees a listing's j->list. NULL is fine. Any thread. */
void fslist_free(void *entries);

#endif
