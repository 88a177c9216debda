/* The Xen shim under the sandbox, through the stand-in: a child process
 * seals itself as the daemon does (the IOREQ loop enters its role, the
 * process filter goes to every thread, queue threads add theirs), then a
 * guest reads, writes and flushes through foreign and grant mappings on
 * split and packed rings, and the device stops. A call outside the
 * profiles kills the child with SIGSYS; the parent reads the status. The
 * stand-in's own calls (eventfds, shared memory) run under the same
 * filter: the union is what sandbox_table.c allows. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "sandbox.h"
#include "xtest.h"

#define DOMID 6

/* In the child: 0 when every step worked, else the step that failed. */
static int child_run(enum vd_xen_mem_mode mode, uint64_t ring_features,
		     enum sandbox_mode sandbox)
{
	struct sandbox_config sc = {
		.mode = sandbox, .shim = "xen", .device = "blk"};
	struct xt_server srv;
	struct sx_vdev *dev = NULL;
	struct vd_model *m;
	char img[64], *dir;
	uint64_t rbuf, wbuf;
	uint8_t *ram;
	int fd;

	sandbox_setup(&sc);
	if (sx_domain_create(DOMID, SX_HVM, 2, 64) < 0)
		return 10;
	fd = xt_image(img, sizeof(img));
	dir = xt_tmpdir();
	if (fd < 0 || !dir)
		return 11;
	m = xt_blk_model(img, false);
	if (!m || xt_serve_start(&srv, DOMID, XT_IRQ_X86, mode, 0, dir, m))
		return 12;
	{
		struct sx_vdev_opts o = {
			.domid = DOMID,
			.base = XT_BASE,
			.grant = mode == VD_XEN_MEM_GRANT,
			.features = (1ULL << VIRTIO_F_VERSION_1) |
				    (1ULL << VIRTIO_BLK_F_FLUSH) |
				    (1ULL << VIRTIO_F_ACCESS_PLATFORM) |
				    ring_features,
			.queue_size = 128,
			.device_id = VIRTIO_ID_BLOCK,
		};

		if (sx_vdev_probe(&o, &dev))
			return 13;
	}
	ram = sx_guest_ram(DOMID);
	rbuf = sx_vdev_alloc(dev, 4096);
	wbuf = sx_vdev_alloc(dev, 4096);
	for (unsigned i = 0; i < 32; i++) {
		for (size_t b = 0; b < 4096; b++)
			ram[wbuf + b] = xt_pattern(77 + i, b);
		if (sx_blk_rw(dev, i % 2, VIRTIO_BLK_T_OUT, 8 * i, wbuf,
			      4096) != VIRTIO_BLK_S_OK ||
		    sx_blk_rw(dev, i % 2, VIRTIO_BLK_T_IN, 8 * i, rbuf, 4096) !=
			    VIRTIO_BLK_S_OK ||
		    memcmp(ram + rbuf, ram + wbuf, 4096))
			return 14;
		if (sx_blk_rw(dev, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0) !=
		    VIRTIO_BLK_S_OK)
			return 15;
	}
	if (xt_serve_stop(&srv, VD_STOP))
		return 16;
	sx_vdev_free(dev);
	return 0;
}

extern const struct vd_device_type vd_rng_type;

/* virtio-rng with --rate, sealed: requests beyond the bucket wait for the
 * queue's timer (timerfd), created when the queue starts, after the seal. */
static int child_rng_rate(void)
{
	struct sandbox_config sc = {
		.mode = SANDBOX_SECCOMP, .shim = "xen", .device = "rng"};
	struct sx_vdev_opts o = {
		.domid = DOMID,
		.base = XT_BASE,
		.features = (1ULL << VIRTIO_F_VERSION_1) |
			    (1ULL << VIRTIO_F_ACCESS_PLATFORM),
		.queue_size = 64,
		.device_id = VIRTIO_ID_RNG,
	};
	struct sx_blk_io io[8];
	struct xt_server srv;
	struct sx_vdev *dev = NULL;
	struct vd_model *m = NULL;
	char err[256];
	void *opts = NULL;

	sandbox_setup(&sc);
	if (sx_domain_create(DOMID, SX_HVM, 2, 64) < 0 ||
	    vd_device_type_opts_new(&vd_rng_type, &opts) < 0 ||
	    vd_device_type_opts_set(&vd_rng_type, opts, "rate", "2k", err,
				    sizeof(err)) < 0 ||
	    vd_rng_type.create(opts, &m, err, sizeof(err)) < 0)
		return 20;
	vd_device_type_opts_free(&vd_rng_type, opts);
	if (xt_serve_start(&srv, DOMID, XT_IRQ_X86, VD_XEN_MEM_FOREIGN, 0, NULL,
			   m) ||
	    sx_vdev_probe(&o, &dev))
		return 21;
	memset(io, 0, sizeof(io));
	for (unsigned i = 0; i < 8; i++) {
		io[i].type = SX_IO_RAW_IN;
		io[i].nseg = 1;
		io[i].seg[0] = (struct sx_seg){sx_vdev_alloc(dev, 512), 512};
	}
	/* 4 KiB at 2000 bytes/s: most of it after the timer */
	if (sx_blk_submit(dev, 0, io, 8, 0))
		return 22;
	if (xt_serve_stop(&srv, VD_STOP))
		return 23;
	sx_vdev_free(dev);
	return 0;
}

static void run_child(int (*child)(void))
{
	pid_t pid;
	int st = 0;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child());
	assert_int_equal(waitpid(pid, &st, 0), pid);
	sx_domain_destroy(DOMID);
	if (WIFSIGNALED(st))
		fail_msg("the sealed Xen device died of signal %d%s",
			 WTERMSIG(st),
			 WTERMSIG(st) == SIGSYS
				 ? " (SIGSYS: a call outside its profile)"
				 : "");
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void sealed_rng_with_rate_serves_requests(void **state)
{
	(void)state;
	run_child(child_rng_rate);
}

static enum vd_xen_mem_mode io_mode;
static uint64_t io_ring_features;

static int child_io(void)
{
	return child_run(io_mode, io_ring_features, SANDBOX_SECCOMP);
}

static void run_sealed(enum vd_xen_mem_mode mode, uint64_t ring_features)
{
	io_mode = mode;
	io_ring_features = ring_features;
	run_child(child_io);
}

static void sealed_foreign_split_serves_io(void **state)
{
	(void)state;
	run_sealed(VD_XEN_MEM_FOREIGN, 0);
}

static void sealed_foreign_packed_event_idx_serves_io(void **state)
{
	(void)state;
	run_sealed(VD_XEN_MEM_FOREIGN,
		   (1ULL << VIRTIO_F_RING_PACKED) |
			   (1ULL << VIRTIO_RING_F_EVENT_IDX));
}

static void sealed_grant_split_serves_io(void **state)
{
	(void)state;
	run_sealed(VD_XEN_MEM_GRANT, 0);
}

static int group_setup(void **state)
{
	(void)state;
	vd_log_set_level(VD_LOG_WARN);
	sx_init(SX_X86);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sealed_foreign_split_serves_io),
		cmocka_unit_test(sealed_foreign_packed_event_idx_serves_io),
		cmocka_unit_test(sealed_grant_split_serves_io),
		cmocka_unit_test(sealed_rng_with_rate_serves_requests),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
