/*
 * test_verify_differential.c: mtlsd's chain decision against OpenSSL's own.
 *
 * verify.c does not let OpenSSL walk every chain: when every link above
 * the client's certificate is one the generation checked when it was built
 * (a partner's own CA certificates), chain_known_good() checks the rest
 * itself (the leaf's signature, its issuer's keyCertSign, every validity
 * period) and skips OpenSSL's internal_verify(). That is a re-implementation
 * of part of OpenSSL's chain walk, so it is tested here the only way that
 * can find what nobody thought of: differentially.
 *
 * A corpus of chains is made at test time with OpenSSL's C API (no key is
 * committed anywhere; the files live in a scratch directory for the life of
 * the test): good ones, intermediates in the wrong order, expired and
 * not-yet-valid certificates at every depth, path length and name
 * constraints violated, cross-signed roots, chains that mix two partners,
 * an intermediate without keyCertSign, a leaf signed by the wrong key under
 * a matching name, the TLS client purpose missing, SHA-1, CRLs; each in an
 * ECDSA P-256 and an RSA-2048 hierarchy. For every row:
 *
 *  - mtlsd decides: the generation is built as mtlsd builds it
 *    (reload_build() on a configuration file naming the row's CA bundles
 *    and CRLs) and the client handshakes with its SSL_CTX in memory, so the
 *    real callback, the real stores and the fast path run;
 *  - OpenSSL decides: X509_verify_cert() on each partner's own store (the
 *    very X509_STORE of that generation) with the parameters verify.c sets
 *    (depth, security level 2, purpose sslclient, no partial chains, the
 *    CRL flags), and nothing replaced: OpenSSL's full chain walk;
 *  - they must agree: accept or refuse; on acceptance, the partner (the
 *    first partner in configuration order whose store accepts, the rule of
 *    docs/verification.md); on a refusal, when exactly one partner's store
 *    got further than "I do not know this chain", the outcome, the X509
 *    error and the depth it was found at.
 *
 * Each row also names the outcome it is built to produce, and OpenSSL's
 * decision must be that one: a row that stops testing what it says (a new
 * OpenSSL refusing it for another reason) fails instead of passing
 * quietly. And a row marked `fast` must be decided by the fast path: once
 * its decision was compared, the signature of the partner's intermediate
 * in the chain is broken in memory, after the generation checked it; the
 * fast path (which trusts the generation's check) must still accept while
 * OpenSSL's walk now refuses. Without that, a fast path that silently
 * stopped running would leave every row green and prove nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "generation.h"
#include "reload.h"
#include "verify.h"

/* ---- the certificates ---------------------------------------------------- */

enum key_id {
	K_ROOT_A, K_INT_A, K_INT1, K_INT2, K_LEAF, K_ROOT_B, K_INT_B, K_ROOT_X, K_FORGER,
	K_ROOT_U, K_LEAF_OTHER_ALG, N_KEYS
};

/* Issuers before what they issue: certificates are made in this order. */
enum cert_id {
	C_NONE = 0,
	/* partner A: rootA -> intA -> leaf, and rootA -> int1 -> int2 -> leaf2 */
	ROOT_A, ROOT_A_EXPIRED, ROOT_A_NOT_YET,
	INT_A, INT_A_EXPIRED, INT_A_NOT_YET, INT_A_SERVER_EKU, INT_A_NO_KU, INT_A_NO_KEYCERTSIGN,
	INT_A_NC_PERMIT, INT_A_NC_EXCLUDE,
	INT1, INT1_PATHLEN0, INT2,
	/* the old root X and rootA cross-signed by it */
	ROOT_X, ROOT_A_BY_X, ROOT_A_BY_X_EXPIRED,
	/* partner B, and intA's name and key certified by rootB */
	ROOT_B, INT_B, INT_A_BY_B,
	/* nobody's */
	ROOT_U,
	/* leaves */
	LEAF, LEAF_EXPIRED, LEAF_NOT_YET, LEAF_SERVER_EKU, LEAF_SHA1, LEAF_FORGED, LEAF_OUTSIDE_NC,
	LEAF_OTHER_ALG, LEAF_OF_ROOT, LEAF_OF_ROOT_EXPIRED, LEAF_DEEP, LEAF_B, LEAF_UNKNOWN,
	N_CERTS
};

enum validity { VALID = 0, EXPIRED, NOT_YET };

struct cert_spec {
	const char *cn;          /* subject CN (O is always "diff") */
	enum key_id key;         /* subject key */
	enum cert_id issuer;     /* C_NONE: self-signed */
	int sign_key;            /* 0: the issuer's key; else key_id + 1 (a forger) */
	bool ca;
	const char *bc, *ku, *eku, *san, *nc; /* NULL: the default for a CA / a leaf; "" omits */
	enum validity validity;
	bool sha1;
};

