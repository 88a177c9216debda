/* virtio-blk through the unmodified Xen shim, driven as Linux drives it
 * under Xen, as a matrix: ring layout × indirect × EVENT_IDX × segment
 * shape × guest memory (map cache size, no cache, grants) × I/O engine.
 * Every case runs the same Linux-like workload (reads, writes, FLUSH,
 * WRITE_ZEROES, DISCARD, GET_ID; several requests in flight per kick) and
 * compares every read with the image's known content and the image file,
 * byte for byte, with what the guest wrote. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "xtest.h"

#define DOMID	   5
#define IMG_SIZE   (16u << 20)
#define SLOT_SECS  4096u /* 2 MiB of image per request */
#define AREA_SIZE  (48ULL << 20)
#define BATCH_MAX  8
#define WARM_BATCH 256
#define QUEUE_SIZE 1024

/* ---- the dimensions */

static const struct mem_mode {
	const char *name;
	enum vd_xen_mem_mode mode;
	unsigned cache_mib;
	/* Bring the ring to its end first (a thousand small reads), so the
	 * workload wraps it. Done with the default cache only: the other
	 * modes map per request, which makes a thousand requests slow here,
	 * and ring positions do not depend on how memory is mapped. */
	bool wrap;
} mems[] = {
	{"foreign_cache_64m_wrapped_ring", VD_XEN_MEM_FOREIGN, 64, true},
	/* Smaller than one request: buckets evicted while others pinned. */
	{"foreign_cache_1m", VD_XEN_MEM_FOREIGN, 1, false},
	{"foreign_no_cache", VD_XEN_MEM_FOREIGN, VD_XEN_MAP_CACHE_NONE, false},
	{"grant", VD_XEN_MEM_GRANT, 0, false},
};
#define N_MEMS (sizeof(mems) / sizeof(mems[0]))

static const char *const engines[] = {"uring", "threads", "sync"};
#define N_ENGINES (sizeof(engines) / sizeof(engines[0]))

struct mx_case {
	bool packed, indirect, event_idx;
	enum xt_shape shape;
	const struct mem_mode *mem;
	const char *engine;
	char name[160];
};

/* ---- one case's guest, device and image */

/* One image for every case, reset between them (fresh pages cost more
 * than the I/O here). */
static struct xt_disk disk;
static uint8_t buf[SLOT_SECS * 512]; /* one request's data */

struct mx {
	const struct mx_case *c;
	struct xt_server srv;
	struct sx_vdev *dev;
	char *state_dir;
	uint8_t *ram;
	uint64_t area;
	struct xt_frames frames;
	unsigned requests, batches;
	uint32_t seed;
};

static struct mx *cur; /* the running case's, for teardown */

static int group_setup(void **state)
{
	(void)state;
	return xt_begin(&disk, IMG_SIZE);
}

static int group_teardown(void **state)
{
	(void)state;
	return xt_end(&disk);
}

static int case_teardown(void **state)
{
	struct mx *m = cur;

	(void)state;
	cur = NULL;
	if (!m)
		return 0;
	xt_serve_stop(&m->srv, VD_STOP);
	sx_vdev_free(m->dev);
	sx_domain_destroy(DOMID);
	if (m->state_dir)
		rmdir(m->state_dir);
	free(m->state_dir);
	free(m);
	return 0;
}

static uint64_t features(const struct mx_case *c)
{
	uint64_t f = 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_BLK_F_FLUSH |
		     1ULL << VIRTIO_BLK_F_SEG_MAX |
		     1ULL << VIRTIO_BLK_F_SIZE_MAX |
		     1ULL << VIRTIO_BLK_F_DISCARD |
		     1ULL << VIRTIO_BLK_F_WRITE_ZEROES |
		     1ULL << VIRTIO_F_ACCESS_PLATFORM;

	if (c->packed)
		f |= 1ULL << VIRTIO_F_RING_PACKED;
	if (c->indirect)
		f |= 1ULL << VIRTIO_RING_F_INDIRECT_DESC;
	if (c->event_idx)
		f |= 1ULL << VIRTIO_RING_F_EVENT_IDX;
	return f;
}

static struct mx *mx_start(const struct mx_case *c)
{
	const char *opts[2] = {NULL, NULL};
	char engine[32];
	struct sx_vdev_opts o = {.domid = DOMID,
				 .base = XT_BASE,
				 .grant = c->mem->mode == VD_XEN_MEM_GRANT,
				 .features = features(c),
				 .queue_size = QUEUE_SIZE,
				 .device_id = VIRTIO_ID_BLOCK};
	struct vd_model *model;
	struct mx *m = calloc(1, sizeof(*m));
	uint32_t seg_max = 0;
	uint64_t want;

