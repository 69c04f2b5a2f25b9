/*
 * fsfds - descriptors porterd passed to clients (files by descriptor),
 * counted as open file streams until the client reports them closed.
 *
 * A passed descriptor is a file porterd opened and can no longer close: the
 * client holds it as long as it likes. So each one counts like a stream,
 * from the moment the request asking for it is accepted until the client
 * says it closed it (FileRead.fds_closed, FileWriteOpen.fds_closed: the
 * number of descriptors received on this connection and closed since the
 * last report) or its connection closes. porterd cannot see a descriptor's
 * fate in another process, so a report is believed, clamped to what the
 * connection holds: a client that reports closes it did not make gets more
 * descriptors than it should, but only within what its own connections
 * were given; one that never reports is capped.
 *
 * Limits: a connection holds at most `file-max-streams` passed descriptors
 * (besides its streams, which fsstream counts); a uid's passed descriptors
 * count in clients.h's CLIENTS_FILE_STREAMS with its streams and watches,
 * against `file-max-streams-per-uid`. Past either, a request for a
 * descriptor is served as if it had not asked for one (fs.c): by bytes,
 * which needs a stream, and so a refusal naming the limit, only for a read
 * larger than one chunk or a chunked write.
 *
 * Each worker keeps its connections' counts in a table made on the first
 * pass (w->fs_fds). Thread affinity: every function runs on the worker's
 * loop thread.
 */
#ifndef PORTER_FSFDS_H
#define PORTER_FSFDS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct worker;
struct clients_acct;

/*
 * Reserves one descriptor for connection `conn_serial` of `w`, whose uid
 * (`uid`, for messages) has the counters `acct` (the connection's: borrowed
 * until fsfds_conn_closed), before the request that may pass it runs.
 * Returns 0, or PORTER_E_BUSY
 * with a message naming the limit in `msg` (`cap` bytes), or
 * PORTER_E_NOMEM. A reservation is either passed (it then stays counted
 * until reported closed) or given back with fsfds_put.
 */
int fsfds_take(struct worker *w, uint64_t conn_serial, struct clients_acct *acct, uid_t uid,
	       char *msg, size_t cap);

/* Gives back `n` counted descriptors of connection `conn_serial` (clamped to
 * what it holds: nothing when the connection has closed meanwhile). Returns
 * how many were given back. */
uint32_t fsfds_put(struct worker *w, uint64_t conn_serial, uint32_t n);

/*
 * A descriptor passed earlier, which an atomic write's stream counted
 * until now (fsstream.h, fd_out), is counted for connection `conn_serial`
 * from now on: its stream ended while the client still holds it. No
 * limit applies (the slot was the stream's a moment ago). Returns 1, or 0
 * when the connection has closed (nothing to count).
 */
int fsfds_adopt(struct worker *w, uint64_t conn_serial);

/* The connection closed: all it held is given back. */
void fsfds_conn_closed(struct worker *w, uint64_t conn_serial);

/* Descriptors counted for connection `conn_serial` (reserved or passed and
 * not reported closed); for tests. */
uint32_t fsfds_count(const struct worker *w, uint64_t conn_serial);

/* The worker is closing (its connections are gone): frees its table. */
void fsfds_worker_close(struct worker *w);

#endif
