/*
 * metrics.c: mtlsd's own Prometheus families, appended to /metrics after
 * the accounting ones (admin_http.c), and the /healthz check.
 *
 * The hook runs on the admin thread. Worker counters are plain 64-bit
 * loads (a scrape may see a counter one event behind, never torn on
 * x86-64/arm64); the generation is held by a reference for the whole
 * scrape, so a reload in between cannot free what is being read. Server
 * certificates are walked on an SSL of our own (SSL_new copies the
 * context's certificate table): SSL_CTX_set_current_cert() would move the
 * shared context's cursor under the workers' feet.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "audit.h"
#include "cert_name.h"
#include "certinfo.h"
#include "generation.h"
#include "ktls.h"
#include "metrics.h"
#include "outcome.h"
#include "reload.h"
#include "safetext.h"
#include "worker.h"

/* The hook signature carries no context: the workers are process-wide. */
static struct {
	struct worker *ws;
	unsigned n;
} metrics;

static void family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* ---- handshakes, connections, bytes ---------------------------------- */

/* The partner label of stat slot p: its name (configured, or removed by a
 * reload), "#p" for a slot no name owns (never counted), "-" for the slot
 * of handshakes no partner owns, as the accounting families say it. */
static const char *partner_label(unsigned p, const char *name, char *slot, size_t cap)
{
	if (name)
		return name;
	if (p >= CFG_MAX_PARTNERS)
		return "-";
	snprintf(slot, cap, "#%u", p);
	return slot;
}

static void put_partner_handshakes(FILE *out, const struct worker_counters *s,
				   const struct generation *g)
{
	size_t np = g ? g->n_partners : 0;
	char slot[16];

	family(out, "mtlsd_partner_handshakes_total", "counter",
	       "Handshakes ended, by partner and outcome. partner=\"-\": not attributed to a "
	       "partner (no certificate, unknown CA). Per-certificate detail: mtlsctl stats.");
	for (unsigned p = 0; p <= CFG_MAX_PARTNERS; p++) {
		const char *name = partner_stat_name(p);
		bool configured = false;
		for (size_t i = 0; i < np && !configured; i++)
			configured = g->partners[i].stat_slot == p;
		for (unsigned k = 0; k < HS_OUTCOME_MAX; k++) {
			uint64_t v = s->partner_handshakes[p][k];
			/* Every outcome of a configured partner, so rate() has a
			 * series from the start; other rows only when counted. */
			if (!configured && v == 0)
				continue;
			fputs("mtlsd_partner_handshakes_total{", out);
			prom_put_label(out, "partner", partner_label(p, name, slot, sizeof(slot)), true);
			prom_put_label(out, "outcome", hs_outcome_name((enum hs_outcome)k), false);
			fprintf(out, "} %" PRIu64 "\n", v);
		}
	}
}

