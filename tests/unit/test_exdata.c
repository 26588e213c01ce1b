/*
 * test_exdata.c: the ex_data registry (dataplane/tls/exdata.c): every slot
 * is allocated once, by whichever thread comes first, and a slot reads
 * NULL until it is set; the SSL_CTX slots that own what they hold replace
 * it (the old one freed: LeakSanitizer in the asan build would see it).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "exdata.h"

#define THREADS 8

static int seen[THREADS][EXDATA_SLOTS];

static void *init_and_copy(void *arg)
{
	int *out = arg;

	if (exdata_init() < 0)
		return NULL;
	for (int i = 0; i < EXDATA_SLOTS; i++)
		out[i] = exdata_index[i];
	return arg;
}

/* Threads racing to initialise all see the same indexes, and later calls
 * change nothing: the indexes are allocated once. */
static void test_exdata_init_once_across_threads(void **state)
{
	pthread_t t[THREADS];

	(void)state;
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, init_and_copy, seen[i]), 0);
	for (int i = 0; i < THREADS; i++) {
		void *r = NULL;
		assert_int_equal(pthread_join(t[i], &r), 0);
		assert_non_null(r);
	}
	for (int s = 0; s < EXDATA_SLOTS; s++) {
		assert_true(seen[0][s] >= 0);
		for (int i = 1; i < THREADS; i++)
			assert_int_equal(seen[i][s], seen[0][s]);
	}
	assert_int_equal(exdata_init(), 0);
	for (int s = 0; s < EXDATA_SLOTS; s++)
		assert_int_equal(exdata_index[s], seen[0][s]);
	/* Two slots of one object class never share an index. */
	assert_int_not_equal(exdata_index[EXDATA_SSL_VERIFY_RESULT], exdata_index[EXDATA_SSL_KTLS_CONN]);
	assert_int_not_equal(exdata_index[EXDATA_CTX_CA_LINKS], exdata_index[EXDATA_CTX_TICKET_KEYSET]);
}

/* A slot reads what was set on that object only; the twin: another object
 * of the same class, never set, reads NULL. */
static void test_exdata_slot_set_then_read(void **state)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL *a = SSL_new(ctx), *b = SSL_new(ctx);
	int dummy;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(exdata_init(), 0);
	assert_null(exdata_verify_result(a));
	assert_int_equal(exdata_set_verify_result(a, (struct verify_result *)&dummy), 0);
	assert_ptr_equal(exdata_verify_result(a), &dummy);
	assert_null(exdata_verify_result(b));
	assert_null(exdata_verify_result(NULL));
	assert_null(exdata_ca_links(ctx));
	assert_null(exdata_ticket_keyset(ctx));
	SSL_free(a);
	SSL_free(b);
	SSL_CTX_free(ctx);
}

/* The owned slots: setting again frees what was there, and freeing the
 * context frees the last one (both through the owner's destructor). */
static void test_exdata_owned_slot_replaced_and_freed(void **state)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	struct ca_links *one = calloc(1, 64), *two = calloc(1, 64);

	(void)state;
	assert_int_equal(exdata_init(), 0);
	assert_int_equal(exdata_set_ca_links(ctx, one), 0);
	assert_ptr_equal(exdata_ca_links(ctx), one);
	assert_int_equal(exdata_set_ca_links(ctx, two), 0);
	assert_ptr_equal(exdata_ca_links(ctx), two);
	SSL_CTX_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exdata_init_once_across_threads),
		cmocka_unit_test(test_exdata_slot_set_then_read),
		cmocka_unit_test(test_exdata_owned_slot_replaced_and_freed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
