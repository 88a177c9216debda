/* libFuzzer target for the vhost-user shim: the input is a sequence of
 * frontend actions. Messages (header, payload, fds made up here: memfds of
 * input-chosen sizes and contents, eventfds, sockets, non-files) go through
 * a real socket to the daemon's own connection code serving a real
 * virtio-blk on a small temp image; the input also writes guest memory and
 * rings, kicks, and reconnects. Nothing may crash, block or leak an fd. */
#include <linux/virtio_config.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "virtiod/device.h"
#include "virtiod/log.h"

#include "fz_frontend.h"
#include "fz_rings.h"
#include "vuf_vq.h"

/* The daemon under test, driven white-box: its backend and connection
 * calls, and what it offers (VU_PROTOCOL_FEATURES, as model->features). */
#include "control.h"
#include "serve.h"

/* -------------------------------------------------------------- regions */

/* A region of memfd slot s, as QEMU describes one: its user address is the
 * slot's base plus the offset, so ring addresses can be made from offsets.
 * Sometimes anything at all. */
static int region_of(struct fz *z, struct input *in,
		     struct vhost_user_memory_region *w,
		     struct shadow_region *sh)
{
	uint8_t mode = fz_take8(in);
	unsigned s = mode & 3;
	uint64_t pages = z->mem_size[s] / PAGE, off, len;
	int fd = z->mem[s] >= 0 ? z->mem[s]
				: fz_tmp_fd(z, fz_memfd(PAGE, false, false));

	if (mode & 0x80) {
		w->guest_phys_addr = fz_take(in, 8);
		w->memory_size = fz_take(in, 8);
		w->userspace_addr = fz_take(in, 8);
		w->mmap_offset = fz_take(in, 8);
	} else {
		off = fz_take8(in) % (pages + 1);
		len = mode & 0x40 ? pages - off
				  : fz_take8(in) % (pages - off + 1);
		w->guest_phys_addr = (uint64_t)fz_take16(in) * PAGE;
		w->memory_size = len * PAGE;
		w->mmap_offset = off * PAGE;
		w->userspace_addr = UBASE(s) + w->mmap_offset;
		if (mode & 0x20) /* off by a little */
			w->memory_size += (int8_t)fz_take8(in);
	}
	if (mode & 0x10)
		fd = fz_some_fd(z, fz_take8(in));
	*sh = (struct shadow_region){s, w->guest_phys_addr, w->memory_size,
				     w->mmap_offset};
	return fd;
}

static void remember_region(struct fz *z, const struct shadow_region *sh)
{
	if (z->n_reg < N_REG)
		z->reg[z->n_reg++] = *sh;
}

static void op_mem_table(struct fz *z, struct input *in)
{
	uint8_t f = fz_take8(in);
	unsigned n = (f >> 4) %
		     (VHOST_USER_MAX_REGIONS + 3); /* up to 2 past the limit */
	unsigned nw = n < VHOST_USER_MAX_REGIONS ? n : VHOST_USER_MAX_REGIONS;
	struct vhost_user_memory t = {.nregions = n};
	uint32_t size =
		8 + nw * (uint32_t)sizeof(struct vhost_user_memory_region);
	struct shadow_region sh;
	int fds[VHOST_USER_MAX_REGIONS + 2];

	z->n_reg = 0;
	for (unsigned i = 0; i < n; i++) {
		struct vhost_user_memory_region extra;

		fds[i] = region_of(z, in, i < nw ? &t.regions[i] : &extra, &sh);
		if (i < nw)
			remember_region(z, &sh);
	}
	if (f & 4)
		t.nregions = fz_take8(in);
	fz_message(z, VHOST_USER_SET_MEM_TABLE, fz_flags(f), size, &t, size,
		   fds, f & 8 && n ? n - 1 : n);
}

