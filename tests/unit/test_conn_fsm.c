/*
 * test_conn_fsm.c: the connection state machine, walked pair by pair,
 * through the real engine with no ring and no client socket.
 *
 * The seam is worker_sqe() (dataplane/engine/worker_sqe.c): this file
 * defines its own, so every request the state machine and the relays make
 * lands in sqes[] below, prepared by the real io_uring_prep_* calls, and
 * the test completes it by calling conn_dispatch() as the worker would.
 * The client is a real OpenSSL client over memory BIOs, holding the
 * fixture certificate client-ec; the generation is built from the fixture
 * PKI; kTLS's syscalls go through the ktls_ops seam. The backend socket is
 * the one real socket (backend.c creates it; it is never connected).
 *
 * What is proven:
 *  - the table: conn_next_state() for every (state, event) pair equals the
 *    expected table written out here;
 *  - the engine: for every pair, a connection is brought into the state
 *    through real completions, then the event is produced the way the
 *    engine produces it (a completion, the tick, the control thread) where
 *    it moves the connection, or fired where the table says it does not
 *    (and then nothing may be submitted); the state that results is the
 *    expected one, and every buffer and chunk comes back when it closes;
 *  - the op codes: each kind of request has its own (the handoff's fill
 *    receive, plaintext and control sends offloaded, records, the queue),
 *    so a completion is never taken for another.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/ssl.h>

#include "audit.h"
#include "config.h"
#include "conn.h"
#include "conn_submit.h"
#include "generation.h"
#include "ktls.h"
#include "relay.h"
#include "worker.h"

/* ---- the seam: every request, in order -------------------------------- */

#define NSQE 4096
static struct io_uring_sqe sqes[NSQE];
static bool sqe_done[NSQE];
static unsigned n_sqes;

struct io_uring_sqe *worker_sqe(struct worker *w)
{
	(void)w;
	if (n_sqes >= NSQE)
		fail_msg("more than %d requests in one test", NSQE);
	memset(&sqes[n_sqes], 0, sizeof(sqes[0]));
	sqe_done[n_sqes] = false;
	return &sqes[n_sqes++];
}

static struct worker W;
static struct generation *gen_user, *gen_ktls;

/* ---- kTLS's syscalls: keys counted, control records on demand --------- */

static unsigned tx_keys, rx_keys;
static bool alert_next;           /* the next recvmsg reads an alert record: */
static uint8_t alert_level = 1, alert_desc = 0; /* close_notify unless set */

static int fake_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	(void)fd, (void)val, (void)len;
	if (level == SOL_TLS && name == TLS_TX)
		tx_keys++;
	if (level == SOL_TLS && name == TLS_RX)
		rx_keys++;
	return 0;
}

static ssize_t fake_recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct cmsghdr *cm = CMSG_FIRSTHDR(msg);

	(void)fd, (void)flags;
	if (!alert_next || !cm) {
		errno = EAGAIN;
		return -1;
	}
	alert_next = false;
	cm->cmsg_level = SOL_TLS;
	cm->cmsg_type = TLS_GET_RECORD_TYPE;
	cm->cmsg_len = CMSG_LEN(sizeof(uint8_t));
	*CMSG_DATA(cm) = KTLS_CT_ALERT;
	msg->msg_controllen = CMSG_SPACE(sizeof(uint8_t));
	((uint8_t *)msg->msg_iov[0].iov_base)[0] = alert_level;
	((uint8_t *)msg->msg_iov[0].iov_base)[1] = alert_desc;
	return 2;
}

static ssize_t fake_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	(void)fd, (void)flags;
	return (ssize_t)msg->msg_iov[0].iov_len;
}

static const struct ktls_ops fake_ktls = { fake_setsockopt, fake_recvmsg, fake_sendmsg };
static uint64_t next_id;

#define CLIENT_FD 900 /* never opened: every request on it is fake */
#define CLIENT_BID 0
#define BACKEND_BID 1

static bool is_of(const struct io_uring_sqe *s, const struct conn *c)
{
	return ud_index(s->user_data) == c->idx && ud_incarnation(s->user_data) == c->incarnation;
}

/* The oldest request of c for op still in flight, or NULL. */
static struct io_uring_sqe *pending(const struct conn *c, enum uring_op op)
{
	for (unsigned i = 0; i < n_sqes; i++)
		if (!sqe_done[i] && ud_op(sqes[i].user_data) == op && is_of(&sqes[i], c))
			return &sqes[i];
	return NULL;
}

static unsigned count_pending(const struct conn *c)
{
	unsigned n = 0;
	for (unsigned i = 0; i < n_sqes; i++)
		n += !sqe_done[i] && is_of(&sqes[i], c);
	return n;
}

/* Complete request s with res (and ring buffer bid), as worker.c does. */
static void deliver(struct io_uring_sqe *s, int res, int bid)
{
	uint64_t ud = s->user_data;

	sqe_done[s - sqes] = true;
	if (bid != NO_BUF)
		W.bufs_out++;
	struct conn *c = worker_conn_lookup(&W, ud_index(ud), ud_incarnation(ud));
	if (!c) {
		if (bid != NO_BUF)
			worker_buf_return(&W, (uint16_t)bid);
		return;
	}
	conn_dispatch(c, ud_op(ud), res, bid);
}

