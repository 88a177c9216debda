/* Virtqueue parts common to both layouts: config checks, the element pool,
 * chain building with its validation, requeue and error reporting. Nothing
 * here allocates or makes a system call after vd_vq_new. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "virtiod/log.h"
#include "virtqueue_impl.h"

/* Broken-queue lines of every queue in the process: a driver can break a
 * queue, reset the device and break the next one as fast as it can trap,
 * and must not flood the host's log that way. Taken only when a queue
 * breaks, never on a healthy pop or push. */
static pthread_mutex_t break_log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vd_ratelimit break_log_rl = VD_RATELIMIT_INIT;

static const char *const error_str[] = {
	[VD_VQ_OK] = "ok",
	[VD_VQ_ERR_HEAD_RANGE] = "head index out of range",
	[VD_VQ_ERR_NEXT_RANGE] = "next index out of range",
	[VD_VQ_ERR_CHAIN_LOOP] = "descriptor loop or chain longer than queue",
	[VD_VQ_ERR_NESTED_INDIRECT] = "nested indirect table",
	[VD_VQ_ERR_INDIRECT_SIZE] = "bad indirect table or indirect flags",
	[VD_VQ_ERR_ADDR] = "buffer outside guest memory",
	[VD_VQ_ERR_ADDR_WRAP] = "buffer address wraps",
	[VD_VQ_ERR_CHAIN_LEN] = "chain length over 4 GiB",
	[VD_VQ_ERR_AVAIL_IDX] = "avail index moved by more than queue size",
	[VD_VQ_ERR_READ_AFTER_WRITE] = "readable descriptor after writable",
	[VD_VQ_ERR_IOV_BUDGET] = "more segments than the device accepts",
	[VD_VQ_ERR_BUFFER_ID] = "buffer id out of range or in flight",
	[VD_VQ_ERR_PUSH] = "device pushed an element it did not pop",
	[VD_VQ_ERR_INDIRECT_FEATURE] = "indirect descriptor not negotiated",
	[VD_VQ_ERR_CHAIN_MAX] =
		"chain longer than the device's largest request",
	[VD_VQ_ERR_MAP_BUDGET] =
		"chain needs more mappings than the queue may hold",
};

const char *vd_vq_error_str(enum vd_vq_error e)
{
	if ((unsigned)e >= sizeof(error_str) / sizeof(error_str[0]) ||
	    !error_str[e])
		return "unknown virtqueue error";
	return error_str[e];
}

void vd_vq_ring_sizes(enum vd_vq_layout layout, uint16_t num, size_t *desc_len,
		      size_t *driver_len, size_t *device_len)
{
	if (layout == VD_VQ_SPLIT) {
		/* virtio 1.2 §2.7: used_event / avail_event included. */
		*desc_len = 16u * num;
		*driver_len = 6u + 2u * num;
		*device_len = 6u + 8u * num;
	} else {
		/* §2.8.10.1 */
		*desc_len = 16u * num;
		*driver_len = 4;
		*device_len = 4;
	}
}

static bool aligned(const void *p, uintptr_t a)
{
	return ((uintptr_t)p & (a - 1)) == 0;
}

static int check_config(const struct vd_vq_config *c)
{
	if (c->num == 0 || c->num > VD_VQ_MAX_SIZE)
		return -EINVAL;
	if (c->max_iov < 2 || c->max_iov > VD_VQ_MAX_IOV)
		return -EINVAL;
	if (!c->desc || !c->driver || !c->device || !aligned(c->desc, 16))
		return -EINVAL;
	if (c->layout == VD_VQ_SPLIT) {
		/* §2.7: power-of-2 size; avail 2-, used 4-byte aligned. */
		if (c->num & (c->num - 1))
			return -EINVAL;
		if (!aligned(c->driver, 2) || !aligned(c->device, 4))
			return -EINVAL;
		return 0;
	}
	if (c->layout != VD_VQ_PACKED)
		return -EINVAL;
	if (!aligned(c->driver, 4) || !aligned(c->device, 4))
		return -EINVAL;
	if (c->avail_idx >= c->num ||
	    (c->used_idx_valid && c->used_idx >= c->num))
		return -EINVAL;
	return 0;
}

