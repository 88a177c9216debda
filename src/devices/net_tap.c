/* The tap behind virtio-net: opened or created (IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR, IFF_MULTI_QUEUE for several pairs), its vnet header and
 * offloads, queues attached and detached, MTU, and its carrier watched
 * through netlink. Nothing here touches guest memory. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"

#define TUN_PATH "/dev/net/tun"

void net_mac_from_name(const char *name, uint8_t mac[6])
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

	for (const char *p = name; *p; p++) {
		h ^= (uint8_t)*p;
		h *= 0x100000001b3ULL;
	}
	/* Unicast, locally administered (IEEE 802: bit 1 set, bit 0 clear). */
	mac[0] = 0x02;
	for (int i = 1; i < 6; i++)
		mac[i] = (uint8_t)(h >> (8 * (i - 1)));
}

static int tap_open_one(const char *name, bool multi, char *got, char *err,
			size_t errlen)
{
	struct ifreq ifr;
	int fd = open(TUN_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0) {
		int e = errno;

		snprintf(err, errlen,
			 "%s: %s (load the tun module, or give virtiod a tap "
			 "opened by a management tool with --tap-fd)",
			 TUN_PATH, strerror(e));
		return -e;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR |
			(multi ? IFF_MULTI_QUEUE : 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;

		if (e == EPERM)
			snprintf(err, errlen,
				 "tap %s: creating or attaching needs "
				 "CAP_NET_ADMIN, or a tap owned by this user "
				 "(ip tuntap add %s mode tap vnet_hdr%s user "
				 "UID), or --tap-fd",
				 name, name, multi ? " multi_queue" : "");
		else if (e == EINVAL)
			snprintf(err, errlen,
				 "tap %s exists with other flags (it must be a "
				 "tap with vnet_hdr%s): %s",
				 name,
				 multi ? " and multi_queue for --queue-pairs "
					 "above 1"
				       : " and without multi_queue",
				 strerror(e));
		else
			snprintf(err, errlen, "tap %s: TUNSETIFF: %s", name,
				 strerror(e));
		close(fd);
		return -e;
	}
	memcpy(got, ifr.ifr_name, IFNAMSIZ);
	got[IFNAMSIZ - 1] = '\0';
	return fd;
}

/* A tap handed over by a management tool: it must be a tap with a vnet
 * header, and multi-queue when there are several. */
static int tap_adopt(struct net_dev *d, const struct net_opts *o, char *err,
		     size_t errlen)
{
	for (unsigned i = 0; i < o->n_tap_fd; i++) {
		struct ifreq ifr;
		int fd = o->tap_fd[i], fl;

		memset(&ifr, 0, sizeof(ifr));
		if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
			snprintf(err, errlen,
				 "--tap-fd %d: not a tap (TUNGETIFF: %s)", fd,
				 strerror(errno));
			return -EINVAL;
		}
		if ((ifr.ifr_flags & (IFF_TAP | IFF_TUN)) != IFF_TAP ||
		    !(ifr.ifr_flags & IFF_VNET_HDR) ||
		    !(ifr.ifr_flags & IFF_NO_PI)) {
			snprintf(err, errlen,
				 "--tap-fd %d (%s): needs a tap opened with "
				 "IFF_TAP | IFF_NO_PI | IFF_VNET_HDR",
				 fd, ifr.ifr_name);
			return -EINVAL;
		}
		if (o->n_tap_fd > 1 && !(ifr.ifr_flags & IFF_MULTI_QUEUE)) {
			snprintf(err, errlen,
				 "--tap-fd %d (%s): several fds need a tap "
				 "opened with IFF_MULTI_QUEUE",
				 fd, ifr.ifr_name);
			return -EINVAL;
		}
		if (i == 0) {
			memcpy(d->ifname, ifr.ifr_name, IFNAMSIZ);
			d->ifname[IFNAMSIZ - 1] = '\0';
			d->multi_queue = ifr.ifr_flags & IFF_MULTI_QUEUE;
		} else if (strncmp(d->ifname, ifr.ifr_name, IFNAMSIZ) != 0) {
			snprintf(err, errlen,
				 "--tap-fd %d is %s, not %s like the first", fd,
				 ifr.ifr_name, d->ifname);
			return -EINVAL;
		}
		fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
		    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
			snprintf(err, errlen, "--tap-fd %d: %s", fd,
				 strerror(errno));
			return -EINVAL;
		}
		d->fd[i] = fd;
	}
	d->pairs = o->n_tap_fd;
	return 0;
}

