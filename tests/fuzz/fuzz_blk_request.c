/* libFuzzer target for virtio-blk requests: the real blk model (sync
 * engine) on a memfd image, served through the core's queue thread, with
 * the test driver's rings in guest memory fenced by canaries. The input
 * picks each request's header (type, sector, ioprio), how header, data and
 * status are cut into descriptors and which way each points, discard and
 * write-zeroes ranges, and the ring layout. Checked against the spec
 * (virtio 1.2 §5.2.6): a request past capacity is IOERR and touches
 * nothing; the status byte is the last writable byte and nothing else
 * writable is written except IN data and GET_ID's id; the image changes
 * only where an OK write, write-zeroes or discard said so; a read of what
 * no request writes returns the image's bytes. */
#include <endian.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fz_input.h"
#include "test_driver.h"
#include "virtiod/device.h"
#include "virtiod/log.h"

extern const struct vd_device_type vd_blk_type;

#define IMG_SECTORS 136 /* 68 KiB: past 64 KiB, not a power of two */
#define IMG_SIZE    (IMG_SECTORS * 512u)
#define MEM_SIZE    (1u << 20)
#define QSIZE	    16
#define MAX_REQS    8
#define MAX_SEGS    6
#define SENTINEL    0xee
#define WAIT_MS	    5000
#define SERIAL	    "fuzz-serial-0123"

/* Per sector of the image: what a later read may see. */
enum sec_state { SEC_EXACT, SEC_OLD_OR_ZERO, SEC_UNKNOWN };

struct req {
	uint32_t type;
	uint64_t sector;
	struct td_buf b[MAX_SEGS + 3];
	unsigned n;
	uint64_t status_gpa; /* 0: no writable byte (malformed) */
	uint64_t read_len, write_len;
	bool used;
	uint32_t used_len;
};

static int img_fd = -1;
static char img_path[64];
static uint8_t want[IMG_SIZE], got[IMG_SIZE];
static uint8_t sec[IMG_SECTORS];
/* Requests of one input are in flight together and may run interleaved
 * (virtio-blk orders nothing): per sector, how many of them write it. A
 * sector two requests write may end up as either; a read of a sector
 * anyone writes may see it before or after. */
static uint8_t writers[IMG_SECTORS];
static int call_fd = -1;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_blk_request: %s\n", what);
	abort();
}

