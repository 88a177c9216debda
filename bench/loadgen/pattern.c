/* Seeded sector pattern and the image-file helpers built on it. One hash
 * per sector, then a cheap per-word step, so filling costs far less than
 * the I/O it rides on. */
#include "pattern.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WORDS_PER_SECTOR (LG_SECTOR / 8)
#define GOLDEN		 0x9e3779b97f4a7c15ull

/* splitmix64's finaliser: neighbouring sectors get unrelated words. */
static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t sector_key(uint64_t sector, uint64_t seed)
{
	return mix(seed ^ (sector * GOLDEN));
}

uint64_t lg_pattern_word(uint64_t off, uint64_t seed)
{
	unsigned i = (unsigned)(off % LG_SECTOR) / 8;
	return sector_key(off / LG_SECTOR, seed) ^ (i * GOLDEN);
}

void lg_pattern_fill(void *buf, uint64_t off, size_t len, uint64_t seed)
{
	uint64_t *w = buf;
	uint64_t sector = off / LG_SECTOR;
	for (size_t s = 0; s < len / LG_SECTOR; s++, sector++) {
		uint64_t k = sector_key(sector, seed);
		for (unsigned i = 0; i < WORDS_PER_SECTOR; i++)
			*w++ = k ^ (i * GOLDEN);
	}
}

int lg_pattern_check(const void *buf, uint64_t off, size_t len, uint64_t seed,
		     uint64_t *bad_off)
{
	const uint64_t *w = buf;
	uint64_t sector = off / LG_SECTOR;
	for (size_t s = 0; s < len / LG_SECTOR; s++, sector++) {
		uint64_t k = sector_key(sector, seed);
		for (unsigned i = 0; i < WORDS_PER_SECTOR; i++, w++) {
			if (*w != (k ^ (i * GOLDEN))) {
				*bad_off = sector * LG_SECTOR + i * 8;
				return -1;
			}
		}
	}
	return 0;
}

#define IMG_CHUNK (1u << 20)

int lg_pattern_make_image(const char *path, uint64_t size, uint64_t seed)
{
	if (size == 0 || size % LG_SECTOR) {
		fprintf(stderr, "vd-loadgen: image size must be a non-zero "
				"multiple of 512\n");
		return -EINVAL;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "vd-loadgen: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	char *buf = malloc(IMG_CHUNK);
	int rc = buf ? 0 : -ENOMEM;
	for (uint64_t off = 0; rc == 0 && off < size; off += IMG_CHUNK) {
		size_t n = size - off < IMG_CHUNK ? size - off : IMG_CHUNK;
		lg_pattern_fill(buf, off, n, seed);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			rc = errno ? -errno : -EIO;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (rc < 0)
		fprintf(stderr, "vd-loadgen: writing %s: %s\n", path,
			strerror(-rc));
	free(buf);
	close(fd);
	return rc;
}

int lg_pattern_check_image(const char *path, uint64_t seed)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "vd-loadgen: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	struct stat st;
	char *buf = malloc(IMG_CHUNK);
	int rc = buf ? 0 : -ENOMEM;
	if (rc == 0 && fstat(fd, &st) < 0)
		rc = -errno;
	uint64_t size =
		rc == 0 ? (uint64_t)st.st_size / LG_SECTOR * LG_SECTOR : 0;
	for (uint64_t off = 0; rc == 0 && off < size; off += IMG_CHUNK) {
		size_t n = size - off < IMG_CHUNK ? size - off : IMG_CHUNK;
		uint64_t bad;
		if (pread(fd, buf, n, (off_t)off) != (ssize_t)n) {
			rc = errno ? -errno : -EIO;
			fprintf(stderr, "vd-loadgen: reading %s: %s\n", path,
				strerror(-rc));
		} else if (lg_pattern_check(buf, off, n, seed, &bad) < 0) {
			uint64_t got;
			memcpy(&got, buf + (bad - off), 8);
			fprintf(stderr,
				"vd-loadgen: %s: pattern mismatch at byte "
				"%" PRIu64 ": got %016" PRIx64
				", expected %016" PRIx64 "\n",
				path, bad, got, lg_pattern_word(bad, seed));
			rc = -EILSEQ;
		}
	}
	free(buf);
	close(fd);
	return rc;
}
