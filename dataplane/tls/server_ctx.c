/*
 * server_ctx.c: the one builder of a generation's server SSL_CTX.
 *
 * Every SSL_CTX setting of mtlsd is made once, by one step of
 * server_ctx_build(), and each step is the function of the module that
 * owns the setting (after nginx's ngx_ssl_create, ngx_ssl_certificates,
 * ngx_ssl_client_certificate, ngx_ssl_crl, ngx_ssl_session_ticket_keys,
 * called in a fixed order). This file holds the first two steps, the
 * protocol policy and the server's certificates; the others live with
 * verification (policy/verify.c), sessions (tls/ticket_keys.c) and kTLS
 * (ktls/ktls.c). Per-connection settings are tls_session.c's, on the SSL.
 */
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "generation_internal.h"
#include "keyref.h"
#include "ktls.h"
#include "log.h"
#include "ossl_compat.h"
#include "pemutil.h"
#include "ticket_keys.h"
#include "verify.h"

/* TLS 1.2: forward secrecy and AEAD only; ECDSA first, AES-128 first (fast
 * everywhere), ChaCha20 for clients without AES hardware. */
#define TLS12_CIPHERS                                                                  \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                   \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                   \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS "X25519:P-256:P-384"
/* OpenSSL 3.5 and later: the hybrid post-quantum X25519 + ML-KEM-768 first,
 * for the clients that offer it (recorded traffic stays secret even from a
 * future quantum computer); the others get X25519 as before. 3.0 has no
 * ML-KEM and refuses the list: it keeps TLS_GROUPS. */
#define TLS_GROUPS_PQ "X25519MLKEM768:" TLS_GROUPS

#define MIN_SERVER_RSA_BITS 2048
#define MIN_SERVER_EC_BITS 256

/*
 * Step 1, what the context speaks: TLS 1.2 and 1.3 only, the suites and
 * groups above, no renegotiation (it would re-run verification
 * mid-stream, after the PROXY header already named the client), no
 * TLS record compression, the server's suite order. Buffers go back to the pool
 * while a connection is idle; with ssl_async an engine may pause a
 * handshake in its signature, and the connection then polls the engine's
 * wait fd (conn.c, WANT_ASYNC).
 */
static int protocol_policy(SSL_CTX *ctx, const struct mtlsd_config *cfg)
{
	GUARD_OSSL(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION), EINVAL);
	GUARD_OSSL(SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION), EINVAL);
	GUARD_OSSL(SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS), EINVAL);
	GUARD_OSSL(SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES), EINVAL);
	if (SSL_CTX_set1_groups_list(ctx, TLS_GROUPS_PQ) != 1) {
		ERR_clear_error();
		GUARD_OSSL(SSL_CTX_set1_groups_list(ctx, TLS_GROUPS), EINVAL);
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
				 SSL_OP_NO_COMPRESSION | SSL_OP_PRIORITIZE_CHACHA);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | (cfg->ssl_async ? SSL_MODE_ASYNC : 0));
	return 0;
}

/*
 * The chain presented after the leaf: everything but self-signed roots
 * (a client must already have the root; sending it wastes bytes and makes
 * some clients build the wrong path). Misordered files get a warning.
 */
static int presented_chain(const struct cfg_server_cert *c, STACK_OF(X509) *certs,
			   STACK_OF(X509) **out)
{
	char name[256];
	STACK_OF(X509) *chain = sk_X509_new_null();

	ENSURE_PTR(chain, ENOMEM);
	for (int i = 1; i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);
		if (X509_check_issued(x, sk_X509_value(certs, i - 1)) != X509_V_OK)
			log_warn("%s: certificate #%d (%s) did not issue the one before it; order the file "
				 "leaf first, then each issuer", c->cert_path, i + 1, subject_of(x, name, sizeof(name)));
		if (x509_is_self_signed(x)) {
			log_info("%s: not presenting root '%s' to clients", c->cert_path,
				 subject_of(x, name, sizeof(name)));
			continue;
		}
		if (!sk_X509_push(chain, x)) {
			sk_X509_free(chain);
			return -ENOMEM;
		}
	}
	*out = chain;
	return 0;
}