#define CA_SPEC(...) { .ca = true, __VA_ARGS__ }
static const struct cert_spec specs[N_CERTS] = {
	[ROOT_A] = CA_SPEC(.cn = "rootA", .key = K_ROOT_A),
	[ROOT_A_EXPIRED] = CA_SPEC(.cn = "rootA", .key = K_ROOT_A, .validity = EXPIRED),
	[ROOT_A_NOT_YET] = CA_SPEC(.cn = "rootA", .key = K_ROOT_A, .validity = NOT_YET),
	[INT_A] = CA_SPEC(.cn = "intA", .key = K_INT_A, .issuer = ROOT_A),
	[INT_A_EXPIRED] = CA_SPEC(.cn = "intA", .key = K_INT_A, .issuer = ROOT_A, .validity = EXPIRED),
	[INT_A_NOT_YET] = CA_SPEC(.cn = "intA", .key = K_INT_A, .issuer = ROOT_A, .validity = NOT_YET),
	[INT_A_SERVER_EKU] = CA_SPEC(.cn = "intA", .key = K_INT_A, .issuer = ROOT_A, .eku = "serverAuth"),
	[INT_A_NO_KU] = CA_SPEC(.cn = "intA", .key = K_INT_A, .issuer = ROOT_A, .ku = ""),
	[INT_A_NO_KEYCERTSIGN] = CA_SPEC(.cn = "intA", .key = K_INT_A, .issuer = ROOT_A,
					 .ku = "critical,digitalSignature,cRLSign"),
	[INT_A_NC_PERMIT] = CA_SPEC(.cn = "intA", .key = K_INT_A, .issuer = ROOT_A,
				    .nc = "critical,permitted;DNS:.a.example"),
	[INT_A_NC_EXCLUDE] = CA_SPEC(.cn = "intA", .key = K_INT_A, .issuer = ROOT_A,
				     .nc = "critical,excluded;DNS:.a.example"),
	[INT1] = CA_SPEC(.cn = "int1", .key = K_INT1, .issuer = ROOT_A),
	[INT1_PATHLEN0] = CA_SPEC(.cn = "int1", .key = K_INT1, .issuer = ROOT_A, .bc = "critical,CA:TRUE,pathlen:0"),
	[INT2] = CA_SPEC(.cn = "int2", .key = K_INT2, .issuer = INT1),
	[ROOT_X] = CA_SPEC(.cn = "rootX", .key = K_ROOT_X),
	[ROOT_A_BY_X] = CA_SPEC(.cn = "rootA", .key = K_ROOT_A, .issuer = ROOT_X),
	[ROOT_A_BY_X_EXPIRED] = CA_SPEC(.cn = "rootA", .key = K_ROOT_A, .issuer = ROOT_X, .validity = EXPIRED),
	[ROOT_B] = CA_SPEC(.cn = "rootB", .key = K_ROOT_B),
	[INT_B] = CA_SPEC(.cn = "intB", .key = K_INT_B, .issuer = ROOT_B),
	[INT_A_BY_B] = CA_SPEC(.cn = "intA", .key = K_INT_A, .issuer = ROOT_B),
	[ROOT_U] = CA_SPEC(.cn = "rootU", .key = K_ROOT_U),
	[LEAF] = { .cn = "client", .key = K_LEAF, .issuer = INT_A },
	[LEAF_EXPIRED] = { .cn = "client", .key = K_LEAF, .issuer = INT_A, .validity = EXPIRED },
	[LEAF_NOT_YET] = { .cn = "client", .key = K_LEAF, .issuer = INT_A, .validity = NOT_YET },
	[LEAF_SERVER_EKU] = { .cn = "client", .key = K_LEAF, .issuer = INT_A, .eku = "serverAuth" },
	[LEAF_SHA1] = { .cn = "client", .key = K_LEAF, .issuer = INT_A, .sha1 = true },
	/* intA's name and key identifier, the forger's signature */
	[LEAF_FORGED] = { .cn = "client", .key = K_LEAF, .issuer = INT_A, .sign_key = K_FORGER + 1 },
	[LEAF_OUTSIDE_NC] = { .cn = "client", .key = K_LEAF, .issuer = INT_A, .san = "DNS:client.b.example" },
	[LEAF_OTHER_ALG] = { .cn = "client", .key = K_LEAF_OTHER_ALG, .issuer = INT_A },
	[LEAF_OF_ROOT] = { .cn = "client", .key = K_LEAF, .issuer = ROOT_A },
	[LEAF_OF_ROOT_EXPIRED] = { .cn = "client", .key = K_LEAF, .issuer = ROOT_A, .validity = EXPIRED },
	[LEAF_DEEP] = { .cn = "client", .key = K_LEAF, .issuer = INT2 },
	[LEAF_B] = { .cn = "client", .key = K_LEAF, .issuer = INT_B },
	[LEAF_UNKNOWN] = { .cn = "client", .key = K_LEAF, .issuer = ROOT_U },
};

enum crl_id { CRL_NONE = 0, CRL_ROOT_A, CRL_INT_A, CRL_INT_A_REVOKES_LEAF, N_CRLS };

