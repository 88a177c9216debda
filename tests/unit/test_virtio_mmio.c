/* The virtio-mmio register model on its own: identification, the status
 * handshake, queue setup (split and packed) and notification, interrupt
 * status and its ACK, config space widths, refusals (wrong width, unknown
 * or read-only register, setup after DRIVER_OK), reset, and a handover
 * (suspend, restore) that carries a running queue on. */
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_driver.h"
#include "virtiod/log.h"
#include "virtiod/virtio_mmio.h"

#define DEV_ID	 42
#define NQ	 2
#define QMAX	 64
#define CFG_SIZE 16
#define WAIT_MS	 5000

/* ------------------------------------------------------------ a model */

struct fake {
	struct vd_model m;
	uint8_t config[CFG_SIZE];
	atomic_int kicks, resets, destroyed;
	uint64_t features;
};

static struct fake *fake;

static void f_get_config(void *model, uint32_t off, void *buf, uint32_t len)
{
	memcpy(buf, ((struct fake *)model)->config + off, len);
}

static int f_set_config(void *model, uint32_t off, const void *buf,
			uint32_t len)
{
	if (off < 8)
		return -EPERM; /* the first 8 bytes are read-only */
	memcpy(((struct fake *)model)->config + off, buf, len);
	return 0;
}

static void f_set_features(void *model, uint64_t features)
{
	((struct fake *)model)->features = features;
}

static int f_queue_start(void *model, struct vd_queue *q)
{
	(void)model;
	(void)q;
	return 0;
}

/* Complete every chain at once, 0 bytes written. */
static void f_queue_kick(void *model, struct vd_queue *q)
{
	struct vd_vq_elem *e;

	atomic_fetch_add(&((struct fake *)model)->kicks, 1);
	while (vd_vq_pop(vd_queue_vq(q), &e) == 1)
		vd_vq_push(vd_queue_vq(q), e, 0);
	vd_queue_complete_batch(q);
}

static void f_queue_stop(void *model, struct vd_queue *q)
{
	(void)model;
	(void)q;
}

static void f_reset(void *model)
{
	atomic_fetch_add(&((struct fake *)model)->resets, 1);
}

static void f_destroy(void *model)
{
	atomic_fetch_add(&((struct fake *)model)->destroyed, 1);
}

static const struct vd_device_ops fake_ops = {
	.get_config = f_get_config,
	.set_config = f_set_config,
	.set_features = f_set_features,
	.queue_start = f_queue_start,
	.queue_kick = f_queue_kick,
	.queue_stop = f_queue_stop,
	.reset = f_reset,
	.destroy = f_destroy,
};

/* ------------------------------------------------------------ the shim */

static atomic_int raised, shim_resets;
static atomic_uint raised_bits;

static void shim_raise(void *ctx, uint32_t bits)
{
	(void)ctx;
	atomic_fetch_add(&raised, 1);
	atomic_fetch_or(&raised_bits, bits);
}

static void shim_reset(void *ctx)
{
	(void)ctx;
	atomic_fetch_add(&shim_resets, 1);
}

static const struct vd_mmio_ops shim_ops = {
	.raise_irq = shim_raise,
	.reset = shim_reset,
};

