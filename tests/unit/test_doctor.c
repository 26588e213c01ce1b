/*
 * test_doctor.c: mtlsctl doctor's checks (ctl/doctor_checks*.c), driven
 * through every pass/warn/fail branch with made-up facts, plus the two
 * things facts cannot fake: the sysctl profile table matches
 * tuning/sysctl.d/60-mtlsd.conf, and the gathered tls ULP fact agrees with
 * what the kernel lists in tcp_available_ulp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/timex.h>
#include <unistd.h>

#include "doctor.h"
#include "skip_because.h"

#define DAY 86400

/* A host on which every check passes. */
static void good_facts(struct doctor_facts *f)
{
	memset(f, 0, sizeof(*f));
	strcpy(f->kernel_release, "6.1.0-28-amd64");
	f->kernel_major = 6;
	f->kernel_minor = 1;
	f->now = 1800000000;
	f->tls_loaded_before = true;
	f->uring_features = IORING_FEAT_FAST_POLL | IORING_FEAT_NODROP;
	f->uring_ops = URING_NEEDS_ALL;
	f->unprivileged_bpf_disabled = 2;
	f->bpffs_mounted = true;
	f->btf_vmlinux = true;
	f->bpf_jit_enable = 1;
	f->acct_wanted = true;
	f->nofile_soft = f->nofile_hard = 65536;
	f->nr_open = 1048576;
	f->max_connections = 10000;
	f->workers = 2;
	for (size_t i = 0; i < doctor_profile_len; i++) {
		f->sysctls[i].name = doctor_profile[i].name;
		strcpy(f->sysctls[i].value, doctor_profile[i].value);
	}
	f->n_sysctls = doctor_profile_len;
	f->clock_state = TIME_OK;
	f->clock_maxerror_us = 20000;
	f->openssl_num = 0x30000160L;
	strcpy(f->openssl_text, "OpenSSL 3.0.22");
	f->openssl_ktls = true;
	f->cpu_known = f->cpu_aes = f->cpu_pclmul = true;
	f->have_config = true;
	f->expiry_warn_days = 30;
	f->n_certs = 1;
	strcpy(f->certs[0].path, "/etc/mtlsd/partner-acme-ca.pem");
	strcpy(f->certs[0].role, "partner.acme ca");
	strcpy(f->certs[0].subject, "/CN=Acme Root");
	f->certs[0].not_after = f->now + 400 * DAY;
}

/* Run one check on f; return its only (or first) result. */
static const struct doctor_result *one(void (*check)(const struct doctor_facts *, struct doctor_report *),
				       const struct doctor_facts *f)
{
	static struct doctor_report rep;
	memset(&rep, 0, sizeof(rep));
	check(f, &rep);
	assert_true(rep.n >= 1);
	return &rep.r[0];
}

static void assert_result(const struct doctor_result *r, enum doctor_status st, const char *detail_part)
{
	if (r->status != st || !strstr(r->detail, detail_part))
		fail_msg("%s: got %s '%s', want %s containing '%s'", r->name,
			 doctor_status_name(r->status), r->detail, doctor_status_name(st), detail_part);
	/* Anything short of a pass says what to do. */
	if (st == DOCTOR_WARN || st == DOCTOR_FAIL)
		assert_true(r->remedy[0] != '\0');
}

static void test_doctor_all_pass_exits_0(void **state)
{
	static struct doctor_facts f;
	static struct doctor_report rep;

	good_facts(&f);
	doctor_check_all(&f, &rep);
	for (size_t i = 0; i < rep.n; i++)
		if (rep.r[i].status != DOCTOR_PASS)
			fail_msg("%s: %s %s", rep.r[i].name, doctor_status_name(rep.r[i].status), rep.r[i].detail);
	assert_int_equal(doctor_exit_code(&rep), 0);
}

static void test_doctor_exit_code_warn_1_fail_2(void **state)
{
	static struct doctor_facts f;
	static struct doctor_report rep;

	good_facts(&f);
	f.tls_ulp_rc = -ENOENT;
	doctor_check_all(&f, &rep);
	assert_int_equal(doctor_exit_code(&rep), 1);
	memset(&rep, 0, sizeof(rep));
	f.uring_setup_rc = -EPERM;
	doctor_check_all(&f, &rep);
	assert_int_equal(doctor_exit_code(&rep), 2);
	/* skip alone does not raise the exit code */
	memset(&rep, 0, sizeof(rep));
	doctor_add(&rep, "x", DOCTOR_SKIP, NULL, "n/a");
	assert_int_equal(doctor_exit_code(&rep), 0);
}

