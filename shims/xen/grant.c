/* Grant mapping for grant-DMA guests: a ring address with bit 63 set
 * names grant references ((addr & ~bit63) >> 12, consecutive within one
 * buffer). Each buffer is mapped per request and unmapped in release, before
 * the request completes: a guest revokes grants once it sees completion.
 * The guest never decides how much dom0 maps: each queue holds at most
 * `budget` pages; past it translate says -EAGAIN and the chain waits. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "xen_priv.h"

/* Grants mapped by one call; a longer buffer takes several iovecs. */
#define CHUNK_PAGES 256u
/* Rings: the largest is a 512 KiB descriptor table. */
#define CONTIG_MAX_PAGES 256u

/* Pages this thread holds mapped for requests. One queue per thread, and
 * translate and release of a queue's requests run on its thread, so this
 * is the queue's count, with no lock and no shared cache line. */
static _Thread_local int64_t queue_pages;

struct vd_xen_grant {
	xengnttab_handle *gt;
	uint32_t domid;
	uint64_t budget;
	const char *who;
	_Atomic uint64_t map_calls, unmap_calls, pages_mapped, refused, held;
	struct vd_ratelimit rl; /* under rl_lock: queue threads share it */
	pthread_mutex_t rl_lock;
};

int vd_xen_grant_new(uint32_t domid, uint64_t budget, const char *who,
		     struct vd_xen_grant **out)
{
	struct vd_xen_grant *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	g->gt = xengnttab_open(NULL, 0);
	if (!g->gt) {
		int rc = errno ? -errno : -EIO;

		vd_err(who,
		       "cannot open the grant-table device: %s (load "
		       "xen-gntdev)",
		       strerror(-rc));
		free(g);
		return rc;
	}
	/* Room for every queue's buffers in flight; older kernels limit
	 * grants per open file, newer ones ignore this. */
	xengnttab_set_max_grants(g->gt, 65536);
	g->domid = domid;
	g->budget = budget;
	g->who = who;
	g->rl = (struct vd_ratelimit)VD_RATELIMIT_INIT;
	pthread_mutex_init(&g->rl_lock, NULL);
	*out = g;
	return 0;
}

void vd_xen_grant_free(struct vd_xen_grant *g)
{
	if (!g)
		return;
	xengnttab_close(g->gt);
	pthread_mutex_destroy(&g->rl_lock);
	free(g);
}

void vd_xen_grant_stats(struct vd_xen_grant *g, struct vd_xen_grant_stats *out)
{
	out->map_calls = atomic_load(&g->map_calls);
	out->unmap_calls = atomic_load(&g->unmap_calls);
	out->pages_mapped = atomic_load(&g->pages_mapped);
	out->refused = atomic_load(&g->refused);
	out->held = atomic_load(&g->held);
}

static int refuse(struct vd_xen_grant *g, uint64_t addr, uint64_t len,
		  const char *why)
{
	atomic_fetch_add(&g->refused, 1);
	pthread_mutex_lock(&g->rl_lock);
	vd_log_ratelimited(&g->rl, VD_LOG_WARN, g->who,
			   "grant address 0x%llx len %llu refused: %s",
			   (unsigned long long)addr, (unsigned long long)len,
			   why);
	pthread_mutex_unlock(&g->rl_lock);
	return -EFAULT;
}

/* Map `npages` consecutive references from `ref`. */
static uint8_t *map_refs(struct vd_xen_grant *g, uint32_t ref, uint32_t npages,
			 bool write)
{
	uint32_t refs[CHUNK_PAGES];
	void *p;

	for (uint32_t i = 0; i < npages; i++)
		refs[i] = ref + i;
	atomic_fetch_add(&g->map_calls, 1);
	p = xengnttab_map_domain_grant_refs(g->gt, npages, g->domid, refs,
					    write ? PROT_READ | PROT_WRITE
						  : PROT_READ);
	if (p)
		atomic_fetch_add(&g->pages_mapped, npages);
	return p;
}

/* Unmaps the pages under [p, p+len); returns how many. */
static uint64_t unmap_span(struct vd_xen_grant *g, const void *p, uint64_t len)
{
	uintptr_t a = (uintptr_t)p;
	uintptr_t base = a & ~(uintptr_t)(VD_XEN_PAGE_SIZE - 1);
	uint64_t np =
		((a - base) + len + VD_XEN_PAGE_SIZE - 1) >> VD_XEN_PAGE_SHIFT;

	atomic_fetch_add(&g->unmap_calls, 1);
	xengnttab_unmap(g->gt, (void *)base, (uint32_t)np);
	return np;
}

