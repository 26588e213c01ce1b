/*
 * test_metrics.c: the /metrics hook's families (dataplane/control/metrics.c) from
 * fake worker counters and a generation built from the fixtures, without a
 * listener or traffic (tests/metrics/test_metrics.py does those).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "generation.h"
#include "metrics.h"
#include "worker.h"

static struct worker ws[2];

/* metrics_write's output as a string (free it). */
static char *render(time_t now)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	metrics_write(f, ws, 2, now);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void fixture(char *out, size_t len, const char *rel)
{
	const char *dir = getenv("MTLS_FIXTURES");
	if (!dir)
		fail_msg("MTLS_FIXTURES is not set: run through meson test");
	snprintf(out, len, "%s/%s", dir, rel);
}

static void flag(struct mtlsd_config *cfg, const char *key, const char *rel)
{
	char path[1024], err[512];
	if (rel[0] == '/' || strchr(rel, ':'))
		snprintf(path, sizeof(path), "%s", rel);
	else
		fixture(path, sizeof(path), rel);
	if (config_apply_flag(cfg, key, path, err, sizeof(err)) != 0)
		fail_msg("flag %s: %s", key, err);
}

/* Publish a one-partner generation (flags: partner "default"). */
static int publish_fixture_generation(void **state)
{
	struct mtlsd_config cfg;
	struct generation *g = NULL;
	char err[512];

	(void)state;
	config_init(&cfg);
	flag(&cfg, "cert", "server/chain.pem");
	flag(&cfg, "key", "server/key.pem");
	flag(&cfg, "listen", "127.0.0.1:8443");
	flag(&cfg, "client-ca", "pki/ca-bundle.pem");
	flag(&cfg, "crl", "pki/crls.pem");
	flag(&cfg, "backend", "127.0.0.1:9000");
	if (generation_build(&cfg, 7, &g, err, sizeof(err)) != 0)
		fail_msg("generation_build: %s", err);
	generation_publish(g);
	return 0;
}

static int unpublish(void **state)
{
	(void)state;
	generation_publish(NULL);
	memset(ws, 0, sizeof(ws));
	return 0;
}

static void test_metrics_sums_partner_handshakes_across_workers(void **state)
{
	(void)state;
	ws[0].counters.partner_handshakes[0][HS_OK] = 4;
	ws[1].counters.partner_handshakes[0][HS_OK] = 5;
	ws[1].counters.partner_handshakes[0][HS_EXPIRED] = 2;
	ws[0].counters.partner_handshakes[CFG_MAX_PARTNERS][HS_NO_CERT] = 1;
	ws[1].counters.partner_handshakes[CFG_MAX_PARTNERS][HS_NO_CERT] = 2;
	ws[0].counters.partner_handshakes[3][HS_OK] = 6; /* a slot no partner name owns */
	/* A partner a reload removed keeps its name (its slot is its own). */
	unsigned gone = partner_stat_slot("removed-by-reload");
	assert_true(gone > 0 && gone < CFG_MAX_PARTNERS && gone != 3);
	ws[1].counters.partner_handshakes[gone][HS_REVOKED] = 7;
	char *out = render(time(NULL));
	assert_non_null(strstr(out, "mtlsd_partner_handshakes_total{partner=\"default\",outcome=\"ok\"} 9\n"));
	assert_non_null(strstr(out, "mtlsd_partner_handshakes_total{partner=\"default\",outcome=\"expired\"} 2\n"));
	assert_non_null(strstr(out, "mtlsd_partner_handshakes_total{partner=\"default\",outcome=\"revoked\"} 0\n"));
	assert_non_null(strstr(out, "mtlsd_partner_handshakes_total{partner=\"-\",outcome=\"no_certificate\"} 3\n"));
	assert_non_null(strstr(out, "mtlsd_partner_handshakes_total{partner=\"#3\",outcome=\"ok\"} 6\n"));
	assert_non_null(strstr(out, "mtlsd_partner_handshakes_total{partner=\"removed-by-reload\",outcome=\"revoked\"} 7\n"));
	/* Only what it counted: a removed partner gets no zero rows. */
	assert_null(strstr(out, "partner=\"removed-by-reload\",outcome=\"ok\""));
	free(out);
}

/* The twin: rows of unconfigured partners that counted nothing stay out
 * (the series count is bounded by what happened, not by the array). */
