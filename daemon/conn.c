/* conn - one client connection; see conn.h. */
#include "conn.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clients.h"
#include "connadmit.h"
#include "connlinger.h"
#include "connout.h"
#include "dalloc.h"
#include "dbwire.h"
#include "fs.h"
#include "log.h"
#include "ops.h"
#include "palloc.h"
#include "porter_errors.h"
#include "porter_version.h"
#include "req.h"
#include "stats.h"
#include "worker.h"

/* Read buffers larger than one read chunk are released whenever they fall
 * idle: a connection that once sent a large frame does not keep its size. */
#define CONN_KEEP_BUFFER FRAME_READ_CHUNK
/* What one connection may process in one callback before the loop serves
 * the others: pipelined frames are answered in turns, so a client that
 * writes thousands of requests at once delays nobody else by more than
 * one turn's work. The bytes bound the reading too (copying 1 MiB out of
 * the socket took 0.15-0.4 ms of CPU), and the frames a turn may refuse
 * after counting their parameters (a query over PostgreSQL's limit is some
 * 128 KiB): at 1 MiB, a turn of such pipelined queries took 6 ms. */
#define CONN_TURN_FRAMES 64
#define CONN_TURN_BYTES (256 * 1024)
/* What all the connections of a worker may process in one turn of its
 * loop, closes counted as frames: hundreds of clients each with a frame
 * ready (a burst of Hellos) or leaving at once would otherwise each take
 * their own turn's worth in the same turn of the loop (351 Hellos, 3 ms
 * of CPU; 317 closes, 1.8 ms, at load 14). Past it, each waits in
 * w->turns, in order. The budget starts again after each poll
 * (conn_turn_begin) and the waiting connections are served first, before
 * the next poll's; a turn as loopcpu.h measures it (prepare to prepare)
 * spans the end of one budget and the start of the next. 128 Hellos or
 * closes take some 0.5-0.9 ms. */
#define WORKER_TURN_FRAMES 128
#define WORKER_TURN_BYTES (512 * 1024)
/* A frame larger than this is checked once this much of it has arrived:
 * one that cannot be valid is refused and the rest of it thrown away as
 * it comes, never buffered whole. 128 KiB of empty parameters is already
 * past PostgreSQL's limit. */
#define CONN_PEEK_BYTES (256 * 1024)
/* The rest of a refused frame is read and thrown away at this pace per
 * uid, in bytes per ms, shared by all its connections: read as fast as the
 * client wrote it, the copying into and out of the socket kept both CPUs
 * of a 2-CPU machine busy (16 MiB frames one after the other), and other
 * uids' pings waited for a CPU though no loop turn was long (p99 0.07 ->
 * 1.01 ms). At 32 MiB/s it costs porterd about 1% of a CPU, and a 16 MiB
 * frame half a second of its sender's time. The bytes are still read, so
 * the connection serves the frames that follow. */
#define CONN_DISCARD_PER_MS (32 * 1024)
/* Reads of a refused frame's rest are paced once they reach this much
 * (a read is at most a socket buffer, some 200 KiB). */
#define CONN_DISCARD_CHUNK (64 * 1024)

/* The worker's budget for this turn of its loop is spent. */
static int worker_turn_spent(const worker *w)
{
	return w->turn_frames >= WORKER_TURN_FRAMES || w->turn_bytes >= WORKER_TURN_BYTES;
}

/* Requests in flight are counted for the uid too (uid-max-inflight). */
static void drop_inflight(conn *c)
{
	clients_put(c->acct, CLIENTS_INFLIGHT, c->inflight);
	c->inflight = 0;
}

/* Keeps the uid's count of read-buffer bytes equal to this connection's
 * buffer. */
static void count_read_buffer(conn *c)
{
	if (c->rd.cap > c->in_counted)
		clients_take(c->acct, CLIENTS_BUFFERED, c->rd.cap - c->in_counted, 0);
	else
		clients_put(c->acct, CLIENTS_BUFFERED, c->in_counted - c->rd.cap);
	c->in_counted = c->rd.cap;
}

