/* Internals shared by the split and packed virtqueue files: the queue
 * struct, element pool and chain builder. Private to src/core; nothing here
 * may read guest memory except through a local copy or vd_mem. */
#ifndef VIRTIOD_VIRTQUEUE_IMPL_H
#define VIRTIOD_VIRTQUEUE_IMPL_H

#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <linux/virtio_ring.h>

#include "virtiod/virtqueue.h"

/* Ring fields shared with the driver are accessed with these (the spec's
 * barriers as C11 orderings). */
#define VQ_LOAD_ACQ(p)	   __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define VQ_LOAD(p)	   __atomic_load_n((p), __ATOMIC_RELAXED)
#define VQ_STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define VQ_STORE(p, v)	   __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define VQ_MB()		   __atomic_thread_fence(__ATOMIC_SEQ_CST)

/* Copy a guest structure once: the compiler barrier keeps it from
 * re-reading guest memory instead of the copy (the driver may change it
 * concurrently). memcpy, because indirect tables need not be aligned. */
static inline void vq_copy_once(void *dst, const void *src, size_t n)
{
	memcpy(dst, src, n);
	__asm__ __volatile__("" ::: "memory");
}

enum { VQE_FREE = 0, VQE_POPPED = 1 };

struct vq_elem {
	struct vd_vq_elem pub; /* first: the device holds &pub */
	uint8_t state;
	bool requeued;	  /* popped from the requeue list */
	uint32_t pop_seq; /* vd_vq_unpop: the latest pop still out */
};

struct vd_vq {
	/* Immutable after vd_vq_new. */
	struct vd_vq_config cfg;
	struct vd_mem *mem;
	struct vd_vq_hooks hooks;
	char who[64];
	uint16_t num;
	unsigned max_iov;

	/* Translation hint: buffers of one driver mostly sit in one region
	 * (queue thread). */
	struct vd_mem_hint mem_hint;

	/* Element pool and in-flight tracking (queue thread). */
	struct vq_elem *elems; /* num */
	struct iovec *iov_store;
	struct vd_gpa_range *gpa_store;
	uint16_t *free_slots; /* stack of free pool slots */
	unsigned n_free;
	uint16_t *id_slot; /* split head / packed buffer id -> slot + 1 */
	unsigned inflight;
	uint32_t pop_seq;  /* pops so far, less the ones given back */
	uint16_t *requeue; /* heads (split) / positions (packed) */
	unsigned requeue_n, requeue_at;

	/* State (queue thread). */
	bool held;  /* the next chain waits for mappings to come back */
	bool retry; /* they came back: pop again (vd_vq_take_retry) */
	bool broken;
	enum vd_vq_error err;
	bool logging;
	bool notify_enabled;
	/* Where the last pop found nothing (split: avail idx; packed:
	 * position and wrap), until a chain is taken past it. */
	bool empty_valid;
	bool empty_wrap;
	uint16_t empty_at;

	/* Statistics (queue thread writes; vd_vq_stats_read from others):
	 * where they go, the round's clock, each slot's pop time, and the
	 * pop times of completions pushed since the last publication. */
	struct vd_vq_stats *stats;
	struct vd_vq_stats own_stats;
	uint64_t clock_ns;
	uint64_t *pop_ns;	/* num, by slot */
	uint64_t *batch_pop_ns; /* num */
	unsigned batch_n;
	unsigned unpublished; /* pushed since the last publication */

	/* Split ring (queue thread). */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail;   /* next avail entry to pop */
	uint16_t shadow_avail; /* avail->idx as last read */
	uint16_t avail_event;  /* value last written to avail_event */
	uint16_t used_idx;     /* next used entry to write */
	uint16_t pub_used;     /* used->idx as last published */

	/* Packed ring (queue thread). */
	struct vring_packed_desc *pdesc;
	struct vring_packed_desc_event *drv_event; /* driver area */
	struct vring_packed_desc_event *dev_event; /* device area */
	uint16_t avail_pos, used_pos, pub_pos;
	bool avail_wrap, used_wrap, pub_wrap;
	bool batch_pending; /* first used desc's flags not yet stored */
	uint16_t batch_pos, batch_flags;
};

