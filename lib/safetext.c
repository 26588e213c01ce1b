/*
 * safetext.c: cutting, validating and escaping untrusted text (see
 * safetext.h). Everything walks the text one unit at a time: a valid UTF-8
 * sequence, or a single byte that is not part of one.
 */
#include "safetext.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

size_t utf8_seq_len(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* The unit at s: its length (>= 1) and whether it is valid UTF-8. */
static size_t unit_at(const unsigned char *s, size_t left, bool *valid)
{
	size_t n = utf8_seq_len(s, left);

	*valid = n > 0;
	return n ? n : 1;
}

/* C0 controls, DEL, and C1 controls (U+0080..U+009F: 0xC2 0x80..0x9F). */
static bool is_control(const unsigned char *s, size_t n)
{
	return (n == 1 && (s[0] < 0x20 || s[0] == 0x7f)) ||
	       (n == 2 && s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f);
}

int utf8_valid(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq_len(u + i, len - i);
		if (n == 0)
			return 0;
		i += n;
	}
	return 1;
}

size_t utf8_cut(const char *s, size_t len, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t off = 0;
	bool valid;

	if (len <= max)
		return len;
	while (off < len) {
		size_t n = unit_at(u + off, len - off, &valid);
		if (off + n > max)
			break;
		off += n;
	}
	return off;
}

void utf8_trim_partial(char *s)
{
	size_t len = strlen(s);

	/* A sequence is at most 4 bytes: the byte that starts the last one is
	 * at most 3 back from the end. */
	for (size_t back = 1; back <= 3 && back <= len; back++) {
		unsigned char c = (unsigned char)s[len - back];
		if ((c & 0xc0) == 0x80)
			continue; /* a continuation byte: look further back */
		size_t want = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
		if (want > back)
			s[len - back] = '\0';
		return;
	}
}

void utf8_copy_valid(char *dst, size_t cap, const char *src)
{
	const unsigned char *u = (const unsigned char *)(src ? src : "");
	size_t len = strlen((const char *)u), o = 0;
	bool valid;

	if (cap == 0)
		return;
	for (size_t i = 0; i < len;) {
		size_t n = unit_at(u + i, len - i, &valid);
		const unsigned char *put = valid ? u + i : (const unsigned char *)UTF8_REPLACEMENT;
		size_t put_len = valid ? n : sizeof(UTF8_REPLACEMENT) - 1;

		if (o + put_len >= cap)
			break;
		memcpy(dst + o, put, put_len);
		o += put_len;
		i += n;
	}
	dst[o] = '\0';
}

/* The code point of a valid unit a JSON string must not carry raw, or -1:
 * a control character (C0, DEL, C1), or U+2028/U+2029. The C1 controls
 * (NEL, CSI...) and the two separators are valid JSON, but terminals act
 * on them and line readers (Python's splitlines, some log shippers) break
 * lines there: a CN could forge a second audit line. */
static long json_escaped_code_point(const unsigned char *s, size_t n)
{
	if (is_control(s, n))
		return n == 1 ? s[0] : s[1];
	if (n == 3 && s[0] == 0xe2 && s[1] == 0x80 && (s[2] | 1) == 0xa9)
		return 0x2000 + (s[2] - 0x80);
	return -1;
}

/* The two-character escape JSON has for c, or NULL. */
static const char *json_short_escape(unsigned char c)
{
	switch (c) {
	case '"': return "\\\"";
	case '\\': return "\\\\";
	case '\n': return "\\n";
	case '\r': return "\\r";
	case '\t': return "\\t";
	default: return NULL;
	}
}

int json_put_string(char *buf, size_t cap, size_t *off, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t o = *off, n;
	bool valid;

#define PUT(c) do { if (o + 1 >= cap) goto full; buf[o++] = (char)(c); } while (0)
	PUT('"');
	for (size_t i = 0; i < len; i += n) {
		const char *esc = json_short_escape(u[i]);
		long cp = -1;

		n = unit_at(u + i, len - i, &valid);
		if (esc) {
			PUT(esc[0]);
			PUT(esc[1]);
		} else if (!valid || (cp = json_escaped_code_point(u + i, n)) >= 0) {
			char hex[7];

			/* a byte that is not UTF-8 is shown as the byte it is */
			snprintf(hex, sizeof(hex), "\\u%04lx", valid ? cp : (long)u[i]);
			for (int k = 0; k < 6; k++)
				PUT(hex[k]);
		} else {
			for (size_t k = 0; k < n; k++)
				PUT(u[i + k]);
		}
	}
	PUT('"');
#undef PUT
	buf[o] = '\0';
	*off = o;
	return 0;
full:
	if (*off < cap)
		buf[*off] = '\0';
	return -ENOSPC;
}

void prom_put_label_value(FILE *out, const char *value)
{
	const unsigned char *u = (const unsigned char *)(value ? value : "");
	size_t len = strlen((const char *)u);
	bool valid;

	for (size_t i = 0; i < len;) {
		size_t n = unit_at(u + i, len - i, &valid);

		if (!valid)
			fputs(UTF8_REPLACEMENT, out);
		else if (u[i] == '\\' || u[i] == '"')
			fprintf(out, "\\%c", u[i]);
		else if (u[i] == '\n')
			fputs("\\n", out);
		else if (is_control(u + i, n))
			fputc('?', out);
		else
			fwrite(u + i, 1, n, out);
		i += n;
	}
}

void prom_put_label(FILE *out, const char *name, const char *value, bool first)
{
	fprintf(out, "%s%s=\"", first ? "" : ",", name);
	prom_put_label_value(out, value);
	fputc('"', out);
}

size_t term_escape(char *dst, size_t cap, const char *src, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *u = (const unsigned char *)src;
	size_t o = 0;
	bool valid;

	if (cap == 0)
		return 0;
	for (size_t i = 0; i < len;) {
		size_t n = unit_at(u + i, len - i, &valid);
		bool escape = !valid || is_control(u + i, n);
		size_t need = escape ? 3 * n : n;

		if (o + need >= cap)
			break;
		for (size_t k = 0; k < n; k++) {
			if (escape) {
				dst[o++] = '\\';
				dst[o++] = hex[u[i + k] >> 4];
				dst[o++] = hex[u[i + k] & 0x0f];
			} else {
				dst[o++] = (char)u[i + k];
			}
		}
		i += n;
	}
	dst[o] = '\0';
	return o;
}

size_t utf8_columns(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t len = strlen(s), cols = 0;
	bool valid;

	for (size_t i = 0; i < len; cols++)
		i += unit_at(u + i, len - i, &valid);
	return cols;
}

size_t utf8_prefix_columns(const char *s, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t len = strlen(s), i = 0;
	bool valid;

	for (size_t cols = 0; i < len && cols < max; cols++)
		i += unit_at(u + i, len - i, &valid);
	return i;
}
