/* The restart record: a file under /run/virtiod, mapped shared for the life
 * of the server, naming the IOREQ server and holding the device's registers
 * and each queue's in-flight chains, so a successor can take the device
 * over after a crash. Queue threads only store to their own queue's area;
 * no system call is made on the data path. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"

#define MAGIC	"VDXENST1"
#define VERSION 1u

struct file_hdr {
	char magic[8];
	uint32_t version;
	int32_t server_id;
	uint8_t dom_handle[16];
	uint32_t have_device; /* the registers below are meaningful */
	uint32_t clean; /* a handover drained every queue: positions exact */
	uint32_t nq, qmax;
	struct vd_mmio_state st;
};

struct slot {
	uint32_t seq;	   /* pop order, 0: not in flight */
	uint16_t push_pos; /* split: used ring position it was pushed at */
	uint8_t pushed;
	uint8_t pad;
};

/* Written by the queue's thread only. */
struct qarea {
	struct vd_mmio_queue_state qs; /* registers, and positions at start */
	uint32_t packed;
	uint32_t pop_seq;
	uint16_t last_avail; /* next avail entry (split) / position (packed) */
	uint16_t published;  /* used idx at the last publish */
	uint8_t avail_wrap, used_wrap;
	uint16_t n_pending; /* pushed since the last publish */
	uint32_t inflight;
	struct slot slot[]; /* qmax entries */
};

struct vd_xen_state {
	char path[512];
	int fd;
	uint8_t *map;
	size_t len;
	unsigned nq, qmax;
	struct vd_xen_qtrack *tr; /* nq */
};

/* Per queue, private to its thread: what to clear at publish. */
struct vd_xen_qtrack {
	struct vd_xen_state *st;
	unsigned idx;
	unsigned requeue_left; /* requeued pops come first and do not move
				  last_avail */
	uint16_t *pending;     /* ids pushed since the last publish */
};

static size_t area_size(unsigned qmax)
{
	size_t s = sizeof(struct qarea) + (size_t)qmax * sizeof(struct slot);

	return (s + 7) & ~(size_t)7;
}

static size_t file_size(unsigned nq, unsigned qmax)
{
	return sizeof(struct file_hdr) + (size_t)nq * area_size(qmax);
}

static struct qarea *area(uint8_t *map, unsigned qmax, unsigned i)
{
	return (struct qarea *)(map + sizeof(struct file_hdr) +
				(size_t)i * area_size(qmax));
}

void vd_xen_state_path(char *buf, size_t len, const char *dir, uint32_t domid,
		       uint64_t base)
{
	snprintf(buf, len, "%s/xen-%u-%" PRIx64 ".state",
		 dir ? dir : VD_XEN_STATE_DIR, domid, base);
}

int vd_xen_prev_load(const char *path, struct vd_xen_prev *p)
{
	struct file_hdr *h;
	struct stat sb;
	int fd;

	memset(p, 0, sizeof(*p));
	p->server_id = -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0 || (size_t)sb.st_size < sizeof(*h) ||
	    sb.st_size > (64 << 20)) {
		close(fd);
		return -EINVAL;
	}
	p->len = (size_t)sb.st_size;
	p->data = malloc(p->len);
	if (!p->data || pread(fd, p->data, p->len, 0) != (ssize_t)p->len) {
		close(fd);
		vd_xen_prev_free(p);
		return -EINVAL;
	}
	close(fd);
	h = (struct file_hdr *)p->data;
	/* Our own file, but check it as if it were not: a torn or foreign
	 * file must not steer the restart. */
	if (memcmp(h->magic, MAGIC, 8) || h->version != VERSION ||
	    h->nq > 4096 || h->qmax > VD_VQ_MAX_SIZE ||
	    file_size(h->nq, h->qmax) != p->len || h->server_id < -1 ||
	    h->server_id > 0xffff) {
		vd_xen_prev_free(p);
		return -EINVAL;
	}
	p->server_id = h->server_id;
	memcpy(p->dom_handle, h->dom_handle, 16);
	p->have_device = h->have_device;
	p->clean = h->clean;
	p->nq = h->nq;
	p->qmax = h->qmax;
	p->st = h->st;
	return 0;
}

