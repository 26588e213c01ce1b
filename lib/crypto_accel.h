/*
 * crypto_accel.h: what does the crypto for mtlsd and mtlsctl, and what speeds
 * it up.
 *
 * The [mtlsd] keys openssl_conf, provider_path, provider, engine,
 * engine_ctrl and engine_default choose OpenSSL 3 providers (by name, with a
 * search path; module paths and parameters through an OpenSSL config file)
 * and one legacy engine (by id, with control commands such as SO_PATH or
 * MODULE_PATH). crypto_accel_apply() loads them once per process, before any
 * SSL_CTX or key exists, in mtlsd and in mtlsctl, so both see the same
 * algorithms and the same key stores (lib/keyref.h loads `pkcs11:` URIs
 * through the engine kept here).
 *
 * Providers and engines cannot be unloaded safely while an SSL_CTX or a key
 * may still point into them, so they stay for the life of the process: a
 * reload that changes these keys takes effect at the next restart.
 *
 * The report half (crypto_accel_cpu(), crypto_accel_describe()) says what
 * accelerates crypto here: the providers and engine in use and the CPU
 * features OpenSSL itself decided to use (OPENSSL_ia32cap, after its own
 * OS-support masking and any OPENSSL_ia32cap override in the environment).
 */
#ifndef MTLS_CRYPTO_ACCEL_H
#define MTLS_CRYPTO_ACCEL_H

#include <openssl/engine.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "guard.h"

/*
 * Load what cfg's crypto keys ask for: the OpenSSL config file, the
 * provider search path, each provider (plus "default" when neither
 * "default" nor "fips" is listed, so TLS keeps its algorithms), and the
 * engine with its control commands in order, initialised and, with
 * engine_default, made the default for those algorithm classes.
 * Idempotent: a second call in the same process is a no-op returning 0.
 * On failure err names the [mtlsd] key, the value and what to do, with
 * OpenSSL's reason; nothing loaded so far is unloaded.
 */
int crypto_accel_apply(const struct mtlsd_config *cfg, char *err, size_t errlen) MUST_CHECK;

/* The engine crypto_accel_apply() initialised, or NULL. Borrowed. */
ENGINE *crypto_accel_engine(void);

/* Release the engine and the providers loaded here (at exit). */
void crypto_accel_shutdown(void);

/* CPU features OpenSSL uses on this machine (x86-64; known = false elsewhere). */
struct crypto_cpu {
	bool known;
	bool aesni, pclmulqdq, avx, avx2, vaes, vpclmulqdq, sha_ni, avx512f, avx512bw, avx512vl;
	unsigned int cap[4]; /* as OPENSSL_ia32cap_P: CPUID.1 EDX, ECX; CPUID.7.0 EBX, ECX */
};

/*
 * Fill out the way OpenSSL's own CPU detection does (OpenSSL 3.0 does not
 * export its vector): CPUID, minus what the OS does not save (XCR0), then
 * the OPENSSL_ia32cap environment override. lib/crypto_cpu_<arch>.c.
 */
void crypto_accel_cpu(struct crypto_cpu *out);

/* "AES-NI PCLMULQDQ AVX2 VAES SHA-NI" (the features present, in that order);
 * "none" when known and empty, "unknown" off x86. Returns buf. */
const char *crypto_cpu_str(const struct crypto_cpu *c, char *buf, size_t len);

/* "default, pkcs11" (active providers, by name). Returns buf. */
const char *crypto_accel_providers_str(char *buf, size_t len);

/* "pkcs11 (pkcs11 engine)" for the engine in use, "none" without. */
const char *crypto_accel_engine_str(char *buf, size_t len);

/*
 * Several lines for `mtlsd --version -v` and logs: OpenSSL version,
 * providers, engine, CPU features, one per line, each prefixed by indent.
 */
void crypto_accel_describe(FILE *out, const char *indent);

/*
 * `PROGRAM --version`: "PROGRAM VERSION", and with -v (or --verbose)
 * anywhere in argv, crypto_accel_describe() below it.
 */
void crypto_accel_print_version(FILE *out, const char *program, int argc, char **argv);

#endif
