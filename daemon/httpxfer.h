/*
 * httpxfer - one HTTP transfer: what it sends, where it stands, and the
 * response it collects from libcurl's callbacks (status and headers of the
 * latest hop, the body or a stream's current chunk, the size limit), turned
 * into replies to the req waiting for it, and libcurl's errors turned into
 * PORTER_E_* codes with a message.
 *
 * The requests, redirects and streams that drive transfers are http.c's;
 * this module never calls libcurl except for curl_easy_getinfo (timings)
 * and curl_easy_strerror, so its functions are safe inside libcurl's
 * callbacks. Owned by one worker loop; not thread safe.
 */
#ifndef PORTER_HTTPXFER_H
#define PORTER_HTTPXFER_H

#include <curl/curl.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "arena.h"
#include "http.h"
#include "httpbuf.h"
#include "httpglue.h"
#include "list.h"
#include "req.h"

/* Header bytes accepted per response, the heads of the redirect hops
 * followed before it included, before the transfer is aborted. Each header
 * also counts HTTPXFER_HEADER_OVERHEAD for its encoding on the wire, so
 * the heads fit in the frame room HTTP keeps for them however many short
 * headers a server sends. */
#define HTTPXFER_MAX_HEADER_BYTES (256 * 1024)
#define HTTPXFER_HEADER_OVERHEAD 8
/* Bytes kept of a status line ("HTTP/1.1 301 Moved Permanently"). */
#define HTTPXFER_STATUS_LINE 128
/* Longest method token accepted (httppolicy_valid_method). */
#define HTTPXFER_METHOD_MAX 32

/* Where a transfer stands. */
enum xfer_state {
	XFER_RUNNING,   /* in the multi handle, moving data */
	XFER_DONE,      /* ended; a stream keeps its last chunk or error for a pull */
	XFER_REAPING,   /* abandoned; removed from the multi and freed on the next reap */
	XFER_RECLAIMED, /* a stream nobody read for http-stream-idle: transfer and
			 * buffers freed, only the outcome kept for the owner's
			 * next read or close, for a while */
};

/* One response header: offsets of its NUL-terminated name and value in
 * the transfer's hbytes (one block for every head's strings, so a header
 * costs no allocation of its own). */
typedef struct http_header {
	uint32_t name;
	uint32_t value;
} http_header;

/* The head of a redirect hop that was followed. */
typedef struct http_hop {
	char status_line[HTTPXFER_STATUS_LINE];
	http_header *headers; /* owned; strings in the transfer's hbytes */
	size_t n_headers;
} http_hop;

