/*
 * spiffe_id.c: SPIFFE ID validation (spiffe_id.h). Pure string rules, no
 * allocation; every branch is a row of tests/unit/test_spiffe_id.c.
 */
#include "spiffe_id.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#define SCHEME "spiffe://"
#define SCHEME_LEN 9

static bool td_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static bool path_char(char c)
{
	return td_char(c) || (c >= 'A' && c <= 'Z');
}

static const char *trust_domain_problem(const char *td, size_t len)
{
	if (len == 0)
		return "the trust domain is empty (spiffe://trust.domain/path)";
	if (len > SPIFFE_TRUST_DOMAIN_MAX)
		return "the trust domain is longer than 255 characters";
	for (size_t i = 0; i < len; i++) {
		char c = td[i];

		if (td_char(c))
			continue;
		if (c >= 'A' && c <= 'Z')
			return "the trust domain must be lower case";
		if (c == ':')
			return "a trust domain has no port";
		if (c == '@')
			return "a trust domain has no user info";
		if (c == '*')
			return "'*' is not allowed in the trust domain (it must match exactly)";
		return "the trust domain may only hold a-z 0-9 '.' '-' '_'";
	}
	return NULL;
}

static const char *segment_problem(const char *seg, size_t len, bool last, unsigned flags)
{
	bool pattern = flags & SPIFFE_ID_PATTERN;

	if (len == 0)
		return last ? "a SPIFFE ID has no trailing '/'" : "empty path segment ('//')";
	if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
		return "'.' and '..' path segments are not allowed";
	if (pattern && memmem(seg, len, "**", 2) && (len != 2 || !last))
		return "\"**\" is only allowed as the whole last segment (\"/prod/**\")";
	for (size_t i = 0; i < len; i++) {
		char c = seg[i];

		if (path_char(c) || (pattern && c == '*'))
			continue;
		if (c == '%')
			return "percent-encoding is not allowed in a SPIFFE ID";
		if (c == '*')
			return "'*' is only allowed in an allow_uri pattern";
		return "path segments may only hold A-Z a-z 0-9 '.' '-' '_'";
	}
	return NULL;
}

const char *spiffe_id_problem(const char *text, unsigned flags)
{
	const char *td, *path;
	size_t len = strlen(text);

	if (strncmp(text, SCHEME, SCHEME_LEN) != 0) {
		if (strncasecmp(text, "spiffe:", 7) == 0)
			return strncmp(text, "spiffe:", 7) == 0
			       ? "a SPIFFE ID starts with spiffe:// (two slashes, then the trust domain)"
			       : "the scheme must be 'spiffe' in lower case";
		return "the scheme is not 'spiffe' (a SPIFFE ID starts with spiffe://)";
	}
	if (len > SPIFFE_ID_MAX)
		return "longer than 2048 bytes";
	if (strpbrk(text, "?#"))
		return "a query ('?') or fragment ('#') is not allowed";
	td = text + SCHEME_LEN;
	path = strchr(td, '/');
	const char *why = trust_domain_problem(td, path ? (size_t)(path - td) : strlen(td));
	if (why)
		return why;
	if (!path)
		return (flags & SPIFFE_ID_NEED_PATH)
		       ? "a workload's SPIFFE ID needs a path (spiffe://trust.domain/path)" : NULL;
	for (const char *seg = path + 1;; seg++) {
		size_t n = strcspn(seg, "/");

		why = segment_problem(seg, n, seg[n] == '\0', flags);
		if (why)
			return why;
		seg += n;
		if (*seg == '\0')
			return NULL;
	}
}

/* Edit distance of a and "spiffe", capped: only "at most 2" matters. */
static size_t distance_to_spiffe(const char *a, size_t alen)
{
	static const char b[] = "spiffe";
	size_t blen = sizeof(b) - 1;
	size_t prev[sizeof(b)], cur[sizeof(b)];

	if (alen > blen + 2)
		return 3;
	for (size_t j = 0; j <= blen; j++)
		prev[j] = j;
	for (size_t i = 1; i <= alen; i++) {
		char c = a[i - 1] >= 'A' && a[i - 1] <= 'Z' ? (char)(a[i - 1] - 'A' + 'a') : a[i - 1];

		cur[0] = i;
		for (size_t j = 1; j <= blen; j++) {
			size_t sub = prev[j - 1] + (c != b[j - 1]);
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;

			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, sizeof(prev));
	}
	return prev[blen];
}

bool spiffe_id_intended(const char *text)
{
	const char *colon = strchr(text, ':');
	size_t n = colon ? (size_t)(colon - text) : 0;

	/* "spif:" or "spiffy:" are typos; "sip:" (3 edits away) is not ours. */
	return n >= 4 && distance_to_spiffe(text, n) <= 2;
}
