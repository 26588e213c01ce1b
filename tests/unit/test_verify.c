/*
 * test_verify.c: the client-certificate policy, driven through real TLS
 * handshakes.
 *
 * A minimal struct generation is built here from the fixture hierarchies
 * (tests/fixtures.md): partner 0 trusts pki/ with its CRLs and an allow-list
 * on prod SPIFFE IDs, partner 1 trusts partner2-pki/ with no allow-list,
 * partner 2 trusts deep-pki/. The server SSL_CTX gets verify_install() and
 * every fixture client handshakes with it in memory (a BIO pair), so the
 * real callback, the real OpenSSL chain check and the real alerts run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cert_name.h"
#include "generation.h"
#include "session_binding.h"
#include "verify.h"

enum { P_PARTNER = 0, P_PARTNER2, P_DEEP, N_PARTNERS };

static const char *fixtures;
static struct cfg_partner cfgs[N_PARTNERS];
static struct partner partners[N_PARTNERS];
static struct generation gen1, gen2;
static SSL_CTX *server_ctx1, *server_ctx2;

static char *fixture_path(const char *rel)
{
	static char path[4][1024];
	static int slot;
	char *p = path[slot++ % 4];

	snprintf(p, sizeof(path[0]), "%s/%s", fixtures, rel);
	return p;
}

static STACK_OF(X509) *load_certs(const char *rel)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *bio = BIO_new_file(fixture_path(rel), "r");
	X509 *x;

	if (!bio)
		fail_msg("cannot open fixture %s", rel);
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
		sk_X509_push(sk, x);
	ERR_clear_error();
	BIO_free(bio);
	assert_true(sk_X509_num(sk) > 0);
	return sk;
}

static void add_crls(X509_STORE *store, const char *rel)
{
	BIO *bio = BIO_new_file(fixture_path(rel), "r");
	X509_CRL *crl;
	int n = 0;

	assert_non_null(bio);
	while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL))) {
		assert_int_equal(X509_STORE_add_crl(store, crl), 1);
		X509_CRL_free(crl);
		n++;
	}
	ERR_clear_error();
	BIO_free(bio);
	assert_true(n > 0);
}

static struct cfg_strlist strlist(int n, ...)
{
	struct cfg_strlist l = { .v = calloc((size_t)n + 1, sizeof(char *)), .n = (size_t)n };
	va_list ap;

	va_start(ap, n);
	for (int i = 0; i < n; i++)
		l.v[i] = strdup(va_arg(ap, const char *));
	va_end(ap);
	return l;
}

static X509 *load_leaf(const char *name)
{
	char rel[256];
	STACK_OF(X509) *sk;
	X509 *x;

	snprintf(rel, sizeof(rel), "%s/cert.pem", name);
	sk = load_certs(rel);
	x = sk_X509_shift(sk);
	sk_X509_pop_free(sk, X509_free);
	return x;
}

static void strlist_free(struct cfg_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	*l = (struct cfg_strlist){ 0 };
}

/* One partner from a hierarchy dir: its bundle split into anchors and
 * intermediates, its CRLs (when crls is set), its compiled policy. */
static void build_partner(unsigned idx, const char *hier, bool crls)
{
	struct partner *p = &partners[idx];
	char rel[256], err[256];
	STACK_OF(X509) *bundle;

	snprintf(rel, sizeof(rel), "%s/ca-bundle.pem", hier);
	bundle = load_certs(rel);
	p->idx = idx;
	p->cfg = &cfgs[idx];
	p->store = X509_STORE_new();
	/* As generation.c builds it: strict X.509, sslclient purpose. */
	assert_int_equal(X509_STORE_set_flags(p->store, X509_V_FLAG_X509_STRICT), 1);
	assert_int_equal(X509_STORE_set_purpose(p->store, X509_PURPOSE_SSL_CLIENT), 1);
	p->anchors = sk_X509_new_null();
	p->intermediates = sk_X509_new_null();
	for (int i = 0; i < sk_X509_num(bundle); i++) {
		X509 *x = sk_X509_value(bundle, i);

		assert_int_equal(X509_STORE_add_cert(p->store, x), 1);
		X509_up_ref(x);
		if (X509_check_issued(x, x) == X509_V_OK)
			sk_X509_push(p->anchors, x);
		else
			sk_X509_push(p->intermediates, x);
	}
	sk_X509_pop_free(bundle, X509_free);
	if (crls) {
		snprintf(rel, sizeof(rel), "%s/crls.pem", hier);
		add_crls(p->store, rel);
	}
	assert_int_equal(partner_policy_compile(p->cfg, &p->policy, err, sizeof(err)), 0);
}

static void rebuild_partner_policy(unsigned idx)
{
	char err[256];

	partner_policy_free(&partners[idx].policy);
	assert_int_equal(partner_policy_compile(&cfgs[idx], &partners[idx].policy, err, sizeof(err)), 0);
}

static SSL_CTX *make_server_ctx(struct generation *g)
{
	static const unsigned char ticket_keys[80] = "mtlsd test ticket keys shared by both generations....";
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION), 1);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, fixture_path("server/chain.pem")), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, fixture_path("server/key.pem"), SSL_FILETYPE_PEM), 1);
	/* Same ticket keys in both generations, as a reload that keeps
	 * resumption working would have: only the binding tells them apart. */
	assert_int_equal(SSL_CTX_set_tlsext_ticket_keys(ctx, (void *)ticket_keys, sizeof(ticket_keys)), 1);
	assert_int_equal(verify_install(ctx, g), 0);
	return ctx;
}

static int group_setup(void **state)
{
	fixtures = getenv("MTLS_FIXTURES");
	if (!fixtures) {
		fprintf(stderr, "MTLS_FIXTURES is not set (run through meson test)\n");
		exit(77);
	}
	cfgs[P_PARTNER] = (struct cfg_partner){
		.name = "partner", .verify_depth = 3, .crl_paths = strlist(1, "pki/crls.pem"),
		.allow_uri = strlist(1, "spiffe://partner.example/prod/*"),
		.allow_dns = strlist(1, "*.partner.example"),
	};
	cfgs[P_PARTNER2] = (struct cfg_partner){ .name = "partner2", .verify_depth = 3 };
	cfgs[P_DEEP] = (struct cfg_partner){ .name = "deep", .verify_depth = 3 };
	build_partner(P_PARTNER, "pki", true);
	build_partner(P_PARTNER2, "partner2-pki", true);
	build_partner(P_DEEP, "deep-pki", false);
	cfgs[P_PARTNER2].crl_paths = strlist(1, "partner2-pki/crls.pem");

	gen1.id = 1;
	gen1.cfg.session_lifetime_s = 3600; /* config_init's default */
	gen1.partners = partners;
	gen1.n_partners = N_PARTNERS;
	gen2 = gen1;
	gen2.id = 2;
	server_ctx1 = make_server_ctx(&gen1);
	server_ctx2 = make_server_ctx(&gen2);
	(void)state;
	return 0;
}

