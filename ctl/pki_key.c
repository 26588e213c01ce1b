/*
 * pki_key.c: key generation, encrypted and plain key files, passphrases.
 *
 * lib/pemutil reads plain keys for mtlsd; mtlsctl also needs encrypted
 * ones and the passphrase plumbing, which stay here because only the CA
 * side ever holds a passphrase.
 */
#include "pki_key.h"

#include <fcntl.h>
#include <pthread.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

static const struct {
	const char *name;
	const char *alg;
	const char *curve; /* EC only */
	size_t bits;       /* RSA only */
} key_types[PKI_KEY_TYPE_MAX] = {
	[PKI_KEY_EC_P256] = { "ec-p256", "EC", "P-256", 0 },
	[PKI_KEY_EC_P384] = { "ec-p384", "EC", "P-384", 0 },
	[PKI_KEY_RSA_2048] = { "rsa-2048", "RSA", NULL, 2048 },
	[PKI_KEY_RSA_3072] = { "rsa-3072", "RSA", NULL, 3072 },
	[PKI_KEY_RSA_4096] = { "rsa-4096", "RSA", NULL, 4096 },
	[PKI_KEY_RSA_1024] = { "rsa-1024", "RSA", NULL, 1024 },
};

int pki_key_type_from_name(const char *name)
{
	for (int i = 0; i < PKI_KEY_TYPE_MAX; i++)
		if (strcmp(key_types[i].name, name) == 0)
			return i;
	return -1;
}

const char *pki_key_type_name(enum pki_key_type t)
{
	return (unsigned)t < PKI_KEY_TYPE_MAX ? key_types[t].name : "unknown";
}

bool pki_key_type_is_rsa(enum pki_key_type t)
{
	return (unsigned)t < PKI_KEY_TYPE_MAX && key_types[t].bits != 0;
}

int pki_key_generate(enum pki_key_type t, EVP_PKEY **out)
{
	ENSURE((unsigned)t < PKI_KEY_TYPE_MAX, EINVAL);
	if (key_types[t].curve)
		*out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", key_types[t].curve);
	else
		*out = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", key_types[t].bits);
	ENSURE_PTR(*out, EIO);
	return 0;
}

struct keygen_job {
	enum pki_key_type type;
	EVP_PKEY *key;
	int rc;
};

static void *keygen_thread(void *arg)
{
	struct keygen_job *job = arg;
	job->rc = pki_key_generate(job->type, &job->key);
	return NULL;
}

int pki_key_generate_many(enum pki_key_type t, EVP_PKEY **out, size_t n)
{
	struct keygen_job jobs[PKI_KEYGEN_MAX];
	pthread_t threads[PKI_KEYGEN_MAX];
	bool started[PKI_KEYGEN_MAX] = { false };
	int rc = 0;

	ENSURE(n <= PKI_KEYGEN_MAX, EINVAL);
	for (size_t i = 0; i < n; i++) {
		jobs[i] = (struct keygen_job){ .type = t, .key = NULL, .rc = -EIO };
		/* Without a thread, the key is made here: slower, never wrong. */
		started[i] = pthread_create(&threads[i], NULL, keygen_thread, &jobs[i]) == 0;
		if (!started[i])
			keygen_thread(&jobs[i]);
	}
	for (size_t i = 0; i < n; i++) {
		if (started[i])
			pthread_join(threads[i], NULL);
		if (jobs[i].rc < 0)
			rc = jobs[i].rc;
	}
	for (size_t i = 0; i < n; i++) {
		if (rc < 0) {
			EVP_PKEY_free(jobs[i].key);
			jobs[i].key = NULL;
		}
		out[i] = jobs[i].key;
	}
	return rc;
}

const EVP_MD *pki_key_digest(EVP_PKEY *key)
{
	if (EVP_PKEY_is_a(key, "EC") && EVP_PKEY_get_bits(key) >= 384)
		return EVP_sha384();
	return EVP_sha256();
}

int pki_key_save(const char *path, EVP_PKEY *key, const char *pass)
{
	/* A secure-memory BIO clears its buffer when freed. */
	BIO *mem = BIO_new(BIO_s_secmem());
	ENSURE_PTR(mem, ENOMEM);
	int rc = 0, ok;
	if (pass)
		ok = PEM_write_bio_PKCS8PrivateKey(mem, key, EVP_aes_256_cbc(), NULL, 0, NULL,
						   (void *)pass);
	else
		ok = PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL, NULL);
	ENSURE_GOTO(ok == 1, rc, EIO, out);
	char *data = NULL;
	long len = BIO_get_mem_data(mem, &data);
	ENSURE_GOTO(len > 0, rc, EIO, out);
	rc = fs_write_atomic(path, data, (size_t)len, 0600);
