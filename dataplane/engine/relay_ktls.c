/*
 * relay_ktls.c: the handoff to kernel TLS and the relay on an offloaded
 * socket.
 *
 * The handoff (docs/ktls.md, "the handoff in the connection"): once the
 * handshake and the policy passed and ktls_conn_decide() said yes, the
 * connection first finishes in user space what user space already holds:
 *  1. everything OpenSSL wrote (the TLS 1.3 session tickets) is sent, so
 *     the kernel's transmit sequence number continues after it;
 *  2. the client's records that arrived behind its Finished and are still
 *     in the input slice are decrypted by OpenSSL one at a time and their
 *     plaintext goes to the backend; a record cut by the end of a receive
 *     is completed by a receive of exactly the missing bytes (MSG_WAITALL
 *     into the spill chunk), so OpenSSL never holds a partial record;
 *  3. at that record boundary, with nothing left inside OpenSSL, the keys
 *     go to the kernel for both directions and the SSL object is freed.
 * Nothing new is read from either side until then, so no byte is
 * delivered twice or out of order.
 *
 * Offloaded, the relay moves plaintext between two plain sockets: a client
 * receive lands in a provided buffer that is sent to the backend as it is,
 * and a backend receive is sent to the client as it is (the kernel makes
 * the records). A record that is not application data fails the receive
 * with EIO; it is read with recvmsg and its control message, and
 * ktls_on_control() says what to do. EBADMSG is a record the kernel could
 * not authenticate: counted, connection aborted. Our close_notify is an
 * io_uring SENDMSG with the record-type control message, so a full send
 * buffer never blocks the worker.
 */
#include "relay.h"

#include <string.h>
#include <sys/socket.h>

#include "generation.h"
#include "log.h"

/* Bytes still missing from the first record of buf (0: it is complete). */
static size_t first_record_missing(const uint8_t *buf, size_t len)
{
	size_t rec;

	if (len < 5)
		return 5 - len;
	rec = 5 + ((size_t)buf[3] << 8 | buf[4]);
	return len >= rec ? 0 : rec - len;
}

/* The handoff will not happen: go on in user space, say why once. */
static bool stay_in_user_space(struct conn *c, const char *why)
{
	log_debug("conn %llu: staying in user-space TLS: %s", (unsigned long long)c->id, why);
	c->ktls_pending = false;
	return true;
}

/*
 * The first record of the slice is incomplete: move the slice to the start
 * of a chunk of its own and receive exactly the missing bytes behind it.
 * false: waiting for that receive; true: the relay goes on in user space.
 */
static bool fill_record(struct conn *c, size_t missing)
{
	uint32_t left = tls_session_input_left(&c->tls);

	if (c->client_bid != NO_BUF && conn_spill_input(c) < 0)
		return stay_in_user_space(c, "no memory to complete a partial record");
	if (!c->spill)
		return stay_in_user_space(c, "the partial record is not in a chunk");
	if ((size_t)left + missing > CHUNK_SIZE)
		/* Longer than any valid record: OpenSSL will refuse it. */
		return stay_in_user_space(c, "a record longer than TLS allows");
	/* The partial record must start the chunk: the receive appends right
	 * behind it (after drain_record the slice may start further in). */
	if (c->tls.in != c->spill->data || c->tls.in_off > 0) {
		memmove(c->spill->data, c->tls.in + c->tls.in_off, left);
		tls_session_set_input(&c->tls, c->spill->data, left);
	}
	struct io_uring_sqe *sqe = worker_sqe(c->w);
	io_uring_prep_recv(sqe, c->cfd, c->spill->data + left, missing, MSG_WAITALL);
	conn_prep(c, sqe, OP_CLIENT_RECV);
	c->client_recv_armed = true;
	c->ktls_filling = true;
	return false;
}

void relay_ktls_filled(struct conn *c, int res)
{
	c->ktls_filling = false;
	if (res < 0) {
		conn_close(c, CLOSE_CLIENT_ERROR);
		return;
	}
	if (res == 0) {
		/* The client ended inside a record: user space reports it. */
		c->client_eof = true;
		(void)stay_in_user_space(c, "the client closed inside a record");
	} else {
		c->tls.in_len += (uint32_t)res;
	}
	conn_advance(c);
}

/* Decrypt the slice's first (complete) record for the backend.
 * false: waiting for the backend send; true: handoff decided. */
