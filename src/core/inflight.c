/* Inflight tracking (include/virtiod/inflight.h): regions in vhost-user's
 * inflight layout, recorded from the vq hooks and recovered at a restart.
 * The region may have been written by a process that died mid-store, or by
 * a frontend: every index read from it is checked before it is used, and
 * links are read once into local arrays. */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>

#include "virtiod/inflight.h"
#include "virtiod/log.h"

#define REGION_VERSION 1
#define REGION_ALIGN   64 /* per-queue stride, as DPDK and libvhost-user */
#define NO_ENTRY       0xffff

#define P_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define P_USED	(1u << VRING_PACKED_DESC_F_USED)

/* Stores a successor reads after a crash: ordered as written. */
#define STORE(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)

/* Local state (queue thread once attached): the region is only written,
 * never trusted, while the queue runs. */
struct vd_inflight {
	const char *who;
	bool packed;
	uint16_t desc_num; /* entries in the region */
	uint16_t num;	   /* queue size */
	uint64_t counter;  /* next submission counter */
	struct vd_inflight_split *split;
	struct vd_inflight_packed *pk;
	/* The batch pushed since the last publish; packed: the free list,
	 * chain tails and buffer id -> head entry. */
	uint16_t *batch;
	unsigned batch_n;
	uint16_t *next, *last, *id_head;
	uint16_t free_head; /* first really free entry (old_free_head) */
	uint16_t pending_head, pending_tail; /* pushed, not yet published */
	/* packed: where the next popped chain starts (its copies are taken
	 * from there), and the used position */
	struct vring_packed_desc *ring;
	uint16_t avail_pos, used_pos;
	bool avail_wrap, used_wrap;
	struct vd_ratelimit rl;
};

size_t vd_inflight_region_size(enum vd_vq_layout layout, uint16_t entries)
{
	size_t n =
		layout == VD_VQ_PACKED
			? sizeof(struct vd_inflight_packed) +
				  entries *
					  sizeof(struct vd_inflight_desc_packed)
			: sizeof(struct vd_inflight_split) +
				  entries *
					  sizeof(struct vd_inflight_desc_split);

	return (n + REGION_ALIGN - 1) & ~(size_t)(REGION_ALIGN - 1);
}

void vd_inflight_free(struct vd_inflight *t)
{
	if (!t)
		return;
	free(t->batch);
	free(t->next);
	free(t->last);
	free(t->id_head);
	free(t);
}

static int alloc_local(struct vd_inflight *t)
{
	t->batch = calloc(t->num, sizeof(*t->batch));
	if (!t->packed)
		return t->batch ? 0 : -ENOMEM;
	t->next = calloc(t->desc_num, sizeof(*t->next));
	t->last = calloc(t->desc_num, sizeof(*t->last));
	t->id_head = malloc(t->num * sizeof(*t->id_head));
	if (!t->batch || !t->next || !t->last || !t->id_head)
		return -ENOMEM;
	memset(t->id_head, 0xff, t->num * sizeof(*t->id_head));
	return 0;
}

struct by_counter {
	uint64_t counter;
	uint16_t head;
	uint16_t first, cnt; /* packed: its entries, chain[first, +cnt) */
};

static int cmp_counter(const void *a, const void *b)
{
	const struct by_counter *x = a, *y = b;

	return x->counter < y->counter ? -1 : x->counter > y->counter;
}

/* ------------------------------------------------------------------ split */

static void split_init(struct vd_inflight_split *s, uint16_t desc_num,
		       uint16_t used_idx)
{
	memset(s->desc, 0, desc_num * sizeof(s->desc[0]));
	s->features = 0;
	s->desc_num = desc_num;
	s->last_batch_head = 0;
	s->used_idx = used_idx;
	STORE(s->version, REGION_VERSION);
}

