/* Queue threads: start/stop, kicks through an eventfd, one notification per
 * batch, draining on stop, NEEDS_RESET from a broken chain, kick fd
 * replacement, rekick, dirty logging, and the guest-memory grace with a
 * memory-table writer. A tiny model defined here pops chains through the
 * real virtqueue and the test driver plays the guest. */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_driver.h"
#include "virtiod/device.h"
#include "virtiod/log.h"

#define QSIZE	64
#define NQUEUES 2
#define BUF_LEN 16
#define WAIT_MS 5000

/* ------------------------------------------------------------ the model */

struct qstate {
	struct vd_queue *q;
	int release_fd; /* the test writes it: complete what is held */
	struct vd_vq_elem *held[QSIZE];
	unsigned nheld;
};

struct echo {
	struct vd_model m;
	/* behaviour, set by the test before starting */
	bool hold;	    /* keep popped chains until release_fd fires */
	bool one_per_kick;  /* pop one chain, then vd_queue_rekick */
	atomic_bool refuse; /* pop nothing (a model waiting for a reset) */
	int start_err;
	/* observations */
	atomic_int starts, stops, kicks, pops, batches;
	atomic_bool started_elsewhere; /* queue_start not on the test thread */
	atomic_int seq;		       /* orders events across threads */
	atomic_int completed_seq;
	struct qstate qs[NQUEUES];
};

static struct echo echo;
static pthread_t test_thread;

static void complete(struct vd_queue *q, struct vd_vq_elem *e)
{
	uint32_t written = 0;

	for (unsigned i = 0; i < e->n_write; i++) {
		memset(e->write_iov[i].iov_base, 0xab, e->write_iov[i].iov_len);
		written += (uint32_t)e->write_iov[i].iov_len;
	}
	vd_vq_push(vd_queue_vq(q), e, written);
}

static void complete_held(struct qstate *s)
{
	if (!s->nheld)
		return;
	for (unsigned i = 0; i < s->nheld; i++)
		complete(s->q, s->held[i]);
	s->nheld = 0;
	vd_queue_complete_batch(s->q);
	atomic_fetch_add(&echo.batches, 1);
	atomic_store(&echo.completed_seq, atomic_fetch_add(&echo.seq, 1) + 1);
}

static void on_release(void *opaque, int fd, uint32_t events)
{
	uint64_t v;

	(void)events;
	if (read(fd, &v, sizeof(v)) == sizeof(v))
		complete_held(opaque);
}

static int echo_queue_start(void *model, struct vd_queue *q)
{
	struct qstate *s = &echo.qs[vd_queue_index(q)];

	(void)model;
	atomic_fetch_add(&echo.starts, 1);
	if (!pthread_equal(pthread_self(), test_thread))
		atomic_store(&echo.started_elsewhere, true);
	if (echo.start_err)
		return echo.start_err;
	s->q = q;
	s->nheld = 0;
	vd_queue_set_model_data(q, s);
	return vd_loop_add(vd_queue_loop(q), s->release_fd, EPOLLIN, on_release,
			   s);
}

static void echo_queue_kick(void *model, struct vd_queue *q)
{
	struct qstate *s = vd_queue_model_data(q);
	struct vd_vq_elem *e;
	bool pushed = false;

	(void)model;
	atomic_fetch_add(&echo.kicks, 1);
	if (atomic_load(&echo.refuse))
		return;
	while (vd_vq_pop(vd_queue_vq(q), &e) == 1) {
		atomic_fetch_add(&echo.pops, 1);
		if (echo.hold) {
			s->held[s->nheld++] = e;
		} else {
			complete(q, e);
			pushed = true;
		}
		if (echo.one_per_kick) {
			vd_queue_rekick(q);
			break;
		}
	}
	if (pushed) {
		vd_queue_complete_batch(q);
		atomic_fetch_add(&echo.batches, 1);
	}
}

static void echo_queue_stop(void *model, struct vd_queue *q)
{
	struct qstate *s = vd_queue_model_data(q);

	(void)model;
	atomic_fetch_add(&echo.stops, 1);
	complete_held(s);
	vd_loop_del(vd_queue_loop(q), s->release_fd);
}

