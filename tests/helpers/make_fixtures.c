/*
 * make_fixtures.c: `make_fixtures DIR [--stamp FILE]`, every certificate
 * the tests use (the set is specified in tests/fixtures.md), made by the
 * build's `fixtures` target. A test helper, never installed: mtlsctl has
 * no command that makes a bad certificate.
 *
 * It links mtlsctl's own PKI library and calls the same operations as
 * `mtlsctl pki init / issue / revoke / crl`, with the test-only fields set
 * (back-dated validity, wrong EKU, RSA-1024, CA-as-leaf, a 4-tier
 * hierarchy, a forced serial). DIR is emptied and rebuilt on every run; to
 * never empty a directory it did not create, it refuses a non-empty DIR
 * without its marker file (the name it had as `mtlsctl pki fixtures`, so
 * existing build directories are still recognised).
 */
#include <getopt.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "fsutil.h"
#include "log.h"
#include "pki_ca.h"
#include "pki_ops.h"
#include "pki_policy.h"

#define FIXTURE_MARKER ".mtlsctl-fixtures"
#define FIXTURE_PASS_ENV "MTLS_FIXTURE_PASS"

struct fixture_pki {
	const char *dir;
	const char *name;
	enum pki_key_type key;
	size_t tiers;
};

static const struct fixture_pki fixture_pkis[] = {
	{ "pki", "partner", PKI_KEY_EC_P256, 3 },
	{ "pki-rsa", "partner-rsa", PKI_KEY_RSA_3072, 3 },
	{ "partner2-pki", "partner2", PKI_KEY_EC_P256, 3 },
	{ "unknown-pki", "unknown", PKI_KEY_EC_P256, 3 },
	{ "deep-pki", "deep", PKI_KEY_EC_P256, 4 },
};

enum fixture_twist { TWIST_NONE = 0, TWIST_EXPIRED, TWIST_NOTYET, TWIST_SERVER_EKU, TWIST_CA_LEAF };

struct fixture_leaf {
	const char *name;
	const char *pki;
	enum pki_profile_kind kind;
	enum pki_key_type key;
	const char *dns[2], *ip[2], *uri[1];
	enum fixture_twist twist;
};

#define CLIENT(n, p, k) .name = n, .pki = p, .kind = PKI_PROFILE_CLIENT, .key = PKI_KEY_##k
#define PROD_URI(n) .uri = { "spiffe://partner.example/prod/" n }

/* Negative fixtures carry an otherwise acceptable identity (a prod SPIFFE
 * ID) so each fails for exactly one reason. */
static const struct fixture_leaf fixture_leaves[] = {
	{ .name = "server", .pki = "pki", .kind = PKI_PROFILE_SERVER, .key = PKI_KEY_EC_P256,
	  .dns = { "localhost" }, .ip = { "127.0.0.1", "::1" } },
	{ .name = "server-rsa", .pki = "pki-rsa", .kind = PKI_PROFILE_SERVER,
	  .key = PKI_KEY_RSA_2048, .dns = { "localhost" }, .ip = { "127.0.0.1", "::1" } },
	{ CLIENT("client-ec", "pki", EC_P256), .dns = { "app1.partner.example" },
	  .uri = { "spiffe://partner.example/prod/app1" } },
	{ CLIENT("client-rsa", "pki", RSA_2048), .uri = { "spiffe://partner.example/prod/app2" } },
	{ CLIENT("client-expired", "pki", EC_P256), PROD_URI("client-expired"),
	  .twist = TWIST_EXPIRED },
	{ CLIENT("client-notyet", "pki", EC_P256), PROD_URI("client-notyet"),
	  .twist = TWIST_NOTYET },
	{ CLIENT("client-revoked", "pki", EC_P256), PROD_URI("client-revoked") },
	{ CLIENT("client-servereku", "pki", EC_P256), PROD_URI("client-servereku"),
	  .twist = TWIST_SERVER_EKU },
	{ CLIENT("client-badsan", "pki", EC_P256), .dns = { "app9.dev.partner.example" },
	  .uri = { "spiffe://partner.example/dev/app9" } },
	{ CLIENT("client-rsa1024", "pki", RSA_1024), PROD_URI("client-rsa1024") },
	{ CLIENT("client-cacert", "pki", EC_P256), PROD_URI("client-cacert"),
	  .twist = TWIST_CA_LEAF },
	{ CLIENT("client-deep", "deep-pki", EC_P256), PROD_URI("client-deep") },
	{ CLIENT("client-unknownca", "unknown-pki", EC_P256), PROD_URI("client-unknownca") },
	{ CLIENT("client-partner2", "partner2-pki", EC_P256),
	  .uri = { "spiffe://partner2.example/svc/a" } },
};

static void copy_names(struct pki_names *dst, const char *const *src, size_t max)
{
	for (size_t i = 0; i < max && src[i]; i++)
		dst->v[dst->n++] = src[i];
}

static void apply_twist(struct pki_issue_opts *o, enum fixture_twist twist)
{
	switch (twist) {
	case TWIST_EXPIRED:
		o->test_validity = true;
		o->test_not_before = -30 * PKI_DAY;
		o->test_not_after = -1 * PKI_DAY;
		break;
	case TWIST_NOTYET:
		o->test_validity = true;
		o->test_not_before = 1 * PKI_DAY;
		o->test_not_after = 30 * PKI_DAY;
		break;
	case TWIST_SERVER_EKU:
		o->test_eku = PKI_EKU_SERVER;
		break;
	case TWIST_CA_LEAF:
		o->test_ca_leaf = true;
		break;
	case TWIST_NONE:
	default:
		break;
	}
}