static void test_doctor_tls_ulp(void **state)
{
	struct doctor_facts f;

	good_facts(&f);
	assert_result(one(doctor_check_tls_ulp, &f), DOCTOR_PASS, "kernel TLS available");
	f.tls_loaded_before = false;
	assert_result(one(doctor_check_tls_ulp, &f), DOCTOR_WARN, "loaded just now by this probe");
	f.tls_ulp_rc = -ENOENT;
	f.tls_modprobe_ok = true;
	assert_result(one(doctor_check_tls_ulp, &f), DOCTOR_WARN, "tls module is available");
	assert_non_null(strstr(one(doctor_check_tls_ulp, &f)->remedy, "modprobe tls"));
	f.tls_modprobe_ok = false;
	assert_result(one(doctor_check_tls_ulp, &f), DOCTOR_WARN, "kernel has no tls ULP");
	f.ktls = KTLS_MODE_ON;
	assert_result(one(doctor_check_tls_ulp, &f), DOCTOR_FAIL, "ktls = on but the kernel has no tls ULP");
}

static void test_doctor_io_uring(void **state)
{
	struct doctor_facts f;

	good_facts(&f);
	assert_result(one(doctor_check_io_uring, &f), DOCTOR_PASS, "io_uring enabled");
	f.uring_disabled = 1;
	assert_result(one(doctor_check_io_uring, &f), DOCTOR_WARN, "kernel.io_uring_disabled=1");
	f.uring_disabled = 2;
	assert_result(one(doctor_check_io_uring, &f), DOCTOR_FAIL, "io_uring unusable");
	good_facts(&f);
	f.uring_setup_rc = -ENOSYS;
	assert_result(one(doctor_check_io_uring, &f), DOCTOR_FAIL, "io_uring unusable");
	good_facts(&f);
	f.uring_ops &= ~(1u << URING_NEED_NOP);
	assert_result(one(doctor_check_io_uring, &f), DOCTOR_FAIL, "ops [nop]");
	/* The ops only the control thread (msg_ring) and the kTLS relay
	 * (sendmsg, poll_add) submit count as much as the accept loop's. */
	good_facts(&f);
	f.uring_ops &= ~(1u << URING_NEED_MSG_RING);
	assert_result(one(doctor_check_io_uring, &f), DOCTOR_FAIL, "ops [msg_ring]");
	good_facts(&f);
	f.uring_ops &= ~((1u << URING_NEED_SENDMSG) | (1u << URING_NEED_POLL_ADD));
	assert_result(one(doctor_check_io_uring, &f), DOCTOR_FAIL, "ops [sendmsg,poll_add]");
	good_facts(&f);
	f.kernel_major = 5;
	f.kernel_minor = 15;
	assert_result(one(doctor_check_io_uring, &f), DOCTOR_FAIL, "kernel 5.15");
	good_facts(&f);
	f.uring_buf_ring_rc = -EINVAL;
	assert_result(one(doctor_check_io_uring, &f), DOCTOR_FAIL, "provided buffer ring: Invalid");
}

static void test_doctor_bpf(void **state)
{
	struct doctor_facts f;
	struct doctor_report rep = { 0 };

	good_facts(&f);
	doctor_check_bpf(&f, &rep);
	assert_result(&rep.r[0], DOCTOR_PASS, "BPF allowed, BTF present, JIT on");
	assert_result(&rep.r[1], DOCTOR_PASS, "bpf filesystem");
	f.bpf_jit_enable = 0;
	assert_result(one(doctor_check_bpf, &f), DOCTOR_WARN, "JIT is off");
	f.btf_vmlinux = false;
	assert_result(one(doctor_check_bpf, &f), DOCTOR_WARN, "vmlinux is missing");
	f.bpf_rc = -EPERM;
	assert_result(one(doctor_check_bpf, &f), DOCTOR_WARN, "BPF not allowed (Operation not permitted)");
	f.acct_wanted = false;
	assert_result(one(doctor_check_bpf, &f), DOCTOR_SKIP, "BPF not allowed");
	good_facts(&f);
	f.bpffs_mounted = false;
	memset(&rep, 0, sizeof(rep));
	doctor_check_bpf(&f, &rep);
	assert_result(&rep.r[1], DOCTOR_WARN, "not mounted");
}

