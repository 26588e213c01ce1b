/*
 * test_stats.c: mtlsctl stats' choice and order of records
 * (ctl/stats_render.c) without any source: serial matching, partner
 * filter, sort orders, option words; what the table and JSON make of
 * names a certificate's maker chose.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "safetext.h"
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
	assert_non_null(strstr(text, "(not attributed)"));
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
	assert_non_null(strstr(text, "\\1B[2Jevil\\0D"));
	assert_non_null(strstr(text, "glo\\07bex"));
	free(text);
	stats_view_free(&v);
}

/* C1 controls are valid UTF-8, and terminals act on them (U+009B is CSI):
 * escaped like C0. Bytes that are not UTF-8 too; the table stays valid
 * UTF-8 whatever the maps hold (anyone with CAP_BPF can write them). */
static void test_stats_table_escapes_c1_and_invalid_utf8(void **state)
{
	struct stats_view v = view();
	(void)state;

	snprintf(v.recs[0].meta.subject_cn, sizeof(v.recs[0].meta.subject_cn), "a\xc2\x9b" "31mb\xff\xc3(");
	snprintf(v.recs[0].meta.issuer, sizeof(v.recs[0].meta.issuer), "CN=\xc2\x85x");
	char *text = render_table(&v);
	assert_null(strstr(text, "\xc2\x9b"));
	assert_null(strstr(text, "\xc2\x85"));
	assert_true(utf8_valid(text, strlen(text)));
	assert_non_null(strstr(text, "a\\C2\\9B31mb\\FF\\C3("));
	assert_non_null(strstr(text, "CN=\\C2\\85x"));
	free(text);
	stats_view_free(&v);
}

/* Columns of the text line of a row, in characters, where needle starts. */
static size_t column_of(const char *text, const char *row_marker, const char *needle)
{
	const char *row = strstr(text, row_marker);
	assert_non_null(row);
	while (row > text && row[-1] != '\n')
		row--;
	const char *at = strstr(row, needle);
	assert_non_null(at);
	char prefix[1024];
	snprintf(prefix, sizeof(prefix), "%.*s", (int)(at - row), row);
	return utf8_columns(prefix);
}

/* The twin: UTF-8 text is shown as is, columns stay aligned by characters,
 * and a cell longer than its column is cut between two characters. */
static void test_stats_table_keeps_utf8_aligned(void **state)
{
	struct stats_view v = view();
	char long_cn[64];
	(void)state;

	snprintf(v.recs[0].meta.subject_cn, sizeof(v.recs[0].meta.subject_cn), "Z\xc3\xbcrich");
	snprintf(v.recs[1].meta.subject_cn, sizeof(v.recs[1].meta.subject_cn), "Zurich");
	v.recs[1].has_meta = 1;
	char *text = render_table(&v);
	assert_non_null(strstr(text, "Z\xc3\xbcrich "));
	assert_int_equal(column_of(text, "Z\xc3\xbcrich", "4F"), column_of(text, "Zurich", "4F"));
	free(text);

	/* 31 ASCII bytes then two-byte characters: the CN column (32
	 * characters at most) ends after the first "é", never inside it. */
	memset(long_cn, 'a', 31);
	for (int i = 0; i < 16; i++)
		memcpy(long_cn + 31 + 2 * i, "\xc3\xa9", 2);
	long_cn[63] = '\0';
	snprintf(v.recs[0].meta.subject_cn, sizeof(v.recs[0].meta.subject_cn), "%s", long_cn);
	text = render_table(&v);
	assert_true(utf8_valid(text, strlen(text)));
	assert_non_null(strstr(text, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9 "));
	free(text);
	stats_view_free(&v);
}

static char *render_json(struct stats_view *v)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	stats_print_json(f, v);
	fclose(f);
	return text;
}

/* JSON carries the exact bytes, escaped: a byte that is not UTF-8 becomes
 * \u00XX, so the document is valid UTF-8 (json.loads accepts it); the
 * twin: valid UTF-8 is kept as is. */
static void test_stats_json_escapes_invalid_utf8(void **state)
{
	struct stats_view v = view();
	(void)state;

	snprintf(v.recs[0].meta.subject_cn, sizeof(v.recs[0].meta.subject_cn), "x\xff\"\\\n\x1b");
	snprintf(v.recs[1].meta.subject_cn, sizeof(v.recs[1].meta.subject_cn), "Z\xc3\xbcrich");
	char *text = render_json(&v);
	assert_true(utf8_valid(text, strlen(text)));
	assert_non_null(strstr(text, "\"subject_cn\":\"x\\u00ff\\\"\\\\\\n\\u001b\""));
	assert_non_null(strstr(text, "\"subject_cn\":\"Z\xc3\xbcrich\""));
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
		cmocka_unit_test(test_stats_table_escapes_c1_and_invalid_utf8),
		cmocka_unit_test(test_stats_table_keeps_utf8_aligned),
		cmocka_unit_test(test_stats_json_escapes_invalid_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
