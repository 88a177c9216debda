/* The restart record on its own: what a crash leaves (chains popped, pushed,
 * published) turns into the right chains to serve again, in submission
 * order (split: requeued heads; packed: chains written back into the ring),
 * and a damaged record is refused. */
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

/* Rings of 16 in plain memory: the record only reads the used index
 * (split) and the descriptors it copies (packed). */
static struct vring_desc split_desc[16];
static uint8_t split_used[6 + 8 * 16] __attribute__((aligned(4)));
static struct vring_packed_desc packed_desc[16];
static uint16_t dummy_area[64] __attribute__((aligned(8)));

static void fill_setup(struct vd_queue_setup *setup, enum vd_vq_layout layout)
{
	memset(setup, 0, sizeof(*setup));
	setup->vq = (struct vd_vq_config){
		.layout = layout,
		.num = 16,
		.desc = layout == VD_VQ_PACKED ? (void *)packed_desc
					       : (void *)split_desc,
		.driver = dummy_area,
		.device = layout == VD_VQ_PACKED ? (void *)dummy_area
						 : (void *)split_used,
		.avail_wrap = true,
		.used_wrap = true,
		.used_idx_valid = true,
	};
}

static void set_used_idx(uint16_t idx)
{
	memcpy(split_used + 2, &idx, 2);
}

static struct vd_xen_state *running_record(struct vd_vq_hooks *h,
					   enum vd_vq_layout layout)
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
	struct vd_queue_setup setup;
	struct vd_xen_state *s;

	memset(split_used, 0, sizeof(split_used));
	memset(packed_desc, 0, sizeof(packed_desc));
	assert_int_equal(vd_xen_state_create(path, 2, 16, &s), 0);
	vd_xen_state_set_server(s, 3, handle);
	vd_xen_state_set_device(s, &st, qs, false);
	fill_setup(&setup, layout);
	assert_int_equal(vd_xen_state_queue_start(s, 0, &setup, NULL), 0);
	assert_int_equal(setup.n_requeue, 0);
	*h = setup.hooks;
	return s;
}

static void pop(struct vd_vq_hooks *h, uint16_t id, uint16_t ndescs)
{
	struct vd_vq_elem e = {.id = id, .ndescs = ndescs};

	h->on_pop(h->ctx, &e);
}

static void push(struct vd_vq_hooks *h, uint16_t id, uint16_t ndescs)
{
	struct vd_vq_elem e = {.id = id, .ndescs = ndescs};

	h->on_push(h->ctx, &e);
}

/* A successor's queue start on the same rings, from the dead one's record. */
static void successor_start(const struct vd_xen_prev *p,
			    enum vd_vq_layout layout,
			    struct vd_queue_setup *setup)
{
	char path2[160];
	struct vd_xen_state *s2;

	snprintf(path2, sizeof(path2), "%s.next", path);
	assert_int_equal(vd_xen_state_create(path2, 2, 16, &s2), 0);
	fill_setup(setup, layout);
	assert_int_equal(vd_xen_state_queue_start(s2, 0, setup,
						  vd_xen_prev_inflight(p, 0)),
			 0);
	/* The requeued heads are copied out before the record goes. */
	if (setup->n_requeue) {
		static uint16_t heads[16];

		memcpy(heads, setup->requeue,
		       setup->n_requeue * sizeof(heads[0]));
		setup->requeue = heads;
	}
	vd_xen_state_close(s2, true);
}

