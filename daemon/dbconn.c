/* dbconn - one PostgreSQL connection on a worker loop; see dbconn.h. */
#include "dbconn.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clients.h"
#include "dbcancel.h"
#include "dbdiag.h"
#include "dbdrain.h"
#include "dbop.h"
#include "dbpipe.h"
#include "dbpolicy.h"
#include "dbpool.h"
#include "dbstep.h"
#include "dbquery.h"
#include "log.h"
#include "porter_errors.h"

/* ---- polling ---- */

static void on_poll_closed(uv_handle_t *h);
static void maybe_free(dbc *c);

static void drop_poll(dbc *c)
{
	if (!c->poll)
		return;
	/* uv_close unregisters the fd at once, so libpq may close or reuse
	 * it right after this. */
	uv_close((uv_handle_t *)c->poll, on_poll_closed);
	c->poll = NULL;
}

static void on_io(uv_poll_t *p, int status, int events);

/* Watches `fd` for `events` (0 stops watching). A different fd, or a fresh
 * one forced by the caller, gets a fresh handle: one uv_poll per fd, and
 * never a stale registration for a number libpq closed and reopened.
 * Returns 0, UV_EBADF when libpq has no socket (fd < 0), UV_ENOMEM, or
 * uv_poll_init's error (UV_EEXIST: the loop already watches that number). */
static int watch(dbc *c, int fd, int events, int fresh)
{
	if (c->poll && (c->poll_fd != fd || fresh))
		drop_poll(c);
	if (fd < 0)
		return UV_EBADF;
	/* uv_poll_start re-registers the fd even when nothing changed: two
	 * epoll_ctl calls per query saved. */
	if (c->poll && c->poll_events == events)
		return 0;
	if (!c->poll) {
		uv_poll_t *p = malloc(sizeof(*p));
		if (!p)
			return UV_ENOMEM;
		int rc = uv_poll_init(&c->dw->w->loop, p, fd);
		if (rc < 0) {
			free(p);
			return rc;
		}
		p->data = c;
		c->poll = p;
		c->poll_fd = fd;
		c->poll_events = 0;
		c->open_polls++;
	}
	c->poll_events = events;
	if (events)
		uv_poll_start(c->poll, events, on_io);
	else
		uv_poll_stop(c->poll);
	return 0;
}

/* Breaks `c` for watch()'s failure `rc` on `fd`, naming libuv's error: the
 * one report of a socket porterd could not wait on says which and why. */
static void watch_failed(dbc *c, int fd, int rc)
{
	char why[160];
	if (fd < 0)
		snprintf(why, sizeof(why),
			 "connection to PostgreSQL has no socket (libpq gave none)");
	else
		snprintf(why, sizeof(why),
			 "cannot watch the PostgreSQL socket (descriptor %d): %s (%s)", fd,
			 uv_strerror(rc), uv_err_name(rc));
	dbconn_broken(c, why);
}

void dbconn_update_poll(dbc *c)
{
	int ev;
	switch (c->state) {
	case DBC_QUERY:
		/* A drain waiting for its turn reads nothing meanwhile, so
		 * libpq's buffer does not grow (dbdrain.h). */
		ev = c->drain_listed ? 0 : UV_READABLE | (c->flushing ? UV_WRITABLE : 0);
		break;
	case DBC_READY:
		/* Idle connections are watched too, so a server that went away
		 * (restart, idle timeout) is noticed before the next query. */
		ev = UV_READABLE;
		break;
	case DBC_PAUSED:
		/* Backpressure: unread rows stay in the socket, the server
		 * blocks once its send buffer fills. */
		ev = 0;
		break;
	default:
		return;
	}
	int fd = PQsocket(c->pg);
	int rc = watch(c, fd, ev, 0);
	if (rc < 0)
		watch_failed(c, fd, rc);
}

/* ---- cancel ---- */

