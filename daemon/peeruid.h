/*
 * peeruid - which uid holds the other end of a loopback TCP connection.
 *
 * A Unix socket tells its peer's uid (SO_PEERCRED); a TCP socket does not.
 * On loopback both ends are sockets of this host, so the kernel knows the
 * owner of the peer's socket: sock_diag (NETLINK_SOCK_DIAG, what `ss -e`
 * shows) looks one socket up by its addresses and ports and reports its
 * uid. Any uid may ask; one exact lookup costs a netlink round trip, not a
 * walk over every socket as /proc/net/tcp would.
 *
 * The metrics endpoint uses it to make room from whoever holds the most of
 * its slots (metrics.c). Main loop thread only (one netlink socket).
 */
#ifndef PORTER_PEERUID_H
#define PORTER_PEERUID_H

#include <sys/types.h>

/* A netlink socket for lookups: >= 0, or -1 when sock_diag is not
 * available (then every lookup fails and callers treat peers alike).
 * Close with close(). */
int peeruid_open(void);

/* The uid owning the peer of connected TCP socket `fd` (a loopback
 * connection accepted here), asked through netlink socket `nl` (from
 * peeruid_open). 0 with `*uid` set, or -1: no such socket, no process
 * holds it any more (closed: the kernel then says uid 0 for it, which is
 * not its owner), netlink not available, or not an IPv4/IPv6 TCP socket.
 * Never blocks. */
int peeruid_tcp(int nl, int fd, uid_t *uid);

#endif