static int group_teardown(void **state)
{
	SSL_CTX_free(server_ctx1);
	SSL_CTX_free(server_ctx2);
	for (int i = 0; i < N_PARTNERS; i++) {
		strlist_free(&cfgs[i].crl_paths);
		strlist_free(&cfgs[i].allow_uri);
		strlist_free(&cfgs[i].allow_dns);
		X509_STORE_free(partners[i].store);
		sk_X509_pop_free(partners[i].anchors, X509_free);
		sk_X509_pop_free(partners[i].intermediates, X509_free);
		partner_policy_free(&partners[i].policy);
	}
	(void)state;
	return 0;
}

struct client_opts {
	const char *name;       /* fixture leaf dir, NULL: no certificate */
	int max_version;        /* 0: library default */
	SSL_SESSION *resume;    /* offer this session */
	SSL_SESSION **keep;     /* store the session the server issued */
	const char *garbage;    /* send this instead of a ClientHello */
	X509 *leaf;             /* present this leaf instead of name's (same key) */
	bool no_ticket;         /* TLS 1.2 session-ID resumption only */
	SSL_SESSION **server_keep; /* store the server's session (its binding) */
};

static SSL_CTX *make_client_ctx(const struct client_opts *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char rel[256];

	assert_non_null(ctx);
	/* The client must be able to offer what the server is to refuse
	 * (RSA-1024, TLS 1.1), so its own checks are off. */
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (o->max_version) {
		SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
		SSL_CTX_set_max_proto_version(ctx, o->max_version);
	}
	if (o->name) {
		snprintf(rel, sizeof(rel), "%s/chain.pem", o->name);
		assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, fixture_path(rel)), 1);
		snprintf(rel, sizeof(rel), "%s/key.pem", o->name);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, fixture_path(rel), SSL_FILETYPE_PEM), 1);
	}
	if (o->leaf)
		assert_int_equal(SSL_CTX_use_certificate(ctx, o->leaf), 1);
	if (o->no_ticket)
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	return ctx;
}

/* The last alert the client received (-1: none), to check what the peer
 * is told, not only what mtlsd records. */
static int client_alert = -1;
/* Subjects the server asked for in its CertificateRequest. */
static int client_ca_names = -1;
static char client_ca_first[256];

static void client_info_cb(const SSL *ssl, int where, int ret)
{
	(void)ssl;
	if (where & SSL_CB_READ_ALERT)
		client_alert = ret & 0xff;
}

/* Run one handshake; returns the settled outcome, res keeps the detail. */
static enum hs_outcome handshake(SSL_CTX *sctx, struct generation *g, const struct client_opts *o,
				 struct verify_result *res)
{
	SSL_CTX *cctx = make_client_ctx(o);
	SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
	BIO *sbio, *cbio;
	enum hs_outcome out = HS_OUTCOME_MAX;

	assert_int_equal(BIO_new_bio_pair(&sbio, 0, &cbio, 0), 1);
	SSL_set_bio(s, sbio, sbio);
	SSL_set_bio(c, cbio, cbio);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	SSL_set_info_callback(c, client_info_cb);
	client_alert = -1;
	memset(res, 0, sizeof(*res));
	assert_int_equal(verify_attach(s, res), 0);
	if (o->resume)
		assert_int_equal(SSL_set_session(c, o->resume), 1);
	if (o->garbage)
		assert_true(BIO_write(cbio, o->garbage, (int)strlen(o->garbage)) > 0);

	for (int round = 0; round < 20 && out == HS_OUTCOME_MAX; round++) {
		int sr;

		if (!o->garbage)
			(void)SSL_do_handshake(c);
		ERR_clear_error();
		sr = SSL_do_handshake(s);
		if (sr == 1) {
			out = verify_settle_success(s, g, res);
		} else if (SSL_get_error(s, sr) != SSL_ERROR_WANT_READ) {
			char byte;

			verify_settle_failure(s, ERR_peek_error(), res);
			out = res->outcome;
			/* A TLS 1.3 client has finished before the server decides:
			 * it sees the alert on its next read. */
			(void)SSL_read(c, &byte, 1);
		}
	}
	assert_int_not_equal(out, HS_OUTCOME_MAX);
	{
		const STACK_OF(X509_NAME) *cas = SSL_get0_peer_CA_list(c);

		client_ca_names = cas ? sk_X509_NAME_num(cas) : -1;
		client_ca_first[0] = '\0';
		if (client_ca_names > 0)
			assert_int_equal(cert_name_format(sk_X509_NAME_value(cas, 0), client_ca_first,
							  sizeof(client_ca_first)), 0);
	}
	if (out == HS_OK && o->keep) {
		char byte;

		/* TLS 1.3 tickets arrive after the handshake: let the client
		 * read them before taking the session. */
		(void)SSL_read(c, &byte, 1);
		*o->keep = SSL_get1_session(c);
		assert_true(SSL_SESSION_is_resumable(*o->keep));
	}
	if (out == HS_OK && o->server_keep)
		*o->server_keep = SSL_get1_session(s);
	/* A clean close: SSL_free() after an unclean one marks the session
	 * not resumable (OpenSSL's bad-session rule). */
	if (out == HS_OK) {
		(void)SSL_shutdown(c);
		(void)SSL_shutdown(s);
	}
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
	return out;
}

