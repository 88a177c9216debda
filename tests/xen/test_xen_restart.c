/* A daemon that goes away while its guest runs: handed over on purpose or
 * killed, its successor takes the IOREQ server over, answers the ioreq a
 * vCPU was left waiting on, and the guest's driver carries on without a
 * reset, wrapped split or packed rings with EVENT_IDX included; chains in
 * flight at a SIGKILL are served again, exactly once, split or packed. A stale
 * record never makes it take over someone else's server. */
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
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
	assert_int_equal(xt_serve_stop(&a, VD_HANDOVER), 0);
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
	assert_int_equal(xt_serve_stop(&b, VD_STOP), 0);
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
	assert_int_equal(xt_serve_stop(&a, VD_HANDOVER), 0);
	assert_int_equal(xt_serve_start(&b, DOMID, XT_IRQ_X86,
					VD_XEN_MEM_FOREIGN, 0, state_dir,
					model()),
			 0);
	for (unsigned i = 0; i < 40; i++)
		rw_check(i % 2, 1400 + 8 * i, 200 + i);
	sx_vdev_stats(dev, &st);
	assert_int_equal(st.indirect, 160);
	assert_int_equal(st.bad_ring, 0);
	assert_int_equal(xt_serve_stop(&b, VD_STOP), 0);
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

/* ---- a daemon that dies with requests in flight
 *
 * In the child that is to be killed, blk's queue callbacks are replaced:
 * every chain is popped, every second one (0, 2, ...) is answered at once
 * with VIRTIO_BLK_S_UNSUPP and nothing done, the others are held and never
 * answered. Config space and features stay blk's, so the successor (a
 * plain blk model) takes the same device over. */
static atomic_uint *held_pops; /* shared with the child */

static int hold_queue_start(void *model, struct vd_queue *q)
{
	(void)model;
	(void)q;
	return 0;
}

static void hold_queue_kick(void *model, struct vd_queue *q)
{
	struct vd_vq_elem *e;

	(void)model;
	while (vd_vq_pop(vd_queue_vq(q), &e) == 1) {
		unsigned k = atomic_fetch_add(held_pops, 1);
		const struct iovec *last;

		if (k % 2 || !e->n_write)
			continue; /* held: in flight when the daemon dies */
		last = &e->write_iov[e->n_write - 1];
		((uint8_t *)last->iov_base)[last->iov_len - 1] =
			VIRTIO_BLK_S_UNSUPP;
		vd_vq_push(vd_queue_vq(q), e, (uint32_t)e->write_len);
	}
}

static void hold_queue_stop(void *model, struct vd_queue *q)
{
	(void)model;
	(void)q;
}

static struct vd_model *holding_model(void)
{
	static struct vd_device_ops ops;
	struct vd_model *m = model();

	ops = *m->ops;
	ops.queue_start = hold_queue_start;
	ops.queue_kick = hold_queue_kick;
	ops.queue_poll = NULL;
	ops.queue_stop = hold_queue_stop;
	m->ops = &ops;
	return m;
}

static pid_t fork_server_with(bool holding)
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

		_exit(vd_xen_serve(&cfg, holding ? holding_model() : model(),
				   &stop)
			      ? 1
			      : 0);
	}
	for (int i = 0; i < 2000 && sx_server_for(DOMID, XT_BASE) < 0; i++)
		usleep(1000);
	return pid;
}