static void process_frames(conn *c);
static void on_timer(uv_timer_t *t);
static void yield_turn(conn *c);
static void turn_unqueue(conn *c, list *to);

/*
 * Detaches and cancels every request of `c`. A cancel may answer other
 * requests of `c` on the spot, which takes them off the list (a pool whose
 * connection being made for the cancelled query closes gives a query
 * waiting behind it a connection of its own, and fails it at once when
 * its uid is at its quota): so each turn takes the list's first entry,
 * never a next one saved before the cancel ran.
 */
static void detach_all(conn *c)
{
	while (!list_empty(&c->reqs))
		req_detach(list_entry(c->reqs.next, req, link));
}

static void on_handle_closed(uv_handle_t *h)
{
	conn *c = h->data;
	if (--c->open_handles > 0)
		return;
	worker *w = c->w;
	frame_reader_free(&c->rd);
	count_read_buffer(c);
	if (!c->conn_slot_lingers)
		clients_put(c->acct, CLIENTS_CONNS, 1);
	clients_acct_unref(c->acct);
	stats_sub(&w->counters.connections, 1);
	free(c);
	worker_conn_freed(w);
}

void conn_close(conn *c)
{
	if (c->state == CONN_CLOSING)
		return;
	clients_conn_info info = {
		c->w->index, c->serial, c->uid, c->client_instance, c->state != CONN_HELLO, c->w};
	c->state = CONN_CLOSING;
	worker_lost_client(c->w, &c->crowd_mark);
	list_remove(&c->link);
	conn_out_forget(c);
	turn_unqueue(c, &c->w->turns);

	detach_all(c);
	drop_inflight(c);
	/* Services drop what this connection held (file streams) or start
	 * their grace period (database sessions). */
	clients_conn_closed(&info);

	/* What its socket still holds for the client stays counted until
	 * read (connlinger.h). */
	connlinger_conn_closing(c);
	uv_close((uv_handle_t *)&c->pipe, on_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

void conn_close_soon(conn *c)
{
	if (c->state == CONN_CLOSING || c->close_due)
		return;
	c->close_due = 1;
	conn_out_forget(c);
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = 0;
	}
	uv_timer_start(&c->timer, on_timer, 0, 0);
}

static void on_timer(uv_timer_t *t)
{
	conn *c = t->data;
	if (c->close_due) {
		conn_close(c);
		return;
	}
	if (c->discard_paused) {
		/* Unless the timer was taken over (draining): its bound
		 * then. */
		c->discard_paused = 0;
		if (c->state == CONN_READY) {
			process_frames(c);
			return;
		}
	}
	if (c->idle_armed && c->state == CONN_READY && !c->partial) {
		/* The idle deadline is checked here, lazily, rather than by
		 * stopping and restarting the timer around every request:
		 * busy or active since, it only moves on. One waiting for
		 * its next turn is busy. */
		uint64_t limit = c->w->cfg->idle_timeout_ms;
		uint64_t now = uv_now(&c->w->loop);
		uint64_t due = c->idle_from + limit;
		if (c->inflight > 0 || c->yielded || due > now) {
			uv_timer_start(&c->timer, on_timer, c->inflight > 0 ? limit : due - now, 0);
			return;
		}
	}
	if (c->state == CONN_DRAINING)
		log_debug("conn %llu: drain bound reached, closing", (unsigned long long)c->serial);
	else if (c->partial)
		log_info("conn %llu (pid %d): stalled mid-frame for %u ms, closing",
			 (unsigned long long)c->serial, (int)c->pid, c->w->cfg->frame_timeout_ms);
	else if (c->state == CONN_HELLO)
		log_info("conn %llu (pid %d): no Hello within %u ms, closing",
			 (unsigned long long)c->serial, (int)c->pid, c->w->cfg->frame_timeout_ms);
	else
		log_debug("conn %llu: idle, closing", (unsigned long long)c->serial);
	conn_close(c);
}

/* Arms the one timer for whatever the connection is waiting on now. */
static void update_timer(conn *c)
{
	const config *cfg = c->w->cfg;

	if ((c->state != CONN_HELLO && c->state != CONN_READY) || c->close_due)
		return;
	if (c->reading && frame_reader_pending(&c->rd) > 0) {
		/* Measured from the frame's first byte: trickling bytes does
		 * not extend it, nor do the turns a large frame is read in
		 * (the timer keeps running while it waits in w->turns; if it
		 * is not running, it runs again for what is left). */
		uint64_t now = uv_now(&c->w->loop);
		if (!c->partial) {
			c->partial = 1;
			c->partial_from = now;
			c->idle_armed = 0;
			uv_timer_start(&c->timer, on_timer, cfg->frame_timeout_ms, 0);
		} else if (!uv_is_active((uv_handle_t *)&c->timer)) {
			uint64_t due = c->partial_from + cfg->frame_timeout_ms;
			uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
		}
		return;
	}
	c->partial = 0;
	if (c->state == CONN_HELLO) {
		uv_timer_start(&c->timer, on_timer, cfg->frame_timeout_ms, 0);
	} else if (cfg->idle_timeout_ms) {
		/* Idle is counted from the last frame or reply; an armed
		 * timer is left running (on_timer looks again when it fires),
		 * so a request costs no timer operation. */
		c->idle_from = uv_now(&c->w->loop);
		if (!c->idle_armed) {
			c->idle_armed = 1;
			uv_timer_start(&c->timer, on_timer, cfg->idle_timeout_ms, 0);
		}
	} else if (c->idle_armed || uv_is_active((uv_handle_t *)&c->timer)) {
		c->idle_armed = 0;
		uv_timer_stop(&c->timer);
	}
}

static void on_shutdown(uv_shutdown_t *sr, int status)
{
	conn *c = sr->data;
	(void)status;
	conn_close(c);
}

/* Closes after the queued replies are written, bounded by the timer. */
static void close_after_flush(conn *c)
{
	/* One due to close soon is closed by its timer. */
	if (c->flush_close || c->state == CONN_CLOSING || c->close_due)
		return;
	c->flush_close = 1;
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = 0;
	}
	c->state = CONN_DRAINING;
	c->idle_armed = 0;
	uv_timer_start(&c->timer, on_timer, c->w->cfg->frame_timeout_ms, 0);

	/* This runs inside replies (conn_req_done, once a draining
	 * connection's last one is answered), so it never closes on the
	 * spot (conn.h): the request is the conn's own, nothing to allocate,
	 * and a stream libuv will not shut down is closed from the timer. */
	c->shutdown.data = c;
	conn_out_flush(c); /* the held replies go before the shutdown */
	if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->pipe, on_shutdown) < 0)
		conn_close_soon(c);
}