static void expect(const char *client, enum hs_outcome want, int want_partner)
{
	struct client_opts o = { .name = client };
	struct verify_result res;
	enum hs_outcome got = handshake(server_ctx1, &gen1, &o, &res);

	if (got != want)
		fail_msg("%s: outcome %s (%s), expected %s", client ? client : "(no cert)",
			 hs_outcome_name(got), res.detail, hs_outcome_name(want));
	if (res.partner != want_partner)
		fail_msg("%s: partner %d (claimed %d), expected %d: %s", client ? client : "(no cert)", res.partner, res.claimed_partner, want_partner, res.detail);
	assert_false(res.resumed);
	/* The leaf is recorded even when it is refused. */
	if (client)
		assert_non_null(res.leaf);
	else
		assert_null(res.leaf);
	verify_result_clear(&res);
	assert_null(res.leaf);
}

static void test_verify_client_ec_ok(void **state) { (void)state; expect("client-ec", HS_OK, P_PARTNER); }
static void test_verify_client_rsa_ok(void **state) { (void)state; expect("client-rsa", HS_OK, P_PARTNER); }
static void test_verify_partner2_attributed(void **state) { (void)state; expect("client-partner2", HS_OK, P_PARTNER2); }
static void test_verify_no_certificate(void **state) { (void)state; expect(NULL, HS_NO_CERT, -1); }
static void test_verify_unknown_ca(void **state) { (void)state; expect("client-unknownca", HS_UNKNOWN_CA, -1); }
static void test_verify_expired(void **state) { (void)state; expect("client-expired", HS_EXPIRED, P_PARTNER); }
static void test_verify_not_yet_valid(void **state) { (void)state; expect("client-notyet", HS_NOT_YET_VALID, P_PARTNER); }
static void test_verify_revoked(void **state) { (void)state; expect("client-revoked", HS_REVOKED, P_PARTNER); }
static void test_verify_server_eku_is_bad_eku(void **state) { (void)state; expect("client-servereku", HS_BAD_EKU, P_PARTNER); }
static void test_verify_ca_as_leaf_is_bad_eku(void **state) { (void)state; expect("client-cacert", HS_BAD_EKU, P_PARTNER); }
static void test_verify_san_not_allowed(void **state) { (void)state; expect("client-badsan", HS_POLICY_DENIED, P_PARTNER); }
static void test_verify_rsa1024_weak_key(void **state) { (void)state; expect("client-rsa1024", HS_WEAK_KEY, P_PARTNER); }
static void test_verify_chain_too_deep(void **state) { (void)state; expect("client-deep", HS_CHAIN_TOO_DEEP, P_DEEP); }

/* Twin of chain_too_deep: the same chain passes when the partner allows
 * four CA levels, so the refusal above is the depth and nothing else. */
static void test_verify_chain_depth_4_allowed(void **state)
{
	(void)state;
	cfgs[P_DEEP].verify_depth = 4;
	expect("client-deep", HS_OK, P_DEEP);
	cfgs[P_DEEP].verify_depth = 3;
}

/* Twin of san_not_allowed: an allow-list naming the dev path admits it. */
static void test_verify_san_allowed_by_dev_pattern(void **state)
{
	struct cfg_strlist saved = cfgs[P_PARTNER].allow_uri;

	(void)state;
	cfgs[P_PARTNER].allow_uri = strlist(2, "spiffe://partner.example/prod/*",
					    "spiffe://partner.example/dev/**");
	rebuild_partner_policy(P_PARTNER);
	expect("client-badsan", HS_OK, P_PARTNER);
	strlist_free(&cfgs[P_PARTNER].allow_uri);
	cfgs[P_PARTNER].allow_uri = saved;
	rebuild_partner_policy(P_PARTNER);
	expect("client-badsan", HS_POLICY_DENIED, P_PARTNER);
}

/* TLS 1.2 sends an empty Certificate message instead of none at all. */
static void test_verify_no_certificate_tls12(void **state)
{
	struct client_opts o = { .max_version = TLS1_2_VERSION };
	struct verify_result res;

	(void)state;
	assert_int_equal(handshake(server_ctx1, &gen1, &o, &res), HS_NO_CERT);
	assert_null(res.leaf);
	verify_result_clear(&res);
}

/* The CertificateRequest names each partner's trust anchor, once. */
static void test_verify_ca_list_names_partner_roots(void **state)
{
	struct client_opts o = { .name = "client-ec" };
	struct verify_result res;

	(void)state;
	assert_int_equal(handshake(server_ctx1, &gen1, &o, &res), HS_OK);
	verify_result_clear(&res);
	assert_int_equal(client_ca_names, N_PARTNERS);
	assert_non_null(strstr(client_ca_first, "Root"));
}

static void test_verify_tls11_protocol_error(void **state)
{
	struct client_opts o = { .name = "client-ec", .max_version = TLS1_1_VERSION };
	struct verify_result res;

	(void)state;
	assert_int_equal(handshake(server_ctx1, &gen1, &o, &res), HS_PROTOCOL_ERROR);
	assert_non_null(strstr(res.detail, "protocol"));
	verify_result_clear(&res);
}

/* Twin: the same client at TLS 1.2 is accepted. */
static void test_verify_tls12_ok(void **state)
{
	struct client_opts o = { .name = "client-ec", .max_version = TLS1_2_VERSION };
	struct verify_result res;

	(void)state;
	assert_int_equal(handshake(server_ctx1, &gen1, &o, &res), HS_OK);
	assert_int_equal(res.partner, P_PARTNER);
	verify_result_clear(&res);
}

static void test_verify_garbage_protocol_error(void **state)
{
	struct client_opts o = { .garbage = "GET / HTTP/1.1\r\nHost: x\r\n\r\n" };
	struct verify_result res;

	(void)state;
	assert_int_equal(handshake(server_ctx1, &gen1, &o, &res), HS_PROTOCOL_ERROR);
	assert_null(res.leaf);
	verify_result_clear(&res);
}

/* A partner with CRL checking on but no CRL loaded: fail closed by
 * default, accepted when crl_missing = allow. */
static void test_verify_crl_missing_fails_closed(void **state)
{
	(void)state;
	cfgs[P_DEEP].verify_depth = 4;
	cfgs[P_DEEP].crl_paths = strlist(1, "deep-pki/crls.pem");
	expect("client-deep", HS_CRL_UNAVAILABLE, P_DEEP);
	cfgs[P_DEEP].crl_missing = CRL_POLICY_ALLOW;
	expect("client-deep", HS_OK, P_DEEP);
	cfgs[P_DEEP].crl_missing = CRL_POLICY_FAIL;
	strlist_free(&cfgs[P_DEEP].crl_paths);
	cfgs[P_DEEP].verify_depth = 3;
}

