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
 * Resumption skips the callback, so sessions carry a binding (trust id,
 * partner index) as ticket app data; a ticket from a generation with other
 * trust material (other CAs, CRLs, allow-lists, partners) falls back to a
 * full handshake. See verify.h and generation.h's trust_id.
 */
#include "verify.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cert_name.h"
#include "generation.h"

#define DEFAULT_VERIFY_DEPTH 3
#define OPENSSL_AUTH_LEVEL 2 /* 112-bit security: RSA >= 2048, no SHA-1 signatures */

static int ssl_result_idx = -1;   /* SSL ex_data: struct verify_result * */
static int store_attempt_idx = -1; /* X509_STORE_CTX ex_data: struct attempt * */
static int ctx_links_idx = -1;     /* SSL_CTX ex_data: struct ca_links * */
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void ca_links_free_ex(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp);

static void index_init(void)
{
	ssl_result_idx = SSL_get_ex_new_index(0, "mtlsd verify_result", NULL, NULL, NULL);
	store_attempt_idx = X509_STORE_CTX_get_ex_new_index(0, "mtlsd attempt", NULL, NULL, NULL);
	ctx_links_idx = SSL_CTX_get_ex_new_index(0, "mtlsd ca links", NULL, NULL, ca_links_free_ex);
}

