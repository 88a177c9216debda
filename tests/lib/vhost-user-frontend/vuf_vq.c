/* Split and packed virtqueues, driver side. Barriers follow Linux's
 * virtio_ring.c: release on avail->idx and on a packed head's flags, a full
 * fence before reading the device's event index or flags (virtio 1.2
 * §2.7.10), acquire on used->idx and on a used descriptor's flags. Every
 * token the device returns is checked before it indexes anything. */
#include "vuf_vq.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PACKED_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define PACKED_USED  (1u << VRING_PACKED_DESC_F_USED)

void vuf_vq_sizes(bool packed, unsigned num, size_t *desc, size_t *driver,
		  size_t *device)
{
	*desc = sizeof(struct vring_desc) * (size_t)num;
	if (packed) {
		/* §2.8.10: the event suppression structures. */
		*driver = sizeof(struct vring_packed_desc_event);
		*device = sizeof(struct vring_packed_desc_event);
		return;
	}
	/* flags, idx, ring[num], used_event / avail_event */
	*driver = 2 * (3 + (size_t)num);
	*device = 6 + sizeof(struct vring_used_elem) * (size_t)num;
}

static size_t align_up(size_t v, size_t align)
{
	return (v + align - 1) & ~(align - 1);
}

struct vuf_vq_layout vuf_vq_layout(bool packed, unsigned num, size_t align)
{
	struct vuf_vq_layout l = {0};
	size_t d, dr, dv;

	vuf_vq_sizes(packed, num, &d, &dr, &dv);
	l.driver = align_up(d, align);
	l.device = l.driver + align_up(dr, align);
	l.bytes = l.device + align_up(dv, align);
	return l;
}

int vuf_vq_init(struct vuf_vq *vq, bool packed, unsigned num, void *desc,
		void *driver, void *device, bool event_idx, bool chains)
{
	memset(vq, 0, sizeof(*vq));
	if (num == 0 || num > VUF_VQ_MAX_SIZE ||
	    (!packed && (num & (num - 1))) || (packed && !chains))
		return -EINVAL;
	vq->num = (uint16_t)num;
	vq->packed = packed;
	vq->event_idx = event_idx;
	vq->desc = desc;
	vq->avail = driver;
	vq->used = device;
	vq->n_free = vq->num;
	/* §2.8.1: both wrap counters start at 1. */
	vq->avail_wrap = vq->used_wrap = true;
	if (!chains)
		return 0;
	vq->chain_len = calloc(num, sizeof(*vq->chain_len));
	vq->busy = calloc(num, sizeof(*vq->busy));
	if (!vq->chain_len || !vq->busy) {
		vuf_vq_free(vq);
		return -ENOMEM;
	}
	if (!packed)
		for (unsigned i = 0; i < num; i++)
			vq->desc[i].next = htole16((uint16_t)(i + 1));
	return 0;
}

void vuf_vq_free(struct vuf_vq *vq)
{
	free(vq->chain_len);
	free(vq->busy);
	vq->chain_len = NULL;
	vq->busy = NULL;
}

/* ------------------------------------------------------------ available */

void vuf_vq_add_head(struct vuf_vq *vq, uint16_t head)
{
	vq->avail->ring[vq->avail_idx & (vq->num - 1)] = htole16(head);
	vq->avail_idx++;
}

uint16_t *vuf_vq_avail_event(const struct vuf_vq *vq)
{
	return (uint16_t *)((char *)vq->used +
			    offsetof(struct vring_used, ring) +
			    sizeof(struct vring_used_elem) * vq->num);
}

static int split_add(struct vuf_vq *vq, const struct vuf_buf *bufs, unsigned n)
{
	struct vring_desc *desc = vq->desc;
	uint16_t head = vq->free_head, i = head;

	for (unsigned k = 0; k < n; k++) {
		desc[i].addr = htole64(bufs[k].gpa);
		desc[i].len = htole32(bufs[k].len);
		desc[i].flags =
			htole16((bufs[k].write ? VRING_DESC_F_WRITE : 0) |
				(k + 1 < n ? VRING_DESC_F_NEXT : 0));
		if (k + 1 < n)
			i = le16toh(desc[i].next);
	}
	vq->free_head = le16toh(desc[i].next);
	vq->n_free = (uint16_t)(vq->n_free - n);
	vq->chain_len[head] = (uint16_t)n;
	vq->busy[head] = true;
	vuf_vq_add_head(vq, head);
	return head;
}

static int packed_add(struct vuf_vq *vq, const struct vuf_buf *bufs, unsigned n)
{
	struct vring_packed_desc *desc = vq->pdesc;
	uint16_t id = vq->next_id, first = vq->avail_pos, first_flags = 0;
	unsigned tries = 0;

	while (vq->busy[id] && tries++ < vq->num)
		id = (uint16_t)((id + 1) % vq->num);
	if (vq->busy[id])
		return -ENOSPC;
	vq->next_id = (uint16_t)((id + 1) % vq->num);
	for (unsigned k = 0; k < n; k++) {
		uint16_t pos = vq->avail_pos;
		uint16_t fl =
			(uint16_t)((bufs[k].write ? VRING_DESC_F_WRITE : 0) |
				   (k + 1 < n ? VRING_DESC_F_NEXT : 0));

		fl |= vq->avail_wrap ? PACKED_AVAIL : PACKED_USED;
		desc[pos].addr = htole64(bufs[k].gpa);
		desc[pos].len = htole32(bufs[k].len);
		desc[pos].id = htole16(id);
		if (k == 0)
			first_flags = fl;
		else
			desc[pos].flags = htole16(fl);
		if (++vq->avail_pos == vq->num) {
			vq->avail_pos = 0;
			vq->avail_wrap = !vq->avail_wrap;
		}
	}
	/* The head's flags last: the device sees the whole chain at once. */
	__atomic_store_n(&desc[first].flags, htole16(first_flags),
			 __ATOMIC_RELEASE);
	vq->n_free = (uint16_t)(vq->n_free - n);
	vq->busy[id] = true;
	vq->chain_len[id] = (uint16_t)n;
	return id;
}

