/*
 * httpglue - libcurl's multi-socket API on a worker's libuv loop, with one
 * connection cache per client uid.
 *
 * A worker's http module embeds one httpglue. In it each client uid that
 * made a request there has a tenant: a CURLM of its own (so an upstream
 * connection is reused by one uid's requests and never carries another
 * uid's: a request that desynchronised it, or a server that ties state to
 * a connection, reaches only its own user), its pool of idle easy handles
 * (which hold libcurl's TLS session cache, per uid too), one uv_poll per
 * socket libcurl asks to watch (attached with curl_multi_assign) and one
 * uv_timer for libcurl's timeout. A tenant is created on demand and closed,
 * with its idle connections, once it has had no transfer for
 * HTTPGLUE_TENANT_IDLE_MS. Sockets are opened and closed through
 * CURLOPT_OPENSOCKETFUNCTION/CLOSESOCKETFUNCTION, so a poll handle is always
 * closed before its fd is and no poll outlives its socket. Nothing here
 * calls libcurl from inside a libcurl callback except curl_multi_assign.
 *
 * Process-wide (httpglue_global_*): the DNS cache shared across workers
 * through one CURLSH guarded by mutexes (TLS sessions are not shared: they
 * belong to a uid), and each uid's count of open streams over all workers.
 *
 * Affinity: httpglue_global_* and httpglue_streams_* run on any thread;
 * everything else on the owning worker's loop thread, not thread safe.
 */
#ifndef PORTER_HTTPGLUE_H
#define PORTER_HTTPGLUE_H

#include <curl/curl.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "httpurl.h"
#include "list.h"

struct config;
struct worker;

/* Idle easy handles kept per tenant: creating one costs more than the
 * rest of a small request's set-up. */
#define HTTPGLUE_POOL 32
/*
 * Upstream connections a tenant's cache keeps (CURLMOPT_MAXCONNECTS, which
 * counts those in use too). libcurl's default is 4 × the easy handles in
 * the multi at the moment a transfer ends, which shrinks as a burst's
 * transfers are removed: after 32 concurrent requests porterd closed about
 * one connection in twelve and opened a new one for the next burst. A
 * fixed size keeps a burst's connections; it also bounds the descriptors a
 * uid's idle connections hold on a worker (they go with the tenant after
 * HTTPGLUE_TENANT_IDLE_MS).
 */
#define HTTPGLUE_MAX_CONNECTS 64
/* A tenant with no transfer for this long is closed with its idle
 * upstream connections. */
#define HTTPGLUE_TENANT_IDLE_MS 30000

typedef struct httpglue httpglue;

/* An idle easy handle in a tenant's pool. */
typedef struct httpglue_idle {
	CURL *e;
	/* The tenant's tls_epoch when its options were set; 0 when it was
	 * reset and has none. */
	unsigned epoch;
} httpglue_idle;

/* One uid's connection cache on one worker (see above). Fields are read by
 * the http module; only httpglue_* change them. */
typedef struct httpglue_tenant {
	httpglue *g;
	uid_t uid;
	list link; /* g->tenants */
	CURLM *multi;
	uv_timer_t timer;                  /* libcurl's single timeout */
	list socks;                        /* the sockets it watches */
	unsigned n_xfers;                  /* transfers holding it (httpglue_hold) */
	uint64_t idle_since;               /* uv_now() when n_xfers fell to 0 */
	int open_handles;                  /* timer and socks not yet called back */
	int closing;                       /* multi gone; freed with the last handle */
	httpglue_idle pool[HTTPGLUE_POOL]; /* idle easy handles, for reuse */
	unsigned n_pool;
	/* The TLS options of the configuration its handles were set up for
	 * (copies), and a counter bumped when a reload changes them: a
	 * pooled handle of an older epoch is reset before reuse. */
	unsigned tls_epoch;
	int tls_verify;
	char *ca_file, *ca_path; /* owned; NULL when not set */
	/* The URLs its transfers asked for, parsed once (httpurl.h). */
	httpurl_cache urls;
} httpglue_tenant;

