/* Split-ring descriptor walking and used-ring publishing (virtio 1.2 §2.7).
 * Every guest index and address is checked here; nothing outside guest
 * memory is ever touched, and each descriptor is read once. */
#include "virtqueue_impl.h"

static uint16_t *used_event_p(struct vd_vq *vq)
{
	return &vq->avail->ring[vq->num];
}

static uint16_t *avail_event_p(struct vd_vq *vq)
{
	/* avail_event follows the used ring's num entries (§2.7.8). */
	return (uint16_t *)&vq->used->ring[vq->num];
}

static void set_avail_event(struct vd_vq *vq, uint16_t v)
{
	VQ_STORE(avail_event_p(vq), htole16(v));
	vq->avail_event = v;
	vq_log(vq, vq->cfg.device_gpa + 4 + 8u * vq->num, 2);
}

static void set_used_flags(struct vd_vq *vq, uint16_t flags)
{
	VQ_STORE(&vq->used->flags, htole16(flags));
	vq_log(vq, vq->cfg.device_gpa, 2);
}

void vq_split_init(struct vd_vq *vq)
{
	const struct vd_vq_config *c = &vq->cfg;

	vq->desc = c->desc;
	vq->avail = c->driver;
	vq->used = c->device;
	vq->last_avail = vq->shadow_avail = c->avail_idx;
	vq->used_idx = c->used_idx_valid ? c->used_idx
					 : le16toh(VQ_LOAD_ACQ(&vq->used->idx));
	vq->pub_used = vq->used_idx;
	/* Start with driver notifications on. */
	set_used_flags(vq, 0);
	if (c->event_idx)
		set_avail_event(vq, vq->last_avail);
}

/* Reads avail->idx and checks it. false: nothing new, or broken. */
static bool refresh_avail(struct vd_vq *vq)
{
	uint16_t idx = le16toh(VQ_LOAD_ACQ(&vq->avail->idx));

	/* §2.7.6: the driver never has more than num entries outstanding. */
	if ((uint16_t)(idx - vq->last_avail) > vq->num) {
		vq_break(vq, VD_VQ_ERR_AVAIL_IDX,
			 "avail idx %u is %u entries past %u (queue size %u)",
			 idx, (uint16_t)(idx - vq->last_avail), vq->last_avail,
			 vq->num);
		return false;
	}
	vq->shadow_avail = idx;
	return idx != vq->last_avail;
}

/* The ring looks empty. With EVENT_IDX and notifications wanted, ask for a
 * kick at the next entry, then look again so an entry added meanwhile is
 * not left waiting for a kick that will not come (§2.7.10). */
static bool avail_empty_recheck(struct vd_vq *vq)
{
	if (!vq->cfg.event_idx || !vq->notify_enabled ||
	    vq->avail_event == vq->last_avail)
		return false;
	set_avail_event(vq, vq->last_avail);
	VQ_MB();
	return refresh_avail(vq);
}

/* Walks an indirect table (§2.7.5.3): entries linked by next inside it,
 * bounded by the table size. */
static int walk_table(struct vd_vq *vq, struct vq_chain *c, uint64_t addr,
		      uint32_t len, unsigned desc_idx)
{
	struct vq_table t;
	uint32_t i = 0, ttl;
	int rc = -1;

	if (vq_table_map(vq, &t, addr, len, desc_idx))
		return -1;
	for (ttl = t.entries;; ttl--) {
		struct vring_desc d;
		uint16_t flags;

		if (ttl == 0) {
			vq_break(vq, VD_VQ_ERR_CHAIN_LOOP,
				 "loop in indirect table of desc %u", desc_idx);
			break;
		}
		vq_table_read(&t, i, &d);
		flags = le16toh(d.flags);
		/* §2.7.5.3.1: no indirect descriptor inside a table. */
		if (flags & VRING_DESC_F_INDIRECT) {
			vq_break(vq, VD_VQ_ERR_NESTED_INDIRECT,
				 "indirect desc %u inside the table of desc %u",
				 i, desc_idx);
			break;
		}
		if (vq_chain_add(c, le64toh(d.addr), le32toh(d.len),
				 flags & VRING_DESC_F_WRITE, "indirect desc",
				 i))
			break;
		if (!(flags & VRING_DESC_F_NEXT)) {
			rc = 0;
			break;
		}
		i = le16toh(d.next);
		if (i >= t.entries) {
			vq_break(
				vq, VD_VQ_ERR_NEXT_RANGE,
				"indirect next %u out of table of %u (desc %u)",
				i, t.entries, desc_idx);
			break;
		}
	}
	vq_table_unmap(vq, &t);
	return rc;
}

/* Walks the chain at head into qe. Returns the number of ring descriptors
 * it took, or 0 with the queue broken. */
