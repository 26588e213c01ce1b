/*
 * cert_name.c: distinguished names printed one way and read two ways
 * (cert_name.h).
 *
 * OpenSSL prints RFC 2253 but has no parser for it (only the apps' private
 * one-line parser), so the reader is here: a small tokenizer into
 * (type, value, same-RDN) triples, then an X509_NAME built with OpenSSL's
 * own string rules, so the comparison is X509_NAME_cmp's canonical one.
 * Typed text is bounded (MAX_AVAS attributes, MAX_VALUE bytes each).
 */
#include "cert_name.h"

#include <ctype.h>
#include <openssl/bio.h>
#include <openssl/objects.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "safetext.h"

/* RFC 2253, non-ASCII kept as UTF-8 instead of "\C3\A9" escapes. */
#define NAME_PRINT_FLAGS (XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB)
#define MAX_AVAS 32
#define MAX_TYPE 64
#define MAX_VALUE 1024

/* Copy at most cap-1 bytes of src, stopping at a NUL, cut between two
 * characters (lib/safetext.h's one way to cut text). */
static void copy_cut(char *dst, size_t cap, const char *src, size_t len)
{
	size_t n = utf8_cut(src, strnlen(src, len), cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

int cert_name_format_bio(BIO *bio, const X509_NAME *name, char *out, size_t cap)
{
	char *data = NULL;
	long len;

	ENSURE(cap > 0, EINVAL);
	(void)BIO_reset(bio);
	if (!name || X509_NAME_print_ex(bio, name, 0, NAME_PRINT_FLAGS) < 0) {
		snprintf(out, cap, "?");
		return -EINVAL;
	}
	len = BIO_get_mem_data(bio, &data);
	copy_cut(out, cap, data ? data : "", len > 0 ? (size_t)len : 0);
	return 0;
}

int cert_name_format(const X509_NAME *name, char *out, size_t cap)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int rc;

	if (!bio) {
		if (cap)
			snprintf(out, cap, "?");
		return -ENOMEM;
	}
	rc = cert_name_format_bio(bio, name, out, cap);
	BIO_free(bio);
	return rc;
}

/* ---- reading --------------------------------------------------------- */

struct ava {
	char type[MAX_TYPE];
	unsigned char value[MAX_VALUE];
	size_t len;
	bool joined;  /* '+': same RDN as the previous attribute */
};

struct dn_reader {
	const char *s;
	bool oneline;
	struct ava v[MAX_AVAS];
	size_t n;
	char *why;
	size_t wl;
};

__attribute__((format(printf, 2, 3)))
static int fail(struct dn_reader *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->why, r->wl, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool ends_value(const struct dn_reader *r, char c)
{
	return c == '\0' || c == '+' || (r->oneline ? c == '/' : (c == ',' || c == ';'));
}

static int read_type(struct dn_reader *r, struct ava *a)
{
	size_t n = 0;

	while (*r->s == ' ')
		r->s++;
	while (isalnum((unsigned char)*r->s) || *r->s == '.' || *r->s == '-') {
		if (n + 1 >= sizeof(a->type))
			return fail(r, "attribute type '%.40s...' is too long", r->s - n);
		a->type[n++] = *r->s++;
	}
	a->type[n] = '\0';
	while (*r->s == ' ')
		r->s++;
	if (n == 0 || *r->s != '=')
		return fail(r, "expected TYPE=value at '%.40s' (e.g. CN=name,O=org or /O=org/CN=name)", r->s);
	r->s++;
	return 0;
}

/* One value up to its separator. `keep` marks the end of what must not be
 * trimmed (escaped or quoted characters, trailing blanks among them). */
static int read_value(struct dn_reader *r, struct ava *a)
{
	size_t keep = 0;
	bool quoted = false;

	a->len = 0;
	while (!r->oneline && *r->s == ' ')
		r->s++;
	if (!r->oneline && *r->s == '#')
		return fail(r, "'%.40s': hex-encoded (#...) values are not supported; type the text", r->s);
	if (!r->oneline && *r->s == '"') {
		quoted = true;
		r->s++;
	}
	for (;;) {
		char c = *r->s;
		int hi, lo;

		if (quoted && c == '"') {
			r->s++;
			quoted = false;
			keep = a->len;
			while (*r->s == ' ')
				r->s++;
			if (!ends_value(r, *r->s))
				return fail(r, "unexpected text after a quoted value: '%.40s'", r->s);
			break;
		}
		if (c == '\0' && quoted)
			return fail(r, "%s", "a quoted value is not closed");
		if (!quoted && ends_value(r, c))
			break;
		if (a->len + 1 >= sizeof(a->value))
			return fail(r, "%s", "a value is longer than 1023 bytes");
		if (c == '\\') {
			if ((hi = hexval(r->s[1])) >= 0 && (lo = hexval(r->s[2])) >= 0) {
				a->value[a->len++] = (unsigned char)(hi << 4 | lo);
				r->s += 3;
			} else if (r->s[1] != '\0') {
				a->value[a->len++] = (unsigned char)r->s[1];
				r->s += 2;
			} else {
				return fail(r, "%s", "a '\\' ends the text");
			}
			keep = a->len;
			continue;
		}
		a->value[a->len++] = (unsigned char)c;
		r->s++;
		if (c != ' ' || quoted)
			keep = a->len;
	}
	if (!r->oneline)
		a->len = keep; /* RFC 2253: unescaped trailing blanks are not part of the value */
	if (memchr(a->value, '\0', a->len))
		return fail(r, "%s", "a value holds a NUL byte");
	return 0;
}

static int read_all(struct dn_reader *r)
{
	bool joined = false;

	if (r->oneline)
		r->s++; /* the leading '/' */
	for (;;) {
		if (r->n == MAX_AVAS)
			return fail(r, "%s", "more than 32 attributes");
		struct ava *a = &r->v[r->n];
		GUARD(read_type(r, a));
		GUARD(read_value(r, a));
		a->joined = joined;
		r->n++;
		if (*r->s == '\0')
			return 0;
		joined = *r->s == '+';
		r->s++;
		if (*r->s == '\0')
			return fail(r, "%s", "the text ends with a separator");
	}
}

/* OpenSSL's names are case-sensitive ("CN", "emailAddress"); RFC 4514's
 * are not: try as typed, then upper-case ("cn", "ou", "dc"). */
static ASN1_OBJECT *type_object(const char *type)
{
	char up[MAX_TYPE];
	ASN1_OBJECT *o = OBJ_txt2obj(type, 0);
	size_t i;

	if (o)
		return o;
	for (i = 0; type[i] && i + 1 < sizeof(up); i++)
		up[i] = (char)toupper((unsigned char)type[i]);
	up[i] = '\0';
	return OBJ_txt2obj(up, 0);
}

static int add_ava(X509_NAME *name, const struct ava *a, bool first_of_rdn, struct dn_reader *r)
{
	ASN1_OBJECT *o = type_object(a->type);
	int ok;

	if (!o)
		return fail(r, "unknown attribute type '%s' (use CN, O, OU, C, L, ST, DC, ... or an OID)",
			    a->type);
	ok = X509_NAME_add_entry_by_OBJ(name, o, MBSTRING_UTF8, a->value, (int)a->len, -1,
					first_of_rdn ? 0 : -1);
	ASN1_OBJECT_free(o);
	if (ok != 1)
		return fail(r, "'%s=...': not a valid value for this attribute (UTF-8, and the "
			    "length X.509 allows: C is two letters)", a->type);
	return 0;
}

X509_NAME *cert_name_parse(const char *text, char *why, size_t wl)
{
	struct dn_reader *r = calloc(1, sizeof(*r));
	X509_NAME *name = NULL;
	int rc = -ENOMEM;

	if (!r || !text) {
		snprintf(why, wl, "%s", r ? "no name given" : "out of memory");
		free(r);
		return NULL;
	}
	r->s = text;
	r->oneline = text[0] == '/';
	r->why = why;
	r->wl = wl;
	GUARD_GOTO(read_all(r), rc, out);
	ENSURE_GOTO((name = X509_NAME_new()) != NULL, rc, ENOMEM, out);
	/* RFC 2253 lists the most specific RDN first, DER the root first;
	 * the one-line form is in DER order already. Attributes of one RDN
	 * keep their order either way. */
	for (size_t done = 0; done < r->n;) {
		size_t start, end; /* the next RDN to add: attributes [start, end) */

		if (r->oneline) {
			start = done;
			for (end = start + 1; end < r->n && r->v[end].joined; end++)
				;
		} else {
			end = r->n - done;
			for (start = end - 1; start > 0 && r->v[start].joined; start--)
				;
		}
		for (size_t i = start; i < end; i++)
			GUARD_GOTO(add_ava(name, &r->v[i], i == start, r), rc, out);
		done += end - start;
	}
	/* Canonical form computed now, while the name has one owner: later
	 * comparisons from several threads only read it. */
	ENSURE_GOTO(i2d_X509_NAME(name, NULL) > 0, rc, ENOMEM, out);
	rc = 0;
out:
	if (rc == -ENOMEM)
		snprintf(why, wl, "out of memory");
	if (rc < 0) {
		X509_NAME_free(name);
		name = NULL;
	}
	free(r);
	return name;
}

bool cert_name_equal(const X509_NAME *want, const X509_NAME *name)
{
	return want && name && X509_NAME_cmp(want, name) == 0;
}
