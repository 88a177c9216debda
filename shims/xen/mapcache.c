/* Foreign mapping cache: guest frames mapped 1 MiB at a time, kept in a
 * bounded LRU so that steady-state I/O makes no map hypercall. A mapping in
 * use (pinned between translate and release, or holding a ring) is never
 * unmapped; an address the guest does not own is an error, never touched. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "xen_priv.h"

#define BUCKET_SIZE  (1ULL << VD_XEN_BUCKET_SHIFT)
#define BUCKET_PAGES (BUCKET_SIZE >> VD_XEN_PAGE_SHIFT)
/* Guest-physical addresses beyond 2^52 exist on no machine Xen runs on. */
#define GPA_LIMIT (1ULL << 52)
/* A ring fits one bucket's worth of frames (the largest, a 32768-entry
 * descriptor table, is 512 KiB). */
#define CONTIG_MAX (BUCKET_SIZE - VD_XEN_PAGE_SIZE)
#define NO_KEY	   UINT64_MAX

struct entry {
	uint64_t key; /* bucket index, or NO_KEY: a dedicated ring mapping */
	uint8_t *hva;
	uint32_t npages;
	uint32_t pins;
	uint64_t last_used;
	bool cached; /* findable by key (not yet invalidated) */
	uint64_t valid[BUCKET_PAGES / 64];
};

struct vd_xen_mapcache {
	pthread_mutex_t lock; /* everything below */
	xenforeignmemory_handle *fmem;
	uint32_t domid;
	const char *who;
	unsigned capacity;     /* cached buckets kept when unpinned */
	struct entry **by_key; /* cached entries, sorted by key */
	unsigned n_key, cap_key;
	struct entry **by_hva; /* every live mapping, sorted by hva */
	unsigned n_hva, cap_hva;
	uint64_t tick;
	struct vd_xen_mapcache_stats st;
	struct vd_ratelimit rl;
};

int vd_xen_mapcache_new(xenforeignmemory_handle *fmem, uint32_t domid,
			unsigned buckets, const char *who,
			struct vd_xen_mapcache **out)
{
	struct vd_xen_mapcache *mc = calloc(1, sizeof(*mc));

	if (!mc)
		return -ENOMEM;
	pthread_mutex_init(&mc->lock, NULL);
	mc->fmem = fmem;
	mc->domid = domid;
	mc->who = who;
	mc->capacity = buckets;
	mc->rl = (struct vd_ratelimit)VD_RATELIMIT_INIT;
	*out = mc;
	return 0;
}

