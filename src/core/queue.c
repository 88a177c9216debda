/* Queue threads: each started queue owns one thread with its own event loop
 * that serves kicks and runs the model's queue callbacks. Other threads
 * reach a queue only through its loop, never by touching its state, and the
 * serving path makes no allocation and no system call per request. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "virtiod/fd_kind.h"
#include "virtiod/device.h"
#include "virtiod/log.h"
#include "virtiod/sandbox.h"

#include "device_priv.h"
#include "queue_priv.h"

/* While a memory-table writer waits and a kick is deferred, look again this
 * often: the writer has no way to wake us when it is done. */
#define QUEUE_GRACE_POLL_MS 1
/* After an impossible epoll failure, do not spin. */
#define QUEUE_ERROR_BACKOFF_MS 100

/* --poll-us for queues whose setup leaves poll_us at 0. */
static atomic_uint default_poll_us;

/* The queue whose thread this is, so calls made on it skip the loop. */
static _Thread_local struct vd_queue *current_queue;

/* ------------------------------------------------------------- sizing */

/* A chain of the model's largest shape can never exceed its element
 * (virtio-blk under Xen: 126 segments of 1 MiB, each across a 1 MiB
 * mapping boundary, are 252 iovecs, not 126). */
static unsigned iov_budget(const struct vd_model *m, const struct vd_mem *mem)
{
	uint64_t per =
		m->max_desc_len ? vd_mem_max_pieces(mem, m->max_desc_len) : 1;
	uint64_t n = (uint64_t)m->max_descs * per + VD_QUEUE_IOV_SLACK;

	return n > VD_VQ_MAX_IOV ? VD_VQ_MAX_IOV : (unsigned)n;
}

static uint64_t now_ns(void);

void vd_queue_complete_batch(struct vd_queue *q)
{
	/* The publication time of the completions' latencies: one clock
	 * read per batch, none when nothing waits. */
	if (vd_vq_unpublished(q->vq))
		vd_vq_set_clock(q->vq, now_ns());
	if (vd_vq_flush(q->vq))
		vd_dev_notify_queue(q->dev, q);
}

void vd_queue_set_default_poll_us(unsigned us)
{
	atomic_store(&default_poll_us,
		     us < VD_QUEUE_POLL_US_MAX ? us : VD_QUEUE_POLL_US_MAX);
}

/* --------------------------------------------------- guest-memory grace */

static void mem_enter(struct vd_queue *q)
{
	if (!q->mem_entered) {
		vd_mem_reader_enter(vd_dev_mem(q->dev), q->mem_slot);
		q->mem_entered = true;
	}
}

static void mem_leave(struct vd_queue *q)
{
	if (q->mem_entered) {
		vd_mem_reader_leave(vd_dev_mem(q->dev), q->mem_slot);
		q->mem_entered = false;
	}
}

/* ---------------------------------------------------------------- hooks */

static void unwatch_kick(struct vd_queue *q)
{
	if (q->kick_watched)
		vd_loop_del(q->loop, q->kick_fd);
	q->kick_watched = false;
}

static void hook_broken(void *ctx, struct vd_vq *vq, enum vd_vq_error err,
			const char *reason)
{
	struct vd_queue *q = ctx;

	/* Stop serving: no more queue_kick; in-flight requests still
	 * complete through the model's own fds. */
	q->broken = true;
	unwatch_kick(q);
	vd_dev_needs_reset(q->dev, "q%u: %s", q->index, reason);
	if (q->setup.hooks.on_broken)
		q->setup.hooks.on_broken(q->setup.hooks.ctx, vq, err, reason);
}

static void hook_pop(void *ctx, const struct vd_vq_elem *e)
{
	struct vd_queue *q = ctx;

	q->setup.hooks.on_pop(q->setup.hooks.ctx, e);
}

static void hook_unpop(void *ctx, const struct vd_vq_elem *e)
{
	struct vd_queue *q = ctx;

	q->setup.hooks.on_unpop(q->setup.hooks.ctx, e);
}

