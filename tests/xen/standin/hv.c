/* The stand-in hypervisor: shared state, domains, and the guest's side of
 * ioreqs, interrupts and grants. Test-only; aborts on setup failure. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <xenctrl.h>

#include "hv.h"

struct sx_hv *sx;
static uint8_t *ram_view[SX_MAX_DOMS];

static void die(const char *what)
{
	perror(what);
	abort();
}

void sx_lock(void)
{
	int rc = pthread_mutex_lock(&sx->lock);

	/* A daemon killed while holding it (restart tests). */
	if (rc == EOWNERDEAD)
		pthread_mutex_consistent(&sx->lock);
}

void sx_unlock(void)
{
	pthread_mutex_unlock(&sx->lock);
}

static int new_eventfd(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	if (fd < 0)
		die("eventfd");
	return fd;
}

void sx_init(enum sx_arch arch)
{
	pthread_mutexattr_t a;
	int fd;

	fd = memfd_create("sx-hv", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, sizeof(struct sx_hv)) < 0)
		die("memfd sx-hv");
	sx = mmap(NULL, sizeof(struct sx_hv), PROT_READ | PROT_WRITE,
		  MAP_SHARED, fd, 0);
	if (sx == MAP_FAILED)
		die("mmap sx-hv");
	memset(sx, 0, sizeof(*sx));
	sx->shm_fd = fd;
	sx->arch = arch;
	sx->xc_privileged = 1;
	sx->next_handle = 1;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&sx->lock, &a);
	for (int d = 0; d < SX_MAX_DOMS; d++) {
		char name[32];

		snprintf(name, sizeof(name), "sx-ram%d", d);
		sx->ram_fd[d] = memfd_create(name, MFD_CLOEXEC);
		if (sx->ram_fd[d] < 0 ||
		    ftruncate(sx->ram_fd[d], (off_t)SX_RAM_MAX) < 0)
			die("memfd ram");
		ram_view[d] = mmap(NULL, SX_RAM_MAX, PROT_READ | PROT_WRITE,
				   MAP_SHARED, sx->ram_fd[d], 0);
		if (ram_view[d] == MAP_FAILED)
			die("mmap ram");
		sx->irq_fd[d] = new_eventfd();
		for (int s = 0; s < SX_MAX_SERVERS; s++) {
			for (int v = 0; v < SX_MAX_VCPUS; v++) {
				sx->to_server[d][s][v] = new_eventfd();
				sx->to_guest[d][s][v] = new_eventfd();
			}
		}
	}
	for (int i = 0; i < SX_XS_CONNS; i++)
		sx->xs_fd[i] = new_eventfd();
}

void sx_set_arch(enum sx_arch arch)
{
	sx->arch = arch;
}

void sx_set_xc_privileged(bool on)
{
	sx->xc_privileged = on;
}

void sx_set_backend_domid(uint32_t domid)
{
	sx->self_domid = domid;
}

struct sx_dom *sx_dom_find(uint32_t domid)
{
	for (int i = 0; i < SX_MAX_DOMS; i++)
		if (sx->doms[i].used && !sx->doms[i].gone &&
		    sx->doms[i].domid == domid)
			return &sx->doms[i];
	errno = ESRCH;
	return NULL;
}

int sx_dom_index(const struct sx_dom *d)
{
	return (int)(d - sx->doms);
}

struct ioreq *sx_slot(int di, int s, unsigned v)
{
	return (struct ioreq *)sx->pages[di][s] + v;
}

size_t sx_page_offset(int di, int s)
{
	return (size_t)(sx->pages[di][s] - (uint8_t *)sx);
}

