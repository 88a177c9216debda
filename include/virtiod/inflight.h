/* Inflight tracking: a record of every chain from its pop until the driver
 * can see its completion, kept in memory the shim provides and that
 * outlives the process (a shared mapping of a file or memfd), so that a
 * successor serves those chains again: none lost, none twice. The record
 * of one queue is a "region" laid out as vhost-user's inflight I/O
 * tracking (QEMU docs/interop/vhost-user.rst, split and packed), so the
 * same bytes work in an INFLIGHT_SHMFD area and in the Xen restart record.
 *
 * Split rings: each head is marked at pop with a counter (submission
 * order) and cleared at publish; a restart requeues the marked heads.
 * Packed rings: a completion overwrites ring slots of chains still in
 * flight, so each chain's descriptors are copied at pop; a restart writes
 * them back into the ring from the used position on, as available
 * descriptors, and the ring is popped again from there. A batch whose
 * publication was cut short by the crash is kept or rolled back by what
 * the driver can see (split: used->idx; packed: the batch's first flags).
 *
 * Recording runs on the queue's thread from its vq hooks: plain stores
 * into the region, no allocation, no system call. */
#ifndef VIRTIOD_INFLIGHT_H
#define VIRTIOD_INFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtiod/virtqueue.h"

struct vd_inflight;

/* The region layouts, QEMU docs/interop/vhost-user.rst "Inflight I/O
 * tracking": declared once, for the core tracker and the vhost-user shim
 * (which hands the area to the frontend). Split: */
struct vd_inflight_desc_split {
	uint8_t inflight;
	uint8_t padding[5];
	uint16_t next;
	uint64_t counter;
};

struct vd_inflight_split {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t last_batch_head;
	uint16_t used_idx;
	struct vd_inflight_desc_split desc[];
};

/* Packed: */
struct vd_inflight_desc_packed {
	uint8_t inflight;
	uint8_t padding;
	uint16_t next;
	uint16_t last;
	uint16_t num;
	uint64_t counter;
	uint16_t id;
	uint16_t flags;
	uint32_t len;
	uint64_t addr;
};

struct vd_inflight_packed {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t free_head;
	uint16_t old_free_head;
	uint16_t used_idx;
	uint16_t old_used_idx;
	uint8_t used_wrap_counter;
	uint8_t old_used_wrap_counter;
	uint8_t padding[7];
	struct vd_inflight_desc_packed desc[];
};

_Static_assert(sizeof(struct vd_inflight_desc_split) == 16,
	       "vhost-user layout");
_Static_assert(sizeof(struct vd_inflight_split) == 16, "vhost-user layout");
_Static_assert(sizeof(struct vd_inflight_desc_packed) == 32,
	       "vhost-user layout");
_Static_assert(sizeof(struct vd_inflight_packed) == 32, "vhost-user layout");

/* Bytes of one queue's region with room for `entries` descriptors (at
 * least the queue size), a multiple of 64. */
size_t vd_inflight_region_size(enum vd_vq_layout layout, uint16_t entries);

/* Takes a queue's region before the queue starts on cfg's rings (mapped;
 * packed: the descriptor ring writable). With `recover`, the region holds
 * what an earlier process recorded on these rings:
 *  - split: the heads still in flight go to requeue (room for cfg->num),
 *    oldest first, cfg->avail_idx follows them and the used index is read
 *    from the ring (used_idx_valid false);
 *  - packed: the chains still in flight are written back into the ring
 *    from the used position on, and cfg restarts there (nothing requeued).
 * A region that does not hold together is logged and started afresh.
 * Without `recover`, or for a region never written, it starts empty at
 * cfg's positions. Returns 0 and *n_requeue, -EINVAL (entries below the
 * queue size, entries past VD_VQ_MAX_SIZE) or -ENOMEM. */
int vd_inflight_attach(void *region, uint16_t entries, bool recover,
		       struct vd_vq_config *cfg, uint16_t *requeue,
		       unsigned *n_requeue, const char *who,
		       struct vd_inflight **out);
/* After the queue stopped. NULL is fine. */
void vd_inflight_free(struct vd_inflight *t);

/* The recording, from the vq hooks of the queue's thread. */
void vd_inflight_popped(struct vd_inflight *t, const struct vd_vq_elem *e);
/* vd_vq_unpop: the latest chain popped is not in flight after all. */
void vd_inflight_unpopped(struct vd_inflight *t, const struct vd_vq_elem *e);
void vd_inflight_pushed(struct vd_inflight *t, const struct vd_vq_elem *e);
void vd_inflight_published(struct vd_inflight *t, uint16_t used_idx,
			   bool used_wrap);
/* hooks->ctx, on_pop, on_unpop, on_push and on_publish become the tracker's
 * (for a shim with no hooks of its own that take a context). */
void vd_inflight_set_hooks(struct vd_inflight *t, struct vd_vq_hooks *hooks);

#endif
