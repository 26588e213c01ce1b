/*
 * test_admission.c: the network-free parts of handshake admission
 * (dataplane/engine/admission.c): what counts as one source, the per-source
 * limit, the reduced timeout under pressure and how long a peak holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "admission.h"
#include "config.h"

#define MS 1000000ull

static struct sockaddr_storage addr(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &in->sin_addr), 1);
	}
	return ss;
}

/* Take up to n tickets for text; returns how many were granted. */
static unsigned take_n(const char *text, unsigned limit, unsigned n, struct source_ticket *t)
{
	struct sockaddr_storage ss = addr(text);
	unsigned got = 0;

	for (unsigned i = 0; i < n; i++)
		if (admission_source_take((struct sockaddr *)&ss, limit, &t[got]) == 0)
			got++;
	return got;
}

static void put_all(struct source_ticket *t, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		admission_source_put(&t[i]);
}

static void test_admission_source_limit_refuses_beyond(void **state)
{
	struct source_ticket t[8];

	(void)state;
	assert_int_equal(take_n("192.0.2.7", 5, 8, t), 5);
	put_all(t, 5);
	/* Given back: the same source may start five again. */
	assert_int_equal(take_n("192.0.2.7", 5, 8, t), 5);
	put_all(t, 5);
}

/* Twin: another address is not affected by a source at its limit, and
 * limit 0 counts nothing. */
static void test_admission_source_other_address_unaffected(void **state)
{
	struct source_ticket a[4], b[4], none[4];

	(void)state;
	assert_int_equal(take_n("192.0.2.7", 4, 4, a), 4);
	assert_int_equal(take_n("192.0.2.8", 4, 4, b), 4);
	assert_int_equal(take_n("192.0.2.7", 0, 4, none), 4);
	for (unsigned i = 0; i < 4; i++)
		assert_false(none[i].held);
	put_all(a, 4);
	put_all(b, 4);
}

/* One IPv6 /64 is one source: another address in it shares the count,
 * an address of the next /64 does not. */
static void test_admission_source_ipv6_by_64(void **state)
{
	struct source_ticket t[4], u[4];

	(void)state;
	assert_int_equal(take_n("2001:db8:1:2::1", 3, 2, t), 2);
	assert_int_equal(take_n("2001:db8:1:2:ffff::99", 3, 2, t + 2), 1);
	assert_int_equal(take_n("2001:db8:1:3::1", 3, 3, u), 3);
	put_all(t, 3);
	put_all(u, 3);
}

/* A v4-mapped IPv6 address is its IPv4 address (a dual-stack listener). */
static void test_admission_source_v4_mapped_is_ipv4(void **state)
{
	struct source_ticket t[4];
	char text[64];

	(void)state;
	assert_int_equal(take_n("198.51.100.4", 2, 1, t), 1);
	assert_int_equal(take_n("::ffff:198.51.100.4", 2, 2, t + 1), 1);
	put_all(t, 2);
	struct sockaddr_storage ss = addr("::ffff:198.51.100.4");
	admission_source_text((struct sockaddr *)&ss, text, sizeof(text));
	assert_string_equal(text, "198.51.100.4");
	ss = addr("2001:db8:1:2:aaaa:bbbb:cccc:dddd");
	admission_source_text((struct sockaddr *)&ss, text, sizeof(text));
	assert_string_equal(text, "2001:db8:1:2::/64");
}

static struct mtlsd_config pressure_cfg(void)
{
	struct mtlsd_config cfg;

	config_init(&cfg);
	cfg.max_handshakes = 1000;
	cfg.handshake_timeout_ms = 10000;
	return cfg;
}

static void test_admission_hello_timeout_shrinks_under_pressure(void **state)
{
	struct mtlsd_config cfg = pressure_cfg();

	(void)state;
	assert_int_equal(admission_hello_timeout_ns(&cfg, 1000), ADMISSION_HELLO_TIMEOUT_FLOOR_MS * MS);
	assert_int_equal(admission_hello_timeout_ns(&cfg, 5000), ADMISSION_HELLO_TIMEOUT_FLOOR_MS * MS);
	/* Half-way between 75% and 100%: half-way between 10 s and 1 s. */
	assert_int_equal(admission_hello_timeout_ns(&cfg, 875), 5500 * MS);
	assert_true(admission_hello_timeout_ns(&cfg, 900) < admission_hello_timeout_ns(&cfg, 800));
}

/* Twin: at or below the threshold, and with a timeout already under the
 * floor, the configured timeout stands. */
static void test_admission_hello_timeout_full_below_threshold(void **state)
{
	struct mtlsd_config cfg = pressure_cfg();

	(void)state;
	assert_int_equal(admission_hello_timeout_ns(&cfg, 0), 10000 * MS);
	assert_int_equal(admission_hello_timeout_ns(&cfg, 750), 10000 * MS);
	cfg.handshake_timeout_ms = 500;
	assert_int_equal(admission_hello_timeout_ns(&cfg, 1000), 500 * MS);
}

/* The peak holds for hold_ns, then the present counts again. */
static void test_admission_pressure_peak_holds_then_expires(void **state)
{
	uint64_t t0 = 1000000 * MS, hold = 10000 * MS;

	(void)state;
	admission_note_in_flight(1000, t0);
	assert_int_equal(admission_pressure(10, hold, t0 + 5000 * MS), 1000);
	/* Lower notes do not move it. */
	admission_note_in_flight(20, t0 + 6000 * MS);
	assert_int_equal(admission_pressure(10, hold, t0 + 9000 * MS), 1000);
	assert_int_equal(admission_pressure(10, hold, t0 + 10001 * MS), 10);
	/* A higher present is the pressure at once. */
	assert_int_equal(admission_pressure(30, hold, t0 + 10002 * MS), 30);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_admission_source_limit_refuses_beyond),
		cmocka_unit_test(test_admission_source_other_address_unaffected),
		cmocka_unit_test(test_admission_source_ipv6_by_64),
		cmocka_unit_test(test_admission_source_v4_mapped_is_ipv4),
		cmocka_unit_test(test_admission_hello_timeout_shrinks_under_pressure),
		cmocka_unit_test(test_admission_hello_timeout_full_below_threshold),
		cmocka_unit_test(test_admission_pressure_peak_holds_then_expires),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