static int issue_fixture(const char *root, const struct fixture_leaf *f,
			 const struct pki_serial *forced, struct pki_serial *serial,
			 char *err, size_t errlen)
{
	char pki_dir[PKI_PATH_MAX], out_dir[PKI_PATH_MAX];
	struct pki_issue_opts o = { .kind = f->kind, .name = f->name, .key = f->key };
	GUARD(fs_path(pki_dir, sizeof(pki_dir), "%s/%s", root, f->pki));
	GUARD(fs_path(out_dir, sizeof(out_dir), "%s/%s", root, f->name));
	o.dir = pki_dir;
	o.out_dir = out_dir;
	copy_names(&o.dns, f->dns, ARRAY_SIZE(f->dns));
	copy_names(&o.ip, f->ip, ARRAY_SIZE(f->ip));
	copy_names(&o.uri, f->uri, ARRAY_SIZE(f->uri));
	apply_twist(&o, f->twist);
	if (forced) {
		o.test_serial_set = true;
		o.test_serial = *forced;
	}
	return pki_issue_run(&o, serial, err, errlen);
}

/* Empty DIR, but only if it is ours (marker) or already empty. */
static int prepare_dir(const char *dir, char *err, size_t errlen)
{
	char marker[PKI_PATH_MAX];
	GUARD(fs_path(marker, sizeof(marker), "%s/%s", dir, FIXTURE_MARKER));
	int rc = fs_mkdir_p(dir, 0755);
	if (rc == 0 && fs_exists(marker)) {
		rc = fs_empty_dir(dir);
	} else if (rc == 0 && !fs_dir_is_empty(dir)) {
		snprintf(err, errlen, "%s: not empty and not made by make_fixtures; refusing to "
			 "empty it", dir);
		return -ENOTEMPTY;
	}
	if (rc == 0)
		rc = fs_write_atomic(marker, "", 0, 0644);
	if (rc < 0)
		snprintf(err, errlen, "%s: cannot prepare: %s", dir, strerror(-rc));
	return rc;
}

static int make_hierarchies(const char *root, const char *pass, char *err, size_t errlen)
{
	char dir[PKI_PATH_MAX];
	for (size_t i = 0; i < ARRAY_SIZE(fixture_pkis); i++) {
		const struct fixture_pki *f = &fixture_pkis[i];
		struct pki_init_opts o = {
			.dir = dir, .name = f->name, .key = f->key, .pass = pass, .tiers = f->tiers,
		};
		GUARD(fs_path(dir, sizeof(dir), "%s/%s", root, f->dir));
		GUARD(pki_init_run(&o, err, errlen));
	}
	return 0;
}

/* client-ec and client-partner2 share a serial (per-issuer accounting). */
static int make_leaves(const char *root, struct pki_serial *revoked, char *err, size_t errlen)
{
	struct pki_serial serial, shared = { .len = 0 };
	for (size_t i = 0; i < ARRAY_SIZE(fixture_leaves); i++) {
		const struct fixture_leaf *f = &fixture_leaves[i];
		bool share = strcmp(f->name, "client-partner2") == 0;
		GUARD(issue_fixture(root, f, share ? &shared : NULL, &serial, err, errlen));
		if (strcmp(f->name, "client-ec") == 0)
			shared = serial;
		if (strcmp(f->name, "client-revoked") == 0)
			*revoked = serial;
	}
	return 0;
}

static int make_fixtures(const char *root, const char *pass, char *err, size_t errlen)
{
	char pki_dir[PKI_PATH_MAX];
	struct pki_serial revoked;
	GUARD(prepare_dir(root, err, errlen));
	GUARD(make_hierarchies(root, pass, err, errlen));
	GUARD(make_leaves(root, &revoked, err, errlen));
	GUARD(fs_path(pki_dir, sizeof(pki_dir), "%s/pki", root));
	GUARD(pki_revoke_run(pki_dir, &revoked, CRL_REASON_KEY_COMPROMISE, NULL, err, errlen));
	return pki_crl_run(pki_dir, pass, NULL, PKI_CRL_NEXT_UPDATE_DAYS, NULL, err, errlen);
}

static const struct option fixtures_options[] = {
	{ "stamp", required_argument, NULL, 's' },
	{ NULL, 0, NULL, 0 },
};

static int usage(void)
{
	fprintf(stderr, "usage: make_fixtures DIR [--stamp FILE]\n"
			"  DIR           emptied and rebuilt (only if it is empty or was made here)\n"
			"  --stamp FILE  written last, when every fixture is in place\n"
			"  The CA passphrase comes from " FIXTURE_PASS_ENV ".\n");
	return CTL_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	const char *stamp = NULL;
	char err[1024] = "";
	int c;

	log_set_ident("make_fixtures");
	ctl_protect_secrets();

	while ((c = getopt_long(argc, argv, "", fixtures_options, NULL)) != -1) {
		if (c != 's')
			return usage();
		stamp = optarg;
	}
	if (optind + 1 != argc)
		return usage();
	const char *pass = getenv(FIXTURE_PASS_ENV);
	if (!pass || strlen(pass) < PKI_PASS_MIN_LEN) {
		log_err("set %s to the fixture CA passphrase (at least %d characters)",
			FIXTURE_PASS_ENV, PKI_PASS_MIN_LEN);
		return CTL_EXIT_USAGE;
	}
	ctl_set_test_mode(true);
	fs_set_durable(false);
	if (make_fixtures(argv[optind], pass, err, sizeof(err)) < 0) {
		log_err("fixtures: %s", err);
		return CTL_EXIT_USAGE;
	}
	/* Last: the stamp tells the build the whole set is there. */
	if (stamp && fs_write_atomic(stamp, "ok\n", 3, 0644) < 0) {
		log_err("%s: cannot write the stamp file", stamp);
		return CTL_EXIT_USAGE;
	}
	return CTL_EXIT_OK;
}
