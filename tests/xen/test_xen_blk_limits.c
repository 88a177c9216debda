/* virtio-blk requests at the limits the device advertises (seg_max 126
 * segments, size_max 1 MiB each) through the Xen shim, laid out so that
 * every segment maps as two pieces: 8 KiB across a map-cache bucket
 * boundary (foreign mapping, with and without the cache) or 1 MiB over 257
 * frames (grants, mapped 256 per call). Linux makes such requests from
 * scattered or O_DIRECT buffers; the device must serve them, and the data
 * must match the image byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "xtest.h"

#define DOMID	  5
#define RAM_MIB	  160
#define IMG_SIZE  (128u << 20)
#define SEGS	  126
#define AREA_SIZE (148ULL << 20)

struct limit_case {
	const char *name;
	bool packed, indirect;
	enum vd_xen_mem_mode mode;
	unsigned cache_mib;
	uint32_t type;
};

static const struct limit_case cases[] = {
	{"split_indirect_read_126_segments_each_across_a_bucket_match_image",
	 false, true, VD_XEN_MEM_FOREIGN, 64, VIRTIO_BLK_T_IN},
	{"packed_indirect_write_126_segments_each_across_a_bucket_match_image",
	 true, true, VD_XEN_MEM_FOREIGN, 64, VIRTIO_BLK_T_OUT},
	{"split_direct_write_126_segments_across_buckets_without_cache_match_"
	 "image",
	 false, false, VD_XEN_MEM_FOREIGN, VD_XEN_MAP_CACHE_NONE,
	 VIRTIO_BLK_T_OUT},
	{"packed_direct_read_126_segments_across_buckets_without_cache_match_"
	 "image",
	 true, false, VD_XEN_MEM_FOREIGN, VD_XEN_MAP_CACHE_NONE,
	 VIRTIO_BLK_T_IN},
	{"split_indirect_read_126_1m_segments_of_257_grants_match_image", false,
	 true, VD_XEN_MEM_GRANT, 0, VIRTIO_BLK_T_IN},
	{"packed_direct_write_126_1m_segments_of_257_grants_match_image", true,
	 false, VD_XEN_MEM_GRANT, 0, VIRTIO_BLK_T_OUT},
};
#define N_CASES (sizeof(cases) / sizeof(cases[0]))

static struct xt_disk disk;
static struct xt_server srv;
static struct sx_vdev *dev;
static char *state_dir;

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
	(void)state;
	xt_case_end(&srv, &dev, DOMID, &state_dir);
	return 0;
}

static void at_the_limits(void **state)
{
	const struct limit_case *c = *state;
	bool grant = c->mode == VD_XEN_MEM_GRANT;
	struct sx_vdev_opts o = {
		.domid = DOMID,
		.base = XT_BASE,
		.grant = grant,
		.features =
			1ULL << VIRTIO_F_VERSION_1 |
			1ULL << VIRTIO_BLK_F_SEG_MAX |
			1ULL << VIRTIO_BLK_F_SIZE_MAX |
			1ULL << VIRTIO_F_ACCESS_PLATFORM |
			(c->packed ? 1ULL << VIRTIO_F_RING_PACKED : 0) |
			(c->indirect ? 1ULL << VIRTIO_RING_F_INDIRECT_DESC : 0),
		.queue_size = 1024,
		.device_id = VIRTIO_ID_BLOCK,
	};
	static struct sx_blk_io io;
	struct xt_frames f;
	struct sx_counters cnt;
	uint8_t *ram, *buf;
	uint32_t len, seg_max = 0, size_max = 0;
	char why[160];

	assert_int_equal(xt_disk_reset(&disk), 0);
	assert_int_equal(sx_domain_create(DOMID, SX_HVM, 1, RAM_MIB), 0);
	ram = sx_guest_ram(DOMID);
	state_dir = xt_tmpdir();
	assert_non_null(state_dir);
	assert_int_equal(xt_serve_start(&srv, DOMID, XT_IRQ_X86, c->mode,
					c->cache_mib, state_dir,
					xt_blk_model(disk.path, false)),
			 0);
	assert_int_equal(sx_vdev_probe(&o, &dev), 0);
	/* Within what the device advertises. */
	assert_int_equal(
		sx_vdev_config(dev, 0,
			       offsetof(struct virtio_blk_config, seg_max),
			       &seg_max, 4),
		0);
	assert_int_equal(
		sx_vdev_config(dev, 0,
			       offsetof(struct virtio_blk_config, size_max),
			       &size_max, 4),
		0);
	assert_int_equal(seg_max, SEGS);
	xt_frames_init(&f, sx_vdev_alloc(dev, AREA_SIZE), AREA_SIZE);
	memset(&io, 0, sizeof(io));
	io.type = c->type;
	io.sector = 64;
	io.hdr_gpa = xt_hdr_place(&f, 2); /* status in the next bucket */
	assert_true(io.hdr_gpa != 0);
	assert_int_equal(xt_segs_split_in_two(&f, &io, SEGS, grant), SEGS);
	len = 0;
	for (unsigned i = 0; i < io.nseg; i++) {
		assert_true(io.seg[i].len <= size_max);
		len += io.seg[i].len;
	}
	buf = malloc(len);
	assert_non_null(buf);
	if (c->type == VIRTIO_BLK_T_OUT) {
		for (uint32_t i = 0; i < len; i++)
			buf[i] = xt_pattern(77 + i / 4096, i);
		xt_buf_to_segs(ram, &io, buf);
		xt_disk_wrote(&disk, io.sector, buf, len);
	}
	assert_int_equal(sx_blk_submit(dev, 0, &io, 1, 0), 0);
	assert_int_equal(io.status, VIRTIO_BLK_S_OK);
	if (c->type == VIRTIO_BLK_T_IN) {
		assert_int_equal(io.used_len, len + 1);
		xt_segs_to_buf(ram, &io, buf);
		assert_true(xt_disk_read_ok(&disk, io.sector, buf, len));
	}
	free(buf);
	if (xt_disk_check(&disk, why, sizeof(why)))
		fail_msg("%s", why);
	assert_int_equal(xt_serve_stop(&srv, VD_STOP), 0);
	sx_counters(&cnt);
	assert_int_equal(cnt.fm_live_pages, 0);
	assert_int_equal(cnt.gnt_live_pages, 0);
}

int main(void)
{
	struct CMUnitTest tests[N_CASES];

	for (unsigned i = 0; i < N_CASES; i++)
		tests[i] =
			(struct CMUnitTest){.name = cases[i].name,
					    .test_func = at_the_limits,
					    .teardown_func = case_teardown,
					    .initial_state = (void *)&cases[i]};
	return _cmocka_run_group_tests("test_xen_blk_limits", tests, N_CASES,
				       group_setup, group_teardown);
}
