/*
 * ctl - what porterctl's command files share: options, exit codes, errors.
 *
 * Each command group lives in its own file (ctl_<group>.c) and is listed in
 * the command table in porterctl.c. Single-threaded.
 */
#ifndef PORTER_CTL_H
#define PORTER_CTL_H

#include <stddef.h>
#include <stdio.h>

/*
 * Exit codes: one rule for every command, printed by `porterctl --help`
 * and in the README. `http` refines EXIT_FAILED into curl's numbers for
 * the failures curl names (see ctl_http.c), so curl scripts keep working.
 */
enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,      /* the operation failed: the daemon, the database or the
			       * server said no, a timeout, a local file unreadable */
	EXIT_USAGE = 2,       /* the command line was wrong (porterctl's own parse) */
	EXIT_UNREACHABLE = 3, /* no daemon, it refused this user, or it went away */
};

/* Global options, parsed before the command. */
typedef struct ctl_opts {
	int json;        /* --json: every output and every error as JSON on stdout */
	int timeout_ms;  /* --timeout: per-call timeout */
	int timeout_set; /* --timeout was given (http takes it as -m's default) */
} ctl_opts;

/* Remembers --json for ctl_fail and ctl_error; main calls it once. */
void ctl_set_json(int json);
/* The --json flag given to ctl_set_json. */
int ctl_json_mode(void);

/* Maps a libporter code to porterctl's exit status (never EXIT_USAGE:
 * whatever libporter or the daemon refuses is a failed operation). */
int ctl_exit_code(int rc);

/* Reports the calling thread's last libporter error for `rc` (stderr, or a
 * JSON error object on stdout under --json); returns the exit status. */
int ctl_fail(int rc);
/* ctl_fail, followed by `hint` (NULL: none), what to do instead: "to
 * delete an empty directory: porterctl file rm -d". */
int ctl_fail_hint(int rc, const char *hint);

/* Reports porterctl's own failure: `fmt` starts with the command ("db:
 * ..."); `code` names it in JSON ("usage", "io", ...). Returns `status`. */
int ctl_error(int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Flushes stdout and, when anything written to it did not get there (a
 * full disk, a closed descriptor, a reader gone while SIGPIPE is
 * ignored), says so on stderr (under --json too: stdout is what failed)
 * and turns EXIT_OK into EXIT_FAILED; any other `status` is returned as
 * it is, its failure already reported. main runs it after every command,
 * so that no command exits 0 having lost its output.
 */
int ctl_stdout_finish(int status);

/* Whether a write to stdout has failed so far (its error indicator): a
 * command pulling a result of any size stops pulling once it has. */
int ctl_stdout_broken(void);

/* Prints {"error":{"code":code,"message":msg,"exit":status}} on stdout,
 * and `msg` on stderr too when stdout cannot be written. */
void ctl_json_error(const char *code, const char *msg, int status);

/* Writes `len` bytes as a JSON string to `f`; bytes that are not UTF-8
 * become U+FFFD so the output always parses. `data` not NULL. */
void ctl_json_str(FILE *f, const void *data, size_t len);
/* Same for a NUL-terminated string; NULL prints "". */
void ctl_json_cstr(FILE *f, const char *s);

/* Writes `data` (n bytes) to `out` in base64 with padding, NUL-terminated;
 * `out` holds 4 * ((n + 2) / 3) + 1 bytes. Returns the length written. */
size_t ctl_base64(const void *data, size_t n, char *out);

/* Writes a JSON member for a body: "body":"..." when `data` (n bytes) is
 * UTF-8 text without NUL bytes, else "body_base64":"...". */
void ctl_json_body(FILE *f, const void *data, size_t n);

/* Length (1..4) of the well-formed UTF-8 sequence at s[0..n), storing its
 * code point in `*cp`, or 0 when the bytes are not one. n >= 1. */
size_t ctl_utf8_len(const unsigned char *s, size_t n, unsigned *cp);

/* Writes the file name `s` (not NULL) to `f` for a person: on a terminal,
 * a byte that is not part of a UTF-8 character, and a control character,
 * as \xNN (a terminal shows every such byte as the same '?' or U+FFFD, so
 * two names differing only there looked alike, and a control byte would
 * act on the terminal); elsewhere (a pipe, a file) as it is, byte for
 * byte, for scripts, as ls(1) does. */
void ctl_name(FILE *f, const char *s);

/* Parses a decimal integer in [min, max]. 0 or -1. */
int ctl_parse_long(const char *s, long min, long max, long *out);

/*
 * What getopt's answer `c` ('?' or ':') says about the command line
 * `argv`, in one phrase naming the option as it was typed: "unknown option
 * '--frob'", "unknown option '-Z'", "option '-c' needs a value". Every
 * command's optstring starts with ':' (after main's '+') and sets opterr to
 * 0, so getopt itself prints nothing (its own line named the binary's full
 * path, said nothing under --json, and came apart from porterctl's). Reads
 * getopt's optopt and optind: call it right after getopt returned `c`.
 * Writes to `buf` (`cap` bytes, not NULL) and returns it.
 */
const char *ctl_opt_problem(int c, char *const *argv, char *buf, size_t cap);

/* `porterctl file cat|put|rm|stat|ls` (ctl_file.c). argv[0] is "file". */
int ctl_file(const ctl_opts *o, int argc, char **argv);
/* `db` command group (ctl_db.c). */
int ctl_db(const ctl_opts *o, int argc, char **argv);

/* Where `db` connects: CONNINFO or -d (NULL: none), and -h, -p, -U (NULL:
 * not given). */
typedef struct db_target {
	const char *conninfo;
	const char *host, *port, *user;
} db_target;

/*
 * The conninfo `db` sends (a batch's db members too): what the user gave
 * (a bare word is a database name, as in psql), then -h/-p/-U, then the
 * PG* environment for what is still missing, then the login name as the
 * user and the user as the database. Keywords that name a file are
 * refused. Returns a malloc'd string, or NULL with the reason in `why`.
 */
char *ctl_db_conninfo(const db_target *t, char *why, size_t why_len);
/* `porterctl http get|post|request ...` (ctl_http.c). argv[0] is "http". */
int ctl_http(const ctl_opts *o, int argc, char **argv);

/* `porterctl batch [--first] [FILE]` (ctl_batch.c): a JSON list of operations. */
int ctl_batch(const ctl_opts *o, int argc, char **argv);

#endif
