/*
 * cert_check.c: the checks of `mtlsctl cert check` (cert_check.h).
 *
 * The chain is built once with OpenSSL's verifier, with time checks off
 * (X509_V_FLAG_NO_CHECK_TIME) and no CRLs, so "chain" answers only "does it
 * lead to this CA": validity and revocation are their own checks with their
 * own reasons instead of hiding behind the first error OpenSSL finds.
 */
#include "cert_check.h"

#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "cert_describe.h"
#include "pki_index.h"
#include "pki_policy.h"
#include "string_table.h"

static const char *const result_names[CHECK_RESULT_MAX] = {
	[CHECK_PASS] = "PASS", [CHECK_FAIL] = "FAIL", [CHECK_SKIP] = "SKIP",
};

DEFINE_STRING_TABLE(check_result, enum check_result, result_names, "????")

void check_state_init(struct check_state *st, const struct check_input *in)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	st->in = in;
	st->chain = NULL;
	st->chain_error = X509_V_ERR_UNSPECIFIED;
	st->chain_error_depth = 0;
	st->chain_error_subject[0] = '\0';
	if (!store || !ctx)
		goto out;
	for (int i = 0; i < sk_X509_num(in->anchors); i++)
		X509_STORE_add_cert(store, sk_X509_value(in->anchors, i));
	if (X509_STORE_CTX_init(ctx, store, in->leaf, in->untrusted) != 1)
		goto out;
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME);
	if (X509_verify_cert(ctx) == 1) {
		st->chain = X509_STORE_CTX_get1_chain(ctx);
		st->chain_error = X509_V_OK;
	} else {
		st->chain_error = X509_STORE_CTX_get_error(ctx);
		st->chain_error_depth = X509_STORE_CTX_get_error_depth(ctx);
		X509 *bad = X509_STORE_CTX_get_current_cert(ctx);
		if (bad)
			cert_name_desc(X509_get_subject_name(bad), st->chain_error_subject,
				       sizeof(st->chain_error_subject));
	}
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
}

void check_state_free(struct check_state *st)
{
	sk_X509_pop_free(st->chain, X509_free);
	st->chain = NULL;
}

static enum check_result check_chain(struct check_state *st, char *reason, size_t cap)
{
	char anchor[512];
	if (!st->chain) {
		snprintf(reason, cap, "%s (at depth %d, %s)",
			 X509_verify_cert_error_string(st->chain_error), st->chain_error_depth,
			 *st->chain_error_subject ? st->chain_error_subject : "?");
		return CHECK_FAIL;
	}
	int n = sk_X509_num(st->chain);
	cert_name_desc(X509_get_subject_name(sk_X509_value(st->chain, n - 1)), anchor, sizeof(anchor));
	snprintf(reason, cap, "builds to %s, signatures and CA constraints verify", anchor);
	return CHECK_PASS;
}

static enum check_result check_depth(struct check_state *st, char *reason, size_t cap)
{
	if (!st->chain) {
		snprintf(reason, cap, "no chain to measure");
		return CHECK_SKIP;
	}
	int levels = sk_X509_num(st->chain) - 1;
	snprintf(reason, cap, "%d CA level%s above the leaf (limit %d, mtlsd verify_depth)", levels,
		 levels == 1 ? "" : "s", st->in->max_depth);
	return levels <= st->in->max_depth ? CHECK_PASS : CHECK_FAIL;
}

static enum check_result check_key(struct check_state *st, char *reason, size_t cap)
{
	STACK_OF(X509) *certs = st->chain ? st->chain : st->in->untrusted;
	char key[64], subject[512];
	int bits;
	if (!cert_key_strong(st->in->leaf)) {
		cert_key_desc(st->in->leaf, key, sizeof(key), &bits);
		snprintf(reason, cap, "leaf key %s is too weak (minimum RSA %d, EC %d)", key,
			 PKI_MIN_RSA_BITS, PKI_MIN_EC_BITS);
		return CHECK_FAIL;
	}
	for (int i = 0; certs && i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);
		if (cert_key_strong(x))
			continue;
		cert_key_desc(x, key, sizeof(key), &bits);
		cert_name_desc(X509_get_subject_name(x), subject, sizeof(subject));
		snprintf(reason, cap, "%s has a %s key, too weak (minimum RSA %d, EC %d)", subject,
			 key, PKI_MIN_RSA_BITS, PKI_MIN_EC_BITS);
		return CHECK_FAIL;
	}
	cert_key_desc(st->in->leaf, key, sizeof(key), &bits);
	snprintf(reason, cap, "leaf %s; every key in the chain is at least RSA %d / EC %d", key,
		 PKI_MIN_RSA_BITS, PKI_MIN_EC_BITS);
	return CHECK_PASS;
}

/* Signatures must give at least 112 bits of security (NIST SP 800-57):
 * SHA-1 or MD5 anywhere but the anchor's self-signature fails. */
#define MIN_SIGNATURE_BITS 112

