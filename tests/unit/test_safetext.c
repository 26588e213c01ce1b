/*
 * test_safetext.c: cutting and escaping untrusted text (lib/safetext.c):
 * a cut never splits a character, stored copies and Prometheus labels are
 * valid UTF-8 whatever the input, JSON strings escape every control and
 * every byte that is not UTF-8, terminals never receive a control
 * character; and the twins: plain UTF-8 ("Zürich") goes through as is.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "safetext.h"

#define ZURICH "Z\xc3\xbcrich"
#define EURO "\xe2\x82\xac"         /* U+20AC, 3 bytes */
#define GCLEF "\xf0\x9d\x84\x9e"    /* U+1D11E, 4 bytes */

static void test_safetext_seq_len_accepts_and_refuses(void **state)
{
	(void)state;
	assert_int_equal(utf8_seq_len((const unsigned char *)"a", 1), 1);
	assert_int_equal(utf8_seq_len((const unsigned char *)"\xc3\xbc", 2), 2);
	assert_int_equal(utf8_seq_len((const unsigned char *)EURO, 3), 3);
	assert_int_equal(utf8_seq_len((const unsigned char *)GCLEF, 4), 4);
	/* stray continuation, overlong '/', surrogate, > U+10FFFF, cut short */
	assert_int_equal(utf8_seq_len((const unsigned char *)"\x80", 1), 0);
	assert_int_equal(utf8_seq_len((const unsigned char *)"\xc0\xaf", 2), 0);
	assert_int_equal(utf8_seq_len((const unsigned char *)"\xed\xa0\x80", 3), 0);
	assert_int_equal(utf8_seq_len((const unsigned char *)"\xf4\x90\x80\x80", 4), 0);
	assert_int_equal(utf8_seq_len((const unsigned char *)EURO, 2), 0);
}

/* A cut at every byte position of a text mixing 1- to 4-byte characters
 * ends on a character boundary and keeps as much as fits. */
static void test_safetext_cut_never_splits_a_character(void **state)
{
	const char *s = "a" ZURICH EURO GCLEF "z";
	size_t len = strlen(s);
	(void)state;

	for (size_t max = 0; max <= len + 1; max++) {
		size_t n = utf8_cut(s, len, max);
		assert_true(n <= max);
		assert_true(utf8_valid(s, n));
		/* maximal: the next character would not have fit */
		if (n < len)
			assert_true(n + utf8_seq_len((const unsigned char *)s + n, len - n) > max);
	}
	assert_int_equal(utf8_cut(s, len, 3), 1 + 1);        /* "aZ", not "aZ\xc3" */
	assert_int_equal(utf8_cut(s, len, len), len);
	/* A byte that is not UTF-8 is a unit of its own: cut after it. */
	assert_int_equal(utf8_cut("a\xff" "b", 3, 2), 2);
}

static void test_safetext_trim_partial(void **state)
{
	char a[] = "abc\xe2\x82", b[] = "abc" EURO, c[] = "abc\xc3", d[] = "x" GCLEF, e[] = "\xf0\x9d\x84";
	(void)state;

	utf8_trim_partial(a);
	utf8_trim_partial(b);
	utf8_trim_partial(c);
	utf8_trim_partial(d);
	utf8_trim_partial(e);
	assert_string_equal(a, "abc");
	assert_string_equal(b, "abc" EURO);    /* the twin: complete, kept */
	assert_string_equal(c, "abc");
	assert_string_equal(d, "x" GCLEF);
	assert_string_equal(e, "");
}

/* The stored copy (the BPF map's fixed-size CN) is valid UTF-8: invalid
 * bytes become U+FFFD, the cut falls between characters; controls stay
 * (the escapers handle them where the text is shown). */
static void test_safetext_copy_valid(void **state)
{
	char dst[8];
	char big[64];
	(void)state;

	utf8_copy_valid(dst, sizeof(dst), "abcdef" EURO);
	assert_string_equal(dst, "abcdef");            /* € would need 3 more bytes */
	utf8_copy_valid(dst, sizeof(dst), "ab\xff" "c");
	assert_string_equal(dst, "ab" UTF8_REPLACEMENT "c");
	utf8_copy_valid(dst, sizeof(dst), NULL);
	assert_string_equal(dst, "");
	utf8_copy_valid(big, sizeof(big), ZURICH "\x1b[2J\xc2\x85");
	assert_string_equal(big, ZURICH "\x1b[2J\xc2\x85");
	/* 63 bytes of room, a two-byte character straddling the cut */
	char cn[80];
	memset(cn, 'a', 62);
	memcpy(cn + 62, "\xc3\xa9", 3);
	utf8_copy_valid(big, sizeof(big), cn);
	assert_int_equal(strlen(big), 62);
	assert_true(utf8_valid(big, strlen(big)));
}

