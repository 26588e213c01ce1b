/*
 * test_proxy_v2.c: pp2_encode byte for byte.
 *
 * The expected headers are written out by hand from the PROXY protocol
 * spec (and docs/proxy-protocol.md), field by field, not captured from the
 * encoder. The independent Python decoder (tests/pp2_decode.py) checks the
 * same samples in the pp2_decode test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include "pp2_sample.h"

/* Hex with spaces/newlines ignored -> bytes. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;

	while (*hex) {
		unsigned v;

		if (isspace((unsigned char)*hex)) {
			hex++;
			continue;
		}
		assert_int_equal(sscanf(hex, "%2x", &v), 1);
		assert_true(n < cap);
		out[n++] = (uint8_t)v;
		hex += 2;
	}
	return n;
}

static void assert_encodes_to(const struct pp2_info *info, const char *hex)
{
	uint8_t want[1024], got[1024];
	size_t want_len = unhex(hex, want, sizeof(want));
	int n = pp2_encode(info, got, sizeof(got));

	assert_int_equal(n, (int)want_len);
	for (size_t i = 0; i < want_len; i++)
		if (got[i] != want[i])
			fail_msg("byte %zu: got %02x, expected %02x", i, got[i], want[i]);
}

static const char v4_expected[] =
	"0d0a0d0a000d0a515549540a" /* signature */
	"21"                       /* version 2, PROXY */
	"11"                       /* TCP over IPv4 */
	"00f7"                     /* 247 bytes follow */
	"c000020a c6336401 c4ec 20fb" /* 192.0.2.10 198.51.100.1 50412 8443 */
	"01 0002 6832"             /* ALPN "h2" */
	"02 000b 6170692e6578616d706c65" /* AUTHORITY "api.example" */
	"20 0050 07 00000000"      /* SSL, 80 bytes: client SSL|CERT_CONN|CERT_SESS, verify 0 */
	"21 0007 544c5376312e33"   /* VERSION "TLSv1.3" */
	"22 0009 636c69656e742d6563" /* CN "client-ec" */
	"23 0016 544c535f4145535f3132385f47434d5f534841323536" /* CIPHER */
	"24 0011 65636473612d776974682d534841323536" /* SIG_ALG "ecdsa-with-SHA256" */
	"25 0005 4543323536"       /* KEY_ALG "EC256" */
	"e0 0082"                  /* application TLV, 130 bytes */
	"01 0004 61636d65"         /* partner "acme" */
	"02 0005 30313a3032"       /* serial "01:02" */
	"03 0020 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	"04 002b 41414543417751464267634943516f4c4441304f4478415245684d554652595847426b6147787764486838"
	"05 001f 7370696666653a2f2f61636d652e6578616d706c652f70726f642f61707031";

static void test_proxy_v2_v4_byte_exact(void **state)
{
	struct pp2_sample s;

	(void)state;
	pp2_sample_v4(&s);
	assert_encodes_to(&s.info, v4_expected);
}

/* Twin: one changed input changes the bytes (the comparison can fail). */
static void test_proxy_v2_v4_other_port_differs(void **state)
{
	struct pp2_sample s;
	uint8_t want[1024], got[1024];

	(void)state;
	pp2_sample_v4(&s);
	((struct sockaddr_in *)&s.src)->sin_port = htons(50413);
	size_t want_len = unhex(v4_expected, want, sizeof(want));
	assert_int_equal(pp2_encode(&s.info, got, sizeof(got)), (int)want_len);
	assert_memory_not_equal(got, want, want_len);
	assert_int_equal(got[24], 0xc4);
	assert_int_equal(got[25], 0xed);
}

static void test_proxy_v2_v6_byte_exact(void **state)
{
	struct pp2_sample s;

	(void)state;
	pp2_sample_v6(&s);
	assert_encodes_to(&s.info,
		"0d0a0d0a000d0a515549540a 21 21"
		"0056"                                 /* 36 + 50 */
		"20010db8000000000000000000000001"
		"20010db8000000000000000000000002"
		"c4ec 20fb"
		"20 002f 05 00000000"                  /* SSL|CERT_SESS (resumed) */
		"21 0007 544c5376312e32"               /* "TLSv1.2" */
		"23 001d 45434448452d45434453412d4145533132382d47434d2d534841323536");
}

static void test_proxy_v2_unix_is_unspec(void **state)
{
	struct pp2_sample s;
	uint8_t buf[1024];
	int n;

	(void)state;
	pp2_sample_unix(&s);
	n = pp2_encode(&s.info, buf, sizeof(buf));
	assert_true(n > 16);
	assert_int_equal(buf[13], 0x00);                   /* UNSPEC */
	assert_int_equal((buf[14] << 8 | buf[15]), n - 16); /* only TLVs follow */
	assert_int_equal(buf[16], PP2_TYPE_SSL);            /* no address block */
}

