/*
 * pki_trust.c: writing DIR/trust-package/ (see pki_trust.h).
 */
#include "pki_trust.h"

#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fsutil.h"
#include "pki_ca.h"
#include "cert_describe.h"
#include "pki_cert.h"
#include "pki_policy.h"

static void asn1_day(const ASN1_TIME *t, char *buf, size_t cap)
{
	struct tm tm;
	if (ASN1_TIME_to_tm(t, &tm) == 1)
		strftime(buf, cap, "%Y-%m-%d", &tm);
	else
		snprintf(buf, cap, "?");
}

static void describe_ca(FILE *f, const struct pki_tier *t, bool in_package)
{
	char subject[512], fp[128], from[16], to[16], key[64];
	int bits;
	cert_key_desc(t->cert, key, sizeof(key), &bits);
	cert_name_desc(X509_get_subject_name(t->cert), subject, sizeof(subject));
	pki_cert_fingerprint(t->cert, fp, sizeof(fp));
	asn1_day(X509_get0_notBefore(t->cert), from, sizeof(from));
	asn1_day(X509_get0_notAfter(t->cert), to, sizeof(to));
	long pathlen = X509_get_pathlen(t->cert);
	fprintf(f, "  %s%s\n", t->name, in_package ? "" : " (not in this package: every "
		"client presents it in its chain)");
	fprintf(f, "    subject  %s\n", subject);
	fprintf(f, "    SHA-256  %s\n", fp);
	fprintf(f, "    valid    %s to %s, %s key, pathlen %ld\n", from, to, key, pathlen);
}

static void write_policy_text(FILE *f, const struct pki_hierarchy *h)
{
	char org[256];
	pki_ca_org(h, org, sizeof(org));
	fprintf(f, "Trust package of the PKI \"%s\"\n\n", org);
	fprintf(f, "Before installing anything, compare these SHA-256 fingerprints with the\n"
		   "issuer over a second channel (a phone or video call), digit by digit:\n\n");
	for (size_t i = 0; i < h->n; i++)
		describe_ca(f, &h->tier[i], i + 1 < h->n);
	fprintf(f, "\nWhat to install: ca-bundle.pem (the certificates above that are in this\n"
		   "package) as the trust anchors of this partner only, and crls.pem, the\n"
		   "current CRL of every CA (replace it from each new trust package).\n\n");
	fprintf(f, "Issuing policy:\n"
		   "  client certificates: EKU clientAuth only, keyUsage digitalSignature,\n"
		   "    %d days by default, at most %d\n"
		   "  server certificates: EKU serverAuth only, keyUsage digitalSignature,\n"
		   "    %d days by default, at most %d\n"
		   "  keys: ECDSA P-256 or P-384, RSA of at least %d bits; a new key per certificate\n"
		   "  serials: 16 random octets, unique per CA\n"
		   "  a leaf presents: leaf, issuing CA, intermediate(s); never the root\n"
		   "  CRLs are reissued at least every %d days; revocation is final\n",
		PKI_CLIENT_DAYS_DEFAULT, PKI_CLIENT_DAYS_MAX, PKI_SERVER_DAYS_DEFAULT,
		PKI_SERVER_DAYS_MAX, PKI_MIN_RSA_BITS, PKI_CRL_NEXT_UPDATE_DAYS);
}

static int write_policy(const struct pki_hierarchy *h, char *path, size_t cap)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	ENSURE_PTR(f, ENOMEM);
	write_policy_text(f, h);
	if (fclose(f) != 0) {
		free(text);
		return -ENOMEM;
	}
	int rc = fs_path(path, cap, "%s/trust-package/POLICY.txt", h->dir);
	if (rc == 0)
		rc = fs_write_atomic(path, text, len, 0644);
	free(text);
	return rc;
}

int pki_trust_write(const struct pki_hierarchy *h, char *path, size_t cap)
{
	char *crls = NULL;
	size_t len = 0;
	GUARD(fs_path(path, cap, "%s/trust-package", h->dir));
	GUARD(fs_mkdir_p(path, 0755));
	/* Every CA but the issuing one: a partner anchors on what is offline.
	 * ca-bundle.pem holds them all, ready for mtlsd's `ca =`. */
	X509 *offline[PKI_MAX_TIERS];
	for (size_t i = 0; i + 1 < h->n; i++) {
		GUARD(fs_path(path, cap, "%s/trust-package/%s.crt", h->dir, h->tier[i].name));
		GUARD(pki_certs_save(path, &h->tier[i].cert, 1));
		offline[i] = h->tier[i].cert;
	}
	GUARD(fs_path(path, cap, "%s/trust-package/ca-bundle.pem", h->dir));
	GUARD(pki_certs_save(path, offline, h->n - 1));
	GUARD(fs_path(path, cap, "%s/crls.pem", h->dir));
	GUARD(fs_read_all(path, 64u << 20, &crls, &len));
	int rc = fs_path(path, cap, "%s/trust-package/crls.pem", h->dir);
	if (rc == 0)
		rc = fs_write_atomic(path, crls, len, 0644);
	free(crls);
	GUARD(rc);
	return write_policy(h, path, cap);
}
