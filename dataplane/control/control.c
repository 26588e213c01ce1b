/*
 * control.c: the control socket server (control.h).
 *
 * One thread running reqserve.c: up to CONTROL_MAX_CLIENTS connections
 * read side by side without blocking, each under whole deadlines (its frame
 * within 2 s of the accept, its reply sent within 2 s), so a client that
 * connects and sends nothing, or a byte now and then, delays no one else's
 * `mtlsctl status`. A whole frame is answered at once: credentials
 * checked, the command run (on this thread: a reload holds the others
 * until it is built), one reply written, what the client sent beyond the
 * frame discarded (bounded), the connection closed. A one-second tick
 * samples the handshake counter for the handshakes-per-second figure of
 * `status`.
 */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <liburing.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "acct.h"
#include "audit.h"
#include "cert_name.h"
#include "cert_serial.h"
#include "certinfo.h"
#include "conn.h"
#include "ctlproto.h"
#include "generation.h"
#include "log.h"
#include "reload.h"
#include "reqserve.h"
#include "ticket_keys.h"
#include "worker.h"

#define IO_TIMEOUT_MS 2000
#define CONTROL_MAX_CLIENTS 8
#define DROP_WAIT_MS 5000
#define RATE_SAMPLES 11 /* one per second: a 10-second window */

struct rate_sample {
	uint64_t t_ns, handshakes;
};

static struct {
	bool running;
	bool open_failed;           /* control_open failed: not retried after the privilege drop */
	pthread_t thread;
	int listen_fd, stop_fd, answer_fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	bool takeover;              /* --takeover: a live socket at path is replaced */
	char final_path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* renamed to at start; "" */
	dev_t dev;
	ino_t ino;
	bool has_group;
	gid_t gid;
	struct worker *ws;
	unsigned n;
	struct io_uring ring;       /* only for IORING_OP_MSG_RING to the workers */
	struct rate_sample rate[RATE_SAMPLES];
	unsigned rate_next, rate_n;
} ctl = { .listen_fd = -1, .stop_fd = -1, .answer_fd = -1 };

/* The one cross-thread request in flight, read by workers under the lock.
 * active is cleared when the control thread stops waiting, so a late
 * worker does nothing. */
static struct {
	pthread_mutex_t lock;
	bool active;
	struct cert_serial serial;            /* compared as a DER INTEGER (lib/cert_serial.h) */
	char serial_text[CERT_SERIAL_TEXT_MAX]; /* its one spelling, for the log and audit */
	X509_NAME *issuer;                    /* issuer by name; NULL = not by name */
	bool by_issuer_id;                    /* issuer by certinfo's issuer_id */
	char issuer_id_hex[CERT_ISSUER_ID_LEN * 2 + 1];
	char issuer_text[512];                /* as the operator typed it, for the log */
	unsigned dropped, answered;
	unsigned other_issuer;                /* the serial matched, the issuer did not */
	char seen_issuer[512];                /* the first such connection's issuer */
	char seen_issuer_id[80];
} drop = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- the worker side of drop ------------------------------------------- */

/* The serial is compared first and cheaply (a worker may hold thousands
 * of connections); the issuer only for a match. A serial match whose
 * issuer differs is counted, and the first one's issuer kept, so an
 * --issuer that matches nothing is told what would. */
static bool leaf_matches(X509 *leaf)
{
	struct cert_serial sn;
	struct cert_identity id;

	if (cert_serial_from_asn1(X509_get0_serialNumber(leaf), &sn) < 0 ||
	    !cert_serial_equal(&sn, &drop.serial))
		return false;
	bool same_issuer;
	if (drop.issuer)
		same_issuer = cert_name_equal(drop.issuer, X509_get_issuer_name(leaf));
	else if (drop.by_issuer_id)
		same_issuer = certinfo_from_x509(leaf, &id) == 0 &&
			      strcasecmp(drop.issuer_id_hex, id.issuer_id_hex) == 0;
	else
		return true;
	if (same_issuer)
		return true;
	if (drop.other_issuer++ == 0 && certinfo_from_x509(leaf, &id) == 0) {
		snprintf(drop.seen_issuer, sizeof(drop.seen_issuer), "%s", id.issuer);
		snprintf(drop.seen_issuer_id, sizeof(drop.seen_issuer_id), "%s", id.issuer_id_hex);
	}
	return false;
}

