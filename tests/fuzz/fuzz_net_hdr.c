/* libFuzzer target for virtio-net: the real net model on a tap in the
 * fuzzer's own network namespace (root), served through the core's queue
 * threads, the test driver's rings in canary-fenced guest memory. The
 * input sends transmit chains (any vnet header: flags, gso_type, hdr_len,
 * gso_size, csum_start/offset, num_buffers; chains cut anywhere, shorter
 * than the header, with writable parts), posts receive buffers of any size
 * (MRG_RXBUF or not) and feeds frames into the tap, and sends control
 * commands (RX mode, MAC table, announce, MQ pairs, offloads) with hostile
 * lengths. Checked: nothing outside guest memory is written; a
 * transmit chain comes back with 0 bytes, a control command with its ack
 * (0 or 1) as the last writable byte and nothing else; a received frame is
 * the frame sent, with num_buffers saying how many buffers it took; a
 * plain frame reaches the tap unchanged. */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/if.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fz_input.h"
#include "test_driver.h"
#include "virtiod/device.h"
#include "virtiod/log.h"

extern const struct vd_device_type vd_net_type;

#define MEM_SIZE (4u << 20)
#define QNUM	 64
#define MAXQ	 5
#define HDR	 12
#define SENTINEL 0xee
#define ETYPE_HI 0x88 /* 0x88b5: IEEE local experimental */
#define ETYPE_LO 0xb5
#define MAX_TX	 16
#define MAX_RX	 32
#define MAX_CTL	 8
#define MAX_IN	 8
#define WAIT_MS	 5000

/* One chain the fuzzer made available: its buffers and what came back. */
struct chain {
	struct td_buf b[6];
	unsigned n, q;
	bool used;
	uint32_t used_len;
	bool plain; /* tx: a header a tap passes as is */
	uint64_t write_len;
};

static int pkt = -1, call_fd = -1;
static struct chain tx[MAX_TX], rx[MAX_RX], ctl[MAX_CTL];
static unsigned ntx, nrx, nctl;
static uint8_t in_frames[MAX_IN][1600];
static size_t in_len[MAX_IN];
static unsigned nin;
static uint8_t out_frames[MAX_TX][1600];
static size_t out_len[MAX_TX];

static void die(const char *what)
{
	fprintf(stderr, "fuzz_net_hdr: %s\n", what);
	abort();
}

static void notify_queue(void *shim, struct vd_queue *q)
{
	uint64_t one = 1;

	(void)shim;
	(void)q;
	if (write(call_fd, &one, sizeof(one)) < 0) {
		/* the counter cannot overflow between reads */
	}
}

static void notify_config(void *shim)
{
	(void)shim;
}

static const struct vd_dev_shim_ops shim_ops = {
	.notify_queue = notify_queue,
	.notify_config = notify_config,
};

/* Two persistent taps, one per queue-pair count (a multi-queue tap is
 * attached only with IFF_MULTI_QUEUE): made once, since tearing a tap
 * down waits for the kernel's RCU grace periods (tens of ms). */
static const char *const taps[2] = {"vdf1", "vdf2"};
static int tap_index[2];

static int if_up(const char *name)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(pkt, SIOCGIFFLAGS, &ifr) < 0)
		die("SIOCGIFFLAGS");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(pkt, SIOCSIFFLAGS, &ifr) < 0)
		die("SIOCSIFFLAGS");
	if (ioctl(pkt, SIOCGIFINDEX, &ifr) < 0)
		die("SIOCGIFINDEX");
	return ifr.ifr_ifindex;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	FILE *fp;

	(void)argc;
	(void)argv;
	vd_log_set_level(VD_LOG_ERR);
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr,
			"fuzz_net_hdr: needs root for a network namespace "
			"of its own (unshare: %s)\n",
			strerror(errno));
		exit(1);
	}
	/* No IPv6 chatter on the taps made from now on. */
	fp = fopen("/proc/sys/net/ipv6/conf/default/disable_ipv6", "w");
	if (fp) {
		fputs("1", fp);
		fclose(fp);
	}
	pkt = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
		     htons(ETH_P_ALL));
	call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (pkt < 0 || call_fd < 0)
		die("packet socket / eventfd");
	for (unsigned i = 0; i < 2; i++) {
		struct ifreq ifr;
		int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", taps[i]);
		ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR |
				(i ? IFF_MULTI_QUEUE : 0);
		if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0 ||
		    ioctl(fd, TUNSETPERSIST, 1) < 0)
			die("a persistent tap (/dev/net/tun)");
		close(fd);
		tap_index[i] = if_up(taps[i]);
	}
	return 0;
}

