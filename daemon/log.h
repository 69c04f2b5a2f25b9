/*
 * log - porterd's logging: one line per call on stderr.
 *
 * Under systemd (JOURNAL_STREAM set) lines carry "<N>" priority prefixes and
 * no timestamp, which journald parses; otherwise they carry a UTC timestamp
 * and the level name. Each line is written with a single write(2), so lines
 * from different threads never interleave. Thread safe; the level may be
 * changed at any time (SIGHUP reload).
 */
#ifndef PORTER_LOG_H
#define PORTER_LOG_H

#include <stddef.h>

enum log_level {
	LOG_LVL_ERROR = 3, /* syslog priorities, so "<N>" needs no mapping */
	LOG_LVL_WARN = 4,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7,
};

/* Sets up the prefix style from the environment; call once at start-up. */
void log_init(void);

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parses "error", "warn", "info" or "debug". Returns 0 or PORTER_E_INVAL. */
int log_parse_level(const char *s, enum log_level *out);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Copies a PostgreSQL connection string `in` to `out` (capacity `outlen`,
 * always NUL-terminated, truncated if short) with every password replaced
 * by "***", so conninfo can be logged: the key=value form (password=...,
 * quoted or not) and the URI form (postgresql://user:secret@host/db and a
 * ?password=... parameter). Thread safe.
 */
void log_mask_conninfo(const char *in, char *out, size_t outlen);

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
