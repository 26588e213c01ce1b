/*
 * hs_case.c: in-memory mTLS handshakes against mtlsd's real server context.
 *
 * The server side is exactly what a worker runs: the SSL_CTX of a
 * generation built from a config (mtlsd's verify callback, partner
 * selection, policy, ticket binding), verify_attach() before the
 * handshake and verify_settle_success() after it. The client is plain
 * OpenSSL and is not timed: only the server's SSL_do_handshake calls and
 * the settle step count toward *server_ns, in thread CPU time. Client and server talk through
 * a BIO pair, so no socket or scheduler noise enters the number.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "cases.h"
#include "config.h"
#include "generation.h"
#include "guard.h"
#include "ossl_compat.h"
#include "log.h"
#include "verify.h"

struct hs_case {
	struct generation *g;
	SSL_CTX *client;
	SSL_SESSION *session; /* resume: the session the last handshake left */
	bool resume;
};

/* The server's CPU time, not wall time: on a shared machine another
 * process taking the core must not be charged to the handshake. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int build_generation(const char *fx, int tls_minor, bool rsa, struct generation **g)
{
	struct mtlsd_config cfg;
	char err[512], cert[512], key[512], ca[512];
	const char *leaf = rsa ? "server-rsa" : "server";

	snprintf(cert, sizeof(cert), "%s/%s/chain.pem", fx, leaf);
	snprintf(key, sizeof(key), "%s/%s/key.pem", fx, leaf);
	snprintf(ca, sizeof(ca), "%s/pki/ca-bundle.pem", fx);
	config_init(&cfg);
	const char *flags[][2] = {
		{ "listen", "127.0.0.1:1" }, { "cert", cert }, { "key", key }, { "client-ca", ca },
		{ "backend", "127.0.0.1:1" }, { "allow-uri", "spiffe://partner.example/prod/*" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(flags); i++)
		if (config_apply_flag(&cfg, flags[i][0], flags[i][1], err, sizeof(err)) < 0) {
			log_err("micro: %s", err);
			config_free(&cfg);
			return -EINVAL;
		}
	if (generation_build(&cfg, 1, g, err, sizeof(err)) < 0) {
		log_err("micro: %s", err);
		return -EINVAL;
	}
	int v = tls_minor == 2 ? TLS1_2_VERSION : TLS1_3_VERSION;
	GUARD_OSSL(SSL_CTX_set_min_proto_version((*g)->ssl_ctx, v), EINVAL);
	GUARD_OSSL(SSL_CTX_set_max_proto_version((*g)->ssl_ctx, v), EINVAL);
	return 0;
}

static SSL_CTX *client_ctx(const char *fx, bool rsa)
{
	char chain[512], key[512];
	const char *leaf = rsa ? "client-rsa" : "client-ec";
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		return NULL;
	snprintf(chain, sizeof(chain), "%s/%s/chain.pem", fx, leaf);
	snprintf(key, sizeof(key), "%s/%s/key.pem", fx, leaf);
	/* The client's own verification is not measured: leave it out. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	/* Like bench/loadgen's client: no certificate compression, so the
	 * ceiling and the compare rows measure the same handshake. */
	ossl_cert_compression(ctx, false);
	if (SSL_CTX_use_certificate_chain_file(ctx, chain) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		log_ossl(LOG_LVL_ERR, "micro: loading %s", chain);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int hs_case_new(const char *fx, int tls_minor, bool rsa, bool resume, struct hs_case **out)
{
	struct hs_case *hc = calloc(1, sizeof(*hc));
	uint64_t ignored;

	ENSURE_PTR(hc, ENOMEM);
	hc->resume = resume;
	int rc = build_generation(fx, tls_minor, rsa, &hc->g);
	if (rc == 0 && !(hc->client = client_ctx(fx, rsa)))
		rc = -EINVAL;
	if (rc == 0 && resume) {
		/* Prime the session with one full handshake. */
		hc->resume = false;
		rc = hs_case_run(hc, &ignored);
		hc->resume = true;
	}
	if (rc < 0) {
		hs_case_free(hc);
		return rc;
	}
	*out = hc;
	return 0;
}

/* Drive both ends until the server finishes; returns the server's time. */
static int drive(struct hs_case *hc, SSL *s, SSL *c, struct verify_result *res, uint64_t *server_ns)
{
	uint64_t spent = 0;
	for (int round = 0; round < 20; round++) {
		(void)SSL_do_handshake(c);
		uint64_t t0 = cpu_ns();
		int sr = SSL_do_handshake(s);
		enum hs_outcome out = HS_OUTCOME_MAX;
		if (sr == 1)
			out = verify_settle_success(s, hc->g, res);
		spent += cpu_ns() - t0;
		if (sr == 1) {
			*server_ns = spent;
			return out == HS_OK ? 0 : -EACCES;
		}
		if (SSL_get_error(s, sr) != SSL_ERROR_WANT_READ)
			return -EPROTO;
	}
	return -ETIMEDOUT;
}

int hs_case_run(struct hs_case *hc, uint64_t *server_ns)
{
	SSL *s = SSL_new(hc->g->ssl_ctx), *c = SSL_new(hc->client);
	BIO *sb = NULL, *cb = NULL;
	struct verify_result res;
	int rc = -ENOMEM;
	char byte;

	memset(&res, 0, sizeof(res));
	if (!s || !c || BIO_new_bio_pair(&sb, 0, &cb, 0) != 1)
		goto out;
	SSL_set_bio(s, sb, sb);
	SSL_set_bio(c, cb, cb);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	GUARD_GOTO(verify_attach(s, &res), rc, out);
	if (hc->resume && SSL_set_session(c, hc->session) != 1)
		goto out;
	GUARD_GOTO(drive(hc, s, c, &res, server_ns), rc, out);
	if (hc->resume && !SSL_session_reused(s)) {
		rc = -ESTALE;
		goto out;
	}
	/* The client takes its ticket (TLS 1.3 sends it after the handshake). */
	(void)SSL_do_handshake(c);
	(void)SSL_read(c, &byte, 1);
	SSL_SESSION_free(hc->session);
	hc->session = SSL_get1_session(c);
	/* A connection freed without a shutdown marks its session bad
	 * (SSL_free -> ssl_clear_bad_session): say it ended cleanly. */
	SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	/* The server's too: with the stateful cache (the default), freeing it
	 * unclean would drop the session from the server's cache. */
	SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	rc = 0;
out:
	ERR_clear_error();
	verify_result_clear(&res);
	SSL_free(s);
	SSL_free(c);
	return rc;
}

void hs_case_free(struct hs_case *hc)
{
	if (!hc)
		return;
	SSL_SESSION_free(hc->session);
	SSL_CTX_free(hc->client);
	if (hc->g)
		generation_unref(hc->g);
	free(hc);
}
