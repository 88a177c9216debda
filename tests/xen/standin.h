/* The stand-in Xen: what tests use to play the hypervisor and the guest
 * against the unmodified shim, which links the stand-in (tests/xen/standin) in
 * place of the libxen* libraries. Its state lives in shared memory made before
 * any fork, so a forked daemon (the xenstore watcher's children, a restarted
 * server) sees the same hypervisor. Test-only. */
#ifndef VIRTIOD_TESTS_XEN_STANDIN_H
#define VIRTIOD_TESTS_XEN_STANDIN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SX_MAX_DOMS    4
#define SX_MAX_SERVERS 8
#define SX_MAX_VCPUS   4
#define SX_RAM_MAX     (256ULL << 20)
#define SX_MAX_GRANTS  32768
#define SX_WAIT_MS     10000

enum sx_arch { SX_X86, SX_ARM };
enum sx_domtype { SX_HVM, SX_PVH };

/* Counters of every call the shim makes (and what the hypervisor saw). */
struct sx_counters {
	uint64_t dm_open, dm_create, dm_destroy, dm_map_range, dm_unmap_range,
		dm_set_state, dm_nr_vcpus, dm_restrict;
	uint64_t irq_level_calls, isa_level_calls, isa_on_pvh, spi_edges,
		isa_edges;
	uint64_t fm_map, fm_map_pages, fm_unmap, fm_live_pages, fm_map_resource,
		fm_unmap_resource, fm_restrict;
	uint64_t gnt_map, gnt_map_pages, gnt_unmap, gnt_live_pages, gnt_refused;
	uint64_t gnt_peak_pages; /* most live at once since the last reset */
	uint64_t ev_bind, ev_unbind, ev_notify, ev_pending, ev_unmask,
		ev_restrict;
	uint64_t xs_read, xs_write, xs_rm, xs_watch, xs_directory;
	uint64_t xc_getinfo, xc_version;
	uint64_t ioreqs_sent, ioreqs_answered, ioreq_timeouts, unclaimed,
		arm_aborts;
	uint64_t restricted_violations;
};

/* Must run first, in the test process, before any fork. */
void sx_init(enum sx_arch arch);
/* Stand-in knobs. */
void sx_set_arch(enum sx_arch arch);
void sx_set_xc_privileged(bool on); /* false: sysctls fail (driver domain) */
void sx_set_backend_domid(uint32_t domid); /* xenstore's idea of "self" */

/* A guest: nr_vcpus 1..SX_MAX_VCPUS, ram_mib <= 256. Frames in
 * [hole_start, hole_end) (guest-physical) are not populated. */
int sx_domain_create(uint32_t domid, enum sx_domtype type, unsigned nr_vcpus,
		     unsigned ram_mib);
void sx_domain_set_hole(uint32_t domid, uint64_t start, uint64_t end);
/* The guest dies: dying, then gone; @releaseDomain fires. */
void sx_domain_destroy(uint32_t domid);
/* Host pointer to the guest's RAM (the test's view, as the guest). */
uint8_t *sx_guest_ram(uint32_t domid);

void sx_counters(struct sx_counters *out);
/* gnt_peak_pages starts again from what is mapped now. */
void sx_gnt_peak_reset(void);
/* Number of IOREQ servers the domain has, and whether one claims addr. */
unsigned sx_servers(uint32_t domid);
int sx_server_for(uint32_t domid, uint64_t addr); /* id or -1 */

/* ---- the guest's vCPUs: an access traps to the server claiming it */

/* MMIO read/write of size 1..8 from vCPU v. Returns 0, -ETIMEDOUT (no
 * answer: the vCPU stays blocked), or -EFAULT (Arm: nobody claims it). On
 * x86 an unclaimed read gives all-ones. */
int sx_mmio_read(uint32_t domid, unsigned v, uint64_t addr, unsigned size,
		 uint64_t *val);
int sx_mmio_write(uint32_t domid, unsigned v, uint64_t addr, unsigned size,
		  uint64_t val);
