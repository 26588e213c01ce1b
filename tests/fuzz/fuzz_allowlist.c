/*
 * fuzz_allowlist.c: libFuzzer target for the allow-list patterns
 * (dataplane/policy/verify_policy.c).
 *
 * Input: "pattern\0value". The pattern goes through partner_policy_compile
 * as a DNS, URI and CN pattern; when accepted it is matched against value.
 * Properties: a pattern without '*' matches exactly the equal string
 * (case-insensitively for DNS); a wildcard URI match keeps the pattern's
 * scheme://authority and never admits a query, fragment, empty or dot
 * segment; a DNS wildcard match adds exactly one label. Build and run with
 * tests/fuzz/run.sh.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "verify.h"

static bool compiles(int kind, char *pat)
{
	struct cfg_partner cp = { .name = "fuzz" };
	struct cfg_strlist one = { .v = &pat, .n = 1 };
	struct partner_policy pol;
	char err[512];

	if (kind == 0)
		cp.allow_dns = one;
	else if (kind == 1)
		cp.allow_uri = one;
	else
		cp.allow_cn = one;
	if (partner_policy_compile(&cp, &pol, err, sizeof(err)) != 0)
		return false;
	partner_policy_free(&pol);
	return true;
}

static size_t count_char(const char *s, char c)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == c;
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 2);
	char *pat, *val;

	memcpy(buf, data, size);
	buf[size] = buf[size + 1] = '\0';
	pat = buf;
	val = buf + strlen(buf) + 1;
	if (val > buf + size)
		val = buf + size + 1;

	if (compiles(0, pat) && verify_match_dns(pat, val)) {
		if (!strchr(pat, '*'))
			assert(strcasecmp(pat, val) == 0);
		else
			assert(count_char(val, '.') == count_char(pat, '.') && !strchr(val, '*'));
	}
	if (compiles(1, pat) && verify_match_uri(pat, val)) {
		if (!strchr(pat, '*')) {
			assert(strcmp(pat, val) == 0);
		} else {
			const char *auth_end = strchr(strstr(pat, "://") + 3, '/');
			const char *path = val + (auth_end - pat);
			size_t plen = strlen(path);

			/* Same scheme://authority, then a clean path. */
			assert(strncmp(pat, val, (size_t)(auth_end - pat) + 1) == 0);
			assert(!strpbrk(val, "?#"));
			assert(!strstr(path, "//") && !strstr(path, "/./") && !strstr(path, "/../"));
			assert(plen > 1 && path[plen - 1] != '/');
			assert(!(plen >= 2 && strcmp(path + plen - 2, "/.") == 0));
			assert(!(plen >= 3 && strcmp(path + plen - 3, "/..") == 0));
		}
	}
	if (compiles(2, pat) && !strchr(pat, '*'))
		assert(verify_match_glob(pat, val) == (strcmp(pat, val) == 0));
	free(buf);
	return 0;
}
