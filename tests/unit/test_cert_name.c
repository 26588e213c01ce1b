/*
 * test_cert_name.c: distinguished names (lib/cert_name.c): the one printed
 * form, both typed forms read back to the same name, compared as X.509
 * compares names, and typed garbage refused with a reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cert_name.h"

/* DER order: O=partner, then CN=partner Issuing CA (as the fixtures are). */
static X509_NAME *issuing_name(void)
{
	X509_NAME *n = X509_NAME_new();

	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"partner", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"partner Issuing CA", -1, -1, 0);
	return n;
}

static void test_cert_name_format_rfc2253(void **state)
{
	X509_NAME *n = issuing_name();
	char out[128], small[12];

	(void)state;
	assert_int_equal(cert_name_format(n, out, sizeof(out)), 0);
	assert_string_equal(out, "CN=partner Issuing CA,O=partner");
	X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_UTF8, (const unsigned char *)"Soci\xc3\xa9t\xc3\xa9, a", -1, -1, 0);
	assert_int_equal(cert_name_format(n, out, sizeof(out)), 0);
	assert_string_equal(out, "OU=Soci\xc3\xa9t\xc3\xa9\\, a,CN=partner Issuing CA,O=partner");
	/* Cut short: never inside the two bytes of 'é'. */
	assert_int_equal(cert_name_format(n, small, sizeof(small)), 0);
	assert_string_equal(small, "OU=Soci\xc3\xa9t");
	assert_int_equal(cert_name_format(n, small, 9), 0);
	assert_string_equal(small, "OU=Soci"); /* "OU=Soci\xc3" would be invalid UTF-8 */
	X509_NAME_free(n);
}

static void test_cert_name_parse_both_forms(void **state)
{
	static const char *const forms[] = {
		"CN=partner Issuing CA,O=partner",
		"CN=partner Issuing CA, O=partner",
		"cn=PARTNER issuing ca;o=Partner",              /* X.509 comparison: case folded */
		"/O=partner/CN=partner Issuing CA",             /* openssl's one-line form */
		"CN=\"partner Issuing CA\",O=partner",
		"CN=partner\\20Issuing CA,O=partner",
		"2.5.4.3=partner Issuing CA,2.5.4.10=partner",
		"CN=partner   Issuing CA,O=partner",            /* blanks folded */
	};
	X509_NAME *want = issuing_name();
	char why[160];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(forms); i++) {
		X509_NAME *got = cert_name_parse(forms[i], why, sizeof(why));

		if (!got)
			fail_msg("'%s' refused: %s", forms[i], why);
		if (!cert_name_equal(got, want))
			fail_msg("'%s' is not the issuing CA's name", forms[i]);
		X509_NAME_free(got);
	}
	X509_NAME_free(want);
}

/* Twins: other names are other names, order and multi-valued RDNs count. */
static void test_cert_name_parse_other_names_differ(void **state)
{
	static const char *const others[] = {
		"O=partner,CN=partner Issuing CA",              /* RDNs reversed */
		"/CN=partner Issuing CA/O=partner",
		"CN=partner Issuing CA",
		"CN=partner Issuing CA+O=partner",              /* one RDN of two */
		"CN=partner Issuing CA,O=partner,C=DE",
		"CN=partner Root CA,O=partner",
	};
	X509_NAME *want = issuing_name();
	char why[160];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(others); i++) {
		X509_NAME *got = cert_name_parse(others[i], why, sizeof(why));

		if (!got)
			fail_msg("'%s' refused: %s", others[i], why);
		if (cert_name_equal(got, want))
			fail_msg("'%s' compared equal to the issuing CA's name", others[i]);
		X509_NAME_free(got);
	}
	X509_NAME_free(want);
}

static void test_cert_name_parse_refuses_garbage(void **state)
{
	static const struct { const char *text, *why; } rows[] = {
		{ "", "expected TYPE=value" },
		{ "partner", "expected TYPE=value" },
		{ "XX=1", "unknown attribute type 'XX'" },
		{ "CN=a,", "ends with a separator" },
		{ "CN=\"a", "not closed" },
		{ "CN=a\\", "ends the text" },
		{ "CN=#0403616263", "hex-encoded" },
		{ "CN=a\\00b", "NUL byte" },
		{ "C=Germany", "not a valid value" },
		{ "CN=\xff", "not a valid value" },
	};
	char why[160];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		X509_NAME *got = cert_name_parse(rows[i].text, why, sizeof(why));

		if (got) {
			X509_NAME_free(got);
			fail_msg("'%s' accepted", rows[i].text);
		}
		if (!strstr(why, rows[i].why))
			fail_msg("'%s': reason '%s' lacks '%s'", rows[i].text, why, rows[i].why);
	}
}

/* What the formatter prints, the parser reads back as the same name,
 * specials and UTF-8 included. */
static void test_cert_name_round_trip(void **state)
{
	X509_NAME *n = X509_NAME_new(), *back;
	char text[256], why[160];

	(void)state;
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)"Evil, Inc.+\"x\"", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_UTF8, (const unsigned char *)" lead", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"Soci\xc3\xa9t\xc3\xa9", -1, -1, 0);
	assert_int_equal(cert_name_format(n, text, sizeof(text)), 0);
	back = cert_name_parse(text, why, sizeof(why));
	if (!back)
		fail_msg("'%s' refused: %s", text, why);
	assert_true(cert_name_equal(back, n));
	X509_NAME_free(back);
	X509_NAME_free(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cert_name_format_rfc2253),
		cmocka_unit_test(test_cert_name_parse_both_forms),
		cmocka_unit_test(test_cert_name_parse_other_names_differ),
		cmocka_unit_test(test_cert_name_parse_refuses_garbage),
		cmocka_unit_test(test_cert_name_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