struct httpglue {
	struct worker *w;
	list tenants;     /* httpglue_tenant.link, open ones */
	unsigned n_alive; /* tenants not yet freed (open or closing) */
	int closing;      /* no new pooled handles */
	/* libcurl calls that may run its callbacks (socket_action, pause)
	 * now on the stack: while not 0, a request the connection dispatches
	 * from a reply sent in a callback must wait (httpdefer.h), since
	 * libcurl refuses calls from its callbacks. */
	unsigned in_curl;
	/* Collects the transfers libcurl finished; called after every
	 * curl_multi_socket_action, never inside a libcurl callback. */
	void (*drain)(httpglue_tenant *t);
	/* A tenant was freed (after httpglue_close_idle/close_all). */
	void (*freed)(httpglue *g);
};

/* Process-wide set-up (curl_global_init, the DNS share): main() before
 * any thread starts. 0 or <0. */
int httpglue_global_init(const struct config *cfg);

/* Undoes httpglue_global_init, after every worker has stopped. */
void httpglue_global_cleanup(void);

/*
 * Counts one more open stream of `uid` over all workers unless it has
 * `max` already. 0, PORTER_E_BUSY at the limit, or PORTER_E_NOMEM. Called
 * when a stream opens and (httpglue_streams_put) when it ends, never on
 * the data path, so one mutex does. Any thread.
 */
int httpglue_streams_take(uid_t uid, unsigned max);
void httpglue_streams_put(uid_t uid);
/* The HTTP streams `uid` holds now, over all workers (for stats). */
unsigned httpglue_streams_count(uid_t uid);

/* Sets up `g` (owned by the caller) for worker `w`. `drain` and `freed`
 * not NULL. */
void httpglue_init(httpglue *g, struct worker *w, void (*drain)(httpglue_tenant *t),
		   void (*freed)(httpglue *g));

/* The tenant of `uid`, created when it has none, held for one more
 * transfer (httpglue_release). NULL when out of memory or when libcurl
 * refuses a multi handle. */
httpglue_tenant *httpglue_hold(httpglue *g, uid_t uid);

/* Lets go of one transfer's hold on `t` (`now`: uv_now()). Returns 1 when
 * that was the last: `t` may be closed after HTTPGLUE_TENANT_IDLE_MS. */
int httpglue_release(httpglue_tenant *t, uint64_t now);

/*
 * An easy handle for a transfer of `t` under `cfg` (not NULL): one from its
 * pool or a new one. Setting every option for each request and resetting
 * the handle after it cost more than a small request's other set-up, so a
 * pooled handle keeps its options: `*fresh` is 1 when it has none (new, or
 * reset because its last transfer set options the next one would not
 * overwrite, or because a reload changed the TLS options), and the caller
 * then sets the options that never change; 0 when it has them and the
 * caller sets only the per-request ones. Either way the socket callbacks,
 * the DNS share and the TLS options of `cfg` are in place. `*epoch` is
 * what to give back to httpglue_easy_put. NULL when out of memory.
 */
CURL *httpglue_easy_get(httpglue_tenant *t, const struct config *cfg, unsigned *epoch, int *fresh);

/*
 * Gives `e` (out of the multi) back to `t`'s pool, or frees it when the
 * pool is full or closing. `epoch` as httpglue_easy_get gave it when the
 * transfer left only options the next one overwrites (a GET without a
 * body), so `e` keeps them; 0 to reset `e` first.
 */
void httpglue_easy_put(httpglue_tenant *t, CURL *e, unsigned epoch);

/* Lets libcurl start what was just added to `t`'s multi now, rather than
 * on the 0 ms timer it asked for, then drains. Not inside a callback. */
void httpglue_kick(httpglue_tenant *t);

/* curl_easy_pause(e, bitmask) counted in g->in_curl: resuming delivers
 * held-back data through the callbacks at once. Not inside a callback;
 * the caller drains after it. */
CURLcode httpglue_pause(httpglue *g, CURL *e, int bitmask);

/* Closes tenants idle for HTTPGLUE_TENANT_IDLE_MS at `now`; returns the
 * milliseconds until the next one would be due, or UINT64_MAX when none
 * is idle. Not inside a libcurl callback. */
uint64_t httpglue_close_idle(httpglue *g, uint64_t now);

/* Closes every tenant (worker shutdown, after every transfer is gone). */
void httpglue_close_all(httpglue *g);

#endif
