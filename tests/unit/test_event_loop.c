/* Event loop: watches, deletion during dispatch (run under ASan, a freed
 * watch reached by a stale event is caught), stop and calls from other
 * threads and from a signal handler. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "virtiod/event_loop.h"

struct fixture {
	struct vd_loop *loop;
	int efd[3];
};

static int setup(void **state)
{
	static struct fixture f;

	f.loop = vd_loop_new();
	assert_non_null(f.loop);
	for (int i = 0; i < 3; i++) {
		f.efd[i] = eventfd(0, EFD_NONBLOCK);
		assert_true(f.efd[i] >= 0);
	}
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vd_loop_free(f->loop);
	for (int i = 0; i < 3; i++)
		close(f->efd[i]);
	return 0;
}

static void kick(int fd)
{
	uint64_t one = 1;

	assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

static void drain(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0)
		assert_int_equal(errno, EAGAIN);
}

/* A callback that records how it was called. */
struct hit {
	int calls;
	int fd;
	uint32_t events;
	/* optional action while dispatching */
	struct vd_loop *loop;
	int del_fd;
	int readd_fd;
	struct hit *readd_hit;
	bool nest; /* run a nested round after the delete */
};

static void on_hit(void *opaque, int fd, uint32_t events);

static void on_hit(void *opaque, int fd, uint32_t events)
{
	struct hit *h = opaque;

	h->calls++;
	h->fd = fd;
	h->events = events;
	drain(fd);
	if (h->del_fd >= 0) {
		assert_int_equal(vd_loop_del(h->loop, h->del_fd), 0);
		h->del_fd = -1;
		if (h->nest)
			assert_true(vd_loop_run_once(h->loop, 0) >= 0);
	}
	if (h->readd_fd >= 0) {
		assert_int_equal(vd_loop_add(h->loop, h->readd_fd, EPOLLIN,
					     on_hit, h->readd_hit),
				 0);
		h->readd_fd = -1;
	}
}

#define HIT_INIT                                                               \
	{                                                                      \
		.del_fd = -1, .readd_fd = -1                                   \
	}

/* efd[0] watched by a, efd[1] by b, both ready in the same round, and
 * whichever runs first deletes the other (whose event is then stale). */
static void watch_cross_deleting_pair(struct fixture *f, struct hit *a,
				      struct hit *b)
{
	a->loop = b->loop = f->loop;
	a->del_fd = f->efd[1];
	b->del_fd = f->efd[0];
	assert_int_equal(vd_loop_add(f->loop, f->efd[0], EPOLLIN, on_hit, a),
			 0);
	assert_int_equal(vd_loop_add(f->loop, f->efd[1], EPOLLIN, on_hit, b),
			 0);
	kick(f->efd[0]);
	kick(f->efd[1]);
}

static void readable_fd_runs_its_callback(void **state)
{
	struct fixture *f = *state;
	struct hit h = HIT_INIT;

	assert_int_equal(vd_loop_add(f->loop, f->efd[0], EPOLLIN, on_hit, &h),
			 0);
	assert_int_equal(vd_loop_run_once(f->loop, 0), 0);
	assert_int_equal(h.calls, 0);
	kick(f->efd[0]);
	assert_int_equal(vd_loop_run_once(f->loop, 1000), 1);
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.fd, f->efd[0]);
	assert_true(h.events & EPOLLIN);
}

static void adding_a_watched_fd_again_is_eexist(void **state)
{
	struct fixture *f = *state;
	struct hit h = HIT_INIT;

	assert_int_equal(vd_loop_add(f->loop, f->efd[0], EPOLLIN, on_hit, &h),
			 0);
	assert_int_equal(vd_loop_add(f->loop, f->efd[0], EPOLLIN, on_hit, &h),
			 -EEXIST);
	assert_int_equal(vd_loop_add(f->loop, -1, EPOLLIN, on_hit, &h),
			 -EINVAL);
}

static void del_or_mod_of_unwatched_fd_is_enoent(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(vd_loop_del(f->loop, f->efd[0]), -ENOENT);
	assert_int_equal(vd_loop_del(f->loop, 100000), -ENOENT);
	assert_int_equal(vd_loop_mod(f->loop, f->efd[0], EPOLLIN), -ENOENT);
}

static void deleted_fd_no_longer_runs(void **state)
{
	struct fixture *f = *state;
	struct hit h = HIT_INIT;

	assert_int_equal(vd_loop_add(f->loop, f->efd[0], EPOLLIN, on_hit, &h),
			 0);
	assert_int_equal(vd_loop_del(f->loop, f->efd[0]), 0);
	kick(f->efd[0]);
	assert_int_equal(vd_loop_run_once(f->loop, 0), 0);
	assert_int_equal(h.calls, 0);
	/* and it can be watched again */
	assert_int_equal(vd_loop_add(f->loop, f->efd[0], EPOLLIN, on_hit, &h),
			 0);
	assert_int_equal(vd_loop_run_once(f->loop, 0), 1);
	assert_int_equal(h.calls, 1);
}

