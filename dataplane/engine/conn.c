/*
 * conn.c: the connection state machine's steps: the handshake and what
 * verification decided, the dispatch of a connection's completions, and
 * closing.
 *
 * The transitions are a table (conn_fsm.c); conn_fire() applies it and
 * runs the entry step of the new state. The backend connect and the PROXY
 * header are backend.c's; how bytes move once relaying is the relay's
 * (relay.h), reached through c->relay only, so nothing here knows whether
 * TLS is in user space or in the kernel. Every socket operation is an
 * io_uring request (conn_submit.h) counted in c->inflight, so a connection
 * is freed only when the kernel holds no pointer into it.
 */
#include "conn.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acct.h"
#include "audit.h"
#include "certinfo.h"
#include "conn_submit.h"
#include "generation.h"
#include "log.h"
#include "relay.h"

const char *conn_partner_name(const struct conn *c)
{
	if (c->partner)
		return c->partner->cfg->name;
	if (c->vr.partner >= 0 && (size_t)c->vr.partner < c->gen->n_partners)
		return c->gen->partners[c->vr.partner].cfg->name;
	return NULL;
}

bool conn_relaying(const struct conn *c)
{
	return c->state == CONN_RELAY || c->state == CONN_HALF_CLOSED_CLIENT ||
	       c->state == CONN_HALF_CLOSED_BACKEND;
}

/* On w->established: verified, and not yet saying goodbye. */
static bool conn_established(const struct conn *c)
{
	return c->state == CONN_BACKEND_CONNECTING || c->state == CONN_PROXY_HEADER ||
	       conn_relaying(c);
}

void conn_touch(struct conn *c)
{
	if (!conn_established(c))
		return;
	c->last_active_ns = now_ns();
	list_move_tail(&c->w->established, &c->timer);
}

static void release_handshake_slot(struct conn *c)
{
	if (!(c->flags & CONN_F_HS_SLOT))
		return;
	c->flags &= ~CONN_F_HS_SLOT;
	atomic_fetch_sub(&engine.handshakes, 1);
	admission_source_put(&c->source);
}

/* Give back what holds the TLS input slice (a ring buffer or a spill
 * chunk) once OpenSSL has consumed all of it. */
void conn_release_consumed_input(struct conn *c)
{
	struct conn_dir *d = &c->dir[CONN_CLIENT];

	if (tls_session_input_left(&c->tls) > 0)
		return;
	tls_session_clear_input(&c->tls);
	if (d->bid != NO_BUF) {
		worker_buf_return(c->w, (uint16_t)d->bid);
		d->bid = NO_BUF;
	}
	chunk_put(&c->w->chunks, c->spill);
	c->spill = NULL;
}

