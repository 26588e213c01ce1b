/*
 * acct.c: the accounting API the connection code calls (see acct.h).
 *
 * Chooses the source once at start (BPF or in-process fallback), fires the
 * USDT probe for every handshake, and keeps the side data user space owns:
 * the names of each identity in the pinned acct_meta map (BPF), or the
 * counters themselves and their publisher (fallback, acct_publish.h).
 */
#include "acct.h"

#include <bpf/bpf.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "acct_fallback.h"
#include "acct_publish.h"
#include "bpf/acct_read.h"
#include "bpf/acct_user.h"
#include "bpf_loader.h"
#include "log.h"
#include "probes.h"
#include "safetext.h"

#define META_CACHE_SLOTS 64    /* per thread, direct-mapped */
/* acct_meta is an LRU map the BPF program never touches, so an entry ages
 * by its last write: rewriting it now and then keeps the names of busy
 * certificates from being evicted before their counters. */
#define META_REFRESH_S 60

static struct {
	enum acct_source source;
	char instance[ACCT_INSTANCE_MAX + 1];
	char describe[1200];
	struct bpf_loader *bpf;
	int meta_fd;
	/* fallback only */
	struct acct_table *table;
	struct acct_publisher *publisher;
	char snapshot_path[600];
	char reason[160];
} state = {
	.meta_fd = -1,
};

/* Identities whose names this thread already wrote into acct_meta. */
static __thread struct {
	unsigned epoch;            /* acct_epoch when written; 0 = empty */
	time_t written;            /* CLOCK_MONOTONIC_COARSE seconds */
	struct acct_key key;
} meta_cache[META_CACHE_SLOTS];

/* Bumped by every acct_init(), so a cache filled for earlier maps is stale. */
static _Atomic unsigned acct_epoch;

/* Set when the kernel refused a names write with EPERM: Debian 12's 6.1
 * kernel checks CAP_BPF on every bpf() call, so once mtlsd dropped its
 * capabilities every later write would fail too (a wasted syscall per
 * handshake). Counting goes on in the kernel; only names are missing. */
static atomic_bool meta_refused;

static int fallback_start(const char *why)
{
	char dir[512];
	int n;

	snprintf(state.reason, sizeof(state.reason), "%s", why);
	GUARD(acct_runtime_dir(NULL, state.instance, dir, sizeof(dir)));
	n = snprintf(state.snapshot_path, sizeof(state.snapshot_path), "%s/%s", dir,
		     ACCT_SNAPSHOT_NAME);
	ENSURE(n > 0 && (size_t)n < sizeof(state.snapshot_path), ENAMETOOLONG);
	GUARD(acct_table_new(ACCT_MAX_KEYS, &state.table));
	state.source = ACCT_SOURCE_FALLBACK;
	snprintf(state.describe, sizeof(state.describe),
		 "in-process fallback (BPF unavailable: %s), published to %s", why, state.snapshot_path);
	log_warn("handshake accounting: BPF unavailable (%s); counting in process, published every "
		 "%ds to %s", why, ACCT_PUBLISH_INTERVAL_S, state.snapshot_path);
	return 0;
}

/* A snapshot left by an earlier fallback run would make readers show stale
 * numbers: keep it aside as stats.bin.prev. */
static void retire_old_snapshot(void)
{
	char dir[512], from[600], to[600];

	if (acct_runtime_dir(NULL, state.instance, dir, sizeof(dir)) < 0)
		return;
	snprintf(from, sizeof(from), "%s/%s", dir, ACCT_SNAPSHOT_NAME);
	snprintf(to, sizeof(to), "%s/%s.prev", dir, ACCT_SNAPSHOT_NAME);
	if (rename(from, to) != 0 && errno != ENOENT)
		log_warn("handshake accounting: cannot move %s aside: %s; mtlsctl stats may show "
			 "it instead of the BPF maps (pass --source bpf)", from, strerror(errno));
}