int sx_domain_create(uint32_t domid, enum sx_domtype type, unsigned nr_vcpus,
		     unsigned ram_mib)
{
	struct sx_dom *d = NULL;
	int di;

	if (nr_vcpus < 1 || nr_vcpus > SX_MAX_VCPUS ||
	    (uint64_t)ram_mib << 20 > SX_RAM_MAX)
		return -EINVAL;
	sx_lock();
	for (di = 0; di < SX_MAX_DOMS; di++) {
		if (!sx->doms[di].used || sx->doms[di].gone) {
			d = &sx->doms[di];
			break;
		}
	}
	if (!d) {
		sx_unlock();
		return -ENOSPC;
	}
	memset(d, 0, sizeof(*d));
	d->used = 1;
	d->domid = domid;
	d->type = type;
	d->nr_vcpus = nr_vcpus;
	d->ram_size = (uint64_t)ram_mib << 20;
	d->handle[0] = (uint8_t)domid;
	d->handle[1] = (uint8_t)di;
	d->handle[2] = (uint8_t)(sx->next_handle++);
	memset(sx->pages[di], 0, sizeof(sx->pages[di]));
	sx_unlock();
	/* Fresh RAM and no stale events from an earlier domain here. */
	memset(ram_view[di], 0, (size_t)ram_mib << 20);
	for (int s = 0; s < SX_MAX_SERVERS; s++) {
		for (int v = 0; v < SX_MAX_VCPUS; v++) {
			uint64_t x;

			while (read(sx->to_server[di][s][v], &x, 8) == 8)
				;
			while (read(sx->to_guest[di][s][v], &x, 8) == 8)
				;
		}
	}
	return 0;
}

void sx_domain_set_hole(uint32_t domid, uint64_t start, uint64_t end)
{
	struct sx_dom *d;

	sx_lock();
	d = sx_dom_find(domid);
	if (d) {
		d->hole_start = start;
		d->hole_end = end;
	}
	sx_unlock();
}

void sx_domain_destroy(uint32_t domid)
{
	struct sx_dom *d;

	sx_lock();
	d = sx_dom_find(domid);
	if (d) {
		/* Xen tears the guest's servers down with it. */
		memset(d->srv, 0, sizeof(d->srv));
		d->dying = 1;
		d->gone = 1;
		sx_xs_fire_special("@releaseDomain");
	}
	sx_unlock();
}

uint8_t *sx_guest_ram(uint32_t domid)
{
	struct sx_dom *d;
	int di = -1;

	sx_lock();
	d = sx_dom_find(domid);
	if (d)
		di = sx_dom_index(d);
	sx_unlock();
	return di < 0 ? NULL : ram_view[di];
}

void sx_counters(struct sx_counters *out)
{
	sx_lock();
	*out = sx->c;
	sx_unlock();
}

unsigned sx_servers(uint32_t domid)
{
	struct sx_dom *d;
	unsigned n = 0;

	sx_lock();
	d = sx_dom_find(domid);
	for (int s = 0; d && s < SX_MAX_SERVERS; s++)
		n += d->srv[s].used != 0;
	sx_unlock();
	return n;
}

static int claimer(struct sx_dom *d, uint64_t addr, unsigned size)
{
	for (int s = 0; s < SX_MAX_SERVERS; s++) {
		struct sx_server *srv = &d->srv[s];

		if (!srv->used || !srv->enabled)
			continue;
		/* Xen picks a server whose range holds the whole access. */
		for (int r = 0; r < srv->nranges; r++)
			if (addr >= srv->start[r] &&
			    addr + size - 1 <= srv->end[r])
				return s;
	}
	return -1;
}