static bool drain_record(struct conn *c)
{
	size_t n = 0;

	if (outq_reserve(&c->to_backend, &c->w->chunks) < 0) {
		conn_close(c, CLOSE_NO_MEMORY);
		return false;
	}
	enum tls_io r = tls_session_read(&c->tls, c->to_backend.chunk->data, CHUNK_SIZE, &n);
	conn_release_consumed_input(c);
	switch (r) {
	case TLS_IO_OK:
		c->to_backend.off = 0;
		c->to_backend.len = (uint32_t)n;
		c->w->counters.bytes_client_to_backend += n;
		conn_submit_backend_send(c);
		return false;
	case TLS_IO_WANT_READ:
		/* A record without application data (its effect, e.g. a
		 * KeyUpdate, is noted by the record counting): go on. */
		outq_release(&c->to_backend, &c->w->chunks);
		return relay_ktls_handoff(c);
	case TLS_IO_CLOSED:
		outq_release(&c->to_backend, &c->w->chunks);
		c->client_eof = true;
		return stay_in_user_space(c, "the client closed right after the handshake");
	case TLS_IO_WANT_WRITE:
		/* OpenSSL answered something (a KeyUpdate) and the output is
		 * full: rekeyed anyway, stay in user space. */
		outq_release(&c->to_backend, &c->w->chunks);
		return stay_in_user_space(c, "OpenSSL still has records to write");
	case TLS_IO_ERROR:
	default:
		outq_release(&c->to_backend, &c->w->chunks);
		conn_close(c, CLOSE_TLS_ERROR);
		return false;
	}
}

static bool install(struct conn *c)
{
	/* A KeyUpdate read above changed the keys the count is based on. */
	if (c->kc.rekeyed) {
		(void)ktls_conn_decide(&c->kc, c->gen->cfg.ktls); /* counts the reason */
		return stay_in_user_space(c, "the client updated its keys before the handoff");
	}
	int rc = ktls_conn_install(&c->kc, c->cfd);
	if (rc < 0) {
		if (c->kc.tx_offloaded) {
			/* Half in the kernel: neither side can go on. */
			log_warn("conn %llu: the kernel took the TLS transmit key but refused the "
				 "receive key (%s); connection closed", (unsigned long long)c->id,
				 strerror(-rc));
			conn_close(c, CLOSE_TLS_ERROR);
			return false;
		}
		return stay_in_user_space(c, strerror(-rc));
	}
	/* Nothing of the SSL is needed any more (the PROXY header is sent,
	 * the audit line written; a KeyUpdate needs only what kc keeps):
	 * free it all, the connection keeps its socket and its struct. */
	ktls_conn_detach(&c->kc);
	tls_session_free(&c->tls);
	c->ktls_pending = false;
	c->ktls = true;
	log_debug("conn %llu: kernel TLS for both directions", (unsigned long long)c->id);
	return true;
}

bool relay_ktls_handoff(struct conn *c)
{
	/* 1. The tickets (and anything else OpenSSL wrote) go first. */
	if (c->client_send_armed || c->client_recv_armed)
		return false;
	if (outq_pending(&c->tls.out) > 0) {
		conn_submit_client_send(c);
		return false;
	}
	/* 2. Whole records still in user space go through OpenSSL. */
	uint32_t left = tls_session_input_left(&c->tls);
	if (left > 0) {
		if (c->backend_send_armed)
			return false;
		if (outq_pending(&c->to_backend) > 0) {
			conn_submit_backend_send(c);
			return false;
		}
		size_t missing = first_record_missing(c->tls.in + c->tls.in_off, left);
		if (missing > 0)
			return fill_record(c, missing);
		return drain_record(c);
	}
	/* 3. A record boundary, nothing inside OpenSSL: the kernel's turn. */
	return install(c);
}

/* ---- the relay on an offloaded socket --------------------------------- */

static void send_direct(struct conn *c, int fd, int bid, uint32_t off, uint32_t len,
			enum uring_op op)
{
	struct io_uring_sqe *sqe = worker_sqe(c->w);
	io_uring_prep_send(sqe, fd, worker_buf(c->w, (uint16_t)bid) + off, len - off, MSG_NOSIGNAL);
	conn_prep(c, sqe, op);
}

void relay_ktls_client_to_backend(struct conn *c)
{
	if (c->backend_shut || c->backend_send_armed)
		return;
	/* Plaintext OpenSSL decrypted before the handoff goes first. */
	if (outq_pending(&c->to_backend) > 0) {
		conn_submit_backend_send(c);
		return;
	}
	if (c->client_bid != NO_BUF) {
		if (c->client_off < c->client_len) {
			send_direct(c, c->bfd, c->client_bid, c->client_off, c->client_len, OP_BACKEND_SEND);
			c->backend_send_armed = true;
			return;
		}
		worker_buf_return(c->w, (uint16_t)c->client_bid);
		c->client_bid = NO_BUF;
	}
	if (!relay_client_idle(c))
		relay_arm_client_recv(c);
}