static const char *key_type_name(int id)
{
	switch (id) {
	case EVP_PKEY_EC:
		return "ECDSA";
	case EVP_PKEY_RSA:
		return "RSA";
	default:
		return OBJ_nid2sn(id);
	}
}

/* Key strength and one certificate per key type (OpenSSL keeps one slot per
 * type: a second ECDSA certificate would silently replace the first). */
static int check_server_key(struct build *b, const struct cfg_server_cert *c, EVP_PKEY *key,
			    unsigned *types_seen)
{
	int id = EVP_PKEY_get_base_id(key), bits = EVP_PKEY_get_bits(key);
	unsigned type_bit = id == EVP_PKEY_EC ? 1u : id == EVP_PKEY_RSA ? 2u : 4u;

	char shown[512];

	if ((id == EVP_PKEY_RSA && bits < MIN_SERVER_RSA_BITS) || (id == EVP_PKEY_EC && bits < MIN_SERVER_EC_BITS))
		return build_file_fail(b, -EINVAL, c->key_line, "key", keyref_redact(c->key_path, shown, sizeof(shown)), "%d-bit %s key is too weak; "
				 "use RSA >= %d or EC >= %d bits", bits, key_type_name(id),
				 MIN_SERVER_RSA_BITS, MIN_SERVER_EC_BITS);
	if (*types_seen & type_bit)
		return build_file_fail(b, -EINVAL, c->line, "cert", c->cert_path, "a second %s certificate; "
				 "configure at most one ECDSA and one RSA certificate", key_type_name(id));
	*types_seen |= type_bit;
	return 0;
}

/* The leaf must be something clients accept as a server certificate. */
static int check_server_leaf(struct build *b, const struct cfg_server_cert *c, X509 *leaf)
{
	char name[256];

	subject_of(leaf, name, sizeof(name));
	if (X509_check_ca(leaf) != 0)
		return build_file_fail(b, -EINVAL, c->line, "cert", c->cert_path, "the first certificate ('%s') is "
				 "a CA; put the server certificate first, then its intermediates", name);
	if (X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0) != 1)
		return build_file_fail(b, -EINVAL, c->line, "cert", c->cert_path, "'%s' is not a TLS server "
				 "certificate (its extendedKeyUsage lacks serverAuth or its keyUsage forbids it); "
				 "clients would refuse it: issue one for serverAuth", name);
	if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0)
		log_warn("%s: server certificate '%s' has expired; clients will refuse it: renew it",
			 c->cert_path, name);
	return 0;
}

static int load_server_cert(struct build *b, SSL_CTX *ctx, const struct cfg_server_cert *c,
			    unsigned *types_seen)
{
	STACK_OF(X509) *certs = NULL, *chain = NULL;
	EVP_PKEY *key = NULL;
	char why[768], ossl[256], shown[512];
	const struct mtlsd_config *cfg = &b->g->cfg;
	const struct keyref_opts opts = {
		.allow_insecure = cfg->allow_insecure_key_perms, .owner = cfg->user,
		.pin_file = cfg->key_pin_file, .pin_env = cfg->key_pin_env,
	};
	int rc;

	rc = pem_load_certs(c->cert_path, &certs, why, sizeof(why));
	if (rc < 0)
		return build_file_fail(b, rc, c->line, "cert", c->cert_path, "%s", why);
	X509 *leaf = sk_X509_value(certs, 0);
	GUARD_GOTO(check_server_leaf(b, c, leaf), rc, out);
	/* A URI may carry a pin-value: never print it as written. */
	keyref_redact(c->key_path, shown, sizeof(shown));
	rc = keyref_load(c->key_path, &opts, &key, why, sizeof(why));
	if (rc < 0) {
		rc = build_file_fail(b, rc, c->key_line, "key", shown, "%s", why);
		goto out;
	}
	if (X509_check_private_key(leaf, key) != 1) {
		ERR_clear_error();
		/* libp11 builds an EC key handle from the token's public key
		 * object: without one (same id) the handle matches nothing. */
		if (keyref_is_uri(c->key_path))
			rc = build_file_fail(b, -EINVAL, c->key_line, "key", shown, "the token's key does not match "
				       "the certificate in %s; check the object, and that the token also holds "
				       "its public key object with the same id (pkcs11-tool --write-object "
				       "PUB.der --type pubkey --id ID)", c->cert_path);
		else
			rc = build_file_fail(b, -EINVAL, c->key_line, "key", shown, "does not match the certificate in "
				       "%s; give the key the certificate was issued for", c->cert_path);
		goto out;
	}
	GUARD_GOTO(check_server_key(b, c, key, types_seen), rc, out);
	GUARD_GOTO(presented_chain(c, certs, &chain), rc, out);
	if (SSL_CTX_use_cert_and_key(ctx, leaf, key, chain, 1) != 1) {
		rc = build_file_fail(b, -EINVAL, c->line, "cert", c->cert_path, "OpenSSL refused it (%s)",
			       ossl_errors_str(ossl, sizeof(ossl)));
		goto out;
	}
	rc = 0;
out:
	/* The SSL_CTX holds its own reference; the key's memory is cleansed by
	 * OpenSSL when the last reference goes (a token key is only a handle). */
	EVP_PKEY_free(key);
	sk_X509_free(chain);
	sk_X509_pop_free(certs, X509_free);
	return rc;
}


