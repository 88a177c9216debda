/* virtio-blk served to a stand-in Xen guest through the unmodified shim:
 * probe, I/O with data checked against the image, foreign and grant
 * mapping, several vCPUs at once (also on EVENT_IDX split and packed
 * rings, where kicks and interrupts are suppressed), INVALIDATE mid-I/O, the
 * mapping cache's zero map calls at steady state, Arm and x86 interrupts, PVH
 * refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <xen/hvm/ioreq.h>

#include <cmocka.h>

#include "xtest.h"

#define DOMID 5

struct fx {
	char img[64];
	int img_fd;
	struct xt_server srv;
	struct sx_vdev *dev;
	char *state_dir;
};

static int group_setup(void **state)
{
	(void)state;
	vd_log_set_level(VD_LOG_WARN);
	sx_init(SX_X86);
	return 0;
}

static struct fx *cur; /* the running test's, for fx_teardown */

static struct fx *fx_new(enum sx_domtype type, unsigned vcpus)
{
	struct fx *f = calloc(1, sizeof(*f));

	cur = f;
	assert_non_null(f);
	assert_int_equal(sx_domain_create(DOMID, type, vcpus, 64), 0);
	f->img_fd = xt_image(f->img, sizeof(f->img));
	assert_true(f->img_fd >= 0);
	f->state_dir = xt_tmpdir();
	assert_non_null(f->state_dir);
	return f;
}

static void fx_serve_irq(struct fx *f, enum vd_xen_mem_mode mode,
			 unsigned cache, unsigned irq)
{
	struct vd_model *m = xt_blk_model(f->img, false);

	assert_non_null(m);
	assert_int_equal(xt_serve_start(&f->srv, DOMID, irq, mode, cache,
					f->state_dir, m),
			 0);
}

static void fx_serve(struct fx *f, enum vd_xen_mem_mode mode, unsigned cache)
{
	fx_serve_irq(f, mode, cache, XT_IRQ_X86);
}

static void fx_probe_with(struct fx *f, bool grant, uint64_t ring_features)
{
	struct sx_vdev_opts o = {
		.domid = DOMID,
		.base = XT_BASE,
		.grant = grant,
		.features = (1ULL << VIRTIO_F_VERSION_1) |
			    (1ULL << VIRTIO_BLK_F_FLUSH) |
			    (1ULL << VIRTIO_F_ACCESS_PLATFORM) | ring_features,
		.queue_size = 128,
		.device_id = VIRTIO_ID_BLOCK,
	};

	assert_int_equal(sx_vdev_probe(&o, &f->dev), 0);
	assert_int_equal(sx_vdev_features(f->dev) & ring_features,
			 ring_features);
}

static void fx_probe(struct fx *f, bool grant)
{
	fx_probe_with(f, grant, 0);
}

/* After every test, passed or failed: stop serving, drop the guest. */
static int fx_teardown(void **state)
{
	struct fx *f = cur;

	(void)state;
	cur = NULL;
	sx_set_arch(SX_X86);
	sx_set_xc_privileged(true);
	if (!f)
		return 0;
	xt_serve_stop(&f->srv, VD_XEN_STOP);
	sx_vdev_free(f->dev);
	sx_domain_destroy(DOMID);
	close(f->img_fd);
	unlink(f->img);
	rmdir(f->state_dir);
	free(f->state_dir);
	free(f);
	return 0;
}

static bool guest_has_pattern(uint32_t domid, uint64_t gpa, uint64_t sector,
			      unsigned nsec)
{
	const uint8_t *p = sx_guest_ram(domid) + gpa;

	for (unsigned s = 0; s < nsec; s++)
		for (size_t i = 0; i < 512; i++)
			if (p[s * 512 + i] !=
			    xt_pattern((uint32_t)(sector + s), i))
				return false;
	return true;
}

/* Read 8 sectors from `sector`, check them; write a fresh pattern, check
 * the image file and read it back. */