/* One live connection of the worker running the message (under drop.lock). */
static void drop_if_matches(struct conn *c, void *arg)
{
	unsigned *dropped = arg;

	if (!c->vr.leaf || !leaf_matches(c->vr.leaf))
		return;
	log_info("conn %llu: closed by `mtlsctl drop` (serial %s, partner %s, state %s)",
		 (unsigned long long)c->id, drop.serial_text, conn_partner_name(c),
		 conn_state_name(c->state));
	char why[160], issuer[512];
	snprintf(why, sizeof(why), "closed by mtlsctl drop (serial %s, state %s)", drop.serial_text,
		 conn_state_name(c->state));
	cert_name_format(X509_get_issuer_name(c->vr.leaf), issuer, sizeof(issuer));
	audit_event_cert("dropped", c->id, (const struct sockaddr *)&c->peer,
			 conn_partner_name(c), why, drop.serial_text, issuer);
	conn_close(c, CLOSE_DROPPED);
	(*dropped)++;
}

void control_on_worker_message(struct worker *w)
{
	unsigned dropped = 0;
	uint64_t one = 1;

	pthread_mutex_lock(&drop.lock);
	if (!drop.active) {
		pthread_mutex_unlock(&drop.lock);
		return;
	}
	/* On w's own thread: this runs from w's OP_CONTROL completion. */
	worker_for_each_conn(w, drop_if_matches, &dropped);
	drop.dropped += dropped;
	drop.answered++;
	pthread_mutex_unlock(&drop.lock);
	if (write(ctl.answer_fd, &one, sizeof(one)) < 0)
		log_warn("worker %u: cannot answer the control thread: %s", w->id, strerror(errno));
}

/* Post an OP_CONTROL completion into every worker's ring and wait for the
 * answers. Returns the number of workers that answered. */
static unsigned run_on_workers(void)
{
	unsigned posted = 0, answered = 0;
	uint64_t stale;
	/* A worker that answered after the last request gave up left a count. */
	while (read(ctl.answer_fd, &stale, sizeof(stale)) == (ssize_t)sizeof(stale))
		;
	for (unsigned i = 0; i < ctl.n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ctl.ring);
		if (!sqe)
			break;
		io_uring_prep_msg_ring(sqe, ctl.ws[i].ring.ring_fd, 0,
				       ud_pack(OP_CONTROL, 0, WORKER_INCARNATION), 0);
	}
	int rc = io_uring_submit_and_wait(&ctl.ring, ctl.n);
	struct io_uring_cqe *cqe;
	while (rc >= 0 && io_uring_peek_cqe(&ctl.ring, &cqe) == 0) {
		if (cqe->res >= 0)
			posted++;
		else
			log_warn("control: a worker's ring refused the message: %s", strerror(-cqe->res));
		io_uring_cqe_seen(&ctl.ring, cqe);
	}
	uint64_t deadline = now_ns() + (uint64_t)DROP_WAIT_MS * 1000000ull;
	while (answered < posted && now_ns() < deadline) {
		struct pollfd p = { .fd = ctl.answer_fd, .events = POLLIN };
		uint64_t k;
		if (poll(&p, 1, 100) > 0 && read(ctl.answer_fd, &k, sizeof(k)) == (ssize_t)sizeof(k))
			answered += (unsigned)k;
	}
	return answered;
}

/* An issuer as typed: 40 hex digits are certinfo's issuer_id, anything
 * else a DN in RFC 2253 or one-line form (lib/cert_name.h). */