static void complete(struct conn *c, enum uring_op op, int res)
{
	struct io_uring_sqe *s = pending(c, op);
	if (!s)
		fail_msg("conn in %s: no %s request in flight", conn_state_name(c->state), uring_op_name(op));
	deliver(s, res, NO_BUF);
}

/* A ring buffer holding bytes, delivered to the pending receive of op. */
static void receive(struct conn *c, enum uring_op op, const void *data, size_t len)
{
	int bid = op == OP_CLIENT_RECV ? CLIENT_BID : BACKEND_BID;
	struct io_uring_sqe *s = pending(c, op);

	if (!s)
		fail_msg("conn in %s: no %s request in flight", conn_state_name(c->state), uring_op_name(op));
	assert_true(len > 0 && len <= WORKER_BUF_SIZE);
	assert_true(s->flags & IOSQE_BUFFER_SELECT);
	memcpy(worker_buf(&W, (uint16_t)bid), data, len);
	deliver(s, (int)len, bid);
}

/* ---- the client: OpenSSL over memory BIOs ------------------------------ */

struct peer {
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *in, *out;       /* what the client reads / what it wrote */
	uint8_t got[65536];  /* application data it read */
	size_t got_len;
	bool closed;         /* it read our close_notify */
};

static const char *fx(void)
{
	const char *dir = getenv("MTLS_FIXTURES");
	if (!dir)
		fail_msg("MTLS_FIXTURES is not set; run through meson test");
	return dir;
}

static void peer_init(struct peer *p)
{
	char cert[512], key[512];

	memset(p, 0, sizeof(*p));
	snprintf(cert, sizeof(cert), "%s/client-ec/chain.pem", fx());
	snprintf(key, sizeof(key), "%s/client-ec/key.pem", fx());
	p->ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(p->ctx);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(p->ctx, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(p->ctx, key, SSL_FILETYPE_PEM), 1);
	SSL_CTX_set_verify(p->ctx, SSL_VERIFY_NONE, NULL);
	p->ssl = SSL_new(p->ctx);
	p->in = BIO_new(BIO_s_mem());
	p->out = BIO_new(BIO_s_mem());
	SSL_set_bio(p->ssl, p->in, p->out);
	SSL_set_connect_state(p->ssl);
}

static void peer_free(struct peer *p)
{
	SSL_free(p->ssl);
	SSL_CTX_free(p->ctx);
}

/* Let the client do what it can with what it has. */
static void peer_step(struct peer *p)
{
	if (!SSL_is_init_finished(p->ssl)) {
		(void)SSL_do_handshake(p->ssl);
		return;
	}
	for (;;) {
		int n = SSL_read(p->ssl, p->got + p->got_len, (int)(sizeof(p->got) - p->got_len));
		if (n > 0) {
			p->got_len += (size_t)n;
			continue;
		}
		if (SSL_get_error(p->ssl, n) == SSL_ERROR_ZERO_RETURN)
			p->closed = true;
		ERR_clear_error();
		return;
	}
}

/* Our records (a pending OP_CLIENT_SEND_RECORDS) to the client. */
static bool to_peer(struct conn *c, struct peer *p)
{
	struct io_uring_sqe *s = pending(c, OP_CLIENT_SEND_RECORDS);
	if (!s)
		return false;
	assert_int_equal(s->fd, CLIENT_FD);
	assert_int_equal(BIO_write(p->in, (const void *)(uintptr_t)s->addr, (int)s->len), (int)s->len);
	deliver(s, (int)s->len, NO_BUF);
	return true;
}

/* What the client wrote, into the pending client receive (at most max). */
static bool from_peer(struct conn *c, struct peer *p, size_t max)
{
	uint8_t buf[WORKER_BUF_SIZE];
	size_t want = max && max < sizeof(buf) ? max : sizeof(buf);

	if (!pending(c, OP_CLIENT_RECV) || BIO_pending(p->out) == 0)
		return false;
	int n = BIO_read(p->out, buf, (int)want);
	assert_true(n > 0);
	receive(c, OP_CLIENT_RECV, buf, (size_t)n);
	return true;
}

/* Move bytes both ways until nothing moves. */
static void converse(struct conn *c, struct peer *p)
{
	for (int round = 0; round < 64; round++) {
		peer_step(p);
		bool moved = to_peer(c, p);
		moved |= from_peer(c, p, 0);
		if (!moved) {
			peer_step(p);
			return;
		}
	}
	fail_msg("the conversation did not settle");
}

/* ---- connections -------------------------------------------------------- */

/* A slot as accept.c hands it over: FREE, counted, with a client socket. */
static struct conn *new_conn(struct generation *g)
{
	struct conn *c = worker_conn_alloc(&W);
	assert_non_null(c);
	struct sockaddr_in *peer = (struct sockaddr_in *)&c->peer, *local = (struct sockaddr_in *)&c->local;

