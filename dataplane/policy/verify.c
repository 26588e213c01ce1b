/*
 * verify.c: who may connect, decided once per handshake.
 *
 * OpenSSL's own chain check is replaced (SSL_CTX_set_cert_verify_callback)
 * by mtlsd_cert_verify(), which attributes the client to exactly one
 * partner: the partners whose CAs could have issued the presented chain are
 * found by name, the chain is verified against each candidate's own
 * X509_STORE (its anchors, CRLs, depth), and the partner policy (EKU
 * clientAuth, key strength, allow-list) is applied to the verified chain.
 * The first candidate that passes both wins; otherwise the most specific
 * failure is reported, both to the peer (as the TLS alert OpenSSL derives
 * from the X509_V_ERR code) and to the connection's struct verify_result,
 * which the audit line and accounting read.
 *
 * Resumption skips the callback, so sessions carry a binding as ticket app
 * data (session_binding.h: trust id, partner index, when the chain was
 * verified and until when that verification holds); a session from a
 * generation with other trust material (other CAs, CRLs, allow-lists,
 * partners), older than session_lifetime or past a notAfter / nextUpdate
 * it relied on falls back to a full handshake. See verify.h and
 * generation.h's trust_id.
 */
#include "verify.h"

#include "session_cache.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cert_name.h"
#include "exdata.h"
#include "generation.h"
#include "safetext.h"
#include "session_binding.h"

#define DEFAULT_VERIFY_DEPTH 3
#define OPENSSL_AUTH_LEVEL 2 /* 112-bit security: RSA >= 2048, no SHA-1 signatures */

/*
 * OpenSSL's own CRL check, which recording_check_crl() wraps. OpenSSL
 * offers no getter for its default, only the hook a fresh store context
 * holds, so verify_install() looks it up whenever it installs the wrapper
 * (always the same function: a relaxed atomic store of one value), before
 * the generation whose stores call it is published.
 */
static _Atomic(X509_STORE_CTX_check_crl_fn) openssl_check_crl;

static int find_openssl_check_crl(void)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *v = X509_STORE_CTX_new();
	X509_STORE_CTX_check_crl_fn fn = NULL;

	if (st && v && X509_STORE_CTX_init(v, st, NULL, NULL) == 1)
		fn = X509_STORE_CTX_get_check_crl(v);
	X509_STORE_CTX_free(v);
	X509_STORE_free(st);
	ENSURE(fn != NULL, ENOMEM);
	atomic_store_explicit(&openssl_check_crl, fn, memory_order_relaxed);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Signatures between a partner's own CAs, checked once per generation */
/* ------------------------------------------------------------------ */

/*
 * The CA certificates of a partner are configuration: the same X509
 * objects, in the partner's store, for the whole life of a generation.
 * OpenSSL re-checks every signature of a chain on every handshake, so a
 * client under Root -> Intermediate -> Issuing paid three ECDSA
 * verifications (~12% of mtlsd's CPU per full handshake) of which two are
 * between the partner's own CAs and never change. They are checked once
 * here, when the generation is built; a handshake then verifies only the
 * client's own certificate's signature. Links hold the store's objects'
 * addresses, which stay valid (and unique) as long as the SSL_CTX that
 * owns this table (its generation holds the certificates).
 */
struct ca_link {
	const X509 *subject, *issuer;  /* issuer == subject: a self-issued anchor */
};

struct ca_links {
	size_t n;
	struct ca_link v[];
};

void ca_links_free(struct ca_links *links)
{
	free(links);
}

static bool ca_link_known(const struct ca_links *l, const X509 *subject, const X509 *issuer)
{
	for (size_t i = 0; l && i < l->n; i++)
		if (l->v[i].subject == subject && l->v[i].issuer == issuer)
			return true;
	return false;
}

/* Every (subject, issuer) pair among the partners' CA certificates that
 * OpenSSL's chain walk would accept: issuer names and key usage fit
 * (X509_check_issued) and the signature verifies; anchors that OpenSSL
 * takes as self-issued are listed as (x, x). */
static int ca_links_build(const struct generation *g, struct ca_links **out)
{
	size_t cap = 0;

	for (size_t p = 0; p < g->n_partners; p++) {
		size_t n = (size_t)sk_X509_num(g->partners[p].anchors) +
			   (size_t)sk_X509_num(g->partners[p].intermediates);
		cap += n * n;
	}
	struct ca_links *l = calloc(1, sizeof(*l) + cap * sizeof(l->v[0]));
	ENSURE_PTR(l, ENOMEM);
	for (size_t p = 0; p < g->n_partners; p++) {
		STACK_OF(X509) *sets[] = { g->partners[p].anchors, g->partners[p].intermediates };
		for (size_t si = 0; si < ARRAY_SIZE(sets); si++) {
			for (int i = 0; i < sk_X509_num(sets[si]); i++) {
				X509 *sub = sk_X509_value(sets[si], i);
				for (size_t ii = 0; ii < ARRAY_SIZE(sets); ii++) {
					for (int k = 0; k < sk_X509_num(sets[ii]); k++) {
						X509 *iss = sk_X509_value(sets[ii], k);
						EVP_PKEY *key = X509_get0_pubkey(iss);

						if (X509_check_issued(iss, sub) != X509_V_OK || !key)
							continue;
						if (sub != iss && X509_verify(sub, key) != 1)
							continue;
						l->v[l->n++] = (struct ca_link){ sub, iss };
					}
				}
			}
		}
	}
	ERR_clear_error();
	*out = l;
	return 0;
}