/* One algorithm's corpus: keys, certificates (as made, and as files). */
struct pki {
	const char *alg;           /* "ec", "rsa" */
	EVP_PKEY *key[N_KEYS];
	X509 *cert[N_CERTS];
	X509_CRL *crl[N_CRLS];
	char dir[600];
};

static char scratch[] = "/tmp/test_verify_differential.XXXXXX";
static struct pki pkis[2] = { { .alg = "ec" }, { .alg = "rsa" } };

static EVP_PKEY *new_key(const char *alg)
{
	EVP_PKEY *k = strcmp(alg, "ec") == 0 ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);

	assert_non_null(k);
	return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
	if (!ext)
		fail_msg("extension %s = %s: %s", OBJ_nid2sn(nid), value,
			 ERR_reason_error_string(ERR_get_error()));
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

static void set_validity(X509 *x, enum validity v)
{
	static const long day = 86400;
	long from = -3600, to = day;

	if (v == EXPIRED)
		from = -2 * day, to = -day;
	else if (v == NOT_YET)
		from = day, to = 2 * day;
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), from));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), to));
}

/* What X509_STRICT asks of a certificate: v3, a positive serial, key
 * identifiers, basicConstraints critical on CAs, keyUsage on CAs. */
static X509 *make_cert(struct pki *k, enum cert_id id, unsigned serial)
{
	const struct cert_spec *s = &specs[id];
	X509 *x = X509_new(), *issuer = s->issuer ? k->cert[s->issuer] : x;
	X509_NAME *name = X509_NAME_new();
	EVP_PKEY *sign = s->sign_key ? k->key[s->sign_key - 1]
		       : s->issuer ? k->key[specs[s->issuer].key] : k->key[s->key];

	assert_non_null(issuer);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), (long)serial), 1);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"diff", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)s->cn, -1, -1, 0);
	assert_int_equal(X509_set_subject_name(x, name), 1);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(issuer)), 1);
	X509_NAME_free(name);
	set_validity(x, s->validity);
	assert_int_equal(X509_set_pubkey(x, k->key[s->key]), 1);

	const char *bc = s->bc ? s->bc : s->ca ? "critical,CA:TRUE" : "critical,CA:FALSE";
	const char *ku = s->ku ? s->ku : s->ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature";
	const char *eku = s->eku ? s->eku : s->ca ? "" : "clientAuth";
	const char *san = s->san ? s->san : s->ca ? "" : "DNS:client.a.example";

	add_ext(x, issuer, NID_basic_constraints, bc);
	if (ku[0])
		add_ext(x, issuer, NID_key_usage, ku);
	if (eku[0])
		add_ext(x, issuer, NID_ext_key_usage, eku);
	if (san[0])
		add_ext(x, issuer, NID_subject_alt_name, san);
	if (s->nc)
		add_ext(x, issuer, NID_name_constraints, s->nc);
	add_ext(x, issuer, NID_subject_key_identifier, "hash");
	add_ext(x, issuer, NID_authority_key_identifier, s->issuer ? "keyid:always" : "keyid");
	assert_true(X509_sign(x, sign, s->sha1 ? EVP_sha1() : EVP_sha256()) > 0);
	return x;
}

static X509_CRL *make_crl(struct pki *k, enum cert_id ca, const ASN1_INTEGER *revoked)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *last = ASN1_TIME_adj(NULL, time(NULL), 0, -3600);
	ASN1_TIME *next = ASN1_TIME_adj(NULL, time(NULL), 1, 0);

	assert_int_equal(X509_CRL_set_version(crl, 1), 1);
	assert_int_equal(X509_CRL_set_issuer_name(crl, X509_get_subject_name(k->cert[ca])), 1);
	assert_int_equal(X509_CRL_set1_lastUpdate(crl, last), 1);
	assert_int_equal(X509_CRL_set1_nextUpdate(crl, next), 1);
	if (revoked) {
		X509_REVOKED *r = X509_REVOKED_new();

		assert_int_equal(X509_REVOKED_set_serialNumber(r, (ASN1_INTEGER *)revoked), 1);
		assert_int_equal(X509_REVOKED_set_revocationDate(r, last), 1);
		assert_int_equal(X509_CRL_add0_revoked(crl, r), 1);
	}
	assert_true(X509_CRL_sort(crl) == 1);
	assert_true(X509_CRL_sign(crl, k->key[specs[ca].key], EVP_sha256()) > 0);
	ASN1_TIME_free(last);
	ASN1_TIME_free(next);
	return crl;
}

