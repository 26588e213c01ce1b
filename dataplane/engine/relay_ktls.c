/*
 * relay_ktls.c: the relay on an offloaded socket (relay_ktls_ops, relay.h).
 *
 * The kernel does the record layer for both directions
 * (relay_handoff.c put the keys there), so the relay moves plaintext
 * between two plain sockets: a client receive lands in a provided buffer
 * that is sent to the backend as it is (OP_BACKEND_SEND_DIRECT), and a
 * backend receive is sent to the client as it is (OP_CLIENT_SEND_PLAIN;
 * the kernel makes the records). A record that is not application data
 * fails the receive with EIO; it is read with recvmsg and its control
 * message, and ktls_on_control() says what to do. EBADMSG is a record the
 * kernel could not authenticate: counted, connection aborted. Our
 * close_notify is an io_uring SENDMSG with the record-type control message
 * (OP_CLIENT_SEND_CONTROL), so a full send buffer never blocks the worker.
 */
#include "relay.h"

#include <string.h>
#include <sys/socket.h>

#include "conn_submit.h"
#include "ktls.h"
#include "log.h"

static void recv_error(struct conn *c, int res);

static void ktls_client_received(struct conn *c, enum uring_op op, int res, int bid)
{
	struct conn_dir *d = &c->dir[CONN_CLIENT];

	if (op != OP_CLIENT_RECV) {
		log_err("conn %llu: kTLS relay got a %s completion", (unsigned long long)c->id,
			uring_op_name(op));
		conn_mark_close(c, CLOSE_NO_MEMORY);
		return;
	}
	if (res > 0) {
		/* Plaintext: the kernel decrypted it. */
		d->bid = bid;
		d->len = (uint32_t)res;
		d->off = 0;
	} else if (res == 0) {
		d->flags |= DIR_F_EOF;
	} else if (res == -EIO || res == -EBADMSG) {
		recv_error(c, res);
	} else {
		conn_mark_close(c, CLOSE_CLIENT_ERROR);
	}
}

static void ktls_sent(struct conn *c, enum uring_op op, int res)
{
	switch (op) {
	case OP_CLIENT_SEND_PLAIN:
		c->dir[CONN_BACKEND].off += (uint32_t)res;
		c->w->counters.bytes_backend_to_client += (uint64_t)res;
		break;
	case OP_CLIENT_SEND_CONTROL:
		chunk_put(&c->w->chunks, c->ktls_ctl);
		c->ktls_ctl = NULL;
		break;
	case OP_BACKEND_SEND_DIRECT:
		c->dir[CONN_CLIENT].off += (uint32_t)res;
		c->w->counters.bytes_client_to_backend += (uint64_t)res;
		break;
	default:
		/* What user space queued before the handoff (the plaintext of
		 * the last record OpenSSL decrypted). */
		relay_user_ops.sent(c, op, res);
		break;
	}
}

static void client_to_backend(struct conn *c)
{
	struct conn_dir *d = &c->dir[CONN_CLIENT];

	if (c->dir[CONN_BACKEND].flags & (DIR_F_SHUT | DIR_F_SEND_ARMED))
		return;
	/* Plaintext OpenSSL decrypted before the handoff goes first. */
	if (outq_pending(&c->to_backend) > 0) {
		conn_submit_backend_queue(c);
		return;
	}
	if (d->bid != NO_BUF) {
		if (d->off < d->len) {
			conn_submit_direct(c, CONN_BACKEND);
			return;
		}
		worker_buf_return(c->w, (uint16_t)d->bid);
		d->bid = NO_BUF;
	}
	if (!relay_client_idle(c))
		conn_submit_recv(c, CONN_CLIENT);
}

/* Queue our close_notify through the kernel, once, when no client send is
 * in flight (the records must not interleave). */
static void ktls_close_notify(struct conn *c)
{
	if ((c->flags & CONN_F_CLOSE_NOTIFY) || (c->dir[CONN_CLIENT].flags & DIR_F_SEND_ARMED))
		return;
	c->flags |= CONN_F_CLOSE_NOTIFY;
	struct chunk *ch = chunk_get(&c->w->chunks);
	if (!ch) {
		if (ktls_send_close_notify(c->dir[CONN_CLIENT].fd) < 0)
			log_debug("conn %llu: no memory and no room for our close_notify",
				  (unsigned long long)c->id);
		return;
	}
	struct ktls_msg *m = (struct ktls_msg *)(void *)ch->data;
	ktls_txmsg_close_notify(m);
	conn_submit_control(c, m);
	c->ktls_ctl = ch;
}

static void backend_to_client(struct conn *c)
{
	struct conn_dir *b = &c->dir[CONN_BACKEND];

	if (c->dir[CONN_CLIENT].flags & (DIR_F_SHUT | DIR_F_SEND_ARMED))
		return;
	if (b->bid != NO_BUF) {
		if (b->off < b->len) {
			conn_submit_direct(c, CONN_CLIENT);
			return;
		}
		worker_buf_return(c->w, (uint16_t)b->bid);
		b->bid = NO_BUF;
	}
	relay_backend_idle(c);
}