static void hook_push(void *ctx, const struct vd_vq_elem *e)
{
	struct vd_queue *q = ctx;

	q->setup.hooks.on_push(q->setup.hooks.ctx, e);
}

static void hook_publish(void *ctx, uint16_t used_idx, bool used_wrap)
{
	struct vd_queue *q = ctx;

	q->setup.hooks.on_publish(q->setup.hooks.ctx, used_idx, used_wrap);
}

static void hook_log_write(void *ctx, uint64_t gpa, uint64_t len)
{
	struct vd_queue *q = ctx;

	q->setup.hooks.log_write(q->setup.hooks.ctx, gpa, len);
}

/* One ctx for every vq hook: ours (the queue) for on_broken, and thin
 * forwarders for the shim's hooks, left NULL where the shim has none. */
static void wrap_hooks(struct vd_queue *q)
{
	const struct vd_vq_hooks *s = &q->setup.hooks;

	q->hooks = (struct vd_vq_hooks){
		.ctx = q,
		.on_broken = hook_broken,
		.on_pop = s->on_pop ? hook_pop : NULL,
		.on_unpop = s->on_unpop ? hook_unpop : NULL,
		.on_push = s->on_push ? hook_push : NULL,
		.on_publish = s->on_publish ? hook_publish : NULL,
		.log_write = s->log_write ? hook_log_write : NULL,
	};
}

/* ---------------------------------------------------------------- kicks */

static void on_kick(void *opaque, int fd, uint32_t events)
{
	struct vd_queue *q = opaque;
	uint64_t cnt;
	ssize_t n;

	(void)events;
	q->kick_pending = true;
	VD_STAT_ADD(q->stats.kicks, 1);
	if (q->kick_edge)
		return;
	/* Non-blocking: one read takes every kick so far; EAGAIN is a
	 * spurious wake-up. */
	n = read(fd, &cnt, sizeof(cnt));
	if (n == (ssize_t)sizeof(cnt) || (n < 0 && errno == EAGAIN)) {
		return;
	} else if (n >= 0 || errno != EINTR) {
		q->kick_pending = false;
		vd_warn(q->who, "kick fd %d unreadable (%s); no longer watched",
			fd, n < 0 ? strerror(errno) : "short read");
		unwatch_kick(q);
	}
}

/* An eventfd wakes an edge-triggered epoll on every write, whatever its
 * counter holds, so its kicks need no read (the kernel's vhost never reads
 * its kick eventfd either): one system call less per wake-up. The counter
 * cannot reach its limit (2^64 - 2 kicks). Anything else (a pipe would
 * fill up) is watched level-triggered and read. */
static bool is_eventfd(int fd)
{
	return vd_fd_is_anon_inode(fd, "anon_inode:[eventfd]");
}

/* The new fd is watched before the old one is let go: a kick fd that cannot
 * be watched (epoll refuses it) is refused and the ring keeps the old one,
 * never left with no kick fd at all. */