/*
 * A connection-level failure: tell the client why (id 0), cancel what is in
 * flight and close once that reply is written.
 */
static void conn_fail(conn *c, int code, const char *msg)
{
	log_info("conn %llu (pid %d): %s, closing", (unsigned long long)c->serial, (int)c->pid,
		 msg);
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	resp.status = code;
	resp.message = (char *)msg;
	conn_send(c, &resp);
	stats_add(&c->w->counters.errors, 1);
	if (c->state == CONN_CLOSING || c->close_due)
		return;

	detach_all(c);
	drop_inflight(c);
	close_after_flush(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	conn *c = h->data;
	uint8_t *p;
	size_t n;
	(void)suggested;

	/* The worker's turn is spent: not even read now (a thousand clients
	 * ready at once cost a read each in the same turn); on_read sends it
	 * to wait for its turn. */
	if (worker_turn_spent(c->w) && !c->turn_granted) {
		c->read_deferred = 1;
		buf->base = NULL;
		buf->len = 0;
		return;
	}
	if (frame_reader_space(&c->rd, &p, &n) < 0) {
		buf->base = NULL;
		buf->len = 0; /* read callback gets UV_ENOBUFS */
		return;
	}
	if (n > UINT32_MAX)
		n = UINT32_MAX;
	*buf = uv_buf_init((char *)p, (unsigned)n);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	conn *c = s->data;
	(void)buf;
	worker_saw_client(c->w, &c->crowd_mark);

	if (n == UV_ENOBUFS && c->read_deferred) {
		c->read_deferred = 0;
		yield_turn(c);
		return;
	}
	if (n < 0) {
		if (n == UV_ENOBUFS)
			log_warn("conn %llu: cannot buffer the next frame, closing",
				 (unsigned long long)c->serial);
		else if (n != UV_EOF)
			log_debug("conn %llu: read: %s", (unsigned long long)c->serial,
				  uv_strerror((int)n));
		/* Closing takes a share of the turn too (a close is read
		 * only within the turn's budget, see on_alloc): hundreds of
		 * clients that leave at once are closed over several turns. */
		c->w->turn_frames++;
		conn_close(c);
		return;
	}
	if (n == 0)
		return;
	frame_reader_commit(&c->rd, (size_t)n);
	count_read_buffer(c);
	stats_add(&c->w->counters.bytes_in, (uint64_t)n);
	c->read_turn += (size_t)n;
	c->w->turn_bytes += (size_t)n;
	process_frames(c);
	/* Its turn's read is done (if it was given one). */
	if (c->state != CONN_CLOSING)
		c->turn_granted = 0;
}

static int start_reading(conn *c)
{
	if (c->reading)
		return 0;
	int rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
	if (rc == 0)
		c->reading = 1;
	return rc;
}

static void handle_hello(conn *c, Porter__V1__Request *msg)
{
	worker *w = c->w;
	const config *cfg = w->cfg;

	stats_add(&w->counters.requests, 1);
	if (msg->body_case != PORTER__V1__REQUEST__BODY_HELLO) {
		porter__v1__request__free_unpacked(msg, NULL);
		conn_fail(c, PORTER_E_PROTOCOL, "the first request must be Hello");
		return;
	}

	Porter__V1__Hello *h = msg->hello;
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__HelloReply hr = PORTER__V1__HELLO_REPLY__INIT;
	resp.id = msg->id;
	if (h->protocol != PORTER_PROTOCOL_VERSION) {
		char text[128];
		snprintf(text, sizeof(text), "protocol version %u not supported (daemon speaks %d)",
			 h->protocol, PORTER_PROTOCOL_VERSION);
		porter__v1__request__free_unpacked(msg, NULL);
		conn_fail(c, PORTER_E_UNSUPPORTED, text);
		return;
	}

	c->client_instance = h->client_instance;
	log_debug("conn %llu: hello from pid %d uid %d instance %016llx (%s)",
		  (unsigned long long)c->serial, (int)c->pid, (int)c->uid,
		  (unsigned long long)c->client_instance, h->client_name ? h->client_name : "");
	c->state = CONN_READY;
	clients_attach(c->uid, c->client_instance);
	frame_reader_set_limit(&c->rd, cfg->max_frame);

	hr.protocol = PORTER_PROTOCOL_VERSION;
	hr.daemon_version = PORTER_VERSION_STRING;
	hr.max_frame = cfg->max_frame;
	hr.max_inflight = cfg->max_inflight;
	hr.worker = w->index;
	resp.body_case = PORTER__V1__RESPONSE__BODY_HELLO;
	resp.hello = &hr;
	conn_send(c, &resp);
	porter__v1__request__free_unpacked(msg, NULL);
}

/* The arena block of a small request: it holds the structs a short query
 * unpacks into, and at under 1 KiB with its header it is recycled by
 * malloc's per-thread cache (larger chunks cost a trip through the bins,
 * several times the price). A larger frame gets room for twice its bytes. */
#define MSG_BLOCK_SMALL 960u
#define MSG_BLOCK_SLACK 1024u

/* Answers request `id`, a query over PostgreSQL's parameter limit. */
static void refuse_params(conn *c, uint64_t id)
{
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	resp.id = id;
	resp.status = PORTER_E_INVAL;
	resp.message = "a query may have at most 65535 parameters (PostgreSQL's limit)";
	conn_send(c, &resp);
}

/*
 * Looks once at the first CONN_PEEK_BYTES of a large frame still arriving:
 * a query whose parameters there are already past PostgreSQL's limit is
 * refused now and the rest of its frame thrown away as it comes, so
 * receiving it costs no buffer of its size (a 16 MiB frame of empty
 * parameters was allocated, faulted in and freed on the loop).
 */
static void peek_partial(conn *c)
{
	const uint8_t *p;
	size_t have;
	uint32_t declared;
	if (c->state != CONN_READY || c->peeked ||
	    !frame_reader_partial(&c->rd, &p, &have, &declared) || have < CONN_PEEK_BYTES)
		return;
	c->peeked = 1;
	uint64_t id;
	if (dbwire_request_params_prefix(have, p, &id) <= DBWIRE_MAX_PARAMS)
		return;
	log_debug("conn %llu: refusing a frame of %u bytes after %zu: over the parameter limit",
		  (unsigned long long)c->serial, declared, have);
	frame_reader_discard(&c->rd);
	c->peeked = 0; /* for the next frame */
	count_read_buffer(c);
	refuse_params(c, id);
}

/* Pauses reading a refused frame's rest for the time its uid's pace gives
 * the bytes read since the last pause (CONN_DISCARD_PER_MS); the timer
 * resumes it. The pause does not count against the client's frame
 * deadline: it is porterd that waits. */
static void pace_discard(conn *c)
{
	uint64_t now = uv_now(&c->w->loop);
	uint64_t ms = (c->read_turn + CONN_DISCARD_PER_MS - 1) / CONN_DISCARD_PER_MS;
	uint64_t wait = clients_discard_pace(c->acct, now, ms) - now;
	uv_read_stop((uv_stream_t *)&c->pipe);
	c->reading = 0;
	c->read_turn = 0;
	c->discard_paused = 1;
	c->idle_armed = 0;
	if (c->partial)
		c->partial_from += wait;
	uv_timer_start(&c->timer, on_timer, wait, 0);
}

static uint64_t turn_hash(uid_t uid)
{
	return htab_mix((uint64_t)uid + 1);
}

/* Makes `c` its uid's first waiting connection, at the back of `to`
 * (w->turns, or the list conn_run_turns is serving). */
static void turn_make_first(conn *c, list *to)
{
	worker *w = c->w;
	c->turn_first = 1;
	/* Out of memory: a later connection of its uid will not find it and
	 * waits as a first one of its own. */
	c->turn_hashed = htab_insert(&w->turn_uids, &c->turn_node, turn_hash(c->uid)) == 0;
	if (to == &w->turns)
		worker_queue_turn(w, &c->turn_link);
	else
		list_push_back(to, &c->turn_link);
}

/* Puts `c` in line for its next turn: behind its uid's others, or as its
 * uid's first at the back of w->turns. Nothing if it is in line. */
static void turn_queue(conn *c)
{
	worker *w = c->w;
	if (!list_empty(&c->turn_link))
		return;
	for (htab_node *n = htab_first(&w->turn_uids, turn_hash(c->uid)); n; n = htab_next(n)) {
		conn *first = list_entry(n, conn, turn_node);
		if (first->uid == c->uid) {
			list_push_back(&first->turn_next, &c->turn_link);
			return;
		}
	}
	turn_make_first(c, &w->turns);
}

/* Takes `c` out of line; the next of its uid, if any, becomes its uid's
 * first, at the back of `to`. */
static void turn_unqueue(conn *c, list *to)
{
	if (list_empty(&c->turn_link))
		return;
	list_remove(&c->turn_link);
	if (!c->turn_first)
		return;
	c->turn_first = 0;
	if (c->turn_hashed)
		htab_remove(&c->w->turn_uids, &c->turn_node);
	c->turn_hashed = 0;
	if (list_empty(&c->turn_next))
		return;
	conn *next = list_entry(c->turn_next.next, conn, turn_link);
	list_remove(&next->turn_link);
	list_move_all(&next->turn_next, &c->turn_next);
	turn_make_first(next, to);
}

/* Ends this connection's turn: reading stops and resumes in its next
 * turn (conn_run_turns), once the loop has served the others. Its timer
 * keeps running for whatever deadline it holds (a large frame's stall
 * deadline runs from its first byte across its turns). */
static void yield_turn(conn *c)
{
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = 0;
	}
	c->yielded = 1;
	c->read_turn = 0;
	turn_queue(c);
}

