/*
 * dbstmt - the prepared statements of one pooled PostgreSQL connection.
 * See dbstmt.h.
 */
#include "dbstmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "porter_errors.h"

/* FNV-1a over the text and the type OIDs. */
static uint64_t key_hash(const char *sql, const uint32_t *types, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ types[i]) * 0x100000001b3ull;
	return h ^ n;
}

static int same(const dbstmt *s, uint64_t h, const char *sql, const uint32_t *types, size_t n)
{
	return s->state != DBSTMT_FREE && s->hash == h && s->ntypes == n &&
	       (n == 0 || memcmp(s->types, types, n * sizeof(*types)) == 0) &&
	       strcmp(s->sql, sql) == 0;
}

static void slot_free(dbstmt *s)
{
	free(s->sql);
	free(s->types);
	memset(s, 0, sizeof(*s));
}

int dbstmt_init(dbstmt_cache *c, unsigned cap)
{
	memset(c, 0, sizeof(*c));
	if (cap == 0)
		return 0;
	c->slots = calloc(cap, sizeof(*c->slots));
	if (!c->slots)
		return PORTER_E_NOMEM;
	c->cap = cap;
	return 0;
}

void dbstmt_destroy(dbstmt_cache *c)
{
	dbstmt_clear(c);
	free(c->slots);
	memset(c, 0, sizeof(*c));
}

dbstmt *dbstmt_find(dbstmt_cache *c, const char *sql, const uint32_t *types, size_t n)
{
	if (!c->cap)
		return NULL;
	uint64_t h = key_hash(sql, types, n);
	for (unsigned i = 0; i < c->cap; i++) {
		dbstmt *s = &c->slots[i];
		if (same(s, h, sql, types, n)) {
			s->last_use = ++c->clock;
			return s;
		}
	}
	return NULL;
}

dbstmt *dbstmt_add(dbstmt_cache *c, const char *sql, const uint32_t *types, size_t n,
		   char evicted[DBSTMT_NAME])
{
	evicted[0] = 0;
	dbstmt *pick = NULL;
	for (unsigned i = 0; i < c->cap; i++) {
		dbstmt *s = &c->slots[i];
		if (s->state == DBSTMT_FREE) {
			pick = s;
			break;
		}
		if (s->state == DBSTMT_READY && (!pick || s->last_use < pick->last_use))
			pick = s;
	}
	if (!pick)
		return NULL;
	char *sql_copy = strdup(sql);
	uint32_t *types_copy = n ? malloc(n * sizeof(*types)) : NULL;
	if (!sql_copy || (n && !types_copy)) {
		free(sql_copy);
		free(types_copy);
		return NULL;
	}
	if (n)
		memcpy(types_copy, types, n * sizeof(*types));
	if (pick->state != DBSTMT_FREE) {
		memcpy(evicted, pick->name, DBSTMT_NAME);
		slot_free(pick);
	}
	pick->state = DBSTMT_PENDING;
	snprintf(pick->name, sizeof(pick->name), "porter_s%llu",
		 (unsigned long long)++c->next_name);
	pick->sql = sql_copy;
	pick->types = types_copy;
	pick->ntypes = n;
	pick->hash = key_hash(sql, types, n);
	pick->last_use = ++c->clock;
	return pick;
}

dbstmt *dbstmt_named(dbstmt_cache *c, const char *name)
{
	for (unsigned i = 0; i < c->cap; i++)
		if (c->slots[i].state != DBSTMT_FREE && strcmp(c->slots[i].name, name) == 0)
			return &c->slots[i];
	return NULL;
}

void dbstmt_drop(dbstmt_cache *c, dbstmt *s)
{
	(void)c;
	slot_free(s);
}

void dbstmt_clear(dbstmt_cache *c)
{
	for (unsigned i = 0; i < c->cap; i++)
		slot_free(&c->slots[i]);
}
