/*
 * test_acct.c: the user-space half of handshake accounting, without the
 * kernel: outcome buckets, the latency histogram and its quantiles, the
 * bounded fallback table (eviction, restore), the snapshot file, instance
 * names. The kernel half is exercised by test_bpf_accounting.py.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "acct_fallback.h"
#include "acct_publish.h"
#include "bpf/acct_prom.h"
#include "bpf/acct_user.h"

static void test_acct_bucket_first_twelve_are_identity(void **state)
{
	(void)state;
	for (unsigned o = HS_OK; o < HS_OUTCOME_MAX; o++)
		assert_int_equal(acct_bucket_of(o), o);
}

static void test_acct_bucket_folds_later_outcomes(void **state)
{
	(void)state;
	/* Their own buckets, not policy_denied or other (issue 14). */
	assert_int_equal(acct_bucket_of(HS_CHAIN_TOO_DEEP), ACCT_B_CHAIN_TOO_DEEP);
	assert_int_equal(acct_bucket_of(HS_WEAK_KEY), ACCT_B_WEAK_KEY);
	assert_int_equal(acct_bucket_of(HS_CRL_UNAVAILABLE), ACCT_B_CRL_UNAVAILABLE);
	/* an outcome from a newer mtlsd than this header is "other", never
	 * an index past the array */
	assert_int_equal(acct_bucket_of(HS_OUTCOME_MAX + 7), ACCT_B_OTHER);
	assert_int_equal(acct_bucket_of(0xffffffffu), ACCT_B_OTHER);
}

static void test_acct_hist_slot_is_floor_log2(void **state)
{
	(void)state;
	assert_int_equal(acct_hist_slot(0), 0);
	assert_int_equal(acct_hist_slot(1), 0);
	assert_int_equal(acct_hist_slot(2), 1);
	assert_int_equal(acct_hist_slot(3), 1);
	assert_int_equal(acct_hist_slot(1024), 10);
	assert_int_equal(acct_hist_slot(1023), 9);
	assert_int_equal(acct_hist_slot(900000), 19);    /* ~0.9 ms */
	assert_int_equal(acct_hist_slot(1ULL << 39), 39);
}

static void test_acct_hist_slot_clamps_huge_durations(void **state)
{
	(void)state;
	assert_int_equal(acct_hist_slot(1ULL << 40), ACCT_HIST_SLOTS - 1);
	assert_int_equal(acct_hist_slot(UINT64_MAX), ACCT_HIST_SLOTS - 1);
}

static void test_acct_quantile_upper_bound(void **state)
{
	__u64 hist[ACCT_HIST_SLOTS] = { 0 };
	(void)state;

	hist[19] = 98;   /* 98 handshakes in [512us, 1ms) */
	hist[25] = 2;    /* 2 in [33ms, 67ms) */
	assert_int_equal(acct_hist_quantile_ns(hist, 0.50), 1ULL << 20);
	assert_int_equal(acct_hist_quantile_ns(hist, 0.98), 1ULL << 20);
	assert_int_equal(acct_hist_quantile_ns(hist, 0.99), 1ULL << 26);
}

static void test_acct_quantile_empty_is_zero(void **state)
{
	__u64 hist[ACCT_HIST_SLOTS] = { 0 };
	(void)state;

	assert_int_equal(acct_hist_quantile_ns(hist, 0.5), 0);
	hist[3] = 1;
	assert_int_equal(acct_hist_quantile_ns(hist, 0), 0);    /* not a quantile */
	assert_int_equal(acct_hist_quantile_ns(hist, 1.5), 0);
}

static void test_acct_instance_valid_names(void **state)
{
	(void)state;
	assert_true(acct_instance_valid("default"));
	assert_true(acct_instance_valid("edge-1.eu_west"));
	assert_true(acct_instance_valid("abcdefghijklmnopqrstuvwxyz012345"));   /* 32 */
}

