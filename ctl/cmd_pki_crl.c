/*
 * cmd_pki_crl.c: `mtlsctl pki crl`, sign fresh CRLs and republish.
 *
 * By default every CA signs a new CRL, which needs the offline passphrase.
 * `--ca issuing` refreshes only the issuing CA's CRL (the one that revokes
 * leaves and expires soonest) with its online key, for a timer job; `--ca
 * root` or `--ca intermediate` refresh one offline CA's CRL.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "log.h"
#include "pki_ca.h"
#include "pki_crl.h"
#include "pki_ops.h"
#include "pki_policy.h"

static int find_tier(const struct pki_hierarchy *h, const char *name, size_t *out, char *err,
		     size_t errlen)
{
	char names[256] = "";
	for (size_t i = 0; i < h->n; i++) {
		if (strcmp(h->tier[i].name, name) == 0) {
			*out = i;
			return 0;
		}
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
			 i ? ", " : "", h->tier[i].name);
	}
	snprintf(err, errlen, "--ca %s: this hierarchy's CAs are %s", name, names);
	return -ENOENT;
}

int pki_crl_run(const char *dir, const char *pass, const char *only, int next_update_days,
		FILE *report, char *err, size_t errlen)
{
	struct pki_hierarchy h;
	size_t first = 0, last;
	int rc;

	GUARD_GOTO(pki_ca_open(dir, &h, err, errlen), rc, out);
	last = h.n - 1;
	if (only) {
		GUARD_GOTO(find_tier(&h, only, &first, err, errlen), rc, out);
		last = first;
	}
	for (size_t i = first; i <= last; i++)
		GUARD_GOTO(pki_ca_load_key(&h, i, pass, err, errlen), rc, out);
	GUARD_GOTO(pki_crl_refresh(&h, next_update_days, err, errlen), rc, out);
	for (size_t i = 0; report && i < h.n; i++)
		if (h.tier[i].key)
			fprintf(report, "%s: CRL number %llu\n", h.tier[i].name,
			       (unsigned long long)h.tier[i].idx.crl_number);
out:
	pki_ca_close(&h);
	return rc;
}

static const struct option crl_options[] = {
	{ "dir", required_argument, NULL, 'd' },
	{ "ca", required_argument, NULL, 'c' },
	{ "next-update-days", required_argument, NULL, 'n' },
	{ "passphrase-file", required_argument, NULL, 'f' },
	{ "passphrase-env", required_argument, NULL, 'e' },
	{ NULL, 0, NULL, 0 },
};

static int run_crl(int argc, char **argv)
{
	const char *dir = NULL;
	struct pki_pass_source src = { 0 };
	const char *only = NULL;
	int days = PKI_CRL_NEXT_UPDATE_DAYS, c;
	char err[1024] = "", *pass = NULL, *end;

	ctl_protect_secrets();

	while ((c = getopt_long(argc, argv, "", crl_options, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'c':
			only = strcmp(optarg, "all") == 0 ? NULL : optarg;
			break;
		case 'n':
			days = (int)strtol(optarg, &end, 10);
			if (*end || end == optarg || days < 1 || days > 366) {
				log_err("--next-update-days %s: expected 1..366", optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		case 'f':
			src.file = optarg;
			break;
		case 'e':
			src.env = optarg;
			break;
		default:
			return ctl_usage(&cmd_pki_crl);
		}
	}
	if (optind != argc)
		return ctl_usage(&cmd_pki_crl);
	bool online_only = only && strcmp(only, "issuing") == 0;
	if (!online_only && pki_pass_read(&src, &pass, err, sizeof(err)) < 0) {
		log_err("%s (or give --ca issuing to refresh only the issuing CA's CRL)", err);
		return CTL_EXIT_USAGE;
	}
	int rc = pki_crl_run(pki_default_dir(dir), pass, only, days, stdout, err,
			     sizeof(err));
	pki_pass_free(pass);
	if (rc < 0) {
		log_err("%s", err);
		return CTL_EXIT_USAGE;
	}
	return CTL_EXIT_OK;
}

const struct ctl_command cmd_pki_crl = {
	.group = "pki",
	.name = "crl",
	.args = "[--dir DIR] [--ca all|issuing|intermediate|root] [--next-update-days N] "
		"[--passphrase-file FILE | --passphrase-env VAR]",
	.summary = "sign new CRLs and rewrite crls.pem and trust-package/",
	.help = "  --dir DIR               the CA hierarchy (default $MTLS_PKI_DIR, else .)\n"
		"  --ca issuing            only the issuing CA's CRL (no passphrase needed)\n"
		"  --ca intermediate|root  only that CA's CRL (default: all)\n"
		"  --next-update-days N    nextUpdate of the new CRLs (default 7)\n"
		"  --passphrase-file FILE  passphrase of the root and intermediate keys\n"
		"  --passphrase-env VAR    (default MTLS_CA_PASS)\n",
	.run = run_crl,
};
