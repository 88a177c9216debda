/* virtio-net device type (virtio 1.2 §5.1) over a tap: options, features,
 * config space, and which queue does what (receive 2i, transmit 2i+1, the
 * control queue last). Hypervisor-agnostic: a shim that keeps the control
 * queue itself (vhost-user frontends do) just never starts it. */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "net.h"

/* ------------------------------------------------------------- options */

static const struct vd_device_option net_options[] = {
	{"tap", "NAME",
	 "tap interface to serve (created when missing and allowed)"},
	{"tap-fd", "N[,N...]",
	 "tap queue fds opened by a management tool, one per queue pair "
	 "(instead of --tap)"},
	{"mac", "MAC",
	 "guest MAC address (default: stable, locally administered, derived "
	 "from the tap name)"},
	{"queue-pairs", "N", "receive/transmit queue pairs, 1..16 (default 1)"},
	{"mtu", "N",
	 "MTU offered to the guest and set on the tap, 68..65535 (default: "
	 "the tap's)"},
	{"queue-size", "N",
	 "largest virtqueue, a power of two 64..32768 (default 256)"},
	{"no-packed", NULL,
	 "do not offer VIRTIO_F_RING_PACKED: the driver uses split rings"},
	{"no-offloads", NULL,
	 "offer no checksum or segmentation offloads (every packet whole "
	 "and checksummed)"},
	{NULL, NULL, NULL},
};

static void *net_opts_new(void)
{
	struct net_opts *o = calloc(1, sizeof(*o));

	if (o) {
		o->pairs = 1;
		o->queue_size = NET_QUEUE_SIZE_DEF;
	}
	return o;
}

static void net_opts_free(void *opts)
{
	free(opts);
}

static int parse_uint(const char *s, unsigned long max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &tail) != 6 ||
	    strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

static int net_opts_set(void *opts, const char *name, const char *value,
			char *err, size_t errlen)
{
	struct net_opts *o = opts;
	unsigned v;

#define BAD(...)                                                               \
	do {                                                                   \
		snprintf(err, errlen, __VA_ARGS__);                            \
		return -EINVAL;                                                \
	} while (0)

	if (strcmp(name, "no-packed") == 0) {
		o->no_packed = true;
		return 0;
	}
	if (strcmp(name, "no-offloads") == 0) {
		o->no_offloads = true;
		return 0;
	}
	if (!value)
		BAD("--%s needs a value", name);
	if (strcmp(name, "tap") == 0) {
		if (!*value || strlen(value) >= sizeof(o->tap) ||
		    strchr(value, '/') || strchr(value, ' '))
			BAD("--tap %s: expected an interface name of 1..15 "
			    "characters",
			    value);
		snprintf(o->tap, sizeof(o->tap), "%s", value);
	} else if (strcmp(name, "tap-fd") == 0) {
		const char *p = value;

		o->n_tap_fd = 0;
		while (*p) {
			char num[16];
			size_t n = strcspn(p, ",");

			if (n == 0 || n >= sizeof(num) ||
			    o->n_tap_fd == NET_PAIRS_MAX)
				BAD("--tap-fd %s: expected up to %u fds, "
				    "comma-separated",
				    value, NET_PAIRS_MAX);
			memcpy(num, p, n);
			num[n] = '\0';
			if (parse_uint(num, 1u << 20, &v) < 0 || v < 3)
				BAD("--tap-fd %s: %s is not an open fd number",
				    value, num);
			o->tap_fd[o->n_tap_fd++] = (int)v;
			p += n;
			if (*p == ',')
				p++;
		}
		if (!o->n_tap_fd)
			BAD("--tap-fd: no fd given");
	} else if (strcmp(name, "mac") == 0) {
		if (parse_mac(value, o->mac) < 0)
			BAD("--mac %s: expected six hex bytes, "
			    "52:54:00:12:34:56",
			    value);
		if (o->mac[0] & 1)
			BAD("--mac %s: a multicast address cannot be a "
			    "station's",
			    value);
		o->mac_set = true;
	} else if (strcmp(name, "queue-pairs") == 0) {
		if (parse_uint(value, NET_PAIRS_MAX, &v) < 0 || v == 0)
			BAD("--queue-pairs %s: expected 1..%u", value,
			    NET_PAIRS_MAX);
		o->pairs = v;
	} else if (strcmp(name, "mtu") == 0) {
		if (parse_uint(value, NET_MTU_MAX, &v) < 0 || v < NET_MTU_MIN)
			BAD("--mtu %s: expected %u..%u", value, NET_MTU_MIN,
			    NET_MTU_MAX);
		o->mtu = v;
	} else if (strcmp(name, "queue-size") == 0) {
		if (parse_uint(value, VD_VQ_MAX_SIZE, &v) < 0 ||
		    v < NET_QUEUE_SIZE_MIN || (v & (v - 1)))
			BAD("--queue-size %s: expected a power of two %u..%u",
			    value, NET_QUEUE_SIZE_MIN, VD_VQ_MAX_SIZE);
		o->queue_size = v;
	} else {
		BAD("--%s: not a net option", name);
	}
	return 0;
#undef BAD
}

