/* fswatchseen - the temp names a watch instance saw end; see fswatchseen.h. */
#include "fswatchseen.h"

#include <stdlib.h>
#include <sys/ioctl.h>

#include "htab.h"

/* A seen name not retired yet (its rename returned, tmpname_retire is
 * next): its place in the order is asked again at the next mark. */
#define SEEN_LIVE UINT64_MAX
/* How much longer than tmpname a full set takes retired names for a
 * client's (a name may end here just before tmpname_retire). */
#define FULL_SLACK_MS 1000

void fswatch_seen_before_read(fswatch_seen *s, int ifd)
{
	if (s->pending)
		return;
	/* The count first: every event of the names retired up to it is
	 * in the queue, or read, by the time FIONREAD measures it. */
	uint64_t count = tmpname_retired_count();
	int queued = 0;
	if (count == s->mark || ioctl(ifd, FIONREAD, &queued) < 0 || queued < 0)
		return;
	s->pending = 1;
	s->pend_seq = count;
	s->pend_end = s->offset + (uint64_t)queued;
}

/* Inserts into `tab` (`cap` slots, a free one left). */
static void put(struct fswatch_seen_slot *tab, size_t cap, uint64_t nonce, uint64_t seq)
{
	size_t i = (size_t)htab_mix(nonce) & (cap - 1);
	while (tab[i].seq && tab[i].nonce != nonce)
		i = (i + 1) & (cap - 1);
	tab[i].nonce = nonce;
	tab[i].seq = seq;
}

/* Whether the name of `nonce` is held. */
static int has(const fswatch_seen *s, uint64_t nonce)
{
	if (!s->cap)
		return 0;
	for (size_t i = (size_t)htab_mix(nonce) & (s->cap - 1); s->tab[i].seq;
	     i = (i + 1) & (s->cap - 1))
		if (s->tab[i].nonce == nonce)
			return 1;
	return 0;
}

/* Moves the held names into a table of `cap` slots (0: none), dropping
 * those the mark covers and those tmpname forgot: either way the name is
 * a client's without them. Out of memory, nothing changes (what is held
 * is taken for a client's all the same). */
static void rebuild(fswatch_seen *s, size_t cap)
{
	struct fswatch_seen_slot *tab = NULL;
	if (cap && !(tab = calloc(cap, sizeof(*tab))))
		return;
	size_t n = 0;
	for (size_t i = 0; i < s->cap; i++) {
		uint64_t seq = s->tab[i].seq;
		if (!seq)
			continue;
		if (seq == SEEN_LIVE) {
			enum tmpname_state st = tmpname_nonce_state(s->tab[i].nonce, &seq);
			if (st == TMPNAME_FOREIGN)
				continue;
			if (st == TMPNAME_LIVE)
				seq = SEEN_LIVE;
		}
		if (seq != SEEN_LIVE && seq <= s->mark)
			continue;
		if (n + 1 > cap / 2) {
			/* Only when growing: a prune keeps the size, whose
			 * half holds every name kept. */
			free(tab);
			return;
		}
		put(tab, cap, s->tab[i].nonce, seq);
		n++;
	}
	free(s->tab);
	s->tab = tab;
	s->cap = cap;
	s->n = n;
}

void fswatch_seen_at(fswatch_seen *s, uint64_t offset)
{
	if (!s->pending || offset < s->pend_end)
		return;
	s->pending = 0;
	s->mark = s->pend_seq;
	if (!s->n)
		return;
	/* Shrinks the table once it is mostly empty. */
	size_t cap = s->cap;
	size_t kept = 0;
	for (size_t i = 0; i < s->cap; i++)
		kept += s->tab[i].seq == SEEN_LIVE || s->tab[i].seq > s->mark;
	while (cap > 16 && kept * 8 < cap)
		cap /= 2;
	rebuild(s, kept ? cap : 0);
}

enum tmpname_state fswatch_seen_state(fswatch_seen *s, const char *name, uint64_t now_ms,
				      uint64_t *nonce, uint64_t *retired_ms)
{
	uint64_t seq = 0;
	enum tmpname_state st = tmpname_state(name, nonce, retired_ms, &seq);
	if (st == TMPNAME_FOREIGN)
		return st;
	if (st == TMPNAME_RETIRED && (seq <= s->mark || now_ms < s->full_until_ms))
		return TMPNAME_FOREIGN;
	return has(s, *nonce) ? TMPNAME_FOREIGN : st;
}

void fswatch_seen_ended(fswatch_seen *s, uint64_t nonce, uint64_t now_ms)
{
	uint64_t seq = 0;
	enum tmpname_state st = tmpname_nonce_state(nonce, &seq);
	if (st == TMPNAME_FOREIGN || (st == TMPNAME_RETIRED && seq <= s->mark) || has(s, nonce))
		return; /* a client's already */
	if (s->n + 1 > s->cap / 2 && s->n < FSWATCH_SEEN_MAX)
		rebuild(s, s->cap ? s->cap * 2 : 16);
	if (s->n >= FSWATCH_SEEN_MAX || s->n + 1 > s->cap / 2) {
		s->full_until_ms = now_ms + TMPNAME_RETAIN_MS + FULL_SLACK_MS;
		return;
	}
	put(s->tab, s->cap, nonce, st == TMPNAME_LIVE ? SEEN_LIVE : seq);
	s->n++;
}

void fswatch_seen_free(fswatch_seen *s)
{
	free(s->tab);
	s->tab = NULL;
	s->cap = s->n = 0;
}
