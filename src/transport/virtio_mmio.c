/* virtio-mmio version 2 register file (virtio 1.2 §4.2.2) over a vd_dev.
 * Every guest access is checked for offset, width and device state; a bad
 * one is logged (rate-limited) and ignored, never trusted or fatal. */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>

#include "virtiod/log.h"
#include "virtiod/virtio_mmio.h"

#define REGS_END 0x100u /* registers below, device config from here */

/* Per queue: the driver's setup values, and while running, the mapped
 * rings and the kick eventfd. Owned by the register thread. */
struct mmio_queue {
	uint32_t num;
	uint64_t desc, driver, device;
	bool ready;
	int kick_fd;
	void *desc_hva, *driver_hva, *device_hva;
	size_t desc_len, driver_len, device_len;
};

struct vd_mmio {
	struct vd_dev *dev;
	struct vd_mem *mem;
	struct vd_model *model;
	const struct vd_mmio_ops *ops;
	void *ctx;
	char who[64];

	/* Register thread only. */
	uint32_t dev_features_sel, drv_features_sel;
	uint64_t drv_features;
	uint32_t queue_sel, shm_sel;
	unsigned nq;
	struct mmio_queue *q;
	struct vd_ratelimit rl;

	/* Queue threads set bits, the driver's ACK clears them. */
	_Atomic uint32_t int_status;
};

static const char *reg_name(uint32_t off)
{
	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return "MagicValue";
	case VIRTIO_MMIO_VERSION:
		return "Version";
	case VIRTIO_MMIO_DEVICE_ID:
		return "DeviceID";
	case VIRTIO_MMIO_VENDOR_ID:
		return "VendorID";
	case VIRTIO_MMIO_DEVICE_FEATURES:
		return "DeviceFeatures";
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		return "DeviceFeaturesSel";
	case VIRTIO_MMIO_DRIVER_FEATURES:
		return "DriverFeatures";
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		return "DriverFeaturesSel";
	case VIRTIO_MMIO_QUEUE_SEL:
		return "QueueSel";
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return "QueueNumMax";
	case VIRTIO_MMIO_QUEUE_NUM:
		return "QueueNum";
	case VIRTIO_MMIO_QUEUE_READY:
		return "QueueReady";
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		return "QueueNotify";
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return "InterruptStatus";
	case VIRTIO_MMIO_INTERRUPT_ACK:
		return "InterruptACK";
	case VIRTIO_MMIO_STATUS:
		return "Status";
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
		return "QueueDescLow";
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		return "QueueDescHigh";
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
		return "QueueDriverLow";
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		return "QueueDriverHigh";
	case VIRTIO_MMIO_QUEUE_USED_LOW:
		return "QueueDeviceLow";
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		return "QueueDeviceHigh";
	case VIRTIO_MMIO_SHM_SEL:
		return "SHMSel";
	case VIRTIO_MMIO_SHM_LEN_LOW:
		return "SHMLenLow";
	case VIRTIO_MMIO_SHM_LEN_HIGH:
		return "SHMLenHigh";
	case VIRTIO_MMIO_SHM_BASE_LOW:
		return "SHMBaseLow";
	case VIRTIO_MMIO_SHM_BASE_HIGH:
		return "SHMBaseHigh";
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return "ConfigGeneration";
	default:
		return "unknown register";
	}
}

/* Logs an ignored access and returns -EINVAL for the caller to pass on. */
__attribute__((format(printf, 2, 3))) static int ignored(struct vd_mmio *m,
							 const char *fmt, ...)
{
	char buf[160];
	va_list ap;

	if (!vd_ratelimit_ok(&m->rl))
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	vd_warn(m->who, "%s, ignored", buf);
	return -EINVAL;
}

static void raise_bits(struct vd_mmio *m, uint32_t bits)
{
	uint32_t old = atomic_fetch_or(&m->int_status, bits);

	/* An edge per new bit: a bit still set is one the driver has not
	 * acknowledged yet, and it processes every ring after its ACK, so
	 * nothing is lost; a line pulsed while pending would coalesce. */
	if ((old & bits) != bits)
		m->ops->raise_irq(m->ctx, bits & ~old);
}

