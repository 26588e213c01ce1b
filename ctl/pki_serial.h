/*
 * pki_serial.h: certificate serial numbers as mtlsctl creates, prints and
 * reads them.
 *
 * Serials are 16 random octets (RFC 5280 allows 20; CA/B asks for at least
 * 64 bits of randomness), always positive, never with a leading zero octet,
 * so their DER and hex forms are unique. b holds the DER INTEGER content,
 * as everywhere (lib/cert_serial.h): shown as colon-separated upper-case
 * hex ("4F:A2:..."), read with or without colons, in any case, leading
 * zeros ignored, exactly as mtlsd and `mtlsctl drop` read them.
 */
#ifndef MTLSCTL_PKI_SERIAL_H
#define MTLSCTL_PKI_SERIAL_H

#include <openssl/asn1.h>
#include <stddef.h>
#include <stdint.h>

#include "guard.h"

#define PKI_SERIAL_MAX 20
#define PKI_SERIAL_RANDOM_LEN 16
#define PKI_SERIAL_HEX_MAX (PKI_SERIAL_MAX * 3)

struct pki_serial {
	uint8_t b[PKI_SERIAL_MAX];
	size_t len;
};

/* A fresh random serial from the OpenSSL DRBG. -EIO if the DRBG fails. */
int pki_serial_random(struct pki_serial *out) MUST_CHECK;

/*
 * Parse "4F:A2:09", "4fa209", "00:4F:A2:09" (cert_serial_parse). -EINVAL
 * on anything else, and for a serial RFC 5280 does not allow: zero,
 * negative, more than 20 octets.
 */
int pki_serial_parse(const char *text, struct pki_serial *out) MUST_CHECK;

/* "4F:A2:09" into buf (at least PKI_SERIAL_HEX_MAX bytes). */
void pki_serial_format(const struct pki_serial *s, char *buf, size_t cap);

/* Any bytes as "AB:CD:..." (3 * len bytes with the NUL); truncates to cap. */
void pki_hex_colon(const uint8_t *b, size_t len, char *buf, size_t cap);

int pki_serial_equal(const struct pki_serial *a, const struct pki_serial *b);

/* Conversions to and from the ASN1_INTEGER in a certificate or CRL entry
 * (from: -EINVAL for a serial RFC 5280 does not allow). */
int pki_serial_from_asn1(const ASN1_INTEGER *ai, struct pki_serial *out) MUST_CHECK;
ASN1_INTEGER *pki_serial_to_asn1(const struct pki_serial *s);

#endif
