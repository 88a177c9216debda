/* The driver's half of a virtqueue, split (virtio 1.2 §2.7) or packed
 * (§2.8): make chains available, decide kicks, reap used entries. The
 * device is another process, so every shared index goes through atomics
 * with the barriers Linux's virtio_ring.c uses. Two ways to use a ring:
 * - with chain bookkeeping (vuf_vq_init(..., chains=true)): vuf_vq_add
 *   writes the descriptors and hands out a token (split: the head, packed:
 *   the buffer id), vuf_vq_reap returns the chain and checks its token;
 * - without (split only): the caller keeps its own fixed chains in
 *   vq->desc and queues their heads with vuf_vq_add_head; nothing here
 *   allocates, nothing checks the ids the device returns. */
#ifndef VUF_VQ_H
#define VUF_VQ_H

#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest ring virtio allows (§2.7, §2.8: 32768). */
#define VUF_VQ_MAX_SIZE 32768u

struct vuf_buf {
	uint64_t gpa;
	uint32_t len;
	bool write; /* VRING_DESC_F_WRITE: the device writes it */
};

struct vuf_vq {
	uint16_t num; /* split: a power of two */
	bool packed;
	bool event_idx; /* VIRTIO_RING_F_EVENT_IDX negotiated */
	/* The three parts, in memory the device shares. */
	union {
		struct vring_desc *desc;
		struct vring_packed_desc *pdesc;
	};
	union {
		struct vring_avail *avail;
		struct vring_packed_desc_event *driver_event;
	};
	union {
		struct vring_used *used;
		struct vring_packed_desc_event *device_event;
	};
	/* split */
	uint16_t avail_idx;	    /* next avail slot, not yet visible */
	uint16_t kick_idx;	    /* avail idx the device last heard about */
	uint16_t last_used;	    /* next used entry to reap */
	uint16_t free_head, n_free; /* free descriptors (chains) */
	/* packed */
	uint16_t avail_pos, used_pos, next_id;
	bool avail_wrap, used_wrap;
	/* Chain bookkeeping by token, NULL without: descriptors per chain
	 * and whether it is with the device. */
	uint16_t *chain_len;
	bool *busy;
};

/* Bytes of the three parts of a ring of num (§2.7 / §2.8 sizes). */
void vuf_vq_sizes(bool packed, unsigned num, size_t *desc, size_t *driver,
		  size_t *device);

/* The three parts laid out one after the other in one block, each part
 * starting at a multiple of align. */
struct vuf_vq_layout {
	size_t desc, driver, device; /* offsets */
	size_t bytes;		     /* the whole block, aligned */
};

struct vuf_vq_layout vuf_vq_layout(bool packed, unsigned num, size_t align);

/* A ring over zeroed parts. chains: keep chain bookkeeping (allocated
 * here; needed for vuf_vq_add and for packed rings). 0 or -errno. */
int vuf_vq_init(struct vuf_vq *vq, bool packed, unsigned num, void *desc,
		void *driver, void *device, bool event_idx, bool chains);
void vuf_vq_free(struct vuf_vq *vq);

/* A chain of n buffers, readable ones first. Split: visible to the device
 * at the next vuf_vq_publish; packed: at once. Returns its token, or
 * -ENOSPC when the ring has no room. */
int vuf_vq_add(struct vuf_vq *vq, const struct vuf_buf *bufs, unsigned n);
/* Split, the caller's own chain: queue its head for the next publish. */
void vuf_vq_add_head(struct vuf_vq *vq, uint16_t head);

/* Make what was added visible. Returns true if the device asked to be
 * kicked (split: VRING_USED_F_NO_NOTIFY clear, or avail_event crossed
 * with EVENT_IDX; packed: always, no event suppression is written). */
bool vuf_vq_publish(struct vuf_vq *vq);

/* The next used entry: 1 and its token and length, 0 if there is none,
 * -EPROTO if the device returned a token that is not with it (rings with
 * chain bookkeeping only). */
int vuf_vq_reap(struct vuf_vq *vq, uint32_t *token, uint32_t *len);
/* A used entry is waiting (nothing consumed). */
bool vuf_vq_pending(const struct vuf_vq *vq);
/* About to sleep on the call fd: ask for an interrupt at the next used
 * entry (split with EVENT_IDX: used_event). Returns false if one is
 * already there (do not sleep). */
bool vuf_vq_arm(struct vuf_vq *vq);
/* Split: the used index the device published. */
uint16_t vuf_vq_used_idx(const struct vuf_vq *vq);

/* Split: the device's avail_event, after used->ring[num] (§2.7.10). */
uint16_t *vuf_vq_avail_event(const struct vuf_vq *vq);

#endif
