/*
 * reqserve.h: a small server for one-request-per-connection protocols,
 * run on a thread of its own: the admin HTTP listener and the control
 * socket.
 *
 * poll() over the listening socket, a stop eventfd and up to max_conns
 * connections, every one under two whole deadlines: its request must be
 * complete within request_ms of its accept, its reply sent within
 * reply_ms of being ready. Sockets are non-blocking, so a client that
 * sends a byte now and then holds one slot for at most request_ms and
 * never the thread:
 * the others are read and answered meanwhile. When every slot is taken,
 * the oldest connection still sending its request is closed to make room
 * (so a few slowloris clients cannot fill the slots and keep them). The
 * reply is built by the caller's respond(), on this thread.
 */
#ifndef MTLSD_REQSERVE_H
#define MTLSD_REQSERVE_H

#include <stdbool.h>
#include <stddef.h>

#include "guard.h"

/* Why reading a request stopped. */
enum reqserve_end {
	REQSERVE_COMPLETE = 0,  /* complete() said so */
	REQSERVE_FULL,          /* max_request bytes arrived without a complete request */
	REQSERVE_EOF,           /* the client closed its side (or reset) first */
	REQSERVE_TIMEOUT,       /* request_ms passed first */
};

struct reqserve_ops {
	/* Is in[0..len) a whole request yet? Called after every read. Pure. */
	bool (*complete)(const char *in, size_t len);
	/*
	 * Build the reply to in[0..len) (NUL-terminated at len, modifiable)
	 * read from fd; end says why reading stopped. *reply: malloc'd bytes
	 * to send (taken over), or NULL to close without a reply.
	 */
	void (*respond)(void *arg, int fd, char *in, size_t len, enum reqserve_end end, char **reply,
			size_t *reply_len);
	/* Called about every tick_ms while serving (NULL: never). */
	void (*tick)(void *arg);
};

struct reqserve_params {
	const char *name;       /* for log lines: "admin listener", "control" */
	unsigned max_conns;     /* connections served at once */
	size_t max_request;     /* bytes buffered per request */
	unsigned request_ms;    /* accept -> request complete */
	unsigned reply_ms;      /* reply ready -> reply sent */
	unsigned tick_ms;
};

/*
 * Serve listen_fd (made non-blocking here) until stop_fd is readable.
 * Returns 0, or -errno when poll() itself failed (logged).
 */
int reqserve_run(int listen_fd, int stop_fd, const struct reqserve_params *p,
		 const struct reqserve_ops *ops, void *arg) MUST_CHECK;

#endif
