/*
 * test_generation.c: building a generation from the fixture PKI (ECDSA and
 * RSA server certificates at once, two partners with their own stores and
 * CRLs) and refusing what would make a connection ambiguous or unsafe:
 * shared trust anchors, foreign CRLs, mismatched or exposed keys, bundles
 * that are not CA bundles. Then publication and reference counting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "cert_name.h"
#include "generation.h"
#include "ossl_compat.h"
#include "pemutil.h"

static char scratch[] = "/tmp/test_generation.XXXXXX";
static char conf_path[600];
static char err[2048];

static const char *fx(void)
{
	const char *dir = getenv("MTLS_FIXTURES");
	if (!dir)
		fail_msg("MTLS_FIXTURES is not set; run through meson test");
	return dir;
}

/* Write a config whose paths point into the fixtures; %1$s is the fixture dir. */
__attribute__((format(printf, 1, 2)))
static void write_conf(const char *fmt, ...)
{
	FILE *f = fopen(conf_path, "w");
	assert_non_null(f);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

/* Load the config file and build; returns generation_build's rc. */
static int build(struct generation **g)
{
	struct mtlsd_config cfg;
	config_init(&cfg);
	err[0] = '\0';
	*g = NULL;
	if (config_load_file(&cfg, conf_path, err, sizeof(err)) != 0)
		fail_msg("config did not load: %s", err);
	int rc = generation_build(&cfg, 1, g, err, sizeof(err));
	/* ownership moved in both cases */
	assert_null(cfg.partners);
	assert_int_equal(cfg.n_certs, 0);
	return rc;
}

static void expect_build_error(int rc, int line, const char *prefix, const char *hint)
{
	struct generation *g;
	char want[1024];
	assert_int_equal(build(&g), rc);
	assert_null(g);
	snprintf(want, sizeof(want), "%s:%d: %s", conf_path, line, prefix);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("error is\n  %s\nexpected it to start with\n  %s", err, want);
	if (hint && !strstr(err, hint))
		fail_msg("error is\n  %s\nexpected it to contain\n  %s", err, hint);
}

#define HEAD                                                                   \
	"[mtlsd]\n"                                                            \
	"listen = 127.0.0.1:8443\n"                                            \
	"[server_cert.ec]\n"                                                   \
	"cert = %1$s/server/chain.pem\n"                                       \
	"key = %1$s/server/key.pem\n"
#define PARTNER1                                                               \
	"[partner.partner]\n"                                                  \
	"ca = %1$s/pki/ca-bundle.pem\n"                                        \
	"crl = %1$s/pki/crls.pem\n"                                            \
	"backend = 127.0.0.1:9000\n"
#define PARTNER2                                                               \
	"[partner.partner2]\n"                                                 \
	"ca = %1$s/partner2-pki/ca-bundle.pem\n"                               \
	"backend = 127.0.0.1:9001\n"

static int count_server_certs(SSL_CTX *ctx, bool *root_presented)
{
	int n = 0;
	*root_presented = false;
	for (int rc = SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_FIRST); rc == 1;
	     rc = SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_NEXT)) {
		STACK_OF(X509) *chain = NULL;
		if (!SSL_CTX_get0_certificate(ctx))
			continue;
		n++;
		assert_int_equal(SSL_CTX_get0_chain_certs(ctx, &chain), 1);
		assert_true(sk_X509_num(chain) >= 1);
		for (int i = 0; i < sk_X509_num(chain); i++)
			if (x509_is_self_signed(sk_X509_value(chain, i)))
				*root_presented = true;
	}
	return n;
}

static void test_generation_ecdsa_and_rsa_two_partners(void **state)
{
	struct generation *g;
	bool root_presented;
	(void)state;
	write_conf(HEAD "[server_cert.rsa]\ncert = %1$s/server-rsa/chain.pem\nkey = %1$s/server-rsa/key.pem\n"
		   PARTNER1 PARTNER2, fx());
	if (build(&g) != 0)
		fail_msg("build failed: %s", err);
	assert_int_equal(count_server_certs(g->ssl_ctx, &root_presented), 2);
	assert_false(root_presented);
	assert_int_equal(SSL_CTX_get_min_proto_version(g->ssl_ctx), TLS1_2_VERSION);
	assert_int_equal(SSL_CTX_get_max_proto_version(g->ssl_ctx), TLS1_3_VERSION);
	assert_int_equal(SSL_CTX_get_timeout(g->ssl_ctx), 3600);
	uint64_t opts = SSL_CTX_get_options(g->ssl_ctx);
	assert_true(opts & SSL_OP_NO_RENEGOTIATION);
	assert_true(opts & SSL_OP_CIPHER_SERVER_PREFERENCE);
	assert_true(opts & SSL_OP_NO_COMPRESSION);
	assert_true(SSL_CTX_get_mode(g->ssl_ctx) & SSL_MODE_RELEASE_BUFFERS);

	assert_int_equal(g->n_partners, 2);
	const struct partner *p = &g->partners[0];
	assert_string_equal(p->cfg->name, "partner");
	assert_int_equal(sk_X509_num(p->anchors), 1);
	assert_int_equal(sk_X509_num(p->intermediates), 2);
	X509_VERIFY_PARAM *param = X509_STORE_get0_param(p->store);
	unsigned long flags = X509_VERIFY_PARAM_get_flags(param);
	assert_true(flags & X509_V_FLAG_CRL_CHECK);
	assert_true(flags & X509_V_FLAG_CRL_CHECK_ALL);
	assert_true(flags & X509_V_FLAG_X509_STRICT);
	/* verify_depth 3 (Root -> Intermediate -> Issuing -> leaf) is OpenSSL depth 2 */
	assert_int_equal(X509_VERIFY_PARAM_get_depth(param), 2);
	assert_int_equal(X509_STORE_get0_objects(p->store) ? sk_X509_OBJECT_num(X509_STORE_get0_objects(p->store)) : 0,
			 3 + 3); /* three CAs, three CRLs */

	const struct partner *q = &g->partners[1];
	flags = X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(q->store));
	assert_false(flags & X509_V_FLAG_CRL_CHECK); /* no crl configured */
	assert_true(flags & X509_V_FLAG_X509_STRICT);
	assert_ptr_equal(q->cfg, &g->cfg.partners[1]);
	generation_unref(g);
}

