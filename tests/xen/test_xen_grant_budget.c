/* Grant mode: the guest does not decide how much dom0 maps. With a budget
 * of 64 grant pages per queue, a guest that queues four times that is
 * served whole (every read and write checked against the image) while the
 * stand-in never sees more than the budget mapped at once beside the rings;
 * a single chain larger than the whole budget breaks the device
 * (DEVICE_NEEDS_RESET) with the reason logged. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "xtest.h"

#define DOMID	 6
#define RAM_MIB	 64
#define IMG_SIZE (16u << 20)
#define BUDGET	 64u
#define NREQ	 24u
#define REQ_LEN	 16384u /* 4 pages, + header and status: 6 grants */

struct budget_case {
	const char *name;
	bool packed_indirect;
	const char *engine;
};

static const struct budget_case cases[] = {
	{"split_guest_queueing_4x_the_budget_is_served_within_it", false,
	 "io-engine=sync"},
	{"packed_indirect_guest_queueing_4x_the_budget_is_served_within_it",
	 true, "io-engine=uring"},
};

static struct xt_disk disk;
static struct xt_server srv;
static struct sx_vdev *dev;
static char *state_dir;

static int group_setup(void **state)
{
	(void)state;
	return xt_begin(&disk, IMG_SIZE);
}

static int group_teardown(void **state)
{
	(void)state;
	return xt_end(&disk);
}

static int case_teardown(void **state)
{
	(void)state;
	xt_case_end(&srv, &dev, DOMID, &state_dir);
	return 0;
}

/* Serving with BUDGET grant pages per queue; the guest probed with
 * grants; returns the grant pages the rings hold (mapped for the queue's
 * life, outside the budget). */
static uint64_t start(const struct budget_case *c)
{
	const char *opts[] = {c->engine, NULL};
	struct vd_xen_config cfg = {.domid = DOMID,
				    .mmio_base = XT_BASE,
				    .irq = XT_IRQ_X86,
				    .mem_mode = VD_XEN_MEM_GRANT,
				    .grant_budget_pages = BUDGET};
	struct sx_vdev_opts o = {
		.domid = DOMID,
		.base = XT_BASE,
		.grant = true,
		.features =
			1ULL << VIRTIO_F_VERSION_1 |
			1ULL << VIRTIO_F_ACCESS_PLATFORM |
			(c->packed_indirect
				 ? 1ULL << VIRTIO_F_RING_PACKED |
					   1ULL << VIRTIO_RING_F_INDIRECT_DESC
				 : 0),
		.queue_size = 128,
		.device_id = VIRTIO_ID_BLOCK,
	};
	struct sx_counters cnt;

	assert_int_equal(xt_disk_reset(&disk), 0);
	assert_int_equal(sx_domain_create(DOMID, SX_HVM, 1, RAM_MIB), 0);
	state_dir = xt_tmpdir();
	assert_non_null(state_dir);
	cfg.state_dir = state_dir;
	assert_int_equal(xt_serve_start_cfg(&srv, &cfg,
					    xt_blk_model_opts(disk.path, opts)),
			 0);
	assert_int_equal(sx_vdev_probe(&o, &dev), 0);
	sx_counters(&cnt);
	sx_gnt_peak_reset();
	return cnt.gnt_live_pages;
}

static void served_within_the_budget(void **state)
{
	const struct budget_case *c = *state;
	static struct sx_blk_io io[NREQ];
	uint64_t rings = start(c);
	uint8_t *ram = sx_guest_ram(DOMID);
	struct sx_counters cnt;
	char why[160];

	/* Half reads, half writes, each its own 4 pages and header page:
	 * 24 x 6 = 144 grant pages wanted at once, more than twice the
	 * budget. */
	memset(io, 0, sizeof(io));
	for (unsigned i = 0; i < NREQ; i++) {
		uint64_t data = sx_vdev_alloc(dev, REQ_LEN);

		io[i].type = i % 2 ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
		io[i].sector = 64 + (uint64_t)i * (REQ_LEN / 512);
		io[i].hdr_gpa = sx_vdev_alloc(dev, 4096);
		io[i].nseg = 1;
		io[i].seg[0] = (struct sx_seg){data, REQ_LEN};
		if (io[i].type == VIRTIO_BLK_T_OUT) {
			for (uint32_t b = 0; b < REQ_LEN; b++)
				ram[data + b] = xt_pattern(500 + i, b);
			xt_disk_wrote(&disk, io[i].sector, ram + data, REQ_LEN);
		}
	}
	assert_int_equal(sx_blk_submit(dev, 0, io, NREQ, 0), 0);
	for (unsigned i = 0; i < NREQ; i++) {
		assert_int_equal(io[i].status, VIRTIO_BLK_S_OK);
		if (io[i].type == VIRTIO_BLK_T_IN)
			assert_true(xt_disk_read_ok(&disk, io[i].sector,
						    ram + io[i].seg[0].gpa,
						    REQ_LEN));
	}
	if (xt_disk_check(&disk, why, sizeof(why)))
		fail_msg("%s", why);
	sx_counters(&cnt);
	printf("# grant pages: %" PRIu64 " at most at once (rings %" PRIu64
	       ", budget %u, %u wanted)\n",
	       cnt.gnt_peak_pages, rings, BUDGET, NREQ * 6);
	assert_true(cnt.gnt_peak_pages - rings <= BUDGET);
	/* The budget was reached, not merely respected by a small batch. */
	assert_true(cnt.gnt_peak_pages - rings > BUDGET / 2);
	assert_int_equal(xt_serve_stop(&srv, VD_STOP), 0);
	sx_counters(&cnt);
	assert_int_equal(cnt.gnt_live_pages, 0);
}

/* One read of 512 KiB: 128 data pages, twice the whole budget. It can
 * never fit, so the device breaks instead of waiting forever. */
static void chain_larger_than_the_budget_breaks_the_device(void **state)
{
	static const struct budget_case c = {"", false, "io-engine=sync"};
	uint64_t rings, data;
	struct sx_counters cnt;

	(void)state;
	rings = start(&c);
	data = sx_vdev_alloc(dev, 512 << 10);
	assert_int_equal(sx_blk_rw(dev, 0, VIRTIO_BLK_T_IN, 0, data, 512 << 10),
			 -EIO);
	sx_counters(&cnt);
	assert_true(cnt.gnt_peak_pages - rings <= BUDGET);
}

int main(void)
{
	struct CMUnitTest tests[3];
	unsigned n = sizeof(cases) / sizeof(cases[0]);

	for (unsigned i = 0; i < n; i++)
		tests[i] = (struct CMUnitTest){
			.name = cases[i].name,
			.test_func = served_within_the_budget,
			.teardown_func = case_teardown,
			.initial_state = (void *)&cases[i]};
	tests[n] = (struct CMUnitTest){
		.name = "chain_larger_than_the_budget_breaks_the_device",
		.test_func = chain_larger_than_the_budget_breaks_the_device,
		.teardown_func = case_teardown};
	return _cmocka_run_group_tests("test_xen_grant_budget", tests, n + 1,
				       group_setup, group_teardown);
}