static int drop_set_issuer(const char *text, char *why, size_t wl)
{
	X509_NAME_free(drop.issuer);
	drop.issuer = NULL;
	drop.by_issuer_id = false;
	snprintf(drop.issuer_text, sizeof(drop.issuer_text), "%s", text ? text : "");
	if (!text || !*text)
		return 0;
	if (strlen(text) == CERT_ISSUER_ID_LEN * 2 && strspn(text, "0123456789abcdefABCDEF") == strlen(text)) {
		snprintf(drop.issuer_id_hex, sizeof(drop.issuer_id_hex), "%s", text);
		drop.by_issuer_id = true;
		return 0;
	}
	drop.issuer = cert_name_parse(text, why, wl);
	return drop.issuer ? 0 : -EINVAL;
}

static void cmd_drop(const struct ctl_field *f, size_t n, struct ctl_msg *reply)
{
	const char *serial = ctlproto_get(f, n, "serial");
	const char *issuer = ctlproto_get(f, n, "issuer");
	char why[200] = "";

	pthread_mutex_lock(&drop.lock);
	bool serial_ok = serial && cert_serial_parse(serial, &drop.serial) == 0;
	bool ok = serial_ok && drop_set_issuer(issuer, why, sizeof(why)) == 0;
	if (serial_ok)
		cert_serial_format(&drop.serial, drop.serial_text, sizeof(drop.serial_text));
	drop.dropped = drop.answered = drop.other_issuer = 0;
	drop.seen_issuer[0] = drop.seen_issuer_id[0] = '\0';
	drop.active = ok;
	pthread_mutex_unlock(&drop.lock);
	if (!ok) {
		ctlproto_add(reply, "status", "error");
		if (!serial_ok)
			ctlproto_add(reply, "error", "drop needs serial=HEX (colons and case do not matter, "
				     "at most %d octets)", CERT_SERIAL_HELD_MAX);
		else
			ctlproto_add(reply, "error", "issuer '%s': %s", issuer, why);
		return;
	}
	unsigned answered = run_on_workers();
	pthread_mutex_lock(&drop.lock);
	drop.active = false;
	unsigned dropped = drop.dropped, other = drop.other_issuer;
	pthread_mutex_unlock(&drop.lock);
	log_info("control: drop serial %s%s%s: %u connections closed (%u of %u workers answered)",
		 drop.serial_text, drop.issuer_text[0] ? " issuer " : "", drop.issuer_text, dropped,
		 answered, ctl.n);
	ctlproto_add(reply, "status", answered == ctl.n ? "ok" : "error");
	if (answered != ctl.n)
		ctlproto_add(reply, "error", "%u of %u workers did not answer within %d ms",
			     ctl.n - answered, ctl.n, DROP_WAIT_MS);
	ctlproto_add(reply, "dropped", "%u", dropped);
	ctlproto_add(reply, "serial", "%s", drop.serial_text);
	if (other) {
		/* Read after the workers answered: nothing writes them now. */
		ctlproto_add(reply, "other_issuer", "%u", other);
		ctlproto_add(reply, "seen_issuer", "%s", drop.seen_issuer);
		ctlproto_add(reply, "seen_issuer_id", "%s", drop.seen_issuer_id);
	}
}

/* ---- status, reload, certs -------------------------------------------- */

static uint64_t handshakes_total(void)
{
	struct worker_counters s;
	uint64_t t = 0;
	workers_sum_counters(ctl.ws, ctl.n, &s);
	for (unsigned k = 0; k < HS_OUTCOME_MAX; k++)
		t += s.handshakes[k];
	return t;
}

static void rate_sample(void)
{
	uint64_t now = now_ns();
	unsigned last = (ctl.rate_next + RATE_SAMPLES - 1) % RATE_SAMPLES;
	/* One sample a second, however often clients wake the loop. */
	if (ctl.rate_n && now - ctl.rate[last].t_ns < 1000000000ull)
		return;
	ctl.rate[ctl.rate_next] = (struct rate_sample){ now, handshakes_total() };
	ctl.rate_next = (ctl.rate_next + 1) % RATE_SAMPLES;
	if (ctl.rate_n < RATE_SAMPLES)
		ctl.rate_n++;
}

