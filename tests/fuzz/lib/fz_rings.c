/* The driver side of fuzz_vhost_user: SET_VRING_* messages, blk requests
 * made available on rings the input placed in memfds, and the inflight
 * records a dead daemon could have left. Ring sizes and the inflight
 * layout are the frontend library's (vuf_vq.h, vuf_wire.h). */
#include <errno.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fz_frontend.h"
#include "fz_rings.h"
#include "vuf_vq.h"

/* ---------------------------------------------------------------- rings */

/* Mostly a queue the device has, sometimes any index at all. */
static uint32_t ring_index(struct input *in)
{
	uint8_t b = fz_take8(in);

	if (b < 0xf0)
		return b % NQ;
	return b == 0xff ? (uint32_t)fz_take(in, 4) : b;
}

/* One SET_VRING_NUM/ADDR/BASE/KICK/CALL/ERR/ENABLE or GET_VRING_BASE with
 * input-chosen fields; ring addresses are offsets in a memfd slot, laid out
 * as a driver would or placed anywhere. */
void fz_op_vring(struct fz *z, struct input *in)
{
	uint8_t f = fz_take8(in), sub = fz_take8(in);
	uint32_t index = ring_index(in);
	struct shadow_ring *sr = index < NQ ? &z->ring[index] : NULL;
	struct vhost_vring_state st = {.index = index};
	struct vhost_vring_addr a = {.index = index};
	uint64_t u64;
	int fd = -1;

	switch (sub % 8) {
	case 0: {
		uint8_t b = fz_take8(in);

		st.num = b < 0xf0 ? 1u << (b % 8)
				  : (b == 0xff ? (uint32_t)fz_take(in, 4)
					       : fz_take16(in));
		if (sr)
			sr->num = (uint16_t)st.num;
		fz_message(z, VHOST_USER_SET_VRING_NUM, fz_flags(f), sizeof(st),
			   &st, sizeof(st), NULL, 0);
		return;
	}
	case 1: {
		uint8_t mode = fz_take8(in);
		unsigned s = mode & 3;
		uint16_t num = sr && sr->num ? sr->num : 64;
		uint64_t desc = (uint64_t)fz_take16(in) * 16, avail, used;
		size_t dl, al, ul;

		/* Laid out one after the other, as a driver would, or each
		 * part anywhere. */
		vuf_vq_sizes(z->packed, num, &dl, &al, &ul);
		avail = mode & 4 ? (uint64_t)fz_take16(in) * 2 : desc + dl;
		used = mode & 8 ? (uint64_t)fz_take16(in) * 4
				: (avail + al + 3) & ~3ull;
		a.desc_user_addr = UBASE(s) + desc;
		a.avail_user_addr = UBASE(s) + avail;
		a.used_user_addr = UBASE(s) + used;
		if (mode & 0x10) {
			a.flags = 1u << VHOST_VRING_F_LOG;
			a.log_guest_addr = fz_take(in, 8);
		}
		if (mode & 0x20)
			a.flags |= fz_take8(in);
		if (mode & 0x40)
			a.used_user_addr = fz_take(in, 8);
		if (sr)
			*sr = (struct shadow_ring){
				.addr_set = true,
				.slot = s,
				.desc = desc,
				.avail = avail,
				.num = num,
				.wrap = true,
			};
		fz_message(z, VHOST_USER_SET_VRING_ADDR, fz_flags(f), sizeof(a),
			   &a, sizeof(a), NULL, 0);
		return;
	}
	case 2:
		st.num = f & 0x80 ? (uint32_t)fz_take(in, 4) : fz_take16(in);
		if (sr) {
			sr->avail_idx = sr->next_desc =
				(uint16_t)(st.num & 0x7fff);
			sr->wrap = z->packed ? !!(st.num & 0x8000) : true;
		}
		fz_message(z, VHOST_USER_SET_VRING_BASE, fz_flags(f),
			   sizeof(st), &st, sizeof(st), NULL, 0);
		return;
	case 3:
		fz_message(z, VHOST_USER_GET_VRING_BASE, fz_flags(f),
			   sizeof(st), &st, sizeof(st), NULL, 0);
		return;
	case 4:
	case 5:
	case 6: {
		static const uint32_t req[3] = {VHOST_USER_SET_VRING_KICK,
						VHOST_USER_SET_VRING_CALL,
						VHOST_USER_SET_VRING_ERR};
		uint8_t mode = fz_take8(in);

		u64 = index & VHOST_USER_VRING_IDX_MASK;
		if (index > VHOST_USER_VRING_IDX_MASK || mode & 0x80)
			u64 = fz_take(in, 8);
		if (mode & 1)
			u64 |= VHOST_USER_VRING_NOFD_MASK;
		if (!(mode & 1) || mode & 2)
			fd = mode & 4 ? fz_some_fd(z, fz_take8(in))
				      : fz_event_fd(z, sub % 8 == 4 && sr
							       ? &z->kick[index]
							       : NULL);
		fz_message(z, req[sub % 8 - 4], fz_flags(f), sizeof(u64), &u64,
			   sizeof(u64), &fd, fd >= 0);
		return;
	}
	default:
		st.num = f & 0x80 ? (uint32_t)fz_take(in, 4) : fz_take8(in) & 1;
		fz_message(z, VHOST_USER_SET_VRING_ENABLE, fz_flags(f),
			   sizeof(st), &st, sizeof(st), NULL, 0);
		return;
	}
}

