/* Packed virtqueue: requests through the test driver over many wrap-counter
 * flips (in and out of order, one thread and two), buffer ids, list rules,
 * used-descriptor batching and requeue. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "vq_harness.h"

#define P_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define P_USED	(1u << VRING_PACKED_DESC_F_USED)

static void packed_chain_round_trips_data_and_buffer_id(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e, *none = NULL;
	uint64_t a, c;
	void *tok;
	uint32_t len;
	int token;

	(void)state;
	vqh_new(&h, VD_VQ_PACKED, 8, false, false);
	a = td_mem_alloc(h.m, 100, 8);
	c = td_mem_alloc(h.m, 300, 8);
	td_mem_fill(h.m, a, 100, 1);
	struct td_buf bufs[] = {
		{a, 60, false}, {a + 60, 40, false}, {c, 300, true}};
	assert_int_equal(td_vq_add(h.q, bufs, 3, false, &token), 0);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_int_equal(vd_vq_pop(h.vq, &none), 0);
	/* The driver's first free id is 0; ring slots 0-2. */
	assert_int_equal(e->id, 0);
	assert_int_equal(e->ndescs, 3);
	assert_int_equal(e->n_read, 2);
	assert_int_equal(e->read_len, 100);
	assert_int_equal(e->write_len, 300);
	assert_true(td_mem_check(h.m, a, 100, 1));
	assert_ptr_equal(e->read_iov[1].iov_base, td_mem_hva(h.m, a + 60));
	memset(e->write_iov[0].iov_base, 0x55, 7);
	vd_vq_push(h.vq, e, 7);
	assert_int_equal(td_vq_get_used(h.q, &tok, &len), 0);
	vd_vq_flush(h.vq);
	assert_int_equal(td_vq_get_used(h.q, &tok, &len), 1);
	assert_ptr_equal(tok, &token);
	assert_int_equal(len, 7);
	/* §2.8.3: WRITE in a used descriptor says data was written. */
	assert_true(le16toh(td_vq_packed_desc(h.q)[0].flags) &
		    VRING_DESC_F_WRITE);
	vqh_fini(&h);
}

static void packed_70000_requests_in_order_across_wraps(void **state)
{
	struct vqh h;

	(void)state;
	/* Not a power of two: packed rings need not be. */
	vqh_new(&h, VD_VQ_PACKED, 250, true, true);
	vqh_stress(&h, 70000, false, true, 11);
	vqh_fini(&h);
}

static void packed_70000_requests_out_of_order_across_wraps(void **state)
{
	struct vqh h;

	(void)state;
	vqh_new(&h, VD_VQ_PACKED, 97, false, false);
	vqh_stress(&h, 70000, true, false, 12);
	vqh_fini(&h);
}

static void packed_out_of_order_with_indirect_small_ring(void **state)
{
	struct vqh h;

	(void)state;
	/* A ring so small chains wrap around its end all the time. */
	vqh_new(&h, VD_VQ_PACKED, 7, true, true);
	vqh_stress(&h, 20000, true, true, 13);
	vqh_fini(&h);
}

static void packed_70000_requests_two_threads(void **state)
{
	struct vqh h;

	(void)state;
	vqh_new(&h, VD_VQ_PACKED, 128, true, true);
	vqh_stress_threaded(&h, 70000, true, 14);
	vqh_fini(&h);
}

static void packed_buffer_id_comes_from_last_descriptor(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	uint64_t a;

	(void)state;
	vqh_new(&h, VD_VQ_PACKED, 16, false, false);
	a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw d[] = {
		{a, 8, VRING_DESC_F_NEXT, 0, 9},
		{a + 8, 8, VRING_DESC_F_WRITE, 0, 2},
	};
	vqh_raw_chain(&h, 0, d, 2);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_int_equal(e->id, 2);
	vd_vq_push(h.vq, e, 3);
	vd_vq_flush(h.vq);
	assert_int_equal(le16toh(td_vq_packed_desc(h.q)[0].id), 2);
	assert_int_equal(le32toh(td_vq_packed_desc(h.q)[0].len), 3);
	vqh_fini(&h);
}

static void packed_buffer_id_out_of_range_marks_broken(void **state)
{
	struct vqh h;
	uint64_t a;

	(void)state;
	vqh_new(&h, VD_VQ_PACKED, 16, false, false);
	a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw d = {a, 8, 0, 0, 16};
	vqh_raw_chain(&h, 0, &d, 1);
	vqh_expect_broken(&h, VD_VQ_ERR_BUFFER_ID);
	vqh_fini(&h);
}

