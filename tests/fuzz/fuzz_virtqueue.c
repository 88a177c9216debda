/* libFuzzer target for the virtqueue parser: split and packed rings and
 * indirect tables built from the input in a guest memory of separately
 * allocated regions (so ASan sees any access past one), chains popped and
 * completed in an input-chosen order. Must never crash or touch memory
 * outside the regions. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_ring.h>

#include "virtiod/guest_mem.h"
#include "virtiod/log.h"
#include "virtiod/virtqueue.h"

#include "fz_input.h"

/* Guest memory: R0 rings, R1 + R2 adjacent (tables, data), a hole, R3. */
static const struct {
	uint64_t gpa, size;
} layout[] = {
	{0x10000, 0x4000},
	{0x14000, 0x4000},
	{0x18000, 0x2000},
	{0x20000, 0x1000},
};
#define NREG	    4
#define SPAN	    0x11000 /* gpa 0x10000.. covers every region and the hole */
#define TABLE_GPA   0x14000
#define TABLE_BYTES 0x1000
#define MAX_HELD    64

static uint8_t *region[NREG];
static struct vd_mem *mem;
static unsigned long long chains_popped, inputs;

static void *hva(uint64_t gpa)
{
	for (unsigned i = 0; i < NREG; i++)
		if (gpa >= layout[i].gpa &&
		    gpa < layout[i].gpa + layout[i].size)
			return region[i] + (gpa - layout[i].gpa);
	return NULL;
}

static void report(void)
{
	printf("fuzz_virtqueue: %llu chains popped in %llu inputs\n",
	       chains_popped, inputs);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct vd_mem_region r[NREG];

	(void)argc;
	(void)argv;
	mem = vd_mem_new_table(1);
	for (unsigned i = 0; i < NREG; i++) {
		region[i] = malloc(layout[i].size);
		if (!mem || !region[i])
			abort();
		r[i] = (struct vd_mem_region){.gpa = layout[i].gpa,
					      .size = layout[i].size,
					      .hva = region[i],
					      .fd = -1};
	}
	if (vd_mem_set_regions(mem, r, NREG))
		abort();
	atexit(report);
	return 0;
}

/* A descriptor from 16 input bytes: addresses and lengths mostly land in
 * or near guest memory, indexes (split next, packed id) mostly in range;
 * sometimes all stay wild. */
static void make_desc(struct input *in, uint8_t out[16], bool split,
		      uint16_t num)
{
	uint64_t addr = fz_take(in, 8);
	uint32_t len = (uint32_t)fz_take(in, 4);
	uint16_t a = (uint16_t)fz_take(in, 2), b = (uint16_t)fz_take(in, 2);

	if (addr >> 60 < 13)
		addr = layout[0].gpa + addr % SPAN;
	if (len >> 28 < 13)
		len %= 0x3000;
	if (split && b >> 12 < 14)
		b %= num; /* next */
	if (!split && a >> 12 < 14)
		a %= num; /* buffer id */
	memcpy(out, &addr, 8);
	memcpy(out + 8, &len, 4);
	memcpy(out + 12, &a, 2);
	memcpy(out + 14, &b, 2);
}

static void check_elem(const struct vd_vq_elem *e, unsigned max_iov)
{
	uint64_t total = 0;

	if (e->n_read + e->n_write > max_iov)
		__builtin_trap();
	for (unsigned i = 0; i < e->n_read + e->n_write; i++) {
		const struct iovec *v = &e->read_iov[i];
		bool inside = false;

		for (unsigned r = 0; r < NREG; r++) {
			uint8_t *b = v->iov_base;

			inside |= b >= region[r] &&
				  v->iov_len <= layout[r].size &&
				  (size_t)(b - region[r]) <=
					  layout[r].size - v->iov_len;
		}
		if (!inside)
			__builtin_trap();
		total += v->iov_len;
		/* Touch the ends so ASan checks them. */
		if (v->iov_len) {
			volatile uint8_t *b = v->iov_base;
			(void)b[0];
			(void)b[v->iov_len - 1];
			if (i >= e->n_read)
				b[v->iov_len - 1] = 0x5a;
		}
	}
	if (total != e->read_len + e->write_len)
		__builtin_trap();
}

