/*
 * ctl - what porterctl's command files share: options, exit codes, errors.
 *
 * Each command group lives in its own file (ctl_<group>.c) and is listed in
 * the command table in porterctl.c. Single-threaded.
 */
#ifndef PORTER_CTL_H
#define PORTER_CTL_H

/* Exit codes, documented in --help. */
enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,      /* the daemon answered with an error, or a timeout */
	EXIT_USAGE = 2,       /* bad command line */
	EXIT_UNREACHABLE = 3, /* no daemon, or it stopped answering */
};

/* Global options, parsed before the command. */
typedef struct ctl_opts {
	int json;       /* --json: print JSON instead of tables */
	int timeout_ms; /* --timeout: per-call timeout */
} ctl_opts;

/* Maps a libporter code to porterctl's exit status. */
int ctl_exit_code(int rc);

/* Prints the calling thread's last libporter error; returns the exit status
 * for `rc`. */
int ctl_fail(int rc);

/* Parses a decimal integer in [min, max]. 0 or -1. */
int ctl_parse_long(const char *s, long min, long max, long *out);

/* `porterctl file cat|put|rm|stat|ls` (ctl_file.c). argv[0] is "file". */
int ctl_file(const ctl_opts *o, int argc, char **argv);
/* `db` command group (ctl_db.c). */
int ctl_db(const ctl_opts *o, int argc, char **argv);
/* `porterctl http get|post|request ...` (ctl_http.c). argv[0] is "http". */
int ctl_http(const ctl_opts *o, int argc, char **argv);

/* `porterctl batch [--first] [FILE]` (ctl_batch.c): a JSON list of operations. */
int ctl_batch(const ctl_opts *o, int argc, char **argv);

#endif
