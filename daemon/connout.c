/* connout - replies to one client connection; see connout.h. */
#include "connout.h"

#include <errno.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "clients.h"
#include "conn.h"
#include "dalloc.h"
#include "dbwire.h"
#include "httpwire.h"
#include "listwire.h"
#include "log.h"
#include "porter_errors.h"
#include "readwire.h"
#include "stats.h"
#include "worker.h"

/* Past output-soft-limit, a connection holding more unsent bytes than this
 * is dropped when it adds more. */
#define CONN_SOFT_HOLDER (1024 * 1024)

typedef struct conn_write {
	uv_write_t req;
	uint8_t *buf;            /* owned: header and payload, or a chunk's data */
	void (*release)(void *); /* gives buf back: free, or the taker's */
	size_t len;              /* bytes queued, counted in the uid's and global output */
	uint8_t small[];         /* a chunk's head and tail (conn_send_take) */
} conn_write;

static void on_write(uv_write_t *wr, int status)
{
	conn_write *cw = (conn_write *)wr;
	conn *c = wr->handle->data;
	if (!c->out_forgotten) {
		clients_put(c->acct, CLIENTS_BUFFERED, cw->len);
		clients_output_add(c->acct, -(int64_t)cw->len);
		c->out_counted -= cw->len;
	}
	c->out_writes--;
	cw->release(cw->buf);
	free(cw);
	if (status < 0 && status != UV_ECANCELED)
		conn_close(c);
	else if (c->out_writes == 0)
		conn_out_flush(c);
}

/* Nothing queued or held: a reply may be written at once. */
static int out_idle(const conn *c)
{
	return c->pipe.write_queue_size == 0 && c->out_held_len == 0;
}

/* A worker's pack buffer above this size is released after use. */
#define PACK_KEEP (256u * 1024u)

/*
 * Packs `resp` into the worker's pack buffer (its length in `*len`). A
 * response too large for a frame becomes a PORTER_E_TOO_LARGE error. 0, or
 * <0 after closing the connection.
 */
static int pack_reply(conn *c, const Porter__V1__Response *resp, size_t *len)
{
	worker *w = c->w;
	const config *cfg = w->cfg;
	/* Packing may allocate: the test-only hook may fail it. Query results
	 * have an encoder of their own; the rest goes through protobuf-c. */
	int rc = dalloc_should_fail() ? PORTER_E_NOMEM
				      : dbwire_pack_response(resp, cfg->max_frame, &w->pack_buf,
							     &w->pack_cap, len);
	if (rc == 0)
		rc = frame_pack_into(&resp->base, cfg->max_frame, &w->pack_buf, &w->pack_cap, len);
	if (rc == PORTER_E_TOO_LARGE) {
		Porter__V1__Response err = PORTER__V1__RESPONSE__INIT;
		err.id = resp->id;
		err.status = PORTER_E_TOO_LARGE;
		err.message = "response exceeds the frame limit";
		rc = frame_pack_into(&err.base, cfg->max_frame, &w->pack_buf, &w->pack_cap, len);
	}
	if (rc < 0) {
		log_error("conn %llu: cannot pack a reply (%s), closing",
			  (unsigned long long)c->serial, porter_strerror(rc));
		conn_close_soon(c);
		return rc;
	}
	stats_add(&w->counters.bytes_out, *len);
	return 0;
}

/* Releases a pack buffer that grew past PACK_KEEP. */
static void trim_pack(worker *w)
{
	if (w->pack_cap > PACK_KEEP) {
		free(w->pack_buf);
		w->pack_buf = NULL;
		w->pack_cap = 0;
	}
}

/*
 * Queues `cw` (its bytes in `b`, `nb` buffers, cw->len in all) behind what
 * the socket holds, and applies the output limits. Takes `cw` and what it
 * owns: freed by on_write, or here when the connection breaks.
 */
static int submit(conn *c, conn_write *cw, const uv_buf_t *b, unsigned nb)
{
	if (uv_write(&cw->req, (uv_stream_t *)&c->pipe, b, nb, on_write) < 0) {
		cw->release(cw->buf);
		free(cw);
		conn_close_soon(c);
		return -1;
	}
	c->out_writes++;
	return 0;
}

/* Counts `n` more bytes waiting for the socket and applies the output
 * limits. */
