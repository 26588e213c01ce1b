/*
 * cmd_pki_revoke.c: `mtlsctl pki revoke SERIAL --reason R`.
 *
 * Marks the certificate revoked in the record of the CA that issued it
 * (leaves in issuing/, the issuing CA in intermediate/, ...). Publishing is
 * a separate step, `mtlsctl pki crl`, because the root and intermediate CRLs
 * need the offline passphrase and an operator may revoke several
 * certificates before signing once.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "log.h"
#include "pki_ca.h"
#include "pki_ops.h"

/* text as one shell word: bare when it is plain, else in single quotes. */
static void print_shell_word(FILE *out, const char *text)
{
	if (text[0] && strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			  "0123456789/._-+:=@%,") == strlen(text)) {
		fputs(text, out);
		return;
	}
	fputc('\'', out);
	for (const char *p = text; *p; p++)
		if (*p == '\'')
			fputs("'\\''", out);
		else
			fputc(*p, out);
	fputc('\'', out);
}

/*
 * The command that publishes the new CRL, exactly as it runs: the same
 * --dir, and only the CA that issued the certificate (the issuing CA's key
 * needs no passphrase; an offline CA's does).
 */
static void print_publish_hint(FILE *out, const char *dir, const struct pki_hierarchy *h, size_t i)
{
	fputs("publish it: mtlsctl pki crl --dir ", out);
	print_shell_word(out, dir);
	fprintf(out, " --ca %s", h->tier[i].name);
	if (pki_tier_is_offline(h, i))
		fputs("   (the CA key's passphrase in $MTLS_CA_PASS, or add --passphrase-file FILE)", out);
	fputc('\n', out);
}

int pki_revoke_run(const char *dir, const struct pki_serial *serial, int reason, FILE *report,
		   char *err, size_t errlen)
{
	struct pki_hierarchy h;
	char hex[PKI_SERIAL_HEX_MAX + 1], path[PKI_PATH_MAX];
	struct pki_record *r = NULL;
	size_t i;
	int rc;

	pki_serial_format(serial, hex, sizeof(hex));
	GUARD_GOTO(pki_ca_open(dir, &h, err, errlen), rc, out);
	for (i = 0; i < h.n && !r; i++)
		r = pki_index_find(&h.tier[i].idx, serial);
	if (!r) {
		snprintf(err, errlen, "serial %s: not issued by any CA in %s (check the serial "
			 "with mtlsctl cert inspect)", hex, dir);
		rc = -ENOENT;
		goto out;
	}
	i--;
	if (r->state == PKI_CERT_REVOKED) {
		snprintf(err, errlen, "serial %s: already revoked (%s)", hex,
			 pki_reason_name(r->reason));
		rc = -EALREADY;
		goto out;
	}
	r->state = PKI_CERT_REVOKED;
	r->revoked_at = time(NULL);
	r->reason = reason;
	GUARD_GOTO(pki_tier_path(&h, i, "index.txt", path, sizeof(path)), rc, out);
	rc = pki_index_save(path, &h.tier[i].idx);
	if (rc < 0)
		snprintf(err, errlen, "%s: cannot write: %s", path, strerror(-rc));
	else if (report) {
		fprintf(report, "revoked %s (%s), issued by the %s CA\n", hex, r->subject,
			h.tier[i].name);
		print_publish_hint(report, dir, &h, i);
	}
out:
	pki_ca_close(&h);
	return rc;
}

static const struct option revoke_options[] = {
	{ "dir", required_argument, NULL, 'd' },
	{ "reason", required_argument, NULL, 'r' },
	{ NULL, 0, NULL, 0 },
};

static int run_revoke(int argc, char **argv)
{
	const char *dir = NULL;
	int reason = -1, c;
	char err[1024] = "";
	struct pki_serial serial;

	while ((c = getopt_long(argc, argv, "", revoke_options, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'r':
			reason = pki_reason_from_name(optarg);
			if (reason < 0) {
				log_err("--reason %s: use one of %s", optarg, pki_reason_list());
				return CTL_EXIT_USAGE;
			}
			break;
		default:
			return ctl_usage(&cmd_pki_revoke);
		}
	}
	if (optind + 1 != argc)
		return ctl_usage(&cmd_pki_revoke);
	if (reason < 0) {
		/* The reason is what relying parties act on: never guess it. */
		log_err("--reason is required: one of %s", pki_reason_list());
		return CTL_EXIT_USAGE;
	}
	if (pki_serial_parse(argv[optind], &serial) < 0) {
		log_err("serial '%s': expected hex, with or without colons (4F:A2:...)", argv[optind]);
		return CTL_EXIT_USAGE;
	}
	if (pki_revoke_run(pki_default_dir(dir), &serial, reason, stdout, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return CTL_EXIT_USAGE;
	}
	return CTL_EXIT_OK;
}

const struct ctl_command cmd_pki_revoke = {
	.group = "pki",
	.name = "revoke",
	.args = "SERIAL --reason REASON [--dir DIR]",
	.summary = "record a certificate as revoked (then run pki crl to publish)",
	.help = "  SERIAL           as printed by pki issue, with or without colons\n"
		"  --reason REASON  keyCompromise, superseded, cessationOfOperation,\n"
		"                   affiliationChanged, privilegeWithdrawn, cACompromise,\n"
		"                   aACompromise or unspecified\n"
		"  --dir DIR        the CA hierarchy (default $MTLS_PKI_DIR, else .)\n",
	.run = run_revoke,
};
