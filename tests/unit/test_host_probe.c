/*
 * test_host_probe.c: the host probes mtlsd and mtlsctl doctor share
 * (lib/host_probe.c).
 *
 * The io_uring table is checked against the source: every
 * io_uring_prep_*() call under dataplane/ must name a helper the table
 * lists (so doctor checks every op mtlsd submits), and every helper the
 * table lists must be called somewhere under dataplane/ (so doctor fails no
 * host for an op mtlsd never submits). Helper names, not IORING_OP_
 * values, are what the source is read for: they are what a change to the
 * engine adds. The tls ULP probe is driven through a stand-in setsockopt.
 */
#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>

#include <cmocka.h>
#include <liburing.h>

#include "host_probe.h"
#include "string_table.h"

/* ---- the table ---------------------------------------------------------- */

static void test_host_probe_every_need_has_a_name(void **state)
{
	(void)state;
	for (int n = 0; n < URING_NEED_MAX; n++) {
		const char *name = uring_need_name((enum uring_need)n);
		assert_string_not_equal(name, "?");
		/* Round trip: no two needs share a name, none is the fallback. */
		assert_int_equal(uring_need_from_name(name), n);
	}
	assert_string_equal(uring_need_name(URING_NEED_MAX), "?");
	assert_int_equal(uring_need_from_name("nosuchop"), -ENOENT);
}

static void test_host_probe_every_need_has_an_op_and_a_helper(void **state)
{
	(void)state;
	for (int n = 0; n < URING_NEED_MAX; n++) {
		assert_non_null(uring_needs[n].preps[0]);
		for (int m = 0; m < n; m++)
			if (uring_needs[m].opcode == uring_needs[n].opcode)
				fail_msg("%s and %s probe the same opcode %u", uring_need_name(m),
					 uring_need_name(n), uring_needs[n].opcode);
	}
}

static void test_host_probe_missing_lists_names_in_order(void **state)
{
	char buf[160];
	(void)state;
	assert_string_equal(uring_needs_missing(URING_NEEDS_ALL, buf, sizeof(buf)), "");
	assert_string_equal(uring_needs_missing(URING_NEEDS_ALL & ~(1u << URING_NEED_SENDMSG) &
						~(1u << URING_NEED_MSG_RING), buf, sizeof(buf)),
			    "sendmsg,msg_ring");
	/* A small buffer is cut, never overrun. */
	assert_string_equal(uring_needs_missing(0, buf, 8), "accept,");
}

/* ---- the table against dataplane/ ---------------------------------------- */

#define MAX_SEEN 64

static struct {
	char name[64];
	char where[256];
} seen[MAX_SEEN];
static size_t n_seen;
static char raw_opcode_at[512];

static void note_prep(const char *name, size_t len, const char *path)
{
	for (size_t i = 0; i < n_seen; i++)
		if (strlen(seen[i].name) == len && strncmp(seen[i].name, name, len) == 0)
			return;
	assert_true(n_seen < MAX_SEEN && len < sizeof(seen[0].name));
	memcpy(seen[n_seen].name, name, len);
	seen[n_seen].name[len] = '\0';
	snprintf(seen[n_seen].where, sizeof(seen[0].where), "%s", path);
	n_seen++;
}

static int scan_file(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	size_t plen = strlen(path);
	(void)st;
	(void)ftw;
	if (type != FTW_F || plen < 2 || (strcmp(path + plen - 2, ".c") != 0 && strcmp(path + plen - 2, ".h") != 0))
		return 0;
	FILE *f = fopen(path, "re");
	assert_non_null(f);
	char line[4096];
	int lineno = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		/* An opcode set by hand, past every helper, would escape this test. */
		if ((strstr(line, "->opcode =") || strstr(line, "io_uring_prep_rw(")) && !raw_opcode_at[0])
			snprintf(raw_opcode_at, sizeof(raw_opcode_at), "%.256s:%d: %.200s", path, lineno, line);
		for (char *p = line; (p = strstr(p, "io_uring_prep_")); ) {
			char *e = p + strlen("io_uring_prep_");
			while (isalnum((unsigned char)*e) || *e == '_')
				e++;
			char *after = e;
			while (*after == ' ')
				after++;
			if (*after == '(')
				note_prep(p, (size_t)(e - p), path);
			p = e;
		}
	}
	fclose(f);
	return 0;
}

static const char *need_of_prep(const char *prep)
{
	for (int n = 0; n < URING_NEED_MAX; n++)
		for (size_t k = 0; k < 3 && uring_needs[n].preps[k]; k++)
			if (strcmp(uring_needs[n].preps[k], prep) == 0)
				return uring_need_name((enum uring_need)n);
	return NULL;
}

