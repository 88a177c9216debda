/* Split virtqueue: requests through the test driver across the 16-bit index
 * wrap (in and out of order, one thread and two), the split-only
 * validation cases, requeue and ring positions. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "vq_harness.h"

static void split_chain_round_trips_data_and_head_id(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	uint64_t a, b, c;
	void *tok;
	uint32_t len;
	int token;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 8, false, false);
	a = td_mem_alloc(h.m, 100, 8);
	b = td_mem_alloc(h.m, 50, 8);
	c = td_mem_alloc(h.m, 300, 8);
	td_mem_fill(h.m, a, 100, 1);
	td_mem_fill(h.m, b, 50, 2);
	struct td_buf bufs[] = {
		{a, 100, false}, {b, 50, false}, {c, 300, true}};
	assert_int_equal(td_vq_add(h.q, bufs, 3, false, &token), 0);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_int_equal(e->id, 0);
	assert_int_equal(e->n_read, 2);
	assert_int_equal(e->n_write, 1);
	assert_int_equal(e->read_len, 150);
	assert_int_equal(e->write_len, 300);
	assert_ptr_equal(e->read_iov[0].iov_base, td_mem_hva(h.m, a));
	assert_ptr_equal(e->read_iov[1].iov_base, td_mem_hva(h.m, b));
	assert_ptr_equal(e->write_iov[0].iov_base, td_mem_hva(h.m, c));
	assert_int_equal(e->write_iov[0].iov_len, 300);
	memset(e->write_iov[0].iov_base, 0x77, 10);
	struct vd_vq_elem *none = NULL;
	assert_int_equal(vd_vq_pop(h.vq, &none), 0);
	assert_null(none);
	vd_vq_push(h.vq, e, 10);
	/* Not visible before the flush publishes used->idx. */
	assert_int_equal(td_vq_get_used(h.q, &tok, &len), 0);
	vd_vq_flush(h.vq);
	assert_int_equal(td_vq_get_used(h.q, &tok, &len), 1);
	assert_ptr_equal(tok, &token);
	assert_int_equal(len, 10);
	assert_int_equal(*(uint8_t *)td_mem_hva(h.m, c + 9), 0x77);
	assert_int_equal(td_vq_num_free(h.q), 8);
	vqh_fini(&h);
}

static void split_written_beyond_buffers_is_clamped(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	uint64_t a;
	void *tok;
	uint32_t len;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 8, false, false);
	a = td_mem_alloc(h.m, 64, 8);
	struct td_buf b = {a, 64, true};
	assert_int_equal(td_vq_add(h.q, &b, 1, false, NULL), 0);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	vd_vq_push(h.vq, e, 1000);
	vd_vq_flush(h.vq);
	assert_int_equal(td_vq_get_used(h.q, &tok, &len), 1);
	assert_int_equal(len, 64);
	vqh_fini(&h);
}

static void split_70000_requests_in_order_across_index_wrap(void **state)
{
	struct vqh h;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 256, true, true);
	vqh_stress(&h, 70000, false, true, 1);
	/* The 16-bit indexes went around. */
	assert_int_equal(td_vq_split_used_idx(h.q), (uint16_t)70000);
	vqh_fini(&h);
}

static void split_70000_requests_out_of_order_across_index_wrap(void **state)
{
	struct vqh h;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 128, false, false);
	vqh_stress(&h, 70000, true, false, 2);
	assert_int_equal(td_vq_split_used_idx(h.q), (uint16_t)70000);
	vqh_fini(&h);
}

static void split_requests_from_index_near_wrap_out_of_order(void **state)
{
	struct vqh h;

	(void)state;
	/* Start 40 short of 2^16 on both sides: wrap early. */
	vqh_init(&h, VD_VQ_SPLIT, 64, true, true);
	td_vq_split_set_start(h.q, 65496);
	h.cfg.avail_idx = h.cfg.used_idx = 65496;
	vqh_start(&h);
	vqh_stress(&h, 3000, true, true, 4);
	assert_int_equal(td_vq_split_used_idx(h.q), (uint16_t)(65496 + 3000));
	vqh_fini(&h);
}

static void split_70000_requests_two_threads(void **state)
{
	struct vqh h;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 128, true, true);
	vqh_stress_threaded(&h, 70000, true, 3);
	vqh_fini(&h);
}

static void split_head_out_of_range_marks_broken(void **state)
{
	struct vqh h;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 16, false, false);
	td_vq_split_publish_raw(h.q, 16);
	vqh_expect_broken(&h, VD_VQ_ERR_HEAD_RANGE);
	vqh_fini(&h);
}