static void make_pki(struct pki *k, const char *other_alg)
{
	for (int i = 0; i < N_KEYS; i++)
		k->key[i] = new_key(i == K_LEAF_OTHER_ALG ? other_alg : k->alg);
	for (int i = 1; i < N_CERTS; i++)
		k->cert[i] = make_cert(k, (enum cert_id)i, 0x1000u + (unsigned)i);
	k->crl[CRL_ROOT_A] = make_crl(k, ROOT_A, NULL);
	k->crl[CRL_INT_A] = make_crl(k, INT_A, NULL);
	k->crl[CRL_INT_A_REVOKES_LEAF] = make_crl(k, INT_A, X509_get0_serialNumber(k->cert[LEAF]));
	snprintf(k->dir, sizeof(k->dir), "%s/%s", scratch, k->alg);
	assert_int_equal(mkdir(k->dir, 0700), 0);
}

/* ---- the corpus ------------------------------------------------------------ */

#define MAX_LIST 6

struct party {
	enum cert_id ca[MAX_LIST];   /* its `ca` bundle, C_NONE-terminated */
	enum crl_id crl[MAX_LIST];   /* its `crl` file, when any */
	unsigned depth;              /* verify_depth, 0: the default (3) */
};

struct row {
	const char *name;
	struct party partner[2];     /* partner "p0" and, when it has a bundle, "p1" */
	enum cert_id leaf;
	enum cert_id sent[MAX_LIST]; /* what the client sends after its leaf, in order */
	enum hs_outcome want;        /* what the row is built to produce */
	int want_partner;            /* on HS_OK */
	bool fast;                   /* decided by the known-links fast path */
};

