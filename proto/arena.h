/*
 * arena - a bump allocator for short-lived protobuf-c messages.
 *
 * protobuf-c unpacks a message with one allocation per message struct,
 * string, bytes field and repeated array, and frees it with as many
 * calls. For the small replies of a busy client that allocator traffic
 * costs more instructions than decoding the wire bytes does. An arena
 * hands out memory from blocks it owns and takes it all back at once:
 * messages unpacked into it are never passed to free_unpacked (the
 * arena's free is a no-op), they simply end with arena_reset() or
 * arena_free().
 *
 * An arena is used by one thread at a time; it is not thread safe.
 */
#ifndef PORTER_ARENA_H
#define PORTER_ARENA_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

/* Default size of the blocks an arena carves small pieces from. */
#define ARENA_BLOCK 8192u

typedef struct arena_block arena_block;

typedef struct arena {
	ProtobufCAllocator base; /* pass &arena.base to unpack */
	arena_block *head;       /* owned: newest block first; NULL when empty */
	size_t block;            /* size of the blocks small pieces come from;
				  * a piece over a quarter of it gets its own */
	/* Bytes that live as long as the arena's memory (arena_lend): a
	 * decoder may point into them rather than copy them. Both NULL when
	 * none. Not owned (they are inside memory the arena adopted). */
	const unsigned char *lent_lo, *lent_hi;
} arena;

/* Initialises an empty arena whose blocks are `block` bytes (0 for
 * ARENA_BLOCK); it allocates nothing until first used. */
void arena_init(arena *a, size_t block);

/*
 * Allocates `size` bytes aligned for any type, or NULL when out of memory.
 * The memory is valid until the next arena_reset() or arena_free().
 */
void *arena_alloc(arena *a, size_t size);

/* Takes back everything allocated; keeps one block of the arena's block
 * size for the next use and frees the rest. */
void arena_reset(arena *a);

/* Frees every block; the arena is empty and may be used again. */
void arena_free(arena *a);

/*
 * Takes `mem` (from malloc, not NULL) as the arena's: it is freed with the
 * arena's other memory, by arena_reset or arena_free. 0, or -1 when out of
 * memory (then `mem` stays the caller's).
 */
int arena_adopt(arena *a, void *mem);

/* A bytes field at least this large is used in place when the arena it
 * is unpacked into lent the bytes it lies in; smaller ones are copied,
 * which costs less than lending them. */
#define ARENA_LEND_MIN (64 * 1024u)

/*
 * Declares that the `len` bytes at `p` live as long as the arena's memory
 * (they lie in memory it adopted), until the next arena_reset or
 * arena_free: decoders unpacking into it may then point a large bytes
 * field into them instead of copying it (arena_lent). One range at a time;
 * a later call replaces it.
 */
void arena_lend(arena *a, const void *p, size_t len);

/*
 * Whether `a` is an arena's allocator (&arena.base) whose lent range holds
 * the `len` bytes at `p`: a decoder unpacking into it may then use them in
 * place. Any other allocator (malloc's, a budget wrapping an arena) never
 * has a lent range.
 */
int arena_lent(const ProtobufCAllocator *a, const void *p, size_t len);

/* Moves everything `src` holds to `dst` (initialised like `src`), leaving
 * `src` empty: how a message unpacked into a local arena passes to the
 * object that keeps it. Nothing may be allocated from `src` meanwhile. */
void arena_move(arena *dst, arena *src);

#endif
