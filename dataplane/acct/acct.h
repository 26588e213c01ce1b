/*
 * acct.h: handshake accounting per client certificate.
 *
 * The connection code calls acct_handshake_end() once at the end of every
 * handshake, successful or not. That fires the USDT probe
 * mtlsd:handshake_end (probes.h); when mtlsd loaded the accounting BPF
 * program (bpf/acct.bpf.c) the kernel counts it into maps pinned under
 * /sys/fs/bpf/mtlsd/<instance>/. When BPF cannot be used (no privileges,
 * load failed, disabled) the same counters are kept in process
 * (acct_fallback.h) and published every second to
 * <runtime dir>/<instance>/stats.bin. mtlsctl stats reads either and says
 * which. docs/accounting.md describes both.
 *
 * Lifecycle, in main.c's order (docs/service.md):
 *   acct_init()   while privileged and single-threaded: loads BPF, or
 *                 prepares the fallback table (starts no thread);
 *   service_drop_privileges();
 *   acct_start()  still single-threaded: starts the fallback's publisher
 *                 thread (as the final user, who owns the snapshot);
 *   workers: acct_handshake_end() from any thread;
 *   acct_shutdown() once at exit, after workers stopped.
 */
#ifndef MTLSD_ACCT_H
#define MTLSD_ACCT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "certinfo.h"
#include "guard.h"
#include "outcome.h"

/* What the connection knows when a handshake ends. */
struct acct_event {
	/* The presented leaf's identity (certinfo.h), even when the handshake
	 * failed; serial_len 0 means no certificate was presented. Used only
	 * when partner >= 0: an unattributed handshake is counted per outcome
	 * under the unattributed key, never under the certificate it sent. */
	uint8_t issuer_id[CERT_ISSUER_ID_LEN];
	uint8_t serial[CERT_SERIAL_MAX];
	size_t serial_len;
	enum hs_outcome outcome;
	int partner;               /* partner index, -1 when not attributed (the
				    * chain did not verify up to a partner's CA) */
	uint16_t tls_version;      /* SSL_version(): 0x0303, 0x0304; 0 if none */
	uint16_t cipher;           /* SSL_CIPHER_get_protocol_id(); 0 if none */
	uint64_t duration_ns;      /* accept to handshake end */
	/* Names for mtlsctl stats. Read only while acct_handshake_end() runs,
	 * and only when this thread has not recorded them for this identity
	 * yet. Each may be NULL. */
	const char *partner_name;
	const char *subject_cn;
	const char *issuer;        /* RFC 2253 */
	time_t not_after;
};

enum acct_source {
	ACCT_SOURCE_NONE = 0,      /* acct_init() not called or failed */
	ACCT_SOURCE_BPF,           /* kernel counts into pinned maps */
	ACCT_SOURCE_FALLBACK,      /* mtlsd counts in process */
};

/*
 * Start accounting for instance (NULL: "default"). With may_use_bpf, load
 * and attach the BPF program if this process may (root, or CAP_BPF +
 * CAP_PERFMON); otherwise, or if that fails, use the in-process fallback
 * and say so once in the log with the reason. Returns -EINVAL for a bad
 * instance name (logged), -ENOMEM; BPF failures are not errors.
 */
int acct_init(const char *instance, bool may_use_bpf) MUST_CHECK;

/*
 * Start what needs a thread: the fallback's snapshot publisher (nothing
 * with BPF). Call once after the privilege drop, before workers start.
 * Until then fallback counts are kept but not published. Returns 0 or
 * -errno (thread creation failed; logged).
 */
int acct_start(void) MUST_CHECK;

/*
 * Fill the identity and name fields of ev from a certificate identity. The
 * name pointers point into id, which must outlive acct_handshake_end(ev).
 */
void acct_event_set_cert(struct acct_event *ev, const struct cert_identity *id);

/* Account one finished handshake: under its certificate when ev->partner
 * >= 0, else under the unattributed key (acct_key_is_no_cert). Never
 * fails, never blocks on I/O. */
void acct_handshake_end(const struct acct_event *ev);

enum acct_source acct_source(void);

struct acct_record;
struct acct_totals;

/*
 * A copy of every record and the totals of the source in use (the maps by
 * the fds mtlsd holds, or the in-process table), for /metrics. *recs is
 * malloc'd (caller frees); *capacity is the table's bound. -ENODATA before
 * acct_init().
 */
int acct_collect(struct acct_record **recs, size_t *n, struct acct_totals *totals,
		 uint64_t *capacity) MUST_CHECK;

/* "BPF pinned maps /sys/fs/bpf/mtlsd/default" or
 * "in-process fallback (BPF unavailable: <reason>)": for logs and status. */
const char *acct_source_describe(void);

/* Publish the fallback counters one last time, detach BPF (pinned maps
 * stay), free everything. Safe to call without acct_init(). */
void acct_shutdown(void);

#endif