static void notify_queue(void *shim, struct vd_queue *q)
{
	uint64_t one = 1;

	(void)shim;
	(void)q;
	if (write(call_fd, &one, sizeof(one)) < 0) {
		/* eventfd full cannot happen with reads in between */
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

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	vd_log_set_level(VD_LOG_ERR);
	img_fd = memfd_create("fuzz-blk-image", MFD_CLOEXEC);
	call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (img_fd < 0 || call_fd < 0 || ftruncate(img_fd, IMG_SIZE) < 0)
		die("memfd/eventfd");
	snprintf(img_path, sizeof(img_path), "/proc/self/fd/%d", img_fd);
	return 0;
}

static uint8_t pattern(size_t off)
{
	return (uint8_t)(off * 7 + off / 512 + 1);
}

static void image_reset(void)
{
	for (size_t i = 0; i < IMG_SIZE; i++)
		want[i] = pattern(i);
	memset(sec, SEC_EXACT, sizeof(sec));
	if (pwrite(img_fd, want, IMG_SIZE, 0) != IMG_SIZE ||
	    ftruncate(img_fd, IMG_SIZE) < 0)
		die("image reset");
}

static struct vd_model *model_new(bool readonly)
{
	const char *opts[][2] = {{"disk", img_path},
				 {"io-engine", "sync"},
				 {"serial", SERIAL},
				 {readonly ? "readonly" : NULL, NULL}};
	struct vd_model *m = NULL;
	char err[256];
	void *o = vd_blk_type.opts_new();

	if (!o)
		die("opts_new");
	for (unsigned i = 0; i < 4 && opts[i][0]; i++)
		if (vd_blk_type.opts_set(o, opts[i][0], opts[i][1], err,
					 sizeof(err)) < 0)
			die(err);
	if (vd_blk_type.create(o, &m, err, sizeof(err)) < 0)
		die(err);
	vd_blk_type.opts_free(o);
	return m;
}

/* A sector: mostly in or around the image, sometimes anywhere (sums and
 * shifts of it must not wrap in the device). */
static uint64_t pick_sector(struct input *in)
{
	uint8_t k = fz_take8(in);

	switch (k & 3) {
	case 0:
		return fz_take8(in) % (IMG_SECTORS + 8);
	case 1:
		return IMG_SECTORS - (fz_take8(in) & 15);
	case 2:
		return fz_take(in, 8);
	default:
		return (1ULL << 55) - (fz_take8(in) & 7);
	}
}

/* A data length: whole sectors mostly, odd sizes and zero sometimes. */
static uint32_t pick_len(struct input *in)
{
	uint8_t k = fz_take8(in);
	uint32_t s = (fz_take8(in) & 15) + 1;

	switch (k & 3) {
	case 0:
	case 1:
		return s * 512;
	case 2:
		return s * 512 + (uint32_t)(int8_t)fz_take8(in);
	default:
		return fz_take16(in) & 0x1fff;
	}
}

static uint64_t alloc(struct td_mem *m, uint32_t len, uint8_t fill)
{
	uint64_t gpa = td_mem_alloc(m, len ? len : 1, 1);

	if (!gpa)
		return 0;
	memset(td_mem_hva(m, gpa), fill, len ? len : 1);
	return gpa;
}

/* Fill a device-readable data buffer: for discard and write-zeroes, range
 * records near the image; otherwise input bytes. */
static void fill_out(struct input *in, uint8_t *p, uint32_t len, bool dwz)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(fz_take8(in) ^ i);
	if (!dwz)
		return;
	for (uint32_t off = 0; off + 16 <= len; off += 16) {
		struct virtio_blk_discard_write_zeroes r;
		uint8_t k = p[off];

		r.sector = htole64(k & 0x80 ? pick_sector(in)
					    : (uint64_t)(k % IMG_SECTORS));
		r.num_sectors = htole32(k & 0x40 ? fz_take(in, 4)
						 : (uint32_t)(p[off + 1] & 31));
		r.flags =
			htole32(k & 0x20 ? fz_take(in, 4) : (uint32_t)(k & 1));
		memcpy(p + off, &r, sizeof(r));
	}
}

/* Build one request's descriptors from the input. */
static bool build(struct input *in, struct td_mem *m, struct req *r)
{
	static const uint32_t types[] = {
		VIRTIO_BLK_T_IN,      VIRTIO_BLK_T_OUT,
		VIRTIO_BLK_T_FLUSH,   VIRTIO_BLK_T_GET_ID,
		VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES,
		VIRTIO_BLK_T_IN,      VIRTIO_BLK_T_OUT};
	struct virtio_blk_outhdr h;
	uint8_t shape = fz_take8(in);
	unsigned nseg = fz_take8(in) % 4;
	bool dwz;

	memset(r, 0, sizeof(*r));
	r->type = shape & 0x80 ? (uint32_t)fz_take(in, 4) : types[shape & 7];
	r->sector = pick_sector(in);
	dwz = r->type == VIRTIO_BLK_T_DISCARD ||
	      r->type == VIRTIO_BLK_T_WRITE_ZEROES;
	h.type = htole32(r->type);
	h.ioprio = htole32((uint32_t)fz_take(in, 4));
	h.sector = htole64(r->sector);
	/* The header: whole, cut in two, or short. */
	{
		uint8_t cut = fz_take8(in) % 20;
		uint64_t g = alloc(m, 16, 0);

		if (!g)
			return false;
		memcpy(td_mem_hva(m, g), &h, sizeof(h));
		if (cut == 0 || cut >= 16) {
			r->b[r->n++] = (struct td_buf){g, 16, false};
		} else if (cut < 12) {
			r->b[r->n++] = (struct td_buf){g, cut, false};
			r->b[r->n++] =
				(struct td_buf){g + cut, 16 - cut, false};
		} else {
			r->b[r->n++] = (struct td_buf){g, cut, false};
		}
	}
	/* Data: direction from the type mostly, flipped sometimes. */
	for (unsigned i = 0; i < nseg; i++) {
		uint8_t k = fz_take8(in);
		uint32_t len = dwz ? ((k & 3) + 1) * 16 + (k & 4 ? 3 : 0)
				   : pick_len(in);
		bool w = r->type == VIRTIO_BLK_T_IN ||
			 r->type == VIRTIO_BLK_T_GET_ID;
		uint64_t g;

		if (k & 0x80)
			w = !w;
		g = alloc(m, len, SENTINEL);
		if (!g)
			return false;
		if (!w)
			fill_out(in, td_mem_hva(m, g), len, dwz);
		r->b[r->n++] = (struct td_buf){g, len, w};
	}
	/* Status: its own byte, glued to a writable data buffer, absent, or
	 * a wider buffer (the status is its last byte). */
	{
		uint8_t k = fz_take8(in) & 3;

		if (k == 0 || k == 1) {
			uint32_t len = k == 0 ? 1 : 1 + (fz_take8(in) & 7);
			uint64_t g = alloc(m, len, SENTINEL);

			if (!g)
				return false;
			r->b[r->n++] = (struct td_buf){g, len, true};
		} else if (k == 2 && r->n > 1 && r->b[r->n - 1].write) {
			/* the last data buffer carries the status */
		}
	}
	for (unsigned i = 0; i < r->n; i++) {
		if (r->b[i].write) {
			r->write_len += r->b[i].len;
			if (r->b[i].len)
				r->status_gpa = r->b[i].gpa + r->b[i].len - 1;
		} else {
			r->read_len += r->b[i].len;
		}
	}
	return true;
}

