/*
 * backend.c: the step between a verified handshake and the relay: connect
 * to the partner's backend and queue the PROXY v2 header.
 *
 * The connect is one io_uring request linked to a LINK_TIMEOUT of
 * connect_timeout, so no timer of our own is needed. While it runs nothing
 * more is read from the client; bytes already in the TLS input slice stay
 * there and are relayed after the header, exactly once. A backend that is
 * down costs the client a clean close_notify, a counter and an audit line.
 */
#include "relay.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "conn_submit.h"
#include "certinfo.h"
#include "generation.h"
#include "log.h"
#include "proxy_v2.h"

static void backend_failed(struct conn *c, const char *why)
{
	char reason[192];

	c->w->counters.backend_connect_failed++;
	snprintf(reason, sizeof(reason), "backend %s: %s", c->partner->cfg->backend.text, why);
	log_warn("conn %llu: partner '%s': %s", (unsigned long long)c->id, conn_partner_name(c), reason);
	audit_event_simple("backend_connect_failed", c->id, (const struct sockaddr *)&c->peer,
			   conn_partner_name(c), reason);
	/* The client did nothing wrong: a clean close_notify, not a reset. */
	c->relay->close_notify(c);
	conn_flush_close(c, CLOSE_BACKEND_CONNECT_FAILED);
}

static int queue_proxy_header(struct conn *c, size_t *size);

/* The header cannot be sent at all: the PROXY v2 length field is 16 bits.
 * Said once, where the reason is known, and the client gets a clean close
 * (it did nothing wrong; the partner's certificates are too big for
 * proxy_send_cert). */
static void proxy_header_too_large(struct conn *c, size_t size)
{
	char reason[256];

	snprintf(reason, sizeof(reason), "the PROXY v2 header would be %zu bytes after its fixed %d, over "
		 "the protocol's 65535 (client certificate of %d bytes with proxy_send_cert = yes)",
		 size - PP2_FIXED_LEN, PP2_FIXED_LEN, i2d_X509(c->vr.leaf, NULL));
	log_warn("conn %llu: partner '%s': %s: closed (proxy_header_too_large)", (unsigned long long)c->id,
		 conn_partner_name(c), reason);
	audit_event_simple("proxy_header_too_large", c->id, (const struct sockaddr *)&c->peer,
			   conn_partner_name(c), reason);
	c->relay->close_notify(c);
	conn_flush_close(c, CLOSE_PROXY_HEADER_TOO_LARGE);
}