static enum check_result check_signature(struct check_state *st, char *reason, size_t cap)
{
	STACK_OF(X509) *chain = st->chain;
	int n = chain ? sk_X509_num(chain) - 1 : 1; /* an anchor vouches for itself */
	char subject[512];
	for (int i = 0; i < n; i++) {
		X509 *x = chain ? sk_X509_value(chain, i) : st->in->leaf;
		int mdnid = NID_undef, pknid = NID_undef, secbits = 0;
		uint32_t flags = 0;
		if (X509_get_signature_info(x, &mdnid, &pknid, &secbits, &flags) == 1 &&
		    secbits >= MIN_SIGNATURE_BITS)
			continue;
		cert_name_desc(X509_get_subject_name(x), subject, sizeof(subject));
		snprintf(reason, cap, "%s is signed with %s (%d bits of security, at least %d needed)",
			 subject, OBJ_nid2ln(X509_get_signature_nid(x)), secbits, MIN_SIGNATURE_BITS);
		return CHECK_FAIL;
	}
	snprintf(reason, cap, "leaf signed with %s; every signature gives at least %d bits",
		 OBJ_nid2ln(X509_get_signature_nid(st->in->leaf)), MIN_SIGNATURE_BITS);
	return CHECK_PASS;
}

static enum check_result check_leaf(struct check_state *st, char *reason, size_t cap)
{
	if (X509_get_extension_flags(st->in->leaf) & EXFLAG_CA) {
		snprintf(reason, cap, "is a CA certificate (CA:TRUE): a CA must never be used as a "
			 "%s certificate", st->in->server ? "server" : "client");
		return CHECK_FAIL;
	}
	snprintf(reason, cap, "end-entity certificate (not a CA)");
	return CHECK_PASS;
}

static enum check_result check_eku(struct check_state *st, char *reason, size_t cap)
{
	char have[256];
	const char *want = st->in->server ? "serverAuth" : "clientAuth";
	uint32_t want_bit = st->in->server ? XKU_SSL_SERVER : XKU_SSL_CLIENT;
	cert_eku_desc(st->in->leaf, have, sizeof(have));
	if (!(X509_get_extension_flags(st->in->leaf) & EXFLAG_XKUSAGE)) {
		snprintf(reason, cap, "no extendedKeyUsage; %s is required", want);
		return CHECK_FAIL;
	}
	if (!(X509_get_extended_key_usage(st->in->leaf) & want_bit)) {
		snprintf(reason, cap, "has %s but not %s", have, want);
		return CHECK_FAIL;
	}
	snprintf(reason, cap, "%s", have);
	return CHECK_PASS;
}

static enum check_result check_key_usage(struct check_state *st, char *reason, size_t cap)
{
	char have[256];
	cert_ku_desc(st->in->leaf, have, sizeof(have));
	if (!(X509_get_extension_flags(st->in->leaf) & EXFLAG_KUSAGE)) {
		snprintf(reason, cap, "no keyUsage extension (use not restricted)");
		return CHECK_PASS;
	}
	uint32_t ku = X509_get_key_usage(st->in->leaf);
	if (ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) {
		snprintf(reason, cap, "%s: a leaf must not sign certificates or CRLs", have);
		return CHECK_FAIL;
	}
	if (!(ku & KU_DIGITAL_SIGNATURE)) {
		snprintf(reason, cap, "%s: digitalSignature is required for TLS", have);
		return CHECK_FAIL;
	}
	snprintf(reason, cap, "%s", have);
	return CHECK_PASS;
}

static enum check_result check_validity(struct check_state *st, char *reason, size_t cap)
{
	const struct check_input *in = st->in;
	char when[40], subject[512];
	long nb = (long)cert_not_before(in->leaf), na = (long)cert_not_after(in->leaf);
	long now = (long)in->now;
	time_t now_t = in->now; /* X509_cmp_time takes a non-const pointer */
	if (now < nb) {
		cert_time_desc(X509_get0_notBefore(in->leaf), when, sizeof(when));
		snprintf(reason, cap, "not valid before %s (%ld hours from now)", when,
			 (nb - now + 3599) / 3600);
		return CHECK_FAIL;
	}
	cert_time_desc(X509_get0_notAfter(in->leaf), when, sizeof(when));
	if (now > na) {
		snprintf(reason, cap, "expired on %s (%ld hours ago)", when, (now - na) / 3600);
		return CHECK_FAIL;
	}
	for (int i = 1; st->chain && i < sk_X509_num(st->chain); i++) {
		X509 *ca = sk_X509_value(st->chain, i);
		if (X509_cmp_time(X509_get0_notAfter(ca), &now_t) > 0 &&
		    X509_cmp_time(X509_get0_notBefore(ca), &now_t) < 0)
			continue;
		cert_name_desc(X509_get_subject_name(ca), subject, sizeof(subject));
		snprintf(reason, cap, "the CA %s is outside its validity period", subject);
		return CHECK_FAIL;
	}
	long left = (na - now) / PKI_DAY;
	snprintf(reason, cap, "valid until %s, %ld days left", when, left);
	if (left < in->min_days_left) {
		snprintf(reason + strlen(reason), cap - strlen(reason), " (want at least %d: renew it)",
			 in->min_days_left);
		return CHECK_FAIL;
	}
	return CHECK_PASS;
}