static void test_generation_two_ecdsa_certs_refused(void **state)
{
	(void)state;
	write_conf(HEAD "[server_cert.ec2]\ncert = %1$s/server/cert.pem\nkey = %1$s/server/key.pem\n" PARTNER1, fx());
	expect_build_error(-EINVAL, 7, "cert ", "a second ECDSA certificate");
}

static void test_generation_shared_anchor_refused(void **state)
{
	(void)state;
	/* the second partner trusts the first one's root (through its own copy
	 * of the root certificate alone) */
	write_conf(HEAD PARTNER1 "[partner.copycat]\nca = %1$s/pki/root/ca.crt\nbackend = 127.0.0.1:9002\n", fx());
	expect_build_error(-EINVAL, 11, "ca ", "is also a trust anchor of partner 'partner'");
}

/* partner2's root, cross-signed by partner 1's root: same name and key. */
static void write_cross_signed_bundle(const char *out_path)
{
	char path[700];
	const char *pass = getenv("MTLS_FIXTURE_PASS");
	assert_non_null(pass);

	snprintf(path, sizeof(path), "%s/pki/root/ca.key", fx());
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	EVP_PKEY *signer = PEM_read_PrivateKey(f, NULL, NULL, (void *)pass);
	fclose(f);
	assert_non_null(signer);
	STACK_OF(X509) *s1 = NULL, *s2 = NULL;
	snprintf(path, sizeof(path), "%s/pki/root/ca.crt", fx());
	assert_int_equal(pem_load_certs(path, &s1, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/partner2-pki/root/ca.crt", fx());
	assert_int_equal(pem_load_certs(path, &s2, err, sizeof(err)), 0);
	X509 *issuer = sk_X509_value(s1, 0), *subject = sk_X509_value(s2, 0);

	X509 *cross = X509_new();
	assert_non_null(cross);
	X509V3_CTX v3;
	assert_int_equal(X509_set_version(cross, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(cross), 4242), 1);
	assert_int_equal(X509_set_issuer_name(cross, X509_get_subject_name(issuer)), 1);
	assert_int_equal(X509_set_subject_name(cross, X509_get_subject_name(subject)), 1);
	assert_int_equal(X509_set_pubkey(cross, X509_get0_pubkey(subject)), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(cross), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(cross), 86400));
	X509V3_set_ctx(&v3, issuer, cross, NULL, NULL, 0);
	X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
	X509_EXTENSION *ku = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
	assert_true(bc && ku && X509_add_ext(cross, bc, -1) && X509_add_ext(cross, ku, -1));
	assert_true(X509_sign(cross, signer, EVP_sha256()) > 0);

	snprintf(path, sizeof(path), "%s/pki/ca-bundle.pem", fx());
	FILE *in = fopen(path, "r"), *out = fopen(out_path, "w");
	assert_true(in && out);
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	assert_int_equal(PEM_write_X509(out, cross), 1);
	fclose(in);
	fclose(out);
	X509_EXTENSION_free(bc);
	X509_EXTENSION_free(ku);
	X509_free(cross);
	EVP_PKEY_free(signer);
	sk_X509_pop_free(s1, X509_free);
	sk_X509_pop_free(s2, X509_free);
}

static void test_generation_cross_signed_ca_refused(void **state)
{
	char bundle[700];
	(void)state;
	snprintf(bundle, sizeof(bundle), "%s/cross-bundle.pem", scratch);
	write_cross_signed_bundle(bundle);
	/* partner 1 trusts its own hierarchy plus partner 2's root by cross
	 * signature: partner 2's clients would verify under both */
	write_conf(HEAD "[partner.partner]\nca = cross-bundle.pem\nbackend = 127.0.0.1:9000\n" PARTNER2, fx());
	expect_build_error(-EINVAL, 10, "ca ", "is also a CA of partner 'partner'");
}

static void test_generation_own_crl_accepted_foreign_refused(void **state)
{
	struct generation *g;
	(void)state;
	write_conf(HEAD PARTNER1, fx());
	if (build(&g) != 0)
		fail_msg("build failed: %s", err);
	generation_unref(g);

	/* Another partner's CRLs given to this one: a mix-up, named. */
	write_conf(HEAD PARTNER1 "crl = %1$s/partner2-pki/crls.pem\n" PARTNER2, fx());
	expect_build_error(-EINVAL, 10, "crl ", "is signed by a CA of partner 'partner2', not of partner 'partner'");
}

/* The seed-style trust package: ca = root + policy CA, crl = the CRLs of
 * every level. The issuing CA's CRL (its CA is not in ca) is kept as a
 * chain CRL, and every CA of ca has its CRL. */
static void test_generation_trust_package_issuing_crl_kept(void **state)
{
	struct generation *g;
	(void)state;
	write_conf(HEAD "[partner.partner]\nca = %1$s/pki/trust-package/ca-bundle.pem\n"
		   "crl = %1$s/pki/trust-package/crls.pem\nbackend = 127.0.0.1:9000\n", fx());
	if (build(&g) != 0)
		fail_msg("build failed: %s", err);
	const struct partner *p = &g->partners[0];
	assert_int_equal(p->n_chain_crls, 1);
	char issuer[256];
	assert_int_equal(cert_name_format(X509_CRL_get_issuer(p->chain_crls[0].crl), issuer, sizeof(issuer)), 0);
	assert_string_equal(issuer, "CN=partner Issuing CA,O=partner");
	assert_int_equal(sk_X509_num(p->cas_without_crl), 0);
	generation_unref(g);
}

/* A CRL that names the issuing CA of pki/ (in ca) but is signed by another
 * key: forged, or the CA was re-keyed; refused, naming both remedies. */
static void test_generation_crl_naming_partner_ca_unsigned_refused(void **state)
{
	STACK_OF(X509) *ca = NULL;
	char path[700], why[256];
	X509_CRL *crl = X509_CRL_new();
	EVP_PKEY *key = EVP_EC_gen("P-256");
	ASN1_TIME *now = ASN1_TIME_adj(NULL, time(NULL), 0, 0), *next = ASN1_TIME_adj(NULL, time(NULL), 7, 0);
	(void)state;
	snprintf(path, sizeof(path), "%s/pki/issuing/ca.crt", fx());
	assert_int_equal(pem_load_certs(path, &ca, why, sizeof(why)), 0);
	assert_non_null(crl);
	assert_non_null(key);
	assert_int_equal(X509_CRL_set_version(crl, 1), 1);
	assert_int_equal(X509_CRL_set_issuer_name(crl, X509_get_subject_name(sk_X509_value(ca, 0))), 1);
	assert_int_equal(X509_CRL_set1_lastUpdate(crl, now), 1);
	assert_int_equal(X509_CRL_set1_nextUpdate(crl, next), 1);
	assert_true(X509_CRL_sign(crl, key, EVP_sha256()) > 0);
	snprintf(path, sizeof(path), "%s/forged-issuing.crl.pem", scratch);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509_CRL(f, crl), 1);
	fclose(f);
	write_conf(HEAD PARTNER1 "crl = forged-issuing.crl.pem\n", fx());
	expect_build_error(-EINVAL, 10, "crl ", "names CA 'CN=partner Issuing CA,O=partner' of partner "
			   "'partner'");
	assert_non_null(strstr(err, "not signed by its key"));
	ASN1_TIME_free(now);
	ASN1_TIME_free(next);
	EVP_PKEY_free(key);
	X509_CRL_free(crl);
	sk_X509_pop_free(ca, X509_free);
}

