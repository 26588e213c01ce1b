/*
 * pki_key.h: private keys and CA passphrases.
 *
 * Every issue makes a new key. Keys are written 0600: CA keys of the offline
 * tiers (root, intermediates) as PKCS#8 encrypted with AES-256-CBC, the
 * issuing CA key and leaf keys as plain PEM (online keys; see docs/pki.md).
 * Every buffer that held a key or a passphrase is cleansed before release.
 */
#ifndef MTLSCTL_PKI_KEY_H
#define MTLSCTL_PKI_KEY_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>

#include "guard.h"

enum pki_key_type {
	PKI_KEY_EC_P256 = 0,
	PKI_KEY_EC_P384,
	PKI_KEY_RSA_2048,
	PKI_KEY_RSA_3072,
	PKI_KEY_RSA_4096,
	PKI_KEY_RSA_1024, /* test fixtures only: a key every verifier must refuse */
	PKI_KEY_TYPE_MAX
};

/* "ec-p256" etc.; -1 for an unknown name. */
int pki_key_type_from_name(const char *name);
const char *pki_key_type_name(enum pki_key_type t);
bool pki_key_type_is_rsa(enum pki_key_type t);

#define PKI_KEYGEN_MAX 8

/* A fresh key. -EIO (OpenSSL error queue holds why). */
int pki_key_generate(enum pki_key_type t, EVP_PKEY **out) MUST_CHECK;

/*
 * n fresh keys, generated on n threads at once: an RSA-3072 key takes about
 * a second, and a hierarchy needs three. On failure every key made is freed
 * and out[] is all NULL.
 */
int pki_key_generate_many(enum pki_key_type t, EVP_PKEY **out, size_t n) MUST_CHECK;

/* The digest a CA with this key signs with (SHA-384 for P-384, else SHA-256). */
const EVP_MD *pki_key_digest(EVP_PKEY *key);

/* Write key to path (0600, atomic). pass == NULL: plain PEM; else PKCS#8
 * encrypted with AES-256-CBC under pass. */
int pki_key_save(const char *path, EVP_PKEY *key, const char *pass) MUST_CHECK;

/*
 * Load a key written by pki_key_save, refusing a file readable or writable
 * by group or others. pass is needed for encrypted keys. Errors: -EPERM
 * (mode), -EACCES (wrong passphrase), -EBADMSG (not a key), with a reason in
 * err.
 */
int pki_key_load(const char *path, const char *pass, EVP_PKEY **out,
		 char *err, size_t errlen) MUST_CHECK;

/* Where a CA passphrase comes from: a file or an environment variable
 * (never argv, which any user can read in /proc). */
struct pki_pass_source {
	const char *file; /* --passphrase-file, or NULL */
	const char *env;  /* --passphrase-env, default MTLS_CA_PASS */
};

#define PKI_PASS_ENV_DEFAULT "MTLS_CA_PASS"
#define PKI_PASS_MIN_LEN 8

/*
 * Read the passphrase (first line of the file, or the variable's value).
 * The file must not be readable by group or others. *out is freed with
 * pki_pass_free. Errors name the file or variable in err.
 */
int pki_pass_read(const struct pki_pass_source *src, char **out, char *err,
		  size_t errlen) MUST_CHECK;
void pki_pass_free(char *pass);

#endif
