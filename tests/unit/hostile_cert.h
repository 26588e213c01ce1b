/*
 * hostile_cert.h: an in-memory certificate whose fields carry what an
 * attacker may put in them (quotes, backslashes, control bytes, an embedded
 * NUL, bytes that are not UTF-8), for the escaping tests of certinfo and
 * audit. Self-signed with a fresh P-256 key; never written anywhere.
 */
#ifndef MTLS_TEST_HOSTILE_CERT_H
#define MTLS_TEST_HOSTILE_CERT_H

#include <openssl/evp.h>
#include <openssl/x509v3.h>

/* SAN DNS bytes: a"b\c<NUL>d<0xff><newline> */
static const unsigned char hostile_dns[] = { 'a', '"', 'b', '\\', 'c', 0, 'd', 0xff, '\n' };
#define HOSTILE_DNS_JSON "\"DNS:a\\\"b\\\\c\\u0000d\\u00ff\\n\""

static inline void hostile_add_san(X509 *x)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *dns = GENERAL_NAME_new();
	GENERAL_NAME *uri = GENERAL_NAME_new();
	ASN1_IA5STRING *d = ASN1_IA5STRING_new();
	ASN1_IA5STRING *u = ASN1_IA5STRING_new();

	ASN1_STRING_set(d, hostile_dns, sizeof(hostile_dns));
	ASN1_STRING_set(u, "spiffe://evil.example/x", -1);
	GENERAL_NAME_set0_value(dns, GEN_DNS, d);
	GENERAL_NAME_set0_value(uri, GEN_URI, u);
	sk_GENERAL_NAME_push(gens, dns);
	sk_GENERAL_NAME_push(gens, uri);
	X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT);
	GENERAL_NAMES_free(gens);
}

/* CN = "x\"\x01y" (quote and a control byte), O = "Evil, Inc." */
static inline X509 *hostile_cert_new(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 0x1234);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"Evil, Inc.", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)"x\"\001y", -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, name);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	hostile_add_san(x);
	X509_sign(x, key, EVP_sha256());
	X509_NAME_free(name);
	EVP_PKEY_free(key);
	return x;
}

#endif
