/*
 * test_doctor_accel.c: mtlsctl doctor's crypto acceleration lines
 * (doctor_check_accel, and doctor_check_cpu's view of what OpenSSL uses),
 * driven with made-up facts like test_doctor.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "doctor.h"

static const struct doctor_result *only(const struct doctor_report *rep, const char *name)
{
	for (size_t i = 0; i < rep->n; i++)
		if (strcmp(rep->r[i].name, name) == 0)
			return &rep->r[i];
	fail_msg("no result named %s", name);
	return NULL;
}

static void test_doctor_accel_providers_and_engine_listed(void **state)
{
	struct doctor_facts f = { 0 };
	struct doctor_report rep = { 0 };
	(void)state;
	strcpy(f.providers, "default, pkcs11");
	strcpy(f.engine, "pkcs11 (pkcs11 engine)");
	doctor_check_accel(&f, &rep);
	const struct doctor_result *r = only(&rep, "crypto-providers");
	assert_int_equal(r->status, DOCTOR_PASS);
	assert_non_null(strstr(r->detail, "default, pkcs11"));
	assert_non_null(strstr(r->detail, "engine: pkcs11"));
}

static void test_doctor_accel_bad_config_fails(void **state)
{
	struct doctor_facts f = { 0 };
	struct doctor_report rep = { 0 };
	(void)state;
	f.accel_rc = -EINVAL;
	strcpy(f.accel_err, "engine = nope: no such engine");
	doctor_check_accel(&f, &rep);
	const struct doctor_result *r = only(&rep, "crypto-providers");
	assert_int_equal(r->status, DOCTOR_FAIL);
	assert_non_null(strstr(r->detail, "engine = nope"));
	assert_non_null(strstr(r->remedy, "docs/hardware.md"));
}

static void cpu_with_aes(struct doctor_facts *f)
{
	f->cpu_known = f->cpu_aes = f->cpu_pclmul = f->cpu_avx512 = true;
	f->ossl_cpu.known = true;
	f->ossl_cpu.pclmulqdq = f->ossl_cpu.avx512f = true;
}

static void test_doctor_accel_cpu_reports_what_openssl_uses(void **state)
{
	struct doctor_facts f = { 0 };
	struct doctor_report rep = { 0 };
	(void)state;
	cpu_with_aes(&f);
	f.ossl_cpu.aesni = true;
	doctor_check_cpu(&f, &rep);
	const struct doctor_result *r = only(&rep, "cpu-crypto");
	assert_int_equal(r->status, DOCTOR_PASS);
	assert_non_null(strstr(r->detail, "OpenSSL uses: AES-NI PCLMULQDQ"));
	assert_non_null(strstr(r->detail, "AVX-512"));
}

static void test_doctor_accel_cpu_aesni_masked_warns(void **state)
{
	struct doctor_facts f = { 0 };
	struct doctor_report rep = { 0 };
	(void)state;
	cpu_with_aes(&f); /* the CPU has AES-NI, OpenSSL's vector does not */
	doctor_check_cpu(&f, &rep);
	const struct doctor_result *r = only(&rep, "cpu-crypto");
	assert_int_equal(r->status, DOCTOR_WARN);
	assert_non_null(strstr(r->remedy, "OPENSSL_ia32cap"));
}

static void test_doctor_accel_token_key_loaded_passes(void **state)
{
	struct doctor_facts f = { 0 };
	struct doctor_report rep = { 0 };
	(void)state;
	f.n_token_keys = 1;
	strcpy(f.token_keys[0].ref, "pkcs11:token=t;object=k");
	doctor_check_token_keys(&f, &rep);
	const struct doctor_result *r = only(&rep, "token-key 1");
	assert_int_equal(r->status, DOCTOR_PASS);
	assert_non_null(strstr(r->detail, "pkcs11:token=t;object=k"));
}

static void test_doctor_accel_token_key_missing_fails(void **state)
{
	struct doctor_facts f = { 0 };
	struct doctor_report rep = { 0 };
	(void)state;
	f.n_token_keys = 1;
	strcpy(f.token_keys[0].ref, "pkcs11:token=t;object=k");
	f.token_keys[0].rc = -ENOENT;
	strcpy(f.token_keys[0].err, "the engine found no private key there");
	doctor_check_token_keys(&f, &rep);
	const struct doctor_result *r = only(&rep, "token-key 1");
	assert_int_equal(r->status, DOCTOR_FAIL);
	assert_non_null(strstr(r->detail, "found no private key"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doctor_accel_providers_and_engine_listed),
		cmocka_unit_test(test_doctor_accel_bad_config_fails),
		cmocka_unit_test(test_doctor_accel_cpu_reports_what_openssl_uses),
		cmocka_unit_test(test_doctor_accel_cpu_aesni_masked_warns),
		cmocka_unit_test(test_doctor_accel_token_key_loaded_passes),
		cmocka_unit_test(test_doctor_accel_token_key_missing_fails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
