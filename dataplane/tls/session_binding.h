/*
 * session_binding.h: what a TLS session remembers of the verification that
 * admitted it, and the rule for when it may still be resumed.
 *
 * Resumption skips the chain check, so every session mtlsd issues carries,
 * as ticket app data (SSL_SESSION_set1_ticket_appdata: sealed inside the
 * ticket, or kept with the session in the stateful cache), a binding:
 *   - the trust id of the generation that verified it and the partner
 *     index it was attributed to (a reload that changes trust makes every
 *     older session do a full handshake);
 *   - the time of that full verification, which no resumption refreshes
 *     (OpenSSL re-stamps the session's own time whenever it issues a
 *     ticket, resumed handshakes included, so that time cannot bound a
 *     session: a client resuming hourly would never be verified again);
 *   - the moment the verification stops being true by itself: the earliest
 *     notAfter of the verified chain, anchor included, and the earliest
 *     nextUpdate of the CRLs it was checked against when the partner
 *     refuses expired CRLs.
 * A session resumes only while the full verification is younger than
 * session_lifetime and that moment has not come; otherwise the client does
 * a full handshake and is verified again (session_binding_judge).
 *
 * Wire format, 32 bytes, big-endian: "mtb2" | trust id (8) | partner (4) |
 * verified_at (8, signed Unix seconds) | valid_until (8, signed). Anything
 * else, including the 16-byte "mtb1" of earlier versions, is not a binding.
 */
#ifndef MTLSD_SESSION_BINDING_H
#define MTLSD_SESSION_BINDING_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "guard.h"

#define SESSION_BINDING_LEN 32
/* valid_until of a verification nothing but session_lifetime bounds. */
#define SESSION_NO_BOUND INT64_MAX

struct session_binding {
	uint64_t trust_id;    /* generation.h's trust_id (or local id) */
	uint32_t partner;     /* partner index in that generation */
	int64_t verified_at;  /* the full verification, Unix seconds */
	int64_t valid_until;  /* earliest chain notAfter / applied CRL nextUpdate */
};

/* Why a session may not be resumed (SESSION_RESUMABLE: it may). */
enum session_verdict {
	SESSION_RESUMABLE = 0,
	SESSION_FOREIGN,      /* other trust material, or no such partner */
	SESSION_TOO_OLD,      /* verified session_lifetime ago or more */
	SESSION_OUTLIVED,     /* a chain certificate or a CRL it relied on expired */
	SESSION_FROM_FUTURE,  /* verified after now: a clock that went back */
	SESSION_VERDICT_MAX
};

/* Encode b into out; decode data, -ENOENT unless it is exactly a binding
 * of this format (every byte of it is hostile: it came from a client,
 * sealed or not). */
void session_binding_encode(const struct session_binding *b, uint8_t out[SESSION_BINDING_LEN]);
int session_binding_decode(const void *data, size_t len, struct session_binding *b) MUST_CHECK;

/* Attach b to sess as its ticket app data (replacing any). -ENOMEM. */
int session_binding_store(SSL_SESSION *sess, const struct session_binding *b) MUST_CHECK;
/* The binding sess carries; -ENOENT when it has none of this format. */
int session_binding_load(SSL_SESSION *sess, struct session_binding *b) MUST_CHECK;

/*
 * May b be resumed at now in a generation whose trust id is trust_id, with
 * n_partners partners and session_lifetime lifetime_s? Pure: the caller
 * passes the clock.
 */
enum session_verdict session_binding_judge(const struct session_binding *b, uint64_t trust_id,
					   size_t n_partners, int64_t now, int64_t lifetime_s);

/* The last second at which b may still be resumed: the earlier of
 * verified_at + lifetime_s and valid_until. */
int64_t session_binding_expiry(const struct session_binding *b, int64_t lifetime_s);

/*
 * Make OpenSSL's own session timer agree with b: sess's timeout is set so
 * that its time + timeout is session_binding_expiry() (at least 1 s: a
 * ticket with timeout 0 cannot be sealed). OpenSSL then refuses to resume it by itself (ssl_get_prev_session
 * checks every session, from a ticket or from the stateful cache), and a
 * TLS 1.3 ticket's lifetime hint tells the client the truth. Call it
 * whenever a session is about to be sealed or cached: OpenSSL re-stamps a
 * session's time when it issues a ticket.
 */
int session_binding_bound_timeout(SSL_SESSION *sess, const struct session_binding *b,
				  int64_t lifetime_s) MUST_CHECK;

/* A short phrase for a verdict, for the audit reason. */
const char *session_verdict_text(enum session_verdict v);

/* The clock every binding decision uses: time(NULL), unless a test set
 * another one (NULL restores the real clock). */
int64_t session_clock_now(void);
void session_clock_override(int64_t (*now)(void));

#endif
