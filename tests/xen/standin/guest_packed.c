/* The stand-in guest's packed ring, laid out and driven as Linux's
 * drivers/virtio/virtio_ring.c does (virtqueue_add_packed and friends):
 * the descriptor ring and the two event structures in DMA blocks of their
 * own, buffer ids from a free list, the head's flags written last, an
 * indirect table for every request of more than one entry when negotiated,
 * and event suppression (ENABLE / DISABLE, DESC with EVENT_IDX) both ways.
 * Test-only. */
#include <stdlib.h>
#include <string.h>

#include "guest.h"

#define RING_GPA 0x100000ULL /* 1 MiB */
#define F_AVAIL	 (1u << VRING_PACKED_DESC_F_AVAIL)
#define F_USED	 (1u << VRING_PACKED_DESC_F_USED)
#define WRAP_BIT (1u << VRING_PACKED_EVENT_F_WRAP_CTR)

struct packed {
	struct vring_packed_desc *desc;
	struct vring_packed_desc_event *driver, *device;
	uint16_t next_avail_idx, last_used_idx;
	bool avail_wrap, used_wrap;
	uint16_t avail_used_flags;
	uint16_t free_head, num_free, num_added;
	uint16_t event_flags_shadow;
	bool event_triggered;
	/* Per buffer id (desc_extra / desc_state). */
	uint16_t *next, *ndescs, *last;
	struct sx_req **data;
};

/* vring_alloc_queue_packed: ring, driver and device event areas, each
 * its own coherent allocation (here a page apart). */
static int packed_alloc(struct sx_vdev *d, uint64_t bus[3])
{
	struct packed *p = calloc(1, sizeof(*p));
	uint64_t ring_len = 16ULL * d->num;
	uint64_t drv = RING_GPA + ((ring_len + 4095) & ~4095ULL);
	uint64_t dev = drv + 4096;

	if (!p)
		return -ENOMEM;
	p->next = calloc(d->num, sizeof(*p->next));
	p->ndescs = calloc(d->num, sizeof(*p->ndescs));
	p->last = calloc(d->num, sizeof(*p->last));
	p->data = calloc(d->num, sizeof(*p->data));
	d->ring = p;
	if (!p->next || !p->ndescs || !p->last || !p->data)
		return -ENOMEM;
	memset(d->ram + RING_GPA, 0, 0x100000);
	p->desc = (struct vring_packed_desc *)(d->ram + RING_GPA);
	p->driver = (struct vring_packed_desc_event *)(d->ram + drv);
	p->device = (struct vring_packed_desc_event *)(d->ram + dev);
	for (unsigned i = 0; i + 1 < d->num; i++)
		p->next[i] = (uint16_t)(i + 1);
	p->num_free = d->num;
	p->avail_wrap = p->used_wrap = true;
	p->avail_used_flags = F_AVAIL;
	/* Callbacks on: ENABLE until the first interrupt turns it to DESC
	 * (EVENT_IDX) through disable/enable. */
	p->event_flags_shadow = VRING_PACKED_EVENT_FLAG_ENABLE;
	bus[0] = sx_dma_alloc_ring(d, 0, RING_GPA, ring_len);
	bus[1] = sx_dma_alloc_ring(d, 1, drv, 4);
	bus[2] = sx_dma_alloc_ring(d, 2, dev, 4);
	if (d->o.grant && (d->ring_dma[0].ref < 0 || d->ring_dma[1].ref < 0 ||
			   d->ring_dma[2].ref < 0))
		return -ENOMEM;
	return 0;
}

static void packed_free(struct sx_vdev *d)
{
	struct packed *p = d->ring;

	if (!p)
		return;
	free(p->next);
	free(p->ndescs);
	free(p->last);
	free(p->data);
	free(p);
	d->ring = NULL;
}

static unsigned packed_slots(const struct sx_vdev *d, unsigned total_sg)
{
	const struct packed *p = d->ring;

	return d->indirect && total_sg > 1 && p->num_free ? 1 : total_sg;
}

static unsigned packed_num_free(const struct sx_vdev *d)
{
	return ((const struct packed *)d->ring)->num_free;
}

static void publish_head(struct packed *p, uint16_t head, uint16_t flags)
{
	/* virtio_wmb: the whole list before the head's flags. */
	__atomic_store_n(&p->desc[head].flags, flags, __ATOMIC_RELEASE);
}

