/*
 * cert_describe.h: a certificate's properties as operators read them.
 *
 * Shared by `cert inspect` (prints them) and `cert check` (judges them), so
 * both name things the same way: "EC P-256", "clientAuth", "digitalSignature".
 */
#ifndef MTLSCTL_CERT_DESCRIBE_H
#define MTLSCTL_CERT_DESCRIBE_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* "EC P-256", "RSA 2048", "ED25519"; *bits gets the key size. */
void cert_key_desc(X509 *x, char *buf, size_t cap, int *bits);

/* Key strong enough for mtlsd (EC >= 256, RSA >= 2048, Ed25519/Ed448). */
bool cert_key_strong(X509 *x);

/* "digitalSignature, keyCertSign" or "" when there is no keyUsage. */
void cert_ku_desc(X509 *x, char *buf, size_t cap);

/* "serverAuth, clientAuth" or "" when there is no extendedKeyUsage. */
void cert_eku_desc(X509 *x, char *buf, size_t cap);

/* "DNS:a.example, IP:127.0.0.1, URI:spiffe://x/y" or "". Controls and
 * bytes that are not UTF-8 in a name are shown as \XX. */
void cert_san_desc(X509 *x, char *buf, size_t cap);

/* "2026-11-27 05:44:27 UTC" */
void cert_time_desc(const ASN1_TIME *t, char *buf, size_t cap);

/* notBefore / notAfter as time_t (0 if unreadable). */
time_t cert_not_before(X509 *x);
time_t cert_not_after(X509 *x);

/* RFC 2253 subject / issuer, every byte above 0x7f escaped ("Z\C3\BCrich"):
 * ASCII only, as the PKI index stores names. */
void cert_name_desc(X509_NAME *n, char *buf, size_t cap);

/* The same for people at a terminal: UTF-8 kept ("L=Zürich"), C0 and C1
 * controls and bytes that are not UTF-8 shown as \XX (safetext.h). */
void cert_name_display(X509_NAME *n, char *buf, size_t cap);

#endif
