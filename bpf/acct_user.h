/*
 * acct_user.h: the user-space side of the accounting layout, shared by
 * mtlsd (dataplane/acct/acct.c) and mtlsctl stats (ctl/stats_*.c).
 *
 * Where things live for an instance (both readers and the writer agree
 * here, nowhere else), the snapshot file that publishes the in-process
 * fallback counters when BPF cannot be used, and the arithmetic readers do
 * on a record (quantiles from the log2 histogram, boot-time to wall-clock).
 */
#ifndef MTLS_BPF_ACCT_USER_H
#define MTLS_BPF_ACCT_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "guard.h"
#include "bpf/acct.h"

#define ACCT_DEFAULT_INSTANCE "default"
#define ACCT_INSTANCE_MAX 32
#define ACCT_BPFFS "/sys/fs/bpf"
#define ACCT_PIN_ROOT ACCT_BPFFS "/mtlsd"
#define ACCT_RUNTIME_ROOT "/run/mtlsd"       /* unless $RUNTIME_DIRECTORY */
#define ACCT_SNAPSHOT_NAME "stats.bin"
#define ACCT_SNAPSHOT_MAGIC "MTLSACCT"

/* One certificate as every reader sees it, whatever the source. */
struct acct_record {
	struct acct_key key;
	__u32 has_meta;                /* meta below was written by mtlsd */
	struct acct_counters c;
	struct acct_meta meta;
};

/* Header of the fallback snapshot file, followed by n_records records. */
struct acct_snapshot_header {
	char magic[8];                 /* ACCT_SNAPSHOT_MAGIC, no NUL */
	__u32 layout_version;          /* ACCT_LAYOUT_VERSION */
	__u32 record_size;             /* sizeof(struct acct_record) */
	__u32 n_records;
	__u32 pid;                     /* the writing mtlsd */
	__u64 written_boot_ns;         /* CLOCK_BOOTTIME at write */
	__u64 capacity;                /* bound of the in-process table */
	struct acct_totals totals;
	char reason[160];              /* why BPF is not in use */
};

/* Instance names: 1..32 of [A-Za-z0-9_.-], not starting with '.'. They
 * become path components, so nothing else is accepted. */
bool acct_instance_valid(const char *name);

/* "/sys/fs/bpf/mtlsd/<instance>". -EINVAL bad name, -ENAMETOOLONG. */
int acct_pin_dir(const char *instance, char *buf, size_t len) MUST_CHECK;

/* "<$RUNTIME_DIRECTORY or /run/mtlsd>/<instance>" (the runtime_root
 * argument overrides both when not NULL). */
int acct_runtime_dir(const char *runtime_root, const char *instance, char *buf, size_t len) MUST_CHECK;

/* Write header + records to path atomically (temp file, rename), mode 0640.
 * Returns 0 or -errno. */
int acct_snapshot_write(const char *path, const struct acct_snapshot_header *h,
			const struct acct_record *recs, size_t n) MUST_CHECK;

/* Read a snapshot. -ENOENT missing, -EBADMSG bad magic/size, -EPROTO other
 * layout version. *recs is malloc'd (NULL when empty), caller frees. */
int acct_snapshot_read(const char *path, struct acct_snapshot_header *h,
		       struct acct_record **recs, size_t *n) MUST_CHECK;

/*
 * Make a record read from a map or a file safe to print: strings
 * terminated, serial_len within the array. Readers call it on everything
 * they did not write themselves (anyone with CAP_BPF can write the maps).
 */
void acct_record_sanitize(struct acct_record *r);

/* Build the key of a certificate; serial_len 0 (or NULL ids) gives the
 * "no certificate" key. serial_len above ACCT_SERIAL_MAX is -EINVAL. */
int acct_key_make(struct acct_key *key, const uint8_t *issuer_id, const uint8_t *serial,
		  size_t serial_len) MUST_CHECK;

/* The unattributed key: handshakes without a certificate, or whose chain
 * did not verify up to a partner's CA (dataplane/acct/acct.h). */
bool acct_key_is_no_cert(const struct acct_key *key);

/* "4F:A2:.." upper-case, or "-" for the no-certificate key. buf holds at
 * least ACCT_SERIAL_MAX * 3 + 1 bytes. */
void acct_key_serial_hex(const struct acct_key *key, char *buf, size_t len);

/* The partner a record belongs to, for display: the name mtlsd wrote,
 * else "#<index>" of the last handshake, else "-". */
void acct_record_partner(const struct acct_record *r, char *buf, size_t len);

/* Sum of the outcome buckets, and of the failures (everything but ok). */
uint64_t acct_total(const struct acct_counters *c);
uint64_t acct_failures(const struct acct_counters *c);

/* Merge src into dst (counts and histogram added, last-seen fields from the
 * newer of the two). */
void acct_counters_merge(struct acct_counters *dst, const struct acct_counters *src);

/* Upper bound in ns of the histogram slot holding quantile q (0 < q <= 1),
 * 0 when the histogram is empty. An upper bound: "p99 <= X". */
uint64_t acct_hist_quantile_ns(const __u64 hist[ACCT_HIST_SLOTS], double q);

/* Wall-clock time of a CLOCK_BOOTTIME stamp (0 stays 0). */
time_t acct_boot_to_realtime(uint64_t boot_ns);

uint64_t acct_boot_now_ns(void);

#endif