	atomic_fetch_add(&engine.conns, 1);
	atomic_fetch_add(&engine.handshakes, 1);
	c->id = ++next_id;
	c->dir[CONN_CLIENT].fd = CLIENT_FD;
	c->flags |= CONN_F_HS_SLOT;
	c->gen = generation_ref(g);
	peer->sin_family = local->sin_family = AF_INET;
	peer->sin_addr.s_addr = htonl(0x7f000001);
	local->sin_addr.s_addr = htonl(0x7f000001);
	peer->sin_port = htons(40000);
	local->sin_port = htons(8443);
	c->peer_len = c->local_len = sizeof(struct sockaddr_in);
	return c;
}

/* Everything still in flight for c completes cancelled (the worker's
 * teardown, as the kernel would after conn_close's cancels). */
static void drain(struct conn *c)
{
	uint32_t idx = c->idx, inc = c->incarnation;
	for (unsigned i = 0; i < n_sqes; i++)
		if (!sqe_done[i] && ud_index(sqes[i].user_data) == idx &&
		    ud_incarnation(sqes[i].user_data) == inc)
			deliver(&sqes[i], -ECANCELED, NO_BUF);
}

/* Close whatever is left of c and check that it gave everything back. */
static void finish(struct conn *c)
{
	if (c->state == CONN_FREE && c->gen)
		conn_start(c); /* a slot handed over is always started */
	if (c->state != CONN_FREE) {
		conn_close(c, CLOSE_DROPPED);
		drain(c);
	}
	assert_int_equal(c->state, CONN_FREE);
	assert_int_equal(W.live, 0);
	assert_int_equal(W.bufs_out, 0);
	assert_int_equal(W.chunks.in_use, 0);
	assert_int_equal(atomic_load(&engine.conns), 0);
	assert_int_equal(atomic_load(&engine.handshakes), 0);
	assert_true(list_empty(&W.handshakes));
	assert_true(list_empty(&W.established));
	assert_true(list_empty(&W.buf_waiters));
}

/* ---- reaching each state through real completions ----------------------- */

static struct peer P;

static struct conn *in_handshake(struct generation *g)
{
	struct conn *c = new_conn(g);
	conn_start(c);
	assert_int_equal(c->state, CONN_HANDSHAKE);
	assert_non_null(pending(c, OP_CLIENT_RECV));
	return c;
}

static struct conn *in_backend_connecting(struct generation *g)
{
	struct conn *c = in_handshake(g);
	converse(c, &P);
	assert_int_equal(c->state, CONN_BACKEND_CONNECTING);
	assert_non_null(pending(c, OP_BACKEND_CONNECT));
	assert_non_null(pending(c, OP_CONNECT_TIMEOUT));
	return c;
}

static struct conn *in_proxy_header(struct generation *g)
{
	struct conn *c = in_backend_connecting(g);
	complete(c, OP_BACKEND_CONNECT, 0);
	complete(c, OP_CONNECT_TIMEOUT, -ECANCELED);
	assert_int_equal(c->state, CONN_PROXY_HEADER);
	/* The PROXY v2 header is the first thing the backend gets. */
	struct io_uring_sqe *s = pending(c, OP_BACKEND_SEND);
	assert_non_null(s);
	assert_memory_equal((const void *)(uintptr_t)s->addr, "\r\n\r\n\0\r\nQUIT\n", 12);
	return c;
}

static struct conn *in_relay(struct generation *g)
{
	struct conn *c = in_proxy_header(g);
	struct io_uring_sqe *s = pending(c, OP_BACKEND_SEND);
	deliver(s, (int)s->len, NO_BUF);
	assert_int_equal(c->state, CONN_RELAY);
	converse(c, &P); /* the tickets */
	assert_non_null(pending(c, OP_CLIENT_RECV));
	assert_non_null(pending(c, OP_BACKEND_RECV));
	return c;
}

/* The client's close_notify: a record in user space; offloaded, the
 * kernel fails the receive with EIO and recvmsg reads the alert. */
static void client_ends(struct conn *c)
{
	if (c->relay == &relay_ktls_ops) {
		alert_next = true;
		complete(c, OP_CLIENT_RECV, -EIO);
		assert_false(alert_next);
		return;
	}
	assert_int_equal(SSL_shutdown(P.ssl), 0);
	converse(c, &P);
}

static struct conn *in_half_closed_client(struct generation *g)
{
	struct conn *c = in_relay(g);
	client_ends(c);
	assert_int_equal(c->state, CONN_HALF_CLOSED_CLIENT);
	assert_non_null(pending(c, OP_BACKEND_SHUTDOWN));
	return c;
}

static struct conn *in_half_closed_backend(struct generation *g)
{
	struct conn *c = in_relay(g);
	complete(c, OP_BACKEND_RECV, 0);
	assert_int_equal(c->state, CONN_HALF_CLOSED_BACKEND);
	/* Our close_notify is on its way (offloaded: through the kernel),
	 * then SHUT_WR. */
	assert_true(c->flags & CONN_F_CLOSE_NOTIFY);
	assert_non_null(pending(c, c->relay == &relay_ktls_ops ? OP_CLIENT_SEND_CONTROL
								: OP_CLIENT_SEND_RECORDS));
	assert_null(pending(c, OP_CLIENT_SHUTDOWN));
	return c;
}

