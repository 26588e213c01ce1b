/*
 * thread.c: one load generator thread's life: set up its ring, slots and
 * TLS context, open the connections, loop on completions, pace the
 * open-loop requests, sweep for timeouts, and stop at the deadline.
 *
 * Phases: rr and bulk first ramp (every slot connected and handshaken),
 * then warm up, then measure for --duration. handshake and resume measure
 * from --warmup after the start; with --rate they start connections on a
 * schedule (open loop) rather than one as soon as another finished. idle opens --connections at most
 * --concurrency at a time and holds them until --hold or a signal. Every
 * mode ends with a drain (drain_begin).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "log.h"

#define SWEEP_NS    (100 * 1000000ull)
#define SCRATCH_LEN (64 * 1024)
#define DRAIN_NS      (2000 * 1000000ull)
#define DRAIN_POLL_NS (10 * 1000000ull)
#define SUBMIT_NS     (50 * 1000ull)

static int ring_init(struct lg_thread *t)
{
	unsigned entries = t->nconns * 2 < 4096 ? t->nconns * 2 : 4096;
	struct io_uring_params p = { 0 };
	if (entries < 256)
		entries = 256;
	/* One thread submits and reaps: tell the kernel so. Older kernels
	 * refuse the flags with -EINVAL; the plain ring works everywhere. */
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN;
	p.cq_entries = entries * 4;
	p.flags |= IORING_SETUP_CQSIZE;
	int rc = io_uring_queue_init_params(entries, &t->ring, &p);
	if (rc == -EINVAL) {
		memset(&p, 0, sizeof(p));
		rc = io_uring_queue_init_params(entries, &t->ring, &p);
	}
	return rc;
}

static int slots_init(struct lg_thread *t)
{
	const struct lg_options *o = t->opt;
	switch (o->mode) {
	case MODE_BULK_UP:
	case MODE_BULK_DOWN:
		t->rx_cap = t->tx_cap = 256 * 1024;
		if (t->tx_cap < 2 * o->size + 1024)
			t->tx_cap = 2 * o->size + 1024;
		break;
	case MODE_IDLE:
		t->rx_cap = t->tx_cap = 8 * 1024;
		break;
	default:
		t->rx_cap = t->tx_cap = 32 * 1024;
		break;
	}
	t->conns = calloc(t->nconns, sizeof(*t->conns));
	t->ready_stack = calloc(t->nconns, sizeof(*t->ready_stack));
	t->scratch = malloc(SCRATCH_LEN > t->rx_cap ? SCRATCH_LEN : t->rx_cap);
	ENSURE(t->conns && t->ready_stack && t->scratch, ENOMEM);
	for (unsigned i = 0; i < t->nconns; i++) {
		struct lg_conn *c = &t->conns[i];
		c->idx = i;
		c->fd = -1;
		c->rx = malloc(t->rx_cap);
		c->tx = malloc(t->tx_cap);
		ENSURE(c->rx && c->tx, ENOMEM);
	}
	return 0;
}

static void sweep(struct lg_thread *t, uint64_t now)
{
	uint64_t limit = (uint64_t)(t->opt->timeout_s * 1e9);
	t->t_sweep = now;
	for (unsigned i = 0; i < t->nconns; i++) {
		struct lg_conn *c = &t->conns[i];
		switch (c->state) {
		case ST_CONNECTING:
		case ST_HANDSHAKE:
		case ST_CONFIRM:
		case ST_REQUEST:
			/* t_progress may be a little after now: a connection started
			 * during this pump. */
			if (now > c->t_progress && now - c->t_progress > limit)
				lg_conn_fail(t, c, ERR_TIMEOUT);
			break;
		case ST_FREE: /* socket() failed earlier: try again */
			if (!t->stopping && t->opt->mode != MODE_IDLE && !lg_hs_open_loop(t->opt))
				lg_conn_start(t, c);
			break;
		default:
			break;
		}
	}
}

/* Give due requests to ready connections (rr open loop). */
static void pace(struct lg_thread *t, uint64_t now)
{
	while (t->nready > 0 && t->next_due && t->next_due <= now) {
		struct lg_conn *c = &t->conns[t->ready_stack[--t->nready]];
		c->in_ready_stack = false;
		if (c->state == ST_READY)
			lg_conn_ready(t, c);
	}
	if (t->measuring && t->next_due && t->next_due < now) {
		uint64_t late = (uint64_t)((double)(now - t->next_due) * t->rate / 1e9);
		if (late > t->st.backlog_max)
			t->st.backlog_max = late;
	}
}

