/* Guest memory: guest-physical ranges to host iovecs, over a region table
 * published as immutable snapshots (QSBR grace before anything is freed) or
 * a mapper back end. Never yields a pointer outside a region. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "virtiod/guest_mem.h"

/* A table generation: sorted by gpa, non-overlapping, never modified once
 * published. */
struct mem_snap {
	unsigned n;
	struct vd_mem_region r[];
};

/* One per queue thread; own cache line so readers do not share one. */
struct reader_slot {
	/* 0: outside a read section; else the grace epoch read at enter. */
	_Atomic uint64_t epoch;
	atomic_bool used;
} __attribute__((aligned(64)));

struct vd_mem {
	/* Mapper back end (ops != NULL) or region table. Immutable. */
	const struct vd_mem_ops *ops;
	void *ctx;

	/* Region table. snap: read by every reader, swapped by the writer. */
	_Atomic(struct mem_snap *) snap;
	/* Bumped by the writer after each swap; readers record it at enter. */
	_Atomic uint64_t epoch;
	atomic_bool grace_pending;
	pthread_mutex_t wlock; /* writers (control thread) */
	unsigned max_readers;
	struct reader_slot *slots;
};

static struct mem_snap *snap_alloc(unsigned n)
{
	struct mem_snap *s = calloc(
		1, sizeof(*s) + (size_t)n * sizeof(struct vd_mem_region));

	if (s)
		s->n = n;
	return s;
}

struct vd_mem *vd_mem_new_table(unsigned max_readers)
{
	struct vd_mem *mem = calloc(1, sizeof(*mem));
	struct mem_snap *empty = snap_alloc(0);

	if (!mem || !empty)
		goto fail;
	if (max_readers) {
		size_t len = (size_t)max_readers * sizeof(struct reader_slot);

		mem->slots = aligned_alloc(64, len);
		if (!mem->slots)
			goto fail;
		memset(mem->slots, 0, len);
	}
	mem->max_readers = max_readers;
	atomic_init(&mem->snap, empty);
	atomic_init(&mem->epoch, 1);
	atomic_init(&mem->grace_pending, false);
	pthread_mutex_init(&mem->wlock, NULL);
	return mem;
fail:
	free(empty);
	if (mem)
		free(mem->slots);
	free(mem);
	return NULL;
}

struct vd_mem *vd_mem_new_mapper(const struct vd_mem_ops *ops, void *ctx)
{
	struct vd_mem *mem;

	if (!ops || !ops->translate)
		return NULL;
	mem = calloc(1, sizeof(*mem));
	if (!mem)
		return NULL;
	mem->ops = ops;
	mem->ctx = ctx;
	atomic_init(&mem->snap, NULL);
	pthread_mutex_init(&mem->wlock, NULL);
	return mem;
}

static void release_regions(struct mem_snap *s)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->r[i].release)
			s->r[i].release(&s->r[i]);
}

void vd_mem_free(struct vd_mem *mem)
{
	struct mem_snap *s;

	if (!mem)
		return;
	s = atomic_load(&mem->snap);
	if (s) {
		release_regions(s);
		free(s);
	}
	pthread_mutex_destroy(&mem->wlock);
	free(mem->slots);
	free(mem);
}

/* ------------------------------------------------------------ writers */

int vd_mem_region_check(const struct vd_mem_region *r)
{
	uint64_t end;

	if (!r || r->size == 0 || !r->hva)
		return -EINVAL;
	if (__builtin_add_overflow(r->gpa, r->size, &end) ||
	    __builtin_add_overflow(r->uaddr, r->size, &end) ||
	    __builtin_add_overflow((uintptr_t)r->hva, r->size, &end))
		return -EINVAL;
	return 0;
}

static bool overlaps(const struct vd_mem_region *a,
		     const struct vd_mem_region *b)
{
	return a->gpa < b->gpa + b->size && b->gpa < a->gpa + a->size;
}

