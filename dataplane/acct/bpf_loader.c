/*
 * bpf_loader.c: the lifecycle of bpf/acct.bpf.c inside mtlsd (see
 * bpf_loader.h). Runs once at start, before workers exist, so the libbpf
 * print hook it installs for the duration is not shared with anyone.
 */
#include "bpf_loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bpf/acct.skel.h"
#include "bpf/acct_user.h"
#include "log.h"

struct bpf_loader {
	struct acct_bpf *skel;
	char pin_dir[256];
};

/* The first warning libbpf printed while we loaded: the most precise reason
 * we can give ("couldn't reuse pinned map at ..."). */
static char libbpf_first_warning[256];

__attribute__((format(printf, 2, 0)))
static int libbpf_print_hook(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[512];

	/* libbpf's debug level narrates every ELF section and relocation
	 * (over a hundred lines per start): not for mtlsd's log. */
	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	/* The first warning names the cause; later ones only say that loading
	 * the object, then the skeleton, failed because of it. */
	if (level == LIBBPF_WARN && !libbpf_first_warning[0])
		snprintf(libbpf_first_warning, sizeof(libbpf_first_warning), "%.255s",
			 strncmp(line, "libbpf: ", 8) == 0 ? line + 8 : line);
	log_debug("%s", line);
	return 0;
}

static bool has_cap(const struct __user_cap_data_struct data[2], unsigned cap)
{
	return data[cap / 32].effective & (1u << (cap % 32));
}

bool bpf_loader_privileged(char *why, size_t len)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { 0 };

	if (syscall(SYS_capget, &hdr, data) != 0) {
		snprintf(why, len, "cannot read capabilities: %s", strerror(errno));
		return false;
	}
	if (has_cap(data, CAP_SYS_ADMIN))
		return true;
	if (has_cap(data, CAP_BPF) && has_cap(data, CAP_PERFMON))
		return true;
	snprintf(why, len, "missing %s%s%s (run as root, or grant CAP_BPF and CAP_PERFMON)",
		 has_cap(data, CAP_BPF) ? "" : "CAP_BPF",
		 !has_cap(data, CAP_BPF) && !has_cap(data, CAP_PERFMON) ? " and " : "",
		 has_cap(data, CAP_PERFMON) ? "" : "CAP_PERFMON");
	return false;
}

static int mkdir_private(const char *path)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

/* /sys/fs/bpf is not mounted on every system (ENVIRONMENT.md): mount it,
 * then make the instance directory. */
static int prepare_pin_dir(const char *pin_dir, char *why, size_t len)
{
	struct statfs st;
	int rc;

	if (statfs(ACCT_BPFFS, &st) != 0 || st.f_type != BPF_FS_MAGIC) {
		if (mount("bpf", ACCT_BPFFS, "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") != 0) {
			rc = -errno;
			snprintf(why, len, "%s is not a bpffs and mounting one failed: %s "
				 "(mount it: mount -t bpf bpf %s)", ACCT_BPFFS, strerror(-rc), ACCT_BPFFS);
			return rc;
		}
		log_info("mounted bpffs on %s", ACCT_BPFFS);
	}
	rc = mkdir_private(ACCT_PIN_ROOT);
	if (rc == 0)
		rc = mkdir_private(pin_dir);
	if (rc < 0)
		snprintf(why, len, "cannot create %s: %s", pin_dir, strerror(-rc));
	return rc;
}

static void explain(char *why, size_t len, const char *step, int rc)
{
	snprintf(why, len, "%s failed: %s%s%s", step, strerror(rc < 0 ? -rc : rc),
		 libbpf_first_warning[0] ? " (libbpf: " : "",
		 libbpf_first_warning[0] ? libbpf_first_warning : "");
	if (libbpf_first_warning[0])
		strncat(why, ")", len - strlen(why) - 1);
}

static int load_and_attach(struct bpf_loader *l, char *why, size_t len)
{
	LIBBPF_OPTS(bpf_object_open_opts, open_opts, .pin_root_path = l->pin_dir);
	struct bpf_link *link;
	int rc;

	l->skel = acct_bpf__open_opts(&open_opts);
	if (!l->skel) {
		rc = -errno;
		explain(why, len, "opening the BPF object", rc);
		return rc;
	}
	/* Count only this process: a second mtlsd instance fires the same probe
	 * in the same binary. PIDs are compared inside our own namespace. */
	struct stat ns;
	if (stat("/proc/self/ns/pid", &ns) == 0) {
		l->skel->rodata->target_tgid = (__u32)getpid();
		l->skel->rodata->target_pidns_dev = ns.st_dev;
		l->skel->rodata->target_pidns_ino = ns.st_ino;
	} else {
		log_warn("handshake accounting: cannot stat /proc/self/ns/pid (%s): counting the "
			 "probe of every process attached", strerror(errno));
	}
	rc = acct_bpf__load(l->skel);
	if (rc < 0) {
		explain(why, len, "loading the BPF program", rc);
		if (strstr(libbpf_first_warning, "reuse pinned map"))
			strncat(why, "; the pinned maps have another layout: remove the directory "
				"to start from zero", len - strlen(why) - 1);
		return rc;
	}
	link = bpf_program__attach_usdt(l->skel->progs.handshake_end, getpid(), "/proc/self/exe",
					"mtlsd", "handshake_end", NULL);
	if (!link) {
		rc = -errno;
		explain(why, len, "attaching to USDT probe mtlsd:handshake_end", rc);
		return rc;
	}
	l->skel->links.handshake_end = link;
	return 0;
}

int bpf_loader_start(const char *instance, struct bpf_loader **out, char *why, size_t len)
{
	libbpf_print_fn_t old_print;
	struct bpf_loader *l;
	int rc;

	*out = NULL;
	if (!bpf_loader_privileged(why, len))
		return -EPERM;
	l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	rc = acct_pin_dir(instance, l->pin_dir, sizeof(l->pin_dir));
	if (rc < 0) {
		snprintf(why, len, "instance name '%s' is not usable in a path", instance);
		goto out;
	}
	GUARD_GOTO(prepare_pin_dir(l->pin_dir, why, len), rc, out);
	libbpf_first_warning[0] = '\0';
	old_print = libbpf_set_print(libbpf_print_hook);
	rc = load_and_attach(l, why, len);
	libbpf_set_print(old_print);
out:
	if (rc < 0) {
		bpf_loader_stop(l);
		return rc;
	}
	*out = l;
	return 0;
}

int bpf_loader_meta_fd(const struct bpf_loader *l)
{
	return bpf_map__fd(l->skel->maps.acct_meta);
}

int bpf_loader_stats_fd(const struct bpf_loader *l)
{
	return bpf_map__fd(l->skel->maps.acct_stats);
}

int bpf_loader_totals_fd(const struct bpf_loader *l)
{
	return bpf_map__fd(l->skel->maps.acct_totals);
}

const char *bpf_loader_pin_dir(const struct bpf_loader *l)
{
	return l->pin_dir;
}

void bpf_loader_stop(struct bpf_loader *l)
{
	if (!l)
		return;
	acct_bpf__destroy(l->skel);
	free(l);
}
