/*
 * relay_user.c: moving bytes both ways once the connection is verified.
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
 */
#include "relay.h"

#include <string.h>
#include <sys/socket.h>

#include "log.h"

static void arm_recv(struct conn *c, int fd, enum uring_op op)
{
	struct io_uring_sqe *sqe = worker_sqe(c->w);
	io_uring_prep_recv(sqe, fd, NULL, WORKER_BUF_SIZE, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = WORKER_BGID;
	conn_prep(c, sqe, op);
}

void relay_arm_client_recv(struct conn *c)
{
	if (c->client_recv_armed || c->parked)
		return;
	arm_recv(c, c->cfd, OP_CLIENT_RECV);
	c->client_recv_armed = true;
}

void relay_arm_backend_recv(struct conn *c)
{
	if (c->backend_recv_armed || c->parked)
		return;
	arm_recv(c, c->bfd, OP_BACKEND_RECV);
	c->backend_recv_armed = true;
}

void relay_submit_shutdown(struct conn *c, int fd, enum uring_op op)
{
	struct io_uring_sqe *sqe = worker_sqe(c->w);
	io_uring_prep_shutdown(sqe, fd, SHUT_WR);
	conn_prep(c, sqe, op);
}

static void client_to_backend(struct conn *c)
{
	size_t n = 0;

	if (c->backend_shut || c->backend_send_armed)
		return;
	if (outq_pending(&c->to_backend) > 0) {
		conn_submit_backend_send(c);
		return;
	}
	if (c->client_eof) {
		tls_session_clear_input(&c->tls);
		conn_release_consumed_input(c);
	}
	if (relay_client_idle(c))
		return;
	if (outq_reserve(&c->to_backend, &c->w->chunks) < 0) {
		conn_close(c, CLOSE_NO_MEMORY);
		return;
	}
	enum tls_io r = tls_session_read(&c->tls, c->to_backend.chunk->data, CHUNK_SIZE, &n);
	/* Reading may have produced records of our own (a KeyUpdate answer). */
	conn_submit_client_send(c);
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
		conn_submit_backend_send(c);
		break;
	case TLS_IO_WANT_READ:
		outq_release(&c->to_backend, &c->w->chunks);
		conn_release_consumed_input(c);
		relay_arm_client_recv(c);
		break;
	case TLS_IO_WANT_WRITE:
		/* Our output chunk is full; the client send completion re-pumps. */
		outq_release(&c->to_backend, &c->w->chunks);
		break;
	case TLS_IO_CLOSED:
		outq_release(&c->to_backend, &c->w->chunks);
		c->client_eof = true;
		client_to_backend(c);
		break;
	case TLS_IO_ERROR:
	default:
		log_debug("conn %llu: TLS error from the client while relaying", (unsigned long long)c->id);
		conn_close(c, CLOSE_TLS_ERROR);
		break;
	}
}

static void backend_to_client(struct conn *c)
{
	if (c->client_shut || c->client_send_armed)
		return;
	if (outq_pending(&c->tls.out) > 0) {
		conn_submit_client_send(c);
		return;
	}
	if (c->backend_bid != NO_BUF) {
		size_t n = 0;
		uint8_t *data = worker_buf(c->w, (uint16_t)c->backend_bid) + c->backend_off;
		enum tls_io r = tls_session_write(&c->tls, data, c->backend_len - c->backend_off, &n);
		c->backend_off += (uint32_t)n;
		c->w->counters.bytes_backend_to_client += n;
		if (c->backend_off >= c->backend_len) {
			worker_buf_return(c->w, (uint16_t)c->backend_bid);
			c->backend_bid = NO_BUF;
		}
		if (r == TLS_IO_ERROR || r == TLS_IO_CLOSED) {
			conn_close(c, CLOSE_TLS_ERROR);
			return;
		}
		conn_submit_client_send(c);
		return;
	}
	relay_backend_idle(c);
}

bool relay_client_idle(struct conn *c)
{
	if (c->client_eof) {
		/* Everything the client sent is at the backend: forward the end. */
		relay_submit_shutdown(c, c->bfd, OP_BACKEND_SHUTDOWN);
		c->backend_shut = true;
		return true;
	}
	return c->client_recv_armed || c->want_client_recv;
}

void relay_backend_idle(struct conn *c)
{
	if (c->backend_eof) {
		/* Our close_notify first (user space: a record in tls.out;
		 * offloaded: a SENDMSG the kernel turns into one), then FIN. */
		if (!c->close_notify_queued) {
			if (c->ktls) {
				relay_ktls_close_notify(c);
			} else {
				c->close_notify_queued = true;
				(void)tls_session_shutdown(&c->tls);
				conn_submit_client_send(c);
			}
			if (c->client_send_armed)
				return; /* the completion brings us back here */
		}
		relay_submit_shutdown(c, c->cfd, OP_CLIENT_SHUTDOWN);
		c->client_shut = true;
		return;
	}
	if (c->backend_recv_armed || c->want_backend_recv)
		return;
	relay_arm_backend_recv(c);
}

void relay_pump(struct conn *c)
{
	/* Until the handoff is decided, user space finishes what it holds
	 * and nothing new is read or written (relay_ktls.c). */
	if (c->ktls_pending && !relay_ktls_handoff(c))
		return;
	if (c->state == CONN_CLOSING || c->state == CONN_FREE)
		return;
	if (c->ktls)
		relay_ktls_client_to_backend(c);
	else
		client_to_backend(c);
	if (c->state == CONN_CLOSING || c->state == CONN_FREE)
		return;
	if (c->ktls)
		relay_ktls_backend_to_client(c);
	else
		backend_to_client(c);
	if (c->state == CONN_CLOSING || c->state == CONN_FREE)
		return;
	if (c->backend_shut_done && c->client_shut_done) {
		conn_close(c, CLOSE_COMPLETE);
		return;
	}
	if (c->client_eof && !c->backend_eof)
		conn_set_state(c, CONN_HALF_CLOSED_CLIENT);
	else if (c->backend_eof && !c->client_eof)
		conn_set_state(c, CONN_HALF_CLOSED_BACKEND);
}
