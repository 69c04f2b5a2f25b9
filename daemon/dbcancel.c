/* dbcancel - PQcancel on threads of its own; see dbcancel.h. */
#include "dbcancel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "log.h"

/* PQcancel needs little stack: a socket, a 16-byte packet, a message. */
#define CANCEL_STACK (256u * 1024u)

/* Who is running how many cancels. At most DBCANCEL_MAX are running, so
 * at most that many uids have one: a free entry always exists for a new
 * uid while the total is under the limit. */
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uid_t uid;
	unsigned n; /* 0: the entry is free */
} held[DBCANCEL_MAX];
static unsigned held_total;

static int take(uid_t uid)
{
	int ok = 0;
	pthread_mutex_lock(&held_mu);
	if (held_total < DBCANCEL_MAX) {
		int slot = -1;
		for (unsigned i = 0; i < DBCANCEL_MAX; i++) {
			if (held[i].n && held[i].uid == uid) {
				slot = (int)i;
				break;
			}
			if (!held[i].n && slot < 0)
				slot = (int)i;
		}
		if (slot >= 0 && held[slot].n < DBCANCEL_PER_UID) {
			held[slot].uid = uid;
			held[slot].n++;
			held_total++;
			ok = 1;
		}
	}
	pthread_mutex_unlock(&held_mu);
	return ok;
}

static void put(uid_t uid)
{
	pthread_mutex_lock(&held_mu);
	for (unsigned i = 0; i < DBCANCEL_MAX; i++)
		if (held[i].n && held[i].uid == uid) {
			held[i].n--;
			held_total--;
			break;
		}
	pthread_mutex_unlock(&held_mu);
}

unsigned dbcancel_running(uid_t uid)
{
	unsigned n = 0;
	pthread_mutex_lock(&held_mu);
	for (unsigned i = 0; i < DBCANCEL_MAX; i++)
		if (held[i].n && held[i].uid == uid)
			n = held[i].n;
	pthread_mutex_unlock(&held_mu);
	return n;
}

enum job_state {
	JOB_RUNNING,  /* PQcancel has not returned, the loop still waits */
	JOB_ANSWERED, /* PQcancel returned; the doorbell was rung */
	JOB_GAVE_UP,  /* the loop stopped waiting; the thread ends alone */
};

typedef struct job {
	/* Shared by the thread and the loop. */
	pthread_mutex_t mu;
	enum job_state state; /* guarded by mu */
	atomic_int refs;      /* the thread's and the loop's */
	PGcancel *pc;         /* owned */
	uid_t uid;
	int ok;        /* PQcancel's result, read once ANSWERED */
	char err[256]; /* its message */
	/* The loop's side. */
	uv_async_t async; /* rung by the thread when PQcancel returns */
	uv_timer_t timer; /* DBCANCEL_WAIT_MS */
	int handles;      /* of the two, not yet closed */
	int completed;    /* done was called */
	dbcancel_done_cb done;
	void *arg;
} job;

static void unref(job *j)
{
	if (atomic_fetch_sub(&j->refs, 1) != 1)
		return;
	PQfreeCancel(j->pc);
	pthread_mutex_destroy(&j->mu);
	free(j);
}

static void *cancel_thread(void *arg)
{
	job *j = arg;
	int ok = PQcancel(j->pc, j->err, sizeof(j->err));
	/* The doorbell is rung under the lock: once the loop has seen a
	 * state other than RUNNING under it, no send is in progress and the
	 * handle may be closed. */
	pthread_mutex_lock(&j->mu);
	if (j->state == JOB_RUNNING) {
		j->ok = ok;
		j->state = JOB_ANSWERED;
		uv_async_send(&j->async);
	}
	pthread_mutex_unlock(&j->mu);
	put(j->uid);
	unref(j);
	return NULL;
}

static void on_closed(uv_handle_t *h)
{
	job *j = h->data;
	if (--j->handles == 0)
		unref(j);
}

static void complete(job *j, int answered)
{
	if (j->completed)
		return;
	j->completed = 1;
	uv_close((uv_handle_t *)&j->async, on_closed);
	uv_close((uv_handle_t *)&j->timer, on_closed);
	if (answered && !j->ok)
		log_warn("db: server-side cancel failed: %s", j->err);
	else if (!answered)
		log_warn("db: no answer to a server-side cancel for uid %u in %u ms; gave up on it",
			 (unsigned)j->uid, DBCANCEL_WAIT_MS);
	j->done(j->arg, answered);
}

static void on_answer(uv_async_t *a)
{
	job *j = a->data;
	/* The thread rang under the lock: taking it here waits until its
	 * uv_async_send has returned. */
	pthread_mutex_lock(&j->mu);
	int answered = j->state == JOB_ANSWERED;
	pthread_mutex_unlock(&j->mu);
	if (answered)
		complete(j, 1);
}

static void on_wait_over(uv_timer_t *t)
{
	job *j = t->data;
	pthread_mutex_lock(&j->mu);
	int gave_up = j->state == JOB_RUNNING;
	if (gave_up)
		j->state = JOB_GAVE_UP;
	pthread_mutex_unlock(&j->mu);
	/* Answered meanwhile: the doorbell's callback completes it. */
	if (gave_up)
		complete(j, 0);
}

int dbcancel_start(uv_loop_t *loop, PGcancel *pc, uid_t uid, dbcancel_done_cb done, void *arg)
{
	int rc = -1;
	job *j = NULL;
	int taken = take(uid);
	if (!taken)
		goto out;
	j = calloc(1, sizeof(*j));
	if (!j || pthread_mutex_init(&j->mu, NULL) != 0)
		goto out;
	j->pc = pc;
	j->uid = uid;
	j->done = done;
	j->arg = arg;
	if (uv_async_init(loop, &j->async, on_answer) < 0)
		goto out_mu;
	uv_timer_init(loop, &j->timer);
	j->async.data = j;
	j->timer.data = j;
	j->handles = 2;
	atomic_init(&j->refs, 2);

	pthread_attr_t attr;
	pthread_t tid;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, CANCEL_STACK);
	int err = pthread_create(&tid, &attr, cancel_thread, j);
	pthread_attr_destroy(&attr);
	if (err != 0) {
		log_warn("db: cannot start a thread for a server-side cancel (errno %d)", err);
		/* The handles close and their callbacks drop both references;
		 * the caller keeps nothing, so the cancel is freed then. */
		j->completed = 1;
		atomic_store(&j->refs, 1);
		put(uid);
		uv_close((uv_handle_t *)&j->async, on_closed);
		uv_close((uv_handle_t *)&j->timer, on_closed);
		return -1;
	}
	uv_timer_start(&j->timer, on_wait_over, DBCANCEL_WAIT_MS, 0);
	return 0;

out_mu:
	pthread_mutex_destroy(&j->mu);
out:
	free(j);
	if (taken)
		put(uid);
	PQfreeCancel(pc);
	return rc;
}
