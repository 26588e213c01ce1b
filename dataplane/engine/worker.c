/*
 * worker.c: one mtlsd event loop: its ring, listeners, connection table,
 * timeouts, and the single place where io_uring completions are decoded.
 *
 * Life of a worker: main opens its listening sockets, the thread creates
 * its ring (so SINGLE_ISSUER binds it to this thread), registers the
 * provided-buffer ring, arms multishot accepts, the periodic tick and the
 * wake-up read, then loops on io_uring_submit_and_wait until it was asked
 * to drain and every connection is gone.
 */
#include "worker.h"

#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "certinfo.h"
#include "conn.h"
#include "control.h"
#include "generation.h"
#include "listener.h"
#include "log.h"
#include "string_table.h"
#include "uring_compat.h"

struct engine engine;

#define WORKER_RING_ENTRIES 1024

static const char *const op_names[OP_MAX] = {
	[OP_NONE] = "none",
	[OP_ACCEPT] = "accept",
	[OP_TICK] = "tick",
	[OP_WAKE] = "wake",
	[OP_CLIENT_RECV] = "client_recv",
	[OP_CLIENT_FILL] = "client_fill",
	[OP_CLIENT_SEND_RECORDS] = "client_send_records",
	[OP_CLIENT_SEND_PLAIN] = "client_send_plain",
	[OP_CLIENT_SEND_CONTROL] = "client_send_control",
	[OP_CLIENT_SHUTDOWN] = "client_shutdown",
	[OP_BACKEND_CONNECT] = "backend_connect",
	[OP_CONNECT_TIMEOUT] = "connect_timeout",
	[OP_BACKEND_RECV] = "backend_recv",
	[OP_BACKEND_SEND] = "backend_send",
	[OP_BACKEND_SEND_HEADER] = "backend_send_header",
	[OP_BACKEND_SEND_DIRECT] = "backend_send_direct",
	[OP_BACKEND_SHUTDOWN] = "backend_shutdown",
	[OP_CANCEL] = "cancel",
	[OP_CONTROL] = "control",
	[OP_ASYNC_POLL] = "async_poll",
};

DEFINE_STRING_TABLE(uring_op, enum uring_op, op_names, "unknown")

static const char *const close_names[CLOSE_REASON_MAX] = {
	[CLOSE_COMPLETE] = "complete",
	[CLOSE_HANDSHAKE_FAILED] = "handshake_failed",
	[CLOSE_HANDSHAKE_TIMEOUT] = "handshake_timeout",
	[CLOSE_IDLE_TIMEOUT] = "idle_timeout",
	[CLOSE_BACKEND_CONNECT_FAILED] = "backend_connect_failed",
	[CLOSE_CLIENT_ERROR] = "client_error",
	[CLOSE_BACKEND_ERROR] = "backend_error",
	[CLOSE_TLS_ERROR] = "tls_error",
	[CLOSE_DRAIN] = "drain",
	[CLOSE_NO_MEMORY] = "no_memory",
	[CLOSE_DROPPED] = "dropped",
	[CLOSE_HANDSHAKE_EVICTED] = "handshake_evicted",
	[CLOSE_PROXY_HEADER_TOO_LARGE] = "proxy_header_too_large",
};

DEFINE_STRING_TABLE(close_reason, enum close_reason, close_names, "unknown")

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void worker_buf_return(struct worker *w, uint16_t bid)
{
	w->bufs_out--;
	if (!w->br)
		return; /* tearing down: the ring is gone */
	io_uring_buf_ring_add(w->br, worker_buf(w, bid), WORKER_BUF_SIZE, bid,
			      io_uring_buf_ring_mask(WORKER_BUF_COUNT), 0);
	io_uring_buf_ring_advance(w->br, 1);
}

struct cert_identity *worker_identity_get(struct worker *w)
{
	if (w->n_id_free > 0)
		return w->id_free[--w->n_id_free];
	return malloc(sizeof(struct cert_identity));
}

void worker_identity_put(struct worker *w, struct cert_identity *id)
{
	if (!id)
		return;
	if (w->n_id_free < WORKER_ID_CACHE)
		w->id_free[w->n_id_free++] = id;
	else
		free(id);
}

