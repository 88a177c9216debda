/* Stand-in libxengnttab: maps the guest frames behind grant references,
 * honouring read-only grants, and counts each reference's mappings so a
 * guest revoking a grant still mapped sees -EBUSY (Linux then marks the
 * device broken). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xengnttab.h>

#include "hv.h"

struct mapping {
	struct mapping *next;
	void *addr;
	uint32_t count;
	int di;
	uint32_t refs[];
};

struct xengntdev_handle {
	pthread_mutex_t lock;
	struct mapping *maps;
};

xengnttab_handle *xengnttab_open(struct xentoollog_logger *logger,
				 unsigned int flags)
{
	xengnttab_handle *h = calloc(1, sizeof(*h));

	(void)logger;
	(void)flags;
	if (h)
		pthread_mutex_init(&h->lock, NULL);
	return h;
}

/* Keeps gnt_peak_pages at the most grant pages ever live at once. */
static void note_live(uint64_t live)
{
	_Atomic uint64_t *peak = (_Atomic uint64_t *)&sx->c.gnt_peak_pages;
	uint64_t p = atomic_load(peak);

	while (live > p && !atomic_compare_exchange_weak(peak, &p, live))
		;
}

void sx_gnt_peak_reset(void)
{
	atomic_store((_Atomic uint64_t *)&sx->c.gnt_peak_pages,
		     atomic_load((_Atomic uint64_t *)&sx->c.gnt_live_pages));
}

int xengnttab_set_max_grants(xengnttab_handle *h, uint32_t nr_grants)
{
	(void)h;
	(void)nr_grants;
	return 0;
}

static void release_refs(struct mapping *m)
{
	sx_lock();
	for (uint32_t i = 0; i < m->count; i++)
		if (m->refs[i] < SX_MAX_GRANTS)
			sx->doms[m->di].grants[m->refs[i]].map_count--;
	sx_unlock();
}

int xengnttab_close(xengnttab_handle *h)
{
	if (!h)
		return 0;
	while (h->maps) {
		struct mapping *m = h->maps;

		h->maps = m->next;
		munmap(m->addr, (size_t)m->count * SX_PAGE);
		SX_COUNT(gnt_live_pages, -(uint64_t)m->count);
		release_refs(m);
		free(m);
	}
	pthread_mutex_destroy(&h->lock);
	free(h);
	return 0;
}

void *xengnttab_map_domain_grant_refs(xengnttab_handle *h, uint32_t count,
				      uint32_t domid, uint32_t *refs, int prot)
{
	struct mapping *m;
	struct sx_dom *d;
	uint64_t *gfns;
	int *err;
	void *p = NULL;
	int di = -1;

	SX_COUNT(gnt_map, 1);
	if (count == 0 || count > 1024) {
		errno = EINVAL;
		return NULL;
	}
	m = calloc(1, sizeof(*m) + count * sizeof(uint32_t));
	gfns = calloc(count, sizeof(*gfns));
	err = calloc(count, sizeof(*err));
	if (!m || !gfns || !err)
		goto out;
	sx_lock();
	d = sx_dom_find(domid);
	for (uint32_t i = 0; d && i < count; i++) {
		struct sx_grant *g =
			refs[i] < SX_MAX_GRANTS ? &d->grants[refs[i]] : NULL;

		if (!g || !g->in_use || ((prot & PROT_WRITE) && g->ro)) {
			d = NULL; /* GNTST_bad_gntref / permission_denied */
			break;
		}
		gfns[i] = g->gfn;
	}
	if (d) {
		di = sx_dom_index(d);
		for (uint32_t i = 0; i < count; i++)
			d->grants[refs[i]].map_count++;
	}
	sx_unlock();
	if (di < 0) {
		SX_COUNT(gnt_refused, 1);
		errno = EINVAL;
		goto out;
	}
	p = sx_map_frames(di, gfns, count, prot, err);
	m->di = di;
	m->count = count;
	memcpy(m->refs, refs, count * sizeof(uint32_t));
	for (uint32_t i = 0; p && i < count; i++)
		if (err[i])
			p = NULL;
	if (!p) {
		release_refs(m);
		errno = EINVAL;
		goto out;
	}
	m->addr = p;
	pthread_mutex_lock(&h->lock);
	m->next = h->maps;
	h->maps = m;
	pthread_mutex_unlock(&h->lock);
	m = NULL;
	SX_COUNT(gnt_map_pages, count);
	note_live(SX_COUNT(gnt_live_pages, count) + count);
out:
	free(m);
	free(gfns);
	free(err);
	return p;
}

int xengnttab_unmap(xengnttab_handle *h, void *start_address, uint32_t count)
{
	struct mapping **pp, *m = NULL;

	SX_COUNT(gnt_unmap, 1);
	pthread_mutex_lock(&h->lock);
	for (pp = &h->maps; *pp; pp = &(*pp)->next) {
		if ((*pp)->addr == start_address && (*pp)->count == count) {
			m = *pp;
			*pp = m->next;
			break;
		}
	}
	pthread_mutex_unlock(&h->lock);
	if (!m) {
		errno = EINVAL;
		return -1;
	}
	munmap(m->addr, (size_t)count * SX_PAGE);
	SX_COUNT(gnt_live_pages, -(uint64_t)count);
	release_refs(m);
	free(m);
	return 0;
}