/*
 * The context generation_build returns is complete: every step of
 * server_ctx_build ran (tls/server_ctx.c), the sessions step included,
 * which reload_build used to apply afterwards, so a context from
 * generation_build alone sent the verification step's one ticket and kept
 * OpenSSL's server-side cache whatever session_cache said.
 */
static void test_generation_ctx_complete_tickets(void **state)
{
	struct generation *g;

	(void)state;
	write_conf("[mtlsd]\nlisten = 127.0.0.1:8443\nsession_cache = tickets\nsession_tickets = 3\n"
		   "session_lifetime = 600s\n[server_cert.ec]\ncert = %1$s/server/chain.pem\nkey = %1$s/server/key.pem\n" PARTNER1, fx());
	assert_int_equal(build(&g), 0);
	SSL_CTX *ctx = g->ssl_ctx;
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION);
	assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
	assert_non_null(SSL_CTX_get0_certificate(ctx));
	assert_int_equal(SSL_CTX_get_num_tickets(ctx), 3);
	assert_int_equal(SSL_CTX_get_timeout(ctx), 600);
	assert_false(SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET);
	assert_int_equal(SSL_CTX_get_session_cache_mode(ctx), SSL_SESS_CACHE_OFF);
	generation_unref(g);
}

/* The default without a ticket_key_file: stateful, on mtlsd's own cache. */
static void test_generation_ctx_complete_default_stateful(void **state)
{
	struct generation *g;

	(void)state;
	write_conf("[mtlsd]\nlisten = 127.0.0.1:8443\n"
		   "[server_cert.ec]\ncert = %1$s/server/chain.pem\nkey = %1$s/server/key.pem\n" PARTNER1, fx());
	assert_int_equal(build(&g), 0);
	assert_true(SSL_CTX_get_options(g->ssl_ctx) & SSL_OP_NO_TICKET);
	assert_int_equal(SSL_CTX_get_session_cache_mode(g->ssl_ctx),
			 SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
	assert_int_equal(SSL_CTX_get_num_tickets(g->ssl_ctx), 1);
	generation_unref(g);
}

/* Twin: session_cache = off leaves no way to resume, in the same build. */
static void test_generation_ctx_complete_sessions_off(void **state)
{
	struct generation *g;

	(void)state;
	write_conf("[mtlsd]\nlisten = 127.0.0.1:8443\nsession_cache = off\n"
		   "[server_cert.ec]\ncert = %1$s/server/chain.pem\nkey = %1$s/server/key.pem\n" PARTNER1, fx());
	assert_int_equal(build(&g), 0);
	assert_int_equal(SSL_CTX_get_num_tickets(g->ssl_ctx), 0);
	assert_true(SSL_CTX_get_options(g->ssl_ctx) & SSL_OP_NO_TICKET);
	assert_int_equal(SSL_CTX_get_session_cache_mode(g->ssl_ctx), SSL_SESS_CACHE_OFF);
	generation_unref(g);
}

/* A ticket key file is read by the build itself: a missing one fails it,
 * naming the file. */
static void test_generation_missing_ticket_key_file_refused(void **state)
{
	struct generation *g;

	(void)state;
	write_conf("[mtlsd]\nlisten = 127.0.0.1:8443\nticket_key_file = %1$s/nope/ticket.key\n"
		   "[server_cert.ec]\ncert = %1$s/server/chain.pem\nkey = %1$s/server/key.pem\n" PARTNER1, fx());
	assert_true(build(&g) < 0);
	assert_null(g);
	if (!strstr(err, "/nope/ticket.key"))
		fail_msg("error does not name the ticket key file: %s", err);
}

static void test_generation_key_mismatch_refused(void **state)
{
	(void)state;
	write_conf("[mtlsd]\nlisten = 127.0.0.1:8443\n[server_cert.ec]\ncert = %1$s/server/chain.pem\n"
		   "key = %1$s/client-ec/key.pem\n" PARTNER1, fx());
	expect_build_error(-EINVAL, 5, "key ", "does not match the certificate");
}

static void test_generation_client_cert_as_server_cert_refused(void **state)
{
	(void)state;
	write_conf("[mtlsd]\nlisten = 127.0.0.1:8443\n[server_cert.ec]\ncert = %1$s/client-ec/chain.pem\n"
		   "key = %1$s/client-ec/key.pem\n" PARTNER1, fx());
	expect_build_error(-EINVAL, 4, "cert ", "is not a TLS server certificate");
}

static void test_generation_missing_cert_file(void **state)
{
	(void)state;
	write_conf("[mtlsd]\nlisten = 127.0.0.1:8443\n[server_cert.ec]\ncert = %1$s/nope/chain.pem\n"
		   "key = %1$s/server/key.pem\n" PARTNER1, fx());
	expect_build_error(-ENOENT, 4, "cert ", "/nope/chain.pem: no such file");
}

static void test_generation_malformed_ca_bundle(void **state)
{
	char path[700];
	(void)state;
	snprintf(path, sizeof(path), "%s/broken.pem", scratch);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n", f);
	fclose(f);
	write_conf(HEAD "[partner.p]\nca = broken.pem\nbackend = 127.0.0.1:9000\n", fx());
	expect_build_error(-EBADMSG, 7, "ca ", "malformed PEM");
}

static void test_generation_insecure_key_refused_unless_allowed(void **state)
{
	char key[700], buf[8192];
	struct generation *g;
	(void)state;
	snprintf(key, sizeof(key), "%s/server-0644.key", scratch);
	snprintf(buf, sizeof(buf), "%s/server/key.pem", fx());
	FILE *in = fopen(buf, "r");
	assert_non_null(in);
	size_t n = fread(buf, 1, sizeof(buf), in);
	fclose(in);
	int fd = open(key, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, n), (ssize_t)n);
	close(fd);
	assert_int_equal(chmod(key, 0644), 0);

	write_conf("[mtlsd]\nlisten = 127.0.0.1:8443\n[server_cert.ec]\ncert = %1$s/server/chain.pem\n"
		   "key = server-0644.key\n" PARTNER1, fx());
	expect_build_error(-EPERM, 5, "key ", "mode 0644");

	write_conf("[mtlsd]\nlisten = 127.0.0.1:8443\nallow_insecure_key_permissions = yes\n"
		   "[server_cert.ec]\ncert = %1$s/server/chain.pem\nkey = server-0644.key\n" PARTNER1, fx());
	if (build(&g) != 0)
		fail_msg("build failed: %s", err);
	generation_unref(g);
	unlink(key);
}

