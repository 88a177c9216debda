/* Stand-in libxenforeignmemory: guest frames are pages of the domain's RAM
 * memfd; the ioreq page is a page of the shared state. Counts every call
 * and the pages still mapped, so leaks and per-request maps show. */
#include <stdlib.h>
#include <sys/mman.h>

#include <xenforeignmemory.h>
#include <xen/memory.h>

#include "hv.h"

struct xenforeignmemory_handle {
	int restricted;
	domid_t domid;
};

struct xenforeignmemory_resource_handle {
	void *addr;
};

xenforeignmemory_handle *xenforeignmemory_open(struct xentoollog_logger *logger,
					       unsigned int flags)
{
	(void)logger;
	(void)flags;
	return calloc(1, sizeof(struct xenforeignmemory_handle));
}

int xenforeignmemory_close(xenforeignmemory_handle *h)
{
	free(h);
	return 0;
}

int xenforeignmemory_restrict(xenforeignmemory_handle *h, domid_t domid)
{
	SX_COUNT(fm_restrict, 1);
	h->restricted = 1;
	h->domid = domid;
	return 0;
}

static int lookup(xenforeignmemory_handle *h, uint32_t domid)
{
	struct sx_dom *d;
	int di;

	if (h->restricted && h->domid != domid) {
		SX_COUNT(restricted_violations, 1);
		errno = EPERM;
		return -1;
	}
	sx_lock();
	d = sx_dom_find(domid);
	di = d && !d->dying ? sx_dom_index(d) : -1;
	sx_unlock();
	if (di < 0)
		errno = ESRCH;
	return di;
}

void *xenforeignmemory_map(xenforeignmemory_handle *h, uint32_t dom, int prot,
			   size_t pages, const xen_pfn_t arr[], int err[])
{
	uint64_t *gfns;
	void *p;
	int di = lookup(h, dom);

	SX_COUNT(fm_map, 1);
	if (di < 0)
		return NULL;
	if (pages == 0 || pages > 1024) {
		errno = EINVAL;
		return NULL;
	}
	gfns = malloc(pages * sizeof(*gfns));
	if (!gfns)
		return NULL;
	for (size_t i = 0; i < pages; i++)
		gfns[i] = arr[i];
	p = sx_map_frames(di, gfns, (unsigned)pages, prot, err);
	free(gfns);
	if (p) {
		SX_COUNT(fm_map_pages, pages);
		SX_COUNT(fm_live_pages, pages);
	}
	return p;
}

int xenforeignmemory_unmap(xenforeignmemory_handle *h, void *addr, size_t pages)
{
	(void)h;
	SX_COUNT(fm_unmap, 1);
	if (munmap(addr, pages * SX_PAGE) < 0)
		return -1;
	SX_COUNT(fm_live_pages, -(uint64_t)pages);
	return 0;
}

xenforeignmemory_resource_handle *
xenforeignmemory_map_resource(xenforeignmemory_handle *h, domid_t domid,
			      unsigned int type, unsigned int id,
			      unsigned long frame, unsigned long nr_frames,
			      void **paddr, int prot, int flags)
{
	xenforeignmemory_resource_handle *r;
	struct sx_dom *d;
	size_t off;
	int di = lookup(h, domid);

	SX_COUNT(fm_map_resource, 1);
	if (di < 0)
		return NULL;
	if (type != XENMEM_resource_ioreq_server ||
	    frame != XENMEM_resource_ioreq_server_frame_ioreq(0) ||
	    nr_frames != 1 || id >= SX_MAX_SERVERS || flags) {
		errno = EINVAL;
		return NULL;
	}
	sx_lock();
	d = &sx->doms[di];
	if (!d->srv[id].used) {
		sx_unlock();
		errno = ENOENT;
		return NULL;
	}
	off = sx_page_offset(di, (int)id);
	sx_unlock();
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->addr =
		mmap(*paddr, SX_PAGE, prot, MAP_SHARED, sx->shm_fd, (off_t)off);
	if (r->addr == MAP_FAILED) {
		free(r);
		return NULL;
	}
	*paddr = r->addr;
	return r;
}

int xenforeignmemory_unmap_resource(xenforeignmemory_handle *h,
				    xenforeignmemory_resource_handle *r)
{
	(void)h;
	SX_COUNT(fm_unmap_resource, 1);
	if (!r)
		return 0;
	munmap(r->addr, SX_PAGE);
	free(r);
	return 0;
}
