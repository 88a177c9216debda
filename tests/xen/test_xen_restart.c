/* A daemon that goes away while its guest runs: handed over on purpose or
 * killed, its successor takes the IOREQ server over, answers the ioreq a
 * vCPU was left waiting on, and the guest's driver carries on without a
 * reset, wrapped split or packed rings with EVENT_IDX included. A stale record
 * never makes it take over someone else's server. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <xendevicemodel.h>

#include "xtest.h"

#define DOMID 9

static char img[64];
static int img_fd = -1;
static char *state_dir;
static struct sx_vdev *dev;

static int group_setup(void **state)
{
	(void)state;
	vd_log_set_level(VD_LOG_WARN);
	sx_init(SX_X86);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	assert_int_equal(sx_domain_create(DOMID, SX_HVM, 2, 64), 0);
	img_fd = xt_image(img, sizeof(img));
	assert_true(img_fd >= 0);
	state_dir = xt_tmpdir();
	assert_non_null(state_dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	sx_vdev_free(dev);
	dev = NULL;
	sx_domain_destroy(DOMID);
	close(img_fd);
	unlink(img);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", state_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", state_dir);
	free(state_dir);
	return 0;
}

static struct vd_model *model(void)
{
	struct vd_model *m = xt_blk_model(img, false);

	assert_non_null(m);
	return m;
}

static void probe_with(uint64_t features)
{
	struct sx_vdev_opts o = {
		.domid = DOMID,
		.base = XT_BASE,
		.features = 1ULL << VIRTIO_F_VERSION_1 | features,
		.queue_size = 64,
		.device_id = VIRTIO_ID_BLOCK,
	};

	assert_int_equal(sx_vdev_probe(&o, &dev), 0);
	assert_int_equal(sx_vdev_features(dev) & features, features);
}

static void probe(void)
{
	probe_with(0);
}

/* Write a fresh pattern at sector, read it back, compare. */
static void rw_check(unsigned vcpu, uint64_t sector, uint32_t seed)
{
	uint8_t *ram = sx_guest_ram(DOMID), disk[4096];
	uint64_t w = sx_vdev_alloc(dev, 4096), r = sx_vdev_alloc(dev, 4096);

	for (size_t i = 0; i < 4096; i++)
		ram[w + i] = xt_pattern(seed, i);
	assert_int_equal(
		sx_blk_rw(dev, vcpu, VIRTIO_BLK_T_OUT, sector, w, 4096), 0);
	memset(ram + r, 0, 4096);
	assert_int_equal(sx_blk_rw(dev, vcpu, VIRTIO_BLK_T_IN, sector, r, 4096),
			 0);
	assert_memory_equal(ram + w, ram + r, 4096);
	assert_int_equal(pread(img_fd, disk, 4096, (off_t)sector * 512), 4096);
	assert_memory_equal(disk, ram + w, 4096);
}

struct pending {
	pthread_t t;
	uint64_t val;
	int rc;
};

static void *read_magic(void *arg)
{
	struct pending *p = arg;

	p->rc = sx_mmio_read(DOMID, 1, XT_BASE + VIRTIO_MMIO_STATUS, 4,
			     &p->val);
	return NULL;
}

static void handover_keeps_the_device_and_answers_the_waiting_vcpu(void **s)
{
	struct xt_server a, b;
	struct sx_counters c0, c1;
	struct pending p = {0};

	(void)s;
	assert_int_equal(xt_serve_start(&a, DOMID, XT_IRQ_X86,
					VD_XEN_MEM_FOREIGN, 0, state_dir,
					model()),
			 0);
	probe();
	rw_check(0, 100, 1);
	assert_int_equal(xt_serve_stop(&a, VD_XEN_HANDOVER), 0);
	/* Left for the successor: the window stays claimed. */
	assert_int_equal(sx_servers(DOMID), 1);
	/* A vCPU touches the device in between: it waits. */
	assert_int_equal(pthread_create(&p.t, NULL, read_magic, &p), 0);
	usleep(50000);
	sx_counters(&c0);
	assert_int_equal(xt_serve_start(&b, DOMID, XT_IRQ_X86,
					VD_XEN_MEM_FOREIGN, 0, state_dir,
					model()),
			 0);
	pthread_join(p.t, NULL);
	assert_int_equal(p.rc, 0);
	/* The device is still DRIVER_OK: restored, not reset. */
	assert_int_equal(p.val, 0xf);
	sx_counters(&c1);
	assert_int_equal(c1.dm_create, c0.dm_create); /* taken over */
	rw_check(0, 200, 2);
	rw_check(1, 300, 3);
	assert_int_equal(xt_serve_stop(&b, VD_XEN_STOP), 0);
	assert_int_equal(sx_servers(DOMID), 0);
}

