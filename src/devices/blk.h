/* virtio-blk device model: state shared by src/devices/blk*.c. Private to
 * the model; it never names a hypervisor or a shim. */
#ifndef VIRTIOD_DEVICES_BLK_H
#define VIRTIOD_DEVICES_BLK_H

#include <linux/virtio_blk.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtiod/device.h"
#include "virtiod/log.h"

#include "blk_engine.h"

#define BLK_SECTOR_SHIFT 9
#define BLK_SECTOR_SIZE	 512u

#define BLK_QUEUE_SIZE_DEFAULT 1024
#define BLK_QUEUE_SIZE_MIN     4 /* seg_max = size - 2 must stay >= 2 */
#define BLK_NUM_QUEUES_MAX     64
/* Data segments per request (seg_max), capped by queue size - 2 as QEMU
 * does, so a driver without indirect descriptors can always fit a chain. */
#define BLK_SEG_MAX  126
#define BLK_SIZE_MAX (1u << 20) /* size_max: bytes per segment */
/* Discard / write zeroes: sectors per segment and segments per request. */
#define BLK_DWZ_MAX_SECTORS (1u << 22)
#define BLK_DWZ_MAX_SEG	    16

/* O_DIRECT bounce buffers per queue, for requests whose guest buffers are
 * not aligned as the backing store needs; a request holds one while it runs
 * and moves BLK_BOUNCE_SIZE bytes per I/O. */
#define BLK_BOUNCE_BUFS 8
#define BLK_BOUNCE_SIZE (256u << 10)

enum blk_engine_kind {
	BLK_ENGINE_AUTO, /* sync for page-cache-only stores without NOWAIT,
			    else io_uring, threads if io_uring cannot start */
	BLK_ENGINE_URING,
	BLK_ENGINE_THREADS,
	BLK_ENGINE_SYNC,
};

/* Parsed command line (opts_set), consumed by create. */
struct blk_opts {
	char *disk;
	bool readonly;
	bool direct;
	bool share_rw;	/* other writers allowed (image_lock.h) */
	bool no_packed; /* withhold VIRTIO_F_RING_PACKED */
	unsigned num_queues;
	unsigned queue_size;
	unsigned lbs; /* 0: chosen from the backing store */
	bool serial_set;
	char serial[VIRTIO_BLK_ID_BYTES + 1];
	enum blk_engine_kind engine;
	/* Network stores: a request the store has not answered after this
	 * is answered IOERR (0: wait as long as it takes). */
	unsigned io_timeout_ms;
	bool io_timeout_set;
};

/* Where the bytes live: a local file or block device, or a network store
 * reached through its own library (docs/storage.md). */
enum blk_store_kind {
	BLK_STORE_FILE,
	BLK_STORE_NBD, /* nbd://, nbd+unix:// through libnbd */
	BLK_STORE_RBD, /* rbd:POOL/IMAGE through librbd */
};

/* Default --io-timeout for network stores, ms. */
#define BLK_IO_TIMEOUT_DEFAULT_MS 30000u

/* The opened backing store (blk_backend.c, blk_nbd.c, blk_rbd.c).
 * Immutable after open, but for `size` (see blk_dev.size). */
struct blk_backend {
	enum blk_store_kind store;
	struct blk_remote *remote; /* NBD/RBD: how a queue reaches the store */
	int fd;			   /* files; -1 for network stores */
	int lock_fd; /* holds the image's locks (image_lock.h), or -1 */
	/* A write can carry its own durability (RWF_DSYNC, NBD FUA); else a
	 * writethrough write is followed by a flush. */
	bool has_fua;
	/* Network stores: write-zeroes is a store command (else zeros are
	 * written). */
	bool can_zero;
	bool is_bdev;
	bool readonly;
	bool direct;
	bool can_discard;
	uint64_t size;		/* bytes served: a multiple of lbs */
	unsigned lbs;		/* logical block size the guest sees */
	unsigned phys;		/* physical block size, bytes, >= lbs */
	unsigned align_off;	/* bytes */
	unsigned min_io;	/* bytes, 0: unknown */
	unsigned opt_io;	/* bytes, 0: unknown */
	unsigned dio_mem_align; /* O_DIRECT buffer address alignment, else 1 */
	unsigned dio_len_align; /* O_DIRECT segment length multiple, else 1 */
	/* Probed at open: can a read / write be tried without blocking
	 * (RWF_NOWAIT)? io_uring hands every request the file refuses that
	 * for to an io-wq worker thread. */
	bool nowait_read;
	bool nowait_write;
	/* The data lives in memory only (tmpfs, ramfs, hugetlbfs): a read
	 * or write never waits for a device. */
	bool mem_only;
};

