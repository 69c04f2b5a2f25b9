/*
 * listen - the Unix socket porterd creates itself when systemd passes none:
 * its directory (created 0700, and checked when it is the shared default),
 * the lock that keeps two daemons off one path, the removal of a stale
 * socket, and the socket's mode and group, which follow allow-uid and
 * allow-gid (see "Who may connect" in the README).
 *
 * Acceptor thread only. Nothing here but listen_refuse_fds and
 * listen_screen runs for a socket from systemd.
 */
#ifndef PORTER_LISTEN_H
#define PORTER_LISTEN_H

#include "server.h"

/* Creates, binds and listens on srv->cfg->socket_path; fills listen_fd,
 * lock_fd, created_socket, sock_dev/ino, own_dir and sock_dir, and applies
 * the access of the current allow-lists. 0, or -1 after logging why. */
int listen_open(server *srv);

/* Sets the socket's (and an own directory's) mode and group for the
 * current srv->cfg; after a reload too. Logs what it set, and warns when a
 * directory above keeps the allowed peers out. Never fails. */
void listen_apply_access(server *srv);

/*
 * Makes the Unix socket `fd` (a listener, whose later connections inherit
 * it, or a connection) refuse descriptors its peers send (SO_PASSRIGHTS
 * off: their sendmsg fails with EPERM). 0, or -1 when the kernel (before
 * Linux 6.16) or the build cannot; then, when `warn`, a warning says what
 * a client can do.
 */
int listen_refuse_fds(int fd, int warn);

/*
 * For connection `fd` accepted from systemd's socket: one made before
 * porterd set SO_PASSRIGHTS there (while porterd was not running: the
 * connection that starts it, or any made during a restart) still takes
 * descriptors; it is made to refuse them from now on, and when what it
 * queued already carries one, it is closed on a detached thread of its
 * own (the release may wait) and 1 returned: the caller forgets `fd`.
 * 0 otherwise (the caller serves it).
 */
int listen_screen(int fd);

/* Unlinks the socket file if it is still the one we created. */
void listen_remove(server *srv);

#endif
