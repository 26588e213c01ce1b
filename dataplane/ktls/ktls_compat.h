/*
 * ktls_compat.h: the kernel TLS constants and structures, in one place.
 *
 * Debian 12's linux-libc-dev (6.1) ships linux/tls.h with everything mtlsd
 * uses (TLS 1.3, ChaCha20-Poly1305, TLS_GET/SET_RECORD_TYPE); only the
 * socket-level names that older libcs lack are backfilled here. Nothing else
 * in mtlsd includes linux/tls.h.
 */
#ifndef MTLSD_KTLS_COMPAT_H
#define MTLSD_KTLS_COMPAT_H

#include <linux/tls.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

/* TLS record content types, as the kernel reports them in the
 * TLS_GET_RECORD_TYPE control message (RFC 8446 section 5.1). */
enum ktls_content_type {
	KTLS_CT_CHANGE_CIPHER_SPEC = 20,
	KTLS_CT_ALERT = 21,
	KTLS_CT_HANDSHAKE = 22,
	KTLS_CT_APPLICATION_DATA = 23,
};

/* One buffer big enough for any crypto_info mtlsd hands the kernel. */
union ktls_crypto_info {
	struct tls_crypto_info info;
	struct tls12_crypto_info_aes_gcm_128 gcm128;
	struct tls12_crypto_info_aes_gcm_256 gcm256;
	struct tls12_crypto_info_chacha20_poly1305 chacha;
};

#endif