static void shim_notify_queue(void *shim, struct vd_queue *q)
{
	(void)q;
	raise_bits(shim, VIRTIO_MMIO_INT_VRING);
}

static void shim_notify_config(void *shim)
{
	struct vd_mmio *m = shim;

	/* Not before DRIVER_OK (QEMU's virtio_notify_config neither): until
	 * then no handler waits for it, a booting guest takes the edge as a
	 * stray one, and the driver reads the config at probe anyway. */
	if (vd_dev_status(m->dev) & VIRTIO_CONFIG_S_DRIVER_OK)
		raise_bits(m, VIRTIO_MMIO_INT_CONFIG);
}

static const struct vd_dev_shim_ops shim_ops = {
	.notify_queue = shim_notify_queue,
	.notify_config = shim_notify_config,
};

int vd_mmio_new(struct vd_model *model, struct vd_mem *mem,
		const struct vd_mmio_ops *ops, void *ctx, const char *who,
		struct vd_mmio **out)
{
	struct vd_mmio *m;

	if (!model || !mem || !ops || !ops->raise_irq || !out)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->nq = model->num_queues;
	m->q = calloc(m->nq ? m->nq : 1, sizeof(*m->q));
	if (!m->q) {
		free(m);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < m->nq; i++)
		m->q[i].kick_fd = -1;
	m->mem = mem;
	m->model = model;
	m->ops = ops;
	m->ctx = ctx;
	m->rl = (struct vd_ratelimit)VD_RATELIMIT_INIT;
	snprintf(m->who, sizeof(m->who), "%s", who ? who : "virtio-mmio");
	m->dev = vd_dev_new(model, mem, &shim_ops, m, m->who);
	if (!m->dev) {
		free(m->q);
		free(m);
		return -ENOMEM;
	}
	*out = m;
	return 0;
}

static void queue_unmap(struct vd_mmio *m, struct mmio_queue *q)
{
	if (q->desc_hva)
		vd_mem_unmap_contig(m->mem, q->desc_hva, q->desc_len);
	if (q->driver_hva)
		vd_mem_unmap_contig(m->mem, q->driver_hva, q->driver_len);
	if (q->device_hva)
		vd_mem_unmap_contig(m->mem, q->device_hva, q->device_len);
	q->desc_hva = q->driver_hva = q->device_hva = NULL;
	if (q->kick_fd >= 0)
		close(q->kick_fd);
	q->kick_fd = -1;
}

/* Stops queue i if it runs; records where its ring stands in *st. */
static void queue_stop(struct vd_mmio *m, unsigned i,
		       struct vd_mmio_queue_state *st)
{
	struct mmio_queue *q = &m->q[i];
	uint16_t avail = 0, used = 0;
	bool avail_wrap = true, used_wrap = true;

	if (vd_queue_running(vd_dev_queue(m->dev, i)))
		vd_queue_stop(vd_dev_queue(m->dev, i), &avail, &avail_wrap,
			      &used, &used_wrap);
	if (st) {
		*st = (struct vd_mmio_queue_state){
			.num = q->num,
			.ready = q->ready,
			.desc = q->desc,
			.driver = q->driver,
			.device = q->device,
			.avail_idx = avail,
			.used_idx = used,
			.avail_wrap = avail_wrap,
			.used_wrap = used_wrap,
			.used_idx_valid = 1,
		};
	}
	queue_unmap(m, q);
	q->ready = false;
}

void vd_mmio_free(struct vd_mmio *m)
{
	if (!m)
		return;
	for (unsigned i = 0; i < m->nq; i++)
		queue_stop(m, i, NULL);
	vd_dev_free(m->dev);
	free(m->q);
	free(m);
}

struct vd_dev *vd_mmio_dev(struct vd_mmio *m)
{
	return m->dev;
}

unsigned vd_mmio_num_queues(const struct vd_mmio *m)
{
	return m->nq;
}

uint32_t vd_mmio_interrupt_status(const struct vd_mmio *m)
{
	return atomic_load(&m->int_status);
}