/* ------------------------------------------------------- config space */

/* mac, status, max_virtqueue_pairs, mtu (§5.1.4); nothing past it is
 * offered. */
#define NET_CONFIG_SIZE                                                        \
	(offsetof(struct virtio_net_config, mtu) + sizeof(uint16_t))

static void net_get_config(void *model, uint32_t off, void *buf, uint32_t len)
{
	struct net_dev *d = model;
	struct virtio_net_config c;
	unsigned seq;

	memset(&c, 0, sizeof(c));
	do {
		seq = atomic_load_explicit(&d->filter.seq,
					   memory_order_acquire);
		memcpy(c.mac, d->filter.mac, 6);
		atomic_thread_fence(memory_order_acquire);
	} while ((seq & 1) ||
		 seq != atomic_load_explicit(&d->filter.seq,
					     memory_order_relaxed));
	c.status = htole16(atomic_load(&d->status));
	c.max_virtqueue_pairs = htole16((uint16_t)d->pairs);
	c.mtu = htole16((uint16_t)(d->mtu > 0xffff ? 0xffff : d->mtu));
	memcpy(buf, (const char *)&c + off, len);
}

/* §5.1.4: with neither CTRL_MAC_ADDR nor VERSION_1 a legacy driver may
 * write mac; we treat the config space as read-only. */
static int net_set_config(void *model, uint32_t off, const void *buf,
			  uint32_t len)
{
	(void)model;
	(void)off;
	(void)buf;
	(void)len;
	return -EPERM;
}

static uint64_t net_offered(const struct net_dev *d, const struct net_opts *o)
{
	uint64_t f = 1ULL << VIRTIO_F_VERSION_1 |
		     1ULL << VIRTIO_RING_F_INDIRECT_DESC |
		     1ULL << VIRTIO_RING_F_EVENT_IDX |
		     1ULL << VIRTIO_NET_F_MAC | 1ULL << VIRTIO_NET_F_STATUS |
		     1ULL << VIRTIO_NET_F_MTU | 1ULL << VIRTIO_NET_F_MRG_RXBUF |
		     1ULL << VIRTIO_NET_F_CTRL_VQ |
		     1ULL << VIRTIO_NET_F_CTRL_RX |
		     1ULL << VIRTIO_NET_F_CTRL_RX_EXTRA |
		     1ULL << VIRTIO_NET_F_CTRL_MAC_ADDR |
		     1ULL << VIRTIO_NET_F_GUEST_ANNOUNCE;
	unsigned t = d->tun_offloads;

	if (!o->no_packed)
		f |= 1ULL << VIRTIO_F_RING_PACKED;
	if (d->pairs > 1)
		f |= 1ULL << VIRTIO_NET_F_MQ;
	if (o->no_offloads)
		return f;
	/* Transmit: the tap takes checksum-partial and GSO frames from us
	 * whatever its offload settings. */
	f |= 1ULL << VIRTIO_NET_F_CSUM | 1ULL << VIRTIO_NET_F_HOST_TSO4 |
	     1ULL << VIRTIO_NET_F_HOST_TSO6 | 1ULL << VIRTIO_NET_F_HOST_ECN |
	     1ULL << VIRTIO_NET_F_HOST_UFO;
	/* Receive: what TUNSETOFFLOAD accepted. */
	if (t & TUN_F_CSUM)
		f |= 1ULL << VIRTIO_NET_F_GUEST_CSUM |
		     1ULL << VIRTIO_NET_F_CTRL_GUEST_OFFLOADS;
	if (t & TUN_F_TSO4)
		f |= 1ULL << VIRTIO_NET_F_GUEST_TSO4;
	if (t & TUN_F_TSO6)
		f |= 1ULL << VIRTIO_NET_F_GUEST_TSO6;
	if (t & TUN_F_TSO_ECN)
		f |= 1ULL << VIRTIO_NET_F_GUEST_ECN;
	if (t & TUN_F_UFO)
		f |= 1ULL << VIRTIO_NET_F_GUEST_UFO;
	return f;
}

