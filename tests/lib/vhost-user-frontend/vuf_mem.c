/* memfd guest memory for a frontend: created, mapped, allocated from and
 * described as a region. Never hands out an address outside the memfd. */
#include "vuf_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int vuf_mem_new(struct vuf_mem *m, const char *name, size_t size, uint64_t gpa,
		unsigned memfd_flags)
{
	int err;

	memset(m, 0, sizeof(*m));
	m->fd = memfd_create(name, MFD_CLOEXEC | memfd_flags);
	if (m->fd < 0 || ftruncate(m->fd, (off_t)size) < 0)
		goto fail;
	m->hva = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
	if (m->hva == MAP_FAILED) {
		m->hva = NULL;
		goto fail;
	}
	m->size = size;
	m->gpa = gpa;
	return 0;
fail:
	err = errno;
	vuf_mem_free(m);
	errno = err;
	return -err;
}

void vuf_mem_free(struct vuf_mem *m)
{
	if (m->hva)
		munmap(m->hva, m->size);
	if (m->fd >= 0)
		close(m->fd);
	memset(m, 0, sizeof(*m));
	m->fd = -1;
}

int vuf_mem_alloc(struct vuf_mem *m, size_t size, size_t align, uint64_t *gpa)
{
	size_t at = (m->next + align - 1) & ~(align - 1);

	if (at < m->next || at > m->size || size > m->size - at)
		return -ENOMEM;
	m->next = at + size;
	memset(m->hva + at, 0, size);
	*gpa = m->gpa + at;
	return 0;
}

void *vuf_mem_hva(const struct vuf_mem *m, uint64_t gpa, size_t len)
{
	if (gpa < m->gpa || gpa - m->gpa > m->size ||
	    len > m->size - (gpa - m->gpa))
		return NULL;
	return m->hva + (gpa - m->gpa);
}

struct vuf_region vuf_mem_region(const struct vuf_mem *m)
{
	return (struct vuf_region){
		.fd = m->fd,
		.gpa = m->gpa,
		.size = m->size,
		.uaddr = (uintptr_t)m->hva,
		.mmap_offset = 0,
	};
}
