/* Guest memory: translates guest-physical ranges into host iovecs. Every
 * translation is bounds-checked; a range outside guest memory is an error,
 * never a crash.
 *
 * Two back ends share this handle:
 *  - a region table (vhost-user's memory table, tests): regions are published
 *    as immutable snapshots, so readers never see a torn table while regions
 *    are added or removed, and a removed region's mapping is released only
 *    after every reader has passed a quiescent point;
 *  - a mapper (Xen's mapping cache or grant mapping): translation and release
 *    are delegated to vd_mem_ops, which may pin mappings until release. */
#ifndef VIRTIOD_GUEST_MEM_H
#define VIRTIOD_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum vd_mem_access {
	VD_MEM_READ = 1,  /* the device reads guest memory */
	VD_MEM_WRITE = 2, /* the device writes guest memory */
};

struct vd_mem_region {
	uint64_t gpa;	/* guest-physical start */
	uint64_t size;	/* bytes, > 0 */
	void *hva;	/* host mapping of gpa */
	uint64_t uaddr; /* frontend virtual address (vhost-user), else 0 */
	/* Called once the region is no longer visible to any reader (after
	 * removal or vd_mem_free): unmap, close fds. May be NULL. */
	void (*release)(struct vd_mem_region *r);
	void *opaque; /* owner's data for release (e.g. mmap base/len, fd) */
	uint64_t mmap_len;
	void *mmap_base;
	int fd;
};

#define VD_MEM_MAX_REGIONS 512 /* vhost-user allows 509 slots */

/* Mapper back end (Xen). Called from queue threads, concurrently. */
struct vd_mem_ops {
	/* Append host iovecs for [gpa, gpa+len) to iov[*n_iov..max_iov).
	 * Returns 0, -EFAULT (outside guest memory / not mappable),
	 * -EOVERFLOW (wraps 2^64), -ENOBUFS (iovec budget exceeded). May pin
	 * mappings until release() is called with the same iovecs. */
	int (*translate)(void *ctx, uint64_t gpa, uint64_t len,
			 enum vd_mem_access access, struct iovec *iov,
			 unsigned max_iov, unsigned *n_iov);
	/* Unpin what translate() returned (grant mappings are unmapped here,
	 * before the request is completed). May be NULL. */
	void (*release)(void *ctx, const struct iovec *iov, unsigned n_iov);
	/* Map a contiguous range (rings) for the lifetime of a queue; returns
	 * NULL if it cannot. unmap_contig undoes it. */
	void *(*map_contig)(void *ctx, uint64_t gpa, uint64_t len,
			    enum vd_mem_access access);
	void (*unmap_contig)(void *ctx, void *hva, uint64_t len);
	/* translate splits a range only at multiples of split_unit bytes,
	 * counted from an origin at or below the range's first page (Xen:
	 * the mapping cache's buckets, grant-map calls of 256 pages). 0: it
	 * never splits a range. */
	uint64_t split_unit;
};

struct vd_mem;

/* A region-table memory with room for `max_readers` reader slots (one per
 * queue thread). */
struct vd_mem *vd_mem_new_table(unsigned max_readers);
/* A mapper memory. */
struct vd_mem *vd_mem_new_mapper(const struct vd_mem_ops *ops, void *ctx);
/* Releases every region (calling release) and the handle. */
void vd_mem_free(struct vd_mem *mem);

/* --- region table: writers (one thread at a time, the shim's control
 * thread). Regions must not overlap in guest-physical space. */

/* Checks a region on its own: non-zero size, gpa+size and uaddr+size do not
 * wrap. Returns 0 or -EINVAL. */
int vd_mem_region_check(const struct vd_mem_region *r);
/* Adds one region (copied). -EINVAL bad region, -EEXIST overlaps, -ENOSPC
 * table full. On error nothing changes and r->release is not called. */
