/*
 * verify_identity.c: which of a certificate's names is the client.
 *
 * A backend authorizes on what the PROXY v2 header says, so the names it is
 * told must be the ones the partner's allow-list checked, never a sibling
 * the allow-list did not look at. This file applies the allow-list to the
 * names of a verified leaf and returns, with the decision, the SPIFFE ID and
 * CN it vouches for (struct verified_identity, carried in struct
 * verify_result to the PROXY header, the audit line and the accounting):
 *
 *  - Multiplicity (multiple_identities = refuse, the default): a leaf with
 *    more than one URI SAN of the spiffe scheme (an X.509-SVID has exactly
 *    one) or more than one CN is refused, policy_denied, the reason naming
 *    the rule. With `allow` such a leaf may pass.
 *  - Admission: no allow_* key admits any name; otherwise at least one SAN
 *    DNS / SAN URI / CN / OU must match a pattern of its kind.
 *  - Reporting, per kind (SPIFFE ID, CN): when the partner has patterns of
 *    that kind (allow_uri, allow_cn), the first value that matched them, or
 *    nothing if none did (the client may have been admitted by another
 *    kind); when it has none, the certificate's only value of that kind,
 *    or nothing if it has several.
 * A URI of the spiffe scheme that is not a valid SPIFFE ID
 * (lib/spiffe_id.h) never matches and is never reported; a name holding a
 * NUL byte never matches either ("admin\0.evil" is not "admin").
 */
#include "verify.h"

#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "spiffe_id.h"

#define CN_MAX 255 /* what certinfo and the PROXY CN carry at most */

void verified_identity_clear(struct verified_identity *id)
{
	if (!id)
		return;
	free(id->spiffe_id);
	free(id->cn);
	id->spiffe_id = id->cn = NULL;
}

/* What the leaf says, gathered once. Pointers into gens and cns. */
struct leaf_names {
	GENERAL_NAMES *gens;
	unsigned char *cn[16];      /* UTF-8 CNs without NUL bytes, NULL if unusable */
	int n_cn;                   /* every CN entry, usable or not */
	int n_spiffe;               /* URI SANs of the spiffe scheme, any case */
	const char *only_spiffe;    /* the one valid SPIFFE ID when n_spiffe == 1 */
	char bad_spiffe[160];       /* "'spiffe://X/y' is not a SPIFFE ID: why", or "" */
};

static void leaf_names_free(struct leaf_names *n)
{
	GENERAL_NAMES_free(n->gens);
	for (size_t i = 0; i < ARRAY_SIZE(n->cn); i++)
		OPENSSL_free(n->cn[i]);
}

/* The value of a DNS or URI SAN as a C string, NULL when it holds a NUL. */
static const char *san_text(const GENERAL_NAME *g)
{
	const ASN1_STRING *s = g->type == GEN_DNS ? g->d.dNSName :
			       g->type == GEN_URI ? g->d.uniformResourceIdentifier : NULL;

	if (!s || memchr(ASN1_STRING_get0_data(s), '\0', (size_t)ASN1_STRING_length(s)))
		return NULL;
	return (const char *)ASN1_STRING_get0_data(s);
}

static bool is_spiffe_scheme(const GENERAL_NAME *g)
{
	const ASN1_STRING *s = g->d.uniformResourceIdentifier;

	return g->type == GEN_URI && ASN1_STRING_length(s) >= 7 &&
	       strncasecmp((const char *)ASN1_STRING_get0_data(s), "spiffe:", 7) == 0;
}

/* A URI SAN that may match allow_uri and be reported: NUL-free and, if of
 * the spiffe scheme, a valid SPIFFE ID. */
static const char *usable_uri(const GENERAL_NAME *g)
{
	const char *v = san_text(g);

	return v && (!is_spiffe_scheme(g) || !spiffe_id_problem(v, 0)) ? v : NULL;
}

static void gather(X509 *leaf, struct leaf_names *n)
{
	const X509_NAME *subject = X509_get_subject_name(leaf);

	memset(n, 0, sizeof(*n));
	n->gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; i < sk_GENERAL_NAME_num(n->gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(n->gens, i);
		const char *v;

		if (!is_spiffe_scheme(g))
			continue;
		n->n_spiffe++;
		v = usable_uri(g);
		if (v && n->n_spiffe == 1)
			n->only_spiffe = v;
		if (!v && !n->bad_spiffe[0]) {
			v = san_text(g);
			snprintf(n->bad_spiffe, sizeof(n->bad_spiffe), "URI SAN '%.64s' is not a SPIFFE ID: %s",
				 v ? v : "(holds a NUL byte)", v ? spiffe_id_problem(v, 0) : "a NUL byte");
		}
	}
	if (n->n_spiffe != 1)
		n->only_spiffe = NULL;
	for (int i = -1; (i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) >= 0;) {
		unsigned char *v = NULL;
		int len = ASN1_STRING_to_UTF8(&v, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i)));

		if (len >= 0 && memchr(v, '\0', (size_t)len)) {
			OPENSSL_free(v);
			v = NULL;
		}
		if ((size_t)n->n_cn < ARRAY_SIZE(n->cn))
			n->cn[n->n_cn] = len >= 0 ? v : NULL;
		else
			OPENSSL_free(v);
		n->n_cn++;
	}
}

