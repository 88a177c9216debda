/* virtio-net transmit (§5.1.6.2): each chain goes to the tap in one
 * writev, straight from guest memory, the vnet header in place. A chain
 * the tap must not take (too short, impossible GSO size or checksum offset,
 * offloads not negotiated) is dropped and counted; the queue goes on. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net.h"

const char *net_tx_hdr_check(const struct virtio_net_hdr *h, uint64_t f,
			     size_t frame_len)
{
	uint8_t gso = h->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;

	if (frame_len < 14)
		return "frame shorter than an Ethernet header";
	if (frame_len > NET_GSO_FRAME_MAX)
		return "frame longer than 64 KiB";
	/* §5.1.6.2.1: the driver sets no other flag. */
	if (h->flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
		return "header flags other than NEEDS_CSUM";
	if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		uint32_t start = le16toh(h->csum_start);
		uint32_t off = le16toh(h->csum_offset);

		if (!net_has(f, VIRTIO_NET_F_CSUM))
			return "NEEDS_CSUM without VIRTIO_NET_F_CSUM";
		if (start + off + 2 > frame_len)
			return "checksum offset outside the frame";
	}
	if (gso == VIRTIO_NET_HDR_GSO_NONE) {
		if (h->gso_type & VIRTIO_NET_HDR_GSO_ECN)
			return "ECN without a GSO type";
		return NULL;
	}
	if ((gso == VIRTIO_NET_HDR_GSO_TCPV4 &&
	     !net_has(f, VIRTIO_NET_F_HOST_TSO4)) ||
	    (gso == VIRTIO_NET_HDR_GSO_TCPV6 &&
	     !net_has(f, VIRTIO_NET_F_HOST_TSO6)) ||
	    (gso == VIRTIO_NET_HDR_GSO_UDP &&
	     !net_has(f, VIRTIO_NET_F_HOST_UFO)))
		return "GSO type not negotiated";
	if (gso != VIRTIO_NET_HDR_GSO_TCPV4 &&
	    gso != VIRTIO_NET_HDR_GSO_TCPV6 && gso != VIRTIO_NET_HDR_GSO_UDP)
		return "unknown GSO type";
	if ((h->gso_type & VIRTIO_NET_HDR_GSO_ECN) &&
	    !net_has(f, VIRTIO_NET_F_HOST_ECN))
		return "GSO ECN not negotiated";
	if (le16toh(h->gso_size) == 0 || le16toh(h->gso_size) >= frame_len)
		return "impossible GSO size";
	if (le16toh(h->hdr_len) > frame_len)
		return "GSO header length past the frame";
	return NULL;
}

static void drop(struct net_txq *tq, struct vd_vq_elem *e, const char *why)
{
	tq->st.dropped++;
	vd_log_ratelimited(&tq->rl, VD_LOG_WARN, tq->who,
			   "%s (chain %u, %llu bytes); dropped", why, e->id,
			   (unsigned long long)e->read_len);
	vd_vq_push(tq->vq, e, 0);
}

static void transmit(struct net_txq *tq, struct vd_vq_elem *e)
{
	struct virtio_net_hdr h;
	const char *why;
	ssize_t n;

	if (e->n_write)
		why = "transmit chain with device-writable descriptors";
	else if (e->read_len < tq->hdr_len ||
		 vd_iov_to_buf(e->read_iov, e->n_read, 0, &h, sizeof(h)) !=
			 sizeof(h))
		why = "transmit chain shorter than the vnet header";
	else
		why = net_tx_hdr_check(&h, tq->features,
				       e->read_len - tq->hdr_len);
	if (why) {
		drop(tq, e, why);
		return;
	}
	n = writev(tq->fd, e->read_iov, (int)e->n_read);
	if (n < 0) {
		/* The kernel checks the header again: a driver can change
		 * it after we looked. EIO: the tap is down. */
		tq->st.dropped++;
		if (errno != EIO)
			vd_log_ratelimited(&tq->rl, VD_LOG_WARN, tq->who,
					   "tap write of %llu bytes: %s; "
					   "dropped",
					   (unsigned long long)e->read_len,
					   strerror(errno));
	} else {
		tq->st.packets++;
		tq->st.bytes += e->read_len - tq->hdr_len;
	}
	vd_vq_push(tq->vq, e, 0);
}

void net_tx_kick(struct net_txq *tq)
{
	struct vd_vq_elem *e;

	for (unsigned budget = NET_BUDGET; budget; budget--) {
		if (vd_vq_pop(tq->vq, &e) <= 0)
			return;
		transmit(tq, e);
	}
	/* More may wait: let the loop breathe, then go on. */
	vd_queue_rekick(tq->q);
}

int net_tx_start(struct net_dev *d, struct vd_queue *q, unsigned pair)
{
	struct net_txq *tq = calloc(1, sizeof(*tq));
	uint64_t f = atomic_load(&d->features);

	if (!tq)
		return -ENOMEM;
	tq->d = d;
	tq->pair = pair;
	tq->q = q;
	tq->vq = vd_queue_vq(q);
	tq->who = vd_queue_who(q);
	tq->fd = d->fd[pair];
	tq->features = f;
	tq->hdr_len = net_has(f, VIRTIO_F_VERSION_1) ||
				      net_has(f, VIRTIO_NET_F_MRG_RXBUF)
			      ? NET_HDR_LEN
			      : sizeof(struct virtio_net_hdr);
	tq->rl = (struct vd_ratelimit)VD_RATELIMIT_INIT;
	vd_queue_set_model_data(q, tq);
	return 0;
}

void net_tx_stop(struct net_txq *tq)
{
	vd_info(tq->who, "sent %llu packets, %llu bytes; dropped %llu",
		(unsigned long long)tq->st.packets,
		(unsigned long long)tq->st.bytes,
		(unsigned long long)tq->st.dropped);
	free(tq);
}