/* The cancel sent for `c` is over (dbcancel.h). */
static void cancel_done(void *arg, int answered)
{
	dbc *c = arg;
	db_worker *dw = c->dw;
	c->cancelling--;
	dw->cancels--;
	dw->live--; /* c's own count keeps dw */
	if (!answered && c->state != DBC_CLOSING) {
		/* The request may still reach the server and stop whatever
		 * this connection runs then: it runs nothing more (a pooled
		 * one is closed, and freed by that when nothing holds it). */
		c->after_cancel = 0;
		dbconn_broken(c, "the server did not answer a cancel request");
		return;
	}
	if (c->cancelling == 0 && c->state == DBC_READY && c->after_cancel) {
		/* The server has the cancel now: whatever runs next on this
		 * connection is safe from it. */
		c->after_cancel = 0;
		dbquery_after(c);
	}
	maybe_free(c);
}

/* Asks the server to cancel what `c` runs; PQcancel blocks (connects
 * and waits for the server), so it runs on a thread of its own, a bounded
 * number per uid (dbcancel.h). 0, or -1 when no cancel could be sent. */
int dbconn_send_cancel(dbc *c)
{
	db_worker *dw = c->dw;
	if (!c->pg)
		return -1;
	PGcancel *pc = PQgetCancel(c->pg);
	if (!pc || dbcancel_start(&dw->w->loop, pc, c->uid, cancel_done, c) < 0)
		return -1;
	c->cancelling++;
	/* The cancel reaches the backend some time later, possibly while it
	 * runs a query sent ahead behind the one it was meant for. It may
	 * even land twice: PostgreSQL's postmaster signals the backend and
	 * then its process group, and when the backend has handled the first
	 * SIGINT (stopping the query meant) before the second arrives, the
	 * second stops the next statement, whichever message of a query
	 * that is (a Parse or a reset sent ahead of it, or the query). */
	for (list *pos = c->pipe.next; pos != &c->pipe; pos = pos->next)
		if (pos != c->pipe.next)
			list_entry(pos, pent, link)->exposed = 1;
	dw->cancels++;
	dw->live++;
	return 0;
}

/*
 * Abandons the running query: asks the server to cancel it and lets the
 * connection drain the remaining results, bounded by DRAIN_MS. Returns 0,
 * or -1 when the connection had to be given up instead (the caller has
 * nothing to undo: it is broken then).
 */
int dbconn_abandon(dbc *c)
{
	c->cur = NULL;
	c->state = DBC_QUERY;
	dbconn_stream_end(c);
	db_worker *dw = c->dw;
	if (dbconn_send_cancel(c) < 0) {
		dbconn_broken(c, "query abandoned");
		return -1;
	}
	c->drained = 0;
	c->drain_deadline = db_now_ms(dw) + DRAIN_MS;
	dbconn_arm_timer(c, c->drain_deadline);
	dbquery_pump(c);
	return 0;
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t)
{
	dbc *c = t->data;
	dbop *op = c->cur;
	/* The timer is left running between deadlines (dbconn_arm_timer):
	 * nothing may be due yet, or nothing at all. */
	uint64_t due = c->timer_due, now = db_now_ms(c->dw);
	c->timer_set = 0;
	if (!due)
		return;
	if (due > now) {
		c->timer_set = due;
		uv_timer_start(&c->timer, on_timer, due - now, 0);
		return;
	}
	c->timer_due = 0;
	switch (c->state) {
	case DBC_RESOLVING:
	case DBC_CONNECTING:
		c->cur = NULL;
		if (op)
			dbop_fail(op, PORTER_E_TIMEOUT, "connecting to PostgreSQL timed out");
		dbconn_broken(c, "connect timed out");
		return;
	case DBC_QUERY:
		if (!op) {
			dbconn_broken(c, "cancelled query did not finish in time");
			return;
		}
		if (op->kind == OP_RESET) {
			c->cur = NULL;
			dbop_free(op);
			dbconn_broken(c, "reset timed out");
			return;
		}
		c->cur = NULL;
		/* However long it would have run, it was slow. */
		dbpool_note(c, op, op->pent ? c->head_since : op->sent_ms);
		if (op->pent) {
			/* The head of a pipeline: the queries behind it go on;
			 * its own results will be discarded. */
			if (op->pent->unsent)
				dbpipe_materialize(c);
			op->pent->op = NULL;
			op->pent = NULL;
			dbop_fail(op, PORTER_E_TIMEOUT,
				  "query timed out; it was cancelled on the server");
			dbconn_send_cancel(c);
			dbconn_arm_timer(c, db_now_ms(c->dw) + DRAIN_MS);
			return;
		}
		dbop_fail(op, PORTER_E_TIMEOUT, "query timed out; it was cancelled on the server");
		dbconn_abandon(c);
		return;
	default:
		return;
	}
}