/*
 * The chain walk of OpenSSL's internal_verify() for a chain whose every
 * link above the client's own certificate is a known one: signature of
 * the leaf by its issuer, key usage of that issuer, validity period of
 * every certificate, nothing else. Returns false whenever the chain is not
 * that plain case or anything would fail: the caller then runs OpenSSL's
 * own walk, which reports the error exactly as before (depth, callback).
 */
static bool chain_known_good(X509_STORE_CTX *v, const struct ca_links *links)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(v);
	X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(v);
	unsigned long flags = X509_VERIFY_PARAM_get_flags(param);
	int n = sk_X509_num(chain);
	time_t when, *at = NULL;

	if (!links || n < 2 ||
	    (flags & (X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_CHECK_SS_SIGNATURE | X509_V_FLAG_NO_CHECK_TIME)))
		return false;
	if (flags & X509_V_FLAG_USE_CHECK_TIME) {
		when = X509_VERIFY_PARAM_get_time(param);
		at = &when;
	}
	X509 *top = sk_X509_value(chain, n - 1);
	if (!ca_link_known(links, top, top))
		return false;
	for (int i = 1; i < n - 1; i++)
		if (!ca_link_known(links, sk_X509_value(chain, i), sk_X509_value(chain, i + 1)))
			return false;
	for (int i = 0; i < n; i++) {
		X509 *x = sk_X509_value(chain, i);
		if (X509_cmp_time(X509_get0_notBefore(x), at) >= 0 || X509_cmp_time(X509_get0_notAfter(x), at) <= 0)
			return false;
	}
	X509 *leaf = sk_X509_value(chain, 0), *issuer = sk_X509_value(chain, 1);
	EVP_PKEY *key = X509_get0_pubkey(issuer);
	if ((X509_get_extension_flags(leaf) & EXFLAG_PROXY) || !(X509_get_key_usage(issuer) & KU_KEY_CERT_SIGN) ||
	    !key || X509_verify(leaf, key) <= 0) {
		ERR_clear_error();
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Chain verification against one partner                             */
/* ------------------------------------------------------------------ */

/* One candidate partner's verdict on the presented chain. */
struct verify_attempt {
	const struct partner *partner;
	enum hs_outcome outcome;
	int x509_err;
	bool crl_waived;          /* a missing/expired CRL was allowed by policy */
	bool verified_to_ca;      /* the chain verified up to one of the partner's
				   * CA certificates, every signature checked: only
				   * then is the outcome (even a refusal) its own */
	int64_t valid_until;      /* earliest notAfter of the chain and nextUpdate of
				   * the CRLs applied (session_binding.h) */
	STACK_OF(X509) *chain;    /* verified chain on success (owned) */
	struct verified_identity identity; /* on success: what the allow-list vouches for */
	const struct ca_links *links;       /* the generation's known CA links */
	X509_STORE_CTX_verify_fn full_walk; /* OpenSSL's own chain walk */
	char detail[256];
};

/* X509_STORE_CTX's chain walk: the known-links short cut, else OpenSSL's. */
static int chain_walk(X509_STORE_CTX *v)
{
	struct verify_attempt *a = exdata_verify_attempt(v);

	if (!a || !a->full_walk)
		return 0;
	if (chain_known_good(v, a->links))
		return 1;
	return a->full_walk(v);
}

/* How far a failed attempt got: a policy refusal after a good chain says
 * more than a chain error on a chain that verified up to the partner's CA,
 * which says more than a chain that did not (a bad signature), which says
 * more than "no issuer found". */
static int attempt_rank(const struct verify_attempt *a)
{
	if (!a->verified_to_ca)
		return a->outcome == HS_UNKNOWN_CA ? 1 : 2;
	return a->chain ? 4 : 3;
}

static bool name_issued_by_any(const X509_NAME *issuer, STACK_OF(X509) *cas)
{
	for (int i = 0; i < sk_X509_num(cas); i++)
		if (X509_NAME_cmp(X509_get_subject_name(sk_X509_value(cas, i)), issuer) == 0)
			return true;
	return false;
}

/* Cheap pre-filter before any signature check: could one of this partner's
 * CAs have issued the leaf or one of the intermediates the client sent? */
static bool partner_is_candidate(const struct partner *p, X509 *leaf, STACK_OF(X509) *untrusted)
{
	if (name_issued_by_any(X509_get_issuer_name(leaf), p->anchors) ||
	    name_issued_by_any(X509_get_issuer_name(leaf), p->intermediates))
		return true;
	for (int i = 0; i < sk_X509_num(untrusted); i++) {
		const X509_NAME *iss = X509_get_issuer_name(sk_X509_value(untrusted, i));

		if (name_issued_by_any(iss, p->anchors) || name_issued_by_any(iss, p->intermediates))
			return true;
	}
	return false;
}

/* OpenSSL's per-certificate callback: waive CRL problems the partner chose
 * to tolerate (crl_missing / crl_expired = allow), nothing else. */
static int crl_policy_cb(int ok, X509_STORE_CTX *v)
{
	struct verify_attempt *a = exdata_verify_attempt(v);
	int err = X509_STORE_CTX_get_error(v);

	if (ok || !a)
		return ok;
	if ((err == X509_V_ERR_UNABLE_TO_GET_CRL && a->partner->cfg->crl_missing == CRL_POLICY_ALLOW) ||
	    (err == X509_V_ERR_CRL_HAS_EXPIRED && a->partner->cfg->crl_expired == CRL_POLICY_ALLOW)) {
		a->crl_waived = true;
		return 1;
	}
	return 0;
}

/* Lower *bound to t (an ASN.1 time) when t is earlier. A time that does
 * not convert bounds at once: whatever relied on it is re-verified. */
static void bound_by(int64_t *bound, const ASN1_TIME *t)
{
	struct tm tm;
	int64_t secs;

	if (!t)
		return;
	secs = ASN1_TIME_to_tm(t, &tm) == 1 ? (int64_t)timegm(&tm) : INT64_MIN;
	if (secs < *bound)
		*bound = secs;
}

/*
 * The CRL check of every partner store: OpenSSL's, then, for a CRL it
 * accepted, note its nextUpdate in the attempt: a session must not be
 * resumed past it (session_binding.h). With crl_expired = allow an
 * expired CRL is accepted anyway, so there it bounds nothing.
 */
static int recording_check_crl(X509_STORE_CTX *v, X509_CRL *crl)
{
	struct verify_attempt *a = exdata_verify_attempt(v);
	int ok = atomic_load_explicit(&openssl_check_crl, memory_order_relaxed)(v, crl);

	if (ok && a && a->partner->cfg->crl_expired == CRL_POLICY_FAIL)
		bound_by(&a->valid_until, X509_CRL_get0_nextUpdate(crl));
	return ok;
}

/* A name as the audit line's subject/issuer fields show it (RFC 2253,
 * lib/cert_name.h, cut between two characters); "?" when it cannot be
 * printed. */
static void name_text(const X509_NAME *name, char *out, size_t len)
{
	(void)cert_name_format(name, out, len);
}

/* What an operator can do about a chain error, appended to the reason. */
static const char *chain_error_hint(int err)
{
	switch (err) {
	case X509_V_ERR_UNABLE_TO_GET_CRL:
		return "; add a current CRL of its issuer to the partner's crl files, or set crl_missing = allow";
	case X509_V_ERR_CRL_HAS_EXPIRED:
		return "; refresh the CRL (mtlsctl pki crl) and reload, or set crl_expired = allow";
	case X509_V_ERR_CERT_CHAIN_TOO_LONG:
		return "; the chain has more CA levels than the partner's verify_depth allows";
	default:
		return "";
	}
}

/*
 * The reason for a failed chain: OpenSSL's text, the depth and subject of
 * the certificate concerned, and what is precisely wrong with it when
 * OpenSSL's words are vague (purpose, key size).
 */
static void describe_chain_error(X509_STORE_CTX *v, const struct partner *p, struct verify_attempt *a)
{
	X509 *at = X509_STORE_CTX_get_current_cert(v);
	int depth = X509_STORE_CTX_get_error_depth(v);
	char subject[160] = "?", what[160] = "";
	struct tm tm;

	if (at)
		name_text(X509_get_subject_name(at), subject, sizeof(subject));
	switch (a->x509_err) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		if (at && ASN1_TIME_to_tm(X509_get0_notAfter(at), &tm) == 1)
			strftime(what, sizeof(what), ": notAfter %Y-%m-%dT%H:%M:%SZ", &tm);
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		if (at && ASN1_TIME_to_tm(X509_get0_notBefore(at), &tm) == 1)
			strftime(what, sizeof(what), ": notBefore %Y-%m-%dT%H:%M:%SZ", &tm);
		break;
	case X509_V_ERR_EE_KEY_TOO_SMALL:
	case X509_V_ERR_CA_KEY_TOO_SMALL:
		if (at && !verify_key_strong_enough(&p->policy, at, what + 2, sizeof(what) - 2))
			memcpy(what, ": ", 2);
		break;
	case X509_V_ERR_INVALID_PURPOSE:
		/* Say which rule the leaf breaks (EKU, CA used as leaf...). */
		if (depth == 0 && at &&
		    verify_policy_check(&p->policy, at, NULL, what + 2, sizeof(what) - 2) == HS_BAD_EKU)
			memcpy(what, ": ", 2);
		else
			what[0] = '\0';
		break;
	default:
		break;
	}
	snprintf(a->detail, sizeof(a->detail), "%s (depth %d, %s)%s%s",
		 X509_verify_cert_error_string(a->x509_err), depth, subject, what,
		 chain_error_hint(a->x509_err));
}