static void split_next_out_of_range_marks_broken(void **state)
{
	struct vqh h;
	uint64_t a;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 16, false, false);
	a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw d = {a, 16, VRING_DESC_F_NEXT, 16, 0};
	vqh_raw_chain(&h, 0, &d, 1);
	vqh_expect_broken(&h, VD_VQ_ERR_NEXT_RANGE);
	vqh_fini(&h);
}

static void split_chain_loop_marks_broken(void **state)
{
	struct vqh h;
	uint64_t a;

	(void)state;
	/* 0 -> 1 -> 2 -> 1 */
	vqh_new(&h, VD_VQ_SPLIT, 16, false, false);
	a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw d[] = {
		{a, 8, VRING_DESC_F_NEXT, 1, 0},
		{a + 8, 8, VRING_DESC_F_NEXT, 2, 0},
		{a + 16, 8, VRING_DESC_F_NEXT, 1, 0},
	};
	vqh_raw_chain(&h, 0, d, 3);
	vqh_expect_broken(&h, VD_VQ_ERR_CHAIN_LOOP);
	vqh_fini(&h);

	/* A descriptor pointing at itself, zero length so no other check
	 * (iovec budget) can stop the walk first. */
	vqh_new(&h, VD_VQ_SPLIT, 16, false, false);
	struct vqh_raw self = {0, 0, VRING_DESC_F_NEXT, 5, 0};
	vqh_raw_chain(&h, 5, &self, 1);
	vqh_expect_broken(&h, VD_VQ_ERR_CHAIN_LOOP);
	vqh_fini(&h);
}

static void split_chain_of_every_descriptor_is_accepted(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	struct vqh_raw d[16];

	(void)state;
	vqh_init(&h, VD_VQ_SPLIT, 16, false, false);
	h.cfg.max_iov = 16;
	vqh_start(&h);
	uint64_t a = td_mem_alloc(h.m, 256, 8);
	/* All 16 descriptors, in a scrambled order: 3 -> 4 -> ... -> 2. */
	for (unsigned i = 0; i < 16; i++)
		d[i] = (struct vqh_raw){a + 16 * i, 16,
					i < 15 ? VRING_DESC_F_NEXT : 0,
					(uint16_t)((i + 4) % 16), 0};
	vqh_raw_chain(&h, 3, d, 16);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_int_equal(e->n_read, 16);
	assert_int_equal(e->id, 3);
	assert_int_equal(e->ndescs, 16);
	vd_vq_push(h.vq, e, 0);
	vqh_fini(&h);
}

static void split_indirect_loop_marks_broken(void **state)
{
	struct vqh h;
	uint64_t a;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 16, false, true);
	a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw t[] = {
		{a, 0, VRING_DESC_F_NEXT, 1, 0},
		{a, 0, VRING_DESC_F_NEXT, 0, 0},
	};
	struct vqh_raw d = {vqh_table(&h, t, 2), 32, VRING_DESC_F_INDIRECT, 0,
			    0};
	vqh_raw_chain(&h, 0, &d, 1);
	vqh_expect_broken(&h, VD_VQ_ERR_CHAIN_LOOP);
	vqh_fini(&h);
}

static void split_nested_indirect_marks_broken(void **state)
{
	struct vqh h;
	uint64_t a, inner;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 16, false, true);
	a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw in = {a, 16, 0, 0, 0};
	inner = vqh_table(&h, &in, 1);
	struct vqh_raw t[] = {
		{a, 8, VRING_DESC_F_NEXT, 1, 0},
		{inner, 16, VRING_DESC_F_INDIRECT, 0, 0},
	};
	struct vqh_raw d = {vqh_table(&h, t, 2), 32, VRING_DESC_F_INDIRECT, 0,
			    0};
	vqh_raw_chain(&h, 0, &d, 1);
	vqh_expect_broken(&h, VD_VQ_ERR_NESTED_INDIRECT);
	vqh_fini(&h);
}

static void split_indirect_next_outside_table_marks_broken(void **state)
{
	struct vqh h;
	uint64_t a;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 16, false, true);
	a = td_mem_alloc(h.m, 64, 8);
	/* next 2 is inside the queue size but past the 2-entry table. */
	struct vqh_raw t[] = {
		{a, 8, VRING_DESC_F_NEXT, 1, 0},
		{a + 8, 8, VRING_DESC_F_NEXT, 2, 0},
	};
	struct vqh_raw d = {vqh_table(&h, t, 2), 32, VRING_DESC_F_INDIRECT, 0,
			    0};
	vqh_raw_chain(&h, 0, &d, 1);
	vqh_expect_broken(&h, VD_VQ_ERR_NEXT_RANGE);
	vqh_fini(&h);
}

