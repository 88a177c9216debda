/* Packed-ring descriptor walking, used descriptors and event suppression
 * (virtio 1.2 §2.8). Every guest index, id and address is checked here;
 * nothing outside guest memory is ever touched, each descriptor is read
 * once. */
#include "virtqueue_impl.h"

#define P_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define P_USED	(1u << VRING_PACKED_DESC_F_USED)

/* §2.8.1: available when AVAIL matches the wrap counter and USED does
 * not. */
static bool desc_avail(uint16_t flags, bool wrap)
{
	return !!(flags & P_AVAIL) == wrap && !!(flags & P_USED) != wrap;
}

/* (position, wrap counter) as one point of the 2*num cycle the device
 * goes around, so event offsets compare without ambiguity at the wrap. */
static uint32_t lap(const struct vd_vq *vq, uint16_t pos, bool wrap)
{
	return pos + (wrap ? 0u : vq->num);
}

static void set_device_event(struct vd_vq *vq, uint16_t flags)
{
	VQ_STORE(&vq->dev_event->off_wrap, 0);
	VQ_STORE(&vq->dev_event->flags, htole16(flags));
	vq_log(vq, vq->cfg.device_gpa, 4);
}

void vq_packed_init(struct vd_vq *vq)
{
	const struct vd_vq_config *c = &vq->cfg;

	vq->pdesc = c->desc;
	vq->drv_event = c->driver;
	vq->dev_event = c->device;
	vq->avail_pos = c->avail_idx;
	vq->avail_wrap = c->avail_wrap;
	vq->used_pos = c->used_idx_valid ? c->used_idx : c->avail_idx;
	vq->used_wrap = c->used_idx_valid ? c->used_wrap : c->avail_wrap;
	vq->pub_pos = vq->used_pos;
	vq->pub_wrap = vq->used_wrap;
	set_device_event(vq, VRING_PACKED_EVENT_FLAG_ENABLE);
}

/* §2.8.7: a table of consecutive descriptors; only WRITE counts in them,
 * other flags and the id are reserved and ignored (no nesting possible). */
static int walk_table(struct vd_vq *vq, struct vq_chain *c, uint64_t addr,
		      uint32_t len, unsigned pos)
{
	struct vq_table t;
	int rc = 0;

	if (vq_table_map(vq, &t, addr, len, pos))
		return -1;
	for (uint32_t j = 0; j < t.entries; j++) {
		struct vring_packed_desc d;

		vq_table_read(&t, j, &d);
		if (vq_chain_add(c, le64toh(d.addr), le32toh(d.len),
				 le16toh(d.flags) & VRING_DESC_F_WRITE,
				 "indirect desc", j)) {
			rc = -1;
			break;
		}
	}
	vq_table_unmap(vq, &t);
	return rc;
}

/* Walks the list starting at ring position pos (head flags already read).
 * Returns the ring slots it took, or 0 with the queue broken; *id is the
 * buffer id, carried by the last descriptor (§2.8.6). */
static unsigned walk_chain(struct vd_vq *vq, struct vq_elem *qe, uint16_t pos,
			   uint16_t head_flags, uint16_t *id)
{
	struct vq_chain c;
	uint16_t i = pos;
	unsigned n;

	vq_chain_init(&c, vq, qe);
	/* §2.8.17: a list is never longer than the queue. */
	for (n = 1;; n++) {
		struct vring_packed_desc d;
		uint16_t flags;

		if (n > vq->num) {
			vq_break(vq, VD_VQ_ERR_CHAIN_LOOP,
				 "chain at desc %u longer than the queue", pos);
			return 0;
		}
		vq_copy_once(&d, &vq->pdesc[i], sizeof(d));
		flags = n == 1 ? head_flags : le16toh(d.flags);
		*id = le16toh(d.id);
		if (flags & VRING_DESC_F_INDIRECT) {
			if (vq_indirect_check(vq, flags, i, n > 1) ||
			    walk_table(vq, &c, le64toh(d.addr), le32toh(d.len),
				       i))
				return 0;
			break;
		}
		if (vq_chain_add(&c, le64toh(d.addr), le32toh(d.len),
				 flags & VRING_DESC_F_WRITE, "desc", i))
			return 0;
		if (!(flags & VRING_DESC_F_NEXT))
			break;
		if (++i == vq->num)
			i = 0;
	}
	vq_chain_finish(&c);
	return n;
}

