/*
 * conn.h: one client connection and its state machine.
 *
 * A connection goes ACCEPTED -> HANDSHAKE -> VERIFIED -> BACKEND_CONNECTING
 * -> PROXY_HEADER -> RELAY, then HALF_CLOSED_* as each direction finishes,
 * and CLOSING -> FREE. FLUSH_CLOSE sends the last bytes OpenSSL produced (an
 * alert, a close_notify) before closing. docs/architecture.md draws it.
 *
 * Event handlers (conn_on_*) record what a completion brought and call
 * conn_advance(), the one function that decides what happens next from the
 * state and the connection's flags. A connection counts its in-flight io_uring
 * requests and is freed only when that count is zero.
 */
#ifndef MTLSD_CONN_H
#define MTLSD_CONN_H

#include <linux/time_types.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "chunk.h"
#include "ktls.h"
#include "list.h"
#include "tls_session.h"
#include "verify.h"
#include "worker.h"

enum conn_state {
	CONN_FREE = 0,
	CONN_ACCEPTED,
	CONN_HANDSHAKE,
	CONN_VERIFIED,             /* handshake + policy passed; kTLS hook point */
	CONN_BACKEND_CONNECTING,
	CONN_PROXY_HEADER,         /* header queued toward the backend */
	CONN_RELAY,
	CONN_HALF_CLOSED_CLIENT,   /* client finished sending; backend -> client goes on */
	CONN_HALF_CLOSED_BACKEND,  /* backend finished sending; client -> backend goes on */
	CONN_FLUSH_CLOSE,          /* sending a final alert / close_notify, then close */
	CONN_CLOSING,              /* cancelling requests; freed when none in flight */
	CONN_STATE_MAX
};

const char *conn_state_name(enum conn_state s);

#define NO_BUF (-1)

struct conn {
	uint32_t idx;                  /* slot in the worker's table */
	uint32_t incarnation;          /* bumped on every reuse of the slot */
	enum conn_state state;
	struct worker *w;
	uint64_t id;                   /* process-wide, for logs and audit */
	unsigned inflight;             /* io_uring requests pointing at us */

	int cfd, bfd;                  /* client and backend sockets, -1 if none */
	struct generation *gen;        /* own reference, accept to free */
	const struct partner *partner; /* set once verified */
	struct tls_session tls;
	struct verify_result vr;
	bool holds_handshake_slot;     /* counted in engine.handshakes */
	struct source_ticket source;   /* ... and against its source (admission.h) */
	bool async_armed;              /* a poll on async_fd is in flight (ssl_async) */
	int async_fd;                  /* the paused engine job's wait fd, while armed */

	/* client -> backend */
	int client_bid;                /* ring buffer behind the TLS input slice */
	struct chunk *spill;           /* or the chunk it was copied to (conn_spill_input) */
	struct outq to_backend;        /* plaintext (or PROXY header) to send */
	/* A PROXY header larger than a chunk (a big client certificate with
	 * proxy_send_cert, up to the protocol's 64 KiB): its own allocation,
	 * sent before anything in to_backend and freed once sent. */
	struct {
		uint8_t *data;
		uint32_t off, len;
	} big_header;
	bool client_recv_armed, backend_send_armed;
	bool client_eof;               /* close_notify or FIN from the client */
	bool backend_shut;             /* SHUT_WR submitted toward the backend */
	bool backend_shut_done;        /* ... and completed */

	/* backend -> client */
	int backend_bid;               /* plaintext from the backend not yet encrypted */
	uint32_t backend_len, backend_off;
	bool backend_recv_armed, client_send_armed;
	bool backend_eof;
	bool close_notify_queued;      /* our close_notify is in tls.out */
	bool client_shut;              /* SHUT_WR submitted toward the client */
	bool client_shut_done;         /* ... and completed */

	/* kernel TLS (relay_ktls.c, docs/ktls.md) */
	struct ktls_conn kc;           /* record counting, secrets until the handoff */
	bool ktls_pending;             /* offload decided: waiting for a record boundary */
	bool ktls;                     /* both directions are in the kernel */
	bool ktls_filling;             /* an exact-size receive completes a partial record */
	uint32_t client_len, client_off; /* offloaded: plaintext in client_bid not yet sent */
	struct chunk *ktls_ctl;        /* our close_notify (struct ktls_msg) being sent */

	bool parked;                   /* on buf_waiters: a receive found no buffer */
	bool want_client_recv, want_backend_recv;

