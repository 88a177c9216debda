/* One ioreq slot: READY → rmb → INPROCESS → handle → wmb → IORESP_READY →
 * notify. Every request is answered, whatever it asks for, so no vCPU is
 * ever left blocked; nothing in it is trusted before it is checked. */
#include <errno.h>
#include <inttypes.h>

#include "xen_priv.h"

static uint64_t all_ones(uint32_t size)
{
	return size >= 1 && size < 8 ? (1ULL << (size * 8)) - 1 : ~0ULL;
}

/* IOREQ_TYPE_COPY with one plain value: the register model. */
static void handle_mmio(struct vd_xen_ioreq_ctx *c, struct ioreq *r)
{
	struct vd_xen_server *s = c->srv;
	uint64_t off = r->addr - s->base;
	uint64_t val = 0;

	/* Xen sends only accesses wholly inside the claimed window; check
	 * anyway, the page is writable by no one else but costs nothing. */
	if (r->addr < s->base || off >= s->size || r->size > s->size - off) {
		c->stats.outside++;
		vd_log_ratelimited(&c->rl, VD_LOG_WARN, c->who,
				   "ioreq outside the window: addr 0x%" PRIx64
				   " size %u, answered",
				   r->addr, r->size);
		if (r->dir == IOREQ_READ)
			r->data = all_ones(r->size);
		return;
	}
	c->stats.mmio++;
	if (r->dir == IOREQ_READ) {
		vd_mmio_read(c->mmio, off, r->size, &val);
		r->data = val;
	} else {
		vd_mmio_write(c->mmio, off, r->size, r->data);
	}
}

static void handle(struct vd_xen_ioreq_ctx *c, struct ioreq *r)
{
	if (r->type == IOREQ_TYPE_INVALIDATE) {
		/* The guest gave memory back: foreign mappings may point at
		 * frames it no longer owns. */
		c->stats.invalidate++;
		if (c->invalidate)
			c->invalidate(c->opaque);
		return;
	}
	if (r->type == IOREQ_TYPE_COPY && !r->data_is_ptr && r->count == 1) {
		handle_mmio(c, r);
		return;
	}
	/* Port I/O, PCI config, string instructions (data_is_ptr, count > 1,
	 * df) and anything newer: a virtio-mmio device has none of these.
	 * Reads see all-ones (what an unclaimed access gives), writes are
	 * dropped, and guest memory behind data_is_ptr is left alone. */
	c->stats.unsupported++;
	vd_log_ratelimited(&c->rl, VD_LOG_WARN, c->who,
			   "unsupported ioreq type %u %s addr 0x%" PRIx64
			   " size %u count %u data_is_ptr %u, answered",
			   r->type, r->dir == IOREQ_READ ? "read" : "write",
			   r->addr, r->size, r->count, r->data_is_ptr);
	if (r->dir == IOREQ_READ && !r->data_is_ptr)
		r->data = all_ones(r->size);
}

int vd_xen_ioreq_handle(struct vd_xen_ioreq_ctx *c, unsigned v, bool resume)
{
	struct vd_xen_server *s = c->srv;
	volatile struct ioreq *slot = &s->slots[v];
	struct ioreq r;
	uint8_t state = slot->state;

	if (state != STATE_IOREQ_READY &&
	    !(resume && state == STATE_IOREQ_INPROCESS)) {
		c->stats.spurious++;
		return 0;
	}
	/* Read the request only after seeing READY. */
	xen_rmb();
	slot->state = STATE_IOREQ_INPROCESS;
	/* One copy: the guest cannot change what we check after checking. */
	r = *(struct ioreq *)slot;
	handle(c, &r);
	slot->data = r.data;
	/* The answer is visible before the state says so. */
	xen_wmb();
	slot->state = STATE_IORESP_READY;
	xen_mb();
	xenevtchn_notify(s->xce, s->local[v]);
	return 1;
}