	cur = m;
	assert_non_null(m);
	m->c = c;
	assert_int_equal(sx_domain_create(DOMID, SX_HVM, 1, 64), 0);
	m->ram = sx_guest_ram(DOMID);
	assert_int_equal(xt_disk_reset(&disk), 0);
	m->state_dir = xt_tmpdir();
	assert_non_null(m->state_dir);
	snprintf(engine, sizeof(engine), "io-engine=%s", c->engine);
	opts[0] = engine;
	model = xt_blk_model_opts(disk.path, opts);
	assert_non_null(model);
	assert_int_equal(xt_serve_start(&m->srv, DOMID, XT_IRQ_X86,
					c->mem->mode, c->mem->cache_mib,
					m->state_dir, model),
			 0);
	assert_int_equal(sx_vdev_probe(&o, &m->dev), 0);
	/* What the case is about was negotiated through the registers (an
	 * image file offers DISCARD: a punched hole). */
	want = o.features;
	if (!o.grant)
		want &= ~(1ULL << VIRTIO_F_ACCESS_PLATFORM);
	assert_int_equal(sx_vdev_features(m->dev) & want, want);
	assert_int_equal(
		sx_vdev_config(m->dev, 0,
			       offsetof(struct virtio_blk_config, seg_max),
			       &seg_max, 4),
		0);
	assert_int_equal(seg_max, 126);
	m->area = sx_vdev_alloc(m->dev, AREA_SIZE);
	m->seed = 1000;
	return m;
}

/* ---- requests as virtio_blk makes them */

static void next_batch(struct mx *m)
{
	/* Everything of the last batch completed: its frames are free. */
	xt_frames_init(&m->frames, m->area, AREA_SIZE);
}

static void hdr(struct mx *m, struct sx_blk_io *io, unsigned variant)
{
	io->hdr_gpa = xt_hdr_place(&m->frames, variant);
	assert_true(io->hdr_gpa != 0);
}

/* A read or write of the case's shape at image slot `slot`. */
static void rw(struct mx *m, struct sx_blk_io *io, uint32_t type, unsigned slot,
	       unsigned variant)
{
	unsigned crossings;
	uint32_t len;

	memset(io, 0, sizeof(*io));
	io->type = type;
	io->sector = (uint64_t)slot * SLOT_SECS;
	hdr(m, io, variant);
	len = xt_shape_fill(m->c->shape, &m->frames, io, &crossings);
	assert_true(len > 0 && len <= SLOT_SECS * 512);
	/* The shapes that promise bucket crossings have them. */
	if (m->c->shape != XT_SHAPE_4K_DESCENDING)
		assert_true(crossings >= 2);
	if (type == VIRTIO_BLK_T_OUT) {
		for (uint32_t i = 0; i < len; i++)
			buf[i] = xt_pattern(m->seed, i);
		m->seed++;
		xt_buf_to_segs(m->ram, io, buf);
		xt_disk_wrote(&disk, io->sector, buf, len);
	} else {
		memset(buf, 0xa5, len); /* stale guest memory */
		xt_buf_to_segs(m->ram, io, buf);
	}
}

static void flush(struct mx *m, struct sx_blk_io *io, unsigned variant)
{
	memset(io, 0, sizeof(*io));
	io->type = VIRTIO_BLK_T_FLUSH;
	hdr(m, io, variant);
}

/* DISCARD / WRITE_ZEROES of n ranges of nsec sectors, 64 sectors apart
 * (bios the block layer merged): the ranges are kmalloc'ed, here the last
 * bytes before a page end. */
static void dwz(struct mx *m, struct sx_blk_io *io, uint32_t type,
		uint64_t sector, uint32_t nsec, unsigned n, uint32_t flags)
{
	struct virtio_blk_discard_write_zeroes *r;
	uint32_t len = n * (uint32_t)sizeof(*r);
	uint64_t g;

	memset(io, 0, sizeof(*io));
	io->type = type;
	hdr(m, io, 0);
	g = xt_frames_take(&m->frames, 1, 1);
	assert_true(g != 0);
	r = (struct virtio_blk_discard_write_zeroes *)(m->ram + g + 4096 - len);
	for (unsigned k = 0; k < n; k++) {
		uint64_t at = sector + k * (uint64_t)(nsec + 64);

		r[k] = (struct virtio_blk_discard_write_zeroes){
			.sector = at, .num_sectors = nsec, .flags = flags};
		if (type == VIRTIO_BLK_T_WRITE_ZEROES)
			xt_disk_zeroed(&disk, at, nsec);
		else
			xt_disk_discarded(&disk, at, nsec);
	}
	io->seg[0] = (struct sx_seg){g + 4096 - len, len};
	io->nseg = 1;
}

