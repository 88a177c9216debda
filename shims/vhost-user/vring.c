/* SET_VRING_* / GET_VRING_BASE and each ring's queue thread ("Ring
 * states"). A ring runs only with every part inside one memory region; its
 * call and error fds are never closed while its thread may write them. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "connection.h"
#include "dirty_log.h"
#include "inflight.h"
#include "vring.h"

static bool ring_packed(const struct vu_backend *b)
{
	return b->features & (1ull << VIRTIO_F_RING_PACKED);
}

int vu_vrings_new(struct vu_backend *b)
{
	b->vrings = calloc(b->num_queues, sizeof(*b->vrings));
	if (!b->vrings)
		return -ENOMEM;
	for (unsigned i = 0; i < b->num_queues; i++) {
		struct vu_vring *vr = &b->vrings[i];

		vr->b = b;
		vr->index = i;
		snprintf(vr->who, sizeof(vr->who), "%s q%u", b->who, i);
		vr->kick_fd = -1;
		atomic_init(&vr->call_fd, -1);
		atomic_init(&vr->err_fd, -1);
		atomic_init(&vr->log_seq, 0);
		vr->rl = (struct vd_ratelimit)VD_RATELIMIT_INIT;
		vr->inflight.rl = (struct vd_ratelimit)VD_RATELIMIT_INIT;
	}
	return 0;
}

static void close_atomic_fd(atomic_int *slot)
{
	int fd = atomic_exchange(slot, -1);

	if (fd >= 0)
		close(fd);
}

void vu_vrings_free(struct vu_backend *b)
{
	if (!b->vrings)
		return;
	for (unsigned i = 0; i < b->num_queues; i++) {
		struct vu_vring *vr = &b->vrings[i];

		vu_close_fd(&vr->kick_fd);
		close_atomic_fd(&vr->call_fd);
		close_atomic_fd(&vr->err_fd);
		vu_inflight_release(vr);
	}
	free(b->vrings);
	b->vrings = NULL;
}

/* "If VHOST_USER_F_PROTOCOL_FEATURES has not been negotiated, the ring
 * starts directly in the enabled state." */
bool vu_ring_enabled(const struct vu_backend *b, const struct vu_vring *vr)
{
	if (!(b->features & (1ull << VU_F_PROTOCOL_FEATURES)))
		return true;
	return vr->enable;
}

/* ------------------------------------------------------------ queue side */

void vu_notify_queue(void *shim, struct vd_queue *q)
{
	struct vu_backend *b = shim;
	struct vu_vring *vr = &b->vrings[vd_queue_index(q)];
	int fd = atomic_load_explicit(&vr->call_fd, memory_order_relaxed);
	uint64_t one = 1;

	/* EAGAIN: the counter is saturated, the frontend is notified anyway. */
	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		vd_log_ratelimited(&vr->rl, VD_LOG_WARN, vr->who, "call fd: %s",
				   strerror(errno));
}

/* The core marked the device NEEDS_RESET; tell the frontend on the ring's
 * error fd (SET_VRING_ERR) too. */
static void ring_broken(void *ctx, struct vd_vq *vq, enum vd_vq_error err,
			const char *reason)
{
	struct vu_vring *vr = ctx;
	int fd = atomic_load_explicit(&vr->err_fd, memory_order_relaxed);
	uint64_t one = 1;

	(void)vq;
	(void)err;
	(void)reason;
	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		vd_log_ratelimited(&vr->rl, VD_LOG_WARN, vr->who, "err fd: %s",
				   strerror(errno));
}

/* --------------------------------------------------------- start and stop */

struct ring_map {
	void *p[3];
	uint64_t gpa[3];
	size_t len[3];
};

/* SET_VRING_ADDR holds frontend virtual addresses ("Memory access": user
 * addresses map through the region holding them); each ring must sit
 * whole inside one region and be aligned as virtio 1.2 §2.7/§2.8 say. */