/* Builds one element from descriptors, in ring order. */
struct vq_chain {
	struct vd_vq *vq;
	struct vd_vq_elem *e;
	unsigned n_iov;
	bool seen_write;
	uint64_t total;
};

/* Marks the queue broken (once), logs and calls on_broken. */
void vq_break(struct vd_vq *vq, enum vd_vq_error err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A free pool element for a chain, or NULL (pool exhausted). */
struct vq_elem *vq_elem_get(struct vd_vq *vq);
/* Gives back an element that failed validation (releases mapper pins). */
void vq_elem_drop(struct vd_vq *vq, struct vq_elem *qe);
/* Records a validated element as in flight under id and calls on_pop. */
void vq_elem_popped(struct vd_vq *vq, struct vq_elem *qe, uint16_t id,
		    uint16_t ndescs, bool requeued);
/* The pool element behind e if it is in flight, else NULL (and the queue
 * is broken: the device pushed something it never popped). */
struct vq_elem *vq_elem_check_push(struct vd_vq *vq, struct vd_vq_elem *e);
/* After the used entry for qe is written: dirty log of its data, on_push,
 * and back to the pool. */
void vq_elem_pushed(struct vd_vq *vq, struct vq_elem *qe, uint32_t written);

void vq_chain_init(struct vq_chain *c, struct vd_vq *vq, struct vq_elem *qe);
/* A ring descriptor with INDIRECT set: the feature must be negotiated and
 * the descriptor must stand alone (no NEXT; packed: not inside a list,
 * in_list). 0, or -1 with the queue broken. */
int vq_indirect_check(struct vd_vq *vq, uint16_t flags, unsigned idx,
		      bool in_list);
/* Appends one descriptor's buffer; checks order, total length, address and
 * iovec budget. 0, or -1 with the queue broken. `where` names the
 * descriptor in the reason ("desc 5", "indirect desc 3"). */
int vq_chain_add(struct vq_chain *c, uint64_t addr, uint32_t len, bool write,
		 const char *where, unsigned idx);
void vq_chain_finish(struct vq_chain *c);

/* An indirect table mapped for reading: up to VQ_TABLE_IOV pieces. */
#define VQ_TABLE_IOV 4
struct vq_table {
	struct iovec iov[VQ_TABLE_IOV];
	unsigned n;
	uint32_t entries;
};
/* Checks size (non-empty, multiple of 16, at most VD_VQ_MAX_SIZE entries)
 * and address, and maps the table. 0, or -1 with the queue broken. */
int vq_table_map(struct vd_vq *vq, struct vq_table *t, uint64_t addr,
		 uint32_t len, unsigned desc_idx);
/* Copies entry i (< entries) once into out (16 bytes). */
void vq_table_read(const struct vq_table *t, uint32_t i, void *out);
void vq_table_unmap(struct vd_vq *vq, struct vq_table *t);

void vq_log(struct vd_vq *vq, uint64_t gpa, uint64_t len);

/* Layout-specific parts (virtqueue_split.c, virtqueue_packed.c). */
void vq_split_init(struct vd_vq *vq);
int vq_split_pop(struct vd_vq *vq, struct vd_vq_elem **out);
void vq_split_push(struct vd_vq *vq, struct vq_elem *qe, uint32_t written);
bool vq_split_flush(struct vd_vq *vq);
void vq_split_disable_notify(struct vd_vq *vq);
bool vq_split_enable_notify(struct vd_vq *vq);
bool vq_split_avail_pending(struct vd_vq *vq);
bool vq_split_avail_more(struct vd_vq *vq);
void vq_split_notify_more(struct vd_vq *vq);

void vq_packed_init(struct vd_vq *vq);
int vq_packed_pop(struct vd_vq *vq, struct vd_vq_elem **out);
void vq_packed_push(struct vd_vq *vq, struct vq_elem *qe, uint32_t written);
bool vq_packed_flush(struct vd_vq *vq);
void vq_packed_disable_notify(struct vd_vq *vq);
bool vq_packed_enable_notify(struct vd_vq *vq);
bool vq_packed_avail_pending(struct vd_vq *vq);
bool vq_packed_avail_more(struct vd_vq *vq);

#endif
