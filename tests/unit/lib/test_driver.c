/* Test guest memory (memfd between canaries and guard pages) and a virtio
 * driver written from the spec's driver rules, sharing no code with the
 * core's device side. Test-only; aborts on setup failure. */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test_driver.h"

#define PAGE 4096u

static void die(const char *what)
{
	fprintf(stderr, "test_driver: %s: %s\n", what, strerror(errno));
	abort();
}

/* ------------------------------------------------------------ memory */

struct td_mem {
	struct vd_mem *vd;
	int fd;
	uint8_t *map; /* guard, canary, memory, canary, guard */
	size_t map_len;
	uint8_t *base; /* host address of TD_GPA_BASE */
	size_t size;
	size_t brk;
	unsigned nregions;
	uint64_t chunk; /* bytes per region except the last */
};

struct td_mem *td_mem_new(size_t size, unsigned nregions)
{
	struct td_mem *m = calloc(1, sizeof(*m));
	struct vd_mem_region *r;
	uint8_t *lo, *hi;

	if (!m)
		die("calloc");
	size = (size + PAGE - 1) & ~(size_t)(PAGE - 1);
	if (size == 0 || nregions == 0 || size / nregions < 64) {
		errno = EINVAL;
		die("td_mem_new size/nregions");
	}
	m->size = size;
	m->nregions = nregions;
	m->chunk = (size / nregions) & ~(uint64_t)63;
	m->fd = memfd_create("td_mem", MFD_CLOEXEC);
	if (m->fd < 0 || ftruncate(m->fd, (off_t)size) < 0)
		die("memfd");
	m->map_len = 2 * PAGE + 2 * TD_CANARY_LEN + size;
	m->map = mmap(NULL, m->map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		      -1, 0);
	if (m->map == MAP_FAILED)
		die("mmap reserve");
	lo = m->map + PAGE;
	m->base = lo + TD_CANARY_LEN;
	hi = m->base + size;
	if (mmap(lo, TD_CANARY_LEN, PROT_READ | PROT_WRITE,
		 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1,
		 0) == MAP_FAILED ||
	    mmap(hi, TD_CANARY_LEN, PROT_READ | PROT_WRITE,
		 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1,
		 0) == MAP_FAILED ||
	    mmap(m->base, size, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_SHARED,
		 m->fd, 0) == MAP_FAILED)
		die("mmap memory");
	memset(lo, TD_CANARY_BYTE, TD_CANARY_LEN);
	memset(hi, TD_CANARY_BYTE, TD_CANARY_LEN);

	r = calloc(nregions, sizeof(*r));
	if (!r)
		die("calloc");
	for (unsigned i = 0; i < nregions; i++) {
		uint64_t off = i * m->chunk;

		r[i].gpa = TD_GPA_BASE + off;
		r[i].size = i + 1 < nregions ? m->chunk : size - off;
		r[i].hva = m->base + off;
		r[i].uaddr = 0x7e0000000000ULL + off; /* a frontend's view */
		r[i].fd = -1;
	}
	m->vd = vd_mem_new_table(8);
	if (!m->vd || vd_mem_set_regions(m->vd, r, nregions) != 0)
		die("vd_mem");
	free(r);
	return m;
}

void td_mem_free(struct td_mem *m)
{
	if (!m)
		return;
	vd_mem_free(m->vd);
	munmap(m->map, m->map_len);
	close(m->fd);
	free(m);
}

struct vd_mem *td_mem_vd(struct td_mem *m)
{
	return m->vd;
}

void *td_mem_hva(struct td_mem *m, uint64_t gpa)
{
	if (gpa < TD_GPA_BASE || gpa - TD_GPA_BASE >= m->size)
		return NULL;
	return m->base + (gpa - TD_GPA_BASE);
}