void vd_mmio_reset(struct vd_mmio *m)
{
	for (unsigned i = 0; i < m->nq; i++) {
		queue_stop(m, i, NULL);
		m->q[i] = (struct mmio_queue){.kick_fd = -1};
	}
	vd_dev_set_status(m->dev, 0);
	m->dev_features_sel = m->drv_features_sel = 0;
	m->drv_features = 0;
	m->queue_sel = m->shm_sel = 0;
	atomic_store(&m->int_status, 0);
	if (m->ops->reset)
		m->ops->reset(m->ctx);
}

static struct mmio_queue *sel_queue(struct vd_mmio *m)
{
	return m->queue_sel < m->nq ? &m->q[m->queue_sel] : NULL;
}

static bool layout_packed(struct vd_mmio *m)
{
	return vd_dev_driver_features(m->dev) & (1ULL << VIRTIO_F_RING_PACKED);
}

static void *map_ring(struct vd_mmio *m, uint64_t gpa, size_t len,
		      uint64_t align, enum vd_mem_access access)
{
	if (gpa & (align - 1))
		return NULL;
	return vd_mem_map_contig(m->mem, gpa, len, access);
}

/* QueueReady 1: check the driver's values, map the rings, start the
 * queue's thread at the given ring position. */
static int queue_start(struct vd_mmio *m, unsigned i,
		       const struct vd_mmio_queue_state *pos)
{
	struct mmio_queue *q = &m->q[i];
	uint64_t feat = vd_dev_driver_features(m->dev);
	bool packed = layout_packed(m);
	struct vd_queue_setup setup;
	int rc;

	if (q->num == 0 || q->num > m->model->max_queue_size ||
	    q->num > VD_VQ_MAX_SIZE)
		return ignored(m, "q%u: QueueReady with QueueNum %u (max %u)",
			       i, q->num, m->model->max_queue_size);
	if (!packed && (q->num & (q->num - 1)))
		return ignored(m, "q%u: split QueueNum %u not a power of 2", i,
			       q->num);
	vd_vq_ring_sizes(packed ? VD_VQ_PACKED : VD_VQ_SPLIT, (uint16_t)q->num,
			 &q->desc_len, &q->driver_len, &q->device_len);
	/* virtio 1.2 §2.7 / §2.8.10: alignment of the three areas. */
	/* The device writes packed descriptors back, and the used ring /
	 * device event area; it only reads the rest. */
	q->desc_hva = map_ring(m, q->desc, q->desc_len, 16,
			       VD_MEM_READ | (packed ? VD_MEM_WRITE : 0));
	q->driver_hva = map_ring(m, q->driver, q->driver_len, packed ? 4 : 2,
				 VD_MEM_READ);
	q->device_hva = map_ring(m, q->device, q->device_len, 4,
				 VD_MEM_READ | VD_MEM_WRITE);
	if (!q->desc_hva || !q->driver_hva || !q->device_hva) {
		queue_unmap(m, q);
		return ignored(m,
			       "q%u: rings desc 0x%llx driver 0x%llx device "
			       "0x%llx misaligned or outside guest memory",
			       i, (unsigned long long)q->desc,
			       (unsigned long long)q->driver,
			       (unsigned long long)q->device);
	}
	q->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->kick_fd < 0) {
		rc = -errno;
		queue_unmap(m, q);
		vd_err(m->who, "q%u: eventfd: %s", i, strerror(-rc));
		return rc;
	}
	memset(&setup, 0, sizeof(setup));
	setup.vq = (struct vd_vq_config){
		.layout = packed ? VD_VQ_PACKED : VD_VQ_SPLIT,
		.num = (uint16_t)q->num,
		.event_idx = feat & (1ULL << VIRTIO_RING_F_EVENT_IDX),
		.indirect = feat & (1ULL << VIRTIO_RING_F_INDIRECT_DESC),
		.desc = q->desc_hva,
		.driver = q->driver_hva,
		.device = q->device_hva,
		.device_gpa = q->device,
		.desc_gpa = q->desc,
		.avail_idx = pos ? pos->avail_idx : 0,
		.avail_wrap = pos ? pos->avail_wrap : true,
		.used_idx = pos ? pos->used_idx : 0,
		.used_wrap = pos ? pos->used_wrap : true,
		.used_idx_valid = pos ? pos->used_idx_valid : true,
	};
	setup.kick_fd = q->kick_fd;
	rc = m->ops->queue_setup ? m->ops->queue_setup(m->ctx, i, &setup) : 0;
	if (rc == 0)
		rc = vd_queue_start(vd_dev_queue(m->dev, i), &setup);
	if (rc < 0) {
		queue_unmap(m, q);
		vd_err(m->who, "q%u: cannot start: %s", i, strerror(-rc));
		return rc;
	}
	q->ready = true;
	return 0;
}

