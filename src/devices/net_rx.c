/* virtio-net receive (§5.1.6.3, §5.1.6.4): the tap reads straight into
 * the guest's buffers, the vnet header in place. Buffers for the largest
 * frame the tap may give are popped first, as many as the driver posted;
 * those the frame did not fill go back to the ring (vd_vq_unpop). A frame
 * larger than the buffers posted runs on into a device-side overflow and
 * waits there, whole, until the driver posts enough (then it is copied:
 * the one copy, for a driver short of buffers). With no buffer the tap is
 * left unread, its own queue holding the packets, until the driver posts
 * more: nothing is dropped for want of a buffer. A packet is dropped (and
 * counted) only when it is larger than every buffer the ring can hold, or
 * not for us. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "net.h"

bool net_filter_accepts(struct net_filter *f, const uint8_t dst[6])
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	unsigned seq;
	bool ok;

	do {
		seq = atomic_load_explicit(&f->seq, memory_order_acquire);
		if (seq & 1)
			continue;
		if (f->promisc) {
			ok = true;
		} else if (memcmp(dst, bcast, 6) == 0) {
			ok = !f->nobcast;
		} else if (dst[0] & 1) {
			ok = !f->nomulti && f->allmulti;
			for (unsigned i = 0;
			     !ok && !f->nomulti && i < f->n_multi &&
			     i < NET_MAC_TABLE_MAX;
			     i++)
				ok = memcmp(dst, f->multi[i], 6) == 0;
		} else {
			ok = !f->nouni &&
			     (f->alluni || memcmp(dst, f->mac, 6) == 0);
			for (unsigned i = 0; !ok && !f->nouni && i < f->n_uni &&
					     i < NET_MAC_TABLE_MAX;
			     i++)
				ok = memcmp(dst, f->uni[i], 6) == 0;
		}
		atomic_thread_fence(memory_order_acquire);
	} while ((seq & 1) ||
		 seq != atomic_load_explicit(&f->seq, memory_order_relaxed));
	return ok;
}

/* ------------------------------------------------------------ window */

/* Gives the window's buffers back to the ring, latest first. */
static void window_return(struct net_rxq *rq)
{
	while (rq->win_n) {
		struct vd_vq_elem *e = rq->win[--rq->win_n];

		if (vd_vq_unpop(rq->vq, e) < 0) {
			/* Cannot happen: the window is the latest pops. */
			vd_log_ratelimited(&rq->rl, VD_LOG_ERR, rq->who,
					   "buffer %u not given back", e->id);
			vd_vq_push(rq->vq, e, 0);
		}
	}
	rq->win_bytes = 0;
}

/* A buffer the device cannot use (§5.1.6.3.1: device-writable, room for
 * the header): returned empty, the driver drops it. */
static const char *bad_buffer(const struct net_rxq *rq,
			      const struct vd_vq_elem *e)
{
	if (e->n_read)
		return "receive buffer with device-readable descriptors";
	if (e->write_len < rq->hdr_len)
		return "receive buffer too small for the vnet header";
	return NULL;
}

static unsigned window_iovs(const struct net_rxq *rq)
{
	unsigned n = 0;

	for (unsigned i = 0; i < rq->win_n; i++)
		n += rq->win[i]->n_write;
	return n;
}

/* Pops buffers until they hold the largest frame (mergeable; a held
 * frame: its length) or one buffer (otherwise). Returns true if the window
 * may take a frame now; false: wait for buffers. */
static bool window_fill(struct net_rxq *rq)
{
	size_t want = rq->pending     ? rq->pending
		      : rq->mergeable ? rq->frame_max
				      : 1;
	unsigned max = rq->mergeable ? rq->win_max : 1;

	while (rq->win_bytes < want && rq->win_n < max) {
		struct vd_vq_elem *e;
		const char *why;

		if (vd_vq_pop(rq->vq, &e) <= 0)
			break;
		why = bad_buffer(rq, e);
		if (why) {
			if (rq->win_n) {
				/* Return it after the window's frame, so the
				 * window stays the latest pops. */
				vd_vq_unpop(rq->vq, e);
				return true;
			}
			vd_log_ratelimited(&rq->rl, VD_LOG_WARN, rq->who,
					   "%s (buffer %u, %llu bytes); "
					   "returned unused",
					   why, e->id,
					   (unsigned long long)e->write_len);
			rq->st.dropped++;
			vd_vq_push(rq->vq, e, 0);
			continue;
		}
		if (window_iovs(rq) + e->n_write > VD_VQ_MAX_IOV) {
			vd_vq_unpop(rq->vq, e);
			return true;
		}
		rq->win[rq->win_n++] = e;
		rq->win_bytes += e->write_len;
	}
	if (!rq->win_n)
		return false;
	/* Fewer buffers than the largest frame: a frame that fits goes
	 * straight in, a larger one into the overflow. */
	if (rq->win_bytes >= want || !rq->pending)
		return true;
	/* A held frame waits for room, unless the ring can give no more. */
	return rq->win_n >= max || vd_vq_inflight(rq->vq) >= vd_vq_size(rq->vq);
}