int vd_vq_new(const struct vd_vq_config *cfg, struct vd_mem *mem,
	      const struct vd_vq_hooks *hooks, const char *who,
	      struct vd_vq **out)
{
	struct vd_vq *vq;
	size_t per;

	if (!cfg || !mem || !out || check_config(cfg))
		return -EINVAL;
	vq = calloc(1, sizeof(*vq));
	if (!vq)
		return -ENOMEM;
	vq->cfg = *cfg;
	vq->mem = mem;
	if (hooks)
		vq->hooks = *hooks;
	snprintf(vq->who, sizeof(vq->who), "%s", who ? who : "vq");
	vq->num = cfg->num;
	vq->max_iov = cfg->max_iov;
	per = (size_t)cfg->num * cfg->max_iov;
	vq->elems = calloc(cfg->num, sizeof(*vq->elems));
	vq->iov_store = calloc(per, sizeof(*vq->iov_store));
	vq->gpa_store = calloc(per, sizeof(*vq->gpa_store));
	vq->free_slots = calloc(cfg->num, sizeof(*vq->free_slots));
	vq->id_slot = calloc(cfg->num, sizeof(*vq->id_slot));
	vq->requeue = calloc(cfg->num, sizeof(*vq->requeue));
	vq->pop_ns = calloc(cfg->num, sizeof(*vq->pop_ns));
	vq->batch_pop_ns = calloc(cfg->num, sizeof(*vq->batch_pop_ns));
	vq->stats = &vq->own_stats;
	if (!vq->elems || !vq->iov_store || !vq->gpa_store || !vq->free_slots ||
	    !vq->id_slot || !vq->requeue || !vq->pop_ns || !vq->batch_pop_ns) {
		vd_vq_free(vq);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < cfg->num; i++) {
		struct vd_vq_elem *e = &vq->elems[i].pub;

		e->slot = i;
		e->read_iov = &vq->iov_store[(size_t)i * cfg->max_iov];
		e->write_iov = e->read_iov;
		e->write_gpa = &vq->gpa_store[(size_t)i * cfg->max_iov];
		/* Pop hands out low slots first. */
		vq->free_slots[i] = (uint16_t)(cfg->num - 1 - i);
	}
	vq->n_free = cfg->num;
	vq->notify_enabled = true;
	if (cfg->layout == VD_VQ_SPLIT)
		vq_split_init(vq);
	else
		vq_packed_init(vq);
	*out = vq;
	return 0;
}

void vd_vq_free(struct vd_vq *vq)
{
	if (!vq)
		return;
	/* Mapper pins of elements the device never pushed. */
	for (unsigned i = 0; vq->elems && i < vq->num; i++) {
		struct vd_vq_elem *e = &vq->elems[i].pub;

		if (vq->elems[i].state == VQE_POPPED)
			vd_mem_release(vq->mem, e->read_iov,
				       e->n_read + e->n_write);
	}
	free(vq->elems);
	free(vq->iov_store);
	free(vq->gpa_store);
	free(vq->free_slots);
	free(vq->id_slot);
	free(vq->requeue);
	free(vq->pop_ns);
	free(vq->batch_pop_ns);
	free(vq);
}

void vq_break(struct vd_vq *vq, enum vd_vq_error err, const char *fmt, ...)
{
	char reason[160];
	va_list ap;

	if (vq->broken)
		return;
	vq->broken = true;
	vq->err = err;
	VD_STAT_ADD(vq->stats->errors, 1);
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&break_log_lock);
	vd_log_ratelimited(&break_log_rl, VD_LOG_ERR, vq->who,
			   "%s, queue disabled", reason);
	pthread_mutex_unlock(&break_log_lock);
	if (vq->hooks.on_broken)
		vq->hooks.on_broken(vq->hooks.ctx, vq, err, reason);
}

/* ------------------------------------------------------------ pool */

struct vq_elem *vq_elem_get(struct vd_vq *vq)
{
	struct vq_elem *qe;
	struct vd_vq_elem *e;

