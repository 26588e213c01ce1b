/*
 * cmd_pki_issue.c: `mtlsctl pki issue server|client NAME`.
 *
 * Option parsing only; the work is pki_issue_run (pki_issue.c). Options
 * starting with --test- make deliberately bad certificates for the test
 * suite and are refused unless MTLSCTL_TEST=1.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "log.h"
#include "pki_ops.h"

enum {
	OPT_DIR = 256, OPT_OUT, OPT_KEY, OPT_DAYS, OPT_DNS, OPT_IP, OPT_URI, OPT_LONG, OPT_REPLACE,
	OPT_TEST_NOT_BEFORE, OPT_TEST_NOT_AFTER, OPT_TEST_EKU, OPT_TEST_SERIAL, OPT_TEST_CA_LEAF,
};

static const struct option issue_options[] = {
	{ "dir", required_argument, NULL, OPT_DIR },
	{ "out", required_argument, NULL, OPT_OUT },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "days", required_argument, NULL, OPT_DAYS },
	{ "dns", required_argument, NULL, OPT_DNS },
	{ "ip", required_argument, NULL, OPT_IP },
	{ "uri", required_argument, NULL, OPT_URI },
	{ "allow-long-lifetime", no_argument, NULL, OPT_LONG },
	{ "replace", no_argument, NULL, OPT_REPLACE },
	{ "test-not-before", required_argument, NULL, OPT_TEST_NOT_BEFORE },
	{ "test-not-after", required_argument, NULL, OPT_TEST_NOT_AFTER },
	{ "test-eku", required_argument, NULL, OPT_TEST_EKU },
	{ "test-serial", required_argument, NULL, OPT_TEST_SERIAL },
	{ "test-ca-leaf", no_argument, NULL, OPT_TEST_CA_LEAF },
	{ NULL, 0, NULL, 0 },
};

static int parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		log_err("%s %s: expected a whole number in %ld..%ld", opt, s, lo, hi);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int add_name(struct pki_names *names, const char *opt, const char *v)
{
	char why[300];
	if (names->n == PKI_MAX_SANS) {
		log_err("%s: at most %d names of each kind", opt, PKI_MAX_SANS);
		return -E2BIG;
	}
	if ((strcmp(opt, "--dns") == 0 && !pki_dns_name_ok(v, why, sizeof(why))) ||
	    (strcmp(opt, "--uri") == 0 && !pki_uri_ok(v, why, sizeof(why)))) {
		log_err("%s: %s", opt, why);
		return -EINVAL;
	}
	names->v[names->n++] = v;
	return 0;
}

static int parse_test_option(int c, struct pki_issue_opts *o)
{
	long v;
	if (!ctl_test_mode()) {
		log_err("--test-* options make deliberately invalid certificates and are only "
			"accepted with MTLSCTL_TEST=1");
		return -EPERM;
	}
	switch (c) {
	case OPT_TEST_NOT_BEFORE:
	case OPT_TEST_NOT_AFTER:
		GUARD(parse_long("--test-not-before/after", optarg, -LONG_MAX / 2, LONG_MAX / 2, &v));
		o->test_validity = true;
		*(c == OPT_TEST_NOT_BEFORE ? &o->test_not_before : &o->test_not_after) = v;
		return 0;
	case OPT_TEST_EKU:
		if (strcmp(optarg, "server") == 0)
			o->test_eku = PKI_EKU_SERVER;
		else if (strcmp(optarg, "client") == 0)
			o->test_eku = PKI_EKU_CLIENT;
		else if (strcmp(optarg, "none") == 0)
			o->test_eku = PKI_EKU_NONE;
		else
			return -EINVAL;
		return 0;
	case OPT_TEST_SERIAL:
		o->test_serial_set = true;
		return pki_serial_parse(optarg, &o->test_serial);
	case OPT_TEST_CA_LEAF:
		o->test_ca_leaf = true;
		return 0;
	default:
		return -EINVAL;
	}
}

static int parse_option(int c, struct pki_issue_opts *o)
{
	long v;
	switch (c) {
	case OPT_DIR:
		o->dir = optarg;
		return 0;
	case OPT_OUT:
		o->out_dir = optarg;
		return 0;
	case OPT_KEY:
		c = pki_key_type_from_name(optarg);
		if (c < 0 || (c == PKI_KEY_RSA_1024 && !ctl_test_mode())) {
			log_err("--key %s: use ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096", optarg);
			return -EINVAL;
		}
		o->key = (enum pki_key_type)c;
		return 0;
	case OPT_DAYS:
		GUARD(parse_long("--days", optarg, 1, 36500, &v));
		o->days = (int)v;
		return 0;
	case OPT_DNS:
		return add_name(&o->dns, "--dns", optarg);
	case OPT_IP:
		return add_name(&o->ip, "--ip", optarg);
	case OPT_URI:
		return add_name(&o->uri, "--uri", optarg);
	case OPT_LONG:
		o->allow_long_lifetime = true;
		return 0;
	case OPT_REPLACE:
		o->replace = true;
		return 0;
	case OPT_TEST_NOT_BEFORE:
	case OPT_TEST_NOT_AFTER:
	case OPT_TEST_EKU:
	case OPT_TEST_SERIAL:
	case OPT_TEST_CA_LEAF:
		return parse_test_option(c, o);
	default:
		return -EINVAL;
	}
}

static bool name_ok(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > 64 || name[0] == '.' || name[0] == '-')
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == len;
}

static int run_issue(int argc, char **argv)
{
	struct pki_issue_opts o = { .key = PKI_KEY_EC_P256 };
	const char *dir_flag = NULL;
	char err[1024] = "";
	int c;

	ctl_protect_secrets();

	while ((c = getopt_long(argc, argv, "", issue_options, NULL)) != -1) {
		if (c == '?' || c == ':' || parse_option(c, &o) < 0)
			return ctl_usage(&cmd_pki_issue);
		if (c == OPT_DIR)
			dir_flag = optarg;
	}
	if (optind + 2 != argc)
		return ctl_usage(&cmd_pki_issue);
	if (strcmp(argv[optind], "server") == 0)
		o.kind = PKI_PROFILE_SERVER;
	else if (strcmp(argv[optind], "client") == 0)
		o.kind = PKI_PROFILE_CLIENT;
	else
		return ctl_usage(&cmd_pki_issue);
	o.name = argv[optind + 1];
	if (!name_ok(o.name)) {
		log_err("NAME '%s': use 1-64 letters, digits, '.', '-', '_' (it names a directory)",
			o.name);
		return CTL_EXIT_USAGE;
	}
	if (o.kind == PKI_PROFILE_SERVER && o.dns.n + o.ip.n == 0) {
		log_err("a server certificate needs at least one --dns or --ip: clients check it");
		return CTL_EXIT_USAGE;
	}
	o.dir = pki_default_dir(dir_flag);

	struct pki_serial serial;
	if (pki_issue_run(&o, &serial, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return CTL_EXIT_USAGE;
	}
	char hex[PKI_SERIAL_HEX_MAX + 1];
	pki_serial_format(&serial, hex, sizeof(hex));
	printf("%s\n", hex);
	return CTL_EXIT_OK;
}

const struct ctl_command cmd_pki_issue = {
	.group = "pki",
	.name = "issue",
	.args = "server|client NAME [--dir DIR] [--out OUTDIR] [--key TYPE] [--days N] "
		"[--dns NAME]... [--ip ADDR]... [--uri URI]...",
	.summary = "issue a server or client certificate from the issuing CA; prints the serial",
	.help = "  --dir DIR        the CA hierarchy (default $MTLS_PKI_DIR, else the current directory)\n"
		"  --out OUTDIR     write OUTDIR/{cert,key,chain}.pem (default DIR/issued/NAME/)\n"
		"  --key TYPE       ec-p256 (default), ec-p384, rsa-2048, rsa-3072, rsa-4096\n"
		"  --days N         lifetime (default 90 server, 30 client; max 397 / 90)\n"
		"  --allow-long-lifetime  allow --days above the policy maximum\n"
		"  --dns NAME, --ip ADDR, --uri URI   subjectAltNames (repeatable;\n"
		"                   a SPIFFE ID is --uri spiffe://trust.domain/path)\n"
		"  --replace        overwrite an existing OUTDIR/cert.pem (rotation)\n",
	.run = run_issue,
};
