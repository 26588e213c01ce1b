/*
 * generation_internal.h: what the two halves of a generation's build share
 * inside tls/ (generation.c builds the partners and drives the build,
 * server_ctx.c builds the server SSL_CTX). Nothing outside tls/ includes it.
 */
#ifndef MTLSD_GENERATION_INTERNAL_H
#define MTLSD_GENERATION_INTERNAL_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "cert_name.h"
#include "generation.h"
#include "guard.h"

/* One build in progress: the generation it fills and where its one error
 * message goes. */
struct build {
	struct generation *g;
	char *err;
	size_t errlen;
};

/*
 * Report a problem with a file: "mtlsd.conf:7: cert /x/y.pem: reason" when
 * the file came from the config file (line > 0), "--cert /x/y.pem: reason"
 * when it came from a flag. Returns rc.
 */
__attribute__((format(printf, 6, 7)))
int build_file_fail(struct build *b, int rc, int line, const char *key, const char *file,
		    const char *fmt, ...);

/* Names in config errors as everywhere else: RFC 2253 (lib/cert_name.h). */
static inline const char *subject_of(X509 *x, char *buf, size_t len)
{
	cert_name_format(X509_get_subject_name(x), buf, len);
	return buf;
}

/*
 * Build the server SSL_CTX of b->g, whose config is validated and whose
 * partners are built (verification reads them), in the fixed order
 * server_ctx.c documents. Returns 0 with *out a complete context the
 * caller owns, or -errno with b->err saying why (*out untouched).
 */
int server_ctx_build(struct build *b, SSL_CTX **out) MUST_CHECK;

#endif