/* Readable after writable breaks the chain (§2.7.4.2): the device must
 * reset, not guess. */
static bool well_ordered(const struct req *r)
{
	bool seen_w = false;

	for (unsigned i = 0; i < r->n; i++) {
		if (r->b[i].write)
			seen_w = true;
		else if (seen_w)
			return false;
	}
	return true;
}

static bool range_ok(uint64_t sector, uint64_t bytes)
{
	return !(bytes & 511) && sector <= IMG_SECTORS &&
	       bytes / 512 <= IMG_SECTORS - sector;
}

static void mark(uint64_t sector, uint64_t n, enum sec_state s,
		 const uint8_t *data)
{
	for (uint64_t i = 0; i < n && sector + i < IMG_SECTORS; i++) {
		size_t off = (sector + i) * 512;

		if (s == SEC_UNKNOWN || sec[sector + i] == SEC_UNKNOWN ||
		    writers[sector + i] > 1)
			sec[sector + i] = SEC_UNKNOWN;
		else
			sec[sector + i] = (uint8_t)s;
		if (data)
			memcpy(want + off, data + i * 512, 512);
		else if (s == SEC_EXACT)
			memset(want + off, 0, 512);
	}
}

/* Bytes [from, to) of the request's writable buffers, in chain order,
 * into out (NULL: check they still hold SENTINEL). */
static bool writable_bytes(struct td_mem *m, const struct req *r, uint64_t from,
			   uint64_t to, uint8_t *out)
{
	uint64_t pos = 0;

	for (unsigned i = 0; i < r->n; i++) {
		const uint8_t *p;

		if (!r->b[i].write)
			continue;
		p = td_mem_hva(m, r->b[i].gpa);
		for (uint32_t j = 0; j < r->b[i].len; j++, pos++) {
			if (pos < from || pos >= to)
				continue;
			if (out)
				out[pos - from] = p[j];
			else if (p[j] != SENTINEL)
				return false;
		}
	}
	return true;
}

/* Readable bytes after the 16-byte header, in chain order. */
static void readable_data(struct td_mem *m, const struct req *r, uint8_t *out)
{
	uint64_t pos = 0;

	for (unsigned i = 0; i < r->n; i++) {
		const uint8_t *p;

		if (r->b[i].write)
			continue;
		p = td_mem_hva(m, r->b[i].gpa);
		for (uint32_t j = 0; j < r->b[i].len; j++, pos++)
			if (pos >= 16)
				out[pos - 16] = p[j];
	}
}

static uint8_t *scratch;

