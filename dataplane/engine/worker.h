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
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "admission.h"
#include "chunk.h"
#include "config.h"
#include "guard.h"
#include "list.h"
#include "outcome.h"

struct conn;
struct generation;

/* What an io_uring request was for. Values fit in 8 bits. */
enum uring_op {
	OP_NONE = 0,
	OP_ACCEPT,          /* multishot accept; index = listener slot */
	OP_TICK,            /* the periodic timeout scan */
	OP_WAKE,            /* eventfd read: main asks for drain */
	OP_CLIENT_RECV,
	OP_CLIENT_SEND,
	OP_CLIENT_SHUTDOWN,
	OP_BACKEND_CONNECT,
	OP_CONNECT_TIMEOUT, /* the link timeout behind OP_BACKEND_CONNECT */
	OP_BACKEND_RECV,
	OP_BACKEND_SEND,
	OP_BACKEND_SHUTDOWN,
	OP_CANCEL,
	OP_CONTROL,         /* MSG_RING from the control thread (control.h) */
	OP_ASYNC_POLL,      /* poll on an async engine's wait fd (ssl_async) */
	OP_MAX
};

const char *uring_op_name(enum uring_op op);

#define UD_INDEX_BITS 24
#define UD_INDEX_MAX ((1u << UD_INDEX_BITS) - 1)

static inline uint64_t ud_pack(enum uring_op op, uint32_t index, uint32_t incarnation)
{
	return ((uint64_t)(op & 0xff) << 56) | ((uint64_t)(index & UD_INDEX_MAX) << 32) | incarnation;
}

static inline enum uring_op ud_op(uint64_t ud) { return (enum uring_op)(ud >> 56); }
static inline uint32_t ud_index(uint64_t ud) { return (uint32_t)(ud >> 32) & UD_INDEX_MAX; }
static inline uint32_t ud_incarnation(uint64_t ud) { return (uint32_t)ud; }

/* Why a connection ended; one counter each. */
enum close_reason {
	CLOSE_COMPLETE = 0,          /* both directions finished */
	CLOSE_HANDSHAKE_FAILED,
	CLOSE_HANDSHAKE_TIMEOUT,
	CLOSE_IDLE_TIMEOUT,
	CLOSE_BACKEND_CONNECT_FAILED,
	CLOSE_CLIENT_ERROR,          /* reset, send/recv error on the client side */
	CLOSE_BACKEND_ERROR,         /* reset, send/recv error on the backend side */
	CLOSE_TLS_ERROR,             /* bad record or alert after the handshake */
	CLOSE_DRAIN,                 /* still open when the drain timeout ended */
	CLOSE_NO_MEMORY,
	CLOSE_DROPPED,               /* `mtlsctl drop`: its certificate was compromised */
	CLOSE_HANDSHAKE_EVICTED,     /* closed under pressure to make room (admission.h) */
	CLOSE_PROXY_HEADER_TOO_LARGE, /* the PROXY v2 header would exceed 64 KiB */
	CLOSE_REASON_MAX
};

const char *close_reason_name(enum close_reason r);

struct worker_counters {
	uint64_t accepted;
	uint64_t refused_limit;            /* closed at accept: any limit (all below too) */
	uint64_t refused_source;           /* ... of which max_handshakes_per_source */
	uint64_t evicted[EVICT_CAUSE_MAX]; /* handshakes closed under pressure (admission.h) */
	uint64_t handshakes[HS_OUTCOME_MAX];
	uint64_t backend_connect_failed;
	uint64_t closes[CLOSE_REASON_MAX];
	uint64_t bytes_client_to_backend;  /* plaintext relayed */
	uint64_t bytes_backend_to_client;
	uint64_t recv_nobufs;              /* times a receive found the buffer ring empty */
	/* Handshakes by partner index x outcome, for /metrics (metrics.h).
	 * Row CFG_MAX_PARTNERS counts handshakes not attributed to a partner
	 * (no certificate, unknown CA), so the array stays bounded. */
	uint64_t partner_handshakes[CFG_MAX_PARTNERS + 1][HS_OUTCOME_MAX];
};

/* Provided receive buffers per worker (a power of two). Overridable at
 * build time so a test build can exercise -ENOBUFS with a handful. */
#ifndef WORKER_BUF_COUNT
#define WORKER_BUF_COUNT 1024
#endif
#define WORKER_BUF_SIZE 16384
#define WORKER_BGID 1
#define WORKER_TICK_MS 250
/* Table slots beyond max_connections, for evicted connections still closing. */
#define WORKER_EVICT_SLACK 1024

struct worker {
	unsigned id;
	pthread_t thread;
	int init_rc;                   /* result of worker_init, read by main */

	struct io_uring ring;
	bool ring_ok;
	struct io_uring_buf_ring *br;
	uint8_t *bufs;                 /* WORKER_BUF_COUNT * WORKER_BUF_SIZE */
	unsigned bufs_out;             /* buffers handed to us and not yet returned */

	int listen_fds[CFG_MAX_LISTEN];
	size_t n_listen;
	bool accept_paused[CFG_MAX_LISTEN]; /* re-armed by the next tick */
	int wake_fd;                   /* eventfd: main -> worker */
	uint64_t wake_buf;
	struct __kernel_timespec tick_ts;

	struct conn **conns;           /* table, allocated lazily per slot */
	uint32_t cap;
	uint32_t *free_idx;            /* stack of free slot indexes */
	uint32_t n_free;
	uint32_t live;                 /* connections not FREE */

	struct list_node handshakes;   /* FIFO by handshake start */
	struct list_node established;  /* LRU by last activity */
	struct list_node buf_waiters;  /* parked on -ENOBUFS */

	struct chunk_pool chunks;
	struct generation *gen;        /* cached reference to the published one */
	struct worker_counters counters;

	bool draining;
	uint64_t drain_deadline_ns;
	bool stop;
};

/* Process-wide state every worker reads. */
struct engine {
	atomic_uint conns;             /* connections alive (all workers) */
	atomic_uint handshakes;        /* handshakes in flight (all workers) */
	atomic_uint_fast64_t next_conn_id;
	int done_fd;                   /* eventfd: worker -> main, "I exited" */
	sem_t started;                 /* posted once per worker after its init */
};

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

/* Worker-level requests carry incarnation 0; connections start at 1. */
#define WORKER_INCARNATION 0

/* --- shared by worker.c and accept.c ---------------------------------- */

/* Arm the multishot accept on listener slot li. */
void worker_arm_accept(struct worker *w, uint32_t li);
/* An OP_ACCEPT completion. */
void worker_on_accept(struct worker *w, uint32_t li, int res, unsigned flags);
/* The live connection in slot idx with that incarnation, or NULL (stale). */
struct conn *worker_conn_lookup(struct worker *w, uint32_t idx, uint32_t inc);

/* Called when a CLOSING connection has nothing in flight any more. */
void worker_conn_free(struct worker *w, struct conn *c);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);

#endif
