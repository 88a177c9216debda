/* The core inflight tracker (virtiod/inflight.h) on real rings: a device
 * pops through vd_vq with the tracker's hooks, completes some chains out of
 * order and "dies"; a successor attaches to the same region and serves
 * exactly the chains the driver has not seen completed, with the same
 * buffers, split (requeued heads) and packed (chains written back into the
 * ring). A batch whose publication reached the driver is not served
 * again. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_driver.h"
#include "virtiod/inflight.h"
#include "virtiod/virtqueue.h"

#define QSIZE 32
#define NCH   6

struct run {
	struct td_mem *m;
	struct td_vq *q;
	void *region;
	uint64_t gpa[NCH]; /* each chain's first buffer */
	bool drop_publish; /* the process dies between ring store and hook */
	struct vd_inflight *t;
};

static void hook_pop(void *ctx, const struct vd_vq_elem *e)
{
	vd_inflight_popped(((struct run *)ctx)->t, e);
}

static void hook_push(void *ctx, const struct vd_vq_elem *e)
{
	vd_inflight_pushed(((struct run *)ctx)->t, e);
}

static void hook_publish(void *ctx, uint16_t idx, bool wrap)
{
	struct run *r = ctx;

	if (!r->drop_publish)
		vd_inflight_published(r->t, idx, wrap);
}

/* A device incarnation: attach (recovering if asked), then a vd_vq. */
static struct vd_vq *incarnation(struct run *r, bool recover, uint16_t *requeue,
				 unsigned *n)
{
	struct vd_vq_config cfg;
	struct vd_vq_hooks h = {.ctx = r,
				.on_pop = hook_pop,
				.on_push = hook_push,
				.on_publish = hook_publish};
	struct vd_vq *vq;

	td_vq_fill_config(r->q, &cfg);
	if (recover) {
		/* where the dead one was, as a shim would restart it */
		cfg.used_idx_valid = false;
	}
	vd_inflight_free(r->t);
	assert_int_equal(vd_inflight_attach(r->region, QSIZE, recover, &cfg,
					    requeue, n, "test", &r->t),
			 0);
	assert_int_equal(vd_vq_new(&cfg, td_mem_vd(r->m), &h, "test q0", &vq),
			 0);
	if (*n)
		assert_int_equal(vd_vq_requeue(vq, requeue, *n), 0);
	return vq;
}

static void run_init(struct run *r, enum vd_vq_layout layout, bool indirect)
{
	memset(r, 0, sizeof(*r));
	r->m = td_mem_new(1 << 20, 2);
	r->q = td_vq_new(r->m, layout, QSIZE, true, indirect);
	r->region = calloc(1, vd_inflight_region_size(layout, QSIZE));
	assert_non_null(r->region);
	/* Six chains of three buffers (header, data, status), tokens 1..6. */
	for (uintptr_t i = 0; i < NCH; i++) {
		struct td_buf b[3] = {
			{.gpa = td_mem_alloc(r->m, 16, 16), .len = 16},
			{.gpa = td_mem_alloc(r->m, 512, 16),
			 .len = 512,
			 .write = true},
			{.gpa = td_mem_alloc(r->m, 1, 1),
			 .len = 1,
			 .write = true},
		};

		r->gpa[i] = b[0].gpa;
		assert_int_equal(
			td_vq_add(r->q, b, 3, indirect, (void *)(i + 1)), 0);
	}
}

static void run_fini(struct run *r)
{
	vd_inflight_free(r->t);
	free(r->region);
	td_vq_free(r->q);
	td_mem_free(r->m);
}

/* Which chain an element is, by its first buffer. */
static unsigned chain_of(struct run *r, const struct vd_vq_elem *e)
{
	assert_true(e->n_read >= 1);
	for (unsigned i = 0; i < NCH; i++)
		if (e->read_iov[0].iov_base == td_mem_hva(r->m, r->gpa[i]))
			return i;
	fail_msg("element is no chain of this test");
	return 0;
}

/* First life: pop all six, complete 1 and 3 (published), then 4 pushed
 * but its batch never published (or published without the hook). */
