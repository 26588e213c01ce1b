/*
 * test_keyref.c: private keys by path or URI, PINs from files and the
 * environment, key files owned by the service user, and the crypto
 * acceleration report (lib/keyref.c, lib/crypto_accel.c, lib/pemutil.c).
 * Tokens themselves are exercised end to end in tests/hsm (SoftHSM2).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "crypto_accel.h"
#include "keyref.h"
#include "pemutil.h"
#include "skip_because.h"

static char scratch[] = "/tmp/test_keyref.XXXXXX";
static char err[1024];

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

static const char *fixture_key_copy(mode_t mode)
{
	char src[512], buf[8192];
	const char *dir = getenv("MTLS_FIXTURES");
	if (!dir)
		fail_msg("MTLS_FIXTURES is not set; run through meson test");
	snprintf(src, sizeof(src), "%s/server/key.pem", dir);
	FILE *f = fopen(src, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return scratch_file("key.pem", buf, mode);
}

static void test_keyref_uri_recognised(void **state)
{
	(void)state;
	assert_true(keyref_is_uri("pkcs11:token=mtlsd;object=server-key"));
	assert_true(keyref_is_uri("file:/etc/mtlsd/key.pem"));
	assert_true(keyref_is_uri("org.openssl.winstore:"));
}

static void test_keyref_path_not_taken_for_uri(void **state)
{
	(void)state;
	assert_false(keyref_is_uri("/etc/mtlsd/key.pem"));
	assert_false(keyref_is_uri("keys/server:1.pem"));  /* '/' before the colon */
	assert_false(keyref_is_uri("c:key.pem"));          /* one-letter scheme */
	assert_false(keyref_is_uri("key.pem"));
	assert_false(keyref_is_uri(":x"));
}

static void test_keyref_redact_hides_pin(void **state)
{
	char buf[256];
	(void)state;
	assert_string_equal(keyref_redact("pkcs11:token=t;pin-value=1234;object=k", buf, sizeof(buf)),
			    "pkcs11:token=t;pin-value=***;object=k");
	assert_string_equal(keyref_redact("pkcs11:token=t?pin-value=99", buf, sizeof(buf)),
			    "pkcs11:token=t?pin-value=***");
}

/* Every occurrence, in any case, in the path or the query part: a second
 * pin-value (libp11 takes the last) or "PIN-VALUE" must not slip out. */
static void test_keyref_redact_hides_every_pin(void **state)
{
	char buf[256];
	(void)state;
	assert_string_equal(keyref_redact("pkcs11:pin-value=11;token=t;PIN-Value=22?pin-value=33&x=1",
					  buf, sizeof(buf)),
			    "pkcs11:pin-value=***;token=t;PIN-Value=***?pin-value=***&x=1");
	/* Cut short, it still never shows a PIN digit. */
	assert_string_equal(keyref_redact("pkcs11:token=t;pin-value=98765", buf, 20),
			    "pkcs11:token=t;pin-");
	assert_string_equal(keyref_redact_engine_ctrl("PIN:4711", buf, sizeof(buf)), "PIN:***");
	assert_string_equal(keyref_redact_engine_ctrl("pin=4711", buf, sizeof(buf)), "pin***");
	assert_string_equal(keyref_redact_engine_ctrl("MODULE_PATH:/usr/lib/m.so", buf, sizeof(buf)),
			    "MODULE_PATH:/usr/lib/m.so");
}

static void test_keyref_redact_keeps_uri_without_pin(void **state)
{
	char buf[256];
	(void)state;
	assert_string_equal(keyref_redact("pkcs11:token=t;object=k", buf, sizeof(buf)),
			    "pkcs11:token=t;object=k");
}

static void test_keyref_pin_file_read(void **state)
{
	char pin[KEYREF_MAX_PIN];
	(void)state;
	struct keyref_opts o = { .pin_file = scratch_file("pin", "4711\n", 0600) };
	assert_int_equal(keyref_read_pin(&o, pin, sizeof(pin), err, sizeof(err)), 0);
	assert_string_equal(pin, "4711");
}

