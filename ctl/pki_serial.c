/*
 * pki_serial.c: random serials and their text form (see pki_serial.h).
 */
#include "pki_serial.h"

#include <ctype.h>
#include <openssl/bn.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <string.h>

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

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int pki_serial_parse(const char *text, struct pki_serial *out)
{
	uint8_t raw[PKI_SERIAL_MAX + 1];
	size_t n = 0;
	bool colons = strchr(text, ':') != NULL;
	size_t tlen = strlen(text);

	ENSURE(tlen > 0, EINVAL);
	if (colons) {
		/* "AB:CD:EF": pairs separated by single colons. */
		ENSURE((tlen + 1) % 3 == 0, EINVAL);
		for (size_t i = 0; i < tlen; i += 3) {
			int hi = hexval(text[i]), lo = hexval(text[i + 1]);
			ENSURE(hi >= 0 && lo >= 0, EINVAL);
			ENSURE(i + 2 == tlen || text[i + 2] == ':', EINVAL);
			ENSURE(n < sizeof(raw), EINVAL);
			raw[n++] = (uint8_t)(hi << 4 | lo);
		}
	} else {
		/* Plain hex; an odd count means an implied leading zero. */
		for (size_t i = 0; i < tlen; i++)
			ENSURE(hexval(text[i]) >= 0, EINVAL);
		size_t i = 0;
		if (tlen % 2) {
			raw[n++] = (uint8_t)hexval(text[0]);
			i = 1;
		}
		for (; i < tlen; i += 2) {
			ENSURE(n < sizeof(raw), EINVAL);
			raw[n++] = (uint8_t)(hexval(text[i]) << 4 | hexval(text[i + 1]));
		}
	}

	size_t skip = 0;
	while (skip < n && raw[skip] == 0)
		skip++;
	ENSURE(skip < n, EINVAL); /* zero is not a serial */
	ENSURE(n - skip <= PKI_SERIAL_MAX, EINVAL);
	out->len = n - skip;
	memcpy(out->b, raw + skip, out->len);
	return 0;
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
	pki_hex_colon(s->b, s->len, buf, cap);
}

int pki_serial_equal(const struct pki_serial *a, const struct pki_serial *b)
{
	return a->len == b->len && memcmp(a->b, b->b, a->len) == 0;
}

int pki_serial_from_asn1(const ASN1_INTEGER *ai, struct pki_serial *out)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(ai, NULL);
	ENSURE_PTR(bn, ENOMEM);
	int rc = 0;
	int len = BN_num_bytes(bn);
	if (BN_is_negative(bn) || len <= 0 || len > PKI_SERIAL_MAX)
		rc = -EINVAL;
	else
		out->len = (size_t)BN_bn2bin(bn, out->b);
	BN_free(bn);
	return rc;
}

ASN1_INTEGER *pki_serial_to_asn1(const struct pki_serial *s)
{
	BIGNUM *bn = BN_bin2bn(s->b, (int)s->len, NULL);
	if (!bn)
		return NULL;
	ASN1_INTEGER *ai = BN_to_ASN1_INTEGER(bn, NULL);
	BN_free(bn);
	return ai;
}