/* Fallbacks learned at run time, shared by all queues (atomics: set once
 * by whichever queue finds out first). */
struct blk_learned {
	atomic_bool no_punch_hole;
	atomic_bool no_zero_range;
};

struct blk_dev {
	struct vd_model model; /* first: create hands out &model */
	struct blk_backend be;
	enum blk_engine_kind engine;
	char serial[VIRTIO_BLK_ID_BYTES]; /* zero-padded, not terminated */
	char who[48];			  /* "blk <disk basename>" */

	/* Control thread only: the config space, little-endian, without the
	 * writeback byte (kept in `writeback`). */
	struct virtio_blk_config cfg;

	/* Bytes served now: be.size at open; changed by online resize
	 * (blk_resize.c, control thread) or by a network store's own
	 * resize (queue threads); every thread reads it. */
	atomic_uint_fast64_t size;

	/* Written by the control thread, read by queue threads. */
	atomic_bool writeback; /* false: every write is durable at completion */
	atomic_uint_fast64_t features; /* negotiated */

	struct blk_learned learned;
	atomic_bool fallback_logged;
};

enum blk_phase {
	BLK_PH_RW,    /* IN/OUT data transfer */
	BLK_PH_SEG,   /* DISCARD/WRITE_ZEROES segments */
	BLK_PH_FLUSH, /* fdatasync (FLUSH, or writethrough after segments) */
	BLK_PH_DONE,
};

/* Write-zeroes strategies, tried in order until one is supported. */
enum blk_zstep {
	BLK_Z_PUNCH, /* UNMAP allowed: punch a hole (file) / unmap-zero */
	BLK_Z_RANGE, /* FALLOC_FL_ZERO_RANGE (BLKZEROOUT's path for devices) */
	BLK_Z_WRITE, /* write zeros from a static zero buffer */
};

struct blk_seg {
	uint64_t off; /* bytes */
	uint64_t len; /* bytes, > 0 */
	bool unmap;
};

/* One request, indexed by vd_vq_elem.slot; owned by the queue thread. */
struct blk_req {
	struct blk_io io; /* the engine's operation; at most one in flight */
	struct vd_vq_elem *elem;
	uint32_t type;
	uint8_t *status; /* last byte of the last writable buffer */
	uint8_t st;	 /* VIRTIO_BLK_S_* to write at completion */
	uint32_t written;
	enum blk_phase phase;
	/* Durability (§5.2.6.3: with WCE=0 a write is durable when it
	 * completes). `unsynced`: data changed by an operation without
	 * RWF_DSYNC; `wt_start`: writethrough when the request started. Such
	 * a request gets an fdatasync before it completes if it started in,
	 * or completes in, writethrough mode: the driver may switch the cache
	 * mode while the write is in flight. */
	bool unsynced;
	bool wt_start;

	/* IN/OUT: a copy of the data iovecs, advanced as bytes complete. */
	struct iovec *iov;
	unsigned n_iov;
	unsigned iov_idx;
	uint64_t off;	/* image offset of the next byte */
	uint64_t left;	/* bytes still to transfer */
	uint64_t chunk; /* bytes asked for by the I/O in flight */
	bool bounced;	/* misaligned for O_DIRECT: goes through `bounce` */
	void *bounce;
	struct iovec bounce_iov;
	struct blk_req *wait_next; /* waiting for a bounce buffer */

