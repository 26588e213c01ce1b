/*
 * pemutil.c: reading certificates, keys and CRLs from files, safely.
 *
 * Every file is read whole into memory through one open file descriptor:
 * the checks (regular file, size, owner and mode of key files) are made on
 * that descriptor with fstat(), so the file that was checked is the file
 * that is parsed. OpenSSL then parses from a memory BIO, which lets us tell
 * the operator precisely which of "no such file", "permission denied",
 * "not PEM at all" and "a broken PEM block" happened. Buffers that held a
 * private key are cleansed before they are freed, and no passphrase prompt
 * is ever shown (a daemon has no terminal to ask on).
 */
#include "pemutil.h"

#include <fcntl.h>
#include <pwd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* No certificate bundle, key or CRL file is legitimately larger. */
#define PEM_FILE_MAX (16u << 20)

struct file_buf {
	char *data;
	size_t len;
	bool secret; /* cleanse before free */
};

static void file_buf_release(struct file_buf *fb)
{
	if (fb->data && fb->secret)
		OPENSSL_cleanse(fb->data, fb->len);
	free(fb->data);
	fb->data = NULL;
	fb->len = 0;
}

/* Translate an errno from open()/read() into what the operator should do. */
static int report_open_error(int e, char *err, size_t errlen)
{
	switch (e) {
	case ENOENT:
		snprintf(err, errlen, "no such file; check the path");
		break;
	case EACCES:
	case EPERM:
		snprintf(err, errlen, "permission denied; make the file (and its directories) readable by the user mtlsd runs as");
		break;
	case ENOTDIR:
		snprintf(err, errlen, "a component of the path is not a directory; check the path");
		break;
	case ELOOP:
		snprintf(err, errlen, "too many symbolic links; check the path");
		break;
	default:
		snprintf(err, errlen, "cannot open: %s", strerror(e));
		break;
	}
	return -e;
}

/*
 * The policy for every file that holds a secret (secret_file_check() in
 * pemutil.h), applied to the open descriptor's stat. The owner may be
 * root, our euid, or the configured service user: mtlsd starts as root and
 * reloads after dropping to that user, and the same file must pass both
 * times. A file owned by any other user can be swapped by that user.
 * Group/other bits must be clear: 0640 hands the secret to every member of
 * the group, 0620 lets them replace it.
 */
int secret_file_check(const struct secret_file_rule *r, const char *path, const struct stat *st,
		      char *err, size_t errlen)
{
	if (r->allow_insecure)
		return 0;
	if (st->st_uid != geteuid() && st->st_uid != 0 &&
	    (r->also_owner == KEY_OWNER_NONE || st->st_uid != r->also_owner)) {
		uid_t want = r->also_owner != KEY_OWNER_NONE ? r->also_owner : geteuid();
		snprintf(err, errlen,
			 "%s is owned by uid %u, not by uid %u (mtlsd's user) or root%s%s; "
			 "run: chown %u %s",
			 r->what, (unsigned)st->st_uid, (unsigned)want, r->why ? ": " : "",
			 r->why ? r->why : "", (unsigned)want, path);
		return -EPERM;
	}
	if (st->st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen,
			 "%s has mode %04o, which lets group or others access it%s%s; "
			 "run: chmod 600 %s%s",
			 r->what, (unsigned)(st->st_mode & 07777), r->why ? ": " : "",
			 r->why ? r->why : "", path,
			 r->overridable ? " (or set allow_insecure_key_permissions = yes)" : "");
		return -EPERM;
	}
	return 0;
}

uid_t secret_file_owner_uid(const char *user)
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	if (!user)
		return KEY_OWNER_NONE;
	if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) == 0 && res)
		return pw.pw_uid;
	/* A numeric user = is an id (lib/config accepts both). */
	char *end;
	unsigned long id = strtoul(user, &end, 10);
	return *user && *end == '\0' ? (uid_t)id : KEY_OWNER_NONE;
}

static int check_key_stat(const char *path, const struct stat *st, bool allow_insecure,
			  uid_t also_owner, char *err, size_t errlen)
{
	const struct secret_file_rule rule = {
		.what = "private key file", .allow_insecure = allow_insecure, .overridable = true,
		.also_owner = also_owner,
	};
	return secret_file_check(&rule, path, st, err, errlen);
}

