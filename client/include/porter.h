/*
 * porter.h - the public interface of libporter, the client library of Porter.
 *
 * libporter sends each call to the porterd daemon over a Unix socket and
 * blocks the calling thread until the reply arrives or the call's timeout
 * passes. Each thread keeps its own connection, opened lazily on the first
 * call (with a Hello exchange) and closed when the thread exits or calls
 * porter_thread_disconnect(). A connection that broke (daemon restarted) is
 * re-opened on the next call.
 *
 * Thread safety: every function may be called from any number of threads at
 * once; no call waits on another thread's call. Objects returned by the
 * library (results, stats) are owned by the caller, freed with their one
 * matching free function, and may be read from any thread once returned.
 *
 * Errors: functions return 0 or a positive value on success and one of the
 * negative PORTER_E_* codes below on failure. The codes are frozen: a code
 * keeps its number for ever, because FFI callers hard-code them. The calling
 * thread's last error code and message are kept until its next call.
 *
 * The library never aborts the process, never raises SIGPIPE and never
 * blocks longer than the timeout given to a call.
 */
#ifndef PORTER_H
#define PORTER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PORTER_STATIC)
#define PORTER_API
#elif defined(PORTER_BUILDING)
#define PORTER_API __attribute__((visibility("default")))
#else
#define PORTER_API
#endif

/* Version of the library (and of the daemon built from the same tree). */
#define PORTER_VERSION_MAJOR 0
#define PORTER_VERSION_MINOR 1
#define PORTER_VERSION_PATCH 0
#define PORTER_VERSION_STRING "0.1.0"

/* Wire protocol version sent in Hello. */
#define PORTER_PROTOCOL_VERSION 1

/*
 * Every error code, once. X(NAME, value, "message"). Numbers are frozen;
 * new codes are only ever appended with fresh numbers. Blocks: -1..-19
 * transport and core, -20..-29 database, -30..-39 HTTP, -40..-59 files,
 * -60..-69 control.
 */
#define PORTER_ERRORS(X)                                                                           \
	X(PORTER_E_INVAL, -1, "invalid argument")                                                  \
	X(PORTER_E_NOMEM, -2, "out of memory")                                                     \
	X(PORTER_E_UNREACHABLE, -3, "daemon unreachable")                                          \
	X(PORTER_E_TIMEOUT, -4, "timed out")                                                       \
	X(PORTER_E_CONN_LOST, -5, "connection lost, outcome unknown")                              \
	X(PORTER_E_PROTOCOL, -6, "protocol error")                                                 \
	X(PORTER_E_TOO_LARGE, -7, "message too large")                                             \
	X(PORTER_E_BUSY, -8, "too many requests in flight")                                        \
	X(PORTER_E_DENIED, -9, "permission denied by daemon")                                      \
	X(PORTER_E_UNSUPPORTED, -10, "unsupported request")                                        \
	X(PORTER_E_CANCELLED, -11, "cancelled")                                                    \
	X(PORTER_E_SHUTDOWN, -12, "daemon shutting down")                                          \
	X(PORTER_E_INTERNAL, -13, "internal daemon error")                                         \
	X(PORTER_E_NOT_FOUND, -14, "no such object")                                               \
	X(PORTER_E_DB, -20, "database error")                                                      \
	X(PORTER_E_DB_CONNECT, -21, "database connection failed")                                  \
	X(PORTER_E_DB_SESSION, -22, "no such database session")                                    \
	X(PORTER_E_DB_BROKEN, -23, "database connection broken")                                   \
	X(PORTER_E_HTTP, -30, "HTTP transfer failed")                                              \
	X(PORTER_E_HTTP_SCHEME, -31, "URL scheme not allowed")                                     \
	X(PORTER_E_HTTP_TOO_LARGE, -32, "HTTP response too large")                                 \
	X(PORTER_E_HTTP_HOST, -33, "HTTP host not allowed")                                        \
	X(PORTER_E_HTTP_REDIRECTS, -34, "too many HTTP redirects")                                 \
	X(PORTER_E_HTTP_CONNECT, -35, "HTTP connection failed")                                    \
	X(PORTER_E_HTTP_TLS, -36, "TLS verification failed")                                       \
	X(PORTER_E_FILE_NOT_FOUND, -40, "file not found")                                          \
	X(PORTER_E_FILE_PERM, -41, "file permission denied")                                       \
	X(PORTER_E_FILE_ISDIR, -42, "is a directory")                                              \
	X(PORTER_E_FILE_EXISTS, -43, "file already exists")                                        \
	X(PORTER_E_FILE_NOSPACE, -44, "no space left on device")                                   \
	X(PORTER_E_FILE_ESCAPE, -45, "path escapes the file root")                                 \
	X(PORTER_E_FILE_IO, -46, "file I/O error")                                                 \
	X(PORTER_E_FILE_NOTDIR, -47, "not a directory")                                            \
	X(PORTER_E_FILE_ROOT, -48, "no such file root")

enum porter_error {
	PORTER_OK = 0,
#define PORTER_X_ENUM(name, value, msg) name = (value),
	PORTER_ERRORS(PORTER_X_ENUM)
#undef PORTER_X_ENUM
};

/*
 * A static English description of `code` (0 gives "ok"; an unknown code
 * gives "unknown error"). Never NULL; the string must not be freed.
 */
