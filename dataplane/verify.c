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
 * Resumption skips the callback, so sessions carry a binding (generation
 * id, partner index) as ticket app data; a ticket from another generation
 * falls back to a full handshake. See verify.h.
 */
#include "verify.h"

#include <ctype.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "generation.h"
#include "log.h"

#define DEFAULT_VERIFY_DEPTH 3
#define OPENSSL_AUTH_LEVEL 2 /* 112-bit security: RSA >= 2048, no SHA-1 signatures */

static int ssl_result_idx = -1;   /* SSL ex_data: struct verify_result * */
static int store_attempt_idx = -1; /* X509_STORE_CTX ex_data: struct attempt * */
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void index_init(void)
{
	ssl_result_idx = SSL_get_ex_new_index(0, "mtlsd verify_result", NULL, NULL, NULL);
	store_attempt_idx = X509_STORE_CTX_get_ex_new_index(0, "mtlsd attempt", NULL, NULL, NULL);
}

static int index_ready(void)
{
	pthread_once(&index_once, index_init);
	ENSURE(ssl_result_idx >= 0 && store_attempt_idx >= 0, ENOMEM);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Allow-list patterns                                                 */
/* ------------------------------------------------------------------ */

/* '*' matches any run (possibly empty) of characters; everything else is
 * compared byte for byte. Iterative, linear backtracking on the last '*'. */
static bool glob_match_n(const char *p, size_t plen, const char *s, size_t slen)
{
	size_t pi = 0, si = 0, star = SIZE_MAX, mark = 0;

	while (si < slen) {
		if (pi < plen && p[pi] == '*') {
			star = pi++;
			mark = si;
		} else if (pi < plen && p[pi] == s[si]) {
			pi++;
			si++;
		} else if (star != SIZE_MAX) {
			pi = star + 1;
			si = ++mark;
		} else {
			return false;
		}
	}
	while (pi < plen && p[pi] == '*')
		pi++;
	return pi == plen;
}

bool verify_match_glob(const char *pattern, const char *value)
{
	if (!pattern || !value || !*pattern)
		return false;
	return glob_match_n(pattern, strlen(pattern), value, strlen(value));
}

bool verify_match_dns(const char *pattern, const char *name)
{
	const char *dot;

	if (!pattern || !name || !*pattern || !*name)
		return false;
	if (strncmp(pattern, "*.", 2) != 0)
		return strcasecmp(pattern, name) == 0;
	/* "*.a.example": exactly one non-empty left-most label, and never a
	 * name that itself carries a wildcard. */
	dot = strchr(name, '.');
	if (!dot || dot == name || strchr(name, '*'))
		return false;
	return strcasecmp(dot, pattern + 1) == 0;
}

/* Length of "scheme://authority" at the start of s, 0 if s has none. */
static size_t uri_prefix_len(const char *s)
{
	const char *sep = strstr(s, "://");
	const char *path;

	if (!sep || sep == s)
		return 0;
	path = strchr(sep + 3, '/');
	return path ? (size_t)(path - s) : strlen(s);
}

/* A path segment a wildcard may match: non-empty, not a dot segment. */
static bool segment_matchable(const char *seg, size_t len)
{
	return len > 0 && !(len == 1 && seg[0] == '.') &&
	       !(len == 2 && seg[0] == '.' && seg[1] == '.');
}

bool verify_match_uri(const char *pattern, const char *uri)
{
	size_t pre;
	const char *p, *u;

	if (!pattern || !uri || !*pattern)
		return false;
	if (!strchr(pattern, '*'))
		return strcmp(pattern, uri) == 0;
	/* Wildcards only ever apply to the path of a plain hierarchical URI. */
	pre = uri_prefix_len(pattern);
	if (pre == 0 || uri_prefix_len(uri) != pre || strncmp(pattern, uri, pre) != 0)
		return false;
	if (strpbrk(uri, "?#") || uri[pre] != '/' || pattern[pre] != '/')
		return false;
	p = pattern + pre + 1;
	u = uri + pre + 1;
	for (;;) {
		size_t plen = strcspn(p, "/"), ulen = strcspn(u, "/");

		if (plen == 2 && p[0] == '*' && p[1] == '*' && p[2] == '\0') {
			/* "**": one or more remaining segments, all matchable. */
			for (;;) {
				if (!segment_matchable(u, ulen))
					return false;
				if (u[ulen] == '\0')
					return true;
				u += ulen + 1;
				ulen = strcspn(u, "/");
			}
		}
		if (!segment_matchable(u, ulen) || !glob_match_n(p, plen, u, ulen))
			return false;
		if (p[plen] == '\0' || u[ulen] == '\0')
			return p[plen] == '\0' && u[ulen] == '\0';
		p += plen + 1;
		u += ulen + 1;
	}
}

static bool has_control_char(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* NULL when the pattern is acceptable, else why not. */
static const char *dns_pattern_problem(const char *pat)
{
	const char *s = pat;
	int labels = 0;

	if (strncmp(s, "*.", 2) == 0)
		s += 2;
	if (strlen(pat) > 253)
		return "longer than 253 characters";
	for (const char *label = s;; label++) {
		size_t len = strcspn(label, ".");

		if (len == 0 || len > 63)
			return "empty label or label longer than 63 characters";
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)label[i];

			if (c == '*')
				return "'*' is only allowed as the whole left-most label (\"*.a.example\")";
			if (!isalnum(c) && c != '-' && c != '_')
				return "only letters, digits, '-' and '_' are allowed in a label";
		}
		labels++;
		label += len;
		if (*label == '\0')
			break;
	}
	if (s != pat && labels < 2)
		return "a wildcard needs at least two labels after it (\"*.a.example\")";
	return NULL;
}

