/*
 * harness - starts and stops a real porterd for integration tests and
 * benchmarks.
 *
 * Each daemon gets a fresh private directory under /tmp for its socket and
 * log, is killed when the test process dies (PR_SET_PDEATHSIG) and kills
 * itself after a hard time limit (SIGALRM survives exec), so no server
 * outlives its test. Not thread safe: call from the test's main thread.
 */
#ifndef PORTER_HARNESS_H
#define PORTER_HARNESS_H

#include <check.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"
#include "porter.h"
#include "porter.pb-c.h"
#include "thmain.h"
#include "thsys.h"

typedef struct th_daemon {
	pid_t pid;        /* 0 when not running */
	char dir[64];     /* private temp directory */
	char outer[48];   /* a directory holding dir, removed with it, or "" */
	char socket[100]; /* socket path inside dir (fits sun_path) */
	char log[128];    /* porterd's stderr */
} th_daemon;

/*
 * Starts porterd with `--socket` in a new temp dir plus the NULL-terminated
 * `extra` arguments (may be NULL), waits until it accepts connections
 * (up to 10 s), and points PORTER_SOCKET at it. Returns 0 or -1.
 */
int th_daemon_start(th_daemon *d, const char *const *extra);

/* True when a Unix-socket connection to `path` succeeds now. */
int th_can_connect(const char *path);

/* Waits up to 10 s for the porterd just forked as d->pid to accept
 * connections on d->socket. 0 when it does; -1 when it died first (its
 * log printed, d->pid 0) or did not listen in time (then killed, its log
 * printed). Used by the daemon starters. */
int th_daemon_wait_listening(th_daemon *d);

/* Restarts on the same socket path and directory. 0 or -1. */
int th_daemon_restart(th_daemon *d, const char *const *extra);

/* SIGTERM and wait (10 s, then SIGKILL). Returns the exit status, or -1
 * when it had to be killed or died of a signal. */
int th_daemon_stop(th_daemon *d);

/* For fixtures' teardowns: stops `d` when it runs (after disconnecting
 * the calling thread), prints its log unless it exited 0, and removes its
 * directory. Returns the exit status (0 when it was not running), for the
 * caller to assert after the rest of its clean-up. */
int th_daemon_finish(th_daemon *d);

/* SIGKILL and reap. */
void th_daemon_kill(th_daemon *d);

/* Removes the temp directory (after stop or kill). */
void th_daemon_cleanup(th_daemon *d);

/* Prints the daemon's log to stderr (for failing tests). */
void th_daemon_dump_log(const th_daemon *d);

/* Monotonic milliseconds. */
long long th_now_ms(void);

/* Monotonic nanoseconds, as a double (benchmarks). */
double th_now_ns(void);

/* qsort comparator for doubles, ascending (latency percentiles). */
int th_cmp_double(const void *a, const void *b);

/*
 * The first line of file `name` ("conninfo", "conninfo_tcp", "conninfo_pw")
 * written by tests/support/pg.sh into the directory PORTER_PG_STATE names,
 * into `out` (capacity `cap`) without its newline. Asserts that it exists.
 */
void th_pg_file(const char *name, char *out, size_t cap);

/* The directory PORTER_PG_STATE names: the fixture's server (asserts that
 * it is set, as ctest sets it for the db tests). */
const char *th_pg_state(void);

/* Runs `sh tests/support/pg.sh CMD STATE` on the fixture's server ("kill",
 * "resume", "restart": see pg.sh), no shell around it (th_run; its
 * standard output dropped, its errors on the test's). Returns its exit
 * status, -1 when it could not run. */
int th_pg_sh(const char *cmd);

/*
 * Runs `sql` (no parameters, text results, 10 s) on session `session`, or
 * pooled on `conninfo` when session is 0 (NULL otherwise), and asserts
 * success; returns the result, which the caller frees.
 */
porter_db_result *th_db_ok(uint64_t session, const char *conninfo, const char *sql);

/* th_db_ok for a statement returning one row: its first column as a
 * number (atol), the result freed. */
long th_db_long(uint64_t session, const char *conninfo, const char *sql);

/* The first number of the line `field`: (not NULL: "VmRSS", "VmHWM",
 * "Uid") of /proc/`pid`/status; -1 when unknown. */
long th_proc_status(pid_t pid, const char *field);

/*
 * Waits up to `window_ms` for each of `n` time stamps (th_now_ms values)
 * to reach `since`: `*first` and those `stride` bytes after it in turn,
 * one field of each element of an array, as TH_EACH(array, field) gives
 * them (a load thread's start of its latest success, say). Polls every
 * 10 ms. Returns 1 when all did, 0 when the window passed first. Any
 * thread; the stamps may be written meanwhile.
 */
