/*
 * stats_render.c: filter, sort and print accounting records (see
 * stats_render.h).
 */
#include "stats_render.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cert_serial.h"
#include "certinfo.h"
#include "outcome.h"
#include "safetext.h"
#include "string_table.h"

static const char *const sort_names[STATS_SORT_MAX] = {
	[STATS_SORT_FAILURES] = "failures",
	[STATS_SORT_TOTAL] = "total",
	[STATS_SORT_LAST_SEEN] = "last-seen",
};

DEFINE_STRING_TABLE(stats_sort, enum stats_sort, sort_names, "?")

int stats_sort_parse(const char *s, enum stats_sort *out)
{
	int k = stats_sort_from_name(s);

	ENSURE(k >= 0, EINVAL);
	*out = (enum stats_sort)k;
	return 0;
}

int stats_serial_normalize(const char *in, char *out, size_t len)
{
	size_t n = 0;
	bool leading = true;

	for (const char *p = in; *p; p++) {
		if (*p == ':')
			continue;
		ENSURE(isxdigit((unsigned char)*p), EINVAL);
		if (leading && *p == '0')
			continue;
		leading = false;
		ENSURE(n + 1 < len, ENAMETOOLONG);
		out[n++] = (char)toupper((unsigned char)*p);
	}
	ENSURE(n + 1 < len, ENAMETOOLONG);
	if (n == 0)
		out[n++] = '0';
	out[n] = '\0';
	return 0;
}

static bool record_matches(const struct acct_record *r, const struct stats_filter *f)
{
	if (f->partner) {
		char name[ACCT_PARTNER_NAME_LEN + 16], idx[16] = "";
		acct_record_partner(r, name, sizeof(name));
		if (r->c.last_partner != ACCT_NO_PARTNER)
			snprintf(idx, sizeof(idx), "%u", r->c.last_partner);
		if (strcmp(f->partner, name) != 0 && strcmp(f->partner, idx) != 0)
			return false;
	}
	if (f->serial) {
		/* As DER integers (lib/cert_serial.h): the key holds the
		 * serial's DER content, sign included. */
		struct cert_serial want;
		if (acct_key_is_no_cert(&r->key) || cert_serial_parse(f->serial, &want) < 0 ||
		    want.len != r->key.serial_len || memcmp(want.b, r->key.serial, want.len) != 0)
			return false;
	}
	return true;
}

static enum stats_sort sort_order;

static int cmp_u64_desc(uint64_t a, uint64_t b)
{
	return a < b ? 1 : a > b ? -1 : 0;
}

static int record_cmp(const void *pa, const void *pb)
{
	const struct acct_record *a = pa, *b = pb;
	int c = 0;

	switch (sort_order) {
	case STATS_SORT_TOTAL:
		c = cmp_u64_desc(acct_total(&a->c), acct_total(&b->c));
		break;
	case STATS_SORT_LAST_SEEN:
		c = cmp_u64_desc(a->c.last_seen_ns, b->c.last_seen_ns);
		break;
	case STATS_SORT_FAILURES:
	default:
		c = cmp_u64_desc(acct_failures(&a->c), acct_failures(&b->c));
		break;
	}
	if (c == 0)
		c = cmp_u64_desc(acct_total(&a->c), acct_total(&b->c));
	/* Ties end in key order, so the output is stable across runs. */
	return c ? c : memcmp(&a->key, &b->key, sizeof(a->key));
}

void stats_select(struct stats_view *v, const struct stats_filter *f, enum stats_sort sort)
{
	size_t kept = 0;

	for (size_t i = 0; i < v->n; i++)
		if (record_matches(&v->recs[i], f))
			v->recs[kept++] = v->recs[i];
	v->n = kept;
	sort_order = sort;
	if (v->n > 1)
		qsort(v->recs, v->n, sizeof(*v->recs), record_cmp);
}