/* A CRL for pki/issuing that expired yesterday, signed with the fixture key. */
static X509_CRL *expired_issuing_crl(void)
{
	STACK_OF(X509) *ca = load_certs("pki/issuing/ca.crt");
	BIO *bio = BIO_new_file(fixture_path("pki/issuing/ca.key"), "r");
	EVP_PKEY *key;
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *last = ASN1_TIME_adj(NULL, time(NULL), -2, 0);
	ASN1_TIME *next = ASN1_TIME_adj(NULL, time(NULL), -1, 0);

	assert_non_null(bio);
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, getenv("MTLS_FIXTURE_PASS"));
	assert_non_null(key);
	assert_int_equal(X509_CRL_set_version(crl, 1), 1);
	assert_int_equal(X509_CRL_set_issuer_name(crl, X509_get_subject_name(sk_X509_value(ca, 0))), 1);
	assert_int_equal(X509_CRL_set1_lastUpdate(crl, last), 1);
	assert_int_equal(X509_CRL_set1_nextUpdate(crl, next), 1);
	assert_true(X509_CRL_sign(crl, key, EVP_sha256()) > 0);
	ASN1_TIME_free(last);
	ASN1_TIME_free(next);
	EVP_PKEY_free(key);
	BIO_free(bio);
	sk_X509_pop_free(ca, X509_free);
	return crl;
}

/* crl_expired: an expired CRL fails closed by default (crl_unavailable),
 * and is tolerated, and said so in the detail, with crl_expired = allow. */
static void test_verify_crl_expired_fails_closed(void **state)
{
	struct cfg_partner cfg = { .name = "expired-crl", .verify_depth = 3,
				   .crl_paths = strlist(1, "expired") };
	struct partner p = { .idx = 0, .cfg = &cfg };
	struct generation g = { .id = 3, .cfg.session_lifetime_s = 3600, .partners = &p, .n_partners = 1 };
	STACK_OF(X509) *bundle = load_certs("pki/ca-bundle.pem");
	X509_CRL *crl = expired_issuing_crl();
	struct client_opts o = { .name = "client-ec" };
	struct verify_result res;
	char err[256];
	SSL_CTX *ctx;

	(void)state;
	p.store = X509_STORE_new();
	p.anchors = sk_X509_new_null();
	p.intermediates = sk_X509_new_null();
	for (int i = 0; i < sk_X509_num(bundle); i++) {
		X509 *x = sk_X509_value(bundle, i);

		assert_int_equal(X509_STORE_add_cert(p.store, x), 1);
		X509_up_ref(x);
		sk_X509_push(X509_check_issued(x, x) == X509_V_OK ? p.anchors : p.intermediates, x);
	}
	add_crls(p.store, "pki/root/crl.pem");
	add_crls(p.store, "pki/intermediate/crl.pem");
	assert_int_equal(X509_STORE_add_crl(p.store, crl), 1);
	assert_int_equal(partner_policy_compile(&cfg, &p.policy, err, sizeof(err)), 0);
	ctx = make_server_ctx(&g);

	assert_int_equal(handshake(ctx, &g, &o, &res), HS_CRL_UNAVAILABLE);
	assert_int_equal(res.x509_err, X509_V_ERR_CRL_HAS_EXPIRED);
	verify_result_clear(&res);

	cfg.crl_expired = CRL_POLICY_ALLOW;
	assert_int_equal(handshake(ctx, &g, &o, &res), HS_OK);
	assert_non_null(strstr(res.detail, "allowed"));
	verify_result_clear(&res);

	/* crl_missing = allow does not cover an expired CRL. */
	cfg.crl_expired = CRL_POLICY_FAIL;
	cfg.crl_missing = CRL_POLICY_ALLOW;
	assert_int_equal(handshake(ctx, &g, &o, &res), HS_CRL_UNAVAILABLE);
	verify_result_clear(&res);

	SSL_CTX_free(ctx);
	X509_CRL_free(crl);
	X509_STORE_free(p.store);
	sk_X509_pop_free(p.anchors, X509_free);
	sk_X509_pop_free(p.intermediates, X509_free);
	sk_X509_pop_free(bundle, X509_free);
	partner_policy_free(&p.policy);
	strlist_free(&cfg.crl_paths);
}

/* The audit reason says precisely what is wrong, not only OpenSSL's words. */
static void expect_reason(const char *client, enum hs_outcome want, const char *needle)
{
	struct client_opts o = { .name = client };
	struct verify_result res;

	assert_int_equal(handshake(server_ctx1, &gen1, &o, &res), want);
	if (!strstr(res.detail, needle))
		fail_msg("%s: reason '%s' lacks '%s'", client, res.detail, needle);
	verify_result_clear(&res);
}

static void test_verify_reasons_are_precise(void **state)
{
	(void)state;
	expect_reason("client-cacert", HS_BAD_EKU, "a CA cannot be a client identity");
	expect_reason("client-servereku", HS_BAD_EKU, "extendedKeyUsage lacks clientAuth");
	expect_reason("client-rsa1024", HS_WEAK_KEY, "RSA key of 1024 bits (minimum 2048)");
	expect_reason("client-expired", HS_EXPIRED, "CN=client-expired");
	expect_reason("client-expired", HS_EXPIRED, "notAfter 20");
	expect_reason("client-unknownca", HS_UNKNOWN_CA, "is not a CA of any partner");
	expect_reason("client-ec", HS_OK, "ok");
}

static void expect_alert(const char *client, enum hs_outcome want, int alert)
{
	expect(client, want, want == HS_UNKNOWN_CA || want == HS_NO_CERT ? -1 : P_PARTNER);
	if (client_alert != alert)
		fail_msg("%s: client got alert %d, expected %d", client ? client : "(no cert)",
			 client_alert, alert);
}