/* virtqueue_add_indirect_packed */
static int add_indirect(struct sx_vdev *d, struct packed *p, struct sx_req *r)
{
	unsigned total = r->n_out + r->n_in;
	uint16_t head = p->next_avail_idx, id = p->free_head;
	uint16_t flags = VRING_DESC_F_INDIRECT | p->avail_used_flags;
	uint64_t tgpa = sx_table_gpa(d, id, total);
	struct vring_packed_desc *t =
		(struct vring_packed_desc *)(d->ram + tgpa);

	for (unsigned k = 0; k < total; k++)
		t[k] = (struct vring_packed_desc){
			.addr = r->sg[k].addr,
			.len = r->sg[k].len,
			.flags = k >= r->n_out ? VRING_DESC_F_WRITE : 0};
	p->desc[head].addr = sx_dma_map(d, r, tgpa, total * 16u, true);
	p->desc[head].len = total * 16u;
	p->desc[head].id = id;
	if (++p->next_avail_idx >= d->num) {
		p->next_avail_idx = 0;
		p->avail_wrap = !p->avail_wrap;
		p->avail_used_flags ^= F_AVAIL | F_USED;
	}
	p->num_free--;
	p->free_head = p->next[id];
	p->ndescs[id] = 1;
	p->last[id] = id;
	p->data[id] = r;
	publish_head(p, head, flags);
	p->num_added++;
	d->st.indirect++;
	return 0;
}

static int packed_add(struct sx_vdev *d, struct sx_req *r)
{
	struct packed *p = d->ring;
	unsigned total = r->n_out + r->n_in;
	uint16_t head = p->next_avail_idx, i = head, id = p->free_head;
	uint16_t curr = id, prev = id, head_flags = 0;

	if (total == 0 || p->num_free < packed_slots(d, total))
		return -ENOSPC;
	if (packed_slots(d, total) == 1 && d->indirect && total > 1)
		return add_indirect(d, p, r);
	for (unsigned k = 0; k < total; k++) {
		uint16_t f = p->avail_used_flags |
			     (k + 1 < total ? VRING_DESC_F_NEXT : 0) |
			     (k >= r->n_out ? VRING_DESC_F_WRITE : 0);

		if (i == head)
			head_flags = f;
		else
			p->desc[i].flags = f;
		p->desc[i].addr = r->sg[k].addr;
		p->desc[i].len = r->sg[k].len;
		p->desc[i].id = id;
		prev = curr;
		curr = p->next[curr];
		if (++i >= d->num) {
			i = 0;
			p->avail_used_flags ^= F_AVAIL | F_USED;
		}
	}
	if (i <= head)
		p->avail_wrap = !p->avail_wrap;
	p->num_free -= (uint16_t)total;
	p->next_avail_idx = i;
	p->free_head = curr;
	p->ndescs[id] = (uint16_t)total;
	p->last[id] = prev;
	p->data[id] = r;
	publish_head(p, head, head_flags);
	p->num_added += (uint16_t)total;
	d->st.direct++;
	return 0;
}

