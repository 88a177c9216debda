/* virtio-rng and virtio-net served to a stand-in Xen guest through the
 * unmodified shim (the ioreq path, virtio-mmio, event channels, foreign
 * and grant mapping): the rng fills the guest's buffers; frames sent into
 * net's tap while the guest has posted no buffer wait in the tap and reach
 * the guest's receive buffers, header and bytes intact, once it posts some.
 * The net case runs in a network namespace of its own (root only). */
#include <linux/if.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "xtest.h"

#define DOMID 6
#define NBUF  8

extern const struct vd_device_type vd_rng_type;
extern const struct vd_device_type vd_net_type;

static struct vd_model *model_of(const struct vd_device_type *t,
				 const char *const *opts)
{
	struct vd_model *m = NULL;
	char err[256] = "";
	void *o = NULL;

	assert_int_equal(vd_device_type_opts_new(t, &o), 0);
	for (unsigned i = 0; opts && opts[i]; i += 2)
		assert_int_equal(vd_device_type_opts_set(t, o, opts[i],
							 opts[i + 1], err,
							 sizeof(err)),
				 0);
	if (t->create(o, &m, err, sizeof(err)) < 0)
		fail_msg("%s: %s", t->name, err);
	vd_device_type_opts_free(t, o);
	return m;
}

static struct sx_vdev *serve_and_probe(struct xt_server *srv,
				       struct vd_model *m, bool grant,
				       uint32_t id, uint64_t features)
{
	struct sx_vdev_opts o = {
		.domid = DOMID,
		.base = XT_BASE,
		.grant = grant,
		.features = (1ULL << VIRTIO_F_VERSION_1) |
			    (1ULL << VIRTIO_F_ACCESS_PLATFORM) | features,
		.queue_size = 64,
		.device_id = id,
	};
	struct sx_vdev *d = NULL;

	assert_int_equal(sx_domain_create(DOMID, SX_HVM, 2, 64), 0);
	assert_int_equal(
		xt_serve_start(srv, DOMID, XT_IRQ_X86,
			       grant ? VD_XEN_MEM_GRANT : VD_XEN_MEM_FOREIGN,
			       16, NULL, m),
		0);
	assert_int_equal(sx_vdev_probe(&o, &d), 0);
	return d;
}

static void finish(struct xt_server *srv, struct sx_vdev *d)
{
	assert_int_equal(xt_serve_stop(srv, VD_STOP), 0);
	sx_vdev_free(d);
	sx_domain_destroy(DOMID);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* NBUF device-writable buffers of len bytes each, filled with `fill`. */
static void raw_in_buffers(struct sx_vdev *d, struct sx_blk_io *io,
			   uint32_t len, uint8_t fill)
{
	uint8_t *ram = sx_guest_ram(DOMID);

	memset(io, 0, NBUF * sizeof(*io));
	for (unsigned i = 0; i < NBUF; i++) {
		uint64_t gpa = sx_vdev_alloc(d, len);

		memset(ram + gpa, fill, len);
		io[i].type = SX_IO_RAW_IN;
		io[i].nseg = 1;
		io[i].seg[0] = (struct sx_seg){gpa, len};
	}
}

static void rng_round(bool grant)
{
	struct xt_server srv;
	struct sx_vdev *d = serve_and_probe(&srv, model_of(&vd_rng_type, NULL),
					    grant, VIRTIO_ID_RNG, 0);
	struct sx_blk_io io[NBUF];
	uint8_t *ram = sx_guest_ram(DOMID);

	raw_in_buffers(d, io, 4096, 0);
	assert_int_equal(sx_blk_submit(d, 0, io, NBUF, 0), 0);
	for (unsigned i = 0; i < NBUF; i++) {
		assert_int_equal(io[i].used_len, 4096);
		assert_false(all_zero(ram + io[i].seg[0].gpa, 4096));
	}
	finish(&srv, d);
}

/* --rate through the Xen shim: requests beyond the bucket wait for the
 * queue loop's timer and are filled (in part) later, never failed. */
static void rng_rate_limited_requests_complete(void **state)
{
	static const char *const opts[] = {"rate", "2k", NULL};
	struct xt_server srv;
	struct sx_vdev *d = serve_and_probe(&srv, model_of(&vd_rng_type, opts),
					    false, VIRTIO_ID_RNG, 0);
	struct sx_blk_io io[NBUF];
	uint8_t *ram = sx_guest_ram(DOMID);
	unsigned total = 0;

	(void)state;
	raw_in_buffers(d, io, 512, 0);
	/* 4 KiB at 2000 bytes/s: most of it after the timer */
	assert_int_equal(sx_blk_submit(d, 0, io, NBUF, 0), 0);
	for (unsigned i = 0; i < NBUF; i++) {
		assert_in_range(io[i].used_len, 1, 512);
		assert_false(all_zero(ram + io[i].seg[0].gpa, io[i].used_len));
		total += io[i].used_len;
	}
	assert_true(total > 2000);
	finish(&srv, d);
}

static void rng_fills_buffers_foreign_mapping(void **state)
{
	(void)state;
	rng_round(false);
}

static void rng_fills_buffers_grant_mapping(void **state)
{
	(void)state;
	rng_round(true);
}

/* ------------------------------------------------------------ net */

static int ifreq_sock(const char *name, struct ifreq *ifr)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	memset(ifr, 0, sizeof(*ifr));
	snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", name);
	return s;
}

