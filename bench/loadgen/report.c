/*
 * report.c: merge per-thread counters and print the run as one JSON object.
 *
 * Every key is always present (zero when the mode does not produce it) so
 * scripts can read any run the same way. Rates divide by the measured
 * window of each thread (the longest one), and latencies are microseconds.
 * client_cpu_s lets the reader check that the client was not the limit.
 */
#include "report.h"

#include <string.h>
#include <sys/resource.h>

static void print_latency(FILE *out, const char *name, const struct hist *h)
{
	fprintf(out, "\"%s\":{\"count\":%llu,\"mean\":%.1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f}",
		name, (unsigned long long)h->count, h->count ? (double)h->sum_ns / (double)h->count / 1e3 : 0.0,
		(double)hist_quantile(h, 0.5) / 1e3, (double)hist_quantile(h, 0.9) / 1e3,
		(double)hist_quantile(h, 0.99) / 1e3, (double)hist_quantile(h, 0.999) / 1e3,
		(double)h->max_ns / 1e3);
}

void lg_report(FILE *out, const struct lg_options *o, const struct lg_thread *th, unsigned n)
{
	static struct lg_stats sum; /* two histograms: too big for the stack */
	double window = 0;
	memset(&sum, 0, sizeof(sum));
	for (unsigned i = 0; i < n; i++) {
		const struct lg_stats *s = &th[i].st;
		sum.handshakes += s->handshakes;
		sum.resumed += s->resumed;
		sum.requests += s->requests;
		sum.bytes_up += s->bytes_up;
		sum.bytes_down += s->bytes_down;
		sum.established += s->established;
		sum.backlog_max += s->backlog_max;
		for (unsigned e = 0; e < ERR_MAX; e++)
			sum.errors[e] += s->errors[e];
		hist_merge(&sum.hs_lat, &s->hs_lat);
		hist_merge(&sum.rr_lat, &s->rr_lat);
		if (th[i].t_measure && th[i].t_stop > th[i].t_measure) {
			double w = (double)(th[i].t_stop - th[i].t_measure) / 1e9;
			if (w > window)
				window = w;
		}
	}
	double per_s = window > 0 ? 1.0 / window : 0;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	uint64_t errors = 0;
	for (unsigned e = 0; e < ERR_MAX; e++)
		errors += sum.errors[e];

	fprintf(out, "{\"mode\":\"%s\",\"tls\":\"%s\",\"target\":\"%s\",\"threads\":%u,\"concurrency\":%u,",
		lg_mode_name(o->mode), o->tls_version == TLS1_2_VERSION ? "1.2" : "1.3", o->target_str,
		n, o->concurrency);
	fprintf(out, "\"duration_s\":%.3f,\"warmup_s\":%.3f,\"size\":%zu,", window, o->warmup_s, o->size);
	fprintf(out, "\"handshakes\":%llu,\"resumed\":%llu,\"handshakes_per_s\":%.1f,",
		(unsigned long long)sum.handshakes, (unsigned long long)sum.resumed,
		(double)sum.handshakes * per_s);
	print_latency(out, "handshake_latency_us", &sum.hs_lat);
	fprintf(out, ",\"requests\":%llu,\"offered_rate\":%.1f,\"achieved_rate\":%.1f,\"backlog_max\":%llu,",
		(unsigned long long)sum.requests, o->rate, (double)sum.requests * per_s,
		(unsigned long long)sum.backlog_max);
	print_latency(out, "latency_us", &sum.rr_lat);
	fprintf(out, ",\"bytes_up\":%llu,\"bytes_down\":%llu,\"mb_per_s_up\":%.2f,\"mb_per_s_down\":%.2f,",
		(unsigned long long)sum.bytes_up, (unsigned long long)sum.bytes_down,
		(double)sum.bytes_up * per_s / 1e6, (double)sum.bytes_down * per_s / 1e6);
	fprintf(out, "\"connections\":%u,\"established\":%llu,",
		o->mode == MODE_IDLE ? o->connections : 0, (unsigned long long)sum.established);
	fprintf(out, "\"errors_total\":%llu,\"errors\":{", (unsigned long long)errors);
	for (unsigned e = 0; e < ERR_MAX; e++)
		fprintf(out, "%s\"%s\":%llu", e ? "," : "", lg_err_name((enum lg_err)e),
			(unsigned long long)sum.errors[e]);
	fprintf(out, "},\"client_cpu_s\":{\"user\":%.3f,\"sys\":%.3f}}\n",
		(double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
		(double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
	fflush(out);
}