static void echo_get_config(void *model, uint32_t off, void *buf, uint32_t len)
{
	(void)model;
	(void)off;
	memset(buf, 0, len);
}

static const struct vd_device_ops echo_ops = {
	.get_config = echo_get_config,
	.queue_start = echo_queue_start,
	.queue_kick = echo_queue_kick,
	.queue_stop = echo_queue_stop,
};

/* ------------------------------------------------------------ the shim */

struct shim {
	atomic_int notify_queue, notify_config;
	atomic_int on_broken, on_pop, on_push, log_writes;
	atomic_uint_least64_t last_log_gpa;
};

static struct shim shim;

static void shim_notify_queue(void *ctx, struct vd_queue *q)
{
	(void)q;
	atomic_fetch_add(&((struct shim *)ctx)->notify_queue, 1);
}

static void shim_notify_config(void *ctx)
{
	atomic_fetch_add(&((struct shim *)ctx)->notify_config, 1);
}

static const struct vd_dev_shim_ops shim_ops = {
	.notify_queue = shim_notify_queue,
	.notify_config = shim_notify_config,
};

static void shim_on_broken(void *ctx, struct vd_vq *vq, enum vd_vq_error err,
			   const char *reason)
{
	(void)vq;
	(void)err;
	(void)reason;
	atomic_fetch_add(&((struct shim *)ctx)->on_broken, 1);
}

static void shim_on_pop(void *ctx, const struct vd_vq_elem *e)
{
	(void)e;
	atomic_fetch_add(&((struct shim *)ctx)->on_pop, 1);
}

static void shim_on_push(void *ctx, const struct vd_vq_elem *e)
{
	(void)e;
	atomic_fetch_add(&((struct shim *)ctx)->on_push, 1);
}

static void shim_log_write(void *ctx, uint64_t gpa, uint64_t len)
{
	(void)len;
	atomic_store(&((struct shim *)ctx)->last_log_gpa, gpa);
	atomic_fetch_add(&((struct shim *)ctx)->log_writes, 1);
}

/* ------------------------------------------------------------ fixture */

struct fixture {
	struct td_mem *mem;
	struct td_vq *tq[NQUEUES];
	struct vd_dev *dev;
	int kick_fd[NQUEUES];
};

static struct fixture fx;

static int setup(void **state)
{
	memset(&fx, 0, sizeof(fx));
	memset(&echo, 0, sizeof(echo));
	memset(&shim, 0, sizeof(shim));
	test_thread = pthread_self();
	echo.m = (struct vd_model){
		.ops = &echo_ops,
		.type_name = "echo",
		.device_id = 4,
		.features = 1ull << VIRTIO_F_VERSION_1,
		.num_queues = NQUEUES,
		.max_queue_size = QSIZE,
		.config_size = 8,
		.max_descs = 4,
	};
	fx.mem = td_mem_new(1 << 20, 2);
	for (int i = 0; i < NQUEUES; i++) {
		fx.tq[i] = td_vq_new(fx.mem, VD_VQ_SPLIT, QSIZE, false, false);
		fx.kick_fd[i] = eventfd(0, EFD_NONBLOCK);
		echo.qs[i].release_fd = eventfd(0, EFD_NONBLOCK);
		assert_true(fx.kick_fd[i] >= 0 && echo.qs[i].release_fd >= 0);
	}
	fx.dev = vd_dev_new(&echo.m, td_mem_vd(fx.mem), &shim_ops, &shim,
			    "echo0");
	assert_non_null(fx.dev);
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vd_dev_free(fx.dev); /* stops every queue */
	for (int i = 0; i < NQUEUES; i++) {
		td_vq_free(fx.tq[i]);
		close(fx.kick_fd[i]);
		close(echo.qs[i].release_fd);
	}
	td_mem_free(fx.mem);
	return 0;
}

static struct vd_queue *q_at(int i)
{
	return vd_dev_queue(fx.dev, (unsigned)i);
}