static void first_life(struct run *r)
{
	struct vd_vq_elem *e[NCH];
	uint16_t rq[QSIZE];
	unsigned n = 0;
	struct vd_vq *vq = incarnation(r, false, rq, &n);

	for (unsigned i = 0; i < NCH; i++) {
		assert_int_equal(vd_vq_pop(vq, &e[i]), 1);
		assert_int_equal(chain_of(r, e[i]), i);
	}
	vd_vq_push(vq, e[1], 1);
	vd_vq_push(vq, e[3], 1);
	vd_vq_flush(vq);
	vd_vq_push(vq, e[4], 1);
	if (r->drop_publish)
		vd_vq_flush(vq); /* the ring is published, the record not */
	/* The process dies: nothing more reaches the ring or the record;
	 * the element pool goes with it. */
	vd_vq_free(vq);
}

/* Second life: the chains served are exactly `want` (in pop order), each
 * once, with their buffers; then the driver sees every token once. */
static void second_life(struct run *r, const unsigned *want, unsigned nwant)
{
	uint16_t rq[QSIZE];
	unsigned n = 0, got = 0, seen[NCH + 1] = {0};
	struct vd_vq *vq = incarnation(r, true, rq, &n);
	struct vd_vq_elem *e;
	void *token;
	uint32_t len;

	while (vd_vq_pop(vq, &e) == 1) {
		assert_true(got < nwant);
		assert_int_equal(chain_of(r, e), want[got]);
		assert_int_equal(e->n_read + e->n_write, 3);
		got++;
		vd_vq_push(vq, e, 1);
	}
	assert_int_equal(got, nwant);
	vd_vq_flush(vq);
	while (td_vq_get_used(r->q, &token, &len) == 1)
		seen[(uintptr_t)token]++;
	for (unsigned i = 1; i <= NCH; i++)
		assert_int_equal(seen[i], 1);
	vd_vq_free(vq);
}

static void split_crash_serves_unpublished_chains_once_in_pop_order(void **s)
{
	static const unsigned want[] = {0, 2, 4, 5};
	struct run r;

	(void)s;
	run_init(&r, VD_VQ_SPLIT, false);
	first_life(&r);
	second_life(&r, want, 4);
	run_fini(&r);
}

static void split_batch_published_before_the_hook_is_not_served_again(void **s)
{
	static const unsigned want[] = {0, 2, 5};
	struct run r;

	(void)s;
	run_init(&r, VD_VQ_SPLIT, false);
	r.drop_publish = true;
	first_life(&r);
	r.drop_publish = false;
	second_life(&r, want, 3);
	run_fini(&r);
}

static void packed_crash_writes_chains_back_and_serves_them_once(void **s)
{
	static const unsigned want[] = {0, 2, 4, 5};
	struct run r;

	(void)s;
	run_init(&r, VD_VQ_PACKED, false);
	first_life(&r);
	second_life(&r, want, 4);
	run_fini(&r);
}

static void packed_indirect_chains_are_written_back_too(void **s)
{
	static const unsigned want[] = {0, 2, 4, 5};
	struct run r;

	(void)s;
	run_init(&r, VD_VQ_PACKED, true);
	first_life(&r);
	second_life(&r, want, 4);
	run_fini(&r);
}

static void packed_batch_seen_by_the_driver_is_not_served_again(void **s)
{
	static const unsigned want[] = {0, 2, 5};
	struct run r;

	(void)s;
	run_init(&r, VD_VQ_PACKED, false);
	r.drop_publish = true;
	first_life(&r);
	r.drop_publish = false;
	second_life(&r, want, 3);
	run_fini(&r);
}

static void attach_refuses_a_region_smaller_than_the_queue(void **s)
{
	struct run r;
	struct vd_vq_config cfg;
	struct vd_inflight *t = (void *)1;
	uint16_t rq[QSIZE];
	unsigned n = 7;

	(void)s;
	run_init(&r, VD_VQ_SPLIT, false);
	td_vq_fill_config(r.q, &cfg);
	assert_int_equal(vd_inflight_attach(r.region, QSIZE / 2, false, &cfg,
					    rq, &n, "test", &t),
			 -EINVAL);
	assert_null(t);
	assert_int_equal(n, 0);
	run_fini(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			split_crash_serves_unpublished_chains_once_in_pop_order),
		cmocka_unit_test(
			split_batch_published_before_the_hook_is_not_served_again),
		cmocka_unit_test(
			packed_crash_writes_chains_back_and_serves_them_once),
		cmocka_unit_test(packed_indirect_chains_are_written_back_too),
		cmocka_unit_test(
			packed_batch_seen_by_the_driver_is_not_served_again),
		cmocka_unit_test(
			attach_refuses_a_region_smaller_than_the_queue),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
