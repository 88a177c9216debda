/* virtio-blk requests through the core's queues with the test driver as a
 * (sometimes hostile) guest: every request type, descriptor layouts,
 * boundaries, read-only, GET_ID, config space, WCE and option errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "log_capture.h"
#include "test_blk_env.h"
#include "virtiod/log.h"

#define DIR	    "/tmp"
#define IMG_SIZE    (4u << 20)
#define CAP_SECTORS (IMG_SIZE / 512)

static struct blk_env env;

static int teardown(void **state)
{
	(void)state;
	env_close(&env);
	return 0;
}

static void open_default(enum vd_vq_layout layout)
{
	env_open(&env, DIR, IMG_SIZE, NULL, layout);
}

/* ------------------------------------------------------------ data path */

/* Prestate: "packed" selects the packed layout, NULL the split one. */
static enum vd_vq_layout layout_of(void **state)
{
	return *state ? VD_VQ_PACKED : VD_VQ_SPLIT;
}

static void in_returns_image_bytes(void **state)
{
	enum vd_vq_layout layout = layout_of(state);
	uint64_t data;
	uint32_t used;

	open_default(layout);
	data = td_mem_alloc(env.m, 8192, 4096);
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_IN, 24, data, 8192, &used),
		VIRTIO_BLK_S_OK);
	assert_int_equal(used, 8192 + 1);
	assert_true(env_img_equals(&env, 24 * 512, env_hva(&env, data), 8192));
	assert_true(atomic_load(&env.notifies[0]) >= 1);
}

static void out_reaches_image(void **state)
{
	enum vd_vq_layout layout = layout_of(state);
	uint64_t data;
	uint32_t used;

	open_default(layout);
	data = td_mem_alloc(env.m, 4096, 4096);
	td_mem_fill(env.m, data, 4096, 42);
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_OUT, 8, data, 4096, &used),
		VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1); /* only the status was written */
	assert_true(env_img_equals(&env, 8 * 512, env_hva(&env, data), 4096));
	assert_true(env_img_pattern(&env, 0, 8 * 512));
	assert_true(env_img_pattern(&env, 16 * 512, 512));
}

static void out_header_split_1_15_data_over_four_descriptors(void **state)
{
	struct virtio_blk_outhdr oh = {.type = htole32(VIRTIO_BLK_T_OUT),
				       .sector = htole64(100)};
	uint64_t h, d, st;
	uint8_t hdr[16], want[2048];
	struct td_buf b[7];
	uint32_t used;

	(void)state;
	open_default(VD_VQ_SPLIT);
	memcpy(hdr, &oh, 16);
	h = td_mem_alloc(env.m, 64, 8);
	d = td_mem_alloc(env.m, 2048, 512);
	st = td_mem_alloc(env.m, 1, 1);
	memcpy(env_hva(&env, h), hdr, 1);
	memcpy(env_hva(&env, h + 32), hdr + 1, 15);
	td_mem_fill(env.m, d, 2048, 7);
	memcpy(want, env_hva(&env, d), 2048);
	b[0] = (struct td_buf){h, 1, false};
	b[1] = (struct td_buf){h + 32, 15, false};
	for (unsigned i = 0; i < 4; i++)
		b[2 + i] = (struct td_buf){d + i * 512, 512, false};
	b[6] = (struct td_buf){st, 1, true};
	assert_int_equal(td_vq_add(env.vq[0], b, 7, false, &env), 0);
	env_kick(&env, 0);
	assert_ptr_equal(env_wait(&env, 0, &used), &env);
	assert_int_equal(*(uint8_t *)env_hva(&env, st), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1);
	assert_true(env_img_equals(&env, 100 * 512, want, 2048));
}

/* IN whose status byte is the last byte of its last data descriptor, the
 * header split 1+15 and the data spread over three descriptors. */