void conn_turn_begin(worker *w)
{
	w->turn_frames = 0;
	w->turn_bytes = 0;
}

void conn_run_turns(worker *w)
{
	/* Those that yield again now wait behind their uid's others in this
	 * round, or in w->turns for the next turn. */
	list due;
	list_move_all(&due, &w->turns);
	while (!list_empty(&due)) {
		if (worker_turn_spent(w)) {
			/* The rest go first next time, in their order. */
			list rest;
			list_move_all(&rest, &w->turns);
			list_move_all(&w->turns, &due);
			while (!list_empty(&rest)) {
				list *n = rest.next;
				list_remove(n);
				list_push_back(&w->turns, n);
			}
			return;
		}
		conn *c = list_entry(due.next, conn, turn_link);
		/* The next of its uid waits at the back of this round, so
		 * each uid with connections waiting has one served in turn. */
		turn_unqueue(c, &due);
		c->yielded = 0;
		if (c->state == CONN_HELLO || c->state == CONN_READY) {
			/* Unless it began to drain or close meanwhile. Its turn
			 * counts as a frame, and covers its next read too: one
			 * that had nothing buffered reads in this turn's poll
			 * whatever the others have spent (else each waiting
			 * connection would start reading, be declined, and
			 * wait again, turn after turn). */
			w->turn_frames++;
			c->turn_granted = 1;
			process_frames(c);
			if (c->state != CONN_CLOSING && !c->reading)
				c->turn_granted = 0;
		}
	}
}

