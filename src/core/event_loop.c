/* epoll event loop: one callback per fd, run on the loop's thread. A watch
 * deleted during dispatch is freed only after the round, so a stale event
 * never reaches freed memory; other threads only touch the call queue. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "virtiod/event_loop.h"

#define LOOP_MAX_EVENTS 64
#define LOOP_MAX_CALLS	64 /* control messages queued per loop */

struct watch {
	int fd;
	bool deleted;
	vd_loop_fn fn;
	void *opaque;
	struct watch *next_dead; /* deferred free list */
};

struct loop_call {
	void (*fn)(void *);
	void *opaque;
};

struct vd_loop {
	/* loop thread */
	int epfd;
	struct watch **by_fd; /* indexed by fd */
	size_t by_fd_len;
	struct watch *dead;   /* deleted during this round */
	unsigned dispatching; /* depth: a callback may run a nested round */

	/* any thread */
	int wakefd;
	atomic_bool stop;
	pthread_mutex_t call_lock; /* guards the call ring */
	struct loop_call calls[LOOP_MAX_CALLS];
	unsigned call_head, call_count;
};

/* epoll data.ptr of the wake eventfd: no watch lives here. */
static char wake_tag;

struct vd_loop *vd_loop_new(void)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &wake_tag};
	struct vd_loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->epfd < 0 || loop->wakefd < 0 ||
	    epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) < 0)
		goto fail;
	if (pthread_mutex_init(&loop->call_lock, NULL) != 0)
		goto fail;
	return loop;
fail:
	if (loop->epfd >= 0)
		close(loop->epfd);
	if (loop->wakefd >= 0)
		close(loop->wakefd);
	free(loop);
	return NULL;
}

static void free_dead(struct vd_loop *loop)
{
	while (loop->dead) {
		struct watch *w = loop->dead;

		loop->dead = w->next_dead;
		free(w);
	}
}

/* Pending calls are dropped; watched fds stay open (the caller owns them). */
void vd_loop_free(struct vd_loop *loop)
{
	if (!loop)
		return;
	for (size_t fd = 0; fd < loop->by_fd_len; fd++)
		free(loop->by_fd[fd]);
	free(loop->by_fd);
	free_dead(loop);
	pthread_mutex_destroy(&loop->call_lock);
	close(loop->wakefd);
	close(loop->epfd);
	free(loop);
}

static struct watch *find(const struct vd_loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->by_fd_len)
		return NULL;
	return loop->by_fd[fd];
}

int vd_loop_add(struct vd_loop *loop, int fd, uint32_t events, vd_loop_fn fn,
		void *opaque)
{
	struct epoll_event ev = {.events = events};
	struct watch *w;

	if (fd < 0 || !fn)
		return -EINVAL;
	if (find(loop, fd))
		return -EEXIST;
	if ((size_t)fd >= loop->by_fd_len) {
		size_t len = (size_t)fd + 16;
		struct watch **t = realloc(loop->by_fd, len * sizeof(*t));

		if (!t)
			return -ENOMEM;
		for (size_t i = loop->by_fd_len; i < len; i++)
			t[i] = NULL;
		loop->by_fd = t;
		loop->by_fd_len = len;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = fd;
	w->fn = fn;
	w->opaque = opaque;
	ev.data.ptr = w;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;

		free(w);
		return err;
	}
	loop->by_fd[fd] = w;
	return 0;
}

int vd_loop_mod(struct vd_loop *loop, int fd, uint32_t events)
{
	struct watch *w = find(loop, fd);
	struct epoll_event ev = {.events = events};

	if (!w)
		return -ENOENT;
	ev.data.ptr = w;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}

int vd_loop_del(struct vd_loop *loop, int fd)
{
	struct watch *w = find(loop, fd);

	if (!w)
		return -ENOENT;
	/* EBADF/ENOENT: the fd was closed first, which already took it out
	 * of the epoll set; forget the watch all the same. */
	if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 &&
	    errno != EBADF && errno != ENOENT)
		return -errno;
	loop->by_fd[fd] = NULL;
	w->deleted = true;
	if (loop->dispatching) {
		/* An event for it may still sit in this round's array. */
		w->next_dead = loop->dead;
		loop->dead = w;
	} else {
		free(w);
	}
	return 0;
}

static void wake(struct vd_loop *loop)
{
	uint64_t one = 1;

	/* EAGAIN: the counter is saturated, the loop will wake anyway. */
	while (write(loop->wakefd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/* Runs the calls queued when the round began; calls queued by those calls
 * wait for the next round, so a self-requeueing call cannot livelock. */
static int run_calls(struct vd_loop *loop)
{
	uint64_t cnt;
	unsigned n;
	int ran = 0;

	while (read(loop->wakefd, &cnt, sizeof(cnt)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&loop->call_lock);
	n = loop->call_count;
	pthread_mutex_unlock(&loop->call_lock);
	for (unsigned i = 0; i < n; i++) {
		struct loop_call c;

		pthread_mutex_lock(&loop->call_lock);
		c = loop->calls[loop->call_head];
		loop->call_head = (loop->call_head + 1) % LOOP_MAX_CALLS;
		loop->call_count--;
		pthread_mutex_unlock(&loop->call_lock);
		c.fn(c.opaque);
		ran++;
	}
	/* Calls queued after the read above wrote the eventfd themselves. */
	return ran;
}

int vd_loop_run_once(struct vd_loop *loop, int timeout_ms)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];
	int n, ran = 0;

	n = epoll_wait(loop->epfd, evs, LOOP_MAX_EVENTS, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	loop->dispatching++;
	for (int i = 0; i < n; i++) {
		struct watch *w;

		if (evs[i].data.ptr == &wake_tag) {
			ran += run_calls(loop);
			continue;
		}
		w = evs[i].data.ptr;
		if (w->deleted)
			continue;
		w->fn(w->opaque, w->fd, evs[i].events);
		ran++;
	}
	/* An outer round may still hold events for the dead watches. */
	if (--loop->dispatching == 0)
		free_dead(loop);
	return ran;
}

int vd_loop_run(struct vd_loop *loop)
{
	while (!vd_loop_stopping(loop)) {
		int r = vd_loop_run_once(loop, -1);

		if (r < 0)
			return r;
	}
	return 0;
}

void vd_loop_stop(struct vd_loop *loop)
{
	int saved_errno = errno; /* may run in a signal handler */
	uint64_t one = 1;

	atomic_store(&loop->stop, true);
	/* EAGAIN means a wake-up is already pending. */
	while (write(loop->wakefd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	errno = saved_errno;
}

bool vd_loop_stopping(const struct vd_loop *loop)
{
	return atomic_load(&loop->stop);
}

int vd_loop_call(struct vd_loop *loop, void (*fn)(void *), void *opaque)
{
	unsigned tail;

	if (!fn)
		return -EINVAL;
	pthread_mutex_lock(&loop->call_lock);
	if (loop->call_count == LOOP_MAX_CALLS) {
		pthread_mutex_unlock(&loop->call_lock);
		return -ENOMEM;
	}
	tail = (loop->call_head + loop->call_count) % LOOP_MAX_CALLS;
	loop->calls[tail] = (struct loop_call){fn, opaque};
	loop->call_count++;
	pthread_mutex_unlock(&loop->call_lock);
	wake(loop);
	return 0;
}
