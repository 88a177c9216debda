/* Inflight I/O tracking ("Inflight I/O tracking", split and packed): chains
 * are recorded from pop to publish so a restarted daemon resubmits them, none
 * lost, none twice. Indexes read from the frontend's region are checked. */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "connection.h"
#include "dirty_log.h"
#include "inflight.h"
#include "messages.h"

#define INFLIGHT_VERSION 1
#define INFLIGHT_ALIGN	 64 /* per-queue stride, as DPDK and libvhost-user */
#define NO_ENTRY	 0xffff

#define PACKED_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define PACKED_USED  (1u << VRING_PACKED_DESC_F_USED)

_Static_assert(sizeof(struct vu_inflight_wire) == 24, "QEMU sends 24");

size_t vu_inflight_queue_size(bool packed, uint16_t queue_size)
{
	size_t n =
		packed ? sizeof(struct vd_inflight_packed) +
				 queue_size *
					 sizeof(struct vd_inflight_desc_packed)
		       : sizeof(struct vd_inflight_split) +
				 queue_size *
					 sizeof(struct vd_inflight_desc_split);

	return (n + INFLIGHT_ALIGN - 1) & ~(size_t)(INFLIGHT_ALIGN - 1);
}

/* Stores the next incarnation reads after a crash: ordered as written. */
#define STORE(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)

/* ------------------------------------------------------------ the region */

void vu_inflight_unmap(struct vu_backend *b)
{
	if (b->inflight_map)
		munmap(b->inflight_map, b->inflight_len);
	b->inflight_map = NULL;
	b->inflight_area = NULL;
	b->inflight_len = 0;
	b->inflight_nq = 0;
	b->inflight_cap = 0;
}

static size_t entry_size(bool packed)
{
	return packed ? sizeof(struct vd_inflight_desc_packed)
		      : sizeof(struct vd_inflight_desc_split);
}

static size_t header_size(bool packed)
{
	return packed ? sizeof(struct vd_inflight_packed)
		      : sizeof(struct vd_inflight_split);
}

/* The per-queue stride follows from the area alone (so every incarnation
 * of the daemon finds the same layout), and with it how many entries each
 * queue's region holds: at least the queue size the frontend asked for,
 * more when we allocated the area ourselves. */
static void inflight_adopt(struct vu_backend *b, void *map, size_t len,
			   void *area, uint64_t area_size, uint16_t nq)
{
	bool packed = b->features & (1ull << VIRTIO_F_RING_PACKED);
	size_t stride =
		(size_t)(area_size / nq) & ~(size_t)(INFLIGHT_ALIGN - 1);
	size_t cap = (stride - header_size(packed)) / entry_size(packed);

	vu_inflight_unmap(b);
	b->inflight_map = map;
	b->inflight_len = len;
	b->inflight_area = area;
	b->inflight_nq = nq;
	b->inflight_packed = packed;
	b->inflight_qstride = stride;
	b->inflight_cap =
		(uint16_t)(cap < VD_VQ_MAX_SIZE ? cap : VD_VQ_MAX_SIZE);
}

/* The backend allocates the region; its layout follows the ring layout
 * negotiated by now (QEMU sends SET_FEATURES first). Each queue gets room
 * for our largest ring, not only the queue size asked for: over
 * virtio-mmio QEMU 7.2 asks with its queue-size (128) while the driver
 * may set up rings of 1024. */
int vu_get_inflight_fd(struct vu_backend *b, struct vu_msg *m,
		       struct vu_reply *r, char *why, size_t whylen)
{
	const struct vu_inflight_wire *in = &m->p.inflight;
	bool packed = b->features & (1ull << VIRTIO_F_RING_PACKED);
	uint16_t entries = b->max_queue_size; /* >= queue_size, checked */
	size_t size = in->num_queues * vu_inflight_queue_size(packed, entries);
	void *map;
	int fd;

