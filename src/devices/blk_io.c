/* virtio-blk request execution: drives a parsed request through the engine
 * one operation at a time (continuing short transfers, bouncing misaligned
 * O_DIRECT buffers, falling back for zeroing) and completes it. Only ever
 * addresses the image range the request was validated for. */
#include <errno.h>
#include <linux/falloc.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virtiod/iov.h"

#include "blk.h"

/* Source for BLK_Z_WRITE; never written. Page-aligned for O_DIRECT. */
static uint8_t blk_zeros[64 << 10] __attribute__((aligned(4096)));

#define BLK_WAIT 2 /* issue: waiting for a bounce buffer */

static struct blk_req *req_of(struct blk_io *io)
{
	return (struct blk_req *)((char *)io - offsetof(struct blk_req, io));
}

static const char *op_name(enum blk_op op)
{
	switch (op) {
	case BLK_OP_READ:
		return "read";
	case BLK_OP_WRITE:
		return "write";
	case BLK_OP_FSYNC:
		return "fdatasync";
	case BLK_OP_FALLOCATE:
		return "fallocate";
	case BLK_OP_DISCARD:
	case BLK_OP_TRIM:
		return "discard";
	case BLK_OP_ZERO:
		return "write-zeroes";
	}
	return "?";
}

static bool dio_aligned(const struct blk_backend *be, const struct iovec *iov,
			unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if ((uintptr_t)iov[i].iov_base % be->dio_mem_align ||
		    iov[i].iov_len % be->dio_len_align)
			return false;
	return true;
}

/* Move the request's data iovecs past `n` completed bytes. */
static void iov_advance(struct blk_req *r, uint64_t n)
{
	struct iovec *v = r->iov + r->iov_idx;
	unsigned left = r->n_iov - r->iov_idx;

	vd_iov_advance(&v, &left, n);
	r->iov_idx = (unsigned)(v - r->iov);
}

static bool bounce_get(struct blk_queue *bq, struct blk_req *r)
{
	if (!bq->n_bounce_free) {
		r->wait_next = NULL;
		if (bq->wait_tail)
			bq->wait_tail->wait_next = r;
		else
			bq->wait_head = r;
		bq->wait_tail = r;
		return false;
	}
	r->bounce = bq->bounce_free[--bq->n_bounce_free];
	return true;
}

static void bounce_put(struct blk_queue *bq, struct blk_req *r)
{
	bq->bounce_free[bq->n_bounce_free++] = r->bounce;
	r->bounce = NULL;
}

static int issue(struct blk_queue *bq, struct blk_req *r)
{
	int ret = bq->eng_ops->queue(bq->eng, &r->io);

	return ret < 0 ? ret : 1;
}

static int issue_rw(struct blk_queue *bq, struct blk_req *r)
{
	bool write = r->type == VIRTIO_BLK_T_OUT;
	struct blk_io *io = &r->io;

	io->op = write ? BLK_OP_WRITE : BLK_OP_READ;
	io->off = r->off;
	/* WCE=0: the write is durable when it completes (§5.2.6.3): by
	 * itself where the store can (RWF_DSYNC, NBD FUA), else through a
	 * flush after it (unsynced). */
	io->rw_flags = write && blk_writethrough(bq->dev) && bq->dev->be.has_fua
			       ? RWF_DSYNC
			       : 0;
	if (write && !io->rw_flags)
		r->unsynced = true;
	if (r->bounced) {
		if (!r->bounce && !bounce_get(bq, r))
			return BLK_WAIT;
		r->chunk =
			r->left < BLK_BOUNCE_SIZE ? r->left : BLK_BOUNCE_SIZE;
		if (write)
			vd_iov_to_buf(r->iov + r->iov_idx,
				      r->n_iov - r->iov_idx, 0, r->bounce,
				      r->chunk);
		r->bounce_iov.iov_base = r->bounce;
		r->bounce_iov.iov_len = r->chunk;
		io->iov = &r->bounce_iov;
		io->n_iov = 1;
	} else {
		r->chunk = r->left;
		io->iov = r->iov + r->iov_idx;
		io->n_iov = r->n_iov - r->iov_idx;
	}
	return issue(bq, r);
}

