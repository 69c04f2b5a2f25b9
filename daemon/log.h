/*
 * log - porterd's logging: one line per call on stderr.
 *
 * Under systemd (JOURNAL_STREAM set) lines carry "<N>" priority prefixes and
 * no timestamp, which journald parses; otherwise they carry a UTC timestamp
 * and the level name. Each line is written with a single write(2), so lines
 * from different threads never interleave. Thread safe; the level may be
 * changed at any time (SIGHUP reload).
 *
 * Every message is escaped by log_escape() as it is written, whatever its
 * arguments: text from clients and servers (client names, SQL, URLs, libpq
 * and libcurl errors) can never end a line, start a forged one, or send
 * escape sequences to a terminal reading the log.
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

/* Formats and writes one line (escaped; at most about 2 KiB, truncated
 * beyond). Any thread. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Copies `n` bytes of `in` (any bytes, NUL included; not NULL unless n is
 * 0) to `out` (capacity `cap`, always NUL-terminated when cap > 0),
 * escaping what a log line must not carry: control characters (below 0x20,
 * and 0x7f) and every byte that is not part of well-formed UTF-8 become
 * "\xNN", the C1 controls U+0080..U+009F too (per byte), and a backslash
 * becomes "\\", so an escaped line is unambiguous. Valid UTF-8 text is
 * kept. Stops before an escape or character that would not fit. Returns
 * the bytes written, without the NUL. Thread safe.
 */
size_t log_escape(const char *in, size_t n, char *out, size_t cap);

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