static void ktls_pump(struct conn *c)
{
	client_to_backend(c);
	backend_to_client(c);
	relay_note_ends(c);
}

static void ktls_half_close(struct conn *c)
{
	/* Our close_notify first (a SENDMSG the kernel turns into a record),
	 * then FIN. */
	if (!(c->flags & CONN_F_CLOSE_NOTIFY)) {
		ktls_close_notify(c);
		if (c->dir[CONN_CLIENT].flags & DIR_F_SEND_ARMED)
			return; /* the completion brings us back here */
	}
	conn_submit_shutdown(c, CONN_CLIENT);
}

static bool ktls_flushed(struct conn *c)
{
	/* Our close_notify goes once the last send is done. */
	ktls_close_notify(c);
	return !(c->dir[CONN_CLIENT].flags & DIR_F_SEND_ARMED) && outq_pending(&c->tls.out) == 0;
}

static void ktls_release(struct conn *c)
{
	chunk_put(&c->w->chunks, c->ktls_ctl);
	c->ktls_ctl = NULL;
}

/* Read the record that failed the receive and act on it. */
static void recv_error(struct conn *c, int res)
{
	enum ktls_event why;
	uint8_t type = 0;
	int fd = c->dir[CONN_CLIENT].fd;

	if (res == -EBADMSG) {
		ktls_count_event(KTLS_EV_DECRYPT_ERROR);
		log_info("conn %llu: partner %s: a record failed authentication in the kernel "
			 "(corrupted or forged); connection aborted", (unsigned long long)c->id,
			 conn_partner_name(c));
		conn_mark_close(c, CLOSE_TLS_ERROR);
		return;
	}
	/* The receive side is idle here: to_backend is empty, so its chunk
	 * can take the record, and application data (a race) goes on as is. */
	if (outq_reserve(&c->to_backend, &c->w->chunks) < 0) {
		conn_mark_close(c, CLOSE_NO_MEMORY);
		return;
	}
	ssize_t n = ktls_recv_record(fd, c->to_backend.chunk->data, CHUNK_SIZE, MSG_DONTWAIT, &type);
	if (n == -EAGAIN) {
		outq_release(&c->to_backend, &c->w->chunks);
		return;
	}
	if (n < 0) {
		outq_release(&c->to_backend, &c->w->chunks);
		if (n == -EBADMSG) {
			recv_error(c, -EBADMSG);
			return;
		}
		log_debug("conn %llu: reading a control record: %s", (unsigned long long)c->id,
			  strerror((int)-n));
		conn_mark_close(c, CLOSE_CLIENT_ERROR);
		return;
	}
	if (type == KTLS_CT_APPLICATION_DATA) {
		c->to_backend.off = 0;
		c->to_backend.len = (uint32_t)n;
		c->w->counters.bytes_client_to_backend += (uint64_t)n;
		if (n == 0)
			c->dir[CONN_CLIENT].flags |= DIR_F_EOF;
		return;
	}
	enum ktls_action act = ktls_on_control(&c->kc, fd, type, c->to_backend.chunk->data,
					       (size_t)n, &why);
	outq_release(&c->to_backend, &c->w->chunks);
	switch (act) {
	case KTLS_ACT_CONTINUE:
		break;
	case KTLS_ACT_SHUTDOWN:
		if (why == KTLS_EV_KEYUPDATE_UNSUPPORTED) {
			/* What the client sends next is under a key this kernel
			 * cannot take: the stream toward the backend is cut, so
			 * it must not look like an orderly end. The client gets
			 * our close_notify (our key did not change). */
			log_info("conn %llu: partner %s: the client updated its TLS 1.3 keys and "
				 "this kernel cannot rekey kTLS (needs Linux 6.14); connection closed "
				 "(counted keyupdate_unsupported)", (unsigned long long)c->id,
				 conn_partner_name(c));
			conn_goodbye(c, CLOSE_TLS_ERROR);
			return;
		}
		c->dir[CONN_CLIENT].flags |= DIR_F_EOF;
		break;
	case KTLS_ACT_ABORT:
	default:
		log_info("conn %llu: partner %s: %s on the offloaded connection; closed",
			 (unsigned long long)c->id, conn_partner_name(c), ktls_event_name(why));
		conn_mark_close(c, CLOSE_TLS_ERROR);
		return;
	}
}

const struct relay_ops relay_ktls_ops = {
	.name = "ktls",
	.client_received = ktls_client_received,
	.backend_received = relay_backend_received,
	.sent = ktls_sent,
	.pump = ktls_pump,
	.half_close = ktls_half_close,
	.close_notify = ktls_close_notify,
	.flushed = ktls_flushed,
	.release = ktls_release,
};
