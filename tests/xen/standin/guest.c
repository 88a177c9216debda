/* A test virtio-mmio guest driver: Linux's probe and initialisation order
 * through ioreqs, the DMA API (grant-dma-ops or guest-physical), interrupts
 * taken as vm_interrupt takes them, and virtio-blk requests built as
 * drivers/block/virtio_blk.c builds them. The rings are guest_split.c and
 * guest_packed.c. Test-only. */
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xenctrl.h>

#include "guest.h"

#define BUF_GPA	  0x200000ULL /* 2 MiB: sx_blk_rw's headers and status */
#define ALLOC_GPA 0x400000ULL /* 4 MiB up: tables, test buffers */
#define HDR_SLOT  32u	      /* header + status, one slot per request */

static int rd(struct sx_vdev *d, unsigned v, uint32_t off, uint32_t *val)
{
	uint64_t x = 0;
	int rc = sx_mmio_read(d->o.domid, v, d->o.base + off, 4, &x);

	*val = (uint32_t)x;
	return rc;
}

static int wr(struct sx_vdev *d, unsigned v, uint32_t off, uint32_t val)
{
	return sx_mmio_write(d->o.domid, v, d->o.base + off, 4, val);
}

static unsigned pages_of(uint64_t gpa, uint64_t len)
{
	return (unsigned)(((gpa & 0xfff) + len + 0xfff) >> 12);
}

/* drivers/xen/grant-dma-ops.c: consecutive references for the pages of
 * one mapping; the bus address keeps the offset in the first page. */
static uint64_t grant_map(struct sx_vdev *d, uint64_t gpa, uint64_t len,
			  bool ro, int *ref, unsigned *pages)
{
	int r;

	*pages = pages_of(gpa, len);
	r = sx_grant(d->o.domid, gpa >> 12, *pages, ro);
	*ref = r;
	return r < 0 ? 0 : SX_GRANT_BIT | ((uint64_t)r << 12) | (gpa & 0xfff);
}

uint64_t sx_dma_map(struct sx_vdev *d, struct sx_req *r, uint64_t gpa,
		    uint64_t len, bool to_device)
{
	uint64_t bus;
	int ref;
	unsigned pages;

	if (!d->o.grant)
		return gpa;
	if (r->n_dma == SX_DMA_MAX) {
		r->dma_failed = true;
		return 0;
	}
	bus = grant_map(d, gpa, len, to_device, &ref, &pages);
	if (ref < 0)
		r->dma_failed = true;
	r->dma[r->n_dma].ref = ref;
	r->dma[r->n_dma].pages = pages;
	r->n_dma++;
	return bus;
}

uint64_t sx_dma_alloc_ring(struct sx_vdev *d, unsigned slot, uint64_t gpa,
			   uint64_t len)
{
	if (!d->o.grant) {
		d->ring_dma[slot].ref = -1;
		return gpa;
	}
	return grant_map(d, gpa, len, false, &d->ring_dma[slot].ref,
			 &d->ring_dma[slot].pages);
}

uint64_t sx_table_gpa(struct sx_vdev *d, uint16_t id, unsigned entries)
{
	uint32_t size = 16;

	while (size < entries * 16u)
		size <<= 1;
	return d->table_area + (uint64_t)id * 4096 + 4096 - size;
}

/* Revokes a request's grants; -EBUSY if the backend still maps one. */
static int dma_unmap_all(struct sx_vdev *d, struct sx_req *r)
{
	int rc = 0;

	for (unsigned i = 0; i < r->n_dma; i++)
		if (r->dma[i].ref >= 0 &&
		    sx_ungrant(d->o.domid, (uint32_t)r->dma[i].ref,
			       r->dma[i].pages) == -EBUSY)
			rc = -EBUSY;
	r->n_dma = 0;
	return rc;
}