/*
 * Read a whole regular file. When is_key is set the key policy is applied
 * to the descriptor before a single byte is read, and the buffer is marked
 * secret.
 */
static int read_whole_file(const char *path, bool is_key, bool allow_insecure, uid_t also_owner,
			   struct file_buf *out, char *err, size_t errlen)
{
	struct stat st;
	int rc = 0;

	out->data = NULL;
	out->len = 0;
	out->secret = is_key;

	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return report_open_error(errno, err, errlen);
	if (fstat(fd, &st) < 0) {
		rc = report_open_error(errno, err, errlen);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "not a regular file; give the path of a PEM file");
		rc = -EINVAL;
		goto out;
	}
	if (is_key)
		GUARD_GOTO(check_key_stat(path, &st, allow_insecure, also_owner, err, errlen), rc, out);
	if ((unsigned long long)st.st_size > PEM_FILE_MAX) {
		snprintf(err, errlen, "file is %lld bytes, more than the %u a PEM file may hold; check the path",
			 (long long)st.st_size, PEM_FILE_MAX);
		rc = -EFBIG;
		goto out;
	}
	out->data = malloc((size_t)st.st_size + 1);
	ENSURE_GOTO(out->data != NULL, rc, ENOMEM, out);
	while (out->len < (size_t)st.st_size) {
		ssize_t n = read(fd, out->data + out->len, (size_t)st.st_size - out->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = report_open_error(errno, err, errlen);
			goto out;
		}
		if (n == 0)
			break; /* truncated under us: parse what we have */
		out->len += (size_t)n;
	}
	out->data[out->len] = '\0';
out:
	if (rc < 0)
		file_buf_release(out);
	close(fd);
	return rc;
}

/* True when the last OpenSSL error only says "no more PEM blocks". */
static bool pem_error_is_eof(void)
{
	unsigned long e = ERR_peek_last_error();
	return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

/* Render the OpenSSL error queue for a malformed block: keep it to the
 * reason strings (the queue holds no key material, only codes). */
static void describe_malformed(const char *what, int index, char *err, size_t errlen)
{
	char ossl[256];
	ossl_errors_str(ossl, sizeof(ossl));
	snprintf(err, errlen, "malformed PEM: %s #%d cannot be decoded (%s); re-export the file in PEM format",
		 what, index, ossl);
}

int pem_load_certs(const char *path, STACK_OF(X509) **out, char *err, size_t errlen)
{
	struct file_buf fb;
	STACK_OF(X509) *certs = NULL;
	BIO *bio = NULL;
	int rc;

	*out = NULL;
	GUARD(read_whole_file(path, false, false, KEY_OWNER_NONE, &fb, err, errlen));
	bio = BIO_new_mem_buf(fb.data, (int)fb.len);
	certs = sk_X509_new_null();
	ENSURE_GOTO(bio && certs, rc, ENOMEM, out);

	ERR_clear_error();
	for (;;) {
		X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (!x)
			break;
		if (!sk_X509_push(certs, x)) {
			X509_free(x);
			rc = -ENOMEM;
			goto out;
		}
	}
	if (!pem_error_is_eof()) {
		describe_malformed("certificate", sk_X509_num(certs) + 1, err, errlen);
		rc = -EBADMSG;
		goto out;
	}
	ERR_clear_error();
	if (sk_X509_num(certs) == 0 && memmem(fb.data, fb.len, "PRIVATE KEY-----", 16)) {
		snprintf(err, errlen, "this file holds a private key, not a certificate; "
			 "check that cert and key are not swapped");
		rc = -EBADMSG;
		goto out;
	}
	if (sk_X509_num(certs) == 0) {
		snprintf(err, errlen, "no certificate found (expected '-----BEGIN CERTIFICATE-----'); "
			 "if the file is DER, convert it: openssl x509 -inform der -in FILE -out FILE.pem");
		rc = -EBADMSG;
		goto out;
	}
	*out = certs;
	certs = NULL;
	rc = 0;
out:
	sk_X509_pop_free(certs, X509_free);
	BIO_free(bio);
	file_buf_release(&fb);
	return rc;
}

int pem_load_crls(const char *path, STACK_OF(X509_CRL) **out, char *err, size_t errlen)
{
	struct file_buf fb;
	STACK_OF(X509_CRL) *crls = NULL;
	BIO *bio = NULL;
	int rc;

	*out = NULL;
	GUARD(read_whole_file(path, false, false, KEY_OWNER_NONE, &fb, err, errlen));
	bio = BIO_new_mem_buf(fb.data, (int)fb.len);
	crls = sk_X509_CRL_new_null();
	ENSURE_GOTO(bio && crls, rc, ENOMEM, out);

	ERR_clear_error();
	for (;;) {
		X509_CRL *c = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
		if (!c)
			break;
		if (!sk_X509_CRL_push(crls, c)) {
			X509_CRL_free(c);
			rc = -ENOMEM;
			goto out;
		}
	}
	if (!pem_error_is_eof()) {
		describe_malformed("CRL", sk_X509_CRL_num(crls) + 1, err, errlen);
		rc = -EBADMSG;
		goto out;
	}
	ERR_clear_error();
	if (sk_X509_CRL_num(crls) == 0) {
		snprintf(err, errlen, "no CRL found (expected '-----BEGIN X509 CRL-----'); "
			 "if the file is DER, convert it: openssl crl -inform der -in FILE -out FILE.pem");
		rc = -EBADMSG;
		goto out;
	}
	*out = crls;
	crls = NULL;
	rc = 0;
out:
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	BIO_free(bio);
	file_buf_release(&fb);
	return rc;
}

int keyfile_check_perms(const char *path, bool allow_insecure, char *err, size_t errlen)
{
	return keyfile_check_perms_owned(path, allow_insecure, KEY_OWNER_NONE, err, errlen);
}

int keyfile_check_perms_owned(const char *path, bool allow_insecure, uid_t also_owner,
			      char *err, size_t errlen)
{
	struct stat st;

	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return report_open_error(errno, err, errlen);
	int rc = fstat(fd, &st) < 0 ? report_open_error(errno, err, errlen) : 0;
	if (rc == 0 && !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "not a regular file; give the path of a PEM private key");
		rc = -EINVAL;
	}
	if (rc == 0)
		rc = check_key_stat(path, &st, allow_insecure, also_owner, err, errlen);
	close(fd);
	return rc;
}

