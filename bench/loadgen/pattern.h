/* The seeded disk pattern: every 512-byte sector's content is a function of
 * (seed, sector number) alone, so any read can be checked without tracking
 * what was written, and writes that carry it keep the image checkable. */
#ifndef LOADGEN_PATTERN_H
#define LOADGEN_PATTERN_H

#include <stddef.h>
#include <stdint.h>

#define LG_SECTOR 512u

/* off and len are multiples of LG_SECTOR (disk byte offset, buffer size). */
void lg_pattern_fill(void *buf, uint64_t off, size_t len, uint64_t seed);
/* 0 if buf holds the pattern; else -1 with the disk byte offset of the
 * first wrong 8-byte word in *bad_off. */
int lg_pattern_check(const void *buf, uint64_t off, size_t len, uint64_t seed,
		     uint64_t *bad_off);
/* The word expected at disk byte offset off (8-aligned), for messages. */
uint64_t lg_pattern_word(uint64_t off, uint64_t seed);

/* Write / check the pattern directly in an image file of `size` bytes
 * (no backend involved). Return 0, -errno, or -EILSEQ on a mismatch
 * (reported on stderr). */
int lg_pattern_make_image(const char *path, uint64_t size, uint64_t seed);
int lg_pattern_check_image(const char *path, uint64_t seed);

#endif