static void in_status_at_end_of_data_descriptor_header_split(void **state)
{
	uint64_t h, d;
	struct td_buf b[5];
	uint8_t *p;
	uint32_t used;

	(void)state;
	open_default(VD_VQ_SPLIT);
	h = td_mem_alloc(env.m, 64, 8);
	d = td_mem_alloc(env.m, 4096, 4096);
	env_hdr(&env, h, VIRTIO_BLK_T_IN, 7);
	memmove(env_hva(&env, h + 40), (uint8_t *)env_hva(&env, h) + 1, 15);
	b[0] = (struct td_buf){h, 1, false};
	b[1] = (struct td_buf){h + 40, 15, false};
	b[2] = (struct td_buf){d, 1024, true};
	b[3] = (struct td_buf){d + 1024, 512, true};
	b[4] = (struct td_buf){d + 2048, 512 + 1, true}; /* data + status */
	memset(env_hva(&env, d), 0xee, 4096);
	assert_int_equal(td_vq_add(env.vq[0], b, 5, false, &env), 0);
	env_kick(&env, 0);
	assert_ptr_equal(env_wait(&env, 0, &used), &env);
	assert_int_equal(used, 2048 + 1);
	p = env_hva(&env, d);
	assert_int_equal(p[2048 + 512], VIRTIO_BLK_S_OK);
	assert_true(env_img_equals(&env, 7 * 512, p, 1536));
	assert_true(env_img_equals(&env, 7 * 512 + 1536, p + 2048, 512));
	assert_int_equal(p[1024 + 512], 0xee); /* gap left alone */
	assert_int_equal(p[2048 + 513], 0xee); /* past the status */
}

/* OUT with header and data in one readable descriptor. */
static void out_header_and_data_in_one_descriptor(void **state)
{
	uint64_t buf, st;
	struct td_buf b[2];
	uint32_t used;

	(void)state;
	open_default(VD_VQ_PACKED);
	buf = td_mem_alloc(env.m, 16 + 1024, 16);
	st = td_mem_alloc(env.m, 1, 1);
	env_hdr(&env, buf, VIRTIO_BLK_T_OUT, 3);
	td_mem_fill(env.m, buf + 16, 1024, 9);
	b[0] = (struct td_buf){buf, 16 + 1024, false};
	b[1] = (struct td_buf){st, 1, true};
	assert_int_equal(td_vq_add(env.vq[0], b, 2, false, &env), 0);
	env_kick(&env, 0);
	assert_ptr_equal(env_wait(&env, 0, &used), &env);
	assert_int_equal(*(uint8_t *)env_hva(&env, st), VIRTIO_BLK_S_OK);
	assert_true(
		env_img_equals(&env, 3 * 512, env_hva(&env, buf + 16), 1024));
}

static void indirect_chain_is_served(void **state)
{
	struct env_req r;
	uint32_t used;

	(void)state;
	open_default(VD_VQ_SPLIT);
	env_req_alloc(&env, &r, 4096);
	env_req_add(&env, 0, &r, VIRTIO_BLK_T_IN, 16, true, true);
	env_kick(&env, 0);
	assert_ptr_equal(env_wait(&env, 0, &used), &r);
	assert_int_equal(env_status(&env, &r), VIRTIO_BLK_S_OK);
	assert_true(
		env_img_equals(&env, 16 * 512, env_hva(&env, r.data), 4096));
}

static void zero_length_in_completes_ok(void **state)
{
	uint32_t used;

	(void)state;
	open_default(VD_VQ_SPLIT);
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_IN, 0, 0, 0, &used),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1);
}

/* ----------------------------------------------------------- boundaries */

static void last_sector_ok_one_past_is_ioerr(void **state)
{
	uint64_t d;

	(void)state;
	open_default(VD_VQ_SPLIT);
	d = td_mem_alloc(env.m, 1024, 4096);
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_IN, CAP_SECTORS - 1, d, 512, NULL),
		VIRTIO_BLK_S_OK);
	assert_true(
		env_img_equals(&env, IMG_SIZE - 512, env_hva(&env, d), 512));
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_IN, CAP_SECTORS, d, 512, NULL),
		VIRTIO_BLK_S_IOERR);
	/* Starts inside, ends one sector past the end. */
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_OUT, CAP_SECTORS - 1, d,
				1024, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_true(env_img_pattern(&env, IMG_SIZE - 512, 512));
	/* Capacity itself with no data is in range. */
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_IN, CAP_SECTORS, 0, 0, NULL),
		VIRTIO_BLK_S_OK);
}

