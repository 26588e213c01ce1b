/*
 * test_verify_policy.c: the pure partner policy (dataplane/policy/verify_policy.c)
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

#include "made_cert.h"
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
		/* SPIFFE ID rules (lib/spiffe_id.c), exact patterns too */
		{ 1, "spiffe://td/prod/app1", true }, { 1, "spiffe://Td/prod/*", false },
		{ 1, "SPIFFE://td/prod/*", false }, { 1, "spifee://td/prod/*", false },
		{ 1, "spiffe://td/prod/", false }, { 1, "spiffe://td/a%2Fb", false },
		{ 1, "spiffe://td:443/prod/*", false }, { 1, "spiffe://td/./x", false },
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
	assert_int_equal(verify_policy_check(&pol, leaf, NULL, detail, sizeof(detail)), HS_OK);
	pol.min_ec_bits = 384;
	assert_int_equal(verify_policy_check(&pol, leaf, NULL, detail, sizeof(detail)), HS_WEAK_KEY);
	assert_non_null(strstr(detail, "256"));
	partner_policy_free(&pol);

	cp.allow_cn = (struct cfg_strlist){ .v = cn_bad, .n = 1 };
	assert_int_equal(partner_policy_compile(&cp, &pol, err, sizeof(err)), 0);
	assert_int_equal(verify_policy_check(&pol, leaf, NULL, detail, sizeof(detail)), HS_POLICY_DENIED);
	partner_policy_free(&pol);
	X509_free(leaf);
}

/* ---- which names are the client (verify_identity.c) ------------------ */

/* The issue's certificate: two CNs, two SPIFFE IDs, one of them allowed. */
static const char *const acme_two_cns[] = { "O", "Acme", "CN", "admin", "CN", "svc-1", NULL };
static const char *const acme_one_cn[] = { "O", "Acme", "CN", "svc-1", NULL };
#define ACME_TWO_URIS "URI:spiffe://acme.example/admin,URI:spiffe://acme.example/prod/app1"
#define ACME_ONE_URI "URI:spiffe://acme.example/prod/app1"

static enum hs_outcome check_with(X509 *leaf, char **allow_uri, size_t n_uri, char **allow_cn,
				  size_t n_cn, enum multiple_identities multi,
				  struct verified_identity *id, char *detail, size_t len)
{
	struct cfg_partner cp = { .name = "acme", .multiple_identities = multi,
				  .allow_uri = { .v = allow_uri, .n = n_uri },
				  .allow_cn = { .v = allow_cn, .n = n_cn } };
	struct partner_policy pol;
	char err[256];
	enum hs_outcome o;

	assert_int_equal(partner_policy_compile(&cp, &pol, err, sizeof(err)), 0);
	o = verify_policy_check(&pol, leaf, id, detail, len);
	partner_policy_free(&pol);
	return o;
}

static char *acme_prod[] = { "spiffe://acme.example/prod/*" };

static void test_verify_policy_two_spiffe_ids_refused(void **state)
{
	X509 *leaf = made_cert_new(acme_one_cn, ACME_TWO_URIS, NULL);
	struct verified_identity id = { NULL, NULL };
	char detail[256];

	(void)state;
	assert_int_equal(check_with(leaf, acme_prod, 1, NULL, 0, MULTIPLE_IDENTITIES_REFUSE, &id,
				    detail, sizeof(detail)), HS_POLICY_DENIED);
	assert_non_null(strstr(detail, "2 SPIFFE IDs"));
	assert_non_null(strstr(detail, "multiple_identities = refuse"));
	assert_null(id.spiffe_id);
	assert_null(id.cn);
	X509_free(leaf);
}

static void test_verify_policy_two_cns_refused(void **state)
{
	X509 *leaf = made_cert_new(acme_two_cns, ACME_ONE_URI, NULL);
	struct verified_identity id = { NULL, NULL };
	char detail[256];

	(void)state;
	assert_int_equal(check_with(leaf, acme_prod, 1, NULL, 0, MULTIPLE_IDENTITIES_REFUSE, &id,
				    detail, sizeof(detail)), HS_POLICY_DENIED);
	assert_non_null(strstr(detail, "2 CNs"));
	assert_non_null(strstr(detail, "multiple_identities = refuse"));
	assert_null(id.spiffe_id);
	X509_free(leaf);
}

/* The twin: one URI, one CN passes and names exactly those. */
static void test_verify_policy_single_identity_reported(void **state)
{
	X509 *leaf = made_cert_new(acme_one_cn, ACME_ONE_URI, NULL);
	struct verified_identity id = { NULL, NULL };
	char detail[256];

	(void)state;
	assert_int_equal(check_with(leaf, acme_prod, 1, NULL, 0, MULTIPLE_IDENTITIES_REFUSE, &id,
				    detail, sizeof(detail)), HS_OK);
	assert_string_equal(id.spiffe_id, "spiffe://acme.example/prod/app1");
	assert_string_equal(id.cn, "svc-1");
	verified_identity_clear(&id);
	X509_free(leaf);
}

/* multiple_identities = allow: the backend is told the names that matched,
 * not the first ones; a kind with several values and no pattern of its own
 * is not reported at all. */
