/*
 * http - HTTP requests performed on a worker loop with libcurl's
 * multi-socket API.
 *
 * Each worker owns one http_worker, and in it one tenant per client uid
 * that made a request there: a CURLM of its own (so an upstream connection
 * is reused by one uid's requests and never carries another uid's), its
 * pool of idle easy handles (which hold libcurl's TLS session cache), one
 * uv_poll per socket libcurl asks to watch (attached to the socket with
 * curl_multi_assign) and one uv_timer for libcurl's timeout. A tenant is
 * created on demand and closed, with its idle connections, after 30 s
 * without a transfer. Sockets are opened and closed through
 * CURLOPT_OPENSOCKETFUNCTION/CLOSESOCKETFUNCTION, so a poll handle is
 * always closed before its fd is, and no poll outlives its socket. Nothing
 * calls libcurl from inside a libcurl callback except curl_multi_assign:
 * replies and cancellations found there are finished after curl returns.
 *
 * What a client may ask (URLs, methods, headers, which headers are
 * credentials) is decided by httppolicy.h. Credentials are dropped when a
 * redirect leaves the first origin, and every hop of a redirect chain
 * shares the transfer's one deadline.
 *
 * The DNS cache is shared across workers through one CURLSH guarded by
 * mutexes (a lookup is far costlier than an uncontended lock); TLS
 * sessions are not, since they belong to a uid. Name resolution uses
 * libcurl's threaded resolver, so it never blocks the loop.
 *
 * Streams: a request with `stream` set is answered with the status, headers
 * and the first chunk of the body; the client pulls each further chunk with
 * HttpFetch. When the chunk buffer is full and nobody is waiting for it, the
 * transfer is paused (CURL_WRITEFUNC_PAUSE) and resumed when the client
 * pulls, so a slow reader holds back the server and a large body never sits
 * whole in porterd. A stream lives on the worker that started it; it is
 * named by an unguessable 64-bit id (its worker in the top bits, fwd.h),
 * a pull or close arriving on another worker is forwarded there (fwd.h),
 * and it is aborted when no one pulls for http-stream-idle milliseconds.
 *
 * Affinity: everything here except http_global_* runs on the owning
 * worker's loop thread and is not thread safe.
 */
#ifndef PORTER_HTTP_H
#define PORTER_HTTP_H

struct worker;
struct req;
struct config;
typedef struct http_worker http_worker;

/*
 * Process-wide set-up: curl_global_init and the shared DNS/TLS cache.
 * Call from main() before any thread starts. Returns 0 or <0.
 */
int http_global_init(const struct config *cfg);

/* Undoes http_global_init, after every worker has stopped. */
void http_global_cleanup(void);

/*
 * Creates the HTTP state of worker `w` on its loop (not started until the
 * first request). Called from worker_init on the main thread before the
 * worker's thread starts. Returns NULL when out of memory or when libcurl
 * refuses to start.
 */
http_worker *http_worker_new(struct worker *w);

/*
 * Aborts every transfer, closes every handle and frees `hw` once the last
 * close callback has run. Loop thread, once, when the worker is finishing.
 */
void http_worker_close(http_worker *hw);

/* Handles HttpRequest, HttpFetch and HttpClose. Finishes `r`. */
void http_handle(struct req *r);
void http_handle_fetch(struct req *r);
void http_handle_close(struct req *r);

#endif