static bool is_ca_of(const struct partner *p, X509 *x)
{
	STACK_OF(X509) *sets[] = { p->anchors, p->intermediates };

	for (size_t si = 0; si < ARRAY_SIZE(sets); si++)
		for (int i = 0; i < sk_X509_num(sets[si]); i++)
			if (X509_cmp(sk_X509_value(sets[si], i), x) == 0)
				return true;
	return false;
}

/* Whether issuer's key signed x: a link between two of the partners' own
 * CAs was checked when the generation was built. */
static bool signed_by(X509 *x, X509 *issuer, const struct ca_links *links)
{
	EVP_PKEY *key = X509_get0_pubkey(issuer);

	if (ca_link_known(links, x, issuer))
		return true;
	if (key && X509_verify(x, key) == 1)
		return true;
	ERR_clear_error();
	return false;
}

/* The one of the partner's CA certificates that issued x (names, key
 * identifiers and signature), or NULL. *named is set when some CA of the
 * partner fits x's issuer name and key identifier but none signed it. */
static X509 *partner_issuer_of(const struct partner *p, X509 *x, const struct ca_links *links,
			       bool *named)
{
	STACK_OF(X509) *sets[] = { p->intermediates, p->anchors };

	for (size_t si = 0; si < ARRAY_SIZE(sets); si++) {
		for (int i = 0; i < sk_X509_num(sets[si]); i++) {
			X509 *ca = sk_X509_value(sets[si], i);

			if (X509_check_issued(ca, x) != X509_V_OK)
				continue;
			*named = true;
			if (signed_by(x, ca, links))
				return ca;
		}
	}
	return NULL;
}

