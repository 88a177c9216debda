/* Log-linear buckets: values below 64 ns are exact; above, the top
 * LG_HIST_SUB_BITS bits after the leading one pick the sub-bucket. */
#include "histogram.h"

#include <math.h>

#define SUB (1u << LG_HIST_SUB_BITS)

unsigned lg_hist_bucket(uint64_t ns)
{
	if (ns < 2 * SUB)
		return (unsigned)ns;
	unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
	unsigned shift = msb - LG_HIST_SUB_BITS;
	/* ns >> shift is in [SUB, 2*SUB): continues the linear range. */
	return (shift << LG_HIST_SUB_BITS) + (unsigned)(ns >> shift);
}

uint64_t lg_hist_bucket_low(unsigned b)
{
	if (b < 2 * SUB)
		return b;
	unsigned shift = (b >> LG_HIST_SUB_BITS) - 1;
	return (uint64_t)(b - (shift << LG_HIST_SUB_BITS)) << shift;
}

uint64_t lg_hist_bucket_width(unsigned b)
{
	return b < 2 * SUB ? 1 : 1ull << ((b >> LG_HIST_SUB_BITS) - 1);
}

void lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src)
{
	for (unsigned i = 0; i < LG_HIST_BUCKETS; i++)
		dst->count[i] += src->count[i];
	dst->total += src->total;
	dst->sum_ns += src->sum_ns;
	if (src->max_ns > dst->max_ns)
		dst->max_ns = src->max_ns;
}

uint64_t lg_hist_percentile(const struct lg_hist *h, double pct)
{
	if (h->total == 0)
		return 0;
	uint64_t rank = (uint64_t)ceil(pct / 100.0 * (double)h->total);
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned b = 0; b < LG_HIST_BUCKETS; b++) {
		seen += h->count[b];
		if (seen >= rank)
			return lg_hist_bucket_low(b) +
			       lg_hist_bucket_width(b) / 2;
	}
	return h->max_ns;
}