static int watch_kick(struct vd_queue *q, int fd)
{
	bool edge;
	int fl, r;

	if (fd < 0 || q->broken) {
		unwatch_kick(q);
		q->kick_fd = fd;
		return 0;
	}
	if (fd == q->kick_fd && q->kick_watched) {
		q->kick_pending = true;
		return 0;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 ||
	    (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
		return -errno;
	edge = is_eventfd(fd);
	r = vd_loop_add(q->loop, fd, EPOLLIN | (edge ? EPOLLET : 0), on_kick,
			q);
	if (r < 0)
		return r;
	unwatch_kick(q);
	q->kick_fd = fd;
	q->kick_edge = edge;
	q->kick_watched = true;
	/* A kick may have reached the old fd after its last read. */
	q->kick_pending = true;
	return 0;
}

/* ---------------------------------------------------------------- thread */

static int queue_begin(struct vd_queue *q)
{
	struct vd_model *m = vd_dev_model(q->dev);
	struct vd_mem *mem = vd_dev_mem(q->dev);
	struct vd_vq_config cfg = q->setup.vq;
	char name[16]; /* the kernel's limit, NUL included */
	size_t len = strnlen(q->who, sizeof(name) - 1);
	int r;

	current_queue = q;
	memcpy(name, q->who, len);
	name[len] = '\0';
	pthread_setname_np(pthread_self(), name); /* only for debuggers */
	q->mem_slot = vd_mem_reader_register(mem);
	if (q->mem_slot < 0)
		return q->mem_slot;
	/* vd_vq_new may read the rings. */
	mem_enter(q);
	if (!cfg.max_iov)
		cfg.max_iov = iov_budget(m, mem);
	/* The model's largest request (virtio-blk: seg_max segments of
	 * size_max, plus header and status): a longer chain is malformed,
	 * and would let the guest decide how much a mapper maps for it. */
	if (!cfg.max_chain_len && m->max_descs && m->max_desc_len)
		cfg.max_chain_len = (uint64_t)m->max_descs * m->max_desc_len;
	wrap_hooks(q);
	r = vd_vq_new(&cfg, mem, &q->hooks, q->who, &q->vq);
	if (r < 0)
		goto out_mem;
	vd_vq_set_stats(q->vq, &q->stats);
	vd_vq_set_clock(q->vq, now_ns());
	if (q->setup.n_requeue) {
		r = vd_vq_requeue(q->vq, q->setup.requeue, q->setup.n_requeue);
		if (r < 0)
			goto out_vq;
	}
	if (atomic_load(&q->logging) && q->setup.hooks.log_write)
		vd_vq_set_logging(q->vq, true);
	r = watch_kick(q, q->setup.kick_fd);
	if (r < 0)
		goto out_vq;
	if (m->ops->queue_start) {
		r = m->ops->queue_start(m, q);
		if (r < 0)
			goto out_kick;
	}
	/* Serve what the driver made available before we watched its kicks
	 * (and requeued chains). */
	q->kick_pending = true;
	return 0;

out_kick:
	unwatch_kick(q);
out_vq:
	vd_vq_free(q->vq);
	q->vq = NULL;
out_mem:
	mem_leave(q);
	vd_mem_reader_unregister(mem, q->mem_slot);
	return r;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Where the ring stands, to tell whether a queue_kick took anything. */
static uint64_t ring_mark(struct vd_queue *q)
{
	uint16_t avail, used;
	bool avail_wrap, used_wrap;

	vd_vq_get_base(q->vq, &avail, &avail_wrap, &used, &used_wrap);
	return (uint64_t)avail | (uint64_t)avail_wrap << 16 |
	       (uint64_t)vd_vq_inflight(q->vq) << 17;
}

/* The model may take chains found without a kick. A device-filled queue
 * takes buffers when it has data, not when they appear, unless it waits
 * for them. */
static bool model_serves(const struct vd_queue *q)
{
	return q->device_filled ? q->wait_buffers : q->stalls < 2;
}

/* Chains for the model. One that waits for buffers gave back those it
 * found too few: only buffers added since count, or it would spin. */
static bool work_pending(struct vd_queue *q)
{
	return q->wait_buffers ? vd_vq_avail_more(q->vq)
			       : vd_vq_avail_pending(q->vq);
}

/* queue_kick with driver notifications off: the driver need not kick for
 * chains added while we pop (virtio 1.2 §2.7.10, §2.8.10). */
static void serve_kick(struct vd_queue *q)
{
	struct vd_model *m = vd_dev_model(q->dev);
	uint64_t mark = ring_mark(q);

	if (!q->notify_off) {
		vd_vq_disable_notify(q->vq);
		q->notify_off = true;
	}
	/* What this round pops is stamped with its start. */
	vd_vq_set_clock(q->vq, now_ns());
	q->kick_pending = false;
	/* The model asks again if this round still leaves it without. */
	q->wait_buffers = false;
	m->ops->queue_kick(m, q);
	vd_queue_complete_batch(q);
	/* A memory-table writer came meanwhile: vd_vq_pop gave nothing
	 * more, so serve again once it is done (queue_serve waits). */
	if (vd_mem_grace_pending(vd_dev_mem(q->dev))) {
		q->kick_pending = true;
		return;
	}
	if (q->kick_pending || ring_mark(q) != mark ||
	    !vd_vq_avail_pending(q->vq))
		q->stalls = 0;
	else if (q->stalls < 2)
		q->stalls++;
}

/* Busy-poll the ring and the model's completions, notifications still
 * off, until there is work (true) or the window closes, the queue stops,
 * or a memory-table writer waits (false). No system call while it spins:
 * control calls on the loop wait at most one window. */
static bool queue_poll(struct vd_queue *q)
{
	struct vd_model *m = vd_dev_model(q->dev);
	struct vd_mem *mem = vd_dev_mem(q->dev);
	uint64_t end = now_ns() + q->poll_ns;

	for (;;) {
		if (vd_loop_stopping(q->loop) || vd_mem_grace_pending(mem) ||
		    q->broken)
			return false;
		if (model_serves(q) && work_pending(q)) {
			q->kick_pending = true;
			return true;
		}
		if (m->ops->queue_poll && m->ops->queue_poll(m, q)) {
			vd_queue_complete_batch(q);
			return true;
		}
		if (now_ns() >= end)
			return false;
		cpu_relax();
	}
}

static void queue_serve(struct vd_queue *q)
{
	struct vd_mem *mem = vd_dev_mem(q->dev);

	while (!vd_loop_stopping(q->loop)) {
		int timeout = -1, r;

		/* A chain held for guest-memory mappings may fit now that
		 * completions gave some back. */
		if (vd_vq_take_retry(q->vq))
			q->kick_pending = true;

		/* While a memory-table writer waits, pop nothing new: let the
		 * in-flight requests finish, leave, and poll until it is
		 * done, so continuous load cannot starve it. */
		if (q->kick_pending && !q->broken)
			timeout = vd_mem_grace_pending(mem)
					  ? QUEUE_GRACE_POLL_MS
					  : 0;
		/* Before sleeping, look for more work for a while (a window
		 * that finds some opens another after it is served). */
		if (timeout < 0 && q->poll_ns && queue_poll(q)) {
			if (q->kick_pending)
				serve_kick(q);
			/* A round of the loop at least once per window, for
			 * its other fds and the control thread's calls. */
			if (now_ns() - q->last_round < q->poll_ns)
				continue;
			timeout = 0;
		}
		/* About to sleep: ask the driver for kicks again and look
		 * once more for chains added meanwhile. A model that waits
		 * for buffers asks for the next one, notifications on or
		 * not: those it gave back were kicked for already. */
		if (timeout < 0 && !q->broken &&
		    (q->wait_buffers || (q->notify_off && !q->device_filled))) {
			q->notify_off = false;
			if ((q->wait_buffers ? vd_vq_enable_notify_more(q->vq)
					     : vd_vq_enable_notify(q->vq)) &&
			    model_serves(q)) {
				q->kick_pending = true;
				timeout = 0;
			}
		}
		/* Never block while holding translated pointers others could
		 * free; requests in flight keep us inside. */
		if (timeout != 0 && vd_vq_inflight(q->vq) == 0)
			mem_leave(q);
		r = vd_loop_run_once(q->loop, timeout);
		if (q->poll_ns)
			q->last_round = now_ns();
		mem_enter(q);
		/* What the round's callbacks (I/O completions) pushed: one
		 * used-index store and at most one notification for all. */
		vd_queue_complete_batch(q);
		if (r < 0) {
			vd_dev_needs_reset(q->dev, "q%u: event loop: %s",
					   q->index, strerror(-r));
			poll(NULL, 0, QUEUE_ERROR_BACKOFF_MS);
			continue;
		}
		if (q->kick_pending && !q->broken &&
		    !vd_loop_stopping(q->loop) && !vd_mem_grace_pending(mem))
			serve_kick(q);
	}
}

static void queue_end(struct vd_queue *q)
{
	struct vd_model *m = vd_dev_model(q->dev);
	unsigned left;

	mem_enter(q);
	/* Leave the ring as a sleeping thread does: kicks wanted (whoever
	 * serves it next reads the driver's kicks from the start). */
	if (q->notify_off) {
		q->notify_off = false;
		vd_vq_enable_notify(q->vq);
	}
	if (m->ops->queue_stop)
		m->ops->queue_stop(m, q);
	/* Publish whatever queue_stop pushed and did not flush. */
	vd_queue_complete_batch(q);
	left = vd_vq_inflight(q->vq);
	if (left)
		vd_warn(q->who, "%u requests still in flight after queue_stop",
			left);
	VD_STAT_SET(q->stats.inflight, 0); /* abandoned with the vq */
	vd_vq_get_base(q->vq, &q->base_avail_idx, &q->base_avail_wrap,
		       &q->base_used_idx, &q->base_used_wrap);
	unwatch_kick(q);
	vd_vq_free(q->vq);
	q->vq = NULL;
	mem_leave(q);
	vd_mem_reader_unregister(vd_dev_mem(q->dev), q->mem_slot);
	q->mem_slot = -1;
}

static void *queue_thread(void *arg)
{
	struct vd_queue *q = arg;

	/* Its ring, engine and workers are set up under the queue's own
	 * filter (the workers inherit it). */
	q->start_err = vd_sandbox_enter(VD_SANDBOX_QUEUE, q->who);
	if (!q->start_err)
		q->start_err = queue_begin(q);
	sem_post(&q->started);
	if (q->start_err)
		return NULL;
	queue_serve(q);
	queue_end(q);
	return NULL;
}

/* --------------------------------------------------------- control side */

int vd_queue_start(struct vd_queue *q, const struct vd_queue_setup *setup)
{
	struct vd_model *m = vd_dev_model(q->dev);
	unsigned max = m->max_queue_size ? m->max_queue_size : VD_VQ_MAX_SIZE;
	sigset_t all, old;
	int r;

	if (!setup || setup->vq.num == 0 || setup->vq.num > max ||
	    (setup->n_requeue && !setup->requeue)) {
		vd_warn(q->who, "queue size %u outside 1..%u or bad setup",
			setup ? setup->vq.num : 0, max);
		return -EINVAL;
	}
	pthread_mutex_lock(&q->ctl_lock);
	if (atomic_load(&q->running)) {
		r = -EBUSY;
		goto out;
	}
	q->setup = *setup;
	q->model_data = NULL;
	q->broken = false;
	q->kick_pending = false;
	q->kick_fd = -1;
	q->kick_watched = false;
	q->kick_edge = false;
	q->notify_off = false;
	q->stalls = 0;
	q->device_filled = false;
	q->wait_buffers = false;
	q->last_round = 0;
	q->poll_ns =
		(uint64_t)(setup->poll_us ? setup->poll_us
					  : atomic_load(&default_poll_us)) *
		1000u;
	if (q->poll_ns > (uint64_t)VD_QUEUE_POLL_US_MAX * 1000u)
		q->poll_ns = (uint64_t)VD_QUEUE_POLL_US_MAX * 1000u;
	q->mem_entered = false;
	q->loop = vd_loop_new();
	if (!q->loop) {
		r = -ENOMEM;
		goto out;
	}
	if (sem_init(&q->started, 0, 0) < 0) {
		r = -errno;
		goto out_loop;
	}
	/* Signals go to the main thread, never to a queue thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&q->thread, NULL, queue_thread, q);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r == 0) {
		while (sem_wait(&q->started) < 0 && errno == EINTR)
			;
		r = q->start_err;
		if (r)
			pthread_join(q->thread, NULL);
	}
	sem_destroy(&q->started);
	q->setup.requeue = NULL; /* the caller's array, valid only till here */
	q->setup.n_requeue = 0;
	if (r == 0) {
		atomic_store(&q->running, true);
		goto out;
	}
out_loop:
	vd_loop_free(q->loop);
	q->loop = NULL;
out:
	pthread_mutex_unlock(&q->ctl_lock);
	return r;
}

int vd_queue_stop(struct vd_queue *q, uint16_t *avail_idx, bool *avail_wrap,
		  uint16_t *used_idx, bool *used_wrap)
{
	if (current_queue == q)
		return -EDEADLK; /* a thread cannot join itself */
	pthread_mutex_lock(&q->ctl_lock);
	if (!atomic_load(&q->running)) {
		pthread_mutex_unlock(&q->ctl_lock);
		return 0;
	}
	vd_loop_stop(q->loop);
	pthread_join(q->thread, NULL);
	atomic_store(&q->running, false);
	vd_loop_free(q->loop);
	q->loop = NULL;
	if (avail_idx)
		*avail_idx = q->base_avail_idx;
	if (avail_wrap)
		*avail_wrap = q->base_avail_wrap;
	if (used_idx)
		*used_idx = q->base_used_idx;
	if (used_wrap)
		*used_wrap = q->base_used_wrap;
	pthread_mutex_unlock(&q->ctl_lock);
	return 0;
}

/* A call into the running thread that the caller waits for. */
struct queue_op {
	struct vd_queue *q;
	int arg;
	int ret;
	int (*fn)(struct vd_queue *q, int arg);
	sem_t done;
};

static void queue_op_run(void *opaque)
{
	struct queue_op *op = opaque;

	op->ret = op->fn(op->q, op->arg);
	sem_post(&op->done);
}

/* Runs fn on q's thread and waits: when it returns, the thread has acted
 * (e.g. stopped watching an old kick fd the caller may now close). Called
 * with ctl_lock held, which keeps the thread from stopping meanwhile. */
static int queue_op_sync(struct vd_queue *q,
			 int (*fn)(struct vd_queue *q, int arg), int arg)
{
	struct queue_op op = {.q = q, .arg = arg, .fn = fn};
	int r;

	if (sem_init(&op.done, 0, 0) < 0)
		return -errno;
	r = vd_loop_call(q->loop, queue_op_run, &op);
	if (r == 0) {
		while (sem_wait(&op.done) < 0 && errno == EINTR)
			;
		r = op.ret;
	}
	sem_destroy(&op.done);
	return r;
}

static int op_set_kick_fd(struct vd_queue *q, int fd)
{
	return watch_kick(q, fd);
}

int vd_queue_set_kick_fd(struct vd_queue *q, int kick_fd)
{
	int r;

	if (current_queue == q)
		return op_set_kick_fd(q, kick_fd);
	pthread_mutex_lock(&q->ctl_lock);
	r = atomic_load(&q->running) ? queue_op_sync(q, op_set_kick_fd, kick_fd)
				     : -ESRCH;
	pthread_mutex_unlock(&q->ctl_lock);
	return r;
}

static int op_set_logging(struct vd_queue *q, int on)
{
	if (q->setup.hooks.log_write)
		vd_vq_set_logging(q->vq, on);
	return 0;
}

void vd_queue_set_logging(struct vd_queue *q, bool on)
{
	int r = 0;

	atomic_store(&q->logging, on);
	if (current_queue == q) {
		op_set_logging(q, on);
		return;
	}
	pthread_mutex_lock(&q->ctl_lock);
	if (atomic_load(&q->running))
		r = queue_op_sync(q, op_set_logging, on);
	pthread_mutex_unlock(&q->ctl_lock);
	if (r < 0)
		vd_err(q->who, "dirty logging %s failed: %s", on ? "on" : "off",
		       strerror(-r));
}
