/*
 * doctor.h: `mtlsctl doctor`, whether this host can run mtlsd well.
 *
 * Two halves that never mix. Gathering (doctor_gather.c) asks the kernel,
 * /proc, the C library and OpenSSL, and fills a struct doctor_facts. Checking
 * (doctor_checks.c) is pure: each check reads facts and appends results, so
 * a unit test drives every pass/warn/fail branch with made-up facts, and a
 * result on this host is explained by the facts printed with --json.
 */
#ifndef MTLSCTL_DOCTOR_H
#define MTLSCTL_DOCTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "config.h"
#include "crypto_accel.h"
#include "guard.h"
#include "host_probe.h"

enum doctor_status { DOCTOR_PASS = 0, DOCTOR_SKIP, DOCTOR_WARN, DOCTOR_FAIL, DOCTOR_STATUS_MAX };

/* "pass", "skip", "warn", "fail" (lib/string_table.h), and back (-ENOENT). */
const char *doctor_status_name(enum doctor_status s);
int doctor_status_from_name(const char *s);

/* ---- facts ---------------------------------------------------------------- */

#define DOCTOR_MAX_SYSCTLS 24
#define DOCTOR_MAX_CERTS 64

struct doctor_sysctl {
	const char *name;  /* "net.core.somaxconn" (points into the profile table) */
	char value[64];    /* as /proc/sys shows it, blanks collapsed; "" = absent */
};

/* A certificate file (its earliest notAfter) or a CRL file (its earliest
 * nextUpdate: past it, mtlsd applies the partner's crl_expired policy). */
struct doctor_cert {
	char path[256];
	char role[48];     /* "server certificate 1", "partner.acme ca"; CRLs "partner.acme" */
	bool is_crl;
	bool crl_fail;     /* crl_expired = fail: an expired CRL refuses the partner */
	int load_rc;       /* 0, or why the file gave nothing */
	time_t not_after;  /* the earliest in the file */
	char subject[128]; /* of that certificate, or the CRL's issuer */
};

struct doctor_facts {
	char kernel_release[65];
	unsigned kernel_major, kernel_minor;
	time_t now;

	/* kernel TLS: setsockopt(TCP_ULP, "tls") on a connected loopback pair */
	int tls_ulp_rc;             /* 0 = attached; -ENOENT = no such ULP */
	bool tls_modprobe_ok;       /* `modprobe -n tls` would load it */
	bool tls_loaded_before;     /* /proc/net/tls_stat existed before the probe */

	/* io_uring */
	int uring_disabled;         /* kernel.io_uring_disabled; -1 = no such sysctl */
	int uring_setup_rc;         /* io_uring_queue_init() */
	uint32_t uring_features;    /* IORING_FEAT_* of that ring */
	uint32_t uring_ops;         /* bit n: uring_needs[n] supported (lib/host_probe.h) */
	int uring_buf_ring_rc;      /* registering a provided-buffer ring */

	/* BPF */
	int bpf_rc;                 /* creating a one-entry array map */
	int unprivileged_bpf_disabled; /* -1 = unknown */
	bool bpffs_mounted;
	bool btf_vmlinux;
	int bpf_jit_enable;         /* -1 = unknown */
	bool acct_wanted;           /* the config asks for BPF accounting */

	/* descriptors */
	uint64_t nofile_soft, nofile_hard, nr_open;
	int nofile_pid;             /* whose limits: 0 = doctor's own, else --pid */
	unsigned max_connections;   /* from the config, or its default */
	unsigned workers;

	/* the sysctl profile, values as found here, in profile order */
	struct doctor_sysctl sysctls[DOCTOR_MAX_SYSCTLS];
	size_t n_sysctls;

	/* clock (adjtimex) */
	int clock_state;            /* TIME_OK..TIME_ERROR, or -errno */
	bool clock_unsync;          /* STA_UNSYNC */
	long clock_maxerror_us;

	/* OpenSSL and the CPU */
	unsigned long openssl_num;  /* OpenSSL_version_num() */
	char openssl_text[64];
	bool openssl_ktls;          /* built without OPENSSL_NO_KTLS */
	bool cpu_aes, cpu_pclmul, cpu_avx2, cpu_vaes, cpu_sha;
	bool cpu_known;             /* /proc/cpuinfo read (x86 flags) */
	bool cpu_avx512;            /* avx512f in /proc/cpuinfo */
	struct crypto_cpu ossl_cpu; /* the features OpenSSL itself uses (lib/crypto_accel.h) */