static void test_safetext_json_string(void **state)
{
	static const struct { const char *in; size_t len; const char *out; } rows[] = {
		{ "plain", 5, "\"plain\"" },
		{ "a\"b\\c", 5, "\"a\\\"b\\\\c\"" },
		{ "\n\r\t", 3, "\"\\n\\r\\t\"" },
		{ "\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\"" },
		{ "a\0b", 3, "\"a\\u0000b\"" },
		{ "\xc3\xa9", 2, "\"\xc3\xa9\"" },                 /* é: valid UTF-8 kept */
		{ "\xc2\x85\xc2\x9b\xc2\xa0", 6, "\"\\u0085\\u009b\xc2\xa0\"" }, /* C1 escaped, U+00A0 kept */
		{ "\xe2\x80\xa8\xe2\x80\xa9\xe2\x80\xa7", 9, "\"\\u2028\\u2029\xe2\x80\xa7\"" }, /* line/para sep */
		{ "\xf0\x9f\x98\x80", 4, "\"\xf0\x9f\x98\x80\"" }, /* 4-byte sequence kept */
		{ "\xff", 1, "\"\\u00ff\"" },                      /* never valid */
		{ "\xc0\xaf", 2, "\"\\u00c0\\u00af\"" },           /* overlong '/' */
		{ "\xed\xa0\x80", 3, "\"\\u00ed\\u00a0\\u0080\"" }, /* surrogate */
		{ "\xe2\x82", 2, "\"\\u00e2\\u0082\"" },           /* truncated */
		{ "\xf4\x90\x80\x80", 4, "\"\\u00f4\\u0090\\u0080\\u0080\"" }, /* > U+10FFFF */
	};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t off = 0;

		assert_int_equal(json_put_string(buf, sizeof(buf), &off, rows[i].in, rows[i].len), 0);
		assert_string_equal(buf, rows[i].out);
		assert_int_equal(off, strlen(rows[i].out));
		assert_true(utf8_valid(buf, off)); /* whatever came in */
	}
}

static void test_safetext_json_enospc_leaves_buffer_as_it_was(void **state)
{
	char buf[8];
	size_t off = 2;

	(void)state;
	memcpy(buf, "ab", 3);
	/* "\"\\u0001\"" is 8 bytes + NUL: does not fit after 2 bytes. */
	assert_int_equal(json_put_string(buf, sizeof(buf), &off, "\x01", 1), -ENOSPC);
	assert_int_equal(off, 2);
	assert_string_equal(buf, "ab"); /* not a half-written escape after it */
	off = 0;
	assert_int_equal(json_put_string(buf, sizeof(buf) - 1, &off, "abcde", 5), -ENOSPC);
	assert_int_equal(off, 0);
	assert_string_equal(buf, "");
	/* the twin: exactly the room it needs, NUL included */
	assert_int_equal(json_put_string(buf, sizeof(buf), &off, "abcde", 5), 0);
	assert_string_equal(buf, "\"abcde\"");
}

static char *prom(const char *value)
{
	static char buf[256];
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	assert_non_null(f);
	prom_put_label_value(f, value);
	fclose(f);
	return buf;
}

static void test_safetext_prom_label(void **state)
{
	(void)state;
	assert_string_equal(prom("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
	assert_string_equal(prom("x\x01\r\x7fy"), "x???y");
	assert_string_equal(prom("c1\xc2\x85\xc2\x9b" "end"), "c1??end");
	assert_string_equal(prom("bad\xff\xc3("), "bad" UTF8_REPLACEMENT UTF8_REPLACEMENT "(");
	/* the twin: printable UTF-8 as is (U+00A0 is the first after C1) */
	assert_string_equal(prom(ZURICH " \xc2\xa0" EURO), ZURICH " \xc2\xa0" EURO);
}

/* A whole pair: the name written as given, the value escaped, a comma
 * before every pair but the first. A hostile CN cannot close the quote and
 * add a label of its own; the twin shows a plain value unchanged. */
static void test_safetext_prom_label_pair(void **state)
{
	char buf[256];
	FILE *f = fmemopen(buf, sizeof(buf), "w");
	(void)state;

	assert_non_null(f);
	prom_put_label(f, "partner", "acme", true);
	prom_put_label(f, "subject_cn", "x\",evil=\"1\n\x1b\xff", false);
	prom_put_label(f, "serial", NULL, false);
	fclose(f);
	assert_string_equal(buf, "partner=\"acme\",subject_cn=\"x\\\",evil=\\\"1\\n?" UTF8_REPLACEMENT
			    "\",serial=\"\"");
}

static void test_safetext_term_escape(void **state)
{
	char out[64];
	(void)state;

	term_escape(out, sizeof(out), "\x1b[31mred\x07", 9);
	assert_string_equal(out, "\\1B[31mred\\07");
	term_escape(out, sizeof(out), "a\xc2\x9b" "2J\xff" "b", 7);
	assert_string_equal(out, "a\\C2\\9B2J\\FFb");
	term_escape(out, sizeof(out), "nul\0x", 5);
	assert_string_equal(out, "nul\\00x");
	/* the twin: UTF-8 stays readable */
	term_escape(out, sizeof(out), ZURICH, strlen(ZURICH));
	assert_string_equal(out, ZURICH);
	/* Too small: cut between whole characters and whole escapes. */
	assert_int_equal(term_escape(out, 4, "ab" EURO, 5), 2);
	assert_string_equal(out, "ab");
	assert_int_equal(term_escape(out, 6, "a\x1b\x1b", 3), 4);
	assert_string_equal(out, "a\\1B");
}

static void test_safetext_columns(void **state)
{
	(void)state;
	assert_int_equal(utf8_columns(ZURICH), 6);
	assert_int_equal(utf8_columns("a" EURO GCLEF), 3);
	assert_int_equal(utf8_prefix_columns(ZURICH, 2), 3);  /* "Zü" */
	assert_int_equal(utf8_prefix_columns(ZURICH, 99), strlen(ZURICH));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_safetext_seq_len_accepts_and_refuses),
		cmocka_unit_test(test_safetext_cut_never_splits_a_character),
		cmocka_unit_test(test_safetext_trim_partial),
		cmocka_unit_test(test_safetext_copy_valid),
		cmocka_unit_test(test_safetext_json_string),
		cmocka_unit_test(test_safetext_json_enospc_leaves_buffer_as_it_was),
		cmocka_unit_test(test_safetext_prom_label),
		cmocka_unit_test(test_safetext_prom_label_pair),
		cmocka_unit_test(test_safetext_term_escape),
		cmocka_unit_test(test_safetext_columns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
