/* The driver's half of a split virtqueue (virtio 1.2 §2.7): the load
 * generator publishes chains, decides kicks and reaps used entries. The
 * device is another process; every shared index goes through atomics. */
#ifndef LOADGEN_VRING_H
#define LOADGEN_VRING_H

#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lg_vring {
	unsigned num; /* power of two */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	bool event_idx;	    /* VIRTIO_RING_F_EVENT_IDX negotiated */
	uint16_t avail_idx; /* next avail slot, not yet visible */
	uint16_t kick_idx;  /* avail idx the device last heard about */
	uint16_t last_used; /* next used entry to reap */
};

/* Offsets of the three parts inside one block of lg_vring_bytes(num),
 * each aligned as §2.7 asks (we use 4 KiB: desc, avail, used on own pages
 * so the device's used writes do not share a line with our avail ring). */
#define LG_VRING_ALIGN 4096u
size_t lg_vring_bytes(unsigned num);
size_t lg_vring_avail_off(unsigned num);
size_t lg_vring_used_off(unsigned num);

/* The device's avail_event, after used->ring[num] (§2.7.10). Reached
 * through a byte offset: it is not a used element. */
static inline uint16_t *lg_vring_avail_event(const struct lg_vring *vr)
{
	return (uint16_t *)((char *)vr->used +
			    offsetof(struct vring_used, ring) +
			    sizeof(struct vring_used_elem) * vr->num);
}

/* mem: zeroed, lg_vring_bytes(num) long. */
void lg_vring_init(struct lg_vring *vr, void *mem, unsigned num,
		   bool event_idx);
/* Queue a chain head; invisible to the device until lg_vring_flush. */
void lg_vring_add(struct lg_vring *vr, uint16_t head);
/* Publish added heads. Returns true if the device asked to be kicked
 * (VRING_USED_F_NO_NOTIFY clear, or avail_event crossed with EVENT_IDX). */
bool lg_vring_flush(struct lg_vring *vr);
/* Next used entry, if any. */
bool lg_vring_reap(struct lg_vring *vr, uint32_t *id, uint32_t *len);
/* About to sleep on the call fd: ask for an interrupt at the next used
 * entry. Returns false if one is already there (do not sleep). */
bool lg_vring_arm(struct lg_vring *vr);

#endif
