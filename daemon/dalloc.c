/* dalloc - request-path allocations with a test-only failure hook; see dalloc.h. */
#include "dalloc.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "log.h"
#include "palloc.h"

static unsigned long every; /* 0: injection off */
static atomic_ulong counter;
static atomic_ullong failures;

int dalloc_should_fail(void)
{
	if (!every)
		return 0;
	if ((atomic_fetch_add(&counter, 1) + 1) % every != 0)
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

void *dalloc_calloc(size_t n, size_t size)
{
	return dalloc_should_fail() ? NULL : calloc(n, size);
}