static void put_connections(FILE *out, const struct worker_counters *s)
{
	family(out, "mtlsd_connections_active", "gauge", "Client connections open now.");
	fprintf(out, "mtlsd_connections_active %u\n", atomic_load(&engine.conns));
	family(out, "mtlsd_handshakes_in_progress", "gauge", "TLS handshakes in progress now.");
	fprintf(out, "mtlsd_handshakes_in_progress %u\n", atomic_load(&engine.handshakes));
	family(out, "mtlsd_connections_accepted_total", "counter", "Client connections accepted.");
	fprintf(out, "mtlsd_connections_accepted_total %" PRIu64 "\n", s->accepted);
	family(out, "mtlsd_connections_refused_total", "counter",
	       "Client connections closed at accept because a limit was reached (max_connections, "
	       "max_handshakes with nothing to evict, max_handshakes_per_source, a full table).");
	fprintf(out, "mtlsd_connections_refused_total %" PRIu64 "\n", s->refused_limit);
	family(out, "mtlsd_connections_refused_per_source_total", "counter",
	       "Of mtlsd_connections_refused_total: refused by max_handshakes_per_source.");
	fprintf(out, "mtlsd_connections_refused_per_source_total %" PRIu64 "\n", s->refused_source);
	family(out, "mtlsd_handshakes_evicted_total", "counter",
	       "Handshakes closed under pressure before they ended, by cause: limit (a newcomer "
	       "took the slot of a stalled handshake), reduced_timeout (no complete ClientHello "
	       "within the timeout shortened above 75% of max_handshakes).");
	for (unsigned k = 0; k < EVICT_CAUSE_MAX; k++)
		fprintf(out, "mtlsd_handshakes_evicted_total{cause=\"%s\"} %" PRIu64 "\n",
			evict_cause_name((enum evict_cause)k), s->evicted[k]);
	family(out, "mtlsd_connections_closed_total", "counter", "Client connections ended, by reason.");
	for (unsigned k = 0; k < CLOSE_REASON_MAX; k++)
		fprintf(out, "mtlsd_connections_closed_total{reason=\"%s\"} %" PRIu64 "\n",
			close_reason_name((enum close_reason)k), s->closes[k]);
	family(out, "mtlsd_relayed_bytes_total", "counter",
	       "Plaintext bytes relayed, by direction.");
	fprintf(out, "mtlsd_relayed_bytes_total{direction=\"client_to_backend\"} %" PRIu64 "\n",
		s->bytes_client_to_backend);
	fprintf(out, "mtlsd_relayed_bytes_total{direction=\"backend_to_client\"} %" PRIu64 "\n",
		s->bytes_backend_to_client);
}

/* Kernel TLS (ktls.h, relay_ktls.c): handoffs, why sessions stayed in user
 * space, and what happened on offloaded connections. */
static void put_ktls(FILE *out)
{
	struct ktls_stats ks;

	ktls_stats_snapshot(&ks);
	family(out, "mtlsd_ktls_offloaded_connections_total", "counter",
	       "Connections handed to kernel TLS, by direction (rx = decrypt, tx = encrypt).");
	for (unsigned d = 0; d < 2; d++)
		fprintf(out, "mtlsd_ktls_offloaded_connections_total{direction=\"%s\"} %" PRIu64 "\n",
			d ? "tx" : "rx", ks.declined[KTLS_OFFLOAD]);
	family(out, "mtlsd_ktls_declined_total", "counter",
	       "Verified sessions that stayed in user-space TLS, by reason.");
	for (unsigned d = KTLS_OFFLOAD + 1; d < KTLS_DECISION_MAX; d++)
		fprintf(out, "mtlsd_ktls_declined_total{reason=\"%s\"} %" PRIu64 "\n",
			ktls_decision_name((enum ktls_decision)d), ks.declined[d]);
	family(out, "mtlsd_ktls_events_total", "counter",
	       "Records other than application data on offloaded connections, and their outcome.");
	for (unsigned e = KTLS_EV_HANDOFF + 1; e < KTLS_EVENT_MAX; e++)
		fprintf(out, "mtlsd_ktls_events_total{event=\"%s\"} %" PRIu64 "\n",
			ktls_event_name((enum ktls_event)e), ks.events[e]);
}

/* ---- certificates and CRLs of the published generation --------------- */

/*
 * Gauges collected before they are written, so that two objects with the
 * same labels (one intermediate behind both server certificates, a CA
 * listed twice, two CRLs of one issuer) give one series, holding the
 * soonest expiry: that is the one to act on, and a duplicate series would
 * make Prometheus drop samples.
 */
struct gauge {
	char *labels;     /* rendered, escaped: kind="server",partner="" */
	long long value;
};

struct gauge_set {
	struct gauge *v;
	size_t n, cap;
};

/* Add the series labels (owned from here) at value, or lower the existing
 * one. Out of memory: the series is missing from this scrape. */