/* A handshake record holding a ClientHello of one byte: OpenSSL answers
 * with a decode_error alert. */
static const uint8_t bad_hello[] = { 22, 3, 1, 0, 5, 1, 0, 0, 1, 0 };

static struct conn *in_flush_close(struct generation *g)
{
	struct conn *c = in_handshake(g);
	receive(c, OP_CLIENT_RECV, bad_hello, sizeof(bad_hello));
	assert_int_equal(c->state, CONN_FLUSH_CLOSE);
	assert_non_null(pending(c, OP_CLIENT_SEND_RECORDS)); /* the alert */
	return c;
}

static struct conn *in_closing(struct generation *g)
{
	struct conn *c = in_handshake(g);
	conn_close(c, CLOSE_DROPPED);
	assert_int_equal(c->state, CONN_CLOSING);
	assert_non_null(pending(c, OP_CANCEL));
	return c;
}

static struct conn *in_free(struct generation *g)
{
	return new_conn(g);
}

static struct conn *(*const reach[CONN_STATE_MAX])(struct generation *g) = {
	[CONN_FREE] = in_free,
	[CONN_HANDSHAKE] = in_handshake,
	[CONN_BACKEND_CONNECTING] = in_backend_connecting,
	[CONN_PROXY_HEADER] = in_proxy_header,
	[CONN_RELAY] = in_relay,
	[CONN_HALF_CLOSED_CLIENT] = in_half_closed_client,
	[CONN_HALF_CLOSED_BACKEND] = in_half_closed_backend,
	[CONN_FLUSH_CLOSE] = in_flush_close,
	[CONN_CLOSING] = in_closing,
};

/* ---- the expected table ----------------------------------------------- */

#define FREE CONN_FREE
#define HS   CONN_HANDSHAKE
#define BC   CONN_BACKEND_CONNECTING
#define PH   CONN_PROXY_HEADER
#define RL   CONN_RELAY
#define HCC  CONN_HALF_CLOSED_CLIENT
#define HCB  CONN_HALF_CLOSED_BACKEND
#define FC   CONN_FLUSH_CLOSE
#define CL   CONN_CLOSING

/* Written out independently of conn_fsm.c. */
static const enum conn_state expected[CONN_STATE_MAX][CONN_EVENT_MAX] = {
	/*           accepted verified connected header client_end backend_end flush close released */
	[FREE] = {   HS,      FREE,    FREE,     FREE,  FREE,      FREE,       FREE, FREE, FREE },
	[HS]   = {   HS,      BC,      HS,       HS,    HS,        HS,         FC,   CL,   HS   },
	[BC]   = {   BC,      BC,      PH,       BC,    BC,        BC,         FC,   CL,   BC   },
	[PH]   = {   PH,      PH,      PH,       RL,    PH,        PH,         FC,   CL,   PH   },
	[RL]   = {   RL,      RL,      RL,       RL,    HCC,       HCB,        FC,   CL,   RL   },
	[HCC]  = {   HCC,     HCC,     HCC,      HCC,   HCC,       HCC,        FC,   CL,   HCC  },
	[HCB]  = {   HCB,     HCB,     HCB,      HCB,   HCB,       HCB,        FC,   CL,   HCB  },
	[FC]   = {   FC,      FC,      FC,       FC,    FC,        FC,         FC,   CL,   FC   },
	[CL]   = {   CL,      CL,      CL,       CL,    CL,        CL,         CL,   CL,   FREE },
};

/* Rejecting twin of the walk below: the pure table, every pair, and
 * nothing outside it moves anything. */
static void test_conn_fsm_table_matches(void **state)
{
	(void)state;
	for (int s = 0; s < CONN_STATE_MAX; s++)
		for (int e = 0; e < CONN_EVENT_MAX; e++)
			if (conn_next_state((enum conn_state)s, (enum conn_event)e) != expected[s][e])
				fail_msg("%s + %s: table says %s, expected %s", conn_state_name(s),
					 conn_event_name(e),
					 conn_state_name(conn_next_state(s, e)), conn_state_name(expected[s][e]));
	assert_int_equal(conn_next_state(CONN_STATE_MAX, CONN_EV_CLOSE), CONN_STATE_MAX);
	assert_int_equal(conn_next_state(CONN_RELAY, CONN_EVENT_MAX), CONN_RELAY);
	for (int e = 0; e < CONN_EVENT_MAX; e++) {
		assert_string_not_equal(conn_event_name(e), "unknown");
		assert_int_equal(conn_event_from_name(conn_event_name(e)), e);
	}
	assert_int_equal(conn_event_from_name("unknown"), -ENOENT);
}

/* ---- producing each event the way the engine does ----------------------- */

/* The event ev where it moves c out of its state: through the completion,
 * the tick or the control request that produces it. */
