/*
 * stats - per-worker counters and the Stats request.
 *
 * Each worker owns one stats_counters and is its only writer (plus the
 * acceptor, which counts a connection at hand-off); any thread may read them.
 * Relaxed atomics: the numbers are for humans and tests, not for
 * synchronisation.
 */
#ifndef PORTER_STATS_H
#define PORTER_STATS_H

#include <stdatomic.h>
#include <stdint.h>

struct req;

typedef struct stats_counters {
	_Atomic uint64_t connections; /* open now */
	_Atomic uint64_t requests;    /* received since start */
	_Atomic uint64_t inflight;    /* being processed now */
	_Atomic uint64_t errors;      /* non-zero responses since start */
	_Atomic uint64_t bytes_in;
	_Atomic uint64_t bytes_out;
	_Atomic uint64_t db_conns;       /* PGconns open (sessions and pools) */
	_Atomic uint64_t http_transfers; /* HTTP transfers alive */
	_Atomic uint64_t file_fast;      /* file requests done on the loop (fsfast) */
} stats_counters;

static inline void stats_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline void stats_sub(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_sub_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t stats_get(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* Answers a Stats request with every worker's counters; finishes `r`. */
void stats_handle(struct req *r);

#endif
