/* palloc - budgeted protobuf-c allocator; see palloc.h. */
#include "palloc.h"

#include <stdint.h>
#include <stdlib.h>

int (*palloc_fail_hook)(void);

static void *budget_alloc(void *data, size_t size)
{
	palloc_budget *b = data;
	if (palloc_fail_hook && palloc_fail_hook()) {
		b->nomem = 1;
		return NULL;
	}
	if (size > b->limit - b->used)
		return NULL;
	void *p = b->arena ? arena_alloc(b->arena, size) : malloc(size ? size : 1);
	if (p)
		b->used += size;
	else
		b->nomem = 1;
	return p;
}

static void budget_free(void *data, void *p)
{
	palloc_budget *b = data;
	if (!b->arena) /* an arena's blocks go back all at once */
		free(p);
}

/* n * f + add, or SIZE_MAX when that does not fit. */
static size_t scaled(size_t n, size_t f, size_t add)
{
	return n > (SIZE_MAX - add) / f ? SIZE_MAX : n * f + add;
}

void palloc_budget_init(palloc_budget *b, size_t wire_len, arena *a)
{
	b->arena = a;
	b->base.alloc = budget_alloc;
	b->base.free = budget_free;
	b->base.allocator_data = b;
	b->used = 0;
	b->nomem = 0;
	size_t small = scaled(wire_len, PALLOC_FACTOR, PALLOC_SLACK);
	size_t large = scaled(wire_len, PALLOC_LARGE_FACTOR, PALLOC_LARGE_SLACK);
	b->limit = small < large ? small : large;
}
