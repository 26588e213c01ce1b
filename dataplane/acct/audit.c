/*
 * audit.c: the audit trail, one JSON line per handshake.
 *
 * The line is built in a stack buffer by audit_format() (pure, tested byte
 * for byte) and written with a single write(2) on a file opened O_APPEND, so
 * lines from several workers never interleave and a crash never leaves half
 * a line followed by another one. Every string taken from a certificate is
 * escaped by json_put_string() (lib/safetext.c): certificate fields are
 * attacker-chosen bytes and must not be able to forge audit fields.
 *
 * Reopening (SIGHUP, `mtlsctl reopen`, log rotation) replaces the file
 * behind the same descriptor number with dup3(), so a worker writing
 * concurrently writes either to the old file or to the new one, never to a
 * recycled descriptor, and no line is lost or written twice.
 *
 * Refusals (limits, evictions) are the one kind of line a stranger can
 * produce at will, so they are capped per second and the surplus is
 * counted into one summary line (audit_refusal).
 */
#include "audit.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "certinfo.h"
#include "safetext.h"
#include "string_table.h"

static atomic_int audit_fd = -1;       /* -1: stderr */
static atomic_uint_fast64_t audit_failed_writes;
static pthread_mutex_t audit_open_lock = PTHREAD_MUTEX_INITIALIZER;
static char *audit_path;               /* what audit_open() opened; NULL: stderr */

/* A JSON object under construction; the first failure (-ENOSPC) sticks. */
struct jbuf {
	char *buf;
	size_t cap;
	size_t off;
	int rc;
	bool first;
};

static void j_raw(struct jbuf *j, const char *s, size_t len)
{
	if (j->rc < 0)
		return;
	if (len + 1 > j->cap - j->off) {
		j->rc = -ENOSPC;
		return;
	}
	memcpy(j->buf + j->off, s, len);
	j->off += len;
	j->buf[j->off] = '\0';
}

static void j_key(struct jbuf *j, const char *key)
{
	if (!j->first)
		j_raw(j, ",", 1);
	j->first = false;
	j_raw(j, "\"", 1);
	j_raw(j, key, strlen(key));
	j_raw(j, "\":", 2);
}

static void j_str_n(struct jbuf *j, const char *key, const char *val, size_t len)
{
	j_key(j, key);
	if (j->rc == 0)
		j->rc = json_put_string(j->buf, j->cap, &j->off, val, len);
}

/* A string member, omitted when val is NULL. */
static void j_str(struct jbuf *j, const char *key, const char *val)
{
	if (val)
		j_str_n(j, key, val, strlen(val));
}

static void j_u64(struct jbuf *j, const char *key, uint64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%" PRIu64, v);

	j_key(j, key);
	j_raw(j, num, (size_t)n);
}

static void j_bool(struct jbuf *j, const char *key, bool v)
{
	j_key(j, key);
	j_raw(j, v ? "true" : "false", v ? 4 : 5);
}

/* RFC 3339 UTC; with milliseconds when ms >= 0. */
static void format_time(time_t t, long ms, char *out, size_t cap)
{
	struct tm tm;
	size_t n;

	if (!gmtime_r(&t, &tm)) {
		snprintf(out, cap, "invalid");
		return;
	}
	n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	if (ms >= 0)
		snprintf(out + n, cap - n, ".%03ldZ", ms);
	else
		snprintf(out + n, cap - n, "Z");
}

/* "192.0.2.1:443", "[2001:db8::1]:443", "unix:/path" or "unix". */
static void format_peer(const struct sockaddr *sa, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN];

	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(out, cap, "%s:%u", ip, ntohs(in->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(out, cap, "[%s]:%u", ip, ntohs(in6->sin6_port));
		break;
	}
	case AF_UNIX: {
		const struct sockaddr_un *un = (const struct sockaddr_un *)sa;

		if (un->sun_path[0])
			snprintf(out, cap, "unix:%.*s", (int)sizeof(un->sun_path), un->sun_path);
		else
			snprintf(out, cap, "unix");
		break;
	}
	default:
		snprintf(out, cap, "family-%d", sa->sa_family);
		break;
	}
}

static void j_head(struct jbuf *j, const struct timespec *ts, const char *event,
		   uint64_t conn_id, const struct sockaddr *peer)
{
	char text[sizeof(struct sockaddr_un) + 8];

	j_raw(j, "{", 1);
	format_time(ts->tv_sec, ts->tv_nsec / 1000000, text, sizeof(text));
	j_str(j, "ts", text);
	j_str(j, "event", event);
	j_u64(j, "conn", conn_id);
	if (peer) {
		format_peer(peer, text, sizeof(text));
		j_str(j, "peer", text);
	}
}

