/* vd-verify: shared declarations of the guest-side block verifier and its
 * host-side checker (see docs/verify.md). Private to tests/verify/; nothing
 * here knows virtiod's internals: the program talks to a Linux block device
 * or a file, the way any guest application does. */
#ifndef VD_VERIFY_H
#define VD_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VD_SECTOR  512u	      /* unit of the data pattern */
#define VD_MAX_IO  (1u << 20) /* largest request */
#define VD_PAGE	   4096u
#define VD_MAX_QD  64u
#define VD_MAX_IOV 4u

/* Generation map values (one per granule of the test area). A data
 * generation is 1..VD_GEN_MAX; the others say what the bytes must be. */
#define VD_GEN_UNKNOWN 0u /* never written in this run: not checked */
#define VD_GEN_MAX     0xfffffff0u
#define VD_GEN_ZERO    0xfffffffeu /* must read as zeroes */
#define VD_GEN_DISCARD 0xffffffffu /* discarded: undefined, not checked */

static inline bool vd_gen_checked(uint32_t g)
{
	return g != VD_GEN_UNKNOWN && g != VD_GEN_DISCARD;
}

/* ---------------------------------------------------------- pattern.c */
/* Fill [off, off+len) (both multiples of VD_SECTOR) with generation gen
 * (a data generation or VD_GEN_ZERO). */
void vd_pattern_fill(void *buf, uint64_t off, size_t len, uint64_t seed,
		     uint32_t gen);
/* 0 if the VD_SECTOR bytes at sec are what generation gen holds at off;
 * else -1 and *diff = index of the first differing byte. */
int vd_sector_check(const void *sec, uint64_t off, uint64_t seed, uint32_t gen,
		    unsigned *diff);
/* One line saying what a wrong sector holds instead (zeroes, an older or
 * newer generation, data meant for another offset or run, other bytes). */
void vd_sector_describe(const void *sec, uint64_t off, uint64_t seed,
			uint32_t gen, char *out, size_t n);
const char *vd_gen_str(uint32_t gen, char *buf, size_t n);

/* ---------------------------------------------------------- util.c */
#define VD_FNV_INIT 0xcbf29ce484222325ull
uint64_t vd_fnv1a(uint64_t h, const void *p, size_t n);
int vd_parse_u64(const char *s, uint64_t *out, bool size_suffix);
double vd_now(void);
uint64_t vd_rand(uint64_t *state); /* splitmix64 */
uint64_t vd_rand_below(uint64_t *state, uint64_t n);
void *vd_alloc_aligned(size_t len);

/* ---------------------------------------------------------- target.c */
struct vd_target {
	const char *path;
	int fd;
	bool is_bdev;
	uint64_t size;
	uint32_t lbs; /* logical block size: O_DIRECT offset/length unit */
	uint32_t pbs;
	uint64_t discard_max, discard_gran, wzero_max;
	unsigned max_sectors_kb;
	char cache[16]; /* write_cache: "write back" / "write through" */
	char name[32];	/* kernel name (vda) or "file" */
	char direct_proof[96];
};
/* Opens path read-write with O_DIRECT (never falls back to buffered I/O)
 * and learns its size and limits. -errno and a message on failure. */
int vd_target_open(struct vd_target *t, const char *path, char *err, size_t n);
/* Proves direct I/O is in effect, writing zeroes to the 8 KiB at off. */
#define VD_PROBE_LEN (2 * VD_PAGE)
int vd_target_prove_direct(struct vd_target *t, uint64_t off, char *err,
			   size_t n);
int vd_target_discard(struct vd_target *t, uint64_t off, uint64_t len);
int vd_target_zero(struct vd_target *t, uint64_t off, uint64_t len);
/* Does a discard leave zeroes? Files: punching a hole does. */
bool vd_target_discard_zeroes(const struct vd_target *t);
void vd_target_close(struct vd_target *t);

/* ---------------------------------------------------------- record.c */
#define VD_REC_MAGIC   "VDVREC01"
#define VD_REC_VERSION 1u
#define VD_REC_ANCHOR  4096u /* the header block at the end of the device */

struct vd_record_hdr { /* on disk: little-endian, VD_REC_ANCHOR bytes */
	char magic[8];
	uint32_t version;
	uint32_t hdr_size;
	uint64_t seed;
	uint64_t dev_size;
	uint64_t area_off;
	uint64_t area_len;
	uint32_t gran;
	uint32_t flags;	  /* VD_REC_F_* */
	uint64_t ext_off; /* byte offset of the extent table on the device */
	uint64_t n_ext;
	uint64_t ops, bytes_w, bytes_r, flushes, discards, zeroes;
	uint64_t
		sum; /* FNV-1a 64 of this header (sum = 0) + the extent table */
};
#define VD_REC_F_FAILED 1u /* the run failed; the record is what it knew */

struct vd_extent {	/* on disk: little-endian */
	uint32_t start; /* granule index in the area; ends at the next start */
	uint32_t gen;
};

/* Anchor offset for a device (or image) of this size. */
uint64_t vd_record_anchor(uint64_t dev_size);
/* Bytes the record may need at the end of a device for an area of this
 * many granules (worst case: every granule its own extent). */
uint64_t vd_record_reserve(uint64_t granules);
/* Map -> extent table (caller frees *ext). */
int vd_record_extents(const uint32_t *map, uint64_t granules,
		      struct vd_extent **ext, uint64_t *n_ext);
/* Converts hdr and ext to little-endian in place and computes hdr->sum. */
uint64_t vd_record_seal(struct vd_record_hdr *hdr, struct vd_extent *ext,
			uint64_t n_ext);
/* Reads and validates the record of an image; fills hdr (host order) and
 * *ext (host order, caller frees). Message in err on failure. */
int vd_record_load(int fd, uint64_t img_size, uint64_t anchor,
		   struct vd_record_hdr *hdr, struct vd_extent **ext, char *err,
		   size_t n);

/* ---------------------------------------------------------- aio.c */
/* Linux native AIO through raw system calls (no libaio). */
struct iocb;
struct io_event;
int vd_aio_setup(unsigned nr, unsigned long *ctx);
int vd_aio_destroy(unsigned long ctx);
int vd_aio_submit(unsigned long ctx, long n, struct iocb **cbs);
int vd_aio_getevents(unsigned long ctx, long min, long max, struct io_event *ev,
		     double timeout_s);

/* ---------------------------------------------------------- modes */
enum vd_inject { VD_INJ_NONE, VD_INJ_DROP_WRITE, VD_INJ_SHORT, VD_INJ_CORRUPT };

struct vd_run_opts {
	const char *dev;
	uint64_t area_off, area_len; /* area_len 0: default */
	uint64_t bytes;
	double seconds;
	unsigned qd[8], nqd;
	unsigned mix[5]; /* read, write, flush, discard, zero weights */
	bool mix_set;
	uint64_t seed;
	bool seed_set;
	bool discard_zeroes;
	double progress, timeout;
	enum vd_inject inject;
	uint64_t inject_n;
};
int vd_run(const struct vd_run_opts *o);

struct vd_check_opts {
	const char *image;
	const char *console;
	uint64_t expect_sum;
	bool have_sum;
	uint64_t record_at; /* 0: at the anchor of the image's size */
	unsigned max_report;
};
int vd_check(const struct vd_check_opts *o);
int vd_dump(const char *image, uint64_t record_at, bool extents);

struct vd_bench_opts {
	const char *dev;
	uint64_t area_off, area_len;
	double seconds;
	const char *workloads;
};
int vd_bench(const struct vd_bench_opts *o);

#endif