static void op_mem_reg(struct fz *z, struct input *in)
{
	uint8_t f = fz_take8(in);
	struct vhost_user_mem_reg m = {0};
	struct shadow_region sh;
	int fd;

	if (f & 2 && z->n_reg) {
		/* Remove one we added, exactly as it was described. */
		unsigned k = fz_take8(in) % z->n_reg;

		sh = z->reg[k];
		m.region = (struct vhost_user_memory_region){
			sh.gpa, sh.size, UBASE(sh.slot) + sh.mmap_offset,
			sh.mmap_offset};
		z->reg[k] = z->reg[--z->n_reg];
		fd = f & 4 ? fz_some_fd(z, fz_take8(in)) : -1;
		fz_message(z, VHOST_USER_REM_MEM_REG, fz_flags(f), sizeof(m),
			   &m, sizeof(m), &fd, fd >= 0);
		return;
	}
	fd = region_of(z, in, &m.region, &sh);
	if (f & 2) {
		fz_message(z, VHOST_USER_REM_MEM_REG, fz_flags(f), sizeof(m),
			   &m, sizeof(m), &fd, f & 4 ? 1 : 0);
		return;
	}
	remember_region(z, &sh);
	fz_message(z, VHOST_USER_ADD_MEM_REG, fz_flags(f), sizeof(m), &m,
		   sizeof(m), &fd, f & 4 ? 0 : 1);
}

/* ----------------------------------------------------------------- others */

static void op_features(struct fz *z, struct input *in)
{
	uint8_t f = fz_take8(in), sub = fz_take8(in);
	uint64_t offered = z->b->model->features |
			   (1ull << VHOST_USER_F_PROTOCOL_FEATURES) |
			   (1ull << VHOST_F_LOG_ALL);
	uint64_t v;

	switch (sub % 4) {
	case 0:
		v = sub & 0x10 ? offered : offered & fz_take(in, 8);
		if (sub & 0x20)
			v ^= 1ull << VIRTIO_F_RING_PACKED;
		if (sub & 0x40)
			v = fz_take(in, 8);
		z->packed = v & (1ull << VIRTIO_F_RING_PACKED);
		fz_message(z, VHOST_USER_SET_FEATURES, fz_flags(f), 8, &v, 8,
			   NULL, 0);
		return;
	case 1:
		v = sub & 0x10 ? VU_PROTOCOL_FEATURES
			       : VU_PROTOCOL_FEATURES & fz_take(in, 8);
		if (sub & 0x40)
			v = fz_take(in, 8);
		fz_message(z, VHOST_USER_SET_PROTOCOL_FEATURES, fz_flags(f), 8,
			   &v, 8, NULL, 0);
		return;
	case 2:
		fz_message(z, VHOST_USER_GET_FEATURES, fz_flags(f), 0, NULL, 0,
			   NULL, 0);
		return;
	default:
		fz_message(z, VHOST_USER_GET_PROTOCOL_FEATURES, fz_flags(f), 0,
			   NULL, 0, NULL, 0);
		return;
	}
}

static void op_config(struct fz *z, struct input *in)
{
	uint8_t f = fz_take8(in);
	struct vhost_user_config c = {
		.offset = fz_take8(in),
		.size = fz_take8(in),
		.flags = f & 0x20 ? (uint32_t)fz_take(in, 4) : (f >> 6) & 1,
	};
	uint32_t size;

	if (f & 0x10)
		c.offset = (uint32_t)fz_take(in, 4);
	if (f & 0x80)
		c.size = (uint32_t)fz_take(in, 4);
	for (unsigned i = 0; i < c.size && i < VHOST_USER_MAX_CONFIG_SIZE; i++)
		c.region[i] = fz_take8(in);
	size = (uint32_t)VHOST_USER_CONFIG_HDR_SIZE +
	       (c.size < VHOST_USER_MAX_CONFIG_SIZE
			? c.size
			: VHOST_USER_MAX_CONFIG_SIZE);
	if (f & 4)
		size = fz_take16(in) % (sizeof(c) + 8);
	fz_message(z, f & 2 ? VHOST_USER_SET_CONFIG : VHOST_USER_GET_CONFIG,
		   fz_flags(f), size, &c, size < sizeof(c) ? size : sizeof(c),
		   NULL, 0);
}

