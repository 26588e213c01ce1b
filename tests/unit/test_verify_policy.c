/*
 * test_verify_policy.c: the pure partner policy (dataplane/verify_policy.c)
 * without any handshake: allow-list pattern tables (every table has
 * matching and refused rows), pattern compilation errors, the X509_V_ERR
 * to outcome map, and verify_policy_check on fixture leaves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify.h"

static X509 *load_leaf(const char *name)
{
	const char *dir = getenv("MTLS_FIXTURES");
	char path[1024];
	FILE *f;
	X509 *x;

	if (!dir) {
		fprintf(stderr, "MTLS_FIXTURES is not set (run through meson test)\n");
		exit(77);
	}
	snprintf(path, sizeof(path), "%s/%s/cert.pem", dir, name);
	f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open fixture %s", path);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

struct match_row {
	const char *pattern, *value;
	bool match;
};

static void run_rows(const struct match_row *rows, size_t n, bool (*fn)(const char *, const char *))
{
	for (size_t i = 0; i < n; i++)
		if (fn(rows[i].pattern, rows[i].value) != rows[i].match)
			fail_msg("'%s' vs '%s': expected %s", rows[i].pattern, rows[i].value,
				 rows[i].match ? "match" : "no match");
}

static void test_verify_policy_match_dns_table(void **state)
{
	static const struct match_row rows[] = {
		{ "*.a.example", "x.a.example", true },
		{ "*.a.example", "X.A.Example", true },
		{ "*.a.example", "a.example", false },
		{ "*.a.example", "y.x.a.example", false },
		{ "*.a.example", ".a.example", false },
		{ "*.a.example", "*.a.example", false },
		{ "*.a.example", "x.a.example.evil", false },
		{ "app1.partner.example", "APP1.partner.example", true },
		{ "app1.partner.example", "app2.partner.example", false },
		{ "a.example", "a.example.", false },
		{ "", "a.example", false },
	};

	(void)state;
	run_rows(rows, ARRAY_SIZE(rows), verify_match_dns);
}

static void test_verify_policy_match_uri_table(void **state)
{
	static const struct match_row rows[] = {
		{ "spiffe://partner.example/prod/*", "spiffe://partner.example/prod/app1", true },
		{ "spiffe://partner.example/prod/*", "spiffe://partner.example/prod/app1/x", false },
		{ "spiffe://partner.example/prod/*", "spiffe://partner.example/prod/", false },
		{ "spiffe://partner.example/prod/*", "spiffe://partner.example/prod", false },
		{ "spiffe://partner.example/prod/*", "spiffe://partner.example/production/app1", false },
		{ "spiffe://partner.example/prod/*", "spiffe://evil.example/prod/app1", false },
		{ "spiffe://partner.example/prod/*", "spiffe://partner.example.evil/prod/app1", false },
		{ "spiffe://partner.example/prod/*", "spiffe://partner.example:443/prod/app1", false },
		{ "spiffe://partner.example/prod/*", "SPIFFE://partner.example/prod/app1", false },
		{ "spiffe://partner.example/prod/*", "spiffe://partner.example/prod/..", false },
		{ "spiffe://partner.example/prod/*", "spiffe://partner.example/prod/app1?x=1", false },
		{ "spiffe://partner.example/prod/**", "spiffe://partner.example/prod/a", true },
		{ "spiffe://partner.example/prod/**", "spiffe://partner.example/prod/a/b/c", true },
		{ "spiffe://partner.example/prod/**", "spiffe://partner.example/prod", false },
		{ "spiffe://partner.example/prod/**", "spiffe://partner.example/prod/a/../../admin", false },
		{ "spiffe://partner.example/prod/**", "spiffe://partner.example/prod//a", false },
		{ "spiffe://partner.example/*/app1", "spiffe://partner.example/dev/app1", true },
		{ "spiffe://partner.example/*/app1", "spiffe://partner.example/dev/app2", false },
		{ "spiffe://partner.example/prod/app*", "spiffe://partner.example/prod/app7", true },
		{ "spiffe://partner.example/prod/app*", "spiffe://partner.example/prod/web7", false },
		{ "spiffe://partner.example/prod/app1", "spiffe://partner.example/prod/app1", true },
		{ "spiffe://partner.example/prod/app1", "spiffe://partner.example/prod/app1/", false },
	};

	(void)state;
	run_rows(rows, ARRAY_SIZE(rows), verify_match_uri);
}

static void test_verify_policy_match_glob_table(void **state)
{
	static const struct match_row rows[] = {
		{ "client-*", "client-ec", true },
		{ "client-*", "Client-ec", false },
		{ "Payments", "Payments", true },
		{ "Payments", "payments", false },
		{ "a*c", "abbbc", true },
		{ "a*c", "abbbd", false },
		{ "*-prod-*", "eu-prod-7", true },
		{ "*-prod-*", "eu-dev-7", false },
	};

	(void)state;
	run_rows(rows, ARRAY_SIZE(rows), verify_match_glob);
}