static void produce(struct conn *c, enum conn_event ev)
{
	enum conn_state s = c->state;

	switch (ev) {
	case CONN_EV_ACCEPTED:
		conn_start(c);
		return;
	case CONN_EV_VERIFIED:
		converse(c, &P);
		return;
	case CONN_EV_BACKEND_CONNECTED:
		complete(c, OP_BACKEND_CONNECT, 0);
		return;
	case CONN_EV_HEADER_SENT: {
		struct io_uring_sqe *h = pending(c, OP_BACKEND_SEND);
		deliver(h, (int)h->len, NO_BUF);
		return;
	}
	case CONN_EV_CLIENT_END:
		client_ends(c);
		return;
	case CONN_EV_BACKEND_END:
		complete(c, OP_BACKEND_RECV, 0);
		return;
	case CONN_EV_FLUSH:
		if (s == CONN_HANDSHAKE) {
			/* A ClientHello too short to parse: the alert goes out
			 * before the close. */
			receive(c, OP_CLIENT_RECV, bad_hello, sizeof(bad_hello));
		} else if (s == CONN_BACKEND_CONNECTING) {
			complete(c, OP_BACKEND_CONNECT, -ECONNREFUSED);
		} else if (conn_relaying(c) && !(c->flags & CONN_F_CLOSE_NOTIFY)) {
			conn_close_gracefully(c, CLOSE_DRAIN); /* the drain timeout */
		} else {
			/* Nothing in the engine flushes here (our close_notify is
			 * gone already, or no relay yet): the entry step must
			 * still do the right thing. */
			conn_fire(c, CONN_EV_FLUSH);
		}
		return;
	case CONN_EV_CLOSE:
		/* Each with a request still in flight, so CLOSING is seen. */
		if (s == CONN_RELAY || s == CONN_HALF_CLOSED_CLIENT)
			complete(c, OP_BACKEND_RECV, -ECONNRESET);
		else
			conn_close(c, CLOSE_IDLE_TIMEOUT); /* the tick, the control thread */
		return;
	case CONN_EV_RELEASED:
		drain(c);
		return;
	default:
		fail_msg("event %d", ev);
	}
}

/* Every (state, event) pair through the engine. */
static void walk(struct generation *g)
{
	for (int s = 0; s < CONN_STATE_MAX; s++) {
		for (int e = 0; e < CONN_EVENT_MAX; e++) {
			peer_init(&P);
			struct conn *c = reach[s](g);
			enum conn_state want = expected[s][e];
			uint64_t closes = 0;
			for (int r = 0; r < CLOSE_REASON_MAX; r++)
				closes += W.counters.closes[r];

			if (want == (enum conn_state)s) {
				/* Not an event here: nothing moves, nothing is submitted. */
				unsigned before = n_sqes;
				conn_fire(c, (enum conn_event)e);
				if (c->state != (enum conn_state)s || n_sqes != before)
					fail_msg("%s + %s: now %s, %u requests submitted; expected nothing",
						 conn_state_name(s), conn_event_name(e),
						 conn_state_name(c->state), n_sqes - before);
			} else {
				produce(c, (enum conn_event)e);
				if (c->state != want)
					fail_msg("%s + %s: now %s, expected %s", conn_state_name(s),
						 conn_event_name(e), conn_state_name(c->state),
						 conn_state_name(want));
				/* A close is counted once, when it happens. */
				uint64_t after = 0;
				for (int r = 0; r < CLOSE_REASON_MAX; r++)
					after += W.counters.closes[r];
				assert_int_equal(after - closes, want == CONN_CLOSING ? 1 : 0);
			}
			finish(c);
			peer_free(&P);
		}
	}
}

static void test_conn_fsm_every_pair_user_space(void **state)
{
	(void)state;
	walk(gen_user);
}

static void test_conn_fsm_every_pair_ktls(void **state)
{
	(void)state;
	walk(gen_ktls);
}

/* ---- whole connections ------------------------------------------------- */

/* Bytes both ways, then both ends: user-space TLS, and the natural close. */
static void test_conn_fsm_relay_and_half_close_user_space(void **state)
{
	(void)state;
	peer_init(&P);
	struct conn *c = in_relay(gen_user);
	assert_ptr_equal(c->relay, &relay_user_ops);

	assert_int_equal(SSL_write(P.ssl, "hello", 5), 5);
	converse(c, &P);
	struct io_uring_sqe *s = pending(c, OP_BACKEND_SEND);
	assert_non_null(s);
	assert_int_equal(s->len, 5);
	assert_memory_equal((const void *)(uintptr_t)s->addr, "hello", 5);
	deliver(s, 5, NO_BUF);

	receive(c, OP_BACKEND_RECV, "world", 5);
	converse(c, &P);
	assert_int_equal(P.got_len, 5);
	assert_memory_equal(P.got, "world", 5);
	assert_int_equal(W.counters.bytes_client_to_backend, 5);
	assert_int_equal(W.counters.bytes_backend_to_client, 5);

	/* The client ends: SHUT_WR toward the backend, the backend goes on. */
	assert_int_equal(SSL_shutdown(P.ssl), 0);
	converse(c, &P);
	assert_int_equal(c->state, CONN_HALF_CLOSED_CLIENT);
	complete(c, OP_BACKEND_SHUTDOWN, 0);
	receive(c, OP_BACKEND_RECV, "more", 4);
	converse(c, &P);
	assert_int_equal(P.got_len, 9);
	/* The backend ends: our close_notify, then SHUT_WR toward the client. */
	complete(c, OP_BACKEND_RECV, 0);
	assert_null(pending(c, OP_CLIENT_SHUTDOWN));
	converse(c, &P);
	assert_true(P.closed);
	uint64_t complete_before = W.counters.closes[CLOSE_COMPLETE];
	complete(c, OP_CLIENT_SHUTDOWN, 0);
	assert_int_equal(c->state, CONN_FREE);
	assert_int_equal(W.counters.closes[CLOSE_COMPLETE], complete_before + 1);
	finish(c);
	peer_free(&P);
}