PORTER_API const char *porter_strerror(int code);

/* The symbolic name of `code`, e.g. "PORTER_E_TIMEOUT"; never NULL. */
PORTER_API const char *porter_error_name(int code);

/* The library version string, e.g. "0.1.0"; static, never NULL. */
PORTER_API const char *porter_version(void);

/*
 * The calling thread's last error: the code returned by its most recent
 * failing call (0 after a successful one). porter_last_error_message()
 * returns a message for it, owned by the library and valid until the
 * thread's next porter_* call; never NULL.
 */
PORTER_API int porter_last_error(void);
PORTER_API const char *porter_last_error_message(void);

/*
 * Socket path resolution: the PORTER_SOCKET environment variable if set and
 * not empty, else the daemon's default, $XDG_RUNTIME_DIR/porter/porter.sock,
 * else /tmp/porter-$UID/porter.sock. Writes a NUL-terminated path to
 * `buf` (capacity `cap`, not NULL). Returns its length, or PORTER_E_INVAL
 * when it does not fit.
 */
PORTER_API int porter_socket_path(char *buf, size_t cap);

/*
 * Sends a Ping carrying `payload` (`len` bytes, may contain NULs; NULL
 * allowed when len is 0) and waits for the echo. Blocks for at most
 * `timeout_ms` milliseconds (0 means the library default, 5000).
 * Returns 0, or a negative code: PORTER_E_UNREACHABLE when no daemon
 * listens, PORTER_E_TIMEOUT, PORTER_E_PROTOCOL when the echo differs.
 * Retried once on a fresh connection when the old one had broken, since a
 * ping is idempotent.
 */
PORTER_API int porter_ping(const void *payload, size_t len, int timeout_ms);

/* Counters of one daemon worker loop, as reported by porter_stats. */
typedef struct porter_worker_stats {
	uint32_t worker;      /* index, 0..n-1 */
	uint64_t connections; /* client connections open now */
	uint64_t requests;    /* requests received since start */
	uint64_t inflight;    /* requests being processed now */
	uint64_t errors;      /* failed responses since start */
	uint64_t bytes_in;    /* bytes read from clients since start */
	uint64_t bytes_out;   /* bytes written to clients since start */
} porter_worker_stats;

/* Opaque snapshot of the daemon's counters. */
typedef struct porter_stats_snapshot porter_stats_snapshot;

/*
 * Fetches the daemon's counters. On success stores a new snapshot in `*out`
 * (not NULL), owned by the caller and freed with porter_stats_free(), and
 * returns 0; `*out` is untouched on failure. Blocks for at most
 * `timeout_ms` (0: default).
 */
PORTER_API int porter_stats(porter_stats_snapshot **out, int timeout_ms);

/* Number of workers in the snapshot. `s` not NULL. */
PORTER_API size_t porter_stats_workers(const porter_stats_snapshot *s);

/*
 * Copies worker `i` (< porter_stats_workers) into `*out`. Returns 0, or
 * PORTER_E_INVAL when `i` is out of range or a pointer is NULL.
 */
PORTER_API int porter_stats_worker(const porter_stats_snapshot *s, size_t i,
				   porter_worker_stats *out);

/* Milliseconds the daemon has been running when the snapshot was taken. */
PORTER_API uint64_t porter_stats_uptime_ms(const porter_stats_snapshot *s);

/*
 * Resources the daemon holds when the snapshot was taken, so that leaks
 * show: descriptors open in the daemon process, PostgreSQL connections open
 * (sessions and pooled, over all workers) and HTTP transfers alive.
 */
PORTER_API uint64_t porter_stats_open_fds(const porter_stats_snapshot *s);
PORTER_API uint64_t porter_stats_db_connections(const porter_stats_snapshot *s);
PORTER_API uint64_t porter_stats_http_transfers(const porter_stats_snapshot *s);

/* The daemon's version string; owned by `s`, valid until it is freed. */
PORTER_API const char *porter_stats_daemon_version(const porter_stats_snapshot *s);

/* Frees a snapshot; NULL is accepted and ignored. */
PORTER_API void porter_stats_free(porter_stats_snapshot *s);

/*
 * Like porter_ping, but the daemon waits `delay_ms` before echoing: a
 * diagnostic that exercises deadlines and cancellation without any
 * external server. The daemon enforces `timeout_ms` itself and answers
 * PORTER_E_TIMEOUT when the delay would pass it.
 */
PORTER_API int porter_ping_delay(const void *payload, size_t len, uint32_t delay_ms,
				 int timeout_ms);

/*
 * Cancellation. Every call carries a request id unique within this process.
 * To cancel a call that another thread is about to make (or is blocked in),
 * that thread first takes the id its next call will use:
 *
 *     uint64_t id = porter_next_call_id();  // on the calling thread
 *     ... publish id to the canceller ...
 *     rc = porter_db_query(...);            // uses `id`
 *
 * and any thread of the same process may then call porter_cancel(id). The
 * blocked call returns PORTER_E_CANCELLED promptly.
 */

/*
 * Reserves and returns the id of the calling thread's next call (the same
 * value until that call is made). Never blocks; never 0.
 */
PORTER_API uint64_t porter_next_call_id(void);