static enum blk_zstep first_zstep(struct blk_dev *d, const struct blk_seg *s)
{
	if (s->unmap && !atomic_load(&d->learned.no_punch_hole))
		return BLK_Z_PUNCH;
	if (!atomic_load(&d->learned.no_zero_range))
		return BLK_Z_RANGE;
	return BLK_Z_WRITE;
}

static int issue_zero_write(struct blk_queue *bq, struct blk_req *r)
{
	const struct blk_seg *s = &r->segs[r->cur_seg];
	uint64_t left = s->len - r->seg_done;
	struct blk_io *io = &r->io;

	r->chunk = left < sizeof(blk_zeros) ? left : sizeof(blk_zeros);
	r->bounce_iov.iov_base = blk_zeros;
	r->bounce_iov.iov_len = r->chunk;
	io->op = BLK_OP_WRITE;
	io->off = s->off + r->seg_done;
	io->iov = &r->bounce_iov;
	io->n_iov = 1;
	return issue(bq, r);
}

/* Network stores have discard and write-zeroes commands of their own: the
 * zstep ladder becomes "zero, may deallocate" (PUNCH), "zero, keep
 * allocated" (RANGE), then writing zeros where the store has no zeroing. */
static int issue_seg_remote(struct blk_queue *bq, struct blk_req *r)
{
	struct blk_dev *d = bq->dev;
	struct blk_io *io = &r->io;

	if (r->type == VIRTIO_BLK_T_DISCARD) {
		if (!d->be.can_discard)
			return 0; /* a hint (§5.2.6.2) */
		io->op = BLK_OP_TRIM;
		return issue(bq, r);
	}
	if (r->zstep == BLK_Z_WRITE || !d->be.can_zero)
		return issue_zero_write(bq, r);
	io->op = BLK_OP_ZERO;
	io->mode = r->zstep == BLK_Z_PUNCH;
	return issue(bq, r);
}

/* One operation for the current segment; 0 if the segment needs none. */
static int issue_seg(struct blk_queue *bq, struct blk_req *r)
{
	struct blk_dev *d = bq->dev;
	const struct blk_seg *s = &r->segs[r->cur_seg];
	struct blk_io *io = &r->io;

	io->off = s->off;
	io->len = s->len;
	io->rw_flags = 0;
	/* Punching, zeroing and discarding are never synchronous. */
	r->unsynced = true;
	if (d->be.store != BLK_STORE_FILE)
		return issue_seg_remote(bq, r);
	if (r->type == VIRTIO_BLK_T_DISCARD) {
		/* Discard is a hint (§5.2.6.2 "MAY deallocate"): a store that
		 * cannot deallocate completes it with nothing done. */
		if (d->be.is_bdev) {
			if (!d->be.can_discard)
				return 0;
			io->op = BLK_OP_DISCARD;
		} else {
			if (atomic_load(&d->learned.no_punch_hole))
				return 0;
			io->op = BLK_OP_FALLOCATE;
			io->mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		}
		return issue(bq, r);
	}
	switch (r->zstep) {
	case BLK_Z_PUNCH:
		/* A punched range reads back as zeros, on files and (unmap
		 * zeroing) on block devices. */
		io->op = BLK_OP_FALLOCATE;
		io->mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		break;
	case BLK_Z_RANGE:
		/* On a block device this is blkdev_issue_zeroout, BLKZEROOUT's
		 * path, but asynchronous through the engine. */
		io->op = BLK_OP_FALLOCATE;
		io->mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
		break;
	case BLK_Z_WRITE:
		return issue_zero_write(bq, r);
	}
	return issue(bq, r);
}

static void next_seg(struct blk_queue *bq, struct blk_req *r)
{
	r->cur_seg++;
	r->seg_done = 0;
	if (r->cur_seg < r->n_seg)
		r->zstep = first_zstep(bq->dev, &r->segs[r->cur_seg]);
}

