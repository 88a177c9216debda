/* A test virtio-mmio guest driver: Linux's probe and initialisation order
 * through ioreqs, a split ring in guest RAM (guest-physical or grant
 * addresses), and virtio-blk requests. Test-only. */
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xenctrl.h>

#include "hv.h"

#define GRANT_BIT   (1ULL << 63)
#define RING_GPA    0x100000ULL /* 1 MiB: rings */
#define BUF_GPA	    0x200000ULL /* 2 MiB: request headers and status */
#define ALLOC_GPA   0x400000ULL /* 4 MiB up: test buffers */
#define SEG_PER_REQ 3

struct sx_vdev {
	struct sx_vdev_opts o;
	uint8_t *ram;
	uint64_t features;
	uint16_t num;
	uint64_t desc, avail, used; /* gpa */
	int ring_ref[3];
	unsigned ring_pages[3];
	pthread_mutex_t lock; /* ring, heads, isr below */
	uint16_t avail_idx, last_used;
	uint8_t *done;
	uint32_t *done_len;
	uint8_t *busy;
	uint64_t next_alloc;
	uint64_t irq_seen, isr_reads;
};

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

/* What the driver puts in a descriptor or register for [gpa, +len). */
static uint64_t bus_addr(struct sx_vdev *d, uint64_t gpa, uint64_t len, bool ro,
			 int *ref, unsigned *pages)
{
	unsigned np = (unsigned)(((gpa & 0xfff) + len + 0xfff) >> 12);
	int r;

	*pages = np;
	if (!d->o.grant) {
		*ref = -1;
		return gpa;
	}
	r = sx_grant(d->o.domid, gpa >> 12, np, ro);
	*ref = r;
	return r < 0 ? 0 : GRANT_BIT | ((uint64_t)r << 12) | (gpa & 0xfff);
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

static int setup_queue(struct sx_vdev *d, unsigned v)
{
	uint32_t ready, max;
	size_t dlen, alen, ulen;
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
	dlen = 16u * d->num;
	alen = 6 + 2u * d->num;
	ulen = 6 + 8u * d->num;
	/* Rings page-aligned each, so grants cover whole rings. */
	d->desc = RING_GPA;
	d->avail = d->desc + ((dlen + 4095) & ~4095ULL);
	d->used = d->avail + ((alen + 4095) & ~4095ULL);
	memset(d->ram + RING_GPA, 0, 0x100000);
	bus[0] = bus_addr(d, d->desc, dlen, true, &d->ring_ref[0],
			  &d->ring_pages[0]);
	bus[1] = bus_addr(d, d->avail, alen, true, &d->ring_ref[1],
			  &d->ring_pages[1]);
	bus[2] = bus_addr(d, d->used, ulen, false, &d->ring_ref[2],
			  &d->ring_pages[2]);
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
	d->ring_ref[0] = d->ring_ref[1] = d->ring_ref[2] = -1;
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
	d->done = calloc(d->num, 1);
	d->busy = calloc(d->num, 1);
	d->done_len = calloc(d->num, sizeof(*d->done_len));
	if (!d->done || !d->busy || !d->done_len) {
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
	for (int i = 0; i < 3; i++)
		if (d->ring_ref[i] >= 0)
			sx_ungrant(d->o.domid, (uint32_t)d->ring_ref[i],
				   d->ring_pages[i]);
	free(d->done);
	free(d->busy);
	free(d->done_len);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

uint64_t sx_vdev_features(const struct sx_vdev *d)
{
	return d->features;
}

uint64_t sx_vdev_isr_reads(const struct sx_vdev *d)
{
	return d->isr_reads;
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

/* Collect used entries (under the lock). */
static void reap(struct sx_vdev *d)
{
	struct vring_used *u = (struct vring_used *)(d->ram + d->used);
	uint16_t idx = __atomic_load_n(&u->idx, __ATOMIC_ACQUIRE);

	while (d->last_used != idx) {
		struct vring_used_elem *e = &u->ring[d->last_used % d->num];
		uint32_t id = e->id;

		if (id < d->num && id % SEG_PER_REQ == 0 && d->busy[id]) {
			d->done[id] = 1;
			d->done_len[id] = e->len;
		}
		d->last_used++;
	}
}

/* Linux's vm_interrupt: read InterruptStatus, acknowledge what was read,
 * then look at the rings. The rings are looked at only here, so a lost
 * interrupt leaves the request waiting (and the test failing). */
static void take_interrupt(struct sx_vdev *d, unsigned v)
{
	uint64_t edges = sx_irq_edges(d->o.domid);
	uint32_t isr = 0;

	pthread_mutex_lock(&d->lock);
	if (edges == d->irq_seen) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	d->irq_seen = edges;
	d->isr_reads++;
	pthread_mutex_unlock(&d->lock);
	if (rd(d, v, VIRTIO_MMIO_INTERRUPT_STATUS, &isr) == 0 && isr)
		wr(d, v, VIRTIO_MMIO_INTERRUPT_ACK, isr);
	pthread_mutex_lock(&d->lock);
	reap(d);
	pthread_mutex_unlock(&d->lock);
}

int sx_blk_rw(struct sx_vdev *d, unsigned v, uint32_t type, uint64_t sector,
	      uint64_t data_gpa, uint32_t len)
{
	struct vring_desc *desc = (struct vring_desc *)(d->ram + d->desc);
	struct vring_avail *av = (struct vring_avail *)(d->ram + d->avail);
	struct virtio_blk_outhdr *hdr;
	uint64_t hdr_gpa, st_gpa, deadline;
	int ref[3] = {-1, -1, -1};
	unsigned pages[3] = {0, 0, 0};
	uint16_t head = 0;
	bool found = false, in = type == VIRTIO_BLK_T_IN;
	int rc = 0, status;

	pthread_mutex_lock(&d->lock);
	for (unsigned h = 0; h + SEG_PER_REQ <= d->num; h += SEG_PER_REQ) {
		if (!d->busy[h]) {
			head = (uint16_t)h;
			found = true;
			break;
		}
	}
	if (!found) {
		pthread_mutex_unlock(&d->lock);
		return -ENOSPC;
	}
	d->busy[head] = 1;
	d->done[head] = 0;
	hdr_gpa = BUF_GPA + (uint64_t)head * 32;
	st_gpa = hdr_gpa + 16;
	hdr = (struct virtio_blk_outhdr *)(d->ram + hdr_gpa);
	hdr->type = type;
	hdr->ioprio = 0;
	hdr->sector = sector;
	d->ram[st_gpa] = 0xff;
	desc[head].addr = bus_addr(d, hdr_gpa, 16, true, &ref[0], &pages[0]);
	desc[head].len = 16;
	desc[head].flags = VRING_DESC_F_NEXT;
	desc[head].next = head + 1;
	desc[head + 1].addr =
		bus_addr(d, data_gpa, len, !in, &ref[1], &pages[1]);
	desc[head + 1].len = len;
	desc[head + 1].flags =
		VRING_DESC_F_NEXT | (in ? VRING_DESC_F_WRITE : 0);
	desc[head + 1].next = head + 2;
	desc[head + 2].addr = bus_addr(d, st_gpa, 1, false, &ref[2], &pages[2]);
	desc[head + 2].len = 1;
	desc[head + 2].flags = VRING_DESC_F_WRITE;
	av->ring[d->avail_idx % d->num] = head;
	d->avail_idx++;
	__atomic_store_n(&av->idx, d->avail_idx, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&d->lock);

	rc = wr(d, v, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	deadline = now_ms() + SX_WAIT_MS;
	while (!rc) {
		uint64_t seen;

		take_interrupt(d, v);
		pthread_mutex_lock(&d->lock);
		found = d->done[head];
		seen = d->irq_seen;
		pthread_mutex_unlock(&d->lock);
		if (found)
			break;
		if (now_ms() > deadline)
			rc = -ETIMEDOUT;
		/* Short slices: another vCPU may take the interrupt for us. */
		sx_irq_wait(d->o.domid, seen, 2);
	}
	status = d->ram[st_gpa];
	/* grant-dma-ops: the guest revokes its grants once it sees the
	 * completion; a grant still mapped breaks the device. */
	for (int i = 0; i < 3; i++)
		if (ref[i] >= 0 &&
		    sx_ungrant(d->o.domid, (uint32_t)ref[i], pages[i]) ==
			    -EBUSY &&
		    !rc)
			rc = -EBUSY;
	pthread_mutex_lock(&d->lock);
	if (!rc || rc == -EBUSY)
		d->busy[head] = 0;
	pthread_mutex_unlock(&d->lock);
	return rc ? rc : status;
}

/* Like sx_blk_rw for n requests at once (fio's iodepth_batch): all n are
 * put on the ring, one QueueNotify from `vcpu`, then all are waited for.
 * Each r[i].status gets the status byte. -ENOSPC (nothing posted) if the
 * ring has fewer than n free heads. */
int sx_blk_rw_batch(struct sx_vdev *d, unsigned v, struct sx_blk_req *r,
		    unsigned n)
{
	struct vring_desc *desc = (struct vring_desc *)(d->ram + d->desc);
	struct vring_avail *av = (struct vring_avail *)(d->ram + d->avail);
	uint16_t head[SX_BATCH_MAX];
	int ref[SX_BATCH_MAX][3];
	unsigned pages[SX_BATCH_MAX][3], k = 0, left = n;
	uint64_t deadline;
	int rc;

	if (n == 0 || n > SX_BATCH_MAX)
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	for (unsigned h = 0; k < n && h + SEG_PER_REQ <= d->num;
	     h += SEG_PER_REQ)
		if (!d->busy[h])
			head[k++] = (uint16_t)h;
	if (k < n) {
		pthread_mutex_unlock(&d->lock);
		return -ENOSPC;
	}
	for (unsigned i = 0; i < n; i++) {
		uint16_t h = head[i];
		bool in = r[i].type == VIRTIO_BLK_T_IN;
		uint64_t hdr_gpa = BUF_GPA + (uint64_t)h * 32;
		struct virtio_blk_outhdr *hdr =
			(struct virtio_blk_outhdr *)(d->ram + hdr_gpa);

		d->busy[h] = 1;
		d->done[h] = 0;
		hdr->type = r[i].type;
		hdr->ioprio = 0;
		hdr->sector = r[i].sector;
		d->ram[hdr_gpa + 16] = 0xff;
		desc[h].addr = bus_addr(d, hdr_gpa, 16, true, &ref[i][0],
					&pages[i][0]);
		desc[h].len = 16;
		desc[h].flags = VRING_DESC_F_NEXT;
		desc[h].next = h + 1;
		desc[h + 1].addr = bus_addr(d, r[i].data_gpa, r[i].len, !in,
					    &ref[i][1], &pages[i][1]);
		desc[h + 1].len = r[i].len;
		desc[h + 1].flags =
			VRING_DESC_F_NEXT | (in ? VRING_DESC_F_WRITE : 0);
		desc[h + 1].next = h + 2;
		desc[h + 2].addr = bus_addr(d, hdr_gpa + 16, 1, false,
					    &ref[i][2], &pages[i][2]);
		desc[h + 2].len = 1;
		desc[h + 2].flags = VRING_DESC_F_WRITE;
		av->ring[d->avail_idx % d->num] = h;
		d->avail_idx++;
	}
	__atomic_store_n(&av->idx, d->avail_idx, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&d->lock);

	rc = wr(d, v, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	deadline = now_ms() + SX_WAIT_MS;
	while (!rc && left) {
		uint64_t seen;

		take_interrupt(d, v);
		pthread_mutex_lock(&d->lock);
		left = 0;
		for (unsigned i = 0; i < n; i++)
			left += !d->done[head[i]];
		seen = d->irq_seen;
		pthread_mutex_unlock(&d->lock);
		if (!left)
			break;
		if (now_ms() > deadline)
			rc = -ETIMEDOUT;
		sx_irq_wait(d->o.domid, seen, 2);
	}
	for (unsigned i = 0; i < n; i++) {
		r[i].status = d->ram[BUF_GPA + (uint64_t)head[i] * 32 + 16];
		for (int j = 0; j < 3; j++)
			if (ref[i][j] >= 0 &&
			    sx_ungrant(d->o.domid, (uint32_t)ref[i][j],
				       pages[i][j]) == -EBUSY &&
			    !rc)
				rc = -EBUSY;
	}
	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < n && (!rc || rc == -EBUSY); i++)
		d->busy[head[i]] = 0;
	pthread_mutex_unlock(&d->lock);
	return rc;
}