typedef struct http_xfer {
	http_worker *hw;
	uv_loop_t *loop;    /* the worker's */
	httpglue_tenant *t; /* the owner's connection cache */
	list link;          /* hw->xfers, or hw->reap while REAPING */
	enum xfer_state state;
	CURL *easy;
	unsigned easy_epoch; /* for httpglue_easy_put: 0 resets the handle */
	int in_multi;        /* added to t->multi */
	req *r;              /* waits for the next reply; NULL when none does */

	/* What to send. */
	char method[HTTPXFER_METHOD_MAX + 1]; /* upper case */
	/* The current hop's URL: borrowed from the request's message while
	 * that lives (a whole response answers the request last, and a
	 * cancelled one is never started again), else url_own. */
	const char *url;
	char *url_own; /* owned; NULL when url is borrowed */
	/* url parsed, from the tenant's cache: held until the transfer
	 * leaves the multi or follows a redirect; NULL when libcurl parses
	 * url itself. */
	httpurl *cu;
	struct curl_slist *hdrs;
	/* The request body, read by libcurl in place: in msg, or body_own. */
	const uint8_t *body;
	size_t body_len;
	uint8_t *body_own; /* owned: a copy of a body not in an arena; or NULL */
	/* The request's message, taken from its req when it has a body (so
	 * the body is not copied): it lives as long as the transfer, which
	 * libcurl reads it for, not as the req, which a cancel frees before
	 * the transfer leaves the multi. The req's msg keeps pointing into
	 * it: a transfer never ends before the req that started it is
	 * answered. Owned; empty when not taken. */
	arena msg;
	int foreign; /* the client's uid is not porterd's */
	int follow;
	int keep_credentials; /* the client asked to send them to any origin */
	char origin[300];     /* scheme://host:port of the first URL */
	int stripped;         /* credentials removed after a cross-origin redirect */
	unsigned max_redirects;
	unsigned redirects;
	uint64_t limit; /* largest body accepted; 0 none */
	/* A whole response's body buffer counts in its uid's buffered bytes
	 * (uid-max-buffered) until the reply takes it: it is held for as
	 * long as the server takes to send it, up to http-max-response
	 * each, and a uid may have thousands of transfers in flight. */
	struct clients_acct *body_acct; /* the owner's counters; NULL: streams */
	uint64_t body_quota;            /* uid-max-buffered when it started */
	uint64_t body_counted;          /* bytes taken in body_acct */
	int over_quota;                 /* the body could not grow: the quota */
	uint64_t received;              /* body bytes of the final hop so far */
	uint64_t deadline;              /* uv_now() ms by which every hop must be done; 0 none */
	uint64_t connect_to;            /* bound of each connection attempt (ms); 0 none */

	/* Streaming. */
	int stream;
	uint64_t stream_id;
	int slot;                  /* counted in hw->n_streams and its uid's streams */
	struct clients_acct *acct; /* the owner's counters, while slot */
	uid_t owner_uid;           /* the client that opened the stream */
	uint64_t owner_instance;
	size_t chunk_cap;
	int paused;          /* the write callback returned PAUSE */
	int sent_head;       /* status and headers went out */
	uint64_t idle_since; /* uv_now() when the last pull was answered */

	/* Streamed request body (httpupload.h). */
	int upload;             /* the body comes in HttpUpload pieces */
	int64_t up_size;        /* declared total; -1 unknown (chunked) */
	uint64_t up_taken;      /* body bytes received from the client */
	struct req *up_r;       /* the piece libcurl reads now; NULL when none */
	const uint8_t *up_data; /* its bytes, inside up_r's message */
	size_t up_len, up_off;
	uint64_t up_counted;      /* its bytes, counted in the uid's buffered bytes */
	int up_last;              /* the client sent the last piece */
	int up_paused;            /* the read callback returned PAUSE */
	int up_over;              /* no more body is wanted (answered early, dropped) */
	list ack_link;            /* in *up_acks while up_r is read and unanswered */
	list *up_acks;            /* the worker's list of pieces to answer */
	uint64_t up_max_buffered; /* uid-max-buffered when the stream opened */

	/* The heads of the redirect hops followed so far. */
	http_hop *hops;
	size_t n_hops;

	/* The response of the current hop. */
	char status_line[HTTPXFER_STATUS_LINE];
	long status;
	http_header *headers;
	size_t n_headers, cap_headers;
	size_t header_bytes;
	/* The strings of every head of the transfer (the hops' too), never
	 * trimmed while it lives: bounded by HTTPXFER_MAX_HEADER_BYTES, as
	 * header_bytes counts each line once. Owned. */
	char *hbytes;
	size_t hlen, hcap;
	int discard;   /* this hop is a redirect we follow: drop its body */
	int head_done; /* the final response's headers are complete */
	uint8_t *buf;  /* body (or the current chunk of it) */
	size_t len, cap;
	int buf_cached;      /* buf is from bufs (httpbuf_release), not malloc */
	httpbuf_cache *bufs; /* the worker's large buffers; NULL: malloc only */

	/* Outcome. */
	int too_large;
	int err; /* PORTER_E_* once failed, else 0 */
	char err_msg[CURL_ERROR_SIZE + 64];
	char curl_err[CURL_ERROR_SIZE];
	uint64_t start_ns;
	Porter__V1__HttpTimings timings;
} http_xfer;

/* Frees the headers kept of the current hop's response. */
void httpxfer_headers_clear(http_xfer *x);

/* Moves the current hop's status line and headers to x->hops (a redirect
 * that is followed). 0, or -1 when out of memory. */
int httpxfer_keep_hop(http_xfer *x);

/* CURLOPT_HEADERFUNCTION and CURLOPT_WRITEFUNCTION, with the transfer as
 * their user data: keep the latest response's headers and the body (or a
 * stream's chunk, pausing when it is full and nobody waits for it), and
 * enforce the header and body limits. */
size_t httpxfer_on_header(char *b, size_t size, size_t n, void *ud);
size_t httpxfer_on_write(char *p, size_t size, size_t n, void *ud);

/* Fills x->timings from the easy handle (before it goes back to a pool). */
void httpxfer_set_timings(http_xfer *x);

/*
 * Answers x->r (not NULL; it is finished and x->r cleared) with the status
 * and headers (the first reply of a stream, or a whole response) and the
 * buffered body, then empties the buffer. `last` adds the timings and
 * clears `more`.
 */
void httpxfer_reply_body(http_xfer *x, int last);

/* Fails x->r (not NULL; finished, x->r cleared) with x->err and x->err_msg,
 * and the peer's status when there was one. */
void httpxfer_reply_error(http_xfer *x);

/* Sets x->err to `code` and x->err_msg to `fmt` with one string `arg`. */
void httpxfer_fail(http_xfer *x, int code, const char *fmt, const char *arg);

/* Sets x->err and x->err_msg from libcurl's result `rc` (and what the
 * callbacks noted: the size limit). */
void httpxfer_map_error(http_xfer *x, CURLcode rc);

/* Frees the request's headers and body and the response's headers and
 * body buffer (the transfer itself stays). */
void httpxfer_free_buffers(http_xfer *x);

/* Implemented by http.c for its helper modules (httpupload.c): marks `x`
 * abandoned (state only, safe inside libcurl callbacks; removed on the
 * next reap). */
void http_xfer_abandon(http_xfer *x);

#endif