/* A buffer inside a remembered region: its guest address and where it is
 * in our memfd. False if there is no such region. */
static bool buffer_at(struct fz *z, struct input *in, uint32_t len,
		      uint64_t *gpa, unsigned *slot, uint64_t *off)
{
	struct shadow_region *r;
	uint64_t o;

	if (!z->n_reg)
		return false;
	r = &z->reg[fz_take8(in) % z->n_reg];
	o = (uint64_t)fz_take16(in) * 16;
	if (r->size > len)
		o %= r->size - len;
	*gpa = r->gpa + o;
	*slot = r->slot;
	*off = r->mmap_offset + o;
	return true;
}

/* A blk request made available on a ring set up with offsets in a memfd:
 * header, data, status in guest memory, descriptors, then the index or the
 * flags that publish it, and a kick. The driver side of the ring. */
void fz_op_request(struct fz *z, struct input *in)
{
	static const uint32_t types[] = {
		VIRTIO_BLK_T_IN,
		VIRTIO_BLK_T_OUT,
		VIRTIO_BLK_T_FLUSH,
		VIRTIO_BLK_T_GET_ID,
		VIRTIO_BLK_T_DISCARD,
		VIRTIO_BLK_T_WRITE_ZEROES,
		0x77,
	};
	uint8_t f = fz_take8(in);
	unsigned q = fz_take8(in) % NQ, nb = 0;
	struct shadow_ring *sr = &z->ring[q];
	uint8_t tsel = fz_take8(in);
	struct virtio_blk_outhdr h = {
		.type = tsel < 0xf0 ? types[tsel % 7]
				    : (uint32_t)fz_take(in, 4),
		.sector = fz_take8(in),
	};
	uint32_t dlen = fz_take16(in) % 0x3000;
	bool dev_writes =
		h.type == VIRTIO_BLK_T_IN || h.type == VIRTIO_BLK_T_GET_ID;
	struct fbuf {
		uint64_t gpa;
		uint32_t len;
		bool write;
	} bufs[4];
	unsigned slot;
	uint64_t off, gpa;
	uint8_t status = 0xff;

	if (!sr->addr_set || !sr->num || z->mem[sr->slot] < 0)
		return;
	if (!buffer_at(z, in, sizeof(h), &gpa, &slot, &off))
		return;
	fz_poke(z, slot, off, &h, sizeof(h));
	bufs[nb++] = (struct fbuf){gpa, sizeof(h), false};
	if (dlen && buffer_at(z, in, dlen, &gpa, &slot, &off))
		bufs[nb++] = (struct fbuf){gpa, dlen, dev_writes};
	if (buffer_at(z, in, 1, &gpa, &slot, &off)) {
		fz_poke(z, slot, off, &status, 1);
		bufs[nb++] = (struct fbuf){gpa, 1, true};
	}
	if (f & 2 && nb > 1) /* a writable buffer before a readable one */
		bufs[0].write = true;

	if (!z->packed) {
		uint16_t head = sr->next_desc % sr->num;

		for (unsigned i = 0; i < nb; i++) {
			uint16_t at = (uint16_t)((head + i) % sr->num);
			struct vring_desc d = {
				.addr = bufs[i].gpa,
				.len = bufs[i].len,
				.flags =
					(uint16_t)((i + 1 < nb
							    ? VRING_DESC_F_NEXT
							    : 0) |
						   (bufs[i].write
							    ? VRING_DESC_F_WRITE
							    : 0)),
				.next = (uint16_t)((at + 1) % sr->num),
			};

			if (f & 4 && i == 0)
				d.next = fz_take16(in); /* anywhere */
			fz_poke(z, sr->slot, sr->desc + at * sizeof(d), &d,
				sizeof(d));
		}
		sr->next_desc = (uint16_t)(head + nb);
		fz_poke(z, sr->slot,
			sr->avail + 4 + (sr->avail_idx % sr->num) * 2, &head,
			2);
		sr->avail_idx++;
		if (f & 8)
			sr->avail_idx = fz_take16(in);
		fz_poke(z, sr->slot, sr->avail + 2, &sr->avail_idx, 2);
	} else {
		uint16_t id = sr->next_id++ % sr->num;
		uint16_t head = sr->avail_idx % sr->num, head_flags = 0;
		uint16_t pos = head;

		for (unsigned i = 0; i < nb; i++) {
			uint16_t fl =
				(uint16_t)((sr->wrap
						    ? 1u << VRING_PACKED_DESC_F_AVAIL
						    : 1u << VRING_PACKED_DESC_F_USED) |
					   (i + 1 < nb ? VRING_DESC_F_NEXT
						       : 0) |
					   (bufs[i].write ? VRING_DESC_F_WRITE
							  : 0));
			struct vring_packed_desc d = {
				.addr = bufs[i].gpa,
				.len = bufs[i].len,
				.id = f & 4 ? fz_take16(in) : id,
			};

			/* The head's flags go last: they publish the chain. */
			if (i == 0)
				head_flags = fl;
			else
				d.flags = fl;
			fz_poke(z, sr->slot, sr->desc + pos * sizeof(d), &d,
				sizeof(d));
			if (++pos == sr->num) {
				pos = 0;
				sr->wrap = !sr->wrap;
			}
		}
		sr->avail_idx = pos;
		fz_poke(z, sr->slot,
			sr->desc + head * sizeof(struct vring_packed_desc) + 14,
			&head_flags, 2);
	}
	if (z->kick[q] >= 0 && !(f & 0x10)) {
		uint64_t one = 1;

		if (write(z->kick[q], &one, sizeof(one)) < 0 && errno != EAGAIN)
			abort();
	}
}