static void test_metrics_omits_empty_unconfigured_rows(void **state)
{
	(void)state;
	char *out = render(time(NULL));
	assert_null(strstr(out, "partner=\"#"));
	assert_null(strstr(out, "mtlsd_partner_handshakes_total{partner=\"-\""));
	assert_non_null(strstr(out, "mtlsd_partner_handshakes_total{partner=\"default\",outcome=\"ok\"} 0\n"));
	free(out);
}

static void test_metrics_bytes_and_closes_summed(void **state)
{
	(void)state;
	ws[0].counters.bytes_client_to_backend = 100;
	ws[1].counters.bytes_client_to_backend = 23;
	ws[1].counters.bytes_backend_to_client = 7;
	ws[0].counters.closes[CLOSE_IDLE_TIMEOUT] = 2;
	ws[1].counters.closes[CLOSE_IDLE_TIMEOUT] = 1;
	char *out = render(time(NULL));
	assert_non_null(strstr(out, "mtlsd_relayed_bytes_total{direction=\"client_to_backend\"} 123\n"));
	assert_non_null(strstr(out, "mtlsd_relayed_bytes_total{direction=\"backend_to_client\"} 7\n"));
	assert_non_null(strstr(out, "mtlsd_connections_closed_total{reason=\"idle_timeout\"} 3\n"));
	assert_non_null(strstr(out, "mtlsd_generation 7\n"));
	free(out);
}

/* How many samples of family name out has, checking each value's sign
 * (1: > 0, -1: < 0). */
static int count_with_sign(const char *out, const char *name, int sign)
{
	size_t nlen = strlen(name);
	int n = 0;
	for (const char *line = out; *line; line = strchr(line, '\n') + 1) {
		if (strncmp(line, name, nlen) == 0 && line[nlen] == '{') {
			long long v = strtoll(strstr(line, "} ") + 2, NULL, 10);
			if (sign > 0 ? v <= 0 : v >= 0)
				fail_msg("wrong sign: %.*s", (int)(strchr(line, '\n') - line), line);
			n++;
		}
		if (!strchr(line, '\n'))
			break;
	}
	return n;
}

/* Every loaded certificate and CRL has a series, counted from `now`. */
static void test_metrics_expiry_positive_for_valid_fixtures(void **state)
{
	(void)state;
	char *out = render(time(NULL));
	assert_non_null(strstr(out, "mtlsd_certificate_expiry_seconds{kind=\"server\",partner=\"\""));
	assert_non_null(strstr(out, "mtlsd_certificate_expiry_seconds{kind=\"ca_anchor\",partner=\"default\""));
	assert_non_null(strstr(out, "mtlsd_crl_next_update_seconds{partner=\"default\""));
	assert_true(count_with_sign(out, "mtlsd_certificate_expiry_seconds", 1) >= 2);
	assert_true(count_with_sign(out, "mtlsd_crl_next_update_seconds", 1) >= 1);
	free(out);
}

/* The twin: fifty years on, every certificate and CRL reads as expired. */
static void test_metrics_expiry_negative_once_past(void **state)
{
	(void)state;
	char *out = render(time(NULL) + 50LL * 365 * 86400);
	assert_true(count_with_sign(out, "mtlsd_certificate_expiry_seconds", -1) >= 2);
	assert_true(count_with_sign(out, "mtlsd_crl_next_update_seconds", -1) >= 1);
	free(out);
}

