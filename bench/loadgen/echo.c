/*
 * echo.c: the benchmark backend (loadgen --serve-echo HOST:PORT).
 *
 * Every server under test relays to this one process, so the backend costs
 * the same for all of them. A connection may start with a PROXY header (v2
 * from mtlsd and HAProxy, v1 from nginx's stream module), which is
 * skipped; then four bytes choose the behaviour: ECHO sends back every
 * byte, SINK reads and discards, SRCE sends an endless stream. One
 * io_uring, one thread, plain sockets; a connection with a request in
 * flight is freed only when that request has completed.
 */
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadgen.h"
#include "log.h"
#include "preamble.h"

#define ECHO_BUF     PREAMBLE_MAX /* a whole preamble fits */
#define SOURCE_CHUNK (64 * 1024)

enum echo_state { E_FREE = 0, E_PREAMBLE, E_ECHO, E_SINK, E_SOURCE, E_CLOSING };
enum echo_op { EOP_ACCEPT = 1, EOP_RECV, EOP_SEND, EOP_CANCEL };

struct echo_conn {
	enum echo_state state;
	int fd;
	unsigned inflight;
	bool send_armed;
	size_t len, off; /* buf[off..len) still to send (ECHO), or preamble bytes so far */
	uint8_t buf[ECHO_BUF];
};

struct echo_server {
	struct io_uring ring;
	int lfd;
	struct echo_conn **conns;
	unsigned nconns, cap;
	unsigned *free_idx, nfree;
};

static uint8_t source_bytes[SOURCE_CHUNK];

static uint64_t pack(enum echo_op op, unsigned idx)
{
	return (uint64_t)op | (uint64_t)idx << 32;
}

static struct io_uring_sqe *sqe_get(struct echo_server *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
	if (!sqe) {
		(void)io_uring_submit(&s->ring);
		sqe = io_uring_get_sqe(&s->ring);
	}
	return sqe;
}

static void arm_accept(struct echo_server *s)
{
	struct io_uring_sqe *sqe = sqe_get(s);
	io_uring_prep_multishot_accept(sqe, s->lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, pack(EOP_ACCEPT, 0));
}

static void arm_recv(struct echo_server *s, unsigned idx, void *buf, size_t len)
{
	struct echo_conn *c = s->conns[idx];
	struct io_uring_sqe *sqe = sqe_get(s);
	io_uring_prep_recv(sqe, c->fd, buf, len, 0);
	io_uring_sqe_set_data64(sqe, pack(EOP_RECV, idx));
	c->inflight++;
}

static void arm_send(struct echo_server *s, unsigned idx, const void *buf, size_t len)
{
	struct echo_conn *c = s->conns[idx];
	struct io_uring_sqe *sqe = sqe_get(s);
	io_uring_prep_send(sqe, c->fd, buf, len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, pack(EOP_SEND, idx));
	c->send_armed = true;
	c->inflight++;
}

static void conn_close(struct echo_server *s, unsigned idx)
{
	struct echo_conn *c = s->conns[idx];
	if (c->state == E_CLOSING)
		return;
	c->state = E_CLOSING;
	if (c->inflight > 0) {
		struct io_uring_sqe *sqe = sqe_get(s);
		io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(sqe, pack(EOP_CANCEL, 0));
	}
}

static void conn_release(struct echo_server *s, unsigned idx)
{
	struct echo_conn *c = s->conns[idx];
	close(c->fd);
	c->fd = -1;
	c->state = E_FREE;
	s->free_idx[s->nfree++] = idx;
}

/* Bytes arrived (res > 0) for connection idx: act on them. */
static void on_data(struct echo_server *s, unsigned idx, size_t n)
{
	struct echo_conn *c = s->conns[idx];
	switch (c->state) {
	case E_PREAMBLE: {
		c->len += n;
		enum echo_cmd cmd = CMD_NONE;
		int used = preamble_parse(c->buf, c->len, &cmd);
		if (used < 0 || (used == 0 && c->len >= PREAMBLE_MAX)) {
			conn_close(s, idx);
			return;
		}
		if (used == 0) {
			arm_recv(s, idx, c->buf + c->len, ECHO_BUF - c->len);
			return;
		}
		enum echo_state st = cmd == CMD_SOURCE ? E_SOURCE : cmd == CMD_SINK ? E_SINK : E_ECHO;
		c->state = st;
		c->off = (size_t)used;
		if (st == E_SOURCE)
			arm_send(s, idx, source_bytes, SOURCE_CHUNK);
		if (st == E_ECHO && c->off < c->len)
			arm_send(s, idx, c->buf + c->off, c->len - c->off);
		else
			arm_recv(s, idx, c->buf, ECHO_BUF);
		return;
	}
	case E_ECHO:
		c->off = 0;
		c->len = n;
		arm_send(s, idx, c->buf, n);
		return;
	case E_SINK:
	case E_SOURCE:
		arm_recv(s, idx, c->buf, ECHO_BUF);
		return;
	default:
		return;
	}
}