uint64_t td_mem_alloc(struct td_mem *m, size_t size, size_t align)
{
	size_t at;

	if (!align || (align & (align - 1)))
		return 0;
	at = (m->brk + align - 1) & ~(align - 1);
	if (at > m->size || size > m->size - at)
		return 0;
	m->brk = at + size;
	memset(m->base + at, 0, size);
	return TD_GPA_BASE + at;
}

size_t td_mem_size(const struct td_mem *m)
{
	return m->size;
}

int td_mem_fd(const struct td_mem *m)
{
	return m->fd;
}

unsigned td_mem_nregions(const struct td_mem *m)
{
	return m->nregions;
}

uint64_t td_mem_region_gpa(const struct td_mem *m, unsigned i)
{
	return TD_GPA_BASE + (uint64_t)i * m->chunk;
}

bool td_mem_canary_ok(const struct td_mem *m)
{
	const uint8_t *lo = m->base - TD_CANARY_LEN, *hi = m->base + m->size;

	for (size_t i = 0; i < TD_CANARY_LEN; i++)
		if (lo[i] != TD_CANARY_BYTE || hi[i] != TD_CANARY_BYTE)
			return false;
	return true;
}

bool td_mem_contains_hva(const struct td_mem *m, const void *base, size_t len)
{
	uintptr_t p = (uintptr_t)base, b = (uintptr_t)m->base;

	return p >= b && p - b <= m->size && len <= m->size - (p - b);
}

uint8_t td_pattern(uint32_t seed, size_t i)
{
	uint32_t v = seed * 2654435761u ^ (uint32_t)i * 2246822519u;

	return (uint8_t)(v >> 24 ^ v >> 7 ^ v);
}

void td_mem_fill(struct td_mem *m, uint64_t gpa, size_t len, uint32_t seed)
{
	uint8_t *p = td_mem_hva(m, gpa);

	for (size_t i = 0; i < len; i++)
		p[i] = td_pattern(seed, i);
}

bool td_mem_check(struct td_mem *m, uint64_t gpa, size_t len, uint32_t seed)
{
	const uint8_t *p = td_mem_hva(m, gpa);

	if (!p || !td_mem_contains_hva(m, p, len))
		return false;
	for (size_t i = 0; i < len; i++)
		if (p[i] != td_pattern(seed, i))
			return false;
	return true;
}

/* ------------------------------------------------------------ driver */

/* Ring fields shared with the device: atomics, as the spec's barriers. */
#define LOAD_ACQ(p)	__atomic_load_n((p), __ATOMIC_ACQUIRE)
#define LOAD(p)		__atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define STORE(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define MB()		__atomic_thread_fence(__ATOMIC_SEQ_CST)

#define P_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define P_USED	(1u << VRING_PACKED_DESC_F_USED)

struct td_id {
	void *token;
	uint16_t ndescs; /* descriptors (ring slots) the buffer took */
	bool busy;
};

struct td_vq {
	struct td_mem *m;
	enum vd_vq_layout layout;
	uint16_t num;
	bool event_idx, indirect;
	uint64_t desc_gpa, driver_gpa, device_gpa;
	void *desc, *driver, *device;
	uint64_t *ind_gpa; /* per id: its indirect table */
	struct td_id *ids;
	unsigned num_free; /* free descriptors */
	unsigned inflight;
	bool cb_enabled;

	/* split */
	uint16_t *next; /* driver's own free-list links (never read back) */
	uint16_t free_head;
	uint16_t avail_idx, num_added, last_used;
	uint16_t avail_flags;

	/* packed */
	uint16_t next_avail, used_pos;
	bool avail_wrap, used_wrap;
	uint16_t *free_ids;
	unsigned n_free_ids;
	uint16_t kick_pos; /* position at the last kick check */
	bool kick_wrap;
};