/* The TLS alert the client receives matches the outcome. */
static void test_verify_alerts_match_outcome(void **state)
{
	(void)state;
	expect_alert("client-expired", HS_EXPIRED, SSL_AD_CERTIFICATE_EXPIRED);
	expect_alert("client-revoked", HS_REVOKED, SSL_AD_CERTIFICATE_REVOKED);
	expect_alert("client-unknownca", HS_UNKNOWN_CA, SSL_AD_UNKNOWN_CA);
	expect_alert("client-servereku", HS_BAD_EKU, SSL_AD_UNSUPPORTED_CERTIFICATE);
	expect_alert("client-badsan", HS_POLICY_DENIED, SSL_AD_HANDSHAKE_FAILURE);
	expect_alert(NULL, HS_NO_CERT, SSL_AD_CERTIFICATE_REQUIRED);
	/* Twin: an accepted client only ever sees the close_notify of the
	 * clean shutdown at the end of the test handshake. */
	expect_alert("client-ec", HS_OK, SSL_AD_CLOSE_NOTIFY);
}

static EVP_PKEY *load_key(const char *rel)
{
	BIO *bio = BIO_new_file(fixture_path(rel), "r");
	EVP_PKEY *key;

	assert_non_null(bio);
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, getenv("MTLS_FIXTURE_PASS"));
	BIO_free(bio);
	assert_non_null(key);
	return key;
}

/* client-ec's certificate re-signed by its issuing CA with SHA-1, and its
 * twin re-signed with SHA-256 (same bytes otherwise). */
static X509 *resigned_client_ec_by(const char *key_rel, const EVP_MD *md)
{
	X509 *x = load_leaf("client-ec");
	EVP_PKEY *ca_key = load_key(key_rel);

	assert_true(X509_sign(x, ca_key, md) > 0);
	EVP_PKEY_free(ca_key);
	return x;
}

static X509 *resigned_client_ec(const EVP_MD *md)
{
	return resigned_client_ec_by("pki/issuing/ca.key", md);
}

/* A certificate naming partner's issuing CA but signed by another key:
 * the candidate is found by name, the signature check refuses it, and the
 * refusal is nobody's (anyone can copy a CA's name): the partner it
 * pointed at is a claim, in the reason too. */
static void test_verify_forged_signature(void **state)
{
	struct client_opts o = { .name = "client-ec" };
	struct verify_result res;

	(void)state;
	o.leaf = resigned_client_ec_by("partner2-pki/issuing/ca.key", EVP_sha256());
	assert_int_equal(handshake(server_ctx1, &gen1, &o, &res), HS_BAD_SIGNATURE);
	assert_int_equal(res.x509_err, X509_V_ERR_CERT_SIGNATURE_FAILURE);
	assert_int_equal(res.partner, -1);
	assert_int_equal(res.claimed_partner, P_PARTNER);
	assert_non_null(strstr(res.detail, "not attributed: the issuer name points at partner 'partner'"));
	verify_result_clear(&res);
	X509_free(o.leaf);
}

/* A fixture leaf whose certificate is re-signed by a key that is not its
 * issuer's: its names, serial and extensions are a partner's, the
 * signature is a stranger's. Presented with the fixture's own key. */
static void forged_case(const char *name, enum hs_outcome genuine)
{
	struct client_opts o = { .name = name };
	struct verify_result res;
	EVP_PKEY *stranger = load_key("partner2-pki/issuing/ca.key");

	/* The twin first: the genuine certificate is refused for its own
	 * reason and that refusal is the partner's. */
	assert_int_equal(handshake(server_ctx1, &gen1, &o, &res), genuine);
	assert_int_equal(res.partner, P_PARTNER);
	assert_int_equal(res.claimed_partner, -1);
	assert_null(strstr(res.detail, "not attributed"));
	verify_result_clear(&res);

	o.leaf = load_leaf(name);
	assert_true(X509_sign(o.leaf, stranger, EVP_sha256()) > 0);
	enum hs_outcome got = handshake(server_ctx1, &gen1, &o, &res);
	if (got != HS_BAD_SIGNATURE)
		fail_msg("forged %s: outcome %s (%s), expected bad_signature", name,
			 hs_outcome_name(got), res.detail);
	assert_int_equal(res.x509_err, X509_V_ERR_CERT_SIGNATURE_FAILURE);
	assert_int_equal(res.partner, -1);
	assert_int_equal(res.claimed_partner, P_PARTNER);
	verify_result_clear(&res);
	X509_free(o.leaf);
	EVP_PKEY_free(stranger);
}

/* OpenSSL checks revocation, purpose and key size before signatures: a
 * forged copy of a revoked, a serverAuth-only or a weak-keyed certificate
 * must be neither charged to the partner nor told "revoked". */
static void test_verify_forged_revoked_not_attributed(void **state)
{
	(void)state;
	forged_case("client-revoked", HS_REVOKED);
}

static void test_verify_forged_bad_eku_not_attributed(void **state)
{
	(void)state;
	forged_case("client-servereku", HS_BAD_EKU);
}

static void test_verify_forged_weak_key_not_attributed(void **state)
{
	(void)state;
	forged_case("client-rsa1024", HS_WEAK_KEY);
}

static void test_verify_sha1_signature_refused(void **state)
{
	struct client_opts o = { .name = "client-ec" };
	struct verify_result res;

	(void)state;
	o.leaf = resigned_client_ec(EVP_sha1());
	assert_int_equal(handshake(server_ctx1, &gen1, &o, &res), HS_WEAK_KEY);
	assert_int_equal(res.x509_err, X509_V_ERR_CA_MD_TOO_WEAK);
	verify_result_clear(&res);
	X509_free(o.leaf);

	o.leaf = resigned_client_ec(EVP_sha256());
	assert_int_equal(handshake(server_ctx1, &gen1, &o, &res), HS_OK);
	verify_result_clear(&res);
	X509_free(o.leaf);
}

/* A client certificate from pki/issuing valid for `seconds` more seconds,
 * for client-ec's key (so client-ec's chain and key present it). */
static X509 *short_lived_client(long seconds)
{
	STACK_OF(X509) *ca = load_certs("pki/issuing/ca.crt");
	X509 *issuer = sk_X509_value(ca, 0);
	X509 *model = load_leaf("client-ec");
	EVP_PKEY *ca_key = load_key("pki/issuing/ca.key");
	X509 *x = X509_new();
	X509V3_CTX v3;
	static const struct { int nid; const char *value; } exts[] = {
		{ NID_basic_constraints, "critical,CA:FALSE" },
		{ NID_key_usage, "critical,digitalSignature" },
		{ NID_ext_key_usage, "clientAuth" },
		{ NID_subject_alt_name, "URI:spiffe://partner.example/prod/short" },
		{ NID_authority_key_identifier, "keyid" },
	};

	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL)), 1);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(issuer)), 1);
	assert_int_equal(X509_set_subject_name(x, X509_get_subject_name(model)), 1);
	assert_int_equal(X509_set_pubkey(x, X509_get0_pubkey(model)), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), seconds));
	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	for (size_t i = 0; i < ARRAY_SIZE(exts); i++) {
		X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, exts[i].nid, exts[i].value);

		assert_non_null(e);
		assert_int_equal(X509_add_ext(x, e, -1), 1);
		X509_EXTENSION_free(e);
	}
	assert_true(X509_sign(x, ca_key, EVP_sha256()) > 0);
	EVP_PKEY_free(ca_key);
	X509_free(model);
	sk_X509_pop_free(ca, X509_free);
	return x;
}

