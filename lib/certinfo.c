/*
 * certinfo.c: the loggable identity of an X.509 certificate.
 *
 * What the audit line, the PROXY v2 TLVs and the accounting say about a
 * client certificate is computed here, once per handshake, from the
 * certificate alone; which of its names is the client's identity (the
 * SPIFFE ID and CN a backend is told) is the allow-list's decision, in
 * struct verify_result. Certificate fields are attacker-chosen bytes: every
 * string leaves this file either bounded and NUL-free (struct cert_identity)
 * or JSON-escaped (json_put_string, safetext.h), never raw.
 */
#include "certinfo.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cert_name.h"
#include "spiffe_id.h"

#include "safetext.h"

/*
 * SHA-256 and SHA-1 fetched once. EVP_sha256() is a legacy handle: every
 * X509_digest() with it fetched the provider's implementation again (an
 * ENGINE lookup, a method-store lookup under a lock). Kept for the life of
 * the process; NULL (no such algorithm in the loaded providers) falls back
 * to the legacy handle.
 */
static EVP_MD *fetched_sha256, *fetched_sha1;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_digests(void)
{
	fetched_sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
	fetched_sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
}

static const EVP_MD *md_sha256(void)
{
	pthread_once(&fetch_once, fetch_digests);
	return fetched_sha256 ? fetched_sha256 : EVP_sha256();
}

static const EVP_MD *md_sha1(void)
{
	pthread_once(&fetch_once, fetch_digests);
	return fetched_sha1 ? fetched_sha1 : EVP_sha1();
}

void hex_encode(const uint8_t *in, size_t len, char *out, int upper, char sep)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (sep && i > 0)
			out[o++] = sep;
		out[o++] = digits[in[i] >> 4];
		out[o++] = digits[in[i] & 0x0f];
	}
	out[o] = '\0';
}

int base64url_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t need = (len / 3) * 4 + (len % 3 ? len % 3 + 1 : 0);
	size_t o = 0;

	ENSURE(need < cap, ENOSPC);
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t left = len - i;

		if (left > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (left > 2)
			v |= in[i + 2];
		out[o++] = alphabet[(v >> 18) & 63];
		out[o++] = alphabet[(v >> 12) & 63];
		if (left > 1)
			out[o++] = alphabet[(v >> 6) & 63];
		if (left > 2)
			out[o++] = alphabet[v & 63];
	}
	out[o] = '\0';
	return (int)o;
}

/* Copy at most cap-1 bytes, stopping at an embedded NUL: the identity
 * strings are C strings, and a NUL inside a certificate field must not
 * make a shorter name appear (it is shown in full, escaped, in the SANs).
 * A name longer than the field is cut between two characters, never
 * inside one. */
static void copy_field(char *dst, size_t cap, const unsigned char *src, size_t len)
{
	const unsigned char *nul = len ? memchr(src, '\0', len) : NULL;
	size_t n = nul ? (size_t)(nul - src) : len;

	n = utf8_cut((const char *)src, n, cap - 1);
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

/* The CN when the subject has exactly one, as UTF-8. A CN holding a NUL
 * byte is not reported at all: "admin\0.evil" must not reach a backend as
 * CN "admin". */
static void only_cn(const X509_NAME *name, char *out, size_t cap)
{
	int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	int len;

	out[0] = '\0';
	if (i < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
		return;
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	if (len < 0)
		return;
	if ((size_t)len < cap && !memchr(utf8, '\0', (size_t)len))
		copy_field(out, cap, utf8, (size_t)len);
	OPENSSL_free(utf8);
}

/* The SPIFFE ID when the certificate carries exactly one URI SAN of the
 * spiffe scheme (any case: "SPIFFE://" counts as one too) and it is a
 * valid SPIFFE ID. */
static void only_spiffe_id(X509 *x, char *out, size_t cap)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	const ASN1_STRING *only = NULL;
	int n = 0;

	out[0] = '\0';
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const ASN1_STRING *s = g->type == GEN_URI ? g->d.uniformResourceIdentifier : NULL;

		if (s && ASN1_STRING_length(s) >= 7 &&
		    strncasecmp((const char *)ASN1_STRING_get0_data(s), "spiffe:", 7) == 0) {
			only = s;
			n++;
		}
	}
	if (n == 1) {
		const unsigned char *v = ASN1_STRING_get0_data(only);
		size_t len = (size_t)ASN1_STRING_length(only);

		if (len < cap && !memchr(v, '\0', len)) {
			copy_field(out, cap, v, len);
			if (spiffe_id_problem(out, 0))
				out[0] = '\0';
		}
	}
	GENERAL_NAMES_free(gens);
}