/* "When reconnecting" (split): the heads to serve again, oldest first. */
static int split_recover(struct vd_inflight *t, struct vd_vq_config *cfg,
			 uint16_t *requeue, unsigned *n_requeue)
{
	struct vd_inflight_split *s = t->split;
	struct vring_used *used_ring = cfg->device;
	uint16_t used =
		le16toh(__atomic_load_n(&used_ring->idx, __ATOMIC_ACQUIRE));
	struct by_counter *heads;
	unsigned n = 0;

	/* The last batch reached the used ring but its entries were not
	 * cleared: clear them now (the list is the batch, newest first). */
	if (s->used_idx != used) {
		uint16_t batch = (uint16_t)(used - s->used_idx);
		uint16_t i = s->last_batch_head;

		for (unsigned k = 0;
		     k < batch && k < t->desc_num && i < t->desc_num; k++) {
			STORE(s->desc[i].inflight, 0);
			i = s->desc[i].next;
		}
		STORE(s->used_idx, used);
	}
	heads = calloc(t->desc_num, sizeof(*heads));
	if (!heads)
		return -ENOMEM;
	for (uint16_t i = 0; i < t->desc_num; i++) {
		if (!s->desc[i].inflight)
			continue;
		if (i >= cfg->num) {
			/* Cannot be a head of this ring: dropped. */
			STORE(s->desc[i].inflight, 0);
			continue;
		}
		heads[n].counter = s->desc[i].counter;
		heads[n].head = i;
		n++;
	}
	qsort(heads, n, sizeof(*heads), cmp_counter);
	for (unsigned k = 0; k < n; k++)
		requeue[k] = heads[k].head;
	t->counter = n ? heads[n - 1].counter + 1 : 0;
	free(heads);
	/* Every chain the driver made available so far was either used or
	 * is in flight: the next new one is used + in flight. */
	cfg->avail_idx = (uint16_t)(used + n);
	cfg->used_idx_valid = false;
	*n_requeue = n;
	return 0;
}

/* ----------------------------------------------------------------- packed */

static void packed_init(struct vd_inflight *t, uint16_t used_idx,
			bool used_wrap)
{
	struct vd_inflight_packed *p = t->pk;

	memset(p->desc, 0, t->desc_num * sizeof(p->desc[0]));
	for (uint16_t i = 0; i < t->desc_num; i++) {
		p->desc[i].next = (uint16_t)(i + 1);
		t->next[i] = (uint16_t)(i + 1); /* desc_num ends the list */
	}
	p->features = 0;
	p->desc_num = t->desc_num;
	p->free_head = p->old_free_head = 0;
	p->used_idx = p->old_used_idx = used_idx;
	p->used_wrap_counter = p->old_used_wrap_counter = used_wrap;
	STORE(p->version, REGION_VERSION);
	t->free_head = 0;
}

/* Walks the recorded chains; false if the region does not hold together.
 * Each chain's entries go to chain[] (num room), read once. */
static bool packed_collect(struct vd_inflight_packed *p, uint16_t desc_num,
			   uint16_t num, uint16_t free_head,
			   struct by_counter *heads, unsigned *n_heads,
			   unsigned *slots, uint8_t *mark, uint16_t *chain)
{
	uint16_t i = free_head;

	memset(mark, 0, desc_num);
	/* What the free list holds was rolled back: free again. */
	for (unsigned k = 0; k < desc_num && i < desc_num && !mark[i]; k++) {
		mark[i] = 1;
		STORE(p->desc[i].inflight, 0);
		i = p->desc[i].next;
	}
	*n_heads = 0;
	*slots = 0;
	for (uint16_t h = 0; h < desc_num; h++) {
		uint16_t cnt = p->desc[h].num, j = h;

		if (!p->desc[h].inflight || mark[h] == 1)
			continue;
		if (cnt == 0 || cnt > num || *slots + cnt > num)
			return false;
		for (uint16_t k = 0; k < cnt; k++) {
			if (j >= desc_num || mark[j])
				return false;
			mark[j] = 2;
			chain[*slots + k] = j;
			if (k + 1 < cnt)
				j = p->desc[j].next;
		}
		if (j != p->desc[h].last)
			return false;
		heads[*n_heads].counter = p->desc[h].counter;
		heads[*n_heads].head = h;
		heads[*n_heads].first = (uint16_t)*slots;
		heads[*n_heads].cnt = cnt;
		(*n_heads)++;
		*slots += cnt;
	}
	return true;
}

/* "When reconnecting" (packed). The ring slots from the used position on
 * belong to the device until it writes used elements there, and
 * out-of-order completions may have overwritten chains still in flight:
 * the recorded chains are written back there, oldest first, as available
 * descriptors, and the ring restarts at the used position. */