/* A session does not outlive its leaf: once the leaf has expired, the
 * ticket is not used and the full handshake refuses the client as
 * expired (the twin: it resumes while the leaf is still valid). */
static void test_verify_resumed_session_leaf_expired(void **state)
{
	SSL_SESSION *sess = NULL;
	struct client_opts o = { .name = "client-ec", .keep = &sess };
	struct verify_result res;

	(void)state;
	/* 5 s leave the two first handshakes (milliseconds) ample margin on a
	 * loaded machine; then wait until the leaf has really expired. */
	time_t expires = time(NULL) + 5;

	o.leaf = short_lived_client(5);
	assert_int_equal(handshake(server_ctx1, &gen1, &o, &res), HS_OK);
	verify_result_clear(&res);
	o.keep = NULL;
	o.resume = sess;
	assert_int_equal(handshake(server_ctx1, &gen1, &o, &res), HS_OK);
	assert_true(res.resumed);
	verify_result_clear(&res);

	while (time(NULL) <= expires + 1)
		sleep(1);
	assert_int_equal(handshake(server_ctx1, &gen1, &o, &res), HS_EXPIRED);
	assert_false(res.resumed);
	assert_int_equal(res.partner, P_PARTNER);
	assert_non_null(strstr(res.detail, "CN=client-ec"));
	verify_result_clear(&res);
	SSL_SESSION_free(sess);
	X509_free(o.leaf);
}

static void resume_case(int version, bool same_generation, bool no_ticket)
{
	SSL_SESSION *sess = NULL;
	struct client_opts first = { .name = "client-ec", .max_version = version, .keep = &sess,
				     .no_ticket = no_ticket };
	struct verify_result res;

	assert_int_equal(handshake(server_ctx1, &gen1, &first, &res), HS_OK);
	verify_result_clear(&res);
	assert_non_null(sess);

	struct client_opts again = { .name = "client-ec", .max_version = version, .resume = sess,
				     .no_ticket = no_ticket };
	SSL_CTX *ctx = same_generation ? server_ctx1 : server_ctx2;
	struct generation *g = same_generation ? &gen1 : &gen2;

	assert_int_equal(handshake(ctx, g, &again, &res), HS_OK);
	assert_int_equal(res.resumed, same_generation);
	assert_int_equal(res.partner, P_PARTNER);
	assert_non_null(res.leaf);
	verify_result_clear(&res);
	SSL_SESSION_free(sess);
}

static void test_verify_resume_same_generation(void **state) { (void)state; resume_case(0, true, false); }
static void test_verify_resume_other_generation_full(void **state) { (void)state; resume_case(0, false, false); }
static void test_verify_resume_tls12_same_generation(void **state) { (void)state; resume_case(TLS1_2_VERSION, true, false); }
static void test_verify_resume_tls12_other_generation_full(void **state) { (void)state; resume_case(TLS1_2_VERSION, false, false); }
/* TLS 1.2 without tickets: the server's session cache, bound by the
 * callback itself since no ticket callback runs. */
static void test_verify_resume_tls12_session_id(void **state) { (void)state; resume_case(TLS1_2_VERSION, true, true); }
static void test_verify_resume_tls12_session_id_other_generation_full(void **state) { (void)state; resume_case(TLS1_2_VERSION, false, true); }

/* ---- session lifetime: the binding's clock (session_binding.h) ---------- */

static int64_t fake_now;

static int64_t fake_clock(void)
{
	return fake_now;
}

/* Every binding decision (verification time, resumption) now happens at t;
 * OpenSSL's own clock and the chain check keep the real time. */
static void clock_at(int64_t t)
{
	fake_now = t;
	session_clock_override(fake_clock);
}

static int64_t asn1_secs(const ASN1_TIME *t)
{
	struct tm tm;

	assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
	return (int64_t)timegm(&tm);
}

/* One handshake offering sess (NULL: none) at binding time t; returns
 * whether it resumed, fails the test unless it was accepted. keep and
 * server_keep as in struct client_opts. */
static bool accepted_resumed(SSL_CTX *ctx, struct generation *g, X509 *leaf, SSL_SESSION *sess,
			     int64_t t, SSL_SESSION **keep, SSL_SESSION **server_keep)
{
	struct client_opts o = { .name = "client-ec", .leaf = leaf, .resume = sess, .keep = keep,
				 .server_keep = server_keep };
	struct verify_result res;
	enum hs_outcome got;
	bool resumed;

	clock_at(t);
	got = handshake(ctx, g, &o, &res);
	if (got != HS_OK)
		fail_msg("at %+lld s: outcome %s (%s), expected ok", (long long)(t - time(NULL)),
			 hs_outcome_name(got), res.detail);
	resumed = res.resumed;
	verify_result_clear(&res);
	return resumed;
}

static struct session_binding binding_of(SSL_SESSION *server_sess)
{
	struct session_binding b;

	assert_non_null(server_sess);
	assert_int_equal(session_binding_load(server_sess, &b), 0);
	return b;
}

/*
 * session_lifetime counts from the full verification, and a resumption
 * never restarts it: the ticket a resumed handshake issues carries the
 * original verification time. Resumed at +1800 s and +3599 s, refused
 * (a full handshake, accepted) at +3600 s with the ticket of the last
 * resumption.
 */