static struct vd_model *model_new(unsigned pairs)
{
	char np[4];
	const char *opts[][2] = {{"tap", taps[pairs - 1]},
				 {"mac", "02:11:22:33:44:55"},
				 {"queue-pairs", np}};
	struct vd_model *m = NULL;
	char err[256];
	void *o = NULL;

	snprintf(np, sizeof(np), "%u", pairs);
	if (vd_device_type_opts_new(&vd_net_type, &o) < 0)
		die("opts_new");
	for (unsigned i = 0; i < 3; i++)
		if (vd_device_type_opts_set(&vd_net_type, o, opts[i][0],
					    opts[i][1], err, sizeof(err)) < 0)
			die(err);
	if (vd_net_type.create(o, &m, err, sizeof(err)) < 0)
		die(err);
	vd_device_type_opts_free(&vd_net_type, o);
	return m;
}

static uint64_t alloc(struct td_mem *m, uint32_t len, uint8_t fill)
{
	uint64_t gpa = td_mem_alloc(m, len ? len : 1, 1);

	if (gpa)
		memset(td_mem_hva(m, gpa), fill, len ? len : 1);
	return gpa;
}

/* bytes[0..len) cut into 1..4 readable descriptors at input-chosen
 * points, maybe with a writable one after (a bad transmit chain). */
static bool cut(struct input *in, struct td_mem *m, const uint8_t *bytes,
		uint32_t len, struct chain *c)
{
	uint8_t k = fz_take8(in);
	unsigned parts = 1 + (k & 3);
	uint32_t at = 0;

	c->n = 0;
	for (unsigned i = 0; i < parts && (at < len || i == 0); i++) {
		uint32_t n = i + 1 == parts ? len - at
					    : fz_take8(in) % (len - at + 1);
		uint64_t g = alloc(m, n, 0);

		if (!g)
			return false;
		memcpy(td_mem_hva(m, g), bytes + at, n);
		c->b[c->n++] = (struct td_buf){g, n, false};
		at += n;
	}
	if (k & 0x80) {
		uint64_t g = alloc(m, 16, SENTINEL);

		if (!g)
			return false;
		c->b[c->n++] = (struct td_buf){g, 16, true};
		c->write_len = 16;
	}
	return true;
}

/* A frame: to us, broadcast, multicast or elsewhere; tag in bytes 14-15. */
static size_t frame(struct input *in, uint8_t *p, unsigned tag)
{
	static const uint8_t dsts[4][6] = {
		{0x02, 0x11, 0x22, 0x33, 0x44, 0x55},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01},
		{0x02, 0x99, 0x00, 0x00, 0x00, 0x01}};
	uint8_t k = fz_take8(in);
	size_t len = 16 + (k & 0x80 ? fz_take16(in) % 1500 : fz_take8(in));

	memcpy(p, dsts[k & 3], 6);
	memcpy(p + 6, "\x02\x00\x00\x00\x00\x09", 6);
	p[12] = ETYPE_HI;
	p[13] = ETYPE_LO;
	p[14] = (uint8_t)tag;
	p[15] = (uint8_t)(tag >> 8);
	for (size_t i = 16; i < len; i++)
		p[i] = (uint8_t)(i * 13 + tag);
	return len;
}