static void j_certificate(struct jbuf *j, X509 *leaf, const struct cert_identity *known, bool with_sans)
{
	struct cert_identity own;
	const struct cert_identity *id = known;
	char when[32];

	if (!id) {
		if (certinfo_from_x509(leaf, &own) < 0) {
			j_str(j, "certificate", "unparseable");
			return;
		}
		id = &own;
	}
	j_str(j, "subject", id->subject);
	j_str(j, "issuer", id->issuer);
	j_str(j, "serial", id->serial_hex);
	j_str(j, "issuer_id", id->issuer_id_hex);
	j_str(j, "sha256", id->sha256_hex);
	j_key(j, "sans");
	if (with_sans && j->rc == 0) {
		int n = certinfo_sans_json(leaf, j->buf + j->off, j->cap - j->off);

		if (n < 0)
			j->rc = n;
		else
			j->off += (size_t)n;
	} else {
		/* The SANs alone did not fit the line: say so rather than
		 * dropping the whole audit record. */
		j_raw(j, "null,\"sans_truncated\":true", 26);
	}
	format_time(id->not_before, -1, when, sizeof(when));
	j_str(j, "not_before", when);
	format_time(id->not_after, -1, when, sizeof(when));
	j_str(j, "not_after", when);
}

static int format_handshake(const struct audit_event *ev, char *buf, size_t cap, bool with_sans)
{
	struct jbuf j = { .buf = buf, .cap = cap, .first = true };

	ENSURE(cap > 0, ENOSPC);
	j_head(&j, &ev->ts, "handshake", ev->conn_id, ev->peer);
	j_str(&j, "partner", ev->partner);
	j_str(&j, "outcome", hs_outcome_name(ev->outcome));
	j_str(&j, "reason", ev->reason);
	if (ev->leaf)
		j_certificate(&j, ev->leaf, ev->id, with_sans);
	/* The identity the backend is told, exactly: the names the allow-list
	 * checked (verify_identity.c), never the certificate's first ones. */
	j_str(&j, "spiffe_id", ev->spiffe_id);
	j_str(&j, "cn", ev->cn);
	j_str(&j, "tls_version", ev->tls_version);
	j_str(&j, "cipher", ev->cipher);
	j_bool(&j, "resumed", ev->resumed);
	j_u64(&j, "duration_us", ev->duration_us);
	j_raw(&j, "}\n", 2);
	GUARD(j.rc);
	return (int)j.off;
}

int audit_format(const struct audit_event *ev, char *buf, size_t cap)
{
	int n = format_handshake(ev, buf, cap, true);

	if (n == -ENOSPC && ev->leaf)
		n = format_handshake(ev, buf, cap, false);
	return n;
}

static void audit_write(const char *line, size_t len)
{
	int fd = atomic_load_explicit(&audit_fd, memory_order_acquire);
	ssize_t w;

	if (fd < 0)
		fd = STDERR_FILENO;
	do {
		w = write(fd, line, len);
	} while (w < 0 && errno == EINTR);
	if (w != (ssize_t)len)
		atomic_fetch_add_explicit(&audit_failed_writes, 1, memory_order_relaxed);
}