static void sector_overflow_is_ioerr(void **state)
{
	uint64_t d;
	uint32_t used;

	(void)state;
	open_default(VD_VQ_SPLIT);
	d = td_mem_alloc(env.m, 512, 4096);
	/* sector << 9 and sector + len wrap 2^64 for these. */
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_OUT, UINT64_MAX, d, 512, NULL),
		VIRTIO_BLK_S_IOERR);
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_OUT, 1ULL << 55, d, 512, NULL),
		VIRTIO_BLK_S_IOERR);
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_IN,
				UINT64_MAX - (CAP_SECTORS / 2), d, 512, &used),
			 VIRTIO_BLK_S_IOERR);
	/* Up to and including the status byte, so dirty logging covers it. */
	assert_int_equal(used, 512 + 1);
	assert_true(env_img_pattern(&env, 0, IMG_SIZE));
}

static void length_not_multiple_of_block_is_ioerr(void **state)
{
	static const char *const opts[] = {"logical-block-size", "4096", NULL};
	uint64_t d;

	(void)state;
	env_open(&env, DIR, IMG_SIZE, opts, VD_VQ_SPLIT);
	assert_int_equal(ENV_CFG(&env, blk_size), 4096);
	d = td_mem_alloc(env.m, 8192, 4096);
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_IN, 0, d, 512, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_OUT, 0, d, 4096 + 512, NULL),
		VIRTIO_BLK_S_IOERR);
	/* Sector not on a 4096-byte boundary. */
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_OUT, 1, d, 4096, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_true(env_img_pattern(&env, 0, 16384));
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_IN, 8, d, 4096, NULL),
			 VIRTIO_BLK_S_OK);
	assert_true(env_img_equals(&env, 4096, env_hva(&env, d), 4096));
}

/* ------------------------------------------------------------ read-only */

static void readonly_refuses_out_discard_write_zeroes(void **state)
{
	/* vhost-user.json's name for --readonly. */
	static const char *const opts[] = {"read-only", NULL, NULL};
	uint64_t d, seg;
	struct virtio_blk_discard_write_zeroes *s;

	(void)state;
	env_open(&env, DIR, IMG_SIZE, opts, VD_VQ_SPLIT);
	assert_true(env.model->features & (1ULL << VIRTIO_BLK_F_RO));
	d = td_mem_alloc(env.m, 4096, 4096);
	seg = td_mem_alloc(env.m, 16, 16);
	s = env_hva(&env, seg);
	s->sector = htole64(0);
	s->num_sectors = htole32(8);
	td_mem_fill(env.m, d, 4096, 3);
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_OUT, 0, d, 4096, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_DISCARD, 0, seg, 16, NULL),
		VIRTIO_BLK_S_IOERR);
	s->flags = htole32(VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, NULL),
		VIRTIO_BLK_S_IOERR);
	assert_true(env_img_pattern(&env, 0, 8192));
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_IN, 0, d, 4096, NULL),
			 VIRTIO_BLK_S_OK);
	assert_true(env_img_equals(&env, 0, env_hva(&env, d), 4096));
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL),
			 VIRTIO_BLK_S_OK);
}

/* ------------------------------------------------- flush, GET_ID, UNSUPP */

static void flush_completes_ok_after_writes(void **state)
{
	uint64_t d;
	uint32_t used;

	(void)state;
	open_default(VD_VQ_SPLIT);
	d = td_mem_alloc(env.m, 4096, 4096);
	td_mem_fill(env.m, d, 4096, 5);
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_OUT, 0, d, 4096, NULL),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &used),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1);
	assert_true(env_img_equals(&env, 0, env_hva(&env, d), 4096));
}

