/* vd_xen_serve: one device for one guest, from setup to teardown. Ties the
 * IOREQ server, the register model, guest memory and the interrupt
 * together, and keeps the restart record. Never leaves a vCPU's ioreq
 * unanswered while it runs; never destroys a server a successor needs. */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <xen/io/xenbus.h>

#include "state.h"
#include "virtiod/ready.h"
#include "virtiod/sandbox.h"

#include "xen_priv.h"

#define POLL_MS	    250
#define LIVENESS_MS 1000

struct xdev {
	const struct vd_xen_config *cfg;
	const char *who;
	struct vd_xen_server srv;
	xc_interface *xch;
	struct xs_handle *xs;
	struct vd_xen_irq irq;
	struct vd_xen_mapcache *mc;
	struct vd_xen_grant *gr;
	struct vd_mem *mem;
	struct vd_mmio *mmio;
	struct vd_xen_ioreq_ctx io;
	struct vd_xen_state *state;
	struct vd_xen_dominfo info;
	bool have_info;
	char state_path[PATH_MAX];
	unsigned nq;
	struct vd_mmio_queue_state *qs; /* scratch, nq entries */
	/* While restoring after a crash: the predecessor's record, whose
	 * inflight regions the queues take over as they start. */
	const struct vd_xen_prev *prev;
};

static void raise_irq(void *ctx, uint32_t new_bits)
{
	(void)new_bits;
	vd_xen_irq_raise(&((struct xdev *)ctx)->irq);
}

static int queue_setup(void *ctx, unsigned idx, struct vd_queue_setup *setup)
{
	struct xdev *x = ctx;

	if (!x->state)
		return 0;
	return vd_xen_state_queue_start(
		x->state, idx, setup,
		x->prev ? vd_xen_prev_inflight(x->prev, idx) : NULL);
}

static void drop_mappings(void *ctx)
{
	struct xdev *x = ctx;

	if (x->mc)
		vd_xen_mapcache_invalidate(x->mc);
}

static const struct vd_mmio_ops mmio_ops = {
	.raise_irq = raise_irq,
	.queue_setup = queue_setup,
	.reset = drop_mappings,
};

/* After a driver write to a control register: keep the record current. */
static void record_device(struct xdev *x)
{
	struct vd_mmio_state st;

	if (!x->state)
		return;
	vd_mmio_save(x->mmio, &st, x->qs);
	vd_xen_state_set_device(x->state, &st, x->qs, false);
}

static void xs_set_state(struct xdev *x, int state)
{
	char path[512], val[8];

	unsigned n;
	char **dir;
	bool ok;

	if (!x->xs || !x->cfg->xs_backend_path)
		return;
	snprintf(path, sizeof(path), "%s/state", x->cfg->xs_backend_path);
	snprintf(val, sizeof(val), "%d", state);
	/* Never re-create a node the toolstack removed: look and write in
	 * one transaction (bounded retries on a conflict). */
	for (int tries = 0; tries < 8; tries++) {
		xs_transaction_t t = xs_transaction_start(x->xs);

		if (t == XBT_NULL)
			break;
		dir = xs_directory(x->xs, t, x->cfg->xs_backend_path, &n);
		free(dir);
		ok = dir && xs_write(x->xs, t, path, val, strlen(val));
		if (xs_transaction_end(x->xs, t, !ok)) {
			if (dir && !ok)
				vd_warn(x->who, "cannot write %s", path);
			return;
		}
		if (errno != EAGAIN)
			break;
	}
	vd_warn(x->who, "cannot write %s: %s", path, strerror(errno));
}

static int check_config(const struct vd_xen_config *cfg,
			const struct vd_model *model, const char *who)
{
	uint64_t size = cfg->mmio_size ? cfg->mmio_size : VD_MMIO_WINDOW_SIZE;

	if (cfg->domid == 0 || cfg->domid >= DOMID_FIRST_RESERVED) {
		vd_err(who, "domain %u cannot be served (dom0 or reserved)",
		       cfg->domid);
		return -EINVAL;
	}
	if (size < 0x100 + model->config_size ||
	    cfg->mmio_base + size - 1 < cfg->mmio_base) {
		vd_err(who,
		       "MMIO window 0x%" PRIx64 "+0x%" PRIx64
		       " cannot hold the registers and a %u-byte config",
		       cfg->mmio_base, size, model->config_size);
		return -EINVAL;
	}
	if (cfg->mmio_base & 0xfff)
		vd_warn(who,
			"MMIO base 0x%" PRIx64 " is not page aligned; "
			"Linux expects virtio-mmio windows on a page",
			cfg->mmio_base);
	return 0;
}

