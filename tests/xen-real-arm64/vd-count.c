/* vd-count.so: LD_PRELOAD'ed into virtiod by tests/xen-real-arm64, counts
 * its calls into libxenforeignmemory and libxengnttab per guest domain, so
 * that a case can prove which kind of mapping served the guest (grant
 * references, never a foreign mapping, or the reverse). Independent of
 * virtiod's code: it sees the calls at the library boundary.
 *
 * The counters live in a MAP_SHARED file ($VD_COUNT_FILE) mapped before any
 * fork, so the device processes of `xen-watch` and `--config` (forked, ended
 * with _exit) add to the same table. Row = domid (0..VDC_DOMS-1), column =
 * enum below; read it with
 *   od -An -v -tu8 -w64 FILE    (line N + 1: domain N)
 * Forwards every call unchanged; never alters virtiod's behaviour. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define VDC_DOMS 64

enum {
	FOREIGN_MAP,	/* xenforeignmemory_map / map2 calls */
	FOREIGN_PAGES,	/* pages they asked for */
	RESOURCE_MAP,	/* xenforeignmemory_map_resource (the ioreq page) */
	GRANT_MAP,	/* xengnttab_map_* calls */
	GRANT_PAGES,	/* references they asked for */
	GRANT_UNMAP,	/* xengnttab_unmap calls */
	FOREIGN_UNMAP,	/* xenforeignmemory_unmap calls */
	GRANT_COPY,	/* xengnttab_grant_copy calls */
	NCOUNT
};

static uint64_t (*table)[NCOUNT];

__attribute__((constructor)) static void vdc_init(void)
{
	const char *path = getenv("VD_COUNT_FILE");
	size_t len = sizeof(uint64_t) * NCOUNT * VDC_DOMS;
	void *p;
	int fd;

	if (!path)
		return;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (ftruncate(fd, (off_t)len) == 0) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p != MAP_FAILED)
			table = p;
	}
	close(fd);
}

/* A library function may call another exported one through the PLT (map
 * calls map2): count the outermost call only. */
static __thread int depth;

static void add(unsigned dom, int what, uint64_t n)
{
	if (table && dom < VDC_DOMS && depth == 0)
		__atomic_fetch_add(&table[dom][what], n, __ATOMIC_RELAXED);
}

/* Forwards a call with the outermost-call guard held. */
#define FWD(call)                                                              \
	({                                                                     \
		__typeof__(call) r_;                                           \
		depth++;                                                       \
		r_ = (call);                                                   \
		depth--;                                                       \
		r_;                                                            \
	})

static void *next(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (!f)
		abort(); /* the real library is not loaded: nothing to forward to */
	return f;
}

/* The prototypes are Xen 4.17's (xenforeignmemory.h, xengnttab.h); the
 * handles are opaque here. */
typedef struct xenforeignmemory_handle xfm_h;
typedef struct xenforeignmemory_resource_handle xfm_res;
typedef struct xengntdev_handle xgt_h;
typedef unsigned long xen_pfn_t;

void *xenforeignmemory_map(xfm_h *h, uint32_t dom, int prot, size_t pages,
			   const xen_pfn_t arr[], int err[])
{
	static void *(*f)(xfm_h *, uint32_t, int, size_t, const xen_pfn_t *,
			  int *);

	if (!f)
		f = next(__func__);
	add(dom, FOREIGN_MAP, 1);
	add(dom, FOREIGN_PAGES, pages);
	return FWD(f(h, dom, prot, pages, arr, err));
}

void *xenforeignmemory_map2(xfm_h *h, uint32_t dom, void *addr, int prot,
			    int flags, size_t pages, const xen_pfn_t arr[],
			    int err[])
{
	static void *(*f)(xfm_h *, uint32_t, void *, int, int, size_t,
			  const xen_pfn_t *, int *);

	if (!f)
		f = next(__func__);
	add(dom, FOREIGN_MAP, 1);
	add(dom, FOREIGN_PAGES, pages);
	return FWD(f(h, dom, addr, prot, flags, pages, arr, err));
}

int xenforeignmemory_unmap(xfm_h *h, void *addr, size_t pages)
{
	static int (*f)(xfm_h *, void *, size_t);

	if (!f)
		f = next(__func__);
	add(0, FOREIGN_UNMAP, 1); /* no domid here: counted on row 0 */
	return FWD(f(h, addr, pages));
}

xfm_res *xenforeignmemory_map_resource(xfm_h *h, uint16_t domid,
				       unsigned int type, unsigned int id,
				       unsigned long frame,
				       unsigned long nr_frames, void **paddr,
				       int prot, int flags)
{
	static xfm_res *(*f)(xfm_h *, uint16_t, unsigned, unsigned,
			     unsigned long, unsigned long, void **, int, int);

	if (!f)
		f = next(__func__);
	add(domid, RESOURCE_MAP, 1);
	return FWD(f(h, domid, type, id, frame, nr_frames, paddr, prot, flags));
}

void *xengnttab_map_grant_ref(xgt_h *h, uint32_t domid, uint32_t ref,
			      int prot)
{
	static void *(*f)(xgt_h *, uint32_t, uint32_t, int);

	if (!f)
		f = next(__func__);
	add(domid, GRANT_MAP, 1);
	add(domid, GRANT_PAGES, 1);
	return FWD(f(h, domid, ref, prot));
}

void *xengnttab_map_grant_refs(xgt_h *h, uint32_t count,
			       const uint32_t *domids, const uint32_t *refs,
			       int prot)
{
	static void *(*f)(xgt_h *, uint32_t, const uint32_t *,
			  const uint32_t *, int);

	if (!f)
		f = next(__func__);
	add(count ? domids[0] : 0, GRANT_MAP, 1);
	add(count ? domids[0] : 0, GRANT_PAGES, count);
	return FWD(f(h, count, domids, refs, prot));
}

void *xengnttab_map_domain_grant_refs(xgt_h *h, uint32_t count,
				      uint32_t domid, const uint32_t *refs,
				      int prot)
{
	static void *(*f)(xgt_h *, uint32_t, uint32_t, const uint32_t *, int);

	if (!f)
		f = next(__func__);
	add(domid, GRANT_MAP, 1);
	add(domid, GRANT_PAGES, count);
	return FWD(f(h, count, domid, refs, prot));
}

int xengnttab_unmap(xgt_h *h, void *start_address, uint32_t count)
{
	static int (*f)(xgt_h *, void *, uint32_t);

	if (!f)
		f = next(__func__);
	add(0, GRANT_UNMAP, 1); /* no domid here: counted on row 0 */
	return FWD(f(h, start_address, count));
}

int xengnttab_grant_copy(xgt_h *h, uint32_t count, void *segs)
{
	static int (*f)(xgt_h *, uint32_t, void *);

	if (!f)
		f = next(__func__);
	add(0, GRANT_COPY, 1);
	return FWD(f(h, count, segs));
}
