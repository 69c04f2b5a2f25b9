/*
 * htab - an intrusive chained hash table of power-of-two size that doubles
 * past one entry per bucket, so lookups stay O(1) whatever the population.
 *
 * The node is embedded in the owner's struct (list_entry() recovers it)
 * and keeps its hash, so growing needs no callback. Equality is the
 * caller's: walk the chain of a hash with htab_first/htab_next and compare.
 * No locking: the owner of the table serialises access.
 */
#ifndef PORTER_HTAB_H
#define PORTER_HTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct htab_node {
	struct htab_node *next;
	uint64_t hash;
} htab_node;

typedef struct htab {
	htab_node **b; /* owned; NULL before the first insert */
	size_t cap;    /* buckets */
	size_t n;      /* nodes */
} htab;

/* splitmix64's finaliser: spreads small consecutive keys (uids) too. */
static inline uint64_t htab_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Links `node` (not in any table) under `hash`. Grows first when needed;
 * a failed allocation keeps the old size (longer chains, still correct).
 * Returns 0, or -1 when the very first bucket array cannot be allocated
 * (nothing linked). */
int htab_insert(htab *t, htab_node *node, uint64_t hash);

/* Unlinks `node`, which must be in `t`. */
void htab_remove(htab *t, htab_node *node);

/* The first node of `hash`'s chain that has that hash, or NULL; then
 * htab_next for the following ones. */
htab_node *htab_first(const htab *t, uint64_t hash);
htab_node *htab_next(const htab_node *node);

/* Frees the bucket array (not the nodes) and empties `t`. */
void htab_free(htab *t);

#endif