struct td_vq *td_vq_new(struct td_mem *m, enum vd_vq_layout layout,
			uint16_t num, bool event_idx, bool indirect)
{
	struct td_vq *q = calloc(1, sizeof(*q));
	size_t dl, drl, dvl;

	if (!q || num == 0)
		die("td_vq_new");
	q->m = m;
	q->layout = layout;
	q->num = num;
	q->event_idx = event_idx;
	q->indirect = indirect;
	q->cb_enabled = true;
	vd_vq_ring_sizes(layout, num, &dl, &drl, &dvl);
	/* The spec's minimum alignments (§2.7, §2.8.10.1), nothing more. */
	q->desc_gpa = td_mem_alloc(m, dl, 16);
	q->driver_gpa = td_mem_alloc(m, drl, layout == VD_VQ_SPLIT ? 2 : 4);
	q->device_gpa = td_mem_alloc(m, dvl, 4);
	if (!q->desc_gpa || !q->driver_gpa || !q->device_gpa)
		die("td_vq_new: test memory too small for rings");
	q->desc = td_mem_hva(m, q->desc_gpa);
	q->driver = td_mem_hva(m, q->driver_gpa);
	q->device = td_mem_hva(m, q->device_gpa);
	q->ids = calloc(num, sizeof(*q->ids));
	q->ind_gpa = calloc(num, sizeof(*q->ind_gpa));
	q->next = calloc(num, sizeof(*q->next));
	q->free_ids = calloc(num, sizeof(*q->free_ids));
	if (!q->ids || !q->ind_gpa || !q->next || !q->free_ids)
		die("calloc");
	if (indirect) {
		for (unsigned i = 0; i < num; i++) {
			q->ind_gpa[i] =
				td_mem_alloc(m, TD_INDIRECT_MAX * 16, 16);
			if (!q->ind_gpa[i])
				die("td_vq_new: no memory for tables");
		}
	}
	q->num_free = num;
	for (unsigned i = 0; i < num; i++) {
		q->next[i] = (uint16_t)(i + 1);
		q->free_ids[i] = (uint16_t)(num - 1 - i);
	}
	q->n_free_ids = num;
	q->avail_wrap = q->used_wrap = q->kick_wrap = true;
	return q;
}

void td_vq_free(struct td_vq *q)
{
	if (!q)
		return;
	free(q->ids);
	free(q->ind_gpa);
	free(q->next);
	free(q->free_ids);
	free(q);
}

void td_vq_fill_config(struct td_vq *q, struct vd_vq_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->layout = q->layout;
	cfg->num = q->num;
	cfg->event_idx = q->event_idx;
	cfg->indirect = q->indirect;
	cfg->desc = q->desc;
	cfg->driver = q->driver;
	cfg->device = q->device;
	cfg->device_gpa = q->device_gpa;
	cfg->desc_gpa = q->desc_gpa;
	cfg->avail_idx = 0;
	cfg->avail_wrap = true;
	cfg->used_idx = 0;
	cfg->used_wrap = true;
	cfg->used_idx_valid = true;
	cfg->max_iov = 64;
}

/* Position in the 2*num cycle of (position, wrap counter) pairs. */
static uint32_t lap_pos(uint16_t num, uint16_t pos, bool wrap)
{
	return pos + (wrap ? 0u : num);
}

static bool in_window(uint16_t num, uint32_t ev, uint32_t old, uint32_t new)
{
	uint32_t n2 = 2u * num;

	return (ev + n2 - old) % n2 < (new + n2 - old) % n2;
}

bool td_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx)
{
	/* Entries old..new-1 were published: notify if event_idx is one of
	 * them (all arithmetic mod 2^16). */
	return (uint16_t)(event_idx - old_idx) < (uint16_t)(new_idx - old_idx);
}