void vd_xen_prev_free(struct vd_xen_prev *p)
{
	free(p->data);
	p->data = NULL;
	p->server_id = -1;
}

void vd_xen_prev_queue(const struct vd_xen_prev *p, unsigned i,
		       struct vd_mmio_queue_state *qs)
{
	const struct qarea *a = area(p->data, p->qmax, i);

	*qs = a->qs;
	if (p->clean)
		return;
	/* After a crash: restart where the predecessor had got to; the
	 * used index is re-read from the ring. */
	qs->avail_idx = a->last_avail;
	qs->avail_wrap = a->avail_wrap;
	qs->used_idx = a->published;
	qs->used_wrap = a->used_wrap;
	qs->used_idx_valid = a->packed ? 1 : 0;
}

int vd_xen_prev_requeue(const struct vd_xen_prev *p, unsigned i,
			uint16_t ring_used, uint16_t *heads, unsigned *n)
{
	const struct qarea *a = area(p->data, p->qmax, i);
	unsigned num = a->qs.num, cnt = 0;
	uint16_t published_since = (uint16_t)(ring_used - a->published);

	*n = 0;
	if (p->clean || !a->qs.ready)
		return 0;
	if (num > p->qmax)
		return -EINVAL;
	for (unsigned id = 0; id < num; id++) {
		const struct slot *s = &a->slot[id];

		if (!s->seq)
			continue;
		/* Pushed, and the used index already covers it: the driver
		 * has seen it (the crash hit between store and hook). */
		if (s->pushed &&
		    (uint16_t)(s->push_pos - a->published) < published_since)
			continue;
		if (a->packed)
			return -EOPNOTSUPP; /* positions, not heads */
		heads[cnt++] = (uint16_t)id;
	}
	/* Submission order: by pop sequence (insertion sort, bounded). */
	for (unsigned k = 1; k < cnt; k++) {
		uint16_t h = heads[k];
		unsigned j = k;

		while (j > 0 && a->slot[heads[j - 1]].seq > a->slot[h].seq) {
			heads[j] = heads[j - 1];
			j--;
		}
		heads[j] = h;
	}
	*n = cnt;
	return 0;
}

int vd_xen_state_create(const char *path, unsigned nq, unsigned qmax,
			struct vd_xen_state **out)
{
	struct vd_xen_state *s = calloc(1, sizeof(*s));
	struct file_hdr *h;
	char tmp[600];
	int rc;

	if (!s)
		return -ENOMEM;
	s->nq = nq;
	s->qmax = qmax;
	s->len = file_size(nq, qmax);
	s->tr = calloc(nq ? nq : 1, sizeof(*s->tr));
	if (!s->tr) {
		free(s);
		return -ENOMEM;
	}
	snprintf(s->path, sizeof(s->path), "%s", path);
	/* Written beside and renamed over: the predecessor's file stays
	 * whole until ours is. */
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	s->fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (s->fd < 0) {
		rc = -errno;
		goto fail;
	}
	if (ftruncate(s->fd, (off_t)s->len) < 0) {
		rc = -errno;
		goto fail;
	}
	s->map = mmap(NULL, s->len, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd,
		      0);
	if (s->map == MAP_FAILED) {
		rc = -errno;
		s->map = NULL;
		goto fail;
	}
	h = (struct file_hdr *)s->map;
	memcpy(h->magic, MAGIC, 8);
	h->version = VERSION;
	h->server_id = -1;
	h->nq = nq;
	h->qmax = qmax;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto fail;
	}
	for (unsigned i = 0; i < nq; i++) {
		s->tr[i].st = s;
		s->tr[i].idx = i;
		s->tr[i].pending = calloc(qmax ? qmax : 1, sizeof(uint16_t));
		if (!s->tr[i].pending) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	*out = s;
	return 0;
fail:
	unlink(tmp);
	vd_xen_state_close(s, false);
	return rc;
}

void vd_xen_state_close(struct vd_xen_state *s, bool remove)
{
	if (!s)
		return;
	if (s->map)
		munmap(s->map, s->len);
	if (s->fd >= 0)
		close(s->fd);
	if (remove && s->path[0])
		unlink(s->path);
	for (unsigned i = 0; i < s->nq; i++)
		free(s->tr[i].pending);
	free(s->tr);
	free(s);
}

