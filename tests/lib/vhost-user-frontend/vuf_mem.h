/* Guest memory as a frontend shares it: a memfd mapped into this process,
 * placed at a guest address, handed out by a bump allocator. */
#ifndef VUF_MEM_H
#define VUF_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "vuf_conn.h"

struct vuf_mem {
	int fd;
	uint8_t *hva; /* our mapping of the whole memfd */
	size_t size;
	uint64_t gpa; /* where the guest sees hva[0] */
	size_t next;  /* bump allocator offset */
};

/* A memfd of size bytes (memfd_flags: MFD_ALLOW_SEALING or 0; CLOEXEC is
 * added), mapped shared. 0 or -errno; m is then empty (fd -1). */
int vuf_mem_new(struct vuf_mem *m, const char *name, size_t size, uint64_t gpa,
		unsigned memfd_flags);
void vuf_mem_free(struct vuf_mem *m);
/* size zeroed bytes aligned to align (a power of two): their guest
 * address in *gpa. -ENOMEM when the memory is used up. */
int vuf_mem_alloc(struct vuf_mem *m, size_t size, size_t align, uint64_t *gpa);
/* Our address of [gpa, gpa+len), or NULL if it is not all in m. */
void *vuf_mem_hva(const struct vuf_mem *m, uint64_t gpa, size_t len);
/* The region to share: our mapping is the frontend address, as QEMU
 * sends its own virtual address. */
struct vuf_region vuf_mem_region(const struct vuf_mem *m);

#endif
