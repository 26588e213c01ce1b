/*
 * test_certinfo.c: the identity mtlsd reports for a certificate.
 *
 * Fixture certificates (tests/fixtures.md) are checked against values
 * computed here through other OpenSSL paths (BIGNUM serial, the issuer's
 * subjectKeyIdentifier, a digest of i2d_X509), and the encoders against
 * published vectors (RFC 4648) and hostile input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certinfo.h"
#include "hostile_cert.h"

static X509 *load_fixture(const char *rel)
{
	const char *dir = getenv("MTLS_FIXTURES");
	char path[1024];
	FILE *f;
	X509 *x;

	if (!dir) {
		fprintf(stderr, "MTLS_FIXTURES is not set (run through meson test)\n");
		exit(77);
	}
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open fixture %s", path);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

static void test_certinfo_client_ec_identity(void **state)
{
	X509 *x = load_fixture("client-ec/cert.pem");
	X509 *issuing = load_fixture("pki/issuing/ca.crt");
	struct cert_identity id;
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *bnhex = BN_bn2hex(bn);
	char colons[128] = "";
	uint8_t der_md[32];
	unsigned char *der = NULL;
	int der_len = i2d_X509(x, &der);
	char md_hex[65];

	(void)state;
	assert_int_equal(certinfo_from_x509(x, &id), 0);
	assert_string_equal(id.subject_cn, "client-ec");
	assert_string_equal(id.spiffe_id, "spiffe://partner.example/prod/app1");
	assert_non_null(strstr(id.subject, "CN=client-ec"));
	assert_non_null(strstr(id.issuer, "Issuing"));
	assert_string_equal(id.key_alg, "EC");
	assert_int_equal(id.key_bits, 256);
	assert_string_equal(id.sig_alg, "ecdsa-with-SHA256");

	/* Serial: the BIGNUM's hex with a colon between bytes. */
	for (size_t i = 0, o = 0; bnhex[i]; i += 2) {
		if (i)
			colons[o++] = ':';
		colons[o++] = bnhex[i];
		colons[o++] = bnhex[i + 1];
	}
	assert_string_equal(id.serial_hex, colons);

	/* Issuer id: the issuing CA's subjectKeyIdentifier. */
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(issuing);
	assert_int_equal(ASN1_STRING_length(ski), CERT_ISSUER_ID_LEN);
	assert_memory_equal(id.issuer_id, ASN1_STRING_get0_data(ski), CERT_ISSUER_ID_LEN);

	/* Fingerprint: SHA-256 of the DER, and its base64url form. */
	assert_int_equal(EVP_Digest(der, (size_t)der_len, der_md, NULL, EVP_sha256(), NULL), 1);
	assert_memory_equal(id.sha256, der_md, 32);
	hex_encode(der_md, 32, md_hex, 0, 0);
	assert_string_equal(id.sha256_hex, md_hex);
	assert_int_equal(strlen(id.x5t_s256), 43);
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notAfter(x), id.not_after), 0);
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notBefore(x), id.not_before), 0);

	OPENSSL_free(der);
	OPENSSL_free(bnhex);
	BN_free(bn);
	X509_free(issuing);
	X509_free(x);
}

/* Twin: a different certificate gives a different identity. */
static void test_certinfo_client_rsa_differs(void **state)
{
	X509 *ec = load_fixture("client-ec/cert.pem");
	X509 *rsa = load_fixture("client-rsa/cert.pem");
	struct cert_identity a, b;

	(void)state;
	assert_int_equal(certinfo_from_x509(ec, &a), 0);
	assert_int_equal(certinfo_from_x509(rsa, &b), 0);
	assert_string_equal(b.key_alg, "RSA");
	assert_int_equal(b.key_bits, 2048);
	assert_string_equal(b.spiffe_id, "spiffe://partner.example/prod/app2");
	assert_memory_not_equal(a.sha256, b.sha256, 32);
	assert_string_not_equal(a.serial_hex, b.serial_hex);
	/* Same issuing CA: same issuer id. */
	assert_memory_equal(a.issuer_id, b.issuer_id, CERT_ISSUER_ID_LEN);
	X509_free(ec);
	X509_free(rsa);
}

static void test_certinfo_no_spiffe_id(void **state)
{
	X509 *x = load_fixture("server/cert.pem");
	struct cert_identity id;

	(void)state;
	assert_int_equal(certinfo_from_x509(x, &id), 0);
	assert_string_equal(id.spiffe_id, "");
	X509_free(x);
}