static double handshake_rate(void)
{
	if (ctl.rate_n < 2)
		return 0;
	unsigned newest = (ctl.rate_next + RATE_SAMPLES - 1) % RATE_SAMPLES;
	unsigned oldest = ctl.rate_n < RATE_SAMPLES ? 0 : ctl.rate_next;
	const struct rate_sample *a = &ctl.rate[oldest], *b = &ctl.rate[newest];
	return b->t_ns > a->t_ns ? (double)(b->handshakes - a->handshakes) * 1e9 / (double)(b->t_ns - a->t_ns) : 0;
}

static void cmd_status(struct ctl_msg *reply)
{
	struct reload_status rs;
	struct generation *g = generation_acquire();
	unsigned conns = atomic_load(&engine.conns), hs = atomic_load(&engine.handshakes);
	char cache[256] = "";

	reload_get_status(&rs);
	if (g)
		ticket_keys_describe(g->ssl_ctx, &g->cfg, cache, sizeof(cache));
	ctlproto_add(reply, "status", "ok");
	ctlproto_add(reply, "version", "%s", MTLSD_VERSION);
	ctlproto_add(reply, "pid", "%ld", (long)getpid());
	ctlproto_add(reply, "uptime_s", "%lld", (long long)(time(NULL) - rs.started));
	ctlproto_add(reply, "workers", "%u", ctl.n);
	ctlproto_add(reply, "connections.established", "%u", conns > hs ? conns - hs : 0);
	ctlproto_add(reply, "connections.handshaking", "%u", hs);
	ctlproto_add(reply, "handshakes.total", "%llu", (unsigned long long)handshakes_total());
	ctlproto_add(reply, "handshakes.per_s", "%.1f", handshake_rate());
	/* The kTLS handoff is not wired into the connection path yet. */
	ctlproto_add(reply, "ktls.share", "n/a (kTLS handoff not active)");
	ctlproto_add(reply, "bpf", "%s", acct_source() == ACCT_SOURCE_BPF ? "attached" : "not attached");
	ctlproto_add(reply, "accounting", "%s", acct_source_describe());
	ctlproto_add(reply, "session_cache", "%s", cache);
	ctlproto_add(reply, "generation", "%llu", (unsigned long long)(g ? g->id : 0));
	ctlproto_add(reply, "reloads.applied", "%llu", (unsigned long long)rs.applied);
	ctlproto_add(reply, "reloads.refused", "%llu", (unsigned long long)rs.refused);
	ctlproto_add(reply, "reload.last_time", "%lld", (long long)rs.last_time);
	ctlproto_add(reply, "reload.last_result", "%s", rs.last_time == 0 ? "none" : rs.last_ok ? "ok" : "refused");
	if (rs.last_time && !rs.last_ok)
		ctlproto_add(reply, "reload.last_error", "%s", rs.last_error);
	generation_unref(g);
}

static void cmd_reload(struct ctl_msg *reply)
{
	char err[1024] = "";
	uint64_t id = 0;

	if (reload_run("control socket", &id, err, sizeof(err)) == 0) {
		ctlproto_add(reply, "status", "ok");
		ctlproto_add(reply, "generation", "%llu", (unsigned long long)id);
	} else {
		ctlproto_add(reply, "status", "error");
		ctlproto_add(reply, "error", "%s", err);
	}
}

static void cmd_reopen(struct ctl_msg *reply)
{
	char err[1024];

	if (audit_reopen(err, sizeof(err)) == 0) {
		log_info("control: audit log reopened");
		ctlproto_add(reply, "status", "ok");
	} else {
		log_err("control: %s", err);
		ctlproto_add(reply, "status", "error");
		ctlproto_add(reply, "error", "%s", err);
	}
}

static void cmd_certs(struct ctl_msg *reply)
{
	struct generation *g = generation_acquire();
	ctlproto_add(reply, "status", g ? "ok" : "error");
	if (g)
		control_certs_reply(g, reply);
	else
		ctlproto_add(reply, "error", "no configuration is published");
	generation_unref(g);
}