	/* No ring runs (the table's rule). */
	fd = memfd_create("virtiod-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		snprintf(why, whylen, "memfd_create: %s", strerror(errno));
		return VU_REFUSED;
	}
	/* Sealed size: the frontend cannot shrink it under our mapping. */
	if (ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) <
		    0) {
		snprintf(why, whylen, "inflight area: %s", strerror(errno));
		close(fd);
		return VU_REFUSED;
	}
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(why, whylen, "inflight area mmap: %s",
			 strerror(errno));
		close(fd);
		return VU_REFUSED;
	}
	inflight_adopt(b, map, size, map, size, in->num_queues);
	r->hdr.size = sizeof(r->p.inflight);
	r->p.inflight = (struct vu_inflight_wire){
		.mmap_size = size,
		.mmap_offset = 0,
		.num_queues = in->num_queues,
		.queue_size = entries,
	};
	r->fds[0] = fd;
	r->n_fds = 1;
	vd_debug(b->who, "inflight area: %zu bytes for %u %s queues of %u",
		 size, in->num_queues, packed ? "packed" : "split", entries);
	return 0;
}

int vu_set_inflight_fd(struct vu_backend *b, struct vu_msg *m,
		       struct vu_reply *r, char *why, size_t whylen)
{
	const struct vu_inflight_wire *in = &m->p.inflight;
	bool packed = b->features & (1ull << VIRTIO_F_RING_PACKED);
	size_t need =
		in->num_queues * vu_inflight_queue_size(packed, in->queue_size);
	char detail[160];
	struct stat st;
	void *base, *area;
	size_t len;

	(void)r;
	/* No ring runs (the table's rule). */
	if (in->mmap_size < need) {
		snprintf(why, whylen,
			 "area of %llu bytes, %u %s queues of %u need %zu",
			 (unsigned long long)in->mmap_size, in->num_queues,
			 packed ? "packed" : "split", in->queue_size, need);
		return -EINVAL;
	}
	if (vu_fd_check_range(b, "inflight area", m->fds[0], in->mmap_offset,
			      in->mmap_size, detail, sizeof(detail), &st) < 0) {
		snprintf(why, whylen, "inflight area %s", detail);
		return -EINVAL;
	}
	area = vu_map_fd(m->fds[0], in->mmap_offset, in->mmap_size, &st, &base,
			 &len, detail, sizeof(detail));
	if (!area) {
		snprintf(why, whylen, "inflight area: %s", detail);
		return -EINVAL;
	}
	inflight_adopt(b, base, len, area, in->mmap_size, in->num_queues);
	return 0;
}

/* ----------------------------------------------------------- ring state */

void vu_inflight_release(struct vu_vring *vr)
{
	struct vu_inflight_ring *f = &vr->inflight;

	free(f->batch);
	free(f->next);
	free(f->last);
	free(f->id_head);
	free(vr->requeue);
	vr->requeue = NULL;
	*f = (struct vu_inflight_ring){.rl = f->rl};
}

static int alloc_local(struct vu_vring *vr, bool packed, uint16_t desc_num,
		       uint16_t num)
{
	struct vu_inflight_ring *f = &vr->inflight;

	f->batch = calloc(num, sizeof(*f->batch));
	vr->requeue = calloc(num, sizeof(*vr->requeue));
	if (packed) {
		f->next = calloc(desc_num, sizeof(*f->next));
		f->last = calloc(desc_num, sizeof(*f->last));
		f->id_head = malloc(num * sizeof(*f->id_head));
		if (f->id_head)
			memset(f->id_head, 0xff, num * sizeof(*f->id_head));
	}
	if (!f->batch || !vr->requeue ||
	    (packed && (!f->next || !f->last || !f->id_head)))
		return -ENOMEM;
	return 0;
}

struct by_counter {
	uint64_t counter;
	uint16_t head;
	uint16_t first, cnt; /* packed: its entries, chain[first, +cnt) */
};

