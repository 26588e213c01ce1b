/*
 * chunk.h: fixed-size output chunks, recycled through a per-worker free list.
 *
 * A chunk holds bytes on their way out of mtlsd: TLS records toward a client
 * (what the slice BIO collects) or plaintext toward a backend (what SSL_read
 * produced, or the PROXY v2 header). It is taken when a direction has
 * something to send and given back as soon as the send completed, so an
 * idle connection holds none. One chunk fits the largest TLS record
 * (16 KiB of payload plus the worst-case TLS 1.2 expansion) with room to
 * spare for a small handshake flight.
 *
 * The pool is owned by one worker thread: no locking.
 */
#ifndef MTLSD_CHUNK_H
#define MTLSD_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "chunk-t.h"
#include "guard.h"

void chunk_pool_init(struct chunk_pool *p, size_t max_free);
/* Free every idle chunk. Chunks still in use are the caller's bug. */
void chunk_pool_destroy(struct chunk_pool *p);

/* A chunk (contents undefined) or NULL when out of memory. */
struct chunk *chunk_get(struct chunk_pool *p);
/* Return a chunk; NULL is fine. */
void chunk_put(struct chunk_pool *p, struct chunk *c);

static inline uint32_t outq_pending(const struct outq *q)
{
	return q->len - q->off;
}

static inline uint32_t outq_room(const struct outq *q)
{
	return q->chunk ? CHUNK_SIZE - q->len : CHUNK_SIZE;
}

/* Make sure q has a chunk to append to. -ENOMEM when the pool cannot. */
int outq_reserve(struct outq *q, struct chunk_pool *p) MUST_CHECK;
/* n bytes of the pending range were sent; releases the chunk when drained. */
void outq_consume(struct outq *q, struct chunk_pool *p, uint32_t n);
/* Drop everything (connection teardown). */
void outq_release(struct outq *q, struct chunk_pool *p);

#endif
