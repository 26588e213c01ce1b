/*
 * conn_submit.c: see conn_submit.h.
 */
#include "conn_submit.h"

#include <poll.h>
#include <sys/socket.h>

#include "ktls.h"
#include "worker.h"

struct io_uring_sqe *conn_sqe(struct conn *c, enum uring_op op)
{
	if (c->flags & CONN_F_CLOSE)
		return &c->w->sqe_sink;
	struct io_uring_sqe *sqe = worker_sqe(c->w);
	io_uring_sqe_set_data64(sqe, ud_pack(op, c->idx, c->incarnation));
	c->inflight++;
	return sqe;
}

void conn_submit_recv(struct conn *c, enum conn_side side)
{
	struct conn_dir *d = &c->dir[side];

	if ((d->flags & DIR_F_RECV_ARMED) || (c->flags & CONN_F_PARKED))
		return;
	struct io_uring_sqe *sqe = conn_sqe(c, side == CONN_CLIENT ? OP_CLIENT_RECV : OP_BACKEND_RECV);
	io_uring_prep_recv(sqe, d->fd, NULL, WORKER_BUF_SIZE, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = WORKER_BGID;
	d->flags |= DIR_F_RECV_ARMED;
}

void conn_submit_fill(struct conn *c, uint8_t *buf, size_t len)
{
	struct io_uring_sqe *sqe = conn_sqe(c, OP_CLIENT_FILL);
	io_uring_prep_recv(sqe, c->dir[CONN_CLIENT].fd, buf, len, MSG_WAITALL);
	c->dir[CONN_CLIENT].flags |= DIR_F_RECV_ARMED;
}

void conn_submit_records(struct conn *c)
{
	struct conn_dir *d = &c->dir[CONN_CLIENT];
	struct outq *q = &c->tls.out;

	if ((d->flags & DIR_F_SEND_ARMED) || outq_pending(q) == 0)
		return;
	struct io_uring_sqe *sqe = conn_sqe(c, OP_CLIENT_SEND_RECORDS);
	io_uring_prep_send(sqe, d->fd, q->chunk->data + q->off, outq_pending(q), MSG_NOSIGNAL);
	d->flags |= DIR_F_SEND_ARMED;
}

uint32_t conn_backend_pending(const struct conn *c)
{
	return c->big_header.data ? c->big_header.len - c->big_header.off : outq_pending(&c->to_backend);
}

void conn_submit_backend_queue(struct conn *c)
{
	struct conn_dir *d = &c->dir[CONN_BACKEND];
	struct io_uring_sqe *sqe;

	if ((d->flags & DIR_F_SEND_ARMED) || conn_backend_pending(c) == 0)
		return;
	if (c->big_header.data) {
		sqe = conn_sqe(c, OP_BACKEND_SEND_HEADER);
		io_uring_prep_send(sqe, d->fd, c->big_header.data + c->big_header.off,
				   c->big_header.len - c->big_header.off, MSG_NOSIGNAL);
	} else {
		struct outq *q = &c->to_backend;
		sqe = conn_sqe(c, OP_BACKEND_SEND);
		io_uring_prep_send(sqe, d->fd, q->chunk->data + q->off, outq_pending(q), MSG_NOSIGNAL);
	}
	d->flags |= DIR_F_SEND_ARMED;
}

void conn_submit_direct(struct conn *c, enum conn_side side)
{
	struct conn_dir *to = &c->dir[side], *from = &c->dir[!side];
	struct io_uring_sqe *sqe =
		conn_sqe(c, side == CONN_CLIENT ? OP_CLIENT_SEND_PLAIN : OP_BACKEND_SEND_DIRECT);

	io_uring_prep_send(sqe, to->fd, worker_buf(c->w, (uint16_t)from->bid) + from->off,
			   from->len - from->off, MSG_NOSIGNAL);
	to->flags |= DIR_F_SEND_ARMED;
}

void conn_submit_control(struct conn *c, struct ktls_msg *m)
{
	struct io_uring_sqe *sqe = conn_sqe(c, OP_CLIENT_SEND_CONTROL);
	io_uring_prep_sendmsg(sqe, c->dir[CONN_CLIENT].fd, &m->msg, MSG_NOSIGNAL);
	c->dir[CONN_CLIENT].flags |= DIR_F_SEND_ARMED;
}

/*
 * io_uring never completes IORING_OP_SHUTDOWN inline: every one is punted to
 * an io-wq thread, a thread wake-up per direction of every connection (~2%
 * of mtlsd's CPU per handshake in the profile, docs/benchmarks.md). A
 * shutdown(SHUT_WR) of a stream socket never blocks (it queues the FIN), so
 * it is done here, and a NOP carries the op's completion through the one
 * decoder as before (its result was never used: ENOTCONN after a reset
 * changes nothing). Callers shut a side only once nothing is in flight on
 * it (their close_notify or last send completed), so the order on the wire
 * is the same.
 */
void conn_submit_shutdown(struct conn *c, enum conn_side side)
{
	struct io_uring_sqe *sqe =
		conn_sqe(c, side == CONN_CLIENT ? OP_CLIENT_SHUTDOWN : OP_BACKEND_SHUTDOWN);
	(void)shutdown(c->dir[side].fd, SHUT_WR);
	io_uring_prep_nop(sqe);
	c->dir[side].flags |= DIR_F_SHUT;
}

void conn_submit_connect(struct conn *c, const struct sockaddr *addr, socklen_t len)
{
	struct io_uring_sqe *sqe = conn_sqe(c, OP_BACKEND_CONNECT);
	io_uring_prep_connect(sqe, c->dir[CONN_BACKEND].fd, addr, len);
	sqe->flags |= IOSQE_IO_LINK;
	sqe = conn_sqe(c, OP_CONNECT_TIMEOUT);
	io_uring_prep_link_timeout(sqe, &c->connect_timeout, 0);
}

void conn_submit_async_poll(struct conn *c, int fd)
{
	struct io_uring_sqe *sqe = conn_sqe(c, OP_ASYNC_POLL);
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	c->async_fd = fd;
	c->flags |= CONN_F_ASYNC_ARMED;
}

void conn_submit_cancel(struct conn *c, int fd)
{
	if (fd < 0)
		return;
	struct io_uring_sqe *sqe = conn_sqe(c, OP_CANCEL);
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
}
