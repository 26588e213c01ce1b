/*
 * cmd_pki_init.c: `mtlsctl pki init DIR`, a new CA hierarchy.
 *
 * Root (20 years, pathlen:2) -> intermediate (10 years, pathlen:1) ->
 * issuing CA (2 years, pathlen:0). Every key and certificate is made in
 * memory first; then the keys, certificates, records, first CRLs, chain
 * files and trust package are written.
 */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cert_describe.h"
#include "cmd.h"
#include "fsutil.h"
#include "log.h"
#include "pki_ca.h"
#include "pki_crl.h"
#include "pki_ops.h"
#include "pki_policy.h"

#define PKI_ORG_MAX 40

static int tier_days(size_t i, size_t n)
{
	if (i == 0)
		return PKI_ROOT_DAYS;
	return i + 1 == n ? PKI_ISSUING_DAYS : PKI_INTERMEDIATE_DAYS;
}

static void tier_cn(const char *org, size_t i, size_t n, char *buf, size_t cap)
{
	if (i == 0)
		snprintf(buf, cap, "%s Root CA", org);
	else if (i + 1 == n)
		snprintf(buf, cap, "%s Issuing CA", org);
	else if (i == 1)
		snprintf(buf, cap, "%s Intermediate CA", org);
	else
		snprintf(buf, cap, "%s Intermediate CA %zu", org, i);
}

/* Certificate of tier i (its key is made), signed by tier i-1 (the root by
 * itself). */
static int make_tier(struct pki_hierarchy *h, size_t i, const struct pki_init_opts *o,
		     const char *org, time_t now, char *err, size_t errlen)
{
	struct pki_tier *t = &h->tier[i];
	char cn[300];
	tier_cn(org, i, h->n, cn, sizeof(cn));
	struct pki_cert_profile p = {
		.kind = PKI_PROFILE_CA,
		.pathlen = (int)(h->n - 1 - i),
		.cn = cn,
		.org = org,
		.not_before = now - PKI_BACKDATE_SECONDS,
		.not_after = now + tier_days(i, h->n) * PKI_DAY,
	};
	pki_tier_name(i, h->n, t->name, sizeof(t->name));
	GUARD(fs_path(t->dir, sizeof(t->dir), "%s/%s", h->dir, t->name));
	GUARD(pki_serial_random(&p.serial));
	X509 *issuer = i ? h->tier[i - 1].cert : NULL;
	EVP_PKEY *issuer_key = i ? h->tier[i - 1].key : t->key;
	GUARD(pki_cert_build(&p, t->key, issuer, issuer_key, &t->cert, err, errlen));
	if (i > 0) {
		char subject[PKI_INDEX_SUBJECT_MAX];
		cert_name_desc(X509_get_subject_name(t->cert), subject, sizeof(subject));
		GUARD(pki_index_add(&h->tier[i - 1].idx, &p.serial, p.not_after, subject));
	}
	return 0;
}

static int write_tier(const struct pki_hierarchy *h, size_t i, const char *pass, char *path,
		      size_t cap)
{
	const struct pki_tier *t = &h->tier[i];
	GUARD(fs_path(path, cap, "%s", t->dir));
	GUARD(fs_mkdir_p(path, 0700));
	GUARD(pki_tier_path(h, i, "ca.key", path, cap));
	GUARD(pki_key_save(path, t->key, pki_tier_is_offline(h, i) ? pass : NULL));
	GUARD(pki_tier_path(h, i, "ca.crt", path, cap));
	return pki_certs_save(path, &t->cert, 1);
}

