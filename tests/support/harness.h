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

#include <sys/types.h>

typedef struct th_daemon {
	pid_t pid;          /* 0 when not running */
	char dir[64];       /* private temp directory */
	char socket[100];   /* socket path inside dir (fits sun_path) */
	char log[128];      /* porterd's stderr */
} th_daemon;

/*
 * Starts porterd with `--socket` in a new temp dir plus the NULL-terminated
 * `extra` arguments (may be NULL), waits until it accepts connections
 * (up to 10 s), and points PORTER_SOCKET at it. Returns 0 or -1.
 */
int th_daemon_start(th_daemon *d, const char *const *extra);

/* Restarts on the same socket path and directory. 0 or -1. */
int th_daemon_restart(th_daemon *d, const char *const *extra);

/* SIGTERM and wait (10 s, then SIGKILL). Returns the exit status, or -1
 * when it had to be killed or died of a signal. */
int th_daemon_stop(th_daemon *d);

/* SIGKILL and reap. */
void th_daemon_kill(th_daemon *d);

/* Removes the temp directory (after stop or kill). */
void th_daemon_cleanup(th_daemon *d);

/* Prints the daemon's log to stderr (for failing tests). */
void th_daemon_dump_log(const th_daemon *d);

/* Monotonic milliseconds. */
long long th_now_ms(void);

/* Resident set size of `pid` in KiB, from /proc; -1 when unknown. */
long th_rss_kib(pid_t pid);

/* Open file descriptors of `pid`, from /proc; -1 when unknown. */
int th_fd_count(pid_t pid);

#endif
