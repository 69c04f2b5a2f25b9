/*
 * fsclose - descriptors of a root that spans mounts, closed on the thread
 * pool rather than on a worker's loop.
 *
 * In a root with the option `mounts` a file may be on a FUSE file system
 * its user mounted there, and the kernel asks her FUSE daemon on each
 * close (FUSE_FLUSH, synchronous, sent for every close of a descriptor,
 * read-only ones too) and unlink of it. A daemon that does not answer
 * would stop the worker's loop, and every client of that worker with it,
 * where porterd closes a stream's file (its connection closed, an idle
 * stream reclaimed, a stream finished on the loop) or its own copy of a
 * descriptor it passed. The `mounts` option already accepts that such a
 * daemon may hold a pool thread (fsfast.h), so there they go.
 *
 * Thread affinity: fsclose_queue on the loop thread of `loop`.
 */
#ifndef PORTER_FSCLOSE_H
#define PORTER_FSCLOSE_H

#include <uv.h>

/*
 * On a pool thread of `loop`: unlinks `tmpname` (not NULL; "" for none)
 * in `dirfd` and retires the name (tmpname.h), then closes `fd` and
 * `dirfd` (-1: none). The descriptors are taken. Out of memory, it does
 * so here and now, as before.
 */
void fsclose_queue(uv_loop_t *loop, int fd, int dirfd, const char *tmpname);

#endif