void dbconn_arm_timer(dbc *c, uint64_t deadline)
{
	uint64_t now = db_now_ms(c->dw);
	if (deadline <= now)
		deadline = now;
	c->timer_due = deadline ? deadline : 1;
	/* A timer already set to fire no later serves: on_timer looks at
	 * what is due then. Most queries end long before their deadline,
	 * so a connection costs a timer operation per deadline's length,
	 * not two per query. */
	if (c->timer_set && c->timer_set <= c->timer_due)
		return;
	c->timer_set = c->timer_due;
	uv_timer_start(&c->timer, on_timer, c->timer_due - now, 0);
}

void dbconn_disarm_timer(dbc *c)
{
	c->timer_due = 0;
}

/* ---- connection lifecycle ---- */

static void on_poll_closed(uv_handle_t *h)
{
	dbc *c = h->data;
	free(h);
	c->open_polls--;
	maybe_free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
	dbc *c = h->data;
	c->timer_open = 0;
	maybe_free(c);
}

static void maybe_free(dbc *c)
{
	if (c->state != DBC_CLOSING || c->open_polls || c->timer_open || c->gai || c->cancelling ||
	    c->stepping)
		return;
	db_worker *dw = c->dw;
	if (c->pg)
		PQfinish(c->pg);
	dbstmt_destroy(&c->stmts);
	clients_put(c->acct, CLIENTS_SESSIONS, 1);
	clients_acct_unref(c->acct);
	free(c->conninfo);
	free(c);
	dw->live--;
	stats_sub(&dw->w->counters.db_conns, 1);
	db_maybe_free(dw);
}

/* Fails everything queued on `c` with `code`. */
static void fail_queue(dbc *c, int code, const char *why)
{
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &c->queue) {
		dbop *op = list_entry(pos, dbop, link);
		dbop_fail(op, code, "%s", why);
	}
}

/* Closes `c` for good; pending operations get errors. The PGconn is
 * finished once the poll handles are closed (PQfinish closes the fd;
 * for a session this ends the server session, rolling back any open
 * transaction). */
void dbconn_close(dbc *c)
{
	if (c->state == DBC_CLOSING)
		return;
	/* A backend busy with a query would only notice the closed socket
	 * when it next writes: stop the query first. */
	if (c->state == DBC_QUERY || c->state == DBC_PAUSED)
		dbconn_send_cancel(c);
	c->state = DBC_CLOSING;
	dbpipe_clear(c, c->dw->closing ? PORTER_E_SHUTDOWN : PORTER_E_DB_BROKEN,
		     "database connection closed");
	if (c->cur) {
		dbop *op = c->cur;
		c->cur = NULL;
		if (op->kind == OP_RESET)
			dbop_free(op);
		else
			dbop_fail(op, c->dw->closing ? PORTER_E_SHUTDOWN : PORTER_E_DB_BROKEN,
				  "database connection closed");
	}
	fail_queue(c, c->dw->closing ? PORTER_E_SHUTDOWN : PORTER_E_DB_SESSION,
		   "database session closed");
	dbconn_stream_end(c);
	dbdrain_forget(c);
	list_remove(&c->link);
	if (c->id)
		c->dw->n_sessions--;
	if (c->in_idle) {
		list_remove(&c->ilink);
		c->in_idle = 0;
	}
	pool *p = c->pool;
	if (p) {
		p->total--;
		c->pool = NULL;
	}
	drop_poll(c);
	if (c->gai)
		uv_cancel((uv_req_t *)c->gai);
	dbstep_forget(c);
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
	if (p)
		dbpool_kick(p);
	maybe_free(c);
}

