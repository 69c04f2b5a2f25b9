#include "dbstep.h"

#include "dbconn.h"
#include "log.h"

/* A SCRAM login derives its salted password in such a step (PBKDF2, 4,096
 * rounds of HMAC-SHA-256 by default: some 4 ms of CPU), a TLS handshake
 * its session keys. */
int dbstep_may_derive_keys(const PGconn *pg)
{
	switch (PQstatus(pg)) {
	case CONNECTION_AWAITING_RESPONSE:
	case CONNECTION_SSL_STARTUP:
	case CONNECTION_GSS_STARTUP:
		return 1;
	default:
		return 0;
	}
}

/* Thread pool: one step of the handshake (non-blocking I/O, and the CPU
 * the step needs). */
static void step_run(uv_work_t *w)
{
	dbc *c = w->data;
	c->step_st = PQconnectPoll(c->pg);
}

static void step_done(uv_work_t *w, int status);

/* Whether `uid` has a step gone long on `dw` (DBSTEP_LONG_MS). */
static int uid_stepping_long(const db_worker *dw, uid_t uid)
{
	for (const list *pos = dw->step_run.next; pos != &dw->step_run; pos = pos->next) {
		const dbc *c = list_entry(pos, dbc, step_link);
		if (c->step_long && c->uid == uid)
			return 1;
	}
	return 0;
}

/* The first waiting step whose uid has none gone long, or NULL. */
static dbc *step_next(db_worker *dw)
{
	for (list *pos = dw->step_wait.next; pos != &dw->step_wait; pos = pos->next) {
		dbc *c = list_entry(pos, dbc, step_link);
		if (!uid_stepping_long(dw, c->uid))
			return c;
	}
	return NULL;
}

/* Starts waiting steps while the worker has slots for them. */
static void steps_start(db_worker *dw)
{
	dbc *c;
	while (dw->steps_running < DBSTEP_SLOTS && (c = step_next(dw))) {
		list_remove(&c->step_link);
		c->step_waiting = 0;
		c->step.data = c;
		if (uv_queue_work(&dw->w->loop, &c->step, step_run, step_done) < 0) {
			dbconn_broken(c, "cannot run a connect step");
			continue;
		}
		c->stepping = 1;
		c->step_since = db_now_ms(dw);
		list_push_back(&dw->step_run, &c->step_link);
		dw->steps_running++;
	}
}

void dbstep_sweep(db_worker *dw)
{
	uint64_t now = db_now_ms(dw);
	for (list *pos = dw->step_run.next; pos != &dw->step_run; pos = pos->next) {
		dbc *c = list_entry(pos, dbc, step_link);
		if (c->step_long || dw->steps_long >= DBSTEP_LONG_SLOTS ||
		    now - c->step_since < DBSTEP_LONG_MS)
			continue;
		c->step_long = 1;
		dw->steps_long++;
		dw->steps_running--;
		log_warn("db: uid %u: a login step has run %llu ms (its server may ask for many "
			 "key derivation rounds); other logins go on beside it",
			 (unsigned)c->uid, (unsigned long long)(now - c->step_since));
	}
	steps_start(dw);
}

static void step_done(uv_work_t *w, int status)
{
	dbc *c = w->data;
	db_worker *dw = c->dw;
	c->stepping = 0;
	list_remove(&c->step_link);
	if (c->step_long) {
		log_info("db: uid %u: the long login step ended after %llu ms", (unsigned)c->uid,
			 (unsigned long long)(db_now_ms(dw) - c->step_since));
		c->step_long = 0;
		dw->steps_long--;
	} else {
		dw->steps_running--;
	}
	steps_start(dw);
	dbconn_step_done(c, status);
}

void dbstep_queue(dbc *c)
{
	list_push_back(&c->dw->step_wait, &c->step_link);
	c->step_waiting = 1;
	steps_start(c->dw);
}

void dbstep_forget(dbc *c)
{
	if (c->step_waiting) {
		list_remove(&c->step_link);
		c->step_waiting = 0;
	}
	if (c->stepping)
		uv_cancel((uv_req_t *)&c->step); /* fails once it runs: then it ends */
}
