/* Online resize reaches a Xen guest: the same core call the control socket
 * makes (vd_dev_resize) on a device the unmodified Xen shim serves raises
 * the config interrupt (InterruptStatus bit 1, one edge), bumps
 * ConfigGeneration, and the guest's config read gives the new capacity. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "xtest.h"

#define DOMID 6

static struct vd_dev *found;

static void take_dev(struct vd_dev *dev, void *arg)
{
	(void)arg;
	assert_null(found); /* the one device of this process */
	found = dev;
}

static void resize_raises_the_config_interrupt(void **state)
{
	struct sx_vdev_opts o = {
		.domid = DOMID,
		.base = XT_BASE,
		.features = 1ULL << VIRTIO_F_VERSION_1,
		.queue_size = 128,
		.device_id = VIRTIO_ID_BLOCK,
	};
	struct xt_server srv = {0};
	struct sx_vdev *dev = NULL;
	uint64_t isr = 0, gen0 = 0, gen1 = 0, edges, cap = 0;
	char img[64], err[256] = "", *dir = xt_tmpdir();
	struct vd_model *m;
	struct stat st;
	int fd;

	(void)state;
	assert_int_equal(sx_domain_create(DOMID, SX_HVM, 1, 64), 0);
	fd = xt_image(img, sizeof(img));
	assert_true(fd >= 0);
	m = xt_blk_model(img, false);
	assert_non_null(m);
	assert_int_equal(xt_serve_start(&srv, DOMID, XT_IRQ_X86,
					VD_XEN_MEM_FOREIGN, 64, dir, m),
			 0);
	assert_int_equal(sx_vdev_probe(&o, &dev), 0);
	assert_int_equal(sx_vdev_config(dev, 0, 0, &cap, 8), 0);
	assert_int_equal(cap, XT_IMG_SIZE / 512);
	/* interrupts masked: InterruptStatus stays as the device set it */
	sx_vdev_hold_irq(dev, true);
	assert_int_equal(sx_mmio_read(DOMID, 0,
				      XT_BASE + VIRTIO_MMIO_CONFIG_GENERATION,
				      4, &gen0),
			 0);
	edges = sx_irq_edges(DOMID);
	found = NULL;
	vd_dev_for_each(take_dev, NULL);
	assert_non_null(found);
	assert_int_equal(
		vd_dev_resize(found, 2 * XT_IMG_SIZE, err, sizeof(err)), 1);
	assert_true(sx_irq_wait(DOMID, edges, 2000) == edges + 1);
	assert_int_equal(sx_mmio_read(DOMID, 0,
				      XT_BASE + VIRTIO_MMIO_INTERRUPT_STATUS, 4,
				      &isr),
			 0);
	assert_int_equal(isr & VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(sx_mmio_read(DOMID, 0,
				      XT_BASE + VIRTIO_MMIO_CONFIG_GENERATION,
				      4, &gen1),
			 0);
	assert_true(gen1 != gen0);
	assert_int_equal(sx_vdev_config(dev, 0, 0, &cap, 8), 0);
	assert_int_equal(cap, 2 * XT_IMG_SIZE / 512);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 2 * XT_IMG_SIZE);
	/* no change, no interrupt */
	assert_int_equal(vd_dev_resize(found, 0, err, sizeof(err)), 0);
	assert_int_equal(sx_irq_edges(DOMID), edges + 1);
	sx_vdev_hold_irq(dev, false);
	xt_serve_stop(&srv, VD_STOP);
	sx_vdev_free(dev);
	sx_domain_destroy(DOMID);
	close(fd);
	unlink(img);
	rmdir(dir);
	free(dir);
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
		cmocka_unit_test(resize_raises_the_config_interrupt),
	};

	return cmocka_run_group_tests_name("xen resize", tests, group_setup,
					   NULL);
}
