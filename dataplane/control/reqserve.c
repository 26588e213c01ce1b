/*
 * reqserve.c: many slow clients, one thread, every one under a deadline
 * (reqserve.h).
 *
 * Each connection is reading (its request), then writing (its reply),
 * then gone. One array of slots, one pollfd per slot rebuilt every round:
 * max_conns is a handful, so O(n) per round is cheaper than any index.
 * The poll timeout is the nearest deadline, so nothing waits on a timer
 * that is not there.
 */
#include "reqserve.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct slot {
	int fd;                  /* -1: free */
	bool writing;            /* the reply is being sent */
	uint64_t since_ms;       /* accepted, or (writing) reply ready */
	char *in;                /* max_request + 1 bytes */
	size_t in_len;
	char *out;
	size_t out_len, out_off;
};

struct server {
	const struct reqserve_params *p;
	const struct reqserve_ops *ops;
	void *arg;
	struct slot *slots;
	unsigned used;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t deadline_of(const struct server *s, const struct slot *sl)
{
	return sl->since_ms + (sl->writing ? s->p->reply_ms : s->p->request_ms);
}

static void slot_close(struct server *s, struct slot *sl)
{
	char sink[4096];

	/* Closing a socket with unread bytes resets it, and the reset can
	 * destroy the reply still in flight: read a bounded amount first. */
	for (int i = 0; i < 16 && recv(sl->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
		;
	close(sl->fd);
	free(sl->in);
	free(sl->out);
	*sl = (struct slot){ .fd = -1 };
	s->used--;
}

/* Send what the socket takes now; the slot is closed once all is out. */
static void slot_send(struct server *s, struct slot *sl)
{
	while (sl->out_off < sl->out_len) {
		ssize_t w = send(sl->fd, sl->out + sl->out_off, sl->out_len - sl->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (w <= 0)
			break;
		sl->out_off += (size_t)w;
	}
	slot_close(s, sl);
}

static void slot_answer(struct server *s, struct slot *sl, enum reqserve_end end)
{
	sl->in[sl->in_len] = '\0';
	s->ops->respond(s->arg, sl->fd, sl->in, sl->in_len, end, &sl->out, &sl->out_len);
	free(sl->in);
	sl->in = NULL;
	if (!sl->out) {
		slot_close(s, sl);
		return;
	}
	sl->writing = true;
	/* respond() may have taken a while (a reload): the reply's own clock. */
	sl->since_ms = mono_ms();
	slot_send(s, sl);
}

static void slot_read(struct server *s, struct slot *sl)
{
	for (;;) {
		size_t room = s->p->max_request - sl->in_len;
		if (room == 0) {
			slot_answer(s, sl, REQSERVE_FULL);
			return;
		}
		ssize_t r = recv(sl->fd, sl->in + sl->in_len, room, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) {
			slot_answer(s, sl, REQSERVE_EOF);
			return;
		}
		sl->in_len += (size_t)r;
		if (s->ops->complete(sl->in, sl->in_len)) {
			slot_answer(s, sl, REQSERVE_COMPLETE);
			return;
		}
	}
}

/* Every slot taken: the one that has been reading its request the
 * longest goes. false when all are sending replies (they end by their
 * deadline; the newcomer waits in the backlog meanwhile). */
static bool make_room(struct server *s)
{
	struct slot *oldest = NULL;

	for (unsigned i = 0; i < s->p->max_conns; i++) {
		struct slot *sl = &s->slots[i];
		if (sl->fd >= 0 && !sl->writing && (!oldest || sl->since_ms < oldest->since_ms))
			oldest = sl;
	}
	if (!oldest)
		return false;
	log_debug("%s: all %u connections busy: closing the oldest one still sending its request",
		  s->p->name, s->p->max_conns);
	slot_close(s, oldest);
	return true;
}

static void accept_new(struct server *s, int listen_fd)
{
	for (;;) {
		if (s->used == s->p->max_conns && !make_room(s))
			return;
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
				log_warn("%s: accept: %s", s->p->name, strerror(errno));
			return;
		}
		struct slot *sl = NULL;
		for (unsigned i = 0; i < s->p->max_conns && !sl; i++)
			if (s->slots[i].fd < 0)
				sl = &s->slots[i];
		char *in = malloc(s->p->max_request + 1);
		if (!sl || !in) {
			free(in);
			close(fd);
			continue;
		}
		*sl = (struct slot){ .fd = fd, .since_ms = mono_ms(), .in = in };
		s->used++;
		/* The request is usually there already. */
		slot_read(s, sl);
	}
}

static void expire(struct server *s, uint64_t now)
{
	for (unsigned i = 0; i < s->p->max_conns; i++) {
		struct slot *sl = &s->slots[i];
		if (sl->fd < 0 || now < deadline_of(s, sl))
			continue;
		if (sl->writing) {
			log_debug("%s: a client did not read its reply within %u ms: closed", s->p->name,
				  s->p->reply_ms);
			slot_close(s, sl);
		} else {
			slot_answer(s, sl, REQSERVE_TIMEOUT);
		}
	}
}

static int poll_timeout(const struct server *s, uint64_t now, uint64_t next_tick)
{
	uint64_t next = next_tick;

	for (unsigned i = 0; i < s->p->max_conns; i++)
		if (s->slots[i].fd >= 0 && deadline_of(s, &s->slots[i]) < next)
			next = deadline_of(s, &s->slots[i]);
	return next <= now ? 0 : (int)(next - now);
}

int reqserve_run(int listen_fd, int stop_fd, const struct reqserve_params *p,
		 const struct reqserve_ops *ops, void *arg)
{
	struct server s = { .p = p, .ops = ops, .arg = arg };
	struct pollfd *fds;
	uint64_t next_tick = mono_ms() + p->tick_ms;
	int rc = 0;

	s.slots = calloc(p->max_conns, sizeof(*s.slots));
	fds = calloc(p->max_conns + 2, sizeof(*fds));
	if (!s.slots || !fds) {
		free(s.slots);
		free(fds);
		log_err("%s: out of memory", p->name);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < p->max_conns; i++)
		s.slots[i].fd = -1;
	(void)fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
	for (;;) {
		uint64_t now = mono_ms();
		fds[0] = (struct pollfd){ .fd = stop_fd, .events = POLLIN };
		/* Full of repliers: leave newcomers in the backlog for now. */
		bool room = s.used < p->max_conns;
		for (unsigned i = 0; i < p->max_conns && !room; i++)
			room = !s.slots[i].writing;
		fds[1] = (struct pollfd){ .fd = room ? listen_fd : -1, .events = POLLIN };
		for (unsigned i = 0; i < p->max_conns; i++)
			fds[i + 2] = (struct pollfd){ .fd = s.slots[i].fd,
						      .events = s.slots[i].writing ? POLLOUT : POLLIN };
		if (poll(fds, p->max_conns + 2, poll_timeout(&s, now, next_tick)) < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			log_err("%s: poll: %s", p->name, strerror(errno));
			break;
		}
		if (fds[0].revents)
			break;
		for (unsigned i = 0; i < p->max_conns; i++) {
			struct slot *sl = &s.slots[i];
			/* The slot may have been reused by accept_new below in an
			 * earlier round only: fds[] and slots[] match here. */
			if (sl->fd < 0 || fds[i + 2].fd != sl->fd || !fds[i + 2].revents)
				continue;
			if (sl->writing)
				slot_send(&s, sl);
			else
				slot_read(&s, sl);
		}
		if (fds[1].revents & POLLIN)
			accept_new(&s, listen_fd);
		now = mono_ms();
		expire(&s, now);
		if (now >= next_tick) {
			if (ops->tick)
				ops->tick(arg);
			next_tick = now + p->tick_ms;
		}
	}
	for (unsigned i = 0; i < p->max_conns; i++)
		if (s.slots[i].fd >= 0)
			slot_close(&s, &s.slots[i]);
	free(s.slots);
	free(fds);
	return rc;
}