static int setup_memory(struct xdev *x, struct vd_model *model)
{
	const struct vd_xen_config *cfg = x->cfg;
	unsigned buckets;
	int rc;

	if (cfg->mem_mode == VD_XEN_MEM_GRANT) {
		/* The largest chain the model serves, each buffer across one
		 * more page than its length needs, plus an indirect table:
		 * one such chain always fits, more wait. */
		uint64_t per =
			model->max_desc_len
				? (model->max_desc_len + VD_XEN_PAGE_SIZE - 1) /
						  VD_XEN_PAGE_SIZE +
					  1
				: 1;
		uint64_t budget = cfg->grant_budget_pages
					  ? cfg->grant_budget_pages
					  : model->max_descs * per + 32;

		if (!model->max_descs && !cfg->grant_budget_pages)
			budget = 65536;
		rc = vd_xen_grant_new(cfg->domid, budget, x->who, &x->gr);
		if (rc < 0)
			return rc;
		/* Ring addresses are grant references, not guest-physical:
		 * the driver must translate (virtio 1.2 §6.1). */
		model->features |= 1ULL << VIRTIO_F_ACCESS_PLATFORM;
		x->mem = vd_mem_new_mapper(&vd_xen_grant_ops, x->gr);
	} else {
		if (cfg->map_cache_size == VD_XEN_MAP_CACHE_NONE)
			buckets = 0;
		else
			buckets = cfg->map_cache_size
					  ? cfg->map_cache_size
					  : VD_XEN_DEFAULT_MAP_CACHE_MIB;
		if (buckets > 65536)
			buckets = 65536; /* 64 GiB of mappings */
		rc = vd_xen_mapcache_new(x->srv.fmem, cfg->domid, buckets,
					 x->who, &x->mc);
		if (rc < 0)
			return rc;
		x->mem = vd_mem_new_mapper(&vd_xen_mapcache_ops, x->mc);
	}
	return x->mem ? 0 : -ENOMEM;
}

/* A predecessor's server for this window, if its record is whole and is
 * about this very domain (domids are reused). */
static int load_prev(struct xdev *x, struct vd_xen_prev *prev)
{
	int rc = vd_xen_prev_load(x->state_path, prev);

	if (rc == -ENOENT)
		return -1;
	if (rc < 0) {
		vd_warn(x->who, "%s: not a restart record, ignored",
			x->state_path);
		return -1;
	}
	if (x->have_info &&
	    memcmp(prev->dom_handle, x->info.handle, sizeof(x->info.handle))) {
		vd_info(x->who, "%s: about an earlier domain %u, ignored",
			x->state_path, x->cfg->domid);
		vd_xen_prev_free(prev);
		return -1;
	}
	return prev->server_id;
}

/* Bring the device back to where the predecessor left it. After a crash,
 * each queue takes its inflight region over as it starts (queue_setup) and
 * serves the chains that were in flight again, split or packed. */
static void restore_device(struct xdev *x, const struct vd_xen_prev *prev)
{
	int rc = -EINVAL;

	if (prev->have_device && prev->nq == x->nq) {
		for (unsigned i = 0; i < x->nq; i++)
			vd_xen_prev_queue(prev, i, &x->qs[i]);
		x->prev = prev;
		rc = vd_mmio_restore(x->mmio, &prev->st, x->qs, x->nq);
		x->prev = NULL;
	}
	if (rc < 0)
		vd_warn(x->who,
			"device state of the predecessor unusable (%s); "
			"the device starts reset",
			strerror(-rc));
	else
		vd_info(x->who, "device state restored (%s)",
			prev->clean ? "handover" : "after a crash");
	/* The record keeps InterruptStatus as of the last register write;
	 * a crash can lose a bit set since. */
	if (rc == 0 && !prev->clean)
		vd_mmio_assume_used_pending(x->mmio);
}