void workers_sum_counters(struct worker *ws, unsigned n, struct worker_counters *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned i = 0; i < n; i++) {
		const struct worker_counters *c = &ws[i].counters;
		sum->accepted += c->accepted;
		sum->refused_limit += c->refused_limit;
		sum->refused_source += c->refused_source;
		for (unsigned k = 0; k < EVICT_CAUSE_MAX; k++)
			sum->evicted[k] += c->evicted[k];
		for (unsigned k = 0; k < HS_OUTCOME_MAX; k++)
			sum->handshakes[k] += c->handshakes[k];
		sum->backend_connect_failed += c->backend_connect_failed;
		for (unsigned k = 0; k < CLOSE_REASON_MAX; k++)
			sum->closes[k] += c->closes[k];
		sum->bytes_client_to_backend += c->bytes_client_to_backend;
		sum->bytes_backend_to_client += c->bytes_backend_to_client;
		sum->recv_nobufs += c->recv_nobufs;
		for (unsigned p = 0; p <= CFG_MAX_PARTNERS; p++)
			for (unsigned k = 0; k < HS_OUTCOME_MAX; k++)
				sum->partner_handshakes[p][k] += c->partner_handshakes[p][k];
	}
}

void worker_request_drain(struct worker *w)
{
	uint64_t one = 1;
	if (w->wake_fd >= 0 && write(w->wake_fd, &one, sizeof(one)) < 0)
		log_warn("worker %u: cannot signal drain: %s", w->id, strerror(errno));
}

