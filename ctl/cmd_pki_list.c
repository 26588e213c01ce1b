/*
 * cmd_pki_list.c: `mtlsctl pki list`, what the CAs have issued.
 *
 * Reads every CA's record (index.txt) and prints one line per certificate:
 * the CA that issued it, its state, expiry, serial and subject. With
 * --expiring N it lists only valid certificates that expire within N days
 * and exits 1 when there are any, for a renewal timer.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cmd.h"
#include "log.h"
#include "pki_ca.h"
#include "pki_ops.h"
#include "pki_policy.h"

struct list_opts {
	const char *dir;
	long expiring_days; /* -1: list everything */
};

static const char *record_state(const struct pki_record *r, time_t now)
{
	if (r->state == PKI_CERT_REVOKED)
		return "revoked";
	return r->not_after < now ? "expired" : "valid";
}

/* Prints the records of tier i that pass the filter; returns how many. */
static size_t list_tier(const struct pki_hierarchy *h, size_t i, const struct list_opts *o,
			time_t now)
{
	const struct pki_index *idx = &h->tier[i].idx;
	size_t shown = 0;
	for (size_t k = 0; k < idx->n; k++) {
		const struct pki_record *r = &idx->rec[k];
		char serial[PKI_SERIAL_HEX_MAX + 1], expires[32];
		bool soon = r->state == PKI_CERT_VALID && r->not_after >= now &&
			    r->not_after - now <= o->expiring_days * PKI_DAY;
		if (o->expiring_days >= 0 && !soon)
			continue;
		struct tm tm;
		gmtime_r(&r->not_after, &tm);
		strftime(expires, sizeof(expires), "%Y-%m-%d %H:%M", &tm);
		pki_serial_format(&r->serial, serial, sizeof(serial));
		printf("%-13s %-8s %-16s %-13s %-47s %s\n", h->tier[i].name, record_state(r, now),
		       expires, r->state == PKI_CERT_REVOKED ? pki_reason_name(r->reason) : "-",
		       serial, r->subject);
		shown++;
	}
	return shown;
}

static int run_list(int argc, char **argv)
{
	static const struct option options[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "expiring", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	struct list_opts o = { .expiring_days = -1 };
	struct pki_hierarchy h;
	char err[1024] = "", *end;
	int c;

	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case 'd':
			o.dir = optarg;
			break;
		case 'e':
			o.expiring_days = strtol(optarg, &end, 10);
			if (end == optarg || *end || o.expiring_days < 0 || o.expiring_days > 36500) {
				log_err("--expiring %s: expected a number of days, 0..36500", optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		default:
			return ctl_usage(&cmd_pki_list);
		}
	}
	if (optind != argc)
		return ctl_usage(&cmd_pki_list);
	if (pki_ca_open(pki_default_dir(o.dir), &h, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return CTL_EXIT_USAGE;
	}
	time_t now = time(NULL);
	size_t shown = 0;
	printf("%-13s %-8s %-16s %-13s %-47s %s\n", "CA", "STATE", "EXPIRES (UTC)", "REASON",
	       "SERIAL", "SUBJECT");
	for (size_t i = 0; i < h.n; i++)
		shown += list_tier(&h, i, &o, now);
	pki_ca_close(&h);
	return o.expiring_days >= 0 && shown > 0 ? CTL_EXIT_CHECK_FAILED : CTL_EXIT_OK;
}

const struct ctl_command cmd_pki_list = {
	.group = "pki",
	.name = "list",
	.args = "[--dir DIR] [--expiring DAYS]",
	.summary = "list what every CA issued: state, expiry, serial, subject",
	.help = "  --dir DIR        the CA hierarchy (default $MTLS_PKI_DIR, else .)\n"
		"  --expiring DAYS  only valid certificates expiring within DAYS; exit 1 if any\n",
	.run = run_list,
};