/* What one completed request must have done, in submission order (one
 * queue, the sync engine: requests run in ring order). */
static void check_done(struct td_mem *m, struct req *r, bool readonly)
{
	uint8_t st = *(uint8_t *)td_mem_hva(m, r->status_gpa);
	uint64_t data_w = r->write_len - 1, data_r = r->read_len - 16;
	bool dwz = r->type == VIRTIO_BLK_T_DISCARD ||
		   r->type == VIRTIO_BLK_T_WRITE_ZEROES;

	if (st > VIRTIO_BLK_S_UNSUPP)
		die("status byte is not OK, IOERR or UNSUPP");
	if (r->used_len > r->write_len)
		die("used length larger than the writable buffers");
	switch (r->type) {
	case VIRTIO_BLK_T_IN:
		if (!range_ok(r->sector, data_w)) {
			if (st != VIRTIO_BLK_S_IOERR)
				die("IN past capacity or unaligned not IOERR");
			if (!writable_bytes(m, r, 0, data_w, NULL))
				die("failed IN wrote guest memory");
			return;
		}
		if (st != VIRTIO_BLK_S_OK)
			return;
		writable_bytes(m, r, 0, data_w, scratch);
		for (uint64_t i = 0; i < data_w; i++) {
			size_t off = r->sector * 512 + i;

			/* Nobody writes it: what the image held. */
			if (!writers[off / 512] && scratch[i] != want[off])
				die("IN returned bytes the image does not "
				    "hold");
		}
		return;
	case VIRTIO_BLK_T_OUT:
		if (!writable_bytes(m, r, 0, data_w, NULL))
			die("OUT wrote its writable buffers");
		if (readonly || !range_ok(r->sector, data_r)) {
			if (st != VIRTIO_BLK_S_IOERR)
				die("OUT past capacity/unaligned/read-only not "
				    "IOERR");
			return; /* and the image check finds any byte */
		}
		if (st == VIRTIO_BLK_S_OK) {
			readable_data(m, r, scratch);
			mark(r->sector, data_r / 512, SEC_EXACT, scratch);
		} else {
			mark(r->sector, data_r / 512, SEC_UNKNOWN, NULL);
		}
		return;
	case VIRTIO_BLK_T_GET_ID: {
		char id[VIRTIO_BLK_ID_BYTES] = SERIAL;
		uint64_t n = data_w < sizeof(id) ? data_w : sizeof(id);

		if (st != VIRTIO_BLK_S_OK)
			die("GET_ID not OK");
		writable_bytes(m, r, 0, n, scratch);
		if (memcmp(scratch, id, n))
			die("GET_ID wrote something else than the serial");
		if (!writable_bytes(m, r, n, data_w, NULL))
			die("GET_ID wrote past the id");
		return;
	}
	default:
		break;
	}
	if (!writable_bytes(m, r, 0, data_w, NULL))
		die("a request without device-written data wrote guest memory");
	if (!dwz)
		return;
	if (readonly && st != VIRTIO_BLK_S_IOERR)
		die("discard/write-zeroes on a read-only disk not IOERR");
	if (st == VIRTIO_BLK_S_UNSUPP || readonly)
		return;
	/* Every range the request names: done if OK; if it failed, what came
	 * before the failing range may have been done. */
	readable_data(m, r, scratch);
	for (uint64_t off = 0; off + 16 <= data_r && data_r % 16 == 0;
	     off += 16) {
		struct virtio_blk_discard_write_zeroes d;
		uint64_t s;
		uint32_t n;

		memcpy(&d, scratch + off, sizeof(d));
		s = le64toh(d.sector);
		n = le32toh(d.num_sectors);
		if (!range_ok(s, (uint64_t)n * 512)) {
			if (st == VIRTIO_BLK_S_OK)
				die("a range past capacity was answered OK");
			return;
		}
		if (st != VIRTIO_BLK_S_OK)
			mark(s, n, SEC_UNKNOWN, NULL);
		else if (r->type == VIRTIO_BLK_T_DISCARD)
			mark(s, n, SEC_OLD_OR_ZERO, NULL);
		else
			mark(s, n, SEC_EXACT, NULL);
	}
	if (data_r % 16 && st == VIRTIO_BLK_S_OK)
		die("discard/write-zeroes with a partial range answered OK");
}

