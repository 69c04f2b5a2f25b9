/*
 * httpsetup - what a transfer tells libcurl: the options of its easy
 * handle from the client's HttpRequest (checked headers, TLS, the size
 * limit, the deadline and the connect timeout), the per-hop options (URL,
 * method, body or streamed body), what is left of the deadline for each
 * redirect hop, and the credentials dropped when a redirect leaves the
 * first origin.
 *
 * Called by http.c outside libcurl's callbacks. Owned by one worker loop;
 * not thread safe.
 */
#ifndef PORTER_HTTPSETUP_H
#define PORTER_HTTPSETUP_H

#include "httpxfer.h"

struct config;

/* A request is answered this long before its deadline when the transfer
 * cannot make it, so the reply reaches the client before it gives up. */
#define HTTP_DEADLINE_MARGIN_MS 50

/*
 * libcurl's receive buffer for a whole response (CURLOPT_BUFFERSIZE): each
 * recv() from the server reads at most this much, and libcurl 7.88 polls
 * the socket after each one to see whether more is waiting, so at its
 * default of 16 KiB a body of 8 MiB costs porterd some 1,000 system calls.
 * libcurl allocates it per transfer (freed when the transfer is done) and
 * writes only what arrives, so a small response touches a page or two of
 * it. A stream keeps libcurl's default: its write callback may pause, and
 * libcurl then holds a copy of the rest of the buffer it read.
 */
#define HTTPSETUP_RECV_BUFFER (256 * 1024)

/*
 * Takes an easy handle from x->t's pool and sets it up for request `hr`
 * of `r` under `cfg` (the worker's current configuration). 0, or a
 * PORTER_E_* code, with x->err_msg naming a refused header.
 */
int httpsetup_easy(http_xfer *x, const struct config *cfg, const Porter__V1__HttpRequest *hr,
		   req *r);

/* Sets the per-hop options (URL, method, body) of x->easy. */
void httpsetup_hop(http_xfer *x);

/*
 * Gives the next hop what is left of the transfer's time: libcurl's
 * timeouts restart with each transfer, so a handle re-added for a redirect
 * would otherwise get the whole budget again. 0, or -1 with x->err set
 * when no time is left.
 */
int httpsetup_hop_deadline(http_xfer *x);

/* Drops the caller's credential headers from the request (a redirect left
 * the first origin). 0, or -1 when out of memory. */
int httpsetup_strip_credentials(http_xfer *x);

#endif