/* The window's buffers as one iovec array in rq->iov; their count. */
static unsigned window_iov(struct net_rxq *rq)
{
	unsigned n = 0;

	for (unsigned i = 0; i < rq->win_n; i++) {
		memcpy(rq->iov + n, rq->win[i]->write_iov,
		       rq->win[i]->n_write * sizeof(struct iovec));
		n += rq->win[i]->n_write;
	}
	return n;
}

static void drop_too_large(struct net_rxq *rq, size_t len)
{
	rq->st.truncated++;
	vd_log_ratelimited(&rq->rl, VD_LOG_WARN, rq->who,
			   "frame of %zu bytes larger than the %zu bytes of "
			   "buffers the driver posts; dropped",
			   len, rq->win_bytes);
}

/* ------------------------------------------------------------ frames */

/* The frame is in the window's first buffers: complete them. */
static void deliver(struct net_rxq *rq, size_t len)
{
	unsigned k = 0;
	size_t left = len;
	uint16_t nbuf;

	while (left && k < rq->win_n) {
		left -= left < rq->win[k]->write_len ? left
						     : rq->win[k]->write_len;
		k++;
	}
	if (rq->mergeable || rq->hdr_len == NET_HDR_LEN) {
		/* §5.1.6.4: num_buffers, 1 without MRG_RXBUF. */
		nbuf = htole16((uint16_t)k);
		vd_iov_from_buf(
			rq->win[0]->write_iov, rq->win[0]->n_write,
			offsetof(struct virtio_net_hdr_mrg_rxbuf, num_buffers),
			&nbuf, sizeof(nbuf));
	}
	if (!rq->guest_csum) {
		/* §5.1.6.4.1: flags 0 without GUEST_CSUM (the tap may mark
		 * DATA_VALID). */
		uint8_t zero = 0;

		vd_iov_from_buf(rq->win[0]->write_iov, rq->win[0]->n_write, 0,
				&zero, 1);
	}
	left = len;
	for (unsigned i = 0; i < k; i++) {
		size_t n = left < rq->win[i]->write_len ? left
							: rq->win[i]->write_len;

		vd_vq_push(rq->vq, rq->win[i], (uint32_t)n);
		left -= n;
	}
	memmove(rq->win, rq->win + k, (rq->win_n - k) * sizeof(*rq->win));
	rq->win_n -= k;
	rq->win_bytes = 0;
	for (unsigned i = 0; i < rq->win_n; i++)
		rq->win_bytes += rq->win[i]->write_len;
	rq->st.packets++;
	rq->st.bytes += len - rq->hdr_len;
}

/* The held frame into the window, now that it fits. */
static void deliver_pending(struct net_rxq *rq)
{
	unsigned n = window_iov(rq);
	size_t len = rq->pending;

	rq->pending = 0;
	if (len > rq->win_bytes) {
		drop_too_large(rq, len);
		return;
	}
	vd_iov_from_buf(rq->iov, n, 0, rq->over, len);
	rq->st.held++;
	deliver(rq, len);
}

/* One frame from the tap into the window. 1 delivered, held or dropped,
 * 0 the tap is empty, -1 the tap failed (logged). */
static int receive_one(struct net_rxq *rq)
{
	unsigned n = window_iov(rq), over;
	uint8_t dst[6];
	ssize_t got;

	/* A tap read returns what it copied (Linux 6.x), not the frame's
	 * length: what runs past the buffers lands in the overflow, and a
	 * frame that fills the overflow was cut. readv takes at most IOV_MAX
	 * (VD_VQ_MAX_IOV) entries: with the window at that many, a full read
	 * counts as cut. */
	over = n < VD_VQ_MAX_IOV;
	if (over)
		rq->iov[n] = (struct iovec){.iov_base = rq->over,
					    .iov_len = rq->frame_max + 1};
	got = readv(rq->fd, rq->iov, (int)(n + over));
	if (got < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		vd_log_ratelimited(&rq->rl, VD_LOG_WARN, rq->who,
				   "tap read: %s", strerror(errno));
		return -1;
	}
	if ((size_t)got < rq->hdr_len + 14u) {
		rq->st.dropped++;
		return 1; /* the buffers stay ours for the next frame */
	}
	vd_iov_to_buf(rq->iov, n + over, rq->hdr_len, dst, sizeof(dst));
	if (!net_filter_accepts(&rq->d->filter, dst)) {
		rq->st.filtered++;
		return 1;
	}
	if ((size_t)got <= rq->win_bytes &&
	    (over || (size_t)got < rq->win_bytes)) {
		deliver(rq, (size_t)got);
		return 1;
	}
	/* Larger than the buffers: hold it whole (head copied out of the
	 * buffers, which go back to the ring) and wait for enough. Without
	 * MRG_RXBUF one buffer takes one frame: no later buffer helps. */
	if (!over || !rq->mergeable || (size_t)got > rq->frame_max) {
		drop_too_large(rq, (size_t)got);
		return 1;
	}
	memmove(rq->over + rq->win_bytes, rq->over,
		(size_t)got - rq->win_bytes);
	vd_iov_to_buf(rq->iov, n, 0, rq->over, rq->win_bytes);
	rq->pending = (size_t)got;
	return 1;
}

