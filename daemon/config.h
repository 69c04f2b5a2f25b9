/*
 * config - porterd's settings: one table of keys, each with its type,
 * bounds, default and help, read from built-in defaults, then an optional
 * configuration file, then command-line flags (flags win).
 *
 * File format: one "key = value" per line; blank lines and lines starting
 * with '#' are ignored; keys are the long flag names without "--"; list
 * values are comma-separated. Errors name the file, line and key.
 *
 * Without --config, the default file (PORTER_DEFAULT_CONFIG,
 * /etc/porter/porterd.conf) is read when it exists; its absence is not an
 * error. --config FILE replaces it; --config '' reads no file at all.
 *
 * A config is filled in on one thread and is read-only once published. Live
 * reload (SIGHUP) builds a new generation on the acceptor thread and hands
 * each worker a reference through its inbox; a generation is freed when its
 * last holder drops it (config_unref), so no thread ever sees a config
 * change or vanish under it.
 */
#ifndef PORTER_CONFIG_H
#define PORTER_CONFIG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "log.h"

#define CONFIG_MAX_UIDS 64
#define CONFIG_MAX_WORKERS 256
#define CONFIG_PATH_MAX 108 /* sun_path capacity */
#ifndef PORTER_DEFAULT_CONFIG
#define PORTER_DEFAULT_CONFIG "/etc/porter/porterd.conf"
#endif

/* A list of strings (file roots, host allow-lists). Owned by the config. */
typedef struct config_list {
	char **items;
	size_t n;
} config_list;

typedef struct config {
	char *config_file;                 /* file read, or NULL */
	char socket_path[CONFIG_PATH_MAX]; /* "" until resolved */
	unsigned workers;                  /* worker loops; 0: config_default_workers */
	enum log_level log_level;
	uid_t allow_uids[CONFIG_MAX_UIDS];   /* peers allowed to connect */
	size_t n_allow_uids;                 /* 0 means the daemon's own uid */
	int allow_any_uid;                   /* "allow-uid = any": the socket's mode decides */
	int allow_uid_set;                   /* allow-uid was given (file or flag) */
	gid_t allow_gids[CONFIG_MAX_UIDS];   /* peers in these groups may connect too */
	size_t n_allow_gids;                 /* 0: no group is allowed as such */
	uint32_t hello_max_frame;            /* frame limit before Hello */
	uint32_t max_frame;                  /* frame limit after Hello */
	uint32_t busy_poll_us;               /* spin this long after I/O before blocking */
	uint32_t max_inflight;               /* requests processed at once per connection */
	uint64_t output_cap;                 /* unsent reply bytes before a client is dropped */
	uint32_t uid_max_connections;        /* per uid; 0: half the descriptor limit */
	uint32_t uid_max_inflight;           /* requests in flight per uid, all connections */
	uint64_t uid_max_buffered;           /* unsent reply and read-buffer bytes per uid */
	uint64_t output_soft;                /* all unsent replies: big holders dropped past it */
	uint64_t output_hard;                /* all unsent replies: any holder dropped past it */
	uint32_t idle_timeout_ms;            /* close idle connections; 0 never */
	uint32_t frame_timeout_ms;           /* close a connection stalled mid-frame */
	uint32_t default_timeout_ms;         /* deadline of a request that names none */
	uint32_t max_timeout_ms;             /* longer deadlines are clamped to this */
	uint32_t shutdown_grace_ms;          /* in-flight work may finish this long */
	uint32_t batch_max_members;          /* members one Batch may have */
	uint32_t metrics_interval_ms;        /* how often metrics-file is rewritten */
	char *metrics_file;                  /* Prometheus text file, or NULL (off) */
	char *metrics_listen;                /* loopback "HOST:PORT" for GET /metrics, or NULL */
	int metrics_uid_usage;               /* list porter_uid_usage (every uid, to all readers) */
	config_list file_roots;              /* "name=/path" items; empty: the default root */
	uint32_t file_chunk;                 /* largest file chunk in one reply or request */
	char *file_resolve;                  /* "auto" (openat2, else walk) or "walk" */
	uint32_t file_max_streams;           /* open file streams per connection */
	int file_pass_fd;                    /* pass open files to clients (SCM_RIGHTS) */
	uint32_t file_max_streams_per_uid;   /* open file streams (and watches) per uid */
	uint32_t file_stream_idle_ms;        /* reclaim file streams unused this long */
	int file_fast_path;                  /* small reads and stats on the loop if cached */
	char *file_max_mode;                 /* octal ceiling of created files' modes */
	char *file_max_dir_mode;             /* octal ceiling of created directories' modes */
	uint32_t db_pool_size;               /* pooled PG connections per worker and conninfo */
	uint32_t db_pool_idle_ms;            /* idle pooled connections are closed after this */
	uint32_t db_statement_cache;         /* prepared statements per pooled connection */
	uint32_t db_session_idle_ms;         /* idle sessions are closed; 0 never */
	uint32_t db_session_grace_ms;        /* sessions outlive their client this long */
	uint32_t db_max_sessions;            /* open sessions per worker */
	uint32_t db_stream_idle_ms;          /* unread pooled cursors are reclaimed after this */
	uint32_t db_max_connections_per_uid; /* PG connections of one uid; 0 no limit */
	config_list db_allow_targets;        /* host:port patterns foreign clients may reach */
	config_list db_tls_root_cert;        /* "target=FILE": sslrootcert per target */
	int check_only;                      /* --check-config: validate and exit */
	int print_example;                   /* --print-example-config: print and exit */
	_Atomic unsigned refs;               /* holders of a config_alloc()ed generation */
	/* Which generation this is: a serial number config_alloc takes, never
	 * reused. Holders that remember a generation compare this, not the
	 * address: a freed generation's address comes back with a later one. */
	uint64_t generation;
	/* HTTP */
	uint64_t http_max_response;         /* largest whole (unstreamed) response body */
	uint32_t http_max_redirects;        /* redirects followed at most */
	uint32_t http_chunk_size;           /* stream chunk size (and its maximum) */
	uint32_t http_stream_idle_ms;       /* reclaim streams nobody pulls this long */
	uint32_t http_max_streams;          /* open streams per worker */
	uint32_t http_max_streams_per_uid;  /* open streams per client uid, all workers */
	uint32_t http_connect_timeout_ms;   /* bound of one connection attempt */
	uint32_t http_max_host_connections; /* per worker and host; 0 unlimited */
	config_list http_allow_hosts;       /* empty: any host */
	char *http_ca_file;                 /* CA bundle, or NULL for libcurl's default */
	char *http_ca_path;                 /* CA directory, or NULL */
	int http_tls_verify;                /* verify peer certificates and host names */
	int http_share;                     /* share DNS and TLS session caches across workers */
} config;