/* ---- one client ---------------------------------------------------------- */

/* Root, our own user, or control_group (primary or supplementary). */
static bool peer_allowed(const struct ucred *cr)
{
	if (cr->uid == 0 || cr->uid == geteuid())
		return true;
	if (!ctl.has_group)
		return false;
	if (cr->gid == ctl.gid)
		return true;
	struct passwd pw, *res = NULL;
	char buf[4096];
	gid_t groups[256];
	int ng = (int)ARRAY_SIZE(groups);
	if (getpwuid_r(cr->uid, &pw, buf, sizeof(buf), &res) != 0 || !res)
		return false;
	if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &ng) < 0)
		return false;
	for (int i = 0; i < ng; i++)
		if (groups[i] == ctl.gid)
			return true;
	return false;
}

static void dispatch_request(char *body, size_t len, struct ctl_msg *reply)
{
	static struct ctl_field fields[64];
	int n = ctlproto_parse_body(body, len, fields, ARRAY_SIZE(fields));
	const char *cmd = n > 0 ? ctlproto_get(fields, (size_t)n, "cmd") : NULL;

	if (!cmd) {
		ctlproto_add(reply, "status", "error");
		ctlproto_add(reply, "error", "bad request: %s", n < 0 ? ctlproto_strerror(n) : "no cmd= field");
	} else if (strcmp(cmd, "status") == 0) {
		cmd_status(reply);
	} else if (strcmp(cmd, "reload") == 0) {
		cmd_reload(reply);
	} else if (strcmp(cmd, "certs") == 0) {
		cmd_certs(reply);
	} else if (strcmp(cmd, "drop") == 0) {
		cmd_drop(fields, (size_t)n, reply);
	} else if (strcmp(cmd, "reopen") == 0) {
		cmd_reopen(reply);
	} else {
		ctlproto_add(reply, "status", "error");
		ctlproto_add(reply, "error", "unknown command '%.64s' (status, reload, certs, drop, reopen)",
			     cmd);
	}
}

static __attribute__((format(printf, 2, 3))) void reply_error(struct ctl_msg *reply, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	ctlproto_init(reply);
	ctlproto_add(reply, "status", "error");
	ctlproto_add(reply, "error", "%s", text);
}

static bool frame_complete(const char *in, size_t len)
{
	size_t frame_len;

	/* A bad header is "complete" too: it is answered at once. */
	return ctlproto_frame_status((const uint8_t *)in, len, &frame_len) != 0;
}