	if (vq->n_free == 0)
		return NULL;
	qe = &vq->elems[vq->free_slots[vq->n_free - 1]];
	e = &qe->pub;
	e->n_read = e->n_write = 0;
	e->read_len = e->write_len = 0;
	e->n_write_gpa = 0;
	e->ndescs = 0;
	return qe;
}

void vq_elem_drop(struct vd_vq *vq, struct vq_elem *qe)
{
	struct vd_vq_elem *e = &qe->pub;

	/* Whatever was translated before the chain failed. */
	vd_mem_release(vq->mem, e->read_iov, e->n_read + e->n_write);
	e->n_read = e->n_write = 0;
}

void vq_elem_popped(struct vd_vq *vq, struct vq_elem *qe, uint16_t id,
		    uint16_t ndescs, bool requeued)
{
	qe->pub.id = id;
	qe->pub.ndescs = ndescs;
	qe->state = VQE_POPPED;
	qe->requeued = requeued;
	qe->pop_seq = ++vq->pop_seq;
	vq->n_free--;
	vq->id_slot[id] = (uint16_t)(qe->pub.slot + 1);
	vq->inflight++;
	vq->pop_ns[qe->pub.slot] = vq->clock_ns;
	VD_STAT_ADD(vq->stats->requests, 1);
	VD_STAT_ADD(vq->stats->bytes_in, qe->pub.read_len);
	VD_STAT_SET(vq->stats->inflight, vq->inflight);
	if (vq->hooks.on_pop)
		vq->hooks.on_pop(vq->hooks.ctx, &qe->pub);
}

struct vq_elem *vq_elem_check_push(struct vd_vq *vq, struct vd_vq_elem *e)
{
	uintptr_t p = (uintptr_t)e, base = (uintptr_t)vq->elems;
	size_t sz = sizeof(struct vq_elem);
	struct vq_elem *qe;

	/* Only a pointer to one of our elements, popped and not yet pushed,
	 * is dereferenced. */
	if (!e || p < base || p - base >= vq->num * sz || (p - base) % sz) {
		vq_break(vq, VD_VQ_ERR_PUSH, "push of an unknown element %p",
			 (void *)e);
		return NULL;
	}
	qe = &vq->elems[(p - base) / sz];
	if (qe->state != VQE_POPPED) {
		vq_break(vq, VD_VQ_ERR_PUSH,
			 "push of element slot %u that is not in flight",
			 qe->pub.slot);
		return NULL;
	}
	return qe;
}

/* The latency of each completion about to be published, into the
 * histogram: log2 buckets, no division, no allocation. */
static void stats_publish(struct vd_vq *vq)
{
	struct vd_vq_stats *st = vq->stats;
	uint64_t sum = 0;

	for (unsigned i = 0; i < vq->batch_n; i++) {
		uint64_t lat = vq->clock_ns > vq->batch_pop_ns[i]
				       ? vq->clock_ns - vq->batch_pop_ns[i]
				       : 0;
		uint64_t x = lat >> 10;
		unsigned b = x ? 64u - (unsigned)__builtin_clzll(x) : 0;

		if (b >= VD_VQ_HIST_BUCKETS)
			b = VD_VQ_HIST_BUCKETS - 1;
		VD_STAT_ADD(st->latency_hist[b], 1);
		sum += lat;
	}
	VD_STAT_ADD(st->latency_ns_sum, sum);
	vq->batch_n = 0;
}

void vq_elem_pushed(struct vd_vq *vq, struct vq_elem *qe, uint32_t written)
{
	struct vd_vq_elem *e = &qe->pub;

	if (vq->logging && !vq->broken) {
		uint64_t left = written;

		/* The device wrote `written` bytes from the start of the
		 * writable part, in descriptor order. */
		for (unsigned i = 0; i < e->n_write_gpa && left; i++) {
			uint64_t n = e->write_gpa[i].len < left
					     ? e->write_gpa[i].len
					     : left;

			vq_log(vq, e->write_gpa[i].gpa, n);
			left -= n;
		}
	}
	if (vq->hooks.on_push && !vq->broken)
		vq->hooks.on_push(vq->hooks.ctx, e);
	qe->state = VQE_FREE;
	vq->id_slot[e->id] = 0;
	vq->free_slots[vq->n_free++] = (uint16_t)e->slot;
	vq->inflight--;
	VD_STAT_ADD(vq->stats->completions, 1);
	VD_STAT_ADD(vq->stats->bytes_out, written);
	VD_STAT_SET(vq->stats->inflight, vq->inflight);
	if (vq->broken)
		return; /* never published */
	vq->unpublished++;
	/* The driver reuses a buffer only once it saw it used, so at most
	 * num completions wait for one publication; stamp early otherwise. */
	if (vq->batch_n == vq->num)
		stats_publish(vq);
	vq->batch_pop_ns[vq->batch_n++] = vq->pop_ns[e->slot];
}