static void format_duration(uint64_t ns, char *buf, size_t len)
{
	if (ns == 0)
		snprintf(buf, len, "-");
	else if (ns < 1000)
		snprintf(buf, len, "%uns", (unsigned)ns);
	else if (ns < 1000000)
		snprintf(buf, len, "%.0fus", (double)ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, len, "%.1fms", (double)ns / 1e6);
	else
		snprintf(buf, len, "%.1fs", (double)ns / 1e9);
}

static void format_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == 0 || !gmtime_r(&t, &tm))
		snprintf(buf, len, "-");
	else
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static uint64_t evicted(const struct stats_view *v)
{
	return v->totals.new_keys > v->n_present ? v->totals.new_keys - v->n_present : 0;
}

static void print_source_line(FILE *out, const struct stats_view *v)
{
	if (v->kind == STATS_SRC_BPF) {
		fprintf(out, "source: BPF pinned maps %s\n", v->where);
		return;
	}
	fprintf(out, "source: in-process fallback (BPF unavailable: %s)\n", v->reason);
	fprintf(out, "        snapshot %s, written by mtlsd pid %d (%s)\n", v->where,
		(int)v->writer_pid, v->writer_alive ? "running" : "not running");
}

static void failure_breakdown(const struct acct_counters *c, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned b = ACCT_B_OK + 1; b < ACCT_BUCKETS && off < len; b++) {
		if (c->outcome[b] == 0)
			continue;
		int n = snprintf(buf + off, len - off, "%s%s=%" PRIu64, off ? " " : "",
				 hs_outcome_name((enum hs_outcome)b), (uint64_t)c->outcome[b]);
		if (n < 0)
			break;
		off += (size_t)n;
	}
}

enum table_col {
	COL_PARTNER, COL_CN, COL_SERIAL, COL_ISSUER, COL_OK, COL_FAILED, COL_RATE, COL_P50,
	COL_P99, COL_SEEN, COL_FAILURES, TABLE_COLS
};

/* Widths follow the data up to max (longer cells are cut); the last
 * column is never padded. */
static const struct {
	const char *title;
	bool right;
	int max;
} table_cols[TABLE_COLS] = {
	[COL_PARTNER] = { "PARTNER", false, 24 },   [COL_CN] = { "SUBJECT CN", false, 32 },
	[COL_SERIAL] = { "SERIAL", false, 59 },     [COL_ISSUER] = { "ISSUER", false, 40 },
	[COL_OK] = { "OK", true, 20 },              [COL_FAILED] = { "FAILED", true, 20 },
	[COL_RATE] = { "RATE", true, 7 },           [COL_P50] = { "P50", true, 8 },
	[COL_P99] = { "P99", true, 8 },             [COL_SEEN] = { "LAST SEEN", false, 20 },
	[COL_FAILURES] = { "FAILURES", false, 0 },
};

#define CELL_LEN 400

/*
 * Names come from client certificates, which anyone can make: C0 and C1
 * controls (terminal escape sequences) and bytes that are not UTF-8 are
 * shown as \XX (safetext.h), never sent to the operator's terminal.
 */
static void cell_text(char *cell, const char *s)
{
	(void)term_escape(cell, CELL_LEN, s, strlen(s));
}