static void test_acct_instance_invalid_names(void **state)
{
	char buf[256];
	(void)state;

	assert_false(acct_instance_valid(NULL));
	assert_false(acct_instance_valid(""));
	assert_false(acct_instance_valid(".."));
	assert_false(acct_instance_valid("a/b"));
	assert_false(acct_instance_valid("a b"));
	assert_false(acct_instance_valid("abcdefghijklmnopqrstuvwxyz0123456"));  /* 33 */
	assert_int_equal(acct_pin_dir("../etc", buf, sizeof(buf)), -EINVAL);
}

static void test_acct_key_same_serial_two_issuers_differ(void **state)
{
	uint8_t ia[20], ib[20], serial[9] = { 0x4f, 0xa2, 1, 2, 3, 4, 5, 6, 7 };
	struct acct_key a, b;
	(void)state;

	memset(ia, 0xaa, sizeof(ia));
	memset(ib, 0xbb, sizeof(ib));
	assert_int_equal(acct_key_make(&a, ia, serial, sizeof(serial)), 0);
	assert_int_equal(acct_key_make(&b, ib, serial, sizeof(serial)), 0);
	assert_memory_not_equal(&a, &b, sizeof(a));
	assert_false(acct_key_is_no_cert(&a));
}

static void test_acct_key_rejects_long_serial(void **state)
{
	uint8_t issuer[20] = { 1 }, serial[21] = { 1 };
	struct acct_key k;
	(void)state;

	assert_int_equal(acct_key_make(&k, issuer, serial, sizeof(serial)), -EINVAL);
	assert_int_equal(acct_key_make(&k, issuer, serial, 0), 0);
	assert_true(acct_key_is_no_cert(&k));
}

static struct acct_key key_n(unsigned n)
{
	uint8_t issuer[20] = { 0x11 }, serial[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16),
						    (uint8_t)(n >> 8), (uint8_t)n };
	struct acct_key k;

	assert_int_equal(acct_key_make(&k, issuer, serial, sizeof(serial)), 0);
	return k;
}

static void add(struct acct_table *t, unsigned n, enum hs_outcome o, uint64_t when)
{
	struct acct_key k = key_n(n);
	struct acct_sample s = { .bucket = acct_bucket_of(o), .duration_ns = 1000, .boot_ns = when,
				 .partner = 0 };
	(void)acct_table_add(t, &k, &s);
}

static const struct acct_record *find(const struct acct_record *r, size_t n, unsigned which)
{
	struct acct_key k = key_n(which);

	for (size_t i = 0; i < n; i++)
		if (memcmp(&r[i].key, &k, sizeof(k)) == 0)
			return &r[i];
	return NULL;
}

static void test_acct_table_counts_per_key(void **state)
{
	struct acct_table *t;
	struct acct_record recs[16];
	struct acct_totals tot;
	(void)state;

	assert_int_equal(acct_table_new(16, &t), 0);
	add(t, 1, HS_OK, 10);
	add(t, 1, HS_OK, 11);
	add(t, 1, HS_WEAK_KEY, 12);
	add(t, 2, HS_EXPIRED, 13);
	size_t n = acct_table_snapshot(t, recs, 16, &tot);
	assert_int_equal(n, 2);
	assert_int_equal(tot.events, 4);
	assert_int_equal(tot.new_keys, 2);
	const struct acct_record *r1 = find(recs, n, 1);
	assert_non_null(r1);
	assert_int_equal(r1->c.outcome[ACCT_B_OK], 2);
	assert_int_equal(r1->c.outcome[ACCT_B_WEAK_KEY], 1);
	assert_int_equal(r1->c.hist[acct_hist_slot(1000)], 3);
	assert_int_equal(r1->c.last_seen_ns, 12);
	assert_int_equal(find(recs, n, 2)->c.outcome[ACCT_B_EXPIRED], 1);
	acct_table_free(t);
}