/*
 * Open-loop handshakes: start every connection that is due on a free slot,
 * stamped with its scheduled time, so a server that falls behind is
 * charged for the queue it causes (latency runs from the schedule, not
 * from the moment a slot was free). Returns true when connections are due
 * but every slot is busy.
 */
static bool schedule_handshakes(struct lg_thread *t, uint64_t now)
{
	while (t->next_due && t->next_due <= now) {
		struct lg_conn *c = NULL;
		for (unsigned k = 0; k < t->nconns && !c; k++) {
			struct lg_conn *x = &t->conns[(t->next_free + k) % t->nconns];
			if (x->state == ST_FREE)
				c = x;
		}
		if (!c) {
			if (t->measuring) {
				uint64_t late = (uint64_t)((double)(now - t->next_due) * t->rate / 1e9);
				if (late > t->st.backlog_max)
					t->st.backlog_max = late;
			}
			return true;
		}
		t->next_free = (c->idx + 1) % t->nconns;
		uint64_t due = t->next_due;
		t->next_due += (uint64_t)(1e9 / t->rate);
		lg_conn_start(t, c);
		if (c->state != ST_FREE)
			c->t_start = due;
	}
	return false;
}

/*
 * The end: count nothing more, close established connections with
 * close_notify, and let handshakes in flight finish (for at most
 * DRAIN_NS) so servers do not log aborted handshakes for our stop.
 */
static void drain_begin(struct lg_thread *t, uint64_t now)
{
	t->stopping = true;
	t->measuring = false;
	t->t_stop = now;
	t->t_drain_end = now + DRAIN_NS;
	for (unsigned i = 0; i < t->nconns; i++) {
		struct lg_conn *c = &t->conns[i];
		switch (c->state) {
		case ST_READY:
		case ST_REQUEST:
		case ST_BULK:
			lg_conn_close(t, c);
			break;
		default:
			break;
		}
	}
}

static bool drain_done(struct lg_thread *t, uint64_t now)
{
	if (now >= t->t_drain_end)
		return true;
	for (unsigned i = 0; i < t->nconns; i++)
		if (t->conns[i].state != ST_FREE)
			return false;
	return true;
}

/* Phase changes, pacing, idle-mode opening; returns the next wake-up. */
static uint64_t pump(struct lg_thread *t)
{
	const struct lg_options *o = t->opt;
	uint64_t now = lg_now_ns();

	if (!t->t_measure && (t->ramped >= t->nconns || now - t->t_begin > (uint64_t)(o->timeout_s * 1e9))) {
		t->t_measure = now + (uint64_t)(o->warmup_s * 1e9);
		t->t_end = t->t_measure + (uint64_t)(o->duration_s * 1e9);
		if (o->mode == MODE_RR && t->rate > 0)
			t->next_due = now;
	}
	if (o->mode == MODE_IDLE && !t->t_end && o->hold_s > 0 && lg_established_total() >= o->connections)
		t->t_end = now + (uint64_t)(o->hold_s * 1e9);
	if (!t->measuring && t->t_measure && now >= t->t_measure)
		t->measuring = true;
	if (!t->stopping && ((t->t_end && now >= t->t_end) || lg_stop_requested))
		drain_begin(t, now);
	if (t->stopping) {
		t->drained = drain_done(t, now);
		return now + DRAIN_POLL_NS;
	}
	if (o->mode == MODE_RR && t->rate > 0)
		pace(t, now);
	bool hs_backlog = lg_hs_open_loop(o) && schedule_handshakes(t, now);
	while (o->mode == MODE_IDLE && t->to_open > 0 && t->opening < o->concurrency)
		lg_conn_start(t, &t->conns[t->nconns - t->to_open]);
	if (o->mode == MODE_IDLE && t->to_open == 0 && t->opening == 0 && t->st.established < t->nconns &&
	    !lg_stop_requested) {
		/* Every connection was tried and some failed: the set can never
		 * be complete, so nobody would be told it is. Stop the run. */
		log_err("thread %u: only %llu of %u connections established; stopping", t->id,
			(unsigned long long)t->st.established, t->nconns);
		lg_stop_requested = 1;
	}
	if (now - t->t_sweep >= SWEEP_NS)
		sweep(t, now);

	uint64_t wake = now + SWEEP_NS;
	if (t->t_end && t->t_end < wake)
		wake = t->t_end;
	if (t->t_measure > now && t->t_measure < wake)
		wake = t->t_measure;
	if (t->nready > 0 && t->next_due > now && t->next_due < wake)
		wake = t->next_due;
	/* Open-loop handshakes: the next start (a backlog waits for a slot
	 * to free, which is a completion and wakes us anyway). */
	if (lg_hs_open_loop(o) && !hs_backlog && t->next_due > now && t->next_due < wake)
		wake = t->next_due;
	return wake;
}