static int asn1_time_to_time_t(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	ENSURE(t && ASN1_TIME_to_tm(t, &tm) == 1, EINVAL);
	*out = timegm(&tm);
	return 0;
}

static int fill_serial_and_issuer(X509 *x, struct cert_identity *out)
{
	const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id(x);
	const unsigned char *der;
	size_t der_len;
	unsigned int md_len;
	uint8_t md[EVP_MAX_MD_SIZE];
	struct cert_serial sn;

	GUARD(cert_serial_from_asn1(X509_get0_serialNumber(x), &sn));
	_Static_assert(sizeof(out->serial) == sizeof(sn.b), "cert_identity holds any cert_serial");
	memcpy(out->serial, sn.b, sn.len);
	out->serial_len = sn.len;
	cert_serial_format(&sn, out->serial_hex, sizeof(out->serial_hex));

	if (akid && ASN1_STRING_length(akid) == CERT_ISSUER_ID_LEN) {
		memcpy(out->issuer_id, ASN1_STRING_get0_data(akid), CERT_ISSUER_ID_LEN);
	} else {
		GUARD_OSSL(X509_NAME_get0_der(X509_get_issuer_name(x), &der, &der_len), EINVAL);
		GUARD_OSSL(EVP_Digest(der, der_len, md, &md_len, md_sha1(), NULL), ENOMEM);
		memcpy(out->issuer_id, md, CERT_ISSUER_ID_LEN);
	}
	hex_encode(out->issuer_id, CERT_ISSUER_ID_LEN, out->issuer_id_hex, 0, 0);
	return 0;
}

int certinfo_from_x509(X509 *x, struct cert_identity *out)
{
	unsigned int md_len = 0;
	EVP_PKEY *pk;
	const char *sig;

	ENSURE_PTR(x, EINVAL);
	memset(out, 0, sizeof(*out));
	GUARD(fill_serial_and_issuer(x, out));
	BIO *bio = BIO_new(BIO_s_mem());
	ENSURE_PTR(bio, ENOMEM);
	int rc = cert_name_format_bio(bio, X509_get_subject_name(x), out->subject, sizeof(out->subject));
	if (rc == 0)
		rc = cert_name_format_bio(bio, X509_get_issuer_name(x), out->issuer, sizeof(out->issuer));
	BIO_free(bio);
	GUARD(rc);
	only_cn(X509_get_subject_name(x), out->subject_cn, sizeof(out->subject_cn));
	only_spiffe_id(x, out->spiffe_id, sizeof(out->spiffe_id));

	GUARD_OSSL(X509_digest(x, md_sha256(), out->sha256, &md_len), ENOMEM);
	ENSURE(md_len == sizeof(out->sha256), EINVAL);
	hex_encode(out->sha256, sizeof(out->sha256), out->sha256_hex, 0, 0);
	GUARD(base64url_encode(out->sha256, sizeof(out->sha256), out->x5t_s256, sizeof(out->x5t_s256)));

	GUARD(asn1_time_to_time_t(X509_get0_notBefore(x), &out->not_before));
	GUARD(asn1_time_to_time_t(X509_get0_notAfter(x), &out->not_after));

	pk = X509_get0_pubkey(x);
	snprintf(out->key_alg, sizeof(out->key_alg), "%s",
		 pk && EVP_PKEY_get0_type_name(pk) ? EVP_PKEY_get0_type_name(pk) : "unknown");
	out->key_bits = pk ? EVP_PKEY_get_bits(pk) : 0;
	sig = OBJ_nid2ln(X509_get_signature_nid(x));
	snprintf(out->sig_alg, sizeof(out->sig_alg), "%s", sig ? sig : "unknown");
	return 0;
}