static int split_add(struct td_vq *q, const struct td_buf *bufs, unsigned n,
		     bool use_indirect, void *token)
{
	struct vring_desc *desc = q->desc;
	struct vring_avail *avail = q->driver;
	unsigned need = use_indirect ? 1 : n;
	uint16_t head = q->free_head, i = head;

	if (q->num_free < need)
		return -ENOSPC;
	if (use_indirect) {
		struct vring_desc *t = td_mem_hva(q->m, q->ind_gpa[head]);

		for (unsigned k = 0; k < n; k++) {
			t[k].addr = htole64(bufs[k].gpa);
			t[k].len = htole32(bufs[k].len);
			t[k].flags = htole16(
				(bufs[k].write ? VRING_DESC_F_WRITE : 0) |
				(k + 1 < n ? VRING_DESC_F_NEXT : 0));
			t[k].next = htole16((uint16_t)(k + 1));
		}
		desc[head].addr = htole64(q->ind_gpa[head]);
		desc[head].len = htole32(n * 16);
		desc[head].flags = htole16(VRING_DESC_F_INDIRECT);
		desc[head].next = 0;
		q->free_head = q->next[head];
	} else {
		for (unsigned k = 0; k < n; k++) {
			desc[i].addr = htole64(bufs[k].gpa);
			desc[i].len = htole32(bufs[k].len);
			desc[i].flags = htole16(
				(bufs[k].write ? VRING_DESC_F_WRITE : 0) |
				(k + 1 < n ? VRING_DESC_F_NEXT : 0));
			desc[i].next = htole16(q->next[i]);
			i = q->next[i];
		}
		q->free_head = i;
	}
	q->num_free -= need;
	q->ids[head] = (struct td_id){token, (uint16_t)need, true};
	avail->ring[q->avail_idx % q->num] = htole16(head);
	/* §2.7.13.3.1: the ring entry before the index that exposes it. */
	q->avail_idx++;
	STORE_REL(&avail->idx, htole16(q->avail_idx));
	q->num_added++;
	return 0;
}

static int packed_add(struct td_vq *q, const struct td_buf *bufs, unsigned n,
		      bool use_indirect, void *token)
{
	struct vring_packed_desc *ring = q->desc;
	unsigned need = use_indirect ? 1 : n;
	uint16_t id, head = q->next_avail, head_flags = 0;

	if (q->num_free < need || q->n_free_ids == 0)
		return -ENOSPC;
	id = q->free_ids[--q->n_free_ids];
	for (unsigned k = 0; k < need; k++) {
		struct vring_packed_desc *d = &ring[q->next_avail];
		uint16_t f = q->avail_wrap ? P_AVAIL : P_USED;

		if (use_indirect) {
			struct vring_packed_desc *t =
				td_mem_hva(q->m, q->ind_gpa[id]);

			for (unsigned j = 0; j < n; j++) {
				t[j].addr = htole64(bufs[j].gpa);
				t[j].len = htole32(bufs[j].len);
				t[j].id = 0; /* reserved in tables (§2.8.7) */
				t[j].flags = htole16(
					bufs[j].write ? VRING_DESC_F_WRITE : 0);
			}
			d->addr = htole64(q->ind_gpa[id]);
			d->len = htole32(n * 16);
			f |= VRING_DESC_F_INDIRECT;
		} else {
			d->addr = htole64(bufs[k].gpa);
			d->len = htole32(bufs[k].len);
			if (bufs[k].write)
				f |= VRING_DESC_F_WRITE;
			if (k + 1 < need)
				f |= VRING_DESC_F_NEXT;
		}
		/* §2.8.6: the buffer id is in the last descriptor; put a
		 * wrong one in the others so a device reading them shows. */
		d->id = htole16(k + 1 == need ? id : (uint16_t)~id);
		if (k == 0)
			head_flags = f;
		else
			STORE(&d->flags, htole16(f));
		if (++q->next_avail == q->num) {
			q->next_avail = 0;
			q->avail_wrap = !q->avail_wrap;
		}
	}
	q->num_free -= need;
	q->ids[id] = (struct td_id){token, (uint16_t)need, true};
	/* §2.8.6: the head is made available last. */
	STORE_REL(&ring[head].flags, htole16(head_flags));
	return 0;
}