/* epoll drops a closed fd by itself, but the loop still holds its watch
 * until vd_loop_del: a new file with the same number is not silently
 * taken over, and the stale watch can still be deleted. */
static void fd_closed_before_del_stays_watched_until_del(void **state)
{
	struct fixture *f = *state;
	struct hit h = HIT_INIT;
	int fd = f->efd[2];

	assert_int_equal(vd_loop_add(f->loop, fd, EPOLLIN, on_hit, &h), 0);
	close(fd);
	f->efd[2] = eventfd(0, EFD_NONBLOCK);
	assert_int_equal(f->efd[2], fd); /* lowest free number */
	assert_int_equal(vd_loop_add(f->loop, fd, EPOLLIN, on_hit, &h),
			 -EEXIST);
	assert_int_equal(vd_loop_del(f->loop, fd), 0);
	assert_int_equal(vd_loop_add(f->loop, fd, EPOLLIN, on_hit, &h), 0);
	kick(fd);
	assert_int_equal(vd_loop_run_once(f->loop, 1000), 1);
	assert_int_equal(h.calls, 1);
}

static void mod_changes_the_events_watched(void **state)
{
	struct fixture *f = *state;
	struct hit h = HIT_INIT;

	/* An eventfd is always writable. */
	assert_int_equal(vd_loop_add(f->loop, f->efd[0], EPOLLOUT, on_hit, &h),
			 0);
	assert_int_equal(vd_loop_run_once(f->loop, 0), 1);
	assert_true(h.events & EPOLLOUT);
	assert_int_equal(vd_loop_mod(f->loop, f->efd[0], EPOLLIN), 0);
	assert_int_equal(vd_loop_run_once(f->loop, 0), 0);
	assert_int_equal(h.calls, 1);
}

/* Both fds are ready in the same round; whichever runs first deletes the
 * other, whose event is still in the round's array. */
static void deleting_another_ready_fd_during_dispatch_skips_it(void **state)
{
	struct fixture *f = *state;
	struct hit a = HIT_INIT, b = HIT_INIT;

	watch_cross_deleting_pair(f, &a, &b);
	assert_int_equal(vd_loop_run_once(f->loop, 1000), 1);
	assert_int_equal(a.calls + b.calls, 1);
}

/* A nested round must not free the watch the outer round still has an
 * event for (ASan reports the use after free). */
static void nested_round_keeps_outer_rounds_deleted_watch(void **state)
{
	struct fixture *f = *state;
	struct hit a = HIT_INIT, b = HIT_INIT;

	a.nest = b.nest = true;
	watch_cross_deleting_pair(f, &a, &b);
	assert_int_equal(vd_loop_run_once(f->loop, 1000), 1);
	assert_int_equal(a.calls + b.calls, 1);
}

static void deleting_itself_during_dispatch_is_safe(void **state)
{
	struct fixture *f = *state;
	struct hit a = HIT_INIT;

	a.loop = f->loop;
	a.del_fd = f->efd[0];
	assert_int_equal(vd_loop_add(f->loop, f->efd[0], EPOLLIN, on_hit, &a),
			 0);
	kick(f->efd[0]);
	assert_int_equal(vd_loop_run_once(f->loop, 1000), 1);
	kick(f->efd[0]);
	assert_int_equal(vd_loop_run_once(f->loop, 0), 0);
	assert_int_equal(a.calls, 1);
}

/* The stale event of a deleted and re-added fd must reach neither the old
 * callback nor the new one in that round. */
static void readded_fd_during_dispatch_waits_for_next_round(void **state)
{
	struct fixture *f = *state;
	struct hit a = HIT_INIT, b = HIT_INIT, c = HIT_INIT;
	struct hit *first, *second;

	a.readd_fd = f->efd[1];
	a.readd_hit = &c;
	b.readd_fd = f->efd[0];
	b.readd_hit = &c;
	watch_cross_deleting_pair(f, &a, &b);
	assert_int_equal(vd_loop_run_once(f->loop, 1000), 1);
	assert_int_equal(a.calls + b.calls, 1);
	assert_int_equal(c.calls, 0);
	first = a.calls ? &a : &b;
	second = a.calls ? &b : &a;
	/* The re-added fd is still readable: c runs now, second never. */
	assert_int_equal(vd_loop_run_once(f->loop, 1000), 1);
	assert_int_equal(c.calls, 1);
	assert_int_equal(second->calls, 0);
	assert_int_equal(first->calls, 1);
}

static void run_once_with_nothing_ready_times_out(void **state)
{
	struct fixture *f = *state;
	struct timespec t0, t1;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(vd_loop_run_once(f->loop, 30), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 25);
}

static void *stop_later(void *arg)
{
	struct timespec nap = {.tv_nsec = 20 * 1000 * 1000};

	nanosleep(&nap, NULL);
	vd_loop_stop(arg);
	return NULL;
}

