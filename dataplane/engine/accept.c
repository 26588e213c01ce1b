/*
 * accept.c: a worker's connection table and what happens at accept.
 *
 * The table is an array of slot pointers plus a stack of free indexes;
 * a slot gets its struct conn on first use and keeps it, and its
 * incarnation is bumped on every reuse so stale completions are told apart
 * (worker.h). Accept applies the limits before anything is allocated: a
 * source over max_handshakes_per_source is refused; at max_handshakes or
 * max_connections the worker first tries to make room by evicting one of
 * its own stalled handshakes (admission.h), and refuses only when it has
 * none. A refused socket is closed at once, counted and audited (the
 * rate-limited refusal lines, audit.h); established connections never
 * notice.
 */
#include "worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admission.h"
#include "audit.h"
#include "conn.h"
#include "generation.h"
#include "log.h"

struct conn *worker_conn_alloc(struct worker *w)
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
	for (int s = CONN_CLIENT; s <= CONN_BACKEND; s++) {
		c->dir[s].fd = -1;
		c->dir[s].bid = NO_BUF;
	}
	c->vr.partner = -1;
	list_init(&c->timer);
	list_init(&c->wait);
	c->state = CONN_FREE; /* conn_start makes it a handshake */
	w->live++;
	return c;
}

void worker_conn_free(struct worker *w, struct conn *c)
{
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

void worker_for_each_conn(struct worker *w, void (*fn)(struct conn *c, void *arg), void *arg)
{
	for (uint32_t i = 0; i < w->cap; i++) {
		struct conn *c = w->conns[i];
		if (c && c->state != CONN_FREE && c->state != CONN_CLOSING)
			fn(c, arg);
	}
}

/* ------------------------------------------------------------------ */
/* Accept                                                              */

static void refuse(struct worker *w, int fd, const struct sockaddr *peer, const char *why)
{
	close(fd);
	w->counters.refused_limit++;
	audit_refusal(AUDIT_REFUSAL_LIMIT, 0, peer, why);
}

/* Undo what on_accepted counted for a connection it then refused. */
static void uncount(struct source_ticket *src)
{
	admission_source_put(src);
	atomic_fetch_sub(&engine.handshakes, 1);
	atomic_fetch_sub(&engine.conns, 1);
}

/*
 * Count the newcomer against every limit. 0: admitted (the counts are its
 * own from here). Otherwise -EBUSY with why saying which limit refused it
 * and nothing left counted.
 */
static int admit(struct worker *w, const struct sockaddr *peer, struct source_ticket *src,
		 char *why, size_t whylen)
{
	const struct mtlsd_config *cfg = &w->gen->cfg;
	unsigned conns = atomic_fetch_add(&engine.conns, 1);
	unsigned hs = atomic_fetch_add(&engine.handshakes, 1);
	char limit[96], source[64];

	if (admission_source_take(peer, cfg->max_handshakes_per_source, src) < 0) {
		admission_source_text(peer, source, sizeof(source));
		snprintf(why, whylen, "max_handshakes_per_source (%u) reached for %s: connection refused",
			 cfg->max_handshakes_per_source, source);
		w->counters.refused_source++;
		atomic_fetch_sub(&engine.handshakes, 1);
		atomic_fetch_sub(&engine.conns, 1);
		return -EBUSY;
	}
	bool hs_full = hs >= cfg->max_handshakes, conns_full = conns >= cfg->max_connections;
	admission_note_in_flight(hs_full ? cfg->max_handshakes : hs + 1, now_ns());
	if (!hs_full && !conns_full)
		return 0;
	if (hs_full && conns_full)
		snprintf(limit, sizeof(limit), "max_handshakes (%u) and max_connections (%u) reached",
			 cfg->max_handshakes, cfg->max_connections);
	else if (hs_full)
		snprintf(limit, sizeof(limit), "max_handshakes (%u) reached", cfg->max_handshakes);
	else
		snprintf(limit, sizeof(limit), "max_connections (%u) reached", cfg->max_connections);
	/* The evicted handshake's slot becomes the newcomer's: the counts
	 * taken above stay, the victim gives its own back. */
	if (admission_make_room(w, limit, now_ns()) == 0)
		return 0;
	uncount(src);
	snprintf(why, whylen, "%s: connection refused (worker %u has no handshake that may be evicted)",
		 limit, w->id);
	return -EBUSY;
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
	char why[256];

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
		audit_refusal(AUDIT_REFUSAL_ACCEPT_RESET, 0, NULL, why);
		return;
	}
	refresh_generation(w);

	struct source_ticket src;
	if (admit(w, (struct sockaddr *)&peer, &src, why, sizeof(why)) < 0) {
		refuse(w, fd, (struct sockaddr *)&peer, why);
		return;
	}
	struct conn *c = worker_conn_alloc(w);
	if (!c) {
		uncount(&src);
		snprintf(why, sizeof(why), "worker %u connection table full (%u slots)", w->id, w->cap);
		refuse(w, fd, (struct sockaddr *)&peer, why);
		return;
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->id = atomic_fetch_add(&engine.next_conn_id, 1) + 1;
	c->dir[CONN_CLIENT].fd = fd;
	c->flags |= CONN_F_HS_SLOT;
	c->source = src;
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