int td_vq_add(struct td_vq *q, const struct td_buf *bufs, unsigned n,
	      bool use_indirect, void *token)
{
	int rc;

	if (n == 0 || (use_indirect && (!q->indirect || n > TD_INDIRECT_MAX)) ||
	    (!use_indirect && n > q->num))
		return -EINVAL;
	rc = q->layout == VD_VQ_SPLIT
		     ? split_add(q, bufs, n, use_indirect, token)
		     : packed_add(q, bufs, n, use_indirect, token);
	if (rc == 0)
		q->inflight++;
	return rc;
}

static int split_get_used(struct td_vq *q, void **token, uint32_t *len)
{
	struct vring_used *used = q->device;
	struct vring_used_elem e;
	uint16_t i;
	uint32_t id;

	if (le16toh(LOAD_ACQ(&used->idx)) == q->last_used)
		return 0;
	e = used->ring[q->last_used % q->num];
	id = le32toh(e.id);
	if (id >= q->num || !q->ids[id].busy)
		return -EPROTO;
	/* Free the chain through our own links, never the guest table. */
	i = (uint16_t)id;
	for (unsigned k = 1; k < q->ids[id].ndescs; k++)
		i = q->next[i];
	q->next[i] = q->free_head;
	q->free_head = (uint16_t)id;
	q->num_free += q->ids[id].ndescs;
	q->ids[id].busy = false;
	*token = q->ids[id].token;
	*len = le32toh(e.len);
	q->last_used++;
	if (q->event_idx && q->cb_enabled) {
		/* Linux's virtqueue_get_buf: used_event follows last_used. */
		STORE(&((struct vring_avail *)q->driver)->ring[q->num],
		      htole16(q->last_used));
		MB();
	}
	return 1;
}

static int packed_get_used(struct td_vq *q, void **token, uint32_t *len)
{
	struct vring_packed_desc *d =
		&((struct vring_packed_desc *)q->desc)[q->used_pos];
	uint16_t flags = le16toh(LOAD_ACQ(&d->flags));
	bool avail = flags & P_AVAIL, used = flags & P_USED;
	uint16_t id;

	/* §2.8.1: used when AVAIL == USED == the driver's used wrap count. */
	if (avail != used || used != q->used_wrap)
		return 0;
	id = le16toh(d->id);
	if (id >= q->num || !q->ids[id].busy)
		return -EPROTO;
	*token = q->ids[id].token;
	*len = le32toh(d->len);
	q->used_pos += q->ids[id].ndescs;
	if (q->used_pos >= q->num) {
		q->used_pos -= q->num;
		q->used_wrap = !q->used_wrap;
	}
	q->num_free += q->ids[id].ndescs;
	q->ids[id].busy = false;
	q->free_ids[q->n_free_ids++] = id;
	if (q->event_idx && q->cb_enabled) {
		struct vring_packed_desc_event *ev = q->driver;

		STORE(&ev->off_wrap,
		      htole16(q->used_pos |
			      (q->used_wrap << VRING_PACKED_EVENT_F_WRAP_CTR)));
		MB();
	}
	return 1;
}

int td_vq_get_used(struct td_vq *q, void **token, uint32_t *len)
{
	int rc = q->layout == VD_VQ_SPLIT ? split_get_used(q, token, len)
					  : packed_get_used(q, token, len);

	if (rc == 1)
		q->inflight--;
	return rc;
}