static void test_doctor_nofile(void **state)
{
	struct doctor_facts f;
	uint64_t need = config_fds_needed(10000, 2);

	assert_true(need > 20000 && need < 21000);
	good_facts(&f);
	assert_result(one(doctor_check_nofile, &f), DOCTOR_PASS, "covers max_connections=10000");
	f.nofile_soft = 1024;
	assert_result(one(doctor_check_nofile, &f), DOCTOR_WARN, "soft descriptor limit 1024");
	f.nofile_hard = need - 1;
	assert_result(one(doctor_check_nofile, &f), DOCTOR_FAIL, "(hard) is below");
	assert_non_null(strstr(one(doctor_check_nofile, &f)->remedy, "LimitNOFILE="));
	good_facts(&f);
	f.nr_open = 4096;
	assert_result(one(doctor_check_nofile, &f), DOCTOR_FAIL, "fs.nr_open=4096");
	good_facts(&f);
	f.nofile_pid = 4242;
	f.nofile_soft = 1024;
	assert_result(one(doctor_check_nofile, &f), DOCTOR_WARN, "soft descriptor limit of pid 4242 1024");
	/* exactly enough is enough */
	good_facts(&f);
	f.nofile_soft = f.nofile_hard = need;
	assert_result(one(doctor_check_nofile, &f), DOCTOR_PASS, "covers");
}

/* The result for one sysctl after setting its value. */
static const struct doctor_result *sysctl_with(const char *name, const char *value)
{
	static struct doctor_facts f;
	static struct doctor_report rep;

	good_facts(&f);
	memset(&rep, 0, sizeof(rep));
	for (size_t i = 0; i < f.n_sysctls; i++)
		if (strcmp(f.sysctls[i].name, name) == 0)
			strcpy(f.sysctls[i].value, value);
	doctor_check_sysctls(&f, &rep);
	for (size_t i = 0; i < rep.n; i++)
		if (strstr(rep.r[i].name, name))
			return &rep.r[i];
	fail_msg("no result for %s", name);
	return NULL;
}

static void test_doctor_sysctls(void **state)
{
	/* at least: larger passes, smaller warns */
	assert_result(sysctl_with("net.core.somaxconn", "65535"), DOCTOR_PASS, "65535");
	assert_result(sysctl_with("net.core.somaxconn", "4096"), DOCTOR_WARN, "wants at least 8192");
	/* every field of a triple */
	assert_result(sysctl_with("net.ipv4.tcp_wmem", "4096 65536 33554432"), DOCTOR_PASS, "33554432");
	assert_result(sysctl_with("net.ipv4.tcp_wmem", "4096 16384 33554432"), DOCTOR_WARN, "4096 16384");
	/* exact */
	assert_result(sysctl_with("net.ipv4.tcp_tw_reuse", "1"), DOCTOR_PASS, "1");
	assert_result(sysctl_with("net.ipv4.tcp_tw_reuse", "2"), DOCTOR_WARN, "wants 1");
	/* range: at least as wide */
	assert_result(sysctl_with("net.ipv4.ip_local_port_range", "1024 65535"), DOCTOR_PASS, "1024");
	assert_result(sysctl_with("net.ipv4.ip_local_port_range", "32768 60999"), DOCTOR_WARN, "covering");
	/* absent or garbled */
	assert_result(sysctl_with("net.core.bpf_jit_enable", ""), DOCTOR_SKIP, "not present");
	assert_result(sysctl_with("net.core.rmem_max", "lots"), DOCTOR_WARN, "lots");
	assert_non_null(strstr(sysctl_with("net.core.rmem_max", "1")->remedy,
			       "sysctl -w net.core.rmem_max='16777216'"));
}

static void test_doctor_clock(void **state)
{
	struct doctor_facts f;

	good_facts(&f);
	assert_result(one(doctor_check_clock, &f), DOCTOR_PASS, "clock synchronised");
	f.clock_maxerror_us = 16000000;
	assert_result(one(doctor_check_clock, &f), DOCTOR_WARN, "maximum error is 16000 ms");
	f.clock_unsync = true;
	assert_result(one(doctor_check_clock, &f), DOCTOR_WARN, "not synchronised");
	good_facts(&f);
	f.clock_state = TIME_ERROR;
	assert_result(one(doctor_check_clock, &f), DOCTOR_WARN, "not synchronised (adjtimex state 5");
	f.clock_state = -EPERM;
	assert_result(one(doctor_check_clock, &f), DOCTOR_WARN, "cannot read the clock state");
}

