/*
 * test_reload.c: what reload_build adds to a generation (dataplane/
 * reload.c): the trust_id that session tickets are bound to, and the
 * session setup. The property that matters for a fleet: identical trust
 * files give identical ids (another host, a no-op reload), any change to
 * trust (a CRL, an allow-list) gives another, and a server certificate
 * swap does not touch it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "generation.h"
#include "reload.h"

static char err[1024];

static const char *fx(const char *rel)
{
	static char paths[32][512]; /* a test holds several at once */
	static unsigned next;
	char *p = paths[next++ % 32];
	snprintf(p, sizeof(paths[0]), "%.400s/%.100s", getenv("MTLS_FIXTURES"), rel);
	return p;
}

static void flag(struct mtlsd_config *cfg, const char *name, const char *value)
{
	if (config_apply_flag(cfg, name, value, err, sizeof(err)) < 0)
		fail_msg("--%s %s: %s", name, value, err);
}

/* Build a one-partner generation; server "server" or "server-rsa"; ca a
 * fixture bundle; crls NULL-terminated; extra flag pairs NULL-terminated. */
static struct generation *build_with(const char *server, const char *ca, const char *const *crls,
				     const char *allow_uri, const char *const *extra)
{
	struct mtlsd_config cfg;
	struct generation *g = NULL;
	char path[512];

	config_init(&cfg);
	flag(&cfg, "listen", "127.0.0.1:8443");
	snprintf(path, sizeof(path), "%s/chain.pem", server);
	flag(&cfg, "cert", fx(path));
	snprintf(path, sizeof(path), "%s/key.pem", server);
	flag(&cfg, "key", fx(path));
	flag(&cfg, "client-ca", fx(ca));
	for (size_t i = 0; crls[i]; i++)
		flag(&cfg, "crl", crls[i]);
	flag(&cfg, "backend", "127.0.0.1:9000");
	flag(&cfg, "allow-uri", allow_uri);
	for (size_t i = 0; extra && extra[i]; i += 2)
		flag(&cfg, extra[i], extra[i + 1]);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), 0);
	if (reload_build(&cfg, 1, &g, err, sizeof(err)) < 0)
		fail_msg("reload_build: %s", err);
	return g;
}

static struct generation *build(const char *server, const char *crl, const char *allow_uri)
{
	const char *crls[] = { crl, NULL };

	return build_with(server, "pki/ca-bundle.pem", crls, allow_uri, NULL);
}

static int setup(void **state)
{
	(void)state;
	if (!getenv("MTLS_FIXTURES")) {
		fprintf(stderr, "MTLS_FIXTURES is not set (run through meson test)\n");
		return -1;
	}
	return 0;
}

static void test_reload_trust_id_same_files_same_id(void **state)
{
	(void)state;
	struct generation *a = build("server", fx("pki/crls.pem"), "spiffe://partner.example/prod/*");
	struct generation *b = build("server", fx("pki/crls.pem"), "spiffe://partner.example/prod/*");
	assert_true(a->trust_id != 0);
	assert_true(a->trust_id == b->trust_id);
	/* A server certificate swap is not a trust change: sessions survive it. */
	struct generation *c = build("server-rsa", fx("pki/crls.pem"), "spiffe://partner.example/prod/*");
	assert_true(a->trust_id == c->trust_id);
	generation_unref(a);
	generation_unref(b);
	generation_unref(c);
}

static void test_reload_trust_id_changes_with_trust(void **state)
{
	(void)state;
	struct generation *a = build("server", fx("pki/crls.pem"), "spiffe://partner.example/prod/*");
	/* Another allow-list. */
	struct generation *b = build("server", fx("pki/crls.pem"), "spiffe://partner.example/prod/app1");
	assert_true(a->trust_id != b->trust_id);
	/* The same CRLs minus one (only the root's): another CRL set. */
	struct generation *c = build("server", fx("pki/root/crl.pem"), "spiffe://partner.example/prod/*");
	assert_true(a->trust_id != c->trust_id);
	generation_unref(a);
	generation_unref(b);
	generation_unref(c);
}