static void net_set_features(void *model, uint64_t features)
{
	struct net_dev *d = model;
	int r;

	atomic_store(&d->features, features);
	r = net_tap_configure(d, features);
	if (r < 0)
		vd_err(d->who,
		       "tap %s: vnet header or offloads for features "
		       "0x%llx: %s",
		       d->ifname, (unsigned long long)features, strerror(-r));
}

static void net_reset(void *model)
{
	struct net_dev *d = model;

	atomic_store(&d->features, 0);
	net_tap_configure(d, 0);
	net_filter_reset(d);
	atomic_fetch_and(&d->status, (unsigned short)~VIRTIO_NET_S_ANNOUNCE);
	pthread_mutex_lock(&d->pairs_lock);
	d->curr_pairs = 1;
	pthread_mutex_unlock(&d->pairs_lock);
}

static void net_destroy(void *model)
{
	struct net_dev *d = model;

	if (d->nl_fd >= 0)
		close(d->nl_fd);
	net_tap_close(d);
	pthread_mutex_destroy(&d->pairs_lock);
	free(d);
}

/* ------------------------------------------------------------ the link */

/* The tap's carrier is the guest's link (§5.1.4.2, VIRTIO_NET_S_LINK_UP);
 * when it comes back up a driver with GUEST_ANNOUNCE is asked to announce
 * itself (§5.1.6.5.4): the network may have moved around the tap. */
static void on_link(void *opaque, int fd, uint32_t events)
{
	struct net_dev *d = opaque;
	uint64_t f = atomic_load(&d->features);
	unsigned short old, add;
	bool up;

	(void)events;
	if (!net_link_read(fd, d->ifindex, &up))
		return;
	old = atomic_load(&d->status);
	if (!!(old & VIRTIO_NET_S_LINK_UP) == up)
		return;
	add = up ? VIRTIO_NET_S_LINK_UP : 0;
	if (up && net_has(f, VIRTIO_NET_F_GUEST_ANNOUNCE))
		add |= VIRTIO_NET_S_ANNOUNCE;
	if (up)
		atomic_fetch_or(&d->status, add);
	else
		atomic_fetch_and(&d->status,
				 (unsigned short)~VIRTIO_NET_S_LINK_UP);
	vd_info(d->who, "tap %s link %s", d->ifname, up ? "up" : "down");
	if (net_has(f, VIRTIO_NET_F_STATUS) && d->dev)
		vd_dev_config_changed(d->dev);
}

/* ------------------------------------------------------------ queues */

enum qkind { Q_RX, Q_TX, Q_CTRL };

/* §5.1.2: the control queue follows the pairs the driver uses: 2N with
 * VIRTIO_NET_F_MQ, else 2 (the queues past it are then never set up). */