static void count_queued(conn *c, size_t n)
{
	const config *cfg = c->w->cfg;
	/* Sends stop once the connection is closing, and what it had queued
	 * no longer counts (conn_out_forget). */
	if (c->out_forgotten)
		return;
	/* Counted from here until on_write, which runs for every queued
	 * write, also when the connection closes, or until the connection
	 * begins to close (conn_out_forget). */
	int uid_ok = clients_take(c->acct, CLIENTS_BUFFERED, n, cfg->uid_max_buffered);
	if (!uid_ok)
		clients_take(c->acct, CLIENTS_BUFFERED, n, 0);
	c->out_counted += n;
	uint64_t total = clients_output_add(c->acct, (int64_t)n);
	size_t queued = c->pipe.write_queue_size + c->out_held_len;
	const char *why = NULL;
	if (queued > cfg->output_cap)
		why = "over output-cap for one connection";
	else if (!uid_ok)
		why = "over uid-max-buffered for its uid";
	else if (total > cfg->output_hard)
		why = "all connections together are over output-hard-limit";
	else if (total > cfg->output_soft && queued > CONN_SOFT_HOLDER &&
		 clients_output_over_share(c->acct, cfg->output_soft))
		why = "all connections together are over output-soft-limit, its uid over its share";
	if (why) {
		log_warn(
			"conn %llu (pid %d uid %u): %zu reply bytes unread, %s; dropping the client",
			(unsigned long long)c->serial, (int)c->pid, (unsigned)c->uid, queued, why);
		conn_close_soon(c);
	}
}

/*
 * Queues `cw` (its bytes in `b`, `nb` buffers, cw->len in all) behind what
 * the socket holds (the replies held first), and applies the output
 * limits. Takes `cw` and what it owns: freed by on_write, or here when the
 * connection breaks.
 */
static void queue_write(conn *c, conn_write *cw, const uv_buf_t *b, unsigned nb)
{
	conn_out_flush(c);
	size_t n = cw->len;
	if (c->close_due) {
		/* The flush broke it: nothing more is sent. */
		cw->release(cw->buf);
		free(cw);
		return;
	}
	if (submit(c, cw, b, nb) == 0)
		count_queued(c, n);
}

void conn_out_flush(conn *c)
{
	if (c->out_held_len == 0)
		return;
	/* Already counted, as they were held. */
	conn_write *cw = dmalloc(sizeof(*cw));
	if (!cw) {
		conn_close_soon(c);
		return;
	}
	cw->buf = c->out_held;
	cw->release = free;
	cw->len = c->out_held_len;
	c->out_held = NULL;
	c->out_held_len = c->out_held_cap = 0;
	uv_buf_t b = uv_buf_init((char *)cw->buf, (unsigned)cw->len);
	submit(c, cw, &b, 1);
}

/*
 * Holds `n` bytes at `p` behind the write in flight: a client that reads
 * its replies late gets them in one write per socket's worth, not one
 * write (and system call) per reply. 0, or -1 when out of memory.
 */
static int hold(conn *c, const uint8_t *p, size_t n)
{
	if (c->out_held_cap - c->out_held_len < n) {
		size_t cap = c->out_held_cap ? c->out_held_cap : 4096;
		while (cap - c->out_held_len < n)
			cap *= 2;
		uint8_t *nb = dalloc_should_fail() ? NULL : realloc(c->out_held, cap);
		if (!nb)
			return -1;
		c->out_held = nb;
		c->out_held_cap = cap;
	}
	memcpy(c->out_held + c->out_held_len, p, n);
	c->out_held_len += n;
	count_queued(c, n);
	return 0;
}

/*
 * Queues bytes `off`..`len` of the packed reply in the worker's pack
 * buffer behind what the socket holds, and applies the output limits.
 */
static void queue_rest(conn *c, size_t off, size_t len)
{
	worker *w = c->w;
	/* The rest waits for the socket. Behind a write in flight a small
	 * frame is held with the others, sent as one write when it ends. */
	if (w->pack_cap <= PACK_KEEP && c->out_writes > 0) {
		if (hold(c, w->pack_buf + off, len - off) < 0)
			conn_close_soon(c);
		return;
	}
	/* A large frame takes the pack buffer along (no copy; the next reply
	 * grows a new one), a small one is copied out. */
	conn_write *cw = dmalloc(sizeof(*cw));
	if (!cw) {
		conn_close_soon(c);
		return;
	}
	uint8_t *buf, *rest;
	if (w->pack_cap > PACK_KEEP) {
		buf = w->pack_buf;
		rest = buf + off;
		w->pack_buf = NULL;
		w->pack_cap = 0;
	} else if ((buf = dmalloc(len - off))) {
		memcpy(buf, w->pack_buf + off, len - off);
		rest = buf;
	} else {
		free(cw);
		conn_close_soon(c);
		return;
	}
	cw->buf = buf;
	cw->release = free;
	cw->len = len - off;
	uv_buf_t b = uv_buf_init((char *)rest, (unsigned)(len - off));
	queue_write(c, cw, &b, 1);
}