static void fail(struct blk_queue *bq, struct blk_req *r, int err)
{
	vd_log_ratelimited(&bq->rl, VD_LOG_ERR, bq->who,
			   "%s at byte %llu: %s; request answered IOERR",
			   op_name(r->io.op), (unsigned long long)r->io.off,
			   strerrordesc_np(-err));
	r->st = VIRTIO_BLK_S_IOERR;
	r->phase = BLK_PH_DONE;
}

/* After the data phase: does the request need an fdatasync before it
 * completes? Yes if it changed data without RWF_DSYNC and it started in
 * writethrough mode, or the driver switched to writethrough meanwhile: a
 * write issued before WCE went to 0 and completing after it is otherwise
 * reported as done while still in the page cache. seq_cst pairs with
 * blk_set_config, which stores the mode before its own fdatasync: either
 * we see writethrough here, or that fdatasync starts after our write's
 * data reached the kernel. */
static enum blk_phase after_data(struct blk_queue *bq, const struct blk_req *r)
{
	bool wt = !atomic_load_explicit(&bq->dev->writeback,
					memory_order_seq_cst);

	return r->unsynced && (r->wt_start || wt) ? BLK_PH_FLUSH : BLK_PH_DONE;
}

/* Issue the request's next operation, or complete it. Every pass either
 * returns or moves to a later segment or phase, hence the bound. */
static void step(struct blk_queue *bq, struct blk_req *r)
{
	for (unsigned guard = 0; guard < BLK_DWZ_MAX_SEG + 4; guard++) {
		int ret = 0;

		switch (r->phase) {
		case BLK_PH_RW:
			if (!r->left) {
				r->phase = after_data(bq, r);
				continue;
			}
			ret = issue_rw(bq, r);
			break;
		case BLK_PH_SEG:
			if (r->cur_seg == r->n_seg) {
				r->phase = after_data(bq, r);
				continue;
			}
			ret = issue_seg(bq, r);
			if (ret == 0)
				next_seg(bq, r);
			break;
		case BLK_PH_FLUSH:
			r->io.op = BLK_OP_FSYNC;
			r->io.off = 0;
			ret = issue(bq, r);
			break;
		case BLK_PH_DONE:
			blk_req_finish(bq, r);
			return;
		}
		if (ret < 0)
			fail(bq, r, ret);
		else if (ret > 0)
			return;
	}
	/* Unreachable by construction; never leave a request hanging. */
	r->st = VIRTIO_BLK_S_IOERR;
	blk_req_finish(bq, r);
}

void blk_req_run(struct blk_queue *bq, struct blk_req *r)
{
	struct blk_dev *d = bq->dev;

	if (r->phase == BLK_PH_RW)
		r->bounced =
			d->be.direct && !dio_aligned(&d->be, r->iov, r->n_iov);
	r->wt_start = blk_writethrough(d);
	if (r->phase == BLK_PH_SEG)
		r->zstep = first_zstep(d, &r->segs[0]);
	r->bounce = NULL;
	step(bq, r);
}

/* A fallocate mode the store does not have: remember it, try the next. */
static bool zero_fallback(struct blk_queue *bq, struct blk_req *r)
{
	struct blk_dev *d = bq->dev;

	if (r->type == VIRTIO_BLK_T_DISCARD) {
		if (!d->be.is_bdev)
			atomic_store(&d->learned.no_punch_hole, true);
		next_seg(bq, r);
		return true;
	}
	switch (r->zstep) {
	case BLK_Z_PUNCH:
		atomic_store(&d->learned.no_punch_hole, true);
		r->zstep = atomic_load(&d->learned.no_zero_range) ? BLK_Z_WRITE
								  : BLK_Z_RANGE;
		return true;
	case BLK_Z_RANGE:
		atomic_store(&d->learned.no_zero_range, true);
		r->zstep = BLK_Z_WRITE;
		return true;
	case BLK_Z_WRITE:
		break;
	}
	return false;
}

static void rw_done(struct blk_req *r, uint64_t n)
{
	if (n > r->chunk)
		n = r->chunk;
	if (r->bounced && r->type == VIRTIO_BLK_T_IN)
		vd_iov_from_buf(r->iov + r->iov_idx, r->n_iov - r->iov_idx, 0,
				r->bounce, n);
	/* A short transfer continues from where it stopped. */
	iov_advance(r, n);
	r->off += n;
	r->left -= n;
}