/* The handoff and the relay on an offloaded socket: each kind of request
 * has its own op. The client's first record arrives cut behind its
 * Finished, so the handoff completes it with OP_CLIENT_FILL before the
 * keys go to the kernel. */
static void test_conn_fsm_handoff_fill_and_ktls_relay(void **state)
{
	(void)state;
	peer_init(&P);
	struct conn *c = in_handshake(gen_ktls);
	tx_keys = rx_keys = 0;

	/* The handshake up to the client's last flight. */
	while (!SSL_is_init_finished(P.ssl)) {
		(void)SSL_do_handshake(P.ssl);
		if (!SSL_is_init_finished(P.ssl)) {
			to_peer(c, &P);
			from_peer(c, &P, 0);
		}
	}
	/* Its Finished and 10 bytes of its first record, in one receive. */
	assert_int_equal(SSL_write(P.ssl, "early bytes", 11), 11);
	uint8_t flight[8192];
	int n = BIO_read(P.out, flight, sizeof(flight));
	assert_true(n > 40);
	size_t app = 5 + 11 + 1 + 16; /* TLS 1.3 record: header, data, type, tag */
	size_t cut = (size_t)n - app + 10;
	receive(c, OP_CLIENT_RECV, flight, cut);
	assert_int_equal(c->state, CONN_BACKEND_CONNECTING);
	assert_ptr_equal(c->relay, &relay_handoff_ops);
	converse(c, &P); /* the tickets */

	complete(c, OP_BACKEND_CONNECT, 0);
	complete(c, OP_CONNECT_TIMEOUT, -ECANCELED);
	struct io_uring_sqe *h = pending(c, OP_BACKEND_SEND);
	deliver(h, (int)h->len, NO_BUF);
	assert_int_equal(c->state, CONN_RELAY);

	/* The cut record: exactly its missing bytes, no ring buffer. */
	struct io_uring_sqe *f = pending(c, OP_CLIENT_FILL);
	assert_non_null(f);
	assert_null(pending(c, OP_CLIENT_RECV));
	assert_false(f->flags & IOSQE_BUFFER_SELECT);
	assert_int_equal(f->len, (size_t)n - cut);
	assert_true(f->msg_flags & MSG_WAITALL);
	memcpy((void *)(uintptr_t)f->addr, flight + cut, f->len);
	deliver(f, (int)f->len, NO_BUF);

	/* Its plaintext goes to the backend through the queue... */
	struct io_uring_sqe *s = pending(c, OP_BACKEND_SEND);
	assert_non_null(s);
	assert_memory_equal((const void *)(uintptr_t)s->addr, "early bytes", 11);
	assert_int_equal(tx_keys + rx_keys, 0);
	deliver(s, 11, NO_BUF);
	/* ... and then the keys go to the kernel. */
	assert_int_equal(tx_keys, 1);
	assert_int_equal(rx_keys, 1);
	assert_ptr_equal(c->relay, &relay_ktls_ops);
	assert_null(c->tls.ssl);

	/* Offloaded: plaintext straight from ring buffer to ring buffer. */
	receive(c, OP_CLIENT_RECV, "to backend", 10);
	s = pending(c, OP_BACKEND_SEND_DIRECT);
	assert_non_null(s);
	assert_int_equal(s->len, 10);
	assert_ptr_equal((void *)(uintptr_t)s->addr, worker_buf(&W, CLIENT_BID));
	deliver(s, 10, NO_BUF);
	receive(c, OP_BACKEND_RECV, "to client", 9);
	s = pending(c, OP_CLIENT_SEND_PLAIN);
	assert_non_null(s);
	assert_int_equal(s->len, 9);
	assert_ptr_equal((void *)(uintptr_t)s->addr, worker_buf(&W, BACKEND_BID));
	deliver(s, 9, NO_BUF);

	/* The drain timeout: our close_notify through the kernel (sendmsg,
	 * its own op), then the close once it was sent. */
	conn_close_gracefully(c, CLOSE_DRAIN);
	assert_int_equal(c->state, CONN_FLUSH_CLOSE);
	s = pending(c, OP_CLIENT_SEND_CONTROL);
	assert_non_null(s);
	assert_int_equal(s->opcode, IORING_OP_SENDMSG);
	uint64_t drains = W.counters.closes[CLOSE_DRAIN];
	deliver(s, 2, NO_BUF);
	assert_int_equal(c->state, CONN_CLOSING);
	assert_int_equal(W.counters.closes[CLOSE_DRAIN], drains + 1);
	finish(c);
	peer_free(&P);
}

