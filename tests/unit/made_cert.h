/*
 * made_cert.h: an in-memory client certificate with exactly the subject,
 * SANs and serial a test asks for (several CNs, several SPIFFE IDs, a zero
 * or negative serial), for the identity and serial rules of
 * verify_policy_check(). EKU clientAuth, keyUsage digitalSignature, P-256,
 * self-signed: the policy is applied to a leaf whose chain already
 * verified, so no CA is needed. Never written anywhere.
 */
#ifndef MTLS_TEST_MADE_CERT_H
#define MTLS_TEST_MADE_CERT_H

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <string.h>

static inline void made_cert_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
}

/*
 * subject: "O", "Acme", "CN", "admin", ..., NULL (DER order);
 * san: "URI:spiffe://a/b,DNS:x.example" as openssl.cnf writes it, or NULL;
 * serial_hex: BN_hex2bn's form ("-2003", "0", "96ED7B"), NULL for 0x1001.
 */
static inline X509 *made_cert_new(const char *const *subject, const char *san, const char *serial_hex)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	BIGNUM *bn = NULL;

	X509_set_version(x, 2);
	BN_hex2bn(&bn, serial_hex ? serial_hex : "1001");
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	for (size_t i = 0; subject && subject[i]; i += 2)
		X509_NAME_add_entry_by_txt(name, subject[i], MBSTRING_UTF8,
					   (const unsigned char *)subject[i + 1], -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, name);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	made_cert_ext(x, NID_basic_constraints, "critical,CA:FALSE");
	made_cert_ext(x, NID_key_usage, "critical,digitalSignature");
	made_cert_ext(x, NID_ext_key_usage, "clientAuth");
	if (san)
		made_cert_ext(x, NID_subject_alt_name, san);
	X509_sign(x, key, EVP_sha256());
	X509_NAME_free(name);
	EVP_PKEY_free(key);
	return x;
}

#endif
