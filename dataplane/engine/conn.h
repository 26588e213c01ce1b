/*
 * conn.h: one client connection and its state machine.
 *
 * A connection goes HANDSHAKE -> BACKEND_CONNECTING -> PROXY_HEADER ->
 * RELAY, then HALF_CLOSED_* as each direction finishes, and CLOSING ->
 * FREE. FLUSH_CLOSE sends the last bytes owed to the client (an alert, a
 * close_notify) before closing. The transitions are a table (conn_fsm.c);
 * docs/architecture.md draws it.
 *
 * Everything that happens to a connection comes in through a few doors:
 * conn_dispatch() for its io_uring completions, conn_start() at accept,
 * conn_unpark() when receive buffers are back, and conn_close*() or
 * conn_handshake_timed_out() from the worker's tick, admission and the
 * control thread's requests. Inside, handlers record what happened and
 * call conn_advance(), the one function that decides the next step from
 * the state; a handler that wants the connection closed marks it
 * (conn_mark_close) and returns, and the door closes it on the way out. So
 * no function has to check whether the connection was closed under it.
 *
 * A connection counts its in-flight io_uring requests and is freed only
 * when that count is zero.
 */
#ifndef MTLSD_CONN_H
#define MTLSD_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "conn-t.h"
#include "guard.h"
#include "worker.h"

/* The state's name in logs ("UNKNOWN" outside the enum), and back. */
const char *conn_state_name(enum conn_state s);
int conn_state_from_name(const char *s);
/* The event's name ("unknown" outside the enum), and back. */
const char *conn_event_name(enum conn_event e);
int conn_event_from_name(const char *s);

/* ---- the doors (worker.c, accept.c, admission.c, control/) ------------- */

/* Start a freshly allocated connection (client fd set, gen referenced,
 * peer known): FREE -> HANDSHAKE. */
void conn_start(struct conn *c);

/*
 * One completion of c: op is what the request was for, res its cqe->res,
 * bid the provided buffer or NO_BUF. Drops c's in-flight count, runs the
 * handler, then closes c if a handler marked it and frees it once nothing
 * is in flight any more.
 */
void conn_dispatch(struct conn *c, enum uring_op op, int res, int bid);

/* Close now: cancel what is in flight, count reason. Ignored while
 * closing. */
void conn_close(struct conn *c, enum close_reason reason);

/* Close a relaying connection with a close_notify first (drain timeout);
 * anything else is closed at once. */
void conn_close_gracefully(struct conn *c, enum close_reason reason);

/* The handshake timeout found by the tick: audited, closed. */
void conn_handshake_timed_out(struct conn *c);

/* Buffers are back in the ring: re-arm the receive c was parked on. */
void conn_unpark(struct conn *c);

/* Release everything c owns (SSL, buffers, fds, generation). Called when
 * the slot goes back to the worker and at the worker's teardown. */
void conn_release(struct conn *c);

/* The partner c was attributed to, for logs; NULL when none. */
const char *conn_partner_name(const struct conn *c);

/* ---- for the connection's own files (conn*.c, backend.c, relay*.c) ----- */

/* Apply ev to c through the transition table (conn_fsm.c): a change of
 * state is logged and runs the new state's entry step. */
void conn_fire(struct conn *c, enum conn_event ev);

/* The next state for ev in state s, from the table (pure). */
enum conn_state conn_next_state(enum conn_state s, enum conn_event ev);

/* Decide and submit the next step for c from its state. */
void conn_advance(struct conn *c);

/* Mark c to close for reason (the first reason stands); the door that
 * runs closes it on the way out (conn_settle). From then on nothing more
 * is submitted or sent for c. */
void conn_mark_close(struct conn *c, enum close_reason reason);

/* The way out of every door: close c if marked, free it when closing with
 * nothing in flight. */
void conn_settle(struct conn *c);

/* Say goodbye: a relaying connection queues our close_notify and flushes
 * (FLUSH_CLOSE); anything else is marked to close. */
void conn_goodbye(struct conn *c, enum close_reason reason);

/* Send what is owed to the client (an alert, a close_notify), then close
 * for reason: FLUSH_CLOSE. */
void conn_flush_close(struct conn *c, enum close_reason reason);

/* In RELAY or HALF_CLOSED_*: bytes move. */
bool conn_relaying(const struct conn *c);

/* Activity: an established connection moves to the tail of the idle LRU. */
void conn_touch(struct conn *c);

/* Release what holds the TLS input slice if OpenSSL consumed it all. */
void conn_release_consumed_input(struct conn *c);

/*
 * c is about to wait (backend send or connect) with ciphertext left in the
 * slice: copy the remainder into a chunk of its own and give the receive
 * buffer back, so slow backends cannot drain the worker's shared ring.
 * 0, or -ENOMEM (the slice then simply stays where it was).
 */
int conn_spill_input(struct conn *c) MUST_CHECK;

/* The entry steps of the states the backend owns (backend.c). */
void conn_backend_connect(struct conn *c);
void conn_on_backend_connect(struct conn *c, int res);
/* A send of the big PROXY header completed with res > 0 bytes. */
void conn_backend_header_sent(struct conn *c, int res);

#endif