static void test_certinfo_sans_json(void **state)
{
	X509 *ec = load_fixture("client-ec/cert.pem");
	X509 *srv = load_fixture("server/cert.pem");
	char buf[512];
	int n;

	(void)state;
	n = certinfo_sans_json(ec, buf, sizeof(buf));
	assert_string_equal(buf, "[\"DNS:app1.partner.example\",\"URI:spiffe://partner.example/prod/app1\"]");
	assert_int_equal(n, (int)strlen(buf));
	assert_true(certinfo_sans_json(srv, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "[\"DNS:localhost\",\"IP:127.0.0.1\",\"IP:::1\"]");
	/* Every capacity short of the full length fails cleanly. */
	for (int cap = 0; cap <= n; cap++)
		assert_int_equal(certinfo_sans_json(ec, buf, (size_t)cap), -ENOSPC);
	assert_int_equal(certinfo_sans_json(ec, buf, (size_t)n + 1), n);
	X509_free(ec);
	X509_free(srv);
}

static void test_certinfo_hostile_fields_escaped(void **state)
{
	X509 *x = hostile_cert_new();
	struct cert_identity id;
	char buf[512];

	(void)state;
	assert_true(certinfo_sans_json(x, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "[" HOSTILE_DNS_JSON ",\"URI:spiffe://evil.example/x\"]");
	assert_int_equal(certinfo_from_x509(x, &id), 0);
	assert_string_equal(id.subject_cn, "x\"\001y"); /* raw here, escaped by writers */
	assert_non_null(strstr(id.subject, "O=Evil\\, Inc."));
	assert_string_equal(id.serial_hex, "12:34");
	X509_free(x);
}

/* UTF-8 names stay readable; a control byte in a name is still escaped. */
static void test_certinfo_utf8_names_readable(void **state)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	struct cert_identity id;
	EVP_PKEY *key = EVP_EC_gen("P-256");

	(void)state;
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"Soci\xc3\xa9t\xc3\xa9", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)"a\x01" "b", -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, name);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 60);
	X509_set_pubkey(x, key);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_int_equal(certinfo_from_x509(x, &id), 0);
	assert_non_null(strstr(id.subject, "O=Soci\xc3\xa9t\xc3\xa9"));
	assert_null(strchr(id.subject, '\x01'));
	assert_non_null(strstr(id.subject, "CN=a\\01b"));
	assert_string_equal(id.subject_cn, "a\x01" "b");
	X509_NAME_free(name);
	EVP_PKEY_free(key);
	X509_free(x);
}

/* A subject longer than its field is cut between two characters: "O="
 * and 508 bytes of 'a' put a two-byte "é" across the 511-byte limit of
 * cert_identity.subject. The twin: a name that fits is kept whole. */
static void test_certinfo_long_name_cut_on_character(void **state)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	struct cert_identity id;
	EVP_PKEY *key = EVP_EC_gen("P-256");
	unsigned char o[508 + 20];

	(void)state;
	memset(o, 'a', 508);
	for (int i = 0; i < 10; i++)
		memcpy(o + 508 + 2 * i, "\xc3\xa9", 2);
	/* V_ASN1_UTF8STRING: set as is, past the 64-byte limit of O. */
	X509_NAME_add_entry_by_NID(name, NID_organizationName, V_ASN1_UTF8STRING, o, sizeof(o), -1, 0);
	X509_set_subject_name(x, name);
	X509_NAME_free(name);
	name = X509_NAME_new();
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)"Z\xc3\xbcrich", -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 60);
	X509_set_pubkey(x, key);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_int_equal(certinfo_from_x509(x, &id), 0);
	assert_int_equal(strlen(id.subject), 510);
	assert_int_equal(strspn(id.subject + 2, "a"), 508);
	assert_string_equal(id.issuer, "CN=Z\xc3\xbcrich");
	X509_NAME_free(name);
	EVP_PKEY_free(key);
	X509_free(x);
}

/* A CN with an embedded NUL is never reported truncated (it would reach
 * the backend as a different, shorter name). */
static void test_certinfo_cn_with_nul_not_reported(void **state)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	struct cert_identity id;
	EVP_PKEY *key = EVP_EC_gen("P-256");

	(void)state;
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"admin\0.evil", 11, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, name);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 60);
	X509_set_pubkey(x, key);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_int_equal(certinfo_from_x509(x, &id), 0);
	assert_string_equal(id.subject_cn, "");
	assert_non_null(strstr(id.subject, "admin\\00.evil")); /* shown, escaped */
	assert_int_equal(id.serial_len, 1);                      /* never set: zero, */
	assert_string_equal(id.serial_hex, "00");                /* as DER writes it */
	X509_NAME_free(name);
	EVP_PKEY_free(key);
	X509_free(x);
}

static void test_certinfo_base64url_vectors(void **state)
{
	static const struct { const char *in; const char *out; } rfc4648[] = {
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
		{ "\xfb\xff", "-_8" },
	};
	char out[16];

	(void)state;
	for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
		int n = base64url_encode((const uint8_t *)rfc4648[i].in, strlen(rfc4648[i].in), out, sizeof(out));

		assert_int_equal(n, (int)strlen(rfc4648[i].out));
		assert_string_equal(out, rfc4648[i].out);
	}
	/* "foobar" needs 8 + NUL. */
	assert_int_equal(base64url_encode((const uint8_t *)"foobar", 6, out, 8), -ENOSPC);
	assert_int_equal(base64url_encode((const uint8_t *)"foobar", 6, out, 9), 8);
}

static void test_certinfo_hex_encode(void **state)
{
	static const uint8_t in[] = { 0x00, 0x4f, 0xa2, 0xff };
	char out[16];

	(void)state;
	hex_encode(in, sizeof(in), out, 1, ':');
	assert_string_equal(out, "00:4F:A2:FF");
	hex_encode(in, sizeof(in), out, 0, 0);
	assert_string_equal(out, "004fa2ff");
	hex_encode(in, 0, out, 1, ':');
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_certinfo_client_ec_identity),
		cmocka_unit_test(test_certinfo_client_rsa_differs),
		cmocka_unit_test(test_certinfo_no_spiffe_id),
		cmocka_unit_test(test_certinfo_sans_json),
		cmocka_unit_test(test_certinfo_hostile_fields_escaped),
		cmocka_unit_test(test_certinfo_utf8_names_readable),
		cmocka_unit_test(test_certinfo_cn_with_nul_not_reported),
		cmocka_unit_test(test_certinfo_long_name_cut_on_character),
		cmocka_unit_test(test_certinfo_base64url_vectors),
		cmocka_unit_test(test_certinfo_hex_encode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