static void packed_buffer_id_in_flight_marks_broken(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	uint64_t a;

	(void)state;
	vqh_new(&h, VD_VQ_PACKED, 16, false, false);
	a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw d = {a, 8, 0, 0, 5};
	vqh_raw_chain(&h, 0, &d, 1);
	vqh_raw_chain(&h, 0, &d, 1);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	vqh_expect_broken(&h, VD_VQ_ERR_BUFFER_ID);
	vd_vq_push(h.vq, e, 0);
	vqh_fini(&h);
}

static void packed_more_buffers_than_queue_size_marks_broken(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	uint64_t a;

	(void)state;
	/* Four buffers fill the ring; the driver then overwrites slot 0,
	 * still the device's, with a fifth. */
	vqh_new(&h, VD_VQ_PACKED, 4, false, false);
	a = td_mem_alloc(h.m, 64, 8);
	for (int i = 0; i < 4; i++) {
		struct td_buf b = {a + 8 * i, 8, true};
		assert_int_equal(td_vq_add(h.q, &b, 1, false, NULL), 0);
		assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	}
	struct vqh_raw d = {a, 8, 0, 0, 1};
	vqh_raw_chain(&h, 0, &d, 1);
	vqh_expect_broken(&h, VD_VQ_ERR_BUFFER_ID);
	vqh_fini(&h);
}

static void packed_chain_longer_than_queue_marks_broken(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	struct vqh_raw d[8];
	uint64_t a;

	(void)state;
	/* Every descriptor says NEXT: the list would go round forever. */
	vqh_new(&h, VD_VQ_PACKED, 8, false, false);
	a = td_mem_alloc(h.m, 64, 8);
	for (int i = 0; i < 8; i++)
		d[i] = (struct vqh_raw){a, 0, VRING_DESC_F_NEXT, 0, 0};
	vqh_raw_chain(&h, 0, d, 8);
	vqh_expect_broken(&h, VD_VQ_ERR_CHAIN_LOOP);
	vqh_fini(&h);

	/* A list of exactly the queue size is fine. */
	vqh_init(&h, VD_VQ_PACKED, 8, false, false);
	h.cfg.max_iov = 8;
	vqh_start(&h);
	a = td_mem_alloc(h.m, 64, 8);
	for (int i = 0; i < 8; i++)
		d[i] = (struct vqh_raw){a + 8 * i, 8,
					i < 7 ? VRING_DESC_F_NEXT : 0, 0, 3};
	vqh_raw_chain(&h, 0, d, 8);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_int_equal(e->ndescs, 8);
	assert_int_equal(e->n_read, 8);
	vd_vq_push(h.vq, e, 0);
	vqh_fini(&h);
}

static void packed_indirect_inside_list_marks_broken(void **state)
{
	struct vqh h;
	uint64_t a;

	(void)state;
	vqh_new(&h, VD_VQ_PACKED, 16, false, true);
	a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw t = {a + 8, 8, VRING_DESC_F_WRITE, 0, 0};
	struct vqh_raw d[] = {
		{a, 8, VRING_DESC_F_NEXT, 0, 0},
		{vqh_table(&h, &t, 1), 16, VRING_DESC_F_INDIRECT, 0, 0},
	};
	vqh_raw_chain(&h, 0, d, 2);
	vqh_expect_broken(&h, VD_VQ_ERR_INDIRECT_SIZE);
	vqh_fini(&h);
}

static void packed_indirect_table_ignores_flags_but_write(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	uint64_t a;

	(void)state;
	/* §2.8.7: in a table only WRITE counts: NEXT and INDIRECT there are
	 * reserved and ignored, entries are taken in order. */
	vqh_new(&h, VD_VQ_PACKED, 16, false, true);
	a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw t[] = {
		{a, 8, VRING_DESC_F_INDIRECT, 0, 77},
		{a + 8, 8, VRING_DESC_F_NEXT, 0, 0},
		{a + 16, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0, 0},
	};
	struct vqh_raw d = {vqh_table(&h, t, 3), 48, VRING_DESC_F_INDIRECT, 0,
			    4};
	vqh_raw_chain(&h, 0, &d, 1);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_int_equal(e->id, 4);
	assert_int_equal(e->ndescs, 1);
	assert_int_equal(e->n_read, 2);
	assert_int_equal(e->n_write, 1);
	assert_ptr_equal(e->read_iov[0].iov_base, td_mem_hva(h.m, a));
	assert_ptr_equal(e->write_iov[0].iov_base, td_mem_hva(h.m, a + 16));
	vd_vq_push(h.vq, e, 0);
	vqh_fini(&h);
}

