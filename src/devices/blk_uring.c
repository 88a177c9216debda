/* virtio-blk io_uring engine: one ring per virtqueue, created and used only
 * on that queue's thread. Everything queued during a kick or a completion
 * batch goes to the kernel in one io_uring_enter; never blocks otherwise.
 * BLKDISCARD, which io_uring cannot run, goes to a threads engine beside
 * the ring, made at the first discard. */
#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "blk_engine.h"

struct blk_uring {
	struct io_uring ring;
	struct blk_engine_params p;
	int fd;		   /* for SQEs: registered index 0, or p.fd */
	uint8_t sqe_flags; /* IOSQE_FIXED_FILE if registered */
	bool has_read;	   /* IORING_OP_READ/WRITE (5.6+) */
	unsigned queued;   /* prepared, not yet submitted */
	unsigned inflight; /* submitted or queued, no completion yet */
	bool reaping;
	/* BLKDISCARD blocks for as long as the device takes (seconds on
	 * some SSDs) and has no io_uring opcode before uring_cmd (6.x): it
	 * runs on workers, its completions come through p.done as ours. */
	struct blk_engine *side;
	unsigned side_inflight;
};

/* Rounds of reaping per call: completions of continuations submitted by
 * batch_done are picked up in the same call, up to this bound. */
#define BLK_URING_REAP_ROUNDS 8

/* Deliver every completion there is, one batch_done per group. */
static void reap(struct blk_uring *u)
{
	if (u->reaping)
		return; /* batch_done -> submit: the outer loop reaps */
	u->reaping = true;
	for (unsigned round = 0; round < BLK_URING_REAP_ROUNDS; round++) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		io_uring_for_each_cqe(&u->ring, head, cqe)
		{
			struct blk_io *io = io_uring_cqe_get_data(cqe);
			int res = cqe->res;

			n++;
			u->inflight--;
			u->p.done(u->p.ctx, io, res);
		}
		if (!n)
			break;
		io_uring_cq_advance(&u->ring, n);
		u->p.batch_done(u->p.ctx);
	}
	u->reaping = false;
}

static void side_done(void *ctx, struct blk_io *io, int res)
{
	struct blk_uring *u = ctx;

	u->side_inflight--;
	u->p.done(u->p.ctx, io, res);
}

static void side_batch_done(void *ctx)
{
	struct blk_uring *u = ctx;

	u->p.batch_done(u->p.ctx);
}

static int queue_discard(struct blk_uring *u, struct blk_io *io)
{
	int ret;

	if (!u->side) {
		struct blk_engine_params p = u->p;

		p.done = side_done;
		p.batch_done = side_batch_done;
		p.ctx = u;
		ret = blk_threads_ops.init(&p, &u->side);
		if (ret < 0)
			return ret;
	}
	ret = blk_threads_ops.queue(u->side, io);
	if (ret == 0)
		u->side_inflight++;
	return ret;
}

static void on_ring(void *opaque, int fd, uint32_t events)
{
	(void)fd;
	(void)events;
	reap(opaque);
}

/* Ring set-up flags, best first: a kernel that does not know one refuses
 * the whole set (EINVAL), so each step drops the newest. SINGLE_ISSUER
 * (6.0): only the queue thread submits, the kernel skips its locking.
 * COOP_TASKRUN (5.19): completions wait for our next system call instead
 * of interrupting the thread (it always makes one before it sleeps);
 * TASKRUN_FLAG tells a busy-polling thread when to make one.
 * DEFER_TASKRUN is not used: its completions are posted only inside
 * io_uring_enter, and the queue thread sleeps in epoll_wait. */
static const unsigned ring_flag_sets[] = {
	IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
		IORING_SETUP_TASKRUN_FLAG,
	IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
	0,
};

static int uring_init(const struct blk_engine_params *p,
		      struct blk_engine **out)
{
	struct blk_uring *u = calloc(1, sizeof(*u));
	struct io_uring_probe *probe;
	int ret = -EINVAL;

	if (!u)
		return -ENOMEM;
	u->p = *p;
	for (size_t i = 0;
	     i < sizeof(ring_flag_sets) / sizeof(ring_flag_sets[0]); i++) {
		struct io_uring_params up = {0};

		/* A completion queue twice the depth can never overflow: at
		 * most `depth` operations are in flight. */
		up.flags = IORING_SETUP_CQSIZE | ring_flag_sets[i];
		up.cq_entries = 2 * p->depth;
		ret = io_uring_queue_init_params(p->depth, &u->ring, &up);
		if (ret != -EINVAL)
			break;
	}
	if (ret < 0) {
		free(u);
		return ret;
	}
	/* Optional (5.18 / 5.1 / 5.6): the ring's and the image's file
	 * references are taken once here instead of on every io_uring_enter
	 * and every request; READ/WRITE where the kernel has them. Without
	 * these everything works the same, a bit slower. */
	io_uring_register_ring_fd(&u->ring);
	u->fd = p->fd;
	u->sqe_flags = 0;
	if (io_uring_register_files(&u->ring, &p->fd, 1) == 0) {
		u->fd = 0; /* index in the registered file table */
		u->sqe_flags = IOSQE_FIXED_FILE;
	}
	probe = io_uring_get_probe_ring(&u->ring); /* NULL before 5.6 */
	u->has_read = probe &&
		      io_uring_opcode_supported(probe, IORING_OP_READ) &&
		      io_uring_opcode_supported(probe, IORING_OP_WRITE);
	if (probe)
		io_uring_free_probe(probe);
	/* The ring fd is readable while completions wait: the queue's loop
	 * wakes for I/O exactly like for a kick. */
	ret = vd_loop_add(p->loop, u->ring.ring_fd, EPOLLIN, on_ring, u);
	if (ret < 0) {
		io_uring_queue_exit(&u->ring);
		free(u);
		return ret;
	}
	*out = (struct blk_engine *)u;
	return 0;
}