static int cmp_gpa(const void *a, const void *b)
{
	const struct vd_mem_region *x = a, *y = b;

	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

/* Wait until every registered reader has left or re-entered since the swap
 * that preceded this call, so nothing still uses the old snapshot. */
static void grace_wait(struct vd_mem *mem)
{
	uint64_t target = atomic_fetch_add(&mem->epoch, 1) + 1;
	const struct timespec nap = {.tv_nsec = 50 * 1000};

	atomic_store(&mem->grace_pending, true);
	/* Pairs with the fence in vd_mem_reader_enter: either the reader's
	 * epoch store is seen here, or its snapshot load sees the new one. */
	atomic_thread_fence(memory_order_seq_cst);
	for (unsigned i = 0; i < mem->max_readers; i++) {
		struct reader_slot *s = &mem->slots[i];

		for (;;) {
			uint64_t e = atomic_load_explicit(&s->epoch,
							  memory_order_acquire);

			if (e == 0 || e >= target)
				break;
			nanosleep(&nap, NULL);
		}
	}
	atomic_store(&mem->grace_pending, false);
}

/* Publish `next`, wait out readers, then release `gone` (regions no longer
 * in the table) and free the old snapshot. */
static void publish(struct vd_mem *mem, struct mem_snap *next, const bool *gone)
{
	struct mem_snap *old = atomic_exchange(&mem->snap, next);

	grace_wait(mem);
	for (unsigned i = 0; i < old->n; i++)
		if ((!gone || gone[i]) && old->r[i].release)
			old->r[i].release(&old->r[i]);
	free(old);
}

int vd_mem_add_region(struct vd_mem *mem, const struct vd_mem_region *r)
{
	struct mem_snap *cur, *next;
	bool gone[VD_MEM_MAX_REGIONS] = {false};
	unsigned at;
	int rc = vd_mem_region_check(r);

	if (rc || mem->ops)
		return -EINVAL;
	pthread_mutex_lock(&mem->wlock);
	cur = atomic_load(&mem->snap);
	if (cur->n >= VD_MEM_MAX_REGIONS) {
		rc = -ENOSPC;
		goto out;
	}
	for (at = 0; at < cur->n; at++) {
		if (overlaps(&cur->r[at], r)) {
			rc = -EEXIST;
			goto out;
		}
	}
	next = snap_alloc(cur->n + 1);
	if (!next) {
		rc = -ENOMEM;
		goto out;
	}
	for (at = 0; at < cur->n && cur->r[at].gpa < r->gpa; at++)
		;
	memcpy(next->r, cur->r, at * sizeof(*r));
	next->r[at] = *r;
	memcpy(&next->r[at + 1], &cur->r[at], (cur->n - at) * sizeof(*r));
	publish(mem, next, gone);
out:
	pthread_mutex_unlock(&mem->wlock);
	return rc;
}

int vd_mem_remove_region(struct vd_mem *mem, uint64_t gpa, uint64_t size)
{
	struct mem_snap *cur, *next;
	bool gone[VD_MEM_MAX_REGIONS] = {false};
	unsigned i, found;
	int rc = -ENOENT;

	if (mem->ops)
		return -EINVAL;
	pthread_mutex_lock(&mem->wlock);
	cur = atomic_load(&mem->snap);
	for (found = 0; found < cur->n; found++)
		if (cur->r[found].gpa == gpa && cur->r[found].size == size)
			break;
	if (found == cur->n)
		goto out;
	next = snap_alloc(cur->n - 1);
	if (!next) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < cur->n; i++)
		if (i != found)
			next->r[i - (i > found)] = cur->r[i];
	gone[found] = true;
	publish(mem, next, gone);
	rc = 0;
out:
	pthread_mutex_unlock(&mem->wlock);
	return rc;
}

int vd_mem_set_regions(struct vd_mem *mem, const struct vd_mem_region *r,
		       unsigned n)
{
	struct mem_snap *next;

	if (mem->ops || (n && !r))
		return -EINVAL;
	if (n > VD_MEM_MAX_REGIONS)
		return -ENOSPC;
	for (unsigned i = 0; i < n; i++)
		if (vd_mem_region_check(&r[i]))
			return -EINVAL;
	next = snap_alloc(n);
	if (!next)
		return -ENOMEM;
	if (n)
		memcpy(next->r, r, n * sizeof(*r));
	qsort(next->r, n, sizeof(*r), cmp_gpa);
	for (unsigned i = 1; i < n; i++) {
		if (overlaps(&next->r[i - 1], &next->r[i])) {
			free(next);
			return -EEXIST;
		}
	}
	pthread_mutex_lock(&mem->wlock);
	publish(mem, next, NULL);
	pthread_mutex_unlock(&mem->wlock);
	return 0;
}

unsigned vd_mem_region_count(const struct vd_mem *mem)
{
	const struct mem_snap *s = atomic_load_explicit(
		&((struct vd_mem *)mem)->snap, memory_order_acquire);

	return s ? s->n : 0;
}

/* ------------------------------------------------------------ readers */

