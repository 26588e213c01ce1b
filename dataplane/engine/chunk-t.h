/*
 * chunk-t.h: the types of output chunks and queues (chunk.h has the
 * functions and what they are for).
 */
#ifndef MTLSD_CHUNK_T_H
#define MTLSD_CHUNK_T_H

#include <stddef.h>
#include <stdint.h>

#define CHUNK_SIZE (16384 + 2048 + 256 + 1792) /* 20 KiB */

struct chunk {
	struct chunk *next_free;
	uint8_t data[CHUNK_SIZE];
};

struct chunk_pool {
	struct chunk *free;
	size_t n_free;
	size_t max_free;  /* keep at most this many idle chunks */
	size_t in_use;    /* handed out and not yet returned */
};

/*
 * A byte queue over at most one chunk: bytes [off, len) are waiting to be
 * sent. The chunk is released when the queue drains, so an empty queue owns
 * no memory.
 */
struct outq {
	struct chunk *chunk;
	uint32_t off, len;
};

#endif
