/*
 * ossl_compat.h: the OpenSSL 3.x differences mtlsd meets, in one place.
 *
 * mtlsd builds on OpenSSL 3.0 (Debian 12) and later 3.x. A function that
 * a later release renamed or deprecated gets one wrapper here, picked at
 * compile time, so no module carries a version #if in its code.
 */
#ifndef MTLSD_OSSL_COMPAT_H
#define MTLSD_OSSL_COMPAT_H

#include <openssl/opensslv.h>
#include <openssl/ssl.h>
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

#endif