void blk_io_done(void *ctx, struct blk_io *io, int res)
{
	struct blk_queue *bq = ctx;
	struct blk_req *r = req_of(io);

	if (res == -EOPNOTSUPP && r->phase == BLK_PH_SEG &&
	    zero_fallback(bq, r)) {
		step(bq, r);
		return;
	}
	/* Zero bytes with bytes left: the store shrank under us. */
	if (res == 0 && (io->op == BLK_OP_READ || io->op == BLK_OP_WRITE))
		res = -EIO;
	if (res < 0) {
		fail(bq, r, res);
		step(bq, r);
		return;
	}
	switch (r->phase) {
	case BLK_PH_RW:
		rw_done(r, (uint64_t)res);
		break;
	case BLK_PH_SEG:
		if (io->op == BLK_OP_WRITE) {
			r->seg_done += (uint64_t)res < r->chunk ? (uint64_t)res
								: r->chunk;
			if (r->seg_done < r->segs[r->cur_seg].len)
				break;
		}
		next_seg(bq, r);
		break;
	case BLK_PH_FLUSH:
		r->phase = BLK_PH_DONE;
		break;
	case BLK_PH_DONE:
		break;
	}
	step(bq, r);
}

void blk_req_finish(struct blk_queue *bq, struct blk_req *r)
{
	*r->status = r->st;
	if (r->st != VIRTIO_BLK_S_OK)
		vd_vq_count_error(bq->vq);
	if (r->bounce)
		bounce_put(bq, r);
	/* Used length: every writable byte up to the status byte, which is
	 * the last one. For Linux's layouts that is exactly data + status;
	 * dirty logging covers the first `written` bytes, so anything less
	 * could leave the status byte unlogged (QEMU reports the same). */
	vd_vq_push(bq->vq, r->elem,
		   r->elem->write_len > UINT32_MAX
			   ? UINT32_MAX
			   : (uint32_t)r->elem->write_len);
	r->elem = NULL;
	bq->active--;
}

void blk_run_waiters(struct blk_queue *bq)
{
	/* Bounded: each pass takes a waiter off the list. */
	while (bq->wait_head && bq->n_bounce_free) {
		struct blk_req *r = bq->wait_head;

		bq->wait_head = r->wait_next;
		if (!bq->wait_head)
			bq->wait_tail = NULL;
		step(bq, r);
	}
}

/* Requests handed to the kernel may still be written into guest memory
 * (an io-wq worker copying a read, O_DIRECT into pinned pages) after their
 * engine broke, and nothing can take them back or wait for them. Once the
 * queue stopped, that memory may be unmapped and its addresses reused for
 * other guest memory. So the process ends here, at once (no atexit work,
 * other threads never run on): exit_group cancels io_uring's requests and
 * waits for its workers before the address space goes, and the guest still
 * owns nothing it was not told about. A restarted daemon serves again (the
 * frontend reconnects; inflight tracking resubmits). An exception to "no
 * exit outside main", for memory safety. */
void blk_engine_failed(struct blk_queue *bq, const char *what, int err)
{
	vd_err(bq->who,
	       "%s engine: %s failed (%s) with %u requests in flight, which "
	       "the kernel or the store's library may still write into "
	       "guest memory: virtiod exits rather than let that memory go. "
	       "Restart it (a vhost-user frontend reconnects and resubmits)",
	       bq->eng_ops->name, what, strerror(-err), bq->active);
	_exit(EXIT_FAILURE);
}

bool blk_submit(struct blk_queue *bq)
{
	int ret = bq->eng_ops->submit(bq->eng);

	if (ret < 0 && ret != -EAGAIN)
		blk_engine_failed(bq, "submit", ret);
	return ret == 0;
}

void blk_io_batch_done(void *ctx)
{
	struct blk_queue *bq = ctx;

	blk_run_waiters(bq);
	if (!blk_submit(bq))
		vd_queue_rekick(bq->q); /* the kernel was short; retry */
	/* The core publishes the completions at the end of the round. */
}