int acct_init(const char *instance, bool may_use_bpf)
{
	char why[400] = "disabled by configuration";

	if (!instance)
		instance = ACCT_DEFAULT_INSTANCE;
	if (!acct_instance_valid(instance)) {
		log_err("handshake accounting: instance name '%s' is invalid: use 1 to %d of "
			"A-Z a-z 0-9 _ . - (not starting with '.')", instance, ACCT_INSTANCE_MAX);
		return -EINVAL;
	}
	snprintf(state.instance, sizeof(state.instance), "%s", instance);
	acct_epoch++;
	atomic_store(&meta_refused, false);
	if (may_use_bpf && bpf_loader_start(instance, &state.bpf, why, sizeof(why)) == 0) {
		state.meta_fd = bpf_loader_meta_fd(state.bpf);
		state.source = ACCT_SOURCE_BPF;
		snprintf(state.describe, sizeof(state.describe), "BPF pinned maps %s",
			 bpf_loader_pin_dir(state.bpf));
		retire_old_snapshot();
		log_info("handshake accounting: BPF program attached to mtlsd:handshake_end, "
			 "maps pinned in %s", bpf_loader_pin_dir(state.bpf));
		return 0;
	}
	return fallback_start(why);
}

int acct_start(void)
{
	if (state.source != ACCT_SOURCE_FALLBACK || state.publisher)
		return 0;
	int rc = acct_publisher_start(state.table, state.snapshot_path, state.reason,
				      &state.publisher);
	if (rc < 0)
		log_err("handshake accounting: cannot start publishing %s: %s", state.snapshot_path,
			strerror(-rc));
	return rc;
}

void acct_event_set_cert(struct acct_event *ev, const struct cert_identity *id)
{
	/* The key is the serial's DER content (lib/cert_serial.h), sign
	 * included, never cut: one longer than RFC 5280 allows (refused at
	 * verification) is counted under the no-certificate key. */
	size_t len = id->serial_len <= CERT_SERIAL_MAX ? id->serial_len : 0;

	memcpy(ev->issuer_id, id->issuer_id, sizeof(ev->issuer_id));
	memset(ev->serial, 0, sizeof(ev->serial));
	memcpy(ev->serial, id->serial, len);
	ev->serial_len = len;
	ev->subject_cn = id->subject_cn;
	ev->issuer = id->issuer;
	ev->not_after = id->not_after;
}

static void meta_fill(struct acct_meta *m, const struct acct_event *ev)
{
	memset(m, 0, sizeof(*m));
	m->not_after = ev->not_after;
	m->partner = ev->partner;
	/* Fixed-size fields: cut between two characters and valid UTF-8, so
	 * every reader (mtlsctl, /metrics, bpftool) gets text it can print. */
	utf8_copy_valid(m->partner_name, sizeof(m->partner_name), ev->partner_name);
	utf8_copy_valid(m->subject_cn, sizeof(m->subject_cn), ev->subject_cn);
	utf8_copy_valid(m->issuer, sizeof(m->issuer), ev->issuer);
}

/* Names go to the map once per identity per thread and then once every
 * META_REFRESH_S; a failed write is retried at the next handshake. */
static void meta_publish(const struct acct_key *key, const struct acct_event *ev)
{
	unsigned h = 0;
	struct acct_meta m;

	if (atomic_load_explicit(&meta_refused, memory_order_relaxed))
		return;
	for (size_t i = 0; i < sizeof(key->serial); i++)
		h = h * 31 + key->serial[i] + key->issuer_id[i % ACCT_ISSUER_ID_LEN];
	h %= META_CACHE_SLOTS;
	unsigned epoch = acct_epoch;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	if (meta_cache[h].epoch == epoch && now.tv_sec - meta_cache[h].written < META_REFRESH_S &&
	    memcmp(&meta_cache[h].key, key, sizeof(*key)) == 0)
		return;
	meta_fill(&m, ev);
	if (bpf_map_update_elem(state.meta_fd, key, &m, BPF_ANY) == 0) {
		meta_cache[h].epoch = epoch;
		meta_cache[h].written = now.tv_sec;
		meta_cache[h].key = *key;
	} else if (errno == EPERM && !atomic_exchange(&meta_refused, true)) {
		log_warn("handshake accounting: the kernel refuses writes to %s/%s after privileges "
			 "were dropped; counts continue but mtlsctl stats will not show names of "
			 "new certificates (keep CAP_BPF to keep them)",
			 bpf_loader_pin_dir(state.bpf), ACCT_MAP_META);
	}
}