int vd_mem_reader_register(struct vd_mem *mem)
{
	if (mem->ops)
		return 0; /* a mapper pins per translation; no slots */
	for (unsigned i = 0; i < mem->max_readers; i++) {
		bool expect = false;

		if (atomic_compare_exchange_strong(&mem->slots[i].used, &expect,
						   true)) {
			atomic_store(&mem->slots[i].epoch, 0);
			return (int)i;
		}
	}
	return -ENOSPC;
}

static struct reader_slot *slot_of(struct vd_mem *mem, int slot)
{
	if (mem->ops || slot < 0 || (unsigned)slot >= mem->max_readers)
		return NULL;
	return &mem->slots[slot];
}

void vd_mem_reader_unregister(struct vd_mem *mem, int slot)
{
	struct reader_slot *s = slot_of(mem, slot);

	if (!s)
		return;
	atomic_store_explicit(&s->epoch, 0, memory_order_release);
	atomic_store(&s->used, false);
}

void vd_mem_reader_enter(struct vd_mem *mem, int slot)
{
	struct reader_slot *s = slot_of(mem, slot);

	if (!s)
		return;
	atomic_store_explicit(&s->epoch, atomic_load(&mem->epoch),
			      memory_order_relaxed);
	/* Our epoch must be visible before we load the snapshot (store-load
	 * ordering; pairs with the fence in grace_wait). */
	atomic_thread_fence(memory_order_seq_cst);
}

void vd_mem_reader_leave(struct vd_mem *mem, int slot)
{
	struct reader_slot *s = slot_of(mem, slot);

	if (s)
		atomic_store_explicit(&s->epoch, 0, memory_order_release);
}

bool vd_mem_grace_pending(const struct vd_mem *mem)
{
	if (mem->ops)
		return false;
	return atomic_load_explicit(&((struct vd_mem *)mem)->grace_pending,
				    memory_order_relaxed);
}

/* ------------------------------------------------------------ lookups */

static const struct mem_snap *cur_snap(struct vd_mem *mem)
{
	return atomic_load_explicit(&mem->snap, memory_order_acquire);
}

/* Index of the region holding gpa, or -1. Binary search: the table is
 * sorted and at most VD_MEM_MAX_REGIONS long. */
static int find_region(const struct mem_snap *s, uint64_t gpa)
{
	/* A table always has a snapshot; only a mapper (mem->ops) has none,
	 * and its callers never get here. */
	/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
	unsigned lo = 0, hi = s->n;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (s->r[mid].gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || gpa - s->r[lo - 1].gpa >= s->r[lo - 1].size)
		return -1;
	return (int)lo - 1;
}

/* Everything but a hit on the hint: the mapper, the search, ranges that
 * cross regions, errors. Kept out of line so the hit path stays short. */
static __attribute__((noinline)) int
translate_slow(struct vd_mem *mem, const struct mem_snap *s,
	       struct vd_mem_hint *hint, uint64_t gpa, uint64_t len,
	       enum vd_mem_access access, struct iovec *iov, unsigned max_iov,
	       unsigned *n_iov)
{
	uint64_t end;
	unsigned n = *n_iov;
	int i;

	if (__builtin_add_overflow(gpa, len, &end))
		return -EOVERFLOW;
	if (mem->ops) {
		int rc = mem->ops->translate(mem->ctx, gpa, len, access, iov,
					     max_iov, n_iov);
		if (rc)
			*n_iov = n;
		return rc;
	}
	i = find_region(s, gpa);
	if (i < 0)
		return -EFAULT;
	if (hint)
		hint->region = (unsigned)i;
	for (;;) {
		const struct vd_mem_region *r = &s->r[i];
		uint64_t off = gpa - r->gpa;
		uint64_t chunk = r->size - off < len ? r->size - off : len;

		if (n >= max_iov)
			return -ENOBUFS;
		iov[n].iov_base = (char *)r->hva + off;
		iov[n].iov_len = chunk;
		n++;
		len -= chunk;
		if (!len)
			break;
		gpa += chunk;
		/* It may only go on into a region starting right here. */
		if ((unsigned)++i >= s->n || s->r[i].gpa != gpa)
			return -EFAULT;
	}
	*n_iov = n;
	return 0;
}

int vd_mem_translate_hinted(struct vd_mem *mem, struct vd_mem_hint *hint,
			    uint64_t gpa, uint64_t len,
			    enum vd_mem_access access, struct iovec *iov,
			    unsigned max_iov, unsigned *n_iov)
{
	const struct mem_snap *s = mem->ops ? NULL : cur_snap(mem);

	if (len == 0)
		return 0;
	/* The whole range inside the region of the last hit (then it cannot
	 * wrap 2^64: no region does). */
	if (s && hint && hint->region < s->n) {
		const struct vd_mem_region *r = &s->r[hint->region];
		uint64_t off = gpa - r->gpa;
		unsigned n = *n_iov;

		if (gpa >= r->gpa && off < r->size && len <= r->size - off &&
		    n < max_iov) {
			iov[n].iov_base = (char *)r->hva + off;
			iov[n].iov_len = len;
			*n_iov = n + 1;
			return 0;
		}
	}
	return translate_slow(mem, s, hint, gpa, len, access, iov, max_iov,
			      n_iov);
}

