/*
 * keyref.c: private keys by file path or by URI (lib/keyref.h).
 *
 * A file goes to lib/pemutil (permission rules, cleansed buffers). A URI
 * goes to the configured engine (ENGINE_load_private_key: libp11 parses the
 * RFC 7512 URI, logs in and finds the object) or to OSSL_STORE. The PIN is
 * handed over two ways because engines differ: as a UI_METHOD answer (what
 * OSSL_STORE and most engines ask) and as the engine's "PIN" control
 * command (libp11 logs in with it without asking). Nothing here keeps the
 * PIN: it lives on the stack of keyref_load() and is cleansed there.
 *
 * The failure reasons operators meet are told apart from OpenSSL's error
 * queue and libp11's PKCS#11 return codes: a PIN the token refused, no such
 * token, no such object.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "keyref.h"

#include <ctype.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/store.h>
#include <openssl/ui.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto_accel.h"
#include "log.h"
#include "pemutil.h"

bool keyref_is_uri(const char *ref)
{
	size_t n = 0;

	if (!isalpha((unsigned char)ref[0]))
		return false;
	while (isalnum((unsigned char)ref[n]) || ref[n] == '+' || ref[n] == '-' || ref[n] == '.')
		n++;
	/* Two letters at least: "c:key.pem" is not a scheme worth guessing. */
	return n >= 2 && ref[n] == ':';
}

/*
 * Copy src into buf with the value after every NAME hidden up to the next
 * ';', '?' or '&': every occurrence, in any case, wherever it stands (a
 * reference is only ever shown to humans; hiding too much costs nothing).
 */
static const char *redact_values(const char *src, const char *name, char *buf, size_t len)
{
	size_t nl = strlen(name), o = 0;

	if (len == 0)
		return buf;
	for (const char *p = src; *p;) {
		if (strncasecmp(p, name, nl) == 0) {
			int w = snprintf(buf + o, len - o, "%.*s***", (int)nl, p);
			o = w < 0 || (size_t)w >= len - o ? len - 1 : o + (size_t)w;
			p += nl + strcspn(p + nl, ";?&");
			continue;
		}
		if (o + 1 >= len)
			break;
		buf[o++] = *p++;
	}
	buf[o] = '\0';
	return buf;
}

const char *keyref_redact(const char *ref, char *buf, size_t len)
{
	return redact_values(ref, "pin-value=", buf, len);
}

const char *keyref_redact_engine_ctrl(const char *cmd, char *buf, size_t len)
{
	/* libp11's PIN command (all of its value is the PIN, typos such as
	 * "PIN=..." included); other engines' commands carry no secret. */
	if (strncasecmp(cmd, "PIN", 3) == 0)
		snprintf(buf, len, "%.*s***", cmd[3] == ':' ? 4 : 3, cmd);
	else
		snprintf(buf, len, "%s", cmd);
	return buf;
}

/* Percent-decode src[0..n) into dst (RFC 3986); -EINVAL for a bad escape. */
static int pct_decode(const char *src, size_t n, char *dst, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		ENSURE(o + 1 < len, E2BIG);
		if (src[i] != '%') {
			dst[o++] = src[i];
			continue;
		}
		ENSURE(i + 2 < n, EINVAL);
		ENSURE(isxdigit((unsigned char)src[i + 1]) && isxdigit((unsigned char)src[i + 2]), EINVAL);
		char hex[3] = { src[i + 1], src[i + 2], '\0' };
		dst[o++] = (char)strtoul(hex, NULL, 16);
		i += 2;
	}
	dst[o] = '\0';
	return 0;
}

/* The value of attribute name= in a pkcs11 URI (path or query part). */
static const char *uri_attr(const char *uri, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);

	for (const char *p = strchr(uri, ':'); p && *p; p += strcspn(p, ";?&")) {
		p++;
		if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
			*vlen = strcspn(p + nl + 1, ";?&");
			return p + nl + 1;
		}
	}
	return NULL;
}

/* A PIN file: regular, the owner and mode rules of a private key
 * (lib/pemutil.h, never overridable), first line only. */
static int read_pin_file(const char *path, uid_t also_owner, char *pin, size_t len, char *err,
			 size_t errlen)
{
	const struct secret_file_rule rule = {
		.what = "PIN file", .why = "whoever reads it can use the token's keys",
		.also_owner = also_owner,
	};
	struct stat st;
	int rc = 0;

	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "PIN file %s: %s; create it with the token's user PIN, mode 0600",
			 path, strerror(e));
		return -e;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "PIN file %s: not a regular file; give a file holding the PIN", path);
		rc = -EINVAL;
	} else if ((rc = secret_file_check(&rule, path, &st, err, errlen)) == 0) {
		ssize_t n = read(fd, pin, len - 1);
		if (n < 0) {
			rc = -errno;
			snprintf(err, errlen, "PIN file %s: %s", path, strerror(-rc));
			n = 0;
		}
		pin[n] = '\0';
		pin[strcspn(pin, "\r\n")] = '\0';
	}
	close(fd);
	return rc;
}

