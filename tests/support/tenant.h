/*
 * tenant - several local users for the trust tests: porterd running as an
 * unprivileged uid and clients of two other uids, made by number with fork
 * and setuid (no passwd entries are created, so nothing needs cleaning up
 * but the processes and the daemon's directory).
 *
 * Needs root (CI runs as root). Not thread safe: call from the test's main
 * thread, like the rest of the harness.
 */
#ifndef PORTER_TENANT_H
#define PORTER_TENANT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "harness.h"

#define TH_UID_DAEMON 61010 /* porterd's own uid in trust tests */
#define TH_UID_ALICE 61011  /* a foreign client */
#define TH_UID_BOB 61012    /* another foreign client */
#define TH_GID_PORTER 61020 /* group of the clients and of the daemon */

/* 1 when the tests can change uid (the process is root), else 0. */
int th_tenant_available(void);

/*
 * Starts porterd as `uid`/`gid` (supplementary groups: `gid` only), like
 * th_daemon_start otherwise: a new temp directory owned by `uid`, holding a
 * private copy of the porterd binary (so it runs whatever the checkout's
 * permissions), a HOME directory `d->dir`/home owned by `uid`, the socket
 * and the log. Once porterd listens, the socket gets group TH_GID_PORTER and
 * mode 0660, as the system unit's SocketGroup=/SocketMode= would give it.
 * `extra` is NULL or NULL-terminated extra arguments. Returns 0 or -1 (the
 * log is printed on failure).
 */
int th_daemon_start_as(th_daemon *d, uid_t uid, gid_t gid, const char *const *extra);

/* For th_daemon_start_tcp: porterd as the test's own uid (th_daemon_start). */
#define TH_UID_SELF ((uid_t)-1)

/*
 * Starts porterd with `args` (NULL-terminated, not NULL) whose element
 * `at` is the value of --metrics-listen: this sets it to "127.0.0.1:PORT"
 * (static storage, valid until the next call) for a loopback port nothing
 * held when picked. As `uid`/`gid` (th_daemon_start_as), or with
 * TH_UID_SELF as the test's own uid (th_daemon_start). Returns the port
 * once porterd's log says it serves metrics there. The port is picked by
 * bind(0) + close, so another process may take it before porterd binds
 * it; porterd then exits at start (after its Unix socket already
 * accepted): a start that never serves within 10 s is stopped (its log
 * printed) and retried on another port, up to 5 times. Asserts that one
 * came up.
 */
int th_daemon_start_tcp(th_daemon *d, uid_t uid, gid_t gid, const char **args, size_t at);

/* The usual start of a multi-uid test: porterd as TH_UID_DAEMON in group
 * TH_GID_PORTER with `extra` (asserts that it started), and `shared`
 * zeroed bytes of th_shared_alloc memory for the children's results
 * (asserted non-NULL), which it returns. */
void *th_tenant_up(th_daemon *d, const char *const *extra, size_t shared);

/* th_daemon_start_as, but the socket keeps the mode and group porterd gave
 * it (no SocketMode=/SocketGroup= stand-in), for tests of what porterd
 * does with allow-uid and allow-gid: it is `d->dir`/run/porter.sock, in a
 * directory porterd creates itself (`d->dir` stays 0755). */
int th_daemon_start_as_own_socket(th_daemon *d, uid_t uid, gid_t gid, const char *const *extra);

/* Gives the daemons started afterwards (th_daemon_start_as*) a descriptor
 * limit of `n`, soft and hard, set in the child before exec, so tests can
 * run porterd out of descriptors without touching their own limit; 0
 * (the default) leaves the inherited limit. */
void th_tenant_daemon_nofile(rlim_t n);

/* The daemon's HOME directory (`d->dir`/home), for planting files there
 * (.pgpass, .pg_service.conf, ...). Static storage: copy it. */
const char *th_daemon_home(const th_daemon *d);

/*
 * Runs fn(arg) in a forked child that dropped to `uid`/`gid` (supplementary
 * groups: `gid` only) and starts with a fresh libporter state (new client
 * instance, no connection inherited from the parent). Returns fn's return
 * value (0-255), or -1 when the child crashed or ran over `timeout_ms` (it
 * is then killed). Results larger than a byte come back through memory
 * from th_shared_alloc.
 */
int th_as(uid_t uid, gid_t gid, int timeout_ms, int (*fn)(void *arg), void *arg);

/* `n` zeroed bytes shared with every child forked after the call
 * (MAP_SHARED). Lives until the process exits; NULL when out of memory. */
void *th_shared_alloc(size_t n);

/* In a function run by th_as: makes it return 1 (after printing the
 * call, what it gave and what was wanted, with the uid and line) when
 * `call` does not give the porter code `want`. */
#define TH_EXPECT(call, want)                                                                      \
	do {                                                                                       \
		int rc_ = (call);                                                                  \
		if (rc_ != (want)) {                                                               \
			fprintf(stderr, "uid %u, line %d: %s gave %s (%s), want %s\n",             \
				(unsigned)getuid(), __LINE__, #call, porter_error_name(rc_),       \
				porter_last_error_message(), porter_error_name(want));             \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

/* 0 when `path` in `root` (porter_file_read's arguments) holds exactly the
 * text `want`; the read's code, or PORTER_E_INTERNAL for other bytes. */
int th_has_content(const char *root, const char *path, const char *want, int timeout_ms);

struct porter_uid_usage;

/* What porterd's stats say the calling process's uid holds, into `*out`.
 * Returns 0, or -1 when the stats fail or have no entry for the uid. */
int th_own_usage(struct porter_uid_usage *out);

/* 0 when porterd's stats say the calling process's uid holds fewer than
 * `bound` buffered bytes; else 1, after saying how many. */
int th_own_buffered_below(uint64_t bound);

#endif
