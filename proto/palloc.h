/*
 * palloc - a protobuf-c allocator with a budget, for unpacking untrusted
 * input.
 *
 * protobuf-c enforces no limit of its own: a few wire bytes can ask for a
 * large message struct, and repeated fields multiply that. Unpacking with a
 * budget makes the daemon's memory per frame bounded by a multiple of the
 * frame's size; past the budget, unpack fails as on malformed input.
 *
 * Blocks come from malloc, so the result is freed with the default
 * allocator: free_unpacked(msg, NULL); or, when the budget is given an
 * arena, from that arena, and the message then ends with it (arena.h).
 * A budget is used by one thread.
 */
#ifndef PORTER_PALLOC_H
#define PORTER_PALLOC_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "arena.h"

/* How much larger than its wire size a message may grow once unpacked: a
 * small one up to PALLOC_FACTOR times (an empty sub-message is 2 bytes on
 * the wire and some 64 unpacked), a large one up to PALLOC_LARGE_FACTOR
 * times plus PALLOC_LARGE_SLACK, whichever is less. A large message grows
 * by little more than its bytes and strings, copied once; the only
 * sub-messages a client sends by the thousand are query parameters, at
 * most 65535 (some 4 MiB unpacked). With the factor alone, a 16 MiB frame
 * of empty HTTP headers was unpacked into 512 MiB. */
#define PALLOC_FACTOR 32u
#define PALLOC_SLACK (64u * 1024u)
#define PALLOC_LARGE_FACTOR 2u
#define PALLOC_LARGE_SLACK (8u * 1024u * 1024u)

typedef struct palloc_budget {
	ProtobufCAllocator base; /* pass &budget.base to unpack */
	size_t used;
	size_t limit;
	int nomem;    /* an allocation within the budget failed (out of memory) */
	arena *arena; /* not owned: where blocks come from; NULL for malloc */
} palloc_budget;

/* A budget for unpacking `wire_len` bytes: the lesser of
 * PALLOC_FACTOR * wire_len + PALLOC_SLACK and PALLOC_LARGE_FACTOR *
 * wire_len + PALLOC_LARGE_SLACK, drawn from `a` (not owned; NULL for
 * malloc). */
void palloc_budget_init(palloc_budget *b, size_t wire_len, arena *a);

/*
 * Test-only: when set (porterd sets it from PORTER_TEST_FAIL_ALLOC, see
 * daemon/dalloc.h), every budgeted allocation first asks it and fails when
 * it returns nonzero. NULL (the default) never fails. Set it once before
 * any thread unpacks.
 */
extern int (*palloc_fail_hook)(void);

#endif
