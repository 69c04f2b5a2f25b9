/* arena - bump allocator for short-lived protobuf-c messages; see arena.h. */
#include "arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>

struct arena_block {
	arena_block *next;
	size_t cap;    /* bytes in data */
	size_t used;   /* bytes handed out */
	void *adopted; /* owned: memory taken by arena_adopt (cap 0), or NULL */
	alignas(max_align_t) unsigned char data[];
};

#define ALIGN_UP(n) (((n) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1))

static void *pb_alloc(void *data, size_t size)
{
	return arena_alloc(data, size);
}

static void pb_free(void *data, void *p)
{
	/* Everything goes back at once, in arena_reset or arena_free. */
	(void)data;
	(void)p;
}

void arena_init(arena *a, size_t block)
{
	a->base.alloc = pb_alloc;
	a->base.free = pb_free;
	a->base.allocator_data = a;
	a->head = NULL;
	a->block = block ? ALIGN_UP(block) : ARENA_BLOCK;
	a->lent_lo = a->lent_hi = NULL;
}

void arena_move(arena *dst, arena *src)
{
	arena_init(dst, src->block);
	dst->head = src->head;
	dst->lent_lo = src->lent_lo;
	dst->lent_hi = src->lent_hi;
	src->head = NULL;
	src->lent_lo = src->lent_hi = NULL;
}

/* Files block `nb` behind the current one, so that the rest of that block
 * still serves small pieces. */
static void file_behind(arena *a, arena_block *nb)
{
	arena_block *b = a->head;
	if (b) {
		nb->next = b->next;
		b->next = nb;
	} else {
		nb->next = NULL;
		a->head = nb;
	}
}

int arena_adopt(arena *a, void *mem)
{
	/* A block of no capacity: nothing is carved from it, and arena_reset
	 * never keeps it (it keeps only a block of the arena's size). */
	arena_block *nb = malloc(sizeof(*nb));
	if (!nb)
		return -1;
	nb->cap = nb->used = 0;
	nb->adopted = mem;
	file_behind(a, nb);
	return 0;
}

void arena_lend(arena *a, const void *p, size_t len)
{
	a->lent_lo = p;
	a->lent_hi = a->lent_lo + len;
}

int arena_lent(const ProtobufCAllocator *a, const void *p, size_t len)
{
	if (a->alloc != pb_alloc)
		return 0;
	const arena *ar = a->allocator_data;
	const unsigned char *q = p;
	return ar->lent_lo && q >= ar->lent_lo && q <= ar->lent_hi &&
	       len <= (size_t)(ar->lent_hi - q);
}

void *arena_alloc(arena *a, size_t size)
{
	if (size > SIZE_MAX - alignof(max_align_t) - sizeof(arena_block))
		return NULL;
	size = ALIGN_UP(size ? size : 1);
	arena_block *b = a->head;
	if (b && b->cap - b->used >= size) {
		void *p = b->data + b->used;
		b->used += size;
		return p;
	}
	/* A large piece gets a block of its own, filed behind the current
	 * one so that the rest of that block still serves small pieces. */
	int own = size > a->block / 4;
	size_t cap = own ? size : a->block;
	arena_block *nb = malloc(sizeof(*nb) + cap);
	if (!nb)
		return NULL;
	nb->cap = cap;
	nb->used = size;
	nb->adopted = NULL;
	if (own) {
		file_behind(a, nb);
	} else {
		nb->next = b;
		a->head = nb;
	}
	return nb->data;
}

void arena_reset(arena *a)
{
	arena_block *keep = NULL;
	arena_block *b = a->head;
	while (b) {
		arena_block *next = b->next;
		if (!keep && b->cap == a->block) {
			keep = b;
			keep->used = 0;
			keep->next = NULL;
		} else {
			free(b->adopted);
			free(b);
		}
		b = next;
	}
	a->head = keep;
	a->lent_lo = a->lent_hi = NULL;
}

void arena_free(arena *a)
{
	arena_reset(a);
	free(a->head);
	a->head = NULL;
}
