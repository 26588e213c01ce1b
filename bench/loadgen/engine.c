/*
 * engine.c: one load generator thread: its ring, its connection slots, the
 * connection state machine and the single place completions are decoded.
 *
 * Every socket operation goes through io_uring (connect, recv, send); TLS
 * runs over two memory BIOs, so OpenSSL never touches a socket. A slot
 * carries at most one request of each kind; it is recycled only when none
 * is in flight, and user_data carries the slot's incarnation so a late
 * cancellation can never hit the slot's next connection.
 *
 * Request/response latency is measured from the time a request was
 * scheduled to be sent, not from when a connection was free to send it, so
 * a server that stalls is charged for the queue it causes (no coordinated
 * omission; after wrk2).
 */
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "engine.h"
#include "log.h"

enum lg_op { OPK_CONNECT = 1, OPK_RECV, OPK_SEND, OPK_CANCEL };

#define SWEEP_NS    (100 * 1000000ull)  /* timeout sweep and stop-flag poll */
#define PATTERN_LEN (64 * 1024)

static const char *const state_names[ST_MAX] = {
	[ST_FREE] = "free", [ST_CONNECTING] = "connecting", [ST_HANDSHAKE] = "handshake",
	[ST_CONFIRM] = "confirm", [ST_READY] = "ready", [ST_REQUEST] = "request",
	[ST_BULK] = "bulk", [ST_CLOSING] = "closing",
};

const char *lg_state_name(enum lg_state s)
{
	return (unsigned)s < ST_MAX && state_names[s] ? state_names[s] : "unknown";
}

/* pattern[i] == i & 0xff, so bytes [k, k+n) of a request seeded p are
 * pattern + ((p + k) & 0xff): any payload is a slice, and checkable. */
static uint8_t pattern[PATTERN_LEN + 256];

void lg_pattern_init(void)
{
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)i;
}

static uint64_t pack(enum lg_op op, const struct lg_conn *c)
{
	return (uint64_t)op | (uint64_t)(c ? c->idx : 0) << 32;
}

static struct io_uring_sqe *sqe_get(struct lg_thread *t)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
	if (!sqe) {
		/* The SQ is full: hand it to the kernel and take a fresh one. */
		(void)io_uring_submit(&t->ring);
		sqe = io_uring_get_sqe(&t->ring);
	}
	return sqe;
}

static void conn_release(struct lg_thread *t, struct lg_conn *c);
static void conn_advance(struct lg_thread *t, struct lg_conn *c);

void lg_conn_fail(struct lg_thread *t, struct lg_conn *c, enum lg_err e)
{
	if (c->state == ST_CLOSING || c->state == ST_FREE)
		return;
	/* Until the server has confirmed, any way it ends the connection (an
	 * alert, a close, a reset) is the server refusing the handshake. */
	if ((c->state == ST_HANDSHAKE || c->state == ST_CONFIRM) &&
	    (e == ERR_EOF || e == ERR_TLS_IO || e == ERR_RESET))
		e = ERR_HANDSHAKE;
	/* Failures while stopping are our own teardown, not the server's. */
	if (!t->stopping)
		t->st.errors[e]++;
	if (t->st.errors[e] == 1 && !t->stopping)
		log_warn("thread %u: first %s error (connection in state %s)", t->id, lg_err_name(e),
			 lg_state_name(c->state));
	ERR_clear_error();
	/* No close_notify on a failed connection: drop the TLS state first. */
	SSL_free(c->ssl);
	c->ssl = NULL;
	c->rbio = c->wbio = NULL;
	lg_conn_close(t, c);
}

static void arm_recv(struct lg_thread *t, struct lg_conn *c)
{
	struct io_uring_sqe *sqe = sqe_get(t);
	io_uring_prep_recv(sqe, c->fd, c->rx, t->rx_cap, 0);
	io_uring_sqe_set_data64(sqe, pack(OPK_RECV, c));
	c->recv_armed = true;
	c->inflight++;
}

static void arm_send(struct lg_thread *t, struct lg_conn *c)
{
	struct io_uring_sqe *sqe = sqe_get(t);
	io_uring_prep_send(sqe, c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, pack(OPK_SEND, c));
	c->send_armed = true;
	c->inflight++;
}

/* Move what TLS wrote into wbio to the socket, one send at a time. */
static void conn_flush(struct lg_thread *t, struct lg_conn *c)
{
	if (c->send_armed || !c->wbio || BIO_ctrl_pending(c->wbio) == 0)
		return;
	int n = BIO_read(c->wbio, c->tx, (int)t->tx_cap);
	if (n <= 0)
		return;
	c->tx_len = (size_t)n;
	c->tx_off = 0;
	arm_send(t, c);
}