int sx_vdev_reset(struct sx_vdev *d, unsigned v)
{
	uint32_t st = 1;
	int rc = wr(d, v, VIRTIO_MMIO_STATUS, 0);

	/* virtio 1.2 §4.2.3.1: the reset is done when Status reads 0. */
	for (int i = 0; !rc && st && i < 100; i++)
		rc = rd(d, v, VIRTIO_MMIO_STATUS, &st);
	return rc ? rc : st ? -EIO : 0;
}

/* virtio_mmio.c vm_setup_vq. */
static int setup_queue(struct sx_vdev *d, unsigned v)
{
	uint32_t ready, max;
	uint64_t bus[3];
	int rc;

	if ((rc = wr(d, v, VIRTIO_MMIO_QUEUE_SEL, 0)) ||
	    (rc = rd(d, v, VIRTIO_MMIO_QUEUE_READY, &ready)) ||
	    (rc = rd(d, v, VIRTIO_MMIO_QUEUE_NUM_MAX, &max)))
		return rc;
	if (ready || max == 0)
		return -EIO;
	d->num = d->o.queue_size ? d->o.queue_size : (uint16_t)max;
	if (d->num > max)
		return -EINVAL;
	d->ring_ops = d->packed ? &sx_packed_ops : &sx_split_ops;
	if ((rc = d->ring_ops->alloc(d, bus)))
		return rc;
	if (d->indirect)
		d->table_area = sx_vdev_alloc(d, (uint64_t)d->num * 4096);
	if ((rc = wr(d, v, VIRTIO_MMIO_QUEUE_NUM, d->num)) ||
	    (rc = wr(d, v, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)bus[0])) ||
	    (rc = wr(d, v, VIRTIO_MMIO_QUEUE_DESC_HIGH, bus[0] >> 32)) ||
	    (rc = wr(d, v, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)bus[1])) ||
	    (rc = wr(d, v, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, bus[1] >> 32)) ||
	    (rc = wr(d, v, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)bus[2])) ||
	    (rc = wr(d, v, VIRTIO_MMIO_QUEUE_USED_HIGH, bus[2] >> 32)) ||
	    (rc = wr(d, v, VIRTIO_MMIO_QUEUE_READY, 1)) ||
	    (rc = rd(d, v, VIRTIO_MMIO_QUEUE_READY, &ready)))
		return rc;
	return ready == 1 ? 0 : -EIO;
}

