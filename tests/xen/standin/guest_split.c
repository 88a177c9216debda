/* The stand-in guest's split ring, laid out and driven as Linux's
 * drivers/virtio/virtio_ring.c does (virtqueue_add_split and friends): one
 * DMA block with the used ring on its own page, a free list of
 * descriptors that out-of-order completion scrambles, an indirect table
 * for every request of more than one entry when negotiated, and
 * used_event / avail_event with EVENT_IDX. Test-only. */
#include <stdlib.h>
#include <string.h>

#include "guest.h"

#define RING_GPA 0x100000ULL /* 1 MiB */

struct split {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t *next;	 /* desc_extra[].next: the free list */
	uint16_t *flags; /* desc_extra[].flags: what the driver wrote */
	struct sx_req **data;
	uint16_t free_head, num_free;
	uint16_t avail_idx_shadow, avail_flags_shadow, num_added;
	uint16_t last_used_idx;
	bool event_triggered;
};

static uint16_t *used_event(struct sx_vdev *d, struct split *s)
{
	return &s->avail->ring[d->num];
}

static uint16_t *avail_event(struct sx_vdev *d, struct split *s)
{
	return (uint16_t *)&s->used->ring[d->num];
}

/* vring_create_virtqueue_split: desc, avail right after it, used at the
 * next VIRTIO_MMIO_VRING_ALIGN (page) boundary, in one coherent block. */
static int split_alloc(struct sx_vdev *d, uint64_t bus[3])
{
	struct split *s = calloc(1, sizeof(*s));
	uint64_t avail_off = 16ULL * d->num;
	uint64_t used_off = (avail_off + 6 + 2ULL * d->num + 4095) & ~4095ULL;
	uint64_t size = used_off + 6 + 8ULL * d->num, base;

	if (!s)
		return -ENOMEM;
	if (d->num & (d->num - 1)) {
		free(s);
		return -EINVAL;
	}
	s->next = calloc(d->num, sizeof(*s->next));
	s->flags = calloc(d->num, sizeof(*s->flags));
	s->data = calloc(d->num, sizeof(*s->data));
	d->ring = s;
	if (!s->next || !s->flags || !s->data)
		return -ENOMEM;
	memset(d->ram + RING_GPA, 0, 0x100000);
	s->desc = (struct vring_desc *)(d->ram + RING_GPA);
	s->avail = (struct vring_avail *)(d->ram + RING_GPA + avail_off);
	s->used = (struct vring_used *)(d->ram + RING_GPA + used_off);
	for (unsigned i = 0; i + 1 < d->num; i++)
		s->next[i] = (uint16_t)(i + 1);
	s->num_free = d->num;
	base = sx_dma_alloc_ring(d, 0, RING_GPA, size);
	if (d->o.grant && d->ring_dma[0].ref < 0)
		return -ENOMEM;
	bus[0] = base;
	bus[1] = base + avail_off;
	bus[2] = base + used_off;
	return 0;
}

static void split_free(struct sx_vdev *d)
{
	struct split *s = d->ring;

	if (!s)
		return;
	free(s->next);
	free(s->flags);
	free(s->data);
	free(s);
	d->ring = NULL;
}

static bool use_indirect(const struct sx_vdev *d, unsigned total_sg)
{
	const struct split *s = d->ring;

	/* virtqueue_use_indirect */
	return d->indirect && total_sg > 1 && s->num_free;
}

static unsigned split_slots(const struct sx_vdev *d, unsigned total_sg)
{
	return use_indirect(d, total_sg) ? 1 : total_sg;
}

static unsigned split_num_free(const struct sx_vdev *d)
{
	return ((const struct split *)d->ring)->num_free;
}

static int split_add(struct sx_vdev *d, struct sx_req *r)
{
	struct split *s = d->ring;
	unsigned total = r->n_out + r->n_in;
	bool indirect = use_indirect(d, total);
	uint16_t head = s->free_head, i = head, prev = head;

	if (total == 0 || s->num_free < (indirect ? 1 : total))
		return -ENOSPC;
	if (indirect) {
		uint64_t tgpa = sx_table_gpa(d, head, total);
		struct vring_desc *t = (struct vring_desc *)(d->ram + tgpa);

		for (unsigned k = 0; k < total; k++)
			t[k] = (struct vring_desc){
				.addr = r->sg[k].addr,
				.len = r->sg[k].len,
				.flags = (k + 1 < total ? VRING_DESC_F_NEXT
							: 0) |
					 (k >= r->n_out ? VRING_DESC_F_WRITE
							: 0),
				.next = (uint16_t)(k + 1)};
		s->desc[head] = (struct vring_desc){
			.addr = sx_dma_map(d, r, tgpa, total * 16u, true),
			.len = total * 16u,
			.flags = VRING_DESC_F_INDIRECT};
		s->flags[head] = VRING_DESC_F_INDIRECT;
		s->free_head = s->next[head];
		s->num_free--;
		d->st.indirect++;
	} else {
		for (unsigned k = 0; k < total; k++) {
			uint16_t f = VRING_DESC_F_NEXT |
				     (k >= r->n_out ? VRING_DESC_F_WRITE : 0);

			s->desc[i] = (struct vring_desc){.addr = r->sg[k].addr,
							 .len = r->sg[k].len,
							 .flags = f,
							 .next = s->next[i]};
			s->flags[i] = f;
			prev = i;
			i = s->next[i];
		}
		s->desc[prev].flags &= (uint16_t)~VRING_DESC_F_NEXT;
		s->flags[prev] &= (uint16_t)~VRING_DESC_F_NEXT;
		s->free_head = i;
		s->num_free -= (uint16_t)total;
		d->st.direct++;
	}
	s->data[head] = r;
	s->avail->ring[s->avail_idx_shadow & (d->num - 1)] = head;
	/* virtio_wmb, then the index: Linux publishes each add at once. */
	s->avail_idx_shadow++;
	__atomic_store_n(&s->avail->idx, s->avail_idx_shadow, __ATOMIC_RELEASE);
	s->num_added++;
	return 0;
}

