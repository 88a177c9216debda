/* Live statistics in the core: what a queue counts as chains are popped,
 * pushed and published (requests, bytes, in flight, errors, notifications
 * sent or suppressed, the latency histogram from pop to publication), that
 * a queue thread counts kicks and keeps its counters across a restart, the
 * process's device list the control socket walks, and vd_dev_resize. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "queue_fixture.h"
#include "vq_harness.h"

static struct vd_vq_stats read_vq(struct vd_vq_stats *s)
{
	struct vd_vq_stats out;

	vd_vq_stats_read(s, &out);
	return out;
}

/* A split queue of 16 counting into st; returns a 4 KiB buffer. */
static uint64_t start(struct vqh *h, struct vd_vq_stats *st)
{
	vqh_new(h, VD_VQ_SPLIT, 16, false, false);
	vd_vq_set_stats(h->vq, st);
	return td_mem_alloc(h->m, 4096, 64);
}

/* A chain of 16 readable and 32 writable bytes. */
static void add_rw(struct vqh *h, uint64_t buf)
{
	struct td_buf b[2] = {{buf, 16, false}, {buf + 64, 32, true}};

	assert_int_equal(td_vq_add(h->q, b, 2, false, NULL), 0);
}

static void pop_and_push_count_requests_bytes_and_inflight(void **state)
{
	struct vd_vq_stats st = {0}, r;
	struct vd_vq_elem *e[3];
	struct vqh h;
	uint64_t buf;

	(void)state;
	buf = start(&h, &st);
	for (int i = 0; i < 3; i++)
		add_rw(&h, buf + 128u * i);
	for (int i = 0; i < 3; i++)
		assert_int_equal(vd_vq_pop(h.vq, &e[i]), 1);
	r = read_vq(&st);
	assert_int_equal(r.requests, 3);
	assert_int_equal(r.bytes_in, 48);
	assert_int_equal(r.inflight, 3);
	assert_int_equal(r.completions, 0);
	vd_vq_push(h.vq, e[2], 10);
	vd_vq_push(h.vq, e[0], 7);
	assert_int_equal(vd_vq_unpublished(h.vq), 2);
	r = read_vq(&st);
	assert_int_equal(r.completions, 2);
	assert_int_equal(r.bytes_out, 17);
	assert_int_equal(r.inflight, 1);
	vd_vq_flush(h.vq);
	assert_int_equal(vd_vq_unpublished(h.vq), 0);
	/* A written length past the buffers counts what they hold. */
	vd_vq_push(h.vq, e[1], 1000);
	assert_int_equal(read_vq(&st).bytes_out, 17 + 32);
	assert_int_equal(read_vq(&st).inflight, 0);
	vqh_fini(&h);
}

static void latency_lands_in_the_log2_bucket_of_pop_to_publication(void **state)
{
	/* pop at t0, published at t0 + lat: the bucket whose bound is the
	 * first power of two (times 1024 ns) above lat */
	static const struct {
		uint64_t lat;
		unsigned bucket;
	} c[] = {
		{0, 0},
		{1023, 0},
		{1024, 1},
		{2047, 1},
		{5000, 3},
		{1u << 20, 11},
		{~0ull >> 8, VD_VQ_HIST_BUCKETS - 1},
	};
	struct vd_vq_stats st = {0}, r;
	uint64_t t0 = 1000000, sum = 0;
	struct vd_vq_elem *e;
	struct vqh h;
	uint64_t buf;

	(void)state;
	buf = start(&h, &st);
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		void *tok;
		uint32_t len;

		add_rw(&h, buf);
		vd_vq_set_clock(h.vq, t0);
		assert_int_equal(vd_vq_pop(h.vq, &e), 1);
		/* the push's own time does not matter, the publication's
		 * does */
		vd_vq_set_clock(h.vq, t0 + 1);
		vd_vq_push(h.vq, e, 1);
		vd_vq_set_clock(h.vq, t0 + c[i].lat);
		vd_vq_flush(h.vq);
		sum += c[i].lat;
		r = read_vq(&st);
		assert_int_equal(r.latency_hist[c[i].bucket],
				 1 + (i > 0 && c[i - 1].bucket == c[i].bucket));
		assert_int_equal(r.latency_ns_sum, sum);
		assert_int_equal(td_vq_get_used(h.q, &tok, &len), 1);
	}
	/* each bound is 1024 ns times a power of two */
	assert_int_equal(VD_VQ_HIST_BOUND_NS(0), 1024);
	assert_int_equal(VD_VQ_HIST_BOUND_NS(3), 8192);
	vqh_fini(&h);
}

static void publications_count_notifications_sent_and_suppressed(void **state)
{
	struct vd_vq_stats st = {0}, r;
	struct vd_vq_elem *e;
	struct vqh h;
	uint64_t buf;

	(void)state;
	buf = start(&h, &st);
	/* nothing pushed: a flush is no publication */
	assert_false(vd_vq_flush(h.vq));
	r = read_vq(&st);
	assert_int_equal(r.notify_sent + r.notify_suppressed, 0);
	add_rw(&h, buf);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	vd_vq_push(h.vq, e, 1);
	assert_true(vd_vq_flush(h.vq));
	td_vq_disable_cb(h.q); /* NO_INTERRUPT */
	add_rw(&h, buf);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	vd_vq_push(h.vq, e, 1);
	assert_false(vd_vq_flush(h.vq));
	r = read_vq(&st);
	assert_int_equal(r.notify_sent, 1);
	assert_int_equal(r.notify_suppressed, 1);
	vqh_fini(&h);
}

