/*
 * service.c: readiness notification (sd_notify's plain protocol) and the
 * privilege drop after start-up. See service.h for the order main.c keeps.
 *
 * Why no libsystemd: the protocol is one datagram to a unix socket, and
 * the library would be the only reason to link systemd into a data plane
 * that must also run under other managers and in containers.
 *
 * Why raw capset(2) rather than libcap: three words of state and two
 * syscalls; the failure modes are easier to explain to an operator
 * (docs/service.md) than a library's.
 *
 * Threads a library started before the drop. Credentials belong to a
 * thread, and loading a key can start one: libp11 without MODULE_PATH loads
 * p11-kit's proxy, which loads every registered module, and OpenSC's starts
 * a GLib main-loop thread that blocks every signal. No library reaches such
 * a thread (libcap's psx only knows threads created through its
 * pthread_create wrapper, and a signal of our own would stay blocked), but
 * three kernel and glibc mechanisms do, and the drop is built on them:
 *   - glibc applies setgroups/setresgid/setresuid to every thread (its
 *     setxid broadcast uses an internal signal no thread can block);
 *   - the kernel clears the permitted, effective and ambient capabilities
 *     of every thread whose uids all leave 0, unless that thread set
 *     PR_SET_KEEPCAPS (only this one does, to keep keep_capabilities);
 *   - seccomp's TSYNC copies this thread's no_new_privs to every thread
 *     (an allow-everything filter installed for that alone, and only when a
 *     thread lacks it: under the unit's NoNewPrivileges= none does).
 * Then every thread in /proc/self/task is read back; one that still holds
 * more than keep_capabilities, another uid or no no_new_privs stops the
 * start, named. Without user = there is no uid change, so a library's
 * thread would keep every capability: that is refused, naming the thread.
 */
#include "service.h"

#include <dirent.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- notification ---------------------------------------------------- */

/* Connected once and kept: after the drop the new user may not be allowed
 * to connect to a socket the manager created, but a connected socket
 * keeps working. Only the main thread notifies. */
static int notify_fd = -1;

static int notify_connect(const char *name)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len = strlen(name);

	ENSURE((name[0] == '/' || name[0] == '@') && len >= 2 && len < sizeof(sun.sun_path), EINVAL);
	memcpy(sun.sun_path, name, len);
	if (name[0] == '@')
		sun.sun_path[0] = '\0'; /* abstract namespace */
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);

	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ENSURE(fd >= 0, errno);
	if (connect(fd, (struct sockaddr *)&sun, salen) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (notify_fd >= 0)
		close(notify_fd);
	notify_fd = fd;
	return 0;
}

int service_notify(const char *state)
{
	const char *name = getenv("NOTIFY_SOCKET");

	if (!name || name[0] == '\0')
		return 0;
	if (notify_fd < 0)
		GUARD(notify_connect(name));
	if (send(notify_fd, state, strlen(state), MSG_NOSIGNAL) >= 0)
		return 0;
	/* The manager may have restarted (systemctl daemon-reexec) and bound a
	 * new socket at the same name: reconnect once. */
	GUARD(notify_connect(name));
	ENSURE(send(notify_fd, state, strlen(state), MSG_NOSIGNAL) >= 0, errno);
	return 0;
}

/* Send and, on failure, say so once per message with the socket's name. */
static void notify_or_warn(const char *state)
{
	int rc = service_notify(state);

	if (rc < 0)
		log_warn("cannot notify the service manager at NOTIFY_SOCKET=%s (%.*s): %s",
			 getenv("NOTIFY_SOCKET"), (int)strcspn(state, "\n"), state, strerror(-rc));
}

void service_notify_ready(const char *status)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status ? status : "ready");
	notify_or_warn(msg);
}

void service_notify_reloading(void)
{
	struct timespec ts;
	char msg[128];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
		 (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
	notify_or_warn(msg);
}

void service_notify_stopping(void)
{
	notify_or_warn("STOPPING=1\nSTATUS=draining connections");
}

/* ---- who to become ---------------------------------------------------- */

static bool parse_id(const char *text, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(text, &end, 10);
	if (errno || *end || end == text || v >= (unsigned)-1)
		return false;
	*out = (unsigned)v;
	return true;
}

static int resolve_group(const char *name, gid_t *gid, char *err, size_t errlen)
{
	char buf[4096];
	struct group gr, *res = NULL;
	unsigned n;

	if (parse_id(name, &n)) {
		*gid = n;
		return 0;
	}
	if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) != 0 || !res) {
		snprintf(err, errlen, "[mtlsd] group: '%s' does not exist; create it (groupadd --system %s) "
			 "or give an existing group", name, name);
		return -ENOENT;
	}
	*gid = res->gr_gid;
	return 0;
}

