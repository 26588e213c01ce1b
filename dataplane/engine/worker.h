/*
 * worker.h: one event-loop thread of mtlsd.
 *
 * A worker owns an io_uring ring, a provided-buffer ring for receives, its
 * own SO_REUSEPORT listening socket per configured address, a table of
 * connections, and plain (non-atomic) counters. Workers share nothing but
 * the published generation and two process-wide atomic limits (concurrent
 * connections, handshakes in flight).
 *
 * io_uring completions are decoded in exactly one place, worker.c: the
 * 64-bit user_data packs the operation (8 bits), the connection's index in
 * the table (24 bits) and the connection's incarnation (32 bits), so a
 * completion that arrives for a slot which has since been reused is
 * recognised and dropped.
 */
#ifndef MTLSD_WORKER_H
#define MTLSD_WORKER_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "admission.h"
#include "guard.h"
#include "worker-t.h"

/* Names for logs and metrics labels (lib/string_table.h): the value, or
 * "unknown"; the reverse lookup gives -ENOENT for a name that is none. */
const char *uring_op_name(enum uring_op op);
int uring_op_from_name(const char *s);

static inline uint64_t ud_pack(enum uring_op op, uint32_t index, uint32_t incarnation)
{
	return ((uint64_t)(op & 0xff) << 56) | ((uint64_t)(index & UD_INDEX_MAX) << 32) | incarnation;
}

static inline enum uring_op ud_op(uint64_t ud) { return (enum uring_op)(ud >> 56); }
static inline uint32_t ud_index(uint64_t ud) { return (uint32_t)(ud >> 32) & UD_INDEX_MAX; }
static inline uint32_t ud_incarnation(uint64_t ud) { return (uint32_t)ud; }

const char *close_reason_name(enum close_reason r);
int close_reason_from_name(const char *s);

extern struct engine engine;

/*
 * Prepare worker w (called from main before the thread starts): open its
 * listening sockets on addrs[0..n) (SO_REUSEPORT) and its wake-up eventfd.
 * Returns 0 or -errno, with err naming the address.
 */
int worker_open_listeners(struct worker *w, const struct cfg_addr *addrs, size_t n, char *err,
			  size_t errlen) MUST_CHECK;

/* Thread entry: init ring and tables, report through init_rc, run the loop
 * until drained, tear down. */
void *worker_main(void *arg);

/* Ask a worker to stop accepting and drain (any thread). */
void worker_request_drain(struct worker *w);

/* Sum counters across workers (read after the threads were joined, or
 * racily for metrics: plain loads of 64-bit values). */
void workers_sum_counters(struct worker *ws, unsigned n, struct worker_counters *sum);

/* --- used by conn.c / relay_user.c: submission helpers --------------------- */

/* An SQE, flushing the submission queue when full. Never NULL. */
struct io_uring_sqe *worker_sqe(struct worker *w);

static inline uint8_t *worker_buf(struct worker *w, uint16_t bid)
{
	return w->bufs + (size_t)bid * WORKER_BUF_SIZE;
}

/* Give a provided buffer back to the ring (its bytes were consumed). */
void worker_buf_return(struct worker *w, uint16_t bid);

/* Room for one client identity (contents undefined), recycled from the
 * worker's idle ones; NULL when out of memory. Give it back with
 * worker_identity_put (NULL is fine). */
struct cert_identity *worker_identity_get(struct worker *w);
void worker_identity_put(struct worker *w, struct cert_identity *id);

/* --- shared by worker.c and accept.c ---------------------------------- */

/* Arm the multishot accept on listener slot li. */
void worker_arm_accept(struct worker *w, uint32_t li);
/* An OP_ACCEPT completion. */
void worker_on_accept(struct worker *w, uint32_t li, int res, unsigned flags);
/* The live connection in slot idx with that incarnation, or NULL (stale). */
struct conn *worker_conn_lookup(struct worker *w, uint32_t idx, uint32_t inc);

/* A slot for a new connection, zeroed, FREE until conn_start(); NULL when
 * the table is full or out of memory. */
struct conn *worker_conn_alloc(struct worker *w);
/* A connection became FREE (its memory released): its slot goes back on
 * the free list with a new incarnation. */
void worker_conn_free(struct worker *w, struct conn *c);

/*
 * Run fn(c, arg) for every live connection of w (neither FREE nor
 * CLOSING), in table order. On w's own thread only: another thread gets
 * there through an OP_CONTROL message into w's ring (control.h). fn may
 * close c.
 */
void worker_for_each_conn(struct worker *w, void (*fn)(struct conn *c, void *arg), void *arg);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);

#endif
