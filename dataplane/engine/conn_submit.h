/*
 * conn_submit.h: every request a connection puts in its worker's ring.
 *
 * Each kind of request has its own op code (worker-t.h), set here and
 * nowhere else, so the completion says what it completes. Each helper
 * counts the request in c->inflight (a connection is freed only when none
 * is left) and sets the side's *_ARMED flag where there is one.
 *
 * A connection marked to close (CONN_F_CLOSE) submits nothing: conn_sqe()
 * then hands out a scratch SQE that is never submitted, so code that runs
 * on after the mark, up to the end of the dispatch, needs no check of its
 * own. The SQEs themselves come from worker_sqe() (worker_sqe.c), the seam
 * through which a unit test sees every request without a ring.
 */
#ifndef MTLSD_CONN_SUBMIT_H
#define MTLSD_CONN_SUBMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conn-t.h"

struct ktls_msg;

/* An SQE for c tagged with op and counted in flight; the scratch SQE when
 * c is marked to close. Never NULL. */
struct io_uring_sqe *conn_sqe(struct conn *c, enum uring_op op);

/* A receive into a ring buffer from side (OP_CLIENT_RECV/OP_BACKEND_RECV),
 * unless one is armed or the connection is parked. */
void conn_submit_recv(struct conn *c, enum conn_side side);

/* Handoff: receive exactly len bytes from the client into buf
 * (OP_CLIENT_FILL, MSG_WAITALL). */
void conn_submit_fill(struct conn *c, uint8_t *buf, size_t len);

/* The records OpenSSL queued for the client (OP_CLIENT_SEND_RECORDS),
 * unless a client send is armed or there are none. */
void conn_submit_records(struct conn *c);

/* What waits for the backend: the big PROXY header first
 * (OP_BACKEND_SEND_HEADER), else the to-backend queue (OP_BACKEND_SEND);
 * unless a backend send is armed or nothing waits. */
void conn_submit_backend_queue(struct conn *c);
/* Bytes of either that wait for the backend. */
uint32_t conn_backend_pending(const struct conn *c);

/* Offloaded: the bytes [off, len) of the ring buffer the other side
 * delivered, straight to side (OP_CLIENT_SEND_PLAIN or
 * OP_BACKEND_SEND_DIRECT). */
void conn_submit_direct(struct conn *c, enum conn_side side);

/* Offloaded: a control record toward the client (OP_CLIENT_SEND_CONTROL);
 * m must live until the completion. */
void conn_submit_control(struct conn *c, struct ktls_msg *m);

/* SHUT_WR toward side (OP_CLIENT_SHUTDOWN/OP_BACKEND_SHUTDOWN); the side
 * gets DIR_F_SHUT. */
void conn_submit_shutdown(struct conn *c, enum conn_side side);

/* Connect dir[CONN_BACKEND].fd to addr, linked to a timeout of
 * c->connect_timeout (OP_BACKEND_CONNECT + OP_CONNECT_TIMEOUT). */
void conn_submit_connect(struct conn *c, const struct sockaddr *addr, socklen_t len);

/* Poll fd for POLLIN (OP_ASYNC_POLL: an async engine's wait fd). */
void conn_submit_async_poll(struct conn *c, int fd);

/* Cancel everything in flight on fd (OP_CANCEL); nothing for fd < 0. */
void conn_submit_cancel(struct conn *c, int fd);

#endif