	/* DISCARD/WRITE_ZEROES: segments copied from the guest at parse. */
	struct blk_seg *segs;
	unsigned n_seg;
	unsigned cur_seg;
	uint64_t seg_done; /* bytes of segs[cur_seg] zeroed by BLK_Z_WRITE */
	enum blk_zstep zstep;
};

/* Per-queue state, created by queue_start on the queue's thread and only
 * touched there. */
struct blk_queue {
	struct blk_dev *dev;
	struct vd_queue *q;
	struct vd_vq *vq;
	const char *who;
	unsigned depth;	  /* slots: the model's max queue size */
	unsigned max_iov; /* iovecs per request copy */
	struct blk_req *reqs;
	struct iovec *iov_pool;
	struct blk_seg *seg_pool;

	const struct blk_engine_ops *eng_ops;
	struct blk_engine *eng;

	unsigned active; /* popped, not yet pushed */
	bool broken;	 /* the driver broke a chain: pop no more */
	bool stopping;

	/* O_DIRECT bounce pool (only with --direct). */
	void *bounce_mem;
	void *bounce_free[BLK_BOUNCE_BUFS];
	unsigned n_bounce_free;
	struct blk_req *wait_head, *wait_tail;

	struct vd_ratelimit rl;
};

/* blk_resize.c: the model's resize op (vd_device_ops.resize). */
int blk_resize(void *model, uint64_t bytes, char *err, size_t errlen);

/* blk_backend.c */
int blk_backend_open(struct blk_backend *be, const struct blk_opts *o,
		     char *err, size_t errlen);
void blk_backend_close(struct blk_backend *be);
/* blk_nbd.c, blk_rbd.c: open a network store named by o->disk (an NBD URI,
 * an rbd: spec): connect once, learn size and capabilities. */
bool blk_nbd_is_uri(const char *disk);
int blk_nbd_open(struct blk_backend *be, const struct blk_opts *o, char *err,
		 size_t errlen);
void blk_nbd_close(struct blk_remote *r);
bool blk_rbd_is_spec(const char *disk);
int blk_rbd_open(struct blk_backend *be, const struct blk_opts *o, char *err,
		 size_t errlen);
void blk_rbd_close(struct blk_remote *r);
/* Default serial: "vd-" and a hash of the canonical path. */
void blk_backend_default_serial(const char *path,
				char serial[VIRTIO_BLK_ID_BYTES + 1]);

/* blk_request.c: parse and validate a popped chain into r. Returns 0 (r is
 * ready: phase set, or BLK_PH_DONE with r->st decided) or -EBADMSG when the
 * chain itself is broken (no room for the header or the status byte); then
 * *why says what. Never touches memory outside the element's iovecs. */
int blk_req_parse(struct blk_queue *bq, struct blk_req *r, struct vd_vq_elem *e,
		  const char **why);

/* blk_io.c: run a parsed request to completion through the engine. */
void blk_req_run(struct blk_queue *bq, struct blk_req *r);
void blk_io_done(void *ctx, struct blk_io *io, int res);
void blk_io_batch_done(void *ctx);
/* Starts requests that waited for a bounce buffer, if one is free. */
void blk_run_waiters(struct blk_queue *bq);
/* Hands what is queued to the engine: true if all of it went, false if the
 * kernel was short (rekick). An engine that cannot go on does not return
 * (blk_engine_failed). */
bool blk_submit(struct blk_queue *bq);
/* The engine failed with requests the kernel may still be writing into
 * guest memory: logs why and ends the process (docs/security.md). */
_Noreturn void blk_engine_failed(struct blk_queue *bq, const char *what,
				 int err);
/* Pushes r with its status (queue thread). */
void blk_req_finish(struct blk_queue *bq, struct blk_req *r);

static inline bool blk_writethrough(struct blk_dev *d)
{
	return !atomic_load_explicit(&d->writeback, memory_order_relaxed);
}

static inline bool blk_feature(struct blk_dev *d, unsigned bit)
{
	return atomic_load_explicit(&d->features, memory_order_relaxed) &
	       (1ULL << bit);
}

#endif