static void test_acct_table_bounded_evicts_least_recent(void **state)
{
	struct acct_table *t;
	struct acct_record recs[64];
	struct acct_totals tot;
	(void)state;

	/* 8 slots = one probe window: key 1000 can only get in by evicting. */
	assert_int_equal(acct_table_new(8, &t), 0);
	assert_int_equal(acct_table_capacity(t), 8);
	for (unsigned i = 0; i < 8; i++)
		add(t, i, HS_OK, 100 + i);
	add(t, 0, HS_OK, 500);          /* key 0 is now the most recent */
	add(t, 1000, HS_OK, 600);       /* evicts key 1, the least recent */
	size_t n = acct_table_snapshot(t, recs, 64, &tot);
	assert_int_equal(n, 8);
	assert_int_equal(tot.new_keys, 9);   /* readers: evicted = 9 - 8 = 1 */
	assert_null(find(recs, n, 1));
	assert_non_null(find(recs, n, 0));
	assert_non_null(find(recs, n, 1000));
	acct_table_free(t);
}

static void test_acct_table_restore_continues_counts(void **state)
{
	struct acct_table *t, *t2;
	struct acct_record recs[16], recs2[16];
	struct acct_totals tot, tot2;
	(void)state;

	assert_int_equal(acct_table_new(16, &t), 0);
	add(t, 7, HS_REVOKED, 1);
	size_t n = acct_table_snapshot(t, recs, 16, &tot);
	assert_int_equal(acct_table_new(16, &t2), 0);
	acct_table_restore(t2, recs, n, &tot);
	add(t2, 7, HS_REVOKED, 2);
	size_t n2 = acct_table_snapshot(t2, recs2, 16, &tot2);
	assert_int_equal(n2, 1);
	assert_int_equal(recs2[0].c.outcome[ACCT_B_REVOKED], 2);
	assert_int_equal(tot2.new_keys, 1);   /* restored keys are not new again */
	assert_int_equal(tot2.events, 2);
	acct_table_free(t);
	acct_table_free(t2);
}

static void test_acct_table_rejects_zero_capacity(void **state)
{
	struct acct_table *t = (void *)1;
	(void)state;

	assert_int_equal(acct_table_new(0, &t), -EINVAL);
	assert_null(t);
	acct_table_free(NULL);
}

static void test_acct_table_meta_asked_once(void **state)
{
	struct acct_table *t;
	struct acct_key k = key_n(3), other = key_n(4);
	struct acct_sample smp = { .bucket = ACCT_B_OK };
	struct acct_meta m = { .partner = 2 }, none = { .partner = 9 };
	struct acct_record recs[4];
	struct acct_totals tot;
	(void)state;

	assert_int_equal(acct_table_new(16, &t), 0);
	snprintf(m.subject_cn, sizeof(m.subject_cn), "client-ec");
	assert_true(acct_table_add(t, &k, &smp));
	acct_table_set_meta(t, &k, &m);
	assert_false(acct_table_add(t, &k, &smp));
	acct_table_set_meta(t, &other, &none);   /* unknown key: not inserted */
	size_t n = acct_table_snapshot(t, recs, 4, &tot);
	assert_int_equal(n, 1);
	assert_true(recs[0].has_meta);
	assert_string_equal(recs[0].meta.subject_cn, "client-ec");
	assert_int_equal(tot.new_keys, 1);
	acct_table_free(t);
}

#define WRITERS 4
#define ADDS_PER_WRITER 20000

static void *writer_main(void *arg)
{
	struct acct_table *t = arg;

	for (unsigned i = 0; i < ADDS_PER_WRITER; i++)
		add(t, i % 50, i % 3 ? HS_OK : HS_TIMEOUT, i);
	return NULL;
}