/*
 * Asks the daemon to stop request `id` of this process, on whichever thread
 * or connection it runs. Blocks for at most `timeout_ms` (0: default).
 * Returns 0 when the request was in flight and has been stopped (its caller
 * gets PORTER_E_CANCELLED), or PORTER_E_NOT_FOUND when no stoppable request
 * with that id is in flight: it already finished, it cannot stop early, or
 * it has not reached the daemon yet, in which case the daemon remembers the
 * id for 30 seconds and refuses the request with PORTER_E_CANCELLED when it
 * arrives. Other negative codes as for any call.
 */
PORTER_API int porter_cancel(uint64_t id, int timeout_ms);

/*
 * Batch: several operations run concurrently by the daemon in one call.
 * PORTER_BATCH_ALL waits for every member and returns every result in
 * member order (join). PORTER_BATCH_FIRST returns as soon as one member
 * succeeds and stops the others (select); when none succeeds, every
 * member's failure is returned. Each member has its own timeout; the whole
 * batch is bounded by the timeout given to porter_batch_run.
 *
 * A builder (porter_batch) and its result (porter_batch_result) are owned by
 * the caller and used by one thread at a time; they may move between
 * threads between calls.
 */
#define PORTER_BATCH_ALL 0
#define PORTER_BATCH_FIRST 1

typedef struct porter_batch porter_batch;
typedef struct porter_batch_result porter_batch_result;

/* A new empty batch in `mode`; NULL when `mode` is unknown or out of memory.
 * Free with porter_batch_free. */
PORTER_API porter_batch *porter_batch_new(int mode);

/* Frees a batch builder; NULL accepted. Results already returned stay valid. */
PORTER_API void porter_batch_free(porter_batch *b);

/* Number of members added so far. */
PORTER_API size_t porter_batch_count(const porter_batch *b);

/*
 * Adds a Ping member (see porter_ping_delay). `payload` is copied. Returns
 * the member's index (>= 0) or PORTER_E_INVAL / PORTER_E_NOMEM.
 */
PORTER_API int porter_batch_add_ping(porter_batch *b, const void *payload, size_t len,
				     uint32_t delay_ms, int timeout_ms);

/*
 * Runs the batch: blocks for at most `timeout_ms` (0: default). On success
 * stores a new result in `*out` (free with porter_batch_result_free) and
 * returns 0, whatever the members' own outcomes; read those per member.
 * The builder is not consumed and may be run again. A batch whose
 * connection broke after it was sent reports PORTER_E_CONN_LOST and is not
 * repeated, since members may have had effects.
 */
PORTER_API int porter_batch_run(porter_batch *b, int timeout_ms, porter_batch_result **out);

/* Number of member results (equal to the batch's member count). */
PORTER_API size_t porter_batch_result_count(const porter_batch_result *r);

/* PORTER_BATCH_FIRST: index of the member that succeeded, or -1. */
PORTER_API int porter_batch_result_winner(const porter_batch_result *r);

/*
 * Status of member `i`: 0, or its negative error code. A member stopped
 * because another won a FIRST batch reports PORTER_E_CANCELLED. An index out
 * of range gives PORTER_E_INVAL.
 */
PORTER_API int porter_batch_result_status(const porter_batch_result *r, size_t i);

/* Error message of member `i` ("" on success); owned by `r`, never NULL. */
PORTER_API const char *porter_batch_result_message(const porter_batch_result *r, size_t i);

/*
 * The echoed payload of Ping member `i`: sets `*data` (owned by `r`) and
 * `*len` and returns 0, or PORTER_E_INVAL when member `i` is not a
 * successful Ping.
 */
PORTER_API int porter_batch_result_ping(const porter_batch_result *r, size_t i, const void **data,
					size_t *len);

/* Frees a batch result; NULL accepted. */
PORTER_API void porter_batch_result_free(porter_batch_result *r);

/*
 * Closes the calling thread's connection now instead of at thread exit,
 * and frees the buffers the thread keeps between calls. The next call on
 * this thread opens a new one. Never blocks; safe to call when the thread
 * has no connection.
 */
PORTER_API void porter_thread_disconnect(void);

/*
 * Starts a new client instance, for a host whose code restarted inside the
 * same process (a Dart hot restart): the new run must not inherit the
 * sessions of the old one.
 *
 * Chooses a new random client instance id (sent in Hello), closes the
 * calling thread's connection now, and marks every other thread's
 * connection stale: each such thread closes its old connection and opens a
 * new one (with the new instance id) at the start of its next call. A call
 * already in flight on another thread when porter_reset() runs finishes on
 * its old connection.
 *
 * What it releases: daemon-side state tied to the old client instance is
 * released by the daemon when that instance's connections close. The
 * calling thread's closes at once; another thread's closes at its next
 * call, at porter_thread_disconnect() or at its exit. Objects the caller
 * holds (stats snapshots, ...) stay valid and must still be freed.
 *
 * Never blocks; thread safe; cheap (each later call pays one atomic load).
 */
PORTER_API void porter_reset(void);
/* ------------------------------------------------------------------------
 * HTTP
 *
 * porterd performs the request with libcurl on its event loops; only http
 * and https URLs are accepted, for the first request and for every
 * redirect, and the daemon's configuration may restrict the hosts. TLS
 * certificates are verified unless the daemon is configured otherwise.
 * Any HTTP status (404, 500 ...) is a successful call: the status is in
 * the response. Failures to get a response are negative codes:
 * PORTER_E_HTTP_SCHEME, _HOST, _REDIRECTS, _TOO_LARGE, _CONNECT, _TLS,
 * PORTER_E_TIMEOUT, PORTER_E_HTTP for anything else.
 * ------------------------------------------------------------------------ */

