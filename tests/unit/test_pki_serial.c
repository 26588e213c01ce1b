/*
 * test_pki_serial.c: serial numbers as mtlsctl prints and reads them
 * (ctl/pki_serial.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "pki_serial.h"

static void test_pki_serial_parse_with_colons(void **state)
{
	struct pki_serial s;
	assert_int_equal(pki_serial_parse("4F:A2:09", &s), 0);
	assert_int_equal(s.len, 3);
	assert_memory_equal(s.b, "\x4f\xa2\x09", 3);
}

static void test_pki_serial_parse_rejects_bad_colons(void **state)
{
	struct pki_serial s;
	assert_int_equal(pki_serial_parse("4F:A2:", &s), -EINVAL);
	assert_int_equal(pki_serial_parse(":4F", &s), -EINVAL);
	assert_int_equal(pki_serial_parse("4F::A2", &s), -EINVAL);
	assert_int_equal(pki_serial_parse("4F:G2", &s), -EINVAL);
	/* The one reader (lib/cert_serial.c): a colon anywhere between digits. */
	assert_int_equal(pki_serial_parse("4FA:2", &s), 0);
	assert_memory_equal(s.b, "\x4f\xa2", 2);
}

static void test_pki_serial_parse_plain_hex_any_case(void **state)
{
	struct pki_serial a, b;
	assert_int_equal(pki_serial_parse("4fa209", &a), 0);
	assert_int_equal(pki_serial_parse("4F:A2:09", &b), 0);
	assert_true(pki_serial_equal(&a, &b));
	/* Odd digit count: an implied leading zero. */
	assert_int_equal(pki_serial_parse("abc", &a), 0);
	assert_int_equal(a.len, 2);
	assert_memory_equal(a.b, "\x0a\xbc", 2);
}

static void test_pki_serial_parse_rejects_garbage(void **state)
{
	struct pki_serial s;
	assert_int_equal(pki_serial_parse("", &s), -EINVAL);
	assert_int_equal(pki_serial_parse("0xg4f", &s), -EINVAL);
	assert_int_equal(pki_serial_parse("4f a2", &s), -EINVAL);
	/* Parsed, but not a serial RFC 5280 allows: mtlsctl never uses it. */
	assert_int_equal(pki_serial_parse("-4f", &s), -EINVAL);
}

/* A high-bit serial is DER content with its sign octet, as mtlsd prints it. */
static void test_pki_serial_high_bit_keeps_sign_octet(void **state)
{
	struct pki_serial s;
	char text[PKI_SERIAL_HEX_MAX + 1];
	assert_int_equal(pki_serial_parse("96:ED", &s), 0);
	assert_int_equal(s.len, 3);
	pki_serial_format(&s, text, sizeof(text));
	assert_string_equal(text, "00:96:ED");
	assert_int_equal(pki_serial_parse("0x96ed", &s), 0);
	assert_int_equal(s.len, 3);
}

static void test_pki_serial_parse_drops_leading_zeros(void **state)
{
	struct pki_serial s;
	assert_int_equal(pki_serial_parse("00:00:7F", &s), 0);
	assert_int_equal(s.len, 1);
	assert_int_equal(s.b[0], 0x7f);
}

static void test_pki_serial_parse_rejects_zero_and_too_long(void **state)
{
	struct pki_serial s;
	assert_int_equal(pki_serial_parse("00:00", &s), -EINVAL);
	/* 21 octets: one more than RFC 5280 allows. */
	assert_int_equal(pki_serial_parse("010203040506070809101112131415161718192021", &s), -EINVAL);
	assert_int_equal(pki_serial_parse("0102030405060708091011121314151617181920", &s), 0);
}

static void test_pki_serial_format_round_trip(void **state)
{
	struct pki_serial s, back;
	char text[PKI_SERIAL_HEX_MAX + 1];
	for (int i = 0; i < 64; i++) {
		assert_int_equal(pki_serial_random(&s), 0);
		pki_serial_format(&s, text, sizeof(text));
		assert_int_equal(strlen(text), s.len * 3 - 1);
		assert_int_equal(pki_serial_parse(text, &back), 0);
		assert_true(pki_serial_equal(&s, &back));
	}
}

static void test_pki_serial_format_truncates_safely(void **state)
{
	struct pki_serial s;
	char small[6];
	assert_int_equal(pki_serial_parse("4F:A2:09", &s), 0);
	pki_serial_format(&s, small, sizeof(small));
	assert_string_equal(small, "4F:A2");
}

static void test_pki_serial_random_is_positive_16_octets(void **state)
{
	struct pki_serial a, b;
	assert_int_equal(pki_serial_random(&a), 0);
	assert_int_equal(pki_serial_random(&b), 0);
	assert_int_equal(a.len, 16);
	assert_true(a.b[0] != 0 && a.b[0] < 0x80);
	assert_false(pki_serial_equal(&a, &b));
}

static void test_pki_serial_asn1_round_trip(void **state)
{
	struct pki_serial s, back;
	assert_int_equal(pki_serial_random(&s), 0);
	ASN1_INTEGER *ai = pki_serial_to_asn1(&s);
	assert_non_null(ai);
	assert_int_equal(pki_serial_from_asn1(ai, &back), 0);
	assert_true(pki_serial_equal(&s, &back));
	ASN1_INTEGER_free(ai);
}

static void test_pki_serial_asn1_rejects_negative(void **state)
{
	struct pki_serial back;
	ASN1_INTEGER *ai = ASN1_INTEGER_new();
	assert_int_equal(ASN1_INTEGER_set(ai, -5), 1);
	assert_int_equal(pki_serial_from_asn1(ai, &back), -EINVAL);
	ASN1_INTEGER_free(ai);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pki_serial_parse_with_colons),
		cmocka_unit_test(test_pki_serial_parse_rejects_bad_colons),
		cmocka_unit_test(test_pki_serial_parse_plain_hex_any_case),
		cmocka_unit_test(test_pki_serial_parse_rejects_garbage),
		cmocka_unit_test(test_pki_serial_high_bit_keeps_sign_octet),
		cmocka_unit_test(test_pki_serial_parse_drops_leading_zeros),
		cmocka_unit_test(test_pki_serial_parse_rejects_zero_and_too_long),
		cmocka_unit_test(test_pki_serial_format_round_trip),
		cmocka_unit_test(test_pki_serial_format_truncates_safely),
		cmocka_unit_test(test_pki_serial_random_is_positive_16_octets),
		cmocka_unit_test(test_pki_serial_asn1_round_trip),
		cmocka_unit_test(test_pki_serial_asn1_rejects_negative),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
