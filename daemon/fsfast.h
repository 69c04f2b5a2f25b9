/*
 * fsfast - the fast path of small file requests (issue 17.2): a read that
 * passes its descriptor, a small read of bytes, or a stat, done on the
 * worker loop itself when the kernel can do it without blocking, saving
 * the trip through libuv's thread pool (two thread switches and a wake-up
 * of the loop).
 *
 * The path is resolved with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS | RESOLVE_CACHED): the same confinement as
 * fsconfine, but the kernel fails with EAGAIN instead of doing anything
 * that could block (a lookup not in the dentry cache, a remote file
 * system). Data is read with preadv2(RWF_NOWAIT), which fails with EAGAIN
 * instead of waiting for the disk. Anything that does not complete here -
 * EAGAIN, any error at all (the pool repeats it and words the message),
 * a per-user root's directory that is missing (the pool makes it) or not
 * porterd's (the pool refuses it), the component walk
 * (file-resolve = walk), a root that spans mounts (a file there may be on
 * FUSE, whose daemon the open or fstat would wait on), a kernel before
 * 5.12 - goes to the pool as
 * before, so the outcome never differs, only where it is computed.
 *
 * Loop thread of the request; no state but a process-wide switch that
 * turns itself off for good when the kernel lacks RESOLVE_CACHED.
 */
#ifndef PORTER_FSFAST_H
#define PORTER_FSFAST_H

#include "fswork.h"

/* Turns the fast path on or off (file-loop-fast-path). Start-up. */
void fsfast_init(int enabled);

/*
 * Tries job `j` (prepared by fs_handle, root found and granted) on the
 * loop. Returns 1 when it is done: its outcome is in `j` exactly as
 * fswork_run would have left it (a descriptor to pass, data, a stat).
 * Returns 0, leaving `j` untouched, when it must go to the pool. Loop
 * thread; never blocks.
 */
int fsfast_try(fs_job *j);

#endif