static void table_row(const struct acct_record *r, char cells[TABLE_COLS][CELL_LEN])
{
	char buf[CELL_LEN];
	uint64_t total = acct_total(&r->c);

	acct_record_partner(r, buf, sizeof(buf));
	cell_text(cells[COL_PARTNER], buf);
	cell_text(cells[COL_CN], acct_key_is_no_cert(&r->key) ? "(not attributed)" :
		  r->has_meta && r->meta.subject_cn[0] ? r->meta.subject_cn : "?");
	acct_key_serial_hex(&r->key, cells[COL_SERIAL], CELL_LEN);
	cell_text(cells[COL_ISSUER], r->has_meta && r->meta.issuer[0] ? r->meta.issuer : "-");
	snprintf(cells[COL_OK], CELL_LEN, "%" PRIu64, (uint64_t)r->c.outcome[ACCT_B_OK]);
	snprintf(cells[COL_FAILED], CELL_LEN, "%" PRIu64, acct_failures(&r->c));
	snprintf(cells[COL_RATE], CELL_LEN, "%.1f%%",
		 total ? 100.0 * (double)r->c.outcome[ACCT_B_OK] / (double)total : 0.0);
	format_duration(acct_hist_quantile_ns(r->c.hist, 0.50), cells[COL_P50], CELL_LEN);
	format_duration(acct_hist_quantile_ns(r->c.hist, 0.99), cells[COL_P99], CELL_LEN);
	format_time(acct_boot_to_realtime(r->c.last_seen_ns), cells[COL_SEEN], CELL_LEN);
	failure_breakdown(&r->c, cells[COL_FAILURES], CELL_LEN);
}

/* Widths and cuts are in characters, not bytes: "Zürich" is six columns,
 * and a cell is never cut inside a character. */
static void table_print_row(FILE *out, const int width[TABLE_COLS], char cells[TABLE_COLS][CELL_LEN])
{
	for (int c = 0; c < TABLE_COLS; c++) {
		if (c == TABLE_COLS - 1) {
			fprintf(out, "%s\n", cells[c]);
			continue;
		}
		size_t len = utf8_prefix_columns(cells[c], (size_t)width[c]);
		int pad = width[c] - (int)utf8_columns(cells[c]);

		if (pad < 0)
			pad = 0;
		if (table_cols[c].right)
			fprintf(out, "%*s", pad, "");
		fwrite(cells[c], 1, len, out);
		fprintf(out, "%*s ", table_cols[c].right ? 0 : pad, "");
	}
}

void stats_print_table(FILE *out, const struct stats_view *v)
{
	static char cells[TABLE_COLS][CELL_LEN];
	int width[TABLE_COLS];

	print_source_line(out, v);
	fprintf(out, "instance %s: %zu of %zu certificates shown (capacity %" PRIu64 ", evicted %"
		PRIu64 "), %" PRIu64 " handshakes counted, %" PRIu64 " not counted\n\n", v->instance,
		v->n, v->n_present, v->capacity, evicted(v), (uint64_t)v->totals.events,
		(uint64_t)v->totals.failures);
	/* Two passes over the rows: widths first, then the text, so memory
	 * does not grow with the number of certificates. */
	for (int c = 0; c < TABLE_COLS; c++)
		width[c] = (int)strlen(table_cols[c].title);
	for (size_t i = 0; i < v->n; i++) {
		table_row(&v->recs[i], cells);
		for (int c = 0; c < TABLE_COLS; c++) {
			int len = (int)utf8_columns(cells[c]);
			if (len > width[c])
				width[c] = table_cols[c].max && len > table_cols[c].max ? table_cols[c].max : len;
		}
	}
	for (int c = 0; c < TABLE_COLS; c++)
		cell_text(cells[c], table_cols[c].title);
	table_print_row(out, width, cells);
	for (size_t i = 0; i < v->n; i++) {
		table_row(&v->recs[i], cells);
		table_print_row(out, width, cells);
	}
}

/* A JSON string by the one JSON escaper (safetext.h): valid UTF-8 as is,
 * every byte that is not UTF-8 and every control as \u00XX. The strings
 * here are bounded fields of a record or a path (JSON_FIELD_MAX). */
#define JSON_FIELD_MAX 1024

static void json_string(FILE *out, const char *s)
{
	char buf[JSON_FIELD_MAX * 6 + 3];
	size_t off = 0;

	if (json_put_string(buf, sizeof(buf), &off, s, strnlen(s, JSON_FIELD_MAX)) < 0)
		snprintf(buf, sizeof(buf), "\"\"");
	fputs(buf, out);
}