static void handle_frame(conn *c, const uint8_t *p, size_t len)
{
	/* Hello is unpacked with malloc (it is handled and freed at once);
	 * every later request into an arena that its req keeps. */
	arena ar;
	int hello = c->state == CONN_HELLO;
	arena_init(&ar, len <= MSG_BLOCK_SMALL / 4 ? MSG_BLOCK_SMALL
			: len < 64 * 1024          ? 2 * len + MSG_BLOCK_SLACK
						   : 0);
	palloc_budget budget;
	palloc_budget_init(&budget, len, hello ? NULL : &ar);
	/* Queries and pings have a decoder of their own (it needs an arena,
	 * and declines a query over PostgreSQL's parameter limit before
	 * unpacking its parameters); it leaves anything else to protobuf-c. */
	Porter__V1__Request *msg = hello ? NULL : dbwire_unpack_request(&budget.base, len, p);
	if (!msg && !hello) {
		/* Parameters beyond PostgreSQL's limit are refused before
		 * protobuf-c unpacks them: an empty one is 2 bytes on the
		 * wire and some 64 once unpacked. */
		uint64_t id;
		size_t n = dbwire_request_params(len, p, &id);
		if (n == DBWIRE_MALFORMED) {
			/* Uncounted parameters would follow: not unpacked. */
			arena_free(&ar);
			conn_fail(c, PORTER_E_PROTOCOL, "malformed request frame");
			return;
		}
		if (n > DBWIRE_MAX_PARAMS) {
			refuse_params(c, id);
			arena_free(&ar);
			return;
		}
	}
	if (!msg) {
		budget.nomem = 0;
		msg = porter__v1__request__unpack(&budget.base, len, p);
	}
	if (!msg) {
		arena_free(&ar);
		/* Out of memory is not the client's fault: say so, rather
		 * than blaming its frame. */
		if (budget.nomem)
			conn_fail(c, PORTER_E_NOMEM, "out of memory decoding a request");
		else
			conn_fail(c, PORTER_E_PROTOCOL, "malformed request frame");
		return;
	}
	if (hello) {
		handle_hello(c, msg);
		return;
	}
	/* Closes the client reports count before the request may be
	 * refused: they happened whatever its fate, and are sent once. */
	fs_note_closes(c->w, c->serial, msg);
	int hold = conn_admit(c, msg->id, len, &ar);
	if (hold < 0)
		return;
	req *r = req_new(c, msg, &ar);
	if (!r) {
		if (hold)
			clients_put(c->acct, CLIENTS_BUFFERED, len);
		conn_fail(c, PORTER_E_NOMEM, "out of memory");
		return;
	}
	if (hold)
		req_hold(r, c->acct, len);
	ops_dispatch(r);
}