/*
 * After OpenSSL refused the chain: does it still verify up to one of this
 * partner's own CA certificates (its anchors and the intermediates of its
 * `ca` bundle), every signature on the way checked? Only then is the
 * refusal the partner's (its name in the audit line, its counters, a
 * record of the certificate in the accounting). OpenSSL finds issuers by
 * name and checks key sizes, purpose and revocation before any signature,
 * so "the chain led to this partner's CA" is what anyone can claim with a
 * self-made certificate that copies a CA's name.
 *
 * The walk follows the chain OpenSSL built as far as it got (a weak leaf
 * key stops it at the leaf, verify_depth at an intermediate) and, where it
 * ends short of the partner, looks for the issuer among the partner's CAs.
 * A chain that reaches the partner's CAs by name through a signature that
 * does not verify is a bad signature whatever OpenSSL found first: *a says
 * so (which also keeps a forger from learning that a serial is revoked).
 */
static bool chain_reaches_partner_ca(X509_STORE_CTX *v, const struct partner *p,
				     const struct ca_links *links, struct verify_attempt *a)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(v);
	int n = sk_X509_num(chain);

	for (int i = 0; i < n; i++) {
		X509 *x = sk_X509_value(chain, i);
		bool named = false;
		char subject[160];

		if (is_ca_of(p, x))
			return true;
		if (i + 1 < n && signed_by(x, sk_X509_value(chain, i + 1), links))
			continue;
		if (i + 1 == n && partner_issuer_of(p, x, links, &named))
			return true;
		if (i + 1 == n && !named)
			return false; /* leads nowhere this partner knows */
		name_text(X509_get_subject_name(x), subject, sizeof(subject));
		a->outcome = HS_BAD_SIGNATURE;
		a->x509_err = X509_V_ERR_CERT_SIGNATURE_FAILURE;
		snprintf(a->detail, sizeof(a->detail), "%s (depth %d, %s)",
			 X509_verify_cert_error_string(a->x509_err), i, subject);
		return false;
	}
	return false;
}

/* Every key of the chain, anchor included, must meet the partner minimum. */
static bool chain_keys_ok(STACK_OF(X509) *chain, const struct partner_policy *p, struct verify_attempt *a)
{
	char why[128];

	for (int i = 0; i < sk_X509_num(chain); i++) {
		if (verify_key_strong_enough(p, sk_X509_value(chain, i), why, sizeof(why)))
			continue;
		a->outcome = HS_WEAK_KEY;
		a->x509_err = i == 0 ? X509_V_ERR_EE_KEY_TOO_SMALL : X509_V_ERR_CA_KEY_TOO_SMALL;
		snprintf(a->detail, sizeof(a->detail), "key too weak at depth %d: %s", i, why);
		return false;
	}
	return true;
}

static int x509_err_for_policy(enum hs_outcome o)
{
	switch (o) {
	case HS_BAD_EKU: return X509_V_ERR_INVALID_PURPOSE;
	case HS_WEAK_KEY: return X509_V_ERR_EE_KEY_TOO_SMALL;
	default: return X509_V_ERR_APPLICATION_VERIFICATION;
	}
}

/* ------------------------------------------------------------------ */
/* CRLs of CAs the client presents (generation.h's struct chain_crl)   */
/* ------------------------------------------------------------------ */

/* Did the key of x verify c's CRL? Once a key did, its digest is kept
 * (write-once, lock-free): the same issuer on later handshakes costs a
 * digest, not a signature check. */
static bool chain_crl_signed_by(struct chain_crl *c, X509 *x)
{
	unsigned char md[32];
	unsigned mdlen = 0;
	EVP_PKEY *key = X509_get0_pubkey(x);
	int expected = 0;

	if (!key || X509_pubkey_digest(x, EVP_sha256(), md, &mdlen) != 1 || mdlen != sizeof(md)) {
		ERR_clear_error();
		return false;
	}
	if (atomic_load_explicit(&c->key_state, memory_order_acquire) == 2)
		return CRYPTO_memcmp(md, c->key_sha256, sizeof(md)) == 0 || X509_CRL_verify(c->crl, key) == 1;
	if (X509_CRL_verify(c->crl, key) != 1) {
		ERR_clear_error();
		return false;
	}
	if (atomic_compare_exchange_strong_explicit(&c->key_state, &expected, 1, memory_order_acq_rel,
						    memory_order_relaxed)) {
		memcpy(c->key_sha256, md, sizeof(md));
		atomic_store_explicit(&c->key_state, 2, memory_order_release);
	}
	return true;
}

/*
 * The chain CRLs that may apply to this handshake: those whose issuer the
 * client presented (same name, and its key verifies the CRL). A CRL of a
 * foreign CA that only borrows the name is never among them, so it can
 * neither revoke a client nor take the place of the real CRL (OpenSSL
 * picks one CRL per issuer name, then checks its signature: a foreign one
 * picked would refuse every client of that CA). The CRLs stay the
 * partner's; *out holds references it does not own. NULL when none.
 */