struct env {
	struct td_mem *mem;
	struct vd_mmio *m;
	struct fake f, f2; /* f2: a successor's model */
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	vd_log_set_level(VD_LOG_ERR);
	e->mem = td_mem_new(4u << 20, 2);
	e->f.m = (struct vd_model){
		.ops = &fake_ops,
		.type_name = "fake",
		.device_id = DEV_ID,
		.features = 1ULL << VIRTIO_F_VERSION_1 |
			    1ULL << VIRTIO_F_RING_PACKED |
			    1ULL << VIRTIO_RING_F_EVENT_IDX | 1ULL << 3,
		.num_queues = NQ,
		.max_queue_size = QMAX,
		.config_size = CFG_SIZE,
		.max_descs = 8,
	};
	for (int i = 0; i < CFG_SIZE; i++)
		e->f.config[i] = (uint8_t)(0x10 + i);
	fake = &e->f;
	atomic_store(&raised, 0);
	atomic_store(&raised_bits, 0);
	atomic_store(&shim_resets, 0);
	assert_int_equal(vd_mmio_new(&e->f.m, td_mem_vd(e->mem), &shim_ops,
				     NULL, "mmio-test", &e->m),
			 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	vd_mmio_free(e->m);
	assert_int_equal(atomic_load(&e->f.destroyed) +
				 atomic_load(&e->f2.destroyed),
			 1 + (e->f2.m.ops != NULL));
	td_mem_free(e->mem);
	free(e);
	return 0;
}

static uint32_t rd(struct env *e, uint32_t off)
{
	uint64_t v = 0xdead;

	assert_int_equal(vd_mmio_read(e->m, off, 4, &v), 0);
	return (uint32_t)v;
}

static void wr(struct env *e, uint32_t off, uint32_t v)
{
	assert_int_equal(vd_mmio_write(e->m, off, 4, v), 0);
}

static void handshake(struct env *e, uint64_t features)
{
	wr(e, VIRTIO_MMIO_STATUS, 0);
	wr(e, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	wr(e, VIRTIO_MMIO_STATUS,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(e, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(e, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	wr(e, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(e, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	/* refused (-EINVAL) for features the device does not accept: the
	 * driver sees it by reading Status back */
	vd_mmio_write(e->m, VIRTIO_MMIO_STATUS, 4,
		      VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			      VIRTIO_CONFIG_S_FEATURES_OK);
}

static struct td_vq *setup_queue(struct env *e, unsigned idx,
				 enum vd_vq_layout layout, uint16_t num)
{
	struct td_vq *q = td_vq_new(e->mem, layout, num, false, false);
	uint64_t d = td_vq_desc_gpa(q), a = td_vq_driver_gpa(q),
		 u = td_vq_device_gpa(q);

	wr(e, VIRTIO_MMIO_QUEUE_SEL, idx);
	assert_int_equal(rd(e, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_int_equal(rd(e, VIRTIO_MMIO_QUEUE_NUM_MAX), QMAX);
	wr(e, VIRTIO_MMIO_QUEUE_NUM, num);
	wr(e, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)d);
	wr(e, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(d >> 32));
	wr(e, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)a);
	wr(e, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(a >> 32));
	wr(e, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)u);
	wr(e, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(u >> 32));
	wr(e, VIRTIO_MMIO_QUEUE_READY, 1);
	return q;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One chain in, notify, wait for it on the used ring. */
static void round_trip(struct env *e, struct td_vq *q, unsigned idx,
		       uintptr_t tok)
{
	struct td_buf b = {.gpa = td_mem_alloc(e->mem, 64, 16), .len = 64};
	uint64_t deadline = now_ms() + WAIT_MS;
	void *got = NULL;
	uint32_t len;
	int r;

	assert_int_equal(td_vq_add(q, &b, 1, false, (void *)tok), 0);
	wr(e, VIRTIO_MMIO_QUEUE_NOTIFY, idx);
	while ((r = td_vq_get_used(q, &got, &len)) == 0 && now_ms() < deadline)
		usleep(200);
	assert_int_equal(r, 1);
	assert_ptr_equal(got, (void *)tok);
}

static void wait_raised(int n)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	while (atomic_load(&raised) < n && now_ms() < deadline)
		usleep(200);
	assert_true(atomic_load(&raised) >= n);
}

/* ------------------------------------------------------------ tests */

static void identification_registers(void **state)
{
	struct env *e = *state;

	assert_int_equal(rd(e, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	assert_int_equal(rd(e, VIRTIO_MMIO_VERSION), 2);
	assert_int_equal(rd(e, VIRTIO_MMIO_DEVICE_ID), DEV_ID);
	assert_int_equal(rd(e, VIRTIO_MMIO_VENDOR_ID), VD_MMIO_VENDOR_ID);
	wr(e, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	assert_int_equal(rd(e, VIRTIO_MMIO_DEVICE_FEATURES),
			 (uint32_t)e->f.m.features);
	wr(e, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(rd(e, VIRTIO_MMIO_DEVICE_FEATURES),
			 (uint32_t)(e->f.m.features >> 32));
	wr(e, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
	assert_int_equal(rd(e, VIRTIO_MMIO_DEVICE_FEATURES), 0);
	/* no shared memory regions: length -1 */
	wr(e, VIRTIO_MMIO_SHM_SEL, 0);
	assert_int_equal(rd(e, VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffff);
	assert_int_equal(rd(e, VIRTIO_MMIO_SHM_LEN_HIGH), 0xffffffff);
	assert_int_equal(rd(e, VIRTIO_MMIO_QUEUE_NUM_MAX), QMAX);
	wr(e, VIRTIO_MMIO_QUEUE_SEL, NQ); /* no such queue */
	assert_int_equal(rd(e, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
}

static void status_handshake_and_feature_check(void **state)
{
	struct env *e = *state;

	handshake(e, 1ULL << VIRTIO_F_VERSION_1 | 1ULL << 3);
	assert_int_equal(rd(e, VIRTIO_MMIO_STATUS), 0xb);
	assert_int_equal(e->f.features, 1ULL << VIRTIO_F_VERSION_1 | 1ULL << 3);
	/* features are frozen now */
	wr(e, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	assert_int_equal(vd_mmio_write(e->m, VIRTIO_MMIO_DRIVER_FEATURES, 4, 0),
			 -EINVAL);
	/* without VERSION_1 FEATURES_OK does not stick */
	handshake(e, 1ULL << 3);
	assert_int_equal(
		rd(e, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK, 0);
	/* a feature not offered: refused too */
	handshake(e, 1ULL << VIRTIO_F_VERSION_1 | 1ULL << 5);
	assert_int_equal(
		rd(e, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK, 0);
	wr(e, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 2);
	assert_int_equal(vd_mmio_write(e->m, VIRTIO_MMIO_DRIVER_FEATURES, 4, 1),
			 -EINVAL);
}

static void split_queue_notify_interrupt_and_ack(void **state)
{
	struct env *e = *state;
	struct td_vq *q;

	handshake(e, 1ULL << VIRTIO_F_VERSION_1);
	q = setup_queue(e, 1, VD_VQ_SPLIT, 16);
	assert_int_equal(rd(e, VIRTIO_MMIO_QUEUE_READY), 1);
	wr(e, VIRTIO_MMIO_STATUS, 0xf);
	round_trip(e, q, 1, 1);
	wait_raised(1);
	assert_int_equal(rd(e, VIRTIO_MMIO_INTERRUPT_STATUS),
			 VIRTIO_MMIO_INT_VRING);
	/* a bit already set raises nothing more */
	round_trip(e, q, 1, 2);
	usleep(20000);
	assert_int_equal(atomic_load(&raised), 1);
	wr(e, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	assert_int_equal(rd(e, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	round_trip(e, q, 1, 3);
	wait_raised(2);
	assert_true(atomic_load(&e->f.kicks) >= 3);
	td_vq_free(q);
}

static void packed_queue_when_negotiated(void **state)
{
	struct env *e = *state;
	struct td_vq *q;

	handshake(e, 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_RING_PACKED);
	q = setup_queue(e, 0, VD_VQ_PACKED, 24); /* any size for packed */
	assert_int_equal(rd(e, VIRTIO_MMIO_QUEUE_READY), 1);
	wr(e, VIRTIO_MMIO_STATUS, 0xf);
	for (uintptr_t i = 1; i < 60; i++)
		round_trip(e, q, 0, i);
	td_vq_free(q);
}

static void queue_setup_refusals(void **state)
{
	struct env *e = *state;
	struct td_vq *q;

	/* before FEATURES_OK */
	wr(e, VIRTIO_MMIO_STATUS, 0);
	wr(e, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(e, VIRTIO_MMIO_QUEUE_NUM, 16);
	assert_int_equal(vd_mmio_write(e->m, VIRTIO_MMIO_QUEUE_READY, 4, 1),
			 -EINVAL);
	handshake(e, 1ULL << VIRTIO_F_VERSION_1);
	/* split size not a power of two, size 0, size over the maximum */
	wr(e, VIRTIO_MMIO_QUEUE_NUM, 24);
	assert_int_equal(vd_mmio_write(e->m, VIRTIO_MMIO_QUEUE_READY, 4, 1),
			 -EINVAL);
	wr(e, VIRTIO_MMIO_QUEUE_NUM, 0);
	assert_int_equal(vd_mmio_write(e->m, VIRTIO_MMIO_QUEUE_READY, 4, 1),
			 -EINVAL);
	wr(e, VIRTIO_MMIO_QUEUE_NUM, QMAX * 2);
	assert_int_equal(vd_mmio_write(e->m, VIRTIO_MMIO_QUEUE_READY, 4, 1),
			 -EINVAL);
	/* rings outside guest memory, or misaligned */
	wr(e, VIRTIO_MMIO_QUEUE_NUM, 16);
	wr(e, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
	wr(e, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
	assert_int_equal(vd_mmio_write(e->m, VIRTIO_MMIO_QUEUE_READY, 4, 1),
			 -EINVAL);
	assert_int_equal(rd(e, VIRTIO_MMIO_QUEUE_READY), 0);
	q = setup_queue(e, 0, VD_VQ_SPLIT, 16);
	assert_int_equal(rd(e, VIRTIO_MMIO_QUEUE_READY), 1);
	/* a live queue's registers are not writable */
	assert_int_equal(vd_mmio_write(e->m, VIRTIO_MMIO_QUEUE_NUM, 4, 8),
			 -EINVAL);
	wr(e, VIRTIO_MMIO_STATUS, 0xf);
	/* setup after DRIVER_OK: refused */
	wr(e, VIRTIO_MMIO_QUEUE_SEL, 1);
	assert_int_equal(vd_mmio_write(e->m, VIRTIO_MMIO_QUEUE_NUM, 4, 8),
			 -EINVAL);
	assert_int_equal(vd_mmio_write(e->m, VIRTIO_MMIO_QUEUE_READY, 4, 1),
			 -EINVAL);
	/* queue 0 still works; a notify for a dead or absent queue does not
	 * crash anything */
	assert_int_equal(vd_mmio_write(e->m, VIRTIO_MMIO_QUEUE_NOTIFY, 4, 1),
			 -EINVAL);
	assert_int_equal(vd_mmio_write(e->m, VIRTIO_MMIO_QUEUE_NOTIFY, 4, 999),
			 -EINVAL);
	round_trip(e, q, 0, 7);
	/* QueueReady 0 stops it */
	wr(e, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(e, VIRTIO_MMIO_QUEUE_READY, 0);
	assert_int_equal(rd(e, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_false(vd_queue_running(vd_dev_queue(vd_mmio_dev(e->m), 0)));
	td_vq_free(q);
}

static void bad_accesses_are_ignored(void **state)
{
	struct env *e = *state;
	static const unsigned widths[] = {1, 2, 8, 3, 0, 16};
	uint64_t v;

	for (unsigned i = 0; i < 6; i++) {
		v = 0x55;
		assert_int_equal(vd_mmio_read(e->m, VIRTIO_MMIO_MAGIC_VALUE,
					      widths[i], &v),
				 -EINVAL);
		assert_int_equal(v, 0);
		assert_int_equal(
			vd_mmio_write(e->m, VIRTIO_MMIO_STATUS, widths[i], 1),
			-EINVAL);
	}
	assert_int_equal(rd(e, VIRTIO_MMIO_STATUS), 0);
	/* unaligned, unknown, legacy, write-only read, read-only write */
	assert_int_equal(vd_mmio_read(e->m, 1, 4, &v), -EINVAL);
	assert_int_equal(vd_mmio_read(e->m, 0x0c0, 4, &v), -EINVAL);
	assert_int_equal(v, 0);
	assert_int_equal(vd_mmio_write(e->m, VIRTIO_MMIO_QUEUE_PFN, 4, 1),
			 -EINVAL);
	assert_int_equal(vd_mmio_read(e->m, VIRTIO_MMIO_QUEUE_NOTIFY, 4, &v),
			 -EINVAL);
	assert_int_equal(vd_mmio_write(e->m, VIRTIO_MMIO_MAGIC_VALUE, 4, 0),
			 -EINVAL);
	assert_int_equal(
		vd_mmio_write(e->m, VIRTIO_MMIO_INTERRUPT_STATUS, 4, 1),
		-EINVAL);
	assert_int_equal(vd_mmio_write(e->m, VIRTIO_MMIO_STATUS, 4, 0x100),
			 -EINVAL);
	/* far away offsets */
	assert_int_equal(vd_mmio_read(e->m, 1ULL << 40, 4, &v), -EINVAL);
	assert_int_equal(vd_mmio_read(e->m, ~0ULL, 1, &v), -EINVAL);
	assert_int_equal(rd(e, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
}

static void config_space_widths(void **state)
{
	struct env *e = *state;
	uint32_t gen;
	uint64_t v;

	assert_int_equal(vd_mmio_read(e->m, 0x100, 1, &v), 0);
	assert_int_equal(v, 0x10);
	assert_int_equal(vd_mmio_read(e->m, 0x101, 2, &v), 0);
	assert_int_equal(v, 0x1211);
	assert_int_equal(vd_mmio_read(e->m, 0x104, 4, &v), 0);
	assert_int_equal(v, 0x17161514);
	assert_int_equal(vd_mmio_read(e->m, 0x108, 8, &v), 0);
	assert_int_equal(v, 0x1f1e1d1c1b1a1918ULL);
	/* past the end, straddling the end */
	assert_int_equal(vd_mmio_read(e->m, 0x100 + CFG_SIZE, 1, &v), -EINVAL);
	assert_int_equal(v, 0);
	assert_int_equal(vd_mmio_read(e->m, 0x10c, 8, &v), -EINVAL);
	/* writes reach the model, which may refuse them */
	gen = rd(e, VIRTIO_MMIO_CONFIG_GENERATION);
	assert_int_equal(vd_mmio_write(e->m, 0x10a, 2, 0xbeef), 0);
	assert_int_equal(e->f.config[10], 0xef);
	assert_int_equal(e->f.config[11], 0xbe);
	assert_int_equal(vd_mmio_write(e->m, 0x100, 4, 0), -EINVAL);
	assert_int_equal(e->f.config[0], 0x10);
	/* before DRIVER_OK: a new generation, but no interrupt */
	vd_dev_config_changed(vd_mmio_dev(e->m));
	assert_int_not_equal(rd(e, VIRTIO_MMIO_CONFIG_GENERATION), gen);
	assert_int_equal(rd(e, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	handshake(e, 1ULL << VIRTIO_F_VERSION_1);
	wr(e, VIRTIO_MMIO_STATUS, 0xf);
	assert_int_equal(atomic_load(&raised_bits), 0);
	gen = rd(e, VIRTIO_MMIO_CONFIG_GENERATION);
	vd_dev_config_changed(vd_mmio_dev(e->m));
	assert_int_not_equal(rd(e, VIRTIO_MMIO_CONFIG_GENERATION), gen);
	wait_raised(1);
	assert_true(atomic_load(&raised_bits) & VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(rd(e, VIRTIO_MMIO_INTERRUPT_STATUS),
			 VIRTIO_MMIO_INT_CONFIG);
}

static void reset_stops_queues_and_clears_state(void **state)
{
	struct env *e = *state;
	struct td_vq *q;

	handshake(e, 1ULL << VIRTIO_F_VERSION_1);
	q = setup_queue(e, 0, VD_VQ_SPLIT, 16);
	wr(e, VIRTIO_MMIO_STATUS, 0xf);
	round_trip(e, q, 0, 1);
	wait_raised(1);
	wr(e, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(rd(e, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(rd(e, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(rd(e, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_false(vd_queue_running(vd_dev_queue(vd_mmio_dev(e->m), 0)));
	assert_true(atomic_load(&shim_resets) >= 1);
	assert_true(atomic_load(&e->f.resets) >= 1);
	assert_int_equal(vd_mmio_interrupt_status(e->m), 0);
	td_vq_free(q);
}

static void suspend_and_restore_carry_a_queue_on(void **state)
{
	struct env *e = *state;
	struct vd_mmio_queue_state qs[NQ];
	struct vd_mmio_state st;
	struct vd_mmio *m2;
	struct td_vq *q;

	handshake(e, 1ULL << VIRTIO_F_VERSION_1);
	q = setup_queue(e, 0, VD_VQ_SPLIT, 16);
	wr(e, VIRTIO_MMIO_STATUS, 0xf);
	for (uintptr_t i = 1; i < 21; i++)
		round_trip(e, q, 0, i);
	vd_mmio_suspend(e->m, &st, qs);
	assert_int_equal(st.status, 0xf);
	assert_int_equal(qs[0].ready, 1);
	assert_int_equal(qs[0].avail_idx, 20);
	assert_int_equal(qs[0].used_idx, 20);
	assert_int_equal(qs[1].ready, 0);
	/* a successor's fresh model takes the device on */
	e->f2 = e->f;
	e->f2.destroyed = 0;
	assert_int_equal(vd_mmio_new(&e->f2.m, td_mem_vd(e->mem), &shim_ops,
				     NULL, "mmio-test 2", &m2),
			 0);
	assert_int_equal(vd_mmio_restore(m2, &st, qs, NQ), 0);
	vd_mmio_free(e->m);
	e->m = m2;
	assert_int_equal(rd(e, VIRTIO_MMIO_STATUS), 0xf);
	wr(e, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(rd(e, VIRTIO_MMIO_QUEUE_READY), 1);
	for (uintptr_t i = 21; i < 41; i++)
		round_trip(e, q, 0, i);
	/* a state the registers could not have produced is refused, and
	 * leaves the device reset */
	qs[0].num = 3;
	assert_int_equal(vd_mmio_restore(m2, &st, qs, NQ), -EINVAL);
	assert_int_equal(rd(e, VIRTIO_MMIO_STATUS), 0);
	td_vq_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(identification_registers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			status_handshake_and_feature_check, setup, teardown),
		cmocka_unit_test_setup_teardown(
			split_queue_notify_interrupt_and_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(packed_queue_when_negotiated,
						setup, teardown),
		cmocka_unit_test_setup_teardown(queue_setup_refusals, setup,
						teardown),
		cmocka_unit_test_setup_teardown(bad_accesses_are_ignored, setup,
						teardown),
		cmocka_unit_test_setup_teardown(config_space_widths, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			reset_stops_queues_and_clears_state, setup, teardown),
		cmocka_unit_test_setup_teardown(
			suspend_and_restore_carry_a_queue_on, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