out:
	BIO_free(mem);
	return rc;
}

/* The same rule as lib/pemutil's keyfile_check_perms: owner-only. */
static int check_private_mode(int fd, const char *what, char *err, size_t errlen)
{
	struct stat st;
	ENSURE(fstat(fd, &st) == 0, errno);
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", what);
		return -EINVAL;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "%s has mode %04o, readable by others: run chmod 600 on it",
			 what, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		snprintf(err, errlen, "%s is owned by uid %u, not by you", what, (unsigned)st.st_uid);
		return -EPERM;
	}
	return 0;
}

/* Read a private file (key or passphrase) into a buffer cleansed on free. */
static int read_private(const char *path, const char *what, char **out, size_t *len,
			char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot open %s: %s", what, strerror(e));
		return -e;
	}
	/* Check and read the same open file: no window to swap it between. */
	int rc = check_private_mode(fd, what, err, errlen);
	if (rc == 0) {
		rc = fs_read_fd(fd, 1 << 20, out, len);
		if (rc < 0)
			snprintf(err, errlen, "cannot read %s: %s", what, strerror(-rc));
	}
	close(fd);
	return rc;
}

int pki_key_load(const char *path, const char *pass, EVP_PKEY **out, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	GUARD(read_private(path, "the key file", &text, &len, err, errlen));
	int rc = 0;
	bool encrypted = strstr(text, "-----BEGIN ENCRYPTED PRIVATE KEY-----") != NULL;
	BIO *bio = BIO_new_mem_buf(text, (int)len);
	ENSURE_GOTO(bio != NULL, rc, ENOMEM, out);
	if (encrypted && !pass) {
		snprintf(err, errlen, "the key is encrypted and no passphrase was given");
		rc = -EACCES;
		goto out;
	}
	/* With a NULL callback, OpenSSL takes u as the passphrase string. An
	 * empty string for plain keys keeps it from prompting on a tty. */
	*out = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)(pass ? pass : ""));
	if (!*out) {
		snprintf(err, errlen, encrypted ? "wrong passphrase (cannot decrypt the key): check "
			 "--passphrase-file or the variable named by --passphrase-env (default "
			 PKI_PASS_ENV_DEFAULT ")"
			 : "not a PEM private key: restore it from your backup");
		rc = encrypted ? -EACCES : -EBADMSG;
	}
out:
	BIO_free(bio);
	OPENSSL_clear_free(text, len);
	return rc;
}

int pki_pass_read(const struct pki_pass_source *src, char **out, char *err, size_t errlen)
{
	char *pass = NULL;
	size_t len = 0;
	if (src->file) {
		GUARD(read_private(src->file, "the passphrase file", &pass, &len, err, errlen));
		/* First line only; a trailing newline from an editor is not part of it. */
		size_t cut = strcspn(pass, "\r\n");
		OPENSSL_cleanse(pass + cut, len - cut);
		len = cut;
	} else {
		const char *var = src->env ? src->env : PKI_PASS_ENV_DEFAULT;
		const char *v = getenv(var);
		if (!v || !*v) {
			snprintf(err, errlen, "environment variable %s is not set: export it, "
				 "or give --passphrase-file FILE (mode 0600)", var);
			return -ENOENT;
		}
		len = strlen(v);
		pass = strdup(v);
		ENSURE_PTR(pass, ENOMEM);
		/* Wipe the process's own copy too (it is what /proc/PID/environ
		 * and a core dump would show), then drop the variable. */
		OPENSSL_cleanse((char *)v, len);
		unsetenv(var);
	}
	if (len < PKI_PASS_MIN_LEN) {
		snprintf(err, errlen, "the passphrase is shorter than %d characters", PKI_PASS_MIN_LEN);
		pki_pass_free(pass);
		return -EINVAL;
	}
	*out = pass;
	return 0;
}

void pki_pass_free(char *pass)
{
	if (pass)
		OPENSSL_clear_free(pass, strlen(pass));
}
