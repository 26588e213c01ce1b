/*
 * test_hist.c: the latency histogram must report percentiles within its
 * stated precision (1/64) across nanoseconds to minutes, and must not
 * invent values: an empty histogram says 0, a single sample is itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hist.h"

static struct hist h;

static int reset(void **state)
{
	(void)state;
	memset(&h, 0, sizeof(h));
	return 0;
}

static void assert_close(uint64_t got, uint64_t want)
{
	uint64_t tol = want / 64 + 1;
	if (got + tol < want || got > want + tol)
		fail_msg("got %llu, want %llu +- %llu", (unsigned long long)got, (unsigned long long)want,
			 (unsigned long long)tol);
}

static void test_hist_quantiles_within_precision(void **state)
{
	/* 1..100000 us: the q-quantile is q * 100000 us. */
	for (uint64_t us = 1; us <= 100000; us++)
		hist_record(&h, us * 1000);
	assert_int_equal(h.count, 100000);
	assert_close(hist_quantile(&h, 0.5), 50000 * 1000ull);
	assert_close(hist_quantile(&h, 0.99), 99000 * 1000ull);
	assert_close(hist_quantile(&h, 0.999), 99900 * 1000ull);
	assert_int_equal(hist_quantile(&h, 1.0), 100000 * 1000ull);
}

static void test_hist_tail_not_hidden(void **state)
{
	/* 98 fast samples and 2 slow ones: p99 must be slow, p50 fast. */
	for (int i = 0; i < 98; i++)
		hist_record(&h, 100 * 1000);
	hist_record(&h, 900ull * 1000 * 1000);
	hist_record(&h, 900ull * 1000 * 1000);
	assert_close(hist_quantile(&h, 0.5), 100 * 1000);
	assert_close(hist_quantile(&h, 0.99), 900ull * 1000 * 1000);
	assert_true(hist_quantile(&h, 0.98) < 200 * 1000);
}

static void test_hist_empty_and_single(void **state)
{
	assert_int_equal(hist_quantile(&h, 0.99), 0);
	hist_record(&h, 12345);
	assert_close(hist_quantile(&h, 0.5), 12345);
	assert_int_equal(hist_quantile(&h, 0.999), hist_quantile(&h, 0.5));
	assert_int_equal(h.max_ns, 12345);
}

static void test_hist_merge_adds_samples(void **state)
{
	static struct hist other;
	memset(&other, 0, sizeof(other));
	for (int i = 0; i < 50; i++) {
		hist_record(&h, 1000);
		hist_record(&other, 1000000);
	}
	hist_merge(&h, &other);
	assert_int_equal(h.count, 100);
	assert_int_equal(h.max_ns, 1000000);
	assert_close(hist_quantile(&h, 0.5), 1000);
	assert_close(hist_quantile(&h, 0.51), 1000000);
}

static void test_hist_huge_values_clamped_not_lost(void **state)
{
	hist_record(&h, UINT64_MAX / 2);
	hist_record(&h, 10);
	assert_int_equal(h.count, 2);
	assert_true(hist_quantile(&h, 1.0) > 1000000000ull);
	assert_int_equal(hist_quantile(&h, 0.5), 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_hist_quantiles_within_precision, reset),
		cmocka_unit_test_setup(test_hist_tail_not_hidden, reset),
		cmocka_unit_test_setup(test_hist_empty_and_single, reset),
		cmocka_unit_test_setup(test_hist_merge_adds_samples, reset),
		cmocka_unit_test_setup(test_hist_huge_values_clamped_not_lost, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
