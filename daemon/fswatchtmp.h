/*
 * fswatchtmp - whether a name a directory watch reports is porterd's
 * unnamed (O_TMPFILE) temp file of an atomic write, or a client's file
 * that happens to be named like one.
 *
 * The kernel names an unnamed file '#' and its inode number in the events
 * of its directory (its writes and mode change show as modifications of
 * that name). Any client may also call a file '#' and digits. An unnamed
 * file has no entry in the directory; a named one just written is in the
 * kernel's lookup cache (its writer's open holds it there). So the name is
 * taken for the unnamed file unless the directory has such an entry,
 * looked up with openat2 RESOLVE_CACHED, which fails instead of waiting
 * on the disk, so it may run on the loop.
 *
 * The directory is found again from its root's descriptor by the watch's
 * path (a per-user root's uid directory first), under the root's
 * confinement, and checked by device and inode to be the one watched (a
 * rename above it sends the watch no event). The watch holds no
 * descriptor of its directory: a reference to its dentry would keep its
 * removal from ending the watch (inotify reports IN_DELETE_SELF only as
 * the last reference goes).
 *
 * Loop thread of the watch; no state but a process-wide switch set once
 * when the kernel has no RESOLVE_CACHED (before Linux 5.12: then every
 * '#N' is taken for the unnamed file).
 */
#ifndef PORTER_FSWATCHTMP_H
#define PORTER_FSWATCHTMP_H

#include "fsstream.h"

/*
 * 1 when `name`, an entry of the directory watch stream `s` watches, is
 * '#' and digits and the directory has no entry of that name in the
 * kernel's lookup cache (or that cannot be told without waiting): the
 * unnamed temp file. 0 for any other name, and for a '#N' the directory
 * has. Never blocks.
 */
int fswatchtmp_unnamed(const fs_stream *s, const char *name);

#endif
