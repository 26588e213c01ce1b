/*
 * conn.c: the connection state machine: accept, handshake, verification,
 * backend connect, PROXY header, and closing.
 *
 * The relay itself (both directions, half-close) is in relay.c. Handlers
 * here record what a completion brought, then call conn_advance(), which is
 * the one place that looks at the state and decides the next step.
 * Nothing here blocks: every socket operation is an io_uring request that
 * is counted in c->inflight, so a connection is freed only when the kernel
 * holds no pointer into it.
 */
#include "conn.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acct.h"
#include "audit.h"
#include "certinfo.h"
#include "generation.h"
#include "log.h"

static const char *const state_names[CONN_STATE_MAX] = {
	[CONN_FREE] = "FREE",
	[CONN_ACCEPTED] = "ACCEPTED",
	[CONN_HANDSHAKE] = "HANDSHAKE",
	[CONN_VERIFIED] = "VERIFIED",
	[CONN_BACKEND_CONNECTING] = "BACKEND_CONNECTING",
	[CONN_PROXY_HEADER] = "PROXY_HEADER",
	[CONN_RELAY] = "RELAY",
	[CONN_HALF_CLOSED_CLIENT] = "HALF_CLOSED_CLIENT",
	[CONN_HALF_CLOSED_BACKEND] = "HALF_CLOSED_BACKEND",
	[CONN_FLUSH_CLOSE] = "FLUSH_CLOSE",
	[CONN_CLOSING] = "CLOSING",
};

const char *conn_state_name(enum conn_state s)
{
	if ((unsigned)s >= CONN_STATE_MAX || !state_names[s])
		return "UNKNOWN";
	return state_names[s];
}

void conn_set_state(struct conn *c, enum conn_state s)
{
	if (c->state == s)
		return;
	if (log_get_level() >= LOG_LVL_DEBUG)
		log_debug("conn %llu: %s -> %s", (unsigned long long)c->id,
			  conn_state_name(c->state), conn_state_name(s));
	c->state = s;
}

void conn_prep(struct conn *c, struct io_uring_sqe *sqe, enum uring_op op)
{
	io_uring_sqe_set_data64(sqe, ud_pack(op, c->idx, c->incarnation));
	c->inflight++;
}

const char *conn_partner_name(const struct conn *c)
{
	if (c->partner)
		return c->partner->cfg->name;
	if (c->vr.partner >= 0 && (size_t)c->vr.partner < c->gen->n_partners)
		return c->gen->partners[c->vr.partner].cfg->name;
	return NULL;
}

static void release_handshake_slot(struct conn *c)
{
	if (!c->holds_handshake_slot)
		return;
	c->holds_handshake_slot = false;
	atomic_fetch_sub(&engine.handshakes, 1);
	admission_source_put(&c->source);
}

void conn_submit_client_send(struct conn *c)
{
	struct outq *q = &c->tls.out;
	if (c->client_send_armed || outq_pending(q) == 0)
		return;
	struct io_uring_sqe *sqe = worker_sqe(c->w);
	io_uring_prep_send(sqe, c->cfd, q->chunk->data + q->off, outq_pending(q), MSG_NOSIGNAL);
	conn_prep(c, sqe, OP_CLIENT_SEND);
	c->client_send_armed = true;
}

/* Give back what holds the TLS input slice (a ring buffer or a spill
 * chunk) once OpenSSL has consumed all of it. */
void conn_release_consumed_input(struct conn *c)
{
	if (tls_session_input_left(&c->tls) > 0)
		return;
	tls_session_clear_input(&c->tls);
	if (c->client_bid != NO_BUF) {
		worker_buf_return(c->w, (uint16_t)c->client_bid);
		c->client_bid = NO_BUF;
	}
	chunk_put(&c->w->chunks, c->spill);
	c->spill = NULL;
}