/* Entry of BACKEND_CONNECTING. */
void conn_backend_connect(struct conn *c)
{
	const struct cfg_addr *a = &c->partner->cfg->backend;
	unsigned ms = c->gen->cfg.connect_timeout_ms;
	struct conn_dir *b = &c->dir[CONN_BACKEND];

	/* The header is built now, in the completion that ended the
	 * handshake, while the client's identity is at hand (c->client_id);
	 * it leaves once the connect completed. */
	if (c->partner->cfg->proxy_v2) {
		size_t size = 0;
		int rc = queue_proxy_header(c, &size);
		if (rc == -EMSGSIZE) {
			proxy_header_too_large(c, size);
			return;
		}
		if (rc < 0) {
			log_err("conn %llu: partner '%s': cannot build the PROXY v2 header: %s",
				(unsigned long long)c->id, conn_partner_name(c), strerror(-rc));
			conn_mark_close(c, CLOSE_NO_MEMORY);
			return;
		}
	}
	b->fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (b->fd < 0) {
		backend_failed(c, strerror(errno));
		return;
	}
	if (!a->is_unix) {
		int one = 1;
		(void)setsockopt(b->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	c->connect_timeout.tv_sec = ms / 1000;
	c->connect_timeout.tv_nsec = (long long)(ms % 1000) * 1000000;
	conn_submit_connect(c, (const struct sockaddr *)&a->ss, a->len);
}

/*
 * SIG_ALG and KEY_ALG describe the certificate mtlsd presented on this
 * connection (the PROXY v2 spec's "certificate presented by the frontend",
 * as HAProxy sends them), so a backend written for HAProxy reads them the
 * same way. The client's own certificate is in the application TLV and,
 * with proxy_send_cert, whole in 0x28.
 */
static void server_cert_algs(SSL *ssl, char *sig, size_t sig_len, char *key, size_t key_len)
{
	X509 *own = SSL_get_certificate(ssl);
	EVP_PKEY *pkey = own ? X509_get0_pubkey(own) : NULL;

	snprintf(sig, sig_len, "%s", own ? OBJ_nid2ln(X509_get_signature_nid(own)) : "");
	snprintf(key, key_len, "%s%d", !pkey ? "" : EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC ? "EC" : "RSA",
		 pkey ? EVP_PKEY_get_bits(pkey) : 0);
}

/*
 * Encode the PROXY v2 header into the to-backend queue: into its chunk when
 * it fits (every header without a certificate, and certificates up to
 * ~16 KiB), else into an allocation of its exact size (conn-t.h big_header)
 * up to the protocol's limit. -EMSGSIZE beyond it, *size saying how big it
 * would have been.
 */
static int queue_proxy_header(struct conn *c, size_t *size)
{
	const struct cfg_partner *pc = c->partner->cfg;
	const struct cert_identity *id = c->client_id;
	char sig_alg[64], key_alg[32];
	uint8_t *der = NULL;
	int rc;

	ENSURE_PTR(id, EINVAL);
	server_cert_algs(c->tls.ssl, sig_alg, sizeof(sig_alg), key_alg, sizeof(key_alg));

	struct pp2_info info = {
		.src = (const struct sockaddr *)&c->peer,
		.dst = (const struct sockaddr *)&c->local,
		.client_flags = PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS |
				(c->vr.resumed ? 0 : PP2_CLIENT_CERT_CONN),
		.tls_version = SSL_get_version(c->tls.ssl),
		/* The names the allow-list checked (struct verify_result),
		 * never the certificate's first ones. */
		.cn = c->vr.identity.cn,
		.cipher = SSL_get_cipher_name(c->tls.ssl),
		.sig_alg = sig_alg,
		.key_alg = key_alg,
		.sni = SSL_get_servername(c->tls.ssl, TLSEXT_NAMETYPE_host_name),
		.app_tlv_type = pc->proxy_tlv_type,
		.partner = pc->name,
		.serial_hex = id->serial_hex,
		.sha256 = id->sha256,
		.x5t_s256 = id->x5t_s256,
		.spiffe_id = c->vr.identity.spiffe_id,
	};
	const unsigned char *alpn = NULL;
	unsigned alpn_len = 0;
	SSL_get0_alpn_selected(c->tls.ssl, &alpn, &alpn_len);
	info.alpn = alpn;
	info.alpn_len = alpn_len;
	if (pc->proxy_send_cert) {
		int n = i2d_X509(c->vr.leaf, &der);
		ENSURE(n > 0, ENOMEM);
		info.cert_der = der;
		info.cert_der_len = (size_t)n;
	}

	GUARD_GOTO(outq_reserve(&c->to_backend, &c->w->chunks), rc, out);
	rc = pp2_encode(&info, c->to_backend.chunk->data, CHUNK_SIZE);
	if (rc >= 0) {
		c->to_backend.off = 0;
		c->to_backend.len = (uint32_t)rc;
		rc = 0;
		goto out;
	}
	if (rc != -ENOSPC)
		goto out;
	/* Bigger than a chunk: give the chunk back, size the header exactly. */
	outq_release(&c->to_backend, &c->w->chunks);
	*size = pp2_encoded_size(&info);
	ENSURE_GOTO(*size > 0, rc, EINVAL, out);
	ENSURE_GOTO(*size <= PP2_MAX_HEADER, rc, EMSGSIZE, out);
	c->big_header.data = malloc(*size);
	ENSURE_GOTO(c->big_header.data, rc, ENOMEM, out);
	rc = pp2_encode(&info, c->big_header.data, *size);
	if (rc < 0) {
		free(c->big_header.data);
		c->big_header.data = NULL;
		goto out;
	}
	c->big_header.off = 0;
	c->big_header.len = (uint32_t)rc;
	rc = 0;
out:
	OPENSSL_free(der);
	return rc;
}

void conn_on_backend_connect(struct conn *c, int res)
{
	if (c->state != CONN_BACKEND_CONNECTING)
		return;
	if (res < 0) {
		char why[96];
		if (res == -ECANCELED)
			snprintf(why, sizeof(why), "connect timed out after %u ms",
				 c->gen->cfg.connect_timeout_ms);
		else
			snprintf(why, sizeof(why), "connect failed: %s", strerror(-res));
		backend_failed(c, why);
		return;
	}
	/* The PROXY v2 header (if any) is already queued: it goes first. */
	conn_fire(c, CONN_EV_BACKEND_CONNECTED);
}

void conn_backend_header_sent(struct conn *c, int res)
{
	c->big_header.off += (uint32_t)res;
	if (c->big_header.off == c->big_header.len) {
		free(c->big_header.data);
		c->big_header.data = NULL;
	}
}
