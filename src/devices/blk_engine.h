/* The virtio-blk I/O engines (io_uring, worker threads, and the NBD and
 * RBD network stores) behind one small interface. An engine never interprets
 * requests: it runs one operation per blk_io and reports the result on the
 * queue's own thread. */
#ifndef VIRTIOD_DEVICES_BLK_ENGINE_H
#define VIRTIOD_DEVICES_BLK_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtiod/event_loop.h"

enum blk_op {
	BLK_OP_READ,	  /* preadv */
	BLK_OP_WRITE,	  /* pwritev2 with rw_flags (RWF_DSYNC: writethrough) */
	BLK_OP_FSYNC,	  /* fdatasync */
	BLK_OP_FALLOCATE, /* fallocate(mode, off, len) */
	BLK_OP_DISCARD,	  /* BLKDISCARD on a block device */
	/* Network stores (blk_nbd.c, blk_rbd.c) only: */
	BLK_OP_TRIM, /* a discard hint: NBD_CMD_TRIM, rbd discard */
	BLK_OP_ZERO, /* write zeroes; mode 1: may deallocate */
};

struct blk_io {
	enum blk_op op;
	int rw_flags;
	int mode;
	uint64_t off;
	uint64_t len; /* FALLOCATE, DISCARD */
	struct iovec *iov;
	unsigned n_iov;
	int res; /* set by engines that run the op themselves */

	/* Owned by the network engines while the op is theirs. */
	void *owner;
	struct blk_io *next, *prev; /* in flight, parked or done */
	uint64_t deadline_ns;	    /* CLOCK_MONOTONIC, 0: none */
	unsigned pending;	    /* store commands not yet answered */
	int err;		    /* first error among them */
};

/* Called on the queue thread: one per finished operation (res: bytes or
 * -errno), then batch_done once after each group of completions. */
typedef void (*blk_io_done_fn)(void *ctx, struct blk_io *io, int res);
typedef void (*blk_batch_done_fn)(void *ctx);
/* The store's size changed (RBD header update, NBD reconnect): on the queue
 * thread, bytes rounded down to the logical block. */
typedef void (*blk_resized_fn)(void *ctx, uint64_t bytes);

struct blk_remote; /* an NBD or RBD store (blk_nbd.c, blk_rbd.c) */

struct blk_engine_params {
	int fd;		      /* backing store */
	unsigned depth;	      /* operations in flight at most */
	struct vd_loop *loop; /* the queue's loop: completions arrive there */
	const char *who;
	blk_io_done_fn done;
	blk_batch_done_fn batch_done;
	void *ctx;
	/* Network stores only. */
	struct blk_remote *remote;
	unsigned index; /* queue index: 0 watches for resizes */
	blk_resized_fn resized;
};

struct blk_engine;

struct blk_engine_ops {
	const char *name;
	/* On the queue thread. Returns 0 or -errno (nothing left behind). */
	int (*init)(const struct blk_engine_params *p, struct blk_engine **out);
	/* Prepare one operation; no system call unless the submission queue
	 * is full. -EBUSY if it cannot be queued. */
	int (*queue)(struct blk_engine *e, struct blk_io *io);
	/* Hand everything queued to the kernel / workers: one system call.
	 * -EAGAIN if the kernel left some queued (retry soon), 0, or another
	 * -errno if the engine itself cannot go on. */
	int (*submit)(struct blk_engine *e);
	/* Block until at least one operation completes and deliver what has
	 * completed. -ENOENT if nothing is in flight; another -errno if the
	 * engine cannot go on (its operations' fate unknown). */
	int (*wait)(struct blk_engine *e);
	/* Optional, for busy polling: deliver completions that are ready
	 * without blocking. Returns true if it delivered any. */
	bool (*poll)(struct blk_engine *e);
	/* Nothing may be in flight. Unregisters from the loop, frees. */
	void (*fini)(struct blk_engine *e);
};

extern const struct blk_engine_ops blk_uring_ops;
extern const struct blk_engine_ops blk_threads_ops;
extern const struct blk_engine_ops blk_sync_ops;
extern const struct blk_engine_ops blk_nbd_ops;
extern const struct blk_engine_ops blk_rbd_ops;

/* Run one operation synchronously (threads engine, and the workers the
 * uring engine keeps for BLKDISCARD).
 * Returns bytes or -errno. */
int blk_io_exec(int fd, const struct blk_io *io);

#endif
