/* virtio-blk worker-thread engine, for kernels or sandboxes without
 * io_uring: a few workers per queue run preadv/pwritev2/fdatasync/fallocate
 * and signal completions through an eventfd on the queue's loop. The lock
 * is per queue; the queue thread never blocks on I/O except in wait. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "virtiod/sandbox.h"

#include "blk_engine.h"

#define BLK_THREADS_MAX 4

struct blk_threads {
	struct blk_engine_params p;
	int efd;

	/* Queue thread only. */
	struct blk_io **pend; /* queued since the last submit */
	unsigned n_pend;
	unsigned inflight;
	struct blk_io **reap; /* completions taken from `done` */

	/* Under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct blk_io **sq; /* FIFO of `depth` entries */
	unsigned sq_head, sq_n;
	struct blk_io **done;
	unsigned n_done;
	bool stop;
	/* n_done > 0, readable without the lock (busy polling). */
	atomic_bool has_done;

	unsigned nworkers;
	pthread_t workers[BLK_THREADS_MAX];
};

static void *worker(void *arg)
{
	struct blk_threads *t = arg;

	/* A failure is logged; the queue's filter, inherited, still holds. */
	vd_sandbox_enter(VD_SANDBOX_ENGINE, "blk engine");
	pthread_mutex_lock(&t->lock);
	for (;;) {
		struct blk_io *io;
		bool wake;

		while (!t->stop && !t->sq_n)
			pthread_cond_wait(&t->cond, &t->lock);
		if (t->stop)
			break;
		io = t->sq[t->sq_head];
		t->sq_head = (t->sq_head + 1) % t->p.depth;
		t->sq_n--;
		pthread_mutex_unlock(&t->lock);

		io->res = blk_io_exec(t->p.fd, io);

		pthread_mutex_lock(&t->lock);
		/* Only the first completion of a batch needs a wakeup: the
		 * queue thread takes the whole list at once. */
		wake = t->n_done == 0;
		t->done[t->n_done++] = io;
		atomic_store_explicit(&t->has_done, true, memory_order_relaxed);
		if (wake) {
			uint64_t one = 1;

			pthread_mutex_unlock(&t->lock);
			if (write(t->efd, &one, sizeof(one)) < 0) {
				/* Counter saturated: a wakeup is pending. */
			}
			pthread_mutex_lock(&t->lock);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

static void deliver(struct blk_threads *t)
{
	uint64_t v;
	unsigned n;

	if (read(t->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: a wakeup already consumed; look anyway. */
	}
	pthread_mutex_lock(&t->lock);
	n = t->n_done;
	memcpy(t->reap, t->done, n * sizeof(*t->reap));
	t->n_done = 0;
	atomic_store_explicit(&t->has_done, false, memory_order_relaxed);
	pthread_mutex_unlock(&t->lock);
	if (!n)
		return;
	for (unsigned i = 0; i < n; i++) {
		t->inflight--;
		t->p.done(t->p.ctx, t->reap[i], t->reap[i]->res);
	}
	t->p.batch_done(t->p.ctx);
}

static void on_efd(void *opaque, int fd, uint32_t events)
{
	(void)fd;
	(void)events;
	deliver(opaque);
}

static void threads_stop(struct blk_threads *t)
{
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	for (unsigned i = 0; i < t->nworkers; i++)
		pthread_join(t->workers[i], NULL);
	t->nworkers = 0;
}

static void threads_free(struct blk_threads *t)
{
	if (t->efd >= 0)
		close(t->efd);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t->pend);
	free(t->reap);
	free(t->sq);
	free(t->done);
	free(t);
}

static int threads_init(const struct blk_engine_params *p,
			struct blk_engine **out)
{
	struct blk_threads *t = calloc(1, sizeof(*t));
	unsigned want;
	sigset_t all, old;
	int ret;

	if (!t)
		return -ENOMEM;
	t->p = *p;
	t->efd = -1;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->pend = calloc(p->depth, sizeof(*t->pend));
	t->reap = calloc(p->depth, sizeof(*t->reap));
	t->sq = calloc(p->depth, sizeof(*t->sq));
	t->done = calloc(p->depth, sizeof(*t->done));
	if (!t->pend || !t->reap || !t->sq || !t->done) {
		threads_free(t);
		return -ENOMEM;
	}
	t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (t->efd < 0) {
		ret = -errno;
		threads_free(t);
		return ret;
	}
	/* Signals belong to the daemon's main thread, not to workers. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	want = p->depth < BLK_THREADS_MAX ? p->depth : BLK_THREADS_MAX;
	ret = 0;
	for (; t->nworkers < want; t->nworkers++) {
		ret = -pthread_create(&t->workers[t->nworkers], NULL, worker,
				      t);
		if (ret < 0)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret == 0)
		ret = vd_loop_add(p->loop, t->efd, EPOLLIN, on_efd, t);
	if (ret < 0) {
		threads_stop(t);
		threads_free(t);
		return ret;
	}
	*out = (struct blk_engine *)t;
	return 0;
}

static int threads_queue(struct blk_engine *e, struct blk_io *io)
{
	struct blk_threads *t = (struct blk_threads *)e;

	/* pend + sq + running + done never exceed depth: one op per slot. */
	if (t->inflight >= t->p.depth)
		return -EBUSY;
	t->pend[t->n_pend++] = io;
	t->inflight++;
	return 0;
}

static int threads_submit(struct blk_engine *e)
{
	struct blk_threads *t = (struct blk_threads *)e;
	unsigned n = t->n_pend;

	if (!n)
		return 0;
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < n; i++)
		t->sq[(t->sq_head + t->sq_n++) % t->p.depth] = t->pend[i];
	if (n == 1)
		pthread_cond_signal(&t->cond);
	else
		pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	t->n_pend = 0;
	return 0;
}

static int threads_wait(struct blk_engine *e)
{
	struct blk_threads *t = (struct blk_threads *)e;
	struct pollfd pfd = {.fd = t->efd, .events = POLLIN};

	if (!t->inflight)
		return -ENOENT;
	threads_submit(e);
	if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
		return -errno;
	deliver(t);
	return 0;
}

static bool threads_poll(struct blk_engine *e)
{
	struct blk_threads *t = (struct blk_threads *)e;

	if (!atomic_load_explicit(&t->has_done, memory_order_relaxed))
		return false;
	deliver(t);
	return true;
}

static void threads_fini(struct blk_engine *e)
{
	struct blk_threads *t = (struct blk_threads *)e;

	vd_loop_del(t->p.loop, t->efd);
	threads_stop(t);
	threads_free(t);
}

const struct blk_engine_ops blk_threads_ops = {
	.name = "threads",
	.init = threads_init,
	.queue = threads_queue,
	.submit = threads_submit,
	.wait = threads_wait,
	.poll = threads_poll,
	.fini = threads_fini,
};