bool td_vq_kick_needed(struct td_vq *q)
{
	/* §2.7.13.4 / §2.8.21: expose the new entries before reading the
	 * device's suppression state. */
	MB();
	if (q->layout == VD_VQ_SPLIT) {
		struct vring_used *used = q->device;
		uint16_t new = q->avail_idx, old = new - q->num_added;

		q->num_added = 0;
		if (q->event_idx)
			return td_need_event(td_vq_avail_event(q), new, old);
		return !(le16toh(LOAD(&used->flags)) & VRING_USED_F_NO_NOTIFY);
	} else {
		struct vring_packed_desc_event *ev = q->device;
		uint16_t flags = le16toh(LOAD(&ev->flags)) & 3;
		uint16_t ow = le16toh(LOAD(&ev->off_wrap));
		uint32_t old = lap_pos(q->num, q->kick_pos, q->kick_wrap);
		uint32_t new = lap_pos(q->num, q->next_avail, q->avail_wrap);

		q->kick_pos = q->next_avail;
		q->kick_wrap = q->avail_wrap;
		if (flags == VRING_PACKED_EVENT_FLAG_DESC && q->event_idx)
			return in_window(q->num,
					 lap_pos(q->num, ow & 0x7fff, ow >> 15),
					 old, new);
		return flags != VRING_PACKED_EVENT_FLAG_DISABLE;
	}
}

unsigned td_vq_num_free(struct td_vq *q)
{
	return q->num_free;
}

unsigned td_vq_inflight(struct td_vq *q)
{
	return q->inflight;
}

void td_vq_enable_cb(struct td_vq *q)
{
	q->cb_enabled = true;
	if (q->layout == VD_VQ_SPLIT) {
		if (q->event_idx) {
			td_vq_set_used_event(q, q->last_used);
		} else {
			q->avail_flags &= ~VRING_AVAIL_F_NO_INTERRUPT;
			td_vq_set_avail_flags(q, q->avail_flags);
		}
	} else if (q->event_idx) {
		td_vq_set_driver_event(q, VRING_PACKED_EVENT_FLAG_DESC,
				       q->used_pos, q->used_wrap);
	} else {
		td_vq_set_driver_event(q, VRING_PACKED_EVENT_FLAG_ENABLE, 0,
				       false);
	}
	MB();
}

void td_vq_disable_cb(struct td_vq *q)
{
	q->cb_enabled = false;
	if (q->layout == VD_VQ_SPLIT) {
		/* §2.7.10: with EVENT_IDX the device ignores NO_INTERRUPT;
		 * an event just behind last_used is never crossed soon. */
		if (q->event_idx) {
			td_vq_set_used_event(q, (uint16_t)(q->last_used - 1));
		} else {
			q->avail_flags |= VRING_AVAIL_F_NO_INTERRUPT;
			td_vq_set_avail_flags(q, q->avail_flags);
		}
	} else {
		td_vq_set_driver_event(q, VRING_PACKED_EVENT_FLAG_DISABLE, 0,
				       false);
	}
}

/* ------------------------------------------------------------ raw access */

uint16_t td_vq_num(const struct td_vq *q)
{
	return q->num;
}

enum vd_vq_layout td_vq_layout(const struct td_vq *q)
{
	return q->layout;
}

uint64_t td_vq_desc_gpa(const struct td_vq *q)
{
	return q->desc_gpa;
}

uint64_t td_vq_driver_gpa(const struct td_vq *q)
{
	return q->driver_gpa;
}

uint64_t td_vq_device_gpa(const struct td_vq *q)
{
	return q->device_gpa;
}

struct vring_desc *td_vq_split_desc(struct td_vq *q)
{
	return q->desc;
}

struct vring_avail *td_vq_split_avail(struct td_vq *q)
{
	return q->driver;
}

struct vring_used *td_vq_split_used(struct td_vq *q)
{
	return q->device;
}

void td_vq_split_publish_raw(struct td_vq *q, uint16_t head)
{
	struct vring_avail *avail = q->driver;

	avail->ring[q->avail_idx % q->num] = htole16(head);
	q->avail_idx++;
	STORE_REL(&avail->idx, htole16(q->avail_idx));
}

void td_vq_split_set_avail_idx(struct td_vq *q, uint16_t idx)
{
	q->avail_idx = idx;
	STORE_REL(&((struct vring_avail *)q->driver)->idx, htole16(idx));
}

