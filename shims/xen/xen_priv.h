/* What the Xen shim's files share. Nothing outside shims/xen includes this
 * (the stand-in tests read the counters it declares). */
#ifndef VIRTIOD_SHIM_XEN_PRIV_H
#define VIRTIOD_SHIM_XEN_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <xenctrl.h>
#include <xendevicemodel.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xengnttab.h>
#include <xenstore.h>

#include <xen/hvm/ioreq.h>

#include "virtiod/guest_mem.h"
#include "virtiod/log.h"
#include "virtiod/virtio_mmio.h"
#include "xen.h"

#define VD_XEN_PAGE_SHIFT 12
#define VD_XEN_PAGE_SIZE  (1UL << VD_XEN_PAGE_SHIFT)
/* One ioreq page holds 4096 / 32 per-vCPU slots. */
#define VD_XEN_MAX_VCPUS	     (VD_XEN_PAGE_SIZE / sizeof(struct ioreq))
#define VD_XEN_DEFAULT_MAP_CACHE_MIB 64u
#define VD_XEN_STATE_DIR	     "/run/virtiod"

/* ---------------------------------------------------------------- domain */

enum vd_xen_arch {
	VD_XEN_ARCH_UNKNOWN,
	VD_XEN_ARCH_X86,
	VD_XEN_ARCH_ARM,
};

struct vd_xen_dominfo {
	bool dying;    /* dying, or shut down for good */
	bool hvm;      /* an HVM container (HVM or PVH on x86, any Arm guest) */
	bool isa_irqs; /* x86: emulated PIC and IO-APIC present (HVM, not PVH)
			*/
	uint8_t handle[16]; /* the domain's UUID */
};

/* The hypervisor's architecture, from XENVER_capabilities. */
enum vd_xen_arch vd_xen_arch(xc_interface *xch);
/* 0, -ESRCH (no such domain), or -errno (e.g. -EPERM in a driver domain,
 * where the sysctl is not allowed). */
int vd_xen_dominfo(xc_interface *xch, uint32_t domid,
		   struct vd_xen_dominfo *out);

/* ---------------------------------------------------------------- IOREQ server
 */

struct vd_xen_server {
	xendevicemodel_handle *dm;
	xenforeignmemory_handle *fmem;
	xenevtchn_handle *xce;
	uint32_t domid;
	ioservid_t id;
	bool created; /* exists in Xen (made or taken over by us) */
	bool range_mapped;
	bool enabled;
	bool taken_over; /* found from a predecessor */
	uint64_t base, size;
	unsigned nr_vcpus;
	xenforeignmemory_resource_handle *res;
	struct ioreq *slots;  /* nr_vcpus slots of the ioreq page */
	evtchn_port_t *local; /* per vCPU, -1 if unbound */
	evtchn_port_t *remote;
	const char *who;
};

/* Opens the three handles and reads the vCPU count. */
int vd_xen_server_open(struct vd_xen_server *s, uint32_t domid, uint64_t base,
		       uint64_t size, const char *who);
/* Create (or take over server `prev_id` if >= 0 and it still claims our
 * window), map its page, claim the window, enable, bind. */
int vd_xen_server_start(struct vd_xen_server *s, int prev_id);
/* Restrict the handles to the guest (after setup). */
int vd_xen_server_restrict(struct vd_xen_server *s);
/* destroy: disable, unclaim and destroy the server; otherwise only unbind
 * and unmap (a successor takes it over). Closes the handles. */
void vd_xen_server_close(struct vd_xen_server *s, bool destroy);
/* vCPU index for a local port, or -1. */
int vd_xen_server_vcpu(const struct vd_xen_server *s, evtchn_port_t port);

/* ---------------------------------------------------------------- ioreqs */

struct vd_xen_ioreq_stats {
	uint64_t mmio, invalidate, unsupported, spurious, outside;
};

struct vd_xen_ioreq_ctx {
	struct vd_xen_server *srv;
	struct vd_mmio *mmio;
	void (*invalidate)(void *opaque); /* IOREQ_TYPE_INVALIDATE */
	void *opaque;
	struct vd_ratelimit rl;
	struct vd_xen_ioreq_stats stats;
	const char *who;
};

/* Serve vCPU v's slot if it holds a request (READY; or INPROCESS when
 * `resume`, left by a predecessor), answer it and notify. Returns 1 if a
 * request was answered, 0 if the slot was idle (spurious event). */
int vd_xen_ioreq_handle(struct vd_xen_ioreq_ctx *c, unsigned v, bool resume);

/* ---------------------------------------------------------------- interrupts
 */