static void get_id(struct mx *m, struct sx_blk_io *io)
{
	uint64_t g = xt_frames_take(&m->frames, 2, 1);

	memset(io, 0, sizeof(*io));
	io->type = VIRTIO_BLK_T_GET_ID;
	hdr(m, io, 1);
	assert_true(g != 0);
	/* 20 bytes across a page boundary. */
	io->seg[0] = (struct sx_seg){g + 0xff8, VIRTIO_BLK_ID_BYTES};
	io->nseg = 1;
}

static uint32_t data_len(const struct sx_blk_io *io)
{
	uint32_t n = 0;

	for (unsigned i = 0; i < io->nseg; i++)
		n += io->seg[i].len;
	return n;
}

/* Submits a batch (one kick decision) and checks every completion; with
 * count_irqs, that the device interrupted exactly once for it. */
static void run_batch(struct mx *m, struct sx_blk_io *io, unsigned n,
		      unsigned flags, bool count_irqs)
{
	uint64_t e0 = sx_irq_edges(DOMID), e1;

	assert_int_equal(sx_blk_submit(m->dev, 0, io, n, flags), 0);
	e1 = sx_irq_edges(DOMID);
	m->requests += n;
	m->batches++;
	if (count_irqs)
		/* used_event / off_wrap named the last buffer: the device
		 * interrupts exactly once for the whole batch. */
		assert_int_equal(e1 - e0, 1);
	for (unsigned i = 0; i < n; i++) {
		uint32_t len = data_len(&io[i]);

		assert_int_equal(io[i].status, VIRTIO_BLK_S_OK);
		switch (io[i].type) {
		case VIRTIO_BLK_T_IN:
			/* Used length: data and status (docs/blk.md). */
			assert_int_equal(io[i].used_len, len + 1);
			xt_segs_to_buf(m->ram, &io[i], buf);
			assert_true(
				xt_disk_read_ok(&disk, io[i].sector, buf, len));
			break;
		case VIRTIO_BLK_T_GET_ID:
			assert_memory_equal(m->ram + io[i].seg[0].gpa, "vd-",
					    3);
			break;
		default:
			assert_int_equal(io[i].used_len, 1);
		}
	}
}

/* Linux has done I/O before: small reads bring the ring to its end, so
 * the requests below wrap it (split: avail and used positions; packed: a
 * chain across the end, the wrap counters, off_wrap across a wrap). */
static void warm_up(struct mx *m)
{
	static struct sx_blk_io io[WARM_BATCH];
	/* A 4 KiB read takes 3 slots unless it goes indirect (split: one
	 * avail entry whatever it takes). */
	unsigned per = m->c->packed && !m->c->indirect ? 3 : 1;
	unsigned left = (QUEUE_SIZE - 2) / per, k = 0;

	while (left) {
		unsigned n = left < WARM_BATCH ? left : WARM_BATCH;

		next_batch(m);
		for (unsigned i = 0; i < n; i++, k++) {
			memset(&io[i], 0, sizeof(io[i]));
			io[i].type = VIRTIO_BLK_T_IN;
			io[i].sector = (k * 8) % (IMG_SIZE / 512);
			hdr(m, &io[i], i % 2);
			io[i].seg[0].gpa = xt_frames_take(&m->frames, 1, 1);
			io[i].seg[0].len = 4096;
			io[i].nseg = 1;
			assert_true(io[i].seg[0].gpa != 0);
		}
		run_batch(m, io, n, 0, false);
		left -= n;
	}
}

