/* The virtio-mmio (version 2) register model, for shims that trap MMIO
 * accesses (Xen ioreqs, ...). Hypervisor-agnostic: it sees offsets, widths
 * and values, drives a vd_dev, and asks its shim to raise the interrupt.
 * A guest access never crashes it: bad ones are logged and ignored. */
#ifndef VIRTIOD_VIRTIO_MMIO_H
#define VIRTIOD_VIRTIO_MMIO_H

#include <stdbool.h>
#include <stdint.h>

#include "virtiod/device.h"

/* Registers 0x000-0x0ff, device config 0x100-0x1ff. */
#define VD_MMIO_WINDOW_SIZE 0x200u
#define VD_MMIO_MAGIC	    0x74726976u /* "virt" */
#define VD_MMIO_VENDOR_ID   0x56444556u /* "VEDV": any value is allowed */

struct vd_mmio;

/* How the model reaches its shim. */
struct vd_mmio_ops {
	/* InterruptStatus gained bits it did not have (`new_bits`): raise
	 * the interrupt once. Called from queue threads and from the thread
	 * that feeds register accesses; must be thread-safe. */
	void (*raise_irq)(void *ctx, uint32_t new_bits);
	/* Optional: queue `idx` is about to start with `setup` (rings
	 * mapped, positions set): the shim may add its vq hooks (inflight
	 * tracking), move the positions and name chains of an earlier
	 * process to serve first (setup->requeue, valid until the queue has
	 * started). A negative errno refuses the start. */
	int (*queue_setup)(void *ctx, unsigned idx,
			   struct vd_queue_setup *setup);
	/* Optional: the driver reset the device (after every queue stopped
	 * and its rings were unmapped): drop cached guest mappings. */
	void (*reset)(void *ctx);
};

/* Where a queue stands, for handing a running device to a successor
 * process (restart). Values are the driver's, as written to the
 * registers. */
struct vd_mmio_queue_state {
	uint32_t num;
	uint32_t ready;
	uint64_t desc, driver, device;
	uint16_t avail_idx, used_idx; /* ring positions when it stopped */
	uint8_t avail_wrap, used_wrap;
	uint8_t used_idx_valid; /* 0: read used->idx from the ring */
	uint8_t pad[3];
};

struct vd_mmio_state {
	uint32_t status;
	uint32_t int_status;
	uint64_t driver_features;
	uint32_t queue_sel;
	uint32_t dev_features_sel, drv_features_sel, shm_sel;
};

/* Creates the vd_dev for `model` on `mem` and takes ownership of the
 * model (vd_mmio_free destroys it). -ENOMEM, -EINVAL. */
int vd_mmio_new(struct vd_model *model, struct vd_mem *mem,
		const struct vd_mmio_ops *ops, void *ctx, const char *who,
		struct vd_mmio **out);
/* Stops every queue, unmaps the rings, frees the device and the model. */
void vd_mmio_free(struct vd_mmio *m);

struct vd_dev *vd_mmio_dev(struct vd_mmio *m);
unsigned vd_mmio_num_queues(const struct vd_mmio *m);

/* A guest access at `off` bytes into the window, `size` 1, 2, 4 or 8.
 * Returns 0, or -EINVAL when the access was ignored (wrong width, unknown
 * or read-only register, refused setup; logged, reads give 0). Calls come
 * from one thread at a time. */
int vd_mmio_read(struct vd_mmio *m, uint64_t off, unsigned size, uint64_t *val);
int vd_mmio_write(struct vd_mmio *m, uint64_t off, unsigned size, uint64_t val);

/* As if the driver wrote 0 to Status. */
void vd_mmio_reset(struct vd_mmio *m);
uint32_t vd_mmio_interrupt_status(const struct vd_mmio *m);

/* Handover: stop every running queue (draining in-flight requests), record
 * where each stands, and leave the device otherwise as it is. `qs` has
 * room for vd_mmio_num_queues() entries. */
void vd_mmio_suspend(struct vd_mmio *m, struct vd_mmio_state *st,
		     struct vd_mmio_queue_state *qs);
/* The registers as they stand, without stopping anything (ring positions
 * in qs are left 0). */
void vd_mmio_save(struct vd_mmio *m, struct vd_mmio_state *st,
		  struct vd_mmio_queue_state *qs);
/* Bring a fresh model to a predecessor's state: features, status and the
 * ready queues restarted at the recorded positions (ops->queue_setup may
 * move them and requeue chains). Refuses a state that the registers could
 * not have produced (-EINVAL); the device is then left reset. */
int vd_mmio_restore(struct vd_mmio *m, const struct vd_mmio_state *st,
		    const struct vd_mmio_queue_state *qs, unsigned nq);
/* After a predecessor died (not a handover): it may have published used
 * buffers, set INT_VRING and raised the line, and the guest may not have
 * read InterruptStatus yet. Linux looks at the rings only when that read
 * says INT_VRING, so set it and raise the line: a spurious interrupt costs
 * the driver a read, a lost one hangs its I/O. No-op before DRIVER_OK. */
void vd_mmio_assume_used_pending(struct vd_mmio *m);

#endif