void vq_log(struct vd_vq *vq, uint64_t gpa, uint64_t len)
{
	if (vq->logging)
		vq->hooks.log_write(vq->hooks.ctx, gpa, len);
}

/* ------------------------------------------------------------ chains */

/* A mapper over its per-queue budget (-EAGAIN, Xen grants): the chain
 * waits, unpopped, for completions in flight to give mappings back
 * (vd_vq_take_retry); with nothing in flight it can never fit. -1 either
 * way: the walk stops and the partial chain is dropped. */
static int over_budget(struct vd_vq *vq, const char *where, unsigned idx)
{
	if (vq->inflight == 0) {
		vq_break(vq, VD_VQ_ERR_MAP_BUDGET,
			 "%s %u: chain needs more guest-memory mappings than "
			 "the queue may hold",
			 where, idx);
		return -1;
	}
	vq->held = true;
	return -1;
}

/* What a failed vd_mem_translate means for the queue. */
static enum vd_vq_error translate_error(int rc)
{
	return rc == -EOVERFLOW ? VD_VQ_ERR_ADDR_WRAP
	       : rc == -ENOBUFS ? VD_VQ_ERR_IOV_BUDGET
				: VD_VQ_ERR_ADDR;
}

int vq_indirect_check(struct vd_vq *vq, uint16_t flags, unsigned idx,
		      bool in_list)
{
	if (!vq->cfg.indirect) {
		vq_break(vq, VD_VQ_ERR_INDIRECT_FEATURE,
			 "desc %u is indirect but VIRTIO_F_INDIRECT_DESC is "
			 "off",
			 idx);
		return -1;
	}
	/* §2.7.5.3.1: INDIRECT and NEXT never together. §2.8.19: a packed
	 * indirect descriptor is a list of its own, never inside one. */
	if ((flags & VRING_DESC_F_NEXT) || in_list) {
		vq_break(vq, VD_VQ_ERR_INDIRECT_SIZE, "desc %u: INDIRECT %s",
			 idx, in_list ? "inside a NEXT list" : "with NEXT");
		return -1;
	}
	return 0;
}

void vq_chain_init(struct vq_chain *c, struct vd_vq *vq, struct vq_elem *qe)
{
	c->vq = vq;
	c->e = &qe->pub;
	c->n_iov = 0;
	c->seen_write = false;
	c->total = 0;
}