/* Workers update the table concurrently: nothing may be lost. */
static void test_acct_table_concurrent_adds_all_counted(void **state)
{
	struct acct_table *t;
	pthread_t th[WRITERS];
	static struct acct_record recs[64];
	struct acct_totals tot;
	uint64_t ok = 0, timeouts = 0;
	(void)state;

	assert_int_equal(acct_table_new(4096, &t), 0);
	for (int i = 0; i < WRITERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, writer_main, t), 0);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(th[i], NULL);
	size_t n = acct_table_snapshot(t, recs, 64, &tot);
	for (size_t i = 0; i < n; i++) {
		ok += recs[i].c.outcome[ACCT_B_OK];
		timeouts += recs[i].c.outcome[ACCT_B_TIMEOUT];
	}
	assert_int_equal(n, 50);
	assert_int_equal(tot.new_keys, 50);
	assert_int_equal(tot.events, WRITERS * ADDS_PER_WRITER);
	assert_int_equal(ok + timeouts, WRITERS * ADDS_PER_WRITER);
	assert_int_equal(timeouts, WRITERS * ((ADDS_PER_WRITER + 2) / 3));
	acct_table_free(t);
}

static char snap_path[256];

static int snap_setup(void **state)
{
	(void)state;
	snprintf(snap_path, sizeof(snap_path), "/tmp/test_acct_snapshot.%d", (int)getpid());
	return 0;
}

static int snap_teardown(void **state)
{
	(void)state;
	unlink(snap_path);
	return 0;
}

static void snap_header(struct acct_snapshot_header *h, uint32_t n)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, ACCT_SNAPSHOT_MAGIC, sizeof(h->magic));
	h->layout_version = ACCT_LAYOUT_VERSION;
	h->record_size = sizeof(struct acct_record);
	h->n_records = n;
	h->totals.events = 42;
	snprintf(h->reason, sizeof(h->reason), "missing CAP_BPF");
}