static const char *uri_pattern_problem(const char *pat)
{
	size_t pre = uri_prefix_len(pat);
	const char *path;

	if (!strchr(pat, '*'))
		return strchr(pat, ' ') ? "spaces are not allowed" : NULL;
	if (pre == 0)
		return "a wildcard pattern must be scheme://authority/path";
	if (memchr(pat, '*', pre))
		return "'*' is not allowed in the scheme or authority (they must match exactly)";
	if (strpbrk(pat, "?#"))
		return "query and fragment are not allowed";
	path = pat + pre;
	if (*path != '/')
		return "'*' needs a path (\"spiffe://td/prod/*\")";
	for (const char *seg = path + 1;; seg++) {
		size_t len = strcspn(seg, "/");

		if (!segment_matchable(seg, len))
			return "empty, '.' or '..' path segment";
		if (memmem(seg, len, "**", 2) && (len != 2 || seg[len] != '\0'))
			return "\"**\" is only allowed as the whole last segment (\"/prod/**\")";
		seg += len;
		if (*seg == '\0')
			break;
	}
	return NULL;
}

static const char *name_pattern_problem(const char *pat)
{
	(void)pat;
	return NULL;
}

static int strlist_copy_checked(const struct cfg_strlist *in, struct cfg_strlist *out,
				const char *key, const char *(*problem)(const char *),
				char *err, size_t errlen)
{
	out->n = 0;
	out->v = in->n ? calloc(in->n, sizeof(char *)) : NULL;
	ENSURE(in->n == 0 || out->v, ENOMEM);
	for (size_t i = 0; i < in->n; i++) {
		const char *pat = in->v[i];
		const char *why = NULL;

		if (!pat || !*pat)
			why = "empty pattern";
		else if (has_control_char(pat))
			why = "control characters are not allowed";
		else
			why = problem(pat);
		if (why) {
			snprintf(err, errlen, "key '%s': pattern '%s': %s", key, pat ? pat : "", why);
			return -EINVAL;
		}
		out->v[i] = strdup(pat);
		ENSURE(out->v[i], ENOMEM);
		out->n++;
	}
	return 0;
}