int vq_chain_add(struct vq_chain *c, uint64_t addr, uint32_t len, bool write,
		 const char *where, unsigned idx)
{
	struct vd_vq *vq = c->vq;
	struct vd_vq_elem *e = c->e;
	int rc;

	/* §2.7.5.2, §2.8.17: writable elements come after every readable
	 * one. */
	if (!write && c->seen_write) {
		vq_break(vq, VD_VQ_ERR_READ_AFTER_WRITE,
			 "readable %s %u after a writable one", where, idx);
		return -1;
	}
	c->total += len;
	if (c->total > UINT32_MAX) {
		vq_break(vq, VD_VQ_ERR_CHAIN_LEN,
			 "chain length over 4 GiB at %s %u", where, idx);
		return -1;
	}
	if (vq->cfg.max_chain_len && c->total > vq->cfg.max_chain_len) {
		vq_break(vq, VD_VQ_ERR_CHAIN_MAX,
			 "chain of over %llu bytes at %s %u, the device takes "
			 "%llu at most",
			 (unsigned long long)c->total, where, idx,
			 (unsigned long long)vq->cfg.max_chain_len);
		return -1;
	}
	rc = vd_mem_translate_hinted(vq->mem, &vq->mem_hint, addr, len,
				     write ? VD_MEM_WRITE : VD_MEM_READ,
				     e->read_iov, vq->max_iov, &c->n_iov);
	if (rc == -EAGAIN)
		return over_budget(vq, where, idx);
	if (rc) {
		enum vd_vq_error err = translate_error(rc);

		vq_break(vq, err, "%s %u: addr 0x%llx len %u: %s", where, idx,
			 (unsigned long long)addr, len, vd_vq_error_str(err));
		return -1;
	}
	/* Keep the counts current so vq_elem_drop can release pins. */
	if (write) {
		c->seen_write = true;
		e->write_len += len;
		e->n_write = c->n_iov - e->n_read;
		if (len)
			e->write_gpa[e->n_write_gpa++] =
				(struct vd_gpa_range){addr, len};
	} else {
		e->read_len += len;
		e->n_read = c->n_iov;
	}
	return 0;
}

void vq_chain_finish(struct vq_chain *c)
{
	struct vd_vq_elem *e = c->e;

	e->n_write = c->n_iov - e->n_read;
	e->write_iov = e->read_iov + e->n_read;
}

int vq_table_map(struct vd_vq *vq, struct vq_table *t, uint64_t addr,
		 uint32_t len, unsigned desc_idx)
{
	int rc;

	/* §2.7.5.3: a table of whole descriptors. The cap bounds the walk
	 * even for zero-length entries, which take no iovec. */
	if (len == 0 || len % 16 || len / 16 > VD_VQ_MAX_SIZE) {
		vq_break(vq, VD_VQ_ERR_INDIRECT_SIZE,
			 "desc %u: indirect table of %u bytes", desc_idx, len);
		return -1;
	}
	t->n = 0;
	t->entries = len / 16;
	rc = vd_mem_translate_hinted(vq->mem, &vq->mem_hint, addr, len,
				     VD_MEM_READ, t->iov, VQ_TABLE_IOV, &t->n);
	if (rc == -EAGAIN)
		return over_budget(vq, "indirect table of desc", desc_idx);
	if (rc) {
		/* More than VQ_TABLE_IOV pieces is IOV_BUDGET. */
		enum vd_vq_error err = translate_error(rc);

		vq_break(vq, err, "desc %u: indirect table 0x%llx len %u: %s",
			 desc_idx, (unsigned long long)addr, len,
			 vd_vq_error_str(err));
		return -1;
	}
	return 0;
}

void vq_table_read(const struct vq_table *t, uint32_t i, void *out)
{
	size_t off = (size_t)i * 16, got = 0;
	uint8_t tmp[16];

	if (t->n == 1) {
		vq_copy_once(out, (const uint8_t *)t->iov[0].iov_base + off,
			     16);
		return;
	}
	/* The table crosses regions: gather the entry's 16 bytes. */
	for (unsigned k = 0; k < t->n && got < 16; k++) {
		size_t l = t->iov[k].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		size_t n = l - off < 16 - got ? l - off : 16 - got;

		memcpy(tmp + got, (const uint8_t *)t->iov[k].iov_base + off, n);
		got += n;
		off = 0;
	}
	vq_copy_once(out, tmp, 16);
}

void vq_table_unmap(struct vd_vq *vq, struct vq_table *t)
{
	vd_mem_release(vq->mem, t->iov, t->n);
	t->n = 0;
}

/* ------------------------------------------------------------ API */

/* Mappings came back: a chain held for them may fit now. */
static void vq_unhold(struct vd_vq *vq)
{
	if (vq->held) {
		vq->held = false;
		vq->retry = true;
	}
}

bool vd_vq_take_retry(struct vd_vq *vq)
{
	bool r = vq->retry;

	vq->retry = false;
	return r && !vq->broken;
}

