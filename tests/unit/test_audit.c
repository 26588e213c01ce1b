/*
 * test_audit.c: the audit line, field by field, and the file sink.
 *
 * The JSON must survive hostile certificate fields (every byte below 0x20
 * escaped, one line per record), name exactly what was known (fields absent
 * when unknown), and reach the file in one write per line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "audit.h"
#include "hostile_cert.h"

static X509 *load_fixture(const char *rel)
{
	const char *dir = getenv("MTLS_FIXTURES");
	char path[1024];
	FILE *f;
	X509 *x;

	if (!dir) {
		fprintf(stderr, "MTLS_FIXTURES is not set (run through meson test)\n");
		exit(77);
	}
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open fixture %s", path);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

static struct sockaddr_in peer4;

static struct audit_event base_event(void)
{
	peer4.sin_family = AF_INET;
	peer4.sin_port = htons(50412);
	inet_pton(AF_INET, "127.0.0.1", &peer4.sin_addr);
	return (struct audit_event){
		.ts = { .tv_sec = 1795758001, .tv_nsec = 123456789 }, /* 2026-11-27T05:40:01.123Z */
		.conn_id = 17, .peer = (struct sockaddr *)&peer4, .partner = "partner",
		.outcome = HS_OK, .reason = "ok", .tls_version = "TLSv1.3",
		.cipher = "TLS_AES_128_GCM_SHA256", .duration_us = 912,
	};
}

/* One line: ends with the only '\n', no raw control byte before it. */
static void assert_one_clean_line(const char *line, int n)
{
	assert_true(n > 2);
	assert_int_equal(line[n - 1], '\n');
	assert_int_equal((int)strlen(line), n);
	for (int i = 0; i < n - 1; i++)
		if ((unsigned char)line[i] < 0x20)
			fail_msg("raw control byte 0x%02x at %d in %s", line[i], i, line);
}

static void test_audit_success_line_fields(void **state)
{
	struct audit_event ev = base_event();
	char line[8192];
	int n;

	(void)state;
	ev.leaf = load_fixture("client-ec/cert.pem");
	ev.spiffe_id = "spiffe://partner.example/prod/app1";
	ev.cn = "client-ec";
	n = audit_format(&ev, line, sizeof(line));
	assert_one_clean_line(line, n);
	assert_true(strncmp(line, "{\"ts\":\"2026-11-27T05:40:01.123Z\",\"event\":\"handshake\","
				  "\"conn\":17,\"peer\":\"127.0.0.1:50412\",\"partner\":\"partner\","
				  "\"outcome\":\"ok\",\"reason\":\"ok\",\"subject\":", 139) == 0);
	assert_non_null(strstr(line, "\"subject\":\"CN=client-ec,O=partner\""));
	assert_non_null(strstr(line, "\"issuer\":\"CN=partner Issuing CA,O=partner\""));
	assert_non_null(strstr(line, "\"serial\":\""));
	assert_non_null(strstr(line, "\"sha256\":\""));
	assert_non_null(strstr(line, "\"spiffe_id\":\"spiffe://partner.example/prod/app1\""));
	assert_non_null(strstr(line, "\"sans\":[\"DNS:app1.partner.example\",\"URI:spiffe://partner.example/prod/app1\"]"));
	assert_non_null(strstr(line, "\"not_after\":\"20"));
	assert_non_null(strstr(line, "\"cn\":\"client-ec\",\"tls_version\":\"TLSv1.3\","
				     "\"cipher\":\"TLS_AES_128_GCM_SHA256\",\"resumed\":false,\"duration_us\":912}\n"));
	X509_free(ev.leaf);
}

/* Twin: the audit line names as the client only what the caller says the
 * allow-list verified: a refused certificate's SPIFFE URI and CN are in
 * "sans" and "subject", never in "spiffe_id" / "cn". */
static void test_audit_identity_only_when_verified(void **state)
{
	struct audit_event ev = base_event();
	char line[8192];
	int n;

	(void)state;
	ev.leaf = load_fixture("client-ec/cert.pem");
	ev.outcome = HS_POLICY_DENIED;
	n = audit_format(&ev, line, sizeof(line));
	assert_one_clean_line(line, n);
	assert_null(strstr(line, "\"spiffe_id\""));
	assert_null(strstr(line, "\"cn\""));
	assert_non_null(strstr(line, "\"URI:spiffe://partner.example/prod/app1\""));
	X509_free(ev.leaf);
}

/* Twin: without certificate, partner or TLS parameters, their fields are
 * absent rather than empty or null. */
