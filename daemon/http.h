/*
 * http - HTTP requests performed on a worker loop with libcurl's
 * multi-socket API.
 *
 * Each worker owns one http_worker: its transfers and streams, and the
 * uids' connection caches with the libcurl<->libuv glue (httpglue.h: one
 * CURLM per uid, so an upstream connection never carries two uids'
 * requests). What a client may ask (URLs, methods, headers, which headers
 * are credentials) is decided by httppolicy.h; a transfer's libcurl options
 * are set by httpsetup.h, its response collected by httpxfer.h, and a
 * request body streamed from the client by httpupload.h. Credentials are dropped when
 * a redirect leaves the first origin, and every hop of a redirect chain
 * shares the transfer's one deadline. Nothing calls libcurl from inside a
 * libcurl callback: replies and cancellations found there are finished
 * after curl returns.
 *
 * Streams: a request with `stream` set is answered with the status, headers
 * and the first chunk of the body; the client pulls each further chunk with
 * HttpFetch. When the chunk buffer is full and nobody is waiting for it, the
 * transfer is paused (CURL_WRITEFUNC_PAUSE) and resumed when the client
 * pulls, so a slow reader holds back the server and a large body never sits
 * whole in porterd. A stream lives on the worker that started it; it is
 * named by an unguessable 64-bit id (its worker in the top bits, fwd.h),
 * a pull or close arriving on another worker is forwarded there (fwd.h),
 * and it is reclaimed when no one pulls for http-stream-idle milliseconds
 * (its outcome kept a while so the owner's next read says so). A uid holds
 * at most http-max-streams-per-uid streams over all workers.
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
 * Process-wide set-up: curl_global_init and the shared DNS cache (httpglue).
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
/* Handles HttpUpload: one piece of a streamed request body (httpupload.h).
 * Finishes `r`, at once or once libcurl has read the piece. */
void http_handle_upload(struct req *r);

#endif