int th_wait_stamps(atomic_llong *first, size_t stride, int n, long long since, long long window_ms);
#define TH_EACH(array, field) &(array)[0].field, sizeof((array)[0])

/* Prints to stderr a line "  failures NAME: N" for each non-zero
 * by_code[c], c < n, counting failures with code -c (c = 0: any other). */
void th_print_failures(const long long *by_code, int n);

/*
 * Runs the words of `tool` (say "strace -f -c -o FILE -p") with `pid`
 * appended as its last word, and waits up to 20 s until it traces every
 * thread of `pid` (a ptrace tool). Returns the tool's pid (the caller
 * reaps it; it ends when `pid` does and gets SIGTERM if the caller dies),
 * or -1 when it did not attach.
 */
pid_t th_attach(const char *tool, pid_t pid);

/* Resident set size of `pid` in KiB (th_proc_status "VmRSS"). */
long th_rss_kib(pid_t pid);

/* Peak resident set size of `pid` so far (VmHWM) in KiB; -1 when unknown. */
long th_hwm_kib(pid_t pid);

/* Open file descriptors of `pid`, from /proc; -1 when unknown. */
int th_fd_count(pid_t pid);

/* Entries of directory `dir` other than "." and ".." (asserts it opens). */
size_t th_dir_entries(const char *dir);

/* 1 when a line of the file at `path` (not NULL) holds `needle` (not
 * NULL; lines read in pieces of up to 4095 bytes), 0 when none does or
 * the file does not open. */
int th_file_has(const char *path, const char *needle);

/* Lines of the file at `path` (not NULL) that hold `needle` (not NULL),
 * read as th_file_has reads them; 0 when the file does not open. */
int th_file_count(const char *path, const char *needle);

/* Sends `d` (running) SIGHUP and waits up to 10 s for its log to say
 * "configuration reloaded" for the nth time since it started; asserts it
 * does. */
void th_daemon_reload(th_daemon *d, int nth);

/* Runs this build's porterctl with the arguments after `cap` (text, at
 * most 30, the list ended by NULL) through th_run, no shell: the `in_len`
 * bytes at `in` (NULL: none) on its standard input, its standard error as
 * `err` says (TH_ERR_*), up to cap - 1 bytes of its standard output in
 * `out` (not NULL, NUL-terminated). Returns its exit status; asserts that
 * it ran and exited. */
int th_ctl(const void *in, size_t in_len, int err, char *out, size_t cap, ...)
	__attribute__((sentinel));

/*
 * Check helpers for test bodies (they assert on failure).
 */

/* th_daemon_start, asserting that it started. */
void th_start(th_daemon *d, const char *const *extra);

/* Stops `d`, asserting a clean shutdown (exit 0: every loop closed with
 * uv_loop_close() == 0), and removes its directory. Disconnects the calling
 * thread first. */
void th_stop_clean(th_daemon *d);

/* Sums of the daemon's per-worker counters, through porter_stats. */
uint64_t th_total_inflight(void);
uint64_t th_total_connections(void);

/* Waits (up to 3 s) until only the caller's own stats request is in
 * flight, and asserts it: no work left behind. */
void th_expect_idle(void);

/*
 * Raw protocol, for tests that must misbehave or look at frames: each
 * helper asserts with Check on failure (call from a test body).
 */

/* A connected Unix socket to `path` (blocking). */
int th_raw_connect(const char *path);

/* Writes all of `buf`. */
void th_raw_write(int fd, const void *buf, size_t len);

/* Packs and writes one request frame. */
void th_raw_send(int fd, Porter__V1__Request *req);

/* Reads one response through `r`; NULL on EOF or after `timeout_ms`.
 * Free with porter__v1__response__free_unpacked. */
Porter__V1__Response *th_raw_recv(int fd, frame_reader *r, int timeout_ms);

/*
 * th_raw_recv that also takes the descriptors porterd passes (SCM_RIGHTS,
 * received with MSG_CMSG_CLOEXEC): each one that arrives with the bytes
 * read is appended to `fds` (room for `max`, counted in `*n_fds`; more, or
 * a truncated control message, fails the check). Files by descriptor.
 */
Porter__V1__Response *th_raw_recv_fds(int fd, frame_reader *r, int timeout_ms, int *fds, int *n_fds,
				      int max);

/* True when the peer closes the connection within `timeout_ms`. */
int th_raw_wait_closed(int fd, int timeout_ms);

/* Sends Hello with `protocol` and returns its reply (asserts that one
 * came within 5 s). Free with porter__v1__response__free_unpacked. */
Porter__V1__Response *th_raw_hello_reply(int fd, frame_reader *r, uint32_t protocol);

/* Sends Hello with `protocol` and checks the reply's status (and, when 0,
 * that it is a HelloReply of this version). */
void th_raw_hello(int fd, frame_reader *r, uint32_t protocol, int expect_status);

#endif
