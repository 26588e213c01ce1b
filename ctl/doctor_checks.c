/*
 * doctor_checks.c: mtlsctl doctor's judgements, pure functions of facts.
 *
 * Each check appends one result (the sysctl and certificate checks one per
 * value or file) with a status, what it found and what to do. The rule of
 * thumb for levels: fail when mtlsd will not start or will break partners
 * (io_uring unusable, descriptors below max_connections, an expired
 * certificate, ktls = on without the tls ULP); warn when it will run but
 * slower, less observable or closer to an outage (no kTLS, no BPF, a sysctl
 * under the profile, an unsynchronised clock, a certificate near expiry).
 */
#include "doctor.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <linux/io_uring.h>

#include "config.h"
#include "string_table.h"

/* Keep in step with tuning/sysctl.d/60-mtlsd.conf (test_doctor compares). */
const struct doctor_profile_entry doctor_profile[] = {
	{ "net.core.somaxconn", "8192", DOCTOR_CMP_AT_LEAST },
	{ "net.ipv4.tcp_max_syn_backlog", "8192", DOCTOR_CMP_AT_LEAST },
	{ "net.ipv4.tcp_syncookies", "1", DOCTOR_CMP_EXACT },
	{ "net.core.netdev_max_backlog", "16384", DOCTOR_CMP_AT_LEAST },
	{ "net.ipv4.ip_local_port_range", "10240 65535", DOCTOR_CMP_RANGE },
	{ "net.ipv4.tcp_tw_reuse", "1", DOCTOR_CMP_EXACT },
	{ "net.core.rmem_max", "16777216", DOCTOR_CMP_AT_LEAST },
	{ "net.core.wmem_max", "16777216", DOCTOR_CMP_AT_LEAST },
	{ "net.ipv4.tcp_rmem", "4096 131072 16777216", DOCTOR_CMP_AT_LEAST },
	{ "net.ipv4.tcp_wmem", "4096 65536 16777216", DOCTOR_CMP_AT_LEAST },
	{ "net.ipv4.tcp_slow_start_after_idle", "0", DOCTOR_CMP_EXACT },
	{ "fs.file-max", "2097152", DOCTOR_CMP_AT_LEAST },
	{ "fs.nr_open", "1048576", DOCTOR_CMP_AT_LEAST },
	{ "net.core.bpf_jit_enable", "1", DOCTOR_CMP_EXACT },
};
const size_t doctor_profile_len = ARRAY_SIZE(doctor_profile);
_Static_assert(ARRAY_SIZE(doctor_profile) <= DOCTOR_MAX_SYSCTLS, "facts hold every profile sysctl");

static const char *const status_names[DOCTOR_STATUS_MAX] = {
	[DOCTOR_PASS] = "pass", [DOCTOR_SKIP] = "skip", [DOCTOR_WARN] = "warn", [DOCTOR_FAIL] = "fail",
};

DEFINE_STRING_TABLE(doctor_status, enum doctor_status, status_names, "?")