int keyref_read_pin(const struct keyref_opts *opts, char *pin, size_t len, char *err, size_t errlen)
{
	pin[0] = '\0';
	if (opts->pin_file)
		return read_pin_file(opts->pin_file, secret_file_owner_uid(opts->owner), pin, len, err,
				      errlen);
	if (opts->pin_env) {
		const char *v = getenv(opts->pin_env);
		if (!v) {
			snprintf(err, errlen, "key_pin_env = %s, but the environment has no %s; set it "
				 "in the service's environment (systemd: LoadCredential or Environment=)",
				 opts->pin_env, opts->pin_env);
			return -ENOENT;
		}
		ENSURE(strlen(v) < len, E2BIG);
		snprintf(pin, len, "%s", v);
	}
	return 0;
}

/* The PIN for uri: pin-value, pin-source=file:..., then the opts. */
static int pin_for_uri(const char *uri, const struct keyref_opts *opts, char *pin, size_t len,
		       char *err, size_t errlen)
{
	char path[512];
	size_t vlen;
	const char *v;

	if ((v = uri_attr(uri, "pin-value", &vlen))) {
		if (pct_decode(v, vlen, pin, len) < 0) {
			snprintf(err, errlen, "the URI's pin-value is not valid percent-encoding");
			return -EINVAL;
		}
		return 0;
	}
	if ((v = uri_attr(uri, "pin-source", &vlen))) {
		int rc = pct_decode(v, vlen, path, sizeof(path));
		const char *file = path + (rc == 0 && strncmp(path, "file:", 5) == 0 ? 5 : 0);
		/* Absolute only: mtlsd's working directory is nobody's business;
		 * "|program" would run a command: never. */
		if (rc < 0 || file[0] != '/') {
			snprintf(err, errlen, "the URI's pin-source must be file:/ABSOLUTE/PATH (programs "
				 "are not run)");
			return -EINVAL;
		}
		return read_pin_file(file, secret_file_owner_uid(opts->owner), pin, len, err, errlen);
	}
	return keyref_read_pin(opts, pin, len, err, errlen);
}

/* OpenSSL asks for the PIN through a UI; answer with ours, never a prompt. */
static int give_pin(char *buf, int size, int rwflag, void *u)
{
	const char *pin = u;
	int n = (int)strlen(pin);

	(void)rwflag;
	if (n == 0 || n >= size)
		return -1;
	memcpy(buf, pin, (size_t)n);
	return n;
}

/* Why the token said no, from the error queue (drained into ossl). */
static int classify_failure(char *ossl, size_t len)
{
	int rc = -ENOENT;
	unsigned long e;

	ossl[0] = '\0';
	size_t off = 0;
	while ((e = ERR_get_error()) != 0) {
		const char *r = ERR_reason_error_string(e);
		char buf[128];
		if (!r) {
			ERR_error_string_n(e, buf, sizeof(buf));
			r = buf;
		}
		if (strcasestr(r, "pin"))
			rc = -EACCES;
		int w = snprintf(ossl + off, len - off, "%s%s", off ? "; " : "", r);
		if (w > 0 && (size_t)w < len - off)
			off += (size_t)w;
	}
	return rc;
}

static int load_from_engine(ENGINE *e, const char *uri, char *pin, EVP_PKEY **out)
{
	UI_METHOD *ui = UI_UTIL_wrap_read_pem_callback(give_pin, 0);
	ENSURE_PTR(ui, ENOMEM);
	/* libp11 logs in with the PIN it was given; other engines ignore it. */
	if (pin[0] && ENGINE_ctrl_cmd_string(e, "PIN", pin, 1) != 1)
		ERR_clear_error();
	*out = ENGINE_load_private_key(e, uri, ui, pin);
	UI_destroy_method(ui);
	return *out ? 0 : -ENOENT;
}