static void crash_leaves_the_chains_in_flight_in_order(void **state)
{
	struct vd_xen_prev p;
	struct vd_mmio_queue_state q;
	struct vd_vq_hooks h;
	struct vd_queue_setup next;
	struct vd_xen_state *s = running_record(&h, VD_VQ_SPLIT);

	(void)state;
	pop(&h, 5, 1);
	pop(&h, 2, 1);
	pop(&h, 9, 1);
	push(&h, 2, 1);
	h.on_publish(h.ctx, 1, false);
	push(&h, 9, 1); /* written to the ring, not yet published */
	/* the process dies here: the record is read as it stands */
	assert_int_equal(vd_xen_prev_load(path, &p), 0);
	assert_int_equal(p.server_id, 3);
	assert_true(p.have_device);
	assert_false(p.clean);
	assert_int_equal(p.st.status, 0xf);
	vd_xen_prev_queue(&p, 0, &q);
	assert_int_equal(q.ready, 1);
	assert_int_equal(q.desc, 0x1000);
	assert_non_null(vd_xen_prev_inflight(&p, 0));
	/* the ring says 1 published: 5 and 9 again, in pop order, and new
	 * chains from 1 + 2 on */
	set_used_idx(1);
	successor_start(&p, VD_VQ_SPLIT, &next);
	assert_int_equal(next.n_requeue, 2);
	assert_int_equal(next.requeue[0], 5);
	assert_int_equal(next.requeue[1], 9);
	assert_int_equal(next.vq.avail_idx, 3);
	assert_false(next.vq.used_idx_valid);
	/* the ring says 2: 9's publish reached the driver before the crash */
	set_used_idx(2);
	successor_start(&p, VD_VQ_SPLIT, &next);
	assert_int_equal(next.n_requeue, 1);
	assert_int_equal(next.requeue[0], 5);
	assert_int_equal(next.vq.avail_idx, 3);
	/* the idle queue has nothing */
	assert_null(vd_xen_prev_inflight(&p, 1));
	vd_xen_prev_free(&p);
	vd_xen_state_close(s, true);
	assert_int_equal(access(path, F_OK), -1);
}

static void packed_desc_at(uint16_t pos, uint64_t addr, uint16_t id,
			   uint16_t flags)
{
	packed_desc[pos] = (struct vring_packed_desc){
		.addr = addr,
		.len = 512,
		.id = id,
		.flags = (uint16_t)(flags | 1u << VRING_PACKED_DESC_F_AVAIL),
	};
}

/* A packed chain completed out of order overwrote the ring slots of one
 * still in flight: the successor finds that one written back from the
 * used position on, whole, as an available chain. */
static void packed_chains_in_flight_are_written_back(void **state)
{
	struct vd_xen_prev p;
	struct vd_vq_hooks h;
	struct vd_queue_setup next;
	struct vd_xen_state *s = running_record(&h, VD_VQ_PACKED);

	(void)state;
	/* id 7: three descriptors at 0..2; id 4: two at 3..4 */
	packed_desc_at(0, 0x10000, 0, VRING_DESC_F_NEXT);
	packed_desc_at(1, 0x11000, 0, VRING_DESC_F_NEXT);
	packed_desc_at(2, 0x12000, 7, VRING_DESC_F_WRITE);
	packed_desc_at(3, 0x13000, 0, VRING_DESC_F_NEXT);
	packed_desc_at(4, 0x14000, 4, VRING_DESC_F_WRITE);
	pop(&h, 7, 3);
	pop(&h, 4, 2);
	/* id 4 completes first: its used element lands on slot 0 */
	push(&h, 4, 2);
	packed_desc[0] = (struct vring_packed_desc){
		.id = 4,
		.flags = 1u << VRING_PACKED_DESC_F_AVAIL |
			 1u << VRING_PACKED_DESC_F_USED,
	};
	h.on_publish(h.ctx, 2, true);
	assert_int_equal(vd_xen_prev_load(path, &p), 0);
	successor_start(&p, VD_VQ_PACKED, &next);
	assert_int_equal(next.n_requeue, 0);
	assert_int_equal(next.vq.avail_idx, 2);
	assert_true(next.vq.avail_wrap);
	assert_int_equal(next.vq.used_idx, 2);
	assert_true(next.vq.used_idx_valid);
	for (unsigned k = 0; k < 3; k++) {
		assert_int_equal(packed_desc[2 + k].addr, 0x10000 + 0x1000 * k);
		assert_int_equal(packed_desc[2 + k].len, 512);
		assert_int_equal(packed_desc[2 + k].flags &
					 (1u << VRING_PACKED_DESC_F_AVAIL |
					  1u << VRING_PACKED_DESC_F_USED),
				 1u << VRING_PACKED_DESC_F_AVAIL);
	}
	assert_int_equal(packed_desc[4].id, 7);
	assert_int_equal(packed_desc[4].flags & VRING_DESC_F_WRITE,
			 VRING_DESC_F_WRITE);
	assert_int_equal(packed_desc[2].flags & VRING_DESC_F_NEXT,
			 VRING_DESC_F_NEXT);
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
	struct vd_xen_state *s = running_record(&h, VD_VQ_SPLIT);

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
	/* nothing to take over: the queue starts fresh at those positions */
	assert_null(vd_xen_prev_inflight(&p, 0));
	vd_xen_prev_free(&p);
}