/* One request, read whole by reqserve.c (or cut short: end says how). */
static void respond(void *arg, int fd, char *in, size_t len, enum reqserve_end end, char **out,
		    size_t *out_len)
{
	static struct ctl_msg reply;
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	size_t frame_len = 0;

	(void)arg;
	*out = NULL;
	ctlproto_init(&reply);
	int rc = ctlproto_frame_status((const uint8_t *)in, len, &frame_len);
	if (rc == 0)
		rc = end == REQSERVE_TIMEOUT ? -EAGAIN : -ECONNRESET;
	/* The request is read (bounded, under the deadline) before anything
	 * is decided, so a refused peer still gets its reply instead of a
	 * reset; nothing of it is acted on. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0) {
		reply_error(&reply, "cannot read peer credentials: %s", strerror(errno));
	} else if (!peer_allowed(&cr)) {
		log_warn("control: refused pid %ld uid %u gid %u: not root, mtlsd's user or control_group",
			 (long)cr.pid, (unsigned)cr.uid, (unsigned)cr.gid);
		reply_error(&reply, "permission denied: the control socket is for root, mtlsd's "
			    "user and members of control_group");
	} else if (rc < 0) {
		log_warn("control: bad request from pid %ld: %s", (long)cr.pid, ctlproto_strerror(rc));
		reply_error(&reply, "bad request: %s", ctlproto_strerror(rc));
	} else {
		dispatch_request(in + CTLPROTO_HEADER_LEN, frame_len - CTLPROTO_HEADER_LEN, &reply);
	}
	if (ctlproto_finish(&reply) < 0) {
		reply_error(&reply, "reply larger than 64 KiB");
		if (ctlproto_finish(&reply) < 0)
			return;
	}
	*out = malloc(reply.len);
	if (!*out)
		return;
	memcpy(*out, reply.data, reply.len);
	*out_len = reply.len;
}

static void tick(void *arg)
{
	(void)arg;
	rate_sample();
}

static void *control_main(void *arg)
{
	static const struct reqserve_ops ops = { .complete = frame_complete, .respond = respond,
						 .tick = tick };
	const struct reqserve_params params = {
		.name = "control", .max_conns = CONTROL_MAX_CLIENTS,
		.max_request = CTLPROTO_HEADER_LEN + CTLPROTO_MAX_BODY,
		.request_ms = IO_TIMEOUT_MS, .reply_ms = IO_TIMEOUT_MS, .tick_ms = 1000,
	};

	(void)arg;
	rate_sample();
	if (reqserve_run(ctl.listen_fd, ctl.stop_fd, &params, &ops, NULL) < 0)
		log_err("control: the control socket no longer answers");
	return NULL;
}

/* ---- the socket ---------------------------------------------------------- */

/* A socket file left by a process that is gone is replaced; one that a live
 * mtlsd answers on is not, unless taking over: 1 then (bind beside it). */
static int clear_stale_socket(const struct sockaddr_un *sa, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s: exists and is not a socket; remove it or set control_socket",
			 sa->sun_path);
		return -EEXIST;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ENSURE(fd >= 0, errno);
	int rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	struct ucred peer = { 0 };
	socklen_t plen = sizeof(peer);
	if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &plen) < 0)
		peer.pid = 0;
	close(fd);
	if (rc == 0 && ctl.takeover)
		return 1;
	if (rc == 0) {
		char who[32] = "";
		if (peer.pid > 0)
			snprintf(who, sizeof(who), " (pid %d)", (int)peer.pid);
		snprintf(err, errlen, "control socket %s: another mtlsd%s answers on it, so mtlsctl "
			 "would not reach this one; stop it, give each instance its own control_socket, "
			 "or start with --takeover for a binary upgrade (docs/operations.md, \"Upgrade "
			 "the binary\")", sa->sun_path, who);
		return -EADDRINUSE;
	}
	return unlink(sa->sun_path) < 0 && errno != ENOENT ? -errno : 0;
}

static int make_parent_dir(const char *path)
{
	char dir[sizeof(ctl.path)];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	return mkdir(dir, 0750) < 0 && errno != EEXIST ? -errno : 0;
}