static int packed_recover(struct vd_inflight *t, struct vd_vq_config *cfg)
{
	struct vd_inflight_packed *p = t->pk;
	struct vring_packed_desc *ring = cfg->desc;
	uint16_t num = cfg->num, u = p->old_used_idx, free_head, pos;
	bool w = p->old_used_wrap_counter, committed = false, pw;
	struct by_counter *heads;
	unsigned n = 0, slots = 0;
	uint16_t *chain;
	uint8_t *mark;

	/* A batch was being published: if the driver can see its first
	 * used element, it was, and the batch is committed; else roll it
	 * back. */
	if ((p->used_idx != u || p->used_wrap_counter != w) && u < num) {
		uint16_t fl = le16toh(
			__atomic_load_n(&ring[u].flags, __ATOMIC_ACQUIRE));
		uint16_t avail = w ? P_AVAIL : P_USED;

		if ((fl & (P_AVAIL | P_USED)) != avail)
			committed = true;
	}
	if (committed) {
		u = p->used_idx;
		w = p->used_wrap_counter;
		free_head = p->free_head;
	} else {
		free_head = p->old_free_head;
	}
	heads = calloc(t->desc_num, sizeof(*heads));
	mark = malloc(t->desc_num);
	chain = malloc(num * sizeof(*chain));
	if (!heads || !mark || !chain) {
		free(heads);
		free(mark);
		free(chain);
		return -ENOMEM;
	}
	if (u >= num || !packed_collect(p, t->desc_num, num, free_head, heads,
					&n, &slots, mark, chain)) {
		vd_err(t->who, "inflight record is inconsistent: its requests "
			       "cannot be served again");
		n = 0;
		if (u >= num) {
			u = cfg->used_idx;
			w = cfg->used_wrap;
		}
	}
	qsort(heads, n, sizeof(*heads), cmp_counter);
	pos = u;
	pw = w;
	for (unsigned k = 0; k < n; k++) {
		for (uint16_t d = 0; d < heads[k].cnt; d++) {
			const struct vd_inflight_desc_packed *s =
				&p->desc[chain[heads[k].first + d]];
			uint16_t fl = (uint16_t)(le16toh(s->flags) &
						 ~(P_AVAIL | P_USED));

			fl |= pw ? P_AVAIL : P_USED;
			ring[pos].addr = s->addr;
			ring[pos].len = s->len;
			ring[pos].id = s->id;
			__atomic_store_n(&ring[pos].flags, htole16(fl),
					 __ATOMIC_RELEASE);
			if (++pos == num) {
				pos = 0;
				pw = !pw;
			}
		}
	}
	free(heads);
	free(mark);
	free(chain);
	if (n)
		vd_info(t->who,
			"serving again %u requests in flight before the "
			"restart",
			n);
	/* They are popped again and recorded afresh. */
	packed_init(t, u, w);
	cfg->avail_idx = u;
	cfg->avail_wrap = w;
	cfg->used_idx = u;
	cfg->used_wrap = w;
	cfg->used_idx_valid = true;
	return 0;
}

/* ------------------------------------------------------------------ attach */

int vd_inflight_attach(void *region, uint16_t entries, bool recover,
		       struct vd_vq_config *cfg, uint16_t *requeue,
		       unsigned *n_requeue, const char *who,
		       struct vd_inflight **out)
{
	struct vd_inflight *t;
	bool packed = cfg->layout == VD_VQ_PACKED;
	uint16_t version, recorded;
	int rc;

