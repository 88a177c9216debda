/* Queue threads, continued: driver notifications off while busy polling,
 * a model that stops popping, and the guest-memory grace with a
 * memory-table writer (vd_vq_pop gives nothing while it waits). The echo
 * model and the fixture are tests/unit/lib/queue_fixture.c. */
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

	qf_fill_setup(i, &s);
	s.poll_us = poll_us;
	assert_int_equal(vd_queue_start(qf_q_at(i), &s), 0);
}

/* The driver is asked not to kick while the thread polls, and chains it
 * adds meanwhile are served all the same; once the window has passed the
 * thread asks for kicks again. */
static void polling_serves_chains_added_without_a_kick(void **state)
{
	int kicks;

	(void)state;
	qf_used_count = 0;
	/* The longest window: the chains below must come inside it even
	 * when a loaded machine stalls this thread (a timing margin only
	 * against stalls of a second). */
	start_polling(0, 1000000);
	QF_WAIT_FOR(atomic_load(&qf_model.kicks) == 1);
	qf_nap_ms(1200); /* the start-up pass's window */
	qf_add_chain(0, NULL);
	assert_true(td_vq_kick_needed(qf.tq[0]));
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 1));
	for (int n = 2; n <= 4; n++) {
		qf_add_chain(0, NULL);
		assert_false(td_vq_kick_needed(qf.tq[0]));
		QF_WAIT_FOR(qf_used_reached(0, n));
	}
	/* Idle past the window: kicks are wanted again. */
	qf_nap_ms(1200);
	kicks = atomic_load(&qf_model.kicks);
	qf_add_chain(0, NULL);
	assert_true(td_vq_kick_needed(qf.tq[0]));
	qf_nap_ms(30);
	assert_int_equal(atomic_load(&qf_model.kicks), kicks);
	assert_false(qf_used_reached(0, 5));
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 5));
}

/* Polling costs nothing once the window has passed: the thread sleeps. */
static void idle_polling_queue_sleeps(void **state)
{
	double t0;

	(void)state;
	qf_used_count = 0;
	start_polling(0, 100000);
	qf_add_chain(0, NULL);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 1));
	qf_nap_ms(200); /* the window (100 ms) passes */
	t0 = cpu_seconds();
	qf_nap_ms(1000);
	assert_true(cpu_seconds() - t0 < 0.05);
}

/* The default set for the daemon (--poll-us) applies where the shim's
 * setup leaves poll_us at 0. */
static void default_poll_us_applies_to_queues_started_later(void **state)
{
	(void)state;
	qf_used_count = 0;
	vd_queue_set_default_poll_us(300000);
	qf_start(0);
	vd_queue_set_default_poll_us(0);
	qf_add_chain(0, NULL);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 1));
	qf_add_chain(0, NULL);
	assert_false(td_vq_kick_needed(qf.tq[0]));
	QF_WAIT_FOR(qf_used_reached(0, 2));
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

		qf_used_count = 0;
		atomic_store(&qf_model.kicks, 0);
		atomic_store(&qf_model.refuse, true);
		start_polling(0, poll ? 20000 : 0);
		QF_WAIT_FOR(atomic_load(&qf_model.kicks) >= 1);
		qf_add_chain(0, NULL);
		qf_kick(qf.kick_fd[0]);
		qf_nap_ms(100);
		kicks = atomic_load(&qf_model.kicks);
		assert_true(kicks <= 5);
		t0 = cpu_seconds();
		qf_nap_ms(300);
		assert_int_equal(atomic_load(&qf_model.kicks), kicks);
		assert_true(cpu_seconds() - t0 < 0.05);
		/* once the model serves again, the next kick gets it all */
		atomic_store(&qf_model.refuse, false);
		qf_kick(qf.kick_fd[0]);
		QF_WAIT_FOR(qf_used_reached(0, 1));
		assert_int_equal(
			vd_queue_stop(qf_q_at(0), NULL, NULL, NULL, NULL), 0);
		td_vq_free(qf.tq[0]);
		qf.tq[0] = td_vq_new(qf.mem, VD_VQ_SPLIT, QSIZE, false, false);
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
	unsigned n = td_mem_nregions(qf.mem);

	for (unsigned i = 0; i < n; i++) {
		uint64_t gpa = td_mem_region_gpa(qf.mem, i);
		uint64_t end = i + 1 < n ? td_mem_region_gpa(qf.mem, i + 1)
					 : TD_GPA_BASE + td_mem_size(qf.mem);

		r[i] = (struct vd_mem_region){.gpa = gpa,
					      .size = end - gpa,
					      .hva = td_mem_hva(qf.mem, gpa),
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

	w->ret = vd_mem_set_regions(td_mem_vd(qf.mem), w->r, w->n);
	w->done_seq = atomic_fetch_add(&qf_model.seq, 1) + 1;
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
	qf_used_count = 0;
	atomic_store(&released_regions, 0);
	/* Regions whose release we can see, installed while idle. */
	n = td_regions(tracked, count_release);
	assert_int_equal(vd_mem_set_regions(td_mem_vd(qf.mem), tracked, n), 0);
	w.n = td_regions(w.r, NULL);

	qf_model.hold = true;
	qf_start(0);
	qf_add_chain(0, NULL);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(atomic_load(&qf_model.pops) == 1);

	/* The writer swaps the table while a request is in flight. */
	assert_int_equal(pthread_create(&t, NULL, set_regions_thread, &w), 0);
	QF_WAIT_FOR(vd_mem_grace_pending(td_mem_vd(qf.mem)));
	qf_nap_ms(50);
	assert_false(atomic_load(&w.done));
	assert_int_equal(atomic_load(&released_regions), 0);

	/* New work waits too, so a busy queue cannot starve the writer. */
	qf_add_chain(0, NULL);
	qf_kick(qf.kick_fd[0]);
	qf_nap_ms(50);
	assert_int_equal(atomic_load(&qf_model.pops), 1);
	assert_false(atomic_load(&w.done));

	/* The request completes; then the writer may free the old table. */
	qf_kick(qf_model.qs[0].release_fd);
	pthread_join(t, NULL);
	assert_int_equal(w.ret, 0);
	assert_true(w.done_seq > atomic_load(&qf_model.completed_seq));
	assert_int_equal(atomic_load(&released_regions), n);
	assert_true(qf_used_reached(0, 1));

	/* and the deferred kick is served afterwards */
	QF_WAIT_FOR(atomic_load(&qf_model.pops) == 2);
	qf_kick(qf_model.qs[0].release_fd);
	QF_WAIT_FOR(qf_used_reached(0, 2));
}

/* An idle queue thread never holds the writer up. */
static void memory_table_change_on_idle_queue_is_not_delayed(void **state)
{
	struct vd_mem_region r[8];
	unsigned n = td_regions(r, NULL);
	struct timespec t0, t1;
	long ms;

	(void)state;
	qf_start(0);
	qf_start(1);
	QF_WAIT_FOR(atomic_load(&qf_model.kicks) == 2);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(vd_mem_set_regions(td_mem_vd(qf.mem), r, n), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms < 1000);
}

#define T(name) cmocka_unit_test_setup_teardown(name, qf_setup, qf_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(memory_table_change_waits_for_in_flight_requests),
		T(memory_table_change_on_idle_queue_is_not_delayed),
		T(polling_serves_chains_added_without_a_kick),
		T(idle_polling_queue_sleeps),
		T(default_poll_us_applies_to_queues_started_later),
		T(model_that_stops_popping_does_not_make_the_thread_spin),
	};

	vd_log_set_level(VD_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