int conn_spill_input(struct conn *c)
{
	uint32_t left = tls_session_input_left(&c->tls);

	if (c->client_bid == NO_BUF || left == 0)
		return 0;
	struct chunk *ch = chunk_get(&c->w->chunks);
	ENSURE_PTR(ch, ENOMEM);
	memcpy(ch->data, c->tls.in + c->tls.in_off, left);
	worker_buf_return(c->w, (uint16_t)c->client_bid);
	c->client_bid = NO_BUF;
	c->spill = ch;
	tls_session_set_input(&c->tls, ch->data, left);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Start and handshake                                                 */

void conn_start(struct conn *c)
{
	c->hs_start_ns = c->last_active_ns = now_ns();
	list_add_tail(&c->w->handshakes, &c->timer);
	if (tls_session_init(&c->tls, c->gen->ssl_ctx, &c->w->chunks) < 0 ||
	    verify_attach(c->tls.ssl, &c->vr) < 0 || ktls_conn_attach(&c->kc, c->tls.ssl) < 0) {
		log_ossl(LOG_LVL_ERR, "conn %llu: cannot create the TLS session", (unsigned long long)c->id);
		conn_close(c, CLOSE_NO_MEMORY);
		return;
	}
	/* The record counting of the kTLS handoff sees every message, next to
	 * (not instead of) the session's own ClientHello watch. */
	if (c->kc.ssl)
		tls_session_observe(&c->tls, ktls_msg_observer);
	conn_set_state(c, CONN_HANDSHAKE);
	conn_advance(c);
}

static void audit_handshake_end(struct conn *c, enum hs_outcome outcome)
{
	struct audit_event ev;
	bool done = SSL_is_init_finished(c->tls.ssl);

	memset(&ev, 0, sizeof(ev));
	clock_gettime(CLOCK_REALTIME, &ev.ts);
	ev.conn_id = c->id;
	ev.peer = (const struct sockaddr *)&c->peer;
	ev.partner = conn_partner_name(c);
	ev.outcome = outcome;
	ev.reason = c->vr.detail[0] ? c->vr.detail : NULL;
	ev.leaf = c->vr.leaf;
	if (outcome == HS_OK) {
		ev.spiffe_id = c->vr.identity.spiffe_id;
		ev.cn = c->vr.identity.cn;
	}
	ev.tls_version = done ? SSL_get_version(c->tls.ssl) : NULL;
	ev.cipher = done ? SSL_get_cipher_name(c->tls.ssl) : NULL;
	ev.resumed = c->vr.resumed;
	ev.duration_us = (now_ns() - c->hs_start_ns) / 1000;
	audit_handshake(&ev);
	c->w->counters.handshakes[outcome < HS_OUTCOME_MAX ? outcome : HS_OTHER]++;
	c->w->counters.partner_handshakes[c->vr.partner >= 0 && (size_t)c->vr.partner < c->gen->n_partners
						  ? c->gen->partners[c->vr.partner].stat_slot : CFG_MAX_PARTNERS]
					 [outcome < HS_OUTCOME_MAX ? outcome : HS_OTHER]++;

	struct acct_event aev = {
		.outcome = outcome,
		.partner = c->vr.partner,
		.tls_version = done ? (uint16_t)SSL_version(c->tls.ssl) : 0,
		.cipher = done ? SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(c->tls.ssl)) : 0,
		.duration_ns = now_ns() - c->hs_start_ns,
		.partner_name = ev.partner,
	};
	/* The identity audit_handshake() just derived (certinfo_cached). */
	const struct cert_identity *id = certinfo_cached(c->id, c->vr.leaf);
	if (id)
		acct_event_set_cert(&aev, id);
	/* An accepted client is counted under the CN its backend is told. */
	if (outcome == HS_OK)
		aev.subject_cn = c->vr.identity.cn;
	acct_handshake_end(&aev);
}

/* Send what OpenSSL queued (an alert, a close_notify), then close. */
void conn_flush_close(struct conn *c, enum close_reason reason)
{
	c->close_reason = reason;
	conn_set_state(c, CONN_FLUSH_CLOSE);
	conn_submit_client_send(c);
	conn_advance(c);
}

static void handshake_failed(struct conn *c)
{
	verify_settle_failure(c->tls.ssl, c->tls.first_error, &c->vr);
	audit_handshake_end(c, c->vr.outcome);
	release_handshake_slot(c);
	conn_flush_close(c, CLOSE_HANDSHAKE_FAILED);
}

void conn_handshake_timed_out(struct conn *c)
{
	c->vr.outcome = HS_TIMEOUT;
	snprintf(c->vr.detail, sizeof(c->vr.detail), "handshake not finished after %u ms",
		 c->gen->cfg.handshake_timeout_ms);
	audit_handshake_end(c, HS_TIMEOUT);
	conn_close(c, CLOSE_HANDSHAKE_TIMEOUT);
}