void relay_ktls_close_notify(struct conn *c)
{
	if (c->close_notify_queued || c->client_send_armed)
		return;
	c->close_notify_queued = true;
	struct chunk *ch = chunk_get(&c->w->chunks);
	if (!ch) {
		if (ktls_send_close_notify(c->cfd) < 0)
			log_debug("conn %llu: no memory and no room for our close_notify",
				  (unsigned long long)c->id);
		return;
	}
	struct ktls_msg *m = (struct ktls_msg *)(void *)ch->data;
	ktls_txmsg_close_notify(m);
	struct io_uring_sqe *sqe = worker_sqe(c->w);
	io_uring_prep_sendmsg(sqe, c->cfd, &m->msg, MSG_NOSIGNAL);
	conn_prep(c, sqe, OP_CLIENT_SEND);
	c->client_send_armed = true;
	c->ktls_ctl = ch;
}

void relay_ktls_backend_to_client(struct conn *c)
{
	if (c->client_shut || c->client_send_armed)
		return;
	if (c->backend_bid != NO_BUF) {
		if (c->backend_off < c->backend_len) {
			send_direct(c, c->cfd, c->backend_bid, c->backend_off, c->backend_len, OP_CLIENT_SEND);
			c->client_send_armed = true;
			return;
		}
		worker_buf_return(c->w, (uint16_t)c->backend_bid);
		c->backend_bid = NO_BUF;
	}
	relay_backend_idle(c);
}

void relay_ktls_client_sent(struct conn *c, int res)
{
	if (c->ktls_ctl) {
		chunk_put(&c->w->chunks, c->ktls_ctl);
		c->ktls_ctl = NULL;
		return;
	}
	c->backend_off += (uint32_t)res;
	c->w->counters.bytes_backend_to_client += (uint64_t)res;
}

void relay_ktls_backend_sent(struct conn *c, int res)
{
	c->client_off += (uint32_t)res;
	c->w->counters.bytes_client_to_backend += (uint64_t)res;
}

/* Read the record that failed the receive and act on it. */
void relay_ktls_recv_error(struct conn *c, int res)
{
	enum ktls_event why;
	uint8_t type = 0;

	if (res == -EBADMSG) {
		ktls_count_event(KTLS_EV_DECRYPT_ERROR);
		log_info("conn %llu: partner %s: a record failed authentication in the kernel "
			 "(corrupted or forged); connection aborted", (unsigned long long)c->id,
			 conn_partner_name(c));
		conn_close(c, CLOSE_TLS_ERROR);
		return;
	}
	/* The receive side is idle here: to_backend is empty, so its chunk
	 * can take the record, and application data (a race) goes on as is. */
	if (outq_reserve(&c->to_backend, &c->w->chunks) < 0) {
		conn_close(c, CLOSE_NO_MEMORY);
		return;
	}
	ssize_t n = ktls_recv_record(c->cfd, c->to_backend.chunk->data, CHUNK_SIZE, MSG_DONTWAIT, &type);
	if (n == -EAGAIN) {
		outq_release(&c->to_backend, &c->w->chunks);
		conn_advance(c);
		return;
	}
	if (n < 0) {
		outq_release(&c->to_backend, &c->w->chunks);
		if (n == -EBADMSG) {
			relay_ktls_recv_error(c, -EBADMSG);
			return;
		}
		log_debug("conn %llu: reading a control record: %s", (unsigned long long)c->id,
			  strerror((int)-n));
		conn_close(c, CLOSE_CLIENT_ERROR);
		return;
	}
	if (type == KTLS_CT_APPLICATION_DATA) {
		c->to_backend.off = 0;
		c->to_backend.len = (uint32_t)n;
		c->w->counters.bytes_client_to_backend += (uint64_t)n;
		if (n == 0)
			c->client_eof = true;
		conn_advance(c);
		return;
	}
	enum ktls_action act = ktls_on_control(&c->kc, c->cfd, type, c->to_backend.chunk->data,
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
			conn_close_gracefully(c, CLOSE_TLS_ERROR);
			return;
		}
		c->client_eof = true;
		break;
	case KTLS_ACT_ABORT:
	default:
		log_info("conn %llu: partner %s: %s on the offloaded connection; closed",
			 (unsigned long long)c->id, conn_partner_name(c), ktls_event_name(why));
		conn_close(c, CLOSE_TLS_ERROR);
		return;
	}
	conn_advance(c);
}