static void add_writer(uint64_t sector, uint64_t n)
{
	for (uint64_t i = 0; i < n && sector + i < IMG_SECTORS; i++)
		if (writers[sector + i] < 255)
			writers[sector + i]++;
}

/* Every range a request may write, whatever its status: an OUT's data,
 * each discard/write-zeroes range inside the image. */
static void count_writers(struct td_mem *m, const struct req *reqs, unsigned n)
{
	memset(writers, 0, sizeof(writers));
	for (unsigned i = 0; i < n; i++) {
		const struct req *r = &reqs[i];
		uint64_t data_r = r->read_len < 16 ? 0 : r->read_len - 16;

		if (r->type == VIRTIO_BLK_T_OUT && range_ok(r->sector, data_r))
			add_writer(r->sector, data_r / 512);
		if (r->type != VIRTIO_BLK_T_DISCARD &&
		    r->type != VIRTIO_BLK_T_WRITE_ZEROES)
			continue;
		readable_data(m, r, scratch);
		for (uint64_t off = 0; off + 16 <= data_r; off += 16) {
			struct virtio_blk_discard_write_zeroes d;

			memcpy(&d, scratch + off, sizeof(d));
			if (range_ok(le64toh(d.sector),
				     (uint64_t)le32toh(d.num_sectors) * 512))
				add_writer(le64toh(d.sector),
					   le32toh(d.num_sectors));
		}
	}
}