/*
 * The connection failed. A pooled one is closed (the pool replaces it); a
 * session stays, broken, and answers errors until the client closes it
 * or it is swept.
 */
void dbconn_broken(dbc *c, const char *why)
{
	if (c->state == DBC_CLOSING || c->state == DBC_BROKEN)
		return;
	char raw[512], msg[512];
	/* A connect step on the thread pool may be writing libpq's message. */
	const char *pqmsg = c->pg && !c->stepping ? PQerrorMessage(c->pg) : "";
	snprintf(raw, sizeof(raw), "%s%s%s", why, pqmsg[0] ? ": " : "", pqmsg);
	/* libpq's text may quote what a server sent, or (libpq 15's TLS
	 * error path) bytes past a buffer: only clean text goes on. */
	dbpolicy_clean(raw, msg, sizeof(msg));
	log_debug("db: connection broken: %s", msg);
	dbpipe_clear(c, PORTER_E_DB_BROKEN, msg);
	if (c->cur) {
		dbop *op = c->cur;
		c->cur = NULL;
		if (op->kind == OP_RESET)
			dbop_free(op);
		else
			dbop_fail(op,
				  c->state == DBC_CONNECTING || c->state == DBC_RESOLVING
					  ? PORTER_E_DB_CONNECT
					  : PORTER_E_DB_BROKEN,
				  "%s", msg);
	}
	if (!c->id || c->state == DBC_CONNECTING || c->state == DBC_RESOLVING) {
		/* Pooled, or a session whose id was never handed out. */
		dbconn_close(c);
		return;
	}
	fail_queue(c, PORTER_E_DB_BROKEN, msg);
	dbconn_stream_end(c);
	dbdrain_forget(c);
	c->state = DBC_BROKEN;
	dbconn_disarm_timer(c);
	drop_poll(c);
	if (c->pg) {
		PQfinish(c->pg);
		c->pg = NULL;
	}
}

/*
 * A new connection for client `uid`, counted against its
 * db-max-connections-per-uid (sessions and pooled connections alike, over
 * every worker: PostgreSQL's max_connections is what they share; porterd's
 * own uid is not limited). NULL with
 * `*err` PORTER_E_BUSY over that limit, or PORTER_E_NOMEM.
 */
dbc *dbconn_new(db_worker *dw, const char *conninfo, uid_t uid, int *err)
{
	*err = PORTER_E_NOMEM;
	dbc *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->conninfo = strdup(conninfo);
	c->acct = clients_acct_ref(uid);
	/* porterd's own uid (local clients) is counted, never limited: a
	 * per-user daemon has no other uid to be fair to. */
	uint32_t limit = uid == clients_self() ? 0 : dw->w->cfg->db_max_connections_per_uid;
	if (c->conninfo && !clients_take(c->acct, CLIENTS_SESSIONS, 1, limit))
		*err = PORTER_E_BUSY;
	else if (c->conninfo)
		*err = 0;
	if (*err) {
		clients_acct_unref(c->acct);
		free(c->conninfo);
		free(c);
		return NULL;
	}
	c->uid = uid;
	c->dw = dw;
	c->poll_fd = -1;
	list_init(&c->queue);
	list_init(&c->pipe);
	list_init(&c->held);
	list_init(&c->open_link);
	list_init(&c->link);
	list_init(&c->step_link);
	uv_timer_init(&dw->w->loop, &c->timer);
	c->timer.data = c;
	c->timer_open = 1;
	c->last_used = db_now_ms(dw);
	dw->live++;
	stats_add(&dw->w->counters.db_conns, 1);
	return c;
}

