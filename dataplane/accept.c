/*
 * accept.c: a worker's connection table and what happens at accept.
 *
 * The table is an array of slot pointers plus a stack of free indexes;
 * a slot gets its struct conn on first use and keeps it, and its
 * incarnation is bumped on every reuse so stale completions are told apart
 * (worker.h). Accept applies the process-wide limits before anything is
 * allocated: over a limit the socket is closed at once, counted and
 * audited, and established connections never notice.
 */
#include "worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "conn.h"
#include "generation.h"
#include "log.h"

static struct conn *conn_alloc(struct worker *w)
{
	if (w->n_free == 0)
		return NULL;
	uint32_t idx = w->free_idx[w->n_free - 1];
	struct conn *c = w->conns[idx];
	if (!c) {
		/* Slots get their memory on first use, so the table costs a
		 * pointer per slot until the load actually needs it. */
		c = calloc(1, sizeof(*c));
		if (!c)
			return NULL;
		c->incarnation = 1;
		w->conns[idx] = c;
	}
	w->n_free--;
	uint32_t inc = c->incarnation;
	memset(c, 0, sizeof(*c));
	c->incarnation = inc;
	c->idx = idx;
	c->w = w;
	c->cfd = c->bfd = -1;
	c->client_bid = c->backend_bid = NO_BUF;
	c->vr.partner = -1;
	list_init(&c->timer);
	list_init(&c->wait);
	c->state = CONN_ACCEPTED;
	w->live++;
	return c;
}

void worker_conn_free(struct worker *w, struct conn *c)
{
	conn_release(c);
	conn_set_state(c, CONN_FREE);
	/* A late completion for the old incarnation is now recognisably stale. */
	c->incarnation++;
	if (c->incarnation == WORKER_INCARNATION)
		c->incarnation++;
	w->live--;
	w->free_idx[w->n_free++] = c->idx;
}

struct conn *worker_conn_lookup(struct worker *w, uint32_t idx, uint32_t inc)
{
	if (idx >= w->cap)
		return NULL;
	struct conn *c = w->conns[idx];
	if (!c || c->incarnation != inc || c->state == CONN_FREE)
		return NULL;
	return c;
}

/* ------------------------------------------------------------------ */
/* Accept                                                              */

static void refuse(struct worker *w, int fd, const struct sockaddr *peer, const char *why)
{
	close(fd);
	w->counters.refused_limit++;
	audit_event_simple("limit", 0, peer, NULL, why);
}

static void refresh_generation(struct worker *w)
{
	if (w->gen && generation_current_id() == w->gen->id)
		return;
	generation_unref(w->gen);
	w->gen = generation_acquire();
}

static void on_accepted(struct worker *w, int fd)
{
	struct sockaddr_storage peer, local;
	socklen_t peer_len = sizeof(peer), local_len = sizeof(local);
	char why[128];

	w->counters.accepted++;
	memset(&peer, 0, sizeof(peer));
	memset(&local, 0, sizeof(local));
	if (getpeername(fd, (struct sockaddr *)&peer, &peer_len) < 0 ||
	    getsockname(fd, (struct sockaddr *)&local, &local_len) < 0) {
		/* Reset before we even looked at it: counted and audited, so
		 * accepted connections always add up to their outcomes. */
		snprintf(why, sizeof(why), "connection gone before it could be read (%s)", strerror(errno));
		close(fd);
		w->counters.closes[CLOSE_CLIENT_ERROR]++;
		audit_event_simple("accept_reset", 0, NULL, NULL, why);
		return;
	}
	refresh_generation(w);
	const struct mtlsd_config *cfg = &w->gen->cfg;

	unsigned conns = atomic_fetch_add(&engine.conns, 1);
	if (conns >= cfg->max_connections) {
		atomic_fetch_sub(&engine.conns, 1);
		snprintf(why, sizeof(why), "max_connections (%u) reached: connection refused",
			 cfg->max_connections);
		refuse(w, fd, (struct sockaddr *)&peer, why);
		return;
	}
	unsigned hs = atomic_fetch_add(&engine.handshakes, 1);
	if (hs >= cfg->max_handshakes) {
		atomic_fetch_sub(&engine.handshakes, 1);
		atomic_fetch_sub(&engine.conns, 1);
		snprintf(why, sizeof(why), "max_handshakes (%u) in flight: connection refused",
			 cfg->max_handshakes);
		refuse(w, fd, (struct sockaddr *)&peer, why);
		return;
	}
	struct conn *c = conn_alloc(w);
	if (!c) {
		atomic_fetch_sub(&engine.handshakes, 1);
		atomic_fetch_sub(&engine.conns, 1);
		snprintf(why, sizeof(why), "worker %u connection table full (%u slots)", w->id, w->cap);
		refuse(w, fd, (struct sockaddr *)&peer, why);
		return;
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->id = atomic_fetch_add(&engine.next_conn_id, 1) + 1;
	c->cfd = fd;
	c->holds_handshake_slot = true;
	c->gen = generation_ref(w->gen);
	c->peer = peer;
	c->peer_len = peer_len;
	c->local = local;
	c->local_len = local_len;
	conn_start(c);
}

void worker_on_accept(struct worker *w, uint32_t li, int res, unsigned flags)
{
	if (!(flags & IORING_CQE_F_MORE) && !w->draining && li < w->n_listen) {
		/* After an error (EMFILE, ENOMEM) re-arming at once would spin:
		 * wait for the next tick. */
		if (res < 0)
			w->accept_paused[li] = true;
		else
			worker_arm_accept(w, li);
	}
	if (res < 0) {
		if (res != -ECANCELED && res != -EINVAL)
			log_warn("worker %u: accept: %s", w->id, strerror(-res));
		return;
	}
	if (w->draining) {
		close(res);
		return;
	}
	on_accepted(w, res);
}
