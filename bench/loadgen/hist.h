/*
 * hist.h: a log-linear latency histogram for the load generator.
 *
 * Values are nanoseconds. Below 128 ns every value has its own bucket;
 * above, each power of two is split into 64 buckets, so any percentile is
 * within 1/64 (1.6%) of the true value, from nanoseconds to minutes, in a
 * fixed 19 KiB per thread and O(1) per sample. Threads record into their
 * own histogram and the totals are merged once at the end, so recording
 * takes no lock. (After HdrHistogram's layout, reduced to what we need.)
 */
#ifndef LG_HIST_H
#define LG_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_BUCKETS  2432 /* covers values up to 2^40 ns (18 minutes) */

struct hist {
	uint64_t count;
	uint64_t sum_ns;
	uint64_t max_ns;
	uint64_t buckets[HIST_BUCKETS];
};

void hist_record(struct hist *h, uint64_t ns);

/* Add every sample of src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/*
 * The value at quantile q (0 < q <= 1) in nanoseconds: the midpoint of the
 * bucket holding the ceil(q * count)-th smallest sample. 0 when empty.
 */
uint64_t hist_quantile(const struct hist *h, double q);

#endif
