/* dalloc - request-path allocations with a test-only failure hook; see dalloc.h. */
#include "dalloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "palloc.h"

static unsigned long every; /* 0: injection off */
static uint64_t seed;
static atomic_ullong streams; /* per-thread generators handed out */
static atomic_ullong failures;

/*
 * Failures are pseudo-random (one in `every` on average), not strictly
 * every Nth: a fixed stride can line up with a request's fixed number of
 * allocations so that the same one fails every time and nothing else is
 * ever tried. Each thread has its own xorshift generator.
 */
int dalloc_should_fail(void)
{
	static _Thread_local uint64_t x;
	if (!every)
		return 0;
	if (!x)
		x = (seed ^ ((atomic_fetch_add(&streams, 1) + 1) * 0x9e3779b97f4a7c15ull)) | 1;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	if (x % every != 0)
		return 0;
	atomic_fetch_add(&failures, 1);
	return 1;
}

void dalloc_init(void)
{
	const char *s = getenv("PORTER_TEST_FAIL_ALLOC");
	if (!s || !*s)
		return;
	char *end;
	unsigned long n = strtoul(s, &end, 10);
	if (*end || n == 0)
		return;
	every = n;
	palloc_fail_hook = dalloc_should_fail;
	log_warn(
		"PORTER_TEST_FAIL_ALLOC=%lu: every %luth request-path allocation fails (test only)",
		n, n);
}

unsigned long long dalloc_failures(void)
{
	return atomic_load(&failures);
}

void *dalloc_malloc(size_t size)
{
	return dalloc_should_fail() ? NULL : malloc(size);
}

/*
 * malloc then memset, not calloc: glibc's calloc (2.36) bypasses the
 * per-thread cache and takes the arena path every time, which callgrind
 * counted at some 240 instructions per call on the request path, against
 * some 60 for a cached malloc and a memset of a few hundred bytes.
 */
void *dalloc_calloc(size_t n, size_t size)
{
	if (dalloc_should_fail() || (size && n > SIZE_MAX / size))
		return NULL;
	void *p = malloc(n * size);
	if (!p)
		return NULL;
	/* Without this barrier GCC turns malloc + memset back into calloc. */
	__asm__ volatile("" : : "r"(p) : "memory");
	memset(p, 0, n * size);
	return p;
}