static void test_verify_policy_compile_rejects_bad_patterns(void **state)
{
	static const struct { int key; const char *pattern; bool ok; } rows[] = {
		{ 0, "*.a.example", true }, { 0, "app1.partner.example", true },
		{ 0, "", false }, { 0, "*.com", false }, { 0, "a.*.example", false },
		{ 0, "*a.example", false }, { 0, "a..example", false }, { 0, "a.example.", false },
		{ 1, "spiffe://td/*", true }, { 1, "spiffe://td/prod/**", true }, { 1, "urn:x:y", true },
		{ 1, "spiffe://*/prod", false }, { 1, "spiffe://td/prod/**/x", false },
		{ 1, "spiffe://td/prod/a**", false }, { 1, "spiffe://td/prod/*?x", false },
		{ 1, "*", false }, { 1, "spiffe://td//*", false }, { 1, "", false },
		{ 2, "client-*", true }, { 2, "", false }, { 2, "a\001", false },
	};
	static const char *const keys[] = { "allow_dns", "allow_uri", "allow_cn" };

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct cfg_partner cp = { .name = "t" };
		struct partner_policy pol;
		char err[256] = "";
		struct cfg_strlist *l = rows[i].key == 0 ? &cp.allow_dns
				      : rows[i].key == 1 ? &cp.allow_uri : &cp.allow_cn;
		char *v[1] = { (char *)rows[i].pattern };
		int rc;

		*l = (struct cfg_strlist){ .v = v, .n = 1 };
		rc = partner_policy_compile(&cp, &pol, err, sizeof(err));
		if (rows[i].ok) {
			if (rc != 0)
				fail_msg("'%s' refused: %s", rows[i].pattern, err);
			assert_false(pol.any_allowed);
			partner_policy_free(&pol);
		} else {
			if (rc != -EINVAL)
				fail_msg("'%s' accepted for %s", rows[i].pattern, keys[rows[i].key]);
			char want[64];
			snprintf(want, sizeof(want), "key '%s': pattern '", keys[rows[i].key]);
			assert_non_null(strstr(err, want));
		}
	}
}

static void test_verify_policy_no_allow_keys_means_any(void **state)
{
	struct cfg_partner cp = { .name = "t" };
	struct partner_policy pol;
	char err[256];

	(void)state;
	assert_int_equal(partner_policy_compile(&cp, &pol, err, sizeof(err)), 0);
	assert_true(pol.any_allowed);
	assert_int_equal(pol.min_rsa_bits, 2048);
	assert_int_equal(pol.min_ec_bits, 256);
	partner_policy_free(&pol);
}


/* The policy alone, on fixture leaves: CN allow-list and key minimum. */
static void test_verify_policy_policy_check_cn_and_key(void **state)
{
	X509 *leaf = load_leaf("client-ec");
	char *cn_ok[1] = { "client-*" }, *cn_bad[1] = { "client-rsa" };
	struct cfg_partner cp = { .name = "t", .allow_cn = { .v = cn_ok, .n = 1 } };
	struct partner_policy pol;
	char err[256], detail[256];

	(void)state;
	assert_int_equal(partner_policy_compile(&cp, &pol, err, sizeof(err)), 0);
	assert_int_equal(verify_policy_check(&pol, leaf, detail, sizeof(detail)), HS_OK);
	pol.min_ec_bits = 384;
	assert_int_equal(verify_policy_check(&pol, leaf, detail, sizeof(detail)), HS_WEAK_KEY);
	assert_non_null(strstr(detail, "256"));
	partner_policy_free(&pol);

	cp.allow_cn = (struct cfg_strlist){ .v = cn_bad, .n = 1 };
	assert_int_equal(partner_policy_compile(&cp, &pol, err, sizeof(err)), 0);
	assert_int_equal(verify_policy_check(&pol, leaf, detail, sizeof(detail)), HS_POLICY_DENIED);
	partner_policy_free(&pol);
	X509_free(leaf);
}

static void test_verify_policy_outcome_map(void **state)
{
	static const struct { int err; enum hs_outcome o; } rows[] = {
		{ X509_V_OK, HS_OK },
		{ X509_V_ERR_CERT_HAS_EXPIRED, HS_EXPIRED },
		{ X509_V_ERR_CERT_NOT_YET_VALID, HS_NOT_YET_VALID },
		{ X509_V_ERR_CERT_REVOKED, HS_REVOKED },
		{ X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, HS_UNKNOWN_CA },
		{ X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, HS_UNKNOWN_CA },
		{ X509_V_ERR_CERT_SIGNATURE_FAILURE, HS_BAD_SIGNATURE },
		{ X509_V_ERR_INVALID_PURPOSE, HS_BAD_EKU },
		{ X509_V_ERR_CERT_CHAIN_TOO_LONG, HS_CHAIN_TOO_DEEP },
		{ X509_V_ERR_PATH_LENGTH_EXCEEDED, HS_CHAIN_TOO_DEEP },
		{ X509_V_ERR_EE_KEY_TOO_SMALL, HS_WEAK_KEY },
		{ X509_V_ERR_CA_KEY_TOO_SMALL, HS_WEAK_KEY },
		{ X509_V_ERR_UNABLE_TO_GET_CRL, HS_CRL_UNAVAILABLE },
		{ X509_V_ERR_CRL_HAS_EXPIRED, HS_CRL_UNAVAILABLE },
		{ X509_V_ERR_OUT_OF_MEM, HS_OTHER },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
		if (verify_outcome_from_x509(rows[i].err) != rows[i].o)
			fail_msg("X509_V_ERR %d -> %s, expected %s", rows[i].err,
				 hs_outcome_name(verify_outcome_from_x509(rows[i].err)),
				 hs_outcome_name(rows[i].o));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_policy_match_dns_table),
		cmocka_unit_test(test_verify_policy_match_uri_table),
		cmocka_unit_test(test_verify_policy_match_glob_table),
		cmocka_unit_test(test_verify_policy_compile_rejects_bad_patterns),
		cmocka_unit_test(test_verify_policy_no_allow_keys_means_any),
		cmocka_unit_test(test_verify_policy_policy_check_cn_and_key),
		cmocka_unit_test(test_verify_policy_outcome_map),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