/* ---- connecting ---- */

/*
 * Whether the server let a foreign client's connection in without checking
 * a password: then it admitted porterd, not the client (trust for
 * porterd's address or socket directory, peer or ident naming porterd's OS
 * user, porterd's Kerberos ticket), and the password the client brought
 * proved nothing. libpq 15 has no require_auth to refuse such a method
 * before it runs, so the connection is dropped before any query is sent.
 */
static int lent_porterds_identity(const dbc *c)
{
	return c->uid != clients_self() && !PQconnectionUsedPassword(c->pg);
}

static void connected(dbc *c)
{
	dbop *op = c->cur;
	dbconn_disarm_timer(c);
	if (lent_porterds_identity(c)) {
		log_debug("db: uid %u: the server asked for no password; connection dropped",
			  (unsigned)c->uid);
		c->cur = NULL;
		if (op && op->kind == OP_RESET)
			dbop_free(op);
		else if (op)
			dbop_fail(
				op, PORTER_E_DENIED,
				"the database server let the connection in without asking for the "
				"password: it trusts porterd, not this client (a foreign client "
				"must authenticate with its password)");
		dbconn_broken(c, "the server asked for no password");
		return;
	}
	if (PQsetnonblocking(c->pg, 1) != 0) {
		dbconn_broken(c, "cannot make the connection non-blocking");
		return;
	}
	/* Steps are over: notices may go with the replies now. */
	PQsetNoticeReceiver(c->pg, dbdiag_notice, c);
	c->state = DBC_READY;
	c->last_used = db_now_ms(c->dw);
	/* The socket is final now: a fresh handle for the life of the
	 * connection. */
	int fd = PQsocket(c->pg);
	int rc = watch(c, fd, UV_READABLE, 1);
	if (rc < 0) {
		watch_failed(c, fd, rc);
		return;
	}
	c->cur = NULL;
	if (!op)
		return;
	if (op->kind == OP_OPEN) {
		Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
		Porter__V1__DbOpenReply orep = PORTER__V1__DB_OPEN_REPLY__INIT;
		orep.session = c->id;
		resp.body_case = PORTER__V1__RESPONSE__BODY_DB_OPEN;
		resp.db_open = &orep;
		dbop_reply(op, &resp);
		if (!list_empty(&c->queue)) {
			dbop *next = list_entry(c->queue.next, dbop, link);
			list_remove(&next->link);
			next->queued = 0;
			dbquery_start(c, next);
		}
	} else if (!c->pool || !dbpool_connected(c, op)) {
		dbquery_start(c, op);
	}
}

static void connect_step(dbc *c, PostgresPollingStatusType st);

/*
 * Advances c's handshake by one PQconnectPoll. A step that may compute keys
 * runs on the thread pool, at most DBSTEP_SLOTS per worker at once
 * (dbstep.h): on the loop, one uid opening sessions of a password
 * role held every other client of the worker 4 ms per login. The socket
 * is not watched meanwhile (libpq may close it and open another).
 */
static void poll_step(dbc *c)
{
	if (!dbstep_may_derive_keys(c->pg)) {
		connect_step(c, PQconnectPoll(c->pg));
		return;
	}
	drop_poll(c);
	dbstep_queue(c);
}

void dbconn_step_done(dbc *c, int status)
{
	if (c->state == DBC_CLOSING) {
		maybe_free(c);
		return;
	}
	if (status < 0) {
		dbconn_broken(c, "connect step cancelled");
		return;
	}
	connect_step(c, c->step_st);
}

