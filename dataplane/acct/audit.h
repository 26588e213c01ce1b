/*
 * audit.h: one JSON line per handshake, success or failure.
 *
 * {"ts":"2026-11-27T05:40:01.123Z","event":"handshake","conn":17,
 *  "peer":"127.0.0.1:50412","partner":"acme","outcome":"expired",
 *  "reason":"certificate has expired (notAfter 2026-10-01T00:00:00Z)",
 *  "subject":"CN=client1,O=Acme","issuer":"CN=Acme Issuing CA",
 *  "serial":"4F:A2:..","sha256":"..","sans":["DNS:a","URI:spiffe://.."],
 *  "not_after":"2026-12-27T00:00:00Z","spiffe_id":"..","cn":"..","tls_version":"TLSv1.3",
 *  "cipher":"TLS_AES_128_GCM_SHA256","resumed":false,"duration_us":912}
 * Certificate fields are omitted when no certificate was presented. Never
 * any key material. Written with one write(2) per line (O_APPEND), so lines
 * from several workers never interleave.
 */
#ifndef MTLSD_AUDIT_H
#define MTLSD_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/x509.h>

#include "certinfo.h"
#include "guard.h"
#include "outcome.h"

struct audit_event {
	struct timespec ts;           /* CLOCK_REALTIME at handshake end */
	uint64_t conn_id;
	const struct sockaddr *peer;
	const char *partner;          /* NULL when not attributed */
	enum hs_outcome outcome;
	const char *reason;           /* precise detail, may be NULL */
	X509 *leaf;                   /* NULL when none presented */
	const struct cert_identity *id; /* leaf's identity if the caller has it, else
				       * NULL: audit_handshake() derives it */
	/* What the backend is told (struct verified_identity, on an accepted
	 * handshake only): written as "spiffe_id" and "cn"; NULL = omitted. */
	const char *spiffe_id;
	const char *cn;
	const char *tls_version;      /* NULL if not negotiated */
	const char *cipher;
	bool resumed;
	uint64_t duration_us;
};

/* Open the sink: NULL or "-" = stderr, else a file opened O_APPEND|O_CREAT
 * 0640. Returns 0 or -errno. The path is kept for audit_reopen(). */
int audit_open(const char *path) MUST_CHECK;
void audit_close(void);

/*
 * Reopen the file audit_open() named (log rotation: SIGHUP, `mtlsctl
 * reopen`): a new file is created if the old one was renamed away. The
 * new file takes the old one's descriptor number (dup3), so every line
 * goes to exactly one of them, none is lost. Any thread. 0 (also when the
 * sink is stderr), or -errno with err naming the path; the old file then
 * stays in use.
 */
int audit_reopen(char *err, size_t errlen) MUST_CHECK;

/* Format ev as one JSON line (with trailing '\n') into buf. Returns length
 * or -ENOSPC. Pure: used by audit_handshake and by tests. */
int audit_format(const struct audit_event *ev, char *buf, size_t cap) MUST_CHECK;

/* Format and write. Errors writing are counted, not fatal. */
void audit_handshake(const struct audit_event *ev);

/* Lines that could not be formatted or written since start
 * (mtlsd_audit_write_errors_total). */
uint64_t audit_write_errors(void);

/* Other events worth one JSON line (backend failures, drops):
 * {"ts":..,"event":NAME,"conn":..,"peer":..,"partner":..,"reason":..}. */
void audit_event_simple(const char *event, uint64_t conn_id, const struct sockaddr *peer,
			const char *partner, const char *reason);

/* Connections mtlsd turned away or shed before a handshake could end:
 * the events anyone on the internet can produce by the thousand. */
enum audit_refusal {
	AUDIT_REFUSAL_LIMIT = 0,     /* "limit": refused at accept */
	AUDIT_REFUSAL_EVICTED,       /* "evicted": closed under pressure (admission.h) */
	AUDIT_REFUSAL_ACCEPT_RESET,  /* "accept_reset": gone before it could be read */
	AUDIT_REFUSAL_MAX
};

/* The event word of a refusal ("limit", "evicted", "accept_reset"), and
 * back (-ENOENT) (lib/string_table.h). */
const char *audit_refusal_name(enum audit_refusal kind);
int audit_refusal_from_name(const char *s);

/* At most this many refusal lines a second; the rest are summed up. */
#define AUDIT_REFUSALS_PER_S 100

/*
 * A refusal, written like audit_event_simple() while fewer than
 * AUDIT_REFUSALS_PER_S were written in this second (CLOCK_MONOTONIC), else
 * only counted: the first refusal of a later second, or
 * audit_refusals_flush(), writes one summary line for what was held back,
 * {"event":"refusals_suppressed","suppressed":N,"by_event":{"limit":N,..},
 *  "reason":"N more refused in the last second ..."}
 * so a connection flood costs at most that many write(2)s a second on the
 * worker and every refusal is still accounted for. Any thread.
 */
void audit_refusal(enum audit_refusal kind, uint64_t conn_id, const struct sockaddr *peer,
		   const char *reason);

/* Write the summary of a second that has ended, if anything was held
 * back (the workers' tick calls it). Cheap when there is nothing. */
void audit_refusals_flush(void);
/* The same, naming the client certificate an action was about (`dropped`):
 * ..,"reason":..,"serial":"09:6E:..","issuer":"CN=..,O=.."}. serial and
 * issuer are in their one spelling (lib/cert_serial.h, lib/cert_name.h);
 * NULL omits them. */
void audit_event_cert(const char *event, uint64_t conn_id, const struct sockaddr *peer,
		      const char *partner, const char *reason, const char *serial, const char *issuer);

#endif