/* All requests are done: free the TLS state and the socket, then start the
 * slot's next connection unless the run is ending. */
static void conn_release(struct lg_thread *t, struct lg_conn *c)
{
	SSL_free(c->ssl);
	c->ssl = NULL;
	c->rbio = c->wbio = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = ST_FREE;
	if (c->opening) {
		c->opening = false;
		t->opening--;
	}
	/* Open loop: the schedule (thread.c) starts the next connection. */
	bool replace = (t->opt->mode != MODE_IDLE || t->to_open > 0) && !lg_hs_open_loop(t->opt);
	if (!t->stopping && replace)
		lg_conn_start(t, c);
}

void lg_conn_close(struct lg_thread *t, struct lg_conn *c)
{
	if (c->state == ST_CLOSING || c->state == ST_FREE)
		return;
	/* A clean close says close_notify, as a real client does; it is sent
	 * inline (a few bytes on an idle socket) unless a send is in flight. */
	if (c->ssl && SSL_is_init_finished(c->ssl) && !c->send_armed) {
		uint8_t buf[128];
		(void)SSL_shutdown(c->ssl);
		int n = BIO_read(c->wbio, buf, sizeof(buf));
		if (n > 0)
			(void)send(c->fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	c->state = ST_CLOSING;
	if (c->inflight == 0) {
		conn_release(t, c);
		return;
	}
	struct io_uring_sqe *sqe = sqe_get(t);
	io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, pack(OPK_CANCEL, NULL));
}

void lg_conn_start(struct lg_thread *t, struct lg_conn *c)
{
	/* Idle mode opens each slot once: a slot that fails stays failed. */
	if (t->opt->mode == MODE_IDLE && t->to_open > 0)
		t->to_open--;
	int fd = socket(t->opt->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		t->st.errors[ERR_CONNECT]++;
		return; /* out of descriptors: the sweep retries (not in idle mode) */
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->state = ST_CONNECTING;
	c->got_ticket = c->preface_sent = false;
	c->recv_armed = c->send_armed = false;
	c->t_start = c->t_progress = lg_now_ns();
	if (t->opt->mode == MODE_IDLE) {
		c->opening = true;
		t->opening++;
	}
	struct io_uring_sqe *sqe = sqe_get(t);
	io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&t->opt->target, t->opt->target_len);
	io_uring_sqe_set_data64(sqe, pack(OPK_CONNECT, c));
	c->inflight++;
}

static int conn_tls_setup(struct lg_thread *t, struct lg_conn *c)
{
	const struct lg_options *o = t->opt;
	c->ssl = SSL_new(t->ctx);
	ENSURE_PTR(c->ssl, ENOMEM);
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (!c->rbio || !c->wbio) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		c->rbio = c->wbio = NULL;
		return -ENOMEM;
	}
	/* An empty rbio means "wait for the network", not end of stream. */
	BIO_set_mem_eof_return(c->rbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	SSL_set_app_data(c->ssl, c);
	SSL_set_connect_state(c->ssl);
	X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
	if (X509_VERIFY_PARAM_set1_ip_asc(vp, o->servername) != 1) {
		GUARD_OSSL(SSL_set1_host(c->ssl, o->servername), ENOMEM);
		GUARD_OSSL(SSL_set_tlsext_host_name(c->ssl, o->servername), ENOMEM);
	}
	if (o->mode == MODE_RESUME && c->session)
		GUARD_OSSL(SSL_set_session(c->ssl, c->session), EINVAL);
	return 0;
}

/* Queue application bytes; they leave through conn_flush. */
static bool tls_write(struct lg_thread *t, struct lg_conn *c, const void *buf, size_t len)
{
	if (SSL_write(c->ssl, buf, (int)len) == (int)len)
		return true;
	lg_conn_fail(t, c, ERR_TLS_IO);
	return false;
}

/* Read decrypted bytes: n > 0, 0 when more must come from the network, -1
 * when the connection failed (already reported). */
static int tls_read(struct lg_thread *t, struct lg_conn *c, uint8_t *buf, size_t cap)
{
	int n = SSL_read(c->ssl, buf, (int)cap);
	if (n > 0)
		return n;
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		lg_conn_fail(t, c, ERR_EOF);
		return -1;
	default:
		lg_conn_fail(t, c, ERR_TLS_IO);
		return -1;
	}
}

static void request_start(struct lg_thread *t, struct lg_conn *c, uint64_t scheduled, size_t size)
{
	c->state = ST_REQUEST;
	c->t_start = scheduled;
	c->t_progress = lg_now_ns();
	c->req_left = c->resp_left = size;
	c->pattern = (uint32_t)random();
	if (!c->preface_sent) {
		c->preface_sent = true;
		if (!tls_write(t, c, ECHO_CMD_ECHO, ECHO_CMD_LEN))
			return;
	}
	conn_advance(t, c);
}

