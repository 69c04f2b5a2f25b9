/*
 * fspass - files by descriptor (issue 17.1), the daemon's side: which open
 * file may be handed to a client instead of its bytes, and handing it to
 * the job whose reply carries it (SCM_RIGHTS, sent by conn.c).
 *
 * porterd opens the file with the same confinement as always (fsconfine,
 * fsfast); these functions only decide whether the descriptor can leave
 * the process, and prepare it to: a read descriptor is O_RDONLY and a
 * regular file, a write descriptor O_WRONLY (O_APPEND kept), never a
 * directory, and never one whose file a foreign uid could reopen wider
 * through /proc/self/fd or hard-link elsewhere.
 *
 * No state: each function works on the job (and stream) its caller holds,
 * on whichever thread runs that job (a pool thread for fswork, the loop
 * thread for fsfast).
 */
#ifndef PORTER_FSPASS_H
#define PORTER_FSPASS_H

#include <sys/stat.h>

#include "fswork.h"

/*
 * Whether read request `m` of a regular file of `size` bytes is small: its
 * whole range (at least one byte) fits one chunk of at most 64 KiB. Such a
 * read answers with its bytes even when the client asked for the
 * descriptor: measured on this machine (bench_file), passing a descriptor
 * costs more than carrying 4 KiB (sendmsg with SCM_RIGHTS and the
 * client's checks, pread and close against one copy), while from a few
 * hundred KiB on the descriptor wins by far. Any thread.
 */
int fspass_small_read(const Porter__V1__FileRead *m, uint64_t size);

/* 1 when a descriptor of the regular file `sb` may be passed to client
 * `uid` for reading (writing = 0) or writing (1): passing it would give no
 * access beyond the one asked, however the client reopens or hard-links
 * it; else 0 and the file goes as bytes. Any thread. */
int fspass_passable(const struct stat *sb, uid_t uid, int writing);

/*
 * Hands the open regular file `*fd` (described by `sb`, opened by the
 * caller with `open_flags`) to read job `j` as the descriptor its reply
 * passes: no longer O_NONBLOCK (that was for FIFOs, and the client would
 * see it in F_GETFL), with the file's size and the read's chunk size
 * recorded in the job. Never a descriptor opened for anything but
 * O_RDONLY: the access mode is judged from `open_flags`, which the caller
 * knows (no F_GETFL system call on the path of every read; the kernel
 * never changes a descriptor's access mode after open). Returns 0 (the
 * descriptor moved to j->pass_fd, `*fd` is -1), or -1 with `*fd` still
 * the caller's, to read bytes instead. The thread of `j`.
 */
int fspass_read(fs_job *j, int *fd, const struct stat *sb, int open_flags);

/*
 * Files by descriptor for a write open: the descriptor the client writes
 * through, when `s->fd` is a regular file. A plain write's descriptor moves
 * to the job (s->fd becomes -1). An atomic write's temp file stays in the
 * stream for the commit, and the client gets a duplicate: the stream may be
 * committed or dropped by another request (from another loop) as soon as
 * it is published, before this job's reply is sent. Returns 0 (the
 * descriptor in j->pass_fd), or -1 to write by chunks instead. The thread
 * of `j`.
 */
int fspass_write(fs_job *j, fs_stream *s);

#endif