static void process_frames(conn *c)
{
	/* Replies sent synchronously re-enter through conn_req_done; the
	 * running loop below sees their effect, so no recursion per frame. */
	if (c->processing || c->close_due)
		return;
	c->processing = 1;
	/* Its turn now, whatever it was waiting for. */
	c->yielded = 0;
	turn_unqueue(c, &c->w->turns);

	unsigned frames = 0;
	size_t bytes = 0;
	while ((c->state == CONN_HELLO || c->state == CONN_READY) && !c->close_due &&
	       !c->discard_paused) {
		if (c->inflight >= c->w->cfg->max_inflight) {
			/* Backpressure: stop reading until replies go out. */
			if (c->reading) {
				uv_read_stop((uv_stream_t *)&c->pipe);
				c->reading = 0;
			}
			break;
		}
		/* Reading resumes once the frames buffered are done with, so
		 * a connection served in turns buffers no more than it had. */
		if (!c->reading && !frame_reader_has_frame(&c->rd) && start_reading(c) < 0) {
			conn_close(c);
			break;
		}
		const uint8_t *p;
		size_t len;
		if ((frames >= CONN_TURN_FRAMES || bytes >= CONN_TURN_BYTES ||
		     (worker_turn_spent(c->w) && !c->turn_granted)) &&
		    frame_reader_has_frame(&c->rd)) {
			/* Turn over: stop reading (libuv's read loop ends with
			 * it) and come back once the loop has gone round. */
			yield_turn(c);
			break;
		}
		int rc = frame_reader_next(&c->rd, &p, &len);
		if (rc == 0) {
			peek_partial(c);
			if (c->reading && c->rd.skip > 0 && c->read_turn >= CONN_DISCARD_CHUNK) {
				pace_discard(c);
				break;
			}
			/* A large frame is read in turns too: libuv would
			 * otherwise read up to 32 socket buffers in one
			 * callback. Its partial deadline is kept. */
			if (c->reading &&
			    (c->read_turn >= CONN_TURN_BYTES ||
			     (worker_turn_spent(c->w) && !c->turn_granted)) &&
			    frame_reader_pending(&c->rd) > 0)
				yield_turn(c);
			break;
		}
		c->peeked = 0;
		if (rc < 0) {
			char text[128];
			snprintf(text, sizeof(text), "frame of %u bytes exceeds the limit of %zu",
				 frame_get_header(c->rd.buf + c->rd.start), c->rd.max_frame);
			conn_fail(c, PORTER_E_TOO_LARGE, text);
			break;
		}
		handle_frame(c, p, len);
		frames++;
		bytes += len;
		c->w->turn_frames++;
		c->w->turn_bytes += len;
	}
	if ((c->state == CONN_HELLO || c->state == CONN_READY) && !c->yielded &&
	    !c->discard_paused) {
		frame_reader_trim(&c->rd, CONN_KEEP_BUFFER);
		count_read_buffer(c);
		update_timer(c);
	}
	c->processing = 0;
}

