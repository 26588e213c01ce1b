/*
 * test_service.c: dataplane/service.c, the sd_notify protocol and the
 * privilege drop, and the config keys that drive the drop.
 *
 * Notifications go to a real unix datagram socket the test binds, as
 * systemd's would be. The drop runs in a forked child (it cannot be undone)
 * which reports what /proc/self/status and prctl say afterwards; it needs
 * root, which CI has, and skips elsewhere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "service.h"
#include "skip_because.h"

/* ---- a fake service manager ------------------------------------------ */

struct fake_manager {
	int fd;
	char name[108]; /* as NOTIFY_SOCKET gives it */
};

static void manager_open(struct fake_manager *m, bool abstract)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	snprintf(m->name, sizeof(m->name), "%s/mtlsd-notify-%d-%ld", abstract ? "@" : "/tmp",
		 (int)getpid(), (long)random());
	m->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(m->fd >= 0);
	strcpy(sun.sun_path, m->name);
	if (abstract)
		sun.sun_path[0] = '\0';
	assert_int_equal(bind(m->fd, (struct sockaddr *)&sun,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(m->name))), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", m->name, 1), 0);
}

static void manager_close(struct fake_manager *m)
{
	close(m->fd);
	if (m->name[0] == '/')
		unlink(m->name);
	unsetenv("NOTIFY_SOCKET");
}

/* The next datagram, or "" when none arrives. */
static void manager_recv(struct fake_manager *m, char *buf, size_t len)
{
	ssize_t n = recv(m->fd, buf, len - 1, MSG_DONTWAIT);
	buf[n > 0 ? n : 0] = '\0';
}

/* ---- notification ---------------------------------------------------- */

static void test_service_notify_ready_sends_status(void **state)
{
	struct fake_manager m;
	char got[256];

	manager_open(&m, false);
	service_notify_ready("listening on 127.0.0.1:8443");
	manager_recv(&m, got, sizeof(got));
	assert_string_equal(got, "READY=1\nSTATUS=listening on 127.0.0.1:8443");
	manager_close(&m);
}

static void test_service_notify_abstract_socket(void **state)
{
	struct fake_manager m;
	char got[256];

	manager_open(&m, true);
	service_notify_stopping();
	manager_recv(&m, got, sizeof(got));
	assert_string_equal(got, "STOPPING=1\nSTATUS=draining connections");
	manager_close(&m);
}

static void test_service_notify_reloading_has_monotonic_usec(void **state)
{
	struct fake_manager m;
	struct timespec before, after;
	unsigned long long usec = 0;
	char got[256];

	manager_open(&m, false);
	clock_gettime(CLOCK_MONOTONIC, &before);
	service_notify_reloading();
	clock_gettime(CLOCK_MONOTONIC, &after);
	manager_recv(&m, got, sizeof(got));
	assert_int_equal(strncmp(got, "RELOADING=1\nMONOTONIC_USEC=", 27), 0);
	assert_int_equal(sscanf(got + 27, "%llu", &usec), 1);
	assert_true(usec >= (unsigned long long)before.tv_sec * 1000000ULL + (unsigned long long)before.tv_nsec / 1000);
	assert_true(usec <= (unsigned long long)after.tv_sec * 1000000ULL + (unsigned long long)after.tv_nsec / 1000);
	manager_close(&m);
}