	struct sockaddr_storage peer, local;
	socklen_t peer_len, local_len;
	uint64_t hs_start_ns, last_active_ns;
	struct list_node timer;        /* on w->handshakes or w->established */
	struct list_node wait;         /* on w->buf_waiters */
	struct __kernel_timespec connect_timeout;
	enum close_reason close_reason;
};

/* Start a freshly accepted connection (fd set, gen referenced, peer known). */
void conn_start(struct conn *c);

/* Completion handlers. res is cqe->res; bid is the provided buffer or NO_BUF. */
void conn_on_client_recv(struct conn *c, int res, int bid);
void conn_on_client_send(struct conn *c, int res);
void conn_on_backend_connect(struct conn *c, int res);
void conn_on_backend_recv(struct conn *c, int res, int bid);
void conn_on_backend_send(struct conn *c, int res);
void conn_on_shutdown(struct conn *c, bool client_side, int res);
/* The async engine's wait fd is readable: resume the handshake. */
void conn_on_async_ready(struct conn *c, int res);

/* Release everything c owns (SSL, buffers, fds, generation). The worker
 * then puts the slot back on its free list. */
void conn_release(struct conn *c);

/* Decide and submit the next step for c from its state and flags. */
void conn_advance(struct conn *c);

/* Close now: cancel what is in flight, count reason. Safe to call twice. */
void conn_close(struct conn *c, enum close_reason reason);

/* Close a relaying connection with a close_notify first (drain timeout);
 * anything else is closed at once. */
void conn_close_gracefully(struct conn *c, enum close_reason reason);

/* Timeouts found by the worker's tick. */
void conn_handshake_timed_out(struct conn *c);

/* Buffers are back in the ring: re-arm the receive c was parked on. */
void conn_unpark(struct conn *c);

/* Drop one in-flight count (called by the dispatcher for every completion
 * of c, before the handler). */
static inline void conn_request_done(struct conn *c)
{
	c->inflight--;
}

/* Transition with a debug log line naming both states. */
void conn_set_state(struct conn *c, enum conn_state s);

/* Internals shared by conn.c, backend.c and relay_user.c. */
const char *conn_partner_name(const struct conn *c);
void conn_flush_close(struct conn *c, enum close_reason reason);
void conn_backend_connect(struct conn *c);
void relay_pump(struct conn *c);
void relay_arm_client_recv(struct conn *c);
void conn_submit_client_send(struct conn *c);
void conn_submit_backend_send(struct conn *c);
/* Release what holds the TLS input slice if OpenSSL consumed it all. */
void conn_release_consumed_input(struct conn *c);
/*
 * c is about to wait (backend send or connect) with ciphertext left in the
 * slice: copy the remainder into a chunk of its own and give the receive
 * buffer back, so slow backends cannot drain the worker's shared ring.
 * 0, or -ENOMEM (the slice then simply stays where it was).
 */
int conn_spill_input(struct conn *c) MUST_CHECK;
void conn_prep(struct conn *c, struct io_uring_sqe *sqe, enum uring_op op);
bool conn_relaying(const struct conn *c);

/*
 * Kernel TLS (relay_ktls.c). relay_ktls_handoff() runs while ktls_pending:
 * it drains what user space still holds and installs the keys; false while
 * it waits for a completion, true once the relay may go on (offloaded or
 * staying in user space). The rest is the relay on an offloaded socket.
 */
bool relay_ktls_handoff(struct conn *c);
void relay_ktls_filled(struct conn *c, int res);
void relay_ktls_client_to_backend(struct conn *c);
void relay_ktls_backend_to_client(struct conn *c);
/* A client receive failed with -EIO (a record that is not data) or
 * -EBADMSG (a record the kernel could not authenticate). */
void relay_ktls_recv_error(struct conn *c, int res);
void relay_ktls_client_sent(struct conn *c, int res);
void relay_ktls_backend_sent(struct conn *c, int res);
/* Queue our close_notify through the kernel (graceful close). */
void relay_ktls_close_notify(struct conn *c);
void relay_submit_shutdown(struct conn *c, int fd, enum uring_op op);
void relay_arm_backend_recv(struct conn *c);
/* The end of each direction, shared by both relays: nothing is pending
 * toward the other side. relay_client_idle: forwards the client's end, or
 * says a client receive is already armed or parked (true: nothing more to
 * do now; false: arm one). relay_backend_idle: forwards the backend's end
 * (our close_notify, then FIN) or arms the next backend receive. */
bool relay_client_idle(struct conn *c);
void relay_backend_idle(struct conn *c);

#endif