static bool split_kick_prepare(struct sx_vdev *d)
{
	struct split *s = d->ring;
	uint16_t new = s->avail_idx_shadow;
	uint16_t old = (uint16_t)(new - s->num_added);

	/* virtio_mb: the index before the device's suppression state. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	s->num_added = 0;
	if (d->event_idx)
		return vring_need_event(
			__atomic_load_n(avail_event(d, s), __ATOMIC_RELAXED),
			new, old);
	return !(__atomic_load_n(&s->used->flags, __ATOMIC_RELAXED) &
		 VRING_USED_F_NO_NOTIFY);
}

static bool split_more_used(struct sx_vdev *d)
{
	struct split *s = d->ring;

	return s->last_used_idx !=
	       __atomic_load_n(&s->used->idx, __ATOMIC_ACQUIRE);
}

/* detach_buf_split: the chain's descriptors back on the free list. */
static void detach(struct sx_vdev *d, struct split *s, uint16_t head)
{
	uint16_t i = head;

	s->data[head] = NULL;
	for (unsigned n = 0; (s->flags[i] & VRING_DESC_F_NEXT) && n < d->num;
	     n++) {
		i = s->next[i];
		s->num_free++;
	}
	s->next[i] = s->free_head;
	s->free_head = head;
	s->num_free++;
}

static struct sx_req *split_get_buf(struct sx_vdev *d, uint32_t *len)
{
	struct split *s = d->ring;
	struct vring_used_elem *u;
	struct sx_req *r;
	uint32_t id;

	if (!split_more_used(d))
		return NULL;
	u = &s->used->ring[s->last_used_idx & (d->num - 1)];
	id = u->id;
	*len = u->len;
	if (id >= d->num || !s->data[id]) {
		/* BAD_RING: id %u is not a head */
		d->bad_ring = true;
		d->st.bad_ring++;
		return NULL;
	}
	r = s->data[id];
	detach(d, s, (uint16_t)id);
	s->last_used_idx++;
	/* With callbacks on, the next interrupt is wanted at the next used
	 * buffer (virtqueue_get_buf_ctx_split). */
	if (!(s->avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT)) {
		__atomic_store_n(used_event(d, s), s->last_used_idx,
				 __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	}
	return r;
}

static void split_disable_cb(struct sx_vdev *d)
{
	struct split *s = d->ring;

	if (s->avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT)
		return;
	s->avail_flags_shadow |= VRING_AVAIL_F_NO_INTERRUPT;
	/* The device already interrupted: it will not again until the
	 * driver moves used_event, so nothing to write. */
	if (s->event_triggered)
		return;
	if (d->event_idx)
		/* Linux's own "hack": an index the ring will not reach soon. */
		__atomic_store_n(used_event(d, s), 0, __ATOMIC_RELAXED);
	else
		__atomic_store_n(&s->avail->flags, s->avail_flags_shadow,
				 __ATOMIC_RELAXED);
}

static bool split_enable_cb(struct sx_vdev *d)
{
	struct split *s = d->ring;

	/* virtqueue_enable_cb_prepare_split, then virtqueue_poll. */
	if (s->avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT) {
		s->avail_flags_shadow &= (uint16_t)~VRING_AVAIL_F_NO_INTERRUPT;
		if (!d->event_idx)
			__atomic_store_n(&s->avail->flags,
					 s->avail_flags_shadow,
					 __ATOMIC_RELAXED);
	}
	__atomic_store_n(used_event(d, s), s->last_used_idx, __ATOMIC_RELAXED);
	s->event_triggered = false;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return !split_more_used(d);
}

static void split_cb_after_all(struct sx_vdev *d, unsigned reqs, unsigned slots)
{
	struct split *s = d->ring;
	uint16_t bufs =
		(uint16_t)(s->avail_idx_shadow - s->last_used_idx + reqs);

	/* virtqueue_enable_cb_delayed_split with all buffers, not 3/4. */
	(void)slots;
	if (!bufs)
		return;
	s->avail_flags_shadow &= (uint16_t)~VRING_AVAIL_F_NO_INTERRUPT;
	s->event_triggered = false;
	__atomic_store_n(used_event(d, s),
			 (uint16_t)(s->last_used_idx + bufs - 1),
			 __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void split_interrupted(struct sx_vdev *d)
{
	struct split *s = d->ring;

	if (d->event_idx)
		s->event_triggered = true;
}

const struct sx_ring_ops sx_split_ops = {
	.alloc = split_alloc,
	.free = split_free,
	.slots = split_slots,
	.num_free = split_num_free,
	.add = split_add,
	.kick_prepare = split_kick_prepare,
	.get_buf = split_get_buf,
	.more_used = split_more_used,
	.disable_cb = split_disable_cb,
	.enable_cb = split_enable_cb,
	.cb_after_all = split_cb_after_all,
	.interrupted = split_interrupted,
};