static void test_service_notify_without_manager_is_silent(void **state)
{
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(service_notify("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(service_notify("STOPPING=1"), 0);
	unsetenv("NOTIFY_SOCKET");
}

static void test_service_notify_rejects_bad_socket(void **state)
{
	/* A relative name is not the protocol; a missing socket is a failure
	 * the caller must hear about (the manager would time the service out). */
	setenv("NOTIFY_SOCKET", "relative/notify", 1);
	assert_int_equal(service_notify("READY=1"), -EINVAL);
	setenv("NOTIFY_SOCKET", "/nonexistent-dir/notify", 1);
	assert_int_equal(service_notify("READY=1"), -ENOENT);
	service_notify_ready("x"); /* logs, never fails the caller */
	unsetenv("NOTIFY_SOCKET");
}

/* ---- config keys ------------------------------------------------------ */

static int load_mtlsd_section(const char *body, struct mtlsd_config *cfg, char *err, size_t errlen)
{
	char path[] = "/tmp/mtlsd-svc-conf-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fprintf(f, "[mtlsd]\n%s", body);
	fclose(f);
	config_init(cfg);
	int rc = config_load_file(cfg, path, err, errlen);
	unlink(path);
	return rc;
}

static void test_service_config_keys(void **state)
{
	struct mtlsd_config cfg;
	char err[512] = "";

	assert_int_equal(load_mtlsd_section("user = mtlsd\ngroup = mtlsd\n"
					    "keep_capabilities = net_bind_service, CAP_BPF perfmon\n",
					    &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.user, "mtlsd");
	assert_string_equal(cfg.group, "mtlsd");
	assert_int_equal(cfg.keep_caps, (UINT64_C(1) << CAP_NET_BIND_SERVICE) |
			 (UINT64_C(1) << CAP_BPF) | (UINT64_C(1) << CAP_PERFMON));
	config_free(&cfg);
	assert_int_equal(load_mtlsd_section("keep_capabilities = none\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.keep_caps, 0);
	assert_null(cfg.user);
	config_free(&cfg);
}

static void test_service_config_keys_reject(void **state)
{
	struct mtlsd_config cfg;
	char err[512] = "";

	assert_int_equal(load_mtlsd_section("keep_capabilities = net_bind_service,sys_godmode\n",
					    &cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":2: key 'keep_capabilities': 'sys_godmode' is not a capability"));
	config_free(&cfg);
	assert_int_equal(load_mtlsd_section("user = -rf\n", &cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":2: key 'user': '-rf' is not a valid name"));
	config_free(&cfg);
}

/* ---- identity --------------------------------------------------------- */

static void test_service_resolve_identity(void **state)
{
	struct mtlsd_config cfg;
	struct service_identity id;
	char err[512] = "";
	struct passwd *nobody = getpwnam("nobody");

	if (!nobody)
		skip_because("no user nobody in the passwd database");
	config_init(&cfg);
	cfg.user = strdup("nobody");
	assert_int_equal(service_resolve_identity(&cfg, &id, err, sizeof(err)), 0);
	assert_int_equal(id.uid, nobody->pw_uid);
	assert_int_equal(id.gid, nobody->pw_gid);
	free(cfg.user);
	cfg.user = strdup("4321");
	cfg.group = strdup("4322");
	assert_int_equal(service_resolve_identity(&cfg, &id, err, sizeof(err)), 0);
	assert_int_equal(id.uid, 4321);
	assert_int_equal(id.gid, 4322);
	config_free(&cfg);
}

static void test_service_resolve_identity_rejects(void **state)
{
	struct mtlsd_config cfg;
	struct service_identity id;
	char err[512] = "";

	config_init(&cfg);
	cfg.user = strdup("no-such-user-mtlsd");
	assert_int_equal(service_resolve_identity(&cfg, &id, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "[mtlsd] user: 'no-such-user-mtlsd' does not exist; create it"));
	free(cfg.user);
	cfg.user = strdup("4321"); /* no passwd entry and no group */
	assert_int_equal(service_resolve_identity(&cfg, &id, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "add group = NAME or GID"));
	free(cfg.user);
	cfg.user = strdup("root");
	assert_int_equal(service_resolve_identity(&cfg, &id, err, sizeof(err)), -EINVAL);
	config_free(&cfg);
}

/* ---- the drop, in a child -------------------------------------------- */

/* The "Name:\tvalue" line of /proc/self/status, value only. */
static void proc_status(const char *key, char *out, size_t len)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "re");
	size_t klen = strlen(key);

	out[0] = '\0';
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			snprintf(out, len, "%s", line + klen + 1 + strspn(line + klen + 1, " \t"));
			out[strcspn(out, "\n")] = '\0';
			break;
		}
	}
	if (f)
		fclose(f);
}

/* Child side: 0 when the drop left exactly what it promised. */
static int child_drop_and_check(uid_t uid, gid_t gid)
{
	struct mtlsd_config cfg;
	char err[512], v[128], want[128];

	config_init(&cfg);
	if (asprintf(&cfg.user, "%u", (unsigned)uid) < 0 || asprintf(&cfg.group, "%u", (unsigned)gid) < 0)
		return 10;
	cfg.keep_caps = UINT64_C(1) << CAP_NET_BIND_SERVICE;
	if (service_drop_privileges(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "drop: %s\n", err);
		return 11;
	}
	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", uid, uid, uid, uid);
	proc_status("Uid", v, sizeof(v));
	if (strcmp(v, want) != 0)
		return 12;
	proc_status("Groups", v, sizeof(v));
	snprintf(want, sizeof(want), "%u", (unsigned)gid);
	if (strncmp(v, want, strlen(want)) != 0 || strchr(v, ' ') != strrchr(v, ' '))
		return 13;
	proc_status("CapEff", v, sizeof(v));
	if (strcmp(v, "0000000000000400") != 0)
		return 14;
	proc_status("CapPrm", v, sizeof(v));
	if (strcmp(v, "0000000000000400") != 0)
		return 15;
	proc_status("CapInh", v, sizeof(v));
	if (strcmp(v, "0000000000000000") != 0)
		return 16;
	proc_status("NoNewPrivs", v, sizeof(v));
	if (strcmp(v, "1") != 0 || prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
		return 17;
	if (setuid(0) == 0 || open("/proc/1/environ", O_RDONLY) >= 0)
		return 18;
	/* The twin: a second drop cannot keep what the first took away. */
	cfg.keep_caps |= UINT64_C(1) << CAP_BPF;
	if (service_drop_privileges(&cfg, err, sizeof(err)) != -EPERM ||
	    !strstr(err, "[mtlsd] keep_capabilities: bpf not held by mtlsd"))
		return 19;
	config_free(&cfg);
	return 0;
}

static int run_child(int (*fn)(void))
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static int drop_to_nobody(void)
{
	return child_drop_and_check(65534, 65534);
}

static void test_service_drop_privileges(void **state)
{
	SKIP_UNLESS_ROOT("only root can drop privileges");
	assert_int_equal(run_child(drop_to_nobody), 0);
}

/*
 * A thread as OpenSC's PKCS#11 module starts one through GLib when p11-kit
 * loads it: before the drop, with every signal blocked. It reports its
 * tid and then waits.
 */
static pid_t library_tid;
static pthread_mutex_t tid_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tid_cond = PTHREAD_COND_INITIALIZER;

static void *library_thread(void *arg)
{
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&tid_lock);
	library_tid = gettid();
	pthread_cond_signal(&tid_cond);
	pthread_mutex_unlock(&tid_lock);
	for (;;)
		pause();
	return arg;
}

static int start_library_thread(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, library_thread, NULL) != 0)
		return -1;
	pthread_mutex_lock(&tid_lock);
	while (library_tid == 0)
		pthread_cond_wait(&tid_cond, &tid_lock);
	pthread_mutex_unlock(&tid_lock);
	return 0;
}

