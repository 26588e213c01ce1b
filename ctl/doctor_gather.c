/*
 * doctor_gather.c: the facts mtlsctl doctor judges, read from this host.
 *
 * Every probe does the real thing on a small scale rather than reading a
 * version number: attach the tls ULP to a loopback connection, set up an
 * io_uring, ask it for every op mtlsd submits and register a
 * provided-buffer ring, create a BPF map. The ULP and opcode probes are
 * mtlsd's own (lib/host_probe.h), so doctor and mtlsd agree. A probe
 * that fails records its errno as the fact; nothing here decides anything
 * (doctor_checks*.c do).
 *
 * The limits are those of the process running doctor: run it the way mtlsd
 * runs (e.g. `systemd-run -p LimitNOFILE=... mtlsctl doctor`) to see the
 * unit's.
 */
#include "doctor.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/bpf.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <spawn.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/timex.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cert_name.h"
#include "keyref.h"
#include "pemutil.h"

#ifdef OPENSSL_NO_KTLS
static const bool openssl_has_ktls = false;
#else
static const bool openssl_has_ktls = true;
#endif

#define BPF_FS_MAGIC_NUMBER 0xcafe4a11

extern char **environ;

/* A /proc/sys value with blanks collapsed to single spaces; "" if absent. */
static void read_sysctl(const char *name, char *out, size_t len)
{
	char path[128], raw[128];
	size_t o = 0;

	snprintf(path, sizeof(path), "/proc/sys/%s", name);
	for (char *p = path + 10; *p; p++)
		if (*p == '.')
			*p = '/';
	out[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, raw, sizeof(raw) - 1);
	close(fd);
	raw[n > 0 ? n : 0] = '\0';
	for (char *p = strtok(raw, " \t\n"); p && o < len; p = strtok(NULL, " \t\n"))
		o += (size_t)snprintf(out + o, len - o, "%s%s", o ? " " : "", p);
}

static long sysctl_long(const char *name, long absent)
{
	char v[64];

	read_sysctl(name, v, sizeof(v));
	return v[0] ? strtol(v, NULL, 10) : absent;
}

