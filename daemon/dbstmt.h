/*
 * dbstmt - the prepared statements of one pooled PostgreSQL connection.
 *
 * A pooled query that PostgreSQL has already parsed and planned costs the
 * server about half as much as one it must parse again (Bind and Execute
 * instead of Parse, Bind, Describe and Execute), so each pooled connection
 * keeps its most recently used statements prepared under names of its own.
 * This module is the bookkeeping alone: which statement text and parameter
 * types have which name, and whether the server has confirmed it. The
 * protocol messages are sent by dbpipe.c.
 *
 * Loop affinity: one cache belongs to one connection, on its worker's loop.
 */
#ifndef PORTER_DBSTMT_H
#define PORTER_DBSTMT_H

#include <stddef.h>
#include <stdint.h>

/* Room for "porter_s" and a 64-bit counter. */
#define DBSTMT_NAME 32

/* Where one slot stands. */
enum dbstmt_state {
	DBSTMT_FREE,    /* unused */
	DBSTMT_PENDING, /* Parse sent; the server has not answered yet */
	DBSTMT_READY,   /* the server has it under `name` */
};

typedef struct dbstmt {
	enum dbstmt_state state;
	char name[DBSTMT_NAME]; /* unique for the life of the connection */
	char *sql;              /* owned */
	uint32_t *types;        /* owned; parameter type OIDs, `ntypes` of them */
	size_t ntypes;
	uint64_t hash;     /* of sql and types, to skip most comparisons */
	uint64_t last_use; /* cache clock when last found or added */
} dbstmt;

typedef struct dbstmt_cache {
	dbstmt *slots; /* owned; `cap` of them */
	unsigned cap;  /* 0: caching is off */
	uint64_t clock;
	uint64_t next_name;
} dbstmt_cache;

/* Sets up `c` with room for `cap` statements (0 turns caching off).
 * 0, or PORTER_E_NOMEM. */
int dbstmt_init(dbstmt_cache *c, unsigned cap);

/* Frees everything `c` holds. The server side is not touched. */
void dbstmt_destroy(dbstmt_cache *c);

/* The slot for `sql` with parameter types `types` (`n` of them), in any
 * state but FREE, or NULL. Marks it used. The slot stays owned by `c`. */
dbstmt *dbstmt_find(dbstmt_cache *c, const char *sql, const uint32_t *types, size_t n);

/*
 * Takes a slot for a new statement and puts it in PENDING under a fresh
 * name: a free slot, or else the least recently used READY one, whose old
 * name is copied to `evicted` (the caller must DEALLOCATE it on the server
 * before preparing anything else; "" when nothing was evicted). NULL when
 * caching is off, every slot is PENDING, or memory is short.
 */
dbstmt *dbstmt_add(dbstmt_cache *c, const char *sql, const uint32_t *types, size_t n,
		   char evicted[DBSTMT_NAME]);

/* The slot named `name`, in any state but FREE, or NULL. */
dbstmt *dbstmt_named(dbstmt_cache *c, const char *name);

/* Returns `s` to FREE (the server refused it, or it went stale). */
void dbstmt_drop(dbstmt_cache *c, dbstmt *s);

/* Forgets every statement (the server discarded them all). */
void dbstmt_clear(dbstmt_cache *c);

#endif