static int cmp_counter(const void *a, const void *b)
{
	const struct by_counter *x = a, *y = b;

	return x->counter < y->counter ? -1 : x->counter > y->counter;
}

/* ------------------------------------------------------------------ split */

static void split_init(struct vd_inflight_split *s, uint16_t desc_num,
		       uint16_t used_idx)
{
	memset(s->desc, 0, desc_num * sizeof(s->desc[0]));
	s->features = 0;
	s->desc_num = desc_num;
	s->last_batch_head = 0;
	s->used_idx = used_idx;
	STORE(s->version, INFLIGHT_VERSION);
}

/* "When reconnecting" (split). Returns the number of heads to resubmit,
 * in vr->requeue, oldest first; the ring starts after them. */
static int split_prepare(struct vu_vring *vr, struct vd_vq_config *cfg,
			 uint16_t desc_num, char *why, size_t whylen)
{
	struct vu_inflight_ring *f = &vr->inflight;
	struct vd_inflight_split *s = f->split;
	struct vring_used *used_ring = cfg->device;
	uint16_t used = __atomic_load_n(&used_ring->idx, __ATOMIC_ACQUIRE);
	struct by_counter *heads;
	unsigned n = 0;

	if (s->version == 0) {
		split_init(s, desc_num, used);
		return 0;
	}
	if (s->version != INFLIGHT_VERSION || s->desc_num != desc_num) {
		vd_warn(vr->who,
			"inflight area has version %u, %u entries (expected "
			"%u, %u): nothing to resubmit",
			s->version, s->desc_num, INFLIGHT_VERSION, desc_num);
		split_init(s, desc_num, used);
		return 0;
	}
	/* The last batch reached the used ring but its entries were not
	 * cleared yet: clear them now. */
	if (s->used_idx != used) {
		uint16_t batch = (uint16_t)(used - s->used_idx);
		uint16_t i = s->last_batch_head;

		for (unsigned k = 0; k < batch && k < desc_num && i < desc_num;
		     k++) {
			STORE(s->desc[i].inflight, 0);
			i = s->desc[i].next;
		}
		STORE(s->used_idx, used);
	}
	heads = calloc(cfg->num, sizeof(*heads));
	if (!heads) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	for (uint16_t i = 0; i < desc_num; i++) {
		if (!s->desc[i].inflight)
			continue;
		if (i >= cfg->num) {
			/* Cannot be a head of this ring: dropped. */
			STORE(s->desc[i].inflight, 0);
			continue;
		}
		heads[n].counter = s->desc[i].counter;
		heads[n].head = i;
		n++;
	}
	qsort(heads, n, sizeof(*heads), cmp_counter);
	for (unsigned k = 0; k < n; k++)
		vr->requeue[k] = heads[k].head;
	f->counter = n ? heads[n - 1].counter + 1 : 0;
	free(heads);
	/* Every chain the driver made available up to here was either
	 * used or is in flight, so the next new one is used + in flight
	 * (the frontend cannot know: it may send its used index as base). */
	cfg->avail_idx = (uint16_t)(used + n);
	cfg->used_idx_valid = false;
	if (n)
		vd_info(vr->who,
			"resubmitting %u requests in flight before "
			"the reconnect",
			n);
	return (int)n;
}

/* ----------------------------------------------------------------- packed */

static void packed_init(struct vu_inflight_ring *f, uint16_t desc_num,
			uint16_t used_idx, bool used_wrap)
{
	struct vd_inflight_packed *p = f->pk;

	memset(p->desc, 0, desc_num * sizeof(p->desc[0]));
	for (uint16_t i = 0; i < desc_num; i++) {
		p->desc[i].next = (uint16_t)(i + 1);
		f->next[i] = (uint16_t)(i + 1); /* desc_num ends the list */
	}
	p->features = 0;
	p->desc_num = desc_num;
	p->free_head = p->old_free_head = 0;
	p->used_idx = p->old_used_idx = used_idx;
	p->used_wrap_counter = p->old_used_wrap_counter = used_wrap;
	STORE(p->version, INFLIGHT_VERSION);
	f->free_head = 0;
}

