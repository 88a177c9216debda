/* virtio-blk synchronous engine, for stores that live in memory only
 * (tmpfs, ramfs): each operation runs on the queue thread itself, at
 * submit time. Such a store never waits for a device, and io_uring would
 * hand every request to an io-wq worker (no RWF_NOWAIT), paying a thread
 * wake-up per request. Never used for a store that can block on I/O
 * unless the user asks for it. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "blk_engine.h"

/* Operations run per submit call before it returns -EAGAIN (the queue
 * rekicks itself): a short-transfer continuation queues the next one, so
 * a pathological store cannot keep the thread in here forever. */
#define BLK_SYNC_OPS_PER_SUBMIT(depth) (4 * (depth))

struct blk_sync {
	struct blk_engine_params p;
	/* FIFO of queued operations, at most `depth` (one per request). */
	struct blk_io **fifo;
	unsigned head, n;
	bool running; /* done/batch_done may queue and submit again */
};

static int sync_init(const struct blk_engine_params *p, struct blk_engine **out)
{
	struct blk_sync *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->p = *p;
	s->fifo = calloc(p->depth, sizeof(*s->fifo));
	if (!s->fifo) {
		free(s);
		return -ENOMEM;
	}
	*out = (struct blk_engine *)s;
	return 0;
}

static int sync_queue(struct blk_engine *e, struct blk_io *io)
{
	struct blk_sync *s = (struct blk_sync *)e;

	if (s->n >= s->p.depth)
		return -EBUSY;
	s->fifo[(s->head + s->n++) % s->p.depth] = io;
	return 0;
}

/* Runs what is queued, in order, one batch_done per group: the group is
 * what was queued when it began, so continuations queued by done() form
 * the next group. */
static int sync_submit(struct blk_engine *e)
{
	struct blk_sync *s = (struct blk_sync *)e;
	unsigned budget = BLK_SYNC_OPS_PER_SUBMIT(s->p.depth);

	if (s->running)
		return 0; /* the outer call runs what was just queued */
	s->running = true;
	while (s->n && budget) {
		unsigned group = s->n < budget ? s->n : budget;

		budget -= group;
		while (group--) {
			struct blk_io *io = s->fifo[s->head];

			s->head = (s->head + 1) % s->p.depth;
			s->n--;
			s->p.done(s->p.ctx, io, blk_io_exec(s->p.fd, io));
		}
		s->p.batch_done(s->p.ctx);
	}
	s->running = false;
	return s->n ? -EAGAIN : 0;
}

static int sync_wait(struct blk_engine *e)
{
	struct blk_sync *s = (struct blk_sync *)e;

	if (!s->n)
		return -ENOENT;
	sync_submit(e);
	return 0;
}

static void sync_fini(struct blk_engine *e)
{
	struct blk_sync *s = (struct blk_sync *)e;

	free(s->fifo);
	free(s);
}

const struct blk_engine_ops blk_sync_ops = {
	.name = "sync",
	.init = sync_init,
	.queue = sync_queue,
	.submit = sync_submit,
	.wait = sync_wait,
	.fini = sync_fini,
};
