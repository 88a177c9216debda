/* Small helpers of vd-verify: checksum, number parsing, clock, random
 * numbers, aligned buffers. No I/O here. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "vd_verify.h"

/* FNV-1a 64: short, documented (docs/verify.md), easy to recompute. */
uint64_t vd_fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* Decimal or 0x hex; with size_suffix, K/M/G/T (powers of 1024). */
int vd_parse_u64(const char *s, uint64_t *out, bool size_suffix)
{
	char *end;
	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	unsigned shift = 0;
	if (*end && size_suffix) {
		switch (*end | 0x20) {
		case 'k':
			shift = 10;
			break;
		case 'm':
			shift = 20;
			break;
		case 'g':
			shift = 30;
			break;
		case 't':
			shift = 40;
			break;
		default:
			return -EINVAL;
		}
		end++;
		if ((*end | 0x20) == 'i')
			end++;
		if ((*end | 0x20) == 'b')
			end++;
	}
	if (*end)
		return -EINVAL;
	if (shift && v > (~0ull >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

double vd_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t vd_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t vd_rand_below(uint64_t *state, uint64_t n)
{
	return n ? vd_rand(state) % n : 0;
}

void *vd_alloc_aligned(size_t len)
{
	void *p = NULL;
	if (posix_memalign(&p, VD_PAGE, len))
		return NULL;
	return p;
}