/* A raw ioreq sent to server `id` on vCPU v (port I/O, data_is_ptr,
 * count > 1, unknown types...). *data is in/out. */
int sx_raw_ioreq(uint32_t domid, int id, unsigned v, uint8_t type, bool read,
		 uint64_t addr, uint32_t size, uint32_t count, bool data_is_ptr,
		 uint64_t *data);
/* Any ioreq (df, a state byte the shim must ignore...) sent to server
 * `id` on vCPU v; rq->data is in/out. */
struct ioreq;
int sx_ioreq(uint32_t domid, int id, unsigned v, struct ioreq *rq);
/* The balloon driver gave memory back: INVALIDATE to every server. */
int sx_invalidate(uint32_t domid, unsigned v);
/* An event with nothing on the slot. */
void sx_spurious_event(uint32_t domid, int id, unsigned v);

/* ---- interrupts seen by the guest */
uint64_t sx_irq_edges(uint32_t domid);
/* Waits until edges > seen (or timeout); returns the edge count. */
uint64_t sx_irq_wait(uint32_t domid, uint64_t seen, int timeout_ms);

/* ---- grant table (the guest grants its frames) */
/* n consecutive references for frames gfn..gfn+n-1; first ref or -1. */
int sx_grant(uint32_t domid, uint64_t gfn, unsigned n, bool readonly);
/* Revoke: -EBUSY if the backend still maps one (Linux then marks the
 * device broken). */
int sx_ungrant(uint32_t domid, uint32_t ref, unsigned n);
unsigned sx_grant_mapped(uint32_t domid, uint32_t ref);

/* ---- xenstore, as the toolstack writes it */
int sx_xs_write(const char *path, const char *val);
int sx_xs_rm(const char *path);
/* malloc'ed value or NULL */
char *sx_xs_read(const char *path);
/* Waits until path reads `val` (timeout); 0 or -ETIMEDOUT. */
int sx_xs_wait(const char *path, const char *val, int timeout_ms);

/* ---- a virtio-mmio guest driver (Linux's probe order and ring code)
 *
 * The negotiated features pick what Linux's virtio_ring.c would use: a
 * packed ring with VIRTIO_F_RING_PACKED, else a split ring; an indirect
 * table for every request of more than one entry with
 * VIRTIO_RING_F_INDIRECT_DESC; used_event/avail_event (split) or event
 * suppression structures (packed) with VIRTIO_RING_F_EVENT_IDX. Rings are
 * laid out as Linux lays them out (split: one DMA block, used ring on the
 * next page; packed: ring and two event structures). Every buffer goes
 * through the DMA API: grant references (grant-dma-ops) when `grant`,
 * guest-physical addresses otherwise. */

struct sx_vdev;

struct sx_vdev_opts {
	uint32_t domid;
	uint64_t base;
	unsigned vcpu;	     /* vCPU that probes */
	bool grant;	     /* ring/buffer addresses are grant references */
	uint64_t features;   /* driver wants these (& offered) */
	uint16_t queue_size; /* 0: QueueNumMax */
	uint32_t device_id;  /* expected */
};

/* Probe and initialise the device (reset, ACK, DRIVER, features,
 * FEATURES_OK read back, queue 0, DRIVER_OK). 0 or -errno; *out set on
 * success. */
int sx_vdev_probe(const struct sx_vdev_opts *o, struct sx_vdev **out);
void sx_vdev_free(struct sx_vdev *d);
uint64_t sx_vdev_features(const struct sx_vdev *d);
/* Config read through the generation protocol. */
int sx_vdev_config(struct sx_vdev *d, unsigned vcpu, uint32_t off, void *buf,
		   unsigned len);
/* Guest RAM for buffers: gpa of len bytes (page aligned), from a bump
 * allocator above the rings. */
uint64_t sx_vdev_alloc(struct sx_vdev *d, uint64_t len);

