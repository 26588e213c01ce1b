/*
 * relay_user.c: the relay in user-space TLS (relay_user_ops, relay.h).
 *
 * client -> backend: receive ciphertext into a provided buffer, hand it to
 * OpenSSL as the input slice, SSL_read one record's plaintext into the
 * to-backend chunk, send it; only when that send completed is the next
 * record read, and only when OpenSSL needs more input and the slice is
 * exhausted is the next client receive armed.
 * backend -> client: receive plaintext into a provided buffer, SSL_write it
 * into the client output chunk (the buffer goes back to the ring at once),
 * send it; the next backend receive is armed only when that send completed.
 *
 * So each direction holds at most one chunk and one provided buffer, and a
 * slow reader on either side stops the other side's receives: that is the
 * backpressure. Half-close: the end of one direction (close_notify or FIN
 * from the client, FIN from the backend) is forwarded as shutdown(SHUT_WR)
 * (preceded by our close_notify toward the client) while the other
 * direction goes on; the connection closes when both are finished.
 *
 * Every connection starts on this relay: the records of the handshake and
 * of a goodbye before the relay are its sends too.
 */
#include "relay.h"

#include <string.h>

#include "conn_submit.h"
#include "log.h"

static void user_client_received(struct conn *c, enum uring_op op, int res, int bid)
{
	struct conn_dir *d = &c->dir[CONN_CLIENT];

	if (op != OP_CLIENT_RECV) {
		/* Only the handoff submits anything else, and it waits for it. */
		log_err("conn %llu: user-space relay got a %s completion", (unsigned long long)c->id,
			uring_op_name(op));
		conn_mark_close(c, CLOSE_NO_MEMORY);
		return;
	}
	if (res > 0) {
		d->bid = bid;
		tls_session_set_input(&c->tls, worker_buf(c->w, (uint16_t)bid), (uint32_t)res);
	} else if (res == 0) {
		d->flags |= DIR_F_EOF;
	} else {
		conn_mark_close(c, CLOSE_CLIENT_ERROR);
	}
}

static void user_sent(struct conn *c, enum uring_op op, int res)
{
	switch (op) {
	case OP_CLIENT_SEND_RECORDS:
		outq_consume(&c->tls.out, &c->w->chunks, (uint32_t)res);
		break;
	case OP_BACKEND_SEND:
		outq_consume(&c->to_backend, &c->w->chunks, (uint32_t)res);
		break;
	default:
		log_err("conn %llu: user-space relay got a %s completion", (unsigned long long)c->id,
			uring_op_name(op));
		conn_mark_close(c, CLOSE_NO_MEMORY);
		break;
	}
}

static void client_to_backend(struct conn *c)
{
	size_t n = 0;

	if (c->dir[CONN_BACKEND].flags & (DIR_F_SHUT | DIR_F_SEND_ARMED))
		return;
	if (outq_pending(&c->to_backend) > 0) {
		conn_submit_backend_queue(c);
		return;
	}
	if (c->dir[CONN_CLIENT].flags & DIR_F_EOF) {
		tls_session_clear_input(&c->tls);
		conn_release_consumed_input(c);
	}
	if (relay_client_idle(c))
		return;
	if (outq_reserve(&c->to_backend, &c->w->chunks) < 0) {
		conn_mark_close(c, CLOSE_NO_MEMORY);
		return;
	}
	enum tls_io r = tls_session_read(&c->tls, c->to_backend.chunk->data, CHUNK_SIZE, &n);
	/* Reading may have produced records of our own (a KeyUpdate answer). */
	conn_submit_records(c);
	switch (r) {
	case TLS_IO_OK:
		c->to_backend.off = 0;
		c->to_backend.len = (uint32_t)n;
		c->w->counters.bytes_client_to_backend += n;
		conn_release_consumed_input(c);
		/* More records wait in the slice while the backend takes this
		 * one: keep them off the shared ring. */
		if (conn_spill_input(c) < 0)
			log_debug("conn %llu: no memory to spill the input slice; "
				  "it keeps its receive buffer", (unsigned long long)c->id);
		conn_submit_backend_queue(c);
		break;
	case TLS_IO_WANT_READ:
		outq_release(&c->to_backend, &c->w->chunks);
		conn_release_consumed_input(c);
		conn_submit_recv(c, CONN_CLIENT);
		break;
	case TLS_IO_WANT_WRITE:
		/* Our output chunk is full; the client send completion re-pumps. */
		outq_release(&c->to_backend, &c->w->chunks);
		break;
	case TLS_IO_CLOSED:
		outq_release(&c->to_backend, &c->w->chunks);
		c->dir[CONN_CLIENT].flags |= DIR_F_EOF;
		client_to_backend(c);
		break;
	case TLS_IO_ERROR:
	default:
		log_debug("conn %llu: TLS error from the client while relaying", (unsigned long long)c->id);
		conn_mark_close(c, CLOSE_TLS_ERROR);
		break;
	}
}

static void backend_to_client(struct conn *c)
{
	struct conn_dir *b = &c->dir[CONN_BACKEND];

	if (c->dir[CONN_CLIENT].flags & (DIR_F_SHUT | DIR_F_SEND_ARMED))
		return;
	if (outq_pending(&c->tls.out) > 0) {
		conn_submit_records(c);
		return;
	}
	if (b->bid != NO_BUF) {
		size_t n = 0;
		uint8_t *data = worker_buf(c->w, (uint16_t)b->bid) + b->off;
		enum tls_io r = tls_session_write(&c->tls, data, b->len - b->off, &n);
		b->off += (uint32_t)n;
		c->w->counters.bytes_backend_to_client += n;
		if (b->off >= b->len) {
			worker_buf_return(c->w, (uint16_t)b->bid);
			b->bid = NO_BUF;
		}
		if (r == TLS_IO_ERROR || r == TLS_IO_CLOSED) {
			conn_mark_close(c, CLOSE_TLS_ERROR);
			return;
		}
		conn_submit_records(c);
		return;
	}
	relay_backend_idle(c);
}

static void user_pump(struct conn *c)
{
	client_to_backend(c);
	backend_to_client(c);
	relay_note_ends(c);
}

static void user_half_close(struct conn *c)
{
	/* Our close_notify first (a record in tls.out), then FIN. */
	if (!(c->flags & CONN_F_CLOSE_NOTIFY)) {
		c->flags |= CONN_F_CLOSE_NOTIFY;
		(void)tls_session_shutdown(&c->tls);
		conn_submit_records(c);
		if (c->dir[CONN_CLIENT].flags & DIR_F_SEND_ARMED)
			return; /* the completion brings us back here */
	}
	conn_submit_shutdown(c, CONN_CLIENT);
}

static void user_close_notify(struct conn *c)
{
	if (tls_session_shutdown(&c->tls) == TLS_IO_OK)
		c->flags |= CONN_F_CLOSE_NOTIFY;
}

static bool user_flushed(struct conn *c)
{
	return !(c->dir[CONN_CLIENT].flags & DIR_F_SEND_ARMED) && outq_pending(&c->tls.out) == 0;
}

/* The SSL, the queues and the buffers are the connection's (conn_release). */
static void user_release(struct conn *c)
{
	(void)c;
}

const struct relay_ops relay_user_ops = {
	.name = "user",
	.client_received = user_client_received,
	.backend_received = relay_backend_received,
	.sent = user_sent,
	.pump = user_pump,
	.half_close = user_half_close,
	.close_notify = user_close_notify,
	.flushed = user_flushed,
	.release = user_release,
};
