/*
 * dalloc - the daemon's allocation wrapper for the request path, with a
 * test-only failure hook.
 *
 * The request path (conn, req, ops, batch, cancel, stats) allocates through
 * dmalloc/dcalloc, and protobuf unpacking through the budgeted allocator
 * (palloc), which consults the same hook. Normally they are plain
 * malloc/calloc. When the environment variable PORTER_TEST_FAIL_ALLOC=N
 * (N >= 1) is set at start-up, one allocation through them in N fails (on
 * average, pseudo-randomly; PORTER_TEST_FAIL_SEED picks the sequence), so
 * tests can prove that each failure path answers, frees and never
 * crashes. The variables are read once by dalloc_init(); nothing else
 * ever enables the hook.
 *
 * Thread safe: each thread draws from its own generator; the failure
 * count is atomic.
 */
#ifndef PORTER_DALLOC_H
#define PORTER_DALLOC_H

#include <stddef.h>

/* Reads PORTER_TEST_FAIL_ALLOC; call once before workers start. Logs a
 * warning when injection is on. */
void dalloc_init(void);

/* 1 when the next allocation must fail (injection on and its turn). */
int dalloc_should_fail(void);

/* Allocations that have been made to fail so far. */
unsigned long long dalloc_failures(void);

/* malloc / calloc (zeroed memory; see dalloc.c for why not calloc
 * itself), or NULL when the hook says so. Free with free(). */
void *dalloc_malloc(size_t size);
void *dalloc_calloc(size_t n, size_t size);

#define dmalloc(size) dalloc_malloc(size)
#define dcalloc(n, size) dalloc_calloc((n), (size))

#endif