static void split_direct_then_indirect_is_accepted(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	uint64_t a;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 16, false, true);
	a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw t = {a + 8, 8, VRING_DESC_F_WRITE, 0, 0};
	struct vqh_raw d[] = {
		{a, 8, VRING_DESC_F_NEXT, 1, 0},
		{vqh_table(&h, &t, 1), 16, VRING_DESC_F_INDIRECT, 0, 0},
	};
	vqh_raw_chain(&h, 0, d, 2);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_int_equal(e->n_read, 1);
	assert_int_equal(e->n_write, 1);
	assert_ptr_equal(e->write_iov[0].iov_base, td_mem_hva(h.m, a + 8));
	vd_vq_push(h.vq, e, 8);
	vqh_fini(&h);
}

static void split_avail_idx_jump_marks_broken(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	uint64_t a;

	(void)state;
	/* Exactly num entries is allowed... */
	vqh_new(&h, VD_VQ_SPLIT, 8, false, false);
	a = td_mem_alloc(h.m, 64, 8);
	for (unsigned i = 0; i < 8; i++) {
		struct td_buf b = {a + 8 * i, 8, true};
		assert_int_equal(td_vq_add(h.q, &b, 1, false, NULL), 0);
	}
	for (unsigned i = 0; i < 8; i++) {
		assert_int_equal(vd_vq_pop(h.vq, &e), 1);
		vd_vq_push(h.vq, e, 0);
	}
	assert_false(vd_vq_broken(h.vq));
	vqh_fini(&h);

	/* ...num + 1 is not. */
	vqh_new(&h, VD_VQ_SPLIT, 8, false, false);
	td_vq_split_set_avail_idx(h.q, 9);
	vqh_expect_broken(&h, VD_VQ_ERR_AVAIL_IDX);
	vqh_fini(&h);

	/* Nor is moving backwards (a huge forward jump mod 2^16). */
	vqh_new(&h, VD_VQ_SPLIT, 8, false, false);
	td_vq_split_set_avail_idx(h.q, 65535);
	vqh_expect_broken(&h, VD_VQ_ERR_AVAIL_IDX);
	vqh_fini(&h);
}

static void split_head_in_flight_twice_marks_broken(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	uint64_t a;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 16, false, false);
	a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw d = {a, 16, VRING_DESC_F_WRITE, 0, 0};
	vqh_raw_chain(&h, 4, &d, 1);
	td_vq_split_publish_raw(h.q, 4);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_int_equal(e->id, 4);
	vqh_expect_broken(&h, VD_VQ_ERR_BUFFER_ID);
	/* The first element can still be completed (and is dropped). */
	vd_vq_push(h.vq, e, 0);
	assert_int_equal(vd_vq_inflight(h.vq), 0);
	assert_int_equal(td_vq_split_used_idx(h.q), 0);
	vqh_fini(&h);
}

static void split_requeue_pops_inflight_heads_before_avail(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	uint64_t a;
	int tok[4];
	uint16_t heads[3];
	bool seen[4] = {false};

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 16, false, false);
	a = td_mem_alloc(h.m, 256, 8);
	for (int i = 0; i < 3; i++) {
		struct td_buf b = {a + 64 * i, 64, true};
		assert_int_equal(td_vq_add(h.q, &b, 1, false, &tok[i]), 0);
	}
	/* A backend pops three chains and dies without completing them. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(vd_vq_pop(h.vq, &e), 1);
		heads[i] = e->id;
	}
	vd_vq_free(h.vq);
	/* The new one resumes after them and resubmits them first. */
	h.cfg.avail_idx = 3;
	vqh_start(&h);
	assert_int_equal(vd_vq_requeue(h.vq, heads, 3), 0);
	struct td_buf b = {a + 192, 64, true};
	assert_int_equal(td_vq_add(h.q, &b, 1, false, &tok[3]), 0);
	assert_true(vd_vq_enable_notify(h.vq));
	for (int i = 0; i < 4; i++) {
		assert_int_equal(vd_vq_pop(h.vq, &e), 1);
		if (i < 3)
			assert_int_equal(e->id, heads[i]);
		assert_ptr_equal(e->write_iov[0].iov_base,
				 td_mem_hva(h.m, a + 64 * i));
		vd_vq_push(h.vq, e, (uint32_t)i);
	}
	assert_int_equal(vd_vq_pop(h.vq, &e), 0);
	vd_vq_flush(h.vq);
	for (int i = 0; i < 4; i++) {
		void *t;
		uint32_t len;

		assert_int_equal(td_vq_get_used(h.q, &t, &len), 1);
		int k = (int *)t - tok;
		assert_true(k >= 0 && k < 4 && !seen[k]);
		assert_int_equal(len, k); /* pushed with written = i */
		seen[k] = true;
	}
	vqh_fini(&h);
}

