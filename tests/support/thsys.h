/* thsys - what tests do to the system without a shell: running programs
 * and removing directory trees.
 *
 * A path built into a shell command line breaks on a space and escapes on
 * a quote; these helpers hand each argument to execvp as it is (and remove
 * trees with nftw), so a test directory or conninfo may hold anything.
 * None of them asserts (unit suites and benches use them too): failures
 * come back as -1. Any thread may call them; each call waits only for the
 * child it started. */
#ifndef PORTER_TEST_THSYS_H
#define PORTER_TEST_THSYS_H

#include <stddef.h>
#include <sys/types.h>

/* Where the child's standard error goes (its standard output always goes
 * to the pipe th_spawn returns, or for th_run with out NULL to /dev/null). */
enum {
	TH_ERR_KEEP = 0, /* the test's own standard error */
	TH_ERR_OUT = 1,  /* with the standard output (a shell's 2>&1) */
	TH_ERR_NULL = 2, /* /dev/null */
};

/* Starts argv[0] (a path, or a name looked up in PATH) with the
 * NULL-terminated `argv` (not NULL), no shell between. Its standard input
 * is the write end handed back in *in_fd when in_fd is not NULL (close it
 * to give end of input), /dev/null otherwise; its standard output is the
 * read end handed back in *out_fd (not NULL), its standard error as `err`
 * says. The descriptors are close-on-exec in the caller. Returns the
 * child's pid, or -1 (nothing left open) when it could not start; a
 * program that is not found exits 127. Reap it with th_collect. */
pid_t th_spawn(const char *const *argv, int err, int *in_fd, int *out_fd);

/* Reads the child's output from `out_fd` to its end, keeping up to
 * cap - 1 bytes in `out` (NUL-terminated; out may be NULL with cap 0 to
 * drop it) and their number in *len (len may be NULL), closes out_fd and
 * reaps `pid`. Returns its exit status, or -1 when it died of a signal. */
int th_collect(pid_t pid, int out_fd, char *out, size_t cap, size_t *len);

/* Runs `argv` as th_spawn does to the end: writes the `in_len` bytes at
 * `in` to its standard input (in NULL: none, end of input at once) while
 * reading its output into `out` as th_collect does (out NULL: standard
 * output to /dev/null). Returns its exit status; -1 when it could not
 * start or died of a signal. */
int th_run(const char *const *argv, int err, const void *in, size_t in_len, char *out, size_t cap,
	   size_t *len);

/* Removes `path` (not NULL) and everything below it, never following
 * symlinks. Returns 0 when nothing is left at `path` (a path that was
 * never there included), -1 when something could not be removed. */
int th_rm_rf(const char *path);

#endif