int service_resolve_identity(const struct mtlsd_config *cfg, struct service_identity *id,
			     char *err, size_t errlen)
{
	char buf[4096];
	struct passwd pw, *res = NULL;
	unsigned n;

	memset(id, 0, sizeof(*id));
	id->keep_caps = cfg->keep_caps;
	if (!cfg->user) {
		id->uid = geteuid();
		id->gid = getegid();
		return 0;
	}
	if (getpwnam_r(cfg->user, &pw, buf, sizeof(buf), &res) == 0 && res) {
		id->uid = res->pw_uid;
		id->gid = res->pw_gid;
	} else if (parse_id(cfg->user, &n)) {
		/* A bare uid with no passwd entry has no primary group to take. */
		if (!cfg->group) {
			snprintf(err, errlen, "[mtlsd] user: uid %u has no passwd entry, so no primary group; "
				 "add group = NAME or GID", n);
			return -EINVAL;
		}
		id->uid = n;
	} else {
		snprintf(err, errlen, "[mtlsd] user: '%s' does not exist; create it (useradd --system "
			 "--no-create-home --shell /usr/sbin/nologin %s) or give an existing user",
			 cfg->user, cfg->user);
		return -ENOENT;
	}
	if (cfg->group)
		GUARD(resolve_group(cfg->group, &id->gid, err, errlen));
	if (id->uid == 0) {
		snprintf(err, errlen, "[mtlsd] user: '%s' is root, which would keep every privilege; "
			 "give an unprivileged user such as mtlsd", cfg->user);
		return -EINVAL;
	}
	return 0;
}

/* ---- becoming it ------------------------------------------------------ */

static int cap_get(uint64_t *permitted)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	ENSURE(syscall(SYS_capget, &hdr, data) == 0, errno);
	*permitted = (uint64_t)data[1].permitted << 32 | data[0].permitted;
	return 0;
}

/* Effective = permitted = keep; nothing inheritable. */
static int cap_set(uint64_t keep)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = {
		{ .effective = (uint32_t)keep, .permitted = (uint32_t)keep },
		{ .effective = (uint32_t)(keep >> 32), .permitted = (uint32_t)(keep >> 32) },
	};

	ENSURE(syscall(SYS_capset, &hdr, data) == 0, errno);
	return 0;
}

static void caps_text(uint64_t caps, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < 64 && off < len; i++) {
		if (!(caps & (UINT64_C(1) << i)))
			continue;
		const char *name = config_capability_name(i);
		int w = name ? snprintf(buf + off, len - off, "%s%s", off ? "," : "", name)
			     : snprintf(buf + off, len - off, "%s%u", off ? "," : "", i);
		off += w > 0 ? (size_t)w : 0;
	}
}

static int switch_ids(const struct service_identity *id, char *err, size_t errlen)
{
	/* Keep the permitted set across setuid; cap_set() trims it after. */
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setgroups(1, &id->gid) < 0 ||
	    setresgid(id->gid, id->gid, id->gid) < 0 || setresuid(id->uid, id->uid, id->uid) < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot switch to uid %u gid %u: %s; start mtlsd as root "
			 "(the unit does) or remove user from [mtlsd]", (unsigned)id->uid, (unsigned)id->gid,
			 strerror(e));
		return -e;
	}
	ENSURE(prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) == 0, errno);
	return 0;
}