int conn_spill_input(struct conn *c)
{
	struct conn_dir *d = &c->dir[CONN_CLIENT];
	uint32_t left = tls_session_input_left(&c->tls);

	if (d->bid == NO_BUF || left == 0)
		return 0;
	struct chunk *ch = chunk_get(&c->w->chunks);
	ENSURE_PTR(ch, ENOMEM);
	memcpy(ch->data, c->tls.in + c->tls.in_off, left);
	worker_buf_return(c->w, (uint16_t)d->bid);
	d->bid = NO_BUF;
	c->spill = ch;
	tls_session_set_input(&c->tls, ch->data, left);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Handshake                                                           */

/* The client certificate's identity, derived once, at the end of the
 * handshake (c->client_id; NULL without a certificate, or unparseable). */
static void conn_identify(struct conn *c)
{
	if (c->client_id || !c->vr.leaf)
		return;
	c->client_id = worker_identity_get(c->w);
	if (c->client_id && certinfo_from_x509(c->vr.leaf, c->client_id) < 0) {
		worker_identity_put(c->w, c->client_id);
		c->client_id = NULL;
	}
}

/* Everything that reports the handshake has the identity: it goes. */
static void conn_forget_identity(struct conn *c)
{
	worker_identity_put(c->w, c->client_id);
	c->client_id = NULL;
}

static void audit_handshake_end(struct conn *c, enum hs_outcome outcome)
{
	struct audit_event ev;
	bool done = SSL_is_init_finished(c->tls.ssl);

	conn_identify(c);

	memset(&ev, 0, sizeof(ev));
	clock_gettime(CLOCK_REALTIME, &ev.ts);
	ev.conn_id = c->id;
	ev.peer = (const struct sockaddr *)&c->peer;
	ev.partner = conn_partner_name(c);
	ev.outcome = outcome;
	ev.reason = c->vr.detail[0] ? c->vr.detail : NULL;
	ev.leaf = c->vr.leaf;
	ev.id = c->client_id;
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
	if (c->client_id)
		acct_event_set_cert(&aev, c->client_id);
	/* An accepted client is counted under the CN its backend is told. */
	if (outcome == HS_OK)
		aev.subject_cn = c->vr.identity.cn;
	acct_handshake_end(&aev);
}

static void handshake_failed(struct conn *c)
{
	verify_settle_failure(c->tls.ssl, c->tls.first_error, &c->vr);
	audit_handshake_end(c, c->vr.outcome);
	conn_forget_identity(c);
	release_handshake_slot(c);
	conn_flush_close(c, CLOSE_HANDSHAKE_FAILED);
}

void conn_handshake_timed_out(struct conn *c)
{
	c->vr.outcome = HS_TIMEOUT;
	snprintf(c->vr.detail, sizeof(c->vr.detail), "handshake not finished after %u ms",
		 c->gen->cfg.handshake_timeout_ms);
	audit_handshake_end(c, HS_TIMEOUT);
	conn_forget_identity(c);
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
		conn_forget_identity(c);
		c->relay->close_notify(c);
		conn_flush_close(c, CLOSE_HANDSHAKE_FAILED);
		return;
	}
	c->partner = &c->gen->partners[c->vr.partner];
	list_del(&c->timer);
	c->last_active_ns = now_ns();
	list_add_tail(&c->w->established, &c->timer);
	/* The relay is chosen now (the kTLS handoff, or user space); a
	 * handoff happens once user space holds nothing more of the session
	 * (relay.h). The slice BIO keeps tls_session_input_left() exact. */
	relay_choose(c);
	/* Early data after the client's Finished waits for the backend: not
	 * in the shared ring. Out of memory: it stays there, still correct. */
	if (conn_spill_input(c) < 0)
		log_debug("conn %llu: no memory to spill the input slice; "
			  "it keeps its receive buffer", (unsigned long long)c->id);
	conn_fire(c, CONN_EV_VERIFIED);
	/* The PROXY header was built on entering BACKEND_CONNECTING. */
	conn_forget_identity(c);
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
	conn_submit_async_poll(c, fd);
}

