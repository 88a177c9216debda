/* The stand-in guest driver's private parts: the device, requests in
 * flight with their DMA mappings, and the two ring layouts behind one
 * interface, as Linux's drivers/virtio/virtio_ring.c keeps split and packed
 * side by side. Test-only. */
#ifndef VIRTIOD_TESTS_XEN_STANDIN_GUEST_H
#define VIRTIOD_TESTS_XEN_STANDIN_GUEST_H

#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>

#include "hv.h"

#define SX_GRANT_BIT (1ULL << 63)
/* Scatter-gather entries of one request: header, data, status. */
#define SX_SG_MAX (SX_IO_SEG_MAX + 2)
/* DMA mappings of one request: its entries and an indirect table. */
#define SX_DMA_MAX (SX_SG_MAX + 1)

/* One scatter-gather entry as the ring sees it: a bus address (a grant
 * address under grant-dma-ops, else the guest-physical one). */
struct sx_sg {
	uint64_t addr;
	uint32_t len;
};

/* A request in flight (Linux: the `data` token the ring hands back). */
struct sx_req {
	struct sx_sg sg[SX_SG_MAX];
	unsigned n_out, n_in;
	struct {
		int ref; /* first grant reference, -1: none */
		unsigned pages;
	} dma[SX_DMA_MAX];
	unsigned n_dma;
	bool dma_failed;
	uint64_t status_gpa;
	unsigned seq; /* submission order, for out-of-order counting */
	int hdr_slot; /* sx_blk_rw's header slot, or -1 */
	/* Under the device lock. */
	bool done, orphan; /* orphan: the submitter gave up (timeout) */
	uint32_t used_len;
};

struct sx_vdev;

/* A ring layout, driven the way Linux drives it. Every call but alloc and
 * free runs under the device lock. */
struct sx_ring_ops {
	/* Lays the rings out in guest RAM from RING_GPA and maps them;
	 * bus[0..2]: the addresses for QueueDesc/Driver/Device. */
	int (*alloc)(struct sx_vdev *d, uint64_t bus[3]);
	void (*free)(struct sx_vdev *d);
	/* Slots a request of total_sg entries takes (1 if indirect), and
	 * the slots free. */
	unsigned (*slots)(const struct sx_vdev *d, unsigned total_sg);
	unsigned (*num_free)(const struct sx_vdev *d);
	/* virtqueue_add (counts d->st.indirect / direct): -ENOSPC if the
	 * ring is full. */
	int (*add)(struct sx_vdev *d, struct sx_req *r);
	/* virtqueue_kick_prepare: does the device want a QueueNotify? */
	bool (*kick_prepare)(struct sx_vdev *d);
	/* virtqueue_get_buf: the next used request, or NULL. A used id the
	 * driver never gave out sets d->bad_ring. */
	struct sx_req *(*get_buf)(struct sx_vdev *d, uint32_t *len);
	bool (*more_used)(struct sx_vdev *d);
	void (*disable_cb)(struct sx_vdev *d);
	/* virtqueue_enable_cb: false if buffers were used meanwhile. */
	bool (*enable_cb)(struct sx_vdev *d);
	/* EVENT_IDX: one interrupt, when the last buffer in flight is used
	 * (virtqueue_enable_cb_delayed with all of them), called before a
	 * batch of reqs requests taking slots ring slots is added. */
	void (*cb_after_all)(struct sx_vdev *d, unsigned reqs, unsigned slots);
	/* vring_interrupt: with EVENT_IDX the device will not interrupt
	 * again before the driver re-arms. */
	void (*interrupted)(struct sx_vdev *d);
};

extern const struct sx_ring_ops sx_split_ops, sx_packed_ops;

struct sx_vdev {
	struct sx_vdev_opts o;
	uint8_t *ram;
	uint64_t features;
	bool packed, indirect, event_idx;
	uint16_t num;
	const struct sx_ring_ops *ring_ops;
	void *ring; /* the layout's state */
	struct {
		int ref;
		unsigned pages;
	} ring_dma[3];
	uint64_t table_area;  /* indirect tables: a page per id */
	pthread_mutex_t lock; /* everything below, and the ring */
	bool bad_ring;
	bool needs_reset; /* the device set DEVICE_NEEDS_RESET */
	bool hold_irq;	  /* interrupts masked: edges wait (sx_vdev_hold_irq) */
	unsigned next_seq, last_done_seq;
	uint8_t *hdr_busy; /* sx_blk_rw's header slots */
	uint64_t next_alloc;
	uint64_t irq_seen;
	struct sx_vdev_stats st;
};

/* The DMA API: maps [gpa, +len) for the device (grant-dma-ops: grants
 * its frames, read-only when the device only reads) and records the
 * mapping in r; returns the bus address. */
uint64_t sx_dma_map(struct sx_vdev *d, struct sx_req *r, uint64_t gpa,
		    uint64_t len, bool to_device);
/* dma_alloc_coherent for a ring: read-write, whole pages; slot 0..2 of
 * d->ring_dma. */
uint64_t sx_dma_alloc_ring(struct sx_vdev *d, unsigned slot, uint64_t gpa,
			   uint64_t len);
/* Where the indirect table of id goes: kmalloc'ed, so the smallest
 * power-of-two block that holds it, here at the end of the id's page. */
uint64_t sx_table_gpa(struct sx_vdev *d, uint16_t id, unsigned entries);

#endif