static void test_acct_snapshot_roundtrip(void **state)
{
	struct acct_snapshot_header h, back;
	struct acct_record recs[2] = { 0 }, *got;
	size_t n;
	(void)state;

	recs[0].key = key_n(5);
	recs[0].c.outcome[ACCT_B_TIMEOUT] = 3;
	recs[1].key = key_n(6);
	snap_header(&h, 2);
	assert_int_equal(acct_snapshot_write(snap_path, &h, recs, 2), 0);
	assert_int_equal(acct_snapshot_read(snap_path, &back, &got, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(back.totals.events, 42);
	assert_string_equal(back.reason, "missing CAP_BPF");
	assert_memory_equal(got, recs, sizeof(recs));
	free(got);
}

static void test_acct_snapshot_rejects_other_layout_and_truncation(void **state)
{
	struct acct_snapshot_header h, back;
	struct acct_record recs[1] = { 0 }, *got;
	size_t n;
	(void)state;

	snap_header(&h, 1);
	h.layout_version = ACCT_LAYOUT_VERSION + 1;
	assert_int_equal(acct_snapshot_write(snap_path, &h, recs, 1), 0);
	assert_int_equal(acct_snapshot_read(snap_path, &back, &got, &n), -EPROTO);
	snap_header(&h, 2);   /* claims two records, holds one */
	assert_int_equal(acct_snapshot_write(snap_path, &h, recs, 1), 0);
	assert_int_equal(acct_snapshot_read(snap_path, &back, &got, &n), -EBADMSG);
	assert_null(got);
	memcpy(h.magic, "NOTACCT!", 8);
	assert_int_equal(acct_snapshot_write(snap_path, &h, recs, 1), 0);
	assert_int_equal(acct_snapshot_read(snap_path, &back, &got, &n), -EBADMSG);
	unlink(snap_path);
	assert_int_equal(acct_snapshot_read(snap_path, &back, &got, &n), -ENOENT);
}

static char *prom(const struct acct_view *v)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	assert_int_equal(acct_prom_render(f, v), 0);
	fclose(f);
	return text;
}

static void test_acct_prom_series_and_histogram(void **state)
{
	struct acct_record recs[2] = { 0 };
	(void)state;

	recs[0].key = key_n(0x4f);
	recs[0].has_meta = 1;
	snprintf(recs[0].meta.partner_name, sizeof(recs[0].meta.partner_name), "acme");
	snprintf(recs[0].meta.subject_cn, sizeof(recs[0].meta.subject_cn), "client-ec");
	recs[0].c.outcome[ACCT_B_OK] = 3;
	recs[0].c.outcome[ACCT_B_EXPIRED] = 1;
	recs[0].c.hist[19] = 3;
	recs[0].c.hist[39] = 1;          /* beyond every finite bucket */
	recs[0].c.duration_sum_ns = 1500000000;
	recs[1].c.outcome[ACCT_B_NO_CERT] = 2;   /* the no-certificate key */
	recs[1].c.last_partner = ACCT_NO_PARTNER;
	recs[1].c.hist[10] = 2;
	struct acct_view v = { .source = "bpf", .recs = recs, .n = 2, .n_present = 2,
			       .totals = { .new_keys = 5 }, .capacity = 16384 };
	char *t = prom(&v);
	assert_non_null(strstr(t, "mtlsd_handshakes_total{partner=\"acme\",subject_cn=\"client-ec\","
				  "serial=\"00:00:00:4F\",issuer_id=\"11000000000000000000"
				  "00000000000000000000\",outcome=\"ok\"} 3\n"));
	assert_non_null(strstr(t, "outcome=\"expired\"} 1\n"));
	assert_null(strstr(t, "outcome=\"revoked\""));   /* zero: no series */
	assert_non_null(strstr(t, "{partner=\"-\",subject_cn=\"\",serial=\"\",issuer_id=\"\","
				  "outcome=\"no_certificate\"} 2\n"));
	assert_non_null(strstr(t, "_bucket{partner=\"acme\",le=\"0.001048576\"} 3\n"));
	assert_non_null(strstr(t, "_bucket{partner=\"acme\",le=\"+Inf\"} 4\n"));
	assert_non_null(strstr(t, "_sum{partner=\"acme\"} 1.500000000\n"));
	assert_non_null(strstr(t, "mtlsd_accounting_evictions_total 3\n"));
	assert_non_null(strstr(t, "mtlsd_accounting_source{source=\"bpf\"} 1\n"));
	free(t);
}

static void test_acct_prom_escapes_label_values(void **state)
{
	struct acct_record r = { 0 };
	(void)state;

	r.key = key_n(1);
	r.has_meta = 1;
	snprintf(r.meta.subject_cn, sizeof(r.meta.subject_cn), "a\"b\\c\nd\033e");
	r.c.outcome[ACCT_B_OK] = 1;
	struct acct_view v = { .source = "fallback", .recs = &r, .n = 1, .n_present = 1 };
	char *t = prom(&v);
	assert_non_null(strstr(t, "subject_cn=\"a\\\"b\\\\c\\nd?e\""));
	assert_null(strchr(t, '\033'));
	free(t);
}

/* Stop publishes the last state; a new publisher on the same path starts
 * from it (a restarted mtlsd in fallback mode keeps its counts). */
static void test_acct_publisher_persists_across_restart(void **state)
{
	char dir[] = "/tmp/test_acct_pub.XXXXXX", path[128];
	struct acct_table *t;
	struct acct_publisher *p;
	struct acct_snapshot_header h;
	struct acct_record *recs, out[4];
	struct acct_totals tot;
	size_t n;
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/inst/stats.bin", dir);   /* inst/ is created */
	assert_int_equal(acct_table_new(16, &t), 0);
	assert_int_equal(acct_publisher_start(t, path, "missing CAP_BPF", &p), 0);
	add(t, 9, HS_REVOKED, 1);
	acct_publisher_stop(p);
	assert_int_equal(acct_snapshot_read(path, &h, &recs, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(recs[0].c.outcome[ACCT_B_REVOKED], 1);
	assert_string_equal(h.reason, "missing CAP_BPF");
	free(recs);
	acct_table_free(t);

	assert_int_equal(acct_table_new(16, &t), 0);
	assert_int_equal(acct_publisher_start(t, path, "missing CAP_BPF", &p), 0);
	add(t, 9, HS_REVOKED, 2);
	assert_int_equal(acct_table_snapshot(t, out, 4, &tot), 1);
	assert_int_equal(out[0].c.outcome[ACCT_B_REVOKED], 2);
	acct_publisher_stop(p);
	acct_table_free(t);
	unlink(path);
	snprintf(path, sizeof(path), "%s/inst", dir);
	rmdir(path);
	rmdir(dir);
}

/* A snapshot directory that cannot exist: counting goes on, nothing is
 * written, nothing fails. */
static void test_acct_publisher_unwritable_path_keeps_counting(void **state)
{
	struct acct_table *t;
	struct acct_publisher *p;
	struct acct_record out[4];
	struct acct_totals tot;
	const char *path = "/proc/self/no/such/dir/stats.bin";
	(void)state;

	assert_int_equal(acct_table_new(16, &t), 0);
	assert_int_equal(acct_publisher_start(t, path, "test", &p), 0);
	add(t, 1, HS_OK, 1);
	acct_publisher_stop(p);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(acct_table_snapshot(t, out, 4, &tot), 1);
	acct_table_free(t);
}

static void test_acct_snapshot_read_sanitizes_records(void **state)
{
	struct acct_snapshot_header h, back;
	struct acct_record rec, *got;
	size_t n;
	(void)state;

	memset(&rec, 'A', sizeof(rec));    /* no NUL anywhere, serial_len 0x41 */
	snap_header(&h, 1);
	assert_int_equal(acct_snapshot_write(snap_path, &h, &rec, 1), 0);
	assert_int_equal(acct_snapshot_read(snap_path, &back, &got, &n), 0);
	assert_int_equal(got[0].key.serial_len, ACCT_SERIAL_MAX);
	assert_int_equal(strlen(got[0].meta.subject_cn), sizeof(rec.meta.subject_cn) - 1);
	assert_int_equal(strlen(got[0].meta.partner_name), sizeof(rec.meta.partner_name) - 1);
	assert_int_equal(strlen(got[0].meta.issuer), sizeof(rec.meta.issuer) - 1);
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_acct_bucket_first_twelve_are_identity),
		cmocka_unit_test(test_acct_bucket_folds_later_outcomes),
		cmocka_unit_test(test_acct_hist_slot_is_floor_log2),
		cmocka_unit_test(test_acct_hist_slot_clamps_huge_durations),
		cmocka_unit_test(test_acct_quantile_upper_bound),
		cmocka_unit_test(test_acct_quantile_empty_is_zero),
		cmocka_unit_test(test_acct_instance_valid_names),
		cmocka_unit_test(test_acct_instance_invalid_names),
		cmocka_unit_test(test_acct_key_same_serial_two_issuers_differ),
		cmocka_unit_test(test_acct_key_rejects_long_serial),
		cmocka_unit_test(test_acct_table_counts_per_key),
		cmocka_unit_test(test_acct_table_bounded_evicts_least_recent),
		cmocka_unit_test(test_acct_table_restore_continues_counts),
		cmocka_unit_test(test_acct_table_rejects_zero_capacity),
		cmocka_unit_test(test_acct_table_concurrent_adds_all_counted),
		cmocka_unit_test(test_acct_table_meta_asked_once),
		cmocka_unit_test(test_acct_publisher_persists_across_restart),
		cmocka_unit_test(test_acct_publisher_unwritable_path_keeps_counting),
		cmocka_unit_test(test_acct_prom_series_and_histogram),
		cmocka_unit_test(test_acct_prom_escapes_label_values),
		cmocka_unit_test_setup_teardown(test_acct_snapshot_roundtrip, snap_setup, snap_teardown),
		cmocka_unit_test_setup_teardown(test_acct_snapshot_read_sanitizes_records, snap_setup,
						snap_teardown),
		cmocka_unit_test_setup_teardown(test_acct_snapshot_rejects_other_layout_and_truncation,
						snap_setup, snap_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