void acct_handshake_end(const struct acct_event *ev)
{
	struct acct_key key;

	/* Only a handshake attributed to a partner (its chain verified up to
	 * one of that partner's CAs) is counted under its certificate. The
	 * rest (no certificate, an unknown CA, a bad signature, garbage) is
	 * counted per outcome under the one unattributed key: anyone can make
	 * certificates, and a record for each would evict the partners' own
	 * from the bounded tables. A serial longer than RFC 5280 allows
	 * cannot come from certinfo; count it there too rather than drop it. */
	if (ev->partner < 0 || acct_key_make(&key, ev->issuer_id, ev->serial, ev->serial_len) < 0)
		memset(&key, 0, sizeof(key));
	/* The probe hands the tracer a pointer: make sure the key is in memory
	 * before the probe's nop, whatever the optimizer thinks of it. */
	__asm__ __volatile__("" : : "r"(&key) : "memory");
	MTLSD_PROBE_HANDSHAKE_END(&key, (int)ev->outcome, ev->partner, (int)ev->tls_version,
				  (int)ev->cipher, ev->duration_ns);

	switch (state.source) {
	case ACCT_SOURCE_BPF:
		if (!acct_key_is_no_cert(&key))
			meta_publish(&key, ev);
		break;
	case ACCT_SOURCE_FALLBACK: {
		struct acct_sample s = {
			.bucket = acct_bucket_of((__u32)ev->outcome),
			.duration_ns = ev->duration_ns,
			.boot_ns = acct_boot_now_ns(),
			.partner = ev->partner < 0 ? ACCT_NO_PARTNER : (uint32_t)ev->partner,
			.tls_version = ev->tls_version,
			.cipher = ev->cipher,
		};
		if (acct_table_add(state.table, &key, &s) && !acct_key_is_no_cert(&key)) {
			struct acct_meta m;
			meta_fill(&m, ev);
			acct_table_set_meta(state.table, &key, &m);
		}
		break;
	}
	case ACCT_SOURCE_NONE:
	default:
		break;
	}
}

int acct_collect(struct acct_record **recs, size_t *n, struct acct_totals *totals,
		 uint64_t *capacity)
{
	*recs = NULL;
	*n = 0;
	switch (state.source) {
	case ACCT_SOURCE_BPF: {
		uint32_t max_entries = 0;
		GUARD(acct_map_check_layout(bpf_loader_stats_fd(state.bpf), &max_entries));
		*capacity = max_entries;
		GUARD(acct_read_totals(bpf_loader_totals_fd(state.bpf), totals));
		return acct_read_records(bpf_loader_stats_fd(state.bpf), state.meta_fd, recs, n);
	}
	case ACCT_SOURCE_FALLBACK: {
		size_t cap = acct_table_capacity(state.table);
		*recs = calloc(cap, sizeof(**recs));
		ENSURE_PTR(*recs, ENOMEM);
		*n = acct_table_snapshot(state.table, *recs, cap, totals);
		*capacity = cap;
		return 0;
	}
	case ACCT_SOURCE_NONE:
	default:
		return -ENODATA;
	}
}

enum acct_source acct_source(void)
{
	return state.source;
}

const char *acct_source_describe(void)
{
	return state.source == ACCT_SOURCE_NONE ? "not started" : state.describe;
}

void acct_shutdown(void)
{
	acct_publisher_stop(state.publisher);
	state.publisher = NULL;
	acct_table_free(state.table);
	state.table = NULL;
	bpf_loader_stop(state.bpf);
	state.bpf = NULL;
	state.meta_fd = -1;
	state.source = ACCT_SOURCE_NONE;
}