/* A dead daemon's inflight area as its successor finds it: records of
 * chains in flight for one queue of the area GET_INFLIGHT_FD gave us, made
 * plausible from the input and sometimes damaged; then, if asked, the ring
 * restarts (SET_VRING_ENABLE 0, 1) so the record is recovered. */
void fz_op_forge_inflight(struct fz *z, struct input *in)
{
	uint8_t f = fz_take8(in), g = fz_take8(in);
	unsigned nq = g % NQ + 1, q = (g >> 4) % nq;
	bool packed = z->packed != !!(g & 8);
	size_t hdr = packed ? sizeof(struct vhost_user_inflight_packed)
			    : sizeof(struct vhost_user_inflight_split);
	size_t ent = packed ? sizeof(struct vhost_user_inflight_desc_packed)
			    : sizeof(struct vhost_user_inflight_desc_split);
	uint64_t stride = (z->inflight_size / nq) & ~63ull, cap;
	uint16_t num = z->ring[q].num ? z->ring[q].num : 64, desc_num;
	uint8_t *map, *base;

	if (z->inflight_fd < 0 || stride < hdr + ent)
		return;
	cap = (stride - hdr) / ent;
	if (cap > VUF_VQ_MAX_SIZE)
		cap = VUF_VQ_MAX_SIZE;
	desc_num = (uint16_t)(f & 2		   ? fz_take16(in)
			      : f & 1 && num < cap ? num
						   : cap);
	map = mmap(NULL, z->inflight_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   z->inflight_fd, 0);
	if (map == MAP_FAILED)
		abort();
	base = map + q * stride;
	memset(base + hdr, 0, cap * ent);
	if (!packed) {
		struct vhost_user_inflight_split *s = (void *)base;
		unsigned n = fz_take8(in) % 8;

		s->desc_num = desc_num;
		s->used_idx = fz_take16(in);
		s->last_batch_head = fz_take8(in) % cap;
		for (unsigned k = 0; k < n; k++) {
			struct vhost_user_inflight_desc_split *d =
				&s->desc[fz_take8(in) % cap];

			d->inflight = 1;
			d->counter = fz_take8(in);
			d->next = (uint16_t)(fz_take8(in) % cap);
		}
		s->version = f & 4 ? fz_take8(in) : 1;
	} else {
		struct vhost_user_inflight_packed *p = (void *)base;
		unsigned chains = fz_take8(in) % 5, pos = 0;

		for (unsigned i = 0; i < cap; i++)
			p->desc[i].next = (uint16_t)(i + 1);
		for (unsigned k = 0; k < chains; k++) {
			unsigned cnt = fz_take8(in) % 4 + 1;
			uint16_t id = fz_take8(in) % num;

			if (pos + cnt > cap)
				break;
			p->desc[pos].inflight = 1;
			p->desc[pos].num = (uint16_t)cnt;
			p->desc[pos].last = (uint16_t)(pos + cnt - 1);
			p->desc[pos].counter = fz_take8(in);
			for (unsigned d = 0; d < cnt; d++) {
				struct vhost_user_inflight_desc_packed *e =
					&p->desc[pos + d];
				uint8_t b = fz_take8(in);

				e->id = id;
				e->flags =
					(uint16_t)((d + 1 < cnt
							    ? VRING_DESC_F_NEXT
							    : 0) |
						   (b & 1 ? VRING_DESC_F_WRITE
							  : 0));
				e->len = b >> 1;
				e->addr = z->n_reg ? z->reg[b % z->n_reg].gpa
						   : fz_take(in, 8);
			}
			pos += cnt;
		}
		p->desc_num = desc_num;
		p->free_head = p->old_free_head = (uint16_t)pos;
		p->used_idx = p->old_used_idx = fz_take8(in) % num;
		p->used_wrap_counter = p->old_used_wrap_counter = g & 1;
		if (g & 2) { /* died while publishing a batch */
			p->used_idx = fz_take8(in) % num;
			p->free_head = fz_take8(in) % cap;
		}
		p->version = f & 4 ? fz_take8(in) : 1;
	}
	/* A few bytes damaged anywhere in the queue's region. */
	for (unsigned k = f & 8 ? fz_take8(in) % 4 + 1 : 0; k; k--)
		base[fz_take16(in) % (hdr + cap * ent)] = fz_take8(in);
	munmap(map, z->inflight_size);
	if (f & 0x10) {
		struct vhost_vring_state st = {q, 0};

		fz_message(z, VHOST_USER_SET_VRING_ENABLE, VHOST_USER_VERSION,
			   sizeof(st), &st, sizeof(st), NULL, 0);
		st.num = 1;
		fz_message(z, VHOST_USER_SET_VRING_ENABLE, VHOST_USER_VERSION,
			   sizeof(st), &st, sizeof(st), NULL, 0);
	}
}
