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
	static char paths[8][512];
	static unsigned next;
	char *p = paths[next++ % 8];
	snprintf(p, sizeof(paths[0]), "%.400s/%.100s", getenv("MTLS_FIXTURES"), rel);
	return p;
}

static void flag(struct mtlsd_config *cfg, const char *name, const char *value)
{
	if (config_apply_flag(cfg, name, value, err, sizeof(err)) < 0)
		fail_msg("--%s %s: %s", name, value, err);
}

/* Build a one-partner generation; server "server" or "server-rsa". */
static struct generation *build(const char *server, const char *crl, const char *allow_uri)
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
	flag(&cfg, "client-ca", fx("pki/ca-bundle.pem"));
	flag(&cfg, "crl", crl);
	flag(&cfg, "backend", "127.0.0.1:9000");
	flag(&cfg, "allow-uri", allow_uri);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), 0);
	if (reload_build(&cfg, 1, &g, err, sizeof(err)) < 0)
		fail_msg("reload_build: %s", err);
	return g;
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reload_trust_id_same_files_same_id),
		cmocka_unit_test(test_reload_trust_id_changes_with_trust),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