static void split_requeue_head_out_of_range_marks_broken(void **state)
{
	struct vqh h;
	uint16_t bad = 16;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 16, false, false);
	assert_int_equal(vd_vq_requeue(h.vq, &bad, 1), 0);
	vqh_expect_broken(&h, VD_VQ_ERR_HEAD_RANGE);
	vqh_fini(&h);
	vqh_new(&h, VD_VQ_SPLIT, 16, false, false);
	assert_int_equal(vd_vq_requeue(h.vq, &bad, 17), -EINVAL);
	vqh_fini(&h);
}

static void split_get_base_reports_positions(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e[3];
	uint16_t ai, ui;
	bool aw, uw;
	uint64_t a;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 16, false, false);
	a = td_mem_alloc(h.m, 64, 8);
	for (int i = 0; i < 3; i++) {
		struct td_buf b = {a, 8, true};
		assert_int_equal(td_vq_add(h.q, &b, 1, false, NULL), 0);
		assert_int_equal(vd_vq_pop(h.vq, &e[i]), 1);
	}
	vd_vq_push(h.vq, e[1], 0);
	vd_vq_get_base(h.vq, &ai, &aw, &ui, &uw);
	assert_int_equal(ai, 3);
	assert_int_equal(ui, 0); /* pushed, not published */
	vd_vq_flush(h.vq);
	vd_vq_get_base(h.vq, &ai, &aw, &ui, &uw);
	assert_int_equal(ui, 1);
	vd_vq_push(h.vq, e[0], 0);
	vd_vq_push(h.vq, e[2], 0);
	vd_vq_flush(h.vq);
	vd_vq_get_base(h.vq, &ai, &aw, &ui, &uw);
	assert_int_equal(ai, 3);
	assert_int_equal(ui, 3);
	vqh_fini(&h);
}

static void split_used_idx_read_from_ring_when_not_given(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	struct vring_used *used;

	(void)state;
	vqh_init(&h, VD_VQ_SPLIT, 16, false, false);
	used = td_vq_split_used(h.q);
	used->idx = htole16(7);
	h.cfg.used_idx_valid = false;
	h.cfg.used_idx = 0;
	vqh_start(&h);
	uint64_t a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw d = {a, 8, VRING_DESC_F_WRITE, 0, 0};
	vqh_raw_chain(&h, 2, &d, 1);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	vd_vq_push(h.vq, e, 5);
	vd_vq_flush(h.vq);
	assert_int_equal(le16toh(used->idx), 8);
	assert_int_equal(le32toh(used->ring[7].id), 2);
	assert_int_equal(le32toh(used->ring[7].len), 5);
	vqh_fini(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(split_chain_round_trips_data_and_head_id),
		cmocka_unit_test(split_written_beyond_buffers_is_clamped),
		cmocka_unit_test(
			split_70000_requests_in_order_across_index_wrap),
		cmocka_unit_test(
			split_70000_requests_out_of_order_across_index_wrap),
		cmocka_unit_test(
			split_requests_from_index_near_wrap_out_of_order),
		cmocka_unit_test(split_70000_requests_two_threads),
		cmocka_unit_test(split_head_out_of_range_marks_broken),
		cmocka_unit_test(split_next_out_of_range_marks_broken),
		cmocka_unit_test(split_chain_loop_marks_broken),
		cmocka_unit_test(split_chain_of_every_descriptor_is_accepted),
		cmocka_unit_test(split_indirect_loop_marks_broken),
		cmocka_unit_test(split_nested_indirect_marks_broken),
		cmocka_unit_test(
			split_indirect_next_outside_table_marks_broken),
		cmocka_unit_test(split_direct_then_indirect_is_accepted),
		cmocka_unit_test(split_avail_idx_jump_marks_broken),
		cmocka_unit_test(split_head_in_flight_twice_marks_broken),
		cmocka_unit_test(
			split_requeue_pops_inflight_heads_before_avail),
		cmocka_unit_test(split_requeue_head_out_of_range_marks_broken),
		cmocka_unit_test(split_get_base_reports_positions),
		cmocka_unit_test(split_used_idx_read_from_ring_when_not_given),
	};

	return cmocka_run_group_tests_name("virtqueue split", tests, NULL,
					   NULL);
}
