/* loopcpu - a test instrument: turns of a worker loop that used too much
 * CPU; see loopcpu.h. */
#include "loopcpu.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"

struct loopcpu {
	uv_prepare_t prep;
	char name[24]; /* "worker W" or "acceptor" */
	uint64_t limit_ns;
	uint64_t last_ns; /* thread CPU when the last turn ended; 0: none yet */
};

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs once per turn, just before the loop polls: the CPU used since the
 * last call is one whole turn's (waiting in the poll uses none). */
static void on_prepare(uv_prepare_t *p)
{
	loopcpu *lc = p->data;
	uint64_t now = thread_cpu_ns();
	if (lc->last_ns && now - lc->last_ns > lc->limit_ns) {
		log_info("%s: a loop turn used %llu us of CPU", lc->name,
			 (unsigned long long)((now - lc->last_ns) / 1000));
		/* The log line's own cost is not the next turn's. */
		now = thread_cpu_ns();
	}
	lc->last_ns = now;
}

loopcpu *loopcpu_start(uv_loop_t *loop, int worker_index)
{
	const char *env = getenv("PORTER_TEST_TURN_CPU_US");
	if (!env || !*env)
		return NULL;
	char *end;
	unsigned long us = strtoul(env, &end, 10);
	if (*end || us == 0) {
		log_warn("PORTER_TEST_TURN_CPU_US=%s ignored: expected microseconds >= 1", env);
		return NULL;
	}
	loopcpu *lc = calloc(1, sizeof(*lc));
	if (!lc) {
		log_warn("out of memory: loop turns not watched");
		return NULL;
	}
	if (worker_index < 0)
		snprintf(lc->name, sizeof(lc->name), "acceptor");
	else
		snprintf(lc->name, sizeof(lc->name), "worker %d", worker_index);
	lc->limit_ns = (uint64_t)us * 1000;
	uv_prepare_init(loop, &lc->prep);
	lc->prep.data = lc;
	uv_prepare_start(&lc->prep, on_prepare);
	uv_unref((uv_handle_t *)&lc->prep);
	if (worker_index < 0)
		log_warn("PORTER_TEST_TURN_CPU_US=%lu: loop turns using more CPU are logged "
			 "(a test instrument)",
			 us);
	return lc;
}

static void on_closed(uv_handle_t *h)
{
	free(h->data);
}

void loopcpu_close(loopcpu *lc)
{
	if (lc)
		uv_close((uv_handle_t *)&lc->prep, on_closed);
}