static void test_doctor_openssl_and_cpu(void **state)
{
	struct doctor_facts f;

	good_facts(&f);
	assert_result(one(doctor_check_openssl, &f), DOCTOR_PASS, "before 3.2");
	f.openssl_num = 0x30200000L;
	assert_result(one(doctor_check_openssl, &f), DOCTOR_PASS, "kTLS support compiled in");
	assert_null(strstr(one(doctor_check_openssl, &f)->detail, "before 3.2"));
	f.openssl_ktls = false;
	assert_result(one(doctor_check_openssl, &f), DOCTOR_WARN, "without kTLS");
	f.openssl_num = 0x1010117fL;
	assert_result(one(doctor_check_openssl, &f), DOCTOR_FAIL, "needs OpenSSL 3");

	good_facts(&f);
	assert_result(one(doctor_check_cpu, &f), DOCTOR_PASS, "AES-NI, PCLMULQDQ");
	f.cpu_aes = false;
	assert_result(one(doctor_check_cpu, &f), DOCTOR_WARN, "no AES-NI");
	f.cpu_known = false;
	assert_result(one(doctor_check_cpu, &f), DOCTOR_SKIP, "no x86 flags");
}

static void test_doctor_certs(void **state)
{
	struct doctor_facts f;

	good_facts(&f);
	assert_result(one(doctor_check_certs, &f), DOCTOR_PASS, "earliest expiry in 400 days");
	f.certs[0].not_after = f.now + 10 * DAY;
	assert_result(one(doctor_check_certs, &f), DOCTOR_WARN, "expires in 10 days");
	f.expiry_warn_days = 7;
	assert_result(one(doctor_check_certs, &f), DOCTOR_PASS, "in 10 days");
	f.certs[0].not_after = f.now - 3 * DAY;
	assert_result(one(doctor_check_certs, &f), DOCTOR_FAIL, "expired 3 days ago");
	f.certs[0].not_after = f.now - DAY;
	assert_result(one(doctor_check_certs, &f), DOCTOR_FAIL, "expired 1 day ago");
	f.certs[0].load_rc = -ENOENT;
	assert_result(one(doctor_check_certs, &f), DOCTOR_FAIL, "No such file");
	f.have_config = false;
	assert_result(one(doctor_check_certs, &f), DOCTOR_SKIP, "no configuration given");
}

static void test_doctor_crls(void **state)
{
	struct doctor_facts f;
	struct doctor_cert *c;

	good_facts(&f);
	c = &f.certs[0];
	c->is_crl = true;
	c->crl_fail = true;
	strcpy(c->role, "partner.acme");
	c->not_after = f.now + 5 * DAY;
	assert_result(one(doctor_check_certs, &f), DOCTOR_PASS, "next update due in 5 days");
	c->not_after = f.now + 6 * 3600;
	assert_result(one(doctor_check_certs, &f), DOCTOR_WARN, "goes stale in 6 hours");
	c->not_after = f.now - DAY;
	assert_result(one(doctor_check_certs, &f), DOCTOR_FAIL, "stale since 1 day (crl_expired = fail");
	c->crl_fail = false;
	assert_result(one(doctor_check_certs, &f), DOCTOR_WARN, "(crl_expired = allow)");
	c->load_rc = -EBADMSG;
	assert_result(one(doctor_check_certs, &f), DOCTOR_FAIL, "Bad message");
}

static void test_doctor_json_escapes(void **state)
{
	static struct doctor_report rep;
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);

	doctor_add(&rep, "cert partner.x ca", DOCTOR_WARN, "renew \"it\"", "subject '/CN=a\\b'\n");
	doctor_print_json(mem, &rep);
	fclose(mem);
	assert_non_null(strstr(buf, "\"remedy\":\"renew \\\"it\\\"\""));
	assert_non_null(strstr(buf, "/CN=a\\\\b'\\n\""));
	assert_non_null(strstr(buf, "\"summary\":{\"pass\":0,\"skip\":0,\"warn\":1,\"fail\":0},\"exit\":1}"));
	free(buf);
}

/* The profile doctor compares against is the file operators install. */
static void test_doctor_profile_matches_tuning_file(void **state)
{
	const char *src = getenv("MTLS_SRCDIR");
	char path[512], line[512];
	size_t seen = 0;

	snprintf(path, sizeof(path), "%s/tuning/sysctl.d/60-mtlsd.conf", src ? src : ".");
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s (set MTLS_SRCDIR)", path);
	while (fgets(line, sizeof(line), f)) {
		char name[128], value[128];
		if (line[0] == '#' || line[0] == '\n')
			continue;
		assert_int_equal(sscanf(line, "%127s = %127[^\n]", name, value), 2);
		if (seen >= doctor_profile_len)
			fail_msg("%s: %s is not in doctor_profile", path, name);
		assert_string_equal(doctor_profile[seen].name, name);
		assert_string_equal(doctor_profile[seen].value, value);
		seen++;
	}
	fclose(f);
	assert_int_equal(seen, doctor_profile_len);
}

