/*
 * relay_handoff.c: the choice between user space and the kernel, and the
 * handoff to kernel TLS (relay_handoff_ops, relay.h).
 *
 * Every connection's SSL gets kTLS's record counting before the handshake
 * (relay_attach); when the handshake and the policy passed,
 * ktls_conn_decide() says whether the session can be offloaded
 * (relay_choose). If so the connection relays through relay_handoff_ops
 * (docs/ktls.md, "the handoff in the connection"), which first finishes in
 * user space what user space already holds:
 *  1. everything OpenSSL wrote (the TLS 1.3 session tickets) is sent, so
 *     the kernel's transmit sequence number continues after it;
 *  2. the client's records that arrived behind its Finished and are still
 *     in the input slice are decrypted by OpenSSL one at a time and their
 *     plaintext goes to the backend; a record cut by the end of a receive
 *     is completed by a receive of exactly the missing bytes
 *     (OP_CLIENT_FILL, MSG_WAITALL into the spill chunk), so OpenSSL never
 *     holds a partial record;
 *  3. at that record boundary, with nothing left inside OpenSSL, the keys
 *     go to the kernel for both directions and the SSL object is freed.
 * Nothing new is read from either side until then, so no byte is
 * delivered twice or out of order. Then the connection switches, once, to
 * relay_ktls_ops, or to relay_user_ops when the handoff cannot happen (a
 * KeyUpdate came first, the kernel refused the key...): the reason is
 * logged and the relay goes on in user space.
 */
#include "relay.h"

#include <string.h>

#include "conn_submit.h"
#include "generation.h"
#include "ktls.h"
#include "log.h"

int relay_attach(struct conn *c)
{
	GUARD(ktls_conn_attach(&c->kc, c->tls.ssl));
	/* The record counting of the kTLS handoff sees every message, next to
	 * (not instead of) the session's own ClientHello watch. */
	if (c->kc.ssl)
		tls_session_observe(&c->tls, ktls_msg_observer);
	return 0;
}

void relay_detach(struct conn *c)
{
	if (c->relay)
		c->relay->release(c);
	ktls_conn_clear(&c->kc);
}

void relay_choose(struct conn *c)
{
	c->relay = ktls_conn_decide(&c->kc, c->gen->cfg.ktls) == KTLS_OFFLOAD ? &relay_handoff_ops
									  : &relay_user_ops;
}

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
	c->relay = &relay_user_ops;
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

	if (c->dir[CONN_CLIENT].bid != NO_BUF && conn_spill_input(c) < 0)
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
	conn_submit_fill(c, c->spill->data + left, missing);
	return false;
}

/* The fill receive completed (OP_CLIENT_FILL). */
static void filled(struct conn *c, int res)
{
	if (res < 0) {
		conn_mark_close(c, CLOSE_CLIENT_ERROR);
		return;
	}
	if (res == 0) {
		/* The client ended inside a record: user space reports it. */
		c->dir[CONN_CLIENT].flags |= DIR_F_EOF;
		(void)stay_in_user_space(c, "the client closed inside a record");
	} else {
		c->tls.in_len += (uint32_t)res;
	}
}

static bool handoff_step(struct conn *c);

/* Decrypt the slice's first (complete) record for the backend.
 * false: waiting for the backend send; true: handoff decided. */
