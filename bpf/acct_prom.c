/*
 * acct_prom.c: Prometheus text format for the accounting records (see
 * acct_prom.h).
 */
#include "acct_prom.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "outcome.h"
#include "safetext.h"

/* Every label goes through the one Prometheus label escaper (safetext.h):
 * a CN is chosen by whoever made the certificate. */
static void render_handshakes(FILE *out, const struct acct_view *v)
{
	fputs("# HELP mtlsd_handshakes_total Handshakes ended, per client certificate "
	      "(issuer key id, serial) and outcome.\n"
	      "# TYPE mtlsd_handshakes_total counter\n", out);
	for (size_t i = 0; i < v->n; i++) {
		const struct acct_record *r = &v->recs[i];
		char partner[64], serial[ACCT_SERIAL_MAX * 3 + 1], issuer[ACCT_ISSUER_ID_LEN * 2 + 1];
		bool none = acct_key_is_no_cert(&r->key);

		acct_record_partner(r, partner, sizeof(partner));
		acct_key_serial_hex(&r->key, serial, sizeof(serial));
		for (size_t b = 0; b < ACCT_ISSUER_ID_LEN; b++)
			snprintf(issuer + 2 * b, 3, "%02x", r->key.issuer_id[b]);
		for (unsigned b = 0; b < ACCT_BUCKETS; b++) {
			if (r->c.outcome[b] == 0)
				continue;
			fputs("mtlsd_handshakes_total{", out);
			prom_put_label(out, "partner", partner, true);
			prom_put_label(out, "subject_cn", none ? "" : r->has_meta ? r->meta.subject_cn : "", false);
			prom_put_label(out, "serial", none ? "" : serial, false);
			prom_put_label(out, "issuer_id", none ? "" : issuer, false);
			prom_put_label(out, "outcome", hs_outcome_name((enum hs_outcome)b), false);
			fprintf(out, "} %" PRIu64 "\n", (uint64_t)r->c.outcome[b]);
		}
	}
}

struct partner_hist {
	char name[64];
	struct acct_counters c;        /* only hist and duration_sum_ns used */
	uint64_t count;
};

/* Sum the histograms of every certificate of each partner. */
static int group_by_partner(const struct acct_view *v, struct partner_hist **out, size_t *n_out)
{
	struct partner_hist *g = NULL;
	size_t n = 0, cap = 0;

	for (size_t i = 0; i < v->n; i++) {
		char name[64];
		size_t j;

		acct_record_partner(&v->recs[i], name, sizeof(name));
		for (j = 0; j < n && strcmp(g[j].name, name) != 0; j++)
			;
		if (j == n) {
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				struct partner_hist *bigger = realloc(g, cap * sizeof(*g));
				if (!bigger) {
					free(g);
					return -ENOMEM;
				}
				g = bigger;
			}
			memset(&g[n], 0, sizeof(g[n]));
			snprintf(g[n].name, sizeof(g[n].name), "%s", name);
			n++;
		}
		for (size_t s = 0; s < ACCT_HIST_SLOTS; s++)
			g[j].c.hist[s] += v->recs[i].c.hist[s];
		g[j].c.duration_sum_ns += v->recs[i].c.duration_sum_ns;
		g[j].count += acct_total(&v->recs[i].c);
	}
	*out = g;
	*n_out = n;
	return 0;
}

static int render_durations(FILE *out, const struct acct_view *v)
{
	struct partner_hist *g;
	size_t n;

	GUARD(group_by_partner(v, &g, &n));
	fputs("# HELP mtlsd_handshake_duration_seconds Handshake duration, accept to end, per "
	      "partner.\n# TYPE mtlsd_handshake_duration_seconds histogram\n", out);
	for (size_t j = 0; j < n; j++) {
		uint64_t cumulative = 0;
		/* The last slot also holds everything longer: only +Inf covers it. */
		for (size_t s = 0; s + 1 < ACCT_HIST_SLOTS; s++) {
			cumulative += g[j].c.hist[s];
			fputs("mtlsd_handshake_duration_seconds_bucket{", out);
			prom_put_label(out, "partner", g[j].name, true);
			fprintf(out, ",le=\"%.9g\"} %" PRIu64 "\n", (double)(2ULL << s) / 1e9, cumulative);
		}
		fputs("mtlsd_handshake_duration_seconds_bucket{", out);
		prom_put_label(out, "partner", g[j].name, true);
		fprintf(out, ",le=\"+Inf\"} %" PRIu64 "\n", g[j].count);
		fputs("mtlsd_handshake_duration_seconds_sum{", out);
		prom_put_label(out, "partner", g[j].name, true);
		fprintf(out, "} %.9f\n", (double)g[j].c.duration_sum_ns / 1e9);
		fputs("mtlsd_handshake_duration_seconds_count{", out);
		prom_put_label(out, "partner", g[j].name, true);
		fprintf(out, "} %" PRIu64 "\n", g[j].count);
	}
	free(g);
	return 0;
}

int acct_prom_render(FILE *out, const struct acct_view *v)
{
	uint64_t evicted = v->totals.new_keys > v->n_present ? v->totals.new_keys - v->n_present : 0;

	render_handshakes(out, v);
	GUARD(render_durations(out, v));
	fputs("# HELP mtlsd_accounting_source Where the handshake counts are kept (1 for the "
	      "source in use).\n# TYPE mtlsd_accounting_source gauge\nmtlsd_accounting_source{", out);
	prom_put_label(out, "source", v->source, true);
	fprintf(out, "} 1\n"
		"# HELP mtlsd_accounting_certificates Certificates currently counted.\n"
		"# TYPE mtlsd_accounting_certificates gauge\n"
		"mtlsd_accounting_certificates %zu\n"
		"# HELP mtlsd_accounting_capacity Certificates the table can hold.\n"
		"# TYPE mtlsd_accounting_capacity gauge\n"
		"mtlsd_accounting_capacity %" PRIu64 "\n"
		"# HELP mtlsd_accounting_evictions_total Certificates dropped to make room.\n"
		"# TYPE mtlsd_accounting_evictions_total counter\n"
		"mtlsd_accounting_evictions_total %" PRIu64 "\n"
		"# HELP mtlsd_accounting_not_counted_total Handshake ends that could not be counted.\n"
		"# TYPE mtlsd_accounting_not_counted_total counter\n"
		"mtlsd_accounting_not_counted_total %" PRIu64 "\n",
		v->n_present, v->capacity, evicted, (uint64_t)v->totals.failures);
	return 0;
}