int vd_vq_pop(struct vd_vq *vq, struct vd_vq_elem **out)
{
	/* While a memory-table writer waits, take nothing new: requests in
	 * flight drain, the queue thread leaves its read section, and a
	 * busy guest cannot starve the writer (docs/core.md). The chains
	 * are still there: pop again after (vd_vq_take_retry), or a model
	 * that took "nothing" for an empty ring would wait for a kick. */
	if (vq->broken)
		return 0;
	if (vd_mem_grace_pending(vq->mem)) {
		vq->retry = true;
		return 0;
	}
	return vq->cfg.layout == VD_VQ_SPLIT ? vq_split_pop(vq, out)
					     : vq_packed_pop(vq, out);
}

void vd_vq_push(struct vd_vq *vq, struct vd_vq_elem *e, uint32_t written)
{
	struct vq_elem *qe = vq_elem_check_push(vq, e);

	if (!qe)
		return;
	vd_mem_release(vq->mem, e->read_iov, e->n_read + e->n_write);
	vq_unhold(vq);
	/* The device cannot have written more than the buffers hold. */
	if (written > e->write_len)
		written = (uint32_t)e->write_len;
	if (vq->broken) {
		/* Nothing more goes to the ring; the element is just freed
		 * so the device can drain. */
		vq_elem_pushed(vq, qe, 0);
		return;
	}
	if (vq->cfg.layout == VD_VQ_SPLIT)
		vq_split_push(vq, qe, written);
	else
		vq_packed_push(vq, qe, written);
}

int vd_vq_unpop(struct vd_vq *vq, struct vd_vq_elem *e)
{
	struct vq_elem *qe;
	uintptr_t p = (uintptr_t)e, base = (uintptr_t)vq->elems;
	size_t sz = sizeof(struct vq_elem);

	if (!e || p < base || p - base >= vq->num * sz || (p - base) % sz)
		return -EINVAL;
	qe = &vq->elems[(p - base) / sz];
	/* Only the latest pop still out: rewinding the ring past a chain
	 * the device keeps would hand that chain out twice. */
	if (qe->state != VQE_POPPED || qe->pop_seq != vq->pop_seq)
		return -EINVAL;
	vd_mem_release(vq->mem, e->read_iov, e->n_read + e->n_write);
	vq_unhold(vq);
	if (vq->hooks.on_unpop && !vq->broken)
		vq->hooks.on_unpop(vq->hooks.ctx, e);
	if (qe->requeued) {
		vq->requeue_at--;
	} else if (vq->cfg.layout == VD_VQ_SPLIT) {
		vq->last_avail--;
	} else {
		/* §2.8: the chain's slots are untouched (used entries are
		 * written only over chains popped before it). */
		if (vq->avail_pos < e->ndescs) {
			vq->avail_pos = (uint16_t)(vq->avail_pos + vq->num);
			vq->avail_wrap = !vq->avail_wrap;
		}
		vq->avail_pos = (uint16_t)(vq->avail_pos - e->ndescs);
	}
	vq->pop_seq--;
	qe->state = VQE_FREE;
	vq->id_slot[e->id] = 0;
	vq->free_slots[vq->n_free++] = (uint16_t)e->slot;
	vq->inflight--;
	e->n_read = e->n_write = 0;
	return 0;
}

bool vd_vq_flush(struct vd_vq *vq)
{
	bool notify;

	if (vq->broken) {
		vq->batch_n = vq->unpublished = 0;
		return false;
	}
	notify = vq->cfg.layout == VD_VQ_SPLIT ? vq_split_flush(vq)
					       : vq_packed_flush(vq);
	if (vq->unpublished) {
		stats_publish(vq);
		if (notify)
			VD_STAT_ADD(vq->stats->notify_sent, 1);
		else
			VD_STAT_ADD(vq->stats->notify_suppressed, 1);
		vq->unpublished = 0;
	}
	return notify;
}

void vd_vq_set_stats(struct vd_vq *vq, struct vd_vq_stats *s)
{
	vq->stats = s ? s : &vq->own_stats;
}

void vd_vq_set_clock(struct vd_vq *vq, uint64_t now_ns)
{
	vq->clock_ns = now_ns;
}

unsigned vd_vq_unpublished(const struct vd_vq *vq)
{
	return vq->unpublished;
}