static void test_verify_policy_relaxed_reports_matched(void **state)
{
	X509 *leaf = made_cert_new(acme_two_cns, ACME_TWO_URIS, NULL);
	struct verified_identity id = { NULL, NULL };
	char *svc[] = { "svc-*" };
	char detail[256];

	(void)state;
	assert_int_equal(check_with(leaf, acme_prod, 1, NULL, 0, MULTIPLE_IDENTITIES_ALLOW, &id,
				    detail, sizeof(detail)), HS_OK);
	assert_string_equal(id.spiffe_id, "spiffe://acme.example/prod/app1");
	assert_null(id.cn); /* admin or svc-1? nothing chose: neither */
	assert_int_equal(check_with(leaf, acme_prod, 1, svc, 1, MULTIPLE_IDENTITIES_ALLOW, &id,
				    detail, sizeof(detail)), HS_OK);
	assert_string_equal(id.spiffe_id, "spiffe://acme.example/prod/app1");
	assert_string_equal(id.cn, "svc-1");
	verified_identity_clear(&id);
	X509_free(leaf);
}

/* Admitted through allow_cn while its SPIFFE ID fails allow_uri: the
 * SPIFFE ID the allow-list refused is not reported; the CN is. */
static void test_verify_policy_refused_kind_not_reported(void **state)
{
	static const char *const subject[] = { "CN", "client-a", NULL };
	X509 *leaf = made_cert_new(subject, "URI:spiffe://acme.example/dev/app9", NULL);
	struct verified_identity id = { NULL, NULL };
	char *cn[] = { "client-*" };
	char detail[256];

	(void)state;
	assert_int_equal(check_with(leaf, acme_prod, 1, cn, 1, MULTIPLE_IDENTITIES_REFUSE, &id,
				    detail, sizeof(detail)), HS_OK);
	assert_null(id.spiffe_id);
	assert_string_equal(id.cn, "client-a");
	verified_identity_clear(&id);
	/* Twin: without allow_cn the same certificate is refused. */
	assert_int_equal(check_with(leaf, acme_prod, 1, NULL, 0, MULTIPLE_IDENTITIES_REFUSE, &id,
				    detail, sizeof(detail)), HS_POLICY_DENIED);
	X509_free(leaf);
}

/* A spiffe URI that is not a SPIFFE ID never matches, and the refusal says
 * which rule it breaks. */
static void test_verify_policy_invalid_spiffe_id_never_matches(void **state)
{
	X509 *bad = made_cert_new(acme_one_cn, "URI:spiffe://Acme.Example/prod/app1", NULL);
	struct verified_identity id = { NULL, NULL };
	char *any_case[] = { "spiffe://acme.example/prod/*" };
	char detail[256];

	(void)state;
	assert_int_equal(check_with(bad, any_case, 1, NULL, 0, MULTIPLE_IDENTITIES_REFUSE, &id,
				    detail, sizeof(detail)), HS_POLICY_DENIED);
	assert_non_null(strstr(detail, "is not a SPIFFE ID: the trust domain must be lower case"));
	X509_free(bad);
}

/* RFC 5280 serials: zero and negative refused (their text would collide
 * with a positive serial's), a positive one whose DER has a leading zero
 * octet passes. */
static void test_verify_policy_serial_rules(void **state)
{
	static const struct { const char *serial; enum hs_outcome o; const char *why; } rows[] = {
		{ "0", HS_POLICY_DENIED, "serial number is zero (DER 00)" },
		{ "-2003", HS_POLICY_DENIED, "serial number is negative (DER DF:FD)" },
		{ "-1", HS_POLICY_DENIED, "serial number is negative (DER FF)" },
		{ "2003", HS_OK, "ok" },
		{ "96ED7BC9", HS_OK, "ok" },
		{ "7F" "00112233445566778899AABBCCDDEEFF001122", HS_OK, "ok" },          /* 20 octets */
		{ "80" "00112233445566778899AABBCCDDEEFF001122", HS_POLICY_DENIED,     /* 21 in DER */
		  "longer than 20 octets" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		X509 *leaf = made_cert_new(acme_one_cn, ACME_ONE_URI, rows[i].serial);
		struct verified_identity id = { NULL, NULL };
		char detail[256];
		enum hs_outcome o = check_with(leaf, acme_prod, 1, NULL, 0, MULTIPLE_IDENTITIES_REFUSE,
					       &id, detail, sizeof(detail));

		if (o != rows[i].o || !strstr(detail, rows[i].why))
			fail_msg("serial %s: %s '%s', expected %s '%s'", rows[i].serial, hs_outcome_name(o),
				 detail, hs_outcome_name(rows[i].o), rows[i].why);
		verified_identity_clear(&id);
		X509_free(leaf);
	}
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
		cmocka_unit_test(test_verify_policy_two_spiffe_ids_refused),
		cmocka_unit_test(test_verify_policy_two_cns_refused),
		cmocka_unit_test(test_verify_policy_single_identity_reported),
		cmocka_unit_test(test_verify_policy_relaxed_reports_matched),
		cmocka_unit_test(test_verify_policy_refused_kind_not_reported),
		cmocka_unit_test(test_verify_policy_invalid_spiffe_id_never_matches),
		cmocka_unit_test(test_verify_policy_serial_rules),
		cmocka_unit_test(test_verify_policy_outcome_map),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