static void test_audit_failure_without_cert_omits_fields(void **state)
{
	struct audit_event ev = base_event();
	char line[8192];
	int n;

	(void)state;
	ev.partner = NULL;
	ev.outcome = HS_NO_CERT;
	ev.reason = "client sent no certificate";
	ev.tls_version = NULL;
	ev.cipher = NULL;
	n = audit_format(&ev, line, sizeof(line));
	assert_one_clean_line(line, n);
	assert_non_null(strstr(line, "\"outcome\":\"no_certificate\""));
	for (const char *const *k = (const char *const[]){ "\"partner\"", "\"subject\"", "\"serial\"",
			"\"sans\"", "\"sha256\"", "\"not_after\"", "\"tls_version\"", "\"cipher\"", NULL }; *k; k++)
		if (strstr(line, *k))
			fail_msg("%s present in %s", *k, line);
}

static void test_audit_hostile_fields_escaped(void **state)
{
	struct audit_event ev = base_event();
	char line[8192];
	int n;

	(void)state;
	ev.leaf = hostile_cert_new();
	ev.outcome = HS_UNKNOWN_CA;
	ev.reason = "quote \" newline \n tab \t";
	n = audit_format(&ev, line, sizeof(line));
	assert_one_clean_line(line, n);
	assert_non_null(strstr(line, "\"reason\":\"quote \\\" newline \\n tab \\t\""));
	assert_non_null(strstr(line, HOSTILE_DNS_JSON));
	X509_free(ev.leaf);
}

static void test_audit_peer_formats(void **state)
{
	struct audit_event ev = base_event();
	struct sockaddr_in6 p6 = { .sin6_family = AF_INET6, .sin6_port = htons(8443) };
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	char line[8192];

	(void)state;
	inet_pton(AF_INET6, "::1", &p6.sin6_addr);
	ev.peer = (struct sockaddr *)&p6;
	assert_true(audit_format(&ev, line, sizeof(line)) > 0);
	assert_non_null(strstr(line, "\"peer\":\"[::1]:8443\""));
	ev.peer = (struct sockaddr *)&un;
	assert_true(audit_format(&ev, line, sizeof(line)) > 0);
	assert_non_null(strstr(line, "\"peer\":\"unix\""));
	ev.peer = NULL;
	assert_true(audit_format(&ev, line, sizeof(line)) > 0);
	assert_null(strstr(line, "\"peer\""));
}

static void test_audit_small_buffer(void **state)
{
	struct audit_event ev = base_event();
	char line[8192];
	int full, n;

	(void)state;
	ev.leaf = load_fixture("client-ec/cert.pem");
	full = audit_format(&ev, line, sizeof(line));
	assert_true(full > 0);
	/* One byte short: the SANs give way, the record survives. */
	n = audit_format(&ev, line, (size_t)full);
	assert_one_clean_line(line, n);
	assert_non_null(strstr(line, "\"sans\":null,\"sans_truncated\":true"));
	assert_int_equal(audit_format(&ev, line, 64), -ENOSPC);
	assert_int_equal(audit_format(&ev, line, 0), -ENOSPC);
	X509_free(ev.leaf);
}

static size_t count_lines(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;
	size_t lines = 0;

	assert_true(fd >= 0);
	n = read(fd, buf, cap - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		lines += buf[i] == '\n';
	return lines;
}

static void test_audit_file_sink_and_reopen(void **state)
{
	char dir[] = "/tmp/mtlsd-audit-XXXXXX";
	char path[256], rotated[256], buf[16384];
	struct audit_event ev = base_event();
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	snprintf(rotated, sizeof(rotated), "%s/audit.log.1", dir);
	assert_int_equal(audit_open(path), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0077 & ~0040, 0); /* at most group-readable */
	audit_handshake(&ev);
	audit_event_simple("backend_connect_failed", 18, (struct sockaddr *)&peer4, "partner",
			   "connection refused");
	assert_int_equal(count_lines(path, buf, sizeof(buf)), 2);
	assert_non_null(strstr(buf, "\"event\":\"backend_connect_failed\",\"conn\":18,"));

	/* Rotation: rename, reopen; new lines go to the new file only. */
	assert_int_equal(rename(path, rotated), 0);
	assert_int_equal(audit_open(path), 0);
	audit_handshake(&ev);
	assert_int_equal(count_lines(path, buf, sizeof(buf)), 1);
	assert_int_equal(count_lines(rotated, buf, sizeof(buf)), 2);
	assert_int_equal(audit_write_errors(), 0);
	audit_close();

	assert_int_equal(audit_open("/nonexistent-dir/audit.log"), -ENOENT);
	unlink(path);
	unlink(rotated);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_audit_success_line_fields),
		cmocka_unit_test(test_audit_identity_only_when_verified),
		cmocka_unit_test(test_audit_failure_without_cert_omits_fields),
		cmocka_unit_test(test_audit_hostile_fields_escaped),
		cmocka_unit_test(test_audit_peer_formats),
		cmocka_unit_test(test_audit_small_buffer),
		cmocka_unit_test(test_audit_file_sink_and_reopen),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
