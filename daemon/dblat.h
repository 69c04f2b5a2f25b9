/*
 * dblat - how long each statement text takes on one pool, learned from the
 * queries that ran there, so that only statements known to be fast share
 * a pipeline (a slow one would hold up every query queued behind it, and
 * every query of its sync point).
 *
 * A table of DBLAT_SLOTS entries (two ways per set), keyed by a 64-bit
 * hash of the statement's text, each keeping whether its last three runs
 * were fast. A statement is known to be fast when most of its last runs
 * (up to three) were: one run delayed on a busy machine does not take a
 * fast statement out of the pipelines, two slow runs out of three do. A statement evicted or
 * never seen is unknown, and unknown is treated as slow.
 *
 * Each pool (one uid, one conninfo) has its own table, so a statement that
 * one uid makes slow (or whose hash it collides with) costs only that
 * uid's own queries. Loop affinity: the pool's worker loop thread.
 */
#ifndef PORTER_DBLAT_H
#define PORTER_DBLAT_H

#include <stdint.h>

/* Entries per table; a power of two. */
#define DBLAT_SLOTS 128
/* A run of at most this many milliseconds is fast. A `SELECT 1` takes
 * under one (uv_now() ticks in milliseconds), but on a machine at load 10
 * its backend or porterd's loop waiting for a CPU made some runs take 5 to
 * 10 ms: the bound leaves room for that, and is still a tenth of what the
 * shortest query anyone calls slow takes. */
#define DBLAT_FAST_MS 20

typedef struct dblat_entry {
	uint64_t hash;     /* of the statement text; 0: empty slot */
	uint64_t used;     /* uv_now() of the last lookup or note, for eviction */
	uint32_t last_ms;  /* the last run's time */
	uint8_t fast_runs; /* bit i: the run i runs ago was fast (0: the last) */
	uint8_t runs;      /* runs noted, at most 3 */
} dblat_entry;

typedef struct dblat {
	dblat_entry e[DBLAT_SLOTS];
} dblat;

/* The key of statement text `sql` (never 0). Not NULL. */
uint64_t dblat_hash(const char *sql);

/* What the runs of a statement say of it. */
enum dblat_class {
	DBLAT_UNKNOWN, /* never seen (or evicted), or none of its last runs fast */
	DBLAT_MIXED,   /* some of its last runs fast, most not */
	DBLAT_FAST,    /* most of its last runs (up to three) fast */
};

/* What is known of the statement of `hash`. */
enum dblat_class dblat_class(dblat *t, uint64_t hash, uint64_t now);

/* Notes a run of the statement of `hash` that took `ms` milliseconds
 * (for one that timed out: the time it was given). */
void dblat_note(dblat *t, uint64_t hash, uint64_t ms, uint64_t now);

#endif