static enum qkind kind_of(struct net_dev *d, unsigned idx, unsigned *pair)
{
	uint64_t f = atomic_load(&d->features);
	unsigned n = net_has(f, VIRTIO_NET_F_MQ) ? d->pairs : 1;

	*pair = idx / 2;
	if (idx == 2 * n && net_has(f, VIRTIO_NET_F_CTRL_VQ))
		return Q_CTRL;
	return idx & 1 ? Q_TX : Q_RX;
}

static int net_queue_start(void *model, struct vd_queue *q)
{
	struct net_dev *d = model;
	unsigned pair;
	int r = 0;

	switch (kind_of(d, vd_queue_index(q), &pair)) {
	case Q_RX:
		r = net_rx_start(d, q, pair);
		if (r < 0)
			return r;
		if (pair == 0 && d->nl_fd >= 0) {
			d->dev = vd_queue_dev(q);
			if (vd_loop_add(vd_queue_loop(q), d->nl_fd, EPOLLIN,
					on_link, d) == 0)
				net_link_query(d->nl_fd, d->ifindex);
		}
		pthread_mutex_lock(&d->pairs_lock);
		d->rx_running[pair] = true;
		pthread_mutex_unlock(&d->pairs_lock);
		net_pairs_update(d);
		break;
	case Q_TX:
		r = net_tx_start(d, q, pair);
		break;
	case Q_CTRL:
		pthread_mutex_lock(&d->pairs_lock);
		d->ctrl_running = true;
		pthread_mutex_unlock(&d->pairs_lock);
		net_pairs_update(d);
		break;
	}
	return r;
}

static void net_queue_kick(void *model, struct vd_queue *q)
{
	struct net_dev *d = model;
	unsigned pair;

	switch (kind_of(d, vd_queue_index(q), &pair)) {
	case Q_RX:
		net_rx_kick(vd_queue_model_data(q));
		break;
	case Q_TX:
		net_tx_kick(vd_queue_model_data(q));
		break;
	case Q_CTRL:
		net_ctrl_kick(d, q);
		break;
	}
}

static void net_queue_stop(void *model, struct vd_queue *q)
{
	struct net_dev *d = model;
	unsigned pair;

	switch (kind_of(d, vd_queue_index(q), &pair)) {
	case Q_RX:
		if (pair == 0 && d->nl_fd >= 0) {
			vd_loop_del(vd_queue_loop(q), d->nl_fd);
			d->dev = NULL;
		}
		net_rx_stop(vd_queue_model_data(q));
		pthread_mutex_lock(&d->pairs_lock);
		d->rx_running[pair] = false;
		pthread_mutex_unlock(&d->pairs_lock);
		net_pairs_update(d);
		break;
	case Q_TX:
		net_tx_stop(vd_queue_model_data(q));
		break;
	case Q_CTRL:
		vd_info(vd_queue_who(q),
			"control: %llu commands done, %llu refused",
			(unsigned long long)d->ctrl_ok,
			(unsigned long long)d->ctrl_refused);
		pthread_mutex_lock(&d->pairs_lock);
		d->ctrl_running = false;
		pthread_mutex_unlock(&d->pairs_lock);
		net_pairs_update(d);
		break;
	}
	vd_queue_set_model_data(q, NULL);
}

static const struct vd_device_ops net_ops = {
	.get_config = net_get_config,
	.set_config = net_set_config,
	.set_features = net_set_features,
	.queue_start = net_queue_start,
	.queue_kick = net_queue_kick,
	.queue_stop = net_queue_stop,
	.reset = net_reset,
	.destroy = net_destroy,
};

/* ------------------------------------------------------------ create */