void vd_vq_count_error(struct vd_vq *vq)
{
	VD_STAT_ADD(vq->stats->errors, 1);
}

void vd_vq_stats_read(const struct vd_vq_stats *s, struct vd_vq_stats *out)
{
#define RD(f) out->f = __atomic_load_n(&s->f, __ATOMIC_RELAXED)
	RD(requests);
	RD(completions);
	RD(bytes_in);
	RD(bytes_out);
	RD(inflight);
	RD(errors);
	RD(kicks);
	RD(notify_sent);
	RD(notify_suppressed);
	RD(latency_ns_sum);
	for (unsigned b = 0; b < VD_VQ_HIST_BUCKETS; b++)
		RD(latency_hist[b]);
#undef RD
}

void vd_vq_disable_notify(struct vd_vq *vq)
{
	if (vq->broken)
		return;
	vq->notify_enabled = false;
	if (vq->cfg.layout == VD_VQ_SPLIT)
		vq_split_disable_notify(vq);
	else
		vq_packed_disable_notify(vq);
}

bool vd_vq_enable_notify(struct vd_vq *vq)
{
	if (vq->broken)
		return false;
	vq->notify_enabled = true;
	return vq->cfg.layout == VD_VQ_SPLIT ? vq_split_enable_notify(vq)
					     : vq_packed_enable_notify(vq);
}

bool vd_vq_enable_notify_more(struct vd_vq *vq)
{
	if (vq->broken)
		return false;
	if (!vq->empty_valid)
		return vd_vq_enable_notify(vq);
	vq->notify_enabled = true;
	if (vq->cfg.layout == VD_VQ_SPLIT)
		vq_split_notify_more(vq);
	else
		/* ENABLE: a kick for any chain from now on. */
		vq_packed_enable_notify(vq);
	VQ_MB();
	return vd_vq_avail_more(vq);
}

bool vd_vq_avail_more(struct vd_vq *vq)
{
	if (vq->broken)
		return false;
	if (!vq->empty_valid)
		return vd_vq_avail_pending(vq);
	return vq->cfg.layout == VD_VQ_SPLIT ? vq_split_avail_more(vq)
					     : vq_packed_avail_more(vq);
}

bool vd_vq_avail_pending(struct vd_vq *vq)
{
	if (vq->broken)
		return false;
	if (vq->requeue_at < vq->requeue_n)
		return true;
	return vq->cfg.layout == VD_VQ_SPLIT ? vq_split_avail_pending(vq)
					     : vq_packed_avail_pending(vq);
}

bool vd_vq_broken(const struct vd_vq *vq)
{
	return vq->broken;
}

uint16_t vd_vq_size(const struct vd_vq *vq)
{
	return vq->num;
}

unsigned vd_vq_max_iov(const struct vd_vq *vq)
{
	return vq->max_iov;
}

enum vd_vq_error vd_vq_last_error(const struct vd_vq *vq)
{
	return vq->err;
}

unsigned vd_vq_inflight(const struct vd_vq *vq)
{
	return vq->inflight;
}

void vd_vq_get_base(const struct vd_vq *vq, uint16_t *avail_idx,
		    bool *avail_wrap, uint16_t *used_idx, bool *used_wrap)
{
	if (vq->cfg.layout == VD_VQ_SPLIT) {
		*avail_idx = vq->last_avail;
		*avail_wrap = false;
		*used_idx = vq->pub_used;
		*used_wrap = false;
	} else {
		*avail_idx = vq->avail_pos;
		*avail_wrap = vq->avail_wrap;
		*used_idx = vq->pub_pos;
		*used_wrap = vq->pub_wrap;
	}
}

void vd_vq_set_logging(struct vd_vq *vq, bool on)
{
	vq->logging = on && vq->hooks.log_write;
}

int vd_vq_requeue(struct vd_vq *vq, const uint16_t *heads, unsigned n)
{
	if (n > vq->num || (n && !heads))
		return -EINVAL;
	/* Checked when popped, like any head read from the ring. */
	if (n)
		memcpy(vq->requeue, heads, n * sizeof(*heads));
	vq->requeue_n = n;
	vq->requeue_at = 0;
	return 0;
}