static void strlist_release(struct cfg_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int partner_policy_compile(const struct cfg_partner *cp, struct partner_policy *out,
			   char *err, size_t errlen)
{
	int rc;

	memset(out, 0, sizeof(*out));
	out->min_rsa_bits = 2048;
	out->min_ec_bits = 256;
	GUARD_GOTO(strlist_copy_checked(&cp->allow_dns, &out->dns, "allow_dns",
					dns_pattern_problem, err, errlen), rc, fail);
	GUARD_GOTO(strlist_copy_checked(&cp->allow_uri, &out->uri, "allow_uri",
					uri_pattern_problem, err, errlen), rc, fail);
	GUARD_GOTO(strlist_copy_checked(&cp->allow_cn, &out->cn, "allow_cn",
					name_pattern_problem, err, errlen), rc, fail);
	GUARD_GOTO(strlist_copy_checked(&cp->allow_ou, &out->ou, "allow_ou",
					name_pattern_problem, err, errlen), rc, fail);
	out->any_allowed = !out->dns.n && !out->uri.n && !out->cn.n && !out->ou.n;
	return 0;
fail:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory compiling the allow-list");
	partner_policy_free(out);
	return rc;
}

void partner_policy_free(struct partner_policy *p)
{
	if (!p)
		return;
	strlist_release(&p->dns);
	strlist_release(&p->uri);
	strlist_release(&p->cn);
	strlist_release(&p->ou);
}

/* ------------------------------------------------------------------ */
/* Policy on a verified leaf                                           */
/* ------------------------------------------------------------------ */

/* True when x's public key meets the partner minimum; else why says what
 * it is ("EC key of 224 bits (minimum 256)"). */
static bool key_strong_enough(X509 *x, const struct partner_policy *p, char *why, size_t len)
{
	EVP_PKEY *pk = X509_get0_pubkey(x);
	int bits = pk ? EVP_PKEY_get_bits(pk) : 0;

	switch (pk ? EVP_PKEY_get_base_id(pk) : EVP_PKEY_NONE) {
	case EVP_PKEY_RSA:
	case EVP_PKEY_RSA_PSS:
		if (bits >= p->min_rsa_bits)
			return true;
		snprintf(why, len, "RSA key of %d bits (minimum %d)", bits, p->min_rsa_bits);
		return false;
	case EVP_PKEY_EC:
		if (bits >= p->min_ec_bits)
			return true;
		snprintf(why, len, "EC key of %d bits (minimum %d)", bits, p->min_ec_bits);
		return false;
	case EVP_PKEY_ED25519:
	case EVP_PKEY_ED448:
		return true;
	default:
		snprintf(why, len, "unsupported public key type %s",
			 pk && EVP_PKEY_get0_type_name(pk) ? EVP_PKEY_get0_type_name(pk) : "(unreadable)");
		return false;
	}
}

/* A name entry as UTF-8; false (and nothing to free) when it holds a NUL. */
static bool entry_utf8(const X509_NAME_ENTRY *e, unsigned char **out)
{
	int len = ASN1_STRING_to_UTF8(out, X509_NAME_ENTRY_get_data(e));

	if (len < 0)
		return false;
	if (memchr(*out, '\0', (size_t)len)) {
		OPENSSL_free(*out);
		return false;
	}
	return true;
}

/* Does any subject entry of type nid match any pattern of l? */
static bool subject_matches(X509 *leaf, int nid, const struct cfg_strlist *l)
{
	const X509_NAME *name = X509_get_subject_name(leaf);
	bool hit = false;

	for (int i = -1; !hit && (i = X509_NAME_get_index_by_NID(name, nid, i)) >= 0;) {
		unsigned char *v;

		if (!entry_utf8(X509_NAME_get_entry(name, i), &v))
			continue;
		for (size_t k = 0; !hit && k < l->n; k++)
			hit = verify_match_glob(l->v[k], (const char *)v);
		OPENSSL_free(v);
	}
	return hit;
}

static bool san_matches(X509 *leaf, const struct partner_policy *p)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	bool hit = false;

	for (int i = 0; !hit && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const ASN1_STRING *s = g->type == GEN_DNS ? g->d.dNSName :
				       g->type == GEN_URI ? g->d.uniformResourceIdentifier : NULL;
		const struct cfg_strlist *l = g->type == GEN_DNS ? &p->dns : &p->uri;
		const char *v;

		/* A NUL inside a SAN would let "a.example\0.evil" pass as
		 * "a.example": such names never match. */
		if (!s || memchr(ASN1_STRING_get0_data(s), '\0', (size_t)ASN1_STRING_length(s)))
			continue;
		v = (const char *)ASN1_STRING_get0_data(s);
		for (size_t k = 0; !hit && k < l->n; k++)
			hit = g->type == GEN_DNS ? verify_match_dns(l->v[k], v)
						 : verify_match_uri(l->v[k], v);
	}
	GENERAL_NAMES_free(gens);
	return hit;
}

static enum hs_outcome check_usage(X509 *leaf, char *detail, size_t len)
{
	uint32_t flags = X509_get_extension_flags(leaf);