/* Which TUN_F_* offloads the tap takes (older kernels refuse UFO). */
static unsigned probe_offloads(int fd)
{
	static const unsigned want[] = {
		TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN |
			TUN_F_UFO,
		TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN,
		TUN_F_CSUM,
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (ioctl(fd, TUNSETOFFLOAD, want[i]) == 0)
			return want[i];
	return 0;
}

int net_tap_open(struct net_dev *d, const struct net_opts *o, char *err,
		 size_t errlen)
{
	int hdr = NET_HDR_LEN, le = 1, r;
	struct ifreq ifr;
	int s;

	for (unsigned i = 0; i < NET_PAIRS_MAX; i++)
		d->fd[i] = -1;
	if (o->n_tap_fd) {
		r = tap_adopt(d, o, err, errlen);
		if (r < 0)
			return r;
	} else {
		d->multi_queue = o->pairs > 1;
		for (unsigned i = 0; i < o->pairs; i++) {
			char got[IFNAMSIZ];
			int fd = tap_open_one(i ? d->ifname : o->tap,
					      d->multi_queue, got, err, errlen);

			if (fd < 0) {
				net_tap_close(d);
				return fd;
			}
			d->fd[i] = fd;
			memcpy(d->ifname, got, IFNAMSIZ);
		}
		d->pairs = o->pairs;
	}
	/* Little-endian headers whatever the host (virtio 1.x); a kernel
	 * without TUNSETVNETLE is little-endian only, where it is moot. */
	ioctl(d->fd[0], TUNSETVNETLE, &le);
	if (ioctl(d->fd[0], TUNSETVNETHDRSZ, &hdr) < 0) {
		snprintf(err, errlen, "tap %s: TUNSETVNETHDRSZ: %s", d->ifname,
			 strerror(errno));
		net_tap_close(d);
		return -EINVAL;
	}
	d->tun_offloads = o->no_offloads ? 0 : probe_offloads(d->fd[0]);
	ioctl(d->fd[0], TUNSETOFFLOAD, 0u);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", d->ifname);
	if (s < 0 || ioctl(s, SIOCGIFINDEX, &ifr) < 0) {
		snprintf(err, errlen, "tap %s: interface index: %s", d->ifname,
			 strerror(errno));
		if (s >= 0)
			close(s);
		net_tap_close(d);
		return -EINVAL;
	}
	d->ifindex = ifr.ifr_ifindex;
	close(s);
	/* Every queue attached until the driver's queues say otherwise. */
	for (unsigned i = 0; i < d->pairs; i++)
		d->attached[i] = true;
	return 0;
}

void net_tap_close(struct net_dev *d)
{
	for (unsigned i = 0; i < NET_PAIRS_MAX; i++)
		if (d->fd[i] >= 0) {
			close(d->fd[i]);
			d->fd[i] = -1;
		}
}

int net_tap_set_offloads(struct net_dev *d, uint64_t f)
{
	unsigned t = 0;

	if (net_has(f, VIRTIO_NET_F_GUEST_CSUM))
		t |= TUN_F_CSUM;
	/* The kernel hands GSO packets over only with checksum offload. */
	if (t & TUN_F_CSUM) {
		if (net_has(f, VIRTIO_NET_F_GUEST_TSO4))
			t |= TUN_F_TSO4;
		if (net_has(f, VIRTIO_NET_F_GUEST_TSO6))
			t |= TUN_F_TSO6;
		if ((t & (TUN_F_TSO4 | TUN_F_TSO6)) &&
		    net_has(f, VIRTIO_NET_F_GUEST_ECN))
			t |= TUN_F_TSO_ECN;
		if (net_has(f, VIRTIO_NET_F_GUEST_UFO))
			t |= TUN_F_UFO;
	}
	t &= d->tun_offloads;
	if (ioctl(d->fd[0], TUNSETOFFLOAD, t) < 0)
		return -errno;
	return 0;
}

int net_tap_configure(struct net_dev *d, uint64_t f)
{
	/* virtio 1.x: always the 12-byte header; legacy: 10 without
	 * MRG_RXBUF (§5.1.6.1). */
	int hdr = net_has(f, VIRTIO_F_VERSION_1) ||
				  net_has(f, VIRTIO_NET_F_MRG_RXBUF)
			  ? NET_HDR_LEN
			  : (int)sizeof(struct virtio_net_hdr);

	if (ioctl(d->fd[0], TUNSETVNETHDRSZ, &hdr) < 0)
		return -errno;
	return net_tap_set_offloads(d, f);
}

int net_tap_attach(struct net_dev *d, unsigned i, bool on)
{
	struct ifreq ifr;

	if (!d->multi_queue || i >= d->pairs)
		return 0;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = on ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
	if (ioctl(d->fd[i], TUNSETQUEUE, &ifr) < 0)
		return -errno;
	return 0;
}

static int ifreq_ioctl(const struct net_dev *d, unsigned long req,
		       struct ifreq *ifr)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = 0;

	if (s < 0)
		return -errno;
	snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", d->ifname);
	if (ioctl(s, req, ifr) < 0)
		r = -errno;
	close(s);
	return r;
}