/* Whether `modprobe -n -q tls` succeeds (the module exists and could load). */
static bool modprobe_would_load(void)
{
	char *argv[] = { "modprobe", "-n", "-q", "tls", NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status = -1;

	if (posix_spawn_file_actions_init(&fa) != 0)
		return false;
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	/* modprobe lives in /sbin even when PATH (sudo, cron) lacks it. */
	int rc = posix_spawn(&pid, "/sbin/modprobe", &fa, NULL, argv, environ);
	if (rc != 0)
		rc = posix_spawnp(&pid, "modprobe", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0 || waitpid(pid, &status, 0) != pid)
		return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void gather_uring(struct doctor_facts *f)
{
	struct io_uring_params p = { 0 };
	struct io_uring ring;
	void *mem = NULL;

	f->uring_disabled = (int)sysctl_long("kernel.io_uring_disabled", -1);
	f->uring_setup_rc = io_uring_queue_init_params(8, &ring, &p);
	f->uring_buf_ring_rc = f->uring_setup_rc;
	if (f->uring_setup_rc < 0)
		return;
	f->uring_features = p.features;
	/* The ops mtlsd submits, asked as mtlsd asks (lib/host_probe.h); a
	 * kernel without the probe leaves them all missing. */
	if (host_probe_uring_ops(&ring, &f->uring_ops) < 0)
		f->uring_ops = 0;

	/* A provided-buffer ring of 8 entries in page-aligned memory. */
	struct io_uring_buf_reg reg = { .ring_entries = 8, .bgid = 0 };
	if (posix_memalign(&mem, 4096, 4096) == 0) {
		memset(mem, 0, 4096);
		reg.ring_addr = (unsigned long)mem;
		f->uring_buf_ring_rc = io_uring_register_buf_ring(&ring, &reg, 0);
		if (f->uring_buf_ring_rc == 0)
			(void)io_uring_unregister_buf_ring(&ring, 0);
	} else {
		f->uring_buf_ring_rc = -ENOMEM;
	}
	io_uring_queue_exit(&ring);
	free(mem);
}

static void gather_bpf(struct doctor_facts *f)
{
	union bpf_attr attr = { .map_type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4,
				.max_entries = 1 };
	struct statfs sfs;

	int fd = (int)syscall(__NR_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
	f->bpf_rc = fd >= 0 ? 0 : -errno;
	if (fd >= 0)
		close(fd);
	f->unprivileged_bpf_disabled = (int)sysctl_long("kernel.unprivileged_bpf_disabled", -1);
	f->bpf_jit_enable = (int)sysctl_long("net.core.bpf_jit_enable", -1);
	f->bpffs_mounted = statfs("/sys/fs/bpf", &sfs) == 0 && (unsigned long)sfs.f_type == BPF_FS_MAGIC_NUMBER;
	f->btf_vmlinux = access("/sys/kernel/btf/vmlinux", R_OK) == 0;
	f->acct_wanted = true; /* mtlsd always tries BPF accounting first */
}

static void gather_cpu(struct doctor_facts *f)
{
	char *line = NULL;
	size_t cap = 0;
	FILE *in = fopen("/proc/cpuinfo", "re");

	while (in && getline(&line, &cap, in) > 0) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		f->cpu_known = true;
		for (char *save, *t = strtok_r(strchr(line, ':'), " \t\n:", &save); t;
		     t = strtok_r(NULL, " \t\n", &save)) {
			f->cpu_aes |= strcmp(t, "aes") == 0;
			f->cpu_pclmul |= strcmp(t, "pclmulqdq") == 0;
			f->cpu_avx2 |= strcmp(t, "avx2") == 0;
			f->cpu_vaes |= strcmp(t, "vaes") == 0;
			f->cpu_sha |= strcmp(t, "sha_ni") == 0;
			f->cpu_avx512 |= strcmp(t, "avx512f") == 0;
		}
		break;
	}
	free(line);
	if (in)
		fclose(in);
}

/* The certificate in path that expires first. */
static void gather_cert(struct doctor_facts *f, const char *path, const char *role)
{
	struct doctor_cert *c;
	STACK_OF(X509) *certs = NULL;
	char err[256];

	if (!path || f->n_certs == DOCTOR_MAX_CERTS)
		return;
	c = &f->certs[f->n_certs++];
	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(c->role, sizeof(c->role), "%s", role);
	c->load_rc = pem_load_certs(path, &certs, err, sizeof(err));
	for (int i = 0; c->load_rc == 0 && i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);
		struct tm tm;
		if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
			continue;
		time_t t = timegm(&tm);
		if (i == 0 || t < c->not_after) {
			c->not_after = t;
			cert_name_format(X509_get_subject_name(x), c->subject, sizeof(c->subject));
		}
	}
	sk_X509_pop_free(certs, X509_free);
}

/* The CRL in path that needs replacing first. */
static void gather_crl(struct doctor_facts *f, const char *path, const struct cfg_partner *p)
{
	struct doctor_cert *c;
	STACK_OF(X509_CRL) *crls = NULL;
	char err[256];

	if (f->n_certs == DOCTOR_MAX_CERTS)
		return;
	c = &f->certs[f->n_certs++];
	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(c->role, sizeof(c->role), "partner.%s", p->name);
	c->is_crl = true;
	c->crl_fail = p->crl_expired == CRL_POLICY_FAIL;
	c->load_rc = pem_load_crls(path, &crls, err, sizeof(err));
	for (int i = 0; c->load_rc == 0 && i < sk_X509_CRL_num(crls); i++) {
		X509_CRL *crl = sk_X509_CRL_value(crls, i);
		const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
		struct tm tm;
		if (!next || ASN1_TIME_to_tm(next, &tm) != 1)
			continue; /* no nextUpdate: it never goes stale */
		time_t t = timegm(&tm);
		if (!c->subject[0] || t < c->not_after) {
			c->not_after = t;
			cert_name_format(X509_CRL_get_issuer(crl), c->subject, sizeof(c->subject));
		}
	}
	if (c->load_rc == 0 && !c->subject[0])
		f->n_certs--; /* nothing that expires */
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
}

/* Log in and find each server key given as a URI, as mtlsd would. */
static void gather_token_keys(struct doctor_facts *f, const struct mtlsd_config *cfg)
{
	const struct keyref_opts opts = {
		.allow_insecure = cfg->allow_insecure_key_perms, .owner = cfg->user,
		.pin_file = cfg->key_pin_file, .pin_env = cfg->key_pin_env,
	};

	for (size_t i = 0; i < cfg->n_certs && f->n_token_keys < CFG_MAX_SERVER_CERTS; i++) {
		const char *ref = cfg->certs[i].key_path;
		if (!ref || !keyref_is_uri(ref))
			continue;
		struct doctor_token_key *k = &f->token_keys[f->n_token_keys++];
		EVP_PKEY *key = NULL;
		keyref_redact(ref, k->ref, sizeof(k->ref));
		k->rc = keyref_load(ref, &opts, &key, k->err, sizeof(k->err));
		EVP_PKEY_free(key);
	}
}

static void gather_config(struct doctor_facts *f, const struct mtlsd_config *cfg)
{
	char role[48];

	f->max_connections = cfg->max_connections;
	f->workers = cfg->workers ? cfg->workers : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	f->ktls = cfg->ktls;
	f->have_config = cfg->path != NULL;
	if (f->accel_rc == 0)
		gather_token_keys(f, cfg);
	for (size_t i = 0; i < cfg->n_certs; i++) {
		snprintf(role, sizeof(role), "server certificate %zu", i + 1);
		gather_cert(f, cfg->certs[i].cert_path, role);
	}
	for (size_t i = 0; i < cfg->n_partners; i++) {
		snprintf(role, sizeof(role), "partner.%s ca", cfg->partners[i].name);
		gather_cert(f, cfg->partners[i].ca_path, role);
		for (size_t k = 0; k < cfg->partners[i].crl_paths.n; k++)
			gather_crl(f, cfg->partners[i].crl_paths.v[k], &cfg->partners[i]);
	}
}

static uint64_t limit_value(const char *text)
{
	return strcmp(text, "unlimited") == 0 ? UINT64_MAX : strtoull(text, NULL, 10);
}

int doctor_gather_nofile_of(struct doctor_facts *f, int pid)
{
	char path[64], line[256], soft[32], hard[32];
	int rc = -EINVAL;

	snprintf(path, sizeof(path), "/proc/%d/limits", pid);
	FILE *in = fopen(path, "re");
	ENSURE(in != NULL, errno);
	while (fgets(line, sizeof(line), in)) {
		if (strncmp(line, "Max open files", 14) != 0)
			continue;
		if (sscanf(line + 14, "%31s %31s", soft, hard) == 2) {
			f->nofile_soft = limit_value(soft);
			f->nofile_hard = limit_value(hard);
			f->nofile_pid = pid;
			rc = 0;
		}
		break;
	}
	fclose(in);
	return rc;
}

void doctor_gather(struct doctor_facts *f, const struct mtlsd_config *cfg)
{
	struct mtlsd_config defaults;
	struct utsname u;
	struct rlimit rl = { 0 };
	struct timex tx = { 0 };

	memset(f, 0, sizeof(*f));
	f->now = time(NULL);
	f->expiry_warn_days = 30;
	if (uname(&u) == 0) {
		snprintf(f->kernel_release, sizeof(f->kernel_release), "%s", u.release);
		sscanf(u.release, "%u.%u", &f->kernel_major, &f->kernel_minor);
	}
	/* Before the probe: as root it may autoload the module, which mtlsd,
	 * attaching the ULP after its privilege drop, could not. */
	f->tls_loaded_before = access("/proc/net/tls_stat", R_OK) == 0;
	f->tls_ulp_rc = host_probe_tls_ulp(NULL);
	f->tls_modprobe_ok = f->tls_ulp_rc != 0 && modprobe_would_load();
	gather_uring(f);
	gather_bpf(f);

	getrlimit(RLIMIT_NOFILE, &rl);
	f->nofile_soft = rl.rlim_cur;
	f->nofile_hard = rl.rlim_max;
	f->nr_open = (uint64_t)sysctl_long("fs.nr_open", 0);
	for (size_t i = 0; i < doctor_profile_len; i++) {
		f->sysctls[i].name = doctor_profile[i].name;
		read_sysctl(doctor_profile[i].name, f->sysctls[i].value, sizeof(f->sysctls[i].value));
	}
	f->n_sysctls = doctor_profile_len;

	f->clock_state = adjtimex(&tx);
	if (f->clock_state < 0)
		f->clock_state = -errno;
	f->clock_unsync = (tx.status & STA_UNSYNC) != 0;
	f->clock_maxerror_us = tx.maxerror;

	f->openssl_num = OpenSSL_version_num();
	snprintf(f->openssl_text, sizeof(f->openssl_text), "%s", OpenSSL_version(OPENSSL_VERSION));
	f->openssl_ktls = openssl_has_ktls;
	gather_cpu(f);

	crypto_accel_cpu(&f->ossl_cpu);

	config_init(&defaults);
	/* The providers and engine mtlsd would load, loaded here the same way. */
	f->accel_rc = crypto_accel_apply(cfg ? cfg : &defaults, f->accel_err, sizeof(f->accel_err));
	crypto_accel_providers_str(f->providers, sizeof(f->providers));
	crypto_accel_engine_str(f->engine, sizeof(f->engine));
	gather_config(f, cfg ? cfg : &defaults);
	config_free(&defaults);
}
