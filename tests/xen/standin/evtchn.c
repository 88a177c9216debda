/* Stand-in libxenevtchn: each vCPU's ioreq channel is a pair of eventfds
 * made before any fork; a handle's fd is an epoll set of the channels it
 * bound, so it is pollable like /dev/xen/evtchn. Binding needs an enabled
 * server's vp_eport, and a port held by a live process is refused. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <xenevtchn.h>

#include "hv.h"

#define MAX_BIND 64

struct binding {
	int used;
	evtchn_port_t local;
	int di, s;
	unsigned v;
};

struct xenevtchn_handle {
	int epfd;
	int restricted;
	domid_t domid;
	uint64_t id;
	struct binding b[MAX_BIND];
};

static _Atomic unsigned next_local = 100;

xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger,
				 unsigned int flags)
{
	xenevtchn_handle *h = calloc(1, sizeof(*h));

	(void)logger;
	(void)flags;
	if (!h)
		return NULL;
	h->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (h->epfd < 0) {
		free(h);
		return NULL;
	}
	sx_lock();
	h->id = sx->next_handle++;
	sx_unlock();
	return h;
}

static void unbind(xenevtchn_handle *h, struct binding *b)
{
	struct sx_server *s;

	epoll_ctl(h->epfd, EPOLL_CTL_DEL, sx->to_server[b->di][b->s][b->v],
		  NULL);
	sx_lock();
	s = &sx->doms[b->di].srv[b->s];
	if (s->bound_handle[b->v] == h->id) {
		s->bound_handle[b->v] = 0;
		s->bound_pid[b->v] = 0;
	}
	sx_unlock();
	b->used = 0;
}

int xenevtchn_close(xenevtchn_handle *h)
{
	if (!h)
		return 0;
	for (int i = 0; i < MAX_BIND; i++)
		if (h->b[i].used)
			unbind(h, &h->b[i]);
	close(h->epfd);
	free(h);
	return 0;
}

int xenevtchn_fd(xenevtchn_handle *h)
{
	return h->epfd;
}

int xenevtchn_restrict(xenevtchn_handle *h, domid_t domid)
{
	SX_COUNT(ev_restrict, 1);
	h->restricted = 1;
	h->domid = domid;
	return 0;
}

static bool holder_alive(const struct sx_server *s, unsigned v)
{
	/* A dead process's bindings went with it. */
	return s->bound_handle[v] &&
	       !(kill(s->bound_pid[v], 0) < 0 && errno == ESRCH);
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *h,
						     uint32_t domid,
						     evtchn_port_t remote)
{
	struct sx_dom *d;
	struct binding *b = NULL;
	struct epoll_event ev;

	SX_COUNT(ev_bind, 1);
	if (h->restricted && h->domid != domid) {
		SX_COUNT(restricted_violations, 1);
		errno = EPERM;
		return -1;
	}
	for (int i = 0; i < MAX_BIND && !b; i++)
		if (!h->b[i].used)
			b = &h->b[i];
	if (!b || remote == 0) {
		errno = EINVAL; /* port 0: bound before the server was enabled
				 */
		return -1;
	}
	sx_lock();
	d = sx_dom_find(domid);
	for (int s = 0; d && s < SX_MAX_SERVERS; s++) {
		int di = sx_dom_index(d);

		for (unsigned v = 0; v < d->nr_vcpus; v++) {
			struct sx_server *srv = &d->srv[s];

			if (!srv->enabled ||
			    sx_slot(di, s, v)->vp_eport != remote)
				continue;
			if (holder_alive(srv, v)) {
				sx_unlock();
				errno = EBUSY;
				return -1;
			}
			srv->bound_handle[v] = h->id;
			srv->bound_pid[v] = getpid();
			sx_unlock();
			*b = (struct binding){
				.used = 1,
				.local = atomic_fetch_add(&next_local, 1),
				.di = di,
				.s = s,
				.v = v};
			ev.events = EPOLLIN;
			ev.data.u32 = b->local;
			if (epoll_ctl(h->epfd, EPOLL_CTL_ADD,
				      sx->to_server[di][s][v], &ev) < 0) {
				unbind(h, b);
				return -1;
			}
			return (xenevtchn_port_or_error_t)b->local;
		}
	}
	sx_unlock();
	errno = EINVAL;
	return -1;
}

static struct binding *find(xenevtchn_handle *h, evtchn_port_t port)
{
	for (int i = 0; i < MAX_BIND; i++)
		if (h->b[i].used && h->b[i].local == port)
			return &h->b[i];
	errno = EINVAL;
	return NULL;
}

int xenevtchn_unbind(xenevtchn_handle *h, evtchn_port_t port)
{
	struct binding *b = find(h, port);

	SX_COUNT(ev_unbind, 1);
	if (!b)
		return -1;
	unbind(h, b);
	return 0;
}

int xenevtchn_notify(xenevtchn_handle *h, evtchn_port_t port)
{
	struct binding *b = find(h, port);
	uint64_t x = 1;

	SX_COUNT(ev_notify, 1);
	if (!b)
		return -1;
	return write(sx->to_guest[b->di][b->s][b->v], &x, 8) == 8 ? 0 : -1;
}

xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *h)
{
	struct epoll_event ev;
	struct binding *b;
	uint64_t x;

	SX_COUNT(ev_pending, 1);
	if (epoll_wait(h->epfd, &ev, 1, 0) != 1) {
		errno = EAGAIN;
		return -1;
	}
	b = find(h, ev.data.u32);
	if (!b)
		return -1;
	/* Consumed: like the pending bit, several notifications make one. */
	if (read(sx->to_server[b->di][b->s][b->v], &x, 8) != 8) {
		errno = EAGAIN;
		return -1;
	}
	return (xenevtchn_port_or_error_t)ev.data.u32;
}

int xenevtchn_unmask(xenevtchn_handle *h, evtchn_port_t port)
{
	SX_COUNT(ev_unmask, 1);
	return find(h, port) ? 0 : -1;
}
