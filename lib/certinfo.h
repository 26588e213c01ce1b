/*
 * certinfo.h: the identity of an X.509 certificate as mtlsd reports it.
 *
 * Used by the audit line, the PROXY v2 TLVs, the (later) BPF/USDT accounting
 * and by mtlsctl. Everything here is derived from the certificate alone and is
 * safe to log (no key material).
 */
#ifndef MTLS_CERTINFO_H
#define MTLS_CERTINFO_H

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cert_serial.h"
#include "guard.h"

#define CERT_SERIAL_MAX CERT_SERIAL_RFC5280_MAX /* what the accounting key holds */
#define CERT_ISSUER_ID_LEN 20   /* see issuer_id below */

struct cert_identity {
	/* The serial as DER INTEGER content octets and their one spelling,
	 * "09:6E:D7:..." (lib/cert_serial.h): sign-exact, so a negative
	 * serial never reads as a positive one. */
	char serial_hex[CERT_SERIAL_TEXT_MAX];
	uint8_t serial[CERT_SERIAL_HELD_MAX];
	size_t serial_len;
	/*
	 * Issuer identity: the authorityKeyIdentifier keyid when present and
	 * 20 bytes long, else SHA-1 of the DER issuer name. Serials are unique
	 * only per issuer, so (issuer_id, serial) is the certificate's key.
	 */
	uint8_t issuer_id[CERT_ISSUER_ID_LEN];
	char issuer_id_hex[CERT_ISSUER_ID_LEN * 2 + 1];
	char subject[512];      /* RFC 2253 (lib/cert_name.h) */
	char issuer[512];       /* RFC 2253 (lib/cert_name.h) */
	/*
	 * The certificate's CN and SPIFFE ID when it has exactly one of each,
	 * "" when it has none or several (never "the first": which of two
	 * names a certificate means is the allow-list's decision, carried in
	 * struct verify_result, not a parser's). The CN is "" too when longer
	 * than 255 bytes or holding a NUL byte (never truncated); the SPIFFE
	 * ID is "" when it is not a valid one (lib/spiffe_id.h) or does not
	 * fit.
	 */
	char subject_cn[256];
	char spiffe_id[512];
	uint8_t sha256[32];
	char sha256_hex[65];    /* lower-case hex, no separators */
	char x5t_s256[44];      /* base64url(sha256) without padding (RFC 8705) */
	time_t not_before, not_after;
	char key_alg[16];       /* "EC", "RSA", "ED25519", ... */
	int key_bits;
	char sig_alg[48];       /* e.g. "ecdsa-with-SHA256" */
};

/* Fill *out from x. Returns 0 or -ENOMEM/-EINVAL. */
int certinfo_from_x509(X509 *x, struct cert_identity *out) MUST_CHECK;

/*
 * Render the subjectAltName entries as a JSON array of strings
 * (["DNS:a.example","URI:spiffe://x/y","IP:10.0.0.1"]) into buf, escaped.
 * Returns length written (excluding NUL) or -ENOSPC.
 */
int certinfo_sans_json(X509 *x, char *buf, size_t cap) MUST_CHECK;

/* base64url without padding. Returns length written or -ENOSPC. */
int base64url_encode(const uint8_t *in, size_t len, char *out, size_t cap) MUST_CHECK;

/* Hex encoding helpers (lower case, optional separator char, 0 = none). */
void hex_encode(const uint8_t *in, size_t len, char *out, int upper, char sep);

#endif
