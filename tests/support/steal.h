/*
 * steal - a theft race between two foreign clients (tenant.h) over state
 * that spans calls (a DB session, an HTTP stream): alice opens it on a raw
 * connection (rawc.h) and holds it; bob, who knows its id and her client
 * instance (neither is a secret he cannot learn), sends each of his tries
 * on it from four connections, so from both workers of a two-worker
 * porterd; then alice uses it again on her connection. The trust tests
 * assert that none of bob's tries worked and that alice's state is still
 * hers. Test process, main thread (the two sides run in children).
 */
#ifndef PORTER_STEAL_H
#define PORTER_STEAL_H

#include <stddef.h>
#include <stdint.h>

#include "porter.pb-c.h"

typedef struct th_steal {
	/* Set by the test; the requests live in its memory, which the
	 * children inherit, so they must stay until th_steal_run returns. */
	Porter__V1__Request *open;  /* alice's request that opens the state */
	Porter__V1__Request *again; /* hers once bob is done */
	Porter__V1__Request *tries; /* bob's, n_tries of them */
	size_t n_tries;
	/* The id of what `open` opened, read from its reply; 0: it failed. */
	uint64_t (*opened_id)(const Porter__V1__Response *r);
	/* Points `again` and `tries` at the state `id` (run in each child
	 * before it sends them). */
	void (*aim)(uint64_t id);
	int timeout_ms; /* for each side, and for the wait on the other */

	/* Results, written by the children. */
	uint64_t id;           /* what alice opened */
	int alice_pid;         /* her client instance is th_rc_instance(it) */
	volatile int opened;   /* alice holds it (id and alice_pid are set) */
	volatile int bob_done; /* bob has sent everything, or given up */
	int bob_tries;         /* bob's tries answered; -1: his child failed */
	int bob_ok;            /* of them, answered with status 0 */
	int again_status;      /* the status of alice's `again` */
	size_t again_body_len; /* the HTTP body bytes it carried, if any */
} th_steal;

/* A th_steal in zeroed shared memory (th_shared_alloc), asserted not NULL. */
th_steal *th_steal_new(void);

/* Runs bob (TH_UID_BOB) and alice (TH_UID_ALICE), both in group
 * TH_GID_PORTER, against the porterd at $PORTER_SOCKET, and returns once
 * both are done: alice's child's result, 0 when she opened, held and
 * asked again (her `again` answered). Bob's results are in `s`. */
int th_steal_run(th_steal *s);

/* th_steal_run, asserting that alice did all, that each of bob's tries
 * was answered from each of his four connections and none worked, and
 * that her `again` worked: her `what` (for the messages: "session") is
 * still hers. */
void th_steal_refused(th_steal *s, const char *what);

#endif
