/*
 * worker-t.h: the types of the event loop (worker.h has the functions).
 *
 * What an io_uring request was for (enum uring_op), why a connection ended
 * (enum close_reason), a worker's counters and the worker itself.
 */
#ifndef MTLSD_WORKER_T_H
#define MTLSD_WORKER_T_H

#include <liburing.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "admission-t.h"
#include "chunk-t.h"
#include "config.h"
#include "list.h"
#include "outcome.h"

struct cert_identity;
struct conn;
struct generation;

/*
 * What an io_uring request was for. Values fit in 8 bits. Every kind of
 * submission has its own op, so a completion says what it completes and
 * nothing is guessed from which buffers happen to be set.
 */
enum uring_op {
	OP_NONE = 0,
	OP_ACCEPT,              /* multishot accept; index = listener slot */
	OP_TICK,                /* the periodic timeout scan */
	OP_WAKE,                /* eventfd read: main asks for drain */
	OP_CLIENT_RECV,         /* receive into a ring buffer: ciphertext, or plaintext offloaded */
	OP_CLIENT_FILL,         /* handoff: exactly the bytes that complete a cut record */
	OP_CLIENT_SEND_RECORDS, /* TLS records OpenSSL wrote (tls.out) */
	OP_CLIENT_SEND_PLAIN,   /* offloaded: backend plaintext straight from its ring buffer */
	OP_CLIENT_SEND_CONTROL, /* offloaded: a control record (our close_notify), sendmsg */
	OP_CLIENT_SHUTDOWN,
	OP_BACKEND_CONNECT,
	OP_CONNECT_TIMEOUT,     /* the link timeout behind OP_BACKEND_CONNECT */
	OP_BACKEND_RECV,        /* receive into a ring buffer: plaintext */
	OP_BACKEND_SEND,        /* the to-backend queue: the PROXY header, plaintext OpenSSL read */
	OP_BACKEND_SEND_HEADER, /* a PROXY header too big for a chunk (big_header) */
	OP_BACKEND_SEND_DIRECT, /* offloaded: client plaintext straight from its ring buffer */
	OP_BACKEND_SHUTDOWN,
	OP_CANCEL,
	OP_CONTROL,             /* MSG_RING from the control thread (control.h) */
	OP_ASYNC_POLL,          /* poll on an async engine's wait fd (ssl_async) */
	OP_MAX
};

#define UD_INDEX_BITS 24
#define UD_INDEX_MAX ((1u << UD_INDEX_BITS) - 1)

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
/* Idle client identities a worker keeps for the next handshakes. */
#define WORKER_ID_CACHE 16

struct worker {
	unsigned id;
	pthread_t thread;
	int init_rc;                   /* result of worker_init, read by main */

	struct io_uring ring;
	bool ring_ok;
	/* What a connection marked to close prepares its requests in: never
	 * submitted (conn_submit.h). */
	struct io_uring_sqe sqe_sink;
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
	/* Client identities for the end of a handshake (conn_identify):
	 * recycled, so a handshake allocates none once the worker is warm. */
	struct cert_identity *id_free[WORKER_ID_CACHE];
	unsigned n_id_free;
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

/* Worker-level requests carry incarnation 0; connections start at 1. */
#define WORKER_INCARNATION 0

#endif
