/*
 * cert_serial.c: serial numbers as DER INTEGER content octets (see
 * cert_serial.h). OpenSSL does the two's complement both ways (i2d and
 * d2i of the INTEGER, BN for text), so there is no arithmetic here.
 */
#include "cert_serial.h"

#include <ctype.h>
#include <openssl/bn.h>
#include <string.h>

#include "certinfo.h"

/* An INTEGER of at most CERT_SERIAL_HELD_MAX content octets has a short
 * DER header: tag 0x02, one length octet. */
#define SHORT_HEADER 2

int cert_serial_from_asn1(const ASN1_INTEGER *ai, struct cert_serial *out)
{
	unsigned char der[SHORT_HEADER + CERT_SERIAL_HELD_MAX], *p = der;
	int len;

	ENSURE_PTR(ai, EINVAL);
	len = i2d_ASN1_INTEGER(ai, NULL);
	ENSURE(len > SHORT_HEADER && len <= (int)sizeof(der), EINVAL);
	ENSURE(i2d_ASN1_INTEGER(ai, &p) == len, EINVAL);
	ENSURE(der[0] == V_ASN1_INTEGER && der[1] == len - SHORT_HEADER, EINVAL);
	out->len = (size_t)(len - SHORT_HEADER);
	memcpy(out->b, der + SHORT_HEADER, out->len);
	return 0;
}

ASN1_INTEGER *cert_serial_to_asn1(const struct cert_serial *s)
{
	unsigned char der[SHORT_HEADER + CERT_SERIAL_HELD_MAX];
	const unsigned char *p = der;

	if (s->len == 0 || s->len > CERT_SERIAL_HELD_MAX)
		return NULL;
	der[0] = V_ASN1_INTEGER;
	der[1] = (unsigned char)s->len;
	memcpy(der + SHORT_HEADER, s->b, s->len);
	return d2i_ASN1_INTEGER(NULL, &p, (long)(SHORT_HEADER + s->len));
}

int cert_serial_parse(const char *text, struct cert_serial *out)
{
	/* '-', the significant digits (a sign octet more than held is
	 * already too long), the NUL. */
	char digits[1 + 2 * CERT_SERIAL_HELD_MAX + 1];
	size_t n = 0;
	bool any = false;
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai = NULL;
	int rc = -EINVAL;

	ENSURE_PTR(text, EINVAL);
	if (*text == '-')
		digits[n++] = *text++;
	if (text[0] == '0' && (text[1] == 'x' || text[1] == 'X'))
		text += 2; /* as `openssl x509 -set_serial` takes it */
	for (const char *c = text; *c; c++) {
		if (*c == ':') {
			/* Between two digits only: "4F:A2", never ":4F", "4F:" or "4F::A2". */
			ENSURE(c > text && isxdigit((unsigned char)c[-1]) && isxdigit((unsigned char)c[1]), EINVAL);
			continue;
		}
		ENSURE(isxdigit((unsigned char)*c), EINVAL);
		any = true;
		if (*c == '0' && (n == 0 || (n == 1 && digits[0] == '-')))
			continue; /* a leading zero says nothing about the value */
		ENSURE(n + 2 < sizeof(digits), EINVAL);
		digits[n++] = *c;
	}
	ENSURE(any, EINVAL);
	if (n == 0 || (n == 1 && digits[0] == '-'))
		n = 0, digits[n++] = '0';
	digits[n] = '\0';
	if (BN_hex2bn(&bn, digits) == (int)n && (ai = BN_to_ASN1_INTEGER(bn, NULL)) != NULL)
		rc = cert_serial_from_asn1(ai, out);
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return rc;
}

void cert_serial_format(const struct cert_serial *s, char *buf, size_t cap)
{
	size_t n = s->len;

	if (cap == 0)
		return;
	if (n > cap / 3)
		n = cap / 3;
	hex_encode(s->b, n, buf, 1, ':');
}

bool cert_serial_equal(const struct cert_serial *a, const struct cert_serial *b)
{
	return a->len == b->len && memcmp(a->b, b->b, a->len) == 0;
}

int cert_serial_sign(const struct cert_serial *s)
{
	if (s->len == 0 || (s->len == 1 && s->b[0] == 0))
		return 0;
	return (s->b[0] & 0x80) ? -1 : 1;
}

const char *cert_serial_problem(const struct cert_serial *s)
{
	switch (cert_serial_sign(s)) {
	case -1:
		return "serial number is negative";
	case 0:
		return "serial number is zero";
	default:
		break;
	}
	if (s->len > CERT_SERIAL_RFC5280_MAX)
		return "serial number is longer than 20 octets";
	return NULL;
}
