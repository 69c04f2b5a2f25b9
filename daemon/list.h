/*
 * list - an intrusive circular doubly-linked list, header only.
 *
 * The node is embedded in the owning struct; list_entry() recovers the
 * owner. A list and its nodes belong to whoever owns the containing
 * objects; no locking.
 */
#ifndef PORTER_LIST_H
#define PORTER_LIST_H

#include <stddef.h>

typedef struct list {
	struct list *prev, *next;
} list;

#define list_entry(node, type, member) ((type *)((char *)(node)-offsetof(type, member)))

/* Iterates safely against removal of the current node. */
#define list_for_each_safe(pos, tmp, head)                                                         \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                           \
	     (pos) = (tmp), (tmp) = (pos)->next)

static inline void list_init(list *l)
{
	l->prev = l->next = l;
}

static inline int list_empty(const list *l)
{
	return l->next == l;
}

static inline void list_push_back(list *head, list *node)
{
	node->prev = head->prev;
	node->next = head;
	head->prev->next = node;
	head->prev = node;
}

/* Unlinks `node` and leaves it as an empty list, so removing twice is safe. */
static inline void list_remove(list *node)
{
	node->prev->next = node->next;
	node->next->prev = node->prev;
	list_init(node);
}

/* Moves every node of `from` to the empty list `to`, in order; `from` is
 * left empty. */
static inline void list_move_all(list *to, list *from)
{
	list_init(to);
	if (list_empty(from))
		return;
	to->next = from->next;
	to->prev = from->prev;
	to->next->prev = to;
	to->prev->next = to;
	list_init(from);
}

#endif
