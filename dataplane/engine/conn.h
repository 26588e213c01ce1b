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

#include <stdbool.h>
#include <stdint.h>

#include "conn-t.h"
#include "worker.h"

/* The state's name in logs ("UNKNOWN" outside the enum), and back. */
const char *conn_state_name(enum conn_state s);
int conn_state_from_name(const char *s);

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

/* Internals of the connection, shared by conn.c, backend.c and the relays. */
const char *conn_partner_name(const struct conn *c);
void conn_flush_close(struct conn *c, enum close_reason reason);
void conn_backend_connect(struct conn *c);
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


#endif