static int net_create(void *opts, struct vd_model **out, char *err,
		      size_t errlen)
{
	struct net_opts *o = opts;
	struct net_dev *d;
	bool up = false;
	int r;

	if (!o->n_tap_fd && !o->tap[0]) {
		snprintf(err, errlen,
			 "net: --tap NAME or --tap-fd N is "
			 "required");
		return -EINVAL;
	}
	if (o->n_tap_fd && o->tap[0]) {
		snprintf(err, errlen,
			 "net: --tap and --tap-fd exclude each "
			 "other");
		return -EINVAL;
	}
	if (o->n_tap_fd && o->pairs != 1 && o->pairs != o->n_tap_fd) {
		snprintf(err, errlen,
			 "net: --queue-pairs %u but %u --tap-fd fds (one per "
			 "pair)",
			 o->pairs, o->n_tap_fd);
		return -EINVAL;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "net: out of memory");
		return -ENOMEM;
	}
	d->nl_fd = -1;
	d->rl = (struct vd_ratelimit)VD_RATELIMIT_INIT;
	pthread_mutex_init(&d->pairs_lock, NULL);
	r = net_tap_open(d, o, err, errlen);
	if (r < 0) {
		pthread_mutex_destroy(&d->pairs_lock);
		free(d);
		return r;
	}
	snprintf(d->who, sizeof(d->who), "net %s", d->ifname);
	if (o->mtu) {
		r = net_tap_set_mtu(d, o->mtu);
		if (r < 0) {
			snprintf(err, errlen,
				 "tap %s: setting MTU %u: %s (a bridged tap "
				 "takes at most its bridge's MTU)",
				 d->ifname, o->mtu, strerror(-r));
			net_destroy(d);
			return r;
		}
	}
	d->mtu = net_tap_mtu(d);
	if (!d->mtu)
		d->mtu = 1500;
	if (o->mac_set)
		memcpy(d->filter.mac, o->mac, 6);
	else
		net_mac_from_name(d->ifname, d->filter.mac);
	net_filter_reset(d);
	d->curr_pairs = 1;
	/* The carrier now, then changes from queue 0's thread. */
	d->nl_fd = net_link_open();
	if (d->nl_fd >= 0 && net_link_query(d->nl_fd, d->ifindex) == 0) {
		for (int i = 0;
		     i < 100 && !net_link_read(d->nl_fd, d->ifindex, &up); i++)
			usleep(1000);
	}
	if (d->nl_fd < 0)
		vd_warn(d->who, "netlink: %s; the guest's link stays up",
			strerror(-d->nl_fd));
	atomic_store(&d->status, d->nl_fd < 0 || up ? VIRTIO_NET_S_LINK_UP : 0);

	d->model = (struct vd_model){
		.ops = &net_ops,
		.type_name = "net",
		.device_id = VIRTIO_ID_NET,
		.features = 0,
		.num_queues = (uint16_t)(2 * d->pairs + 1),
		.max_queue_size = (uint16_t)o->queue_size,
		.config_size = NET_CONFIG_SIZE,
		/* A 64 KiB frame in page-sized pieces, and the header. */
		.max_descs = 64 + 8,
		.max_desc_len = 65536,
	};
	d->model.features = net_offered(d, o);
	vd_info(d->who,
		"tap %s, %u queue pair(s), MTU %u, mac "
		"%02x:%02x:%02x:%02x:%02x:%02x, offloads 0x%x, link %s",
		d->ifname, d->pairs, d->mtu, d->filter.mac[0], d->filter.mac[1],
		d->filter.mac[2], d->filter.mac[3], d->filter.mac[4],
		d->filter.mac[5], d->tun_offloads,
		atomic_load(&d->status) & VIRTIO_NET_S_LINK_UP ? "up" : "down");
	*out = &d->model;
	return 0;
}

const struct vd_device_type vd_net_type = {
	.name = "net",
	.summary = "virtio-net over a tap interface",
	.device_id = VIRTIO_ID_NET,
	.options = net_options,
	/* A toolstack's virtio node names no tap: a configuration line or
	 * the command line does. */
	.backend_keys = NULL,
	.opts_new = net_opts_new,
	.opts_set = net_opts_set,
	.create = net_create,
	.opts_free = net_opts_free,
	/* --print-capabilities says "net" with the type named; without one,
	 * blk stays the conventions' default type. */
	.vhost_user_type = "",
};
