/*
 * server - porterd's acceptor: the main thread's loop, the listening socket,
 * peer credential checks, the hand-off of connections to workers, signals
 * and ordered shutdown.
 *
 * The server struct lives for the whole run; workers read `workers`,
 * `n_workers` and `start_ms` (set before they start, never changed).
 */
#ifndef PORTER_SERVER_H
#define PORTER_SERVER_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "config.h"
#include "worker.h"

typedef struct server {
	const config *cfg;      /* not owned */
	uv_loop_t loop;         /* the acceptor's loop */
	int listen_fd;          /* owned */
	int lock_fd;            /* flock on "<socket>.lock"; owned */
	int created_socket;     /* we bound the path and must unlink it */
	dev_t sock_dev;         /* identity of the socket file we created */
	ino_t sock_ino;
	uv_poll_t listen_poll;
	uv_timer_t accept_pause; /* back-off after EMFILE */
	uv_signal_t sig_term, sig_int;
	worker *workers;        /* owned array of n_workers */
	unsigned n_workers;
	uint64_t start_ms;      /* uv_hrtime() in ms at start */
	int stopping;
	uint64_t denied;        /* peers refused (acceptor thread only) */
} server;

/*
 * Runs porterd with `cfg` (resolved) until SIGTERM/SIGINT. Returns the
 * process exit status: 0 after a clean shutdown, 1 when start-up failed.
 */
int server_run(const config *cfg);

#endif