static void handshake_succeeded(struct conn *c)
{
	enum hs_outcome o = verify_settle_success(c->tls.ssl, c->gen, &c->vr);

	audit_handshake_end(c, o);
	release_handshake_slot(c);
	if (o != HS_OK || c->vr.partner < 0 || (size_t)c->vr.partner >= c->gen->n_partners) {
		/* Verified chain but refused (e.g. a resumed session whose leaf
		 * expired since): say goodbye properly, relay nothing. */
		if (tls_session_shutdown(&c->tls) == TLS_IO_OK)
			c->close_notify_queued = true;
		conn_flush_close(c, CLOSE_HANDSHAKE_FAILED);
		return;
	}
	c->partner = &c->gen->partners[c->vr.partner];
	conn_set_state(c, CONN_VERIFIED);
	list_del(&c->timer);
	c->last_active_ns = now_ns();
	list_add_tail(&c->w->established, &c->timer);
	/* Kernel TLS: decided now, done by the relay once user space holds
	 * nothing more of the session (relay_ktls.c). The slice BIO keeps
	 * tls_session_input_left() exact for that. */
	c->ktls_pending = ktls_conn_decide(&c->kc, c->gen->cfg.ktls) == KTLS_OFFLOAD;
	/* Early data after the client's Finished waits for the backend: not
	 * in the shared ring. Out of memory: it stays there, still correct. */
	if (conn_spill_input(c) < 0)
		log_debug("conn %llu: no memory to spill the input slice; "
			  "it keeps its receive buffer", (unsigned long long)c->id);
	conn_backend_connect(c);
}

/*
 * An async engine (ssl_async; docs/hardware.md) paused the handshake inside
 * a signature: poll its wait fd through the ring, resume on completion.
 * The engine owns the fd; the connection only watches it.
 */
static void arm_async_poll(struct conn *c)
{
	int fd = tls_session_async_fd(&c->tls);

	if (fd < 0) {
		log_warn("conn %llu: the engine paused the handshake without a wait fd",
			 (unsigned long long)c->id);
		handshake_failed(c);
		return;
	}
	struct io_uring_sqe *sqe = worker_sqe(c->w);
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	conn_prep(c, sqe, OP_ASYNC_POLL);
	c->async_fd = fd;
	c->async_armed = true;
}

static void drive_handshake(struct conn *c)
{
	enum tls_io r = tls_session_handshake(&c->tls);

	conn_submit_client_send(c);
	conn_release_consumed_input(c);
	switch (r) {
	case TLS_IO_OK:
		handshake_succeeded(c);
		break;
	case TLS_IO_WANT_READ:
		relay_arm_client_recv(c);
		break;
	case TLS_IO_WANT_WRITE:
		/* The output chunk is full: the send completion drives us again. */
		break;
	case TLS_IO_WANT_ASYNC:
		arm_async_poll(c);
		break;
	case TLS_IO_CLOSED:
	case TLS_IO_ERROR:
	default:
		handshake_failed(c);
		break;
	}
}

void conn_on_async_ready(struct conn *c, int res)
{
	c->async_armed = false;
	if (res < 0)
		log_debug("conn %llu: async poll: %s; resuming anyway (the engine re-pauses if not ready)",
			  (unsigned long long)c->id, strerror(-res));
	conn_advance(c);
}

/* ------------------------------------------------------------------ */
/* Completion handlers                                                 */

bool conn_relaying(const struct conn *c)
{
	return c->state == CONN_RELAY || c->state == CONN_HALF_CLOSED_CLIENT ||
	       c->state == CONN_HALF_CLOSED_BACKEND;
}

/* Activity: move to the tail of the idle LRU. */
static void conn_touch(struct conn *c)
{
	if (c->state < CONN_VERIFIED || c->state >= CONN_FLUSH_CLOSE)
		return;
	c->last_active_ns = now_ns();
	list_move_tail(&c->w->established, &c->timer);
}

static void park(struct conn *c, bool client_side)
{
	c->w->counters.recv_nobufs++;
	if (client_side)
		c->want_client_recv = true;
	else
		c->want_backend_recv = true;
	if (!c->parked) {
		c->parked = true;
		list_add_tail(&c->w->buf_waiters, &c->wait);
	}
}

void conn_unpark(struct conn *c)
{
	c->parked = false;
	list_del(&c->wait);
	c->want_client_recv = c->want_backend_recv = false;
	conn_advance(c);
}

