/*
 * conn-t.h: the layout of one client connection (conn.h has the state
 * machine's functions, relay.h the relays').
 *
 * A connection has two sides, the client's socket and the backend's, and
 * keeps what is per side in struct conn_dir dir[2] (after liburing's
 * examples/proxy.c): a side's socket, what is in flight on it, whether it
 * ended, and the ring buffer it delivered that is not passed on yet.
 * What belongs to the connection as a whole is in the CONN_F_* flags.
 */
#ifndef MTLSD_CONN_T_H
#define MTLSD_CONN_T_H

#include <linux/time_types.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "admission-t.h"
#include "chunk-t.h"
#include "ktls-t.h"
#include "list.h"
#include "tls_session.h"
#include "verify.h"
#include "worker-t.h"

/*
 * Where a connection is (docs/architecture.md draws it; conn_fsm.c has the
 * transitions as a table). Each state says what the connection waits for.
 */
enum conn_state {
	CONN_FREE = 0,             /* the slot is unused */
	CONN_HANDSHAKE,            /* TLS handshake and verification */
	CONN_BACKEND_CONNECTING,   /* verified; connecting to the partner's backend */
	CONN_PROXY_HEADER,         /* connected; the PROXY header goes first */
	CONN_RELAY,                /* bytes move both ways (relay.h) */
	CONN_HALF_CLOSED_CLIENT,   /* client finished sending; backend -> client goes on */
	CONN_HALF_CLOSED_BACKEND,  /* backend finished sending; client -> backend goes on */
	CONN_FLUSH_CLOSE,          /* sending a final alert / close_notify, then close */
	CONN_CLOSING,              /* cancelling requests; freed when none in flight */
	CONN_STATE_MAX
};

/* What moves a connection from one state to another (conn_fsm.c). */
enum conn_event {
	CONN_EV_ACCEPTED = 0,      /* a slot was given to a new client socket */
	CONN_EV_VERIFIED,          /* handshake and policy passed */
	CONN_EV_BACKEND_CONNECTED,
	CONN_EV_HEADER_SENT,       /* nothing is left of the PROXY header */
	CONN_EV_CLIENT_END,        /* the client finished sending, the backend has not */
	CONN_EV_BACKEND_END,       /* the backend finished sending, the client has not */
	CONN_EV_FLUSH,             /* send what is owed to the client, then close */
	CONN_EV_CLOSE,             /* close now (the reason is in close_reason) */
	CONN_EV_RELEASED,          /* closing, and no request is in flight any more */
	CONN_EVENT_MAX
};

#define NO_BUF (-1)

/* The two sides; dir[] is indexed by them. */
enum conn_side {
	CONN_CLIENT = 0,
	CONN_BACKEND = 1,
};

/* struct conn_dir flags */
#define DIR_F_RECV_ARMED (1u << 0) /* a receive from this side is in flight */
#define DIR_F_SEND_ARMED (1u << 1) /* a send toward this side is in flight */
#define DIR_F_WANT_RECV  (1u << 2) /* a receive found the ring empty: parked (conn.c) */
#define DIR_F_EOF        (1u << 3) /* this side finished sending: FIN, or the client's close_notify */
#define DIR_F_SHUT       (1u << 4) /* nothing more goes toward this side: our SHUT_WR was
				    * submitted, or the connection is closing */
#define DIR_F_SHUT_DONE  (1u << 5) /* ... the SHUT_WR completed */

struct conn_dir {
	int fd;                        /* the side's socket, -1 if none */
	unsigned flags;                /* DIR_F_* */
	/* A ring buffer this side delivered whose bytes are not passed on
	 * yet, NO_BUF if none. Bytes [off, len) of it are left, except for
	 * the client's in user-space TLS: they are the TLS input slice
	 * (tls_session_input_left), and off/len are unused. */
	int bid;
	uint32_t off, len;
};

/* struct conn flags */
#define CONN_F_CLOSE        (1u << 0) /* marked to close: done at the end of the dispatch */
#define CONN_F_HS_SLOT      (1u << 1) /* counted in engine.handshakes (and source) */
#define CONN_F_ASYNC_ARMED  (1u << 2) /* a poll on async_fd is in flight (ssl_async) */
#define CONN_F_PARKED       (1u << 3) /* on buf_waiters: a receive found no buffer */
#define CONN_F_CLOSE_NOTIFY (1u << 4) /* our close_notify is queued or sent */

struct relay_ops;

struct conn {
	uint32_t idx;                  /* slot in the worker's table */
	uint32_t incarnation;          /* bumped on every reuse of the slot */
	enum conn_state state;
	unsigned flags;                /* CONN_F_* */
	struct worker *w;
	uint64_t id;                   /* process-wide, for logs and audit */
	unsigned inflight;             /* io_uring requests pointing at us */

	struct conn_dir dir[2];        /* [CONN_CLIENT], [CONN_BACKEND] */
	/* How bytes move (relay.h): user-space TLS from the first byte,
	 * switched once to kernel TLS when the handoff succeeds. */
	const struct relay_ops *relay;

	struct generation *gen;        /* own reference, accept to free */
	const struct partner *partner; /* set once verified */
	struct tls_session tls;        /* owns tls.out: the records toward the client */
	struct verify_result vr;
	/* The client certificate's identity, derived once when the handshake
	 * ends (conn_identify) for the audit line, the accounting event and
	 * the PROXY header, and given back once the header has it (or at
	 * once on a failed handshake): NULL before, after, and without a
	 * certificate. A worker's recycled memory (worker_identity_get). */
	struct cert_identity *client_id;
	struct source_ticket source;   /* the handshake counted against its source (admission.h) */
	int async_fd;                  /* the paused engine job's wait fd, while armed */

	struct chunk *spill;           /* the client's unread ciphertext, copied off the ring */
	struct outq to_backend;        /* plaintext (or PROXY header) to send */
	/* A PROXY header larger than a chunk (a big client certificate with
	 * proxy_send_cert, up to the protocol's 64 KiB): its own allocation,
	 * sent before anything in to_backend and freed once sent. */
	struct {
		uint8_t *data;
		uint32_t off, len;
	} big_header;

	/* kernel TLS (relay_handoff.c, relay_ktls.c, docs/ktls.md) */
	struct ktls_conn kc;           /* record counting, secrets until the handoff */
	struct chunk *ktls_ctl;        /* our close_notify (struct ktls_msg) being sent */

	struct sockaddr_storage peer, local;
	socklen_t peer_len, local_len;
	uint64_t hs_start_ns, last_active_ns;
	struct list_node timer;        /* on w->handshakes or w->established */
	struct list_node wait;         /* on w->buf_waiters */
	struct __kernel_timespec connect_timeout;
	enum close_reason close_reason;
};

#endif