/* A connection with nothing to do: closed loop sends again at once; open
 * loop takes the oldest request that is already due, else waits. */
void lg_conn_ready(struct lg_thread *t, struct lg_conn *c)
{
	c->state = ST_READY;
	if (t->opt->mode != MODE_RR)
		return;
	uint64_t now = lg_now_ns();
	if (t->rate <= 0) {
		request_start(t, c, now, t->opt->size);
	} else if (t->next_due && t->next_due <= now) {
		uint64_t due = t->next_due;
		t->next_due += (uint64_t)(1e9 / t->rate);
		request_start(t, c, due, t->opt->size);
	} else if (!c->in_ready_stack) {
		c->in_ready_stack = true;
		t->ready_stack[t->nready++] = c->idx;
	}
}

/* The server has accepted us (TLS 1.2 Finished, or a TLS 1.3 ticket). */
static void conn_confirmed(struct lg_thread *t, struct lg_conn *c)
{
	uint64_t now = lg_now_ns();
	c->t_progress = now;
	switch (t->opt->mode) {
	case MODE_HANDSHAKE:
	case MODE_RESUME:
		/* Open loop: t_start is the scheduled start, and only the
		 * connections scheduled inside the window count. */
		if (t->measuring && (!lg_hs_open_loop(t->opt) || c->t_start >= t->t_measure)) {
			t->st.handshakes++;
			t->st.resumed += SSL_session_reused(c->ssl) ? 1 : 0;
			hist_record(&t->st.hs_lat, now - c->t_start);
		}
		lg_conn_close(t, c);
		break;
	case MODE_RR:
		t->ramped++;
		lg_conn_ready(t, c);
		break;
	case MODE_IDLE:
		/* One byte through the relay: the server's backend leg exists too. */
		request_start(t, c, now, 1);
		break;
	case MODE_BULK_UP:
	case MODE_BULK_DOWN:
		t->ramped++;
		c->state = ST_BULK;
		c->preface_sent = true;
		(void)tls_write(t, c, t->opt->mode == MODE_BULK_UP ? ECHO_CMD_SINK : ECHO_CMD_SRCE,
				ECHO_CMD_LEN);
		break;
	default:
		break;
	}
}

static void step_handshake(struct lg_thread *t, struct lg_conn *c)
{
	int rc = SSL_do_handshake(c->ssl);
	if (rc == 1) {
		c->t_progress = lg_now_ns();
		c->state = ST_CONFIRM;
		return;
	}
	int e = SSL_get_error(c->ssl, rc);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return;
	lg_conn_fail(t, c, SSL_get_verify_result(c->ssl) != X509_V_OK ? ERR_VERIFY : ERR_HANDSHAKE);
}

/* Consume whatever arrived while nothing is expected: tickets are fine,
 * application bytes are not. */
static void step_drain(struct lg_thread *t, struct lg_conn *c)
{
	int n = tls_read(t, c, t->scratch, t->rx_cap);
	if (n > 0)
		lg_conn_fail(t, c, ERR_ECHO);
}

static void step_request(struct lg_thread *t, struct lg_conn *c)
{
	size_t size = t->opt->mode == MODE_IDLE ? 1 : t->opt->size;
	while (c->req_left > 0) {
		size_t k = size - c->req_left, n = c->req_left < PATTERN_LEN ? c->req_left : PATTERN_LEN;
		if (!tls_write(t, c, pattern + ((c->pattern + k) & 0xff), n))
			return;
		c->req_left -= n;
	}
	int n;
	while (c->resp_left > 0 && (n = tls_read(t, c, t->scratch, t->rx_cap)) > 0) {
		size_t k = size - c->resp_left;
		if ((size_t)n > c->resp_left || memcmp(t->scratch, pattern + ((c->pattern + k) & 0xff), (size_t)n)) {
			lg_conn_fail(t, c, ERR_ECHO);
			return;
		}
		c->resp_left -= (size_t)n;
		c->t_progress = lg_now_ns();
	}
	if (c->state != ST_REQUEST || c->resp_left > 0)
		return;
	if (t->opt->mode == MODE_IDLE) {
		t->st.established++;
		c->opening = false;
		t->opening--;
		lg_established_add(1);
		c->state = ST_READY;
		return;
	}
	if (t->measuring && c->t_start >= t->t_measure) {
		t->st.requests++;
		hist_record(&t->st.rr_lat, lg_now_ns() - c->t_start);
	}
	lg_conn_ready(t, c);
}

