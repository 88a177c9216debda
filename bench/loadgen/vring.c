/* Split virtqueue, driver side. Barriers follow Linux's virtio_ring.c:
 * release on avail->idx, a full fence before reading the device's event
 * index or flags (virtio 1.2 §2.7.10), acquire on used->idx. */
#include "vring.h"

#include <string.h>

static size_t align_up(size_t v)
{
	return (v + LG_VRING_ALIGN - 1) & ~(size_t)(LG_VRING_ALIGN - 1);
}

size_t lg_vring_avail_off(unsigned num)
{
	return align_up(sizeof(struct vring_desc) * num);
}

size_t lg_vring_used_off(unsigned num)
{
	/* flags, idx, ring[num], used_event */
	return lg_vring_avail_off(num) + align_up(2 * (3 + (size_t)num));
}

size_t lg_vring_bytes(unsigned num)
{
	/* flags, idx, ring[num], avail_event */
	return lg_vring_used_off(num) +
	       align_up(6 + sizeof(struct vring_used_elem) * (size_t)num);
}

void lg_vring_init(struct lg_vring *vr, void *mem, unsigned num, bool event_idx)
{
	char *base = mem;
	memset(vr, 0, sizeof(*vr));
	vr->num = num;
	vr->desc = (struct vring_desc *)base;
	vr->avail = (struct vring_avail *)(base + lg_vring_avail_off(num));
	vr->used = (struct vring_used *)(base + lg_vring_used_off(num));
	vr->event_idx = event_idx;
}

void lg_vring_add(struct lg_vring *vr, uint16_t head)
{
	vr->avail->ring[vr->avail_idx & (vr->num - 1)] = head;
	vr->avail_idx++;
}

bool lg_vring_flush(struct lg_vring *vr)
{
	uint16_t old = vr->kick_idx, new = vr->avail_idx;
	if (old == new)
		return false;
	__atomic_store_n(&vr->avail->idx, new, __ATOMIC_RELEASE);
	vr->kick_idx = new;
	/* The device may be deciding to sleep right now: our idx store must
	 * be visible before we read its wish (store-load ordering). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (vr->event_idx) {
		uint16_t ev = __atomic_load_n(lg_vring_avail_event(vr),
					      __ATOMIC_RELAXED);
		return vring_need_event(ev, new, old);
	}
	return !(__atomic_load_n(&vr->used->flags, __ATOMIC_RELAXED) &
		 VRING_USED_F_NO_NOTIFY);
}

bool lg_vring_reap(struct lg_vring *vr, uint32_t *id, uint32_t *len)
{
	uint16_t idx = __atomic_load_n(&vr->used->idx, __ATOMIC_ACQUIRE);
	if (idx == vr->last_used)
		return false;
	struct vring_used_elem *e =
		&vr->used->ring[vr->last_used & (vr->num - 1)];
	*id = e->id;
	*len = e->len;
	vr->last_used++;
	return true;
}

bool lg_vring_arm(struct lg_vring *vr)
{
	if (vr->event_idx) {
		uint16_t *used_event = &vr->avail->ring[vr->num];
		__atomic_store_n(used_event, vr->last_used, __ATOMIC_RELAXED);
	}
	/* Our used_event store before the device's next used->idx read; then
	 * re-check so an entry pushed meanwhile is not slept through. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return __atomic_load_n(&vr->used->idx, __ATOMIC_ACQUIRE) ==
	       vr->last_used;
}