void conn_on_client_recv(struct conn *c, int res, int bid)
{
	c->client_recv_armed = false;
	if (c->ktls_filling) {
		/* The exact-size receive of the kTLS handoff (no buffer ring). */
		relay_ktls_filled(c, res);
		return;
	}
	if (res == -ENOBUFS) {
		park(c, true);
		return;
	}
	if (bid != NO_BUF && (res <= 0 || (c->state != CONN_HANDSHAKE && !conn_relaying(c)))) {
		worker_buf_return(c->w, (uint16_t)bid);
		bid = NO_BUF;
	}
	if (res > 0 && bid == NO_BUF && (c->state == CONN_HANDSHAKE || conn_relaying(c))) {
		log_err("conn %llu: receive completed without a buffer", (unsigned long long)c->id);
		conn_close(c, CLOSE_CLIENT_ERROR);
		return;
	}
	if (c->state == CONN_HANDSHAKE) {
		if (res <= 0) {
			/* FIN or reset in the middle of the handshake. */
			c->tls.first_error = 0;
			handshake_failed(c);
			return;
		}
		c->client_bid = bid;
		tls_session_set_input(&c->tls, worker_buf(c->w, (uint16_t)bid), (uint32_t)res);
		drive_handshake(c);
		return;
	}
	if (conn_relaying(c)) {
		if (res > 0) {
			c->client_bid = bid;
			if (c->ktls) {
				/* Plaintext: the kernel decrypted it. */
				c->client_len = (uint32_t)res;
				c->client_off = 0;
			} else {
				tls_session_set_input(&c->tls, worker_buf(c->w, (uint16_t)bid), (uint32_t)res);
			}
			conn_touch(c);
		} else if (res == 0) {
			c->client_eof = true;
		} else if (c->ktls && (res == -EIO || res == -EBADMSG)) {
			relay_ktls_recv_error(c, res);
			return;
		} else {
			conn_close(c, CLOSE_CLIENT_ERROR);
			return;
		}
	}
	conn_advance(c);
}

void conn_on_client_send(struct conn *c, int res)
{
	c->client_send_armed = false;
	if (res <= 0) {
		conn_close(c, c->state == CONN_FLUSH_CLOSE ? c->close_reason : CLOSE_CLIENT_ERROR);
		return;
	}
	if (c->ktls && (c->ktls_ctl || outq_pending(&c->tls.out) == 0))
		relay_ktls_client_sent(c, res); /* straight from a backend buffer */
	else
		outq_consume(&c->tls.out, &c->w->chunks, (uint32_t)res);
	conn_touch(c);
	conn_submit_client_send(c);
	conn_advance(c);
}

void conn_on_backend_recv(struct conn *c, int res, int bid)
{
	c->backend_recv_armed = false;
	if (res == -ENOBUFS) {
		park(c, false);
		return;
	}
	if (bid != NO_BUF && (res <= 0 || !conn_relaying(c))) {
		worker_buf_return(c->w, (uint16_t)bid);
		bid = NO_BUF;
	}
	if (conn_relaying(c)) {
		if (res > 0 && bid != NO_BUF) {
			c->backend_bid = bid;
			c->backend_len = (uint32_t)res;
			c->backend_off = 0;
			conn_touch(c);
		} else if (res == 0) {
			c->backend_eof = true;
		} else {
			conn_close(c, CLOSE_BACKEND_ERROR);
			return;
		}
	}
	conn_advance(c);
}

void conn_on_backend_send(struct conn *c, int res)
{
	c->backend_send_armed = false;
	if (res <= 0) {
		conn_close(c, CLOSE_BACKEND_ERROR);
		return;
	}
	if (c->big_header.data) {
		c->big_header.off += (uint32_t)res;
		if (c->big_header.off == c->big_header.len) {
			free(c->big_header.data);
			c->big_header.data = NULL;
		}
	} else if (c->ktls && outq_pending(&c->to_backend) == 0) {
		relay_ktls_backend_sent(c, res); /* straight from a client buffer */
	} else {
		outq_consume(&c->to_backend, &c->w->chunks, (uint32_t)res);
	}
	conn_touch(c);
	conn_advance(c);
}

void conn_on_shutdown(struct conn *c, bool client_side, int res)
{
	(void)res; /* ENOTCONN after a reset changes nothing: that side is done */
	if (client_side)
		c->client_shut_done = true;
	else
		c->backend_shut_done = true;
	conn_advance(c);
}

/* ------------------------------------------------------------------ */
/* The one place that decides the next step                            */

/* What is left to send toward the backend: a big PROXY header first. */
static uint32_t backend_pending(const struct conn *c)
{
	return c->big_header.data ? c->big_header.len - c->big_header.off : outq_pending(&c->to_backend);
}

void conn_submit_backend_send(struct conn *c)
{
	struct outq *q = &c->to_backend;
	if (c->backend_send_armed || backend_pending(c) == 0)
		return;
	const uint8_t *from = c->big_header.data ? c->big_header.data + c->big_header.off
						 : q->chunk->data + q->off;
	struct io_uring_sqe *sqe = worker_sqe(c->w);
	io_uring_prep_send(sqe, c->bfd, from, backend_pending(c), MSG_NOSIGNAL);
	conn_prep(c, sqe, OP_BACKEND_SEND);
	c->backend_send_armed = true;
}

