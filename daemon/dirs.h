/*
 * dirs - creates porterd's own directories (the socket's, file roots') the
 * way `mkdir -p` does, each level it creates private (0700).
 *
 * Paths come from porterd's settings, never from a client. No state; any
 * thread (in practice the acceptor, at start and on reload).
 */
#ifndef PORTER_DIRS_H
#define PORTER_DIRS_H

/* Creates `path` (not NULL, absolute or relative) and every missing
 * parent with mode 0700 (before the umask); directories that exist are
 * left as they are, whatever their mode. Returns 1 when it created `path`
 * itself, 0 when `path` already existed, or -errno (-ENAMETOOLONG past
 * PATH_MAX, -ENOTDIR when a component is a file, ...). An existing `path`
 * that is not a directory gives -EEXIST. */
int dirs_make(const char *path);

#endif
