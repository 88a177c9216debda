/* Xen shim: virtiod as its own IOREQ server for one guest, emulating
 * virtio-mmio; plus the xenstore watcher and the static configuration that
 * describe one such device each for the composition root's launcher. The
 * composition root reaches it through vd_xen_shim. */
#ifndef VIRTIOD_SHIM_XEN_H
#define VIRTIOD_SHIM_XEN_H

#include <stdbool.h>
#include <stdint.h>

#include "virtiod/device.h"
#include "virtiod/shim.h"

enum vd_xen_mem_mode {
	VD_XEN_MEM_FOREIGN, /* xenforeignmemory through the mapping cache */
	VD_XEN_MEM_GRANT,   /* grant references on the ring (bit 63) */
};

struct vd_xen_config {
	uint32_t domid;
	uint64_t mmio_base; /* window start */
	uint64_t mmio_size; /* window length (0x200 if 0) */
	uint32_t irq;	    /* Arm SPI or x86 ISA IRQ */
	enum vd_xen_mem_mode mem_mode;
	unsigned map_cache_size; /* mapping cache size in MiB (0: default,
				    64; VD_XEN_MAP_CACHE_NONE: map per
				    request) */
	const char *who;	 /* log subject */
	/* xenstore backend path to report state to, or NULL (explicit mode) */
	const char *xs_backend_path;
	/* Where the restart record lives (NULL: /run/virtiod). */
	const char *state_dir;
	/* Grant mode: pages one queue may hold mapped for its requests in
	 * flight (0: the model's largest chain; never less than that
	 * unless set). */
	unsigned grant_budget_pages;
};

#define VD_XEN_MAP_CACHE_NONE 0xffffffffu

/* The shim, for the composition root's registry. */
extern const struct vd_shim vd_xen_shim;

/* Serve one device for one guest until *stop or the guest dies. *stop:
 * VD_STOP removes the device (the IOREQ server is destroyed); VD_HANDOVER
 * drains the queues, records the device state and leaves the server
 * registered for the next daemon. Returns 0 when the guest went away or a
 * stop was requested, -errno on failure. A server left by a predecessor
 * for the same window (after a crash or a handover) is taken over and its
 * pending ioreqs answered. */
int vd_xen_serve(const struct vd_xen_config *cfg, struct vd_model *model,
		 volatile int *stop);

/* `virtiod xen-watch [options]`: argv[0] is "xen-watch"; each device the
 * toolstack describes is served through l. Returns the exit status. */
int vd_xen_watch_main(int argc, char **argv, struct vd_launcher *l,
		      volatile int *stop);

/* `virtiod --config FILE`: the static configuration (dom0less), each
 * device served through l. Returns the exit status. */
int vd_xen_config_file_main(const char *path, struct vd_launcher *l,
			    volatile int *stop);

#endif