static void gauge_add(struct gauge_set *set, char *labels, long long value)
{
	if (!labels)
		return;
	for (size_t i = 0; i < set->n; i++) {
		if (strcmp(set->v[i].labels, labels) == 0) {
			if (value < set->v[i].value)
				set->v[i].value = value;
			free(labels);
			return;
		}
	}
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 32;
		struct gauge *v = realloc(set->v, cap * sizeof(*v));
		if (!v) {
			free(labels);
			return;
		}
		set->v = v;
		set->cap = cap;
	}
	set->v[set->n++] = (struct gauge){ labels, value };
}

static void gauge_flush(FILE *out, const char *name, struct gauge_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		fprintf(out, "%s{%s} %lld\n", name, set->v[i].labels, set->v[i].value);
		free(set->v[i].labels);
	}
	free(set->v);
	*set = (struct gauge_set){ 0 };
}

/* The label pairs name=value... (NULL-terminated) rendered and escaped. */
static char *labels_of(const char *first, ...)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	va_list ap;

	if (!f)
		return NULL;
	va_start(ap, first);
	for (const char *k = first; k; k = va_arg(ap, const char *))
		prom_put_label(f, k, va_arg(ap, const char *), k == first);
	va_end(ap);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static time_t asn1_to_time(const ASN1_TIME *t)
{
	struct tm tm;
	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return timegm(&tm);
}

static void add_cert(struct gauge_set *set, const char *kind, const char *partner, X509 *x,
		     time_t now)
{
	struct cert_identity id;

	if (certinfo_from_x509(x, &id) < 0)
		return; /* out of memory: the series is missing for one scrape */
	gauge_add(set, labels_of("kind", kind, "partner", partner, "subject_cn", id.subject_cn,
				 "serial", id.serial_hex, NULL),
		  (long long)(id.not_after - now));
}

static void add_server_certs(struct gauge_set *set, SSL_CTX *ctx, time_t now)
{
	SSL *ssl = SSL_new(ctx);
	if (!ssl)
		return;
	for (int r = SSL_set_current_cert(ssl, SSL_CERT_SET_FIRST); r == 1;
	     r = SSL_set_current_cert(ssl, SSL_CERT_SET_NEXT)) {
		X509 *leaf = SSL_get_certificate(ssl);
		STACK_OF(X509) *chain = NULL;
		if (!leaf)
			continue;
		add_cert(set, "server", "", leaf, now);
		if (SSL_get0_chain_certs(ssl, &chain) == 1)
			for (int i = 0; i < sk_X509_num(chain); i++)
				add_cert(set, "server_chain", "", sk_X509_value(chain, i), now);
	}
	SSL_free(ssl);
}

static void put_certs(FILE *out, const struct generation *g, time_t now)
{
	struct gauge_set set = { 0 };

	family(out, "mtlsd_certificate_expiry_seconds", "gauge",
	       "Seconds until notAfter of every loaded certificate (negative: expired). kind: "
	       "server, server_chain (its intermediates), ca_anchor, ca_intermediate (a partner's ca).");
	if (!g)
		return;
	add_server_certs(&set, g->ssl_ctx, now);
	for (size_t p = 0; p < g->n_partners; p++) {
		const struct partner *pt = &g->partners[p];
		for (int i = 0; i < sk_X509_num(pt->anchors); i++)
			add_cert(&set, "ca_anchor", pt->cfg->name, sk_X509_value(pt->anchors, i), now);
		for (int i = 0; i < sk_X509_num(pt->intermediates); i++)
			add_cert(&set, "ca_intermediate", pt->cfg->name,
				 sk_X509_value(pt->intermediates, i), now);
	}
	gauge_flush(out, "mtlsd_certificate_expiry_seconds", &set);
}

struct crl_gauges {
	struct gauge_set *set;
	const struct partner *pt;
	time_t now;
};

static void add_crl(X509_CRL *crl, void *arg)
{
	const struct crl_gauges *cg = arg;
	char issuer[512];

	cert_name_format(X509_CRL_get_issuer(crl), issuer, sizeof(issuer));
	const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
	/* No nextUpdate: the CRL never expires; report it far away. */
	gauge_add(cg->set, labels_of("partner", cg->pt->cfg->name, "issuer", issuer, NULL),
		  next ? (long long)(asn1_to_time(next) - cg->now) : (long long)INT32_MAX);
}

