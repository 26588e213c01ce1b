/*
 * test_pemutil.c: loading certificates, keys and CRLs, and refusing what
 * must be refused: missing, unreadable, malformed, encrypted, and key files
 * that group or others can read. Certificates come from the fixtures
 * (tests/fixtures.md); broken files are written into a scratch directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pemutil.h"
#include "skip_because.h"

static char scratch[] = "/tmp/test_pemutil.XXXXXX";
static char err[1024];

static const char *fixture(const char *rel)
{
	static char path[4][512];
	static int slot;
	const char *dir = getenv("MTLS_FIXTURES");
	if (!dir)
		fail_msg("MTLS_FIXTURES is not set; run through meson test");
	slot = (slot + 1) % 4;
	snprintf(path[slot], sizeof(path[slot]), "%s/%s", dir, rel);
	return path[slot];
}

static const char *scratch_file(const char *name, const char *content, mode_t mode)
{
	static char path[4][512];
	static int slot;
	slot = (slot + 1) % 4;
	snprintf(path[slot], sizeof(path[slot]), "%s/%s", scratch, name);
	unlink(path[slot]);
	int fd = open(path[slot], O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	assert_int_equal(chmod(path[slot], mode), 0);
	return path[slot];
}

/* Copy a fixture into the scratch dir with the given mode. */
static const char *scratch_copy(const char *name, const char *from, mode_t mode)
{
	char buf[65536];
	FILE *f = fopen(from, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return scratch_file(name, buf, mode);
}

static void test_pemutil_certs_load_chain(void **state)
{
	STACK_OF(X509) *certs = NULL;
	(void)state;
	assert_int_equal(pem_load_certs(fixture("server/chain.pem"), &certs, err, sizeof(err)), 0);
	assert_int_equal(sk_X509_num(certs), 3); /* leaf, issuing, intermediate */
	sk_X509_pop_free(certs, X509_free);
}

static void test_pemutil_certs_missing_file(void **state)
{
	STACK_OF(X509) *certs = NULL;
	(void)state;
	assert_int_equal(pem_load_certs("/nonexistent/x.pem", &certs, err, sizeof(err)), -ENOENT);
	assert_null(certs);
	assert_non_null(strstr(err, "no such file"));
}

static void test_pemutil_certs_malformed(void **state)
{
	STACK_OF(X509) *certs = NULL;
	(void)state;
	const char *p = scratch_file("bad.pem", "-----BEGIN CERTIFICATE-----\nMIIB!!notbase64\n"
				     "-----END CERTIFICATE-----\n", 0644);
	assert_int_equal(pem_load_certs(p, &certs, err, sizeof(err)), -EBADMSG);
	assert_null(certs);
	assert_non_null(strstr(err, "malformed PEM: certificate #1"));
}

static void test_pemutil_certs_second_block_malformed(void **state)
{
	STACK_OF(X509) *certs = NULL;
	char good[8192];
	(void)state;
	FILE *f = fopen(fixture("server/cert.pem"), "r");
	assert_non_null(f);
	size_t n = fread(good, 1, sizeof(good) - 200, f);
	fclose(f);
	good[n] = '\0';
	strcat(good, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
	const char *p = scratch_file("bad2.pem", good, 0644);
	assert_int_equal(pem_load_certs(p, &certs, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "certificate #2"));
}

static void test_pemutil_certs_not_pem(void **state)
{
	STACK_OF(X509) *certs = NULL;
	(void)state;
	const char *p = scratch_file("text.pem", "hello, this is not PEM\n", 0644);
	assert_int_equal(pem_load_certs(p, &certs, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "no certificate found"));
}

static void test_pemutil_certs_key_given_as_cert(void **state)
{
	STACK_OF(X509) *certs = NULL;
	(void)state;
	assert_int_equal(pem_load_certs(fixture("server/key.pem"), &certs, err, sizeof(err)), -EBADMSG);
	assert_null(certs);
	assert_non_null(strstr(err, "holds a private key, not a certificate"));
}

static void test_pemutil_certs_directory_refused(void **state)
{
	STACK_OF(X509) *certs = NULL;
	(void)state;
	assert_int_equal(pem_load_certs(scratch, &certs, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
}

/* As root every file is readable: drop to nobody in a child to see EACCES. */
static void test_pemutil_certs_unreadable(void **state)
{
	(void)state;
	const char *p = scratch_copy("secret.pem", fixture("server/cert.pem"), 0600);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		STACK_OF(X509) *certs = NULL;
		if (geteuid() == 0) {
			if (chmod(scratch, 0755) < 0 || setresuid(65534, 65534, 65534) < 0)
				_exit(2);
		} else if (chmod(p, 0) < 0) {
			_exit(2);
		}
		int rc = pem_load_certs(p, &certs, err, sizeof(err));
		_exit(rc == -EACCES && strstr(err, "permission denied") ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_pemutil_crls_load(void **state)
{
	STACK_OF(X509_CRL) *crls = NULL;
	(void)state;
	assert_int_equal(pem_load_crls(fixture("pki/crls.pem"), &crls, err, sizeof(err)), 0);
	assert_int_equal(sk_X509_CRL_num(crls), 3); /* root, intermediate, issuing */
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
}

static void test_pemutil_crls_cert_file_refused(void **state)
{
	STACK_OF(X509_CRL) *crls = NULL;
	(void)state;
	assert_int_equal(pem_load_crls(fixture("server/cert.pem"), &crls, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "no CRL found"));
}

static void test_pemutil_key_0600_accepted(void **state)
{
	EVP_PKEY *key = NULL;
	(void)state;
	const char *p = scratch_copy("k600.pem", fixture("server/key.pem"), 0600);
	assert_int_equal(keyfile_check_perms(p, false, err, sizeof(err)), 0);
	assert_int_equal(pem_load_private_key(p, false, KEY_OWNER_NONE, &key, err, sizeof(err)), 0);
	assert_non_null(key);
	EVP_PKEY_free(key);
}

static void test_pemutil_key_0644_refused(void **state)
{
	EVP_PKEY *key = NULL;
	(void)state;
	const char *p = scratch_copy("k644.pem", fixture("server/key.pem"), 0644);
	assert_int_equal(keyfile_check_perms(p, false, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "mode 0644"));
	assert_non_null(strstr(err, "chmod 600"));
	assert_int_equal(pem_load_private_key(p, false, KEY_OWNER_NONE, &key, err, sizeof(err)), -EPERM);
	assert_null(key);
}

static void test_pemutil_key_0640_refused(void **state)
{
	(void)state;
	const char *p = scratch_copy("k640.pem", fixture("server/key.pem"), 0640);
	assert_int_equal(keyfile_check_perms(p, false, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "mode 0640"));
}

static void test_pemutil_key_0644_allowed_when_insecure(void **state)
{
	EVP_PKEY *key = NULL;
	(void)state;
	const char *p = scratch_copy("k644i.pem", fixture("server/key.pem"), 0644);
	assert_int_equal(pem_load_private_key(p, true, KEY_OWNER_NONE, &key, err, sizeof(err)), 0);
	EVP_PKEY_free(key);
}

static void test_pemutil_key_foreign_owner_refused(void **state)
{
	(void)state;
	SKIP_UNLESS_ROOT("only root can give a file away");
	const char *p = scratch_copy("kown.pem", fixture("server/key.pem"), 0600);
	assert_int_equal(chown(p, 65534, 65534), 0);
	assert_int_equal(keyfile_check_perms(p, false, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "owned by uid 65534"));
}

static void test_pemutil_key_missing(void **state)
{
	EVP_PKEY *key = NULL;
	(void)state;
	assert_int_equal(pem_load_private_key("/nonexistent/k.pem", false, KEY_OWNER_NONE, &key, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no such file"));
}

static void test_pemutil_key_cert_given_as_key(void **state)
{
	EVP_PKEY *key = NULL;
	(void)state;
	const char *p = scratch_copy("certaskey.pem", fixture("server/cert.pem"), 0600);
	assert_int_equal(pem_load_private_key(p, false, KEY_OWNER_NONE, &key, err, sizeof(err)), -EBADMSG);
	assert_null(key);
	assert_non_null(strstr(err, "no private key found"));
}

static void test_pemutil_key_encrypted_refused(void **state)
{
	EVP_PKEY *key = NULL, *enc_src = NULL;
	char pem[8192];
	(void)state;
	assert_int_equal(pem_load_private_key(fixture("server/key.pem"), false, KEY_OWNER_NONE, &enc_src, err, sizeof(err)), 0);
	BIO *bio = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PrivateKey(bio, enc_src, EVP_aes_256_cbc(),
						  (unsigned char *)"pw", 2, NULL, NULL), 1);
	int n = BIO_read(bio, pem, sizeof(pem) - 1);
	assert_true(n > 0);
	pem[n] = '\0';
	BIO_free(bio);
	EVP_PKEY_free(enc_src);
	const char *p = scratch_file("enc.pem", pem, 0600);
	assert_int_equal(pem_load_private_key(p, false, KEY_OWNER_NONE, &key, err, sizeof(err)), -EBADMSG);
	assert_null(key);
	assert_non_null(strstr(err, "passphrase"));
}

static void test_pemutil_self_signed_root(void **state)
{
	STACK_OF(X509) *root = NULL, *issuing = NULL;
	(void)state;
	assert_int_equal(pem_load_certs(fixture("pki/root/ca.crt"), &root, err, sizeof(err)), 0);
	assert_int_equal(pem_load_certs(fixture("pki/issuing/ca.crt"), &issuing, err, sizeof(err)), 0);
	assert_true(x509_is_self_signed(sk_X509_value(root, 0)));
	assert_false(x509_is_self_signed(sk_X509_value(issuing, 0)));
	sk_X509_pop_free(root, X509_free);
	sk_X509_pop_free(issuing, X509_free);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(scratch) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[600];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pemutil_certs_load_chain),
		cmocka_unit_test(test_pemutil_certs_missing_file),
		cmocka_unit_test(test_pemutil_certs_malformed),
		cmocka_unit_test(test_pemutil_certs_second_block_malformed),
		cmocka_unit_test(test_pemutil_certs_not_pem),
		cmocka_unit_test(test_pemutil_certs_key_given_as_cert),
		cmocka_unit_test(test_pemutil_certs_directory_refused),
		cmocka_unit_test(test_pemutil_certs_unreadable),
		cmocka_unit_test(test_pemutil_crls_load),
		cmocka_unit_test(test_pemutil_crls_cert_file_refused),
		cmocka_unit_test(test_pemutil_key_0600_accepted),
		cmocka_unit_test(test_pemutil_key_0644_refused),
		cmocka_unit_test(test_pemutil_key_0640_refused),
		cmocka_unit_test(test_pemutil_key_0644_allowed_when_insecure),
		cmocka_unit_test(test_pemutil_key_foreign_owner_refused),
		cmocka_unit_test(test_pemutil_key_missing),
		cmocka_unit_test(test_pemutil_key_cert_given_as_key),
		cmocka_unit_test(test_pemutil_key_encrypted_refused),
		cmocka_unit_test(test_pemutil_self_signed_root),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