static int write_queue_ready(struct vd_mmio *m, uint32_t v)
{
	struct mmio_queue *q = sel_queue(m);
	uint8_t status = vd_dev_status(m->dev);

	if (!q)
		return ignored(m, "QueueReady for queue %u of %u", m->queue_sel,
			       m->nq);
	if (!(v & 1)) {
		/* virtio 1.2 §4.2.3.2: the driver stops a queue this way. */
		queue_stop(m, m->queue_sel, NULL);
		return 0;
	}
	if (q->ready)
		return 0;
	if (!(status & VIRTIO_CONFIG_S_FEATURES_OK) ||
	    (status & VIRTIO_CONFIG_S_DRIVER_OK))
		return ignored(m, "q%u: QueueReady in status 0x%x",
			       m->queue_sel, status);
	return queue_start(m, m->queue_sel, NULL);
}

/* Queue setup registers: only for a valid, stopped queue before
 * DRIVER_OK (virtio 1.2 §4.2.3.2). */
static int write_queue_field(struct vd_mmio *m, uint32_t off, uint32_t v)
{
	struct mmio_queue *q = sel_queue(m);
	uint64_t *field;

	if (!q)
		return ignored(m, "%s for queue %u of %u", reg_name(off),
			       m->queue_sel, m->nq);
	if (q->ready || (vd_dev_status(m->dev) & VIRTIO_CONFIG_S_DRIVER_OK))
		return ignored(m, "q%u: %s while the queue is live",
			       m->queue_sel, reg_name(off));
	switch (off) {
	case VIRTIO_MMIO_QUEUE_NUM:
		q->num = v;
		return 0;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		field = &q->desc;
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		field = &q->driver;
		break;
	default:
		field = &q->device;
		break;
	}
	if (off & 4)
		*field = (*field & 0xffffffffULL) | (uint64_t)v << 32;
	else
		*field = (*field & ~0xffffffffULL) | v;
	return 0;
}

static int write_status(struct vd_mmio *m, uint32_t v)
{
	if (v == 0) {
		vd_mmio_reset(m);
		return 0;
	}
	if (v > 0xff)
		return ignored(m, "Status 0x%x", v);
	return vd_dev_set_status(m->dev, (uint8_t)v) < 0 ? -EINVAL : 0;
}

static int write_driver_features(struct vd_mmio *m, uint32_t v)
{
	uint64_t f = m->drv_features;

	if (m->drv_features_sel > 1)
		return ignored(m, "DriverFeatures with selector %u",
			       m->drv_features_sel);
	if (m->drv_features_sel)
		f = (f & 0xffffffffULL) | (uint64_t)v << 32;
	else
		f = (f & ~0xffffffffULL) | v;
	if (vd_dev_set_driver_features(m->dev, f) < 0)
		return ignored(m, "DriverFeatures after FEATURES_OK");
	m->drv_features = f;
	return 0;
}

