/*
 * test_cert_serial.c: serial numbers as DER INTEGER content octets
 * (lib/cert_serial.c): the text every output prints, every input form an
 * operator may type, and the sign that must never be lost.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <string.h>

#include "cert_serial.h"

/* The serial of BN_hex2bn's text, through an ASN1_INTEGER as a
 * certificate holds it. */
static struct cert_serial from_bn_hex(const char *hex)
{
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai;
	struct cert_serial s;

	assert_true(BN_hex2bn(&bn, hex) > 0);
	ai = BN_to_ASN1_INTEGER(bn, NULL);
	assert_non_null(ai);
	assert_int_equal(cert_serial_from_asn1(ai, &s), 0);
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return s;
}

static void test_cert_serial_format_is_der_content(void **state)
{
	static const struct { const char *value, *text; int sign; } rows[] = {
		{ "96ED7B", "00:96:ED:7B", 1 },   /* high bit set: DER's 00 kept */
		{ "96ED7", "09:6E:D7", 1 },       /* leading zero nibble kept */
		{ "2003", "20:03", 1 },
		{ "-2003", "DF:FD", -1 },         /* never "20:03" */
		{ "-80", "80", -1 },
		{ "-81", "FF:7F", -1 },
		{ "0", "00", 0 },
		{ "7F", "7F", 1 },
		{ "80", "00:80", 1 },
	};
	char text[CERT_SERIAL_TEXT_MAX];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct cert_serial s = from_bn_hex(rows[i].value);

		cert_serial_format(&s, text, sizeof(text));
		if (strcmp(text, rows[i].text) != 0 || cert_serial_sign(&s) != rows[i].sign)
			fail_msg("%s: '%s' sign %d, expected '%s' sign %d", rows[i].value, text,
				 cert_serial_sign(&s), rows[i].text, rows[i].sign);
	}
}

/* Every input form of one value is that value; printed text parses back. */
static void test_cert_serial_parse_accepts_every_form(void **state)
{
	static const char *const forms[] = {
		"00:96:ED:7B", "96:ED:7B", "96ED7B", "96ed7b", "0096ed7b", "0x96ED7B",
		"000096:ed:7B", "9:6E:D7:B" /* colons anywhere */,
	};
	struct cert_serial want = from_bn_hex("96ED7B"), got;
	char text[CERT_SERIAL_TEXT_MAX];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(forms); i++) {
		assert_int_equal(cert_serial_parse(forms[i], &got), 0);
		if (!cert_serial_equal(&got, &want))
			fail_msg("'%s' parsed to another serial", forms[i]);
	}
	cert_serial_format(&want, text, sizeof(text));
	assert_int_equal(cert_serial_parse(text, &got), 0);
	assert_true(cert_serial_equal(&got, &want));
	/* "00:11:22" is 0x1122, whose one spelling is "11:22". */
	assert_int_equal(cert_serial_parse("00:11:22", &got), 0);
	cert_serial_format(&got, text, sizeof(text));
	assert_string_equal(text, "11:22");
	/* A sign makes another serial: -0x2003 is not 0x2003. */
	struct cert_serial neg, pos;
	assert_int_equal(cert_serial_parse("-20:03", &neg), 0);
	assert_int_equal(cert_serial_parse("20:03", &pos), 0);
	assert_false(cert_serial_equal(&neg, &pos));
	assert_true(cert_serial_equal(&neg, &(struct cert_serial){ .b = { 0xDF, 0xFD }, .len = 2 }));
}

static void test_cert_serial_parse_rejects_garbage(void **state)
{
	static const char *const bad[] = {
		"", ":", "zz", "12 34", "0x", "12-34", "--12", "-", "0x-12", "x12",
		":12", "12:", "12::34", "-:12",
		/* 33 octets: more than any certificate is held with */
		"01000000000000000000000000000000000000000000000000000000000000000000",
	};
	struct cert_serial s;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (cert_serial_parse(bad[i], &s) != -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
}

static void test_cert_serial_rfc5280_problems(void **state)
{
	struct cert_serial s;

	(void)state;
	s = from_bn_hex("0");
	assert_string_equal(cert_serial_problem(&s), "serial number is zero");
	s = from_bn_hex("-2003");
	assert_string_equal(cert_serial_problem(&s), "serial number is negative");
	s = from_bn_hex("8000112233445566778899AABBCCDDEEFF001122"); /* 21 DER octets */
	assert_string_equal(cert_serial_problem(&s), "serial number is longer than 20 octets");
	s = from_bn_hex("7F00112233445566778899AABBCCDDEEFF001122"); /* 20 */
	assert_null(cert_serial_problem(&s));
	s = from_bn_hex("96ED7B");
	assert_null(cert_serial_problem(&s));
}

static void test_cert_serial_asn1_round_trip(void **state)
{
	static const char *const values[] = { "1", "96ED7B", "-2003", "0", "7F00112233445566778899AABBCCDDEEFF001122" };

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(values); i++) {
		struct cert_serial s = from_bn_hex(values[i]), back;
		ASN1_INTEGER *ai = cert_serial_to_asn1(&s);

		assert_non_null(ai);
		assert_int_equal(cert_serial_from_asn1(ai, &back), 0);
		assert_true(cert_serial_equal(&s, &back));
		ASN1_INTEGER_free(ai);
	}
}

/* A short buffer gets whole octets, NUL-terminated. */
static void test_cert_serial_format_truncates_on_octets(void **state)
{
	struct cert_serial s = from_bn_hex("112233");
	char small[7];

	(void)state;
	cert_serial_format(&s, small, sizeof(small));
	assert_string_equal(small, "11:22");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cert_serial_format_is_der_content),
		cmocka_unit_test(test_cert_serial_parse_accepts_every_form),
		cmocka_unit_test(test_cert_serial_parse_rejects_garbage),
		cmocka_unit_test(test_cert_serial_rfc5280_problems),
		cmocka_unit_test(test_cert_serial_asn1_round_trip),
		cmocka_unit_test(test_cert_serial_format_truncates_on_octets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
