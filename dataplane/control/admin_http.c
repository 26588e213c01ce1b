/*
 * admin_http.c: the admin listener (see admin_http.h).
 *
 * Deliberately small HTTP: one request per connection (Connection: close),
 * the request head read under a whole-request deadline and a size bound,
 * GET and HEAD only, two paths. Anything else gets the status that says
 * why. Connections are served side by side by reqserve.c, so a slow
 * client can never keep /healthz (a liveness probe) from answering.
 */
#include "admin_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <unistd.h>

#include "acct.h"
#include "bpf/acct_prom.h"
#include "log.h"
#include "reqserve.h"

#define REQUEST_MAX 8192
/* The request head within 2 s of the accept, the reply (a large /metrics
 * to a slow scraper) within 10 s. Whole deadlines, not per read: a client
 * sending a byte a second cannot stretch them. */
#define REQUEST_DEADLINE_MS 2000
#define REPLY_DEADLINE_MS 10000
/* Served at once; at the cap the oldest unfinished request makes room. */
#define ADMIN_MAX_CONNS 16

struct admin_http {
	int listen_fd;
	int stop_fd;               /* eventfd: written once by admin_http_stop */
	pthread_t thread;
	struct admin_http_hooks hooks;
};

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

static int metrics_body(const struct admin_http_hooks *hooks, FILE *body)
{
	struct acct_record *recs;
	struct acct_totals totals = { 0 };
	uint64_t capacity = 0;
	size_t n;

	int rc = acct_collect(&recs, &n, &totals, &capacity);
	if (rc == 0) {
		struct acct_view v = {
			.source = acct_source() == ACCT_SOURCE_BPF ? "bpf" : "fallback",
			.recs = recs, .n = n, .n_present = n, .totals = totals, .capacity = capacity,
		};
		rc = acct_prom_render(body, &v);
		free(recs);
	}
	if (rc < 0 && rc != -ENODATA) {
		log_warn("admin /metrics: reading the handshake accounting failed: %s", strerror(-rc));
		return 500;
	}
	if (hooks->metrics)
		hooks->metrics(body);
	return 200;
}

/* Route a parsed request line; writes the body, returns the status. */
static int route(const struct admin_http_hooks *hooks, const char *method, const char *path,
		 FILE *body)
{
	char why[256] = "";

	if (strcmp(path, "/metrics") != 0 && strcmp(path, "/healthz") != 0) {
		fprintf(body, "not found: try /metrics or /healthz\n");
		return 404;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		fprintf(body, "method %s not allowed: use GET\n", method);
		return 405;
	}
	if (strcmp(path, "/metrics") == 0)
		return metrics_body(hooks, body);
	if (hooks->healthy && !hooks->healthy(why, sizeof(why))) {
		fprintf(body, "unhealthy: %s\n", why);
		return 503;
	}
	fprintf(body, "ok\n");
	return 200;
}

/* "GET /metrics?x=1 HTTP/1.1" -> method, path without the query. */
static int parse_request_line(const char *req, size_t len, char *method, size_t mlen,
			      char *path, size_t plen)
{
	const char *eol = memchr(req, '\r', len);
	char line[512], version[16];

	ENSURE(eol && (size_t)(eol - req) < sizeof(line), EINVAL);
	memcpy(line, req, (size_t)(eol - req));
	line[eol - req] = '\0';
	char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	ENSURE(sp1 && sp2 && !strchr(sp2 + 1, ' '), EINVAL);
	*sp1 = *sp2 = '\0';
	snprintf(version, sizeof(version), "%s", sp2 + 1);
	ENSURE(strncmp(version, "HTTP/1.", 7) == 0, EINVAL);
	ENSURE(strlen(line) < mlen && strlen(sp1 + 1) < plen && sp1[1] == '/', EINVAL);
	snprintf(method, mlen, "%s", line);
	snprintf(path, plen, "%s", sp1 + 1);
	path[strcspn(path, "?")] = '\0';
	return 0;
}

int admin_http_respond(const struct admin_http_hooks *hooks, const char *req, size_t len,
		       FILE *out)
{
	static const struct admin_http_hooks none;
	char method[16] = "GET", path[400], *body = NULL;
	size_t body_len = 0;
	int status;

	FILE *b = open_memstream(&body, &body_len);
	if (!b)
		return 500;
	if (!hooks)
		hooks = &none;
	if (len >= REQUEST_MAX) {
		fprintf(b, "request head larger than %d bytes\n", REQUEST_MAX);
		status = 431;
	} else if (parse_request_line(req, len, method, sizeof(method), path, sizeof(path)) < 0) {
		fprintf(b, "malformed request line\n");
		status = 400;
	} else {
		status = route(hooks, method, path, b);
	}
	fclose(b);
	fprintf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		"Connection: close\r\n\r\n", status, status_text(status),
		status == 200 && strcmp(path, "/metrics") == 0 ?
			"text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8",
		body_len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (strcmp(method, "HEAD") != 0)
		fwrite(body, 1, body_len, out);
	free(body);
	return status;
}