void conn_advance(struct conn *c)
{
	switch (c->state) {
	case CONN_HANDSHAKE:
		if (!c->client_recv_armed && !c->parked && !c->async_armed)
			drive_handshake(c);
		break;
	case CONN_PROXY_HEADER:
		if (backend_pending(c) > 0) {
			conn_submit_backend_send(c);
		} else if (!c->backend_send_armed) {
			conn_set_state(c, CONN_RELAY);
			relay_pump(c);
		}
		break;
	case CONN_RELAY:
	case CONN_HALF_CLOSED_CLIENT:
	case CONN_HALF_CLOSED_BACKEND:
		relay_pump(c);
		break;
	case CONN_FLUSH_CLOSE:
		/* Offloaded: our close_notify goes once the last send is done. */
		if (c->ktls && !c->close_notify_queued && !c->client_send_armed)
			relay_ktls_close_notify(c);
		if (!c->client_send_armed && outq_pending(&c->tls.out) == 0)
			conn_close(c, c->close_reason);
		break;
	case CONN_CLOSING:
		if (c->inflight == 0)
			worker_conn_free(c->w, c);
		break;
	case CONN_FREE:
	case CONN_ACCEPTED:
	case CONN_VERIFIED:
	case CONN_BACKEND_CONNECTING:
		/* Waiting for a completion; nothing to decide. */
		break;
	default:
		log_err("conn %llu: advance in unexpected state %d", (unsigned long long)c->id, c->state);
		conn_close(c, CLOSE_NO_MEMORY);
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Closing                                                             */

void conn_close_gracefully(struct conn *c, enum close_reason reason)
{
	if (!conn_relaying(c) || c->close_notify_queued) {
		conn_close(c, reason);
		return;
	}
	/* The client gets a close_notify, so it can tell a shutdown from a
	 * truncation; the tick closes it for good if it does not read.
	 * Offloaded, the kernel makes the record (conn_advance, FLUSH_CLOSE). */
	if (!c->ktls && tls_session_shutdown(&c->tls) == TLS_IO_OK)
		c->close_notify_queued = true;
	conn_flush_close(c, reason);
}

static void cancel_fd(struct conn *c, int fd)
{
	if (fd < 0)
		return;
	struct io_uring_sqe *sqe = worker_sqe(c->w);
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
	conn_prep(c, sqe, OP_CANCEL);
}

void conn_close(struct conn *c, enum close_reason reason)
{
	if (c->state == CONN_CLOSING || c->state == CONN_FREE)
		return;
	c->w->counters.closes[reason < CLOSE_REASON_MAX ? reason : CLOSE_NO_MEMORY]++;
	c->close_reason = reason;
	release_handshake_slot(c);
	list_del(&c->timer);
	list_del(&c->wait);
	c->parked = false;
	log_debug("conn %llu: closing (%s), %u requests in flight", (unsigned long long)c->id,
		  close_reason_name(reason), c->inflight);
	conn_set_state(c, CONN_CLOSING);
	if (c->inflight > 0) {
		cancel_fd(c, c->cfd);
		cancel_fd(c, c->bfd);
		if (c->async_armed)
			cancel_fd(c, c->async_fd);
	}
	conn_advance(c);
}

void conn_release(struct conn *c)
{
	ktls_conn_clear(&c->kc);
	chunk_put(&c->w->chunks, c->ktls_ctl);
	c->ktls_ctl = NULL;
	tls_session_free(&c->tls);
	verify_result_clear(&c->vr);
	outq_release(&c->to_backend, &c->w->chunks);
	free(c->big_header.data);
	c->big_header.data = NULL;
	chunk_put(&c->w->chunks, c->spill);
	c->spill = NULL;
	if (c->client_bid != NO_BUF)
		worker_buf_return(c->w, (uint16_t)c->client_bid);
	if (c->backend_bid != NO_BUF)
		worker_buf_return(c->w, (uint16_t)c->backend_bid);
	c->client_bid = c->backend_bid = NO_BUF;
	if (c->cfd >= 0)
		close(c->cfd);
	if (c->bfd >= 0)
		close(c->bfd);
	c->cfd = c->bfd = -1;
	generation_unref(c->gen);
	c->gen = NULL;
	c->partner = NULL;
	atomic_fetch_sub(&engine.conns, 1);
}
