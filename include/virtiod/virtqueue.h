/* Virtqueues, split and packed, behind one API (virtio 1.2 §2.7, §2.8).
 * The ring memory belongs to a hostile driver: every index, length and
 * address read from it is checked, each descriptor is read once into a local
 * copy, and nothing outside guest memory is ever touched. A malformed chain
 * marks the queue broken and calls on_broken (the device goes NEEDS_RESET).
 *
 * One thread owns a vd_vq (the queue's thread). Pop and push never allocate
 * and never make a system call; element storage is preallocated at setup. */
#ifndef VIRTIOD_VIRTQUEUE_H
#define VIRTIOD_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtiod/guest_mem.h"

#define VD_VQ_MAX_SIZE 32768 /* virtio 1.2: split queue size max 2^15 */
/* Most iovecs per element, the kernel's IOV_MAX (an element goes to
 * preadv/pwritev in one call). */
#define VD_VQ_MAX_IOV 1024

enum vd_vq_layout {
	VD_VQ_SPLIT,
	VD_VQ_PACKED,
};

/* A guest-physical range the device may write (kept for dirty logging). */
struct vd_gpa_range {
	uint64_t gpa;
	uint32_t len;
};

/* One popped descriptor chain. "read" buffers are device-readable (driver
 * "out"), "write" buffers are device-writable (driver "in"). */
struct vd_vq_elem {
	uint16_t id;	 /* split: head index; packed: buffer id */
	uint16_t ndescs; /* packed: ring slots the chain used */
	uint32_t slot;	 /* 0..queue size-1, stable while popped: index for
			    the device's per-request state */
	unsigned n_read, n_write;
	uint64_t read_len, write_len; /* byte totals */
	struct iovec *read_iov;	      /* n_read entries */
	struct iovec *write_iov;      /* n_write entries */
	unsigned n_write_gpa;
	struct vd_gpa_range *write_gpa; /* writable descriptors, for logging */
};

struct vd_vq;

/* Live statistics of one queue (docs/operations.md). One writer, the
 * queue's thread, with plain relaxed stores (no atomic read-modify-write);
 * any thread reads them with vd_vq_stats_read. They outlive the vd_vq
 * (vd_vq_set_stats): a device's counters run from its creation on. */
#define VD_VQ_HIST_BUCKETS 24
/* Latency bucket b counts requests that took less than
 * VD_VQ_HIST_BOUND_NS(b) (and at least the previous bound): b = 0 under
 * 1.024 us, then doubling, the last one unbounded. */
#define VD_VQ_HIST_BOUND_NS(b) (1024ull << (b))
struct vd_vq_stats {
	uint64_t requests;    /* chains popped */
	uint64_t completions; /* chains pushed back */
	uint64_t bytes_in;    /* device-readable bytes of popped chains */
	uint64_t bytes_out;   /* bytes the device wrote (pushed lengths) */
	uint64_t inflight;    /* popped, not yet pushed (a gauge) */
	uint64_t errors;      /* requests the model failed, broken chains */
	uint64_t kicks;	      /* driver notifications taken (wake-ups) */
	uint64_t notify_sent; /* used-buffer notifications sent */
	/* Publications the driver asked not to be told of (EVENT_IDX,
	 * NO_INTERRUPT, packed event suppression). */
	uint64_t notify_suppressed;
	/* From pop to publication of the completion in the used ring. */
	uint64_t latency_ns_sum;
	uint64_t latency_hist[VD_VQ_HIST_BUCKETS];
};

/* A copy of s with a relaxed load of each counter (any thread). */
void vd_vq_stats_read(const struct vd_vq_stats *s, struct vd_vq_stats *out);
/* Counter updates by the one writer (the queue's thread). */
#define VD_STAT_ADD(field, n)                                                  \
	__atomic_store_n(&(field),                                             \
			 __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n),    \
			 __ATOMIC_RELAXED)
#define VD_STAT_SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)

