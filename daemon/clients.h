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
struct worker;

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

/* porterd's effective uid, read once (porterd never changes it): the uid
 * whose clients are local (every other is foreign) and the owner its own
 * files and per-user directories must have. The one copy every module
 * asks, on the path of every request where it matters, so no system call
 * after the first (geteuid is one). Any thread. */
uid_t clients_self(void);

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

/*
 * Per-uid accounting: what each uid holds, so one uid's flood is its own
 * problem. A clients_acct names one uid's counters; it stays valid while
 * referenced (clients_acct_ref/unref; a connection holds one from accept
 * to its free). Counters are atomics: any thread may take and put without
 * the registry's lock.
 */
enum clients_res {
	CLIENTS_CONNS,        /* open connections (acceptor takes, conn free puts) */
	CLIENTS_INFLIGHT,     /* requests being processed, all connections */
	CLIENTS_BUFFERED,     /* bytes held for it: unsent replies, read buffers */
	CLIENTS_SESSIONS,     /* database connections: sessions and pooled (db) */
	CLIENTS_STREAMS,      /* cursors, HTTP and file streams (for services) */
	CLIENTS_FILE_STREAMS, /* file readers, writers and watches (fsstream) */
	CLIENTS_RES_N,
};

typedef struct clients_acct clients_acct;

/* A readable name of `res` for messages ("requests in flight"). */
const char *clients_res_name(enum clients_res res);

/* The counters of `uid`, with one reference taken; NULL when out of
 * memory (callers then count nothing, and take always succeeds). */
clients_acct *clients_acct_ref(uid_t uid);

/* Drops a reference (NULL is fine). Any thread. */
void clients_acct_unref(clients_acct *a);

/* Adds `n` to `res` unless that would pass `limit` (0: no limit). Returns
 * 1 when taken, 0 when over the limit (nothing taken). Concurrent takers
 * never pass the limit together. NULL `a` always succeeds. */
int clients_take(clients_acct *a, enum clients_res res, uint64_t n, uint64_t limit);

/* Gives back `n` of `res` taken before. */
void clients_put(clients_acct *a, enum clients_res res, uint64_t n);

/* Current value of `res` (0 for NULL). */
uint64_t clients_use(const clients_acct *a, enum clients_res res);

/* Adds `delta` to the process-wide count of unsent reply bytes and to
 * that of the uid of `a` (NULL: the total only), and returns the new
 * total (the global output bound). Any thread. */
uint64_t clients_output_add(clients_acct *a, int64_t delta);

/*
 * Paces the reading of `a`'s refused frames (a frame refused from its
 * first bytes is read and thrown away, and the uid's time to do so is
 * shared by all its connections on every worker): books `ms` of that time
 * from `now` (uv_now, ms: the workers' loops read the same monotonic
 * clock) or from the end of the uid's last booking if later, and returns
 * when the booking ends, when the connection may read again. NULL `a`:
 * from `now`. Any thread.
 */
uint64_t clients_discard_pace(clients_acct *a, uint64_t now, uint64_t ms);

/*
 * Whether the uid of `a` holds more unsent reply bytes than an even share
 * of `limit`: the limit divided by the uids holding any (1 for NULL `a`,
 * whose bytes are not known). Past output-soft-limit only such a uid's
 * connections are dropped: the limit is every uid's, and one uid alone
 * may hold as much as uid-max-buffered, by default the same amount.
 * Any thread.
 */
int clients_output_over_share(const clients_acct *a, uint64_t limit);

/* One uid's usage, for stats and metrics. */
typedef struct clients_uid_usage {
	uid_t uid;
	uint64_t use[CLIENTS_RES_N];
} clients_uid_usage;

/* Copies the usage of `uid` into `out`: 1, or 0 when it holds nothing
 * known. Any thread. */
int clients_uid_usage_get(uid_t uid, clients_uid_usage *out);

/* Copies the usage of up to `cap` uids that hold something into `out`;
 * returns how many there are (may exceed `cap`). Any thread. */
size_t clients_uid_snapshot(clients_uid_usage *out, size_t cap);

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
	struct worker *worker; /* the worker itself (its loop thread runs the hooks) */
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
