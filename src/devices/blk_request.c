/* virtio-blk request parsing and validation (virtio 1.2 §5.2.6): turns a
 * popped chain into a checked request. The guest is hostile: no layout is
 * assumed, every length and sector is checked, and nothing outside the
 * element's iovecs or the image is ever addressed. */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "virtiod/iov.h"

#include "blk.h"

/* The status byte: last byte of the last non-empty writable buffer. */
static uint8_t *status_byte(const struct vd_vq_elem *e)
{
	for (unsigned i = e->n_write; i-- > 0;)
		if (e->write_iov[i].iov_len)
			return (uint8_t *)e->write_iov[i].iov_base +
			       e->write_iov[i].iov_len - 1;
	return NULL;
}

/* [sector, sector + bytes) inside the image and aligned to the logical
 * block; written so that no product or sum can wrap. */
static bool range_ok(const struct blk_dev *d, uint64_t sector, uint64_t bytes)
{
	/* Online resize may change it (blk_resize.c): one relaxed load. */
	uint64_t cap = atomic_load_explicit(&d->size, memory_order_relaxed) >>
		       BLK_SECTOR_SHIFT;
	uint64_t lbs_sectors = d->be.lbs >> BLK_SECTOR_SHIFT;

	/* lbs is 512 or 4096: masks, not divisions. */
	if ((bytes & (d->be.lbs - 1)) || (sector & (lbs_sectors - 1)))
		return false;
	return sector <= cap && (bytes >> BLK_SECTOR_SHIFT) <= cap - sector;
}

static void set_done(struct blk_req *r, uint8_t st)
{
	r->st = st;
	r->phase = BLK_PH_DONE;
}

static void parse_rw(struct blk_queue *bq, struct blk_req *r, uint64_t sector)
{
	struct blk_dev *d = bq->dev;
	const struct vd_vq_elem *e = r->elem;
	bool write = r->type == VIRTIO_BLK_T_OUT;
	uint64_t len;
	int n;

	if (write && d->be.readonly)
		return set_done(r, VIRTIO_BLK_S_IOERR);
	/* IN: data is every writable byte before the status. OUT: every
	 * readable byte after the header. */
	len = write ? e->read_len - sizeof(struct virtio_blk_outhdr)
		    : e->write_len - 1;
	if (!range_ok(d, sector, len))
		return set_done(r, VIRTIO_BLK_S_IOERR);
	if (len == 0)
		return set_done(r, VIRTIO_BLK_S_OK);
	if (write)
		n = vd_iov_slice(e->read_iov, e->n_read,
				 sizeof(struct virtio_blk_outhdr), len, r->iov,
				 bq->max_iov);
	else
		n = vd_iov_slice(e->write_iov, e->n_write, 0, len, r->iov,
				 bq->max_iov);
	if (n < 0)
		return set_done(r, VIRTIO_BLK_S_IOERR);
	r->n_iov = (unsigned)n;
	r->iov_idx = 0;
	r->off = sector << BLK_SECTOR_SHIFT;
	r->left = len;
	r->phase = BLK_PH_RW;
}

static void parse_get_id(struct blk_queue *bq, struct blk_req *r)
{
	const struct vd_vq_elem *e = r->elem;
	uint64_t room = e->write_len - 1;
	size_t n =
		room < VIRTIO_BLK_ID_BYTES ? (size_t)room : VIRTIO_BLK_ID_BYTES;

	/* The status byte is after these n bytes, so it is not overwritten. */
	vd_iov_from_buf(e->write_iov, e->n_write, 0, bq->dev->serial, n);
	set_done(r, VIRTIO_BLK_S_OK);
}