/* Per-request options. A NULL options pointer means all zero. */
typedef struct porter_http_options {
	int follow_redirects;         /* nonzero: follow 301/302/303/307/308 */
	uint32_t max_redirects;       /* 0: the daemon's limit (default 10) */
	uint64_t max_response;        /* largest body accepted; 0: the daemon's
				       * limit (default 8 MiB for whole
				       * responses, none for streams) */
	uint32_t transfer_timeout_ms; /* 0: the call's timeout bounds the
				       * transfer (streams: no overall bound) */
	uint32_t chunk_size;          /* streams: bytes per chunk; 0: default */
} porter_http_options;

/* Where the time of a request went, in microseconds. namelookup, connect,
 * tls and first_byte count from the start of the last redirect hop; total
 * spans all hops. tls_us is 0 for plain http. */
typedef struct porter_http_timings {
	uint64_t namelookup_us;
	uint64_t connect_us;
	uint64_t tls_us;
	uint64_t first_byte_us;
	uint64_t total_us;
} porter_http_timings;

/* Opaque HTTP response; freed with porter_http_response_free(). */
typedef struct porter_http_response porter_http_response;

/*
 * Performs an HTTP request through porterd.
 *   method   "GET", "POST", "PUT", "DELETE", "HEAD" ...; NULL means GET.
 *   url      NUL-terminated, not NULL.
 *   headers  `n_headers` NUL-terminated "Name: value" lines; may be NULL
 *            when n_headers is 0. An empty value ("Name:") sends the
 *            header empty.
 *   body     `body_len` bytes (may contain NULs); NULL when body_len is 0.
 *   opts     may be NULL.
 *   timeout_ms  bounds the whole call (0: the library default, 5000).
 * On success stores a new response in `*out` (not NULL; owned by the
 * caller, free with porter_http_response_free) and returns 0; `*out` is
 * untouched on failure. Blocks the calling thread for at most timeout_ms.
 * The whole body is returned at once, so it is limited to the daemon's
 * http-max-response; use porter_http_stream_open for larger bodies.
 * GET and HEAD are retried once on a fresh connection if the daemon
 * connection broke; other methods are not (PORTER_E_CONN_LOST).
 */
PORTER_API int porter_http_request(const char *method, const char *url, const char *const *headers,
				   size_t n_headers, const void *body, size_t body_len,
				   const porter_http_options *opts, int timeout_ms,
				   porter_http_response **out);

/* GET `url`, following redirects. Same contract as porter_http_request. */
PORTER_API int porter_http_get(const char *url, int timeout_ms, porter_http_response **out);

/* POST `json` (`len` bytes) with "Content-Type: application/json",
 * following redirects. Same contract as porter_http_request. */
PORTER_API int porter_http_post_json(const char *url, const char *json, size_t len, int timeout_ms,
				     porter_http_response **out);

/*
 * The HTTP status carried by the calling thread's last failed HTTP call
 * (for example the 302 of a redirect that was refused), or 0 when the peer
 * gave none. Valid until the thread's next porter_* call.
 */
PORTER_API int porter_http_last_status(void);

/* The response's HTTP status code. `r` not NULL. */
PORTER_API int porter_http_response_status(const porter_http_response *r);

/*
 * The value of the first header named `name` (compared case-insensitively),
 * or NULL when there is none. Owned by `r`, valid until it is freed.
 */
PORTER_API const char *porter_http_response_header(const porter_http_response *r, const char *name);

/* Number of response headers, in the order received (repeats kept). */
PORTER_API size_t porter_http_response_header_count(const porter_http_response *r);

/*
 * Header `i` (< header_count): stores pointers owned by `r` in `*name` and
 * `*value` (either may be NULL). Returns 0, or PORTER_E_INVAL when out of
 * range.
 */
PORTER_API int porter_http_response_header_at(const porter_http_response *r, size_t i,
					      const char **name, const char **value);

/*
 * The body: returns a pointer owned by `r` (never NULL, even when empty)
 * and stores its length in `*len` (may be NULL). Binary safe.
 */
PORTER_API const void *porter_http_response_body(const porter_http_response *r, size_t *len);

/* URL of the final response, after redirects; owned by `r`, never NULL. */
PORTER_API const char *porter_http_response_effective_url(const porter_http_response *r);

/* Redirects followed to reach the final response. */
PORTER_API uint32_t porter_http_response_redirects(const porter_http_response *r);

/* Copies the timing breakdown into `*out` (not NULL). For a stream they
 * are known only after its end; before that all are 0. */
PORTER_API void porter_http_response_timings(const porter_http_response *r,
					     porter_http_timings *out);

/* Frees a response; NULL is accepted and ignored. */
PORTER_API void porter_http_response_free(porter_http_response *r);

