/*
 * psockdir - whether the directory of a named socket could have been
 * handed to someone other than the daemon that listens there.
 *
 * A socket named in PORTER_SOCKET may belong to another user's daemon
 * (the system service). Its uid (SO_PEERCRED) says only who bound the
 * name; anyone who could create or replace the socket's directory, or
 * any directory or symlink on the way to it, could have bound it first.
 * So the whole path must be out of reach of every uid but root, the
 * daemon's and the caller's: each directory on it (symlinks followed as
 * the kernel follows them) owned by one of those; a directory others may
 * write only when it is sticky (/tmp) and what the path takes from it
 * belongs to root or the caller (anyone can make a name in /tmp,
 * including one owned by the daemon's uid); and the socket's own
 * directory writable by its owner alone.
 *
 * The socket's own name is walked too: a symlink there is followed like
 * any other (its target's directory judged as the socket's). A path
 * through /proc (/proc/self/fd/N, /dev/fd/N) is refused: the kernel
 * connects to whatever that descriptor is, not to the text its link
 * shows.
 *
 * No state; any thread. Path checks by lstat (proto/pathwalk.h): every
 * entry they pass is out of reach of other uids, so connect and the check
 * see the same path.
 */
#ifndef PORTER_CLIENT_PSOCKDIR_H
#define PORTER_CLIENT_PSOCKDIR_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Checks the path to socket `path` (not NULL; relative to the current
 * directory unless absolute; connected to already) for a daemon running as
 * `daemon`. Returns 0 when it is out of reach of other uids; otherwise -1
 * with the reason, naming the entry at fault, in `why` (`cap` bytes, not
 * NULL). Sets no library error.
 */
int psockdir_check(const char *path, uid_t daemon, char *why, size_t cap);

#endif