static int chain_crls_for(const struct partner *p, STACK_OF(X509) *untrusted, STACK_OF(X509_CRL) **out)
{
	*out = NULL;
	for (size_t i = 0; i < p->n_chain_crls; i++) {
		struct chain_crl *c = &p->chain_crls[i];
		const X509_NAME *issuer = X509_CRL_get_issuer(c->crl);

		for (int k = 0; k < sk_X509_num(untrusted); k++) {
			X509 *x = sk_X509_value(untrusted, k);

			if (X509_NAME_cmp(X509_get_subject_name(x), issuer) != 0 || !chain_crl_signed_by(c, x))
				continue;
			if (!*out && !(*out = sk_X509_CRL_new_null()))
				return -ENOMEM;
			ENSURE(sk_X509_CRL_push(*out, c->crl) > 0, ENOMEM);
			break;
		}
	}
	return 0;
}

/* Verify the chain with this partner's store and limits, then its policy.
 * Fills *a; returns 0, or -ENOMEM when the attempt could not run at all. */
static int verify_with_partner(const struct partner *p, X509 *leaf, STACK_OF(X509) *untrusted,
			       const struct ca_links *links, struct verify_attempt *a)
{
	STACK_OF(X509_CRL) *chain_crls = NULL;
	X509_STORE_CTX *v = X509_STORE_CTX_new();
	X509_VERIFY_PARAM *param;
	unsigned depth = p->cfg->verify_depth ? p->cfg->verify_depth : DEFAULT_VERIFY_DEPTH;
	int rc = -ENOMEM;

	memset(a, 0, sizeof(*a));
	a->partner = p;
	a->outcome = HS_OTHER;
	a->valid_until = SESSION_NO_BOUND;
	if (!v || X509_STORE_CTX_init(v, p->store, leaf, untrusted) != 1)
		goto out;
	a->links = links;
	a->full_walk = X509_STORE_CTX_get_verify(v);
	X509_STORE_CTX_set_verify(v, chain_walk);
	/* Set here, not only on the store, so the limits hold whatever the
	 * store was built with. verify_depth counts the anchor's index (leaf
	 * 0); OpenSSL's depth counts intermediates only. */
	param = X509_STORE_CTX_get0_param(v);
	X509_VERIFY_PARAM_set_depth(param, (int)depth - 1);
	X509_VERIFY_PARAM_set_auth_level(param, OPENSSL_AUTH_LEVEL);
	X509_VERIFY_PARAM_clear_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
	if (p->cfg->crl_paths.n)
		X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	if (chain_crls_for(p, untrusted, &chain_crls) < 0)
		goto out;
	if (chain_crls)
		X509_STORE_CTX_set0_crls(v, chain_crls);
	if (X509_STORE_CTX_set_purpose(v, X509_PURPOSE_SSL_CLIENT) != 1 ||
	    exdata_set_verify_attempt(v, a) < 0)
		goto out;
	X509_STORE_CTX_set_verify_cb(v, crl_policy_cb);

	rc = 0;
	if (X509_verify_cert(v) != 1) {
		a->x509_err = X509_STORE_CTX_get_error(v);
		a->outcome = verify_outcome_from_x509(a->x509_err);
		describe_chain_error(v, p, a);
		a->verified_to_ca = chain_reaches_partner_ca(v, p, links, a);
		goto out;
	}
	a->verified_to_ca = true;
	a->chain = X509_STORE_CTX_get1_chain(v);
	if (!a->chain) {
		rc = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < sk_X509_num(a->chain); i++)
		bound_by(&a->valid_until, X509_get0_notAfter(sk_X509_value(a->chain, i)));
	if (!chain_keys_ok(a->chain, &p->policy, a))
		goto out;
	a->outcome = verify_policy_check(&p->policy, leaf, &a->identity, a->detail, sizeof(a->detail));
	if (a->outcome != HS_OK)
		a->x509_err = x509_err_for_policy(a->outcome);
	else if (a->crl_waived)
		snprintf(a->detail, sizeof(a->detail), "ok (a CRL was missing or expired; allowed by crl_missing/crl_expired)");
out:
	X509_STORE_CTX_free(v);
	sk_X509_CRL_free(chain_crls);
	return rc;
}

static void attempt_release(struct verify_attempt *a)
{
	sk_X509_pop_free(a->chain, X509_free);
	a->chain = NULL;
	verified_identity_clear(&a->identity);
}

/* ------------------------------------------------------------------ */
/* Session binding (session_binding.h) as ticket app data              */
/* ------------------------------------------------------------------ */

/* What a session is bound to: the digest of the generation's trust
 * material when reload_build computed one (identical files on another
 * host or after a no-op reload give the same value), else the local id. */
static uint64_t binding_id(const struct generation *g)
{
	return g->trust_id ? g->trust_id : g->id;
}

/* Whether sess may be resumed in g now; *b gets its binding (partner). */
static enum session_verdict binding_verdict(SSL_SESSION *sess, const struct generation *g,
					    struct session_binding *b)
{
	if (session_binding_load(sess, b) < 0)
		return SESSION_FOREIGN;
	return session_binding_judge(b, binding_id(g), g->n_partners, session_clock_now(),
				     (int64_t)g->cfg.session_lifetime_s);
}

