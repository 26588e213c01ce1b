/*
 * verify_policy.c: the partner policy applied to a verified client chain.
 *
 * Everything here is pure (no SSL object, no I/O): compiling and matching
 * the allow-list patterns, the usage and key-strength rules, and the map
 * from OpenSSL's X509_V_ERR codes to mtlsd's outcomes. verify.c applies it
 * from the handshake; tests and fuzzers call it directly.
 *
 * Allow-list semantics (docs in verify.h): no allow_* key means any
 * identity chaining to the partner's CA; otherwise at least one pattern of
 * any kind must match. Which names that makes the client's identity is
 * verify_identity.c's part. Certificate strings are attacker-chosen: a SAN
 * or name entry holding a NUL never matches anything.
 */
#include "verify.h"

#include <ctype.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cert_serial.h"
#include "spiffe_id.h"

/* ------------------------------------------------------------------ */
/* Allow-list patterns                                                 */
/* ------------------------------------------------------------------ */

/* '*' matches any run (possibly empty) of characters; everything else is
 * compared byte for byte. No recursion: backtracking only to the last '*'
 * bounds the work by pattern length x value length. */
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

	/* spiffe:// patterns follow the SPIFFE ID rules, typos included
	 * ("spifee://"), so a pattern that can never match says so now. */
	if (spiffe_id_intended(pat))
		return spiffe_id_problem(pat, SPIFFE_ID_PATTERN);
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

/* CN / OU globs: any non-empty pattern without control characters (both
 * checked by the caller) is valid; '*' may appear anywhere. */
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
	out->multiple_identities = cp->multiple_identities == MULTIPLE_IDENTITIES_ALLOW;
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
bool verify_key_strong_enough(const struct partner_policy *p, X509 *x, char *why, size_t len)
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

/* RFC 5280 4.1.2.2: a positive serial of at most 20 octets. A zero or
 * negative serial printed without its sign collides with a positive one
 * ("20:03"), so it could be neither dropped nor counted apart. */
static enum hs_outcome check_serial(X509 *leaf, char *detail, size_t len)
{
	struct cert_serial sn;
	char text[CERT_SERIAL_TEXT_MAX];
	const char *why;

	if (cert_serial_from_asn1(X509_get0_serialNumber(leaf), &sn) < 0) {
		snprintf(detail, len, "serial number longer than %d octets; RFC 5280 requires a positive "
			 "serial of at most 20 octets", CERT_SERIAL_HELD_MAX);
		return HS_POLICY_DENIED;
	}
	why = cert_serial_problem(&sn);
	if (!why)
		return HS_OK;
	cert_serial_format(&sn, text, sizeof(text));
	snprintf(detail, len, "%s (DER %s); RFC 5280 requires a positive serial of at most 20 octets",
		 why, text);
	return HS_POLICY_DENIED;
}

enum hs_outcome verify_policy_check(const struct partner_policy *p, X509 *leaf,
				    struct verified_identity *id, char *detail, size_t len)
{
	char why[128];
	enum hs_outcome o = check_usage(leaf, detail, len);

	if (o != HS_OK)
		return o;
	if (!verify_key_strong_enough(p, leaf, why, sizeof(why))) {
		snprintf(detail, len, "client key too weak: %s", why);
		return HS_WEAK_KEY;
	}
	o = check_serial(leaf, detail, len);
	if (o != HS_OK)
		return o;
	return verify_identity_check(p, leaf, id, detail, len);
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