int sx_vdev_probe(const struct sx_vdev_opts *o, struct sx_vdev **out)
{
	struct sx_vdev *d = calloc(1, sizeof(*d));
	unsigned v = o->vcpu;
	uint32_t magic, ver, id, vendor, lo, hi, st;
	int rc;

	if (!d)
		return -ENOMEM;
	d->o = *o;
	for (int i = 0; i < 3; i++)
		d->ring_dma[i].ref = -1;
	d->ram = sx_guest_ram(o->domid);
	d->next_alloc = ALLOC_GPA;
	pthread_mutex_init(&d->lock, NULL);
	if (!d->ram) {
		rc = -ESRCH;
		goto fail;
	}
	/* drivers/virtio/virtio_mmio.c vm_probe, then virtio_dev_probe. */
	if ((rc = rd(d, v, VIRTIO_MMIO_MAGIC_VALUE, &magic)) ||
	    (rc = rd(d, v, VIRTIO_MMIO_VERSION, &ver)) ||
	    (rc = rd(d, v, VIRTIO_MMIO_DEVICE_ID, &id)) ||
	    (rc = rd(d, v, VIRTIO_MMIO_VENDOR_ID, &vendor)))
		goto fail;
	if (magic != 0x74726976 || ver != 2 || id != o->device_id) {
		rc = -ENODEV;
		goto fail;
	}
	if ((rc = sx_vdev_reset(d, v)) ||
	    (rc = wr(d, v, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE)) ||
	    (rc = wr(d, v, VIRTIO_MMIO_STATUS,
		     VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER)) ||
	    (rc = wr(d, v, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1)) ||
	    (rc = rd(d, v, VIRTIO_MMIO_DEVICE_FEATURES, &hi)) ||
	    (rc = wr(d, v, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0)) ||
	    (rc = rd(d, v, VIRTIO_MMIO_DEVICE_FEATURES, &lo)))
		goto fail;
	d->features = (((uint64_t)hi << 32) | lo) & o->features;
	d->packed = d->features & (1ULL << VIRTIO_F_RING_PACKED);
	d->indirect = d->features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	d->event_idx = d->features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
	if ((rc = wr(d, v, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1)) ||
	    (rc = wr(d, v, VIRTIO_MMIO_DRIVER_FEATURES, d->features >> 32)) ||
	    (rc = wr(d, v, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0)) ||
	    (rc = wr(d, v, VIRTIO_MMIO_DRIVER_FEATURES,
		     (uint32_t)d->features)) ||
	    (rc = wr(d, v, VIRTIO_MMIO_STATUS,
		     VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			     VIRTIO_CONFIG_S_FEATURES_OK)) ||
	    (rc = rd(d, v, VIRTIO_MMIO_STATUS, &st)))
		goto fail;
	if (!(st & VIRTIO_CONFIG_S_FEATURES_OK)) {
		rc = -EPROTO; /* the device refused our features */
		goto fail;
	}
	if ((rc = setup_queue(d, v)) ||
	    (rc = wr(d, v, VIRTIO_MMIO_STATUS,
		     VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			     VIRTIO_CONFIG_S_FEATURES_OK |
			     VIRTIO_CONFIG_S_DRIVER_OK)) ||
	    (rc = rd(d, v, VIRTIO_MMIO_STATUS, &st)))
		goto fail;
	if (!(st & VIRTIO_CONFIG_S_DRIVER_OK)) {
		rc = -EPROTO;
		goto fail;
	}
	d->hdr_busy = calloc(d->num, 1);
	if (!d->hdr_busy) {
		rc = -ENOMEM;
		goto fail;
	}
	d->irq_seen = sx_irq_edges(o->domid);
	*out = d;
	return 0;
fail:
	sx_vdev_free(d);
	return rc;
}