static void drive_handshake(struct conn *c)
{
	enum tls_io r = tls_session_handshake(&c->tls);

	conn_submit_records(c);
	conn_release_consumed_input(c);
	switch (r) {
	case TLS_IO_OK:
		handshake_succeeded(c);
		break;
	case TLS_IO_WANT_READ:
		conn_submit_recv(c, CONN_CLIENT);
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

/* Entry of HANDSHAKE: the session, the verification and relay hooks. */
static void start_handshake(struct conn *c)
{
	c->hs_start_ns = c->last_active_ns = now_ns();
	list_add_tail(&c->w->handshakes, &c->timer);
	if (tls_session_init(&c->tls, c->gen->ssl_ctx, &c->w->chunks) < 0 ||
	    verify_attach(c->tls.ssl, &c->vr) < 0 || relay_attach(c) < 0) {
		log_ossl(LOG_LVL_ERR, "conn %llu: cannot create the TLS session", (unsigned long long)c->id);
		conn_mark_close(c, CLOSE_NO_MEMORY);
		return;
	}
	conn_advance(c);
}

static void handshake_received(struct conn *c, int res, int bid)
{
	if (res <= 0) {
		/* FIN or reset in the middle of the handshake. */
		c->tls.first_error = 0;
		handshake_failed(c);
		return;
	}
	c->dir[CONN_CLIENT].bid = bid;
	tls_session_set_input(&c->tls, worker_buf(c->w, (uint16_t)bid), (uint32_t)res);
	drive_handshake(c);
}

/* ------------------------------------------------------------------ */
/* Completions                                                         */

static void park(struct conn *c, enum conn_side side)
{
	c->w->counters.recv_nobufs++;
	c->dir[side].flags |= DIR_F_WANT_RECV;
	if (!(c->flags & CONN_F_PARKED)) {
		c->flags |= CONN_F_PARKED;
		list_add_tail(&c->w->buf_waiters, &c->wait);
	}
}

void conn_unpark(struct conn *c)
{
	c->flags &= ~CONN_F_PARKED;
	list_del(&c->wait);
	c->dir[CONN_CLIENT].flags &= ~DIR_F_WANT_RECV;
	c->dir[CONN_BACKEND].flags &= ~DIR_F_WANT_RECV;
	conn_advance(c);
	conn_settle(c);
}

/* A receive into a ring buffer from side completed. */
static void on_recv(struct conn *c, enum conn_side side, int res, int bid)
{
	bool wanted = conn_relaying(c) || (side == CONN_CLIENT && c->state == CONN_HANDSHAKE);

	c->dir[side].flags &= ~DIR_F_RECV_ARMED;
	if (res == -ENOBUFS) {
		park(c, side);
		return;
	}
	if (bid != NO_BUF && (res <= 0 || !wanted)) {
		worker_buf_return(c->w, (uint16_t)bid);
		bid = NO_BUF;
	}
	if (!wanted) {
		/* Saying goodbye (FLUSH_CLOSE): what the peer sends is dropped. */
		conn_advance(c);
		return;
	}
	if (res > 0 && bid == NO_BUF) {
		log_err("conn %llu: receive completed without a buffer", (unsigned long long)c->id);
		conn_mark_close(c, side == CONN_CLIENT ? CLOSE_CLIENT_ERROR : CLOSE_BACKEND_ERROR);
		return;
	}
	if (c->state == CONN_HANDSHAKE) {
		handshake_received(c, res, bid);
		return;
	}
	if (res > 0)
		conn_touch(c);
	if (side == CONN_CLIENT)
		c->relay->client_received(c, OP_CLIENT_RECV, res, bid);
	else
		c->relay->backend_received(c, res, bid);
	conn_advance(c);
}

/* A send toward side completed. */
static void on_sent(struct conn *c, enum conn_side side, enum uring_op op, int res)
{
	c->dir[side].flags &= ~DIR_F_SEND_ARMED;
	if (res <= 0) {
		if (side == CONN_BACKEND)
			conn_mark_close(c, CLOSE_BACKEND_ERROR);
		else
			conn_mark_close(c, c->state == CONN_FLUSH_CLOSE ? c->close_reason : CLOSE_CLIENT_ERROR);
		return;
	}
	if (op == OP_BACKEND_SEND_HEADER)
		conn_backend_header_sent(c, res);
	else
		c->relay->sent(c, op, res);
	conn_touch(c);
	/* Records the TLS session still holds for the client go next. */
	if (side == CONN_CLIENT)
		conn_submit_records(c);
	conn_advance(c);
}

static void on_async_ready(struct conn *c, int res)
{
	c->flags &= ~CONN_F_ASYNC_ARMED;
	if (res < 0)
		log_debug("conn %llu: async poll: %s; resuming anyway (the engine re-pauses if not ready)",
			  (unsigned long long)c->id, strerror(-res));
	conn_advance(c);
}

static void handle(struct conn *c, enum uring_op op, int res, int bid)
{
	switch (op) {
	case OP_CLIENT_RECV:
		on_recv(c, CONN_CLIENT, res, bid);
		break;
	case OP_BACKEND_RECV:
		on_recv(c, CONN_BACKEND, res, bid);
		break;
	case OP_CLIENT_FILL:
		/* Only the handoff submits it, and it waits for it. */
		c->dir[CONN_CLIENT].flags &= ~DIR_F_RECV_ARMED;
		c->relay->client_received(c, op, res, NO_BUF);
		conn_advance(c);
		break;
	case OP_CLIENT_SEND_RECORDS:
	case OP_CLIENT_SEND_PLAIN:
	case OP_CLIENT_SEND_CONTROL:
		on_sent(c, CONN_CLIENT, op, res);
		break;
	case OP_BACKEND_SEND:
	case OP_BACKEND_SEND_HEADER:
	case OP_BACKEND_SEND_DIRECT:
		on_sent(c, CONN_BACKEND, op, res);
		break;
	case OP_BACKEND_CONNECT:
		conn_on_backend_connect(c, res);
		break;
	case OP_CLIENT_SHUTDOWN:
	case OP_BACKEND_SHUTDOWN:
		/* ENOTCONN after a reset changes nothing: that side is done. */
		c->dir[op == OP_CLIENT_SHUTDOWN ? CONN_CLIENT : CONN_BACKEND].flags |= DIR_F_SHUT_DONE;
		conn_advance(c);
		break;
	case OP_ASYNC_POLL:
		on_async_ready(c, res);
		break;
	case OP_CONNECT_TIMEOUT:
	case OP_CANCEL:
		conn_advance(c);
		break;
	default:
		log_warn("worker %u: conn %llu: completion for unknown op %u", c->w->id,
			 (unsigned long long)c->id, op);
		if (bid != NO_BUF)
			worker_buf_return(c->w, (uint16_t)bid);
		break;
	}
}

void conn_dispatch(struct conn *c, enum uring_op op, int res, int bid)
{
	c->inflight--;
	if (c->state == CONN_CLOSING) {
		/* Cancelled or late: only the count matters now. */
		if (bid != NO_BUF)
			worker_buf_return(c->w, (uint16_t)bid);
	} else {
		handle(c, op, res, bid);
	}
	conn_settle(c);
}

/* ------------------------------------------------------------------ */
/* The state machine                                                   */

void conn_start(struct conn *c)
{
	c->relay = &relay_user_ops;
	conn_fire(c, CONN_EV_ACCEPTED);
	conn_settle(c);
}

void conn_advance(struct conn *c)
{
	switch (c->state) {
	case CONN_HANDSHAKE:
		if (!(c->dir[CONN_CLIENT].flags & DIR_F_RECV_ARMED) &&
		    !(c->flags & (CONN_F_PARKED | CONN_F_ASYNC_ARMED)))
			drive_handshake(c);
		break;
	case CONN_PROXY_HEADER:
		if (conn_backend_pending(c) > 0)
			conn_submit_backend_queue(c);
		else if (!(c->dir[CONN_BACKEND].flags & DIR_F_SEND_ARMED))
			conn_fire(c, CONN_EV_HEADER_SENT);
		break;
	case CONN_RELAY:
	case CONN_HALF_CLOSED_CLIENT:
	case CONN_HALF_CLOSED_BACKEND:
		c->relay->pump(c);
		break;
	case CONN_FLUSH_CLOSE:
		if (c->relay->flushed(c))
			conn_mark_close(c, c->close_reason);
		break;
	case CONN_FREE:
	case CONN_BACKEND_CONNECTING:
	case CONN_CLOSING:
		/* Waiting for a completion (closing: conn_settle frees). */
		break;
	default:
		log_err("conn %llu: advance in unexpected state %d", (unsigned long long)c->id, c->state);
		conn_mark_close(c, CLOSE_NO_MEMORY);
		break;
	}
}

/* Entry of CLOSING: count the reason, cancel what is in flight. */
static void start_closing(struct conn *c)
{
	/* The close is under way: the cancels below must reach the ring. */
	c->flags &= ~CONN_F_CLOSE;
	c->w->counters.closes[c->close_reason < CLOSE_REASON_MAX ? c->close_reason : CLOSE_NO_MEMORY]++;
	release_handshake_slot(c);
	list_del(&c->timer);
	list_del(&c->wait);
	c->flags &= ~CONN_F_PARKED;
	log_debug("conn %llu: closing (%s), %u requests in flight", (unsigned long long)c->id,
		  close_reason_name(c->close_reason), c->inflight);
	if (c->inflight > 0) {
		conn_submit_cancel(c, c->dir[CONN_CLIENT].fd);
		conn_submit_cancel(c, c->dir[CONN_BACKEND].fd);
		if (c->flags & CONN_F_ASYNC_ARMED)
			conn_submit_cancel(c, c->async_fd);
	}
}

/* The entry step of each state c can enter. */
static void enter(struct conn *c)
{
	switch (c->state) {
	case CONN_HANDSHAKE:
		start_handshake(c);
		break;
	case CONN_BACKEND_CONNECTING:
		conn_backend_connect(c);
		break;
	case CONN_PROXY_HEADER:
	case CONN_RELAY:
		conn_advance(c);
		break;
	case CONN_FLUSH_CLOSE:
		conn_submit_records(c);
		conn_advance(c);
		break;
	case CONN_CLOSING:
		start_closing(c);
		break;
	case CONN_FREE:
		conn_release(c);
		worker_conn_free(c->w, c);
		break;
	case CONN_HALF_CLOSED_CLIENT:
	case CONN_HALF_CLOSED_BACKEND:
	default:
		break;
	}
}

void conn_fire(struct conn *c, enum conn_event ev)
{
	enum conn_state next = conn_next_state(c->state, ev);

	/* A connection marked to close takes no other step. */
	if (next == c->state || ((c->flags & CONN_F_CLOSE) && ev != CONN_EV_CLOSE))
		return;
	if (log_get_level() >= LOG_LVL_DEBUG)
		log_debug("conn %llu: %s -> %s", (unsigned long long)c->id,
			  conn_state_name(c->state), conn_state_name(next));
	c->state = next;
	enter(c);
}

/* ------------------------------------------------------------------ */
/* Closing                                                             */

void conn_mark_close(struct conn *c, enum close_reason reason)
{
	if ((c->flags & CONN_F_CLOSE) || c->state == CONN_CLOSING || c->state == CONN_FREE)
		return;
	c->flags |= CONN_F_CLOSE;
	c->close_reason = reason;
	/* Nothing more goes toward either side (the relays' steps stop). */
	c->dir[CONN_CLIENT].flags |= DIR_F_SHUT;
	c->dir[CONN_BACKEND].flags |= DIR_F_SHUT;
}

void conn_settle(struct conn *c)
{
	if (c->flags & CONN_F_CLOSE)
		conn_fire(c, CONN_EV_CLOSE);
	if (c->state == CONN_CLOSING && c->inflight == 0)
		conn_fire(c, CONN_EV_RELEASED);
}

void conn_flush_close(struct conn *c, enum close_reason reason)
{
	if (!(c->flags & CONN_F_CLOSE))
		c->close_reason = reason; /* a mark's reason stands */
	conn_fire(c, CONN_EV_FLUSH);
}

void conn_goodbye(struct conn *c, enum close_reason reason)
{
	if (!conn_relaying(c) || (c->flags & CONN_F_CLOSE_NOTIFY)) {
		conn_mark_close(c, reason);
		return;
	}
	/* The client gets a close_notify, so it can tell a shutdown from a
	 * truncation; the tick closes it for good if it does not read. */
	c->relay->close_notify(c);
	conn_flush_close(c, reason);
}

void conn_close(struct conn *c, enum close_reason reason)
{
	conn_mark_close(c, reason);
	conn_settle(c);
}

void conn_close_gracefully(struct conn *c, enum close_reason reason)
{
	conn_goodbye(c, reason);
	conn_settle(c);
}

void conn_release(struct conn *c)
{
	conn_forget_identity(c);
	relay_detach(c);
	tls_session_free(&c->tls);
	verify_result_clear(&c->vr);
	outq_release(&c->to_backend, &c->w->chunks);
	free(c->big_header.data);
	c->big_header.data = NULL;
	chunk_put(&c->w->chunks, c->spill);
	c->spill = NULL;
	for (int s = CONN_CLIENT; s <= CONN_BACKEND; s++) {
		struct conn_dir *d = &c->dir[s];
		if (d->bid != NO_BUF)
			worker_buf_return(c->w, (uint16_t)d->bid);
		d->bid = NO_BUF;
		if (d->fd >= 0)
			close(d->fd);
		d->fd = -1;
	}
	generation_unref(c->gen);
	c->gen = NULL;
	c->partner = NULL;
	c->relay = NULL;
	atomic_fetch_sub(&engine.conns, 1);
}
