/*
 * chunk.c: see chunk.h.
 */
#include "chunk.h"

#include <stdlib.h>

void chunk_pool_init(struct chunk_pool *p, size_t max_free)
{
	p->free = NULL;
	p->n_free = 0;
	p->max_free = max_free;
	p->in_use = 0;
}

void chunk_pool_destroy(struct chunk_pool *p)
{
	while (p->free) {
		struct chunk *c = p->free;
		p->free = c->next_free;
		free(c);
	}
	p->n_free = 0;
}

struct chunk *chunk_get(struct chunk_pool *p)
{
	struct chunk *c = p->free;
	if (c) {
		p->free = c->next_free;
		p->n_free--;
	} else {
		c = malloc(sizeof(*c));
		if (!c)
			return NULL;
	}
	c->next_free = NULL;
	p->in_use++;
	return c;
}

void chunk_put(struct chunk_pool *p, struct chunk *c)
{
	if (!c)
		return;
	p->in_use--;
	/* Beyond max_free the memory goes back to the allocator, so a burst
	 * does not pin its peak forever. */
	if (p->n_free >= p->max_free) {
		free(c);
		return;
	}
	c->next_free = p->free;
	p->free = c;
	p->n_free++;
}

int outq_reserve(struct outq *q, struct chunk_pool *p)
{
	if (q->chunk)
		return 0;
	q->chunk = chunk_get(p);
	ENSURE_PTR(q->chunk, ENOMEM);
	q->off = q->len = 0;
	return 0;
}

void outq_consume(struct outq *q, struct chunk_pool *p, uint32_t n)
{
	q->off += n;
	if (q->off >= q->len)
		outq_release(q, p);
}

void outq_release(struct outq *q, struct chunk_pool *p)
{
	chunk_put(p, q->chunk);
	q->chunk = NULL;
	q->off = q->len = 0;
}