/* "IP:10.0.0.1" / "IP:2001:db8::1"; anything else as hex. */
static int format_ip(const ASN1_OCTET_STRING *ip, char *out, size_t cap)
{
	const unsigned char *b = ASN1_STRING_get0_data(ip);
	int len = ASN1_STRING_length(ip);
	char text[INET6_ADDRSTRLEN];

	if (len == 4 && inet_ntop(AF_INET, b, text, sizeof(text)))
		return snprintf(out, cap, "IP:%s", text);
	if (len == 16 && inet_ntop(AF_INET6, b, text, sizeof(text)))
		return snprintf(out, cap, "IP:%s", text);
	if (len < 0 || (size_t)len * 2 + 4 > cap)
		return snprintf(out, cap, "IP:?");
	memcpy(out, "IP:", 3);
	hex_encode(b, (size_t)len, out + 3, 0, 0);
	return (int)strlen(out);
}

/* One SAN as "TYPE:value" bytes in out (not NUL-safe: value may hold any
 * byte, the JSON writer escapes it). Returns its length. */
static size_t format_san(const GENERAL_NAME *g, char *out, size_t cap)
{
	const char *prefix;
	const ASN1_STRING *str;
	int n;

	switch (g->type) {
	case GEN_DNS: prefix = "DNS:"; str = g->d.dNSName; break;
	case GEN_URI: prefix = "URI:"; str = g->d.uniformResourceIdentifier; break;
	case GEN_EMAIL: prefix = "email:"; str = g->d.rfc822Name; break;
	case GEN_IPADD:
		n = format_ip(g->d.iPAddress, out, cap);
		return n > 0 ? ((size_t)n < cap ? (size_t)n : cap - 1) : 0;
	case GEN_RID:
		n = snprintf(out, cap, "RID:");
		n += OBJ_obj2txt(out + n, (int)(cap - (size_t)n), g->d.registeredID, 1);
		return strnlen(out, cap - 1);
	case GEN_DIRNAME:
		memcpy(out, "DirName:", 8);
		if (cert_name_format(g->d.directoryName, out + 8, cap - 8) < 0)
			out[8] = '\0';
		return strlen(out);
	default:
		n = snprintf(out, cap, "othername:<unsupported>");
		return (size_t)n;
	}
	size_t plen = strlen(prefix);
	size_t vlen = (size_t)ASN1_STRING_length(str);

	if (plen + vlen >= cap)
		vlen = cap - plen - 1;
	memcpy(out, prefix, plen);
	memcpy(out + plen, ASN1_STRING_get0_data(str), vlen);
	return plen + vlen;
}

int certinfo_sans_json(X509 *x, char *buf, size_t cap)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	char one[1024];
	size_t off = 0;
	int rc = -ENOSPC;

	if (cap < 3)
		goto out;
	buf[off++] = '[';
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		size_t len = format_san(sk_GENERAL_NAME_value(gens, i), one, sizeof(one));

		if (i > 0 && off + 1 >= cap)
			goto out;
		if (i > 0)
			buf[off++] = ',';
		if (json_put_string(buf, cap, &off, one, len) < 0)
			goto out;
	}
	if (off + 2 > cap)
		goto out;
	buf[off++] = ']';
	buf[off] = '\0';
	rc = (int)off;
out:
	GENERAL_NAMES_free(gens);
	return rc;
}
