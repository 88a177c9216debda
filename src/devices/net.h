/* virtio-net over a tap (virtio 1.2 §5.1): what net.c (options, features,
 * config, queues), net_tap.c (the tap and its offloads), net_rx.c,
 * net_tx.c and net_ctrl.c share. Private to src/devices. */
#ifndef VIRTIOD_DEVICES_NET_H
#define VIRTIOD_DEVICES_NET_H

#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtiod/device.h"
#include "virtiod/iov.h"
#include "virtiod/log.h"

#define NET_PAIRS_MAX	   16
#define NET_QUEUE_SIZE_DEF 256
#define NET_QUEUE_SIZE_MIN 64
#define NET_MTU_MIN	   68
#define NET_MTU_MAX	   65535
/* Entries in each of the unicast and multicast filter tables
 * (VIRTIO_NET_CTRL_MAC_TABLE_SET); QEMU keeps 64 for both together. */
#define NET_MAC_TABLE_MAX 64
/* virtio 1.x header (num_buffers included); legacy without MRG_RXBUF: 10. */
#define NET_HDR_LEN 12
/* The largest frame a tap hands over: a 64 KiB GSO packet with its
 * Ethernet and VLAN headers. */
#define NET_GSO_FRAME_MAX (65535 + 14 + 4)
/* Packets a queue moves per round before it lets the loop look at its
 * other fds and the driver's kicks. */
#define NET_BUDGET 256

struct net_opts {
	char tap[16]; /* IFNAMSIZ */
	int tap_fd[NET_PAIRS_MAX];
	unsigned n_tap_fd;
	uint8_t mac[6];
	bool mac_set;
	unsigned pairs;
	unsigned mtu; /* 0: the tap's */
	unsigned queue_size;
	bool no_packed;
	bool no_offloads;
};

/* What a driver's control queue sets for receive (§5.1.6.5.1, .5.2). The
 * control queue's thread writes it under seq (odd while writing); receive
 * threads read it lock-free and retry if seq moved. */
struct net_filter {
	atomic_uint seq;
	bool promisc, allmulti, alluni, nomulti, nouni, nobcast;
	uint8_t mac[6];
	unsigned n_uni, n_multi;
	uint8_t uni[NET_MAC_TABLE_MAX][6];
	uint8_t multi[NET_MAC_TABLE_MAX][6];
};

/* Per-queue counters, written by the queue's thread only. */
struct net_stats {
	uint64_t packets, bytes;
	uint64_t dropped;   /* bad header, too small, tap refused */
	uint64_t filtered;  /* receive: not for us (RX mode, MAC table) */
	uint64_t truncated; /* receive: larger than the buffers posted */
	uint64_t starved;   /* receive: no buffer for a waiting packet */
	uint64_t held;	    /* receive: waited in the overflow for buffers */
};

struct net_dev;

/* A receive queue (virtqueue 2i). */
struct net_rxq {
	struct net_dev *d;
	unsigned pair;
	struct vd_queue *q;
	struct vd_vq *vq;
	const char *who;
	int fd;		 /* the pair's tap queue (owned by net_dev) */
	bool starved;	 /* waiting for buffers; the tap is not watched */
	bool mergeable;	 /* MRG_RXBUF */
	bool guest_csum; /* else header flags are cleared */
	unsigned hdr_len;
	size_t frame_max; /* largest frame plus header the tap can give */
	unsigned max_iov;
	/* Buffers popped for the next packet, in pop order. */
	struct vd_vq_elem **win;
	unsigned win_n, win_max;
	size_t win_bytes;
	struct iovec *iov; /* readv's array, VD_VQ_MAX_IOV + the overflow */
	/* Past the buffers, frame_max + 1 bytes: a frame larger than the
	 * buffers posted ends here and waits, whole, for more (pending
	 * bytes); one that fills it is cut. */
	uint8_t *over;
	size_t pending;
	struct vd_ratelimit rl;
	struct net_stats st;
};

/* A transmit queue (virtqueue 2i+1). */
struct net_txq {
	struct net_dev *d;
	unsigned pair;
	struct vd_queue *q;
	struct vd_vq *vq;
	const char *who;
	int fd;
	unsigned hdr_len;
	uint64_t features;
	struct vd_ratelimit rl;
	struct net_stats st;
};