static void op_inflight(struct fz *z, struct input *in)
{
	uint8_t f = fz_take8(in), qb = fz_take8(in);
	struct vhost_user_inflight w = {
		.num_queues = fz_take8(in) % (NQ + 2),
		.queue_size = qb < 0xf0 ? 1u << (qb % 8) : fz_take16(in),
	};
	int fd;

	if (!(f & 2)) {
		fz_message(z, VHOST_USER_GET_INFLIGHT_FD, fz_flags(f),
			   sizeof(w), &w, sizeof(w), NULL, 0);
		return;
	}
	if (f & 4 && z->inflight_fd >= 0) {
		fd = z->inflight_fd;
		w.mmap_size = z->inflight_size;
	} else {
		fd = fz_some_fd(z, fz_take8(in));
		w.mmap_size = (uint64_t)fz_take8(in) * PAGE;
	}
	if (f & 8)
		w.mmap_offset = (uint64_t)fz_take8(in) * PAGE;
	if (f & 0x10)
		w.mmap_size = fz_take(in, 8);
	fz_message(z, VHOST_USER_SET_INFLIGHT_FD, fz_flags(f), sizeof(w), &w,
		   sizeof(w), &fd, f & 0x20 ? 0 : 1);
}

static void op_log(struct fz *z, struct input *in)
{
	uint8_t f = fz_take8(in);
	struct vhost_user_log w = {
		.mmap_size = (uint64_t)fz_take8(in) * 64,
		.mmap_offset = (uint64_t)(fz_take8(in) & 3) * PAGE,
	};
	int fd = fz_some_fd(z, fz_take8(in));

	if (f & 2)
		w.mmap_size = fz_take(in, 8);
	if (f & 4)
		w.mmap_offset = fz_take(in, 8);
	fz_message(z, VHOST_USER_SET_LOG_BASE, fz_flags(f), sizeof(w), &w,
		   sizeof(w), &fd, f & 8 ? 0 : 1);
}

static void op_simple(struct fz *z, struct input *in)
{
	static const uint32_t reqs[] = {
		VHOST_USER_SET_OWNER,	      VHOST_USER_RESET_OWNER,
		VHOST_USER_GET_QUEUE_NUM,     VHOST_USER_RESET_DEVICE,
		VHOST_USER_GET_MAX_MEM_SLOTS, VHOST_USER_SET_STATUS,
		VHOST_USER_GET_STATUS,	      VHOST_USER_SET_BACKEND_REQ_FD,
	};
	uint8_t f = fz_take8(in);
	uint32_t req = reqs[fz_take8(in) % 8];
	uint64_t v = f & 0x80 ? fz_take(in, 8) : fz_take8(in);
	int sv[2];

	if (req == VHOST_USER_SET_STATUS) {
		fz_message(z, req, fz_flags(f), 8, &v, 8, NULL, 0);
	} else if (req == VHOST_USER_SET_BACKEND_REQ_FD) {
		unsigned k = f & 0x40 ? 1 : 0;

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			abort();
		fz_set_nonblock(sv[1]);
		fz_close_fd(&z->chan[k]);
		z->chan[k] = sv[1];
		fz_tmp_fd(z, sv[0]);
		fz_message(z, req, fz_flags(f), 0, NULL, 0, sv, 1);
	} else {
		fz_message(z, req, fz_flags(f), 0, NULL, 0, NULL, 0);
	}
}

/* Any header, any payload, any fds. */
static void op_raw(struct fz *z, struct input *in)
{
	uint8_t rb = fz_take8(in), fb = fz_take8(in), nfd = fz_take8(in);
	uint32_t req = rb < 0xf0 ? rb % 42u : (uint32_t)fz_take(in, 4);
	uint32_t flags = fb & 0x80 ? (uint32_t)fz_take(in, 4) : fb & 0x0f;
	uint32_t size = fz_take16(in) % 0x180;
	uint8_t payload[0x180];
	size_t plen = 0;
	int fds[VHOST_USER_MAX_REGIONS + 3];
	unsigned n = nfd % (VHOST_USER_MAX_REGIONS + 4);

	if (nfd & 0x80)
		size = (uint32_t)fz_take(in, 4);
	for (unsigned i = 0; i < n; i++)
		fds[i] = fz_some_fd(z, fz_take8(in));
	while (plen < size && plen < sizeof(payload) && in->n)
		payload[plen++] = fz_take8(in);
	fz_message(z, req, flags, size, payload, plen, fds, n);
}