/* Index of the first element whose field is >= v (binary search). */
static unsigned lower_key(struct vd_xen_mapcache *mc, uint64_t key)
{
	unsigned lo = 0, hi = mc->n_key;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (mc->by_key[mid]->key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static unsigned lower_hva(struct vd_xen_mapcache *mc, const uint8_t *p)
{
	unsigned lo = 0, hi = mc->n_hva;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (mc->by_hva[mid]->hva < p)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int array_insert(struct entry ***arr, unsigned *n, unsigned *cap,
			unsigned at, struct entry *e)
{
	if (*n == *cap) {
		unsigned ncap = *cap ? *cap * 2 : 16;
		struct entry **na = realloc(*arr, ncap * sizeof(*na));

		if (!na)
			return -ENOMEM;
		*arr = na;
		*cap = ncap;
	}
	memmove(&(*arr)[at + 1], &(*arr)[at], (*n - at) * sizeof(**arr));
	(*arr)[at] = e;
	(*n)++;
	return 0;
}

static void array_remove(struct entry **arr, unsigned *n, unsigned at)
{
	memmove(&arr[at], &arr[at + 1], (*n - at - 1) * sizeof(*arr));
	(*n)--;
}

static struct entry *find_key(struct vd_xen_mapcache *mc, uint64_t key)
{
	unsigned i = lower_key(mc, key);

	return i < mc->n_key && mc->by_key[i]->key == key ? mc->by_key[i]
							  : NULL;
}

/* The live mapping containing host address p. */
static struct entry *find_hva(struct vd_xen_mapcache *mc, const void *p)
{
	const uint8_t *b = p;
	unsigned i = lower_hva(mc, b);
	struct entry *e;

	if (i < mc->n_hva && mc->by_hva[i]->hva == b)
		return mc->by_hva[i];
	if (i == 0)
		return NULL;
	e = mc->by_hva[i - 1];
	return b < e->hva + (size_t)e->npages * VD_XEN_PAGE_SIZE ? e : NULL;
}

static void uncache(struct vd_xen_mapcache *mc, struct entry *e)
{
	unsigned i = lower_key(mc, e->key);

	if (e->cached && i < mc->n_key && mc->by_key[i] == e)
		array_remove(mc->by_key, &mc->n_key, i);
	e->cached = false;
}

static void drop(struct vd_xen_mapcache *mc, struct entry *e)
{
	unsigned i = lower_hva(mc, e->hva);

	uncache(mc, e);
	if (i < mc->n_hva && mc->by_hva[i] == e)
		array_remove(mc->by_hva, &mc->n_hva, i);
	xenforeignmemory_unmap(mc->fmem, e->hva, e->npages);
	mc->st.unmap_calls++;
	free(e);
}

/* Drop least recently used unpinned buckets until at most `target` are
 * cached (pinned ones stay). */
static void trim_to(struct vd_xen_mapcache *mc, unsigned target)
{
	while (mc->n_key > target) {
		struct entry *lru = NULL;

		for (unsigned i = 0; i < mc->n_key; i++) {
			struct entry *e = mc->by_key[i];

			if (!e->pins && (!lru || e->last_used < lru->last_used))
				lru = e;
		}
		if (!lru)
			return; /* all in use: shrinks on release */
		drop(mc, lru);
	}
}

static void trim(struct vd_xen_mapcache *mc)
{
	trim_to(mc, mc->capacity);
}

/* Map `npages` frames from `pfn`; pages the guest does not have are left
 * out of e->valid. NULL if none could be mapped. */
static struct entry *map_frames(struct vd_xen_mapcache *mc, uint64_t key,
				uint64_t pfn, uint32_t npages)
{
	xen_pfn_t pfns[BUCKET_PAGES];
	int err[BUCKET_PAGES];
	struct entry *e;
	unsigned nvalid = 0;

	if (npages > BUCKET_PAGES)
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	for (uint32_t i = 0; i < npages; i++) {
		pfns[i] = (xen_pfn_t)(pfn + i);
		err[i] = 0;
	}
	mc->st.map_calls++;
	e->hva = xenforeignmemory_map(
		mc->fmem, mc->domid, PROT_READ | PROT_WRITE, npages, pfns, err);
	if (!e->hva) {
		vd_log_ratelimited(&mc->rl, VD_LOG_WARN, mc->who,
				   "cannot map guest frames 0x%llx+%u: %s",
				   (unsigned long long)pfn, npages,
				   strerror(errno));
		free(e);
		return NULL;
	}
	for (uint32_t i = 0; i < npages; i++) {
		if (err[i] == 0) {
			e->valid[i / 64] |= 1ULL << (i % 64);
			nvalid++;
		}
	}
	e->key = key;
	e->npages = npages;
	mc->st.pages_mapped += npages;
	if (!nvalid || array_insert(&mc->by_hva, &mc->n_hva, &mc->cap_hva,
				    lower_hva(mc, e->hva), e) < 0) {
		xenforeignmemory_unmap(mc->fmem, e->hva, npages);
		mc->st.unmap_calls++;
		free(e);
		return NULL;
	}
	return e;
}

/* The cached bucket for `key`, mapped if needed; NULL if the guest has
 * no memory there. */
static struct entry *get_bucket(struct vd_xen_mapcache *mc, uint64_t key)
{
	struct entry *e = find_key(mc, key);

	if (e) {
		mc->st.hits++;
		e->last_used = ++mc->tick;
		return e;
	}
	mc->st.misses++;
	/* Make room first, so the cache never grows past capacity while
	 * unpinned buckets could go. */
	if (mc->n_key >= mc->capacity)
		trim_to(mc, mc->capacity ? mc->capacity - 1 : 0);
	e = map_frames(mc, key, key * BUCKET_PAGES, BUCKET_PAGES);
	if (!e)
		return NULL;
	if (array_insert(&mc->by_key, &mc->n_key, &mc->cap_key,
			 lower_key(mc, key), e) < 0) {
		drop(mc, e);
		return NULL;
	}
	e->cached = true;
	e->last_used = ++mc->tick;
	return e;
}

static bool pages_valid(const struct entry *e, uint64_t off, uint64_t len)
{
	for (uint64_t p = off >> VD_XEN_PAGE_SHIFT;
	     p <= (off + len - 1) >> VD_XEN_PAGE_SHIFT; p++)
		if (p >= e->npages || !(e->valid[p / 64] & (1ULL << (p % 64))))
			return false;
	return true;
}

static void unpin(struct vd_xen_mapcache *mc, struct entry *e)
{
	if (e->pins)
		e->pins--;
	if (e->pins)
		return;
	if (!e->cached)
		drop(mc, e); /* invalidated or a ring: nobody uses it now */
	else
		trim(mc);
}

static int range_check(uint64_t gpa, uint64_t len)
{
	if (gpa + len < gpa)
		return -EOVERFLOW;
	if (gpa >= GPA_LIMIT || len > GPA_LIMIT - gpa)
		return -EFAULT;
	return 0;
}

static int mc_translate(void *ctx, uint64_t gpa, uint64_t len,
			enum vd_mem_access access, struct iovec *iov,
			unsigned max_iov, unsigned *n_iov)
{
	struct vd_xen_mapcache *mc = ctx;
	unsigned n = *n_iov;
	int rc;

	(void)access; /* buckets are mapped read-write */
	if (len == 0)
		return 0;
	rc = range_check(gpa, len);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&mc->lock);
	/* One iovec per bucket touched; bounded by max_iov. */
	while (len) {
		uint64_t off = gpa & (BUCKET_SIZE - 1);
		uint64_t chunk =
			BUCKET_SIZE - off < len ? BUCKET_SIZE - off : len;
		struct entry *e;

		if (n >= max_iov) {
			rc = -ENOBUFS;
			goto undo;
		}
		if (mc->capacity == 0) {
			/* No cache: map just these frames, unmapped on
			 * release (what a backend without a cache does). */
			uint64_t poff = gpa & (VD_XEN_PAGE_SIZE - 1);

			off = poff;
			e = map_frames(mc, NO_KEY, gpa >> VD_XEN_PAGE_SHIFT,
				       (uint32_t)((poff + chunk +
						   VD_XEN_PAGE_SIZE - 1) >>
						  VD_XEN_PAGE_SHIFT));
		} else {
			e = get_bucket(mc, gpa >> VD_XEN_BUCKET_SHIFT);
		}
		if (!e || !pages_valid(e, off, chunk)) {
			if (e && !e->cached && !e->pins)
				drop(mc, e);
			rc = -EFAULT;
			goto undo;
		}
		e->pins++;
		iov[n].iov_base = e->hva + off;
		iov[n].iov_len = chunk;
		n++;
		gpa += chunk;
		len -= chunk;
	}
	pthread_mutex_unlock(&mc->lock);
	*n_iov = n;
	return 0;
undo:
	while (n > *n_iov) {
		struct entry *e = find_hva(mc, iov[--n].iov_base);

		if (e)
			unpin(mc, e);
	}
	trim(mc);
	pthread_mutex_unlock(&mc->lock);
	return rc;
}

static void mc_release(void *ctx, const struct iovec *iov, unsigned n_iov)
{
	struct vd_xen_mapcache *mc = ctx;

	pthread_mutex_lock(&mc->lock);
	for (unsigned i = 0; i < n_iov; i++) {
		struct entry *e = find_hva(mc, iov[i].iov_base);

		if (e)
			unpin(mc, e);
		else
			vd_log_ratelimited(&mc->rl, VD_LOG_ERR, mc->who,
					   "release of an address not mapped "
					   "by the cache");
	}
	pthread_mutex_unlock(&mc->lock);
}

static void *mc_map_contig(void *ctx, uint64_t gpa, uint64_t len,
			   enum vd_mem_access access)
{
	struct vd_xen_mapcache *mc = ctx;
	uint64_t off = gpa & (BUCKET_SIZE - 1);
	struct entry *e;
	void *p = NULL;

	(void)access;
	if (len == 0 || len > CONTIG_MAX || range_check(gpa, len) < 0)
		return NULL;
	pthread_mutex_lock(&mc->lock);
	if (off + len <= BUCKET_SIZE) {
		/* Inside one bucket: share it, pinned while the ring lives. */
		e = get_bucket(mc, gpa >> VD_XEN_BUCKET_SHIFT);
		if (e && pages_valid(e, off, len)) {
			e->pins++;
			p = e->hva + off;
		}
	} else {
		/* Across buckets: a mapping of just these frames. */
		uint64_t pfn = gpa >> VD_XEN_PAGE_SHIFT;
		uint64_t poff = gpa & (VD_XEN_PAGE_SIZE - 1);
		uint32_t np = (uint32_t)((poff + len + VD_XEN_PAGE_SIZE - 1) >>
					 VD_XEN_PAGE_SHIFT);

		e = map_frames(mc, NO_KEY, pfn, np);
		if (e && pages_valid(e, poff, len)) {
			e->pins = 1;
			p = e->hva + poff;
		} else if (e) {
			drop(mc, e);
		}
	}
	pthread_mutex_unlock(&mc->lock);
	return p;
}

static void mc_unmap_contig(void *ctx, void *hva, uint64_t len)
{
	struct vd_xen_mapcache *mc = ctx;
	struct entry *e;

	(void)len;
	pthread_mutex_lock(&mc->lock);
	e = find_hva(mc, hva);
	if (e)
		unpin(mc, e);
	pthread_mutex_unlock(&mc->lock);
}

const struct vd_mem_ops vd_xen_mapcache_ops = {
	.translate = mc_translate,
	.release = mc_release,
	.map_contig = mc_map_contig,
	.unmap_contig = mc_unmap_contig,
	/* One iovec per bucket touched, with or without the cache. */
	.split_unit = BUCKET_SIZE,
};

void vd_xen_mapcache_invalidate(struct vd_xen_mapcache *mc)
{
	pthread_mutex_lock(&mc->lock);
	mc->st.invalidations++;
	/* Pinned buckets stay mapped for their users (in-flight requests,
	 * rings, as QEMU keeps its locked entries) but are no longer found:
	 * the next lookup maps the frames afresh. */
	for (unsigned i = mc->n_key; i-- > 0;) {
		struct entry *e = mc->by_key[i];

		if (e->pins)
			uncache(mc, e);
		else
			drop(mc, e);
	}
	pthread_mutex_unlock(&mc->lock);
}

void vd_xen_mapcache_stats(struct vd_xen_mapcache *mc,
			   struct vd_xen_mapcache_stats *out)
{
	pthread_mutex_lock(&mc->lock);
	*out = mc->st;
	out->live_buckets = mc->n_hva;
	out->pinned_buckets = 0;
	for (unsigned i = 0; i < mc->n_hva; i++)
		if (mc->by_hva[i]->pins)
			out->pinned_buckets++;
	pthread_mutex_unlock(&mc->lock);
}

void vd_xen_mapcache_free(struct vd_xen_mapcache *mc)
{
	if (!mc)
		return;
	while (mc->n_hva)
		drop(mc, mc->by_hva[mc->n_hva - 1]);
	free(mc->by_key);
	free(mc->by_hva);
	pthread_mutex_destroy(&mc->lock);
	free(mc);
}