static void test_generation_bundle_without_root_refused(void **state)
{
	(void)state;
	write_conf(HEAD "[partner.p]\nca = %1$s/pki/chain.pem\nbackend = 127.0.0.1:9000\n", fx());
	expect_build_error(-EINVAL, 7, "ca ", "no self-signed root CA");
}

static void test_generation_leaf_in_bundle_refused(void **state)
{
	(void)state;
	write_conf(HEAD "[partner.p]\nca = %1$s/client-ec/cert.pem\nbackend = 127.0.0.1:9000\n", fx());
	expect_build_error(-EINVAL, 7, "ca ", "is not a CA");
}

static void test_generation_bad_pattern_names_its_line(void **state)
{
	struct generation *g;
	(void)state;
	write_conf(HEAD PARTNER1 "allow_uri = spiffe://partner.example/prod/*\n"
		   "allow_dns = app1.partner.example\nallow_uri = not a uri\n", fx());
	expect_build_error(-EINVAL, 12, "key 'allow_uri': pattern 'not a uri'", NULL);

	write_conf(HEAD PARTNER1 "allow_uri = spiffe://partner.example/prod/*\n"
		   "allow_dns = app1.partner.example\n", fx());
	if (build(&g) != 0)
		fail_msg("build failed: %s", err);
	assert_false(g->partners[0].policy.any_allowed);
	generation_unref(g);
}

