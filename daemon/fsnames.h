/*
 * fsnames - the file requests on names and directories, run by fswork on
 * libuv's thread pool: delete, stat (lstat semantics unless asked to
 * follow), mkdir (with parents), rename (with a no-replace option) and
 * the opening of a watch, each confined to the job's root (fsconfine).
 * Failures are recorded in the job as fswork records them (fswork_fail).
 *
 * Thread safety: the pool thread of its job, touching only the job.
 */
#ifndef PORTER_FSNAMES_H
#define PORTER_FSNAMES_H

#include "fswork.h"

/* Each runs the job `j` (not NULL) of its kind: JOB_DELETE, JOB_STAT,
 * JOB_MKDIR, JOB_RENAME, JOB_WATCH_OPEN. */
void fsnames_delete(fs_job *j);
void fsnames_stat(fs_job *j);
void fsnames_mkdir(fs_job *j);
void fsnames_rename(fs_job *j);
void fsnames_watch_open(fs_job *j);

#endif