/* Rejecting twin: a handler that marks the close stops everything after
 * it, and the connection closes once, at the end of the dispatch. */
static void test_conn_fsm_mark_closes_once_at_dispatch_end(void **state)
{
	(void)state;
	peer_init(&P);
	struct conn *c = in_relay(gen_user);
	/* The backend's bytes are on their way to the client when garbage
	 * arrives where a record belongs: the relay marks a TLS error. */
	receive(c, OP_BACKEND_RECV, "pending", 7);
	unsigned before = n_sqes;
	uint64_t tls_errors = W.counters.closes[CLOSE_TLS_ERROR];
	uint64_t drops = W.counters.closes[CLOSE_DROPPED];
	static const uint8_t bad[] = { 23, 3, 3, 0, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
				       11, 12, 13, 14, 15, 16, 17, 18, 19, 20 };
	receive(c, OP_CLIENT_RECV, bad, sizeof(bad));
	assert_int_equal(c->state, CONN_CLOSING);
	assert_int_equal(W.counters.closes[CLOSE_TLS_ERROR], tls_errors + 1);
	/* After the mark nothing but the cancels (one per socket) was
	 * submitted: no receive re-armed, no send. */
	unsigned cancels = 0;
	for (unsigned i = before; i < n_sqes; i++) {
		enum uring_op op = ud_op(sqes[i].user_data);
		if (op == OP_CANCEL)
			cancels++;
		else
			assert_int_equal(op, OP_CLIENT_SEND_RECORDS);
	}
	assert_int_equal(cancels, 2);
	assert_int_equal(c->inflight, count_pending(c));
	conn_close(c, CLOSE_DROPPED); /* again: ignored */
	assert_int_equal(W.counters.closes[CLOSE_DROPPED], drops);
	finish(c);
	peer_free(&P);
}

/* The same offloaded: a fatal alert read after the receive failed with
 * EIO marks the close in the relay; the pump that follows arms nothing
 * (the old code had to return early instead). */
static void test_conn_fsm_mark_stops_the_ktls_relay(void **state)
{
	(void)state;
	peer_init(&P);
	struct conn *c = in_relay(gen_ktls);
	assert_ptr_equal(c->relay, &relay_ktls_ops);
	unsigned before = n_sqes;
	uint64_t tls_errors = W.counters.closes[CLOSE_TLS_ERROR];

	alert_next = true;
	alert_level = 2;  /* fatal */
	alert_desc = 40;  /* handshake_failure */
	complete(c, OP_CLIENT_RECV, -EIO);
	alert_level = 1;
	alert_desc = 0;
	assert_false(alert_next);
	assert_int_equal(c->state, CONN_CLOSING);
	assert_int_equal(W.counters.closes[CLOSE_TLS_ERROR], tls_errors + 1);
	for (unsigned i = before; i < n_sqes; i++)
		if (ud_op(sqes[i].user_data) != OP_CANCEL)
			fail_msg("%s submitted after the mark", uring_op_name(ud_op(sqes[i].user_data)));
	assert_int_equal(n_sqes - before, 2);
	finish(c);
	peer_free(&P);
}

/* The client's identity is the connection's: derived when the handshake
 * ended, it is in the PROXY header (the certificate's SHA-256 TLV), and
 * it goes back to the worker once the header has it. */
static void test_conn_fsm_identity_in_the_conn_reaches_the_header(void **state)
{
	(void)state;
	peer_init(&P);
	unsigned idle = W.n_id_free;
	struct conn *c = in_proxy_header(gen_user);
	struct io_uring_sqe *h = pending(c, OP_BACKEND_SEND);
	uint8_t sha[32];
	unsigned sha_len = 0;

	assert_int_equal(X509_digest(SSL_get_certificate(P.ssl), EVP_sha256(), sha, &sha_len), 1);
	assert_non_null(memmem((const void *)(uintptr_t)h->addr, h->len, sha, sizeof(sha)));
	assert_null(c->client_id);
	assert_int_equal(W.n_id_free, idle ? idle : 1);
	finish(c);
	peer_free(&P);
}

/* Rejecting twin: a handshake that ends without a certificate derives no
 * identity and takes none from the worker. */
static void test_conn_fsm_identity_none_without_certificate(void **state)
{
	(void)state;
	unsigned idle = W.n_id_free;
	struct conn *c = in_flush_close(gen_user);
	assert_null(c->vr.leaf);
	assert_null(c->client_id);
	assert_int_equal(W.n_id_free, idle);
	finish(c);
}

/* worker_for_each_conn, what the control thread's drop runs on the
 * worker: every live connection once, and it may close the one it is on. */
