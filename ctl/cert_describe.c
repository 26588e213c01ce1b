/*
 * cert_describe.c: rendering certificate properties (cert_describe.h).
 */
#include "cert_describe.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cert_name.h"
#include "pki_policy.h"
#include "safetext.h"

/* Append to a ", "-separated list in buf. */
static void list_add(char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void list_add(char *buf, size_t cap, const char *fmt, ...)
{
	size_t len = strlen(buf);
	if (len && len + 2 < cap) {
		strcpy(buf + len, ", ");
		len += 2;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + len, cap - len, fmt, ap);
	va_end(ap);
	utf8_trim_partial(buf); /* a full list is cut between two characters */
}

void cert_key_desc(X509 *x, char *buf, size_t cap, int *bits)
{
	EVP_PKEY *key = X509_get0_pubkey(x);
	char group[64] = "";
	*bits = key ? EVP_PKEY_get_bits(key) : 0;
	if (!key) {
		snprintf(buf, cap, "unreadable public key");
		return;
	}
	if (EVP_PKEY_is_a(key, "EC") &&
	    EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group), NULL) == 1) {
		const char *nist = EC_curve_nid2nist(OBJ_txt2nid(group));
		snprintf(buf, cap, "EC %s", nist ? nist : group);
		return;
	}
	snprintf(buf, cap, "%s %d", EVP_PKEY_get0_type_name(key), *bits);
}

bool cert_key_strong(X509 *x)
{
	EVP_PKEY *key = X509_get0_pubkey(x);
	if (!key)
		return false;
	int bits = EVP_PKEY_get_bits(key);
	if (EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_is_a(key, "RSA-PSS"))
		return bits >= PKI_MIN_RSA_BITS;
	if (EVP_PKEY_is_a(key, "EC"))
		return bits >= PKI_MIN_EC_BITS;
	return EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448");
}

void cert_ku_desc(X509 *x, char *buf, size_t cap)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} ku[] = {
		{ KU_DIGITAL_SIGNATURE, "digitalSignature" }, { KU_NON_REPUDIATION, "nonRepudiation" },
		{ KU_KEY_ENCIPHERMENT, "keyEncipherment" }, { KU_DATA_ENCIPHERMENT, "dataEncipherment" },
		{ KU_KEY_AGREEMENT, "keyAgreement" }, { KU_KEY_CERT_SIGN, "keyCertSign" },
		{ KU_CRL_SIGN, "cRLSign" }, { KU_ENCIPHER_ONLY, "encipherOnly" },
		{ KU_DECIPHER_ONLY, "decipherOnly" },
	};
	buf[0] = '\0';
	if (!(X509_get_extension_flags(x) & EXFLAG_KUSAGE))
		return;
	uint32_t bits = X509_get_key_usage(x);
	for (size_t i = 0; i < sizeof(ku) / sizeof(ku[0]); i++)
		if (bits & ku[i].bit)
			list_add(buf, cap, "%s", ku[i].name);
}

void cert_eku_desc(X509 *x, char *buf, size_t cap)
{
	buf[0] = '\0';
	EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
	for (int i = 0; eku && i < sk_ASN1_OBJECT_num(eku); i++) {
		/* Short names ("clientAuth"), as in configs and RFC 5280;
		 * unknown purposes as their dotted OID. */
		const ASN1_OBJECT *obj = sk_ASN1_OBJECT_value(eku, i);
		int nid = OBJ_obj2nid(obj);
		char oid[80];
		if (nid == NID_undef)
			OBJ_obj2txt(oid, sizeof(oid), obj, 1);
		list_add(buf, cap, "%s", nid == NID_undef ? oid : OBJ_nid2sn(nid));
	}
	EXTENDED_KEY_USAGE_free(eku);
}

static void ip_desc(const ASN1_OCTET_STRING *ip, char *buf, size_t cap)
{
	int len = ASN1_STRING_length(ip);
	int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : AF_UNSPEC;
	if (af == AF_UNSPEC || !inet_ntop(af, ASN1_STRING_get0_data(ip), buf, (socklen_t)cap))
		snprintf(buf, cap, "(malformed)");
}

void cert_san_desc(X509 *x, char *buf, size_t cap)
{
	buf[0] = '\0';
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		char ip[64];
		switch (g->type) {
		case GEN_DNS:
		case GEN_URI:
		case GEN_EMAIL: {
			/* Whoever made the certificate chose these bytes: controls
			 * and bytes that are not UTF-8 are shown as \XX. */
			char value[1024];
			term_escape(value, sizeof(value), (const char *)ASN1_STRING_get0_data(g->d.ia5),
				    (size_t)ASN1_STRING_length(g->d.ia5));
			list_add(buf, cap, "%s:%s",
				 g->type == GEN_DNS ? "DNS" : g->type == GEN_URI ? "URI" : "email", value);
			break;
		}
		case GEN_IPADD:
			ip_desc(g->d.ip, ip, sizeof(ip));
			list_add(buf, cap, "IP:%s", ip);
			break;
		default:
			list_add(buf, cap, "other");
			break;
		}
	}
	GENERAL_NAMES_free(gens);
}

void cert_time_desc(const ASN1_TIME *t, char *buf, size_t cap)
{
	struct tm tm;
	if (t && ASN1_TIME_to_tm(t, &tm) == 1)
		strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
	else
		snprintf(buf, cap, "(unreadable)");
}

static time_t asn1_to_time_t(const ASN1_TIME *t)
{
	struct tm tm;
	return t && ASN1_TIME_to_tm(t, &tm) == 1 ? timegm(&tm) : 0;
}

time_t cert_not_before(X509 *x)
{
	return asn1_to_time_t(X509_get0_notBefore(x));
}

time_t cert_not_after(X509 *x)
{
	return asn1_to_time_t(X509_get0_notAfter(x));
}

void cert_name_desc(X509_NAME *n, char *buf, size_t cap)
{
	cert_name_format(n, buf, cap); /* the one spelling: lib/cert_name.h */
}

void cert_name_display(X509_NAME *n, char *buf, size_t cap)
{
	char text[2048];

	/* The one spelling (lib/cert_name.h: RFC 2253 with UTF-8 kept;
	 * OpenSSL still escapes C0 controls and the RFC 2253 specials); what
	 * OpenSSL leaves raw and a terminal would act on (C1 controls, bytes
	 * that are not UTF-8) term_escape shows as \XX, and a long name is cut
	 * between two characters. */
	buf[0] = '\0';
	if (cert_name_format(n, text, sizeof(text)) == 0)
		term_escape(buf, cap, text, strlen(text));
}
