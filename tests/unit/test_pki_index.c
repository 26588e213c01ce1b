/*
 * test_pki_index.c: the CA record file (ctl/pki_index.c): round trips,
 * and every kind of damage detected with its line number.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pki_index.h"

static const char good_text[] =
	"mtlsctl-index 1\n"
	"crl_number 4\n"
	"V\t20270225120000Z\t-\t-\t4F:A2:09\tCN=app1,O=partner\n"
	"R\t20270225120000Z\t20261127063000Z\tkeyCompromise\t51:09\tCN=app2,O=partner\n"
	"end 2\n";

static int parse(const char *text, struct pki_index *idx, char *err, size_t errlen)
{
	return pki_index_parse(text, strlen(text), idx, err, errlen);
}

static void test_pki_index_parse_good(void **state)
{
	struct pki_index idx;
	char err[256] = "";
	assert_int_equal(parse(good_text, &idx, err, sizeof(err)), 0);
	assert_int_equal(idx.crl_number, 4);
	assert_int_equal(idx.n, 2);
	assert_int_equal(idx.rec[0].state, PKI_CERT_VALID);
	assert_int_equal(idx.rec[0].reason, -1);
	assert_string_equal(idx.rec[0].subject, "CN=app1,O=partner");
	assert_int_equal(idx.rec[1].state, PKI_CERT_REVOKED);
	assert_int_equal(idx.rec[1].reason, CRL_REASON_KEY_COMPROMISE);
	assert_int_equal(idx.rec[1].revoked_at, 1795761000); /* 2026-11-27T06:30:00Z */
	pki_index_free(&idx);
}

static void test_pki_index_round_trip(void **state)
{
	struct pki_index idx;
	char err[256] = "", *text = NULL;
	size_t len = 0;
	assert_int_equal(parse(good_text, &idx, err, sizeof(err)), 0);
	assert_int_equal(pki_index_serialize(&idx, &text, &len), 0);
	assert_string_equal(text, good_text);
	assert_int_equal(len, strlen(good_text));
	free(text);
	pki_index_free(&idx);
}

static void test_pki_index_add_then_round_trip(void **state)
{
	struct pki_index idx = { 0 }, back;
	struct pki_serial s;
	char err[256] = "", *text = NULL;
	size_t len = 0;
	assert_int_equal(pki_serial_random(&s), 0);
	assert_int_equal(pki_index_add(&idx, &s, 1800000000, "CN=tab\there,O=x"), 0);
	/* The same serial twice is refused: serials are unique per CA. */
	assert_int_equal(pki_index_add(&idx, &s, 1800000000, "CN=again"), -EEXIST);
	assert_int_equal(pki_index_serialize(&idx, &text, &len), 0);
	assert_int_equal(pki_index_parse(text, len, &back, err, sizeof(err)), 0);
	assert_int_equal(back.n, 1);
	assert_string_equal(back.rec[0].subject, "CN=tab?here,O=x");
	assert_non_null(pki_index_find(&back, &s));
	free(text);
	pki_index_free(&idx);
	pki_index_free(&back);
}

static void test_pki_index_empty_round_trip(void **state)
{
	struct pki_index idx = { 0 }, back;
	char err[256] = "", *text = NULL;
	size_t len = 0;
	assert_int_equal(pki_index_serialize(&idx, &text, &len), 0);
	assert_string_equal(text, "mtlsctl-index 1\ncrl_number 0\nend 0\n");
	assert_int_equal(pki_index_parse(text, len, &back, err, sizeof(err)), 0);
	assert_int_equal(back.n, 0);
	free(text);
	pki_index_free(&back);
}

/* Each damaged variant fails with -EBADMSG and names the right line. */
static void expect_damage(const char *text, const char *where)
{
	struct pki_index idx;
	char err[256] = "";
	assert_int_equal(parse(text, &idx, err, sizeof(err)), -EBADMSG);
	if (!strstr(err, where))
		fail_msg("error '%s' does not mention '%s'", err, where);
	pki_index_free(&idx);
}

