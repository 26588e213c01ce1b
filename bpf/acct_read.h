/*
 * acct_read.h: reading the accounting maps from user space, by fd.
 *
 * mtlsctl opens the pinned maps by path; mtlsd (for /metrics) uses the fds
 * it loaded. Both read through here, so both see the same records.
 */
#ifndef MTLS_BPF_ACCT_READ_H
#define MTLS_BPF_ACCT_READ_H

#include <stddef.h>
#include <stdint.h>

#include "guard.h"
#include "bpf/acct_user.h"

/* -EPROTO when the map's key or value size is not this layout (pinned by
 * another mtlsd version). *max_entries gets the map's capacity. */
int acct_map_check_layout(int stats_fd, uint32_t *max_entries) MUST_CHECK;

/* Sum of the per-CPU totals. */
int acct_read_totals(int totals_fd, struct acct_totals *sum) MUST_CHECK;

/*
 * Every record of acct_stats, joined with acct_meta. Keys evicted during
 * the walk are skipped. *recs is malloc'd (caller frees).
 */
int acct_read_records(int stats_fd, int meta_fd, struct acct_record **recs, size_t *n) MUST_CHECK;

#endif