/* What the driver saw. */
struct sx_vdev_stats {
	uint64_t kicks;		   /* QueueNotify written */
	uint64_t kicks_suppressed; /* not written: avail_event / event flags */
	uint64_t irqs;		   /* interrupts taken (InterruptStatus read) */
	uint64_t irqs_no_work;	   /* ... with nothing used (IRQ_NONE) */
	uint64_t indirect, direct; /* requests added each way */
	uint64_t out_of_order;	   /* completed before an earlier request */
	uint64_t bad_ring;	   /* used ids the driver never gave out */
};
void sx_vdev_stats(struct sx_vdev *d, struct sx_vdev_stats *out);
/* Mask the guest's interrupts (hold: true) or unmask them: while masked,
 * edges are counted but nobody reads InterruptStatus, as when the vCPU
 * runs with interrupts off. */
void sx_vdev_hold_irq(struct sx_vdev *d, bool hold);

/* One virtio-blk request as Linux's virtio_blk builds it: the 16-byte
 * header at hdr_gpa with the status byte right after it (struct
 * virtblk_req), and a scatter list: data (IN, OUT, GET_ID) or the
 * discard/write-zeroes ranges. Each entry is DMA-mapped on its own, as
 * dma_map_sg does it; entries may start anywhere in a page and cross
 * pages. */
#define SX_IO_SEG_MAX 128
struct sx_seg {
	uint64_t gpa;
	uint32_t len;
};
struct sx_blk_io {
	uint32_t type;
	uint64_t sector;
	uint64_t hdr_gpa;
	unsigned nseg;
	struct sx_seg seg[SX_IO_SEG_MAX];
	int status;	   /* out: the status byte */
	uint32_t used_len; /* out: what the device reported */
};
/* sx_blk_io.type for a request of one device-writable buffer (seg[0]),
 * without header or status: virtio-rng's, a virtio-net receive buffer.
 * used_len says what the device wrote. */
#define SX_IO_RAW_IN 0xffffffffu
/* With EVENT_IDX, ask for a single interrupt, when the last buffer in
 * flight is used (used_event / off_wrap name it): with nothing else in
 * flight, the batch's last. */
#define SX_SUBMIT_ONE_IRQ 1u

/* n requests: all added to the ring, one kick decision (a QueueNotify
 * from `vcpu` only if avail_event / the device's event flags ask for it),
 * then waited for; interrupts are taken like Linux (ISR read, ACK, then
 * the ring). Completions may come in any order. Thread-safe. Returns 0
 * (statuses in io[i].status), -ENOSPC (ring too full, nothing added),
 * -ETIMEDOUT (not all used), -EIO (the device set DEVICE_NEEDS_RESET),
 * -EBUSY (a grant was still mapped when its request completed) or -EPROTO
 * (the device used an id it was not given). */
int sx_blk_submit(struct sx_vdev *d, unsigned vcpu, struct sx_blk_io *io,
		  unsigned n, unsigned flags);

/* One virtio-blk request (header, data at data_gpa, status), kicked from
 * `vcpu`, waited for. Thread-safe. Returns the status byte (0 OK) or
 * -errno as sx_blk_submit. */
int sx_blk_rw(struct sx_vdev *d, unsigned vcpu, uint32_t type, uint64_t sector,
	      uint64_t data_gpa, uint32_t len);
/* n requests at once (fio's iodepth_batch): all on the ring, one
 * QueueNotify, then all waited for; r[i].status gets each status byte.
 * Returns 0 or -errno as sx_blk_submit. */
#define SX_BATCH_MAX 64
struct sx_blk_req {
	uint32_t type;
	uint32_t len;
	uint64_t sector;
	uint64_t data_gpa;
	int status;
};
int sx_blk_rw_batch(struct sx_vdev *d, unsigned vcpu, struct sx_blk_req *r,
		    unsigned n);
/* Write 0 to Status and wait for it to read back 0. */
int sx_vdev_reset(struct sx_vdev *d, unsigned vcpu);
uint64_t sx_vdev_isr_reads(struct sx_vdev *d);

#endif