static void watch_tap(struct net_rxq *rq, bool on)
{
	vd_loop_mod(vd_queue_loop(rq->q), rq->fd, on ? EPOLLIN : 0);
}

/* Frames from the tap until it is empty, the budget is spent or the
 * buffers run out. */
static void receive(struct net_rxq *rq)
{
	unsigned budget = NET_BUDGET;

	while (budget--) {
		if (!window_fill(rq)) {
			if (vd_vq_broken(rq->vq))
				break;
			/* No buffer: leave the packets in the tap's queue
			 * and wait for the driver. */
			rq->starved = true;
			rq->st.starved++;
			watch_tap(rq, false);
			vd_queue_wait_buffers(rq->q);
			break;
		}
		if (rq->pending) {
			deliver_pending(rq);
			continue;
		}
		if (receive_one(rq) <= 0)
			break;
	}
	window_return(rq);
}

static void on_tap(void *opaque, int fd, uint32_t events)
{
	struct net_rxq *rq = opaque;

	(void)fd;
	(void)events;
	receive(rq);
}

/* ------------------------------------------------------------ queue */

int net_rx_start(struct net_dev *d, struct vd_queue *q, unsigned pair)
{
	struct net_rxq *rq = calloc(1, sizeof(*rq));
	uint64_t f = atomic_load(&d->features);
	bool gso;
	int r;

	if (!rq)
		return -ENOMEM;
	rq->d = d;
	rq->pair = pair;
	rq->q = q;
	rq->vq = vd_queue_vq(q);
	rq->who = vd_queue_who(q);
	rq->fd = d->fd[pair];
	rq->rl = (struct vd_ratelimit)VD_RATELIMIT_INIT;
	rq->mergeable = net_has(f, VIRTIO_NET_F_MRG_RXBUF);
	rq->guest_csum = net_has(f, VIRTIO_NET_F_GUEST_CSUM);
	rq->hdr_len = net_has(f, VIRTIO_F_VERSION_1) || rq->mergeable
			      ? NET_HDR_LEN
			      : sizeof(struct virtio_net_hdr);
	gso = rq->guest_csum && (net_has(f, VIRTIO_NET_F_GUEST_TSO4) ||
				 net_has(f, VIRTIO_NET_F_GUEST_TSO6) ||
				 net_has(f, VIRTIO_NET_F_GUEST_UFO));
	rq->frame_max = rq->hdr_len + (gso ? NET_GSO_FRAME_MAX : d->mtu + 18u);
	rq->win_max = d->model.max_queue_size;
	rq->win = calloc(rq->win_max, sizeof(*rq->win));
	rq->iov = calloc(VD_VQ_MAX_IOV + 1, sizeof(*rq->iov));
	rq->over = malloc(rq->frame_max + 1);
	if (!rq->win || !rq->iov || !rq->over) {
		r = -ENOMEM;
		goto fail;
	}
	r = vd_loop_add(vd_queue_loop(q), rq->fd, EPOLLIN, on_tap, rq);
	if (r < 0)
		goto fail;
	vd_queue_set_device_filled(q);
	vd_queue_set_model_data(q, rq);
	return 0;
fail:
	free(rq->win);
	free(rq->iov);
	free(rq->over);
	free(rq);
	return r;
}

void net_rx_kick(struct net_rxq *rq)
{
	/* Buffers for a starved tap, or a kick while we had some (the
	 * driver may kick whenever it likes): receive what waits. */
	if (rq->starved) {
		rq->starved = false;
		watch_tap(rq, true);
	}
	receive(rq);
}

void net_rx_stop(struct net_rxq *rq)
{
	window_return(rq);
	vd_loop_del(vd_queue_loop(rq->q), rq->fd);
	vd_info(rq->who,
		"received %llu packets, %llu bytes; dropped %llu, filtered "
		"%llu, too large %llu, waited for buffers %llu times, held "
		"%llu larger than the buffers posted",
		(unsigned long long)rq->st.packets,
		(unsigned long long)rq->st.bytes,
		(unsigned long long)rq->st.dropped,
		(unsigned long long)rq->st.filtered,
		(unsigned long long)rq->st.truncated,
		(unsigned long long)rq->st.starved,
		(unsigned long long)rq->st.held);
	free(rq->win);
	free(rq->iov);
	free(rq->over);
	free(rq);
}
