/*
 * pki_serial.c: random serials (see pki_serial.h); their value and text
 * are lib/cert_serial.h's, the same as mtlsd's.
 */
#include "pki_serial.h"

#include <openssl/rand.h>
#include <stdbool.h>
#include <string.h>

#include "cert_serial.h"
#include "certinfo.h"

int pki_serial_random(struct pki_serial *out)
{
	GUARD_OSSL(RAND_bytes(out->b, PKI_SERIAL_RANDOM_LEN), EIO);
	/* Clear the sign bit (serials are positive) and make the first octet
	 * non-zero so the length is always exactly 16 octets. */
	out->b[0] &= 0x7f;
	if (out->b[0] == 0)
		out->b[0] = 0x01;
	out->len = PKI_SERIAL_RANDOM_LEN;
	return 0;
}

/* The shared serial (lib/cert_serial.h) as a pki_serial: mtlsctl issues,
 * revokes and records only what RFC 5280 allows. */
static int from_cert_serial(const struct cert_serial *cs, struct pki_serial *out)
{
	ENSURE(cert_serial_problem(cs) == NULL, EINVAL);
	_Static_assert(PKI_SERIAL_MAX == CERT_SERIAL_RFC5280_MAX, "same bound as verification");
	memcpy(out->b, cs->b, cs->len);
	out->len = cs->len;
	return 0;
}

static void to_cert_serial(const struct pki_serial *s, struct cert_serial *out)
{
	out->len = s->len <= PKI_SERIAL_MAX ? s->len : PKI_SERIAL_MAX;
	memcpy(out->b, s->b, out->len);
}

int pki_serial_parse(const char *text, struct pki_serial *out)
{
	struct cert_serial cs;

	GUARD(cert_serial_parse(text, &cs));
	return from_cert_serial(&cs, out);
}

void pki_hex_colon(const uint8_t *b, size_t len, char *buf, size_t cap)
{
	/* "AB:" per octet, the last ':' becoming the NUL. */
	if (len > cap / 3)
		len = cap / 3;
	if (cap > 0)
		hex_encode(b, len, buf, 1, ':');
}

void pki_serial_format(const struct pki_serial *s, char *buf, size_t cap)
{
	struct cert_serial cs;

	to_cert_serial(s, &cs);
	cert_serial_format(&cs, buf, cap);
}

int pki_serial_equal(const struct pki_serial *a, const struct pki_serial *b)
{
	return a->len == b->len && memcmp(a->b, b->b, a->len) == 0;
}

int pki_serial_from_asn1(const ASN1_INTEGER *ai, struct pki_serial *out)
{
	struct cert_serial cs;

	GUARD(cert_serial_from_asn1(ai, &cs));
	return from_cert_serial(&cs, out);
}

ASN1_INTEGER *pki_serial_to_asn1(const struct pki_serial *s)
{
	struct cert_serial cs;

	to_cert_serial(s, &cs);
	return cert_serial_to_asn1(&cs);
}