void conn_send(conn *c, const Porter__V1__Response *resp)
{
	worker *w = c->w;
	size_t len;

	if (c->state == CONN_CLOSING || c->close_due)
		return;
	if (pack_reply(c, resp, &len) < 0)
		goto out;

	/* Most replies are small and the socket has room: write them at once
	 * from the pack buffer, with no copy and no write request. */
	size_t off = 0;
	if (out_idle(c)) {
		uv_buf_t b = uv_buf_init((char *)w->pack_buf, (unsigned)len);
		int n = uv_try_write((uv_stream_t *)&c->pipe, &b, 1);
		if (n >= 0) {
			off = (size_t)n;
		} else if (n != UV_EAGAIN) {
			conn_close_soon(c);
			goto out;
		}
	}
	if (off < len)
		queue_rest(c, off, len);
out:
	trim_pack(w);
}

/*
 * Sends one frame made of `head` (`hl` bytes), `data` (`dl` bytes, taken:
 * given to `release` once written) and `tail` (`tl` bytes): what the
 * socket takes now goes at once; the rest waits with the data where it is,
 * the head's rest and the tail copied beside the write request (the caller
 * may reuse their buffers on return).
 */
static void send_parts(conn *c, const uint8_t *head, size_t hl, uint8_t *data, size_t dl,
		       const uint8_t *tail, size_t tl, void (*release)(void *))
{
	stats_add(&c->w->counters.bytes_out, hl + dl + tl);
	uv_buf_t b[3] = {uv_buf_init((char *)head, (unsigned)hl),
			 uv_buf_init((char *)data, (unsigned)dl),
			 uv_buf_init((char *)tail, (unsigned)tl)};
	size_t off = 0;
	if (out_idle(c)) {
		int n = uv_try_write((uv_stream_t *)&c->pipe, b, 3);
		if (n < 0 && n != UV_EAGAIN) {
			release(data);
			conn_close_soon(c);
			return;
		}
		off = n > 0 ? (size_t)n : 0;
	}
	size_t total = hl + dl + tl;
	if (off == total) {
		release(data);
		return;
	}
	conn_write *cw = dmalloc(sizeof(*cw) + hl + tl);
	if (!cw) {
		release(data);
		conn_close_soon(c);
		return;
	}
	cw->buf = data;
	cw->release = release;
	cw->len = total - off;
	memcpy(cw->small, head, hl);
	memcpy(cw->small + hl, tail, tl);
	uv_buf_t q[3];
	unsigned nq = 0;
	size_t skip = off;
	const uint8_t *part[3] = {cw->small, data, cw->small + hl};
	size_t plen[3] = {hl, dl, tl};
	for (unsigned i = 0; i < 3; i++) {
		if (skip >= plen[i]) {
			skip -= plen[i];
			continue;
		}
		q[nq++] = uv_buf_init((char *)part[i] + skip, (unsigned)(plen[i] - skip));
		skip = 0;
	}
	queue_write(c, cw, q, nq);
}

void conn_send_list(conn *c, uint64_t id, uint8_t *entries, size_t len, void (*release)(void *))
{
	uint8_t head[LISTWIRE_HEAD_MAX];
	size_t hl = 0;
	if (c->state == CONN_CLOSING || c->close_due) {
		release(entries);
		return;
	}
	if (listwire_frame(id, len, c->w->cfg->max_frame, head, &hl) == 0) {
		send_parts(c, head, hl, entries, len, head + hl, 0, release); /* no tail */
		return;
	}
	release(entries);
	Porter__V1__Response err = PORTER__V1__RESPONSE__INIT;
	err.id = id;
	err.status = PORTER_E_TOO_LARGE;
	err.message = "the listing does not fit in one reply (max-frame)";
	conn_send(c, &err);
}

