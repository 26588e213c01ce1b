/*
 * metrics.h: the admin listener's hooks (admin_http.h): mtlsd's own metric
 * families on /metrics, next to the handshake accounting, and /healthz.
 *
 * Everything is read on the admin thread from state that already exists:
 * the workers' plain counters (summed racily, as `mtlsctl status` does),
 * the process-wide atomics, the published generation's certificates and
 * CRLs, the reload status and the kTLS statistics. Labels are bounded by
 * the configuration (partners, loaded certificates, CRLs, fixed enums);
 * per-client-certificate detail stays with the accounting families and
 * `mtlsctl stats`. docs/accounting.md lists every family.
 */
#ifndef MTLSD_METRICS_H
#define MTLSD_METRICS_H

#include <stdio.h>

#include "admin_http.h"

struct worker;

/* The hooks for admin_http_start(), reading the n workers at ws. ws must
 * stay valid until admin_http_stop() returned. */
struct admin_http_hooks metrics_hooks(struct worker *ws, unsigned n);

/* Write the families (what the hook does), at wall-clock time now. Tests
 * call it directly. */
void metrics_write(FILE *out, struct worker *ws, unsigned n, time_t now);

#endif
