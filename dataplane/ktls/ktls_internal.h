/*
 * ktls_internal.h: what the kTLS source files share and nobody else uses.
 *
 * ktls.c (decision, record counting, install), ktls_keys.c (key schedule)
 * and ktls_control.c (non-data records on offloaded sockets).
 */
#ifndef MTLSD_KTLS_INTERNAL_H
#define MTLSD_KTLS_INTERNAL_H

#include <openssl/evp.h>

#include "ktls.h"

/* The syscall seam in effect (real syscalls unless a test replaced them). */
extern const struct ktls_ops *ktls_sys;

/* A negotiated cipher suite as the kernel sees it. */
struct ktls_suite {
	uint16_t cipher;      /* TLS_CIPHER_* */
	size_t key_len;
	size_t fixed_iv_len;  /* 4 for GCM (salt), 12 for ChaCha20 */
	const EVP_MD *md;     /* TLS 1.3 hash / TLS 1.2 PRF hash */
};

/* Fetch the KDF implementations once; called by ktls_global_init(). */
int ktls_keys_init(void) MUST_CHECK;

/* The suite of ssl's current session: -EPROTONOSUPPORT when kTLS cannot
 * take its cipher. */
int ktls_suite_of(const SSL *ssl, struct ktls_suite *out) MUST_CHECK;
/* The same from the cipher itself (SSL_CIPHERs are static in OpenSSL:
 * the pointer outlives the SSL). */
int ktls_suite_of_cipher(const SSL_CIPHER *c, struct ktls_suite *out) MUST_CHECK;

/* RFC 8446 7.1 HKDF-Expand-Label with an empty context. */
int ktls_hkdf_expand_label(const EVP_MD *md, const uint8_t *secret, size_t secret_len,
			   const char *label, uint8_t *out, size_t out_len) MUST_CHECK;

/* crypto_info for a TLS 1.3 direction from its traffic secret. */
int ktls_tls13_info(const struct ktls_suite *s, const uint8_t *secret, size_t secret_len,
		    uint64_t seq, union ktls_crypto_info *out, socklen_t *len) MUST_CHECK;

/* Log the first occurrence of an event/decision once per process. */
void ktls_count_decision(enum ktls_decision d);

#endif