/* Splits a grant address; -EFAULT unless it names refs that exist. */
static int parse(struct vd_xen_grant *g, uint64_t addr, uint64_t len,
		 uint32_t *ref, uint32_t *off, uint64_t *npages)
{
	uint64_t r;

	if (!(addr & VD_XEN_GRANT_BIT))
		return refuse(g, addr, len,
			      "not a grant address (bit 63 clear)");
	r = (addr & ~VD_XEN_GRANT_BIT) >> VD_XEN_PAGE_SHIFT;
	*off = (uint32_t)(addr & (VD_XEN_PAGE_SIZE - 1));
	*npages = (*off + len + VD_XEN_PAGE_SIZE - 1) >> VD_XEN_PAGE_SHIFT;
	if (len > UINT32_MAX || r + *npages - 1 > UINT32_MAX)
		return refuse(g, addr, len, "grant reference out of range");
	*ref = (uint32_t)r;
	return 0;
}

static int gr_translate(void *ctx, uint64_t gpa, uint64_t len,
			enum vd_mem_access access, struct iovec *iov,
			unsigned max_iov, unsigned *n_iov)
{
	struct vd_xen_grant *g = ctx;
	unsigned n = *n_iov;
	uint32_t ref, off;
	uint64_t npages;
	int rc;

	if (len == 0)
		return 0;
	rc = parse(g, gpa, len, &ref, &off, &npages);
	if (rc < 0)
		return rc;
	if (max_iov <= n ||
	    (npages + CHUNK_PAGES - 1) / CHUNK_PAGES > max_iov - n)
		return -ENOBUFS;
	/* The queue's core waits for completions, or breaks the queue if
	 * none is in flight (the chain alone is over the budget). */
	if (queue_pages + (int64_t)npages > (int64_t)g->budget) {
		atomic_fetch_add(&g->held, 1);
		return -EAGAIN;
	}
	while (len) {
		uint32_t np =
			npages < CHUNK_PAGES ? (uint32_t)npages : CHUNK_PAGES;
		uint64_t chunk = (uint64_t)np * VD_XEN_PAGE_SIZE - off;
		uint8_t *p;

		if (chunk > len)
			chunk = len;
		p = map_refs(g, ref, np, access & VD_MEM_WRITE);
		if (!p) {
			rc = refuse(g, gpa, len, strerror(errno));
			goto undo;
		}
		queue_pages += (int64_t)np;
		iov[n].iov_base = p + off;
		iov[n].iov_len = chunk;
		n++;
		ref += np;
		npages -= np;
		len -= chunk;
		off = 0;
	}
	*n_iov = n;
	return 0;
undo:
	while (n > *n_iov) {
		n--;
		queue_pages -=
			(int64_t)unmap_span(g, iov[n].iov_base, iov[n].iov_len);
	}
	return rc;
}

static void gr_release(void *ctx, const struct iovec *iov, unsigned n_iov)
{
	for (unsigned i = 0; i < n_iov; i++)
		if (iov[i].iov_len)
			queue_pages -= (int64_t)unmap_span(ctx, iov[i].iov_base,
							   iov[i].iov_len);
}

static void *gr_map_contig(void *ctx, uint64_t gpa, uint64_t len,
			   enum vd_mem_access access)
{
	struct vd_xen_grant *g = ctx;
	uint32_t ref, off;
	uint64_t npages;
	uint8_t *p;

	if (len == 0 || parse(g, gpa, len, &ref, &off, &npages) < 0)
		return NULL;
	if (npages > CONTIG_MAX_PAGES) {
		refuse(g, gpa, len, "ring too large");
		return NULL;
	}
	p = map_refs(g, ref, (uint32_t)npages, access & VD_MEM_WRITE);
	if (!p) {
		refuse(g, gpa, len, strerror(errno));
		return NULL;
	}
	return p + off;
}

static void gr_unmap_contig(void *ctx, void *hva, uint64_t len)
{
	unmap_span(ctx, hva, len);
}

const struct vd_mem_ops vd_xen_grant_ops = {
	.translate = gr_translate,
	.release = gr_release,
	.map_contig = gr_map_contig,
	.unmap_contig = gr_unmap_contig,
	/* One iovec per CHUNK_PAGES from the buffer's first page. */
	.split_unit = (uint64_t)CHUNK_PAGES << VD_XEN_PAGE_SHIFT,
};