int vd_mem_add_region(struct vd_mem *mem, const struct vd_mem_region *r);
/* Removes the region with this gpa and size; its release runs after the
 * grace period. -ENOENT if none matches. */
int vd_mem_remove_region(struct vd_mem *mem, uint64_t gpa, uint64_t size);
/* Replaces the whole table in one step (SET_MEM_TABLE). On error nothing
 * changes and no release runs. */
int vd_mem_set_regions(struct vd_mem *mem, const struct vd_mem_region *r,
		       unsigned n);
unsigned vd_mem_region_count(const struct vd_mem *mem);

/* --- readers (queue threads). A reader registers once for a slot and
 * brackets its use of translated pointers with enter/leave: a writer frees
 * an old table only once every slot has left since the swap. Between
 * enter and leave no writer can release a mapping this reader uses. */
int vd_mem_reader_register(struct vd_mem *mem); /* slot >= 0 or -ENOSPC */
void vd_mem_reader_unregister(struct vd_mem *mem, int slot);
void vd_mem_reader_enter(struct vd_mem *mem, int slot);
void vd_mem_reader_leave(struct vd_mem *mem, int slot);
/* True while a writer waits for readers to leave: a queue thread should stop
 * popping new chains, let in-flight requests finish and leave, so the
 * writer is never starved by a continuous load. */
bool vd_mem_grace_pending(const struct vd_mem *mem);

/* Translate [gpa, gpa+len) into iovecs appended at iov[*n_iov], splitting
 * across adjacent regions. len 0 yields no iovec. Errors: -EFAULT (outside
 * guest memory), -EOVERFLOW (wraps 2^64), -ENOBUFS (more than max_iov). On
 * error *n_iov is left as it was. */
int vd_mem_translate(struct vd_mem *mem, uint64_t gpa, uint64_t len,
		     enum vd_mem_access access, struct iovec *iov,
		     unsigned max_iov, unsigned *n_iov);
/* A reader's translation hint: the region of its last hit, tried before
 * the table is searched. One per queue thread, zero-initialised. It needs
 * no invalidation: a hint left stale by a table change only costs the
 * search (the region it names is checked like any other). */
struct vd_mem_hint {
	unsigned region;
};
/* vd_mem_translate, trying *hint first and updating it. */
int vd_mem_translate_hinted(struct vd_mem *mem, struct vd_mem_hint *hint,
			    uint64_t gpa, uint64_t len,
			    enum vd_mem_access access, struct iovec *iov,
			    unsigned max_iov, unsigned *n_iov);
/* The most iovecs one contiguous range of len bytes can translate into
 * (for sizing iovec arrays): bounded by a mapper's split_unit. A region
 * table splits a range only where it crosses into the next region, which
 * no caller can foresee: 1 here, and callers keep slack for it. */
unsigned vd_mem_max_pieces(const struct vd_mem *mem, uint64_t len);
/* Undo pins taken by translate (no-op for a region table). */
void vd_mem_release(struct vd_mem *mem, const struct iovec *iov, unsigned n);

/* A host pointer to a contiguous guest range, or NULL if the range is not
 * inside one region / cannot be mapped (rings, indirect tables). */
void *vd_mem_map_contig(struct vd_mem *mem, uint64_t gpa, uint64_t len,
			enum vd_mem_access access);
void vd_mem_unmap_contig(struct vd_mem *mem, void *hva, uint64_t len);

/* vhost-user: frontend virtual address → host pointer for a contiguous
 * range, or NULL. Also gives the guest-physical address in *gpa if not NULL. */
void *vd_mem_uaddr_to_hva(struct vd_mem *mem, uint64_t uaddr, uint64_t len,
			  uint64_t *gpa);

/* Copy helpers for small structures (bounds-checked, cross regions). */
int vd_mem_read(struct vd_mem *mem, uint64_t gpa, void *buf, size_t len);
int vd_mem_write(struct vd_mem *mem, uint64_t gpa, const void *buf, size_t len);

#endif
