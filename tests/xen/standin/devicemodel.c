/* Stand-in libxendevicemodel: IOREQ servers and interrupt lines, with
 * Xen's rules (buffered ioreqs refused on Arm, vp_eport 0 until enabled,
 * EEXIST for a range a server already has, set_irq_level Arm-only, the
 * ISA call on a PVH guest counted as the hypervisor crash it was). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xendevicemodel.h>

#include "hv.h"

struct xendevicemodel_handle {
	int restricted;
	domid_t domid;
};

xendevicemodel_handle *xendevicemodel_open(struct xentoollog_logger *logger,
					   unsigned int open_flags)
{
	xendevicemodel_handle *h = calloc(1, sizeof(*h));

	(void)logger;
	(void)open_flags;
	SX_COUNT(dm_open, 1);
	return h;
}

int xendevicemodel_close(xendevicemodel_handle *h)
{
	free(h);
	return 0;
}

int xendevicemodel_restrict(xendevicemodel_handle *h, domid_t domid)
{
	SX_COUNT(dm_restrict, 1);
	h->restricted = 1;
	h->domid = domid;
	return 0;
}

/* Locks and finds the domain; on failure unlocks, sets errno, NULL. */
static struct sx_dom *dom(xendevicemodel_handle *h, domid_t domid)
{
	struct sx_dom *d;

	if (h->restricted && h->domid != domid) {
		SX_COUNT(restricted_violations, 1);
		errno = EPERM;
		return NULL;
	}
	sx_lock();
	d = sx_dom_find(domid);
	if (!d || d->dying) {
		sx_unlock();
		errno = ESRCH;
		return NULL;
	}
	return d;
}

static struct sx_server *server(struct sx_dom *d, ioservid_t id)
{
	if (id >= SX_MAX_SERVERS || !d->srv[id].used) {
		sx_unlock();
		errno = ENOENT;
		return NULL;
	}
	return &d->srv[id];
}

int xendevicemodel_nr_vcpus(xendevicemodel_handle *h, domid_t domid,
			    unsigned int *vcpus)
{
	struct sx_dom *d = dom(h, domid);

	SX_COUNT(dm_nr_vcpus, 1);
	if (!d)
		return -1;
	*vcpus = d->nr_vcpus;
	sx_unlock();
	return 0;
}

int xendevicemodel_create_ioreq_server(xendevicemodel_handle *h, domid_t domid,
				       int handle_bufioreq, ioservid_t *id)
{
	struct sx_dom *d = dom(h, domid);

	SX_COUNT(dm_create, 1);
	if (!d)
		return -1;
	if (handle_bufioreq != 0 && sx->arch == SX_ARM) {
		sx_unlock();
		errno = EOPNOTSUPP;
		return -1;
	}
	for (int s = 0; s < SX_MAX_SERVERS; s++) {
		if (d->srv[s].used)
			continue;
		memset(&d->srv[s], 0, sizeof(d->srv[s]));
		d->srv[s].used = 1;
		memset(sx->pages[sx_dom_index(d)][s], 0, SX_PAGE);
		*id = (ioservid_t)s;
		sx_unlock();
		return 0;
	}
	sx_unlock();
	errno = ENOSPC;
	return -1;
}

int xendevicemodel_map_io_range_to_ioreq_server(xendevicemodel_handle *h,
						domid_t domid, ioservid_t id,
						int is_mmio, uint64_t start,
						uint64_t end)
{
	struct sx_dom *d = dom(h, domid);
	struct sx_server *s;

	SX_COUNT(dm_map_range, 1);
	if (!d || !(s = server(d, id)))
		return -1;
	if (!is_mmio || start > end) {
		sx_unlock();
		errno = EINVAL;
		return -1;
	}
	for (int r = 0; r < s->nranges; r++) {
		if (start <= s->end[r] && end >= s->start[r]) {
			sx_unlock();
			errno = EEXIST;
			return -1;
		}
	}
	if (s->nranges == SX_RANGES) {
		sx_unlock();
		errno = ENOSPC;
		return -1;
	}
	s->start[s->nranges] = start;
	s->end[s->nranges] = end;
	s->nranges++;
	sx_unlock();
	return 0;
}