static void test_keyref_pin_file_readable_by_others_refused(void **state)
{
	char pin[KEYREF_MAX_PIN];
	(void)state;
	struct keyref_opts o = { .pin_file = scratch_file("pin-open", "4711\n", 0644) };
	assert_int_equal(keyref_read_pin(&o, pin, sizeof(pin), err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "chmod 600"));
	assert_string_equal(pin, "");
}

/* The private-key owner rule holds for PIN files too: another user's file
 * is refused (it can be rewritten whatever its mode), naming the chown;
 * the service user's is accepted (it is read again on reload). Root only. */
static void test_keyref_pin_file_owned_by_other_user_refused(void **state)
{
	char pin[KEYREF_MAX_PIN];
	(void)state;
	SKIP_UNLESS_ROOT("only root can chown a PIN file to another user");
	struct keyref_opts o = { .pin_file = scratch_file("pin-foreign", "4711\n", 0600) };
	assert_int_equal(chown(o.pin_file, 4321, 4321), 0);
	assert_int_equal(keyref_read_pin(&o, pin, sizeof(pin), err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "PIN file is owned by uid 4321"));
	assert_non_null(strstr(err, "chown 0 "));
	assert_string_equal(pin, "");
}

static void test_keyref_pin_file_owned_by_service_user_accepted(void **state)
{
	char pin[KEYREF_MAX_PIN];
	(void)state;
	SKIP_UNLESS_ROOT("only root can chown a PIN file to another user");
	struct keyref_opts o = { .pin_file = scratch_file("pin-service", "4711\n", 0600),
				 .owner = "4321" };
	assert_int_equal(chown(o.pin_file, 4321, 4321), 0);
	assert_int_equal(keyref_read_pin(&o, pin, sizeof(pin), err, sizeof(err)), 0);
	assert_string_equal(pin, "4711");
}

static void test_keyref_pin_env_read(void **state)
{
	char pin[KEYREF_MAX_PIN];
	(void)state;
	setenv("TEST_KEYREF_PIN", "8080", 1);
	struct keyref_opts o = { .pin_env = "TEST_KEYREF_PIN" };
	assert_int_equal(keyref_read_pin(&o, pin, sizeof(pin), err, sizeof(err)), 0);
	assert_string_equal(pin, "8080");
}

static void test_keyref_pin_env_unset_refused(void **state)
{
	char pin[KEYREF_MAX_PIN];
	(void)state;
	unsetenv("TEST_KEYREF_NO_PIN");
	struct keyref_opts o = { .pin_env = "TEST_KEYREF_NO_PIN" };
	assert_int_equal(keyref_read_pin(&o, pin, sizeof(pin), err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "TEST_KEYREF_NO_PIN"));
}

static void test_keyref_file_path_loads(void **state)
{
	EVP_PKEY *key = NULL;
	(void)state;
	struct keyref_opts o = { 0 };
	assert_int_equal(keyref_load(fixture_key_copy(0600), &o, &key, err, sizeof(err)), 0);
	assert_non_null(key);
	EVP_PKEY_free(key);
}

static void test_keyref_file_path_open_mode_refused(void **state)
{
	EVP_PKEY *key = NULL;
	(void)state;
	struct keyref_opts o = { 0 };
	assert_int_equal(keyref_load(fixture_key_copy(0644), &o, &key, err, sizeof(err)), -EPERM);
	assert_null(key);
}

/* Run as root (CI) the key file is chowned to another uid: refused unless
 * that uid is the configured service user. */