static int load_from_store(const char *uri, char *pin, EVP_PKEY **out)
{
	UI_METHOD *ui = UI_UTIL_wrap_read_pem_callback(give_pin, 0);
	ENSURE_PTR(ui, ENOMEM);
	OSSL_STORE_CTX *st = OSSL_STORE_open(uri, ui, pin, NULL, NULL);
	if (st) {
		if (OSSL_STORE_expect(st, OSSL_STORE_INFO_PKEY) != 1)
			ERR_clear_error(); /* some loaders filter nothing: we check the type below */
		while (!*out && !OSSL_STORE_eof(st)) {
			OSSL_STORE_INFO *info = OSSL_STORE_load(st);
			if (info && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
				*out = OSSL_STORE_INFO_get1_PKEY(info);
			OSSL_STORE_INFO_free(info);
			if (!info && OSSL_STORE_error(st))
				break;
		}
		OSSL_STORE_close(st);
	}
	UI_destroy_method(ui);
	return *out ? 0 : -ENOENT;
}

/*
 * The URI without its pin-value and pin-source attributes: the PIN goes
 * over the UI or the PIN command, and engines print the URI they were
 * given in their own error messages.
 */
static int uri_without_pin(const char *uri, char *buf, size_t len)
{
	size_t o = 0;
	const char *p = uri;

	while (*p) {
		size_t n = strcspn(p + 1, ";?&") + 1;
		bool drop = (p != uri) && (strncmp(p + 1, "pin-value=", 10) == 0 ||
					   strncmp(p + 1, "pin-source=", 11) == 0);
		if (p == uri)
			n = strcspn(p, ";?&");
		if (!drop) {
			ENSURE(o + n < len, E2BIG);
			memcpy(buf + o, p, n);
			o += n;
		}
		p += n;
	}
	buf[o] = '\0';
	return 0;
}

/*
 * An engine keeps its token sessions logged in for the keys already handed
 * out (libp11 does; logging out would break the generation still serving),
 * so a second load never shows the token a PIN again. Remember a digest of
 * the PIN each token accepted and refuse a different one, rather than let
 * a reload "succeed" with a PIN nobody checked.
 */
#define MAX_TOKENS 8
static struct {
	unsigned char token[SHA256_DIGEST_LENGTH], pin[SHA256_DIGEST_LENGTH];
} logins[MAX_TOKENS];
static size_t n_logins;

static void digest_of(const char *s, size_t len, unsigned char out[SHA256_DIGEST_LENGTH])
{
	SHA256((const unsigned char *)s, len, out);
}

/* -1: first login to this token; 0: same PIN; 1: a different PIN. */
static int pin_changed(const char *uri, const char *pin, size_t *slot)
{
	unsigned char tok[SHA256_DIGEST_LENGTH], dig[SHA256_DIGEST_LENGTH];
	size_t vlen = 0;
	const char *t = uri_attr(uri, "token", &vlen);

	digest_of(t ? t : "", t ? vlen : 0, tok);
	digest_of(pin, strlen(pin), dig);
	for (size_t i = 0; i < n_logins; i++) {
		if (memcmp(logins[i].token, tok, sizeof(tok)) == 0) {
			*slot = i;
			return CRYPTO_memcmp(logins[i].pin, dig, sizeof(dig)) != 0;
		}
	}
	*slot = n_logins;
	return -1;
}

static void remember_login(const char *uri, const char *pin, size_t slot)
{
	size_t vlen = 0;
	const char *t = uri_attr(uri, "token", &vlen);

	if (slot >= MAX_TOKENS)
		return;
	digest_of(t ? t : "", t ? vlen : 0, logins[slot].token);
	digest_of(pin, strlen(pin), logins[slot].pin);
	if (slot == n_logins)
		n_logins++;
}

static int load_uri(const char *uri, const struct keyref_opts *opts, EVP_PKEY **out,
		    char *err, size_t errlen)
{
	char pin[KEYREF_MAX_PIN], ossl[384], bare[1024];
	ENGINE *e = crypto_accel_engine();

	if (uri_without_pin(uri, bare, sizeof(bare)) < 0) {
		snprintf(err, errlen, "URI longer than %zu characters", sizeof(bare) - 1);
		return -E2BIG;
	}
	GUARD(pin_for_uri(uri, opts, pin, sizeof(pin), err, errlen));
	size_t slot;
	if (e && pin_changed(uri, pin, &slot) == 1) {
		OPENSSL_cleanse(pin, sizeof(pin));
		snprintf(err, errlen, "the PIN differs from the one this token was logged in with, and "
			 "the engine keeps that login open for the keys in use: a reload cannot check it. "
			 "Restore the PIN, or restart mtlsd to log in with the new one");
		return -EACCES;
	}
	ERR_clear_error();
	int rc = e ? load_from_engine(e, bare, pin, out) : load_from_store(bare, pin, out);
	if (rc == 0 && e)
		remember_login(uri, pin, slot);
	OPENSSL_cleanse(pin, sizeof(pin));
	if (rc == 0)
		return 0;
	rc = classify_failure(ossl, sizeof(ossl));
	if (rc == -EACCES)
		snprintf(err, errlen, "the token refused the PIN; check key_pin_file / key_pin_env / "
			 "pin-value (a token locks after repeated failures) [%s]", ossl);
	else
		snprintf(err, errlen, "%s found no private key there; check the token label, the "
			 "object label or id (list them: pkcs11-tool --module MODULE -O), the PIN, and "
			 "that the token holds the matching public key object with the same id%s%s%s",
			 e ? "the engine" : "OSSL_STORE (no engine = configured)",
			 ossl[0] ? " [" : "", ossl, ossl[0] ? "]" : "");
	return rc;
}

int keyref_load(const char *ref, const struct keyref_opts *opts, EVP_PKEY **out,
		char *err, size_t errlen)
{
	*out = NULL;
	if (!keyref_is_uri(ref))
		return pem_load_private_key(ref, opts->allow_insecure, secret_file_owner_uid(opts->owner),
					    out, err, errlen);
	return load_uri(ref, opts, out, err, errlen);
}