void sx_vdev_free(struct sx_vdev *d)
{
	if (!d)
		return;
	if (d->ring_ops)
		d->ring_ops->free(d);
	for (int i = 0; i < 3; i++)
		if (d->ring_dma[i].ref >= 0)
			sx_ungrant(d->o.domid, (uint32_t)d->ring_dma[i].ref,
				   d->ring_dma[i].pages);
	free(d->hdr_busy);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

uint64_t sx_vdev_features(const struct sx_vdev *d)
{
	return d->features;
}

void sx_vdev_stats(struct sx_vdev *d, struct sx_vdev_stats *out)
{
	pthread_mutex_lock(&d->lock);
	*out = d->st;
	pthread_mutex_unlock(&d->lock);
}

void sx_vdev_hold_irq(struct sx_vdev *d, bool hold)
{
	pthread_mutex_lock(&d->lock);
	d->hold_irq = hold;
	pthread_mutex_unlock(&d->lock);
}

uint64_t sx_vdev_isr_reads(struct sx_vdev *d)
{
	struct sx_vdev_stats s;

	sx_vdev_stats(d, &s);
	return s.irqs;
}

int sx_vdev_config(struct sx_vdev *d, unsigned v, uint32_t off, void *buf,
		   unsigned len)
{
	uint32_t g1, g2;
	int rc;

	do {
		if ((rc = rd(d, v, VIRTIO_MMIO_CONFIG_GENERATION, &g1)))
			return rc;
		for (unsigned i = 0; i < len; i++) {
			uint64_t x;

			rc = sx_mmio_read(d->o.domid, v,
					  d->o.base + VIRTIO_MMIO_CONFIG + off +
						  i,
					  1, &x);
			if (rc)
				return rc;
			((uint8_t *)buf)[i] = (uint8_t)x;
		}
		if ((rc = rd(d, v, VIRTIO_MMIO_CONFIG_GENERATION, &g2)))
			return rc;
	} while (g1 != g2);
	return 0;
}

uint64_t sx_vdev_alloc(struct sx_vdev *d, uint64_t len)
{
	uint64_t g;

	pthread_mutex_lock(&d->lock);
	g = d->next_alloc;
	d->next_alloc += (len + 4095) & ~4095ULL;
	pthread_mutex_unlock(&d->lock);
	return g;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A used request (under the lock). */
static void complete(struct sx_vdev *d, struct sx_req *r, uint32_t len)
{
	if (r->seq < d->last_done_seq)
		d->st.out_of_order++;
	else
		d->last_done_seq = r->seq;
	r->used_len = len;
	r->done = true;
	if (r->orphan) {
		/* Its submitter timed out and left it to us. */
		dma_unmap_all(d, r);
		if (r->hdr_slot >= 0)
			d->hdr_busy[r->hdr_slot] = 0;
		free(r);
	}
}

/* virtio_blk's virtblk_done: callbacks off, take every used buffer,
 * callbacks on; again if more were used meanwhile (under the lock). */
static void blk_done(struct sx_vdev *d)
{
	const struct sx_ring_ops *ops = d->ring_ops;

	do {
		struct sx_req *r;
		uint32_t len;

		ops->disable_cb(d);
		while ((r = ops->get_buf(d, &len)))
			complete(d, r, len);
		if (d->bad_ring)
			break;
	} while (!ops->enable_cb(d));
}

/* Linux's vm_interrupt: read InterruptStatus, acknowledge what was read,
 * then, if it says INT_VRING, vring_interrupt looks at the ring. The ring
 * is looked at only here, so a lost interrupt leaves the request waiting
 * (and the test failing). */
static void take_interrupt(struct sx_vdev *d, unsigned v)
{
	uint64_t edges = sx_irq_edges(d->o.domid);
	uint32_t isr = 0;

	pthread_mutex_lock(&d->lock);
	if (edges == d->irq_seen || d->hold_irq) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	d->irq_seen = edges;
	d->st.irqs++;
	pthread_mutex_unlock(&d->lock);
	if (rd(d, v, VIRTIO_MMIO_INTERRUPT_STATUS, &isr) == 0 && isr)
		wr(d, v, VIRTIO_MMIO_INTERRUPT_ACK, isr);
	/* A config interrupt: the device may have given up on the ring
	 * (virtio 1.2 §2.1.2); nothing in flight will complete then. */
	if (isr & VIRTIO_MMIO_INT_CONFIG) {
		uint32_t st = 0;

		if (rd(d, v, VIRTIO_MMIO_STATUS, &st) == 0 &&
		    (st & VIRTIO_CONFIG_S_NEEDS_RESET)) {
			pthread_mutex_lock(&d->lock);
			d->needs_reset = true;
			pthread_mutex_unlock(&d->lock);
		}
	}
	/* vm_interrupt calls vring_interrupt only for INT_VRING: an edge
	 * whose InterruptStatus reads 0 is ignored, and the used entries it
	 * announced wait for an interrupt that may never come. */
	pthread_mutex_lock(&d->lock);
	if (!(isr & VIRTIO_MMIO_INT_VRING) || !d->ring_ops->more_used(d)) {
		d->st.irqs_no_work++;
	} else {
		d->ring_ops->interrupted(d);
		blk_done(d);
	}
	pthread_mutex_unlock(&d->lock);
}

/* virtblk_add_req's scatter list: header, data (out for writes and the
 * discard/write-zeroes ranges, in otherwise), status. */
static int build_req(struct sx_vdev *d, struct sx_req *r,
		     const struct sx_blk_io *io)
{
	bool data_out = io->type == VIRTIO_BLK_T_OUT ||
			io->type == VIRTIO_BLK_T_DISCARD ||
			io->type == VIRTIO_BLK_T_WRITE_ZEROES;
	struct virtio_blk_outhdr *hdr =
		(struct virtio_blk_outhdr *)(d->ram + io->hdr_gpa);
	unsigned k = 0;

	if (io->nseg > SX_IO_SEG_MAX)
		return -EINVAL;
	if (io->type == SX_IO_RAW_IN) {
		/* One device-writable buffer (virtio-rng's request, a
		 * virtio-net receive buffer): no header, no status. */
		if (io->nseg != 1)
			return -EINVAL;
		r->status_gpa = io->seg[0].gpa;
		r->sg[0] = (struct sx_sg){
			sx_dma_map(d, r, io->seg[0].gpa, io->seg[0].len, false),
			io->seg[0].len};
		r->n_out = 0;
		r->n_in = 1;
		return r->dma_failed ? -ENOMEM : 0;
	}
	hdr->type = io->type;
	hdr->ioprio = 0;
	hdr->sector = io->sector;
	r->status_gpa = io->hdr_gpa + sizeof(*hdr);
	d->ram[r->status_gpa] = 0xff;
	r->sg[k++] = (struct sx_sg){
		sx_dma_map(d, r, io->hdr_gpa, sizeof(*hdr), true),
		sizeof(*hdr)};
	for (unsigned i = 0; i < io->nseg; i++)
		r->sg[k++] =
			(struct sx_sg){sx_dma_map(d, r, io->seg[i].gpa,
						  io->seg[i].len, data_out),
				       io->seg[i].len};
	r->n_out = data_out ? k : 1;
	r->sg[k++] =
		(struct sx_sg){sx_dma_map(d, r, r->status_gpa, 1, false), 1};
	r->n_in = k - r->n_out;
	return r->dma_failed ? -ENOMEM : 0;
}

/* Waits until every request of reqs is done (interrupt-driven). */
static int wait_done(struct sx_vdev *d, unsigned v, struct sx_req **reqs,
		     unsigned n)
{
	uint64_t deadline = now_ms() + SX_WAIT_MS;

	for (;;) {
		unsigned left = 0;
		uint64_t seen;
		bool bad, reset;

		take_interrupt(d, v);
		pthread_mutex_lock(&d->lock);
		for (unsigned i = 0; i < n; i++)
			left += !reqs[i]->done;
		seen = d->irq_seen;
		bad = d->bad_ring;
		reset = d->needs_reset;
		pthread_mutex_unlock(&d->lock);
		if (!left)
			return 0;
		if (bad)
			return -EPROTO;
		if (reset)
			return -EIO;
		if (now_ms() > deadline)
			return -ETIMEDOUT;
		/* Short slices: another vCPU may take the interrupt for us. */
		sx_irq_wait(d->o.domid, seen, 2);
	}
}

static int submit(struct sx_vdev *d, unsigned v, struct sx_blk_io *io,
		  unsigned n, unsigned flags, const int *hdr_slot)
{
	const struct sx_ring_ops *ops = d->ring_ops;
	struct sx_req **reqs = calloc(n, sizeof(*reqs));
	unsigned need = 0, added = 0;
	bool kick;
	int rc = 0;

	if (!reqs)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		reqs[i] = calloc(1, sizeof(**reqs));
		if (!reqs[i]) {
			rc = -ENOMEM;
			goto out;
		}
		reqs[i]->hdr_slot = hdr_slot ? hdr_slot[i] : -1;
		rc = build_req(d, reqs[i], &io[i]);
		if (rc)
			goto out;
	}
	pthread_mutex_lock(&d->lock);
	/* Room for all of them, or none goes on the ring. */
	for (unsigned i = 0; i < n; i++)
		need += ops->slots(d, reqs[i]->n_out + reqs[i]->n_in);
	if (need > ops->num_free(d)) {
		pthread_mutex_unlock(&d->lock);
		rc = -ENOSPC;
		goto out;
	}
	/* The event goes in before the buffers: a device still polling from
	 * the last batch may use the first of them before the kick. */
	if ((flags & SX_SUBMIT_ONE_IRQ) && d->event_idx)
		ops->cb_after_all(d, n, need);
	for (; added < n; added++) {
		reqs[added]->seq = d->next_seq++;
		if (ops->add(d, reqs[added]))
			break; /* cannot happen: room was checked */
	}
	kick = added && ops->kick_prepare(d);
	d->st.kicks += kick;
	d->st.kicks_suppressed += added && !kick;
	pthread_mutex_unlock(&d->lock);
	if (kick)
		rc = wr(d, v, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	if (!rc)
		rc = wait_done(d, v, reqs, added);
	if (!rc && added < n)
		rc = -ENOSPC;
	for (unsigned i = 0; i < added; i++) {
		io[i].status = d->ram[reqs[i]->status_gpa];
		io[i].used_len = reqs[i]->used_len;
	}
out:
	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < n; i++) {
		struct sx_req *r = reqs[i];

		if (!r)
			continue;
		if (i < added && !r->done) {
			r->orphan = true; /* freed when (if) it is used */
			continue;
		}
		/* grant-dma-ops: the guest revokes its grants once it sees
		 * the completion; a grant still mapped breaks the device. */
		if (dma_unmap_all(d, r) == -EBUSY && (!rc || rc == -ENOSPC))
			rc = -EBUSY;
		if (r->hdr_slot >= 0)
			d->hdr_busy[r->hdr_slot] = 0;
		free(r);
	}
	pthread_mutex_unlock(&d->lock);
	free(reqs);
	return rc;
}

int sx_blk_submit(struct sx_vdev *d, unsigned v, struct sx_blk_io *io,
		  unsigned n, unsigned flags)
{
	if (n == 0)
		return -EINVAL;
	return submit(d, v, io, n, flags, NULL);
}

int sx_blk_rw_batch(struct sx_vdev *d, unsigned v, struct sx_blk_req *r,
		    unsigned n)
{
	struct sx_blk_io *io;
	int slot[SX_BATCH_MAX];
	unsigned k = 0;
	int rc;

	if (n == 0 || n > SX_BATCH_MAX)
		return -EINVAL;
	io = calloc(n, sizeof(*io));
	if (!io)
		return -ENOMEM;
	/* A header slot per request (Linux: the request's own PDU). */
	pthread_mutex_lock(&d->lock);
	for (unsigned s = 0; k < n && s < d->num; s++) {
		if (!d->hdr_busy[s]) {
			d->hdr_busy[s] = 1;
			slot[k++] = (int)s;
		}
	}
	if (k < n) {
		while (k)
			d->hdr_busy[slot[--k]] = 0;
		pthread_mutex_unlock(&d->lock);
		free(io);
		return -ENOSPC;
	}
	pthread_mutex_unlock(&d->lock);
	for (unsigned i = 0; i < n; i++) {
		io[i] = (struct sx_blk_io){
			.type = r[i].type,
			.sector = r[i].sector,
			.hdr_gpa = BUF_GPA + (uint64_t)slot[i] * HDR_SLOT,
			.nseg = r[i].len ? 1 : 0,
			.seg = {{r[i].data_gpa, r[i].len}},
		};
	}
	rc = submit(d, v, io, n, 0, slot);
	for (unsigned i = 0; i < n; i++)
		r[i].status = io[i].status;
	free(io);
	return rc;
}

int sx_blk_rw(struct sx_vdev *d, unsigned v, uint32_t type, uint64_t sector,
	      uint64_t data_gpa, uint32_t len)
{
	struct sx_blk_req r = {.type = type,
			       .len = len,
			       .sector = sector,
			       .data_gpa = data_gpa};
	int rc = sx_blk_rw_batch(d, v, &r, 1);

	return rc ? rc : r.status;
}
