/*
 * httpdefer - HTTP requests that arrive while libcurl runs one of its
 * callbacks, held until it has returned.
 *
 * A reply sent from libcurl's write callback (a stream's chunk) frees an
 * in-flight slot of the client's connection, which then dispatches the
 * next request it had buffered at once, still inside the callback. libcurl
 * refuses to be called there (CURLM_RECURSIVE_API_CALL), so such a request
 * is queued here and run, in the order it came, as soon as libcurl is off
 * the stack (httpglue's in_curl back to 0; http.c's drain runs the queue).
 * A queued request that is cancelled (Cancel, the client went away) is
 * failed and dropped from the queue.
 *
 * Owned by one worker loop; not thread safe.
 */
#ifndef PORTER_HTTPDEFER_H
#define PORTER_HTTPDEFER_H

#include "httpglue.h"
#include "list.h"
#include "req.h"

/*
 * Returns 1 when `r` (not NULL, for the http entry point `run`) must wait
 * because `g` (not NULL) is inside libcurl: it is then queued on `q` (the
 * worker's list, not NULL) with its cancel hook set, or failed when out of
 * memory. Returns 0, doing nothing, when `r` may run now.
 */
int httpdefer_take(list *q, const httpglue *g, req *r, void (*run)(req *r));

/* Runs the queued requests while `g` is not inside libcurl. A request run
 * here may queue others (through replies it sends): they run too. */
void httpdefer_run(list *q, const httpglue *g);

/* Fails every queued request with `code` and `msg` (worker shutdown). */
void httpdefer_fail_all(list *q, int code, const char *msg);

#endif
