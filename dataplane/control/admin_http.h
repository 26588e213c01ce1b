/*
 * admin_http.h: mtlsd's admin listener: GET /metrics (Prometheus text
 * format) and GET /healthz.
 *
 * Off unless configured; meant for loopback (a warning is logged for any
 * other address, since /metrics names partners, certificate serials and
 * subject CNs). It runs on a thread of its own, one request per
 * connection, up to 16 connections at once, each under a deadline from its
 * accept (head within 2 s, reply within 10 s): a slow or silent client
 * delays nobody, and never a handshake (reqserve.h). /metrics shows the handshake
 * accounting (acct.h) from whichever source is in use, plus whatever the
 * metrics hook adds.
 */
#ifndef MTLSD_ADMIN_HTTP_H
#define MTLSD_ADMIN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

#include "guard.h"

struct admin_http;

/* Optional callbacks into the rest of mtlsd; both run on the admin thread. */
struct admin_http_hooks {
	/* /healthz: true = 200 "ok"; false = 503 with why. NULL: always ok
	 * while the listener runs. */
	bool (*healthy)(char *why, size_t len);
	/* More metric families appended to /metrics (e.g. per-worker counters). */
	void (*metrics)(FILE *out);
};

/*
 * Listen on addr (TCP, v4 or v6; port 0 picks one, which the info line
 * "admin listener: http://HOST:PORT/metrics" names) and serve from a new
 * thread. hooks may be NULL and is copied. On failure returns -errno and
 * err says what failed ("bind 127.0.0.1:9100: Address already in use").
 */
int admin_http_start(const struct sockaddr *addr, socklen_t addrlen,
		     const struct admin_http_hooks *hooks, struct admin_http **out,
		     char *err, size_t errlen) MUST_CHECK;

/* Stop the thread, close the socket, free. NULL is fine. */
void admin_http_stop(struct admin_http *a);

/*
 * Answer one request held in req (len bytes, the head only) into out:
 * status line, headers, body. Pure apart from the hooks and acct_collect():
 * the thread calls it, and tests call it directly. Returns the status code.
 */
int admin_http_respond(const struct admin_http_hooks *hooks, const char *req, size_t len,
		       FILE *out);

#endif
