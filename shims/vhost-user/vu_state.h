/* The backend's state: the connection, each ring as the frontend
 * configured it, the memory table, the inflight area and the dirty log.
 * Each field group names the thread that owns it. Nothing here is on the
 * wire (vu_wire.h) and nothing knows which device is served. */
#ifndef VIRTIOD_SHIM_VU_STATE_H
#define VIRTIOD_SHIM_VU_STATE_H

#include <linux/vhost_types.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "virtiod/device.h"
#include "virtiod/log.h"

#include "vu_wire.h"

#define VU_MAX_MEM_SLOTS 509 /* GET_MAX_MEM_SLOTS, as QEMU's KVM limit */

struct vu_backend;

/* Per-ring inflight tracking. Set up by the control thread while the ring
 * is stopped; used only by the queue thread (hooks) while it runs. */
struct vu_inflight_ring {
	bool on;
	bool packed;
	uint16_t desc_num; /* entries in the region (>= ring size) */
	uint16_t num;	   /* ring size */
	uint64_t counter;  /* next submission counter */
	struct vd_inflight_split *split;
	struct vd_inflight_packed *pk;
	/* Local copies, so a frontend scribbling on the shared region never
	 * sends us outside it: the batch pushed since the last publish, and
	 * (packed) the free list, chain tails and buffer id -> head entry. */
	uint16_t *batch;
	unsigned batch_n;
	uint16_t *next;
	uint16_t *last;
	uint16_t *id_head;
	uint16_t free_head; /* first really free entry (old_free_head) */
	uint16_t pending_head, pending_tail; /* pushed, not yet published */
	/* packed: where the next popped chain starts in the descriptor ring
	 * (its copies are taken from there), and the used position */
	void *desc_ring;
	uint16_t avail_pos;
	bool avail_wrap;
	uint16_t used_pos;
	bool used_wrap;
	struct vd_ratelimit rl;
};

/* One virtqueue as the frontend configures it. */
struct vu_vring {
	struct vu_backend *b;
	unsigned index;
	char who[48];

	/* control thread */
	uint16_t num;  /* SET_VRING_NUM, 0: not yet */
	bool addr_set; /* SET_VRING_ADDR seen */
	struct vhost_vring_addr addr;
	/* Where to start: SET_VRING_BASE, or where the last stop left it. */
	uint16_t base_avail, base_used;
	bool base_avail_wrap, base_used_wrap;
	bool base_used_known; /* false: split reads used->idx from the ring */
	int kick_fd;	      /* owned; -1 none */
	bool started;	      /* "Ring states": a kick fd arrived, no stop */
	bool enable;	      /* SET_VRING_ENABLE */
	bool running;	      /* a queue thread serves it */
	/* host ranges of the rings while running (memory-table changes) */
	void *ring_hva[3];
	size_t ring_len[3];
	uint16_t *requeue; /* heads to resubmit, valid during start */

	/* Shared with the queue thread. call_fd/err_fd are only ever replaced
	 * with dup3 onto the same number while the ring runs, so a concurrent
	 * write never reaches a recycled fd. */
	atomic_int call_fd;
	atomic_int err_fd;
	/* Odd while the queue thread reads the dirty log (dirty_log.c). */
	_Atomic uint64_t log_seq;

	/* queue thread while running */
	struct vu_inflight_ring inflight;
	struct vd_ratelimit rl;
};

/* The mapped dirty log (SET_LOG_BASE). */
struct vu_log_map {
	uint8_t *bits;
	uint64_t size; /* bytes of bitmap */
	void *map_base;
	size_t map_len;
};

/* A memory region as the frontend described it, for REM_MEM_REG matching,
 * unchanged-table detection and ring placement. Control thread. */
struct vu_region {
	uint64_t gpa, size, uaddr, mmap_offset;
	dev_t st_dev;
	ino_t st_ino;
	void *hva;
	/* ADD_MEM_REG of this very region from each vhost device sharing
	 * the connection (QEMU's net: one per queue pair); REM_MEM_REG
	 * removes it with the last. */
	unsigned refs;
};

struct vu_backend {
	const char *who;
	struct vd_model *model;
	struct vd_dev *dev;
	struct vd_mem *mem;
	unsigned num_queues;
	uint16_t max_queue_size;
	int listen_fd;
	int conn_fd;
	/* How long a message may take to arrive once it began; 0: what is
	 * not there yet never comes (the fuzz target's non-blocking pair). */
	unsigned msg_timeout_ms;

	/* connection state (control thread) */
	uint64_t features;	    /* last SET_FEATURES */
	uint64_t protocol_features; /* last SET_PROTOCOL_FEATURES */
	bool protocol_set;	    /* SET_PROTOCOL_FEATURES received */
	bool owner;
	bool unsealed_warned; /* an unsealable shared file was logged */
	struct vu_vring *vrings;
	struct vu_region *regions; /* VU_MAX_MEM_SLOTS entries */
	unsigned n_regions;

	/* inflight region (GET/SET_INFLIGHT_FD) */
	void *inflight_map; /* the mapping */
	size_t inflight_len;
	void *inflight_area; /* queue 0's region inside it */
	uint16_t inflight_nq;
	uint16_t inflight_cap; /* entries each queue's region has room for */
	size_t inflight_qstride;
	bool inflight_packed;

	/* dirty log: read by queue threads (log_write), swapped by us */
	_Atomic(struct vu_log_map *) log;
	struct vd_ratelimit req_rl;

	/* backend request channel (SET_BACKEND_REQ_FD), used from any thread
	 * for config-change notifications */
	pthread_mutex_t req_lock;
	int req_fd;
	atomic_bool config_notify;

	struct vu_msg msg;
	struct vu_reply reply;
};

#endif
