/*
 * acct.h: the one header of structs that the BPF program (bpf/acct.bpf.c),
 * mtlsd (dataplane/acct/acct.c, the in-process fallback) and mtlsctl stats all
 * read. Everything here is layout: changing a struct changes the pinned maps
 * and the fallback snapshot file, so bump ACCT_LAYOUT_VERSION and say so in
 * docs/accounting.md.
 *
 * Compiled both by clang -target bpf (no libc) and by the user-space
 * compiler, so it uses only the kernel's fixed-width types and static
 * inline functions without loops.
 */
#ifndef MTLS_BPF_ACCT_H
#define MTLS_BPF_ACCT_H

#include <linux/types.h>

#include "outcome.h"

#define ACCT_LAYOUT_VERSION 2 /* 2: fifteen buckets, one per outcome */

#define ACCT_ISSUER_ID_LEN 20     /* same as CERT_ISSUER_ID_LEN (certinfo.h) */
#define ACCT_SERIAL_MAX 20        /* same as CERT_SERIAL_MAX */
#define ACCT_MAX_KEYS 16384       /* per instance; LRU beyond that */
#define ACCT_HIST_SLOTS 40        /* log2(ns): slot i counts [2^i, 2^(i+1)) ns */
#define ACCT_PARTNER_NAME_LEN 32
#define ACCT_SUBJECT_CN_LEN 64
#define ACCT_ISSUER_LEN 64
#define ACCT_NO_PARTNER 0xffffffffu

/* Names of the pinned maps under /sys/fs/bpf/mtlsd/<instance>/. */
#define ACCT_MAP_STATS "acct_stats"
#define ACCT_MAP_META "acct_meta"
#define ACCT_MAP_TOTALS "acct_totals"

/*
 * The counters kept per certificate: one bucket per outcome of
 * lib/outcome.h, in the same order (an operator told a client is refused
 * crl_unavailable must find crl_unavailable in the counts, not "other").
 * An outcome newer than this header counts as other (acct_bucket_of).
 */
enum acct_bucket {
	ACCT_B_OK = 0,
	ACCT_B_NO_CERT,
	ACCT_B_UNKNOWN_CA,
	ACCT_B_EXPIRED,
	ACCT_B_NOT_YET_VALID,
	ACCT_B_REVOKED,
	ACCT_B_BAD_EKU,
	ACCT_B_POLICY_DENIED,
	ACCT_B_BAD_SIGNATURE,
	ACCT_B_PROTOCOL_ERROR,
	ACCT_B_TIMEOUT,
	ACCT_B_OTHER,
	ACCT_B_CHAIN_TOO_DEEP,
	ACCT_B_WEAK_KEY,
	ACCT_B_CRL_UNAVAILABLE,
	ACCT_BUCKETS
};

_Static_assert((int)ACCT_BUCKETS == (int)HS_OUTCOME_MAX && (int)ACCT_B_OTHER == (int)HS_OTHER &&
	       (int)ACCT_B_CRL_UNAVAILABLE == (int)HS_CRL_UNAVAILABLE,
	       "one bucket per outcome, same order: add a bucket with every outcome");

/*
 * The key: (issuer id, serial). Serials are unique only per issuer, so two
 * CAs that happen to issue the same serial are two keys. A handshake not
 * attributed to a partner (no client certificate, or one whose chain did
 * not verify up to a partner's CA: anyone can make those) uses the
 * all-zero key (serial_len 0), which no real certificate can have (a DER
 * serial is at least one octet), so strangers share one record.
 * This is also the exact memory the USDT probe points at (probes.h).
 */
struct acct_key {
	__u8 issuer_id[ACCT_ISSUER_ID_LEN];
	__u8 serial[ACCT_SERIAL_MAX];  /* zero-padded after serial_len */
	__u8 serial_len;
	__u8 pad[3];                   /* always zero: the key is hashed whole */
};

/* The value of acct_stats (and of a fallback record). */
struct acct_counters {
	__u64 outcome[ACCT_BUCKETS];
	__u64 hist[ACCT_HIST_SLOTS];   /* handshake duration, log2 of ns */
	__u64 duration_sum_ns;         /* sum of the durations (Prometheus _sum) */
	__u64 last_seen_ns;            /* CLOCK_BOOTTIME of the last handshake */
	__u32 last_partner;            /* partner index, ACCT_NO_PARTNER if none */
	__u16 last_tls_version;        /* 0x0303, 0x0304; 0 if not negotiated */
	__u16 last_cipher;             /* IANA id (SSL_CIPHER_get_protocol_id) */
};

/*
 * Names for a key, written by user space once per new identity (the probe
 * cannot carry strings cheaply), so mtlsctl can print them while mtlsd is
 * down. Strings are NUL-terminated and truncated to fit.
 */
struct acct_meta {
	__s64 not_after;               /* seconds since the epoch, 0 unknown */
	__s32 partner;                 /* partner index, -1 if none */
	__u32 pad;
	char partner_name[ACCT_PARTNER_NAME_LEN];
	char subject_cn[ACCT_SUBJECT_CN_LEN];
	char issuer[ACCT_ISSUER_LEN];  /* RFC 2253, truncated */
};

/*
 * Per-CPU totals (acct_totals[0]). Evictions are not observable in an LRU
 * map, so the program counts keys it inserted and readers compute
 * evicted = new_keys - keys present now.
 */
struct acct_totals {
	__u64 events;                  /* probe hits counted */
	__u64 new_keys;                /* keys inserted into acct_stats */
	__u64 failures;                /* probe hits not counted (read/insert failed) */
};

/* The bucket for an outcome: itself; a value this header does not know
 * (a newer writer) is other, never an index past the array. */
static inline __u32 acct_bucket_of(__u32 outcome)
{
	return outcome < ACCT_BUCKETS ? outcome : ACCT_B_OTHER;
}

/* Histogram slot of a duration: floor(log2(ns)), 0 for 0 and 1 ns, clamped
 * to the last slot (2^39 ns is about 9 minutes). Branch-free, no loop, so
 * the verifier takes it as is. */
static inline __u32 acct_hist_slot(__u64 ns)
{
	__u32 r = 0, shift;

	shift = (ns > 0xffffffffULL) << 5; ns >>= shift; r |= shift;
	shift = (ns > 0xffff) << 4; ns >>= shift; r |= shift;
	shift = (ns > 0xff) << 3; ns >>= shift; r |= shift;
	shift = (ns > 0xf) << 2; ns >>= shift; r |= shift;
	shift = (ns > 0x3) << 1; ns >>= shift; r |= shift;
	r |= (__u32)(ns >> 1);
	return r < ACCT_HIST_SLOTS ? r : ACCT_HIST_SLOTS - 1;
}

#endif
