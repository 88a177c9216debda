/* Fuzz target for the virtio-mmio register model: random register accesses
 * of random widths and values (queue setup, notify, reset included) against
 * a small device on 1 MiB of guest memory. Nothing may crash, hang or touch
 * memory outside the guest's. */
#include <errno.h>
#include <linux/virtio_config.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtiod/log.h"
#include "virtiod/virtio_mmio.h"

#define MEM_SIZE (1u << 20)
#define OPS_MAX	 512

struct toy {
	struct vd_model m;
	uint8_t config[24];
};

static void t_get_config(void *model, uint32_t off, void *buf, uint32_t len)
{
	memcpy(buf, ((struct toy *)model)->config + off, len);
}

static int t_set_config(void *model, uint32_t off, const void *buf,
			uint32_t len)
{
	memcpy(((struct toy *)model)->config + off, buf, len);
	return 0;
}

static void t_set_features(void *model, uint64_t f)
{
	(void)model;
	(void)f;
}

static int t_queue_start(void *model, struct vd_queue *q)
{
	(void)model;
	(void)q;
	return 0;
}

static void t_queue_kick(void *model, struct vd_queue *q)
{
	struct vd_vq_elem *e;
	unsigned n = 0;

	(void)model;
	/* Whatever the ring holds: pop (bounded), complete. */
	while (n++ < 64 && vd_vq_pop(vd_queue_vq(q), &e) == 1)
		vd_vq_push(vd_queue_vq(q), e, (uint32_t)e->write_len);
	vd_queue_complete_batch(q);
}

static void t_queue_stop(void *model, struct vd_queue *q)
{
	(void)model;
	(void)q;
}

static void t_reset(void *model)
{
	(void)model;
}

static void t_destroy(void *model)
{
	free(model);
}

static const struct vd_device_ops toy_ops = {
	.get_config = t_get_config,
	.set_config = t_set_config,
	.set_features = t_set_features,
	.queue_start = t_queue_start,
	.queue_kick = t_queue_kick,
	.queue_stop = t_queue_stop,
	.reset = t_reset,
	.destroy = t_destroy,
};

static void raise_irq(void *ctx, uint32_t bits)
{
	(void)ctx;
	(void)bits;
}

static const struct vd_mmio_ops ops = {.raise_irq = raise_irq};

static uint8_t *guest;
static struct vd_mem *mem;

static void init(void)
{
	struct vd_mem_region r;

	vd_log_set_level(VD_LOG_ERR);
	guest = calloc(1, MEM_SIZE);
	mem = vd_mem_new_table(8);
	if (!guest || !mem)
		abort();
	memset(&r, 0, sizeof(r));
	r.gpa = 0;
	r.size = MEM_SIZE;
	r.hva = guest;
	r.fd = -1;
	if (vd_mem_add_region(mem, &r) < 0)
		abort();
}

/* Input: records of 12 bytes: op (bit 0 read/write, bits 1-2 width),
 * offset (2 bytes, 0..0x1ff), value (8 bytes), and one spare byte that
 * picks an interesting offset now and then so the setup paths are hit. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t hot[] = {0x070, 0x030, 0x038, 0x044,
				       0x050, 0x080, 0x090, 0x0a0,
				       0x020, 0x024, 0x064, 0x100};
	static const unsigned widths[] = {1, 2, 4, 8};
	struct toy *t;
	struct vd_mmio *m;
	unsigned n = 0;

	if (!mem)
		init();
	t = calloc(1, sizeof(*t));
	if (!t)
		return 0;
	t->m = (struct vd_model){
		.ops = &toy_ops,
		.type_name = "toy",
		.device_id = 99,
		.features = 1ULL << VIRTIO_F_VERSION_1 |
			    1ULL << VIRTIO_F_RING_PACKED | 1ULL << 28 |
			    1ULL << 29,
		.num_queues = 2,
		.max_queue_size = 64,
		.config_size = sizeof(t->config),
		.max_descs = 8,
	};
	if (vd_mmio_new(&t->m, mem, &ops, NULL, "fuzz", &m) < 0) {
		free(t);
		return 0;
	}
	while (size >= 12 && n++ < OPS_MAX) {
		uint8_t op = data[0];
		uint64_t off = (uint64_t)(data[1] | data[2] << 8) & 0x1ff;
		uint64_t val;
		unsigned w = (op & 0x80) ? 4 : widths[(op >> 1) & 3];

		memcpy(&val, data + 3, 8);
		if (data[11] < 2 * sizeof(hot) / sizeof(hot[0]))
			off = hot[data[11] / 2];
		/* Ring addresses inside guest memory most of the time. */
		if (off >= 0x080 && off < 0x0b0 && (op & 0x40))
			val &= MEM_SIZE - 1;
		if (op & 1)
			vd_mmio_write(m, off, w, val);
		else
			vd_mmio_read(m, off, w, &val);
		data += 12;
		size -= 12;
	}
	vd_mmio_free(m);
	memset(guest, 0, MEM_SIZE);
	return 0;
}