static enum check_result check_lifetime(struct check_state *st, char *reason, size_t cap)
{
	long days = ((long)cert_not_after(st->in->leaf) - (long)cert_not_before(st->in->leaf)) / PKI_DAY;
	const char *kind = st->in->server ? "server" : "client";
	snprintf(reason, cap, "%ld days, policy maximum %d for %s certificates", days,
		 st->in->max_days, kind);
	return days <= st->in->max_days ? CHECK_PASS : CHECK_FAIL;
}

/* The CRL in --crl signed by issuer, or NULL. */
static X509_CRL *find_crl(const struct check_input *in, X509 *issuer)
{
	EVP_PKEY *key = X509_get0_pubkey(issuer);
	for (int i = 0; i < sk_X509_CRL_num(in->crls); i++) {
		X509_CRL *crl = sk_X509_CRL_value(in->crls, i);
		if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) == 0 &&
		    key && X509_CRL_verify(crl, key) == 1)
			return crl;
	}
	return NULL;
}

/* One certificate against its issuer's CRL. */
static enum check_result check_one_crl(const struct check_input *in, X509 *x, X509 *issuer,
				       char *reason, size_t cap)
{
	char subject[512], when[40];
	X509_CRL *crl = find_crl(in, issuer);
	X509_REVOKED *rev = NULL;
	time_t now = in->now;
	cert_name_desc(X509_get_subject_name(issuer), subject, sizeof(subject));
	if (!crl) {
		snprintf(reason, cap, "no CRL signed by %s in --crl", subject);
		return CHECK_FAIL;
	}
	if (X509_CRL_get0_nextUpdate(crl) &&
	    X509_cmp_time(X509_CRL_get0_nextUpdate(crl), &now) < 0) {
		cert_time_desc(X509_CRL_get0_nextUpdate(crl), when, sizeof(when));
		snprintf(reason, cap, "the CRL of %s is out of date (next update was %s)", subject, when);
		return CHECK_FAIL;
	}
	if (X509_CRL_get0_by_cert(crl, &rev, x) == 1) {
		ASN1_ENUMERATED *why = X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, NULL, NULL);
		cert_name_desc(X509_get_subject_name(x), subject, sizeof(subject));
		cert_time_desc(X509_REVOKED_get0_revocationDate(rev), when, sizeof(when));
		snprintf(reason, cap, "%s was revoked on %s (%s)", subject, when,
			 why ? pki_reason_name((int)ASN1_ENUMERATED_get(why)) : "no reason given");
		ASN1_ENUMERATED_free(why);
		return CHECK_FAIL;
	}
	return CHECK_PASS;
}

static enum check_result check_revocation(struct check_state *st, char *reason, size_t cap)
{
	if (!st->in->crls) {
		snprintf(reason, cap, "no --crl given: revocation not checked");
		return CHECK_SKIP;
	}
	if (!st->chain) {
		snprintf(reason, cap, "no chain: cannot tell which CRLs apply");
		return CHECK_SKIP;
	}
	int n = sk_X509_num(st->chain);
	for (int i = 0; i + 1 < n; i++) {
		enum check_result r = check_one_crl(st->in, sk_X509_value(st->chain, i),
						    sk_X509_value(st->chain, i + 1), reason, cap);
		if (r != CHECK_PASS)
			return r;
	}
	snprintf(reason, cap, "not revoked (%d CRL%s checked, all current)", n - 1, n == 2 ? "" : "s");
	return CHECK_PASS;
}

static enum check_result check_host(struct check_state *st, char *reason, size_t cap)
{
	const char *host = st->in->host;
	char sans[1024];
	if (!host) {
		snprintf(reason, cap, "no --host given: names not checked");
		return CHECK_SKIP;
	}
	/* An IP address matches only an IP SAN, a name only a DNS SAN (RFC 6125:
	 * no fallback to the subject CN). */
	int ok = X509_check_ip_asc(st->in->leaf, host, 0);
	if (ok < 0)
		ok = X509_check_host(st->in->leaf, host, 0, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL);
	cert_san_desc(st->in->leaf, sans, sizeof(sans));
	if (ok == 1) {
		snprintf(reason, cap, "%s matches %s", host, sans);
		return CHECK_PASS;
	}
	snprintf(reason, cap, "%s is not among the names: %s", host, *sans ? sans : "(no SAN)");
	return CHECK_FAIL;
}

const struct cert_check cert_checks[] = {
	{ "chain", check_chain },
	{ "depth", check_depth },
	{ "key", check_key },
	{ "signature", check_signature },
	{ "leaf", check_leaf },
	{ "eku", check_eku },
	{ "key-usage", check_key_usage },
	{ "validity", check_validity },
	{ "lifetime", check_lifetime },
	{ "revocation", check_revocation },
	{ "host", check_host },
};

const size_t cert_checks_count = ARRAY_SIZE(cert_checks);