int sx_server_for(uint32_t domid, uint64_t addr)
{
	struct sx_dom *d;
	int s = -1;

	sx_lock();
	d = sx_dom_find(domid);
	if (d)
		s = claimer(d, addr, 1);
	sx_unlock();
	return s;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Put the request on vCPU v's slot of server s, notify, and block like
 * the vCPU until IORESP_READY. */
static int issue(int di, int s, unsigned v, struct ioreq *rq)
{
	volatile struct ioreq *slot = sx_slot(di, s, v);
	int tg = sx->to_guest[di][s][v];
	uint64_t x = 1, deadline = now_ms() + SX_WAIT_MS;

	while (read(tg, &x, 8) == 8)
		; /* stale notifications */
	slot->addr = rq->addr;
	slot->data = rq->data;
	slot->count = rq->count;
	slot->size = rq->size;
	slot->dir = rq->dir;
	slot->df = rq->df;
	slot->data_is_ptr = rq->data_is_ptr;
	slot->type = rq->type;
	xen_wmb();
	slot->state = STATE_IOREQ_READY;
	x = 1;
	SX_COUNT(ioreqs_sent, 1);
	if (write(sx->to_server[di][s][v], &x, 8) != 8)
		return -EIO;
	for (;;) {
		struct pollfd p = {.fd = tg, .events = POLLIN};
		uint64_t now = now_ms();

		if (slot->state == STATE_IORESP_READY)
			break;
		if (now >= deadline) {
			SX_COUNT(ioreq_timeouts, 1);
			return -ETIMEDOUT;
		}
		poll(&p, 1, (int)(deadline - now < 50 ? deadline - now : 50));
		while (read(tg, &x, 8) == 8)
			;
	}
	xen_rmb();
	rq->data = slot->data;
	slot->state = STATE_IOREQ_NONE;
	SX_COUNT(ioreqs_answered, 1);
	return 0;
}

static int find_vcpu(uint32_t domid, unsigned v, int *di)
{
	struct sx_dom *d = sx_dom_find(domid);

	if (!d)
		return -ESRCH;
	if (v >= d->nr_vcpus)
		return -EINVAL;
	*di = sx_dom_index(d);
	return 0;
}

static int mmio(uint32_t domid, unsigned v, uint64_t addr, unsigned size,
		bool read, uint64_t *val)
{
	struct ioreq rq = {.addr = addr,
			   .data = read ? 0 : *val,
			   .count = 1,
			   .size = size,
			   .dir = read ? IOREQ_READ : IOREQ_WRITE,
			   .type = IOREQ_TYPE_COPY};
	int di, s, rc;

	sx_lock();
	rc = find_vcpu(domid, v, &di);
	s = rc ? -1 : claimer(&sx->doms[di], addr, size);
	if (!rc && s < 0) {
		SX_COUNT(unclaimed, 1);
		if (sx->arch == SX_ARM) {
			SX_COUNT(arm_aborts, 1);
			rc = -EFAULT;
		} else if (read) {
			*val = size < 8 ? (1ULL << (size * 8)) - 1 : ~0ULL;
		}
		sx_unlock();
		return rc;
	}
	sx_unlock();
	if (rc)
		return rc;
	rc = issue(di, s, v, &rq);
	if (!rc && read)
		*val = rq.data;
	return rc;
}

int sx_mmio_read(uint32_t domid, unsigned v, uint64_t addr, unsigned size,
		 uint64_t *val)
{
	return mmio(domid, v, addr, size, true, val);
}

int sx_mmio_write(uint32_t domid, unsigned v, uint64_t addr, unsigned size,
		  uint64_t val)
{
	return mmio(domid, v, addr, size, false, &val);
}

int sx_raw_ioreq(uint32_t domid, int id, unsigned v, uint8_t type, bool read,
		 uint64_t addr, uint32_t size, uint32_t count, bool data_is_ptr,
		 uint64_t *data)
{
	struct ioreq rq = {.addr = addr,
			   .data = *data,
			   .count = count,
			   .size = size,
			   .dir = read ? IOREQ_READ : IOREQ_WRITE,
			   .data_is_ptr = data_is_ptr,
			   .type = type};
	int rc = sx_ioreq(domid, id, v, &rq);

	*data = rq.data;
	return rc;
}

int sx_ioreq(uint32_t domid, int id, unsigned v, struct ioreq *rq)
{
	int di, rc;

	sx_lock();
	rc = find_vcpu(domid, v, &di);
	if (!rc &&
	    (id < 0 || id >= SX_MAX_SERVERS || !sx->doms[di].srv[id].enabled))
		rc = -ENOENT;
	sx_unlock();
	if (rc)
		return rc;
	return issue(di, id, v, rq);
}

int sx_invalidate(uint32_t domid, unsigned v)
{
	int di, rc;

	sx_lock();
	rc = find_vcpu(domid, v, &di);
	sx_unlock();
	for (int s = 0; !rc && s < SX_MAX_SERVERS; s++) {
		struct ioreq rq = {.type = IOREQ_TYPE_INVALIDATE,
				   .dir = IOREQ_WRITE,
				   .size = 8,
				   .count = 1};
		int on;

		sx_lock();
		on = sx->doms[di].srv[s].enabled;
		sx_unlock();
		if (on)
			rc = issue(di, s, v, &rq);
	}
	return rc;
}

void sx_spurious_event(uint32_t domid, int id, unsigned v)
{
	uint64_t x = 1;
	int di;

	sx_lock();
	if (find_vcpu(domid, v, &di) == 0 && id >= 0 && id < SX_MAX_SERVERS &&
	    write(sx->to_server[di][id][v], &x, 8) != 8)
		perror("spurious event");
	sx_unlock();
}

/* ------------------------------------------------------------ interrupts */

void sx_irq_edge(struct sx_dom *d)
{
	uint64_t x = 1;

	atomic_fetch_add(&d->edges, 1);
	if (write(sx->irq_fd[sx_dom_index(d)], &x, 8) != 8)
		perror("irq edge");
}

uint64_t sx_irq_edges(uint32_t domid)
{
	struct sx_dom *d;
	uint64_t n = 0;

	sx_lock();
	d = sx_dom_find(domid);
	if (d)
		n = atomic_load(&d->edges);
	sx_unlock();
	return n;
}

uint64_t sx_irq_wait(uint32_t domid, uint64_t seen, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms, n;

	int di = -1;

	sx_lock();
	if (sx_dom_find(domid))
		di = sx_dom_index(sx_dom_find(domid));
	sx_unlock();
	while ((n = sx_irq_edges(domid)) <= seen && di >= 0) {
		struct pollfd p = {.fd = sx->irq_fd[di], .events = POLLIN};
		uint64_t now = now_ms(), x;

		if (now >= deadline)
			break;
		/* Every waiter sees each edge: the fd only wakes, the count
		 * is in the shared state. */
		poll(&p, 1, (int)(deadline - now));
		if (p.revents && read(sx->irq_fd[di], &x, 8) != 8)
			continue;
	}
	return n;
}

/* ------------------------------------------------------------ grants */

int sx_grant(uint32_t domid, uint64_t gfn, unsigned n, bool readonly)
{
	struct sx_dom *d;
	int first = -1;

	sx_lock();
	d = sx_dom_find(domid);
	/* First fit of n free consecutive entries; ref 0 stays reserved as
	 * in Xen. */
	for (unsigned r = 1; d && n && r + n <= SX_MAX_GRANTS; r++) {
		unsigned k;

		for (k = 0; k < n && !d->grants[r + k].in_use; k++)
			;
		if (k == n) {
			for (k = 0; k < n; k++)
				d->grants[r + k] =
					(struct sx_grant){.gfn = gfn + k,
							  .in_use = 1,
							  .ro = readonly};
			first = (int)r;
			break;
		}
		r += k;
	}
	sx_unlock();
	return first;
}

int sx_ungrant(uint32_t domid, uint32_t ref, unsigned n)
{
	struct sx_dom *d;
	int rc = 0;

	sx_lock();
	d = sx_dom_find(domid);
	for (unsigned k = 0; d && k < n && ref + k < SX_MAX_GRANTS; k++) {
		if (d->grants[ref + k].map_count)
			rc = -EBUSY; /* still mapped: stays granted */
		else
			d->grants[ref + k].in_use = 0;
	}
	sx_unlock();
	return d ? rc : -ESRCH;
}

unsigned sx_grant_mapped(uint32_t domid, uint32_t ref)
{
	struct sx_dom *d;
	unsigned n = 0;

	sx_lock();
	d = sx_dom_find(domid);
	if (d && ref < SX_MAX_GRANTS)
		n = (unsigned)d->grants[ref].map_count;
	sx_unlock();
	return n;
}

static bool frame_ok(const struct sx_dom *d, uint64_t gfn)
{
	uint64_t gpa = gfn * SX_PAGE;

	return gfn < d->ram_size / SX_PAGE &&
	       !(gpa >= d->hole_start && gpa < d->hole_end);
}

void *sx_map_frames(int di, const uint64_t *gfns, unsigned n, int prot,
		    int *err)
{
	struct sx_dom *d = &sx->doms[di];
	uint8_t *area = mmap(NULL, (size_t)n * SX_PAGE, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (area == MAP_FAILED)
		return NULL;
	for (unsigned i = 0; i < n;) {
		unsigned run = 1;
		int e = 0;

		if (!frame_ok(d, gfns[i])) {
			/* Left PROT_NONE: touching it faults, as a frame the
			 * guest lacks would. */
			err[i++] = -EINVAL;
			continue;
		}
		/* Consecutive frames in one mmap, populated at once: Xen
		 * maps present frames, and a page fault per frame made the
		 * matrix tests' large mappings slow. */
		while (i + run < n && gfns[i + run] == gfns[i] + run &&
		       frame_ok(d, gfns[i + run]))
			run++;
		if (mmap(area + (size_t)i * SX_PAGE, (size_t)run * SX_PAGE,
			 prot, MAP_SHARED | MAP_FIXED | MAP_POPULATE,
			 sx->ram_fd[di],
			 (off_t)(gfns[i] * SX_PAGE)) == MAP_FAILED)
			e = -errno;
		for (unsigned k = 0; k < run; k++)
			err[i + k] = e;
		i += run;
	}
	return area;
}
