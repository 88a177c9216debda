/* The data vd-verify writes: every 512-byte sector is a function of (seed,
 * byte offset, generation) alone, so a run's record is a map of
 * generations, never the data. Each sector starts with a readable header
 * (magic, seed, offset, generation) so that a wrong sector can be named:
 * zeroes, an older write, a write meant for another offset, another run. */
#include <endian.h>
#include <stdio.h>
#include <string.h>

#include "vd_verify.h"

#define MAGIC	  0x5946495245564456ull /* "VDVERIFY" in little-endian bytes */
#define WORDS	  (VD_SECTOR / 8)
#define HDR_WORDS 4

static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void sector_fill(uint64_t *w, uint64_t off, uint64_t seed, uint32_t gen)
{
	if (gen == VD_GEN_ZERO) {
		memset(w, 0, VD_SECTOR);
		return;
	}
	w[0] = htole64(MAGIC);
	w[1] = htole64(seed);
	w[2] = htole64(off);
	w[3] = htole64(gen);
	/* xorshift64 from a key of all three: cheap enough for a slow
	 * nested guest, and no two (seed, off, gen) share a sector. */
	uint64_t x = mix(seed ^ mix(off ^ ((uint64_t)gen << 40) ^ gen));
	if (!x)
		x = 0x9e3779b97f4a7c15ull;
	for (unsigned i = HDR_WORDS; i < WORDS; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = htole64(x);
	}
}

void vd_pattern_fill(void *buf, uint64_t off, size_t len, uint64_t seed,
		     uint32_t gen)
{
	unsigned char *p = buf;
	for (size_t i = 0; i < len; i += VD_SECTOR)
		sector_fill((uint64_t *)(void *)(p + i), off + i, seed, gen);
}

int vd_sector_check(const void *sec, uint64_t off, uint64_t seed, uint32_t gen,
		    unsigned *diff)
{
	uint64_t want[WORDS];
	sector_fill(want, off, seed, gen);
	if (!memcmp(want, sec, VD_SECTOR))
		return 0;
	const unsigned char *a = (const void *)want, *b = sec;
	unsigned i = 0;
	while (i < VD_SECTOR && a[i] == b[i])
		i++;
	*diff = i;
	return -1;
}

const char *vd_gen_str(uint32_t gen, char *buf, size_t n)
{
	switch (gen) {
	case VD_GEN_UNKNOWN:
		return "unknown (not checked)";
	case VD_GEN_ZERO:
		return "zeroes";
	case VD_GEN_DISCARD:
		return "discarded (not checked)";
	}
	snprintf(buf, n, "generation %u", gen);
	return buf;
}

static bool all_zero(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

void vd_sector_describe(const void *sec, uint64_t off, uint64_t seed,
			uint32_t gen, char *out, size_t n)
{
	const unsigned char *b = sec;
	uint64_t w[HDR_WORDS];
	unsigned diff = 0;
	uint64_t want[WORDS];

	if (all_zero(b, VD_SECTOR)) {
		snprintf(out, n, "zeroes");
		return;
	}
	memcpy(w, sec, sizeof(w));
	uint64_t fseed = le64toh(w[1]), foff = le64toh(w[2]),
		 fgen64 = le64toh(w[3]);
	if (le64toh(w[0]) == MAGIC && fgen64 && fgen64 <= VD_GEN_MAX &&
	    !vd_sector_check(sec, foff, fseed, (uint32_t)fgen64, &diff)) {
		uint32_t fgen = (uint32_t)fgen64;
		if (fseed != seed)
			snprintf(out, n,
				 "data of another run (seed 0x%016llx, "
				 "offset %llu, generation %u)",
				 (unsigned long long)fseed,
				 (unsigned long long)foff, fgen);
		else if (foff != off)
			snprintf(out, n,
				 "data written for offset %llu (generation "
				 "%u): misdirected",
				 (unsigned long long)foff, fgen);
		else if (gen == VD_GEN_ZERO)
			snprintf(out, n,
				 "generation %u where zeroes were expected "
				 "(write-zeroes or discard lost?)",
				 fgen);
		else if (fgen < gen)
			snprintf(out, n,
				 "older generation %u: a lost or stale write",
				 fgen);
		else
			snprintf(out, n,
				 "newer generation %u: a write the record does "
				 "not know",
				 fgen);
		return;
	}
	sector_fill(want, off, seed, gen);
	const unsigned char *a = (const void *)want;
	diff = 0;
	while (diff < VD_SECTOR && a[diff] == b[diff])
		diff++;
	if (diff >= VD_SECTOR) { /* cannot happen for a wrong sector */
		snprintf(out, n, "the expected bytes");
		return;
	}
	if (le64toh(w[0]) == MAGIC)
		snprintf(out, n,
			 "a damaged sector (header: offset %llu generation "
			 "%llu); first wrong byte +%u: 0x%02x, expected 0x%02x",
			 (unsigned long long)foff, (unsigned long long)fgen64,
			 diff, b[diff], a[diff]);
	else
		snprintf(out, n,
			 "other bytes; first wrong byte +%u: 0x%02x, expected "
			 "0x%02x",
			 diff, b[diff], a[diff]);
}