/* Fills `c` with the built-in defaults. */
void config_defaults(config *c);

/* Frees what `c` owns (strings, lists); `c` may be filled again. */
void config_free(config *c);

/* A heap config filled with the defaults, with one reference held by the
 * caller; NULL when out of memory. */
config *config_alloc(void);

/* Takes one more reference to a config_alloc()ed `c`; any thread. */
config *config_ref(config *c);

/* Drops one reference; the last one frees `c`. Any thread; NULL is fine. */
void config_unref(config *c);

/*
 * Applies command-line flags to `c`, reading the file named by --config
 * first when given. Returns 0 to run, 1 when --help or --version was
 * printed to `out` (exit 0), or PORTER_E_INVAL after printing the reason to
 * `err` (exit 2).
 */
int config_parse_args(config *c, int argc, char **argv, FILE *out, FILE *err);

/*
 * Applies the settings in file `path` to `c`. Returns 0, or PORTER_E_INVAL
 * after printing "path:line: key: reason" lines to `err`; a file that
 * another uid than root or porterd's could change is refused whole
 * (confsafe.h).
 */
int config_load_file(config *c, const char *path, FILE *err);

/*
 * Fills in what defaults to the environment: the socket path (the shared
 * default) and the worker count (config_default_workers of the CPUs the
 * process may run on). Returns 0 or PORTER_E_INVAL.
 */
int config_resolve(config *c);

/*
 * The worker loops `workers = 0` gives on `ncpu` usable CPUs: half of
 * them, at least 1, at most CONFIG_MAX_WORKERS. Pure; any thread.
 */
unsigned config_default_workers(unsigned ncpu);

/*
 * Parses metrics-listen ("127.0.0.1:PORT", "localhost:PORT" or
 * "[::1]:PORT"; only loopback) into `ss`. Returns 0 or PORTER_E_INVAL.
 */
struct sockaddr_storage;
int config_parse_loopback(const char *s, struct sockaddr_storage *ss);

/*
 * For a setting read only at start (a string or list key named `name`):
 * when reload generation `nc` changes it, puts back the running value from
 * `old`, so the new generation says what is in effect. Returns 1 when it
 * differed (the caller says a restart is needed), 0 when it did not,
 * PORTER_E_NOMEM, or PORTER_E_INVAL for an unknown key or another type.
 * Acceptor thread, before `nc` is published.
 */
int config_keep_running(config *nc, const config *old, const char *name);

/* True when `uid` may connect ("any" allows every uid). */
int config_uid_allowed(const config *c, uid_t uid);

/* True when a peer of primary group `gid` and supplementary groups
 * `groups` (`n`; NULL when 0) is in a group of allow-gid. */
int config_gid_allowed(const config *c, gid_t gid, const gid_t *groups, size_t n);

/* Prints the usage text, every key with its default. */
void config_usage(FILE *out);

/* Writes every key with its current value in the file format. */
void config_dump(const config *c, FILE *out);

/*
 * Writes the example configuration file: the format, then every key with
 * its help and its default (keys without a built-in default commented out).
 * systemd/porterd.conf is this output; a test keeps the two identical.
 */
void config_example(FILE *out);

#endif