/*
 * Streaming: the body is pulled chunk by chunk, so it can be of any size;
 * the daemon holds at most about one chunk per stream and pauses the
 * transfer while the caller does not read. A stream is a handle owned by
 * the caller, used by one thread at a time. It lives on the daemon worker
 * that served the opening thread's connection: read it from that thread,
 * or from another thread of the same process whose connection that worker
 * also serves (always true with one worker); elsewhere reads fail with
 * PORTER_E_NOT_FOUND. Only the process that opened a stream can read it.
 * The daemon aborts a stream that is not read for its http-stream-idle time
 * (default 60 s).
 */
typedef struct porter_http_stream porter_http_stream;

/*
 * Starts a request like porter_http_request and waits for its status and
 * headers (and the first chunk). On success stores a new stream in `*out`
 * (free with porter_http_stream_close) and returns 0.
 */
PORTER_API int porter_http_stream_open(const char *method, const char *url,
				       const char *const *headers, size_t n_headers,
				       const void *body, size_t body_len,
				       const porter_http_options *opts, int timeout_ms,
				       porter_http_stream **out);

/*
 * The response head (status, headers, effective URL; the body is empty;
 * timings are filled once the stream has ended). Owned by `s`.
 */
PORTER_API const porter_http_response *porter_http_stream_response(const porter_http_stream *s);

/*
 * Reads the next chunk: stores a pointer owned by `s` (valid until the
 * next read or close) in `*data` and its length in `*len`, and returns 1;
 * returns 0 at the end of the body; a negative code on failure (the
 * transfer failed, PORTER_E_TIMEOUT when nothing arrived within
 * timeout_ms). Blocks for at most timeout_ms (0: the default). Any thread
 * of the process may read (one read at a time per stream); the daemon
 * routes the read to the worker that holds the stream. A read that failed
 * with PORTER_E_TIMEOUT, PORTER_E_CANCELLED or PORTER_E_NOT_FOUND may be
 * repeated; after any other failure every later read returns the same
 * code, never a clean end.
 */
PORTER_API int porter_http_stream_read(porter_http_stream *s, const void **data, size_t *len,
				       int timeout_ms);

/*
 * Frees `s`; a stream not read to its end is aborted in the daemon (this
 * waits up to one second for the daemon to confirm). NULL is accepted.
 */
PORTER_API void porter_http_stream_close(porter_http_stream *s);

/*
 * Adds an HTTP request member to batch `b` (see porter_batch_new), with the
 * arguments of porter_http_request; everything is copied. `timeout_ms`
 * bounds this member (0: the batch's). In a PORTER_BATCH_FIRST batch the
 * first member to get a response wins and the other transfers are aborted,
 * which makes hedged requests to several mirrors one call. Returns the
 * member's index (>= 0) or a negative code. Streams cannot be batched.
 */
PORTER_API int porter_batch_add_http(porter_batch *b, const char *method, const char *url,
				     const char *const *headers, size_t n_headers, const void *body,
				     size_t body_len, const porter_http_options *opts,
				     int timeout_ms);

/*
 * The response of HTTP member `i` of a batch result: stores a new response
 * in `*out` (owned by the caller, free with porter_http_response_free; it
 * outlives `r`) and returns 0, or PORTER_E_INVAL when member `i` is not a
 * successful HTTP request (read its status with porter_batch_result_status).
 */
PORTER_API int porter_batch_result_http(const porter_batch_result *r, size_t i,
					porter_http_response **out);

/*
 * Files. porterd performs file operations inside configured roots
 * (porterd's `file-roots = name=/path,...`; by default one root named
 * "files" at $XDG_DATA_HOME/porter/files, else ~/.local/share/porter/files).
 * Every call names a root (NULL or "" means the daemon's first root) and a
 * path relative to it ("a/b.txt"). A path that would leave the root - "..",
 * an absolute path, a symlink pointing out, a magic link such as
 * /proc/self/root - fails with PORTER_E_FILE_ESCAPE. Failures of the
 * underlying system call map to PORTER_E_FILE_* codes (not found,
 * permission, is a directory, exists, no space, not a directory) with the
 * errno in the message.
 *
 * Content is binary (NUL bytes are fine). Large files stream: a reader
 * pulls one chunk per call, a writer sends one chunk per call, so neither
 * side ever holds a whole large file. `timeout_ms` (0: the library
 * default, 5000) bounds the whole call, including every chunk exchange of
 * porter_file_read and porter_file_write; the daemon enforces it too.
 * Streams are tied to this process and dropped by the daemon when the
 * connection of the thread that opened them closes.
 */

/* Write flags, combined with |. */
enum porter_file_flag {
	PORTER_FILE_CREATE = 1,    /* create the file when missing */
	PORTER_FILE_TRUNCATE = 2,  /* empty an existing file first */
	PORTER_FILE_APPEND = 4,    /* write at the end (not with ATOMIC) */
	PORTER_FILE_EXCLUSIVE = 8, /* fail with PORTER_E_FILE_EXISTS if it exists */
	/* Durable all-or-nothing replace: the data goes to a temp file in the
	 * same directory, which is fsynced and renamed over the target, and the
	 * directory is fsynced. Readers and crashes see the old content or the
	 * new, never a mix. Implies CREATE and SYNC; keeps the permissions of a
	 * replaced file; a symlink at the target is replaced, not followed. */
	PORTER_FILE_ATOMIC = 16,
	PORTER_FILE_SYNC = 32, /* fsync before the call returns */
};

