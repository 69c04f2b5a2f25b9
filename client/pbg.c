/* pbg - libporter's background thread for non-waiting frees; see pbg.h. */
#include "pbg.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "porter.h"

typedef struct job {
	struct job *next;
	void (*fn)(void *arg);
	void *arg;
} job;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static job *head, *tail; /* under mu */
static size_t queued;    /* under mu */
static int started;      /* under mu: the thread runs */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void *run(void *unused)
{
	for (;;) {
		pthread_mutex_lock(&mu);
		if (!head) {
			/* Idle: hold no daemon connection (nor its buffers)
			 * between bursts of jobs. */
			pthread_mutex_unlock(&mu);
			porter_thread_disconnect();
			pthread_mutex_lock(&mu);
		}
		while (!head)
			pthread_cond_wait(&cv, &mu);
		job *j = head;
		head = j->next;
		if (!head)
			tail = NULL;
		queued--;
		pthread_mutex_unlock(&mu);
		j->fn(j->arg);
		free(j->arg);
		free(j);
	}
	return NULL;
}

/* The child of a fork has no background thread and must not run the
 * parent's jobs (they name the parent's client instance and streams). */
static void before_fork(void)
{
	pthread_mutex_lock(&mu);
}

static void after_fork_parent(void)
{
	pthread_mutex_unlock(&mu);
}

static void after_fork_child(void)
{
	job *j = head;
	while (j) {
		job *next = j->next;
		free(j->arg);
		free(j);
		j = next;
	}
	head = tail = NULL;
	queued = 0;
	started = 0;
	pthread_mutex_unlock(&mu);
}

static void register_atfork(void)
{
	pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* Starts the thread with every signal blocked (a host's handlers must not
 * run on it). Called with mu held. */
static int start_locked(void)
{
	sigset_t all, old;
	pthread_t t;
	pthread_attr_t attr;
	if (pthread_attr_init(&attr) != 0)
		return PORTER_E_NOMEM;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&t, &attr, run, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0)
		return PORTER_E_NOMEM;
	started = 1;
	return 0;
}

int pbg_submit(void (*fn)(void *arg), void *arg)
{
	pthread_once(&atfork_once, register_atfork);
	job *j = malloc(sizeof(*j));
	int rc = j ? 0 : PORTER_E_NOMEM;
	pthread_mutex_lock(&mu);
	if (rc == 0 && queued >= PBG_MAX_QUEUED)
		rc = PORTER_E_NOMEM;
	if (rc == 0 && !started)
		rc = start_locked();
	if (rc == 0) {
		*j = (job){.fn = fn, .arg = arg};
		if (tail)
			tail->next = j;
		else
			head = j;
		tail = j;
		queued++;
		pthread_cond_signal(&cv);
	}
	pthread_mutex_unlock(&mu);
	if (rc < 0) {
		free(j);
		free(arg);
	}
	return rc;
}

/* What pbg_submit_id queues. */
typedef struct {
	int (*fn)(uint64_t id, int timeout_ms);
	uint64_t id;
} id_job;

static void run_id_job(void *arg)
{
	id_job *j = arg;
	j->fn(j->id, PBG_JOB_TIMEOUT_MS);
}

void pbg_submit_id(int (*fn)(uint64_t id, int timeout_ms), uint64_t id)
{
	id_job *j = id ? malloc(sizeof(*j)) : NULL;
	if (j) {
		*j = (id_job){.fn = fn, .id = id};
		pbg_submit(run_id_job, j);
	}
}
