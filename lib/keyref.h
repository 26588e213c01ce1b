/*
 * keyref.h: a private key named by a file path or by a URI.
 *
 * `key =` (and --key) take either a PEM file or a URI such as RFC 7512's
 * `pkcs11:token=mtlsd;object=server-key`. A URI goes to the engine
 * configured with `engine =` (lib/crypto_accel.h; libp11's pkcs11 engine
 * on Debian) or, without one, to OSSL_STORE and whichever provider
 * handles its scheme. Either way the EVP_PKEY returned is a handle: the
 * private key stays in the token and signing happens there.
 *
 * The PIN comes, in this order, from the URI's pin-value attribute, its
 * pin-source=file:PATH query, the key_pin_file file, or the key_pin_env
 * environment variable. PIN files follow the owner and mode rules of private
 * keys (lib/pemutil.h: root, mtlsd's user or the service user; mode 0600;
 * no override); the PIN is cleansed from memory once the key is loaded, and
 * no message ever shows it (keyref_redact).
 */
#ifndef MTLS_KEYREF_H
#define MTLS_KEYREF_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>

#include "guard.h"

struct keyref_opts {
	bool allow_insecure;    /* key files readable by group/others accepted */
	const char *owner;      /* service user whose key files are accepted too; NULL */
	const char *pin_file;   /* PIN for URIs without one; NULL */
	const char *pin_env;    /* environment variable with the PIN; NULL */
};

#define KEYREF_MAX_PIN 256

/* True when ref is a URI ("scheme:..." with no '/' before the colon). */
bool keyref_is_uri(const char *ref);

/*
 * ref as a human may see it: every pin-value attribute's value, in any
 * case and wherever it stands, shown as "***". Every message, log line,
 * status field and report that shows a key reference prints this, never
 * ref itself. Returns buf (truncated to len).
 */
const char *keyref_redact(const char *ref, char *buf, size_t len);

/* The same for an engine_ctrl command: "PIN:4711" is shown "PIN:***". */
const char *keyref_redact_engine_ctrl(const char *cmd, char *buf, size_t len);

/*
 * Load the private key ref names. Files go through pem_load_private_key()
 * (permission rules of lib/pemutil.h, with opts->owner). URIs go to the
 * engine or OSSL_STORE with the PIN found as above. -ENOENT when the
 * token, object or file is not there, -EACCES for a PIN the token refused,
 * -EPERM for a key or PIN file others can read, -EINVAL otherwise. err
 * gets the reason and what to do, without the reference itself (the caller
 * prints it, redacted, with the config line).
 */
int keyref_load(const char *ref, const struct keyref_opts *opts, EVP_PKEY **out,
		char *err, size_t errlen) MUST_CHECK;

/*
 * The PIN for a URI without one: pin_file's first line (a file that is not
 * regular, or breaks the owner and mode rules, is refused with -EPERM) or
 * pin_env's value. pin[0] == '\0' when neither is set. Cleanse pin after use.
 */
int keyref_read_pin(const struct keyref_opts *opts, char *pin, size_t len,
		    char *err, size_t errlen) MUST_CHECK;

#endif