static void test_host_probe_table_is_what_dataplane_submits(void **state)
{
	const char *src = getenv("MTLS_SRCDIR");
	char dir[4096];
	(void)state;

	if (!src)
		fail_msg("MTLS_SRCDIR is not set (run through meson test)");
	snprintf(dir, sizeof(dir), "%s/dataplane", src);
	n_seen = 0;
	raw_opcode_at[0] = '\0';
	assert_int_equal(nftw(dir, scan_file, 16, FTW_PHYS), 0);
	if (raw_opcode_at[0])
		fail_msg("an SQE opcode set without an io_uring_prep_*() helper, which lib/host_probe.c "
			 "cannot list: %s", raw_opcode_at);
	/* The engine submits a dozen kinds of request: finding none means the
	 * scan looked in the wrong place, not that the table is right. */
	assert_true(n_seen >= 8);
	for (size_t i = 0; i < n_seen; i++)
		if (!need_of_prep(seen[i].name))
			fail_msg("%s calls %s(), which lib/host_probe.c's uring_needs does not list: "
				 "add it under its IORING_OP_ so mtlsd's start-up check and mtlsctl doctor "
				 "probe for it", seen[i].where, seen[i].name);
	for (int n = 0; n < URING_NEED_MAX; n++) {
		for (size_t k = 0; k < 3 && uring_needs[n].preps[k]; k++) {
			bool used = false;
			for (size_t i = 0; i < n_seen && !used; i++)
				used = strcmp(seen[i].name, uring_needs[n].preps[k]) == 0;
			if (!used)
				fail_msg("lib/host_probe.c lists %s() for %s, but nothing under dataplane/ "
					 "calls it: remove it, or doctor fails hosts for an op mtlsd never submits",
					 uring_needs[n].preps[k], uring_need_name((enum uring_need)n));
		}
	}
}

/* ---- probing this host ------------------------------------------------------ */

static long read_long(const char *path, long absent)
{
	FILE *f = fopen(path, "re");
	long v = absent;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = absent;
		fclose(f);
	}
	return v;
}

/* mtlsd needs 5.19 (multishot accept); on such a kernel with io_uring on,
 * every op it submits is there. */
static void test_host_probe_uring_finds_every_op_here(void **state)
{
	struct utsname u;
	unsigned major = 0, minor = 0;
	uint32_t have = 0;
	(void)state;

	assert_int_equal(uname(&u), 0);
	sscanf(u.release, "%u.%u", &major, &minor);
	struct io_uring ring;
	int rc = io_uring_queue_init(2, &ring, 0);
	if (read_long("/proc/sys/kernel/io_uring_disabled", 0) == 2) {
		assert_true(rc < 0);
		return;
	}
	if (rc == 0) {
		rc = host_probe_uring_ops(&ring, &have);
		io_uring_queue_exit(&ring);
	}
	if (major > 5 || (major == 5 && minor >= 19)) {
		assert_int_equal(rc, 0);
		assert_int_equal(have, URING_NEEDS_ALL);
	}
}

static int calls, fake_errno, fake_rc;
static int seen_level, seen_name, seen_connected;
static char seen_val[16];

static int fake_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);

	calls++;
	seen_level = level;
	seen_name = name;
	seen_connected = getpeername(fd, (struct sockaddr *)&peer, &plen) == 0;
	snprintf(seen_val, sizeof(seen_val), "%.*s", (int)len, (const char *)val);
	errno = fake_errno;
	return fake_rc;
}

static void test_host_probe_tls_ulp_attaches_to_a_connected_socket(void **state)
{
	(void)state;
	calls = 0;
	fake_rc = 0;
	fake_errno = 0;
	assert_int_equal(host_probe_tls_ulp(fake_setsockopt), 0);
	assert_int_equal(calls, 1);
	assert_int_equal(seen_level, SOL_TCP);
	assert_int_equal(seen_name, TCP_ULP);
	assert_string_equal(seen_val, "tls");
	assert_true(seen_connected);
}

static void test_host_probe_tls_ulp_refused_says_why(void **state)
{
	(void)state;
	fake_rc = -1;
	fake_errno = ENOENT;
	assert_int_equal(host_probe_tls_ulp(fake_setsockopt), -ENOENT);
	/* A failure without errno is still a failure. */
	fake_errno = 0;
	assert_int_equal(host_probe_tls_ulp(fake_setsockopt), -EIO);
}

/* The real kernel answers 0 or "no such ULP", nothing else, on loopback. */
static void test_host_probe_tls_ulp_real_kernel(void **state)
{
	(void)state;
	int rc = host_probe_tls_ulp(NULL);
	assert_true(rc == 0 || rc == -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_probe_every_need_has_a_name),
		cmocka_unit_test(test_host_probe_every_need_has_an_op_and_a_helper),
		cmocka_unit_test(test_host_probe_missing_lists_names_in_order),
		cmocka_unit_test(test_host_probe_table_is_what_dataplane_submits),
		cmocka_unit_test(test_host_probe_uring_finds_every_op_here),
		cmocka_unit_test(test_host_probe_tls_ulp_attaches_to_a_connected_socket),
		cmocka_unit_test(test_host_probe_tls_ulp_refused_says_why),
		cmocka_unit_test(test_host_probe_tls_ulp_real_kernel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