/*
 * Passphrase callback: never prompt (OpenSSL's default reads the terminal).
 * Record that a passphrase was wanted so the error says so.
 */
static int refuse_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	*(bool *)u = true;
	return -1;
}

int pem_load_private_key(const char *path, bool allow_insecure, uid_t also_owner,
			 EVP_PKEY **out, char *err, size_t errlen)
{
	struct file_buf fb;
	BIO *bio = NULL;
	bool wanted_passphrase = false;
	int rc = 0;

	*out = NULL;
	GUARD(read_whole_file(path, true, allow_insecure, also_owner, &fb, err, errlen));
	bio = BIO_new_mem_buf(fb.data, (int)fb.len);
	ENSURE_GOTO(bio != NULL, rc, ENOMEM, out);

	ERR_clear_error();
	EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, refuse_passphrase, &wanted_passphrase);
	if (key) {
		*out = key;
		goto out;
	}
	rc = -EBADMSG;
	if (wanted_passphrase) {
		ERR_clear_error();
		snprintf(err, errlen, "private key is encrypted with a passphrase; mtlsd reads "
			 "unencrypted keys only: decrypt it (openssl pkey -in FILE -out NEW) and keep it mode 0600");
	} else if (!memmem(fb.data, fb.len, "PRIVATE KEY-----", 16)) {
		/* OpenSSL 3's decoders say "unsupported" for a file without any
		 * key block: look for the block ourselves to say what is wrong. */
		ERR_clear_error();
		snprintf(err, errlen, "no private key found (expected '-----BEGIN PRIVATE KEY-----'); "
			 "check that this is the key file and not the certificate");
	} else {
		describe_malformed("private key", 1, err, errlen);
	}
out:
	BIO_free(bio);
	file_buf_release(&fb);
	return rc;
}

bool x509_is_self_signed(X509 *x)
{
	/* Verify the signature too: a certificate whose issuer name equals its
	 * subject but which another key signed is not a root. */
	return X509_self_signed(x, 1) == 1;
}
