/*
 * cert_serial.h: certificate serial numbers, one representation and one
 * spelling for mtlsd and mtlsctl.
 *
 * A serial is an ASN.1 INTEGER, and nothing else identifies it: its value
 * is held as the content octets of its DER encoding (big-endian two's
 * complement, minimal), so two serials are equal exactly when those octets
 * are. That is what the drop matching compares, what the accounting key
 * holds, and what is printed: upper-case hex, colon-separated, byte for
 * byte ("09:6E:D7", "00:96:ED" for a positive serial whose high bit is
 * set). A negative serial prints as its two's complement ("DF:FD" for
 * -0x2003), so it never collides with a positive one; mtlsd refuses such
 * certificates, but the audit and the accounting still name them exactly.
 *
 * Text input is read as a hexadecimal integer: single colons between digits
 * optional (anywhere: "9:6E:D7" is "96ED7"), any case,
 * leading zeros ignored ("00:11:22" = "1122" = "11:22" = "0x1122"), a
 * leading '-' for a negative value. Every form printed here parses back to the same
 * serial when it is positive.
 */
#ifndef MTLS_CERT_SERIAL_H
#define MTLS_CERT_SERIAL_H

#include <openssl/asn1.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guard.h"

/* RFC 5280 4.1.2.2: a conforming serial is positive and at most 20
 * content octets. Longer ones are still held (and printed) up to
 * CERT_SERIAL_HELD_MAX octets, so a refusal can name them. */
#define CERT_SERIAL_RFC5280_MAX 20
#define CERT_SERIAL_HELD_MAX 32
/* "AB:" per octet, the last ':' becoming the NUL. */
#define CERT_SERIAL_TEXT_MAX (CERT_SERIAL_HELD_MAX * 3)

struct cert_serial {
	uint8_t b[CERT_SERIAL_HELD_MAX]; /* DER content octets */
	size_t len;                      /* >= 1 for any held serial */
};

/* The serial of an ASN1_INTEGER. -EINVAL when it is longer than
 * CERT_SERIAL_HELD_MAX content octets (or not an INTEGER at all). */
int cert_serial_from_asn1(const ASN1_INTEGER *ai, struct cert_serial *out) MUST_CHECK;

/* A new ASN1_INTEGER holding s, or NULL (out of memory). */
ASN1_INTEGER *cert_serial_to_asn1(const struct cert_serial *s);

/*
 * Parse the text forms above. -EINVAL for an empty string, anything but
 * hex digits and colons after the optional '-' and "0x", or a value longer than
 * CERT_SERIAL_HELD_MAX octets. Zero and negative values parse; callers
 * that need a positive serial check cert_serial_sign().
 */
int cert_serial_parse(const char *text, struct cert_serial *out) MUST_CHECK;

/* "09:6E:D7" into buf; cap >= CERT_SERIAL_TEXT_MAX holds any serial,
 * a smaller buffer gets whole octets only. */
void cert_serial_format(const struct cert_serial *s, char *buf, size_t cap);

bool cert_serial_equal(const struct cert_serial *a, const struct cert_serial *b);

/* -1 negative, 0 zero, 1 positive. */
int cert_serial_sign(const struct cert_serial *s);

/*
 * NULL when s is what RFC 5280 allows (positive, at most 20 octets), else
 * the rule it breaks as a phrase for a refusal ("serial number is zero").
 */
const char *cert_serial_problem(const struct cert_serial *s);

#endif
