/* vd_vq_unpop, both layouts: a chain given back comes out of the next pop
 * unchanged, only the latest pop still out can be given back, and what the
 * driver sees after pushes around given-back chains is what it posted. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "vq_harness.h"

static uint64_t post(struct vqh *h, int *token, uint32_t len)
{
	uint64_t a = td_mem_alloc(h->m, len, 8);
	struct td_buf b = {a, len, true};

	assert_int_equal(td_vq_add(h->q, &b, 1, false, token), 0);
	return a;
}

static void unpop_round_trip(enum vd_vq_layout layout)
{
	struct vqh h;
	struct vd_vq_elem *e[3], *again;
	int tok[3];
	uint64_t gpa[3];
	uint16_t avail, used;
	bool aw, uw;
	void *t;
	uint32_t len;

	vqh_new(&h, layout, 4, false, false);
	for (int i = 0; i < 3; i++)
		gpa[i] = post(&h, &tok[i], 100 + i);
	for (int i = 0; i < 3; i++)
		assert_int_equal(vd_vq_pop(h.vq, &e[i]), 1);
	/* Not the latest: refused, nothing changes. */
	assert_int_equal(vd_vq_unpop(h.vq, e[1]), -EINVAL);
	assert_int_equal(vd_vq_inflight(h.vq), 3);
	assert_int_equal(vd_vq_unpop(h.vq, e[2]), 0);
	assert_int_equal(vd_vq_unpop(h.vq, e[1]), 0);
	assert_int_equal(vd_vq_inflight(h.vq), 1);
	/* Given back twice, or never popped: refused. */
	assert_int_equal(vd_vq_unpop(h.vq, e[1]), -EINVAL);
	vd_vq_get_base(h.vq, &avail, &aw, &used, &uw);
	assert_int_equal(avail, 1);
	/* The first is pushed; the next pops are the given-back chains. */
	vd_vq_push(h.vq, e[0], 7);
	for (int i = 1; i < 3; i++) {
		assert_int_equal(vd_vq_pop(h.vq, &again), 1);
		assert_ptr_equal(again->write_iov[0].iov_base,
				 td_mem_hva(h.m, gpa[i]));
		assert_int_equal(again->write_len, 100 + i);
		vd_vq_push(h.vq, again, (uint32_t)i);
	}
	assert_int_equal(vd_vq_pop(h.vq, &again), 0);
	vd_vq_flush(h.vq);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(td_vq_get_used(h.q, &t, &len), 1);
		assert_ptr_equal(t, &tok[i]);
		assert_int_equal(len, i ? (uint32_t)i : 7u);
	}
	assert_false(vd_vq_broken(h.vq));
	vqh_fini(&h);
}

static void split_unpopped_chains_pop_again_unchanged(void **state)
{
	(void)state;
	unpop_round_trip(VD_VQ_SPLIT);
}

static void packed_unpopped_chains_pop_again_unchanged(void **state)
{
	(void)state;
	unpop_round_trip(VD_VQ_PACKED);
}

/* Packed: a given-back chain across the ring's end takes the wrap counter
 * back with it. */
static void packed_unpop_across_the_wrap(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	int tok[8];
	void *t;
	uint32_t len;

	(void)state;
	vqh_new(&h, VD_VQ_PACKED, 4, false, false);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 3; i++)
			post(&h, &tok[i], 64);
		for (int i = 0; i < 3; i++) {
			assert_int_equal(vd_vq_pop(h.vq, &e), 1);
			if (round == 1 && i == 0) {
				/* position 3 -> wraps to 0 after this one */
				assert_int_equal(vd_vq_unpop(h.vq, e), 0);
				assert_int_equal(vd_vq_pop(h.vq, &e), 1);
			}
			vd_vq_push(h.vq, e, 1);
		}
		vd_vq_flush(h.vq);
		for (int i = 0; i < 3; i++)
			assert_int_equal(td_vq_get_used(h.q, &t, &len), 1);
	}
	assert_false(vd_vq_broken(h.vq));
	vqh_fini(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(split_unpopped_chains_pop_again_unchanged),
		cmocka_unit_test(packed_unpopped_chains_pop_again_unchanged),
		cmocka_unit_test(packed_unpop_across_the_wrap),
	};

	return cmocka_run_group_tests_name("virtqueue unpop", tests, NULL,
					   NULL);
}
