/*
 * pfd - files by descriptor, the client's half: checks a descriptor
 * porterd passed (it must be a regular file open exactly as asked) and
 * does the reads and writes on it, with errno turned into PORTER_E_*
 * codes and messages that name the operation.
 *
 * The daemon decides and opens (inside its root, with its confinement);
 * libporter only uses what it was given. Nothing here keeps state: any
 * thread, each call on its own descriptor.
 */
#ifndef PORTER_CLIENT_PFD_H
#define PORTER_CLIENT_PFD_H

#include <stddef.h>
#include <stdint.h>

#include "pconn.h"

/*
 * Takes the descriptor passed with the calling thread's last reply
 * (pconn_take_fd) and checks it: a regular file whose access mode is
 * `accmode` (O_RDONLY or O_WRONLY) and nothing more. Returns it (owned by
 * the caller, who closes it with pconn_fd_close(fd, *link), so that
 * porterd hears of the close: it counts the descriptor as an open stream
 * until then), -1 when none came (the reply has to be asked again for
 * bytes), or PORTER_E_PROTOCOL (recorded as the last error; the
 * descriptor is closed) when porterd passed something else. `*link` is
 * NULL unless a descriptor is returned.
 */
int pfd_take(int accmode, pconn_fdlink **link);

/*
 * Reads up to `len` bytes at file offset `off` of `fd` into `buf` (pread,
 * retried on EINTR and short reads until `len` or the end of the file).
 * Stores the count in `*got`. Returns 0 or a negative code (last error
 * set, naming `path`).
 */
int pfd_read(int fd, void *buf, size_t len, uint64_t off, size_t *got, const char *path);

/*
 * Writes all `len` bytes of `data` to `fd` at its file offset (write,
 * retried on EINTR and short writes), checking `deadline` (pconn_now_ms
 * scale, 0: none) between pieces. Returns 0 or a negative code (last error
 * set, naming `path`): PORTER_E_FILE_NOSPACE for a full disk or quota,
 * PORTER_E_TIMEOUT past the deadline.
 */
int pfd_write(int fd, const void *data, size_t len, int64_t deadline, const char *path);

/* fsync and close `fd` (fsync only when `sync`) as pconn_fd_close(fd,
 * link) does. Returns 0 or a negative code (last error set); `fd` is
 * closed either way. */
int pfd_finish(int fd, pconn_fdlink *link, int sync, const char *path);

#endif