/* Handed over after the ring wrapped, with what Linux negotiates: the
 * successor resumes at the same position and wrap counter, and EVENT_IDX
 * (avail_event / used_event, or the packed event structures) goes on. */
static void handover_after_wrap(uint64_t layout)
{
	struct xt_server a, b;
	struct sx_vdev_stats st;

	assert_int_equal(xt_serve_start(&a, DOMID, XT_IRQ_X86,
					VD_XEN_MEM_FOREIGN, 0, state_dir,
					model()),
			 0);
	probe_with(layout | 1ULL << VIRTIO_RING_F_EVENT_IDX |
		   1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	/* 2 requests of one slot each per round: 80 slots of 64. */
	for (unsigned i = 0; i < 40; i++)
		rw_check(i % 2, 1000 + 8 * i, 100 + i);
	assert_int_equal(xt_serve_stop(&a, VD_XEN_HANDOVER), 0);
	assert_int_equal(xt_serve_start(&b, DOMID, XT_IRQ_X86,
					VD_XEN_MEM_FOREIGN, 0, state_dir,
					model()),
			 0);
	for (unsigned i = 0; i < 40; i++)
		rw_check(i % 2, 1400 + 8 * i, 200 + i);
	sx_vdev_stats(dev, &st);
	assert_int_equal(st.indirect, 160);
	assert_int_equal(st.bad_ring, 0);
	assert_int_equal(xt_serve_stop(&b, VD_XEN_STOP), 0);
}

static void handover_of_a_wrapped_split_ring_with_event_idx(void **s)
{
	(void)s;
	handover_after_wrap(0);
}

static void handover_of_a_wrapped_packed_ring_with_event_idx(void **s)
{
	(void)s;
	handover_after_wrap(1ULL << VIRTIO_F_RING_PACKED);
}

static pid_t fork_server(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct vd_xen_config cfg = {.domid = DOMID,
					    .mmio_base = XT_BASE,
					    .irq = XT_IRQ_X86,
					    .who = "blk (child)",
					    .state_dir = state_dir};
		volatile int stop = 0;

		_exit(vd_xen_serve(&cfg, model(), &stop) ? 1 : 0);
	}
	for (int i = 0; i < 2000 && sx_server_for(DOMID, XT_BASE) < 0; i++)
		usleep(1000);
	return pid;
}

static void crash_and_take_over(uint64_t features, unsigned rounds)
{
	struct sx_counters c0, c1;
	struct pending p = {0};
	pid_t pid;
	int st;

	pid = fork_server();
	probe_with(features);
	for (unsigned i = 0; i < rounds; i++)
		rw_check(i % 2, 400 + 8 * i, 4 + i);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	/* The dead daemon's server still claims the window. */
	assert_int_equal(sx_servers(DOMID), 1);
	assert_int_equal(pthread_create(&p.t, NULL, read_magic, &p), 0);
	usleep(50000);
	sx_counters(&c0);
	pid = fork_server();
	pthread_join(p.t, NULL);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.val, 0xf);
	sx_counters(&c1);
	assert_int_equal(c1.dm_create, c0.dm_create);
	/* The ring carries on where the dead daemon left it. */
	for (unsigned i = 0; i < 20; i++)
		rw_check(i % 2, 1500 + 8 * i, 100 + i);
	kill(pid, SIGTERM); /* no handler: dies as a crash would */
	waitpid(pid, &st, 0);
}

static void crash_then_successor_takes_over(void **s)
{
	(void)s;
	crash_and_take_over(0, 2);
}

/* Nothing in flight at the crash: a packed ring resumes too. */
static void crash_after_wrap_of_a_packed_ring_with_event_idx(void **s)
{
	(void)s;
	crash_and_take_over(1ULL << VIRTIO_F_RING_PACKED |
				    1ULL << VIRTIO_RING_F_EVENT_IDX |
				    1ULL << VIRTIO_RING_F_INDIRECT_DESC,
			    40);
}

/* The record names a server id that is now another device model's: the
 * successor must leave it alone and make its own. */