static void parse_dwz(struct blk_queue *bq, struct blk_req *r)
{
	struct blk_dev *d = bq->dev;
	const struct vd_vq_elem *e = r->elem;
	bool discard = r->type == VIRTIO_BLK_T_DISCARD;
	uint64_t len = e->read_len - sizeof(struct virtio_blk_outhdr);
	unsigned max_seg = BLK_DWZ_MAX_SEG;

	/* Read-only first: such a device does not offer either feature, yet
	 * a write request to it is an I/O error, not an unknown command. */
	if (d->be.readonly)
		return set_done(r, VIRTIO_BLK_S_IOERR);
	if (!blk_feature(d, discard ? VIRTIO_BLK_F_DISCARD
				    : VIRTIO_BLK_F_WRITE_ZEROES))
		return set_done(r, VIRTIO_BLK_S_UNSUPP);
	if (len == 0 || len % sizeof(struct virtio_blk_discard_write_zeroes) ||
	    len / sizeof(struct virtio_blk_discard_write_zeroes) > max_seg)
		return set_done(r, VIRTIO_BLK_S_IOERR);

	r->n_seg = 0;
	for (unsigned i = 0;
	     i < len / sizeof(struct virtio_blk_discard_write_zeroes); i++) {
		struct virtio_blk_discard_write_zeroes s;
		uint64_t sector;
		uint32_t num, flags;

		/* Copied once: the guest may change its buffer meanwhile. */
		vd_iov_to_buf(e->read_iov, e->n_read,
			      sizeof(struct virtio_blk_outhdr) + i * sizeof(s),
			      &s, sizeof(s));
		sector = le64toh(s.sector);
		num = le32toh(s.num_sectors);
		flags = le32toh(s.flags);
		/* §5.2.6.2: unknown flags, and UNMAP on a discard, are
		 * UNSUPP. */
		if (flags & ~(uint32_t)VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP ||
		    (discard && flags))
			return set_done(r, VIRTIO_BLK_S_UNSUPP);
		if (num > BLK_DWZ_MAX_SECTORS ||
		    !range_ok(d, sector, (uint64_t)num << BLK_SECTOR_SHIFT))
			return set_done(r, VIRTIO_BLK_S_IOERR);
		if (num == 0)
			continue;
		r->segs[r->n_seg].off = sector << BLK_SECTOR_SHIFT;
		r->segs[r->n_seg].len = (uint64_t)num << BLK_SECTOR_SHIFT;
		r->segs[r->n_seg].unmap =
			flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
		r->n_seg++;
	}
	r->cur_seg = 0;
	r->seg_done = 0;
	r->phase = r->n_seg ? BLK_PH_SEG : BLK_PH_DONE;
}

int blk_req_parse(struct blk_queue *bq, struct blk_req *r, struct vd_vq_elem *e,
		  const char **why)
{
	struct virtio_blk_outhdr hdr;

	r->elem = e;
	r->st = VIRTIO_BLK_S_OK;
	r->phase = BLK_PH_DONE;
	r->unsynced = false;
	r->n_iov = 0;
	r->iov_idx = 0;
	r->left = 0;
	r->bounced = false;
	r->n_seg = 0;

	/* virtio 1.2 §5.2.6: a request is at least a 16-byte header and a
	 * status byte; without them there is nothing to answer with. */
	if (e->read_len < sizeof(hdr)) {
		*why = "request header shorter than 16 bytes";
		return -EBADMSG;
	}
	r->status = status_byte(e);
	if (!r->status) {
		*why = "request without a writable status byte";
		return -EBADMSG;
	}
	/* Copied once (the guest may change it meanwhile); nearly always in
	 * the first buffer, which spares the general iovec walk. */
	if (e->read_iov[0].iov_len >= sizeof(hdr)) {
		memcpy(&hdr, e->read_iov[0].iov_base, sizeof(hdr));
		__asm__ __volatile__("" ::: "memory");
	} else {
		vd_iov_to_buf(e->read_iov, e->n_read, 0, &hdr, sizeof(hdr));
	}
	r->type = le32toh(hdr.type);

	switch (r->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		parse_rw(bq, r, le64toh(hdr.sector));
		break;
	case VIRTIO_BLK_T_FLUSH:
		/* A read-only image has nothing to make durable. */
		if (!bq->dev->be.readonly)
			r->phase = BLK_PH_FLUSH;
		break;
	case VIRTIO_BLK_T_GET_ID:
		parse_get_id(bq, r);
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		parse_dwz(bq, r);
		break;
	default:
		set_done(r, VIRTIO_BLK_S_UNSUPP);
		break;
	}
	return 0;
}
