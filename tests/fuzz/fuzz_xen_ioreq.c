/* libFuzzer target for the Xen shim's ioreq handling: the unmodified
 * vd_xen_serve (IOREQ server, ioreq dispatch, virtio-mmio, mapping cache or
 * grants, a blk model on the sync engine) against the stand-in hypervisor.
 * The input shapes guest memory and sends ioreqs of any type, direction,
 * address, size, count, df and data_is_ptr from any vCPU, with INVALIDATE
 * and spurious events between them. Every ioreq must be answered (a vCPU
 * left blocked is a finding), answers must be what the shim promises
 * (all-ones for what it does not emulate, a data_is_ptr address handed
 * back untouched), and afterwards a Linux-like driver must still probe the
 * device and move data through it. */
#include <errno.h>
#include <stdint.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xen/hvm/ioreq.h>

#include "fz_input.h"
#include "xtest.h"

#define NDOMS	  2
#define RAM_MIB	  16
#define SHAPE_END (1u << 20) /* the input writes guest memory below this */
#define OPS_MAX	  96
/* Linux grant-dma: bit 63 marks a grant reference (frame = ref). */
#define GRANT_BIT (1ULL << 63)

struct dom {
	uint32_t domid;
	bool grant;
	unsigned vcpus;
	struct xt_server srv;
	int id;	       /* IOREQ server */
	uint32_t ref0; /* first grant of the shaped frames */
};

static struct dom doms[NDOMS] = {
	{.domid = 5, .grant = false, .vcpus = 2},
	{.domid = 6, .grant = true, .vcpus = 1},
};
static unsigned long long probes;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_xen_ioreq: %s\n", what);
	abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const opts[] = {"io-engine=sync", NULL};
	char *state = NULL;

	(void)argc;
	(void)argv;
	vd_log_set_level(VD_LOG_ERR);
	sx_init(SX_X86);
	state = xt_tmpdir();
	if (!state)
		die("state dir");
	for (unsigned i = 0; i < NDOMS; i++) {
		struct dom *d = &doms[i];
		char img[64];
		struct vd_model *m;
		int fd;

		if (sx_domain_create(d->domid, SX_HVM, d->vcpus, RAM_MIB))
			die("domain");
		fd = xt_image(img, sizeof(img));
		if (fd < 0)
			die("image");
		m = xt_blk_model_opts(img, opts);
		unlink(img);
		close(fd);
		if (!m)
			die("blk model");
		if (xt_serve_start(&d->srv, d->domid, XT_IRQ_X86,
				   d->grant ? VD_XEN_MEM_GRANT
					    : VD_XEN_MEM_FOREIGN,
				   d->grant ? 0 : 1, state, m))
			die("serve");
		d->id = sx_server_for(d->domid, XT_BASE);
		if (d->id < 0)
			die("no server");
		if (d->grant) {
			int r = sx_grant(d->domid, 0, SHAPE_END >> 12, false);

			if (r < 0)
				die("grant");
			d->ref0 = (uint32_t)r;
		}
	}
	return 0;
}

static uint64_t ones(uint32_t size)
{
	return size >= 1 && size < 8 ? (1ULL << (size * 8)) - 1 : ~0ULL;
}

/* A ring or buffer address for this guest: a gpa in the shaped area, or
 * for grant guests the grant reference of that frame (bit 63), or wild. */
static uint64_t guest_addr(struct dom *d, struct input *in)
{
	uint8_t k = fz_take8(in);
	uint64_t off = fz_take(in, 3) % SHAPE_END;

	if (k & 0x80)
		return fz_take(in, 8);
	if (!d->grant)
		return off;
	return GRANT_BIT | ((uint64_t)(d->ref0 + (off >> 12)) << 12) |
	       (off & 0xfff);
}

/* Registers the probe sequence touches, so sequences reach setup. */
static const uint16_t hot[] = {
	VIRTIO_MMIO_STATUS,	      VIRTIO_MMIO_DEVICE_FEATURES_SEL,
	VIRTIO_MMIO_DRIVER_FEATURES,  VIRTIO_MMIO_DRIVER_FEATURES_SEL,
	VIRTIO_MMIO_QUEUE_SEL,	      VIRTIO_MMIO_QUEUE_NUM,
	VIRTIO_MMIO_QUEUE_DESC_LOW,   VIRTIO_MMIO_QUEUE_AVAIL_LOW,
	VIRTIO_MMIO_QUEUE_USED_LOW,   VIRTIO_MMIO_QUEUE_READY,
	VIRTIO_MMIO_QUEUE_NOTIFY,     VIRTIO_MMIO_INTERRUPT_ACK,
	VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_CONFIG_GENERATION,
	VIRTIO_MMIO_QUEUE_DESC_HIGH,  0x100,
};

static void send(struct dom *d, unsigned v, struct ioreq *rq)
{
	struct ioreq sent = *rq;
	bool emulated;
	int rc = sx_ioreq(d->domid, d->id, v, rq);

	if (rc)
		die(rc == -ETIMEDOUT ? "an ioreq was never answered"
				     : "ioreq not delivered");
	emulated = sent.type == IOREQ_TYPE_COPY && !sent.data_is_ptr &&
		   sent.count == 1 && sent.addr >= XT_BASE &&
		   sent.addr - XT_BASE < 0x200 &&
		   sent.size <= 0x200 - (sent.addr - XT_BASE);
	if (sent.data_is_ptr && rq->data != sent.data)
		die("a data_is_ptr address came back changed");
	if (sent.dir == IOREQ_WRITE && !emulated &&
	    sent.type != IOREQ_TYPE_INVALIDATE && rq->data != sent.data)
		die("a dropped write changed the data field");
	if (sent.dir == IOREQ_READ && !sent.data_is_ptr && !emulated &&
	    sent.type != IOREQ_TYPE_INVALIDATE && rq->data != ones(sent.size))
		die("an access it does not emulate did not read all-ones");
}

