/* Queue threads: start/stop, kicks through an eventfd, one notification per
 * batch (the model only pushes: the core publishes), draining on stop,
 * NEEDS_RESET from a broken chain, kick fd replacement, rekick and dirty
 * logging. The echo model (tests/unit/lib/queue_fixture.c) pops chains
 * through the real virtqueue and the test driver plays the guest. */
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

#include "queue_fixture.h"
#include "virtiod/log.h"

/* ------------------------------------------------------------ tests */

static void start_runs_queue_start_on_queue_thread_and_stop_joins(void **state)
{
	(void)state;
	qf_used_count = 0;
	assert_false(vd_queue_running(qf_q_at(0)));
	qf_start(0);
	assert_true(vd_queue_running(qf_q_at(0)));
	assert_int_equal(atomic_load(&qf_model.starts), 1);
	assert_true(atomic_load(&qf_model.started_elsewhere));
	assert_non_null(vd_queue_loop(qf_q_at(0)));
	assert_int_equal(vd_queue_stop(qf_q_at(0), NULL, NULL, NULL, NULL), 0);
	assert_false(vd_queue_running(qf_q_at(0)));
	assert_int_equal(atomic_load(&qf_model.stops), 1);
	assert_null(vd_queue_loop(qf_q_at(0)));
}

static void start_twice_is_ebusy_and_stop_when_stopped_is_noop(void **state)
{
	struct vd_queue_setup s;
	uint16_t avail = 77;

	(void)state;
	assert_int_equal(vd_queue_stop(qf_q_at(0), &avail, NULL, NULL, NULL),
			 0);
	assert_int_equal(avail, 77);
	assert_int_equal(atomic_load(&qf_model.stops), 0);
	qf_start(0);
	qf_fill_setup(0, &s);
	assert_int_equal(vd_queue_start(qf_q_at(0), &s), -EBUSY);
	assert_int_equal(atomic_load(&qf_model.starts), 1);
}

/* Elements hold the model's largest chain as guest memory may split it
 * (here a table: one piece each, and the slack), or what the setup says. */
static void element_iovecs_come_from_the_model_or_the_setup(void **state)
{
	struct vd_queue_setup s;

	(void)state;
	qf_start(0);
	assert_int_equal(vd_queue_max_iov(qf_q_at(0)), 4 + VD_QUEUE_IOV_SLACK);
	qf_fill_setup(1, &s);
	s.vq.max_iov = 7;
	assert_int_equal(vd_queue_start(qf_q_at(1), &s), 0);
	assert_int_equal(vd_queue_max_iov(qf_q_at(1)), 7);
}

static void queue_size_above_model_max_is_refused(void **state)
{
	struct vd_queue_setup s;

	(void)state;
	qf_fill_setup(0, &s);
	s.vq.num = QSIZE * 2;
	assert_int_equal(vd_queue_start(qf_q_at(0), &s), -EINVAL);
	s.vq.num = 0;
	assert_int_equal(vd_queue_start(qf_q_at(0), &s), -EINVAL);
	assert_false(vd_queue_running(qf_q_at(0)));
	assert_int_equal(atomic_load(&qf_model.starts), 0);
}

/* More failed starts than the memory has reader slots: each failure must
 * give its slot back. */
static void
failed_queue_start_is_returned_and_leaves_nothing_behind(void **state)
{
	struct vd_queue_setup s;

	(void)state;
	qf_model.start_err = -EIO;
	qf_fill_setup(0, &s);
	for (int i = 0; i < 12; i++) {
		assert_int_equal(vd_queue_start(qf_q_at(0), &s), -EIO);
		assert_false(vd_queue_running(qf_q_at(0)));
	}
	qf_model.start_err = 0;
	qf_start(0);
	assert_true(vd_queue_running(qf_q_at(0)));
}

static void kicked_chains_complete_with_one_notify_per_batch(void **state)
{
	(void)state;
	qf_used_count = 0;
	qf_start(0);
	/* the start-up pass over the (empty) ring */
	QF_WAIT_FOR(atomic_load(&qf_model.kicks) == 1);
	for (int i = 0; i < 3; i++)
		qf_add_chain(0, NULL);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 3));
	assert_int_equal(atomic_load(&qf_model.kicks), 2);
	assert_int_equal(atomic_load(&qf_model.batches), 1);
	assert_int_equal(atomic_load(&qf_shim.notify_queue), 1);
	/* An eventfd's counter is left alone (edge-triggered watch): 20
	 * kicks wake the thread at most 20 times, and it does not spin on
	 * the fd staying readable. */
	qf_add_chain(0, NULL);
	for (int i = 0; i < 20; i++)
		qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 4));
	QF_WAIT_FOR(atomic_load(&qf_shim.notify_queue) ==
		    atomic_load(&qf_model.batches));
	qf_nap_ms(10);
	{
		int k = atomic_load(&qf_model.kicks);

		assert_true(k >= 3 && k <= 22);
		qf_nap_ms(50);
		assert_int_equal(atomic_load(&qf_model.kicks), k);
	}
}