void doctor_add(struct doctor_report *rep, const char *name, enum doctor_status st,
		const char *remedy, const char *fmt, ...)
{
	if (rep->n == DOCTOR_MAX_RESULTS)
		return;
	struct doctor_result *r = &rep->r[rep->n++];
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->status = st;
	snprintf(r->remedy, sizeof(r->remedy), "%s", remedy ? remedy : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
}

static bool kernel_at_least(const struct doctor_facts *f, unsigned major, unsigned minor)
{
	return f->kernel_major > major || (f->kernel_major == major && f->kernel_minor >= minor);
}

void doctor_check_tls_ulp(const struct doctor_facts *f, struct doctor_report *rep)
{
	/* Without kTLS mtlsd still serves, in user space, unless told ktls = on. */
	enum doctor_status missing = f->have_config && f->ktls == KTLS_MODE_ON ? DOCTOR_FAIL : DOCTOR_WARN;

	if (f->tls_ulp_rc == 0 && f->tls_loaded_before)
		doctor_add(rep, "tls-ulp", DOCTOR_PASS, NULL, "kernel TLS available (tls ULP attached to a "
		    "loopback socket, module loaded)");
	else if (f->tls_ulp_rc == 0)
		/* The kernel autoloads a ULP module only for CAP_NET_ADMIN, which
		 * mtlsd's workers no longer have after the privilege drop. */
		doctor_add(rep, "tls-ulp", DOCTOR_WARN, "echo tls > /etc/modules-load.d/mtlsd.conf "
		    "(tuning/modules-load.d/mtlsd.conf)", "kernel TLS available, but the tls module was "
		    "loaded just now by this probe; mtlsd, unprivileged, could not load it");
	else if (f->tls_modprobe_ok)
		doctor_add(rep, "tls-ulp", DOCTOR_WARN, "modprobe tls; echo tls > /etc/modules-load.d/mtlsd.conf",
		    "tls ULP not loaded, but the tls module is available");
	else if (missing == DOCTOR_FAIL)
		doctor_add(rep, "tls-ulp", DOCTOR_FAIL, "use a kernel built with CONFIG_TLS, or set ktls = auto",
		    "ktls = on but the kernel has no tls ULP (%s)", strerror(-f->tls_ulp_rc));
	else
		doctor_add(rep, "tls-ulp", DOCTOR_WARN, "use a kernel built with CONFIG_TLS=m (Debian's is) "
		    "for kernel TLS offload", "kernel has no tls ULP (%s): mtlsd keeps TLS in user space",
		    strerror(-f->tls_ulp_rc));
}

void doctor_check_io_uring(const struct doctor_facts *f, struct doctor_report *rep)
{
	char ops[160];

	if (f->uring_disabled == 2 || f->uring_setup_rc < 0) {
		doctor_add(rep, "io_uring", DOCTOR_FAIL, "sysctl -w kernel.io_uring_disabled=0 and allow "
		    "io_uring_setup in any seccomp/container policy",
		    "io_uring unusable (kernel.io_uring_disabled=%d, setup: %s); mtlsd cannot run",
		    f->uring_disabled, f->uring_setup_rc < 0 ? strerror(-f->uring_setup_rc) : "ok");
		return;
	}
	uring_needs_missing(f->uring_ops, ops, sizeof(ops));
	if (ops[0] || !kernel_at_least(f, 5, 19) || f->uring_buf_ring_rc < 0 ||
	    !(f->uring_features & IORING_FEAT_FAST_POLL)) {
		doctor_add(rep, "io_uring", DOCTOR_FAIL, "run a kernel >= 5.19 (Debian 12's 6.1 is fine)",
		    "io_uring lacks what mtlsd uses: ops [%s], kernel %u.%u (multishot accept needs "
		    "5.19), provided buffer ring: %s, fast poll: %s", ops, f->kernel_major,
		    f->kernel_minor, f->uring_buf_ring_rc < 0 ? strerror(-f->uring_buf_ring_rc) : "ok",
		    f->uring_features & IORING_FEAT_FAST_POLL ? "yes" : "no");
		return;
	}
	if (f->uring_disabled == 1) {
		doctor_add(rep, "io_uring", DOCTOR_WARN, "sysctl -w kernel.io_uring_disabled=0, or put mtlsd's "
		    "user in the group kernel.io_uring_group names",
		    "io_uring limited to privileged processes (kernel.io_uring_disabled=1): workers "
		    "start after the privilege drop");
		return;
	}
	doctor_add(rep, "io_uring", DOCTOR_PASS, NULL, "io_uring enabled: multishot accept, provided buffer "
	    "rings, every op mtlsd uses");
}

void doctor_check_bpf(const struct doctor_facts *f, struct doctor_report *rep)
{
	/* Accounting falls back to an in-process count without BPF, so a
	 * missing piece is a warning, and only when accounting is wanted. */
	enum doctor_status lack = f->acct_wanted ? DOCTOR_WARN : DOCTOR_SKIP;

	if (f->bpf_rc < 0)
		doctor_add(rep, "bpf", lack, "run mtlsd as root or with CAP_BPF and CAP_PERFMON (the unit's "
		    "CapabilityBoundingSet)", "BPF not allowed (%s): accounting uses the in-process "
		    "fallback", strerror(-f->bpf_rc));
	else if (!f->btf_vmlinux)
		doctor_add(rep, "bpf", lack, "use a kernel with CONFIG_DEBUG_INFO_BTF (Debian's has it)",
		    "BPF allowed but /sys/kernel/btf/vmlinux is missing");
	else if (f->bpf_jit_enable == 0)
		doctor_add(rep, "bpf", DOCTOR_WARN, "sysctl -w net.core.bpf_jit_enable=1",
		    "BPF allowed, but the JIT is off: programs run interpreted");
	else
		doctor_add(rep, "bpf", DOCTOR_PASS, NULL, "BPF allowed, BTF present, JIT %s",
		    f->bpf_jit_enable < 0 ? "state unknown" : "on");

	if (f->bpffs_mounted)
		doctor_add(rep, "bpffs", DOCTOR_PASS, NULL, "/sys/fs/bpf is a bpf filesystem");
	else
		doctor_add(rep, "bpffs", lack == DOCTOR_WARN ? DOCTOR_WARN : DOCTOR_SKIP,
		    "mount -t bpf bpf /sys/fs/bpf (systemd does at boot; containers may not)",
		    "/sys/fs/bpf is not mounted: maps cannot be pinned for mtlsctl stats");
}

void doctor_check_nofile(const struct doctor_facts *f, struct doctor_report *rep)
{
	uint64_t need = config_fds_needed(f->max_connections, f->workers);
	char remedy[160], whose[32] = "";

	if (f->nofile_pid)
		snprintf(whose, sizeof(whose), " of pid %d", f->nofile_pid);

	snprintf(remedy, sizeof(remedy), "LimitNOFILE=%" PRIu64 " in the unit (tuning/systemd/mtlsd.service), "
		 "or nofile in tuning/limits.d/mtlsd.conf", need);
	if (f->nr_open && f->nr_open < need)
		doctor_add(rep, "nofile", DOCTOR_FAIL, "sysctl -w fs.nr_open=1048576 (tuning/sysctl.d/60-mtlsd.conf)",
		    "fs.nr_open=%" PRIu64 " is below the %" PRIu64 " descriptors max_connections=%u needs",
		    f->nr_open, need, f->max_connections);
	else if (f->nofile_hard < need)
		doctor_add(rep, "nofile", DOCTOR_FAIL, remedy, "descriptor limit%s %" PRIu64 " (hard) is below "
		    "the %" PRIu64 " that max_connections=%u needs", whose, f->nofile_hard, need,
		    f->max_connections);
	else if (f->nofile_soft < need)
		doctor_add(rep, "nofile", DOCTOR_WARN, remedy, "soft descriptor limit%s %" PRIu64 " is below "
		    "the %" PRIu64 " that max_connections=%u needs (the hard limit %" PRIu64 " allows it)",
		    whose, f->nofile_soft, need, f->max_connections, f->nofile_hard);
	else
		doctor_add(rep, "nofile", DOCTOR_PASS, NULL, "descriptor limit%s %" PRIu64 " covers "
		    "max_connections=%u (%" PRIu64 " needed)", whose, f->nofile_soft, f->max_connections, need);
}

/* Compare "a b c" with the profile's fields. */
static bool sysctl_meets(const char *have, const struct doctor_profile_entry *p)
{
	unsigned long long h[4], w[4];
	int nh = sscanf(have, "%llu %llu %llu %llu", &h[0], &h[1], &h[2], &h[3]);
	int nw = sscanf(p->value, "%llu %llu %llu %llu", &w[0], &w[1], &w[2], &w[3]);

	if (nh != nw || nw < 1)
		return false;
	switch (p->cmp) {
	case DOCTOR_CMP_EXACT:
		for (int i = 0; i < nw; i++)
			if (h[i] != w[i])
				return false;
		return true;
	case DOCTOR_CMP_RANGE:
		return nw == 2 && h[0] <= w[0] && h[1] >= w[1];
	case DOCTOR_CMP_AT_LEAST:
		for (int i = 0; i < nw; i++)
			if (h[i] < w[i])
				return false;
		return true;
	default:
		return false;
	}
}

void doctor_check_sysctls(const struct doctor_facts *f, struct doctor_report *rep)
{
	static const char *const how[] = {
		[DOCTOR_CMP_AT_LEAST] = "at least", [DOCTOR_CMP_EXACT] = "", [DOCTOR_CMP_RANGE] = "covering",
	};

	for (size_t i = 0; i < f->n_sysctls && i < doctor_profile_len; i++) {
		const struct doctor_profile_entry *p = &doctor_profile[i];
		const char *have = f->sysctls[i].value;
		char name[56], remedy[160];

		snprintf(name, sizeof(name), "sysctl %s", p->name);
		snprintf(remedy, sizeof(remedy), "sysctl -w %s='%s' (tuning/sysctl.d/60-mtlsd.conf)",
			 p->name, p->value);
		if (have[0] == '\0')
			doctor_add(rep, name, DOCTOR_SKIP, NULL, "not present on this kernel");
		else if (sysctl_meets(have, p))
			doctor_add(rep, name, DOCTOR_PASS, NULL, "%s", have);
		else
			doctor_add(rep, name, DOCTOR_WARN, remedy, "%s; the profile wants %s%s%s", have,
			    how[p->cmp], how[p->cmp][0] ? " " : "", p->value);
	}
}

void doctor_check_all(const struct doctor_facts *f, struct doctor_report *rep)
{
	doctor_check_tls_ulp(f, rep);
	doctor_check_io_uring(f, rep);
	doctor_check_bpf(f, rep);
	doctor_check_nofile(f, rep);
	doctor_check_sysctls(f, rep);
	doctor_check_clock(f, rep);
	doctor_check_openssl(f, rep);
	doctor_check_cpu(f, rep);
	doctor_check_accel(f, rep);
	doctor_check_token_keys(f, rep);
	doctor_check_certs(f, rep);
}

enum doctor_status doctor_worst(const struct doctor_report *rep)
{
	enum doctor_status worst = DOCTOR_PASS;

	for (size_t i = 0; i < rep->n; i++)
		if (rep->r[i].status > worst)
			worst = rep->r[i].status;
	return worst;
}

int doctor_exit_code(const struct doctor_report *rep)
{
	switch (doctor_worst(rep)) {
	case DOCTOR_FAIL: return 2;
	case DOCTOR_WARN: return 1;
	default: return 0;
	}
}