	*n_requeue = 0;
	*out = NULL;
	if (!region || entries < cfg->num || entries > VD_VQ_MAX_SIZE)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->who = who ? who : "inflight";
	t->packed = packed;
	t->desc_num = entries;
	t->num = cfg->num;
	t->rl = (struct vd_ratelimit)VD_RATELIMIT_INIT;
	rc = alloc_local(t);
	if (rc)
		goto fail;
	if (packed) {
		t->pk = region;
		version = t->pk->version;
		recorded = t->pk->desc_num;
	} else {
		t->split = region;
		version = t->split->version;
		recorded = t->split->desc_num;
	}
	if (recover && version &&
	    (version != REGION_VERSION || recorded != entries)) {
		vd_warn(t->who,
			"inflight record has version %u, %u entries "
			"(expected %u, %u): nothing to serve again",
			version, recorded, REGION_VERSION, entries);
		recover = false;
	}
	if (!recover || !version) {
		if (packed)
			packed_init(t, cfg->used_idx, cfg->used_wrap);
		else
			split_init(t->split, entries,
				   cfg->used_idx_valid
					   ? cfg->used_idx
					   : le16toh(__atomic_load_n(
						     &((struct vring_used *)
							       cfg->device)
							      ->idx,
						     __ATOMIC_ACQUIRE)));
	} else if (packed) {
		rc = packed_recover(t, cfg);
	} else {
		rc = split_recover(t, cfg, requeue, n_requeue);
		if (rc == 0 && *n_requeue)
			vd_info(t->who,
				"serving again %u requests in flight before "
				"the restart",
				*n_requeue);
	}
	if (rc)
		goto fail;
	t->ring = cfg->desc;
	t->avail_pos = cfg->avail_idx;
	t->avail_wrap = cfg->avail_wrap;
	t->used_pos = cfg->used_idx;
	t->used_wrap = cfg->used_wrap;
	*out = t;
	return 0;
fail:
	*n_requeue = 0;
	vd_inflight_free(t);
	return rc;
}

/* ------------------------------------------------------------------ hooks */

/* "When receiving available buffers from the driver" */
void vd_inflight_popped(struct vd_inflight *t, const struct vd_vq_elem *e)
{
	struct vd_inflight_packed *p = t->pk;
	uint16_t h = t->free_head, j = h, last = h;

	if (!t->packed) {
		struct vd_inflight_desc_split *d = &t->split->desc[e->id];

		d->counter = t->counter++;
		STORE(d->inflight, 1);
		return;
	}
	/* packed: copy the chain's ring slots (intact until it completes)
	 * into free entries, then commit by moving old_free_head past them.
	 * Entries of completions not yet published are not free yet: they
	 * hang between free_head and old_free_head (see pushed). */
	if (e->ndescs == 0 || e->ndescs > t->num || e->id >= t->num) {
		vd_log_ratelimited(&t->rl, VD_LOG_ERR, t->who,
				   "chain of %u slots, id %u not recorded",
				   e->ndescs, e->id);
		return;
	}
	for (uint16_t k = 0; k < e->ndescs; k++) {
		uint16_t pos = (uint16_t)((t->avail_pos + k) % t->num);
		struct vd_inflight_desc_packed *d;

		if (j >= t->desc_num) {
			vd_log_ratelimited(&t->rl, VD_LOG_ERR, t->who,
					   "inflight entries exhausted");
			return;
		}
		d = &p->desc[j];
		d->addr = t->ring[pos].addr;
		d->len = t->ring[pos].len;
		d->id = t->ring[pos].id;
		d->flags = t->ring[pos].flags;
		last = j;
		j = t->next[j];
	}
	t->avail_pos = (uint16_t)(t->avail_pos + e->ndescs);
	if (t->avail_pos >= t->num) {
		t->avail_pos = (uint16_t)(t->avail_pos - t->num);
		t->avail_wrap = !t->avail_wrap;
	}
	p->desc[h].num = e->ndescs;
	p->desc[h].last = last;
	p->desc[h].counter = t->counter++;
	t->last[h] = last;
	t->id_head[e->id] = h;
	STORE(p->desc[h].inflight, 1);
	t->free_head = j;
	STORE(p->old_free_head, j);
	if (t->batch_n) {
		t->next[t->pending_tail] = j;
		STORE(p->desc[t->pending_tail].next, j);
	} else {
		STORE(p->free_head, j);
	}
}

/* vd_vq_unpop gave back the latest chain popped: popped undone, its
 * entries back at the head of the free list (their links are untouched). */