static void get_id_returns_configured_serial(void **state)
{
	static const char *const opts[] = {"serial", "disk-0123", NULL};
	uint64_t d;
	uint32_t used;
	char want[20] = "disk-0123";

	(void)state;
	env_open(&env, DIR, IMG_SIZE, opts, VD_VQ_SPLIT);
	d = td_mem_alloc(env.m, 20, 1);
	memset(env_hva(&env, d), 0x55, 20);
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_GET_ID, 0, d, 20, &used),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(used, 21);
	assert_memory_equal(env_hva(&env, d), want, 20); /* zero-padded */
}

static void get_id_default_serial_is_derived_from_path(void **state)
{
	uint64_t d;
	char first[21] = {0};

	(void)state;
	open_default(VD_VQ_SPLIT);
	d = td_mem_alloc(env.m, 20, 1);
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_GET_ID, 0, d, 20, NULL),
			 VIRTIO_BLK_S_OK);
	memcpy(first, env_hva(&env, d), 20);
	assert_int_equal(strncmp(first, "vd-", 3), 0);
	assert_int_equal(strlen(first), 19);
	/* A short buffer gets a prefix; the status is not overwritten. */
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_GET_ID, 0, d, 5, NULL),
			 VIRTIO_BLK_S_OK);
	assert_memory_equal(env_hva(&env, d), first, 5);
}

static void get_id_differs_for_another_path(void **state)
{
	uint64_t d;
	char a[20], b[20];

	(void)state;
	open_default(VD_VQ_SPLIT);
	d = td_mem_alloc(env.m, 20, 1);
	env_do(&env, 0, VIRTIO_BLK_T_GET_ID, 0, d, 20, NULL);
	memcpy(a, env_hva(&env, d), 20);
	env_close(&env);
	env_open(&env, "/dev/shm", IMG_SIZE, NULL, VD_VQ_SPLIT);
	d = td_mem_alloc(env.m, 20, 1);
	env_do(&env, 0, VIRTIO_BLK_T_GET_ID, 0, d, 20, NULL);
	memcpy(b, env_hva(&env, d), 20);
	assert_memory_not_equal(a, b, 20);
}

static void unknown_types_are_unsupp(void **state)
{
	static const uint32_t types[] = {
		2, 3, 14, 99, 0x80000000u, VIRTIO_BLK_T_OUT | 0x80000000u};
	uint64_t d;
	uint32_t used;

	(void)state;
	open_default(VD_VQ_SPLIT);
	d = td_mem_alloc(env.m, 512, 512);
	for (unsigned i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		assert_int_equal(env_do(&env, 0, types[i], 0, d, 512, &used),
				 VIRTIO_BLK_S_UNSUPP);
		assert_int_equal(used, 1);
	}
	assert_true(env_img_pattern(&env, 0, 4096));
}

/* ---------------------------------------------------- broken chains */