int vq_packed_pop(struct vd_vq *vq, struct vd_vq_elem **out)
{
	bool requeued = vq->requeue_at < vq->requeue_n;
	struct vq_elem *qe;
	uint16_t pos, flags, id;
	unsigned n;

	if (requeued) {
		pos = vq->requeue[vq->requeue_at];
		if (pos >= vq->num) {
			vq_break(vq, VD_VQ_ERR_HEAD_RANGE,
				 "requeued position %u out of range (queue "
				 "size %u)",
				 pos, vq->num);
			return 0;
		}
		flags = le16toh(VQ_LOAD(&vq->pdesc[pos].flags));
	} else {
		pos = vq->avail_pos;
		/* Acquire: the rest of the list is read after its head's
		 * flags say it is there (§2.8.21). */
		flags = le16toh(VQ_LOAD_ACQ(&vq->pdesc[pos].flags));
		if (!desc_avail(flags, vq->avail_wrap)) {
			vq->empty_valid = true;
			vq->empty_at = pos;
			vq->empty_wrap = vq->avail_wrap;
			return 0;
		}
	}
	qe = vq_elem_get(vq);
	if (!qe) {
		vq_break(vq, VD_VQ_ERR_BUFFER_ID,
			 "desc %u available with every buffer id in flight",
			 pos);
		return 0;
	}
	n = walk_chain(vq, qe, pos, flags, &id);
	if (!n)
		goto drop;
	if (id >= vq->num || vq->id_slot[id]) {
		vq_break(vq, VD_VQ_ERR_BUFFER_ID, "buffer id %u at desc %u %s",
			 id, pos,
			 id >= vq->num ? "out of range" : "already in flight");
		goto drop;
	}
	if (requeued) {
		vq->requeue_at++;
	} else {
		if (vq->avail_pos == vq->empty_at &&
		    vq->avail_wrap == vq->empty_wrap)
			vq->empty_valid = false;
		vq->avail_pos += n;
		if (vq->avail_pos >= vq->num) {
			vq->avail_pos -= vq->num;
			vq->avail_wrap = !vq->avail_wrap;
		}
	}
	vq_elem_popped(vq, qe, id, (uint16_t)n, requeued);
	*out = &qe->pub;
	return 1;
drop:
	vq_elem_drop(vq, qe);
	return 0;
}

void vq_packed_push(struct vd_vq *vq, struct vq_elem *qe, uint32_t written)
{
	uint16_t pos = vq->used_pos;
	struct vring_packed_desc *d = &vq->pdesc[pos];
	/* §2.8.1: used when AVAIL == USED == our wrap counter; §2.8.3: WRITE
	 * says whether anything was written. */
	uint16_t flags = (vq->used_wrap ? P_AVAIL | P_USED : 0) |
			 (written ? VRING_DESC_F_WRITE : 0);

	VQ_STORE(&d->id, htole16(qe->pub.id));
	VQ_STORE(&d->len, htole32(written));
	if (!vq->batch_pending) {
		/* The batch's first flags go last, in flush, so the driver
		 * (which polls only its next position) sees the whole batch
		 * at once (§2.8.9). */
		vq->batch_pending = true;
		vq->batch_pos = pos;
		vq->batch_flags = flags;
	} else {
		VQ_STORE_REL(&d->flags, htole16(flags));
	}
	vq_log(vq, vq->cfg.desc_gpa + 16u * pos, 16);
	/* §2.8.6: skip the rest of the list's slots. */
	vq->used_pos += qe->pub.ndescs;
	if (vq->used_pos >= vq->num) {
		vq->used_pos -= vq->num;
		vq->used_wrap = !vq->used_wrap;
	}
	vq_elem_pushed(vq, qe, written);
}

bool vq_packed_flush(struct vd_vq *vq)
{
	uint32_t old, new, ev, n2 = 2u * vq->num;
	uint16_t flags, off_wrap;

	if (!vq->batch_pending)
		return false;
	VQ_STORE_REL(&vq->pdesc[vq->batch_pos].flags, htole16(vq->batch_flags));
	vq->batch_pending = false;
	old = lap(vq, vq->pub_pos, vq->pub_wrap);
	new = lap(vq, vq->used_pos, vq->used_wrap);
	vq->pub_pos = vq->used_pos;
	vq->pub_wrap = vq->used_wrap;
	if (vq->hooks.on_publish)
		vq->hooks.on_publish(vq->hooks.ctx, vq->used_pos,
				     vq->used_wrap);
	/* Used flags visible before we read the driver's event structure. */
	VQ_MB();
	flags = le16toh(VQ_LOAD_ACQ(&vq->drv_event->flags)) & 3;
	if (flags == VRING_PACKED_EVENT_FLAG_DISABLE)
		return false;
	/* DESC is only valid with EVENT_IDX (§2.8.10); otherwise, and for the
	 * reserved value, notify rather than risk a lost interrupt. */
	if (flags != VRING_PACKED_EVENT_FLAG_DESC || !vq->cfg.event_idx)
		return true;
	off_wrap = le16toh(VQ_LOAD(&vq->drv_event->off_wrap));
	ev = lap(vq, off_wrap & 0x7fff,
		 off_wrap >> VRING_PACKED_EVENT_F_WRAP_CTR);
	/* Notify iff the event position is among the ones just used. */
	return (ev + n2 - old) % n2 < (new + n2 - old) % n2;
}

void vq_packed_disable_notify(struct vd_vq *vq)
{
	set_device_event(vq, VRING_PACKED_EVENT_FLAG_DISABLE);
}

bool vq_packed_enable_notify(struct vd_vq *vq)
{
	uint16_t flags;

	/* ENABLE, not DESC: DESC would have to follow every pop to keep the
	 * driver kicking for the next descriptor, a guest write per chain. */
	set_device_event(vq, VRING_PACKED_EVENT_FLAG_ENABLE);
	VQ_MB();
	flags = le16toh(VQ_LOAD_ACQ(&vq->pdesc[vq->avail_pos].flags));
	return vq->requeue_at < vq->requeue_n ||
	       desc_avail(flags, vq->avail_wrap);
}

bool vq_packed_avail_more(struct vd_vq *vq)
{
	return desc_avail(le16toh(VQ_LOAD_ACQ(&vq->pdesc[vq->empty_at].flags)),
			  vq->empty_wrap);
}

bool vq_packed_avail_pending(struct vd_vq *vq)
{
	return desc_avail(le16toh(VQ_LOAD_ACQ(&vq->pdesc[vq->avail_pos].flags)),
			  vq->avail_wrap);
}