/* A kick fd that is not an eventfd (a pipe) is read, or it would fill up
 * and the driver's kicks would block. */
static void pipe_kick_fd_is_drained(void **state)
{
	int p[2];
	uint64_t one = 1, v;

	(void)state;
	qf_used_count = 0;
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	qf_start(0);
	QF_WAIT_FOR(atomic_load(&qf_model.kicks) == 1);
	assert_int_equal(vd_queue_set_kick_fd(qf_q_at(0), p[0]), 0);
	QF_WAIT_FOR(atomic_load(&qf_model.kicks) == 2); /* the fd-change pass */
	for (int n = 1; n <= 3; n++) {
		qf_add_chain(0, NULL);
		assert_int_equal(write(p[1], &one, sizeof(one)), sizeof(one));
		QF_WAIT_FOR(qf_used_reached(0, n));
	}
	qf_nap_ms(10);
	assert_int_equal(read(p[0], &v, sizeof(v)), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(vd_queue_stop(qf_q_at(0), NULL, NULL, NULL, NULL), 0);
	close(p[0]);
	close(p[1]);
}

static void driver_with_interrupts_off_gets_no_notify(void **state)
{
	(void)state;
	qf_used_count = 0;
	td_vq_disable_cb(qf.tq[0]);
	qf_start(0);
	qf_add_chain(0, NULL);
	qf_add_chain(0, NULL);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 2));
	assert_true(atomic_load(&qf_model.batches) >= 1);
	assert_int_equal(atomic_load(&qf_shim.notify_queue), 0);
}

static void stop_drains_in_flight_requests_and_reports_base(void **state)
{
	uint16_t avail = 0, used = 0;
	bool aw = true, uw = true;

	(void)state;
	qf_used_count = 0;
	qf_model.hold = true;
	qf_start(0);
	qf_add_chain(0, NULL);
	qf_add_chain(0, NULL);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(atomic_load(&qf_model.pops) == 2);
	assert_false(qf_used_reached(0, 1));
	assert_int_equal(vd_queue_stop(qf_q_at(0), &avail, &aw, &used, &uw), 0);
	assert_int_equal(atomic_load(&qf_model.stops), 1);
	assert_int_equal(avail, 2);
	assert_int_equal(used, 2);
	assert_false(aw);
	assert_false(uw);
	assert_true(qf_used_reached(0, 2));
	assert_int_equal(atomic_load(&qf_shim.notify_queue), 1);
}

static void restart_from_reported_base_serves_new_chains(void **state)
{
	struct vd_queue_setup s;
	uint16_t avail, used;

	(void)state;
	qf_used_count = 0;
	qf_start(0);
	qf_add_chain(0, NULL);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 1));
	assert_int_equal(vd_queue_stop(qf_q_at(0), &avail, NULL, &used, NULL),
			 0);
	assert_int_equal(avail, 1);
	qf_fill_setup(0, &s);
	s.vq.avail_idx = avail;
	s.vq.used_idx = used;
	assert_int_equal(vd_queue_start(qf_q_at(0), &s), 0);
	qf_add_chain(0, NULL);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 2));
	assert_int_equal(atomic_load(&qf_model.pops), 2);
}