/* ---- the listener thread (reqserve.h) ------------------------------------ */

static bool head_complete(const char *in, size_t len)
{
	return memmem(in, len, "\r\n\r\n", 4) != NULL;
}

static void respond(void *arg, int fd, char *in, size_t len, enum reqserve_end end, char **reply,
		    size_t *reply_len)
{
	const struct admin_http *a = arg;

	(void)fd;
	*reply = NULL;
	/* A client that took too long, or sent nothing, gets no answer. */
	if (end == REQSERVE_TIMEOUT || len == 0)
		return;
	FILE *out = open_memstream(reply, reply_len);
	if (!out)
		return;
	admin_http_respond(&a->hooks, in, len, out);
	if (fclose(out) != 0) {
		free(*reply);
		*reply = NULL;
	}
}

static void *admin_main(void *arg)
{
	struct admin_http *a = arg;
	static const struct reqserve_ops ops = { .complete = head_complete, .respond = respond };
	const struct reqserve_params params = {
		.name = "admin listener", .max_conns = ADMIN_MAX_CONNS, .max_request = REQUEST_MAX,
		.request_ms = REQUEST_DEADLINE_MS, .reply_ms = REPLY_DEADLINE_MS, .tick_ms = 1000,
	};

	if (reqserve_run(a->listen_fd, a->stop_fd, &params, &ops, a) < 0)
		log_err("admin listener stopped: /metrics and /healthz no longer answer");
	return NULL;
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

static void addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "%s:%d", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "[%s]:%d", host, port);
	} else {
		snprintf(buf, len, "(address family %d)", sa->sa_family);
	}
}

/* Bind and listen; *bound gets the address with the port the kernel chose. */
static int open_listener(struct admin_http *a, const struct sockaddr *addr, socklen_t addrlen,
			 struct sockaddr_storage *bound)
{
	socklen_t blen = sizeof(*bound);
	int one = 1;

	ENSURE(addr->sa_family == AF_INET || addr->sa_family == AF_INET6, EAFNOSUPPORT);
	a->listen_fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (a->listen_fd < 0)
		return -errno;
	setsockopt(a->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(a->listen_fd, addr, addrlen) != 0 || listen(a->listen_fd, 16) != 0 ||
	    getsockname(a->listen_fd, (struct sockaddr *)bound, &blen) != 0)
		return -errno;
	return 0;
}

int admin_http_start(const struct sockaddr *addr, socklen_t addrlen,
		     const struct admin_http_hooks *hooks, struct admin_http **out,
		     char *err, size_t errlen)
{
	struct sockaddr_storage bound;
	char where[80];
	int rc;

	*out = NULL;
	addr_text(addr, where, sizeof(where));
	struct admin_http *a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(err, errlen, "admin listener %s: out of memory", where);
		return -ENOMEM;
	}
	a->listen_fd = a->stop_fd = -1;
	if (hooks)
		a->hooks = *hooks;
	rc = open_listener(a, addr, addrlen, &bound);
	if (rc < 0) {
		snprintf(err, errlen, "admin listener: bind %s: %s", where, strerror(-rc));
		goto fail;
	}
	addr_text((struct sockaddr *)&bound, where, sizeof(where));
	a->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (a->stop_fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "admin listener %s: eventfd: %s", where, strerror(-rc));
		goto fail;
	}
	/* Process signals belong to mtlsd's signalfd, never to this thread. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = -pthread_create(&a->thread, NULL, admin_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0) {
		snprintf(err, errlen, "admin listener %s: thread: %s", where, strerror(-rc));
		goto fail;
	}
	if (!is_loopback(addr))
		log_warn("admin listener on %s, not a loopback address: /metrics names partners, "
			 "certificate serials and subject CNs to anyone who can reach it", where);
	log_info("admin listener: http://%s/metrics and /healthz", where);
	*out = a;
	return 0;
fail:
	if (a->listen_fd >= 0)
		close(a->listen_fd);
	if (a->stop_fd >= 0)
		close(a->stop_fd);
	free(a);
	return rc;
}

void admin_http_stop(struct admin_http *a)
{
	uint64_t one = 1;

	if (!a)
		return;
	if (write(a->stop_fd, &one, sizeof(one)) == sizeof(one))
		pthread_join(a->thread, NULL);
	close(a->listen_fd);
	close(a->stop_fd);
	free(a);
}