static void op_tx(struct input *in, struct td_mem *m, struct td_vq **vq,
		  unsigned pairs)
{
	struct virtio_net_hdr_mrg_rxbuf h;
	uint8_t buf[HDR + 1600];
	struct chain *c = &tx[ntx];
	uint8_t k = fz_take8(in);
	size_t flen;
	uint32_t len;

	memset(&h, 0, sizeof(h));
	if (k & 1) {
		h.hdr.flags = fz_take8(in);
		h.hdr.gso_type = fz_take8(in);
		h.hdr.hdr_len = htole16(fz_take16(in));
		h.hdr.gso_size = htole16(fz_take16(in));
		h.hdr.csum_start = htole16(fz_take16(in) % 1600);
		h.hdr.csum_offset = htole16(fz_take8(in));
		h.num_buffers = htole16(fz_take16(in));
	}
	memset(c, 0, sizeof(*c));
	c->plain = !(k & 1) || (!h.hdr.flags && !h.hdr.gso_type);
	flen = frame(in, buf + HDR, ntx);
	memcpy(buf, &h, HDR);
	/* Sometimes short of the header, or of the Ethernet header. */
	len = (uint32_t)(HDR + flen);
	if (k & 2)
		len = fz_take8(in) % (HDR + 15);
	memcpy(out_frames[ntx], buf + HDR, flen);
	out_len[ntx] = len == HDR + flen ? flen : 0;
	if (!cut(in, m, buf, len, c))
		return;
	c->q = 2 * ((k >> 4) % pairs) + 1;
	if (td_vq_add(vq[c->q], c->b, c->n, (k & 4) && c->n > 1, c) < 0)
		return;
	ntx++;
}

static void op_rx_post(struct input *in, struct td_mem *m, struct td_vq **vq,
		       unsigned pairs)
{
	uint8_t k = fz_take8(in);
	unsigned n = 1 + (k & 3);

	for (unsigned i = 0; i < n && nrx < MAX_RX; i++) {
		struct chain *c = &rx[nrx];
		uint8_t s = fz_take8(in);
		uint32_t len = s & 0x80 ? 2048 : s & 0x40 ? 256 : s % 32;
		uint64_t g = alloc(m, len, SENTINEL);

		if (!g)
			return;
		memset(c, 0, sizeof(*c));
		c->b[c->n++] = (struct td_buf){g, len, !(s & 0x20 && s & 1)};
		c->write_len = c->b[0].write ? len : 0;
		c->q = 2 * ((k >> 4) % pairs);
		if (td_vq_add(vq[c->q], c->b, c->n, false, c) < 0)
			return;
		nrx++;
	}
}

static void op_rx_frame(struct input *in, int ifindex)
{
	struct sockaddr_ll sll = {.sll_family = AF_PACKET,
				  .sll_ifindex = ifindex,
				  .sll_halen = 6};

	in_len[nin] = frame(in, in_frames[nin], 0x100 + nin);
	if (sendto(pkt, in_frames[nin], in_len[nin], 0, (struct sockaddr *)&sll,
		   sizeof(sll)) < 0)
		in_len[nin] = 0;
	nin++;
}

