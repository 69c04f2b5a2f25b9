/*
 * metrics - a Prometheus text exposition of porterd's counters, off by
 * default: rewritten atomically into `metrics-file` every
 * `metrics-interval`, and/or served over HTTP as GET /metrics on the
 * loopback address in `metrics-listen`.
 *
 * Owned by the acceptor loop and used on its thread only. Counters are read
 * from the workers' relaxed atomics (stats.h). The file is written on
 * libuv's thread pool (a slow disk never stalls accepting), one write at a
 * time; the HTTP server is a few lines on the acceptor loop, bounded in
 * connections, request size and time.
 */
#ifndef PORTER_METRICS_H
#define PORTER_METRICS_H

#include <stddef.h>

struct server;
struct config;
typedef struct metrics metrics;

/*
 * Starts what `cfg` asks for on the server's loop. Returns 0 with *out set
 * (NULL when metrics are off), or <0 after logging why (a bad or busy
 * metrics-listen address). The caller closes with metrics_close().
 */
int metrics_start(struct server *srv, const struct config *cfg, metrics **out);

/*
 * Applies a reloaded configuration: the file and its interval change live,
 * the listening address needs a restart (logged). `*m` may change from
 * NULL (file turned on) and back.
 */
void metrics_reconfigure(struct server *srv, metrics **m, const struct config *cfg);

/* Closes handles; the struct is freed from the last close callback. NULL ok. */
void metrics_close(metrics *m);

/*
 * Renders the exposition into a malloc'ed buffer (*out, caller frees) of
 * *len bytes. Returns 0 or PORTER_E_NOMEM.
 */
int metrics_render(struct server *srv, char **out, size_t *len);

#endif
