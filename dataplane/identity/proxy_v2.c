/*
 * proxy_v2.c: encoding of the PROXY protocol v2 header sent to backends.
 *
 * A pure function: the caller gathers what the handshake established
 * (addresses, TLS parameters, the verified client identity) into a struct
 * pp2_info, and pp2_encode() writes the bytes of the header. Every write is
 * bounds-checked against the caller's buffer; nothing is allocated. The
 * byte layout is documented with a worked example in docs/proxy-protocol.md
 * and decoded independently by tests/pp2_decode.py.
 */
#include "proxy_v2.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

static const uint8_t pp2_signature[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

#define PP2_VERSION_PROXY 0x21 /* version 2, command PROXY */
#define PP2_FAM_UNSPEC    0x00
#define PP2_FAM_TCP4      0x11
#define PP2_FAM_TCP6      0x21

/*
 * A cursor over the output buffer. The first failure sticks (rc), so the
 * encoder is written as a straight sequence of puts and checked once per
 * TLV instead of after every byte. Without a buffer (buf NULL) it only
 * counts: pp2_encoded_size() runs the same sequence.
 */
struct pp2_writer {
	uint8_t *buf;
	size_t cap;
	size_t off;
	int rc;
};

static void put_bytes(struct pp2_writer *w, const void *p, size_t len)
{
	if (w->rc < 0)
		return;
	if (!w->buf) {
		w->off += len;
		return;
	}
	if (len > w->cap - w->off) {
		w->rc = -ENOSPC;
		return;
	}
	if (len)
		memcpy(w->buf + w->off, p, len);
	w->off += len;
}

static void put_u8(struct pp2_writer *w, uint8_t v)
{
	put_bytes(w, &v, 1);
}

static void put_be16(struct pp2_writer *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	put_bytes(w, b, 2);
}

/* Open a TLV (type + length placeholder); returns the offset of the length
 * field for tlv_close(). */
static size_t tlv_open(struct pp2_writer *w, uint8_t type)
{
	size_t len_at;

	put_u8(w, type);
	len_at = w->off;
	put_be16(w, 0);
	return len_at;
}

/* Patch the length of the TLV opened at len_at; a value over 65535 is not
 * representable and makes the whole header -EMSGSIZE. */
static void tlv_close(struct pp2_writer *w, size_t len_at)
{
	size_t len;

	if (w->rc < 0 || !w->buf)
		return;
	len = w->off - (len_at + 2);
	if (len > UINT16_MAX) {
		w->rc = -EMSGSIZE;
		return;
	}
	w->buf[len_at] = (uint8_t)(len >> 8);
	w->buf[len_at + 1] = (uint8_t)len;
}

static void put_tlv(struct pp2_writer *w, uint8_t type, const void *value, size_t len)
{
	if (len > UINT16_MAX && w->rc == 0 && w->buf)
		w->rc = -EMSGSIZE;
	put_u8(w, type);
	put_be16(w, (uint16_t)len);
	put_bytes(w, value, len);
}

static void put_tlv_str(struct pp2_writer *w, uint8_t type, const char *s)
{
	if (s && *s)
		put_tlv(w, type, s, strlen(s));
}

/*
 * Address block. TCP4 for two AF_INET addresses, TCP6 for two AF_INET6
 * ones (a v4-mapped peer on a dual-stack listener stays TCP6, so a backend
 * sees one family per listener), UNSPEC without addresses for unix sockets
 * or when the source is unknown. Mixed families are a caller bug.
 */
static int put_addresses(struct pp2_writer *w, const struct sockaddr *src,
			 const struct sockaddr *dst, size_t *family_at)
{
	*family_at = w->off;
	if (!src || !dst || src->sa_family == AF_UNIX || dst->sa_family == AF_UNIX) {
		put_u8(w, PP2_FAM_UNSPEC);
		put_be16(w, 0);
		return 0;
	}
	ENSURE(src->sa_family == dst->sa_family, EINVAL);
	if (src->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)src;
		const struct sockaddr_in *d = (const struct sockaddr_in *)dst;

		put_u8(w, PP2_FAM_TCP4);
		put_be16(w, 0);
		put_bytes(w, &s->sin_addr, 4);
		put_bytes(w, &d->sin_addr, 4);
		put_bytes(w, &s->sin_port, 2); /* already network order */
		put_bytes(w, &d->sin_port, 2);
		return 0;
	}
	if (src->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)src;
		const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)dst;

		put_u8(w, PP2_FAM_TCP6);
		put_be16(w, 0);
		put_bytes(w, &s->sin6_addr, 16);
		put_bytes(w, &d->sin6_addr, 16);
		put_bytes(w, &s->sin6_port, 2);
		put_bytes(w, &d->sin6_port, 2);
		return 0;
	}
	return -EINVAL;
}