/* The multiplicity rule; HS_OK or HS_POLICY_DENIED with the rule named. */
static enum hs_outcome check_multiplicity(const struct partner_policy *p, const struct leaf_names *n,
					  char *detail, size_t len)
{
	if (p->multiple_identities)
		return HS_OK;
	if (n->n_spiffe > 1) {
		snprintf(detail, len, "certificate carries %d SPIFFE IDs (URI SANs of the spiffe scheme); "
			 "rule: one SPIFFE ID per certificate, as in an X.509-SVID "
			 "(multiple_identities = refuse)", n->n_spiffe);
		return HS_POLICY_DENIED;
	}
	if (n->n_cn > 1) {
		snprintf(detail, len, "certificate subject carries %d CNs; rule: one CN per certificate, "
			 "so a backend is told the name that was checked (multiple_identities = refuse)",
			 n->n_cn);
		return HS_POLICY_DENIED;
	}
	return HS_OK;
}

static bool any_glob(const struct cfg_strlist *l, const char *v)
{
	for (size_t k = 0; v && k < l->n; k++)
		if (verify_match_glob(l->v[k], v))
			return true;
	return false;
}

/* Does an OU of the subject match allow_ou? */
static bool ou_matches(X509 *leaf, const struct cfg_strlist *l)
{
	const X509_NAME *name = X509_get_subject_name(leaf);
	bool hit = false;

	for (int i = -1; !hit && (i = X509_NAME_get_index_by_NID(name, NID_organizationalUnitName, i)) >= 0;) {
		unsigned char *v = NULL;
		int len = ASN1_STRING_to_UTF8(&v, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));

		if (len >= 0 && !memchr(v, '\0', (size_t)len))
			hit = any_glob(l, (const char *)v);
		OPENSSL_free(v);
	}
	return hit;
}

/*
 * The allow-list: whether anything matched, and the SPIFFE ID and CN that
 * matched allow_uri / allow_cn (first in certificate order).
 */
static bool match_allow_list(const struct partner_policy *p, X509 *leaf, const struct leaf_names *n,
			     const char **spiffe, const char **cn)
{
	bool hit = p->any_allowed;

	*spiffe = *cn = NULL;
	for (int i = 0; i < sk_GENERAL_NAME_num(n->gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(n->gens, i);
		const char *v = g->type == GEN_URI ? usable_uri(g) : g->type == GEN_DNS ? san_text(g) : NULL;

		for (size_t k = 0; v && k < (g->type == GEN_DNS ? p->dns.n : p->uri.n); k++) {
			if (g->type == GEN_DNS ? !verify_match_dns(p->dns.v[k], v) : !verify_match_uri(p->uri.v[k], v))
				continue;
			hit = true;
			if (g->type == GEN_URI && is_spiffe_scheme(g) && !*spiffe)
				*spiffe = v;
			break;
		}
	}
	for (int i = 0; i < n->n_cn && (size_t)i < ARRAY_SIZE(n->cn); i++) {
		if (!any_glob(&p->cn, (const char *)n->cn[i]))
			continue;
		hit = true;
		if (!*cn)
			*cn = (const char *)n->cn[i];
	}
	if (!hit && p->ou.n)
		hit = ou_matches(leaf, &p->ou);
	return hit;
}

static int set_text(char **dst, const char *v, size_t max)
{
	if (!v || strlen(v) > max)
		return 0; /* never truncated: a cut name is another name */
	*dst = strdup(v);
	ENSURE_PTR(*dst, ENOMEM);
	return 0;
}

enum hs_outcome verify_identity_check(const struct partner_policy *p, X509 *leaf,
				      struct verified_identity *out, char *detail, size_t len)
{
	struct leaf_names n;
	const char *spiffe, *cn;
	enum hs_outcome o;

	gather(leaf, &n);
	o = check_multiplicity(p, &n, detail, len);
	if (o != HS_OK)
		goto out;
	if (!match_allow_list(p, leaf, &n, &spiffe, &cn)) {
		snprintf(detail, len, "no SAN DNS/URI, CN or OU of the certificate matches the partner's "
			 "allow-list%s%s", n.bad_spiffe[0] ? "; " : "", n.bad_spiffe);
		o = HS_POLICY_DENIED;
		goto out;
	}
	/* A kind the allow-list does not constrain: the certificate's only
	 * value of it, vouched for by the partner's CA alone. */
	if (!p->uri.n)
		spiffe = n.only_spiffe;
	if (!p->cn.n)
		cn = n.n_cn == 1 ? (const char *)n.cn[0] : NULL;
	snprintf(detail, len, "ok");
	if (out) {
		verified_identity_clear(out);
		if (set_text(&out->spiffe_id, spiffe, SPIFFE_ID_MAX) < 0 || set_text(&out->cn, cn, CN_MAX) < 0) {
			verified_identity_clear(out);
			snprintf(detail, len, "out of memory recording the client's identity");
			o = HS_OTHER;
		}
	}
out:
	leaf_names_free(&n);
	return o;
}
