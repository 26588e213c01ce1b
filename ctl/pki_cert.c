/*
 * pki_cert.c: the one certificate builder (profiles in pki_cert.h).
 *
 * Extensions are added from fixed strings through X509V3_EXT_nconf_nid, but
 * subjectAltName entries are built as GENERAL_NAMEs one by one: a --dns value
 * is never pasted into an OpenSSL config string, so "a,DNS:evil" cannot
 * smuggle in a second name.
 */
#include "pki_cert.h"

#include <ctype.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "fsutil.h"
#include "pki_key.h"
#include "spiffe_id.h"

bool pki_dns_name_ok(const char *name, char *err, size_t errlen)
{
	size_t len = strlen(name), label = 0;
	if (len == 0 || len > 253) {
		snprintf(err, errlen, "DNS name '%s' is empty or longer than 253 characters", name);
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool wildcard = c == '*' && i == 0 && name[1] == '.';
		if (c == '.') {
			if (label == 0)
				goto bad;
			label = 0;
			continue;
		}
		if (!(isalnum((unsigned char)c) || c == '-' || wildcard))
			goto bad;
		if (++label > 63)
			goto bad;
	}
	if (label == 0)
		goto bad;
	return true;
bad:
	snprintf(err, errlen, "'%s' is not a DNS name (letters, digits, '-', labels "
		 "separated by '.', optional leading '*.')", name);
	return false;
}

bool pki_uri_ok(const char *uri, char *err, size_t errlen)
{
	const char *colon = strchr(uri, ':');
	bool ok = colon && colon != uri;

	/* A SPIFFE ID (or a typo of one, "spifee://"): mtlsd's own rules, so
	 * nothing is issued that mtlsd would then refuse. */
	if (spiffe_id_intended(uri)) {
		const char *why = spiffe_id_problem(uri, SPIFFE_ID_NEED_PATH);
		if (why)
			snprintf(err, errlen, "'%s' is not a SPIFFE ID: %s", uri, why);
		return why == NULL;
	}
	for (const char *p = uri; ok && p < colon; p++)
		ok = isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.';
	for (const char *p = uri; ok && *p; p++)
		ok = (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f;
	if (!ok)
		snprintf(err, errlen, "'%s' is not a URI (a SPIFFE ID looks like "
			 "spiffe://trust.domain/path)", uri);
	return ok;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
	ENSURE_PTR(ext, EIO);
	int ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ENSURE(ok == 1, EIO);
	return 0;
}

static int add_names(GENERAL_NAMES *gens, int type, const struct pki_names *names,
		     char *err, size_t errlen)
{
	for (size_t i = 0; i < names->n; i++) {
		GENERAL_NAME *gen = a2i_GENERAL_NAME(NULL, NULL, NULL, type, names->v[i], 0);
		if (!gen) {
			snprintf(err, errlen, "cannot encode subjectAltName '%s'%s", names->v[i],
				 type == GEN_IPADD ? " (not an IPv4 or IPv6 address)" : "");
			return -EINVAL;
		}
		if (!sk_GENERAL_NAME_push(gens, gen)) {
			GENERAL_NAME_free(gen);
			return -ENOMEM;
		}
	}
	return 0;
}

static int add_san(X509 *x, const struct pki_cert_profile *p, char *err, size_t errlen)
{
	if (p->dns.n + p->ip.n + p->uri.n == 0)
		return 0;
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	ENSURE_PTR(gens, ENOMEM);
	int rc = 0;
	GUARD_GOTO(add_names(gens, GEN_DNS, &p->dns, err, errlen), rc, out);
	GUARD_GOTO(add_names(gens, GEN_IPADD, &p->ip, err, errlen), rc, out);
	GUARD_GOTO(add_names(gens, GEN_URI, &p->uri, err, errlen), rc, out);
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1)
		rc = -EIO;
out:
	GENERAL_NAMES_free(gens);
	return rc;
}

static const char *profile_eku(const struct pki_cert_profile *p)
{
	enum pki_eku e = p->eku;
	if (e == PKI_EKU_PROFILE)
		e = p->kind == PKI_PROFILE_SERVER ? PKI_EKU_SERVER : PKI_EKU_CLIENT;
	switch (e) {
	case PKI_EKU_SERVER:
		return "serverAuth";
	case PKI_EKU_CLIENT:
		return "clientAuth";
	case PKI_EKU_NONE:
	case PKI_EKU_PROFILE:
	default:
		return NULL;
	}
}