static void broken_chain_sets_needs_reset_and_notifies_config_once(void **state)
{
	struct vd_queue_setup s;
	int kicks;

	(void)state;
	qf_used_count = 0;
	for (int i = 0; i < NQUEUES; i++) {
		qf_fill_setup(i, &s);
		s.hooks.ctx = &qf_shim;
		s.hooks.on_broken = qf_shim_on_broken;
		assert_int_equal(vd_queue_start(qf_q_at(i), &s), 0);
	}
	QF_WAIT_FOR(atomic_load(&qf_model.kicks) == NQUEUES);
	/* a head index past the queue size, on both queues */
	td_vq_split_publish_raw(qf.tq[0], QSIZE + 3);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(atomic_load(&qf_shim.on_broken) == 1);
	assert_true(vd_dev_status(qf.dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
	td_vq_split_publish_raw(qf.tq[1], QSIZE + 5);
	qf_kick(qf.kick_fd[1]);
	QF_WAIT_FOR(atomic_load(&qf_shim.on_broken) == 2);
	assert_int_equal(atomic_load(&qf_shim.notify_config), 1);
	/* the broken queue serves no more kicks */
	kicks = atomic_load(&qf_model.kicks);
	qf_kick(qf.kick_fd[0]);
	qf_nap_ms(30);
	assert_int_equal(atomic_load(&qf_model.kicks), kicks);
	/* nor kicks on a kick fd given after it broke */
	assert_int_equal(vd_queue_set_kick_fd(qf_q_at(0), qf.kick_fd[1]), 0);
	qf_kick(qf.kick_fd[1]);
	qf_nap_ms(30);
	assert_int_equal(atomic_load(&qf_model.kicks), kicks);
	/* it still stops cleanly */
	assert_int_equal(vd_queue_stop(qf_q_at(0), NULL, NULL, NULL, NULL), 0);
	assert_int_equal(atomic_load(&qf_model.stops), 1);
}

static void set_kick_fd_moves_kicks_to_the_new_fd(void **state)
{
	int old_fd = eventfd(0, EFD_NONBLOCK), kicks;
	struct vd_queue_setup s;

	(void)state;
	qf_used_count = 0;
	qf_fill_setup(0, &s);
	s.kick_fd = old_fd;
	assert_int_equal(vd_queue_start(qf_q_at(0), &s), 0);
	QF_WAIT_FOR(atomic_load(&qf_model.kicks) == 1);
	assert_int_equal(vd_queue_set_kick_fd(qf_q_at(0), qf.kick_fd[0]), 0);
	/* the switch itself looks at the ring once (a kick may have hit the
	 * old fd after its last read) */
	QF_WAIT_FOR(atomic_load(&qf_model.kicks) == 2);
	kicks = atomic_load(&qf_model.kicks);
	qf_add_chain(0, NULL);
	qf_kick(old_fd);
	qf_nap_ms(30);
	assert_int_equal(atomic_load(&qf_model.kicks), kicks);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 1));
	close(old_fd);
	assert_int_equal(vd_queue_set_kick_fd(qf_q_at(1), qf.kick_fd[1]),
			 -ESRCH);
}

/* A replacement the loop cannot watch (/dev/null: epoll refuses it) is
 * refused, and the ring keeps being served through the old kick fd. */
static void unwatchable_kick_fd_is_refused_and_the_old_one_kept(void **state)
{
	int bad = open("/dev/null", O_RDONLY | O_CLOEXEC);

	(void)state;
	assert_true(bad >= 0);
	qf_used_count = 0;
	qf_start(0);
	QF_WAIT_FOR(atomic_load(&qf_model.kicks) == 1);
	assert_int_equal(vd_queue_set_kick_fd(qf_q_at(0), bad), -EPERM);
	close(bad);
	qf_add_chain(0, NULL);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 1));
}

static void rekick_serves_the_rest_without_another_kick(void **state)
{
	(void)state;
	qf_used_count = 0;
	qf_model.one_per_kick = true;
	qf_start(0);
	QF_WAIT_FOR(atomic_load(&qf_model.kicks) == 1);
	for (int i = 0; i < 3; i++)
		qf_add_chain(0, NULL);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 3));
	assert_true(atomic_load(&qf_model.kicks) >= 4);
	assert_int_equal(atomic_load(&qf_model.pops), 3);
}

static void shim_hooks_and_dirty_logging_reach_the_shim(void **state)
{
	struct vd_queue_setup s;
	int logs;

	(void)state;
	qf_used_count = 0;
	qf_fill_setup(0, &s);
	s.hooks.ctx = &qf_shim;
	s.hooks.on_pop = qf_shim_on_pop;
	s.hooks.on_push = qf_shim_on_push;
	s.hooks.log_write = qf_shim_log_write;
	assert_int_equal(vd_queue_start(qf_q_at(0), &s), 0);
	qf_add_chain(0, NULL);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 1));
	assert_int_equal(atomic_load(&qf_shim.on_pop), 1);
	assert_int_equal(atomic_load(&qf_shim.on_push), 1);
	assert_int_equal(atomic_load(&qf_shim.log_writes), 0);

	vd_queue_set_logging(qf_q_at(0), true);
	qf_add_chain(0, NULL);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 2));
	assert_true(atomic_load(&qf_shim.log_writes) > 0);

	/* remembered across a restart */
	assert_int_equal(
		vd_queue_stop(qf_q_at(0), &s.vq.avail_idx, NULL, NULL, NULL),
		0);
	s.vq.used_idx_valid = false;
	assert_int_equal(vd_queue_start(qf_q_at(0), &s), 0);
	logs = atomic_load(&qf_shim.log_writes);
	qf_add_chain(0, NULL);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 3));
	assert_true(atomic_load(&qf_shim.log_writes) > logs);

	vd_queue_set_logging(qf_q_at(0), false);
	logs = atomic_load(&qf_shim.log_writes);
	qf_add_chain(0, NULL);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 4));
	assert_int_equal(atomic_load(&qf_shim.log_writes), logs);
}

#define T(name) cmocka_unit_test_setup_teardown(name, qf_setup, qf_teardown)

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
		T(unwatchable_kick_fd_is_refused_and_the_old_one_kept),
		T(rekick_serves_the_rest_without_another_kick),
		T(shim_hooks_and_dirty_logging_reach_the_shim),
		T(pipe_kick_fd_is_drained),
	};

	vd_log_set_level(VD_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