/* Walks the recorded chains; false if the region does not hold together
 * (then nothing it says can be trusted). The entries of each chain go to
 * chain[] (num room): the frontend can rewrite the region meanwhile, so
 * the links are read once, here, and never followed again. */
static bool packed_collect(struct vd_inflight_packed *p, uint16_t desc_num,
			   uint16_t num, uint16_t free_head,
			   struct by_counter *heads, unsigned *n_heads,
			   unsigned *slots, uint8_t *mark, uint16_t *chain)
{
	uint16_t i = free_head;

	memset(mark, 0, desc_num);
	/* "Set the inflight field of each DescStatePacked entry in free list
	 * to 0": what was rolled back is free again. */
	for (unsigned k = 0; k < desc_num && i < desc_num && !mark[i]; k++) {
		mark[i] = 1;
		STORE(p->desc[i].inflight, 0);
		i = p->desc[i].next;
	}
	*n_heads = 0;
	*slots = 0;
	for (uint16_t h = 0; h < desc_num; h++) {
		uint16_t cnt = p->desc[h].num, j = h;

		if (!p->desc[h].inflight || mark[h] == 1)
			continue;
		if (cnt == 0 || cnt > num || *slots + cnt > num)
			return false;
		for (uint16_t k = 0; k < cnt; k++) {
			if (j >= desc_num || mark[j])
				return false;
			mark[j] = 2;
			chain[*slots + k] = j;
			if (k + 1 < cnt)
				j = p->desc[j].next;
		}
		if (j != p->desc[h].last)
			return false;
		heads[*n_heads].counter = p->desc[h].counter;
		heads[*n_heads].head = h;
		heads[*n_heads].first = (uint16_t)*slots;
		heads[*n_heads].cnt = cnt;
		(*n_heads)++;
		*slots += cnt;
	}
	return true;
}

/* "When reconnecting" (packed). The descriptor ring slots from the used
 * position on belong to the device until it writes used elements there,
 * and out-of-order completions may have overwritten chains still in
 * flight. So the recorded chains are written back into those slots,
 * oldest first, as available descriptors, and the ring restarts at the
 * used position: the device pops them again like new ones. */
