/*
 * fuzz_cert_policy.c: libFuzzer target for everything mtlsd derives from an
 * attacker's certificate: certinfo (identity, SANs as JSON), the partner
 * policy (EKU, key, allow-list matching), the JSON string escaper and the
 * audit line.
 *
 * The input is a DER certificate. Properties: nothing crashes or leaks;
 * every JSON string produced is valid UTF-8 without raw control bytes.
 * Build and run with tests/fuzz/run.sh.
 */
#include <assert.h>
#include <openssl/x509.h>
#include <string.h>

#include "fuzz.h"
#include "audit.h"
#include "certinfo.h"
#include "safetext.h"
#include "verify.h"

/* The escaper's output must be plain JSON: no byte below 0x20, and every
 * byte >= 0x80 part of a well-formed UTF-8 sequence (checked loosely by
 * lead/continuation structure; the escaper's own validator is stricter). */
static void assert_clean_json(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		assert(c >= 0x20);
		if (c >= 0x80) {
			size_t k = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;

			assert(c >= 0xc2 && c <= 0xf4 && i + k < len);
			for (size_t j = 1; j <= k; j++)
				assert(((unsigned char)s[i + j] & 0xc0) == 0x80);
			i += k;
		}
	}
}

static struct partner_policy policy;
static int policy_ready;

static void policy_init(void)
{
	static char *dns[] = { "*.partner.example", "app1.partner.example" };
	static char *uri[] = { "spiffe://partner.example/prod/*", "spiffe://partner.example/dev/**" };
	static char *cn[] = { "client-*" };
	struct cfg_partner cp = {
		.name = "fuzz",
		.allow_dns = { .v = dns, .n = 2 }, .allow_uri = { .v = uri, .n = 2 },
		.allow_cn = { .v = cn, .n = 1 }, .allow_ou = { .v = cn, .n = 1 },
	};
	char err[256];

	assert(partner_policy_compile(&cp, &policy, err, sizeof(err)) == 0);
	policy_ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *p = data;
	X509 *x;
	struct cert_identity id;
	char buf[8192], detail[256];
	size_t off = 0;
	int n;

	if (!policy_ready)
		policy_init();
	/* The escaper alone, on the raw input. */
	if (json_put_string(buf, sizeof(buf), &off, (const char *)data, size) == 0)
		assert_clean_json(buf, off);

	x = d2i_X509(NULL, &p, (long)size);
	if (!x)
		return 0;
	if (certinfo_from_x509(x, &id) == 0) {
		assert(strlen(id.x5t_s256) == 43);
		off = 0;
		if (json_put_string(buf, sizeof(buf), &off, id.subject, strlen(id.subject)) == 0)
			assert_clean_json(buf, off);
	}
	n = certinfo_sans_json(x, buf, sizeof(buf));
	if (n > 0)
		assert_clean_json(buf, (size_t)n);
	/* The identity the allow-list vouches for: only ever names the
	 * certificate holds, bounded and NUL-free. */
	struct verified_identity identity = { NULL, NULL };
	if (verify_policy_check(&policy, x, &identity, detail, sizeof(detail)) == HS_OK) {
		assert(!identity.cn || strlen(identity.cn) < 256);
		assert(!identity.spiffe_id || strncmp(identity.spiffe_id, "spiffe://", 9) == 0);
	}
	verified_identity_clear(&identity);

	/* The whole audit line: one line, clean JSON, whatever the cert says. */
	struct audit_event ev = { .outcome = HS_POLICY_DENIED, .reason = detail, .leaf = x,
				  .partner = "fuzz", .tls_version = "TLSv1.3" };
	n = audit_format(&ev, buf, sizeof(buf));
	if (n > 0) {
		assert(buf[n - 1] == '\n' && memchr(buf, '\n', (size_t)n - 1) == NULL);
		assert_clean_json(buf, (size_t)n - 1);
	}
	X509_free(x);
	return 0;
}
