/*
 * relay.h: how a connection's bytes move, behind one table of operations.
 *
 * A connection points at one struct relay_ops (c->relay) and the state
 * machine (conn.c) calls it without knowing which it is, the way nginx's
 * ngx_ssl_handshake sets c->recv/c->send and HAProxy's struct xprt_ops
 * sits under a connection:
 *
 *   relay_user_ops     user-space TLS (relay_user.c): OpenSSL over the slice
 *                      BIO. Every connection starts on it.
 *   relay_handoff_ops  kernel TLS was decided (relay_handoff.c): user space
 *                      finishes what it holds, then the keys go to the
 *                      kernel. It switches the connection, once, to
 *   relay_ktls_ops     (relay_ktls.c): plaintext between two plain sockets,
 *                      or back to relay_user_ops if the kernel refused.
 *
 * relay_choose() picks the first table after the handshake; nothing else
 * ever decides between user space and the kernel. Every op runs on the
 * worker thread, inside a completion's dispatch (or a call from the tick):
 * an op that must close the connection marks it (conn_mark_close) and
 * returns, and the close happens when the dispatch ends (conn.h).
 *
 * Submissions (conn_submit.h) carry their own op code, so a completion is
 * handed to the op that knows what it completes.
 */
#ifndef MTLSD_RELAY_H
#define MTLSD_RELAY_H

#include <stdbool.h>

#include "conn.h"

struct relay_ops {
	const char *name;              /* for logs: "user", "handoff", "ktls" */

	/*
	 * A receive from the client completed, in RELAY or HALF_CLOSED_*
	 * (op OP_CLIENT_RECV: res > 0 bytes in ring buffer bid, 0 at the end
	 * of the stream, or -errno), or the handoff's exact-size receive
	 * (OP_CLIENT_FILL, no ring buffer; in any state). Records what
	 * arrived; conn.c advances the connection afterwards.
	 */
	void (*client_received)(struct conn *c, enum uring_op op, int res, int bid);

	/* A receive from the backend completed, in RELAY or HALF_CLOSED_*:
	 * res > 0 plaintext bytes in ring buffer bid, 0, or -errno. */
	void (*backend_received)(struct conn *c, int res, int bid);

	/*
	 * A send completed with res > 0 bytes; op says which of the relay's
	 * submissions (OP_CLIENT_SEND_* toward the client, OP_BACKEND_SEND*
	 * toward the backend). A failed send never gets here: conn.c closes.
	 */
	void (*sent)(struct conn *c, enum uring_op op, int res);

	/*
	 * Move what can move, both ways, and forward each side's end
	 * (relay_note_ends): called by conn_advance in RELAY and
	 * HALF_CLOSED_*, after every completion.
	 */
	void (*pump)(struct conn *c);

	/*
	 * Half-close: the backend has finished and everything it sent is at
	 * the client: end that direction, our close_notify first, then
	 * SHUT_WR toward the client (the client's end needs no TLS and is the
	 * same for every relay: relay_client_idle).
	 */
	void (*half_close)(struct conn *c);

	/* Close gracefully: queue our close_notify toward the client
	 * (CONN_F_CLOSE_NOTIFY once it is on its way). */
	void (*close_notify)(struct conn *c);

	/* FLUSH_CLOSE: whether nothing more is owed to the client, so the
	 * connection may close (sending what is still due first). */
	bool (*flushed)(struct conn *c);

	/* Teardown (conn_release): free what only this relay holds. */
	void (*release)(struct conn *c);
};

extern const struct relay_ops relay_user_ops;
extern const struct relay_ops relay_handoff_ops;
extern const struct relay_ops relay_ktls_ops;

/*
 * After a successful handshake: the relay for c, the kTLS handoff when
 * ktls_conn_decide() offloads this session (counted, and logged once per
 * reason, by kTLS), else user space (relay_handoff.c).
 */
void relay_choose(struct conn *c);

/* Before the handshake: hook what a relay will need onto the fresh SSL
 * (kTLS record counting). 0 or -ENOMEM. */
int relay_attach(struct conn *c) MUST_CHECK;

/* The connection ends (conn_release): its relay's release, and the hooks
 * relay_attach set come off the SSL, secrets cleansed. */
void relay_detach(struct conn *c);

/* ---- shared by the relays (relay.c) ------------------------------------ */

/* The backend_received of every relay: plaintext waits in dir[BACKEND]. */
void relay_backend_received(struct conn *c, int res, int bid);

/*
 * The end of the client's direction once nothing is pending toward the
 * backend: forward the client's end (SHUT_WR toward the backend) and
 * return true, or true when a client receive is armed or parked, or false:
 * the caller arms one.
 */
bool relay_client_idle(struct conn *c);

/* Nothing is pending toward the client: the backend's end goes on
 * (c->relay->half_close), or the next backend receive is armed. */
void relay_backend_idle(struct conn *c);

/* The end of a pump: close when both SHUT_WRs completed, else tell the
 * state machine which side ended. */
void relay_note_ends(struct conn *c);

#endif