static void teardown(struct lg_thread *t)
{
	/* Exiting the ring cancels and reaps every request: after it, no
	 * request points at any slot and the slots can be freed. */
	io_uring_queue_exit(&t->ring);
	for (unsigned i = 0; t->conns && i < t->nconns; i++) {
		struct lg_conn *c = &t->conns[i];
		SSL_free(c->ssl);
		SSL_SESSION_free(c->session);
		if (c->fd >= 0)
			close(c->fd);
		free(c->rx);
		free(c->tx);
	}
	free(t->conns);
	free(t->ready_stack);
	free(t->scratch);
	SSL_CTX_free(t->ctx);
	t->conns = NULL;
}

int lg_thread_run(struct lg_thread *t)
{
	const struct lg_options *o = t->opt;
	int rc = lg_client_ctx(t);
	if (rc < 0)
		return rc;
	rc = ring_init(t);
	if (rc < 0) {
		log_err("thread %u: io_uring_queue_init: %s (is io_uring disabled? sysctl kernel.io_uring_disabled)",
			t->id, strerror(-rc));
		SSL_CTX_free(t->ctx);
		return rc;
	}
	rc = slots_init(t);
	if (rc < 0) {
		log_err("thread %u: out of memory for %u connection slots", t->id, t->nconns);
		goto out;
	}
	t->t_begin = t->t_sweep = lg_now_ns();
	if (o->mode == MODE_HANDSHAKE || o->mode == MODE_RESUME || o->mode == MODE_IDLE) {
		t->t_measure = t->t_begin + (uint64_t)(o->warmup_s * 1e9);
		if (o->mode != MODE_IDLE)
			t->t_end = t->t_measure + (uint64_t)(o->duration_s * 1e9);
	}
	if (o->mode == MODE_IDLE)
		t->to_open = t->nconns;
	else if (lg_hs_open_loop(o))
		t->next_due = t->t_begin; /* the schedule starts them */
	else
		for (unsigned i = 0; i < t->nconns; i++)
			lg_conn_start(t, &t->conns[i]);

	while (!t->drained) {
		uint64_t wake = pump(t);
		if (t->drained)
			break;
		uint64_t now = lg_now_ns(), d = wake > now ? wake - now : 0;
		struct __kernel_timespec ts = { .tv_sec = (long long)(d / 1000000000ull),
						.tv_nsec = (long long)(d % 1000000000ull) };
		struct io_uring_cqe *cqe;
		rc = io_uring_submit_and_wait_timeout(&t->ring, &cqe, 1, &ts, NULL);
		if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
			log_err("thread %u: io_uring_submit_and_wait: %s", t->id, strerror(-rc));
			goto out;
		}
		/* Only the completions already posted: io_uring_for_each_cqe
		 * re-reads the tail, and the submissions below post more, so
		 * under steady load the loop never ended and pump() (the
		 * measuring window, the deadline) never ran: a run counted a
		 * handful of handshakes while the server served thousands
		 * (docs/benchmarks.md, "the stall"). */
		unsigned head, seen = 0, budget = io_uring_cq_ready(&t->ring);
		uint64_t submitted = lg_now_ns();
		io_uring_for_each_cqe(&t->ring, head, cqe) {
			if (budget-- == 0)
				break;
			lg_dispatch(t, cqe);
			seen++;
			/* A TLS step costs up to a millisecond: what it queued goes
			 * out within SUBMIT_NS, not after the whole batch (the server
			 * would wait for the slowest of ~30 steps, then all of them
			 * would come back at once). */
			if (io_uring_sq_ready(&t->ring) == 0)
				continue;
			uint64_t at = lg_now_ns();
			if (at - submitted < SUBMIT_NS)
				continue;
			io_uring_cq_advance(&t->ring, seen);
			seen = 0;
			(void)io_uring_submit(&t->ring);
			submitted = at;
		}
		io_uring_cq_advance(&t->ring, seen);
	}
	rc = 0;
out:
	if (!t->t_stop)
		t->t_stop = lg_now_ns();
	teardown(t);
	return rc;
}