static void damaged_records_are_refused(void **state)
{
	struct vd_xen_prev p;
	struct vd_vq_hooks h;
	struct vd_xen_state *s = running_record(&h, VD_VQ_SPLIT);
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

/* A symlink at the record's path: refused by the check and by the load,
 * and creating the record replaces the link, never writes through it. */
static void symlink_at_the_record_path_is_refused(void **state)
{
	char target[160], why[640], buf[8] = {0};
	struct vd_xen_state *s;
	struct vd_xen_prev p;
	struct stat sb;
	int fd;

	(void)state;
	snprintf(target, sizeof(target), "%s/victim", dir);
	fd = open(target, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "precious", 8), 8);
	close(fd);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(vd_xen_state_check(path, why, sizeof(why)), -ELOOP);
	assert_non_null(strstr(why, "symlink"));
	assert_int_equal(vd_xen_prev_load(path, &p), -ELOOP);
	assert_int_equal(vd_xen_state_create(path, 2, 16, &s), 0);
	vd_xen_state_close(s, false);
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	fd = open(target, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, 8), 8);
	close(fd);
	assert_memory_equal(buf, "precious", 8);
	assert_int_equal(stat(target, &sb), 0);
	assert_int_equal(sb.st_size, 8);
	unlink(target);
}

/* A directory others may write (not sticky) is refused; a sticky one,
 * like /tmp, is not: others cannot replace our names there. */
static void world_writable_state_dir_is_refused(void **state)
{
	char why[640];

	(void)state;
	assert_int_equal(vd_xen_state_check(path, why, sizeof(why)), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(vd_xen_state_check(path, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, dir));
	assert_non_null(strstr(why, "writable by group or others"));
	assert_int_equal(chmod(dir, 0770), 0);
	assert_int_equal(vd_xen_state_check(path, why, sizeof(why)), -EPERM);
	assert_int_equal(chmod(dir, 01777), 0);
	assert_int_equal(vd_xen_state_check(path, why, sizeof(why)), 0);
	assert_int_equal(chmod(dir, 0700), 0);
}

/* A directory, or a record, owned by another user is refused. Making
 * one needs root (make check runs as root). */
static void state_dir_of_another_owner_is_refused(void **state)
{
	struct vd_xen_state *s;
	struct vd_xen_prev p;
	char why[640];

	(void)state;
	if (geteuid() != 0) {
		printf("SKIP: not root, cannot give the state directory "
		       "another owner\n");
		skip();
	}
	assert_int_equal(chown(dir, 65534, 65534), 0);
	assert_int_equal(vd_xen_state_check(path, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "owned by uid 65534"));
	assert_int_equal(chown(dir, 0, 0), 0);
	/* a record planted by another user: not loaded */
	assert_int_equal(vd_xen_state_create(path, 2, 16, &s), 0);
	vd_xen_state_close(s, false);
	assert_int_equal(vd_xen_prev_load(path, &p), 0);
	vd_xen_prev_free(&p);
	assert_int_equal(chown(path, 65534, 65534), 0);
	assert_int_equal(vd_xen_state_check(path, why, sizeof(why)), -EPERM);
	assert_int_equal(vd_xen_prev_load(path, &p), -EPERM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			crash_leaves_the_chains_in_flight_in_order, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			packed_chains_in_flight_are_written_back, setup,
			teardown),
		cmocka_unit_test_setup_teardown(handover_record_is_exact, setup,
						teardown),
		cmocka_unit_test_setup_teardown(damaged_records_are_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			symlink_at_the_record_path_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(
			world_writable_state_dir_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(
			state_dir_of_another_owner_is_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