static void packed_descriptor_not_available_is_not_popped(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	struct vring_packed_desc *ring;
	uint64_t a;

	(void)state;
	vqh_new(&h, VD_VQ_PACKED, 16, false, false);
	a = td_mem_alloc(h.m, 64, 8);
	ring = td_vq_packed_desc(h.q);
	ring[0].addr = htole64(a);
	ring[0].len = htole32(8);
	/* Available for the other wrap count, then looking used: neither
	 * is the device's (wrap counter 1 at start, §2.8.1). */
	ring[0].flags = htole16(P_USED);
	assert_int_equal(vd_vq_pop(h.vq, &e), 0);
	ring[0].flags = htole16(P_AVAIL | P_USED);
	assert_int_equal(vd_vq_pop(h.vq, &e), 0);
	ring[0].flags = 0;
	assert_int_equal(vd_vq_pop(h.vq, &e), 0);
	assert_false(vd_vq_broken(h.vq));
	ring[0].flags = htole16(P_AVAIL);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	vd_vq_push(h.vq, e, 0);
	vqh_fini(&h);
}

static void packed_used_flags_follow_device_wrap_counter(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	struct vring_packed_desc *ring;
	uint64_t a;

	(void)state;
	vqh_new(&h, VD_VQ_PACKED, 4, false, false);
	ring = td_vq_packed_desc(h.q);
	a = td_mem_alloc(h.m, 64, 8);
	/* Two laps, one buffer at a time. */
	for (int i = 0; i < 8; i++) {
		struct td_buf b = {a, 8, false};
		void *tok;
		uint32_t len;
		uint16_t f;

		assert_int_equal(td_vq_add(h.q, &b, 1, false, NULL), 0);
		assert_int_equal(vd_vq_pop(h.vq, &e), 1);
		vd_vq_push(h.vq, e, 0);
		vd_vq_flush(h.vq);
		f = le16toh(ring[i % 4].flags);
		/* Lap 0: AVAIL=USED=1, lap 1: AVAIL=USED=0; nothing
		 * written, so no WRITE flag. */
		assert_int_equal(f & (P_AVAIL | P_USED),
				 i < 4 ? P_AVAIL | P_USED : 0);
		assert_false(f & VRING_DESC_F_WRITE);
		assert_int_equal(td_vq_get_used(h.q, &tok, &len), 1);
	}
	vqh_fini(&h);
}

static void packed_batch_is_exposed_by_first_flags_last(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e[3];
	struct vring_packed_desc *ring;
	uint64_t a;
	void *tok;
	uint32_t len;

	(void)state;
	vqh_new(&h, VD_VQ_PACKED, 8, false, false);
	ring = td_vq_packed_desc(h.q);
	a = td_mem_alloc(h.m, 64, 8);
	for (int i = 0; i < 3; i++) {
		struct td_buf b = {a + 8 * i, 8, true};
		assert_int_equal(td_vq_add(h.q, &b, 1, false, NULL), 0);
		assert_int_equal(vd_vq_pop(h.vq, &e[i]), 1);
	}
	uint16_t first_id = e[2]->id;

	vd_vq_push(h.vq, e[2], 1);
	vd_vq_push(h.vq, e[0], 1);
	vd_vq_push(h.vq, e[1], 1);
	/* Slots 1 and 2 are already marked used, slot 0 (the first of the
	 * batch, where the driver looks) is not, so the driver sees none. */
	assert_true(le16toh(ring[1].flags) & P_USED);
	assert_true(le16toh(ring[2].flags) & P_USED);
	assert_false(le16toh(ring[0].flags) & P_USED);
	assert_int_equal(td_vq_get_used(h.q, &tok, &len), 0);
	vd_vq_flush(h.vq);
	for (int i = 0; i < 3; i++)
		assert_int_equal(td_vq_get_used(h.q, &tok, &len), 1);
	/* Completion order: ids of e[2], e[0], e[1]. */
	assert_int_equal(le16toh(ring[0].id), first_id);
	vqh_fini(&h);
}

