/*
 * acct_prom.h: the accounting records in the Prometheus text exposition
 * format (version 0.0.4), for mtlsd's /metrics and for
 * `mtlsctl stats --prometheus` (a node_exporter textfile, readable
 * while mtlsd is down).
 */
#ifndef MTLS_BPF_ACCT_PROM_H
#define MTLS_BPF_ACCT_PROM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bpf/acct_user.h"

/* What a renderer needs, whatever the source. */
struct acct_view {
	const char *source;            /* "bpf" or "fallback" */
	const struct acct_record *recs;
	size_t n;                      /* records to render (maybe filtered) */
	size_t n_present;              /* records the source holds */
	struct acct_totals totals;
	uint64_t capacity;
};

/*
 * Write:
 *   mtlsd_handshakes_total{partner,subject_cn,serial,issuer_id,outcome}
 *       (only outcomes seen at least once: 12 series per certificate would
 *       be mostly zeros)
 *   mtlsd_handshake_duration_seconds histogram per partner (the log2
 *       slots as buckets: le = 2^(i+1) ns)
 *   mtlsd_accounting_{source,certificates,capacity,evictions_total,
 *       not_counted_total}
 * Returns 0 or -ENOMEM.
 */
int acct_prom_render(FILE *out, const struct acct_view *v) MUST_CHECK;

#endif