static void step_bulk(struct lg_thread *t, struct lg_conn *c)
{
	if (t->opt->mode == MODE_BULK_UP) {
		/* Keep at most one send buffer of ciphertext queued. */
		while (BIO_ctrl_pending(c->wbio) + t->opt->size < t->tx_cap) {
			if (!tls_write(t, c, pattern, t->opt->size))
				return;
			if (t->measuring)
				t->st.bytes_up += t->opt->size;
		}
		step_drain(t, c);
		return;
	}
	int n;
	while ((n = tls_read(t, c, t->scratch, t->rx_cap)) > 0)
		if (t->measuring)
			t->st.bytes_down += (uint64_t)n;
}

/* The one function that advances a connection: run TLS as far as the bytes
 * at hand allow, then send what it produced and keep a receive armed. */
static void conn_advance(struct lg_thread *t, struct lg_conn *c)
{
	for (;;) {
		enum lg_state before = c->state;
		switch (c->state) {
		case ST_HANDSHAKE:
			step_handshake(t, c);
			break;
		case ST_CONFIRM:
			if (SSL_version(c->ssl) == TLS1_3_VERSION && !c->got_ticket)
				step_drain(t, c);
			if (c->state == ST_CONFIRM &&
			    (SSL_version(c->ssl) != TLS1_3_VERSION || c->got_ticket))
				conn_confirmed(t, c);
			break;
		case ST_READY:
			step_drain(t, c);
			break;
		case ST_REQUEST:
			step_request(t, c);
			break;
		case ST_BULK:
			step_bulk(t, c);
			break;
		case ST_FREE:
		case ST_CONNECTING:
		case ST_CLOSING:
			return;
		default:
			log_err("thread %u: slot %u in impossible state %d", t->id, c->idx, c->state);
			return;
		}
		if (c->state == before)
			break;
	}
	if (c->state == ST_CLOSING || c->state == ST_FREE || c->state == ST_CONNECTING)
		return;
	conn_flush(t, c);
	if (!c->recv_armed)
		arm_recv(t, c);
}

static void on_connect(struct lg_thread *t, struct lg_conn *c, int res)
{
	if (c->state == ST_CLOSING)
		return;
	if (res < 0) {
		lg_conn_fail(t, c, ERR_CONNECT);
		return;
	}
	if (conn_tls_setup(t, c) < 0) {
		log_ossl(LOG_LVL_ERR, "thread %u: cannot create a TLS client", t->id);
		lg_conn_fail(t, c, ERR_HANDSHAKE);
		return;
	}
	c->state = ST_HANDSHAKE;
	c->t_progress = lg_now_ns();
	conn_advance(t, c);
}

static void on_recv(struct lg_thread *t, struct lg_conn *c, int res)
{
	c->recv_armed = false;
	if (c->state == ST_CLOSING)
		return;
	if (res == 0) {
		lg_conn_fail(t, c, ERR_EOF);
		return;
	}
	if (res < 0) {
		lg_conn_fail(t, c, ERR_RESET);
		return;
	}
	if (BIO_write(c->rbio, c->rx, res) != res) {
		lg_conn_fail(t, c, ERR_TLS_IO);
		return;
	}
	conn_advance(t, c);
}

static void on_send(struct lg_thread *t, struct lg_conn *c, int res)
{
	c->send_armed = false;
	if (c->state == ST_CLOSING)
		return;
	if (res < 0) {
		lg_conn_fail(t, c, ERR_SEND);
		return;
	}
	c->tx_off += (size_t)res;
	if (c->tx_off < c->tx_len) {
		arm_send(t, c);
		return;
	}
	conn_advance(t, c);
}

/* The single place completions are decoded. */
void lg_dispatch(struct lg_thread *t, const struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	enum lg_op op = (enum lg_op)(ud & 0xff);
	uint32_t idx = (uint32_t)(ud >> 32);

	if (op == OPK_CANCEL)
		return;
	if (idx >= t->nconns) {
		log_err("thread %u: completion for slot %u of %u", t->id, idx, t->nconns);
		return;
	}
	struct lg_conn *c = &t->conns[idx];
	c->inflight--;
	switch (op) {
	case OPK_CONNECT:
		on_connect(t, c, cqe->res);
		break;
	case OPK_RECV:
		on_recv(t, c, cqe->res);
		break;
	case OPK_SEND:
		on_send(t, c, cqe->res);
		break;
	default:
		log_err("thread %u: unknown completion op %d", t->id, op);
		break;
	}
	if (c->state == ST_CLOSING && c->inflight == 0)
		conn_release(t, c);
}