#define A_BUNDLE .ca = { ROOT_A, INT_A }
static const struct row rows[] = {
	/* Good chains, and the order things come in. */
	{ "good", { { A_BUNDLE } }, LEAF, { INT_A }, HS_OK, 0, true },
	{ "good_leaf_only_sent", { { A_BUNDLE } }, LEAF, { 0 }, HS_OK, 0, true },
	{ "good_intermediate_from_client", { { .ca = { ROOT_A } } }, LEAF, { INT_A }, HS_OK, 0, false },
	{ "good_signed_by_root", { { .ca = { ROOT_A } } }, LEAF_OF_ROOT, { 0 }, HS_OK, 0, false },
	{ "good_mixed_algorithms", { { A_BUNDLE } }, LEAF_OTHER_ALG, { INT_A }, HS_OK, 0, true },
	{ "good_root_sent_too", { { A_BUNDLE } }, LEAF, { INT_A, ROOT_A }, HS_OK, 0, true },
	{ "wrong_order_known_cas", { { .ca = { ROOT_A, INT2, INT1 } } }, LEAF_DEEP, { INT1, INT2 }, HS_OK, 0, true },
	{ "wrong_order_from_client", { { .ca = { ROOT_A } } }, LEAF_DEEP, { INT1, INT2 }, HS_OK, 0, false },
	/* Validity periods, at every depth, known and sent. */
	{ "expired_leaf", { { A_BUNDLE } }, LEAF_EXPIRED, { INT_A }, HS_EXPIRED, 0, false },
	{ "expired_leaf_of_root", { { .ca = { ROOT_A } } }, LEAF_OF_ROOT_EXPIRED, { 0 }, HS_EXPIRED, 0, false },
	{ "not_yet_valid_leaf", { { A_BUNDLE } }, LEAF_NOT_YET, { INT_A }, HS_NOT_YET_VALID, 0, false },
	{ "expired_ca", { { .ca = { ROOT_A, INT_A_EXPIRED } } }, LEAF, { 0 }, HS_EXPIRED, 0, false },
	{ "expired_ca_from_client", { { .ca = { ROOT_A } } }, LEAF, { INT_A_EXPIRED }, HS_EXPIRED, 0, false },
	{ "not_yet_valid_ca", { { .ca = { ROOT_A, INT_A_NOT_YET } } }, LEAF, { 0 }, HS_NOT_YET_VALID, 0, false },
	{ "expired_root", { { .ca = { ROOT_A_EXPIRED, INT_A } } }, LEAF, { 0 }, HS_EXPIRED, 0, false },
	{ "not_yet_valid_root", { { .ca = { ROOT_A_NOT_YET, INT_A } } }, LEAF, { 0 }, HS_NOT_YET_VALID, 0, false },
	/* Path length and depth. */
	{ "path_length_violated", { { .ca = { ROOT_A, INT1_PATHLEN0, INT2 } } }, LEAF_DEEP, { 0 },
	  HS_CHAIN_TOO_DEEP, 0, false },
	{ "path_length_violated_from_client", { { .ca = { ROOT_A } } }, LEAF_DEEP, { INT2, INT1_PATHLEN0 },
	  HS_CHAIN_TOO_DEEP, 0, false },
	{ "path_length_kept", { { .ca = { ROOT_A, INT1, INT2 } } }, LEAF_DEEP, { 0 }, HS_OK, 0, true },
	{ "chain_too_deep", { { .ca = { ROOT_A, INT1, INT2 }, .depth = 2 } }, LEAF_DEEP, { 0 },
	  HS_CHAIN_TOO_DEEP, 0, false },
	/* Name constraints (checked by OpenSSL after the walk). */
	{ "name_constraints_kept", { { .ca = { ROOT_A, INT_A_NC_PERMIT } } }, LEAF, { 0 }, HS_OK, 0, true },
	{ "name_constraints_violated", { { .ca = { ROOT_A, INT_A_NC_PERMIT } } }, LEAF_OUTSIDE_NC, { 0 },
	  HS_OTHER, 0, false },
	{ "name_constraints_excluded", { { .ca = { ROOT_A, INT_A_NC_EXCLUDE } } }, LEAF, { 0 }, HS_OTHER, 0, false },
	/* Cross-signed roots. */
	{ "cross_signed_old_root_sent", { { A_BUNDLE } }, LEAF, { INT_A, ROOT_A_BY_X }, HS_OK, 0, true },
	{ "cross_signed_to_old_root", { { .ca = { ROOT_X, ROOT_A_BY_X, INT_A } } }, LEAF, { 0 }, HS_OK, 0, true },
	{ "cross_signed_expired_cross", { { .ca = { ROOT_X, ROOT_A_BY_X_EXPIRED, INT_A } } }, LEAF, { 0 },
	  HS_EXPIRED, 0, false },
	{ "cross_signed_expired_cross_root_kept", { { .ca = { ROOT_A, ROOT_X, ROOT_A_BY_X_EXPIRED, INT_A } } },
	  LEAF, { 0 }, HS_OK, 0, true },
	/* Two partners. */
	{ "partner_mixed_other_partner_intermediate_sent", { { A_BUNDLE }, { .ca = { ROOT_B, INT_B } } },
	  LEAF, { INT_B }, HS_OK, 0, true },
	{ "partner_mixed_intermediate_of_a_root_of_b", { { .ca = { ROOT_B, INT_B } } }, LEAF, { INT_A, ROOT_B },
	  HS_UNKNOWN_CA, -1, false },
	{ "partner_mixed_chain_of_a_sent_to_b", { { .ca = { ROOT_B } } }, LEAF,
	  { INT_A, ROOT_A }, HS_UNKNOWN_CA, -1, false },
	{ "partner_mixed_a_intermediate_certified_by_b", { { .ca = { ROOT_A } }, { .ca = { ROOT_B } } }, LEAF,
	  { INT_A_BY_B }, HS_OK, 1, false },
	{ "partner_mixed_both_vouch_a_first", { { A_BUNDLE }, { .ca = { ROOT_B } } }, LEAF, { INT_A_BY_B },
	  HS_OK, 0, true },
	{ "partner_mixed_both_vouch_b_first", { { .ca = { ROOT_B } }, { A_BUNDLE } }, LEAF, { INT_A_BY_B },
	  HS_OK, 0, false },
	{ "partner_mixed_leaf_of_b_intermediate_of_a", { { A_BUNDLE }, { .ca = { ROOT_B } } }, LEAF_B, { INT_A },
	  HS_UNKNOWN_CA, -1, false },
	/* Key usage, signatures, purpose, digests. */
	{ "missing_keycertsign", { { .ca = { ROOT_A } } }, LEAF, { INT_A_NO_KEYCERTSIGN }, HS_OTHER, 0, false },
	{ "ca_without_key_usage", { { .ca = { ROOT_A, INT_A_NO_KU } } }, LEAF, { 0 }, HS_OTHER, 0, false },
	{ "wrong_key_matching_name", { { A_BUNDLE } }, LEAF_FORGED, { INT_A }, HS_BAD_SIGNATURE, 0, false },
	{ "wrong_key_matching_name_from_client", { { .ca = { ROOT_A } } }, LEAF_FORGED, { INT_A },
	  HS_BAD_SIGNATURE, 0, false },
	{ "client_purpose_missing", { { A_BUNDLE } }, LEAF_SERVER_EKU, { 0 }, HS_BAD_EKU, 0, false },
	{ "ca_client_purpose_missing", { { .ca = { ROOT_A, INT_A_SERVER_EKU } } }, LEAF, { 0 }, HS_BAD_EKU, 0, false },
	{ "sha1_signature", { { A_BUNDLE } }, LEAF_SHA1, { 0 }, HS_WEAK_KEY, 0, false },
	{ "unknown_ca", { { A_BUNDLE } }, LEAF_UNKNOWN, { ROOT_U }, HS_UNKNOWN_CA, -1, false },
	/* CRLs (checked by OpenSSL before the walk). */
	{ "crl_good", { { A_BUNDLE, .crl = { CRL_ROOT_A, CRL_INT_A } } }, LEAF, { 0 }, HS_OK, 0, true },
	{ "crl_revoked", { { A_BUNDLE, .crl = { CRL_ROOT_A, CRL_INT_A_REVOKES_LEAF } } }, LEAF, { 0 },
	  HS_REVOKED, 0, false },
	{ "crl_missing", { { A_BUNDLE, .crl = { CRL_ROOT_A } } }, LEAF, { 0 }, HS_CRL_UNAVAILABLE, 0, false },
};
#define N_ROWS (sizeof(rows) / sizeof(rows[0]))