	/* providers and engine, once the config's crypto keys are applied */
	int accel_rc;               /* crypto_accel_apply(): 0 or -errno */
	char accel_err[256];        /* its reason when accel_rc < 0 */
	char providers[128];        /* "default, pkcs11" */
	char engine[128];           /* "pkcs11 (pkcs11 engine)" or "none" */
	struct doctor_token_key {
		char ref[256];      /* the key URI, pin-value redacted */
		int rc;             /* keyref_load(): 0 or -errno */
		char err[256];      /* its reason */
	} token_keys[CFG_MAX_SERVER_CERTS]; /* server keys given as URIs */
	size_t n_token_keys;

	/* configuration, when one was given */
	bool have_config;
	enum ktls_mode ktls;
	struct doctor_cert certs[DOCTOR_MAX_CERTS];
	size_t n_certs;
	unsigned expiry_warn_days;
};

/* ---- the sysctl profile ---------------------------------------------------- */

enum doctor_cmp {
	DOCTOR_CMP_AT_LEAST, /* every field >= the profile's */
	DOCTOR_CMP_EXACT,    /* the same value */
	DOCTOR_CMP_RANGE,    /* "lo hi": at least as wide as the profile's */
};

struct doctor_profile_entry {
	const char *name;
	const char *value;   /* as written in tuning/sysctl.d/60-mtlsd.conf */
	enum doctor_cmp cmp;
};

/* The profile doctor compares against; the test checks it matches the file. */
extern const struct doctor_profile_entry doctor_profile[];
extern const size_t doctor_profile_len;

/* ---- results ---------------------------------------------------------------- */

#define DOCTOR_MAX_RESULTS 64

struct doctor_result {
	char name[56];       /* "tls-ulp", "sysctl net.core.somaxconn" */
	enum doctor_status status;
	char detail[256];    /* what was found */
	char remedy[256];    /* what to do; "" when status is pass */
};

struct doctor_report {
	struct doctor_result r[DOCTOR_MAX_RESULTS];
	size_t n;
};

/* Append a result; remedy NULL for none. Results past DOCTOR_MAX_RESULTS
 * are dropped, never written out of bounds. */
void doctor_add(struct doctor_report *rep, const char *name, enum doctor_status st,
		const char *remedy, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Every check, in output order. Pure: reads f, appends to rep. */
void doctor_check_all(const struct doctor_facts *f, struct doctor_report *rep);

void doctor_check_tls_ulp(const struct doctor_facts *f, struct doctor_report *rep);
void doctor_check_io_uring(const struct doctor_facts *f, struct doctor_report *rep);
void doctor_check_bpf(const struct doctor_facts *f, struct doctor_report *rep);
void doctor_check_nofile(const struct doctor_facts *f, struct doctor_report *rep);
void doctor_check_sysctls(const struct doctor_facts *f, struct doctor_report *rep);
void doctor_check_clock(const struct doctor_facts *f, struct doctor_report *rep);
void doctor_check_openssl(const struct doctor_facts *f, struct doctor_report *rep);
void doctor_check_cpu(const struct doctor_facts *f, struct doctor_report *rep);
void doctor_check_accel(const struct doctor_facts *f, struct doctor_report *rep);
void doctor_check_token_keys(const struct doctor_facts *f, struct doctor_report *rep);
void doctor_check_certs(const struct doctor_facts *f, struct doctor_report *rep);

/* The worst status in rep; 0/1/2 for pass(or skip)/warn/fail. */
enum doctor_status doctor_worst(const struct doctor_report *rep);
int doctor_exit_code(const struct doctor_report *rep);

/* ---- gathering and output ----------------------------------------------------- */

/*
 * Fill f from this host. cfg may be NULL (no --config): limits use the
 * defaults and no certificates are checked. Never fails: a probe that
 * cannot run records its errno as the fact.
 */
void doctor_gather(struct doctor_facts *f, const struct mtlsd_config *cfg);

/*
 * Replace the descriptor limits in f with those of a running process (the
 * "Max open files" line of /proc/PID/limits), so doctor judges mtlsd's
 * limits rather than its own. -ENOENT for no such process, -EINVAL for an
 * unreadable line.
 */
int doctor_gather_nofile_of(struct doctor_facts *f, int pid) MUST_CHECK;

/* One line per result: "STATUS  NAME  detail; fix: remedy". */
void doctor_print_text(FILE *out, const struct doctor_report *rep);

/* {"checks":[{"name","status","detail","remedy"}...],"summary":{...},"exit":N} */
void doctor_print_json(FILE *out, const struct doctor_report *rep);

#endif
