/* Latency histogram with fixed log-linear buckets (32 per power of two,
 * about 3% resolution): recording is one increment, no allocation. */
#ifndef LOADGEN_HISTOGRAM_H
#define LOADGEN_HISTOGRAM_H

#include <stdint.h>

#define LG_HIST_SUB_BITS 5
#define LG_HIST_BUCKETS	 ((64 - LG_HIST_SUB_BITS + 1) << LG_HIST_SUB_BITS)

struct lg_hist {
	uint64_t count[LG_HIST_BUCKETS];
	uint64_t total;
	uint64_t sum_ns;
	uint64_t max_ns;
};

unsigned lg_hist_bucket(uint64_t ns);
/* Smallest value that falls into bucket b, and the bucket's width. */
uint64_t lg_hist_bucket_low(unsigned b);
uint64_t lg_hist_bucket_width(unsigned b);

static inline void lg_hist_add(struct lg_hist *h, uint64_t ns)
{
	h->count[lg_hist_bucket(ns)]++;
	h->total++;
	h->sum_ns += ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

void lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src);
/* The value under which pct percent of samples fall (bucket midpoint);
 * 0 for an empty histogram. */
uint64_t lg_hist_percentile(const struct lg_hist *h, double pct);

#endif