static void connect_step(dbc *c, PostgresPollingStatusType st)
{
	int fd, rc;
	switch (st) {
	case PGRES_POLLING_OK:
		connected(c);
		return;
	case PGRES_POLLING_FAILED:
		dbconn_broken(c, "connection to PostgreSQL failed");
		return;
	case PGRES_POLLING_READING:
	case PGRES_POLLING_WRITING:
		/* libpq may have closed the socket and opened another (next
		 * host, SSL retry) with the same number: always a fresh handle
		 * while connecting. */
		fd = PQsocket(c->pg);
		rc = watch(c, fd, st == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE, 1);
		if (rc < 0) {
			/* No socket to wait on: let libpq try again, once. */
			if (c->step_nosock) {
				watch_failed(c, fd, rc);
				return;
			}
			c->step_nosock = 1;
			poll_step(c);
			return;
		}
		c->step_nosock = 0;
		return;
	default:
		poll_step(c);
		return;
	}
}

/* Notices while connecting (a step may run on the thread pool, where the
 * operation waiting for the connection must not be touched) go to the log
 * only. Any thread. */
static void connect_notice(void *arg, const PGresult *res)
{
	(void)arg;
	char text[512];
	const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	log_debug("db: notice while connecting: %s", dbpolicy_clean_line(m, text, sizeof(text)));
}

static void start_pq(dbc *c)
{
	dbpolicy_params pp;
	const char *root;
	/* db.c refused a conninfo whose hosts need different files; a
	 * reload since may have made them differ: refused here too. */
	int rc = dbpolicy_root_cert(c->conninfo, &c->dw->w->cfg->db_tls_root_cert, &root);
	if (rc == 0)
		rc = dbpolicy_params_build(c->conninfo, c->hostaddr[0] ? c->hostaddr : NULL, root,
					   c->uid != clients_self(), &pp);
	if (rc < 0) {
		dbconn_broken(c, rc == PORTER_E_NOMEM ? "out of memory" : "invalid conninfo");
		return;
	}
	c->pg = PQconnectStartParams(pp.keywords, pp.values, 0);
	dbpolicy_params_free(&pp);
	if (!c->pg) {
		dbconn_broken(c, "out of memory");
		return;
	}
	/* Notices go to porterd's log as one escaped line until the
	 * connection is made, then with the reply of the query they came
	 * during (connected); never raw to stderr. */
	PQsetNoticeReceiver(c->pg, connect_notice, c);
	if (PQstatus(c->pg) == CONNECTION_BAD) {
		dbconn_broken(c, "connection to PostgreSQL failed");
		return;
	}
	c->state = DBC_CONNECTING;
	connect_step(c, PGRES_POLLING_WRITING);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
	dbc *c = g->data;
	c->gai = NULL;
	free(g);
	if (c->state == DBC_CLOSING) {
		uv_freeaddrinfo(res);
		maybe_free(c);
		return;
	}
	if (status < 0 || !res) {
		char msg[256];
		snprintf(msg, sizeof(msg), "could not resolve the PostgreSQL host: %s",
			 uv_strerror(status));
		uv_freeaddrinfo(res);
		dbconn_broken(c, msg);
		return;
	}
	if (res->ai_family == AF_INET6)
		uv_ip6_name((struct sockaddr_in6 *)res->ai_addr, c->hostaddr, sizeof(c->hostaddr));
	else
		uv_ip4_name((struct sockaddr_in *)res->ai_addr, c->hostaddr, sizeof(c->hostaddr));
	uv_freeaddrinfo(res);
	start_pq(c);
}

/* Starts connecting `c` on behalf of `op` (which it answers or passes on
 * to the query once connected). */