static void test_keyref_key_owned_by_service_user_accepted(void **state)
{
	(void)state;
	SKIP_UNLESS_ROOT("only root can chown a key file to another user");
	const char *p = fixture_key_copy(0600);
	assert_int_equal(chown(p, 4242, (gid_t)-1), 0);
	assert_int_equal(keyfile_check_perms_owned(p, false, 4242, err, sizeof(err)), 0);
	struct keyref_opts o = { .owner = "4242" };
	EVP_PKEY *key = NULL;
	assert_int_equal(keyref_load(p, &o, &key, err, sizeof(err)), 0);
	EVP_PKEY_free(key);
}

static void test_keyref_key_owned_by_other_user_refused(void **state)
{
	(void)state;
	SKIP_UNLESS_ROOT("only root can chown a key file to another user");
	const char *p = fixture_key_copy(0600);
	assert_int_equal(chown(p, 4243, (gid_t)-1), 0);
	assert_int_equal(keyfile_check_perms_owned(p, false, 4242, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "chown 4242"));
	assert_int_equal(keyfile_check_perms(p, false, err, sizeof(err)), -EPERM);
}

static void test_keyref_uri_without_engine_refused(void **state)
{
	EVP_PKEY *key = NULL;
	(void)state;
	struct keyref_opts o = { .pin_file = scratch_file("pin2", "1\n", 0600) };
	assert_int_equal(keyref_load("pkcs11:token=none;object=none", &o, &key, err, sizeof(err)), -ENOENT);
	assert_null(key);
	assert_non_null(strstr(err, "no engine = configured"));
}

/* key = keeps a URI as written; a relative file is made absolute. */
static void test_keyref_config_keeps_uri(void **state)
{
	struct mtlsd_config cfg;
	(void)state;
	config_init(&cfg);
	const char *p = scratch_file("uri.conf", "[server_cert.ec]\ncert = c.pem\n"
				     "key = pkcs11:token=mtlsd;object=server-key\n", 0600);
	assert_int_equal(config_load_file(&cfg, p, err, sizeof(err)), 0);
	assert_string_equal(cfg.certs[0].key_path, "pkcs11:token=mtlsd;object=server-key");
	config_free(&cfg);
}

