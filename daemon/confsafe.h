/*
 * confsafe - the config file may be changed by root and porterd's own uid
 * only.
 *
 * The file decides who may use porterd (allow-uid, allow-gid) and what
 * they reach (file-roots, db-allow-targets, http-allow-hosts). Under the
 * system unit its clients share porterd's group, so a file or directory
 * of the porter group with group write (an easy `install -g porter`), or
 * one a client owns, would hand every client the daemon at the next
 * reload or restart. As sshd's StrictModes: the file must be a regular
 * file owned by root or porterd's uid that neither group nor others may
 * write, and every directory on the way to it (symlinks followed as the
 * kernel follows them, proto/pathwalk.h) owned by one of them, none that
 * others may write unless it is sticky (/tmp) and the name taken from it
 * is theirs. A directory a client owns anywhere above the file would let
 * her point the path at a file of porterd's own with her words in it
 * (anything written through a file root is porterd's). A path through
 * /proc (/proc/self/fd/N) is refused. Opened without blocking, so a FIFO
 * there cannot hang a reload; the file opened must be the one checked. No
 * state; any thread.
 */
#ifndef PORTER_CONFSAFE_H
#define PORTER_CONFSAFE_H

#include <stdio.h>

/*
 * Opens `path` (not NULL) for reading after the checks above. Returns the
 * stream (the caller fcloses it), or NULL after printing
 * "porterd: PATH: reason" to `err`.
 */
FILE *confsafe_open(const char *path, FILE *err);

#endif