static int write_tiers(const struct pki_hierarchy *h, const char *pass, char *err, size_t errlen)
{
	char path[PKI_PATH_MAX] = "";
	for (size_t i = 0; i < h->n; i++) {
		int rc = write_tier(h, i, pass, path, sizeof(path));
		if (rc < 0) {
			snprintf(err, errlen, "%s: cannot write: %s", path, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* Everything of the hierarchy, written under staging. */
static int build_hierarchy(const struct pki_init_opts *o, const char *staging, const char *org,
			   char *err, size_t errlen)
{
	struct pki_hierarchy h = { 0 };
	time_t now = time(NULL);
	int rc = 0;

	GUARD(fs_path(h.dir, sizeof(h.dir), "%s", staging));
	h.n = o->tiers;
	EVP_PKEY *keys[PKI_MAX_TIERS];
	if (pki_key_generate_many(o->key, keys, h.n) < 0) {
		snprintf(err, errlen, "cannot generate %s keys", pki_key_type_name(o->key));
		return -EIO;
	}
	for (size_t i = 0; i < h.n; i++)
		h.tier[i].key = keys[i];
	for (size_t i = 0; i < h.n; i++)
		GUARD_GOTO(make_tier(&h, i, o, org, now, err, errlen), rc, out);
	GUARD_GOTO(write_tiers(&h, o->pass, err, errlen), rc, out);
	rc = pki_crl_refresh(&h, PKI_CRL_NEXT_UPDATE_DAYS, err, errlen);
out:
	pki_ca_close(&h);
	return rc;
}

/* The name goes into every CA's CN ("NAME Intermediate CA 2"), which
 * X.509 caps at 64 characters. */
static int check_org(const char *org, char *err, size_t errlen)
{
	size_t len = strlen(org);
	bool printable = len > 0 && len <= PKI_ORG_MAX;
	for (const char *c = org; printable && *c; c++)
		printable = (unsigned char)*c >= 0x20 && *c != 0x7f;
	if (!printable) {
		snprintf(err, errlen, "--name '%s': use 1 to %d printable characters", org,
			 PKI_ORG_MAX);
		return -EINVAL;
	}
	return 0;
}

static int check_target(const char *target, char *err, size_t errlen)
{
	char path[PKI_PATH_MAX];
	GUARD(fs_path(path, sizeof(path), "%s/root/ca.crt", target));
	if (fs_exists(path)) {
		snprintf(err, errlen, "%s: already holds a CA hierarchy", target);
		return -EEXIST;
	}
	if (!fs_dir_is_empty(target)) {
		snprintf(err, errlen, "%s: not empty; pki init needs a new or empty directory", target);
		return -ENOTEMPTY;
	}
	return 0;
}

/*
 * The hierarchy is built in a sibling staging directory and renamed into
 * place (rename replaces an empty directory), so an init that fails or is
 * interrupted never leaves a half-made CA where operators would find it.
 */
int pki_init_run(const struct pki_init_opts *o, char *err, size_t errlen)
{
	char target[PKI_PATH_MAX], staging[PKI_PATH_MAX + 16], parent[PKI_PATH_MAX], org[128];
	int rc;

	ENSURE(o->tiers >= 3 && o->tiers <= PKI_MAX_TIERS, EINVAL);
	GUARD(fs_path(target, sizeof(target), "%s", o->dir));
	for (size_t len = strlen(target); len > 1 && target[len - 1] == '/'; len--)
		target[len - 1] = '\0';
	GUARD(check_target(target, err, errlen));
	GUARD(fs_path(org, sizeof(org), "%s", o->name ? o->name : basename(strdupa(target))));
	GUARD(check_org(org, err, errlen));
	GUARD(fs_path(parent, sizeof(parent), "%s", dirname(strdupa(target))));
	GUARD(fs_path(staging, sizeof(staging), "%s.init-XXXXXX", target));
	if (fs_mkdir_p(parent, 0755) < 0 || !mkdtemp(staging)) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot create: %s", staging, strerror(errno));
		return rc;
	}
	rc = build_hierarchy(o, staging, org, err, errlen);
	if (rc == 0 && (chmod(staging, 0755) < 0 || rename(staging, target) < 0)) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot move the new hierarchy into place: %s", target,
			 strerror(errno));
	}
	if (rc < 0) {
		if (fs_empty_dir(staging) == 0)
			rmdir(staging);
		if (!*err)
			snprintf(err, errlen, "%s: cannot build the CA hierarchy (%s)", target,
				 strerror(-rc));
		return rc;
	}
	return fs_fsync_dir(parent);
}

static const struct option init_options[] = {
	{ "name", required_argument, NULL, 'n' },
	{ "key", required_argument, NULL, 'k' },
	{ "passphrase-file", required_argument, NULL, 'f' },
	{ "passphrase-env", required_argument, NULL, 'e' },
	{ NULL, 0, NULL, 0 },
};

static int run_init(int argc, char **argv)
{
	struct pki_init_opts o = { .key = PKI_KEY_EC_P256, .tiers = 3 };
	struct pki_pass_source src = { 0 };
	char err[1024] = "";
	char *pass = NULL;
	int c;

	ctl_protect_secrets();

	while ((c = getopt_long(argc, argv, "", init_options, NULL)) != -1) {
		switch (c) {
		case 'n':
			o.name = optarg;
			break;
		case 'k':
			c = pki_key_type_from_name(optarg);
			if (c != PKI_KEY_EC_P256 && c != PKI_KEY_EC_P384 && c != PKI_KEY_RSA_3072 &&
			    c != PKI_KEY_RSA_4096) {
				log_err("--key %s: a CA key is ec-p256, ec-p384, rsa-3072 or rsa-4096", optarg);
				return CTL_EXIT_USAGE;
			}
			o.key = (enum pki_key_type)c;
			break;
		case 'f':
			src.file = optarg;
			break;
		case 'e':
			src.env = optarg;
			break;
		default:
			return ctl_usage(&cmd_pki_init);
		}
	}
	if (optind + 1 != argc)
		return ctl_usage(&cmd_pki_init);
	o.dir = argv[optind];
	if (pki_pass_read(&src, &pass, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return CTL_EXIT_USAGE;
	}
	o.pass = pass;
	int rc = pki_init_run(&o, err, sizeof(err));
	pki_pass_free(pass);
	if (rc < 0) {
		log_err("%s", err);
		return CTL_EXIT_USAGE;
	}
	printf("CA hierarchy created in %s\n"
	       "give %s/trust-package/ to your partners and read them the fingerprints in "
	       "POLICY.txt\n", o.dir, o.dir);
	return CTL_EXIT_OK;
}

const struct ctl_command cmd_pki_init = {
	.group = "pki",
	.name = "init",
	.args = "DIR [--name NAME] [--key ec-p256|ec-p384|rsa-3072|rsa-4096] "
		"[--passphrase-file FILE | --passphrase-env VAR]",
	.summary = "create a root, intermediate and issuing CA in DIR",
	.help = "  --name NAME             organisation name in the CA subjects (default: DIR's name)\n"
		"  --key TYPE              CA key type (default ec-p256)\n"
		"  --passphrase-file FILE  passphrase for the root and intermediate keys\n"
		"                          (first line; the file must be mode 0600)\n"
		"  --passphrase-env VAR    take it from the environment variable VAR\n"
		"                          (default: MTLS_CA_PASS)\n",
	.run = run_init,
};