static void fill_setup(int i, struct vd_queue_setup *s)
{
	memset(s, 0, sizeof(*s));
	td_vq_fill_config(fx.tq[i], &s->vq);
	s->vq.max_iov = 0; /* from the model */
	s->kick_fd = fx.kick_fd[i];
}

static void start(int i)
{
	struct vd_queue_setup s;

	fill_setup(i, &s);
	assert_int_equal(vd_queue_start(q_at(i), &s), 0);
}

static void kick(int fd)
{
	uint64_t one = 1;

	assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

static void nap_ms(long ms)
{
	struct timespec t = {.tv_sec = ms / 1000,
			     .tv_nsec = (ms % 1000) * 1000000};

	nanosleep(&t, NULL);
}

/* Poll a condition another thread makes true; fail after WAIT_MS. */
#define WAIT_FOR(cond)                                                         \
	do {                                                                   \
		int waited_ = 0;                                               \
		while (!(cond)) {                                              \
			assert_true(waited_++ < WAIT_MS);                      \
			nap_ms(1);                                             \
		}                                                              \
	} while (0)

/* One chain: a readable and a writable buffer. */
static void add_chain(int i, void *token)
{
	struct td_buf b[2] = {
		{.gpa = td_mem_alloc(fx.mem, BUF_LEN, 16), .len = BUF_LEN},
		{.gpa = td_mem_alloc(fx.mem, BUF_LEN, 16),
		 .len = BUF_LEN,
		 .write = true},
	};

	assert_int_equal(td_vq_add(fx.tq[i], b, 2, false, token), 0);
}

static int used_count;

/* Collect used entries on queue i until `n` have come back in total. */
static bool used_reached(int i, int n)
{
	void *token;
	uint32_t len;

	while (td_vq_get_used(fx.tq[i], &token, &len) == 1) {
		assert_int_equal(len, BUF_LEN);
		used_count++;
	}
	return used_count >= n;
}

/* ------------------------------------------------------------ tests */

static void start_runs_queue_start_on_queue_thread_and_stop_joins(void **state)
{
	(void)state;
	used_count = 0;
	assert_false(vd_queue_running(q_at(0)));
	start(0);
	assert_true(vd_queue_running(q_at(0)));
	assert_int_equal(atomic_load(&echo.starts), 1);
	assert_true(atomic_load(&echo.started_elsewhere));
	assert_non_null(vd_queue_loop(q_at(0)));
	assert_int_equal(vd_queue_stop(q_at(0), NULL, NULL, NULL, NULL), 0);
	assert_false(vd_queue_running(q_at(0)));
	assert_int_equal(atomic_load(&echo.stops), 1);
	assert_null(vd_queue_loop(q_at(0)));
}

static void start_twice_is_ebusy_and_stop_when_stopped_is_noop(void **state)
{
	struct vd_queue_setup s;
	uint16_t avail = 77;

	(void)state;
	assert_int_equal(vd_queue_stop(q_at(0), &avail, NULL, NULL, NULL), 0);
	assert_int_equal(avail, 77);
	assert_int_equal(atomic_load(&echo.stops), 0);
	start(0);
	fill_setup(0, &s);
	assert_int_equal(vd_queue_start(q_at(0), &s), -EBUSY);
	assert_int_equal(atomic_load(&echo.starts), 1);
}

/* Elements hold the model's largest chain as guest memory may split it
 * (here a table: one piece each, and the slack), or what the setup says. */
static void element_iovecs_come_from_the_model_or_the_setup(void **state)
{
	struct vd_queue_setup s;

	(void)state;
	start(0);
	assert_int_equal(vd_queue_max_iov(q_at(0)), 4 + VD_QUEUE_IOV_SLACK);
	fill_setup(1, &s);
	s.vq.max_iov = 7;
	assert_int_equal(vd_queue_start(q_at(1), &s), 0);
	assert_int_equal(vd_queue_max_iov(q_at(1)), 7);
}

static void queue_size_above_model_max_is_refused(void **state)
{
	struct vd_queue_setup s;

	(void)state;
	fill_setup(0, &s);
	s.vq.num = QSIZE * 2;
	assert_int_equal(vd_queue_start(q_at(0), &s), -EINVAL);
	s.vq.num = 0;
	assert_int_equal(vd_queue_start(q_at(0), &s), -EINVAL);
	assert_false(vd_queue_running(q_at(0)));
	assert_int_equal(atomic_load(&echo.starts), 0);
}

/* More failed starts than the memory has reader slots: each failure must
 * give its slot back. */
static void
failed_queue_start_is_returned_and_leaves_nothing_behind(void **state)
{
	struct vd_queue_setup s;

	(void)state;
	echo.start_err = -EIO;
	fill_setup(0, &s);
	for (int i = 0; i < 12; i++) {
		assert_int_equal(vd_queue_start(q_at(0), &s), -EIO);
		assert_false(vd_queue_running(q_at(0)));
	}
	echo.start_err = 0;
	start(0);
	assert_true(vd_queue_running(q_at(0)));
}

static void kicked_chains_complete_with_one_notify_per_batch(void **state)
{
	(void)state;
	used_count = 0;
	start(0);
	/* the start-up pass over the (empty) ring */
	WAIT_FOR(atomic_load(&echo.kicks) == 1);
	for (int i = 0; i < 3; i++)
		add_chain(0, NULL);
	kick(fx.kick_fd[0]);
	WAIT_FOR(used_reached(0, 3));
	assert_int_equal(atomic_load(&echo.kicks), 2);
	assert_int_equal(atomic_load(&echo.batches), 1);
	assert_int_equal(atomic_load(&shim.notify_queue), 1);
	/* An eventfd's counter is left alone (edge-triggered watch): 20
	 * kicks wake the thread at most 20 times, and it does not spin on
	 * the fd staying readable. */
	add_chain(0, NULL);
	for (int i = 0; i < 20; i++)
		kick(fx.kick_fd[0]);
	WAIT_FOR(used_reached(0, 4));
	WAIT_FOR(atomic_load(&shim.notify_queue) == atomic_load(&echo.batches));
	nap_ms(10);
	{
		int k = atomic_load(&echo.kicks);

		assert_true(k >= 3 && k <= 22);
		nap_ms(50);
		assert_int_equal(atomic_load(&echo.kicks), k);
	}
}

/* A kick fd that is not an eventfd (a pipe) is read, or it would fill up
 * and the driver's kicks would block. */
static void pipe_kick_fd_is_drained(void **state)
{
	int p[2];
	uint64_t one = 1, v;

	(void)state;
	used_count = 0;
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	start(0);
	WAIT_FOR(atomic_load(&echo.kicks) == 1);
	assert_int_equal(vd_queue_set_kick_fd(q_at(0), p[0]), 0);
	WAIT_FOR(atomic_load(&echo.kicks) == 2); /* the fd-change pass */
	for (int n = 1; n <= 3; n++) {
		add_chain(0, NULL);
		assert_int_equal(write(p[1], &one, sizeof(one)), sizeof(one));
		WAIT_FOR(used_reached(0, n));
	}
	nap_ms(10);
	assert_int_equal(read(p[0], &v, sizeof(v)), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(vd_queue_stop(q_at(0), NULL, NULL, NULL, NULL), 0);
	close(p[0]);
	close(p[1]);
}

static void driver_with_interrupts_off_gets_no_notify(void **state)
{
	(void)state;
	used_count = 0;
	td_vq_disable_cb(fx.tq[0]);
	start(0);
	add_chain(0, NULL);
	add_chain(0, NULL);
	kick(fx.kick_fd[0]);
	WAIT_FOR(used_reached(0, 2));
	assert_true(atomic_load(&echo.batches) >= 1);
	assert_int_equal(atomic_load(&shim.notify_queue), 0);
}

static void stop_drains_in_flight_requests_and_reports_base(void **state)
{
	uint16_t avail = 0, used = 0;
	bool aw = true, uw = true;

	(void)state;
	used_count = 0;
	echo.hold = true;
	start(0);
	add_chain(0, NULL);
	add_chain(0, NULL);
	kick(fx.kick_fd[0]);
	WAIT_FOR(atomic_load(&echo.pops) == 2);
	assert_false(used_reached(0, 1));
	assert_int_equal(vd_queue_stop(q_at(0), &avail, &aw, &used, &uw), 0);
	assert_int_equal(atomic_load(&echo.stops), 1);
	assert_int_equal(avail, 2);
	assert_int_equal(used, 2);
	assert_false(aw);
	assert_false(uw);
	assert_true(used_reached(0, 2));
	assert_int_equal(atomic_load(&shim.notify_queue), 1);
}

static void restart_from_reported_base_serves_new_chains(void **state)
{
	struct vd_queue_setup s;
	uint16_t avail, used;

	(void)state;
	used_count = 0;
	start(0);
	add_chain(0, NULL);
	kick(fx.kick_fd[0]);
	WAIT_FOR(used_reached(0, 1));
	assert_int_equal(vd_queue_stop(q_at(0), &avail, NULL, &used, NULL), 0);
	assert_int_equal(avail, 1);
	fill_setup(0, &s);
	s.vq.avail_idx = avail;
	s.vq.used_idx = used;
	assert_int_equal(vd_queue_start(q_at(0), &s), 0);
	add_chain(0, NULL);
	kick(fx.kick_fd[0]);
	WAIT_FOR(used_reached(0, 2));
	assert_int_equal(atomic_load(&echo.pops), 2);
}

static void broken_chain_sets_needs_reset_and_notifies_config_once(void **state)
{
	struct vd_queue_setup s;
	int kicks;

	(void)state;
	used_count = 0;
	for (int i = 0; i < NQUEUES; i++) {
		fill_setup(i, &s);
		s.hooks.ctx = &shim;
		s.hooks.on_broken = shim_on_broken;
		assert_int_equal(vd_queue_start(q_at(i), &s), 0);
	}
	WAIT_FOR(atomic_load(&echo.kicks) == NQUEUES);
	/* a head index past the queue size, on both queues */
	td_vq_split_publish_raw(fx.tq[0], QSIZE + 3);
	kick(fx.kick_fd[0]);
	WAIT_FOR(atomic_load(&shim.on_broken) == 1);
	assert_true(vd_dev_status(fx.dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
	td_vq_split_publish_raw(fx.tq[1], QSIZE + 5);
	kick(fx.kick_fd[1]);
	WAIT_FOR(atomic_load(&shim.on_broken) == 2);
	assert_int_equal(atomic_load(&shim.notify_config), 1);
	/* the broken queue serves no more kicks */
	kicks = atomic_load(&echo.kicks);
	kick(fx.kick_fd[0]);
	nap_ms(30);
	assert_int_equal(atomic_load(&echo.kicks), kicks);
	/* nor kicks on a kick fd given after it broke */
	assert_int_equal(vd_queue_set_kick_fd(q_at(0), fx.kick_fd[1]), 0);
	kick(fx.kick_fd[1]);
	nap_ms(30);
	assert_int_equal(atomic_load(&echo.kicks), kicks);
	/* it still stops cleanly */
	assert_int_equal(vd_queue_stop(q_at(0), NULL, NULL, NULL, NULL), 0);
	assert_int_equal(atomic_load(&echo.stops), 1);
}

static void set_kick_fd_moves_kicks_to_the_new_fd(void **state)
{
	int old_fd = eventfd(0, EFD_NONBLOCK), kicks;
	struct vd_queue_setup s;

	(void)state;
	used_count = 0;
	fill_setup(0, &s);
	s.kick_fd = old_fd;
	assert_int_equal(vd_queue_start(q_at(0), &s), 0);
	WAIT_FOR(atomic_load(&echo.kicks) == 1);
	assert_int_equal(vd_queue_set_kick_fd(q_at(0), fx.kick_fd[0]), 0);
	/* the switch itself looks at the ring once (a kick may have hit the
	 * old fd after its last read) */
	WAIT_FOR(atomic_load(&echo.kicks) == 2);
	kicks = atomic_load(&echo.kicks);
	add_chain(0, NULL);
	kick(old_fd);
	nap_ms(30);
	assert_int_equal(atomic_load(&echo.kicks), kicks);
	kick(fx.kick_fd[0]);
	WAIT_FOR(used_reached(0, 1));
	close(old_fd);
	assert_int_equal(vd_queue_set_kick_fd(q_at(1), fx.kick_fd[1]), -ESRCH);
}

static void rekick_serves_the_rest_without_another_kick(void **state)
{
	(void)state;
	used_count = 0;
	echo.one_per_kick = true;
	start(0);
	WAIT_FOR(atomic_load(&echo.kicks) == 1);
	for (int i = 0; i < 3; i++)
		add_chain(0, NULL);
	kick(fx.kick_fd[0]);
	WAIT_FOR(used_reached(0, 3));
	assert_true(atomic_load(&echo.kicks) >= 4);
	assert_int_equal(atomic_load(&echo.pops), 3);
}

static void shim_hooks_and_dirty_logging_reach_the_shim(void **state)
{
	struct vd_queue_setup s;
	int logs;

	(void)state;
	used_count = 0;
	fill_setup(0, &s);
	s.hooks.ctx = &shim;
	s.hooks.on_pop = shim_on_pop;
	s.hooks.on_push = shim_on_push;
	s.hooks.log_write = shim_log_write;
	assert_int_equal(vd_queue_start(q_at(0), &s), 0);
	add_chain(0, NULL);
	kick(fx.kick_fd[0]);
	WAIT_FOR(used_reached(0, 1));
	assert_int_equal(atomic_load(&shim.on_pop), 1);
	assert_int_equal(atomic_load(&shim.on_push), 1);
	assert_int_equal(atomic_load(&shim.log_writes), 0);

	vd_queue_set_logging(q_at(0), true);
	add_chain(0, NULL);
	kick(fx.kick_fd[0]);
	WAIT_FOR(used_reached(0, 2));
	assert_true(atomic_load(&shim.log_writes) > 0);

	/* remembered across a restart */
	assert_int_equal(
		vd_queue_stop(q_at(0), &s.vq.avail_idx, NULL, NULL, NULL), 0);
	s.vq.used_idx_valid = false;
	assert_int_equal(vd_queue_start(q_at(0), &s), 0);
	logs = atomic_load(&shim.log_writes);
	add_chain(0, NULL);
	kick(fx.kick_fd[0]);
	WAIT_FOR(used_reached(0, 3));
	assert_true(atomic_load(&shim.log_writes) > logs);

	vd_queue_set_logging(q_at(0), false);
	logs = atomic_load(&shim.log_writes);
	add_chain(0, NULL);
	kick(fx.kick_fd[0]);
	WAIT_FOR(used_reached(0, 4));
	assert_int_equal(atomic_load(&shim.log_writes), logs);
}

/* --- notification suppression and busy polling */

static double cpu_seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void start_polling(int i, unsigned poll_us)
{
	struct vd_queue_setup s;

	fill_setup(i, &s);
	s.poll_us = poll_us;
	assert_int_equal(vd_queue_start(q_at(i), &s), 0);
}

/* The driver is asked not to kick while the thread polls, and chains it
 * adds meanwhile are served all the same; once the window has passed the
 * thread asks for kicks again. */
static void polling_serves_chains_added_without_a_kick(void **state)
{
	int kicks;

	(void)state;
	used_count = 0;
	start_polling(0, 300000);
	WAIT_FOR(atomic_load(&echo.kicks) == 1);
	nap_ms(400); /* the start-up pass's window */
	add_chain(0, NULL);
	assert_true(td_vq_kick_needed(fx.tq[0]));
	kick(fx.kick_fd[0]);
	WAIT_FOR(used_reached(0, 1));
	for (int n = 2; n <= 4; n++) {
		add_chain(0, NULL);
		assert_false(td_vq_kick_needed(fx.tq[0]));
		WAIT_FOR(used_reached(0, n));
	}
	/* Idle past the window: kicks are wanted again. */
	nap_ms(500);
	kicks = atomic_load(&echo.kicks);
	add_chain(0, NULL);
	assert_true(td_vq_kick_needed(fx.tq[0]));
	nap_ms(30);
	assert_int_equal(atomic_load(&echo.kicks), kicks);
	assert_false(used_reached(0, 5));
	kick(fx.kick_fd[0]);
	WAIT_FOR(used_reached(0, 5));
}

/* Polling costs nothing once the window has passed: the thread sleeps. */
static void idle_polling_queue_sleeps(void **state)
{
	double t0;

	(void)state;
	used_count = 0;
	start_polling(0, 100000);
	add_chain(0, NULL);
	kick(fx.kick_fd[0]);
	WAIT_FOR(used_reached(0, 1));
	nap_ms(200); /* the window (100 ms) passes */
	t0 = cpu_seconds();
	nap_ms(1000);
	assert_true(cpu_seconds() - t0 < 0.05);
}

/* The default set for the daemon (--poll-us) applies where the shim's
 * setup leaves poll_us at 0. */
static void default_poll_us_applies_to_queues_started_later(void **state)
{
	(void)state;
	used_count = 0;
	vd_queue_set_default_poll_us(300000);
	start(0);
	vd_queue_set_default_poll_us(0);
	add_chain(0, NULL);
	kick(fx.kick_fd[0]);
	WAIT_FOR(used_reached(0, 1));
	add_chain(0, NULL);
	assert_false(td_vq_kick_needed(fx.tq[0]));
	WAIT_FOR(used_reached(0, 2));
}

/* A model that leaves chains in the ring (waiting for a reset) gets them
 * again on the driver's next kick, but the thread neither spins on them
 * nor keeps polling them. */
static void model_that_stops_popping_does_not_make_the_thread_spin(void **state)
{
	(void)state;
	for (int poll = 0; poll < 2; poll++) {
		double t0;
		int kicks;

		used_count = 0;
		atomic_store(&echo.kicks, 0);
		atomic_store(&echo.refuse, true);
		start_polling(0, poll ? 20000 : 0);
		WAIT_FOR(atomic_load(&echo.kicks) >= 1);
		add_chain(0, NULL);
		kick(fx.kick_fd[0]);
		nap_ms(100);
		kicks = atomic_load(&echo.kicks);
		assert_true(kicks <= 5);
		t0 = cpu_seconds();
		nap_ms(300);
		assert_int_equal(atomic_load(&echo.kicks), kicks);
		assert_true(cpu_seconds() - t0 < 0.05);
		/* once the model serves again, the next kick gets it all */
		atomic_store(&echo.refuse, false);
		kick(fx.kick_fd[0]);
		WAIT_FOR(used_reached(0, 1));
		assert_int_equal(vd_queue_stop(q_at(0), NULL, NULL, NULL, NULL),
				 0);
		td_vq_free(fx.tq[0]);
		fx.tq[0] = td_vq_new(fx.mem, VD_VQ_SPLIT, QSIZE, false, false);
	}
}

/* --- memory grace */

static atomic_int released_regions;

static void count_release(struct vd_mem_region *r)
{
	(void)r;
	atomic_fetch_add(&released_regions, 1);
}

static unsigned td_regions(struct vd_mem_region *r,
			   void (*release)(struct vd_mem_region *))
{
	unsigned n = td_mem_nregions(fx.mem);

	for (unsigned i = 0; i < n; i++) {
		uint64_t gpa = td_mem_region_gpa(fx.mem, i);
		uint64_t end = i + 1 < n ? td_mem_region_gpa(fx.mem, i + 1)
					 : TD_GPA_BASE + td_mem_size(fx.mem);

		r[i] = (struct vd_mem_region){.gpa = gpa,
					      .size = end - gpa,
					      .hva = td_mem_hva(fx.mem, gpa),
					      .fd = -1,
					      .release = release};
	}
	return n;
}

struct writer {
	struct vd_mem_region r[8];
	unsigned n;
	atomic_bool done;
	int done_seq;
	int ret;
};

/* No cmocka assertions here: they must run on the test's thread. */
static void *set_regions_thread(void *arg)
{
	struct writer *w = arg;

	w->ret = vd_mem_set_regions(td_mem_vd(fx.mem), w->r, w->n);
	w->done_seq = atomic_fetch_add(&echo.seq, 1) + 1;
	atomic_store(&w->done, true);
	return NULL;
}

static void memory_table_change_waits_for_in_flight_requests(void **state)
{
	struct vd_mem_region tracked[8];
	struct writer w = {.n = 0};
	unsigned n;
	pthread_t t;

	(void)state;
	used_count = 0;
	atomic_store(&released_regions, 0);
	/* Regions whose release we can see, installed while idle. */
	n = td_regions(tracked, count_release);
	assert_int_equal(vd_mem_set_regions(td_mem_vd(fx.mem), tracked, n), 0);
	w.n = td_regions(w.r, NULL);

	echo.hold = true;
	start(0);
	add_chain(0, NULL);
	kick(fx.kick_fd[0]);
	WAIT_FOR(atomic_load(&echo.pops) == 1);

	/* The writer swaps the table while a request is in flight. */
	assert_int_equal(pthread_create(&t, NULL, set_regions_thread, &w), 0);
	WAIT_FOR(vd_mem_grace_pending(td_mem_vd(fx.mem)));
	nap_ms(50);
	assert_false(atomic_load(&w.done));
	assert_int_equal(atomic_load(&released_regions), 0);

	/* New work waits too, so a busy queue cannot starve the writer. */
	add_chain(0, NULL);
	kick(fx.kick_fd[0]);
	nap_ms(50);
	assert_int_equal(atomic_load(&echo.pops), 1);
	assert_false(atomic_load(&w.done));

	/* The request completes; then the writer may free the old table. */
	kick(echo.qs[0].release_fd);
	pthread_join(t, NULL);
	assert_int_equal(w.ret, 0);
	assert_true(w.done_seq > atomic_load(&echo.completed_seq));
	assert_int_equal(atomic_load(&released_regions), n);
	assert_true(used_reached(0, 1));

	/* and the deferred kick is served afterwards */
	WAIT_FOR(atomic_load(&echo.pops) == 2);
	kick(echo.qs[0].release_fd);
	WAIT_FOR(used_reached(0, 2));
}

/* An idle queue thread never holds the writer up. */
static void memory_table_change_on_idle_queue_is_not_delayed(void **state)
{
	struct vd_mem_region r[8];
	unsigned n = td_regions(r, NULL);
	struct timespec t0, t1;
	long ms;

	(void)state;
	start(0);
	start(1);
	WAIT_FOR(atomic_load(&echo.kicks) == 2);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(vd_mem_set_regions(td_mem_vd(fx.mem), r, n), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms < 1000);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(start_runs_queue_start_on_queue_thread_and_stop_joins),
		T(start_twice_is_ebusy_and_stop_when_stopped_is_noop),
		T(element_iovecs_come_from_the_model_or_the_setup),
		T(queue_size_above_model_max_is_refused),
		T(failed_queue_start_is_returned_and_leaves_nothing_behind),
		T(kicked_chains_complete_with_one_notify_per_batch),
		T(driver_with_interrupts_off_gets_no_notify),
		T(stop_drains_in_flight_requests_and_reports_base),
		T(restart_from_reported_base_serves_new_chains),
		T(broken_chain_sets_needs_reset_and_notifies_config_once),
		T(set_kick_fd_moves_kicks_to_the_new_fd),
		T(rekick_serves_the_rest_without_another_kick),
		T(shim_hooks_and_dirty_logging_reach_the_shim),
		T(memory_table_change_waits_for_in_flight_requests),
		T(memory_table_change_on_idle_queue_is_not_delayed),
		T(pipe_kick_fd_is_drained),
		T(polling_serves_chains_added_without_a_kick),
		T(idle_polling_queue_sleeps),
		T(default_poll_us_applies_to_queues_started_later),
		T(model_that_stops_popping_does_not_make_the_thread_spin),
	};

	vd_log_set_level(VD_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