/*
 * Called before a ticket is sealed, for full and resumed handshakes alike
 * (and for TLS 1.3 stateful "tickets", before the session enters the
 * cache). The binding is already in the session: the verify callback put
 * it there, or the resumed session brought it, its verification time
 * untouched. What OpenSSL just changed is the session's own time (it
 * re-stamps it for every new ticket): bring its timeout back to the
 * binding's expiry, so the ticket's lifetime hint and OpenSSL's own
 * expiry check say what the binding says.
 */
static int ticket_generate_cb(SSL *ssl, void *arg)
{
	struct generation *g = arg;
	SSL_SESSION *sess = SSL_get0_session(ssl);
	struct session_binding b;

	if (session_binding_load(sess, &b) < 0)
		return 1; /* unbound: it will never resume (ticket_decrypt_cb) */
	return session_binding_bound_timeout(sess, &b, (int64_t)g->cfg.session_lifetime_s) == 0;
}

/* The stateful cache's judge: a cached session whose binding no longer
 * holds is a miss (full handshake), as a ticket's is (ticket_decrypt_cb). */
static bool cached_session_resumable(SSL_SESSION *sess, void *arg)
{
	struct session_binding b;

	return binding_verdict(sess, arg, &b) == SESSION_RESUMABLE;
}

static SSL_TICKET_RETURN ticket_decrypt_cb(SSL *ssl, SSL_SESSION *sess, const unsigned char *keyname,
					   size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
	struct generation *g = arg;
	struct session_binding b;

	switch (status) {
	case SSL_TICKET_SUCCESS:
	case SSL_TICKET_SUCCESS_RENEW:
		/* Stale generation (reload: new CRLs, new allow-lists), no
		 * binding, or a verification that no longer holds by itself
		 * (too old, or something it relied on expired): run the full
		 * handshake and verify again. The client is not refused. */
		if (binding_verdict(sess, g, &b) != SESSION_RESUMABLE)
			return SSL_TICKET_RETURN_IGNORE_RENEW;
		return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE
						    : SSL_TICKET_RETURN_USE_RENEW;
	case SSL_TICKET_EMPTY:
	case SSL_TICKET_NO_DECRYPT:
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	default:
		return SSL_TICKET_RETURN_ABORT;
	}
}

/* ------------------------------------------------------------------ */
/* The certificate verify callback                                     */
/* ------------------------------------------------------------------ */

/* The verdict of the best attempt. A refusal whose chain did not verify up
 * to the candidate's CA is attributed to no partner: the issuer name that
 * made the partner a candidate is only a claim (the reason says so). */
static void result_record(struct verify_result *res, const struct verify_attempt *a)
{
	int idx = a->partner ? (int)a->partner->idx : -1;

	res->chain_checked = true;
	res->outcome = a->outcome;
	res->x509_err = a->x509_err;
	res->partner = a->verified_to_ca ? idx : -1;
	res->claimed_partner = a->verified_to_ca ? -1 : idx;
	int n = res->claimed_partner < 0
		? snprintf(res->detail, sizeof(res->detail), "%s", a->detail)
		: snprintf(res->detail, sizeof(res->detail),
			   "%s; not attributed: the issuer name points at partner '%s', but the "
			   "chain does not verify up to its CA", a->detail, a->partner->cfg->name);
	if (n < 0)
		res->detail[0] = '\0';
	/* Where this or a->detail's snprintf cut a long name, the cut falls
	 * between two characters. */
	utf8_trim_partial(res->detail);
}

/* Try every candidate partner; the first that passes wins, else *best
 * holds the most specific failure. Returns 0 or -ENOMEM. */
static int verify_candidates(const struct generation *g, X509 *leaf, STACK_OF(X509) *untrusted,
			     const struct ca_links *links, struct verify_attempt *best)
{
	bool any = false;

	for (size_t i = 0; i < g->n_partners; i++) {
		const struct partner *p = &g->partners[i];
		struct verify_attempt a;

		if (!partner_is_candidate(p, leaf, untrusted))
			continue;
		any = true;
		if (verify_with_partner(p, leaf, untrusted, links, &a) < 0) {
			attempt_release(&a);
			return -ENOMEM;
		}
		if (a.outcome == HS_OK || attempt_rank(&a) > attempt_rank(best) || !best->partner) {
			attempt_release(best);
			*best = a;
			if (a.outcome == HS_OK)
				return 0;
		} else {
			attempt_release(&a);
		}
	}
	if (!any) {
		char issuer[160];

		name_text(X509_get_issuer_name(leaf), issuer, sizeof(issuer));
		best->outcome = HS_UNKNOWN_CA;
		best->x509_err = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
		snprintf(best->detail, sizeof(best->detail),
			 "issuer '%s' is not a CA of any partner", issuer);
	}
	return 0;
}

/*
 * Bind a session that was just verified in full: now is its verification
 * time, for good (resumptions carry it over unchanged). Its timeout is set
 * here too, for TLS 1.2 sessions that enter the stateful cache without a
 * ticket being sealed (ticket_generate_cb does it for the others).
 */
static int bind_session(SSL_SESSION *sess, const struct generation *g, uint32_t partner,
			int64_t valid_until)
{
	const struct session_binding b = {
		.trust_id = binding_id(g), .partner = partner,
		.verified_at = session_clock_now(), .valid_until = valid_until,
	};

	GUARD(session_binding_store(sess, &b));
	return session_binding_bound_timeout(sess, &b, (int64_t)g->cfg.session_lifetime_s);
}