/* Why a queue broke, for tests and logs. */
enum vd_vq_error {
	VD_VQ_OK = 0,
	VD_VQ_ERR_HEAD_RANGE,	    /* head index >= queue size */
	VD_VQ_ERR_NEXT_RANGE,	    /* next index >= queue size / table size */
	VD_VQ_ERR_CHAIN_LOOP,	    /* loop or chain longer than the queue */
	VD_VQ_ERR_NESTED_INDIRECT,  /* indirect descriptor inside a table */
	VD_VQ_ERR_INDIRECT_SIZE,    /* table empty, not a multiple of 16 or
				       over VD_VQ_MAX_SIZE entries; INDIRECT
				       with NEXT; packed: inside a chain */
	VD_VQ_ERR_ADDR,		    /* buffer outside guest memory */
	VD_VQ_ERR_ADDR_WRAP,	    /* addr + len wraps 2^64 */
	VD_VQ_ERR_CHAIN_LEN,	    /* total chain length over 2^32 */
	VD_VQ_ERR_AVAIL_IDX,	    /* avail idx moved by more than the size */
	VD_VQ_ERR_READ_AFTER_WRITE, /* readable after a writable descriptor */
	VD_VQ_ERR_IOV_BUDGET,	    /* more segments than the element holds */
	VD_VQ_ERR_BUFFER_ID,	    /* id out of range (packed) or already in
				       flight (split head, packed id) */
	VD_VQ_ERR_PUSH,		    /* device pushed an element not popped */
	VD_VQ_ERR_INDIRECT_FEATURE, /* INDIRECT flag, feature not negotiated */
	VD_VQ_ERR_CHAIN_MAX,	    /* longer than max_chain_len */
	VD_VQ_ERR_MAP_BUDGET,	    /* needs more mappings than the queue may
				       hold with nothing else in flight */
};
const char *vd_vq_error_str(enum vd_vq_error e);

/* Optional per-queue hooks, called on the queue's thread. */
struct vd_vq_hooks {
	void *ctx;
	/* The queue broke; reason is human-readable. Called once. */
	void (*on_broken)(void *ctx, struct vd_vq *vq, enum vd_vq_error err,
			  const char *reason);
	/* Inflight tracking (vhost-user INFLIGHT_SHMFD): a chain was popped /
	 * its completion was written to the ring / the used index (split) or
	 * the ring position (packed) was published. */
	void (*on_pop)(void *ctx, const struct vd_vq_elem *e);
	/* vd_vq_unpop gave e back: undo its on_pop (always the latest). */
	void (*on_unpop)(void *ctx, const struct vd_vq_elem *e);
	void (*on_push)(void *ctx, const struct vd_vq_elem *e);
	void (*on_publish)(void *ctx, uint16_t used_idx, bool used_wrap);
	/* Dirty logging (vhost-user LOG_ALL): the device wrote this guest
	 * range. Only called while logging is enabled. */
	void (*log_write)(void *ctx, uint64_t gpa, uint64_t len);
};

struct vd_vq_config {
	enum vd_vq_layout layout;
	uint16_t num;	/* queue size: power of two for split, any for packed */
	bool event_idx; /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;	/* VIRTIO_F_INDIRECT_DESC negotiated */
	/* Host pointers to the rings, each mapped for its full size
	 * (vd_vq_ring_sizes). split: desc, avail, used.
	 * packed: desc, driver event area, device event area. */
	void *desc, *driver, *device;
	/* Guest-physical address of the used ring / device area (logging). */
	uint64_t device_gpa;
	/* Guest-physical address of the descriptor ring: packed used
	 * descriptors are written there (logging). */
	uint64_t desc_gpa;
	/* Where to start: split last_avail_idx (and used idx = same unless
	 * used_idx_valid); packed: next avail position + wrap counter. */
	uint16_t avail_idx;
	bool avail_wrap;
	uint16_t used_idx;
	bool used_wrap;
	bool used_idx_valid; /* false: read used->idx from the ring (split) */
	unsigned max_iov;    /* iovecs per element (read + write), 2 ..
				VD_VQ_MAX_IOV */
	/* Bytes in one chain at most (the model's largest request); 0:
	 * only the 4 GiB bound. A longer chain breaks the queue. */
	uint64_t max_chain_len;
};

/* Ring byte sizes for a layout and size (for mapping and validation). */
void vd_vq_ring_sizes(enum vd_vq_layout layout, uint16_t num, size_t *desc_len,
		      size_t *driver_len, size_t *device_len);

/* Allocates all element storage. -EINVAL on a bad config. */
int vd_vq_new(const struct vd_vq_config *cfg, struct vd_mem *mem,
	      const struct vd_vq_hooks *hooks, const char *who,
	      struct vd_vq **out);
void vd_vq_free(struct vd_vq *vq);