static int write_notify(struct vd_mmio *m, uint32_t v)
{
	/* Without VIRTIO_F_NOTIFICATION_DATA the value is the index; the
	 * upper half would carry ring position with it: only the index
	 * selects the queue. */
	unsigned idx = v & 0xffff;
	uint64_t one = 1;

	if (idx >= m->nq || !m->q[idx].ready || m->q[idx].kick_fd < 0)
		return ignored(m, "QueueNotify for queue %u (not running)",
			       idx);
	if (write(m->q[idx].kick_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		vd_warn(m->who, "q%u: kick: %s", idx, strerror(errno));
	return 0;
}

static int reg_write(struct vd_mmio *m, uint32_t off, uint32_t v)
{
	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		m->dev_features_sel = v;
		return 0;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		return write_driver_features(m, v);
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		m->drv_features_sel = v;
		return 0;
	case VIRTIO_MMIO_QUEUE_SEL:
		m->queue_sel = v;
		return 0;
	case VIRTIO_MMIO_QUEUE_NUM:
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
	case VIRTIO_MMIO_QUEUE_USED_LOW:
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		return write_queue_field(m, off, v);
	case VIRTIO_MMIO_QUEUE_READY:
		return write_queue_ready(m, v);
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		return write_notify(m, v);
	case VIRTIO_MMIO_INTERRUPT_ACK:
		atomic_fetch_and(&m->int_status, ~v);
		return 0;
	case VIRTIO_MMIO_STATUS:
		return write_status(m, v);
	case VIRTIO_MMIO_SHM_SEL:
		m->shm_sel = v;
		return 0;
	default:
		return ignored(m, "write 0x%x to %s at 0x%03x", v,
			       reg_name(off), off);
	}
}

static int reg_read(struct vd_mmio *m, uint32_t off, uint32_t *v)
{
	struct mmio_queue *q = sel_queue(m);

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		*v = VD_MMIO_MAGIC;
		return 0;
	case VIRTIO_MMIO_VERSION:
		*v = 2;
		return 0;
	case VIRTIO_MMIO_DEVICE_ID:
		*v = m->model->device_id;
		return 0;
	case VIRTIO_MMIO_VENDOR_ID:
		*v = VD_MMIO_VENDOR_ID;
		return 0;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		*v = m->dev_features_sel > 1
			     ? 0
			     : (uint32_t)(vd_dev_device_features(m->dev) >>
					  (32 * m->dev_features_sel));
		return 0;
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		*v = q ? m->model->max_queue_size : 0;
		return 0;
	case VIRTIO_MMIO_QUEUE_READY:
		*v = q ? q->ready : 0;
		return 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		*v = atomic_load(&m->int_status);
		return 0;
	case VIRTIO_MMIO_STATUS:
		*v = vd_dev_status(m->dev);
		return 0;
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
		/* virtio 1.2 §4.2.2: no region → length -1. */
		*v = 0xffffffffu;
		return 0;
	case VIRTIO_MMIO_SHM_BASE_LOW:
	case VIRTIO_MMIO_SHM_BASE_HIGH:
		*v = 0;
		return 0;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		*v = vd_dev_config_generation(m->dev);
		return 0;
	default:
		*v = 0;
		return ignored(m, "read of %s at 0x%03x", reg_name(off), off);
	}
}

static bool width_ok(unsigned size)
{
	return size == 1 || size == 2 || size == 4 || size == 8;
}

int vd_mmio_read(struct vd_mmio *m, uint64_t off, unsigned size, uint64_t *val)
{
	uint32_t v32;
	uint64_t le = 0;
	int rc;

	*val = 0;
	if (!width_ok(size))
		return ignored(m, "%u-byte read at 0x%llx", size,
			       (unsigned long long)off);
	if (off < REGS_END) {
		if (size != 4 || (off & 3))
			return ignored(m, "%u-byte read of %s at 0x%03llx",
				       size, reg_name((uint32_t)off & ~3u),
				       (unsigned long long)off);
		rc = reg_read(m, (uint32_t)off, &v32);
		*val = v32;
		return rc;
	}
	if (off - REGS_END > UINT32_MAX)
		return ignored(m, "read at 0x%llx", (unsigned long long)off);
	/* Config space is little-endian bytes (virtio 1.2 §2.5). */
	if (vd_dev_config_read(m->dev, (uint32_t)(off - REGS_END), &le, size) <
	    0)
		return ignored(m, "%u-byte config read at 0x%llx", size,
			       (unsigned long long)off);
	*val = le64toh(le);
	return 0;
}

int vd_mmio_write(struct vd_mmio *m, uint64_t off, unsigned size, uint64_t val)
{
	uint64_t le;

	if (!width_ok(size))
		return ignored(m, "%u-byte write at 0x%llx", size,
			       (unsigned long long)off);
	if (off < REGS_END) {
		if (size != 4 || (off & 3))
			return ignored(m, "%u-byte write of %s at 0x%03llx",
				       size, reg_name((uint32_t)off & ~3u),
				       (unsigned long long)off);
		return reg_write(m, (uint32_t)off, (uint32_t)val);
	}
	if (off - REGS_END > UINT32_MAX)
		return ignored(m, "write at 0x%llx", (unsigned long long)off);
	le = htole64(val);
	if (vd_dev_config_write(m->dev, (uint32_t)(off - REGS_END), &le, size) <
	    0)
		return ignored(m, "%u-byte config write at 0x%llx", size,
			       (unsigned long long)off);
	return 0;
}

