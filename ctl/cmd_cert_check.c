/*
 * cmd_cert_check.c: `mtlsctl cert check FILE --ca BUNDLE [--crl FILE]`.
 *
 * Prints one line per check (cert_check.c): "PASS chain  builds to ...".
 * Exit 0 when nothing failed, 1 when a check failed, 2 when the input could
 * not be read.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cert_check.h"
#include "cmd.h"
#include "log.h"
#include "pemutil.h"
#include "pki_cert.h"
#include "pki_policy.h"

struct check_opts {
	const char *file, *ca, *crl, *host;
	bool server;
	int max_depth, max_days, min_days_left;
};

static const struct option check_options[] = {
	{ "ca", required_argument, NULL, 'c' },
	{ "crl", required_argument, NULL, 'r' },
	{ "purpose", required_argument, NULL, 'p' },
	{ "max-depth", required_argument, NULL, 'd' },
	{ "max-days", required_argument, NULL, 'm' },
	{ "min-days-left", required_argument, NULL, 'l' },
	{ "host", required_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_int(const char *opt, const char *s, int lo, int hi, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (end == s || *end || v < lo || v > hi) {
		log_err("%s %s: expected a whole number in %d..%d", opt, s, lo, hi);
		return -EINVAL;
	}
	*out = (int)v;
	return 0;
}

static int parse_check_option(int c, struct check_opts *o)
{
	switch (c) {
	case 'c':
		o->ca = optarg;
		return 0;
	case 'r':
		o->crl = optarg;
		return 0;
	case 'p':
		if (strcmp(optarg, "client") != 0 && strcmp(optarg, "server") != 0) {
			log_err("--purpose %s: use client or server", optarg);
			return -EINVAL;
		}
		o->server = strcmp(optarg, "server") == 0;
		return 0;
	case 'd':
		return parse_int("--max-depth", optarg, 1, 16, &o->max_depth);
	case 'm':
		return parse_int("--max-days", optarg, 1, 36500, &o->max_days);
	case 'l':
		return parse_int("--min-days-left", optarg, 0, 36500, &o->min_days_left);
	case 'h':
		o->host = optarg;
		return 0;
	default:
		return -EINVAL;
	}
}

static int load_inputs(const struct check_opts *o, struct check_input *in)
{
	STACK_OF(X509) *presented = NULL;
	const char *what = o->file;
	char why[512];
	int rc = pem_load_certs(o->file, &presented, why, sizeof(why));
	if (rc == 0) {
		in->leaf = sk_X509_shift(presented);
		in->untrusted = presented;
		what = o->ca;
		rc = pem_load_certs(o->ca, &in->anchors, why, sizeof(why));
	}
	if (rc == 0 && o->crl) {
		what = o->crl;
		rc = pem_load_crls(o->crl, &in->crls, why, sizeof(why));
	}
	if (rc < 0)
		log_err("%s: %s", what, why);
	return rc;
}

static void free_inputs(struct check_input *in)
{
	X509_free(in->leaf);
	sk_X509_pop_free(in->untrusted, X509_free);
	sk_X509_pop_free(in->anchors, X509_free);
	sk_X509_CRL_pop_free(in->crls, X509_CRL_free);
}

static int run_checks(const struct check_input *in)
{
	struct check_state st;
	size_t failed = 0;
	check_state_init(&st, in);
	for (size_t i = 0; i < cert_checks_count; i++) {
		char reason[1024] = "";
		enum check_result r = cert_checks[i].run(&st, reason, sizeof(reason));
		printf("%s %-10s %s\n", check_result_name(r), cert_checks[i].name, reason);
		failed += r == CHECK_FAIL;
	}
	check_state_free(&st);
	if (failed)
		printf("%zu check%s failed: do not trust this certificate\n", failed,
		       failed == 1 ? "" : "s");
	else
		printf("all checks passed\n");
	return failed ? CTL_EXIT_CHECK_FAILED : CTL_EXIT_OK;
}

static int run_check(int argc, char **argv)
{
	struct check_opts o = { .max_depth = PKI_CHECK_MAX_DEPTH };
	struct check_input in = { 0 };
	int c;

	while ((c = getopt_long(argc, argv, "", check_options, NULL)) != -1)
		if (c == '?' || parse_check_option(c, &o) < 0)
			return ctl_usage(&cmd_cert_check);
	if (optind + 1 != argc || !o.ca)
		return ctl_usage(&cmd_cert_check);
	o.file = argv[optind];
	if (!o.max_days)
		o.max_days = o.server ? PKI_SERVER_DAYS_MAX : PKI_CLIENT_DAYS_MAX;
	if (load_inputs(&o, &in) < 0) {
		free_inputs(&in);
		return CTL_EXIT_USAGE;
	}
	in.server = o.server;
	in.host = o.host;
	in.max_depth = o.max_depth;
	in.max_days = o.max_days;
	in.min_days_left = o.min_days_left;
	in.now = time(NULL);
	int rc = run_checks(&in);
	free_inputs(&in);
	return rc;
}

const struct ctl_command cmd_cert_check = {
	.group = "cert",
	.name = "check",
	.args = "FILE --ca BUNDLE [--crl FILE] [--purpose client|server] [--max-depth N] "
		"[--max-days N] [--min-days-left N] [--host NAME|IP]",
	.summary = "check a partner's certificate before trusting it; one line per check",
	.help = "  FILE              the certificate, optionally followed by its intermediates\n"
		"  --ca BUNDLE       the trust anchors (the partner's root, or their trust package)\n"
		"  --crl FILE        CRLs (PEM, several in one file) to check revocation\n"
		"  --purpose P       client (default: EKU clientAuth) or server (serverAuth)\n"
		"  --max-depth N     CA levels above the leaf, anchor included (default 3)\n"
		"  --max-days N      lifetime ceiling (default 90 client, 397 server)\n"
		"  --min-days-left N fail if it expires sooner (default 0)\n"
		"  --host NAME|IP    the leaf must carry this DNS or IP subjectAltName\n"
		"  Exit 0: all passed; 1: a check failed; 2: the input could not be read.\n",
	.run = run_check,
};
