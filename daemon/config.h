/*
 * config - porterd's settings: one table of keys, each with its type,
 * bounds, default and help, read from built-in defaults, then an optional
 * configuration file, then command-line flags (flags win).
 *
 * File format: one "key = value" per line; blank lines and lines starting
 * with '#' are ignored; keys are the long flag names without "--"; list
 * values are comma-separated. Errors name the file, line and key.
 *
 * A config is filled in on the main thread before any worker starts and is
 * read-only while workers run.
 */
#ifndef PORTER_CONFIG_H
#define PORTER_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "log.h"

#define CONFIG_MAX_UIDS 64
#define CONFIG_MAX_WORKERS 256
#define CONFIG_PATH_MAX 108 /* sun_path capacity */

/* A list of strings (file roots, host allow-lists). Owned by the config. */
typedef struct config_list {
	char **items;
	size_t n;
} config_list;

typedef struct config {
	char *config_file;         /* file read, or NULL */
	char socket_path[CONFIG_PATH_MAX]; /* "" until resolved */
	unsigned workers;          /* worker loops; 0 means one per CPU */
	enum log_level log_level;
	uid_t allow_uids[CONFIG_MAX_UIDS]; /* peers allowed to connect */
	size_t n_allow_uids;       /* 0 means the daemon's own uid */
	uint32_t hello_max_frame;  /* frame limit before Hello */
	uint32_t max_frame;        /* frame limit after Hello */
	uint32_t max_inflight;     /* requests processed at once per connection */
	uint64_t output_cap;       /* unsent reply bytes before a client is dropped */
	uint32_t idle_timeout_ms;  /* close idle connections; 0 never */
	uint32_t frame_timeout_ms; /* close a connection stalled mid-frame */
	uint32_t default_timeout_ms; /* deadline of a request that names none */
	uint32_t max_timeout_ms;   /* longer deadlines are clamped to this */
	uint32_t shutdown_grace_ms; /* in-flight work may finish this long */
	uint32_t db_pool_size;     /* pooled PG connections per worker and conninfo */
	uint32_t db_pool_idle_ms;  /* idle pooled connections are closed after this */
	uint32_t db_session_idle_ms; /* idle sessions are closed; 0 never */
	uint32_t db_session_grace_ms; /* sessions outlive their client this long */
	uint32_t db_max_sessions;  /* open sessions per worker */
	int check_only;            /* --check-config: validate and exit */
} config;

/* Fills `c` with the built-in defaults. */
void config_defaults(config *c);

/* Frees what `c` owns (strings, lists); `c` may be filled again. */
void config_free(config *c);

/*
 * Applies command-line flags to `c`, reading the file named by --config
 * first when given. Returns 0 to run, 1 when --help or --version was
 * printed to `out` (exit 0), or PORTER_E_INVAL after printing the reason to
 * `err` (exit 2).
 */
int config_parse_args(config *c, int argc, char **argv, FILE *out, FILE *err);

/*
 * Applies the settings in file `path` to `c`. Returns 0, or PORTER_E_INVAL
 * after printing "path:line: key: reason" lines to `err`.
 */
int config_load_file(config *c, const char *path, FILE *err);

/*
 * Fills in what defaults to the environment: the socket path (the shared
 * default) and the worker count (CPUs). Returns 0 or PORTER_E_INVAL.
 */
int config_resolve(config *c);

/* True when `uid` may connect. */
int config_uid_allowed(const config *c, uid_t uid);

/* Prints the usage text, every key with its default. */
void config_usage(FILE *out);

/* Writes every key with its current value in the file format. */
void config_dump(const config *c, FILE *out);

#endif
