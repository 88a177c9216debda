/* The memory table (vhost-user.rst "Memory access"): SET_MEM_TABLE and the
 * CONFIGURE_MEM_SLOTS requests. A region is mapped only after its fd proved
 * to hold it; no ring runs on a mapping about to be released. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "connection.h"
#include "mem_table.h"
#include "vring.h"

/* Runs after the core's grace period: no queue thread uses it any more. */
static void region_release(struct vd_mem_region *r)
{
	if (r->mmap_base)
		munmap(r->mmap_base, r->mmap_len);
}

/* Check region w against its fd and map it; fills the core's region and
 * our shadow of it. The fd stays the caller's. */
static int region_map(struct vu_backend *b, const struct vu_region_wire *w,
		      int fd, unsigned i, struct vd_mem_region *out,
		      struct vu_region *shadow, char *why, size_t whylen)
{
	char detail[160];
	struct stat st;
	void *hva;

	if (vu_fd_check_range(b, "guest memory", fd, w->mmap_offset, w->size,
			      detail, sizeof(detail), &st) < 0) {
		snprintf(why, whylen, "region %u: %s", i, detail);
		return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	hva = vu_map_fd(fd, w->mmap_offset, w->size, &st, &out->mmap_base,
			&out->mmap_len, detail, sizeof(detail));
	if (!hva) {
		snprintf(why, whylen, "region %u: %s", i, detail);
		return -EINVAL;
	}
	out->gpa = w->gpa;
	out->size = w->size;
	out->hva = hva;
	out->uaddr = w->uaddr;
	out->release = region_release;
	out->fd = -1;
	*shadow = (struct vu_region){
		.gpa = w->gpa,
		.size = w->size,
		.uaddr = w->uaddr,
		.mmap_offset = w->mmap_offset,
		.st_dev = st.st_dev,
		.st_ino = st.st_ino,
		.hva = hva,
	};
	return 0;
}

static bool gpa_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* The same regions backed by the same files: QEMU resends its table on
 * memory-listener commits that change nothing for us. */
static bool table_unchanged(const struct vu_backend *b,
			    const struct vu_mem_table_wire *t, const int *fds)
{
	if (t->nregions != b->n_regions)
		return false;
	for (unsigned i = 0; i < t->nregions; i++) {
		const struct vu_region_wire *w = &t->regions[i];
		const struct vu_region *s = &b->regions[i];
		struct stat st;

		if (w->gpa != s->gpa || w->size != s->size ||
		    w->uaddr != s->uaddr || w->mmap_offset != s->mmap_offset ||
		    fstat(fds[i], &st) < 0 || st.st_dev != s->st_dev ||
		    st.st_ino != s->st_ino)
			return false;
	}
	return true;
}

int vu_set_mem_table(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		     char *why, size_t whylen)
{
	const struct vu_mem_table_wire *t = &m->p.mem;
	struct vd_mem_region nr[VU_MAX_FDS];
	struct vu_region shadow[VU_MAX_FDS];
	unsigned n = t->nregions, i;
	int rc = 0;

	(void)r;
	for (i = 0; i < n; i++)
		for (unsigned j = 0; j < i; j++)
			if (gpa_overlap(t->regions[i].gpa, t->regions[i].size,
					t->regions[j].gpa,
					t->regions[j].size)) {
				snprintf(why, whylen,
					 "regions %u and %u overlap", j, i);
				return -EINVAL;
			}
	if (table_unchanged(b, t, m->fds)) {
		vd_debug(b->who, "memory table unchanged");
		return 0;
	}
	for (i = 0; i < n; i++) {
		rc = region_map(b, &t->regions[i], m->fds[i], i, &nr[i],
				&shadow[i], why, whylen);
		if (rc)
			goto unmap;
	}
	/* Rings hold host pointers into the old mappings, which the swap
	 * releases: stop them first, restart them on the new table. */
	vu_rings_suspend(b, NULL, 0);
	rc = vd_mem_set_regions(b->mem, nr, n);
	if (rc) {
		snprintf(why, whylen, "memory table refused: %s",
			 strerror(-rc));
		vu_rings_resume(b);
		goto unmap;
	}
	memcpy(b->regions, shadow, n * sizeof(shadow[0]));
	b->n_regions = n;
	for (i = 0; i < n; i++)
		b->regions[i].refs = 1;
	for (i = 0; i < n; i++)
		vd_debug(b->who,
			 "region %u: gpa 0x%" PRIx64 " size 0x%" PRIx64
			 " uaddr 0x%" PRIx64 " offset 0x%" PRIx64,
			 i, shadow[i].gpa, shadow[i].size, shadow[i].uaddr,
			 shadow[i].mmap_offset);
	vu_rings_resume(b);
	return 0;
unmap:
	while (i--)
		region_release(&nr[i]);
	return rc < 0 ? rc : -EINVAL;
}

int vu_get_max_mem_slots(struct vu_backend *b, struct vu_msg *m,
			 struct vu_reply *r, char *why, size_t whylen)
{
	(void)b;
	(void)m;
	(void)why;
	(void)whylen;
	r->hdr.size = sizeof(uint64_t);
	r->p.u64 = VU_MAX_MEM_SLOTS;
	return 0;
}

int vu_add_mem_reg(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		   char *why, size_t whylen)
{
	const struct vu_region_wire *w = &m->p.memreg.region;
	struct vd_mem_region nr;
	struct vu_region shadow;
	int rc;

	(void)r;
	if (b->n_regions >= VU_MAX_MEM_SLOTS) {
		snprintf(why, whylen, "all %u memory slots in use",
			 VU_MAX_MEM_SLOTS);
		return -ENOSPC;
	}
	for (unsigned i = 0; i < b->n_regions; i++) {
		struct vu_region *s = &b->regions[i];
		struct stat st;

		/* QEMU's net backends with several queue pairs are one vhost
		 * device per pair on one connection, each adding the guest's
		 * memory: the same region again is one more user of it. */
		if (w->gpa == s->gpa && w->size == s->size &&
		    w->uaddr == s->uaddr && w->mmap_offset == s->mmap_offset &&
		    fstat(m->fds[0], &st) == 0 && st.st_dev == s->st_dev &&
		    st.st_ino == s->st_ino) {
			s->refs++;
			vd_debug(b->who,
				 "region gpa 0x%" PRIx64 " added again (%u "
				 "users)",
				 w->gpa, s->refs);
			return 0;
		}
		if (gpa_overlap(w->gpa, w->size, s->gpa, s->size)) {
			snprintf(why, whylen,
				 "gpa 0x%" PRIx64 "+0x%" PRIx64
				 " overlaps region at gpa 0x%" PRIx64,
				 w->gpa, w->size, s->gpa);
			return -EEXIST;
		}
	}
	rc = region_map(b, w, m->fds[0], 0, &nr, &shadow, why, whylen);
	if (rc)
		return rc;
	/* Adding leaves every existing mapping in place: rings keep running. */
	rc = vd_mem_add_region(b->mem, &nr);
	if (rc) {
		snprintf(why, whylen, "region refused: %s", strerror(-rc));
		region_release(&nr);
		return rc;
	}
	shadow.refs = 1;
	b->regions[b->n_regions++] = shadow;
	vd_debug(b->who,
		 "added region gpa 0x%" PRIx64 " size 0x%" PRIx64
		 " uaddr 0x%" PRIx64 " (%u in use)",
		 w->gpa, w->size, w->uaddr, b->n_regions);
	vu_rings_resume(b);
	return 0;
}

int vu_rem_mem_reg(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		   char *why, size_t whylen)
{
	const struct vu_region_wire *w = &m->p.memreg.region;
	unsigned i;
	int rc;

	(void)r;
	/* "identified by its guest address, user address and size" */
	for (i = 0; i < b->n_regions; i++)
		if (b->regions[i].gpa == w->gpa &&
		    b->regions[i].uaddr == w->uaddr &&
		    b->regions[i].size == w->size)
			break;
	if (i == b->n_regions) {
		snprintf(why, whylen,
			 "no region with gpa 0x%" PRIx64 " size 0x%" PRIx64
			 " uaddr 0x%" PRIx64,
			 w->gpa, w->size, w->uaddr);
		return -ENOENT;
	}
	if (b->regions[i].refs > 1) {
		b->regions[i].refs--;
		return 0;
	}
	vu_rings_suspend(b, b->regions[i].hva, b->regions[i].size);
	rc = vd_mem_remove_region(b->mem, w->gpa, w->size);
	if (rc) {
		snprintf(why, whylen, "region removal failed: %s",
			 strerror(-rc));
		vu_rings_resume(b);
		return rc;
	}
	memmove(&b->regions[i], &b->regions[i + 1],
		(b->n_regions - i - 1) * sizeof(b->regions[0]));
	b->n_regions--;
	vd_debug(b->who, "removed region gpa 0x%" PRIx64 " (%u in use)", w->gpa,
		 b->n_regions);
	vu_rings_resume(b);
	return 0;
}

void vu_mem_clear(struct vu_backend *b)
{
	vd_mem_set_regions(b->mem, NULL, 0);
	b->n_regions = 0;
}
