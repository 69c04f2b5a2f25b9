/*
 * fswatchseen - which of porterd's temp names (tmpname.h) an inotify
 * instance of fswatch.c has seen porterd finish with, so that later
 * events of such a name (a client who saw it naming a file of hers that
 * way) are reported, while porterd's own events of it still unread are
 * not.
 *
 * The instance's events come in the order they happened. Porterd's last
 * event of a temp name (its rename over the target, or its unlink) is
 * queued before the name is retired (tmpname_retire), and a client's
 * events of the name come after it. So a name's events are porterd's up
 * to the instance's reading that last event ("seen"), and a client's from
 * then on; and once the instance has read everything its queue held when
 * the count of retirements read k (a mark: the count, and the queue's
 * length in bytes by FIONREAD), every name retired up to k is a client's
 * for it, seen or not (its end may have been in a directory this instance
 * does not watch, or lost to an overflow).
 *
 * So a seen name is kept only until a mark taken after its retirement is
 * passed, not for a fixed time: the set holds the names that ended within
 * the last two marks' spans of the queue (a mark is taken on a wake-up
 * when none is pending and names were retired since the last one; a span
 * is at most what the kernel's queue holds, fs.inotify.max_queued_events,
 * of which a temp name's end is one event of 64 bytes at least), plus the
 * few whose rename has returned but which are not retired yet. At any rate
 * of atomic writes a uid drives, no retired name's event is taken for a
 * client's while porterd's last event of it is still unread. The set is
 * capped (FSWATCH_SEEN_MAX names, in a table grown as needed and kept at
 * most half full: 1 MiB at the cap); past it, which only a full kernel
 * queue twice over could bring, every retired name is taken for a
 * client's for TMPNAME_RETAIN_MS, showing more than it should, never less.
 *
 * A name given in another directory than the one watched is a client's
 * outright (tmpname_in_dir, fswatch.c). Left: one whose end the instance
 * missed otherwise (its watch began just after porterd's rename, before
 * the retirement; or its queue overflowed) is still taken for porterd's
 * in the events queued when the instance next reads, not after them.
 *
 * Loop thread of the instance; tmpname is thread safe.
 */
#ifndef PORTER_FSWATCHSEEN_H
#define PORTER_FSWATCHSEEN_H

#include <stddef.h>
#include <stdint.h>

#include "tmpname.h"

/* Names a set holds at most. */
#define FSWATCH_SEEN_MAX 32768u

typedef struct fswatch_seen {
	/* Open addressing by nonce: `cap` slots (a power of two, or 0),
	 * `n` used, at most half. A slot with seq 0 is free. */
	struct fswatch_seen_slot {
		uint64_t nonce;
		uint64_t seq; /* retired_seq, or SEEN_LIVE while not retired */
	} * tab;
	size_t cap, n;
	uint64_t mark;          /* names retired up to this count are a client's */
	int pending;            /* a mark is being read towards: */
	uint64_t pend_seq;      /* its count of retirements */
	uint64_t pend_end;      /* the queue's offset it ends at */
	uint64_t offset;        /* bytes read from the instance so far */
	uint64_t full_until_ms; /* the set was full: retired names are a client's */
} fswatch_seen;

/* Before reading the instance's descriptor `ifd`: takes a mark if none is
 * pending and names were retired since the last. */
void fswatch_seen_before_read(fswatch_seen *s, int ifd);

/* The event at byte `offset` of the instance's queue (counted from its
 * first read) is next: a mark it reached is taken as passed. */
void fswatch_seen_at(fswatch_seen *s, uint64_t offset);

/* What the instance takes the temp name `name` for, as tmpname_state
 * (with the name's nonce, and when it was retired), made TMPNAME_FOREIGN
 * for a name it saw end or one retired up to the mark. */
enum tmpname_state fswatch_seen_state(fswatch_seen *s, const char *name, uint64_t now_ms,
				      uint64_t *nonce, uint64_t *retired_ms);

/* The instance read porterd's last event of the name of `nonce`. */
void fswatch_seen_ended(fswatch_seen *s, uint64_t nonce, uint64_t now_ms);

/* Frees what `s` holds. */
void fswatch_seen_free(fswatch_seen *s);

#endif
