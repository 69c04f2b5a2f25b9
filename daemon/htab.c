/* htab - intrusive chained hash table; see htab.h. */
#include "htab.h"

#include <stdlib.h>

static void grow(htab *t)
{
	size_t cap = t->cap ? t->cap * 2 : 64;
	htab_node **b = calloc(cap, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < t->cap; i++) {
		htab_node *e = t->b[i];
		while (e) {
			htab_node *next = e->next;
			size_t s = (size_t)(e->hash & (cap - 1));
			e->next = b[s];
			b[s] = e;
			e = next;
		}
	}
	free(t->b);
	t->b = b;
	t->cap = cap;
}

int htab_insert(htab *t, htab_node *node, uint64_t hash)
{
	if (t->n >= t->cap)
		grow(t);
	if (!t->cap)
		return -1;
	size_t s = (size_t)(hash & (t->cap - 1));
	node->hash = hash;
	node->next = t->b[s];
	t->b[s] = node;
	t->n++;
	return 0;
}

void htab_remove(htab *t, htab_node *node)
{
	htab_node **p = &t->b[node->hash & (t->cap - 1)];
	while (*p != node)
		p = &(*p)->next;
	*p = node->next;
	t->n--;
}

htab_node *htab_first(const htab *t, uint64_t hash)
{
	if (!t->cap)
		return NULL;
	htab_node *e = t->b[hash & (t->cap - 1)];
	while (e && e->hash != hash)
		e = e->next;
	return e;
}

htab_node *htab_next(const htab_node *node)
{
	htab_node *e = node->next;
	while (e && e->hash != node->hash)
		e = e->next;
	return e;
}

void htab_free(htab *t)
{
	free(t->b);
	*t = (htab){0};
}