void td_vq_split_set_start(struct td_vq *q, uint16_t idx)
{
	q->avail_idx = q->last_used = idx;
	q->num_added = 0;
	STORE_REL(&((struct vring_avail *)q->driver)->idx, htole16(idx));
	STORE_REL(&((struct vring_used *)q->device)->idx, htole16(idx));
	if (q->event_idx && q->cb_enabled)
		td_vq_set_used_event(q, idx);
}

uint16_t td_vq_split_avail_idx(const struct td_vq *q)
{
	return q->avail_idx;
}

void td_vq_set_used_event(struct td_vq *q, uint16_t used_event)
{
	STORE(&((struct vring_avail *)q->driver)->ring[q->num],
	      htole16(used_event));
	MB();
}

uint16_t td_vq_avail_event(struct td_vq *q)
{
	struct vring_used *used = q->device;

	/* avail_event sits right after the used ring's num entries. */
	return le16toh(LOAD((uint16_t *)&used->ring[q->num]));
}

uint16_t td_vq_used_flags(struct td_vq *q)
{
	return le16toh(LOAD(&((struct vring_used *)q->device)->flags));
}

void td_vq_set_avail_flags(struct td_vq *q, uint16_t flags)
{
	q->avail_flags = flags;
	STORE(&((struct vring_avail *)q->driver)->flags, htole16(flags));
	MB();
}

uint16_t td_vq_split_used_idx(struct td_vq *q)
{
	return le16toh(LOAD_ACQ(&((struct vring_used *)q->device)->idx));
}

struct vring_packed_desc *td_vq_packed_desc(struct td_vq *q)
{
	return q->desc;
}

struct vring_packed_desc_event *td_vq_packed_driver_event(struct td_vq *q)
{
	return q->driver;
}

struct vring_packed_desc_event *td_vq_packed_device_event(struct td_vq *q)
{
	return q->device;
}

void td_vq_packed_publish_raw(struct td_vq *q,
			      const struct vring_packed_desc *descs, unsigned n)
{
	struct vring_packed_desc *ring = q->desc;
	uint16_t head = q->next_avail, head_flags = 0;

	for (unsigned k = 0; k < n; k++) {
		struct vring_packed_desc *d = &ring[q->next_avail];
		uint16_t f = (uint16_t)(le16toh(descs[k].flags) &
					~(P_AVAIL | P_USED));

		f |= q->avail_wrap ? P_AVAIL : P_USED;
		d->addr = descs[k].addr;
		d->len = descs[k].len;
		d->id = descs[k].id;
		if (k == 0)
			head_flags = f;
		else
			STORE(&d->flags, htole16(f));
		if (++q->next_avail == q->num) {
			q->next_avail = 0;
			q->avail_wrap = !q->avail_wrap;
		}
	}
	if (n)
		STORE_REL(&ring[head].flags, htole16(head_flags));
}

void td_vq_set_driver_event(struct td_vq *q, uint16_t flags, uint16_t off,
			    bool wrap)
{
	struct vring_packed_desc_event *ev = q->driver;

	STORE(&ev->off_wrap,
	      htole16((uint16_t)(off | wrap << VRING_PACKED_EVENT_F_WRAP_CTR)));
	STORE(&ev->flags, htole16(flags));
	MB();
}

void td_vq_driver_pos(const struct td_vq *q, uint16_t *next_avail,
		      bool *avail_wrap, uint16_t *last_used, bool *used_wrap)
{
	if (q->layout == VD_VQ_SPLIT) {
		*next_avail = q->avail_idx;
		*avail_wrap = false;
		*last_used = q->last_used;
		*used_wrap = false;
	} else {
		*next_avail = q->next_avail;
		*avail_wrap = q->avail_wrap;
		*last_used = q->used_pos;
		*used_wrap = q->used_wrap;
	}
}
