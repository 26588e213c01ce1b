// SPDX-License-Identifier: Apache-2.0
/*
 * acct.bpf.c: handshake accounting per client certificate.
 *
 * Attached by dataplane/acct/bpf_loader.c to mtlsd's own USDT probe
 * mtlsd:handshake_end (dataplane/acct/probes.h), which fires once at the end of
 * every handshake, successful or not. Each hit adds one to the outcome
 * bucket and to the latency histogram of the certificate's (issuer id,
 * serial) in acct_stats, a bounded LRU hash pinned under
 * /sys/fs/bpf/mtlsd/<instance>/ so the numbers outlive the daemon and can be
 * read while it is down or hung (mtlsctl stats, bpftool).
 *
 * Probe arguments: arg0 = const struct acct_key * (user memory),
 * arg1 = outcome (enum hs_outcome), arg2 = partner index (-1 none),
 * arg3 = TLS version, arg4 = cipher id, arg5 = duration in ns.
 */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "acct.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Only count probes fired by this process, as seen from its own PID
 * namespace (mtlsd in a container knows its namespaced PID only). Set by
 * the loader before load; target_tgid 0 counts every process. The link is
 * attached to this PID already, but kernels before 6.12 run every BPF
 * program attached to a uprobe for any process that hits it, so two mtlsd
 * instances would count each other without this check.
 */
const volatile __u32 target_tgid = 0;
const volatile __u64 target_pidns_dev = 0;
const volatile __u64 target_pidns_ino = 0;

static __always_inline bool from_target(void)
{
	struct bpf_pidns_info ns;

	if (!target_tgid)
		return true;
	if (bpf_get_ns_current_pid_tgid(target_pidns_dev, target_pidns_ino, &ns, sizeof(ns)) != 0)
		return false;
	return ns.tgid == target_tgid;
}

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ACCT_MAX_KEYS);
	__type(key, struct acct_key);
	__type(value, struct acct_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} acct_stats SEC(".maps");

/* Written by user space only; declared here so that it is created and
 * pinned with the same lifetime as acct_stats. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ACCT_MAX_KEYS);
	__type(key, struct acct_key);
	__type(value, struct acct_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} acct_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct acct_totals);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} acct_totals SEC(".maps");

/* A zeroed value to insert new keys with: too big for the 512-byte stack. */
static const struct acct_counters zero_counters;

static __always_inline struct acct_counters *counters_for(const struct acct_key *key,
							   struct acct_totals *t)
{
	struct acct_counters *c = bpf_map_lookup_elem(&acct_stats, key);
	if (c)
		return c;
	/* BPF_NOEXIST: when two CPUs race on a new key, one insert wins and
	 * only that one counts as a new key. */
	long rc = bpf_map_update_elem(&acct_stats, key, &zero_counters, BPF_NOEXIST);
	if (rc == 0)
		t->new_keys++;  /* per-CPU value: no atomics needed */
	return bpf_map_lookup_elem(&acct_stats, key);
}

SEC("usdt")
int BPF_USDT(handshake_end, const struct acct_key *ukey, int outcome, int partner,
	     int tls_version, int cipher, __u64 duration_ns)
{
	__u32 zero = 0;
	struct acct_key key;
	struct acct_counters *c;
	struct acct_totals *t;

	if (!from_target())
		return 0;
	t = bpf_map_lookup_elem(&acct_totals, &zero);
	if (!t)
		return 0;
	if (bpf_probe_read_user(&key, sizeof(key), ukey) != 0 || key.serial_len > ACCT_SERIAL_MAX) {
		t->failures++;
		return 0;
	}
	c = counters_for(&key, t);
	if (!c) {
		t->failures++;
		return 0;
	}
	t->events++;
	__sync_fetch_and_add(&c->outcome[acct_bucket_of((__u32)outcome)], 1);
	__sync_fetch_and_add(&c->hist[acct_hist_slot(duration_ns)], 1);
	__sync_fetch_and_add(&c->duration_sum_ns, duration_ns);
	/* Last-writer-wins is fine for "last seen": no atomics needed. */
	c->last_seen_ns = bpf_ktime_get_boot_ns();
	c->last_partner = partner < 0 ? ACCT_NO_PARTNER : (__u32)partner;
	c->last_tls_version = (__u16)tls_version;
	c->last_cipher = (__u16)cipher;
	return 0;
}