int worker_open_listeners(struct worker *w, const struct cfg_addr *addrs, size_t n, char *err,
			  size_t errlen)
{
	w->n_listen = 0;
	for (size_t i = 0; i < n; i++) {
		int fd;
		int rc = listener_open(&addrs[i], &fd);
		if (rc < 0) {
			snprintf(err, errlen, "cannot listen on %s: %s", addrs[i].text, strerror(-rc));
			return rc;
		}
		w->listen_fds[w->n_listen++] = fd;
	}
	w->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (w->wake_fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Worker-level requests                                               */

void worker_arm_accept(struct worker *w, uint32_t li)
{
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_multishot_accept(sqe, w->listen_fds[li], NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud_pack(OP_ACCEPT, li, WORKER_INCARNATION));
}

static void arm_tick(struct worker *w)
{
	w->tick_ts.tv_sec = 0;
	w->tick_ts.tv_nsec = WORKER_TICK_MS * 1000000ll;
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_timeout(sqe, &w->tick_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_pack(OP_TICK, 0, WORKER_INCARNATION));
}

static void arm_wake(struct worker *w)
{
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_read(sqe, w->wake_fd, &w->wake_buf, sizeof(w->wake_buf), 0);
	io_uring_sqe_set_data64(sqe, ud_pack(OP_WAKE, 0, WORKER_INCARNATION));
}

/* ------------------------------------------------------------------ */
/* Tick: timeouts without per-connection timers                        */

static void close_one(struct conn *c, void *arg)
{
	const enum close_reason *reason = arg;

	if (c->state == CONN_FLUSH_CLOSE)
		conn_close(c, c->close_reason); /* had its chance to flush */
	else
		conn_close_gracefully(c, *reason);
}

static void on_tick(struct worker *w)
{
	const struct mtlsd_config *cfg = &w->gen->cfg;
	uint64_t now = now_ns();
	uint64_t idle_ns = (uint64_t)cfg->idle_timeout_ms * 1000000ull;
	struct list_node *n;

	/* Handshakes are in start order: the scan stops at the first one in
	 * time (shorter for those without a ClientHello under pressure). */
	admission_expire_handshakes(w, now);
	/* The summary of refusal lines held back in a second that has ended. */
	audit_refusals_flush();
	/* Established connections are in LRU order: the head is the idlest. */
	while ((n = list_first(&w->established))) {
		struct conn *c = list_entry(n, struct conn, timer);
		if (c->last_active_ns + idle_ns > now)
			break;
		conn_close(c, CLOSE_IDLE_TIMEOUT);
	}
	if (w->draining && now >= w->drain_deadline_ns && w->live > 0) {
		log_info("worker %u: drain timeout: closing %u connections", w->id, w->live);
		enum close_reason drain = CLOSE_DRAIN;
		worker_for_each_conn(w, close_one, &drain);
	}
	for (size_t i = 0; i < w->n_listen; i++) {
		if (w->accept_paused[i] && !w->draining) {
			w->accept_paused[i] = false;
			worker_arm_accept(w, (uint32_t)i);
		}
	}
	arm_tick(w);
}

static void start_drain(struct worker *w)
{
	if (w->draining)
		return;
	w->draining = true;
	w->drain_deadline_ns = now_ns() + (uint64_t)w->gen->cfg.drain_timeout_ms * 1000000ull;
	for (size_t i = 0; i < w->n_listen; i++) {
		struct io_uring_sqe *sqe = worker_sqe(w);
		io_uring_prep_cancel64(sqe, ud_pack(OP_ACCEPT, (uint32_t)i, WORKER_INCARNATION), 0);
		io_uring_sqe_set_data64(sqe, ud_pack(OP_CANCEL, 0, WORKER_INCARNATION));
	}
	/* Submit the cancels before closing: the ring holds its own file
	 * reference, so the sockets really go away once the accepts are gone. */
	(void)io_uring_submit(&w->ring);
	for (size_t i = 0; i < w->n_listen; i++) {
		close(w->listen_fds[i]);
		w->listen_fds[i] = -1;
	}
	log_info("worker %u: draining %u connections (up to %u ms)", w->id, w->live,
		 w->gen->cfg.drain_timeout_ms);
}

/* ------------------------------------------------------------------ */
/* The one place completions are decoded                              */

static void dispatch_worker_op(struct worker *w, enum uring_op op, uint32_t idx, int res,
			       unsigned flags)
{
	switch (op) {
	case OP_ACCEPT:
		worker_on_accept(w, idx, res, flags);
		break;
	case OP_TICK:
		on_tick(w);
		break;
	case OP_WAKE:
		start_drain(w);
		break;
	case OP_CANCEL:
		break;
	case OP_CONTROL:
		control_on_worker_message(w);
		break;
	default:
		log_warn("worker %u: completion for unknown worker op %u", w->id, op);
		break;
	}
}

static void dispatch(struct worker *w, const struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	enum uring_op op = ud_op(ud);
	uint32_t idx = ud_index(ud), inc = ud_incarnation(ud);
	int res = cqe->res;
	int bid = NO_BUF;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		w->bufs_out++;
	}
	if (inc == WORKER_INCARNATION) {
		dispatch_worker_op(w, op, idx, res, cqe->flags);
		return;
	}
	struct conn *c = worker_conn_lookup(w, idx, inc);
	if (!c) {
		/* A completion for a slot that was freed and reused. */
		if (bid != NO_BUF)
			worker_buf_return(w, (uint16_t)bid);
		return;
	}
	conn_dispatch(c, op, res, bid);
}

/* Buffers came back: let parked connections receive again. */
static void unpark_waiters(struct worker *w)
{
	struct list_node *n;
	/* One waiter per free buffer: waking more would only earn them
	 * another -ENOBUFS. */
	unsigned budget = w->bufs_out < WORKER_BUF_COUNT ? WORKER_BUF_COUNT - w->bufs_out : 0;
	while (budget-- > 0 && (n = list_first(&w->buf_waiters)))
		conn_unpark(list_entry(n, struct conn, wait));
}

/* ------------------------------------------------------------------ */
/* Thread                                                              */

static int worker_init(struct worker *w)
{
	unsigned flags = 0;
	int rc = uring_compat_queue_init(WORKER_RING_ENTRIES, &w->ring, &flags);
	if (rc < 0) {
		log_err("worker %u: io_uring_queue_init: %s", w->id, strerror(-rc));
		return rc;
	}
	w->ring_ok = true;
	log_debug("worker %u: ring flags 0x%x", w->id, flags);

	/* Anonymous mapping: pages are only backed once a receive touches them. */
	size_t len = (size_t)WORKER_BUF_COUNT * WORKER_BUF_SIZE;
	void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	w->bufs = mem;
	rc = uring_compat_setup_buf_ring(&w->ring, WORKER_BUF_COUNT, WORKER_BGID, &w->br);
	if (rc < 0) {
		log_err("worker %u: cannot register the receive buffer ring: %s", w->id, strerror(-rc));
		return rc;
	}
	for (unsigned i = 0; i < WORKER_BUF_COUNT; i++)
		io_uring_buf_ring_add(w->br, worker_buf(w, (uint16_t)i), WORKER_BUF_SIZE, (uint16_t)i,
				      io_uring_buf_ring_mask(WORKER_BUF_COUNT), (int)i);
	io_uring_buf_ring_advance(w->br, WORKER_BUF_COUNT);

	w->gen = generation_acquire();
	/* Room beyond max_connections for handshakes evicted to make room:
	 * their slot is free only once their cancelled requests completed,
	 * while the newcomer already needs one (admission.h). */
	uint64_t cap = (uint64_t)w->gen->cfg.max_connections + WORKER_EVICT_SLACK;
	w->cap = cap < UD_INDEX_MAX ? (uint32_t)cap : UD_INDEX_MAX;
	w->conns = calloc(w->cap, sizeof(*w->conns));
	w->free_idx = calloc(w->cap, sizeof(*w->free_idx));
	ENSURE(w->conns && w->free_idx, ENOMEM);
	for (uint32_t i = 0; i < w->cap; i++)
		w->free_idx[i] = w->cap - 1 - i;
	w->n_free = w->cap;
	list_init(&w->handshakes);
	list_init(&w->established);
	list_init(&w->buf_waiters);
	chunk_pool_init(&w->chunks, 256);

	for (uint32_t i = 0; i < w->n_listen; i++)
		worker_arm_accept(w, i);
	arm_tick(w);
	arm_wake(w);
	rc = io_uring_submit(&w->ring);
	return rc < 0 ? rc : 0;
}

static void worker_teardown(struct worker *w)
{
	/* Exiting the ring cancels and reaps whatever is still in flight, so
	 * only then may connection memory go. */
	if (w->ring_ok) {
		uring_compat_free_buf_ring(&w->ring, w->br, WORKER_BUF_COUNT, WORKER_BGID);
		io_uring_queue_exit(&w->ring);
		w->ring_ok = false;
		w->br = NULL;
	}
	for (uint32_t i = 0; w->conns && i < w->cap; i++) {
		struct conn *c = w->conns[i];
		if (c && c->state != CONN_FREE)
			conn_release(c);
		free(c);
	}
	free(w->conns);
	free(w->free_idx);
	w->conns = NULL;
	w->free_idx = NULL;
	chunk_pool_destroy(&w->chunks);
	while (w->n_id_free > 0)
		free(w->id_free[--w->n_id_free]);
	if (w->bufs)
		munmap(w->bufs, (size_t)WORKER_BUF_COUNT * WORKER_BUF_SIZE);
	w->bufs = NULL;
	for (size_t i = 0; i < w->n_listen; i++)
		if (w->listen_fds[i] >= 0)
			close(w->listen_fds[i]);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	w->wake_fd = -1;
	generation_unref(w->gen);
	w->gen = NULL;
}

/*
 * Requests queued while a batch of completions is handled reach the kernel
 * at the latest this long after the previous submission. Without it they
 * waited for the end of the batch: a TLS handshake step costs 0.1-1 ms of
 * CPU, so with 32 clients the worker held every reply of a ~30 ms batch
 * back, the clients then answered in one burst while the worker sat idle,
 * and both sides ran in lockstep at ~0.6 core each (docs/benchmarks.md).
 * Cheap completions (relay sends and receives, a few µs each) still share
 * one io_uring_enter.
 */
#define WORKER_SUBMIT_NS (50 * 1000ull)

static int worker_loop(struct worker *w)
{
	while (!w->stop) {
		int rc = io_uring_submit_and_wait(&w->ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
			log_err("worker %u: io_uring_submit_and_wait: %s", w->id, strerror(-rc));
			return rc;
		}
		/* Only the completions already posted: io_uring_for_each_cqe
		 * re-reads the tail, and the submissions below post more, so
		 * under steady load the batch never ended and what follows it
		 * (parked receivers, the drain's end) starved. The loadgen had
		 * the same stall (docs/benchmarks.md). */
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0, budget = io_uring_cq_ready(&w->ring);
		uint64_t submitted_ns = now_ns();
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			if (budget-- == 0)
				break;
			dispatch(w, cqe);
			seen++;
			if (io_uring_sq_ready(&w->ring) == 0)
				continue;
			uint64_t t = now_ns();
			if (t - submitted_ns < WORKER_SUBMIT_NS)
				continue;
			/* Free the completions handled so far first: the kernel
			 * may post new ones while we are in it. */
			io_uring_cq_advance(&w->ring, seen);
			seen = 0;
			(void)io_uring_submit(&w->ring);
			submitted_ns = t;
		}
		io_uring_cq_advance(&w->ring, seen);
		if (!list_empty(&w->buf_waiters))
			unpark_waiters(w);
		if (w->draining && w->live == 0)
			w->stop = true;
	}
	return 0;
}

static void pin_cpu(struct worker *w)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu <= 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(w->id % (unsigned)ncpu, &set);
	int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (rc != 0)
		log_warn("worker %u: cannot pin to CPU %u: %s", w->id, w->id % (unsigned)ncpu, strerror(rc));
}

void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t one = 1;

	struct generation *g = generation_acquire();
	bool pin = g->cfg.cpu_pin;
	generation_unref(g);
	if (pin)
		pin_cpu(w);
	w->init_rc = worker_init(w);
	sem_post(&engine.started);
	if (w->init_rc == 0)
		w->init_rc = worker_loop(w);
	worker_teardown(w);
	if (write(engine.done_fd, &one, sizeof(one)) < 0)
		log_err("worker %u: cannot report exit: %s", w->id, strerror(errno));
	return NULL;
}
