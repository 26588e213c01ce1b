/*
 * test_string_table.c: every enum name table made with lib/string_table.h
 * outside the engine names every value of its enum, once.
 *
 * One test per table: each value 0..MAX round-trips (X_from_name(X_name(v))
 * == v, which fails for a value left unnamed, since it gets the fallback,
 * and for two values sharing a name), and a value past the end gets the
 * fallback instead of reading outside the table. Adding an enumerator
 * without its name fails here. (The engine's tables are tested in
 * test_conn; lib/host_probe.c's in test_host_probe.)
 */
#include <errno.h>
#include <linux/capability.h>
#include <openssl/x509v3.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "audit.h"
#include "cert_check.h"
#include "config.h"
#include "config_internal.h"
#include "doctor.h"
#include "log.h"
#include "outcome.h"
#include "pki_index.h"
#include "session_binding.h"
#include "stats_render.h"
#include "stats_source.h"
#include "string_table.h"

static void check_past_end(const char *table, int hi, const char *got, const char *fallback)
{
	if (fallback ? !got || strcmp(got, fallback) != 0 : got != NULL)
		fail_msg("%s value %d past the end is '%s', not the fallback", table, hi,
			 got ? got : "(null)");
}

/* Values lo..hi-1 of the enum named by prefix round-trip; hi names none. */
#define ASSERT_TABLE(prefix, type, lo, hi, fallback)                                     \
	do {                                                                             \
		for (int v_ = (lo); v_ < (int)(hi); v_++) {                              \
			const char *n_ = prefix##_name((type)v_);                        \
			if (!n_ || !n_[0] || prefix##_from_name(n_) != v_)               \
				fail_msg(#prefix " value %d has no name of its own (got '%s')", \
					 v_, n_ ? n_ : "(null)");                        \
		}                                                                        \
		check_past_end(#prefix, (int)(hi), prefix##_name((type)(hi)), fallback); \
		assert_int_equal(prefix##_from_name("no such name"), -ENOENT);           \
		assert_int_equal(prefix##_from_name(NULL), -ENOENT);                     \
	} while (0)

/* ---- lib/ ---------------------------------------------------------------- */

static void test_string_table_hs_outcome(void **state)
{
	(void)state;
	ASSERT_TABLE(hs_outcome, enum hs_outcome, 0, HS_OUTCOME_MAX, "other");
}

static void test_string_table_log_level(void **state)
{
	(void)state;
	ASSERT_TABLE(log_level, enum log_level, 0, LOG_LVL_MAX, "?");
	assert_true(string_table_complete(log_level_names, LOG_LVL_MAX));
}

static void test_string_table_config_keywords(void **state)
{
	(void)state;
	ASSERT_TABLE(crl_policy, enum crl_policy, 0, CRL_POLICY_MAX, "?");
	ASSERT_TABLE(multiple_identities, enum multiple_identities, 0, MULTIPLE_IDENTITIES_MAX, "?");
	ASSERT_TABLE(ktls_mode, enum ktls_mode, 0, KTLS_MODE_MAX, "?");
	ASSERT_TABLE(session_cache_mode, enum session_cache_mode, 0, SESSION_CACHE_MAX, "?");
	assert_true(string_table_complete(crl_policy_names, CRL_POLICY_MAX));
	assert_true(string_table_complete(multiple_identities_names, MULTIPLE_IDENTITIES_MAX));
	assert_true(string_table_complete(ktls_mode_names, KTLS_MODE_MAX));
	assert_true(string_table_complete(session_cache_mode_names, SESSION_CACHE_MAX));
}

/* Every capability these kernel headers know, by its capabilities(7) name. */
static void test_string_table_capability(void **state)
{
	(void)state;
	ASSERT_TABLE(config_capability, unsigned, 0, CAP_LAST_CAP + 1, NULL);
	assert_string_equal(config_capability_name(CAP_NET_BIND_SERVICE), "net_bind_service");
}

/* SEC_NONE is "outside any section": it has no form to print. */
static void test_string_table_section_form(void **state)
{
	(void)state;
	ASSERT_TABLE(config_section_form, enum section_kind, SEC_MTLSD, SEC_MAX, "[?]");
	assert_string_equal(config_section_form_name(SEC_NONE), "[?]");
}

/* ---- ctl/ ----------------------------------------------------------------- */

static void test_string_table_check_result(void **state)
{
	(void)state;
	ASSERT_TABLE(check_result, enum check_result, 0, CHECK_RESULT_MAX, "????");
}

static void test_string_table_stats(void **state)
{
	(void)state;
	ASSERT_TABLE(stats_source, enum stats_source_kind, 0, STATS_SRC_MAX, "?");
	ASSERT_TABLE(stats_sort, enum stats_sort, 0, STATS_SORT_MAX, "?");
}

static void test_string_table_doctor_status(void **state)
{
	(void)state;
	ASSERT_TABLE(doctor_status, enum doctor_status, 0, DOCTOR_STATUS_MAX, "?");
}

/* The RFC 5280 codes a revocation may give: all but certificateHold and
 * removeFromCRL, which are not final. */
static void test_string_table_pki_reason(void **state)
{
	static const int codes[] = {
		CRL_REASON_UNSPECIFIED, CRL_REASON_KEY_COMPROMISE, CRL_REASON_CA_COMPROMISE,
		CRL_REASON_AFFILIATION_CHANGED, CRL_REASON_SUPERSEDED,
		CRL_REASON_CESSATION_OF_OPERATION, CRL_REASON_PRIVILEGE_WITHDRAWN,
		CRL_REASON_AA_COMPROMISE,
	};
	(void)state;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		assert_int_equal(pki_reason_from_name(pki_reason_name(codes[i])), codes[i]);
	assert_string_equal(pki_reason_name(CRL_REASON_CERTIFICATE_HOLD), "unknown");
	assert_string_equal(pki_reason_name(CRL_REASON_REMOVE_FROM_CRL), "unknown");
	assert_string_equal(pki_reason_name(CRL_REASON_NONE), "unknown");
	assert_string_equal(pki_reason_name(CRL_REASON_AA_COMPROMISE + 1), "unknown");
	/* pki_reason_list() (usage text) names exactly these. */
	char list[256] = "";
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? "|" : "",
			 pki_reason_name(codes[i]));
	assert_string_equal(pki_reason_list(), list);
}

/* ---- dataplane/ ------------------------------------------------------------ */

static void test_string_table_audit_refusal(void **state)
{
	(void)state;
	ASSERT_TABLE(audit_refusal, enum audit_refusal, 0, AUDIT_REFUSAL_MAX, "refusal");
}

/* Descriptions, not names: each verdict has its own, none the fallback. */
static void test_string_table_session_verdict(void **state)
{
	(void)state;
	for (int v = 0; v < SESSION_VERDICT_MAX; v++) {
		const char *t = session_verdict_text((enum session_verdict)v);
		assert_string_not_equal(t, "unknown");
		for (int w = 0; w < v; w++)
			assert_string_not_equal(t, session_verdict_text((enum session_verdict)w));
	}
	assert_string_equal(session_verdict_text(SESSION_VERDICT_MAX), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_string_table_hs_outcome),
		cmocka_unit_test(test_string_table_log_level),
		cmocka_unit_test(test_string_table_config_keywords),
		cmocka_unit_test(test_string_table_capability),
		cmocka_unit_test(test_string_table_section_form),
		cmocka_unit_test(test_string_table_check_result),
		cmocka_unit_test(test_string_table_stats),
		cmocka_unit_test(test_string_table_doctor_status),
		cmocka_unit_test(test_string_table_pki_reason),
		cmocka_unit_test(test_string_table_audit_refusal),
		cmocka_unit_test(test_string_table_session_verdict),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