static int trim_caps(uint64_t keep, char *err, size_t errlen)
{
	uint64_t permitted = 0;
	char names[512];
	int rc;

	GUARD(cap_get(&permitted));
	if (keep & ~permitted) {
		caps_text(keep & ~permitted, names, sizeof(names));
		snprintf(err, errlen, "[mtlsd] keep_capabilities: %s not held by mtlsd, so it cannot be kept; "
			 "add it to the unit's CapabilityBoundingSet= or remove it from keep_capabilities",
			 names);
		return -EPERM;
	}
	rc = cap_set(keep);
	if (rc == 0 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		rc = -errno;
	if (rc < 0)
		snprintf(err, errlen, "cannot drop capabilities: %s", strerror(-rc));
	return rc;
}

/* ---- every thread ------------------------------------------------------ */

/* What /proc/self/task/TID/status says about one thread. */
struct thread_creds {
	int tid;
	char comm[32];
	unsigned uid[4], gid[4];
	uint64_t cap_prm, cap_eff, cap_amb;
	int no_new_privs; /* -1: the kernel does not say */
};

/* -ENOENT when the thread has exited since the directory was read. */
static int read_thread(int tid, struct thread_creds *t)
{
	char path[64], line[256];
	unsigned seen = 0;

	memset(t, 0, sizeof(*t));
	t->tid = tid;
	t->no_new_privs = -1;
	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", tid);
	FILE *f = fopen(path, "re");
	if (f) {
		if (fgets(t->comm, sizeof(t->comm), f))
			t->comm[strcspn(t->comm, "\n")] = '\0';
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Uid: %u %u %u %u", &t->uid[0], &t->uid[1], &t->uid[2], &t->uid[3]) == 4)
			seen |= 1;
		else if (sscanf(line, "Gid: %u %u %u %u", &t->gid[0], &t->gid[1], &t->gid[2], &t->gid[3]) == 4)
			seen |= 2;
		else if (sscanf(line, "CapPrm: %" SCNx64, &t->cap_prm) == 1)
			seen |= 4;
		else if (sscanf(line, "CapEff: %" SCNx64, &t->cap_eff) == 1)
			seen |= 8;
		else if (sscanf(line, "CapAmb: %" SCNx64, &t->cap_amb) != 1)
			(void)sscanf(line, "NoNewPrivs: %d", &t->no_new_privs);
	}
	fclose(f);
	return seen == 15 ? 0 : -EIO;
}

/*
 * Call fn for every thread of the process (this one included) until it
 * returns non-zero, which is returned. Threads that exit meanwhile are
 * skipped. *n counts the threads read.
 */
static int for_each_thread(int (*fn)(const struct thread_creds *t, void *arg), void *arg, int *n)
{
	struct thread_creds t;
	int rc = 0;
	DIR *d = opendir("/proc/self/task");

	ENSURE(d != NULL, errno);
	*n = 0;
	for (struct dirent *e; rc == 0 && (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		int r = read_thread(atoi(e->d_name), &t);
		if (r == -ENOENT)
			continue;
		if (r < 0) {
			rc = r;
			break;
		}
		(*n)++;
		rc = fn(&t, arg);
	}
	closedir(d);
	return rc;
}

static int lacks_no_new_privs(const struct thread_creds *t, void *arg)
{
	(void)arg;
	return t->no_new_privs == 0;
}

/*
 * Give every thread this thread's no_new_privs. The kernel does it when a
 * seccomp filter is installed with TSYNC; the filter allows everything, so
 * that is its only effect.
 */
static int sync_no_new_privs(char *err, size_t errlen)
{
	struct sock_filter allow[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
	struct sock_fprog prog = { .len = ARRAY_SIZE(allow), .filter = allow };
	int n;

	if (for_each_thread(lacks_no_new_privs, NULL, &n) == 0)
		return 0;
	long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
	if (rc == 0)
		return 0;
	if (rc > 0) {
		snprintf(err, errlen, "cannot give thread %ld no_new_privs: it has a seccomp filter of its "
			 "own (seccomp TSYNC refused)", rc);
		return -EPERM;
	}
	int e = errno;
	snprintf(err, errlen, "cannot give the threads a library started no_new_privs (seccomp TSYNC: "
		 "%s); start mtlsd with it already set (systemd: NoNewPrivileges=yes, as the shipped unit "
		 "does)", strerror(e));
	return -e;
}

struct thread_check {
	const struct service_identity *id;
	bool ids_changed;
	char *err;
	size_t errlen;
};

static int check_thread(const struct thread_creds *t, void *arg)
{
	const struct thread_check *c = arg;
	uint64_t extra = (t->cap_prm | t->cap_eff | t->cap_amb) & ~c->id->keep_caps;
	char names[512];

	for (int i = 0; c->ids_changed && i < 4; i++) {
		if (t->uid[i] != c->id->uid || t->gid[i] != c->id->gid) {
			snprintf(c->err, c->errlen, "the privilege drop did not reach thread %d (%s): it "
				 "still runs as uid %u gid %u", t->tid, t->comm, t->uid[i], t->gid[i]);
			return -EPERM;
		}
	}
	if (extra || t->cap_amb) {
		uint64_t held = extra | t->cap_amb;
		/* A few by name; the whole set as the mask /proc shows. */
		if (__builtin_popcountll(held) <= 4)
			caps_text(held, names, sizeof(names));
		else
			snprintf(names, sizeof(names), "%d capabilities (mask %016" PRIx64 ")",
				 __builtin_popcountll(held), held);
		if (c->ids_changed)
			snprintf(c->err, c->errlen, "the privilege drop did not reach thread %d (%s): it "
				 "still holds %s", t->tid, t->comm, names);
		else
			snprintf(c->err, c->errlen, "thread %d (%s), started by a library before the "
				 "privilege drop (loading the key, e.g. a PKCS#11 module through p11-kit), "
				 "keeps %s: capabilities belong to a thread, and only the switch to another "
				 "user reaches every thread; set user = (e.g. user = mtlsd) in [mtlsd], or "
				 "load the module directly (engine_ctrl = MODULE_PATH:/path/to/module.so)",
				 t->tid, t->comm, names);
		return -EPERM;
	}
	if (t->no_new_privs == 0) {
		snprintf(c->err, c->errlen, "the privilege drop did not reach thread %d (%s): "
			 "no_new_privs is not set", t->tid, t->comm);
		return -EPERM;
	}
	return 0;
}

/* Read every thread back: the drop holds for all of them or mtlsd stops. */
static int verify_threads(const struct service_identity *id, bool ids_changed, int *n,
			  char *err, size_t errlen)
{
	struct thread_check c = { .id = id, .ids_changed = ids_changed, .err = err, .errlen = errlen };
	int rc = for_each_thread(check_thread, &c, n);

	if (rc < 0 && rc != -EPERM)
		snprintf(err, errlen, "cannot read the threads' credentials in /proc/self/task: %s",
			 strerror(-rc));
	return rc;
}

int service_apply_identity(const struct service_identity *id, bool apply_ids, char *err, size_t errlen)
{
	bool change = apply_ids && (id->uid != geteuid() || id->gid != getegid());

	if (change)
		GUARD(switch_ids(id, err, errlen));
	GUARD(trim_caps(id->keep_caps, err, errlen));
	/* No setuid binary or file capability can give anything back, and no
	 * core dump or same-user ptrace can read the keys in memory. DUMPABLE
	 * comes last: a uid change resets it to fs.suid_dumpable. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot lock the process down (prctl): %s", strerror(e));
		return -e;
	}
	GUARD(sync_no_new_privs(err, errlen));
	/* As OpenSSH does: prove the way back is closed. */
	if (change && !(id->keep_caps & (UINT64_C(1) << CAP_SETUID)) && setuid(0) == 0) {
		snprintf(err, errlen, "the privilege drop did not hold: setuid(0) succeeded");
		return -EPERM;
	}
	int threads;
	return verify_threads(id, apply_ids, &threads, err, errlen);
}

int service_drop_privileges(const struct mtlsd_config *cfg, char *err, size_t errlen)
{
	struct service_identity id;
	char names[512];

	GUARD(service_resolve_identity(cfg, &id, err, errlen));
	/* The manager's socket may be closed to the new user: connect now. */
	const char *notify = getenv("NOTIFY_SOCKET");
	int nrc = notify && notify[0] && notify_fd < 0 ? notify_connect(notify) : 0;
	if (nrc < 0)
		log_warn("cannot connect to NOTIFY_SOCKET %s: %s; the service manager will not hear "
			 "readiness", notify, strerror(-nrc));
	if (!cfg->user && geteuid() == 0)
		log_warn("running as root: set user = in [mtlsd] (e.g. user = mtlsd) so a compromise "
			 "does not own the host");
	GUARD(service_apply_identity(&id, cfg->user != NULL, err, errlen));
	caps_text(id.keep_caps, names, sizeof(names));
	log_info("running as uid %u gid %u, capabilities: %s", (unsigned)getuid(), (unsigned)getgid(),
		 names[0] ? names : "none");
	return 0;
}