static void test_generation_flags_errors_name_the_flag(void **state)
{
	struct mtlsd_config cfg;
	struct generation *g;
	char path[700];
	(void)state;
	config_init(&cfg);
	snprintf(path, sizeof(path), "%s/server/chain.pem", fx());
	assert_int_equal(config_apply_flag(&cfg, "cert", path, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/server/key.pem", fx());
	assert_int_equal(config_apply_flag(&cfg, "key", path, err, sizeof(err)), 0);
	assert_int_equal(config_apply_flag(&cfg, "listen", "127.0.0.1:8443", err, sizeof(err)), 0);
	assert_int_equal(config_apply_flag(&cfg, "client-ca", "/nonexistent/ca.pem", err, sizeof(err)), 0);
	assert_int_equal(config_apply_flag(&cfg, "backend", "127.0.0.1:9000", err, sizeof(err)), 0);
	assert_int_equal(generation_build(&cfg, 1, &g, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "--client-ca /nonexistent/ca.pem: no such file; check the path");
}

/*
 * The partner stores on their own, without verify.c: what OpenSSL decides
 * with exactly the anchors, CRLs, flags and depth the build put there.
 */
static int verify_in_store(const struct partner *p, const char *leaf_dir)
{
	STACK_OF(X509) *chain = NULL;
	char path[700];
	snprintf(path, sizeof(path), "%s/%s/chain.pem", fx(), leaf_dir);
	assert_int_equal(pem_load_certs(path, &chain, err, sizeof(err)), 0);
	X509_STORE_CTX *v = X509_STORE_CTX_new();
	assert_non_null(v);
	assert_int_equal(X509_STORE_CTX_init(v, p->store, sk_X509_value(chain, 0), chain), 1);
	int ok = X509_verify_cert(v);
	int rc = ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(v);
	X509_STORE_CTX_free(v);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

static void test_generation_store_verifies_partner_clients(void **state)
{
	struct generation *g;
	(void)state;
	write_conf(HEAD PARTNER1 PARTNER2
		   "[partner.deep]\nca = %1$s/deep-pki/ca-bundle.pem\ncrl = %1$s/deep-pki/crls.pem\n"
		   "backend = 127.0.0.1:9003\n", fx());
	if (build(&g) != 0)
		fail_msg("build failed: %s", err);
	assert_int_equal(verify_in_store(&g->partners[0], "client-ec"), X509_V_OK);
	assert_int_equal(verify_in_store(&g->partners[0], "client-rsa"), X509_V_OK);
	assert_int_equal(verify_in_store(&g->partners[1], "client-partner2"), X509_V_OK);
	generation_unref(g);
}

static void test_generation_store_rejects(void **state)
{
	struct generation *g;
	(void)state;
	write_conf(HEAD PARTNER1 PARTNER2
		   "[partner.deep]\nca = %1$s/deep-pki/ca-bundle.pem\ncrl = %1$s/deep-pki/crls.pem\n"
		   "backend = 127.0.0.1:9003\n", fx());
	if (build(&g) != 0)
		fail_msg("build failed: %s", err);
	assert_int_equal(verify_in_store(&g->partners[0], "client-revoked"), X509_V_ERR_CERT_REVOKED);
	assert_int_equal(verify_in_store(&g->partners[0], "client-expired"), X509_V_ERR_CERT_HAS_EXPIRED);
	assert_int_equal(verify_in_store(&g->partners[0], "client-servereku"), X509_V_ERR_INVALID_PURPOSE);
	/* partner 1's store knows nothing of partner 2's CAs, and the reverse */
	assert_int_equal(verify_in_store(&g->partners[0], "client-partner2"),
			 X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
	assert_int_equal(verify_in_store(&g->partners[1], "client-ec"),
			 X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
	/* 4 CA levels above the leaf with the default verify_depth of 3 */
	assert_int_equal(verify_in_store(&g->partners[2], "client-deep"), X509_V_ERR_CERT_CHAIN_TOO_LONG);
	generation_unref(g);
}

static void test_generation_store_depth_4_admits_deep_chain(void **state)
{
	struct generation *g;
	(void)state;
	write_conf(HEAD "[partner.deep]\nca = %1$s/deep-pki/ca-bundle.pem\ncrl = %1$s/deep-pki/crls.pem\n"
		   "verify_depth = 4\nbackend = 127.0.0.1:9003\n", fx());
	if (build(&g) != 0)
		fail_msg("build failed: %s", err);
	assert_int_equal(verify_in_store(&g->partners[0], "client-deep"), X509_V_OK);
	generation_unref(g);
}

/*
 * A real handshake in memory between the generation's SSL_CTX and an
 * OpenSSL client: proves the context as clients meet it (versions, suites,
 * which server certificate is chosen). Returns 1 when both sides finished,
 * 0 when the handshake failed; *server_key_id gets the server key type.
 */
static const char *client_groups;  /* the client's groups list, NULL: its default */
static char negotiated_group[64];  /* the server's view after handshake_with */
/* The handshake message type that carried each side's certificate, as the
 * client saw it: 11 Certificate, 25 CompressedCertificate (RFC 8879). */
static int server_cert_msg, client_cert_msg;

static void cert_msg_observer(int write_p, int version, int content_type, const void *buf, size_t len,
			      SSL *ssl, void *arg)
{
	const unsigned char *p = buf;
	(void)version, (void)ssl, (void)arg;
	if (content_type != SSL3_RT_HANDSHAKE || len < 1 || (p[0] != 11 && p[0] != 25))
		return;
	*(write_p ? &client_cert_msg : &server_cert_msg) = p[0];
}

static int handshake_with(struct generation *g, const char *client_leaf, int max_version,
			  const char *tls12_ciphers, const char *sigalgs, int *server_key_id)
{
	char cert[700], key[700];
	struct verify_result res = { 0 };
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(cctx);
	snprintf(cert, sizeof(cert), "%s/%s/chain.pem", fx(), client_leaf);
	snprintf(key, sizeof(key), "%s/%s/key.pem", fx(), client_leaf);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(cctx, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(cctx, key, SSL_FILETYPE_PEM), 1);
	assert_int_equal(SSL_CTX_set_max_proto_version(cctx, max_version), 1);
	if (max_version < TLS1_2_VERSION)
		SSL_CTX_set_security_level(cctx, 0); /* let the client try at all */
	if (tls12_ciphers)
		assert_int_equal(SSL_CTX_set_cipher_list(cctx, tls12_ciphers), 1);
	if (sigalgs)
		assert_int_equal(SSL_CTX_set1_sigalgs_list(cctx, sigalgs), 1);
	if (client_groups)
		assert_int_equal(SSL_CTX_set1_groups_list(cctx, client_groups), 1);
	server_cert_msg = client_cert_msg = 0;
	SSL_CTX_set_msg_callback(cctx, cert_msg_observer);

	SSL *s = SSL_new(g->ssl_ctx), *c = SSL_new(cctx);
	BIO *sb = NULL, *cb = NULL;
	assert_true(s && c && BIO_new_bio_pair(&sb, 0, &cb, 0) == 1);
	SSL_set_bio(s, sb, sb);
	SSL_set_bio(c, cb, cb);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	assert_int_equal(verify_attach(s, &res), 0);

	int done = 0;
	for (int round = 0; round < 50 && done == 0; round++) {
		int rc_c = SSL_do_handshake(c), rc_s = SSL_do_handshake(s);
		int e_c = SSL_get_error(c, rc_c), e_s = SSL_get_error(s, rc_s);
		if (rc_c == 1 && rc_s == 1)
			done = 1;
		else if ((rc_c != 1 && e_c != SSL_ERROR_WANT_READ) || (rc_s != 1 && e_s != SSL_ERROR_WANT_READ))
			done = -1;
	}
	*server_key_id = 0;
	const char *group = done == 1 ? SSL_group_to_name(s, SSL_get_negotiated_group(s)) : NULL;
	snprintf(negotiated_group, sizeof(negotiated_group), "%s", group ? group : "");
	X509 *server_leaf = SSL_get1_peer_certificate(c);
	if (server_leaf)
		*server_key_id = EVP_PKEY_get_base_id(X509_get0_pubkey(server_leaf));
	X509_free(server_leaf);
	ERR_clear_error();
	verify_result_clear(&res);
	SSL_free(s);
	SSL_free(c);
	SSL_CTX_free(cctx);
	return done == 1;
}

#define BOTH_CERTS HEAD "[server_cert.rsa]\ncert = %1$s/server-rsa/chain.pem\nkey = %1$s/server-rsa/key.pem\n"

static void test_generation_handshake_picks_server_cert_per_client(void **state)
{
	struct generation *g;
	int key_id;
	(void)state;
	write_conf(BOTH_CERTS PARTNER1, fx());
	if (build(&g) != 0)
		fail_msg("build failed: %s", err);
	assert_true(handshake_with(g, "client-ec", TLS1_3_VERSION, NULL, NULL, &key_id));
	assert_int_equal(key_id, EVP_PKEY_EC);
	/* a client that can only check RSA signatures gets the RSA certificate */
	assert_true(handshake_with(g, "client-rsa", TLS1_3_VERSION, NULL,
				   "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:RSA+SHA256", &key_id));
	assert_int_equal(key_id, EVP_PKEY_RSA);
	assert_true(handshake_with(g, "client-ec", TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305", NULL, &key_id));
	generation_unref(g);
}

/* Issue 16: on OpenSSL 3.5 (the lts stack, and Debian 13's system library)
 * a client that offers the hybrid post-quantum group gets it. On 3.0 there
 * is no ML-KEM to offer: skipped, saying so (.ci/lts runs it on 3.5). */
static void test_generation_post_quantum_group_when_offered(void **state)
{
	struct generation *g;
	int key_id;
	(void)state;
	SSL_CTX *probe = SSL_CTX_new(TLS_client_method());
	bool have = probe && SSL_CTX_set1_groups_list(probe, "X25519MLKEM768") == 1;
	SSL_CTX_free(probe);
	ERR_clear_error();
	if (!have) {
		print_message("skipped: %s has no X25519MLKEM768 (OpenSSL 3.5 has it)\n",
			      OpenSSL_version(OPENSSL_VERSION));
		skip();
	}
	write_conf(HEAD PARTNER1, fx());
	if (build(&g) != 0)
		fail_msg("build failed: %s", err);
	client_groups = "X25519MLKEM768:X25519";
	assert_true(handshake_with(g, "client-ec", TLS1_3_VERSION, NULL, NULL, &key_id));
	client_groups = NULL;
	assert_string_equal(negotiated_group, "X25519MLKEM768");
	generation_unref(g);
}

/* Twin, on every stack: a client offering only X25519 gets X25519 (the
 * post-quantum group is offered, never required). */
static void test_generation_classic_group_still_served(void **state)
{
	struct generation *g;
	int key_id;
	(void)state;
	write_conf(HEAD PARTNER1, fx());
	if (build(&g) != 0)
		fail_msg("build failed: %s", err);
	client_groups = "X25519";
	assert_true(handshake_with(g, "client-ec", TLS1_3_VERSION, NULL, NULL, &key_id));
	client_groups = NULL;
	assert_string_equal(negotiated_group, "x25519");
	generation_unref(g);
}

/* Issue 16: on a stack with RFC 8879 (the lts stack) the server's chain
 * goes compressed to a client that offers it (OpenSSL's client offers
 * every algorithm it was built with), and the client's compressed
 * certificate is accepted and verified. Skipped where the stack has no
 * algorithm, saying so (.ci/lts runs it). */
static void test_generation_certificates_compressed_when_offered(void **state)
{
	struct generation *g;
	int key_id;
	(void)state;
	if (!OSSL_HAVE_CERT_COMPRESSION) {
		print_message("skipped: %s has no certificate compression (the lts stack has it)\n",
			      OpenSSL_version(OPENSSL_VERSION));
		skip();
	}
	write_conf(HEAD PARTNER1, fx());
	if (build(&g) != 0)
		fail_msg("build failed: %s", err);
	assert_true(handshake_with(g, "client-ec", TLS1_3_VERSION, NULL, NULL, &key_id));
	assert_int_equal(server_cert_msg, 25);
	assert_int_equal(client_cert_msg, 25);
	generation_unref(g);
}

/* Twin: certificate_compression = no sends and takes plain Certificates,
 * even to a client that offers compression. */
static void test_generation_certificate_compression_off(void **state)
{
	struct generation *g;
	int key_id;
	(void)state;
	write_conf("[mtlsd]\nlisten = 127.0.0.1:8443\ncertificate_compression = no\n"
		   "[server_cert.ec]\ncert = %1$s/server/chain.pem\nkey = %1$s/server/key.pem\n" PARTNER1, fx());
	if (build(&g) != 0)
		fail_msg("build failed: %s", err);
	assert_false(g->cfg.cert_compression);
	assert_true(handshake_with(g, "client-ec", TLS1_3_VERSION, NULL, NULL, &key_id));
	assert_int_equal(server_cert_msg, 11);
	assert_int_equal(client_cert_msg, 11);
	generation_unref(g);
}

static void test_generation_handshake_refuses_old_protocols_and_suites(void **state)
{
	struct generation *g;
	int key_id;
	(void)state;
	write_conf(BOTH_CERTS PARTNER1, fx());
	if (build(&g) != 0)
		fail_msg("build failed: %s", err);
	assert_false(handshake_with(g, "client-ec", TLS1_1_VERSION, "ALL:@SECLEVEL=0", NULL, &key_id));
	/* TLS 1.2 without forward secrecy, or CBC: nothing in common */
	assert_false(handshake_with(g, "client-ec", TLS1_2_VERSION, "AES128-GCM-SHA256", NULL, &key_id));
	assert_false(handshake_with(g, "client-ec", TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA256", NULL, &key_id));
	/* and no client certificate from an unknown CA */
	assert_false(handshake_with(g, "client-unknownca", TLS1_3_VERSION, NULL, NULL, &key_id));
	generation_unref(g);
}

/* A bare generation for the publication tests: nothing to load. */
static struct generation *bare_generation(uint64_t id)
{
	struct generation *g = calloc(1, sizeof(*g));
	assert_non_null(g);
	atomic_init(&g->refs, 1);
	g->id = id;
	return g;
}

static void test_generation_publish_acquire(void **state)
{
	(void)state;
	struct generation *a = bare_generation(7), *b = bare_generation(8);
	generation_publish(generation_ref(a));
	assert_int_equal(generation_current_id(), 7);
	struct generation *got = generation_acquire();
	assert_ptr_equal(got, a);
	assert_int_equal(atomic_load(&a->refs), 3); /* ours, published, acquired */
	generation_publish(b);                      /* takes our reference to b */
	assert_int_equal(generation_current_id(), 8);
	assert_int_equal(atomic_load(&a->refs), 2); /* publication's dropped */
	generation_unref(got);
	generation_unref(a); /* last: freed (ASan/valgrind would see a leak otherwise) */
	got = generation_acquire();
	assert_ptr_equal(got, b);
	generation_unref(got);
	generation_publish(NULL);
	assert_int_equal(generation_current_id(), 0);
	assert_null(generation_acquire());
}

/* Readers take and drop references while the main thread keeps replacing
 * the published generation: every acquired generation must still be alive
 * (its id matches what it was built with) when the reader looks at it. */
static atomic_bool stop_readers;

static void *reader(void *arg)
{
	unsigned long bad = 0;
	(void)arg;
	while (!atomic_load(&stop_readers)) {
		struct generation *g = generation_acquire();
		if (!g)
			continue;
		if (g->id == 0 || g->id != g->cfg.workers)
			bad++;
		generation_unref(g);
	}
	return (void *)bad;
}

static void test_generation_publish_races_acquire(void **state)
{
	pthread_t t[2];
	(void)state;
	atomic_store(&stop_readers, false);
	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		assert_int_equal(pthread_create(&t[i], NULL, reader, NULL), 0);
	for (uint64_t id = 1; id <= 20000; id++) {
		struct generation *g = bare_generation(id);
		/* a canary that the free path zeroes: a freed one would not match */
		g->cfg.workers = (unsigned)id;
		generation_publish(g);
	}
	atomic_store(&stop_readers, true);
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		void *bad;
		assert_int_equal(pthread_join(t[i], &bad), 0);
		assert_int_equal((uintptr_t)bad, 0);
	}
	generation_publish(NULL);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(scratch))
		return -1;
	snprintf(conf_path, sizeof(conf_path), "%s/mtlsd.conf", scratch);
	return 0;
}

static int teardown(void **state)
{
	char cmd[700];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generation_ecdsa_and_rsa_two_partners),
		cmocka_unit_test(test_generation_two_ecdsa_certs_refused),
		cmocka_unit_test(test_generation_shared_anchor_refused),
		cmocka_unit_test(test_generation_cross_signed_ca_refused),
		cmocka_unit_test(test_generation_own_crl_accepted_foreign_refused),
		cmocka_unit_test(test_generation_trust_package_issuing_crl_kept),
		cmocka_unit_test(test_generation_crl_naming_partner_ca_unsigned_refused),
		cmocka_unit_test(test_generation_ctx_complete_tickets),
		cmocka_unit_test(test_generation_ctx_complete_default_stateful),
		cmocka_unit_test(test_generation_ctx_complete_sessions_off),
		cmocka_unit_test(test_generation_missing_ticket_key_file_refused),
		cmocka_unit_test(test_generation_key_mismatch_refused),
		cmocka_unit_test(test_generation_client_cert_as_server_cert_refused),
		cmocka_unit_test(test_generation_missing_cert_file),
		cmocka_unit_test(test_generation_malformed_ca_bundle),
		cmocka_unit_test(test_generation_insecure_key_refused_unless_allowed),
		cmocka_unit_test(test_generation_bundle_without_root_refused),
		cmocka_unit_test(test_generation_leaf_in_bundle_refused),
		cmocka_unit_test(test_generation_bad_pattern_names_its_line),
		cmocka_unit_test(test_generation_flags_errors_name_the_flag),
		cmocka_unit_test(test_generation_store_verifies_partner_clients),
		cmocka_unit_test(test_generation_store_rejects),
		cmocka_unit_test(test_generation_store_depth_4_admits_deep_chain),
		cmocka_unit_test(test_generation_handshake_picks_server_cert_per_client),
		cmocka_unit_test(test_generation_post_quantum_group_when_offered),
		cmocka_unit_test(test_generation_certificates_compressed_when_offered),
		cmocka_unit_test(test_generation_certificate_compression_off),
		cmocka_unit_test(test_generation_classic_group_still_served),
		cmocka_unit_test(test_generation_handshake_refuses_old_protocols_and_suites),
		cmocka_unit_test(test_generation_publish_acquire),
		cmocka_unit_test(test_generation_publish_races_acquire),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