static void test_proxy_v2_small_buffer_enospc(void **state)
{
	struct pp2_sample s;
	uint8_t buf[1024];
	int full;

	(void)state;
	pp2_sample_v4(&s);
	full = pp2_encode(&s.info, buf, sizeof(buf));
	assert_true(full > 0);
	for (int cap = 0; cap < full; cap++)
		assert_int_equal(pp2_encode(&s.info, buf, (size_t)cap), -ENOSPC);
	assert_int_equal(pp2_encode(&s.info, buf, (size_t)full), full);
}

static void test_proxy_v2_mixed_families_einval(void **state)
{
	struct pp2_sample v4, v6;
	uint8_t buf[1024];

	(void)state;
	pp2_sample_v4(&v4);
	pp2_sample_v6(&v6);
	v4.info.dst = (struct sockaddr *)&v6.dst;
	assert_int_equal(pp2_encode(&v4.info, buf, sizeof(buf)), -EINVAL);
	v4.info.dst = (struct sockaddr *)&v4.dst;
	assert_true(pp2_encode(&v4.info, buf, sizeof(buf)) > 0);
}

static void test_proxy_v2_app_type_range(void **state)
{
	struct pp2_sample s;
	uint8_t buf[1024];

	(void)state;
	pp2_sample_v4(&s);
	s.info.app_tlv_type = 0xdf;
	assert_int_equal(pp2_encode(&s.info, buf, sizeof(buf)), -EINVAL);
	s.info.app_tlv_type = 0xf0;
	assert_int_equal(pp2_encode(&s.info, buf, sizeof(buf)), -EINVAL);
	s.info.app_tlv_type = 0xef;
	assert_true(pp2_encode(&s.info, buf, sizeof(buf)) > 0);
	s.info.app_tlv_type = 0;
	assert_int_equal(pp2_encode(&s.info, buf, sizeof(buf)), 16 + 12 + 5 + 14 + 83);
}

/* A certificate is sent whole as the 0x28 sub-TLV up to the protocol's
 * limit (65535 bytes after the fixed 16), exactly; one byte more is
 * -EMSGSIZE, not a truncated header. pp2_encoded_size() says the size
 * either way, without writing. */
static void test_proxy_v2_cert_length_limit(void **state)
{
	struct pp2_sample s;
	size_t cap = 70000 + PP2_MAX_HEADER_NO_CERT;
	uint8_t *der = calloc(1, 70000), *buf = malloc(cap);
	const size_t fixed = 16 + 36 + 3 + 47 + 3; /* v6 sample: addresses, SSL TLV, 0x28 header */
	int n;

	(void)state;
	pp2_sample_v6(&s);
	s.info.cert_der = der;
	s.info.cert_der_len = 70000;
	assert_int_equal(pp2_encode(&s.info, buf, cap), -EMSGSIZE);
	assert_int_equal(pp2_encoded_size(&s.info), fixed + 70000);
	s.info.cert_der_len = 1000;
	n = pp2_encode(&s.info, buf, cap);
	assert_int_equal(n, fixed + 1000);
	assert_int_equal(pp2_encoded_size(&s.info), (size_t)n);
	s.info.cert_der_len = PP2_MAX_HEADER - fixed;
	n = pp2_encode(&s.info, buf, cap);
	assert_int_equal(n, PP2_MAX_HEADER);
	assert_int_equal(buf[14] << 8 | buf[15], 65535);
	s.info.cert_der_len++;
	assert_int_equal(pp2_encode(&s.info, buf, cap), -EMSGSIZE);
	assert_int_equal(pp2_encoded_size(&s.info), PP2_MAX_HEADER + 1);
	free(der);
	free(buf);
}

static void test_proxy_v2_client_flags(void **state)
{
	(void)state;
	assert_int_equal(pp2_client_flags(false), PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS);
	assert_int_equal(pp2_client_flags(true), PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proxy_v2_v4_byte_exact),
		cmocka_unit_test(test_proxy_v2_v4_other_port_differs),
		cmocka_unit_test(test_proxy_v2_v6_byte_exact),
		cmocka_unit_test(test_proxy_v2_unix_is_unspec),
		cmocka_unit_test(test_proxy_v2_small_buffer_enospc),
		cmocka_unit_test(test_proxy_v2_mixed_families_einval),
		cmocka_unit_test(test_proxy_v2_app_type_range),
		cmocka_unit_test(test_proxy_v2_cert_length_limit),
		cmocka_unit_test(test_proxy_v2_client_flags),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