static void test_keyref_config_resolves_relative_key_file(void **state)
{
	struct mtlsd_config cfg;
	char want[600];
	(void)state;
	config_init(&cfg);
	const char *p = scratch_file("file.conf", "[server_cert.ec]\ncert = c.pem\nkey = keys/k.pem\n", 0600);
	assert_int_equal(config_load_file(&cfg, p, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/keys/k.pem", scratch);
	assert_string_equal(cfg.certs[0].key_path, want);
	config_free(&cfg);
}

static void test_crypto_accel_unknown_provider_refused(void **state)
{
	struct mtlsd_config cfg;
	(void)state;
	config_init(&cfg);
	assert_int_equal(config_apply_flag(&cfg, "provider", "nosuchprovider", err, sizeof(err)), 0);
	assert_int_equal(crypto_accel_apply(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "provider = nosuchprovider"));
	crypto_accel_shutdown();
	config_free(&cfg);
}

static void test_crypto_accel_default_provider_loads(void **state)
{
	struct mtlsd_config cfg;
	char buf[256];
	(void)state;
	config_init(&cfg);
	assert_int_equal(config_apply_flag(&cfg, "provider", "default", err, sizeof(err)), 0);
	assert_int_equal(crypto_accel_apply(&cfg, err, sizeof(err)), 0);
	assert_non_null(strstr(crypto_accel_providers_str(buf, sizeof(buf)), "default"));
	assert_string_equal(crypto_accel_engine_str(buf, sizeof(buf)), "none");
	crypto_accel_shutdown();
	config_free(&cfg);
}

static void test_crypto_accel_engine_ctrl_without_engine_refused(void **state)
{
	struct mtlsd_config cfg;
	(void)state;
	config_init(&cfg);
	assert_int_equal(config_apply_flag(&cfg, "engine-ctrl", "MODULE_PATH:/x.so", err, sizeof(err)), 0);
	assert_int_equal(crypto_accel_apply(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "without engine"));
	crypto_accel_shutdown();
	config_free(&cfg);
}

static void test_crypto_accel_unknown_engine_refused(void **state)
{
	struct mtlsd_config cfg;
	(void)state;
	config_init(&cfg);
	assert_int_equal(config_apply_flag(&cfg, "engine", "nosuchengine", err, sizeof(err)), 0);
	assert_int_equal(crypto_accel_apply(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "engine = nosuchengine"));
	crypto_accel_shutdown();
	config_free(&cfg);
}

/* The OPENSSL_ia32cap override OpenSSL honours is honoured in the report. */
static void test_crypto_cpu_override_clears_aesni(void **state)
{
	struct crypto_cpu c;
	char buf[256];
	(void)state;
	setenv("OPENSSL_ia32cap", "~0x200000000000000", 1); /* bit 57: AES-NI */
	crypto_accel_cpu(&c);
	unsetenv("OPENSSL_ia32cap");
	if (!c.known)
		skip_because("not x86-64: OPENSSL_ia32cap and AES-NI are x86 things");
	assert_false(c.aesni);
	assert_null(strstr(crypto_cpu_str(&c, buf, sizeof(buf)), "AES-NI"));
}

static void test_crypto_cpu_matches_cpuinfo_aes(void **state)
{
	struct crypto_cpu c;
	char line[4096];
	bool aes = false, flags = false;
	(void)state;
	crypto_accel_cpu(&c);
	if (!c.known)
		skip_because("not x86-64: no AES-NI to compare");
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		skip_because("no /proc/cpuinfo");
	while (!flags && fgets(line, sizeof(line), f))
		if (strncmp(line, "flags", 5) == 0) {
			flags = true;
			aes = strstr(line, " aes ") != NULL;
		}
	fclose(f);
	if (!flags)
		skip_because("/proc/cpuinfo has no flags line");
	assert_int_equal(c.aesni, aes);
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
	snprintf(cmd, sizeof(cmd), "rm -rf %s", scratch);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keyref_uri_recognised),
		cmocka_unit_test(test_keyref_path_not_taken_for_uri),
		cmocka_unit_test(test_keyref_redact_hides_pin),
		cmocka_unit_test(test_keyref_redact_hides_every_pin),
		cmocka_unit_test(test_keyref_redact_keeps_uri_without_pin),
		cmocka_unit_test(test_keyref_pin_file_read),
		cmocka_unit_test(test_keyref_pin_file_readable_by_others_refused),
		cmocka_unit_test(test_keyref_pin_file_owned_by_other_user_refused),
		cmocka_unit_test(test_keyref_pin_file_owned_by_service_user_accepted),
		cmocka_unit_test(test_keyref_pin_env_read),
		cmocka_unit_test(test_keyref_pin_env_unset_refused),
		cmocka_unit_test(test_keyref_file_path_loads),
		cmocka_unit_test(test_keyref_file_path_open_mode_refused),
		cmocka_unit_test(test_keyref_key_owned_by_service_user_accepted),
		cmocka_unit_test(test_keyref_key_owned_by_other_user_refused),
		cmocka_unit_test(test_keyref_uri_without_engine_refused),
		cmocka_unit_test(test_keyref_config_keeps_uri),
		cmocka_unit_test(test_keyref_config_resolves_relative_key_file),
		cmocka_unit_test(test_crypto_accel_unknown_provider_refused),
		cmocka_unit_test(test_crypto_accel_default_provider_loads),
		cmocka_unit_test(test_crypto_accel_engine_ctrl_without_engine_refused),
		cmocka_unit_test(test_crypto_accel_unknown_engine_refused),
		cmocka_unit_test(test_crypto_cpu_override_clears_aesni),
		cmocka_unit_test(test_crypto_cpu_matches_cpuinfo_aes),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