static void op_ctrl(struct input *in, struct td_mem *m, struct td_vq *cvq,
		    unsigned ctrlq)
{
	static const uint8_t cmds[][2] = {
		{VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC},
		{VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI},
		{VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOBCAST},
		{VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET},
		{VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET},
		{VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK},
		{VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET},
		{VIRTIO_NET_CTRL_GUEST_OFFLOADS,
		 VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET}};
	struct chain *c = &ctl[nctl];
	uint8_t cmd[2 + 1024];
	uint8_t k = fz_take8(in);
	uint32_t len = 2;

	if (k & 0x80) {
		cmd[0] = fz_take8(in);
		cmd[1] = fz_take8(in);
	} else {
		cmd[0] = cmds[k & 7][0];
		cmd[1] = cmds[k & 7][1];
	}
	switch ((k >> 3) & 3) {
	case 0: /* a flag, a u16, a MAC: small exact payloads */
		len += 1 + fz_take8(in) % 8;
		break;
	case 1: /* a MAC table: counts from the input, entries or not */
	{
		uint32_t n1 = (uint32_t)fz_take(in, 4) % 70, n2;

		n2 = k & 0x20 ? (uint32_t)fz_take(in, 4) : n1 % 3;
		memcpy(cmd + len, &n1, 4);
		len += 4 + 6 * (n1 % 20);
		memcpy(cmd + len, &n2, 4);
		len += 4 + 6 * (n2 % 20);
		break;
	}
	case 2: /* large */
		len += fz_take16(in) % 1024;
		break;
	default:
		break;
	}
	for (uint32_t i = 2; i < len && !((k >> 3 & 3) == 1); i++)
		cmd[i] = fz_take8(in);
	memset(c, 0, sizeof(*c));
	if (!cut(in, m, cmd, len, c))
		return;
	/* The ack: one byte, none, or a wider buffer. */
	if (c->n < 6 && !c->write_len) {
		uint8_t a = fz_take8(in) % 4;
		uint32_t al = a == 0 ? 1 : a == 1 ? 0 : 1 + a * 3;
		uint64_t g = alloc(m, al, SENTINEL);

		if (!g)
			return;
		c->b[c->n++] = (struct td_buf){g, al, true};
		c->write_len = al;
	}
	c->q = ctrlq;
	if (td_vq_add(cvq, c->b, c->n, (k & 0x40) && c->n > 1, c) < 0)
		return;
	nctl++;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Used entries in ring order per queue; rx order is kept for merging. */
static struct chain *rx_order[MAX_RX];

static unsigned drain(struct td_vq **vq, unsigned nq, unsigned *nrx_used)
{
	unsigned got = 0;

	for (unsigned q = 0; q < nq; q++) {
		void *tok;
		uint32_t len;
		int rc;

		if (!vq[q])
			continue;
		while ((rc = td_vq_get_used(vq[q], &tok, &len)) == 1) {
			struct chain *c = tok;

			if (c->used)
				die("a chain was used twice");
			if (c->q != q)
				die("a chain came back on another queue");
			c->used = true;
			c->used_len = len;
			if (c >= rx && c < rx + MAX_RX)
				rx_order[(*nrx_used)++] = c;
			got++;
		}
		if (rc < 0)
			die("the device used an id it was not given");
	}
	return got;
}

/* Bytes [from, to) of a chain's writable buffers still hold SENTINEL. */
static bool untouched(struct td_mem *m, const struct chain *c, uint64_t from,
		      uint64_t to)
{
	uint64_t pos = 0;

	for (unsigned i = 0; i < c->n; i++) {
		const uint8_t *p;

		if (!c->b[i].write)
			continue;
		p = td_mem_hva(m, c->b[i].gpa);
		for (uint32_t j = 0; j < c->b[i].len; j++, pos++)
			if (pos >= from && pos < to && p[j] != SENTINEL)
				return false;
	}
	return true;
}

static void check_ctl(struct td_mem *m)
{
	for (unsigned i = 0; i < nctl; i++) {
		struct chain *c = &ctl[i];
		uint8_t ack = 0;
		uint64_t pos = 0;

		if (!c->used)
			continue;
		if (!c->write_len) {
			if (c->used_len)
				die("a control command without an ack buffer "
				    "reports bytes written");
			continue;
		}
		if (c->used_len != c->write_len)
			die("a control command's used length is not its "
			    "writable length");
		for (unsigned j = 0; j < c->n; j++) {
			if (!c->b[j].write)
				continue;
			if (pos + c->b[j].len == c->write_len && c->b[j].len)
				ack = *((uint8_t *)td_mem_hva(m, c->b[j].gpa) +
					c->b[j].len - 1);
			pos += c->b[j].len;
		}
		if (ack != VIRTIO_NET_OK && ack != VIRTIO_NET_ERR)
			die("the ack is not the last writable byte");
		if (!untouched(m, c, 0, c->write_len - 1))
			die("a control command wrote more than its ack");
	}
}

static void check_tx(struct td_mem *m)
{
	for (unsigned i = 0; i < ntx; i++) {
		if (tx[i].used && tx[i].used_len)
			die("a transmit chain reports bytes written");
		if (!untouched(m, &tx[i], 0, tx[i].write_len))
			die("a transmit chain's writable part was written");
	}
}

static void check_rx(struct td_mem *m, unsigned nused, bool mrg)
{
	for (unsigned i = 0; i < nused; i++) {
		struct chain *c = rx_order[i];
		struct virtio_net_hdr_mrg_rxbuf h;
		uint8_t f[HDR + 2048 * MAX_RX];
		size_t flen = 0;
		uint16_t nb;
		unsigned tag;

		/* Past the used length the device may have written (§2.7.8.2
		 * makes len a lower bound: a frame the filter or a size
		 * check dropped lands in the buffers before it is judged);
		 * the canaries catch anything outside them. */
		if (c->used_len == 0)
			continue;
		if (c->used_len < HDR)
			die("a receive buffer shorter than the vnet header "
			    "was filled");
		memcpy(&h, td_mem_hva(m, c->b[0].gpa), HDR);
		nb = le16toh(h.num_buffers);
		if (nb == 0 || (!mrg && nb != 1))
			die("num_buffers is 0, or not 1 without MRG_RXBUF");
		memcpy(f, (uint8_t *)td_mem_hva(m, c->b[0].gpa) + HDR,
		       c->used_len - HDR);
		flen = c->used_len - HDR;
		/* The frame's other buffers follow on the same queue. */
		for (unsigned j = i + 1, k = 1; k < nb; j++) {
			if (j >= nused)
				die("num_buffers names buffers never used");
			if (rx_order[j]->q != c->q)
				continue;
			if (rx_order[j]->used_len == 0 ||
			    flen + rx_order[j]->used_len > sizeof(f))
				die("a merged frame's buffer is empty");
			memcpy(f + flen, td_mem_hva(m, rx_order[j]->b[0].gpa),
			       rx_order[j]->used_len);
			flen += rx_order[j]->used_len;
			rx_order[j]->used_len = 0; /* consumed */
			k++;
		}
		if (flen < 16 || f[12] != ETYPE_HI || f[13] != ETYPE_LO)
			continue; /* the kernel's own frames */
		tag = f[14] | f[15] << 8;
		if (tag < 0x100 || tag - 0x100 >= nin)
			die("a received frame nobody sent");
		if (flen != in_len[tag - 0x100] ||
		    memcmp(f, in_frames[tag - 0x100], flen))
			die("a received frame differs from the frame sent");
	}
}

static void check_tap(void)
{
	uint8_t f[2048];
	struct sockaddr_ll sll;
	socklen_t sl = sizeof(sll);
	ssize_t n;

	while ((n = recvfrom(pkt, f, sizeof(f), 0, (struct sockaddr *)&sll,
			     &sl)) >= 0) {
		unsigned tag;

		sl = sizeof(sll);
		if (sll.sll_pkttype == PACKET_OUTGOING || n < 16 ||
		    f[12] != ETYPE_HI || f[13] != ETYPE_LO)
			continue;
		tag = f[14] | f[15] << 8;
		if (tag >= 0x100)
			continue;
		if (tag >= ntx)
			die("a frame on the tap nobody sent");
		if (tx[tag].write_len)
			die("a chain with writable parts reached the tap");
		if (tx[tag].plain && out_len[tag] &&
		    ((size_t)n != out_len[tag] ||
		     memcmp(f, out_frames[tag], (size_t)n)))
			die("a plain frame reached the tap changed");
	}
}

/* Input: a flags byte (pairs, layout, offered features kept or dropped),
 * then operations: transmit, post receive buffers, a frame into the tap,
 * a control command. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size};
	uint8_t flags = fz_take8(&in);
	unsigned pairs = 1 + (flags & 1), ap, nq, ctrlq, nused = 0, ops = 0;
	bool packed = flags & 2;
	struct td_vq *vq[MAXQ] = {NULL};
	int kick[MAXQ] = {-1, -1, -1, -1, -1};
	struct vd_model *model;
	struct vd_dev *dev;
	struct td_mem *m;
	uint64_t f, one = 1, v, deadline, quiet;
	uint8_t st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	uint8_t junk[2048];
	int ifindex;

	ntx = nrx = nctl = nin = 0;
	while (recv(pkt, junk, sizeof(junk), 0) >= 0)
		;
	while (read(call_fd, &v, sizeof(v)) == sizeof(v))
		;
	model = model_new(pairs);
	ifindex = tap_index[pairs - 1];
	m = td_mem_new(MEM_SIZE, 1 + (flags >> 6) % 3);
	dev = vd_dev_new(model, td_mem_vd(m), &shim_ops, NULL, "fuzz-net");
	if (!dev)
		die("vd_dev_new");
	f = vd_dev_device_features(dev);
	if (!packed)
		f &= ~(1ULL << VIRTIO_F_RING_PACKED);
	if (!(flags & 4))
		f &= ~(1ULL << VIRTIO_NET_F_GUEST_TSO4 |
		       1ULL << VIRTIO_NET_F_GUEST_TSO6 |
		       1ULL << VIRTIO_NET_F_GUEST_ECN |
		       1ULL << VIRTIO_NET_F_GUEST_UFO);
	if (flags & 8)
		f &= ~(1ULL << VIRTIO_NET_F_MRG_RXBUF);
	if (flags & 16)
		f &= ~(1ULL << VIRTIO_RING_F_EVENT_IDX);
	if (flags & 32)
		f &= ~(1ULL << VIRTIO_NET_F_CSUM |
		       1ULL << VIRTIO_NET_F_GUEST_CSUM);
	if (!(f & (1ULL << VIRTIO_NET_F_CTRL_VQ)))
		die("net offers no control queue");
	if (vd_dev_set_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE) ||
	    vd_dev_set_status(dev, st) || vd_dev_set_driver_features(dev, f))
		die("feature negotiation");
	st |= VIRTIO_CONFIG_S_FEATURES_OK;
	if (vd_dev_set_status(dev, st))
		die("FEATURES_OK");
	ap = f & (1ULL << VIRTIO_NET_F_MQ) ? pairs : 1;
	ctrlq = f & (1ULL << VIRTIO_NET_F_MQ) ? 2 * pairs : 2;
	nq = ctrlq + 1;
	for (unsigned q = 0; q < nq; q++) {
		struct vd_queue_setup s;

		if (q >= 2 * ap && q != ctrlq)
			continue;
		vq[q] = td_vq_new(m, packed ? VD_VQ_PACKED : VD_VQ_SPLIT, QNUM,
				  f & (1ULL << VIRTIO_RING_F_EVENT_IDX),
				  f & (1ULL << VIRTIO_RING_F_INDIRECT_DESC));
		memset(&s, 0, sizeof(s));
		td_vq_fill_config(vq[q], &s.vq);
		s.vq.max_iov = 0;
		kick[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (kick[q] < 0)
			die("eventfd");
		s.kick_fd = kick[q];
		td_vq_enable_cb(vq[q]);
		if (vd_queue_start(vd_dev_queue(dev, q), &s))
			die("queue start");
	}
	if (vd_dev_set_status(dev, st | VIRTIO_CONFIG_S_DRIVER_OK))
		die("DRIVER_OK");
	while (in.n && ops++ < 48) {
		switch (fz_take8(&in) % 4) {
		case 0:
			if (ntx < MAX_TX)
				op_tx(&in, m, vq, ap);
			break;
		case 1:
			op_rx_post(&in, m, vq, ap);
			break;
		case 2:
			if (nin < MAX_IN)
				op_rx_frame(&in, ifindex);
			break;
		default:
			if (nctl < MAX_CTL)
				op_ctrl(&in, m, vq[ctrlq], ctrlq);
			break;
		}
		for (unsigned q = 0; q < nq; q++)
			if (kick[q] >= 0 &&
			    write(kick[q], &one, sizeof(one)) < 0)
				die("kick");
	}
	/* Transmit and control chains all come back (or the device asks for a
	 * reset); receive buffers fill while frames arrive. */
	deadline = now_ms() + WAIT_MS;
	/* Frames sent in: a few ms for them to land in the buffers. */
	quiet = nin ? now_ms() + 5 : 0;
	for (;;) {
		struct pollfd p = {.fd = call_fd, .events = POLLIN};
		unsigned left = 0;

		if (drain(vq, nq, &nused))
			/* Frames sent in: a few ms for them to land in the
			 * buffers. */
			quiet = nin ? now_ms() + 5 : 0;
		for (unsigned i = 0; i < ntx; i++)
			left += !tx[i].used;
		for (unsigned i = 0; i < nctl; i++)
			left += !ctl[i].used;
		if (vd_dev_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET)
			break;
		if (!left && now_ms() > quiet)
			break;
		if (now_ms() > deadline)
			die("transmit or control chains never came back");
		poll(&p, 1, 5);
		if (read(call_fd, &v, sizeof(v)) < 0) {
			/* EAGAIN: look at the rings again */
		}
	}
	vd_dev_free(dev); /* stops the queues, closes the tap */
	drain(vq, nq, &nused);
	if (!td_mem_canary_ok(m))
		die("a write landed outside guest memory");
	check_tx(m);
	check_ctl(m);
	check_rx(m, nused, f & (1ULL << VIRTIO_NET_F_MRG_RXBUF));
	check_tap();
	for (unsigned q = 0; q < MAXQ; q++) {
		if (vq[q])
			td_vq_free(vq[q]);
		if (kick[q] >= 0)
			close(kick[q]);
	}
	td_mem_free(m);
	return 0;
}
