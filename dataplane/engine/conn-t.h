/*
 * conn-t.h: the layout of one client connection (conn.h has the state
 * machine's functions, relay.h the relays').
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

#endif