static int add_extensions(X509 *x, X509 *issuer, const struct pki_cert_profile *p,
			  char *err, size_t errlen)
{
	X509V3_CTX ctx;
	char bc[64];
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	if (p->kind == PKI_PROFILE_CA) {
		if (p->pathlen >= 0)
			snprintf(bc, sizeof(bc), "critical,CA:TRUE,pathlen:%d", p->pathlen);
		else
			snprintf(bc, sizeof(bc), "critical,CA:TRUE");
		GUARD(add_ext(x, &ctx, NID_basic_constraints, bc));
		GUARD(add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"));
	} else {
		GUARD(add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE"));
		GUARD(add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature"));
		const char *eku = profile_eku(p);
		if (eku)
			GUARD(add_ext(x, &ctx, NID_ext_key_usage, eku));
	}
	/* SKI before AKI: a root's AKI is read back from its own SKI. */
	GUARD(add_ext(x, &ctx, NID_subject_key_identifier, "hash"));
	GUARD(add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always"));
	return add_san(x, p, err, errlen);
}

static int set_subject(X509 *x, const struct pki_cert_profile *p)
{
	X509_NAME *name = X509_get_subject_name(x);
	if (p->org)
		GUARD_OSSL(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
						      (const unsigned char *)p->org, -1, -1, 0), EINVAL);
	GUARD_OSSL(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					      (const unsigned char *)p->cn, -1, -1, 0), EINVAL);
	return 0;
}

static int fill_cert(X509 *x, const struct pki_cert_profile *p, EVP_PKEY *subject_key,
		     X509 *issuer, char *err, size_t errlen)
{
	GUARD_OSSL(X509_set_version(x, X509_VERSION_3), EIO);
	ASN1_INTEGER *serial = pki_serial_to_asn1(&p->serial);
	ENSURE_PTR(serial, ENOMEM);
	int ok = X509_set_serialNumber(x, serial);
	ASN1_INTEGER_free(serial);
	ENSURE(ok == 1, EIO);
	ENSURE(ASN1_TIME_set(X509_getm_notBefore(x), p->not_before) != NULL, EIO);
	ENSURE(ASN1_TIME_set(X509_getm_notAfter(x), p->not_after) != NULL, EIO);
	GUARD(set_subject(x, p));
	GUARD_OSSL(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer)
						  : X509_get_subject_name(x)), EIO);
	GUARD_OSSL(X509_set_pubkey(x, subject_key), EIO);
	return add_extensions(x, issuer, p, err, errlen);
}

int pki_cert_build(const struct pki_cert_profile *p, EVP_PKEY *subject_key, X509 *issuer,
		   EVP_PKEY *issuer_key, X509 **out, char *err, size_t errlen)
{
	ENSURE(p->serial.len > 0 && p->not_after > p->not_before, EINVAL);
	X509 *x = X509_new();
	ENSURE_PTR(x, ENOMEM);
	int rc = fill_cert(x, p, subject_key, issuer, err, errlen);
	if (rc == 0 && X509_sign(x, issuer_key, pki_key_digest(issuer_key)) <= 0)
		rc = -EIO;
	if (rc < 0) {
		if (rc == -EIO && !*err)
			snprintf(err, errlen, "OpenSSL could not build the certificate");
		X509_free(x);
		return rc;
	}
	*out = x;
	return 0;
}

int pki_certs_save(const char *path, X509 *const *certs, size_t n)
{
	BIO *mem = BIO_new(BIO_s_mem());
	ENSURE_PTR(mem, ENOMEM);
	int rc = 0;
	for (size_t i = 0; i < n; i++)
		ENSURE_GOTO(PEM_write_bio_X509(mem, certs[i]) == 1, rc, EIO, out);
	char *data = NULL;
	long len = BIO_get_mem_data(mem, &data);
	rc = fs_write_atomic(path, data, (size_t)len, 0644);
out:
	BIO_free(mem);
	return rc;
}

void pki_cert_fingerprint(X509 *x, char *buf, size_t cap)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	buf[0] = '\0';
	if (X509_digest(x, EVP_sha256(), md, &len) == 1)
		pki_hex_colon(md, len, buf, cap);
}