/* ---- the generation, as mtlsd builds it ------------------------------------ */

static void write_pem_file(const char *path, struct pki *k, const enum cert_id *certs, const enum crl_id *crls)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	for (int i = 0; certs && i < MAX_LIST && certs[i]; i++)
		assert_int_equal(PEM_write_X509(f, k->cert[certs[i]]), 1);
	for (int i = 0; crls && i < MAX_LIST && crls[i]; i++)
		assert_int_equal(PEM_write_X509_CRL(f, k->crl[crls[i]]), 1);
	assert_int_equal(fclose(f), 0);
}

static struct generation *build_generation(struct pki *k, const struct row *r, size_t idx)
{
	const char *fx = getenv("MTLS_FIXTURES");
	char conf[700], path[800], err[2048];
	struct mtlsd_config cfg;
	struct generation *g = NULL;
	FILE *f;

	snprintf(conf, sizeof(conf), "%s/row%zu.conf", k->dir, idx);
	f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f, "[mtlsd]\nlisten = 127.0.0.1:8443\n[server_cert.ec]\ncert = %s/server/chain.pem\n"
		"key = %s/server/key.pem\n", fx, fx);
	for (int p = 0; p < 2 && r->partner[p].ca[0]; p++) {
		const struct party *pa = &r->partner[p];

		fprintf(f, "[partner.p%d]\nbackend = 127.0.0.1:%d\n", p, 9000 + p);
		snprintf(path, sizeof(path), "%s/row%zu-p%d-ca.pem", k->dir, idx, p);
		write_pem_file(path, k, pa->ca, NULL);
		fprintf(f, "ca = %s\n", path);
		if (pa->crl[0]) {
			snprintf(path, sizeof(path), "%s/row%zu-p%d-crl.pem", k->dir, idx, p);
			write_pem_file(path, k, NULL, pa->crl);
			fprintf(f, "crl = %s\n", path);
		}
		if (pa->depth)
			fprintf(f, "verify_depth = %u\n", pa->depth);
	}
	assert_int_equal(fclose(f), 0);
	config_init(&cfg);
	if (config_load_file(&cfg, conf, err, sizeof(err)) != 0)
		fail_msg("%s: %s", conf, err);
	if (reload_build(&cfg, 1, &g, err, sizeof(err)) != 0)
		fail_msg("%s: the generation does not build: %s", conf, err);
	return g;
}

/* ---- mtlsd's decision: a handshake with the generation's SSL_CTX ---------- */

struct decision {
	enum hs_outcome outcome;
	int x509_err;
	int depth;        /* where the refusal was found, -1 if not said */
	int partner;
	char detail[256];
};

static SSL_CTX *client_ctx(struct pki *k, const struct row *r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	assert_non_null(ctx);
	/* The client offers what the server is to judge (SHA-1...). */
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
	assert_int_equal(SSL_CTX_use_certificate(ctx, k->cert[r->leaf]), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, k->key[specs[r->leaf].key]), 1);
	for (int i = 0; i < MAX_LIST && r->sent[i]; i++)
		assert_int_equal(SSL_CTX_add1_chain_cert(ctx, k->cert[r->sent[i]]), 1);
	return ctx;
}

static int depth_in(const char *detail)
{
	const char *d = strstr(detail, "(depth ");

	return d ? atoi(d + strlen("(depth ")) : -1;
}

static void mtlsd_decides(struct generation *g, struct pki *k, const struct row *r, struct decision *out)
{
	SSL_CTX *cctx = client_ctx(k, r);
	SSL *s = SSL_new(g->ssl_ctx), *c = SSL_new(cctx);
	struct verify_result res;
	BIO *sbio, *cbio;
	bool done = false;

	memset(&res, 0, sizeof(res));
	assert_int_equal(BIO_new_bio_pair(&sbio, 0, &cbio, 0), 1);
	SSL_set_bio(s, sbio, sbio);
	SSL_set_bio(c, cbio, cbio);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	assert_int_equal(verify_attach(s, &res), 0);
	for (int round = 0; round < 20 && !done; round++) {
		int sr;

		(void)SSL_do_handshake(c);
		ERR_clear_error();
		sr = SSL_do_handshake(s);
		if (sr == 1) {
			(void)verify_settle_success(s, g, &res);
			done = true;
		} else if (SSL_get_error(s, sr) != SSL_ERROR_WANT_READ) {
			verify_settle_failure(s, ERR_peek_error(), &res);
			done = true;
		}
	}
	assert_true(done);
	ERR_clear_error();
	out->outcome = res.outcome;
	out->x509_err = res.outcome == HS_OK ? X509_V_OK : res.x509_err;
	out->partner = res.outcome == HS_OK ? res.partner : -1;
	out->depth = res.outcome == HS_OK ? -1 : depth_in(res.detail);
	snprintf(out->detail, sizeof(out->detail), "%s", res.detail);
	verify_result_clear(&res);
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
}