static int index_ready(void)
{
	pthread_once(&index_once, index_init);
	ENSURE(ssl_result_idx >= 0 && store_attempt_idx >= 0 && ctx_links_idx >= 0, ENOMEM);
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

static void ca_links_free_ex(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	free(ptr);
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
struct attempt {
	const struct partner *partner;
	enum hs_outcome outcome;
	int x509_err;
	bool crl_waived;          /* a missing/expired CRL was allowed by policy */
	STACK_OF(X509) *chain;    /* verified chain on success (owned) */
	struct verified_identity identity; /* on success: what the allow-list vouches for */
	const struct ca_links *links;       /* the generation's known CA links */
	X509_STORE_CTX_verify_fn full_walk; /* OpenSSL's own chain walk */
	char detail[256];
};

/* X509_STORE_CTX's chain walk: the known-links short cut, else OpenSSL's. */
static int chain_walk(X509_STORE_CTX *v)
{
	struct attempt *a = X509_STORE_CTX_get_ex_data(v, store_attempt_idx);

	if (!a || !a->full_walk)
		return 0;
	if (chain_known_good(v, a->links))
		return 1;
	return a->full_walk(v);
}

/* How far a failed attempt got: a policy refusal after a good chain says
 * more than a chain error, which says more than "no issuer found". */
static int attempt_rank(const struct attempt *a)
{
	if (a->outcome == HS_UNKNOWN_CA)
		return 1;
	if (a->x509_err == X509_V_ERR_APPLICATION_VERIFICATION || a->chain)
		return 3;
	return 2;
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
	struct attempt *a = X509_STORE_CTX_get_ex_data(v, store_attempt_idx);
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

/* A name as the audit line's subject/issuer fields show it (RFC 2253,
 * lib/cert_name.h); "?" when it cannot be printed. */
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
static void describe_chain_error(X509_STORE_CTX *v, const struct partner *p, struct attempt *a)
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

/* Every key of the chain, anchor included, must meet the partner minimum. */
static bool chain_keys_ok(STACK_OF(X509) *chain, const struct partner_policy *p, struct attempt *a)
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

/* Verify the chain with this partner's store and limits, then its policy.
 * Fills *a; returns 0, or -ENOMEM when the attempt could not run at all. */
static int verify_with_partner(const struct partner *p, X509 *leaf, STACK_OF(X509) *untrusted,
			       const struct ca_links *links, struct attempt *a)
{
	X509_STORE_CTX *v = X509_STORE_CTX_new();
	X509_VERIFY_PARAM *param;
	unsigned depth = p->cfg->verify_depth ? p->cfg->verify_depth : DEFAULT_VERIFY_DEPTH;
	int rc = -ENOMEM;

	memset(a, 0, sizeof(*a));
	a->partner = p;
	a->outcome = HS_OTHER;
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
	if (X509_STORE_CTX_set_purpose(v, X509_PURPOSE_SSL_CLIENT) != 1 ||
	    X509_STORE_CTX_set_ex_data(v, store_attempt_idx, a) != 1)
		goto out;
	X509_STORE_CTX_set_verify_cb(v, crl_policy_cb);

	rc = 0;
	if (X509_verify_cert(v) != 1) {
		a->x509_err = X509_STORE_CTX_get_error(v);
		a->outcome = verify_outcome_from_x509(a->x509_err);
		describe_chain_error(v, p, a);
		goto out;
	}
	a->chain = X509_STORE_CTX_get1_chain(v);
	if (!a->chain) {
		rc = -ENOMEM;
		goto out;
	}
	if (!chain_keys_ok(a->chain, &p->policy, a))
		goto out;
	a->outcome = verify_policy_check(&p->policy, leaf, &a->identity, a->detail, sizeof(a->detail));
	if (a->outcome != HS_OK)
		a->x509_err = x509_err_for_policy(a->outcome);
	else if (a->crl_waived)
		snprintf(a->detail, sizeof(a->detail), "ok (a CRL was missing or expired; allowed by crl_missing/crl_expired)");
out:
	X509_STORE_CTX_free(v);
	return rc;
}

static void attempt_release(struct attempt *a)
{
	sk_X509_pop_free(a->chain, X509_free);
	a->chain = NULL;
	verified_identity_clear(&a->identity);
}

/* ------------------------------------------------------------------ */
/* Session binding: (trust id, partner index) as ticket app data       */
/* ------------------------------------------------------------------ */

#define BINDING_MAGIC "mtb1"
#define BINDING_LEN 16 /* magic[4] | generation id, 8 bytes BE | partner, 4 bytes BE */

/* What a session is bound to: the digest of the generation's trust
 * material when reload_build computed one (identical files on another
 * host or after a no-op reload give the same value), else the local id. */
static uint64_t binding_id(const struct generation *g)
{
	return g->trust_id ? g->trust_id : g->id;
}

static int binding_store(SSL_SESSION *sess, uint64_t gen_id, uint32_t partner)
{
	uint8_t b[BINDING_LEN];

	memcpy(b, BINDING_MAGIC, 4);
	for (int i = 0; i < 8; i++)
		b[4 + i] = (uint8_t)(gen_id >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		b[12 + i] = (uint8_t)(partner >> (24 - 8 * i));
	ENSURE_PTR(sess, EINVAL);
	GUARD_OSSL(SSL_SESSION_set1_ticket_appdata(sess, b, sizeof(b)), ENOMEM);
	return 0;
}

/* The binding of sess when it belongs to generation g and names one of
 * its partners; -ENOENT otherwise (absent, foreign, stale). */
static int binding_load(SSL_SESSION *sess, const struct generation *g, uint32_t *partner)
{
	void *data = NULL;
	size_t len = 0;
	const uint8_t *b;
	uint64_t gen_id = 0;
	uint32_t idx = 0;

	ENSURE(sess && SSL_SESSION_get0_ticket_appdata(sess, &data, &len) == 1, ENOENT);
	ENSURE(data && len == BINDING_LEN && memcmp(data, BINDING_MAGIC, 4) == 0, ENOENT);
	b = data;
	for (int i = 0; i < 8; i++)
		gen_id = (gen_id << 8) | b[4 + i];
	for (int i = 0; i < 4; i++)
		idx = (idx << 8) | b[12 + i];
	ENSURE(gen_id == binding_id(g) && idx < g->n_partners, ENOENT);
	*partner = idx;
	return 0;
}

static struct verify_result *result_of(SSL *ssl)
{
	return ssl && ssl_result_idx >= 0 ? SSL_get_ex_data(ssl, ssl_result_idx) : NULL;
}

/* Called before a ticket is encrypted: bind it to what this connection
 * verified (a resumed session keeps the binding it was accepted with). */
static int ticket_generate_cb(SSL *ssl, void *arg)
{
	struct generation *g = arg;
	struct verify_result *res = result_of(ssl);

	if (res && res->chain_checked && res->outcome == HS_OK && res->partner >= 0)
		return binding_store(SSL_get0_session(ssl), binding_id(g), (uint32_t)res->partner) == 0;
	return 1;
}

static SSL_TICKET_RETURN ticket_decrypt_cb(SSL *ssl, SSL_SESSION *sess, const unsigned char *keyname,
					   size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
	struct generation *g = arg;
	uint32_t partner;

	switch (status) {
	case SSL_TICKET_SUCCESS:
	case SSL_TICKET_SUCCESS_RENEW:
		/* Stale generation (reload: new CRLs, new allow-lists) or no
		 * binding: run the full handshake and verify again. */
		if (binding_load(sess, g, &partner) < 0)
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

static void result_record(struct verify_result *res, const struct attempt *a)
{
	res->chain_checked = true;
	res->outcome = a->outcome;
	res->x509_err = a->x509_err;
	res->partner = a->partner ? (int)a->partner->idx : -1;
	snprintf(res->detail, sizeof(res->detail), "%s", a->detail);
}

/* Try every candidate partner; the first that passes wins, else *best
 * holds the most specific failure. Returns 0 or -ENOMEM. */
static int verify_candidates(const struct generation *g, X509 *leaf, STACK_OF(X509) *untrusted,
			     const struct ca_links *links, struct attempt *best)
{
	bool any = false;

	for (size_t i = 0; i < g->n_partners; i++) {
		const struct partner *p = &g->partners[i];
		struct attempt a;

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

static int mtlsd_cert_verify(X509_STORE_CTX *ctx, void *arg)
{
	const struct generation *g = arg;
	SSL *ssl = X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct verify_result *res = result_of(ssl);
	X509 *leaf = X509_STORE_CTX_get0_cert(ctx);
	struct attempt best = { .outcome = HS_OTHER, .x509_err = X509_V_ERR_UNSPECIFIED };

	/* Without a result slot the connection could not be attributed to a
	 * partner: fail closed (a bug in the caller, not the client). */
	if (!res || !leaf) {
		X509_STORE_CTX_set_error(ctx, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	X509_free(res->leaf);
	res->leaf = leaf;
	X509_up_ref(leaf);

	const struct ca_links *links = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_links_idx);

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
	if (binding_store(SSL_get0_session(ssl), binding_id(g), (uint32_t)res->partner) < 0) {
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
	GUARD(index_ready());
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, mtlsd_cert_verify, g);
	/* Resumption with client certificates requires a session id context;
	 * the generation binding is in the ticket app data, not here. */
	GUARD_OSSL(SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1), EINVAL);
	/* A renegotiation would re-run verification mid-stream, after the
	 * PROXY header already named the client: never allow it. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	GUARD_OSSL(SSL_CTX_set_session_ticket_cb(ctx, ticket_generate_cb, ticket_decrypt_cb, g), EINVAL);
	/*
	 * One ticket per handshake, not OpenSSL's two. Sealing a TLS 1.3
	 * ticket re-parses the whole session (i2d, d2i, i2d in
	 * construct_stateless_ticket), client certificate included, and in
	 * OpenSSL 3.0 decoding a certificate's key builds a decoder chain
	 * from scratch: the second ticket cost ~9% of a full handshake and
	 * a third of a resumed one (docs/benchmarks.md). A client resuming
	 * gets a fresh ticket each time, so one is enough to keep resuming.
	 * session_cache = off (ticket_keys.c, applied after this) still sets 0.
	 */
	GUARD_OSSL(SSL_CTX_set_num_tickets(ctx, 1), EINVAL);
	GUARD(build_ca_list(g, &names));
	SSL_CTX_set0_CA_list(ctx, names);
	struct ca_links *links = NULL;
	GUARD(ca_links_build(g, &links));
	free(SSL_CTX_get_ex_data(ctx, ctx_links_idx));
	if (SSL_CTX_set_ex_data(ctx, ctx_links_idx, links) != 1) {
		free(links);
		return -ENOMEM;
	}
	return 0;
}

int verify_attach(SSL *ssl, struct verify_result *res)
{
	GUARD(index_ready());
	res->outcome = HS_OTHER;
	res->x509_err = 0;
	res->partner = -1;
	res->resumed = false;
	res->chain_checked = false;
	verified_identity_clear(&res->identity);
	res->detail[0] = '\0';
	GUARD_OSSL(SSL_set_ex_data(ssl, ssl_result_idx, res), ENOMEM);
	return 0;
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
 * binding says so); what can have changed since is the clock. */
static enum hs_outcome settle_resumed(SSL *ssl, struct generation *g, struct verify_result *res)
{
	X509 *leaf = SSL_get0_peer_certificate(ssl);
	uint32_t partner;

	res->resumed = true;
	res->chain_checked = true;
	if (leaf && !res->leaf) {
		X509_up_ref(leaf);
		res->leaf = leaf;
	}
	if (binding_load(SSL_get0_session(ssl), g, &partner) < 0) {
		snprintf(res->detail, sizeof(res->detail),
			 "resumed session is not bound to this configuration generation");
		return res->outcome = HS_OTHER;
	}
	res->partner = (int)partner;
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
	enum hs_outcome o = verify_policy_check(&g->partners[partner].policy, leaf, &res->identity,
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
