/* virtio-net control queue (§5.1.6.5): receive modes and MAC tables, the
 * MAC address, announcements, queue pairs and guest offloads. Each command
 * is copied out of guest memory once, checked, and answered with one ack
 * byte; a malformed command gets VIRTIO_NET_ERR, never a broken device.
 * Which tap queues are attached is decided here too. */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "net.h"

/* The largest command: two full MAC tables with their counts. */
#define CTRL_CMD_MAX (2 + 2 * (4 + NET_MAC_TABLE_MAX * 6))

static void filter_write_begin(struct net_filter *f)
{
	atomic_fetch_add_explicit(&f->seq, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

static void filter_write_end(struct net_filter *f)
{
	atomic_fetch_add_explicit(&f->seq, 1, memory_order_release);
}

void net_filter_reset(struct net_dev *d)
{
	struct net_filter *f = &d->filter;
	uint8_t mac[6];

	memcpy(mac, f->mac, 6);
	filter_write_begin(f);
	f->promisc = true;
	f->allmulti = f->alluni = false;
	f->nomulti = f->nouni = f->nobcast = false;
	f->n_uni = f->n_multi = 0;
	memcpy(f->mac, mac, 6);
	filter_write_end(f);
}

void net_pairs_update(struct net_dev *d)
{
	pthread_mutex_lock(&d->pairs_lock);
	/* Without a control queue (vhost-user: the frontend keeps it and
	 * enables and disables rings instead) every running pair serves. */
	unsigned limit = d->ctrl_running ? d->curr_pairs : d->pairs;

	for (unsigned i = 0; i < d->pairs; i++) {
		bool want = d->rx_running[i] && i < limit;
		int r;

		/* Pair 0 never detaches: a tap without queues drops all. */
		if (i == 0 || want == d->attached[i])
			continue;
		r = net_tap_attach(d, i, want);
		if (r < 0)
			vd_log_ratelimited(&d->rl, VD_LOG_WARN, d->who,
					   "tap queue %u: %s: %s", i,
					   want ? "attach" : "detach",
					   strerror(-r));
		else {
			d->attached[i] = want;
			vd_info(d->who, "tap queue %u %s", i,
				want ? "attached" : "detached");
		}
	}
	pthread_mutex_unlock(&d->pairs_lock);
}

/* ------------------------------------------------------------ commands */

static int cmd_rx(struct net_dev *d, uint8_t cmd, const uint8_t *p, size_t len,
		  uint64_t f)
{
	struct net_filter *fl = &d->filter;
	bool on;

	if (len != 1 || p[0] > 1)
		return -EINVAL;
	on = p[0];
	if (cmd > VIRTIO_NET_CTRL_RX_ALLMULTI &&
	    !net_has(f, VIRTIO_NET_F_CTRL_RX_EXTRA))
		return -EINVAL;
	filter_write_begin(fl);
	switch (cmd) {
	case VIRTIO_NET_CTRL_RX_PROMISC:
		fl->promisc = on;
		break;
	case VIRTIO_NET_CTRL_RX_ALLMULTI:
		fl->allmulti = on;
		break;
	case VIRTIO_NET_CTRL_RX_ALLUNI:
		fl->alluni = on;
		break;
	case VIRTIO_NET_CTRL_RX_NOMULTI:
		fl->nomulti = on;
		break;
	case VIRTIO_NET_CTRL_RX_NOUNI:
		fl->nouni = on;
		break;
	case VIRTIO_NET_CTRL_RX_NOBCAST:
		fl->nobcast = on;
		break;
	default:
		filter_write_end(fl);
		return -EINVAL;
	}
	filter_write_end(fl);
	return 0;
}

/* One table: le32 entries, then 6 bytes each. Returns bytes used or -1. */
static long mac_table(const uint8_t *p, size_t len, uint32_t *n)
{
	uint32_t v;

	if (len < 4)
		return -1;
	memcpy(&v, p, 4);
	*n = le32toh(v);
	if (*n > NET_MAC_TABLE_MAX || len - 4 < (size_t)*n * 6)
		return -1;
	return 4 + (long)*n * 6;
}

static int cmd_mac(struct net_dev *d, uint8_t cmd, const uint8_t *p, size_t len,
		   uint64_t f)
{
	struct net_filter *fl = &d->filter;
	uint32_t nu, nm;
	long a, b;

	if (cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET) {
		if (len != 6 || !net_has(f, VIRTIO_NET_F_CTRL_MAC_ADDR))
			return -EINVAL;
		filter_write_begin(fl);
		memcpy(fl->mac, p, 6);
		filter_write_end(fl);
		return 0;
	}
	if (cmd != VIRTIO_NET_CTRL_MAC_TABLE_SET)
		return -EINVAL;
	a = mac_table(p, len, &nu);
	if (a < 0)
		return -EINVAL;
	b = mac_table(p + a, len - (size_t)a, &nm);
	if (b < 0 || (size_t)(a + b) != len)
		return -EINVAL;
	filter_write_begin(fl);
	fl->n_uni = nu;
	memcpy(fl->uni, p + 4, (size_t)nu * 6);
	fl->n_multi = nm;
	memcpy(fl->multi, p + a + 4, (size_t)nm * 6);
	filter_write_end(fl);
	return 0;
}

static int cmd_mq(struct net_dev *d, uint8_t cmd, const uint8_t *p, size_t len,
		  uint64_t f)
{
	uint16_t v;

	if (cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || len != 2 ||
	    !net_has(f, VIRTIO_NET_F_MQ))
		return -EINVAL;
	memcpy(&v, p, 2);
	v = le16toh(v);
	/* §5.1.6.5.5: 1 to max_virtqueue_pairs. */
	if (v < VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN || v > d->pairs)
		return -EINVAL;
	pthread_mutex_lock(&d->pairs_lock);
	d->curr_pairs = v;
	pthread_mutex_unlock(&d->pairs_lock);
	vd_info(d->who, "the driver uses %u queue pair(s)", v);
	net_pairs_update(d);
	return 0;
}

static int cmd_offloads(struct net_dev *d, const uint8_t *p, size_t len,
			uint64_t f)
{
	const uint64_t guest = 1ULL << VIRTIO_NET_F_GUEST_CSUM |
			       1ULL << VIRTIO_NET_F_GUEST_TSO4 |
			       1ULL << VIRTIO_NET_F_GUEST_TSO6 |
			       1ULL << VIRTIO_NET_F_GUEST_ECN |
			       1ULL << VIRTIO_NET_F_GUEST_UFO;
	uint64_t v;

	if (len != 8 || !net_has(f, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS))
		return -EINVAL;
	memcpy(&v, p, 8);
	v = le64toh(v);
	/* §5.1.6.5.6.2: only offloads that were negotiated. */
	if (v & ~(f & guest))
		return -EINVAL;
	return net_tap_set_offloads(d, v);
}

static int command(struct net_dev *d, const uint8_t *c, size_t len)
{
	uint64_t f = atomic_load(&d->features);
	const uint8_t *p = c + 2;
	size_t plen = len - 2;

	switch (c[0]) {
	case VIRTIO_NET_CTRL_RX:
		if (!net_has(f, VIRTIO_NET_F_CTRL_RX))
			return -EINVAL;
		return cmd_rx(d, c[1], p, plen, f);
	case VIRTIO_NET_CTRL_MAC:
		if (!net_has(f, VIRTIO_NET_F_CTRL_RX) &&
		    c[1] == VIRTIO_NET_CTRL_MAC_TABLE_SET)
			return -EINVAL;
		return cmd_mac(d, c[1], p, plen, f);
	case VIRTIO_NET_CTRL_ANNOUNCE:
		if (c[1] != VIRTIO_NET_CTRL_ANNOUNCE_ACK || plen ||
		    !net_has(f, VIRTIO_NET_F_GUEST_ANNOUNCE))
			return -EINVAL;
		/* §5.1.6.5.4: the driver acknowledges: clear the bit. */
		atomic_fetch_and(&d->status,
				 (unsigned short)~VIRTIO_NET_S_ANNOUNCE);
		return 0;
	case VIRTIO_NET_CTRL_MQ:
		return cmd_mq(d, c[1], p, plen, f);
	case VIRTIO_NET_CTRL_GUEST_OFFLOADS:
		if (c[1] != VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET)
			return -EINVAL;
		return cmd_offloads(d, p, plen, f);
	default:
		return -EINVAL;
	}
}

void net_ctrl_kick(struct net_dev *d, struct vd_queue *q)
{
	struct vd_vq *vq = vd_queue_vq(q);
	uint8_t cmd[CTRL_CMD_MAX];
	struct vd_vq_elem *e;

	for (unsigned budget = NET_BUDGET; budget; budget--) {
		uint8_t ack = VIRTIO_NET_ERR;
		size_t len;

		if (vd_vq_pop(vq, &e) <= 0)
			return;
		/* §5.1.6.5: class, command, data readable; ack writable. */
		if (e->read_len < 2 || e->read_len > sizeof(cmd) ||
		    e->write_len < 1) {
			vd_log_ratelimited(&d->rl, VD_LOG_WARN, d->who,
					   "control command of %llu+%llu bytes "
					   "refused",
					   (unsigned long long)e->read_len,
					   (unsigned long long)e->write_len);
		} else {
			len = vd_iov_to_buf(e->read_iov, e->n_read, 0, cmd,
					    e->read_len);
			if (command(d, cmd, len) == 0)
				ack = VIRTIO_NET_OK;
			else
				vd_log_ratelimited(&d->rl, VD_LOG_WARN, d->who,
						   "control command %u.%u (%zu "
						   "bytes) refused",
						   cmd[0], cmd[1], len - 2);
		}
		if (ack == VIRTIO_NET_OK)
			d->ctrl_ok++;
		else
			d->ctrl_refused++;
		if (e->write_len < 1) {
			vd_vq_push(vq, e, 0);
			continue;
		}
		/* The ack is the last writable byte. */
		vd_iov_from_buf(e->write_iov, e->n_write, e->write_len - 1,
				&ack, 1);
		vd_vq_push(vq, e, (uint32_t)e->write_len);
	}
	vd_queue_rekick(q);
}