/* ---- OpenSSL's decision: the full walk on each partner's store ------------ */

/*
 * X509_verify_cert() with what verify_with_partner() (verify.c) sets on
 * its context, and nothing replaced: no verify function, no callback.
 * Returns 1 (accepted) or 0, with the error and its depth; *chain gets
 * the verified chain on acceptance (a reference, caller frees).
 */
static int openssl_verifies(const struct partner *p, X509 *leaf, STACK_OF(X509) *sent, int *err,
			    int *depth, STACK_OF(X509) **chain)
{
	X509_STORE_CTX *v = X509_STORE_CTX_new();
	X509_VERIFY_PARAM *param;
	int ok;

	assert_non_null(v);
	assert_int_equal(X509_STORE_CTX_init(v, p->store, leaf, sent), 1);
	param = X509_STORE_CTX_get0_param(v);
	X509_VERIFY_PARAM_set_depth(param, (int)p->cfg->verify_depth - 1);
	X509_VERIFY_PARAM_set_auth_level(param, 2);
	X509_VERIFY_PARAM_clear_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
	if (p->cfg->crl_paths.n)
		X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	assert_int_equal(X509_STORE_CTX_set_purpose(v, X509_PURPOSE_SSL_CLIENT), 1);
	ok = X509_verify_cert(v) == 1;
	*err = X509_STORE_CTX_get_error(v);
	*depth = X509_STORE_CTX_get_error_depth(v);
	if (chain)
		*chain = ok ? X509_STORE_CTX_get1_chain(v) : NULL;
	X509_STORE_CTX_free(v);
	ERR_clear_error();
	return ok;
}

/*
 * The reference decision over every partner, in configuration order: the
 * first store that accepts wins. A refusal's outcome is defined when
 * exactly one store got further than not knowing the chain at all (an
 * error that maps to unknown_ca); when none did, it is unknown_ca; when
 * several did, only "refused" is compared. *defined says which.
 */
static void openssl_decides(const struct generation *g, struct pki *k, const struct row *r,
			    struct decision *out, bool *defined, STACK_OF(X509) **chain)
{
	STACK_OF(X509) *sent = sk_X509_new_null();
	int informative = 0;

	for (int i = 0; i < MAX_LIST && r->sent[i]; i++)
		assert_true(sk_X509_push(sent, k->cert[r->sent[i]]) > 0);
	memset(out, 0, sizeof(*out));
	out->outcome = HS_UNKNOWN_CA;
	out->x509_err = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
	out->partner = -1;
	out->depth = -1;
	*defined = true;
	for (size_t i = 0; i < g->n_partners; i++) {
		int err, depth;

		if (openssl_verifies(&g->partners[i], k->cert[r->leaf], sent, &err, &depth, chain)) {
			out->outcome = HS_OK;
			out->x509_err = X509_V_OK;
			out->partner = (int)i;
			*defined = true;
			break;
		}
		if (verify_outcome_from_x509(err) == HS_UNKNOWN_CA)
			continue;
		if (++informative > 1) {
			*defined = false;
			continue;
		}
		out->outcome = verify_outcome_from_x509(err);
		out->x509_err = err;
		out->depth = depth;
		snprintf(out->detail, sizeof(out->detail), "%s (depth %d)", X509_verify_cert_error_string(err), depth);
	}
	sk_X509_free(sent);
}

/* ---- the comparison ---------------------------------------------------------- */

static const char *outcome(enum hs_outcome o)
{
	return hs_outcome_name(o);
}

/* The first of partner p's own intermediates (not a client's copy) in the
 * chain OpenSSL verified, or NULL. */
static X509 *known_intermediate_in(const struct partner *p, STACK_OF(X509) *chain)
{
	for (int i = 1; i < sk_X509_num(chain) - 1; i++)
		for (int j = 0; j < sk_X509_num(p->intermediates); j++)
			if (sk_X509_value(chain, i) == sk_X509_value(p->intermediates, j))
				return sk_X509_value(chain, i);
	return NULL;
}

static void flip_signature_bit(X509 *x)
{
	const ASN1_BIT_STRING *sig;

	X509_get0_signature(&sig, NULL, x);
	assert_true(sig && sig->length > 8);
	/* A byte in the middle: a DER-encoded ECDSA signature stays well
	 * formed, it just no longer verifies. */
	((ASN1_BIT_STRING *)sig)->data[sig->length / 2] ^= 0x01;
}

/* The row's fast path ran: break the signature of the partner's own
 * intermediate in the chain, which the generation checked once. OpenSSL
 * now refuses the chain under that partner (another partner that also
 * vouches for it may still take it); mtlsd, which trusts the generation's
 * check, still accepts it for that partner. Then the signature is
 * repaired. */