void conn_req_done(conn *c)
{
	if (c->close_due)
		return;
	if (c->state == CONN_DRAINING) {
		if (c->inflight == 0)
			close_after_flush(c);
		return;
	}
	if (c->state != CONN_READY)
		return;
	if (!c->reading) {
		/* Resumes a connection paused at the in-flight limit, its
		 * whole frames already buffered included, in its next turn,
		 * as a turn that yielded does: never here, inside the reply
		 * (conn.h). Inside process_frames, its loop goes on. */
		if (!c->processing && !c->yielded && !c->discard_paused) {
			c->yielded = 1;
			turn_queue(c);
		}
	} else if (c->inflight == 0) {
		update_timer(c);
	}
}

void conn_drain(conn *c)
{
	if (c->state == CONN_CLOSING || c->state == CONN_DRAINING || c->close_due)
		return;
	if (c->inflight == 0) {
		close_after_flush(c);
		return;
	}
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = 0;
	}
	c->state = CONN_DRAINING;
	c->idle_armed = 0;
	uv_timer_stop(&c->timer); /* the worker's grace timer bounds this */
}

void conn_abort(conn *c)
{
	if (c->state == CONN_CLOSING)
		return;
	/* No reply may restart reading or re-arm timers from here on. */
	if (c->state != CONN_DRAINING) {
		if (c->reading) {
			uv_read_stop((uv_stream_t *)&c->pipe);
			c->reading = 0;
		}
		c->state = CONN_DRAINING;
	}
	/* Each request is put back on the list before it is stopped: a stop
	 * may answer others on the spot (detach_all), which then leave
	 * `todo`, so the walk never holds a next entry across it. */
	list todo;
	list_move_all(&todo, &c->reqs);
	while (!list_empty(&todo)) {
		req *r = list_entry(todo.next, req, link);
		list_remove(&r->link);
		list_push_back(&c->reqs, &r->link);
		/* A stopped request replies (now or soon) and leaves the
		 * list itself; one that cannot stop is abandoned. */
		if (c->state == CONN_CLOSING || !req_stop(r, PORTER_E_SHUTDOWN))
			req_detach(r);
	}
	if (c->state == CONN_CLOSING)
		return;
	if (list_empty(&c->reqs)) {
		drop_inflight(c);
		close_after_flush(c);
	}
}