int vuf_vq_add(struct vuf_vq *vq, const struct vuf_buf *bufs, unsigned n)
{
	if (!vq->chain_len || n == 0 || n > vq->n_free)
		return -ENOSPC;
	return vq->packed ? packed_add(vq, bufs, n) : split_add(vq, bufs, n);
}

bool vuf_vq_publish(struct vuf_vq *vq)
{
	uint16_t old = vq->kick_idx, new = vq->avail_idx;

	if (vq->packed)
		return true;
	if (old == new)
		return false;
	__atomic_store_n(&vq->avail->idx, htole16(new), __ATOMIC_RELEASE);
	vq->kick_idx = new;
	/* The device may be deciding to sleep right now: our idx store must
	 * be visible before we read its wish (store-load ordering). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (vq->event_idx) {
		uint16_t ev = le16toh(__atomic_load_n(vuf_vq_avail_event(vq),
						      __ATOMIC_RELAXED));

		return vring_need_event(ev, new, old);
	}
	return !(le16toh(__atomic_load_n(&vq->used->flags, __ATOMIC_RELAXED)) &
		 VRING_USED_F_NO_NOTIFY);
}

/* ----------------------------------------------------------------- used */

uint16_t vuf_vq_used_idx(const struct vuf_vq *vq)
{
	return le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE));
}

static int split_reap(struct vuf_vq *vq, uint32_t *token, uint32_t *len)
{
	const struct vring_used_elem *e;
	uint16_t head, i;

	if (vuf_vq_used_idx(vq) == vq->last_used)
		return 0;
	e = &vq->used->ring[vq->last_used & (vq->num - 1)];
	*token = le32toh(e->id);
	*len = le32toh(e->len);
	vq->last_used++;
	if (!vq->chain_len)
		return 1; /* the caller's chains: its ids to check */
	if (*token >= vq->num || !vq->busy[*token])
		return -EPROTO;
	/* Back to the free list. */
	head = (uint16_t)*token;
	i = head;
	for (uint16_t k = 1; k < vq->chain_len[head]; k++)
		i = le16toh(vq->desc[i].next);
	vq->desc[i].next = htole16(vq->free_head);
	vq->free_head = head;
	vq->n_free = (uint16_t)(vq->n_free + vq->chain_len[head]);
	vq->busy[head] = false;
	return 1;
}

static bool packed_used_at(const struct vuf_vq *vq, uint16_t pos)
{
	uint16_t fl = le16toh(
		__atomic_load_n(&vq->pdesc[pos].flags, __ATOMIC_ACQUIRE));

	/* §2.8.1: used when both bits equal the used wrap counter. */
	return !!(fl & PACKED_AVAIL) == vq->used_wrap &&
	       !!(fl & PACKED_USED) == vq->used_wrap;
}

static int packed_reap(struct vuf_vq *vq, uint32_t *token, uint32_t *len)
{
	const struct vring_packed_desc *d = &vq->pdesc[vq->used_pos];
	uint16_t id;

	if (!packed_used_at(vq, vq->used_pos))
		return 0;
	id = le16toh(d->id);
	*token = id;
	*len = le32toh(d->len);
	if (id >= vq->num || !vq->busy[id])
		return -EPROTO;
	vq->busy[id] = false;
	vq->n_free = (uint16_t)(vq->n_free + vq->chain_len[id]);
	vq->used_pos = (uint16_t)(vq->used_pos + vq->chain_len[id]);
	if (vq->used_pos >= vq->num) {
		vq->used_pos = (uint16_t)(vq->used_pos - vq->num);
		vq->used_wrap = !vq->used_wrap;
	}
	return 1;
}

int vuf_vq_reap(struct vuf_vq *vq, uint32_t *token, uint32_t *len)
{
	return vq->packed ? packed_reap(vq, token, len)
			  : split_reap(vq, token, len);
}

bool vuf_vq_pending(const struct vuf_vq *vq)
{
	if (vq->packed)
		return packed_used_at(vq, vq->used_pos);
	return vuf_vq_used_idx(vq) != vq->last_used;
}

bool vuf_vq_arm(struct vuf_vq *vq)
{
	if (vq->packed)
		return !vuf_vq_pending(vq); /* notifications are never off */
	if (vq->event_idx) {
		uint16_t *used_event = &vq->avail->ring[vq->num];

		__atomic_store_n(used_event, htole16(vq->last_used),
				 __ATOMIC_RELAXED);
	}
	/* Our used_event store before the device's next used->idx read; then
	 * re-check so an entry pushed meanwhile is not slept through. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return vuf_vq_used_idx(vq) == vq->last_used;
}