static void short_header_marks_needs_reset(void **state)
{
	uint64_t h, st;
	struct td_buf b[2];
	uint32_t used;

	(void)state;
	open_default(VD_VQ_SPLIT);
	h = td_mem_alloc(env.m, 16, 16);
	st = td_mem_alloc(env.m, 1, 1);
	env_hdr(&env, h, VIRTIO_BLK_T_OUT, 0);
	*(uint8_t *)env_hva(&env, st) = 0xee;
	b[0] = (struct td_buf){h, 15, false};
	b[1] = (struct td_buf){st, 1, true};
	assert_int_equal(td_vq_add(env.vq[0], b, 2, false, &env), 0);
	env_kick(&env, 0);
	assert_ptr_equal(env_wait(&env, 0, &used), &env);
	assert_int_equal(used, 0);
	assert_int_equal(*(uint8_t *)env_hva(&env, st), 0xee);
	assert_true(vd_dev_status(env.dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(atomic_load(&env.config_notifies), 1);
}

static void missing_status_byte_marks_needs_reset(void **state)
{
	uint64_t h;
	struct td_buf b[1];
	uint32_t used;

	(void)state;
	open_default(VD_VQ_PACKED);
	h = td_mem_alloc(env.m, 16, 16);
	env_hdr(&env, h, VIRTIO_BLK_T_FLUSH, 0);
	b[0] = (struct td_buf){h, 16, false};
	assert_int_equal(td_vq_add(env.vq[0], b, 1, false, &env), 0);
	env_kick(&env, 0);
	assert_ptr_equal(env_wait(&env, 0, &used), &env);
	assert_int_equal(used, 0);
	assert_true(vd_dev_status(env.dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(atomic_load(&env.config_notifies), 1);
}

/* ------------------------------------------------- discard/zeroes checks */

static uint8_t dwz(uint32_t type,
		   const struct virtio_blk_discard_write_zeroes *segs,
		   unsigned n, uint32_t len)
{
	uint64_t g = td_mem_alloc(env.m, 32 * 16, 16);

	memcpy(env_hva(&env, g), segs, n * sizeof(*segs));
	return env_do(&env, 0, type, 0, g, len, NULL);
}

static void discard_and_write_zeroes_segments_are_validated(void **state)
{
	struct virtio_blk_discard_write_zeroes s[20];

	(void)state;
	open_default(VD_VQ_SPLIT);
	memset(s, 0, sizeof(s));
	for (unsigned i = 0; i < 20; i++) {
		s[i].sector = htole64(i * 8);
		s[i].num_sectors = htole32(8);
	}
	/* Unknown flag: UNSUPP for both; UNMAP on a discard: UNSUPP. */
	s[0].flags = htole32(2);
	assert_int_equal(dwz(VIRTIO_BLK_T_DISCARD, s, 1, 16),
			 VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(dwz(VIRTIO_BLK_T_WRITE_ZEROES, s, 1, 16),
			 VIRTIO_BLK_S_UNSUPP);
	s[0].flags = htole32(VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	assert_int_equal(dwz(VIRTIO_BLK_T_DISCARD, s, 1, 16),
			 VIRTIO_BLK_S_UNSUPP);
	s[0].flags = 0;
	/* More segments than max_discard_seg. */
	assert_int_equal(ENV_CFG(&env, max_discard_seg), 16);
	assert_int_equal(dwz(VIRTIO_BLK_T_DISCARD, s, 17, 17 * 16),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(dwz(VIRTIO_BLK_T_WRITE_ZEROES, s, 17, 17 * 16),
			 VIRTIO_BLK_S_IOERR);
	/* Payload not a whole number of segments, or empty. */
	assert_int_equal(dwz(VIRTIO_BLK_T_DISCARD, s, 1, 15),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(dwz(VIRTIO_BLK_T_DISCARD, s, 1, 0),
			 VIRTIO_BLK_S_IOERR);
	/* Past the end, wrapping, or more than max sectors. */
	s[1].sector = htole64(CAP_SECTORS - 4);
	assert_int_equal(dwz(VIRTIO_BLK_T_WRITE_ZEROES, s, 2, 32),
			 VIRTIO_BLK_S_IOERR);
	s[1].sector = htole64(UINT64_MAX - 3);
	assert_int_equal(dwz(VIRTIO_BLK_T_DISCARD, s, 2, 32),
			 VIRTIO_BLK_S_IOERR);
	s[1].sector = htole64(8);
	s[1].num_sectors = htole32(ENV_CFG(&env, max_write_zeroes_sectors) + 1);
	assert_int_equal(dwz(VIRTIO_BLK_T_WRITE_ZEROES, s, 2, 32),
			 VIRTIO_BLK_S_IOERR);
	/* None of the refused requests touched the image. */
	assert_true(env_img_pattern(&env, 0, IMG_SIZE));
}

static void discard_without_negotiation_is_unsupp(void **state)
{
	struct virtio_blk_discard_write_zeroes s = {.num_sectors = htole32(8)};

	(void)state;
	memset(&env, 0, sizeof(env));
	env_image(&env, DIR, IMG_SIZE, false);
	if (env_create(&env, NULL) != 0)
		fail_msg("create: %s", env.err);
	env_start(&env, VD_VQ_SPLIT, 64,
		  1ULL << VIRTIO_BLK_F_DISCARD |
			  1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
	assert_int_equal(dwz(VIRTIO_BLK_T_DISCARD, &s, 1, 16),
			 VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(dwz(VIRTIO_BLK_T_WRITE_ZEROES, &s, 1, 16),
			 VIRTIO_BLK_S_UNSUPP);
	assert_true(env_img_pattern(&env, 0, 8192));
}

/* ---------------------------------------------------------- config space */

static void config_space_describes_the_disk(void **state)
{
	static const char *const opts[] = {"num-queues", "2", "queue-size",
					   "64", NULL};
	uint64_t f;

	(void)state;
	memset(&env, 0, sizeof(env));
	env_image(&env, DIR, IMG_SIZE, false);
	if (env_create(&env, opts) != 0)
		fail_msg("create: %s", env.err);
	env_start(&env, VD_VQ_SPLIT, 64, 0);
	f = env.model->features;
	assert_int_equal(env.model->device_id, 2);
	assert_true(f & 1ULL << VIRTIO_F_VERSION_1);
	assert_true(f & 1ULL << VIRTIO_F_RING_PACKED);
	assert_true(f & 1ULL << VIRTIO_RING_F_EVENT_IDX);
	assert_true(f & 1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	assert_true(f & 1ULL << VIRTIO_BLK_F_FLUSH);
	assert_true(f & 1ULL << VIRTIO_BLK_F_CONFIG_WCE);
	assert_true(f & 1ULL << VIRTIO_BLK_F_MQ);
	assert_true(f & 1ULL << VIRTIO_BLK_F_DISCARD);
	assert_true(f & 1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
	assert_false(f & 1ULL << VIRTIO_BLK_F_RO);
	assert_int_equal(env.model->max_queue_size, 64);
	assert_int_equal(ENV_CFG(&env, capacity), CAP_SECTORS);
	assert_int_equal(ENV_CFG(&env, blk_size), 512);
	assert_int_equal(ENV_CFG(&env, seg_max), 62); /* queue size - 2 */
	/* Segments, header, status; each up to size_max. */
	assert_int_equal(env.model->max_descs, 62 + 2);
	assert_int_equal(env.model->max_desc_len, 1 << 20);
	assert_int_equal(ENV_CFG(&env, size_max), 1 << 20);
	assert_int_equal(ENV_CFG(&env, num_queues), 2);
	/* ext4's st_blksize is 4096: 8 logical blocks per physical one. */
	assert_int_equal(ENV_CFG(&env, physical_block_exp), 3);
	assert_int_equal(ENV_CFG(&env, min_io_size), 8);
	assert_int_equal(ENV_CFG(&env, max_discard_seg), 16);
	assert_int_equal(ENV_CFG(&env, max_write_zeroes_seg), 16);
	assert_int_equal(ENV_CFG(&env, write_zeroes_may_unmap), 1);
	assert_true(ENV_CFG(&env, max_discard_sectors) >= 8);
	assert_int_equal(ENV_CFG(&env, wce), 1);
}

static void wce_toggles_through_config_write(void **state)
{
	uint8_t v;
	uint32_t wce = offsetof(struct virtio_blk_config, wce);
	uint64_t d;

	(void)state;
	open_default(VD_VQ_SPLIT);
	d = td_mem_alloc(env.m, 4096, 4096);
	assert_int_equal(ENV_CFG(&env, wce), 1);
	v = 0;
	assert_int_equal(vd_dev_config_write(env.dev, wce, &v, 1), 0);
	assert_int_equal(ENV_CFG(&env, wce), 0);
	/* Writethrough: writes still complete, and reach the file. */
	td_mem_fill(env.m, d, 4096, 77);
	assert_int_equal(env_do(&env, 0, VIRTIO_BLK_T_OUT, 64, d, 4096, NULL),
			 VIRTIO_BLK_S_OK);
	assert_true(env_img_equals(&env, 64 * 512, env_hva(&env, d), 4096));
	v = 1;
	assert_int_equal(vd_dev_config_write(env.dev, wce, &v, 1), 0);
	assert_int_equal(ENV_CFG(&env, wce), 1);
	v = 2;
	assert_int_not_equal(vd_dev_config_write(env.dev, wce, &v, 1), 0);
	assert_int_equal(ENV_CFG(&env, wce), 1);
	/* Any other field is read-only. */
	assert_int_equal(vd_dev_config_write(env.dev, 0, &v, 1), -EPERM);
	assert_int_equal(ENV_CFG(&env, capacity), CAP_SECTORS);
	/* Reset returns to writeback. */
	v = 0;
	assert_int_equal(vd_dev_config_write(env.dev, wce, &v, 1), 0);
	assert_int_equal(vd_dev_set_status(env.dev, 0), 0);
	assert_int_equal(ENV_CFG(&env, wce), 1);
}

static void wce_needs_config_wce_and_flush_means_writeback(void **state)
{
	uint8_t v = 0;
	uint32_t wce = offsetof(struct virtio_blk_config, wce);

	(void)state;
	memset(&env, 0, sizeof(env));
	env_image(&env, DIR, IMG_SIZE, false);
	if (env_create(&env, NULL) != 0)
		fail_msg("create: %s", env.err);
	/* Without FLUSH the device is writethrough (virtio 1.2 §5.2.5). */
	env_start(&env, VD_VQ_SPLIT, 64,
		  1ULL << VIRTIO_BLK_F_CONFIG_WCE | 1ULL << VIRTIO_BLK_F_FLUSH);
	assert_int_equal(ENV_CFG(&env, wce), 0);
	v = 1;
	assert_int_equal(vd_dev_config_write(env.dev, wce, &v, 1), -EPERM);
	assert_int_equal(ENV_CFG(&env, wce), 0);
}

/* The driver can write the WCE byte as often as it likes: the host's log
 * must not get a line per write. */
static void wce_writes_do_not_flood_the_log(void **state)
{
	uint32_t wce = offsetof(struct virtio_blk_config, wce);
	const char *log;

	(void)state;
	open_default(VD_VQ_SPLIT);
	vd_log_set_level(VD_LOG_INFO);
	lc_begin();
	for (int i = 0; i < 200; i++) {
		uint8_t v = (uint8_t)(i & 1);

		assert_int_equal(vd_dev_config_write(env.dev, wce, &v, 1), 0);
	}
	log = lc_end();
	vd_log_set_level(VD_LOG_ERR);
	assert_true(lc_count(log, "blk") <= 20);
	assert_int_equal(ENV_CFG(&env, wce), 1);
}

/* -------------------------------------------------------------- options */

static void option_errors_name_option_and_value(void **state)
{
	void *o = vd_blk_type.opts_new();
	char err[256];
	struct vd_model *m = NULL;

	(void)state;
	assert_int_equal(vd_blk_type.create(o, &m, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--disk is required");
	assert_int_equal(
		vd_blk_type.opts_set(o, "queue-size", "100", err, sizeof(err)),
		-EINVAL);
	assert_non_null(strstr(err, "--queue-size 100"));
	assert_int_equal(vd_blk_type.opts_set(o, "queue-size", "65536", err,
					      sizeof(err)),
			 -EINVAL);
	assert_int_equal(
		vd_blk_type.opts_set(o, "num-queues", "0", err, sizeof(err)),
		-EINVAL);
	assert_non_null(strstr(err, "--num-queues 0"));
	assert_int_equal(vd_blk_type.opts_set(o, "serial",
					      "123456789012345678901", err,
					      sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "--serial"));
	assert_int_equal(
		vd_blk_type.opts_set(o, "io-engine", "aio", err, sizeof(err)),
		-EINVAL);
	assert_non_null(strstr(err, "--io-engine aio"));
	assert_int_equal(vd_blk_type.opts_set(o, "logical-block-size", "1024",
					      err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "--logical-block-size 1024"));
	assert_int_equal(vd_blk_type.opts_set(o, "disk", "/nonexistent/x.img",
					      err, sizeof(err)),
			 0);
	assert_int_equal(vd_blk_type.create(o, &m, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "--disk /nonexistent/x.img: No such file or "
				 "directory");
	assert_int_equal(
		vd_blk_type.opts_set(o, "disk", "/dev/null", err, sizeof(err)),
		0);
	assert_int_equal(vd_blk_type.create(o, &m, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--disk /dev/null: not a regular file"));
	/* --blk-file is --disk under vhost-user.json's name. */
	assert_int_equal(vd_blk_type.opts_set(o, "blk-file", "/nonexistent/y",
					      err, sizeof(err)),
			 0);
	assert_int_equal(vd_blk_type.create(o, &m, err, sizeof(err)), -ENOENT);
	assert_string_equal(err,
			    "--disk /nonexistent/y: No such file or directory");
	assert_null(m);
	vd_blk_type.opts_free(o);
	assert_string_equal(vd_blk_type.vhost_user_type, "block");
}

#define BOTH_LAYOUTS(f)                                                        \
	cmocka_unit_test_prestate_setup_teardown(f, NULL, teardown, NULL),     \
		cmocka_unit_test_prestate_setup_teardown(f, NULL, teardown,    \
							 (void *)"packed")

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH_LAYOUTS(in_returns_image_bytes),
		BOTH_LAYOUTS(out_reaches_image),
		cmocka_unit_test_teardown(
			out_header_split_1_15_data_over_four_descriptors,
			teardown),
		cmocka_unit_test_teardown(
			in_status_at_end_of_data_descriptor_header_split,
			teardown),
		cmocka_unit_test_teardown(out_header_and_data_in_one_descriptor,
					  teardown),
		cmocka_unit_test_teardown(indirect_chain_is_served, teardown),
		cmocka_unit_test_teardown(zero_length_in_completes_ok,
					  teardown),
		cmocka_unit_test_teardown(last_sector_ok_one_past_is_ioerr,
					  teardown),
		cmocka_unit_test_teardown(sector_overflow_is_ioerr, teardown),
		cmocka_unit_test_teardown(length_not_multiple_of_block_is_ioerr,
					  teardown),
		cmocka_unit_test_teardown(
			readonly_refuses_out_discard_write_zeroes, teardown),
		cmocka_unit_test_teardown(flush_completes_ok_after_writes,
					  teardown),
		cmocka_unit_test_teardown(get_id_returns_configured_serial,
					  teardown),
		cmocka_unit_test_teardown(
			get_id_default_serial_is_derived_from_path, teardown),
		cmocka_unit_test_teardown(get_id_differs_for_another_path,
					  teardown),
		cmocka_unit_test_teardown(unknown_types_are_unsupp, teardown),
		cmocka_unit_test_teardown(short_header_marks_needs_reset,
					  teardown),
		cmocka_unit_test_teardown(missing_status_byte_marks_needs_reset,
					  teardown),
		cmocka_unit_test_teardown(
			discard_and_write_zeroes_segments_are_validated,
			teardown),
		cmocka_unit_test_teardown(discard_without_negotiation_is_unsupp,
					  teardown),
		cmocka_unit_test_teardown(config_space_describes_the_disk,
					  teardown),
		cmocka_unit_test_teardown(wce_toggles_through_config_write,
					  teardown),
		cmocka_unit_test_teardown(
			wce_needs_config_wce_and_flush_means_writeback,
			teardown),
		cmocka_unit_test_teardown(wce_writes_do_not_flood_the_log,
					  teardown),
		cmocka_unit_test(option_errors_name_option_and_value),
	};

	vd_log_set_level(VD_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