void conn_deny(conn *c)
{
	char text[128];
	if (c->state != CONN_HELLO && c->state != CONN_READY)
		return;
	snprintf(text, sizeof(text),
		 "uid %u is no longer allowed to use this daemon (configuration reloaded)",
		 (unsigned)c->uid);
	conn_fail(c, PORTER_E_DENIED, text);
}

int conn_create(worker *w, int fd, const clients_peer *peer, clients_acct *acct)
{
	conn *c = dcalloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		clients_put(acct, CLIENTS_CONNS, 1); /* counted at accept */
		clients_acct_unref(acct);
		stats_sub(&w->counters.connections, 1); /* counted at hand-off */
		return PORTER_E_NOMEM;
	}
	c->w = w;
	c->serial = ++w->next_conn_serial;
	c->peer = *peer;
	c->acct = acct;
	c->uid = peer->uid;
	c->pid = peer->pid;
	c->state = CONN_HELLO;
	list_init(&c->reqs);
	list_init(&c->turn_link);
	list_init(&c->turn_next);
	list_push_back(&w->conns, &c->link);
	frame_reader_init(&c->rd, w->cfg->hello_max_frame);

	uv_pipe_init(&w->loop, &c->pipe, 0);
	uv_timer_init(&w->loop, &c->timer);
	c->pipe.data = c;
	c->timer.data = c;
	c->open_handles = 2;

	int rc = uv_pipe_open(&c->pipe, fd);
	if (rc < 0) {
		log_warn("conn: uv_pipe_open: %s", uv_strerror(rc));
		close(fd);
		conn_close(c);
		return PORTER_E_INTERNAL;
	}
	if (start_reading(c) < 0) {
		conn_close(c);
		return PORTER_E_INTERNAL;
	}
	update_timer(c);
	log_debug("conn %llu: accepted on worker %u (pid %d uid %d)", (unsigned long long)c->serial,
		  w->index, (int)c->pid, (int)c->uid);
	return 0;
}