/* Step 2, who the server is: every configured certificate, each with its
 * key and the chain presented after it. */
static int server_certificates(struct build *b, SSL_CTX *ctx)
{
	const struct mtlsd_config *cfg = &b->g->cfg;
	unsigned types_seen = 0;

	for (size_t i = 0; i < cfg->n_certs; i++)
		GUARD(load_server_cert(b, ctx, &cfg->certs[i], &types_seen));
	/* Compressed once here, per reload, never per handshake. */
	int algs = ossl_cert_compression(ctx, cfg->cert_compression);
	log_debug("certificate compression: %d algorithm(s)%s", algs,
		  cfg->cert_compression ? "" : " (certificate_compression = no)");
	return 0;
}

/*
 * The order, and why it is this one:
 *
 *  1. protocol policy (protocol_policy): what the context speaks. First,
 *     because every later step relies on it: verification runs once per
 *     connection (no renegotiation), and every suite allowed is one kTLS
 *     can offload (AES-GCM, ChaCha20-Poly1305).
 *  2. certificates (server_certificates): the server's keys and chains.
 *     They depend on nothing but the policy, and a bad cert or key file is
 *     the commonest error, so it is reported before any partner-wide step.
 *     The chains are compressed (RFC 8879) right after they are loaded.
 *  3. verification (verify_install, policy/verify.c): the verify mode and
 *     callback, the CA names sent to clients, the session id context
 *     (OpenSSL will not resume a verified session without one) and the
 *     callbacks that bind every session to the verification that made it.
 *     It reads the partners, which the generation built before this.
 *  4. sessions (ticket_keys_configure, tls/ticket_keys.c): the cache mode,
 *     how many tickets a handshake sends, their keys, the longest a
 *     session lives. After verification because what a session may carry
 *     is decided there; it alone decides whether there are sessions.
 *  5. kTLS (ktls_ctx_prepare, ktls/ktls.c): the keylog callback that keeps
 *     the TLS 1.3 traffic secrets. Last: it changes nothing the other
 *     steps set, it only observes handshakes (a no-op when kTLS is off or
 *     the kernel has no tls ULP).
 *
 * Each setting belongs to exactly one step: none is set twice.
 */
int server_ctx_build(struct build *b, SSL_CTX **out)
{
	struct generation *g = b->g;
	const struct mtlsd_config *cfg = &g->cfg;
	char ossl[256];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int rc;

	if (!ctx || protocol_policy(ctx, cfg) < 0) {
		snprintf(b->err, b->errlen, "cannot set up the TLS context: %s", ossl_errors_str(ossl, sizeof(ossl)));
		rc = -ENOMEM;
		goto fail;
	}
	GUARD_GOTO(server_certificates(b, ctx), rc, fail);
	rc = verify_install(ctx, g);
	if (rc < 0) {
		snprintf(b->err, b->errlen, "cannot install client certificate verification: %s",
			 ossl_errors_str(ossl, sizeof(ossl)));
		goto fail;
	}
	GUARD_GOTO(ticket_keys_configure(ctx, cfg, b->err, b->errlen), rc, fail);
	rc = ktls_ctx_prepare(ctx);
	if (rc < 0) {
		snprintf(b->err, b->errlen, "cannot prepare the TLS context for kernel TLS");
		goto fail;
	}
	*out = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return rc;
}