int vd_mem_translate(struct vd_mem *mem, uint64_t gpa, uint64_t len,
		     enum vd_mem_access access, struct iovec *iov,
		     unsigned max_iov, unsigned *n_iov)
{
	return vd_mem_translate_hinted(mem, NULL, gpa, len, access, iov,
				       max_iov, n_iov);
}

unsigned vd_mem_max_pieces(const struct vd_mem *mem, uint64_t len)
{
	uint64_t u = mem->ops ? mem->ops->split_unit : 0;

	if (!u || len <= 1)
		return 1;
	/* The worst placement: the range's first byte just below a split
	 * point, so len - 1 more bytes cross (len - 2) / u + 1 more. */
	return (unsigned)((len - 2) / u + 2);
}

void vd_mem_release(struct vd_mem *mem, const struct iovec *iov, unsigned n)
{
	if (mem->ops && mem->ops->release && n)
		mem->ops->release(mem->ctx, iov, n);
}

void *vd_mem_map_contig(struct vd_mem *mem, uint64_t gpa, uint64_t len,
			enum vd_mem_access access)
{
	const struct mem_snap *s;
	uint64_t end, off;
	int i;

	if (len == 0 || __builtin_add_overflow(gpa, len, &end))
		return NULL;
	if (mem->ops)
		return mem->ops->map_contig
			       ? mem->ops->map_contig(mem->ctx, gpa, len,
						      access)
			       : NULL;
	s = cur_snap(mem);
	i = find_region(s, gpa);
	if (i < 0)
		return NULL;
	off = gpa - s->r[i].gpa;
	if (len > s->r[i].size - off)
		return NULL;
	return (char *)s->r[i].hva + off;
}

void vd_mem_unmap_contig(struct vd_mem *mem, void *hva, uint64_t len)
{
	if (mem->ops && mem->ops->unmap_contig && hva)
		mem->ops->unmap_contig(mem->ctx, hva, len);
}

void *vd_mem_uaddr_to_hva(struct vd_mem *mem, uint64_t uaddr, uint64_t len,
			  uint64_t *gpa)
{
	const struct mem_snap *s;

	if (mem->ops)
		return NULL;
	s = cur_snap(mem);
	/* Control path (ring setup): a linear scan is fine. */
	for (unsigned i = 0; i < s->n; i++) {
		const struct vd_mem_region *r = &s->r[i];
		uint64_t off = uaddr - r->uaddr;

		if (uaddr < r->uaddr || off >= r->size || len > r->size - off)
			continue;
		if (gpa)
			*gpa = r->gpa + off;
		return (char *)r->hva + off;
	}
	return NULL;
}

/* Copy between guest memory and buf. Pieces shrink when a piece needs more
 * iovecs than the small local array (a mapper with page-sized mappings). */
static int mem_copy(struct vd_mem *mem, uint64_t gpa, void *buf, size_t len,
		    bool to_guest)
{
	struct iovec iov[8];
	size_t piece = len;
	char *p = buf;

	while (len) {
		unsigned n = 0;
		size_t want = piece < len ? piece : len;
		int rc = vd_mem_translate(mem, gpa, want,
					  to_guest ? VD_MEM_WRITE : VD_MEM_READ,
					  iov, 8, &n);

		if (rc == -ENOBUFS && want > 1) {
			piece = want / 2;
			continue;
		}
		if (rc)
			return rc;
		for (unsigned i = 0; i < n; i++) {
			if (to_guest)
				memcpy(iov[i].iov_base, p, iov[i].iov_len);
			else
				memcpy(p, iov[i].iov_base, iov[i].iov_len);
			p += iov[i].iov_len;
		}
		vd_mem_release(mem, iov, n);
		gpa += want;
		len -= want;
	}
	return 0;
}

int vd_mem_read(struct vd_mem *mem, uint64_t gpa, void *buf, size_t len)
{
	return mem_copy(mem, gpa, buf, len, false);
}

int vd_mem_write(struct vd_mem *mem, uint64_t gpa, const void *buf, size_t len)
{
	return mem_copy(mem, gpa, (void *)buf, len, true);
}