struct net_dev {
	struct vd_model model;
	char who[64];
	char ifname[16];
	int ifindex;
	unsigned pairs; /* tap queues, one per pair */
	int fd[NET_PAIRS_MAX];
	bool multi_queue;      /* IFF_MULTI_QUEUE: queues attach and detach */
	unsigned tun_offloads; /* TUN_F_* the tap accepted when probed */
	unsigned mtu;

	/* config space fields; status is written by whoever sees the link
	 * change (queue 0's thread) or the driver's ANNOUNCE_ACK */
	atomic_ushort status;
	_Atomic uint64_t features; /* negotiated; 0 after reset */

	struct net_filter filter;

	/* Which tap queues are attached (TUNSETQUEUE): a pair serves while
	 * its receive queue runs and, once the driver runs a control queue,
	 * while the pair is below what VQ_PAIRS_SET chose. Under pairs_lock,
	 * taken only when a queue starts or stops and by the control queue. */
	pthread_mutex_t pairs_lock;
	bool rx_running[NET_PAIRS_MAX];
	bool attached[NET_PAIRS_MAX];
	bool ctrl_running;
	unsigned curr_pairs;
	/* control commands answered (the control queue's thread only) */
	uint64_t ctrl_ok, ctrl_refused;

	/* link changes (a netlink socket on queue 0's loop) */
	int nl_fd;
	struct vd_dev *dev; /* for config notifications, while q0 runs */

	struct vd_ratelimit rl;
};

static inline bool net_has(uint64_t features, unsigned bit)
{
	return features & (1ULL << bit);
}

/* ---- net_tap.c */
/* Opens (creating if missing) the tap with o->pairs queues, or adopts
 * o->tap_fd; sets the vnet header, probes the offloads. err says what
 * to do. */
int net_tap_open(struct net_dev *d, const struct net_opts *o, char *err,
		 size_t errlen);
void net_tap_close(struct net_dev *d);
/* TUNSETVNETHDRSZ and TUNSETOFFLOAD for the negotiated features. */
int net_tap_configure(struct net_dev *d, uint64_t features);
/* TUNSETOFFLOAD for a VIRTIO_NET_F_GUEST_* set. 0 or -errno. */
int net_tap_set_offloads(struct net_dev *d, uint64_t guest_features);
/* Attach or detach tap queue i (multi-queue taps only; else a no-op). */
int net_tap_attach(struct net_dev *d, unsigned i, bool on);
/* The MTU of the tap, or 0. */
unsigned net_tap_mtu(const struct net_dev *d);
int net_tap_set_mtu(struct net_dev *d, unsigned mtu);
/* Netlink: a socket subscribed to link changes; the current carrier. */
int net_link_open(void);
/* Reads what is queued on the socket; true if the tap's carrier changed,
 * *up is the new state. */
bool net_link_read(int fd, int ifindex, bool *up);
/* Asks for the tap's state (answered through net_link_read). */
int net_link_query(int fd, int ifindex);
/* A stable locally administered MAC from a name. */
void net_mac_from_name(const char *name, uint8_t mac[6]);

/* ---- net_rx.c */
int net_rx_start(struct net_dev *d, struct vd_queue *q, unsigned pair);
void net_rx_kick(struct net_rxq *rq);
void net_rx_stop(struct net_rxq *rq);
/* The filter's verdict on a destination address (lock-free read). */
bool net_filter_accepts(struct net_filter *f, const uint8_t dst[6]);

/* ---- net_tx.c */
int net_tx_start(struct net_dev *d, struct vd_queue *q, unsigned pair);
void net_tx_kick(struct net_txq *tq);
void net_tx_stop(struct net_txq *tq);
/* Checks a transmit header against the negotiated features and the
 * frame's length: NULL if the tap may take it, else why not. */
const char *net_tx_hdr_check(const struct virtio_net_hdr *h, uint64_t features,
			     size_t frame_len);

/* ---- net_ctrl.c */
void net_ctrl_kick(struct net_dev *d, struct vd_queue *q);
/* The filter as after reset: promiscuous (§5.1.6.5.1 leaves the default
 * to the device; QEMU's is promiscuous too), the device's MAC. */
void net_filter_reset(struct net_dev *d);
/* Recompute which tap queues are attached (after a queue start or stop,
 * VQ_PAIRS_SET, reset). */
void net_pairs_update(struct net_dev *d);

#endif