static void json_record(FILE *out, const struct acct_record *r)
{
	char serial[ACCT_SERIAL_MAX * 3 + 1], partner[64], issuer_id[ACCT_ISSUER_ID_LEN * 2 + 1];
	uint64_t total = acct_total(&r->c);

	acct_record_partner(r, partner, sizeof(partner));
	acct_key_serial_hex(&r->key, serial, sizeof(serial));
	for (size_t i = 0; i < ACCT_ISSUER_ID_LEN; i++)
		snprintf(issuer_id + 2 * i, 3, "%02x", r->key.issuer_id[i]);
	fprintf(out, "{\"no_certificate\":%s,\"serial\":", acct_key_is_no_cert(&r->key) ? "true" : "false");
	json_string(out, acct_key_is_no_cert(&r->key) ? "" : serial);
	fprintf(out, ",\"issuer_id\":\"%s\",\"partner\":", acct_key_is_no_cert(&r->key) ? "" : issuer_id);
	json_string(out, partner);
	fprintf(out, ",\"partner_index\":%d,\"subject_cn\":",
		r->c.last_partner == ACCT_NO_PARTNER ? -1 : (int)r->c.last_partner);
	json_string(out, r->has_meta ? r->meta.subject_cn : "");
	fprintf(out, ",\"issuer\":");
	json_string(out, r->has_meta ? r->meta.issuer : "");
	fprintf(out, ",\"not_after\":%lld,\"counts\":{", r->has_meta ? (long long)r->meta.not_after : 0LL);
	for (unsigned b = 0; b < ACCT_BUCKETS; b++)
		fprintf(out, "%s\"%s\":%" PRIu64, b ? "," : "", hs_outcome_name((enum hs_outcome)b),
			(uint64_t)r->c.outcome[b]);
	fprintf(out, "},\"total\":%" PRIu64 ",\"failures\":%" PRIu64 ",\"success_rate\":%.4f,"
		"\"p50_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64 ",\"last_seen\":%lld,"
		"\"duration_sum_ns\":%" PRIu64 ",\"tls_version\":%u,\"cipher\":%u,\"latency_log2_ns\":[",
		total, acct_failures(&r->c), total ? (double)r->c.outcome[ACCT_B_OK] / (double)total : 0.0,
		acct_hist_quantile_ns(r->c.hist, 0.50), acct_hist_quantile_ns(r->c.hist, 0.99),
		(long long)acct_boot_to_realtime(r->c.last_seen_ns), (uint64_t)r->c.duration_sum_ns,
		r->c.last_tls_version,
		r->c.last_cipher);
	for (unsigned s = 0; s < ACCT_HIST_SLOTS; s++)
		fprintf(out, "%s%" PRIu64, s ? "," : "", (uint64_t)r->c.hist[s]);
	fprintf(out, "]}");
}

void stats_print_json(FILE *out, const struct stats_view *v)
{
	fprintf(out, "{\"instance\":");
	json_string(out, v->instance);
	fprintf(out, ",\"source\":\"%s\",\"where\":", stats_source_name(v->kind));
	json_string(out, v->where);
	if (v->kind == STATS_SRC_FALLBACK) {
		fprintf(out, ",\"fallback_reason\":");
		json_string(out, v->reason);
		fprintf(out, ",\"writer_pid\":%d,\"writer_running\":%s", (int)v->writer_pid,
			v->writer_alive ? "true" : "false");
	}
	fprintf(out, ",\"capacity\":%" PRIu64 ",\"certificates_present\":%zu,\"new_keys\":%" PRIu64
		",\"evicted\":%" PRIu64 ",\"events\":%" PRIu64 ",\"not_counted\":%" PRIu64
		",\"certificates\":[", v->capacity, v->n_present, (uint64_t)v->totals.new_keys,
		evicted(v), (uint64_t)v->totals.events, (uint64_t)v->totals.failures);
	for (size_t i = 0; i < v->n; i++) {
		if (i)
			fputc(',', out);
		json_record(out, &v->recs[i]);
	}
	fprintf(out, "]}\n");
}
