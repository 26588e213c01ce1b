/*
 * pki_crl.c: CRL signing and the crl.pem/index.txt update (pki_crl.h).
 */
#include "pki_crl.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "fsutil.h"
#include "pki_ca.h"
#include "pki_key.h"
#include "pki_policy.h"

static int add_revoked(X509_CRL *crl, const struct pki_record *r)
{
	X509_REVOKED *rev = X509_REVOKED_new();
	ASN1_INTEGER *serial = pki_serial_to_asn1(&r->serial);
	ASN1_TIME *when = ASN1_TIME_set(NULL, r->revoked_at);
	ASN1_ENUMERATED *reason = ASN1_ENUMERATED_new();
	int rc = -ENOMEM;
	if (!rev || !serial || !when || !reason)
		goto out;
	rc = -EIO;
	if (X509_REVOKED_set_serialNumber(rev, serial) != 1 ||
	    X509_REVOKED_set_revocationDate(rev, when) != 1 ||
	    ASN1_ENUMERATED_set(reason, r->reason) != 1 ||
	    X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, reason, 0, 0) != 1 ||
	    X509_CRL_add0_revoked(crl, rev) != 1)
		goto out;
	rev = NULL; /* owned by the CRL now */
	rc = 0;
out:
	X509_REVOKED_free(rev);
	ASN1_INTEGER_free(serial);
	ASN1_TIME_free(when);
	ASN1_ENUMERATED_free(reason);
	return rc;
}

static int set_crl_header(X509_CRL *crl, const struct pki_tier *t, uint64_t number, time_t now,
			  int next_update_days)
{
	GUARD_OSSL(X509_CRL_set_version(crl, X509_CRL_VERSION_2), EIO);
	GUARD_OSSL(X509_CRL_set_issuer_name(crl, X509_get_subject_name(t->cert)), EIO);
	ASN1_TIME *last = ASN1_TIME_set(NULL, now);
	ASN1_TIME *next = ASN1_TIME_set(NULL, now + next_update_days * PKI_DAY);
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	int rc = -EIO;
	if (last && next && num && ASN1_INTEGER_set_uint64(num, number) == 1 &&
	    X509_CRL_set1_lastUpdate(crl, last) == 1 && X509_CRL_set1_nextUpdate(crl, next) == 1 &&
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) == 1)
		rc = 0;
	ASN1_TIME_free(last);
	ASN1_TIME_free(next);
	ASN1_INTEGER_free(num);
	GUARD(rc);

	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, t->cert, NULL, NULL, crl, 0);
	X509_EXTENSION *aki = X509V3_EXT_nconf_nid(NULL, &ctx, NID_authority_key_identifier,
						   "keyid:always");
	ENSURE_PTR(aki, EIO);
	int ok = X509_CRL_add_ext(crl, aki, -1);
	X509_EXTENSION_free(aki);
	ENSURE(ok == 1, EIO);
	return 0;
}

int pki_crl_build(const struct pki_tier *t, uint64_t number, time_t now, int next_update_days,
		  X509_CRL **out)
{
	ENSURE_PTR(t->key, EINVAL);
	X509_CRL *crl = X509_CRL_new();
	ENSURE_PTR(crl, ENOMEM);
	int rc = set_crl_header(crl, t, number, now, next_update_days);
	for (size_t i = 0; rc == 0 && i < t->idx.n; i++)
		if (t->idx.rec[i].state == PKI_CERT_REVOKED)
			rc = add_revoked(crl, &t->idx.rec[i]);
	if (rc == 0 && (X509_CRL_sort(crl) != 1 ||
			X509_CRL_sign(crl, t->key, pki_key_digest(t->key)) <= 0))
		rc = -EIO;
	if (rc < 0) {
		X509_CRL_free(crl);
		return rc;
	}
	*out = crl;
	return 0;
}

static int save_crl(const char *path, X509_CRL *crl)
{
	BIO *mem = BIO_new(BIO_s_mem());
	ENSURE_PTR(mem, ENOMEM);
	int rc = -EIO;
	if (PEM_write_bio_X509_CRL(mem, crl) == 1) {
		char *data = NULL;
		long len = BIO_get_mem_data(mem, &data);
		rc = fs_write_atomic(path, data, (size_t)len, 0644);
	}
	BIO_free(mem);
	return rc;
}

/* Index first: if we crash before crl.pem, the next CRL skips a number,
 * which verifiers accept; a number used twice they would not. */
static int write_tier_crl(struct pki_hierarchy *h, size_t i, X509_CRL *crl, char *path, size_t cap)
{
	GUARD(pki_tier_path(h, i, "index.txt", path, cap));
	h->tier[i].idx.crl_number++;
	GUARD(pki_index_save(path, &h->tier[i].idx));
	GUARD(pki_tier_path(h, i, "crl.pem", path, cap));
	return save_crl(path, crl);
}

int pki_crl_refresh(struct pki_hierarchy *h, int next_update_days, char *err, size_t errlen)
{
	X509_CRL *crls[PKI_MAX_TIERS] = { NULL };
	char path[PKI_PATH_MAX] = "";
	time_t now = time(NULL);
	int rc = 0;

	for (size_t i = 0; i < h->n; i++) {
		struct pki_tier *t = &h->tier[i];
		if (!t->key)
			continue;
		rc = pki_crl_build(t, t->idx.crl_number + 1, now, next_update_days, &crls[i]);
		if (rc < 0) {
			snprintf(err, errlen, "%s: cannot sign the CRL", t->dir);
			goto out;
		}
	}
	for (size_t i = 0; i < h->n; i++) {
		if (!crls[i])
			continue;
		rc = write_tier_crl(h, i, crls[i], path, sizeof(path));
		if (rc < 0) {
			snprintf(err, errlen, "%s: cannot write: %s", path, strerror(-rc));
			goto out;
		}
	}
	rc = pki_ca_write_bundles(h, err, errlen);
out:
	for (size_t i = 0; i < h->n; i++)
		X509_CRL_free(crls[i]);
	return rc;
}