/* Gathering tells the truth about the tls ULP: the kernel lists "tls" in
 * tcp_available_ulp exactly when the probe could attach it. */
static void test_doctor_gather_tls_ulp_truthful(void **state)
{
	static struct doctor_facts f;
	char ulps[256] = "";

	doctor_gather(&f, NULL);
	FILE *in = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
	if (!in)
		skip_because("no /proc/sys/net/ipv4/tcp_available_ulp: a kernel without TCP ULPs (< 4.13)");
	if (!fgets(ulps, sizeof(ulps), in))
		ulps[0] = '\0';
	fclose(in);
	bool listed = false;
	for (char *t = strtok(ulps, " \n"); t; t = strtok(NULL, " \n"))
		listed |= strcmp(t, "tls") == 0;
	assert_int_equal(listed, f.tls_ulp_rc == 0);
	assert_int_equal(f.n_sysctls, doctor_profile_len);
	assert_true(f.kernel_major >= 3);
}

/* --pid reads another process's limits: ours, compared with getrlimit. */
static void test_doctor_gather_nofile_of_pid(void **state)
{
	static struct doctor_facts f;
	struct rlimit rl;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(doctor_gather_nofile_of(&f, (int)getpid()), 0);
	assert_int_equal(f.nofile_soft, rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur);
	assert_int_equal(f.nofile_hard, rl.rlim_max == RLIM_INFINITY ? UINT64_MAX : rl.rlim_max);
	assert_int_equal(f.nofile_pid, getpid());
	assert_int_equal(doctor_gather_nofile_of(&f, 0x3fffff), -ENOENT);
}

static long read_long(const char *path, long absent)
{
	long v = absent;
	FILE *in = fopen(path, "r");
	if (in && fscanf(in, "%ld", &v) != 1)
		v = absent;
	if (in)
		fclose(in);
	return v;
}

/* io_uring and BPF facts agree with what the kernel's own switches say
 * (on this project's hosts: both available, doctor passes them). */
static void test_doctor_gather_io_uring_and_bpf_truthful(void **state)
{
	static struct doctor_facts f;
	static struct doctor_report rep;
	long disabled = read_long("/proc/sys/kernel/io_uring_disabled", 0);
	long unpriv = read_long("/proc/sys/kernel/unprivileged_bpf_disabled", 1);

	doctor_gather(&f, NULL);
	if (disabled == 2)
		assert_true(f.uring_setup_rc < 0);
	if (disabled == 0 && (f.kernel_major > 5 || (f.kernel_major == 5 && f.kernel_minor >= 19))) {
		assert_int_equal(f.uring_setup_rc, 0);
		assert_int_equal(f.uring_buf_ring_rc, 0);
		assert_int_equal(f.uring_ops, URING_NEEDS_ALL);
		doctor_check_io_uring(&f, &rep);
		assert_result(&rep.r[0], DOCTOR_PASS, "io_uring enabled");
	}
	if (geteuid() == 0)
		assert_int_equal(f.bpf_rc, 0); /* root holds CAP_BPF */
	else if (unpriv != 0)
		assert_int_equal(f.bpf_rc, -EPERM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doctor_all_pass_exits_0),
		cmocka_unit_test(test_doctor_exit_code_warn_1_fail_2),
		cmocka_unit_test(test_doctor_tls_ulp),
		cmocka_unit_test(test_doctor_io_uring),
		cmocka_unit_test(test_doctor_bpf),
		cmocka_unit_test(test_doctor_nofile),
		cmocka_unit_test(test_doctor_sysctls),
		cmocka_unit_test(test_doctor_clock),
		cmocka_unit_test(test_doctor_openssl_and_cpu),
		cmocka_unit_test(test_doctor_certs),
		cmocka_unit_test(test_doctor_crls),
		cmocka_unit_test(test_doctor_json_escapes),
		cmocka_unit_test(test_doctor_profile_matches_tuning_file),
		cmocka_unit_test(test_doctor_gather_tls_ulp_truthful),
		cmocka_unit_test(test_doctor_gather_io_uring_and_bpf_truthful),
		cmocka_unit_test(test_doctor_gather_nofile_of_pid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
