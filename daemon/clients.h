/*
 * clients - who is connected: the registry of client identities and the
 * hooks that run when a client connection closes.
 *
 * A client identity is a peer uid (from SO_PEERCRED, never from the client)
 * plus the client instance id its Hello carries (random, chosen once per
 * client process). The registry counts each identity's open connections
 * past Hello and remembers when the last one closed, so state that outlives
 * a connection (database sessions) can be kept for a grace period and then
 * dropped. Lookups are a hash table: one connect costs the same with 50,000
 * known identities as with 5.
 *
 * Thread safety: the registry is process-wide and guarded by one mutex; any
 * thread may call clients_attach/detach/gone_ms. Close hooks are registered
 * at start-up, before any worker runs (clients_on_close), and are only read
 * afterwards.
 */
#ifndef PORTER_CLIENTS_H
#define PORTER_CLIENTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct config;

/* An identity whose last connection closed is forgotten after this long
 * (a lookup that misses then reads as "gone long ago", which is true). */
#define CLIENTS_FORGET_MS (3600u * 1000u)
/* At most this many gone identities are remembered per uid: a client that
 * invents instance ids cannot grow the registry without bound, and its
 * churn evicts only its own uid's oldest gone identities. */
#define CLIENTS_GONE_PER_UID 4096u

/* Supplementary groups kept per peer. A peer in more groups is judged on
 * its primary group and the first ones the kernel lists (fail closed: a
 * group past these never admits it). */
#define CLIENTS_MAX_GROUPS 64

/* Who is at the other end of a connection, as the kernel saw it when the
 * peer called connect(): never anything the client sent. */
typedef struct clients_peer {
	uid_t uid;
	gid_t gid; /* primary (effective) group */
	pid_t pid;
	unsigned n_groups; /* supplementary groups in `groups` */
	gid_t groups[CLIENTS_MAX_GROUPS];
} clients_peer;

/* Fills `out` from socket `fd` (SO_PEERCRED, and SO_PEERGROUPS for the
 * supplementary groups; a kernel without it leaves them out, so only the
 * primary group counts). Returns 0, or -errno when SO_PEERCRED fails. */
int clients_peer_read(int fd, clients_peer *out);

/*
 * True when `peer` may use the daemon under `cfg`: its uid is in allow-uid
 * ("any" admits every uid), or its primary or a supplementary group is in
 * allow-gid. `activated`: the socket came from systemd, where SocketMode=
 * and SocketGroup= decide alone unless allow-uid or allow-gid was set.
 * Checked at accept and, for every open connection, after each reload.
 * Any thread (cfg is read-only).
 */
int clients_peer_allowed(const struct config *cfg, int activated, const clients_peer *peer);

/* Counts one more open connection of (uid, instance), created on first use.
 * Out of memory leaves it uncounted (its lookups then read as gone). */
void clients_attach(uid_t uid, uint64_t instance);

/* Counts one connection of (uid, instance) less; an unknown identity or one
 * already at zero is ignored. */
void clients_detach(uid_t uid, uint64_t instance);

/* 0 while (uid, instance) has an open connection; else the milliseconds
 * since its last one closed (at least 1); UINT64_MAX if never seen or
 * forgotten. */
uint64_t clients_gone_ms(uid_t uid, uint64_t instance);

/* Identities currently known (open or remembered as gone); for tests and
 * stats. */
size_t clients_known(void);

/* Forgets every identity (tests, and exit so leak checkers stay quiet).
 * No other thread may be using the registry. */
void clients_reset(void);

/* What a closing connection tells the hooks. `had_hello`: the connection got
 * past Hello, so `instance` is meaningful and it was attached. */
typedef struct clients_conn_info {
	unsigned worker_index; /* the worker loop the connection lived on */
	uint64_t conn_serial;  /* unique per worker */
	uid_t uid;
	uint64_t instance;
	int had_hello;
} clients_conn_info;

/* Runs on the connection's worker thread, inside conn_close(): it must not
 * block, and must not call back into the conn. `info` is borrowed. */
typedef void (*clients_close_hook)(const clients_conn_info *info);

/* Registers `fn` (not NULL) to run for every closing connection, in
 * registration order. Start-up only (before workers run). Returns 0, or
 * PORTER_E_INTERNAL when the (small, fixed) hook table is full. */
int clients_on_close(clients_close_hook fn);

/* Called by conn when a connection closes: detaches the identity if it had
 * said Hello, then runs every hook. Worker thread of the connection. */
void clients_conn_closed(const clients_conn_info *info);

#endif