static int packed_prepare(struct vu_vring *vr, struct vd_vq_config *cfg,
			  uint16_t desc_num, char *why, size_t whylen)
{
	struct vu_inflight_ring *f = &vr->inflight;
	struct vd_inflight_packed *p = f->pk;
	struct vring_packed_desc *ring = cfg->desc;
	uint16_t num = cfg->num, u, free_head;
	bool w, committed = false;
	struct by_counter *heads;
	unsigned n = 0, slots = 0;
	uint16_t *chain;
	uint8_t *mark;

	if (p->version == 0 || p->version != INFLIGHT_VERSION ||
	    p->desc_num != desc_num) {
		if (p->version)
			vd_warn(vr->who,
				"inflight area has version %u, %u "
				"entries: nothing to resubmit",
				p->version, p->desc_num);
		packed_init(f, desc_num, cfg->used_idx, cfg->used_wrap);
		goto out;
	}
	u = p->old_used_idx;
	w = p->old_used_wrap_counter;
	/* A batch was being published: if the driver can see its first used
	 * element, it was, and the batch is committed; else roll it back. */
	if ((p->used_idx != u || p->used_wrap_counter != w) && u < num) {
		uint16_t fl = __atomic_load_n(&ring[u].flags, __ATOMIC_ACQUIRE);
		uint16_t avail = w ? PACKED_AVAIL : PACKED_USED;

		if ((fl & (PACKED_AVAIL | PACKED_USED)) != avail)
			committed = true;
	}
	if (committed) {
		u = p->used_idx;
		w = p->used_wrap_counter;
		free_head = p->free_head;
	} else {
		free_head = p->old_free_head;
	}
	heads = calloc(desc_num, sizeof(*heads));
	mark = malloc(desc_num);
	chain = malloc(num * sizeof(*chain));
	if (!heads || !mark || !chain) {
		free(heads);
		free(mark);
		free(chain);
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	if (u >= num || !packed_collect(p, desc_num, num, free_head, heads, &n,
					&slots, mark, chain)) {
		vd_err(vr->who, "inflight area is inconsistent: its requests "
				"cannot be resubmitted");
		n = 0;
	}
	qsort(heads, n, sizeof(*heads), cmp_counter);
	f->counter = n ? heads[n - 1].counter + 1 : 0;
	/* Rewrite [u, u + slots) with the chains, in submission order. */
	{
		uint16_t pos = u;
		bool pw = w;

		for (unsigned k = 0; k < n; k++) {
			for (uint16_t d = 0; d < heads[k].cnt; d++) {
				const struct vd_inflight_desc_packed *s =
					&p->desc[chain[heads[k].first + d]];
				uint16_t fl =
					(uint16_t)(s->flags & ~(PACKED_AVAIL |
								PACKED_USED));

				fl |= pw ? PACKED_AVAIL : PACKED_USED;
				ring[pos].addr = s->addr;
				ring[pos].len = s->len;
				ring[pos].id = s->id;
				__atomic_store_n(&ring[pos].flags, fl,
						 __ATOMIC_RELEASE);
				if (vr->b && vu_log_active(vr->b))
					vu_log_write(
						vr,
						cfg->desc_gpa +
							pos * sizeof(*ring),
						sizeof(*ring));
				if (++pos == num) {
					pos = 0;
					pw = !pw;
				}
			}
		}
	}
	free(heads);
	free(mark);
	free(chain);
	if (n)
		vd_info(vr->who,
			"resubmitting %u requests in flight before "
			"the reconnect",
			n);
	/* They are popped again and recorded afresh. */
	packed_init(f, desc_num, u, w);
	cfg->avail_idx = u;
	cfg->avail_wrap = w;
	cfg->used_idx = u;
	cfg->used_wrap = w;
	cfg->used_idx_valid = true;
out:
	f->desc_ring = cfg->desc;
	f->avail_pos = cfg->avail_idx;
	f->avail_wrap = cfg->avail_wrap;
	f->used_pos = cfg->used_idx;
	f->used_wrap = cfg->used_wrap;
	return 0;
}

int vu_inflight_prepare(struct vu_backend *b, struct vu_vring *vr,
			struct vd_vq_config *cfg, char *why, size_t whylen)
{
	struct vu_inflight_ring *f = &vr->inflight;
	bool packed = cfg->layout == VD_VQ_PACKED;
	char *area = b->inflight_area;
	uint16_t desc_num, recorded;
	int rc;

	vu_inflight_release(vr);
	if (!area || vr->index >= b->inflight_nq)
		return 0;
	if (packed != b->inflight_packed) {
		snprintf(why, whylen,
			 "inflight area laid out for %s rings, ring is %s",
			 b->inflight_packed ? "packed" : "split",
			 packed ? "packed" : "split");
		return -EINVAL;
	}
	if (cfg->num > b->inflight_cap) {
		/* An area another backend sized by QEMU's queue-size, and a
		 * larger ring: serving it untracked beats refusing it. */
		vd_warn(vr->who,
			"ring of %u above the inflight area's %u entries: "
			"requests of this ring are not tracked",
			cfg->num, b->inflight_cap);
		return 0;
	}
	area += vr->index * b->inflight_qstride;
	/* A region already in use keeps its entry count. */
	recorded = packed ? ((struct vd_inflight_packed *)area)->desc_num
			  : ((struct vd_inflight_split *)area)->desc_num;
	desc_num = recorded >= cfg->num && recorded <= b->inflight_cap
			   ? recorded
			   : b->inflight_cap;
	rc = alloc_local(vr, packed, desc_num, cfg->num);
	if (rc) {
		vu_inflight_release(vr);
		snprintf(why, whylen, "out of memory");
		return rc;
	}
	f->packed = packed;
	f->desc_num = desc_num;
	f->num = cfg->num;
	if (packed) {
		f->pk = (struct vd_inflight_packed *)area;
		rc = packed_prepare(vr, cfg, desc_num, why, whylen);
	} else {
		f->split = (struct vd_inflight_split *)area;
		rc = split_prepare(vr, cfg, desc_num, why, whylen);
	}
	if (rc < 0) {
		vu_inflight_release(vr);
		return rc;
	}
	f->on = true;
	return rc;
}

/* ------------------------------------------------------------------ hooks */

/* "When receiving available buffers from the driver" */
void vu_inflight_on_pop(void *ctx, const struct vd_vq_elem *e)
{
	struct vu_vring *vr = ctx;
	struct vu_inflight_ring *f = &vr->inflight;

	if (!f->packed) {
		struct vd_inflight_desc_split *d = &f->split->desc[e->id];

		d->counter = f->counter++;
		STORE(d->inflight, 1);
		return;
	}

	/* packed: copy the chain's ring slots (intact until it completes)
	 * into free entries, then commit by moving old_free_head past them.
	 * Entries of completions not yet published are not free yet: they
	 * hang between free_head and old_free_head (see on_push). */
	struct vd_inflight_packed *p = f->pk;
	const struct vring_packed_desc *ring = f->desc_ring;
	uint16_t h = f->free_head, j = h, last = h;

	if (e->ndescs == 0 || e->ndescs > f->num || e->id >= f->num) {
		vd_log_ratelimited(&f->rl, VD_LOG_ERR, vr->who,
				   "chain of %u slots, id %u not recorded",
				   e->ndescs, e->id);
		return;
	}
	for (uint16_t k = 0; k < e->ndescs; k++) {
		uint16_t pos = (uint16_t)((f->avail_pos + k) % f->num);
		struct vd_inflight_desc_packed *d;

		if (j >= f->desc_num) {
			vd_log_ratelimited(&f->rl, VD_LOG_ERR, vr->who,
					   "inflight entries exhausted");
			return;
		}
		d = &p->desc[j];
		d->addr = ring[pos].addr;
		d->len = ring[pos].len;
		d->id = ring[pos].id;
		d->flags = ring[pos].flags;
		last = j;
		j = f->next[j];
	}
	f->avail_pos = (uint16_t)(f->avail_pos + e->ndescs);
	if (f->avail_pos >= f->num) {
		f->avail_pos = (uint16_t)(f->avail_pos - f->num);
		f->avail_wrap = !f->avail_wrap;
	}
	p->desc[h].num = e->ndescs;
	p->desc[h].last = last;
	p->desc[h].counter = f->counter++;
	f->last[h] = last;
	f->id_head[e->id] = h;
	STORE(p->desc[h].inflight, 1);
	f->free_head = j;
	STORE(p->old_free_head, j);
	if (f->batch_n) {
		f->next[f->pending_tail] = j;
		STORE(p->desc[f->pending_tail].next, j);
	} else {
		STORE(p->free_head, j);
	}
}

/* vd_vq_unpop gave back the latest chain popped: on_pop undone, its
 * entries back at the head of the free list (their links are untouched). */
void vu_inflight_on_unpop(void *ctx, const struct vd_vq_elem *e)
{
	struct vu_vring *vr = ctx;
	struct vu_inflight_ring *f = &vr->inflight;
	struct vd_inflight_packed *p = f->pk;
	uint16_t h;

	if (!f->packed) {
		STORE(f->split->desc[e->id].inflight, 0);
		f->counter--;
		return;
	}
	h = e->id < f->num ? f->id_head[e->id] : NO_ENTRY;
	if (h >= f->desc_num)
		return; /* not recorded at pop (logged there) */
	STORE(p->desc[h].inflight, 0);
	f->id_head[e->id] = NO_ENTRY;
	f->counter--;
	if (f->avail_pos < e->ndescs) {
		f->avail_pos = (uint16_t)(f->avail_pos + f->num);
		f->avail_wrap = !f->avail_wrap;
	}
	f->avail_pos = (uint16_t)(f->avail_pos - e->ndescs);
	f->free_head = h;
	STORE(p->old_free_head, h);
	if (f->batch_n) {
		f->next[f->pending_tail] = h;
		STORE(p->desc[f->pending_tail].next, h);
	} else {
		STORE(p->free_head, h);
	}
}

/* "When supplying used buffers to the driver", steps 1-4, before the batch
 * is published: the chain goes on the list that starts at free_head and
 * joins the free list at old_free_head, so a rollback to old_free_head
 * keeps it in flight and a commit frees it. */
void vu_inflight_on_push(void *ctx, const struct vd_vq_elem *e)
{
	struct vu_vring *vr = ctx;
	struct vu_inflight_ring *f = &vr->inflight;

	if (!f->packed) {
		struct vd_inflight_split *s = f->split;

		s->desc[e->id].next = s->last_batch_head;
		STORE(s->last_batch_head, e->id);
		if (f->batch_n < f->num)
			f->batch[f->batch_n++] = e->id;
		return;
	}

	struct vd_inflight_packed *p = f->pk;
	uint16_t h = e->id < f->num ? f->id_head[e->id] : NO_ENTRY;
	uint16_t link;

	if (h >= f->desc_num || f->batch_n >= f->num)
		return; /* not recorded at pop (logged there) */
	f->id_head[e->id] = NO_ENTRY;
	link = f->batch_n ? f->pending_head : f->free_head;
	f->next[f->last[h]] = link;
	STORE(p->desc[f->last[h]].next, link);
	if (!f->batch_n)
		f->pending_tail = f->last[h];
	f->pending_head = h;
	f->batch[f->batch_n++] = h;
	STORE(p->free_head, h);
	/* The used position moves before the flags store that publishes
	 * the batch, so a crash in between is rolled back on reconnect. */
	f->used_pos = (uint16_t)(f->used_pos + e->ndescs);
	if (f->used_pos >= f->num) {
		f->used_pos = (uint16_t)(f->used_pos - f->num);
		f->used_wrap = !f->used_wrap;
	}
	STORE(p->used_wrap_counter, f->used_wrap);
	STORE(p->used_idx, f->used_pos);
}

/* The batch is visible to the driver: its entries are no longer in flight. */
void vu_inflight_on_publish(void *ctx, uint16_t used_idx, bool used_wrap)
{
	struct vu_vring *vr = ctx;
	struct vu_inflight_ring *f = &vr->inflight;

	if (!f->packed) {
		struct vd_inflight_split *s = f->split;

		for (unsigned k = 0; k < f->batch_n; k++)
			STORE(s->desc[f->batch[k]].inflight, 0);
		f->batch_n = 0;
		STORE(s->used_idx, used_idx);
		return;
	}

	struct vd_inflight_packed *p = f->pk;

	for (unsigned k = 0; k < f->batch_n; k++)
		STORE(p->desc[f->batch[k]].inflight, 0);
	if (f->batch_n)
		f->free_head = f->pending_head;
	f->batch_n = 0;
	f->used_pos = used_idx;
	f->used_wrap = used_wrap;
	STORE(p->old_free_head, f->free_head);
	STORE(p->old_used_wrap_counter, used_wrap);
	STORE(p->old_used_idx, used_idx);
}