static void op(struct dom *d, struct input *in, uint8_t *ram)
{
	static const uint32_t sizes[] = {4, 4, 4, 1, 2, 8, 0, 3, 16, 4096};
	uint8_t k = fz_take8(in), b = fz_take8(in);
	unsigned v = (b >> 6) % d->vcpus;
	struct ioreq rq;

	memset(&rq, 0, sizeof(rq));
	switch (k % 8) {
	case 0:
	case 1:
	case 2: /* a plain MMIO access, mostly a register of interest */
		rq.type = IOREQ_TYPE_COPY;
		rq.count = 1;
		rq.dir = b & 1 ? IOREQ_READ : IOREQ_WRITE;
		rq.size = b & 2 ? 4 : sizes[(b >> 2) % 10];
		rq.addr = XT_BASE + (k & 0x80 ? fz_take16(in) % 0x210
					      : hot[fz_take8(in) % 16]);
		if (k & 0x40) {
			uint64_t a = guest_addr(d, in);
			uint64_t r = rq.addr - XT_BASE;

			/* the _HIGH halves sit 4 bytes above the _LOW ones */
			rq.data = r >= VIRTIO_MMIO_QUEUE_DESC_LOW && (r & 4)
					  ? a >> 32
					  : a & 0xffffffff;
		} else {
			rq.data = fz_take(in, 8);
		}
		send(d, v, &rq);
		break;
	case 3: /* anything: type, size, count, df, data_is_ptr */
		rq.type = fz_take8(in);
		rq.dir = b & 1;
		rq.df = (b >> 1) & 1;
		rq.data_is_ptr = (b >> 2) & 1;
		rq.size = (uint32_t)fz_take(in, 4);
		rq.count = (uint32_t)fz_take(in, 4);
		rq.addr = b & 8 ? XT_BASE + fz_take16(in) : fz_take(in, 8);
		rq.data = fz_take(in, 8);
		if (rq.type == IOREQ_TYPE_INVALIDATE)
			rq.type = IOREQ_TYPE_PIO; /* sx_invalidate's job */
		send(d, v, &rq);
		break;
	case 4: /* port I/O or PCI config, as x86 guests send */
		rq.type = b & 8 ? IOREQ_TYPE_PCI_CONFIG : IOREQ_TYPE_PIO;
		rq.dir = b & 1;
		rq.size = sizes[(b >> 4) % 6];
		rq.count = 1 + (b & 2 ? fz_take8(in) : 0);
		rq.data_is_ptr = (b >> 2) & 1;
		rq.addr = fz_take16(in);
		rq.data = rq.data_is_ptr ? guest_addr(d, in) : fz_take(in, 4);
		send(d, v, &rq);
		break;
	case 5: /* shape guest memory */
	{
		uint32_t off = (uint32_t)fz_take(in, 3) % SHAPE_END;
		unsigned n = 1 + fz_take8(in) % 64;

		for (unsigned i = 0; i < n && off + i < SHAPE_END; i++)
			ram[off + i] = fz_take8(in);
		break;
	}
	case 6:
		if (sx_invalidate(d->domid, v))
			die("INVALIDATE not answered");
		break;
	default:
		sx_spurious_event(d->domid, d->id, v);
		if (b & 1)
			usleep(100); /* let the queue thread run */
		break;
	}
}

/* A Linux-like driver probes the device and writes then reads a sector:
 * whatever came before, the device is serviceable. */
static void serviceable(struct dom *d, uint32_t seed)
{
	struct sx_vdev_opts o = {
		.domid = d->domid,
		.base = XT_BASE,
		.grant = d->grant,
		.features = (1ULL << VIRTIO_F_VERSION_1) |
			    (1ULL << VIRTIO_F_ACCESS_PLATFORM) |
			    (1ULL << VIRTIO_BLK_F_FLUSH),
		.queue_size = 16,
		.device_id = VIRTIO_ID_BLOCK,
	};
	uint8_t *ram = sx_guest_ram(d->domid);
	struct sx_vdev *dev;
	uint64_t w, r;
	int rc;

	rc = sx_vdev_probe(&o, &dev);
	if (rc) {
		fprintf(stderr, "probe: %d\n", rc);
		die("the device no longer probes");
	}
	w = sx_vdev_alloc(dev, 4096);
	r = sx_vdev_alloc(dev, 4096);
	for (unsigned i = 0; i < 512; i++)
		ram[w + i] = (uint8_t)(seed + i * 13);
	memset(ram + r, 0, 512);
	if (sx_blk_rw(dev, 0, VIRTIO_BLK_T_OUT, seed % 64, w, 512) != 0 ||
	    sx_blk_rw(dev, 0, VIRTIO_BLK_T_IN, seed % 64, r, 512) != 0)
		die("I/O after the sequence failed");
	if (memcmp(ram + w, ram + r, 512))
		die("a sector read back differs from what was written");
	sx_vdev_free(dev);
	probes++;
}

/* Input: a byte choosing the guest, then operations. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size};
	uint8_t sel = fz_take8(&in);
	struct dom *d = &doms[sel % NDOMS];
	uint8_t *ram = sx_guest_ram(d->domid);
	unsigned n = 0;

	if (!ram)
		die("guest RAM");
	memset(ram, 0, SHAPE_END);
	/* Start from a reset device, as a rebooted guest would. */
	if (sx_mmio_write(d->domid, 0, XT_BASE + VIRTIO_MMIO_STATUS, 4, 0))
		die("reset not answered");
	while (in.n && n++ < OPS_MAX)
		op(d, &in, ram);
	serviceable(d, (uint32_t)size);
	return 0;
}