static void link_up(const char *name)
{
	struct ifreq ifr;
	int s = ifreq_sock(name, &ifr);
	char path[128];
	FILE *f;

	/* No IPv6 autoconfiguration frames among the ones counted. */
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6",
		 name);
	f = fopen(path, "w");
	if (f) {
		fputs("1", f);
		fclose(f);
	}
	assert_true(s >= 0);
	assert_int_equal(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	assert_int_equal(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
	close(s);
}

static void net_frames_wait_in_the_tap_until_buffers_come(bool grant)
{
	static const char *const opts[] = {"tap", "vdx0", NULL};
	uint8_t frame[NBUF][600], *ram;
	struct sockaddr_ll sll;
	struct sx_blk_io io[NBUF];
	struct xt_server srv;
	struct sx_vdev *d;
	struct ifreq ifr;
	int s;

	if (unshare(CLONE_NEWNET) < 0) {
		print_message("net: needs root for a network namespace: %s\n",
			      strerror(errno));
		skip();
	}
	d = serve_and_probe(&srv, model_of(&vd_net_type, opts), grant,
			    VIRTIO_ID_NET, 1ULL << VIRTIO_NET_F_MAC);
	ram = sx_guest_ram(DOMID);
	link_up("vdx0");
	/* Frames first: the guest has posted no buffer, the tap holds them. */
	s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	close(ifreq_sock("vdx0", &ifr));
	int is = ifreq_sock("vdx0", &ifr);
	assert_int_equal(ioctl(is, SIOCGIFINDEX, &ifr), 0);
	close(is);
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = ifr.ifr_ifindex;
	sll.sll_halen = 6;
	for (unsigned i = 0; i < NBUF; i++) {
		size_t len = 60 + i * 64;

		memset(frame[i], 0xff, 6); /* broadcast */
		memcpy(frame[i] + 6, "\x02\x00\x00\x00\x00\x09", 6);
		frame[i][12] = 0x88;
		frame[i][13] = 0xb5;
		for (size_t k = 14; k < len; k++)
			frame[i][k] = (uint8_t)(k * 7 + i);
		assert_int_equal(sendto(s, frame[i], len, 0,
					(struct sockaddr *)&sll, sizeof(sll)),
				 (ssize_t)len);
	}
	close(s);
	usleep(100 * 1000);
	/* Now the receive buffers. */
	raw_in_buffers(d, io, 2048, 0xee);
	assert_int_equal(sx_blk_submit(d, 0, io, NBUF, 0), 0);
	for (unsigned i = 0; i < NBUF; i++) {
		const uint8_t *p = ram + io[i].seg[0].gpa;
		struct virtio_net_hdr_mrg_rxbuf h;
		size_t len = 60 + i * 64;

		memcpy(&h, p, sizeof(h));
		assert_int_equal(io[i].used_len, sizeof(h) + len);
		assert_int_equal(h.hdr.flags, 0);
		assert_int_equal(h.hdr.gso_type, VIRTIO_NET_HDR_GSO_NONE);
		assert_int_equal(le16toh(h.num_buffers), 1);
		assert_memory_equal(p + sizeof(h), frame[i], len);
	}
	finish(&srv, d);
}

static void net_receive_foreign_mapping(void **state)
{
	(void)state;
	net_frames_wait_in_the_tap_until_buffers_come(false);
}

static void net_receive_grant_mapping(void **state)
{
	(void)state;
	net_frames_wait_in_the_tap_until_buffers_come(true);
}

static int group_setup(void **state)
{
	(void)state;
	vd_log_set_level(VD_LOG_WARN);
	sx_init(SX_X86);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rng_fills_buffers_foreign_mapping),
		cmocka_unit_test(rng_fills_buffers_grant_mapping),
		cmocka_unit_test(rng_rate_limited_requests_complete),
		cmocka_unit_test(net_receive_foreign_mapping),
		cmocka_unit_test(net_receive_grant_mapping),
	};

	return cmocka_run_group_tests_name("xen net and rng", tests,
					   group_setup, NULL);
}