static int open_socket(const struct mtlsd_config *cfg, char *err, size_t errlen)
{
	const char *path = cfg->control_socket ? cfg->control_socket : CONTROL_SOCKET_DEFAULT;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int rc;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control_socket '%s': longer than %zu bytes", path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	if (cfg->control_group) {
		struct group *gr = getgrnam(cfg->control_group);
		if (!gr) {
			snprintf(err, errlen, "control_group '%s': no such group", cfg->control_group);
			return -ENOENT;
		}
		ctl.has_group = true;
		ctl.gid = gr->gr_gid;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	snprintf(ctl.path, sizeof(ctl.path), "%s", path);
	if ((rc = make_parent_dir(path)) < 0) {
		snprintf(err, errlen, "%s: cannot create its directory: %s", path, strerror(-rc));
		return rc;
	}
	if ((rc = clear_stale_socket(&sa, err, errlen)) < 0)
		return rc;
	ctl.final_path[0] = '\0';
	if (rc == 1) {
		/* Taking over: bind beside the live socket, rename at start. */
		if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.takeover", path) >= (int)sizeof(sa.sun_path)) {
			snprintf(err, errlen, "control_socket '%s': too long to add '.takeover' for --takeover",
				 path);
			return -ENAMETOOLONG;
		}
		if (unlink(sa.sun_path) < 0 && errno != ENOENT)
			return -errno;
		snprintf(ctl.final_path, sizeof(ctl.final_path), "%s", path);
		snprintf(ctl.path, sizeof(ctl.path), "%s", sa.sun_path);
		path = ctl.path;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	ENSURE(fd >= 0, errno);
	/* The file is born 0600: no window in which another user may connect. */
	mode_t old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || listen(fd, 16) < 0 ||
	    (ctl.has_group && (chown(path, (uid_t)-1, ctl.gid) < 0 || chmod(path, 0660) < 0)) ||
	    stat(path, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot open the control socket: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	ctl.dev = st.st_dev;
	ctl.ino = st.st_ino;
	ctl.listen_fd = fd;
	return 0;
}

static void close_fds(void)
{
	struct stat st;
	if (ctl.listen_fd >= 0) {
		/* Unlink only our own file: a successor may have replaced it. */
		if (stat(ctl.path, &st) == 0 && st.st_dev == ctl.dev && st.st_ino == ctl.ino)
			unlink(ctl.path);
		close(ctl.listen_fd);
	}
	if (ctl.stop_fd >= 0)
		close(ctl.stop_fd);
	if (ctl.answer_fd >= 0)
		close(ctl.answer_fd);
	ctl.listen_fd = ctl.stop_fd = ctl.answer_fd = -1;
}

void control_set_takeover(bool on)
{
	ctl.takeover = on;
}

int control_open(const struct mtlsd_config *cfg, char *err, size_t errlen)
{
	if (ctl.listen_fd >= 0)
		return 0;
	if (ctl.open_failed) {
		snprintf(err, errlen, "control socket: not available (the reason was logged at start)");
		return -ENOTCONN;
	}
	ctl.stop_fd = eventfd(0, EFD_CLOEXEC);
	ctl.answer_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int rc = ctl.stop_fd < 0 || ctl.answer_fd < 0 ? -errno : open_socket(cfg, err, errlen);
	if (rc < 0) {
		if (ctl.stop_fd < 0 || ctl.answer_fd < 0)
			snprintf(err, errlen, "control: eventfd: %s", strerror(-rc));
		close_fds();
		ctl.open_failed = true;
	}
	return rc;
}

int control_start(const struct mtlsd_config *cfg, struct worker *ws, unsigned n, char *err,
		  size_t errlen)
{
	ctl.ws = ws;
	ctl.n = n;
	GUARD(control_open(cfg, err, errlen));
	int rc = io_uring_queue_init(n < 8 ? 8 : n * 2, &ctl.ring, 0);
	if (rc < 0) {
		snprintf(err, errlen, "control: io_uring_queue_init: %s", strerror(-rc));
		close_fds();
		return rc;
	}
	rc = -pthread_create(&ctl.thread, NULL, control_main, NULL);
	if (rc < 0) {
		snprintf(err, errlen, "control: cannot start its thread: %s", strerror(-rc));
		io_uring_queue_exit(&ctl.ring);
		close_fds();
		return rc;
	}
	ctl.running = true;
	if (ctl.final_path[0]) {
		/* The other instance's file is replaced in one step: mtlsctl
		 * reaches one of the two at every moment, this one from now on. */
		if (rename(ctl.path, ctl.final_path) < 0)
			log_err("--takeover: cannot move the control socket %s to %s: %s; it stays at %s",
				ctl.path, ctl.final_path, strerror(errno), ctl.path);
		else
			snprintf(ctl.path, sizeof(ctl.path), "%s", ctl.final_path);
		ctl.final_path[0] = '\0';
	}
	log_info("control socket %s (mode %s)", ctl.path, ctl.has_group ? "0660" : "0600");
	return 0;
}

void control_stop(void)
{
	uint64_t one = 1;
	if (!ctl.running) {
		close_fds(); /* opened, never started */
		return;
	}
	if (write(ctl.stop_fd, &one, sizeof(one)) < 0)
		log_warn("control: cannot wake the control thread: %s", strerror(errno));
	pthread_join(ctl.thread, NULL);
	io_uring_queue_exit(&ctl.ring);
	close_fds();
	ctl.running = false;
}
