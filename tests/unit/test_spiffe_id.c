/*
 * test_spiffe_id.c: the one SPIFFE ID validator (lib/spiffe_id.c): every
 * rule of the SPIFFE ID specification as a refused row with the phrase an
 * operator reads, the accepted twins, patterns, and typo detection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "guard.h"
#include "spiffe_id.h"

struct row {
	const char *id;
	unsigned flags;
	const char *why; /* NULL: valid */
};

static void run(const struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *got = spiffe_id_problem(rows[i].id, rows[i].flags);

		if (!rows[i].why && got)
			fail_msg("'%s' refused: %s", rows[i].id, got);
		if (rows[i].why && (!got || !strstr(got, rows[i].why)))
			fail_msg("'%s': got '%s', expected a reason with '%s'", rows[i].id,
				 got ? got : "(valid)", rows[i].why);
	}
}

static void test_spiffe_id_rules(void **state)
{
	static const struct row rows[] = {
		{ "spiffe://globex.example/prod/app1", 0, NULL },
		{ "spiffe://globex.example/A-b_c.9", 0, NULL },
		{ "spiffe://td", 0, NULL },                         /* the trust domain's own ID */
		{ "spiffe://td", SPIFFE_ID_NEED_PATH, "needs a path" },
		{ "spifee://globex.example/app", 0, "scheme is not 'spiffe'" },
		{ "SPIFFE://globex.example/app", 0, "lower case" },
		{ "spiffe:globex.example/app", 0, "two slashes" },
		{ "spiffe://Globex.Example/app", 0, "trust domain must be lower case" },
		{ "spiffe:///app", 0, "trust domain is empty" },
		{ "spiffe://globex.example:8443/app", 0, "no port" },
		{ "spiffe://user@globex.example/app", 0, "no user info" },
		{ "spiffe://glo+bex/app", 0, "a-z 0-9" },
		{ "spiffe://globex.example/app/", 0, "no trailing '/'" },
		{ "spiffe://globex.example/", 0, "no trailing '/'" },
		{ "spiffe://globex.example//app", 0, "empty path segment" },
		{ "spiffe://globex.example/./app", 0, "'.' and '..'" },
		{ "spiffe://globex.example/a/..", 0, "'.' and '..'" },
		{ "spiffe://globex.example/a%2Fb", 0, "percent-encoding" },
		{ "spiffe://globex.example/a b", 0, "A-Z a-z 0-9" },
		{ "spiffe://globex.example/app?x=1", 0, "query" },
		{ "spiffe://globex.example/app#f", 0, "fragment" },
		{ "spiffe://globex.example/prod/*", 0, "only allowed in an allow_uri pattern" },
	};

	(void)state;
	run(rows, ARRAY_SIZE(rows));
}

static void test_spiffe_id_patterns(void **state)
{
	static const struct row rows[] = {
		{ "spiffe://td/prod/*", SPIFFE_ID_PATTERN, NULL },
		{ "spiffe://td/prod/app*", SPIFFE_ID_PATTERN, NULL },
		{ "spiffe://td/*/app1", SPIFFE_ID_PATTERN, NULL },
		{ "spiffe://td/prod/**", SPIFFE_ID_PATTERN, NULL },
		{ "spiffe://td/prod/app1", SPIFFE_ID_PATTERN, NULL },
		{ "spiffe://*/prod", SPIFFE_ID_PATTERN, "not allowed in the trust domain" },
		{ "spiffe://td/**/x", SPIFFE_ID_PATTERN, "whole last segment" },
		{ "spiffe://td/prod/a**", SPIFFE_ID_PATTERN, "whole last segment" },
		{ "spiffe://td/prod/", SPIFFE_ID_PATTERN, "no trailing '/'" },
		{ "spiffe://Td/prod/*", SPIFFE_ID_PATTERN, "lower case" },
	};

	(void)state;
	run(rows, ARRAY_SIZE(rows));
}

static void test_spiffe_id_lengths(void **state)
{
	char id[SPIFFE_ID_MAX + 64];
	int n;

	(void)state;
	n = snprintf(id, sizeof(id), "spiffe://");
	memset(id + n, 'a', 255);
	snprintf(id + n + 255, sizeof(id) - (size_t)n - 255, "/x");
	assert_null(spiffe_id_problem(id, 0));
	memset(id + n, 'a', 256);
	snprintf(id + n + 256, sizeof(id) - (size_t)n - 256, "/x");
	assert_non_null(strstr(spiffe_id_problem(id, 0), "longer than 255"));
	n = snprintf(id, sizeof(id), "spiffe://td/");
	memset(id + n, 'p', SPIFFE_ID_MAX - (size_t)n);
	id[SPIFFE_ID_MAX] = '\0';
	assert_null(spiffe_id_problem(id, 0));
	id[SPIFFE_ID_MAX] = 'p';
	id[SPIFFE_ID_MAX + 1] = '\0';
	assert_non_null(strstr(spiffe_id_problem(id, 0), "longer than 2048"));
}

/* A typo of the scheme is caught; other URIs are not SPIFFE's business. */
static void test_spiffe_id_intended(void **state)
{
	static const struct { const char *uri; bool intended; } rows[] = {
		{ "spiffe://td/x", true }, { "SPIFFE://td/x", true }, { "spifee://td/x", true },
		{ "spiffie://td/x", true }, { "spife://td/x", true }, { "spif://td/x", true },
		{ "https://a.example/x", false }, { "urn:uuid:1234", false }, { "sip:alice@a", false },
		{ "spiffe", false }, { "", false },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
		if (spiffe_id_intended(rows[i].uri) != rows[i].intended)
			fail_msg("'%s': expected %s", rows[i].uri, rows[i].intended ? "intended" : "not intended");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spiffe_id_rules),
		cmocka_unit_test(test_spiffe_id_patterns),
		cmocka_unit_test(test_spiffe_id_lengths),
		cmocka_unit_test(test_spiffe_id_intended),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