static int ring_map(struct vu_backend *b, const struct vu_vring *vr,
		    bool packed, struct ring_map *rm, char *why, size_t whylen)
{
	static const char *const names[2][3] = {
		{"descriptor table", "available ring", "used ring"},
		{"descriptor ring", "driver event area", "device event area"},
	};
	static const unsigned align[2][3] = {{16, 2, 4}, {16, 4, 4}};
	const uint64_t uaddr[3] = {vr->addr.desc_user_addr,
				   vr->addr.avail_user_addr,
				   vr->addr.used_user_addr};

	vd_vq_ring_sizes(packed ? VD_VQ_PACKED : VD_VQ_SPLIT, vr->num,
			 &rm->len[0], &rm->len[1], &rm->len[2]);
	for (int i = 0; i < 3; i++) {
		rm->p[i] = vd_mem_uaddr_to_hva(b->mem, uaddr[i], rm->len[i],
					       &rm->gpa[i]);
		if (!rm->p[i]) {
			snprintf(why, whylen,
				 "%s at user address 0x%" PRIx64 " (+0x%zx) is "
				 "not inside one memory region",
				 names[packed][i], uaddr[i], rm->len[i]);
			return -EFAULT;
		}
		if ((uintptr_t)rm->p[i] & (align[packed][i] - 1)) {
			snprintf(why, whylen,
				 "%s at user address 0x%" PRIx64
				 " is not %u-byte aligned",
				 names[packed][i], uaddr[i], align[packed][i]);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_num(const struct vu_backend *b, uint16_t num, bool packed,
		     char *why, size_t whylen)
{
	if (num == 0 || num > b->max_queue_size) {
		snprintf(why, whylen, "ring size %u outside 1..%u", num,
			 b->max_queue_size);
		return -EINVAL;
	}
	/* virtio 1.2 §2.7: split queue sizes are powers of two; packed
	 * (§2.8) may be any size. */
	if (!packed && (num & (num - 1))) {
		snprintf(why, whylen, "ring size %u is not a power of two",
			 num);
		return -EINVAL;
	}
	return 0;
}

int vu_ring_try_start(struct vu_backend *b, struct vu_vring *vr, char *why,
		      size_t whylen)
{
	struct vd_queue *q = vd_dev_queue(b->dev, vr->index);
	bool packed = ring_packed(b);
	struct vd_queue_setup setup = {.kick_fd = vr->kick_fd};
	struct vd_vq_config *cfg = &setup.vq;
	struct ring_map rm;
	int rc, n_requeue;

	if (!vr->started || !vu_ring_enabled(b, vr) || vr->running)
		return 0;
	rc = check_num(b, vr->num, packed, why, whylen);
	if (rc)
		return rc;
	if (!vr->addr_set) {
		snprintf(why, whylen, "ring addresses not set");
		return -EINVAL;
	}
	rc = ring_map(b, vr, packed, &rm, why, whylen);
	if (rc)
		return rc;
	if (packed && (vr->base_avail >= vr->num || vr->base_used >= vr->num)) {
		snprintf(why, whylen, "ring base %u/%u outside a ring of %u",
			 vr->base_avail, vr->base_used, vr->num);
		return -EINVAL;
	}
	cfg->layout = packed ? VD_VQ_PACKED : VD_VQ_SPLIT;
	cfg->num = vr->num;
	cfg->event_idx = b->features & (1ull << VIRTIO_RING_F_EVENT_IDX);
	cfg->indirect = b->features & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
	cfg->desc = rm.p[0];
	cfg->driver = rm.p[1];
	cfg->device = rm.p[2];
	/* "Migration": used-ring writes are logged at log_guest_addr when
	 * VHOST_VRING_F_LOG is set; otherwise where the ring really is. */
	cfg->device_gpa = (vr->addr.flags & (1u << VHOST_VRING_F_LOG))
				  ? vr->addr.log_guest_addr
				  : rm.gpa[2];
	cfg->desc_gpa = rm.gpa[0];
	cfg->avail_idx = vr->base_avail;
	cfg->avail_wrap = vr->base_avail_wrap;
	cfg->used_idx = vr->base_used;
	cfg->used_wrap = vr->base_used_wrap;
	cfg->used_idx_valid = vr->base_used_known;

	n_requeue = vu_inflight_prepare(b, vr, cfg, why, whylen);
	if (n_requeue < 0)
		return n_requeue;
	setup.requeue = vr->requeue;
	setup.n_requeue = (unsigned)n_requeue;
	setup.hooks = (struct vd_vq_hooks){
		.ctx = vr,
		.on_broken = ring_broken,
		.log_write = vu_log_write,
	};
	if (vr->inflight.on) {
		setup.hooks.on_pop = vu_inflight_on_pop;
		setup.hooks.on_unpop = vu_inflight_on_unpop;
		setup.hooks.on_push = vu_inflight_on_push;
		setup.hooks.on_publish = vu_inflight_on_publish;
	}
	vd_queue_set_logging(q, vu_log_active(b));
	rc = vd_queue_start(q, &setup);
	free(vr->requeue);
	vr->requeue = NULL;
	if (rc < 0) {
		vu_inflight_release(vr);
		snprintf(why, whylen, "queue %u cannot start: %s", vr->index,
			 strerror(-rc));
		return rc;
	}
	vr->running = true;
	for (int i = 0; i < 3; i++) {
		vr->ring_hva[i] = rm.p[i];
		vr->ring_len[i] = rm.len[i];
	}
	vd_debug(vr->who, "started: %s, size %u, avail %u used %u%s%s",
		 packed ? "packed" : "split", vr->num, cfg->avail_idx,
		 cfg->used_idx, vr->inflight.on ? ", inflight tracked" : "",
		 n_requeue ? ", requeued" : "");
	return 0;
}

void vu_ring_stop(struct vu_backend *b, struct vu_vring *vr)
{
	struct vd_queue *q = vd_dev_queue(b->dev, vr->index);

	if (!vr->running)
		return;
	/* Drains the model's in-flight requests first. */
	vd_queue_stop(q, &vr->base_avail, &vr->base_avail_wrap, &vr->base_used,
		      &vr->base_used_wrap);
	vr->base_used_known = true;
	vr->running = false;
	vu_inflight_release(vr);
	vd_debug(vr->who, "stopped at avail %u used %u", vr->base_avail,
		 vr->base_used);
}

void vu_rings_stop_all(struct vu_backend *b, bool forget)
{
	for (unsigned i = 0; i < b->num_queues; i++) {
		struct vu_vring *vr = &b->vrings[i];

		vu_ring_stop(b, vr);
		vr->started = false;
		if (!forget)
			continue;
		vu_close_fd(&vr->kick_fd);
		close_atomic_fd(&vr->call_fd);
		close_atomic_fd(&vr->err_fd);
		vr->num = 0;
		vr->addr_set = false;
		memset(&vr->addr, 0, sizeof(vr->addr));
		vr->base_avail = vr->base_used = 0;
		vr->base_avail_wrap = vr->base_used_wrap = false;
		vr->base_used_known = false;
		vr->enable = false;
	}
}

static bool ring_in(const struct vu_vring *vr, const void *hva, size_t len)
{
	const char *lo = hva, *hi;

	if (!len)
		return true; /* every ring (hva is NULL then) */
	hi = lo + len;
	for (int i = 0; i < 3; i++) {
		const char *p = vr->ring_hva[i];

		if (p < hi && lo < p + vr->ring_len[i])
			return true;
	}
	return false;
}

void vu_rings_suspend(struct vu_backend *b, const void *hva, size_t len)
{
	for (unsigned i = 0; i < b->num_queues; i++)
		if (b->vrings[i].running && ring_in(&b->vrings[i], hva, len))
			vu_ring_stop(b, &b->vrings[i]);
}

void vu_rings_resume(struct vu_backend *b)
{
	char why[200];

	for (unsigned i = 0; i < b->num_queues; i++) {
		struct vu_vring *vr = &b->vrings[i];

		if (vu_ring_try_start(b, vr, why, sizeof(why)) < 0)
			vd_warn(vr->who,
				"not restarted after a memory change: %s", why);
	}
}

void vu_rings_update_logging(struct vu_backend *b)
{
	bool on = vu_log_active(b);

	for (unsigned i = 0; i < b->num_queues; i++)
		vd_queue_set_logging(vd_dev_queue(b->dev, i), on);
}

/* ---------------------------------------------------------------- requests */

static struct vu_vring *vring_of(struct vu_backend *b, uint32_t index)
{
	return &b->vrings[index]; /* index checked by the validator */
}

int vu_set_vring_num(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		     char *why, size_t whylen)
{
	struct vu_vring *vr = vring_of(b, m->p.state.index);
	uint32_t num = m->p.state.num;
	int rc;

	(void)r;
	/* The ring is stopped (the table's rule). */
	if (num > UINT16_MAX) {
		snprintf(why, whylen, "ring size %u outside 1..%u", num,
			 b->max_queue_size);
		return -EINVAL;
	}
	rc = check_num(b, (uint16_t)num, ring_packed(b), why, whylen);
	if (rc)
		return rc;
	vr->num = (uint16_t)num;
	return 0;
}

int vu_set_vring_addr(struct vu_backend *b, struct vu_msg *m,
		      struct vu_reply *r, char *why, size_t whylen)
{
	struct vu_vring *vr = vring_of(b, m->p.addr.index);
	struct vhost_vring_addr old = vr->addr;
	bool was_set = vr->addr_set, was_running = vr->running;
	struct ring_map rm;
	int rc;

	(void)r;
	/* QEMU resends the addresses of a running ring to switch
	 * VHOST_VRING_F_LOG at migration: restart it on the new ones. */
	vu_ring_stop(b, vr);
	vr->addr = m->p.addr;
	vr->addr_set = true;
	/* Checked now when they can be; QEMU always sends the memory table
	 * and the size first. */
	if (vr->num && b->n_regions) {
		rc = ring_map(b, vr, ring_packed(b), &rm, why, whylen);
		if (rc) {
			char again[200];

			vr->addr = old;
			vr->addr_set = was_set;
			if (was_running &&
			    vu_ring_try_start(b, vr, again, sizeof(again)) < 0)
				vd_warn(vr->who, "not restarted: %s", again);
			return rc;
		}
	}
	return vu_ring_try_start(b, vr, why, whylen);
}

int vu_set_vring_base(struct vu_backend *b, struct vu_msg *m,
		      struct vu_reply *r, char *why, size_t whylen)
{
	struct vu_vring *vr = vring_of(b, m->p.state.index);
	uint32_t num = m->p.state.num;

	(void)r;
	/* The ring is stopped (the table's rule). */
	if (ring_packed(b)) {
		/* As Linux vhost: bits 0-14 the avail position, 15 its wrap
		 * counter; the upper half the same for the used position,
		 * or 0 from frontends that send only the first. */
		uint16_t used = (uint16_t)(num >> 16);

		if (!used)
			used = (uint16_t)num;
		vr->base_avail = num & 0x7fff;
		vr->base_avail_wrap = num & 0x8000;
		vr->base_used = used & 0x7fff;
		vr->base_used_wrap = used & 0x8000;
		vr->base_used_known = true;
	} else {
		if (num > UINT16_MAX) {
			snprintf(why, whylen, "split ring base %u over 16 bits",
				 num);
			return -EINVAL;
		}
		vr->base_avail = (uint16_t)num;
		vr->base_avail_wrap = false;
		vr->base_used_known = false; /* the used ring has it */
	}
	return 0;
}

int vu_get_vring_base(struct vu_backend *b, struct vu_msg *m,
		      struct vu_reply *r, char *why, size_t whylen)
{
	struct vu_vring *vr = vring_of(b, m->p.state.index);
	uint32_t num;

	(void)why;
	(void)whylen;
	/* "stop ring upon receiving VHOST_USER_GET_VRING_BASE" */
	vu_ring_stop(b, vr);
	if (ring_packed(b))
		num = (uint32_t)(vr->base_avail | (vr->base_avail_wrap << 15)) |
		      (uint32_t)(vr->base_used | (vr->base_used_wrap << 15))
			      << 16;
	else
		num = vr->base_avail;
	vr->started = false;
	vu_close_fd(&vr->kick_fd);
	close_atomic_fd(&vr->call_fd);
	r->hdr.size = sizeof(r->p.state);
	r->p.state.index = vr->index;
	r->p.state.num = num;
	return 0;
}

int vu_set_vring_kick(struct vu_backend *b, struct vu_msg *m,
		      struct vu_reply *r, char *why, size_t whylen)
{
	struct vu_vring *vr = vring_of(b, m->p.u64 & VU_VRING_IDX_MASK);
	int fd, rc;

	(void)r;
	if (!m->n_fds) {
		snprintf(why, whylen,
			 "polling (no kick fd) is not supported by this "
			 "backend");
		return -EINVAL;
	}
	fd = m->fds[0];
	m->fds[0] = -1;
	if (vr->running) {
		/* Returns once the thread watches the new fd. */
		rc = vd_queue_set_kick_fd(vd_dev_queue(b->dev, vr->index), fd);
		if (rc < 0) {
			close(fd);
			snprintf(why, whylen, "kick fd refused: %s",
				 strerror(-rc));
			return rc;
		}
		vu_close_fd(&vr->kick_fd);
		vr->kick_fd = fd;
		return 0;
	}
	vu_close_fd(&vr->kick_fd);
	vr->kick_fd = fd;
	/* "The back-end must start ring upon receiving a kick" */
	vr->started = true;
	return vu_ring_try_start(b, vr, why, whylen);
}

/* Replace a call/err fd. While the ring runs its thread may be writing the
 * old one: dup3 onto the same number swaps the file underneath, so that
 * write lands on the old or the new eventfd, never on a recycled fd. */
static int replace_event_fd(atomic_int *slot, int fd, bool running, char *why,
			    size_t whylen)
{
	int cur = atomic_load(slot);

	if (!running || cur < 0) {
		if (cur >= 0)
			close(cur);
		atomic_store(slot, fd);
		return 0;
	}
	if (fd < 0) {
		/* No fd any more: a private eventfd nobody reads. */
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0) {
			snprintf(why, whylen, "eventfd: %s", strerror(errno));
			return -errno;
		}
	}
	if (dup3(fd, cur, O_CLOEXEC) < 0) {
		snprintf(why, whylen, "dup3: %s", strerror(errno));
		close(fd);
		return -EINVAL;
	}
	close(fd);
	return 0;
}

static int set_event_fd(struct vu_backend *b, struct vu_msg *m, bool err,
			char *why, size_t whylen)
{
	struct vu_vring *vr = vring_of(b, m->p.u64 & VU_VRING_IDX_MASK);
	int fd = -1;

	if (m->n_fds) {
		int fl = fcntl(m->fds[0], F_GETFL);

		/* Written from the queue thread, which must never block on
		 * it: a frontend can fill the counter itself (EAGAIN then
		 * means saturated, and the frontend sees that anyway). The
		 * flag is the frontend's file's too; QEMU sets it itself. */
		if (fl < 0 ||
		    (!(fl & O_NONBLOCK) &&
		     fcntl(m->fds[0], F_SETFL, fl | O_NONBLOCK) < 0)) {
			snprintf(why, whylen, "%s fd: O_NONBLOCK: %s",
				 err ? "err" : "call", strerror(errno));
			return -EINVAL;
		}
		fd = m->fds[0];
		m->fds[0] = -1;
	}
	return replace_event_fd(err ? &vr->err_fd : &vr->call_fd, fd,
				vr->running, why, whylen);
}

int vu_set_vring_call(struct vu_backend *b, struct vu_msg *m,
		      struct vu_reply *r, char *why, size_t whylen)
{
	(void)r;
	return set_event_fd(b, m, false, why, whylen);
}

int vu_set_vring_err(struct vu_backend *b, struct vu_msg *m, struct vu_reply *r,
		     char *why, size_t whylen)
{
	(void)r;
	return set_event_fd(b, m, true, why, whylen);
}

int vu_set_vring_enable(struct vu_backend *b, struct vu_msg *m,
			struct vu_reply *r, char *why, size_t whylen)
{
	struct vu_vring *vr = vring_of(b, m->p.state.index);

	(void)r;
	if (m->p.state.num > 1) {
		snprintf(why, whylen, "enable value %u, expected 0 or 1",
			 m->p.state.num);
		return -EINVAL;
	}
	vr->enable = m->p.state.num;
	if (!vr->enable) {
		/* A disabled ring keeps its place; enabling resumes there. */
		vu_ring_stop(b, vr);
		return 0;
	}
	return vu_ring_try_start(b, vr, why, whylen);
}