void vd_xen_state_set_server(struct vd_xen_state *s, int id,
			     const uint8_t handle[16])
{
	struct file_hdr *h = (struct file_hdr *)s->map;

	h->server_id = id;
	memcpy(h->dom_handle, handle, 16);
}

void vd_xen_state_set_device(struct vd_xen_state *s,
			     const struct vd_mmio_state *st,
			     const struct vd_mmio_queue_state *qs, bool clean)
{
	struct file_hdr *h = (struct file_hdr *)s->map;

	h->st = *st;
	for (unsigned i = 0; i < s->nq; i++) {
		struct qarea *a = area(s->map, s->qmax, i);
		uint16_t avail = a->qs.avail_idx, used = a->qs.used_idx;
		uint8_t aw = a->qs.avail_wrap, uw = a->qs.used_wrap;

		a->qs = qs[i];
		if (!clean) {
			/* Keep the start position of a running queue. */
			a->qs.avail_idx = avail;
			a->qs.used_idx = used;
			a->qs.avail_wrap = aw;
			a->qs.used_wrap = uw;
		}
	}
	h->clean = clean;
	h->have_device = 1;
}

static void on_pop(void *ctx, const struct vd_vq_elem *e)
{
	struct vd_xen_qtrack *t = ctx;
	struct qarea *a = area(t->st->map, t->st->qmax, t->idx);

	if (e->id >= t->st->qmax)
		return;
	a->slot[e->id].seq = ++a->pop_seq ? a->pop_seq : ++a->pop_seq;
	a->slot[e->id].pushed = 0;
	a->inflight++;
	if (t->requeue_left) {
		t->requeue_left--;
		return;
	}
	if (a->packed) {
		uint16_t next = (uint16_t)(a->last_avail + e->ndescs);

		if (next >= a->qs.num) {
			next = (uint16_t)(next - a->qs.num);
			a->avail_wrap ^= 1;
		}
		a->last_avail = next;
	} else {
		a->last_avail++;
	}
}

static void on_push(void *ctx, const struct vd_vq_elem *e)
{
	struct vd_xen_qtrack *t = ctx;
	struct qarea *a = area(t->st->map, t->st->qmax, t->idx);

	if (e->id >= t->st->qmax || t->st->qmax == 0 ||
	    a->n_pending >= t->st->qmax)
		return;
	a->slot[e->id].push_pos = (uint16_t)(a->published + a->n_pending);
	a->slot[e->id].pushed = 1;
	t->pending[a->n_pending++] = e->id;
}

static void on_publish(void *ctx, uint16_t used_idx, bool used_wrap)
{
	struct vd_xen_qtrack *t = ctx;
	struct qarea *a = area(t->st->map, t->st->qmax, t->idx);

	for (unsigned k = 0; k < a->n_pending; k++) {
		a->slot[t->pending[k]].seq = 0;
		a->inflight--;
	}
	a->n_pending = 0;
	a->published = used_idx;
	a->used_wrap = used_wrap;
}

void vd_xen_state_queue_start(struct vd_xen_state *s, unsigned i,
			      const struct vd_vq_config *vq, unsigned n_requeue,
			      struct vd_vq_hooks *hooks)
{
	struct qarea *a = area(s->map, s->qmax, i);
	struct vd_xen_qtrack *t = &s->tr[i];

	memset(a->slot, 0, (size_t)s->qmax * sizeof(struct slot));
	a->packed = vq->layout == VD_VQ_PACKED;
	a->inflight = 0;
	a->n_pending = 0;
	a->last_avail = vq->avail_idx;
	a->avail_wrap = vq->avail_wrap;
	a->published = vq->used_idx;
	a->used_wrap = vq->used_wrap;
	a->qs.avail_idx = vq->avail_idx;
	a->qs.avail_wrap = vq->avail_wrap;
	a->qs.used_idx = vq->used_idx;
	a->qs.used_wrap = vq->used_wrap;
	t->requeue_left = n_requeue;
	hooks->ctx = t;
	hooks->on_pop = on_pop;
	hooks->on_push = on_push;
	hooks->on_publish = on_publish;
}