static void note_and_close(struct conn *c, void *arg)
{
	struct conn **seen = arg;
	for (int i = 0; i < 4; i++)
		if (!seen[i]) {
			seen[i] = c;
			break;
		}
	conn_close(c, CLOSE_DROPPED);
}

static void test_conn_fsm_for_each_conn_visits_the_live(void **state)
{
	(void)state;
	peer_init(&P);
	struct conn *hs = in_handshake(gen_user);
	struct conn *relay = in_relay(gen_user);
	struct conn *seen[4] = { NULL };
	uint64_t drops = W.counters.closes[CLOSE_DROPPED];

	worker_for_each_conn(&W, note_and_close, seen);
	assert_true((seen[0] == hs && seen[1] == relay) || (seen[0] == relay && seen[1] == hs));
	assert_null(seen[2]);
	assert_int_equal(W.counters.closes[CLOSE_DROPPED], drops + 2);
	assert_int_equal(hs->state, CONN_CLOSING);
	assert_int_equal(relay->state, CONN_CLOSING);
	drain(hs);
	drain(relay);
	finish(hs);
	finish(relay);
	peer_free(&P);
}

/* Rejecting twin: FREE slots and closing connections are not visited. */
static void test_conn_fsm_for_each_conn_skips_free_and_closing(void **state)
{
	(void)state;
	struct conn *closing = in_closing(gen_user);
	struct conn *seen[4] = { NULL };

	worker_for_each_conn(&W, note_and_close, seen); /* one slot CLOSING, the rest FREE */
	assert_null(seen[0]);
	finish(closing);
}

/* ---- setup -------------------------------------------------------------- */

static char conf_path[] = "/tmp/test_conn_fsm.XXXXXX";

static struct generation *build(const char *ktls)
{
	struct mtlsd_config cfg;
	struct generation *g = NULL;
	char err[2048];
	int fd = mkstemp(conf_path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fprintf(f,
		"[mtlsd]\nlisten = 127.0.0.1:8443\nktls = %2$s\n"
		"[server_cert.ec]\ncert = %1$s/server/chain.pem\nkey = %1$s/server/key.pem\n"
		"[partner.partner]\nca = %1$s/pki/ca-bundle.pem\ncrl = %1$s/pki/crls.pem\n"
		"backend = 127.0.0.1:9\nproxy_protocol = v2\n"
		"allow_uri = spiffe://partner.example/prod/*\n",
		fx(), ktls);
	fclose(f);
	config_init(&cfg);
	if (config_load_file(&cfg, conf_path, err, sizeof(err)) != 0)
		fail_msg("config: %s", err);
	unlink(conf_path);
	memcpy(conf_path + strlen(conf_path) - 6, "XXXXXX", 6);
	if (generation_build(&cfg, 1, &g, err, sizeof(err)) != 0)
		fail_msg("generation: %s", err);
	return g;
}

static int setup(void **state)
{
	char err[256];
	(void)state;
	ktls_set_ops(&fake_ktls);
	if (ktls_global_init(KTLS_MODE_AUTO, err, sizeof(err)) != 0)
		fail_msg("ktls: %s", err);
	assert_true(ktls_available());
	assert_int_equal(audit_open("/dev/null"), 0);
	gen_user = build("off");
	gen_ktls = build("auto");

	W.cap = 4;
	W.conns = calloc(W.cap, sizeof(*W.conns));
	W.free_idx = calloc(W.cap, sizeof(*W.free_idx));
	for (uint32_t i = 0; i < W.cap; i++)
		W.free_idx[i] = W.cap - 1 - i;
	W.n_free = W.cap;
	W.bufs = calloc(2, WORKER_BUF_SIZE);
	W.gen = generation_ref(gen_user);
	W.wake_fd = -1;
	list_init(&W.handshakes);
	list_init(&W.established);
	list_init(&W.buf_waiters);
	chunk_pool_init(&W.chunks, 8);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (uint32_t i = 0; i < W.cap; i++)
		free(W.conns[i]);
	free(W.conns);
	free(W.free_idx);
	free(W.bufs);
	chunk_pool_destroy(&W.chunks);
	generation_unref(W.gen);
	generation_unref(gen_user);
	generation_unref(gen_ktls);
	audit_close();
	ktls_set_ops(NULL);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conn_fsm_table_matches),
		cmocka_unit_test(test_conn_fsm_every_pair_user_space),
		cmocka_unit_test(test_conn_fsm_every_pair_ktls),
		cmocka_unit_test(test_conn_fsm_relay_and_half_close_user_space),
		cmocka_unit_test(test_conn_fsm_handoff_fill_and_ktls_relay),
		cmocka_unit_test(test_conn_fsm_mark_closes_once_at_dispatch_end),
		cmocka_unit_test(test_conn_fsm_mark_stops_the_ktls_relay),
		cmocka_unit_test(test_conn_fsm_identity_in_the_conn_reaches_the_header),
		cmocka_unit_test(test_conn_fsm_identity_none_without_certificate),
		cmocka_unit_test(test_conn_fsm_for_each_conn_visits_the_live),
		cmocka_unit_test(test_conn_fsm_for_each_conn_skips_free_and_closing),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
