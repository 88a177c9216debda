/* Helpers shared by the Xen stand-in tests (tests/xen/lib): disk images
 * and their expected content, a blk model from the registry, vd_xen_serve
 * on a thread, and Linux-like guest memory layouts. Test-only. */
#ifndef VIRTIOD_TESTS_XEN_XTEST_H
#define VIRTIOD_TESTS_XEN_XTEST_H

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "standin.h"
#include "virtiod/device.h"
#include "virtiod/log.h"
#include "xen.h"

#define XT_BASE	    0xfe000000ULL
#define XT_IRQ_X86  7
#define XT_IRQ_ARM  33
#define XT_IMG_SIZE (4u << 20)
#define XT_MIB	    (1ULL << 20)

/* ---- lib/xtest.c: images, models, the server thread */

struct xt_server {
	pthread_t thread;
	struct vd_xen_config cfg;
	struct vd_model *model;
	volatile int stop;
	int rc;
	int done;
	bool started, joined;
	char who[32];
};

/* Byte i of sector `seed`'s known content. */
uint8_t xt_pattern(uint32_t seed, size_t i);
/* A temp image of XT_IMG_SIZE filled with xt_pattern(sector) per 512-byte
 * sector; the fd, or -errno. path gets its name. */
int xt_image(char *path, size_t len);
/* A blk model for disk; NULL on error (printed). */
struct vd_model *xt_blk_model(const char *disk, bool readonly);
/* The same with device options, NULL-terminated "name=value" or "flag". */
struct vd_model *xt_blk_model_opts(const char *disk, const char *const *opts);
/* Starts serving; waits until the window is claimed (or serve failed). */
int xt_serve_start(struct xt_server *s, uint32_t domid, unsigned irq,
		   enum vd_xen_mem_mode mode, unsigned cache_mib,
		   const char *state_dir, struct vd_model *model);
/* The same with a whole configuration (cfg->who is replaced). */
int xt_serve_start_cfg(struct xt_server *s, const struct vd_xen_config *cfg,
		       struct vd_model *model);
/* Stops (how: VD_STOP / VD_HANDOVER, or 0 to just join). */
int xt_serve_stop(struct xt_server *s, int how);
/* A case's end, passed or failed: stop serving, free the guest's driver
 * and the domain, remove the state directory; everything reset. */
void xt_case_end(struct xt_server *s, struct sx_vdev **dev, uint32_t domid,
		 char **state_dir);
/* A fresh temp directory (malloc'ed path) or NULL. */
char *xt_tmpdir(void);

/* ---- lib/disk.c: an image and what its bytes must be */

struct xt_disk {
	char path[64];
	int fd;
	size_t size;
	uint8_t *want;	    /* expected bytes */
	uint8_t *got;	    /* the image as last read back */
	uint8_t *discarded; /* per sector: old content or zeros both fine */
	uint8_t *dirty;	    /* per sector: changed since the last reset */
};

/* An image of `size` bytes (a multiple of 512) holding xt_pattern, in
 * /dev/shm (so a matrix of cases can afford one). */
int xt_disk_new(struct xt_disk *d, size_t size);
/* A test program's start (quiet log, the stand-in for x86, one image)
 * and end. */
int xt_begin(struct xt_disk *d, size_t size);
int xt_end(struct xt_disk *d);
/* Back to xt_pattern (only what changed is rewritten). */
int xt_disk_reset(struct xt_disk *d);
void xt_disk_free(struct xt_disk *d);
/* The guest wrote / zeroed / discarded this range. */
void xt_disk_wrote(struct xt_disk *d, uint64_t sector, const void *buf,
		   size_t len);
void xt_disk_zeroed(struct xt_disk *d, uint64_t sector, uint32_t nsec);
void xt_disk_discarded(struct xt_disk *d, uint64_t sector, uint32_t nsec);
/* What a read of this range must return (discarded sectors: what the
 * image holds, checked against old-or-zero). */
bool xt_disk_read_ok(const struct xt_disk *d, uint64_t sector,
		     const uint8_t *got, size_t len);
/* Reads the image file back and compares every byte; 0, or -1 with the
 * first difference described in why. */
int xt_disk_check(struct xt_disk *d, char *why, size_t whylen);

/* ---- lib/layout.c: guest memory laid out as Linux under Xen lays it
 * out (the DMA API always on): a page allocator handing out frames in
 * descending order, and request shapes over it. */

struct xt_frames {
	uint64_t lo, next; /* free: [lo, next), handed out downwards */
};

void xt_frames_init(struct xt_frames *f, uint64_t gpa, uint64_t len);
/* `pages` contiguous frames below the last run, `gap` frames apart from
 * it; 0 when the area is used up. */
uint64_t xt_frames_take(struct xt_frames *f, unsigned pages, unsigned gap);
/* Two frames either side of the next 1 MiB boundary below: the gpa of
 * the boundary, 0 when used up. */
uint64_t xt_frames_take_across_bucket(struct xt_frames *f);

enum xt_shape {
	/* 126 segments of 4 KiB on frames in descending order, a frame
	 * apart (a fragmented page allocator: nothing merges). */
	XT_SHAPE_4K_DESCENDING,
	/* 126 merged 12 KiB segments at in-page offset 0x200 (an O_DIRECT
	 * buffer in 4-frame runs), runs descending; some cross a bucket. */
	XT_SHAPE_12K_DESCENDING,
	/* 2 MiB at bucket offset 0x80200 split at size_max: two 1 MiB
	 * segments, each across a 1 MiB map-cache bucket boundary. */
	XT_SHAPE_1M_ACROSS_BUCKETS,
	XT_SHAPES
};
/* Name for test names ("126x4k_descending_frames"...). */
const char *xt_shape_name(enum xt_shape s);
/* Fills io->seg / io->nseg with the shape's data segments from f; returns
 * the data bytes, 0 when f is used up. *crossings: segments that cross a
 * 1 MiB boundary. */
uint32_t xt_shape_fill(enum xt_shape s, struct xt_frames *f,
		       struct sx_blk_io *io, unsigned *crossings);
/* n segments that each map as two pieces: 8 KiB across a 1 MiB bucket
 * boundary (foreign mapping), or 1 MiB at 0x200 into a frame, 257 frames
 * (grants: the shim maps 256 per call). Returns n, 0 when f is used up. */
unsigned xt_segs_split_in_two(struct xt_frames *f, struct sx_blk_io *io,
			      unsigned n, bool grant);
/* A request header where Linux may put it (the status byte follows):
 * variant 0 at in-page offset 0xff0 (status on the next page), 1 at 0xff8
 * (the header across two pages), 2 ending at a bucket boundary (status in
 * the next bucket). 0 when f is used up. */
uint64_t xt_hdr_place(struct xt_frames *f, unsigned variant);

/* Gathers / scatters a request's data segments from / into guest RAM. */
void xt_segs_to_buf(const uint8_t *ram, const struct sx_blk_io *io,
		    uint8_t *buf);
void xt_buf_to_segs(uint8_t *ram, const struct sx_blk_io *io,
		    const uint8_t *buf);

#endif