/* A file holding rel's contents twice; path gets its name. */
static void doubled(char *path, size_t len, const char *rel)
{
	char src[1024], buf[65536];
	fixture(src, sizeof(src), rel);
	FILE *in = fopen(src, "r");
	assert_non_null(in);
	size_t n = fread(buf, 1, sizeof(buf), in);
	fclose(in);
	assert_true(n > 0 && n < sizeof(buf));
	snprintf(path, len, "/tmp/test_metrics_XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *out = fdopen(fd, "w");
	assert_non_null(out);
	fwrite(buf, 1, n, out);
	fwrite(buf, 1, n, out);
	assert_int_equal(fclose(out), 0);
}

/* Every line of family name in out is a distinct series. */
static int distinct_series(const char *out, const char *name)
{
	size_t nlen = strlen(name);
	int n = 0;
	for (const char *a = out; a && *a; a = strchr(a, '\n') ? strchr(a, '\n') + 1 : NULL) {
		if (strncmp(a, name, nlen) || a[nlen] != '{')
			continue;
		size_t alen = (size_t)(strstr(a, "} ") - a);
		for (const char *b = strchr(a, '\n') + 1; b && *b; b = strchr(b, '\n') ? strchr(b, '\n') + 1 : NULL)
			if (strncmp(a, b, alen + 1) == 0)
				fail_msg("duplicate series: %.*s", (int)alen + 1, a);
		n++;
	}
	return n;
}

/* The same CA and CRL listed twice: one series each, not two (Prometheus
 * drops duplicate samples). Its twin is the count against the single
 * bundle: the same number of series. */
static void test_metrics_duplicates_give_one_series(void **state)
{
	char *single = render(time(NULL));
	int certs = distinct_series(single, "mtlsd_certificate_expiry_seconds");
	int crls = distinct_series(single, "mtlsd_crl_next_update_seconds");
	char ca[64], crl[64], err[512];
	struct mtlsd_config cfg;
	struct generation *g = NULL;

	(void)state;
	assert_true(certs >= 2 && crls >= 1);
	doubled(ca, sizeof(ca), "pki/ca-bundle.pem");
	doubled(crl, sizeof(crl), "pki/crls.pem");
	config_init(&cfg);
	flag(&cfg, "cert", "server/chain.pem");
	flag(&cfg, "key", "server/key.pem");
	flag(&cfg, "listen", "127.0.0.1:8443");
	flag(&cfg, "client-ca", ca);
	flag(&cfg, "crl", crl);
	flag(&cfg, "backend", "127.0.0.1:9000");
	if (generation_build(&cfg, 8, &g, err, sizeof(err)) != 0)
		fail_msg("generation_build: %s", err);
	generation_publish(g);
	unlink(ca);
	unlink(crl);
	char *twice = render(time(NULL));
	assert_int_equal(distinct_series(twice, "mtlsd_certificate_expiry_seconds"), certs);
	assert_int_equal(distinct_series(twice, "mtlsd_crl_next_update_seconds"), crls);
	free(single);
	free(twice);
}

/* An audit line the file would not take (/dev/full: ENOSPC) is counted
 * where an operator can alert on it; the twin: none lost, 0. */
static void test_metrics_audit_write_errors_counted(void **state)
{
	char *before, *after;

	(void)state;
	before = render(time(NULL));
	assert_non_null(strstr(before, "# TYPE mtlsd_audit_write_errors_total counter\n"
				       "mtlsd_audit_write_errors_total 0\n"));
	assert_int_equal(audit_open("/dev/full"), 0);
	audit_event_simple("backend_connect_failed", 7, NULL, "default", "connection refused");
	audit_event_simple("backend_connect_failed", 8, NULL, "default", "connection refused");
	audit_close();
	after = render(time(NULL));
	assert_non_null(strstr(after, "\nmtlsd_audit_write_errors_total 2\n"));
	free(before);
	free(after);
}

static void test_metrics_healthz_needs_a_generation(void **state)
{
	char why[128] = "";
	struct admin_http_hooks h = metrics_hooks(ws, 2);

	(void)state;
	assert_true(h.healthy(why, sizeof(why)));
	generation_publish(NULL);
	assert_false(h.healthy(why, sizeof(why)));
	assert_non_null(strstr(why, "no configuration"));
	publish_fixture_generation(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_metrics_audit_write_errors_counted,
						publish_fixture_generation, unpublish),
		cmocka_unit_test_setup_teardown(test_metrics_sums_partner_handshakes_across_workers,
						publish_fixture_generation, unpublish),
		cmocka_unit_test_setup_teardown(test_metrics_omits_empty_unconfigured_rows,
						publish_fixture_generation, unpublish),
		cmocka_unit_test_setup_teardown(test_metrics_bytes_and_closes_summed,
						publish_fixture_generation, unpublish),
		cmocka_unit_test_setup_teardown(test_metrics_expiry_positive_for_valid_fixtures,
						publish_fixture_generation, unpublish),
		cmocka_unit_test_setup_teardown(test_metrics_expiry_negative_once_past,
						publish_fixture_generation, unpublish),
		cmocka_unit_test_setup_teardown(test_metrics_duplicates_give_one_series,
						publish_fixture_generation, unpublish),
		cmocka_unit_test_setup_teardown(test_metrics_healthz_needs_a_generation,
						publish_fixture_generation, unpublish),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