static void workload(struct mx *m)
{
	static struct sx_blk_io io[BATCH_MAX];
	unsigned n = 0, one_irq;

	if (m->c->mem->wrap)
		warm_up(m);
	/* A read of known content, writes, a FLUSH behind them. */
	next_batch(m);
	rw(m, &io[n++], VIRTIO_BLK_T_IN, 0, 0);
	rw(m, &io[n++], VIRTIO_BLK_T_OUT, 1, 1);
	rw(m, &io[n++], VIRTIO_BLK_T_OUT, 2, 2);
	flush(m, &io[n++], 1);
	/* With EVENT_IDX, one interrupt here too: a batch whose driver
	 * re-armed at its next slot (virtqueue_enable_cb) may see the
	 * device's decision for its last round come after the driver took
	 * every completion, an edge the next batch would count. */
	one_irq = m->c->event_idx ? SX_SUBMIT_ONE_IRQ : 0;
	run_batch(m, io, n, one_irq, false);

	/* Read a write back, overwrite what was read, zero and discard;
	 * with EVENT_IDX one interrupt for all of it. */
	n = 0;
	next_batch(m);
	rw(m, &io[n++], VIRTIO_BLK_T_IN, 1, 2);
	rw(m, &io[n++], VIRTIO_BLK_T_OUT, 0, 0);
	dwz(m, &io[n++], VIRTIO_BLK_T_WRITE_ZEROES, 3 * SLOT_SECS + 8, 1000, 1,
	    VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	dwz(m, &io[n++], VIRTIO_BLK_T_WRITE_ZEROES, 3 * SLOT_SECS + 2048, 64, 3,
	    0);
	dwz(m, &io[n++], VIRTIO_BLK_T_DISCARD, 4 * SLOT_SECS + 16, 600, 3, 0);
	flush(m, &io[n++], 0);
	run_batch(m, io, n, one_irq, one_irq != 0);

	/* What was zeroed and discarded reads back so; the serial. */
	n = 0;
	next_batch(m);
	rw(m, &io[n++], VIRTIO_BLK_T_IN, 3, 1);
	rw(m, &io[n++], VIRTIO_BLK_T_IN, 4, 0);
	get_id(m, &io[n++]);
	run_batch(m, io, n, 0, false);
}

static void run_case(void **state)
{
	const struct mx_case *c = *state;
	struct mx *m = mx_start(c);
	struct sx_vdev_stats st;
	struct sx_counters cnt;
	char why[160];

	workload(m);
	if (xt_disk_check(&disk, why, sizeof(why)))
		fail_msg("%s: %s", c->name, why);
	sx_vdev_stats(m->dev, &st);
	assert_int_equal(st.bad_ring, 0);
	/* Linux's choice: every request (more than one entry) indirect
	 * when negotiated. */
	assert_int_equal(st.indirect, c->indirect ? m->requests : 0);
	assert_int_equal(st.direct, c->indirect ? 0 : m->requests);
	/* One kick decision per batch, honouring the device's wishes. */
	assert_int_equal(st.kicks + st.kicks_suppressed, m->batches);
	assert_int_equal(xt_serve_stop(&m->srv, VD_STOP), 0);
	sx_counters(&cnt);
	assert_int_equal(cnt.fm_live_pages, 0);
	assert_int_equal(cnt.gnt_live_pages, 0);
	assert_int_equal(cnt.gnt_refused, 0);
}

/* ---- the table */

#define N_CASES (2 * 2 * 2 * XT_SHAPES * N_MEMS * N_ENGINES)
static struct mx_case cases[N_CASES];

/* Case i is one point of the cross product (mixed-radix digits of i). */
static void build_case(struct mx_case *c, unsigned i)
{
	c->engine = engines[i % N_ENGINES];
	i /= N_ENGINES;
	c->mem = &mems[i % N_MEMS];
	i /= N_MEMS;
	c->shape = (enum xt_shape)(i % XT_SHAPES);
	i /= XT_SHAPES;
	c->event_idx = i % 2;
	c->indirect = (i / 2) % 2;
	c->packed = (i / 4) % 2;
	snprintf(c->name, sizeof(c->name), "%s_%s_%s_%s_%s_%s_match_image",
		 c->packed ? "packed" : "split",
		 c->indirect ? "indirect" : "direct",
		 c->event_idx ? "event_idx" : "notify_flags",
		 xt_shape_name(c->shape), c->mem->name, c->engine);
}

int main(void)
{
	static struct CMUnitTest tests[N_CASES];

	for (unsigned i = 0; i < N_CASES; i++) {
		build_case(&cases[i], i);
		tests[i] = (struct CMUnitTest){.name = cases[i].name,
					       .test_func = run_case,
					       .teardown_func = case_teardown,
					       .initial_state = &cases[i]};
	}
	return _cmocka_run_group_tests("test_xen_blk_matrix", tests, N_CASES,
				       group_setup, group_teardown);
}
