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

/* Moves everything `src` holds to `dst` (initialised like `src`), leaving
 * `src` empty: how a message unpacked into a local arena passes to the
 * object that keeps it. Nothing may be allocated from `src` meanwhile. */
void arena_move(arena *dst, arena *src);

#endif