static bool packed_kick_prepare(struct sx_vdev *d)
{
	struct packed *p = d->ring;
	uint16_t new = p->next_avail_idx;
	uint16_t old = (uint16_t)(new - p->num_added);
	uint16_t flags, off_wrap, event_idx;

	/* virtio_mb, then one snapshot of the device's event structure. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	p->num_added = 0;
	off_wrap = __atomic_load_n(&p->device->off_wrap, __ATOMIC_RELAXED);
	flags = __atomic_load_n(&p->device->flags, __ATOMIC_RELAXED);
	if (flags != VRING_PACKED_EVENT_FLAG_DESC)
		return flags != VRING_PACKED_EVENT_FLAG_DISABLE;
	event_idx = off_wrap & (uint16_t)~WRAP_BIT;
	if (!!(off_wrap & WRAP_BIT) != p->avail_wrap)
		event_idx = (uint16_t)(event_idx - d->num);
	return vring_need_event(event_idx, new, old);
}

static bool is_used(struct sx_vdev *d, uint16_t idx, bool wrap)
{
	struct packed *p = d->ring;
	uint16_t f = __atomic_load_n(&p->desc[idx].flags, __ATOMIC_ACQUIRE);

	return !!(f & F_AVAIL) == !!(f & F_USED) && !!(f & F_USED) == wrap;
}

static bool packed_more_used(struct sx_vdev *d)
{
	struct packed *p = d->ring;

	return is_used(d, p->last_used_idx, p->used_wrap);
}

static uint16_t last_used_off_wrap(const struct packed *p)
{
	return (uint16_t)(p->last_used_idx | (p->used_wrap ? WRAP_BIT : 0));
}

static struct sx_req *packed_get_buf(struct sx_vdev *d, uint32_t *len)
{
	struct packed *p = d->ring;
	uint16_t id, last = p->last_used_idx;
	struct sx_req *r;

	if (!packed_more_used(d))
		return NULL;
	id = p->desc[last].id;
	*len = p->desc[last].len;
	if (id >= d->num || !p->data[id]) {
		d->bad_ring = true;
		d->st.bad_ring++;
		return NULL;
	}
	r = p->data[id];
	p->data[id] = NULL;
	/* detach_buf_packed: the ids back on the free list. */
	p->next[p->last[id]] = p->free_head;
	p->free_head = id;
	p->num_free += p->ndescs[id];
	p->last_used_idx += p->ndescs[id];
	if (p->last_used_idx >= d->num) {
		p->last_used_idx -= d->num;
		p->used_wrap = !p->used_wrap;
	}
	if (p->event_flags_shadow == VRING_PACKED_EVENT_FLAG_DESC) {
		__atomic_store_n(&p->driver->off_wrap, last_used_off_wrap(p),
				 __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	}
	return r;
}

static void packed_disable_cb(struct sx_vdev *d)
{
	struct packed *p = d->ring;

	if (p->event_flags_shadow == VRING_PACKED_EVENT_FLAG_DISABLE)
		return;
	p->event_flags_shadow = VRING_PACKED_EVENT_FLAG_DISABLE;
	if (!p->event_triggered)
		__atomic_store_n(&p->driver->flags, p->event_flags_shadow,
				 __ATOMIC_RELAXED);
}

static void set_flags(struct packed *p, uint16_t flags)
{
	p->event_flags_shadow = flags;
	__atomic_store_n(&p->driver->flags, flags, __ATOMIC_RELAXED);
}

static bool packed_enable_cb(struct sx_vdev *d)
{
	struct packed *p = d->ring;

	/* virtqueue_enable_cb_prepare_packed, then virtqueue_poll. */
	if (d->event_idx) {
		__atomic_store_n(&p->driver->off_wrap, last_used_off_wrap(p),
				 __ATOMIC_RELEASE);
	}
	if (p->event_flags_shadow == VRING_PACKED_EVENT_FLAG_DISABLE)
		set_flags(p, d->event_idx ? VRING_PACKED_EVENT_FLAG_DESC
					  : VRING_PACKED_EVENT_FLAG_ENABLE);
	p->event_triggered = false;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return !packed_more_used(d);
}

static void packed_cb_after_all(struct sx_vdev *d, unsigned reqs,
				unsigned slots)
{
	struct packed *p = d->ring;
	uint16_t bufs = (uint16_t)(d->num - p->num_free + slots);
	uint32_t pos = p->last_used_idx + (uint32_t)bufs - 1;
	bool wrap = p->used_wrap;

	/* virtqueue_enable_cb_delayed_packed with every slot in flight:
	 * the event is the last slot the device will mark used. */
	(void)reqs;
	if (!bufs)
		return;
	if (pos >= d->num) {
		pos -= d->num;
		wrap = !wrap;
	}
	__atomic_store_n(&p->driver->off_wrap,
			 (uint16_t)(pos | (wrap ? WRAP_BIT : 0)),
			 __ATOMIC_RELEASE);
	if (p->event_flags_shadow != VRING_PACKED_EVENT_FLAG_DESC)
		set_flags(p, VRING_PACKED_EVENT_FLAG_DESC);
	p->event_triggered = false;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void packed_interrupted(struct sx_vdev *d)
{
	struct packed *p = d->ring;

	if (d->event_idx)
		p->event_triggered = true;
}

const struct sx_ring_ops sx_packed_ops = {
	.alloc = packed_alloc,
	.free = packed_free,
	.slots = packed_slots,
	.num_free = packed_num_free,
	.add = packed_add,
	.kick_prepare = packed_kick_prepare,
	.get_buf = packed_get_buf,
	.more_used = packed_more_used,
	.disable_cb = packed_disable_cb,
	.enable_cb = packed_enable_cb,
	.cb_after_all = packed_cb_after_all,
	.interrupted = packed_interrupted,
};
