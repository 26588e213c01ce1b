/*
 * test_session_binding.c: the binding a session carries
 * (dataplane/tls/session_binding.c): its bytes, hostile bytes, when it may be
 * resumed, and the session timeout derived from it. Handshakes that use
 * it are in test_verify.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/ssl.h>
#include <string.h>
#include <time.h>

#include "ossl_compat.h"
#include "session_binding.h"

static const struct session_binding sample = {
	.trust_id = 0x0123456789abcdefULL, .partner = 2,
	.verified_at = 1700000000, .valid_until = 1700086400,
};

static void assert_same(const struct session_binding *a, const struct session_binding *b)
{
	assert_true(a->trust_id == b->trust_id);
	assert_int_equal(a->partner, b->partner);
	assert_int_equal(a->verified_at, b->verified_at);
	assert_int_equal(a->valid_until, b->valid_until);
}

static void test_session_binding_roundtrip(void **state)
{
	uint8_t buf[SESSION_BINDING_LEN];
	struct session_binding b;

	(void)state;
	session_binding_encode(&sample, buf);
	assert_memory_equal(buf, "mtb2", 4);
	assert_int_equal(session_binding_decode(buf, sizeof(buf), &b), 0);
	assert_same(&b, &sample);
}

/* Every other length, the earlier "mtb1" format, another magic, NULL:
 * not a binding (the session then gets a full handshake). */
static void test_session_binding_refuses_other_bytes(void **state)
{
	uint8_t buf[SESSION_BINDING_LEN + 1];
	struct session_binding b;

	(void)state;
	session_binding_encode(&sample, buf);
	for (size_t len = 0; len <= sizeof(buf); len++)
		if (len != SESSION_BINDING_LEN)
			assert_int_equal(session_binding_decode(buf, len, &b), -ENOENT);
	uint8_t v1[16] = "mtb1";
	assert_int_equal(session_binding_decode(v1, sizeof(v1), &b), -ENOENT);
	buf[3] = '3';
	assert_int_equal(session_binding_decode(buf, SESSION_BINDING_LEN, &b), -ENOENT);
	assert_int_equal(session_binding_decode(NULL, SESSION_BINDING_LEN, &b), -ENOENT);
}

static enum session_verdict judge_at(int64_t now)
{
	return session_binding_judge(&sample, sample.trust_id, 3, now, 3600);
}

/* Resumable for lifetime seconds after the verification, not one more. */
static void test_session_binding_lifetime(void **state)
{
	(void)state;
	assert_int_equal(judge_at(sample.verified_at), SESSION_RESUMABLE);
	assert_int_equal(judge_at(sample.verified_at + 3599), SESSION_RESUMABLE);
	assert_int_equal(judge_at(sample.verified_at + 3600), SESSION_TOO_OLD);
}

/* valid_until bounds it even when the lifetime would not. */
static void test_session_binding_valid_until(void **state)
{
	struct session_binding b = sample;

	(void)state;
	b.valid_until = b.verified_at + 60;
	assert_int_equal(session_binding_judge(&b, b.trust_id, 3, b.verified_at + 59, 3600), SESSION_RESUMABLE);
	assert_int_equal(session_binding_judge(&b, b.trust_id, 3, b.verified_at + 60, 3600), SESSION_OUTLIVED);
	assert_int_equal(session_binding_expiry(&b, 3600), b.verified_at + 60);
	assert_int_equal(session_binding_expiry(&sample, 3600), sample.verified_at + 3600);
}

/* Another trust id, a partner index the generation does not have, a
 * verification time ahead of the clock: never resumed. */
static void test_session_binding_foreign_and_future(void **state)
{
	(void)state;
	assert_int_equal(session_binding_judge(&sample, sample.trust_id + 1, 3, sample.verified_at, 3600),
			 SESSION_FOREIGN);
	assert_int_equal(session_binding_judge(&sample, sample.trust_id, 2, sample.verified_at, 3600),
			 SESSION_FOREIGN);
	assert_int_equal(judge_at(sample.verified_at - 1), SESSION_FROM_FUTURE);
}

/* A decoded verified_at near the end of time neither overflows nor
 * outlives valid_until. */
static void test_session_binding_hostile_times(void **state)
{
	struct session_binding b = sample;

	(void)state;
	b.verified_at = INT64_MAX - 10;
	b.valid_until = SESSION_NO_BOUND;
	assert_int_equal(session_binding_expiry(&b, 3600), INT64_MAX);
	assert_int_equal(session_binding_judge(&b, b.trust_id, 3, 1700000000, 3600), SESSION_FROM_FUTURE);
	b.verified_at = INT64_MIN;
	assert_int_equal(session_binding_judge(&b, b.trust_id, 3, 1700000000, 3600), SESSION_TOO_OLD);
}

/* The binding rides in the session and sets its timeout to what is left. */
static void test_session_binding_in_session(void **state)
{
	SSL_SESSION *s = SSL_SESSION_new();
	struct session_binding b;
	int64_t now = (int64_t)time(NULL);

	(void)state;
	assert_non_null(s);
	assert_int_equal(session_binding_load(s, &b), -ENOENT);
	assert_int_equal(ossl_session_set_time(s, (time_t)now), 1);
	b = sample;
	b.verified_at = now - 600;
	b.valid_until = SESSION_NO_BOUND;
	assert_int_equal(session_binding_store(s, &b), 0);
	struct session_binding back;
	assert_int_equal(session_binding_load(s, &back), 0);
	assert_same(&back, &b);
	assert_int_equal(session_binding_bound_timeout(s, &b, 3600), 0);
	assert_int_equal(SSL_SESSION_get_timeout(s), 3000);
	/* Past its expiry: the shortest timeout OpenSSL can seal. */
	b.valid_until = now - 1;
	assert_int_equal(session_binding_bound_timeout(s, &b, 3600), 0);
	assert_int_equal(SSL_SESSION_get_timeout(s), 1);
	SSL_SESSION_free(s);
}

static int64_t fixed_clock(void)
{
	return 42;
}

static void test_session_binding_clock_override(void **state)
{
	(void)state;
	session_clock_override(fixed_clock);
	assert_int_equal(session_clock_now(), 42);
	session_clock_override(NULL);
	assert_true(session_clock_now() >= (int64_t)time(NULL) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_session_binding_roundtrip),
		cmocka_unit_test(test_session_binding_refuses_other_bytes),
		cmocka_unit_test(test_session_binding_lifetime),
		cmocka_unit_test(test_session_binding_valid_until),
		cmocka_unit_test(test_session_binding_foreign_and_future),
		cmocka_unit_test(test_session_binding_hostile_times),
		cmocka_unit_test(test_session_binding_in_session),
		cmocka_unit_test(test_session_binding_clock_override),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