static void io_round(struct fx *f, unsigned vcpu, uint64_t sector,
		     uint64_t rbuf, uint64_t wbuf, uint32_t seed)
{
	uint8_t *ram = sx_guest_ram(DOMID), img[4096];

	memset(ram + rbuf, 0, 4096);
	assert_int_equal(
		sx_blk_rw(f->dev, vcpu, VIRTIO_BLK_T_IN, sector, rbuf, 4096),
		VIRTIO_BLK_S_OK);
	assert_true(guest_has_pattern(DOMID, rbuf, sector, 8));
	for (size_t i = 0; i < 4096; i++)
		ram[wbuf + i] = xt_pattern(seed, i);
	assert_int_equal(sx_blk_rw(f->dev, vcpu, VIRTIO_BLK_T_OUT,
				   sector + 4096, wbuf, 4096),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(
		pread(f->img_fd, img, 4096, (off_t)(sector + 4096) * 512),
		4096);
	assert_memory_equal(img, ram + wbuf, 4096);
}

static void foreign_probe_io_and_teardown(void **state)
{
	struct fx *f = fx_new(SX_HVM, 1);
	struct sx_counters c;
	uint64_t cap = 0, rbuf, wbuf, edges0;

	(void)state;
	fx_serve(f, VD_XEN_MEM_FOREIGN, 0);
	fx_probe(f, false);
	/* Linux reads capacity from config space through the generation. */
	assert_int_equal(sx_vdev_config(f->dev, 0, 0, &cap, 8), 0);
	assert_int_equal(cap, XT_IMG_SIZE / 512);
	assert_false(sx_vdev_features(f->dev) &
		     (1ULL << VIRTIO_F_ACCESS_PLATFORM));
	rbuf = sx_vdev_alloc(f->dev, 4096);
	wbuf = sx_vdev_alloc(f->dev, 4096);
	edges0 = sx_irq_edges(DOMID);
	for (unsigned i = 0; i < 16; i++)
		io_round(f, 0, i * 8, rbuf, wbuf, 1000 + i);
	/* The guest looks at the ring only when interrupted (as Linux), so
	 * every request above completing proves no interrupt was lost; edges
	 * may coalesce while InterruptStatus is unacknowledged. */
	assert_true(sx_irq_edges(DOMID) > edges0);
	assert_true(sx_vdev_isr_reads(f->dev) >= 1);
	sx_counters(&c);
	assert_int_equal(c.isa_on_pvh, 0);
	assert_int_equal(c.irq_level_calls, 0); /* Arm-only call, x86 guest */
	assert_true(c.dm_restrict >= 1 && c.fm_restrict >= 1 &&
		    c.ev_restrict >= 1);
	assert_int_equal(c.restricted_violations, 0);

	assert_int_equal(xt_serve_stop(&f->srv, VD_XEN_STOP), 0);
	sx_counters(&c);
	assert_int_equal(sx_servers(DOMID), 0);
	assert_int_equal(c.fm_live_pages, 0);
	/* Removed for good: nothing for a successor. */
	assert_int_equal(rmdir(f->state_dir), 0);
	assert_int_equal(mkdir(f->state_dir, 0700), 0);
}

static void foreign_steady_state_makes_no_map_call(void **state)
{
	struct fx *f = fx_new(SX_HVM, 1);
	struct sx_counters a, b;
	uint64_t buf[4];
	struct timespec t0, t1;
	unsigned n = 2000;
	double secs;

	(void)state;
	fx_serve(f, VD_XEN_MEM_FOREIGN, 0);
	fx_probe(f, false);
	for (int i = 0; i < 4; i++)
		buf[i] = sx_vdev_alloc(f->dev, 65536);
	for (unsigned i = 0; i < 64; i++)
		assert_int_equal(sx_blk_rw(f->dev, 0, VIRTIO_BLK_T_IN, i * 16,
					   buf[i % 4], 8192),
				 0);
	sx_counters(&a);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(
			sx_blk_rw(f->dev, 0,
				  i % 2 ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
				  (i * 16) % 8000, buf[i % 4], 4096),
			0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	sx_counters(&b);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	       (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("# foreign, 64 MiB cache: %.0f requests/s, %.3f map calls per "
	       "request\n",
	       n / secs, (double)(b.fm_map - a.fm_map) / n);
	assert_int_equal(b.fm_map - a.fm_map, 0);
	assert_int_equal(b.fm_unmap - a.fm_unmap, 0);
	assert_int_equal(xt_serve_stop(&f->srv, VD_XEN_STOP), 0);
}

static double run_reads(struct fx *f, unsigned n, const uint64_t *buf,
			unsigned nbuf, struct sx_counters *delta)
{
	struct sx_counters a, b;
	struct timespec t0, t1;

	sx_counters(&a);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(sx_blk_rw(f->dev, 0, VIRTIO_BLK_T_IN,
					   (i * 8) % 8000, buf[i % nbuf], 4096),
				 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	sx_counters(&b);
	delta->fm_map = b.fm_map - a.fm_map;
	delta->fm_unmap = b.fm_unmap - a.fm_unmap;
	delta->gnt_map = b.gnt_map - a.gnt_map;
	return n / ((double)(t1.tv_sec - t0.tv_sec) +
		    (t1.tv_nsec - t0.tv_nsec) / 1e9);
}

/* --map-cache-size 0 (none): every request maps and unmaps; still right. */
static void foreign_without_cache_maps_per_request(void **state)
{
	struct fx *f = fx_new(SX_HVM, 1);
	struct sx_counters d, c;
	uint64_t buf[8];
	double rps;

	(void)state;
	fx_serve(f, VD_XEN_MEM_FOREIGN, VD_XEN_MAP_CACHE_NONE);
	fx_probe(f, false);
	for (int i = 0; i < 8; i++)
		buf[i] = sx_vdev_alloc(f->dev, 1 << 20); /* a bucket each */
	io_round(f, 0, 64, buf[0], buf[1], 77);
	rps = run_reads(f, 1000, buf, 8, &d);
	printf("# foreign, no cache: %.0f requests/s, %.2f map calls per "
	       "request\n",
	       rps, (double)d.fm_map / 1000);
	/* header+status bucket and data bucket, each request */
	assert_true(d.fm_map >= 1000);
	assert_int_equal(d.fm_map, d.fm_unmap);
	assert_int_equal(xt_serve_stop(&f->srv, VD_XEN_STOP), 0);
	sx_counters(&c);
	assert_int_equal(c.fm_live_pages, 0);
}

static void grant_mapping_unmaps_before_completion(void **state)
{
	struct fx *f = fx_new(SX_HVM, 1);
	struct sx_counters a, b, c;
	uint64_t rbuf, wbuf;
	double rps;

	(void)state;
	fx_serve(f, VD_XEN_MEM_GRANT, 0);
	fx_probe(f, true);
	/* Grant mode offers ACCESS_PLATFORM: the driver must translate. */
	assert_true(sx_vdev_features(f->dev) &
		    (1ULL << VIRTIO_F_ACCESS_PLATFORM));
	rbuf = sx_vdev_alloc(f->dev, 4096);
	wbuf = sx_vdev_alloc(f->dev, 4096);
	sx_counters(&a);
	/* sx_blk_rw revokes every grant on completion and fails with
	 * -EBUSY if the backend still had one mapped. */
	for (unsigned i = 0; i < 16; i++)
		io_round(f, 0, i * 8, rbuf, wbuf, 2000 + i);
	sx_counters(&b);
	assert_true(b.gnt_map - a.gnt_map >= 32 * 3);
	assert_int_equal(b.gnt_refused, 0);
	/* Guest RAM is never foreign-mapped in grant mode. */
	assert_int_equal(b.fm_map, a.fm_map);
	{
		uint64_t buf[1] = {rbuf};
		struct sx_counters d;

		rps = run_reads(f, 1000, buf, 1, &d);
		printf("# grant: %.0f requests/s, %.2f grant map calls per "
		       "request\n",
		       rps, (double)d.gnt_map / 1000);
	}
	assert_int_equal(xt_serve_stop(&f->srv, VD_XEN_STOP), 0);
	sx_counters(&c);
	assert_int_equal(c.gnt_live_pages, 0);
}

/* A descriptor whose address is not a grant reference is refused. */
static void grant_mode_refuses_physical_addresses(void **state)
{
	struct fx *f = fx_new(SX_HVM, 1);
	struct sx_vdev_opts o = {.domid = DOMID,
				 .base = XT_BASE,
				 .grant = false, /* rings by gfn: refused */
				 .features = 1ULL << VIRTIO_F_VERSION_1 |
					     1ULL << VIRTIO_F_ACCESS_PLATFORM,
				 .queue_size = 64,
				 .device_id = VIRTIO_ID_BLOCK};
	struct sx_vdev *d = NULL;
	struct sx_counters a, b;

	(void)state;
	fx_serve(f, VD_XEN_MEM_GRANT, 0);
	sx_counters(&a);
	/* QueueReady does not stick: the rings could not be mapped. */
	assert_int_equal(sx_vdev_probe(&o, &d), -EIO);
	sx_counters(&b);
	assert_int_equal(b.gnt_map, a.gnt_map); /* refused before mapping */
	assert_int_equal(xt_serve_stop(&f->srv, VD_XEN_STOP), 0);
}

struct worker {
	struct fx *f;
	unsigned vcpu;
	int failures;
};

static void *vcpu_worker(void *arg)
{
	struct worker *w = arg;
	uint8_t *ram = sx_guest_ram(DOMID);
	uint64_t buf = sx_vdev_alloc(w->f->dev, 8192);
	uint64_t sector = 2048 + w->vcpu * 512;

	for (unsigned i = 0; i < 100; i++) {
		uint64_t cap = 0;

		for (size_t k = 0; k < 4096; k++)
			ram[buf + k] = xt_pattern(w->vcpu * 1000 + i, k);
		if (sx_blk_rw(w->f->dev, w->vcpu, VIRTIO_BLK_T_OUT, sector, buf,
			      4096) != 0)
			w->failures++;
		memset(ram + buf + 4096, 0, 4096);
		if (sx_blk_rw(w->f->dev, w->vcpu, VIRTIO_BLK_T_IN, sector,
			      buf + 4096, 4096) != 0 ||
		    memcmp(ram + buf, ram + buf + 4096, 4096))
			w->failures++;
		/* Config reads from every vCPU at once too. */
		if (sx_vdev_config(w->f->dev, w->vcpu, 0, &cap, 8) ||
		    cap != XT_IMG_SIZE / 512)
			w->failures++;
	}
	return NULL;
}

static void run_vcpus(unsigned n, uint64_t ring_features)
{
	struct fx *f = fx_new(SX_HVM, n);
	struct worker w[SX_MAX_VCPUS];
	pthread_t t[SX_MAX_VCPUS];
	struct sx_counters c;
	struct sx_vdev_stats st;

	fx_serve(f, VD_XEN_MEM_FOREIGN, 0);
	fx_probe_with(f, false, ring_features);
	for (unsigned i = 0; i < n; i++) {
		w[i] = (struct worker){.f = f, .vcpu = i};
		assert_int_equal(
			pthread_create(&t[i], NULL, vcpu_worker, &w[i]), 0);
	}
	for (unsigned i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
	sx_counters(&c);
	assert_int_equal(c.ioreq_timeouts, 0);
	sx_vdev_stats(f->dev, &st);
	assert_int_equal(st.bad_ring, 0);
	if (ring_features)
		printf("# %u vCPUs: %llu kicks, %llu suppressed by the device, "
		       "%llu interrupts (%llu with nothing used)\n",
		       n, (unsigned long long)st.kicks,
		       (unsigned long long)st.kicks_suppressed,
		       (unsigned long long)st.irqs,
		       (unsigned long long)st.irqs_no_work);
	assert_int_equal(xt_serve_stop(&f->srv, VD_XEN_STOP), 0);
}

static void one_vcpu_io_and_config(void **state)
{
	(void)state;
	run_vcpus(1, 0);
}

static void four_vcpus_issue_ioreqs_concurrently(void **state)
{
	(void)state;
	run_vcpus(4, 0);
}

/* Requests added while the device works: the driver skips kicks that
 * avail_event or the packed event flags say are not wanted, and takes
 * interrupts only as used_event / off_wrap ask; none may be lost. */
static void four_vcpus_on_a_split_ring_with_event_idx_lose_nothing(void **s)
{
	(void)s;
	run_vcpus(4, 1ULL << VIRTIO_RING_F_EVENT_IDX |
			     1ULL << VIRTIO_RING_F_INDIRECT_DESC);
}

static void four_vcpus_on_a_packed_ring_with_event_idx_lose_nothing(void **s)
{
	(void)s;
	run_vcpus(4, 1ULL << VIRTIO_RING_F_EVENT_IDX |
			     1ULL << VIRTIO_F_RING_PACKED);
}

struct inval {
	volatile int stop;
	unsigned n;
};

static void *invalidator(void *arg)
{
	struct inval *iv = arg;

	while (!iv->stop) {
		assert_int_equal(sx_invalidate(DOMID, 1), 0);
		iv->n++;
		usleep(500);
	}
	return NULL;
}

/* The balloon driver's INVALIDATE while requests are in flight: pinned
 * mappings survive for their requests, the rest is mapped again. */
static void invalidate_in_the_middle_of_io(void **state)
{
	struct fx *f = fx_new(SX_HVM, 2);
	struct inval iv = {0};
	struct sx_counters a, b;
	uint64_t rbuf, wbuf;
	pthread_t t;

	(void)state;
	fx_serve(f, VD_XEN_MEM_FOREIGN, 0);
	fx_probe(f, false);
	rbuf = sx_vdev_alloc(f->dev, 4096);
	wbuf = sx_vdev_alloc(f->dev, 4096);
	io_round(f, 0, 0, rbuf, wbuf, 1);
	sx_counters(&a);
	assert_int_equal(pthread_create(&t, NULL, invalidator, &iv), 0);
	for (unsigned i = 0; i < 200; i++)
		io_round(f, 0, (i * 8) % 2000, rbuf, wbuf, 3000 + i);
	iv.stop = 1;
	pthread_join(t, NULL);
	sx_counters(&b);
	assert_true(iv.n > 0);
	/* Mappings were dropped and made again. */
	assert_true(b.fm_unmap > a.fm_unmap && b.fm_map > a.fm_map);
	assert_int_equal(xt_serve_stop(&f->srv, VD_XEN_STOP), 0);
	sx_counters(&b);
	assert_int_equal(b.fm_live_pages, 0);
}

static void guest_death_ends_serving(void **state)
{
	struct fx *f = fx_new(SX_HVM, 1);
	struct sx_counters c;
	uint64_t rbuf, wbuf;

	(void)state;
	fx_serve(f, VD_XEN_MEM_FOREIGN, 0);
	fx_probe(f, false);
	rbuf = sx_vdev_alloc(f->dev, 4096);
	wbuf = sx_vdev_alloc(f->dev, 4096);
	io_round(f, 0, 0, rbuf, wbuf, 9);
	sx_domain_destroy(DOMID);
	/* serve notices within its liveness period and returns by itself */
	for (int i = 0;
	     i < 400 && !__atomic_load_n(&f->srv.done, __ATOMIC_ACQUIRE); i++)
		usleep(10000);
	assert_true(__atomic_load_n(&f->srv.done, __ATOMIC_ACQUIRE));
	assert_int_equal(xt_serve_stop(&f->srv, 0), 0);
	sx_counters(&c);
	assert_int_equal(c.fm_live_pages, 0);
}

static void bad_widths_and_unknown_registers_are_ignored(void **state)
{
	struct fx *f = fx_new(SX_HVM, 1);
	uint64_t v, rbuf, wbuf;
	static const unsigned widths[] = {1, 2, 8};

	(void)state;
	fx_serve(f, VD_XEN_MEM_FOREIGN, 0);
	fx_probe(f, false);
	for (unsigned i = 0; i < 3; i++) {
		/* Registers take 32-bit accesses only: reads give 0. */
		assert_int_equal(sx_mmio_read(DOMID, 0, XT_BASE, widths[i], &v),
				 0);
		assert_int_equal(v, 0);
		assert_int_equal(sx_mmio_write(DOMID, 0,
					       XT_BASE + VIRTIO_MMIO_STATUS,
					       widths[i], 0),
				 0);
	}
	/* Unaligned, unknown (legacy QueuePFN, a hole), read-only. */
	assert_int_equal(sx_mmio_read(DOMID, 0, XT_BASE + 2, 4, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(sx_mmio_write(DOMID, 0, XT_BASE + 0x040, 4, 1), 0);
	assert_int_equal(sx_mmio_read(DOMID, 0, XT_BASE + 0x0c4, 4, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(sx_mmio_write(DOMID, 0, XT_BASE, 4, 0), 0);
	assert_int_equal(sx_mmio_read(DOMID, 0, XT_BASE, 4, &v), 0);
	assert_int_equal(v, 0x74726976);
	/* Queue setup after DRIVER_OK is refused: the ring stays where it
	 * is, the device keeps working. */
	assert_int_equal(sx_mmio_write(DOMID, 0,
				       XT_BASE + VIRTIO_MMIO_QUEUE_DESC_LOW, 4,
				       0x1000),
			 0);
	assert_int_equal(
		sx_mmio_write(DOMID, 0, XT_BASE + VIRTIO_MMIO_QUEUE_NUM, 4, 8),
		0);
	/* Notify for a queue that does not exist. */
	assert_int_equal(sx_mmio_write(DOMID, 0,
				       XT_BASE + VIRTIO_MMIO_QUEUE_NOTIFY, 4,
				       7),
			 0);
	/* Config space past its end: 0; inside it any width works. */
	assert_int_equal(sx_mmio_read(DOMID, 0, XT_BASE + 0x1f8, 8, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(sx_mmio_read(DOMID, 0, XT_BASE + 0x100, 8, &v), 0);
	assert_int_equal(v, XT_IMG_SIZE / 512);
	assert_int_equal(sx_mmio_read(DOMID, 0, XT_BASE + 0x100, 2, &v), 0);
	assert_int_equal(v, (XT_IMG_SIZE / 512) & 0xffff);
	assert_int_equal(
		sx_mmio_read(DOMID, 0, XT_BASE + VIRTIO_MMIO_STATUS, 4, &v), 0);
	assert_int_equal(v, 0xf);
	rbuf = sx_vdev_alloc(f->dev, 4096);
	wbuf = sx_vdev_alloc(f->dev, 4096);
	io_round(f, 0, 8, rbuf, wbuf, 5);
	assert_int_equal(xt_serve_stop(&f->srv, VD_XEN_STOP), 0);
}

static void port_io_data_is_ptr_and_odd_types_are_answered(void **state)
{
	struct fx *f = fx_new(SX_HVM, 1);
	uint8_t *ram = sx_guest_ram(DOMID);
	int id;
	uint64_t d;

	(void)state;
	fx_serve(f, VD_XEN_MEM_FOREIGN, 0);
	id = sx_server_for(DOMID, XT_BASE);
	assert_true(id >= 0);
	d = 0;
	assert_int_equal(sx_raw_ioreq(DOMID, id, 0, IOREQ_TYPE_PIO, true, 0x60,
				      1, 1, false, &d),
			 0);
	assert_int_equal(d, 0xff);
	d = 0x12345678;
	assert_int_equal(sx_raw_ioreq(DOMID, id, 0, IOREQ_TYPE_PIO, false, 0x60,
				      4, 1, false, &d),
			 0);
	/* rep movs into the window: data is a guest address, left alone */
	memset(ram + 0x300000, 0x5a, 64);
	d = 0x300000;
	assert_int_equal(sx_raw_ioreq(DOMID, id, 0, IOREQ_TYPE_COPY, true,
				      XT_BASE, 4, 16, true, &d),
			 0);
	assert_int_equal(d, 0x300000);
	for (int i = 0; i < 64; i++)
		assert_int_equal(ram[0x300000 + i], 0x5a);
	d = 0;
	assert_int_equal(sx_raw_ioreq(DOMID, id, 0, IOREQ_TYPE_COPY, true,
				      XT_BASE, 4, 2, false, &d),
			 0);
	assert_int_equal(d, 0xffffffff);
	d = 0;
	assert_int_equal(sx_raw_ioreq(DOMID, id, 0, IOREQ_TYPE_PCI_CONFIG, true,
				      0, 4, 1, false, &d),
			 0);
	assert_int_equal(d, 0xffffffff);
	d = 0;
	assert_int_equal(
		sx_raw_ioreq(DOMID, id, 0, 0x7f, true, 0, 8, 1, false, &d), 0);
	assert_int_equal(d, ~0ULL);
	/* An address outside the window (Xen would not send it). */
	d = 0;
	assert_int_equal(sx_raw_ioreq(DOMID, id, 0, IOREQ_TYPE_COPY, true,
				      XT_BASE - 4, 4, 1, false, &d),
			 0);
	assert_int_equal(d, 0xffffffff);
	/* and the device still probes */
	fx_probe(f, false);
	assert_int_equal(xt_serve_stop(&f->srv, VD_XEN_STOP), 0);
}

static void spurious_events_are_tolerated(void **state)
{
	struct fx *f = fx_new(SX_HVM, 2);
	uint64_t rbuf, wbuf;
	int id;

	(void)state;
	fx_serve(f, VD_XEN_MEM_FOREIGN, 0);
	id = sx_server_for(DOMID, XT_BASE);
	for (int i = 0; i < 20; i++)
		sx_spurious_event(DOMID, id, (unsigned)i % 2);
	/* the first ioreq a booting guest sends */
	assert_int_equal(sx_invalidate(DOMID, 1), 0);
	fx_probe(f, false);
	for (int i = 0; i < 5; i++)
		sx_spurious_event(DOMID, id, 1);
	rbuf = sx_vdev_alloc(f->dev, 4096);
	wbuf = sx_vdev_alloc(f->dev, 4096);
	io_round(f, 0, 16, rbuf, wbuf, 6);
	assert_int_equal(xt_serve_stop(&f->srv, VD_XEN_STOP), 0);
}

static void pvh_guest_is_refused_before_any_isa_call(void **state)
{
	struct fx *f = fx_new(SX_PVH, 1);
	struct vd_model *m = xt_blk_model(f->img, false);
	struct sx_counters c;

	(void)state;
	assert_non_null(m);
	assert_int_equal(xt_serve_start(&f->srv, DOMID, XT_IRQ_X86,
					VD_XEN_MEM_FOREIGN, 0, f->state_dir, m),
			 -EOPNOTSUPP);
	xt_serve_stop(&f->srv, 0);
	sx_counters(&c);
	assert_int_equal(c.isa_on_pvh, 0);
	assert_int_equal(sx_servers(DOMID), 0);
}

/* In a driver domain the sysctl is refused: the type is unknown, so x86
 * ISA interrupts are refused too (never guessed). */
static void unknown_domain_type_refuses_isa_irqs(void **state)
{
	struct fx *f = fx_new(SX_HVM, 1);
	struct vd_model *m = xt_blk_model(f->img, false);

	(void)state;
	sx_set_xc_privileged(false);
	assert_int_equal(xt_serve_start(&f->srv, DOMID, XT_IRQ_X86,
					VD_XEN_MEM_FOREIGN, 0, f->state_dir, m),
			 -EOPNOTSUPP);
	xt_serve_stop(&f->srv, 0);
}

static void arm_raises_the_spi_edge(void **state)
{
	struct fx *f;
	struct sx_counters a, b;
	uint64_t rbuf, wbuf;

	(void)state;
	sx_set_arch(SX_ARM);
	sx_set_xc_privileged(false); /* an Arm driver domain needs no sysctl */
	f = fx_new(SX_HVM, 1);
	sx_counters(&a);
	fx_serve_irq(f, VD_XEN_MEM_GRANT, 0, XT_IRQ_ARM);
	fx_probe(f, true);
	rbuf = sx_vdev_alloc(f->dev, 4096);
	wbuf = sx_vdev_alloc(f->dev, 4096);
	for (int i = 0; i < 8; i++)
		io_round(f, 0, 8 * i, rbuf, wbuf, 40 + i);
	sx_counters(&b);
	assert_true(b.spi_edges > a.spi_edges);
	assert_int_equal(b.isa_level_calls, a.isa_level_calls);
	assert_int_equal(b.arm_aborts, 0);
	assert_int_equal(xt_serve_stop(&f->srv, VD_XEN_STOP), 0);
}

static void arm_refuses_a_non_spi_irq(void **state)
{
	struct fx *f;
	struct vd_model *m;

	(void)state;
	sx_set_arch(SX_ARM);
	f = fx_new(SX_HVM, 1);
	m = xt_blk_model(f->img, false);
	assert_int_equal(xt_serve_start(&f->srv, DOMID, 7, VD_XEN_MEM_FOREIGN,
					0, f->state_dir, m),
			 -EINVAL);
	xt_serve_stop(&f->srv, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(foreign_probe_io_and_teardown,
					  fx_teardown),
		cmocka_unit_test_teardown(
			foreign_steady_state_makes_no_map_call, fx_teardown),
		cmocka_unit_test_teardown(
			foreign_without_cache_maps_per_request, fx_teardown),
		cmocka_unit_test_teardown(
			grant_mapping_unmaps_before_completion, fx_teardown),
		cmocka_unit_test_teardown(grant_mode_refuses_physical_addresses,
					  fx_teardown),
		cmocka_unit_test_teardown(one_vcpu_io_and_config, fx_teardown),
		cmocka_unit_test_teardown(four_vcpus_issue_ioreqs_concurrently,
					  fx_teardown),
		cmocka_unit_test_teardown(
			four_vcpus_on_a_split_ring_with_event_idx_lose_nothing,
			fx_teardown),
		cmocka_unit_test_teardown(
			four_vcpus_on_a_packed_ring_with_event_idx_lose_nothing,
			fx_teardown),
		cmocka_unit_test_teardown(invalidate_in_the_middle_of_io,
					  fx_teardown),
		cmocka_unit_test_teardown(guest_death_ends_serving,
					  fx_teardown),
		cmocka_unit_test_teardown(
			bad_widths_and_unknown_registers_are_ignored,
			fx_teardown),
		cmocka_unit_test_teardown(
			port_io_data_is_ptr_and_odd_types_are_answered,
			fx_teardown),
		cmocka_unit_test_teardown(spurious_events_are_tolerated,
					  fx_teardown),
		cmocka_unit_test_teardown(
			pvh_guest_is_refused_before_any_isa_call, fx_teardown),
		cmocka_unit_test_teardown(unknown_domain_type_refuses_isa_irqs,
					  fx_teardown),
		cmocka_unit_test_teardown(arm_raises_the_spi_edge, fx_teardown),
		cmocka_unit_test_teardown(arm_refuses_a_non_spi_irq,
					  fx_teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