/* The CRL of an issuing CA that is not in ca (a chain CRL) is trust
 * material too: a reload that changes it must end older sessions. */
static void test_reload_trust_id_covers_chain_crls(void **state)
{
	const char *package[] = { fx("pki/trust-package/crls.pem"), NULL };
	const char *no_issuing[] = { fx("pki/root/crl.pem"), fx("pki/intermediate/crl.pem"), NULL };
	const char *allow[] = { "crl-missing", "allow", NULL };

	(void)state;
	struct generation *a = build_with("server", "pki/trust-package/ca-bundle.pem", package,
					  "spiffe://partner.example/prod/*", NULL);
	struct generation *b = build_with("server", "pki/trust-package/ca-bundle.pem", no_issuing,
					  "spiffe://partner.example/prod/*", allow);
	assert_int_equal(a->partners[0].n_chain_crls, 1);
	assert_int_equal(b->partners[0].n_chain_crls, 0);
	assert_true(a->trust_id != b->trust_id);
	generation_unref(a);
	generation_unref(b);
}

/*
 * A CA of ca without any CRL under crl_missing = fail admits nobody under
 * it: reload_check_admits() refuses it, naming the CA and the crl. Twins:
 * every CA with its CRL; the same files with crl_missing = allow; the
 * trust package, whose issuing CA is not in ca.
 */
static void test_reload_check_admits_ca_without_crl(void **state)
{
	const char *allow[] = { "crl-missing", "allow", NULL };
	const char *root_only[] = { fx("pki/root/crl.pem"), NULL };
	const char *package[] = { fx("pki/trust-package/crls.pem"), NULL };

	(void)state;
	struct generation *g = build("server", fx("pki/root/crl.pem"), "spiffe://partner.example/prod/*");
	assert_int_equal(sk_X509_num(g->partners[0].cas_without_crl), 2);
	assert_int_equal(reload_check_admits(g, err, sizeof(err)), -EINVAL);
	if (!strstr(err, "--crl ") || !strstr(err, "pki/root/crl.pem") ||
	    !strstr(err, "no CRL of CA 'CN=partner Intermediate CA,O=partner'") || !strstr(err, "crl_missing"))
		fail_msg("reason: %s", err);
	generation_unref(g);

	g = build("server", fx("pki/crls.pem"), "spiffe://partner.example/prod/*");
	assert_int_equal(sk_X509_num(g->partners[0].cas_without_crl), 0);
	assert_int_equal(reload_check_admits(g, err, sizeof(err)), 0);
	generation_unref(g);

	g = build_with("server", "pki/ca-bundle.pem", root_only, "spiffe://partner.example/prod/*", allow);
	assert_int_equal(reload_check_admits(g, err, sizeof(err)), 0);
	generation_unref(g);

	g = build_with("server", "pki/trust-package/ca-bundle.pem", package, "spiffe://partner.example/prod/*", NULL);
	assert_int_equal(reload_check_admits(g, err, sizeof(err)), 0);
	generation_unref(g);
}

/* Without a CRL of the root itself, nobody at all: said so. */
static void test_reload_check_admits_anchor_without_crl(void **state)
{
	const char *no_root[] = { fx("pki/intermediate/crl.pem"), fx("pki/issuing/crl.pem"), NULL };

	(void)state;
	struct generation *g = build_with("server", "pki/ca-bundle.pem", no_root,
					  "spiffe://partner.example/prod/*", NULL);
	assert_int_equal(reload_check_admits(g, err, sizeof(err)), -EINVAL);
	if (!strstr(err, "partner Root CA") || !strstr(err, "every client of the partner"))
		fail_msg("reason: %s", err);
	generation_unref(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reload_trust_id_same_files_same_id),
		cmocka_unit_test(test_reload_trust_id_changes_with_trust),
		cmocka_unit_test(test_reload_trust_id_covers_chain_crls),
		cmocka_unit_test(test_reload_check_admits_ca_without_crl),
		cmocka_unit_test(test_reload_check_admits_anchor_without_crl),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