static void stale_record_never_takes_over_another_server(void **s)
{
	struct xt_server a, b;
	xendevicemodel_handle *dm;
	ioservid_t qemu;

	(void)s;
	assert_int_equal(xt_serve_start(&a, DOMID, XT_IRQ_X86,
					VD_XEN_MEM_FOREIGN, 0, state_dir,
					model()),
			 0);
	probe();
	assert_int_equal(xt_serve_stop(&a, VD_XEN_HANDOVER), 0);
	/* Someone destroys it; a QEMU gets the same id for its window. */
	dm = xendevicemodel_open(NULL, 0);
	assert_non_null(dm);
	assert_int_equal(
		xendevicemodel_destroy_ioreq_server(
			dm, DOMID, (ioservid_t)sx_server_for(DOMID, XT_BASE)),
		0);
	assert_int_equal(
		xendevicemodel_create_ioreq_server(dm, DOMID, 0, &qemu), 0);
	assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(
				 dm, DOMID, qemu, 1, 0xfe100000, 0xfe100fff),
			 0);
	assert_int_equal(
		xendevicemodel_set_ioreq_server_state(dm, DOMID, qemu, 1), 0);
	assert_int_equal(xt_serve_start(&b, DOMID, XT_IRQ_X86,
					VD_XEN_MEM_FOREIGN, 0, state_dir,
					model()),
			 0);
	assert_int_equal(sx_server_for(DOMID, 0xfe100000), (int)qemu);
	assert_true(sx_server_for(DOMID, XT_BASE) != (int)qemu);
	assert_int_equal(sx_servers(DOMID), 2);
	/* A fresh device: the guest probes again. */
	sx_vdev_free(dev);
	dev = NULL;
	probe();
	rw_check(0, 600, 7);
	assert_int_equal(xt_serve_stop(&b, VD_XEN_STOP), 0);
	assert_int_equal(sx_server_for(DOMID, 0xfe100000), (int)qemu);
	xendevicemodel_destroy_ioreq_server(dm, DOMID, qemu);
	xendevicemodel_close(dm);
}

/* A record about an earlier domain with the same id is ignored. */
static void record_of_an_earlier_domain_is_ignored(void **s)
{
	struct xt_server a, b;
	struct sx_counters c0, c1;

	(void)s;
	assert_int_equal(xt_serve_start(&a, DOMID, XT_IRQ_X86,
					VD_XEN_MEM_FOREIGN, 0, state_dir,
					model()),
			 0);
	probe();
	assert_int_equal(xt_serve_stop(&a, VD_XEN_HANDOVER), 0);
	sx_vdev_free(dev);
	dev = NULL;
	/* The guest is destroyed and another gets its domid. */
	sx_domain_destroy(DOMID);
	assert_int_equal(sx_domain_create(DOMID, SX_HVM, 2, 64), 0);
	sx_counters(&c0);
	assert_int_equal(xt_serve_start(&b, DOMID, XT_IRQ_X86,
					VD_XEN_MEM_FOREIGN, 0, state_dir,
					model()),
			 0);
	sx_counters(&c1);
	/* Only its own new server's page was mapped: the old id was not
	 * even tried. */
	assert_int_equal(c1.fm_map_resource - c0.fm_map_resource, 1);
	assert_int_equal(c1.dm_create - c0.dm_create, 1);
	probe();
	rw_check(0, 700, 8);
	assert_int_equal(xt_serve_stop(&b, VD_XEN_STOP), 0);
}

/* The predecessor died between raising the ISA line and lowering it: an
 * asserted line takes no new edge, so the successor lowers it first. */
static void line_left_asserted_is_lowered(void **s)
{
	xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
	struct xt_server a;

	(void)s;
	assert_non_null(dm);
	assert_int_equal(
		xendevicemodel_set_isa_irq_level(dm, DOMID, XT_IRQ_X86, 1), 0);
	xendevicemodel_close(dm);
	assert_int_equal(xt_serve_start(&a, DOMID, XT_IRQ_X86,
					VD_XEN_MEM_FOREIGN, 0, state_dir,
					model()),
			 0);
	probe();
	rw_check(0, 800, 9); /* waits for the completion's interrupt */
	assert_int_equal(xt_serve_stop(&a, VD_XEN_STOP), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			handover_keeps_the_device_and_answers_the_waiting_vcpu,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			handover_of_a_wrapped_split_ring_with_event_idx, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			handover_of_a_wrapped_packed_ring_with_event_idx, setup,
			teardown),
		cmocka_unit_test_setup_teardown(crash_then_successor_takes_over,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			crash_after_wrap_of_a_packed_ring_with_event_idx, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			stale_record_never_takes_over_another_server, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			record_of_an_earlier_domain_is_ignored, setup,
			teardown),
		cmocka_unit_test_setup_teardown(line_left_asserted_is_lowered,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
