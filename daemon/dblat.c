/* dblat - how long the statements of a pool take; see dblat.h. */
#include "dblat.h"

#include <stddef.h>

uint64_t dblat_hash(const char *sql)
{
	/* FNV-1a: a collision only merges the runs of two statements of one
	 * pool, whose uid alone it can slow. */
	uint64_t h = 0xcbf29ce484222325ull;
	for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return h ? h : 1;
}

/* The two slots the set of `hash` holds. */
static dblat_entry *set_of(dblat *t, uint64_t hash)
{
	return &t->e[(hash >> 7) & (DBLAT_SLOTS - 2)];
}

static dblat_entry *find(dblat *t, uint64_t hash)
{
	dblat_entry *s = set_of(t, hash);
	return s[0].hash == hash ? &s[0] : s[1].hash == hash ? &s[1] : NULL;
}

enum dblat_class dblat_class(dblat *t, uint64_t hash, uint64_t now)
{
	dblat_entry *e = find(t, hash);
	if (!e)
		return DBLAT_UNKNOWN;
	e->used = now;
	unsigned mask = (1u << e->runs) - 1, fast = 0;
	for (unsigned bits = e->fast_runs & mask; bits; bits &= bits - 1)
		fast++;
	return 2 * fast > e->runs ? DBLAT_FAST : fast ? DBLAT_MIXED : DBLAT_UNKNOWN;
}

void dblat_note(dblat *t, uint64_t hash, uint64_t ms, uint64_t now)
{
	dblat_entry *e = find(t, hash);
	if (!e) {
		/* The way used longest ago makes room. */
		dblat_entry *s = set_of(t, hash);
		e = s[0].used <= s[1].used ? &s[0] : &s[1];
		e->hash = hash;
		e->runs = 0;
		e->fast_runs = 0;
	}
	e->fast_runs = (uint8_t)((e->fast_runs << 1) | (ms <= DBLAT_FAST_MS));
	if (e->runs < 3)
		e->runs++;
	e->last_ms = ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
	e->used = now;
}