/* Bytes returned by the library: `data` (NULL only when len is 0 and
 * allocation was skipped; may contain NULs) and `len`. Freed, with its
 * data, by one porter_bytes_free. */
typedef struct porter_bytes {
	uint8_t *data;
	size_t len;
} porter_bytes;

/* Frees `b` and its data; NULL is accepted. */
PORTER_API void porter_bytes_free(porter_bytes *b);

/*
 * Reads `length` bytes (0: to the end of the file) from `offset` of `path`
 * in `root`. On success stores a new porter_bytes in `*out` (not NULL;
 * freed with porter_bytes_free) and returns 0; a range past the end gives
 * fewer bytes (possibly 0). The whole range is held in memory: use
 * porter_file_reader_open for files too large for that. Blocks for at most
 * `timeout_ms`. `path` not NULL.
 */
PORTER_API int porter_file_read(const char *root, const char *path, uint64_t offset,
				uint64_t length, porter_bytes **out, int timeout_ms);

/*
 * Writes `len` bytes at `data` (NULL accepted when len is 0) to `path` in
 * `root` according to `flags` (porter_file_flag bits; 0 means overwrite an
 * existing file from its start). `mode` gives the permissions of a created
 * file (0: 0600). Data larger than one frame is sent in chunks. Returns 0
 * or a negative code; PORTER_E_CONN_LOST when the daemon went away
 * mid-call (an atomic write then either happened completely or not at
 * all). Blocks for at most `timeout_ms`.
 */
PORTER_API int porter_file_write(const char *root, const char *path, const void *data, size_t len,
				 unsigned flags, unsigned mode, int timeout_ms);

/*
 * Deletes the file (or, with `directory` non-zero, the empty directory)
 * `path` in `root`. A symlink is removed itself, not its target. Returns 0
 * or a negative code. Blocks for at most `timeout_ms`.
 */
PORTER_API int porter_file_delete(const char *root, const char *path, int directory,
				  int timeout_ms);

/* Kinds of file, as reported by porter_file_stat and lists. */
enum porter_file_type {
	PORTER_FILE_TYPE_UNKNOWN = 0,
	PORTER_FILE_TYPE_REGULAR = 1,
	PORTER_FILE_TYPE_DIRECTORY = 2,
	PORTER_FILE_TYPE_SYMLINK = 3,
	PORTER_FILE_TYPE_OTHER = 4,
};

/* What porter_file_stat reports. */
typedef struct porter_file_info {
	int type;         /* porter_file_type */
	uint64_t size;    /* bytes */
	uint32_t mode;    /* permission bits, e.g. 0644 */
	int64_t mtime_ns; /* modification time, ns since the epoch */
	uint32_t uid, gid;
	uint64_t nlink;
} porter_file_info;

/*
 * Fills `*out` (not NULL; untouched on failure) with what `path` in `root`
 * is, following symlinks that stay inside the root. Returns 0 or a
 * negative code. Blocks for at most `timeout_ms`.
 */
PORTER_API int porter_file_stat(const char *root, const char *path, porter_file_info *out,
				int timeout_ms);

/* Opaque directory listing. */
typedef struct porter_file_list porter_file_list;

/*
 * Lists the directory `path` in `root` ("" or NULL: the root itself),
 * sorted by name, without "." and "..". On success stores a new list in
 * `*out` (freed with porter_file_list_free) and returns 0. Blocks for at
 * most `timeout_ms`. The listing must fit in one frame (16 MiB by default).
 */
PORTER_API int porter_file_list_dir(const char *root, const char *path, porter_file_list **out,
				    int timeout_ms);

/* Number of entries; 0 for NULL. */
PORTER_API size_t porter_file_list_count(const porter_file_list *l);

/* Name of entry `i`, NUL-terminated, owned by `l`; NULL when out of range. */
PORTER_API const char *porter_file_list_name(const porter_file_list *l, size_t i);

/* Type (porter_file_type; a symlink is SYMLINK), size and mtime of entry
 * `i`; outputs may be NULL. Returns 0 or PORTER_E_INVAL. */
PORTER_API int porter_file_list_entry(const porter_file_list *l, size_t i, int *type,
				      uint64_t *size, int64_t *mtime_ns);

/* Frees `l`; NULL is accepted. */
PORTER_API void porter_file_list_free(porter_file_list *l);

/* Opaque streaming reader and writer. A handle is used by one thread at a
 * time (any thread; the daemon accepts its stream from any connection of
 * this process). */
typedef struct porter_file_reader porter_file_reader;
typedef struct porter_file_writer porter_file_writer;

/*
 * Opens `path` in `root` for streaming `length` bytes (0: to the end) from
 * `offset`, chunk by chunk. The first chunk arrives with this call. On
 * success stores a new reader in `*out` (freed with
 * porter_file_reader_close) and returns 0.
 */
PORTER_API int porter_file_reader_open(const char *root, const char *path, uint64_t offset,
				       uint64_t length, porter_file_reader **out, int timeout_ms);

/* Size of the file when it was opened. */
PORTER_API uint64_t porter_file_reader_size(const porter_file_reader *rd);

/*
 * Hands out the next chunk: `*data` and `*len` (not NULL) point to bytes
 * owned by the reader, valid until the next call on it. Returns 1 with a
 * chunk, 0 at the end (no chunk), or a negative code. Pulls the next chunk
 * from the daemon when needed (blocking for at most `timeout_ms`).
 */