/* "Name:\tvalue" of /proc/self/task/TID/status. */
static void task_status(pid_t tid, const char *key, char *out, size_t len)
{
	char path[64], line[256];
	size_t klen = strlen(key);

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	FILE *f = fopen(path, "re");
	out[0] = '\0';
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			snprintf(out, len, "%s", line + klen + 1 + strspn(line + klen + 1, " \t"));
			out[strcspn(out, "\n")] = '\0';
			break;
		}
	}
	if (f)
		fclose(f);
}

/* The drop reaches a thread started before it that blocks every signal:
 * its uids, capabilities (none: only this thread keeps keep_caps) and
 * no_new_privs, as the kernel shows them. */
static int drop_with_a_library_thread(void)
{
	struct mtlsd_config cfg;
	char err[512], v[128];

	config_init(&cfg);
	cfg.user = strdup("65534");
	cfg.group = strdup("65534");
	cfg.keep_caps = UINT64_C(1) << CAP_NET_BIND_SERVICE;
	if (start_library_thread() < 0)
		return 10;
	task_status(library_tid, "CapEff", v, sizeof(v));
	if (strcmp(v, "0000000000000000") == 0)
		return 11; /* nothing to drop: the test would prove nothing */
	if (service_drop_privileges(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "drop: %s\n", err);
		return 12;
	}
	task_status(library_tid, "Uid", v, sizeof(v));
	if (strcmp(v, "65534\t65534\t65534\t65534") != 0)
		return 13;
	task_status(library_tid, "Gid", v, sizeof(v));
	if (strcmp(v, "65534\t65534\t65534\t65534") != 0)
		return 14;
	task_status(library_tid, "CapEff", v, sizeof(v));
	if (strcmp(v, "0000000000000000") != 0)
		return 15;
	task_status(library_tid, "CapPrm", v, sizeof(v));
	if (strcmp(v, "0000000000000000") != 0)
		return 16;
	task_status(library_tid, "NoNewPrivs", v, sizeof(v));
	if (strcmp(v, "1") != 0)
		return 17;
	task_status(gettid(), "CapEff", v, sizeof(v));
	if (strcmp(v, "0000000000000400") != 0)
		return 18; /* this thread kept what it was told to */
	config_free(&cfg);
	return 0;
}