static void test_pki_index_rejects_damage(void **state)
{
	expect_damage("", "line 1");
	expect_damage("garbage\n", "line 1: not an mtlsctl index");
	expect_damage("mtlsctl-index 1\ncrl_number x\nend 0\n", "line 2");
	expect_damage("mtlsctl-index 1\ncrl_number -1\nend 0\n", "line 2");
	expect_damage("mtlsctl-index 1\ncrl_number +1\nend 0\n", "line 2");
	expect_damage("mtlsctl-index 1\ncrl_number 01\nend 0\n", "line 2");
	expect_damage("mtlsctl-index 1\ncrl_number 99999999999999999999\nend 0\n", "line 2");
	expect_damage("mtlsctl-index 1\ncrl_number 1\nend  0\n", "line 3: record count");
	expect_damage("mtlsctl-index 1\ncrl_number 0\n", "line 3: file ends without");
	expect_damage("mtlsctl-index 1\ncrl_number 0\nend 1\n", "line 3: record count");
	expect_damage("mtlsctl-index 1\ncrl_number 0\nend 0\nV\n", "line 4: text after");
	expect_damage("mtlsctl-index 1\ncrl_number 0\nend 0", "line 3: file ends without");
	expect_damage("mtlsctl-index 1\ncrl_number 0\n"
		      "X\t20270225120000Z\t-\t-\t4F\tCN=a\nend 1\n", "line 3: state");
	expect_damage("mtlsctl-index 1\ncrl_number 0\n"
		      "V\t2027022512Z\t-\t-\t4F\tCN=a\nend 1\n", "line 3: expiry");
	expect_damage("mtlsctl-index 1\ncrl_number 0\n"
		      "V\t20270225120000Z\t-\t-\tnothex\tCN=a\nend 1\n", "line 3: serial");
	expect_damage("mtlsctl-index 1\ncrl_number 0\n"
		      "V\t-0270225120000Z\t-\t-\t4F\tCN=a\nend 1\n", "line 3: expiry");
	expect_damage("mtlsctl-index 1\ncrl_number 0\n"
		      "V\t00270225120000Z\t-\t-\t4F\tCN=a\nend 1\n", "line 3: expiry");
	expect_damage("mtlsctl-index 1\ncrl_number 0\n"
		      "V\t20270231120000Z\t-\t-\t4F\tCN=a\nend 1\n", "line 3: expiry");
	expect_damage("mtlsctl-index 1\ncrl_number 0\n"
		      "V\t2027022512000 Z\t-\t-\t4F\tCN=a\nend 1\n", "line 3: expiry");
	expect_damage("mtlsctl-index 1\ncrl_number 0\n"
		      "V\t20270225120000Z\t-\tkeyCompromise\t4F\tCN=a\nend 1\n", "line 3: a valid");
	expect_damage("mtlsctl-index 1\ncrl_number 0\n"
		      "R\t20270225120000Z\t20261127063000Z\tbogus\t4F\tCN=a\nend 1\n",
		      "line 3: unknown revocation reason");
	expect_damage("mtlsctl-index 1\ncrl_number 0\n"
		      "V\t20270225120000Z\t-\t-\t4F\nend 1\n", "line 3: expected 6");
	expect_damage("mtlsctl-index 1\ncrl_number 0\n"
		      "V\t20270225120000Z\t-\t-\t4F\tCN=a\n"
		      "V\t20270225120000Z\t-\t-\t00:4F\tCN=b\nend 2\n", "line 4: serial listed twice");
}

/*
 * Every single-byte corruption of a good file is either still a valid
 * record (then it must survive a round trip unchanged) or refused with
 * -EBADMSG: never a crash, never another error.
 */
static void test_pki_index_single_byte_damage(void **state)
{
	static const char bytes[] = { '\0', '\t', '\n', ' ', '-', ':', '0', '9', 'A', 'Z', 'R', 'V',
				      'g', (char)0xff };
	size_t len = strlen(good_text), accepted = 0, refused = 0;
	char *text = malloc(len + 1);
	for (size_t pos = 0; pos < len; pos++) {
		for (size_t b = 0; b < sizeof(bytes); b++) {
			struct pki_index idx;
			char err[256] = "";
			memcpy(text, good_text, len + 1);
			text[pos] = bytes[b];
			int rc = pki_index_parse(text, len, &idx, err, sizeof(err));
			if (rc == 0) {
				char *again = NULL;
				size_t again_len = 0;
				struct pki_index back;
				assert_int_equal(pki_index_serialize(&idx, &again, &again_len), 0);
				if (pki_index_parse(again, again_len, &back, err, sizeof(err)) != 0)
					fail_msg("byte %zu = 0x%02x: parsed, but its rewrite does not: %s\n%s",
						 pos, (unsigned char)bytes[b], err, again);
				assert_int_equal(back.n, idx.n);
				free(again);
				pki_index_free(&back);
				accepted++;
			} else {
				assert_int_equal(rc, -EBADMSG);
				assert_non_null(strstr(err, "line "));
				refused++;
			}
			pki_index_free(&idx);
		}
	}
	free(text);
	/* Both outcomes happen (e.g. a subject letter vs. a tab in a date). */
	assert_true(accepted > 0 && refused > 0);
}

static void test_pki_index_reasons(void **state)
{
	assert_int_equal(pki_reason_from_name("keyCompromise"), CRL_REASON_KEY_COMPROMISE);
	assert_int_equal(pki_reason_from_name("superseded"), CRL_REASON_SUPERSEDED);
	assert_string_equal(pki_reason_name(CRL_REASON_CESSATION_OF_OPERATION), "cessationOfOperation");
	/* Revocation is final here: no hold, no removeFromCRL. */
	assert_int_equal(pki_reason_from_name("certificateHold"), -ENOENT);
	assert_int_equal(pki_reason_from_name("removeFromCRL"), -ENOENT);
	assert_int_equal(pki_reason_from_name("KeyCompromise"), -ENOENT);
}

static void test_pki_index_save_load(void **state)
{
	char dir[] = "/tmp/test_pki_index.XXXXXX", path[128], err[256] = "";
	struct pki_index idx, back;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/index.txt", dir);
	assert_int_equal(parse(good_text, &idx, err, sizeof(err)), 0);
	assert_int_equal(pki_index_save(path, &idx), 0);
	assert_int_equal(pki_index_load(path, &back, err, sizeof(err)), 0);
	assert_int_equal(back.n, 2);
	assert_int_equal(back.crl_number, 4);
	pki_index_free(&back);
	/* A missing file is an error, not an empty record. */
	unlink(path);
	assert_int_equal(pki_index_load(path, &back, err, sizeof(err)), -ENOENT);
	pki_index_free(&back);
	pki_index_free(&idx);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pki_index_parse_good),
		cmocka_unit_test(test_pki_index_round_trip),
		cmocka_unit_test(test_pki_index_add_then_round_trip),
		cmocka_unit_test(test_pki_index_empty_round_trip),
		cmocka_unit_test(test_pki_index_rejects_damage),
		cmocka_unit_test(test_pki_index_single_byte_damage),
		cmocka_unit_test(test_pki_index_reasons),
		cmocka_unit_test(test_pki_index_save_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
