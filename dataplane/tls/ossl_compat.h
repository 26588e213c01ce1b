/*
 * ossl_compat.h: the OpenSSL 3.x differences mtlsd meets, in one place.
 *
 * mtlsd builds on OpenSSL 3.0 (Debian 12) and later 3.x. A function that
 * a later release renamed or deprecated gets one wrapper here, picked at
 * compile time, so no module carries a version #if in its code.
 */
#ifndef MTLSD_OSSL_COMPAT_H
#define MTLSD_OSSL_COMPAT_H

#include <openssl/err.h>
#include <openssl/opensslv.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <time.h>

/* SSL_SESSION_get/set_time() are deprecated in 3.4 for the _ex forms (3.3). */
#if OPENSSL_VERSION_NUMBER >= 0x30300000L
static inline time_t ossl_session_time(const SSL_SESSION *s)
{
	return SSL_SESSION_get_time_ex(s);
}

static inline int ossl_session_set_time(SSL_SESSION *s, time_t t)
{
	return SSL_SESSION_set_time_ex(s, t) != 0;
}
#else
static inline time_t ossl_session_time(const SSL_SESSION *s)
{
	return (time_t)SSL_SESSION_get_time(s);
}

static inline int ossl_session_set_time(SSL_SESSION *s, time_t t)
{
	return SSL_SESSION_set_time(s, (long)t) != 0;
}
#endif

/*
 * RFC 8879 certificate compression: OpenSSL 3.2 and later, built with
 * brotli, zstd or zlib (the lts stack and Debian 13 have zstd and zlib;
 * Debian 12's 3.0 has none). With on, the server's chains are compressed
 * once per context here with every algorithm it has (brotli first where a
 * build has it, then zstd, zlib), and compressed client
 * certificates are accepted (OpenSSL bounds their uncompressed size by
 * the context's max_cert_list, so a decompression bomb is refused before
 * it is inflated). With off, or where the stack has no algorithm, neither
 * direction is offered (a client context passes off to offer none). Call
 * after the certificates are loaded. Returns how
 * many algorithms are in use (0: none, the Certificate goes as before).
 */
#if OPENSSL_VERSION_NUMBER >= 0x30200000L && !defined(OPENSSL_NO_COMP_ALG)
#define OSSL_HAVE_CERT_COMPRESSION 1
static inline int ossl_cert_compression(SSL_CTX *ctx, bool on)
{
	int algs[] = { TLSEXT_comp_cert_brotli, TLSEXT_comp_cert_zstd, TLSEXT_comp_cert_zlib };
	int n = 0;

	if (on && SSL_CTX_set1_cert_comp_preference(ctx, algs, 3) == 1 && SSL_CTX_compress_certs(ctx, 0) == 1)
		for (int i = 0; i < 3; i++) {
			unsigned char *data = NULL;
			size_t orig_len = 0;
			/* An algorithm the build lacks leaves no compressed copy. */
			if (SSL_CTX_get1_compressed_cert(ctx, algs[i], &data, &orig_len) > 0)
				n++;
			OPENSSL_free(data);
		}
	ERR_clear_error();
	if (n == 0)
		SSL_CTX_set_options(ctx, SSL_OP_NO_TX_CERTIFICATE_COMPRESSION | SSL_OP_NO_RX_CERTIFICATE_COMPRESSION);
	return n;
}
#else
#define OSSL_HAVE_CERT_COMPRESSION 0
static inline int ossl_cert_compression(SSL_CTX *ctx, bool on)
{
	(void)ctx;
	(void)on;
	return 0;
}
#endif

#endif