static pid_t fork_server(void)
{
	return fork_server_with(false);
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

#define N_INFLIGHT 6

struct batch {
	pthread_t t;
	struct sx_blk_req r[N_INFLIGHT];
	int rc;
};

static void *run_batch(void *arg)
{
	struct batch *b = arg;

	b->rc = sx_blk_rw_batch(dev, 0, b->r, N_INFLIGHT);
	return NULL;
}

/* SIGKILL with chains in flight, some completed out of order before it:
 * the successor serves the held ones again, each exactly once, and the
 * ones answered before the crash are not served twice. */
static void crash_with_requests_in_flight(uint64_t features)
{
	uint8_t *ram = sx_guest_ram(DOMID), disk[4096];
	struct sx_vdev_stats st;
	struct batch b = {0};
	pid_t pid;
	int status;

	held_pops = mmap(NULL, sizeof(*held_pops), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(held_pops != MAP_FAILED);
	atomic_store(held_pops, 0);
	pid = fork_server_with(true);
	probe_with(features);
	/* A few served before, so the ring is not at its start. */
	for (unsigned i = 0; i < N_INFLIGHT; i++) {
		b.r[i] = (struct sx_blk_req){
			.type = VIRTIO_BLK_T_OUT,
			.len = 4096,
			.sector = 2000 + 16 * i,
			.data_gpa = sx_vdev_alloc(dev, 4096),
		};
		for (size_t k = 0; k < 4096; k++)
			ram[b.r[i].data_gpa + k] = xt_pattern(500 + i, k);
	}
	assert_int_equal(pthread_create(&b.t, NULL, run_batch, &b), 0);
	for (int i = 0; i < 5000 && atomic_load(held_pops) < N_INFLIGHT; i++)
		usleep(1000);
	assert_int_equal(atomic_load(held_pops), N_INFLIGHT);
	usleep(50000); /* the answered half is published and notified */
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	pid = fork_server();
	pthread_join(b.t, NULL);
	assert_int_equal(b.rc, 0);
	for (unsigned i = 0; i < N_INFLIGHT; i++) {
		off_t off = (off_t)b.r[i].sector * 512;

		assert_int_equal(pread(img_fd, disk, 4096, off), 4096);
		if (i % 2 == 0) {
			/* answered by the dead daemon, never written */
			assert_int_equal(b.r[i].status, VIRTIO_BLK_S_UNSUPP);
			for (size_t k = 0; k < 4096; k++)
				assert_int_equal(
					disk[k],
					xt_pattern((uint32_t)(b.r[i].sector +
							      k / 512),
						   k % 512));
		} else {
			/* held, then served by the successor */
			assert_int_equal(b.r[i].status, VIRTIO_BLK_S_OK);
			assert_memory_equal(disk, ram + b.r[i].data_gpa, 4096);
		}
	}
	/* No id came back twice, and the ring goes on. */
	sx_vdev_stats(dev, &st);
	assert_int_equal(st.bad_ring, 0);
	for (unsigned i = 0; i < 2 * N_INFLIGHT; i++)
		rw_check(i % 2, 2400 + 8 * i, 600 + i);
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	munmap(held_pops, sizeof(*held_pops));
}

static void crash_with_split_chains_in_flight(void **s)
{
	(void)s;
	crash_with_requests_in_flight(1ULL << VIRTIO_RING_F_EVENT_IDX);
}

/* Linux's default: a packed ring, chains of three descriptors (no indirect
 * tables), so the out-of-order completions overwrite held chains' slots. */
static void crash_with_packed_chains_in_flight(void **s)
{
	(void)s;
	crash_with_requests_in_flight(1ULL << VIRTIO_F_RING_PACKED |
				      1ULL << VIRTIO_RING_F_EVENT_IDX);
}

/* The same with indirect tables (one ring slot per request). */
static void crash_with_packed_indirect_chains_in_flight(void **s)
{
	(void)s;
	crash_with_requests_in_flight(1ULL << VIRTIO_F_RING_PACKED |
				      1ULL << VIRTIO_RING_F_EVENT_IDX |
				      1ULL << VIRTIO_RING_F_INDIRECT_DESC);
}

struct one_rw {
	pthread_t t;
	uint64_t gpa;
	int rc;
};

static void *one_read(void *arg)
{
	struct one_rw *r = arg;

	r->rc = sx_blk_rw(dev, 0, VIRTIO_BLK_T_IN, 64, r->gpa, 4096);
	return NULL;
}

/* The daemon completes a request, sets InterruptStatus and raises the
 * line, and dies before the guest reads InterruptStatus (its vCPU had
 * interrupts off). Linux's vm_interrupt looks at the rings only if that
 * read says INT_VRING: the successor must say so, or the completion is
 * never seen and the guest's I/O hangs. */
static void crash_between_interrupt_and_its_status_read(uint64_t features)
{
	uint8_t disk[4096];
	struct one_rw r = {0};
	uint64_t edges;
	pid_t pid;
	int st;

	pid = fork_server();
	probe_with(features);
	rw_check(0, 8, 1);
	r.gpa = sx_vdev_alloc(dev, 4096);
	sx_vdev_hold_irq(dev, true);
	edges = sx_irq_edges(DOMID);
	assert_int_equal(pthread_create(&r.t, NULL, one_read, &r), 0);
	assert_true(sx_irq_wait(DOMID, edges, 5000) > edges);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	pid = fork_server();
	sx_vdev_hold_irq(dev, false);
	pthread_join(r.t, NULL);
	assert_int_equal(r.rc, VIRTIO_BLK_S_OK);
	assert_int_equal(pread(img_fd, disk, 4096, 64 * 512), 4096);
	assert_memory_equal(disk, sx_guest_ram(DOMID) + r.gpa, 4096);
	rw_check(0, 800, 2);
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
}

static void crash_before_the_guest_reads_its_interrupt_split(void **s)
{
	(void)s;
	crash_between_interrupt_and_its_status_read(0);
}

static void crash_before_the_guest_reads_its_interrupt_packed(void **s)
{
	(void)s;
	crash_between_interrupt_and_its_status_read(
		1ULL << VIRTIO_F_RING_PACKED | 1ULL << VIRTIO_RING_F_EVENT_IDX);
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
	assert_int_equal(xt_serve_stop(&a, VD_HANDOVER), 0);
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
	assert_int_equal(xt_serve_stop(&b, VD_STOP), 0);
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
	assert_int_equal(xt_serve_stop(&a, VD_HANDOVER), 0);
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
	assert_int_equal(xt_serve_stop(&b, VD_STOP), 0);
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
	assert_int_equal(xt_serve_stop(&a, VD_STOP), 0);
}

/* A state directory others may write is refused at start, with the
 * reason: the device is not served rather than served with a record an
 * attacker could plant or redirect. */
static void unsafe_state_dir_refuses_to_serve(void **s)
{
	struct xt_server a;

	(void)s;
	assert_int_equal(chmod(state_dir, 0777), 0);
	assert_int_equal(xt_serve_start(&a, DOMID, XT_IRQ_X86,
					VD_XEN_MEM_FOREIGN, 0, state_dir,
					model()),
			 -EPERM);
	xt_serve_stop(&a, 0);
	assert_int_equal(sx_server_for(DOMID, XT_BASE), -1);
	assert_int_equal(chmod(state_dir, 0700), 0);
	assert_int_equal(xt_serve_start(&a, DOMID, XT_IRQ_X86,
					VD_XEN_MEM_FOREIGN, 0, state_dir,
					model()),
			 0);
	probe();
	rw_check(0, 900, 10);
	assert_int_equal(xt_serve_stop(&a, VD_STOP), 0);
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
			crash_with_split_chains_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(
			crash_with_packed_chains_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(
			crash_with_packed_indirect_chains_in_flight, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			crash_before_the_guest_reads_its_interrupt_split, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			crash_before_the_guest_reads_its_interrupt_packed,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			stale_record_never_takes_over_another_server, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			record_of_an_earlier_domain_is_ignored, setup,
			teardown),
		cmocka_unit_test_setup_teardown(line_left_asserted_is_lowered,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			unsafe_state_dir_refuses_to_serve, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
