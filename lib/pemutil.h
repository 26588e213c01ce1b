/*
 * pemutil.h: reading certificates, keys and CRLs from files, safely.
 *
 * Every function returns 0 or a negative errno and, on failure, writes a
 * one-line reason into err (what is wrong and what to do) without the path;
 * the caller prefixes the file name / config line it knows about.
 * Private key files readable by group or others are refused unless
 * allow_insecure is set. Passphrase-protected keys are not read here.
 */
#ifndef MTLS_PEMUTIL_H
#define MTLS_PEMUTIL_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "guard.h"

/* All certificates in a PEM file, in file order. -ENOENT, -EACCES, -EBADMSG
 * (no certificate or malformed PEM). *out is a new stack owned by the caller. */
int pem_load_certs(const char *path, STACK_OF(X509) **out, char *err, size_t errlen) MUST_CHECK;

/* All CRLs in a PEM file (at least one). */
int pem_load_crls(const char *path, STACK_OF(X509_CRL) **out, char *err, size_t errlen) MUST_CHECK;

/*
 * Check that a private-key file is a regular file owned by the caller's
 * euid (or root) and not readable/writable by group or others. -EPERM with
 * a reason naming the mode and the chmod to run.
 */
int keyfile_check_perms(const char *path, bool allow_insecure, char *err, size_t errlen) MUST_CHECK;

/* No extra owner: root and the euid only. */
#define KEY_OWNER_NONE ((uid_t)-1)

/* The same, also accepting files owned by also_owner (the configured service
 * user, so a key passes at start as root and on reload after the drop). */
int keyfile_check_perms_owned(const char *path, bool allow_insecure, uid_t also_owner,
			      char *err, size_t errlen) MUST_CHECK;

/*
 * The owner and mode rules of every file that holds a secret: private keys,
 * session-ticket keys (whoever can write them can mint a session for any
 * partner), PIN files. st is the fstat() of the open descriptor, so the file
 * checked is the file read. The owner must be root, the euid or
 * also_owner (the service user); no group or other bit may be set. -EPERM
 * with err naming what, the uid or mode, and the chown/chmod to run (with
 * path). allow_insecure (allow_insecure_key_permissions) skips both rules;
 * overridable says so in the message.
 */
struct secret_file_rule {
	const char *what;     /* "private key file", "session-ticket key file", "PIN file" */
	const char *why;      /* what the secret gives away, for the message; NULL */
	bool allow_insecure;
	bool overridable;
	uid_t also_owner;     /* KEY_OWNER_NONE for none */
};
int secret_file_check(const struct secret_file_rule *r, const char *path, const struct stat *st,
		      char *err, size_t errlen) MUST_CHECK;

/* The uid of user = (a name or a numeric id), or KEY_OWNER_NONE for NULL or
 * an unknown name: the also_owner of secret_file_check(). */
uid_t secret_file_owner_uid(const char *user);

/* Perms check (keyfile_check_perms_owned()'s owner rule: also_owner may own
 * the file, KEY_OWNER_NONE for root only) + load an unencrypted PEM private
 * key. The file buffer is cleansed before it is freed. */
int pem_load_private_key(const char *path, bool allow_insecure, uid_t also_owner,
			 EVP_PKEY **out, char *err, size_t errlen) MUST_CHECK;

/* True if the certificate is self-signed (a root): never presented. */
bool x509_is_self_signed(X509 *x);

#endif