static void put_ssl_tlv(struct pp2_writer *w, const struct pp2_info *info)
{
	static const uint8_t verify_ok[4] = { 0, 0, 0, 0 }; /* only verified clients are relayed */
	size_t at = tlv_open(w, PP2_TYPE_SSL);

	put_u8(w, info->client_flags);
	put_bytes(w, verify_ok, sizeof(verify_ok));
	put_tlv_str(w, PP2_SUBTYPE_SSL_VERSION, info->tls_version);
	put_tlv_str(w, PP2_SUBTYPE_SSL_CN, info->cn);
	put_tlv_str(w, PP2_SUBTYPE_SSL_CIPHER, info->cipher);
	put_tlv_str(w, PP2_SUBTYPE_SSL_SIG_ALG, info->sig_alg);
	put_tlv_str(w, PP2_SUBTYPE_SSL_KEY_ALG, info->key_alg);
	if (info->cert_der)
		put_tlv(w, PP2_SUBTYPE_SSL_CLIENT_CERT, info->cert_der, info->cert_der_len);
	tlv_close(w, at);
}

static void put_app_tlv(struct pp2_writer *w, const struct pp2_info *info)
{
	size_t at = tlv_open(w, info->app_tlv_type);

	put_tlv_str(w, PP2_APP_PARTNER, info->partner);
	put_tlv_str(w, PP2_APP_SERIAL, info->serial_hex);
	if (info->sha256)
		put_tlv(w, PP2_APP_SHA256, info->sha256, 32);
	put_tlv_str(w, PP2_APP_X5T_S256, info->x5t_s256);
	put_tlv_str(w, PP2_APP_SPIFFE, info->spiffe_id);
	tlv_close(w, at);
}

/* The whole header through w (writing, or only counting). */
static int put_header(struct pp2_writer *w, const struct pp2_info *info, size_t *family_at)
{
	ENSURE(info->app_tlv_type == 0 ||
	       (info->app_tlv_type >= 0xe0 && info->app_tlv_type <= 0xef), EINVAL);
	put_bytes(w, pp2_signature, sizeof(pp2_signature));
	put_u8(w, PP2_VERSION_PROXY);
	GUARD(put_addresses(w, info->src, info->dst, family_at));
	if (info->alpn && info->alpn_len)
		put_tlv(w, PP2_TYPE_ALPN, info->alpn, info->alpn_len);
	put_tlv_str(w, PP2_TYPE_AUTHORITY, info->sni);
	put_ssl_tlv(w, info);
	if (info->app_tlv_type)
		put_app_tlv(w, info);
	return w->rc;
}

size_t pp2_encoded_size(const struct pp2_info *info)
{
	struct pp2_writer w = { .buf = NULL };
	size_t family_at;

	if (!info || put_header(&w, info, &family_at) < 0)
		return 0;
	return w.off;
}

int pp2_encode(const struct pp2_info *info, uint8_t *buf, size_t cap)
{
	struct pp2_writer w = { .buf = buf, .cap = cap, .off = 0, .rc = 0 };
	size_t family_at;
	size_t payload;

	ENSURE(info && buf, EINVAL);
	GUARD(put_header(&w, info, &family_at));

	/* The length field counts everything after the 16 fixed bytes. */
	payload = w.off - PP2_FIXED_LEN;
	ENSURE(payload <= UINT16_MAX, EMSGSIZE);
	buf[family_at + 1] = (uint8_t)(payload >> 8);
	buf[family_at + 2] = (uint8_t)payload;
	return (int)w.off;
}

uint8_t pp2_client_flags(bool resumed)
{
	/* CERT_SESS: the session was established with a client certificate.
	 * CERT_CONN: the certificate was presented on this very connection,
	 * which is not the case when the session was resumed. */
	return PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS | (resumed ? 0 : PP2_CLIENT_CERT_CONN);
}