void conn_send_take(conn *c, const Porter__V1__Response *resp, uint8_t *data,
		    void (*release)(void *))
{
	worker *w = c->w;
	size_t hl = 0, tl = 0;
	if (c->state == CONN_CLOSING || c->close_due) {
		if (data)
			release(data);
		return;
	}
	if (data && resp->body_case == PORTER__V1__RESPONSE__BODY_FILE_READ &&
	    resp->file_read->data.data == data && resp->file_read->data.len >= CONN_TAKE_MIN) {
		uint8_t head[READWIRE_HEAD_MAX], tail[READWIRE_TAIL_MAX];
		if (readwire_frame(resp, w->cfg->max_frame, head, &hl, tail, &tl) == 0) {
			send_parts(c, head, hl, data, resp->file_read->data.len, tail, tl, release);
			return;
		}
	} else if (data && resp->body_case == PORTER__V1__RESPONSE__BODY_HTTP &&
		   resp->http->body.data == data && resp->http->body.len >= CONN_TAKE_MIN) {
		/* The head (status and headers) and the tail (URL, timings,
		 * the hops' heads) are built in the pack buffer. */
		if (httpwire_frame_response(resp, w->cfg->max_frame, &w->pack_buf, &w->pack_cap,
					    &hl, &tl) == 0) {
			send_parts(c, w->pack_buf, hl, data, resp->http->body.len, w->pack_buf + hl,
				   tl, release);
			trim_pack(w);
			return;
		}
	}
	/* Packed as any reply (a frame too large becomes its error). */
	conn_send(c, resp);
	if (data)
		release(data);
}

int conn_send_fd(conn *c, const Porter__V1__Response *resp, int fd)
{
	worker *w = c->w;
	size_t len;
	int rc = PORTER_E_BUSY;

	if (c->state == CONN_CLOSING || c->close_due)
		return PORTER_E_CONN_LOST;
	/* The descriptor rides on the frame's first byte, so that byte must
	 * leave now: behind queued replies it cannot (libuv's queue carries
	 * no ancillary data without IPC mode, which would also make it accept
	 * descriptors from clients). */
	if (!out_idle(c))
		return PORTER_E_BUSY;
	uv_os_fd_t sock;
	if (uv_fileno((uv_handle_t *)&c->pipe, &sock) < 0)
		return PORTER_E_CONN_LOST;
	/* The kernel charges a descriptor in flight (sent, not yet received)
	 * to porterd's uid, up to porterd's descriptor limit, past which
	 * every SCM_RIGHTS send fails, for every client. A client can leave
	 * descriptors unread, and its close reports cannot be checked
	 * (fsfds.h), so none goes to a client that has not read everything
	 * sent to it before (SIOCOUTQ: bytes of this socket the peer has not
	 * received): at most one per connection is in flight, fewer than
	 * porterd's descriptors. libporter reads each reply before its next
	 * request, so it is never refused this way. */
	int unread = 0;
	if (ioctl(sock, SIOCOUTQ, &unread) < 0 || unread != 0)
		return PORTER_E_BUSY;
	if (pack_reply(c, resp, &len) < 0)
		return PORTER_E_CONN_LOST;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	memset(&u, 0, sizeof(u));
	struct iovec iov = {.iov_base = w->pack_buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	ssize_t n;
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		/* A full socket (the client is not reading), or the uid's
		 * descriptors in flight at the limit (ETOOMANYREFS: other
		 * processes of porterd's uid count too): the caller answers
		 * without the descriptor. Anything else is a dead peer. */
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ETOOMANYREFS) {
			conn_close_soon(c);
			rc = PORTER_E_CONN_LOST;
		}
		goto out;
	}
	/* The kernel took the descriptor with the first bytes; the rest of
	 * the frame follows as any reply. */
	rc = 0;
	if ((size_t)n < len)
		queue_rest(c, (size_t)n, len);
out:
	trim_pack(w);
	return rc;
}

void conn_out_forget(conn *c)
{
	if (c->out_forgotten)
		return;
	c->out_forgotten = 1;
	/* Held replies are never sent now. */
	free(c->out_held);
	c->out_held = NULL;
	c->out_held_len = c->out_held_cap = 0;
	clients_put(c->acct, CLIENTS_BUFFERED, c->out_counted);
	clients_output_add(c->acct, -(int64_t)c->out_counted);
	c->out_counted = 0;
}
