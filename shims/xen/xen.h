/* Xen shim: virtiod as its own IOREQ server for one guest, emulating
 * virtio-mmio; plus the xenstore watcher that launches one such server per
 * toolstack device. The daemon's main calls in here. */
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
};

#define VD_XEN_MAP_CACHE_NONE 0xffffffffu

/* Serve one device for one guest until *stop or the guest dies. *stop:
 * VD_STOP removes the device (the IOREQ server is destroyed); VD_HANDOVER
 * drains the queues, records the device state and leaves the server
 * registered for the next daemon. Returns 0 when the guest went away or a
 * stop was requested, -errno on failure. A server left by a predecessor
 * for the same window (after a crash or a handover) is taken over and its
 * pending ioreqs answered. */
int vd_xen_serve(const struct vd_xen_config *cfg, struct vd_model *model,
		 volatile int *stop);

/* `virtiod xen-watch [options]`: argv[0] is "xen-watch". Returns the exit
 * status. */
int vd_xen_watch_main(int argc, char **argv, volatile int *stop);

/* `virtiod --config FILE`: the static configuration (dom0less). Returns the
 * exit status. */
int vd_xen_config_file_main(const char *path, volatile int *stop);

#endif
