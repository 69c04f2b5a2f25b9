/*
 * server - porterd's acceptor: the main thread's loop, the listening socket,
 * peer credential checks, the hand-off of connections to workers, signals
 * and ordered shutdown.
 *
 * Under systemd it takes the listening socket from socket activation and
 * reports its state over sd_notify (see sd.h): READY once serving, STATUS,
 * RELOADING on SIGHUP, STOPPING on SIGTERM, and watchdog pings that are sent
 * only while every worker loop proves it is alive.
 *
 * The server struct lives for the whole run; workers read `workers`,
 * `n_workers` and `start_ms` (set before they start, never changed). `cfg`
 * is the acceptor's own reference to the current generation; workers hold
 * their own (worker.cfg).
 */
#ifndef PORTER_SERVER_H
#define PORTER_SERVER_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "config.h"
#include "worker.h"

typedef struct server {
	config *cfg; /* current generation; one reference held */
	int argc;    /* the command line, re-applied on reload */
	char **argv;
	int activated;      /* listen_fd came from systemd: never bind,
			     * chmod or unlink anything */
	int fds_refused;    /* systemd's socket refuses descriptors from
			     * clients (listen_refuse_fds): each connection
			     * accepted is screened (listen_screen), in case
			     * it connected before porterd set it */
	uv_loop_t loop;     /* the acceptor's loop */
	int listen_fd;      /* owned */
	int lock_fd;        /* flock on "<socket>.lock"; owned */
	int created_socket; /* we bound the path and must unlink it */
	dev_t sock_dev;     /* identity of the socket file we created */
	ino_t sock_ino;
	int own_dir;                    /* the socket's directory is ours to chmod */
	char sock_dir[CONFIG_PATH_MAX]; /* that directory */
	uv_poll_t listen_poll;
	uv_timer_t accept_pause; /* back-off after EMFILE */
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_signal_t sig_test; /* SIGUSR2 test hook; PORTER_TEST_HOOKS=1 only */
	int test_hooks;
	uv_timer_t watchdog;     /* pings systemd at half WATCHDOG_USEC */
	uint64_t watchdog_usec;  /* 0: off */
	uint64_t *hb_seen;       /* last heartbeat seen per worker */
	int watchdog_late;       /* a ping was withheld (logged once per stall) */
	struct metrics *metrics; /* metrics-file writer, or NULL */
	worker *workers;         /* owned array of n_workers */
	unsigned n_workers;
	uint64_t start_ms; /* uv_hrtime() in ms at start */
	int stopping;
	uint64_t denied;               /* peers refused (acceptor thread only) */
	int reserve_fd;                /* /dev/null, given up at EMFILE to shed one */
	uint64_t shed;                 /* connections refused "at capacity" */
	uint64_t shed_unlogged;        /* of which not yet in a warning */
	uint64_t shed_logged_ms;       /* loop time of the last such warning */
	uint32_t auto_uid_connections; /* uid-max-connections 0: half the fd limit */
	uint64_t quota_refused;        /* connections refused over uid-max-connections */
	uv_timer_t trim;               /* hands freed memory back after bursts */
	uint64_t trims;                /* malloc_trim calls made */
	struct loopcpu *turn_cpu;      /* owned: test instrument (loopcpu.h); NULL when off */
	uint64_t reloads;              /* reloads applied (acceptor thread only) */
	uint64_t reload_failures;      /* reloads rejected (acceptor thread only) */
	int last_reload_failed;        /* shown in STATUS= until a reload succeeds */
} server;

/*
 * Runs porterd with `cfg` (a resolved config_alloc()ed generation; the
 * server takes its own reference) until SIGTERM/SIGINT. `argc`/`argv` are
 * the command line, kept to re-apply the flags over the file on SIGHUP.
 * Returns the process exit status: 0 after a clean shutdown, 1 when
 * start-up failed.
 */
int server_run(config *cfg, int argc, char **argv);

#endif