	/* A CA certificate is never a client identity (documented choice:
	 * bad_eku, the certificate is not meant for client authentication). */
	if (X509_check_ca(leaf) != 0) {
		snprintf(detail, len, "certificate is a CA certificate; a CA cannot be a client identity");
		return HS_BAD_EKU;
	}
	if (!(flags & EXFLAG_XKUSAGE)) {
		snprintf(detail, len, "no extendedKeyUsage extension; clientAuth is required");
		return HS_BAD_EKU;
	}
	if (!(X509_get_extended_key_usage(leaf) & XKU_SSL_CLIENT)) {
		snprintf(detail, len, "extendedKeyUsage lacks clientAuth");
		return HS_BAD_EKU;
	}
	if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE)) {
		snprintf(detail, len, "keyUsage lacks digitalSignature");
		return HS_BAD_EKU;
	}
	return HS_OK;
}

enum hs_outcome verify_policy_check(const struct partner_policy *p, X509 *leaf,
				    char *detail, size_t len)
{
	char why[128];
	enum hs_outcome o = check_usage(leaf, detail, len);

	if (o != HS_OK)
		return o;
	if (!key_strong_enough(leaf, p, why, sizeof(why))) {
		snprintf(detail, len, "client key too weak: %s", why);
		return HS_WEAK_KEY;
	}
	if (p->any_allowed || san_matches(leaf, p) ||
	    (p->cn.n && subject_matches(leaf, NID_commonName, &p->cn)) ||
	    (p->ou.n && subject_matches(leaf, NID_organizationalUnitName, &p->ou))) {
		snprintf(detail, len, "ok");
		return HS_OK;
	}
	snprintf(detail, len, "no SAN DNS/URI, CN or OU of the certificate matches the partner's allow-list");
	return HS_POLICY_DENIED;
}

enum hs_outcome verify_outcome_from_x509(int x509_err)
{
	switch (x509_err) {
	case X509_V_OK:
		return HS_OK;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return HS_EXPIRED;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return HS_NOT_YET_VALID;
	case X509_V_ERR_CERT_REVOKED:
		return HS_REVOKED;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_CERT_UNTRUSTED:
	case X509_V_ERR_CERT_REJECTED:
		return HS_UNKNOWN_CA;
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
	case X509_V_ERR_CRL_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
	case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
		return HS_BAD_SIGNATURE;
	case X509_V_ERR_INVALID_PURPOSE:
		return HS_BAD_EKU;
	case X509_V_ERR_CERT_CHAIN_TOO_LONG:
	case X509_V_ERR_PATH_LENGTH_EXCEEDED:
		return HS_CHAIN_TOO_DEEP;
	case X509_V_ERR_EE_KEY_TOO_SMALL:
	case X509_V_ERR_CA_KEY_TOO_SMALL:
	case X509_V_ERR_CA_MD_TOO_WEAK:
		return HS_WEAK_KEY;
	case X509_V_ERR_UNABLE_TO_GET_CRL:
	case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
	case X509_V_ERR_CRL_HAS_EXPIRED:
	case X509_V_ERR_CRL_NOT_YET_VALID:
	case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
	case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
	case X509_V_ERR_KEYUSAGE_NO_CRL_SIGN:
	case X509_V_ERR_DIFFERENT_CRL_SCOPE:
		return HS_CRL_UNAVAILABLE;
	default:
		return HS_OTHER;
	}
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
	char detail[256];
};

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

static void describe_chain_error(X509_STORE_CTX *v, int err, char *out, size_t len)
{
	X509 *at = X509_STORE_CTX_get_current_cert(v);
	char subject[160] = "?";
	char when[40] = "";
	struct tm tm;

	if (at)
		X509_NAME_oneline(X509_get_subject_name(at), subject, sizeof(subject));
	if (at && err == X509_V_ERR_CERT_HAS_EXPIRED &&
	    ASN1_TIME_to_tm(X509_get0_notAfter(at), &tm) == 1)
		strftime(when, sizeof(when), ", notAfter %Y-%m-%dT%H:%M:%SZ", &tm);
	if (at && err == X509_V_ERR_CERT_NOT_YET_VALID &&
	    ASN1_TIME_to_tm(X509_get0_notBefore(at), &tm) == 1)
		strftime(when, sizeof(when), ", notBefore %Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(out, len, "%s (depth %d, %s%s)", X509_verify_cert_error_string(err),
		 X509_STORE_CTX_get_error_depth(v), subject, when);
}