void vd_inflight_unpopped(struct vd_inflight *t, const struct vd_vq_elem *e)
{
	struct vd_inflight_packed *p = t->pk;
	uint16_t h;

	if (!t->packed) {
		STORE(t->split->desc[e->id].inflight, 0);
		t->counter--;
		return;
	}
	h = e->id < t->num ? t->id_head[e->id] : NO_ENTRY;
	if (h >= t->desc_num)
		return; /* not recorded at pop (logged there) */
	STORE(p->desc[h].inflight, 0);
	t->id_head[e->id] = NO_ENTRY;
	t->counter--;
	if (t->avail_pos < e->ndescs) {
		t->avail_pos = (uint16_t)(t->avail_pos + t->num);
		t->avail_wrap = !t->avail_wrap;
	}
	t->avail_pos = (uint16_t)(t->avail_pos - e->ndescs);
	t->free_head = h;
	STORE(p->old_free_head, h);
	if (t->batch_n) {
		t->next[t->pending_tail] = h;
		STORE(p->desc[t->pending_tail].next, h);
	} else {
		STORE(p->free_head, h);
	}
}

/* "When supplying used buffers to the driver", before the batch is
 * published: the chain goes on the list that starts at free_head and joins
 * the free list at old_free_head, so a rollback to old_free_head keeps it
 * in flight and a commit frees it. */
void vd_inflight_pushed(struct vd_inflight *t, const struct vd_vq_elem *e)
{
	struct vd_inflight_packed *p = t->pk;
	uint16_t h, link;

	if (!t->packed) {
		struct vd_inflight_split *s = t->split;

		s->desc[e->id].next = s->last_batch_head;
		STORE(s->last_batch_head, e->id);
		if (t->batch_n < t->num)
			t->batch[t->batch_n++] = e->id;
		return;
	}
	h = e->id < t->num ? t->id_head[e->id] : NO_ENTRY;
	if (h >= t->desc_num || t->batch_n >= t->num)
		return; /* not recorded at pop (logged there) */
	t->id_head[e->id] = NO_ENTRY;
	link = t->batch_n ? t->pending_head : t->free_head;
	t->next[t->last[h]] = link;
	STORE(p->desc[t->last[h]].next, link);
	if (!t->batch_n)
		t->pending_tail = t->last[h];
	t->pending_head = h;
	t->batch[t->batch_n++] = h;
	STORE(p->free_head, h);
	/* The used position moves before the flags store that publishes
	 * the batch, so a crash in between is rolled back at recovery. */
	t->used_pos = (uint16_t)(t->used_pos + e->ndescs);
	if (t->used_pos >= t->num) {
		t->used_pos = (uint16_t)(t->used_pos - t->num);
		t->used_wrap = !t->used_wrap;
	}
	STORE(p->used_wrap_counter, t->used_wrap);
	STORE(p->used_idx, t->used_pos);
}

/* The batch is visible to the driver: its entries are no longer in
 * flight. */
void vd_inflight_published(struct vd_inflight *t, uint16_t used_idx,
			   bool used_wrap)
{
	struct vd_inflight_packed *p = t->pk;

	if (!t->packed) {
		struct vd_inflight_split *s = t->split;

		for (unsigned k = 0; k < t->batch_n; k++)
			STORE(s->desc[t->batch[k]].inflight, 0);
		t->batch_n = 0;
		STORE(s->used_idx, used_idx);
		return;
	}
	for (unsigned k = 0; k < t->batch_n; k++)
		STORE(p->desc[t->batch[k]].inflight, 0);
	if (t->batch_n)
		t->free_head = t->pending_head;
	t->batch_n = 0;
	t->used_pos = used_idx;
	t->used_wrap = used_wrap;
	STORE(p->old_free_head, t->free_head);
	STORE(p->old_used_wrap_counter, used_wrap);
	STORE(p->old_used_idx, used_idx);
}

static void hook_pop(void *ctx, const struct vd_vq_elem *e)
{
	vd_inflight_popped(ctx, e);
}

static void hook_unpop(void *ctx, const struct vd_vq_elem *e)
{
	vd_inflight_unpopped(ctx, e);
}

static void hook_push(void *ctx, const struct vd_vq_elem *e)
{
	vd_inflight_pushed(ctx, e);
}

static void hook_publish(void *ctx, uint16_t used_idx, bool used_wrap)
{
	vd_inflight_published(ctx, used_idx, used_wrap);
}

void vd_inflight_set_hooks(struct vd_inflight *t, struct vd_vq_hooks *hooks)
{
	hooks->ctx = t;
	hooks->on_pop = hook_pop;
	hooks->on_unpop = hook_unpop;
	hooks->on_push = hook_push;
	hooks->on_publish = hook_publish;
}