static bool drain_record(struct conn *c)
{
	size_t n = 0;

	if (outq_reserve(&c->to_backend, &c->w->chunks) < 0) {
		conn_mark_close(c, CLOSE_NO_MEMORY);
		return false;
	}
	enum tls_io r = tls_session_read(&c->tls, c->to_backend.chunk->data, CHUNK_SIZE, &n);
	conn_release_consumed_input(c);
	switch (r) {
	case TLS_IO_OK:
		c->to_backend.off = 0;
		c->to_backend.len = (uint32_t)n;
		c->w->counters.bytes_client_to_backend += n;
		conn_submit_backend_queue(c);
		return false;
	case TLS_IO_WANT_READ:
		/* A record without application data (its effect, e.g. a
		 * KeyUpdate, is noted by the record counting): go on. */
		outq_release(&c->to_backend, &c->w->chunks);
		return handoff_step(c);
	case TLS_IO_CLOSED:
		outq_release(&c->to_backend, &c->w->chunks);
		c->dir[CONN_CLIENT].flags |= DIR_F_EOF;
		return stay_in_user_space(c, "the client closed right after the handshake");
	case TLS_IO_WANT_WRITE:
		/* OpenSSL answered something (a KeyUpdate) and the output is
		 * full: rekeyed anyway, stay in user space. */
		outq_release(&c->to_backend, &c->w->chunks);
		return stay_in_user_space(c, "OpenSSL still has records to write");
	case TLS_IO_ERROR:
	default:
		outq_release(&c->to_backend, &c->w->chunks);
		conn_mark_close(c, CLOSE_TLS_ERROR);
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
	int rc = ktls_conn_install(&c->kc, c->dir[CONN_CLIENT].fd);
	if (rc < 0) {
		if (c->kc.tx_offloaded) {
			/* Half in the kernel: neither side can go on. */
			log_warn("conn %llu: the kernel took the TLS transmit key but refused the "
				 "receive key (%s); connection closed", (unsigned long long)c->id,
				 strerror(-rc));
			conn_mark_close(c, CLOSE_TLS_ERROR);
			return false;
		}
		return stay_in_user_space(c, strerror(-rc));
	}
	/* Nothing of the SSL is needed any more (the PROXY header is sent,
	 * the audit line written; a KeyUpdate needs only what kc keeps):
	 * free it all, the connection keeps its socket and its struct. */
	ktls_conn_detach(&c->kc);
	tls_session_free(&c->tls);
	c->relay = &relay_ktls_ops;
	log_debug("conn %llu: kernel TLS for both directions", (unsigned long long)c->id);
	return true;
}

/* One step of the handoff: false while it waits for a completion, true
 * once c->relay is the relay to go on with. */
static bool handoff_step(struct conn *c)
{
	/* 1. The tickets (and anything else OpenSSL wrote) go first. */
	if (c->dir[CONN_CLIENT].flags & (DIR_F_SEND_ARMED | DIR_F_RECV_ARMED))
		return false;
	if (outq_pending(&c->tls.out) > 0) {
		conn_submit_records(c);
		return false;
	}
	/* 2. Whole records still in user space go through OpenSSL. */
	uint32_t left = tls_session_input_left(&c->tls);
	if (left > 0) {
		if (c->dir[CONN_BACKEND].flags & DIR_F_SEND_ARMED)
			return false;
		if (outq_pending(&c->to_backend) > 0) {
			conn_submit_backend_queue(c);
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

static void handoff_pump(struct conn *c)
{
	/* Until the handoff is decided, user space finishes what it holds
	 * and nothing new is read or written. */
	if (handoff_step(c))
		c->relay->pump(c);
}

static void handoff_client_received(struct conn *c, enum uring_op op, int res, int bid)
{
	if (op == OP_CLIENT_FILL)
		filled(c, res);
	else
		relay_user_ops.client_received(c, op, res, bid);
}

/* Until the keys are in the kernel, the rest is user space's. */
static void handoff_sent(struct conn *c, enum uring_op op, int res)
{
	relay_user_ops.sent(c, op, res);
}

static void handoff_half_close(struct conn *c)
{
	relay_user_ops.half_close(c);
}

static void handoff_close_notify(struct conn *c)
{
	relay_user_ops.close_notify(c);
}

static bool handoff_flushed(struct conn *c)
{
	return relay_user_ops.flushed(c);
}

static void handoff_release(struct conn *c)
{
	relay_user_ops.release(c);
}

const struct relay_ops relay_handoff_ops = {
	.name = "handoff",
	.client_received = handoff_client_received,
	.backend_received = relay_backend_received,
	.sent = handoff_sent,
	.pump = handoff_pump,
	.half_close = handoff_half_close,
	.close_notify = handoff_close_notify,
	.flushed = handoff_flushed,
	.release = handoff_release,
};