static void broken_chains_and_failed_requests_count_as_errors(void **state)
{
	struct vd_vq_stats st = {0};
	struct vqh h;
	struct vqh_raw d = {.addr = 0x10, .len = 8}; /* outside memory */

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 16, false, false);
	vd_vq_set_stats(h.vq, &st);
	vd_vq_count_error(h.vq);
	assert_int_equal(read_vq(&st).errors, 1);
	vqh_raw_chain(&h, 0, &d, 1);
	vqh_expect_broken(&h, VD_VQ_ERR_ADDR);
	assert_int_equal(read_vq(&st).errors, 2);
	assert_int_equal(read_vq(&st).requests, 0);
	vqh_fini(&h);
}

/* ------------------------------------------------- through queue threads */

static struct vd_vq_stats read_q(int i)
{
	struct vd_vq_stats out;

	vd_queue_stats_read(qf_q_at(i), &out);
	return out;
}

static void queue_counts_kicks_and_keeps_counters_across_restart(void **state)
{
	struct vd_queue_setup s;
	struct vd_vq_stats r;
	uint16_t avail, used;
	uint64_t hist = 0;

	(void)state;
	qf_used_count = 0;
	qf_start(0);
	for (int i = 0; i < 5; i++)
		qf_add_chain(0, NULL);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 5));
	/* the counters are stored before the used index is published */
	r = read_q(0);
	assert_int_equal(r.requests, 5);
	assert_int_equal(r.completions, 5);
	assert_int_equal(r.bytes_in, 5 * BUF_LEN);
	assert_int_equal(r.bytes_out, 5 * BUF_LEN);
	assert_true(r.kicks >= 1);
	assert_int_equal(r.notify_sent + r.notify_suppressed >= 1, 1);
	for (int b = 0; b < VD_VQ_HIST_BUCKETS; b++)
		hist += r.latency_hist[b];
	assert_int_equal(hist, 5);
	assert_int_equal(read_q(1).requests, 0);
	/* stopped and started again where the ring stands (as a shim does
	 * across a reconnect): the counters stay */
	assert_int_equal(vd_queue_stop(qf_q_at(0), &avail, NULL, &used, NULL),
			 0);
	assert_int_equal(read_q(0).requests, 5);
	qf_fill_setup(0, &s);
	s.vq.avail_idx = avail;
	s.vq.used_idx = used;
	s.vq.used_idx_valid = true;
	assert_int_equal(vd_queue_start(qf_q_at(0), &s), 0);
	qf_add_chain(0, NULL);
	qf_kick(qf.kick_fd[0]);
	QF_WAIT_FOR(qf_used_reached(0, 6));
	assert_int_equal(read_q(0).requests, 6);
	assert_int_equal(read_q(0).inflight, 0);
}

static void count_dev(struct vd_dev *dev, void *arg)
{
	if (dev == qf.dev)
		++*(int *)arg;
}

static void for_each_walks_live_devices_only(void **state)
{
	int seen = 0;

	(void)state;
	vd_dev_for_each(count_dev, &seen);
	assert_int_equal(seen, 1);
}

static int resize_calls, resize_ret;
static uint64_t resize_bytes;

static int echo_resize(void *model, uint64_t bytes, char *err, size_t errlen)
{
	(void)model;
	resize_calls++;
	resize_bytes = bytes;
	if (resize_ret < 0)
		snprintf(err, errlen, "refused by the model");
	return resize_ret;
}

static void resize_changes_generation_and_notifies_only_on_change(void **state)
{
	struct vd_device_ops ops = *qf_model.m.ops;
	const struct vd_device_ops *saved = qf_model.m.ops;
	uint32_t gen = vd_dev_config_generation(qf.dev);
	char err[128] = "";

	(void)state;
	assert_int_equal(vd_dev_resize(qf.dev, 0, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_non_null(strstr(err, "echo"));
	ops.resize = echo_resize;
	qf_model.m.ops = &ops;
	resize_ret = 0;
	assert_int_equal(vd_dev_resize(qf.dev, 0, err, sizeof(err)), 0);
	assert_int_equal(vd_dev_config_generation(qf.dev), gen);
	assert_int_equal(atomic_load(&qf_shim.notify_config), 0);
	resize_ret = 1;
	assert_int_equal(vd_dev_resize(qf.dev, 4096, err, sizeof(err)), 1);
	assert_int_equal(resize_bytes, 4096);
	assert_int_equal(vd_dev_config_generation(qf.dev), gen + 1);
	assert_int_equal(atomic_load(&qf_shim.notify_config), 1);
	resize_ret = -EINVAL;
	assert_int_equal(vd_dev_resize(qf.dev, 1, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "refused by the model");
	assert_int_equal(atomic_load(&qf_shim.notify_config), 1);
	assert_int_equal(resize_calls, 3);
	qf_model.m.ops = saved;
}

static void a_freed_device_leaves_the_list(void **state)
{
	int seen = 0;

	(void)state;
	qf_teardown(state);
	vd_dev_for_each(count_dev, &seen);
	assert_int_equal(seen, 0);
	qf_setup(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			pop_and_push_count_requests_bytes_and_inflight),
		cmocka_unit_test(
			latency_lands_in_the_log2_bucket_of_pop_to_publication),
		cmocka_unit_test(
			publications_count_notifications_sent_and_suppressed),
		cmocka_unit_test(
			broken_chains_and_failed_requests_count_as_errors),
		cmocka_unit_test_setup_teardown(
			queue_counts_kicks_and_keeps_counters_across_restart,
			qf_setup, qf_teardown),
		cmocka_unit_test_setup_teardown(
			for_each_walks_live_devices_only, qf_setup,
			qf_teardown),
		cmocka_unit_test_setup_teardown(
			resize_changes_generation_and_notifies_only_on_change,
			qf_setup, qf_teardown),
		cmocka_unit_test_setup_teardown(a_freed_device_leaves_the_list,
						qf_setup, qf_teardown),
	};

	return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
