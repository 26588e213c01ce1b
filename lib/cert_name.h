/*
 * cert_name.h: distinguished names, one spelling for mtlsd and mtlsctl.
 *
 * Every DN mtlsd or mtlsctl prints (audit line, logs, config errors,
 * `mtlsctl certs`, `doctor`, `cert inspect`, the PKI index) is RFC 2253:
 * most specific RDN first, "CN=partner Issuing CA,O=partner", RFC 2253
 * specials and control characters escaped by OpenSSL, non-ASCII kept as
 * UTF-8 ("O=Société"; the JSON writer escapes whatever is not valid
 * UTF-8).
 *
 * Where an operator types a DN (`mtlsctl drop --issuer`), both that form
 * and OpenSSL's one-line form ("/O=partner/CN=partner Issuing CA", root
 * first, as `openssl x509 -subject -nameopt compat` prints it) are read,
 * and compared with a certificate's name as X.509 compares names (RFC 5280
 * 7.1: case-insensitive, blanks folded, string types ignored), never as
 * text.
 */
#ifndef MTLS_CERT_NAME_H
#define MTLS_CERT_NAME_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#include "guard.h"

/*
 * name in RFC 2253 form into out (cap bytes, NUL-terminated, cut at cap-1
 * and never inside a UTF-8 character). Returns 0, -ENOMEM, or -EINVAL for
 * a name OpenSSL cannot print (out is then "?").
 */
int cert_name_format(const X509_NAME *name, char *out, size_t cap);

/* The same through a caller's memory BIO (emptied first), for loops that
 * print many names. */
int cert_name_format_bio(BIO *bio, const X509_NAME *name, char *out, size_t cap) MUST_CHECK;

/*
 * Parse a DN typed by an operator: RFC 2253 ("CN=a,O=b", '\' escapes and
 * "\XX" hex pairs, '+' for multi-valued RDNs, blanks around ',' ignored)
 * or one-line ("/O=b/CN=a"). Attribute types are OpenSSL's short or long
 * names or dotted OIDs. Returns a new X509_NAME, or NULL with the reason
 * in why ("'XX=1': unknown attribute type 'XX'").
 */
X509_NAME *cert_name_parse(const char *text, char *why, size_t wl);

/* Is name (from a certificate) the DN parsed into want? X509_NAME_cmp's
 * canonical comparison. */
bool cert_name_equal(const X509_NAME *want, const X509_NAME *name);

#endif