static void on_sent(struct echo_server *s, unsigned idx, size_t n)
{
	struct echo_conn *c = s->conns[idx];
	c->send_armed = false;
	switch (c->state) {
	case E_SOURCE:
		arm_send(s, idx, source_bytes, SOURCE_CHUNK);
		return;
	case E_ECHO:
		c->off += n;
		if (c->off < c->len)
			arm_send(s, idx, c->buf + c->off, c->len - c->off);
		else
			arm_recv(s, idx, c->buf, ECHO_BUF);
		return;
	default:
		return;
	}
}

static int conn_new(struct echo_server *s, int fd)
{
	if (s->nfree == 0) {
		unsigned cap = s->cap ? s->cap * 2 : 1024;
		struct echo_conn **nc = realloc(s->conns, cap * sizeof(*nc));
		unsigned *nf = nc ? realloc(s->free_idx, cap * sizeof(*nf)) : NULL;
		if (nc)
			s->conns = nc;
		if (nf)
			s->free_idx = nf;
		ENSURE(nc && nf, ENOMEM);
		for (unsigned i = s->cap; i < cap; i++)
			s->conns[i] = NULL;
		for (unsigned i = cap; i > s->cap; i--)
			s->free_idx[s->nfree++] = i - 1;
		s->cap = cap;
	}
	unsigned idx = s->free_idx[s->nfree - 1];
	if (!s->conns[idx]) {
		s->conns[idx] = malloc(sizeof(struct echo_conn));
		ENSURE_PTR(s->conns[idx], ENOMEM);
	}
	s->nfree--;
	struct echo_conn *c = s->conns[idx];
	c->state = E_PREAMBLE;
	c->fd = fd;
	c->inflight = 0;
	c->send_armed = false;
	c->len = c->off = 0;
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	arm_recv(s, idx, c->buf, ECHO_BUF);
	return 0;
}

/* The single place the echo server decodes completions. */
static void dispatch(struct echo_server *s, const struct io_uring_cqe *cqe)
{
	enum echo_op op = (enum echo_op)(cqe->user_data & 0xff);
	unsigned idx = (unsigned)(cqe->user_data >> 32);

	switch (op) {
	case EOP_ACCEPT:
		if (cqe->res >= 0 && conn_new(s, cqe->res) < 0) {
			log_warn("echo: out of memory, refusing a connection");
			close(cqe->res);
		}
		if (!(cqe->flags & IORING_CQE_F_MORE))
			arm_accept(s);
		return;
	case EOP_CANCEL:
		return;
	case EOP_RECV:
	case EOP_SEND:
		break;
	default:
		log_err("echo: unknown completion op %d", op);
		return;
	}
	struct echo_conn *c = s->conns[idx];
	c->inflight--;
	if (c->state != E_CLOSING) {
		if (cqe->res <= 0)
			conn_close(s, idx);
		else if (op == EOP_RECV)
			on_data(s, idx, (size_t)cqe->res);
		else
			on_sent(s, idx, (size_t)cqe->res);
	}
	if (c->state == E_CLOSING && c->inflight == 0)
		conn_release(s, idx);
}

static int listen_on(const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (lg_parse_addr(addr, &ss, &len) < 0) {
		log_err("--serve-echo %s: expected HOST:PORT with a numeric host", addr);
		return -EINVAL;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0) {
		int err = errno;
		log_err("--serve-echo %s: %s", addr, strerror(err));
		close(fd);
		return -err;
	}
	char host[64] = "";
	len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	uint16_t port = ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						: ((struct sockaddr_in6 *)&ss)->sin6_port;
	snprintf(host, sizeof(host), "%.*s", (int)(strrchr(addr, ':') - addr), addr);
	printf("listening %s:%u\n", host, ntohs(port));
	fflush(stdout);
	return fd;
}

int echo_serve(const char *addr)
{
	struct echo_server s = { 0 };
	int rc;

	s.lfd = listen_on(addr);
	if (s.lfd < 0)
		return s.lfd;
	rc = io_uring_queue_init(4096, &s.ring, 0);
	if (rc < 0) {
		log_err("echo: io_uring_queue_init: %s", strerror(-rc));
		close(s.lfd);
		return rc;
	}
	arm_accept(&s);
	while (!lg_stop_requested) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 200 * 1000000 };
		rc = io_uring_submit_and_wait_timeout(&s.ring, &cqe, 1, &ts, NULL);
		if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
			log_err("echo: io_uring_submit_and_wait: %s", strerror(-rc));
			break;
		}
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&s.ring, head, cqe) {
			dispatch(&s, cqe);
			seen++;
		}
		io_uring_cq_advance(&s.ring, seen);
	}
	/* Exiting the ring completes every request; then buffers can go. */
	io_uring_queue_exit(&s.ring);
	for (unsigned i = 0; i < s.cap; i++) {
		if (s.conns[i] && s.conns[i]->state != E_FREE)
			close(s.conns[i]->fd);
		free(s.conns[i]);
	}
	free(s.conns);
	free(s.free_idx);
	close(s.lfd);
	return 0;
}
