/*
 * verify.h: mtlsd's client-certificate policy on top of OpenSSL's chain check.
 *
 * OpenSSL's default verification is replaced by a cert_verify_callback that
 *  1. picks the partner: the one whose CA bundle the presented chain leads to
 *     (candidates found by issuer name, each verified with that partner's own
 *     X509_STORE: anchors, CRLs, depth, purpose sslclient);
 *  2. applies the partner policy on the verified chain: EKU must include
 *     clientAuth, keys at least EC 256 / RSA 2048 anywhere in the chain, and
 *     the allow-list on SAN DNS / SAN URI (SPIFFE) / subject CN / OU;
 *  3. records the outcome, the precise reason and the partner in the
 *     connection's struct verify_result, including the leaf certificate
 *     even when verification fails (so audit and accounting can name it).
 * A connection is attributed to exactly one partner, or rejected. A
 * refusal is attributed to a partner only when the chain verified up to
 * one of its CA certificates (every signature checked): a certificate
 * anyone can make, naming a partner's CA as its issuer, is attributed to
 * nobody.
 *
 * Resumed sessions skip the chain check, so verify_install() also installs
 * session-ticket callbacks that bind a ticket to the generation and partner
 * that verified it, and to the time of that verification and what bounds
 * it (session_binding.h): after a reload (new CRLs, new allow-lists), after
 * session_lifetime, or once a certificate of the chain or a CRL it was
 * checked against has expired, old tickets fall back to a full handshake.
 *
 * verify.c holds the OpenSSL glue, verify_policy.c the pure policy. The
 * outcomes and the choices behind them (a CA certificate as leaf is
 * bad_eku, CRL fail-closed defaults...) are in docs/verification.md.
 */
#ifndef MTLSD_VERIFY_H
#define MTLSD_VERIFY_H

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#include "guard.h"
#include "verify-t.h"

struct generation;

/*
 * Compile one partner's allow-list. Every pattern is checked: '*' matches
 * within one DNS label or one URI path segment, a final path segment "**"
 * matches any remaining path. Errors: -EINVAL with
 * "key 'allow_uri': pattern '...': why".
 */
int partner_policy_compile(const struct cfg_partner *cp, struct partner_policy *out,
			   char *err, size_t errlen) MUST_CHECK;
void partner_policy_free(struct partner_policy *p);

/*
 * Pure policy check of a leaf whose chain already verified: EKU, key
 * strength of the leaf, its serial (positive, at most 20 octets), then
 * verify_identity_check(). Returns HS_OK or the outcome and fills detail;
 * with HS_OK and id non-NULL, *id gets the verified identity (replacing
 * what it held).
 */
enum hs_outcome verify_policy_check(const struct partner_policy *p, X509 *leaf,
				    struct verified_identity *id, char *detail, size_t len);

/*
 * The allow-list on the leaf's names (verify_identity.c): the multiplicity
 * rule (at most one SPIFFE ID and one CN unless multiple_identities),
 * admission, and the SPIFFE ID and CN a backend may be told: per kind, the
 * first value that matched the partner's patterns of that kind, or, when
 * the partner has none of that kind, the certificate's only value of it.
 * HS_OK, HS_POLICY_DENIED (detail names the rule), HS_OTHER (no memory).
 */
enum hs_outcome verify_identity_check(const struct partner_policy *p, X509 *leaf,
				      struct verified_identity *out, char *detail, size_t len);
void verified_identity_clear(struct verified_identity *id);

/*
 * Key strength rule applied to every certificate of a verified chain: RSA
 * (and RSA-PSS) >= min_rsa_bits, EC >= min_ec_bits, Ed25519/Ed448 accepted,
 * any other key type refused. On refusal why says what the key is.
 */
bool verify_key_strong_enough(const struct partner_policy *p, X509 *x, char *why, size_t len);

/* Pattern matching used by the allow-list (exposed for tests and fuzzing). */
bool verify_match_dns(const char *pattern, const char *name);
bool verify_match_uri(const char *pattern, const char *uri);
/* CN / OU: exact and case-sensitive, '*' matches any run of characters. */
bool verify_match_glob(const char *pattern, const char *value);

/* Map an X509_V_ERR_* code to an outcome. */
enum hs_outcome verify_outcome_from_x509(int x509_err);

/*
 * Install mtlsd's verification on a server SSL_CTX of generation g (step 3
 * of server_ctx_build, tls/server_ctx.c): SSL_VERIFY_PEER|FAIL_IF_NO_PEER_CERT,
 * the cert_verify_callback, the certificate_authorities list sent to
 * clients (every partner's anchors), the session id context resumption
 * needs with a verified peer, and the ticket binding described above.
 * How many tickets, and whether sessions exist at all, is the sessions
 * step's (ticket_keys.h).
 */
int verify_install(SSL_CTX *ctx, struct generation *g) MUST_CHECK;

/* Attach the per-connection result slot before the handshake starts. res
 * must be zeroed or cleared (verify_result_clear); it must outlive ssl's
 * handshake. */
int verify_attach(SSL *ssl, struct verify_result *res) MUST_CHECK;

/*
 * After SSL_do_handshake failed: settle res->outcome from what the callback
 * recorded and, if it recorded nothing, from the SSL error (no certificate,
 * wrong protocol version, garbage...). Drains nothing: pass the first
 * OpenSSL error code (ERR_peek_error()) in ossl_err.
 */
void verify_settle_failure(SSL *ssl, unsigned long ossl_err, struct verify_result *res);

/*
 * After SSL_do_handshake succeeded: for a resumed session, re-check what can
 * change without a new chain check (its binding is still resumable now, the
 * leaf's validity period, the partner still exists in this generation).
 * Sets res->resumed. Returns HS_OK or a failure outcome (the caller then
 * closes the connection without relaying).
 */
enum hs_outcome verify_settle_success(SSL *ssl, struct generation *g, struct verify_result *res);

/* Release res->leaf; res can be reused. */
void verify_result_clear(struct verify_result *res);

#endif
