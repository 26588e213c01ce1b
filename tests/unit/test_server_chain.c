/*
 * test_server_chain.c: does the chain in a `cert` file reach a root
 * (dataplane/tls/server_chain.c)? The fixture server certificate alone, with
 * its chain, with its root, against the partners' CAs and a trust store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pemutil.h"
#include "server_chain.h"

static char why[1024];

static STACK_OF(X509) *certs(const char *rel)
{
	char path[1024], err[512];
	STACK_OF(X509) *sk = NULL;

	snprintf(path, sizeof(path), "%s/%s", getenv("MTLS_FIXTURES"), rel);
	if (pem_load_certs(path, &sk, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	return sk;
}

/* The file's certificates followed by those of more (a root appended). */
static STACK_OF(X509) *concat(STACK_OF(X509) *a, STACK_OF(X509) *b)
{
	STACK_OF(X509) *out = sk_X509_new_null();

	for (int i = 0; i < sk_X509_num(a); i++)
		sk_X509_push(out, sk_X509_value(a, i));
	for (int i = 0; i < sk_X509_num(b); i++)
		sk_X509_push(out, sk_X509_value(b, i));
	return out;
}

static X509_STORE *store_of(STACK_OF(X509) *sk)
{
	X509_STORE *st = X509_STORE_new();

	for (int i = 0; i < sk_X509_num(sk); i++)
		assert_int_equal(X509_STORE_add_cert(st, sk_X509_value(sk, i)), 1);
	return st;
}

/* The full chain reaches pki's root through a partner's bundle, a store
 * holding the root, or the root in the file itself. */
static void test_server_chain_complete(void **state)
{
	STACK_OF(X509) *chain = certs("server/chain.pem"), *bundle = certs("pki/ca-bundle.pem");
	STACK_OF(X509) *root = certs("pki/root/ca.crt"), *with_root = concat(chain, root);
	X509_STORE *roots = store_of(root);

	(void)state;
	assert_true(server_chain_check(chain, bundle, NULL, why, sizeof(why)));
	assert_true(server_chain_check(chain, NULL, roots, why, sizeof(why)));
	assert_true(server_chain_check(with_root, NULL, NULL, why, sizeof(why)));
	X509_STORE_free(roots);
	sk_X509_free(with_root);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(bundle, X509_free);
	sk_X509_pop_free(root, X509_free);
}

/* The leaf alone: its issuer is an intermediate mtlsd knows from a
 * partner's bundle (named, with where it is), or nothing at all. */
static void test_server_chain_missing_intermediate(void **state)
{
	STACK_OF(X509) *leaf = certs("server/cert.pem"), *bundle = certs("pki/ca-bundle.pem");
	STACK_OF(X509) *issuing = certs("pki/issuing/ca.crt");
	X509_STORE *roots = store_of(issuing);

	(void)state;
	assert_false(server_chain_check(leaf, bundle, NULL, why, sizeof(why)));
	assert_non_null(strstr(why, "'CN=server,O=partner' is issued by 'CN=partner Issuing CA,O=partner', "
				    "an intermediate CA that is not in the file (it is in a partner's ca bundle)"));
	assert_false(server_chain_check(leaf, NULL, roots, why, sizeof(why)));
	assert_non_null(strstr(why, "(it is in the system trust store)"));
	assert_false(server_chain_check(leaf, NULL, NULL, why, sizeof(why)));
	assert_non_null(strstr(why, "the chain stops at 'CN=server,O=partner': its issuer "
				    "'CN=partner Issuing CA,O=partner' is not in the file"));
	assert_non_null(strstr(why, "unable to get local issuer certificate"));
	X509_STORE_free(roots);
	sk_X509_pop_free(leaf, X509_free);
	sk_X509_pop_free(bundle, X509_free);
	sk_X509_pop_free(issuing, X509_free);
}

/* Leaf and issuing CA, without the intermediate between it and the root. */
static void test_server_chain_missing_upper_intermediate(void **state)
{
	STACK_OF(X509) *leaf = certs("server/cert.pem"), *issuing = certs("pki/issuing/ca.crt");
	STACK_OF(X509) *file = concat(leaf, issuing);

	(void)state;
	assert_false(server_chain_check(file, NULL, NULL, why, sizeof(why)));
	assert_non_null(strstr(why, "stops at 'CN=partner Issuing CA,O=partner'"));
	sk_X509_free(file);
	sk_X509_pop_free(leaf, X509_free);
	sk_X509_pop_free(issuing, X509_free);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_chain_complete),
		cmocka_unit_test(test_server_chain_missing_intermediate),
		cmocka_unit_test(test_server_chain_missing_upper_intermediate),
	};

	if (!getenv("MTLS_FIXTURES")) {
		fprintf(stderr, "MTLS_FIXTURES is not set (run through meson test)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