unsigned net_tap_mtu(const struct net_dev *d)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	if (ifreq_ioctl(d, SIOCGIFMTU, &ifr) < 0 || ifr.ifr_mtu <= 0)
		return 0;
	return (unsigned)ifr.ifr_mtu;
}

int net_tap_set_mtu(struct net_dev *d, unsigned mtu)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_mtu = (int)mtu;
	return ifreq_ioctl(d, SIOCSIFMTU, &ifr);
}

/* ---------------------------------------------------------------- link */

int net_link_open(void)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK,
				 .nl_groups = RTMGRP_LINK};
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
			NETLINK_ROUTE);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

int net_link_query(int fd, int ifindex)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
	} req = {
		.nh = {.nlmsg_len = sizeof(req),
		       .nlmsg_type = RTM_GETLINK,
		       .nlmsg_flags = NLM_F_REQUEST},
		.ifi = {.ifi_family = AF_UNSPEC, .ifi_index = ifindex},
	};

	if (send(fd, &req, sizeof(req), 0) < 0)
		return -errno;
	return 0;
}

bool net_link_read(int fd, int ifindex, bool *up)
{
	/* NLMSG_GOODSIZE: one datagram holds whole messages. */
	char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
	bool seen = false;

	for (int rounds = 0; rounds < 64; rounds++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n <= 0)
			break;
		for (struct nlmsghdr *nh = (struct nlmsghdr *)buf;
		     NLMSG_OK(nh, (size_t)n); nh = NLMSG_NEXT(nh, n)) {
			struct ifinfomsg *ifi;

			if (nh->nlmsg_type != RTM_NEWLINK ||
			    nh->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)))
				continue;
			ifi = NLMSG_DATA(nh);
			if (ifi->ifi_index != ifindex)
				continue;
			/* IFF_LOWER_UP: the carrier, on a running device. */
			*up = ifi->ifi_flags & IFF_LOWER_UP;
			seen = true;
		}
	}
	return seen;
}