/* One buffer (the common 4 KiB request) goes as READ/WRITE, which spares
 * the kernel importing an iovec array. */
static void prep_rw(const struct blk_uring *u, struct io_uring_sqe *sqe,
		    const struct blk_io *io)
{
	bool write = io->op == BLK_OP_WRITE;

	if (io->n_iov == 1 && u->has_read)
		io_uring_prep_rw(write ? IORING_OP_WRITE : IORING_OP_READ, sqe,
				 u->fd, io->iov[0].iov_base,
				 (unsigned)io->iov[0].iov_len, io->off);
	else
		io_uring_prep_rw(write ? IORING_OP_WRITEV : IORING_OP_READV,
				 sqe, u->fd, io->iov, io->n_iov, io->off);
	if (write)
		sqe->rw_flags = io->rw_flags;
}

static int uring_queue(struct blk_engine *e, struct blk_io *io)
{
	struct blk_uring *u = (struct blk_uring *)e;
	struct io_uring_sqe *sqe;

	/* Network-store operations never reach a file engine. */
	if (io->op == BLK_OP_TRIM || io->op == BLK_OP_ZERO)
		return -EOPNOTSUPP;
	if (io->op == BLK_OP_DISCARD)
		return queue_discard(u, io);
	sqe = io_uring_get_sqe(&u->ring);
	if (!sqe) {
		/* Not expected (depth covers every request); stay correct. */
		io_uring_submit(&u->ring);
		u->queued = 0;
		sqe = io_uring_get_sqe(&u->ring);
		if (!sqe)
			return -EBUSY;
	}
	switch (io->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		prep_rw(u, sqe, io);
		break;
	case BLK_OP_FSYNC:
		io_uring_prep_fsync(sqe, u->fd, IORING_FSYNC_DATASYNC);
		break;
	case BLK_OP_FALLOCATE:
		io_uring_prep_fallocate(sqe, u->fd, io->mode, (off_t)io->off,
					(off_t)io->len);
		break;
	case BLK_OP_DISCARD:
	case BLK_OP_TRIM:
	case BLK_OP_ZERO:
		break; /* handled above */
	}
	sqe->flags |= u->sqe_flags;
	io_uring_sqe_set_data(sqe, io);
	u->queued++;
	u->inflight++;
	return 0;
}

static int uring_submit(struct blk_engine *e)
{
	struct blk_uring *u = (struct blk_uring *)e;
	int ret;

	if (u->side)
		blk_threads_ops.submit(u->side);
	if (!u->queued)
		return 0;
	ret = io_uring_submit(&u->ring);
	/* -EAGAIN/-EBUSY/-ENOMEM: the kernel is short of resources; what
	 * stays in the SQ goes with the next submit or wait. Anything else
	 * is the ring itself failing. */
	if (ret < 0 && ret != -EAGAIN && ret != -EBUSY && ret != -ENOMEM &&
	    ret != -EINTR)
		return ret;
	if (ret >= 0)
		u->queued -=
			(unsigned)ret < u->queued ? (unsigned)ret : u->queued;
	/* Page-cache hits complete inside io_uring_enter: deliver them now
	 * rather than after another trip through epoll. */
	if (io_uring_cq_ready(&u->ring))
		reap(u);
	return u->queued ? -EAGAIN : 0;
}

/* Both the ring and the discard workers have work: wait on the ring in
 * short slices and look at the workers between them (queue stop only). */
static int wait_both(struct blk_uring *u)
{
	struct __kernel_timespec ts = {.tv_nsec = 2000000};

	for (;;) {
		struct io_uring_cqe *cqe;
		int ret = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1,
							   &ts, NULL);

		if (ret >= 0 || ret == -ETIME)
			u->queued = 0;
		else if (ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
			return ret;
		if (io_uring_cq_ready(&u->ring)) {
			reap(u);
			return 0;
		}
		if (blk_threads_ops.poll(u->side))
			return 0;
	}
}

static int uring_wait(struct blk_engine *e)
{
	struct blk_uring *u = (struct blk_uring *)e;
	int ret;

	if (u->side_inflight && !u->inflight)
		return blk_threads_ops.wait(u->side);
	if (u->side_inflight)
		return wait_both(u);
	if (!u->inflight)
		return -ENOENT;
	ret = io_uring_submit_and_wait(&u->ring, 1);
	if (ret >= 0)
		u->queued = 0;
	else if (ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		return ret;
	reap(u);
	return 0;
}

static bool uring_poll(struct blk_engine *e)
{
	struct blk_uring *u = (struct blk_uring *)e;
	bool side = u->side_inflight && blk_threads_ops.poll(u->side);

	if (!u->inflight)
		return side;
	/* COOP_TASKRUN: completions the kernel has left as task work are
	 * posted only when we enter it; TASKRUN_FLAG says when to. */
	if (IO_URING_READ_ONCE(*u->ring.sq.kflags) & IORING_SQ_TASKRUN)
		io_uring_get_events(&u->ring);
	if (!io_uring_cq_ready(&u->ring))
		return side;
	reap(u);
	return true;
}

static void uring_fini(struct blk_engine *e)
{
	struct blk_uring *u = (struct blk_uring *)e;

	if (u->side)
		blk_threads_ops.fini(u->side);
	vd_loop_del(u->p.loop, u->ring.ring_fd);
	io_uring_queue_exit(&u->ring);
	free(u);
}

const struct blk_engine_ops blk_uring_ops = {
	.name = "uring",
	.init = uring_init,
	.queue = uring_queue,
	.submit = uring_submit,
	.wait = uring_wait,
	.poll = uring_poll,
	.fini = uring_fini,
};
