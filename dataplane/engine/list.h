/*
 * list.h: a minimal intrusive doubly linked list (after the Linux kernel's).
 *
 * The worker keeps its connections on lists ordered by deadline (handshakes
 * in start order, established connections in least-recently-active order)
 * and on a wait list for receive buffers. An intrusive node means moving a
 * connection to the tail on activity is O(1) and allocates nothing.
 */
#ifndef MTLSD_LIST_H
#define MTLSD_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
	struct list_node *prev, *next;
};

#define list_entry(node, type, member) \
	((type *)((char *)(node) - offsetof(type, member)))

static inline void list_init(struct list_node *head)
{
	head->prev = head->next = head;
}

static inline bool list_empty(const struct list_node *head)
{
	return head->next == head;
}

/* A node that is on no list points at itself (after list_init or list_del). */
static inline bool list_linked(const struct list_node *n)
{
	return n->next != n && n->next != NULL;
}

static inline void list_add_tail(struct list_node *head, struct list_node *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static inline void list_del(struct list_node *n)
{
	if (!list_linked(n))
		return;
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

static inline void list_move_tail(struct list_node *head, struct list_node *n)
{
	list_del(n);
	list_add_tail(head, n);
}

static inline struct list_node *list_first(const struct list_node *head)
{
	return list_empty(head) ? NULL : head->next;
}

#endif