static void check_image(void)
{
	struct stat stb;

	if (fstat(img_fd, &stb) < 0 || stb.st_size != IMG_SIZE)
		die("the image changed size");
	if (pread(img_fd, got, IMG_SIZE, 0) != IMG_SIZE)
		die("image read back");
	for (size_t off = 0; off < IMG_SIZE; off++) {
		uint8_t s = sec[off / 512];

		if (s == SEC_EXACT && got[off] != want[off])
			die("image byte changed that no request wrote");
		if (s == SEC_OLD_OR_ZERO && got[off] && got[off] != want[off])
			die("discarded image byte neither old nor zero");
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Collect used entries until every request is back or the device asks
 * for a reset (then nothing more comes). */
static void collect(struct vd_dev *dev, struct td_vq *vq, struct req *reqs,
		    unsigned n, bool wait)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	unsigned back = 0;

	for (unsigned i = 0; i < n; i++)
		back += reqs[i].used;
	while (back < n) {
		struct pollfd p = {.fd = call_fd, .events = POLLIN};
		void *tok;
		uint32_t len;
		uint64_t v;
		int rc = td_vq_get_used(vq, &tok, &len);

		if (rc < 0)
			die("the device used an id it was not given");
		if (rc == 1) {
			struct req *r = tok;

			if (r->used)
				die("a request was used twice");
			r->used = true;
			r->used_len = len;
			back++;
			continue;
		}
		if (!wait || (vd_dev_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET))
			return;
		if (now_ms() > deadline)
			die("requests neither completed nor reset the device");
		poll(&p, 1, 10);
		if (read(call_fd, &v, sizeof(v)) < 0) {
			/* EAGAIN: look at the ring again */
		}
	}
}

static bool start(struct vd_dev *dev, struct td_mem *m, struct td_vq **vq,
		  int *kick, bool packed, uint8_t fbits)
{
	uint64_t f = vd_dev_device_features(dev);
	uint8_t st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	struct vd_queue_setup s;

	if (!packed)
		f &= ~(1ULL << VIRTIO_F_RING_PACKED);
	else if (!(f & (1ULL << VIRTIO_F_RING_PACKED)))
		return false;
	if (fbits & 1)
		f &= ~(1ULL << VIRTIO_RING_F_EVENT_IDX);
	if (fbits & 2)
		f &= ~(1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	if (vd_dev_set_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE) ||
	    vd_dev_set_status(dev, st) || vd_dev_set_driver_features(dev, f))
		die("feature negotiation");
	st |= VIRTIO_CONFIG_S_FEATURES_OK;
	if (vd_dev_set_status(dev, st))
		die("FEATURES_OK");
	*vq = td_vq_new(m, packed ? VD_VQ_PACKED : VD_VQ_SPLIT, QSIZE,
			f & (1ULL << VIRTIO_RING_F_EVENT_IDX),
			f & (1ULL << VIRTIO_RING_F_INDIRECT_DESC));
	memset(&s, 0, sizeof(s));
	td_vq_fill_config(*vq, &s.vq);
	s.vq.max_iov = 0;
	*kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (*kick < 0)
		die("eventfd");
	s.kick_fd = *kick;
	td_vq_enable_cb(*vq);
	if (vd_queue_start(vd_dev_queue(dev, 0), &s))
		die("queue start");
	if (vd_dev_set_status(dev, st | VIRTIO_CONFIG_S_DRIVER_OK))
		die("DRIVER_OK");
	return true;
}

/* Input: one flags byte (read-only, packed, features, indirect), then up
 * to MAX_REQS requests, each kicked right away or batched. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size};
	uint8_t flags = fz_take8(&in);
	bool readonly = flags & 1, indirect = flags & 8;
	struct req reqs[MAX_REQS];
	unsigned n = 0;
	struct vd_model *model;
	struct vd_dev *dev;
	struct td_mem *m;
	struct td_vq *vq = NULL;
	int kick = -1;
	uint64_t one = 1, v;
	bool broken = false;

	if (!scratch && !(scratch = malloc(64 << 10)))
		die("malloc");
	image_reset();
	while (read(call_fd, &v, sizeof(v)) == sizeof(v))
		;
	model = model_new(readonly);
	m = td_mem_new(MEM_SIZE, 1 + (flags >> 6) % 3);
	dev = vd_dev_new(model, td_mem_vd(m), &shim_ops, NULL, "fuzz-blk");
	if (!dev)
		die("vd_dev_new");
	if (!start(dev, m, &vq, &kick, flags & 2, (flags >> 2) & 3))
		goto out;
	while (n < MAX_REQS && in.n > 0) {
		struct req *r = &reqs[n];

		if (!build(&in, m, r))
			break;
		if (td_vq_add(vq, r->b, r->n, indirect && r->n > 1, r) < 0)
			break;
		/* Its status byte starts as SENTINEL: alloc filled it. */
		n++;
		if (fz_take8(&in) & 1) {
			if (write(kick, &one, sizeof(one)) < 0)
				die("kick");
		}
	}
	if (n && write(kick, &one, sizeof(one)) < 0)
		die("kick");
	collect(dev, vq, reqs, n, true);
	broken = vd_dev_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET;
	vd_dev_free(dev); /* stops the queue: nothing runs after this */
	dev = NULL;
	collect(NULL, vq, reqs, n, false);
	if (!td_mem_canary_ok(m))
		die("a write landed outside guest memory");
	count_writers(m, reqs, n);
	for (unsigned i = 0; i < n; i++) {
		struct req *r = &reqs[i];
		bool bad =
			r->read_len < 16 || !r->status_gpa || !well_ordered(r);

		if (!r->used) {
			/* Never answered: the queue broke before it, or after
			 * it ran but before the round's used entries were
			 * published (the core publishes nothing once broken).
			 * Only then may it have a status, and it is checked
			 * as done. */
			if (!r->status_gpa ||
			    *(uint8_t *)td_mem_hva(m, r->status_gpa) ==
				    SENTINEL)
				continue;
			if (!broken)
				die("an unanswered request has a status");
		}
		if (!r->status_gpa ||
		    *(uint8_t *)td_mem_hva(m, r->status_gpa) == SENTINEL) {
			/* Returned unwritten (malformed): nothing written. */
			if (r->used_len)
				die("a request without status reports bytes "
				    "written");
			if (!bad)
				die("a well-formed request has no status");
			continue;
		}
		if (r->read_len < 16)
			die("a request shorter than its header was answered");
		check_done(m, r, readonly);
	}
	check_image();
out:
	if (dev)
		vd_dev_free(dev);
	if (vq)
		td_vq_free(vq);
	if (kick >= 0)
		close(kick);
	td_mem_free(m);
	return 0;
}
