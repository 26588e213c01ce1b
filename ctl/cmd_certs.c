/*
 * cmd_certs.c: `mtlsctl certs`: every server certificate, partner CA and
 * CRL the running mtlsd has loaded, with its expiry, flagged for
 * monitoring.
 *
 * Certificates are flagged at 30, 15 and 7 days left. CRLs are replaced
 * daily in most PKIs, so a CRL is flagged only when it expires within a
 * day or is already past its nextUpdate (with crl_expired = fail that
 * refuses every client under its CA). A CA that mtlsd reports without
 * any CRL while its partner has crl_missing = fail (NOCRL) refuses every
 * client under it: critical.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "ctl_client.h"
#include "log.h"

extern const struct ctl_command cmd_certs;

enum cert_flag { FLAG_OK = 0, FLAG_WARN, FLAG_CRIT };

struct cert_row {
	char *col[7]; /* kind, owner, subject, serial, sha256, not_after, days_left */
	const char *note; /* optional eighth field ("no_crl"), "" if absent */
};

/* Split one "cert=" value on tabs, in place. */
static bool split_row(char *v, struct cert_row *r)
{
	r->note = "";
	for (int i = 0; i < 7; i++) {
		r->col[i] = v;
		char *tab = strchr(v, '\t');
		if (i < 6 && !tab)
			return false;
		if (tab) {
			*tab = '\0';
			v = tab + 1;
			if (i == 6) {
				/* A note, then whatever a newer mtlsd adds. */
				r->note = v;
				if ((tab = strchr(v, '\t')))
					*tab = '\0';
			}
		}
	}
	return true;
}

static enum cert_flag judge(const struct cert_row *r, long long days, const char **label)
{
	bool crl = strcmp(r->col[0], "crl") == 0;
	if (strcmp(r->note, "no_crl") == 0) {
		*label = "NOCRL";
		return FLAG_CRIT;
	}
	if (days < 0) {
		*label = crl ? "STALE" : "EXPIRED";
		return FLAG_CRIT;
	}
	if (crl) {
		*label = days < 1 ? "<1d" : "";
		return days < 1 ? FLAG_WARN : FLAG_OK;
	}
	if (days <= 7) {
		*label = "<=7d";
		return FLAG_CRIT;
	}
	*label = days <= 15 ? "<=15d" : days <= 30 ? "<=30d" : "";
	return days <= 30 ? FLAG_WARN : FLAG_OK;
}

static enum cert_flag print_row(struct cert_row *r)
{
	long long days = strtoll(r->col[6], NULL, 10);
	time_t t = (time_t)strtoll(r->col[5], NULL, 10);
	char when[32] = "-";
	const char *label = "";
	struct tm tm;

	if (t > 0 && gmtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%MZ", &tm);
	enum cert_flag f = judge(r, days, &label);
	printf("%-12s %-12s %6lld %-7s %-17s %s\n    serial %s  sha256 %s\n", r->col[0], r->col[1],
	       days, label, when, r->col[2], r->col[3], r->col[4]);
	return f;
}

static int run_certs(int argc, char **argv)
{
	static struct ctl_reply reply;
	enum cert_flag worst = FLAG_OK;
	unsigned flagged = 0, total = 0;
	int code;

	if (ctl_client_simple(&cmd_certs, argc, argv, "certs", 10, CTL_EXIT_USAGE, &reply, &code) < 0)
		return code;
	if (strcmp(reply.status, "ok") != 0) {
		log_err("mtlsd: %s", reply.error ? reply.error : "(no reason given)");
		return CTL_EXIT_USAGE;
	}
	printf("%-12s %-12s %6s %-7s %-17s %s\n", "KIND", "PARTNER", "DAYS", "FLAG", "NOT AFTER",
	       "SUBJECT (CRL: ISSUER)");
	for (size_t i = 0; i < reply.n; i++) {
		struct cert_row r;
		if (strcmp(reply.fields[i].key, "cert") != 0)
			continue;
		if (!split_row((char *)reply.fields[i].value, &r)) {
			log_warn("mtlsd sent a certificate line this mtlsctl cannot read; is it a newer version?");
			continue;
		}
		enum cert_flag f = print_row(&r);
		total++;
		flagged += f != FLAG_OK;
		worst = f > worst ? f : worst;
	}
	printf("%u loaded, %u flagged\n", total, flagged);
	return worst == FLAG_CRIT ? 2 : worst == FLAG_WARN ? 1 : 0;
}

const struct ctl_command cmd_certs = {
	.group = "certs",
	.name = "",
	.args = "[--socket PATH]",
	.summary = "loaded server certificates, partner CAs and CRLs with days left (for monitoring)",
	.help =
		"  -s, --socket PATH     mtlsd's control socket (default $MTLSD_CONTROL_SOCKET,\n"
		"                        else /run/mtlsd/control.sock)\n"
		"\n"
		"Certificates are flagged at 30, 15 and 7 days left; a CRL within a day of its\n"
		"nextUpdate, or past it (STALE); a partner CA without any CRL while the partner\n"
		"has crl_missing = fail (NOCRL: every client under it is refused). Exit code:\n"
		"0 nothing flagged, 1 a warning (30 or 15 days, a CRL due within a day),\n"
		"2 critical (7 days or less, expired, stale CRL, NOCRL), mtlsd unreachable or\n"
		"bad usage.\n",
	.run = run_certs,
};