static void test_service_drop_privileges_reaches_library_threads(void **state)
{
	SKIP_UNLESS_ROOT("only root can drop privileges");
	assert_int_equal(run_child(drop_with_a_library_thread), 0);
}

/* The twin: without user = nothing changes the uids, so nothing can take
 * the library thread's capabilities: refused, naming the thread and the
 * fix, rather than run with a thread that keeps them. */
static int drop_without_user_with_a_library_thread(void)
{
	struct mtlsd_config cfg;
	char err[1024], want[64];

	config_init(&cfg);
	if (start_library_thread() < 0)
		return 10;
	if (service_drop_privileges(&cfg, err, sizeof(err)) != -EPERM) {
		fprintf(stderr, "drop: %s\n", err);
		return 11;
	}
	snprintf(want, sizeof(want), "thread %d (", (int)library_tid);
	if (!strstr(err, want) || !strstr(err, "set user =") || !strstr(err, "MODULE_PATH")) {
		fprintf(stderr, "drop: %s\n", err);
		return 12;
	}
	return 0;
}

static void test_service_drop_privileges_refuses_library_thread_without_user(void **state)
{
	SKIP_UNLESS_ROOT("only root can drop privileges");
	assert_int_equal(run_child(drop_without_user_with_a_library_thread), 0);
}

int main(void)
{
	srandom((unsigned)getpid());
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_service_notify_ready_sends_status),
		cmocka_unit_test(test_service_notify_abstract_socket),
		cmocka_unit_test(test_service_notify_reloading_has_monotonic_usec),
		cmocka_unit_test(test_service_notify_without_manager_is_silent),
		cmocka_unit_test(test_service_notify_rejects_bad_socket),
		cmocka_unit_test(test_service_config_keys),
		cmocka_unit_test(test_service_config_keys_reject),
		cmocka_unit_test(test_service_resolve_identity),
		cmocka_unit_test(test_service_resolve_identity_rejects),
		cmocka_unit_test(test_service_drop_privileges),
		cmocka_unit_test(test_service_drop_privileges_reaches_library_threads),
		cmocka_unit_test(test_service_drop_privileges_refuses_library_thread_without_user),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
