/*
 * fscopy - the bytes of a file copy (a FileCopy job of fswork, on libuv's
 * thread pool): the source's data ranges only, so that a sparse file's
 * holes stay holes in the copy (a copy_file_range over the whole length
 * reads them as zeros and writes them, on a file system without shared
 * extents: a 100 GiB disk image with 1 GiB of data took 100 GiB of disk),
 * with copy_file_range (extents shared where the file system can) or,
 * where it is refused, read and write; in pieces, checking the job's
 * deadline and cancellation between them.
 *
 * Thread safety: the pool thread of its job.
 */
#ifndef PORTER_FSCOPY_H
#define PORTER_FSCOPY_H

#include <stdint.h>

#include "fswork.h"

/*
 * Copies the first `len` bytes of `in` (a regular file) into `out` (an
 * empty regular file), which ends up `len` bytes long, or shorter when the
 * source shrank meanwhile: its size in j->total. Returns 0, a positive
 * errno value, or -1 when the job was stopped (its code recorded).
 */
int fscopy_data(fs_job *j, int in, int out, uint64_t len);

#endif