/* Pop the next available chain. Returns 1 and *out, 0 if none is available
 * (or the queue is broken, or a guest-memory writer waits for its grace
 * period: vd_mem_grace_pending), or 0 with the queue broken on malformed
 * input.
 * The element stays owned by the device until pushed. With EVENT_IDX, the
 * pop that finds the ring empty asks the driver to kick for the next entry
 * (avail_event); a device that stops popping earlier must rekick itself. */
int vd_vq_pop(struct vd_vq *vq, struct vd_vq_elem **out);
/* A mapper over its per-queue budget (translate: -EAGAIN) leaves the next
 * chain in the ring while earlier ones are in flight; once a push or unpop
 * gives mappings back, this returns true (once): pop again. Also true
 * after a pop refused while a memory-table writer waited. */
bool vd_vq_take_retry(struct vd_vq *vq);
/* Give back a popped element untouched, as if it had never been popped:
 * the next pop returns the same chain again. For a device that fills
 * buffers (a receive queue): it pops what the next packet may need, reads,
 * and returns what it did not fill. Only the latest pop still out can be
 * given back (last in, first out); -EINVAL otherwise, nothing changed. */
int vd_vq_unpop(struct vd_vq *vq, struct vd_vq_elem *e);
/* Complete an element: `written` bytes were written to its write buffers.
 * Order is free (out of order allowed). Releases mapper pins first. */
void vd_vq_push(struct vd_vq *vq, struct vd_vq_elem *e, uint32_t written);
/* Publish pushed completions to the driver (one used-idx store / one flags
 * store for the batch) and return whether the driver needs a notification
 * (EVENT_IDX / NO_INTERRUPT / packed event suppression). */
bool vd_vq_flush(struct vd_vq *vq);

/* Driver→device notification suppression. disable: ask the driver not to
 * kick (while polling). enable: ask again for kicks; returns true if buffers
 * became available meanwhile (the caller must pop again). */
void vd_vq_disable_notify(struct vd_vq *vq);
bool vd_vq_enable_notify(struct vd_vq *vq);

/* For a device that found too few chains (a receive queue short of the
 * largest frame gives back what it popped and waits): enable asks for a
 * kick when the driver adds past where the last empty pop stopped, not
 * only when the ring is empty, and returns true if it already has; more
 * tells the same without enabling. Without an empty pop since the last
 * chain taken, both behave like enable_notify / avail_pending. */
bool vd_vq_enable_notify_more(struct vd_vq *vq);
bool vd_vq_avail_more(struct vd_vq *vq);

/* True if a chain is waiting to be popped (requeued, or made available by
 * the driver), without popping it: for a thread that busy-polls the ring.
 * A bad avail index breaks the queue here as it would in pop. */
bool vd_vq_avail_pending(struct vd_vq *vq);

bool vd_vq_broken(const struct vd_vq *vq);
uint16_t vd_vq_size(const struct vd_vq *vq); /* entries (queue size) */
unsigned vd_vq_max_iov(const struct vd_vq *vq);
enum vd_vq_error vd_vq_last_error(const struct vd_vq *vq);
unsigned vd_vq_inflight(const struct vd_vq *vq); /* popped, not pushed */

/* Where the ring stands (for GET_VRING_BASE): the next avail position the
 * device will read, and the used position; packed adds wrap counters. */
void vd_vq_get_base(const struct vd_vq *vq, uint16_t *avail_idx,
		    bool *avail_wrap, uint16_t *used_idx, bool *used_wrap);

/* Turn dirty logging on/off (hooks.log_write must be set). */
void vd_vq_set_logging(struct vd_vq *vq, bool on);

/* Statistics: where this queue counts (NULL: a private set, for a vq
 * used alone), and the time in CLOCK_MONOTONIC ns that pops and
 * publications are stamped with from now on. The queue thread sets the
 * clock once per round and before publishing, so timing costs no clock
 * read per request. */
void vd_vq_set_stats(struct vd_vq *vq, struct vd_vq_stats *s);
void vd_vq_set_clock(struct vd_vq *vq, uint64_t now_ns);
/* Completions pushed and not yet published (vd_vq_flush). */
unsigned vd_vq_unpublished(const struct vd_vq *vq);
/* A request the model completed with an error (blk: IOERR, UNSUPP). */
void vd_vq_count_error(struct vd_vq *vq);

/* Inflight resubmission after a reconnect: chains to pop before any new
 * available entry. split: head indexes in submission order; packed: ring
 * positions of chain heads. Checked like any other head. */
int vd_vq_requeue(struct vd_vq *vq, const uint16_t *heads, unsigned n);

#endif