static int mtlsd_cert_verify(X509_STORE_CTX *ctx, void *arg)
{
	const struct generation *g = arg;
	SSL *ssl = X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct verify_result *res = exdata_verify_result(ssl);
	X509 *leaf = X509_STORE_CTX_get0_cert(ctx);
	struct verify_attempt best = { .outcome = HS_OTHER, .x509_err = X509_V_ERR_UNSPECIFIED };

	/* Without a result slot the connection could not be attributed to a
	 * partner: fail closed (a bug in the caller, not the client). */
	if (!res || !leaf) {
		X509_STORE_CTX_set_error(ctx, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	X509_free(res->leaf);
	res->leaf = leaf;
	X509_up_ref(leaf);

	const struct ca_links *links = exdata_ca_links(SSL_get_SSL_CTX(ssl));

	if (verify_candidates(g, leaf, X509_STORE_CTX_get0_untrusted(ctx), links, &best) < 0) {
		best.outcome = HS_OTHER;
		best.x509_err = X509_V_ERR_OUT_OF_MEM;
		snprintf(best.detail, sizeof(best.detail), "out of memory while verifying");
	}
	result_record(res, &best);
	if (best.outcome != HS_OK) {
		X509_STORE_CTX_set_error(ctx, best.x509_err);
		attempt_release(&best);
		return 0;
	}
	/* Hand the verified chain to OpenSSL (SSL_get0_verified_chain) and
	 * bind the session for the session-ID cache and tickets. */
	X509_STORE_CTX_set0_verified_chain(ctx, best.chain);
	best.chain = NULL;
	verified_identity_clear(&res->identity);
	res->identity = best.identity;
	best.identity = (struct verified_identity){ NULL, NULL };
	X509_STORE_CTX_set_error(ctx, X509_V_OK);
	if (bind_session(SSL_get0_session(ssl), g, (uint32_t)res->partner, best.valid_until) < 0) {
		res->outcome = HS_OTHER;
		snprintf(res->detail, sizeof(res->detail), "out of memory binding the session");
		X509_STORE_CTX_set_error(ctx, X509_V_ERR_OUT_OF_MEM);
		return 0;
	}
	return 1;
}

/* ------------------------------------------------------------------ */
/* Installation and per-connection settling                            */
/* ------------------------------------------------------------------ */

/* The certificate_authorities list of the CertificateRequest: the subject
 * of every partner's trust anchor, once each. */
static int build_ca_list(const struct generation *g, STACK_OF(X509_NAME) **out)
{
	STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();

	ENSURE_PTR(names, ENOMEM);
	for (size_t i = 0; i < g->n_partners; i++) {
		STACK_OF(X509) *anchors = g->partners[i].anchors;

		for (int k = 0; k < sk_X509_num(anchors); k++) {
			const X509_NAME *n = X509_get_subject_name(sk_X509_value(anchors, k));
			X509_NAME *dup;
			bool seen = false;

			for (int j = 0; !seen && j < sk_X509_NAME_num(names); j++)
				seen = X509_NAME_cmp(sk_X509_NAME_value(names, j), n) == 0;
			if (seen)
				continue;
			dup = X509_NAME_dup(n);
			if (!dup || !sk_X509_NAME_push(names, dup)) {
				X509_NAME_free(dup);
				sk_X509_NAME_pop_free(names, X509_NAME_free);
				return -ENOMEM;
			}
		}
	}
	*out = names;
	return 0;
}

int verify_install(SSL_CTX *ctx, struct generation *g)
{
	static const unsigned char sid_ctx[] = "mtlsd";
	STACK_OF(X509_NAME) *names = NULL;

	ENSURE(ctx && g, EINVAL);
	GUARD(exdata_init());
	GUARD(find_openssl_check_crl());
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, mtlsd_cert_verify, g);
	/* OpenSSL resumes a session made with SSL_VERIFY_PEER only on a
	 * context with a session id context (sessions are only resumed by
	 * the context that made them); the generation binding is in the
	 * ticket app data, not here. */
	GUARD_OSSL(SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1), EINVAL);
	GUARD_OSSL(SSL_CTX_set_session_ticket_cb(ctx, ticket_generate_cb, ticket_decrypt_cb, g), EINVAL);
	if (config_session_cache(&g->cfg) == SESSION_CACHE_STATEFUL)
		GUARD(session_cache_set_judge(ctx, cached_session_resumable, g));
	GUARD(build_ca_list(g, &names));
	SSL_CTX_set0_CA_list(ctx, names);
	/* Every CRL a verification accepts bounds the session it makes. */
	for (size_t i = 0; i < g->n_partners; i++)
		X509_STORE_set_check_crl(g->partners[i].store, recording_check_crl);
	struct ca_links *links = NULL;
	GUARD(ca_links_build(g, &links));
	return exdata_set_ca_links(ctx, links);
}

int verify_attach(SSL *ssl, struct verify_result *res)
{
	GUARD(exdata_init());
	res->outcome = HS_OTHER;
	res->x509_err = 0;
	res->partner = -1;
	res->claimed_partner = -1;
	res->resumed = false;
	res->chain_checked = false;
	verified_identity_clear(&res->identity);
	res->detail[0] = '\0';
	return exdata_set_verify_result(ssl, res);
}

void verify_result_clear(struct verify_result *res)
{
	if (!res)
		return;
	X509_free(res->leaf);
	verified_identity_clear(&res->identity);
	memset(res, 0, sizeof(*res));
	res->outcome = HS_OTHER;
	res->partner = -1;
	res->claimed_partner = -1;
}