enum vd_xen_irq_kind {
	VD_XEN_IRQ_SPI, /* Arm: xendevicemodel_set_irq_level, edge */
	VD_XEN_IRQ_ISA, /* x86 HVM: set_isa_irq_level pulse */
};

struct vd_xen_irq {
	xendevicemodel_handle *dm;
	uint32_t domid;
	uint32_t irq;
	enum vd_xen_irq_kind kind;
	const char *who;
	/* ISA: a pulse is two calls; another thread's pulse between them
	 * would meet the line still high and be lost. */
	pthread_mutex_t pulse;
	_Atomic uint64_t raised, failed;
};

/* Chooses how to raise `irq` for this guest; refuses (-EOPNOTSUPP) what
 * could harm Xen or cannot work (ISA IRQs for PVH or an unknown type). */
int vd_xen_irq_init(struct vd_xen_irq *irq, xendevicemodel_handle *dm,
		    xc_interface *xch, uint32_t domid, uint32_t line,
		    const char *who);
void vd_xen_irq_raise(struct vd_xen_irq *irq);

/* ---------------------------------------------------------------- memory */

struct vd_xen_mapcache;

struct vd_xen_mapcache_stats {
	uint64_t map_calls, unmap_calls, pages_mapped;
	uint64_t hits, misses, invalidations;
	unsigned live_buckets, pinned_buckets;
};

#define VD_XEN_BUCKET_SHIFT 20 /* 1 MiB buckets: 256 pages per map call */

/* buckets: cache capacity in 1 MiB buckets; 0 maps per request (every
 * translate maps, every release unmaps). */
int vd_xen_mapcache_new(xenforeignmemory_handle *fmem, uint32_t domid,
			unsigned buckets, const char *who,
			struct vd_xen_mapcache **out);
void vd_xen_mapcache_free(struct vd_xen_mapcache *mc);
/* Drop every unpinned bucket; pinned ones are unmapped on release. */
void vd_xen_mapcache_invalidate(struct vd_xen_mapcache *mc);
void vd_xen_mapcache_stats(struct vd_xen_mapcache *mc,
			   struct vd_xen_mapcache_stats *out);
extern const struct vd_mem_ops vd_xen_mapcache_ops;

struct vd_xen_grant;

struct vd_xen_grant_stats {
	uint64_t map_calls, unmap_calls, pages_mapped, refused;
	uint64_t held; /* chains that waited for the budget */
};

/* budget: grant pages each queue may hold mapped for requests (rings not
 * counted); a chain that would pass it waits for earlier ones. */
int vd_xen_grant_new(uint32_t domid, uint64_t budget, const char *who,
		     struct vd_xen_grant **out);
void vd_xen_grant_free(struct vd_xen_grant *g);
void vd_xen_grant_stats(struct vd_xen_grant *g, struct vd_xen_grant_stats *out);
extern const struct vd_mem_ops vd_xen_grant_ops;

#define VD_XEN_GRANT_BIT (1ULL << 63)

/* ---------------------------------------------------------------- devices */

/* The shim's options for one device (struct vd_shim.opts_size): from the
 * command line, a configuration line or a toolstack node. Plain data (the
 * launcher copies it); the pointers of cfg are set when it is served. */
struct vd_xen_opts {
	struct vd_xen_config cfg;
	bool have_domid, have_base, have_irq;
	bool have_grant;     /* grant or foreign chosen, not from xenstore */
	char xs_path[256];   /* backend node to report state to, "" if none */
	char state_dir[256]; /* "": VD_XEN_STATE_DIR */
	/* Command line only. */
	bool placed; /* a per-device option (--xen-domid ...) was given */
	const char *config; /* --config FILE */
};

/* A device to serve, from the static file, the watcher's mapping file or
 * the toolstack's xenstore nodes: the device record the composition root
 * builds the model from, and where this shim serves it. */
struct vd_xen_device_spec {
	struct vd_device_spec dev;
	struct vd_xen_opts xen;
	char domain[64]; /* guest name (watcher mapping), "" if by domid */
	uint32_t devid;
};

/* An unsigned number, decimal or 0x hex, at most max: 0 or -EINVAL. */
int vd_xen_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* Set (or replace) a device option. -E2BIG, or -ENOSPC when full. */
int vd_xen_spec_set_opt(struct vd_device_spec *s, const char *name,
			const char *val);
/* One line of the configuration format (docs/xen.md): 0 a device, 1 a
 * blank or comment line, -EINVAL with a reason in err. */
int vd_xen_config_parse_line(const char *line, struct vd_xen_device_spec *s,
			     char *err, size_t errlen);
/* Every device of a file; *specs is malloc'ed. -errno with err set. */
int vd_xen_config_load(const char *path, struct vd_xen_device_spec **specs,
		       unsigned *n, char *err, size_t errlen);

#endif
