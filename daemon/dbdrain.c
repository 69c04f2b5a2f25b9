/* dbdrain - an abandoned query's results, discarded in bounded turns; see
 * dbdrain.h. */
#include "dbdrain.h"

#include "dbconn.h"
#include "dbquery.h"
#include "log.h"

/* The time left is looked at once per this many results. */
#define CLOCK_EVERY 16u

static void on_turn(uv_idle_t *h);

void dbdrain_worker_init(db_worker *dw)
{
	list_init(&dw->drains);
	uv_idle_init(&dw->w->loop, &dw->drain_idle);
	dw->drain_idle.data = dw;
	dw->live++;
}

void dbdrain_worker_close(db_worker *dw, uv_close_cb closed)
{
	uv_close((uv_handle_t *)&dw->drain_idle, closed);
}

void dbdrain_forget(dbc *c)
{
	if (!c->drain_listed)
		return;
	list_remove(&c->dlink);
	c->drain_listed = 0;
}

/* Off the list, back to waiting for the socket (or not: the drain is
 * over and something else runs). */
static void unlist(dbc *c)
{
	dbdrain_forget(c);
	dbconn_update_poll(c);
}

/*
 * Discards `c`'s results while `*budget` lasts and the clock is before
 * `until` (uv_hrtime ns). Returns 1 when `c` has results left for a later
 * turn (it stays listed), 0 when it is off the list: waiting for its
 * socket, ready for the next query, or broken.
 */
static int drain_some(dbc *c, unsigned *budget, uint64_t until)
{
	int read_more = 1;
	while (c->state == DBC_QUERY && !c->cur && !c->pipelined) {
		if (*budget == 0 || (*budget % CLOCK_EVERY == 0 && uv_hrtime() >= until))
			return 1;
		if (PQisBusy(c->pg)) {
			/* libpq has parsed all it holds (at most part of a
			 * message is left): read once more without waiting
			 * for the poll, then wait for the socket. */
			if (read_more) {
				/* A read can bring a megabyte (libpq's buffer
				 * stays as large as the largest row it held):
				 * it counts against the turn's time too. */
				if (uv_hrtime() >= until)
					return 1;
				read_more = 0;
				if (!PQconsumeInput(c->pg)) {
					dbdrain_forget(c);
					dbconn_broken(c, "connection lost");
					return 0;
				}
				if (uv_hrtime() >= until)
					return 1;
				continue;
			}
			unlist(c);
			return 0;
		}
		PGresult *res = PQgetResult(c->pg);
		(*budget)--;
		c->drained++;
		if (!res) {
			log_debug("db: an abandoned query's %u results drained", c->drained);
			/* The cancelled query is over: the connection serves
			 * what waits next (or is given back to its pool). */
			dbdrain_forget(c);
			dbquery_after(c);
			return 0;
		}
		PQclear(res);
		read_more = 1;
		if (c->pool && c->drained >= DBDRAIN_POOLED_MAX) {
			/* Cheaper to make another connection than to read on. */
			log_debug("db: an abandoned query still sent rows after %u results: "
				  "pooled connection closed",
				  c->drained);
			dbdrain_forget(c);
			dbconn_broken(c, "an abandoned query's results were too many to drain");
			return 0;
		}
	}
	/* Something else owns the connection now. */
	dbdrain_forget(c);
	return 0;
}

/* One drain turn: the listed connections in turn, the first to go now
 * going last next time, until the turn's results or time run out. */
static void on_turn(uv_idle_t *h)
{
	db_worker *dw = h->data;
	unsigned budget = DBDRAIN_TURN_RESULTS;
	uint64_t until = uv_hrtime() + DBDRAIN_TURN_NS;
	while (budget && !list_empty(&dw->drains)) {
		dbc *c = list_entry(dw->drains.next, dbc, dlink);
		list_remove(&c->dlink);
		list_push_back(&dw->drains, &c->dlink);
		if (drain_some(c, &budget, until) && uv_hrtime() >= until)
			break;
	}
	if (list_empty(&dw->drains))
		uv_idle_stop(h);
}

void dbdrain_pump(dbc *c)
{
	db_worker *dw = c->dw;
	if (!c->drain_listed) {
		list_push_back(&dw->drains, &c->dlink);
		c->drain_listed = 1;
	}
	/* Not watched while listed: its turn comes from the idle handle. */
	dbconn_update_poll(c);
	if (!uv_is_active((uv_handle_t *)&dw->drain_idle))
		uv_idle_start(&dw->drain_idle, on_turn);
}