static void assert_fast_path_decides(struct generation *g, struct pki *k, const struct row *r,
				     const char *name, STACK_OF(X509) *chain)
{
	const struct partner *p = &g->partners[r->want_partner];
	X509 *inter = known_intermediate_in(p, chain);
	struct decision m, o;
	bool defined;

	if (!inter)
		fail_msg("%s: marked fast, but no intermediate of the partner's ca bundle is in the chain", name);
	flip_signature_bit(inter);
	openssl_decides(g, k, r, &o, &defined, NULL);
	mtlsd_decides(g, k, r, &m);
	flip_signature_bit(inter);
	if (o.outcome == HS_OK && o.partner == r->want_partner)
		fail_msg("%s: OpenSSL still accepts with a broken CA signature; the probe proves nothing", name);
	if (m.outcome != HS_OK || m.partner != r->want_partner)
		fail_msg("%s: marked fast, but mtlsd walked the chain in full (%s: %s): the known-links "
			 "fast path did not decide it", name, outcome(m.outcome), m.detail);
}

static void run_row(struct pki *k, size_t idx)
{
	const struct row *r = &rows[idx];
	char name[160];
	struct generation *g = build_generation(k, r, idx);
	struct decision m, o;
	STACK_OF(X509) *chain = NULL;
	bool defined;

	snprintf(name, sizeof(name), "%s/%s", k->alg, r->name);
	openssl_decides(g, k, r, &o, &defined, &chain);
	mtlsd_decides(g, k, r, &m);
	print_message("%-62s openssl %-16s mtlsd %-16s %s\n", name, outcome(o.outcome), outcome(m.outcome),
		      m.detail);

	/* The corpus: OpenSSL's decision is the one the row is built for. */
	if (o.outcome != r->want || (r->want == HS_OK && o.partner != r->want_partner))
		fail_msg("%s: corpus row is built for %s (partner %d) but OpenSSL says %s (partner %d): %s",
			 name, outcome(r->want), r->want_partner, outcome(o.outcome), o.partner, o.detail);
	/* The differential. */
	if ((m.outcome == HS_OK) != (o.outcome == HS_OK))
		fail_msg("%s: mtlsd %s (%s), OpenSSL's full walk %s (%s)", name,
			 m.outcome == HS_OK ? "accepts" : "refuses", m.detail,
			 o.outcome == HS_OK ? "accepts" : "refuses", o.detail);
	if (o.outcome == HS_OK && m.partner != o.partner)
		fail_msg("%s: mtlsd attributes it to partner %d, OpenSSL's first accepting store is partner %d",
			 name, m.partner, o.partner);
	if (o.outcome != HS_OK && defined && o.depth >= 0 &&
	    (m.outcome != o.outcome || m.x509_err != o.x509_err || m.depth != o.depth))
		fail_msg("%s: mtlsd refuses as %s (X509 error %d at depth %d: %s), OpenSSL as %s (error %d at "
			 "depth %d: %s)", name, outcome(m.outcome), m.x509_err, m.depth, m.detail,
			 outcome(o.outcome), o.x509_err, o.depth, o.detail);
	if (o.outcome != HS_OK && defined && o.depth < 0 && m.outcome != o.outcome)
		fail_msg("%s: mtlsd refuses as %s (%s), OpenSSL: no partner knows the chain (%s)", name,
			 outcome(m.outcome), m.detail, outcome(o.outcome));
	if (r->fast)
		assert_fast_path_decides(g, k, r, name, chain);
	sk_X509_pop_free(chain, X509_free);
	generation_unref(g);
}

/* One cmocka test per row and algorithm: state points at its index. */
static void test_row(void **state)
{
	size_t t = (size_t)(uintptr_t)*state;

	run_row(&pkis[t / N_ROWS], t % N_ROWS);
}

/* ---- set-up ------------------------------------------------------------------- */

static int group_setup(void **state)
{
	(void)state;
	if (!getenv("MTLS_FIXTURES")) {
		fprintf(stderr, "MTLS_FIXTURES is not set (run through meson test)\n");
		exit(1);
	}
	if (!mkdtemp(scratch))
		return -1;
	make_pki(&pkis[0], "rsa");
	make_pki(&pkis[1], "ec");
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[700];

	(void)state;
	for (size_t a = 0; a < 2; a++) {
		for (int i = 0; i < N_KEYS; i++)
			EVP_PKEY_free(pkis[a].key[i]);
		for (int i = 0; i < N_CERTS; i++)
			X509_free(pkis[a].cert[i]);
		for (int i = 0; i < N_CRLS; i++)
			X509_CRL_free(pkis[a].crl[i]);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	static struct CMUnitTest tests[2 * N_ROWS];
	static char names[2 * N_ROWS][128];

	for (size_t t = 0; t < 2 * N_ROWS; t++) {
		snprintf(names[t], sizeof(names[t]), "test_verify_differential_%s_%s", pkis[t / N_ROWS].alg,
			 rows[t % N_ROWS].name);
		tests[t] = (struct CMUnitTest){ .name = names[t], .test_func = test_row,
						.initial_state = (void *)(uintptr_t)t };
	}
	return cmocka_run_group_tests_name("verify_differential", tests, group_setup, group_teardown);
}