/* Every key of the chain, anchor included, must meet the partner minimum. */
static bool chain_keys_ok(STACK_OF(X509) *chain, const struct partner_policy *p, struct attempt *a)
{
	char why[128];

	for (int i = 0; i < sk_X509_num(chain); i++) {
		if (key_strong_enough(sk_X509_value(chain, i), p, why, sizeof(why)))
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
			       struct attempt *a)
{
	X509_STORE_CTX *v = X509_STORE_CTX_new();
	X509_VERIFY_PARAM *param;
	unsigned depth = p->cfg->verify_depth ? p->cfg->verify_depth : DEFAULT_VERIFY_DEPTH;
	int rc = -ENOMEM;

	memset(a, 0, sizeof(*a));
	a->partner = p;
	if (!v || X509_STORE_CTX_init(v, p->store, leaf, untrusted) != 1)
		goto out;
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
		describe_chain_error(v, a->x509_err, a->detail, sizeof(a->detail));
		goto out;
	}
	a->chain = X509_STORE_CTX_get1_chain(v);
	if (!a->chain) {
		rc = -ENOMEM;
		goto out;
	}
	if (!chain_keys_ok(a->chain, &p->policy, a))
		goto out;
	a->outcome = verify_policy_check(&p->policy, leaf, a->detail, sizeof(a->detail));
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
}

/* ------------------------------------------------------------------ */
/* Session binding: (generation id, partner index) as ticket app data  */
/* ------------------------------------------------------------------ */

#define BINDING_MAGIC "mtb1"
#define BINDING_LEN 16 /* magic[4] | generation id, 8 bytes BE | partner, 4 bytes BE */

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
	ENSURE(gen_id == g->id && idx < g->n_partners, ENOENT);
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
		return binding_store(SSL_get0_session(ssl), g->id, (uint32_t)res->partner) == 0;
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
			     struct attempt *best)
{
	bool any = false;

	for (size_t i = 0; i < g->n_partners; i++) {
		const struct partner *p = &g->partners[i];
		struct attempt a;

		if (!partner_is_candidate(p, leaf, untrusted))
			continue;
		any = true;
		if (verify_with_partner(p, leaf, untrusted, &a) < 0) {
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

		X509_NAME_oneline(X509_get_issuer_name(leaf), issuer, sizeof(issuer));
		best->outcome = HS_UNKNOWN_CA;
		best->x509_err = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
		snprintf(best->detail, sizeof(best->detail),
			 "issuer %s is not a CA of any partner", issuer);
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

	if (verify_candidates(g, leaf, X509_STORE_CTX_get0_untrusted(ctx), &best) < 0) {
		best.outcome = HS_OTHER;
		best.x509_err = X509_V_ERR_OUT_OF_MEM;
		snprintf(best.detail, sizeof(best.detail), "out of memory while verifying");
	}
	result_record(res, &best);
	if (best.outcome != HS_OK) {
		res->outcome = best.outcome;
		X509_STORE_CTX_set_error(ctx, best.x509_err);
		attempt_release(&best);
		return 0;
	}
	/* Hand the verified chain to OpenSSL (SSL_get0_verified_chain) and
	 * bind the session for the session-ID cache and tickets. */
	X509_STORE_CTX_set0_verified_chain(ctx, best.chain);
	best.chain = NULL;
	X509_STORE_CTX_set_error(ctx, X509_V_OK);
	if (binding_store(SSL_get0_session(ssl), g->id, (uint32_t)res->partner) < 0) {
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
	GUARD(build_ca_list(g, &names));
	SSL_CTX_set0_CA_list(ctx, names);
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
	res->detail[0] = '\0';
	GUARD_OSSL(SSL_set_ex_data(ssl, ssl_result_idx, res), ENOMEM);
	return 0;
}

void verify_result_clear(struct verify_result *res)
{
	if (!res)
		return;
	X509_free(res->leaf);
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
	snprintf(res->detail, sizeof(res->detail), "ok (resumed)");
	return res->outcome = HS_OK;
}

enum hs_outcome verify_settle_success(SSL *ssl, struct generation *g, struct verify_result *res)
{
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
