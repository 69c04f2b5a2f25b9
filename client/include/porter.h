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
 *
 * API rules (version 1). Every declaration below follows them; a function
 * that departs from one says so in its own comment.
 *
 *  1. Argument order: inputs, then `call_id` (for calls that send a
 *     request), then `timeout_ms`, then the out-parameters.
 *  2. Every function that can wait takes `timeout_ms`: it never blocks
 *     longer (0: the library default, 5000 ms; negative: PORTER_E_INVAL).
 *     Functions without one never wait on the daemon.
 *  3. Call ids: `call_id` names the call for porter_cancel. Take one from
 *     porter_call_id_new() (unique in the process, no thread state) before
 *     the call, hand it to whoever may cancel, then make the call with it;
 *     0 lets the library pick an id nobody knows. An operation made of
 *     several requests (porter_file_read past one chunk, porter_file_write
 *     past one frame, every read of a stream) sends all of them with the
 *     same id, so a cancel reaches whichever is in flight; a stream read
 *     with call_id 0 uses the id its stream was opened with.
 *  4. Streams (db cursors, HTTP streams, file readers) share one
 *     vocabulary: `*_open`, `*_read`, `*_close`. A stream may be given a
 *     whole-stream deadline at open (`stream_timeout_ms`, or the HTTP
 *     option transfer_timeout_ms): each read then waits at most until it,
 *     whatever its own timeout, and fails with PORTER_E_TIMEOUT past it.
 *  5. Bytes are `const void *` with a `size_t` length, never
 *     NUL-terminated; text arguments are NUL-terminated `const char *`.
 *  6. Out-parameters: on failure every pointer out-parameter is set to NULL
 *     (and a struct or integer out-parameter to zero) unless the function
 *     documents a result object that carries the error (porter_db_query).
 *     Out-parameter pointers themselves must not be NULL unless said.
 *  7. Ownership: an object handed out through `**out` (result, response,
 *     snapshot, list, stream, batch result) is new, owned by the caller and
 *     freed by its one free function; it outlives anything it came from.
 *     Pointers returned by accessors or through `const void **data` are
 *     borrowed from their object: valid until it is freed (for stream
 *     chunks, until the stream's next read or free). Inputs are never
 *     retained after a call returns: strings and bytes are copied.
 *  8. Handles (porter_db_cursor, porter_http_stream, porter_file_reader,
 *     porter_file_writer; and db sessions, ids with porter_db_close and
 *     porter_db_free) have `*_close(h, timeout_ms)`, which tells the
 *     daemon and waits up to timeout_ms, and `*_free(h)`, which never waits:
 *     any daemon round trip it needs is handed to a libporter background
 *     thread, so it is safe in finalizers on any thread. Both always free
 *     the handle; NULL is accepted and ignored by every free and close.
 *  9. Structs the caller allocates carry their size: option structs,
 *     which the library reads (porter_http_options), and out structs,
 *     which it writes (porter_worker_stats, porter_uid_usage,
 *     porter_http_timings, porter_file_info). Their first field is
 *     `size_t struct_size`, set by their *_INIT macro to the size the
 *     caller was compiled with: initialise with it, then set fields or
 *     pass the struct. Fields are only ever added at the end. The library
 *     reads only the fields within struct_size and writes only within it
 *     (never struct_size itself), so a newer library never writes past an
 *     older caller's struct, and an older library leaves a newer caller's
 *     extra fields as they were (zero, from the macro). A struct_size
 *     below version 1's size gives PORTER_E_INVAL, with nothing written.
 *     "Zeroed on failure" (rule 6) means every field within struct_size
 *     but struct_size. Structs the library allocates and hands out
 *     (porter_bytes) only grow at the end and carry no size.
 * 10. NULL: every pointer argument says whether NULL is accepted; where it
 *     is not, NULL gives PORTER_E_INVAL (with the out-parameters cleared as
 *     rule 6 says) and never a crash. An accessor given a NULL object
 *     returns what it returns for an index out of range: 0 for numbers
 *     and counts, "" for text documented as never NULL, NULL for text
 *     that may be absent. tests/ffi/api_null.py probes every pointer
 *     parameter of every declaration here with NULL.
 * 11. Versions: PORTER_VERSION_* come from the build's project version;
 *     compare porter_version_num() with PORTER_VERSION_NUM at start.
 */
#ifndef PORTER_H
#define PORTER_H

#include <stddef.h>
#include <stdint.h>

#include "porter_errors.h"  /* PORTER_E_* codes, porter_strerror, PORTER_API */
#include "porter_version.h" /* PORTER_VERSION_* (generated by CMake) */

#ifdef __cplusplus
extern "C" {
#endif

/* The library version string, e.g. "0.1.0"; static, never NULL. */
PORTER_API const char *porter_version(void);

/*
 * The version of the library loaded at run time as PORTER_VERSION_NUM
 * computes it (MAJOR * 10000 + MINOR * 100 + PATCH). A program checks
 * `porter_version_num() >= PORTER_VERSION_NUM` at start to know that the
 * shared library is at least the one it was compiled against.
 */
PORTER_API int porter_version_num(void);

/*
 * The calling thread's last error: the code returned by its most recent
 * failing call (0 after a successful one). porter_last_error_message()
 * returns a message for it, owned by the library and valid until the
 * thread's next porter_* call; never NULL, always valid UTF-8 (a message
 * cut at its bound of 511 bytes ends before the character the cut fell
 * in; a byte of no UTF-8 character, from porterd or a name the caller
 * gave, reads as the four characters \xNN, its value in hex, so that two
 * such names stay told apart).
 */
PORTER_API int porter_last_error(void);
PORTER_API const char *porter_last_error_message(void);

/*
 * Socket path resolution: the PORTER_SOCKET environment variable if set and
 * not empty, else the daemon's default, $XDG_RUNTIME_DIR/porter/porter.sock,
 * else /tmp/porter-$UID/porter.sock. Writes a NUL-terminated path to
 * `buf` (capacity `cap`, not NULL). Returns its length, or PORTER_E_INVAL
 * when it does not fit.
 *
 * At the default path (no PORTER_SOCKET) libporter talks only to a daemon
 * running as the calling user or as root (SO_PEERCRED), since any user can
 * create /tmp/porter-$UID first; another uid listening there makes every
 * call fail with PORTER_E_DENIED before anything is sent. A daemon of
 * another user (the system service) is used by naming its socket in
 * PORTER_SOCKET, on a path no other uid could have prepared (the system
 * unit's /run/porter/porter.sock): every directory on it, symlinks
 * followed, belongs to that user, to root or to the caller; the socket's
 * own directory may be written by its owner alone; and a directory others
 * may write (/tmp) is crossed only when sticky and only to something of
 * root's or the caller's. A name in /tmp, or in a directory someone made
 * there (anyone can make /tmp/porterd, under their own uid, before the
 * service does), is anyone's to bind once its daemon is gone, so another
 * user's daemon there is refused the same way, with a message naming the
 * entry at fault (a daemon of the caller or root is trusted wherever it
 * is).
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
PORTER_API int porter_ping(const void *payload, size_t len, uint64_t call_id, int timeout_ms);

/* Counters of one daemon worker loop, as reported by porter_stats. An out
 * struct (rule 9): initialise with PORTER_WORKER_STATS_INIT. */
typedef struct porter_worker_stats {
	size_t struct_size;   /* sizeof(porter_worker_stats), set by the INIT macro */
	uint32_t worker;      /* index, 0..n-1 */
	uint64_t connections; /* client connections open now */
	uint64_t requests;    /* requests received since start */
	uint64_t inflight;    /* requests being processed now */
	uint64_t errors;      /* failed responses since start */
	uint64_t bytes_in;    /* bytes read from clients since start */
	uint64_t bytes_out;   /* bytes written to clients since start */
} porter_worker_stats;

/* Initialiser of porter_worker_stats. */
#define PORTER_WORKER_STATS_INIT                                                                   \
	{                                                                                          \
		.struct_size = sizeof(porter_worker_stats)                                         \
	}

/* Opaque snapshot of the daemon's counters. */
typedef struct porter_stats_snapshot porter_stats_snapshot;

/*
 * Fetches the daemon's counters. On success stores a new snapshot in `*out`
 * (not NULL), owned by the caller and freed with porter_stats_free(), and
 * returns 0; `*out` is NULL on failure. Blocks for at most `timeout_ms`
 * (0: default).
 */
PORTER_API int porter_stats(uint64_t call_id, int timeout_ms, porter_stats_snapshot **out);

/* Number of workers in the snapshot. `s` not NULL. */
PORTER_API size_t porter_stats_workers(const porter_stats_snapshot *s);

/*
 * Copies worker `i` (< porter_stats_workers) into `*out` (not NULL;
 * initialised with PORTER_WORKER_STATS_INIT; written only within its
 * struct_size). Returns 0, or PORTER_E_INVAL when `i` is out of range
 * (`*out` then zeroed), a pointer is NULL or out->struct_size is below
 * version 1's (nothing written).
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

/*
 * File reads and stats the daemon answered on its worker loops without its
 * thread pool (its file-loop-fast-path: path and data already cached),
 * summed over the workers, since the daemon started. 0 for a NULL `s`.
 */
PORTER_API uint64_t porter_stats_file_fast(const porter_stats_snapshot *s);

/* The daemon's version string; owned by `s`, valid until it is freed. */
PORTER_API const char *porter_stats_daemon_version(const porter_stats_snapshot *s);

/*
 * What one uid holds in the daemon, against its quotas (the daemon's
 * uid-max-* settings; a max of 0 means no limit). Reaching a limit gives
 * that uid PORTER_E_BUSY with a message naming the setting. An out struct
 * (rule 9): initialise with PORTER_UID_USAGE_INIT.
 */
typedef struct porter_uid_usage {
	size_t struct_size; /* sizeof(porter_uid_usage), set by the INIT macro */
	uint32_t uid;
	uint64_t connections;    /* connections open now, and closed ones whose replies
				  * still wait in the client's socket */
	uint64_t inflight;       /* requests in flight over all its connections */
	uint64_t buffered_bytes; /* unsent replies, read buffers and the rest
				  * README lists under uid-max-buffered */
	uint64_t sessions;       /* database connections: sessions and pooled */
	uint64_t streams;        /* cursors, HTTP and file streams */
	uint64_t max_connections;
	uint64_t max_inflight;
	uint64_t max_buffered;
	uint64_t file_streams;     /* file readers, writers and watches (also in streams) */
	uint64_t max_file_streams; /* the daemon's file-max-streams-per-uid */
	/* Added after max_file_streams (an older porterd leaves them 0): the
	 * limit of `sessions`, and the HTTP streams open and their limit. */
	uint64_t max_sessions;     /* the daemon's db-max-connections-per-uid */
	uint64_t http_streams;     /* HTTP streams (also in streams) */
	uint64_t max_http_streams; /* the daemon's http-max-streams-per-uid */
} porter_uid_usage;

/* Initialiser of porter_uid_usage. */
#define PORTER_UID_USAGE_INIT                                                                      \
	{                                                                                          \
		.struct_size = sizeof(porter_uid_usage)                                            \
	}

/* Number of uids in the snapshot: the caller's own uid only, or every uid
 * holding something when the caller runs as the daemon's own uid. `s` not
 * NULL. */
PORTER_API size_t porter_stats_uids(const porter_stats_snapshot *s);

/*
 * Copies uid entry `i` (< porter_stats_uids) into `*out` (not NULL;
 * initialised with PORTER_UID_USAGE_INIT; written only within its
 * struct_size). Returns 0, or PORTER_E_INVAL as porter_stats_worker.
 */
PORTER_API int porter_stats_uid(const porter_stats_snapshot *s, size_t i, porter_uid_usage *out);

/* Frees a snapshot; NULL is accepted and ignored. */
PORTER_API void porter_stats_free(porter_stats_snapshot *s);

/*
 * Like porter_ping, but the daemon waits `delay_ms` before echoing: a
 * diagnostic that exercises deadlines and cancellation without any
 * external server. The daemon enforces `timeout_ms` itself and answers
 * PORTER_E_TIMEOUT when the delay would pass it.
 */
PORTER_API int porter_ping_delay(const void *payload, size_t len, uint32_t delay_ms,
				 uint64_t call_id, int timeout_ms);

/*
 * Cancellation. Every call that sends a request takes a `call_id`. To make
 * a call cancellable, take an id first and hand it to the canceller:
 *
 *     uint64_t id = porter_call_id_new();        // any thread
 *     ... publish id to the canceller ...
 *     rc = porter_db_query(..., id, 30000, &res); // this call uses `id`
 *
 * and any thread of the same process may then call porter_cancel(id) or
 * porter_cancel_nowait(id). The blocked call returns PORTER_E_CANCELLED
 * promptly. Nothing is kept in thread-local state, so the id may be taken
 * on one thread and used on another (a Dart isolate that moved).
 */

/*
 * A new call id: unique within this process (ids from the library's own
 * calls never collide with it), never 0. Never blocks; no thread state.
 * Use ids from here only: an id made up by the caller may equal one the
 * library picks for another call.
 */
PORTER_API uint64_t porter_call_id_new(void);

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
 * Like porter_cancel, but never waits: the Cancel request is handed to a
 * libporter background thread, which sends it on its own connection (and
 * forgets the reply). Returns 0 when queued, PORTER_E_INVAL for id 0,
 * PORTER_E_NOMEM. Safe in finalizers and on a UI thread.
 */
PORTER_API int porter_cancel_nowait(uint64_t id);

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
 *
 * NULL: every batch function below refuses a NULL builder or result with
 * PORTER_E_INVAL (the counters give 0, porter_batch_result_winner -1,
 * messages ""), except the frees, which accept it. The arguments of a
 * member are those of the call it stands for (porter_ping,
 * porter_http_request, porter_db_query, porter_file_*), NULL accepted
 * where that call accepts it. The out-parameters of porter_batch_run and
 * porter_batch_result_* must not be NULL, and are NULL or 0 after a
 * failure.
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
PORTER_API int porter_batch_run(porter_batch *b, uint64_t call_id, int timeout_ms,
				porter_batch_result **out);

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

/*
 * Per-request options. A NULL options pointer means all defaults. Always
 * initialise with PORTER_HTTP_OPTIONS_INIT (then set fields), so that
 * `struct_size` says which fields the caller knows: fields added in later
 * versions are appended, and the library reads only the fields within
 * struct_size, so a program built against an older porter.h keeps working.
 * A struct_size smaller than version 1's struct gives PORTER_E_INVAL.
 */
typedef struct porter_http_options {
	size_t struct_size;           /* sizeof(porter_http_options), set by the INIT macro */
	int follow_redirects;         /* nonzero: follow 301/302/303/307/308 */
	uint32_t max_redirects;       /* 0: the daemon's limit (default 10) */
	uint64_t max_response;        /* largest body accepted; 0: the daemon's
				       * limit (default 8 MiB for whole
				       * responses, none for streams) */
	uint32_t transfer_timeout_ms; /* whole requests: 0, the call's timeout
				       * bounds the transfer. Streams: the
				       * whole-stream deadline from open (each
				       * read waits at most until it); 0: none */
	uint32_t chunk_size;          /* streams: bytes per chunk; 0: default */
	int keep_credentials;         /* nonzero: credential headers (see the
				       * README's list) follow a redirect to
				       * another origin; by default they are
				       * dropped there */
	uint32_t connect_timeout_ms;  /* bound of each connection attempt; 0:
				       * porterd's http-connect-timeout, which
				       * also caps it (curl --connect-timeout) */
} porter_http_options;

/* Initialiser of porter_http_options: every option at its default. */
#define PORTER_HTTP_OPTIONS_INIT                                                                   \
	{                                                                                          \
		.struct_size = sizeof(porter_http_options)                                         \
	}

/* Where the time of a request went, in microseconds. namelookup, connect,
 * tls and first_byte count from the start of the last redirect hop; total
 * spans all hops. tls_us is 0 for plain http. An out struct (rule 9):
 * initialise with PORTER_HTTP_TIMINGS_INIT. */
typedef struct porter_http_timings {
	size_t struct_size; /* sizeof(porter_http_timings), set by the INIT macro */
	uint64_t namelookup_us;
	uint64_t connect_us;
	uint64_t tls_us;
	uint64_t first_byte_us;
	uint64_t total_us;
} porter_http_timings;

/* Initialiser of porter_http_timings. */
#define PORTER_HTTP_TIMINGS_INIT                                                                   \
	{                                                                                          \
		.struct_size = sizeof(porter_http_timings)                                         \
	}

/* Opaque HTTP response; freed with porter_http_response_free(). */
typedef struct porter_http_response porter_http_response;

/*
 * Performs an HTTP request through porterd.
 *   method   "GET", "POST", "PUT", "DELETE", "HEAD" ...; NULL means GET.
 *   url      NUL-terminated, not NULL.
 *   headers  `n_headers` NUL-terminated "Name: value" lines; may be NULL
 *            when n_headers is 0. An empty value ("Name:") sends the
 *            header empty. Framing and hop-by-hop headers
 *            (Content-Length, Transfer-Encoding, Connection, Keep-Alive,
 *            TE, Trailer, Upgrade, Expect, Proxy-*), control characters
 *            and a Host naming another host than the URL's are refused
 *            with PORTER_E_INVAL, the message naming the header.
 *            Credential headers (see porter_http_options) do not follow
 *            a redirect to another origin.
 *   body     `body_len` bytes (may contain NULs); NULL when body_len is 0.
 *   opts     may be NULL (all defaults).
 *   call_id  for porter_cancel (0: none).
 *   timeout_ms  bounds the whole call, every redirect hop included (0:
 *            the library default, 5000).
 * On success stores a new response in `*out` (not NULL; owned by the
 * caller, free with porter_http_response_free) and returns 0; `*out` is
 * NULL on failure. Blocks the calling thread for at most timeout_ms.
 * The whole body is returned at once, so it is limited to the daemon's
 * http-max-response; use porter_http_stream_open for larger bodies.
 * GET and HEAD are retried once on a fresh connection if the daemon
 * connection broke; other methods are not (PORTER_E_CONN_LOST).
 */
PORTER_API int porter_http_request(const char *method, const char *url, const char *const *headers,
				   size_t n_headers, const void *body, size_t body_len,
				   const porter_http_options *opts, uint64_t call_id,
				   int timeout_ms, porter_http_response **out);

/* GET `url`, following redirects. Same contract as porter_http_request. */
PORTER_API int porter_http_get(const char *url, uint64_t call_id, int timeout_ms,
			       porter_http_response **out);

/* POST `json` (`len` bytes of text, need not be NUL-terminated; NULL
 * accepted when len is 0) with "Content-Type: application/json",
 * following redirects. Same contract as porter_http_request. */
PORTER_API int porter_http_post_json(const char *url, const char *json, size_t len,
				     uint64_t call_id, int timeout_ms, porter_http_response **out);

/*
 * The HTTP status carried by the calling thread's last failed HTTP call
 * (for example the 302 of a redirect that was refused), or 0 when the peer
 * gave none. Valid until the thread's next porter_* call.
 */
PORTER_API int porter_http_last_status(void);

/* The response's HTTP status code; 0 for a NULL `r`. */
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

/*
 * The final response's status line as the server sent it, without CRLF
 * ("HTTP/1.1 404 Not Found"; control bytes shown as '?'), or "" from a
 * daemon too old to pass it on. Owned by `r`, never NULL.
 */
PORTER_API const char *porter_http_response_status_line(const porter_http_response *r);

/*
 * The heads of the redirect hops followed before the final response, in
 * order (hop 0 answered the first URL): their number, and each one's
 * status line (owned by `r`; NULL when `hop` is out of range), header
 * count (0 when out of range) and header `i` (as
 * porter_http_response_header_at; PORTER_E_INVAL when either index is out
 * of range). A stream's head carries them too.
 */
PORTER_API size_t porter_http_response_hop_count(const porter_http_response *r);
PORTER_API const char *porter_http_response_hop_status_line(const porter_http_response *r,
							    size_t hop);
PORTER_API size_t porter_http_response_hop_header_count(const porter_http_response *r, size_t hop);
PORTER_API int porter_http_response_hop_header_at(const porter_http_response *r, size_t hop,
						  size_t i, const char **name, const char **value);

/* Copies the timing breakdown into `*out` (not NULL; initialised with
 * PORTER_HTTP_TIMINGS_INIT; written only within its struct_size) and
 * returns 0. For a stream they are known only after its end; before that
 * all are 0. PORTER_E_INVAL for a NULL `r` (`*out` zeroed), a NULL `out`
 * or a struct_size below version 1's (nothing written). */
PORTER_API int porter_http_response_timings(const porter_http_response *r,
					    porter_http_timings *out);

/* Frees a response; NULL is accepted and ignored. */
PORTER_API void porter_http_response_free(porter_http_response *r);

/*
 * Streaming: the body is pulled chunk by chunk, so it can be of any size;
 * the daemon holds at most about one chunk per stream and pauses the
 * transfer while the caller does not read. A stream is a handle owned by
 * the caller, used by one thread at a time, and any thread of the process
 * may read it: the daemon forwards a read that arrives on another worker's
 * connection to the worker that holds the stream. Only the process (client
 * instance) that opened a stream can read it. The daemon reclaims a
 * stream that is not read for its http-stream-idle time (default 10 s):
 * every later read fails with PORTER_E_TIMEOUT saying so, until the stream
 * is closed. A uid may hold http-max-streams-per-uid open streams (default
 * 64) over all its processes; one more fails with PORTER_E_BUSY naming the
 * limit.
 */
typedef struct porter_http_stream porter_http_stream;

/*
 * Starts a request like porter_http_request and waits for its status and
 * headers (and the first chunk). On success stores a new stream in `*out`
 * (close with porter_http_stream_close, or free with porter_http_stream_free)
 * and returns 0; `*out` is NULL on failure. `call_id` names the open and,
 * by default, every read. opts->transfer_timeout_ms, when set, is the
 * whole-stream deadline counted from this call.
 */
PORTER_API int porter_http_stream_open(const char *method, const char *url,
				       const char *const *headers, size_t n_headers,
				       const void *body, size_t body_len,
				       const porter_http_options *opts, uint64_t call_id,
				       int timeout_ms, porter_http_stream **out);

/*
 * The response head (status, headers, effective URL; the body is empty;
 * timings are filled once the stream has ended). Owned by `s`.
 */
PORTER_API const porter_http_response *porter_http_stream_response(const porter_http_stream *s);

/*
 * Reads the next chunk: stores a pointer owned by `s` (valid until the
 * next read or free) in `*data` and its length in `*len`, and returns 1;
 * returns 0 at the end of the body (`*data` NULL, `*len` 0); a negative
 * code on failure (the transfer failed, PORTER_E_TIMEOUT when nothing
 * arrived within timeout_ms or the stream's deadline passed). `call_id` 0
 * uses the id the stream was opened with. Blocks for at most timeout_ms
 * (0: the default). `s`, `data` and `len` not NULL. Any thread
 * of the process may read (one read at a time per stream); the daemon
 * routes the read to the worker that holds the stream. A read that failed
 * with PORTER_E_TIMEOUT, PORTER_E_CANCELLED or PORTER_E_NOT_FOUND may be
 * repeated; after any other failure every later read returns the same
 * code, never a clean end.
 */
PORTER_API int porter_http_stream_read(porter_http_stream *s, uint64_t call_id, int timeout_ms,
				       const void **data, size_t *len);

/*
 * Closes and frees `s`: a stream not read to its end is aborted in the
 * daemon, waiting up to `timeout_ms` for it to confirm. Returns 0, or a
 * negative code when the daemon could not be told (the daemon then aborts
 * the stream after its idle time); `s` is freed either way. NULL accepted.
 */
PORTER_API int porter_http_stream_close(porter_http_stream *s, int timeout_ms);

/*
 * Frees `s` without waiting: when the stream is not at its end, the abort
 * is sent by libporter's background thread. Safe in finalizers on any
 * thread. NULL accepted.
 */
PORTER_API void porter_http_stream_free(porter_http_stream *s);

/*
 * Streamed request bodies: a body of any size written piece by piece, for
 * uploads of files and pipes. porterd holds at most one piece (1 MiB) per
 * upload, counted in the uid's buffered bytes, and libcurl reads it as the
 * server takes it, so a slow server holds back the writer. An upload is a
 * handle owned by the caller, used by one thread at a time (any thread of
 * the process), and counts as an open HTTP stream against
 * http-max-streams-per-uid. It is reclaimed by porterd when not written
 * for http-stream-idle. A redirect that asks for the body again (307,
 * 308; 301 and 302 of anything but POST) fails with PORTER_E_HTTP, as
 * curl does when it cannot rewind; 303 (and 301/302 of a POST) follow
 * with a GET and no body.
 */
typedef struct porter_http_upload porter_http_upload;

/*
 * Starts a request whose body follows with porter_http_upload_write.
 * `method`, `url`, `headers`, `opts`: as porter_http_request (the headers
 * must not frame the body: no Content-Length, Transfer-Encoding or
 * Expect). `body_size`: the total the writes will add up to, sent as
 * Content-Length, or -1 when unknown (sent with chunked encoding); other
 * negative values give PORTER_E_INVAL. HEAD has no body (PORTER_E_INVAL).
 * `call_id` names the open and, by default, every later write, the finish
 * and the reads of the response. opts->transfer_timeout_ms, when set, is
 * one deadline from this call over the writes, the finish and the reads.
 * Waits only for porterd to accept the request (not for the server). On
 * success stores a new upload in `*out` (not NULL; free with
 * porter_http_upload_free or porter_http_upload_close) and returns 0.
 */
PORTER_API int porter_http_upload_open(const char *method, const char *url,
				       const char *const *headers, size_t n_headers,
				       int64_t body_size, const porter_http_options *opts,
				       uint64_t call_id, int timeout_ms, porter_http_upload **out);

/*
 * Sends the next `len` bytes of the body (`data` may be NULL when len is
 * 0), in pieces of at most 1 MiB, each once porterd has handed the one
 * before to libcurl; blocks at most timeout_ms for all of them. Returns 0;
 * 1 when the server has answered before taking the whole body (or a
 * redirect dropped it): the rest is not wanted, stop writing and call
 * porter_http_upload_finish for the response; or a negative code (the
 * transfer failed, or PORTER_E_INVAL when the writes pass body_size).
 * After a failure every later write returns the same code. `call_id` 0:
 * the open's. `u` not NULL.
 */
PORTER_API int porter_http_upload_write(porter_http_upload *u, const void *data, size_t len,
					uint64_t call_id, int timeout_ms);

/*
 * Ends the body and waits for the response's status and headers (and the
 * first chunk of its body): on success stores a new stream in `*out`
 * (read, close and free it as one from porter_http_stream_open) and
 * returns 0. PORTER_E_INVAL when the writes fell short of body_size. The
 * transfer belongs to the stream from then on: `u` must still be freed,
 * which then sends nothing. `u` and `out` not NULL.
 */
PORTER_API int porter_http_upload_finish(porter_http_upload *u, uint64_t call_id, int timeout_ms,
					 porter_http_stream **out);

/*
 * Frees `u`, aborting the transfer in porterd when it was not finished:
 * close waits up to timeout_ms for porterd to confirm (0 or a negative
 * code; porterd reclaims it after its idle time when it could not be
 * told); free never waits (libporter's background thread tells porterd),
 * so it is safe in finalizers on any thread. NULL accepted by both.
 */
PORTER_API int porter_http_upload_close(porter_http_upload *u, int timeout_ms);
PORTER_API void porter_http_upload_free(porter_http_upload *u);

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
 * Every call names a root (NULL or "" means the first root granted to the
 * caller) and a path relative to it ("a/b.txt"). A root porterd does not
 * grant to the caller's uid (see the README, "Who may do what") fails with
 * PORTER_E_DENIED; in a per-user root the caller sees only its own
 * directory. Created files and directories get at most the daemon's
 * file-max-mode / file-max-dir-mode (never setuid, setgid or sticky).
 * A path that would leave the root - "..", an absolute path, a symlink
 * pointing out, a magic link such as /proc/self/root - fails with
 * PORTER_E_FILE_ESCAPE, and so does one that crosses a mount point inside
 * the root (another file system mounted below it; the message says "a
 * mount point inside the root") unless the daemon's root has the option
 * `mounts` (see the README, "Mount points inside a root"). Failures of the underlying system call
 * map to PORTER_E_FILE_* codes (not found, permission, is a directory, exists, no space, not a
 * directory) with the errno in the message.
 *
 * Content is binary (NUL bytes are fine). Large files stream: a reader
 * pulls one chunk per call, a writer sends one chunk per call, so neither
 * side ever holds a whole large file. `timeout_ms` (0: the library
 * default, 5000) bounds the whole call, including every chunk exchange of
 * porter_file_read and porter_file_write; the daemon enforces it too.
 * Streams are tied to this process and dropped by the daemon when the
 * connection of the thread that opened them closes.
 *
 * Files by descriptor. Over the Unix socket, porter_file_read,
 * porter_file_write (plain writes, and atomic ones over 64 KiB), readers
 * and writers do not move the bytes through porterd: porterd resolves and
 * opens the file inside the root (the confinement and errors above) and
 * passes the open descriptor, and libporter reads or writes it in the
 * calling thread and closes it before the call (or the reader or writer)
 * ends. The caller never sees the descriptor. A read gets an O_RDONLY
 * regular file, never a directory; a write an O_WRONLY one (O_APPEND with
 * PORTER_FILE_APPEND); an atomic write its unnamed O_TMPFILE temp file,
 * which porterd links and renames into place at the commit (it keeps its
 * own copy; only this client can name the commit). Timeouts bound the
 * round trips and are checked between 4 MiB pieces of a write to the
 * descriptor; the disk itself is not interruptible. Batch members, a
 * daemon configured with file-pass-fd = false, and a moment when a reply
 * cannot carry a descriptor go as bytes, with the same results. What a
 * process can do with a descriptor it was passed is what the kernel lets
 * that descriptor do, and no more: read (or write) that one file at any
 * offset, fstat, mmap it with its access mode; it cannot read a write
 * descriptor or write a read one, open anything relative to it (never a
 * directory), change its owner or mode unless its uid owns the file, or
 * reopen it wider through /proc/self/fd unless the file's own permission
 * bits grant its uid that access. It can keep the file open after the
 * call (no confinement is lost: it is the file it asked for; a reload
 * that revokes its grant does not take back a descriptor it holds), and a
 * client could hard-link a passed file inside the same file system only
 * where the kernel allows hard links to files it does not own
 * (fs.protected_hardlinks = 0). To a client of another uid than porterd's,
 * porterd passes no descriptor of a file that uid owns, nor a read one of
 * a group- or other-writable file, nor a write one of a group- or
 * other-readable file (the kernel would let it reopen or hard-link such a
 * file by its mode bits alone): those go as bytes. libporter checks
 * every descriptor it receives (a regular file with the asked access
 * mode) and closes any it did not ask for; receiving takes one
 * descriptor slot of the process for the length of the call (at the
 * limit, the call falls back to bytes). A passed descriptor counts as an
 * open file stream of the connection that received it, and of its uid,
 * until libporter reports it closed (with that connection's next file
 * read or write open) or the connection closes: a reader or writer by
 * descriptor holds one for its life, like one over the socket (an atomic
 * writer by descriptor one in all: its stream and its temp file's
 * descriptor are counted once, and its commit or close says the
 * descriptor is closed). A process
 * that keeps a passed descriptor open (a raw client not reporting its
 * closes) keeps it counted; past file-max-streams on a connection or
 * file-max-streams-per-uid, porterd passes no more descriptors and serves
 * the call by bytes, which fails with PORTER_E_BUSY naming the limit only
 * when it needs a stream (a read of more than one chunk, a chunked
 * write). Claiming closes it did not make gets a client nothing beyond
 * what its own connections were given.
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
 * allocation was skipped; may contain NULs; read-only, owned by the
 * porter_bytes) and `len`. Freed, with its data, by one porter_bytes_free.
 * Allocated by the library, so it carries no struct_size (rule 9). */
typedef struct porter_bytes {
	const void *data;
	size_t len;
} porter_bytes;

/* Frees `b` and its data; NULL is accepted. */
PORTER_API void porter_bytes_free(porter_bytes *b);

/*
 * Reads `length` bytes (0: to the end of the file) from `offset` of `path`
 * in `root`. On success stores a new porter_bytes in `*out` (not NULL;
 * freed with porter_bytes_free) and returns 0 (`*out` NULL on failure); a
 * range past the end gives fewer bytes (possibly 0). The whole range is
 * held in memory: use porter_file_reader_open for files too large for
 * that. Every chunk request carries `call_id`. Blocks for at most
 * `timeout_ms` in all. `path` not NULL; `root` NULL means the first root.
 */
PORTER_API int porter_file_read(const char *root, const char *path, uint64_t offset,
				uint64_t length, uint64_t call_id, int timeout_ms,
				porter_bytes **out);

/*
 * Reads up to `cap` bytes from `offset` of `path` in `root` into the
 * caller's buffer `buf`, as pread(2) would: stores in `*n` how many bytes
 * were read (fewer than `cap` only at the end of the file; 0 at or past
 * it) and returns 0, or returns a negative code with `*n` 0. Nothing is
 * allocated: by descriptor the file is read straight into `buf`, so a
 * program that reads into the same buffer again pays no page faults for
 * it (a new buffer of porter_file_read's does, which for large files
 * costs more than the read). `cap` 0 reads nothing and asks porterd
 * nothing. Every request carries `call_id` (0: one chosen). Blocks for at
 * most `timeout_ms` in all (0: the default). `path` and `n` not NULL;
 * `buf` not NULL unless `cap` is 0 (on failure it may hold part of the
 * range); `root` NULL means the first root.
 */
PORTER_API int porter_file_read_into(const char *root, const char *path, uint64_t offset, void *buf,
				     size_t cap, uint64_t call_id, int timeout_ms, size_t *n);

/*
 * Writes `len` bytes at `data` (NULL accepted when len is 0) to `path` in
 * `root` according to `flags` (porter_file_flag bits; 0 means overwrite an
 * existing file from its start). `mode` gives the permissions of a created
 * file (0: 0600). Data larger than one frame is sent in chunks. Returns 0
 * or a negative code; PORTER_E_CONN_LOST when the daemon went away
 * mid-call (an atomic write then either happened completely or not at
 * all). Every request of the write carries `call_id`. Blocks for at most
 * `timeout_ms` in all.
 */
PORTER_API int porter_file_write(const char *root, const char *path, const void *data, size_t len,
				 unsigned flags, unsigned mode, uint64_t call_id, int timeout_ms);

/*
 * Deletes the file (or, with `directory` non-zero, the empty directory)
 * `path` in `root`. A symlink is removed itself, not its target. Returns 0
 * or a negative code. Blocks for at most `timeout_ms`.
 */
PORTER_API int porter_file_delete(const char *root, const char *path, int directory,
				  uint64_t call_id, int timeout_ms);

/* Kinds of file, as reported by porter_file_stat and lists. */
enum porter_file_type {
	PORTER_FILE_TYPE_UNKNOWN = 0,
	PORTER_FILE_TYPE_REGULAR = 1,
	PORTER_FILE_TYPE_DIRECTORY = 2,
	PORTER_FILE_TYPE_SYMLINK = 3,
	PORTER_FILE_TYPE_OTHER = 4,
};

/* What porter_file_stat reports. An out struct (rule 9): initialise with
 * PORTER_FILE_INFO_INIT. */
typedef struct porter_file_info {
	size_t struct_size; /* sizeof(porter_file_info), set by the INIT macro */
	int type;           /* porter_file_type */
	uint64_t size;      /* bytes */
	uint32_t mode;      /* permission bits, e.g. 0644 */
	int64_t mtime_ns;   /* modification time, ns since the epoch */
	uint32_t uid, gid;
	uint64_t nlink;
} porter_file_info;

/* Initialiser of porter_file_info. */
#define PORTER_FILE_INFO_INIT                                                                      \
	{                                                                                          \
		.struct_size = sizeof(porter_file_info)                                            \
	}

/*
 * Fills `*out` (not NULL; initialised with PORTER_FILE_INFO_INIT; written
 * only within its struct_size; zeroed on failure) with what `path` in
 * `root` is, following symlinks that stay inside the root. Returns 0 or a
 * negative code (PORTER_E_INVAL, nothing written, for a struct_size below
 * version 1's). Blocks for at most `timeout_ms`.
 */
PORTER_API int porter_file_stat(const char *root, const char *path, uint64_t call_id,
				int timeout_ms, porter_file_info *out);

/*
 * Like porter_file_stat, but a symlink at `path` is reported itself
 * (type PORTER_FILE_TYPE_SYMLINK, lstat(2) semantics) instead of what it
 * points to. Directories on the way are resolved as for any path. Fills
 * `*out` as porter_file_stat does; returns 0 or a negative code.
 * Blocks for at most `timeout_ms`.
 */
PORTER_API int porter_file_lstat(const char *root, const char *path, uint64_t call_id,
				 int timeout_ms, porter_file_info *out);

/* Flags of porter_file_mkdir, porter_file_rename and porter_file_copy;
 * distinct from porter_file_flag's bits. */
/* mkdir: make the missing parents too; an existing directory is fine. */
#define PORTER_FILE_PARENTS 0x100u
/* rename, copy: fail with PORTER_E_FILE_EXISTS when `to` exists. */
#define PORTER_FILE_NO_REPLACE 0x200u

/*
 * Creates the directory `path` in `root`, with permissions `mode` (0:
 * 0700; masked by the daemon's file-max-dir-mode, never setuid, setgid or
 * sticky). `flags`: 0 or PORTER_FILE_PARENTS. Returns 0 (also when
 * PORTER_FILE_PARENTS found it already there), PORTER_E_FILE_EXISTS, or
 * another negative code. Blocks for at most `timeout_ms`. `path` not NULL.
 */
PORTER_API int porter_file_mkdir(const char *root, const char *path, unsigned mode, unsigned flags,
				 uint64_t call_id, int timeout_ms);

/*
 * Renames (moves) `from` to `to`, both paths inside `root` (renameat2).
 * An existing `to` is replaced atomically unless `flags` has
 * PORTER_FILE_NO_REPLACE. A symlink is moved itself, never followed; names
 * on two file systems give PORTER_E_FILE_IO (copy, then delete). Returns 0
 * or a negative code; PORTER_E_CONN_LOST when the outcome is unknown.
 * Blocks for at most `timeout_ms`. `from` and `to` not NULL.
 */
PORTER_API int porter_file_rename(const char *root, const char *from, const char *to,
				  unsigned flags, uint64_t call_id, int timeout_ms);

/*
 * Copies the regular file `from` to `to` inside `root` with
 * copy_file_range (sharing extents where the file system can), through a
 * temp file that is fsynced and renamed into place: `to` is never seen
 * half-copied. `flags`: 0 or PORTER_FILE_NO_REPLACE. A new `to` gets the
 * mode of `from`, masked. Stores the bytes copied in `*size` (NULL
 * accepted) and returns 0, or returns a negative code (`*size` then 0).
 * Blocks for at most `timeout_ms`; a long copy stops at its deadline and
 * leaves `to` as it was. `from` and `to` not NULL.
 */
PORTER_API int porter_file_copy(const char *root, const char *from, const char *to, unsigned flags,
				uint64_t call_id, int timeout_ms, uint64_t *size);

/* Opaque directory listing. */
typedef struct porter_file_list porter_file_list;

/*
 * Lists the directory `path` in `root` ("" or NULL: the root itself),
 * sorted by name, without "." and "..". On success stores a new list in
 * `*out` (freed with porter_file_list_free) and returns 0 (`*out` NULL on
 * failure). Blocks for at most `timeout_ms`. The listing must fit in one
 * frame (16 MiB by default): a larger one fails with PORTER_E_TOO_LARGE
 * (porterd stops reading the directory once it knows).
 */
PORTER_API int porter_file_list_dir(const char *root, const char *path, uint64_t call_id,
				    int timeout_ms, porter_file_list **out);

/* Number of entries; 0 for NULL. */
PORTER_API size_t porter_file_list_count(const porter_file_list *l);

/* Name of entry `i`, NUL-terminated, owned by `l`; NULL when out of range. */
PORTER_API const char *porter_file_list_name(const porter_file_list *l, size_t i);

/* Type (porter_file_type; a symlink is SYMLINK), size and mtime of entry
 * `i`; outputs may be NULL. Returns 0 or PORTER_E_INVAL (outputs then 0). */
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
 * `offset`, chunk by chunk. The first chunk arrives with this call (by
 * descriptor: the open file does, and each read reads a chunk from it);
 * by bytes it holds at most 256 KiB when more follows, later ones a full
 * chunk each.
 * `stream_timeout_ms` (0: none) is the whole-stream deadline counted from
 * this call; `call_id` names the open and, by default, every read. On
 * success stores a new reader in `*out` (close with
 * porter_file_reader_close or free with porter_file_reader_free) and
 * returns 0; `*out` is NULL on failure.
 */
PORTER_API int porter_file_reader_open(const char *root, const char *path, uint64_t offset,
				       uint64_t length, uint32_t stream_timeout_ms,
				       uint64_t call_id, int timeout_ms, porter_file_reader **out);

/* Size of the file when it was opened. */
PORTER_API uint64_t porter_file_reader_size(const porter_file_reader *rd);

/*
 * Hands out the next chunk: `*data` and `*len` (not NULL) point to bytes
 * owned by the reader, valid until the next call on it. Returns 1 with a
 * chunk, 0 at the end (`*data` NULL, `*len` 0), or a negative code. Pulls
 * the next chunk from the daemon when needed, with `call_id` (0: the
 * open's), blocking for at most `timeout_ms` and never past the stream's
 * deadline. After a failed pull (cancelled, timed out, ...) every later
 * read returns the same code; close or free the reader, which tells
 * porterd.
 */
PORTER_API int porter_file_reader_read(porter_file_reader *rd, uint64_t call_id, int timeout_ms,
				       const void **data, size_t *len);

/* Closes the reader, telling the daemon when chunks remain (waiting up to
 * `timeout_ms`), and frees it. Returns 0 or the code of the failed close;
 * the reader is freed either way. NULL is accepted. */
PORTER_API int porter_file_reader_close(porter_file_reader *rd, int timeout_ms);

/* Frees the reader without waiting (the daemon is told by libporter's
 * background thread when chunks remain). NULL is accepted. */
PORTER_API void porter_file_reader_free(porter_file_reader *rd);

/*
 * Opens `path` in `root` for a chunked write with `flags` and `mode` as
 * for porter_file_write. With PORTER_FILE_ATOMIC nothing appears at the
 * target until porter_file_writer_commit. On success stores a new writer in
 * `*out` (freed with porter_file_writer_close or porter_file_writer_free)
 * and returns 0; `*out` is NULL on failure. Readers and
 * writers count against the daemon's per-connection stream limit
 * (file-max-streams, default 64): past it, PORTER_E_BUSY.
 */
PORTER_API int porter_file_writer_open(const char *root, const char *path, unsigned flags,
				       unsigned mode, uint64_t call_id, int timeout_ms,
				       porter_file_writer **out);

/* Sends `len` bytes at `data` (split into chunks as needed). Returns 0 or a
 * negative code (the write is then abandoned). */
PORTER_API int porter_file_writer_write(porter_file_writer *wr, const void *data, size_t len,
					uint64_t call_id, int timeout_ms);

/* Finishes the write: fsync and, for an atomic write, the rename. Returns
 * 0 or a negative code. The writer must still be closed. */
PORTER_API int porter_file_writer_commit(porter_file_writer *wr, uint64_t call_id, int timeout_ms);

/* Closes and frees the writer; an uncommitted write is abandoned (an
 * atomic one leaves the target untouched), waiting up to `timeout_ms` for
 * the daemon. Returns 0 or the failed close's code; the writer is freed
 * either way. NULL is accepted. */
PORTER_API int porter_file_writer_close(porter_file_writer *wr, int timeout_ms);

/* Frees the writer without waiting (an uncommitted write is abandoned by
 * libporter's background thread). NULL is accepted. */
PORTER_API void porter_file_writer_free(porter_file_writer *wr);

/*
 * Watches: change events of a file or a directory inside a root, for an
 * app that refreshes its view. The daemon resolves the path with the same
 * confinement as an open and watches the object it found (a path swapped
 * for a symlink afterwards changes nothing); a directory's events name its
 * entries, not their subtrees. Names are relative to the root. A watch is
 * a file stream: it counts against file-max-streams-per-uid, is dropped
 * when the connection that opened it closes, and one not read for the
 * daemon's file-stream-idle time is reclaimed (its next read gives
 * PORTER_E_TIMEOUT saying so). A handle is used by one thread at a time
 * (any thread).
 */
typedef struct porter_file_watch porter_file_watch;
/* One batch of events, owned by the caller (porter_file_events_free). */
typedef struct porter_file_events porter_file_events;

/* Kinds of event. */
enum porter_file_event_kind {
	PORTER_FILE_EVENT_CREATED = 1,
	PORTER_FILE_EVENT_MODIFIED = 2, /* contents or attributes */
	PORTER_FILE_EVENT_DELETED = 3,
	/* name -> new_name; `name` is "" when it came from outside the watched
	 * directory, `new_name` "" when it went outside (or, for the watched
	 * path itself, anywhere: the watch then ends). */
	PORTER_FILE_EVENT_MOVED = 4,
	/* Events were lost (the daemon bounds what it keeps for a watch that
	 * is not read): look at the watched path again. */
	PORTER_FILE_EVENT_OVERFLOW = 5,
};

/*
 * Starts watching `path` (not NULL; "" is the root itself) in `root` (NULL:
 * the first root granted). On success stores a new watch in `*out` (close
 * with porter_file_watch_close or free with porter_file_watch_free) and
 * returns 0; `*out` is NULL on failure (PORTER_E_FILE_ESCAPE for a path
 * leaving the root, PORTER_E_BUSY over a limit, PORTER_E_INVAL for
 * something neither a regular file nor a directory, PORTER_E_UNSUPPORTED
 * for one on a FUSE file system, which only a root with `mounts` reaches).
 */
PORTER_API int porter_file_watch_open(const char *root, const char *path, uint64_t call_id,
				      int timeout_ms, porter_file_watch **out);

/* 1 when the watch is of a directory, 0 of a file. `w` not NULL. */
PORTER_API int porter_file_watch_is_dir(const porter_file_watch *w);

/*
 * Waits up to `timeout_ms` for the next batch of events and stores it in
 * `*out` (freed with porter_file_events_free): returns 0 with a batch,
 * which has no events when nothing happened (the daemon answers a third
 * of the timeout, at most 1 s, before it, so the answer arrives in time
 * on a busy machine; one later still is waited for up to 1 s more, since
 * a read that gives up drops its connection, and a watch opened on that
 * connection with it); or a negative code
 * (`*out` NULL). Events are delivered in order, each once: the daemon
 * keeps them until the next read acknowledges them, so a reply lost to a
 * timed-out read (of a watch opened on another thread's connection) is
 * sent again. After a batch that ended the watch
 * (porter_file_events_ended), reads return empty ended batches at once.
 */
PORTER_API int porter_file_watch_read(porter_file_watch *w, uint64_t call_id, int timeout_ms,
				      porter_file_events **out);

/* Events in the batch. */
PORTER_API size_t porter_file_events_count(const porter_file_events *e);

/*
 * Event `i` (< count) of the batch: its kind (porter_file_event_kind) and
 * names, borrowed from the batch (valid until it is freed; `new_name` is
 * "" unless MOVED). Pointers may be NULL to skip them. Returns 0, or
 * PORTER_E_INVAL when `i` is out of range or `e` is NULL (outputs then 0
 * or NULL).
 */
PORTER_API int porter_file_events_get(const porter_file_events *e, size_t i, int *kind,
				      const char **name, const char **new_name);

/* 1 when the watched file or directory itself was deleted or moved away:
 * no event follows, and the watch is over in the daemon. */
PORTER_API int porter_file_events_ended(const porter_file_events *e);

/* Frees a batch. NULL is accepted. */
PORTER_API void porter_file_events_free(porter_file_events *e);

/* Stops the watch in the daemon (waiting up to `timeout_ms`) and frees it.
 * Returns 0 or the failed close's code; freed either way. NULL is
 * accepted. */
PORTER_API int porter_file_watch_close(porter_file_watch *w, int timeout_ms);

/* Frees the watch without waiting (libporter's background thread stops it
 * in the daemon). NULL is accepted. */
PORTER_API void porter_file_watch_free(porter_file_watch *w);
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
 * On success stores the session id in `*session` (not NULL; 0 on failure)
 * and returns 0. Errors:
 * PORTER_E_DB_CONNECT (message from libpq: wrong password, unreachable
 * server...), PORTER_E_TIMEOUT, PORTER_E_INVAL. Blocks up to `timeout_ms`.
 * Thread safe. Sessions of a process that exits are closed (and their
 * transactions rolled back) after porterd's grace period.
 */
PORTER_API int porter_db_open(const char *conninfo, uint64_t call_id, int timeout_ms,
			      uint64_t *session);

/*
 * Closes `session`, rolling back any open transaction, waiting up to
 * `timeout_ms` for porterd. Returns 0, or PORTER_E_DB_SESSION when no
 * such session belongs to this process (closed already). Session 0 is
 * accepted and ignored (0), as NULL by the closes of rule 8. It departs
 * from rule 8's `*_close(h, timeout_ms)` in one way: a session is an id
 * named in requests, not a handle, so its close is a request like
 * porter_db_open and takes a `call_id` (rules 1 and 3).
 */
PORTER_API int porter_db_close(uint64_t session, uint64_t call_id, int timeout_ms);

/*
 * Closes `session` without waiting (rule 8): the close, with its
 * rollback, is handed to libporter's background thread, which tells
 * porterd within its own 1 s bound; so it never blocks, even with porterd
 * stopped, and is safe in finalizers on any thread. When porterd cannot
 * be told, it still closes the session once this process has gone, after
 * its grace period, or after db-session-idle. Session 0, and a session
 * closed already, are accepted and ignored. Thread safe.
 */
PORTER_API void porter_db_free(uint64_t session);

/*
 * Runs `sql` (not NULL) on `session`, or when `session` is 0 on a pooled
 * connection for `conninfo` (then not NULL nor ""; ignored, NULL
 * accepted, with a session). `params` (may be NULL when `nparams` is 0) are $1..$n;
 * a statement that uses more parameters than `nparams` fails with
 * PORTER_E_DB, SQLSTATE 08P01, before it is sent. Without parameters
 * `sql` may hold several statements, one result part each; when one of
 * them fails, the result holds the parts of those before it (as psql
 * prints them) and the error. Returns 0 on success or a negative code.
 * Whenever porterd answered (success or a database error), `*out`
 * receives a result that the caller frees with porter_db_result_free()
 * and whose status and error fields describe the outcome, with the
 * server's notices (porter_db_nnotices); otherwise `*out` is set to NULL.
 * Errors include PORTER_E_DB (SQL error: see porter_db_sqlstate and
 * porter_db_error_field), PORTER_E_TIMEOUT, PORTER_E_DB_BROKEN,
 * PORTER_E_DB_SESSION, PORTER_E_TOO_LARGE (use a cursor). Blocks up to
 * `timeout_ms`. Thread safe.
 *
 * Text is UTF-8: porterd opens every connection with client_encoding
 * UTF8 and closes one on which a statement changed it (that statement's
 * call fails with PORTER_E_DB_BROKEN), so no value arrives in another
 * encoding.
 */
PORTER_API int porter_db_query(uint64_t session, const char *conninfo, const char *sql,
			       const porter_db_param *params, size_t nparams, uint64_t call_id,
			       int timeout_ms, porter_db_result **out);

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
 * PostgreSQL's diagnostic fields, for porter_db_error_field and
 * porter_db_notice_field. The values are libpq's PG_DIAG_* letters, so
 * code written against PQresultErrorField reads the same fields.
 */
enum porter_db_diag {
	PORTER_DB_DIAG_SEVERITY = 83,           /* 'S': ERROR, FATAL, NOTICE, WARNING ... */
	PORTER_DB_DIAG_SQLSTATE = 67,           /* 'C': e.g. 42P01 */
	PORTER_DB_DIAG_MESSAGE_PRIMARY = 77,    /* 'M': the message */
	PORTER_DB_DIAG_MESSAGE_DETAIL = 68,     /* 'D' */
	PORTER_DB_DIAG_MESSAGE_HINT = 72,       /* 'H' */
	PORTER_DB_DIAG_STATEMENT_POSITION = 80, /* 'P': 1-based, in characters */
	PORTER_DB_DIAG_INTERNAL_POSITION = 112, /* 'p': in INTERNAL_QUERY */
	PORTER_DB_DIAG_INTERNAL_QUERY = 113,    /* 'q': e.g. a PL/pgSQL statement */
	PORTER_DB_DIAG_CONTEXT = 87,            /* 'W': call stack, one line each */
	PORTER_DB_DIAG_SCHEMA_NAME = 115,       /* 's' */
	PORTER_DB_DIAG_TABLE_NAME = 116,        /* 't' */
	PORTER_DB_DIAG_COLUMN_NAME = 99,        /* 'c' */
	PORTER_DB_DIAG_DATATYPE_NAME = 100,     /* 'd' */
	PORTER_DB_DIAG_CONSTRAINT_NAME = 110,   /* 'n' */
};

/*
 * One diagnostic field (enum porter_db_diag) of the error `res` carries,
 * as PQresultErrorField gives it: text owned by `res`, positions in
 * decimal; "" when the field is absent, the result succeeded, `field` is
 * not one of the enum or `res` is NULL. Never NULL.
 */
PORTER_API const char *porter_db_error_field(const porter_db_result *res, int field);

/*
 * Notices: the NOTICE, WARNING, INFO ... messages the server sent while
 * the call ran (RAISE NOTICE, DROP ... IF EXISTS), oldest first; for a
 * cursor, those of each chunk come with it. porterd keeps the first 100
 * of one call (256 KiB of text at most, each field cut at 8 KiB) and
 * counts the others: porter_db_notices_dropped. Notice `i` (0-based)
 * arrived after the first porter_db_notice_before(res, i) result parts
 * (a lower bound: libpq reads a notice as soon as it arrives, maybe
 * before it hands over the part ahead of it, as psql shows it too). Field
 * text is owned by `res`; "" when `i` is out of range or the field
 * absent; 0 for a NULL `res`.
 */
PORTER_API size_t porter_db_nnotices(const porter_db_result *res);
PORTER_API const char *porter_db_notice_field(const porter_db_result *res, size_t i, int field);
PORTER_API size_t porter_db_notice_before(const porter_db_result *res, size_t i);
PORTER_API uint64_t porter_db_notices_dropped(const porter_db_result *res);

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
 * Opens a cursor: runs a single-statement query whose result is streamed
 * in chunks of at most `chunk_rows` rows (1..100000), so that porterd and
 * this process hold one chunk at a time whatever the result's size.
 * Arguments as for porter_db_query; `stream_timeout_ms` (0: none) is the
 * whole-stream deadline counted from this call; `call_id` names the open
 * and, by default, every read. On success stores a cursor in `*out` (close
 * with porter_db_cursor_close or free with porter_db_cursor_free) and
 * returns 0; on failure `*out` is NULL. The first chunk is already
 * fetched. A database error (PORTER_E_DB), whether the server reported it
 * with the first chunk or a later one, is handed by the read of that
 * chunk, whose result carries its SQLSTATE and other fields (as libpq
 * reports a query's error from PQgetResult, not from PQsendQuery); the
 * open then still succeeds. Other failures (no answer, a refused request)
 * fail the open.
 */
PORTER_API int porter_db_cursor_open(uint64_t session, const char *conninfo, const char *sql,
				     const porter_db_param *params, size_t nparams,
				     unsigned chunk_rows, uint32_t stream_timeout_ms,
				     uint64_t call_id, int timeout_ms, porter_db_cursor **out);

/*
 * Hands the next chunk to `*chunk` (a result with the query's columns and
 * up to chunk_rows rows, freed with porter_db_result_free) and returns 1;
 * returns 0 with `*chunk` NULL after the last chunk; or a negative code
 * (`*chunk` then carries the error fields when porterd answered, else
 * NULL). Each call waits up to `timeout_ms` for its chunk, never past the
 * cursor's deadline; `call_id` 0 uses the open's id. A cursor is used by
 * one thread at a time, but any thread may use it.
 */
PORTER_API int porter_db_cursor_read(porter_db_cursor *cur, uint64_t call_id, int timeout_ms,
				     porter_db_result **chunk);

/* Closes and frees a cursor; a stream not read to its end is abandoned
 * (porterd cancels the query), waiting up to `timeout_ms` for porterd.
 * Returns 0 or the failed close's code; the cursor is freed either way.
 * NULL is accepted. */
PORTER_API int porter_db_cursor_close(porter_db_cursor *cur, int timeout_ms);

/* Frees a cursor without waiting (an unfinished stream is abandoned by
 * libporter's background thread). NULL is accepted. */
PORTER_API void porter_db_cursor_free(porter_db_cursor *cur);

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

/*
 * Adds a mkdir, rename or copy member, with the arguments and flags of
 * porter_file_mkdir, porter_file_rename and porter_file_copy (`b` and the
 * names not NULL; strings are copied). Its outcome is the member's status
 * and message (porter_batch_result_status). Returns the member's index or
 * a negative code.
 */
PORTER_API int porter_batch_add_file_mkdir(porter_batch *b, const char *root, const char *path,
					   unsigned mode, unsigned flags, int timeout_ms);
PORTER_API int porter_batch_add_file_rename(porter_batch *b, const char *root, const char *from,
					    const char *to, unsigned flags, int timeout_ms);
PORTER_API int porter_batch_add_file_copy(porter_batch *b, const char *root, const char *from,
					  const char *to, unsigned flags, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* PORTER_H */