static void stop_from_another_thread_ends_run(void **state)
{
	struct fixture *f = *state;
	pthread_t t;

	assert_false(vd_loop_stopping(f->loop));
	assert_int_equal(pthread_create(&t, NULL, stop_later, f->loop), 0);
	assert_int_equal(vd_loop_run(f->loop), 0);
	pthread_join(t, NULL);
	assert_true(vd_loop_stopping(f->loop));
	/* sticky: a stop that raced ahead of run is not lost */
	assert_int_equal(vd_loop_run(f->loop), 0);
}

static struct vd_loop *signal_loop;

static void on_signal(int sig)
{
	(void)sig;
	vd_loop_stop(signal_loop);
}

static void stop_from_a_signal_handler_ends_run_and_keeps_errno(void **state)
{
	struct fixture *f = *state;
	struct sigaction sa = {.sa_handler = on_signal}, old;

	signal_loop = f->loop;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
	errno = EXDEV;
	raise(SIGUSR1);
	assert_int_equal(errno, EXDEV);
	assert_int_equal(vd_loop_run(f->loop), 0);
	sigaction(SIGUSR1, &old, NULL);
}

#define NCALLS 10

struct call_log {
	int order[64];
	int n;
	pthread_t thread[64];
	struct vd_loop *loop;
	int ids[64];
};

static struct call_log clog;

static void record_call(void *opaque)
{
	int id = *(int *)opaque;

	clog.thread[clog.n] = pthread_self();
	clog.order[clog.n++] = id;
}

static void *queue_calls(void *arg)
{
	(void)arg;
	for (int i = 0; i < NCALLS; i++)
		assert_int_equal(
			vd_loop_call(clog.loop, record_call, &clog.ids[i]), 0);
	return NULL;
}

static void calls_from_another_thread_run_on_loop_thread_in_order(void **state)
{
	struct fixture *f = *state;
	pthread_t t;

	memset(&clog, 0, sizeof(clog));
	clog.loop = f->loop;
	for (int i = 0; i < 64; i++)
		clog.ids[i] = i;
	assert_int_equal(pthread_create(&t, NULL, queue_calls, NULL), 0);
	pthread_join(t, NULL);
	while (clog.n < NCALLS)
		assert_true(vd_loop_run_once(f->loop, 1000) > 0);
	for (int i = 0; i < NCALLS; i++) {
		assert_int_equal(clog.order[i], i);
		assert_true(pthread_equal(clog.thread[i], pthread_self()));
	}
}

static void call_queue_full_is_enomem_and_keeps_queued_calls(void **state)
{
	struct fixture *f = *state;
	int queued = 0;

	memset(&clog, 0, sizeof(clog));
	for (int i = 0; i < 64; i++)
		clog.ids[i] = i;
	while (vd_loop_call(f->loop, record_call, &clog.ids[queued]) == 0) {
		queued++;
		assert_true(queued <= 64);
	}
	assert_int_equal(vd_loop_call(f->loop, record_call, &clog.ids[0]),
			 -ENOMEM);
	assert_true(queued >= 8);
	assert_int_equal(vd_loop_run_once(f->loop, 1000), queued);
	assert_int_equal(clog.n, queued);
	for (int i = 0; i < queued; i++)
		assert_int_equal(clog.order[i], i);
	/* room again */
	assert_int_equal(vd_loop_call(f->loop, record_call, &clog.ids[0]), 0);
}

static void requeue_self(void *opaque)
{
	struct fixture *f = opaque;

	clog.n++;
	assert_int_equal(vd_loop_call(f->loop, requeue_self, f), 0);
}

/* A call that queues another cannot keep one round running forever. */
static void call_queued_by_a_call_runs_next_round(void **state)
{
	struct fixture *f = *state;

	memset(&clog, 0, sizeof(clog));
	assert_int_equal(vd_loop_call(f->loop, requeue_self, f), 0);
	assert_int_equal(vd_loop_run_once(f->loop, 1000), 1);
	assert_int_equal(clog.n, 1);
	assert_int_equal(vd_loop_run_once(f->loop, 1000), 1);
	assert_int_equal(clog.n, 2);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(readable_fd_runs_its_callback),
		T(adding_a_watched_fd_again_is_eexist),
		T(del_or_mod_of_unwatched_fd_is_enoent),
		T(deleted_fd_no_longer_runs),
		T(fd_closed_before_del_stays_watched_until_del),
		T(mod_changes_the_events_watched),
		T(deleting_another_ready_fd_during_dispatch_skips_it),
		T(nested_round_keeps_outer_rounds_deleted_watch),
		T(deleting_itself_during_dispatch_is_safe),
		T(readded_fd_during_dispatch_waits_for_next_round),
		T(run_once_with_nothing_ready_times_out),
		T(stop_from_another_thread_ends_run),
		T(stop_from_a_signal_handler_ends_run_and_keeps_errno),
		T(calls_from_another_thread_run_on_loop_thread_in_order),
		T(call_queue_full_is_enomem_and_keeps_queued_calls),
		T(call_queued_by_a_call_runs_next_round),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