static void op_memfd(struct fz *z, struct input *in)
{
	uint8_t f = fz_take8(in);
	unsigned s = f & 3;
	uint64_t pages = f & 0x40 ? fz_take16(in) % (BIG_PAGES + 1)
				  : fz_take8(in) % (MAX_PAGES + 1);

	fz_close_fd(&z->mem[s]);
	z->mem[s] = fz_memfd(pages * PAGE, f & 4, f & 8);
	z->mem_size[s] = pages * PAGE;
}

static void op_poke(struct fz *z, struct input *in)
{
	uint8_t f = fz_take8(in), buf[256];
	unsigned slot = f % (N_MEM + 1);
	uint64_t off = f & 0x80 ? fz_take(in, 4) : (uint64_t)fz_take16(in) * 8;
	size_t len = fz_take8(in);

	for (size_t i = 0; i < len; i++)
		buf[i] = fz_take8(in);
	fz_poke(z, slot, off, buf, len);
}

/* What QEMU sends on (re)connect, with input-chosen parameters, so the
 * rest of the input starts from running rings instead of having to find
 * the whole sequence. */
static void op_setup(struct fz *z, struct input *in)
{
	uint8_t f = fz_take8(in), nb = fz_take8(in);
	uint64_t offered = z->b->model->features |
			   (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
	uint64_t v, pf = VU_PROTOCOL_FEATURES;
	uint16_t num = (uint16_t)(1u << (nb % 7)); /* 1..64 */
	struct vhost_user_memory t = {.nregions = 1};
	struct vhost_user_inflight w = {.num_queues = NQ, .queue_size = 64};
	struct shadow_region sh;

	if (z->mem[0] < 0 || z->mem_size[0] < 64 * PAGE) {
		fz_close_fd(&z->mem[0]);
		z->mem[0] = fz_memfd(64 * PAGE, true, true);
		z->mem_size[0] = 64 * PAGE;
	}
	z->packed = f & 1;
	v = z->packed ? offered : offered & ~(1ull << VIRTIO_F_RING_PACKED);
	if (!(f & 2))
		v &= ~(1ull << VHOST_USER_F_PROTOCOL_FEATURES);
	fz_message(z, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, 0, NULL, 0,
		   NULL, 0);
	fz_message(z, VHOST_USER_SET_FEATURES, VHOST_USER_VERSION, 8, &v, 8,
		   NULL, 0);
	if (f & 2) {
		fz_message(z, VHOST_USER_GET_PROTOCOL_FEATURES,
			   VHOST_USER_VERSION, 0, NULL, 0, NULL, 0);
		fz_message(z, VHOST_USER_SET_PROTOCOL_FEATURES,
			   VHOST_USER_VERSION, 8, &pf, 8, NULL, 0);
	}
	fz_message(z, VHOST_USER_SET_OWNER, VHOST_USER_VERSION, 0, NULL, 0,
		   NULL, 0);
	if (f & 2 && f & 4) {
		if (!(f & 8) || z->inflight_fd < 0)
			fz_message(z, VHOST_USER_GET_INFLIGHT_FD,
				   VHOST_USER_VERSION, sizeof(w), &w, sizeof(w),
				   NULL, 0);
		if (z->inflight_fd >= 0) {
			w.mmap_size = z->inflight_size;
			fz_message(z, VHOST_USER_SET_INFLIGHT_FD,
				   VHOST_USER_VERSION, sizeof(w), &w, sizeof(w),
				   &z->inflight_fd, 1);
		}
	}
	t.regions[0] = (struct vhost_user_memory_region){
		.guest_phys_addr = 0x100000,
		.memory_size = z->mem_size[0],
		.userspace_addr = UBASE(0),
	};
	sh = (struct shadow_region){0, 0x100000, z->mem_size[0], 0};
	z->n_reg = 0;
	remember_region(z, &sh);
	fz_message(z, VHOST_USER_SET_MEM_TABLE, VHOST_USER_VERSION,
		   8 + sizeof(t.regions[0]), &t, 8 + sizeof(t.regions[0]),
		   &z->mem[0], 1);
	if (f & 0x10) {
		struct vhost_user_log lw = {.mmap_size = 64};
		int lfd = fz_tmp_fd(z, fz_memfd(PAGE, true, true));
		uint64_t all = v | (1ull << VHOST_F_LOG_ALL);

		fz_message(z, VHOST_USER_SET_LOG_BASE, VHOST_USER_VERSION,
			   sizeof(lw), &lw, sizeof(lw), &lfd, 1);
		fz_message(z, VHOST_USER_SET_FEATURES, VHOST_USER_VERSION, 8,
			   &all, 8, NULL, 0);
	}
	for (uint32_t q = 0; q < NQ; q++) {
		struct vhost_vring_state st = {q, num};
		struct vhost_vring_addr a = {.index = q};
		uint64_t desc = 0x8000 + q * 0x8000, u64 = q;
		size_t dl, al, ul;
		int fd;

		if (f & (0x40 << q))
			continue;
		vuf_vq_sizes(z->packed, num, &dl, &al, &ul);
		a.desc_user_addr = UBASE(0) + desc;
		a.avail_user_addr = UBASE(0) + desc + dl;
		a.used_user_addr = UBASE(0) + ((desc + dl + al + 3) & ~3ull);
		fz_message(z, VHOST_USER_SET_VRING_NUM, VHOST_USER_VERSION,
			   sizeof(st), &st, sizeof(st), NULL, 0);
		st.num = z->packed ? 0x80008000u : 0;
		fz_message(z, VHOST_USER_SET_VRING_BASE, VHOST_USER_VERSION,
			   sizeof(st), &st, sizeof(st), NULL, 0);
		fz_message(z, VHOST_USER_SET_VRING_ADDR, VHOST_USER_VERSION,
			   sizeof(a), &a, sizeof(a), NULL, 0);
		z->ring[q] = (struct shadow_ring){
			.addr_set = true,
			.slot = 0,
			.desc = desc,
			.avail = desc + dl,
			.num = num,
			.wrap = true,
		};
		fd = fz_event_fd(z, NULL);
		fz_message(z, VHOST_USER_SET_VRING_CALL, VHOST_USER_VERSION, 8,
			   &u64, 8, &fd, 1);
		fd = fz_event_fd(z, &z->kick[q]);
		fz_message(z, VHOST_USER_SET_VRING_KICK, VHOST_USER_VERSION, 8,
			   &u64, 8, &fd, 1);
		if (f & 2) {
			st.num = 1;
			fz_message(z, VHOST_USER_SET_VRING_ENABLE,
				   VHOST_USER_VERSION, sizeof(st), &st,
				   sizeof(st), NULL, 0);
		}
	}
	if (f & 0x20) {
		uint64_t status = 0x0f;

		fz_message(z, VHOST_USER_SET_STATUS, VHOST_USER_VERSION, 8,
			   &status, 8, NULL, 0);
	}
}

/* ------------------------------------------------------------ the target */

extern const struct vd_device_type vd_blk_type;

static struct vd_model *blk_model(void)
{
	const struct vd_device_type *t = &vd_blk_type;
	struct vd_model *m = NULL;
	char err[256];
	void *o = t ? t->opts_new() : NULL;

	if (!o || t->opts_set(o, "disk", fz_img_path, err, sizeof(err)) ||
	    t->opts_set(o, "num-queues", NQ == 2 ? "2" : "1", err,
			sizeof(err)) ||
	    t->opts_set(o, "queue-size", QSIZE, err, sizeof(err)) ||
	    t->create(o, &m, err, sizeof(err))) {
		fprintf(stderr, "fuzz_vhost_user: blk: %s\n", err);
		abort();
	}
	t->opts_free(o);
	return m;
}

static void remove_files(void)
{
	unlink(fz_img_path);
	unlink(fz_spare_path);
}

/* A fresh device and connection, as for each frontend the daemon serves. */
static void fz_begin(struct fz *z)
{
	*z = (struct fz){.peer = -1, .inflight_fd = -1};
	for (unsigned i = 0; i < N_MEM; i++)
		z->mem[i] = -1;
	for (unsigned i = 0; i < NQ; i++)
		z->kick[i] = -1;
	for (unsigned i = 0; i < N_CHAN; i++)
		z->chan[i] = -1;
	z->b = vu_backend_new("fuzz", blk_model());
	if (!z->b)
		abort();
	fz_connect(z);
}

/* Everything goes; then no fd may be left open that was not before.
 * (Counted around each input: libFuzzer and the sanitizers open fds of
 * their own in between, the symbolizer's pipes.) */
static void fz_end(struct fz *z, int fds_before)
{
	int now;

	fz_disconnect(z);
	vu_backend_free(z->b);
	for (unsigned i = 0; i < N_MEM; i++)
		fz_close_fd(&z->mem[i]);
	for (unsigned i = 0; i < NQ; i++)
		fz_close_fd(&z->kick[i]);
	for (unsigned i = 0; i < N_CHAN; i++)
		fz_close_fd(&z->chan[i]);
	fz_close_fd(&z->inflight_fd);
	now = fz_count_fds();
	if (now != fds_before) {
		fprintf(stderr, "fuzz_vhost_user: %d fds open, %d before\n",
			now, fds_before);
		fz_list_fds();
		abort();
	}
}

static void run_op(struct fz *z, uint8_t op, struct input *in)
{
	switch (op % 16) {
	case 0:
		op_raw(z, in);
		break;
	case 1:
		op_memfd(z, in);
		break;
	case 2:
		op_poke(z, in);
		break;
	case 3:
		op_mem_table(z, in);
		break;
	case 4:
		op_mem_reg(z, in);
		break;
	case 5:
	case 6:
		fz_op_vring(z, in);
		break;
	case 7:
		op_features(z, in);
		break;
	case 8:
		op_config(z, in);
		break;
	case 9:
		op_inflight(z, in);
		break;
	case 10:
		op_log(z, in);
		break;
	case 11:
		op_simple(z, in);
		break;
	case 12:
		fz_op_request(z, in);
		break;
	case 13:
		op_setup(z, in);
		break;
	case 14:
		fz_op_forge_inflight(z, in);
		break;
	default:
		/* QEMU's reconnect: the frontend goes and comes back with its
		 * memory and inflight area. */
		fz_disconnect(z);
		fz_connect(z);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size};
	int before = fz_count_fds();
	struct fz z;

	fz_begin(&z);
	for (unsigned ops = 0; ops < MAX_OPS && in.n; ops++)
		run_op(&z, fz_take8(&in), &in);
	fz_end(&z, before);
	return 0;
}

/* The bugs this target found, replayed before any fuzzing so that every
 * run, fuzz-smoke's few seconds included, checks them under ASan/UBSan.
 * Each is a list of ops with their bytes (run_op's encoding). */
static const struct {
	const char *bug;
	uint8_t ops[16];
	size_t len;
} regressions[] = {
	/* Rings running (op_setup), then a changed SET_MEM_TABLE: vring.c
	 * ring_in computed NULL + 0 for "every ring", undefined behaviour. */
	{"ring_in: NULL + 0", {13, 0x5f, 0x4d, 3, 0}, 5},
};

static void run_regressions(void)
{
	for (size_t i = 0; i < sizeof(regressions) / sizeof(regressions[0]);
	     i++) {
		struct input in = {regressions[i].ops, regressions[i].len};
		int before = fz_count_fds();
		struct fz z;

		vd_debug(NULL, "replaying the input of a fixed bug: %s",
			 regressions[i].bug);
		fz_begin(&z);
		while (in.n)
			run_op(&z, fz_take8(&in), &in);
		fz_end(&z, before);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *lvl = getenv("VIRTIOD_FUZZ_LOG");
	enum vd_log_level level = VD_LOG_ERR;
	int fd;

	(void)argc;
	(void)argv;
	/* Quiet by default; VIRTIOD_FUZZ_LOG=debug formats every line (run
	 * with -close_fd_mask=2 to keep the speed). */
	if (lvl)
		vd_log_level_parse(lvl, &level);
	vd_log_set_level(level);
	fd = mkstemp(fz_img_path);
	if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
		abort();
	close(fd);
	fd = mkstemp(fz_spare_path);
	if (fd < 0 || ftruncate(fd, 16 * PAGE) < 0)
		abort();
	close(fd);
	atexit(remove_files);
	run_regressions();
	return 0;
}
