/*
 * safetext.h: text that came from a certificate (or anywhere else outside
 * mtlsd), made safe for the place it goes.
 *
 * Whoever makes a certificate chooses every byte of its names: bytes that
 * are not UTF-8, C0 and C1 control characters (ESC, CSI U+009B: terminal
 * escape sequences), quotes, backslashes, newlines. This module is the one
 * place that
 *  - cuts text to a byte length without splitting a UTF-8 character
 *    (fixed-size fields: the BPF map records, struct cert_identity);
 *  - makes a stored copy valid UTF-8;
 *  - escapes a JSON string (the audit log, mtlsctl's --json output);
 *  - escapes a Prometheus label value (the text exposition format);
 *  - escapes text for a terminal (mtlsctl's tables and `cert inspect`).
 * Each escaper exists once in the tree, and all of them share one UTF-8
 * decoder and one idea of what a control character is.
 */
#ifndef MTLS_SAFETEXT_H
#define MTLS_SAFETEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "guard.h"

/* U+FFFD REPLACEMENT CHARACTER, what a byte that is not UTF-8 becomes. */
#define UTF8_REPLACEMENT "\xEF\xBF\xBD"

/*
 * Length of the valid UTF-8 sequence at s (1..4 bytes, at most left), or 0
 * when the bytes there are not valid UTF-8: a stray continuation byte, an
 * overlong form, a surrogate, a code point beyond U+10FFFF, a sequence cut
 * short. left must be at least 1.
 */
size_t utf8_seq_len(const unsigned char *s, size_t left);

/* Whether the len bytes at s are valid UTF-8 (NUL bytes included). */
int utf8_valid(const char *s, size_t len);

/*
 * The length of the longest prefix of s[0..len) that is at most max bytes
 * and does not end inside a valid UTF-8 sequence (a byte that is not part
 * of one counts as a character of its own). The one way mtlsd cuts text
 * to a byte length.
 */
size_t utf8_cut(const char *s, size_t len, size_t max);

/* Drop an incomplete UTF-8 sequence from the end of the C string s (what
 * snprintf leaves when it truncates in the middle of a character). */
void utf8_trim_partial(char *s);

/*
 * Copy the C string src (NULL: "") into dst, cap >= 1 bytes, as valid
 * UTF-8: every byte that is not part of a valid sequence becomes U+FFFD,
 * and the copy is cut on a character boundary to fit, NUL-terminated.
 * Control characters are kept (they are valid UTF-8): the escapers below
 * deal with them where the text is shown.
 */
void utf8_copy_valid(char *dst, size_t cap, const char *src);

/*
 * Append len bytes of s to buf at *off as a quoted JSON string: quotes,
 * backslashes and control characters (C0, DEL, C1, and U+2028/U+2029,
 * which some line readers take for line ends) escaped, valid UTF-8
 * copied, every byte that is not part of valid UTF-8 written as \u00XX
 * (certificate fields are attacker-chosen bytes). Keeps buf
 * NUL-terminated at *off, also when it fails. Returns 0 or -ENOSPC (then
 * *off is unchanged and buf reads as it did before the call).
 */
int json_put_string(char *buf, size_t cap, size_t *off, const char *s, size_t len) MUST_CHECK;

/*
 * Write value as the inside of a Prometheus label value (text format
 * 0.0.4: no surrounding quotes): backslash, double quote and newline
 * escaped as the format requires; every other C0 control, DEL and C1
 * control becomes '?'; a byte that is not UTF-8 becomes U+FFFD. The
 * output is always valid UTF-8, so `promtool check metrics` accepts it.
 */
void prom_put_label_value(FILE *out, const char *value);

/* One label pair, name="value" with value escaped as above, preceded by a
 * comma unless first. name is the caller's constant, written as is. */
void prom_put_label(FILE *out, const char *name, const char *value, bool first);

/*
 * Escape len bytes of src for a terminal into dst (cap >= 1 bytes,
 * NUL-terminated): printable UTF-8 is copied as is ("Zürich"); every C0
 * control, DEL, C1 control (as its two UTF-8 bytes) and byte that is not
 * UTF-8 is written \XX in upper-case hex, the form OpenSSL's RFC 2253
 * names use for escaped bytes. For people reading, not reversible
 * (backslashes are not doubled): machine output is JSON. When dst is too
 * small the text is cut between two characters or escapes. Returns the
 * length written.
 */
size_t term_escape(char *dst, size_t cap, const char *src, size_t len);

/* Characters (code points; a byte that is not UTF-8 counts as one) in the
 * C string s: the columns a terminal gives it, for characters of width 1. */
size_t utf8_columns(const char *s);

/* The byte length of the first max characters of the C string s (all of
 * it when it has fewer): cutting a table cell to a number of columns. */
size_t utf8_prefix_columns(const char *s, size_t max);

#endif