void verify_settle_failure(SSL *ssl, unsigned long ossl_err, struct verify_result *res)
{
	const char *why = ossl_err ? ERR_reason_error_string(ossl_err) : NULL;

	(void)ssl;
	/* The callback already said exactly why it refused the chain. */
	if (res->chain_checked && res->outcome != HS_OK)
		return;
	if (ERR_GET_LIB(ossl_err) == ERR_LIB_SSL) {
		switch (ERR_GET_REASON(ossl_err)) {
		case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
			res->outcome = HS_NO_CERT;
			snprintf(res->detail, sizeof(res->detail),
				 "client sent no certificate; mutual TLS is required");
			return;
		case SSL_R_UNSUPPORTED_PROTOCOL:
		case SSL_R_WRONG_VERSION_NUMBER:
		case SSL_R_VERSION_TOO_LOW:
		case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
			res->outcome = HS_PROTOCOL_ERROR;
			snprintf(res->detail, sizeof(res->detail),
				 "unsupported protocol version (%s); TLS 1.2 or later is required", why);
			return;
		default:
			break;
		}
	}
	res->outcome = HS_PROTOCOL_ERROR;
	snprintf(res->detail, sizeof(res->detail), "%s%s",
		 res->chain_checked ? "handshake failed after the certificate was accepted: " : "",
		 why ? why : "connection closed during the handshake");
}

/* A resumed session: the chain was verified in this generation (the ticket
 * binding says so); what can have changed since is the clock. OpenSSL and
 * ticket_decrypt_cb already refuse a session past its binding's expiry
 * (the client then does a full handshake); judging it again here closes
 * the window of a session that expired during its own handshake and
 * covers every resumption path, the stateful cache's included. */
static enum hs_outcome settle_resumed(SSL *ssl, struct generation *g, struct verify_result *res)
{
	X509 *leaf = SSL_get0_peer_certificate(ssl);
	struct session_binding b;
	enum session_verdict v;

	res->resumed = true;
	res->chain_checked = true;
	if (leaf && !res->leaf) {
		X509_up_ref(leaf);
		res->leaf = leaf;
	}
	v = binding_verdict(SSL_get0_session(ssl), g, &b);
	if (v == SESSION_FOREIGN) {
		snprintf(res->detail, sizeof(res->detail),
			 "resumed session is not bound to this configuration generation");
		return res->outcome = HS_OTHER;
	}
	res->partner = (int)b.partner;
	if (v != SESSION_RESUMABLE) {
		res->x509_err = X509_V_ERR_CERT_HAS_EXPIRED;
		snprintf(res->detail, sizeof(res->detail), "resumed session refused: %s; the client must "
			 "reconnect and be verified in full", session_verdict_text(v));
		return res->outcome = HS_EXPIRED;
	}
	if (!leaf) {
		snprintf(res->detail, sizeof(res->detail), "resumed session carries no client certificate");
		return res->outcome = HS_NO_CERT;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
		res->x509_err = X509_V_ERR_CERT_HAS_EXPIRED;
		snprintf(res->detail, sizeof(res->detail), "client certificate expired since the session was established");
		return res->outcome = HS_EXPIRED;
	}
	if (X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0) {
		res->x509_err = X509_V_ERR_CERT_NOT_YET_VALID;
		snprintf(res->detail, sizeof(res->detail), "client certificate is not yet valid");
		return res->outcome = HS_NOT_YET_VALID;
	}
	/* The identity is the allow-list's decision on this leaf: the ticket
	 * binding guarantees the same allow-list, so the same names. */
	enum hs_outcome o = verify_policy_check(&g->partners[b.partner].policy, leaf, &res->identity,
						res->detail, sizeof(res->detail));
	if (o != HS_OK)
		return res->outcome = o;
	snprintf(res->detail, sizeof(res->detail), "ok (resumed)");
	return res->outcome = HS_OK;
}

/*
 * The certificates the client sent after its leaf (its intermediates) are
 * needed only while its chain is verified: the leaf stays (the session's
 * and res->leaf), the verified chain holds the partner store's own
 * copies, tickets were sealed during the handshake and hold the leaf
 * only. Kept in the session for the connection's life they cost ~10 KiB
 * per idle connection (two decoded EC certificates with their EC groups:
 * bench/micro and docs/benchmarks.md); nothing in mtlsd reads them later.
 */
static void drop_client_intermediates(SSL *ssl)
{
	STACK_OF(X509) *sent = SSL_get_peer_cert_chain(ssl);
	X509 *x;

	while ((x = sk_X509_pop(sent)) != NULL)
		X509_free(x);
}

enum hs_outcome verify_settle_success(SSL *ssl, struct generation *g, struct verify_result *res)
{
	drop_client_intermediates(ssl);
	if (SSL_session_reused(ssl))
		return settle_resumed(ssl, g, res);
	res->resumed = false;
	/* A full handshake that completed without our callback deciding HS_OK
	 * must never be relayed (defence in depth against a mis-built ctx). */
	if (!res->chain_checked || res->outcome != HS_OK || res->partner < 0 ||
	    (size_t)res->partner >= g->n_partners) {
		if (res->outcome == HS_OK)
			res->outcome = HS_OTHER;
		if (!res->detail[0] || strcmp(res->detail, "ok") == 0)
			snprintf(res->detail, sizeof(res->detail),
				 "handshake completed without mtlsd verification");
		return res->outcome;
	}
	return HS_OK;
}