static void on_log(void *ctx, uint64_t gpa, uint64_t len)
{
	(void)ctx;
	/* The device only logs what lies in guest memory. */
	if (len && (!hva(gpa) || !hva(gpa + len - 1)))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size};
	struct vd_vq_config cfg = {0};
	struct vd_vq_hooks hooks = {.log_write = on_log};
	struct vd_vq_elem *held[MAX_HELD];
	unsigned n_held = 0;
	uint8_t mode = (uint8_t)fz_take(&in, 1);
	size_t desc_len, drv_len, dev_len;
	uint64_t desc_gpa = layout[0].gpa, drv_gpa, dev_gpa;
	struct vd_vq *vq;

	inputs++;
	cfg.layout = mode & 1 ? VD_VQ_PACKED : VD_VQ_SPLIT;
	cfg.event_idx = mode & 2;
	cfg.indirect = mode & 4;
	cfg.num = cfg.layout == VD_VQ_SPLIT
			  ? (uint16_t)(1u << (fz_take(&in, 1) % 7))
			  : (uint16_t)(1 + fz_take(&in, 1) % 64);
	cfg.max_iov = 2 + (unsigned)fz_take(&in, 1) % 15;
	cfg.avail_idx = (uint16_t)fz_take(&in, 2);
	cfg.used_idx = (uint16_t)fz_take(&in, 2);
	cfg.avail_wrap = mode & 16;
	cfg.used_wrap = mode & 32;
	cfg.used_idx_valid = mode & 64;
	if (cfg.layout == VD_VQ_PACKED) {
		cfg.avail_idx %= cfg.num;
		cfg.used_idx %= cfg.num;
	}
	vd_vq_ring_sizes(cfg.layout, cfg.num, &desc_len, &drv_len, &dev_len);
	drv_gpa = desc_gpa + desc_len;
	dev_gpa = (drv_gpa + drv_len + 3) & ~3ull;
	memset(region[0], 0, layout[0].size);

	/* The descriptor ring and the table area from the input. */
	for (unsigned i = 0; i < cfg.num; i++) {
		uint8_t *d = hva(desc_gpa + 16u * i);

		make_desc(&in, d, cfg.layout == VD_VQ_SPLIT, cfg.num);
		if (cfg.layout == VD_VQ_PACKED && (d[14] & 8)) {
			/* Make it available for the device's wrap count. */
			uint16_t f;

			memcpy(&f, d + 14, 2);
			f &= (uint16_t) ~(1u << 7 | 1u << 15);
			f |= cfg.avail_wrap ? 1u << 7 : 1u << 15;
			memcpy(d + 14, &f, 2);
		}
	}
	for (unsigned i = 0; i < TABLE_BYTES / 16; i++) {
		struct input rep = {data, size};

		/* Tables repeat the input: no need for that many bytes. */
		rep.p += (i * 16) % (size ? size : 1);
		rep.n = size - (size_t)(rep.p - data);
		make_desc(&rep, hva(TABLE_GPA + 16u * i),
			  cfg.layout == VD_VQ_SPLIT, 1 + i % 16);
	}
	if (cfg.layout == VD_VQ_SPLIT) {
		struct vring_avail *avail = hva(drv_gpa);

		avail->flags = (uint16_t)fz_take(&in, 1);
		avail->idx = (uint16_t)(cfg.avail_idx +
					fz_take(&in, 1) % (cfg.num + 2));
		/* Heads mostly in range; ring[num] is used_event. */
		for (unsigned i = 0; i < cfg.num; i++)
			avail->ring[i] =
				(uint16_t)(fz_take(&in, 1) % (cfg.num + 1u));
		avail->ring[cfg.num] = (uint16_t)fz_take(&in, 2);
	} else {
		struct vring_packed_desc_event *ev = hva(drv_gpa);

		ev->off_wrap = (uint16_t)fz_take(&in, 2);
		ev->flags = (uint16_t)fz_take(&in, 1) % 4;
	}
	cfg.desc = hva(desc_gpa);
	cfg.driver = hva(drv_gpa);
	cfg.device = hva(dev_gpa);
	cfg.desc_gpa = desc_gpa;
	cfg.device_gpa = dev_gpa;
	if (vd_vq_new(&cfg, mem, &hooks, "fuzz", &vq))
		return 0;
	vd_vq_set_logging(vq, mode & 8);

	for (unsigned ops = 0; in.n && ops < 512; ops++) {
		uint8_t op = (uint8_t)fz_take(&in, 1);
		struct vd_vq_elem *e;

		switch (op % 8) {
		case 0:
		case 1:
		case 2:
			if (vd_vq_pop(vq, &e) != 1)
				break;
			chains_popped++;
			check_elem(e, cfg.max_iov);
			if (n_held == MAX_HELD)
				vd_vq_push(vq, e, (uint32_t)e->write_len);
			else
				held[n_held++] = e;
			break;
		case 3:
			if (n_held) {
				unsigned k = (unsigned)fz_take(&in, 1) % n_held;

				vd_vq_push(vq, held[k],
					   (uint32_t)fz_take(&in, 4));
				held[k] = held[--n_held];
			}
			break;
		case 4:
			vd_vq_flush(vq);
			break;
		case 5:
			if (op & 0x80) {
				vd_vq_disable_notify(vq);
			} else if (op & 0x40) {
				/* A device short of buffers gives the latest
				 * pop back and waits for the next one. */
				if (n_held && vd_vq_unpop(vq, held[n_held - 1]) == 0)
					n_held--;
				vd_vq_enable_notify_more(vq);
				vd_vq_avail_more(vq);
			} else {
				vd_vq_enable_notify(vq);
			}
			break;
		case 6: {
			/* The driver changes its rings under the device. */
			uint16_t off = (uint16_t)fz_take(&in, 2);
			uint8_t v = (uint8_t)fz_take(&in, 1);
			size_t span = (size_t)(dev_gpa - desc_gpa) + dev_len;

			region[0][off % span] = v;
			break;
		}
		case 7: {
			uint16_t heads[4];
			unsigned n = (unsigned)fz_take(&in, 1) % 5;

			for (unsigned i = 0; i < n && i < 4; i++)
				heads[i] = (uint16_t)fz_take(&in, 1);
			vd_vq_requeue(vq, heads, n > 4 ? 4 : n);
			break;
		}
		}
	}
	while (n_held)
		vd_vq_push(vq, held[--n_held], 0);
	vd_vq_flush(vq);
	if (vd_vq_inflight(vq))
		__builtin_trap();
	vd_vq_free(vq);
	return 0;
}
