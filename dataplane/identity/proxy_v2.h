/*
 * proxy_v2.h: the PROXY protocol v2 header mtlsd sends to a backend before
 * any client byte, telling it who the client is.
 *
 * A pure function of its input (no I/O, no allocation), so it is unit-tested
 * byte for byte and fuzzed. The exact bytes are documented in
 * docs/proxy-protocol.md.
 *
 * Layout: signature, ver/cmd 0x21 (v2, PROXY), family (TCP4/TCP6/UNSPEC),
 * addresses, then TLVs:
 *   0x01 ALPN, 0x02 AUTHORITY (SNI)       when present
 *   0x20 SSL: client flags (SSL|CERT_CONN|CERT_SESS), verify = 0, sub-TLVs
 *        0x21 VERSION, 0x22 CN, 0x23 CIPHER, 0x24 SIG_ALG, 0x25 KEY_ALG,
 *        0x28 client certificate DER (only when send_cert)
 *   app_tlv_type (0xE0..0xEF): mtlsd identity, itself a list of
 *        1-byte type + 2-byte big-endian length + value:
 *        0x01 partner name, 0x02 serial (hex "4F:A2:.."),
 *        0x03 SHA-256 fingerprint (32 raw bytes), 0x04 x5t#S256 (base64url),
 *        0x05 SPIFFE ID (omitted when the certificate has none)
 */
#ifndef MTLSD_PROXY_V2_H
#define MTLSD_PROXY_V2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "guard.h"

#define PP2_CLIENT_SSL       0x01
#define PP2_CLIENT_CERT_CONN 0x02
#define PP2_CLIENT_CERT_SESS 0x04

#define PP2_TYPE_ALPN        0x01
#define PP2_TYPE_AUTHORITY   0x02
#define PP2_TYPE_SSL         0x20
#define PP2_SUBTYPE_SSL_VERSION 0x21
#define PP2_SUBTYPE_SSL_CN      0x22
#define PP2_SUBTYPE_SSL_CIPHER  0x23
#define PP2_SUBTYPE_SSL_SIG_ALG 0x24
#define PP2_SUBTYPE_SSL_KEY_ALG 0x25
#define PP2_SUBTYPE_SSL_CLIENT_CERT 0x28

#define PP2_APP_PARTNER  0x01
#define PP2_APP_SERIAL   0x02
#define PP2_APP_SHA256   0x03
#define PP2_APP_X5T_S256 0x04
#define PP2_APP_SPIFFE   0x05

/* Upper bound of a header without the certificate; add cert_der_len. */
#define PP2_MAX_HEADER_NO_CERT 4096
/* The protocol's own limit: 16 fixed bytes, then a 16-bit length. */
#define PP2_FIXED_LEN 16
#define PP2_MAX_HEADER (PP2_FIXED_LEN + 65535)

struct pp2_info {
	const struct sockaddr *src;  /* the client, as accepted */
	const struct sockaddr *dst;  /* mtlsd's local address of that connection */
	uint8_t client_flags;        /* PP2_CLIENT_* */
	const char *tls_version;     /* "TLSv1.3" */
	const char *cn;              /* client subject CN, may be NULL */
	const char *cipher;          /* "TLS_AES_128_GCM_SHA256" */
	const char *sig_alg;         /* signature algorithm of the certificate mtlsd presented */
	const char *key_alg;         /* its key, e.g. "EC256", "RSA2048" (the spec: "frontend") */
	const uint8_t *alpn;         /* negotiated ALPN, may be NULL */
	size_t alpn_len;
	const char *sni;             /* SNI, may be NULL */
	const uint8_t *cert_der;     /* when non-NULL, sent as 0x28 */
	size_t cert_der_len;
	uint8_t app_tlv_type;        /* 0xE0..0xEF, 0 = no application TLV */
	const char *partner;
	const char *serial_hex;
	const uint8_t *sha256;       /* 32 bytes */
	const char *x5t_s256;
	const char *spiffe_id;       /* may be NULL or "" */
};

/* Encode the header into buf. Returns its length, or -ENOSPC when cap is too
 * small, -EMSGSIZE when the header would exceed the protocol's limit
 * (PP2_MAX_HEADER: its length field, and each TLV's, is 16 bits), -EINVAL
 * for inconsistent input (mixed address families, a bad TLV type). */
int pp2_encode(const struct pp2_info *info, uint8_t *buf, size_t cap) MUST_CHECK;

/* The bytes pp2_encode() would write for info, whatever the protocol's
 * limit (compare with PP2_MAX_HEADER); 0 for input pp2_encode refuses as
 * -EINVAL. Writes nothing. */
size_t pp2_encoded_size(const struct pp2_info *info);

/*
 * The client field for a verified connection, with the meaning the PROXY
 * protocol spec (and HAProxy) gives it: SSL|CERT_SESS always (the session
 * was established with a client certificate), plus CERT_CONN when the
 * certificate was presented and verified on this connection, i.e. it was
 * not resumed.
 */
uint8_t pp2_client_flags(bool resumed);

#endif
