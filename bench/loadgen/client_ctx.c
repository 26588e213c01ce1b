/*
 * client_ctx.c: the load generator's TLS client configuration.
 *
 * The client behaves as a partner's real client: it presents its
 * certificate chain, verifies the server's chain against the given bundle
 * and checks the server's name or IP, and keeps the session tickets it is
 * sent (resume mode offers the newest one on the next connection). The
 * arrival of the first TLS 1.3 ticket is also the proof that the server
 * accepted our certificate: a TLS 1.3 client finishes its handshake before
 * the server has read, let alone verified, the client's Certificate.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "loadgen.h"
#include "log.h"
#include "ossl_compat.h"

/* OpenSSL calls this for every session the server hands us. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct lg_conn *c = SSL_get_app_data(ssl);
	struct lg_thread *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

	c->got_ticket = true;
	if (t->opt->mode != MODE_RESUME)
		return 0;
	/* Tickets are single-use in spirit (RFC 8446 C.4): keep the newest. */
	SSL_SESSION_free(c->session);
	c->session = sess;
	return 1; /* we own the reference */
}

int lg_client_ctx(struct lg_thread *t)
{
	const struct lg_options *o = t->opt;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	ENSURE_PTR(ctx, ENOMEM);
	t->ctx = ctx;
	SSL_CTX_set_app_data(ctx, t);
	if (SSL_CTX_set_min_proto_version(ctx, o->tls_version) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, o->tls_version) != 1) {
		log_ossl(LOG_LVL_ERR, "setting TLS version");
		return -EINVAL;
	}
	if (o->ciphers && SSL_CTX_set_cipher_list(ctx, o->ciphers) != 1) {
		log_ossl(LOG_LVL_ERR, "--ciphers %s: no usable TLS 1.2 cipher in that list", o->ciphers);
		return -EINVAL;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1) {
		log_ossl(LOG_LVL_ERR, "--cert %s: cannot load the client chain (PEM, leaf first)", o->cert);
		return -EINVAL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		log_ossl(LOG_LVL_ERR, "--key %s: cannot load it or it does not match --cert %s", o->key, o->cert);
		return -EINVAL;
	}
	if (SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1) {
		log_ossl(LOG_LVL_ERR, "--ca %s: cannot load the bundle that verifies the server", o->ca);
		return -EINVAL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, on_new_session);
	/* Memory BIOs: a record may be written in pieces, and a buffer that
	 * moved between retries is fine. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* No RFC 8879 certificate compression (3.2+ clients offer it by
	 * default): a server that does not precompress its chain (nginx 1.22,
	 * HAProxy 2.6) would compress it on every handshake, and the client's
	 * own chain would be compressed per handshake here. Every server does
	 * the same work as for a Debian 12 (OpenSSL 3.0) partner. */
	ossl_cert_compression(ctx, false);
	return 0;
}
