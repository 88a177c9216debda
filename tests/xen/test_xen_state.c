/* The restart record on its own: what a crash leaves (chains popped, pushed,
 * published) turns into the right chains to serve again, in submission
 * order, and a damaged record is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "state.h"
#include "xtest.h"

static char dir[64], path[128];

static int setup(void **state)
{
	char *d = xt_tmpdir();

	(void)state;
	assert_non_null(d);
	snprintf(dir, sizeof(dir), "%s", d);
	free(d);
	vd_xen_state_path(path, sizeof(path), dir, 4, 0x2000000);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

static struct vd_xen_state *running_record(struct vd_vq_hooks *h,
					   enum vd_vq_layout layout,
					   unsigned n_requeue)
{
	static const uint8_t handle[16] = {1, 2, 3};
	struct vd_mmio_state st = {.status = 0xf,
				   .driver_features = 1ULL << 32};
	struct vd_mmio_queue_state qs[2] = {
		{.num = 16,
		 .ready = 1,
		 .desc = 0x1000,
		 .driver = 0x2000,
		 .device = 0x3000},
		{.num = 16},
	};
	struct vd_vq_config vq = {.layout = layout,
				  .num = 16,
				  .avail_wrap = true,
				  .used_wrap = true};
	struct vd_xen_state *s;

	assert_int_equal(vd_xen_state_create(path, 2, 16, &s), 0);
	vd_xen_state_set_server(s, 3, handle);
	vd_xen_state_set_device(s, &st, qs, false);
	memset(h, 0, sizeof(*h));
	vd_xen_state_queue_start(s, 0, &vq, n_requeue, h);
	return s;
}

static void pop(struct vd_vq_hooks *h, uint16_t id, uint16_t ndescs)
{
	struct vd_vq_elem e = {.id = id, .ndescs = ndescs};

	h->on_pop(h->ctx, &e);
}

static void push(struct vd_vq_hooks *h, uint16_t id)
{
	struct vd_vq_elem e = {.id = id};

	h->on_push(h->ctx, &e);
}

static void crash_leaves_the_chains_in_flight_in_order(void **state)
{
	struct vd_xen_prev p;
	struct vd_mmio_queue_state q;
	struct vd_vq_hooks h;
	struct vd_xen_state *s = running_record(&h, VD_VQ_SPLIT, 0);
	uint16_t heads[16];
	unsigned n;

	(void)state;
	pop(&h, 5, 1);
	pop(&h, 2, 1);
	pop(&h, 9, 1);
	push(&h, 2);
	h.on_publish(h.ctx, 1, false);
	push(&h, 9); /* written to the ring, not yet published */
	/* the process dies here: the record is read as it stands */
	assert_int_equal(vd_xen_prev_load(path, &p), 0);
	assert_int_equal(p.server_id, 3);
	assert_true(p.have_device);
	assert_false(p.clean);
	assert_int_equal(p.st.status, 0xf);
	vd_xen_prev_queue(&p, 0, &q);
	assert_int_equal(q.ready, 1);
	assert_int_equal(q.desc, 0x1000);
	assert_int_equal(q.avail_idx, 3);
	assert_int_equal(q.used_idx_valid, 0);
	/* the ring says 1 published: 5 and 9 again, in pop order */
	assert_int_equal(vd_xen_prev_requeue(&p, 0, 1, heads, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(heads[0], 5);
	assert_int_equal(heads[1], 9);
	/* the ring says 2: 9's publish reached the driver before the crash */
	assert_int_equal(vd_xen_prev_requeue(&p, 0, 2, heads, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(heads[0], 5);
	/* the idle queue has nothing */
	assert_int_equal(vd_xen_prev_requeue(&p, 1, 0, heads, &n), 0);
	assert_int_equal(n, 0);
	vd_xen_prev_free(&p);
	vd_xen_state_close(s, true);
	assert_int_equal(access(path, F_OK), -1);
}

static void requeued_pops_do_not_move_the_avail_index(void **state)
{
	struct vd_xen_prev p;
	struct vd_mmio_queue_state q;
	struct vd_vq_hooks h;
	struct vd_xen_state *s = running_record(&h, VD_VQ_SPLIT, 2);

	(void)state;
	pop(&h, 4, 1); /* requeued */
	pop(&h, 6, 1); /* requeued */
	pop(&h, 7, 1); /* new: avail 0 -> 1 */
	assert_int_equal(vd_xen_prev_load(path, &p), 0);
	vd_xen_prev_queue(&p, 0, &q);
	assert_int_equal(q.avail_idx, 1);
	vd_xen_prev_free(&p);
	vd_xen_state_close(s, true);
}

static void packed_chains_in_flight_cannot_be_requeued(void **state)
{
	struct vd_xen_prev p;
	struct vd_mmio_queue_state q;
	struct vd_vq_hooks h;
	struct vd_xen_state *s = running_record(&h, VD_VQ_PACKED, 0);
	uint16_t heads[16];
	unsigned n;

	(void)state;
	pop(&h, 0, 10);
	pop(&h, 1, 10); /* wraps: 20 - 16 = 4, wrap counter flips */
	assert_int_equal(vd_xen_prev_load(path, &p), 0);
	vd_xen_prev_queue(&p, 0, &q);
	assert_int_equal(q.avail_idx, 4);
	assert_int_equal(q.avail_wrap, 0);
	assert_int_equal(vd_xen_prev_requeue(&p, 0, 0, heads, &n), -EOPNOTSUPP);
	vd_xen_prev_free(&p);
	vd_xen_state_close(s, true);
}

static void handover_record_is_exact(void **state)
{
	struct vd_mmio_state st = {.status = 0xf};
	struct vd_mmio_queue_state qs[2] =
		{
			{.num = 16,
			 .ready = 1,
			 .avail_idx = 40,
			 .used_idx = 40,
			 .used_idx_valid = 1},
			{0},
		},
				   q;
	struct vd_xen_prev p;
	struct vd_vq_hooks h;
	struct vd_xen_state *s = running_record(&h, VD_VQ_SPLIT, 0);
	uint16_t heads[16];
	unsigned n;

	(void)state;
	pop(&h, 3, 1); /* drained by the handover, which records positions */
	vd_xen_state_set_device(s, &st, qs, true);
	vd_xen_state_close(s, false);
	assert_int_equal(vd_xen_prev_load(path, &p), 0);
	assert_true(p.clean);
	vd_xen_prev_queue(&p, 0, &q);
	assert_int_equal(q.avail_idx, 40);
	assert_int_equal(q.used_idx, 40);
	assert_int_equal(q.used_idx_valid, 1);
	assert_int_equal(vd_xen_prev_requeue(&p, 0, 40, heads, &n), 0);
	assert_int_equal(n, 0);
	vd_xen_prev_free(&p);
}

static void damaged_records_are_refused(void **state)
{
	struct vd_xen_prev p;
	struct vd_vq_hooks h;
	struct vd_xen_state *s = running_record(&h, VD_VQ_SPLIT, 0);
	int fd;

	(void)state;
	vd_xen_state_close(s, false);
	/* cut short */
	assert_int_equal(truncate(path, 100), 0);
	assert_int_equal(vd_xen_prev_load(path, &p), -EINVAL);
	/* not ours */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd,
			       "hello, this is not a record at all......"
			       "............................................"
			       "............................................",
			       128),
			 128);
	close(fd);
	assert_int_equal(vd_xen_prev_load(path, &p), -EINVAL);
	unlink(path);
	assert_int_equal(vd_xen_prev_load(path, &p), -ENOENT);
	assert_int_equal(p.server_id, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			crash_leaves_the_chains_in_flight_in_order, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			requeued_pops_do_not_move_the_avail_index, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			packed_chains_in_flight_cannot_be_requeued, setup,
			teardown),
		cmocka_unit_test_setup_teardown(handover_record_is_exact, setup,
						teardown),
		cmocka_unit_test_setup_teardown(damaged_records_are_refused,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