static void test_verify_session_lifetime_from_full_verification(void **state)
{
	SSL_SESSION *first = NULL, *second = NULL, *third = NULL, *srv = NULL;
	int64_t t0 = (int64_t)time(NULL);

	(void)state;
	assert_false(accepted_resumed(server_ctx1, &gen1, NULL, NULL, t0, &first, &srv));
	assert_int_equal(binding_of(srv).verified_at, t0);
	SSL_SESSION_free(srv);

	assert_true(accepted_resumed(server_ctx1, &gen1, NULL, first, t0 + 1800, &second, &srv));
	assert_int_equal(binding_of(srv).verified_at, t0);
	SSL_SESSION_free(srv);
	assert_true(accepted_resumed(server_ctx1, &gen1, NULL, second, t0 + 3599, &third, NULL));
	assert_false(accepted_resumed(server_ctx1, &gen1, NULL, third, t0 + 3600, NULL, NULL));
	/* The twin of the refusal: the same ticket one second earlier. */
	assert_true(accepted_resumed(server_ctx1, &gen1, NULL, third, t0 + 3599, NULL, NULL));
	session_clock_override(NULL);
	SSL_SESSION_free(first);
	SSL_SESSION_free(second);
	SSL_SESSION_free(third);
}

/* The earliest nextUpdate of every CRL in a fixture file. */
static int64_t earliest_next_update(const char *rel)
{
	BIO *bio = BIO_new_file(fixture_path(rel), "r");
	X509_CRL *crl;
	int64_t min = INT64_MAX;

	assert_non_null(bio);
	while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL))) {
		int64_t t = asn1_secs(X509_CRL_get0_nextUpdate(crl));
		min = t < min ? t : min;
		X509_CRL_free(crl);
	}
	ERR_clear_error();
	BIO_free(bio);
	return min;
}

/*
 * With crl_expired = fail a session is not resumed past the nextUpdate of
 * a CRL its chain was checked against, however young it is: partner's
 * CRLs expire (7 days) before client-ec (30 days). The twins: one second
 * before it resumes; with crl_expired = allow (an expired CRL refuses
 * nothing) the CRL does not bound it.
 */
static void test_verify_session_not_resumed_past_crl_next_update(void **state)
{
	SSL_SESSION *sess = NULL, *srv = NULL;
	int64_t t0 = (int64_t)time(NULL), next = earliest_next_update("pki/crls.pem");
	unsigned saved = gen1.cfg.session_lifetime_s;

	(void)state;
	gen1.cfg.session_lifetime_s = 60 * 86400; /* only the CRL bounds it here */
	assert_false(accepted_resumed(server_ctx1, &gen1, NULL, NULL, t0, &sess, &srv));
	assert_int_equal(binding_of(srv).valid_until, next);
	SSL_SESSION_free(srv);
	assert_true(accepted_resumed(server_ctx1, &gen1, NULL, sess, next - 1, NULL, NULL));
	assert_false(accepted_resumed(server_ctx1, &gen1, NULL, sess, next, NULL, NULL));
	SSL_SESSION_free(sess);

	cfgs[P_PARTNER].crl_expired = CRL_POLICY_ALLOW;
	assert_false(accepted_resumed(server_ctx1, &gen1, NULL, NULL, t0, &sess, &srv));
	assert_true(binding_of(srv).valid_until > next);
	SSL_SESSION_free(srv);
	assert_true(accepted_resumed(server_ctx1, &gen1, NULL, sess, next, NULL, NULL));
	cfgs[P_PARTNER].crl_expired = CRL_POLICY_FAIL;
	gen1.cfg.session_lifetime_s = saved;
	session_clock_override(NULL);
	SSL_SESSION_free(sess);
}

/* A certificate signed by issuer_key, valid from a minute ago for
 * `seconds`: a CA (pathlen 0) or a client leaf of partner.example. */
static X509 *make_cert(X509 *issuer, EVP_PKEY *issuer_key, const char *cn, EVP_PKEY *key,
		       long seconds, bool ca)
{
	static long serial = 7000;
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	X509V3_CTX v3;
	const struct { int nid; const char *value; } ca_exts[] = {
		{ NID_basic_constraints, "critical,CA:TRUE,pathlen:0" },
		{ NID_key_usage, "critical,keyCertSign,cRLSign" },
		{ NID_subject_key_identifier, "hash" },
		{ NID_authority_key_identifier, "keyid" },
	}, leaf_exts[] = {
		{ NID_basic_constraints, "critical,CA:FALSE" },
		{ NID_key_usage, "critical,digitalSignature" },
		{ NID_ext_key_usage, "clientAuth" },
		{ NID_subject_alt_name, "URI:spiffe://partner.example/prod/short" },
		{ NID_authority_key_identifier, "keyid" },
	};

	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0), 1);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(issuer)), 1);
	assert_int_equal(X509_set_subject_name(x, name), 1);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), seconds));
	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	for (size_t i = 0; i < (ca ? ARRAY_SIZE(ca_exts) : ARRAY_SIZE(leaf_exts)); i++) {
		X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, ca ? ca_exts[i].nid : leaf_exts[i].nid,
							ca ? ca_exts[i].value : leaf_exts[i].value);

		assert_non_null(e);
		assert_int_equal(X509_add_ext(x, e, -1), 1);
		X509_EXTENSION_free(e);
	}
	assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
	X509_NAME_free(name);
	return x;
}

/*
 * A chain whose intermediate expires before the leaf: the session is
 * bounded by the intermediate's notAfter, not only the leaf's. Partner
 * "short" trusts pki's root and a CA valid for 100 s that issued a
 * one-day client-ec certificate; resumed at +50 s, a full handshake at
 * +100 s (accepted: only the binding's clock moved).
 */