void dbconn_connect(dbc *c, dbop *op)
{
	c->cur = op;
	op->c = c;
	dbconn_arm_timer(c, op->deadline);
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(c->conninfo, &err);
	if (!opts) {
		char msg[512];
		snprintf(msg, sizeof(msg), "invalid conninfo: %s", err ? err : "out of memory");
		PQfreemem(err);
		c->cur = NULL;
		dbop_fail(op, PORTER_E_INVAL, "%s", msg);
		dbconn_broken(c, "invalid conninfo");
		return;
	}
	const char *host = NULL, *hostaddr = NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "hostaddr") == 0)
			hostaddr = o->val;
	}
	char name[256] = "";
	if (host && host[0] && host[0] != '/' && host[0] != '@' && !(hostaddr && hostaddr[0]))
		snprintf(name, sizeof(name), "%s", host);
	PQconninfoFree(opts);
	if (!name[0]) {
		start_pq(c);
		return;
	}
	if (strchr(name, ',')) {
		c->cur = NULL;
		dbop_fail(
			op, PORTER_E_INVAL,
			"several hosts in one conninfo need hostaddr (names are resolved one at a "
			"time)");
		dbconn_broken(c, "invalid conninfo");
		return;
	}
	unsigned char buf[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1) {
		snprintf(c->hostaddr, sizeof(c->hostaddr), "%s", name);
		start_pq(c);
		return;
	}
	/* libpq would resolve the name itself, blocking the loop: resolve it
	 * on the thread pool and connect by address (host stays set for
	 * authentication and TLS). */
	uv_getaddrinfo_t *g = malloc(sizeof(*g));
	if (!g) {
		dbconn_broken(c, "out of memory");
		return;
	}
	g->data = c;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	c->state = DBC_RESOLVING;
	c->gai = g;
	int rc = uv_getaddrinfo(&c->dw->w->loop, g, on_resolved, name, NULL, &hints);
	if (rc < 0) {
		c->gai = NULL;
		free(g);
		dbconn_broken(c, "could not resolve the PostgreSQL host");
	}
}

/* ---- reading ---- */

static void on_io(uv_poll_t *p, int status, int events)
{
	dbc *c = p->data;
	worker_saw_io(c->dw->w);
	if (c->poll != p)
		return;
	if (c->state == DBC_CONNECTING) {
		poll_step(c);
		return;
	}
	if (status < 0) {
		dbconn_broken(c, "socket error");
		return;
	}
	if (c->state != DBC_QUERY && c->state != DBC_READY)
		return;
	if (events & UV_READABLE) {
		if (!PQconsumeInput(c->pg)) {
			dbconn_broken(c, "connection lost");
			return;
		}
	}
	if (c->flushing) {
		/* Read first, flush again: the server may be blocked sending
		 * to us while we wait to send to it. */
		int rc = PQflush(c->pg);
		if (rc < 0) {
			dbconn_broken(c, "connection lost");
			return;
		}
		c->flushing = rc == 1;
	}
	if (c->state == DBC_READY) {
		PGnotify *n;
		while ((n = PQnotifies(c->pg)))
			PQfreemem(n);
		if (PQstatus(c->pg) != CONNECTION_OK) {
			dbconn_broken(c, "connection lost");
			return;
		}
		/* Anything else arriving unasked is an error message the server
		 * sends before it closes (e.g. at shutdown). */
		if (!PQisBusy(c->pg)) {
			PGresult *res;
			while ((res = PQgetResult(c->pg)))
				PQclear(res);
		}
		return;
	}
	dbquery_pump(c);
}

/* ---- result streams ---- */

void dbconn_stream_begin(dbc *c, uint64_t id, const dbop *op)
{
	c->stream_id = id;
	c->stream_cols_sent = 0;
	c->stream_chunk = op->chunk_rows;
	c->uid = op->uid;
	c->inst = op->inst;
	list_push_back(&c->dw->streams, &c->slink);
	/* Counted, not limited here: each stream holds a connection, and
	 * those are bounded per uid already (db-max-connections-per-uid). */
	clients_take(c->acct, CLIENTS_STREAMS, 1, 0);
}

void dbconn_stream_end(dbc *c)
{
	if (!c->stream_id)
		return;
	list_remove(&c->slink);
	c->stream_id = 0;
	clients_put(c->acct, CLIENTS_STREAMS, 1);
}

/* ---- limits ---- */

void dbconn_fail_uid_quota(dbop *op)
{
	dbop_fail(op, PORTER_E_BUSY,
		  "uid %u holds %u database connections, its limit "
		  "(db-max-connections-per-uid); close sessions or cursors",
		  (unsigned)op->uid, op->dw->w->cfg->db_max_connections_per_uid);
}