PORTER_API int porter_file_reader_next(porter_file_reader *rd, const uint8_t **data, size_t *len,
				       int timeout_ms);

/* Closes the reader (telling the daemon when chunks remain) and frees it;
 * NULL is accepted. Blocks briefly at most. */
PORTER_API void porter_file_reader_close(porter_file_reader *rd);

/*
 * Opens `path` in `root` for a chunked write with `flags` and `mode` as
 * for porter_file_write. With PORTER_FILE_ATOMIC nothing appears at the
 * target until porter_file_writer_commit. On success stores a new writer in
 * `*out` (freed with porter_file_writer_close) and returns 0. Readers and
 * writers count against the daemon's per-connection stream limit
 * (file-max-streams, default 64): past it, PORTER_E_BUSY.
 */
PORTER_API int porter_file_writer_open(const char *root, const char *path, unsigned flags,
				       unsigned mode, porter_file_writer **out, int timeout_ms);

/* Sends `len` bytes at `data` (split into chunks as needed). Returns 0 or a
 * negative code (the write is then abandoned). */
PORTER_API int porter_file_writer_write(porter_file_writer *wr, const void *data, size_t len,
					int timeout_ms);

/* Finishes the write: fsync and, for an atomic write, the rename. Returns
 * 0 or a negative code. The writer must still be closed. */
PORTER_API int porter_file_writer_commit(porter_file_writer *wr, int timeout_ms);

/* Frees the writer; an uncommitted write is abandoned (an atomic one
 * leaves the target untouched). NULL is accepted. Blocks briefly at most. */
PORTER_API void porter_file_writer_close(porter_file_writer *wr);
/* ---- PostgreSQL ----
 *
 * Queries run in porterd with libpq's non-blocking API. A session (an open
 * server connection with its transaction and session state) is named by a
 * 64-bit id that any thread of this process may use; calls on one session
 * run one at a time in the order porterd receives them. A query without a
 * session (session 0, with a conninfo) runs on a connection of porterd's
 * pool for that conninfo and must not rely on session state: a pooled
 * connection left inside a transaction is discarded, one whose statements
 * may have changed settings is reset (DISCARD ALL) before reuse.
 *
 * Every query has a deadline (`timeout_ms`, 0: the default of 5 s); on
 * expiry porterd cancels it on the server and the call returns
 * PORTER_E_TIMEOUT, and the session stays usable.
 */

/* One query parameter. `value` NULL means SQL NULL (len is ignored);
 * otherwise `len` bytes at `value` (need not be NUL-terminated) in text
 * (`binary` 0) or PostgreSQL's binary format (`binary` 1). `type_oid` 0
 * lets the server infer the type. The caller keeps ownership. */
typedef struct porter_db_param {
	const void *value;
	size_t len;
	int binary;
	uint32_t type_oid;
} porter_db_param;

/* Opaque result of one query call, modelled on libpq's PGresult. */
typedef struct porter_db_result porter_db_result;

/* Opaque cursor over a streamed result. */
typedef struct porter_db_cursor porter_db_cursor;

/*
 * Opens a session on `conninfo` (libpq conninfo string or URI, not NULL).
 * On success stores the session id in `*session` and returns 0. Errors:
 * PORTER_E_DB_CONNECT (message from libpq: wrong password, unreachable
 * server...), PORTER_E_TIMEOUT, PORTER_E_INVAL. Blocks up to `timeout_ms`.
 * Thread safe. Sessions of a process that exits are closed (and their
 * transactions rolled back) after porterd's grace period.
 */
PORTER_API int porter_db_open(const char *conninfo, uint64_t *session, int timeout_ms);

/*
 * Closes `session`, rolling back any open transaction. Returns 0, or
 * PORTER_E_DB_SESSION when no such session belongs to this process.
 */
PORTER_API int porter_db_close(uint64_t session, int timeout_ms);

/*
 * Runs `sql` on `session`, or when `session` is 0 on a pooled connection
 * for `conninfo`. `params` (may be NULL when `nparams` is 0) are $1..$n;
 * without parameters `sql` may hold several statements, one result part
 * each. Returns 0 on success or a negative code. Whenever porterd answered
 * (success or a database error), `*out` receives a result that the caller
 * frees with porter_db_result_free() and whose status and error fields
 * describe the outcome; otherwise `*out` is set to NULL. Errors include
 * PORTER_E_DB (SQL error: see porter_db_sqlstate), PORTER_E_TIMEOUT,
 * PORTER_E_DB_BROKEN, PORTER_E_DB_SESSION, PORTER_E_TOO_LARGE (use a
 * cursor). Blocks up to `timeout_ms`. Thread safe.
 */
PORTER_API int porter_db_query(uint64_t session, const char *conninfo, const char *sql,
			       const porter_db_param *params, size_t nparams, int timeout_ms,
			       porter_db_result **out);

/* Frees a result; NULL is accepted. */
PORTER_API void porter_db_result_free(porter_db_result *res);

/* The call's status: 0 or the negative code the call returned. */
PORTER_API int porter_db_status(const porter_db_result *res);
/* Error fields; never NULL ("" when absent), owned by `res`. */
PORTER_API const char *porter_db_message(const porter_db_result *res);
PORTER_API const char *porter_db_sqlstate(const porter_db_result *res);
PORTER_API const char *porter_db_detail(const porter_db_result *res);
PORTER_API const char *porter_db_hint(const porter_db_result *res);