/* True while the guest lives; checks Xen at most once a LIVENESS_MS. */
static bool guest_alive(struct xdev *x)
{
	struct vd_xen_dominfo info;
	int rc;

	if (!x->xch)
		return true;
	rc = vd_xen_dominfo(x->xch, x->cfg->domid, &info);
	if (rc == -ESRCH || (rc == 0 && info.dying))
		return false;
	/* The same domid on another domain: ours is gone. */
	if (rc == 0 && x->have_info &&
	    memcmp(info.handle, x->info.handle, sizeof(info.handle)))
		return false;
	return true;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool control_write(uint64_t off)
{
	return off != VIRTIO_MMIO_QUEUE_NOTIFY &&
	       off != VIRTIO_MMIO_INTERRUPT_ACK && off < 0x100;
}

/* Answer what the event channel says is waiting. */
static void on_event(struct xdev *x)
{
	xenevtchn_port_or_error_t port = xenevtchn_pending(x->srv.xce);
	int v;

	if (port < 0)
		return;
	xenevtchn_unmask(x->srv.xce, (evtchn_port_t)port);
	v = vd_xen_server_vcpu(&x->srv, (evtchn_port_t)port);
	if (v < 0) {
		x->io.stats.spurious++;
		return;
	}
	{
		volatile struct ioreq *slot = &x->srv.slots[v];
		bool wr = slot->state == STATE_IOREQ_READY &&
			  slot->type == IOREQ_TYPE_COPY &&
			  slot->dir == IOREQ_WRITE &&
			  control_write(slot->addr - x->srv.base);

		if (vd_xen_ioreq_handle(&x->io, (unsigned)v, false) && wr)
			record_device(x);
	}
}

static void teardown(struct xdev *x, bool handover)
{
	if (x->mmio) {
		if (handover && x->state) {
			struct vd_mmio_state st;

			vd_mmio_suspend(x->mmio, &st, x->qs);
			vd_xen_state_set_device(x->state, &st, x->qs, true);
		}
		vd_mmio_free(x->mmio);
	}
	vd_mem_free(x->mem);
	vd_xen_mapcache_free(x->mc);
	vd_xen_grant_free(x->gr);
	vd_xen_server_close(&x->srv, !handover);
	vd_xen_state_close(x->state, !handover);
	if (!handover)
		xs_set_state(x, XenbusStateClosed);
	if (x->xs)
		xs_close(x->xs);
	if (x->xch)
		xc_interface_close(x->xch);
	free(x->qs);
}

static int serve_loop(struct xdev *x, volatile int *stop, bool *gone)
{
	struct pollfd pfd = {.fd = xenevtchn_fd(x->srv.xce), .events = POLLIN};
	uint64_t next_check = now_ms() + LIVENESS_MS;

	*gone = false;
	while (!stop || !*stop) {
		int n = poll(&pfd, 1, POLL_MS);

		if (n < 0 && errno != EINTR) {
			vd_err(x->who, "poll: %s", strerror(errno));
			return -errno;
		}
		if (n > 0 && (pfd.revents & POLLIN))
			on_event(x);
		if (now_ms() >= next_check) {
			next_check = now_ms() + LIVENESS_MS;
			if (!guest_alive(x)) {
				vd_info(x->who, "domain %u is gone",
					x->cfg->domid);
				*gone = true;
				return 0;
			}
		}
	}
	return 0;
}

/* What reaching guest memory cost over the device's life: operators and
 * the real-Xen tests read whether the mapping cache or grants did the work
 * (with the cache, steady-state I/O makes no map call). */
static void log_mem_stats(struct xdev *x)
{
	if (x->gr) {
		struct vd_xen_grant_stats g;

		vd_xen_grant_stats(x->gr, &g);
		vd_info(x->who,
			"guest memory: %" PRIu64 " grant map calls (%" PRIu64
			" pages), %" PRIu64 " unmaps, %" PRIu64
			" refused, %" PRIu64
			" chains held for the budget, 0 foreign map calls",
			g.map_calls, g.pages_mapped, g.unmap_calls, g.refused,
			g.held);
	} else if (x->mc) {
		struct vd_xen_mapcache_stats m;

		vd_xen_mapcache_stats(x->mc, &m);
		vd_info(x->who,
			"guest memory: %" PRIu64 " foreign map calls (%" PRIu64
			" pages), %" PRIu64 " unmaps, %" PRIu64
			" hits, %" PRIu64 " misses, 0 grant map calls",
			m.map_calls, m.pages_mapped, m.unmap_calls, m.hits,
			m.misses);
	}
}

int vd_xen_serve(const struct vd_xen_config *cfg, struct vd_model *model,
		 volatile int *stop)
{
	struct xdev x = {.cfg = cfg, .who = cfg->who ? cfg->who : "xen"};
	struct vd_xen_prev prev = {.server_id = -1};
	uint64_t size = cfg->mmio_size ? cfg->mmio_size : VD_MMIO_WINDOW_SIZE;
	bool gone = false, handover;
	unsigned qmax = model->max_queue_size;
	char why[640];
	int rc, prev_id;

	rc = check_config(cfg, model, x.who);
	if (rc < 0) {
		model->ops->destroy(model);
		return rc;
	}
	x.nq = model->num_queues;
	x.qs = calloc(x.nq ? x.nq : 1, sizeof(*x.qs));
	/* libxenctrl tells the domain's type and liveness; in a driver
	 * domain the sysctl is refused and both stay unknown. */
	x.xch = xc_interface_open(NULL, NULL, 0);
	rc = vd_xen_dominfo(x.xch, cfg->domid, &x.info);
	if (rc == -ESRCH || (rc == 0 && x.info.dying)) {
		vd_err(x.who, "domain %u does not exist or is dying",
		       cfg->domid);
		rc = -ESRCH;
		goto fail_model;
	}
	x.have_info = rc == 0;
	rc = x.qs ? vd_xen_server_open(&x.srv, cfg->domid, cfg->mmio_base, size,
				       x.who)
		  : -ENOMEM;
	if (rc < 0)
		goto fail_model;
	rc = vd_xen_irq_init(&x.irq, x.srv.dm, x.xch, cfg->domid, cfg->irq,
			     x.who);
	if (rc < 0)
		goto fail_model;
	vd_xen_state_path(x.state_path, sizeof(x.state_path), cfg->state_dir,
			  cfg->domid, cfg->mmio_base);
	if (mkdir(cfg->state_dir ? cfg->state_dir : VD_XEN_STATE_DIR, 0700) <
		    0 &&
	    errno != EEXIST)
		vd_warn(x.who, "cannot create the state directory: %s",
			strerror(errno));
	/* A record others could write would steer a restart (which server,
	 * which chains): refuse to serve rather than trust or replace it. */
	rc = vd_xen_state_check(x.state_path, why, sizeof(why));
	if (rc < 0 && rc != -ENOENT) {
		vd_err(x.who, "%s", why);
		goto fail_model;
	}
	prev_id = load_prev(&x, &prev);
	rc = vd_xen_server_start(&x.srv, prev_id);
	if (rc < 0)
		goto fail_model;
	rc = setup_memory(&x, model);
	if (rc < 0)
		goto fail_model;
	rc = vd_mmio_new(model, x.mem, &mmio_ops, &x, x.who, &x.mmio);
	if (rc < 0)
		goto fail_model;
	model = NULL; /* owned by the register model now */
	rc = vd_xen_state_create(x.state_path, x.nq, qmax, &x.state);
	if (rc < 0) {
		vd_warn(x.who, "%s: %s; a restart will not find this server",
			x.state_path, strerror(-rc));
		x.state = NULL;
	} else {
		vd_xen_state_set_server(x.state, x.srv.id, x.info.handle);
	}
	if (x.srv.taken_over && prev.have_device)
		restore_device(&x, &prev);
	vd_xen_prev_free(&prev);
	record_device(&x);
	rc = vd_xen_server_restrict(&x.srv);
	if (rc < 0)
		goto fail;
	x.io = (struct vd_xen_ioreq_ctx){
		.srv = &x.srv,
		.mmio = x.mmio,
		.invalidate = drop_mappings,
		.opaque = &x,
		.rl = VD_RATELIMIT_INIT,
		.who = x.who,
	};
	if (cfg->xs_backend_path) {
		x.xs = xs_open(0);
		if (!x.xs)
			vd_warn(x.who, "cannot reach xenstore: %s",
				strerror(errno));
		/* The window is claimed: the guest may come (4.17's toolstack
		 * waits for InitWait). */
		xs_set_state(&x, XenbusStateInitWait);
	}
	vd_info(x.who,
		"serving domain %u: virtio-mmio 0x%" PRIx64 "-0x%" PRIx64
		" irq %u, %u vCPUs, IOREQ server %u%s, %s memory",
		cfg->domid, cfg->mmio_base, cfg->mmio_base + size - 1, cfg->irq,
		x.srv.nr_vcpus, x.srv.id,
		x.srv.taken_over ? " (taken over)" : "",
		cfg->mem_mode == VD_XEN_MEM_GRANT ? "grant" : "foreign");
	vd_ready("IOREQ server enabled");
	/* Every Xen handle, the state file and xenstore are open. */
	rc = vd_sandbox_enter(VD_SANDBOX_XEN_LOOP, x.who);
	if (rc < 0)
		goto fail;
	/* A predecessor may have left vCPUs waiting, their event consumed:
	 * answer them now. */
	for (unsigned v = 0; v < x.srv.nr_vcpus; v++)
		vd_xen_ioreq_handle(&x.io, v, x.srv.taken_over);
	rc = serve_loop(&x, stop, &gone);
	/* Without a record no successor could find the server: remove it
	 * rather than leave an orphan claiming the window. */
	handover = !gone && stop && *stop == VD_HANDOVER && x.state;
	vd_info(x.who,
		"%s: %" PRIu64 " MMIO ioreqs, %" PRIu64
		" invalidations, %" PRIu64 " unsupported, %" PRIu64
		" spurious events",
		handover ? "handing over" : "stopping", x.io.stats.mmio,
		x.io.stats.invalidate, x.io.stats.unsupported,
		x.io.stats.spurious);
	log_mem_stats(&x);
	teardown(&x, handover);
	return rc;
fail_model:
	if (model)
		model->ops->destroy(model);
fail:
	vd_xen_prev_free(&prev);
	teardown(&x, false);
	return rc;
}