int xendevicemodel_unmap_io_range_from_ioreq_server(xendevicemodel_handle *h,
						    domid_t domid,
						    ioservid_t id, int is_mmio,
						    uint64_t start,
						    uint64_t end)
{
	struct sx_dom *d = dom(h, domid);
	struct sx_server *s;

	SX_COUNT(dm_unmap_range, 1);
	(void)is_mmio;
	if (!d || !(s = server(d, id)))
		return -1;
	for (int r = 0; r < s->nranges; r++) {
		if (s->start[r] == start && s->end[r] == end) {
			s->start[r] = s->start[s->nranges - 1];
			s->end[r] = s->end[s->nranges - 1];
			s->nranges--;
			sx_unlock();
			return 0;
		}
	}
	sx_unlock();
	errno = ENOENT;
	return -1;
}

int xendevicemodel_set_ioreq_server_state(xendevicemodel_handle *h,
					  domid_t domid, ioservid_t id,
					  int enabled)
{
	struct sx_dom *d = dom(h, domid);
	struct sx_server *s;
	int di;

	SX_COUNT(dm_set_state, 1);
	if (!d || !(s = server(d, id)))
		return -1;
	di = sx_dom_index(d);
	s->enabled = enabled != 0;
	/* Xen writes the ports into the page when the server is enabled. */
	if (enabled)
		for (unsigned v = 0; v < d->nr_vcpus; v++)
			sx_slot(di, id, v)->vp_eport =
				(uint32_t)(16 + id * SX_MAX_VCPUS + v);
	sx_unlock();
	return 0;
}

int xendevicemodel_destroy_ioreq_server(xendevicemodel_handle *h, domid_t domid,
					ioservid_t id)
{
	struct sx_dom *d = dom(h, domid);
	struct sx_server *s;

	SX_COUNT(dm_destroy, 1);
	if (!d || !(s = server(d, id)))
		return -1;
	memset(s, 0, sizeof(*s));
	sx_unlock();
	return 0;
}

int xendevicemodel_set_irq_level(xendevicemodel_handle *h, domid_t domid,
				 unsigned int irq, unsigned int level)
{
	struct sx_dom *d = dom(h, domid);

	SX_COUNT(irq_level_calls, 1);
	if (!d)
		return -1;
	if (sx->arch != SX_ARM || irq < 32) {
		sx_unlock();
		errno = sx->arch != SX_ARM ? EOPNOTSUPP : EINVAL;
		return -1;
	}
	/* Edge-rising SPI: each level 1 is an edge, level 0 is ignored. */
	if (level) {
		SX_COUNT(spi_edges, 1);
		sx_irq_edge(d);
	}
	sx_unlock();
	return 0;
}

int xendevicemodel_set_isa_irq_level(xendevicemodel_handle *h, domid_t domid,
				     uint8_t irq, unsigned int level)
{
	struct sx_dom *d = dom(h, domid);

	SX_COUNT(isa_level_calls, 1);
	if (!d)
		return -1;
	if (sx->arch == SX_ARM || irq > 15) {
		sx_unlock();
		errno = sx->arch == SX_ARM ? ENOSYS : EINVAL;
		return -1;
	}
	if (d->type == SX_PVH) {
		/* Xen 4.17.7 took a page fault here. */
		SX_COUNT(isa_on_pvh, 1);
		sx_unlock();
		errno = EFAULT;
		return -1;
	}
	/* Only a 0→1 change of the assert bit reaches the guest. */
	if (level && !d->isa_level[irq]) {
		SX_COUNT(isa_edges, 1);
		sx_irq_edge(d);
	}
	d->isa_level[irq] = level != 0;
	sx_unlock();
	return 0;
}