/*
 * Number of result parts (one per statement). The accessors below read the
 * selected part, initially the last one (as PQexec returns the last
 * result); porter_db_select() picks another (returns 0, or PORTER_E_INVAL
 * when `i` is out of range).
 */
PORTER_API size_t porter_db_nresults(const porter_db_result *res);
PORTER_API int porter_db_select(porter_db_result *res, size_t i);

/* Rows and columns of the selected part (0 when it has none). */
PORTER_API int porter_db_ntuples(const porter_db_result *res);
PORTER_API int porter_db_nfields(const porter_db_result *res);
/* Column name (owned by `res`), or NULL when `col` is out of range. */
PORTER_API const char *porter_db_fname(const porter_db_result *res, int col);
/* Column type OID, or 0 when `col` is out of range. */
PORTER_API uint32_t porter_db_ftype(const porter_db_result *res, int col);
/*
 * Value in text format, NUL-terminated (owned by `res`, valid until it is
 * freed); "" for SQL NULL (tell NULL from the empty string with
 * porter_db_getisnull) and NULL when out of range. Values may contain NUL
 * bytes only when they are bytea in escape form; use porter_db_getlength.
 */
PORTER_API const char *porter_db_getvalue(const porter_db_result *res, int row, int col);
PORTER_API int porter_db_getlength(const porter_db_result *res, int row, int col);
/* 1 when the value is SQL NULL, 0 otherwise (also when out of range). */
PORTER_API int porter_db_getisnull(const porter_db_result *res, int row, int col);
/* Rows affected by INSERT/UPDATE/DELETE/... (PQcmdTuples), else 0. */
PORTER_API uint64_t porter_db_cmdtuples(const porter_db_result *res);
/* Command tag, e.g. "INSERT 0 1" (owned by `res`; "" when none). */
PORTER_API const char *porter_db_cmdstatus(const porter_db_result *res);

/*
 * Runs a single-statement query whose result is streamed in chunks of at
 * most `chunk_rows` rows (1..100000), so that porterd and this process hold
 * one chunk at a time whatever the result's size. Arguments as for
 * porter_db_query. On success stores a cursor in `*out` (free with
 * porter_db_cursor_close) and returns 0; on failure `*out` is NULL. The
 * first chunk is already fetched; a database error may also arrive with a
 * later chunk.
 */
PORTER_API int porter_db_query_stream(uint64_t session, const char *conninfo, const char *sql,
				      const porter_db_param *params, size_t nparams,
				      unsigned chunk_rows, int timeout_ms, porter_db_cursor **out);

/*
 * Hands the next chunk to `*chunk` (a result with the query's columns and
 * up to chunk_rows rows, freed with porter_db_result_free) and returns 1;
 * returns 0 with `*chunk` NULL after the last chunk; or a negative code
 * (`*chunk` then carries the error fields when porterd answered, else
 * NULL). Each call waits up to `timeout_ms` for its chunk. A cursor is
 * used by one thread at a time, but any thread may use it.
 */
PORTER_API int porter_db_cursor_next(porter_db_cursor *cur, porter_db_result **chunk,
				     int timeout_ms);

/* Closes a cursor; a stream not read to its end is abandoned (porterd
 * cancels the query). NULL is accepted. Blocks briefly (up to 1 s). */
PORTER_API void porter_db_cursor_close(porter_db_cursor *cur);

/*
 * Database and file members of a batch (see porter_batch_new). The
 * arguments are those of porter_db_query and porter_file_read; strings and
 * parameters are copied, so they need not outlive the call.
 */

/* Adds a query member. Returns its index (>= 0) or a negative code. */
PORTER_API int porter_batch_add_db_query(porter_batch *b, uint64_t session, const char *conninfo,
					 const char *sql, const porter_db_param *params,
					 size_t nparams, int timeout_ms);

/*
 * The result of query member `i` as a new porter_db_result (free with
 * porter_db_result_free), success or failure alike; returns 0, or
 * PORTER_E_INVAL when member `i` is not a query that answered (a member
 * stopped because another won a FIRST batch has no result: check
 * porter_batch_result_status first).
 */
PORTER_API int porter_batch_result_db(const porter_batch_result *r, size_t i,
				      porter_db_result **out);

/*
 * Adds a file read member. A batch member reads at most one chunk (the
 * daemon's file-chunk-size, 1 MiB by default): read larger files with
 * porter_file_read. Returns the member's index or a negative code.
 */
PORTER_API int porter_batch_add_file_read(porter_batch *b, const char *root, const char *path,
					  uint64_t offset, uint64_t length, int timeout_ms);

/*
 * The bytes read by file member `i`: sets `*data` (owned by `r`), `*len`,
 * and `*file_size` (the file's size, which tells whether the chunk reached
 * the end; may be NULL). Returns 0, or PORTER_E_INVAL when member `i` is
 * not a successful file read.
 */
PORTER_API int porter_batch_result_file_read(const porter_batch_result *r, size_t i,
					     const void **data, size_t *len, uint64_t *file_size);

#ifdef __cplusplus
}
#endif

#endif /* PORTER_H */