/* The store's CRLs and the chain CRLs (of CAs clients present). */
static void add_partner_crls(struct gauge_set *set, const struct partner *pt, time_t now)
{
	struct crl_gauges cg = { set, pt, now };

	partner_for_each_crl(pt, add_crl, &cg);
}

static void put_crls(FILE *out, const struct generation *g, time_t now)
{
	struct gauge_set set = { 0 };

	family(out, "mtlsd_crl_next_update_seconds", "gauge",
	       "Seconds until nextUpdate of every loaded CRL (negative: past it).");
	for (size_t p = 0; g && p < g->n_partners; p++)
		add_partner_crls(&set, &g->partners[p], now);
	gauge_flush(out, "mtlsd_crl_next_update_seconds", &set);
}

/* ---- the audit trail -------------------------------------------------- */

static void put_audit(FILE *out)
{
	family(out, "mtlsd_audit_write_errors_total", "counter",
	       "Audit lines lost: not formatted (too long) or not written whole (disk full, "
	       "file gone). A handshake counted here has no audit line.");
	fprintf(out, "mtlsd_audit_write_errors_total %" PRIu64 "\n", audit_write_errors());
}

/* ---- reloads ---------------------------------------------------------- */

static void put_reloads(FILE *out, const struct generation *g)
{
	struct reload_status rs;

	reload_get_status(&rs);
	family(out, "mtlsd_reloads_total", "counter", "Configuration reloads, by result.");
	fprintf(out, "mtlsd_reloads_total{result=\"applied\"} %" PRIu64 "\n", rs.applied);
	fprintf(out, "mtlsd_reloads_total{result=\"refused\"} %" PRIu64 "\n", rs.refused);
	family(out, "mtlsd_last_reload_success", "gauge",
	       "1 if the last reload was applied or none was tried, 0 if it was refused "
	       "(mtlsctl status says why).");
	fprintf(out, "mtlsd_last_reload_success %d\n", rs.last_time == 0 || rs.last_ok);
	family(out, "mtlsd_last_reload_timestamp_seconds", "gauge",
	       "Unix time of the last reload attempt, 0 if none.");
	fprintf(out, "mtlsd_last_reload_timestamp_seconds %lld\n", (long long)rs.last_time);
	family(out, "mtlsd_generation", "gauge", "Id of the published configuration generation.");
	fprintf(out, "mtlsd_generation %" PRIu64 "\n", g ? g->id : 0);
	family(out, "mtlsd_start_time_seconds", "gauge", "Unix time mtlsd started.");
	fprintf(out, "mtlsd_start_time_seconds %lld\n", (long long)rs.started);
}

void metrics_write(FILE *out, struct worker *ws, unsigned n, time_t now)
{
	/* About 31 KiB: off the admin thread's stack. */
	static struct worker_counters s;
	struct generation *g = generation_acquire();

	workers_sum_counters(ws, n, &s);
	put_partner_handshakes(out, &s, g);
	put_connections(out, &s);
	put_ktls(out);
	put_certs(out, g, now);
	put_crls(out, g, now);
	put_reloads(out, g);
	put_audit(out);
	generation_unref(g);
}

static void metrics_hook(FILE *out)
{
	metrics_write(out, metrics.ws, metrics.n, time(NULL));
}

static bool metrics_healthy(char *why, size_t len)
{
	if (generation_current_id() == 0) {
		snprintf(why, len, "no configuration published (starting or stopping)");
		return false;
	}
	return true;
}

struct admin_http_hooks metrics_hooks(struct worker *ws, unsigned n)
{
	metrics.ws = ws;
	metrics.n = n;
	return (struct admin_http_hooks){ .healthy = metrics_healthy, .metrics = metrics_hook };
}