static void test_verify_session_not_resumed_past_intermediate_not_after(void **state)
{
	struct cfg_partner cfg = { .name = "short", .verify_depth = 3 };
	struct partner p = { .idx = 0, .cfg = &cfg };
	struct generation g = { .id = 4, .cfg.session_lifetime_s = 3600, .partners = &p, .n_partners = 1 };
	STACK_OF(X509) *roots = load_certs("pki/root/ca.crt");
	X509 *root = sk_X509_value(roots, 0), *model = load_leaf("client-ec");
	EVP_PKEY *root_key = load_key("pki/root/ca.key"), *ca_key = EVP_EC_gen("P-256");
	SSL_SESSION *sess = NULL, *srv = NULL;
	int64_t t0 = (int64_t)time(NULL);
	char err[256];

	(void)state;
	assert_non_null(ca_key);
	X509 *ca = make_cert(root, root_key, "short-lived issuing CA", ca_key, 100, true);
	X509 *leaf = make_cert(ca, ca_key, "client-ec", X509_get0_pubkey(model), 86400, false);
	p.store = X509_STORE_new();
	assert_int_equal(X509_STORE_set_flags(p.store, X509_V_FLAG_X509_STRICT), 1);
	assert_int_equal(X509_STORE_add_cert(p.store, root), 1);
	assert_int_equal(X509_STORE_add_cert(p.store, ca), 1);
	p.anchors = sk_X509_new_null();
	p.intermediates = sk_X509_new_null();
	X509_up_ref(root);
	sk_X509_push(p.anchors, root);
	X509_up_ref(ca);
	sk_X509_push(p.intermediates, ca);
	assert_int_equal(partner_policy_compile(&cfg, &p.policy, err, sizeof(err)), 0);
	SSL_CTX *ctx = make_server_ctx(&g);

	assert_false(accepted_resumed(ctx, &g, leaf, NULL, t0, &sess, &srv));
	assert_int_equal(binding_of(srv).valid_until, asn1_secs(X509_get0_notAfter(ca)));
	SSL_SESSION_free(srv);
	assert_true(accepted_resumed(ctx, &g, leaf, sess, t0 + 50, NULL, NULL));
	assert_false(accepted_resumed(ctx, &g, leaf, sess, asn1_secs(X509_get0_notAfter(ca)), NULL, NULL));
	session_clock_override(NULL);

	SSL_SESSION_free(sess);
	SSL_CTX_free(ctx);
	X509_STORE_free(p.store);
	sk_X509_pop_free(p.anchors, X509_free);
	sk_X509_pop_free(p.intermediates, X509_free);
	partner_policy_free(&p.policy);
	X509_free(leaf);
	X509_free(ca);
	X509_free(model);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(root_key);
	sk_X509_pop_free(roots, X509_free);
}

/*
 * OpenSSL's own session timer says what the binding says, so the paths no
 * ticket callback sees (the stateful cache) obey it too: a TLS 1.2
 * session-ID session and a TLS 1.3 ticket (its lifetime hint) time out at
 * session_lifetime after the verification, not at OpenSSL's default.
 */
static void test_verify_session_timeout_is_the_binding_expiry(void **state)
{
	SSL_SESSION *client = NULL, *srv = NULL;
	struct verify_result res;
	unsigned saved = gen1.cfg.session_lifetime_s;

	(void)state;
	gen1.cfg.session_lifetime_s = 90;
	struct client_opts tls12 = { .name = "client-ec", .max_version = TLS1_2_VERSION, .no_ticket = true,
				     .keep = &client, .server_keep = &srv };
	assert_int_equal(handshake(server_ctx1, &gen1, &tls12, &res), HS_OK);
	verify_result_clear(&res);
	assert_true(SSL_SESSION_get_timeout(srv) <= 90 && SSL_SESSION_get_timeout(srv) >= 89);
	SSL_SESSION_free(srv);
	SSL_SESSION_free(client);

	struct client_opts tls13 = { .name = "client-ec", .keep = &client, .server_keep = &srv };
	assert_int_equal(handshake(server_ctx1, &gen1, &tls13, &res), HS_OK);
	verify_result_clear(&res);
	assert_true(SSL_SESSION_get_timeout(srv) <= 90 && SSL_SESSION_get_timeout(srv) >= 89);
	assert_true(SSL_SESSION_get_ticket_lifetime_hint(client) <= 90);
	SSL_SESSION_free(srv);
	SSL_SESSION_free(client);
	gen1.cfg.session_lifetime_s = saved;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_client_ec_ok),
		cmocka_unit_test(test_verify_client_rsa_ok),
		cmocka_unit_test(test_verify_partner2_attributed),
		cmocka_unit_test(test_verify_no_certificate),
		cmocka_unit_test(test_verify_no_certificate_tls12),
		cmocka_unit_test(test_verify_ca_list_names_partner_roots),
		cmocka_unit_test(test_verify_unknown_ca),
		cmocka_unit_test(test_verify_expired),
		cmocka_unit_test(test_verify_not_yet_valid),
		cmocka_unit_test(test_verify_revoked),
		cmocka_unit_test(test_verify_server_eku_is_bad_eku),
		cmocka_unit_test(test_verify_ca_as_leaf_is_bad_eku),
		cmocka_unit_test(test_verify_san_not_allowed),
		cmocka_unit_test(test_verify_san_allowed_by_dev_pattern),
		cmocka_unit_test(test_verify_rsa1024_weak_key),
		cmocka_unit_test(test_verify_chain_too_deep),
		cmocka_unit_test(test_verify_chain_depth_4_allowed),
		cmocka_unit_test(test_verify_tls11_protocol_error),
		cmocka_unit_test(test_verify_tls12_ok),
		cmocka_unit_test(test_verify_garbage_protocol_error),
		cmocka_unit_test(test_verify_crl_missing_fails_closed),
		cmocka_unit_test(test_verify_crl_expired_fails_closed),
		cmocka_unit_test(test_verify_alerts_match_outcome),
		cmocka_unit_test(test_verify_reasons_are_precise),
		cmocka_unit_test(test_verify_sha1_signature_refused),
		cmocka_unit_test(test_verify_forged_signature),
		cmocka_unit_test(test_verify_forged_revoked_not_attributed),
		cmocka_unit_test(test_verify_forged_bad_eku_not_attributed),
		cmocka_unit_test(test_verify_forged_weak_key_not_attributed),
		cmocka_unit_test(test_verify_resume_same_generation),
		cmocka_unit_test(test_verify_resume_other_generation_full),
		cmocka_unit_test(test_verify_resume_tls12_same_generation),
		cmocka_unit_test(test_verify_resume_tls12_other_generation_full),
		cmocka_unit_test(test_verify_resume_tls12_session_id),
		cmocka_unit_test(test_verify_resume_tls12_session_id_other_generation_full),
		cmocka_unit_test(test_verify_resumed_session_leaf_expired),
		cmocka_unit_test(test_verify_session_lifetime_from_full_verification),
		cmocka_unit_test(test_verify_session_not_resumed_past_crl_next_update),
		cmocka_unit_test(test_verify_session_not_resumed_past_intermediate_not_after),
		cmocka_unit_test(test_verify_session_timeout_is_the_binding_expiry),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
