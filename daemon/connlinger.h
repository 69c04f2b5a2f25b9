/*
 * connlinger - reply bytes the kernel still holds for a client after
 * porterd closed its connection.
 *
 * What porterd wrote to a Unix socket waits in the client's receive queue
 * until the client reads it or closes its end, and it is charged to
 * porterd's socket (and memory cgroup), not the client's: up to the send
 * buffer, ~208 KiB by default, per socket. Closing porterd's descriptor
 * does not free it. A uid that has connection after connection closed
 * (dropped for not reading, idle, or after its own half-close) while it
 * reads nothing, keeping its ends open, would pin porterd's kernel memory
 * bounded only by its own descriptor limits, and after the close nothing
 * counted it.
 *
 * So a connection that closes while its socket still holds bytes
 * (SIOCOUTQ, read once at the close) lingers: porterd keeps a duplicate of
 * the socket, shut down both ways (the client reads what is there, then
 * the end of the stream, and its writes fail, as from a closed socket),
 * and counts it for its uid as one connection (uid-max-connections: past
 * it the uid's new connections are refused at accept) and its bytes as
 * buffered bytes (uid-max-buffered: past it the uid's requests are
 * refused). A timer looks at each lingering socket every
 * CONNLINGER_CHECK_MS and gives back what the client has read; the
 * linger ends when nothing is held (the client read it all or closed its
 * end, which frees it). It does not end on a timer: bytes that are still
 * pinned would stop being counted, which is the hole again; what the
 * linger costs porterd is one descriptor, counted as the uid's
 * connection. No ioctl is made on the reply path.
 *
 * Each worker keeps its lingering sockets in a table made on the first
 * (w->linger). Thread affinity: every function runs on the worker's loop
 * thread.
 */
#ifndef PORTER_CONNLINGER_H
#define PORTER_CONNLINGER_H

#include <stddef.h>

struct conn;
struct worker;

/* How often lingering sockets are looked at again (nothing tells porterd
 * when a client reads what its socket holds). */
#define CONNLINGER_CHECK_MS 200

/*
 * Connection `c` is closing (conn_close, before its pipe is closed): if
 * its socket still holds bytes for the client, a duplicate of it lingers,
 * counted for the uid as above. Nothing lingers when the duplicate or its
 * entry cannot be made (out of descriptors or memory): the bytes are then
 * uncounted, as before.
 */
void connlinger_conn_closing(struct conn *c);

/* Sockets lingering on `w` now (tests, stats). */
size_t connlinger_count(const struct worker *w);

/* The worker is ending: every lingering socket is closed and its count
 * given back, and the table's timer closed (freed in its close
 * callback). */
void connlinger_worker_close(struct worker *w);

#endif
