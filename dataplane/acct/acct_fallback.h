/*
 * acct_fallback.h: the in-process twin of the acct_stats BPF map, used when
 * mtlsd may not load BPF programs.
 *
 * A bounded table keyed like the map (struct acct_key) holding the same
 * counters, safe to update from every worker thread. It approximates the
 * map's LRU: a key is looked up in a window of a few slots from its hash,
 * and when the window is full the least recently seen entry there is
 * replaced (and counted, like the map's new_keys, so readers compute
 * evictions the same way for both sources).
 */
#ifndef MTLSD_ACCT_FALLBACK_H
#define MTLSD_ACCT_FALLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guard.h"
#include "bpf/acct_user.h"

struct acct_table;

/* One handshake, already reduced to what the counters keep. */
struct acct_sample {
	uint32_t bucket;           /* enum acct_bucket */
	uint64_t duration_ns;
	uint64_t boot_ns;          /* CLOCK_BOOTTIME at handshake end */
	uint32_t partner;          /* ACCT_NO_PARTNER if none */
	uint16_t tls_version;
	uint16_t cipher;
};

/* capacity is rounded up to a power of two. Returns 0 or -ENOMEM/-EINVAL. */
int acct_table_new(size_t capacity, struct acct_table **out) MUST_CHECK;
void acct_table_free(struct acct_table *t);

/* Count one sample for key. Returns true when the entry has no names yet
 * (the caller then builds them once and calls acct_table_set_meta). */
bool acct_table_add(struct acct_table *t, const struct acct_key *key,
		    const struct acct_sample *s);

/* Store the names of key, if its entry is still there and has none. */
void acct_table_set_meta(struct acct_table *t, const struct acct_key *key,
			 const struct acct_meta *meta);

/* Copy the entries into out (room for cap records) and the totals into
 * *totals. Returns the number of records copied. */
size_t acct_table_snapshot(struct acct_table *t, struct acct_record *out, size_t cap,
			   struct acct_totals *totals);

/* Seed the table with records and totals read back from a snapshot, so a
 * restarted mtlsd continues where the last one stopped. */
void acct_table_restore(struct acct_table *t, const struct acct_record *recs, size_t n,
			const struct acct_totals *totals);

/* Bumped by every change; the publisher writes only when it moved. */
uint64_t acct_table_version(struct acct_table *t);

size_t acct_table_capacity(const struct acct_table *t);

#endif