static unsigned walk_chain(struct vd_vq *vq, struct vq_elem *qe, uint16_t head)
{
	struct vq_chain c;
	uint16_t i = head;
	unsigned n;

	vq_chain_init(&c, vq, qe);
	/* A chain has at most num descriptors (§2.7.5.2): a longer walk is
	 * a loop. */
	for (n = 1;; n++) {
		struct vring_desc d;
		uint16_t flags;

		if (n > vq->num) {
			vq_break(vq, VD_VQ_ERR_CHAIN_LOOP,
				 "chain loop at desc %u (head %u)", i, head);
			return 0;
		}
		vq_copy_once(&d, &vq->desc[i], sizeof(d));
		flags = le16toh(d.flags);
		if (flags & VRING_DESC_F_INDIRECT) {
			/* Direct descriptors before it are allowed. */
			if (vq_indirect_check(vq, flags, i, false) ||
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
		i = le16toh(d.next);
		if (i >= vq->num) {
			vq_break(vq, VD_VQ_ERR_NEXT_RANGE,
				 "desc next %u out of range (head %u)", i,
				 head);
			return 0;
		}
	}
	vq_chain_finish(&c);
	return n;
}

int vq_split_pop(struct vd_vq *vq, struct vd_vq_elem **out)
{
	bool requeued = vq->requeue_at < vq->requeue_n;
	struct vq_elem *qe;
	uint16_t head;
	unsigned n;

	if (requeued) {
		head = vq->requeue[vq->requeue_at];
	} else {
		if (vq->last_avail == vq->shadow_avail && !refresh_avail(vq) &&
		    (vq->broken || !avail_empty_recheck(vq))) {
			vq->empty_valid = true;
			vq->empty_at = vq->shadow_avail;
			return 0;
		}
		/* The acquire load of avail->idx ordered this read. */
		head = le16toh(
			VQ_LOAD(&vq->avail->ring[vq->last_avail % vq->num]));
	}
	if (head >= vq->num) {
		vq_break(vq, VD_VQ_ERR_HEAD_RANGE,
			 "head %u out of range (queue size %u)", head, vq->num);
		return 0;
	}
	/* §2.7.13.1: a driver hands out a descriptor again only after it
	 * was used; a head in flight twice would make completions
	 * ambiguous. */
	qe = vq->id_slot[head] ? NULL : vq_elem_get(vq);
	if (!qe) {
		vq_break(vq, VD_VQ_ERR_BUFFER_ID,
			 "head %u is already in flight", head);
		return 0;
	}
	n = walk_chain(vq, qe, head);
	if (!n) {
		vq_elem_drop(vq, qe);
		return 0;
	}
	if (requeued) {
		vq->requeue_at++;
	} else {
		if (vq->last_avail == vq->empty_at)
			vq->empty_valid = false;
		vq->last_avail++;
	}
	vq_elem_popped(vq, qe, head, (uint16_t)n, requeued);
	*out = &qe->pub;
	return 1;
}

void vq_split_push(struct vd_vq *vq, struct vq_elem *qe, uint32_t written)
{
	uint16_t k = vq->used_idx % vq->num;
	struct vring_used_elem *u = &vq->used->ring[k];

	/* Plain stores: the release store of used->idx in flush exposes
	 * them (§2.7.8.1). */
	VQ_STORE(&u->id, htole32(qe->pub.id));
	VQ_STORE(&u->len, htole32(written));
	vq_log(vq, vq->cfg.device_gpa + 4 + 8u * k, 8);
	vq->used_idx++;
	vq_elem_pushed(vq, qe, written);
}

bool vq_split_flush(struct vd_vq *vq)
{
	uint16_t old = vq->pub_used, new = vq->used_idx;

	if (old == new)
		return false;
	VQ_STORE_REL(&vq->used->idx, htole16(new));
	vq_log(vq, vq->cfg.device_gpa + 2, 2);
	vq->pub_used = new;
	if (vq->hooks.on_publish)
		vq->hooks.on_publish(vq->hooks.ctx, new, false);
	/* The used idx store must be visible before we read the driver's
	 * suppression state, or a notification could be lost. */
	VQ_MB();
	if (vq->cfg.event_idx)
		/* §2.7.7.2: the device ignores NO_INTERRUPT here. */
		return vring_need_event(le16toh(VQ_LOAD(used_event_p(vq))), new,
					old);
	return !(le16toh(VQ_LOAD(&vq->avail->flags)) &
		 VRING_AVAIL_F_NO_INTERRUPT);
}

void vq_split_disable_notify(struct vd_vq *vq)
{
	if (vq->cfg.event_idx)
		/* §2.7.10: with EVENT_IDX the driver only reads avail_event;
		 * one behind what we have popped is not crossed until the
		 * ring goes 2^16 entries around. */
		set_avail_event(vq, (uint16_t)(vq->last_avail - 1));
	else
		set_used_flags(vq, VRING_USED_F_NO_NOTIFY);
}

bool vq_split_enable_notify(struct vd_vq *vq)
{
	if (vq->cfg.event_idx)
		set_avail_event(vq, vq->last_avail);
	else
		set_used_flags(vq, 0);
	VQ_MB();
	refresh_avail(vq);
	return !vq->broken && (vq->requeue_at < vq->requeue_n ||
			       vq->shadow_avail != vq->last_avail);
}

bool vq_split_avail_pending(struct vd_vq *vq)
{
	return vq->shadow_avail != vq->last_avail || refresh_avail(vq);
}

bool vq_split_avail_more(struct vd_vq *vq)
{
	refresh_avail(vq);
	return !vq->broken && vq->shadow_avail != vq->empty_at;
}

/* A kick for the first entry past empty_at: the driver kicks when its
 * index moves past avail_event (§2.7.10), and the entries before it it
 * has already made available (it would not kick for them again). */
void vq_split_notify_more(struct vd_vq *vq)
{
	if (vq->cfg.event_idx)
		set_avail_event(vq, vq->empty_at);
	else
		set_used_flags(vq, 0);
}
