/*
 * hist.c: bucket arithmetic of the latency histogram (see hist.h).
 */
#include "hist.h"

#define SUB_COUNT (1u << HIST_SUB_BITS)     /* values below this: exact */
#define SUB_HALF  (1u << (HIST_SUB_BITS - 1)) /* buckets per power of two */

static unsigned bucket_of(uint64_t v)
{
	if (v < SUB_COUNT)
		return (unsigned)v;
	/* shift > 0 keeps v >> shift in [SUB_HALF, SUB_COUNT). */
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - HIST_SUB_BITS + 1;
	unsigned idx = shift * SUB_HALF + (unsigned)(v >> shift);
	return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* Lowest value of bucket idx, and its width. */
static uint64_t bucket_low(unsigned idx, uint64_t *width)
{
	if (idx < SUB_COUNT) {
		*width = 1;
		return idx;
	}
	unsigned shift = idx / SUB_HALF - 1;
	uint64_t mant = idx % SUB_HALF + SUB_HALF;
	*width = 1ull << shift;
	return mant << shift;
}

void hist_record(struct hist *h, uint64_t ns)
{
	h->buckets[bucket_of(ns)]++;
	h->count++;
	h->sum_ns += ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum_ns += src->sum_ns;
	if (src->max_ns > dst->max_ns)
		dst->max_ns = src->max_ns;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	if (h->count == 0)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)h->count);
	if ((double)rank < q * (double)h->count)
		rank++; /* ceil without libm */
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			uint64_t width, low = bucket_low(i, &width);
			uint64_t mid = low + width / 2;
			return mid < h->max_ns ? mid : h->max_ns;
		}
	}
	return h->max_ns;
}