static void packed_requeue_pops_ring_positions_first(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	uint16_t pos[2] = {2, 0}, ai, ui;
	bool aw, uw;
	uint64_t a;
	int tok[3];

	(void)state;
	vqh_new(&h, VD_VQ_PACKED, 8, false, false);
	a = td_mem_alloc(h.m, 256, 8);
	/* Chains at positions 0 (2 slots) and 2 (1 slot). */
	struct td_buf b0[] = {{a, 8, false}, {a + 8, 8, true}};
	struct td_buf b1 = {a + 64, 8, true};
	assert_int_equal(td_vq_add(h.q, b0, 2, false, &tok[0]), 0);
	assert_int_equal(td_vq_add(h.q, &b1, 1, false, &tok[1]), 0);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	vd_vq_get_base(h.vq, &ai, &aw, &ui, &uw);
	assert_int_equal(ai, 3);
	assert_true(aw);
	vd_vq_free(h.vq);
	/* Reconnect: resume at position 3, resubmit 2 then 0. */
	h.cfg.avail_idx = 3;
	vqh_start(&h);
	assert_int_equal(vd_vq_requeue(h.vq, pos, 2), 0);
	struct td_buf b2 = {a + 128, 8, true};
	assert_int_equal(td_vq_add(h.q, &b2, 1, false, &tok[2]), 0);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_ptr_equal(e->write_iov[0].iov_base, td_mem_hva(h.m, a + 64));
	vd_vq_push(h.vq, e, 1);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_int_equal(e->ndescs, 2);
	assert_ptr_equal(e->write_iov[0].iov_base, td_mem_hva(h.m, a + 8));
	vd_vq_push(h.vq, e, 2);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_ptr_equal(e->write_iov[0].iov_base, td_mem_hva(h.m, a + 128));
	vd_vq_push(h.vq, e, 3);
	vd_vq_flush(h.vq);
	for (int i = 0; i < 3; i++) {
		void *t;
		uint32_t len;

		assert_int_equal(td_vq_get_used(h.q, &t, &len), 1);
		assert_ptr_equal(t, &tok[i == 0 ? 1 : i == 1 ? 0 : 2]);
		assert_int_equal(len, (uint32_t)i + 1);
	}
	vd_vq_get_base(h.vq, &ai, &aw, &ui, &uw);
	assert_int_equal(ai, 4);
	assert_int_equal(ui, 4);
	assert_true(uw);
	vqh_fini(&h);
}

static void packed_requeue_position_out_of_range_marks_broken(void **state)
{
	struct vqh h;
	uint16_t bad = 8;

	(void)state;
	vqh_new(&h, VD_VQ_PACKED, 8, false, false);
	assert_int_equal(vd_vq_requeue(h.vq, &bad, 1), 0);
	vqh_expect_broken(&h, VD_VQ_ERR_HEAD_RANGE);
	vqh_fini(&h);
}

static void packed_start_position_and_wrap_are_honoured(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	struct vring_packed_desc *ring;
	uint64_t a;

	(void)state;
	/* A device resuming at position 2 with wrap counter 0 takes a
	 * descriptor there only when it is available for wrap 0. */
	vqh_init(&h, VD_VQ_PACKED, 4, false, false);
	h.cfg.avail_idx = 2;
	h.cfg.avail_wrap = false;
	h.cfg.used_idx_valid = false;
	vqh_start(&h);
	ring = td_vq_packed_desc(h.q);
	a = td_mem_alloc(h.m, 64, 8);
	ring[2].addr = htole64(a);
	ring[2].len = htole32(8);
	ring[2].id = htole16(1);
	ring[2].flags = htole16(P_AVAIL | VRING_DESC_F_WRITE);
	assert_int_equal(vd_vq_pop(h.vq, &e), 0);
	ring[2].flags = htole16(P_USED | VRING_DESC_F_WRITE);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	vd_vq_push(h.vq, e, 8);
	vd_vq_flush(h.vq);
	/* Used for wrap 0: AVAIL = USED = 0, WRITE set. */
	assert_int_equal(le16toh(ring[2].flags), VRING_DESC_F_WRITE);
	assert_int_equal(le32toh(ring[2].len), 8);
	vqh_fini(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(packed_chain_round_trips_data_and_buffer_id),
		cmocka_unit_test(packed_70000_requests_in_order_across_wraps),
		cmocka_unit_test(
			packed_70000_requests_out_of_order_across_wraps),
		cmocka_unit_test(packed_out_of_order_with_indirect_small_ring),
		cmocka_unit_test(packed_70000_requests_two_threads),
		cmocka_unit_test(packed_buffer_id_comes_from_last_descriptor),
		cmocka_unit_test(packed_buffer_id_out_of_range_marks_broken),
		cmocka_unit_test(packed_buffer_id_in_flight_marks_broken),
		cmocka_unit_test(
			packed_more_buffers_than_queue_size_marks_broken),
		cmocka_unit_test(packed_chain_longer_than_queue_marks_broken),
		cmocka_unit_test(packed_indirect_inside_list_marks_broken),
		cmocka_unit_test(packed_indirect_table_ignores_flags_but_write),
		cmocka_unit_test(packed_descriptor_not_available_is_not_popped),
		cmocka_unit_test(packed_used_flags_follow_device_wrap_counter),
		cmocka_unit_test(packed_batch_is_exposed_by_first_flags_last),
		cmocka_unit_test(packed_requeue_pops_ring_positions_first),
		cmocka_unit_test(
			packed_requeue_position_out_of_range_marks_broken),
		cmocka_unit_test(packed_start_position_and_wrap_are_honoured),
	};

	return cmocka_run_group_tests_name("virtqueue packed", tests, NULL,
					   NULL);
}
