/*
 * test_stats.c: mtlsctl stats' choice and order of records
 * (ctl/stats_render.c) without any source: serial matching, partner
 * filter, sort orders, option words.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stats_render.h"

static void test_stats_serial_normalize_accepts_forms(void **state)
{
	char a[64], b[64], c[64];
	(void)state;

	assert_int_equal(stats_serial_normalize("4F:A2:01", a, sizeof(a)), 0);
	assert_int_equal(stats_serial_normalize("4fa201", b, sizeof(b)), 0);
	assert_int_equal(stats_serial_normalize("00:4F:A2:01", c, sizeof(c)), 0);
	assert_string_equal(a, "4FA201");
	assert_string_equal(b, "4FA201");
	assert_string_equal(c, "4FA201");
	assert_int_equal(stats_serial_normalize("00", a, sizeof(a)), 0);
	assert_string_equal(a, "0");
}

static void test_stats_serial_normalize_rejects_non_hex(void **state)
{
	char a[8];
	(void)state;

	assert_int_equal(stats_serial_normalize("4G", a, sizeof(a)), -EINVAL);
	assert_int_equal(stats_serial_normalize("4F A2", a, sizeof(a)), -EINVAL);
	assert_int_equal(stats_serial_normalize("0123456789ABCDEF", a, sizeof(a)), -ENAMETOOLONG);
}

static void test_stats_option_words(void **state)
{
	enum stats_sort s;
	enum stats_source_kind k;
	(void)state;

	assert_int_equal(stats_sort_parse("last-seen", &s), 0);
	assert_int_equal(s, STATS_SORT_LAST_SEEN);
	assert_int_equal(stats_sort_parse("newest", &s), -EINVAL);
	assert_int_equal(stats_source_parse("fallback", &k), 0);
	assert_int_equal(k, STATS_SRC_FALLBACK);
	assert_int_equal(stats_source_parse("kernel", &k), -EINVAL);
}

static struct acct_record rec(uint8_t issuer, uint8_t serial, const char *partner,
			      unsigned ok, unsigned failed, uint64_t seen)
{
	struct acct_record r;

	memset(&r, 0, sizeof(r));
	memset(r.key.issuer_id, issuer, sizeof(r.key.issuer_id));
	r.key.serial[0] = serial;
	r.key.serial_len = 1;
	r.c.outcome[ACCT_B_OK] = ok;
	r.c.outcome[ACCT_B_EXPIRED] = failed;
	r.c.last_seen_ns = seen;
	r.c.last_partner = partner ? 0 : ACCT_NO_PARTNER;
	if (partner) {
		r.has_meta = 1;
		snprintf(r.meta.partner_name, sizeof(r.meta.partner_name), "%s", partner);
	}
	return r;
}

static struct stats_view view(void)
{
	struct stats_view v;

	memset(&v, 0, sizeof(v));
	v.recs = calloc(4, sizeof(*v.recs));
	assert_non_null(v.recs);
	v.recs[0] = rec(0xaa, 0x4f, "acme", 10, 1, 300);
	v.recs[1] = rec(0xbb, 0x4f, "globex", 1, 5, 100);
	v.recs[2] = rec(0xaa, 0x02, "acme", 50, 0, 200);
	v.recs[3] = rec(0, 0, NULL, 0, 2, 400);
	v.recs[3].key.serial_len = 0;   /* no certificate */
	v.n = v.n_present = 4;
	return v;
}

static void test_stats_select_default_most_failures_first(void **state)
{
	struct stats_view v = view();
	struct stats_filter f = { 0 };
	(void)state;

	stats_select(&v, &f, STATS_SORT_FAILURES);
	assert_int_equal(v.n, 4);
	assert_int_equal(v.recs[0].c.outcome[ACCT_B_EXPIRED], 5);
	assert_int_equal(v.recs[1].c.outcome[ACCT_B_EXPIRED], 2);
	assert_int_equal(v.recs[2].c.outcome[ACCT_B_EXPIRED], 1);
	stats_select(&v, &f, STATS_SORT_LAST_SEEN);
	assert_int_equal(v.recs[0].c.last_seen_ns, 400);
	stats_select(&v, &f, STATS_SORT_TOTAL);
	assert_int_equal(v.recs[0].c.outcome[ACCT_B_OK], 50);
	stats_view_free(&v);
}

static void test_stats_select_serial_matches_both_issuers(void **state)
{
	struct stats_view v = view();
	struct stats_filter f = { .serial = "004f" };
	(void)state;

	stats_select(&v, &f, STATS_SORT_FAILURES);
	assert_int_equal(v.n, 2);
	assert_int_equal(v.recs[0].key.issuer_id[0], 0xbb);
	assert_int_equal(v.recs[1].key.issuer_id[0], 0xaa);
	assert_int_equal(v.n_present, 4);   /* evictions are computed on this */
	stats_view_free(&v);
}

static void test_stats_select_filters_reject_the_rest(void **state)
{
	struct stats_view v = view();
	struct stats_filter f = { .partner = "acme", .serial = "02" };
	(void)state;

	stats_select(&v, &f, STATS_SORT_FAILURES);
	assert_int_equal(v.n, 1);
	assert_int_equal(v.recs[0].c.outcome[ACCT_B_OK], 50);
	f.partner = "initech";
	f.serial = NULL;
	stats_select(&v, &f, STATS_SORT_FAILURES);
	assert_int_equal(v.n, 0);
	stats_view_free(&v);
}

static char *render_table(struct stats_view *v)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	stats_print_table(f, v);
	fclose(f);
	return text;
}

static void test_stats_table_shows_names(void **state)
{
	struct stats_view v = view();
	(void)state;

	snprintf(v.recs[0].meta.subject_cn, sizeof(v.recs[0].meta.subject_cn), "client-ec");
	char *text = render_table(&v);
	assert_non_null(strstr(text, "client-ec"));
	assert_non_null(strstr(text, "acme"));
	assert_non_null(strstr(text, "(no certificate)"));
	free(text);
	stats_view_free(&v);
}

/* A CN is attacker-chosen: escape sequences must not reach the terminal. */
static void test_stats_table_neutralizes_control_characters(void **state)
{
	struct stats_view v = view();
	(void)state;

	snprintf(v.recs[0].meta.subject_cn, sizeof(v.recs[0].meta.subject_cn), "\033[2Jevil\r");
	snprintf(v.recs[1].meta.partner_name, sizeof(v.recs[1].meta.partner_name), "glo\007bex");
	char *text = render_table(&v);
	assert_null(strchr(text, '\033'));
	assert_null(strchr(text, '\007'));
	assert_null(strchr(text, '\r'));
	assert_non_null(strstr(text, "?[2Jevil?"));
	free(text);
	stats_view_free(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stats_serial_normalize_accepts_forms),
		cmocka_unit_test(test_stats_serial_normalize_rejects_non_hex),
		cmocka_unit_test(test_stats_option_words),
		cmocka_unit_test(test_stats_select_default_most_failures_first),
		cmocka_unit_test(test_stats_select_serial_matches_both_issuers),
		cmocka_unit_test(test_stats_select_filters_reject_the_rest),
		cmocka_unit_test(test_stats_table_shows_names),
		cmocka_unit_test(test_stats_table_neutralizes_control_characters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
