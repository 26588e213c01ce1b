/*
 * pki_cert.h: building and signing certificates from a profile.
 *
 * One function makes every certificate mtlsctl issues (root, intermediate,
 * issuing CA, server and client leaves, and the deliberately broken test
 * fixtures), so what the tests check is what operators get. The profile says
 * what the certificate is for; the extensions follow from it:
 *   CA:     basicConstraints critical CA:TRUE,pathlen:N;
 *           keyUsage critical keyCertSign,cRLSign; SKI; AKI
 *   server: basicConstraints critical CA:FALSE; keyUsage critical
 *           digitalSignature; EKU serverAuth; SKI; AKI; SAN
 *   client: the same with EKU clientAuth
 * Leaves carry digitalSignature only, also for RSA: mtlsd negotiates ECDHE
 * only, so no certificate is ever used for RSA key transport
 * (keyEncipherment).
 */
#ifndef MTLSCTL_PKI_CERT_H
#define MTLSCTL_PKI_CERT_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "guard.h"
#include "pki_serial.h"

enum pki_profile_kind { PKI_PROFILE_CA = 0, PKI_PROFILE_SERVER, PKI_PROFILE_CLIENT };

/* EKU to put in a leaf: the profile's own, or a test override. */
enum pki_eku { PKI_EKU_PROFILE = 0, PKI_EKU_SERVER, PKI_EKU_CLIENT, PKI_EKU_NONE };

#define PKI_MAX_SANS 32

struct pki_names {
	const char *v[PKI_MAX_SANS];
	size_t n;
};

struct pki_cert_profile {
	enum pki_profile_kind kind;
	int pathlen;             /* CA only; -1 for no limit */
	const char *cn;          /* subject CN */
	const char *org;         /* subject O, or NULL */
	time_t not_before, not_after;
	struct pki_names dns, ip, uri;
	struct pki_serial serial; /* must be set (pki_serial_random) */
	enum pki_eku eku;         /* test override; PKI_EKU_PROFILE normally */
};

/*
 * Build and sign a certificate for subject_key. issuer == NULL makes a
 * self-signed root (signed by issuer_key, which must then be subject_key).
 * Returns 0 and a new X509 in *out, or -EINVAL with the reason in err (a SAN
 * that does not parse, ...) or -EIO (OpenSSL).
 */
int pki_cert_build(const struct pki_cert_profile *p, EVP_PKEY *subject_key, X509 *issuer,
		   EVP_PKEY *issuer_key, X509 **out, char *err, size_t errlen) MUST_CHECK;

/* Checks for --dns and --uri values; err says what is wrong. */
bool pki_dns_name_ok(const char *name, char *err, size_t errlen);
bool pki_uri_ok(const char *uri, char *err, size_t errlen);

/* Write certificates (in order) as PEM to path, 0644, atomically. */
int pki_certs_save(const char *path, X509 *const *certs, size_t n) MUST_CHECK;

/* SHA-256 fingerprint "AB:CD:..." (96 bytes with NUL). */
void pki_cert_fingerprint(X509 *x, char *buf, size_t cap);

#endif