static void save_regs(struct vd_mmio *m, struct vd_mmio_state *st)
{
	*st = (struct vd_mmio_state){
		.status = vd_dev_status(m->dev),
		.int_status = atomic_load(&m->int_status),
		.driver_features = m->drv_features,
		.queue_sel = m->queue_sel,
		.dev_features_sel = m->dev_features_sel,
		.drv_features_sel = m->drv_features_sel,
		.shm_sel = m->shm_sel,
	};
}

void vd_mmio_save(struct vd_mmio *m, struct vd_mmio_state *st,
		  struct vd_mmio_queue_state *qs)
{
	save_regs(m, st);
	for (unsigned i = 0; i < m->nq; i++)
		qs[i] = (struct vd_mmio_queue_state){
			.num = m->q[i].num,
			.ready = m->q[i].ready,
			.desc = m->q[i].desc,
			.driver = m->q[i].driver,
			.device = m->q[i].device,
			.used_idx_valid = 1,
		};
}

void vd_mmio_suspend(struct vd_mmio *m, struct vd_mmio_state *st,
		     struct vd_mmio_queue_state *qs)
{
	for (unsigned i = 0; i < m->nq; i++) {
		bool was_ready = m->q[i].ready;

		queue_stop(m, i, &qs[i]);
		qs[i].ready = was_ready;
	}
	save_regs(m, st);
}

int vd_mmio_restore(struct vd_mmio *m, const struct vd_mmio_state *st,
		    const struct vd_mmio_queue_state *qs, unsigned nq)
{
	static const uint8_t steps[] = {
		VIRTIO_CONFIG_S_ACKNOWLEDGE,
		VIRTIO_CONFIG_S_DRIVER,
		VIRTIO_CONFIG_S_FEATURES_OK,
	};
	uint8_t status = 0;
	int rc = 0;

	vd_mmio_reset(m);
	if (nq != m->nq || st->status > 0xff)
		return -EINVAL;
	m->dev_features_sel = st->dev_features_sel;
	m->drv_features_sel = st->drv_features_sel;
	m->queue_sel = st->queue_sel;
	m->shm_sel = st->shm_sel;
	if (vd_dev_set_driver_features(m->dev, st->driver_features) < 0)
		goto bad;
	m->drv_features = st->driver_features;
	/* Replay the status handshake the driver went through, so the core
	 * checks each step as it did the first time. */
	for (unsigned i = 0; i < sizeof(steps); i++) {
		if (!(st->status & steps[i]))
			continue;
		status |= steps[i];
		if (vd_dev_set_status(m->dev, status) < 0)
			goto bad;
	}
	for (unsigned i = 0; i < nq; i++) {
		m->q[i].num = qs[i].num;
		m->q[i].desc = qs[i].desc;
		m->q[i].driver = qs[i].driver;
		m->q[i].device = qs[i].device;
		if (!qs[i].ready)
			continue;
		if (!(status & VIRTIO_CONFIG_S_FEATURES_OK))
			goto bad;
		rc = queue_start(m, i, &qs[i]);
		if (rc < 0)
			goto bad;
	}
	status = (uint8_t)st->status;
	if (vd_dev_set_status(m->dev, status) < 0)
		goto bad;
	/* The predecessor may have set a bit and died before raising it:
	 * raise again (a spurious interrupt costs the driver one read). */
	if (st->int_status & (VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG))
		raise_bits(m, st->int_status & (VIRTIO_MMIO_INT_VRING |
						VIRTIO_MMIO_INT_CONFIG));
	return 0;
bad:
	vd_warn(m->who, "saved device state refused, device reset");
	vd_mmio_reset(m);
	return -EINVAL;
}

void vd_mmio_assume_used_pending(struct vd_mmio *m)
{
	if (vd_dev_status(m->dev) & VIRTIO_CONFIG_S_DRIVER_OK)
		raise_bits(m, VIRTIO_MMIO_INT_VRING);
}