static int open_locked(const char *path)
{
	int cur = atomic_load(&audit_fd);
	int fd;

	if (!path || strcmp(path, "-") == 0) {
		if (cur >= 0 && dup3(STDERR_FILENO, cur, O_CLOEXEC) < 0)
			return -errno;
		return 0;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		return -errno;
	if (cur < 0) {
		atomic_store_explicit(&audit_fd, fd, memory_order_release);
		return 0;
	}
	/* Same descriptor number, new file: concurrent writers stay safe. */
	if (dup3(fd, cur, O_CLOEXEC) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	close(fd);
	return 0;
}

int audit_open(const char *path)
{
	char *copy = path && strcmp(path, "-") != 0 ? strdup(path) : NULL;

	ENSURE(copy || !path || strcmp(path, "-") == 0, ENOMEM);
	pthread_mutex_lock(&audit_open_lock);
	int rc = open_locked(path);
	if (rc == 0) {
		free(audit_path);
		audit_path = copy;
		copy = NULL;
	}
	pthread_mutex_unlock(&audit_open_lock);
	free(copy);
	return rc;
}

int audit_reopen(char *err, size_t errlen)
{
	int rc = 0;

	pthread_mutex_lock(&audit_open_lock);
	if (audit_path) {
		rc = open_locked(audit_path);
		if (rc < 0)
			snprintf(err, errlen, "cannot reopen the audit log %s: %s (lines keep going to "
				 "the file open until now; mtlsd's user must be able to create it)",
				 audit_path, strerror(-rc));
	}
	pthread_mutex_unlock(&audit_open_lock);
	return rc;
}

void audit_close(void)
{
	int fd = atomic_exchange(&audit_fd, -1);

	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&audit_open_lock);
	free(audit_path);
	audit_path = NULL;
	pthread_mutex_unlock(&audit_open_lock);
}

uint64_t audit_write_errors(void)
{
	return atomic_load_explicit(&audit_failed_writes, memory_order_relaxed);
}

void audit_handshake(const struct audit_event *ev)
{
	char line[16384];
	/* The caller's identity of the leaf (mtlsd: struct conn's, derived
	 * once at the end of the handshake), else derived here. */
	int n = audit_format(ev, line, sizeof(line));

	if (n < 0) {
		atomic_fetch_add_explicit(&audit_failed_writes, 1, memory_order_relaxed);
		return;
	}
	audit_write(line, (size_t)n);
}

void audit_event_simple(const char *event, uint64_t conn_id, const struct sockaddr *peer,
			const char *partner, const char *reason)
{
	audit_event_cert(event, conn_id, peer, partner, reason, NULL, NULL);
}

void audit_event_cert(const char *event, uint64_t conn_id, const struct sockaddr *peer,
		      const char *partner, const char *reason, const char *serial, const char *issuer)
{
	char line[4096];
	struct timespec now;
	struct jbuf j = { .buf = line, .cap = sizeof(line), .first = true };

	clock_gettime(CLOCK_REALTIME, &now);
	j_head(&j, &now, event, conn_id, peer);
	j_str(&j, "partner", partner);
	j_str(&j, "reason", reason);
	j_str(&j, "serial", serial);
	j_str(&j, "issuer", issuer);
	j_raw(&j, "}\n", 2);
	if (j.rc < 0) {
		atomic_fetch_add_explicit(&audit_failed_writes, 1, memory_order_relaxed);
		return;
	}
	audit_write(line, j.off);
}

/* ---- refusals: capped per second, the rest summed up ------------------- */

static const char *const refusal_events[AUDIT_REFUSAL_MAX] = {
	[AUDIT_REFUSAL_LIMIT] = "limit",
	[AUDIT_REFUSAL_EVICTED] = "evicted",
	[AUDIT_REFUSAL_ACCEPT_RESET] = "accept_reset",
};

DEFINE_STRING_TABLE(audit_refusal, enum audit_refusal, refusal_events, "refusal")

static struct {
	atomic_uint_fast64_t second;   /* CLOCK_MONOTONIC second being counted */
	atomic_uint written;           /* refusal lines written in it */
	atomic_uint_fast64_t held[AUDIT_REFUSAL_MAX]; /* not written, not yet summed up */
} refusals;

static uint64_t monotonic_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

/* One line for everything held back so far. The counts are taken with an
 * exchange, so however many threads get here, each refusal is summed up
 * exactly once (one that races the exchange lands in the next summary). */
static void write_summary(void)
{
	uint64_t held[AUDIT_REFUSAL_MAX], total = 0;
	char line[1024], text[160];
	struct timespec now;
	struct jbuf j = { .buf = line, .cap = sizeof(line), .first = true };

	for (unsigned k = 0; k < AUDIT_REFUSAL_MAX; k++)
		total += held[k] = atomic_exchange(&refusals.held[k], 0);
	if (total == 0)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	j_head(&j, &now, "refusals_suppressed", 0, NULL);
	j_u64(&j, "suppressed", total);
	j_key(&j, "by_event");
	j_raw(&j, "{", 1);
	j.first = true;
	for (unsigned k = 0; k < AUDIT_REFUSAL_MAX; k++)
		if (held[k])
			j_u64(&j, audit_refusal_name((enum audit_refusal)k), held[k]);
	j_raw(&j, "}", 1);
	j.first = false;
	snprintf(text, sizeof(text), "%llu more refused in the last second (at most %d refusal "
		 "lines a second are written)", (unsigned long long)total, AUDIT_REFUSALS_PER_S);
	j_str(&j, "reason", text);
	j_raw(&j, "}\n", 2);
	if (j.rc < 0) {
		atomic_fetch_add_explicit(&audit_failed_writes, 1, memory_order_relaxed);
		return;
	}
	audit_write(line, j.off);
}

/* A new second: the first thread to notice starts its count afresh and
 * sums up the previous one. */
static void refusals_roll(uint64_t second)
{
	uint_fast64_t seen = atomic_load(&refusals.second);

	if (seen == second || !atomic_compare_exchange_strong(&refusals.second, &seen, second))
		return;
	atomic_store(&refusals.written, 0);
	write_summary();
}

void audit_refusal(enum audit_refusal kind, uint64_t conn_id, const struct sockaddr *peer,
		   const char *reason)
{
	if ((unsigned)kind >= AUDIT_REFUSAL_MAX)
		kind = AUDIT_REFUSAL_LIMIT;
	refusals_roll(monotonic_s());
	if (atomic_fetch_add(&refusals.written, 1) >= AUDIT_REFUSALS_PER_S) {
		atomic_fetch_add(&refusals.held[kind], 1);
		return;
	}
	audit_event_simple(audit_refusal_name(kind), conn_id, peer, NULL, reason);
}

void audit_refusals_flush(void)
{
	uint64_t held = 0;

	for (unsigned k = 0; k < AUDIT_REFUSAL_MAX; k++)
		held += atomic_load_explicit(&refusals.held[k], memory_order_relaxed);
	if (held)
		refusals_roll(monotonic_s());
}
